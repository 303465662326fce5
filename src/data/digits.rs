//! The built-in handwritten digits, embedded in the binary: `backprop train` needs no
//! download.
//!
//! 1,797 images of 8x8 pixels, each pixel a count 0..16, labels 0..9, in scikit-learn's
//! order (`sklearn.datasets.load_digits()`, from the UCI "Optical Recognition of
//! Handwritten Digits" data set, E. Alpaydin and C. Kaynak, 1998; CC BY 4.0; see
//! `data/digits/README.md`). Per-class counts 0..9:
//! 178, 182, 177, 183, 181, 182, 181, 179, 174, 180.
//!
//! **The split.** [`split`] holds out 20% of each class, chosen by
//! [`Dataset::stratified_split`] with the fixed seed [`SPLIT_SEED`]: 1,438 training and
//! 359 test images, the same on every run and every machine (ChaCha8 is portable).

use super::{idx, DataError, Dataset, Split};
use std::path::Path;

const IMAGES: &[u8] = include_bytes!("../../data/digits/digits-images-idx3-ubyte.gz");
const LABELS: &[u8] = include_bytes!("../../data/digits/digits-labels-idx1-ubyte.gz");

/// The seed of the digits' train/test split; fixed so the split never changes.
pub const SPLIT_SEED: u64 = 0;

/// The fraction of each class held out for testing.
pub const TEST_FRACTION: f64 = 0.2;

/// All 1,797 digits, unscaled (pixels 0..16).
///
/// ```
/// let d = backprop::data::digits::load();
/// assert_eq!((d.len(), d.features, d.classes, d.image_shape), (1797, 64, 10, Some((8, 8))));
/// ```
pub fn load() -> Dataset {
    let parse = || -> Result<Dataset, DataError> {
        let images = idx::parse_idx(IMAGES, Path::new("<built-in digits images>"))?;
        let labels = idx::parse_idx(LABELS, Path::new("<built-in digits labels>"))?;
        idx::idx_dataset(
            &images,
            Path::new("<built-in digits images>"),
            &labels,
            Path::new("<built-in digits labels>"),
        )
    };
    // The embedded bytes are fixed at compile time and checked by the tests.
    parse().expect("the embedded digits files are valid IDX")
}

/// The documented split: 1,438 training and 359 test images.
///
/// ```
/// let s = backprop::data::digits::split();
/// assert_eq!((s.train.len(), s.test.len()), (1438, 359));
/// ```
pub fn split() -> Split {
    split_with(TEST_FRACTION).expect("0.2 is a valid fraction for the digits")
}

/// The digits split with another test fraction, still with the fixed [`SPLIT_SEED`].
///
/// # Errors
/// [`DataError::BadSplit`] as for [`Dataset::stratified_split`].
pub fn split_with(test_fraction: f64) -> Result<Split, DataError> {
    load().stratified_split(test_fraction, SPLIT_SEED)
}
