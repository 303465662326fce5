//! The recurrent layers' fast paths against their references: per-example gradients of
//! RNN and LSTM models from one batched pass against one pass per example (f64, 1e-12),
//! the per-example kernel against the batch kernel, and the f32 gates (a rational
//! approximation of tanh) against f64's library functions.

use backprop::network::Cost;
use backprop::nn::{Arch, Sequential};
use backprop::tensor::kernels::{
    lstm_sequence_backward, lstm_sequence_forward, lstm_step_forward,
    recurrent_param_grads_per_example, rnn_sequence_backward, rnn_sequence_forward,
    rnn_step_forward, InputGrad, ParamGrads, Params, RecurrentShape, SequenceInput,
    SequenceWorkspace,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn uniform(len: usize, r: &mut ChaCha8Rng) -> Vec<f64> {
    (0..len).map(|_| r.gen_range(-1.0..1.0)).collect()
}

/// (arch, input shape, cost, vocabulary for token inputs). One-step sequences included:
/// there W_hh has no gradient (h_0 = 0).
const MODELS: [(&str, &[usize], Cost, Option<usize>); 5] = [
    (
        "Embedding(7, 3), LSTM(3, 4, num_layers=2), Linear(4, 5), Softmax(dim=-1)",
        &[6],
        Cost::LogLikelihood,
        Some(7),
    ),
    (
        "RNN(3, 4, num_layers=2), Tanh(), Linear(4, 2)",
        &[5, 3],
        Cost::Quadratic,
        None,
    ),
    (
        "LSTM(3, 5), Linear(5, 3), Sigmoid()",
        &[4, 3],
        Cost::CrossEntropy,
        None,
    ),
    ("LSTM(2, 3), Linear(3, 2)", &[1, 2], Cost::Quadratic, None),
    (
        "Embedding(5, 2), RNN(2, 3), Linear(3, 5), Softmax(dim=-1)",
        &[1],
        Cost::LogLikelihood,
        Some(5),
    ),
];

fn batch(
    net: &Sequential<f64>,
    input: &[usize],
    cost: Cost,
    tokens: Option<usize>,
    n: usize,
    r: &mut ChaCha8Rng,
) -> (Vec<f64>, Vec<f64>) {
    let per: usize = input.iter().product();
    let x = match tokens {
        Some(v) => (0..n * per).map(|_| r.gen_range(0..v) as f64).collect(),
        None => uniform(n * per, r),
    };
    let out = net.shapes().last().unwrap();
    let k = *out.last().unwrap();
    let positions: usize = out.iter().product::<usize>() / k;
    let y = match cost {
        Cost::LogLikelihood => (0..n * positions)
            .map(|_| r.gen_range(0..k) as f64)
            .collect(),
        _ => (0..n * positions * k)
            .map(|_| r.gen_range(0.0..1.0))
            .collect(),
    };
    (x, y)
}

/// Per-example gradients from the one batched pass equal a forward and backward of each
/// example alone, and their mean equals the batch gradient.
#[test]
fn recurrent_per_example_gradients_equal_one_pass_per_example() {
    for (arch, input, cost, tokens) in MODELS {
        let arch: Arch = arch.parse().unwrap();
        let mut net = Sequential::<f64>::new(&arch, input, 5).unwrap();
        let n = 4;
        let mut r = ChaCha8Rng::seed_from_u64(9);
        let (x, y) = batch(&net, input, cost, tokens, n, &mut r);
        let j = net.loss_and_grad(&x, &y, n, cost).unwrap();
        let batch_grads: Vec<Vec<f64>> = net.grads().map(|g| g.2.to_vec()).collect();
        let (losses, per_ex) = net.per_example_gradients(&x, &y, n, cost).unwrap();
        let (xl, yl) = (x.len() / n, y.len() / n);
        for e in 0..n {
            let alone = net
                .loss_and_grad(&x[e * xl..(e + 1) * xl], &y[e * yl..(e + 1) * yl], 1, cost)
                .unwrap();
            assert!((alone - losses[e]).abs() < 1e-12, "{arch} C_{e}");
            for ((name, _, g), (pe_name, pe)) in net.grads().zip(&per_ex[e]) {
                assert_eq!(name, pe_name);
                for (i, (a, b)) in g.iter().zip(pe).enumerate() {
                    assert!(
                        (a - b).abs() < 1e-12,
                        "{arch} example {e} {name}[{i}]: {a} vs {b}"
                    );
                }
            }
        }
        assert!((losses.iter().sum::<f64>() / n as f64 - j).abs() < 1e-12);
        for (p, b) in batch_grads.iter().enumerate() {
            for (i, &b) in b.iter().enumerate() {
                let mean = per_ex.iter().map(|g| g[p].1[i]).sum::<f64>() / n as f64;
                assert!(
                    (mean - b).abs() < 1e-12,
                    "{arch} param {p}[{i}]: {mean} vs {b}"
                );
            }
        }
        // The weights of sequences longer than one step have a recurrent gradient.
        if input[0] > 1 {
            let w_hh = per_ex[0]
                .iter()
                .find(|(name, _)| name.contains("weight_hh"));
            assert!(w_hh.unwrap().1.iter().any(|&v| v != 0.0), "{arch}");
        }
    }
}

/// The per-example kernel against the batch kernel run on each sequence alone, both cells.
#[test]
fn the_per_example_kernel_equals_the_batch_kernel_on_each_sequence() {
    let mut r = ChaCha8Rng::seed_from_u64(3);
    for lstm in [true, false] {
        let g = if lstm { 4 } else { 1 };
        let (n, t, f, h) = (3, 4, 2, 3);
        let gh = g * h;
        let (w_ih, w_hh) = (uniform(gh * f, &mut r), uniform(gh * h, &mut r));
        let (b_ih, b_hh) = (uniform(gh, &mut r), uniform(gh, &mut r));
        let p = Params {
            w_ih: &w_ih,
            w_hh: &w_hh,
            b_ih: &b_ih,
            b_hh: &b_hh,
        };
        let (x, dout) = (uniform(n * t * f, &mut r), uniform(n * t * h, &mut r));
        let run = |n: usize, x: &[f64], dout: &[f64], ws: &mut SequenceWorkspace<f64>| {
            let s = RecurrentShape::new(n, t, f, h).unwrap();
            let mut out = vec![0.0; n * t * h];
            let mut dx = vec![0.0; n * t * f];
            let mut grads = [
                vec![0.0; gh * f],
                vec![0.0; gh * h],
                vec![0.0; gh],
                vec![0.0; gh],
            ];
            let [a, b, c, d] = &mut grads;
            let mut pg = ParamGrads {
                w_ih: a,
                w_hh: b,
                b_ih: c,
                b_hh: d,
            };
            if lstm {
                lstm_sequence_forward(&s, &p, SequenceInput::Values(x), &mut out, ws);
                lstm_sequence_backward(&s, &p, dout, ws, InputGrad::Values(&mut dx), &mut pg);
            } else {
                rnn_sequence_forward(&s, &p, SequenceInput::Values(x), &mut out, ws);
                rnn_sequence_backward(&s, &p, dout, ws, InputGrad::Values(&mut dx), &mut pg);
            }
            grads
        };
        let mut ws = SequenceWorkspace::new();
        run(n, &x, &dout, &mut ws);
        let mut pe = [
            vec![f64::NAN; n * gh * f],
            vec![f64::NAN; n * gh * h],
            vec![f64::NAN; n * gh],
            vec![f64::NAN; n * gh],
        ];
        let [a, b, c, d] = &mut pe;
        recurrent_param_grads_per_example(
            &ws,
            ParamGrads {
                w_ih: a,
                w_hh: b,
                b_ih: c,
                b_hh: d,
            },
        );
        for e in 0..n {
            let mut alone_ws = SequenceWorkspace::new();
            let alone = run(
                1,
                &x[e * t * f..(e + 1) * t * f],
                &dout[e * t * h..(e + 1) * t * h],
                &mut alone_ws,
            );
            for (k, want) in alone.iter().enumerate() {
                let len = want.len();
                for (i, (a, b)) in pe[k][e * len..(e + 1) * len].iter().zip(want).enumerate() {
                    assert!(
                        (a - b).abs() < 1e-12,
                        "lstm {lstm} e {e} param {k}[{i}]: {a} vs {b}"
                    );
                }
            }
        }
    }
}

/// A backward is needed before per-example gradients: the kernel refuses a bare forward.
#[test]
#[should_panic(expected = "no backward")]
fn per_example_gradients_need_a_backward() {
    let s = RecurrentShape::new(1, 1, 1, 1).unwrap();
    let p = Params {
        w_ih: &[1.0f64],
        w_hh: &[1.0],
        b_ih: &[0.0],
        b_hh: &[0.0],
    };
    let mut ws = SequenceWorkspace::new();
    rnn_sequence_forward(&s, &p, SequenceInput::Values(&[1.0]), &mut [0.0], &mut ws);
    let (mut a, mut b, mut c, mut d) = ([0.0], [0.0], [0.0], [0.0]);
    recurrent_param_grads_per_example(
        &ws,
        ParamGrads {
            w_ih: &mut a,
            w_hh: &mut b,
            b_ih: &mut c,
            b_hh: &mut d,
        },
    );
}

/// f32 gates use a rational approximation of tanh: with zero weights, the biases are the
/// pre-activations, so the step's gates and state show sigmoid and tanh directly. Over
/// [-40, 40] they stay within 3e-7 of f64's exp and tanh, saturate at 0 and 1, and a NaN
/// stays NaN.
#[test]
fn f32_gates_are_within_3e_7_of_f64s() {
    let hid = 8001;
    let z: Vec<f64> = (0..hid).map(|i| -40.0 + 0.01 * i as f64).collect();
    let zf: Vec<f32> = z.iter().map(|&v| v as f32).collect();
    let bias: Vec<f32> = [&zf[..], &zf, &zf, &zf].concat();
    let zero = vec![0.0f32; 4 * hid];
    let s = RecurrentShape::new(1, 1, 1, hid).unwrap();
    let p = Params {
        w_ih: &zero[..4 * hid],
        w_hh: &vec![0.0f32; 4 * hid * hid],
        b_ih: &bias,
        b_hh: &zero,
    };
    let mut gates = vec![0.0f32; 4 * hid];
    let (mut c, mut h) = (vec![0.0f32; hid], vec![0.0f32; hid]);
    let c_prev = vec![1.0f32; hid];
    lstm_step_forward(
        &s,
        &p,
        &[0.0],
        &vec![0.0; hid],
        &c_prev,
        &mut gates,
        &mut c,
        &mut h,
    );
    let mut worst = 0.0f64;
    for (u, &z) in z.iter().enumerate() {
        let z = z as f32 as f64; // what the f32 kernel saw
        let sig = 1.0 / (1.0 + (-z).exp());
        let (i, f, g, o) = (
            gates[u],
            gates[hid + u],
            gates[2 * hid + u],
            gates[3 * hid + u],
        );
        for (got, want) in [(i, sig), (f, sig), (o, sig), (g, z.tanh())] {
            worst = worst.max((got as f64 - want).abs());
        }
        assert!(
            (0.0..=1.0).contains(&i) && (-1.0..=1.0).contains(&g),
            "z = {z}"
        );
        let c_want = f as f64 + i as f64 * g as f64; // c_prev = 1
        assert!((c[u] as f64 - c_want).abs() < 1e-6);
        assert!(
            (h[u] as f64 - o as f64 * c_want.tanh()).abs() < 1e-6,
            "z = {z}"
        );
    }
    assert!(worst < 3e-7, "worst gate error {worst}");
    // Saturated at z = -40 and z = 40.
    assert!(gates[0] < 1e-7 && gates[2 * hid] <= -1.0 + 1e-7);
    assert!(gates[hid - 1] >= 1.0 - 1e-7 && gates[3 * hid - 1] >= 1.0 - 1e-7);

    // The RNN's tanh, and a NaN that must not be clamped into a number.
    let s = RecurrentShape::new(1, 1, 1, 3).unwrap();
    let p = Params {
        w_ih: &[0.0f32; 3],
        w_hh: &[0.0; 9],
        b_ih: &[f32::NAN, 0.5, -3.0],
        b_hh: &[0.0; 3],
    };
    let mut h = [0.0f32; 3];
    rnn_step_forward(&s, &p, &[1.0], &[0.0; 3], &mut h);
    assert!(h[0].is_nan());
    assert!((h[1] as f64 - 0.5f64.tanh()).abs() < 3e-7);
    assert!((h[2] as f64 - (-3.0f64).tanh()).abs() < 3e-7);
}
