//! SGD and its relatives: how a gradient dJ/dw becomes a step of the weights.
//!
//! The post ends with plain gradient descent, w <- w - eta dJ/dw, over mini-batches. The
//! [`Optimizer`] does that and the variants people reach for next, each exactly as PyTorch's
//! `torch.optim` defines it (tested against PyTorch to 1e-12 in f64):
//!
//! | [`OptimizerKind`] | PyTorch | update, with g = dJ/dw + lambda w (L2 weight decay) |
//! |---|---|---|
//! | `sgd` | `SGD` | w <- w - eta g |
//! | `momentum` | `SGD(momentum=mu)` | v <- mu v + g; w <- w - eta v |
//! | `nesterov` | `SGD(momentum=mu, nesterov=True)` | v <- mu v + g; w <- w - eta (g + mu v) |
//! | `adam` | `Adam` | m, v moving averages of g and g^2, bias-corrected; w <- w - eta m^ / (sqrt(v^) + eps) |
//! | `adamw` | `AdamW` | as Adam on dJ/dw, with decay decoupled: w <- w (1 - eta lambda) first |
//!
//! Weight decay applies to the biases too by default, as in PyTorch when all parameters
//! are in one group. Nielsen's L2 regularisation decays the weights only (the biases
//! "have little effect"): set [`OptimizerConfig::decay_biases`] to `false` for that, as
//! PyTorch users do with a second parameter group whose `weight_decay` is 0.
//!
//! [`Schedule`] changes eta from epoch to epoch (constant, step, cosine).

mod schedule;

pub use schedule::Schedule;

use crate::network::{Gradients, Network};
use crate::Float;
use std::fmt;
use std::str::FromStr;

/// Which update rule (the `--optimizer` flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum OptimizerKind {
    /// Plain SGD: w <- w - eta g.
    #[default]
    Sgd,
    /// SGD with (heavy-ball) momentum.
    Momentum,
    /// SGD with Nesterov momentum.
    Nesterov,
    /// Adam, with L2 weight decay added to the gradient.
    Adam,
    /// AdamW: Adam with decoupled weight decay.
    AdamW,
}

impl OptimizerKind {
    /// Every kind, in the order of their names.
    pub const ALL: [OptimizerKind; 5] = [
        OptimizerKind::Sgd,
        OptimizerKind::Momentum,
        OptimizerKind::Nesterov,
        OptimizerKind::Adam,
        OptimizerKind::AdamW,
    ];

    /// The name used on the command line and in model files.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Momentum => "momentum",
            OptimizerKind::Nesterov => "nesterov",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
        }
    }

    /// Names of the per-tensor state buffers this kind keeps.
    fn buffers(self) -> &'static [&'static str] {
        match self {
            OptimizerKind::Sgd => &[],
            OptimizerKind::Momentum | OptimizerKind::Nesterov => &["momentum_buffer"],
            OptimizerKind::Adam | OptimizerKind::AdamW => &["exp_avg", "exp_avg_sq"],
        }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        OptimizerKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown optimizer '{s}' (expected one of: {})",
                    OptimizerKind::ALL.map(|k| k.name()).join(", ")
                )
            })
    }
}

/// The settings of an optimizer. Hyper-parameters are `f64` whatever the network's
/// precision, as PyTorch keeps them as Python floats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerConfig {
    /// The update rule.
    pub kind: OptimizerKind,
    /// mu for `momentum` and `nesterov` (PyTorch has no default; 0.9 is usual).
    pub momentum: f64,
    /// lambda: L2 decay added to the gradient (decoupled for `adamw`).
    pub weight_decay: f64,
    /// Whether `weight_decay` applies to the biases as well as the weights (`true`, as
    /// PyTorch with one parameter group) or to the weights only (`false`, as the L2
    /// regularisation of Nielsen's book).
    pub decay_biases: bool,
    /// Adam's beta_1 (0.9).
    pub beta1: f64,
    /// Adam's beta_2 (0.999).
    pub beta2: f64,
    /// Adam's epsilon (1e-8).
    pub eps: f64,
}

impl OptimizerConfig {
    /// `kind` with PyTorch's defaults (momentum 0.9, no weight decay, which would apply to
    /// the biases too, betas (0.9, 0.999), eps 1e-8).
    pub fn new(kind: OptimizerKind) -> Self {
        OptimizerConfig {
            kind,
            momentum: 0.9,
            weight_decay: 0.0,
            decay_biases: true,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// An error from an optimizer.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// A hyper-parameter outside its range.
    #[error("{name} = {value}: {expected}")]
    BadParameter {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The valid range.
        expected: &'static str,
    },
    /// Saved state lacks a tensor this optimizer needs.
    #[error("optimizer state: missing tensor {0}")]
    MissingState(String),
    /// Saved state has a tensor of the wrong length.
    #[error("optimizer state: tensor {name} has {found} values, expected {expected}")]
    StateShape {
        /// The tensor.
        name: String,
        /// Expected number of values.
        expected: usize,
        /// Number found.
        found: usize,
    },
    /// A gradient or network that is not shaped like the one the optimizer was made for.
    #[error("the network has {found} parameter tensors of sizes {found_sizes:?}, the optimizer was made for {expected_sizes:?}")]
    NetworkShape {
        /// Number of tensors found.
        found: usize,
        /// Their sizes.
        found_sizes: Vec<usize>,
        /// The sizes the optimizer expects.
        expected_sizes: Vec<usize>,
    },
}

/// An optimizer for one network: its settings, its step counter t, and its per-tensor
/// state, allocated once in [`Optimizer::new`] and keyed by the position of the tensor
/// in [`Network::params_and_grads`].
///
/// Plain SGD is the post's last step, to the bit:
///
/// ```
/// use backprop::linalg::Matrix;
/// use backprop::network::{Activation, Cost, Gradients, Layer, Network};
/// use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
///
/// let mut net = Network {
///     layers: vec![Layer {
///         weights: Matrix::from_vec(1, 2, vec![0.5f64, -1.0]).unwrap(),
///         biases: vec![0.25],
///         activation: Activation::Sigmoid,
///     }],
///     cost: Cost::Quadratic,
/// };
/// let grads = Gradients {
///     weights: vec![Matrix::from_vec(1, 2, vec![0.1, 0.2]).unwrap()],
///     biases: vec![vec![-0.5]],
/// };
/// let mut sgd = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), &net).unwrap();
/// sgd.step(&mut net, &grads, 3.0).unwrap();
/// // w <- w - eta dJ/dw
/// assert_eq!(net.layers[0].weights.as_slice(), &[0.5 - 3.0 * 0.1, -1.0 - 3.0 * 0.2]);
/// assert_eq!(net.layers[0].biases, vec![0.25 + 3.0 * 0.5]);
/// assert_eq!(sgd.steps(), 1);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Optimizer<T> {
    config: OptimizerConfig,
    /// t: the number of steps taken (Adam's bias correction uses it).
    steps: u64,
    /// Sizes of the parameter tensors, in `params_and_grads` order.
    sizes: Vec<usize>,
    /// `state[b][i]`: buffer b (see [`OptimizerKind::buffers`]) of tensor i.
    state: Vec<Vec<Vec<T>>>,
}

fn tensor_sizes<T: Float>(net: &Network<T>) -> Vec<usize> {
    net.layers
        .iter()
        .flat_map(|l| [l.weights.as_slice().len(), l.biases.len()])
        .collect()
}

impl<T: Float> Optimizer<T> {
    /// An optimizer for networks shaped like `net`, its state zeroed.
    ///
    /// # Errors
    /// [`OptimError::BadParameter`] for momentum outside [0, 1), negative or non-finite
    /// weight decay, betas outside [0, 1), or eps not positive.
    pub fn new(config: OptimizerConfig, net: &Network<T>) -> Result<Self, OptimError> {
        let check = |name, value: f64, ok: bool, expected| {
            if ok {
                Ok(())
            } else {
                Err(OptimError::BadParameter {
                    name,
                    value,
                    expected,
                })
            }
        };
        let m = config.momentum;
        check("momentum", m, (0.0..1.0).contains(&m), "must be in [0, 1)")?;
        let wd = config.weight_decay;
        check(
            "weight decay",
            wd,
            wd >= 0.0 && wd.is_finite(),
            "must be finite and >= 0",
        )?;
        let (b1, b2) = (config.beta1, config.beta2);
        check("beta1", b1, (0.0..1.0).contains(&b1), "must be in [0, 1)")?;
        check("beta2", b2, (0.0..1.0).contains(&b2), "must be in [0, 1)")?;
        check(
            "eps",
            config.eps,
            config.eps > 0.0 && config.eps.is_finite(),
            "must be finite and > 0",
        )?;
        let sizes = tensor_sizes(net);
        let state = config
            .kind
            .buffers()
            .iter()
            .map(|_| sizes.iter().map(|&n| vec![T::zero(); n]).collect())
            .collect();
        Ok(Optimizer {
            config,
            steps: 0,
            sizes,
            state,
        })
    }

    /// The settings.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The number of steps taken so far (t).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One update of every weight and bias of `net` from its gradient, with learning
    /// rate `lr` (eta). Allocates nothing.
    ///
    /// # Errors
    /// [`OptimError::NetworkShape`] if `net` or `grads` is not shaped like the network the
    /// optimizer was made for; nothing is changed then.
    pub fn step(
        &mut self,
        net: &mut Network<T>,
        grads: &Gradients<T>,
        lr: T,
    ) -> Result<(), OptimError> {
        let same = net.layers.len() == grads.weights.len()
            && net.layers.len() == grads.biases.len()
            && net
                .layers
                .iter()
                .zip(grads.weights.iter().zip(&grads.biases))
                .flat_map(|(l, (gw, gb))| {
                    [
                        (l.weights.as_slice().len(), gw.as_slice().len()),
                        (l.biases.len(), gb.len()),
                    ]
                })
                .zip(&self.sizes)
                .all(|((p, g), &s)| p == s && g == s)
            && 2 * net.layers.len() == self.sizes.len();
        if !same {
            let found_sizes = tensor_sizes(net);
            return Err(OptimError::NetworkShape {
                found: found_sizes.len(),
                found_sizes,
                expected_sizes: self.sizes.clone(),
            });
        }
        self.steps += 1;
        let c = self.config;
        let wd = T::from_f64(c.weight_decay);
        // Tensors alternate weights, biases (`params_and_grads` order): tensor i is a bias
        // vector when i is odd.
        let decays = |i: usize| c.weight_decay != 0.0 && (i.is_multiple_of(2) || c.decay_biases);
        match c.kind {
            OptimizerKind::Sgd => {
                for (i, (w, g)) in net.params_and_grads(grads).enumerate() {
                    let decay = decays(i);
                    for (w, &g) in w.iter_mut().zip(g) {
                        let g = if decay { g + wd * *w } else { g };
                        *w -= lr * g;
                    }
                }
            }
            OptimizerKind::Momentum | OptimizerKind::Nesterov => {
                let mu = T::from_f64(c.momentum);
                let nesterov = c.kind == OptimizerKind::Nesterov;
                let bufs = &mut self.state[0];
                for (i, ((w, g), buf)) in
                    net.params_and_grads(grads).zip(bufs.iter_mut()).enumerate()
                {
                    let decay = decays(i);
                    for ((w, &g), v) in w.iter_mut().zip(g).zip(buf.iter_mut()) {
                        let g = if decay { g + wd * *w } else { g };
                        // PyTorch starts the buffer at g; mu * 0 + g is exactly g.
                        *v = mu * *v + g;
                        let d = if nesterov { g + mu * *v } else { *v };
                        *w -= lr * d;
                    }
                }
            }
            OptimizerKind::Adam | OptimizerKind::AdamW => {
                let t = self.steps as f64;
                // Scalars in f64 with libm's pow, as Python computes them.
                let bias_correction1 = 1.0 - c.beta1.powf(t);
                let bias_correction2 = 1.0 - c.beta2.powf(t);
                let step_size = T::from_f64(lr.to_f64() / bias_correction1);
                let bc2_sqrt = T::from_f64(bias_correction2.sqrt());
                let one_minus_beta1 = T::from_f64(1.0 - c.beta1);
                let beta2 = T::from_f64(c.beta2);
                let one_minus_beta2 = T::from_f64(1.0 - c.beta2);
                let eps = T::from_f64(c.eps);
                let decoupled = c.kind == OptimizerKind::AdamW;
                let shrink = T::from_f64(1.0 - lr.to_f64() * c.weight_decay);
                let (ms, vs) = self.state.split_at_mut(1);
                for (i, ((w, g), (m, v))) in net
                    .params_and_grads(grads)
                    .zip(ms[0].iter_mut().zip(vs[0].iter_mut()))
                    .enumerate()
                {
                    let decay = decays(i);
                    for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut())
                    {
                        let g = if decay && decoupled {
                            *w *= shrink;
                            g
                        } else if decay {
                            g + wd * *w
                        } else {
                            g
                        };
                        // m.lerp_(g, 1 - beta1), as PyTorch writes it.
                        *m += one_minus_beta1 * (g - *m);
                        *v = *v * beta2 + one_minus_beta2 * g * g;
                        let denom = v.sqrt() / bc2_sqrt + eps;
                        *w -= step_size * (*m / denom);
                    }
                }
            }
        }
        Ok(())
    }

    /// The state as named tensors, for a checkpoint: `optim.{i}.{buffer}` for tensor i
    /// (in [`Network::params_and_grads`] order) and buffer `momentum_buffer`, or
    /// `exp_avg` and `exp_avg_sq` (PyTorch's names). Save [`Optimizer::steps`] beside it.
    ///
    /// ```
    /// # use backprop::linalg::Matrix;
    /// # use backprop::network::{Activation, Cost, Layer, Network};
    /// use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
    /// # let net = Network { layers: vec![Layer { weights: Matrix::<f64>::zeros(3, 2),
    /// #     biases: vec![0.0; 3], activation: Activation::Relu }], cost: Cost::Quadratic };
    /// let adam = Optimizer::new(OptimizerConfig::new(OptimizerKind::Adam), &net).unwrap();
    /// let names: Vec<String> = adam.state_tensors().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["optim.0.exp_avg", "optim.1.exp_avg", "optim.0.exp_avg_sq", "optim.1.exp_avg_sq"]);
    /// ```
    pub fn state_tensors(&self) -> Vec<(String, &[T])> {
        self.config
            .kind
            .buffers()
            .iter()
            .zip(&self.state)
            .flat_map(|(name, tensors)| {
                tensors
                    .iter()
                    .enumerate()
                    .map(move |(i, t)| (format!("optim.{i}.{name}"), t.as_slice()))
            })
            .collect()
    }

    /// Restores a state saved by [`Optimizer::state_tensors`] and [`Optimizer::steps`]:
    /// `lookup(name)` returns the saved tensor of that name. Afterwards, steps continue
    /// exactly as the saved optimizer's would have.
    ///
    /// # Errors
    /// [`OptimError::MissingState`] or [`OptimError::StateShape`]; the state is unchanged
    /// then.
    pub fn load_state<'a>(
        &mut self,
        steps: u64,
        mut lookup: impl FnMut(&str) -> Option<&'a [T]>,
    ) -> Result<(), OptimError> {
        let mut found = Vec::new();
        for (name, tensors) in self.config.kind.buffers().iter().zip(&self.state) {
            for (i, t) in tensors.iter().enumerate() {
                let key = format!("optim.{i}.{name}");
                let saved = lookup(&key).ok_or_else(|| OptimError::MissingState(key.clone()))?;
                if saved.len() != t.len() {
                    return Err(OptimError::StateShape {
                        name: key,
                        expected: t.len(),
                        found: saved.len(),
                    });
                }
                found.push(saved);
            }
        }
        let mut saved = found.into_iter();
        for tensors in &mut self.state {
            for t in tensors {
                t.copy_from_slice(saved.next().expect("one saved tensor per buffer"));
            }
        }
        self.steps = steps;
        Ok(())
    }
}
