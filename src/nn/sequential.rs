//! A model built from an [`Arch`]: its parameters, a forward pass that keeps what the
//! backward needs, and the backward pass, layer by layer as the post's four equations go.

use super::layers::{self, grow, At, Sinks, State};
use super::{Arch, ArchError, Layer, ParamInit, ParamSpec};
use crate::linalg::{matmul, MatRef};
use crate::network::{Activation, Cost};
use crate::tensor::kernels::KernelError;
use crate::Float;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use std::ops::Range;

/// A batch, its targets or a gradient that does not fit the model.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NnError {
    /// A batch of no examples.
    #[error("batch: no examples")]
    EmptyBatch,
    /// Inputs, targets or an output gradient of the wrong length.
    #[error("{what}: expected {expected} values, got {given}")]
    Length {
        /// `"inputs"`, `"targets"` or `"output gradient"`.
        what: &'static str,
        /// What the model needs for this batch.
        expected: usize,
        /// What it was given.
        given: usize,
    },
    /// A batch too large to address.
    #[error("batch: {n} examples of {per} values overflow")]
    Overflow {
        /// Examples.
        n: usize,
        /// Values per example.
        per: usize,
    },
    /// A token id that is not a whole number in `[0, num)`.
    #[error("inputs: value {index} ({value}) is not a token id from 0 to {}", num - 1)]
    TokenId {
        /// Its position in the inputs.
        index: usize,
        /// The value.
        value: f64,
        /// The vocabulary size.
        num: usize,
    },
    /// A class index that is not a whole number in `[0, classes)`, or a target that is
    /// not finite.
    #[error("targets: value {index} ({value}) is not {expected}")]
    Target {
        /// Its position in the targets.
        index: usize,
        /// The value.
        value: f64,
        /// What it should be.
        expected: String,
    },
    /// A backward with no forward before it.
    #[error("backward: no forward pass to go back through")]
    NoForward,
    /// A kernel refused the batch's shape.
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// What a forward pass leaves for the backward, reused from batch to batch: every layer's
/// output a^l (a^0 the input), each layer's own saved state, and two gradient buffers.
#[derive(Debug)]
pub struct Workspace<T> {
    /// Examples in the last forward (0: none yet).
    n: usize,
    /// a^0 (the input), a^1, ..., a^L.
    a: Vec<Vec<T>>,
    states: Vec<State<T>>,
    /// dJ/da of the layer being passed through, and the one below it. They only grow
    /// (the live part is a prefix): sizes go up and down through the layers, and a
    /// `Vec::resize` back up zero-filled up to a conv layer's output each time.
    delta: [Vec<T>; 2],
    /// C_n of each example of the last loss.
    losses: Vec<f64>,
}

impl<T: Float> Workspace<T> {
    /// The output a^l of layer l - 1 in the last forward (l = 0: the input), n examples;
    /// empty for a ReLU followed by `MaxPool2d(2)`, which the pool applies in one pass, and
    /// for an `Embedding` followed by an RNN or LSTM, which looks up its table itself.
    pub fn a(&self, l: usize) -> &[T] {
        &self.a[l]
    }

    /// C_n for each example of the last [`Sequential::loss_and_grad`] (not divided by n).
    pub fn losses(&self) -> &[f64] {
        &self.losses
    }
}

/// One example's gradients, by parameter name, in [`Sequential::params`] order.
pub type NamedGrads = Vec<(String, Vec<f64>)>;

/// A model made of an [`Arch`]'s layers, with its parameters and their gradients.
///
/// The forward pass runs the layers in order, keeping every a^l; the backward pass starts
/// from dJ/da^L (for a softmax output with the log-likelihood cost, from δ = a − y at the
/// softmax's input, as the post's Equation 4 does) and goes down layer by layer, each
/// adding its parameters' gradients and passing dJ/d(its input) below.
///
/// Parameters are PyTorch's (names, layouts, default initialisation), drawn in f64 from a
/// ChaCha8 stream seeded with `seed`, so a model is reproducible from its arch and seed.
///
/// ```
/// use backprop::network::Cost;
/// use backprop::nn::{Arch, Sequential};
/// use rand::{Rng, SeedableRng};
/// // LeNet-5 for 28x28 digits, as PyTorch writes it.
/// let arch: Arch = "Conv2d(1, 6, 5, padding=2), ReLU(), MaxPool2d(2), Conv2d(6, 16, 5), \
///     ReLU(), MaxPool2d(2), Flatten(), Linear(400, 120), ReLU(), Linear(120, 84), ReLU(), \
///     Linear(84, 10), Softmax(dim=-1)".parse().unwrap();
/// let mut net = Sequential::<f32>::new(&arch, &[1, 28, 28], 7).unwrap();
/// assert_eq!(net.num_params(), 61_706);
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
/// let x: Vec<f32> = (0..2 * 28 * 28).map(|_| rng.gen()).collect();
/// let j = net.loss_and_grad(&x, &[3.0, 8.0], 2, Cost::LogLikelihood).unwrap();
/// // Ten nearly equal classes at the start: J is close to ln 10.
/// assert!((j - 10f32.ln()).abs() < 0.5, "{j}");
/// let (name, shape, g) = net.grads().next().unwrap();
/// assert_eq!((name, shape), ("0.weight", &[6, 1, 5, 5][..]));
/// assert!(g.iter().any(|&v| v != 0.0));
/// ```
#[derive(Debug)]
pub struct Sequential<T> {
    arch: Arch,
    /// One example's shape before each layer and after the last.
    shapes: Vec<Vec<usize>>,
    specs: Vec<ParamSpec>,
    values: Vec<Vec<T>>,
    grads: Vec<Vec<T>>,
    /// Which of `specs` belong to each layer.
    owned: Vec<Range<usize>>,
    ws: Workspace<T>,
    /// The dropout masks' stream.
    rng: ChaCha8Rng,
}

/// Whether layer `i` is a ReLU that the next layer, a `MaxPool2d(2)`, applies itself: one
/// pass over the data each way instead of three (see
/// [`relu_max_pool2d_forward`](crate::tensor::kernels::relu_max_pool2d_forward)), with the
/// same numbers. That ReLU's output is then not kept.
fn pooled_relu(layers: &[Layer], i: usize) -> bool {
    matches!(layers.get(i), Some(Layer::Relu))
        && matches!(
            layers.get(i + 1),
            Some(Layer::MaxPool2d {
                kernel: (2, 2),
                stride: (2, 2)
            })
        )
}

/// Whether layer `i` is an `Embedding` that the next layer, an RNN or LSTM, looks up
/// itself (see [`SequenceInput::Tokens`](crate::tensor::kernels::SequenceInput)): the
/// input products of all positions come from one V-row table instead of a GEMM over every
/// position, each way. That Embedding's output is then not kept.
fn embedded_recurrent(layers: &[Layer], i: usize) -> bool {
    matches!(layers.get(i), Some(Layer::Embedding { .. }))
        && matches!(
            layers.get(i + 1),
            Some(Layer::Rnn { .. } | Layer::Lstm { .. })
        )
}

/// The parameters layer `i` reads: its own, or for a recurrent layer that looks up the
/// Embedding below it (`embedded`), the Embedding's table and then its own (the ranges are
/// adjacent).
fn params_of_layer(owned: &[Range<usize>], i: usize, embedded: bool) -> Range<usize> {
    if embedded {
        owned[i - 1].start..owned[i].end
    } else {
        owned[i].clone()
    }
}

/// Where the backward starts: dJ/da^L, or (softmax + log-likelihood, sigmoid +
/// cross-entropy) δ at the last layer's input, which skips that layer.
fn fused(last: &Layer, cost: Cost) -> bool {
    matches!(
        (last, cost),
        (Layer::Softmax, Cost::LogLikelihood) | (Layer::Sigmoid, Cost::CrossEntropy)
    )
}

impl<T: Float> Sequential<T> {
    /// Builds the model for examples of `input_shape` (without the batch axis: `[C, H, W]`,
    /// `[T]` token ids, `[T, F]`, `[F]`), drawing every parameter as PyTorch's
    /// `reset_parameters` would (U(-1/√fan_in, 1/√fan_in), N(0, 1) for embeddings).
    ///
    /// # Errors
    /// [`ArchError::Shape`] for a layer that does not fit what comes before it, an input
    /// shape with a zero size, or a model too large to count.
    pub fn new(arch: &Arch, input_shape: &[usize], seed: u64) -> Result<Self, ArchError> {
        let shape_error = |index: usize, expected: &str| ArchError::Shape {
            index,
            layer: arch.layers()[index].to_string(),
            expected: expected.to_string(),
            given: format!("{input_shape:?}"),
        };
        if input_shape.is_empty() || input_shape.contains(&0) {
            return Err(shape_error(0, "an input shape of positive sizes"));
        }
        let shapes = arch.shapes(input_shape)?;
        for (i, s) in shapes.iter().enumerate().skip(1) {
            if s.iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .is_none()
            {
                return Err(shape_error(i - 1, "an output small enough to count"));
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let specs = arch.params();
        // A layer's parameters are named "{i}.…" and come in layer order.
        let owned = (0..arch.layers().len())
            .map(|i| {
                let prefix = format!("{i}.");
                let start = specs.iter().position(|p| p.name.starts_with(&prefix));
                let start =
                    start.unwrap_or_else(|| specs.iter().take_while(|p| layer_of(p) < i).count());
                let count = specs[start..]
                    .iter()
                    .take_while(|p| p.name.starts_with(&prefix))
                    .count();
                start..start + count
            })
            .collect();
        let mut values = Vec::with_capacity(specs.len());
        for spec in &specs {
            let len = spec
                .shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .filter(|&l| l <= isize::MAX as usize / 8)
                .ok_or_else(|| {
                    shape_error(layer_of(spec), "parameters small enough to allocate")
                })?;
            let v: Vec<T> = match spec.init {
                ParamInit::Uniform(bound) => (0..len)
                    .map(|_| T::from_f64(rng.gen_range(-bound..bound)))
                    .collect(),
                ParamInit::Normal => (0..len)
                    .map(|_| {
                        let v: f64 = StandardNormal.sample(&mut rng);
                        T::from_f64(v)
                    })
                    .collect(),
            };
            values.push(v);
        }
        let grads = values.iter().map(|v| vec![T::zero(); v.len()]).collect();
        let ws = Workspace {
            n: 0,
            a: vec![Vec::new(); shapes.len()],
            states: arch.layers().iter().map(State::for_layer).collect(),
            delta: [Vec::new(), Vec::new()],
            losses: Vec::new(),
        };
        Ok(Sequential {
            arch: arch.clone(),
            shapes,
            specs,
            values,
            grads,
            owned,
            ws,
            rng,
        })
    }

    /// The arch the model was built from.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// One example's shape before each layer and after the last (`layers + 1` shapes).
    pub fn shapes(&self) -> &[Vec<usize>] {
        &self.shapes
    }

    /// The number of parameters (weights and biases).
    pub fn num_params(&self) -> usize {
        self.values.iter().map(Vec::len).sum()
    }

    /// Every parameter: name (`0.weight`, `2.bias_hh_l1`, ...), PyTorch shape, values.
    pub fn params(&self) -> impl Iterator<Item = (&str, &[usize], &[T])> + '_ {
        self.specs
            .iter()
            .zip(&self.values)
            .map(|(s, v)| (s.name.as_str(), s.shape.as_slice(), v.as_slice()))
    }

    /// Every parameter, to change in place.
    pub fn params_mut(&mut self) -> impl Iterator<Item = (&str, &[usize], &mut [T])> + '_ {
        self.specs
            .iter()
            .zip(&mut self.values)
            .map(|(s, v)| (s.name.as_str(), s.shape.as_slice(), v.as_mut_slice()))
    }

    /// The gradient of every parameter, by the same names, as the last backward left it.
    pub fn grads(&self) -> impl Iterator<Item = (&str, &[usize], &[T])> + '_ {
        self.specs
            .iter()
            .zip(&self.grads)
            .map(|(s, v)| (s.name.as_str(), s.shape.as_slice(), v.as_slice()))
    }

    /// Every gradient by the same names, to overwrite: with gradients combined elsewhere,
    /// as data-parallel training combines the block sums of several processes.
    ///
    /// ```
    /// use backprop::nn::{Arch, Sequential};
    /// let arch: Arch = "Linear(2, 1)".parse().unwrap();
    /// let mut net = Sequential::<f64>::new(&arch, &[2], 1).unwrap();
    /// for (_, _, g) in net.grads_mut() {
    ///     g.fill(0.5);
    /// }
    /// assert_eq!(net.grad("0.bias").unwrap(), [0.5]);
    /// ```
    pub fn grads_mut(&mut self) -> impl Iterator<Item = (&str, &[usize], &mut [T])> + '_ {
        self.specs
            .iter()
            .zip(&mut self.grads)
            .map(|(s, v)| (s.name.as_str(), s.shape.as_slice(), v.as_mut_slice()))
    }

    /// Each parameter with its gradient, for an optimizer's step.
    pub fn params_and_grads_mut(&mut self) -> impl Iterator<Item = (&str, &mut [T], &[T])> + '_ {
        self.specs
            .iter()
            .zip(self.values.iter_mut().zip(&self.grads))
            .map(|(s, (v, g))| (s.name.as_str(), v.as_mut_slice(), g.as_slice()))
    }

    /// The values of the parameter called `name` (`"0.weight"`, ...), if there is one.
    ///
    /// ```
    /// use backprop::nn::{Arch, Sequential};
    /// let arch: Arch = "Linear(3, 2), ReLU(), Linear(2, 1, bias=False)".parse().unwrap();
    /// let mut net = Sequential::<f64>::new(&arch, &[3], 1).unwrap();
    /// assert_eq!(net.param("0.weight").unwrap().len(), 6);
    /// assert!(net.param("2.bias").is_none());
    /// net.param_mut("2.weight").unwrap().copy_from_slice(&[0.5, -0.5]);
    /// assert_eq!(net.param("2.weight").unwrap(), [0.5, -0.5]);
    /// ```
    pub fn param(&self, name: &str) -> Option<&[T]> {
        let i = self.specs.iter().position(|s| s.name == name)?;
        Some(&self.values[i])
    }

    /// The values of the parameter called `name`, to change in place.
    pub fn param_mut(&mut self, name: &str) -> Option<&mut [T]> {
        let i = self.specs.iter().position(|s| s.name == name)?;
        Some(&mut self.values[i])
    }

    /// The gradient of the parameter called `name`.
    pub fn grad(&self, name: &str) -> Option<&[T]> {
        let i = self.specs.iter().position(|s| s.name == name)?;
        Some(&self.grads[i])
    }

    /// Sets every gradient to zero.
    pub fn zero_grads(&mut self) {
        self.grads.iter_mut().for_each(|g| g.fill(T::zero()));
    }

    /// The buffers of the last forward and loss.
    pub fn workspace(&self) -> &Workspace<T> {
        &self.ws
    }

    /// Restarts the dropout masks' random stream (the next training forward draws its masks
    /// from `seed`): what makes a pass with dropout repeatable, e.g. for a gradient check.
    pub fn reseed_dropout(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    fn len_of(&self, shape: usize, n: usize) -> Result<usize, NnError> {
        let per: usize = self.shapes[shape].iter().product();
        n.checked_mul(per).ok_or(NnError::Overflow { n, per })
    }

    /// Runs the layers on `n` examples (`x` row-major, n × the input shape; token ids as
    /// values for an `Embedding` first layer) and returns a^L, n × the output shape.
    /// `train` applies dropout; otherwise dropout is the identity. Keeps what
    /// [`Sequential::backward`] needs.
    ///
    /// # Errors
    /// [`NnError::EmptyBatch`], [`NnError::Length`], [`NnError::TokenId`] for an id out of
    /// the vocabulary, [`NnError::Overflow`].
    pub fn forward(&mut self, x: &[T], n: usize, train: bool) -> Result<&[T], NnError> {
        if n == 0 {
            return Err(NnError::EmptyBatch);
        }
        let expected = self.len_of(0, n)?;
        if x.len() != expected {
            return Err(NnError::Length {
                what: "inputs",
                expected,
                given: x.len(),
            });
        }
        if let Layer::Embedding { num, .. } = self.arch.layers()[0] {
            if let Some((index, &v)) = x.iter().enumerate().find(|(_, &v)| {
                !(v >= T::zero() && v.fract() == T::zero() && v.to_f64() < num as f64)
            }) {
                return Err(NnError::TokenId {
                    index,
                    value: v.to_f64(),
                    num,
                });
            }
        }
        for l in 1..self.shapes.len() {
            self.len_of(l, n)?;
        }
        let Sequential {
            arch,
            shapes,
            values,
            owned,
            ws,
            rng,
            ..
        } = self;
        ws.n = 0;
        resize(&mut ws.a[0], x.len());
        ws.a[0].copy_from_slice(x);
        for (i, layer) in arch.layers().iter().enumerate() {
            if pooled_relu(arch.layers(), i) || embedded_recurrent(arch.layers(), i) {
                // The layer above applies it; its output is not kept.
                resize(&mut ws.a[i + 1], 0);
                continue;
            }
            let out_len = n * shapes[i + 1].iter().product::<usize>();
            let (below, above) = ws.a.split_at_mut(i + 1);
            resize(&mut above[0], out_len);
            let relu_first = i > 0 && pooled_relu(arch.layers(), i - 1);
            let embedded = i > 0 && embedded_recurrent(arch.layers(), i - 1);
            let at = At {
                layer,
                input: &shapes[i],
                output: &shapes[i + 1],
                n,
                relu_first,
                embedded,
            };
            let own = params_of_layer(owned, i, embedded);
            layers::forward(
                &at,
                &values[own],
                &below[if relu_first || embedded { i - 1 } else { i }],
                &mut above[0],
                &mut ws.states[i],
                train,
                rng,
            )?;
        }
        ws.n = n;
        Ok(&self.ws.a[self.shapes.len() - 1])
    }

    /// [`Sequential::forward`] in evaluation mode (no dropout), the outputs copied out.
    ///
    /// # Errors
    /// As [`Sequential::forward`].
    pub fn predict(&mut self, x: &[T], n: usize) -> Result<Vec<T>, NnError> {
        self.forward(x, n, false).map(<[T]>::to_vec)
    }

    /// The backward pass of the last forward, from `dout` = dJ/da^L (n × the output
    /// shape): adds every parameter's gradient into [`Sequential::grads`] and returns
    /// dJ/dx for the input (empty for an `Embedding` first layer: ids have no gradient).
    ///
    /// # Errors
    /// [`NnError::NoForward`], or [`NnError::Length`] for `dout` of the wrong length.
    pub fn backward(&mut self, dout: &[T]) -> Result<&[T], NnError> {
        let n = self.ws.n;
        if n == 0 {
            return Err(NnError::NoForward);
        }
        let top = self.shapes.len() - 1;
        let expected = self.ws.a[top].len();
        if dout.len() != expected {
            return Err(NnError::Length {
                what: "output gradient",
                expected,
                given: dout.len(),
            });
        }
        grow(&mut self.ws.delta[0], expected);
        self.ws.delta[0][..expected].copy_from_slice(dout);
        let len = self.backward_from(top, None, true);
        Ok(&self.ws.delta[0][..len])
    }

    /// Goes down from layer `top - 1` to layer 0 with dJ/da^top in `delta[0]`; leaves the
    /// input's gradient in `delta[0]` (when `input_grad`, and the first layer has one) and
    /// returns its length (0 without one).
    fn backward_from(
        &mut self,
        top: usize,
        mut per_example: Option<&mut PerExample<T>>,
        input_grad: bool,
    ) -> usize {
        let Sequential {
            arch,
            shapes,
            values,
            grads,
            owned,
            ws,
            ..
        } = self;
        let n = ws.n;
        let mut out_len = ws.a[top].len();
        let mut i = top;
        while i > 0 {
            i -= 1;
            let layer = &arch.layers()[i];
            // A pool that applied the ReLU before it goes back through both; so does a
            // recurrent layer through the Embedding it read, but for per-example gradients,
            // which need the Embedding's own backward.
            let relu_first = i > 0 && pooled_relu(arch.layers(), i - 1);
            let embedded =
                i > 0 && embedded_recurrent(arch.layers(), i - 1) && per_example.is_none();
            let input = if relu_first || embedded { i - 1 } else { i };
            let at = At {
                layer,
                input: &shapes[i],
                output: &shapes[i + 1],
                n,
                relu_first,
                embedded,
            };
            let own = params_of_layer(owned, i, embedded);
            let want_dx =
                !matches!(layer, Layer::Embedding { .. }) && !embedded && (input > 0 || input_grad);
            let [dy, dx] = &mut ws.delta;
            // (From the shape: a skipped layer's output is empty.)
            let in_len = if want_dx {
                n * shapes[input].iter().product::<usize>()
            } else {
                0
            };
            grow(dx, in_len);
            let (dy, dx) = (&dy[..out_len], &mut dx[..in_len]);
            // A Linear layer applied once per example: its W_i = δ_i a_iᵀ is never built.
            let ghost = per_example.as_ref().is_some_and(|p| p.ghost)
                && matches!(layer, Layer::Linear { .. })
                && shapes[i].len() == 1;
            if ghost {
                let p = per_example
                    .as_deref_mut()
                    .expect("ghost implies per-example");
                p.keep_linear_delta(i, dy, &ws.a[i], owned[i].len() == 2, n);
            }
            let sinks = Sinks {
                grads: &mut grads[own.clone()],
                per_example: match per_example.as_deref_mut() {
                    Some(p) if !ghost => Some(&mut p.grads[owned[i].clone()]),
                    _ => None,
                },
            };
            layers::backward(
                &at,
                &values[own],
                &ws.a[input],
                &ws.a[i + 1],
                dy,
                want_dx.then_some(dx),
                sinks,
                &mut ws.states[i],
            );
            ws.delta.swap(0, 1);
            out_len = in_len;
            i = input;
        }
        out_len
    }

    /// How many values of targets a batch of `n` needs: class indices (log-likelihood) or
    /// one value per output.
    fn targets_len(&self, n: usize, cost: Cost) -> usize {
        let out = &self.shapes[self.shapes.len() - 1];
        let per: usize = out.iter().product();
        match cost {
            Cost::LogLikelihood => n * (per / out[out.len() - 1]),
            _ => n * per,
        }
    }

    /// After a forward: C_n of each example into `ws.losses`, the start of the backward
    /// into `delta[0]` (dC_n/d(a) times `scale`), and the layer the backward starts at.
    fn output_delta(&mut self, targets: &[T], cost: Cost, scale: T) -> Result<usize, NnError> {
        let n = self.ws.n;
        let expected = self.targets_len(n, cost);
        if targets.len() != expected {
            return Err(NnError::Length {
                what: "targets",
                expected,
                given: targets.len(),
            });
        }
        let out = &self.shapes[self.shapes.len() - 1];
        let k = out[out.len() - 1];
        for (index, &v) in targets.iter().enumerate() {
            let ok = match cost {
                Cost::LogLikelihood => {
                    v >= T::zero() && v.fract() == T::zero() && v.to_f64() < k as f64
                }
                _ => v.is_finite(),
            };
            if !ok {
                return Err(NnError::Target {
                    index,
                    value: v.to_f64(),
                    expected: match cost {
                        Cost::LogLikelihood => format!("a class from 0 to {}", k - 1),
                        _ => "a finite number".to_string(),
                    },
                });
            }
        }
        let top = self.shapes.len() - 1;
        let last = &self.arch.layers()[top - 1];
        let fuse = fused(last, cost);
        let start = if fuse { top - 1 } else { top };
        let ws = &mut self.ws;
        let positions = ws.a[top].len() / (n * k);
        let (a, z) = (&ws.a[top], &ws.a[top - 1]);
        let delta = &mut ws.delta[0];
        grow(delta, a.len());
        // Each position's cost is averaged over the example's positions (PyTorch's mean
        // over N·T for sequences); δ carries the same 1/P.
        let per_position = scale / T::from_f64(positions as f64);
        // Example e's C_e, and its δ into `delta` (its P K values).
        let example = |e: usize, delta: &mut [T]| -> f64 {
            let mut c = 0.0;
            for (p, d) in delta.chunks_exact_mut(k).enumerate() {
                let r = r_of(e, p, positions, k);
                // z, the last layer's input, is read only when that layer is fused (and
                // then has the output's shape).
                let z = if fuse { &z[r.clone()] } else { &[][..] };
                let a = &a[r.clone()];
                let class = || targets[e * positions + p].to_f64() as usize;
                match (cost, fuse) {
                    (Cost::LogLikelihood, true) => {
                        // C = -ln softmax(z)_y = ln Σ e^z - z_y; δ = a - y (Equation 4).
                        let y = class();
                        let max = z.iter().fold(T::neg_infinity(), |m, &z| m.max(z));
                        let lse = max + z.iter().map(|&z| (z - max).exp()).sum::<T>().ln();
                        c += (lse - z[y]).to_f64();
                        d.copy_from_slice(a);
                        d[y] -= T::one();
                    }
                    (Cost::LogLikelihood, false) => {
                        // C = -ln a_y; dC/da_y = -1/a_y.
                        let y = class();
                        c -= a[y].to_f64().ln();
                        d.fill(T::zero());
                        d[y] = -T::one() / a[y];
                    }
                    (Cost::CrossEntropy, true) => {
                        // C = Σ softplus(z) - y z, δ = a - y (Equation 4 with sigmoid).
                        let y = &targets[r];
                        c += Cost::CrossEntropy
                            .cost_from_z(Activation::Sigmoid, z, a, y)
                            .to_f64();
                        d.iter_mut()
                            .zip(a)
                            .zip(y)
                            .for_each(|((d, &a), &y)| *d = a - y);
                    }
                    (_, _) => {
                        // ½ Σ (a - y)² or -Σ y ln a + (1 - y) ln(1 - a), with dC/da beside.
                        let y = &targets[r];
                        c += cost.cost(a, y).to_f64();
                        cost.dcost_da(a, y, d);
                    }
                }
                d.iter_mut().for_each(|d| *d *= per_position);
            }
            c / positions as f64
        };
        ws.losses.resize(n, 0.0);
        let (delta, losses) = (&mut delta[..a.len()], &mut ws.losses);
        // Examples are independent: any split gives the same bits. Split only when large
        // (a sequence model's N T positions), where the handing over costs little.
        if a.len() >= 2 * layers::ELEMENTWISE_CHUNK {
            (delta
                .par_chunks_mut(positions * k)
                .zip(losses.par_iter_mut()))
            .enumerate()
            .for_each(|(e, (d, c))| *c = example(e, d));
        } else {
            (delta.chunks_mut(positions * k).zip(losses.iter_mut()))
                .enumerate()
                .for_each(|(e, (d, c))| *c = example(e, d));
        }
        Ok(start)
    }

    /// J = (1/n) Σ C_n for a batch, and every parameter's gradient dJ/dθ in
    /// [`Sequential::grads`] (overwritten). A training pass: dropout is applied.
    ///
    /// `targets`: for [`Cost::LogLikelihood`], one class index per output position (n for
    /// an output of K values, n·T for a sequence of T outputs); otherwise one value per
    /// output (n × the output shape). For sequence outputs, C_n is the mean over the T
    /// positions. A final `Softmax` with the log-likelihood cost (or `Sigmoid` with
    /// cross-entropy) is fused: the backward starts from δ = a − y at its input.
    ///
    /// # Errors
    /// As [`Sequential::forward`], and [`NnError::Length`] or [`NnError::Target`] for the
    /// targets.
    pub fn loss_and_grad(
        &mut self,
        x: &[T],
        targets: &[T],
        n: usize,
        cost: Cost,
    ) -> Result<T, NnError> {
        self.forward(x, n, true)?;
        let start = self.output_delta(targets, cost, T::one() / T::from_f64(n as f64))?;
        self.zero_grads();
        self.backward_from(start, None, false);
        let j = self.ws.losses.iter().sum::<f64>() / n as f64;
        Ok(T::from_f64(j))
    }

    /// J = (1/n) Σ C_n without gradients, in evaluation mode (no dropout).
    ///
    /// # Errors
    /// As [`Sequential::loss_and_grad`].
    pub fn loss(&mut self, x: &[T], targets: &[T], n: usize, cost: Cost) -> Result<T, NnError> {
        self.forward(x, n, false)?;
        self.output_delta(targets, cost, T::one())?;
        Ok(T::from_f64(self.ws.losses.iter().sum::<f64>() / n as f64))
    }

    /// Each example's cost C_n (not divided by n) and gradient ∇C_n, by parameter name.
    /// Their mean is what [`Sequential::loss_and_grad`] gives.
    ///
    /// In one batched pass: `Linear` writes the post's W_n = Σ δ_n a_nᵀ per example,
    /// `Conv2d` the kernels' per-example weight gradients, `Embedding` scatters each
    /// example's rows apart, and an `RNN` or `LSTM` sums each sequence's δ_t aᵀ over its
    /// steps from the δ its backward through time kept. Leaves [`Sequential::grads`]
    /// zeroed.
    ///
    /// # Errors
    /// As [`Sequential::loss_and_grad`].
    pub fn per_example_gradients(
        &mut self,
        x: &[T],
        targets: &[T],
        n: usize,
        cost: Cost,
    ) -> Result<(Vec<f64>, Vec<NamedGrads>), NnError> {
        let named = |specs: &[ParamSpec], values: &mut dyn Iterator<Item = &[T]>| -> NamedGrads {
            specs
                .iter()
                .zip(values)
                .map(|(s, g)| {
                    (
                        s.name.clone(),
                        g.iter().map(|&v| Float::to_f64(v)).collect(),
                    )
                })
                .collect()
        };
        let (mut losses, mut out) = (Vec::with_capacity(n), Vec::with_capacity(n));
        self.forward(x, n, true)?;
        let start = self.output_delta(targets, cost, T::one())?;
        let mut all = PerExample {
            grads: self
                .values
                .iter()
                .map(|v| vec![T::zero(); n * v.len()])
                .collect(),
            ..PerExample::new(false)
        };
        self.backward_from(start, Some(&mut all), false);
        let pe = all.grads;
        losses.extend_from_slice(&self.ws.losses);
        for e in 0..n {
            out.push(named(
                &self.specs,
                &mut pe.iter().map(|p| {
                    let len = p.len() / n;
                    &p[e * len..(e + 1) * len]
                }),
            ));
        }
        self.zero_grads();
        Ok((losses, out))
    }

    /// Buffers for [`Sequential::per_example_norms`] and [`Sequential::clipped_sum`]: empty
    /// until the first batch, then grown to the largest batch and reused.
    pub fn per_example_buffers(&self) -> PerExample<T> {
        PerExample {
            grads: vec![Vec::new(); self.values.len()],
            deltas: vec![Vec::new(); self.arch.layers().len()],
            ..PerExample::new(true)
        }
    }

    /// J = (1/n) Σ C_i for a training pass of `n` examples, and each example's gradient
    /// norm ‖g_i‖ = ‖∇C_i‖ over all parameters into `norms`, from one batched pass whose
    /// per-example parts stay in `pe` for [`Sequential::clipped_sum`].
    ///
    /// A `Linear` layer applied once per example (a vector input, not a sequence) builds
    /// no W_i: by Equation 1 ‖W_i‖ = ‖δ_i‖ ‖a_i‖ and, by Equation 2, ‖b_i‖ = ‖δ_i‖, so it
    /// keeps δ_i. Every other layer writes its per-example gradients (as
    /// [`Sequential::per_example_gradients`] does, without the copies). Leaves
    /// [`Sequential::grads`] holding the unclipped batch sum.
    ///
    /// ```
    /// use backprop::network::Cost;
    /// use backprop::nn::{Arch, Sequential};
    /// let arch: Arch = "Linear(2, 3), Tanh(), Linear(3, 2), Softmax(dim=-1)".parse().unwrap();
    /// let mut net = Sequential::<f64>::new(&arch, &[2], 1).unwrap();
    /// let (x, y) = ([1.0, -1.0, 0.5, 2.0], [0.0, 1.0]);
    /// let (mut pe, mut norms) = (net.per_example_buffers(), Vec::new());
    /// net.per_example_norms(&x, &y, 2, Cost::LogLikelihood, &mut pe, &mut norms).unwrap();
    /// // The same as the norms of the gradients built one by one.
    /// let (_, each) = net.per_example_gradients(&x, &y, 2, Cost::LogLikelihood).unwrap();
    /// for (norm, g) in norms.iter().zip(&each) {
    ///     let sq: f64 = g.iter().flat_map(|(_, v)| v).map(|v| v * v).sum();
    ///     assert!((norm - sq.sqrt()).abs() < 1e-12);
    /// }
    /// ```
    ///
    /// # Errors
    /// As [`Sequential::loss_and_grad`].
    pub fn per_example_norms(
        &mut self,
        x: &[T],
        targets: &[T],
        n: usize,
        cost: Cost,
        pe: &mut PerExample<T>,
        norms: &mut Vec<f64>,
    ) -> Result<f64, NnError> {
        self.forward(x, n, true)?;
        let start = self.output_delta(targets, cost, T::one())?;
        pe.n = 0;
        pe.sq.clear();
        pe.sq.resize(n, 0.0);
        pe.grads.resize_with(self.values.len(), Vec::new);
        pe.deltas.resize_with(self.arch.layers().len(), Vec::new);
        for (j, spec) in self.specs.iter().enumerate() {
            let layer = layer_of(spec);
            let ghost = pe.ghost
                && matches!(self.arch.layers()[layer], Layer::Linear { .. })
                && self.shapes[layer].len() == 1;
            let per = self.values[j].len();
            let len = n.checked_mul(per).ok_or(NnError::Overflow { n, per })?;
            resize(&mut pe.grads[j], if ghost { 0 } else { len });
        }
        self.zero_grads();
        self.backward_from(start, Some(&mut *pe), false);
        for (g, v) in pe.grads.iter().zip(&self.values) {
            if g.is_empty() {
                continue;
            }
            for (sq, ge) in pe.sq.iter_mut().zip(g.chunks_exact(v.len())) {
                *sq += ge.iter().map(|&v| v.to_f64() * v.to_f64()).sum::<f64>();
            }
        }
        norms.clear();
        norms.extend(pe.sq.iter().map(|s| s.sqrt()));
        pe.n = n;
        Ok(self.ws.losses.iter().sum::<f64>() / n as f64)
    }

    /// The clipped sum of private training: `out[j]` = `scale` Σ_i c_i g_i for every
    /// parameter j (in [`Sequential::params`] order), g_i each example's gradient as the
    /// last [`Sequential::per_example_norms`] left it in `pe`. For a `Linear` layer applied
    /// once per example this is one weighted backward, (c ∘ δ)ᵀ A (Equation 1 with each
    /// δ_i scaled by c_i); for every other parameter, the product cᵀ G of the clip factors
    /// and the n per-example gradients. Scales the kept δ_i in place (a second call on the
    /// same `pe` is wrong).
    ///
    /// # Errors
    /// [`NnError::NoForward`] if `pe` holds no batch or the model has since run a forward
    /// of another batch size (one of the same size goes unnoticed: call this right after
    /// the norms); [`NnError::Length`] for `c` not of one factor per example or `out` not shaped
    /// like the parameters.
    pub fn clipped_sum(
        &self,
        pe: &mut PerExample<T>,
        c: &[T],
        scale: T,
        out: &mut [Vec<T>],
    ) -> Result<(), NnError> {
        let n = pe.n;
        if n == 0 || n != self.ws.n || pe.sq.len() != n {
            return Err(NnError::NoForward);
        }
        if c.len() != n {
            return Err(NnError::Length {
                what: "clip factors",
                expected: n,
                given: c.len(),
            });
        }
        for (o, v) in out.iter().zip(&self.values) {
            if o.len() != v.len() {
                return Err(NnError::Length {
                    what: "clipped sum",
                    expected: v.len(),
                    given: o.len(),
                });
            }
        }
        if out.len() != self.values.len() {
            return Err(NnError::Length {
                what: "clipped sum",
                expected: self.values.len(),
                given: out.len(),
            });
        }
        let cm = MatRef::row_major(c, 1, n).expect("c has n values");
        for (j, (o, v)) in out.iter_mut().zip(&self.values).enumerate() {
            let g = &pe.grads[j];
            if g.is_empty() {
                continue;
            }
            // Σ_i c_i g_i as a (1 × n) (n × len) product.
            let gm = MatRef::row_major(g, n, v.len()).expect("n per-example gradients");
            matmul(o, cm, gm, scale, false);
        }
        for (i, d) in pe.deltas.iter_mut().enumerate() {
            if d.is_empty() {
                continue;
            }
            let (inp, outf) = (self.shapes[i][0], self.shapes[i + 1][0]);
            let d = &mut d[..n * outf];
            for (row, &ci) in d.chunks_exact_mut(outf).zip(c) {
                row.iter_mut().for_each(|v| *v *= ci);
            }
            let (dm, am) = (
                MatRef::row_major(&*d, n, outf).expect("n deltas"),
                MatRef::row_major(&self.ws.a[i][..n * inp], n, inp).expect("n inputs"),
            );
            let j = self.owned[i].start;
            // Equation 1 weighted: Σ_i c_i δ_i a_iᵀ; Equation 2: Σ_i c_i δ_i.
            matmul(&mut out[j], dm.t(), am, scale, false);
            if let Some(b) = out.get_mut(j + 1).filter(|_| self.owned[i].len() == 2) {
                b.fill(T::zero());
                for row in d.chunks_exact(outf) {
                    b.iter_mut().zip(row).for_each(|(b, &v)| *b += scale * v);
                }
            }
        }
        Ok(())
    }
}

/// What a private step keeps between a batch's per-example norms and its clipped sum
/// ([`Sequential::per_example_norms`], [`Sequential::clipped_sum`]): each example's
/// gradient of every parameter that needs one built, and δ of each `Linear` layer applied
/// once per example. Grown to the largest batch seen and reused, so steps allocate nothing
/// once the batches stop growing.
#[derive(Clone, Debug, Default)]
pub struct PerExample<T> {
    /// The examples of the batch held (0: none).
    n: usize,
    /// Whether a `Linear` layer applied once per example keeps δ (its norms from ‖δ_i‖
    /// ‖a_i‖) instead of writing every W_i.
    ghost: bool,
    /// Per parameter: n per-example gradients, example i's at `i len ..`; empty for a
    /// parameter whose layer keeps δ.
    grads: Vec<Vec<T>>,
    /// Per layer: δ (n × out) of a `Linear` layer applied once per example; else empty.
    deltas: Vec<Vec<T>>,
    /// ‖g_i‖², accumulated in f64.
    sq: Vec<f64>,
}

impl<T: Float> PerExample<T> {
    fn new(ghost: bool) -> Self {
        PerExample {
            n: 0,
            ghost,
            grads: Vec::new(),
            deltas: Vec::new(),
            sq: Vec::new(),
        }
    }

    /// The values the buffers have room for, and where the largest lives: what stays the
    /// same from step to step once the batches stop growing (they never shrink).
    ///
    /// ```
    /// use backprop::network::Cost;
    /// use backprop::nn::{Arch, Sequential};
    /// let arch: Arch = "Linear(2, 3), Tanh(), Linear(3, 2), Softmax(dim=-1)".parse().unwrap();
    /// let mut net = Sequential::<f64>::new(&arch, &[2], 1).unwrap();
    /// let (mut pe, mut norms) = (net.per_example_buffers(), Vec::new());
    /// let (x, y) = ([0.5; 8], [0.0, 1.0, 1.0, 0.0]);
    /// net.per_example_norms(&x, &y, 4, Cost::LogLikelihood, &mut pe, &mut norms).unwrap();
    /// let room = pe.capacity();
    /// net.per_example_norms(&x[..4], &y[..2], 2, Cost::LogLikelihood, &mut pe, &mut norms).unwrap();
    /// assert_eq!(pe.capacity(), room);
    /// ```
    pub fn capacity(&self) -> (usize, *const T) {
        let all = self.grads.iter().chain(&self.deltas);
        let largest = all.clone().max_by_key(|v| v.capacity());
        (
            all.map(Vec::capacity).sum::<usize>() + self.sq.capacity(),
            largest.map_or(std::ptr::null(), |v| v.as_ptr()),
        )
    }

    /// Keeps δ (n × out) of the `Linear` layer `i` and adds its part of each ‖g_i‖²:
    /// ‖δ_i‖² ‖a_i‖² for W_i = δ_i a_iᵀ, and ‖δ_i‖² more for the bias.
    fn keep_linear_delta(&mut self, i: usize, delta: &[T], a: &[T], bias: bool, n: usize) {
        let d = &mut self.deltas[i];
        resize(d, delta.len());
        d.copy_from_slice(delta);
        let (outf, inp) = (delta.len() / n, a.len() / n);
        for ((sq, de), ae) in self
            .sq
            .iter_mut()
            .zip(delta.chunks_exact(outf))
            .zip(a.chunks_exact(inp))
        {
            let dd: f64 = de.iter().map(|&v| v.to_f64() * v.to_f64()).sum();
            let aa: f64 = ae.iter().map(|&v| v.to_f64() * v.to_f64()).sum();
            *sq += dd * (aa + f64::from(u8::from(bias)));
        }
    }
}

/// The layer a parameter belongs to: the `i` of its name `{i}.…`.
fn layer_of(p: &ParamSpec) -> usize {
    p.name
        .split('.')
        .next()
        .and_then(|i| i.parse().ok())
        .expect("parameter names start with the layer's index")
}

/// The range of targets for example e's position p when there are K per position.
fn r_of(e: usize, p: usize, positions: usize, k: usize) -> Range<usize> {
    (e * positions + p) * k..(e * positions + p + 1) * k
}

/// Sets `v`'s length to `len`, reusing its allocation.
fn resize<T: Float>(v: &mut Vec<T>, len: usize) {
    grow(v, len);
    v.truncate(len);
}

/// The model seam ([`crate::model`]): optimizers, model files and the loop see a
/// `Sequential` as its named parameters, PyTorch's `state_dict` names. Its gradients live
/// in the model itself (filled by [`Sequential::loss_and_grad`] or
/// [`Sequential::backward`]), so its gradient store is `()`.
///
/// ```
/// use backprop::model::Model;
/// use backprop::network::Cost;
/// use backprop::nn::{Arch, Sequential};
/// use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
/// let arch: Arch = "Linear(2, 4), Tanh(), Linear(4, 2), Softmax(dim=-1)".parse().unwrap();
/// let mut net = Sequential::<f64>::new(&arch, &[2], 7).unwrap();
/// let mut adam = Optimizer::new(OptimizerConfig::new(OptimizerKind::Adam), &net).unwrap();
/// let (x, y) = ([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]); // xor
/// let first = net.loss_and_grad(&x, &y, 4, Cost::LogLikelihood).unwrap();
/// for _ in 0..300 {
///     net.loss_and_grad(&x, &y, 4, Cost::LogLikelihood).unwrap();
///     adam.step(&mut net, &(), 0.05).unwrap();
/// }
/// let last = net.loss(&x, &y, 4, Cost::LogLikelihood).unwrap();
/// assert!(last < 0.1 * first, "{first} -> {last}");
/// // The optimizer's state is keyed by the parameters' names.
/// assert_eq!(adam.params().next().unwrap().name, "0.weight");
/// ```
impl<T: Float> crate::model::Model<T> for Sequential<T> {
    type Grads = ();

    fn visit_params(&self, f: &mut dyn FnMut(crate::model::Param<'_, T>)) {
        for (name, shape, values) in self.params() {
            f(crate::model::Param {
                name,
                shape,
                values,
            });
        }
    }

    fn visit_params_mut(
        &mut self,
        _grads: &(),
        f: &mut dyn FnMut(crate::model::ParamMut<'_, T>),
    ) -> Result<(), crate::model::GradientShapeError> {
        for (spec, (values, grad)) in self
            .specs
            .iter()
            .zip(self.values.iter_mut().zip(&self.grads))
        {
            f(crate::model::ParamMut {
                name: &spec.name,
                shape: &spec.shape,
                values,
                grad,
            });
        }
        Ok(())
    }

    fn visit_values_mut(&mut self, f: &mut dyn FnMut(crate::model::ValuesMut<'_, T>)) {
        for (name, shape, values) in self.params_mut() {
            f(crate::model::ValuesMut {
                name,
                shape,
                values,
            });
        }
    }
}
