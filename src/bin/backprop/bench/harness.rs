//! The harness behind `backprop bench`: the three networks of the speed table, their synthetic
//! data, a timer that reports samples per second, and the JSON line each run prints.
//!
//! The harness knows nothing about how a step is computed: [`run`] takes a state (the
//! network and its buffers) and two closures over it, one training step (forward, cost,
//! backward, SGD update) and one inference step (forward only), each called with the
//! index of the mini-batch to use. That keeps the timing rules in one place for every
//! implementation that is measured.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use backprop::linalg::Matrix;
use backprop::network::{Activation, Cost};

/// What can go wrong while setting up or running a benchmark.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BenchError {
    /// `--config` named no known network.
    #[error("unknown benchmark config {name:?}: expected nielsen, small, wide or all")]
    UnknownConfig {
        /// The name given.
        name: String,
    },
    /// A synthetic data set with no examples, features or classes.
    #[error("synthetic data needs at least one {what}, got 0")]
    EmptyData {
        /// `"example"`, `"feature"` or `"class"`.
        what: &'static str,
    },
    /// The inputs would not fit in memory (examples x features overflows `usize`).
    #[error("synthetic data of {examples} x {features} values is too large")]
    DataTooLarge {
        /// Examples asked for.
        examples: usize,
        /// Features per example asked for.
        features: usize,
    },
    /// A mini-batch of 0 examples, or more than the data holds.
    #[error("batch size {batch} does not fit {examples} examples")]
    BadBatch {
        /// The batch size asked for.
        batch: usize,
        /// Examples in the data.
        examples: usize,
    },
    /// Timing options that cannot give a figure.
    #[error("bad timing: {reason}")]
    BadTiming {
        /// What is wrong.
        reason: &'static str,
    },
}

/// One network of the benchmark: sizes, activations, cost and SGD settings, as data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BenchConfig {
    /// The name used by `--config` and in the JSON output.
    pub name: &'static str,
    /// Layer sizes N^1..N^L.
    pub sizes: &'static [usize],
    /// F of the hidden layers l = 2..L-1.
    pub hidden: Activation,
    /// F of the output layer L.
    pub output: Activation,
    /// The cost C(a^L, y).
    pub cost: Cost,
    /// The SGD learning rate eta.
    pub learning_rate: f32,
    /// Examples per mini-batch (per training step).
    pub batch: usize,
}

impl BenchConfig {
    /// 784-30-10, sigmoid everywhere, quadratic cost, eta 3.0, batch 10: the network of
    /// Nielsen's book; overhead-bound.
    pub const NIELSEN: BenchConfig = BenchConfig {
        name: "nielsen",
        sizes: &[784, 30, 10],
        hidden: Activation::Sigmoid,
        output: Activation::Sigmoid,
        cost: Cost::Quadratic,
        learning_rate: 3.0,
        batch: 10,
    };
    /// 784-128-64-10, relu hidden, softmax output with log-likelihood, eta 0.1, batch 64.
    pub const SMALL: BenchConfig = BenchConfig {
        name: "small",
        sizes: &[784, 128, 64, 10],
        hidden: Activation::Relu,
        output: Activation::Softmax,
        cost: Cost::LogLikelihood,
        learning_rate: 0.1,
        batch: 64,
    };
    /// 784-1024-1024-10, relu hidden, softmax output with log-likelihood, eta 0.1,
    /// batch 256; GEMM-bound.
    pub const WIDE: BenchConfig = BenchConfig {
        name: "wide",
        sizes: &[784, 1024, 1024, 10],
        hidden: Activation::Relu,
        output: Activation::Softmax,
        cost: Cost::LogLikelihood,
        learning_rate: 0.1,
        batch: 256,
    };
    /// The three configs, in the order `all` runs them.
    pub const ALL: [BenchConfig; 3] = [Self::NIELSEN, Self::SMALL, Self::WIDE];

    /// F for each weight layer l = 2..=L: the hidden activation, then the output one.
    pub fn activations(&self) -> Vec<Activation> {
        let layers = self.sizes.len() - 1;
        let mut f = vec![self.hidden; layers - 1];
        f.push(self.output);
        f
    }

    /// Weights and biases in the network: sum over l of N^l (N^(l-1) + 1).
    #[cfg(test)]
    pub fn parameters(&self) -> usize {
        self.sizes.windows(2).map(|w| w[1] * (w[0] + 1)).sum()
    }

    /// Floating-point operations of the matrix products in one training step, per
    /// example: forward z^l = W^l a^(l-1) (2 N^l N^(l-1) each), Equation 1's
    /// dW^l = delta^l a^(l-1)^T (the same count), and Equation 3's W^(l+1)^T delta^(l+1)
    /// for every layer but the first weight layer (nothing needs delta of the inputs).
    /// Elementwise work is left out: it is a few per cent at these sizes.
    pub fn train_flops_per_example(&self) -> u64 {
        let products: Vec<u64> = self
            .sizes
            .windows(2)
            .map(|w| 2 * w[0] as u64 * w[1] as u64)
            .collect();
        let forward: u64 = products.iter().sum();
        forward + forward + products[1..].iter().sum::<u64>()
    }

    /// Parses `nielsen`, `small`, `wide` (one config) or `all` (the three, in order).
    pub fn parse_list(s: &str) -> Result<Vec<BenchConfig>, BenchError> {
        if s.trim().eq_ignore_ascii_case("all") {
            Ok(Self::ALL.to_vec())
        } else {
            Ok(vec![s.parse()?])
        }
    }
}

impl FromStr for BenchConfig {
    type Err = BenchError;

    /// One config by name, case-insensitive. `all` is not one config: see
    /// [`BenchConfig::parse_list`].
    fn from_str(s: &str) -> Result<Self, BenchError> {
        let wanted = s.trim();
        Self::ALL
            .into_iter()
            .find(|c| c.name.eq_ignore_ascii_case(wanted))
            .ok_or_else(|| BenchError::UnknownConfig { name: s.to_owned() })
    }
}

impl fmt::Display for BenchConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// One model of layers in the benchmark: a [`backprop::nn::preset`] trained as
/// `bench/pytorch_arch.py` trains its PyTorch twin, on synthetic data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArchBenchConfig {
    /// The name used by `--config`, the JSON output and [`backprop::nn::preset`].
    pub name: &'static str,
    /// One example's shape: `[1, 28, 28]` images, or `[50]` token ids.
    pub input_shape: &'static [usize],
    /// Classes of the images, or the vocabulary V of the token sequences.
    pub classes: usize,
    /// The SGD learning rate eta.
    pub learning_rate: f32,
    /// Samples (images or sequences) per mini-batch.
    pub batch: usize,
}

impl ArchBenchConfig {
    /// LeNet-5 on 1x28x28 images, 10 classes, batch 64, eta 0.1.
    pub const LENET5: ArchBenchConfig = ArchBenchConfig {
        name: "lenet5",
        input_shape: &[1, 28, 28],
        classes: 10,
        learning_rate: 0.1,
        batch: 64,
    };
    /// PyTorch's examples/mnist network (without dropout), batch 64, eta 0.1.
    pub const CONVNET: ArchBenchConfig = ArchBenchConfig {
        name: "convnet",
        input_shape: &[1, 28, 28],
        classes: 10,
        learning_rate: 0.1,
        batch: 64,
    };
    /// A 2-layer 128-unit LSTM over 64-wide embeddings of 65 symbols, sequences of 50,
    /// batch 50, eta 0.1.
    pub const CHAR_LSTM: ArchBenchConfig = ArchBenchConfig {
        name: "char-lstm",
        input_shape: &[50],
        classes: 65,
        learning_rate: 0.1,
        batch: 50,
    };
    /// The three, in the order `arch` runs them.
    pub const ALL: [ArchBenchConfig; 3] = [Self::LENET5, Self::CONVNET, Self::CHAR_LSTM];

    /// The model: the preset of the same name (ending in `Softmax(dim=-1)`, trained with
    /// the log-likelihood cost, which is PyTorch's log-softmax + NLL).
    pub fn arch(&self) -> backprop::nn::Arch {
        backprop::nn::preset(self.name, self.classes)
            .expect("every config is a preset")
            .parse()
            .expect("presets parse")
    }

    /// Multiply-adds per sample of the convolutions (output elements x C_in kH kW), linear
    /// layers (in x out per position) and LSTM products (T 4H (I + H) per stacked layer), as
    /// `bench/pytorch_arch.py` counts them; a training step is taken as 3 times the forward.
    pub fn macs_per_sample(&self) -> u64 {
        use backprop::nn::Layer;
        let arch = self.arch();
        let shapes = arch
            .shapes(self.input_shape)
            .expect("presets fit their input");
        let count = |s: &[usize]| s.iter().product::<usize>() as u64;
        arch.layers()
            .iter()
            .zip(shapes.windows(2))
            .map(|(layer, io)| match *layer {
                Layer::Conv2d {
                    in_channels,
                    kernel: (kh, kw),
                    ..
                } => count(&io[1]) * (in_channels * kh * kw) as u64,
                Layer::Linear { in_features, .. } => count(&io[1]) * in_features as u64,
                Layer::Lstm {
                    input,
                    hidden,
                    layers,
                } => {
                    let steps = io[0][0] as u64;
                    (0..layers)
                        .map(|l| {
                            let i = if l == 0 { input } else { hidden };
                            steps * 4 * (hidden * (i + hidden)) as u64
                        })
                        .sum()
                }
                _ => 0,
            })
            .sum()
    }
}

/// Token sequences for `char-lstm`: inputs and targets uniform over a vocabulary, stored as
/// `f32` ids (what [`backprop::nn::Sequential`] takes), the same for the same seed.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticSequences {
    /// Input ids, `examples x steps`.
    pub ids: Vec<f32>,
    /// Target ids (the class at each position), `examples x steps`.
    pub targets: Vec<f32>,
    /// Positions per sequence.
    pub steps: usize,
}

impl SyntheticSequences {
    /// `examples` sequences of `steps` ids below `vocab`.
    pub fn new(examples: usize, steps: usize, vocab: usize, seed: u64) -> Result<Self, BenchError> {
        for (count, what) in [(examples, "example"), (steps, "feature"), (vocab, "class")] {
            if count == 0 {
                return Err(BenchError::EmptyData { what });
            }
        }
        let len = examples
            .checked_mul(steps)
            .filter(|&l| l <= isize::MAX as usize / 8)
            .ok_or(BenchError::DataTooLarge {
                examples,
                features: steps,
            })?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut draw = |_| rng.gen_range(0..vocab) as f32;
        let ids = (0..len).map(&mut draw).collect();
        let targets = (0..len).map(&mut draw).collect();
        Ok(SyntheticSequences {
            ids,
            targets,
            steps,
        })
    }

    /// Mini-batch number `index` (inputs, targets), wrapping around as
    /// [`SyntheticData::batch`] does.
    pub fn batch(&self, index: usize, batch: usize) -> Result<(&[f32], &[f32]), BenchError> {
        let examples = self.ids.len() / self.steps;
        if batch == 0 || batch > examples {
            return Err(BenchError::BadBatch { batch, examples });
        }
        let k = index % (examples / batch);
        let r = k * batch * self.steps..(k + 1) * batch * self.steps;
        Ok((&self.ids[r.clone()], &self.targets[r]))
    }
}

/// An in-memory classification set: inputs uniform in [0, 1), labels uniform over the
/// classes, the same for the same seed on every machine (ChaCha8).
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticData {
    /// Inputs x, one example per row (examples x features).
    pub inputs: Matrix<f32>,
    /// The class of each example.
    pub labels: Vec<usize>,
    /// One-hot targets y, one example per row (examples x classes).
    pub targets: Matrix<f32>,
}

/// One mini-batch: consecutive rows of a [`SyntheticData`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Batch<'a> {
    /// Inputs, `n` rows of features, row-major.
    pub x: &'a [f32],
    /// One-hot targets, `n` rows of classes, row-major.
    pub y: &'a [f32],
    /// Class labels, `n` of them.
    pub labels: &'a [usize],
    /// Examples in the batch.
    pub n: usize,
}

impl SyntheticData {
    /// The benchmark's data set size: 10,240 examples.
    pub const EXAMPLES: usize = 10_240;

    /// `examples` random examples of `features` inputs and `classes` classes.
    pub fn new(
        examples: usize,
        features: usize,
        classes: usize,
        seed: u64,
    ) -> Result<Self, BenchError> {
        for (count, what) in [
            (examples, "example"),
            (features, "feature"),
            (classes, "class"),
        ] {
            if count == 0 {
                return Err(BenchError::EmptyData { what });
            }
        }
        let too_large = || BenchError::DataTooLarge { examples, features };
        // Check the sizes (in bytes) before allocating anything.
        examples
            .checked_mul(features.max(classes))
            .and_then(|v| v.checked_mul(std::mem::size_of::<f32>()))
            .filter(|&bytes| bytes <= isize::MAX as usize)
            .ok_or_else(too_large)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x: Vec<f32> = (0..examples * features).map(|_| rng.gen::<f32>()).collect();
        let labels: Vec<usize> = (0..examples).map(|_| rng.gen_range(0..classes)).collect();
        let mut y = vec![0.0f32; examples * classes];
        for (row, &label) in labels.iter().enumerate() {
            y[row * classes + label] = 1.0;
        }
        Ok(SyntheticData {
            inputs: Matrix::from_vec(examples, features, x).ok_or_else(too_large)?,
            labels,
            targets: Matrix::from_vec(examples, classes, y).ok_or_else(too_large)?,
        })
    }

    /// The benchmark's set: 10,240 examples, 784 features, 10 classes.
    pub fn standard(seed: u64) -> Self {
        Self::new(Self::EXAMPLES, 784, 10, seed).expect("fixed sizes are valid")
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// How many whole mini-batches of `batch` examples the data holds (a partial last
    /// batch is never used, so every step does the same work).
    pub fn batches(&self, batch: usize) -> Result<usize, BenchError> {
        if batch == 0 || batch > self.len() {
            return Err(BenchError::BadBatch {
                batch,
                examples: self.len(),
            });
        }
        Ok(self.len() / batch)
    }

    /// Mini-batch number `index`, wrapping around the data: step i of a benchmark uses
    /// `batch(i, size)`, and steps go on past the end of the data as epochs would.
    pub fn batch(&self, index: usize, batch: usize) -> Result<Batch<'_>, BenchError> {
        let k = index % self.batches(batch)?;
        let rows = k * batch..(k + 1) * batch;
        let (features, classes) = (self.inputs.cols(), self.targets.cols());
        Ok(Batch {
            x: &self.inputs.as_slice()[rows.start * features..rows.end * features],
            y: &self.targets.as_slice()[rows.start * classes..rows.end * classes],
            labels: &self.labels[rows],
            n: batch,
        })
    }
}

/// How long and how often to time a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Each repeat runs whole steps until at least this many seconds have passed.
    pub seconds_per_repeat: f64,
    /// Timed repeats; the figure is their median.
    pub repeats: usize,
    /// Untimed steps first (caches, page faults, thread pools, branch predictors).
    pub warmup_steps: usize,
    /// Extra repeats allowed in place of repeats during which another process took the
    /// CPU (see [`Stats::redone`]); once they are used up, contended repeats count.
    pub retries: usize,
}

impl Default for Timing {
    /// The rule: at least 5 repeats of at least 0.5 s, after a warm-up.
    fn default() -> Self {
        Timing {
            seconds_per_repeat: 0.5,
            repeats: 5,
            warmup_steps: 20,
            retries: 10,
        }
    }
}

impl Timing {
    fn check(&self) -> Result<(), BenchError> {
        if !(self.seconds_per_repeat.is_finite() && self.seconds_per_repeat > 0.0) {
            return Err(BenchError::BadTiming {
                reason: "seconds per repeat must be a positive number",
            });
        }
        if self.repeats == 0 {
            return Err(BenchError::BadTiming {
                reason: "at least one repeat is needed",
            });
        }
        Ok(())
    }
}

/// Samples per second over the timed repeats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// The median of `per_repeat`: the figure to report.
    pub median: f64,
    /// The slowest repeat.
    pub min: f64,
    /// The fastest repeat.
    pub max: f64,
    /// Samples per second of each repeat, in the order they ran.
    pub per_repeat: Vec<f64>,
    /// Steps run in each repeat.
    pub steps: Vec<u64>,
    /// Repeats thrown away and run again because this process's threads spent more
    /// than [`CONTENDED`] of the repeat waiting for a CPU (another process had it).
    pub redone: usize,
    /// Repeats kept although contended, because [`Timing::retries`] ran out.
    pub contended: usize,
}

/// The share of a repeat's wall time that this process's threads may spend runnable but
/// waiting for a CPU before the repeat counts as disturbed by another process.
pub const CONTENDED: f64 = 0.05;

/// The median: the middle value, or the mean of the two middle values for an even count.
/// `None` for no values or a NaN among them.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Times `step` (called with a running mini-batch index, warm-up included, so the data
/// wraps around as in training) and reports samples per second, `batch` samples a step.
pub fn measure(
    timing: &Timing,
    batch: usize,
    step: impl FnMut(usize),
) -> Result<Stats, BenchError> {
    let start = Instant::now();
    measure_with_clock(
        timing,
        batch,
        step,
        || start.elapsed().as_secs_f64(),
        runqueue_wait_seconds,
    )
}

/// Seconds this process's threads have spent runnable but not running (the second
/// field of `/proc/self/task/*/schedstat`), summed; `None` where that is not available.
pub fn runqueue_wait_seconds() -> Option<f64> {
    let mut total_ns: u64 = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(task) = task else { continue };
        // A thread may exit between listing and reading: skip it.
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        total_ns += text.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    }
    Some(total_ns as f64 * 1e-9)
}

/// [`measure`] with the clock and the run-queue wait passed in (seconds since any fixed
/// instant), so the counting can be tested with clocks that tick exactly.
fn measure_with_clock(
    timing: &Timing,
    batch: usize,
    mut step: impl FnMut(usize),
    mut now: impl FnMut() -> f64,
    mut wait: impl FnMut() -> Option<f64>,
) -> Result<Stats, BenchError> {
    timing.check()?;
    if batch == 0 {
        return Err(BenchError::BadTiming {
            reason: "a step must process at least one sample",
        });
    }
    let mut index = 0;
    for _ in 0..timing.warmup_steps {
        step(index);
        index += 1;
    }
    let mut per_repeat = Vec::with_capacity(timing.repeats);
    let mut steps = Vec::with_capacity(timing.repeats);
    let (mut redone, mut contended) = (0, 0);
    while per_repeat.len() < timing.repeats {
        let w0 = wait();
        let t0 = now();
        let mut count = 0u64;
        // Whole steps only: the clock is read after each one, and the repeat ends on
        // the first step that crosses the minimum.
        let elapsed = loop {
            step(index);
            index += 1;
            count += 1;
            let elapsed = now() - t0;
            if elapsed >= timing.seconds_per_repeat {
                break elapsed;
            }
        };
        let waited = wait().zip(w0).map_or(0.0, |(w1, w0)| w1 - w0);
        if waited > CONTENDED * elapsed {
            if redone < timing.retries {
                redone += 1;
                continue;
            }
            contended += 1;
        }
        per_repeat.push(count as f64 * batch as f64 / elapsed);
        steps.push(count);
    }
    let median = median(&per_repeat).ok_or(BenchError::BadTiming {
        reason: "the clock gave no usable time",
    })?;
    let min = per_repeat.iter().copied().fold(f64::INFINITY, f64::min);
    let max = per_repeat.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Ok(Stats {
        median,
        min,
        max,
        per_repeat,
        steps,
        redone,
        contended,
    })
}

/// The most resident memory this process has used, in bytes (`VmHWM` of
/// `/proc/self/status`); `None` where that file does not exist.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

/// The `VmHWM:   1234 kB` line of a `/proc/<pid>/status` text, in bytes.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut fields = line["VmHWM:".len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next()? {
        "kB" => value.checked_mul(1024),
        _ => None,
    }
}

/// The machine a figure was measured on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The CPU's `model name` from `/proc/cpuinfo`, or `"unknown"`.
    pub cpu_model: String,
    /// Logical cores available to this process.
    pub logical_cores: usize,
}

impl Machine {
    /// Reads the CPU model and counts the cores this process may use.
    pub fn detect() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| parse_cpu_model(&text))
            .unwrap_or_else(|| "unknown".to_owned());
        let logical_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Machine {
            cpu_model,
            logical_cores,
        }
    }
}

/// The first `model name : ...` of a `/proc/cpuinfo` text.
fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

/// One config's figures: the JSON object `backprop bench --json` prints on one line.
/// The first five keys are shared with `bench/pytorch_mlp.py`, so `bench/compare.py`
/// can read both.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// The config's name.
    pub config: String,
    /// Threads the step was allowed to use.
    pub threads: usize,
    /// Samples per mini-batch (the expected batch size of a private step).
    pub batch: usize,
    /// Median training samples per second (forward, cost, backward, SGD update).
    pub train_samples_per_sec: f64,
    /// Median inference samples per second (forward only, training batch size).
    pub infer_samples_per_sec: f64,
    /// Peak resident memory of the process so far, in bytes, if known.
    pub peak_rss_bytes: Option<u64>,
    /// Which implementation: `"backprop"` here.
    #[serde(rename = "impl")]
    pub implementation: String,
    /// Timed repeats of each measurement.
    pub repeats: usize,
    /// Minimum seconds of one repeat.
    pub seconds_per_repeat: f64,
    /// Training samples per second of each repeat.
    pub train_repeats_samples_per_sec: Vec<f64>,
    /// Inference samples per second of each repeat.
    pub infer_repeats_samples_per_sec: Vec<f64>,
    /// Repeats (training and inference) run again because another process took the CPU.
    pub redone_repeats: usize,
    /// Repeats kept although another process took the CPU (retries ran out).
    pub contended_repeats: usize,
    /// Training GFLOP/s of the matrix products, from
    /// [`BenchConfig::train_flops_per_example`].
    pub train_gflops: f64,
    /// Inference GFLOP/s of the same products (the forward's share).
    #[serde(default)]
    pub infer_gflops: f64,
    /// The CPU.
    pub cpu_model: String,
    /// Logical cores available.
    pub logical_cores: usize,
}

impl BenchResult {
    /// The result as one line of JSON.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("a BenchResult always serialises")
    }
}

impl fmt::Display for BenchResult {
    /// One line for people: `wide  threads 2  train 30,000 samples/s (...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<8} threads {}  train {:>11} samples/s ({:.1} GFLOP/s)  infer {:>11} samples/s ({:.1} GFLOP/s)",
            self.config,
            self.threads,
            thousands(self.train_samples_per_sec),
            self.train_gflops,
            thousands(self.infer_samples_per_sec),
            self.infer_gflops,
        )?;
        if let Some(bytes) = self.peak_rss_bytes {
            write!(f, "  peak RSS {} MiB", thousands(bytes as f64 / 1048576.0))?;
        }
        Ok(())
    }
}

/// `12345.6` -> `"12,346"`.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Measures one config: `train_step(state, i)` then `infer_step(state, i)` under the
/// same `timing`, each called with a running mini-batch index (use
/// [`SyntheticData::batch`] with `config.batch`). Both steps get the same `state` (the
/// network, its workspace and gradients), which neither closure could borrow mutably
/// while the other holds it. `threads` is recorded as given: setting up the thread pool
/// or the GEMM parallelism is the caller's business.
pub fn run<S>(
    config: &BenchConfig,
    threads: usize,
    timing: &Timing,
    state: &mut S,
    train_step: impl FnMut(&mut S, usize),
    infer_step: impl FnMut(&mut S, usize),
) -> Result<BenchResult, BenchError> {
    run_measured(
        &Measured::network(config, threads),
        timing,
        state,
        train_step,
        infer_step,
    )
}

/// [`run`] for a model of layers: the same timing and result, with GFLOP/s counted from
/// [`ArchBenchConfig::macs_per_sample`] (6 FLOP per multiply-add for training, 2 for
/// inference, as `bench/pytorch_arch.py` counts).
pub fn run_arch<S>(
    config: &ArchBenchConfig,
    threads: usize,
    timing: &Timing,
    state: &mut S,
    train_step: impl FnMut(&mut S, usize),
    infer_step: impl FnMut(&mut S, usize),
) -> Result<BenchResult, BenchError> {
    let macs = config.macs_per_sample() as f64;
    let what = Measured {
        name: config.name,
        batch: config.batch,
        train_flops: 6.0 * macs,
        infer_flops: 2.0 * macs,
        threads,
    };
    run_measured(&what, timing, state, train_step, infer_step)
}

/// What [`run_measured`] needs to know of a config.
struct Measured {
    name: &'static str,
    batch: usize,
    train_flops: f64,
    infer_flops: f64,
    threads: usize,
}

impl Measured {
    /// A network of the speed table: FLOP of its matrix products, per example.
    fn network(config: &BenchConfig, threads: usize) -> Self {
        Measured {
            name: config.name,
            batch: config.batch,
            train_flops: config.train_flops_per_example() as f64,
            infer_flops: (config.sizes.windows(2))
                .map(|w| 2.0 * (w[0] * w[1]) as f64)
                .sum(),
            threads,
        }
    }

    /// The result of a run from its training and inference figures.
    fn result(&self, timing: &Timing, train: Stats, infer: Stats) -> BenchResult {
        let machine = Machine::detect();
        BenchResult {
            config: self.name.to_owned(),
            threads: self.threads,
            batch: self.batch,
            train_samples_per_sec: train.median,
            infer_samples_per_sec: infer.median,
            peak_rss_bytes: peak_rss_bytes(),
            implementation: "backprop".to_owned(),
            repeats: timing.repeats,
            seconds_per_repeat: timing.seconds_per_repeat,
            redone_repeats: train.redone + infer.redone,
            contended_repeats: train.contended + infer.contended,
            train_gflops: train.median * self.train_flops / 1e9,
            infer_gflops: infer.median * self.infer_flops / 1e9,
            train_repeats_samples_per_sec: train.per_repeat,
            infer_repeats_samples_per_sec: infer.per_repeat,
            cpu_model: machine.cpu_model,
            logical_cores: machine.logical_cores,
        }
    }
}

fn run_measured<S>(
    what: &Measured,
    timing: &Timing,
    state: &mut S,
    mut train_step: impl FnMut(&mut S, usize),
    mut infer_step: impl FnMut(&mut S, usize),
) -> Result<BenchResult, BenchError> {
    let train = measure(timing, what.batch, |i| train_step(state, i))?;
    let infer = measure(timing, what.batch, |i| infer_step(state, i))?;
    Ok(what.result(timing, train, infer))
}

/// The private step's settings that `backprop bench --dp` reports beside its figures.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DpSettings {
    /// sigma: the noise's standard deviation is sigma C.
    pub noise_multiplier: f64,
    /// C: each example's gradient is clipped to this norm.
    pub max_grad_norm: f64,
    /// Whether the noise is keyed by the operating system (ChaCha20) rather than seeded.
    pub secure_noise: bool,
}

/// `backprop bench --dp`: the ordinary step's [`BenchResult`] (the same keys, the same
/// step) and the private step's figures beside it, measured in one run, on one line of
/// JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DpBenchResult {
    /// The ordinary step, as `backprop bench` without `--dp` reports it.
    #[serde(flatten)]
    pub ordinary: BenchResult,
    /// Median private-step samples per second, counting the expected batch size B per
    /// step (an epoch of N examples takes N / B private steps).
    pub dp_train_samples_per_sec: f64,
    /// Private-step samples per second of each repeat.
    pub dp_train_repeats_samples_per_sec: Vec<f64>,
    /// `dp_train_samples_per_sec / train_samples_per_sec`.
    pub dp_ratio: f64,
    /// sigma.
    pub dp_noise_multiplier: f64,
    /// C.
    pub dp_max_grad_norm: f64,
    /// Whether the noise came from the operating system.
    pub dp_secure_noise: bool,
}

impl DpBenchResult {
    /// The result as one line of JSON: every key of [`BenchResult`], then the `dp_` keys.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("a DpBenchResult always serialises")
    }
}

impl fmt::Display for DpBenchResult {
    /// The ordinary line, the private line under it, and the machine.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.ordinary;
        writeln!(f, "{o}")?;
        writeln!(
            f,
            "{:<8} threads {}  private {:>9} samples/s  = {:.2} x ordinary {} samples/s  (sigma {}, C {}, {} noise, batch {})",
            o.config,
            o.threads,
            thousands(self.dp_train_samples_per_sec),
            self.dp_ratio,
            thousands(o.train_samples_per_sec),
            self.dp_noise_multiplier,
            self.dp_max_grad_norm,
            if self.dp_secure_noise { "OS" } else { "seeded" },
            o.batch,
        )?;
        write!(
            f,
            "machine  {}, {} logical cores",
            o.cpu_model, o.logical_cores
        )
    }
}

/// [`run`] with a private step measured beside the ordinary one: their repeats
/// alternate (ordinary, private, ordinary, ...) in this one process, so a change of load
/// on a shared machine falls on both; then inference as [`run`] measures it. Each call
/// of `private_step` counts as `config.batch` samples (the expected batch size).
///
/// # Errors
/// [`BenchError::BadTiming`] as [`measure`].
#[allow(clippy::too_many_arguments)]
pub fn run_dp<S>(
    config: &BenchConfig,
    threads: usize,
    timing: &Timing,
    dp: DpSettings,
    state: &mut S,
    mut train_step: impl FnMut(&mut S, usize),
    mut private_step: impl FnMut(&mut S, usize),
    mut infer_step: impl FnMut(&mut S, usize),
) -> Result<DpBenchResult, BenchError> {
    timing.check()?;
    let (mut ordinary, mut private) = (Vec::new(), Vec::new());
    let (mut steps, mut redone, mut contended) = (Vec::new(), 0, 0);
    let mut first = (0, 0);
    for r in 0..timing.repeats {
        // One repeat of each; the warm-up only before the first.
        let one = Timing {
            repeats: 1,
            warmup_steps: if r == 0 { timing.warmup_steps } else { 0 },
            ..*timing
        };
        let o = measure(&one, config.batch, |i| train_step(state, first.0 + i))?;
        first.0 += one.warmup_steps + o.steps.iter().sum::<u64>() as usize;
        let p = measure(&one, config.batch, |i| private_step(state, first.1 + i))?;
        first.1 += one.warmup_steps + p.steps.iter().sum::<u64>() as usize;
        redone += o.redone + p.redone;
        contended += o.contended + p.contended;
        ordinary.extend(o.per_repeat);
        private.extend(p.per_repeat);
        steps.extend(o.steps);
    }
    let no_time = BenchError::BadTiming {
        reason: "the clock gave no usable time",
    };
    let train = median(&ordinary).ok_or(no_time.clone())?;
    let dp_train = median(&private).ok_or(no_time)?;
    let infer = measure(timing, config.batch, |i| infer_step(state, i))?;
    // The ordinary step's repeats, and the repeats of both redone or kept contended.
    let ordinary_stats = Stats {
        median: train,
        min: ordinary.iter().copied().fold(f64::INFINITY, f64::min),
        max: ordinary.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        per_repeat: ordinary,
        steps,
        redone,
        contended,
    };
    let result = Measured::network(config, threads).result(timing, ordinary_stats, infer);
    Ok(DpBenchResult {
        ordinary: result,
        dp_train_samples_per_sec: dp_train,
        dp_train_repeats_samples_per_sec: private,
        dp_ratio: dp_train / train,
        dp_noise_multiplier: dp.noise_multiplier,
        dp_max_grad_norm: dp.max_grad_norm,
        dp_secure_noise: dp.secure_noise,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_steps_against_an_exact_clock() {
        // Each step takes exactly 0.1 s: a 0.25 s repeat needs 3 steps (0.3 s), so
        // 3 steps x 10 samples / 0.3 s = 100 samples/s in every repeat.
        let t = std::cell::Cell::new(0.0);
        let mut indices = Vec::new();
        let timing = Timing {
            seconds_per_repeat: 0.25,
            repeats: 4,
            warmup_steps: 2,
            retries: 0,
        };
        let stats = measure_with_clock(
            &timing,
            10,
            |i| {
                indices.push(i);
                t.set(t.get() + 0.1);
            },
            || t.get(),
            || Some(0.0),
        )
        .unwrap();
        assert_eq!(stats.steps, vec![3, 3, 3, 3]);
        for r in &stats.per_repeat {
            assert!((r - 100.0).abs() < 1e-9, "{r}");
        }
        assert_eq!(indices, (0..14).collect::<Vec<_>>());
    }

    #[test]
    fn reports_median_min_max_of_uneven_repeats() {
        // Step c (from 1) takes 0.5 c seconds; each 0.1 s repeat is one step.
        let t = std::cell::Cell::new(0.0);
        let mut calls = 0;
        let timing = Timing {
            seconds_per_repeat: 0.1,
            repeats: 3,
            warmup_steps: 0,
            retries: 0,
        };
        let stats = measure_with_clock(
            &timing,
            4,
            |_| {
                calls += 1;
                t.set(t.get() + 0.5 * calls as f64);
            },
            || t.get(),
            || Some(0.0),
        )
        .unwrap();
        // 4 samples in 0.5, 1.0, 1.5 s: 8, 4, 2.667 samples/s.
        assert_eq!(stats.steps, vec![1, 1, 1]);
        assert!((stats.max - 8.0).abs() < 1e-12);
        assert!((stats.median - 4.0).abs() < 1e-12);
        assert!((stats.min - 4.0 / 1.5).abs() < 1e-12);
    }

    #[test]
    fn redoes_repeats_another_process_disturbed() {
        // Attempt n is one step of 1/(10 n) s (the minimum repeat is shorter). The
        // run-queue wait grows by 0.05 s (contended) in attempts 2 and 3 and by 1e-4 s
        // (at most 0.5%) otherwise.
        // With one retry: attempt 2 is redone, attempt 3 is kept as contended.
        let t = std::cell::Cell::new(0.0);
        let attempt = std::cell::Cell::new(0usize);
        let waited = std::cell::Cell::new(0.0);
        let mut rates = vec![10.0, 20.0, 30.0, 40.0, 50.0].into_iter();
        let mut samples_per_step = 0.0;
        let timing = Timing {
            seconds_per_repeat: 0.001,
            repeats: 4,
            warmup_steps: 0,
            retries: 1,
        };
        let stats = measure_with_clock(
            &timing,
            1,
            |_| {
                // Each attempt's step takes a different time, so the kept rates
                // show which attempts were kept.
                samples_per_step = rates.next().unwrap();
                t.set(t.get() + 1.0 / samples_per_step);
            },
            || t.get(),
            || {
                // Called once before and once after each attempt.
                let before = attempt.get().is_multiple_of(2);
                let n = attempt.get() / 2 + 1;
                attempt.set(attempt.get() + 1);
                if !before {
                    waited.set(waited.get() + if n == 2 || n == 3 { 0.05 } else { 1e-4 });
                }
                Some(waited.get())
            },
        )
        .unwrap();
        assert_eq!((stats.redone, stats.contended), (1, 1));
        // Attempts ran at 10, 20 (redone), 30 (kept, contended), 40, 50 samples/s.
        let kept: Vec<f64> = stats.per_repeat.iter().map(|r| r.round()).collect();
        assert_eq!(kept, vec![10.0, 30.0, 40.0, 50.0]);
    }

    #[test]
    fn refuses_timing_that_cannot_give_a_figure() {
        let bad = [
            Timing {
                seconds_per_repeat: 0.0,
                ..Timing::default()
            },
            Timing {
                seconds_per_repeat: f64::NAN,
                ..Timing::default()
            },
            Timing {
                repeats: 0,
                ..Timing::default()
            },
        ];
        for timing in bad {
            assert!(matches!(
                measure(&timing, 1, |_| {}),
                Err(BenchError::BadTiming { .. })
            ));
        }
        assert!(measure(&Timing::default(), 0, |_| {}).is_err());
    }

    #[test]
    fn median_of_known_inputs() {
        assert_eq!(median(&[5.0]), Some(5.0));
        assert_eq!(median(&[2.0, 1.0]), Some(1.5));
        assert_eq!(median(&[9.0, 1.0, 5.0, 7.0, 3.0]), Some(5.0));
        assert_eq!(median(&[1.0, 100.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn parses_vm_hwm_and_cpu_model() {
        let status = "Name:\tx\nVmPeak:\t  999 kB\nVmHWM:\t   2048 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2048 * 1024));
        assert_eq!(parse_vm_hwm("VmRSS: 1 kB\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM: lots kB\n"), None);
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t: avx\n";
        assert_eq!(parse_cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 9R14"));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1234567.8), "1,234,568");
    }
}
