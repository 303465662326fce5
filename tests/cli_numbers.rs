//! Through the binary: sizes that flags or files ask for, numbers beyond the precision,
//! divergence, single-class data and the form of `eval --json`'s confusion counts.

mod common;
use common::{backprop, path_str, refused, stderr, stdout};

#[test]
fn absurd_batches_and_layers_are_refused_and_large_batches_cut() {
    refused(
        &backprop(&["train", "--batch", "18446744073709551615"]),
        &["--batch 18446744073709551615", "1000000000"],
    );
    // Larger than the 150 training examples: cut to them (it used to abort).
    let o = backprop(&[
        "train",
        "--data",
        "moons:200",
        "--batch",
        "100000000",
        "--epochs",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (hidden, needle) in [
        ("100000000", "27.9 GiB"),
        ("18446744073709551615", "5.2e12 GiB"),
    ] {
        refused(
            &backprop(&["train", "--hidden", hidden]),
            &[&format!("--hidden {hidden}"), needle, "16 GiB"],
        );
    }
    refused(
        &backprop(&["gradcheck", "--batch", "18446744073709551615"]),
        &["--batch 18446744073709551615", "100000"],
    );
    // 99,999 inputs and a batch of 100,000: 80 GB of inputs alone.
    refused(
        &backprop(&["gradcheck", "--layers", "99999,1", "--batch", "100000"]),
        &["--batch 100000", "16 GiB"],
    );
}

#[test]
fn a_label_beyond_the_limit_names_the_file_and_the_label() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("big.csv");
    std::fs::write(&csv, "0,0.1,0.2\n60000,0.3,0.4\n1,0.5,0.6\n").unwrap();
    refused(
        &backprop(&["train", "--data", path_str(&csv)]),
        &["big.csv", "line 2", "60000"],
    );
}

#[test]
fn values_beyond_f32_are_refused_by_train_grad_and_predict() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("train.csv");
    let rows: String = (0..20)
        .map(|i| format!("{},{},{}\n", i % 2, i, -i))
        .collect();
    std::fs::write(&csv, format!("{rows}1,1e39,0\n")).unwrap();
    refused(
        &backprop(&["train", "--data", path_str(&csv)]),
        &["train.csv", "line 21, column 2", "1e39", "f32"],
    );
    std::fs::write(&csv, &rows).unwrap();
    let model = dir.path().join("m.safetensors");
    let o = backprop(&[
        "train",
        "--data",
        path_str(&csv),
        "--epochs",
        "1",
        "--out",
        path_str(&model),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let x = dir.path().join("x.csv");
    std::fs::write(&x, "1,2\n3,1e39\n").unwrap();
    let y = dir.path().join("y.csv");
    std::fs::write(&y, "1,0\n0,1\n").unwrap();
    refused(
        &backprop(&[
            "predict",
            "--model",
            path_str(&model),
            "--input",
            path_str(&x),
        ]),
        &["x.csv", "line 2, column 2", "f32"],
    );
    refused(
        &backprop(&[
            "grad",
            "--model",
            path_str(&model),
            "--inputs",
            path_str(&x),
            "--targets",
            path_str(&y),
        ]),
        &["x.csv", "line 2, column 2", "f32"],
    );
}

#[test]
fn a_diverging_run_fails_says_why_in_json_and_saves_nothing_infinite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let o = backprop(&[
        "train",
        "--data",
        "moons:200",
        "--hidden",
        "8",
        "--lr",
        "1e12",
        "--epochs",
        "5",
        "--json",
        "--out",
        path_str(&out),
    ]);
    assert!(!o.status.success(), "a run at --lr 1e12 succeeded");
    let err = stderr(&o);
    assert!(
        err.contains("try a lower --lr (it was 1000000000000)"),
        "{err}"
    );
    let text = stdout(&o);
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["stopped"], "diverged");
    assert!(
        last["reason"].as_str().unwrap().contains("lower --lr"),
        "{last}"
    );
    if out.exists() {
        // Whatever was kept loads, so its weights are finite, and its loss is finite.
        let e = backprop(&[
            "eval",
            "--model",
            path_str(&out),
            "--data",
            "moons:200",
            "--json",
        ]);
        assert!(e.status.success(), "{}", stderr(&e));
        let e: serde_json::Value = serde_json::from_str(stdout(&e).trim()).unwrap();
        assert!(e["loss"].as_f64().unwrap().is_finite());
    }
}

#[test]
fn a_single_class_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("one.csv");
    let rows: String = (0..20).map(|i| format!("3,{i},{}\n", i * i)).collect();
    std::fs::write(&csv, rows).unwrap();
    let o = backprop(&["train", "--data", path_str(&csv), "--epochs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: --data") && stderr(&o).contains("label 3"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn eval_json_has_the_square_confusion_and_its_sparse_entries() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let o = backprop(&["train", "--epochs", "2", "--out", path_str(&model)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = backprop(&["eval", "--model", path_str(&model), "--json"]);
    assert!(e.status.success(), "{}", stderr(&e));
    let e: serde_json::Value = serde_json::from_str(stdout(&e).trim()).unwrap();
    let n = e["n"].as_u64().unwrap();
    let matrix = e["confusion"].as_array().unwrap();
    assert_eq!(matrix.len(), 10);
    let mut dense = 0;
    let mut right = 0;
    for (t, row) in matrix.iter().enumerate() {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), 10);
        dense += row.iter().map(|c| c.as_u64().unwrap()).sum::<u64>();
        right += row[t].as_u64().unwrap();
    }
    assert_eq!(dense, n);
    assert!((right as f64 / n as f64 - e["accuracy"].as_f64().unwrap()).abs() < 1e-12);
    let mut sparse = 0;
    for entry in e["confusion_entries"].as_array().unwrap() {
        let [t, p, c] = [0, 1, 2].map(|i| entry[i].as_u64().unwrap() as usize);
        assert!(c > 0);
        assert_eq!(matrix[t][p].as_u64().unwrap() as usize, c);
        sparse += c as u64;
    }
    assert_eq!(sparse, n);
}
