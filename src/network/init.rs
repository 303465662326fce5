//! Initialisers: the random starting weights and biases, seeded and reproducible.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::fmt;
use std::str::FromStr;

/// How the weights W^l and biases b^l of a new network are drawn (fan_in = N^(l-1),
/// fan_out = N^l).
///
/// Draws are made in `f64` from one ChaCha8 stream seeded by the caller and then rounded, so
/// the same seed gives the same network in `f32` and `f64` (up to rounding).
///
/// ```
/// use backprop::network::Init;
/// let i: Init = "he".parse().unwrap();
/// assert_eq!(i, Init::He);
/// assert_eq!(Init::Uniform.to_string(), "uniform");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Init {
    /// Weights and biases N(0, 1): Nielsen's `network.py`.
    Large,
    /// Weights N(0, 1/fan_in), biases N(0, 1): Nielsen's improved initialisation.
    Scaled,
    /// Glorot normal: weights N(0, 2/(fan_in + fan_out)), biases 0.
    Xavier,
    /// He normal: weights N(0, 2/fan_in), biases 0 (for relu layers).
    He,
    /// Weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's `nn.Linear` default.
    Uniform,
}

impl Init {
    /// Every initialiser, in the order of their names.
    pub const ALL: [Init; 5] = [
        Init::Large,
        Init::Scaled,
        Init::Xavier,
        Init::He,
        Init::Uniform,
    ];

    /// The name used on the command line and in model files.
    pub fn name(self) -> &'static str {
        match self {
            Init::Large => "large",
            Init::Scaled => "scaled",
            Init::Xavier => "xavier",
            Init::He => "he",
            Init::Uniform => "uniform",
        }
    }

    /// Draws one layer's weights (fan_out x fan_in, row-major) and biases (fan_out), in f64.
    pub(crate) fn draw(
        self,
        fan_in: usize,
        fan_out: usize,
        rng: &mut ChaCha8Rng,
    ) -> (Vec<f64>, Vec<f64>) {
        let (nw, nb) = (fan_in * fan_out, fan_out);
        let normal = |sd: f64, count: usize, rng: &mut ChaCha8Rng| -> Vec<f64> {
            let d = Normal::new(0.0, sd).expect("standard deviation is finite and positive");
            (0..count).map(|_| d.sample(rng)).collect()
        };
        let fi = fan_in as f64;
        match self {
            Init::Large => (normal(1.0, nw, rng), normal(1.0, nb, rng)),
            Init::Scaled => (normal((1.0 / fi).sqrt(), nw, rng), normal(1.0, nb, rng)),
            Init::Xavier => (
                normal((2.0 / (fi + fan_out as f64)).sqrt(), nw, rng),
                vec![0.0; nb],
            ),
            Init::He => (normal((2.0 / fi).sqrt(), nw, rng), vec![0.0; nb]),
            Init::Uniform => {
                let r = 1.0 / fi.sqrt();
                let mut u = |count: usize| -> Vec<f64> {
                    (0..count).map(|_| rng.gen_range(-r..r)).collect()
                };
                let w = u(nw);
                (w, u(nb))
            }
        }
    }

    /// The random stream for a network: one per seed.
    pub(crate) fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Init {
    type Err = crate::UnknownName;
    fn from_str(s: &str) -> Result<Self, crate::UnknownName> {
        let s = s.trim().to_ascii_lowercase();
        Init::ALL
            .into_iter()
            .find(|i| i.name() == s)
            .ok_or_else(|| crate::UnknownName {
                what: "initialiser",
                given: s.clone(),
                expected: Init::ALL.map(|i| i.name()).to_vec(),
            })
    }
}
