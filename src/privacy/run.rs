//! The settings of a private training run as the training loop and its files keep them:
//! sigma, C, delta, where the noise comes from, and how many steps an epoch takes.

use std::collections::BTreeMap;

use super::accountant::{check_delta, check_noise};
use super::{Accountant, PrivacyError};

/// What `backprop train --dp-noise SIGMA --dp-clip C [--dp-delta D]` asks for: DP-SGD
/// steps of noise multiplier sigma and clipping norm C, accounted at delta.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrivateTraining {
    /// sigma: the noise's standard deviation is sigma C.
    pub noise: f64,
    /// C: each example's gradient is clipped to this norm.
    pub clip: f64,
    /// delta of the (epsilon, delta) guarantee reported.
    pub delta: f64,
    /// Noise (and batches) drawn from the operating system rather than from the run's
    /// seed: the run cannot be repeated then.
    pub secure_noise: bool,
}

/// Model file metadata: epsilon spent by the run (at `dp_delta`).
pub const EPSILON_KEY: &str = "dp_epsilon";
/// Model file metadata: q, the probability that an example is in a batch.
pub const SAMPLE_RATE_KEY: &str = "dp_sample_rate";
/// Model file metadata: sigma, the noise multiplier.
pub const NOISE_KEY: &str = "dp_noise";
/// Model file metadata: C, the clipping norm.
pub const CLIP_KEY: &str = "dp_clip";
/// Model file metadata: delta.
pub const DELTA_KEY: &str = "dp_delta";
/// Model file metadata: the private steps taken.
pub const STEPS_KEY: &str = "dp_steps";
/// Model file metadata: N, the training examples q was computed for.
pub const EXAMPLES_KEY: &str = "dp_examples";
/// Model file metadata: whether the noise came from the operating system.
pub const SECURE_KEY: &str = "dp_secure_noise";

impl PrivateTraining {
    /// Checks sigma >= 0 and finite, C > 0 and finite, delta in (0, 1).
    ///
    /// ```
    /// use backprop::privacy::PrivateTraining;
    /// let p = PrivateTraining { noise: 1.0, clip: 1.0, delta: 1e-5, secure_noise: false };
    /// assert!(p.validate().is_ok());
    /// assert!(PrivateTraining { delta: 1.0, ..p }.validate().is_err());
    /// assert!(PrivateTraining { clip: 0.0, ..p }.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// The [`PrivacyError`] of the first bad setting.
    pub fn validate(&self) -> Result<(), PrivacyError> {
        check_noise(self.noise)?;
        if !(self.clip > 0.0 && self.clip.is_finite()) {
            return Err(PrivacyError::BadClip(self.clip));
        }
        check_delta(self.delta)
    }

    /// The model file's record of the run: these settings, q, N, the steps taken and the
    /// epsilon they spent.
    ///
    /// # Errors
    /// [`PrivacyError::BadDelta`] for a delta outside (0, 1).
    pub fn to_metadata(
        &self,
        sample_rate: f64,
        examples: usize,
        accountant: &Accountant,
    ) -> Result<Vec<(String, String)>, PrivacyError> {
        let epsilon = accountant.spent(self.delta)?.epsilon;
        Ok([
            (EPSILON_KEY, epsilon.to_string()),
            (SAMPLE_RATE_KEY, sample_rate.to_string()),
            (NOISE_KEY, self.noise.to_string()),
            (CLIP_KEY, self.clip.to_string()),
            (DELTA_KEY, self.delta.to_string()),
            (STEPS_KEY, accountant.steps().to_string()),
            (EXAMPLES_KEY, examples.to_string()),
            (SECURE_KEY, self.secure_noise.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect())
    }

    /// Reads back [`PrivateTraining::to_metadata`]: the settings, N and the steps taken,
    /// or `None` for a run that was not private.
    ///
    /// ```
    /// use backprop::privacy::{Accountant, PrivateTraining};
    /// let p = PrivateTraining { noise: 1.1, clip: 0.5, delta: 1e-5, secure_noise: false };
    /// let mut acc = Accountant::new();
    /// acc.add_steps(1.1, 0.01, 300).unwrap();
    /// let meta = p.to_metadata(0.01, 1000, &acc).unwrap().into_iter().collect();
    /// assert_eq!(PrivateTraining::from_metadata(&meta).unwrap(), Some((p, 1000, 300)));
    /// assert_eq!(PrivateTraining::from_metadata(&Default::default()).unwrap(), None);
    /// ```
    ///
    /// # Errors
    /// A message naming the key that is missing or wrong.
    pub fn from_metadata(
        meta: &BTreeMap<String, String>,
    ) -> Result<Option<(Self, usize, u64)>, String> {
        if !meta.contains_key(NOISE_KEY) {
            return Ok(None);
        }
        fn get<V: std::str::FromStr>(
            meta: &BTreeMap<String, String>,
            key: &str,
        ) -> Result<V, String> {
            let text = meta
                .get(key)
                .ok_or_else(|| format!("missing metadata {key}"))?;
            text.parse()
                .map_err(|_| format!("{key} = {text:?}: not a number"))
        }
        let settings = PrivateTraining {
            noise: get(meta, NOISE_KEY)?,
            clip: get(meta, CLIP_KEY)?,
            delta: get(meta, DELTA_KEY)?,
            secure_noise: meta.get(SECURE_KEY).is_some_and(|s| s == "true"),
        };
        settings.validate().map_err(|e| e.to_string())?;
        Ok(Some((
            settings,
            get(meta, EXAMPLES_KEY)?,
            get(meta, STEPS_KEY)?,
        )))
    }
}

/// Steps per epoch of private training on `examples` examples in batches of `batch`
/// expected: N / B rounded (1 / q, as Opacus's Poisson sampler takes), at least 1.
///
/// ```
/// use backprop::privacy::steps_per_epoch;
/// assert_eq!(steps_per_epoch(60_000, 240), 250);
/// assert_eq!(steps_per_epoch(1437, 10), 144);
/// assert_eq!(steps_per_epoch(5, 10), 1);
/// ```
pub fn steps_per_epoch(examples: usize, batch: usize) -> u64 {
    let batch = batch.max(1);
    ((examples / batch) + usize::from(2 * (examples % batch) >= batch)).max(1) as u64
}

/// delta when none is given: 1 / (10 N), below the 1 / N at which a mechanism could
/// publish one example outright.
///
/// ```
/// assert_eq!(backprop::privacy::default_delta(60_000), 1.0 / 600_000.0);
/// ```
pub fn default_delta(examples: usize) -> f64 {
    1.0 / (10.0 * examples.max(1) as f64)
}
