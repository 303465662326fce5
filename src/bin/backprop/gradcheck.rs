//! `backprop gradcheck`: a random network, backpropagation against finite differences.

use anyhow::{bail, Context};
use backprop::graph::format_number;
use backprop::network::{gradcheck, Activation, Cost, Init, Network};
use backprop::nn::{self, Arch, Layer, Sequential};
use rand::{Rng, SeedableRng};

use crate::common::{one_of, Sizes};

/// Check backpropagation against central finite differences on a random network.
#[derive(clap::Args)]
#[command(after_help = "\
With --arch, the model is made of layers written as PyTorch writes an nn.Sequential \
(`Conv2d(1, 4, 3), ReLU(), Flatten(), Linear(144, 10), Softmax(dim=-1)`), or a preset \
(lenet5, convnet, char-lstm), for examples of --input-shape; its parameters are drawn as \
PyTorch draws them, the batch at random (token ids for an Embedding, values in [-1, 1] \
otherwise; a class per output vector for the log-likelihood, values in [0, 1] for the other \
costs). Every parameter is checked if there are at most --checks, else --checks of them \
drawn at random (each tensor in proportion, at least one from each). A ReLU or max-pooling \
kink within 2h of a value makes a difference wrong: an error above 1e-7 is measured again \
with a step 100 times smaller, and the smaller kept (a kink moves with the step, a wrong \
gradient does not). One that remains can be a kink still: try another --seed.")]
pub struct Args {
    /// Layer sizes N^1..N^L, comma-separated.
    #[arg(long, default_value = "2,4,4,3")]
    layers: Sizes,
    /// A model of layers instead of the post's network: an arch string or a preset name
    /// (lenet5, convnet, char-lstm); needs --input-shape.
    #[arg(long, requires = "input_shape", conflicts_with_all = ["layers", "activation", "output_activation", "init"])]
    arch: Option<String>,
    /// One example's shape for --arch: C,H,W for an image, T for T token ids, T,F for T
    /// vectors of F values.
    #[arg(long, requires = "arch")]
    input_shape: Option<String>,
    /// The vocabulary size V of the char-lstm preset.
    #[arg(long, default_value_t = 10)]
    vocab: usize,
    /// With --arch: the most parameters checked (at most 100000).
    #[arg(long, default_value_t = 1000)]
    checks: usize,
    /// Activation of the hidden layers.
    #[arg(long, default_value = "sigmoid", value_parser = one_of::<Activation>(Activation::ALL.map(Activation::name)))]
    activation: Activation,
    /// Activation of the output layer [default: softmax for log-likelihood, sigmoid otherwise].
    #[arg(long, value_parser = one_of::<Activation>(Activation::ALL.map(Activation::name)))]
    output_activation: Option<Activation>,
    /// The cost C [default: quadratic; with --arch, log-likelihood if the arch ends with
    /// Softmax(dim=-1)].
    #[arg(long, value_parser = one_of::<Cost>(Cost::ALL.map(Cost::name)))]
    cost: Option<Cost>,
    /// How the random weights are drawn.
    #[arg(long, default_value = "scaled", value_parser = one_of::<Init>(Init::ALL.map(Init::name)))]
    init: Init,
    /// Examples in the batch (at most 100000).
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Seed of the network, inputs and targets (and of the parameters checked).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Largest relative error that passes.
    #[arg(long, default_value_t = 1e-6, allow_negative_numbers = true)]
    tolerance: f64,
}

/// The largest network `gradcheck` accepts.
const MAX_PARAMS: usize = 100_000;
/// The largest batch: every parameter costs four passes over it.
const MAX_BATCH: usize = 100_000;

pub fn run(args: Args) -> anyhow::Result<()> {
    let sizes = &args.layers.0;
    if !(1..=MAX_BATCH).contains(&args.batch) {
        bail!("--batch {}: must be from 1 to {MAX_BATCH}", args.batch);
    }
    if !(args.tolerance.is_finite() && args.tolerance >= 0.0) {
        bail!(
            "--tolerance {}: must be a finite number >= 0",
            args.tolerance
        );
    }
    if let Some(arch) = &args.arch {
        return check_layers(arch, &args);
    }
    let cost = args.cost.unwrap_or(Cost::Quadratic);
    // Every parameter costs four passes over the batch: refuse sizes that would run for hours
    // (or overflow) before allocating anything.
    let params = sizes.windows(2).try_fold(0usize, |acc, w| {
        acc.checked_add(w[0].checked_mul(w[1])?.checked_add(w[1])?)
    });
    match params {
        Some(p) if p <= MAX_PARAMS => {}
        _ => bail!(
            "--layers: more than {MAX_PARAMS} parameters; finite differences would take too long"
        ),
    }
    backprop::network::check_batch_size::<f64>(sizes, args.batch)
        .map_err(|e| anyhow::anyhow!("--batch {}: {e}", args.batch))?;
    let output = args.output_activation.unwrap_or(match cost {
        Cost::LogLikelihood => Activation::Softmax,
        _ => Activation::Sigmoid,
    });
    let mut acts = vec![args.activation; sizes.len().saturating_sub(2)];
    acts.push(output);
    let flags = format!(
        "--layers {} --activation {} --output-activation {output} --cost {}",
        sizes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(","),
        args.activation,
        cost
    );
    let net = Network::<f64>::new(sizes, &acts, cost, args.init, args.seed)
        .with_context(|| flags.clone())?;

    let (n, n_in, n_out) = (args.batch, sizes[0], sizes[sizes.len() - 1]);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed ^ 0x9e37_79b9_7f4a_7c15);
    let x: Vec<f64> = (0..n * n_in).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let y: Vec<f64> = if cost == Cost::LogLikelihood {
        let mut y = vec![0.0; n * n_out];
        y.chunks_exact_mut(n_out)
            .for_each(|row| row[rng.gen_range(0..n_out)] = 1.0);
        y
    } else {
        (0..n * n_out).map(|_| rng.gen_range(0.0..1.0)).collect()
    };

    let check = gradcheck(&net, &x, &y, n)?;
    crate::outln!(
        "network {} ({}), cost {}, init {}, batch {n}, seed {}",
        sizes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("-"),
        acts.iter().map(|a| a.name()).collect::<Vec<_>>().join(","),
        cost,
        args.init,
        args.seed
    );
    crate::outln!(
        "{} parameters: worst relative error {:.3e} at {}, worst absolute error {:.3e}",
        check.parameters,
        check.max_rel_error,
        check.worst,
        check.max_abs_error
    );
    verdict(check.max_rel_error, &check.worst, args.tolerance)
}

/// The most parameters a model of layers may have (not all are checked: see --checks).
const MAX_ARCH_PARAMS: usize = 10_000_000;
/// The most values the layers' outputs may take over the batch, summed over the layers:
/// each parameter checked costs four passes over them.
const MAX_ARCH_VALUES: usize = 10_000_000;

fn check_layers(text: &str, args: &Args) -> anyhow::Result<()> {
    if !(1..=MAX_PARAMS).contains(&args.checks) {
        bail!("--checks {}: must be from 1 to {MAX_PARAMS}", args.checks);
    }
    let preset = nn::preset(text, args.vocab);
    if preset.is_some() && text == "char-lstm" && !(1..=65_536).contains(&args.vocab) {
        bail!("--vocab {}: must be from 1 to 65536", args.vocab);
    }
    let arch: Arch = preset
        .as_deref()
        .unwrap_or(text)
        .parse()
        .map_err(|e| anyhow::anyhow!("--arch: {e}"))?;
    let shape_flag = args.input_shape.as_deref().unwrap_or_default();
    let shape = nn::parse_input_shape(shape_flag)
        .map_err(|e| anyhow::anyhow!("--input-shape {shape_flag:?}: {e}"))?;
    let shapes = arch
        .shapes(&shape)
        .map_err(|e| anyhow::anyhow!("--arch with --input-shape {shape_flag}: {e}"))?;
    let cost = args.cost.unwrap_or(match arch.layers().last() {
        Some(Layer::Softmax) => Cost::LogLikelihood,
        _ => Cost::Quadratic,
    });
    nn::check_cost(&arch, cost).map_err(|e| anyhow::anyhow!("--cost {cost}: {e}"))?;
    // Sizes before allocating: parameters, and every layer's output over the batch.
    let params = arch.params().iter().try_fold(0usize, |acc, p| {
        acc.checked_add(p.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?)
    });
    if params.is_none_or(|p| p > MAX_ARCH_PARAMS) {
        bail!("--arch: more than {MAX_ARCH_PARAMS} parameters; too large to check");
    }
    let values = shapes.iter().try_fold(0usize, |acc, s| {
        acc.checked_add(s.iter().try_fold(args.batch, |a, &d| a.checked_mul(d))?)
    });
    if values.is_none_or(|v| v > MAX_ARCH_VALUES) {
        bail!(
            "--batch {}: the layers' outputs over the batch take more than {MAX_ARCH_VALUES} values; give a smaller --batch or --input-shape",
            args.batch
        );
    }
    let mut net = Sequential::<f64>::new(&arch, &shape, args.seed)
        .map_err(|e| anyhow::anyhow!("--arch: {e}"))?;

    let n = args.batch;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed ^ 0x9e37_79b9_7f4a_7c15);
    let per_in: usize = shape.iter().product();
    let x: Vec<f64> = match arch.layers().first() {
        Some(Layer::Embedding { num, .. }) => (0..n * per_in)
            .map(|_| rng.gen_range(0..*num) as f64)
            .collect(),
        _ => (0..n * per_in).map(|_| rng.gen_range(-1.0..1.0)).collect(),
    };
    let out = shapes.last().cloned().unwrap_or_default();
    let per_out: usize = out.iter().product();
    let k = out.last().copied().unwrap_or(1).max(1);
    let y: Vec<f64> = if cost == Cost::LogLikelihood {
        (0..n * (per_out / k))
            .map(|_| rng.gen_range(0..k) as f64)
            .collect()
    } else {
        (0..n * per_out).map(|_| rng.gen_range(0.0..1.0)).collect()
    };

    let check = nn::gradcheck(&mut net, &x, &y, n, cost, args.checks, args.seed)
        .map_err(|e| anyhow::anyhow!("--arch: {e}"))?;
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    crate::outln!(
        "model {} on inputs {}, cost {cost}, batch {n}, seed {}",
        arch,
        dims.join("x"),
        args.seed
    );
    let which = if check.checked == check.parameters {
        format!("{} parameters", check.parameters)
    } else {
        format!(
            "{} of {} parameters (drawn at random)",
            check.checked, check.parameters
        )
    };
    crate::outln!(
        "{which}: worst relative error {:.3e} at {}, worst absolute error {:.3e}",
        check.max_rel_error,
        check.worst,
        check.max_abs_error
    );
    verdict(check.max_rel_error, &check.worst, args.tolerance)
}

/// PASS or FAIL against `--tolerance`, printed; a failure is also the command's error.
fn verdict(
    max_rel_error: f64,
    worst: &dyn std::fmt::Display,
    tolerance: f64,
) -> anyhow::Result<()> {
    if max_rel_error <= tolerance {
        crate::outln!("PASS (tolerance {})", format_number(tolerance));
        Ok(())
    } else {
        crate::outln!("FAIL (tolerance {})", format_number(tolerance));
        bail!(
            "gradient check failed: relative error {max_rel_error:.3e} at {worst} exceeds --tolerance {}",
            format_number(tolerance)
        )
    }
}
