//! `backprop train --dp-noise SIGMA --dp-clip C` (or `--dp-epsilon EPS`): private training
//! by DP-SGD, epsilon after every epoch, in the model file, and through a resume.

mod common;

use std::path::Path;

use common::{backprop, path_str, privacy_epsilon, refused, stderr, stdout};
use serde_json::Value;

/// The digits, 1438 training examples; batches of 50 expected: q = 50 / 1438, 29 steps
/// per epoch (28.76 rounded).
const RUN: [&str; 11] = [
    "train",
    "--hidden",
    "30",
    "--activation",
    "relu",
    "--batch",
    "50",
    "--lr",
    "0.5",
    "--dp-clip",
    "1",
];

fn run_json(args: &[&str]) -> Vec<Value> {
    let o = backprop(&[&RUN[..], args, &["--json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect()
}

fn train_to(out: &Path, args: &[&str]) -> std::process::Output {
    let o = backprop(&[&RUN[..], args, &["--out", path_str(out)]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

#[test]
fn the_same_seed_gives_the_same_model_file_and_another_seed_another() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c] = ["a", "b", "c"].map(|n| dir.path().join(format!("{n}.safetensors")));
    let args = ["--dp-noise", "1", "--epochs", "2", "--seed", "5"];
    let o = train_to(&a, &args);
    train_to(&b, &args);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    train_to(&c, &["--dp-noise", "1", "--epochs", "2", "--seed", "6"]);
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    // The run states its settings, delta = 1 / (10 N) by default, and epsilon per epoch.
    let err = stderr(&o);
    assert!(
        err.contains(
            "private training: noise multiplier 1, clipping norm 1, delta 6.954e-5 (1/(10 N), the default), sample rate 0.03477"
        ) && err.contains("privacy spent: epsilon") && err.contains("at delta 6.954e-5 after"),
        "{err}"
    );
    assert!(err.contains("29 steps per epoch"), "{err}");
    assert!(
        err.contains("test accuracy") && err.contains("%, epsilon "),
        "{err}"
    );
    // The model file records the privacy spent and how.
    let m = backprop::model_file::load(&a).unwrap().metadata;
    assert_eq!(m["dp_noise"], "1");
    assert_eq!(m["dp_clip"], "1");
    assert_eq!(m["dp_steps"], "58");
    assert_eq!(m["dp_sample_rate"], (50.0f64 / 1438.0).to_string());
    assert_eq!(m["dp_delta"], (1.0f64 / 14380.0).to_string());
    let eps: f64 = m["dp_epsilon"].parse().unwrap();
    assert_eq!(eps, privacy_epsilon(1.0, 50.0 / 1438.0, 58, 1.0 / 14380.0));
}

#[test]
fn secure_noise_is_not_repeatable_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b] = ["a", "b"].map(|n| dir.path().join(format!("{n}.safetensors")));
    let args = ["--dp-noise", "1", "--epochs", "1", "--dp-secure-noise"];
    let o = train_to(&a, &args);
    train_to(&b, &args);
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(
        stderr(&o).contains("this run cannot be repeated"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn epsilon_per_epoch_is_what_backprop_privacy_says() {
    let lines = run_json(&["--dp-noise", "0.8", "--epochs", "3", "--dp-delta", "1e-4"]);
    assert_eq!(lines.len(), 4);
    let q = 50.0 / 1438.0;
    for (k, line) in lines[..3].iter().enumerate() {
        let want = privacy_epsilon(0.8, q, 29 * (k as u64 + 1), 1e-4);
        assert_eq!(line["epsilon"].as_f64().unwrap(), want, "{line}");
    }
    let last = &lines[3];
    assert_eq!(last["epsilon"], lines[2]["epsilon"]);
    let p = &last["privacy"];
    assert_eq!(
        (p["noise"].as_f64(), p["clip"].as_f64(), p["delta"].as_f64()),
        (Some(0.8), Some(1.0), Some(1e-4))
    );
    assert_eq!(
        (p["sample_rate"].as_f64(), p["steps"].as_u64()),
        (Some(q), Some(87))
    );
}

#[test]
fn a_budget_finds_the_least_noise_that_keeps_within_it() {
    let lines = run_json(&["--dp-epsilon", "2", "--epochs", "3", "--dp-delta", "1e-5"]);
    let last = lines.last().unwrap();
    let eps = last["epsilon"].as_f64().unwrap();
    assert!(eps <= 2.0 && eps > 2.0 - 0.01, "{last}");
    // The noise `backprop privacy` finds for the same budget.
    let o = backprop(&[
        "privacy",
        "--epsilon",
        "2",
        "--sample-rate",
        &(50.0f64 / 1438.0).to_string(),
        "--steps",
        "87",
        "--delta",
        "1e-5",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(last["privacy"]["noise"], v["noise"]);
}

#[test]
fn moderate_noise_still_learns_the_digits() {
    // sigma 1, C 1, 10 epochs: epsilon 4.37 at delta 1e-5. Measured 91.9% to 93.0% over
    // seeds 1 to 6; without privacy the same network reaches 95.0% (seed 1).
    let lines = run_json(&["--dp-noise", "1", "--epochs", "10", "--dp-delta", "1e-5"]);
    let last = lines.last().unwrap();
    let acc = last["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.88, "{last}");
    let eps = last["epsilon"].as_f64().unwrap();
    assert!((eps - 4.3664).abs() < 1e-4, "{last}");
}

#[test]
fn a_resumed_run_spends_and_ends_as_the_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n);
    let args = ["--dp-noise", "1", "--seed", "3"];
    train_to(
        &d("whole.safetensors"),
        &[&args[..], &["--epochs", "3"]].concat(),
    );
    let ck = d("ck.safetensors");
    train_to(
        &d("first.safetensors"),
        &[&args[..], &["--epochs", "1", "--checkpoint", path_str(&ck)]].concat(),
    );
    let o = backprop(&[
        "train",
        "--resume",
        path_str(&ck),
        "--epochs",
        "3",
        "--out",
        path_str(&d("resumed.safetensors")),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let read = |n: &str| std::fs::read(d(n)).unwrap();
    assert_eq!(read("whole.safetensors"), read("resumed.safetensors"));
    let m = backprop::model_file::load(&d("resumed.safetensors"))
        .unwrap()
        .metadata;
    assert_eq!(m["dp_steps"], "87");
    // A resumed run keeps the checkpoint's privacy settings.
    refused(
        &backprop(&[
            "train",
            "--resume",
            path_str(&ck),
            "--dp-noise",
            "2",
            "--dp-clip",
            "1",
        ]),
        &["--dp-noise 2", "trained with 1"],
    );
    refused(
        &backprop(&[
            "train",
            "--resume",
            path_str(&ck),
            "--dp-epsilon",
            "2",
            "--dp-clip",
            "1",
        ]),
        &["--dp-epsilon 2", "leave --dp-epsilon out"],
    );
}

#[test]
fn a_log_and_a_plot_show_epsilon() {
    let dir = tempfile::tempdir().unwrap();
    let (log, plot) = (dir.path().join("log.csv"), dir.path().join("p.svg"));
    let o = backprop(
        &[
            &RUN[..],
            &[
                "--dp-noise",
                "1",
                "--epochs",
                "2",
                "--log",
                path_str(&log),
                "--plot",
                path_str(&plot),
            ],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(&log).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "epoch,lr,train_loss,test_loss,test_accuracy,seconds,epsilon"
    );
    let eps: Vec<f64> = lines
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(eps.len(), 2);
    assert!(eps[0] > 0.0 && eps[1] > eps[0], "{csv}");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.contains("accuracy, private: epsilon"),
        "no epsilon in the plot"
    );
}

#[test]
fn bad_private_settings_are_refused_by_flag() {
    let t = |args: &[&str]| backprop(&[&["train", "--epochs", "1"][..], args].concat());
    refused(&t(&["--dp-clip", "1"]), &["--dp-clip 1", "--dp-noise"]);
    refused(&t(&["--dp-noise", "1"]), &["--dp-noise 1", "--dp-clip"]);
    refused(&t(&["--dp-epsilon", "3"]), &["--dp-epsilon 3", "--dp-clip"]);
    refused(
        &t(&["--dp-noise", "1", "--dp-epsilon", "3", "--dp-clip", "1"]),
        &["--dp-noise and --dp-epsilon"],
    );
    refused(&t(&["--dp-noise", "1", "--dp-clip", "0"]), &["--dp-clip 0"]);
    refused(
        &t(&["--dp-noise", "1", "--dp-clip", "-2"]),
        &["--dp-clip -2"],
    );
    refused(
        &t(&["--dp-noise", "-1", "--dp-clip", "1"]),
        &["--dp-noise -1"],
    );
    for d in ["0", "1", "-0.5", "2"] {
        refused(
            &t(&["--dp-noise", "1", "--dp-clip", "1", "--dp-delta", d]),
            &[&format!("--dp-delta {d}"), "(0, 1)"],
        );
    }
    for e in ["0", "-1"] {
        refused(
            &t(&["--dp-epsilon", e, "--dp-clip", "1"]),
            &[&format!("--dp-epsilon {e}")],
        );
    }
    refused(
        &t(&["--dp-delta", "1e-5"]),
        &["--dp-delta", "private training"],
    );
    refused(&t(&["--dp-secure-noise"]), &["--dp-secure-noise"]);
    refused(
        &t(&["--dp-noise", "1", "--dp-clip", "1", "--block", "16"]),
        &["--block 16", "private training"],
    );
    refused(
        &t(&["--dp-noise", "1", "--dp-clip", "1", "--batch", "5000"]),
        &["--batch 5000", "at most 1438"],
    );
    // A budget no noise reaches.
    refused(
        &t(&["--dp-epsilon", "1e-9", "--dp-clip", "1"]),
        &["--dp-epsilon 0.000000001", "out of reach"],
    );
}

#[test]
fn a_diverged_private_epoch_spends_nothing_on_the_kept_model() {
    use backprop::data::synthetic;
    use backprop::privacy::PrivateTraining;
    use backprop::train::{TrainConfig, TrainError, Trainer};
    let data = synthetic::xor(400, 1);
    let config = TrainConfig {
        hidden: vec![8],
        lr: 1.0,
        batch: 40,
        epochs: 3,
        ..TrainConfig::default()
    };
    let dp = PrivateTraining {
        noise: 1.0,
        clip: 1.0,
        delta: 1e-4,
        secure_noise: false,
    };
    let mut t = Trainer::<f64>::new(config, 2, 2)
        .unwrap()
        .with_privacy(dp, 400)
        .unwrap();
    let first = t.run_epoch(&data, &data, None).unwrap().epsilon.unwrap();
    assert_eq!(t.privacy().unwrap().2.steps(), 10);
    // Noise of 10^12 C on every coordinate: the loss blows up, the epoch is dropped, and
    // its steps with it (the model kept is the one epsilon was reported for).
    let loud = PrivateTraining { noise: 1e12, ..dp };
    let net = t.network().clone();
    let mut t = Trainer::<f64>::with_model(t.config().clone(), net)
        .unwrap()
        .with_privacy(loud, 400)
        .unwrap();
    let e = t.run_epoch(&data, &data, None).unwrap_err();
    assert!(matches!(e, TrainError::Diverged { .. }), "{e}");
    assert_eq!(t.privacy().unwrap().2.steps(), 0);
    assert_eq!(t.epsilon(), Some(0.0));
    assert!(first > 0.0);
    // Data of another size than q was set for is refused.
    let mut t = Trainer::<f64>::new(
        TrainConfig {
            hidden: vec![8],
            batch: 40,
            ..TrainConfig::default()
        },
        2,
        2,
    )
    .unwrap()
    .with_privacy(dp, 300)
    .unwrap();
    let e = t.run_epoch(&data, &data, None).unwrap_err();
    assert!(
        e.to_string().contains("set up for 300 training examples"),
        "{e}"
    );
}
