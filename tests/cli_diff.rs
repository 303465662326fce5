//! `backprop diff` through the binary: output, JSON, files, and every bad program.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn backprop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .output()
        .expect("run backprop")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const SEED: &str = "c = a + b; d = a * b; o = 0.5 * c * d";

#[test]
fn seed_graph_human_output() {
    let o = backprop(&["diff", SEED, "--at", "a=2,b=3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for line in [
        "  o = 15",
        "forward mode (one pass per variable): 13 local-derivative multiply-adds",
        "reverse mode (one pass from the output): 8 local-derivative multiply-adds",
        "  do/da = 10.5",
        "  do/db = 8",
        "  do/dc = 3",
        "  do/dd = 2.5",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    assert_eq!(out.matches("do/da = 10.5").count(), 2);
}

#[test]
fn seed_graph_json() {
    let o = backprop(&["diff", SEED, "--at", "a=2,b=3", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.trim(),
        r#"{"output":"o","value":15.0,"values":{"a":2.0,"b":3.0,"c":5.0,"d":6.0,"o":15.0},"forward":{"gradient":{"a":10.5,"b":8.0,"c":3.0,"d":2.5},"work":13},"reverse":{"gradient":{"a":10.5,"b":8.0,"c":3.0,"d":2.5},"work":8}}"#
    );
    let o = backprop(&[
        "diff", SEED, "--at", "a=2,b=3", "--json", "--mode", "reverse",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.get("forward").is_none());
    assert_eq!(v["reverse"]["gradient"]["b"], 8.0);
    let o = backprop(&[
        "diff", SEED, "--at", "a=2,b=3", "--json", "--mode", "forward",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.get("reverse").is_none());
    assert_eq!(v["forward"]["work"], 13);
}

#[test]
fn unused_binding_has_derivative_zero() {
    let o = backprop(&[
        "diff", "y = x^2", "--at", "x=3,z=1", "--json", "--mode", "reverse",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["reverse"]["gradient"]["x"], 6.0);
    assert_eq!(v["reverse"]["gradient"]["z"], 0.0);
}

#[test]
fn paths_and_dot_file() {
    let dir = tempfile::tempdir().unwrap();
    let dot = dir.path().join("g.dot");
    let o = backprop(&[
        "diff",
        SEED,
        "--at",
        "a=2,b=3",
        "--paths",
        "--dot",
        dot.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("a -> c -> o: 1 * 3 = 3"), "{out}");
    assert!(out.contains("a -> d -> o: 3 * 2.5 = 7.5"), "{out}");
    let text = std::fs::read_to_string(&dot).unwrap();
    assert!(text.contains("{ o | * | value 15 | grad 1 }"), "{text}");
    // Only the renamed file is left in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn program_from_file_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seed.txt");
    std::fs::write(&file, "c = a + b\nd = a * b\no = 0.5 * c * d\n").unwrap();
    let o = backprop(&[
        "diff",
        "--file",
        file.to_str().unwrap(),
        "--at",
        "a=2,b=3",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["value"], 15.0);

    let mut child = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(["diff", "--file", "-", "--at", "a=2,b=3", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(SEED.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["reverse"]["gradient"]["a"], 10.5);
}

/// A failure: non-zero exit, one line on stderr containing `needle`, no panic.
fn assert_clean_failure(args: &[&str], needle: &str) {
    let o = backprop(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(one_error(&err), "{args:?}: not one line:\n{err}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(o.stdout.is_empty(), "{args:?}: printed {}", stdout(&o));
}

#[test]
fn bad_programs_fail_cleanly_with_a_position() {
    let ab = "a=1,b=2";
    let cases: &[(&str, &str)] = &[
        (
            "o = a +* b",
            "program: line 1, column 8: expected a number, a name or '(', found '*'",
        ),
        ("o = foo(a)", "line 1, column 5: unknown function 'foo'"),
        (
            "c = a + b; o = c * x",
            "line 1, column 20: input 'x' has no value",
        ),
        (
            "c = a; c = b",
            "line 1, column 8: 'c' is assigned twice (first at line 1, column 1)",
        ),
        (
            "c = d; d = a",
            "line 1, column 5: 'd' is used before it is assigned",
        ),
        (
            "a + b; c = a",
            "line 1, column 1: a bare expression must be the last statement",
        ),
        ("o = a $ b", "line 1, column 7: unexpected character '$'"),
        (
            "o = (a + b",
            "line 1, column 11: expected ')', found end of program",
        ),
        ("a = 2", "line 1, column 1: 'a' is assigned by the program"),
        ("", "the program is empty"),
        (
            "o = sqrt(a - 5)",
            "line 1, column 5: 'sqrt' of [-4.0] is NaN, not a finite number",
        ),
    ];
    for (program, needle) in cases {
        assert_clean_failure(&["diff", program, "--at", ab], needle);
    }
}

#[test]
fn deep_nesting_fails_cleanly() {
    // One argument may hold at most 128 KiB on Linux: 60,000 levels fit; files go further.
    let n = 60_000;
    let deep = format!("o = {}a{}", "(".repeat(n), ")".repeat(n));
    assert_clean_failure(
        &["diff", &deep, "--at", "a=1"],
        "expression nested deeper than 200 levels",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deep.txt");
    let (open, close) = ("(".repeat(100_000), ")".repeat(100_000));
    std::fs::write(
        &file,
        format!("x = 1\no = {open}-{}a{close}", "-".repeat(1_000_000)),
    )
    .unwrap();
    assert_clean_failure(
        &["diff", "--file", file.to_str().unwrap(), "--at", "a=1"],
        "line 2, column 205: expression nested deeper than 200 levels",
    );
}

#[test]
fn bad_flags_and_files_fail_cleanly() {
    assert_clean_failure(
        &["diff", SEED, "--at", "a=two,b=3"],
        "--at: binding 'a=two': the value is not a number",
    );
    assert_clean_failure(
        &["diff", SEED, "--at", "a=1,a=2"],
        "the name is given twice",
    );
    assert_clean_failure(
        &["diff", "--file", "/nonexistent/p.txt", "--at", "a=1"],
        "--file /nonexistent/p.txt",
    );
    assert_clean_failure(
        &[
            "diff",
            SEED,
            "--at",
            "a=2,b=3",
            "--dot",
            "/nonexistent/dir/g.dot",
        ],
        "--dot /nonexistent/dir/g.dot",
    );
    // Too many paths: 2^40 paths from a.
    let doubling: Vec<String> = (0..40)
        .map(|k| format!("x{} = x{k} + x{k}", k + 1))
        .collect();
    let program = doubling.join("; ");
    assert_clean_failure(
        &["diff", &program, "--at", "x0=1", "--paths"],
        "exceed the limit of 1000",
    );
}

#[test]
fn micrograd_readme_through_the_binary() {
    // micrograd's README example with fresh names (a name is assigned once):
    // g = 24.7041, dg/da = 138.8338, dg/db = 645.5773 at a = -4, b = 2.
    let program = "c = a + b; d = a * b + b**3; c2 = c + (c + 1); c3 = c2 + (1 + c2 + (-a))
d2 = d + (d * 2 + relu(b + a)); d3 = d2 + (3 * d2 + relu(b - a))
e = c3 - d3; f = e^2; g = f / 2.0; g2 = g + 10.0 / f";
    let o = backprop(&["diff", program, "--at", "a=-4,b=2", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["output"], "g2");
    let num = |x: &serde_json::Value| x.as_f64().unwrap();
    assert!((num(&v["value"]) - 24.7041).abs() < 1e-4);
    for mode in ["forward", "reverse"] {
        let g = &v[mode]["gradient"];
        assert!((num(&g["a"]) - 138.8338).abs() < 1e-4, "{mode}");
        assert!((num(&g["b"]) - 645.5773).abs() < 1e-4, "{mode}");
    }
}

/// One error: a single line of ours, or clap's usage error (its first line names the flag,
/// then clap's own hints: possible values, a similar flag, "try '--help'").
fn one_error(err: &str) -> bool {
    let err = err.trim_end();
    err.lines().count() == 1
        || (err.starts_with("error: ") && err.ends_with("For more information, try '--help'."))
}
