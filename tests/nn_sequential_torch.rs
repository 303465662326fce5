//! `Sequential` against PyTorch float64 (torch.autograd) on the models
//! `tests/fixtures/make_nn_fixtures.py` wrote: a LeNet-like CNN whose max-pool windows tie,
//! Embedding + 2-layer LSTM + Linear + Softmax over every step, a 2-layer RNN and an LSTM
//! over real-valued sequences. PyTorch's parameters are copied in by name; J, every
//! gradient, and each example's C_n and gradient agree to 1e-9.

use backprop::network::Cost;
use backprop::nn::{Arch, Sequential};
use serde_json::Value;

fn fixtures() -> Value {
    let path = format!(
        "{}/tests/fixtures/nn_sequential_torch.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(what: &str, ours: &[f64], torch: &[f64]) {
    assert_eq!(ours.len(), torch.len(), "{what}: length");
    for (i, (a, b)) in ours.iter().zip(torch).enumerate() {
        assert!(
            (a - b).abs() <= 1e-9 * b.abs().max(1.0),
            "{what}[{i}]: ours {a}, PyTorch {b}"
        );
    }
}

/// The model of one case with PyTorch's parameters, and its batch.
fn load(case: &Value) -> (Sequential<f64>, Vec<f64>, Vec<f64>, usize, Cost) {
    let arch: Arch = case["arch"].as_str().unwrap().parse().unwrap();
    let shape: Vec<usize> = case["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let mut net = Sequential::<f64>::new(&arch, &shape, 0).unwrap();
    let params = case["params"].as_object().unwrap();
    assert_eq!(params.len(), net.params().count(), "the same parameters");
    for (name, _, v) in net.params_mut() {
        let torch = floats(&params[name]);
        assert_eq!(torch.len(), v.len(), "{name}: PyTorch's size");
        v.copy_from_slice(&torch);
    }
    let cost: Cost = case["cost"].as_str().unwrap().parse().unwrap();
    let n = case["n"].as_u64().unwrap() as usize;
    (net, floats(&case["x"]), floats(&case["targets"]), n, cost)
}

#[test]
fn loss_and_gradients_agree_with_pytorch_to_1e9() {
    let all = fixtures();
    let cases = all["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (mut net, x, y, n, cost) = load(case);
        let j = net.loss_and_grad(&x, &y, n, cost).unwrap();
        close(
            &format!("{name} J"),
            &[j],
            &[case["loss"].as_f64().unwrap()],
        );
        for (p, _, g) in net.grads() {
            close(&format!("{name} d{p}"), g, &floats(&case["grads"][p]));
        }
        // Evaluation gives the same J (no dropout here) and no gradients.
        let j_eval = net.loss(&x, &y, n, cost).unwrap();
        close(&format!("{name} eval J"), &[j_eval], &[j]);
    }
}

#[test]
fn per_example_gradients_agree_with_pytorch_to_1e9() {
    let all = fixtures();
    for case in all["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (mut net, x, y, n, cost) = load(case);
        let (losses, grads) = net.per_example_gradients(&x, &y, n, cost).unwrap();
        close(&format!("{name} C_n"), &losses, &floats(&case["losses"]));
        for (e, g) in grads.iter().enumerate() {
            for (p, v) in g {
                let torch = floats(&case["per_example"][e][p]);
                close(&format!("{name} example {e} d{p}"), v, &torch);
            }
        }
    }
}

#[test]
fn the_cnn_fixture_has_max_pool_ties_that_matter() {
    // Windows whose positive maximum repeats: only PyTorch's first-maximum rule puts their
    // gradient where PyTorch puts it.
    let all = fixtures();
    let cnn = &all["cases"][0];
    assert_eq!(cnn["name"], "cnn");
    assert!(cnn["tied_windows"].as_u64().unwrap() >= 20);
    let zeros = floats(&cnn["x"]).iter().filter(|&&v| v == 0.0).count();
    assert!(zeros > 200, "{zeros} exact zeros");
}
