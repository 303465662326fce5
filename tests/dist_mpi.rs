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
