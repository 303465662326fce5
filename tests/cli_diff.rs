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
        "reverse mode (one pass from the output): 7 local-derivative multiply-adds",
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
        r#"{"output":"o","value":15.0,"values":{"a":2.0,"b":3.0,"c":5.0,"d":6.0,"o":15.0},"forward":{"gradient":{"a":10.5,"b":8.0,"c":3.0,"d":2.5},"work":13},"reverse":{"gradient":{"a":10.5,"b":8.0,"c":3.0,"d":2.5},"work":7}}"#
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
    assert!(
        out.contains("a -> c -> (0.5*c) -> o: 1 * 0.5 * 6 = 3"),
        "{out}"
    );
    assert!(out.contains("a -> d -> o: 3 * 2.5 = 7.5"), "{out}");
    let text = std::fs::read_to_string(&dot).unwrap();
    assert!(text.contains("{ o | * | value 15 | grad 1 }"), "{text}");
    // do/dd = (0.5 c) = 2.5 on the edge d -> o.
    assert!(text.contains("n3 -> n6 [label=\"2.5\"];"), "{text}");
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
            "line 1, column 5: 'sqrt' of -4 is nan, not a finite number",
        ),
        (
            // A number in an error is printed short, not as 309 digits.
            "o = a 1e308",
            "line 1, column 7: expected an operator or the end of the statement, found number 1e308",
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
    // Too many paths: x{k+1} = x{k} + sin(x{k}) doubles them, 2^40 from x0 alone.
    let doubling: Vec<String> = (0..40)
        .map(|k| format!("x{} = x{k} + sin(x{k})", k + 1))
        .collect();
    let program = doubling.join("; ");
    assert_clean_failure(
        &["diff", &program, "--at", "x0=1", "--paths"],
        "--paths: 2199023255550 paths from the 40 variables to the output, over the limit of 1000 in all",
    );
}

/// `x1 = a + 1; x2 = x1 + 1; ...`: one path from each of the n variables, n + 1 in all
/// (a has one too), and a + (n - 1) + ... + 1 steps.
fn chain(n: usize) -> String {
    let mut lines = vec!["x1 = a + 1".to_string()];
    lines.extend((2..=n).map(|k| format!("x{k} = x{} + 1", k - 1)));
    lines.join("\n")
}

#[test]
fn paths_are_bounded_in_all_not_per_variable() {
    // 1001 variables with one path each: each is within any per-variable limit, and all of
    // them together are over the total.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chain.txt");
    std::fs::write(&file, chain(1001)).unwrap();
    let f = file.to_str().unwrap();
    assert_clean_failure(
        &["diff", "--file", f, "--at", "a=1", "--paths"],
        "--paths: 1001 paths from the 1001 variables to the output, over the limit of 1000 in all",
    );
    // 500 variables: 500 paths, but 1 + 2 + ... + 500 = 125,250 steps along them.
    std::fs::write(&file, chain(500)).unwrap();
    assert_clean_failure(
        &["diff", "--file", f, "--at", "a=1", "--paths"],
        "--paths: 500 paths with 125250 steps in all, over the limit of 100000 steps",
    );
    // 400 variables: 400 paths, 80,200 steps: listed.
    std::fs::write(&file, chain(400)).unwrap();
    let o = backprop(&[
        "diff", "--file", f, "--at", "a=1", "--paths", "--mode", "reverse",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("  dx400/dx399 = 1 over 1 path\n    x399 -> x400: 1 = 1\n"),
        "{out}"
    );
    assert_eq!(out.matches(" -> ").count(), 80_200);
}

/// x_k = x_{k-1} + a b for k = 2..n, x_1 = a b: x_n = n a b, dx_n/da = n b, dx_n/db = n a,
/// dx_n/dx_k = 1; all exact in f64.
fn linear_program(n: usize) -> String {
    let mut p = String::from("x1 = a * b\n");
    for k in 2..=n {
        p += &format!("x{k} = x{} + a * b\n", k - 1);
    }
    p
}

#[test]
fn a_large_program_skips_forward_mode_with_a_note() {
    // 100,000 statements, 200,001 nodes: forward mode would make 100,001 passes over them.
    let n = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("large.txt");
    std::fs::write(&file, linear_program(n)).unwrap();
    let o = backprop(&[
        "diff",
        "--file",
        file.to_str().unwrap(),
        "--at",
        "a=2,b=3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "note: forward mode skipped: 100001 variables x 200001 graph nodes is over the limit of \
         100000000 (it makes one pass over the graph per variable); --mode forward runs it \
         anyway\n"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.get("forward").is_none());
    assert!(v["forward_skipped"]
        .as_str()
        .unwrap()
        .starts_with("forward mode skipped"));
    assert_eq!(v["value"], 600_000.0); // n a b
    let g = &v["reverse"]["gradient"];
    assert_eq!(
        (g["a"].as_f64(), g["b"].as_f64()),
        (Some(300_000.0), Some(200_000.0))
    );
    assert_eq!(
        (g["x1"].as_f64(), g["x99999"].as_f64()),
        (Some(1.0), Some(1.0))
    );
    // Reverse mode: 2 edges per statement (x_k's two, a*b's two; x1 has a*b's only).
    assert_eq!(v["reverse"]["work"], 4 * n as u64 - 2);
    // Text: the note, and reverse mode's report.
    let o = backprop(&["diff", "--file", file.to_str().unwrap(), "--at", "a=2,b=3"]);
    assert!(stderr(&o).starts_with("note: forward mode skipped"));
    let out = stdout(&o);
    assert!(!out.contains("forward mode ("));
    assert!(out.contains("  dx100000/da = 300000\n"), "{}", &out[..200]);
    // Small programs still run both.
    let o = backprop(&["diff", &linear_program(100), "--at", "a=2,b=3", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["forward"]["gradient"]["a"], 300.0);
    assert!(stderr(&o).is_empty());
}

#[test]
fn non_finite_derivatives_warn_and_are_strings_in_json() {
    // d sqrt(u)/du = 1/(2 sqrt(u)) is infinite at u = a - 2 = 0.
    let o = backprop(&["diff", "o = sqrt(a - 2)", "--at", "a=2"]);
    assert!(o.status.success());
    assert_eq!(
        stderr(&o),
        "warning: 2 derivatives are not a finite number: do/da = inf (forward), do/da = inf (reverse)\n"
    );
    assert!(stdout(&o).contains("  do/da = inf\n"));
    let o = backprop(&[
        "diff",
        "o = sqrt(a - 2)",
        "--at",
        "a=2",
        "--json",
        "--mode",
        "reverse",
    ]);
    assert_eq!(
        stdout(&o).trim(),
        r#"{"output":"o","value":0.0,"values":{"a":2.0,"o":0.0},"reverse":{"gradient":{"a":"inf"},"work":2}}"#
    );
    let o = backprop(&[
        "diff",
        "o = -sqrt(a)",
        "--at",
        "a=0",
        "--json",
        "--mode",
        "reverse",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["reverse"]["gradient"]["a"], "-inf");
    // y = a^b at a = -2, b = 2: dy/db = a^b ln a is NaN, as in PyTorch.
    let o = backprop(&[
        "diff", "y = a^b", "--at", "a=-2,b=2", "--json", "--mode", "forward",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["forward"]["gradient"]["a"], -4.0);
    assert_eq!(v["forward"]["gradient"]["b"], "nan");
    assert_eq!(
        stderr(&o),
        "warning: 1 derivative is not a finite number: dy/db = nan (forward)\n"
    );
}

#[test]
fn paths_show_every_node_and_merged_edges() {
    // y = x^3 at x = 2: x*x uses x twice (2 + 2 = 4, 2 edges merged), then y = (x*x)*x:
    // dy/d(x*x) = x = 2 and the direct edge dy/dx = x*x = 4. 8 + 4 = 12 = 3x².
    let o = backprop(&[
        "diff",
        "y = x*x*x",
        "--at",
        "x=2",
        "--paths",
        "--mode",
        "reverse",
    ]);
    assert_eq!(
        stdout(&o),
        "values\n  x = 2\n  y = 8\n\
         reverse mode (one pass from the output): 4 local-derivative multiply-adds\n  dy/dx = 12\n\
         sum over paths\n  dy/dx = 12 over 2 paths\n\
         \x20   x -> (x*x) -> y: 4 * 2 = 8   (x -> (x*x): 2 edges merged)\n\
         \x20   x -> y: 4 = 4\n"
    );
    // sigmoid(w x + b) at w = 0.5, x = 2, b = -1: s = sigmoid(0) = 0.5, s(1 - s) = 0.25.
    let o = backprop(&[
        "diff",
        "y = sigmoid(w*x+b)",
        "--at",
        "w=0.5,x=2,b=-1",
        "--paths",
        "--mode",
        "forward",
    ]);
    assert_eq!(
        stdout(&o),
        "values\n  w = 0.5\n  x = 2\n  b = -1\n  y = 0.5\n\
         forward mode (one pass per variable): 8 local-derivative multiply-adds\n\
         \x20 dy/dw = 0.5\n  dy/dx = 0.125\n  dy/db = 0.25\n\
         sum over paths\n\
         \x20 dy/dw = 0.5 over 1 path\n    w -> (w*x) -> (w*x + b) -> y: 2 * 1 * 0.25 = 0.5\n\
         \x20 dy/dx = 0.125 over 1 path\n    x -> (w*x) -> (w*x + b) -> y: 0.5 * 1 * 0.25 = 0.125\n\
         \x20 dy/db = 0.25 over 1 path\n    b -> (w*x + b) -> y: 1 * 0.25 = 0.25\n"
    );
    // With --json, the paths are one more key.
    let o = backprop(&[
        "diff", "y = x*x", "--at", "x=3", "--paths", "--json", "--mode", "reverse",
    ]);
    assert_eq!(
        stdout(&o).trim(),
        r#"{"output":"y","value":9.0,"values":{"x":3.0,"y":9.0},"reverse":{"gradient":{"x":6.0},"work":2},"paths":[{"variable":"x","sum":6.0,"paths":[{"nodes":["x","y"],"factors":[6.0],"edges":[2],"product":6.0}]}]}"#
    );
}

#[test]
fn numbers_are_printed_short() {
    // 1e308 in full would be 309 digits; 8.1518514e-10 would be 0.00000000081518514.
    let o = backprop(&[
        "diff",
        "y = x * 1e308; z = x * 8.1518514e-10 + y",
        "--at",
        "x=1",
    ]);
    let out = stdout(&o);
    assert!(out.contains("  y = 1e308\n"), "{out}");
    assert!(out.contains("  dz/dx = 1e308\n"), "{out}");
    let o = backprop(&[
        "diff",
        "z = x * 8.1518514e-10",
        "--at",
        "x=1",
        "--mode",
        "reverse",
    ]);
    let out = stdout(&o);
    assert!(out.contains("  z = 8.1518514e-10\n"), "{out}");
    assert!(
        out.contains("reverse mode (one pass from the output): 1 local-derivative multiply-add\n"),
        "{out}"
    );
    // JSON keeps full precision.
    let o = backprop(&["diff", "z = x / 3", "--at", "x=1", "--json"]);
    assert!(stdout(&o).contains(r#""z":0.3333333333333333"#));
}

#[test]
fn help_documents_the_language() {
    let o = backprop(&["diff", "--help"]);
    let out = stdout(&o);
    for needle in [
        "'**' is the same",
        "'#' to the end of the line",
        "log is the natural",
        "exp ln log sqrt sin cos tan tanh sigmoid relu abs",
        "100,000,000",
        "\"inf\", \"-inf\" or \"nan\"",
        "parallel edges",
    ] {
        assert!(out.contains(needle), "help lacks {needle:?}:\n{out}");
    }
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
