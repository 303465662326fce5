//! `eval` scores a file whole unless it is the model's own training data (then its
//! held-out part, as in training), and says which; `predict` reads a header as `train`
//! does, refuses blank lines, and takes `--inputs` (alias `--input`).

use std::path::Path;
use std::process::{Command, Output};

fn backprop_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backprop"))
        .current_dir(dir)
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

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "failed: {}", stderr(o));
    serde_json::from_str(stdout(o).lines().last().unwrap()).unwrap()
}

fn refused(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected a refusal: {err}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
}

/// Digits `rows` as a labelled CSV (label first), with a header.
fn digits_csv(path: &Path, rows: std::ops::Range<usize>) {
    let d = backprop::data::digits::load();
    let mut text = String::from("label");
    for i in 0..64 {
        text.push_str(&format!(",p{i}"));
    }
    text.push('\n');
    for i in rows {
        let cells: Vec<String> = d.input(i).iter().map(|v| v.to_string()).collect();
        text.push_str(&format!("{},{}\n", d.labels[i], cells.join(",")));
    }
    std::fs::write(path, text).unwrap();
}

fn train(dir: &Path, data: &str, extra: &[&str]) {
    let mut args = vec!["train", "--data", data, "--out", "m.safetensors"];
    if !extra.contains(&"--epochs") {
        args.extend(["--epochs", "3"]);
    }
    args.extend_from_slice(extra);
    let o = backprop_in(dir, &args);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn another_file_is_scored_whole_and_the_training_file_on_its_held_out_part() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    digits_csv(&d.join("train.csv"), 0..500);
    digits_csv(&d.join("other.csv"), 500..897);
    train(d, "train.csv", &[]);
    let eval = |args: &[&str]| {
        let mut all = vec!["eval", "--model", "m.safetensors", "--json"];
        all.extend_from_slice(args);
        json(&backprop_in(d, &all))
    };

    // Another file: all 397 rows (the test fraction of it was 80).
    let e = eval(&["--data", "other.csv"]);
    assert_eq!(
        (e["n"].as_u64(), e["scored"].as_str()),
        (Some(397), Some("all"))
    );
    // The training file: its held-out fifth, as in training, by --data or by default.
    for args in [&["--data", "train.csv"][..], &[]] {
        let e = eval(args);
        assert_eq!(
            (e["n"].as_u64(), e["scored"].as_str()),
            (Some(100), Some("held-out")),
            "{args:?}"
        );
    }
    // ... also named otherwise (absolute path) and from another directory.
    let abs = d.join("train.csv");
    let sub = d.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let o = backprop_in(
        &sub,
        &[
            "eval",
            "--model",
            "../m.safetensors",
            "--data",
            abs.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(json(&o)["n"].as_u64(), Some(100));
    // The training file scored whole on request.
    assert_eq!(
        eval(&["--data", "train.csv", "--all"])["n"].as_u64(),
        Some(500)
    );
    // A copy is another file: scored whole.
    std::fs::copy(d.join("train.csv"), d.join("copy.csv")).unwrap();
    assert_eq!(eval(&["--data", "copy.csv"])["n"].as_u64(), Some(500));

    // The text output says which part it scored.
    let o = backprop_in(
        d,
        &["eval", "--model", "m.safetensors", "--data", "other.csv"],
    );
    assert!(
        stdout(&o).contains("scored all 397 rows of other.csv"),
        "{}",
        stdout(&o)
    );
    let o = backprop_in(d, &["eval", "--model", "m.safetensors"]);
    assert!(
        stdout(&o)
            .contains("held-out test part of train.csv, the model's training data (100 of 500"),
        "{}",
        stdout(&o)
    );
    // A split of data that is scored whole makes no sense.
    refused(
        &backprop_in(
            d,
            &[
                "eval",
                "--model",
                "m.safetensors",
                "--data",
                "other.csv",
                "--test-split",
                "0.5",
            ],
        ),
        "--test-split",
    );
}

#[test]
fn a_model_trained_with_a_test_file_is_scored_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    digits_csv(&d.join("train.csv"), 0..300);
    digits_csv(&d.join("test.csv"), 300..377);
    train(d, "train.csv", &["--test", "test.csv"]);
    let e = json(&backprop_in(
        d,
        &["eval", "--model", "m.safetensors", "--json"],
    ));
    assert_eq!(
        (e["n"].as_u64(), e["scored"].as_str()),
        (Some(77), Some("held-out"))
    );
}

#[test]
fn eval_without_data_uses_the_models_data_not_the_digits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    train(d, "moons:400", &[]);
    // moons:400 holds out 80 points; the digits would not even fit a 2-input model.
    let e = json(&backprop_in(
        d,
        &["eval", "--model", "m.safetensors", "--json"],
    ));
    assert_eq!(
        (e["n"].as_u64(), e["scored"].as_str()),
        (Some(80), Some("held-out"))
    );
    // The same set named another way is the same data.
    let e = json(&backprop_in(
        d,
        &[
            "eval",
            "--model",
            "m.safetensors",
            "--data",
            "moons:400",
            "--json",
        ],
    ));
    assert_eq!(e["n"].as_u64(), Some(80));
    // Another built-in set is scored whole.
    let e = json(&backprop_in(
        d,
        &[
            "eval",
            "--model",
            "m.safetensors",
            "--data",
            "xor:300",
            "--json",
        ],
    ));
    assert_eq!(
        (e["n"].as_u64(), e["scored"].as_str()),
        (Some(300), Some("all"))
    );
}

fn rows_of_digits(range: std::ops::Range<usize>) -> Vec<String> {
    let d = backprop::data::digits::load();
    range
        .map(|i| {
            d.input(i)
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

#[test]
fn predict_reads_a_header_refuses_blank_lines_and_takes_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    train(d, "digits", &["--epochs", "10"]);
    let rows = rows_of_digits(0..5);
    let header: Vec<String> = (0..64).map(|i| format!("p{i}")).collect();
    std::fs::write(
        d.join("h.csv"),
        format!("{}\n{}\n", header.join(","), rows.join("\n")),
    )
    .unwrap();
    std::fs::write(d.join("x.csv"), format!("{}\n", rows.join("\n"))).unwrap();
    for (flag, file) in [
        ("--inputs", "h.csv"),
        ("--input", "h.csv"),
        ("--inputs", "x.csv"),
    ] {
        let o = backprop_in(d, &["predict", "--model", "m.safetensors", flag, file]);
        assert!(o.status.success(), "{flag} {file}: {}", stderr(&o));
        assert_eq!(stdout(&o), "0\n1\n2\n3\n4\n", "{flag} {file}");
    }
    // A blank line would shift every later answer by one row: refused, with its number.
    std::fs::write(
        d.join("b.csv"),
        format!("{}\n{}\n\n{}\n", rows[0], rows[1], rows[2]),
    )
    .unwrap();
    let o = backprop_in(
        d,
        &["predict", "--model", "m.safetensors", "--inputs", "b.csv"],
    );
    refused(&o, "line 3 is blank");
    refused(&o, "--inputs");
    // The help says what a row is.
    let help = stdout(&backprop_in(d, &["predict", "--help"]));
    for needle in ["--inputs", "header", "blank", "comma-separated"] {
        assert!(help.contains(needle), "help lacks {needle}: {help}");
    }
}

#[test]
fn eval_blames_the_data_for_a_foreign_label_and_the_model_for_its_stored_split() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows: String = (0..20)
        .map(|i| format!("{},{},{}\n", i % 2, i, 20 - i))
        .collect();
    std::fs::write(d.join("d.csv"), rows).unwrap();
    train(d, "d.csv", &[]);
    // Label 7 on a two-class model: the message names the file it came from.
    std::fs::write(d.join("t.csv"), "0,1,2\n7,3,4\n").unwrap();
    let o = backprop_in(d, &["eval", "--model", "m.safetensors", "--data", "t.csv"]);
    refused(&o, "t.csv");
    refused(&o, "label 7");
    // A model whose stored test split is out of range: the model's metadata is named, not a
    // --test-split flag that was never given.
    let bytes = std::fs::read(d.join("m.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header["__metadata__"]["data.test_split"] = "7".into();
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(&bytes[8 + n..]);
    std::fs::write(d.join("bad.safetensors"), out).unwrap();
    let o = backprop_in(
        d,
        &["eval", "--model", "bad.safetensors", "--data", "d.csv"],
    );
    refused(&o, "bad.safetensors: metadata data.test_split = 7");
    assert!(!stderr(&o).contains("--test-split"), "{}", stderr(&o));
}
