//! `backprop gradcheck`: a random network, backpropagation against finite differences.

use anyhow::{bail, Context};
use backprop::graph::format_number;
use backprop::network::{gradcheck, Activation, Cost, Init, Network};
use rand::{Rng, SeedableRng};

use crate::common::{one_of, Sizes};

/// Check backpropagation against central finite differences on a random network.
#[derive(clap::Args)]
pub struct Args {
    /// Layer sizes N^1..N^L, comma-separated.
    #[arg(long, default_value = "2,4,4,3")]
    layers: Sizes,
    /// Activation of the hidden layers.
    #[arg(long, default_value = "sigmoid", value_parser = one_of::<Activation>(Activation::ALL.map(Activation::name)))]
    activation: Activation,
    /// Activation of the output layer [default: softmax for log-likelihood, sigmoid otherwise].
    #[arg(long, value_parser = one_of::<Activation>(Activation::ALL.map(Activation::name)))]
    output_activation: Option<Activation>,
    /// The cost C.
    #[arg(long, default_value = "quadratic", value_parser = one_of::<Cost>(Cost::ALL.map(Cost::name)))]
    cost: Cost,
    /// How the random weights are drawn.
    #[arg(long, default_value = "scaled", value_parser = one_of::<Init>(Init::ALL.map(Init::name)))]
    init: Init,
    /// Examples in the batch (at most 100000).
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Seed of the network, inputs and targets.
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
    let output = args.output_activation.unwrap_or(match args.cost {
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
        args.cost
    );
    let net = Network::<f64>::new(sizes, &acts, args.cost, args.init, args.seed)
        .with_context(|| flags.clone())?;

    let (n, n_in, n_out) = (args.batch, sizes[0], sizes[sizes.len() - 1]);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed ^ 0x9e37_79b9_7f4a_7c15);
    let x: Vec<f64> = (0..n * n_in).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let y: Vec<f64> = if args.cost == Cost::LogLikelihood {
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
        args.cost,
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
    if check.max_rel_error <= args.tolerance {
        crate::outln!("PASS (tolerance {})", format_number(args.tolerance));
        Ok(())
    } else {
        crate::outln!("FAIL (tolerance {})", format_number(args.tolerance));
        bail!(
            "gradient check failed: relative error {:.3e} at {} exceeds --tolerance {}",
            check.max_rel_error,
            check.worst,
            format_number(args.tolerance)
        )
    }
}
