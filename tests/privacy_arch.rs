//! DP-SGD on models of layers: the private step against per-example gradients built one by
//! one (`Sequential::per_example_gradients`) and clipped by hand, the step without clipping
//! or noise against an ordinary step, and buffers that stop growing.

use backprop::model::Model;
use backprop::network::Cost;
use backprop::nn::ArchModel;
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use backprop::privacy::{poisson_batch, DpConfig, DpSgd, Noise, CLIP_EPS};
use backprop::train::train_step;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A CNN whose Linear layers take one vector per example (so the norms come from ‖δ‖ ‖a‖),
/// with dropout, on 1x6x6 images of 3 classes.
const CNN: &str = "Conv2d(1, 2, 3), ReLU(), Dropout(p=0.3), MaxPool2d(2), Flatten(), \
                   Linear(8, 5), Tanh(), Linear(5, 3, bias=False), Softmax(dim=-1)";
/// A character LSTM over sequences of 4 tokens of 5: Embedding, LSTM and a Linear applied
/// at every position (each per-example gradient built).
const LSTM: &str = "Embedding(5, 3), LSTM(3, 4, num_layers=2), Linear(4, 5), Softmax(dim=-1)";

struct Case {
    arch: &'static str,
    shape: &'static [usize],
    /// Values per example, and targets (class ids) per example.
    inputs: usize,
    targets: usize,
    classes: usize,
    tokens: bool,
}

const CASES: [Case; 2] = [
    Case {
        arch: CNN,
        shape: &[1, 6, 6],
        inputs: 36,
        targets: 1,
        classes: 3,
        tokens: false,
    },
    Case {
        arch: LSTM,
        shape: &[4],
        inputs: 4,
        targets: 4,
        classes: 5,
        tokens: true,
    },
];

impl Case {
    fn model(&self, seed: u64) -> ArchModel<f64> {
        let arch = self.arch.parse().unwrap();
        ArchModel::new(&arch, self.shape, Cost::LogLikelihood, None, seed).unwrap()
    }

    /// `n` examples: inputs and class targets.
    fn batch(&self, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = (0..n * self.inputs)
            .map(|_| {
                if self.tokens {
                    rng.gen_range(0..5) as f64
                } else {
                    rng.gen_range(-2.0..2.0)
                }
            })
            .collect();
        let y = (0..n * self.targets)
            .map(|_| rng.gen_range(0..self.classes) as f64)
            .collect();
        (x, y)
    }
}

fn params(m: &ArchModel<f64>) -> Vec<f64> {
    let mut out = Vec::new();
    m.visit_params(&mut |p| out.extend_from_slice(p.values));
    out
}

fn sgd(m: &ArchModel<f64>) -> Optimizer<f64> {
    Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), m).unwrap()
}

/// Largest |a - b| / max(1, |b|).
fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f64::max)
}

#[test]
fn a_private_step_clips_every_example_as_the_per_example_gradients_say() {
    for case in &CASES {
        let (n, expected_batch, c, lr) = (6, 4, 0.05, 0.5);
        let (x, y) = case.batch(n, 11);
        // By hand: each example's gradient over all parameters, clipped to norm C, summed,
        // divided by the expected batch B (not the batch's own size).
        let mut hand_model = case.model(3);
        hand_model.net.reseed_dropout(9);
        let (_, each) = hand_model
            .net
            .per_example_gradients(&x, &y, n, Cost::LogLikelihood)
            .unwrap();
        let len = hand_model.net.num_params();
        let mut want = vec![0.0; len];
        let mut norms = Vec::new();
        for g in &each {
            let flat: Vec<f64> = g.iter().flat_map(|(_, v)| v.iter().copied()).collect();
            let norm = flat.iter().map(|v| v * v).sum::<f64>().sqrt();
            norms.push(norm);
            let factor = (c / (norm + CLIP_EPS)).min(1.0);
            for (w, g) in want.iter_mut().zip(&flat) {
                *w += factor * g / expected_batch as f64;
            }
        }
        assert!(
            norms.iter().all(|&g| g > 2.0 * c),
            "{}: {norms:?}",
            case.arch
        );

        let mut model = case.model(3);
        let before = params(&model);
        let mut opt = sgd(&model);
        let config = DpConfig::new(0.0, c, expected_batch, 100).unwrap();
        let mut dp = DpSgd::new(config, &model, Noise::seeded(1));
        model.net.reseed_dropout(9);
        let stats = dp.step(&mut model, &mut opt, &x, &y, n, lr).unwrap();
        assert_eq!((stats.examples, stats.clipped), (n, n), "{}", case.arch);
        let mean = norms.iter().sum::<f64>() / n as f64;
        assert!(
            (stats.mean_norm - mean).abs() < 1e-12 * mean,
            "{}",
            case.arch
        );
        let got: Vec<f64> = dp
            .last_gradient()
            .unwrap()
            .iter()
            .flatten()
            .copied()
            .collect();
        assert!(
            max_rel(&got, &want) < 1e-12,
            "{}: {}",
            case.arch,
            max_rel(&got, &want)
        );
        // The clipped sum has norm at most n C / B.
        let norm = got.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(norm <= n as f64 * c / expected_batch as f64 + 1e-12);
        // Plain SGD: theta - lr g.
        let stepped: Vec<f64> = before.iter().zip(&want).map(|(t, g)| t - lr * g).collect();
        assert!(max_rel(&params(&model), &stepped) < 1e-12, "{}", case.arch);
    }
}

#[test]
fn without_clipping_or_noise_a_private_step_is_an_ordinary_step_on_the_same_batch() {
    for case in &CASES {
        let examples = 200;
        let (xs, ys) = case.batch(examples, 5);
        let (expected_batch, lr) = (8, 0.3);
        let mut idx = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let config = DpConfig::new(0.0, 1e9, expected_batch, examples).unwrap();
        poisson_batch(examples, config.sample_rate, &mut rng, &mut idx);
        let n = idx.len();
        assert!(n > 0);
        let pick = |v: &[f64], per: usize| -> Vec<f64> {
            idx.iter()
                .flat_map(|&i| v[i * per..(i + 1) * per].iter().copied())
                .collect()
        };
        let (x, y) = (pick(&xs, case.inputs), pick(&ys, case.targets));
        for kind in [
            OptimizerKind::Sgd,
            OptimizerKind::Momentum,
            OptimizerKind::Adam,
        ] {
            // The private sum is divided by B, the ordinary mean by n: SGD and momentum,
            // linear in the gradient, take the same step with lr n / B; Adam, which is
            // not, is compared with B = n.
            let b = if kind == OptimizerKind::Adam {
                n
            } else {
                expected_batch
            };
            let config = DpConfig::new(0.0, 1e9, b, examples).unwrap();
            let (mut private, mut ordinary) = (case.model(4), case.model(4));
            let mut dp = DpSgd::new(config, &private, Noise::seeded(1));
            let cfg = OptimizerConfig::new(kind);
            let (mut o1, mut o2) = (
                Optimizer::new(cfg, &private).unwrap(),
                Optimizer::new(cfg, &ordinary).unwrap(),
            );
            for step in 0..3 {
                private.net.reseed_dropout(step);
                ordinary.net.reseed_dropout(step);
                let stats = dp.step(&mut private, &mut o1, &x, &y, n, lr).unwrap();
                assert_eq!(stats.clipped, 0);
                let lr = lr * n as f64 / b as f64;
                let j =
                    train_step(&mut ordinary, &mut (), &mut (), &mut o2, &x, &y, n, lr).unwrap();
                assert!((stats.loss - j).abs() < 1e-12 * j, "{} {kind:?}", case.arch);
            }
            let d = max_rel(&params(&private), &params(&ordinary));
            assert!(d < 1e-12, "{} {kind:?}: {d}", case.arch);
            assert!(max_rel(&params(&private), &params(&case.model(4))) > 1e-6);
        }
    }
}

/// Once grown to a batch, the buffers serve every smaller or equal batch as they are (no
/// reallocation), and a larger batch grows them. (The count of allocations is no help here:
/// GEMM's packing buffers and the thread pool allocate per call, a varying number.)
#[test]
fn the_per_example_buffers_stop_allocating_once_grown() {
    for case in &CASES {
        let mut model = case.model(1);
        let (x, y) = case.batch(12, 3);
        let (mut pe, mut norms) = (model.net.per_example_buffers(), Vec::new());
        let mut sum: Vec<Vec<f64>> = Vec::new();
        model.visit_params(&mut |p| sum.push(vec![0.0; p.values.len()]));
        let c = [0.5; 12];
        let cost = Cost::LogLikelihood;
        let mut pass = |n: usize| {
            let (x, y) = (&x[..n * case.inputs], &y[..n * case.targets]);
            let net = &mut model.net;
            net.per_example_norms(x, y, n, cost, &mut pe, &mut norms)
                .unwrap();
            net.clipped_sum(&mut pe, &c[..n], 0.25, &mut sum).unwrap();
            pe.capacity()
        };
        let warm = pass(6);
        for n in [4, 6, 1, 5, 6] {
            assert_eq!(pass(n), warm, "{} batch {n}", case.arch);
        }
        let grown = pass(12);
        assert!(grown.0 > warm.0, "{}", case.arch);
        for n in [12, 3] {
            assert_eq!(pass(n), grown, "{} batch {n}", case.arch);
        }
    }
}

#[test]
fn a_clipped_sum_needs_its_batch() {
    let case = &CASES[0];
    let mut model = case.model(1);
    let (x, y) = case.batch(3, 3);
    let mut pe = model.net.per_example_buffers();
    let mut sum: Vec<Vec<f64>> = Vec::new();
    model.visit_params(&mut |p| sum.push(vec![0.0; p.values.len()]));
    // No norms yet.
    assert!(model
        .net
        .clipped_sum(&mut pe, &[1.0; 3], 1.0, &mut sum)
        .is_err());
    let mut norms = Vec::new();
    model
        .net
        .per_example_norms(&x, &y, 3, Cost::LogLikelihood, &mut pe, &mut norms)
        .unwrap();
    // One factor short.
    assert!(model
        .net
        .clipped_sum(&mut pe, &[1.0; 2], 1.0, &mut sum)
        .is_err());
    // Another forward since the norms.
    model.net.predict(&x[..36], 1).unwrap();
    assert!(model
        .net
        .clipped_sum(&mut pe, &[1.0; 3], 1.0, &mut sum)
        .is_err());
}
