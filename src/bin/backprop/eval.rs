//! `backprop eval`: accuracy, cost and confusion matrix of a saved model on a data set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use backprop::data::{csv, digits, idx, synthetic, DataSource, Dataset, Scaling};
use backprop::model_file::AnyNetwork;
use backprop::nn::{self, AnyArchModel, AnyModel};
use backprop::train::{evaluate, Evaluation};

use crate::common;

/// Evaluate a saved model: accuracy, cost and a confusion matrix.
#[derive(clap::Args)]
#[command(after_help = "\
Data the model was not trained on is scored whole: every row of a CSV file, every example \
of a built-in set, the test (t10k) files of an IDX directory. The model's own training \
data (the same --data, or the same file) is scored on its held-out test part, cut as in \
training, unless --all is given. The output says which it did.

A model of layers (a file with `arch` in its metadata, such as a CNN) takes each example as \
its values flattened in PyTorch's order: C·H·W for an image of input shape C,H,W, so a \
28x28 image is a row of 784 values. Its output must be one vector of classes per example.")]
pub struct Args {
    /// The model file (safetensors).
    #[arg(long)]
    model: PathBuf,
    /// The data, as for `train`: digits, xor, spirals, moons (optionally `:N`), a
    /// directory of IDX files, or a CSV file (label first) [default: the data the model
    /// was trained on].
    #[arg(long)]
    data: Option<String>,
    /// Score every example of the model's training data, not its held-out part.
    #[arg(long)]
    all: bool,
    /// Fraction held out of the model's training data [default: the model's, else 0.2].
    #[arg(long)]
    test_split: Option<f64>,
    /// Seed of that held-out split, and of a synthetic set [default: the model's training
    /// seed, else 1].
    #[arg(long)]
    seed: Option<u64>,
    /// Draw the confusion matrix (SVG or PNG, by extension). Written whole or not at all;
    /// only a regular file is replaced, and a symbolic link is written through.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print `accuracy`, `loss`, `n`, `scored` (held-out or all), `data`, `confusion`
    /// (counts[true][predicted], null for more than 1000 classes) and `confusion_entries`
    /// ([true, predicted, count] triples) as JSON.
    #[arg(long)]
    json: bool,
}

/// The examples scored, and how they were chosen (for the output).
struct Scored {
    data: Dataset,
    held_out: bool,
    what: String,
}

/// The file or directory behind `source`, if any.
fn source_path(source: &DataSource) -> Option<&Path> {
    match source {
        DataSource::Csv { train, .. } => Some(train),
        DataSource::IdxDir(dir) => Some(dir),
        _ => None,
    }
}

/// Whether `source` is the data the model was trained on: the same file or directory
/// (by its canonical path, recorded at training), or the same built-in set.
fn is_training_data(source: &DataSource, meta: &BTreeMap<String, String>) -> bool {
    match source_path(source) {
        Some(path) => {
            let Ok(here) = std::fs::canonicalize(path) else {
                return false;
            };
            match meta.get("data.canonical") {
                Some(trained) => Path::new(trained) == here,
                // Older models record the --data string only, relative to where they
                // were trained.
                None => meta
                    .get("data")
                    .and_then(|d| std::fs::canonicalize(d).ok())
                    .is_some_and(|trained| trained == here),
            }
        }
        None => meta
            .get("data")
            .and_then(|d| DataSource::parse(d, None).ok())
            .is_some_and(|trained| &trained == source),
    }
}

fn load(args: &Args, meta: &BTreeMap<String, String>) -> anyhow::Result<Scored> {
    let data = match (&args.data, meta.get("data")) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => bail!(
            "{}: the model does not record its training data; give --data",
            args.model.display()
        ),
    };
    let source = DataSource::parse(&data, None).map_err(|e| anyhow::anyhow!("--data: {e}"))?;
    let seed = args
        .seed
        .or_else(|| meta.get("train.seed")?.parse().ok())
        .unwrap_or(1);
    if is_training_data(&source, meta) && !args.all {
        let test_split = match (args.test_split, meta.get("data.test_split")) {
            (Some(f), _) => f,
            // A value stored in the model is the model's fault, not a flag's.
            (None, Some(stored)) => match stored.parse::<f64>() {
                Ok(f) if f > 0.0 && f < 1.0 => f,
                _ => bail!(
                    "{}: metadata data.test_split = {stored}: must be a number between 0 and 1",
                    args.model.display()
                ),
            },
            (None, None) => 0.2,
        };
        // A model trained with --test held out that file, recorded beside --data.
        let test_file = meta.get("data.test").map(PathBuf::from);
        let split = common::load_data(&data, test_file.as_deref(), test_split, seed)?;
        let what = match &test_file {
            Some(t) => format!(
                "the test file {} given in training with {data}, the model's training data",
                t.display()
            ),
            None => format!(
                "the held-out test part of {data}, the model's training data ({} of {} examples)",
                split.test.len(),
                split.train.len() + split.test.len()
            ),
        };
        return Ok(Scored {
            data: split.test,
            held_out: true,
            what,
        });
    }
    if let Some(f) = args.test_split {
        bail!("--test-split {f}: applies to the model's training data only, and {data} is scored whole");
    }
    let (data, what) = match &source {
        DataSource::Digits => (digits::load(), "all of the digits".to_string()),
        DataSource::Xor { n } => (
            synthetic::xor(*n, seed),
            format!("all {n} points of {data}"),
        ),
        DataSource::Spirals { n } => (
            synthetic::spirals(*n, seed),
            format!("all {n} points of {data}"),
        ),
        DataSource::Moons { n } => (
            synthetic::moons(*n, seed),
            format!("all {n} points of {data}"),
        ),
        DataSource::IdxDir(dir) => (
            idx::load_idx_dir(dir)?.test,
            format!("the test files of {}", dir.display()),
        ),
        DataSource::Csv { train, .. } => {
            let d = csv::read_labeled_csv(train)?;
            let what = format!("all {} rows of {}", d.len(), train.display());
            (d, what)
        }
        DataSource::Text(_) => {
            bail!("--data {data}: a text is scored by a character model, not by this network")
        }
    };
    Ok(Scored {
        data,
        held_out: false,
        what,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(p) = &args.plot {
        common::check_output("--plot", p)?;
        backprop::plot::check_extension(p).map_err(|e| anyhow::anyhow!("--plot {e}"))?;
        // The data is the flag's, or else the model's own (known once the model is read).
        let data = match &args.data {
            Some(d) => common::data_files(d, None),
            None => Vec::new(),
        };
        let mut inputs: Vec<(&str, &std::path::Path)> =
            data.iter().map(|(f, p)| (*f, p.as_path())).collect();
        inputs.push(("--model", &args.model));
        common::check_distinct(&inputs, &[("--plot", p)])?;
    }
    let (mut model, meta) = match nn::load_any(&args.model)? {
        AnyModel::Network(m) => (Kind::Network(m.network), m.metadata),
        AnyModel::Layers(m, meta) => (Kind::Layers(m), meta),
    };
    let meta = &meta;
    let Scored {
        data: mut test,
        held_out,
        what,
    } = load(&args, meta)?;
    let scaling: Scaling = match meta.get("scaling") {
        Some(s) => s
            .parse()
            .with_context(|| format!("{}: metadata scaling", args.model.display()))?,
        None => Scaling::None,
    };
    scaling.apply(&mut test)?;
    let data_name = args
        .data
        .as_deref()
        .or(meta.get("data").map(String::as_str))
        .unwrap_or("");
    let (inputs, takes) = model.inputs();
    if inputs != test.features {
        bail!(
            "{}: the model takes {takes} but --data {data_name} has {} features",
            args.model.display(),
            test.features
        );
    }
    if test.distinct_labels() == 1 {
        eprintln!(
            "warning: {what}: every example has label {}; the accuracy says nothing about the model",
            test.labels[0]
        );
    }
    // The data's fault (a label the model has no output for) names the data.
    let e: Evaluation = match model {
        Kind::Network(AnyNetwork::F32(ref net)) => evaluate(net, &test),
        Kind::Network(AnyNetwork::F64(ref net)) => evaluate(net, &test),
        Kind::Layers(AnyArchModel::F32(ref mut m)) => m.evaluate(&test),
        Kind::Layers(AnyArchModel::F64(ref mut m)) => m.evaluate(&test),
    }
    .with_context(|| what.clone())?;
    let classes = model.outputs();
    // The counts are stored sparsely; a square table is drawn only for a model of few
    // enough outputs (a 30,000-output model would need 7 GB for it).
    if let Some(p) = &args.plot {
        let m = e
            .confusion
            .matrix(classes)
            .filter(|_| classes <= MAX_PLOT_CLASSES);
        let Some(m) = m else {
            bail!("--plot: the model has {classes} outputs; a confusion picture takes at most {MAX_PLOT_CLASSES}");
        };
        backprop::plot::confusion_matrix(&m, p)
            .with_context(|| format!("--plot {}", p.display()))?;
    }
    if args.json {
        // `confusion`: counts[true][predicted] over the model's N^L classes, or null for a
        // model of more than MAX_JSON_CLASSES outputs; `confusion_entries`: every non-zero
        // count as [true, predicted, count], whatever the size.
        let matrix = e
            .confusion
            .matrix(classes)
            .filter(|_| classes <= MAX_JSON_CLASSES);
        let entries: Vec<[usize; 3]> = e.confusion.entries().map(|(t, p, c)| [t, p, c]).collect();
        let j = serde_json::json!({
            "accuracy": e.accuracy,
            "loss": e.loss,
            "n": e.n,
            "scored": if held_out { "held-out" } else { "all" },
            "data": what,
            "confusion": matrix,
            "confusion_entries": entries,
        });
        crate::outln!("{j}");
        return Ok(());
    }
    crate::outln!(
        "{}: accuracy {:.2}% ({} of {}), loss {:.4}",
        args.model.display(),
        100.0 * e.accuracy,
        e.confusion.correct(),
        e.n,
        e.loss
    );
    crate::outln!("scored {what}");
    crate::outln!();
    match e
        .confusion
        .matrix(classes)
        .filter(|_| classes <= MAX_TABLE_CLASSES)
    {
        Some(m) => crate::outln!("{}", confusion_table(&m)),
        None => {
            crate::outln!("true -> predicted: count (the non-zero counts of {classes} classes)");
            for (t, p, c) in e.confusion.entries() {
                crate::outln!("{t} -> {p}: {c}");
            }
        }
    }
    Ok(())
}

/// The model a file holds, of either kind.
// One per run: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Network(AnyNetwork),
    Layers(AnyArchModel),
}

impl Kind {
    /// The values one example has, and how the model takes them (for an error).
    fn inputs(&self) -> (usize, String) {
        match self {
            Kind::Network(net) => {
                let n = net.sizes()[0];
                (n, format!("{n} inputs"))
            }
            Kind::Layers(m) => {
                let shape = match m {
                    AnyArchModel::F32(m) => &m.input_shape,
                    AnyArchModel::F64(m) => &m.input_shape,
                };
                let n: usize = shape.iter().product();
                (
                    n,
                    format!("inputs of shape {} = {n} values", shape_text(shape)),
                )
            }
        }
    }

    /// N^L: the values of one example's output (its classes).
    fn outputs(&self) -> usize {
        let shapes = match self {
            Kind::Network(net) => return net.sizes().last().copied().unwrap_or(0),
            Kind::Layers(AnyArchModel::F32(m)) => m.net.shapes(),
            Kind::Layers(AnyArchModel::F64(m)) => m.net.shapes(),
        };
        shapes.last().map_or(0, |s| s.iter().product())
    }
}

/// A shape as `1x28x28`.
pub fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    dims.join("x")
}

/// The most outputs for which `eval --json` writes the square `confusion` matrix.
const MAX_JSON_CLASSES: usize = 1000;
/// The most outputs for which the text output is a square table.
const MAX_TABLE_CLASSES: usize = 40;
/// The most outputs for which `--plot` draws the confusion matrix.
const MAX_PLOT_CLASSES: usize = 100;

/// The confusion matrix as a text table: rows are true classes, columns predictions.
fn confusion_table(confusion: &[Vec<usize>]) -> String {
    let width = confusion
        .iter()
        .flatten()
        .map(|c| c.to_string().len())
        .max()
        .unwrap_or(1)
        .max(confusion.len().to_string().len())
        .max(2);
    let mut s = format!("{:>w$} |", "t\\p", w = width + 1);
    for p in 0..confusion.len() {
        s.push_str(&format!(" {p:>width$}"));
    }
    s.push('\n');
    s.push_str(&"-".repeat(width + 3 + (width + 1) * confusion.len()));
    for (t, row) in confusion.iter().enumerate() {
        s.push_str(&format!("\n{t:>w$} |", w = width + 1));
        for c in row {
            s.push_str(&format!(" {c:>width$}"));
        }
    }
    s
}
