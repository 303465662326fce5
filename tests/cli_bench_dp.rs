//! `backprop bench --dp` through the binary: the ordinary step's keys and the private
//! step's beside them, a ratio that is the quotient of the two rates, one object per
//! config, and refusals of bad flags naming them. (Speed itself is measured, not tested.)

use std::process::Command;

fn backprop(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .output()
        .expect("the binary runs")
}

const QUICK: [&str; 6] = ["--seconds", "0.01", "--repeats", "3", "--threads", "1"];

#[test]
fn dp_prints_both_steps_and_their_ratio() {
    let mut args = vec![
        "bench",
        "--config",
        "all",
        "--dp",
        "--dp-noise",
        "0.5",
        "--json",
    ];
    args.extend(QUICK);
    let o = backprop(&args);
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
        // The keys of the ordinary bench, unchanged.
        assert_eq!(
            (l["threads"].as_u64(), l["impl"].as_str()),
            (Some(1), Some("backprop"))
        );
        for key in [
            "train_samples_per_sec",
            "infer_samples_per_sec",
            "train_gflops",
        ] {
            assert!(l[key].as_f64().unwrap() > 0.0, "{key} in {l}");
        }
        assert!(!l["cpu_model"].as_str().unwrap().is_empty());
        assert!(l["logical_cores"].as_u64().unwrap() >= 1);
        // The private step's, beside them.
        let (ordinary, private) = (
            l["train_samples_per_sec"].as_f64().unwrap(),
            l["dp_train_samples_per_sec"].as_f64().unwrap(),
        );
        assert!(private > 0.0, "{l}");
        let ratio = l["dp_ratio"].as_f64().unwrap();
        assert!((ratio - private / ordinary).abs() <= 1e-12 * ratio, "{l}");
        assert_eq!(
            l["dp_train_repeats_samples_per_sec"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            l["train_repeats_samples_per_sec"].as_array().unwrap().len(),
            3
        );
        assert_eq!(l["dp_noise_multiplier"], 0.5);
        assert_eq!(l["dp_max_grad_norm"], 1.0);
        assert_eq!(l["dp_secure_noise"], false);
    }
    // The private step's expected batch size is the config's unless --batch says otherwise.
    let batches: Vec<_> = lines.iter().map(|l| l["batch"].as_u64()).collect();
    assert_eq!(batches, [Some(10), Some(64), Some(256)]);
    let mut args = vec!["bench", "--config", "nielsen", "--dp", "--batch", "240"];
    args.extend(QUICK);
    let o = backprop(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("seeded noise, batch 240)"), "{text}");
}

#[test]
fn dp_text_shows_the_two_rates_side_by_side() {
    let mut args = vec!["bench", "--config", "nielsen", "--dp", "--dp-secure-noise"];
    args.extend(QUICK);
    let o = backprop(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("nielsen") && lines[0].contains("train"),
        "{text}"
    );
    assert!(
        lines[1].contains("private") && lines[1].contains("x ordinary"),
        "{text}"
    );
    assert!(lines[1].contains("OS noise"), "{text}");
    assert!(lines[2].starts_with("machine"), "{text}");
}

#[test]
fn bad_dp_flags_are_refused_by_name() {
    for (args, needle) in [
        (&["bench", "--dp-noise", "1"][..], "--dp-noise"),
        (&["bench", "--dp-clip", "1"], "--dp-clip"),
        (&["bench", "--dp-secure-noise"], "--dp-secure-noise"),
        (&["bench", "--dp", "--dp-noise", "-1"], "--dp-noise"),
        (&["bench", "--dp", "--dp-noise", "nan"], "--dp-noise"),
        (&["bench", "--dp", "--dp-clip", "0"], "--dp-clip"),
        (&["bench", "--dp", "--dp-clip", "inf"], "--dp-clip"),
        (&["bench", "--dp", "--config", "lenet5"], "--dp"),
    ] {
        let o = backprop(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}
