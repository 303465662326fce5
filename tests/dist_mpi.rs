//! Data-parallel training on Open MPI (feature `mpi`): `mpirun -np N` of the example
//! program `dist_train` writes the same model file, byte for byte, for N = 1, 2, 3, 4 as
//! the program alone without MPI.
//!
//! Needs `mpirun` (Debian: `apt-get install openmpi-bin libopenmpi-dev`) and the example
//! built first: `cargo build --release --features mpi --example dist_train`, then
//! `cargo test --release --features mpi --test dist_mpi`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The example program, built beside this test (target/<profile>/examples/).
fn program() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(Path::parent).unwrap();
    profile.join("examples").join("dist_train")
}

/// `mpirun`'s path, or `None` (with a message) when it is missing.
fn mpirun() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("mpirun"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!(
            "skipped: mpirun not found; install Open MPI (Debian: apt-get install -y --no-install-recommends openmpi-bin libopenmpi-dev libclang-dev)"
        );
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}\n{stderr}");
    stdout
}

fn mpi(mpirun: &Path, ranks: usize) -> Command {
    let mut c = Command::new(mpirun);
    c.args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(ranks.to_string())
        // One thread per rank: the machine has few cores and the ranks share them.
        .args(["-x", "RAYON_NUM_THREADS=1"])
        .arg(program());
    c
}

fn same_bytes_for_one_to_four_ranks(flags: &[&str]) {
    let Some(mpirun) = mpirun() else { return };
    let program = program();
    assert!(
        program.is_file(),
        "{} is missing: build it first with cargo build --release --features mpi --example dist_train",
        program.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let alone = dir.path().join("alone.safetensors");
    let reference = run(Command::new(&program)
        .args(flags)
        .arg("--single")
        .arg("--out")
        .arg(&alone));
    let losses = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.starts_with("epoch"))
            .map(String::from)
            .collect()
    };
    assert!(!losses(&reference).is_empty(), "{reference}");
    let expected = std::fs::read(&alone).unwrap();
    for ranks in 1..=4 {
        let path = dir.path().join(format!("np{ranks}.safetensors"));
        let out = run(mpi(&mpirun, ranks).args(flags).arg("--out").arg(&path));
        assert_eq!(losses(&out), losses(&reference), "{flags:?}, {ranks} ranks");
        assert!(out.contains(&format!("{ranks} ranks")), "{out}");
        let got = std::fs::read(&path).unwrap();
        assert!(
            got == expected,
            "{flags:?}: {ranks} ranks wrote other bytes than one process"
        );
    }
}

#[test]
fn digits_with_sgd_give_the_same_bytes() {
    same_bytes_for_one_to_four_ranks(&["--data", "digits", "--optimizer", "sgd", "--lr", "0.5"]);
}

#[test]
fn digits_with_adam_give_the_same_bytes() {
    same_bytes_for_one_to_four_ranks(&[
        "--data",
        "digits",
        "--optimizer",
        "adam",
        "--lr",
        "0.005",
        "--batch",
        "100",
    ]);
}

#[test]
fn spirals_in_f64_give_the_same_bytes() {
    for opt in ["sgd", "adam"] {
        same_bytes_for_one_to_four_ranks(&[
            "--data",
            "spirals",
            "--optimizer",
            opt,
            "--lr",
            "0.05",
            "--sizes",
            "24,24",
            "--precision",
            "f64",
            "--epochs",
            "5",
        ]);
    }
}

#[test]
fn ranks_given_other_flags_stop_with_a_message() {
    let Some(mpirun) = mpirun() else { return };
    // Rank 1 gets another learning rate (an MPMD launch: one program line per rank).
    let out = Command::new(&mpirun)
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "1"])
        .arg(program())
        .args(["--lr", "0.5", ":", "-np", "1"])
        .arg(program())
        .args(["--lr", "0.25"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("rank 1 disagrees with rank 0 on the flags"),
        "{stderr}"
    );
}

// `mpirun -np N backprop train`: the command line itself.

/// The `backprop` binary of this build (with the feature `mpi`).
fn backprop() -> &'static str {
    env!("CARGO_BIN_EXE_backprop")
}

/// `mpirun` with `ranks` processes of one thread each, running `program`.
fn mpi_of(mpirun: &Path, ranks: usize, program: &Path) -> Command {
    let mut c = Command::new("timeout");
    c.arg("120")
        .arg(mpirun)
        .args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(ranks.to_string())
        .args(["-x", "RAYON_NUM_THREADS=1"])
        .arg(program);
    c
}

/// A shell script that runs `backprop` in a directory of its own per rank (`rank0`,
/// `rank1`, ... under `dir`), with `extra` appended to the arguments (`$R` is the rank).
fn wrapper(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("rank.sh");
    let script = format!(
        "#!/bin/sh\nR=$OMPI_COMM_WORLD_RANK\nmkdir -p {d}/rank$R && cd {d}/rank$R && exec {b} \"$@\" {extra}\n",
        d = dir.display(),
        b = backprop()
    );
    std::fs::write(&path, script).unwrap();
    let mut perm = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&path, perm).unwrap();
    path
}

fn output(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `backprop train FLAGS --block 16` alone, then under `mpirun -np 1..4`: the same model
/// file; only rank 0 prints and writes the log.
fn train_same_bytes(flags: &[&str]) {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let alone = dir.path().join("alone.safetensors");
    let (ok, _, err) = output(
        Command::new(backprop())
            .arg("train")
            .args(flags)
            .args(["--block", "16", "--out"])
            .arg(&alone),
    );
    assert!(ok, "{err}");
    let expected = std::fs::read(&alone).unwrap();
    let script = wrapper(dir.path(), "");
    for ranks in 1..=4 {
        let (ok, _, err) = output(
            mpi_of(&mpirun, ranks, &script)
                .arg("train")
                .args(flags)
                .args(["--block", "16", "--verbose"])
                .args(["--out", "m.safetensors", "--log", "log.csv"]),
        );
        assert!(ok, "{flags:?}, {ranks} ranks:\n{err}");
        let got = std::fs::read(dir.path().join("rank0/m.safetensors")).unwrap();
        assert!(
            got == expected,
            "{flags:?}: {ranks} ranks wrote other bytes than one process"
        );
        // Rank 0 alone prints, writes, and reports every rank's communication.
        assert!(dir.path().join("rank0/log.csv").is_file());
        for r in 1..ranks {
            let other = dir.path().join(format!("rank{r}"));
            assert_eq!(std::fs::read_dir(&other).unwrap().count(), 0, "rank {r}");
        }
        assert_eq!(err.matches("epoch 1/").count(), 1, "{err}");
        let last = format!("rank {}: ", ranks - 1);
        assert!(
            err.contains(&last) && err.contains("MB sent per step"),
            "{err}"
        );
        std::fs::remove_dir_all(dir.path().join("rank0")).unwrap();
    }
}

#[test]
fn train_on_digits_with_sgd_gives_the_same_bytes_for_one_to_four_ranks() {
    train_same_bytes(&["--data", "digits", "--epochs", "2", "--batch", "64"]);
}

#[test]
fn train_a_cnn_on_digits_with_adam_gives_the_same_bytes_for_one_to_four_ranks() {
    train_same_bytes(&[
        "--data",
        "digits",
        "--arch",
        "Conv2d(1, 4, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10), Softmax(dim=-1)",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--batch",
        "64",
        "--epochs",
        "1",
    ]);
}

#[test]
fn train_a_char_lstm_gives_the_same_bytes_for_one_to_four_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.txt");
    let line = "the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.\n";
    std::fs::write(&text, line.repeat(40)).unwrap();
    train_same_bytes(&[
        "--data",
        &format!("text:{}", text.display()),
        "--arch",
        // 30 characters: the 26 letters, space, ";", "." and the newline.
        "Embedding(30, 8), LSTM(8, 12), Linear(12, 30), Softmax(dim=-1)",
        "--seq-len",
        "16",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--batch",
        "40",
        "--epochs",
        "1",
    ]);
}

#[test]
fn train_on_spirals_with_adam_in_f64_gives_the_same_bytes_for_one_to_four_ranks() {
    train_same_bytes(&[
        "--data",
        "spirals",
        "--hidden",
        "24,24",
        "--activation",
        "tanh",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--batch",
        "50",
        "--epochs",
        "3",
        "--dtype",
        "f64",
    ]);
}

#[test]
fn train_resumed_under_mpi_equals_the_uninterrupted_run() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = wrapper(dir.path(), "");
    let flags = ["--data", "digits", "--optimizer", "adam", "--batch", "64"];
    let (ok, _, err) = output(mpi_of(&mpirun, 2, &script).arg("train").args(flags).args([
        "--block",
        "16",
        "--epochs",
        "4",
        "--out",
        "whole.safetensors",
    ]));
    assert!(ok, "{err}");
    // Two epochs and a checkpoint, then the rest: --block comes from the checkpoint.
    // The checkpoint on the shared file system, where every rank finds it.
    let checkpoint = dir.path().join("c.safetensors");
    let (ok, _, err) = output(
        mpi_of(&mpirun, 2, &script)
            .arg("train")
            .args(flags)
            .args(["--block", "16", "--epochs", "2", "--checkpoint"])
            .arg(&checkpoint),
    );
    assert!(ok, "{err}");
    let (ok, _, err) = output(
        mpi_of(&mpirun, 3, &script)
            .args(["train", "--resume"])
            .arg(&checkpoint)
            .args(["--epochs", "4", "--out", "resumed.safetensors"]),
    );
    assert!(ok, "{err}");
    assert!(err.contains("resuming at epoch 3 of 4"), "{err}");
    let read = |name: &str| std::fs::read(dir.path().join("rank0").join(name)).unwrap();
    assert!(read("whole.safetensors") == read("resumed.safetensors"));
}

#[test]
fn train_ranks_given_another_seed_stop_with_a_message_naming_the_rank() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Ranks 0 and 1 get --seed 1, rank 2 --seed 2.
    let script = wrapper(dir.path(), "--seed $((R / 2 + 1))");
    let (ok, _, err) = output(mpi_of(&mpirun, 3, &script).args([
        "train", "--data", "digits", "--block", "16", "--epochs", "1",
    ]));
    assert!(!ok, "{err}");
    assert!(
        err.contains("rank 2 disagrees with rank 0 on the command line"),
        "{err}"
    );
}

#[test]
fn train_under_mpi_refuses_no_block_and_dropout_and_names_a_rank_that_dies() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = wrapper(dir.path(), "");
    let (ok, _, err) = output(mpi_of(&mpirun, 2, &script).args(["train", "--epochs", "1"]));
    assert!(!ok);
    assert!(err.contains("error: mpirun: give --block"), "{err}");
    let dropout =
        "Flatten(), Linear(64, 16), ReLU(), Dropout(0.2), Linear(16, 10), Softmax(dim=-1)";
    let (ok, _, err) =
        output(mpi_of(&mpirun, 2, &script).args(["train", "--arch", dropout, "--block", "16"]));
    assert!(!ok);
    assert!(
        err.contains("error: --block 16: a model with Dropout trains on whole batches"),
        "{err}"
    );
    // Rank 1 is killed after a second of a long run: the job stops and names it.
    let dying = dir.path().join("dying.sh");
    std::fs::write(
        &dying,
        format!(
            "#!/bin/sh\n[ \"$OMPI_COMM_WORLD_RANK\" = 1 ] && exec timeout -s KILL 1 {b} \"$@\"\nexec {b} \"$@\"\n",
            b = backprop()
        ),
    )
    .unwrap();
    let mut perm = std::fs::metadata(&dying).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&dying, perm).unwrap();
    let started = std::time::Instant::now();
    let (ok, _, err) =
        output(mpi_of(&mpirun, 2, &dying).args(["train", "--block", "16", "--epochs", "100000"]));
    assert!(!ok);
    assert!(
        started.elapsed().as_secs() < 100,
        "the job waited on a dead rank"
    );
    assert!(err.contains("process rank 1"), "{err}");
}
