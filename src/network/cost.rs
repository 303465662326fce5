//! Cost functions C(a^L, y), each with dC/da^L beside it.

use super::Activation;
use crate::Float;
use std::fmt;
use std::str::FromStr;

/// The cost of one example; J is its mean over the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cost {
    /// C = 1/2 ||a^L - y||^2.
    Quadratic,
    /// C = -sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)], for sigmoid outputs.
    CrossEntropy,
    /// C = -ln a^L_y, for softmax outputs.
    LogLikelihood,
}

impl Cost {
    /// Every cost, in the order of their names.
    pub const ALL: [Cost; 3] = [Cost::Quadratic, Cost::CrossEntropy, Cost::LogLikelihood];

    /// The name used on the command line and in model files.
    pub fn name(self) -> &'static str {
        match self {
            Cost::Quadratic => "quadratic",
            Cost::CrossEntropy => "cross-entropy",
            Cost::LogLikelihood => "log-likelihood",
        }
    }
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Cost {
    type Err = crate::UnknownName;
    fn from_str(s: &str) -> Result<Self, crate::UnknownName> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        Cost::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| crate::UnknownName {
                what: "cost",
                given: s.clone(),
                expected: Cost::ALL.map(|c| c.name()).to_vec(),
            })
    }
}

impl Cost {
    /// C(a^L, y) for one example.
    ///
    /// Computed from a^L as the post defines it. The network itself uses
    /// [`Cost::cost_from_z`] for the matched pairs, which stays finite when a sigmoid or
    /// softmax output rounds to exactly 0 or 1.
    ///
    /// ```
    /// use backprop::network::Cost;
    /// // 1/2 ((0.5 - 1)^2 + (0.5 - 0)^2) = 0.25
    /// assert_eq!(Cost::Quadratic.cost(&[0.5f64, 0.5], &[1.0, 0.0]), 0.25);
    /// // -ln 0.25 for the true class
    /// assert_eq!(Cost::LogLikelihood.cost(&[0.25f64, 0.75], &[1.0, 0.0]), -(0.25f64).ln());
    /// ```
    pub fn cost<T: Float>(self, a: &[T], y: &[T]) -> T {
        debug_assert_eq!(a.len(), y.len());
        let one = T::one();
        match self {
            Cost::Quadratic => {
                let s: T = a.iter().zip(y).map(|(&a, &y)| (a - y) * (a - y)).sum();
                s * T::from_f64(0.5)
            }
            Cost::CrossEntropy => -a
                .iter()
                .zip(y)
                .map(|(&a, &y)| xlny(y, a) + xlny(one - y, one - a))
                .sum::<T>(),
            Cost::LogLikelihood => -a.iter().zip(y).map(|(&a, &y)| xlny(y, a)).sum::<T>(),
        }
    }

    /// dC/da^L for one example, written into `out`: quadratic a - y; cross-entropy
    /// (a - y) / (a (1 - a)); log-likelihood -y / a.
    ///
    /// ```
    /// use backprop::network::Cost;
    /// let mut g = [0.0f64; 2];
    /// Cost::Quadratic.dcost_da(&[0.5, 0.5], &[1.0, 0.0], &mut g);
    /// assert_eq!(g, [-0.5, 0.5]);
    /// Cost::LogLikelihood.dcost_da(&[0.25, 0.75], &[1.0, 0.0], &mut g);
    /// assert_eq!(g, [-4.0, 0.0]);
    /// ```
    pub fn dcost_da<T: Float>(self, a: &[T], y: &[T], out: &mut [T]) {
        debug_assert!(a.len() == y.len() && a.len() == out.len());
        let one = T::one();
        for ((g, &a), &y) in out.iter_mut().zip(a).zip(y) {
            *g = match self {
                Cost::Quadratic => a - y,
                Cost::CrossEntropy => (a - y) / (a * (one - a)),
                Cost::LogLikelihood => {
                    if y == T::zero() {
                        T::zero()
                    } else {
                        -y / a
                    }
                }
            };
        }
    }

    /// The output activation whose pairing with this cost collapses Equation 4 to
    /// delta^L = a^L - y: sigmoid for cross-entropy, softmax for log-likelihood.
    pub fn matched_activation(self) -> Option<Activation> {
        match self {
            Cost::Quadratic => None,
            Cost::CrossEntropy => Some(Activation::Sigmoid),
            Cost::LogLikelihood => Some(Activation::Softmax),
        }
    }

    /// C for one example from the output layer's z^L as well as a^L = F(z^L).
    ///
    /// For the matched pairs it uses the forms that never take the log of a rounded 0:
    /// sigmoid + cross-entropy: C = sum_j [softplus(z_j) - y_j z_j];
    /// softmax + log-likelihood: C = sum_j y_j (logsumexp(z) - z_j).
    /// Otherwise it is [`Cost::cost`] of a^L.
    ///
    /// ```
    /// use backprop::network::{Activation, Cost};
    /// let z = [800.0f64, 0.0];
    /// let mut a = [0.0; 2];
    /// Activation::Softmax.f(&z, &mut a); // a = (1, 0) after rounding
    /// let c = Cost::LogLikelihood.cost_from_z(Activation::Softmax, &z, &a, &[0.0, 1.0]);
    /// assert_eq!(c, 800.0); // finite, where -ln a_2 = -ln 0 would be infinite
    /// ```
    pub fn cost_from_z<T: Float>(self, output: Activation, z: &[T], a: &[T], y: &[T]) -> T {
        match (self, output) {
            (Cost::CrossEntropy, Activation::Sigmoid) => {
                z.iter().zip(y).map(|(&z, &y)| softplus(z) - y * z).sum()
            }
            (Cost::LogLikelihood, Activation::Softmax) => {
                let max = z.iter().fold(T::neg_infinity(), |m, &z| m.max(z));
                let lse = max + z.iter().map(|&z| (z - max).exp()).sum::<T>().ln();
                z.iter()
                    .zip(y)
                    .map(|(&z, &y)| {
                        if y == T::zero() {
                            T::zero()
                        } else {
                            y * (lse - z)
                        }
                    })
                    .sum()
            }
            _ => self.cost(a, y),
        }
    }
}

/// x ln y, with 0 ln 0 = 0 (a target of exactly 0 contributes nothing).
fn xlny<T: Float>(x: T, y: T) -> T {
    if x == T::zero() {
        T::zero()
    } else {
        x * y.ln()
    }
}

/// ln(1 + e^z) without overflow.
fn softplus<T: Float>(z: T) -> T {
    z.max(T::zero()) + (-z.abs()).exp().ln_1p()
}
