//! The training loop: epochs of shuffled mini-batches, the seed's SGD (or a relative of
//! it), held-out metrics, early stopping, and checkpoints that resume exactly.
//!
//! One epoch: shuffle the training examples (seeded by the run's seed and the epoch
//! number, so a resumed run shuffles as the uninterrupted one would), then for each
//! mini-batch let [`Network::backprop`] compute J and dJ/dtheta by the four equations and
//! the [`Optimizer`] update the weights and biases; then evaluate the held-out part.

use std::collections::BTreeMap;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::{DataError, Dataset};
use crate::model_file::{self, ModelFileError, NamedTensor};
use crate::network::{Activation, Cost, Gradients, Init, Network, NetworkError, Workspace};
use crate::optim::{OptimError, Optimizer, OptimizerConfig, OptimizerKind, Schedule};
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

    /// Reads back [`TrainConfig::to_metadata`].
    ///
    /// ```
    /// use backprop::train::TrainConfig;
    /// let c = TrainConfig::default();
    /// let meta = c.to_metadata().into_iter().collect();
    /// assert_eq!(TrainConfig::from_metadata(&meta).unwrap(), c);
    /// ```
    ///
    /// # Errors
    /// The key that is missing or does not parse.
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
            text.parse()
                .map_err(|e| format!("metadata train.{key} = {text:?}: {e}"))
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
        Ok(TrainConfig {
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
            schedule: Schedule::parse(&schedule, epochs)?,
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
        })
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
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
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
    /// The data does not fit the network.
    #[error("{0}")]
    Data(String),
    /// J became NaN or infinite.
    #[error("the training loss became {value} in epoch {epoch}; try a lower --lr (it was {lr})")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// The loss value.
        value: f64,
        /// The learning rate in force.
        lr: f64,
    },
    /// A checkpoint that this code did not write, or that contradicts itself.
    #[error("{path}: not a usable checkpoint: {reason}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Examples per forward pass when evaluating (memory, not results, depends on it).
const EVAL_BATCH: usize = 256;

/// A training run in progress: the network, its optimizer, and the history so far.
pub struct Trainer<T: Float> {
    config: TrainConfig,
    net: Network<T>,
    optimizer: Optimizer<T>,
    grads: Gradients<T>,
    ws: Workspace<T>,
    x: Vec<T>,
    y: Vec<T>,
    order: Vec<usize>,
    history: Vec<EpochReport>,
    best: Option<(f64, Network<T>)>,
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
    /// [`TrainError::Network`] for sizes or activations that make no network,
    /// [`TrainError::Data`] for a batch of 0.
    pub fn new(config: TrainConfig, features: usize, classes: usize) -> Result<Self, TrainError> {
        let net = Network::new(
            &config.sizes(features, classes),
            &config.activations(),
            config.cost,
            config.init,
            config.seed,
        )?;
        Self::from_network(config, net)
    }

    fn from_network(config: TrainConfig, net: Network<T>) -> Result<Self, TrainError> {
        if config.batch == 0 {
            return Err(TrainError::Data("the batch size must be at least 1".into()));
        }
        let optimizer = Optimizer::new(config.optimizer, &net)?;
        let max_batch = config.batch.max(EVAL_BATCH);
        let sizes = net.sizes();
        let (inputs, outputs) = (sizes[0], sizes[sizes.len() - 1]);
        Ok(Trainer {
            grads: Gradients::zeros_like(&net),
            ws: Workspace::new(&net, max_batch),
            x: vec![T::zero(); max_batch * inputs],
            y: vec![T::zero(); max_batch * outputs],
            order: Vec::new(),
            history: Vec::new(),
            best: None,
            optimizer,
            net,
            config,
        })
    }

    /// The network as it is now.
    pub fn network(&self) -> &Network<T> {
        &self.net
    }

    /// The network to keep: with `patience`, the one with the best validation accuracy
    /// (test accuracy without a validation part) so far; otherwise the current one.
    pub fn final_network(&self) -> &Network<T> {
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
    /// # Errors
    /// [`TrainError::Diverged`] if J becomes NaN or infinite: the network and optimizer
    /// are then left as they were before the epoch, the last good state.
    /// [`TrainError::Data`] if the data does not fit the network.
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
        let start = std::time::Instant::now();
        let sizes = self.net.sizes();
        check_fits(&sizes, train)?;
        check_fits(&sizes, test)?;
        if let Some(v) = validation {
            check_fits(&sizes, v)?;
        }
        let epoch = self.history.len() + 1;
        let lr = self.config.schedule.lr_at(self.config.lr, epoch - 1);
        let last_good = (self.net.clone(), self.optimizer.clone());

        // Seeded by run and epoch: a resumed run shuffles as the uninterrupted one would.
        self.order.clear();
        self.order.extend(0..train.len());
        let stream = (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.order
            .shuffle(&mut ChaCha8Rng::seed_from_u64(self.config.seed ^ stream));

        let (inputs, outputs) = (sizes[0], sizes[sizes.len() - 1]);
        let batches = train.len().div_ceil(self.config.batch);
        let mut total = 0.0;
        for (b, idx) in self.order.chunks(self.config.batch).enumerate() {
            let n = idx.len();
            let (x, y) = (&mut self.x[..n * inputs], &mut self.y[..n * outputs]);
            fill_batch(train, idx, x, y, outputs)?;
            let j = self
                .net
                .backprop(x, y, n, &mut self.ws, &mut self.grads)
                .to_f64();
            if !j.is_finite() {
                (self.net, self.optimizer) = last_good;
                return Err(TrainError::Diverged {
                    epoch,
                    value: j,
                    lr,
                });
            }
            total += j * n as f64;
            self.optimizer
                .step(&mut self.net, &self.grads, T::from_f64(lr))?;
            if let Some(p) = progress {
                p(b + 1, batches);
            }
        }
        let eval = self.evaluate(test)?;
        let validation = validation.map(|v| self.evaluate(v)).transpose()?;
        let report = EpochReport {
            epoch,
            lr,
            train_loss: total / train.len().max(1) as f64,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
            validation_loss: validation.as_ref().map(|v| v.loss),
            validation_accuracy: validation.as_ref().map(|v| v.accuracy),
            seconds: start.elapsed().as_secs_f64(),
        };
        let watched = report.watched_accuracy();
        if self.best.as_ref().is_none_or(|(acc, _)| watched > *acc) {
            self.best = Some((watched, self.net.clone()));
        }
        self.history.push(report.clone());
        Ok(report)
    }

    /// Loss, accuracy and confusion matrix of the current network on `data`.
    ///
    /// # Errors
    /// [`TrainError::Data`] if the data does not fit the network.
    pub fn evaluate(&mut self, data: &Dataset) -> Result<Evaluation, TrainError> {
        evaluate_with(&self.net, data, &mut self.ws, &mut self.x, &mut self.y)
    }

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
        let history = serde_json::to_string(&self.history).expect("plain numbers serialize");
        meta.push((HISTORY_KEY.into(), history));
        let best_accuracy = self
            .best
            .as_ref()
            .map_or(String::new(), |b| b.0.to_string());
        meta.push((BEST_ACCURACY_KEY.into(), best_accuracy));
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
        let mut trainer = Self::from_network(config, net)?;
        checkpoint.restore(&mut trainer.optimizer)?;
        let get = |key: &str| {
            meta.get(key)
                .ok_or_else(|| bad(format!("missing metadata {key}")))
        };
        trainer.history = serde_json::from_str(get(HISTORY_KEY)?)
            .map_err(|e| bad(format!("{HISTORY_KEY}: {e}")))?;
        let best_accuracy = get(BEST_ACCURACY_KEY)?;
        if !best_accuracy.is_empty() {
            let accuracy: f64 = best_accuracy
                .parse()
                .map_err(|e| bad(format!("{BEST_ACCURACY_KEY}: {e}")))?;
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

/// Checkpoint metadata: the epoch reports so far (JSON).
const HISTORY_KEY: &str = "checkpoint.history";
/// Checkpoint metadata: the best watched (validation, else test) accuracy so far (empty before the first epoch).
const BEST_ACCURACY_KEY: &str = "checkpoint.best_accuracy";

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

fn check_fits(sizes: &[usize], data: &Dataset) -> Result<(), TrainError> {
    let (inputs, outputs) = (sizes[0], sizes[sizes.len() - 1]);
    if data.features != inputs {
        return Err(TrainError::Data(format!(
            "the model takes {inputs} inputs but the data has {} features",
            data.features
        )));
    }
    if let Some(&bad) = data.labels.iter().find(|&&l| l as usize >= outputs) {
        return Err(TrainError::Data(format!(
            "label {bad} does not fit the model's {outputs} outputs"
        )));
    }
    Ok(())
}

/// Copies the examples `idx` into `x` (n x N^1) and their one-hot labels into `y`
/// (n x N^L).
fn fill_batch<T: Float>(
    data: &Dataset,
    idx: &[usize],
    x: &mut [T],
    y: &mut [T],
    outputs: usize,
) -> Result<(), TrainError> {
    data.inputs_into(idx, x)
        .map_err(|e| TrainError::Data(e.to_string()))?;
    y.fill(T::zero());
    for (row, &i) in y.chunks_exact_mut(outputs).zip(idx) {
        row[data.labels[i] as usize] = T::one();
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
/// assert_eq!(e.confusion.iter().flatten().sum::<usize>(), 100);
/// ```
///
/// # Errors
/// [`TrainError::Data`] if the data does not fit the network.
pub fn evaluate<T: Float>(net: &Network<T>, data: &Dataset) -> Result<Evaluation, TrainError> {
    let sizes = net.sizes();
    let batch = EVAL_BATCH.min(data.len()).max(1);
    let mut ws = Workspace::new(net, batch);
    let mut x = vec![T::zero(); batch * sizes[0]];
    let mut y = vec![T::zero(); batch * sizes[sizes.len() - 1]];
    evaluate_with(net, data, &mut ws, &mut x, &mut y)
}

fn evaluate_with<T: Float>(
    net: &Network<T>,
    data: &Dataset,
    ws: &mut Workspace<T>,
    x: &mut [T],
    y: &mut [T],
) -> Result<Evaluation, TrainError> {
    let sizes = net.sizes();
    check_fits(&sizes, data)?;
    let (inputs, outputs) = (sizes[0], sizes[sizes.len() - 1]);
    let batch = x.len() / inputs;
    let mut confusion = vec![vec![0usize; outputs]; outputs];
    let (mut loss, mut right) = (0.0, 0usize);
    let all: Vec<usize> = (0..data.len()).collect();
    for idx in all.chunks(batch) {
        let n = idx.len();
        let (x, y) = (&mut x[..n * inputs], &mut y[..n * outputs]);
        fill_batch(data, idx, x, y, outputs)?;
        loss += net.try_cost(x, y, n, ws)?.to_f64() * n as f64;
        // `cost` ran the feed-forward: a^L is in the workspace.
        let a = &ws.a(sizes.len() - 2)[..n * outputs];
        for (row, &i) in a.chunks_exact(outputs).zip(idx) {
            let predicted = argmax(row);
            let truth = data.labels[i] as usize;
            confusion[truth][predicted] += 1;
            right += usize::from(predicted == truth);
        }
    }
    let n = data.len();
    Ok(Evaluation {
        loss: loss / n.max(1) as f64,
        accuracy: right as f64 / n.max(1) as f64,
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
