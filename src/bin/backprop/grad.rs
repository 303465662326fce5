//! `backprop grad`: J and dJ/dtheta of a saved model on one batch, by the four equations.

use std::path::PathBuf;

use anyhow::bail;
use backprop::data::csv::read_matrix_csv;
use backprop::linalg::Matrix;
use backprop::model_file::{self, bias_name, weight_name, AnyNetwork, NamedTensor};
use backprop::network::{Cost, Gradients, Network, Workspace};
use backprop::nn::{self, AnyArchModel, AnyModel, ArchModel, NnError};
use backprop::Float;
use serde_json::{json, Map, Value};

use crate::common;

/// J and its gradient for one batch, in the model's precision (F64 stays F64).
#[derive(clap::Args)]
#[command(after_help = "\
A model of layers (a file with `arch` in its metadata): an --inputs row is one example \
flattened in PyTorch's order (C·H·W values, T token ids, or T·F values), fed as is (no \
scaling). A --targets row is either the whole output of one example flattened, or one class \
index per output vector (one per example, or T for a sequence of T outputs). The tensors \
are `loss`, `grad.{param}` by PyTorch's names (`grad.0.weight`, `grad.1.weight_ih_l0`), and \
with --per-example `per_example.{n}.loss` and `per_example.{n}.grad.{param}`. A model with \
dropout is run in training mode with masks drawn from seed 0.")]
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
    match nn::load_any(&args.model)? {
        AnyModel::Network(m) => match &m.network {
            AnyNetwork::F32(net) => grad(net, &args),
            AnyNetwork::F64(net) => grad(net, &args),
        },
        AnyModel::Layers(AnyArchModel::F32(mut m), _) => grad_layers(&mut m, &args),
        AnyModel::Layers(AnyArchModel::F64(mut m), _) => grad_layers(&mut m, &args),
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

    let layers: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
    let meta = vec![
        ("layers".to_string(), layers.join(",")),
        ("batch".to_string(), n.to_string()),
    ];
    emit(&tensors, &meta, j, n, args)
}

/// The most per-example gradient values `--per-example` keeps in memory (1 GiB in f64).
const MAX_PER_EXAMPLE_VALUES: usize = 1 << 27;

fn grad_layers<T: Float>(model: &mut ArchModel<T>, args: &Args) -> anyhow::Result<()> {
    let width = model.input_len();
    let x = read_matrix_csv::<T>(&args.inputs)?;
    let y = read_matrix_csv::<T>(&args.targets)?;
    if x.cols() != width {
        bail!(
            "--inputs {}: rows have {} values but the model takes inputs of shape {} = {width} values",
            args.inputs.display(),
            x.cols(),
            crate::eval::shape_text(&model.input_shape)
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
    let targets = targets_for(model, &y, args)?;
    let cost = model.cost;
    let by_flag = |e: NnError| match e {
        NnError::Target { .. } => anyhow::anyhow!("--targets {}: {e}", args.targets.display()),
        _ => anyhow::anyhow!("--inputs {}: {e}", args.inputs.display()),
    };
    // Dropout's masks, if any, are the same from run to run.
    model.net.reseed_dropout(0);
    let j = model
        .net
        .loss_and_grad(x.as_slice(), &targets, n, cost)
        .map_err(by_flag)?;
    let mut tensors: Vec<Tensor<T>> = vec![("loss".into(), vec![], vec![j])];
    for (name, shape, g) in model.net.grads() {
        tensors.push((format!("grad.{name}"), shape.to_vec(), g.to_vec()));
    }
    if args.per_example {
        let params = model.net.num_params();
        if n.checked_mul(params)
            .is_none_or(|v| v > MAX_PER_EXAMPLE_VALUES)
        {
            bail!(
                "--per-example: {n} examples of {params} parameters is more than {MAX_PER_EXAMPLE_VALUES} gradient values; give fewer rows"
            );
        }
        let shapes: Vec<Vec<usize>> = model.net.params().map(|(_, s, _)| s.to_vec()).collect();
        model.net.reseed_dropout(0);
        let (losses, per) = model
            .net
            .per_example_gradients(x.as_slice(), &targets, n, cost)
            .map_err(by_flag)?;
        for (i, (loss, grads)) in losses.into_iter().zip(per).enumerate() {
            tensors.push((
                format!("per_example.{i}.loss"),
                vec![],
                vec![T::from_f64(loss)],
            ));
            for ((name, g), shape) in grads.into_iter().zip(&shapes) {
                tensors.push((
                    format!("per_example.{i}.grad.{name}"),
                    shape.clone(),
                    g.into_iter().map(T::from_f64).collect(),
                ));
            }
        }
    }
    let shape: Vec<String> = model.input_shape.iter().map(|d| d.to_string()).collect();
    let meta = vec![
        ("arch".to_string(), model.net.arch().to_string()),
        ("input_shape".to_string(), shape.join(",")),
        ("batch".to_string(), n.to_string()),
    ];
    emit(&tensors, &meta, j, n, args)
}

/// The targets as [`backprop::nn::Sequential::loss_and_grad`] takes them for the model's
/// cost, from rows of either whole outputs or class indices (one per output vector).
fn targets_for<T: Float>(
    model: &ArchModel<T>,
    y: &Matrix<T>,
    args: &Args,
) -> anyhow::Result<Vec<T>> {
    let out = model.net.shapes().last().cloned().unwrap_or_default();
    let per: usize = out.iter().product();
    let k = out.last().copied().unwrap_or(1).max(1);
    let positions = per / k;
    let file = args.targets.display();
    let classes = model.cost == Cost::LogLikelihood;
    if y.cols() == per {
        if !classes {
            return Ok(y.as_slice().to_vec());
        }
        // The log-likelihood takes a class: each output vector of the row must be one-hot.
        let mut t = Vec::with_capacity(y.rows() * positions);
        for (r, row) in y.as_slice().chunks_exact(per).enumerate() {
            for (p, v) in row.chunks_exact(k).enumerate() {
                let ones: Vec<usize> = (0..k).filter(|&c| v[c] == T::one()).collect();
                let zeros = v.iter().filter(|&&x| x == T::zero()).count();
                if ones.len() != 1 || zeros != k - 1 {
                    bail!(
                        "--targets {file}: row {}, output vector {}: not one-hot (the log-likelihood takes a class; give a one-hot vector or the class index)",
                        r + 1,
                        p + 1
                    );
                }
                t.push(T::from_f64(ones[0] as f64));
            }
        }
        return Ok(t);
    }
    if y.cols() == positions {
        if classes {
            return Ok(y.as_slice().to_vec());
        }
        // The other costs take the whole output: each class index becomes its one-hot vector.
        let mut t = vec![T::zero(); y.rows() * per];
        for (i, &c) in y.as_slice().iter().enumerate() {
            let f = c.to_f64();
            if !(f >= 0.0 && f.fract() == 0.0 && f < k as f64) {
                bail!(
                    "--targets {file}: row {}, value {}: {f} is not a class from 0 to {}",
                    i / positions + 1,
                    i % positions + 1,
                    k - 1
                );
            }
            t[i * k + f as usize] = T::one();
        }
        return Ok(t);
    }
    let shape = crate::eval::shape_text(&out);
    if positions == 1 {
        bail!(
            "--targets {file}: rows have {} values but the model gives {per} outputs per example (shape {shape}); give {per} values or 1 class index",
            y.cols()
        );
    }
    bail!(
        "--targets {file}: rows have {} values but the model gives {per} outputs per example (shape {shape}); give {per} values or {positions} class indices",
        y.cols()
    )
}

/// Writes the tensors to `--out`, or prints them (as JSON with `--json`).
fn emit<T: Float>(
    tensors: &[Tensor<T>],
    meta: &[(String, String)],
    j: T,
    n: usize,
    args: &Args,
) -> anyhow::Result<()> {
    if let Some(out) = &args.out {
        let named: Vec<NamedTensor<'_, T>> = tensors
            .iter()
            .map(|(name, shape, v)| (name.as_str(), shape.as_slice(), v.as_slice()))
            .collect();
        model_file::save_tensors(out, &named, meta).map_err(|e| anyhow::anyhow!("--out {e}"))?;
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
        for (name, shape, v) in tensors {
            obj.insert(name.clone(), to_json(shape, v));
        }
        crate::outln!("{}", Value::Object(obj));
        return Ok(());
    }
    for (name, shape, v) in tensors {
        match shape.as_slice() {
            [] => crate::outln!("{name} = {}", v[0]),
            [_] => crate::outln!("{name} = {}", row(v)),
            [_, cols] => {
                crate::outln!("{name} =");
                for r in v.chunks(*cols) {
                    crate::outln!("  {}", row(r));
                }
            }
            // More axes (a convolution's kernels): the rows of the last axis, in order.
            [.., cols] => {
                crate::outln!("{name} ({}) =", crate::eval::shape_text(shape));
                for r in v.chunks((*cols).max(1)) {
                    crate::outln!("  {}", row(r));
                }
            }
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

/// A tensor as JSON: a number, or lists nested as deep as its shape (a list of rows for a
/// matrix); values at full precision.
fn to_json<T: Float>(shape: &[usize], v: &[T]) -> Value {
    match shape {
        [] => json!(v[0].to_f64()),
        [_] => Value::Array(v.iter().map(|&x| json!(x.to_f64())).collect()),
        [first, rest @ ..] => {
            let inner: usize = rest.iter().product();
            Value::Array(
                (0..*first)
                    .map(|i| to_json(rest, &v[i * inner..(i + 1) * inner]))
                    .collect(),
            )
        }
    }
}
