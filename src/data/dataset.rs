//! The in-memory data set, its one-hot targets and its stratified split.

use super::DataError;
use crate::Float;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The largest number of classes a data set may have: labels run from 0 to 9,999.
///
/// A label is an index into the one-hot target y and sizes the output layer N^L, so a
/// stray label in a file must not size buffers: the output layer, the targets of a batch
/// and the per-class tables all grow with it. Ten thousand is ten times the classes of
/// ImageNet-1k, and keeps a classes x classes table (10^8 counts) out of reach of any one
/// stray number; the evaluation's confusion counts are stored sparsely in any case
/// ([`crate::train::Confusion`]).
pub const MAX_CLASSES: usize = 10_000;

/// n labelled examples: example i is `inputs[i * features..(i + 1) * features]` (the
/// network's a^1) with class `labels[i]` (the target y is its one-hot vector).
///
/// A sequence model predicts a class at each of k positions of an example (the next
/// character after each of T characters): then example i has the k labels
/// `labels[i * k..(i + 1) * k]` ([`Dataset::with_labels_per_example`]); k is 1 for a
/// classifier.
///
/// ```
/// use backprop::data::Dataset;
/// let d = Dataset::new(vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0], vec![0, 1, 1], 2).unwrap();
/// assert_eq!((d.len(), d.features, d.classes), (3, 2, 2));
/// assert_eq!(d.input(1), &[0.0, 1.0]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// The inputs, row-major, n x `features`.
    pub inputs: Vec<f32>,
    /// The class of each example, each below `classes`.
    pub labels: Vec<u32>,
    /// Inputs per example (N^1).
    pub features: usize,
    /// Number of classes (N^L for a classifier): the largest label plus one, unless set.
    pub classes: usize,
    /// (rows, columns) when each example is an image (IDX data): a model of layers sees
    /// such an example as one channel, `1 x rows x columns`.
    pub image_shape: Option<(usize, usize)>,
    /// Labels per example, k (1 for a classifier; T for the next characters of T).
    pub labels_per_example: usize,
}

/// A training part and a test part.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// What the network learns from (and what a [`crate::data::Scaling`] is fitted on).
    pub train: Dataset,
    /// What accuracy is measured on; may be empty (`--test-split 0`).
    pub test: Dataset,
}

impl Split {
    /// A training part and a separately loaded test part (`test_name` names the test file
    /// in errors): both end up with the same number of classes.
    ///
    /// ```
    /// use backprop::data::{Dataset, Split};
    /// let train = Dataset::new(vec![0.0; 4], vec![0, 1], 2).unwrap();
    /// let test = Dataset::new(vec![0.0; 2], vec![3], 2).unwrap();
    /// let split = Split::from_parts(train, test, "t.csv").unwrap();
    /// assert_eq!((split.train.classes, split.test.classes), (4, 4));
    /// ```
    ///
    /// # Errors
    /// [`DataError::FeatureMismatch`] if the two parts' examples differ in size.
    pub fn from_parts(
        mut train: Dataset,
        mut test: Dataset,
        test_name: &str,
    ) -> Result<Split, DataError> {
        if test.features != train.features {
            return Err(DataError::FeatureMismatch {
                what: test_name.to_string(),
                expected: train.features,
                found: test.features,
            });
        }
        let classes = train.classes.max(test.classes);
        train.classes = classes;
        test.classes = classes;
        Ok(Split { train, test })
    }
}

impl Dataset {
    /// A data set from row-major inputs and labels; `classes` is the largest label plus
    /// one (at least 1).
    ///
    /// # Errors
    /// [`DataError::Inconsistent`] if `inputs.len() != labels.len() * features`, or
    /// `features == 0`; [`DataError::BadLabel`] if a label is [`MAX_CLASSES`] or more.
    pub fn new(inputs: Vec<f32>, labels: Vec<u32>, features: usize) -> Result<Self, DataError> {
        Self::with_labels_per_example(inputs, labels, features, 1)
    }

    /// A data set whose examples have `k` labels each: example i's are
    /// `labels[i * k..(i + 1) * k]` (a sequence's next characters). `classes` is the
    /// largest label plus one, unless set.
    ///
    /// ```
    /// use backprop::data::Dataset;
    /// // Two sequences of 3 ids, each with the 3 ids that follow.
    /// let d = Dataset::with_labels_per_example(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
    ///                                          vec![1, 2, 3, 4, 5, 6], 3, 3).unwrap();
    /// assert_eq!((d.len(), d.labels_per_example, d.classes), (2, 3, 7));
    /// assert_eq!(d.labels_of(1), &[4, 5, 6]);
    /// ```
    ///
    /// # Errors
    /// As [`Dataset::new`], and [`DataError::Inconsistent`] if `k` is 0 or the labels
    /// are not `k` per example.
    pub fn with_labels_per_example(
        inputs: Vec<f32>,
        labels: Vec<u32>,
        features: usize,
        k: usize,
    ) -> Result<Self, DataError> {
        if features == 0 {
            return Err(DataError::Inconsistent("0 features per example".into()));
        }
        if k == 0 || !labels.len().is_multiple_of(k) {
            return Err(DataError::Inconsistent(format!(
                "{} labels are not {k} per example",
                labels.len()
            )));
        }
        let n = labels.len() / k;
        if n.checked_mul(features) != Some(inputs.len()) {
            return Err(DataError::Inconsistent(format!(
                "{} inputs for {n} examples of {features} features",
                inputs.len(),
            )));
        }
        if let Some((index, &l)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= MAX_CLASSES)
        {
            return Err(DataError::BadLabel {
                path: "<memory>".into(),
                index,
                value: l as f64,
                max: MAX_CLASSES,
            });
        }
        let classes = labels.iter().max().map_or(1, |&m| m as usize + 1);
        Ok(Dataset {
            inputs,
            labels,
            features,
            classes,
            image_shape: None,
            labels_per_example: k,
        })
    }

    /// Sets the number of classes, e.g. to a model's N^L or to cover the classes of
    /// another part ("the largest label plus one, unless the model says otherwise").
    ///
    /// ```
    /// use backprop::data::Dataset;
    /// let mut d = Dataset::new(vec![0.0, 1.0], vec![0, 2], 1).unwrap();
    /// d.set_classes(10).unwrap();
    /// assert_eq!(d.classes, 10);
    /// assert!(d.set_classes(2).is_err()); // label 2 needs at least 3 classes
    /// ```
    ///
    /// # Errors
    /// [`DataError::Inconsistent`] if a label is `classes` or more, or `classes` exceeds
    /// [`MAX_CLASSES`].
    pub fn set_classes(&mut self, classes: usize) -> Result<(), DataError> {
        let needed = self.labels.iter().max().map_or(0, |&m| m as usize + 1);
        if classes < needed.max(1) || classes > MAX_CLASSES {
            return Err(DataError::Inconsistent(format!(
                "{classes} classes, but the labels need {needed} (and at most {MAX_CLASSES} are allowed)"
            )));
        }
        self.classes = classes;
        Ok(())
    }

    /// Number of examples n.
    pub fn len(&self) -> usize {
        self.labels.len() / self.labels_per_example.max(1)
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The labels of example `i`: one for a classifier, k for a sequence.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn labels_of(&self, i: usize) -> &[u32] {
        let k = self.labels_per_example;
        &self.labels[i * k..(i + 1) * k]
    }

    /// The inputs of example `i` (a^1).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn input(&self, i: usize) -> &[f32] {
        &self.inputs[i * self.features..(i + 1) * self.features]
    }

    /// How many different labels occur (1 for a set whose examples all have one class, on
    /// which any classifier scores 100%).
    ///
    /// ```
    /// use backprop::data::Dataset;
    /// let d = Dataset::new(vec![0.0; 4], vec![2, 0, 2, 2], 1).unwrap();
    /// assert_eq!(d.distinct_labels(), 2);
    /// ```
    pub fn distinct_labels(&self) -> usize {
        let mut seen = vec![false; self.classes];
        self.labels
            .iter()
            .filter(|&&l| !std::mem::replace(&mut seen[l as usize], true))
            .count()
    }

    /// How many examples each class has, indexed by class.
    ///
    /// ```
    /// use backprop::data::Dataset;
    /// let d = Dataset::new(vec![0.0; 4], vec![2, 0, 2, 2], 1).unwrap();
    /// assert_eq!(d.class_counts(), vec![1, 0, 3]);
    /// ```
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// The examples at `indices`, in that order (repeats allowed); `classes` and
    /// `image_shape` are kept, so a subset still one-hot encodes like its parent.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut inputs = Vec::with_capacity(indices.len() * self.features);
        let mut labels = Vec::with_capacity(indices.len() * self.labels_per_example);
        for &i in indices {
            inputs.extend_from_slice(self.input(i));
            labels.extend_from_slice(self.labels_of(i));
        }
        Dataset {
            inputs,
            labels,
            features: self.features,
            classes: self.classes,
            image_shape: self.image_shape,
            labels_per_example: self.labels_per_example,
        }
    }

    /// Copies the inputs of the examples at `indices` into `out` (row-major,
    /// `indices.len() x features`), converted to `T`: a mini-batch's A^1, without
    /// allocating.
    ///
    /// ```
    /// use backprop::data::Dataset;
    /// let d = Dataset::new(vec![1.0, 2.0, 3.0, 4.0], vec![0, 1], 2).unwrap();
    /// let mut a1 = [0.0f64; 2];
    /// d.inputs_into(&[1], &mut a1).unwrap();
    /// assert_eq!(a1, [3.0, 4.0]);
    /// ```
    ///
    /// # Errors
    /// [`DataError::BufferSize`] if `out` is not `indices.len() * features` long.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn inputs_into<T: Float>(&self, indices: &[usize], out: &mut [T]) -> Result<(), DataError> {
        let expected = indices.len() * self.features;
        if out.len() != expected {
            return Err(DataError::BufferSize {
                expected,
                found: out.len(),
            });
        }
        for (row, &i) in out.chunks_exact_mut(self.features).zip(indices) {
            for (o, &x) in row.iter_mut().zip(self.input(i)) {
                *o = T::from_f32(x);
            }
        }
        Ok(())
    }

    /// Writes the one-hot targets y of the examples at `indices` into `out` (row-major,
    /// `indices.len() x classes`, times k for k labels per example): 1 at the label, 0
    /// elsewhere. A mini-batch's Y, without allocating.
    ///
    /// ```
    /// use backprop::data::Dataset;
    /// let d = Dataset::new(vec![0.0; 3], vec![2, 0, 1], 1).unwrap();
    /// let mut y = [9.0f32; 6];
    /// d.one_hot(&[0, 2], &mut y).unwrap();
    /// assert_eq!(y, [0.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
    /// ```
    ///
    /// # Errors
    /// [`DataError::BufferSize`] if `out` is not `indices.len() * classes` long.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn one_hot<T: Float>(&self, indices: &[usize], out: &mut [T]) -> Result<(), DataError> {
        let expected = indices.len() * self.labels_per_example * self.classes;
        if out.len() != expected {
            return Err(DataError::BufferSize {
                expected,
                found: out.len(),
            });
        }
        out.fill(T::zero());
        let labels = indices.iter().flat_map(|&i| self.labels_of(i));
        for (row, &l) in out.chunks_exact_mut(self.classes).zip(labels) {
            row[l as usize] = T::one();
        }
        Ok(())
    }

    /// Holds out about `test_fraction` of each class as the test part, chosen by a
    /// ChaCha8 generator seeded with `seed`: the same split on every run and machine.
    ///
    /// For each class c with n_c examples, round(test_fraction * n_c) of them, drawn by a
    /// seeded shuffle of that class's indices, go to the test part. Both parts keep the
    /// original order of the examples and this data set's `classes`. Examples of k > 1
    /// labels (sequences) have no one class: they are drawn from all alike.
    ///
    /// ```
    /// use backprop::data::Dataset;
    /// let d = Dataset::new((0..10).map(|x| x as f32).collect(), vec![0, 1, 0, 1, 0, 1, 0, 1, 0, 1], 1).unwrap();
    /// let s = d.stratified_split(0.2, 7).unwrap();
    /// assert_eq!((s.train.len(), s.test.len()), (8, 2));
    /// assert_eq!(s.test.class_counts(), vec![1, 1]);
    /// assert_eq!(s, d.stratified_split(0.2, 7).unwrap());
    /// ```
    ///
    /// # Errors
    /// [`DataError::BadSplit`] unless 0 <= `test_fraction` < 1, or if a fraction above 0
    /// leaves either part empty.
    pub fn stratified_split(&self, test_fraction: f64, seed: u64) -> Result<Split, DataError> {
        let bad = |reason: &str| DataError::BadSplit {
            fraction: test_fraction,
            reason: reason.into(),
        };
        if !(0.0..1.0).contains(&test_fraction) {
            return Err(bad("the test fraction must be at least 0 and below 1"));
        }
        let mut by_class = vec![Vec::new(); self.classes];
        for i in 0..self.len() {
            let class = match self.labels_of(i) {
                [l] => *l as usize,
                _ => 0,
            };
            by_class[class].push(i);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut is_test = vec![false; self.len()];
        for members in &mut by_class {
            members.shuffle(&mut rng);
            let k = (test_fraction * members.len() as f64).round() as usize;
            for &i in &members[..k] {
                is_test[i] = true;
            }
        }
        let (test, train): (Vec<usize>, Vec<usize>) = (0..self.len()).partition(|&i| is_test[i]);
        if test_fraction > 0.0 && (test.is_empty() || train.is_empty()) {
            return Err(bad(&format!(
                "leaves {} training and {} test examples out of {}",
                train.len(),
                test.len(),
                self.len()
            )));
        }
        Ok(Split {
            train: self.subset(&train),
            test: self.subset(&test),
        })
    }
}
