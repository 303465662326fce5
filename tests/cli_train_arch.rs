//! `backprop train --arch`: models of layers (a CNN on the digits, an LSTM on a text)
//! trained by the same loop as the post's network, their model files, and every refusal.

mod common;

use backprop::nn::{load, AnyArchModel};
use common::{backprop, path_str, refused, small_text, stderr, stdout};
use std::path::{Path, PathBuf};

/// The README's digits CNN: two 3x3 convolutions, each followed by 2x2 max-pooling.
const DIGITS_CNN: &str = "Conv2d(1, 16, 3, padding=1), ReLU(), MaxPool2d(2), \
    Conv2d(16, 32, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(128, 10), \
    Softmax(dim=-1)";

/// The `--json` lines of a run: one per epoch, then the summary.
fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn a_small_cnn_classifies_the_held_out_digits_at_98_percent() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cnn.safetensors");
    let start = std::time::Instant::now();
    let o = backprop(&[
        "train",
        "--arch",
        DIGITS_CNN,
        "--lr",
        "0.1",
        "--epochs",
        "20",
        "--json",
        "--out",
        path_str(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = json_lines(&stdout(&o));
    assert_eq!(lines.len(), 21);
    // The epoch lines keep the network's keys.
    for key in [
        "epoch",
        "lr",
        "train_loss",
        "test_loss",
        "test_accuracy",
        "seconds",
    ] {
        assert!(lines[0].get(key).is_some(), "{key} in {}", lines[0]);
    }
    let summary = &lines[20];
    let accuracy = summary["test_accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.98, "{summary}");
    assert_eq!(summary["arch"].as_str().unwrap(), DIGITS_CNN);
    // Untrained: about ln 10 = 2.30; trained, well below.
    let first = lines[0]["train_loss"].as_f64().unwrap();
    assert!(summary["test_loss"].as_f64().unwrap() < 0.15 && first < 2.4);
    eprintln!("digits CNN: {accuracy} in {:?}", start.elapsed());

    // The file: the arch as given, the digits' shape, the settings, the scaling.
    let (model, meta) = load(&out).unwrap();
    assert_eq!(meta["arch"], DIGITS_CNN);
    assert_eq!(meta["input_shape"], "1,8,8");
    assert_eq!(meta["cost"], "log-likelihood");
    assert_eq!(meta["scaling"], "divide:16");
    assert_eq!(meta["train.lr"], "0.1");
    assert_eq!(meta["classes"], "10");
    assert!(!meta.contains_key("train.hidden") && !meta.contains_key("vocab"));
    assert_eq!(meta["test_accuracy"].parse::<f64>().unwrap(), accuracy);
    let AnyArchModel::F32(mut model) = model else {
        panic!("an f32 file")
    };
    // The loaded model scores the held-out digits as training reported.
    let split = backprop::data::digits::split();
    let mut test = split.test.clone();
    let scaling: backprop::data::Scaling = meta["scaling"].parse().unwrap();
    scaling.apply(&mut test).unwrap();
    let e = backprop::train::evaluate_model(&mut model, &test).unwrap();
    assert_eq!(e.accuracy, accuracy);
}

#[test]
fn a_char_lstm_learns_a_small_text_and_keeps_its_vocabulary() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("clock.txt");
    let v = small_text(&text);
    assert_eq!(v, 12); // "acehiklost", space, newline
    let out = dir.path().join("lstm.safetensors");
    let log = dir.path().join("log.csv");
    let arch = format!("Embedding({v}, 8), LSTM(8, 32), Linear(32, {v}), Softmax(dim=-1)");
    let data = format!("text:{}", path_str(&text));
    let o = backprop(&[
        "train",
        "--data",
        &data,
        "--arch",
        &arch,
        "--seq-len",
        "32",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--epochs",
        "4",
        "--out",
        path_str(&out),
        "--log",
        path_str(&log),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    // 6000 characters: the last 600 held out; 5400 make 168 sequences of 32 and the next.
    assert!(
        err.contains("(168 train, 18 test sequences of 32 characters)"),
        "{err}"
    );
    let rows: Vec<Vec<f64>> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 4);
    // Nats per character: ln 12 = 2.48 untrained; the test loss falls epoch by epoch.
    let (first, last) = (rows[0][3], rows[3][3]);
    assert!(first < 2.5 && last < 0.8 * first, "{rows:?}");
    assert!(rows.windows(2).all(|w| w[1][3] < w[0][3]), "{rows:?}");
    // Accuracy counts every next character: well above the 1/12 of a guess.
    assert!(rows[3][4] > 0.4, "{rows:?}");

    let (model, meta) = load(&out).unwrap();
    assert_eq!(meta["arch"], arch);
    assert_eq!(meta["input_shape"], "32");
    assert_eq!(meta["scaling"], "none");
    assert_eq!(meta["data.test_split"], "0.1");
    assert_eq!(
        meta["vocab"],
        r#"["\n"," ","a","c","e","h","i","k","l","o","s","t"]"#
    );
    let AnyArchModel::F32(model) = model else {
        panic!("an f32 file")
    };
    assert_eq!(model.vocab.as_ref().map(|v| v.len()), Some(v));
}

#[test]
fn f64_trains_a_model_of_layers_in_f64_and_the_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let arch = "Flatten(), Linear(64, 10), Softmax(dim=-1)";
    let run = |dtype: &str, out: &Path| {
        let o = backprop(&[
            "train",
            "--arch",
            arch,
            "--epochs",
            "3",
            "--dtype",
            dtype,
            "--json",
            "--out",
            path_str(out),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        json_lines(&stdout(&o)).pop().unwrap()
    };
    let f64_summary = run("f64", &out);
    let (model, _) = load(&out).unwrap();
    assert!(matches!(model, AnyArchModel::F64(_)));
    // The same run in f32 lands on nearly the same loss (only rounding differs).
    let f32_out = dir.path().join("m32.safetensors");
    let f32_summary = run("f32", &f32_out);
    let (a, b) = (
        f64_summary["test_loss"].as_f64().unwrap(),
        f32_summary["test_loss"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    assert!(a < 0.5, "{a}");
}

#[test]
fn arch_and_hidden_together_are_refused_naming_both() {
    let o = backprop(&["train", "--arch", "lenet5", "--hidden", "30"]);
    refused(&o, &["--arch", "--hidden"]);
}

#[test]
fn a_preset_that_does_not_fit_the_data_is_refused_naming_both_shapes() {
    let o = backprop(&["train", "--arch", "lenet5", "--epochs", "1"]);
    refused(
        &o,
        &["--arch lenet5", "1,8,8", "1,28,28", "Conv2d(6, 16, 5)"],
    );
    let o = backprop(&["train", "--arch", "convnet"]);
    refused(&o, &["--arch convnet", "1,8,8", "Linear(9216, 128)", "256"]);
    // Too few classes for the digits' ten.
    let o = backprop(&[
        "train",
        "--arch",
        "Flatten(), Linear(64, 5), Softmax(dim=-1)",
    ]);
    refused(&o, &["--arch", "5 classes", "labels up to 9"]);
    // A cost the last layer does not support.
    let o = backprop(&["train", "--arch", "Flatten(), Linear(64, 10)"]);
    refused(&o, &["--cost log-likelihood", "Softmax(dim=-1)"]);
}

#[test]
fn csv_rows_take_their_shape_from_input_shape_and_a_wrong_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("rows.csv");
    // 60 rows of 16 features in 3 classes; class c lights pixel c of a 4x4 image.
    let mut text = String::new();
    for i in 0..60 {
        let c = i % 3;
        let pixels: Vec<String> = (0..16)
            .map(|p| if p == c * 5 { "1" } else { "0" }.to_string())
            .collect();
        text.push_str(&format!("{c},{}\n", pixels.join(",")));
    }
    std::fs::write(&csv, text).unwrap();
    let arch = "Conv2d(1, 4, 3, padding=1), ReLU(), Flatten(), Linear(64, 3), Softmax(dim=-1)";
    let base = ["train", "--data", path_str(&csv), "--arch", arch];
    let with = |extra: &[&str]| backprop(&[&base[..], extra].concat());
    let o = with(&["--input-shape", "1,4,5"]);
    refused(&o, &["--input-shape 1,4,5", "20 values", "16 features"]);
    for bad in ["1,x,4", "0,4,4", "", "1,1,1,4,4"] {
        let o = with(&["--input-shape", bad]);
        refused(&o, &["--input-shape"]);
    }
    // Without --input-shape a CSV row is 16 values, which a Conv2d cannot take.
    let o = with(&[]);
    refused(&o, &["--arch", "shape 16", "--input-shape C,H,W"]);
    // With it, the CNN learns the one lit pixel.
    let o = with(&["--input-shape", "1,4,4", "--epochs", "20", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = json_lines(&stdout(&o)).pop().unwrap();
    assert_eq!(summary["test_accuracy"].as_f64().unwrap(), 1.0, "{summary}");
    // --input-shape is for --arch only.
    let o = backprop(&["train", "--data", path_str(&csv), "--input-shape", "1,4,4"]);
    refused(&o, &["--input-shape", "--arch"]);
}

#[test]
fn text_flags_are_checked_before_any_training() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such.txt");
    let data = format!("text:{}", path_str(&missing));
    let o = backprop(&["train", "--data", &data, "--arch", "char-lstm"]);
    refused(&o, &["--data", "no-such.txt", "no such file"]);
    let o = backprop(&["train", "--data", "text:", "--arch", "char-lstm"]);
    refused(&o, &["--data", "text:shakespeare"]);
    let o = backprop(&[
        "train",
        "--data",
        "text:shakespeare",
        "--arch",
        "char-lstm",
        "--seq-len",
        "0",
    ]);
    refused(&o, &["--seq-len 0"]);
    // A sequence longer than the test part (a tenth of 400 characters) makes none there.
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "abcd".repeat(100)).unwrap();
    let data = format!("text:{}", path_str(&short));
    let o = backprop(&[
        "train",
        "--data",
        &data,
        "--arch",
        "char-lstm",
        "--seq-len",
        "40",
    ]);
    refused(&o, &["--seq-len 40", "test part", "40 characters"]);
    let not_utf8 = dir.path().join("bytes.txt");
    std::fs::write(
        &not_utf8,
        [b'a'; 30]
            .iter()
            .chain(&[0xff, 0xfe])
            .copied()
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let data = format!("text:{}", path_str(&not_utf8));
    let o = backprop(&["train", "--data", &data, "--arch", "char-lstm"]);
    refused(&o, &["bytes.txt", "not UTF-8"]);
    // A text needs a model of layers; --seq-len needs a text.
    let o = backprop(&["train", "--data", "text:shakespeare"]);
    refused(&o, &["--data text:shakespeare", "--arch"]);
    let o = backprop(&["train", "--arch", "lenet5", "--seq-len", "8"]);
    refused(&o, &["--seq-len 8", "text"]);
    // A text's test part is its last tenth, and its ids are not scaled.
    let o = backprop(&[
        "train",
        "--data",
        "text:shakespeare",
        "--arch",
        "char-lstm",
        "--test-split",
        "0.3",
    ]);
    refused(&o, &["--test-split 0.3", "10%"]);
    let o = backprop(&[
        "train",
        "--data",
        "text:shakespeare",
        "--arch",
        "char-lstm",
        "--scale",
        "standardize",
    ]);
    refused(&o, &["--scale"]);
}

#[test]
fn network_only_flags_are_refused_with_arch() {
    for (flag, value) in [
        ("--activation", "relu"),
        ("--output-activation", "softmax"),
        ("--init", "he"),
    ] {
        let o = backprop(&["train", "--arch", "lenet5", flag, value]);
        refused(&o, &[flag, "--arch"]);
    }
}

#[test]
fn an_arch_run_resumed_from_its_checkpoint_ends_where_the_uninterrupted_run_does() {
    let (dir, ckpt) = resumed_equals_uninterrupted(
        "Embedding(12, 8), LSTM(8, 16), Linear(16, 12), Softmax(dim=-1)",
    );
    // A resumed run keeps the checkpoint's model: another arch or sequence length is refused.
    let o = backprop(&[
        "train",
        "--resume",
        path_str(&ckpt),
        "--arch",
        "char-lstm",
        "--threads",
        "1",
    ]);
    refused(&o, &["--arch char-lstm", "leave --arch out"]);
    let o = backprop(&["train", "--resume", path_str(&ckpt), "--seq-len", "8"]);
    refused(&o, &["--seq-len 8", "16"]);
    let o = backprop(&["train", "--resume", path_str(&ckpt), "--hidden", "30"]);
    refused(&o, &["--hidden", "model of layers"]);
    drop(dir);
}

#[test]
fn a_run_with_dropout_resumed_from_its_checkpoint_ends_where_the_uninterrupted_run_does() {
    // Dropout's masks are drawn afresh from the seed and the epoch at every epoch, so a
    // resumed run draws the masks the uninterrupted one drew.
    resumed_equals_uninterrupted(
        "Embedding(12, 8), LSTM(8, 16), Dropout(0.5), Linear(16, 12), Softmax(dim=-1)",
    );
}

/// Trains `arch` on a small text for 3 epochs, and for 2 then resumed to 3: the same
/// parameters. Returns the temporary folder and the checkpoint.
fn resumed_equals_uninterrupted(arch: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("clock.txt");
    small_text(&text);
    let data = format!("text:{}", path_str(&text));
    let (whole, part, resumed, ckpt) = (
        dir.path().join("whole.safetensors"),
        dir.path().join("part.safetensors"),
        dir.path().join("resumed.safetensors"),
        dir.path().join("ckpt.safetensors"),
    );
    let train = |epochs: &str, out: &Path, extra: &[&str]| {
        let mut a = vec![
            "train",
            "--data",
            &data,
            "--arch",
            arch,
            "--seq-len",
            "16",
            "--optimizer",
            "adam",
            "--lr",
            "0.01",
            "--epochs",
            epochs,
            "--out",
            path_str(out),
            "--threads",
            "1",
        ];
        a.extend_from_slice(extra);
        let o = backprop(&a);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    train("3", &whole, &[]);
    train("2", &part, &["--checkpoint", path_str(&ckpt)]);
    // The checkpoint is a model file too, with the optimizer's state beside it.
    let (_, meta) = load(&ckpt).unwrap();
    assert_eq!(meta["arch"], arch);
    // 5400 training characters make 337 sequences of 16: 34 batches of 10 an epoch.
    assert_eq!(meta["optimizer.steps"], "68");
    let o = backprop(&[
        "train",
        "--resume",
        path_str(&ckpt),
        "--epochs",
        "3",
        "--out",
        path_str(&resumed),
        "--threads",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("resuming at epoch 3 of 3"),
        "{}",
        stderr(&o)
    );
    let params = |p: &Path| {
        let (m, _) = load(p).unwrap();
        let AnyArchModel::F32(m) = m else {
            panic!("f32")
        };
        m.net
            .params()
            .map(|(_, _, v)| v.to_vec())
            .collect::<Vec<_>>()
    };
    assert_eq!(params(&resumed), params(&whole));
    (dir, ckpt)
}

#[test]
fn an_output_over_the_text_it_reads_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("clock.txt");
    small_text(&text);
    let before = std::fs::read(&text).unwrap();
    let data = format!("text:{}", path_str(&text));
    let o = backprop(&[
        "train",
        "--data",
        &data,
        "--arch",
        "char-lstm",
        "--out",
        path_str(&text),
    ]);
    refused(&o, &["--out", "clock.txt"]);
    assert_eq!(std::fs::read(&text).unwrap(), before);
}
