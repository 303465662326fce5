//! Private training: DP-SGD (Abadi et al. 2016) as Opacus's `make_private` does it by
//! default, and the Rényi-DP accountant that says how much privacy it spends.
//!
//! The post's batch gradient is the mean of the per-example gradients W_i, B_i. A private
//! step changes that mean so that no single example can move it much, then hides what is
//! left of each example under noise:
//!
//! 1. the batch is drawn by **Poisson sampling**: each of the N training examples is in it
//!    independently with probability q = B / N (B, the expected batch size; the batch
//!    size varies, and may be 0) — [`poisson_batch`];
//! 2. each example's gradient g_i = (W_i, B_i) over all parameters is **clipped** to norm at
//!    most C: multiplied by c_i = min(1, C / (||g_i|| + 10^-6)) (flat clipping);
//! 3. **Gaussian noise** of standard deviation sigma C is added to the sum of the clipped
//!    gradients ([`Noise`]), and the result divided by B;
//! 4. any optimizer of [`crate::optim`] takes the step from there. Plain SGD on the post's
//!    network is fused, as its ordinary step is: the clipped sum and the noise, times
//!    -eta, go straight into the weights ([`crate::network::Network::weighted_step`]).
//!
//! For the post's fully connected network no per-example gradient is built: Equation 1
//! makes W_i^l = delta_i^l a_i^(l-1)^T an outer product, so ||W_i^l|| = ||delta_i^l||
//! ||a_i^(l-1)||, and ||B_i^l|| = ||delta_i^l|| (Equation 2); after the norms, one weighted
//! pass of Equations 1 and 2 (each delta_i scaled by c_i) gives the clipped sum
//! ([`crate::network::Network::per_example_norms`],
//! [`crate::network::Network::weighted_gradients`]). A model of layers
//! ([`crate::nn::ArchModel`]) does the same for each `Linear` layer that takes one vector
//! per example, and builds the per-example gradients of its convolutions, embeddings,
//! recurrent layers and per-position `Linear` layers in one batched pass; the clipped sum is
//! then one product over them ([`crate::nn::Sequential::per_example_norms`],
//! [`crate::nn::Sequential::clipped_sum`]).
//!
//! The [`Accountant`] turns the steps taken, (sigma, q) each, into the (epsilon, delta)
//! guarantee: whatever one example is, adding or removing it changes the probability of
//! any outcome of the whole training by at most a factor e^epsilon, except with
//! probability delta.
//!
//! ```
//! use backprop::network::{Activation::*, Cost, Init, Network};
//! use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
//! use backprop::privacy::{poisson_batch, DpConfig, DpSgd, Noise};
//! use rand::SeedableRng;
//!
//! let mut net = Network::<f64>::new(&[2, 8, 2], &[Tanh, Softmax], Cost::LogLikelihood,
//!                                   Init::Xavier, 1).unwrap();
//! let mut opt = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), &net).unwrap();
//! // 100 examples, batches of 10 expected: q = 0.1; sigma 1.0, clipping at C = 1.
//! let config = DpConfig::new(1.0, 1.0, 10, 100).unwrap();
//! let mut dp = DpSgd::new(config, &net, Noise::seeded(7));
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
//! let (mut idx, mut x, mut y) = (Vec::new(), Vec::new(), Vec::new());
//! for _ in 0..10 {
//!     poisson_batch(100, config.sample_rate, &mut rng, &mut idx);
//!     (x.clear(), y.clear());
//!     for &i in &idx {
//!         let v = i as f64 / 50.0 - 1.0; // the example i: x = (v, -v), class v > 0
//!         x.extend([v, -v]);
//!         y.extend(if v > 0.0 { [0.0, 1.0] } else { [1.0, 0.0] });
//!     }
//!     let stats = dp.step(&mut net, &mut opt, &x, &y, idx.len(), 0.5).unwrap();
//!     assert_eq!(stats.examples, idx.len());
//! }
//! let spent = dp.accountant().spent(1e-5).unwrap();
//! assert_eq!(dp.accountant().steps(), 10);
//! assert!(spent.epsilon > 0.0 && spent.epsilon < 10.0);
//! ```

mod accountant;
mod dpsgd;
mod gauss;
mod noise;
mod run;

pub use accountant::{
    default_orders, epsilon_from_rdp, noise_for_epsilon, rdp, Accountant, Spent, EPSILON_TOLERANCE,
    MAX_SIGMA,
};
pub use dpsgd::{poisson_batch, DpConfig, DpSgd, PrivateModel, StepStats, CLIP_EPS};
pub use noise::Noise;
pub use run::{default_delta, steps_per_epoch, PrivateTraining};

use crate::network::NetworkError;
use crate::optim::OptimError;

/// A bad setting of private training or of its accounting, or a step that failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// A sample rate q outside (0, 1].
    #[error("sample rate {0}: must be in (0, 1]")]
    BadSampleRate(f64),
    /// A noise multiplier sigma that is negative or not finite.
    #[error("noise multiplier {0}: must be finite and >= 0")]
    BadNoise(f64),
    /// A delta outside (0, 1).
    #[error("delta {0}: must be in (0, 1)")]
    BadDelta(f64),
    /// An epsilon that is not positive and finite.
    #[error("epsilon {0}: must be finite and > 0")]
    BadEpsilon(f64),
    /// Zero steps to account for.
    #[error("steps: must be at least 1")]
    ZeroSteps,
    /// A clipping norm C that is not positive and finite.
    #[error("max gradient norm {0}: must be finite and > 0")]
    BadClip(f64),
    /// An expected batch size of zero or above the number of examples.
    #[error("expected batch size {batch}: must be from 1 to the {examples} training examples")]
    BadBatch {
        /// The expected batch size B.
        batch: usize,
        /// The number of training examples N.
        examples: usize,
    },
    /// No noise up to [`MAX_SIGMA`] keeps epsilon within the budget.
    #[error("epsilon {epsilon} at delta {delta} is out of reach in {steps} steps at sample rate {q}: even noise {MAX_SIGMA} spends more")]
    BudgetTooLow {
        /// The target epsilon.
        epsilon: f64,
        /// The target delta.
        delta: f64,
        /// The sample rate.
        q: f64,
        /// The number of steps.
        steps: u64,
    },
    /// The model refused the batch.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The model of layers refused the batch.
    #[error(transparent)]
    Nn(#[from] crate::nn::NnError),
    /// The optimizer refused the model or gradients.
    #[error(transparent)]
    Optim(#[from] OptimError),
}
