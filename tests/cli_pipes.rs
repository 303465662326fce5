//! A reader that closes standard output early (`backprop train --json | head -1`) never
//! costs the files the command writes: the command finishes, writes them, and exits with
//! 141 (128 + SIGPIPE) instead of panicking with 101.

use std::process::{Command, Stdio};

/// Runs the binary with a standard output whose reader has already gone: the read end is
/// closed before the child starts, so every write it makes fails, however it is scheduled.
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("the binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn train_with_a_closed_pipe_still_writes_the_model_and_exits_141() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let log = dir.path().join("m.csv");
    let (code, err) = with_closed_stdout(&[
        "train",
        "--json",
        "--epochs",
        "2",
        "--out",
        model.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
    ]);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(code, Some(141), "{err}");
    let loaded = backprop::model_file::load(&model).expect("the model was written whole");
    assert_eq!(loaded.network.sizes(), vec![64, 30, 10]);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 3);
}

#[test]
fn every_printing_command_survives_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let m = model.to_str().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(["train", "--epochs", "1", "--out", m])
        .output()
        .unwrap();
    assert!(o.status.success());
    let rows = dir.path().join("x.csv");
    let targets = dir.path().join("y.csv");
    std::fs::write(&rows, format!("{}\n", vec!["1"; 64].join(","))).unwrap();
    std::fs::write(&targets, "0,0,0,1,0,0,0,0,0,0\n").unwrap();
    let (x, y) = (rows.to_str().unwrap(), targets.to_str().unwrap());
    let dot = dir.path().join("g.dot");
    let grads = dir.path().join("g.safetensors");
    let runs: Vec<Vec<&str>> = vec![
        vec!["eval", "--model", m],
        vec!["predict", "--model", m, "--input", x],
        vec!["grad", "--model", m, "--inputs", x, "--targets", y],
        vec!["gradcheck"],
        vec!["demo"],
        vec!["demo", "--network"],
        vec![
            "diff",
            "c = a + b; d = a * b; o = 0.5 * c * d",
            "--at",
            "a=2,b=3",
            "--paths",
            "--dot",
            dot.to_str().unwrap(),
        ],
    ];
    for args in runs {
        let (code, err) = with_closed_stdout(&args);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(code, Some(141), "{args:?}: {err}");
    }
    // `grad --out` prints its summary on standard error, so it runs to the end as usual.
    let o = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(["grad", "--model", m, "--inputs", x, "--targets", y])
        .args(["--out", grads.to_str().unwrap()])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success());
    // The files of the commands that write one are whole.
    assert!(std::fs::read_to_string(&dot)
        .unwrap()
        .starts_with("digraph"));
    assert!(backprop::model_file::read_tensors(&grads).is_ok());
}
