//! A trained classifier as a library user holds it: the network, the input scaling it was
//! trained with, and the file's metadata, in either precision, behind one type.
//!
//! The command line's `train`, `eval` and `predict` use the same files: a model saved here
//! is a model `backprop predict` reads, and the other way round.

use std::collections::BTreeMap;
use std::path::Path;

use crate::data::Scaling;
use crate::model_file::{self, AnyNetwork};
use crate::network::{Network, NetworkError, Workspace};
use crate::Float;

/// Metadata keys that [`model_file::save`] writes from the network itself.
const NETWORK_KEYS: [&str; 3] = ["layers", "activations", "cost"];

/// A trained network with its input scaling: raw rows in, classes (or a^L) out.
///
/// ```
/// use backprop::data::{digits, ScalingKind};
/// use backprop::train::{TrainConfig, Trainer};
/// use backprop::Classifier;
///
/// // Train on the built-in digits, scaled as `backprop train` scales them.
/// let split = digits::split();
/// let scaling = ScalingKind::Auto.fit(&split.train);
/// let (mut train, mut test) = (split.train.clone(), split.test.clone());
/// scaling.apply(&mut train)?;
/// scaling.apply(&mut test)?;
/// let config = TrainConfig { epochs: 5, ..TrainConfig::default() };
/// let mut trainer = Trainer::<f32>::new(config, train.features, train.classes)?;
/// while !trainer.finished() {
///     trainer.run_epoch(&train, &test, None)?;
/// }
///
/// // Save with the scaling, load without knowing the precision, predict on raw pixels.
/// let model = Classifier::new(trainer.final_network().clone(), scaling);
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("digits.safetensors");
/// model.save(&path, &[])?;
/// let loaded = Classifier::load(&path)?;
/// let rows = &split.test.inputs[..3 * 64]; // three images, pixels 0..16
/// assert_eq!(loaded.predict(rows)?, model.predict(rows)?);
/// let p = loaded.predict_proba(rows)?; // 3 x 10, each row sums to 1 (softmax output)
/// assert!((p[..10].iter().sum::<f64>() - 1.0).abs() < 1e-5);
/// # Ok::<(), backprop::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Classifier {
    network: AnyNetwork,
    scaling: Scaling,
    metadata: BTreeMap<String, String>,
}

/// What [`Classifier`] can report.
#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    /// Rows whose length is not a whole number of examples.
    #[error("{values} input values are not a whole number of rows of {features}")]
    RaggedRows {
        /// How many values were given.
        values: usize,
        /// N^1, the network's inputs.
        features: usize,
    },
    /// No rows.
    #[error("no rows to predict")]
    NoRows,
}

impl Classifier {
    /// A classifier from a trained network (f32 or f64) and the scaling it was trained
    /// with.
    pub fn new<T: Float>(network: Network<T>, scaling: Scaling) -> Self
    where
        AnyNetwork: From<Network<T>>,
    {
        Classifier {
            network: AnyNetwork::from(network),
            scaling,
            metadata: BTreeMap::new(),
        }
    }

    /// Reads a model file (from [`Classifier::save`] or `backprop train --out`), in its own
    /// precision, with its stored scaling.
    ///
    /// # Errors
    /// [`crate::Error::ModelFile`] for a bad file, [`crate::Error::Data`] for a bad stored
    /// scaling.
    pub fn load(path: &Path) -> crate::Result<Self> {
        let loaded = model_file::load(path)?;
        let scaling = Scaling::from_metadata(&loaded.metadata)?;
        Ok(Classifier {
            network: loaded.network,
            scaling,
            metadata: loaded.metadata,
        })
    }

    /// Writes the network and its scaling (and `extra` metadata) atomically, in the
    /// network's precision.
    ///
    /// # Errors
    /// [`crate::Error::ModelFile`] if the file cannot be written.
    pub fn save(&self, path: &Path, extra: &[(String, String)]) -> crate::Result<()> {
        let mut meta: Vec<(String, String)> = self
            .metadata
            .iter()
            .filter(|(k, _)| !NETWORK_KEYS.contains(&k.as_str()))
            .filter(|(k, _)| k.as_str() != Scaling::METADATA_KEY)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        meta.push(self.scaling.to_metadata());
        meta.extend(extra.iter().cloned());
        match &self.network {
            AnyNetwork::F32(n) => model_file::save(n, path, &meta)?,
            AnyNetwork::F64(n) => model_file::save(n, path, &meta)?,
        }
        Ok(())
    }

    /// The network, in its precision.
    pub fn network(&self) -> &AnyNetwork {
        &self.network
    }

    /// The input scaling applied before the network.
    pub fn scaling(&self) -> &Scaling {
        &self.scaling
    }

    /// The file's metadata (empty for a classifier made in memory).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// N^1: the inputs of one example.
    pub fn inputs(&self) -> usize {
        self.network.sizes()[0]
    }

    /// N^L: the classes.
    pub fn classes(&self) -> usize {
        *self.network.sizes().last().expect("a network has layers")
    }

    /// a^L for each row of raw (unscaled) inputs, row-major `rows.len() / inputs` x N^L,
    /// in f64.
    ///
    /// # Errors
    /// [`ClassifierError`] for rows that do not fit, [`crate::Error::Data`] if the scaled
    /// inputs leave f32's range.
    pub fn predict_proba(&self, rows: &[f32]) -> crate::Result<Vec<f64>> {
        let features = self.inputs();
        if rows.is_empty() {
            return Err(ClassifierError::NoRows.into());
        }
        if !rows.len().is_multiple_of(features) {
            return Err(ClassifierError::RaggedRows {
                values: rows.len(),
                features,
            }
            .into());
        }
        let mut x = rows.to_vec();
        self.scaling.apply_rows(&mut x, features)?;
        let n = x.len() / features;
        Ok(match &self.network {
            AnyNetwork::F32(net) => forward(net, &x, n)?,
            AnyNetwork::F64(net) => forward(net, &x, n)?,
        })
    }

    /// The class (the index of the largest a^L_j) of each row of raw inputs.
    ///
    /// # Errors
    /// As [`Classifier::predict_proba`].
    pub fn predict(&self, rows: &[f32]) -> crate::Result<Vec<usize>> {
        let k = self.classes();
        Ok(self
            .predict_proba(rows)?
            .chunks(k)
            .map(crate::train::argmax)
            .collect())
    }
}

fn forward<T: Float>(net: &Network<T>, x: &[f32], n: usize) -> Result<Vec<f64>, NetworkError> {
    let x: Vec<T> = x.iter().map(|&v| T::from_f32(v)).collect();
    let mut ws = Workspace::new(net, n);
    let a = net.try_feed_forward(&x, n, &mut ws)?;
    Ok(a.iter().map(|&v| Float::to_f64(v)).collect())
}

impl From<Network<f32>> for AnyNetwork {
    fn from(n: Network<f32>) -> Self {
        AnyNetwork::F32(n)
    }
}

impl From<Network<f64>> for AnyNetwork {
    fn from(n: Network<f64>) -> Self {
        AnyNetwork::F64(n)
    }
}
