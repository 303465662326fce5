//! Every file the commands write: never over a device, FIFO or directory; through a
//! symbolic link, not over it; never over an input or another output; no stale temporary
//! files; what `train` says about them; help texts; one-line errors.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;
use common::{backprop, path_str, refused, stderr};

/// A tiny run: 40 XOR points, one hidden layer of 4, two epochs.
const TINY: [&str; 6] = ["--data", "xor:40", "--hidden", "4", "--epochs", "2"];

fn train(extra: &[&str]) -> Output {
    let mut args = vec!["train"];
    args.extend(TINY);
    args.extend(extra);
    backprop(&args)
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo failed");
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// A model and a one-row batch for `eval`, `grad` and `predict`.
fn model_and_batch(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let model = dir.join("m.safetensors");
    assert!(train(&["--out", path_str(&model)]).status.success());
    let (x, y) = (dir.join("x.csv"), dir.join("y.csv"));
    std::fs::write(&x, "0.5,1\n").unwrap();
    std::fs::write(&y, "0,1\n").unwrap();
    (model, x, y)
}

#[test]
fn fifos_and_directories_are_refused_before_any_work_and_left_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.svg");
    mkfifo(&fifo);
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let (model, x, y) = model_and_batch(dir.path());
    let (f, d) = (path_str(&fifo), path_str(&sub));
    let runs: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["train", "--out", f], "--out", "FIFO"),
        (vec!["train", "--log", f], "--log", "FIFO"),
        (vec!["train", "--plot", f], "--plot", "FIFO"),
        (vec!["train", "--checkpoint", f], "--checkpoint", "FIFO"),
        (
            vec!["train", "--checkpoint", d],
            "--checkpoint",
            "directory",
        ),
        (vec!["train", "--out", d], "--out", "directory"),
        (
            vec![
                "grad",
                "--model",
                path_str(&model),
                "--inputs",
                path_str(&x),
                "--targets",
                path_str(&y),
                "--out",
                f,
            ],
            "--out",
            "FIFO",
        ),
        (
            vec![
                "eval",
                "--model",
                path_str(&model),
                "--data",
                "xor:40",
                "--plot",
                f,
            ],
            "--plot",
            "FIFO",
        ),
        (
            vec!["diff", "o = a * b", "--at", "a=2,b=3", "--dot", f],
            "--dot",
            "FIFO",
        ),
    ];
    for (mut args, flag, kind) in runs {
        if args[0] == "train" {
            // Thousands of epochs: a refusal that came after training would take minutes.
            args.extend(["--data", "xor:40", "--epochs", "100000"]);
        }
        let path = if kind == "FIFO" { f } else { d };
        let o = backprop(&args);
        refused(&o, &[flag, path, kind]);
        assert!(is_fifo(&fifo), "{args:?} replaced the FIFO");
        assert!(sub.is_dir());
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.contains(".tmp."))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn a_symlinked_output_writes_the_file_it_names_and_stays_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let target = runs.join("m1.safetensors");
    std::fs::write(&target, "an older model").unwrap();
    let link = dir.path().join("latest.safetensors");
    std::os::unix::fs::symlink("runs/m1.safetensors", &link).unwrap();
    let log_target = runs.join("log.csv");
    let log_link = dir.path().join("log.csv");
    std::os::unix::fs::symlink(&log_target, &log_link).unwrap(); // dangling until written
    let o = train(&["--out", path_str(&link), "--log", path_str(&log_link)]);
    assert!(o.status.success(), "{}", stderr(&o));
    for l in [&link, &log_link] {
        assert!(std::fs::symlink_metadata(l)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    let m = backprop::model_file::load(&target).expect("the link's target holds the model");
    assert_eq!(m.network.sizes(), vec![2, 4, 2]);
    assert_eq!(
        std::fs::read_to_string(&log_target)
            .unwrap()
            .lines()
            .count(),
        3
    );
}

#[test]
fn a_killed_runs_temporary_file_is_removed_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = dir.path().join(format!(".m.safetensors.{dead}.tmp"));
    std::fs::write(&stale, "half a model").unwrap();
    let out = dir.path().join("m.safetensors");
    assert!(train(&["--out", path_str(&out)]).status.success());
    assert!(out.is_file());
    assert!(!stale.exists(), "the stale temporary file is still there");
}

#[test]
fn an_output_that_is_an_input_or_another_output_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("d.csv");
    let test = d.join("t.csv");
    let rows: String = (0..40)
        .map(|i| format!("{},{}.0,{}.5\n", i % 2, i, i % 7))
        .collect();
    std::fs::write(&data, &rows).unwrap();
    std::fs::write(&test, &rows).unwrap();
    let dot_data = format!("{}/./d.csv", path_str(d));
    let m = d.join("m.safetensors");
    let ck = d.join("ck.safetensors");
    let idx = d.join("mnist");
    std::fs::create_dir(&idx).unwrap();
    let idx_file = idx.join("t10k-labels-idx1-ubyte");
    let csv = ["--data", path_str(&data)];
    let cases: Vec<(Vec<&str>, [&str; 2])> = vec![
        (vec!["--out", path_str(&data)], ["--out", "is also --data"]),
        (vec!["--out", &dot_data], ["--out", "is also --data"]),
        (vec!["--log", path_str(&data)], ["--log", "is also --data"]),
        (
            vec!["--checkpoint", path_str(&data)],
            ["--checkpoint", "is also --data"],
        ),
        (
            vec!["--test", path_str(&test), "--log", path_str(&test)],
            ["--log", "is also --test"],
        ),
        (
            vec!["--out", path_str(&m), "--log", path_str(&m)],
            ["--log", "is also --out"],
        ),
    ];
    for (flags, needles) in cases {
        let mut args = vec!["train", "--epochs", "100000"];
        args.extend(csv);
        args.extend(flags);
        refused(&backprop(&args), &needles);
        assert_eq!(std::fs::read_to_string(&data).unwrap(), rows);
        assert_eq!(std::fs::read_to_string(&test).unwrap(), rows);
        assert!(!m.exists());
    }
    // A file of an IDX directory is data too.
    refused(
        &backprop(&[
            "train",
            "--data",
            path_str(&idx),
            "--log",
            path_str(&idx_file),
        ]),
        &["--log", "is also --data"],
    );
    // The checkpoint resumed from may not become the model.
    assert!(train(&["--checkpoint", path_str(&ck)]).status.success());
    let before = std::fs::read(&ck).unwrap();
    refused(
        &backprop(&[
            "train",
            "--resume",
            path_str(&ck),
            "--epochs",
            "3",
            "--out",
            path_str(&ck),
        ]),
        &["--out", "is also --resume"],
    );
    assert_eq!(std::fs::read(&ck).unwrap(), before);

    let (model, x, y) = model_and_batch(d);
    let grad = |out: &Path| {
        backprop(&[
            "grad",
            "--model",
            path_str(&model),
            "--inputs",
            path_str(&x),
            "--targets",
            path_str(&y),
            "--out",
            path_str(out),
        ])
    };
    refused(&grad(&x), &["--out", "is also --inputs"]);
    refused(&grad(&model), &["--out", "is also --model"]);
    assert_eq!(std::fs::read_to_string(&x).unwrap(), "0.5,1\n");
    let png_model = d.join("m.png");
    std::fs::copy(&model, &png_model).unwrap();
    let o = backprop(&[
        "eval",
        "--model",
        path_str(&png_model),
        "--data",
        "xor:40",
        "--plot",
        path_str(&png_model),
    ]);
    refused(&o, &["--plot", "is also --model"]);
    assert!(backprop::model_file::load(&png_model).is_ok());
    let program = d.join("p.dot");
    std::fs::write(&program, "o = a * b").unwrap();
    let o = backprop(&[
        "diff",
        "--file",
        path_str(&program),
        "--at",
        "a=2,b=3",
        "--dot",
        path_str(&program),
    ]);
    refused(&o, &["--dot", "is also --file"]);
    assert_eq!(std::fs::read_to_string(&program).unwrap(), "o = a * b");
}

#[test]
fn train_says_where_its_files_went_and_which_epoch_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let o = backprop(&[
        "train", "--data", "xor:40", "--hidden", "4", "--epochs", "1",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("the model is not saved") && err.contains("--out"),
        "{err}"
    );
    assert!(err.contains("after 1 epoch in"), "{err}");
    assert!(!err.contains("1 epochs"), "{err}");
    let header = err.lines().next().unwrap();
    for word in ["sigmoid", "log-likelihood", "uniform"] {
        assert!(header.contains(word), "header {header:?} lacks {word}");
    }

    let (m, log, plot) = (
        dir.path().join("m.safetensors"),
        dir.path().join("l.csv"),
        dir.path().join("p.svg"),
    );
    let o = backprop(&[
        "train",
        "--data",
        "xor:40",
        "--hidden",
        "4",
        "--out",
        path_str(&m),
        "--log",
        path_str(&log),
        "--plot",
        path_str(&plot),
        "--epochs",
        "12",
        "--patience",
        "2",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    for line in [
        format!("model saved to {}", path_str(&m)),
        format!("log written to {}", path_str(&log)),
        format!("plot written to {}", path_str(&plot)),
    ] {
        assert!(err.contains(&line), "{err} lacks {line}");
    }
    // The kept epoch is the first with the best validation accuracy in the log (--patience
    // cuts a validation part and watches it, never the test part).
    let text = std::fs::read_to_string(&log).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "validation_accuracy")
        .expect("a validation column");
    let rows: Vec<(usize, f64)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[col].parse().unwrap())
        })
        .collect();
    let best = rows
        .iter()
        .fold(rows[0], |b, &r| if r.1 > b.1 { r } else { b });
    let line = format!(
        "kept the model of epoch {}, the best validation accuracy",
        best.0
    );
    assert!(err.contains(&line), "{err} lacks {line}");
}

#[test]
fn a_closed_standard_error_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    // `backprop train 2>&1 | head -1`: standard error's reader has gone.
    // The read end is closed before the child starts, so no write can win a race with it.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args([
            "train", "--data", "xor:40", "--hidden", "4", "--epochs", "20",
        ])
        .args(["--out", path_str(&model)])
        .stdout(Stdio::null())
        .stderr(writer)
        .status()
        .unwrap();
    assert_ne!(
        status.code(),
        Some(101),
        "panicked on a closed standard error"
    );
    assert_eq!(status.code(), Some(141));
    assert!(backprop::model_file::load(&model).is_ok());
}

#[test]
fn help_lists_values_and_says_nothing_internal() {
    let train = String::from_utf8(backprop(&["train", "--help"]).stdout).unwrap();
    for needle in [
        "[possible values: identity, sigmoid",
        "[possible values: quadratic, cross-entropy, log-likelihood]",
        "[possible values: large, scaled, xavier, he, uniform]",
        "[possible values: sgd, momentum, nesterov, adam, adamw]",
        "[possible values: auto, none, standardize]",
        "f64",
        "xor:N",
        "\"\" for none",
        "m.checkpoint.safetensors",
        "symbolic link",
    ] {
        assert!(train.contains(needle), "train --help lacks {needle}");
    }
    for cmd in [
        "train",
        "eval",
        "predict",
        "grad",
        "gradcheck",
        "bench",
        "demo",
    ] {
        let o = backprop(&[cmd, "--help"]);
        let help = String::from_utf8(o.stdout).unwrap();
        assert!(o.status.success(), "{cmd} --help");
        for word in ["issue #", "seed's", "the seed "] {
            assert!(!help.contains(word), "{cmd} --help says {word:?}:\n{help}");
        }
    }
    let top = String::from_utf8(backprop(&["--help"]).stdout).unwrap();
    assert!(!top.contains("issue #") && !top.contains("seed's"), "{top}");
}

#[test]
fn errors_name_each_cause_once_and_quote_files_briefly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    let o = backprop(&["eval", "--model", path_str(&missing)]);
    refused(&o, &["nope.safetensors"]);
    assert_eq!(
        stderr(&o).matches("os error 2").count(),
        1,
        "{}",
        stderr(&o)
    );
    let o = backprop(&["train", "--data", "xor:0"]);
    refused(&o, &["--data \"xor:0\""]);
    assert_eq!(stderr(&o).matches("--data").count(), 1, "{}", stderr(&o));

    // A model whose `layers` metadata is 200 KB: the error quotes a line of it, no more.
    let model = dir.path().join("m.safetensors");
    assert!(train(&["--out", path_str(&model)]).status.success());
    let huge = "7,".repeat(100_000);
    // `layers` is written from the network; patch the bytes of a saved file instead.
    let bytes = std::fs::read(&model).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("\"layers\":\"2,4,2\""));
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    let mut patched = header
        .trim_end()
        .replace("\"layers\":\"2,4,2\"", &format!("\"layers\":\"{huge}\""));
    while patched.len() % 8 != 0 {
        patched.push(' ');
    }
    let mut out = (patched.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(patched.as_bytes());
    out.extend_from_slice(&bytes[8 + header_len..]);
    std::fs::write(&model, out).unwrap();
    let o = backprop(&["eval", "--model", path_str(&model), "--data", "xor:40"]);
    refused(&o, &["layers", "..."]);
    assert!(
        stderr(&o).len() < 600,
        "{} bytes of error",
        stderr(&o).len()
    );
}

#[test]
fn the_progress_bar_starts_at_0_of_the_number_of_batches_not_0_of_0() {
    // The bar is drawn only on a terminal: `script` (util-linux) gives the run one.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("no `script` command: skipped");
        return;
    }
    let cmd = format!(
        "{} train --data xor:200 --hidden 4 --epochs 2",
        env!("CARGO_BIN_EXE_backprop")
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&o.stdout).replace('\r', "\n");
    assert!(o.status.success(), "{screen}");
    // 160 training examples in batches of 10.
    assert!(screen.contains("0/16 batches"), "{screen}");
    assert!(!screen.contains("0/0 batches"), "{screen}");
}
