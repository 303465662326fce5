//! Cost functions C(a^L, y), each with dC/da^L beside it.

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
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        Cost::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown cost '{s}' (expected one of: {})",
                    Cost::ALL.map(|c| c.name()).join(", ")
                )
            })
    }
}
