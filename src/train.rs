//! The training loop: epochs of shuffled mini-batches, the post's SGD (or a relative of
//! it), held-out metrics, early stopping, and checkpoints that resume exactly.
//!
//! One epoch: shuffle the training examples (seeded by the run's seed and the epoch
//! number, so a resumed run shuffles as the uninterrupted one would), then for each
//! mini-batch take one [`train_step`]: the model computes J and dJ/dtheta ([`Network::backprop`]
//! by the four equations, or [`Sequential::loss_and_grad`](crate::nn::Sequential::loss_and_grad)
//! layer by layer) and the [`Optimizer`] updates the parameters; then evaluate the held-out
//! part. The loop sees a model only through [`Trainable`] (inputs, targets, a loss and its
//! gradients, outputs to score) and the optimizer only through [`crate::model::Model`], as
//! named parameters and their gradients, so one loop trains the post's network, a CNN and
//! an LSTM alike.

use std::collections::BTreeMap;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::{ChaCha20Rng, ChaCha8Rng};
use serde::{Deserialize, Serialize};

use crate::data::{DataError, Dataset};
use crate::model::Model;
use crate::model_file::{self, ModelFileError, NamedTensor};
use crate::network::{
    check_batch_size, Activation, Cost, Gradients, Init, Network, NetworkError, Workspace,
};
use crate::nn::{ArchModel, NnError};
use crate::optim::{OptimError, Optimizer, OptimizerConfig, OptimizerKind, Schedule};
use crate::privacy::{
    poisson_batch, steps_per_epoch, Accountant, DpConfig, DpSgd, Noise, PrivacyError, PrivateModel,
    PrivateTraining, StepStats,
};
use crate::Float;

/// Everything that decides a training run, apart from the data.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Hidden layer sizes; the input and output sizes come from the data.
    pub hidden: Vec<usize>,
    /// F of the hidden layers.
    pub activation: Activation,
    /// F of the output layer.
    pub output_activation: Activation,
    /// C.
    pub cost: Cost,
    /// How the weights and biases start.
    pub init: Init,
    /// The update rule and its settings.
    pub optimizer: OptimizerConfig,
    /// eta, the base learning rate.
    pub lr: f64,
    /// How eta changes from epoch to epoch.
    pub schedule: Schedule,
    /// Mini-batch size n.
    pub batch: usize,
    /// Number of epochs.
    pub epochs: usize,
    /// Stop after this many epochs without a better validation accuracy (the test
    /// accuracy if no validation part is given), keeping the best network.
    pub patience: Option<usize>,
    /// Fraction of the training data held out as the validation part that early
    /// stopping watches ([`TrainConfig::split_validation`]); 0 for none.
    pub validation_split: f64,
    /// Seeds the initial weights, every epoch's shuffle and the validation part.
    pub seed: u64,
}

impl TrainConfig {
    /// The defaults of `backprop train`: one hidden layer of 30 sigmoid neurons, softmax
    /// output with log-likelihood, PyTorch's `nn.Linear` initialisation, plain SGD with
    /// eta = 0.5, mini-batches of 10, 30 epochs.
    ///
    /// ```
    /// let c = backprop::train::TrainConfig::default();
    /// assert_eq!((c.hidden.clone(), c.batch, c.epochs), (vec![30], 10, 30));
    /// ```
    pub fn new() -> Self {
        TrainConfig {
            hidden: vec![30],
            activation: Activation::Sigmoid,
            output_activation: Activation::Softmax,
            cost: Cost::LogLikelihood,
            init: Init::Uniform,
            optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
            lr: 0.5,
            schedule: Schedule::Constant,
            batch: 10,
            epochs: 30,
            patience: None,
            validation_split: 0.0,
            seed: 1,
        }
    }

    /// Refuses settings that make no sense, whether they come from flags or from a
    /// checkpoint's metadata: eta positive and finite, a batch from 1 to [`MAX_BATCH`], at
    /// least one epoch, a patience of at least 1, mu in [0, 1), a finite weight decay of at
    /// least 0, betas in [0, 1), a positive finite eps, a schedule with a step of at least 1
    /// and gamma in (0, 1], hidden layers of at least one neuron.
    ///
    /// ```
    /// use backprop::train::TrainConfig;
    /// assert!(TrainConfig::default().validate().is_ok());
    /// let e = TrainConfig { lr: -1.0, ..TrainConfig::default() }.validate().unwrap_err();
    /// assert_eq!(e.to_string(), "--lr -1: must be a positive finite number");
    /// assert_eq!(e.metadata_key(), "train.lr");
    /// let e = TrainConfig { patience: Some(0), ..TrainConfig::default() }.validate().unwrap_err();
    /// assert_eq!(e.setting, "patience");
    /// ```
    ///
    /// # Errors
    /// [`ConfigError`] naming the first setting that is wrong and its value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |ok: bool, setting, value: &dyn std::fmt::Display, expected| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError {
                    setting,
                    value: value.to_string(),
                    expected,
                })
            }
        };
        let unit = |x: f64| (0.0..1.0).contains(&x);
        let o = &self.optimizer;
        check(
            self.lr.is_finite() && self.lr > 0.0,
            "lr",
            &self.lr,
            "must be a positive finite number",
        )?;
        check(
            (1..=MAX_BATCH).contains(&self.batch),
            "batch",
            &self.batch,
            "must be from 1 to 1000000000 (a batch larger than the training set is cut to it)",
        )?;
        check(
            self.epochs >= 1,
            "epochs",
            &self.epochs,
            "must be at least 1",
        )?;
        if let Some(p) = self.patience {
            check(p >= 1, "patience", &p, "must be at least 1")?;
        }
        check(
            unit(o.momentum),
            "momentum",
            &o.momentum,
            "must be in [0, 1)",
        )?;
        check(
            o.weight_decay.is_finite() && o.weight_decay >= 0.0,
            "weight-decay",
            &o.weight_decay,
            "must be a finite number >= 0",
        )?;
        check(unit(o.beta1), "beta1", &o.beta1, "must be in [0, 1)")?;
        check(unit(o.beta2), "beta2", &o.beta2, "must be in [0, 1)")?;
        check(
            o.eps.is_finite() && o.eps > 0.0,
            "eps",
            &o.eps,
            "must be a positive finite number",
        )?;
        match self.schedule {
            Schedule::Constant => {}
            Schedule::Step { every, gamma } => {
                check(
                    every >= 1 && gamma > 0.0 && gamma <= 1.0,
                    "schedule",
                    &format!("step:{every}:{gamma}"),
                    "the step must be at least 1 and gamma in (0, 1]",
                )?;
            }
            Schedule::Cosine { epochs } => {
                check(epochs >= 1, "schedule", &"cosine", "needs at least 1 epoch")?;
            }
        }
        let hidden: Vec<String> = self.hidden.iter().map(|h| h.to_string()).collect();
        check(
            (0.0..1.0).contains(&self.validation_split),
            "validation-split",
            &self.validation_split,
            "must be in [0, 1)",
        )?;
        check(
            !self.hidden.contains(&0),
            "hidden",
            &hidden.join(","),
            "a layer size must be at least 1",
        )?;
        Ok(())
    }

    /// Cuts the validation part off `train`: `validation_split` of each class, chosen by
    /// the run's seed (so a resumed run cuts the same one). `None` when the fraction is 0.
    ///
    /// ```
    /// use backprop::train::TrainConfig;
    /// let data = backprop::data::synthetic::moons(200, 1);
    /// let c = TrainConfig { validation_split: 0.1, ..TrainConfig::default() };
    /// let (train, validation) = c.split_validation(data).unwrap();
    /// assert_eq!((train.len(), validation.unwrap().len()), (180, 20));
    /// ```
    ///
    /// # Errors
    /// [`DataError::BadSplit`] for a fraction outside [0, 1), or one that leaves either
    /// part empty.
    pub fn split_validation(
        &self,
        train: Dataset,
    ) -> Result<(Dataset, Option<Dataset>), DataError> {
        if self.validation_split == 0.0 {
            return Ok((train, None));
        }
        // Another stream than the test split's, which may have used the same seed.
        let seed = self.seed ^ 0x7661_6c69_6461_7465; // "validate"
        let split = train.stratified_split(self.validation_split, seed)?;
        Ok((split.train, Some(split.test)))
    }

    /// The layer sizes N^1..N^L for data of `features` inputs and `classes` classes.
    pub fn sizes(&self, features: usize, classes: usize) -> Vec<usize> {
        let mut sizes = vec![features];
        sizes.extend(&self.hidden);
        sizes.push(classes);
        sizes
    }

    /// One activation per weight layer: the hidden ones, then the output's.
    pub fn activations(&self) -> Vec<Activation> {
        let mut acts = vec![self.activation; self.hidden.len()];
        acts.push(self.output_activation);
        acts
    }

    /// The settings as model-file metadata (`train.*` keys), so that a model records how
    /// it was trained and a checkpoint how to go on.
    pub fn to_metadata(&self) -> Vec<(String, String)> {
        let o = &self.optimizer;
        let schedule = match self.schedule {
            Schedule::Constant => "constant".to_string(),
            Schedule::Step { every, gamma } => format!("step:{every}:{gamma}"),
            Schedule::Cosine { .. } => "cosine".to_string(),
        };
        let hidden: Vec<String> = self.hidden.iter().map(|h| h.to_string()).collect();
        [
            ("hidden", hidden.join(",")),
            ("activation", self.activation.name().into()),
            ("output_activation", self.output_activation.name().into()),
            ("cost", self.cost.name().into()),
            ("init", self.init.name().into()),
            ("optimizer", o.kind.name().into()),
            ("momentum", o.momentum.to_string()),
            ("weight_decay", o.weight_decay.to_string()),
            ("weight_decay_biases", o.decay_biases.to_string()),
            ("beta1", o.beta1.to_string()),
            ("beta2", o.beta2.to_string()),
            ("eps", o.eps.to_string()),
            ("lr", self.lr.to_string()),
            ("schedule", schedule),
            ("batch", self.batch.to_string()),
            ("epochs", self.epochs.to_string()),
            (
                "patience",
                self.patience.map_or(String::new(), |p| p.to_string()),
            ),
            ("validation_split", self.validation_split.to_string()),
            ("seed", self.seed.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("train.{k}"), v))
        .collect()
    }

    /// Reads back [`TrainConfig::to_metadata`], and checks the settings as the flags are
    /// checked ([`TrainConfig::validate`]): a checkpoint is a file, not a trusted source.
    ///
    /// ```
    /// use backprop::train::TrainConfig;
    /// let c = TrainConfig::default();
    /// let meta = c.to_metadata().into_iter().collect();
    /// assert_eq!(TrainConfig::from_metadata(&meta).unwrap(), c);
    /// ```
    ///
    /// ```
    /// # use backprop::train::TrainConfig;
    /// let mut meta: std::collections::BTreeMap<_, _> = TrainConfig::default().to_metadata().into_iter().collect();
    /// meta.insert("train.lr".into(), "-1".into());
    /// let e = TrainConfig::from_metadata(&meta).unwrap_err();
    /// assert_eq!(e, "metadata train.lr = -1: must be a positive finite number");
    /// ```
    ///
    /// # Errors
    /// The key that is missing, does not parse, or holds a setting
    /// [`TrainConfig::validate`] refuses.
    pub fn from_metadata(meta: &BTreeMap<String, String>) -> Result<Self, String> {
        fn get<V: std::str::FromStr>(
            meta: &BTreeMap<String, String>,
            key: &str,
        ) -> Result<V, String>
        where
            V::Err: std::fmt::Display,
        {
            let text = meta
                .get(&format!("train.{key}"))
                .ok_or_else(|| format!("missing metadata train.{key}"))?;
            text.parse().map_err(|e| {
                let text = crate::io::cut(text, 80);
                format!("metadata train.{key} = {text:?}: {e}")
            })
        }
        let hidden_text: String = get(meta, "hidden")?;
        let hidden = if hidden_text.is_empty() {
            Vec::new()
        } else {
            hidden_text
                .split(',')
                .map(|h| h.parse().map_err(|e| format!("metadata train.hidden: {e}")))
                .collect::<Result<_, _>>()?
        };
        let epochs: usize = get(meta, "epochs")?;
        let patience: String = get(meta, "patience")?;
        let schedule: String = get(meta, "schedule")?;
        // Keys newer than some files: their absence means what those files did.
        let optional = |key: &str, default: &str| -> Result<String, String> {
            Ok(meta
                .get(&format!("train.{key}"))
                .map_or(default, String::as_str)
                .to_string())
        };
        let decay_biases = optional("weight_decay_biases", "true")?;
        let validation_split = optional("validation_split", "0")?;
        let config = TrainConfig {
            hidden,
            activation: get(meta, "activation")?,
            output_activation: get(meta, "output_activation")?,
            cost: get(meta, "cost")?,
            init: get(meta, "init")?,
            optimizer: OptimizerConfig {
                kind: get(meta, "optimizer")?,
                momentum: get(meta, "momentum")?,
                weight_decay: get(meta, "weight_decay")?,
                decay_biases: decay_biases
                    .parse()
                    .map_err(|e| format!("metadata train.weight_decay_biases: {e}"))?,
                beta1: get(meta, "beta1")?,
                beta2: get(meta, "beta2")?,
                eps: get(meta, "eps")?,
            },
            lr: get(meta, "lr")?,
            schedule: Schedule::parse(&schedule, epochs).map_err(|e| e.to_string())?,
            batch: get(meta, "batch")?,
            epochs,
            patience: if patience.is_empty() {
                None
            } else {
                Some(
                    patience
                        .parse()
                        .map_err(|e| format!("metadata train.patience: {e}"))?,
                )
            },
            validation_split: validation_split
                .parse()
                .map_err(|e| format!("metadata train.validation_split: {e}"))?,
            seed: get(meta, "seed")?,
        };
        config.validate().map_err(|e| {
            format!(
                "metadata {} = {}: {}",
                e.metadata_key(),
                e.value,
                e.expected
            )
        })?;
        Ok(config)
    }
}

/// The largest `batch` a [`TrainConfig`] accepts. A batch larger than the training set
/// is cut to the set's size (full-batch gradient descent); beyond a billion, the number is
/// a typo, not a wish.
pub const MAX_BATCH: usize = 1_000_000_000;

/// A training setting outside its range, from a flag or a checkpoint.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("--{setting} {value}: {expected}")]
pub struct ConfigError {
    /// The setting, named as its flag without the dashes (`lr`, `batch`, `weight-decay`).
    pub setting: &'static str,
    /// Its value, as text.
    pub value: String,
    /// What it must be.
    pub expected: &'static str,
}

impl ConfigError {
    /// The setting's key in a model file's metadata (`train.weight_decay`).
    pub fn metadata_key(&self) -> String {
        format!("train.{}", self.setting.replace('-', "_"))
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig::new()
    }
}

/// What one epoch did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// The learning rate used in this epoch.
    pub lr: f64,
    /// Mean of J over the epoch's mini-batches, weighted by their sizes.
    pub train_loss: f64,
    /// J over the held-out part after the epoch.
    pub test_loss: f64,
    /// Fraction of the held-out part classified right after the epoch.
    pub test_accuracy: f64,
    /// J over the validation part after the epoch, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_loss: Option<f64>,
    /// Fraction of the validation part classified right after the epoch, if there is one:
    /// what early stopping watches then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
    /// Wall-clock seconds of the epoch (training and evaluation).
    pub seconds: f64,
    /// epsilon spent so far by private training (at its delta), if the run is private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
}

impl EpochReport {
    /// The accuracy early stopping watches: the validation accuracy, or without a
    /// validation part the test accuracy.
    pub fn watched_accuracy(&self) -> f64 {
        self.validation_accuracy.unwrap_or(self.test_accuracy)
    }
}

/// Loss, accuracy and confusion matrix of a network on a data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// J = (1/n) sum C_x.
    pub loss: f64,
    /// Fraction classified right (the arg-max of a^L is the label).
    pub accuracy: f64,
    /// Number of examples.
    pub n: usize,
    /// How often each true class was predicted as each class.
    pub confusion: Confusion,
}

/// Counts of (true class, predicted class) pairs, kept sparsely: only the pairs that occur
/// are stored, so memory grows with the examples, never with classes x classes (a model
/// of 30,000 outputs would otherwise need 7 GB for an empty table).
///
/// ```
/// use backprop::train::Confusion;
/// let mut c = Confusion::default();
/// for (t, p) in [(0, 0), (0, 0), (1, 0), (2, 2)] {
///     c.add(t, p);
/// }
/// assert_eq!((c.get(0, 0), c.get(1, 0), c.get(1, 1)), (2, 1, 0));
/// assert_eq!((c.total(), c.correct(), c.span()), (4, 3, 3));
/// assert_eq!(c.matrix(3).unwrap(), vec![vec![2, 0, 0], vec![1, 0, 0], vec![0, 0, 1]]);
/// assert_eq!(c.entries().collect::<Vec<_>>(), [(0, 0, 2), (1, 0, 1), (2, 2, 1)]);
/// assert!(c.matrix(2).is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Confusion {
    counts: BTreeMap<(usize, usize), usize>,
}

impl Confusion {
    /// Counts one example of class `truth` predicted as `predicted`.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        *self.counts.entry((truth, predicted)).or_insert(0) += 1;
    }

    /// How many examples of class `truth` were predicted as `predicted`.
    pub fn get(&self, truth: usize, predicted: usize) -> usize {
        self.counts.get(&(truth, predicted)).copied().unwrap_or(0)
    }

    /// The non-zero counts as (true, predicted, count), by true class then prediction.
    pub fn entries(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        self.counts.iter().map(|(&(t, p), &c)| (t, p, c))
    }

    /// The number of examples counted.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// The number of examples predicted right (the diagonal).
    pub fn correct(&self) -> usize {
        self.entries().filter(|(t, p, _)| t == p).map(|e| e.2).sum()
    }

    /// One more than the largest class that occurs, as truth or prediction (0 if empty):
    /// the side of the smallest square matrix that holds every count.
    pub fn span(&self) -> usize {
        self.counts
            .keys()
            .map(|&(t, p)| t.max(p) + 1)
            .max()
            .unwrap_or(0)
    }

    /// The counts as a square matrix `m[true][predicted]` over classes `0..side` (the
    /// model's N^L, say), or `None` if a class that occurs is `side` or more. The caller
    /// picks a side it can afford: the matrix takes side^2 counts.
    pub fn matrix(&self, side: usize) -> Option<Vec<Vec<usize>>> {
        if self.span() > side {
            return None;
        }
        let mut m = vec![vec![0; side]; side];
        for (t, p, c) in self.entries() {
            m[t][p] = c;
        }
        Some(m)
    }
}

/// Why training stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The network could not be built or run.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The optimizer could not be built or restored.
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    File(#[from] ModelFileError),
    /// A model of layers refused a batch.
    #[error(transparent)]
    Nn(#[from] NnError),
    /// The data does not fit the network.
    #[error("{0}")]
    Data(String),
    /// A training setting outside its range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// J became NaN or infinite, or grew beyond [`DIVERGENCE_FACTOR`] times its value at
    /// the start (the test loss of the untrained network).
    #[error("{}", divergence_text(what, *value, *start, *epoch, *lr))]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// Which loss: `training` or `test`.
        what: &'static str,
        /// The loss value.
        value: f64,
        /// J of the untrained network on the test part, if known.
        start: Option<f64>,
        /// The learning rate in force.
        lr: f64,
    },
    /// Private training refused its settings or a step.
    #[error(transparent)]
    Privacy(#[from] PrivacyError),
    /// Data-parallel training failed: a rank gone, ranks out of step.
    #[error(transparent)]
    Dist(#[from] crate::dist::DistError),
    /// A checkpoint that this code did not write, or that contradicts itself.
    #[error("{path}: not a usable checkpoint: {reason}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn divergence_text(what: &str, value: f64, start: Option<f64>, epoch: usize, lr: f64) -> String {
    let growth = match start {
        Some(s) if value.is_finite() => format!(
            "grew to {value:.3e} in epoch {epoch}, more than {DIVERGENCE_FACTOR} times its start of {s:.4}"
        ),
        _ => format!("became {value} in epoch {epoch}"),
    };
    format!("the {what} loss {growth}; the run diverged: try a lower --lr (it was {lr})")
}

/// A run has diverged once its mean training loss over an epoch, or its test loss, exceeds
/// this many times the test loss of the untrained network (or is NaN or infinite). For a
/// classifier that starts near ln(classes) (2.3 for ten), that is a loss of 2,300: an
/// average probability of e^-2300 for the true class, which no learning run passes through.
pub const DIVERGENCE_FACTOR: f64 = 1000.0;

/// The smallest start the divergence test uses, so that a network that happens to fit its
/// data at the start (J = 0) is not declared diverged by any later rounding.
const MIN_START_LOSS: f64 = 1e-3;

/// Examples per forward pass when evaluating (memory, not results, depends on it).
const EVAL_BATCH: usize = 256;

/// A model the training loop can train: what one example's inputs and targets are, J and
/// its gradients for a mini-batch, and the outputs to score. Its parameters are reached
/// through [`Model`], as the optimizer reaches them.
///
/// Implemented by the post's [`Network`] (targets one-hot rows, J and dJ/dθ by the four
/// equations into [`Gradients`]) and by [`ArchModel`], a model of layers (targets class
/// indices for the log-likelihood, one per output position: T of them for a sequence
/// model; J and dJ/dθ by [`Sequential::loss_and_grad`](crate::nn::Sequential::loss_and_grad)
/// into the model's own gradients).
pub trait Trainable<T: Float>: Model<T> + Sized {
    /// Buffers the model's passes need besides its own, sized for a batch (the network's
    /// [`Workspace`]; a `Sequential` keeps its own: `()`).
    type Scratch: Default;

    /// Values per example's input (N^1; the product of a model of layers' input shape).
    fn inputs_per_example(&self) -> usize;

    /// Predictions per example, k: 1 for a classifier, T for a model that predicts at
    /// each of T positions (the next character after each character).
    fn labels_per_example(&self) -> usize;

    /// Classes per prediction (N^L; V for a character model).
    fn classes(&self) -> usize;

    /// Whether a target is a one-hot row of [`Trainable::classes`] values (else the class
    /// index, one value per prediction).
    fn one_hot_targets(&self) -> bool;

    /// A zeroed gradient store.
    fn new_grads(&self) -> Self::Grads;

    /// A copy (for the best model so far, and the last good one before an epoch).
    fn duplicate(&self) -> Self;

    /// Buffers for batches of `n` examples, after checking that they fit in
    /// [`crate::network::MAX_BYTES`].
    ///
    /// # Errors
    /// [`TrainError::Network`] naming the batch and the sizes if they would not.
    fn scratch(&self, n: usize) -> Result<Self::Scratch, TrainError>;

    /// J = (1/n) Σ C_x of `n` examples (inputs `x`, targets `y`) and dJ/dθ into `grads`
    /// (forward, cost, backward): a training pass (dropout applied).
    ///
    /// # Errors
    /// [`TrainError::Nn`] for inputs or targets the model refuses (a token id out of its
    /// vocabulary, say).
    fn loss_and_grad(
        &mut self,
        scratch: &mut Self::Scratch,
        x: &[T],
        y: &[T],
        n: usize,
        grads: &mut Self::Grads,
    ) -> Result<T, TrainError>;

    /// One plain SGD step (w <- w - lr dJ/dw) fused into the backward pass, if the model
    /// has one: J, or `None` (the default) when it has not and [`train_step`] should take
    /// the gradients and the optimizer's step. The post's network has one
    /// ([`Network::sgd_train_step`]): Equation 1's products add into W directly, which is
    /// the step `backprop bench` times. The parameters move even when J is not finite.
    ///
    /// # Errors
    /// As [`Trainable::loss_and_grad`].
    fn fused_sgd_step(
        &mut self,
        scratch: &mut Self::Scratch,
        x: &[T],
        y: &[T],
        n: usize,
        lr: T,
    ) -> Result<Option<T>, TrainError> {
        let _ = (scratch, x, y, n, lr);
        Ok(None)
    }

    /// Restarts the model's own random stream (dropout's masks) at the start of an epoch,
    /// so that a run resumed at that epoch draws what the uninterrupted run drew. A model
    /// that draws nothing ignores it (the default).
    fn reseed(&mut self, seed: u64) {
        let _ = seed;
    }

    /// J of `n` examples without gradients (no dropout), and the outputs a^L: n × k rows
    /// of [`Trainable::classes`] values.
    ///
    /// # Errors
    /// As [`Trainable::loss_and_grad`].
    fn loss_and_outputs<'a>(
        &'a mut self,
        scratch: &'a mut Self::Scratch,
        x: &[T],
        y: &[T],
        n: usize,
    ) -> Result<(T, &'a [T]), TrainError>;
}

impl<T: Float> Trainable<T> for Network<T> {
    type Scratch = Workspace<T>;

    fn inputs_per_example(&self) -> usize {
        self.layers.first().map_or(0, |l| l.weights.cols())
    }

    fn labels_per_example(&self) -> usize {
        1
    }

    fn classes(&self) -> usize {
        self.layers.last().map_or(0, |l| l.biases.len())
    }

    fn one_hot_targets(&self) -> bool {
        true
    }

    fn new_grads(&self) -> Gradients<T> {
        Gradients::zeros_like(self)
    }

    fn duplicate(&self) -> Self {
        self.clone()
    }

    fn scratch(&self, n: usize) -> Result<Workspace<T>, TrainError> {
        check_batch_size::<T>(&self.sizes(), n)?;
        Ok(Workspace::new(self, n))
    }

    fn loss_and_grad(
        &mut self,
        ws: &mut Workspace<T>,
        x: &[T],
        y: &[T],
        n: usize,
        grads: &mut Gradients<T>,
    ) -> Result<T, TrainError> {
        Ok(self.backprop(x, y, n, ws, grads))
    }

    fn fused_sgd_step(
        &mut self,
        ws: &mut Workspace<T>,
        x: &[T],
        y: &[T],
        n: usize,
        lr: T,
    ) -> Result<Option<T>, TrainError> {
        Ok(Some(self.sgd_train_step(x, y, n, ws, lr)?))
    }

    fn loss_and_outputs<'a>(
        &'a mut self,
        ws: &'a mut Workspace<T>,
        x: &[T],
        y: &[T],
        n: usize,
    ) -> Result<(T, &'a [T]), TrainError> {
        let j = self.try_cost(x, y, n, ws)?;
        // `cost` ran the feed-forward: a^L is in the workspace.
        let outputs = n * self.classes();
        Ok((j, &ws.a(self.layers.len() - 1)[..outputs]))
    }
}

impl<T: Float> Trainable<T> for ArchModel<T> {
    type Scratch = ();

    fn inputs_per_example(&self) -> usize {
        self.input_shape.iter().product()
    }

    fn labels_per_example(&self) -> usize {
        let out = self.net.shapes().last().map_or(&[][..], Vec::as_slice);
        out[..out.len().saturating_sub(1)].iter().product()
    }

    fn classes(&self) -> usize {
        let out = self.net.shapes().last().map_or(&[][..], Vec::as_slice);
        out.last().copied().unwrap_or(1)
    }

    fn one_hot_targets(&self) -> bool {
        self.cost != Cost::LogLikelihood
    }

    fn new_grads(&self) {}

    fn reseed(&mut self, seed: u64) {
        self.net.reseed_dropout(seed);
    }

    fn duplicate(&self) -> Self {
        let mut copy = ArchModel::new(
            self.net.arch(),
            &self.input_shape,
            self.cost,
            self.vocab.clone(),
            0,
        )
        .expect("the arch, input shape and cost built this model already");
        let mut values = Vec::new();
        self.net
            .visit_params(&mut |p| values.push(p.values.to_vec()));
        let mut next = values.into_iter();
        copy.net.visit_values_mut(&mut |p| {
            if let Some(v) = next.next() {
                p.values.copy_from_slice(&v);
            }
        });
        copy
    }

    fn scratch(&self, n: usize) -> Result<(), TrainError> {
        // Every layer's output, its gradient and what it saves for the backward, as the
        // network's check counts them: what the Sequential's workspace grows to.
        let sizes: Vec<usize> = self
            .net
            .shapes()
            .iter()
            .map(|s| s.iter().product())
            .collect();
        check_batch_size::<T>(&sizes, n)?;
        Ok(())
    }

    fn loss_and_grad(
        &mut self,
        _: &mut (),
        x: &[T],
        y: &[T],
        n: usize,
        _: &mut (),
    ) -> Result<T, TrainError> {
        Ok(self.net.loss_and_grad(x, y, n, self.cost)?)
    }

    fn loss_and_outputs<'a>(
        &'a mut self,
        _: &'a mut (),
        x: &[T],
        y: &[T],
        n: usize,
    ) -> Result<(T, &'a [T]), TrainError> {
        let j = self.net.loss(x, y, n, self.cost)?;
        let top = self.net.shapes().len() - 1;
        Ok((j, self.net.workspace().a(top)))
    }
}

/// One training step on a mini-batch of `n` examples: J and dJ/dθ (forward, cost and
/// backward, [`Trainable::loss_and_grad`]), then the optimizer's update of every parameter
/// ([`Optimizer::step`]). Returns J; a J that is NaN or infinite is returned without an
/// update, for the caller to stop on, except after a fused step. For plain SGD
/// ([`Optimizer::is_plain_sgd`]) a model's fused step
/// ([`Trainable::fused_sgd_step`]) is taken instead when it has one: the post's network adds
/// Equation 1's products into W without storing dC/dW.
///
/// This is the step `backprop bench` times: for the network and plain SGD,
/// [`Network::sgd_train_step`]; for a model of layers,
/// [`Sequential::loss_and_grad`](crate::nn::Sequential::loss_and_grad) and the step.
///
/// ```
/// use backprop::network::Cost;
/// use backprop::nn::ArchModel;
/// use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
/// use backprop::train::train_step;
/// let arch = "Linear(2, 4), Tanh(), Linear(4, 2), Softmax(dim=-1)".parse().unwrap();
/// let mut model = ArchModel::<f64>::new(&arch, &[2], Cost::LogLikelihood, None, 7).unwrap();
/// let mut sgd = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), &model).unwrap();
/// let (x, y) = ([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]); // xor
/// let first = train_step(&mut model, &mut (), &mut (), &mut sgd, &x, &y, 4, 0.5).unwrap();
/// let mut last = first;
/// for _ in 0..500 {
///     last = train_step(&mut model, &mut (), &mut (), &mut sgd, &x, &y, 4, 0.5).unwrap();
/// }
/// assert!(last < 0.1 * first, "{first} -> {last}");
/// ```
///
/// # Errors
/// Those of [`Trainable::loss_and_grad`], and [`TrainError::Optim`] if the model does not
/// have the parameters the optimizer was made for.
#[allow(clippy::too_many_arguments)]
pub fn train_step<T: Float, M: Trainable<T>>(
    model: &mut M,
    scratch: &mut M::Scratch,
    grads: &mut M::Grads,
    optimizer: &mut Optimizer<T>,
    x: &[T],
    y: &[T],
    n: usize,
    lr: T,
) -> Result<f64, TrainError> {
    // Plain SGD, where the model fuses it into its backward pass, is the faster same step.
    if optimizer.is_plain_sgd() {
        if let Some(j) = model.fused_sgd_step(scratch, x, y, n, lr)? {
            optimizer.count_fused_step();
            return Ok(j.to_f64());
        }
    }
    let j = model.loss_and_grad(scratch, x, y, n, grads)?.to_f64();
    if j.is_finite() {
        optimizer.step(model, grads, lr)?;
    }
    Ok(j)
}

/// The update of [`train_step`] for a J and dJ/dθ computed elsewhere (a
/// [`GradientSource`]): none when J is NaN or infinite.
fn step_with<T: Float, M: Trainable<T>>(
    model: &mut M,
    grads: &M::Grads,
    optimizer: &mut Optimizer<T>,
    j: T,
    lr: f64,
) -> Result<f64, TrainError> {
    let j = j.to_f64();
    if j.is_finite() {
        optimizer.step(model, grads, T::from_f64(lr))?;
    }
    Ok(j)
}

/// Where each mini-batch's J and dJ/dθ come from when not from the model's own
/// [`Trainable::loss_and_grad`]: [`crate::dist::Blocked`] sums the batch in fixed blocks,
/// shared among the processes of a data-parallel run ([`Trainer::set_gradient_source`]).
pub trait GradientSource<T: Float, M: Trainable<T>> {
    /// J = (1/n) Σ C_x of the batch (`n` examples, inputs `x`, targets `y`), and dJ/dθ
    /// into `grads`, for the optimizer's step.
    ///
    /// # Errors
    /// A batch the model refuses; [`TrainError::Dist`] if the processes fail.
    fn loss_and_grad(
        &mut self,
        model: &mut M,
        x: &[T],
        y: &[T],
        n: usize,
        grads: &mut M::Grads,
    ) -> Result<T, TrainError>;

    /// Time and bytes spent combining the processes' parts, for a report.
    fn comm_stats(&self) -> Option<crate::dist::CommStats> {
        None
    }
}

/// A training run in progress: the model (by default the post's network), its optimizer,
/// and the history so far.
pub struct Trainer<T: Float, M: Trainable<T> = Network<T>> {
    config: TrainConfig,
    net: M,
    /// `None`: the model's own backpropagation of the whole batch.
    gradient: Option<Box<dyn GradientSource<T, M>>>,
    optimizer: Optimizer<T>,
    grads: M::Grads,
    ws: M::Scratch,
    x: Vec<T>,
    y: Vec<T>,
    order: Vec<usize>,
    history: Vec<EpochReport>,
    best: Option<(f64, M)>,
    /// Examples that `ws`, `x` and `y` hold room for.
    capacity: usize,
    /// The test loss of the untrained network: the divergence test's reference.
    start_loss: Option<f64>,
    /// DP-SGD in place of shuffled mini-batches ([`Trainer::with_privacy`]).
    privacy: Option<Privacy<T, M>>,
}

/// A private run's settings, its steps so far, and how to make its DP-SGD stepper (kept
/// as a function so that the loop needs no [`PrivateModel`] bound on every model).
struct Privacy<T: Float, M> {
    settings: PrivateTraining,
    /// N, the training examples q = B / N was set for.
    examples: usize,
    config: DpConfig,
    accountant: Accountant,
    /// The accountant after the epoch in progress, kept once the epoch is reported (a
    /// diverged epoch's model is dropped, and its steps with it).
    pending: Option<Accountant>,
    stepper: Stepper<T, M>,
}

/// Makes a [`DpSgd`] for the model, its type erased.
type Stepper<T, M> = fn(DpConfig, &M, Noise) -> Box<dyn PrivateStep<T, M>>;

/// [`DpSgd`] with its model type erased.
trait PrivateStep<T: Float, M> {
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        model: &mut M,
        optimizer: &mut Optimizer<T>,
        x: &[T],
        y: &[T],
        n: usize,
        lr: T,
    ) -> Result<StepStats, PrivacyError>;
    fn accountant_mut(&mut self) -> &mut Accountant;
}

impl<T: Float, M: PrivateModel<T>> PrivateStep<T, M> for DpSgd<T, M> {
    fn step(
        &mut self,
        model: &mut M,
        optimizer: &mut Optimizer<T>,
        x: &[T],
        y: &[T],
        n: usize,
        lr: T,
    ) -> Result<StepStats, PrivacyError> {
        DpSgd::step(self, model, optimizer, x, y, n, lr)
    }

    fn accountant_mut(&mut self) -> &mut Accountant {
        DpSgd::accountant_mut(self)
    }
}

fn dp_stepper<T: Float, M: PrivateModel<T> + 'static>(
    config: DpConfig,
    model: &M,
    noise: Noise,
) -> Box<dyn PrivateStep<T, M>> {
    Box::new(DpSgd::new(config, model, noise))
}

impl<T: Float> Trainer<T> {
    /// A new run for data of `features` inputs and `classes` classes.
    ///
    /// ```
    /// use backprop::data::synthetic;
    /// use backprop::train::{TrainConfig, Trainer};
    /// let data = synthetic::xor(200, 1);
    /// let config = TrainConfig { hidden: vec![8], lr: 1.0, epochs: 40, ..TrainConfig::default() };
    /// let mut t = Trainer::<f64>::new(config, data.features, data.classes).unwrap();
    /// while !t.finished() {
    ///     t.run_epoch(&data, &data, None).unwrap();
    /// }
    /// assert!(t.history().last().unwrap().test_accuracy > 0.9);
    /// ```
    ///
    /// # Errors
    /// [`TrainError::Config`] for settings [`TrainConfig::validate`] refuses,
    /// [`TrainError::Network`] for sizes or activations that make no network (or one
    /// beyond [`crate::network::MAX_BYTES`]).
    pub fn new(config: TrainConfig, features: usize, classes: usize) -> Result<Self, TrainError> {
        config.validate()?;
        let net = Network::new(
            &config.sizes(features, classes),
            &config.activations(),
            config.cost,
            config.init,
            config.seed,
        )?;
        Self::with_model(config, net)
    }
}

impl<T: Float, M: Trainable<T>> Trainer<T, M> {
    /// A new run that trains `model` (a model of layers, say) with `config`'s optimizer,
    /// learning rate, schedule, batches and epochs (its `hidden`, `activation`,
    /// `output_activation`, `cost` and `init` are the network's and not used here).
    ///
    /// ```
    /// use backprop::data::digits;
    /// use backprop::data::ScalingKind;
    /// use backprop::network::Cost;
    /// use backprop::nn::ArchModel;
    /// use backprop::train::{TrainConfig, Trainer};
    /// let split = digits::split();
    /// let scaling = ScalingKind::Auto.fit(&split.train);
    /// let (mut train, mut test) = (split.train.clone(), split.test.clone());
    /// scaling.apply(&mut train).unwrap();
    /// scaling.apply(&mut test).unwrap();
    /// let arch = "Conv2d(1, 4, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10), \
    ///     Softmax(dim=-1)".parse().unwrap();
    /// let model = ArchModel::<f32>::new(&arch, &[1, 8, 8], Cost::LogLikelihood, None, 1).unwrap();
    /// let config = TrainConfig { lr: 0.1, epochs: 2, ..TrainConfig::default() };
    /// let mut t = Trainer::with_model(config, model).unwrap();
    /// while !t.finished() {
    ///     t.run_epoch(&train, &test, None).unwrap();
    /// }
    /// assert!(t.history()[1].test_accuracy > 0.8, "{:?}", t.history());
    /// ```
    ///
    /// # Errors
    /// [`TrainError::Config`] for settings [`TrainConfig::validate`] refuses,
    /// [`TrainError::Optim`] if the optimizer cannot be built for the model.
    pub fn with_model(config: TrainConfig, net: M) -> Result<Self, TrainError> {
        config.validate()?;
        let optimizer = Optimizer::new(config.optimizer, &net)?;
        // The batch buffers are sized by the data, on first use (see `reserve`), never by
        // `batch` alone: a batch of 10^8 on 1,000 examples needs room for 1,000.
        Ok(Trainer {
            grads: net.new_grads(),
            ws: M::Scratch::default(),
            x: Vec::new(),
            y: Vec::new(),
            order: Vec::new(),
            history: Vec::new(),
            best: None,
            capacity: 0,
            start_loss: None,
            privacy: None,
            gradient: None,
            optimizer,
            net,
            config,
        })
    }

    /// Computes each mini-batch's J and dJ/dθ with `source` (data-parallel block sums)
    /// instead of the model's own backpropagation; the optimizer's step is the same.
    ///
    /// ```
    /// use backprop::data::synthetic;
    /// use backprop::dist::{Blocked, Single};
    /// use backprop::train::{TrainConfig, Trainer};
    /// let data = synthetic::xor(200, 1);
    /// let config = TrainConfig { hidden: vec![8], lr: 1.0, epochs: 2, batch: 40, ..TrainConfig::default() };
    /// let mut t = Trainer::<f64>::new(config, 2, 2).unwrap();
    /// t.set_gradient_source(Box::new(Blocked::new(Single, t.network(), 16)));
    /// t.run_epoch(&data, &data, None).unwrap();
    /// assert_eq!(t.comm_stats().unwrap().steps, 5);
    /// ```
    pub fn set_gradient_source(&mut self, source: Box<dyn GradientSource<T, M>>) {
        self.gradient = Some(source);
    }

    /// The gradient source's time and bytes, if it reports any.
    pub fn comm_stats(&self) -> Option<crate::dist::CommStats> {
        self.gradient.as_ref().and_then(|g| g.comm_stats())
    }

    /// Makes room for batches of `n` examples, after checking that they fit in
    /// [`crate::network::MAX_BYTES`].
    fn reserve(&mut self, n: usize) -> Result<(), TrainError> {
        if n <= self.capacity {
            return Ok(());
        }
        self.ws = self.net.scratch(n)?;
        self.x = vec![T::zero(); n * self.net.inputs_per_example()];
        self.y = vec![T::zero(); n * targets_per_example(&self.net)];
        self.capacity = n;
        Ok(())
    }

    /// The examples per training step: `batch`, cut to the training set's size.
    pub fn working_batch(&self, train: &Dataset) -> usize {
        self.config.batch.min(train.len()).max(1)
    }

    /// The network (or model) as it is now.
    pub fn network(&self) -> &M {
        &self.net
    }

    /// The network (or model) to keep: with `patience`, the one with the best validation
    /// accuracy (test accuracy without a validation part) so far; otherwise the current one.
    pub fn final_network(&self) -> &M {
        match (&self.config.patience, &self.best) {
            (Some(_), Some((_, net))) => net,
            _ => &self.net,
        }
    }

    /// The settings of the run.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// One report per finished epoch.
    pub fn history(&self) -> &[EpochReport] {
        &self.history
    }

    /// Changes the planned number of epochs (to go on from a checkpoint, say).
    pub fn set_epochs(&mut self, epochs: usize) {
        self.config.epochs = epochs;
        if let Schedule::Cosine { epochs: e } = &mut self.config.schedule {
            *e = epochs.max(1);
        }
    }

    /// Changes the early-stopping patience (to go on from a checkpoint with another).
    /// The best network so far is tracked with or without patience, so this is exact.
    pub fn set_patience(&mut self, patience: Option<usize>) {
        self.config.patience = patience;
    }

    /// True once the planned epochs are done, or `patience` epochs have passed without a
    /// better validation accuracy (test accuracy without a validation part).
    pub fn finished(&self) -> bool {
        let done = self.history.len();
        if done >= self.config.epochs {
            return true;
        }
        match self.config.patience {
            Some(p) => {
                let best_epoch = self
                    .history
                    .iter()
                    .fold((0, f64::NEG_INFINITY), |(e, acc), r| {
                        if r.watched_accuracy() > acc {
                            (r.epoch, r.watched_accuracy())
                        } else {
                            (e, acc)
                        }
                    })
                    .0;
                done > 0 && done - best_epoch >= p
            }
            None => false,
        }
    }

    /// Trains one epoch on `train`, then evaluates on `test`. `progress(done, total)` is
    /// called after each mini-batch. Early stopping then watches `test`, which makes its
    /// accuracy optimistic: to keep it honest, use [`Trainer::run_epoch_validated`].
    ///
    /// Before the first epoch, the untrained network's test loss is measured: the start
    /// the divergence test compares with.
    ///
    /// # Errors
    /// [`TrainError::Diverged`] if a mini-batch's J becomes NaN or infinite, or if the
    /// epoch's mean training loss or the test loss is NaN, infinite, or more than
    /// [`DIVERGENCE_FACTOR`] times the start: the network and optimizer are then left as
    /// they were before the epoch, the last good state, and no report is added.
    /// [`TrainError::Data`] if the data does not fit the network, either part is empty,
    /// or the untrained network's loss is already not finite (inputs too large).
    pub fn run_epoch(
        &mut self,
        train: &Dataset,
        test: &Dataset,
        progress: Option<&dyn Fn(usize, usize)>,
    ) -> Result<EpochReport, TrainError> {
        self.run_epoch_validated(train, None, test, progress)
    }

    /// Trains one epoch on `train`, then evaluates on `validation` (if given) and `test`.
    /// Early stopping and the kept best network go by the validation accuracy, so the
    /// test part stays unseen until the end.
    ///
    /// ```
    /// use backprop::data::synthetic;
    /// use backprop::train::{TrainConfig, Trainer};
    /// let c = TrainConfig { hidden: vec![8], lr: 1.0, epochs: 40, patience: Some(5),
    ///                       validation_split: 0.2, ..TrainConfig::default() };
    /// let split = synthetic::xor(300, 1).stratified_split(0.2, 1).unwrap();
    /// let (train, validation) = c.split_validation(split.train).unwrap();
    /// let mut t = Trainer::<f64>::new(c, 2, 2).unwrap();
    /// while !t.finished() {
    ///     t.run_epoch_validated(&train, validation.as_ref(), &split.test, None).unwrap();
    /// }
    /// assert!(t.history()[0].validation_accuracy.is_some());
    /// ```
    ///
    /// # Errors
    /// As [`Trainer::run_epoch`].
    pub fn run_epoch_validated(
        &mut self,
        train: &Dataset,
        validation: Option<&Dataset>,
        test: &Dataset,
        progress: Option<&dyn Fn(usize, usize)>,
    ) -> Result<EpochReport, TrainError> {
        for (part, data) in [("training", train), ("test", test)] {
            if data.is_empty() {
                return Err(TrainError::Data(format!("the {part} part has no examples")));
            }
        }
        check_fits(&self.net, train)?;
        check_fits(&self.net, test)?;
        self.reserve(self.working_batch(train).max(EVAL_BATCH.min(test.len())))?;
        if let Some(v) = validation {
            check_fits(&self.net, v)?;
        }
        let epoch = self.history.len() + 1;
        if self.start_loss.is_none() && self.history.is_empty() {
            let j = self.evaluate(test)?.loss;
            if !j.is_finite() {
                return Err(TrainError::Data(format!(
                    "the untrained network's test loss is already {j}: the inputs are too large for {} (try --scale)",
                    T::DTYPE.to_lowercase()
                )));
            }
            self.start_loss = Some(j);
        }
        let start = std::time::Instant::now();
        let lr = self.config.schedule.lr_at(self.config.lr, epoch - 1);
        let last_good = (self.net.duplicate(), self.optimizer.clone());

        // Seeded by run and epoch: a resumed run shuffles as the uninterrupted one would.
        self.order.clear();
        let stream = (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // Dropout's masks too (the checkpoint does not keep their stream).
        self.net.reseed(self.config.seed ^ stream ^ 0x6472_6f70); // "drop"
        let mut total = 0.0;
        if self.privacy.is_some() {
            // DP-SGD draws its own (Poisson) batches; `order` stays empty, so the loop
            // below takes no step.
            total = match self.private_epoch(train, epoch, lr, progress) {
                Ok(total) => total,
                Err(e) => {
                    (self.net, self.optimizer) = last_good;
                    return Err(e);
                }
            };
        } else {
            self.order.extend(0..train.len());
            self.order
                .shuffle(&mut ChaCha8Rng::seed_from_u64(self.config.seed ^ stream));
        }

        let (inputs, targets) = (
            self.net.inputs_per_example(),
            targets_per_example(&self.net),
        );
        let batches = train.len().div_ceil(self.config.batch);
        for (b, idx) in self.order.chunks(self.config.batch).enumerate() {
            let n = idx.len();
            let (x, y) = (&mut self.x[..n * inputs], &mut self.y[..n * targets]);
            fill_batch(&self.net, train, idx, x, y)?;
            let step = match self.gradient.as_mut() {
                Some(g) => g
                    .loss_and_grad(&mut self.net, x, y, n, &mut self.grads)
                    .and_then(|j| {
                        step_with(&mut self.net, &self.grads, &mut self.optimizer, j, lr)
                    }),
                None => train_step(
                    &mut self.net,
                    &mut self.ws,
                    &mut self.grads,
                    &mut self.optimizer,
                    x,
                    y,
                    n,
                    T::from_f64(lr),
                ),
            };
            let j = match step {
                Ok(j) if j.is_finite() => j,
                Ok(j) => {
                    (self.net, self.optimizer) = last_good;
                    return Err(self.diverged(epoch, "training", j, lr));
                }
                Err(e) => {
                    (self.net, self.optimizer) = last_good;
                    return Err(e);
                }
            };
            total += j * n as f64;
            if let Some(p) = progress {
                p(b + 1, batches);
            }
        }
        let eval = self.evaluate(test)?;
        let train_loss = total / train.len() as f64;
        let limit = DIVERGENCE_FACTOR * self.start_loss.unwrap_or(0.0).max(MIN_START_LOSS);
        for (what, value) in [("training", train_loss), ("test", eval.loss)] {
            if value.is_nan() || value > limit {
                (self.net, self.optimizer) = last_good;
                return Err(self.diverged(epoch, what, value, lr));
            }
        }
        let validation = validation.map(|v| self.evaluate(v)).transpose()?;
        let report = EpochReport {
            epoch,
            lr,
            train_loss,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
            validation_loss: validation.as_ref().map(|v| v.loss),
            validation_accuracy: validation.as_ref().map(|v| v.accuracy),
            seconds: start.elapsed().as_secs_f64(),
            epsilon: self.commit_privacy()?,
        };
        let watched = report.watched_accuracy();
        if self.best.as_ref().is_none_or(|(acc, _)| watched > *acc) {
            self.best = Some((watched, self.net.duplicate()));
        }
        self.history.push(report.clone());
        Ok(report)
    }

    /// One epoch of DP-SGD: N / B Poisson batches at rate q, each a [`DpSgd::step`]; the
    /// steps go to the pending accountant. Returns the summed J as the shuffled loop sums
    /// it: the mean J over the examples the batches held, times N.
    fn private_epoch(
        &mut self,
        train: &Dataset,
        epoch: usize,
        lr: f64,
        progress: Option<&dyn Fn(usize, usize)>,
    ) -> Result<f64, TrainError> {
        let p = self.privacy.as_ref().expect("called for private runs only");
        if train.len() != p.examples {
            return Err(TrainError::Data(format!(
                "private training was set up for {} training examples (q = B / N), but the data has {}",
                p.examples,
                train.len()
            )));
        }
        let (secure, config) = (p.settings.secure_noise, p.config);
        let (mut sampler, noise) = if secure {
            let os = ChaCha20Rng::from_rng(rand::rngs::OsRng)
                .map_err(|e| TrainError::Data(format!("no randomness from the system: {e}")))?;
            (os, Noise::os())
        } else {
            // Seeded by run and epoch, as the shuffle: a resumed run draws the batches and
            // the noise that the uninterrupted one would.
            let stream = self.config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (
                ChaCha20Rng::seed_from_u64(stream ^ 0x7361_6d70_6c65), // "sample"
                Noise::seeded(stream ^ 0x006e_6f69_7365),              // "noise"
            )
        };
        let mut dp = (p.stepper)(config, &self.net, noise);
        *dp.accountant_mut() = p.accountant.clone();
        let steps = steps_per_epoch(train.len(), config.expected_batch_size) as usize;
        let (inputs, targets) = (
            self.net.inputs_per_example(),
            targets_per_example(&self.net),
        );
        let mut idx = std::mem::take(&mut self.order);
        let (mut total, mut seen) = (0.0, 0usize);
        for s in 0..steps {
            poisson_batch(train.len(), config.sample_rate, &mut sampler, &mut idx);
            let n = idx.len();
            self.reserve(n)?;
            let (x, y) = (&mut self.x[..n * inputs], &mut self.y[..n * targets]);
            fill_batch(&self.net, train, &idx, x, y)?;
            let stats = dp.step(&mut self.net, &mut self.optimizer, x, y, n, T::from_f64(lr))?;
            if !stats.loss.is_finite() {
                return Err(self.diverged(epoch, "training", stats.loss, lr));
            }
            total += stats.loss * n as f64;
            seen += n;
            if let Some(p) = progress {
                p(s + 1, steps);
            }
        }
        idx.clear();
        self.order = idx;
        if let Some(p) = &mut self.privacy {
            p.pending = Some(dp.accountant_mut().clone());
        }
        Ok(if seen == 0 {
            0.0
        } else {
            total / seen as f64 * train.len() as f64
        })
    }

    /// Keeps the steps of the epoch just reported; epsilon spent so far (None for a run
    /// that is not private).
    fn commit_privacy(&mut self) -> Result<Option<f64>, TrainError> {
        let Some(p) = &mut self.privacy else {
            return Ok(None);
        };
        if let Some(a) = p.pending.take() {
            p.accountant = a;
        }
        Ok(Some(p.accountant.spent(p.settings.delta)?.epsilon))
    }

    /// A private run's settings, its DP-SGD configuration (q, B) and the steps taken so
    /// far; `None` for a run that is not private.
    pub fn privacy(&self) -> Option<(&PrivateTraining, &DpConfig, &Accountant)> {
        (self.privacy.as_ref()).map(|p| (&p.settings, &p.config, &p.accountant))
    }

    /// epsilon spent so far at the run's delta (None for a run that is not private).
    pub fn epsilon(&self) -> Option<f64> {
        let p = self.privacy.as_ref()?;
        p.accountant.spent(p.settings.delta).ok().map(|s| s.epsilon)
    }

    /// A model file's record of private training ([`PrivateTraining::to_metadata`]):
    /// `dp_epsilon`, `dp_sample_rate`, `dp_noise`, `dp_clip`, `dp_delta`, `dp_steps`, ...;
    /// nothing for a run that is not private.
    pub fn privacy_metadata(&self) -> Vec<(String, String)> {
        (self.privacy.as_ref())
            .and_then(|p| {
                (p.settings)
                    .to_metadata(p.config.sample_rate, p.examples, &p.accountant)
                    .ok()
            })
            .unwrap_or_default()
    }

    fn diverged(&self, epoch: usize, what: &'static str, value: f64, lr: f64) -> TrainError {
        TrainError::Diverged {
            epoch,
            what,
            value,
            start: self.start_loss,
            lr,
        }
    }

    /// The test loss of the untrained network, once the first epoch has measured it (or a
    /// checkpoint has recorded it): the reference of the divergence test.
    pub fn start_loss(&self) -> Option<f64> {
        self.start_loss
    }

    /// Loss, accuracy and confusion matrix of the current network on `data`.
    ///
    /// # Errors
    /// [`TrainError::Data`] if the data does not fit the network or is empty.
    pub fn evaluate(&mut self, data: &Dataset) -> Result<Evaluation, TrainError> {
        self.reserve(EVAL_BATCH.min(data.len()).max(1))?;
        evaluate_with(&mut self.net, data, &mut self.ws, &mut self.x, &mut self.y)
    }
    /// A checkpoint's record of the run besides the model and the optimizer: the history,
    /// the best watched accuracy, and the untrained model's test loss.
    fn state_metadata(&self) -> Vec<(String, String)> {
        let history = serde_json::to_string(&self.history).expect("plain numbers serialize");
        let best_accuracy = self
            .best
            .as_ref()
            .map_or(String::new(), |b| b.0.to_string());
        let mut meta = vec![
            (HISTORY_KEY.into(), history),
            (BEST_ACCURACY_KEY.into(), best_accuracy),
        ];
        if let Some(j) = self.start_loss {
            meta.push((START_LOSS_KEY.into(), j.to_string()));
        }
        meta.extend(self.privacy_metadata());
        meta
    }

    /// Reads back [`Trainer::state_metadata`]: sets the history and the start loss, and
    /// returns the best accuracy (if an epoch has been done), whose model the caller
    /// restores from its tensors.
    fn restore_state(
        &mut self,
        meta: &BTreeMap<String, String>,
        bad: &dyn Fn(String) -> TrainError,
    ) -> Result<Option<f64>, TrainError> {
        let get = |key: &str| {
            meta.get(key)
                .ok_or_else(|| bad(format!("missing metadata {key}")))
        };
        self.history = serde_json::from_str(get(HISTORY_KEY)?)
            .map_err(|e| bad(format!("{HISTORY_KEY}: {e}")))?;
        let best_accuracy = get(BEST_ACCURACY_KEY)?;
        let best = if best_accuracy.is_empty() {
            None
        } else {
            Some(
                best_accuracy
                    .parse()
                    .map_err(|e| bad(format!("{BEST_ACCURACY_KEY}: {e}")))?,
            )
        };
        // A checkpoint from before the start was recorded: the first epoch's test loss is
        // the nearest stand-in.
        self.start_loss = match meta.get(START_LOSS_KEY) {
            Some(text) => Some(
                text.parse::<f64>()
                    .ok()
                    .filter(|j| j.is_finite() && *j >= 0.0)
                    .ok_or_else(|| {
                        bad(format!("{START_LOSS_KEY} = {text:?}: not a finite loss"))
                    })?,
            ),
            None => self.history.first().map(|r| r.test_loss),
        };
        Ok(best)
    }

    /// Loss, accuracy and confusion matrix on `data` of the model to keep
    /// ([`Trainer::final_network`]).
    ///
    /// # Errors
    /// As [`Trainer::evaluate`].
    pub fn evaluate_final(&mut self, data: &Dataset) -> Result<Evaluation, TrainError> {
        self.reserve(EVAL_BATCH.min(data.len()).max(1))?;
        let model = match (&self.config.patience, &mut self.best) {
            (Some(_), Some((_, best))) => best,
            _ => &mut self.net,
        };
        evaluate_with(model, data, &mut self.ws, &mut self.x, &mut self.y)
    }
}

impl<T: Float, M: Trainable<T> + PrivateModel<T> + 'static> Trainer<T, M> {
    /// Makes the run private: every epoch takes N / B steps of DP-SGD ([`DpSgd::step`])
    /// on Poisson batches at rate q = B / N (B, the config's batch; N = `examples`, the
    /// training examples) instead of shuffled mini-batches, as Opacus's `make_private`
    /// does; the noise and the batches are seeded by the run's seed and the epoch, unless
    /// `settings.secure_noise` draws them from the operating system.
    ///
    /// ```
    /// use backprop::data::synthetic;
    /// use backprop::privacy::PrivateTraining;
    /// use backprop::train::{TrainConfig, Trainer};
    /// let data = synthetic::xor(400, 1);
    /// let config = TrainConfig { hidden: vec![8], lr: 1.0, batch: 40, epochs: 2,
    ///                            ..TrainConfig::default() };
    /// let dp = PrivateTraining { noise: 1.0, clip: 1.0, delta: 1e-4, secure_noise: false };
    /// let mut t = Trainer::<f64>::new(config, 2, 2).unwrap().with_privacy(dp, 400).unwrap();
    /// let r = t.run_epoch(&data, &data, None).unwrap();
    /// assert_eq!(t.privacy().unwrap().2.steps(), 10); // N / B
    /// assert!(r.epsilon.unwrap() > 0.0);
    /// ```
    ///
    /// # Errors
    /// [`TrainError::Privacy`] for settings [`PrivateTraining::validate`] refuses or a
    /// batch larger than N.
    pub fn with_privacy(
        mut self,
        settings: PrivateTraining,
        examples: usize,
    ) -> Result<Self, TrainError> {
        settings.validate()?;
        let config = DpConfig::new(settings.noise, settings.clip, self.config.batch, examples)?;
        self.privacy = Some(Privacy {
            settings,
            examples,
            config,
            accountant: Accountant::new(),
            pending: None,
            stepper: dp_stepper::<T, M>,
        });
        Ok(self)
    }
}

impl<T: Float> Trainer<T> {
    /// Saves a checkpoint: a model file of the current network (so `eval` and `predict`
    /// read it too) with the optimizer's state, the best network so far, the settings and
    /// the history, from which [`Trainer::resume`] continues to the same result.
    ///
    /// # Errors
    /// [`TrainError::File`] naming the file.
    pub fn save_checkpoint(
        &self,
        path: &Path,
        metadata: &[(String, String)],
    ) -> Result<(), TrainError> {
        let mut best = Vec::new();
        if let Some((_, net)) = &self.best {
            network_tensors(net, model_file::BEST_PREFIX, &mut best);
        }
        let best: Vec<NamedTensor<'_, T>> = best
            .iter()
            .map(|(n, s, d)| (n.as_str(), s.as_slice(), *d))
            .collect();
        let mut meta = metadata.to_vec();
        meta.extend(self.config.to_metadata());
        meta.extend(self.state_metadata());
        model_file::save_checkpoint(&self.net, &self.optimizer, path, &meta, &best)?;
        Ok(())
    }

    /// Continues a run from a checkpoint written by [`Trainer::save_checkpoint`]; returns
    /// the trainer and the checkpoint's whole metadata (its data scaling, say).
    ///
    /// # Errors
    /// [`TrainError::File`] if the file cannot be read or is not a checkpoint,
    /// [`TrainError::Checkpoint`] if it lacks the training state or contradicts itself.
    pub fn resume(path: &Path) -> Result<(Self, BTreeMap<String, String>), TrainError> {
        let bad = |reason: String| TrainError::Checkpoint {
            path: path.display().to_string(),
            reason,
        };
        let checkpoint = model_file::load_checkpoint(path)?;
        let meta = checkpoint.model.metadata.clone();
        if !is_checkpoint(&meta) {
            return Err(bad(
                "it is a model file, not a checkpoint (checkpoints are written by Trainer::save_checkpoint)".into(),
            ));
        }
        let config = TrainConfig::from_metadata(&meta).map_err(bad)?;
        if checkpoint.model.network.dtype() != T::DTYPE {
            return Err(bad(format!(
                "it holds {} tensors, not {}",
                checkpoint.model.network.dtype(),
                T::DTYPE
            )));
        }
        let net: Network<T> = match &checkpoint.model.network {
            model_file::AnyNetwork::F32(n) => n.cast(),
            model_file::AnyNetwork::F64(n) => n.cast(),
        };
        let mut trainer = Self::with_model(config, net)?;
        checkpoint.restore(&mut trainer.optimizer)?;
        if let Some((settings, examples, steps)) =
            PrivateTraining::from_metadata(&meta).map_err(&bad)?
        {
            trainer = trainer.with_privacy(settings, examples)?;
            if let Some(p) = &mut trainer.privacy {
                if steps > 0 {
                    (p.accountant).add_steps(settings.noise, p.config.sample_rate, steps)?;
                }
            }
        }
        if let Some(accuracy) = trainer.restore_state(&meta, &bad)? {
            let mut best = trainer.net.clone();
            for (i, layer) in best.layers.iter_mut().enumerate() {
                for (name, dst) in [
                    (model_file::weight_name(i), layer.weights.as_mut_slice()),
                    (model_file::bias_name(i), layer.biases.as_mut_slice()),
                ] {
                    let name = format!("{}{name}", model_file::BEST_PREFIX);
                    let values = checkpoint
                        .extra
                        .get(&name)
                        .filter(|v| v.len() == dst.len())
                        .ok_or_else(|| bad(format!("missing or misshapen tensor {name}")))?;
                    for (d, &v) in dst.iter_mut().zip(values) {
                        *d = T::from_f64(v);
                    }
                }
            }
            trainer.best = Some((accuracy, best));
        }
        Ok((trainer, meta))
    }
}

impl<T: Float> Trainer<T, ArchModel<T>> {
    /// Saves a checkpoint of a model of layers: its model file ([`ArchModel::save`]'s
    /// tensors and metadata, so `eval` and `predict` read it too), the optimizer's state
    /// (`optim.{param}.{buffer}`), the best model so far (`best.{param}`), the settings and
    /// the history, from which [`Trainer::resume_arch`] continues to the same result.
    ///
    /// # Errors
    /// [`TrainError::File`] naming the file.
    pub fn save_checkpoint(
        &self,
        path: &Path,
        metadata: &[(String, String)],
    ) -> Result<(), TrainError> {
        let mut meta = self.net.metadata();
        meta.extend(metadata.iter().cloned());
        meta.extend(self.config.to_metadata());
        meta.extend(self.state_metadata());
        meta.push((
            model_file::OPTIMIZER_KEY.into(),
            self.optimizer.config().kind.name().into(),
        ));
        meta.push((
            model_file::OPTIMIZER_STEPS_KEY.into(),
            self.optimizer.steps().to_string(),
        ));
        let mut owned: Vec<(String, Vec<usize>, Vec<T>)> = Vec::new();
        self.net.visit_params(&mut |p| {
            owned.push((p.name.to_string(), p.shape.to_vec(), p.values.to_vec()))
        });
        if let Some((_, best)) = &self.best {
            best.visit_params(&mut |p| {
                owned.push((
                    format!("{}{}", model_file::BEST_PREFIX, p.name),
                    p.shape.to_vec(),
                    p.values.to_vec(),
                ))
            });
        }
        for (name, values) in self.optimizer.state_tensors() {
            owned.push((name, vec![values.len()], values.to_vec()));
        }
        let tensors: Vec<NamedTensor<'_, T>> = owned
            .iter()
            .map(|(n, s, v)| (n.as_str(), s.as_slice(), v.as_slice()))
            .collect();
        crate::safetensors_io::save_tensors(path, &tensors, &meta)?;
        Ok(())
    }

    /// Continues a run of a model of layers from a checkpoint written by
    /// [`Trainer::save_checkpoint`]; returns the trainer and the checkpoint's metadata.
    ///
    /// # Errors
    /// [`TrainError::File`] if the file cannot be read or is not a model of layers,
    /// [`TrainError::Checkpoint`] if it lacks the training state or contradicts itself.
    pub fn resume_arch(path: &Path) -> Result<(Self, BTreeMap<String, String>), TrainError> {
        let bad = |reason: String| TrainError::Checkpoint {
            path: path.display().to_string(),
            reason,
        };
        let (model, meta) = crate::nn::load(path)?;
        if !is_checkpoint(&meta) {
            return Err(bad(
                "it is a model file, not a checkpoint (checkpoints are written by Trainer::save_checkpoint)".into(),
            ));
        }
        let config = TrainConfig::from_metadata(&meta).map_err(bad)?;
        let model: ArchModel<T> = match model {
            crate::nn::AnyArchModel::F32(m) if T::DTYPE == "F32" => cast(&m),
            crate::nn::AnyArchModel::F64(m) if T::DTYPE == "F64" => cast(&m),
            _ => return Err(bad(format!("its tensors are not {}", T::DTYPE))),
        };
        let mut trainer = Self::with_model(config, model)?;
        let (tensors, _) = crate::safetensors_io::read_tensors(path)?;
        let kind = meta
            .get(model_file::OPTIMIZER_KEY)
            .map_or("", String::as_str);
        if kind != trainer.optimizer.config().kind.name() {
            return Err(bad(format!(
                "saved with optimizer {kind:?}, resumed with {:?}",
                trainer.optimizer.config().kind.name()
            )));
        }
        let steps = meta
            .get(model_file::OPTIMIZER_STEPS_KEY)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| bad(format!("no valid {}", model_file::OPTIMIZER_STEPS_KEY)))?;
        let state: BTreeMap<&str, Vec<T>> = tensors
            .iter()
            .filter(|(k, _)| k.starts_with("optim."))
            .map(|(k, (_, v))| (k.as_str(), v.iter().map(|&x| T::from_f64(x)).collect()))
            .collect();
        trainer
            .optimizer
            .load_state(steps, |name| state.get(name).map(Vec::as_slice))
            .map_err(|e| bad(e.to_string()))?;
        if let Some((settings, examples, steps)) =
            PrivateTraining::from_metadata(&meta).map_err(&bad)?
        {
            trainer = trainer.with_privacy(settings, examples)?;
            if let Some(p) = &mut trainer.privacy {
                if steps > 0 {
                    (p.accountant).add_steps(settings.noise, p.config.sample_rate, steps)?;
                }
            }
        }
        let best = trainer.restore_state(&meta, &bad)?;
        if let Some(accuracy) = best {
            let mut model = trainer.net.duplicate();
            let mut missing = None;
            model.visit_values_mut(&mut |p| {
                let name = format!("{}{}", model_file::BEST_PREFIX, p.name);
                match tensors
                    .get(&name)
                    .filter(|(_, v)| v.len() == p.values.len())
                {
                    Some((_, v)) => {
                        for (d, &x) in p.values.iter_mut().zip(v) {
                            *d = T::from_f64(x);
                        }
                    }
                    None => missing = missing.take().or(Some(name)),
                }
            });
            if let Some(name) = missing {
                return Err(bad(format!("missing or misshapen tensor {name}")));
            }
            trainer.best = Some((accuracy, model));
        }
        Ok((trainer, meta))
    }
}

/// The same model in another precision (an F32 file read for an f64 run is exact).
fn cast<S: Float, T: Float>(m: &ArchModel<S>) -> ArchModel<T> {
    let mut out = ArchModel::new(m.net.arch(), &m.input_shape, m.cost, m.vocab.clone(), 0)
        .expect("the arch, input shape and cost built this model already");
    let mut values = Vec::new();
    m.net.visit_params(&mut |p| {
        values.push(
            p.values
                .iter()
                .map(|&v| Float::to_f64(v))
                .collect::<Vec<f64>>(),
        )
    });
    let mut next = values.into_iter();
    out.net.visit_values_mut(&mut |p| {
        if let Some(v) = next.next() {
            for (d, x) in p.values.iter_mut().zip(v) {
                *d = T::from_f64(x);
            }
        }
    });
    out
}

/// Whether a model file's metadata is a checkpoint's (written by
/// [`Trainer::save_checkpoint`]): it holds the training history. A model saved after
/// training records its settings (`train.*`) too, but not the state to go on from.
///
/// ```
/// use std::collections::BTreeMap;
/// let mut meta = BTreeMap::new();
/// meta.insert("train.lr".to_string(), "0.5".to_string());
/// assert!(!backprop::train::is_checkpoint(&meta));
/// ```
pub fn is_checkpoint(meta: &BTreeMap<String, String>) -> bool {
    meta.contains_key(HISTORY_KEY)
}

/// Checkpoint metadata: the epoch reports so far (JSON).
const HISTORY_KEY: &str = "checkpoint.history";
/// Checkpoint metadata: the best watched (validation, else test) accuracy so far (empty before the first epoch).
const BEST_ACCURACY_KEY: &str = "checkpoint.best_accuracy";
/// Checkpoint metadata: the test loss of the untrained network (the divergence test's
/// reference).
const START_LOSS_KEY: &str = "checkpoint.start_loss";

fn network_tensors<'a, T: Float>(
    net: &'a Network<T>,
    prefix: &str,
    out: &mut Vec<(String, Vec<usize>, &'a [T])>,
) {
    for (i, l) in net.layers.iter().enumerate() {
        let shape = vec![l.weights.rows(), l.weights.cols()];
        out.push((
            format!("{prefix}{}", model_file::weight_name(i)),
            shape,
            l.weights.as_slice(),
        ));
        out.push((
            format!("{prefix}{}", model_file::bias_name(i)),
            vec![l.biases.len()],
            &l.biases,
        ));
    }
}

/// Values of one example's targets: k one-hot rows, or k class indices.
fn targets_per_example<T: Float, M: Trainable<T>>(model: &M) -> usize {
    let k = model.labels_per_example();
    if model.one_hot_targets() {
        k * model.classes()
    } else {
        k
    }
}

fn check_fits<T: Float, M: Trainable<T>>(model: &M, data: &Dataset) -> Result<(), TrainError> {
    let (inputs, k, outputs) = (
        model.inputs_per_example(),
        model.labels_per_example(),
        model.classes(),
    );
    if data.features != inputs {
        return Err(TrainError::Data(format!(
            "the model takes {inputs} inputs but the data has {} features",
            data.features
        )));
    }
    if data.labels_per_example != k {
        return Err(TrainError::Data(format!(
            "the model makes {k} predictions per example but the data has {} labels per example",
            data.labels_per_example
        )));
    }
    if let Some(&bad) = data.labels.iter().find(|&&l| l as usize >= outputs) {
        return Err(TrainError::Data(format!(
            "label {bad} does not fit the model's {outputs} outputs"
        )));
    }
    Ok(())
}

/// Copies the examples `idx` into `x` (n x N^1) and their targets into `y`: one-hot rows
/// (n x k x N^L), or class indices (n x k), as the model takes them.
fn fill_batch<T: Float, M: Trainable<T>>(
    model: &M,
    data: &Dataset,
    idx: &[usize],
    x: &mut [T],
    y: &mut [T],
) -> Result<(), TrainError> {
    data.inputs_into(idx, x)
        .map_err(|e| TrainError::Data(e.to_string()))?;
    let labels = idx.iter().flat_map(|&i| data.labels_of(i));
    if model.one_hot_targets() {
        y.fill(T::zero());
        for (row, &l) in y.chunks_exact_mut(model.classes()).zip(labels) {
            row[l as usize] = T::one();
        }
    } else {
        for (t, &l) in y.iter_mut().zip(labels) {
            *t = T::from_f64(f64::from(l));
        }
    }
    Ok(())
}

/// Loss, accuracy and confusion matrix of `net` on `data`, in batches.
///
/// ```
/// use backprop::data::synthetic;
/// use backprop::network::{Activation, Cost, Init, Network};
/// let data = synthetic::xor(100, 3);
/// let net = Network::<f64>::new(&[2, 4, 2], &[Activation::Tanh, Activation::Softmax],
///                               Cost::LogLikelihood, Init::Xavier, 0).unwrap();
/// let e = backprop::train::evaluate(&net, &data).unwrap();
/// assert_eq!(e.n, 100);
/// assert_eq!(e.confusion.total(), 100);
/// ```
///
/// # Errors
/// [`TrainError::Data`] if the data does not fit the network or has no examples (whose
/// accuracy would be a meaningless 0).
pub fn evaluate<T: Float>(net: &Network<T>, data: &Dataset) -> Result<Evaluation, TrainError> {
    // The workspace is the evaluation's; the network is only read.
    evaluate_model(&mut net.clone(), data)
}

/// Loss, accuracy and confusion matrix of any [`Trainable`] model on `data`, in batches:
/// for a model that predicts at k positions per example (a character model), the loss is
/// the mean over all n·k positions (nats per character for the log-likelihood), and the
/// accuracy and confusion count every position.
///
/// ```
/// use backprop::data::text::Text;
/// use backprop::network::Cost;
/// use backprop::nn::ArchModel;
/// let t = Text::from_bytes("abc".repeat(20).as_bytes(), "abc".as_ref()).unwrap();
/// let split = t.split(4).unwrap();
/// let arch = "Embedding(3, 4), LSTM(4, 8), Linear(8, 3), Softmax(dim=-1)".parse().unwrap();
/// let mut model = ArchModel::<f64>::new(&arch, &[4], Cost::LogLikelihood, Some(t.vocab), 1).unwrap();
/// let e = backprop::train::evaluate_model(&mut model, &split.train).unwrap();
/// // 54 training characters: 13 sequences of 4, each with the 4 next characters.
/// assert_eq!((e.n, e.confusion.total()), (13, 52));
/// assert!((e.loss - 3f64.ln()).abs() < 0.3, "{}", e.loss); // about ln 3 untrained
/// ```
///
/// # Errors
/// [`TrainError::Data`] if the data does not fit the model or has no examples;
/// [`TrainError::Nn`] for inputs a model of layers refuses.
pub fn evaluate_model<T: Float, M: Trainable<T>>(
    model: &mut M,
    data: &Dataset,
) -> Result<Evaluation, TrainError> {
    let batch = EVAL_BATCH.min(data.len()).max(1);
    let mut ws = model.scratch(batch)?;
    let mut x = vec![T::zero(); batch * model.inputs_per_example()];
    let mut y = vec![T::zero(); batch * targets_per_example(model)];
    evaluate_with(model, data, &mut ws, &mut x, &mut y)
}

fn evaluate_with<T: Float, M: Trainable<T>>(
    net: &mut M,
    data: &Dataset,
    ws: &mut M::Scratch,
    x: &mut [T],
    y: &mut [T],
) -> Result<Evaluation, TrainError> {
    if data.is_empty() {
        return Err(TrainError::Data(
            "no examples to evaluate on (an accuracy of 0 out of 0 means nothing)".into(),
        ));
    }
    check_fits(net, data)?;
    let (inputs, targets, outputs) = (
        net.inputs_per_example(),
        targets_per_example(net),
        net.classes(),
    );
    let batch = x.len() / inputs;
    let mut confusion = Confusion::default();
    let (mut loss, mut right) = (0.0, 0usize);
    let all: Vec<usize> = (0..data.len()).collect();
    for idx in all.chunks(batch) {
        let n = idx.len();
        let (x, y) = (&mut x[..n * inputs], &mut y[..n * targets]);
        fill_batch(net, data, idx, x, y)?;
        let (j, a) = net.loss_and_outputs(ws, x, y, n)?;
        loss += j.to_f64() * n as f64;
        let truths = idx.iter().flat_map(|&i| data.labels_of(i));
        for (row, &truth) in a.chunks_exact(outputs).zip(truths) {
            let predicted = argmax(row);
            let truth = truth as usize;
            confusion.add(truth, predicted);
            right += usize::from(predicted == truth);
        }
    }
    let n = data.len();
    Ok(Evaluation {
        loss: loss / n as f64,
        accuracy: right as f64 / data.labels.len() as f64,
        n,
        confusion,
    })
}

/// The index of the largest entry (the first, on ties): the predicted class.
///
/// ```
/// assert_eq!(backprop::train::argmax(&[0.1f32, 0.7, 0.2]), 1);
/// ```
pub fn argmax<T: Float>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
