//! `backprop gradcheck` through the binary: passes, fails, and rejects bad flags.

use std::process::Command;

fn gradcheck(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .arg("gradcheck")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn worst_relative_error(stdout: &str) -> f64 {
    let after = stdout
        .split("worst relative error ")
        .nth(1)
        .expect("prints the error");
    after.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn default_figure2_network_passes() {
    let (code, out, _) = gradcheck(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("network 2-4-4-3 (sigmoid,sigmoid,sigmoid)"),
        "{out}"
    );
    assert!(out.contains("47 parameters"), "{out}");
    assert!(worst_relative_error(&out) < 1e-7, "{out}");
    assert!(out.contains("PASS"));
}

#[test]
fn relu_softmax_log_likelihood_passes() {
    let (code, out, _) = gradcheck(&[
        "--layers",
        "5,16,8,4",
        "--activation",
        "relu",
        "--cost",
        "log-likelihood",
        "--seed",
        "3",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(relu,relu,softmax)"), "{out}");
    assert!(worst_relative_error(&out) < 1e-6);
}

#[test]
fn an_impossible_tolerance_fails_with_exit_1() {
    let (code, out, err) = gradcheck(&["--tolerance", "1e-30"]);
    assert_eq!(code, 1);
    assert!(out.contains("FAIL (tolerance 1e-30)"), "{out}");
    assert!(
        err.starts_with("error: gradient check failed") && err.contains("--tolerance 1e-30"),
        "{err}"
    );
    // A tolerance of 0 prints as 0 (not "0e0"); a negative or NaN one is refused.
    let (code, out, _) = gradcheck(&["--tolerance", "0"]);
    assert_eq!(code, 1);
    assert!(out.contains("FAIL (tolerance 0)"), "{out}");
    for bad in ["-1", "NaN"] {
        let (code, _, err) = gradcheck(&["--tolerance", bad]);
        assert_eq!(code, 1, "{bad}");
        assert!(
            err.contains("--tolerance") && err.contains("finite number >= 0"),
            "{err}"
        );
    }
}

#[test]
fn bad_flags_are_one_line_errors() {
    let (code, _, err) = gradcheck(&["--layers", "2,0,3"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--layers") && err.contains("a layer size must be at least 1"),
        "{err}"
    );
    assert!(one_error(&err), "{err}");

    let (code, _, err) = gradcheck(&["--activation", "foo"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--activation")
            && err.contains("invalid value 'foo'")
            && err.contains("[possible values: identity, sigmoid"),
        "{err}"
    );

    let (code, _, err) = gradcheck(&["--layers", "2,x"]);
    assert_eq!(code, 2);
    assert!(err.contains("'x' is not a layer size"), "{err}");

    let (code, _, err) = gradcheck(&["--cost", "log-likelihood", "--output-activation", "sigmoid"]);
    assert_eq!(code, 1);
    assert!(err.contains("needs a softmax output layer"), "{err}");

    let (code, _, err) = gradcheck(&["--layers", "100000,100000"]);
    assert_eq!(code, 1);
    assert!(err.contains("--layers: more than"), "{err}");

    let (code, _, err) = gradcheck(&["--batch", "0"]);
    assert_eq!(code, 1);
    assert!(err.contains("--batch"), "{err}");
}

/// One error: a single line of ours, or clap's usage error (its first line names the flag,
/// then clap's own hints: possible values, a similar flag, "try '--help'").
fn one_error(err: &str) -> bool {
    let err = err.trim_end();
    err.lines().count() == 1
        || (err.starts_with("error: ") && err.ends_with("For more information, try '--help'."))
}
