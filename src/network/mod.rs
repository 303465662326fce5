//! The fully connected network of the post's Figure 2: layers of sizes N^1..N^L, weights
//! w^l_jk, biases b^l_j, activation F, a cost C that depends only on a^L.
//!
//! - [`Activation`] (F and F' side by side), [`Cost`] (C and dC/da^L), [`Init`].
//! - [`Network::feed_forward`] and [`Network::backprop`]: the four equations for a whole
//!   mini-batch, each product one call to `gemm` (see [`crate::linalg::matmul`]), the
//!   buffers in a reusable [`Workspace`].
//! - [`Network::per_example_gradients`]: the post's W_i and B_i for every example;
//!   [`Network::per_example_norms`] and [`Network::weighted_gradients`]: their norms without
//!   building them, and sum_i c_i (W_i, B_i) in one pass (private training's clipping).
//! - [`Network::sgd_step`], [`Network::sgd_train_step`], [`Network::sgd`]: the post's SGD.
//! - [`gradcheck`]: backprop against finite differences, in f64.
//!
//! ```
//! use backprop::network::{gradcheck, Activation, Cost, Gradients, Init, Network, Workspace};
//! use Activation::*;
//! // Figure 2: 2 inputs, two hidden layers of 4, 3 softmax outputs.
//! let net = Network::<f64>::new(&[2, 4, 4, 3], &[Sigmoid, Sigmoid, Softmax],
//!                               Cost::LogLikelihood, Init::Scaled, 42).unwrap();
//! // A batch of n = 2 examples, one per row: x is n x N^1, y is n x N^L (one-hot).
//! let x = [0.3, -0.7, 1.2, 0.4];
//! let y = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
//! let mut ws = Workspace::new(&net, 2);
//! let mut grads = Gradients::zeros_like(&net);
//! let j = net.backprop(&x, &y, 2, &mut ws, &mut grads); // J = (1/n) sum C_x
//! assert!(j > 0.0 && grads.weights[2].rows() == 3 && grads.weights[2].cols() == 4);
//! // The same gradients by central differences:
//! assert!(gradcheck(&net, &x, &y, 2).unwrap().max_rel_error < 1e-7);
//! ```

mod activation;
mod backprop;
mod cost;
mod gradcheck;
mod init;
mod params;
mod per_example;
mod sgd;

pub use activation::{Activation, LEAKY_SLOPE};
pub use backprop::{general_output_delta, Workspace};
pub use cost::Cost;
pub use gradcheck::{gradcheck, GradCheck};
pub use init::Init;

use crate::linalg::Matrix;
use crate::Float;

/// One weight layer l (2 <= l <= L): z^l = W^l a^(l-1) + b^l, a^l = F(z^l).
#[derive(Clone, Debug, PartialEq)]
pub struct Layer<T> {
    /// W^l, N^l x N^(l-1): row j = neuron j, column k = input k (w^l_jk).
    pub weights: Matrix<T>,
    /// b^l, N^l entries.
    pub biases: Vec<T>,
    /// F for this layer.
    pub activation: Activation,
}

/// A fully connected network: its weight layers in order, and its cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Network<T> {
    /// The weight layers, l = 2..=L in the post's numbering (index 0 is l = 2).
    pub layers: Vec<Layer<T>>,
    /// The cost C(a^L, y).
    pub cost: Cost,
}

/// What is wrong with a network's shape or with a batch handed to it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NetworkError {
    /// Fewer than two layer sizes (a network needs an input and an output layer).
    #[error("a network needs at least 2 layer sizes (input and output), got {got}")]
    TooFewLayers {
        /// How many sizes were given.
        got: usize,
    },
    /// A layer with no neurons.
    #[error("layer {layer} has size 0")]
    ZeroSize {
        /// The layer, numbered l = 1..L as in the post.
        layer: usize,
    },
    /// Not one activation per weight layer.
    #[error("{expected} weight layers need {expected} activations, got {got}")]
    ActivationCount {
        /// The number of weight layers, L - 1.
        expected: usize,
        /// The number of activations given.
        got: usize,
    },
    /// Softmax on a hidden layer.
    #[error("softmax is for the output layer only, but layer {layer} of {layers} uses it")]
    SoftmaxNotOutput {
        /// The offending layer l.
        layer: usize,
        /// L.
        layers: usize,
    },
    /// A cost paired with an output activation it is not defined for.
    #[error("cost {cost} needs a {needs} output layer, got {got}")]
    CostNeedsOutput {
        /// The cost.
        cost: Cost,
        /// The output activation it needs.
        needs: Activation,
        /// The output activation given.
        got: Activation,
    },
    /// W^l's columns do not match the previous layer's size.
    #[error("layer {layer}: weights are {rows}x{cols}, but layer {} has {expected} neurons", layer - 1)]
    SizesDontChain {
        /// The layer l of the weights.
        layer: usize,
        /// N^l as the weights claim it.
        rows: usize,
        /// N^(l-1) as the weights claim it.
        cols: usize,
        /// N^(l-1) as the previous layer has it.
        expected: usize,
    },
    /// b^l's length differs from the number of rows of W^l.
    #[error("layer {layer}: {biases} biases for {rows} neurons")]
    BiasLength {
        /// The layer l.
        layer: usize,
        /// N^l, the rows of W^l.
        rows: usize,
        /// The length of b^l.
        biases: usize,
    },
    /// A batch of zero examples (J = (1/n) sum C_x is undefined).
    #[error("empty batch: n must be at least 1")]
    EmptyBatch,
    /// Inputs or targets of the wrong length for n examples.
    #[error("{what} has {got} values, expected {n} examples x {width} = {expected}")]
    BatchShape {
        /// `"inputs"` or `"targets"`.
        what: &'static str,
        /// The number of examples claimed.
        n: usize,
        /// Values per example.
        width: usize,
        /// n * width.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A `Gradients` not shaped like the network.
    #[error("gradients are not shaped like the network")]
    GradientShape,
    /// A mini-batch size of zero.
    #[error("mini-batch size must be at least 1")]
    ZeroBatchSize,
    /// Equations 1 and 2 asked of a workspace that holds no backward pass of this batch
    /// for this network (see [`Network::weighted_gradients`]).
    #[error("the workspace holds no backward pass of {n} examples for this network")]
    NoPass {
        /// The batch size asked for.
        n: usize,
    },
    /// Parameters or batch buffers beyond [`MAX_BYTES`] (or beyond any integer).
    #[error("{what}: {values} {dtype} values would take {}, above the limit of {} GiB", bytes_text(*values, *size), MAX_BYTES >> 30)]
    TooLarge {
        /// What would be allocated, with the sizes that ask for it.
        what: String,
        /// How many numbers (saturated at `u128::MAX`).
        values: u128,
        /// Their precision, `f32` or `f64`.
        dtype: &'static str,
        /// Bytes per number.
        size: usize,
    },
}

/// The most memory the parameters of one network, or the buffers of one batch, may take:
/// 16 GiB. Sizes that come from flags or files (`--hidden`, `--batch`, a model's layers)
/// are checked against it in exact arithmetic before anything is allocated, so that a
/// typo such as `--hidden 100000000` is refused with its size rather than aborting the
/// process (or overflowing).
pub const MAX_BYTES: u64 = 16 << 30;

fn bytes_text(values: u128, size: usize) -> String {
    let bytes = values.saturating_mul(size as u128);
    if bytes == u128::MAX {
        "more than 2^128 bytes".into()
    } else {
        let gib = bytes as f64 / (1u64 << 30) as f64;
        if gib < 1e6 {
            format!("{gib:.1} GiB")
        } else {
            format!("{gib:.1e} GiB")
        }
    }
}

fn check_values<T: Float>(what: impl FnOnce() -> String, values: u128) -> Result<(), NetworkError> {
    let size = std::mem::size_of::<T>();
    if values.saturating_mul(size as u128) > MAX_BYTES as u128 {
        return Err(NetworkError::TooLarge {
            what: what(),
            values,
            dtype: if size == 4 { "f32" } else { "f64" },
            size,
        });
    }
    Ok(())
}

fn sizes_text(sizes: &[usize]) -> String {
    sizes
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join("-")
}

/// Checks that a network of layer sizes `sizes` has at most [`MAX_BYTES`] of weights and
/// biases in precision `T`, in arithmetic that cannot overflow.
///
/// ```
/// use backprop::network::{check_network_size, NetworkError};
/// assert!(check_network_size::<f32>(&[784, 30, 10]).is_ok());
/// // 64 x 1e8 + 1e8 x 10 weights and 1e8 + 10 biases: 7.5e9 numbers, 27.9 GiB in f32.
/// let e = check_network_size::<f32>(&[64, 100_000_000, 10]).unwrap_err();
/// assert!(matches!(e, NetworkError::TooLarge { values: 7_500_000_010, .. }), "{e}");
/// assert!(check_network_size::<f32>(&[64, usize::MAX, 10]).is_err());
/// ```
///
/// # Errors
/// [`NetworkError::TooLarge`] naming the sizes, the count and the bytes.
pub fn check_network_size<T: Float>(sizes: &[usize]) -> Result<(), NetworkError> {
    let values = sizes.windows(2).fold(0u128, |acc, w| {
        let layer = (w[0] as u128).saturating_mul(w[1] as u128) + w[1] as u128;
        acc.saturating_add(layer)
    });
    check_values::<T>(
        || format!("a network of sizes {}", sizes_text(sizes)),
        values,
    )
}

/// Checks that the buffers of a batch of `n` examples for a network of layer sizes `sizes`
/// (its inputs X and targets Y, and Z^l, A^l, Delta^l of every layer, as [`Workspace`]
/// holds them) take at most [`MAX_BYTES`] in precision `T`.
///
/// ```
/// use backprop::network::check_batch_size;
/// assert!(check_batch_size::<f32>(&[784, 30, 10], 1000).is_ok());
/// assert!(check_batch_size::<f32>(&[784, 30, 10], 100_000_000).is_err());
/// assert!(check_batch_size::<f64>(&[2, 3], usize::MAX).is_err());
/// ```
///
/// # Errors
/// [`NetworkError::TooLarge`] naming the batch, the sizes, the count and the bytes.
pub fn check_batch_size<T: Float>(sizes: &[usize], n: usize) -> Result<(), NetworkError> {
    let (first, last) = (
        sizes.first().copied().unwrap_or(0) as u128,
        sizes.last().copied().unwrap_or(0) as u128,
    );
    let per_example = sizes.iter().skip(1).fold(first + last + 1, |acc, &s| {
        acc.saturating_add((s as u128).saturating_mul(3))
    });
    check_values::<T>(
        || format!("a batch of {n} examples for sizes {}", sizes_text(sizes)),
        per_example.saturating_mul(n as u128),
    )
}

impl<T: Float> Network<T> {
    /// A new network with layer sizes `sizes` = N^1..N^L, one activation per weight layer,
    /// the cost `cost`, and weights drawn by `init` from the stream seeded by `seed`.
    ///
    /// Checked: at least two sizes, none zero, `sizes.len() - 1` activations, softmax only on
    /// the output layer, log-likelihood only with a softmax output and cross-entropy only with
    /// a sigmoid output (the costs are defined on probabilities of those shapes), and at most
    /// [`MAX_BYTES`] of parameters ([`check_network_size`]).
    ///
    /// ```
    /// use backprop::network::{Activation, Cost, Init, Network, NetworkError};
    /// use Activation::*;
    /// // The post's Figure 2.
    /// let net = Network::<f64>::new(&[2, 4, 4, 3], &[Sigmoid, Sigmoid, Softmax],
    ///                               Cost::LogLikelihood, Init::Scaled, 7).unwrap();
    /// assert_eq!(net.sizes(), [2, 4, 4, 3]);
    /// let bad = Network::<f64>::new(&[2, 0, 3], &[Relu, Softmax], Cost::LogLikelihood, Init::He, 7);
    /// assert_eq!(bad.unwrap_err(), NetworkError::ZeroSize { layer: 2 });
    /// ```
    pub fn new(
        sizes: &[usize],
        activations: &[Activation],
        cost: Cost,
        init: Init,
        seed: u64,
    ) -> Result<Self, NetworkError> {
        if sizes.len() < 2 {
            return Err(NetworkError::TooFewLayers { got: sizes.len() });
        }
        if let Some(i) = sizes.iter().position(|&s| s == 0) {
            return Err(NetworkError::ZeroSize { layer: i + 1 });
        }
        if activations.len() != sizes.len() - 1 {
            return Err(NetworkError::ActivationCount {
                expected: sizes.len() - 1,
                got: activations.len(),
            });
        }
        check_activations(activations, cost)?;
        check_network_size::<T>(sizes)?;
        let mut rng = Init::rng(seed);
        let layers = sizes
            .windows(2)
            .zip(activations)
            .map(|(w, &activation)| {
                let (weights, biases) = init.draw(w[0], w[1], &mut rng);
                Layer {
                    weights: Matrix::from_vec(
                        w[1],
                        w[0],
                        weights.into_iter().map(T::from_f64).collect(),
                    )
                    .expect("drawn to size"),
                    biases: biases.into_iter().map(T::from_f64).collect(),
                    activation,
                }
            })
            .collect();
        Ok(Network { layers, cost })
    }

    /// A network from given layers, checking that their sizes chain (W^l is N^l x N^(l-1)),
    /// that each b^l has N^l entries, and the activation and cost rules of [`Network::new`].
    ///
    /// ```
    /// use backprop::linalg::Matrix;
    /// use backprop::network::{Activation, Cost, Layer, Network, NetworkError};
    /// let layer = |rows, cols| Layer { weights: Matrix::<f64>::zeros(rows, cols),
    ///                                  biases: vec![0.0; rows], activation: Activation::Sigmoid };
    /// assert!(Network::from_layers(vec![layer(4, 2), layer(3, 4)], Cost::Quadratic).is_ok());
    /// let err = Network::from_layers(vec![layer(4, 2), layer(3, 5)], Cost::Quadratic).unwrap_err();
    /// assert_eq!(err, NetworkError::SizesDontChain { layer: 3, rows: 3, cols: 5, expected: 4 });
    /// ```
    pub fn from_layers(layers: Vec<Layer<T>>, cost: Cost) -> Result<Self, NetworkError> {
        if layers.is_empty() {
            return Err(NetworkError::TooFewLayers { got: 0 });
        }
        for (i, l) in layers.iter().enumerate() {
            let (rows, cols) = (l.weights.rows(), l.weights.cols());
            if i == 0 && cols == 0 {
                return Err(NetworkError::ZeroSize { layer: 1 });
            }
            if rows == 0 {
                return Err(NetworkError::ZeroSize { layer: i + 2 });
            }
            if i > 0 {
                let expected = layers[i - 1].weights.rows();
                if cols != expected {
                    return Err(NetworkError::SizesDontChain {
                        layer: i + 2,
                        rows,
                        cols,
                        expected,
                    });
                }
            }
            if l.biases.len() != rows {
                return Err(NetworkError::BiasLength {
                    layer: i + 2,
                    rows,
                    biases: l.biases.len(),
                });
            }
        }
        let acts: Vec<Activation> = layers.iter().map(|l| l.activation).collect();
        check_activations(&acts, cost)?;
        Ok(Network { layers, cost })
    }

    /// The same network in another precision (f32 -> f64 is exact).
    ///
    /// ```
    /// use backprop::network::{Activation, Cost, Init, Network};
    /// let net = Network::<f32>::new(&[2, 3], &[Activation::Tanh], Cost::Quadratic, Init::Large, 1).unwrap();
    /// let wide: Network<f64> = net.cast();
    /// assert_eq!(wide.layers[0].weights[(0, 0)], net.layers[0].weights[(0, 0)] as f64);
    /// ```
    pub fn cast<U: Float>(&self) -> Network<U> {
        let conv =
            |v: &[T]| -> Vec<U> { v.iter().map(|&x| U::from_f64(Float::to_f64(x))).collect() };
        Network {
            layers: self
                .layers
                .iter()
                .map(|l| Layer {
                    weights: Matrix::from_vec(
                        l.weights.rows(),
                        l.weights.cols(),
                        conv(l.weights.as_slice()),
                    )
                    .expect("same shape"),
                    biases: conv(&l.biases),
                    activation: l.activation,
                })
                .collect(),
            cost: self.cost,
        }
    }

    /// The number of weights and biases.
    pub fn num_params(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.weights.as_slice().len() + l.biases.len())
            .sum()
    }

    /// The post's plain SGD step: w <- w - eta dJ/dw and b <- b - eta dJ/db.
    ///
    /// # Panics
    /// If `grads` is not shaped like the network.
    ///
    /// ```
    /// use backprop::network::{Activation, Cost, Gradients, Init, Network};
    /// let mut net = Network::<f64>::new(&[1, 1], &[Activation::Identity], Cost::Quadratic, Init::Large, 0).unwrap();
    /// let w = net.layers[0].weights[(0, 0)];
    /// let mut g = Gradients::zeros_like(&net);
    /// g.weights[0][(0, 0)] = 2.0;
    /// net.sgd_step(&g, 0.5);
    /// assert_eq!(net.layers[0].weights[(0, 0)], w - 1.0);
    /// ```
    pub fn sgd_step(&mut self, grads: &Gradients<T>, eta: T) {
        for (p, g) in self.params_and_grads(grads) {
            for (p, &g) in p.iter_mut().zip(g) {
                *p -= eta * g;
            }
        }
    }

    /// The layer sizes N^1..N^L (the post's Figure 2: `[2, 4, 4, 3]`).
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = Vec::with_capacity(self.layers.len() + 1);
        if let Some(first) = self.layers.first() {
            s.push(first.weights.cols());
        }
        s.extend(self.layers.iter().map(|l| l.weights.rows()));
        s
    }
}

/// dJ/dW^l and dJ/db^l for every weight layer, shaped like the network's layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients<T> {
    /// dJ/dW^l, one matrix per layer, shaped like `layers[i].weights`.
    pub weights: Vec<Matrix<T>>,
    /// dJ/db^l, one vector per layer, shaped like `layers[i].biases`.
    pub biases: Vec<Vec<T>>,
}

/// Softmax only on the output; the matched costs only with their output activation.
fn check_activations(acts: &[Activation], cost: Cost) -> Result<(), NetworkError> {
    let layers = acts.len() + 1;
    if let Some(i) = acts[..acts.len() - 1]
        .iter()
        .position(|&a| a == Activation::Softmax)
    {
        return Err(NetworkError::SoftmaxNotOutput {
            layer: i + 2,
            layers,
        });
    }
    let got = acts[acts.len() - 1];
    match cost.matched_activation() {
        Some(needs) if needs != got => Err(NetworkError::CostNeedsOutput { cost, needs, got }),
        _ => Ok(()),
    }
}

impl<T: Float> Gradients<T> {
    /// Whether these gradients have the shape of `net`'s parameters.
    pub fn is_shaped_like(&self, net: &Network<T>) -> bool {
        self.weights.len() == net.layers.len()
            && self.biases.len() == net.layers.len()
            && net
                .layers
                .iter()
                .zip(&self.weights)
                .zip(&self.biases)
                .all(|((l, w), b)| {
                    w.rows() == l.weights.rows()
                        && w.cols() == l.weights.cols()
                        && b.len() == l.biases.len()
                })
    }

    /// Zero gradients shaped like `net`.
    pub fn zeros_like(net: &Network<T>) -> Self {
        Gradients {
            weights: net
                .layers
                .iter()
                .map(|l| Matrix::zeros(l.weights.rows(), l.weights.cols()))
                .collect(),
            biases: net
                .layers
                .iter()
                .map(|l| vec![T::zero(); l.biases.len()])
                .collect(),
        }
    }
}

impl<T: Float> Network<T> {
    /// Every parameter tensor paired with its gradient, in a fixed order (for each layer:
    /// weights, then biases). Optimizers key their per-tensor state by the position in
    /// this order.
    ///
    /// # Panics
    /// If `grads` is not shaped like the network.
    pub fn params_and_grads<'a>(
        &'a mut self,
        grads: &'a Gradients<T>,
    ) -> impl Iterator<Item = (&'a mut [T], &'a [T])> + 'a {
        assert_eq!(self.layers.len(), grads.weights.len(), "gradient shape");
        self.layers
            .iter_mut()
            .zip(grads.weights.iter().zip(&grads.biases))
            .flat_map(|(layer, (gw, gb))| {
                assert_eq!(layer.weights.as_slice().len(), gw.as_slice().len());
                assert_eq!(layer.biases.len(), gb.len());
                [
                    (layer.weights.as_mut_slice(), gw.as_slice()),
                    (layer.biases.as_mut_slice(), gb.as_slice()),
                ]
            })
    }
}
