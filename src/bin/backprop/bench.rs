//! `backprop bench`: training and inference samples per second of three fully connected
//! networks on 28x28 inputs, measured as `bench/pytorch_mlp.py` measures PyTorch.

use anyhow::{bail, Context};
use backprop::bench::{run as measure_config, BenchConfig, SyntheticData, Timing};
use backprop::network::{Init, Network, Workspace};

use crate::common;

/// Measure training and inference speed on synthetic 28x28 inputs: nielsen (784-30-10),
/// small (784-128-64-10), wide (784-1024-1024-10).
#[derive(clap::Args)]
pub struct Args {
    /// Which network: nielsen (784-30-10), small (784-128-64-10), wide (784-1024-1024-10),
    /// or all three, each in its own process.
    #[arg(long, default_value = "all", value_parser = clap::builder::PossibleValuesParser::new(["nielsen", "small", "wide", "all"]))]
    config: String,
    /// Threads for matrix products [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Minimum seconds of each timed repeat.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    seconds: f64,
    /// Timed repeats; the figure is their median.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// One JSON object per config.
    #[arg(long)]
    json: bool,
}

/// Seed of the synthetic data and of the initial weights.
const SEED: u64 = 2026;

pub fn run(args: Args) -> anyhow::Result<()> {
    let configs =
        BenchConfig::parse_list(&args.config).map_err(|e| anyhow::anyhow!("--config: {e}"))?;
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        bail!("--seconds {}: must be a positive number", args.seconds);
    }
    if args.repeats == 0 {
        bail!("--repeats 0: must be at least 1");
    }
    common::set_threads(args.threads)?;
    if configs.len() > 1 {
        // One process per config, so that each reports its own peak memory.
        for c in configs {
            let exe = std::env::current_exe().context("cannot find this program's path")?;
            let mut cmd = std::process::Command::new(exe);
            cmd.args(["bench", "--config", c.name])
                .args(["--seconds", &args.seconds.to_string()])
                .args(["--repeats", &args.repeats.to_string()]);
            if let Some(t) = args.threads {
                cmd.args(["--threads", &t.to_string()]);
            }
            if args.json {
                cmd.arg("--json");
            }
            let status = cmd.status().context("cannot run the benchmark")?;
            if !status.success() {
                bail!("the {} benchmark failed", c.name);
            }
        }
        return Ok(());
    }
    let threads = rayon::current_num_threads();
    let config = &configs[0];
    let timing = Timing {
        seconds_per_repeat: args.seconds,
        repeats: args.repeats,
        ..Timing::default()
    };
    let data = SyntheticData::standard(SEED);
    let net = Network::<f32>::new(
        config.sizes,
        &config.activations(),
        config.cost,
        Init::Uniform,
        SEED,
    )?;
    let ws = Workspace::new(&net, config.batch);
    let (batch, eta) = (config.batch, config.learning_rate);
    let mut state = (net, ws);
    let result = measure_config(
        config,
        threads,
        &timing,
        &mut state,
        |(net, ws), i| {
            let b = data.batch(i, batch).expect("the batch size fits the data");
            net.sgd_train_step(b.x, b.y, b.n, ws, eta)
                .expect("the batch fits the network");
        },
        |(net, ws), i| {
            let b = data.batch(i, batch).expect("the batch size fits the data");
            std::hint::black_box(net.feed_forward(b.x, b.n, ws));
        },
    )?;
    if args.json {
        crate::outln!("{}", result.to_json_line());
    } else {
        crate::outln!("{result}");
    }
    Ok(())
}
