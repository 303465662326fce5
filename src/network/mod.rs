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
