//! `backprop eval`: accuracy, cost and confusion matrix of a saved model on a data set.

use std::path::PathBuf;

use anyhow::{bail, Context};
use backprop::data::{Scaling, Split};
use backprop::model_file::{self, AnyNetwork};
use backprop::train::{evaluate, Evaluation};

use crate::common;

/// Evaluate a saved model: accuracy, cost and a confusion matrix.
#[derive(clap::Args)]
pub struct Args {
    /// The model file (safetensors).
    #[arg(long)]
    model: PathBuf,
    /// The data, as for `train`; its test part is evaluated.
    #[arg(long, default_value = "digits")]
    data: String,
    /// A CSV test file for a CSV --data.
    #[arg(long)]
    test: Option<PathBuf>,
    /// Fraction held out when the data has no test part [default: the model's, else 0.2].
    #[arg(long)]
    test_split: Option<f64>,
    /// Seed of that held-out split [default: the model's training seed, else 1].
    #[arg(long)]
    seed: Option<u64>,
    /// Draw the confusion matrix (SVG or PNG, by extension). Written whole or not at all;
    /// only a regular file is replaced, and a symbolic link is written through.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print `accuracy`, `loss`, `n`, `confusion` (counts[true][predicted], null for more
    /// than 1000 classes) and `confusion_entries` ([true, predicted, count] triples) as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(p) = &args.plot {
        common::check_output("--plot", p)?;
        backprop::plot::check_extension(p).map_err(|e| anyhow::anyhow!("--plot {e}"))?;
        let data = common::data_files(&args.data, args.test.as_deref());
        let mut inputs: Vec<(&str, &std::path::Path)> =
            data.iter().map(|(f, p)| (*f, p.as_path())).collect();
        inputs.push(("--model", &args.model));
        common::check_distinct(&inputs, &[("--plot", p)])?;
    }
    let model = model_file::load(&args.model)?;
    let meta = &model.metadata;
    let test_split = args
        .test_split
        .or_else(|| meta.get("data.test_split")?.parse().ok())
        .unwrap_or(0.2);
    let seed = args
        .seed
        .or_else(|| meta.get("train.seed")?.parse().ok())
        .unwrap_or(1);
    let Split { mut test, .. } =
        common::load_data(&args.data, args.test.as_deref(), test_split, seed)?;
    let scaling: Scaling = match meta.get("scaling") {
        Some(s) => s
            .parse()
            .with_context(|| format!("{}: metadata scaling", args.model.display()))?,
        None => Scaling::None,
    };
    scaling.apply(&mut test)?;
    let sizes = model.network.sizes();
    if sizes[0] != test.features {
        bail!(
            "{}: the model takes {} inputs but --data {} has {} features",
            args.model.display(),
            sizes[0],
            args.data,
            test.features
        );
    }
    if test.distinct_labels() == 1 {
        eprintln!(
            "warning: --data {}: every test example has label {}; the accuracy says nothing about the model",
            args.data, test.labels[0]
        );
    }
    let e: Evaluation = match &model.network {
        AnyNetwork::F32(net) => evaluate(net, &test)?,
        AnyNetwork::F64(net) => evaluate(net, &test)?,
    };
    // The counts are stored sparsely; a square table is drawn only for a model of few
    // enough outputs (a 30,000-output model would need 7 GB for it).
    let classes = sizes[sizes.len() - 1];
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
