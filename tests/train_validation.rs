//! Early stopping watches a validation part cut from the training data, never the test
//! part; weight decay can leave the biases alone (hand-computed numbers).

use std::collections::BTreeMap;
use std::process::{Command, Output};

use backprop::data::synthetic;
use backprop::linalg::Matrix;
use backprop::network::{Activation, Cost, Gradients, Layer, Network};
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use backprop::train::{TrainConfig, Trainer};

#[test]
fn the_validation_part_is_a_seeded_stratified_cut_of_the_training_data() {
    let data = synthetic::moons(400, 2);
    let c = TrainConfig {
        validation_split: 0.1,
        seed: 5,
        ..TrainConfig::default()
    };
    let (train, validation) = c.split_validation(data.clone()).unwrap();
    let validation = validation.unwrap();
    assert_eq!((train.len(), validation.len()), (360, 40));
    assert_eq!(validation.class_counts(), vec![20, 20]);
    // Every example in exactly one part.
    let mut all: Vec<Vec<u32>> = train
        .inputs
        .chunks(2)
        .chain(validation.inputs.chunks(2))
        .map(|x| x.iter().map(|v| v.to_bits()).collect())
        .collect();
    let mut expected: Vec<Vec<u32>> = data
        .inputs
        .chunks(2)
        .map(|x| x.iter().map(|v| v.to_bits()).collect())
        .collect();
    all.sort();
    expected.sort();
    assert_eq!(all, expected);
    // The same seed cuts the same part; another seed another.
    assert_eq!(
        c.split_validation(data.clone()).unwrap().1.unwrap(),
        validation
    );
    let other = TrainConfig {
        seed: 6,
        ..c.clone()
    };
    assert_ne!(
        other.split_validation(data.clone()).unwrap().1.unwrap(),
        validation
    );
    // None without a fraction.
    let none = TrainConfig::default().split_validation(data).unwrap();
    assert!(none.1.is_none() && none.0.len() == 400);
}

#[test]
fn early_stopping_watches_the_validation_accuracy() {
    let split = synthetic::xor(300, 1).stratified_split(0.3, 1).unwrap();
    let c = TrainConfig {
        epochs: 200,
        patience: Some(4),
        validation_split: 0.25,
        hidden: vec![8],
        lr: 0.5,
        ..TrainConfig::default()
    };
    let (train, validation) = c.split_validation(split.train.clone()).unwrap();
    let validation = validation.unwrap();
    let mut t = Trainer::<f64>::new(c, 2, 2).unwrap();
    while !t.finished() {
        t.run_epoch_validated(&train, Some(&validation), &split.test, None)
            .unwrap();
    }
    let h = t.history();
    assert!(h.len() < 200, "patience never stopped the run");
    let v: Vec<f64> = h.iter().map(|r| r.validation_accuracy.unwrap()).collect();
    let best = v.iter().copied().fold(0.0, f64::max);
    let best_epoch = v.iter().position(|&a| a == best).unwrap() + 1;
    assert_eq!(h.len(), best_epoch + 4);
    let kept = backprop::train::evaluate(t.final_network(), &validation).unwrap();
    assert_eq!(kept.accuracy, best);
    // The test metrics are still those of the test part.
    let last = backprop::train::evaluate(t.network(), &split.test).unwrap();
    assert_eq!(h.last().unwrap().test_accuracy, last.accuracy);
}

#[test]
fn settings_round_trip_through_metadata_and_old_files_keep_their_meaning() {
    let mut c = TrainConfig {
        validation_split: 0.15,
        patience: Some(3),
        ..TrainConfig::default()
    };
    c.optimizer.weight_decay = 0.01;
    c.optimizer.decay_biases = false;
    let meta: BTreeMap<String, String> = c.to_metadata().into_iter().collect();
    assert_eq!(meta["train.validation_split"], "0.15");
    assert_eq!(meta["train.weight_decay_biases"], "false");
    assert_eq!(TrainConfig::from_metadata(&meta).unwrap(), c);
    // A file from before these keys: no validation part, biases decayed.
    let mut old = meta.clone();
    old.remove("train.validation_split");
    old.remove("train.weight_decay_biases");
    let o = TrainConfig::from_metadata(&old).unwrap();
    assert_eq!((o.validation_split, o.optimizer.decay_biases), (0.0, true));
}

/// One layer, w = (0.5, -1), b = 0.25; dJ/dw = (0.1, 0.2), dJ/db = -0.5.
fn one_step(kind: OptimizerKind, lr: f64, decay_biases: bool) -> (Vec<f64>, f64) {
    let mut net = Network {
        layers: vec![Layer {
            weights: Matrix::from_vec(1, 2, vec![0.5f64, -1.0]).unwrap(),
            biases: vec![0.25],
            activation: Activation::Sigmoid,
        }],
        cost: Cost::Quadratic,
    };
    let grads = Gradients {
        weights: vec![Matrix::from_vec(1, 2, vec![0.1, 0.2]).unwrap()],
        biases: vec![vec![-0.5]],
    };
    let mut c = OptimizerConfig::new(kind);
    c.weight_decay = 0.1;
    c.decay_biases = decay_biases;
    let mut o = Optimizer::new(c, &net).unwrap();
    o.step(&mut net, &grads, lr).unwrap();
    (
        net.layers[0].weights.as_slice().to_vec(),
        net.layers[0].biases[0],
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn weight_decay_leaves_the_biases_alone_on_request() {
    // SGD, eta = 3, lambda = 0.1: w <- w - eta (dJ/dw + lambda w).
    // w0 = 0.5 - 3 (0.1 + 0.05) = 0.05; w1 = -1 - 3 (0.2 - 0.1) = -1.3.
    // b with decay: 0.25 - 3 (-0.5 + 0.025) = 1.675; without: 0.25 - 3 (-0.5) = 1.75.
    for kind in [
        OptimizerKind::Sgd,
        OptimizerKind::Momentum,
        OptimizerKind::Nesterov,
    ] {
        let (w, b) = one_step(kind, 3.0, true);
        // Momentum's first buffer is g; Nesterov steps by g + mu g = 1.9 g.
        let k = if kind == OptimizerKind::Nesterov {
            1.9
        } else {
            1.0
        };
        assert!(
            close(w[0], 0.5 - 3.0 * k * 0.15) && close(w[1], -1.0 - 3.0 * k * 0.1),
            "{kind:?} {w:?}"
        );
        assert!(close(b, 0.25 + 3.0 * k * 0.475), "{kind:?} {b}");
        let (w2, b2) = one_step(kind, 3.0, false);
        assert_eq!(w2, w, "{kind:?}: the weights decay either way");
        assert!(close(b2, 0.25 + 3.0 * k * 0.5), "{kind:?} {b2}");
    }
    assert!(close(one_step(OptimizerKind::Sgd, 3.0, true).1, 1.675));
    assert!(close(one_step(OptimizerKind::Sgd, 3.0, false).1, 1.75));
    // AdamW, eta = 0.01: b <- b (1 - eta lambda), then Adam's first step moves it by
    // eta g / (|g| + eps) = -0.01 / (1 + 2e-8) (m^ = g, v^ = g^2).
    let adam_move = 0.01 * 0.5 / (0.5 + 1e-8);
    let (_, b) = one_step(OptimizerKind::AdamW, 0.01, true);
    assert!(close(b, 0.25 * (1.0 - 0.001) + adam_move), "{b}");
    let (_, b) = one_step(OptimizerKind::AdamW, 0.01, false);
    assert!(close(b, 0.25 + adam_move), "{b}");
    // Adam adds lambda b to the gradient: g = -0.5 + 0.025 = -0.475, and the first step
    // is eta g / (|g| + eps) again.
    let (_, b) = one_step(OptimizerKind::Adam, 0.01, true);
    assert!(close(b, 0.25 + 0.01 * 0.475 / (0.475 + 1e-8)), "{b}");
    let (_, b) = one_step(OptimizerKind::Adam, 0.01, false);
    assert!(close(b, 0.25 + adam_move), "{b}");
}

fn backprop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn train_with_patience_watches_a_validation_part_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let m = model.to_str().unwrap();
    let o = backprop(&[
        "train",
        "--epochs",
        "6",
        "--patience",
        "2",
        "--out",
        m,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let epochs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("epoch").is_some())
        .collect();
    assert!(!epochs.is_empty());
    for e in &epochs {
        assert!(e["validation_accuracy"].as_f64().is_some(), "{e}");
    }
    let meta = backprop::model_file::load(&model).unwrap().metadata;
    assert_eq!(meta["train.validation_split"], "0.1");
    // The test part is still the digits' 359: eval on it agrees with training's summary.
    let summary: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let e = backprop(&["eval", "--model", m, "--json"]);
    let e: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&e.stdout).trim()).unwrap();
    assert_eq!(e["n"], 359);
    assert_eq!(e["accuracy"], summary["test_accuracy"]);

    // 1438 training digits: 145 held out for validation (a tenth of each class, rounded).
    let o = backprop(&["train", "--epochs", "1", "--validation-split", "0.1"]);
    assert!(
        stderr(&o).contains("(1293 train, 145 validation, 359 test examples)"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("validation accuracy"), "{}", stderr(&o));
    // The log has the validation columns; the checkpoint records the fraction.
    let (log, ckpt) = (dir.path().join("l.csv"), dir.path().join("c.safetensors"));
    let (l, c) = (log.to_str().unwrap(), ckpt.to_str().unwrap());
    let o = backprop(&[
        "train",
        "--epochs",
        "2",
        "--patience",
        "5",
        "--log",
        l,
        "--checkpoint",
        c,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,lr,train_loss,test_loss,test_accuracy,seconds,validation_loss,validation_accuracy"
    );
    assert_eq!(lines.len(), 3);
    for row in &lines[1..] {
        let cells: Vec<f64> = row.split(',').map(|c| c.parse().unwrap()).collect();
        assert_eq!(cells.len(), 8);
        assert!((0.0..=1.0).contains(&cells[7]), "{row}");
    }
    let meta = backprop::model_file::load(&ckpt).unwrap().metadata;
    assert_eq!(meta["train.validation_split"], "0.1");
    // Without --patience, no validation part unless asked for.
    let o = backprop(&["train", "--epochs", "1"]);
    assert!(
        stderr(&o).contains("(1438 train, 359 test examples)"),
        "{}",
        stderr(&o)
    );
    // --patience with no validation part would watch the test part: refused.
    for (flags, needle) in [
        (
            &["--patience", "2", "--validation-split", "0"][..],
            "--validation-split 0",
        ),
        (&["--validation-split", "1"], "--validation-split 1"),
        (&["--validation-split", "-0.1"], "--validation-split -0.1"),
    ] {
        let mut args = vec!["train", "--epochs", "1"];
        args.extend_from_slice(flags);
        let o = backprop(&args);
        assert!(!o.status.success(), "{flags:?}");
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
        assert_eq!(stderr(&o).trim_end().lines().count(), 1, "{}", stderr(&o));
    }
}

#[test]
fn train_records_whether_biases_decay() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let m = model.to_str().unwrap();
    for (flag, recorded) in [
        (None, "true"),
        (Some("false"), "false"),
        (Some("true"), "true"),
    ] {
        let mut args = vec![
            "train",
            "--epochs",
            "1",
            "--weight-decay",
            "0.001",
            "--out",
            m,
        ];
        if let Some(f) = flag {
            args.extend(["--weight-decay-biases", f]);
        }
        let o = backprop(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let meta = backprop::model_file::load(&model).unwrap().metadata;
        assert_eq!(meta["train.weight_decay_biases"], recorded);
    }
    let o = backprop(&["train", "--epochs", "1", "--weight-decay-biases", "maybe"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--weight-decay-biases"),
        "{}",
        stderr(&o)
    );
}
