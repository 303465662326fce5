//! The IDX format of MNIST and its friends, plain or gzipped.
//!
//! An IDX file is a 4-byte magic number `0x00 0x00 <type> <number of dimensions>`, one
//! big-endian `u32` per dimension, then the elements, big-endian, row-major. Types:
//! `0x08` u8, `0x09` i8, `0x0B` i16, `0x0C` i32, `0x0D` f32, `0x0E` f64.
//!
//! Sizes in the header are never trusted: for a plain file the data length it implies is
//! compared with the real length before anything is allocated; a gzip stream is read with
//! a limit of one byte more than the header implies, into a buffer that grows only as real
//! bytes arrive, and its length is then compared with the header's claim.

use super::{DataError, Dataset, Split};
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The element type of an IDX file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxType {
    /// `0x08`: unsigned byte (MNIST's pixels and labels).
    U8,
    /// `0x09`: signed byte.
    I8,
    /// `0x0B`: big-endian i16.
    I16,
    /// `0x0C`: big-endian i32.
    I32,
    /// `0x0D`: big-endian f32.
    F32,
    /// `0x0E`: big-endian f64.
    F64,
}

impl IdxType {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x08 => IdxType::U8,
            0x09 => IdxType::I8,
            0x0B => IdxType::I16,
            0x0C => IdxType::I32,
            0x0D => IdxType::F32,
            0x0E => IdxType::F64,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }
}

/// One IDX array: its element type, its dimensions and its raw big-endian elements.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    /// The element type.
    pub kind: IdxType,
    /// The dimensions, outermost first (MNIST images: n, 28, 28).
    pub dims: Vec<u32>,
    /// The elements as stored (big-endian), `dims.product() * kind.size()` bytes.
    pub bytes: Vec<u8>,
}

impl IdxArray {
    /// Element `i` as `f64` (exact for every IDX type).
    pub fn get(&self, i: usize) -> f64 {
        let s = self.kind.size();
        let b = &self.bytes[i * s..(i + 1) * s];
        match self.kind {
            IdxType::U8 => b[0] as f64,
            IdxType::I8 => b[0] as i8 as f64,
            IdxType::I16 => i16::from_be_bytes([b[0], b[1]]) as f64,
            IdxType::I32 => i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64,
            IdxType::F32 => f32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64,
            IdxType::F64 => f64::from_be_bytes(b.try_into().expect("8 bytes")),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.bytes.len() / self.kind.size()
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Parses the magic number and dimensions from the start of `head`; returns the type,
/// the dims, the header length and the number of data bytes they claim (`None` on
/// overflow).
fn parse_header(
    head: &[u8],
    path: &Path,
) -> Result<(IdxType, Vec<u32>, usize, Option<u64>), DataError> {
    if head.is_empty() {
        return Err(DataError::Empty { path: path.into() });
    }
    if head.len() < 4 {
        return Err(DataError::SizeMismatch {
            path: path.into(),
            claimed: 4,
            actual: head.len() as u64,
        });
    }
    let magic = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    if head[0] != 0 || head[1] != 0 || head[3] == 0 {
        return Err(DataError::BadMagic {
            path: path.into(),
            magic,
        });
    }
    let kind = IdxType::from_code(head[2]).ok_or(DataError::UnknownIdxType {
        path: path.into(),
        code: head[2],
    })?;
    let ndims = head[3] as usize;
    let header_len = 4 + 4 * ndims;
    if head.len() < header_len {
        return Err(DataError::SizeMismatch {
            path: path.into(),
            claimed: header_len as u64,
            actual: head.len() as u64,
        });
    }
    let dims: Vec<u32> = head[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let claimed = dims
        .iter()
        .try_fold(kind.size() as u64, |acc, &d| acc.checked_mul(d as u64));
    Ok((kind, dims, header_len, claimed))
}

/// Reads an IDX array from bytes: plain IDX, or gzip of it (detected by the gzip magic
/// bytes `1f 8b`, whatever the name). `path` is only used in error messages.
///
/// ```
/// use backprop::data::idx::{parse_idx, IdxType};
/// // A 1-dimensional u8 array of three labels.
/// let bytes = [0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1];
/// let a = parse_idx(&bytes, "labels".as_ref()).unwrap();
/// assert_eq!((a.kind, a.dims.clone(), a.get(2)), (IdxType::U8, vec![3], 1.0));
/// // A header that claims 4e9 labels fails at once, without allocating them.
/// let bytes = [0, 0, 8, 1, 0xEE, 0x6B, 0x28, 0x00, 7];
/// assert!(parse_idx(&bytes, "labels".as_ref()).is_err());
/// ```
///
/// # Errors
/// [`DataError::Empty`], [`DataError::BadMagic`], [`DataError::UnknownIdxType`],
/// [`DataError::SizeMismatch`] (truncated, or trailing bytes), [`DataError::Gzip`].
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray, DataError> {
    if bytes.starts_with(&GZIP_MAGIC) {
        return read_gzip(bytes, path);
    }
    let (kind, dims, header_len, claimed) = parse_header(bytes, path)?;
    let actual = (bytes.len() - header_len) as u64;
    if claimed != Some(actual) {
        return Err(DataError::SizeMismatch {
            path: path.into(),
            claimed: claimed.unwrap_or(u64::MAX),
            actual,
        });
    }
    Ok(IdxArray {
        kind,
        dims,
        bytes: bytes[header_len..].to_vec(),
    })
}

fn read_gzip(bytes: &[u8], path: &Path) -> Result<IdxArray, DataError> {
    let gz_err = |source| DataError::Gzip {
        path: path.into(),
        source,
    };
    // Multi-member, so that concatenated gzip files (`cat a.gz b.gz`) read whole.
    let mut decoder = MultiGzDecoder::new(bytes);
    // The header is at most 4 + 4 * 255 bytes.
    let mut head = [0u8; 4];
    let n = read_up_to(&mut decoder, &mut head).map_err(gz_err)?;
    let ndims = if n == 4 { head[3] as usize } else { 0 };
    let mut full_head = head[..n].to_vec();
    let mut dims_bytes = vec![0u8; 4 * ndims];
    let m = read_up_to(&mut decoder, &mut dims_bytes).map_err(gz_err)?;
    full_head.extend_from_slice(&dims_bytes[..m]);
    let (kind, dims, _, claimed) = parse_header(&full_head, path)?;
    let claimed = claimed.ok_or(DataError::SizeMismatch {
        path: path.into(),
        claimed: u64::MAX,
        actual: 0,
    })?;
    // Grows only as decompressed bytes arrive: a header claiming 4e9 images over a short
    // stream allocates no more than the stream holds. One byte past the claim reveals
    // trailing data.
    let mut data = Vec::new();
    decoder
        .take(claimed.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(gz_err)?;
    if data.len() as u64 != claimed {
        return Err(DataError::SizeMismatch {
            path: path.into(),
            claimed,
            actual: data.len() as u64,
        });
    }
    Ok(IdxArray {
        kind,
        dims,
        bytes: data,
    })
}

/// Fills `buf` as far as the stream allows; returns the number of bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads an IDX file, plain or gzipped.
///
/// For a plain file, the size its header claims is compared with the file's length before
/// the data is read.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read, and those of [`parse_idx`].
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let mut head = vec![0u8; 1028.min(len as usize)];
    let n = read_up_to(&mut file, &mut head).map_err(|e| DataError::io(path, e))?;
    head.truncate(n);
    if !head.starts_with(&GZIP_MAGIC) {
        let (_, _, header_len, claimed) = parse_header(&head, path)?;
        let actual = len.saturating_sub(header_len as u64);
        if claimed != Some(actual) {
            return Err(DataError::SizeMismatch {
                path: path.into(),
                claimed: claimed.unwrap_or(u64::MAX),
                actual,
            });
        }
    }
    // The length is now known to be what the header claims (plain), or the file is gzip,
    // whose own length bounds the compressed buffer.
    let mut bytes = head;
    file.read_to_end(&mut bytes)
        .map_err(|e| DataError::io(path, e))?;
    parse_idx(&bytes, path)
}

/// Builds a data set from an images array (n x rows x cols, or n x features) and a labels
/// array (n). The paths are for error messages.
///
/// ```
/// use backprop::data::idx::{idx_dataset, parse_idx};
/// let images = parse_idx(&[0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 255, 16, 8], "i".as_ref()).unwrap();
/// let labels = parse_idx(&[0, 0, 8, 1, 0, 0, 0, 2, 3, 1], "l".as_ref()).unwrap();
/// let d = idx_dataset(&images, "i".as_ref(), &labels, "l".as_ref()).unwrap();
/// assert_eq!((d.len(), d.features, d.classes, d.image_shape), (2, 2, 4, Some((1, 2))));
/// assert_eq!(d.inputs, vec![0.0, 255.0, 16.0, 8.0]);
/// ```
///
/// # Errors
/// [`DataError::BadIdxShape`], [`DataError::CountMismatch`], [`DataError::BadLabel`],
/// [`DataError::OutOfRange`] for an element that is NaN, infinite, or beyond f32's range.
pub fn idx_dataset(
    images: &IdxArray,
    images_path: &Path,
    labels: &IdxArray,
    labels_path: &Path,
) -> Result<Dataset, DataError> {
    let (n, features, image_shape) = match images.dims[..] {
        [n, r, c] => (
            n as usize,
            r as usize * c as usize,
            Some((r as usize, c as usize)),
        ),
        [n, f] => (n as usize, f as usize, None),
        _ => {
            return Err(DataError::BadIdxShape {
                path: images_path.into(),
                dims: images.dims.clone(),
                expected: "images need 3 dimensions (n, rows, columns) or 2 (n, features)",
            })
        }
    };
    if features == 0 {
        return Err(DataError::BadIdxShape {
            path: images_path.into(),
            dims: images.dims.clone(),
            expected: "each image needs at least one pixel",
        });
    }
    let n_labels = match labels.dims[..] {
        [n] => n as usize,
        _ => {
            return Err(DataError::BadIdxShape {
                path: labels_path.into(),
                dims: labels.dims.clone(),
                expected: "labels need 1 dimension (n)",
            })
        }
    };
    if n != n_labels {
        return Err(DataError::CountMismatch {
            images_path: images_path.into(),
            images: n,
            labels_path: labels_path.into(),
            labels: n_labels,
        });
    }
    let mut label_vec = Vec::with_capacity(n);
    for i in 0..n {
        let v = labels.get(i);
        if !(v >= 0.0 && v.fract() == 0.0 && v < super::MAX_CLASSES as f64) {
            return Err(DataError::BadLabel {
                path: labels_path.into(),
                index: i,
                value: v,
                max: super::MAX_CLASSES,
            });
        }
        label_vec.push(v as u32);
    }
    let inputs: Vec<f32> = if images.kind == IdxType::U8 {
        images.bytes.iter().map(|&b| b as f32).collect()
    } else {
        let mut v = Vec::with_capacity(images.len());
        for i in 0..images.len() {
            // Inputs are stored in f32: an f64 element of 1e39 would become infinite.
            let x = images.get(i);
            if !(x as f32).is_finite() {
                return Err(DataError::OutOfRange {
                    path: images_path.into(),
                    at: format!(
                        "element {i} (example {}, feature {})",
                        i / features + 1,
                        i % features + 1
                    ),
                    value: format!("{x:e}"),
                    precision: "f32",
                });
            }
            v.push(x as f32);
        }
        v
    };
    let mut d = Dataset::new(inputs, label_vec, features)?;
    d.image_shape = image_shape;
    Ok(d)
}

/// Reads an images file and a labels file (each plain or gzipped) into a data set.
///
/// # Errors
/// Those of [`read_idx`] and [`idx_dataset`].
pub fn load_idx_pair(images_path: &Path, labels_path: &Path) -> Result<Dataset, DataError> {
    let images = read_idx(images_path)?;
    let labels = read_idx(labels_path)?;
    idx_dataset(&images, images_path, &labels, labels_path)
}

/// Finds `name` in `dir`, also as `name.gz`, and with `-idx` spelled `.idx` (as some
/// mirrors name the files).
fn find(dir: &Path, name: &'static str) -> Result<PathBuf, DataError> {
    let dotted = name.replacen("-idx", ".idx", 1);
    for base in [name.to_string(), dotted] {
        for candidate in [base.clone(), format!("{base}.gz")] {
            let p = dir.join(&candidate);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(DataError::MissingFile {
        dir: dir.into(),
        name,
    })
}

/// Loads an MNIST-style directory: `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`
/// are the training part, `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte` the test
/// part; each plain or `.gz`. Both parts get the larger of their class counts, so their
/// one-hot targets have the same length.
///
/// # Errors
/// [`DataError::MissingFile`], those of [`load_idx_pair`],
/// [`DataError::EmptyPart`] if either part has no examples, and
/// [`DataError::FeatureMismatch`] if the two parts' images differ in size.
pub fn load_idx_dir(dir: &Path) -> Result<Split, DataError> {
    let train_images = find(dir, "train-images-idx3-ubyte")?;
    let train = load_idx_pair(&train_images, &find(dir, "train-labels-idx1-ubyte")?)?;
    let test_images = find(dir, "t10k-images-idx3-ubyte")?;
    let test = load_idx_pair(&test_images, &find(dir, "t10k-labels-idx1-ubyte")?)?;
    for (part, data, path) in [
        ("training", &train, &train_images),
        ("test", &test, &test_images),
    ] {
        if data.is_empty() {
            return Err(DataError::EmptyPart {
                part,
                what: path.display().to_string(),
            });
        }
    }
    Split::from_parts(train, test, &test_images.display().to_string())
}
