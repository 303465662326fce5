//! `backprop predict`: the class a saved model gives each row of a CSV file.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context};
use backprop::data::csv::read_feature_rows;
use backprop::data::Scaling;
use backprop::model_file::{self, AnyNetwork};
use backprop::network::{Network, Workspace};
use backprop::train::argmax;
use backprop::Float;

/// Predict the class of each row of a CSV file (`-` for standard input).
#[derive(clap::Args)]
#[command(after_help = "\
The rows: one example a line, the model's N^1 input values, comma-separated, raw (the model \
applies the scaling it was trained with), no label. A first line whose first cell is not a \
number is a header and is skipped, as `train` does; a blank line is an error. Output line i \
is the predicted class of row i (with --probs, followed by a^L).")]
pub struct Args {
    /// The model file (safetensors).
    #[arg(long)]
    model: PathBuf,
    /// The rows: one example a line, its input values comma-separated, no label; an
    /// optional header line; `-` reads standard input.
    #[arg(long, visible_alias = "input", value_name = "CSV")]
    inputs: PathBuf,
    /// Also print the output activations a^L of each row.
    #[arg(long)]
    probs: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let model = model_file::load(&args.model)?;
    let scaling: Scaling = match model.metadata.get("scaling") {
        Some(s) => s
            .parse()
            .with_context(|| format!("{}: metadata scaling", args.model.display()))?,
        None => Scaling::None,
    };
    let out = match &model.network {
        AnyNetwork::F32(net) => predict(net, &args, &scaling)?,
        AnyNetwork::F64(net) => predict(net, &args, &scaling)?,
    };
    crate::out!("{out}");
    Ok(())
}

fn predict<T: Float>(net: &Network<T>, args: &Args, scaling: &Scaling) -> anyhow::Result<String> {
    let sizes = net.sizes();
    let (inputs, outputs) = (sizes[0], sizes[sizes.len() - 1]);
    let x = read_feature_rows::<T>(&args.inputs).map_err(|e| anyhow::anyhow!("--inputs: {e}"))?;
    if x.cols() != inputs {
        bail!(
            "--inputs {}: rows have {} values but the model {} takes {inputs} inputs",
            args.inputs.display(),
            x.cols(),
            args.model.display()
        );
    }
    let mut x = x.into_vec();
    if *scaling != Scaling::None {
        // The stored scaling is in f32, as the training data was.
        let mut rows: Vec<f32> = x.iter().map(|&v| Float::to_f64(v) as f32).collect();
        scaling.apply_rows(&mut rows, inputs)?;
        x = rows.into_iter().map(T::from_f32).collect();
    }
    let n = x.len() / inputs;
    const BATCH: usize = 256;
    let mut ws = Workspace::new(net, BATCH.min(n).max(1));
    let mut out = String::new();
    for chunk in x.chunks(BATCH * inputs) {
        let rows = chunk.len() / inputs;
        let a = net.try_feed_forward(chunk, rows, &mut ws)?;
        for row in a.chunks_exact(outputs) {
            write!(out, "{}", argmax(row)).expect("writing to a String");
            if args.probs {
                for p in row {
                    write!(out, ",{p}").expect("writing to a String");
                }
            }
            out.push('\n');
        }
    }
    Ok(out)
}
