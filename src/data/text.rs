//! Text for character-level models: a UTF-8 file becomes a vocabulary (its distinct
//! characters, sorted) and a sequence of ids into it; the last part is held out for testing,
//! and the training part is cut into sequences whose targets are the next characters.
//!
//! The built-in text is eight of Shakespeare's tragedies (1.16 MB, `data/shakespeare/`),
//! embedded in the binary like the digits: `--data text:shakespeare` needs no download.

use super::{DataError, Dataset, Split};
use std::io::Read;
use std::path::{Path, PathBuf};

const SHAKESPEARE: &[u8] = include_bytes!("../../data/shakespeare/tragedies.txt.gz");

/// The sequence length T of `--seq-len` unless given: char-rnn's.
pub const DEFAULT_SEQ_LEN: usize = 64;

/// The fraction at the end of a text held out for testing.
pub const TEST_FRACTION: f64 = 0.1;

/// The most distinct characters a vocabulary may have.
pub const MAX_VOCAB: usize = 65_536;

/// The largest text file read (1 GiB).
pub const MAX_TEXT_BYTES: u64 = 1 << 30;

/// What can go wrong with a text or a vocabulary.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_TEXT_BYTES`].
    #[error("{}: {bytes} bytes is more than the {MAX_TEXT_BYTES} a text may have", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (unpacked, for gzip).
        bytes: u64,
    },
    /// The bytes are not UTF-8.
    #[error("{}: not UTF-8 text (invalid byte at offset {offset})", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// Too little text to train on.
    #[error("{}: {chars} characters is too short (at least {needed} are needed)", path.display())]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Its length in characters.
        chars: usize,
        /// How many are needed.
        needed: usize,
    },
    /// More distinct characters than [`MAX_VOCAB`].
    #[error("{}: {count} distinct characters, more than the {MAX_VOCAB} a vocabulary may have", path.display())]
    VocabTooLarge {
        /// The file.
        path: PathBuf,
        /// How many distinct characters it has.
        count: usize,
    },
    /// Characters outside the vocabulary (e.g. in a `--prime` text).
    #[error("{what}: the characters {} are not in the model's vocabulary", quote_chars(.chars))]
    OutOfVocabulary {
        /// Where they come from.
        what: String,
        /// The characters, each once, in order of appearance.
        chars: Vec<char>,
    },
    /// A stored vocabulary that is not a JSON array of distinct one-character strings.
    #[error("vocabulary: {0}")]
    BadVocab(String),
}

fn quote_chars(chars: &[char]) -> String {
    let shown: Vec<String> = chars.iter().take(20).map(|c| format!("{c:?}")).collect();
    let more = if chars.len() > 20 {
        format!(" and {} more", chars.len() - 20)
    } else {
        String::new()
    };
    format!("{}{more}", shown.join(", "))
}

/// A vocabulary: distinct characters in sorted order; a character's id is its position.
///
/// ```
/// use backprop::data::text::Vocab;
/// let v = Vocab::of("hello");
/// assert_eq!(v.chars(), &['e', 'h', 'l', 'o']);
/// assert_eq!(v.encode("hole", "x").unwrap(), vec![1, 3, 2, 0]);
/// assert_eq!(v.decode(&[1, 0, 2, 2, 3]), "hello");
/// assert!(v.encode("help", "--prime").unwrap_err().to_string().contains("'p'"));
/// // Stored in a model file's metadata as a JSON array.
/// assert_eq!(Vocab::from_json(&v.to_json()).unwrap(), v);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    chars: Vec<char>,
}

impl Vocab {
    /// The distinct characters of `text`, sorted.
    pub fn of(text: &str) -> Vocab {
        let mut seen = std::collections::BTreeSet::new();
        seen.extend(text.chars());
        Vocab {
            chars: seen.into_iter().collect(),
        }
    }

    /// The characters, id order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// V, the number of characters.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The id of each character of `text`.
    ///
    /// # Errors
    /// [`TextError::OutOfVocabulary`] naming `what` and every unknown character.
    pub fn encode(&self, text: &str, what: &str) -> Result<Vec<u32>, TextError> {
        let mut unknown = Vec::new();
        let ids = text
            .chars()
            .map(|c| match self.chars.binary_search(&c) {
                Ok(i) => i as u32,
                Err(_) => {
                    if !unknown.contains(&c) {
                        unknown.push(c);
                    }
                    0
                }
            })
            .collect();
        if unknown.is_empty() {
            Ok(ids)
        } else {
            Err(TextError::OutOfVocabulary {
                what: what.to_string(),
                chars: unknown,
            })
        }
    }

    /// The text of `ids`.
    ///
    /// # Panics
    /// If an id is not below [`Vocab::len`]: ids come from this vocabulary.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|&i| self.chars[i as usize]).collect()
    }

    /// The vocabulary as a JSON array of one-character strings, for a model's metadata.
    pub fn to_json(&self) -> String {
        let strings: Vec<String> = self.chars.iter().map(|c| c.to_string()).collect();
        serde_json::to_string(&strings).expect("strings serialize")
    }

    /// The vocabulary stored by [`Vocab::to_json`].
    ///
    /// # Errors
    /// [`TextError::BadVocab`] unless it is a JSON array of distinct one-character strings
    /// in sorted order, at most [`MAX_VOCAB`] of them.
    pub fn from_json(json: &str) -> Result<Vocab, TextError> {
        let strings: Vec<String> =
            serde_json::from_str(json).map_err(|e| TextError::BadVocab(e.to_string()))?;
        if strings.is_empty() || strings.len() > MAX_VOCAB {
            return Err(TextError::BadVocab(format!(
                "{} characters; expected 1 to {MAX_VOCAB}",
                strings.len()
            )));
        }
        let mut chars = Vec::with_capacity(strings.len());
        for s in &strings {
            let mut it = s.chars();
            match (it.next(), it.next()) {
                (Some(c), None) => chars.push(c),
                _ => return Err(TextError::BadVocab(format!("{s:?} is not one character"))),
            }
        }
        if chars.windows(2).any(|w| w[0] >= w[1]) {
            return Err(TextError::BadVocab(
                "characters not distinct and sorted".into(),
            ));
        }
        Ok(Vocab { chars })
    }
}

/// A text as ids, with its vocabulary, split into a training and a test part.
///
/// ```
/// use backprop::data::text::Text;
/// let t = Text::shakespeare();
/// assert_eq!(t.vocab.len(), 73);
/// assert_eq!(t.train.len() + t.test.len(), 1_158_218);
/// assert_eq!(t.vocab.decode(&t.train[..6]), "HAMLET");
/// ```
#[derive(Clone, Debug)]
pub struct Text {
    /// The distinct characters of the whole text.
    pub vocab: Vocab,
    /// The first 90% of the text.
    pub train: Vec<u32>,
    /// The last 10%.
    pub test: Vec<u32>,
}

impl Text {
    /// The built-in text: eight of Shakespeare's tragedies.
    pub fn shakespeare() -> Text {
        let path = Path::new("<built-in shakespeare>");
        let bytes = gunzip(SHAKESPEARE, path).expect("the embedded text is valid gzip");
        Text::from_bytes(&bytes, path).expect("the embedded text is valid")
    }

    /// Reads a UTF-8 text file, plain or gzipped (recognised by its magic bytes).
    ///
    /// # Errors
    /// [`TextError`] naming the file: unreadable, too large, not UTF-8, or too short.
    pub fn read(path: &Path) -> Result<Text, TextError> {
        let io = |source| TextError::Io {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_TEXT_BYTES {
            return Err(TextError::TooLarge {
                path: path.to_path_buf(),
                bytes: len,
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            gunzip(&bytes, path)?
        } else {
            bytes
        };
        Text::from_bytes(&bytes, path)
    }

    /// A text from bytes; `path` names it in errors.
    ///
    /// # Errors
    /// As [`Text::read`].
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Text, TextError> {
        let text = std::str::from_utf8(bytes).map_err(|e| TextError::NotUtf8 {
            path: path.to_path_buf(),
            offset: e.valid_up_to(),
        })?;
        let vocab = Vocab::of(text);
        if vocab.len() > MAX_VOCAB {
            return Err(TextError::VocabTooLarge {
                path: path.to_path_buf(),
                count: vocab.len(),
            });
        }
        let ids = vocab
            .encode(text, "text")
            .expect("every character is in its own vocabulary");
        // Both parts must hold at least one input and its next character.
        const NEEDED: usize = 20;
        if ids.len() < NEEDED {
            return Err(TextError::TooShort {
                path: path.to_path_buf(),
                chars: ids.len(),
                needed: NEEDED,
            });
        }
        let test_len = ((ids.len() as f64) * TEST_FRACTION).round() as usize;
        let mut train = ids;
        let test = train.split_off(train.len() - test_len);
        Ok(Text { vocab, train, test })
    }
}

impl Text {
    /// The training and test parts cut into sequences of `seq_len` characters
    /// ([`sequences`]) as data sets: each example is T ids (as inputs) with the T ids that
    /// follow them as its labels, and the classes are the vocabulary's V characters.
    ///
    /// ```
    /// use backprop::data::text::Text;
    /// let text = "to be or not to be, that is the question".repeat(10);
    /// let t = Text::from_bytes(text.as_bytes(), "q.txt".as_ref()).unwrap();
    /// let split = t.split(8).unwrap();
    /// assert_eq!((split.train.len(), split.test.len()), (44, 4)); // 360 and 40 characters
    /// assert_eq!((split.train.features, split.train.labels_per_example), (8, 8));
    /// assert_eq!(split.train.classes, t.vocab.len());
    /// // Example 0's labels are its inputs shifted by one character.
    /// assert_eq!(split.train.input(0)[1], split.train.labels_of(0)[0] as f32);
    /// assert!(t.split(0).is_err());
    /// assert!(t.split(40).is_err()); // the test part's 40 characters make no sequence of 41
    /// ```
    ///
    /// # Errors
    /// [`DataError::BadSeqLen`] for a `seq_len` of 0, or one that leaves either part
    /// without a sequence (which needs T + 1 characters); [`DataError::Inconsistent`] for
    /// a vocabulary of more than [`crate::data::MAX_CLASSES`] characters.
    pub fn split(&self, seq_len: usize) -> Result<Split, DataError> {
        if seq_len == 0 {
            return Err(DataError::BadSeqLen {
                seq_len,
                reason: "a sequence needs at least 1 character".into(),
            });
        }
        let part = |ids: &[u32], name: &str| -> Result<Dataset, DataError> {
            let (x, y) = sequences(ids, seq_len);
            if y.is_empty() {
                return Err(DataError::BadSeqLen {
                    seq_len,
                    reason: format!(
                        "the {name} part has {} characters, too few for one sequence of {seq_len} and the character after it",
                        ids.len()
                    ),
                });
            }
            let x = x.into_iter().map(|i| i as f32).collect();
            let mut d = Dataset::with_labels_per_example(x, y, seq_len, seq_len)?;
            d.set_classes(self.vocab.len())?;
            Ok(d)
        };
        Ok(Split {
            train: part(&self.train, "training")?,
            test: part(&self.test, "test")?,
        })
    }
}

fn gunzip(bytes: &[u8], path: &Path) -> Result<Vec<u8>, TextError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_TEXT_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|source| TextError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if out.len() as u64 > MAX_TEXT_BYTES {
        return Err(TextError::TooLarge {
            path: path.to_path_buf(),
            bytes: out.len() as u64,
        });
    }
    Ok(out)
}

/// Cuts `ids` into sequences of `seq_len` inputs whose targets are the next characters:
/// sequence s has inputs `ids[s T .. s T + T]` and targets `ids[s T + 1 .. s T + T + 1]`.
/// The sequences do not overlap; a tail shorter than `seq_len + 1` is dropped. Returns
/// (inputs, targets), each `count * seq_len` ids, row-major.
///
/// ```
/// use backprop::data::text::sequences;
/// let (x, y) = sequences(&[0, 1, 2, 3, 4, 5, 6, 7], 3);
/// assert_eq!(x, vec![0, 1, 2, 3, 4, 5]);
/// assert_eq!(y, vec![1, 2, 3, 4, 5, 6]);
/// ```
///
/// # Panics
/// If `seq_len` is 0.
pub fn sequences(ids: &[u32], seq_len: usize) -> (Vec<u32>, Vec<u32>) {
    assert!(seq_len > 0, "a sequence has at least one character");
    let count = ids.len().saturating_sub(1) / seq_len;
    let (mut x, mut y) = (
        Vec::with_capacity(count * seq_len),
        Vec::with_capacity(count * seq_len),
    );
    for s in 0..count {
        let start = s * seq_len;
        x.extend_from_slice(&ids[start..start + seq_len]);
        y.extend_from_slice(&ids[start + 1..start + seq_len + 1]);
    }
    (x, y)
}
