//! Random expression graphs: forward mode == reverse mode (1e-12 relative), both == central
//! differences; once through the `Real` API (f64, Dual, Var, and the tape's own forward
//! mode), once through the `diff` language.

use backprop::graph::{central_difference, grad_forward, value_and_grad, Real, Tape};
use backprop::program::{Mode, Program};
use proptest::prelude::*;

/// One instruction; its arguments index earlier values (inputs first). Each is built to stay
/// inside its domain and bounded, so the derivative exists and differences are accurate.
#[derive(Clone, Debug)]
enum Instr {
    Add(usize, usize),
    Sub(usize, usize),
    /// x · sin(y)
    Mul(usize, usize),
    /// x / (1 + y^2)
    Div(usize, usize),
    /// (1 + x^2)^sin(y)
    Pow(usize, usize),
    /// (1 + x^2)^0.7
    Powf(usize),
    Neg(usize),
    /// exp(tanh(x))
    Exp(usize),
    /// ln(1 + x^2)
    Ln(usize),
    /// sqrt(1 + x^2)
    Sqrt(usize),
    Sin(usize),
    Cos(usize),
    /// tan(0.5 tanh(x))
    Tan(usize),
    Tanh(usize),
    Sigmoid(usize),
    /// relu(x - 0.1234567)
    Relu(usize),
    /// |x - 0.1234567|
    Abs(usize),
}

const KINK: f64 = 0.1234567;

fn eval<T: Real>(prog: &[Instr], inputs: &[T]) -> T {
    let mut v: Vec<T> = inputs.to_vec();
    for ins in prog {
        let one_plus_sq = |x: T| x.powi(2) + 1.0;
        let r = match *ins {
            Instr::Add(i, j) => v[i] + v[j],
            Instr::Sub(i, j) => v[i] - v[j],
            Instr::Mul(i, j) => v[i] * v[j].sin(),
            Instr::Div(i, j) => v[i] / one_plus_sq(v[j]),
            Instr::Pow(i, j) => one_plus_sq(v[i]).pow(v[j].sin()),
            Instr::Powf(i) => one_plus_sq(v[i]).powf(0.7),
            Instr::Neg(i) => -v[i],
            Instr::Exp(i) => v[i].tanh().exp(),
            Instr::Ln(i) => one_plus_sq(v[i]).ln(),
            Instr::Sqrt(i) => one_plus_sq(v[i]).sqrt(),
            Instr::Sin(i) => v[i].sin(),
            Instr::Cos(i) => v[i].cos(),
            Instr::Tan(i) => (v[i].tanh() * 0.5).tan(),
            Instr::Tanh(i) => v[i].tanh(),
            Instr::Sigmoid(i) => v[i].sigmoid(),
            Instr::Relu(i) => (v[i] - KINK).relu(),
            Instr::Abs(i) => (v[i] - KINK).abs(),
        };
        v.push(r);
    }
    *v.last().expect("at least one value")
}

/// The same program in the `diff` language: inputs x0.., results n0...
fn render(prog: &[Instr], n_inputs: usize) -> String {
    let name = |k: usize| {
        if k < n_inputs {
            format!("x{k}")
        } else {
            format!("n{}", k - n_inputs)
        }
    };
    let mut s = String::new();
    for (k, ins) in prog.iter().enumerate() {
        let e = match *ins {
            Instr::Add(i, j) => format!("{} + {}", name(i), name(j)),
            Instr::Sub(i, j) => format!("{} - {}", name(i), name(j)),
            Instr::Mul(i, j) => format!("{} * sin({})", name(i), name(j)),
            Instr::Div(i, j) => format!("{} / ({}^2 + 1)", name(i), name(j)),
            Instr::Pow(i, j) => format!("({}^2 + 1)^sin({})", name(i), name(j)),
            Instr::Powf(i) => format!("({}**2 + 1)^0.7", name(i)),
            Instr::Neg(i) => format!("-{}", name(i)),
            Instr::Exp(i) => format!("exp(tanh({}))", name(i)),
            Instr::Ln(i) => format!("log({}^2 + 1)", name(i)),
            Instr::Sqrt(i) => format!("sqrt({}^2 + 1)", name(i)),
            Instr::Sin(i) => format!("sin({})", name(i)),
            Instr::Cos(i) => format!("cos({})", name(i)),
            Instr::Tan(i) => format!("tan(tanh({}) * 0.5)", name(i)),
            Instr::Tanh(i) => format!("tanh({})", name(i)),
            Instr::Sigmoid(i) => format!("sigmoid({})", name(i)),
            Instr::Relu(i) => format!("relu({} - {KINK})", name(i)),
            Instr::Abs(i) => format!("abs({} - {KINK})", name(i)),
        };
        s += &format!("n{k} = {e}\n");
    }
    s
}

/// A random program over `n_inputs` inputs with 1..=max_len instructions.
fn program(n_inputs: usize, max_len: usize) -> impl Strategy<Value = Vec<Instr>> {
    // Each instruction picks its arguments as fractions of the values available so far.
    let one = (0usize..17, 0.0f64..1.0, 0.0f64..1.0);
    prop::collection::vec(one, 1..=max_len).prop_map(move |raw| {
        raw.into_iter()
            .enumerate()
            .map(|(k, (tag, fi, fj))| {
                let avail = n_inputs + k;
                // Prefer recent values, so graphs are deep as well as wide.
                let i = avail - 1 - ((fi * fi * avail as f64) as usize).min(avail - 1);
                let j = ((fj * avail as f64) as usize).min(avail - 1);
                match tag {
                    0 => Instr::Add(i, j),
                    1 => Instr::Sub(i, j),
                    2 => Instr::Mul(i, j),
                    3 => Instr::Div(i, j),
                    4 => Instr::Pow(i, j),
                    5 => Instr::Powf(i),
                    6 => Instr::Neg(i),
                    7 => Instr::Exp(i),
                    8 => Instr::Ln(i),
                    9 => Instr::Sqrt(i),
                    10 => Instr::Sin(i),
                    11 => Instr::Cos(i),
                    12 => Instr::Tan(i),
                    13 => Instr::Tanh(i),
                    14 => Instr::Sigmoid(i),
                    15 => Instr::Relu(i),
                    _ => Instr::Abs(i),
                }
            })
            .collect()
    })
}

/// Relative closeness; for derivatives below 1e-3 in size, absolute (rel · 1e-3): those
/// come from cancelling terms of ordinary size, whose rounding residue is absolute.
fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-3)
}

/// Closeness of a difference quotient: relative, but absolute below 1 (its error is
/// absolute, O(h²) plus rounding).
fn close_fd(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

/// Central differences, skipping coordinates where the kink of relu/abs is within reach.
fn check_fd(prog: &[Instr], x: &[f64], g: &[f64]) -> Result<(), TestCaseError> {
    let h = 1e-6;
    let fd = central_difference(|x| eval(prog, x), x, h);
    for (k, (fd, g)) in fd.iter().zip(g).enumerate() {
        // A one-sided kink makes the difference quotient meaningless: detect it by comparing
        // with a step half as large, and skip only then.
        let fd_half = central_difference(|x| eval(prog, x), x, h / 2.0)[k];
        if !close_fd(*fd, fd_half, 1e-4) {
            continue;
        }
        prop_assert!(
            close_fd(*fd, *g, 1e-5),
            "x{k}: difference {fd} vs derivative {g}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn forward_equals_reverse_equals_differences(
        prog in program(3, 14),
        x in prop::collection::vec(-2.0f64..2.0, 3),
    ) {
        let (value, reverse) = value_and_grad(|v| eval(&prog, v), &x);
        let forward = grad_forward(|v| eval(&prog, v), &x);
        // Not bit for bit: the compiler may turn f64's x^2.0 into x * x where the exponent
        // is a known constant, while the tape calls pow; both round correctly to within an ulp.
        let plain = eval(&prog, &x);
        prop_assert!(close(value, plain, 1e-12), "tape {} vs f64 {}", value, plain);
        for (f, r) in forward.iter().zip(&reverse) {
            prop_assert!(close(*f, *r, 1e-12), "forward {} vs reverse {}", f, r);
        }
        // The tape's own forward mode agrees too.
        let tape = Tape::new();
        let vars: Vec<_> = x.iter().map(|&xi| tape.var(xi)).collect();
        let out = eval(&prog, &vars);
        for (var, r) in vars.iter().zip(&reverse) {
            let t = tape.forward_mode(var.id())[out.id()];
            prop_assert!(close(t, *r, 1e-12), "tape forward {} vs reverse {}", t, r);
        }
        check_fd(&prog, &x, &reverse)?;
    }

    #[test]
    fn programs_agree_with_the_api(
        prog in program(2, 10),
        x in prop::collection::vec(-2.0f64..2.0, 2),
    ) {
        let src = render(&prog, 2);
        let at: Vec<(String, f64)> = x.iter().enumerate().map(|(k, v)| (format!("x{k}"), *v)).collect();
        let p = Program::compile(&src, &at).map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
        let r = p.analyse(Mode::Both);
        let (api_value, api_grad) = value_and_grad(|v| eval(&prog, v), &x);
        prop_assert!(close(r.value, api_value, 1e-12));
        let (fwd, rev) = (r.forward.unwrap(), r.reverse.unwrap());
        for (k, g) in api_grad.iter().enumerate() {
            // Inputs are listed in order of first use, then the unused ones.
            let name = format!("x{k}");
            let d = rev.gradient.iter().find(|(n, _)| *n == name).map(|(_, d)| *d);
            prop_assert!(d.is_some_and(|d| close(d, *g, 1e-12)), "{}: {:?} vs {}", name, d, g);
        }
        // Every intermediate's derivative in both modes; and the sum over paths.
        for (f, r) in fwd.gradient.iter().zip(&rev.gradient) {
            prop_assert!(close(f.1, r.1, 1e-12), "{}: {} vs {}", f.0, f.1, r.1);
        }
        if let Ok(paths) = p.paths(10_000) {
            for (vp, r) in paths.iter().zip(&rev.gradient) {
                // The paths sum in another order than backprop: compare on the scale of the
                // terms, since they may cancel.
                let scale: f64 = vp.paths.iter().map(|p| p.product.abs()).sum();
                prop_assert!(
                    (vp.sum - r.1).abs() <= 1e-12 * scale.max(1e-300),
                    "{}: paths {} vs {}", vp.name, vp.sum, r.1
                );
            }
        }
        check_fd(&prog, &x, &api_grad)?;
    }
}

/// A point inside `op`'s domain, away from kinks and poles, for its derivative check.
fn op_and_point() -> impl Strategy<Value = (backprop::graph::Op, f64, f64)> {
    use backprop::graph::Op;
    let away_from_zero = |x: f64| if x.abs() < 1e-3 { x + 0.5 } else { x };
    prop_oneof![
        (-5.0..5.0f64, -5.0..5.0f64).prop_map(|(x, y)| (Op::Add, x, y)),
        (-5.0..5.0f64, -5.0..5.0f64).prop_map(|(x, y)| (Op::Sub, x, y)),
        (-5.0..5.0f64, -5.0..5.0f64).prop_map(|(x, y)| (Op::Mul, x, y)),
        (-5.0..5.0f64, 0.2..5.0f64, any::<bool>()).prop_map(|(x, y, neg)| (
            Op::Div,
            x,
            if neg { -y } else { y }
        )),
        (0.1..5.0f64, -3.0..3.0f64).prop_map(|(x, y)| (Op::Pow, x, y)),
        (-5.0..5.0f64).prop_map(|x| (Op::Neg, x, 0.0)),
        (-5.0..5.0f64).prop_map(|x| (Op::Exp, x, 0.0)),
        (0.1..10.0f64).prop_map(|x| (Op::Ln, x, 0.0)),
        (0.1..10.0f64).prop_map(|x| (Op::Sqrt, x, 0.0)),
        (-10.0..10.0f64).prop_map(|x| (Op::Sin, x, 0.0)),
        (-10.0..10.0f64).prop_map(|x| (Op::Cos, x, 0.0)),
        (-1.4..1.4f64).prop_map(|x| (Op::Tan, x, 0.0)),
        (-5.0..5.0f64).prop_map(|x| (Op::Tanh, x, 0.0)),
        (-10.0..10.0f64).prop_map(|x| (Op::Sigmoid, x, 0.0)),
        (-5.0..5.0f64).prop_map(move |x| (Op::Relu, away_from_zero(x), 0.0)),
        (-5.0..5.0f64).prop_map(move |x| (Op::Abs, away_from_zero(x), 0.0)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Every op's rule: reverse mode, the tape's forward mode and Dual numbers agree exactly
    /// in structure (1e-12), and with central differences.
    #[test]
    fn every_op_rule(case in op_and_point()) {
        use backprop::graph::Dual;
        let (op, x0, y0) = case;
        let two = op.arity() == 2;
        let tape = Tape::new();
        let (x, y) = (tape.input(x0), tape.input(y0));
        let args = [x, y];
        let z = tape.push(op, &args[..op.arity()]).unwrap();
        let g = tape.backward(z);
        let (dx, dy) = (g[x], g[y]);
        prop_assert_eq!(tape.forward_mode(x)[z], dx);
        prop_assert_eq!(tape.forward_mode(y)[z], dy);
        let dual = op.rule(Dual::variable(x0), Dual::constant(y0)).0;
        prop_assert!(close(dual.d, dx, 1e-12), "{:?}: dual {} vs {}", op, dual.d, dx);
        let fd = central_difference(|v| op.rule(v[0], v[1]).0, &[x0, y0], 1e-6);
        prop_assert!(close_fd(fd[0], dx, 1e-6), "{:?} at ({}, {}): d/dx {} vs {}", op, x0, y0, fd[0], dx);
        if two {
            prop_assert!(close_fd(fd[1], dy, 1e-6), "{:?} at ({}, {}): d/dy {} vs {}", op, x0, y0, fd[1], dy);
        } else {
            prop_assert_eq!(dy, 0.0);
        }
    }
}

/// An expression tree for the labels' test: leaves are a, b or a small constant.
#[derive(Clone, Debug)]
enum Expr {
    A,
    B,
    Const(f64),
    Binary(char, Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Call(&'static str, Box<Expr>),
}

/// Fully parenthesized, so the parser's precedence does not matter in the source.
fn source(e: &Expr) -> String {
    match e {
        Expr::A => "a".into(),
        Expr::B => "b".into(),
        Expr::Const(c) => format!("{c}"),
        Expr::Binary(op, x, y) => format!("({} {op} {})", source(x), source(y)),
        Expr::Neg(x) => format!("(-{})", source(x)),
        Expr::Call(f, x) => format!("{f}({})", source(x)),
    }
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        Just(Expr::A),
        Just(Expr::B),
        (1u32..40).prop_map(|k| Expr::Const(f64::from(k) / 8.0)),
    ];
    leaf.prop_recursive(5, 40, 2, |inner| {
        prop_oneof![
            (
                prop::sample::select(vec!['+', '-', '*', '/', '^']),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, x, y)| Expr::Binary(op, Box::new(x), Box::new(y))),
            inner.clone().prop_map(|x| Expr::Neg(Box::new(x))),
            (prop::sample::select(vec!["sin", "tanh", "sigmoid"]), inner)
                .prop_map(|(f, x)| Expr::Call(f, Box::new(x))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// An unnamed node's label is an expression that computes the node: compiled after the
    /// program, it gives the same value, bit for bit (the same ops in the same order). A
    /// wrong parenthesis (precedence, associativity, unary minus, `^`) would change it.
    #[test]
    fn labels_read_back_as_the_same_value(e in expr(), a in 0.3f64..2.0, b in 0.3f64..2.0) {
        let at = vec![("a".to_string(), a), ("b".to_string(), b)];
        let src = format!("o = {}", source(&e));
        // Outside a domain (a negative base to a fractional power, 1/0): not this test's case.
        let Ok(p) = Program::compile(&src, &at) else { return Ok(()) };
        let values = p.tape().values();
        // Leaves read back too: names, and constants printed to round-trip.
        for (i, label) in p.tape().labels().iter().enumerate() {
            if label.contains("...") {
                continue;
            }
            let check = format!("{src}\nlabel_{i} = {label}");
            let q = Program::compile(&check, &at)
                .map_err(|err| TestCaseError::fail(format!("{err}\n{check}")))?;
            let got = q.tape().value(q.output().node);
            prop_assert!(got.to_bits() == values[i].to_bits(), "{}: {} vs {}\n{}", label, got, values[i], check);
        }
    }
}
