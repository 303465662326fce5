//! Data-parallel training without MPI: the block sums against the plain batch gradient,
//! and the same bits for 1 to 4 ranks simulated by threads ([`LocalGroup`]).

use backprop::data::{digits, synthetic, Dataset, ScalingKind};
use backprop::dist::{
    blocks, train_network, BatchGradient, Collective, DistError, LocalGroup, Plan, Single, BLOCK,
};
use backprop::network::{Activation, Cost, Gradients, Init, Network, Workspace};
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use backprop::Float;
use rand::{Rng, SeedableRng};

fn batch<T: Float>(net: &Network<T>, n: usize, seed: u64) -> (Vec<T>, Vec<T>) {
    let sizes = net.sizes();
    let (inputs, outputs) = (sizes[0], sizes[sizes.len() - 1]);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * inputs)
        .map(|_| T::from_f64(rng.gen_range(-1.0..1.0)))
        .collect();
    let mut y = vec![T::zero(); n * outputs];
    for row in y.chunks_exact_mut(outputs) {
        row[rng.gen_range(0..outputs)] = T::one();
    }
    (x, y)
}

fn net<T: Float>(sizes: &[usize], seed: u64) -> Network<T> {
    let mut acts = vec![Activation::Tanh; sizes.len() - 2];
    acts.push(Activation::Softmax);
    Network::new(sizes, &acts, Cost::LogLikelihood, Init::Scaled, seed).unwrap()
}

/// Runs `f(comm)` on `size` threads, one per simulated rank, and returns their results in
/// rank order.
fn on_ranks<R: Send>(size: usize, f: impl Fn(&LocalGroup) -> R + Sync) -> Vec<R> {
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = (LocalGroup::new(size).into_iter())
            .map(|end| s.spawn(move || f(&end)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn bits<T: Float>(v: &[T]) -> Vec<u64> {
    v.iter().map(|&x| Float::to_f64(x).to_bits()).collect()
}

#[test]
fn block_sums_give_the_batch_gradient_to_rounding() {
    // 70 examples: blocks of 16, 16, 16, 16 and 6.
    let mut net = net::<f64>(&[12, 20, 9, 4], 3);
    let n = 70;
    assert_eq!(blocks(n, BLOCK), 5);
    let (x, y) = batch(&net, n, 1);
    let (mut ws, mut plain) = (Workspace::new(&net, n), Gradients::zeros_like(&net));
    let j_plain = net.backprop(&x, &y, n, &mut ws, &mut plain);
    let mut grads = Gradients::zeros_like(&net);
    let mut combine = BatchGradient::new(&net);
    let j = combine
        .loss_and_grad(&Single, &mut net, &x, &y, n, &mut grads)
        .unwrap();
    // The same sums grouped differently: each of the n terms is rounded at most a few
    // times more, so the difference is a small multiple of n * eps * (the terms' size).
    let bound = |scale: f64| 8.0 * n as f64 * f64::EPSILON * (1.0 + scale);
    assert!(
        (j - j_plain).abs() <= bound(j_plain.abs()),
        "{j} vs {j_plain}"
    );
    let mut worst = 0.0f64;
    for (g, p) in grads.weights.iter().zip(&plain.weights) {
        for (a, b) in g.as_slice().iter().zip(p.as_slice()) {
            assert!((a - b).abs() <= bound(b.abs()), "{a} vs {b}");
            worst = worst.max((a - b).abs());
        }
    }
    for (g, p) in grads.biases.iter().zip(&plain.biases) {
        for (a, b) in g.iter().zip(p) {
            assert!((a - b).abs() <= bound(b.abs()), "{a} vs {b}");
        }
    }
    // Not a copy of the plain path: the groupings differ somewhere.
    assert!(worst > 0.0 || grads != plain);
    // The flat gradient is the parameters in order, then J.
    let flat = combine.gradient();
    assert_eq!(flat.len(), net.num_params() + 1);
    assert_eq!(flat[0], grads.weights[0].as_slice()[0]);
    assert_eq!(flat[net.num_params()], j);
}

#[test]
fn block_sums_in_f32_match_the_f64_gradient() {
    let net64 = net::<f64>(&[30, 40, 10], 5);
    let mut net32 = net64.cast::<f32>();
    let n = 50;
    let (x, y) = batch(&net64, n, 2);
    let (mut ws, mut plain) = (Workspace::new(&net64, n), Gradients::zeros_like(&net64));
    net64.backprop(&x, &y, n, &mut ws, &mut plain);
    let (x32, y32): (Vec<f32>, Vec<f32>) = (
        x.iter().map(|&v| v as f32).collect(),
        y.iter().map(|&v| v as f32).collect(),
    );
    let mut grads = Gradients::zeros_like(&net32);
    BatchGradient::new(&net32)
        .loss_and_grad(&Single, &mut net32, &x32, &y32, n, &mut grads)
        .unwrap();
    for (a, b) in grads.weights[0]
        .as_slice()
        .iter()
        .zip(plain.weights[0].as_slice())
    {
        assert!(
            (*a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()),
            "{a} vs {b}"
        );
    }
}

/// The combined gradient's bits on every rank of a group of `size`, for a batch of `n`.
fn combined_bits(size: usize, n: usize) -> Vec<Vec<u64>> {
    let base = net::<f32>(&[40, 48, 24, 10], 8);
    let (x, y) = batch(&base, n, 4);
    on_ranks(size, |comm| {
        let mut net = base.clone();
        let mut grads = Gradients::zeros_like(&net);
        let mut combine = BatchGradient::new(&net);
        combine
            .loss_and_grad(comm, &mut net, &x, &y, n, &mut grads)
            .unwrap();
        bits(combine.gradient())
    })
}

#[test]
fn the_combined_gradient_has_the_same_bits_for_one_to_four_ranks() {
    // One block (fewer blocks than ranks), a whole number of blocks, and a short last one.
    for n in [1, BLOCK, 40, 64, 150] {
        let one = combined_bits(1, n).remove(0);
        for size in 2..=4 {
            for (rank, got) in combined_bits(size, n).iter().enumerate() {
                assert!(
                    *got == one,
                    "batch {n}: rank {rank} of {size} differs from one rank"
                );
            }
        }
    }
}

#[test]
fn the_combined_gradient_does_not_depend_on_the_thread_count() {
    let base = net::<f64>(&[200, 160, 160, 10], 2);
    let n = 80;
    let (x, y) = batch(&base, n, 6);
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut net = base.clone();
            let mut grads = Gradients::zeros_like(&net);
            let mut combine = BatchGradient::new(&net);
            combine
                .loss_and_grad(&Single, &mut net, &x, &y, n, &mut grads)
                .unwrap();
            bits(combine.gradient())
        })
    };
    assert!(run(1) == run(2), "1 and 2 threads give different bits");
}

fn model_bytes<T: Float>(net: &Network<T>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    backprop::model_file::save(net, &path, &[]).unwrap();
    std::fs::read(path).unwrap()
}

/// Trains a fresh network on the rank `comm`; returns its model file and the epoch losses.
fn train_one<T: Float>(
    comm: &impl Collective,
    data: &Dataset,
    sizes: &[usize],
    kind: OptimizerKind,
    plan: &Plan,
) -> (Vec<u8>, Vec<f64>) {
    let mut net = net::<T>(sizes, plan.seed);
    let mut opt = Optimizer::new(OptimizerConfig::new(kind), &net).unwrap();
    let losses = train_network(comm, &mut net, &mut opt, data, plan)
        .unwrap()
        .0;
    (model_bytes(&net), losses)
}

/// Trains on `size` simulated ranks (0: the process alone, [`Single`]); returns each
/// rank's model file and epoch losses.
fn train_on<T: Float>(
    size: usize,
    data: &Dataset,
    sizes: &[usize],
    kind: OptimizerKind,
    plan: &Plan,
) -> Vec<(Vec<u8>, Vec<f64>)> {
    if size == 0 {
        return vec![train_one::<T>(&Single, data, sizes, kind, plan)];
    }
    on_ranks(size, |comm| train_one::<T>(comm, data, sizes, kind, plan))
}

fn same_model_for_every_group<T: Float>(
    data: &Dataset,
    sizes: &[usize],
    kind: OptimizerKind,
    plan: &Plan,
) {
    let reference = train_on::<T>(0, data, sizes, kind, plan).remove(0);
    let (first, last) = (reference.1[0], *reference.1.last().unwrap());
    assert!(last < first, "{kind}: not learning: {:?}", reference.1);
    for size in 1..=4 {
        for (rank, (bytes, losses)) in train_on::<T>(size, data, sizes, kind, plan)
            .into_iter()
            .enumerate()
        {
            assert_eq!(losses, reference.1, "{kind}: rank {rank} of {size}: losses");
            assert!(
                bytes == reference.0,
                "{kind}: rank {rank} of {size}: the model file differs from one process's"
            );
        }
    }
}

#[test]
fn digits_train_to_the_same_bytes_on_one_to_four_ranks() {
    let mut data = digits::split().train;
    ScalingKind::Auto.fit(&data).apply(&mut data).unwrap();
    for (kind, lr) in [(OptimizerKind::Sgd, 0.5), (OptimizerKind::Adam, 0.005)] {
        let plan = Plan {
            epochs: 2,
            batch: 50,
            lr,
            seed: 7,
            block: BLOCK,
        };
        same_model_for_every_group::<f32>(&data, &[64, 30, 10], kind, &plan);
    }
}

#[test]
fn spirals_train_to_the_same_bytes_on_one_to_four_ranks() {
    let data = synthetic::spirals(400, 3);
    for (kind, lr) in [(OptimizerKind::Sgd, 0.3), (OptimizerKind::Adam, 0.01)] {
        let plan = Plan {
            epochs: 4,
            batch: 64,
            lr,
            seed: 9,
            block: 10,
        };
        same_model_for_every_group::<f64>(&data, &[2, 24, 24, 2], kind, &plan);
    }
}

#[test]
fn a_rank_that_stops_is_named_by_the_others() {
    let base = net::<f64>(&[4, 6, 3], 1);
    let (x, y) = batch(&base, 64, 2);
    let results = on_ranks(3, |comm| {
        if comm.rank() == 1 {
            return None; // rank 1 stops before its part: its channels close
        }
        let mut net = base.clone();
        let mut grads = Gradients::zeros_like(&net);
        let err = BatchGradient::new(&net)
            .loss_and_grad(comm, &mut net, &x, &y, 64, &mut grads)
            .unwrap_err();
        Some(err.to_string())
    });
    // Rank 2 waits on rank 1's running sum; rank 0 sends it to rank 1, or
    // waits on the broadcast from rank 2, which has stopped in turn.
    assert_eq!(
        results[2].as_deref(),
        Some("rank 1 is gone (seen by rank 2): it stopped or lost contact; the job stops")
    );
    assert!(
        matches!(results[0].as_deref(), Some(m) if m.starts_with("rank ") && m.contains("is gone (seen by rank 0)"))
    );
}

#[test]
fn a_batch_that_does_not_fit_is_refused() {
    let mut net = net::<f64>(&[4, 6, 3], 1);
    let mut grads = Gradients::zeros_like(&net);
    let mut combine = BatchGradient::new(&net);
    let err = combine
        .loss_and_grad(&Single, &mut net, &[0.0; 9], &[0.0; 6], 2, &mut grads)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "a batch of 2 examples with inputs of 9 values: not 2 rows of equal width"
    );
    let err = combine
        .loss_and_grad(&Single, &mut net, &[0.0; 10], &[0.0; 6], 2, &mut grads)
        .unwrap_err();
    assert!(matches!(err, DistError::Network(_)), "{err}");
    let err = combine
        .loss_and_grad(&Single, &mut net, &[], &[], 0, &mut grads)
        .unwrap_err();
    assert!(matches!(err, DistError::Network(_)), "{err}");
}

/// A `backprop` built without MPI, started by `mpirun` as one of several processes, would
/// train alone N times: it refuses, saying how to build it.
#[cfg(not(feature = "mpi"))]
#[test]
fn a_binary_without_mpi_refuses_to_be_one_of_several_ranks() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(["train", "--epochs", "1"])
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .env("OMPI_COMM_WORLD_RANK", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("built without MPI") && stderr.contains("--features mpi"),
        "{stderr}"
    );
}

/// `Trainer` with `Blocked` on simulated ranks: 1, 2 and 3 ranks end with the same weights,
/// and one process with `Single` too; the whole-batch trainer rounds differently but
/// learns the same (the gradient is the same up to rounding).
#[test]
fn the_trainer_with_block_sums_gives_the_same_bits_for_any_number_of_ranks() {
    use backprop::dist::{Blocked, LocalGroup, Single};
    use backprop::train::{TrainConfig, Trainer};
    let data = backprop::data::synthetic::spirals(300, 2);
    let config = TrainConfig {
        hidden: vec![12],
        lr: 0.3,
        epochs: 2,
        batch: 70,
        ..TrainConfig::default()
    };
    let train = |source: Option<LocalGroup>| -> Vec<f32> {
        let mut t = Trainer::<f32>::new(config.clone(), 2, 2).unwrap();
        match source {
            Some(end) => t.set_gradient_source(Box::new(Blocked::new(end, t.network(), 16))),
            None => t.set_gradient_source(Box::new(Blocked::new(Single, t.network(), 16))),
        }
        while !t.finished() {
            t.run_epoch(&data, &data, None).unwrap();
        }
        t.network()
            .layers
            .iter()
            .flat_map(|l| l.weights.as_slice().to_vec())
            .collect()
    };
    let alone = train(None);
    for ranks in 1..=3 {
        let all: Vec<Vec<f32>> = std::thread::scope(|s| {
            let runs: Vec<_> = (LocalGroup::new(ranks).into_iter())
                .map(|end| {
                    let train = &train;
                    s.spawn(move || train(Some(end)))
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for w in &all {
            assert!(w == &alone, "{ranks} ranks");
        }
    }
    let mut whole = Trainer::<f32>::new(config.clone(), 2, 2).unwrap();
    while !whole.finished() {
        whole.run_epoch(&data, &data, None).unwrap();
    }
    let w: Vec<f32> = (whole.network().layers.iter())
        .flat_map(|l| l.weights.as_slice().to_vec())
        .collect();
    let gap = w
        .iter()
        .zip(&alone)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(gap < 1e-3, "{gap}");
}

/// A model of layers (a small CNN) through `Blocked`: 1, 2 and 3 simulated ranks and one
/// process end with the same bits, with one or two threads in the caller's pool. (At these
/// sizes the kernels happen not to split a block over threads; `tests/dist_mpi.rs`, where
/// each rank has one thread and the lone process two, is the test that caught a block
/// computed on the caller's pool.)
#[test]
fn a_cnn_trained_with_block_sums_has_the_same_bits_for_any_ranks_and_threads() {
    use backprop::data::{digits, ScalingKind};
    use backprop::dist::{Blocked, LocalGroup, Single};
    use backprop::network::Cost;
    use backprop::nn::ArchModel;
    use backprop::train::{TrainConfig, Trainer};
    let split = digits::split();
    let scaling = ScalingKind::Auto.fit(&split.train);
    let mut data = split.train.clone();
    scaling.apply(&mut data).unwrap();
    let data = data.subset(&(0..300).collect::<Vec<_>>());
    let arch = "Conv2d(1, 4, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10), \
                Softmax(dim=-1)"
        .parse()
        .unwrap();
    let config = TrainConfig {
        lr: 0.1,
        epochs: 1,
        batch: 64,
        ..TrainConfig::default()
    };
    let train = |source: Option<LocalGroup>, threads: usize| -> Vec<u32> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let model =
                ArchModel::<f32>::new(&arch, &[1, 8, 8], Cost::LogLikelihood, None, 1).unwrap();
            let mut t = Trainer::with_model(config.clone(), model).unwrap();
            match source {
                Some(end) => t.set_gradient_source(Box::new(Blocked::new(end, t.network(), 16))),
                None => t.set_gradient_source(Box::new(Blocked::new(Single, t.network(), 16))),
            }
            while !t.finished() {
                t.run_epoch(&data, &data, None).unwrap();
            }
            t.network()
                .net
                .params()
                .flat_map(|(_, _, v)| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                .collect()
        })
    };
    let alone = train(None, 2);
    assert!(train(None, 1) == alone, "1 thread against 2");
    for ranks in 1..=3 {
        let all: Vec<Vec<u32>> = std::thread::scope(|s| {
            let runs: Vec<_> = (LocalGroup::new(ranks).into_iter())
                .map(|end| {
                    let train = &train;
                    s.spawn(move || train(Some(end), 1))
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for w in &all {
            assert!(w == &alone, "{ranks} ranks");
        }
    }
}
