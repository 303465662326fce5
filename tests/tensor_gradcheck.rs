//! Every differentiable tensor op against central finite differences in f64, on random
//! shapes (broadcasting ones included) and random values.

use backprop::tensor::{gradcheck, Shape, Tensor, Var};
use proptest::prelude::*;

const H: f64 = 1e-5;
const TOL: f64 = 1e-6;

/// Dims of rank 0..=3, each 1..=4.
fn dims() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, 0..=3)
}

/// A tensor of shape `d` with values from `range` (random sign when `signed_from` is set:
/// magnitudes in the range, away from 0, so kinks and poles stay a step away).
fn tensor(d: Vec<usize>, lo: f64, hi: f64, signed: bool) -> impl Strategy<Value = Tensor<f64>> {
    let n = Shape::new(&d).numel();
    prop::collection::vec((lo..hi, any::<bool>()), n).prop_map(move |v| {
        let data = v
            .into_iter()
            .map(|(x, neg)| if signed && neg { -x } else { x })
            .collect();
        Tensor::from_vec(d.clone(), data).unwrap()
    })
}

/// Two shapes that broadcast: `d`, and `d` with some leading axes dropped and some dims 1.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, bool)> {
    (
        dims(),
        prop::collection::vec(any::<bool>(), 3),
        0usize..=3,
        any::<bool>(),
    )
        .prop_map(|(d, ones, drop, swap)| {
            let drop = drop.min(d.len());
            let other: Vec<usize> = d[drop..]
                .iter()
                .zip(&ones)
                .map(|(&x, &one)| if one { 1 } else { x })
                .collect();
            (d, other, swap)
        })
}

fn pair(lo: f64, hi: f64, signed: bool) -> impl Strategy<Value = (Tensor<f64>, Tensor<f64>)> {
    broadcast_pair().prop_flat_map(move |(d, o, swap)| {
        let (a, b) = if swap { (o, d) } else { (d, o) };
        (tensor(a, lo, hi, signed), tensor(b, lo, hi, signed))
    })
}

fn assert_ok(check: backprop::tensor::GradCheck, what: &str) {
    assert!(
        check.max_error < TOL,
        "{what}: error {:.3e}\nanalytic {:?}\nnumeric {:?}",
        check.max_error,
        check.analytic,
        check.numeric
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn add_sub_mul_broadcast((a, b) in pair(0.1, 2.0, true)) {
        assert_ok(gradcheck(&[a.clone(), b.clone()], H, |v| v[0] + v[1]), "+");
        assert_ok(gradcheck(&[a.clone(), b.clone()], H, |v| v[0] - v[1]), "-");
        assert_ok(gradcheck(&[a, b], H, |v| v[0] * v[1]), "*");
    }

    #[test]
    fn div_broadcast((a, b) in pair(0.5, 2.0, true)) {
        assert_ok(gradcheck(&[a, b], H, |v| v[0] / v[1]), "/");
    }

    #[test]
    fn pow_broadcast((a, b) in pair(0.3, 2.0, false)) {
        // The exponent in [-2, 2]: shift b from [0.3, 2] to [-1.7, 0] and beyond.
        assert_ok(gradcheck(&[a, b], H, |v| v[0].pow(v[1] * 2.0 - 2.0)), "pow");
    }

    #[test]
    fn unary_ops(x in dims().prop_flat_map(|d| tensor(d, 0.05, 2.0, true))) {
        assert_ok(gradcheck(std::slice::from_ref(&x), H, |v| -v[0]), "neg");
        assert_ok(gradcheck(std::slice::from_ref(&x), H, |v| v[0].exp()), "exp");
        assert_ok(gradcheck(std::slice::from_ref(&x), H, |v| v[0].tanh()), "tanh");
        assert_ok(gradcheck(std::slice::from_ref(&x), H, |v| v[0].sigmoid()), "sigmoid");
        assert_ok(gradcheck(std::slice::from_ref(&x), H, |v| v[0].relu()), "relu");
        assert_ok(gradcheck(std::slice::from_ref(&x), H, |v| v[0].leaky_relu()), "leaky relu");
        let pos = x.map(f64::abs);
        assert_ok(gradcheck(std::slice::from_ref(&pos), H, |v| v[0].ln()), "ln");
        assert_ok(gradcheck(std::slice::from_ref(&pos), H, |v| v[0].sqrt()), "sqrt");
        assert_ok(gradcheck(&[pos], H, |v| v[0].powf(1.5)), "powf");
    }

    #[test]
    fn matmul_2d(
        (a, b, bt) in (1usize..=5, 1usize..=5, 1usize..=5).prop_flat_map(|(m, k, n)| (
            tensor(vec![m, k], 0.0, 1.0, true),
            tensor(vec![k, n], 0.0, 1.0, true),
            tensor(vec![n, k], 0.0, 1.0, true),
        ))
    ) {
        assert_ok(gradcheck(&[a.clone(), b], H, |v| v[0].matmul(v[1])), "matmul");
        assert_ok(gradcheck(&[a, bt], H, |v| v[0].matmul_t(v[1])), "matmul_t");
    }

    #[test]
    fn matmul_batched_broadcast(
        (a, b, d, e, c, w) in (1usize..=3, 1usize..=3, 1usize..=3, 1usize..=3, 1usize..=3, any::<bool>())
            .prop_flat_map(|(p, q, m, k, n, one)| {
                let q1 = if one { 1 } else { q };
                (
                    tensor(vec![p, q, m, k], 0.0, 1.0, true),
                    tensor(vec![q1, k, n], 0.0, 1.0, true),
                    tensor(vec![q1, m, k], 0.0, 1.0, true),
                    tensor(vec![p, q, k, n], 0.0, 1.0, true),
                    tensor(vec![n, k], 0.0, 1.0, true),
                    tensor(vec![m, k], 0.0, 1.0, true),
                )
            })
    ) {
        // Batch axes broadcast on the right operand, then on the left.
        assert_ok(gradcheck(&[a.clone(), b], H, |v| v[0].matmul(v[1])), "rhs batch broadcast");
        assert_ok(gradcheck(&[d, e.clone()], H, |v| v[0].matmul(v[1])), "lhs batch broadcast");
        // A 2-D weight shared by the batch, stored transposed (the folded product).
        assert_ok(gradcheck(&[a, c], H, |v| v[0].matmul_t(v[1])), "folded");
        // A 2-D left operand times a batched right one.
        assert_ok(gradcheck(&[w, e], H, |v| v[0].matmul(v[1])), "2-D lhs");
    }

    #[test]
    fn reshape_permute_transpose(x in prop::collection::vec(1usize..=3, 1..=4).prop_flat_map(|d| tensor(d, 0.0, 1.0, true)), seed in any::<u64>()) {
        let r = x.dims().len();
        // A permutation from the seed.
        let mut perm: Vec<usize> = (0..r).collect();
        let mut s = seed;
        for i in (1..r).rev() {
            perm.swap(i, (s % (i as u64 + 1)) as usize);
            s /= 7;
        }
        let n = x.numel();
        assert_ok(gradcheck(std::slice::from_ref(&x), H, |v| v[0].reshape([n]).exp()), "reshape");
        let p = perm.clone();
        assert_ok(gradcheck(std::slice::from_ref(&x), H, move |v| v[0].permute(&p) * v[0].permute(&p).sigmoid()), "permute");
        assert_ok(gradcheck(&[x], H, move |v| v[0].transpose(0, r - 1).tanh()), "transpose");
    }

    #[test]
    fn sum_mean_max(x in prop::collection::vec(1usize..=4, 1..=3).prop_flat_map(|d| tensor(d, 0.0, 2.0, true)), mask in 1u8..8, keepdim in any::<bool>()) {
        let r = x.dims().len();
        let mut axes: Vec<usize> = (0..r).filter(|&a| mask & (1 << a) != 0).collect();
        if axes.is_empty() {
            axes.push(r - 1);
        }
        let ax = axes.clone();
        assert_ok(gradcheck(std::slice::from_ref(&x), H, move |v| v[0].sum(&ax, keepdim)), "sum");
        let ax = axes.clone();
        assert_ok(gradcheck(std::slice::from_ref(&x), H, move |v| v[0].mean(&ax, keepdim)), "mean");
        assert_ok(gradcheck(&[x], H, move |v| v[0].max(&axes, keepdim)), "max");
    }

    #[test]
    fn narrow_concat_stack(
        (a, b, axis, start, len) in (prop::collection::vec(1usize..=4, 1..=3), 0usize..3, 0usize..4, 1usize..=4, 1usize..=3)
            .prop_flat_map(|(d, axis, start, len, other)| {
                let axis = axis % d.len();
                let start = start % d[axis];
                let len = len.min(d[axis] - start).max(1);
                let mut e = d.clone();
                e[axis] = other;
                (tensor(d, 0.0, 1.0, true), tensor(e, 0.0, 1.0, true), Just(axis), Just(start), Just(len))
            })
    ) {
        assert_ok(gradcheck(std::slice::from_ref(&a), H, move |v| v[0].narrow(axis, start, len).exp()), "narrow");
        assert_ok(gradcheck(&[a.clone(), b], H, move |v| Var::concat(&[v[0], v[1].tanh(), v[0]], axis).sigmoid()), "concat");
        let a2 = a.clone();
        assert_ok(gradcheck(&[a, a2], H, move |v| Var::stack(&[v[0], v[1] * v[0], v[1]], axis)), "stack");
    }

    #[test]
    fn index_select_repeats(x in (1usize..=4, 1usize..=3).prop_flat_map(|(r, c)| tensor(vec![r, c], 0.0, 1.0, true)), picks in prop::collection::vec(0usize..16, 1..8)) {
        let rows = x.dims()[0];
        let idx: Vec<usize> = picks.iter().map(|p| p % rows).collect();
        assert_ok(gradcheck(&[x], H, move |v| v[0].index_select(&idx).tanh()), "index_select");
    }

    #[test]
    fn softmax_log_softmax(x in prop::collection::vec(1usize..=4, 1..=3).prop_flat_map(|d| tensor(d, 0.0, 3.0, true))) {
        assert_ok(gradcheck(std::slice::from_ref(&x), H, |v| v[0].softmax()), "softmax");
        assert_ok(gradcheck(&[x], H, |v| v[0].log_softmax()), "log_softmax");
    }

    #[test]
    // Inputs below 0.3: at p = 0.9 the kept ones are scaled by 10, and exp of a larger value
    // makes the summed loss so large that its central differences lose the small entries.
    fn dropout(x in dims().prop_flat_map(|d| tensor(d, 0.0, 0.3, true)), p in 0.0f64..0.9, seed in any::<u64>()) {
        assert_ok(gradcheck(&[x], H, move |v| v[0].dropout(p, seed).exp()), "dropout");
    }

    #[test]
    fn costs_wrt_output_and_target(
        (a, y, z) in prop::collection::vec(1usize..=4, 1..=3).prop_flat_map(|d| (
            tensor(d.clone(), 0.05, 0.95, false),
            tensor(d.clone(), 0.0, 1.0, false),
            tensor(d, 0.0, 3.0, true),
        ))
    ) {
        use backprop::network::Cost;
        for cost in Cost::ALL {
            assert_ok(gradcheck(&[a.clone(), y.clone()], H, move |v| v[0].cost(cost, v[1])), cost.name());
        }
        // The fused pairs on logits, with probability targets (rows summing to 1 for softmax).
        let k = *z.dims().last().unwrap();
        let rows: Vec<f64> = y.as_slice().chunks(k).flat_map(|r| {
            let s: f64 = r.iter().sum::<f64>() + 1e-3;
            r.iter().map(move |v| (v + 1e-3 / k as f64) / s).collect::<Vec<_>>()
        }).collect();
        let p = Tensor::from_vec(y.shape(), rows).unwrap();
        assert_ok(gradcheck(&[z.clone(), p], H, |v| v[0].softmax_log_likelihood(v[1])), "softmax + log-likelihood");
        assert_ok(gradcheck(&[z, y], H, |v| v[0].sigmoid_cross_entropy(v[1])), "sigmoid + cross-entropy");
    }
}

/// A convolution's arguments: input `(N, C_in, H, W)`, weight `(C_out, C_in, k, k)`, a bias
/// `(C_out, 1, 1)`, a stride and a padding.
type ConvCase = (Tensor<f64>, Tensor<f64>, Tensor<f64>, usize, usize);

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (
        1usize..=3,
        1usize..=2,
        0usize..=1,
        1usize..=2,
        1usize..=2,
        1usize..=3,
        0usize..=3,
        0usize..=3,
    )
        .prop_flat_map(|(k, stride, pad, n, c_in, c_out, dh, dw)| {
            let (h, w) = (k + dh, k + dw);
            (
                tensor(vec![n, c_in, h, w], 0.0, 1.0, true),
                tensor(vec![c_out, c_in, k, k], 0.0, 1.0, true),
                tensor(vec![c_out, 1, 1], 0.0, 1.0, true),
                Just(stride),
                Just(pad),
            )
        })
}

/// Values spread at least 0.01 apart (a permutation of a grid), so that no max-pool window
/// has a tie or a near-tie that a finite-difference step could cross.
fn distinct(d: Vec<usize>) -> impl Strategy<Value = Tensor<f64>> {
    let n = Shape::new(&d).numel();
    Just((0..n).collect::<Vec<usize>>())
        .prop_shuffle()
        .prop_map(move |p| {
            let data = p.into_iter().map(|i| i as f64 * 0.01 - 0.3).collect();
            Tensor::from_vec(d.clone(), data).unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn conv2d_input_weight_and_bias((x, w, b, stride, pad) in conv_case()) {
        assert_ok(
            gradcheck(&[x, w, b], H, |v| {
                // tanh makes the output's cost non-linear, so every weight matters.
                (v[0].conv2d(v[1], [stride, stride], [pad, pad]) + v[2]).tanh().sum_all()
            }),
            "conv2d",
        );
    }

    #[test]
    fn max_and_avg_pool(
        x in (1usize..=2, 1usize..=2, 2usize..=6, 2usize..=6)
            .prop_flat_map(|(n, c, h, w)| distinct(vec![n, c, h, w])),
        k in 1usize..=2,
    ) {
        assert_ok(gradcheck(std::slice::from_ref(&x), H, |v| v[0].max_pool2d([k, k]).tanh().sum_all()), "max-pool");
        assert_ok(gradcheck(&[x], H, |v| v[0].avg_pool2d([k, k]).tanh().sum_all()), "avg-pool");
    }
}
