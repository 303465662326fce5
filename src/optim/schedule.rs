//! Learning-rate schedules: eta as a function of the epoch.

use std::f64::consts::PI;
use std::fmt;

/// A `--schedule` that does not parse: the text and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--schedule {text:?}: {why}")]
pub struct ScheduleError {
    /// The text given.
    pub text: String,
    /// What is wrong.
    pub why: &'static str,
}

/// How the learning rate changes from epoch to epoch (the `--schedule` flag). Epochs count
/// from 0; epoch 0 always uses the base rate.
///
/// ```
/// use backprop::optim::Schedule;
/// let step = Schedule::Step { every: 2, gamma: 0.5 };
/// assert_eq!((0..5).map(|e| step.lr_at(0.4, e)).collect::<Vec<_>>(), [0.4, 0.4, 0.2, 0.2, 0.1]);
/// let cos = Schedule::Cosine { epochs: 4 };
/// assert_eq!(cos.lr_at(1.0, 0), 1.0);
/// assert!((cos.lr_at(1.0, 2) - 0.5).abs() < 1e-15);
/// assert_eq!(cos.lr_at(1.0, 4), 0.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// eta every epoch.
    Constant,
    /// eta * gamma^floor(epoch / every): PyTorch's `StepLR(step_size=every, gamma)`.
    Step {
        /// Epochs between two decays (at least 1).
        every: usize,
        /// The factor applied at each decay.
        gamma: f64,
    },
    /// eta (1 + cos(pi epoch / epochs)) / 2, reaching 0 at `epochs`: PyTorch's
    /// `CosineAnnealingLR(T_max=epochs, eta_min=0)`, held at 0 past `epochs`.
    Cosine {
        /// T_max: the total number of epochs.
        epochs: usize,
    },
}

impl Schedule {
    /// The default step schedule for `epochs` epochs: halve every third of the run.
    pub fn default_step(epochs: usize) -> Self {
        Schedule::Step {
            every: (epochs / 3).max(1),
            gamma: 0.5,
        }
    }

    /// Parses `--schedule`: `constant`, `step` (the [`Schedule::default_step`]),
    /// `step:<every>:<gamma>`, or `cosine` (over `epochs`).
    ///
    /// ```
    /// use backprop::optim::Schedule;
    /// assert_eq!(Schedule::parse("step:10:0.1", 30), Ok(Schedule::Step { every: 10, gamma: 0.1 }));
    /// assert_eq!(Schedule::parse("cosine", 30), Ok(Schedule::Cosine { epochs: 30 }));
    /// assert!(Schedule::parse("step:0:0.5", 30).is_err());
    /// ```
    ///
    /// # Errors
    /// [`ScheduleError`] naming the flag, for an unknown name, `every` of 0, or gamma not
    /// in (0, 1].
    pub fn parse(text: &str, epochs: usize) -> Result<Self, ScheduleError> {
        let t = text.trim().to_ascii_lowercase();
        let err = |why: &'static str| ScheduleError {
            text: text.to_string(),
            why,
        };
        match t.split(':').collect::<Vec<_>>()[..] {
            ["constant"] => Ok(Schedule::Constant),
            ["cosine"] => Ok(Schedule::Cosine {
                epochs: epochs.max(1),
            }),
            ["step"] => Ok(Schedule::default_step(epochs)),
            ["step", every, gamma] => {
                let every = every
                    .parse::<usize>()
                    .ok()
                    .filter(|&e| e >= 1)
                    .ok_or_else(|| err("the step length must be a whole number >= 1"))?;
                let gamma = gamma
                    .parse::<f64>()
                    .ok()
                    .filter(|&g| g > 0.0 && g <= 1.0)
                    .ok_or_else(|| err("gamma must be in (0, 1]"))?;
                Ok(Schedule::Step { every, gamma })
            }
            _ => Err(err(
                "expected constant, step, step:<every>:<gamma>, or cosine",
            )),
        }
    }

    /// The learning rate in `epoch` (0-based) for base rate `lr`.
    pub fn lr_at(&self, lr: f64, epoch: usize) -> f64 {
        match *self {
            Schedule::Constant => lr,
            Schedule::Step { every, gamma } => {
                // Repeated multiplication, as StepLR applies it epoch after epoch.
                (0..epoch / every.max(1)).fold(lr, |lr, _| lr * gamma)
            }
            Schedule::Cosine { epochs } => {
                let t_max = epochs.max(1);
                if epoch >= t_max {
                    0.0
                } else {
                    lr * (1.0 + (PI * epoch as f64 / t_max as f64).cos()) / 2.0
                }
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Constant => f.write_str("constant"),
            Schedule::Step { every, gamma } => write!(f, "step:{every}:{gamma}"),
            Schedule::Cosine { .. } => f.write_str("cosine"),
        }
    }
}
