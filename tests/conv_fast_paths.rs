//! The fast paths of the convolution and pooling kernels on the shapes they were written
//! for (LeNet-5's and examples/mnist's layers, batch 3), against direct loops; and the
//! unpadded max-pooling path's NaN and tie rule, which must be the padded path's.

use backprop::tensor::kernels::{
    col2im, conv2d_backward, conv2d_forward, im2col, max_pool2d_forward, Conv2dShape,
    Conv2dWorkspace, Pool2dShape,
};

fn values(len: usize, salt: usize) -> Vec<f64> {
    (0..len)
        .map(|i| ((i * 7919 + salt * 104_729) % 2001) as f64 / 1000.0 - 1.0)
        .collect()
}

/// y[n, o, oy, ox] = b[o] + sum over c, i, j of w[o, c, i, j] x[n, c, oy + i - ph, ox + j - pw]
/// (stride 1), and the gradients of J = sum(y . dy) by the same sums.
#[allow(clippy::type_complexity)]
fn direct(
    input: [usize; 4],
    weight: [usize; 4],
    pad: usize,
    x: &[f64],
    w: &[f64],
    b: &[f64],
    dy: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let [n, ci, h, wd] = input;
    let [co, _, kh, kw] = weight;
    let (oh, ow) = (h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1);
    let mut y = vec![0.0; n * co * oh * ow];
    let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; co]);
    for e in 0..n {
        for o in 0..co {
            for oy in 0..oh {
                for ox in 0..ow {
                    let yi = ((e * co + o) * oh + oy) * ow + ox;
                    let mut v = b[o];
                    db[o] += dy[yi];
                    for c in 0..ci {
                        for i in 0..kh {
                            for j in 0..kw {
                                let (iy, ix) = (oy + i, ox + j);
                                if iy < pad || ix < pad || iy - pad >= h || ix - pad >= wd {
                                    continue;
                                }
                                let xi = ((e * ci + c) * h + iy - pad) * wd + ix - pad;
                                let wi = ((o * ci + c) * kh + i) * kw + j;
                                v += w[wi] * x[xi];
                                dw[wi] += dy[yi] * x[xi];
                                dx[xi] += dy[yi] * w[wi];
                            }
                        }
                    }
                    y[yi] = v;
                }
            }
        }
    }
    (y, dx, dw, db)
}

fn close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-11 * w.abs().max(1.0),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

/// A convolution of these sizes on fixed values: its shape, the lengths of x, w and y, the
/// inputs x, w, b and dy, and what the direct loops give for y, dx, dw and db.
struct Case {
    s: Conv2dShape,
    lens: (usize, usize, usize),
    inputs: (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>),
    want: (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>),
}

fn case(input: [usize; 4], weight: [usize; 4], pad: usize) -> Case {
    let s = Conv2dShape::new(input, weight, [1, 1], [pad, pad]).unwrap();
    let (xl, wl, yl): (usize, usize, usize) = (
        input.iter().product(),
        weight.iter().product(),
        s.output_dims().iter().product(),
    );
    let (x, w, b, dy) = (
        values(xl, 1),
        values(wl, 2),
        values(weight[0], 3),
        values(yl, 4),
    );
    let (y_want, dx_want, dw_want, db_want) = direct(input, weight, pad, &x, &w, &b, &dy);
    Case {
        s,
        lens: (xl, wl, yl),
        inputs: (x, w, b, dy),
        want: (y_want, dx_want, dw_want, db_want),
    }
}

#[test]
fn conv2d_on_lenet5_and_mnist_shapes_matches_direct_loops() {
    for (input, weight, pad) in [
        ([3, 1, 28, 28], [6, 1, 5, 5], 2),
        ([3, 6, 14, 14], [16, 6, 5, 5], 0),
        ([3, 1, 28, 28], [32, 1, 3, 3], 0),
        ([2, 32, 26, 26], [64, 32, 3, 3], 0),
    ] {
        let Case {
            s,
            lens: (xl, wl, yl),
            inputs: (x, w, b, dy),
            want: (y_want, dx_want, dw_want, db_want),
        } = case(input, weight, pad);
        let mut ws = Conv2dWorkspace::new();
        let mut y = vec![f64::NAN; yl];
        conv2d_forward(&s, &x, &w, Some(&b), &mut y, &mut ws);
        close("y", &y, &y_want);
        let (mut dx, mut dw, mut db) = (vec![0.0; xl], vec![0.0; wl], vec![0.0; weight[0]]);
        conv2d_backward(&s, &w, &dy, &mut ws, Some(&mut dx), &mut dw, Some(&mut db));
        close("dx", &dx, &dx_want);
        close("dw", &dw, &dw_want);
        close("db", &db, &db_want);
        // Without a bias: the product alone.
        conv2d_forward(&s, &x, &w, None, &mut y, &mut ws);
        let per = yl / input[0] / weight[0];
        for (i, (g, want)) in y.iter().zip(&y_want).enumerate() {
            let o = i / per % weight[0];
            assert!((g + b[o] - want).abs() < 1e-11, "no bias, y[{i}]");
        }
    }
}

/// In f32 the small convolutions' products run on the packing-free AVX2 + FMA kernels where
/// the CPU has both (the `gemm` crate elsewhere): the same sums as the f64 direct loops, to f32 rounding, on
/// the models' shapes and on odd ones that leave tails in every block (the per-example
/// weight gradients too, which must sum to the batch's).
#[test]
fn conv2d_in_f32_matches_direct_loops() {
    use backprop::tensor::kernels::conv2d_weight_grad_per_example;
    for (input, weight, pad) in [
        ([3, 1, 28, 28], [6, 1, 5, 5], 2),
        ([3, 6, 14, 14], [16, 6, 5, 5], 0),
        ([2, 32, 12, 12], [64, 32, 3, 3], 0),
        ([2, 3, 9, 11], [7, 3, 2, 3], 1),
        ([5, 2, 5, 5], [13, 2, 1, 1], 0),
    ] {
        let Case {
            s,
            lens: (xl, wl, yl),
            inputs: (x, w, b, dy),
            want: (y_want, dx_want, dw_want, db_want),
        } = case(input, weight, pad);
        let f = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        let (xf, wf, bf, dyf) = (f(&x), f(&w), f(&b), f(&dy));
        let close32 = |what: &str, got: &[f32], want: &[f64]| {
            assert_eq!(got.len(), want.len(), "{what}");
            for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (g as f64 - w).abs() <= 1e-4 * w.abs().max(1.0),
                    "{what}[{i}] of {input:?} {weight:?}: {g} vs {w}"
                );
            }
        };
        let mut ws = Conv2dWorkspace::new();
        let mut y = vec![f32::NAN; yl];
        conv2d_forward(&s, &xf, &wf, Some(&bf), &mut y, &mut ws);
        close32("y", &y, &y_want);
        let (mut dx, mut dw, mut db) = (vec![0.0; xl], vec![0.0; wl], vec![0.0; weight[0]]);
        conv2d_backward(
            &s,
            &wf,
            &dyf,
            &mut ws,
            Some(&mut dx),
            &mut dw,
            Some(&mut db),
        );
        close32("dx", &dx, &dx_want);
        close32("dw", &dw, &dw_want);
        close32("db", &db, &db_want);
        let mut pw = vec![f32::NAN; input[0] * wl];
        conv2d_weight_grad_per_example(&s, &dyf, &ws, &mut pw, None);
        let summed: Vec<f32> = (0..wl)
            .map(|i| (0..input[0]).map(|e| pw[e * wl + i]).sum())
            .collect();
        close32("per-example dw summed", &summed, &dw_want);
    }
}

/// The unpadded path (2x2 and 3x3 windows known at compile time, others not) keeps the
/// rule of the padded one: the first maximum wins ties, a later NaN replaces anything.
#[test]
fn max_pool2d_unpadded_ties_and_nan() {
    let nan = f64::NAN;
    for k in [2, 3, 4] {
        let s = Pool2dShape::new([1, 1, k, k], [k, k], [k, k], [0, 0]).unwrap();
        let (mut y, mut at) = ([0.0], [usize::MAX]);
        // All equal: the first.
        max_pool2d_forward(&s, &vec![0.5; k * k], &mut y, &mut at);
        assert_eq!((y[0], at[0]), (0.5, 0));
        // A NaN at the first position, then larger values: the NaN stays.
        let mut x: Vec<f64> = (0..k * k).map(|i| i as f64).collect();
        x[0] = nan;
        max_pool2d_forward(&s, &x, &mut y, &mut at);
        assert!(y[0].is_nan() && at[0] == 0, "k {k}");
        // Two NaNs: the later one.
        x[k * k - 2] = nan;
        max_pool2d_forward(&s, &x, &mut y, &mut at);
        assert!(y[0].is_nan() && at[0] == k * k - 2, "k {k}");
        // -inf everywhere: the first position, value -inf.
        max_pool2d_forward(&s, &vec![f64::NEG_INFINITY; k * k], &mut y, &mut at);
        assert_eq!((y[0], at[0]), (f64::NEG_INFINITY, 0));
    }
    // A 2x2 stride-2 pool over a 4x6 plane with strides in both directions.
    let s = Pool2dShape::new([1, 1, 4, 6], [2, 2], [2, 2], [0, 0]).unwrap();
    #[rustfmt::skip]
    let x = [
        1.0, 3.0,   2.0, 2.0,   nan, 0.0,
        3.0, 0.0,   1.0, 2.0,   5.0, nan,
        0.0, 0.0,  -1.0, -2.0,  7.0, 7.0,
        0.0, 0.0,  -3.0, -0.5,  7.0, 8.0,
    ];
    let (mut y, mut at) = ([0.0; 6], [0; 6]);
    max_pool2d_forward(&s, &x, &mut y, &mut at);
    assert_eq!(at, [1, 2, 11, 12, 21, 23]);
    assert_eq!(y[..2], [3.0, 2.0]);
    assert!(y[2].is_nan());
    assert_eq!(y[3..], [0.0, -0.5, 8.0]);
}

/// The unfold by its definition, cols[r ld + oy OW + ox] = x[c, oy sh + i - ph, ox sw + j - pw]
/// (0 in the padding), and the fold as its exact transpose (a scatter-add of the same map),
/// against `im2col` / `col2im` (whose stride-1 path is separate from the general one) for
/// strides 1 and 2, padding up to and beyond the kernel, and a leading dimension past P.
#[test]
fn im2col_and_col2im_match_their_definition() {
    let mut cases = 0;
    for (c_in, h, w, kh, kw) in [
        (1, 28, 28, 5, 5),
        (6, 14, 14, 5, 5),
        (2, 5, 7, 3, 2),
        (3, 4, 3, 1, 3),
    ] {
        for (sh, sw) in [(1, 1), (2, 2), (1, 2), (2, 1)] {
            for (ph, pw) in [(0, 0), (2, 2), (1, 0), (0, 3), (6, 5)] {
                let Ok(s) =
                    Conv2dShape::new([1, c_in, h, w], [1, c_in, kh, kw], [sh, sw], [ph, pw])
                else {
                    continue;
                };
                let [_, _, oh, ow] = s.output_dims();
                let (k, p, ld) = (s.col_rows(), s.col_cols(), s.col_cols() + 3);
                let x = values(c_in * h * w, cases);
                let mut cols = vec![f64::NAN; (k - 1) * ld + p];
                im2col(&s, &x, &mut cols, ld);
                let dcols = values(cols.len(), cases + 1);
                let mut dx = vec![0.5; x.len()];
                col2im(&s, &dcols, ld, &mut dx);
                let mut dx_want = vec![0.5; x.len()];
                for c in 0..c_in {
                    for i in 0..kh {
                        for j in 0..kw {
                            let r = (c * kh + i) * kw + j;
                            for oy in 0..oh {
                                for ox in 0..ow {
                                    let at = r * ld + oy * ow + ox;
                                    let (y, xx) = (oy * sh + i, ox * sw + j);
                                    if y < ph || xx < pw || y - ph >= h || xx - pw >= w {
                                        assert_eq!(cols[at], 0.0, "{s:?} r {r} ({oy}, {ox})");
                                        continue;
                                    }
                                    let xi = (c * h + y - ph) * w + xx - pw;
                                    assert_eq!(cols[at], x[xi], "{s:?} r {r} ({oy}, {ox})");
                                    dx_want[xi] += dcols[at];
                                }
                            }
                            if r + 1 < k {
                                // The gap past P in each row is left alone.
                                assert!(cols[r * ld + p..(r + 1) * ld].iter().all(|v| v.is_nan()));
                            }
                        }
                    }
                }
                // Each input collects its entries in the same order (kernel taps, then
                // output pixels, ascending), so the fold is exact, not only close.
                assert_eq!(dx, dx_want, "{s:?}");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 80);
}

/// `MaxPool2d(2)` (2x2 windows at stride 2, its own path) against a plain scan with the
/// rule of the general path, on ReLU-like planes full of ties at 0, with odd sizes (the last
/// row and column in no window) and a NaN.
#[test]
fn max_pool2d_2x2_stride_2_matches_a_scan() {
    for (n, c, h, w) in [(3, 6, 28, 28), (2, 16, 10, 10), (2, 3, 7, 9), (1, 1, 2, 2)] {
        let mut x: Vec<f64> = values(n * c * h * w, h)
            .iter()
            .map(|v| v.max(0.0))
            .collect();
        x[1] = f64::NAN; // in the first window, after its first value
        let s = Pool2dShape::new([n, c, h, w], [2, 2], [2, 2], [0, 0]).unwrap();
        let [_, _, oh, ow] = s.output_dims();
        let (mut y, mut at) = (
            vec![0.0; n * c * oh * ow],
            vec![usize::MAX; n * c * oh * ow],
        );
        max_pool2d_forward(&s, &x, &mut y, &mut at);
        for plane in 0..n * c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (mut best, mut best_at) = (f64::NEG_INFINITY, 0);
                    for (r, col) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let i = (2 * oy + r) * w + 2 * ox + col;
                        let v = x[plane * h * w + i];
                        if (r, col) == (0, 0) || v > best || v.is_nan() {
                            (best, best_at) = (v, i);
                        }
                    }
                    let o = (plane * oh + oy) * ow + ox;
                    assert_eq!(at[o], best_at, "plane {plane} ({oy}, {ox})");
                    assert!(y[o] == best || (y[o].is_nan() && best.is_nan()));
                }
            }
        }
        assert!(y[0].is_nan() && at[0] == 1);
    }
}
