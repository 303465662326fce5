//! `backprop grad`: J and dJ/dtheta of a saved model on one batch, by the four equations.

use std::path::PathBuf;

use anyhow::bail;
use backprop::data::csv::read_matrix_csv;
use backprop::model_file::{self, bias_name, weight_name, AnyNetwork, NamedTensor};
use backprop::network::{Gradients, Network, Workspace};
use backprop::Float;
use serde_json::{json, Map, Value};

use crate::common;

/// J and its gradient for one batch, in the model's precision (F64 stays F64).
#[derive(clap::Args)]
pub struct Args {
    /// The model file (safetensors).
    #[arg(long)]
    model: PathBuf,
    /// The batch: one example a row, no header (a^1, fed to the network as is); `-` reads
    /// standard input.
    #[arg(long)]
    inputs: PathBuf,
    /// One target vector y a row (one-hot for log-likelihood).
    #[arg(long)]
    targets: PathBuf,
    /// Write the tensors here (safetensors) instead of printing them. Written whole or not
    /// at all; only a regular file is replaced, and a symbolic link is written through.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also each example's C_n and dC_n/dtheta (not divided by the batch size).
    #[arg(long)]
    per_example: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(out) = &args.out {
        common::check_output("--out", out)?;
        common::check_distinct(
            &[
                ("--model", &args.model),
                ("--inputs", &args.inputs),
                ("--targets", &args.targets),
            ],
            &[("--out", out)],
        )?;
    }
    if args.inputs == args.targets && args.inputs.as_os_str() == "-" {
        bail!("--inputs and --targets cannot both read standard input");
    }
    let model = model_file::load(&args.model)?;
    match &model.network {
        AnyNetwork::F32(net) => grad(net, &args),
        AnyNetwork::F64(net) => grad(net, &args),
    }
}

/// One named tensor of the output: name, shape, values.
type Tensor<T> = (String, Vec<usize>, Vec<T>);

fn grad<T: Float>(net: &Network<T>, args: &Args) -> anyhow::Result<()> {
    let sizes = net.sizes();
    let (inputs, outputs) = (sizes[0], sizes[sizes.len() - 1]);
    let x = read_matrix_csv::<T>(&args.inputs)?;
    let y = read_matrix_csv::<T>(&args.targets)?;
    if x.cols() != inputs {
        bail!(
            "--inputs {}: rows have {} values but the model takes {inputs} inputs",
            args.inputs.display(),
            x.cols()
        );
    }
    if y.cols() != outputs {
        bail!(
            "--targets {}: rows have {} values but the model has {outputs} outputs",
            args.targets.display(),
            y.cols()
        );
    }
    if x.rows() != y.rows() {
        bail!(
            "--inputs has {} rows but --targets has {} rows",
            x.rows(),
            y.rows()
        );
    }
    let n = x.rows();
    let mut ws = Workspace::new(net, n);
    let mut g = Gradients::zeros_like(net);
    let j = net.try_backprop(x.as_slice(), y.as_slice(), n, &mut ws, &mut g)?;

    let mut tensors: Vec<Tensor<T>> = vec![("loss".into(), vec![], vec![j])];
    push_gradients(&mut tensors, "grad.", &g);
    if args.per_example {
        let (losses, per) = net.per_example_gradients(x.as_slice(), y.as_slice(), n, &mut ws)?;
        for (i, (loss, g)) in losses.into_iter().zip(&per).enumerate() {
            tensors.push((format!("per_example.{i}.loss"), vec![], vec![loss]));
            push_gradients(&mut tensors, &format!("per_example.{i}.grad."), g);
        }
    }

    if let Some(out) = &args.out {
        let named: Vec<NamedTensor<'_, T>> = tensors
            .iter()
            .map(|(name, shape, v)| (name.as_str(), shape.as_slice(), v.as_slice()))
            .collect();
        let layers: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
        let meta = vec![
            ("layers".to_string(), layers.join(",")),
            ("batch".to_string(), n.to_string()),
        ];
        model_file::save_tensors(out, &named, &meta).map_err(|e| anyhow::anyhow!("--out {e}"))?;
        if !args.json {
            crate::errln!(
                "J = {} over {n} examples; {} tensors written to {}",
                j,
                tensors.len(),
                out.display()
            );
            return Ok(());
        }
    }
    if args.json {
        let mut obj = Map::new();
        for (name, shape, v) in &tensors {
            obj.insert(name.clone(), to_json(shape, v));
        }
        crate::outln!("{}", Value::Object(obj));
        return Ok(());
    }
    for (name, shape, v) in &tensors {
        match shape.as_slice() {
            [] => crate::outln!("{name} = {}", v[0]),
            [_] => crate::outln!("{name} = {}", row(v)),
            [_, cols] => {
                crate::outln!("{name} =");
                for r in v.chunks(*cols) {
                    crate::outln!("  {}", row(r));
                }
            }
            _ => unreachable!("gradients are scalars, vectors or matrices"),
        }
    }
    Ok(())
}

fn push_gradients<T: Float>(out: &mut Vec<Tensor<T>>, prefix: &str, g: &Gradients<T>) {
    for (i, (w, b)) in g.weights.iter().zip(&g.biases).enumerate() {
        out.push((
            format!("{prefix}{}", weight_name(i)),
            vec![w.rows(), w.cols()],
            w.as_slice().to_vec(),
        ));
        out.push((
            format!("{prefix}{}", bias_name(i)),
            vec![b.len()],
            b.clone(),
        ));
    }
}

fn row<T: Float>(v: &[T]) -> String {
    let cells: Vec<String> = v
        .iter()
        .map(|x| format!("{:>13.6e}", Float::to_f64(*x)))
        .collect();
    format!("[{}]", cells.join(" "))
}

/// A tensor as JSON: a number, a list, or a list of rows; values at full precision.
fn to_json<T: Float>(shape: &[usize], v: &[T]) -> Value {
    let num = |x: T| json!(x.to_f64());
    match shape {
        [] => num(v[0]),
        [_] => Value::Array(v.iter().map(|&x| num(x)).collect()),
        [_, cols] => Value::Array(
            v.chunks(*cols)
                .map(|r| Value::Array(r.iter().map(|&x| num(x)).collect()))
                .collect(),
        ),
        _ => unreachable!("gradients are scalars, vectors or matrices"),
    }
}
