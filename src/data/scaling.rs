//! Input scaling, fitted on the training part and stored in the model file.
//!
//! The stored form (the model file's `__metadata__` key `scaling`) is one line of text:
//!
//! | scaling | text |
//! |---|---|
//! | none | `none` |
//! | divide every input by d | `divide:<d>` (e.g. `divide:16`) |
//! | per-feature (x - mean) / std | `standardize:<mean_1>,...,<mean_N>;<std_1>,...,<std_N>` |
//!
//! Numbers are written in Rust's shortest round-trip form, so parsing the text gives back
//! the very same `f32` values.

use super::{DataError, Dataset};
use std::fmt;
use std::str::FromStr;

/// Which scaling to fit (the `--scale` flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScalingKind {
    /// Divide by the largest absolute training input (255 for MNIST, 16 for digits).
    #[default]
    Auto,
    /// Leave the inputs as they are.
    None,
    /// Per feature: subtract the training mean, divide by the training standard deviation
    /// (population form; a feature with standard deviation 0 is divided by 1).
    Standardize,
}

impl FromStr for ScalingKind {
    type Err = crate::UnknownName;
    fn from_str(s: &str) -> Result<Self, crate::UnknownName> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(ScalingKind::Auto),
            "none" => Ok(ScalingKind::None),
            "standardize" | "standardise" => Ok(ScalingKind::Standardize),
            other => Err(crate::UnknownName {
                what: "scaling",
                given: other.to_string(),
                expected: vec!["auto", "none", "standardize"],
            }),
        }
    }
}

/// A fitted input scaling.
///
/// ```
/// use backprop::data::{Dataset, Scaling, ScalingKind};
/// let train = Dataset::new(vec![0.0, 8.0, 16.0, 4.0], vec![0, 1], 2).unwrap();
/// let s = ScalingKind::Auto.fit(&train);
/// assert_eq!(s, Scaling::Divide(16.0));
/// assert_eq!(s.to_string(), "divide:16");
/// let mut test = Dataset::new(vec![8.0, 4.0], vec![0], 2).unwrap();
/// s.apply(&mut test).unwrap();
/// assert_eq!(test.inputs, vec![0.5, 0.25]);
/// assert_eq!("divide:16".parse::<Scaling>().unwrap(), s);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Scaling {
    /// Inputs unchanged.
    None,
    /// x / d.
    Divide(f32),
    /// (x_k - mean_k) / std_k, per feature k.
    Standardize {
        /// Training mean of each feature.
        mean: Vec<f32>,
        /// Training standard deviation of each feature (0 replaced by 1).
        std: Vec<f32>,
    },
}

impl ScalingKind {
    /// Fits this kind of scaling on the training part (never on the test part).
    pub fn fit(self, train: &Dataset) -> Scaling {
        match self {
            ScalingKind::None => Scaling::None,
            ScalingKind::Auto => {
                let max = train.inputs.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
                // All zeros (or below f32's normal range, whose inverse overflows): nothing
                // to divide by, and dividing by 1 changes nothing.
                Scaling::Divide(if max.is_normal() { max } else { 1.0 })
            }
            ScalingKind::Standardize => {
                let f = train.features;
                let n = train.len().max(1) as f64;
                // f64 sums: 60,000 MNIST pixels of up to 255 would lose digits in f32.
                let mut sum = vec![0.0f64; f];
                for row in train.inputs.chunks_exact(f) {
                    for (s, &x) in sum.iter_mut().zip(row) {
                        *s += x as f64;
                    }
                }
                let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
                let mut sq = vec![0.0f64; f];
                for row in train.inputs.chunks_exact(f) {
                    for ((s, &x), m) in sq.iter_mut().zip(row).zip(&mean) {
                        *s += (x as f64 - m).powi(2);
                    }
                }
                let std = sq
                    .iter()
                    .map(|s| {
                        let sd = (s / n).sqrt() as f32;
                        if sd.is_normal() {
                            sd
                        } else {
                            1.0
                        }
                    })
                    .collect();
                Scaling::Standardize {
                    mean: mean.iter().map(|&m| m as f32).collect(),
                    std,
                }
            }
        }
    }
}

impl Scaling {
    /// The model file's `__metadata__` key that holds the scaling's text form.
    pub const METADATA_KEY: &'static str = "scaling";

    /// The scaling stored in a model file's metadata; [`Scaling::None`] if the key is
    /// absent (a model trained elsewhere on raw inputs).
    ///
    /// ```
    /// use backprop::data::Scaling;
    /// use std::collections::BTreeMap;
    /// let mut meta = BTreeMap::new();
    /// assert_eq!(Scaling::from_metadata(&meta).unwrap(), Scaling::None);
    /// meta.insert("scaling".to_string(), "divide:255".to_string());
    /// assert_eq!(Scaling::from_metadata(&meta).unwrap(), Scaling::Divide(255.0));
    /// ```
    ///
    /// # Errors
    /// [`DataError::BadScaling`] if the value does not parse.
    pub fn from_metadata(
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, DataError> {
        metadata
            .get(Self::METADATA_KEY)
            .map_or(Ok(Scaling::None), |s| s.parse())
    }

    /// The (key, value) pair to store in a model file's metadata.
    pub fn to_metadata(&self) -> (String, String) {
        (Self::METADATA_KEY.to_string(), self.to_string())
    }

    /// Rescales every input of `data` in place.
    ///
    /// # Errors
    /// [`DataError::FeatureMismatch`] if a standardization was fitted on a different
    /// number of features; [`DataError::ScaledOutOfRange`] if a result is not finite (the
    /// inputs are too large for f32 once scaled).
    pub fn apply(&self, data: &mut Dataset) -> Result<(), DataError> {
        self.apply_rows(&mut data.inputs, data.features)
    }

    /// Rescales row-major inputs of `features` columns in place (for `predict`'s rows).
    ///
    /// # Errors
    /// [`DataError::FeatureMismatch`] as for [`Scaling::apply`], and
    /// [`DataError::ScaledOutOfRange`] if a result is not finite.
    pub fn apply_rows(&self, inputs: &mut [f32], features: usize) -> Result<(), DataError> {
        self.rescale(inputs, features)?;
        // Finite inputs can still leave f32's range: (3e38 - (-3e38)) / 1, say.
        if let Some(i) = inputs.iter().position(|x| !x.is_finite()) {
            let features = features.max(1);
            return Err(DataError::ScaledOutOfRange {
                example: i / features + 1,
                feature: i % features + 1,
                value: inputs[i],
                scaling: self.to_string().chars().take(40).collect(),
            });
        }
        Ok(())
    }

    fn rescale(&self, inputs: &mut [f32], features: usize) -> Result<(), DataError> {
        match self {
            Scaling::None => {}
            Scaling::Divide(d) => inputs.iter_mut().for_each(|x| *x /= d),
            Scaling::Standardize { mean, std } => {
                if mean.len() != features {
                    return Err(DataError::FeatureMismatch {
                        what: "standardization".into(),
                        expected: mean.len(),
                        found: features,
                    });
                }
                for row in inputs.chunks_exact_mut(features) {
                    for ((x, m), s) in row.iter_mut().zip(mean).zip(std) {
                        *x = (*x - m) / s;
                    }
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Scaling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |v: &[f32]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Scaling::None => f.write_str("none"),
            Scaling::Divide(d) => write!(f, "divide:{d}"),
            Scaling::Standardize { mean, std } => {
                write!(f, "standardize:{};{}", join(mean), join(std))
            }
        }
    }
}

/// What a divisor must be: positive, and at least f32's smallest normal number, so that
/// its inverse (how much it enlarges an input) is finite; a fitted scaling always is.
const POSITIVE: &str = "a divisor must be a positive number of at least 1.2e-38";

/// Parses the text form. A divisor or standard deviation must be positive and at least
/// f32's smallest normal number (1.2e-38): dividing by 1e-45 (or 0, or a negative number)
/// is not a scaling any fit produces, and would turn inputs infinite.
///
/// ```
/// use backprop::data::Scaling;
/// assert_eq!("divide:255".parse::<Scaling>().unwrap(), Scaling::Divide(255.0));
/// for bad in ["divide:0", "divide:-2", "divide:1e-45", "divide:inf", "standardize:0;1e-40"] {
///     assert!(bad.parse::<Scaling>().is_err(), "{bad}");
/// }
/// ```
impl FromStr for Scaling {
    type Err = DataError;
    fn from_str(text: &str) -> Result<Self, DataError> {
        let bad = |reason: &str| DataError::BadScaling {
            text: text.chars().take(80).collect(),
            reason: reason.into(),
        };
        let numbers = |s: &str| -> Result<Vec<f32>, DataError> {
            s.split(',')
                .map(|x| {
                    x.trim()
                        .parse::<f32>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| bad(&format!("{x:?} is not a finite number")))
                })
                .collect()
        };
        let text_t = text.trim();
        if text_t == "none" {
            return Ok(Scaling::None);
        }
        if let Some(d) = text_t.strip_prefix("divide:") {
            let d = numbers(d)?;
            return match d[..] {
                [d] if d.is_normal() && d > 0.0 => Ok(Scaling::Divide(d)),
                _ => Err(bad(POSITIVE)),
            };
        }
        if let Some(rest) = text_t.strip_prefix("standardize:") {
            let (m, s) = rest
                .split_once(';')
                .ok_or_else(|| bad("expected means;stds"))?;
            let (mean, std) = (numbers(m)?, numbers(s)?);
            if mean.len() != std.len() {
                return Err(bad(&format!(
                    "{} means but {} standard deviations",
                    mean.len(),
                    std.len()
                )));
            }
            if let Some(sd) = std.iter().find(|s| !(s.is_normal() && **s > 0.0)) {
                return Err(bad(&format!("standard deviation {sd}: {POSITIVE}")));
            }
            return Ok(Scaling::Standardize { mean, std });
        }
        Err(bad(
            "expected none, divide:<d> or standardize:<means>;<stds>",
        ))
    }
}
