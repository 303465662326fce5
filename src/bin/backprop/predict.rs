//! `backprop predict`: the class a saved model gives each row of a CSV file.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context};
use backprop::data::csv::read_feature_rows;
use backprop::data::Scaling;
use backprop::model_file::AnyNetwork;
use backprop::network::{Network, Workspace};
use backprop::nn::{self, AnyArchModel, AnyModel, ArchModel};
use backprop::train::argmax;
use backprop::Float;

use crate::eval::shape_text;

/// Predict the class of each row of a CSV file (`-` for standard input).
#[derive(clap::Args)]
#[command(after_help = "\
The rows: one example a line, the model's N^1 input values, comma-separated, raw (the model \
applies the scaling it was trained with), no label. A first line whose first cell is not a \
number is a header and is skipped, as `train` does; a blank line is an error. Output line i \
is the predicted class of row i (with --probs, followed by a^L).

A model of layers (a file with `arch` in its metadata) takes a row of its input shape's \
values flattened in PyTorch's order (C·H·W for an image, T token ids, T·F values). A model \
whose output is a sequence (T vectors per example) prints the T predicted classes of a row, \
comma-separated (with --probs, followed by all T vectors).")]
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
    let (model, metadata) = match nn::load_any(&args.model)? {
        AnyModel::Network(m) => (Ok(m.network), m.metadata),
        AnyModel::Layers(m, meta) => (Err(m), meta),
    };
    let scaling: Scaling = match metadata.get("scaling") {
        Some(s) => s
            .parse()
            .with_context(|| format!("{}: metadata scaling", args.model.display()))?,
        None => Scaling::None,
    };
    let out = match model {
        Ok(AnyNetwork::F32(net)) => predict(&net, &args, &scaling)?,
        Ok(AnyNetwork::F64(net)) => predict(&net, &args, &scaling)?,
        Err(AnyArchModel::F32(mut m)) => predict_layers(&mut m, &args, &scaling)?,
        Err(AnyArchModel::F64(mut m)) => predict_layers(&mut m, &args, &scaling)?,
    };
    crate::out!("{out}");
    Ok(())
}

/// The rows of `--inputs`, `width` values each, scaled as the model was trained.
fn read_rows<T: Float>(
    args: &Args,
    width: usize,
    takes: &str,
    scaling: &Scaling,
) -> anyhow::Result<Vec<T>> {
    let x = read_feature_rows::<T>(&args.inputs).map_err(|e| anyhow::anyhow!("--inputs: {e}"))?;
    if x.cols() != width {
        bail!(
            "--inputs {}: rows have {} values but the model {} takes {takes}",
            args.inputs.display(),
            x.cols(),
            args.model.display()
        );
    }
    let mut x = x.into_vec();
    if *scaling != Scaling::None {
        // The stored scaling is in f32, as the training data was.
        let mut rows: Vec<f32> = x.iter().map(|&v| Float::to_f64(v) as f32).collect();
        scaling.apply_rows(&mut rows, width)?;
        x = rows.into_iter().map(T::from_f32).collect();
    }
    Ok(x)
}

/// Rows per forward pass.
const BATCH: usize = 256;

fn predict<T: Float>(net: &Network<T>, args: &Args, scaling: &Scaling) -> anyhow::Result<String> {
    let sizes = net.sizes();
    let (inputs, outputs) = (sizes[0], sizes[sizes.len() - 1]);
    let x: Vec<T> = read_rows(args, inputs, &format!("{inputs} inputs"), scaling)?;
    let n = x.len() / inputs;
    let mut ws = Workspace::new(net, BATCH.min(n).max(1));
    let mut out = String::new();
    for chunk in x.chunks(BATCH * inputs) {
        let rows = chunk.len() / inputs;
        let a = net.try_feed_forward(chunk, rows, &mut ws)?;
        for row in a.chunks_exact(outputs) {
            write_row(&mut out, &[argmax(row)], row, args.probs);
        }
    }
    Ok(out)
}

fn predict_layers<T: Float>(
    model: &mut ArchModel<T>,
    args: &Args,
    scaling: &Scaling,
) -> anyhow::Result<String> {
    let width = model.input_len();
    let takes = format!(
        "inputs of shape {} = {width} values",
        shape_text(&model.input_shape)
    );
    let x: Vec<T> = read_rows(args, width, &takes, scaling)?;
    let out_shape = model.net.shapes().last().cloned().unwrap_or_default();
    let per: usize = out_shape.iter().product();
    // The classes are the last axis: one vector, or one per position of a sequence.
    let k = out_shape.last().copied().unwrap_or(1).max(1);
    let mut out = String::new();
    let mut row_index = 0;
    for chunk in x.chunks(BATCH * width) {
        let rows = chunk.len() / width;
        let a = model.net.forward(chunk, rows, false).map_err(|e| {
            anyhow::anyhow!(
                "--inputs {} (from row {}): {e}",
                args.inputs.display(),
                row_index + 1
            )
        })?;
        for row in a.chunks_exact(per) {
            let classes: Vec<usize> = row.chunks_exact(k).map(argmax).collect();
            write_row(&mut out, &classes, row, args.probs);
        }
        row_index += rows;
    }
    Ok(out)
}

/// One output line: the classes, then (with `probs`) the outputs, comma-separated.
fn write_row<T: Float>(out: &mut String, classes: &[usize], outputs: &[T], probs: bool) {
    let classes: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
    out.push_str(&classes.join(","));
    if probs {
        for p in outputs {
            write!(out, ",{p}").expect("writing to a String");
        }
    }
    out.push('\n');
}
