//! The tensor engine against PyTorch (float64): values and gradients of composed expressions
//! from tests/fixtures/tensor_torch.json (made by make_tensor_fixtures.py), to 1e-9.

use backprop::tensor::{Tape, Tensor, Var};
use serde_json::Value;

const TOL: f64 = 1e-9;

fn fixture() -> Value {
    let text = include_str!("fixtures/tensor_torch.json");
    serde_json::from_str(text).unwrap()
}

fn tensor(v: &Value) -> Tensor<f64> {
    let dims: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    Tensor::from_vec(dims, data).unwrap()
}

fn indices(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|x| match x.as_array() {
            Some(row) => row.iter().map(|i| i.as_u64().unwrap() as usize).collect(),
            None => vec![x.as_u64().unwrap() as usize],
        })
        .collect()
}

/// One-hot rows of width `k` for `labels`, in shape `dims`.
fn one_hot(labels: &[usize], k: usize, dims: &[usize]) -> Tensor<f64> {
    let mut t = Tensor::zeros(dims);
    for (r, &l) in labels.iter().enumerate() {
        t.as_mut_slice()[r * k + l] = 1.0;
    }
    t
}

/// Builds case `name` on a tape with its inputs as variables (in the alphabetical order of
/// their names) and its constants, and compares the loss and every gradient with PyTorch's.
fn check(name: &str, build: impl for<'t> Fn(&[Var<'t, f64>], &Value) -> Var<'t, f64>) {
    let fx = fixture();
    let case = &fx["cases"][name];
    let tape = Tape::new();
    let mut keys: Vec<&String> = case["inputs"].as_object().unwrap().keys().collect();
    keys.sort();
    let vars: Vec<Var<'_, f64>> = keys
        .iter()
        .map(|k| tape.var(tensor(&case["inputs"][k.as_str()])))
        .collect();
    let loss = build(&vars, case.get("consts").unwrap_or(&Value::Null));
    let want = case["value"].as_f64().unwrap();
    assert!(
        (loss.item() - want).abs() <= TOL * want.abs().max(1.0),
        "{name}: J {} vs torch {want}",
        loss.item()
    );
    let grads = loss.backward();
    for (key, &v) in keys.iter().zip(&vars) {
        let torch = tensor(&case["grads"][key.as_str()]);
        let ours = grads.wrt(v);
        assert!(
            ours.max_abs_diff(&torch) <= TOL,
            "{name}: d/d{key}\nours  {ours:?}\ntorch {torch:?}"
        );
    }
}

#[test]
fn softmax_log_likelihood_on_a_batch() {
    check("softmax_log_likelihood", |v, c| {
        let z = v[0];
        let y = z
            .tape()
            .constant_var(one_hot(&indices(&c["labels"]), 5, &[4, 5]));
        z.softmax_log_likelihood(y)
    });
}

#[test]
fn two_layer_mlp() {
    // Inputs in alphabetical order: b1, b2, w1, w2.
    check("mlp", |v, c| {
        let (b1, b2, w1, w2) = (v[0], v[1], v[2], v[3]);
        let tape = w1.tape();
        let x = tape.constant_var(tensor(&c["x"]));
        let y = tape.constant_var(one_hot(&indices(&c["labels"]), 3, &[6, 3]));
        let h = (x.matmul_t(w1) + b1).tanh();
        (h.matmul_t(w2) + b2).softmax_log_likelihood(y)
    });
}

#[test]
fn broadcasting_through_every_binary_op() {
    check("broadcast", |v, _| {
        let (a, b, c) = (v[0], v[1], v[2]);
        (((a * b - c).tanh() + a.pow(c)) / (b * b + 1.0)).sum_all()
    });
}

#[test]
fn gather_with_repeated_indices() {
    check("gather", |v, c| {
        let emb = v[0];
        let w = emb.tape().constant_var(tensor(&c["w"]));
        (emb.index_select(&indices(&c["indices"])).sigmoid() * w).sum_all()
    });
}

#[test]
fn max_with_ties() {
    check("max_ties", |v, _| {
        let x = v[0];
        let tape = x.tape();
        let r = tape.constant_var(Tensor::from_vec([3], vec![1.0, 2.0, 3.0]).unwrap());
        let s = tape.constant_var(Tensor::from_vec([1, 4], vec![0.5, -1.0, 2.0, 1.5]).unwrap());
        (x.max(&[1], false) * r).sum_all() + (x.max(&[0], true) * s).sum_all()
    });
}

#[test]
fn sequence_log_likelihood_is_the_mean_over_n_and_t() {
    check("sequence", |v, c| {
        let (h, w) = (v[0], v[1]);
        let y = h
            .tape()
            .constant_var(one_hot(&indices(&c["labels"]), 4, &[2, 3, 4]));
        h.matmul_t(w).softmax_log_likelihood(y)
    });
}

#[test]
fn structural_ops_together() {
    check("structural", |v, _| {
        let (p, q) = (v[0], v[1]);
        let left = Var::concat(&[p.permute(&[0, 2, 1]).narrow(1, 1, 2), q], 1).log_softmax();
        let right = p.mean(&[0], true).narrow(2, 1, 3);
        left.matmul(right).exp().sum_all()
    });
}
