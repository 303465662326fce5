//! `backprop bench`: training and inference samples per second of three fully connected
//! networks on 28x28 inputs, measured as `bench/pytorch_mlp.py` measures PyTorch, and of
//! three models of layers (`lenet5`, `convnet`, `char-lstm`), measured as
//! `bench/pytorch_arch.py` measures them.

use anyhow::{bail, Context};
use backprop::network::{Cost, Init, Network, Workspace};
use backprop::nn::Sequential;
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use backprop::privacy::{poisson_batch, DpConfig, DpSgd, Noise};
use harness::{
    run as measure_config, run_arch, run_dp, ArchBenchConfig, BenchConfig, BenchResult,
    DpBenchResult, DpSettings, SyntheticData, SyntheticSequences, Timing,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::common;

mod harness;
#[cfg(test)]
mod tests;

/// Measure training and inference speed on synthetic data: nielsen (784-30-10), small
/// (784-128-64-10), wide (784-1024-1024-10) on 28x28 inputs; lenet5 and convnet on 1x28x28
/// images; char-lstm on sequences of 50 of 65 symbols.
#[derive(clap::Args)]
pub struct Args {
    /// Which model: nielsen (784-30-10), small (784-128-64-10), wide (784-1024-1024-10),
    /// all (those three), lenet5, convnet, char-lstm, or arch (those three); several run
    /// each in its own process.
    #[arg(long, default_value = "all", value_parser = clap::builder::PossibleValuesParser::new(["nielsen", "small", "wide", "all", "lenet5", "convnet", "char-lstm", "arch"]))]
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
    /// Also time the private (DP-SGD) step on the same network and expected batch size,
    /// interleaved with the ordinary step, and print both with their ratio (nielsen,
    /// small, wide only).
    #[arg(long)]
    dp: bool,
    /// With --dp: the noise multiplier sigma [default: 1.0].
    #[arg(long, allow_negative_numbers = true)]
    dp_noise: Option<f64>,
    /// With --dp: the clipping norm C of each example's gradient [default: 1.0].
    #[arg(long, allow_negative_numbers = true)]
    dp_clip: Option<f64>,
    /// With --dp: noise keyed by the operating system and drawn by ChaCha20 (slower than
    /// the default seeded noise).
    #[arg(long)]
    dp_secure_noise: bool,
    /// Samples per mini-batch (the expected batch size with --dp) instead of the config's:
    /// nielsen 10, small 64, wide 256, lenet5 and convnet 64, char-lstm 50.
    #[arg(long)]
    batch: Option<usize>,
}

/// Seed of the synthetic data and of the initial weights.
const SEED: u64 = 2026;

pub fn run(args: Args) -> anyhow::Result<()> {
    let arch: Vec<ArchBenchConfig> = match args.config.as_str() {
        "arch" => ArchBenchConfig::ALL.to_vec(),
        name => ArchBenchConfig::ALL
            .into_iter()
            .filter(|c| c.name == name)
            .collect(),
    };
    let configs = if arch.is_empty() {
        BenchConfig::parse_list(&args.config)
            .map_err(|e| anyhow::anyhow!("--config: {e}"))?
            .iter()
            .map(|c| c.name)
            .collect()
    } else {
        arch.iter().map(|c| c.name).collect::<Vec<_>>()
    };
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        bail!("--seconds {}: must be a positive number", args.seconds);
    }
    if args.repeats == 0 {
        bail!("--repeats 0: must be at least 1");
    }
    if let Some(b) = args.batch {
        let most = SyntheticData::EXAMPLES;
        if !(1..=most).contains(&b) {
            bail!("--batch {b}: must be from 1 to {most}, the examples of the synthetic data");
        }
    }
    let dp = dp_settings(&args, !arch.is_empty())?;
    common::set_threads(args.threads)?;
    if configs.len() > 1 {
        // One process per config, so that each reports its own peak memory.
        for c in configs {
            let exe = std::env::current_exe().context("cannot find this program's path")?;
            let mut cmd = std::process::Command::new(exe);
            cmd.args(["bench", "--config", c])
                .args(["--seconds", &args.seconds.to_string()])
                .args(["--repeats", &args.repeats.to_string()]);
            if let Some(t) = args.threads {
                cmd.args(["--threads", &t.to_string()]);
            }
            if args.json {
                cmd.arg("--json");
            }
            if let Some(b) = args.batch {
                cmd.args(["--batch", &b.to_string()]);
            }
            if let Some(dp) = dp {
                cmd.args(["--dp", "--dp-noise", &dp.noise_multiplier.to_string()])
                    .args(["--dp-clip", &dp.max_grad_norm.to_string()]);
                if dp.secure_noise {
                    cmd.arg("--dp-secure-noise");
                }
            }
            let status = cmd.status().context("cannot run the benchmark")?;
            if !status.success() {
                bail!("the {c} benchmark failed");
            }
        }
        return Ok(());
    }
    let threads = rayon::current_num_threads();
    let timing = Timing {
        seconds_per_repeat: args.seconds,
        repeats: args.repeats,
        ..Timing::default()
    };
    let mlp = || -> anyhow::Result<BenchConfig> {
        let mut config: BenchConfig = args.config.parse()?;
        config.batch = args.batch.unwrap_or(config.batch);
        Ok(config)
    };
    if let Some(dp) = dp {
        let result = bench_mlp_dp(&mlp()?, threads, &timing, dp)?;
        if args.json {
            crate::outln!("{}", result.to_json_line());
        } else {
            crate::outln!("{result}");
        }
        return Ok(());
    }
    let result = match arch.first() {
        Some(&config) => {
            let batch = args.batch.unwrap_or(config.batch);
            bench_arch(&ArchBenchConfig { batch, ..config }, threads, &timing)?
        }
        None => bench_mlp(&mlp()?, threads, &timing)?,
    };
    if args.json {
        crate::outln!("{}", result.to_json_line());
    } else {
        crate::outln!("{result}");
    }
    Ok(())
}

/// One fully connected network: `Network::sgd_train_step`, and `feed_forward` for inference.
fn bench_mlp(config: &BenchConfig, threads: usize, timing: &Timing) -> anyhow::Result<BenchResult> {
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
    Ok(measure_config(
        config,
        threads,
        timing,
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
    )?)
}

/// The `--dp` flags, checked: `None` without `--dp`.
fn dp_settings(args: &Args, arch: bool) -> anyhow::Result<Option<DpSettings>> {
    if !args.dp {
        for (given, flag) in [
            (args.dp_noise.is_some(), "--dp-noise"),
            (args.dp_clip.is_some(), "--dp-clip"),
            (args.dp_secure_noise, "--dp-secure-noise"),
        ] {
            if given {
                bail!("{flag}: only with --dp");
            }
        }
        return Ok(None);
    }
    if arch {
        bail!("--dp: only for the fully connected networks (nielsen, small, wide, all)");
    }
    let sigma = args.dp_noise.unwrap_or(1.0);
    if !(sigma.is_finite() && sigma >= 0.0) {
        bail!("--dp-noise {sigma}: must be a finite number >= 0");
    }
    let c = args.dp_clip.unwrap_or(1.0);
    if !(c.is_finite() && c > 0.0) {
        bail!("--dp-clip {c}: must be a finite number > 0");
    }
    Ok(Some(DpSettings {
        noise_multiplier: sigma,
        max_grad_norm: c,
        secure_noise: args.dp_secure_noise,
    }))
}

/// One fully connected network, ordinary and private: the ordinary step is
/// [`bench_mlp`]'s (`Network::sgd_train_step`); the private step is what private training
/// runs for each batch: a Poisson batch of expected size B out of the data's examples,
/// its rows gathered, then `DpSgd::step` with the SGD optimizer (which, like the ordinary
/// step, adds the clipped sum and the noise straight into the weights).
fn bench_mlp_dp(
    config: &BenchConfig,
    threads: usize,
    timing: &Timing,
    dp: DpSettings,
) -> anyhow::Result<DpBenchResult> {
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
    let private_net = net.clone();
    let sgd = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), &private_net)?;
    let dp_config = DpConfig::new(dp.noise_multiplier, dp.max_grad_norm, batch, data.len())?;
    let noise = if dp.secure_noise {
        Noise::os()
    } else {
        Noise::seeded(SEED)
    };
    let private = DpSgd::new(dp_config, &private_net, noise);
    let (inputs, classes) = (data.inputs.cols(), data.targets.cols());
    let mut state = Dp {
        net,
        ws,
        private_net,
        sgd,
        private,
        rng: ChaCha8Rng::seed_from_u64(SEED),
        idx: Vec::new(),
        x: Vec::new(),
        y: Vec::new(),
    };
    Ok(run_dp(
        config,
        threads,
        timing,
        dp,
        &mut state,
        |s, i| {
            let b = data.batch(i, batch).expect("the batch size fits the data");
            s.net
                .sgd_train_step(b.x, b.y, b.n, &mut s.ws, eta)
                .expect("the batch fits the network");
        },
        |s, _| {
            poisson_batch(data.len(), dp_config.sample_rate, &mut s.rng, &mut s.idx);
            s.x.clear();
            s.y.clear();
            for &e in &s.idx {
                s.x.extend_from_slice(&data.inputs.as_slice()[e * inputs..(e + 1) * inputs]);
                s.y.extend_from_slice(&data.targets.as_slice()[e * classes..(e + 1) * classes]);
            }
            let n = s.idx.len();
            (s.private)
                .step(&mut s.private_net, &mut s.sgd, &s.x, &s.y, n, eta)
                .expect("the batch fits the network");
        },
        |s, i| {
            let b = data.batch(i, batch).expect("the batch size fits the data");
            std::hint::black_box(s.net.feed_forward(b.x, b.n, &mut s.ws));
        },
    )?)
}

/// What the two steps of [`bench_mlp_dp`] work on.
struct Dp {
    net: Network<f32>,
    ws: Workspace<f32>,
    private_net: Network<f32>,
    sgd: Optimizer<f32>,
    private: DpSgd<f32, Network<f32>>,
    rng: ChaCha8Rng,
    idx: Vec<usize>,
    x: Vec<f32>,
    y: Vec<f32>,
}

/// One model of layers. The step timed is what training runs for each mini-batch:
/// `Sequential::loss_and_grad` (forward, log-likelihood cost, backward) then the SGD
/// `Optimizer::step` through the model seam; inference is `Sequential::forward`.
fn bench_arch(
    config: &ArchBenchConfig,
    threads: usize,
    timing: &Timing,
) -> anyhow::Result<BenchResult> {
    let net = Sequential::<f32>::new(&config.arch(), config.input_shape, SEED)?;
    let sgd = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), &net)?;
    let (batch, lr) = (config.batch, config.learning_rate);
    // (inputs, targets as class indices) of mini-batch i.
    enum Data {
        Images(SyntheticData, Vec<f32>),
        Sequences(SyntheticSequences),
    }
    let data = if config.input_shape.len() == 1 {
        let steps = config.input_shape[0];
        Data::Sequences(SyntheticSequences::new(
            SyntheticData::EXAMPLES,
            steps,
            config.classes,
            SEED,
        )?)
    } else {
        let features = config.input_shape.iter().product();
        let images = SyntheticData::new(SyntheticData::EXAMPLES, features, config.classes, SEED)?;
        let labels = images.labels.iter().map(|&l| l as f32).collect();
        Data::Images(images, labels)
    };
    let batch_of = |i: usize| match &data {
        Data::Images(images, labels) => {
            let b = images
                .batch(i, batch)
                .expect("the batch size fits the data");
            let k = i % images.batches(batch).expect("checked above");
            (b.x, &labels[k * batch..(k + 1) * batch])
        }
        Data::Sequences(s) => s.batch(i, batch).expect("the batch size fits the data"),
    };
    let mut state = (net, sgd);
    Ok(run_arch(
        config,
        threads,
        timing,
        &mut state,
        |(net, sgd), i| {
            let (x, y) = batch_of(i);
            net.loss_and_grad(x, y, batch, Cost::LogLikelihood)
                .expect("the batch fits the model");
            sgd.step(net, &(), lr)
                .expect("the optimizer was built for this model");
        },
        |(net, _), i| {
            let (x, _) = batch_of(i);
            std::hint::black_box(net.forward(x, batch, false).expect("the batch fits"));
        },
    )?)
}
