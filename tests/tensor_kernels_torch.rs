//! The tensor kernels agree with PyTorch autograd in float64 (conv2d, max and average
//! pooling, nn.LSTM, nn.RNN) on the values `tests/fixtures/make_kernel_fixtures.py` wrote;
//! PyTorch is not needed to run this test.

use backprop::tensor::kernels::*;
use serde_json::Value;

/// The brief asks for 1e-9 (relative above 1, absolute below); the kernels sum in another
/// order than PyTorch's, which costs a few ulps, far inside it.
const TOL: f64 = 1e-9;

fn fixture() -> Value {
    let path = format!(
        "{}/tests/fixtures/tensor_kernels_torch.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn sizes<const N: usize>(v: &Value) -> [usize; N] {
    let v: Vec<usize> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    v.try_into().unwrap()
}

fn close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= TOL * w.abs().max(1.0),
            "{what}[{i}]: backprop {g}, PyTorch {w}"
        );
    }
}

#[test]
fn conv2d_agrees_with_pytorch() {
    let f = fixture();
    for (k, c) in f["conv2d"].as_array().unwrap().iter().enumerate() {
        let s = Conv2dShape::new(
            sizes(&c["input"]),
            sizes(&c["weight"]),
            sizes(&c["stride"]),
            sizes(&c["padding"]),
        )
        .unwrap();
        let (x, w, b, r) = (
            floats(&c["x"]),
            floats(&c["w"]),
            floats(&c["b"]),
            floats(&c["r"]),
        );
        let mut ws = Conv2dWorkspace::new();
        let mut y = vec![0.0; r.len()];
        conv2d_forward(&s, &x, &w, Some(&b), &mut y, &mut ws);
        close(&format!("conv {k} y"), &y, &floats(&c["y"]));
        let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
        conv2d_backward(&s, &w, &r, &mut ws, Some(&mut dx), &mut dw, Some(&mut db));
        close(&format!("conv {k} dx"), &dx, &floats(&c["dx"]));
        close(&format!("conv {k} dw"), &dw, &floats(&c["dw"]));
        close(&format!("conv {k} db"), &db, &floats(&c["db"]));
        let n = s.input_dims()[0];
        let (mut dw_per, mut db_per) = (vec![0.0; n * w.len()], vec![0.0; n * b.len()]);
        conv2d_weight_grad_per_example(&s, &r, &ws, &mut dw_per, Some(&mut db_per));
        close(
            &format!("conv {k} dw per example"),
            &dw_per,
            &floats(&c["dw_per"]),
        );
        close(
            &format!("conv {k} db per example"),
            &db_per,
            &floats(&c["db_per"]),
        );
    }
}

/// Same values, same indices: on inputs full of ties both pick the first maximum.
#[test]
fn max_pool2d_agrees_with_pytorch_on_ties() {
    let f = fixture();
    for (k, c) in f["max_pool2d"].as_array().unwrap().iter().enumerate() {
        let s = Pool2dShape::new(
            sizes(&c["input"]),
            sizes(&c["kernel"]),
            sizes(&c["stride"]),
            sizes(&c["padding"]),
        )
        .unwrap();
        let (x, r) = (floats(&c["x"]), floats(&c["r"]));
        let (mut y, mut arg) = (vec![0.0; r.len()], vec![0; r.len()]);
        max_pool2d_forward(&s, &x, &mut y, &mut arg);
        close(&format!("max pool {k} y"), &y, &floats(&c["y"]));
        let want: Vec<usize> = c["indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(arg, want, "max pool {k} indices");
        // Ties are the point: many windows hold their maximum more than once.
        let ties = tied_windows(c, &x, &y);
        assert!(
            ties * 4 > y.len(),
            "max pool {k}: only {ties} of {} windows tie",
            y.len()
        );
        let mut dx = vec![0.0; x.len()];
        max_pool2d_backward(&s, &r, &arg, &mut dx);
        close(&format!("max pool {k} dx"), &dx, &floats(&c["dx"]));
    }
}

/// How many windows of case `c` hold their maximum `y` at two or more positions.
fn tied_windows(c: &Value, x: &[f64], y: &[f64]) -> usize {
    let ([_, _, h, w], [kh, kw]) = (sizes(&c["input"]), sizes(&c["kernel"]));
    let ([sh, sw], [ph, pw]) = (sizes(&c["stride"]), sizes(&c["padding"]));
    let (oh, ow) = ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1);
    let mut ties = 0;
    for (o, &m) in y.iter().enumerate() {
        let (plane, oy, ox) = (o / (oh * ow), o / ow % oh, o % ow);
        let mut count = 0;
        for i in 0..kh {
            for j in 0..kw {
                let (yy, xx) = ((oy * sh + i).checked_sub(ph), (ox * sw + j).checked_sub(pw));
                if let (Some(yy), Some(xx)) = (yy, xx) {
                    if yy < h && xx < w && x[(plane * h + yy) * w + xx] == m {
                        count += 1;
                    }
                }
            }
        }
        ties += usize::from(count > 1);
    }
    ties
}

#[test]
fn avg_pool2d_agrees_with_pytorch() {
    let f = fixture();
    for (k, c) in f["avg_pool2d"].as_array().unwrap().iter().enumerate() {
        let s = Pool2dShape::new(
            sizes(&c["input"]),
            sizes(&c["kernel"]),
            sizes(&c["stride"]),
            sizes(&c["padding"]),
        )
        .unwrap();
        let (x, r) = (floats(&c["x"]), floats(&c["r"]));
        let mut y = vec![0.0; r.len()];
        avg_pool2d_forward(&s, &x, &mut y);
        close(&format!("avg pool {k} y"), &y, &floats(&c["y"]));
        let mut dx = vec![0.0; x.len()];
        avg_pool2d_backward(&s, &r, &mut dx);
        close(&format!("avg pool {k} dx"), &dx, &floats(&c["dx"]));
    }
}

fn recurrent_agrees(name: &str, lstm: bool) {
    let f = fixture();
    let c = &f[name];
    let u = |k: &str| c[k].as_u64().unwrap() as usize;
    let s = RecurrentShape::new(u("batch"), u("steps"), u("input"), u("hidden")).unwrap();
    let (w_ih, w_hh, b_ih, b_hh) = (
        floats(&c["w_ih"]),
        floats(&c["w_hh"]),
        floats(&c["b_ih"]),
        floats(&c["b_hh"]),
    );
    let p = Params {
        w_ih: &w_ih,
        w_hh: &w_hh,
        b_ih: &b_ih,
        b_hh: &b_hh,
    };
    let (x, r) = (floats(&c["x"]), floats(&c["r"]));
    let mut ws = SequenceWorkspace::new();
    let mut out = vec![0.0; r.len()];
    let mut dx = vec![0.0; x.len()];
    let (mut g_ih, mut g_hh) = (vec![0.0; w_ih.len()], vec![0.0; w_hh.len()]);
    let (mut gb_ih, mut gb_hh) = (vec![0.0; b_ih.len()], vec![0.0; b_hh.len()]);
    let mut grads = ParamGrads {
        w_ih: &mut g_ih,
        w_hh: &mut g_hh,
        b_ih: &mut gb_ih,
        b_hh: &mut gb_hh,
    };
    if lstm {
        lstm_sequence_forward(&s, &p, SequenceInput::Values(&x), &mut out, &mut ws);
        lstm_sequence_backward(&s, &p, &r, &mut ws, InputGrad::Values(&mut dx), &mut grads);
    } else {
        rnn_sequence_forward(&s, &p, SequenceInput::Values(&x), &mut out, &mut ws);
        rnn_sequence_backward(&s, &p, &r, &mut ws, InputGrad::Values(&mut dx), &mut grads);
    }
    close(&format!("{name} out"), &out, &floats(&c["out"]));
    close(&format!("{name} dx"), &dx, &floats(&c["dx"]));
    close(&format!("{name} dW_ih"), &g_ih, &floats(&c["dw_ih"]));
    close(&format!("{name} dW_hh"), &g_hh, &floats(&c["dw_hh"]));
    close(&format!("{name} db_ih"), &gb_ih, &floats(&c["db_ih"]));
    close(&format!("{name} db_hh"), &gb_hh, &floats(&c["db_hh"]));
}

#[test]
fn lstm_agrees_with_pytorch() {
    recurrent_agrees("lstm", true);
}

#[test]
fn rnn_agrees_with_pytorch() {
    recurrent_agrees("rnn", false);
}
