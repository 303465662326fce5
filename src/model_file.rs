//! Networks in and out of safetensors files, the format PyTorch, candle and burn users
//! already have.
//!
//! A model file holds, for each weight layer i (i = 0 for the first, the post's l = 2):
//!
//! - `layers.{i}.weight`, shape [N^(i+1), N^i]: W^l, row j = neuron j (PyTorch's
//!   `nn.Linear.weight`, so an `nn.Sequential` of `Linear` layers saved under these names
//!   loads as is);
//! - `layers.{i}.bias`, shape [N^(i+1)]: b^l;
//!
//! all F32 or all F64, and in `__metadata__`:
//!
//! - `layers`: all sizes N^1..N^L, comma-separated (`"2,4,4,3"`);
//! - `activations`: one per weight layer (`"sigmoid,sigmoid,softmax"`);
//! - `cost`: `quadratic`, `cross-entropy` or `log-likelihood`;
//! - any other keys the caller adds (input scaling, classes, training settings).
//!
//! A **checkpoint** ([`save_checkpoint`]) is a model file with the optimizer's state
//! added: tensors `optim.{param}.{buffer}` (`optim.layers.0.weight.exp_avg`; checkpoints
//! written before state was keyed by name hold `optim.{i}.{buffer}` and still load) and
//! metadata `optimizer`, `optimizer.steps`.
//! [`save_tensors`] writes any other named tensors (`backprop grad --out`).
//!
//! Any [`Model`] is saved and loaded by its named parameters alone with [`save_named`]
//! and [`load_named`]: one tensor per name, and whatever metadata its layout needs (a model
//! of layers: `arch`, `input_shape`, `cost`). The generic safetensors reading and writing
//! is [`crate::safetensors_io`]'s.
//!
//! Files are written by [`crate::io::write_atomically`]: to a temporary file in the
//! target's directory, renamed over a regular file (never over a device, a FIFO or a
//! directory), so a reader never sees half a file. Loading checks every size against the file before
//! trusting it (the safetensors crate checks the header length and tensor offsets
//! against the buffer, and this module checks shapes, dtypes and metadata).

use crate::linalg::Matrix;
use crate::model::Model;
use crate::network::{Activation, Cost, Layer, Network};
use crate::optim::Optimizer;
use crate::Float;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An error reading or writing a model or tensor file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// The file could not be read, written or renamed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a valid safetensors file (truncated, header length larger than
    /// the file, bad JSON, offsets outside the data).
    #[error("{}: not a valid safetensors file: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What the safetensors crate reported.
        reason: String,
    },
    /// A tensor the network needs is not in the file.
    #[error("{}: missing tensor {tensor}", path.display())]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
    },
    /// A tensor the network does not have (e.g. a layer beyond the activations listed).
    #[error("{}: unexpected tensor {tensor} (the metadata lists {layers} weight layers)", path.display())]
    UnexpectedTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// Number of weight layers in the metadata.
        layers: usize,
    },
    /// A tensor that is neither F32 nor F64, or not of the file's one dtype.
    #[error("{}: tensor {tensor} has dtype {found}, expected {expected}", path.display())]
    WrongDtype {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// Its dtype.
        found: String,
        /// The expected dtype(s).
        expected: String,
    },
    /// A tensor with the wrong number of dimensions, or sizes that do not chain with the
    /// previous layer or the metadata.
    #[error("{}: tensor {tensor} has shape {found:?}, expected {expected}", path.display())]
    WrongShape {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// Its shape.
        found: Vec<usize>,
        /// What was expected.
        expected: String,
    },
    /// A metadata key is missing or its value is unusable.
    #[error("{}: metadata {key}: {reason}", path.display())]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A checkpoint whose optimizer state does not fit the optimizer it is restored into.
    #[error("{}: checkpoint: {reason}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A weight or bias that is NaN or infinite: no such network is ever saved, and it
    /// would answer every input with NaN.
    #[error("{}: tensor {tensor}: element {index} is {value}, not a finite number", path.display())]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The element (row-major).
        index: usize,
        /// Its value.
        value: f64,
    },
    /// Layers that make no network [`Network::from_layers`] accepts (softmax on a hidden
    /// layer, a cost without the output activation it is defined for).
    #[error("{}: {source}", path.display())]
    Network {
        /// The file.
        path: PathBuf,
        /// What is wrong with the network.
        source: crate::network::NetworkError,
    },
    /// A tensor that is none of the model's parameters (for [`load_named`]).
    #[error("{}: tensor {tensor} is not a parameter of the model", path.display())]
    NotAParameter {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
    },
    /// Asked to save tensors whose data length does not match their shape.
    #[error("{}: tensor {tensor}: {len} values for shape {shape:?}", path.display())]
    DataShape {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The given shape.
        shape: Vec<usize>,
        /// The number of values.
        len: usize,
    },
}

/// A network of either precision, as a model file stores it: F64 stays F64.
#[derive(Clone, Debug, PartialEq)]
pub enum AnyNetwork {
    /// An F32 file.
    F32(Network<f32>),
    /// An F64 file.
    F64(Network<f64>),
}

impl AnyNetwork {
    /// The layer sizes N^1..N^L.
    pub fn sizes(&self) -> Vec<usize> {
        match self {
            AnyNetwork::F32(n) => n.sizes(),
            AnyNetwork::F64(n) => n.sizes(),
        }
    }

    /// The dtype name: `"F32"` or `"F64"`.
    pub fn dtype(&self) -> &'static str {
        match self {
            AnyNetwork::F32(_) => f32::DTYPE,
            AnyNetwork::F64(_) => f64::DTYPE,
        }
    }
}

/// A loaded model file: the network and every `__metadata__` entry (including `layers`,
/// `activations` and `cost`).
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedModel {
    /// The network, in the file's precision.
    pub network: AnyNetwork,
    /// All metadata, sorted by key.
    pub metadata: BTreeMap<String, String>,
}

/// The file's name for the weights of weight layer `i` (0-based).
pub fn weight_name(i: usize) -> String {
    format!("layers.{i}.weight")
}

/// The file's name for the biases of weight layer `i` (0-based).
pub fn bias_name(i: usize) -> String {
    format!("layers.{i}.bias")
}

use crate::safetensors_io::{metadata_of, parse, read_file, values};
pub use crate::safetensors_io::{
    read_tensors, save_tensors, tensors_to_bytes, NamedTensor, TensorMap,
};

/// Moved to [`crate::io`], the one place for every file the program writes; kept here
/// for callers of this module.
pub use crate::io::{check_output_path, write_atomically};

/// Saves a network with its `layers`, `activations` and `cost` metadata, followed by
/// `extra_metadata` (which may not redefine those three keys), atomically.
///
/// ```
/// use backprop::linalg::Matrix;
/// use backprop::model_file::{load, save, AnyNetwork};
/// use backprop::network::{Activation, Cost, Layer, Network};
/// let net = Network {
///     layers: vec![Layer {
///         weights: Matrix::from_vec(1, 2, vec![0.5f64, -1.0]).unwrap(),
///         biases: vec![0.25],
///         activation: Activation::Sigmoid,
///     }],
///     cost: Cost::CrossEntropy,
/// };
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("m.safetensors");
/// save(&net, &path, &[("scaling".into(), "divide:16".into())]).unwrap();
/// let m = load(&path).unwrap();
/// assert_eq!(m.network, AnyNetwork::F64(net));
/// assert_eq!(m.metadata["layers"], "2,1");
/// assert_eq!(m.metadata["scaling"], "divide:16");
/// ```
///
/// # Errors
/// [`ModelFileError::BadMetadata`] if `extra_metadata` redefines `layers`, `activations`
/// or `cost`; [`ModelFileError::Io`] naming the file.
pub fn save<T: Float>(
    net: &Network<T>,
    path: &Path,
    extra_metadata: &[(String, String)],
) -> Result<(), ModelFileError> {
    save_network_and(net, path, extra_metadata, &[])
}

/// Saves `net`'s tensors and metadata, plus `extra` tensors.
fn save_network_and<T: Float>(
    net: &Network<T>,
    path: &Path,
    extra_metadata: &[(String, String)],
    extra: &[NamedTensor<'_, T>],
) -> Result<(), ModelFileError> {
    let sizes = net.sizes();
    let join = |v: Vec<String>| v.join(",");
    let mut metadata = vec![
        (
            "layers".to_string(),
            join(sizes.iter().map(|s| s.to_string()).collect()),
        ),
        (
            "activations".to_string(),
            join(
                net.layers
                    .iter()
                    .map(|l| l.activation.name().to_string())
                    .collect(),
            ),
        ),
        ("cost".to_string(), net.cost.name().to_string()),
    ];
    for (k, v) in extra_metadata {
        if metadata.iter().any(|(key, _)| key == k) {
            return Err(ModelFileError::BadMetadata {
                path: path.into(),
                key: k.clone(),
                reason: "is written from the network itself and cannot be overridden".into(),
            });
        }
        metadata.push((k.clone(), v.clone()));
    }
    let names: Vec<(String, String)> = (0..net.layers.len())
        .map(|i| (weight_name(i), bias_name(i)))
        .collect();
    let shapes: Vec<([usize; 2], [usize; 1])> = net
        .layers
        .iter()
        .map(|l| ([l.weights.rows(), l.weights.cols()], [l.biases.len()]))
        .collect();
    let mut tensors: Vec<NamedTensor<'_, T>> = Vec::with_capacity(2 * net.layers.len());
    for ((layer, (w, b)), (ws, bs)) in net.layers.iter().zip(&names).zip(&shapes) {
        tensors.push((w, ws, layer.weights.as_slice()));
        tensors.push((b, bs, &layer.biases));
    }
    tensors.extend_from_slice(extra);
    save_tensors(path, &tensors, &metadata)
}

/// Loads a model file written by [`save`], or by PyTorch with the same names. A
/// checkpoint ([`save_checkpoint`]) loads too; its `optim.*` tensors are ignored.
///
/// # Errors
/// Every check names the file and, where one is at fault, the tensor:
/// [`ModelFileError::Io`], [`ModelFileError::Format`] (not safetensors, truncated, a
/// header length beyond the file), [`ModelFileError::BadMetadata`] (missing or unknown
/// activation or cost, `layers` that disagrees with the tensors),
/// [`ModelFileError::MissingTensor`], [`ModelFileError::UnexpectedTensor`],
/// [`ModelFileError::WrongDtype`], [`ModelFileError::WrongShape`] (including sizes that do
/// not chain from one layer to the next), [`ModelFileError::NonFinite`] (a NaN or
/// infinite weight), [`ModelFileError::Network`] (activations and cost that
/// [`Network::from_layers`] refuses), and [`ModelFileError::BadMetadata`] for a `scaling`
/// that does not parse or divides by a number that is not positive and normal.
///
/// Linear in the size of the file, including its number of layers.
pub fn load(path: &Path) -> Result<LoadedModel, ModelFileError> {
    let bytes = read_file(path)?;
    load_bytes(&bytes, path)
}

/// [`load`] from bytes in memory; `path` names them in errors.
///
/// # Errors
/// As for [`load`], without [`ModelFileError::Io`].
pub fn load_bytes(bytes: &[u8], path: &Path) -> Result<LoadedModel, ModelFileError> {
    // A checkpoint is a model file too: its optimizer tensors are skipped.
    load_network(bytes, path, &CHECKPOINT_PREFIXES)
}

/// Loads the network of a model or checkpoint file; tensors whose names start with
/// `also_allowed` (a checkpoint's optimizer state) are left to the caller.
fn load_network(
    bytes: &[u8],
    path: &Path,
    also_allowed: &[&str],
) -> Result<LoadedModel, ModelFileError> {
    let st = parse(bytes, path)?;
    let metadata = metadata_of(bytes, path)?;
    // A reason quotes the file's text, which may be a 200 KB string: cut to a line.
    let meta_err = |key: &str, reason: String| ModelFileError::BadMetadata {
        path: path.into(),
        key: key.into(),
        reason: crate::io::cut(&reason, 240),
    };
    let get = |key: &str| {
        metadata
            .get(key)
            .ok_or_else(|| meta_err(key, "missing".into()))
    };
    let activations: Vec<Activation> = get("activations")?
        .split(',')
        .map(|a| {
            a.parse()
                .map_err(|e: crate::UnknownName| meta_err("activations", e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let cost: Cost = get("cost")?
        .parse()
        .map_err(|e: crate::UnknownName| meta_err("cost", e.to_string()))?;
    let n_layers = activations.len();

    // Every tensor must belong to the network: a stray `layers.5.weight` means the file
    // and its metadata disagree. The name is parsed, not compared with every layer's
    // names, so that this stays linear in the number of layers.
    for name in st.names() {
        let known = layer_of(name).is_some_and(|i| i < n_layers)
            || also_allowed.iter().any(|prefix| name.starts_with(prefix));
        if !known {
            return Err(ModelFileError::UnexpectedTensor {
                path: path.into(),
                tensor: name.clone(),
                layers: n_layers,
            });
        }
    }
    let tensor = |name: &str| {
        st.tensor(name).map_err(|_| ModelFileError::MissingTensor {
            path: path.into(),
            tensor: name.into(),
        })
    };
    let dtype = tensor(&weight_name(0))?.dtype();
    if !matches!(dtype, Dtype::F32 | Dtype::F64) {
        return Err(ModelFileError::WrongDtype {
            path: path.into(),
            tensor: weight_name(0),
            found: format!("{dtype:?}"),
            expected: "F32 or F64".into(),
        });
    }
    let mut views = Vec::with_capacity(n_layers);
    let mut sizes: Vec<usize> = Vec::with_capacity(n_layers + 1);
    for i in 0..n_layers {
        let (wn, bn) = (weight_name(i), bias_name(i));
        let (w, b) = (tensor(&wn)?, tensor(&bn)?);
        for (name, view) in [(&wn, &w), (&bn, &b)] {
            if view.dtype() != dtype {
                return Err(ModelFileError::WrongDtype {
                    path: path.into(),
                    tensor: name.clone(),
                    found: format!("{:?}", view.dtype()),
                    expected: format!("{dtype:?}, the dtype of {}", weight_name(0)),
                });
            }
        }
        let shape_err =
            |name: &str, found: &[usize], expected: String| ModelFileError::WrongShape {
                path: path.into(),
                tensor: name.into(),
                found: found.to_vec(),
                expected,
            };
        let &[rows, cols] = w.shape() else {
            return Err(shape_err(
                &wn,
                w.shape(),
                "2 dimensions [N^(i+1), N^i]".into(),
            ));
        };
        if rows == 0 || cols == 0 {
            return Err(shape_err(&wn, w.shape(), "no zero sizes".into()));
        }
        match sizes.last() {
            None => sizes.push(cols),
            Some(&prev) if prev != cols => {
                return Err(shape_err(
                    &wn,
                    w.shape(),
                    format!(
                        "[_, {prev}]: {} has {prev} outputs, so this layer has {prev} inputs",
                        weight_name(i - 1)
                    ),
                ))
            }
            Some(_) => {}
        }
        sizes.push(rows);
        if b.shape() != [rows] {
            return Err(shape_err(
                &bn,
                b.shape(),
                format!("[{rows}], one bias per row of {wn}"),
            ));
        }
        views.push((w, b));
    }
    if let Some(claimed) = metadata.get("layers") {
        let listed: Vec<usize> = claimed
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|e| meta_err("layers", format!("{:?}: {e}", crate::io::cut(claimed, 80))))?;
        if listed != sizes {
            return Err(meta_err(
                "layers",
                format!(
                    "{:?} disagrees with the tensors, whose sizes are {}",
                    crate::io::cut(claimed, 80),
                    sizes
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ));
        }
    }
    // A scaling that `train` would never write (dividing by 0 or 1e-45) is refused here,
    // not when the first input comes through.
    if let Some(text) = metadata.get(crate::data::Scaling::METADATA_KEY) {
        text.parse::<crate::data::Scaling>()
            .map_err(|e| meta_err(crate::data::Scaling::METADATA_KEY, e.to_string()))?;
    }
    let names: Vec<(String, String)> = (0..n_layers)
        .map(|i| (weight_name(i), bias_name(i)))
        .collect();
    fn build<T: Float>(
        views: &[(TensorView<'_>, TensorView<'_>)],
        names: &[(String, String)],
        activations: &[Activation],
        cost: Cost,
        path: &Path,
    ) -> Result<Network<T>, ModelFileError> {
        let finite = |view: &TensorView<'_>, name: &str| {
            let v: Vec<T> = values(view);
            match v.iter().position(|x| !x.is_finite()) {
                None => Ok(v),
                Some(index) => Err(ModelFileError::NonFinite {
                    path: path.into(),
                    tensor: name.into(),
                    index,
                    value: v[index].to_f64(),
                }),
            }
        };
        let mut layers = Vec::with_capacity(views.len());
        for (((w, b), (wn, bn)), &activation) in views.iter().zip(names).zip(activations) {
            layers.push(Layer {
                weights: Matrix::from_vec(w.shape()[0], w.shape()[1], finite(w, wn)?)
                    .expect("shape checked"),
                biases: finite(b, bn)?,
                activation,
            });
        }
        // The checks of a network built in memory (softmax only on the output, a cost
        // with the output it is defined for): a file cannot make what `train` refuses.
        Network::from_layers(layers, cost).map_err(|source| ModelFileError::Network {
            path: path.into(),
            source,
        })
    }
    let network = if dtype == Dtype::F32 {
        AnyNetwork::F32(build(&views, &names, &activations, cost, path)?)
    } else {
        AnyNetwork::F64(build(&views, &names, &activations, cost, path)?)
    };
    Ok(LoadedModel { network, metadata })
}

/// The layer index `i` of a tensor named exactly `layers.{i}.weight` or `layers.{i}.bias`
/// (as [`weight_name`] and [`bias_name`] write it: no sign, no leading zero).
fn layer_of(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("layers.")?;
    let digits = rest
        .strip_suffix(".weight")
        .or_else(|| rest.strip_suffix(".bias"))?;
    let canonical = digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.is_empty()
        && (digits == "0" || !digits.starts_with('0'));
    if canonical {
        digits.parse().ok()
    } else {
        None
    }
}

/// Saves any model's parameters, one tensor per name with its shape (the model's
/// `state_dict`, as PyTorch's `safetensors.torch.save_file` would write it), and
/// `metadata` (for a model of layers: its `arch`, `input_shape` and `cost`), atomically.
///
/// For a network with the metadata [`save`] writes, the bytes are [`save`]'s:
///
/// ```
/// use backprop::model_file::{load_named, save, save_named};
/// use backprop::network::{Activation, Cost, Init, Network};
/// let net = Network::<f32>::new(&[2, 3, 1], &[Activation::Relu, Activation::Sigmoid],
///                               Cost::CrossEntropy, Init::He, 5).unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// let (a, b) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
/// let meta = [("activations", "relu,sigmoid"), ("cost", "cross-entropy"), ("layers", "2,3,1")]
///     .map(|(k, v)| (k.to_string(), v.to_string()));
/// save_named(&net, &a, &meta).unwrap();
/// save(&net, &b, &[]).unwrap();
/// assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
///
/// // And back into a model of the same names and shapes.
/// let mut other = Network::<f32>::new(&[2, 3, 1], &[Activation::Relu, Activation::Sigmoid],
///                                     Cost::CrossEntropy, Init::He, 6).unwrap();
/// let metadata = load_named(&mut other, &a).unwrap();
/// assert_eq!((other, metadata["layers"].as_str()), (net, "2,3,1"));
/// ```
///
/// # Errors
/// [`ModelFileError::Format`] for a parameter name used twice, [`ModelFileError::Io`]
/// naming the file.
pub fn save_named<T: Float, M: Model<T> + ?Sized>(
    model: &M,
    path: &Path,
    metadata: &[(String, String)],
) -> Result<(), ModelFileError> {
    // The visitor lends each tensor for one call, so they are copied to be written at once.
    let mut owned: Vec<(String, Vec<usize>, Vec<T>)> = Vec::new();
    model.visit_params(&mut |p| {
        owned.push((p.name.to_string(), p.shape.to_vec(), p.values.to_vec()))
    });
    let tensors: Vec<NamedTensor<'_, T>> = owned
        .iter()
        .map(|(n, s, v)| (n.as_str(), s.as_slice(), v.as_slice()))
        .collect();
    save_tensors(path, &tensors, metadata)
}

/// Loads a file written by [`save_named`] (or a PyTorch `state_dict` saved with the same
/// names) into `model`, whose parameters give the names and shapes expected, and returns
/// the file's metadata. Tensors named `optim.*` or `best.*` (a checkpoint's) are skipped.
/// An F32 file loads into either precision; an F64 file only into F64, since rounding it
/// would be a silent change. Nothing is written into `model` unless every check passes.
///
/// # Errors
/// [`ModelFileError::Io`], [`ModelFileError::Format`], [`ModelFileError::MissingTensor`],
/// [`ModelFileError::NotAParameter`] for a tensor the model has no parameter for,
/// [`ModelFileError::WrongDtype`], [`ModelFileError::WrongShape`],
/// [`ModelFileError::NonFinite`].
pub fn load_named<T: Float, M: Model<T> + ?Sized>(
    model: &mut M,
    path: &Path,
) -> Result<BTreeMap<String, String>, ModelFileError> {
    let bytes = read_file(path)?;
    let st = parse(&bytes, path)?;
    let metadata = metadata_of(&bytes, path)?;
    let infos = model.param_infos();
    let wanted: BTreeMap<&str, &[usize]> = infos
        .iter()
        .map(|p| (p.name.as_str(), p.shape.as_slice()))
        .collect();
    for name in st.names() {
        let skipped = CHECKPOINT_PREFIXES.iter().any(|p| name.starts_with(p));
        if !skipped && !wanted.contains_key(name.as_str()) {
            return Err(ModelFileError::NotAParameter {
                path: path.into(),
                tensor: name.clone(),
            });
        }
    }
    let mut loaded: Vec<Vec<T>> = Vec::with_capacity(infos.len());
    for info in &infos {
        let view = st
            .tensor(&info.name)
            .map_err(|_| ModelFileError::MissingTensor {
                path: path.into(),
                tensor: info.name.clone(),
            })?;
        let fits = view.dtype() == Dtype::F32 || (view.dtype() == Dtype::F64 && T::DTYPE == "F64");
        if !fits {
            return Err(ModelFileError::WrongDtype {
                path: path.into(),
                tensor: info.name.clone(),
                found: format!("{:?}", view.dtype()),
                expected: if T::DTYPE == "F64" {
                    "F32 or F64".into()
                } else {
                    "F32, the model's precision".into()
                },
            });
        }
        if view.shape() != info.shape.as_slice() {
            return Err(ModelFileError::WrongShape {
                path: path.into(),
                tensor: info.name.clone(),
                found: view.shape().to_vec(),
                expected: format!("{:?}, the model's", info.shape),
            });
        }
        let v: Vec<T> = values(&view);
        if let Some(index) = v.iter().position(|x| !x.is_finite()) {
            return Err(ModelFileError::NonFinite {
                path: path.into(),
                tensor: info.name.clone(),
                index,
                value: v[index].to_f64(),
            });
        }
        loaded.push(v);
    }
    let mut next = loaded.into_iter();
    model.visit_values_mut(&mut |p| {
        if let Some(v) = next.next() {
            p.values.copy_from_slice(&v);
        }
    });
    Ok(metadata)
}

/// Metadata key of a checkpoint's optimizer kind.
pub const OPTIMIZER_KEY: &str = "optimizer";
/// Metadata key of a checkpoint's optimizer step count t.
pub const OPTIMIZER_STEPS_KEY: &str = "optimizer.steps";

/// Prefixes of the tensors a checkpoint holds besides the network's: the optimizer's
/// state, and the best network so far (for early stopping).
pub const CHECKPOINT_PREFIXES: [&str; 2] = ["optim.", BEST_PREFIX];

/// Prefix of the best network's tensors in a checkpoint (`best.layers.0.weight`, ...).
pub const BEST_PREFIX: &str = "best.";

/// Saves a checkpoint: the model file of `net` (loadable by [`load`]'s callers through
/// [`load_checkpoint`]) plus the optimizer's state tensors (`optim.{param}.{buffer}`), its kind
/// and step count in the metadata, `extra_metadata` (epoch, seed, ...), and
/// `extra_tensors` (named `best.*`). Atomic.
///
/// ```
/// # use backprop::linalg::Matrix;
/// # use backprop::network::{Activation, Cost, Gradients, Layer, Network};
/// use backprop::model_file::{load_checkpoint, save_checkpoint};
/// use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
/// # let mut net = Network { layers: vec![Layer { weights: Matrix::from_vec(1, 2, vec![0.5f32, -1.0]).unwrap(),
/// #     biases: vec![0.25], activation: Activation::Sigmoid }], cost: Cost::Quadratic };
/// # let grads = Gradients { weights: vec![Matrix::from_vec(1, 2, vec![0.1, 0.2]).unwrap()], biases: vec![vec![-0.5]] };
/// let config = OptimizerConfig::new(OptimizerKind::Adam);
/// let mut adam = Optimizer::new(config, &net).unwrap();
/// adam.step(&mut net, &grads, 0.01).unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("ckpt.safetensors");
/// save_checkpoint(&net, &adam, &path, &[("epoch".into(), "3".into())], &[]).unwrap();
///
/// let ckpt = load_checkpoint(&path).unwrap();
/// assert_eq!(ckpt.model.metadata["epoch"], "3");
/// let mut resumed = Optimizer::new(config, &net).unwrap();
/// ckpt.restore(&mut resumed).unwrap();
/// assert_eq!(resumed, adam);
/// ```
///
/// # Errors
/// As for [`save`].
pub fn save_checkpoint<T: Float>(
    net: &Network<T>,
    optimizer: &Optimizer<T>,
    path: &Path,
    extra_metadata: &[(String, String)],
    extra_tensors: &[NamedTensor<'_, T>],
) -> Result<(), ModelFileError> {
    // The model file's bytes, then the optimizer tensors added to the same header.
    let mut metadata = extra_metadata.to_vec();
    metadata.push((OPTIMIZER_KEY.into(), optimizer.config().kind.name().into()));
    metadata.push((OPTIMIZER_STEPS_KEY.into(), optimizer.steps().to_string()));
    let state = optimizer.state_tensors();
    let state_shapes: Vec<[usize; 1]> = state.iter().map(|(_, t)| [t.len()]).collect();
    let mut extra: Vec<NamedTensor<'_, T>> = state
        .iter()
        .zip(&state_shapes)
        .map(|((name, data), shape)| (name.as_str(), &shape[..], *data))
        .collect();
    for t in extra_tensors {
        if !t.0.starts_with(BEST_PREFIX) {
            return Err(ModelFileError::Format {
                path: path.into(),
                reason: format!("checkpoint tensor {} must start with {BEST_PREFIX}", t.0),
            });
        }
        extra.push(*t);
    }
    save_network_and(net, path, &metadata, &extra)
}

/// A checkpoint read back by [`load_checkpoint`].
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The network and all metadata (including [`OPTIMIZER_KEY`] and
    /// [`OPTIMIZER_STEPS_KEY`]).
    pub model: LoadedModel,
    /// The optimizer's state tensors by name, widened to `f64` (exactly).
    pub optimizer_state: BTreeMap<String, Vec<f64>>,
    /// The other saved tensors (`best.*`: the best network so far), widened to `f64`.
    pub extra: BTreeMap<String, Vec<f64>>,
    path: PathBuf,
}

impl Checkpoint {
    /// Puts the saved optimizer state into `optimizer` (made with the same settings for
    /// the same network), so that training continues exactly as if never interrupted.
    ///
    /// # Errors
    /// [`ModelFileError::Checkpoint`] if the optimizer kind differs, the step count is
    /// missing, or a state tensor is missing or misshapen.
    pub fn restore<T: Float>(&self, optimizer: &mut Optimizer<T>) -> Result<(), ModelFileError> {
        let err = |reason: String| ModelFileError::Checkpoint {
            path: self.path.clone(),
            reason,
        };
        let meta = &self.model.metadata;
        let kind = meta.get(OPTIMIZER_KEY).map(String::as_str).unwrap_or("");
        if kind != optimizer.config().kind.name() {
            return Err(err(format!(
                "saved with optimizer {kind:?}, resumed with {:?}",
                optimizer.config().kind.name()
            )));
        }
        let steps = meta
            .get(OPTIMIZER_STEPS_KEY)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| err(format!("no valid {OPTIMIZER_STEPS_KEY}")))?;
        let converted: BTreeMap<&str, Vec<T>> = self
            .optimizer_state
            .iter()
            .map(|(k, v)| (k.as_str(), v.iter().map(|&x| T::from_f64(x)).collect()))
            .collect();
        optimizer
            .load_state(steps, |name| converted.get(name).map(Vec::as_slice))
            .map_err(|e| err(e.to_string()))
    }
}

/// Loads a checkpoint written by [`save_checkpoint`].
///
/// # Errors
/// As for [`load`]; tensors named `optim.*` are allowed besides the network's.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint, ModelFileError> {
    let bytes = read_file(path)?;
    let model = load_network(&bytes, path, &CHECKPOINT_PREFIXES)?;
    let st = parse(&bytes, path)?;
    let saved: BTreeMap<String, Vec<f64>> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| CHECKPOINT_PREFIXES.iter().any(|p| name.starts_with(p)))
        .map(|(name, view)| {
            if matches!(view.dtype(), Dtype::F32 | Dtype::F64) {
                Ok((name, values::<f64>(&view)))
            } else {
                Err(ModelFileError::WrongDtype {
                    path: path.into(),
                    tensor: name,
                    found: format!("{:?}", view.dtype()),
                    expected: "F32 or F64".into(),
                })
            }
        })
        .collect::<Result<_, _>>()?;
    let (extra, optimizer_state) = saved
        .into_iter()
        .partition(|(name, _)| name.starts_with(BEST_PREFIX));
    Ok(Checkpoint {
        model,
        optimizer_state,
        extra,
        path: path.into(),
    })
}
