//! `backprop bench` through the binary: the JSON keys that `bench/compare.py` reads, one
//! object per config, and refusals of bad flags. (Speed itself is measured, not tested.)

use std::process::Command;

fn backprop(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn every_config_prints_the_shared_json_keys() {
    let o = backprop(&[
        "bench",
        "--config",
        "all",
        "--seconds",
        "0.01",
        "--repeats",
        "1",
        "--threads",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l["config"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nielsen", "small", "wide"]);
    for l in &lines {
        assert_eq!(l["threads"], 1);
        assert_eq!(l["impl"], "backprop");
        for key in [
            "train_samples_per_sec",
            "infer_samples_per_sec",
            "train_gflops",
        ] {
            assert!(l[key].as_f64().unwrap() > 0.0, "{key} in {l}");
        }
        assert!(l["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    }
    let batches: Vec<_> = lines.iter().map(|l| l["batch"].as_u64()).collect();
    assert_eq!(batches, [Some(10), Some(64), Some(256)]);
    // wide holds 1.9 M f32 parameters: its process must have needed more memory than nielsen's.
    assert!(lines[2]["peak_rss_bytes"].as_u64() > lines[0]["peak_rss_bytes"].as_u64());
}

#[test]
fn bad_flags_are_refused() {
    for (args, needle) in [
        (&["bench", "--config", "huge"][..], "--config"),
        (&["bench", "--seconds", "-1"], "--seconds"),
        (&["bench", "--repeats", "0"], "--repeats"),
        (&["bench", "--threads", "0"], "--threads"),
        (&["bench", "--batch", "0"], "--batch"),
        (
            &["bench", "--config", "lenet5", "--batch", "10241"],
            "--batch",
        ),
    ] {
        let o = backprop(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{args:?}: {err}"
        );
        assert!(one_error(&err), "{err}");
    }
}

/// One error: a single line of ours, or clap's usage error (its first line names the flag,
/// then clap's own hints: possible values, a similar flag, "try '--help'").
fn one_error(err: &str) -> bool {
    let err = err.trim_end();
    err.lines().count() == 1
        || (err.starts_with("error: ") && err.ends_with("For more information, try '--help'."))
}

#[test]
fn batch_replaces_every_config_batch_size() {
    for config in ["small", "char-lstm"] {
        let o = backprop(&[
            "bench",
            "--config",
            config,
            "--batch",
            "7",
            "--seconds",
            "0.01",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--json",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let l: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            (l["config"].as_str(), l["batch"].as_u64()),
            (Some(config), Some(7))
        );
    }
}
