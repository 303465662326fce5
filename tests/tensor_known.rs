//! The tensor engine on known values: each gradient with its math stated beside it.

use backprop::network::Cost;
use backprop::tensor::{gradcheck, Op, Tape, Tensor, TensorError, Var};

fn t(dims: &[usize], v: &[f64]) -> Tensor<f64> {
    Tensor::from_vec(dims, v.to_vec()).unwrap()
}

#[test]
fn broadcast_bias_gradient_is_summed_over_the_batch() {
    let tape = Tape::new();
    let a = tape.var(t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    let b = tape.var(t(&[3], &[10.0, 20.0, 30.0]));
    let c = tape.var(t(&[2, 1], &[2.0, 3.0]));
    // o = Σ (a + b) * c: do/da = c (broadcast), do/db_j = Σ_i c_i = 5, do/dc_i = Σ_j (a_ij + b_j)
    let o = ((a + b) * c).sum_all();
    let g = o.backward();
    assert_eq!(o.item(), 2.0 * 66.0 + 3.0 * 75.0);
    assert_eq!(g.wrt(a).as_slice(), [2.0, 2.0, 2.0, 3.0, 3.0, 3.0]);
    assert_eq!(g.wrt(b).as_slice(), [5.0, 5.0, 5.0]);
    assert_eq!(g.wrt(c).as_slice(), [66.0, 75.0]);
}

#[test]
fn a_tensor_used_twice_gets_both_gradients() {
    let tape = Tape::new();
    let x = tape.var(t(&[2], &[3.0, -1.0]));
    // y = x x + x: dy/dx = 2x + 1 (three uses, one sum)
    let y = x * x + x;
    assert_eq!(y.backward().wrt(x).as_slice(), [7.0, -1.0]);
    // Calling backward again gives the same answer.
    assert_eq!(y.backward().wrt(x).as_slice(), [7.0, -1.0]);
}

#[test]
fn a_weight_used_at_every_time_step_gets_the_sum() {
    // h_t = tanh(W h_(t-1) + U x_t), J = Σ h_T: W and U appear at each of the T steps.
    let w0 = t(&[2, 2], &[0.5, -0.3, 0.2, 0.8]);
    let u0 = t(&[2, 1], &[1.0, -0.5]);
    fn rnn<'t>(v: &[Var<'t, f64>]) -> Var<'t, f64> {
        let (w, u) = (v[0], v[1]);
        let tape = w.tape();
        let mut h = tape.constant_var(Tensor::zeros([2, 1]));
        for x in [0.3, -0.7, 0.9, 0.1] {
            let x = tape.constant_var(t(&[1, 1], &[x]));
            h = (w.matmul(h) + u.matmul(x)).tanh();
        }
        h
    }
    let check = gradcheck(&[w0.clone(), u0.clone()], 1e-6, rnn);
    assert!(check.max_error < 1e-8, "{check:?}");
    // With one step only, W meets h_0 = 0 and gets no gradient; four steps give it one.
    assert!(check.analytic[0].as_slice().iter().any(|g| g.abs() > 1e-3));
    // The sum over steps, by hand for T = 2, x = (1, 1), W = U = 1 (scalars as 1 x 1):
    // h1 = tanh(1), h2 = tanh(h1 + 1); dh2/dW = (1 - h2²) (h1 + W dh1/dW) with dh1/dW = 0
    // (h0 = 0), so dh2/dW = (1 - h2²) h1; dh2/dU = (1 - h2²)(1 + (1 - h1²)).
    let tape = Tape::new();
    let (w, u) = (
        tape.var(Tensor::full([1, 1], 1.0)),
        tape.var(Tensor::full([1, 1], 1.0)),
    );
    let x = tape.constant_var(Tensor::full([1, 1], 1.0));
    let mut h = tape.constant_var(Tensor::zeros([1, 1]));
    for _ in 0..2 {
        h = (w.matmul(h) + u.matmul(x)).tanh();
    }
    let g = h.backward();
    let h1 = 1f64.tanh();
    let h2 = (h1 + 1.0).tanh();
    assert!((g.wrt(w).item() - (1.0 - h2 * h2) * h1).abs() < 1e-15);
    assert!((g.wrt(u).item() - (1.0 - h2 * h2) * (2.0 - h1 * h1)).abs() < 1e-15);
}

#[test]
fn max_sends_the_gradient_to_the_first_maximum() {
    let tape = Tape::new();
    let x = tape.var(t(&[2, 4], &[1.0, 3.0, 3.0, 2.0, 5.0, 5.0, 5.0, -1.0]));
    let m = x.max(&[1], false);
    assert_eq!(m.value().as_slice(), [3.0, 5.0]);
    assert_eq!(
        m.backward().wrt(x).as_slice(),
        [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    );
    // Over both axes at once, keepdim: one maximum, first in row-major order.
    let m = x.max(&[0, 1], true);
    assert_eq!(m.shape().dims(), [1, 1]);
    assert_eq!(
        m.backward().wrt(x).as_slice(),
        [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn index_select_accumulates_repeated_rows() {
    let tape = Tape::new();
    let emb = tape.var(t(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    let rows = emb.index_select(&[2, 0, 2, 2]);
    assert_eq!(
        rows.value().as_slice(),
        [5.0, 6.0, 1.0, 2.0, 5.0, 6.0, 5.0, 6.0]
    );
    // d(Σ rows)/d(emb): row 0 picked once, row 1 never, row 2 three times.
    assert_eq!(
        rows.backward().wrt(emb).as_slice(),
        [1.0, 1.0, 0.0, 0.0, 3.0, 3.0]
    );
}

#[test]
fn softmax_and_log_softmax_are_stable_and_agree_with_the_composed_forms() {
    let tape = Tape::new();
    let z = tape.var(t(&[2, 3], &[1000.0, 999.0, -1000.0, 0.1, 0.2, 0.3]));
    let s = z.softmax().to_tensor();
    let l = z.log_softmax().to_tensor();
    assert!(s
        .as_slice()
        .iter()
        .chain(l.as_slice())
        .all(|v| v.is_finite()));
    let e = 1f64.exp();
    assert!((s.as_slice()[0] - e / (e + 1.0)).abs() < 1e-15);
    assert!((l.as_slice()[1] - -(1.0 + e.recip()).ln() - -1.0).abs() < 1e-12);
    // The hand-written rules against softmax composed from primitives: e^(z - max) / Σ.
    let x = t(&[2, 3], &[0.3, -1.2, 0.8, 2.0, 0.5, -0.4]);
    fn composed<'t>(v: &[Var<'t, f64>]) -> Var<'t, f64> {
        let shifted = v[0] - v[0].max(&[1], true);
        let e = shifted.exp();
        e / e.sum(&[1], true)
    }
    let a = gradcheck(std::slice::from_ref(&x), 1e-6, |v| v[0].softmax());
    let b = gradcheck(std::slice::from_ref(&x), 1e-6, composed);
    assert!(a.analytic[0].max_abs_diff(&b.analytic[0]) < 1e-15);
    let c = gradcheck(std::slice::from_ref(&x), 1e-6, |v| v[0].log_softmax());
    let d = gradcheck(&[x], 1e-6, |v| composed(v).ln());
    assert!(c.analytic[0].max_abs_diff(&d.analytic[0]) < 1e-14);
}

#[test]
fn fused_softmax_log_likelihood_is_a_minus_y_over_n() {
    let tape = Tape::new();
    let z = tape.var(t(&[2, 3], &[1.0, 2.0, 3.0, 0.0, 0.0, 0.0]));
    let y = tape.constant_var(t(&[2, 3], &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0]));
    let j = z.softmax_log_likelihood(y);
    // C_1 = ln(e + e² + e³) - 3, C_2 = ln 3
    let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
    assert!((j.item() - ((lse - 3.0) + 3f64.ln()) / 2.0).abs() < 1e-15);
    let a = z.softmax().to_tensor();
    let want: Vec<f64> = a
        .as_slice()
        .iter()
        .zip(y.value().as_slice())
        .map(|(a, y)| (a - y) / 2.0)
        .collect();
    assert_eq!(j.backward().wrt(z).as_slice(), want);
    // The unfused pair gives the same J and gradient.
    let j2 = z.softmax().log_likelihood_cost(y);
    assert!((j.item() - j2.item()).abs() < 1e-15);
    assert!(j2.backward().wrt(z).max_abs_diff(j.backward().wrt(z)) < 1e-15);
}

#[test]
fn sequence_cost_is_the_mean_over_steps_then_over_examples() {
    // (N, T, K) = (2, 3, 2): J = (1/2) Σ_n (1/3) Σ_t C_nt, PyTorch's mean over N·T.
    let a: Vec<f64> = (0..12).map(|i| 0.1 + 0.07 * i as f64).collect();
    let y: Vec<f64> = (0..12).map(|i| f64::from(i % 2 == 0)).collect();
    let tape = Tape::new();
    let av = tape.var(t(&[2, 3, 2], &a));
    let yv = tape.constant_var(t(&[2, 3, 2], &y));
    for cost in Cost::ALL {
        let j = av.cost(cost, yv).item();
        let per_n: Vec<f64> = (0..2)
            .map(|n| {
                let steps: f64 = (0..3)
                    .map(|s| {
                        let r = (n * 3 + s) * 2;
                        cost.cost(&a[r..r + 2], &y[r..r + 2])
                    })
                    .sum();
                steps / 3.0
            })
            .collect();
        assert!((j - (per_n[0] + per_n[1]) / 2.0).abs() < 1e-15, "{cost}");
    }
}

#[test]
fn dropout_keeps_one_minus_p_and_scales_by_its_inverse() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::ones([100, 100]));
    let d = x.dropout(0.3, 42);
    let v = d.to_tensor();
    let kept = v.as_slice().iter().filter(|&&v| v != 0.0).count();
    // Binomial(10000, 0.7): sd ≈ 46; 5 sd either side.
    assert!((kept as f64 - 7000.0).abs() < 230.0, "kept {kept}");
    assert!(v
        .as_slice()
        .iter()
        .all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-15));
    // The gradient uses the same mask: d(Σ d)/dx = mask / (1 - p) = the value itself here.
    assert_eq!(d.backward().wrt(x), &v);
    // The same seed gives the same mask, another seed another one.
    assert_eq!(x.dropout(0.3, 42).to_tensor(), v);
    assert_ne!(x.dropout(0.3, 43).to_tensor(), v);
    assert_eq!(x.dropout(0.0, 1).to_tensor(), Tensor::ones([100, 100]));
    assert_eq!(x.dropout(1.0, 1).to_tensor(), Tensor::zeros([100, 100]));
}

#[test]
fn mean_of_a_sequence_and_narrow_concat_stack_values() {
    let tape = Tape::new();
    let x = tape.var(t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    assert_eq!(x.narrow(1, 1, 2).value().as_slice(), [2.0, 3.0, 5.0, 6.0]);
    let c = Var::concat(&[x, x.narrow(0, 1, 1)], 0);
    assert_eq!(c.shape().dims(), [3, 3]);
    // Row 1 of x is used twice: once in x, once in the narrowed copy.
    assert_eq!(
        c.backward().wrt(x).as_slice(),
        [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    );
    let s = Var::stack(&[x, x * 2.0], 2);
    assert_eq!(s.shape().dims(), [2, 3, 2]);
    assert_eq!(s.value().as_slice()[..4], [1.0, 2.0, 2.0, 4.0]);
    assert_eq!(s.backward().wrt(x).as_slice(), [3.0; 6]);
    let p = x.permute(&[1, 0]);
    assert_eq!(p.value().as_slice(), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    assert_eq!(x.transpose(0, 1).to_tensor(), p.to_tensor());
}

#[test]
fn bad_shapes_are_errors_from_push_and_name_the_op() {
    let tape = Tape::<f64>::new();
    let a = tape.input(Tensor::zeros([2, 3]));
    let b = tape.input(Tensor::zeros([4, 5]));
    let v = tape.input(Tensor::zeros([3]));
    let err = |op: Op, args: &[_]| tape.push(op, args).unwrap_err();
    assert_eq!(
        err(Op::MatMul { rhs_t: false }, &[a, b]).to_string(),
        "'matmul': shapes [2, 3] and [4, 5] do not fit"
    );
    assert!(matches!(
        err(Op::MatMul { rhs_t: false }, &[a, v]),
        TensorError::ShapeMismatch { .. }
    ));
    assert_eq!(
        err(
            Op::Sum {
                axes: vec![2],
                keepdim: false
            },
            &[a]
        )
        .to_string(),
        "'sum': axis 2 is out of range or repeated for rank 2"
    );
    assert!(matches!(
        err(
            Op::Sum {
                axes: vec![1, 1],
                keepdim: false
            },
            &[a]
        ),
        TensorError::Axis { .. }
    ));
    assert!(matches!(
        err(
            Op::Max {
                axes: vec![],
                keepdim: false
            },
            &[a]
        ),
        TensorError::NoAxes { .. }
    ));
    assert!(matches!(
        err(Op::Reshape { shape: [5].into() }, &[a]),
        TensorError::Reshape { .. }
    ));
    assert!(matches!(
        err(Op::Permute { perm: vec![0, 0] }, &[a]),
        TensorError::Permutation { .. }
    ));
    assert_eq!(
        err(
            Op::Narrow {
                axis: 1,
                start: 2,
                len: 2
            },
            &[a]
        )
        .to_string(),
        "'narrow': 2..2+2 is past the end of axis 1 (size 3)"
    );
    assert!(matches!(
        err(
            Op::Narrow {
                axis: 0,
                start: usize::MAX,
                len: 2
            },
            &[a]
        ),
        TensorError::Range { .. }
    ));
    assert!(matches!(
        err(Op::Concat { axis: 0 }, &[a, b]),
        TensorError::ShapeMismatch { .. }
    ));
    assert!(matches!(
        err(Op::Concat { axis: 0 }, &[]),
        TensorError::Arity { .. }
    ));
    assert_eq!(
        err(
            Op::IndexSelect {
                indices: vec![0, 2]
            },
            &[a]
        ),
        TensorError::Index { index: 2, len: 2 }
    );
    assert!(matches!(
        err(Op::Dropout { p: 1.5, seed: 0 }, &[a]),
        TensorError::Probability { .. }
    ));
    assert!(matches!(
        err(
            Op::Dropout {
                p: f64::NAN,
                seed: 0
            },
            &[a]
        ),
        TensorError::Probability { .. }
    ));
    assert!(matches!(
        err(Op::Cost(Cost::Quadratic), &[a, b]),
        TensorError::ShapeMismatch { .. }
    ));
    let s = tape.input(Tensor::scalar(1.0));
    assert!(matches!(err(Op::Softmax, &[s]), TensorError::Rank { .. }));
    assert!(matches!(err(Op::Exp, &[a, a]), TensorError::Arity { .. }));
    assert!(Tensor::<f64>::from_vec([usize::MAX, 2], vec![]).is_err());
    // And the panicking shell names the same problem.
    let r = std::panic::catch_unwind(|| {
        let tape = Tape::<f64>::new();
        let a = tape.var(Tensor::zeros([2, 3]));
        let b = tape.var(Tensor::zeros([4]));
        let _ = a + b;
    });
    let msg = r.unwrap_err().downcast::<String>().unwrap();
    assert_eq!(*msg, "'+': shapes [2, 3] and [4] do not broadcast");
}

#[test]
fn a_long_chain_needs_no_recursion() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::scalar(1.0));
    let mut y = x;
    for _ in 0..100_000 {
        y = y * 1.0;
    }
    assert_eq!(y.backward().wrt(x).item(), 1.0);
}

#[test]
fn constants_get_no_gradient_and_unused_inputs_get_zeros() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::full([2], 2.0));
    let unused = tape.var(Tensor::full([3], 1.0));
    let c = tape.constant_var(Tensor::full([2], 5.0));
    let y = (x * c).sum_all();
    let g = y.backward();
    assert_eq!(g.wrt(x).as_slice(), [5.0, 5.0]);
    assert_eq!(g.wrt(unused).as_slice(), [0.0; 3]);
    assert!(g.get(c.id()).is_none());
}

#[test]
fn f32_and_f64_agree() {
    let run = |scale: f64| {
        let tape = Tape::<f32>::new();
        let w = tape.var(Tensor::from_fn([3, 4], |i| (i as f32 * 0.37).sin()));
        let x = tape.constant_var(Tensor::from_fn([5, 4], |i| {
            (i as f32 * 0.11 * scale as f32).cos()
        }));
        let y = tape.constant_var(Tensor::from_fn([5, 3], |i| f32::from(u8::from(i % 4 == 0))));
        let j = x.matmul_t(w).softmax_log_likelihood(y);
        let dw = j.backward().wrt(w).clone(); // the gradients borrow the tape: end them here
        (j.item(), dw)
    };
    let tape = Tape::<f64>::new();
    let w = tape.var(Tensor::from_fn([3, 4], |i| (i as f32 * 0.37).sin() as f64));
    let x = tape.constant_var(Tensor::from_fn([5, 4], |i| (i as f32 * 0.11).cos() as f64));
    let y = tape.constant_var(Tensor::from_fn([5, 3], |i| f64::from(u8::from(i % 4 == 0))));
    let j = x.matmul_t(w).softmax_log_likelihood(y);
    let (j32, g32) = run(1.0);
    assert!((j.item() - j32 as f64).abs() < 1e-5);
    assert!(j.backward().wrt(w).max_abs_diff(&g32.cast()) < 1e-5);
}
