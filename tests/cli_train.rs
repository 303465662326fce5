//! `backprop train`, `eval` and `predict` through the binary: accuracy floors,
//! reproducibility, resume, and every refusal of bad input.

use std::path::Path;
use std::process::{Command, Output};

fn backprop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The last JSON line `train --json` prints: the run's summary.
fn summary(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "train failed: {}", stderr(o));
    let text = stdout(o);
    let last = text.lines().last().expect("a summary line");
    serde_json::from_str(last).expect("JSON")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A refusal: non-zero exit, one line on stderr that contains `needle`, no panic.
fn refused(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected a refusal, got success: {err}"
    );
    assert!(err.contains(needle), "message {err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(one_error(&err), "not one line: {err:?}");
}

#[test]
fn default_training_on_digits_reaches_the_accuracy_floor_and_eval_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let o = backprop(&["train", "--json", "--out", path_str(&model)]);
    let s = summary(&o);
    let acc = s["test_accuracy"].as_f64().unwrap();
    assert!(
        acc >= 0.96,
        "digits test accuracy {acc} below the 96% floor"
    );
    assert_eq!(s["epochs"], 30);
    for key in ["test_loss", "train_loss", "seconds"] {
        assert!(s[key].as_f64().unwrap().is_finite(), "{key}");
    }
    // One JSON object per epoch, then the summary.
    assert_eq!(stdout(&o).lines().count(), 31);

    let e = backprop(&["eval", "--model", path_str(&model), "--json"]);
    assert!(e.status.success(), "{}", stderr(&e));
    let e: serde_json::Value = serde_json::from_str(stdout(&e).trim()).unwrap();
    assert_eq!(e["accuracy"].as_f64().unwrap(), acc);
    assert_eq!(
        e["loss"].as_f64().unwrap(),
        s["test_loss"].as_f64().unwrap()
    );
    assert_eq!(e["n"], 359);
}

#[test]
fn same_seed_same_model_file_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    for p in [&a, &b] {
        let o = backprop(&[
            "train",
            "--epochs",
            "3",
            "--threads",
            "1",
            "--out",
            path_str(p),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let c = dir.path().join("c.safetensors");
    let o = backprop(&[
        "train",
        "--epochs",
        "3",
        "--seed",
        "2",
        "--out",
        path_str(&c),
    ]);
    assert!(o.status.success());
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

#[test]
fn resume_from_a_checkpoint_equals_the_uninterrupted_run() {
    for flags in [
        &["--optimizer", "sgd"][..],
        &["--optimizer", "adam", "--patience", "2"][..],
        &["--optimizer", "nesterov", "--lr", "0.05", "--dtype", "f64"][..],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let full = dir.path().join("full.safetensors");
        let ckpt = dir.path().join("ckpt.safetensors");
        let resumed = dir.path().join("resumed.safetensors");
        let mut args = vec!["train", "--epochs", "8", "--out", path_str(&full)];
        args.extend(flags);
        assert!(backprop(&args).status.success());
        let mut args = vec!["train", "--epochs", "3", "--checkpoint", path_str(&ckpt)];
        args.extend(flags);
        assert!(backprop(&args).status.success());
        let mut args = vec!["train", "--resume", path_str(&ckpt), "--epochs", "8"];
        args.extend(["--out", path_str(&resumed)]);
        if flags.contains(&"f64") {
            args.extend(["--dtype", "f64"]);
        }
        let o = backprop(&args);
        assert!(o.status.success(), "{flags:?}: {}", stderr(&o));
        assert!(
            same_bytes(&full, &resumed),
            "resumed run differs for {flags:?}"
        );
    }
}

#[test]
fn ctrl_c_saves_a_checkpoint_that_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt.safetensors");
    // Many epochs of a larger synthetic set, so that the interrupt lands mid-run.
    let common = [
        "--data",
        "spirals:20000",
        "--hidden",
        "64",
        "--lr",
        "0.1",
        "--seed",
        "5",
    ];
    let child = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(["train", "--epochs", "1000"])
        .args(common)
        .args(["--checkpoint", path_str(&ckpt)])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first checkpoint appears after epoch 1: interrupt then.
    let start = std::time::Instant::now();
    while !ckpt.exists() {
        assert!(
            start.elapsed().as_secs() < 120,
            "no checkpoint after 2 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "an interrupted run must not exit 0");
    let line = err
        .lines()
        .find(|l| l.contains("interrupted after epoch"))
        .unwrap_or_else(|| panic!("no interruption message in {err}"));
    let done: usize = line
        .split("interrupted after epoch ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the epoch from {line}"));
    assert!((1..1000).contains(&done));

    let total = (done + 2).to_string();
    let resumed = dir.path().join("resumed.safetensors");
    let o = backprop(&[
        "train",
        "--resume",
        path_str(&ckpt),
        "--epochs",
        &total,
        "--data",
        "spirals:20000",
        "--out",
        path_str(&resumed),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let full = dir.path().join("full.safetensors");
    let mut args = vec!["train", "--epochs", &total, "--out", path_str(&full)];
    args.extend(common);
    assert!(backprop(&args).status.success());
    // The interrupted run planned 1000 epochs, the others `total`: the constant schedule
    // makes that irrelevant, so the models must be the same but for the planned count.
    let strip = |p: &Path| {
        let m = backprop::model_file::load(p).unwrap();
        (m.network, m.metadata.get("test_accuracy").cloned())
    };
    assert_eq!(strip(&full), strip(&resumed));
}

#[test]
fn log_plot_and_predict() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let log = dir.path().join("metrics.csv");
    let svg = dir.path().join("curves.svg");
    let png = dir.path().join("confusion.png");
    let o = backprop(&[
        "train",
        "--epochs",
        "4",
        "--out",
        path_str(&model),
        "--log",
        path_str(&log),
        "--plot",
        path_str(&svg),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(&log).unwrap();
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.starts_with("epoch,lr,train_loss,test_loss,test_accuracy,seconds\n"));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let e = backprop(&[
        "eval",
        "--model",
        path_str(&model),
        "--plot",
        path_str(&png),
    ]);
    assert!(e.status.success(), "{}", stderr(&e));
    assert!(stdout(&e).contains("accuracy"));
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");

    // Predict the first rows of the digits (raw 0..16 pixels: the model scales them as in
    // training); their labels are 0, 1, 2, 3, 4.
    let digits = backprop::data::digits::load();
    assert_eq!(digits.labels[..5], [0, 1, 2, 3, 4]);
    let rows: Vec<String> = (0..5)
        .map(|i| {
            let cells: Vec<String> = digits.input(i).iter().map(|v| v.to_string()).collect();
            cells.join(",")
        })
        .collect();
    let input = dir.path().join("x.csv");
    std::fs::write(&input, rows.join("\n")).unwrap();
    let p = backprop(&[
        "predict",
        "--model",
        path_str(&model),
        "--input",
        path_str(&input),
    ]);
    assert!(p.status.success(), "{}", stderr(&p));
    assert_eq!(stdout(&p), "0\n1\n2\n3\n4\n");
    let p = backprop(&[
        "predict",
        "--model",
        path_str(&model),
        "--input",
        path_str(&input),
        "--probs",
    ]);
    for line in stdout(&p).lines() {
        let cells: Vec<f64> = line.split(',').map(|c| c.parse().unwrap()).collect();
        assert_eq!(cells.len(), 11);
        let total: f64 = cells[1..].iter().sum();
        assert!((total - 1.0).abs() < 1e-5, "softmax outputs sum to {total}");
    }
}

#[test]
fn bad_flags_are_refused_before_training_and_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let o = path_str(&out);
    for (flags, needle) in [
        (&["--lr", "-1"][..], "--lr"),
        (&["--lr", "nan"], "--lr"),
        (&["--batch", "0"], "--batch"),
        (&["--epochs", "0"], "--epochs"),
        (&["--hidden", "0"], "--hidden"),
        (&["--hidden", "30,x"], "--hidden"),
        (&["--momentum", "1.5"], "--momentum"),
        (&["--test-split", "1.5"], "--test-split"),
        (&["--activation", "swish"], "swish"),
        (&["--schedule", "weekly"], "--schedule"),
        (&["--data", "nowhere.csv"], "nowhere.csv"),
        (&["--plot", "curves.pdf"], "--plot"),
        (&["--dtype", "f16"], "--dtype"),
        (&["--threads", "0"], "--threads"),
    ] {
        let mut args = vec!["train", "--out", o];
        args.extend(flags);
        refused(&backprop(&args), needle);
    }
    let missing = dir.path().join("no/such/dir/m.safetensors");
    refused(
        &backprop(&["train", "--out", path_str(&missing)]),
        "does not exist",
    );
    assert!(!out.exists(), "a refused run left a model file");
}

#[test]
fn divergence_names_the_epoch_and_leaves_no_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let o = backprop(&[
        "train",
        "--cost",
        "quadratic",
        "--output-activation",
        "identity",
        "--lr",
        "1e10",
        "--out",
        path_str(&out),
    ]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("epoch 1") && err.contains("lower --lr"),
        "{err}"
    );
    assert!(
        !out.exists(),
        "a run that failed before any good epoch left a model"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "temporary files left behind"
    );
}

#[test]
fn bad_data_files_name_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("train.csv");
    std::fs::write(&csv, "1,0.5,0.5\n0,0.1,0.2\n1,0.3\n").unwrap();
    refused(&backprop(&["train", "--data", path_str(&csv)]), "line 3");
    std::fs::write(&csv, "1,0.5,0.5\n0,0.1,abc\n").unwrap();
    let o = backprop(&["train", "--data", path_str(&csv)]);
    refused(&o, "train.csv");
    assert!(stderr(&o).contains("column 3"), "{}", stderr(&o));
    std::fs::write(&csv, "").unwrap();
    refused(&backprop(&["train", "--data", path_str(&csv)]), "train.csv");
    // An IDX directory whose images file is truncated.
    let idx = dir.path().join("mnist");
    std::fs::create_dir(&idx).unwrap();
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 100, 0, 0, 0, 28, 0, 0, 0, 28];
    images.extend([0u8; 50]);
    std::fs::write(idx.join("train-images-idx3-ubyte"), &images).unwrap();
    std::fs::write(
        idx.join("train-labels-idx1-ubyte"),
        [0, 0, 8, 1, 0, 0, 0, 100],
    )
    .unwrap();
    std::fs::write(idx.join("t10k-images-idx3-ubyte"), &images).unwrap();
    std::fs::write(
        idx.join("t10k-labels-idx1-ubyte"),
        [0, 0, 8, 1, 0, 0, 0, 100],
    )
    .unwrap();
    refused(
        &backprop(&["train", "--data", path_str(&idx)]),
        "train-images-idx3-ubyte",
    );
}

#[test]
fn a_model_and_data_of_different_sizes_say_both_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    assert!(
        backprop(&["train", "--epochs", "1", "--out", path_str(&model)])
            .status
            .success()
    );
    let o = backprop(&["eval", "--model", path_str(&model), "--data", "xor"]);
    refused(&o, "64 inputs");
    assert!(stderr(&o).contains("2 features"), "{}", stderr(&o));
    let x = dir.path().join("x.csv");
    std::fs::write(&x, "1,2,3\n").unwrap();
    refused(
        &backprop(&[
            "predict",
            "--model",
            path_str(&model),
            "--input",
            path_str(&x),
        ]),
        "64 inputs",
    );
    refused(&backprop(&["eval", "--model", path_str(&x)]), "x.csv");
}

/// One error: a single line of ours, or clap's usage error (its first line names the flag,
/// then clap's own hints: possible values, a similar flag, "try '--help'").
fn one_error(err: &str) -> bool {
    let err = err.trim_end();
    err.lines().count() == 1
        || (err.starts_with("error: ") && err.ends_with("For more information, try '--help'."))
}
