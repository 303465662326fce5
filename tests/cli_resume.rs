//! `train --resume`: the checkpoint remembers the run's files, so that what Ctrl-C says to
//! do (`--resume FILE`, nothing else) finishes the run and writes its model; settings that
//! would change the training are refused; Ctrl-C ends with status 130 and one clear line.

#![cfg(unix)]

use std::path::Path;
use std::process::Command;

mod common;
use common::{backprop, path_str, refused, stderr};

fn log_epochs(log: &Path) -> Vec<usize> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

/// A run of 2 epochs of 5, checkpointed, with a model, a log and a plot to write.
fn checkpointed(dir: &Path) -> std::path::PathBuf {
    let ck = dir.join("ck.safetensors");
    let o = backprop(&[
        "train",
        "--data",
        "xor:40",
        "--hidden",
        "4",
        "--epochs",
        "2",
        "--lr",
        "0.3",
        "--checkpoint",
        path_str(&ck),
        "--out",
        path_str(&dir.join("m.safetensors")),
        "--log",
        path_str(&dir.join("log.csv")),
        "--plot",
        path_str(&dir.join("curves.svg")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_file(dir.join("m.safetensors")).unwrap();
    ck
}

#[test]
fn resume_alone_finishes_the_run_into_the_remembered_files() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpointed(dir.path());
    // From another directory, with nothing but --resume and more epochs.
    let o = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(["train", "--resume", path_str(&ck), "--epochs", "5"])
        .current_dir("/")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("resuming at epoch 3 of 5"), "{err}");
    assert!(
        err.contains("epoch 3/5") && !err.contains("epoch 1/5"),
        "{err}"
    );
    let model = dir.path().join("m.safetensors");
    let m = backprop::model_file::load(&model).expect("the remembered --out was written");
    assert_eq!(m.network.sizes(), vec![2, 4, 2]);
    assert_eq!(m.metadata["train.lr"], "0.3");
    assert_eq!(log_epochs(&dir.path().join("log.csv")), vec![1, 2, 3, 4, 5]);
    let ckpt = backprop::model_file::load(&ck).unwrap();
    assert_eq!(
        ckpt.metadata["train.epochs"], "5",
        "the remembered --checkpoint was written"
    );

    // A flag given again wins over the checkpoint's.
    let other = dir.path().join("other.safetensors");
    let o = backprop(&[
        "train",
        "--resume",
        path_str(&ck),
        "--epochs",
        "6",
        "--out",
        path_str(&other),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(other.is_file());
}

#[test]
fn settings_that_would_change_the_training_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpointed(dir.path());
    let before = std::fs::read(&ck).unwrap();
    for (flags, needles) in [
        (&["--lr", "0.1"][..], &["--lr 0.1", "0.3"][..]),
        (&["--hidden", "8"], &["--hidden 8", "4"]),
        (&["--activation", "tanh"], &["--activation tanh", "sigmoid"]),
        (&["--cost", "quadratic"], &["--cost quadratic"]),
        (&["--optimizer", "adam"], &["--optimizer adam", "sgd"]),
        (&["--batch", "3"], &["--batch 3", "10"]),
        (&["--seed", "9"], &["--seed 9"]),
        (&["--dtype", "f64"], &["--dtype f64", "f32"]),
        (&["--scale", "none"], &["--scale none", "auto"]),
        (&["--epochs", "1"], &["--epochs 1", "2 epochs"]),
    ] {
        let mut args = vec!["train", "--resume", path_str(&ck)];
        args.extend(flags);
        refused(&backprop(&args), needles);
    }
    assert_eq!(
        std::fs::read(&ck).unwrap(),
        before,
        "a refused run wrote the checkpoint"
    );
    // The checkpoint's own values are no change.
    let o = backprop(&[
        "train",
        "--resume",
        path_str(&ck),
        "--lr",
        "0.3",
        "--hidden",
        "4",
        "--epochs",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn resuming_a_model_file_says_it_is_not_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.safetensors");
    let o = backprop(&[
        "train",
        "--data",
        "xor:40",
        "--hidden",
        "4",
        "--epochs",
        "1",
        "--out",
        path_str(&m),
    ]);
    assert!(o.status.success());
    refused(
        &backprop(&["train", "--resume", path_str(&m)]),
        &[
            "--resume",
            "m.safetensors",
            "is a model file, not a checkpoint",
        ],
    );
}

#[test]
fn ctrl_c_exits_130_with_one_line_and_resume_alone_writes_the_model() {
    interrupted_run_resumes("-INT");
}

#[test]
fn sigterm_saves_the_run_as_ctrl_c_does() {
    // What `kill`, `timeout` and batch schedulers send.
    interrupted_run_resumes("-TERM");
}

/// Sends `signal` to a run after its first epoch: exit 130, one line naming the
/// checkpoint, and `--resume` alone finishes the run into the remembered files.
fn interrupted_run_resumes(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (model, log) = (dir.path().join("m.safetensors"), dir.path().join("log.csv"));
    let child = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args([
            "train",
            "--data",
            "spirals:4000",
            "--hidden",
            "32",
            "--epochs",
            "100000",
        ])
        .args(["--out", path_str(&model), "--log", path_str(&log)])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The log appears after epoch 1: interrupt then.
    let start = std::time::Instant::now();
    while !log.exists() {
        assert!(start.elapsed().as_secs() < 120, "no log after 2 minutes");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(!err.contains("error"), "{err}");
    assert!(!model.exists(), "an interrupted run wrote the model");
    // The checkpoint has the name --help promises: m.checkpoint.safetensors beside --out.
    let ck = dir.path().join("m.checkpoint.safetensors");
    let last = err.trim_end().lines().last().unwrap();
    let expected = format!("; checkpoint saved: go on with --resume {}", path_str(&ck));
    assert!(
        last.starts_with("interrupted after epoch ") && last.ends_with(&expected),
        "{last}"
    );
    let done: usize = last["interrupted after epoch ".len()..]
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(log_epochs(&log).len(), done);

    let total = (done + 1).to_string();
    let o = backprop(&["train", "--resume", path_str(&ck), "--epochs", &total]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = backprop::model_file::load(&model).expect("resume wrote the remembered --out");
    assert_eq!(m.network.sizes(), vec![2, 32, 2]);
    assert_eq!(log_epochs(&log), (1..=done + 1).collect::<Vec<_>>());
}

#[test]
fn a_checkpoint_without_the_run_record_still_resumes_on_its_data_and_split() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck.safetensors");
    let o = backprop(&[
        "train",
        "--data",
        "xor:40",
        "--test-split",
        "0.5",
        "--hidden",
        "4",
        "--epochs",
        "2",
        "--checkpoint",
        path_str(&ck),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // As an older version wrote it: no run.* keys, only `data` and `data.test_split`.
    let (tensors, mut meta) = backprop::model_file::read_tensors(&ck).unwrap();
    meta.retain(|k, _| !k.starts_with("run."));
    assert_eq!(
        (meta["data"].as_str(), meta["data.test_split"].as_str()),
        ("xor:40", "0.5")
    );
    let values: Vec<(String, Vec<usize>, Vec<f32>)> = tensors
        .into_iter()
        .map(|(n, (shape, v))| (n, shape, v.into_iter().map(|x| x as f32).collect()))
        .collect();
    let named: Vec<(&str, &[usize], &[f32])> = values
        .iter()
        .map(|(n, sh, v)| (n.as_str(), sh.as_slice(), v.as_slice()))
        .collect();
    let meta: Vec<(String, String)> = meta.into_iter().collect();
    backprop::model_file::save_tensors(&ck, &named, &meta).unwrap();

    let o = backprop(&["train", "--resume", path_str(&ck), "--epochs", "3"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("on xor:40 (19 train, 21 test examples)"),
        "{err}"
    );
}
