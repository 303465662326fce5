//! A run that diverges stops with the reason and the learning rate, keeping the last
//! good state; a checkpoint's settings are checked as the flags are.

use backprop::data::{synthetic, Dataset};
use backprop::model_file::{read_tensors, save_tensors, NamedTensor};
use backprop::network::Activation;
use backprop::train::{TrainConfig, TrainError, Trainer, DIVERGENCE_FACTOR};
use std::path::Path;

fn moons() -> (Dataset, Dataset) {
    let s = synthetic::moons(200, 5).stratified_split(0.25, 5).unwrap();
    (s.train, s.test)
}

/// Runs until the end or an error; returns the trainer and the error, if any.
fn run(config: TrainConfig) -> (Trainer<f32>, Option<TrainError>) {
    let (train, test) = moons();
    let mut t = Trainer::<f32>::new(config, 2, 2).unwrap();
    while !t.finished() {
        if let Err(e) = t.run_epoch(&train, &test, None) {
            return (t, Some(e));
        }
    }
    (t, None)
}

/// Checks a divergence: the error's numbers, and a kept state whose losses are all
/// finite and within the factor.
fn assert_diverged(t: &Trainer<f32>, e: Option<TrainError>, lr: f64) {
    let Some(e) = e else {
        panic!(
            "no divergence; losses {:?}",
            t.history()
                .iter()
                .map(|r| (r.train_loss, r.test_loss))
                .collect::<Vec<_>>()
        );
    };
    let text = e.to_string();
    let TrainError::Diverged {
        epoch,
        value,
        start,
        lr: used,
        ..
    } = e
    else {
        panic!("wrong error: {text}");
    };
    let start = start.expect("the start is measured before epoch 1");
    // Two classes, near-uniform outputs at the start: J near ln 2.
    assert!((0.3..1.5).contains(&start), "start {start}");
    assert!(
        value.is_nan() || value > DIVERGENCE_FACTOR * start,
        "{value} vs start {start}"
    );
    assert_eq!(used, lr);
    assert_eq!(epoch, t.history().len() + 1);
    assert!(
        text.contains(&format!("try a lower --lr (it was {lr})")),
        "{text}"
    );
    for r in t.history() {
        assert!(
            r.train_loss <= DIVERGENCE_FACTOR * start && r.test_loss <= DIVERGENCE_FACTOR * start
        );
    }
    for l in &t.network().layers {
        assert!(l
            .weights
            .as_slice()
            .iter()
            .chain(&l.biases)
            .all(|x| x.is_finite()));
    }
}

#[test]
fn sigmoid_at_lr_1e12_stops_instead_of_saving_a_loss_of_1e12() {
    let c = TrainConfig {
        hidden: vec![8],
        lr: 1e12,
        epochs: 5,
        ..TrainConfig::default()
    };
    let (t, e) = run(c);
    assert_diverged(&t, e, 1e12);
}

#[test]
fn relu_log_likelihood_at_lr_1e8_stops_instead_of_climbing() {
    let c = TrainConfig {
        hidden: vec![8],
        activation: Activation::Relu,
        lr: 1e8,
        epochs: 5,
        ..TrainConfig::default()
    };
    let (t, e) = run(c);
    assert_diverged(&t, e, 1e8);
}

#[test]
fn a_good_rate_trains_on_and_records_its_start() {
    let c = TrainConfig {
        hidden: vec![8],
        lr: 0.5,
        epochs: 3,
        ..TrainConfig::default()
    };
    let (t, e) = run(c);
    assert!(e.is_none(), "{}", e.unwrap());
    let start = t.start_loss().unwrap();
    assert!((0.3..1.5).contains(&start), "start {start}");
    assert!(t.history().last().unwrap().test_loss < start);
}

#[test]
fn inputs_too_large_are_blamed_not_the_learning_rate() {
    // Quadratic cost on an identity output: inputs of 1e30 give (a - y)^2 of about 1e60,
    // infinite in f32 before any step is taken.
    let data = Dataset::new(vec![1e30, -1e30, 2e30, 1e29], vec![0, 1, 0, 1], 1).unwrap();
    let c = TrainConfig {
        hidden: vec![],
        output_activation: Activation::Identity,
        cost: backprop::network::Cost::Quadratic,
        init: backprop::network::Init::Large,
        ..TrainConfig::default()
    };
    let mut t = Trainer::<f32>::new(c, 1, 2).unwrap();
    let e = t.run_epoch(&data, &data, None).unwrap_err();
    assert!(matches!(e, TrainError::Data(_)), "{e}");
    assert!(
        e.to_string().contains("inputs are too large for f32"),
        "{e}"
    );
    assert!(!e.to_string().contains("--lr"), "{e}");
}

// ---- checkpoints are checked like flags -------------------------------------------------

/// Saves a checkpoint after one epoch, then rewrites its metadata key `key` to `value`.
fn tampered(dir: &Path, key: &str, value: &str) -> std::path::PathBuf {
    let (train, test) = moons();
    let c = TrainConfig {
        hidden: vec![4],
        patience: Some(2),
        epochs: 3,
        ..TrainConfig::default()
    };
    let mut t = Trainer::<f64>::new(c, 2, 2).unwrap();
    t.run_epoch(&train, &test, None).unwrap();
    let path = dir.join(format!("{key}.safetensors"));
    t.save_checkpoint(&path, &[("scaling".into(), "none".into())])
        .unwrap();
    let (tensors, mut meta) = read_tensors(&path).unwrap();
    meta.insert(key.into(), value.into());
    let named: Vec<NamedTensor<'_, f64>> = tensors
        .iter()
        .map(|(n, (shape, v))| (n.as_str(), shape.as_slice(), v.as_slice()))
        .collect();
    let meta: Vec<(String, String)> = meta.into_iter().collect();
    save_tensors(&path, &named, &meta).unwrap();
    path
}

#[test]
fn a_checkpoint_is_validated_like_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    // Untouched, it resumes, with the start it recorded.
    let path = tampered(dir.path(), "data", "moons");
    let (t, _) = Trainer::<f64>::resume(&path).unwrap();
    assert!(t.start_loss().is_some());
    for (key, value, expected) in [
        (
            "train.lr",
            "-1",
            "metadata train.lr = -1: must be a positive finite number",
        ),
        (
            "train.lr",
            "NaN",
            "metadata train.lr = NaN: must be a positive finite number",
        ),
        (
            "train.patience",
            "0",
            "metadata train.patience = 0: must be at least 1",
        ),
        (
            "train.batch",
            "18446744073709551615",
            "metadata train.batch = 18446744073709551615: must be from 1 to 1000000000",
        ),
        (
            "train.momentum",
            "1.5",
            "metadata train.momentum = 1.5: must be in [0, 1)",
        ),
        (
            "train.weight_decay",
            "-0.1",
            "metadata train.weight_decay = -0.1: must be a finite number >= 0",
        ),
        (
            "train.epochs",
            "0",
            "metadata train.epochs = 0: must be at least 1",
        ),
        (
            "checkpoint.start_loss",
            "inf",
            "checkpoint.start_loss = \"inf\": not a finite loss",
        ),
    ] {
        let path = tampered(dir.path(), key, value);
        let e = Trainer::<f64>::resume(&path).err().expect("refused");
        assert!(matches!(e, TrainError::Checkpoint { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains(expected), "{key} = {value}: {text}");
        assert!(text.starts_with(&path.display().to_string()), "{text}");
    }
}

#[test]
fn the_library_refuses_what_the_flags_refuse() {
    for (config, setting) in [
        (
            TrainConfig {
                lr: f64::NAN,
                ..TrainConfig::default()
            },
            "lr",
        ),
        (
            TrainConfig {
                batch: 0,
                ..TrainConfig::default()
            },
            "batch",
        ),
        (
            TrainConfig {
                patience: Some(0),
                ..TrainConfig::default()
            },
            "patience",
        ),
        (
            TrainConfig {
                hidden: vec![3, 0],
                ..TrainConfig::default()
            },
            "hidden",
        ),
    ] {
        match Trainer::<f32>::new(config, 2, 2) {
            Err(TrainError::Config(e)) => assert_eq!(e.setting, setting),
            Err(e) => panic!("{setting}: wrong error {e}"),
            Ok(_) => panic!("{setting}: accepted"),
        }
    }
}
