//! The post's Figure 1 and micrograd's README example: golden numbers in every mode.

use backprop::graph::{
    central_difference, derivative, grad, grad_forward, hvp, value_and_grad, Dual, GraphError, Op,
    PathTotals, Real, Tape,
};
use backprop::program::{figure_1_inputs, Mode, Program, FIGURE_1};

/// o = c d / 2, c = a + b, d = a b.
fn figure_1<T: Real>(a: T, b: T) -> T {
    let c = a + b;
    let d = a * b;
    c * d * 0.5
}

// At a = 2, b = 3: c = 5, d = 6, o = 15;
// do/dc = d/2 = 3, do/dd = c/2 = 2.5,
// do/da = do/dc · 1 + do/dd · b = 3 + 7.5 = 10.5, do/db = 3 + 2.5 · 2 = 8.
#[test]
fn figure_1_reverse_mode_on_the_tape() {
    let tape = Tape::new();
    let (a, b) = (tape.var(2.0), tape.var(3.0));
    let c = a + b;
    let d = a * b;
    let o = c * d * 0.5;
    assert_eq!((c.val(), d.val(), o.val()), (5.0, 6.0, 15.0));
    let g = o.backward();
    assert_eq!(
        [g.wrt(a), g.wrt(b), g.wrt(c), g.wrt(d), g.wrt(o)],
        [10.5, 8.0, 3.0, 2.5, 1.0]
    );
}

#[test]
fn figure_1_forward_mode_on_the_tape() {
    let tape = Tape::new();
    let (a, b) = (tape.var(2.0), tape.var(3.0));
    let c = a + b;
    let d = a * b;
    let o = c * d * 0.5;
    let from = |v: backprop::graph::Var<'_>| tape.forward_mode(v.id())[o.id()];
    assert_eq!([from(a), from(b), from(c), from(d)], [10.5, 8.0, 3.0, 2.5]);
    // d(every node)/d(a): dc/da = 1, dd/da = b = 3.
    let t = tape.forward_mode(a.id());
    assert_eq!((t[c.id()], t[d.id()], t[b.id()]), (1.0, 3.0, 0.0));
}

#[test]
fn figure_1_written_once_runs_on_f64_dual_and_var() {
    assert_eq!(figure_1(2.0, 3.0), 15.0);
    assert_eq!(
        grad_forward(|x| figure_1(x[0], x[1]), &[2.0, 3.0]),
        [10.5, 8.0]
    );
    assert_eq!(
        value_and_grad(|x| figure_1(x[0], x[1]), &[2.0, 3.0]),
        (15.0, vec![10.5, 8.0])
    );
    let o = figure_1(Dual::variable(2.0), Dual::constant(3.0));
    assert_eq!((o.v, o.d), (15.0, 10.5));
}

#[test]
fn figure_1_program_both_modes_and_work() {
    let p = Program::compile(FIGURE_1, &figure_1_inputs()).unwrap();
    let r = p.analyse(Mode::Both);
    assert_eq!(r.value, 15.0);
    let expected: Vec<(String, f64)> = [("a", 10.5), ("b", 8.0), ("c", 3.0), ("d", 2.5)]
        .iter()
        .map(|(n, v)| (n.to_string(), *v))
        .collect();
    let (f, rev) = (r.forward.unwrap(), r.reverse.unwrap());
    assert_eq!(f.gradient, expected);
    assert_eq!(rev.gradient, expected);
    // Forward: from a: a->c, a->d, c->(0.5 c), (0.5 c)->o, d->o = 5; from b: 5; from c: 2;
    // from d: 1. Reverse: each of the 7 edges from an input towards o once (o's two, c's
    // into (0.5 c), c's two, d's two); the edge into the constant 0.5 is not differentiated,
    // as forward mode never differentiates it either.
    assert_eq!((f.work, rev.work), (13, 7));
}

#[test]
fn figure_1_sum_over_paths() {
    let tape = Tape::new();
    let (a, b) = (tape.var(2.0), tape.var(3.0));
    let (c, d) = (a + b, a * b);
    let o = c * d * 0.5;
    let g = o.backward();
    for v in [a, b, c, d] {
        let paths = tape.paths(v.id(), o.id(), 100).unwrap();
        let sum: f64 = paths.iter().map(|p| p.product).sum();
        assert_eq!(sum, g.wrt(v));
        for p in &paths {
            assert_eq!(p.nodes.first(), Some(&v.id()));
            assert_eq!(p.nodes.last(), Some(&o.id()));
            assert_eq!(p.partials.iter().product::<f64>(), p.product);
        }
    }
    assert_eq!(tape.paths(a.id(), o.id(), 100).unwrap().len(), 2);
    assert_eq!(tape.count_paths(d.id(), o.id()), 1);
    assert_eq!(tape.count_paths(o.id(), a.id()), 0);
}

#[test]
fn paths_refused_above_the_limit_before_enumerating() {
    let tape = Tape::new();
    let a = tape.var(1.0);
    let mut x = a;
    for _ in 0..200 {
        x = x * x.sin(); // 2^200 paths: counting saturates, enumeration would never end
    }
    assert_eq!(
        tape.paths(a.id(), x.id(), 1000),
        Err(GraphError::TooManyPaths {
            count: u64::MAX,
            limit: 1000
        })
    );
    let mut y = a;
    for _ in 0..10 {
        y = y + y * 1.0; // y = 1024 a: two ways on at each step, 1024 paths, each product 1
    }
    let paths = tape.paths(a.id(), y.id(), 1024).unwrap();
    assert_eq!(paths.len(), 1024);
    assert_eq!(paths.iter().map(|p| p.product).sum::<f64>(), 1024.0);
}

// b = a + a: db/da = 1 + 1 = 2; the two uses accumulate.
#[test]
fn reused_node_accumulates() {
    let tape = Tape::new();
    let a = tape.var(3.0);
    let b = a + a;
    assert_eq!(b.backward().wrt(a), 2.0);
    // c = a · a: dc/da = a + a = 6
    let c = a * a;
    assert_eq!(c.backward().wrt(a), 6.0);
    assert_eq!(tape.forward_mode(a.id())[c.id()], 6.0);
}

#[test]
fn backward_is_idempotent() {
    let tape = Tape::new();
    let (a, b) = (tape.var(2.0), tape.var(3.0));
    let o = figure_1(a, b);
    let first = o.backward();
    let second = o.backward();
    assert_eq!(first, second);
    assert_eq!(second.wrt(a), 10.5);
}

/// micrograd's README example, with f64 constants on the right so it is generic.
// `c += c + 1` is micrograd's own spelling; keep it.
#[allow(clippy::misrefactored_assign_op)]
fn micrograd<T: Real>(a: T, b: T) -> T {
    let mut c = a + b;
    let mut d = a * b + b.powi(3);
    c += c + 1.0;
    c += c + 1.0 + (-a);
    d += d * 2.0 + (b + a).relu();
    d += d * 3.0 + (b - a).relu();
    let e = c - d;
    let f = e.powi(2);
    let mut g = f / 2.0;
    g += f.powi(-1) * 10.0;
    g
}

// micrograd's README: g = 24.7041, dg/da = 138.8338, dg/db = 645.5773 at a = -4, b = 2.
fn assert_micrograd(g: f64, da: f64, db: f64) {
    assert!((g - 24.7041).abs() < 1e-4, "g = {g}");
    assert!((da - 138.8338).abs() < 1e-4, "dg/da = {da}");
    assert!((db - 645.5773).abs() < 1e-4, "dg/db = {db}");
}

#[test]
#[allow(clippy::misrefactored_assign_op)]
fn micrograd_readme_with_the_api() {
    // Written exactly as micrograd's README, on concrete Vars (constants on the left too).
    let tape = Tape::new();
    let (a, b) = (tape.var(-4.0), tape.var(2.0));
    let mut c = a + b;
    let mut d = a * b + b.powi(3);
    c += c + 1.0;
    c += 1.0 + c + (-a);
    d += d * 2.0 + (b + a).relu();
    d += 3.0 * d + (b - a).relu();
    let e = c - d;
    let f = e.powi(2);
    let mut g = f / 2.0;
    g += 10.0 / f;
    let grads = g.backward();
    assert_micrograd(g.val(), grads.wrt(a), grads.wrt(b));

    let (v, gr) = value_and_grad(|x| micrograd(x[0], x[1]), &[-4.0, 2.0]);
    assert_micrograd(v, gr[0], gr[1]);
    let gf = grad_forward(|x| micrograd(x[0], x[1]), &[-4.0, 2.0]);
    assert_micrograd(micrograd(-4.0, 2.0), gf[0], gf[1]);
    for (f, r) in gf.iter().zip(&gr) {
        assert!((f - r).abs() <= 1e-12 * r.abs());
    }
}

#[test]
fn micrograd_readme_as_a_program() {
    let src = "c = a + b
d = a * b + b^3
c2 = c + (c + 1)
c3 = c2 + (1 + c2 + (-a))
d2 = d + (d * 2 + relu(b + a))
d3 = d2 + (3 * d2 + relu(b - a))
e = c3 - d3
f = e^2
g = f / 2.0
g2 = g + 10.0 / f";
    let at = vec![("a".to_string(), -4.0), ("b".to_string(), 2.0)];
    let r = Program::compile(src, &at).unwrap().analyse(Mode::Both);
    for mode in [r.forward.unwrap(), r.reverse.unwrap()] {
        assert_micrograd(r.value, mode.gradient[0].1, mode.gradient[1].1);
    }
}

// f = x0² x1 + sin(x0 x1): H = [[2 x1 - x1² s, 2 x0 + cos(x0 x1) - x0 x1 s],
//                               [2 x0 + cos(x0 x1) - x0 x1 s, -x0² s]], s = sin(x0 x1)
fn f_hess<T: Real>(x: &[T]) -> T {
    x[0].powi(2) * x[1] + (x[0] * x[1]).sin()
}

#[test]
fn hessian_vector_product_known_hessian() {
    let (x0, x1) = (0.7, -1.3);
    let s = (x0 * x1).sin();
    let off = 2.0 * x0 + (x0 * x1).cos() - x0 * x1 * s;
    let h = [[2.0 * x1 - x1 * x1 * s, off], [off, -x0 * x0 * s]];
    for v in [[1.0, 0.0], [0.0, 1.0], [0.3, -2.0]] {
        let hv = hvp(|x| f_hess(x), &[x0, x1], &v).unwrap();
        for i in 0..2 {
            let expected = h[i][0] * v[0] + h[i][1] * v[1];
            assert!((hv[i] - expected).abs() < 1e-13, "{hv:?} vs {expected}");
        }
    }
}

#[test]
fn hessian_vector_product_matches_differences_of_the_gradient() {
    // Rosenbrock-like with every kind of op.
    fn f<T: Real>(x: &[T]) -> T {
        (x[1] - x[0].powi(2)).powi(2) * 100.0
            + (x[0] * -1.0 + 1.0).powi(2)
            + x[2].exp().sigmoid() * x[0].tanh()
            + (x[1] * x[1] + 1.0).ln() / x[2].cos()
            + x[0].abs().sqrt()
    }
    let x = [0.4, 1.1, -0.3];
    let v = [0.5, -1.0, 2.0];
    let hv = hvp(|x| f(x), &x, &v).unwrap();
    let h = 1e-5;
    let plus: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + h * b).collect();
    let minus: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - h * b).collect();
    let (gp, gm) = (grad(|x| f(x), &plus), grad(|x| f(x), &minus));
    for i in 0..3 {
        let fd = (gp[i] - gm[i]) / (2.0 * h);
        assert!(
            (hv[i] - fd).abs() < 1e-5 * fd.abs().max(1.0),
            "{i}: {} vs {fd}",
            hv[i]
        );
    }
    assert!(matches!(
        hvp(|x| f(x), &x, &[1.0]),
        Err(GraphError::LengthMismatch { x: 3, v: 1 })
    ));
}

#[test]
fn million_node_chain_no_recursion() {
    // y_{k+1} = y_k · 1.000001, 500,000 times: a chain of 1,000,001 nodes (a constant and a
    // product per step); dy/dx = 1.000001^500000.
    let tape = Tape::with_capacity(1_000_001);
    let x = tape.var(1.0);
    let mut y = x;
    for _ in 0..500_000 {
        y *= 1.000001;
    }
    assert_eq!(tape.len(), 1_000_001);
    let expected = 1.000001f64.powi(500_000);
    let g = y.backward();
    assert!((g.wrt(x) - expected).abs() < 1e-9 * expected);
    assert!((tape.forward_mode(x.id())[y.id()] - expected).abs() < 1e-9 * expected);
    assert_eq!(tape.count_paths(x.id(), y.id()), 1);
    assert_eq!(
        tape.paths(x.id(), y.id(), 1).unwrap()[0].nodes.len(),
        500_001
    );
}

#[test]
fn central_difference_checks_every_op() {
    let x0 = 0.37;
    for op in [
        Op::Exp,
        Op::Ln,
        Op::Sqrt,
        Op::Sin,
        Op::Cos,
        Op::Tan,
        Op::Tanh,
        Op::Sigmoid,
        Op::Relu,
        Op::Abs,
        Op::Neg,
    ] {
        let tape = Tape::new();
        let x = tape.input(x0);
        let y = tape.push(op, &[x]).unwrap();
        let d = tape.backward(y)[x];
        let fd = central_difference(|v| op.rule(v[0], 0.0).0, &[x0], 1e-6)[0];
        assert!((d - fd).abs() < 1e-8, "{op:?}: {d} vs {fd}");
    }
    for op in [Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Pow] {
        let tape = Tape::new();
        let (x, y) = (tape.input(1.3), tape.input(-0.6));
        let z = tape.push(op, &[x, y]).unwrap();
        let g = tape.backward(z);
        let fd = central_difference(|v| op.rule(v[0], v[1]).0, &[1.3, -0.6], 1e-6);
        assert!(
            (g[x] - fd[0]).abs() < 1e-8 && (g[y] - fd[1]).abs() < 1e-8,
            "{op:?}"
        );
    }
}

#[test]
fn abs_and_relu_at_zero_and_sigmoid_far_out() {
    // |x|' and relu' at 0 are taken as 0; sigmoid stays finite for large |x|.
    let tape = Tape::new();
    let x = tape.var(0.0);
    assert_eq!(x.abs().backward().wrt(x), 0.0);
    assert_eq!(x.relu().backward().wrt(x), 0.0);
    let big = tape.var(-800.0);
    let s = big.sigmoid();
    assert_eq!(s.val(), 0.0);
    assert_eq!(s.backward().wrt(big), 0.0);
    assert_eq!(tape.var(800.0).sigmoid().val(), 1.0);
}

#[test]
fn dot_export_has_a_record_per_node_and_a_derivative_per_edge() {
    let p = Program::compile(FIGURE_1, &figure_1_inputs()).unwrap();
    let dot = p.to_dot();
    assert!(dot.starts_with("digraph"));
    assert!(
        dot.contains("n0 [label=\"{ a | input | value 2 | grad 10.5 }\"];"),
        "{dot}"
    );
    assert!(
        dot.contains("n6 [label=\"{ o | * | value 15 | grad 1 }\"];"),
        "{dot}"
    );
    // The constant is not differentiated; the unnamed product is named by its expression.
    assert!(
        dot.contains("n4 [label=\"{  | const | value 0.5 }\"];"),
        "{dot}"
    );
    assert!(
        dot.contains("n5 [label=\"{ (0.5*c) | * | value 2.5 | grad 6 }\"];"),
        "{dot}"
    );
    assert_eq!(dot.matches("[label=\"{").count(), p.tape().len());
    // Tape: a b c=a+b d=a*b 0.5 t=0.5*c o=t*d. Each edge carries its local derivative:
    // dc/da = dc/db = 1, dd/da = b = 3, dd/db = a = 2, dt/dc = 0.5, do/dt = d = 6,
    // do/dd = t = 2.5; the edge out of the constant is dashed, with no derivative.
    for edge in [
        "n0 -> n2 [label=\"1\"];",
        "n1 -> n2 [label=\"1\"];",
        "n0 -> n3 [label=\"3\"];",
        "n1 -> n3 [label=\"2\"];",
        "n4 -> n5 [style=dashed];",
        "n2 -> n5 [label=\"0.5\"];",
        "n5 -> n6 [label=\"6\"];",
        "n3 -> n6 [label=\"2.5\"];",
    ] {
        assert!(dot.contains(edge), "missing {edge} in {dot}");
    }
    assert_eq!(dot.matches(" -> ").count(), 8);
}

// Every local derivative with respect to a constant is skipped in both modes: y = x^2 is
// one edge from x (dy/dx = 2x = 6 at x = 3), in forward mode and in reverse mode alike.
#[test]
fn constants_are_differentiated_in_neither_mode() {
    let tape = Tape::new();
    let x = tape.var(3.0);
    let y = x.powi(2);
    let g = y.backward();
    let t = tape.forward_mode(x.id());
    assert_eq!((g.wrt(x), t[y.id()]), (6.0, 6.0));
    assert_eq!((g.work(), t.work()), (1, 1));
    // A constant subexpression (2 * 3) is a constant too: z = x (2 * 3), dz/dx = 6.
    let two = tape.constant(2.0);
    let three = tape.constant(3.0);
    let six = tape.push(Op::Mul, &[two, three]).unwrap();
    let z = tape.push(Op::Mul, &[x.id(), six]).unwrap();
    let g = tape.backward(z);
    assert_eq!((g[x.id()], g.work(), g[six], g[two]), (6.0, 1, 0.0, 0.0));
    assert_eq!(tape.forward_mode(x.id()).work(), 2); // x -> y and x -> z
}

// PyTorch's convention for y = a^b, read from torch 2 (float64, CPU):
//   a = -2, b = 2:   y = 4,  dy/da = -4,   dy/db = nan (ln of a negative number)
//   a = -2, b = 3:   y = -8, dy/da = 12,   dy/db = nan
//   a = -2, b = 0:   y = 1,  dy/da = 0,    dy/db = nan
//   a = 0,  b = 2:   y = 0,  dy/da = 0,    dy/db = 0
//   a = 0,  b = 0:   y = 1,  dy/da = 0,    dy/db = 0
//   a = 0,  b = 0.5: y = 0,  dy/da = inf,  dy/db = 0
//   a = 0,  b = -1:  y = inf, dy/da = -inf, dy/db = -inf
//   a = 2,  b = 3:   y = 8,  dy/da = 12,   dy/db = 8 ln 2 = 5.545177444479562
#[test]
fn power_follows_pytorch() {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    let cases: [(f64, f64, f64, f64, f64); 8] = [
        (-2.0, 2.0, 4.0, -4.0, nan),
        (-2.0, 3.0, -8.0, 12.0, nan),
        (-2.0, 0.0, 1.0, 0.0, nan),
        (0.0, 2.0, 0.0, 0.0, 0.0),
        (0.0, 0.0, 1.0, 0.0, 0.0),
        (0.0, 0.5, 0.0, inf, 0.0),
        (0.0, -1.0, inf, -inf, -inf),
        (2.0, 3.0, 8.0, 12.0, 5.545177444479562),
    ];
    let same = |x: f64, y: f64| x == y || (x.is_nan() && y.is_nan());
    for (a, b, y, da, db) in cases {
        let tape = Tape::new();
        let (va, vb) = (tape.var(a), tape.var(b));
        let out = va.pow(vb);
        let g = out.backward();
        let got = (out.val(), g.wrt(va), g.wrt(vb));
        assert!(
            same(got.0, y) && same(got.1, da) && same(got.2, db),
            "a = {a}, b = {b}: {got:?}, torch ({y}, {da}, {db})"
        );
        let t = tape.forward_mode(vb.id());
        assert!(same(t[out.id()], db), "forward, a = {a}, b = {b}");
    }
}

// A constant exponent has tangent 0, so its NaN local derivative at a negative base must not
// reach the result: d/dx x^2 = 2x = -4 at x = -2, by dual numbers and forward-over-reverse.
#[test]
fn power_of_a_negative_base_with_a_constant_exponent() {
    assert_eq!(derivative(|x| x.powi(2), -2.0), -4.0);
    assert_eq!(derivative(|x| x.powf(3.0), -2.0), 12.0);
    // d²/dx² x³ = 6x = -12
    assert_eq!(hvp(|v| v[0].powi(3), &[-2.0], &[1.0]).unwrap(), vec![-12.0]);
    assert_eq!(grad_forward(|v| v[0].pow(v[1]), &[-2.0, 2.0])[0], -4.0);
    // sqrt at 0 reached with tangent 0 contributes nothing: d/dx (x + sqrt(0)) = 1.
    assert_eq!(derivative(|x| x + Dual::constant(0.0).sqrt(), 1.0), 1.0);
}

// x·x·x: x·x uses x twice; its two parallel edges merge into one step, d(x·x)/dx = 2x = 4
// at x = 2 (2 edges), then d(x·x·x)/d(x·x) = x = 2; and the direct edge x -> y, x·x = 4.
// dy/dx = 8 + 4 = 12 = 3x².
#[test]
fn parallel_edges_are_merged_into_one_step() {
    let tape = Tape::new();
    let x = tape.var(2.0);
    let xx = x * x;
    let y = xx * x;
    let paths = tape.paths(x.id(), y.id(), 10).unwrap();
    assert_eq!(paths.len(), 2);
    assert_eq!(paths[0].nodes, [x.id(), xx.id(), y.id()]);
    assert_eq!(
        (paths[0].partials.clone(), paths[0].edges.clone()),
        (vec![4.0, 2.0], vec![2, 1])
    );
    assert_eq!(paths[1].nodes, [x.id(), y.id()]);
    assert_eq!(
        (paths[1].partials.clone(), paths[1].edges.clone()),
        (vec![4.0], vec![1])
    );
    assert_eq!(paths[0].product + paths[1].product, y.backward().wrt(x));
    assert_eq!(tape.count_paths(x.id(), y.id()), 2);
    assert_eq!(
        tape.path_totals(y.id())[x.id().index()],
        PathTotals { paths: 2, steps: 3 }
    );
}

#[test]
fn labels_name_unnamed_nodes_by_their_expression() {
    let tape = Tape::new();
    let (a, b) = (tape.var(2.0), tape.var(3.0));
    tape.set_name(a.id(), "a");
    tape.set_name(b.id(), "b");
    let s = (a + b) * (a - b) / -(a.powi(2) - b).exp(); // -(..) binds looser than ^
    let t = (a - (b + a)) - -a;
    let long = (0..10).fold(a, |acc, _| acc + b * 2.0);
    let unnamed = tape.input(1.0);
    let labels = tape.labels();
    assert_eq!(labels[s.id().index()], "((a + b)*(a - b)/-exp(a^2 - b))");
    assert_eq!(labels[t.id().index()], "(a - (b + a) - -a)");
    assert_eq!(labels[long.id().index()], "(... + b*2)");
    assert_eq!(labels[unnamed.index()], format!("input{}", unnamed.index()));
}

#[test]
fn tape_push_is_checked() {
    let tape: Tape = Tape::new();
    let a = tape.input(1.0);
    let other = Tape::<f64>::new();
    let far = other.input(1.0);
    let _ = other.input(2.0);
    let b = other.input(3.0);
    assert_eq!(far.index(), 0);
    assert_eq!(
        tape.push(Op::Add, &[a, b]),
        Err(GraphError::NodeOutOfRange { index: 2, len: 1 })
    );
    assert!(matches!(
        tape.push(Op::Input, &[]),
        Err(GraphError::Arity { .. })
    ));
    let s = tape.push(Op::Exp, &[a]).unwrap();
    assert_eq!(
        tape.set_value(s, 1.0),
        Err(GraphError::NotALeaf { index: 1 })
    );
}

#[test]
#[should_panic(expected = "two different tapes")]
fn mixing_tapes_panics() {
    let (t1, t2) = (Tape::new(), Tape::new());
    let _ = t1.var(1.0) + t2.var(2.0);
}

#[test]
fn var_debug_shows_the_node_not_the_tape() {
    let tape = Tape::new();
    let mut x = tape.var(2.0);
    for _ in 0..1000 {
        x *= 1.0;
    }
    assert_eq!(format!("{x:?}"), "Var { id: 2000, value: 2.0 }");
}

// f = x^y: d²f/dy dx = x^(y-1) (1 + y ln x), which at y = 0 is 1/x = 0.5 for x = 2;
// d²f/dy² = x^y ln²x = ln²2.
#[test]
fn hvp_of_a_power_at_exponent_zero() {
    let hv = hvp(|v| v[0].pow(v[1]), &[2.0, 0.0], &[0.0, 1.0]).unwrap();
    assert!((hv[0] - 0.5).abs() < 1e-15, "{hv:?}");
    assert!((hv[1] - 2f64.ln().powi(2)).abs() < 1e-15, "{hv:?}");
}
