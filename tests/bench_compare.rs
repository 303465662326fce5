//! `bench/compare.py` against fake benchmark commands that print known figures: the
//! order it runs them in (alternating), the medians and ratios it reports, its errors.
//! Skipped, with a note, where `python3` is not installed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fake benchmark: appends `NAME config threads` to `$FAKE_LOG` and prints one JSON
/// line whose training rate is the next of `train` (per call of this fake), times the
/// thread count.
fn fake(dir: &Path, name: &str, train: &[f64], infer: f64, threads_reported: &str) -> PathBuf {
    let path = dir.join(format!("fake_{name}.py"));
    let script = format!(
        r#"#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
if args and args[0] == "bench":
    args = args[1:]
config = args[args.index("--config") + 1]
threads = int(args[args.index("--threads") + 1])
assert "--json" in args and "--seconds" in args
log = os.environ["FAKE_LOG"]
calls = sum(1 for l in open(log) if l.startswith("{name} ")) if os.path.exists(log) else 0
with open(log, "a") as f:
    f.write(f"{name} {{config}} {{threads}}\n")
train = {train:?}[calls % {n}] * threads
print("warming up")  # non-JSON lines are ignored
print(json.dumps({{"config": config, "threads": {threads_reported},
    "train_samples_per_sec": train, "infer_samples_per_sec": {infer},
    "peak_rss_bytes": 1048576 * 10, "impl": "{name}", "torch_version": "fake"}}))
"#,
        n = train.len(),
    );
    std::fs::write(&path, script).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

fn python() -> Option<&'static str> {
    Command::new("python3")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "python3")
}

fn compare(dir: &Path, backprop: &Path, pytorch: &Path, extra: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/compare.py");
    Command::new("python3")
        .arg(script)
        .arg("--backprop")
        .arg(backprop)
        .arg("--pytorch")
        .arg(format!("python3 {}", pytorch.display()))
        .args(["--seconds", "0.01"])
        .args(extra)
        .env("FAKE_LOG", dir.join("log"))
        .output()
        .unwrap()
}

#[test]
fn alternates_and_reports_median_ratios() {
    if python().is_none() {
        eprintln!("python3 not found: skipping the compare.py test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // backprop: 1000, 3000, 2000 per thread over the rounds -> median 2000 per thread;
    // PyTorch: 100, 400, 200 -> median 200. Ratio 10 at any thread count.
    let ours = fake(
        dir.path(),
        "backprop",
        &[1000.0, 3000.0, 2000.0],
        50_000.0,
        "threads",
    );
    let theirs = fake(
        dir.path(),
        "pytorch",
        &[100.0, 400.0, 200.0],
        10_000.0,
        "threads",
    );
    let out = compare(
        dir.path(),
        &ours,
        &theirs,
        &[
            "--config",
            "small",
            "--threads",
            "1,2",
            "--rounds",
            "3",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    let order: Vec<&str> = log.lines().collect();
    assert_eq!(
        order,
        [
            "backprop small 1",
            "pytorch small 1", // round 1: backprop first
            "pytorch small 1",
            "backprop small 1", // round 2: PyTorch first
            "backprop small 1",
            "pytorch small 1",
            "backprop small 2",
            "pytorch small 2",
            "pytorch small 2",
            "backprop small 2",
            "backprop small 2",
            "pytorch small 2",
        ]
    );
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    for (row, threads) in rows.iter().zip([1.0, 2.0]) {
        assert_eq!(row["config"], "small");
        assert_eq!(row["backprop_train_samples_per_sec"], 2000.0 * threads);
        assert_eq!(row["pytorch_train_samples_per_sec"], 200.0 * threads);
        assert_eq!(row["train_ratio"], 10.0);
        assert_eq!(row["infer_ratio"], 5.0);
        assert_eq!(row["target_train_ratio"], 2.0);
        assert_eq!(row["backprop_peak_rss_bytes"], 10485760.0);
    }
}

#[test]
fn prints_a_table_with_the_machine() {
    if python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ours = fake(dir.path(), "backprop", &[30_000.0], 90_000.0, "threads");
    let theirs = fake(dir.path(), "pytorch", &[20_000.0], 60_000.0, "threads");
    let out = compare(
        dir.path(),
        &ours,
        &theirs,
        &["--config", "wide", "--threads", "2", "--rounds", "1"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("machine: "), "{text}");
    assert!(text.contains("logical cores"), "{text}");
    // 60,000 / 40,000 = 1.5x against the target of 1x; inference 1.5x too.
    assert!(
        text.contains(
            "| wide | 2 | 60,000 | 40,000 | 1.50x | >= 1x ok | 90,000 | 60,000 | 1.50x | 10 / 10 |"
        ),
        "{text}"
    );
}

#[test]
fn compares_each_side_at_its_best_thread_count() {
    if python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // backprop is fastest on 2 threads (2 x 30,000), PyTorch on 1 (its second call is slow).
    let ours = fake(dir.path(), "backprop", &[30_000.0], 1.0, "threads");
    let theirs = fake(dir.path(), "pytorch", &[50_000.0, 10_000.0], 1.0, "threads");
    let out = compare(
        dir.path(),
        &ours,
        &theirs,
        &["--config", "nielsen", "--threads", "1,2", "--rounds", "1"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // PyTorch: 50,000 at 1 thread, then 10,000 x 2 = 20,000 at 2 threads.
    assert!(
        text.contains("| nielsen | 60,000 (2) | 50,000 (1) | 1.20x | >= 10x MISSED |"),
        "{text}"
    );
}

#[test]
fn reports_bad_input_in_one_line() {
    if python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let theirs = fake(dir.path(), "pytorch", &[1.0], 1.0, "threads");
    let cases: Vec<(PathBuf, Vec<&str>, &str)> = vec![
        (dir.path().join("missing"), vec![], "--backprop"),
        (
            theirs.clone(),
            vec!["--config", "huge"],
            "--config: unknown huge",
        ),
        (theirs.clone(), vec!["--threads", "0"], "--threads"),
        (theirs.clone(), vec!["--threads", "x"], "--threads"),
        // A backprop that reports another thread count than it was asked for.
        (
            fake(dir.path(), "liar", &[1.0], 1.0, "99"),
            vec!["--config", "nielsen", "--threads", "1"],
            "99",
        ),
    ];
    for (backprop, extra, needle) in cases {
        let out = compare(dir.path(), &backprop, &theirs, &extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert!(one_error(&err), "{err}");
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{needle}: {err}"
        );
    }
}

/// One error: a single line of ours, or clap's usage error (its first line names the flag,
/// then clap's own hints: possible values, a similar flag, "try '--help'").
fn one_error(err: &str) -> bool {
    let err = err.trim_end();
    err.lines().count() == 1
        || (err.starts_with("error: ") && err.ends_with("For more information, try '--help'."))
}
