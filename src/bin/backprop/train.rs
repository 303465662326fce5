//! `backprop train`: train a network on a data set, by the four equations and SGD, or a
//! model of layers (`--arch`: a CNN, an LSTM) by the same loop.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use backprop::data::text::DEFAULT_SEQ_LEN;
use backprop::data::{DataSource, Dataset, Scaling, ScalingKind, Split};
use backprop::dist::BlockGrad;
use backprop::model_file;
use backprop::network::{Activation, Cost, Init, NetworkError};
use backprop::nn::{self, Arch, ArchError, ArchModel};
use backprop::optim::{OptimizerConfig, OptimizerKind, Schedule};
use backprop::privacy::{self, PrivateTraining};
use backprop::train::{EpochReport, TrainConfig, TrainError, Trainable, Trainer};
use backprop::Float;

use crate::common::{self, one_of, plural, short_number, Sizes, Stopped};
use crate::errln;

/// Train a fully connected network, or any model of layers with --arch (by default on the
/// built-in digits).
#[derive(clap::Args)]
pub struct Args {
    /// digits; xor, spirals or moons (1000 points, or xor:N for N points); a directory of
    /// IDX files (MNIST layout); a CSV file (label first); or text:PATH (a UTF-8 file) or
    /// text:shakespeare for a character model (with --arch).
    #[arg(long, default_value = "digits")]
    data: String,
    /// A model of layers, written as PyTorch writes an nn.Sequential
    /// ("Conv2d(1, 8, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(128, 10),
    /// Softmax(dim=-1)"), or a preset: lenet5, convnet, char-lstm (whose V is the text's
    /// vocabulary size). Instead of --hidden.
    #[arg(long)]
    arch: Option<String>,
    /// One example's shape for --arch, C,H,W (1,28,28) [default: from IDX images and the
    /// digits (1,8,8); the feature count for CSV and synthetic data].
    #[arg(long)]
    input_shape: Option<String>,
    /// Characters per training sequence, T, for text data: each of the T characters is
    /// trained to predict the next [default: 64].
    #[arg(long)]
    seq_len: Option<usize>,
    /// A CSV test file for a CSV --data.
    #[arg(long)]
    test: Option<PathBuf>,
    /// Fraction held out for testing when the data has no test part.
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    test_split: f64,
    /// Input scaling: auto divides by the largest training input, standardize makes each
    /// feature mean 0 and standard deviation 1.
    #[arg(long, default_value = "auto", value_parser = one_of::<ScalingKind>(["auto", "none", "standardize"]))]
    scale: ScalingKind,
    /// Hidden layer sizes, comma-separated; "" for none (inputs straight to the outputs).
    #[arg(long, default_value = "30")]
    hidden: Sizes,
    /// F of the hidden layers.
    #[arg(long, default_value = "sigmoid", value_parser = one_of::<Activation>(Activation::ALL.map(Activation::name)))]
    activation: Activation,
    /// F of the output layer [default: softmax for log-likelihood, sigmoid otherwise].
    #[arg(long, value_parser = one_of::<Activation>(Activation::ALL.map(Activation::name)))]
    output_activation: Option<Activation>,
    /// The cost C.
    #[arg(long, default_value = "log-likelihood", value_parser = one_of::<Cost>(Cost::ALL.map(Cost::name)))]
    cost: Cost,
    /// Initial weights.
    #[arg(long, default_value = "uniform", value_parser = one_of::<Init>(Init::ALL.map(Init::name)))]
    init: Init,
    /// The update rule.
    #[arg(long, default_value = "sgd", value_parser = one_of::<OptimizerKind>(OptimizerKind::ALL.map(OptimizerKind::name)))]
    optimizer: OptimizerKind,
    /// eta, the learning rate [default: 0.5; 0.001 for adam and adamw].
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// mu, for momentum and nesterov.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    momentum: f64,
    /// L2 weight decay (decoupled for adamw).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    weight_decay: f64,
    /// Whether --weight-decay applies to the biases too (true, as PyTorch with one
    /// parameter group) or to the weights only (false, as Nielsen's L2 regularisation).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "true|false")]
    weight_decay_biases: bool,
    /// constant, step (halve every third of the epochs), step:EVERY:GAMMA, cosine.
    #[arg(long, default_value = "constant")]
    schedule: String,
    /// Mini-batch size n.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Number of epochs [default: 30].
    #[arg(long)]
    epochs: Option<usize>,
    /// Stop after this many epochs without a better validation accuracy, keeping the best
    /// model.
    #[arg(long)]
    patience: Option<usize>,
    /// Fraction of the training data held out for validation (early stopping watches it;
    /// the test part stays unseen) [default: 0.1 with --patience, else none].
    #[arg(long, allow_negative_numbers = true)]
    validation_split: Option<f64>,
    /// Seeds the weights, the shuffles and any held-out split.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Threads for matrix products [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Precision.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    dtype: Dtype,
    /// Write the trained model here (safetensors). Without it the model is not saved.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write a checkpoint here after every epoch (and on Ctrl-C or SIGTERM) [default on Ctrl-C or SIGTERM only:
    /// the --out path with its extension replaced by .checkpoint.safetensors
    /// (m.safetensors: m.checkpoint.safetensors), or backprop-checkpoint.safetensors
    /// without --out].
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Go on from a checkpoint, to the result the uninterrupted run would have had. The
    /// checkpoint remembers the settings and the files (--data, --test, --test-split,
    /// --out, --checkpoint, --log, --plot); those files may be given again to change them.
    /// --epochs (at least the epochs done) and --patience may change; the flags that
    /// decide the training (--lr, --hidden, --activation, --output-activation, --cost,
    /// --init, --optimizer, --momentum, --weight-decay, --schedule, --batch, --seed,
    /// --scale, --dtype; --arch, --input-shape, --seq-len for a model of layers) are
    /// refused unless they repeat the checkpoint's values.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Write per-epoch metrics here (CSV), rewritten after every epoch.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Draw loss and accuracy per epoch (SVG or PNG, by extension), redrawn every epoch.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// One JSON object per epoch on standard output, and a last one with the results.
    #[arg(long)]
    json: bool,
    /// Private training (DP-SGD, as Opacus's make_private): the noise multiplier sigma.
    /// Each step samples every training example with probability q = batch / N, clips
    /// each example's gradient to norm --dp-clip C, adds Gaussian noise of standard
    /// deviation sigma C to the sum and divides by the batch size; epsilon is reported
    /// after every epoch.
    #[arg(long, allow_negative_numbers = true)]
    dp_noise: Option<f64>,
    /// Private training: instead of --dp-noise, the epsilon to stay within at --dp-delta
    /// after --epochs (the least noise that does is found).
    #[arg(long, allow_negative_numbers = true)]
    dp_epsilon: Option<f64>,
    /// Private training: C, the norm each example's gradient is clipped to.
    #[arg(long, allow_negative_numbers = true)]
    dp_clip: Option<f64>,
    /// Private training: delta of the (epsilon, delta) guarantee, in (0, 1) [default:
    /// 1 / (10 N) for N training examples].
    #[arg(long, allow_negative_numbers = true)]
    dp_delta: Option<f64>,
    /// Private training: draw the noise and the batches from the operating system rather
    /// than from --seed (the run cannot be repeated then).
    #[arg(long)]
    dp_secure_noise: bool,
    /// Data-parallel training (mpirun -np N backprop train): --block, --verbose.
    #[command(flatten)]
    pub(crate) dist: crate::dist::Flags,
}

/// The private training flags, checked.
#[derive(Clone, Copy, Debug)]
struct DpFlags {
    /// --dp-noise, or --dp-epsilon to find it from.
    noise: DpNoise,
    clip: f64,
    delta: Option<f64>,
    secure: bool,
}

#[derive(Clone, Copy, Debug)]
enum DpNoise {
    Sigma(f64),
    Epsilon(f64),
}

/// The --dp-* flags: none (not private), or a consistent set.
fn dp_flags(args: &Args) -> anyhow::Result<Option<DpFlags>> {
    let noise = match (args.dp_noise, args.dp_epsilon) {
        (Some(_), Some(_)) => {
            bail!("--dp-noise and --dp-epsilon: give one of them (--dp-epsilon finds the noise)")
        }
        (Some(s), None) => Some(DpNoise::Sigma(s)),
        (None, Some(e)) => Some(DpNoise::Epsilon(e)),
        (None, None) => None,
    };
    let (noise, clip) = match (noise, args.dp_clip) {
        (None, None) => {
            if let Some(d) = args.dp_delta {
                bail!("--dp-delta {d}: applies to private training (give --dp-noise or --dp-epsilon, and --dp-clip)");
            }
            if args.dp_secure_noise {
                bail!("--dp-secure-noise: applies to private training (give --dp-noise or --dp-epsilon, and --dp-clip)");
            }
            return Ok(None);
        }
        (None, Some(c)) => {
            bail!("--dp-clip {c}: needs --dp-noise SIGMA or --dp-epsilon EPS (private training)")
        }
        (Some(DpNoise::Sigma(s)), None) => {
            bail!(
                "--dp-noise {s}: needs --dp-clip C, the norm each example's gradient is clipped to"
            )
        }
        (Some(DpNoise::Epsilon(e)), None) => {
            bail!("--dp-epsilon {e}: needs --dp-clip C, the norm each example's gradient is clipped to")
        }
        (Some(n), Some(c)) => (n, c),
    };
    match noise {
        DpNoise::Sigma(s) if !(s >= 0.0 && s.is_finite()) => {
            bail!("--dp-noise {s}: must be a finite number >= 0")
        }
        DpNoise::Epsilon(e) if !(e > 0.0 && e.is_finite()) => {
            bail!("--dp-epsilon {e}: must be a positive finite number")
        }
        _ => {}
    }
    if !(clip > 0.0 && clip.is_finite()) {
        bail!("--dp-clip {clip}: must be a positive finite number");
    }
    if let Some(d) = args.dp_delta.filter(|d| !(*d > 0.0 && *d < 1.0)) {
        bail!("--dp-delta {d}: must be in (0, 1)");
    }
    Ok(Some(DpFlags {
        noise,
        clip,
        delta: args.dp_delta,
        secure: args.dp_secure_noise,
    }))
}

/// The settings of a private run on `examples` training examples for `epochs` epochs:
/// delta defaults to 1 / (10 N); --dp-epsilon becomes the least noise that stays within it.
fn private_settings(
    dp: DpFlags,
    batch: usize,
    examples: usize,
    epochs: usize,
) -> anyhow::Result<PrivateTraining> {
    if batch > examples {
        bail!("--batch {batch}: private training samples each of the {examples} training examples with probability batch / {examples}, so the batch must be at most {examples}");
    }
    let delta = dp.delta.unwrap_or_else(|| privacy::default_delta(examples));
    let noise = match dp.noise {
        DpNoise::Sigma(s) => s,
        DpNoise::Epsilon(e) => {
            let q = batch as f64 / examples as f64;
            let steps = privacy::steps_per_epoch(examples, batch).saturating_mul(epochs as u64);
            privacy::noise_for_epsilon(e, delta, q, steps)
                .map_err(|err| anyhow::anyhow!("--dp-epsilon {e}: {err}"))?
        }
    };
    Ok(PrivateTraining {
        noise,
        clip: dp.clip,
        delta,
        secure_noise: dp.secure,
    })
}

/// `--dtype`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// 32-bit floats.
    F32,
    /// 64-bit floats.
    F64,
}

impl Dtype {
    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
        }
    }
}

/// Where a run reads and writes: the flags, or, when resuming, the checkpoint's record of
/// them for those not given again.
#[derive(Clone, Debug)]
struct Files {
    data: String,
    test: Option<PathBuf>,
    test_split: f64,
    out: Option<PathBuf>,
    checkpoint: Option<PathBuf>,
    log: Option<PathBuf>,
    plot: Option<PathBuf>,
}

/// Checkpoint metadata keys that remember [`Files`] (absolute paths, so that a run can be
/// resumed from another directory).
const RUN_KEYS: [&str; 7] = [
    "run.data",
    "run.test",
    "run.test_split",
    "run.out",
    "run.checkpoint",
    "run.log",
    "run.plot",
];

impl Files {
    fn from_args(args: &Args) -> Files {
        Files {
            data: args.data.clone(),
            test: args.test.clone(),
            test_split: args.test_split,
            out: args.out.clone(),
            checkpoint: args.checkpoint.clone(),
            log: args.log.clone(),
            plot: args.plot.clone(),
        }
    }

    /// The checkpoint's record, with the flags given again in its place.
    fn resumed(
        args: &Args,
        given: &dyn Fn(&str) -> bool,
        meta: &BTreeMap<String, String>,
    ) -> Files {
        let mut files = Files::from_args(args);
        let stored = |key: &str| meta.get(key).filter(|v| !v.is_empty());
        let path = |key: &str| stored(key).map(PathBuf::from);
        // Checkpoints written before the run.* keys still name the data and split.
        if !given("data") {
            if let Some(d) = stored("run.data").or(stored("data")) {
                files.data = d.clone();
            }
        }
        if !given("test") && !given("data") {
            files.test = path("run.test");
        }
        if !given("test_split") {
            let split = stored("run.test_split").or(stored("data.test_split"));
            if let Some(f) = split.and_then(|f| f.parse().ok()) {
                files.test_split = f;
            }
        }
        for (id, slot) in [
            ("out", &mut files.out),
            ("checkpoint", &mut files.checkpoint),
            ("log", &mut files.log),
            ("plot", &mut files.plot),
        ] {
            if !given(id) {
                *slot = path(&format!("run.{id}"));
            }
        }
        files
    }

    /// The model file's record of the data (its scaling, classes, name, test split, and
    /// where its files are, so that `eval` finds them from another directory), and the
    /// checkpoint's: the same plus every file of the run, so that --resume alone goes on.
    fn data_metadata(
        &self,
        scaling: &Scaling,
        classes: usize,
        test_split: f64,
    ) -> (Metadata, Metadata) {
        let mut metadata = vec![
            ("scaling".to_string(), scaling.to_string()),
            ("classes".to_string(), classes.to_string()),
            ("data".to_string(), self.data.clone()),
            ("data.test_split".to_string(), test_split.to_string()),
        ];
        let canonical = |p: &Path| {
            std::fs::canonicalize(p)
                .ok()
                .map(|p| p.display().to_string())
        };
        // The shipped text is no file of the user's, whatever the directory holds.
        let data = self.data.strip_prefix("text:").unwrap_or(&self.data);
        if let Some(c) = canonical(Path::new(data)).filter(|_| self.data != "text:shakespeare") {
            metadata.push(("data.canonical".into(), c));
        }
        if let Some(c) = self.test.as_deref().and_then(canonical) {
            metadata.push(("data.test".into(), c));
        }
        let mut checkpoint = metadata.clone();
        checkpoint.extend(self.to_metadata());
        (metadata, checkpoint)
    }

    /// The record for a checkpoint.
    fn to_metadata(&self) -> Vec<(String, String)> {
        let abs = |p: &Option<PathBuf>| {
            p.as_ref().map_or(String::new(), |p| {
                std::path::absolute(p)
                    .unwrap_or_else(|_| p.clone())
                    .display()
                    .to_string()
            })
        };
        let data = match self.data.strip_prefix("text:") {
            Some(text) if Path::new(text).exists() => {
                format!("text:{}", abs(&Some(PathBuf::from(text))))
            }
            _ if Path::new(&self.data).exists() => abs(&Some(PathBuf::from(&self.data))),
            _ => self.data.clone(),
        };
        let values = [
            data,
            abs(&self.test),
            self.test_split.to_string(),
            abs(&self.out),
            abs(&self.checkpoint),
            abs(&self.log),
            abs(&self.plot),
        ];
        RUN_KEYS
            .iter()
            .zip(values)
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// Where Ctrl-C saves the run: --checkpoint, or the name --help promises.
    fn interrupt_checkpoint(&self) -> PathBuf {
        self.checkpoint.clone().unwrap_or_else(|| match &self.out {
            Some(out) => {
                let mut name = out.file_stem().unwrap_or_default().to_os_string();
                name.push(".checkpoint.safetensors");
                out.with_file_name(name)
            }
            None => PathBuf::from("backprop-checkpoint.safetensors"),
        })
    }

    /// Refuses, before any work, outputs that cannot be written or that would overwrite
    /// an input or each other.
    fn check(&self, resume: Option<&Path>) -> anyhow::Result<()> {
        let mut outputs: Vec<(&str, &Path)> = Vec::new();
        for (flag, path) in [
            ("--out", &self.out),
            ("--log", &self.log),
            ("--plot", &self.plot),
        ] {
            if let Some(p) = path {
                outputs.push((flag, p));
            }
        }
        let ctrl_c = self.interrupt_checkpoint();
        let ctrl_c_flag = if self.checkpoint.is_some() {
            "--checkpoint"
        } else {
            "the Ctrl-C checkpoint"
        };
        for &(flag, path) in outputs
            .iter()
            .chain([(ctrl_c_flag, ctrl_c.as_path())].iter())
        {
            common::check_output(flag, path)?;
        }
        if let Some(p) = &self.plot {
            backprop::plot::check_extension(p).map_err(|e| anyhow::anyhow!("--plot {e}"))?;
        }
        let data = common::data_files(&self.data, self.test.as_deref());
        let mut inputs: Vec<(&str, &Path)> = data.iter().map(|(f, p)| (*f, p.as_path())).collect();
        if let Some(r) = resume {
            inputs.push(("--resume", r));
        }
        common::check_distinct(&inputs, &outputs)?;
        // The checkpoint may be the file resumed from: it is rewritten with a later state.
        if resume.is_some() {
            inputs.pop();
        }
        outputs.push((ctrl_c_flag, &ctrl_c));
        common::check_distinct(&inputs, &outputs)
    }
}

/// The flags that decide the training, with their `TrainConfig::to_metadata` keys: a
/// resumed run keeps the checkpoint's.
const FIXED_ON_RESUME: [(&str, &str); 12] = [
    ("lr", "train.lr"),
    ("hidden", "train.hidden"),
    ("activation", "train.activation"),
    ("output_activation", "train.output_activation"),
    ("cost", "train.cost"),
    ("init", "train.init"),
    ("optimizer", "train.optimizer"),
    ("momentum", "train.momentum"),
    ("weight_decay", "train.weight_decay"),
    ("schedule", "train.schedule"),
    ("batch", "train.batch"),
    ("seed", "train.seed"),
];

/// `--flag-name` for a clap id.
fn flag(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

pub fn run(args: Args, given: &[String]) -> anyhow::Result<()> {
    let given = |id: &str| given.iter().any(|g| g == id);
    let fresh = config(&args)?;
    let text = args.data.starts_with("text:");
    if let Some(t) = args.seq_len {
        // A resumed run's data may be the checkpoint's text.
        if !text && args.resume.is_none() {
            bail!(
                "--seq-len {t}: applies to text data only (--data text:PATH or text:shakespeare)"
            );
        }
        if t == 0 {
            bail!("--seq-len 0: a sequence needs at least 1 character");
        }
    }
    let dp = dp_flags(&args)?;
    if let Some(arch) = args.arch.clone() {
        if given("hidden") {
            bail!("--arch and --hidden: give one of them (--arch builds a model of layers, --hidden a fully connected network)");
        }
        for id in ["activation", "output_activation", "init"] {
            if given(id) {
                bail!(
                    "{}: applies to --hidden networks; an --arch model names its own layers and starts as PyTorch's do",
                    flag(id)
                );
            }
        }
        if args.resume.is_none() {
            let files = Files::from_args(&args);
            files.check(None)?;
            let start = || ArchStart::Fresh {
                config: fresh.clone(),
                arch: arch.clone(),
            };
            return match args.dtype {
                Dtype::F32 => run_arch::<f32>(&args, &given, files, start()),
                Dtype::F64 => run_arch::<f64>(&args, &given, files, start()),
            };
        }
    }
    if let Some(shape) = &args.input_shape {
        bail!("--input-shape {shape}: applies to --arch models only");
    }
    if text && args.resume.is_none() {
        bail!(
            "--data {}: a character model is a model of layers: give --arch (e.g. --arch char-lstm)",
            args.data
        );
    }
    let Some(path) = args.resume.clone() else {
        let files = Files::from_args(&args);
        files.check(None)?;
        return match args.dtype {
            Dtype::F32 => run_typed::<f32>(&args, files, Start::Fresh(fresh)),
            Dtype::F64 => run_typed::<f64>(&args, files, Start::Fresh(fresh)),
        };
    };
    let resume = |e: &dyn std::fmt::Display| anyhow::anyhow!("--resume {e}");
    // A checkpoint of a model of layers has an arch; the network's has layers.
    let (_, peek) = backprop::safetensors_io::read_tensors(&path).map_err(|e| resume(&e))?;
    let arch_checkpoint = nn::is_arch_model(&peek);
    let (meta, f64_file) = if arch_checkpoint {
        let (model, meta) = nn::load(&path).map_err(|e| resume(&e))?;
        (meta, matches!(model, nn::AnyArchModel::F64(_)))
    } else {
        let checkpoint = model_file::load(&path).map_err(|e| resume(&e))?;
        let f64_file = checkpoint.network.dtype() == f64::DTYPE;
        (checkpoint.metadata, f64_file)
    };
    if !backprop::train::is_checkpoint(&meta) {
        bail!(
            "--resume {}: is a model file, not a checkpoint (checkpoints are written by --checkpoint FILE and on Ctrl-C)",
            path.display()
        );
    }
    let stored = TrainConfig::from_metadata(&meta).map_err(|e| {
        anyhow::anyhow!("--resume {}: not a usable checkpoint: {e}", path.display())
    })?;
    let dtype = if f64_file { Dtype::F64 } else { Dtype::F32 };
    let refuse = |id: &str, value: &str, theirs: &str| {
        anyhow::anyhow!(
            "{} {value}: the checkpoint {} was trained with {theirs}; a resumed run keeps its settings (leave {} out)",
            flag(id),
            path.display(),
            flag(id)
        )
    };
    if given("dtype") && args.dtype != dtype {
        return Err(refuse("dtype", args.dtype.name(), dtype.name()));
    }
    let (mine, theirs): (BTreeMap<_, _>, BTreeMap<_, _>) = (
        fresh.to_metadata().into_iter().collect(),
        stored.to_metadata().into_iter().collect(),
    );
    let kind = if arch_checkpoint {
        "a model of layers (--arch)"
    } else {
        "a fully connected network (--hidden)"
    };
    let foreign: &[&str] = if arch_checkpoint {
        &["hidden", "activation", "output_activation", "init"]
    } else {
        &["arch"]
    };
    for id in foreign {
        if given(id) {
            bail!(
                "{}: the checkpoint {} is {kind}; leave {} out",
                flag(id),
                path.display(),
                flag(id)
            );
        }
    }
    if arch_checkpoint {
        let stored_arch = meta.get(nn::ARCH_KEY).cloned().unwrap_or_default();
        if let Some(a) = &args.arch {
            let v = meta
                .get(nn::VOCAB_KEY)
                .and_then(|v| backprop::data::text::Vocab::from_json(v).ok())
                .map_or(0, |v| v.len());
            let expanded = nn::preset(a, v).unwrap_or_else(|| a.clone());
            let canonical = expanded.parse::<Arch>().map(|a| a.to_string());
            if canonical.as_deref() != Ok(stored_arch.as_str()) {
                return Err(refuse("arch", a, &stored_arch));
            }
        }
        let shape = meta.get(nn::INPUT_SHAPE_KEY).cloned().unwrap_or_default();
        if let Some(t) = args.seq_len.filter(|t| t.to_string() != shape) {
            return Err(refuse("seq_len", &t.to_string(), &shape));
        }
        if let Some(s) = &args.input_shape {
            let same = nn::parse_input_shape(s).is_ok_and(|d| {
                d.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
                    == shape
            });
            if !same {
                return Err(refuse("input_shape", s, &shape));
            }
        }
    }
    for (id, key) in FIXED_ON_RESUME {
        // The other kind's flags are refused above.
        if foreign.contains(&id) {
            continue;
        }
        if given(id) && mine.get(key) != theirs.get(key) {
            let show = |m: &BTreeMap<String, String>| m.get(key).cloned().unwrap_or_default();
            return Err(refuse(id, &show(&mine), &show(&theirs)));
        }
    }
    check_dp_on_resume(dp, &meta, &path)?;
    if given("scale") {
        let kind = |s: &str| s.split(':').next().unwrap_or("").to_string();
        let stored = kind(meta.get("scaling").map_or("", String::as_str));
        let wanted = match args.scale {
            ScalingKind::Auto => "divide",
            ScalingKind::None => "none",
            ScalingKind::Standardize => "standardize",
        };
        if stored != wanted {
            let name = |s: &str| if s == "divide" { "auto" } else { s }.to_string();
            return Err(refuse("scale", &name(wanted), &name(&stored)));
        }
    }
    let files = Files::resumed(&args, &given, &meta);
    files.check(Some(&path))?;
    if arch_checkpoint {
        let start = ArchStart::Resume {
            path,
            meta,
            epochs: args.epochs,
            patience: args.patience,
        };
        return match dtype {
            Dtype::F32 => run_arch::<f32>(&args, &given, files, start),
            Dtype::F64 => run_arch::<f64>(&args, &given, files, start),
        };
    }
    let start = Start::Resume {
        path,
        meta,
        epochs: args.epochs,
        patience: args.patience,
    };
    match dtype {
        Dtype::F32 => run_typed::<f32>(&args, files, start),
        Dtype::F64 => run_typed::<f64>(&args, files, start),
    }
}

/// How a run begins: with new settings, or from a checkpoint.
/// A resumed run keeps the checkpoint's private training: --dp-* flags are refused unless
/// they repeat it.
fn check_dp_on_resume(
    dp: Option<DpFlags>,
    meta: &BTreeMap<String, String>,
    path: &Path,
) -> anyhow::Result<()> {
    let Some(dp) = dp else {
        return Ok(());
    };
    let name = match dp.noise {
        DpNoise::Sigma(_) => "--dp-noise",
        DpNoise::Epsilon(_) => "--dp-epsilon",
    };
    let stored = PrivateTraining::from_metadata(meta)
        .map_err(|e| anyhow::anyhow!("--resume {}: {e}", path.display()))?;
    let Some((stored, _, _)) = stored else {
        bail!(
            "{name}: the checkpoint {} was trained without private training; a resumed run keeps its settings (leave the --dp-* flags out)",
            path.display()
        );
    };
    let differs = |flag: &str, mine: String, theirs: String| {
        anyhow::anyhow!(
            "{flag} {mine}: the checkpoint {} was trained with {theirs}; a resumed run keeps its settings (leave {flag} out)",
            path.display()
        )
    };
    match dp.noise {
        DpNoise::Sigma(s) if s != stored.noise => {
            return Err(differs("--dp-noise", s.to_string(), stored.noise.to_string()))
        }
        DpNoise::Epsilon(e) => bail!(
            "--dp-epsilon {e}: the checkpoint {} keeps the noise {} found for its budget; leave --dp-epsilon out",
            path.display(),
            stored.noise
        ),
        _ => {}
    }
    if dp.clip != stored.clip {
        return Err(differs(
            "--dp-clip",
            dp.clip.to_string(),
            stored.clip.to_string(),
        ));
    }
    if let Some(d) = dp.delta.filter(|d| *d != stored.delta) {
        return Err(differs(
            "--dp-delta",
            d.to_string(),
            stored.delta.to_string(),
        ));
    }
    if dp.secure && !stored.secure_noise {
        return Err(differs(
            "--dp-secure-noise",
            String::new(),
            "seeded noise".into(),
        ));
    }
    Ok(())
}

enum Start {
    Fresh(TrainConfig),
    Resume {
        path: PathBuf,
        meta: BTreeMap<String, String>,
        epochs: Option<usize>,
        patience: Option<usize>,
    },
}

/// The settings from the flags, refusing those that make no sense before any work.
fn config(args: &Args) -> anyhow::Result<TrainConfig> {
    let lr = args.lr.unwrap_or(match args.optimizer {
        OptimizerKind::Adam | OptimizerKind::AdamW => 0.001,
        _ => 0.5,
    });
    let epochs = args.epochs.unwrap_or(30);
    let schedule = Schedule::parse(&args.schedule, epochs).map_err(|e| anyhow::anyhow!(e))?;
    let output_activation = args.output_activation.unwrap_or(match args.cost {
        Cost::LogLikelihood => Activation::Softmax,
        _ => Activation::Sigmoid,
    });
    let mut optimizer = OptimizerConfig::new(args.optimizer);
    optimizer.momentum = args.momentum;
    optimizer.weight_decay = args.weight_decay;
    optimizer.decay_biases = args.weight_decay_biases;
    let validation_split =
        args.validation_split
            .unwrap_or(if args.patience.is_some() { 0.1 } else { 0.0 });
    if args.patience.is_some() && validation_split == 0.0 {
        bail!("--validation-split 0: --patience needs a validation part to watch (watching the test part would leak it into training)");
    }
    let config = TrainConfig {
        hidden: args.hidden.0.clone(),
        activation: args.activation,
        output_activation,
        cost: args.cost,
        init: args.init,
        optimizer,
        lr,
        schedule,
        batch: args.batch,
        epochs,
        patience: args.patience,
        validation_split,
        seed: args.seed,
    };
    // The same checks as a checkpoint's settings get.
    config.validate()?;
    Ok(config)
}

fn run_typed<T: Float>(args: &Args, files: Files, start: Start) -> anyhow::Result<()> {
    common::set_threads(args.threads)?;

    // The trainer: new, or from a checkpoint (whose settings hold, but for --epochs and
    // --patience).
    let mut resumed_meta = None;
    let (trainer, scaling, resumed_from) = match start {
        Start::Fresh(config) => (Err(config), None, None),
        Start::Resume {
            path,
            meta,
            epochs,
            patience,
        } => {
            let (mut t, _) =
                Trainer::<T>::resume(&path).map_err(|e| anyhow::anyhow!("--resume {e}"))?;
            let done = t.history().len();
            if let Some(e) = epochs {
                if e < done {
                    bail!(
                        "--epochs {e}: the checkpoint {} has done {done} epochs already; give at least {done}",
                        path.display()
                    );
                }
                t.set_epochs(e);
            }
            if patience.is_some() {
                t.set_patience(patience);
            }
            let scaling: Scaling = meta
                .get("scaling")
                .with_context(|| {
                    format!("--resume {}: no scaling in the checkpoint", path.display())
                })?
                .parse()
                .map_err(|e| {
                    anyhow::anyhow!("--resume {}: metadata scaling: {e}", path.display())
                })?;
            resumed_meta = Some(meta);
            (Ok(t), Some(scaling), Some(path))
        }
    };
    let settings = match &trainer {
        Ok(t) => t.config().clone(),
        Err(config) => config.clone(),
    };
    let Split { train, mut test } = common::load_data(
        &files.data,
        files.test.as_deref(),
        files.test_split,
        settings.seed,
    )?;
    let (mut train, mut validation) = settings
        .split_validation(train)
        .map_err(|e| anyhow::anyhow!("--validation-split: {e}"))?;
    let scaling = scaling.unwrap_or_else(|| args.scale.fit(&train));
    scaling.apply(&mut train)?;
    scaling.apply(&mut test)?;
    if let Some(v) = &mut validation {
        scaling.apply(v)?;
    }
    if train.distinct_labels() == 1 {
        eprintln!(
            "warning: --data {}: every training example has label {}; any accuracy measured on it is meaningless",
            files.data, train.labels[0]
        );
    }
    let classes = train.classes.max(test.classes);
    let trainer = match trainer {
        Ok(t) => t,
        Err(config) => Trainer::<T>::new(config, train.features, classes).map_err(|e| match e {
            TrainError::Network(NetworkError::TooLarge { .. }) => {
                anyhow::anyhow!("--hidden {}: {e}", args.hidden)
            }
            e => e.into(),
        })?,
    };
    let sizes = trainer.network().sizes();
    if sizes[0] != train.features {
        bail!(
            "--resume: the model takes {} inputs but --data {} has {} features",
            sizes[0],
            files.data,
            train.features
        );
    }
    let mut trainer = trainer;
    if let (Some(dp), None) = (dp_flags(args)?, &resumed_from) {
        let c = trainer.config();
        let settings = private_settings(dp, c.batch, train.len(), c.epochs)?;
        trainer = trainer.with_privacy(settings, train.len())?;
    }

    let (metadata, checkpoint_meta) =
        files.data_metadata(&scaling, sizes[sizes.len() - 1], files.test_split);
    let config = trainer.config().clone();
    let model = format!(
        "training {} ({} hidden, {} output, {} cost, {} init)",
        sizes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("-"),
        config.activation,
        config.output_activation,
        config.cost,
        config.init,
    );
    train_loop(Run {
        args,
        files: &files,
        trainer,
        train,
        validation,
        test,
        metadata,
        checkpoint_meta,
        header: Header {
            model,
            examples: "examples".into(),
        },
        resumed_from,
        resumed_meta,
        summary: ("layers", serde_json::json!(sizes)),
        save: save_model,
        checkpoint: |t, path, meta| Ok(t.save_checkpoint(path, meta)?),
    })
}

/// The line a run starts with: what is trained (which differs by kind of model), then
/// on what and how (the same for both).
struct Header {
    /// "training 784-30-10 (sigmoid hidden, ...)" or "training lenet5 (...)".
    model: String,
    /// What one example of the data is: "examples", "sequences of 64 characters".
    examples: String,
}

impl Header {
    fn line(
        &self,
        files: &Files,
        train: &Dataset,
        validation: Option<&Dataset>,
        test: &Dataset,
        config: &TrainConfig,
    ) -> String {
        format!(
            "{} on {} ({} train, {}{} test {}), {}, batch {}, {} lr {}",
            self.model,
            files.data,
            train.len(),
            validation.map_or(String::new(), |v| format!("{} validation, ", v.len())),
            test.len(),
            self.examples,
            plural(config.epochs, "epoch"),
            config.batch,
            config.optimizer.kind,
            config.lr,
        )
    }
}

/// How a run saves its model, or a checkpoint, for either kind of model.
/// A model file's metadata: keys and values, in the order written.
type Metadata = Vec<(String, String)>;

type SaveFn<T, M> = fn(&Trainer<T, M>, &Path, &[(String, String)]) -> anyhow::Result<()>;

/// One training run, whatever the model: the data, the trainer, and what differs between
/// the network and a model of layers (the header line, how the model and a checkpoint are
/// saved, the summary's description of the model).
struct Run<'a, T: Float, M: Trainable<T>> {
    args: &'a Args,
    files: &'a Files,
    trainer: Trainer<T, M>,
    train: Dataset,
    validation: Option<Dataset>,
    test: Dataset,
    /// The model file's metadata besides the training settings.
    metadata: Vec<(String, String)>,
    checkpoint_meta: Vec<(String, String)>,
    header: Header,
    resumed_from: Option<PathBuf>,
    /// The checkpoint's metadata when resuming (it keeps `--block`).
    resumed_meta: Option<BTreeMap<String, String>>,
    /// The JSON summary's key and value that describe the model.
    summary: (&'static str, serde_json::Value),
    save: SaveFn<T, M>,
    /// How to save a checkpoint.
    checkpoint: SaveFn<T, M>,
}

/// The one training loop of the command: epochs with progress, per-epoch lines or JSON,
/// the log and plot, checkpoints and Ctrl-C, divergence, and the summary.
fn train_loop<T: Float, M: Trainable<T> + BlockGrad<T> + 'static>(
    run: Run<'_, T, M>,
) -> anyhow::Result<()> {
    let Run {
        args,
        files,
        mut trainer,
        train,
        validation,
        test,
        mut metadata,
        mut checkpoint_meta,
        header,
        resumed_from,
        resumed_meta,
        summary,
        save: save_model,
        checkpoint,
    } = run;
    // Blocks, and the ranks under mpirun: the same for either kind of model.
    if trainer.privacy().is_some() {
        crate::dist::check_private(&args.dist)?;
    }
    let parts = [Some(&train), validation.as_ref(), Some(&test)];
    let dist_meta = crate::dist::prepare(
        &args.dist,
        args.json,
        &mut trainer,
        parts,
        resumed_meta.as_ref(),
    )?;
    checkpoint_meta.extend(dist_meta);
    let save_checkpoint = |t: &Trainer<T, M>, path: &Path| -> anyhow::Result<()> {
        checkpoint(t, path, &checkpoint_meta)
    };
    // Under mpirun, rank 0 alone writes files (and saves on Ctrl-C).
    let (rank_0, mut none) = (args.dist.group.rank() == 0, files.clone());
    (none.out, none.checkpoint, none.log, none.plot) = (None, None, None, None);
    let files = if rank_0 { files } else { &none };
    let interrupted = Arc::new(AtomicBool::new(false));
    if rank_0 {
        let flag = interrupted.clone();
        // Ctrl-C, SIGTERM (kill, timeout, a batch scheduler's preemption) or SIGHUP: the
        // first lets the epoch finish and saves it, a second ends the process at once.
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let stderr_tty = std::io::stderr().is_terminal();
    let config = trainer.config().clone();
    if !args.json {
        errln!(
            "{}",
            header.line(files, &train, validation.as_ref(), &test, &config)
        );
        if let Some(path) = &resumed_from {
            errln!(
                "resuming at epoch {} of {} from {}",
                trainer.history().len() + 1,
                config.epochs,
                path.display()
            );
        }
    }
    if let Some((dp, c, acc)) = trainer.privacy() {
        if !args.json {
            let n = train.len();
            let default = if dp.delta == privacy::default_delta(n) {
                " (1/(10 N), the default)"
            } else {
                ""
            };
            errln!(
                "private training: noise multiplier {}, clipping norm {}, delta {}{default}, sample rate {} (batches of {} expected of {n}), {} steps per epoch{}",
                dp.noise,
                dp.clip,
                short_number(dp.delta),
                short_number(c.sample_rate),
                c.expected_batch_size,
                privacy::steps_per_epoch(n, c.expected_batch_size),
                if acc.steps() > 0 { format!(", {} taken", acc.steps()) } else { String::new() },
            );
        }
        if dp.secure_noise {
            errln!("--dp-secure-noise: the noise and the batches come from the operating system; this run cannot be repeated");
        }
    }
    let start = std::time::Instant::now();
    let batches = match trainer.privacy() {
        Some((_, c, _)) => privacy::steps_per_epoch(train.len(), c.expected_batch_size) as usize,
        None => train.len().div_ceil(config.batch),
    };
    while !trainer.finished() {
        let epoch = trainer.history().len() + 1;
        let bar = stderr_tty.then(|| {
            let b = indicatif::ProgressBar::new(batches as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "epoch {msg} [{bar:30}] {pos}/{len} batches ({eta})",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            b.set_message(format!("{epoch}/{}", trainer.config().epochs));
            b
        });
        let progress = |done: usize, _total: usize| {
            if let Some(b) = &bar {
                b.set_position(done as u64);
            }
        };
        let result =
            trainer.run_epoch_validated(&train, validation.as_ref(), &test, Some(&progress));
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        match result {
            Ok(report) => print_epoch(&report, trainer.config().epochs, args.json)?,
            Err(e @ TrainError::Diverged { .. }) => {
                if args.json {
                    let stop =
                        serde_json::json!({ "stopped": "diverged", "reason": e.to_string() });
                    crate::outln!("{stop}");
                }
                if let (Some(out), false) = (&files.out, trainer.history().is_empty()) {
                    save_model(&trainer, out, &metadata)?;
                    errln!("kept the model of the last good epoch in {}", out.display());
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        }
        write_side_files(files, &trainer)?;
        if let Some(path) = &files.checkpoint {
            save_checkpoint(&trainer, path)?;
        }
        if interrupted.load(Ordering::SeqCst) && !trainer.finished() {
            let path = files.interrupt_checkpoint();
            if files.checkpoint.is_none() {
                save_checkpoint(&trainer, &path)?;
            }
            return Err(Stopped {
                message: format!(
                    "interrupted after epoch {}; checkpoint saved: go on with --resume {}",
                    trainer.history().len(),
                    path.display()
                ),
                status: 130,
            }
            .into());
        }
    }
    crate::dist::report(&args.dist, trainer.comm_stats())?;
    let last = trainer.history().last().cloned();
    let final_eval = trainer.evaluate_final(&test)?;
    metadata.push(("test_accuracy".into(), final_eval.accuracy.to_string()));
    if let Some(out) = &files.out {
        save_model(&trainer, out, &metadata)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let kept = kept_epoch(&trainer);
    if args.json {
        let summary = serde_json::json!({
            "test_accuracy": final_eval.accuracy,
            "test_loss": final_eval.loss,
            "train_loss": last.as_ref().map(|r| r.train_loss),
            "epochs": trainer.history().len(),
            "kept_epoch": kept,
            "seconds": seconds,
            summary.0: summary.1,
            "model": files.out.as_ref().map(|p| p.display().to_string()),
        });
        let mut summary = summary;
        if let Some((dp, c, acc)) = trainer.privacy() {
            summary["epsilon"] = serde_json::json!(trainer.epsilon());
            summary["privacy"] = serde_json::json!({
                "noise": dp.noise,
                "clip": dp.clip,
                "delta": dp.delta,
                "sample_rate": c.sample_rate,
                "steps": acc.steps(),
                "secure_noise": dp.secure_noise,
            });
        }
        crate::outln!("{summary}");
    } else {
        errln!(
            "done: test accuracy {:.2}%, test loss {:.4} after {} in {seconds:.2} s",
            100.0 * final_eval.accuracy,
            final_eval.loss,
            plural(trainer.history().len(), "epoch"),
        );
        if let (Some(e), Some((dp, _, acc))) = (trainer.epsilon(), trainer.privacy()) {
            errln!(
                "privacy spent: epsilon {e:.4} at delta {} after {}",
                short_number(dp.delta),
                plural(acc.steps() as usize, "step")
            );
        }
        if let (Some(e), Some(_)) = (kept, config.patience) {
            // Early stopping watches the validation part when there is one (never the test part
            // then), as the report's watched accuracy does.
            let watched = if config.validation_split > 0.0 {
                "validation"
            } else {
                "test"
            };
            errln!("kept the model of epoch {e}, the best {watched} accuracy");
        }
        match &files.out {
            Some(out) => errln!("model saved to {}", out.display()),
            None => errln!("the model is not saved: give --out FILE to keep it"),
        }
        if let Some(log) = &files.log {
            errln!("log written to {}", log.display());
        }
        if let Some(plot) = &files.plot {
            errln!("plot written to {}", plot.display());
        }
    }
    Ok(())
}

/// With `--patience`, the epoch whose network is kept: the first with the best test
/// accuracy (the one [`Trainer::final_network`] returns).
fn kept_epoch<T: Float, M: Trainable<T>>(trainer: &Trainer<T, M>) -> Option<usize> {
    trainer.config().patience?;
    let mut best: Option<&EpochReport> = None;
    for r in trainer.history() {
        if best.is_none_or(|b| r.test_accuracy > b.test_accuracy) {
            best = Some(r);
        }
    }
    best.map(|r| r.epoch)
}

fn print_epoch(r: &EpochReport, epochs: usize, json: bool) -> anyhow::Result<()> {
    if json {
        crate::outln!(
            "{}",
            serde_json::to_string(r).expect("plain numbers serialize")
        );
    } else {
        let validation = match (r.validation_loss, r.validation_accuracy) {
            (Some(l), Some(a)) => format!(
                ", validation loss {l:.4}, validation accuracy {:.2}%",
                100.0 * a
            ),
            _ => String::new(),
        };
        let epsilon = r
            .epsilon
            .map_or(String::new(), |e| format!(", epsilon {e:.4}"));
        errln!(
            "epoch {}/{epochs}: train loss {:.4}{validation}, test loss {:.4}, test accuracy {:.2}%{epsilon} ({:.2} s)",
            r.epoch,
            r.train_loss,
            r.test_loss,
            100.0 * r.test_accuracy,
            r.seconds
        );
    }
    Ok(())
}

fn save_model<T: Float>(
    trainer: &Trainer<T>,
    out: &Path,
    metadata: &[(String, String)],
) -> anyhow::Result<()> {
    let mut meta = metadata.to_vec();
    meta.extend(trainer.config().to_metadata());
    meta.extend(trainer.privacy_metadata());
    model_file::save(trainer.final_network(), out, &meta)
        .map_err(|e| anyhow::anyhow!("--out {e}"))?;
    Ok(())
}

/// The metrics log and the plot, rewritten after every epoch (atomically), so that an
/// interrupted run keeps complete files.
fn write_side_files<T: Float, M: Trainable<T>>(
    files: &Files,
    trainer: &Trainer<T, M>,
) -> anyhow::Result<()> {
    if let Some(log) = &files.log {
        let mut csv = String::from("epoch,lr,train_loss,test_loss,test_accuracy,seconds");
        // Validation columns only when there is a validation part (logs stay as they were).
        let validated = trainer.config().validation_split > 0.0;
        csv.push_str(if validated {
            ",validation_loss,validation_accuracy"
        } else {
            ""
        });
        // An epsilon column only for a private run.
        let private = trainer.privacy().is_some();
        csv.push_str(if private { ",epsilon\n" } else { "\n" });
        for r in trainer.history() {
            csv.push_str(&format!(
                "{},{},{},{},{},{}",
                r.epoch, r.lr, r.train_loss, r.test_loss, r.test_accuracy, r.seconds
            ));
            if validated {
                let cell = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
                csv.push_str(&format!(
                    ",{},{}",
                    cell(r.validation_loss),
                    cell(r.validation_accuracy)
                ));
            }
            if private {
                csv.push_str(&format!(",{}", r.epsilon.unwrap_or(0.0)));
            }
            csv.push('\n');
        }
        backprop::io::write_atomically(log, csv.as_bytes())
            .with_context(|| format!("--log {}", log.display()))?;
    }
    if let Some(plot) = &files.plot {
        backprop::plot::training_curves(trainer.history(), plot)
            .with_context(|| format!("--plot {}", plot.display()))?;
    }
    Ok(())
}

/// The training settings that describe a fully connected network only, left out of a
/// model of layers' file (its arch says what its layers are).
const NETWORK_ONLY: [&str; 4] = [
    "train.hidden",
    "train.activation",
    "train.output_activation",
    "train.init",
];

/// How an `--arch` run begins: with new settings and an arch, or from a checkpoint.
enum ArchStart {
    Fresh {
        config: TrainConfig,
        arch: String,
    },
    Resume {
        path: PathBuf,
        meta: BTreeMap<String, String>,
        epochs: Option<usize>,
        patience: Option<usize>,
    },
}

/// `--arch`: a model of layers (a preset expanded) on any data: images (their own shape,
/// or --input-shape), or a text cut into sequences of --seq-len characters; or such a run
/// resumed from its checkpoint.
fn run_arch<T: Float>(
    args: &Args,
    given: &dyn Fn(&str) -> bool,
    files: Files,
    start: ArchStart,
) -> anyhow::Result<()> {
    common::set_threads(args.threads)?;
    // A resumed run's model, settings and shape are the checkpoint's.
    let (config, arch_flag, resumed) = match start {
        ArchStart::Fresh { config, arch } => (config, arch, None),
        ArchStart::Resume {
            path,
            meta,
            epochs,
            patience,
        } => {
            let (mut t, _) = Trainer::<T, ArchModel<T>>::resume_arch(&path)
                .map_err(|e| anyhow::anyhow!("--resume {e}"))?;
            let done = t.history().len();
            if let Some(e) = epochs {
                if e < done {
                    bail!(
                        "--epochs {e}: the checkpoint {} has done {done} epochs already; give at least {done}",
                        path.display()
                    );
                }
                t.set_epochs(e);
            }
            if patience.is_some() {
                t.set_patience(patience);
            }
            let arch = t.network().net.arch().to_string();
            (t.config().clone(), arch, Some((t, path, meta)))
        }
    };
    let source = DataSource::parse(&files.data, files.test.as_deref())?;
    let resumed_shape = resumed
        .as_ref()
        .map(|(t, _, _)| t.network().input_shape.clone());
    let (split, input_shape, vocab) = if matches!(source, DataSource::Text(_)) {
        if let Some(shape) = &args.input_shape {
            bail!("--input-shape {shape}: a text's examples are --seq-len characters; give --seq-len instead");
        }
        if given("test_split") {
            bail!(
                "--test-split {}: a text keeps its last {}% for testing (leave --test-split out)",
                args.test_split,
                100.0 * backprop::data::text::TEST_FRACTION
            );
        }
        if given("scale") && args.scale != ScalingKind::None {
            bail!("--scale: a text's inputs are character ids, which are not scaled (leave --scale out)");
        }
        let seq_len = match &resumed_shape {
            Some(shape) => shape[0],
            None => args.seq_len.unwrap_or(DEFAULT_SEQ_LEN),
        };
        let text = source.text()?;
        let split = text.split(seq_len)?;
        (split, vec![seq_len], Some(text.vocab))
    } else {
        let split = common::load_data(
            &files.data,
            files.test.as_deref(),
            files.test_split,
            config.seed,
        )?;
        let features = split.train.features;
        let shape = match (&args.input_shape, split.train.image_shape, &resumed_shape) {
            (_, _, Some(shape)) => shape.clone(),
            (Some(text), _, None) => {
                let shape = nn::parse_input_shape(text)
                    .map_err(|e| anyhow::anyhow!("--input-shape {text}: {e}"))?;
                let product = shape
                    .iter()
                    .try_fold(1usize, |a, &d| a.checked_mul(d))
                    .unwrap_or(usize::MAX);
                if product != features {
                    bail!(
                        "--input-shape {text}: {} values per example, but --data {} has {features} features per example",
                        if product == usize::MAX { "too many".to_string() } else { product.to_string() },
                        files.data
                    );
                }
                shape
            }
            (None, Some((rows, cols)), None) => vec![1, rows, cols],
            (None, None, None) => vec![features],
        };
        (split, shape, None)
    };
    let shape_text = input_shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let Split { train, mut test } = split;
    let classes = train.classes.max(test.classes);

    let refuse = |e: &dyn std::fmt::Display| {
        let e = e.to_string();
        let e = e.strip_prefix("arch: ").unwrap_or(&e).to_string();
        anyhow::anyhow!("--arch {}: {e}", backprop::io::cut(&arch_flag, 80))
    };
    let (trainer, scaling, resumed_from) = match resumed {
        Some((trainer, path, meta)) => {
            let model = trainer.network();
            if model.inputs_per_example() != train.features
                || model.vocab.as_ref().map(|v| v.chars()) != vocab.as_ref().map(|v| v.chars())
            {
                bail!(
                    "--resume {}: the model takes examples of shape {shape_text}{} but --data {} has {} features{}",
                    path.display(),
                    if model.vocab.is_some() { " over its own vocabulary" } else { "" },
                    files.data,
                    train.features,
                    if vocab.is_some() { " and another vocabulary" } else { "" },
                );
            }
            let scaling: Scaling = meta
                .get("scaling")
                .with_context(|| {
                    format!("--resume {}: no scaling in the checkpoint", path.display())
                })?
                .parse()
                .map_err(|e| {
                    anyhow::anyhow!("--resume {}: metadata scaling: {e}", path.display())
                })?;
            (trainer, scaling, Some((path, meta)))
        }
        None => {
            // The arch: a preset expanded (char-lstm's V is the text's vocabulary), then
            // checked against the data's examples before any training.
            let expanded = nn::preset(&arch_flag, vocab.as_ref().map_or(classes, |v| v.len()))
                .unwrap_or_else(|| arch_flag.clone());
            let arch: Arch = expanded.parse().map_err(|e: ArchError| refuse(&e))?;
            // What would make it fit: a preset's own input, or the flag that gives a CSV's
            // shape.
            let hint = match arch_flag.as_str() {
                "lenet5" | "convnet" => format!(" ({arch_flag} takes 1,28,28 images, as MNIST's)"),
                _ if args.input_shape.is_none() && input_shape.len() == 1 && vocab.is_none() => {
                    " (give --input-shape C,H,W for images in rows)".to_string()
                }
                _ => String::new(),
            };
            let model = ArchModel::<T>::new(&arch, &input_shape, config.cost, vocab, config.seed)
                .map_err(|e| match e {
                ArchError::Shape { .. } => refuse(&format!(
                    "does not fit the examples of --data {} (shape {shape_text}): {}{hint}",
                    files.data,
                    e.to_string()
                        .strip_prefix("arch: ")
                        .unwrap_or(&e.to_string())
                )),
                ArchError::Cost(c) => anyhow::anyhow!("--cost {}: {c}", config.cost),
                e => refuse(&e),
            })?;
            let scaling = if model.vocab.is_some() {
                ScalingKind::None.fit(&train)
            } else {
                args.scale.fit(&train)
            };
            (Trainer::with_model(config, model)?, scaling, None)
        }
    };
    let (resumed_from, resumed_meta) = resumed_from.unzip();
    crate::dist::check_arch(&args.dist, trainer.network())?;
    let model = trainer.network();
    let (k, outputs) = (model.labels_per_example(), model.classes());
    if k != train.labels_per_example {
        bail!(
            "--arch {}: gives {} per example (output shape {:?}), but --data {} has {} per example",
            backprop::io::cut(&arch_flag, 80),
            plural(k, "prediction"),
            model.net.shapes().last().cloned().unwrap_or_default(),
            files.data,
            plural(train.labels_per_example, "label"),
        );
    }
    if classes > outputs {
        bail!(
            "--arch {}: gives {outputs} classes, but --data {} has labels up to {}",
            backprop::io::cut(&arch_flag, 80),
            files.data,
            classes - 1
        );
    }

    let config = trainer.config().clone();
    let (mut train, mut validation) = config
        .split_validation(train)
        .map_err(|e| anyhow::anyhow!("--validation-split: {e}"))?;
    scaling.apply(&mut train)?;
    scaling.apply(&mut test)?;
    if let Some(v) = &mut validation {
        scaling.apply(v)?;
    }
    if train.distinct_labels() == 1 {
        eprintln!(
            "warning: --data {}: every training example has label {}; any accuracy measured on it is meaningless",
            files.data, train.labels[0]
        );
    }

    let text = model.vocab.is_some();
    let test_split = if text {
        backprop::data::text::TEST_FRACTION
    } else {
        files.test_split
    };
    let (metadata, checkpoint_meta) = files.data_metadata(&scaling, outputs, test_split);
    let what = if text {
        format!("sequences of {} characters", input_shape[0])
    } else {
        "examples".to_string()
    };
    let name = if nn::PRESETS.contains(&arch_flag.as_str()) {
        arch_flag.clone()
    } else {
        "the arch".to_string()
    };
    let header = Header {
        model: format!(
            "training {name} ({} parameters, input {shape_text}, {} cost)",
            model.net.num_params(),
            model.cost,
        ),
        examples: what,
    };
    let expanded = model.net.arch().to_string();
    let mut trainer = trainer;
    if let (Some(dp), None) = (dp_flags(args)?, &resumed_from) {
        let c = trainer.config();
        let settings = private_settings(dp, c.batch, train.len(), c.epochs)?;
        trainer = trainer.with_privacy(settings, train.len())?;
    }
    train_loop(Run {
        args,
        files: &files,
        trainer,
        train,
        validation,
        test,
        metadata,
        checkpoint_meta,
        header,
        resumed_from,
        resumed_meta,
        summary: ("arch", serde_json::json!(expanded)),
        save: save_arch_model,
        checkpoint: |t, path, meta| Ok(t.save_checkpoint(path, meta)?),
    })
}

fn save_arch_model<T: Float>(
    trainer: &Trainer<T, ArchModel<T>>,
    out: &Path,
    metadata: &[(String, String)],
) -> anyhow::Result<()> {
    let mut meta = metadata.to_vec();
    meta.extend(
        trainer
            .config()
            .to_metadata()
            .into_iter()
            .filter(|(k, _)| !NETWORK_ONLY.contains(&k.as_str())),
    );
    meta.extend(trainer.privacy_metadata());
    trainer
        .final_network()
        .save(out, &meta)
        .map_err(|e| anyhow::anyhow!("--out {e}"))?;
    Ok(())
}
