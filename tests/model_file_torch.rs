//! Models saved by PyTorch load with PyTorch's exact weights and give PyTorch's outputs.
//! Fixtures: `tests/fixtures/make_model_fixtures.py` (torch 2.15).

use backprop::model_file::{load, save, AnyNetwork};
use backprop::network::{Activation, Cost, Network};
use backprop::Float;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn json() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("model_torch_outputs.json")).unwrap(),
    )
    .unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// a^L for one input, by the seed's z^l = W^l a^(l-1) + b^l, a^l = F(z^l), written out as
/// plain loops (independent of the network module's feed-forward).
fn naive_forward<T: Float>(net: &Network<T>, x: &[T]) -> Vec<T> {
    let mut a = x.to_vec();
    for layer in &net.layers {
        let w = &layer.weights;
        let z: Vec<T> = (0..w.rows())
            .map(|j| {
                let mut s = layer.biases[j];
                for k in 0..w.cols() {
                    s += w[(j, k)] * a[k];
                }
                s
            })
            .collect();
        a = match layer.activation {
            Activation::Identity => z,
            Activation::Sigmoid => z
                .iter()
                .map(|&z| T::one() / (T::one() + (-z).exp()))
                .collect(),
            Activation::Tanh => z.iter().map(|z| z.tanh()).collect(),
            Activation::Relu => z.iter().map(|&z| z.max(T::zero())).collect(),
            Activation::LeakyRelu => z
                .iter()
                .map(|&z| {
                    if z > T::zero() {
                        z
                    } else {
                        T::from_f64(0.01) * z
                    }
                })
                .collect(),
            Activation::Softmax => {
                let m = z.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
                let e: Vec<T> = z.iter().map(|&v| (v - m).exp()).collect();
                let s: T = e.iter().copied().sum();
                e.iter().map(|&v| v / s).collect()
            }
        };
    }
    a
}

/// Values stored as their f64 bit patterns (decimal text may be misread by an ulp).
fn bits(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| f64::from_bits(x.as_u64().unwrap()))
        .collect()
}

fn check_tensors<T: Float>(net: &Network<T>, torch: &Value) {
    for (i, layer) in net.layers.iter().enumerate() {
        let w: Vec<f64> = layer
            .weights
            .as_slice()
            .iter()
            .map(|&x| Float::to_f64(x))
            .collect();
        let b: Vec<f64> = layer.biases.iter().map(|&x| Float::to_f64(x)).collect();
        // Bit-exact: the file holds PyTorch's values, and f32 widens to f64 exactly.
        assert_eq!(
            w,
            bits(&torch[format!("layers.{i}.weight")]),
            "layers.{i}.weight"
        );
        assert_eq!(
            b,
            bits(&torch[format!("layers.{i}.bias")]),
            "layers.{i}.bias"
        );
    }
}

#[test]
fn torch_f64_model_loads_exactly_and_gives_torchs_outputs() {
    let j = json();
    let m = &j["models"]["f64"];
    let loaded = load(&fixtures().join("model_torch_f64.safetensors")).unwrap();
    assert_eq!(loaded.metadata["layers"], "2,4,4,3");
    assert_eq!(loaded.metadata["cost"], "log-likelihood");
    let AnyNetwork::F64(net) = loaded.network else {
        panic!("an F64 file must load as F64")
    };
    assert_eq!(net.sizes(), vec![2, 4, 4, 3]);
    assert_eq!(net.cost, Cost::LogLikelihood);
    assert_eq!(
        net.layers.iter().map(|l| l.activation).collect::<Vec<_>>(),
        vec![
            Activation::Sigmoid,
            Activation::Sigmoid,
            Activation::Softmax
        ]
    );
    check_tensors(&net, &m["tensor_bits"]);
    let inputs: Vec<Vec<f64>> = j["inputs"].as_array().unwrap().iter().map(floats).collect();
    let outputs: Vec<Vec<f64>> = m["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    assert_eq!(inputs.len(), 6);
    for (x, torch) in inputs.iter().zip(&outputs) {
        let ours = naive_forward(&net, x);
        for (a, b) in ours.iter().zip(torch) {
            assert!((a - b).abs() <= 1e-12, "ours {a}, torch {b}");
        }
    }
}

#[test]
fn torch_f32_model_loads_exactly_and_gives_torchs_outputs() {
    let j = json();
    let m = &j["models"]["f32"];
    let loaded = load(&fixtures().join("model_torch_f32.safetensors")).unwrap();
    let AnyNetwork::F32(net) = loaded.network else {
        panic!("an F32 file must load as F32")
    };
    assert_eq!(net.cost, Cost::Quadratic);
    check_tensors(&net, &m["tensor_bits"]);
    let outputs: Vec<Vec<f64>> = m["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    for (x, torch) in j["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .zip(&outputs)
    {
        let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        for (a, b) in naive_forward(&net, &x).iter().zip(torch) {
            assert!(
                (*a as f64 - b).abs() <= 1e-6 * b.abs().max(1.0),
                "ours {a}, torch {b}"
            );
        }
    }
}

#[test]
fn save_then_load_round_trips_both_precisions_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["model_torch_f64.safetensors", "model_torch_f32.safetensors"] {
        let original = load(&fixtures().join(name)).unwrap();
        let out = dir.path().join(name);
        let extra = [
            ("scaling".to_string(), "divide:16".to_string()),
            ("classes".to_string(), "3".to_string()),
        ];
        match &original.network {
            AnyNetwork::F32(n) => save(n, &out, &extra).unwrap(),
            AnyNetwork::F64(n) => save(n, &out, &extra).unwrap(),
        }
        let again = load(&out).unwrap();
        assert_eq!(again.network, original.network, "{name}");
        assert_eq!(again.metadata["scaling"], "divide:16");
        assert_eq!(
            again.metadata["activations"],
            original.metadata["activations"]
        );
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        // Saving is deterministic: the same network gives the same bytes.
        let first = std::fs::read(&out).unwrap();
        match &original.network {
            AnyNetwork::F32(n) => save(n, &out, &extra).unwrap(),
            AnyNetwork::F64(n) => save(n, &out, &extra).unwrap(),
        }
        assert_eq!(std::fs::read(&out).unwrap(), first);
    }
}
