//! The fully connected network of the seed's Figure 2: layers of sizes N^1..N^L, weights
//! w^l_jk, biases b^l_j, activation F, a cost C that depends only on a^L.

mod activation;
mod cost;

pub use activation::Activation;
pub use cost::Cost;

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
    /// The weight layers, l = 2..=L in the seed's numbering (index 0 is l = 2).
    pub layers: Vec<Layer<T>>,
    /// The cost C(a^L, y).
    pub cost: Cost,
}

impl<T: Float> Network<T> {
    /// The layer sizes N^1..N^L (the seed's Figure 2: `[2, 4, 4, 3]`).
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

impl<T: Float> Gradients<T> {
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
