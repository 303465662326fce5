//! What the command-line tests share: running the binary and reading what it said.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `backprop ARGS` to the end.
pub fn backprop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temporary path as a flag value.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A refusal: non-zero exit, one line on stderr holding every needle, no panic.
pub fn refused(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected a refusal, got success: {err}"
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    for n in needles {
        assert!(err.contains(n), "message {err:?} lacks {n:?}");
    }
}

/// A text of a few KB over 12 characters (returned: their number): words of a small vocabulary.
pub fn small_text(path: &Path) -> usize {
    let words = ["tick", "tock", "the", "clock", "ticks", "cat", "sat", "at"];
    let mut state = 7u64;
    let mut text = String::new();
    while text.len() < 6000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        text.push_str(words[(state >> 33) as usize % words.len()]);
        text.push(if (state >> 20).is_multiple_of(7) {
            '\n'
        } else {
            ' '
        });
    }
    std::fs::write(path, &text).unwrap();
    let mut chars: Vec<char> = text.chars().collect();
    chars.sort();
    chars.dedup();
    chars.len()
}

/// epsilon as `backprop privacy --json` gives it for these settings.
pub fn privacy_epsilon(noise: f64, q: f64, steps: u64, delta: f64) -> f64 {
    let (noise, q, steps, delta) = (
        noise.to_string(),
        q.to_string(),
        steps.to_string(),
        delta.to_string(),
    );
    let o = backprop(&[
        "privacy",
        "--noise",
        &noise,
        "--sample-rate",
        &q,
        "--steps",
        &steps,
        "--delta",
        &delta,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["epsilon"].as_f64().unwrap()
}
