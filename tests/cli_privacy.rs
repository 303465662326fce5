//! `backprop privacy`: epsilon of a run of private steps, or the noise a budget needs.

mod common;

use common::{backprop, refused, stdout};
use serde_json::Value;

const MNIST: [&str; 6] = [
    "--sample-rate",
    "0.004",
    "--steps",
    "15000",
    "--delta",
    "1e-5",
];

fn json(args: &[&str]) -> Value {
    let o = backprop(args);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 1, "{text}");
    serde_json::from_str(&text).expect("one JSON object")
}

#[test]
fn opacus_s_mnist_example_spends_2_5029() {
    let o = backprop(&[&["privacy", "--noise", "1.1"][..], &MNIST].concat());
    assert!(o.status.success());
    assert_eq!(
        stdout(&o),
        "epsilon 2.5029 at Rényi order 8.4 (noise 1.1, sample rate 0.004, 15000 steps, delta 1e-5)\n"
    );
    let v = json(&[&["privacy", "--noise", "1.1", "--json"][..], &MNIST].concat());
    // Opacus 1.6: 2.502870926647115.
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    let mut want = ["epsilon", "alpha", "noise", "sample_rate", "steps", "delta"];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert!(
        (v["epsilon"].as_f64().unwrap() - 2.502_870_926_6).abs() < 1e-9,
        "{v}"
    );
    assert_eq!(v["alpha"], 8.4);
    assert_eq!(v["noise"], 1.1);
    assert_eq!(v["sample_rate"], 0.004);
    assert_eq!(v["steps"], 15000);
    assert_eq!(v["delta"], 1e-5);
}

#[test]
fn epsilon_gives_the_noise_opacus_would() {
    // get_noise_multiplier(target_epsilon=2.5, ...) in Opacus 1.6: 1.10107421875.
    let v = json(&[&["privacy", "--epsilon", "2.5", "--json"][..], &MNIST].concat());
    assert_eq!(v["noise"], 1.101_074_218_75);
    let eps = v["epsilon"].as_f64().unwrap();
    assert!(eps <= 2.5 && eps > 2.49, "{v}");
    assert_eq!(v["alpha"], 8.4);
    let o = backprop(&[&["privacy", "--epsilon", "2.5"][..], &MNIST].concat());
    assert!(
        stdout(&o).starts_with("noise 1.10107421875 for epsilon at most 2.5 ("),
        "{}",
        stdout(&o)
    );
    // No noise: nothing is private.
    let v = json(&[&["privacy", "--noise", "0", "--json"][..], &MNIST].concat());
    assert_eq!(v["epsilon"], "inf");
}

#[test]
fn bad_values_are_refused_naming_the_flag() {
    let run = |args: &[&str]| backprop(&[&["privacy"][..], args].concat());
    let base = |flag: &str, value: &str| {
        let mut a = vec![
            "--noise",
            "1",
            "--sample-rate",
            "0.01",
            "--steps",
            "10",
            "--delta",
            "1e-5",
        ];
        let i = a.iter().position(|f| *f == flag).unwrap();
        a[i + 1] = value;
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    for (flag, value, needle) in [
        ("--sample-rate", "0", "--sample-rate 0: must be in (0, 1]"),
        (
            "--sample-rate",
            "1.5",
            "--sample-rate 1.5: must be in (0, 1]",
        ),
        ("--sample-rate", "-0.1", "--sample-rate -0.1"),
        ("--sample-rate", "nan", "--sample-rate nan"),
        ("--noise", "-1", "--noise -1: must be a finite number >= 0"),
        ("--noise", "inf", "--noise inf"),
        ("--delta", "0", "--delta 0: must be in (0, 1)"),
        ("--delta", "1", "--delta 1: must be in (0, 1)"),
        ("--steps", "0", "--steps 0: must be at least 1"),
    ] {
        let args = base(flag, value);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&run(&args), &[needle]);
    }
    let no_budget = [
        "--sample-rate",
        "1",
        "--steps",
        "1000000",
        "--delta",
        "1e-5",
    ];
    refused(
        &run(&[&["--epsilon", "1e-9"][..], &no_budget].concat()),
        &["--epsilon 1e-9", "out of reach"],
    );
    refused(
        &run(&[&["--epsilon", "0"][..], &no_budget].concat()),
        &["--epsilon 0: must be a finite number > 0"],
    );
    // Neither --noise nor --epsilon, or both: clap's usage error, non-zero.
    assert!(!run(&no_budget).status.success());
    assert!(
        !run(&[&["--noise", "1", "--epsilon", "1"][..], &no_budget].concat())
            .status
            .success()
    );
}
