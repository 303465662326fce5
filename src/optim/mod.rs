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
//! An optimizer works on any [`Model`]: it is built from the names and shapes of the
//! parameters ([`Optimizer::from_params`], or [`Optimizer::new`] from a model), keeps its
//! state per parameter **name**, and steps through [`Model::visit_params_mut`]. It knows
//! nothing of layers.
//!
//! Weight decay applies to the biases too by default, as in PyTorch when all parameters
//! are in one group. Nielsen's L2 regularisation decays the weights only (the biases
//! "have little effect"): set [`OptimizerConfig::decay_biases`] to `false` for that, as
//! PyTorch users do with a second parameter group whose `weight_decay` is 0. Which
//! parameters are biases is decided by name and shape ([`crate::model::is_bias`]: a name
//! ending in `bias`, or one dimension).
//!
//! [`Schedule`] changes eta from epoch to epoch (constant, step, cosine).

mod schedule;

pub use schedule::{Schedule, ScheduleError};

use crate::model::{Model, ParamInfo};
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
    type Err = crate::UnknownName;
    fn from_str(s: &str) -> Result<Self, crate::UnknownName> {
        let s = s.trim().to_ascii_lowercase();
        OptimizerKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| crate::UnknownName {
                what: "optimizer",
                given: s.clone(),
                expected: OptimizerKind::ALL.map(|k| k.name()).to_vec(),
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
    /// regularisation of Nielsen's book). A bias is a parameter whose name ends in `bias`
    /// or that has one dimension ([`crate::model::is_bias`]).
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
    /// Parameters an optimizer cannot be built for: a name used twice or empty, or a
    /// shape whose size overflows.
    #[error("parameter {name:?}: {reason}")]
    BadParam {
        /// The parameter's name.
        name: String,
        /// What is wrong.
        reason: &'static str,
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
    /// A model or gradients whose parameters are not named and shaped like those the
    /// optimizer was made for.
    #[error("the model does not fit the optimizer: {reason}")]
    NetworkShape {
        /// The first difference found.
        reason: String,
    },
}

/// One parameter's share of the optimizer: its name and shape, whether weight decay
/// applies to it, and its state buffers (see [`OptimizerKind::buffers`]).
#[derive(Clone, Debug, PartialEq)]
struct Slot<T> {
    info: ParamInfo,
    len: usize,
    decays: bool,
    buffers: Vec<Vec<T>>,
}

/// An optimizer for one model: its settings, its step counter t, and the state of each
/// parameter, allocated once when it is built and keyed by the parameter's name.
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
    /// One slot per parameter, in the model's order (which every step checks by name).
    slots: Vec<Slot<T>>,
}

fn check_config(config: &OptimizerConfig) -> Result<(), OptimError> {
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
    )
}

impl<T: Float> Optimizer<T> {
    /// An optimizer for models with the parameters of `model` (names and shapes), its
    /// state zeroed: [`Optimizer::from_params`] of [`Model::param_infos`].
    ///
    /// # Errors
    /// As for [`Optimizer::from_params`].
    pub fn new<M: Model<T> + ?Sized>(
        config: OptimizerConfig,
        model: &M,
    ) -> Result<Self, OptimError> {
        Self::from_params(config, model.param_infos())
    }

    /// An optimizer for models whose parameters have these names and shapes, in this
    /// order, its state zeroed.
    ///
    /// ```
    /// use backprop::model::ParamInfo;
    /// use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
    /// let p = |name: &str, shape: &[usize]| ParamInfo { name: name.into(), shape: shape.to_vec() };
    /// // An LSTM's parameters, as PyTorch's state_dict names them.
    /// let params = vec![p("0.weight_ih_l0", &[32, 3]), p("0.weight_hh_l0", &[32, 8]),
    ///                   p("0.bias_ih_l0", &[32]), p("0.bias_hh_l0", &[32])];
    /// let adam = Optimizer::<f32>::from_params(OptimizerConfig::new(OptimizerKind::Adam), params)
    ///     .unwrap();
    /// assert_eq!(adam.state_tensors()[0].0, "optim.0.weight_ih_l0.exp_avg");
    /// assert_eq!(adam.state_tensors()[0].1.len(), 96);
    /// ```
    ///
    /// # Errors
    /// [`OptimError::BadParameter`] for momentum outside [0, 1), negative or non-finite
    /// weight decay, betas outside [0, 1), or eps not positive; [`OptimError::BadParam`]
    /// for an empty name, a name used twice, or a shape whose size overflows.
    pub fn from_params(
        config: OptimizerConfig,
        params: Vec<ParamInfo>,
    ) -> Result<Self, OptimError> {
        check_config(&config)?;
        let bad = |p: &ParamInfo, reason| OptimError::BadParam {
            name: p.name.clone(),
            reason,
        };
        let mut names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(OptimError::BadParam {
                name: w[0].into(),
                reason: "named twice; optimizer state is kept by name",
            });
        }
        let mut slots = Vec::with_capacity(params.len());
        for info in params {
            if info.name.is_empty() {
                return Err(bad(&info, "a parameter needs a name"));
            }
            let len = info.len().ok_or_else(|| bad(&info, "its size overflows"))?;
            let decays = config.weight_decay != 0.0 && (config.decay_biases || !info.is_bias());
            let buffers = config
                .kind
                .buffers()
                .iter()
                .map(|_| vec![T::zero(); len])
                .collect();
            slots.push(Slot {
                info,
                len,
                decays,
                buffers,
            });
        }
        Ok(Optimizer {
            config,
            steps: 0,
            slots,
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

    /// Whether a step is plain SGD, w <- w - eta g with no weight decay: the one update a
    /// model may fuse into its backward pass (the post's network adds eta/n Delta^T A to W
    /// as Equation 1 computes it, never storing dC/dW; see
    /// [`crate::network::Network::sgd_train_step`]).
    ///
    /// ```
    /// use backprop::optim::{OptimizerConfig, OptimizerKind, Optimizer};
    /// use backprop::network::{Activation, Cost, Init, Network};
    /// let net = Network::<f64>::new(&[2, 3, 1], &[Activation::Sigmoid; 2], Cost::Quadratic, Init::Uniform, 1).unwrap();
    /// let sgd = OptimizerConfig::new(OptimizerKind::Sgd);
    /// assert!(Optimizer::new(sgd, &net).unwrap().is_plain_sgd());
    /// let l2 = OptimizerConfig { weight_decay: 1e-4, ..sgd };
    /// assert!(!Optimizer::new(l2, &net).unwrap().is_plain_sgd());
    /// ```
    pub fn is_plain_sgd(&self) -> bool {
        self.config.kind == OptimizerKind::Sgd && self.config.weight_decay == 0.0
    }

    /// Counts a plain SGD step that the model made itself, fused into its backward pass
    /// (see [`Optimizer::is_plain_sgd`]), so [`Optimizer::steps`] and checkpoints stay
    /// right. SGD keeps no other state.
    pub fn count_fused_step(&mut self) {
        debug_assert!(self.is_plain_sgd());
        self.steps += 1;
    }

    /// The names and shapes of the parameters this optimizer was made for, in order.
    pub fn params(&self) -> impl Iterator<Item = &ParamInfo> + '_ {
        self.slots.iter().map(|s| &s.info)
    }

    /// Whether `model` has this optimizer's parameters: the same names, in the same order,
    /// with the same number of values. Allocates only to describe a difference.
    pub(crate) fn check_model<M: Model<T> + ?Sized>(&self, model: &M) -> Result<(), OptimError> {
        let mut i = 0;
        let mut diff: Option<String> = None;
        model.visit_params(&mut |p| {
            if diff.is_some() {
                return;
            }
            match self.slots.get(i) {
                None => {
                    diff = Some(format!(
                    "it has more than the {} parameters the optimizer was made for ({} is extra)",
                    self.slots.len(),
                    p.name
                ))
                }
                Some(s) if s.info.name != p.name || s.len != p.values.len() => {
                    diff = Some(format!(
                        "parameter {i} is {} of {} values, the optimizer has {} of {} values",
                        p.name,
                        p.values.len(),
                        s.info.name,
                        s.len
                    ))
                }
                Some(_) => {}
            }
            i += 1;
        });
        if diff.is_none() && i != self.slots.len() {
            diff = Some(format!(
                "it has {i} parameters, the optimizer was made for {}",
                self.slots.len()
            ));
        }
        match diff {
            None => Ok(()),
            Some(reason) => Err(OptimError::NetworkShape { reason }),
        }
    }

    /// One update of every parameter of `model` from its gradient in `grads`, with
    /// learning rate `lr` (eta). Allocates nothing.
    ///
    /// # Errors
    /// [`OptimError::NetworkShape`] if `model` does not have the parameters (names, order,
    /// sizes) the optimizer was made for, or `grads` is not shaped like `model`; nothing is
    /// changed then.
    pub fn step<M: Model<T> + ?Sized>(
        &mut self,
        model: &mut M,
        grads: &M::Grads,
        lr: T,
    ) -> Result<(), OptimError> {
        self.check_model(model)?;
        let c = self.config;
        let t = self.steps + 1;
        let wd = T::from_f64(c.weight_decay);
        let mut slots = self.slots.iter_mut();
        let visited = match c.kind {
            OptimizerKind::Sgd => model.visit_params_mut(grads, &mut |p| {
                let Some(slot) = slots.next() else { return };
                let decay = slot.decays;
                for (w, &g) in p.values.iter_mut().zip(p.grad) {
                    let g = if decay { g + wd * *w } else { g };
                    *w -= lr * g;
                }
            }),
            OptimizerKind::Momentum | OptimizerKind::Nesterov => {
                let mu = T::from_f64(c.momentum);
                let nesterov = c.kind == OptimizerKind::Nesterov;
                model.visit_params_mut(grads, &mut |p| {
                    let Some(slot) = slots.next() else { return };
                    let decay = slot.decays;
                    let buf = &mut slot.buffers[0];
                    for ((w, &g), v) in p.values.iter_mut().zip(p.grad).zip(buf.iter_mut()) {
                        let g = if decay { g + wd * *w } else { g };
                        // PyTorch starts the buffer at g; mu * 0 + g is exactly g.
                        *v = mu * *v + g;
                        let d = if nesterov { g + mu * *v } else { *v };
                        *w -= lr * d;
                    }
                })
            }
            OptimizerKind::Adam | OptimizerKind::AdamW => {
                let t = t as f64;
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
                model.visit_params_mut(grads, &mut |p| {
                    let Some(slot) = slots.next() else { return };
                    let decay = slot.decays;
                    let (ms, vs) = slot.buffers.split_at_mut(1);
                    let (m, v) = (&mut ms[0], &mut vs[0]);
                    for (((w, &g), m), v) in p
                        .values
                        .iter_mut()
                        .zip(p.grad)
                        .zip(m.iter_mut())
                        .zip(v.iter_mut())
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
                })
            }
        };
        visited.map_err(|e| OptimError::NetworkShape {
            reason: e.to_string(),
        })?;
        self.steps = t;
        Ok(())
    }

    /// The state as named tensors, for a checkpoint: `optim.{name}.{buffer}` for the
    /// parameter `name` and buffer `momentum_buffer`, or `exp_avg` and `exp_avg_sq`
    /// (PyTorch's names), each buffer for every parameter in order. Save
    /// [`Optimizer::steps`] beside it.
    ///
    /// ```
    /// # use backprop::linalg::Matrix;
    /// # use backprop::network::{Activation, Cost, Layer, Network};
    /// use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
    /// # let net = Network { layers: vec![Layer { weights: Matrix::<f64>::zeros(3, 2),
    /// #     biases: vec![0.0; 3], activation: Activation::Relu }], cost: Cost::Quadratic };
    /// let adam = Optimizer::new(OptimizerConfig::new(OptimizerKind::Adam), &net).unwrap();
    /// let names: Vec<String> = adam.state_tensors().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["optim.layers.0.weight.exp_avg", "optim.layers.0.bias.exp_avg",
    ///                    "optim.layers.0.weight.exp_avg_sq", "optim.layers.0.bias.exp_avg_sq"]);
    /// ```
    pub fn state_tensors(&self) -> Vec<(String, &[T])> {
        self.config
            .kind
            .buffers()
            .iter()
            .enumerate()
            .flat_map(|(b, buffer)| {
                self.slots
                    .iter()
                    .map(move |s| (state_name(&s.info.name, buffer), s.buffers[b].as_slice()))
            })
            .collect()
    }

    /// Restores a state saved by [`Optimizer::state_tensors`] and [`Optimizer::steps`]:
    /// `lookup(name)` returns the saved tensor of that name. Afterwards, steps continue
    /// exactly as the saved optimizer's would have.
    ///
    /// State saved before it was keyed by name, as `optim.{i}.{buffer}` for the i-th
    /// parameter, loads too: the positional names are used when none of the named ones
    /// is there and some positional one is.
    ///
    /// # Errors
    /// [`OptimError::MissingState`] (naming the tensor as the saved state would name it)
    /// or [`OptimError::StateShape`]; the state is unchanged then.
    pub fn load_state<'a>(
        &mut self,
        steps: u64,
        mut lookup: impl FnMut(&str) -> Option<&'a [T]>,
    ) -> Result<(), OptimError> {
        let buffers = self.config.kind.buffers();
        let named = |i: usize, buffer: &str| state_name(&self.slots[i].info.name, buffer);
        let positional = |i: usize, buffer: &str| format!("optim.{i}.{buffer}");
        let any_there = |key: &dyn Fn(usize, &str) -> String,
                         lookup: &mut dyn FnMut(&str) -> Option<&'a [T]>| {
            buffers
                .iter()
                .any(|b| (0..self.slots.len()).any(|i| lookup(&key(i, b)).is_some()))
        };
        // A file from before names has none of them (and a parameter named like a
        // position, `0`, finds its own tensor either way).
        let use_positional = !any_there(&named, &mut lookup) && any_there(&positional, &mut lookup);
        let key = |i: usize, buffer: &str| {
            if use_positional {
                positional(i, buffer)
            } else {
                named(i, buffer)
            }
        };
        let mut found = Vec::with_capacity(buffers.len() * self.slots.len());
        for (b, buffer) in buffers.iter().enumerate() {
            for (i, slot) in self.slots.iter().enumerate() {
                let name = key(i, buffer);
                let saved = lookup(&name).ok_or_else(|| OptimError::MissingState(name.clone()))?;
                if saved.len() != slot.len {
                    return Err(OptimError::StateShape {
                        name,
                        expected: slot.len,
                        found: saved.len(),
                    });
                }
                found.push((b, i, saved));
            }
        }
        for (b, i, saved) in found {
            self.slots[i].buffers[b].copy_from_slice(saved);
        }
        self.steps = steps;
        Ok(())
    }
}

/// The checkpoint name of buffer `buffer` of parameter `param`.
fn state_name(param: &str, buffer: &str) -> String {
    format!("optim.{param}.{buffer}")
}
