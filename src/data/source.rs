//! The `--data` flag: which data set to load, and how to split it.

use super::text::{Text, DEFAULT_SEQ_LEN};
use super::{csv, digits, idx, synthetic, DataError, Split};
use std::path::{Path, PathBuf};

/// Default number of points of a synthetic set.
pub const DEFAULT_SYNTHETIC_SIZE: usize = 1000;

/// Where the data comes from, parsed from `--data` (and `--test`).
///
/// | `--data` | source |
/// |---|---|
/// | `digits` | the built-in digits ([`crate::data::digits`]) |
/// | `xor`, `spirals`, `moons` (optionally `:N` points, default 1000) | [`crate::data::synthetic`] |
/// | a directory | IDX files ([`crate::data::idx::load_idx_dir`]) |
/// | a file ending in `.csv` | labelled CSV ([`crate::data::csv`]); `--test` another |
/// | `text:PATH`, `text:shakespeare` | a UTF-8 text for a character model ([`crate::data::text`]) |
///
/// ```
/// use backprop::data::DataSource;
/// assert_eq!(DataSource::parse("moons:200", None).unwrap(), DataSource::Moons { n: 200 });
/// // moons alternates its two classes: 500 of each, 125 of each held out.
/// let s = DataSource::parse("moons", None).unwrap().load(0.25, 1).unwrap();
/// assert_eq!((s.train.len(), s.test.len()), (750, 250));
/// assert!(DataSource::parse("no-such-thing", None).is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    /// The built-in digits.
    Digits,
    /// [`synthetic::xor`] with `n` points.
    Xor {
        /// Number of points.
        n: usize,
    },
    /// [`synthetic::spirals`] with `n` points.
    Spirals {
        /// Number of points.
        n: usize,
    },
    /// [`synthetic::moons`] with `n` points.
    Moons {
        /// Number of points.
        n: usize,
    },
    /// A directory of IDX files; its t10k pair is the test part.
    IdxDir(PathBuf),
    /// A UTF-8 text (`None`: the built-in Shakespeare), for a character-level model.
    Text(Option<PathBuf>),
    /// A labelled CSV file, and optionally a test CSV file.
    Csv {
        /// The training file (or the whole set, split by `--test-split`).
        train: PathBuf,
        /// The test file.
        test: Option<PathBuf>,
    },
}

impl DataSource {
    /// Parses the `--data` string; `test` is the `--test` file, allowed with CSV only.
    ///
    /// # Errors
    /// [`DataError::BadSource`] for a name that is neither built in, nor a directory, nor
    /// a `.csv` file, a bad size, or `--test` with another source.
    pub fn parse(data: &str, test: Option<&Path>) -> Result<Self, DataError> {
        let bad = |reason: String| DataError::BadSource {
            text: data.into(),
            reason,
        };
        let (name, size) = match data.split_once(':') {
            Some((name, n)) if matches!(name, "xor" | "spirals" | "moons") => {
                let n = n
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| (2..=100_000_000).contains(&n))
                    .ok_or_else(|| bad(format!("{n:?} is not a size from 2 to 100000000")))?;
                (name, n)
            }
            _ => (data, DEFAULT_SYNTHETIC_SIZE),
        };
        if let Some(path) = data.strip_prefix("text:") {
            if test.is_some() {
                return Err(bad("--test goes with a .csv training file only".into()));
            }
            if path == "shakespeare" {
                return Ok(DataSource::Text(None));
            }
            if path.is_empty() {
                return Err(bad(
                    "text: needs a file (text:PATH) or text:shakespeare".into()
                ));
            }
            if !Path::new(path).is_file() {
                return Err(bad(format!("{path}: no such file")));
            }
            return Ok(DataSource::Text(Some(PathBuf::from(path))));
        }
        let source = match name {
            "digits" => DataSource::Digits,
            "xor" => DataSource::Xor { n: size },
            "spirals" => DataSource::Spirals { n: size },
            "moons" => DataSource::Moons { n: size },
            _ => {
                let path = PathBuf::from(data);
                if path.is_dir() {
                    DataSource::IdxDir(path)
                } else if path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
                {
                    if !path.is_file() {
                        return Err(bad("no such file".into()));
                    }
                    DataSource::Csv {
                        train: path,
                        test: test.map(Path::to_path_buf),
                    }
                } else {
                    return Err(bad(
                        "expected digits, xor, spirals, moons (optionally :N), a directory of IDX files, or a .csv file".into(),
                    ));
                }
            }
        };
        if test.is_some() && !matches!(source, DataSource::Csv { .. }) {
            return Err(bad("--test goes with a .csv training file only".into()));
        }
        Ok(source)
    }

    /// The text of a `text:` source (read from its file, or the built-in one).
    ///
    /// # Errors
    /// [`DataError::Text`] for a file that cannot be read or is not UTF-8 text;
    /// [`DataError::BadSource`] if the source is not a text.
    pub fn text(&self) -> Result<Text, DataError> {
        match self {
            DataSource::Text(None) => Ok(Text::shakespeare()),
            DataSource::Text(Some(path)) => Ok(Text::read(path)?),
            _ => Err(DataError::BadSource {
                text: format!("{self:?}"),
                reason: "not a text".into(),
            }),
        }
    }

    /// Loads the data set and splits it into training and test parts.
    ///
    /// A source with its own test part (IDX directory, CSV with `--test`) uses it. The
    /// others hold out `test_split` of each class ([`crate::data::Dataset::stratified_split`]),
    /// seeded by `seed`, except the digits, whose split seed is always
    /// [`digits::SPLIT_SEED`] so that their split is the documented one. Synthetic sets are
    /// generated from `seed`. A text keeps its last tenth for testing and is cut into
    /// sequences of [`DEFAULT_SEQ_LEN`] ([`Text::split`] cuts others).
    ///
    /// # Errors
    /// Those of the loaders, and [`DataError::FeatureMismatch`] if a test CSV has another
    /// number of features than the training CSV.
    pub fn load(&self, test_split: f64, seed: u64) -> Result<Split, DataError> {
        match self {
            DataSource::Digits => digits::split_with(test_split),
            DataSource::Xor { n } => synthetic::xor(*n, seed).stratified_split(test_split, seed),
            DataSource::Spirals { n } => {
                synthetic::spirals(*n, seed).stratified_split(test_split, seed)
            }
            DataSource::Moons { n } => {
                synthetic::moons(*n, seed).stratified_split(test_split, seed)
            }
            DataSource::IdxDir(dir) => idx::load_idx_dir(dir),
            // The text's own split (its last tenth), in sequences of the default length.
            DataSource::Text(_) => self.text()?.split(DEFAULT_SEQ_LEN),
            DataSource::Csv { train, test: None } => {
                csv::read_labeled_csv(train)?.stratified_split(test_split, seed)
            }
            DataSource::Csv {
                train,
                test: Some(test),
            } => {
                let (train, test_set) =
                    (csv::read_labeled_csv(train)?, csv::read_labeled_csv(test)?);
                Split::from_parts(train, test_set, &test.display().to_string())
            }
        }
    }
}
