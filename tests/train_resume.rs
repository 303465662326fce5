//! The training loop in the library: resuming mid-run reproduces the uninterrupted run
//! exactly, for every optimizer and schedule; early stopping keeps the best network.

use backprop::data::synthetic;
use backprop::optim::{OptimizerConfig, OptimizerKind, Schedule};
use backprop::train::{TrainConfig, Trainer};

fn config(kind: OptimizerKind, schedule: Schedule, patience: Option<usize>) -> TrainConfig {
    TrainConfig {
        hidden: vec![16, 8],
        activation: backprop::network::Activation::Tanh,
        optimizer: OptimizerConfig::new(kind),
        lr: if matches!(kind, OptimizerKind::Adam | OptimizerKind::AdamW) {
            0.01
        } else {
            0.1
        },
        schedule,
        epochs: 7,
        patience,
        ..TrainConfig::default()
    }
}

#[test]
fn resume_after_any_epoch_equals_the_uninterrupted_run() {
    let split = synthetic::moons(400, 3).stratified_split(0.25, 3).unwrap();
    let (train, test) = (&split.train, &split.test);
    let dir = tempfile::tempdir().unwrap();
    for kind in OptimizerKind::ALL {
        for schedule in [
            Schedule::Constant,
            Schedule::Cosine { epochs: 7 },
            Schedule::Step {
                every: 2,
                gamma: 0.5,
            },
        ] {
            let c = config(kind, schedule, Some(3));
            let mut full = Trainer::<f64>::new(c.clone(), train.features, 2).unwrap();
            while !full.finished() {
                full.run_epoch(train, test, None).unwrap();
            }
            let stop = 3;
            let mut first = Trainer::<f64>::new(c, train.features, 2).unwrap();
            for _ in 0..stop {
                first.run_epoch(train, test, None).unwrap();
            }
            let path = dir.path().join("ckpt.safetensors");
            first.save_checkpoint(&path, &[]).unwrap();
            let (mut resumed, _) = Trainer::<f64>::resume(&path).unwrap();
            assert_eq!(resumed.history(), first.history());
            while !resumed.finished() {
                resumed.run_epoch(train, test, None).unwrap();
            }
            assert_eq!(resumed.network(), full.network(), "{kind:?} {schedule:?}");
            assert_eq!(
                resumed.final_network(),
                full.final_network(),
                "{kind:?} {schedule:?}"
            );
            let accs = |t: &Trainer<f64>| {
                t.history()
                    .iter()
                    .map(|r| r.test_accuracy)
                    .collect::<Vec<_>>()
            };
            assert_eq!(accs(&resumed), accs(&full));
        }
    }
}

#[test]
fn early_stopping_keeps_the_best_network_and_stops_after_patience() {
    let split = synthetic::xor(200, 1).stratified_split(0.3, 1).unwrap();
    let c = TrainConfig {
        epochs: 200,
        patience: Some(4),
        hidden: vec![8],
        lr: 0.5,
        ..TrainConfig::default()
    };
    let mut t = Trainer::<f64>::new(c, 2, 2).unwrap();
    while !t.finished() {
        t.run_epoch(&split.train, &split.test, None).unwrap();
    }
    let h = t.history();
    assert!(h.len() < 200, "patience never stopped the run");
    let best = h.iter().map(|r| r.test_accuracy).fold(0.0, f64::max);
    let best_epoch = h.iter().position(|r| r.test_accuracy == best).unwrap() + 1;
    assert_eq!(
        h.len(),
        best_epoch + 4,
        "stopped {} epochs after the best",
        h.len() - best_epoch
    );
    let kept = backprop::train::evaluate(t.final_network(), &split.test).unwrap();
    assert_eq!(kept.accuracy, best);
}

#[test]
fn a_checkpoint_of_another_precision_is_refused() {
    let data = synthetic::xor(50, 1);
    let t = Trainer::<f32>::new(TrainConfig::default(), 2, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    t.save_checkpoint(&path, &[]).unwrap();
    let err = Trainer::<f64>::resume(&path)
        .err()
        .expect("F32 into f64 must fail");
    assert!(err.to_string().contains("F32"), "{err}");
    assert_eq!(data.features, 2);
}
