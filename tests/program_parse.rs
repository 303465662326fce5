//! The `diff` language: precedence, numbers, statements, and every kind of bad program, each
//! with its position.

use backprop::program::{parse_bindings, Mode, Pos, Program, ProgramError, MAX_DEPTH};

fn at(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
}

fn value(src: &str, pairs: &[(&str, f64)]) -> f64 {
    let p = Program::compile(src, &at(pairs)).unwrap_or_else(|e| panic!("{src}: {e}"));
    p.tape().value(p.output().node)
}

fn error(src: &str, pairs: &[(&str, f64)]) -> ProgramError {
    Program::compile(src, &at(pairs)).expect_err(src)
}

fn pos(line: usize, column: usize) -> Pos {
    Pos { line, column }
}

#[test]
fn precedence_and_associativity() {
    let a = [("a", 3.0)];
    assert_eq!(value("-a^2", &a), -9.0); // -(a^2)
    assert_eq!(value("2^3^2", &[]), 512.0); // 2^(3^2)
    assert_eq!(value("a^-1", &a), 1.0 / 3.0);
    assert_eq!(value("2*-3", &[]), -6.0);
    assert_eq!(value("1 - 2 - 3", &[]), -4.0); // left-associative
    assert_eq!(value("8 / 4 / 2", &[]), 1.0);
    assert_eq!(value("1 + 2 * 3", &[]), 7.0);
    assert_eq!(value("(1 + 2) * 3", &[]), 9.0);
    assert_eq!(value("a ** 2", &a), 9.0);
    assert_eq!(value("+a", &a), 3.0);
    assert_eq!(value("- - a", &a), 3.0);
}

#[test]
fn numbers_functions_statements() {
    assert_eq!(value("1e-3 + .5 + 2.5E+2", &[]), 250.501);
    assert_eq!(value("log(exp(2))", &[]), 2.0);
    assert_eq!(
        value("ln(1) + sqrt(4) + abs(-3) + relu(-1) + relu(2)", &[]),
        7.0
    );
    assert_eq!(
        value("sigmoid(0) + tanh(0) + sin(0) + cos(0) + tan(0)", &[]),
        1.5
    );
    let src = "# the post's graph\nc = a + b  # a comment\n\n; d = a * b;\no = 0.5 * c * d\n";
    assert_eq!(value(src, &[("a", 2.0), ("b", 3.0)]), 15.0);
}

#[test]
fn bare_last_expression_and_unused_bindings() {
    let p = Program::compile("c = a + 1; c * c", &at(&[("a", 2.0), ("z", 5.0)])).unwrap();
    assert_eq!(p.output().name, "output");
    let r = p.analyse(Mode::Reverse);
    assert_eq!(r.value, 9.0);
    // d(c²)/da = 2c = 6, d/dc = 6, and z, never used, 0.
    let g = r.reverse.unwrap().gradient;
    assert_eq!(g, at(&[("a", 6.0), ("z", 0.0), ("c", 6.0)]));
    assert!(r.forward.is_none());
    let p = Program::compile("output = a; output * 2", &at(&[("a", 1.0)])).unwrap();
    assert_eq!(p.output().name, "output_2");
}

#[test]
fn bad_programs_name_their_position() {
    let ab = [("a", 1.0), ("b", 2.0)];
    let cases: Vec<(&str, ProgramError)> = vec![
        (
            "o = a +* b",
            ProgramError::Unexpected {
                pos: pos(1, 8),
                expected: "a number, a name or '('",
                found: "'*'".into(),
            },
        ),
        (
            "o = foo(a)",
            ProgramError::UnknownFunction {
                pos: pos(1, 5),
                name: "foo".into(),
            },
        ),
        (
            "c = a + b\no = c * x",
            ProgramError::MissingInput {
                pos: pos(2, 9),
                name: "x".into(),
            },
        ),
        (
            "c = a\nc = b",
            ProgramError::Reassigned {
                pos: pos(2, 1),
                name: "c".into(),
                first: pos(1, 1),
            },
        ),
        (
            "c = d + 1; d = a",
            ProgramError::UsedBeforeAssigned {
                pos: pos(1, 5),
                name: "d".into(),
            },
        ),
        (
            "c = c + 1",
            ProgramError::UsedBeforeAssigned {
                pos: pos(1, 5),
                name: "c".into(),
            },
        ),
        ("a + b; c = a", ProgramError::BareNotLast { pos: pos(1, 1) }),
        (
            "o = a $ b",
            ProgramError::UnexpectedChar {
                pos: pos(1, 7),
                found: '$',
            },
        ),
        (
            "o = 1.2.3",
            ProgramError::BadNumber {
                pos: pos(1, 5),
                text: "1.2.3".into(),
            },
        ),
        (
            "o = 2 * 1e999",
            ProgramError::BadNumber {
                pos: pos(1, 9),
                text: "1e999".into(),
            },
        ),
        (
            "o = (a + b",
            ProgramError::Unexpected {
                pos: pos(1, 11),
                expected: "')'",
                found: "end of program".into(),
            },
        ),
        (
            "o = a b",
            ProgramError::Unexpected {
                pos: pos(1, 7),
                expected: "an operator or the end of the statement",
                found: "name 'b'".into(),
            },
        ),
        (
            "a = 1",
            ProgramError::AtAssigned {
                pos: pos(1, 1),
                name: "a".into(),
            },
        ),
        (" \n # nothing\n;", ProgramError::Empty),
    ];
    let nan = error("o = ln(a - 2)", &ab);
    assert!(
        matches!(&nan, ProgramError::NotFinite { pos: p, op: "ln", args, value }
            if *p == pos(1, 5) && *args == vec![-1.0] && value.is_nan()),
        "{nan:?}"
    );
    assert_eq!(
        error("o = a / (b - 2)", &ab).to_string(),
        "line 1, column 7: '/' of (1, 0) is inf, not a finite number (outside its domain, or too large)"
    );
    for (src, expected) in cases {
        let e = error(src, &ab);
        assert_eq!(e, expected, "{src}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let n = 100_000;
    let parens = format!("{}a{}", "(".repeat(n), ")".repeat(n));
    let minus = format!("{}a", "-".repeat(n));
    let powers = vec!["a"; n].join("^");
    let calls = format!("{}a{}", "exp(".repeat(n), ")".repeat(n));
    for src in [parens, minus, powers, calls] {
        match error(&src, &[("a", 1.0)]) {
            ProgramError::TooDeep { pos, limit } => {
                assert_eq!(limit, MAX_DEPTH);
                assert_eq!(pos.line, 1);
                assert!(pos.column > 1 && pos.column <= 4 * MAX_DEPTH + 1, "{pos}");
            }
            e => panic!("expected TooDeep, got {e} for {}...", &src[..20]),
        }
    }
    // Just inside the limit is fine.
    let ok = format!(
        "{}a{}",
        "(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    assert_eq!(value(&ok, &[("a", 4.0)]), 4.0);
    // Long but flat is fine: 100,000 terms.
    let flat = vec!["a"; n].join(" + ");
    assert_eq!(value(&flat, &[("a", 1.0)]), n as f64);
}

#[test]
fn alias_of_the_output_has_one_path() {
    let p = Program::compile("c = a + b; o = c", &at(&[("a", 1.0), ("b", 2.0)])).unwrap();
    let paths = p.paths(10).unwrap();
    let c = paths.iter().find(|vp| vp.name == "c").unwrap();
    assert_eq!(c.paths.len(), 1);
    assert_eq!(c.paths[0].names, ["c", "o"]);
    assert_eq!(c.sum, 1.0);
}

#[test]
fn bindings() {
    assert_eq!(parse_bindings("").unwrap(), vec![]);
    assert_eq!(
        parse_bindings("a=2,b=3").unwrap(),
        at(&[("a", 2.0), ("b", 3.0)])
    );
    for bad in ["a", "a=x", "1a=2", "a=1,a=2", "a=inf", "=3"] {
        assert!(
            matches!(parse_bindings(bad), Err(ProgramError::BadBinding { .. })),
            "{bad}"
        );
    }
}

#[test]
fn many_bindings() {
    // 50,000 inputs, o = v0 + v1 + ...: do/dv_k = 1. Bindings are looked up by name, not by
    // scanning the list for each (that was 50,000² comparisons).
    let n = 50_000;
    let text: Vec<String> = (0..n).map(|k| format!("v{k}={k}")).collect();
    let bindings = parse_bindings(&text.join(",")).unwrap();
    assert_eq!(bindings.len(), n);
    let sum: Vec<String> = (0..n).map(|k| format!("v{k}")).collect();
    let p = Program::compile(&format!("o = {}", sum.join(" + ")), &bindings).unwrap();
    assert_eq!(p.tape().value(p.output().node), (n * (n - 1) / 2) as f64);
    let r = p.analyse(Mode::Reverse).reverse.unwrap();
    assert_eq!(r.gradient.len(), n);
    assert!(r.gradient.iter().all(|(_, d)| *d == 1.0));
    assert_eq!(r.gradient[n - 1].0, format!("v{}", n - 1));
}
