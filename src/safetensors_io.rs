//! Safetensors files in and out, for any named tensors: the part of a model file that
//! knows nothing of models.
//!
//! A safetensors file is an 8-byte little-endian header length, a JSON header naming each
//! tensor's dtype, shape and byte range (and string `__metadata__`), then the tensors'
//! little-endian values. This module writes such files deterministically (the same tensors
//! and metadata give the same bytes) and atomically ([`crate::io::write_atomically`]), and
//! reads them with every size checked against the header and the file before anything is
//! allocated from it (the safetensors crate checks the header length and the byte ranges;
//! only F32 and F64 tensors are accepted).
//!
//! Layouts are built on it: [`crate::model_file`] stores a network as `layers.{i}.weight`
//! tensors with `layers`, `activations` and `cost` metadata, and any
//! [`crate::model::Model`] as one tensor per named parameter
//! (`crate::model_file::save_named`). Errors are [`ModelFileError`]s, each naming the
//! file.

use crate::io::write_atomically;
use crate::model_file::ModelFileError;
use crate::Float;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::{SafeTensorError, SafeTensors};
use std::collections::BTreeMap;
use std::path::Path;

/// A tensor to save: name, shape, and row-major values.
pub type NamedTensor<'a, T> = (&'a str, &'a [usize], &'a [T]);

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelFileError + '_ {
    move |source| ModelFileError::Io {
        path: path.into(),
        source,
    }
}

fn to_bytes<T: Float>(values: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(std::mem::size_of_val(values));
    for &v in values {
        if T::DTYPE == "F32" {
            out.extend_from_slice(&(v.to_f64() as f32).to_le_bytes());
        } else {
            out.extend_from_slice(&v.to_f64().to_le_bytes());
        }
    }
    out
}

/// Serializes named tensors and metadata to safetensors bytes, deterministically: the
/// same tensors and metadata give the same bytes on every run (metadata keys sorted,
/// tensors in name order), so that a seeded training run writes the same model file.
///
/// The layout is the safetensors format: an 8-byte little-endian header length, the JSON
/// header (padded with spaces to a multiple of 8 bytes), then each tensor's little-endian
/// values in header order.
///
/// # Errors
/// [`ModelFileError::DataShape`] if a tensor's length is not the product of its shape, and
/// [`ModelFileError::Format`] for a name used twice (`path` is only used in the message).
pub fn tensors_to_bytes<T: Float>(
    path: &Path,
    tensors: &[NamedTensor<'_, T>],
    metadata: &[(String, String)],
) -> Result<Vec<u8>, ModelFileError> {
    let mut order: Vec<&NamedTensor<'_, T>> = tensors.iter().collect();
    order.sort_by_key(|t| t.0);
    if let Some(w) = order.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(ModelFileError::Format {
            path: path.into(),
            reason: format!("tensor name {} used twice", w[0].0),
        });
    }
    // The crate's serializer keeps metadata in a HashMap, whose order changes from run
    // to run; this header is written by hand with sorted keys instead.
    let meta: BTreeMap<&str, &str> = metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let json = |v: &dyn erased::Json| v.to_json();
    let mut header = format!("{{\"__metadata__\":{}", json(&meta));
    let mut offset = 0usize;
    for &&(name, shape, data) in &order {
        if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(data.len()) {
            return Err(ModelFileError::DataShape {
                path: path.into(),
                tensor: name.into(),
                shape: shape.to_vec(),
                len: data.len(),
            });
        }
        let end = offset + std::mem::size_of_val(data);
        header.push_str(&format!(
            ",{}:{{\"dtype\":\"{}\",\"shape\":{},\"data_offsets\":[{offset},{end}]}}",
            json(&name),
            T::DTYPE,
            json(&shape)
        ));
        offset = end;
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = Vec::with_capacity(8 + header.len() + offset);
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for &&(_, _, data) in &order {
        bytes.extend_from_slice(&to_bytes(data));
    }
    Ok(bytes)
}

mod erased {
    /// A value serde_json can write (object-safe, for the header's few kinds of values).
    pub trait Json {
        fn to_json(&self) -> String;
    }
    impl<S: serde::Serialize + ?Sized> Json for S {
        fn to_json(&self) -> String {
            serde_json::to_string(self).expect("strings, numbers and maps always serialize")
        }
    }
}

/// Saves arbitrary named tensors of one precision, with string metadata, atomically: for
/// `backprop grad --out` (`loss`, `grad.layers.{i}.weight`, ...) and checkpoints (model
/// and optimizer state). A scalar has shape `[]`.
///
/// ```
/// use backprop::safetensors_io::{read_tensors, save_tensors};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("g.safetensors");
/// save_tensors::<f64>(&path, &[("loss", &[], &[0.25]), ("grad", &[2], &[1.0, -2.0])],
///                     &[("note".into(), "example".into())]).unwrap();
/// let (tensors, meta) = read_tensors(&path).unwrap();
/// assert_eq!(tensors["grad"].1, vec![1.0, -2.0]);
/// assert_eq!(tensors["loss"].0, Vec::<usize>::new());
/// assert_eq!(meta["note"], "example");
/// ```
///
/// # Errors
/// [`ModelFileError::DataShape`], or [`ModelFileError::Io`] naming the file (e.g. its
/// directory does not exist).
pub fn save_tensors<T: Float>(
    path: &Path,
    tensors: &[NamedTensor<'_, T>],
    metadata: &[(String, String)],
) -> Result<(), ModelFileError> {
    let bytes = tensors_to_bytes(path, tensors, metadata)?;
    write_atomically(path, &bytes).map_err(io_err(path))
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, ModelFileError> {
    // Reads what the file really holds; no size from inside the file is used to allocate.
    std::fs::read(path).map_err(io_err(path))
}

/// Says in words what the safetensors crate found wrong with `bytes`.
fn format_error(e: SafeTensorError, bytes: &[u8], path: &Path) -> ModelFileError {
    let claimed = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let reason = match e {
        SafeTensorError::HeaderTooSmall => format!(
            "{} bytes, fewer than the 8 that give the header length",
            bytes.len()
        ),
        SafeTensorError::HeaderTooLarge => format!(
            "the header length {} is beyond the format's limit",
            claimed.unwrap_or(0)
        ),
        SafeTensorError::InvalidHeaderLength => format!(
            "the header length {} runs past the end of the file ({} bytes): truncated, or not safetensors",
            claimed.unwrap_or(0),
            bytes.len()
        ),
        SafeTensorError::InvalidHeader
        | SafeTensorError::InvalidHeaderStart
        | SafeTensorError::InvalidHeaderDeserialization => {
            "the header is not the JSON table of tensors that safetensors expects".into()
        }
        SafeTensorError::MetadataIncompleteBuffer => format!(
            "the tensors' data does not fill the file's {} bytes exactly: truncated, or trailing bytes",
            bytes.len()
        ),
        SafeTensorError::InvalidOffset(name) => {
            format!("tensor {name}: data offsets outside the file or overlapping")
        }
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's shape does not match the size of its data".into()
        }
        SafeTensorError::ValidationOverflow => "a tensor's size overflows".into(),
        other => format!("{other:?}"),
    };
    ModelFileError::Format {
        path: path.into(),
        reason,
    }
}

pub(crate) fn parse<'a>(bytes: &'a [u8], path: &Path) -> Result<SafeTensors<'a>, ModelFileError> {
    SafeTensors::deserialize(bytes).map_err(|e| format_error(e, bytes, path))
}

pub(crate) fn metadata_of(
    bytes: &[u8],
    path: &Path,
) -> Result<BTreeMap<String, String>, ModelFileError> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| format_error(e, bytes, path))?;
    Ok(meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect())
}

pub(crate) fn values<T: Float>(view: &TensorView<'_>) -> Vec<T> {
    match view.dtype() {
        Dtype::F32 => view
            .data()
            .chunks_exact(4)
            .map(|c| T::from_f32(f32::from_le_bytes(c.try_into().expect("4 bytes"))))
            .collect(),
        _ => view
            .data()
            .chunks_exact(8)
            .map(|c| T::from_f64(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
            .collect(),
    }
}

/// Tensors read back by [`read_tensors`]: name -> (shape, values as `f64`).
pub type TensorMap = BTreeMap<String, (Vec<usize>, Vec<f64>)>;

/// Reads every F32 or F64 tensor of a safetensors file (values widened to `f64`, exactly)
/// and its metadata: for checkpoints and `grad` outputs.
///
/// # Errors
/// [`ModelFileError::Io`], [`ModelFileError::Format`], [`ModelFileError::WrongDtype`]
/// for a tensor of another dtype.
pub fn read_tensors(path: &Path) -> Result<(TensorMap, BTreeMap<String, String>), ModelFileError> {
    let bytes = read_file(path)?;
    let st = parse(&bytes, path)?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if !matches!(view.dtype(), Dtype::F32 | Dtype::F64) {
            return Err(ModelFileError::WrongDtype {
                path: path.into(),
                tensor: name,
                found: format!("{:?}", view.dtype()),
                expected: "F32 or F64".into(),
            });
        }
        out.insert(name, (view.shape().to_vec(), values::<f64>(&view)));
    }
    Ok((out, metadata_of(&bytes, path)?))
}
