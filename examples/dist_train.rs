//! Data-parallel training on MPI with `backprop::dist`: the same model file, byte for byte,
//! whatever the number of processes.
//!
//! ```text
//! cargo build --release --features mpi --example dist_train
//! mpirun -np 4 target/release/examples/dist_train --data digits --optimizer adam --out m4.safetensors
//! target/release/examples/dist_train --single --data digits --optimizer adam --out m1.safetensors
//! cmp m1.safetensors m4.safetensors   # no output: the same bytes
//! ```
//!
//! Flags: `--data digits|spirals|random784` (the built-in digits, 2-class spirals, or 2,048
//! random 784-pixel examples for timing), `--sizes` hidden sizes (`30`, `128,64`,
//! `1024,1024`), `--optimizer sgd|adam`, `--epochs`, `--batch` (global), `--block` (examples per block, 16), `--lr`, `--seed`,
//! `--precision f32|f64`, `--out FILE` (written by rank 0), `--single` (no MPI: the
//! reference), `--plain` (with `--single`: the whole batch in one backpropagation, as
//! `backprop train` does, for timing against the blocks), `--verbose` (each rank's time and bytes). Output: one line per epoch
//! (rank 0), then `time: S s, P steps`.

use backprop::data::{digits, synthetic, Dataset, ScalingKind};
use backprop::dist::{train_network, Collective, Fingerprint, MpiWorld, Plan, Single};
use backprop::network::{Activation, Cost, Init, Network};
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use backprop::Float;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Debug)]
struct Args {
    data: String,
    hidden: Vec<usize>,
    optimizer: OptimizerKind,
    epochs: usize,
    batch: usize,
    block: usize,
    lr: f64,
    seed: u64,
    f64: bool,
    out: Option<PathBuf>,
    single: bool,
    plain: bool,
    verbose: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        data: "digits".into(),
        hidden: vec![30],
        optimizer: OptimizerKind::Sgd,
        epochs: 3,
        batch: 64,
        block: backprop::dist::BLOCK,
        lr: 0.5,
        seed: 1,
        f64: false,
        out: None,
        single: false,
        plain: false,
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<f64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--data" => a.data = value()?,
            "--sizes" => {
                a.hidden = (value()?.split(','))
                    .map(|s| s.trim().parse().map_err(|e| format!("--sizes {s}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--optimizer" => a.optimizer = value()?.parse().map_err(|e| format!("{e}"))?,
            "--epochs" => a.epochs = num(value()?)? as usize,
            "--batch" => a.batch = num(value()?)? as usize,
            "--block" => a.block = num(value()?)? as usize,
            "--lr" => a.lr = num(value()?)?,
            "--seed" => a.seed = num(value()?)? as u64,
            "--precision" => a.f64 = value()? == "f64",
            "--out" => a.out = Some(value()?.into()),
            "--single" => a.single = true,
            "--plain" => a.plain = true,
            "--verbose" => a.verbose = true,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

fn load(name: &str) -> Result<Dataset, String> {
    match name {
        "digits" => {
            let mut d = digits::split().train;
            ScalingKind::Auto
                .fit(&d)
                .apply(&mut d)
                .map_err(|e| e.to_string())?;
            Ok(d)
        }
        "spirals" => Ok(synthetic::spirals(600, 2)),
        "random784" => {
            // Timing data: pixels in [0, 1) and labels from a fixed generator.
            let n = 2048;
            let mut state = 0x2545_F491_4F6C_DD1Du64;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let inputs: Vec<f32> = (0..n * 784)
                .map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32)
                .collect();
            let labels = (0..n).map(|_| (next() % 10) as u32).collect();
            let mut d = Dataset::new(inputs, labels, 784).map_err(|e| e.to_string())?;
            d.set_classes(10).map_err(|e| e.to_string())?;
            Ok(d)
        }
        other => Err(format!(
            "--data {other}: expected digits, spirals or random784"
        )),
    }
}

fn run<T: Float>(comm: &impl Collective, a: &Args) -> Result<(), String> {
    let data = load(&a.data)?;
    // Every rank must train on the same data with the same flags.
    let mut f = Fingerprint::new();
    f.dataset(&a.data, &data).cpu();
    f.value(
        "the flags",
        &format!("{a:?}").replace(&format!("single: {}", a.single), ""),
    );
    f.agree(comm).map_err(|e| e.to_string())?;

    let mut sizes = vec![data.features];
    sizes.extend(&a.hidden);
    sizes.push(data.classes);
    let mut acts = vec![Activation::Relu; a.hidden.len()];
    acts.push(Activation::Softmax);
    let mut net = Network::<T>::new(&sizes, &acts, Cost::LogLikelihood, Init::He, a.seed)
        .map_err(|e| e.to_string())?;
    let mut opt =
        Optimizer::new(OptimizerConfig::new(a.optimizer), &net).map_err(|e| e.to_string())?;
    let plan = Plan {
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        seed: a.seed,
        block: a.block,
    };
    let start = std::time::Instant::now();
    let (losses, stats) = if a.plain {
        (plain(&mut net, &mut opt, &data, &plan)?, Default::default())
    } else {
        train_network(comm, &mut net, &mut opt, &data, &plan).map_err(|e| e.to_string())?
    };
    let seconds = start.elapsed().as_secs_f64();
    if comm.rank() == 0 {
        for (e, j) in losses.iter().enumerate() {
            println!("epoch {}: train loss {j:.6}", e + 1);
        }
        println!(
            "time: {seconds:.3} s, {} steps, {} ranks, {} parameters",
            stats.steps,
            comm.size(),
            net.num_params()
        );
        if let Some(out) = &a.out {
            backprop::model_file::save(&net, out, &[]).map_err(|e| e.to_string())?;
        }
    }
    if a.verbose {
        eprintln!("{}", stats.report(comm.rank()));
    }
    Ok(())
}

/// The loop of [`train_network`] with the whole batch in one `Network::backprop` (the
/// plain path, threads splitting the batch as they like): for timing only.
fn plain<T: Float>(
    net: &mut Network<T>,
    opt: &mut Optimizer<T>,
    data: &Dataset,
    plan: &Plan,
) -> Result<Vec<f64>, String> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let sizes = net.sizes();
    let (inputs, outputs) = (sizes[0], sizes[sizes.len() - 1]);
    let batch = plan.batch.min(data.len());
    let (mut x, mut y) = (
        vec![T::zero(); batch * inputs],
        vec![T::zero(); batch * outputs],
    );
    let mut ws = backprop::network::Workspace::new(net, batch);
    let mut grads = backprop::network::Gradients::zeros_like(net);
    let mut losses = Vec::new();
    for epoch in 1..=plan.epochs {
        let mut order: Vec<usize> = (0..data.len()).collect();
        let stream = (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            plan.seed ^ stream,
        ));
        let mut total = 0.0;
        for idx in order.chunks(batch) {
            let n = idx.len();
            let (x, y) = (&mut x[..n * inputs], &mut y[..n * outputs]);
            data.inputs_into(idx, x).map_err(|e| e.to_string())?;
            data.one_hot(idx, y).map_err(|e| e.to_string())?;
            total += net.backprop(x, y, n, &mut ws, &mut grads).to_f64() * n as f64;
            opt.step(net, &grads, T::from_f64(plan.lr))
                .map_err(|e| e.to_string())?;
        }
        losses.push(total / data.len() as f64);
    }
    Ok(losses)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.single {
        let result = if args.f64 {
            run::<f64>(&Single, &args)
        } else {
            run::<f32>(&Single, &args)
        };
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let world = match MpiWorld::init() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if args.f64 {
        run::<f64>(&world, &args)
    } else {
        run::<f32>(&world, &args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Stop every rank: the others may be waiting on this one.
        Err(e) => world.abort(&e),
    }
}
