//! A model of layers in a file: its parameters under PyTorch's names, and what it takes to
//! rebuild it in the metadata.
//!
//! The tensors are [`Sequential`]'s named parameters (`0.weight`, `1.weight_ih_l0`, ...),
//! so a PyTorch `nn.Sequential`'s `state_dict` saved with `safetensors.torch.save_file` and
//! the metadata below loads unchanged. `__metadata__` holds:
//!
//! - `arch`: the arch string, every preset expanded (`Conv2d(1, 6, 5, padding=2), ...`);
//! - `input_shape`: one example's dimensions, comma-separated: `1,28,28` for an image, `T`
//!   for a sequence of T token ids, `T,F` for T vectors of F values;
//! - `cost`: `quadratic`, `cross-entropy` or `log-likelihood`;
//! - `vocab` (character models only): the characters of the ids 0, 1, ..., as a JSON array
//!   of one-character strings, so that `sample` needs no data file;
//! - any other keys the caller adds (training settings, input scaling).
//!
//! Loading goes through the same checks as building ([`ArchModel::new`]): a file whose
//! arch does not parse, whose layers do not fit its input shape, or whose cost does not
//! fit its last layer is refused naming the file and the key.

use super::{Arch, ArchError, Layer, Sequential};
use crate::data::text::Vocab;
use crate::data::Dataset;
use crate::model_file::{load_named, save_named, LoadedModel, ModelFileError};
use crate::network::Cost;
use crate::safetensors_io::{metadata_of, parse, read_file};
use crate::train::{argmax, Confusion, Evaluation, TrainError};
use crate::Float;
use safetensors::tensor::Dtype;
use std::collections::BTreeMap;
use std::path::Path;

/// Metadata key of the arch string.
pub const ARCH_KEY: &str = "arch";
/// Metadata key of one example's shape.
pub const INPUT_SHAPE_KEY: &str = "input_shape";
/// Metadata key of the cost.
pub const COST_KEY: &str = "cost";
/// Metadata key of a character model's vocabulary.
pub const VOCAB_KEY: &str = "vocab";

/// The arch strings that the presets `lenet5`, `convnet` and `char-lstm` stand for.
/// `vocab` is the vocabulary size V of `char-lstm` (ignored by the others).
///
/// ```
/// use backprop::nn::{preset, Arch};
/// let lenet: Arch = preset("lenet5", 0).unwrap().parse().unwrap();
/// assert_eq!(lenet.layers().len(), 13);
/// assert_eq!(
///     preset("char-lstm", 73).unwrap(),
///     "Embedding(73, 64), LSTM(64, 128, num_layers=2), Linear(128, 73), Softmax(dim=-1)"
/// );
/// assert!(preset("resnet", 0).is_none());
/// ```
pub fn preset(name: &str, vocab: usize) -> Option<String> {
    match name {
        // LeCun et al. 1998, with ReLU and max-pooling as PyTorch users write it today.
        "lenet5" => Some(
            "Conv2d(1, 6, 5, padding=2), ReLU(), MaxPool2d(2), Conv2d(6, 16, 5), ReLU(), \
             MaxPool2d(2), Flatten(), Linear(400, 120), ReLU(), Linear(120, 84), ReLU(), \
             Linear(84, 10), Softmax(dim=-1)"
                .into(),
        ),
        // PyTorch's examples/mnist network, without its dropout.
        "convnet" => Some(
            "Conv2d(1, 32, 3), ReLU(), Conv2d(32, 64, 3), ReLU(), MaxPool2d(2), Flatten(), \
             Linear(9216, 128), ReLU(), Linear(128, 10), Softmax(dim=-1)"
                .into(),
        ),
        // char-rnn's default model.
        "char-lstm" => Some(format!(
            "Embedding({vocab}, 64), LSTM(64, 128, num_layers=2), Linear(128, {vocab}), Softmax(dim=-1)"
        )),
        _ => None,
    }
}

/// The names [`preset`] knows.
pub const PRESETS: [&str; 3] = ["lenet5", "convnet", "char-lstm"];

/// Parses an input shape written `C,H,W`, `T` or `T,F`: positive whole numbers separated
/// by commas.
///
/// ```
/// use backprop::nn::parse_input_shape;
/// assert_eq!(parse_input_shape("1, 28,28").unwrap(), vec![1, 28, 28]);
/// assert!(parse_input_shape("1,0,28").is_err());
/// assert!(parse_input_shape("").is_err());
/// ```
///
/// # Errors
/// A message saying which part is not a positive whole number.
pub fn parse_input_shape(s: &str) -> Result<Vec<usize>, String> {
    let dims: Vec<usize> = s
        .split(',')
        .map(|d| {
            let d = d.trim();
            match d.parse::<usize>() {
                Ok(v) if v > 0 => Ok(v),
                _ => Err(format!(
                    "{d:?} is not a positive whole number (expected sizes like 1,28,28)"
                )),
            }
        })
        .collect::<Result<_, _>>()?;
    if dims.len() > 4 {
        return Err(format!(
            "{} dimensions; an example has 1 to 4 (C,H,W; T; T,F)",
            dims.len()
        ));
    }
    Ok(dims)
}

/// Refuses a cost that is not defined on what the last layer gives: the log-likelihood
/// −ln a_y needs probabilities (a final `Softmax`), the cross-entropy values in (0, 1) (a
/// final `Sigmoid` or `Softmax`). The quadratic cost takes any output.
///
/// ```
/// use backprop::network::Cost;
/// use backprop::nn::{check_cost, Arch};
/// let arch: Arch = "Linear(4, 3), Softmax(dim=-1)".parse().unwrap();
/// assert!(check_cost(&arch, Cost::LogLikelihood).is_ok());
/// let arch: Arch = "Linear(4, 3)".parse().unwrap();
/// assert!(check_cost(&arch, Cost::LogLikelihood).is_err());
/// ```
///
/// # Errors
/// A message naming the cost and the layer it needs.
pub fn check_cost(arch: &Arch, cost: Cost) -> Result<(), String> {
    let last = arch.layers().last();
    let ok = match cost {
        Cost::Quadratic => true,
        Cost::LogLikelihood => matches!(last, Some(Layer::Softmax)),
        Cost::CrossEntropy => matches!(last, Some(Layer::Softmax | Layer::Sigmoid)),
    };
    if ok {
        Ok(())
    } else {
        let needs = match cost {
            Cost::LogLikelihood => "Softmax(dim=-1)",
            _ => "Sigmoid() or Softmax(dim=-1)",
        };
        Err(format!(
            "the {cost} cost needs probabilities: end the arch with {needs} (it ends with {})",
            last.map_or("no layer".to_string(), |l| l.to_string())
        ))
    }
}

/// A model of layers with what it takes to train, evaluate and store it: the examples'
/// shape, the cost, and (for a character model) the vocabulary.
///
/// ```
/// use backprop::network::Cost;
/// use backprop::nn::{load, AnyArchModel, ArchModel};
/// let arch = "Conv2d(1, 2, 3), ReLU(), Flatten(), Linear(72, 3), Softmax(dim=-1)".parse().unwrap();
/// let model = ArchModel::<f32>::new(&arch, &[1, 8, 8], Cost::LogLikelihood, None, 1).unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("cnn.safetensors");
/// model.save(&path, &[("classes".into(), "3".into())]).unwrap();
///
/// let (loaded, metadata) = load(&path).unwrap();
/// assert_eq!(metadata["input_shape"], "1,8,8");
/// let AnyArchModel::F32(loaded) = loaded else { panic!("an f32 file") };
/// assert_eq!(loaded.net.param("3.weight"), model.net.param("3.weight"));
/// ```
#[derive(Debug)]
pub struct ArchModel<T> {
    /// The layers and their parameters.
    pub net: Sequential<T>,
    /// One example's shape (`[1, 28, 28]`, `[T]`, `[T, F]`).
    pub input_shape: Vec<usize>,
    /// The cost training minimises.
    pub cost: Cost,
    /// A character model's vocabulary: token id i is `vocab.chars()[i]`.
    pub vocab: Option<Vocab>,
}

impl<T: Float> ArchModel<T> {
    /// Builds the model, parameters drawn as PyTorch draws them (seeded).
    ///
    /// # Errors
    /// [`ArchError`] for layers that do not fit `input_shape` or each other, or a cost the
    /// last layer does not support (see [`check_cost`]).
    pub fn new(
        arch: &Arch,
        input_shape: &[usize],
        cost: Cost,
        vocab: Option<Vocab>,
        seed: u64,
    ) -> Result<Self, ArchError> {
        check_cost(arch, cost).map_err(ArchError::Cost)?;
        let net = Sequential::new(arch, input_shape, seed)?;
        Ok(ArchModel {
            net,
            input_shape: input_shape.to_vec(),
            cost,
            vocab,
        })
    }

    /// The metadata that rebuilds the model: `arch`, `input_shape`, `cost`, and `vocab`
    /// for a character model.
    pub fn metadata(&self) -> Vec<(String, String)> {
        let shape: Vec<String> = self.input_shape.iter().map(|d| d.to_string()).collect();
        let mut meta = vec![
            (ARCH_KEY.to_string(), self.net.arch().to_string()),
            (INPUT_SHAPE_KEY.to_string(), shape.join(",")),
            (COST_KEY.to_string(), self.cost.name().to_string()),
        ];
        if let Some(v) = &self.vocab {
            meta.push((VOCAB_KEY.to_string(), v.to_json()));
        }
        meta
    }

    /// Writes the model file (atomically): the parameters, [`ArchModel::metadata`], then
    /// `extra` (whose keys must not repeat those).
    ///
    /// # Errors
    /// [`ModelFileError::Io`] naming the file; [`ModelFileError::BadMetadata`] for an
    /// `extra` key that the model's own metadata uses.
    pub fn save(&self, path: &Path, extra: &[(String, String)]) -> Result<(), ModelFileError> {
        let mut meta = self.metadata();
        for (k, v) in extra {
            if meta.iter().any(|(m, _)| m == k) {
                return Err(ModelFileError::BadMetadata {
                    path: path.into(),
                    key: k.clone(),
                    reason: "set by the model itself".into(),
                });
            }
            meta.push((k.clone(), v.clone()));
        }
        save_named(&self.net, path, &meta)
    }

    /// The number of values of one example: the product of [`ArchModel::input_shape`].
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// Loss, accuracy and confusion matrix on `data`, one label per example, in batches
    /// and in evaluation mode (no dropout). The model must give one output vector per
    /// example (a class per example); the prediction is its arg-max. The loss is
    /// [`Sequential::loss`]'s J: the label is the class index for the log-likelihood, its
    /// one-hot vector for the other costs.
    ///
    /// ```
    /// use backprop::data::Dataset;
    /// use backprop::network::Cost;
    /// use backprop::nn::ArchModel;
    /// let arch = "Linear(2, 3), Softmax(dim=-1)".parse().unwrap();
    /// let mut model = ArchModel::<f64>::new(&arch, &[2], Cost::LogLikelihood, None, 1).unwrap();
    /// let data = Dataset::new(vec![0.5, -1.0, 2.0, 0.0], vec![2, 0], 2).unwrap();
    /// let e = model.evaluate(&data).unwrap();
    /// let j = model.net.loss(&[0.5, -1.0, 2.0, 0.0], &[2.0, 0.0], 2, Cost::LogLikelihood).unwrap();
    /// assert_eq!((e.n, e.loss), (2, j));
    /// ```
    ///
    /// # Errors
    /// [`TrainError::Data`] for data with no examples, examples of another size, a label
    /// the model has no output for, or a model that gives more than one output vector per
    /// example (a sequence).
    pub fn evaluate(&mut self, data: &Dataset) -> Result<Evaluation, TrainError> {
        let per = self.input_len();
        if data.is_empty() {
            return Err(TrainError::Data(
                "no examples to evaluate on (an accuracy of 0 out of 0 means nothing)".into(),
            ));
        }
        if data.features != per {
            return Err(TrainError::Data(format!(
                "the model takes examples of {} = {per} values but the data has {} features",
                shape_text(&self.input_shape),
                data.features
            )));
        }
        let out = self.net.shapes().last().cloned().unwrap_or_default();
        let k: usize = out.iter().product();
        if out.len() != 1 {
            return Err(TrainError::Data(format!(
                "the model gives {} outputs per example (shape {}), not one class: it is scored with one label per example only when its output is one vector",
                k,
                shape_text(&out)
            )));
        }
        if let Some(&bad) = data.labels.iter().find(|&&l| l as usize >= k) {
            return Err(TrainError::Data(format!(
                "label {bad} does not fit the model's {k} outputs"
            )));
        }
        let top = self.net.shapes().len() - 1;
        let batch = EVAL_BATCH.min(data.len());
        let mut x = vec![T::zero(); batch * per];
        let one_hot = self.cost != Cost::LogLikelihood;
        let mut y = vec![T::zero(); batch * if one_hot { k } else { 1 }];
        let (mut loss, mut right, mut confusion) = (0.0, 0usize, Confusion::default());
        let all: Vec<usize> = (0..data.len()).collect();
        for idx in all.chunks(batch) {
            let n = idx.len();
            let x = &mut x[..n * per];
            data.inputs_into(idx, x)
                .map_err(|e| TrainError::Data(e.to_string()))?;
            let y = &mut y[..n * if one_hot { k } else { 1 }];
            if one_hot {
                y.fill(T::zero());
                for (row, &i) in y.chunks_exact_mut(k).zip(idx) {
                    row[data.labels[i] as usize] = T::one();
                }
            } else {
                for (v, &i) in y.iter_mut().zip(idx) {
                    *v = T::from_f64(f64::from(data.labels[i]));
                }
            }
            let j = self
                .net
                .loss(x, y, n, self.cost)
                .map_err(|e| TrainError::Data(e.to_string()))?;
            loss += j.to_f64() * n as f64;
            // `loss` ran the forward pass: a^L is in the workspace.
            let a = self.net.workspace().a(top);
            for (row, &i) in a.chunks_exact(k).zip(idx) {
                let (truth, predicted) = (data.labels[i] as usize, argmax(row));
                confusion.add(truth, predicted);
                right += usize::from(truth == predicted);
            }
        }
        let n = data.len();
        Ok(Evaluation {
            loss: loss / n as f64,
            accuracy: right as f64 / n as f64,
            n,
            confusion,
        })
    }
}

/// Examples per forward pass in [`ArchModel::evaluate`] (memory, not results, depends on it).
const EVAL_BATCH: usize = 256;

/// A shape as `1x28x28`.
fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    dims.join("x")
}

/// A model of layers in either precision, as its file stores it: F64 stays F64.
#[derive(Debug)]
pub enum AnyArchModel {
    /// An F32 file.
    F32(ArchModel<f32>),
    /// An F64 file.
    F64(ArchModel<f64>),
}

/// Whether a model file's metadata describes a model of layers (it has `arch`) rather
/// than a fully connected network of the post (`layers`, `activations`).
pub fn is_arch_model(metadata: &BTreeMap<String, String>) -> bool {
    metadata.contains_key(ARCH_KEY)
}

/// A model file of either kind, as [`load_any`] found it.
// Loaded once per command and taken apart at once: boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AnyModel {
    /// A fully connected network of the post (metadata `layers`, `activations`, `cost`).
    Network(LoadedModel),
    /// A model of layers (metadata `arch`), and all of the file's metadata.
    Layers(AnyArchModel, BTreeMap<String, String>),
}

/// The model in `path`, whichever kind its metadata says it is: a model of layers if it
/// has `arch` ([`load`]), else the post's fully connected network
/// ([`crate::model_file::load`]). The one place the commands ask which kind a file holds.
///
/// ```
/// use backprop::network::Cost;
/// use backprop::nn::{load_any, AnyModel, ArchModel};
/// let arch = "Linear(2, 3), Softmax(dim=-1)".parse().unwrap();
/// let model = ArchModel::<f32>::new(&arch, &[2], Cost::LogLikelihood, None, 1).unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("m.safetensors");
/// model.save(&path, &[]).unwrap();
/// assert!(matches!(load_any(&path).unwrap(), AnyModel::Layers(..)));
/// ```
///
/// # Errors
/// Those of [`load`] or [`crate::model_file::load`].
pub fn load_any(path: &Path) -> Result<AnyModel, ModelFileError> {
    let bytes = read_file(path)?;
    let metadata = metadata_of(&bytes, path)?;
    if is_arch_model(&metadata) {
        drop(bytes);
        let (model, metadata) = load(path)?;
        Ok(AnyModel::Layers(model, metadata))
    } else {
        crate::model_file::load_bytes(&bytes, path).map(AnyModel::Network)
    }
}

/// The model stored in `path` by [`ArchModel::save`] (or a PyTorch `state_dict` with the
/// same names and metadata), in the file's precision, and all of the file's metadata.
///
/// # Errors
/// [`ModelFileError::Io`] and [`ModelFileError::Format`] for the file;
/// [`ModelFileError::BadMetadata`] naming `arch`, `input_shape`, `cost` or `vocab` when
/// one is missing or does not make a model; the errors of [`load_named`] for tensors.
pub fn load(path: &Path) -> Result<(AnyArchModel, BTreeMap<String, String>), ModelFileError> {
    let bytes = read_file(path)?;
    let metadata = metadata_of(&bytes, path)?;
    let bad = |key: &str, reason: String| ModelFileError::BadMetadata {
        path: path.into(),
        key: key.into(),
        reason,
    };
    let get = |key: &str| {
        metadata.get(key).ok_or_else(|| {
            bad(
                key,
                "missing (a model of layers needs arch, input_shape and cost)".into(),
            )
        })
    };
    let arch: Arch = get(ARCH_KEY)?
        .parse()
        .map_err(|e: ArchError| bad(ARCH_KEY, e.to_string()))?;
    let input_shape =
        parse_input_shape(get(INPUT_SHAPE_KEY)?).map_err(|e| bad(INPUT_SHAPE_KEY, e))?;
    let cost: Cost = get(COST_KEY)?
        .parse()
        .map_err(|e: crate::UnknownName| bad(COST_KEY, e.to_string()))?;
    let vocab = metadata
        .get(VOCAB_KEY)
        .map(|v| Vocab::from_json(v))
        .transpose()
        .map_err(|e| bad(VOCAB_KEY, e.to_string()))?;
    if let (Some(v), Some(Layer::Embedding { num, .. })) = (&vocab, arch.layers().first()) {
        if v.len() != *num {
            return Err(bad(
                VOCAB_KEY,
                format!("{} characters for an Embedding of {num}", v.len()),
            ));
        }
    }
    // The file's precision is its tensors': all F64 makes an f64 model.
    let st = parse(&bytes, path)?;
    let f64_file = {
        let tensors = st.tensors();
        !tensors.is_empty() && tensors.iter().all(|(_, t)| t.dtype() == Dtype::F64)
    };
    drop(st);
    drop(bytes);
    fn build<T: Float>(
        arch: &Arch,
        shape: &[usize],
        cost: Cost,
        vocab: Option<Vocab>,
        path: &Path,
    ) -> Result<ArchModel<T>, ModelFileError> {
        let mut m = ArchModel::new(arch, shape, cost, vocab, 0).map_err(|e| {
            ModelFileError::BadMetadata {
                path: path.into(),
                key: ARCH_KEY.into(),
                reason: e.to_string(),
            }
        })?;
        load_named(&mut m.net, path)?;
        Ok(m)
    }
    let model = if f64_file {
        AnyArchModel::F64(build(&arch, &input_shape, cost, vocab, path)?)
    } else {
        AnyArchModel::F32(build(&arch, &input_shape, cost, vocab, path)?)
    };
    Ok((model, metadata))
}
