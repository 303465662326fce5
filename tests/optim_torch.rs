//! The optimizers and schedules against PyTorch: `tests/fixtures/optim_torch.json`, written
//! by `tests/fixtures/make_optim_fixtures.py` with torch 2.15 (no torch needed here).

use backprop::linalg::Matrix;
use backprop::network::{Activation, Cost, Gradients, Layer, Network};
use backprop::optim::{OptimError, Optimizer, OptimizerConfig, OptimizerKind, Schedule};
use serde_json::Value;
use std::collections::HashMap;

fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/optim_torch.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The 2-3-2 network whose tensors are `t` (weights 0, biases 0, weights 1, biases 1).
fn network(t: &[Vec<f64>]) -> Network<f64> {
    Network {
        layers: vec![
            Layer {
                weights: Matrix::from_vec(3, 2, t[0].clone()).unwrap(),
                biases: t[1].clone(),
                activation: Activation::Sigmoid,
            },
            Layer {
                weights: Matrix::from_vec(2, 3, t[2].clone()).unwrap(),
                biases: t[3].clone(),
                activation: Activation::Softmax,
            },
        ],
        cost: Cost::LogLikelihood,
    }
}

fn gradients(t: &[Vec<f64>]) -> Gradients<f64> {
    Gradients {
        weights: vec![
            Matrix::from_vec(3, 2, t[0].clone()).unwrap(),
            Matrix::from_vec(2, 3, t[2].clone()).unwrap(),
        ],
        biases: vec![t[1].clone(), t[3].clone()],
    }
}

fn tensors(net: &Network<f64>) -> Vec<Vec<f64>> {
    net.layers
        .iter()
        .flat_map(|l| [l.weights.as_slice().to_vec(), l.biases.clone()])
        .collect()
}

fn config(case: &Value) -> OptimizerConfig {
    let kind: OptimizerKind = case["kind"].as_str().unwrap().parse().unwrap();
    let mut c = OptimizerConfig::new(kind);
    let s = &case["settings"];
    let get = |k: &str, d: f64| s.get(k).map_or(d, |v| v.as_f64().unwrap());
    c.momentum = get("momentum", c.momentum);
    c.weight_decay = get("weight_decay", c.weight_decay);
    c.beta1 = get("beta1", c.beta1);
    c.beta2 = get("beta2", c.beta2);
    c.eps = get("eps", c.eps);
    c
}

struct Fixture {
    init: Vec<Vec<f64>>,
    grads: Vec<Vec<Vec<f64>>>,
    lrs: Vec<f64>,
    cases: Vec<Value>,
}

fn load() -> Fixture {
    let f = fixture();
    Fixture {
        init: f["init"].as_array().unwrap().iter().map(floats).collect(),
        grads: f["grads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_array().unwrap().iter().map(floats).collect())
            .collect(),
        lrs: floats(&f["lrs"]),
        cases: f["cases"].as_array().unwrap().clone(),
    }
}

fn assert_close(ours: &[Vec<f64>], torch: &[Vec<f64>], what: &str) {
    for (i, (a, b)) in ours.iter().zip(torch).enumerate() {
        assert_eq!(a.len(), b.len());
        for (j, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-12 * y.abs().max(1.0),
                "{what}: tensor {i}[{j}]: ours {x}, torch {y}, difference {}",
                x - y
            );
        }
    }
}

#[test]
fn every_optimizer_matches_torch_to_1e12() {
    let f = load();
    assert_eq!(f.cases.len(), 10);
    for case in &f.cases {
        let name = case["name"].as_str().unwrap();
        let mut net = network(&f.init);
        let mut opt = Optimizer::new(config(case), &net).unwrap();
        for (k, torch) in case["params"].as_array().unwrap().iter().enumerate() {
            let torch: Vec<Vec<f64>> = torch.as_array().unwrap().iter().map(floats).collect();
            opt.step(&mut net, &gradients(&f.grads[k]), f.lrs[k])
                .unwrap();
            assert_close(&tensors(&net), &torch, &format!("{name} step {}", k + 1));
        }
        assert_eq!(opt.steps(), 6);
    }
}

#[test]
fn plain_sgd_is_exactly_the_seeds_update() {
    // w <- w - eta dJ/dw, bit for bit, for every step of the fixture.
    let f = load();
    let mut net = network(&f.init);
    let mut opt = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), &net).unwrap();
    let mut expected = f.init.clone();
    for (k, g) in f.grads.iter().enumerate() {
        opt.step(&mut net, &gradients(g), f.lrs[k]).unwrap();
        for (w, g) in expected.iter_mut().zip(g) {
            for (w, g) in w.iter_mut().zip(g) {
                *w -= f.lrs[k] * g;
            }
        }
        assert_eq!(tensors(&net), expected);
    }
}

#[test]
fn saved_state_resumes_exactly() {
    let f = load();
    for case in &f.cases {
        let name = case["name"].as_str().unwrap();
        // Uninterrupted: 6 steps.
        let mut net = network(&f.init);
        let mut opt = Optimizer::new(config(case), &net).unwrap();
        for (k, g) in f.grads.iter().enumerate() {
            opt.step(&mut net, &gradients(g), f.lrs[k]).unwrap();
        }
        // Interrupted after 3 steps: save, build a fresh optimizer, load, continue.
        let mut net2 = network(&f.init);
        let mut first = Optimizer::new(config(case), &net2).unwrap();
        for (k, g) in f.grads.iter().enumerate().take(3) {
            first.step(&mut net2, &gradients(g), f.lrs[k]).unwrap();
        }
        let saved: HashMap<String, Vec<f64>> = first
            .state_tensors()
            .into_iter()
            .map(|(n, t)| (n, t.to_vec()))
            .collect();
        let steps = first.steps();
        drop(first);
        let mut second = Optimizer::new(config(case), &net2).unwrap();
        second
            .load_state(steps, |n| saved.get(n).map(Vec::as_slice))
            .unwrap();
        for (k, g) in f.grads.iter().enumerate().skip(3) {
            second.step(&mut net2, &gradients(g), f.lrs[k]).unwrap();
        }
        assert_eq!(net2, net, "{name}");
        assert_eq!(second, opt, "{name}");
    }
}

#[test]
fn load_state_refuses_missing_or_misshapen_tensors() {
    let f = load();
    let net = network(&f.init);
    let mut adam = Optimizer::new(OptimizerConfig::new(OptimizerKind::Adam), &net).unwrap();
    let before = adam.clone();
    let e = adam.load_state(3, |_| None).unwrap_err();
    assert!(
        matches!(&e, OptimError::MissingState(n) if n == "optim.layers.0.weight.exp_avg"),
        "{e}"
    );
    let short = [0.0; 5];
    let e = adam.load_state(3, |_| Some(&short[..])).unwrap_err();
    assert!(
        matches!(
            e,
            OptimError::StateShape {
                expected: 6,
                found: 5,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(adam, before);
    // Plain SGD has no state and loads from nothing.
    let mut sgd = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), &net).unwrap();
    assert!(sgd.state_tensors().is_empty());
    sgd.load_state(7, |_| None).unwrap();
    assert_eq!(sgd.steps(), 7);
}

#[test]
fn bad_settings_and_shapes_are_refused() {
    let f = load();
    let mut net = network(&f.init);
    for (field, value) in [
        ("momentum", 1.0),
        ("momentum", -0.1),
        ("wd", -1.0),
        ("wd", f64::NAN),
        ("eps", 0.0),
        ("beta2", 1.0),
    ] {
        let mut c = OptimizerConfig::new(OptimizerKind::Adam);
        match field {
            "momentum" => c.momentum = value,
            "wd" => c.weight_decay = value,
            "eps" => c.eps = value,
            _ => c.beta2 = value,
        }
        assert!(
            matches!(
                Optimizer::new(c, &net),
                Err(OptimError::BadParameter { .. })
            ),
            "{field} = {value}"
        );
    }
    let mut opt = Optimizer::new(OptimizerConfig::new(OptimizerKind::Momentum), &net).unwrap();
    let mut other = network(&f.init);
    other.layers.pop();
    let g = gradients(&f.grads[0]);
    assert!(matches!(
        opt.step(&mut other, &g, 0.1),
        Err(OptimError::NetworkShape { .. })
    ));
    let mut bad_g = g.clone();
    bad_g.biases[1].push(0.0);
    let before = net.clone();
    assert!(matches!(
        opt.step(&mut net, &bad_g, 0.1),
        Err(OptimError::NetworkShape { .. })
    ));
    assert_eq!(net, before);
    assert_eq!(opt.steps(), 0);
    for k in OptimizerKind::ALL {
        assert_eq!(k.name().parse::<OptimizerKind>(), Ok(k));
    }
    assert!("rmsprop".parse::<OptimizerKind>().is_err());
}

#[test]
fn f32_tracks_f64() {
    // The same Adam run in f32 stays within f32 precision of the f64 run.
    let f = load();
    let mut net64 = network(&f.init);
    let to32 = |t: &[Vec<f64>]| -> Vec<Vec<f32>> {
        t.iter()
            .map(|v| v.iter().map(|&x| x as f32).collect())
            .collect()
    };
    let i32s = to32(&f.init);
    let mut net32 = Network {
        layers: vec![
            Layer {
                weights: Matrix::from_vec(3, 2, i32s[0].clone()).unwrap(),
                biases: i32s[1].clone(),
                activation: Activation::Sigmoid,
            },
            Layer {
                weights: Matrix::from_vec(2, 3, i32s[2].clone()).unwrap(),
                biases: i32s[3].clone(),
                activation: Activation::Softmax,
            },
        ],
        cost: Cost::LogLikelihood,
    };
    let c = OptimizerConfig::new(OptimizerKind::AdamW);
    let mut o64 = Optimizer::new(c, &net64).unwrap();
    let mut o32 = Optimizer::new(c, &net32).unwrap();
    for (k, g) in f.grads.iter().enumerate() {
        o64.step(&mut net64, &gradients(g), f.lrs[k]).unwrap();
        let g32 = to32(g);
        let g32 = Gradients {
            weights: vec![
                Matrix::from_vec(3, 2, g32[0].clone()).unwrap(),
                Matrix::from_vec(2, 3, g32[2].clone()).unwrap(),
            ],
            biases: vec![g32[1].clone(), g32[3].clone()],
        };
        o32.step(&mut net32, &g32, f.lrs[k] as f32).unwrap();
    }
    for (l64, l32) in net64.layers.iter().zip(&net32.layers) {
        for (a, b) in l64.weights.as_slice().iter().zip(l32.weights.as_slice()) {
            assert!((a - *b as f64).abs() < 1e-5, "{a} vs {b}");
        }
    }
}

#[test]
fn schedules_match_torch_lr_scheduler() {
    let f = fixture();
    for s in f["schedules"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let set = &s["settings"];
        let schedule = match s["kind"].as_str().unwrap() {
            "step" => Schedule::Step {
                every: set["every"].as_u64().unwrap() as usize,
                gamma: set["gamma"].as_f64().unwrap(),
            },
            _ => Schedule::Cosine {
                epochs: set["epochs"].as_u64().unwrap() as usize,
            },
        };
        let base = s["base_lr"].as_f64().unwrap();
        for (epoch, torch) in floats(&s["lrs"]).into_iter().enumerate() {
            let ours = schedule.lr_at(base, epoch);
            assert!(
                (ours - torch).abs() <= 1e-12,
                "{name} epoch {epoch}: ours {ours}, torch {torch}"
            );
        }
    }
    assert_eq!(Schedule::Constant.lr_at(0.7, 1000), 0.7);
}
