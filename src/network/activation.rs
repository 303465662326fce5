//! Activation functions F, each with its derivative F' beside it.

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
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == s || (s == "leakyrelu" && *a == Activation::LeakyRelu))
            .ok_or_else(|| {
                format!(
                    "unknown activation '{s}' (expected one of: {})",
                    Activation::ALL.map(|a| a.name()).join(", ")
                )
            })
    }
}
