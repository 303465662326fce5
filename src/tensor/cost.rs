//! Costs on a model's output, with the network's meanings: J is the mean of C over the
//! examples (and over the time steps of a sequence output).
//!
//! The last axis of the output holds one example's K values; every other axis counts
//! examples. So for `(N, K)` outputs J = (1/N) Σ_n C_n, and for sequence outputs `(N, T, K)`
//! J = (1/(N T)) Σ_n Σ_t C_nt: each C_n is the mean over its T steps (PyTorch's mean over
//! N·T). The rules themselves are rows of the op table ([`Op::Cost`] and the fused pairs).

use super::op::Op;
use super::var::Var;
use crate::network::{Activation, Cost};
use crate::Float;

impl<'t, T: Float> Var<'t, T> {
    /// The cost `cost` of outputs `self` (a) against targets `y` of the same shape, as
    /// [`Cost::cost`] defines it for one example, averaged over the examples.
    ///
    /// ```
    /// use backprop::network::Cost;
    /// use backprop::tensor::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let a = tape.var(Tensor::from_vec([2, 2], vec![0.5, 0.5, 0.25, 0.75]).unwrap());
    /// let y = tape.constant_var(Tensor::from_vec([2, 2], vec![1.0, 0.0, 1.0, 0.0]).unwrap());
    /// // C_1 = ½ (0.25 + 0.25), C_2 = ½ (0.5625 + 0.5625); J = (0.25 + 0.5625) / 2
    /// let j = a.cost(Cost::Quadratic, y);
    /// assert_eq!(j.item(), 0.40625);
    /// // dJ/da = (a - y) / n
    /// assert_eq!(j.backward().wrt(a).as_slice(), [-0.25, 0.25, -0.375, 0.375]);
    /// ```
    ///
    /// # Panics
    /// If the shapes differ or the output has no axes.
    pub fn cost(self, cost: Cost, y: Self) -> Self {
        self.push(Op::Cost(cost), &[y])
    }

    /// Quadratic cost, C = ½ Σ_j (a_j - y_j)².
    pub fn quadratic_cost(self, y: Self) -> Self {
        self.cost(Cost::Quadratic, y)
    }

    /// Cross-entropy, C = -Σ_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)], on probabilities a.
    /// On logits, [`Var::sigmoid_cross_entropy`] is the stable form.
    pub fn cross_entropy_cost(self, y: Self) -> Self {
        self.cost(Cost::CrossEntropy, y)
    }

    /// Log-likelihood, C = -ln a_y = -Σ_j y_j ln a_j for a one-hot y, on probabilities a.
    /// On logits, [`Var::softmax_log_likelihood`] is the stable form.
    pub fn log_likelihood_cost(self, y: Self) -> Self {
        self.cost(Cost::LogLikelihood, y)
    }

    /// Softmax followed by log-likelihood, fused, on logits z = `self`: the value from
    /// logsumexp (finite where ln softmax would round to -inf) and the gradient
    /// dJ/dz = (a - y)/n, the network's δ^L = a^L - y.
    ///
    /// ```
    /// use backprop::tensor::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let z = tape.var(Tensor::from_vec([1, 2], vec![800.0, 0.0]).unwrap());
    /// let y = tape.constant_var(Tensor::from_vec([1, 2], vec![0.0, 1.0]).unwrap());
    /// let j = z.softmax_log_likelihood(y);
    /// assert_eq!(j.item(), 800.0); // -ln softmax(z)_2 = 800, not -ln 0
    /// assert_eq!(j.backward().wrt(z).as_slice(), [1.0, -1.0]); // a - y
    /// ```
    pub fn softmax_log_likelihood(self, y: Self) -> Self {
        self.push(Op::SoftmaxLogLikelihood, &[y])
    }

    /// Sigmoid followed by cross-entropy, fused, on logits z = `self`:
    /// C = Σ_j softplus(z_j) - y_j z_j, dJ/dz = (sigmoid(z) - y)/n.
    pub fn sigmoid_cross_entropy(self, y: Self) -> Self {
        self.push(Op::SigmoidCrossEntropy, &[y])
    }

    /// J from the output layer's pre-activations z = `self`, as the network computes it:
    /// the fused, stable pair for sigmoid + cross-entropy and softmax + log-likelihood,
    /// otherwise `output`'s activation followed by `cost`.
    pub fn cost_from_z(self, cost: Cost, output: Activation, y: Self) -> Self {
        match (cost, output) {
            (Cost::CrossEntropy, Activation::Sigmoid) => self.sigmoid_cross_entropy(y),
            (Cost::LogLikelihood, Activation::Softmax) => self.softmax_log_likelihood(y),
            _ => self.activation(output).cost(cost, y),
        }
    }
}
