//! `backprop grad` through the binary reproduces PyTorch float64 autograd: the loss, the
//! batch gradients and the per-example gradients (fixtures from
//! `tests/fixtures/make_torch_fixtures.py`), in the model's precision.

use std::path::Path;
use std::process::{Command, Output};

use backprop::linalg::Matrix;
use backprop::model_file::{self, bias_name, read_tensors, weight_name};
use backprop::network::{Layer, Network};
use serde_json::Value;

fn backprop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not a number: {other}"),
    }
}

fn csv(values: &[f64], cols: usize) -> String {
    values
        .chunks(cols)
        .map(|r| {
            r.iter()
                .map(|v| format!("{v:e}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn assert_all_close(found: &[f64], expected: &[f64], what: &str) {
    assert_eq!(found.len(), expected.len(), "{what}: length");
    for (i, (a, b)) in found.iter().zip(expected).enumerate() {
        assert!(close(*a, *b), "{what}[{i}]: backprop {a} vs PyTorch {b}");
    }
}

/// The fixture's network, saved as a model file in `dir`; returns the file and the sizes.
fn model_from(fixture: &Value, dir: &Path) -> (std::path::PathBuf, Vec<usize>) {
    let sizes: Vec<usize> = fixture["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap() as usize)
        .collect();
    let layers = fixture["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(fixture["activations"].as_array().unwrap())
        .enumerate()
        .map(|(i, (l, act))| Layer {
            weights: Matrix::from_vec(sizes[i + 1], sizes[i], floats(&l["weight"])).unwrap(),
            biases: floats(&l["bias"]),
            activation: act.as_str().unwrap().parse().unwrap(),
        })
        .collect();
    let cost = fixture["cost"].as_str().unwrap().parse().unwrap();
    let net = Network::from_layers(layers, cost).unwrap();
    let path = dir.join("model.safetensors");
    model_file::save(&net, &path, &[]).unwrap();
    (path, sizes)
}

#[test]
fn grad_reproduces_pytorch_float64_autograd() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir("tests/fixtures").unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("torch_") && name.ends_with(".json")) {
            continue;
        }
        let fixture: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let (model, sizes) = model_from(&fixture, dir.path());
        let (x, y) = (dir.path().join("x.csv"), dir.path().join("y.csv"));
        std::fs::write(&x, csv(&floats(&fixture["x"]), sizes[0])).unwrap();
        std::fs::write(&y, csv(&floats(&fixture["y"]), *sizes.last().unwrap())).unwrap();
        let out = dir.path().join("g.safetensors");
        let o = backprop(&[
            "grad",
            "--model",
            model.to_str().unwrap(),
            "--inputs",
            x.to_str().unwrap(),
            "--targets",
            y.to_str().unwrap(),
            "--per-example",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let (tensors, _) = read_tensors(&out).unwrap();
        let get = |t: &str| {
            tensors
                .get(t)
                .unwrap_or_else(|| panic!("{name}: no {t}"))
                .1
                .clone()
        };
        assert_all_close(&get("loss"), &[fixture["loss"].as_f64().unwrap()], &name);
        for (i, g) in fixture["grad"].as_array().unwrap().iter().enumerate() {
            assert_all_close(
                &get(&format!("grad.{}", weight_name(i))),
                &floats(&g["weight"]),
                &name,
            );
            assert_all_close(
                &get(&format!("grad.{}", bias_name(i))),
                &floats(&g["bias"]),
                &name,
            );
        }
        let losses = floats(&fixture["losses"]);
        for (n, per) in fixture["per_example"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            assert_all_close(&get(&format!("per_example.{n}.loss")), &[losses[n]], &name);
            for (i, g) in per.as_array().unwrap().iter().enumerate() {
                let w = get(&format!("per_example.{n}.grad.{}", weight_name(i)));
                assert_all_close(&w, &floats(&g["weight"]), &name);
                let b = get(&format!("per_example.{n}.grad.{}", bias_name(i)));
                assert_all_close(&b, &floats(&g["bias"]), &name);
            }
        }

        // The JSON form carries the same numbers.
        let o = backprop(&[
            "grad",
            "--model",
            model.to_str().unwrap(),
            "--inputs",
            x.to_str().unwrap(),
            "--targets",
            y.to_str().unwrap(),
            "--json",
        ]);
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_all_close(
            &[j["loss"].as_f64().unwrap()],
            &[fixture["loss"].as_f64().unwrap()],
            &name,
        );
        assert_all_close(
            &floats(&j["grad.layers.0.weight"]),
            &floats(&fixture["grad"][0]["weight"]),
            &name,
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} fixtures found");
}

#[test]
fn grad_refuses_batches_that_do_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/torch_figure2_quadratic_sigmoid.json").unwrap(),
    )
    .unwrap();
    let (model, _) = model_from(&fixture, dir.path());
    let m = model.to_str().unwrap();
    let (x, y) = (dir.path().join("x.csv"), dir.path().join("y.csv"));
    let (xs, ys) = (x.to_str().unwrap(), y.to_str().unwrap());
    let refused = |args: &[&str], needle: &str| {
        let o = backprop(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{args:?}: {err}"
        );
        assert!(one_error(&err), "{err}");
    };
    std::fs::write(&x, "1,2,3\n").unwrap();
    std::fs::write(&y, "1,0,0\n").unwrap();
    refused(
        &["grad", "--model", m, "--inputs", xs, "--targets", ys],
        "2 inputs",
    );
    std::fs::write(&x, "1,2\n3,4\n").unwrap();
    refused(
        &["grad", "--model", m, "--inputs", xs, "--targets", ys],
        "--targets has 1 rows",
    );
    std::fs::write(&y, "1,0\n0,1\n").unwrap();
    refused(
        &["grad", "--model", m, "--inputs", xs, "--targets", ys],
        "3 outputs",
    );
    std::fs::write(&y, "1,0,0\n0,nan,1\n").unwrap();
    refused(
        &["grad", "--model", m, "--inputs", xs, "--targets", ys],
        "y.csv",
    );
    let bad_out = dir.path().join("missing/g.safetensors");
    std::fs::write(&y, "1,0,0\n0,1,0\n").unwrap();
    refused(
        &[
            "grad",
            "--model",
            m,
            "--inputs",
            xs,
            "--targets",
            ys,
            "--out",
            bad_out.to_str().unwrap(),
        ],
        "does not exist",
    );
}

/// One error: a single line of ours, or clap's usage error (its first line names the flag,
/// then clap's own hints: possible values, a similar flag, "try '--help'").
fn one_error(err: &str) -> bool {
    let err = err.trim_end();
    err.lines().count() == 1
        || (err.starts_with("error: ") && err.ends_with("For more information, try '--help'."))
}
