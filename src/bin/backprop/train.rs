//! `backprop train`: train a network on a data set, by the four equations and SGD.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use backprop::data::{Scaling, ScalingKind, Split};
use backprop::model_file;
use backprop::network::{Activation, Cost, Init};
use backprop::optim::{OptimizerConfig, OptimizerKind, Schedule};
use backprop::train::{EpochReport, TrainConfig, TrainError, Trainer};
use backprop::Float;

use crate::common::{self, Sizes};

/// Train a fully connected network (by default on the built-in digits).
#[derive(clap::Args)]
pub struct Args {
    /// digits, xor, spirals or moons (optionally `:N` examples), a directory of IDX files
    /// (MNIST layout), or a CSV file (label first).
    #[arg(long, default_value = "digits")]
    data: String,
    /// A CSV test file for a CSV --data.
    #[arg(long)]
    test: Option<PathBuf>,
    /// Fraction held out for testing when the data has no test part.
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    test_split: f64,
    /// Input scaling: auto (divide by the largest training input), none, standardize.
    #[arg(long, default_value = "auto")]
    scale: ScalingKind,
    /// Hidden layer sizes, comma-separated.
    #[arg(long, default_value = "30")]
    hidden: Sizes,
    /// F of the hidden layers.
    #[arg(long, default_value = "sigmoid")]
    activation: Activation,
    /// F of the output layer [default: softmax for log-likelihood, sigmoid otherwise].
    #[arg(long)]
    output_activation: Option<Activation>,
    /// The cost: quadratic, cross-entropy or log-likelihood.
    #[arg(long, default_value = "log-likelihood")]
    cost: Cost,
    /// Initial weights: large, scaled, xavier, he, uniform.
    #[arg(long, default_value = "uniform")]
    init: Init,
    /// sgd, momentum, nesterov, adam, adamw.
    #[arg(long, default_value = "sgd")]
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
    /// Precision: f32 or f64.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Write the trained model here (safetensors).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write a checkpoint here after every epoch (and on Ctrl-C) [default on Ctrl-C: the
    /// --out path with `.checkpoint` added, or backprop-checkpoint.safetensors].
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Continue from a checkpoint (settings come from it; --epochs may extend the run).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Write per-epoch metrics here (CSV).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Draw loss and accuracy per epoch (SVG or PNG, by extension).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// One JSON object per epoch on standard output, and a last one with the results.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.dtype.as_str() {
        "f32" => run_typed::<f32>(args),
        "f64" => run_typed::<f64>(args),
        other => bail!("--dtype {other}: expected f32 or f64"),
    }
}

/// The settings from the flags, refusing those that make no sense before any work.
fn config(args: &Args) -> anyhow::Result<TrainConfig> {
    let lr = args.lr.unwrap_or(match args.optimizer {
        OptimizerKind::Adam | OptimizerKind::AdamW => 0.001,
        _ => 0.5,
    });
    if !(lr.is_finite() && lr > 0.0) {
        bail!("--lr {lr}: must be a positive number");
    }
    if args.batch == 0 {
        bail!("--batch 0: must be at least 1");
    }
    let epochs = args.epochs.unwrap_or(30);
    if epochs == 0 {
        bail!("--epochs 0: must be at least 1");
    }
    if args.patience == Some(0) {
        bail!("--patience 0: must be at least 1");
    }
    if !(0.0..1.0).contains(&args.momentum) {
        bail!("--momentum {}: must be in [0, 1)", args.momentum);
    }
    if !(args.weight_decay.is_finite() && args.weight_decay >= 0.0) {
        bail!("--weight-decay {}: must be >= 0", args.weight_decay);
    }
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
    if !(0.0..1.0).contains(&validation_split) {
        bail!("--validation-split {validation_split}: must be at least 0 and below 1");
    }
    if args.patience.is_some() && validation_split == 0.0 {
        bail!("--validation-split 0: --patience needs a validation part to watch (watching the test part would leak it into training)");
    }
    Ok(TrainConfig {
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
    })
}

fn run_typed<T: Float>(args: Args) -> anyhow::Result<()> {
    for (flag, path) in [
        ("--out", &args.out),
        ("--checkpoint", &args.checkpoint),
        ("--log", &args.log),
        ("--plot", &args.plot),
    ] {
        if let Some(p) = path {
            common::check_output(flag, p)?;
        }
    }
    if let Some(p) = &args.plot {
        backprop::plot::check_extension(p).map_err(|e| anyhow::anyhow!("--plot: {e}"))?;
    }
    let fresh = config(&args)?;
    common::set_threads(args.threads)?;

    // The trainer: new, or from a checkpoint (whose settings win, but for --epochs).
    let (mut trainer, scaling) = match &args.resume {
        Some(path) => {
            let (mut t, meta) =
                Trainer::<T>::resume(path).map_err(|e| anyhow::anyhow!("--resume: {e}"))?;
            if let Some(e) = args.epochs {
                t.set_epochs(e);
            }
            let scaling: Scaling = meta
                .get("scaling")
                .with_context(|| {
                    format!("--resume {}: no scaling in the checkpoint", path.display())
                })?
                .parse()?;
            (Some(t), Some(scaling))
        }
        None => (None, None),
    };
    let settings = trainer.as_ref().map_or(&fresh, |t| t.config());
    let Split { train, mut test } = common::load_data(
        &args.data,
        args.test.as_deref(),
        args.test_split,
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
    let classes = train.classes.max(test.classes);
    let mut trainer = match trainer.take() {
        Some(t) => t,
        None => Trainer::<T>::new(fresh, train.features, classes)?,
    };
    let sizes = trainer.network().sizes();
    if sizes[0] != train.features {
        bail!(
            "--resume: the model takes {} inputs but --data {} has {} features",
            sizes[0],
            args.data,
            train.features
        );
    }

    let mut metadata = vec![
        ("scaling".to_string(), scaling.to_string()),
        ("classes".to_string(), sizes[sizes.len() - 1].to_string()),
        ("data".to_string(), args.data.clone()),
        ("data.test_split".to_string(), args.test_split.to_string()),
    ];
    // Where the data files are, so that `eval` knows them from another directory.
    let canonical = |p: &Path| {
        std::fs::canonicalize(p)
            .ok()
            .map(|p| p.display().to_string())
    };
    if let Some(c) = canonical(Path::new(&args.data)) {
        metadata.push(("data.canonical".into(), c));
    }
    if let Some(c) = args.test.as_deref().and_then(canonical) {
        metadata.push(("data.test".into(), c));
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // A second Ctrl-C ends the process at once; the first lets the epoch finish.
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let stderr_tty = std::io::stderr().is_terminal();
    if !args.json {
        eprintln!(
            "training {} on {} ({} train, {}{} test examples), {} epochs, batch {}, {} lr {}",
            sizes
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join("-"),
            args.data,
            train.len(),
            validation
                .as_ref()
                .map_or(String::new(), |v| format!("{} validation, ", v.len())),
            test.len(),
            trainer.config().epochs,
            trainer.config().batch,
            trainer.config().optimizer.kind,
            trainer.config().lr,
        );
    }
    let start = std::time::Instant::now();
    for report in trainer.history() {
        print_epoch(report, trainer.config().epochs, args.json)?;
    }
    while !trainer.finished() {
        let epoch = trainer.history().len() + 1;
        let bar = stderr_tty.then(|| {
            let b = indicatif::ProgressBar::new(0);
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
        let progress = |done: usize, total: usize| {
            if let Some(b) = &bar {
                b.set_length(total as u64);
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
                if let (Some(out), false) = (&args.out, trainer.history().is_empty()) {
                    save_model(&trainer, out, &metadata)?;
                    eprintln!("kept the model of the last good epoch in {}", out.display());
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        }
        write_side_files(&args, &trainer)?;
        if let Some(path) = &args.checkpoint {
            trainer.save_checkpoint(path, &metadata)?;
        }
        if interrupted.load(Ordering::SeqCst) && !trainer.finished() {
            let path = args
                .checkpoint
                .clone()
                .unwrap_or_else(|| default_checkpoint(&args));
            trainer.save_checkpoint(&path, &metadata)?;
            bail!(
                "interrupted after epoch {}; checkpoint saved: go on with --resume {}",
                trainer.history().len(),
                path.display()
            );
        }
    }
    let last = trainer.history().last().cloned().context("no epoch ran")?;
    let final_eval = backprop::train::evaluate(trainer.final_network(), &test)?;
    metadata.push(("test_accuracy".into(), final_eval.accuracy.to_string()));
    if let Some(out) = &args.out {
        save_model(&trainer, out, &metadata)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let summary = serde_json::json!({
            "test_accuracy": final_eval.accuracy,
            "test_loss": final_eval.loss,
            "train_loss": last.train_loss,
            "epochs": trainer.history().len(),
            "seconds": seconds,
            "layers": sizes,
            "model": args.out.as_ref().map(|p| p.display().to_string()),
        });
        crate::outln!("{summary}");
    } else {
        eprintln!(
            "done: test accuracy {:.2}%, test loss {:.4} after {} epochs in {seconds:.2} s{}",
            100.0 * final_eval.accuracy,
            final_eval.loss,
            trainer.history().len(),
            args.out.as_ref().map_or(String::new(), |p| format!(
                "; model saved to {}",
                p.display()
            )),
        );
    }
    Ok(())
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
        eprintln!(
            "epoch {}/{epochs}: train loss {:.4}{validation}, test loss {:.4}, test accuracy {:.2}% ({:.2} s)",
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
    model_file::save(trainer.final_network(), out, &meta)?;
    Ok(())
}

/// The metrics log and the plot, rewritten after every epoch (atomically), so that an
/// interrupted run keeps complete files.
fn write_side_files<T: Float>(args: &Args, trainer: &Trainer<T>) -> anyhow::Result<()> {
    if let Some(log) = &args.log {
        let mut csv = String::from("epoch,lr,train_loss,test_loss,test_accuracy,seconds");
        // Validation columns only when there is a validation part (logs stay as they were).
        let validated = trainer.config().validation_split > 0.0;
        csv.push_str(if validated {
            ",validation_loss,validation_accuracy\n"
        } else {
            "\n"
        });
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
            csv.push('\n');
        }
        model_file::write_atomically(log, csv.as_bytes())
            .with_context(|| format!("--log {}", log.display()))?;
    }
    if let Some(plot) = &args.plot {
        backprop::plot::training_curves(trainer.history(), plot)
            .with_context(|| format!("--plot {}", plot.display()))?;
    }
    Ok(())
}

fn default_checkpoint(args: &Args) -> PathBuf {
    match &args.out {
        Some(out) => {
            let mut name = out.file_stem().unwrap_or_default().to_os_string();
            name.push(".checkpoint.safetensors");
            out.with_file_name(name)
        }
        None => PathBuf::from("backprop-checkpoint.safetensors"),
    }
}
