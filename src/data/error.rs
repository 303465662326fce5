//! What can go wrong while loading data; every variant names the file it concerns.

use std::path::PathBuf;

/// An error from a data loader, a split or a scaling.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A gzip stream is corrupt or ends early.
    #[error("{}: corrupt or truncated gzip stream: {source}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What flate2 reported.
        source: std::io::Error,
    },
    /// The file holds no data.
    #[error("{}: the file is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A blank line where a row must be (rows answer to lines one for one).
    #[error("{}: line {line} is blank; every line must be a row of numbers", path.display())]
    BlankLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// An IDX file does not start with 0x00 0x00, a type byte and a dimension count.
    #[error("{}: not an IDX file (magic number 0x{magic:08x}; expected 0x000008NN for ubyte data, e.g. 0x00000803 for images, 0x00000801 for labels)", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first four bytes, big-endian.
        magic: u32,
    },
    /// An IDX element type this reader does not know.
    #[error("{}: unknown IDX element type 0x{code:02x}", path.display())]
    UnknownIdxType {
        /// The file.
        path: PathBuf,
        /// The type byte.
        code: u8,
    },
    /// The IDX file has a shape this loader cannot use (e.g. labels with two dimensions).
    #[error("{}: IDX dimensions {dims:?}: {expected}", path.display())]
    BadIdxShape {
        /// The file.
        path: PathBuf,
        /// The dimensions in the header.
        dims: Vec<u32>,
        /// What was expected instead.
        expected: &'static str,
    },
    /// The header claims a different amount of data than the file holds.
    #[error("{}: the header claims {claimed} bytes of data but the file holds {actual}{}", path.display(), if actual < claimed { " (truncated)" } else { " (trailing bytes)" })]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// Bytes the header's dimensions require (saturating).
        claimed: u64,
        /// Bytes actually present (for gzip: read before stopping).
        actual: u64,
    },
    /// The images file and the labels file disagree on the number of examples.
    #[error("{} holds {images} images but {} holds {labels} labels", images_path.display(), labels_path.display())]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// Its number of images.
        images: usize,
        /// The labels file.
        labels_path: PathBuf,
        /// Its number of labels.
        labels: usize,
    },
    /// A directory lacks one of the four IDX files.
    #[error("{}: no file {name} (nor {name}.gz)", dir.display())]
    MissingFile {
        /// The directory.
        dir: PathBuf,
        /// The expected file name.
        name: &'static str,
    },
    /// A label is not a non-negative integer below [`crate::data::MAX_CLASSES`].
    #[error("{}: example {index}: label {value} is not an integer in 0..{max}", path.display())]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// The example (0-based).
        index: usize,
        /// The label as read.
        value: f64,
        /// The exclusive upper bound.
        max: usize,
    },
    /// A CSV label cell is not a non-negative integer below [`crate::data::MAX_CLASSES`].
    #[error("{}: line {line}, column 1: label {cell:?} is not an integer from 0 to {}", path.display(), max - 1)]
    CsvLabel {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The cell's text.
        cell: String,
        /// The exclusive upper bound.
        max: usize,
    },
    /// A CSV row has a different number of cells than the first row.
    #[error("{}: line {line}: {found} columns, but the first row has {expected}", path.display())]
    Ragged {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Columns in the first data row.
        expected: usize,
        /// Columns in this row.
        found: usize,
    },
    /// A CSV cell is not a finite number.
    #[error("{}: line {line}, column {column}: {cell:?} is not a finite number", path.display())]
    BadCell {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 1-based column number.
        column: usize,
        /// The cell's text.
        cell: String,
    },
    /// A number that is finite as written but beyond the range of the precision it is
    /// stored in (`1e39` in f32), or an IDX element that is NaN or infinite.
    #[error("{}: {at}: {value} is not a finite {precision} number (|x| <= {})", path.display(), if *precision == "f32" { "3.4e38" } else { "1.8e308" })]
    OutOfRange {
        /// The file.
        path: PathBuf,
        /// Where: `line 3, column 2` (CSV) or `element 17 (example 2, feature 5)` (IDX).
        at: String,
        /// The value as read.
        value: String,
        /// `f32` or `f64`.
        precision: &'static str,
    },
    /// A scaling turns a finite input into an infinite or NaN one.
    #[error("example {example}, feature {feature}: the input scaling {scaling} gives {value} (the inputs are too large for it)")]
    ScaledOutOfRange {
        /// The example (1-based).
        example: usize,
        /// The feature (1-based).
        feature: usize,
        /// What the scaling gave.
        value: f32,
        /// The scaling, shortened.
        scaling: String,
    },
    /// A training or test part with no examples.
    #[error("{what}: the {part} part has no examples")]
    EmptyPart {
        /// `training` or `test`.
        part: &'static str,
        /// The file(s) it came from.
        what: String,
    },
    /// A label-first CSV row has a label but no features.
    #[error("{}: line {line}: a label but no features", path.display())]
    NoFeatures {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// Two parts of a data set (or data and a scaling) disagree on the number of features.
    #[error("{what}: {found} features, expected {expected}")]
    FeatureMismatch {
        /// Which part.
        what: String,
        /// The expected number of features.
        expected: usize,
        /// The number found.
        found: usize,
    },
    /// A `Dataset` was built from buffers whose lengths do not match.
    #[error("inconsistent data set: {0}")]
    Inconsistent(String),
    /// A scaling string (from a flag or a model file) could not be parsed.
    #[error("bad scaling {text:?}: {reason}")]
    BadScaling {
        /// The text.
        text: String,
        /// Why.
        reason: String,
    },
    /// A `--data` string that names no data source.
    #[error("--data {text:?}: {reason}")]
    BadSource {
        /// The text.
        text: String,
        /// Why.
        reason: String,
    },
    /// A test fraction outside 0 <= f < 1, or one that leaves a part empty.
    #[error("--test-split {fraction}: {reason}")]
    BadSplit {
        /// The fraction.
        fraction: f64,
        /// Why.
        reason: String,
    },
    /// A text that could not be read or made a vocabulary.
    #[error(transparent)]
    Text(#[from] super::text::TextError),
    /// A sequence length that cuts no sequence from a part of a text.
    #[error("--seq-len {seq_len}: {reason}")]
    BadSeqLen {
        /// The sequence length T.
        seq_len: usize,
        /// Why.
        reason: String,
    },
    /// A caller's buffer has the wrong length.
    #[error("buffer of {found} values, expected {expected}")]
    BufferSize {
        /// Expected length.
        expected: usize,
        /// Actual length.
        found: usize,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
