//! The DP-SGD step: per-example norms and clipping against the per-example gradients
//! built one by one, the step without clipping or noise against an ordinary step, the
//! noise's distribution, Poisson sampling.

use backprop::network::{Activation::*, Cost, Gradients, Init, Network, NetworkError, Workspace};
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use backprop::privacy::{poisson_batch, DpConfig, DpSgd, Noise, CLIP_EPS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn net(sizes: &[usize], seed: u64) -> Network<f64> {
    let mut acts = vec![Tanh; sizes.len() - 2];
    acts[0] = Relu;
    acts.push(Softmax);
    Network::new(sizes, &acts, Cost::LogLikelihood, Init::Scaled, seed).unwrap()
}

fn batch(n: usize, n_in: usize, n_out: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * n_in).map(|_| rng.gen_range(-2.0..2.0)).collect();
    let mut y = vec![0.0; n * n_out];
    for row in y.chunks_exact_mut(n_out) {
        row[rng.gen_range(0..n_out)] = 1.0;
    }
    (x, y)
}

/// Every weight and bias of g, flattened in the model's order.
fn flat(g: &Gradients<f64>) -> Vec<f64> {
    let mut out = Vec::new();
    for (w, b) in g.weights.iter().zip(&g.biases) {
        out.extend_from_slice(w.as_slice());
        out.extend_from_slice(b);
    }
    out
}

fn params(net: &Network<f64>) -> Vec<f64> {
    let mut out = Vec::new();
    for l in &net.layers {
        out.extend_from_slice(l.weights.as_slice());
        out.extend_from_slice(&l.biases);
    }
    out
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{k}]: {g} vs {w}"
        );
    }
}

#[test]
fn per_example_norms_are_the_norms_of_the_built_gradients() {
    let net = net(&[5, 7, 6, 3], 1);
    let (x, y) = batch(9, 5, 3, 2);
    let mut ws = Workspace::new(&net, 9);
    let (losses, per) = net.per_example_gradients(&x, &y, 9, &mut ws).unwrap();
    let mut norms = Vec::new();
    let j = net
        .per_example_norms(&x, &y, 9, &mut ws, &mut norms)
        .unwrap();
    assert!((j - losses.iter().sum::<f64>() / 9.0).abs() < 1e-14);
    for (g, norm) in per.iter().zip(&norms) {
        let want = flat(g).iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((norm - want).abs() < 1e-12 * want, "{norm} vs {want}");
    }
}

#[test]
fn weighted_gradients_are_the_weighted_sum_of_the_built_gradients() {
    let net = net(&[4, 6, 3], 3);
    let (x, y) = batch(5, 4, 3, 4);
    let mut ws = Workspace::new(&net, 5);
    let (_, per) = net.per_example_gradients(&x, &y, 5, &mut ws).unwrap();
    let c = [0.5, 1.0, 0.0, 2.0, -0.25];
    let mut g = Gradients::zeros_like(&net);
    net.per_example_norms(&x, &y, 5, &mut ws, &mut Vec::new())
        .unwrap();
    net.weighted_gradients(&x, 5, &c, 0.1, &mut ws, &mut g)
        .unwrap();
    let mut want = vec![0.0; flat(&g).len()];
    for (gi, ci) in per.iter().zip(c) {
        for (w, v) in want.iter_mut().zip(flat(gi)) {
            *w += 0.1 * ci * v;
        }
    }
    assert_close(&flat(&g), &want, 1e-13, "0.1 sum c_i g_i");
    // With c_i = 1 and scale 1/n it is backprop's batch gradient.
    let mut batch_g = Gradients::zeros_like(&net);
    net.backprop(&x, &y, 5, &mut ws, &mut batch_g);
    net.weighted_gradients(&x, 5, &[1.0; 5], 0.2, &mut ws, &mut g)
        .unwrap();
    assert_close(&flat(&g), &flat(&batch_g), 1e-14, "the batch gradient");
    // A workspace last used for another batch size holds no pass of this one.
    let mut other = Workspace::new(&net, 3);
    net.per_example_norms(&x[..12], &y[..9], 3, &mut other, &mut Vec::new())
        .unwrap();
    assert_eq!(
        net.weighted_gradients(&x, 5, &c, 1.0, &mut other, &mut g),
        Err(NetworkError::NoPass { n: 5 })
    );
    assert!(net
        .weighted_gradients(&x, 5, &c[..4], 1.0, &mut ws, &mut g)
        .is_err());
}

#[test]
fn every_example_clipped_matches_clipping_by_hand() {
    let mut model = net(&[6, 8, 4], 5);
    let (n, big_b, c) = (7, 5, 0.01);
    let (x, y) = batch(n, 6, 4, 6);
    let mut ws = Workspace::new(&model, n);
    let (_, per) = model.per_example_gradients(&x, &y, n, &mut ws).unwrap();
    // By hand: g_i * min(1, C / (||g_i|| + 1e-6)), summed, divided by B.
    let mut want = vec![0.0; model.num_params()];
    for g in &per {
        let g = flat(g);
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(norm > 10.0 * c, "the test wants every example clipped");
        let f = (c / (norm + CLIP_EPS)).min(1.0);
        let clipped: Vec<f64> = g.iter().map(|v| v * f).collect();
        let clipped_norm = clipped.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(clipped_norm <= c && clipped_norm > c * (1.0 - 1e-3));
        for (w, v) in want.iter_mut().zip(clipped) {
            *w += v / big_b as f64;
        }
    }
    // Plain SGD steps in place; SGD by momentum 0 keeps the gradient it was given.
    let start = model.clone();
    for opt_config in [OptimizerConfig::new(OptimizerKind::Sgd), momentum_0()] {
        model = start.clone();
        let config = DpConfig::new(0.0, c, big_b, 100).unwrap();
        let mut dp = DpSgd::new(config, &model, Noise::seeded(1));
        let mut opt = Optimizer::new(opt_config, &model).unwrap();
        let before = params(&model);
        let stats = dp.step(&mut model, &mut opt, &x, &y, n, 0.5).unwrap();
        assert_eq!((stats.examples, stats.clipped), (n, n));
        match dp.last_gradient() {
            Some(g) => assert_close(&flat(g), &want, 1e-12, "clipped sum / B"),
            None => assert!(opt.is_plain_sgd()),
        }
        // The optimizer took exactly that gradient.
        let moved: Vec<f64> = params(&model)
            .iter()
            .zip(&before)
            .map(|(a, b)| (b - a) / 0.5)
            .collect();
        assert_close(&moved, &want, 1e-9, "the step");
        assert_eq!(dp.accountant().history(), [(0.0, 0.05, 1)]);
        assert_eq!(opt.steps(), 1);
    }
}

/// SGD by momentum 0, v <- 0 v + g, w <- w - eta v: plain SGD's update, but not plain SGD
/// to a private step, which keeps the gradient for it.
fn momentum_0() -> OptimizerConfig {
    OptimizerConfig {
        momentum: 0.0,
        ..OptimizerConfig::new(OptimizerKind::Momentum)
    }
}

#[test]
fn with_huge_c_and_no_noise_a_private_step_is_an_ordinary_step() {
    let examples = 200;
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut idx = Vec::new();
    poisson_batch(examples, 0.1, &mut rng, &mut idx);
    let n = idx.len();
    assert!(n > 5);
    let (all_x, all_y) = batch(examples, 5, 3, 9);
    let x: Vec<f64> = idx
        .iter()
        .flat_map(|&i| all_x[i * 5..i * 5 + 5].to_vec())
        .collect();
    let y: Vec<f64> = idx
        .iter()
        .flat_map(|&i| all_y[i * 3..i * 3 + 3].to_vec())
        .collect();
    for kind in [
        OptimizerKind::Sgd,
        OptimizerKind::Momentum,
        OptimizerKind::Adam,
    ] {
        let (mut private, mut plain) = (net(&[5, 9, 3], 10), net(&[5, 9, 3], 10));
        let opt_config = OptimizerConfig::new(kind);
        let mut opt_p = Optimizer::new(opt_config, &private).unwrap();
        let mut opt_o = Optimizer::new(opt_config, &plain).unwrap();
        // B = the batch drawn, so that the sum over B is the mean.
        let config = DpConfig::new(0.0, 1e12, n, examples).unwrap();
        let mut dp = DpSgd::new(config, &private, Noise::seeded(2));
        let mut ws = Workspace::new(&plain, n);
        let mut g = Gradients::zeros_like(&plain);
        for _ in 0..3 {
            let stats = dp.step(&mut private, &mut opt_p, &x, &y, n, 0.1).unwrap();
            let j = plain.backprop(&x, &y, n, &mut ws, &mut g);
            opt_o.step(&mut plain, &g, 0.1).unwrap();
            assert_eq!(stats.clipped, 0);
            assert!((stats.loss - j).abs() < 1e-14);
            match dp.last_gradient() {
                Some(got) => assert_close(&flat(got), &flat(&g), 1e-13, "gradient"),
                None => assert_eq!(kind, OptimizerKind::Sgd, "only plain SGD steps in place"),
            }
            assert_close(&params(&private), &params(&plain), 1e-13, kind.name());
        }
    }
}

/// The noise of `steps` private steps on empty batches: the gradient is pure noise.
fn noise_draws(noise: Noise, sigma: f64, c: f64, b: usize, steps: usize) -> Vec<f64> {
    let mut model = net(&[100, 50, 10], 11);
    let mut sgd = Optimizer::new(momentum_0(), &model).unwrap();
    let config = DpConfig::new(sigma, c, b, 1000).unwrap();
    let mut dp = DpSgd::new(config, &model, noise);
    let mut draws = Vec::new();
    for _ in 0..steps {
        let stats = dp.step(&mut model, &mut sgd, &[], &[], 0, 0.1).unwrap();
        assert_eq!((stats.examples, stats.loss), (0, 0.0));
        draws.extend(flat(dp.last_gradient().unwrap()));
    }
    draws
}

fn moments(v: &[f64]) -> (f64, f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let kurt = v.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n / (var * var);
    (mean, var.sqrt(), kurt)
}

#[test]
fn the_noise_has_standard_deviation_sigma_c_over_b() {
    // sigma 2, C 0.5, B 4: the gradient's noise is N(0, 0.25^2); 9 steps of 5,560 values.
    let draws = noise_draws(Noise::seeded(3), 2.0, 0.5, 4, 9);
    let n = draws.len() as f64;
    assert_eq!(draws.len(), 9 * 5560);
    let (mean, std, kurt) = moments(&draws);
    // Standard errors: mean 0.25/sqrt(n) = 0.0011, std 0.25/sqrt(2n) = 0.0008, kurtosis
    // sqrt(24/n) = 0.022; each bound is over 4 of them.
    assert!(mean.abs() < 4.0 * 0.25 / n.sqrt(), "mean {mean}");
    assert!(
        (std - 0.25).abs() < 4.0 * 0.25 / (2.0 * n).sqrt(),
        "std {std}"
    );
    assert!(
        (kurt - 3.0).abs() < 4.0 * (24.0 / n).sqrt(),
        "kurtosis {kurt}"
    );
    // Gaussian tails: 4.55% beyond 2 std, 0.27% beyond 3.
    let beyond = |k: f64| draws.iter().filter(|v| v.abs() > k * 0.25).count() as f64 / n;
    assert!((beyond(2.0) - 0.0455).abs() < 0.004, "{}", beyond(2.0));
    assert!((beyond(3.0) - 0.0027).abs() < 0.001, "{}", beyond(3.0));
    // The same seed, the same noise; another seed, other noise.
    assert_eq!(
        noise_draws(Noise::seeded(3), 2.0, 0.5, 4, 2),
        draws[..2 * 5560]
    );
    assert_ne!(noise_draws(Noise::seeded(4), 2.0, 0.5, 4, 1), draws[..5560]);
    // Noise from the operating system: never the same twice, the same distribution.
    let os = noise_draws(Noise::os(), 2.0, 0.5, 4, 4);
    assert_ne!(os[..5560], noise_draws(Noise::os(), 2.0, 0.5, 4, 1)[..]);
    let (mean, std, _) = moments(&os);
    let n = os.len() as f64;
    assert!(
        mean.abs() < 4.0 * 0.25 / n.sqrt() && (std - 0.25).abs() < 4.0 * 0.25 / (2.0 * n).sqrt()
    );
}

#[test]
fn noise_is_the_same_on_one_thread_or_two() {
    // A layer of 500 x 200 = 100,000 weights is drawn in blocks of 2^14, on both threads
    // (tensors from 4 blocks up are split).
    let run = |threads| {
        on_threads(threads, || {
            let mut v = vec![0.0f64; 100_000];
            let mut noise = Noise::seeded(5);
            noise.add(1.0, |f| f(&mut v));
            v
        })
    };
    let one = run(1);
    assert_eq!(run(2), one);
    let (_, std, _) = moments(&one);
    assert!((std - 1.0).abs() < 0.02);
    // f32 values take the vectorised Box-Muller generator, under the same blocks.
    let run32 = |threads| {
        on_threads(threads, || {
            let mut v = vec![0.0f32; 100_003];
            Noise::seeded(5).add(1.0, |f| f(&mut v));
            v
        })
    };
    let one: Vec<u32> = run32(1).iter().map(|v| v.to_bits()).collect();
    let two: Vec<u32> = run32(2).iter().map(|v| v.to_bits()).collect();
    assert_eq!(one, two);
    let wide: Vec<f64> = run32(2).iter().map(|&v| v as f64).collect();
    let (_, std, _) = moments(&wide);
    assert!((std - 1.0).abs() < 0.02);
}

#[test]
fn poisson_batches_take_each_example_with_probability_q() {
    let (examples, q, draws) = (40, 0.3, 20_000);
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let (mut counts, mut sizes) = (vec![0usize; examples], Vec::new());
    let mut idx = Vec::new();
    for _ in 0..draws {
        poisson_batch(examples, q, &mut rng, &mut idx);
        assert!(idx.windows(2).all(|w| w[0] < w[1]) && idx.iter().all(|&i| i < examples));
        idx.iter().for_each(|&i| counts[i] += 1);
        sizes.push(idx.len() as f64);
    }
    let se = (q * (1.0 - q) / draws as f64).sqrt();
    for (i, &c) in counts.iter().enumerate() {
        let p = c as f64 / draws as f64;
        assert!((p - q).abs() < 4.5 * se, "example {i}: {p}");
    }
    // The batch size is binomial(N, q): mean N q = 12, variance N q (1 - q) = 8.4.
    let (mean, std, _) = moments(&sizes);
    assert!((mean - 12.0).abs() < 0.1, "{mean}");
    assert!((std * std - 8.4).abs() < 0.4, "{}", std * std);
    // q = 1 takes everyone.
    poisson_batch(5, 1.0, &mut rng, &mut idx);
    assert_eq!(idx, [0, 1, 2, 3, 4]);
}

#[test]
fn f32_networks_step_privately_too() {
    let acts = [Sigmoid, Softmax];
    let mut model =
        Network::<f32>::new(&[4, 5, 3], &acts, Cost::LogLikelihood, Init::Scaled, 1).unwrap();
    let mut adam = Optimizer::new(OptimizerConfig::new(OptimizerKind::Adam), &model).unwrap();
    let mut dp = DpSgd::new(
        DpConfig::new(1.0, 1.0, 2, 10).unwrap(),
        &model,
        Noise::seeded(1),
    );
    let x = [0.1f32, 0.2, 0.3, 0.4, -0.1, -0.2, -0.3, -0.4];
    let y = [1.0f32, 0.0, 0.0, 0.0, 0.0, 1.0];
    let before = model.clone();
    dp.step(&mut model, &mut adam, &x, &y, 2, 0.01).unwrap();
    assert_ne!(model, before);
    // A batch that does not fit is refused, the model unchanged and no step recorded.
    let after = model.clone();
    assert!(dp
        .step(&mut model, &mut adam, &x[..7], &y, 2, 0.01)
        .is_err());
    assert_eq!((model, dp.accountant().steps()), (after, 1));
}

#[test]
fn private_steps_give_the_same_model_on_one_thread_or_two() {
    // The noise of a big tensor is drawn in blocks split over the threads: the model must
    // come out bit for bit as on one thread.
    use backprop::model::Model;
    let run = |threads| {
        on_threads(threads, || {
            let mut net = Network::<f32>::new(
                &[20, 70_000 / 20, 3],
                &[Sigmoid, Sigmoid],
                Cost::Quadratic,
                Init::Uniform,
                3,
            )
            .unwrap();
            let mut sgd = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), &net).unwrap();
            let config = DpConfig::new(1.1, 0.5, 4, 100).unwrap();
            let mut dp = DpSgd::new(config, &net, Noise::seeded(9));
            let x: Vec<f32> = (0..5 * 20).map(|i| (i as f32 * 0.31).sin()).collect();
            let y: Vec<f32> = (0..5 * 3).map(|i| (i % 2) as f32).collect();
            for n in [5, 0, 3] {
                dp.step(&mut net, &mut sgd, &x[..n * 20], &y[..n * 3], n, 0.5)
                    .unwrap();
            }
            // A batch that does not fit fails and leaves the noise where it was.
            assert!(dp
                .step(&mut net, &mut sgd, &x[..7], &y[..3], 1, 0.5)
                .is_err());
            dp.step(&mut net, &mut sgd, &x, &y, 5, 0.5).unwrap();
            let mut bits = Vec::new();
            net.visit_params(&mut |p| bits.extend(p.values.iter().map(|v| v.to_bits())));
            bits
        })
    };
    assert_eq!(run(1), run(2));
}

/// `f` run on a pool of `threads` threads.
fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn plain_sgd_in_place_is_the_step_through_the_optimizer() {
    // The same private steps (noise, clipping, an empty batch) by plain SGD, which adds
    // the sum and the noise straight into the weights, and by SGD of momentum 0, which
    // goes through the stored gradient and the optimizer: the same models up to rounding.
    let (x, y) = batch(6, 5, 3, 21);
    let steps = |opt_config: OptimizerConfig| {
        let mut model = net(&[5, 9, 7, 3], 22);
        let mut opt = Optimizer::new(opt_config, &model).unwrap();
        let config = DpConfig::new(1.3, 2.5, 4, 50).unwrap();
        let mut dp = DpSgd::new(config, &model, Noise::seeded(23));
        let mut clipped = 0;
        for n in [6, 0, 4, 6] {
            let stats = dp
                .step(&mut model, &mut opt, &x[..n * 5], &y[..n * 3], n, 0.3)
                .unwrap();
            clipped += stats.clipped;
        }
        assert!(clipped > 0 && clipped < 16, "{clipped} clipped");
        assert_eq!((opt.steps(), dp.accountant().steps()), (4, 4));
        params(&model)
    };
    let (in_place, through) = (
        steps(OptimizerConfig::new(OptimizerKind::Sgd)),
        steps(momentum_0()),
    );
    assert_close(&in_place, &through, 1e-13, "in place against the optimizer");
    // The same in f32, where the noise is drawn by the vectorised generator.
    let steps32 = |opt_config: OptimizerConfig| {
        let acts = [Sigmoid, Softmax];
        let mut model =
            Network::<f32>::new(&[5, 40, 3], &acts, Cost::LogLikelihood, Init::Scaled, 2).unwrap();
        let mut opt = Optimizer::new(opt_config, &model).unwrap();
        let mut dp = DpSgd::new(
            DpConfig::new(1.0, 0.5, 4, 50).unwrap(),
            &model,
            Noise::seeded(24),
        );
        let (x, y): (Vec<f32>, Vec<f32>) = (
            x.iter().map(|&v| v as f32).collect(),
            y.iter().map(|&v| v as f32).collect(),
        );
        for n in [6, 0, 3] {
            dp.step(&mut model, &mut opt, &x[..n * 5], &y[..n * 3], n, 0.5)
                .unwrap();
        }
        model
            .layers
            .iter()
            .flat_map(|l| l.weights.as_slice().iter().chain(&l.biases))
            .map(|&v| v as f64)
            .collect::<Vec<f64>>()
    };
    let (in_place, through) = (
        steps32(OptimizerConfig::new(OptimizerKind::Sgd)),
        steps32(momentum_0()),
    );
    assert_close(
        &in_place,
        &through,
        1e-5,
        "f32 in place against the optimizer",
    );
    assert_ne!(in_place, steps32(OptimizerConfig::new(OptimizerKind::Adam)));
}
