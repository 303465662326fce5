//! Activation functions F, each with its derivative F' beside it.

use crate::Float;
use std::fmt;
use std::str::FromStr;

/// An activation function F, applied elementwise (softmax: over the layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// F(z) = z.
    Identity,
    /// F(z) = 1 / (1 + e^-z).
    Sigmoid,
    /// F(z) = tanh z.
    Tanh,
    /// F(z) = max(0, z).
    Relu,
    /// F(z) = z for z > 0, 0.01 z otherwise (PyTorch's default slope).
    LeakyRelu,
    /// F(z)_j = e^(z_j) / sum_k e^(z_k): for the output layer.
    Softmax,
}

impl Activation {
    /// Every activation, in the order of their names.
    pub const ALL: [Activation; 6] = [
        Activation::Identity,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Relu,
        Activation::LeakyRelu,
        Activation::Softmax,
    ];

    /// The name used on the command line and in model files.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::LeakyRelu => "leaky-relu",
            Activation::Softmax => "softmax",
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = crate::UnknownName;
    fn from_str(s: &str) -> Result<Self, crate::UnknownName> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == s || (s == "leakyrelu" && *a == Activation::LeakyRelu))
            .ok_or_else(|| crate::UnknownName {
                what: "activation",
                given: s.clone(),
                expected: Activation::ALL.map(|a| a.name()).to_vec(),
            })
    }
}

impl Activation {
    /// F applied to one layer's pre-activations `z` (one example), writing `a = F(z)`.
    ///
    /// Elementwise for all but softmax, which normalises over the layer (shifted by max z, so
    /// large z cannot overflow).
    ///
    /// ```
    /// use backprop::network::Activation;
    /// let mut a = [0.0f64; 2];
    /// Activation::Sigmoid.f(&[0.0, 2.0], &mut a);
    /// assert_eq!(a[0], 0.5);
    /// Activation::Softmax.f(&[1.0, 1.0], &mut a);
    /// assert_eq!(a, [0.5, 0.5]);
    /// ```
    #[inline]
    pub fn f<T: Float>(self, z: &[T], a: &mut [T]) {
        debug_assert_eq!(z.len(), a.len());
        let a = &mut a[..z.len()];
        match self {
            Activation::Identity => a.copy_from_slice(z),
            Activation::Sigmoid => {
                for (a, &z) in a.iter_mut().zip(z) {
                    *a = T::one() / (T::one() + (-z).exp());
                }
            }
            Activation::Tanh => {
                for (a, &z) in a.iter_mut().zip(z) {
                    *a = z.tanh();
                }
            }
            Activation::Relu => {
                for (a, &z) in a.iter_mut().zip(z) {
                    *a = if z > T::zero() { z } else { T::zero() };
                }
            }
            Activation::LeakyRelu => {
                let slope = T::from_f64(LEAKY_SLOPE);
                for (a, &z) in a.iter_mut().zip(z) {
                    *a = if z > T::zero() { z } else { slope * z };
                }
            }
            Activation::Softmax => {
                let max = z.iter().fold(T::neg_infinity(), |m, &z| m.max(z));
                let mut sum = T::zero();
                for (a, &z) in a.iter_mut().zip(z) {
                    *a = (z - max).exp();
                    sum += *a;
                }
                let inv = T::one() / sum;
                a.iter_mut().for_each(|a| *a *= inv);
            }
        }
    }

    /// F'(z), computed from the output a = F(z) (so the backward pass needs only a^l):
    /// sigmoid a(1 - a), tanh 1 - a^2, relu 1 if a > 0 else 0, leaky relu 1 if a > 0 else
    /// 0.01, identity 1. These are PyTorch's conventions, including F'(0) for the relus.
    ///
    /// Softmax is not elementwise: this returns the diagonal a_j(1 - a_j) of its Jacobian
    /// da_j/dz_k = a_j(δ_jk - a_k); [`Activation::backward`] applies the whole Jacobian.
    ///
    /// ```
    /// use backprop::network::Activation;
    /// // sigmoid(0) = 0.5, sigmoid'(0) = 0.5 * 0.5
    /// assert_eq!(Activation::Sigmoid.df(0.5f64), 0.25);
    /// // tanh(z) = 0.6 means tanh'(z) = 1 - 0.36
    /// assert!((Activation::Tanh.df(0.6f64) - 0.64).abs() < 1e-15);
    /// ```
    #[inline]
    pub fn df<T: Float>(self, a: T) -> T {
        match self {
            Activation::Identity => T::one(),
            Activation::Sigmoid | Activation::Softmax => a * (T::one() - a),
            Activation::Tanh => T::one() - a * a,
            Activation::Relu => {
                if a > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::LeakyRelu => {
                if a > T::zero() {
                    T::one()
                } else {
                    T::from_f64(LEAKY_SLOPE)
                }
            }
        }
    }

    /// Back through F for one example: `delta = (dF/dz)^T g`, where g = dC/da for this layer.
    ///
    /// For elementwise F this is Equation 3/4's product `delta_j = g_j F'(z_j)`; for softmax
    /// it is the Jacobian-vector product `delta_j = a_j (g_j - sum_k g_k a_k)`.
    ///
    /// ```
    /// use backprop::network::Activation;
    /// // Softmax of equal inputs: a = (1/2, 1/2); g = (1, 0) gives delta = (1/4, -1/4).
    /// let mut d = [0.0f64; 2];
    /// Activation::Softmax.backward(&[0.5, 0.5], &[1.0, 0.0], &mut d);
    /// assert_eq!(d, [0.25, -0.25]);
    /// ```
    #[inline]
    pub fn backward<T: Float>(self, a: &[T], g: &[T], delta: &mut [T]) {
        debug_assert!(a.len() == g.len() && a.len() == delta.len());
        let delta = &mut delta[..a.len()];
        if self == Activation::Softmax {
            let dot: T = a.iter().zip(g).map(|(&a, &g)| a * g).sum();
            for ((d, &a), &g) in delta.iter_mut().zip(a).zip(g) {
                *d = a * (g - dot);
            }
        } else {
            for ((d, &a), &g) in delta.iter_mut().zip(a).zip(g) {
                *d = g * self.df(a);
            }
        }
    }
}

/// The slope of leaky relu for z <= 0 (PyTorch's default).
pub const LEAKY_SLOPE: f64 = 0.01;
