//! `eval`, `predict`, `grad`, `gradcheck --arch` and `sample` on models of layers (CNN,
//! LSTM), through the binary, against the library's `Sequential` computed here.

mod common;

use std::path::{Path, PathBuf};

use backprop::data::text::Vocab;
use backprop::network::Cost;
use backprop::nn::{Arch, ArchModel, Sequential};
use backprop::train::argmax;
use common::{backprop, path_str, refused, stderr, stdout};
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// conv 2x6x6 -> pool 2x3x3 -> 18 -> 3 classes, on 1x8x8 images.
const CNN: &str =
    "Conv2d(1, 2, 3), ReLU(), MaxPool2d(2), Flatten(), Linear(18, 3), Softmax(dim=-1)";
/// 5 tokens, sequences of 7, a class per position.
const LSTM: &str = "Embedding(5, 4), LSTM(4, 6), Linear(6, 5), Softmax(dim=-1)";

fn cnn(seed: u64) -> ArchModel<f64> {
    let arch: Arch = CNN.parse().unwrap();
    ArchModel::new(&arch, &[1, 8, 8], Cost::LogLikelihood, None, seed).unwrap()
}

fn lstm(seed: u64) -> ArchModel<f64> {
    let arch: Arch = LSTM.parse().unwrap();
    ArchModel::new(&arch, &[7], Cost::LogLikelihood, None, seed).unwrap()
}

fn save(model: &ArchModel<f64>, dir: &Path, name: &str, extra: &[(&str, &str)]) -> PathBuf {
    let path = dir.join(name);
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    model.save(&path, &extra).unwrap();
    path
}

/// `n` images of 64 values, multiples of 1/8 in [-2, 2] (exact in f32, as CSV data is read).
fn images(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n * 64)
        .map(|_| rng.gen_range(-16i32..=16) as f64 / 8.0)
        .collect()
}

fn rows_csv(values: &[f64], cols: usize) -> String {
    let mut s = String::new();
    for r in values.chunks(cols) {
        let cells: Vec<String> = r.iter().map(|v| format!("{v:e}")).collect();
        s.push_str(&cells.join(","));
        s.push('\n');
    }
    s
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn json(o: &std::process::Output) -> Value {
    assert!(o.status.success(), "failed: {}", stderr(o));
    serde_json::from_str(stdout(o).trim()).expect("one JSON object")
}

fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not a number: {other}"),
    }
}

fn assert_close(found: &[f64], expected: &[f64], tol: f64, what: &str) {
    assert_eq!(found.len(), expected.len(), "{what}: length");
    for (i, (a, b)) in found.iter().zip(expected).enumerate() {
        assert!(
            (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0),
            "{what}[{i}]: {a} vs {b}"
        );
    }
}

#[test]
fn eval_of_a_cnn_agrees_with_sequential_loss_and_the_accuracy_counted_here() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = cnn(3);
    // The file's scaling is applied to the data, as for the post's networks.
    let file = save(
        &model,
        dir.path(),
        "cnn.safetensors",
        &[("scaling", "divide:2")],
    );
    let n = 30;
    let x = images(n, 11);
    let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7) % 3).collect();
    let mut csv = String::new();
    for (row, l) in x.chunks(64).zip(&labels) {
        let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        csv.push_str(&format!("{l},{}\n", cells.join(",")));
    }
    let data = write(dir.path(), "d.csv", &csv);

    // Here: J by Sequential::loss on x / 2, predictions by the arg-max of a^L.
    let scaled: Vec<f64> = x.iter().map(|v| v / 2.0).collect();
    let targets: Vec<f64> = labels.iter().map(|&l| l as f64).collect();
    let j = model
        .net
        .loss(&scaled, &targets, n, Cost::LogLikelihood)
        .unwrap();
    let a = model.net.predict(&scaled, n).unwrap();
    let predicted: Vec<usize> = a.chunks(3).map(argmax).collect();
    let right = predicted
        .iter()
        .zip(&labels)
        .filter(|(p, &l)| **p == l as usize)
        .count();
    let mut confusion = vec![vec![0u64; 3]; 3];
    for (p, &l) in predicted.iter().zip(&labels) {
        confusion[l as usize][*p] += 1;
    }
    // An untrained model still gets some right and some wrong: the test can tell.
    assert!(right > 0 && right < n, "{right}");

    let o = backprop(&[
        "eval",
        "--model",
        path_str(&file),
        "--data",
        path_str(&data),
        "--json",
    ]);
    let e = json(&o);
    assert_close(&[e["loss"].as_f64().unwrap()], &[j], 1e-12, "loss");
    assert_eq!(e["accuracy"].as_f64().unwrap(), right as f64 / n as f64);
    assert_eq!(e["n"], n);
    assert_eq!(e["scored"], "all");
    let found: Vec<Vec<u64>> = serde_json::from_value(e["confusion"].clone()).unwrap();
    assert_eq!(found, confusion);

    // The text output as for the post's networks: the accuracy line and the table.
    let o = backprop(&[
        "eval",
        "--model",
        path_str(&file),
        "--data",
        path_str(&data),
    ]);
    let text = stdout(&o);
    assert!(
        text.contains(&format!(
            "accuracy {:.2}% ({right} of {n}), loss {j:.4}",
            100.0 * right as f64 / n as f64
        )),
        "{text}"
    );
    assert!(text.contains("t\\p |"), "{text}");

    // Rows of another width are refused naming both sizes.
    let narrow = write(dir.path(), "narrow.csv", "1,0.5,0.25\n0,1,2\n");
    refused(
        &backprop(&[
            "eval",
            "--model",
            path_str(&file),
            "--data",
            path_str(&narrow),
        ]),
        &["cnn.safetensors", "1x8x8 = 64 values", "2 features"],
    );
    // A model whose output is a sequence gives no class per example.
    let seq = save(&lstm(1), dir.path(), "lstm.safetensors", &[]);
    let ids = write(dir.path(), "ids.csv", "1,0,1,2,3,4,0,1\n0,4,3,2,1,0,1,2\n");
    refused(
        &backprop(&["eval", "--model", path_str(&seq), "--data", path_str(&ids)]),
        &["7x5", "one vector"],
    );
}

#[test]
fn predict_with_a_cnn_gives_the_arg_max_of_the_scaled_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = cnn(5);
    let file = save(
        &model,
        dir.path(),
        "cnn.safetensors",
        &[("scaling", "divide:4")],
    );
    let x = images(6, 2);
    let rows = write(dir.path(), "rows.csv", &rows_csv(&x, 64));
    let scaled: Vec<f64> = x.iter().map(|v| v / 4.0).collect();
    let a = model.net.predict(&scaled, 6).unwrap();

    let o = backprop(&[
        "predict",
        "--model",
        path_str(&file),
        "--inputs",
        path_str(&rows),
        "--probs",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6);
    for (line, expected) in lines.iter().zip(a.chunks(3)) {
        let cells: Vec<f64> = line.split(',').map(|c| c.parse().unwrap()).collect();
        assert_eq!(cells[0] as usize, argmax(expected), "{line}");
        assert_close(&cells[1..], expected, 1e-15, "a^L");
    }
    refused(
        &backprop(&[
            "predict",
            "--model",
            path_str(&file),
            "--inputs",
            path_str(&write(dir.path(), "w.csv", "1,2,3\n")),
        ]),
        &["--inputs", "3 values", "1x8x8 = 64 values"],
    );

    // A sequence model: the class of each of the 7 positions.
    let mut seq = lstm(2);
    let sfile = save(&seq, dir.path(), "lstm.safetensors", &[]);
    let ids = [1.0, 0.0, 2.0, 4.0, 3.0, 3.0, 1.0];
    let a = seq.net.predict(&ids, 1).unwrap();
    let expected: Vec<String> = a.chunks(5).map(|r| argmax(r).to_string()).collect();
    let o = backprop(&[
        "predict",
        "--model",
        path_str(&sfile),
        "--inputs",
        path_str(&write(dir.path(), "ids.csv", "1,0,2,4,3,3,1\n")),
    ]);
    assert_eq!(stdout(&o).trim(), expected.join(","));
    // A token id the Embedding does not have.
    refused(
        &backprop(&[
            "predict",
            "--model",
            path_str(&sfile),
            "--inputs",
            path_str(&write(dir.path(), "bad.csv", "1,0,2,9,3,3,1\n")),
        ]),
        &["--inputs", "token id from 0 to 4"],
    );
}

/// `grad --json` of `file` on `inputs`/`targets`, with the per-example tensors.
fn grad_json(file: &Path, inputs: &Path, targets: &Path) -> Value {
    json(&backprop(&[
        "grad",
        "--model",
        path_str(file),
        "--inputs",
        path_str(inputs),
        "--targets",
        path_str(targets),
        "--per-example",
        "--json",
    ]))
}

/// The batch gradient of `grad --json` agrees with `loss_and_grad`, and the mean of the
/// per-example losses and gradients with the batch's.
fn check_grad(g: &Value, net: &mut Sequential<f64>, x: &[f64], t: &[f64], n: usize) {
    let j = net.loss_and_grad(x, t, n, Cost::LogLikelihood).unwrap();
    assert_close(&[g["loss"].as_f64().unwrap()], &[j], 1e-13, "loss");
    let mut mean_loss = 0.0;
    for i in 0..n {
        mean_loss += g[format!("per_example.{i}.loss")].as_f64().unwrap() / n as f64;
    }
    assert_close(&[mean_loss], &[j], 1e-12, "mean of C_n");
    let names: Vec<String> = net.params().map(|(name, _, _)| name.to_string()).collect();
    assert!(names.len() >= 4);
    for name in names {
        let batch = floats(&g[format!("grad.{name}")]);
        assert_close(&batch, net.grad(&name).unwrap(), 1e-13, &name);
        assert!(batch.iter().any(|&v| v != 0.0), "{name}: all zero");
        let mut mean = vec![0.0; batch.len()];
        for i in 0..n {
            let per = floats(&g[format!("per_example.{i}.grad.{name}")]);
            assert_eq!(per.len(), mean.len());
            mean.iter_mut()
                .zip(per)
                .for_each(|(m, p)| *m += p / n as f64);
        }
        assert_close(&mean, &batch, 1e-12, &format!("mean of per-example {name}"));
    }
}

#[test]
fn grad_of_a_cnn_and_an_lstm_agrees_with_loss_and_grad_and_per_example_means() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = cnn(7);
    let file = save(&model, dir.path(), "cnn.safetensors", &[]);
    let n = 4;
    let x = images(n, 3);
    let t = [2.0, 0.0, 1.0, 2.0];
    let inputs = write(dir.path(), "x.csv", &rows_csv(&x, 64));
    let classes = write(dir.path(), "t.csv", "2\n0\n1\n2\n");
    let g = grad_json(&file, &inputs, &classes);
    check_grad(&g, &mut model.net, &x, &t, n);
    // The conv kernels keep their shape in JSON: 2 x 1 x 3 x 3.
    let w = &g["grad.0.weight"];
    assert_eq!(
        (
            w.as_array().unwrap().len(),
            w[0].as_array().unwrap().len(),
            w[0][0].as_array().unwrap().len(),
            w[0][0][0].as_array().unwrap().len()
        ),
        (2, 1, 3, 3)
    );
    // Targets given as whole outputs (one-hot rows) mean the same.
    let one_hot = write(dir.path(), "y.csv", "0,0,1\n1,0,0\n0,1,0\n0,0,1\n");
    assert_eq!(grad_json(&file, &inputs, &one_hot), g);

    // An LSTM over sequences of 7 token ids, a class per position.
    let mut seq = lstm(4);
    let sfile = save(&seq, dir.path(), "lstm.safetensors", &[]);
    let ids = [
        1.0, 0.0, 2.0, 4.0, 3.0, 3.0, 1.0, //
        0.0, 4.0, 4.0, 2.0, 1.0, 0.0, 3.0, //
        2.0, 2.0, 1.0, 0.0, 4.0, 1.0, 1.0,
    ];
    let next = [
        0.0, 2.0, 4.0, 3.0, 3.0, 1.0, 2.0, //
        4.0, 4.0, 2.0, 1.0, 0.0, 3.0, 0.0, //
        2.0, 1.0, 0.0, 4.0, 1.0, 1.0, 3.0,
    ];
    let g = grad_json(
        &sfile,
        &write(dir.path(), "ids.csv", &rows_csv(&ids, 7)),
        &write(dir.path(), "next.csv", &rows_csv(&next, 7)),
    );
    check_grad(&g, &mut seq.net, &ids, &next, 3);
    assert!(g.get("grad.1.weight_ih_l0").is_some());

    // --out keeps the names and shapes.
    let out = dir.path().join("g.safetensors");
    let o = backprop(&[
        "grad",
        "--model",
        path_str(&file),
        "--inputs",
        path_str(&inputs),
        "--targets",
        path_str(&classes),
        "--out",
        path_str(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (tensors, meta) = backprop::model_file::read_tensors(&out).unwrap();
    assert_eq!(meta["arch"], CNN);
    let (shape, values) = &tensors["grad.0.weight"];
    assert_eq!(shape, &[2, 1, 3, 3]);
    model
        .net
        .loss_and_grad(&x, &t, n, Cost::LogLikelihood)
        .unwrap();
    assert_close(values, model.net.grad("0.weight").unwrap(), 1e-13, "--out");
}

#[test]
fn grad_refuses_inputs_and_targets_that_do_not_fit_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = save(&cnn(1), dir.path(), "cnn.safetensors", &[]);
    let inputs = write(dir.path(), "x.csv", &rows_csv(&images(2, 1), 64));
    let run = |x: &Path, t: &Path| {
        backprop(&[
            "grad",
            "--model",
            path_str(&file),
            "--inputs",
            path_str(x),
            "--targets",
            path_str(t),
        ])
    };
    refused(
        &run(
            &write(dir.path(), "short.csv", "1,2\n3,4\n"),
            &write(dir.path(), "t.csv", "0\n1\n"),
        ),
        &["--inputs", "2 values", "1x8x8 = 64 values"],
    );
    refused(
        &run(&inputs, &write(dir.path(), "t2.csv", "0,1\n1,0\n")),
        &["--targets", "2 values", "3 values or 1 class index"],
    );
    refused(
        &run(&inputs, &write(dir.path(), "t3.csv", "0\n3\n")),
        &["--targets", "not a class from 0 to 2"],
    );
    refused(
        &run(&inputs, &write(dir.path(), "t4.csv", "0,0.5,0.5\n1,0,0\n")),
        &["--targets", "row 1", "not one-hot"],
    );
    refused(
        &run(&inputs, &write(dir.path(), "t5.csv", "0\n1\n2\n")),
        &["--inputs has 2 rows but --targets has 3 rows"],
    );
    let sfile = save(&lstm(1), dir.path(), "lstm.safetensors", &[]);
    let o = backprop(&[
        "grad",
        "--model",
        path_str(&sfile),
        "--inputs",
        path_str(&write(dir.path(), "ids.csv", "1,0,2,7,3,3,1\n")),
        "--targets",
        path_str(&write(dir.path(), "n.csv", "1,0,2,4,3,3,1\n")),
    ]);
    refused(&o, &["--inputs", "token id from 0 to 4"]);
    refused(
        &backprop(&[
            "grad",
            "--model",
            path_str(&sfile),
            "--inputs",
            path_str(&write(dir.path(), "ids2.csv", "1,0,2,4,3,3,1\n")),
            "--targets",
            path_str(&write(dir.path(), "n2.csv", "1,0,2\n")),
        ]),
        &["--targets", "35 values or 7 class indices"],
    );
}

/// The worst relative error that `gradcheck` printed.
fn worst_error(out: &str) -> f64 {
    let at = out.find("worst relative error ").expect(out) + "worst relative error ".len();
    out[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn gradcheck_passes_on_a_conv_arch_and_an_lstm_and_fails_at_tolerance_zero() {
    for (arch, shape) in [
        ("Conv2d(2, 3, 3, padding=1), Tanh(), MaxPool2d(2), Flatten(), Linear(12, 4), Softmax(dim=-1)", "2,4,4"),
        ("Embedding(6, 3), LSTM(3, 4, num_layers=2), Linear(4, 6), Softmax(dim=-1)", "5"),
        ("LSTM(3, 4), Linear(4, 2), Sigmoid()", "4,3"),
    ] {
        let o = backprop(&["gradcheck", "--arch", arch, "--input-shape", shape, "--batch", "3"]);
        let out = stdout(&o);
        assert!(o.status.success(), "{arch}: {out} {}", stderr(&o));
        assert!(out.starts_with("model "), "{out}");
        assert!(out.contains("PASS (tolerance 1e-6)"), "{out}");
        let worst = worst_error(&out);
        assert!(worst < 1e-7, "{arch}: {worst}");
    }
    // LeNet-5 (a preset): ReLU kinks within 2h of a value among the thousands a conv bias
    // moves; measured again with a smaller step, they pass.
    let o = backprop(&[
        "gradcheck",
        "--arch",
        "lenet5",
        "--input-shape",
        "1,28,28",
        "--batch",
        "2",
        "--checks",
        "300",
    ]);
    let out = stdout(&o);
    assert!(
        out.contains("of 61706 parameters (drawn at random)"),
        "{out}"
    );
    assert!(worst_error(&out) < 1e-6, "{out}");
    // The LSTM ends with Sigmoid: quadratic cost by default, every parameter checked.
    let o = backprop(&[
        "gradcheck",
        "--arch",
        "LSTM(3, 4), Linear(4, 2), Sigmoid()",
        "--input-shape",
        "4,3",
    ]);
    let out = stdout(&o);
    assert!(out.contains("cost quadratic"), "{out}");
    assert!(out.contains("\n154 parameters:"), "{out}");
    // Sampled: --checks of them, at least one from each tensor.
    let o = backprop(&[
        "gradcheck",
        "--arch",
        "Linear(20, 30), Tanh(), Linear(30, 2)",
        "--input-shape",
        "20",
        "--checks",
        "50",
    ]);
    let out = stdout(&o);
    assert!(out.contains("of 692 parameters (drawn at random)"), "{out}");
    let checked: usize = out
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((48..=52).contains(&checked), "{checked}");
    // The comparison is real: at tolerance 0 a rounding-level difference fails.
    let o = backprop(&[
        "gradcheck",
        "--arch",
        "Linear(3, 2), Tanh()",
        "--input-shape",
        "3",
        "--tolerance",
        "0",
    ]);
    assert!(stdout(&o).contains("FAIL"), "{}", stdout(&o));
    assert!(stderr(&o).contains("gradient check failed"));
    assert!(!o.status.success());
}

#[test]
fn gradcheck_refusals_name_the_flag() {
    refused(
        &backprop(&[
            "gradcheck",
            "--arch",
            "Conv2d(1, 2, 5), Flatten()",
            "--input-shape",
            "1,3,3",
        ]),
        &["--arch", "--input-shape 1,3,3"],
    );
    refused(
        &backprop(&[
            "gradcheck",
            "--arch",
            "Linear(3, 2)",
            "--input-shape",
            "3",
            "--cost",
            "log-likelihood",
        ]),
        &["--cost log-likelihood", "Softmax"],
    );
    refused(
        &backprop(&["gradcheck", "--arch", "Linear(3, 2", "--input-shape", "3"]),
        &["--arch"],
    );
    refused(
        &backprop(&[
            "gradcheck",
            "--arch",
            "Linear(3, 2)",
            "--input-shape",
            "3,0",
        ]),
        &["--input-shape"],
    );
    refused(
        &backprop(&[
            "gradcheck",
            "--arch",
            "Linear(3, 2)",
            "--input-shape",
            "3",
            "--checks",
            "0",
        ]),
        &["--checks 0"],
    );
    refused(
        &backprop(&[
            "gradcheck",
            "--arch",
            "Linear(60000, 60000)",
            "--input-shape",
            "60000",
        ]),
        &["--arch", "parameters"],
    );
    refused(
        &backprop(&[
            "gradcheck",
            "--arch",
            "Conv2d(1, 64, 3, padding=1)",
            "--input-shape",
            "1,200,200",
            "--batch",
            "100",
        ]),
        &["--batch 100"],
    );
}

/// A character model over "hello world\n" (9 characters), windows of `t`.
fn char_model(arch: &str, t: usize, seed: u64) -> ArchModel<f64> {
    let vocab = Vocab::of("hello world\n");
    let arch: Arch = arch.parse().unwrap();
    ArchModel::new(&arch, &[t], Cost::LogLikelihood, Some(vocab), seed).unwrap()
}

const CHAR_LSTM: &str = "Embedding(9, 8), LSTM(8, 16), Linear(16, 9), Softmax(dim=-1)";

fn sample(file: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["sample", "--model", path_str(file)];
    args.extend_from_slice(extra);
    backprop(&args)
}

#[test]
fn sample_is_reproducible_starts_with_the_prime_and_keeps_to_length() {
    let dir = tempfile::tempdir().unwrap();
    let file = save(
        &char_model(CHAR_LSTM, 12, 1),
        dir.path(),
        "c.safetensors",
        &[],
    );
    let run = |seed: &str| {
        let o = sample(
            &file,
            &["--prime", "hello", "--length", "40", "--seed", seed],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let (a, b, c) = (run("3"), run("3"), run("4"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.starts_with("hello"), "{a:?}");
    // The prime, 40 characters, and a newline to end the output.
    assert_eq!(a.chars().count(), 5 + 40 + 1, "{a:?}");
    assert!(a.ends_with('\n'));
    let vocab = Vocab::of("hello world\n");
    assert!(vocab.encode(&a, "output").is_ok());
    // Without --prime: a newline (in this vocabulary) is the prime.
    let o = sample(&file, &["--length", "7"]);
    assert_eq!(stdout(&o).chars().count(), 1 + 7 + 1);
    assert!(stdout(&o).starts_with('\n'));
    // --length 0: the prime only.
    assert_eq!(
        stdout(&sample(&file, &["--prime", "he", "--length", "0"])),
        "he\n"
    );
}

#[test]
fn sample_at_a_tiny_temperature_follows_the_models_arg_max_over_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = Vocab::of("hello world\n");
    // Windows of 4: the prime fills one, then the window slides.
    let mut model = char_model(CHAR_LSTM, 4, 9);
    let file = save(&model, dir.path(), "c4.safetensors", &[]);
    let mut ids: Vec<u32> = vocab.encode("hell", "prime").unwrap();
    for _ in 0..12 {
        let x: Vec<f64> = ids[ids.len() - 4..].iter().map(|&i| i as f64).collect();
        let a = model.net.predict(&x, 1).unwrap();
        ids.push(argmax(&a[3 * 9..]) as u32);
    }
    let expected = format!("{}\n", vocab.decode(&ids));
    for seed in ["1", "2"] {
        let o = sample(
            &file,
            &[
                "--prime",
                "hell",
                "--length",
                "12",
                "--temperature",
                "1e-9",
                "--seed",
                seed,
            ],
        );
        assert_eq!(stdout(&o), expected, "seed {seed}");
    }

    // Before a window of 12 exists, the LSTM runs over the shorter text from a fresh state:
    // the same as a model of input shape 2 with the same parameters.
    let long = char_model(CHAR_LSTM, 12, 9);
    let lfile = save(&long, dir.path(), "c12.safetensors", &[]);
    let arch: Arch = CHAR_LSTM.parse().unwrap();
    let mut short = Sequential::<f64>::new(&arch, &[2], 0).unwrap();
    for ((_, _, dst), (_, _, src)) in short.params_mut().zip(long.net.params()) {
        dst.copy_from_slice(src);
    }
    let prime = vocab.encode("wo", "prime").unwrap();
    let a = short
        .predict(&[prime[0] as f64, prime[1] as f64], 1)
        .unwrap();
    let first = vocab.decode(&[argmax(&a[9..]) as u32]);
    let o = sample(
        &lfile,
        &["--prime", "wo", "--length", "1", "--temperature", "1e-9"],
    );
    assert_eq!(stdout(&o), format!("wo{first}\n"));

    // A model whose layers need exactly T (Flatten) samples too, padded on the left.
    let flat = char_model(
        "Embedding(9, 3), Flatten(), Linear(15, 9), Softmax(dim=-1)",
        5,
        2,
    );
    let ffile = save(&flat, dir.path(), "flat.safetensors", &[]);
    let o = sample(&ffile, &["--prime", "ho", "--length", "20"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).chars().count(), 2 + 20 + 1);
}

#[test]
fn sample_refusals_name_the_flag_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = save(
        &char_model(CHAR_LSTM, 8, 1),
        dir.path(),
        "c.safetensors",
        &[],
    );
    refused(
        &sample(&file, &["--prime", "hex yz"]),
        &[
            "--prime",
            "'x'",
            "'y'",
            "'z'",
            "not in the model's vocabulary",
        ],
    );
    refused(&sample(&file, &["--prime", ""]), &["--prime", "empty"]);
    for t in ["0", "-1", "inf", "NaN"] {
        refused(
            &sample(&file, &["--temperature", t]),
            &[&format!("--temperature {t}"), "> 0"],
        );
    }
    refused(
        &sample(&file, &["--length", "100001"]),
        &["--length 100001", "100000"],
    );
    // No vocab: a model of layers that is not a character model.
    let no_vocab = save(&lstm(1), dir.path(), "lstm.safetensors", &[]);
    refused(
        &sample(&no_vocab, &[]),
        &["lstm.safetensors", "not a character model"],
    );
    // A fully connected network of the post.
    let net = backprop::network::Network::<f32>::new(
        &[2, 3],
        &[backprop::network::Activation::Softmax],
        Cost::LogLikelihood,
        backprop::network::Init::Xavier,
        1,
    )
    .unwrap();
    let mlp = dir.path().join("mlp.safetensors");
    backprop::model_file::save(&net, &mlp, &[]).unwrap();
    refused(
        &sample(&mlp, &[]),
        &["mlp.safetensors", "not a character model"],
    );
    refused(
        &sample(&dir.path().join("missing.safetensors"), &[]),
        &["missing.safetensors"],
    );
}
