//! The hand-written tensor kernels against direct nested-loop implementations (forward and
//! backward, random shapes with stride, padding, non-square kernels, several channels and
//! examples) and against central finite differences in f64.

use backprop::tensor::kernels::*;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// Central differences of `f` at `x`, entry by entry: (f(x + h e_i) - f(x - h e_i)) / 2h.
fn numeric_grad(x: &[f64], mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    const H: f64 = 1e-6;
    let mut x = x.to_vec();
    (0..x.len())
        .map(|i| {
            let keep = x[i];
            x[i] = keep + H;
            let up = f(&x);
            x[i] = keep - H;
            let down = f(&x);
            x[i] = keep;
            (up - down) / (2.0 * H)
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

// ---------------------------------------------------------------- convolution

#[derive(Clone, Copy, Debug)]
struct Conv {
    input: [usize; 4],
    weight: [usize; 4],
    stride: [usize; 2],
    pad: [usize; 2],
}

impl Conv {
    fn shape(&self) -> Conv2dShape {
        Conv2dShape::new(self.input, self.weight, self.stride, self.pad).unwrap()
    }

    fn out(&self) -> [usize; 4] {
        self.shape().output_dims()
    }

    /// The input pixel that tap (i, j) of output (oy, ox) sees, if not padding.
    fn tap(&self, oy: usize, ox: usize, i: usize, j: usize) -> Option<(usize, usize)> {
        let y = (oy * self.stride[0] + i).checked_sub(self.pad[0])?;
        let x = (ox * self.stride[1] + j).checked_sub(self.pad[1])?;
        (y < self.input[2] && x < self.input[3]).then_some((y, x))
    }

    /// Calls `f(x index, w index, y index)` for every multiply-add of the convolution.
    fn each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let [n, ci, h, w] = self.input;
        let [co, _, kh, kw] = self.weight;
        let [_, _, oh, ow] = self.out();
        for b in 0..n {
            for o in 0..co {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let yi = ((b * co + o) * oh + oy) * ow + ox;
                        for c in 0..ci {
                            for i in 0..kh {
                                for j in 0..kw {
                                    if let Some((y, x)) = self.tap(oy, ox, i, j) {
                                        let xi = ((b * ci + c) * h + y) * w + x;
                                        let wi = ((o * ci + c) * kh + i) * kw + j;
                                        f(xi, wi, yi);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn naive_forward(&self, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let [n, co, oh, ow] = self.out();
        let mut y: Vec<f64> = (0..n * co * oh * ow)
            .map(|i| b[(i / (oh * ow)) % co])
            .collect();
        self.each(|xi, wi, yi| y[yi] += x[xi] * w[wi]);
        y
    }

    /// (dx, dw, db) by direct loops.
    fn naive_backward(&self, x: &[f64], w: &[f64], dy: &[f64]) -> [Vec<f64>; 3] {
        let [_, co, oh, ow] = self.out();
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        let mut db = vec![0.0; co];
        self.each(|xi, wi, yi| {
            dx[xi] += dy[yi] * w[wi];
            dw[wi] += dy[yi] * x[xi];
        });
        for (i, g) in dy.iter().enumerate() {
            db[(i / (oh * ow)) % co] += g;
        }
        [dx, dw, db]
    }

    fn lens(&self) -> (usize, usize, usize) {
        let o = self.out();
        (
            self.input.iter().product(),
            self.weight.iter().product(),
            o.iter().product(),
        )
    }

    fn forward(&self, x: &[f64], w: &[f64], b: &[f64], ws: &mut Conv2dWorkspace<f64>) -> Vec<f64> {
        let mut y = vec![f64::NAN; self.lens().2];
        conv2d_forward(&self.shape(), x, w, Some(b), &mut y, ws);
        y
    }
}

fn conv_strategy() -> impl Strategy<Value = Conv> {
    (
        (1usize..4, 1usize..4, 1usize..9, 1usize..9, 1usize..5),
        (
            1usize..5,
            1usize..5,
            1usize..4,
            1usize..4,
            0usize..3,
            0usize..3,
        ),
    )
        .prop_filter_map(
            "kernel larger than padded input",
            |((n, ci, h, w, co), (kh, kw, sh, sw, ph, pw))| {
                let c = Conv {
                    input: [n, ci, h, w],
                    weight: [co, ci, kh, kw],
                    stride: [sh, sw],
                    pad: [ph, pw],
                };
                Conv2dShape::new(c.input, c.weight, c.stride, c.pad)
                    .ok()
                    .map(|_| c)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Forward, backward and per-example gradients agree with the nested loops.
    #[test]
    fn conv2d_matches_direct_loops(c in conv_strategy(), seed in 0u64..1000) {
        let (xl, wl, yl) = c.lens();
        let co = c.weight[0];
        let (x, w, b, dy) = (random(xl, seed), random(wl, seed + 1), random(co, seed + 2), random(yl, seed + 3));
        let mut ws = Conv2dWorkspace::new();
        let y = c.forward(&x, &w, &b, &mut ws);
        assert_close("y", &y, &c.naive_forward(&x, &w, &b), 1e-12);

        let [dx_want, dw_want, db_want] = c.naive_backward(&x, &w, &dy);
        // The kernels add into the gradients: start from ones and take them off again.
        let (mut dx, mut dw, mut db) = (vec![1.0; xl], vec![1.0; wl], vec![1.0; co]);
        conv2d_backward(&c.shape(), &w, &dy, &mut ws, Some(&mut dx), &mut dw, Some(&mut db));
        let minus_one = |v: Vec<f64>| v.into_iter().map(|g| g - 1.0).collect::<Vec<_>>();
        assert_close("dx", &minus_one(dx), &dx_want, 1e-12);
        assert_close("dw", &minus_one(dw), &dw_want, 1e-12);
        assert_close("db", &minus_one(db), &db_want, 1e-12);

        // Per example: example n's gradient is the batch gradient of the batch {n}.
        let n = c.input[0];
        let (mut dw_per, mut db_per) = (vec![f64::NAN; n * wl], vec![f64::NAN; n * co]);
        conv2d_weight_grad_per_example(&c.shape(), &dy, &ws, &mut dw_per, Some(&mut db_per));
        let one = Conv { input: [1, c.input[1], c.input[2], c.input[3]], ..c };
        let (xl1, _, yl1) = one.lens();
        for e in 0..n {
            let [_, dw1, db1] = one.naive_backward(&x[e * xl1..(e + 1) * xl1], &w, &dy[e * yl1..(e + 1) * yl1]);
            assert_close("dw per example", &dw_per[e * wl..(e + 1) * wl], &dw1, 1e-12);
            assert_close("db per example", &db_per[e * co..(e + 1) * co], &db1, 1e-12);
        }
    }

    /// Unfolding rows of 8 to 40 values (LeNet-5's and examples/mnist's widths, whose copies
    /// and padding go by moves of 8 values), with padding of up to 11 a side, into a buffer
    /// full of NaN, gives each tap's shifted, zero-padded input row.
    #[test]
    fn im2col_wide_rows_are_shifted_input_rows(
        (h, w, kh, kw, ph, pw) in (1usize..4, 4usize..41, 1usize..4, 1usize..6, 0usize..3, 0usize..12),
        seed in 0u64..1000,
    ) {
        let Ok(s) = Conv2dShape::new([1, 1, h, w], [1, 1, kh, kw], [1, 1], [ph, pw]) else {
            return Ok(());
        };
        let x = random(h * w, seed);
        let (oh, ow) = (h + 2 * ph + 1 - kh, w + 2 * pw + 1 - kw);
        let mut cols = vec![f64::NAN; kh * kw * oh * ow];
        im2col(&s, &x, &mut cols, oh * ow);
        for (r, row) in cols.chunks_exact(oh * ow).enumerate() {
            let (i, j) = (r / kw, r % kw);
            for (p, &v) in row.iter().enumerate() {
                let (y, xx) = ((p / ow + i) as isize - ph as isize, (p % ow + j) as isize - pw as isize);
                let inside = (0..h as isize).contains(&y) && (0..w as isize).contains(&xx);
                let want = if inside { x[y as usize * w + xx as usize] } else { 0.0 };
                prop_assert_eq!(v, want, "tap ({}, {}) output {}", i, j, p);
            }
        }
    }

    /// fold is the adjoint of unfold: <unfold(x), c> = <x, fold(c)>.
    #[test]
    fn col2im_is_the_adjoint_of_im2col(c in conv_strategy(), seed in 0u64..1000) {
        let s = c.shape();
        let one = Conv { input: [1, c.input[1], c.input[2], c.input[3]], ..c };
        let xl = one.lens().0;
        let kp = s.col_rows() * s.col_cols();
        let (x, cv) = (random(xl, seed), random(kp, seed + 1));
        let mut cols = vec![f64::NAN; kp];
        im2col(&s, &x, &mut cols, s.col_cols());
        let mut folded = vec![0.0; xl];
        col2im(&s, &cv, s.col_cols(), &mut folded);
        let (lhs, rhs) = (dot(&cols, &cv), dot(&x, &folded));
        prop_assert!((lhs - rhs).abs() < 1e-12 * lhs.abs().max(1.0), "{} vs {}", lhs, rhs);
    }
}

/// Backward against central differences of J = sum(y . r): dJ/dy = r.
#[test]
fn conv2d_backward_matches_finite_differences() {
    let configs = [
        Conv {
            input: [2, 3, 7, 6],
            weight: [4, 3, 3, 2],
            stride: [2, 1],
            pad: [1, 2],
        },
        Conv {
            input: [3, 2, 5, 5],
            weight: [2, 2, 3, 3],
            stride: [1, 1],
            pad: [0, 0],
        },
        Conv {
            input: [1, 1, 6, 8],
            weight: [3, 1, 5, 3],
            stride: [3, 2],
            pad: [2, 1],
        },
    ];
    for (k, c) in configs.iter().enumerate() {
        let (xl, wl, yl) = c.lens();
        let co = c.weight[0];
        let seed = 10 * k as u64;
        let (x, w, b, r) = (
            random(xl, seed),
            random(wl, seed + 1),
            random(co, seed + 2),
            random(yl, seed + 3),
        );
        let mut ws = Conv2dWorkspace::new();
        let _ = c.forward(&x, &w, &b, &mut ws);
        let (mut dx, mut dw, mut db) = (vec![0.0; xl], vec![0.0; wl], vec![0.0; co]);
        conv2d_backward(
            &c.shape(),
            &w,
            &r,
            &mut ws,
            Some(&mut dx),
            &mut dw,
            Some(&mut db),
        );
        let mut ws2 = Conv2dWorkspace::new();
        let fx = numeric_grad(&x, |x| dot(&c.forward(x, &w, &b, &mut ws2), &r));
        let fw = numeric_grad(&w, |w| dot(&c.forward(&x, w, &b, &mut ws2), &r));
        let fb = numeric_grad(&b, |b| dot(&c.forward(&x, &w, b, &mut ws2), &r));
        assert_close("dx", &dx, &fx, 1e-8);
        assert_close("dw", &dw, &fw, 1e-8);
        assert_close("db", &db, &fb, 1e-8);
    }
}

/// The batch is split into one run per thread; every split gives the same gradients, and
/// skipping the input gradient changes nothing else.
#[test]
fn conv2d_backward_is_the_same_on_any_number_of_threads() {
    let c = Conv {
        input: [7, 3, 9, 8],
        weight: [5, 3, 3, 3],
        stride: [1, 2],
        pad: [1, 1],
    };
    let (xl, wl, yl) = c.lens();
    let (x, w, b, dy) = (random(xl, 1), random(wl, 2), random(5, 3), random(yl, 4));
    let [dx_want, dw_want, db_want] = c.naive_backward(&x, &w, &dy);
    for threads in [1, 2, 3, 4, 7, 9] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut ws = Conv2dWorkspace::new();
            let y = c.forward(&x, &w, &b, &mut ws);
            assert_close("y", &y, &c.naive_forward(&x, &w, &b), 1e-12);
            let (mut dx, mut dw, mut db) = (vec![0.0; xl], vec![0.0; wl], vec![0.0; 5]);
            conv2d_backward(
                &c.shape(),
                &w,
                &dy,
                &mut ws,
                Some(&mut dx),
                &mut dw,
                Some(&mut db),
            );
            assert_close("dx", &dx, &dx_want, 1e-12);
            assert_close("dw", &dw, &dw_want, 1e-12);
            assert_close("db", &db, &db_want, 1e-12);
            let mut dw2 = vec![0.0; wl];
            conv2d_backward(&c.shape(), &w, &dy, &mut ws, None, &mut dw2, None);
            assert_close("dw without dx", &dw2, &dw_want, 1e-12);
        });
    }
}

/// A workspace grown by a large forward serves a smaller one (and back), reading only
/// the current shape's part of its buffers.
#[test]
fn conv2d_workspace_is_reused_across_shapes() {
    let big = Conv {
        input: [4, 3, 10, 10],
        weight: [4, 3, 3, 3],
        stride: [1, 1],
        pad: [1, 1],
    };
    let small = Conv {
        input: [2, 2, 5, 4],
        weight: [3, 2, 2, 3],
        stride: [2, 1],
        pad: [0, 1],
    };
    let mut ws = Conv2dWorkspace::new();
    for c in [big, small, big, small] {
        let (xl, wl, yl) = c.lens();
        let co = c.weight[0];
        let (x, w, b, dy) = (random(xl, 5), random(wl, 6), random(co, 7), random(yl, 8));
        let y = c.forward(&x, &w, &b, &mut ws);
        assert_close("y", &y, &c.naive_forward(&x, &w, &b), 1e-12);
        assert_eq!(
            ws.cols().len(),
            c.input[0] * c.shape().col_rows() * c.shape().col_cols()
        );
        let (mut dx, mut dw, mut db) = (vec![0.0; xl], vec![0.0; wl], vec![0.0; co]);
        conv2d_backward(
            &c.shape(),
            &w,
            &dy,
            &mut ws,
            Some(&mut dx),
            &mut dw,
            Some(&mut db),
        );
        let [dx_want, dw_want, _] = c.naive_backward(&x, &w, &dy);
        assert_close("dx", &dx, &dx_want, 1e-12);
        assert_close("dw", &dw, &dw_want, 1e-12);
    }
}

#[test]
#[should_panic(expected = "another forward's shape")]
fn conv2d_backward_refuses_a_workspace_of_another_shape() {
    let a = Conv {
        input: [1, 1, 4, 4],
        weight: [1, 1, 3, 3],
        stride: [1, 1],
        pad: [0, 0],
    };
    let b = Conv {
        input: [1, 1, 5, 5],
        weight: [1, 1, 3, 3],
        stride: [1, 1],
        pad: [1, 1],
    };
    let mut ws = Conv2dWorkspace::new();
    let _ = a.forward(&[0.0; 16], &[0.0; 9], &[0.0], &mut ws);
    conv2d_backward(
        &b.shape(),
        &[0.0; 9],
        &[0.0; 25],
        &mut ws,
        None,
        &mut [0.0; 9],
        None,
    );
}

#[test]
fn conv2d_f32_agrees_with_f64() {
    let c = Conv {
        input: [3, 2, 8, 7],
        weight: [4, 2, 3, 3],
        stride: [1, 2],
        pad: [1, 0],
    };
    let (xl, wl, yl) = c.lens();
    let (x, w, b) = (random(xl, 11), random(wl, 12), random(4, 13));
    let y64 = c.forward(&x, &w, &b, &mut Conv2dWorkspace::new());
    let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<_>>();
    let mut y32 = vec![0.0f32; yl];
    conv2d_forward(
        &c.shape(),
        &f32s(&x),
        &f32s(&w),
        Some(&f32s(&b)),
        &mut y32,
        &mut Conv2dWorkspace::new(),
    );
    let y32: Vec<f64> = y32.iter().map(|&a| a as f64).collect();
    assert_close("y f32", &y32, &y64, 1e-5);
}

#[test]
fn conv2d_shape_errors_name_the_problem() {
    let e = Conv2dShape::new([1, 1, 3, 3], [1, 1, 5, 5], [1, 1], [0, 0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "conv2d: height: kernel 5 larger than the padded input 3"
    );
    let e = Conv2dShape::new([1, 1, 3, 3], [1, 1, 1, 1], [0, 1], [0, 0]).unwrap_err();
    assert!(e.to_string().contains("stride 0"), "{e}");
    let e = Conv2dShape::new([1, 2, 3, 3], [1, 3, 1, 1], [1, 1], [0, 0]).unwrap_err();
    assert!(e.to_string().contains("3 input channels"), "{e}");
    let huge = usize::MAX / 2;
    assert!(Conv2dShape::new([huge, 4, 1, 1], [1, 4, 1, 1], [1, 1], [0, 0]).is_err());
    assert!(Conv2dShape::new([1, 1, 1, 1], [1, 1, 1, 1], [1, 1], [usize::MAX, 0]).is_err());
    assert!(Conv2dShape::new([0, 1, 1, 1], [1, 1, 1, 1], [1, 1], [0, 0]).is_err());
}

// ---------------------------------------------------------------- pooling

#[derive(Clone, Copy, Debug)]
struct Pool {
    input: [usize; 4],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
}

impl Pool {
    fn shape(&self) -> Pool2dShape {
        Pool2dShape::new(self.input, self.k, self.s, self.p).unwrap()
    }

    fn lens(&self) -> (usize, usize) {
        (
            self.input.iter().product(),
            self.shape().output_dims().iter().product(),
        )
    }

    /// For each output (in order): its plane offset and the in-plane indices of its
    /// window's inputs, row-major, padding left out.
    fn windows(&self) -> Vec<(usize, Vec<usize>)> {
        let [n, c, h, w] = self.input;
        let [_, _, oh, ow] = self.shape().output_dims();
        let mut out = Vec::new();
        for plane in 0..n * c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut idx = Vec::new();
                    for i in 0..self.k[0] {
                        for j in 0..self.k[1] {
                            let y = (oy * self.s[0] + i).checked_sub(self.p[0]);
                            let x = (ox * self.s[1] + j).checked_sub(self.p[1]);
                            if let (Some(y), Some(x)) = (y, x) {
                                if y < h && x < w {
                                    idx.push(y * w + x);
                                }
                            }
                        }
                    }
                    out.push((plane * h * w, idx));
                }
            }
        }
        out
    }

    fn max(&self, x: &[f64]) -> (Vec<f64>, Vec<usize>) {
        let (_, yl) = self.lens();
        let (mut y, mut arg) = (vec![f64::NAN; yl], vec![usize::MAX; yl]);
        max_pool2d_forward(&self.shape(), x, &mut y, &mut arg);
        (y, arg)
    }

    fn avg(&self, x: &[f64]) -> Vec<f64> {
        let mut y = vec![f64::NAN; self.lens().1];
        avg_pool2d_forward(&self.shape(), x, &mut y);
        y
    }
}

fn pool_strategy() -> impl Strategy<Value = Pool> {
    (
        1usize..3,
        1usize..4,
        1usize..9,
        1usize..9,
        1usize..5,
        1usize..5,
        1usize..4,
        1usize..4,
        0usize..3,
        0usize..3,
    )
        .prop_filter_map(
            "window larger than input",
            |(n, c, h, w, kh, kw, sh, sw, ph, pw)| {
                let p = Pool {
                    input: [n, c, h, w],
                    k: [kh, kw],
                    s: [sh, sw],
                    p: [ph, pw],
                };
                Pool2dShape::new(p.input, p.k, p.s, p.p).ok().map(|_| p)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// On inputs drawn from {0, 0, 0, 1, 2} (ties everywhere, as in MNIST's background) each
    /// output is its window's maximum, found at the FIRST position holding it; the backward
    /// sends each output's whole gradient there and nowhere else.
    #[test]
    fn max_pool2d_picks_the_first_maximum(p in pool_strategy(), seed in 0u64..1000) {
        let (xl, yl) = p.lens();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x: Vec<f64> = (0..xl).map(|_| [0.0, 0.0, 0.0, 1.0, 2.0][rng.gen_range(0..5)]).collect();
        let (y, arg) = p.max(&x);
        let dy = random(yl, seed + 1);
        let mut dx_want = vec![0.0; xl];
        for (o, (base, idx)) in p.windows().into_iter().enumerate() {
            let m = idx.iter().map(|&i| x[base + i]).fold(f64::NEG_INFINITY, f64::max);
            let first = *idx.iter().find(|&&i| x[base + i] == m).unwrap();
            prop_assert_eq!(y[o], m);
            prop_assert_eq!(arg[o], first, "output {}", o);
            dx_want[base + first] += dy[o];
        }
        let mut dx = vec![0.0; xl];
        max_pool2d_backward(&p.shape(), &dy, &arg, &mut dx);
        assert_close("dx", &dx, &dx_want, 1e-15);
    }

    /// Average pooling against the direct sums, forward and backward.
    #[test]
    fn avg_pool2d_matches_direct_loops(p in pool_strategy(), seed in 0u64..1000) {
        let (xl, yl) = p.lens();
        let (x, dy) = (random(xl, seed), random(yl, seed + 1));
        let area = (p.k[0] * p.k[1]) as f64;
        let (mut y_want, mut dx_want) = (vec![0.0; yl], vec![0.0; xl]);
        for (o, (base, idx)) in p.windows().into_iter().enumerate() {
            y_want[o] = idx.iter().map(|&i| x[base + i]).sum::<f64>() / area;
            for i in idx {
                dx_want[base + i] += dy[o] / area;
            }
        }
        assert_close("y", &p.avg(&x), &y_want, 1e-14);
        let mut dx = vec![0.0; xl];
        avg_pool2d_backward(&p.shape(), &dy, &mut dx);
        assert_close("dx", &dx, &dx_want, 1e-14);
    }
}

/// A hand-checked MNIST-like case: 2x2 windows, stride 2, mostly zeros. Windows of zeros
/// give their gradient to their top-left pixel; a window with one positive pixel to it.
#[test]
fn max_pool2d_ties_on_zeros_by_hand() {
    let p = Pool {
        input: [1, 1, 4, 4],
        k: [2, 2],
        s: [2, 2],
        p: [0, 0],
    };
    #[rustfmt::skip]
    let x = [
        0.0, 0.0,   0.0, 0.0,
        0.0, 0.0,   0.0, 0.7,
        0.0, 0.0,   0.3, 0.3,
        0.0, 0.0,   0.0, 0.3,
    ];
    let (y, arg) = p.max(&x);
    assert_eq!(y, [0.0, 0.7, 0.0, 0.3]);
    assert_eq!(arg, [0, 7, 8, 10]); // the 0.3 tie goes to (2, 2), scanned before (2, 3)
    let mut dx = [0.0; 16];
    max_pool2d_backward(&p.shape(), &[1.0, 2.0, 3.0, 4.0], &arg, &mut dx);
    #[rustfmt::skip]
    assert_eq!(dx, [
        1.0, 0.0,   0.0, 0.0,
        0.0, 0.0,   0.0, 2.0,
        3.0, 0.0,   4.0, 0.0,
        0.0, 0.0,   0.0, 0.0,
    ]);
    // Overlapping 3x3 windows, stride 1, on all zeros: each window's gradient goes to its
    // own top-left pixel, never split; the four outputs' gradients land on four pixels.
    let q = Pool {
        input: [1, 1, 4, 4],
        k: [3, 3],
        s: [1, 1],
        p: [0, 0],
    };
    let (_, arg) = q.max(&[0.0; 16]);
    assert_eq!(arg, [0, 1, 4, 5]);
    // With a shared maximum at (1, 1), all four windows send their gradient there, added.
    let mut x = [0.0; 16];
    x[5] = 1.0;
    let (_, arg) = q.max(&x);
    let mut dx = [0.0; 16];
    max_pool2d_backward(&q.shape(), &[1.0, 2.0, 3.0, 4.0], &arg, &mut dx);
    assert_eq!(dx[5], 10.0);
    assert_eq!(dx.iter().sum::<f64>(), 10.0);
}

/// Padding never wins, even when every real input is negative; NaN propagates.
#[test]
fn max_pool2d_padding_and_nan() {
    let p = Pool {
        input: [1, 1, 2, 2],
        k: [2, 2],
        s: [1, 1],
        p: [1, 1],
    };
    let (y, arg) = p.max(&[-4.0, -3.0, -2.0, -1.0]);
    assert_eq!(y, [-4.0, -3.0, -3.0, -2.0, -1.0, -1.0, -2.0, -1.0, -1.0]);
    assert_eq!(arg, [0, 1, 1, 2, 3, 3, 2, 3, 3]);
    let (y, arg) = p.max(&[1.0, f64::NAN, 2.0, 3.0]);
    assert!(y[1].is_nan() && y[4].is_nan());
    assert_eq!(arg[4], 1);
}

/// Pooling backward against central differences (distinct values, so max is differentiable).
#[test]
fn pool2d_backward_matches_finite_differences() {
    for p in [
        Pool {
            input: [2, 3, 6, 7],
            k: [3, 2],
            s: [2, 1],
            p: [1, 0],
        },
        Pool {
            input: [1, 2, 5, 5],
            k: [2, 2],
            s: [2, 2],
            p: [0, 0],
        },
    ] {
        let (xl, yl) = p.lens();
        let (x, r) = (random(xl, 21), random(yl, 22));
        let (_, arg) = p.max(&x);
        let mut dx = vec![0.0; xl];
        max_pool2d_backward(&p.shape(), &r, &arg, &mut dx);
        assert_close(
            "max dx",
            &dx,
            &numeric_grad(&x, |x| dot(&p.max(x).0, &r)),
            1e-8,
        );
        let mut dx = vec![0.0; xl];
        avg_pool2d_backward(&p.shape(), &r, &mut dx);
        assert_close(
            "avg dx",
            &dx,
            &numeric_grad(&x, |x| dot(&p.avg(x), &r)),
            1e-8,
        );
    }
}

#[test]
fn pool2d_shape_errors() {
    assert!(Pool2dShape::new([1, 1, 2, 2], [3, 3], [1, 1], [0, 0]).is_err());
    assert!(Pool2dShape::new([1, 1, 4, 4], [2, 2], [0, 2], [0, 0]).is_err());
    let e = Pool2dShape::new([1, 1, 4, 4], [3, 3], [1, 1], [0, 2]).unwrap_err();
    assert!(e.to_string().contains("at most half the kernel"), "{e}");
    assert!(Pool2dShape::new([usize::MAX, 2, 1, 1], [1, 1], [1, 1], [0, 0]).is_err());
}

// ---------------------------------------------------------------- LSTM and RNN

struct Layer {
    w_ih: Vec<f64>,
    w_hh: Vec<f64>,
    b_ih: Vec<f64>,
    b_hh: Vec<f64>,
}

impl Layer {
    fn random(s: &RecurrentShape, g: usize, seed: u64) -> Self {
        let gh = g * s.hidden();
        Layer {
            w_ih: random(gh * s.input(), seed),
            w_hh: random(gh * s.hidden(), seed + 1),
            b_ih: random(gh, seed + 2),
            b_hh: random(gh, seed + 3),
        }
    }

    fn params(&self) -> Params<'_, f64> {
        Params {
            w_ih: &self.w_ih,
            w_hh: &self.w_hh,
            b_ih: &self.b_ih,
            b_hh: &self.b_hh,
        }
    }

    fn zeros_like(&self) -> Layer {
        let z = |v: &Vec<f64>| vec![0.0; v.len()];
        Layer {
            w_ih: z(&self.w_ih),
            w_hh: z(&self.w_hh),
            b_ih: z(&self.b_ih),
            b_hh: z(&self.b_hh),
        }
    }

    fn grads(&mut self) -> ParamGrads<'_, f64> {
        ParamGrads {
            w_ih: &mut self.w_ih,
            w_hh: &mut self.w_hh,
            b_ih: &mut self.b_ih,
            b_hh: &mut self.b_hh,
        }
    }

    /// The naive pre-activations of example b: x W_ih^T + b_ih + h W_hh^T + b_hh.
    fn pre(&self, g: usize, f: usize, hid: usize, x: &[f64], h: &[f64]) -> Vec<f64> {
        (0..g * hid)
            .map(|r| {
                let wx: f64 = (0..f).map(|k| self.w_ih[r * f + k] * x[k]).sum();
                let wh: f64 = (0..hid).map(|k| self.w_hh[r * hid + k] * h[k]).sum();
                wx + self.b_ih[r] + wh + self.b_hh[r]
            })
            .collect()
    }

    /// One naive LSTM step for one example: (h', c').
    fn naive_lstm(
        &self,
        f: usize,
        hid: usize,
        x: &[f64],
        h: &[f64],
        c: &[f64],
    ) -> (Vec<f64>, Vec<f64>) {
        let z = self.pre(4, f, hid, x, h);
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let mut h2 = vec![0.0; hid];
        let mut c2 = vec![0.0; hid];
        for u in 0..hid {
            let (i, fg, g, o) = (
                sig(z[u]),
                sig(z[hid + u]),
                z[2 * hid + u].tanh(),
                sig(z[3 * hid + u]),
            );
            c2[u] = fg * c[u] + i * g;
            h2[u] = o * c2[u].tanh();
        }
        (h2, c2)
    }

    /// A whole naive sequence (N, T, F) -> (N, T, H), zero initial state.
    fn naive_sequence(&self, lstm: bool, s: &RecurrentShape, x: &[f64]) -> Vec<f64> {
        let (t, f, hid) = (s.steps(), s.input(), s.hidden());
        let mut out = Vec::new();
        for seq in x.chunks(t * f) {
            let (mut h, mut c) = (vec![0.0; hid], vec![0.0; hid]);
            for x_t in seq.chunks(f) {
                if lstm {
                    (h, c) = self.naive_lstm(f, hid, x_t, &h, &c);
                } else {
                    h = self
                        .pre(1, f, hid, x_t, &h)
                        .into_iter()
                        .map(f64::tanh)
                        .collect();
                }
                out.extend_from_slice(&h);
            }
        }
        out
    }
}

fn sequence(
    lstm: bool,
    s: &RecurrentShape,
    layer: &Layer,
    x: &[f64],
    ws: &mut SequenceWorkspace<f64>,
) -> Vec<f64> {
    let mut out = vec![f64::NAN; s.batch() * s.steps() * s.hidden()];
    if lstm {
        lstm_sequence_forward(s, &layer.params(), SequenceInput::Values(x), &mut out, ws);
    } else {
        rnn_sequence_forward(s, &layer.params(), SequenceInput::Values(x), &mut out, ws);
    }
    out
}

/// The sequence forward equals the naive per-example loop, and its backward through time
/// equals central differences of J = sum(out . r) for the inputs and all four parameters.
#[test]
fn recurrent_sequences_match_naive_loops_and_finite_differences() {
    for lstm in [true, false] {
        let g = if lstm { 4 } else { 1 };
        for (n, t, f, hid) in [(2, 3, 4, 3), (3, 5, 2, 4), (1, 1, 3, 2)] {
            let s = RecurrentShape::new(n, t, f, hid).unwrap();
            let layer = Layer::random(&s, g, 31);
            let (x, r) = (random(n * t * f, 41), random(n * t * hid, 42));
            let mut ws = SequenceWorkspace::new();
            let out = sequence(lstm, &s, &layer, &x, &mut ws);
            assert_close("out", &out, &layer.naive_sequence(lstm, &s, &x), 1e-12);

            let mut grads = layer.zeros_like();
            grads.b_hh.fill(1.0); // the kernels add: this 1 must stay under the gradient
            let mut dx = vec![f64::NAN; x.len()];
            if lstm {
                lstm_sequence_backward(
                    &s,
                    &layer.params(),
                    &r,
                    &mut ws,
                    InputGrad::Values(&mut dx),
                    &mut grads.grads(),
                );
            } else {
                rnn_sequence_backward(
                    &s,
                    &layer.params(),
                    &r,
                    &mut ws,
                    InputGrad::Values(&mut dx),
                    &mut grads.grads(),
                );
            }
            let mut ws2 = SequenceWorkspace::new();
            let j = |l: &Layer, x: &[f64], ws: &mut SequenceWorkspace<f64>| {
                dot(&sequence(lstm, &s, l, x, ws), &r)
            };
            let what = if lstm { "lstm" } else { "rnn" };
            assert_close(
                &format!("{what} dx"),
                &dx,
                &numeric_grad(&x, |x| j(&layer, x, &mut ws2)),
                1e-8,
            );
            let num = |pick: fn(&mut Layer) -> &mut Vec<f64>, ws: &mut SequenceWorkspace<f64>| {
                let mut l = Layer {
                    w_ih: layer.w_ih.clone(),
                    w_hh: layer.w_hh.clone(),
                    b_ih: layer.b_ih.clone(),
                    b_hh: layer.b_hh.clone(),
                };
                let v0 = pick(&mut l).clone();
                numeric_grad(&v0, |v| {
                    pick(&mut l).copy_from_slice(v);
                    j(&l, &x, ws)
                })
            };
            assert_close(
                &format!("{what} dW_ih"),
                &grads.w_ih,
                &num(|l| &mut l.w_ih, &mut ws2),
                1e-8,
            );
            assert_close(
                &format!("{what} dW_hh"),
                &grads.w_hh,
                &num(|l| &mut l.w_hh, &mut ws2),
                1e-8,
            );
            assert_close(
                &format!("{what} db_ih"),
                &grads.b_ih,
                &num(|l| &mut l.b_ih, &mut ws2),
                1e-8,
            );
            let db_hh: Vec<f64> = grads.b_hh.iter().map(|v| v - 1.0).collect();
            assert_close(
                &format!("{what} db_hh"),
                &db_hh,
                &num(|l| &mut l.b_hh, &mut ws2),
                1e-8,
            );
        }
    }
}

/// One LSTM step from a nonzero state: forward against the naive step, backward against
/// central differences of J = sum(h' . rh) + sum(c' . rc) in x, h, c.
#[test]
fn lstm_step_matches_naive_step_and_finite_differences() {
    let (n, f, hid) = (3, 4, 5);
    let s = RecurrentShape::new(n, 1, f, hid).unwrap();
    let layer = Layer::random(&s, 4, 51);
    let (x, h0, c0) = (random(n * f, 52), random(n * hid, 53), random(n * hid, 54));
    let (rh, rc) = (random(n * hid, 55), random(n * hid, 56));
    let step = |x: &[f64], h0: &[f64], c0: &[f64]| {
        let (mut gates, mut c, mut h) = (
            vec![0.0; n * 4 * hid],
            vec![0.0; n * hid],
            vec![0.0; n * hid],
        );
        lstm_step_forward(&s, &layer.params(), x, h0, c0, &mut gates, &mut c, &mut h);
        (gates, c, h)
    };
    let (gates, c, h) = step(&x, &h0, &c0);
    for b in 0..n {
        let rows = b * hid..(b + 1) * hid;
        let (hw, cw) = layer.naive_lstm(
            f,
            hid,
            &x[b * f..(b + 1) * f],
            &h0[rows.clone()],
            &c0[rows.clone()],
        );
        assert_close("h", &h[rows.clone()], &hw, 1e-12);
        assert_close("c", &c[rows], &cw, 1e-12);
    }
    let (mut dx, mut dh, mut dc, mut dpre) = (
        vec![0.0; n * f],
        vec![0.0; n * hid],
        vec![0.0; n * hid],
        vec![0.0; n * 4 * hid],
    );
    let mut grads = layer.zeros_like();
    let saved = LstmSaved {
        x: &x,
        h_prev: &h0,
        c_prev: &c0,
        gates: &gates,
        c: &c,
    };
    let out = StepGrads {
        dx: &mut dx,
        dh_prev: &mut dh,
        dc_prev: &mut dc,
        dpre: &mut dpre,
    };
    lstm_step_backward(
        &s,
        &layer.params(),
        &saved,
        &rh,
        &rc,
        out,
        &mut grads.grads(),
    );
    let j = |x: &[f64], h0: &[f64], c0: &[f64]| {
        let (_, c, h) = step(x, h0, c0);
        dot(&h, &rh) + dot(&c, &rc)
    };
    assert_close("dx", &dx, &numeric_grad(&x, |x| j(x, &h0, &c0)), 1e-8);
    assert_close("dh", &dh, &numeric_grad(&h0, |h| j(&x, h, &c0)), 1e-8);
    assert_close("dc", &dc, &numeric_grad(&c0, |c| j(&x, &h0, c)), 1e-8);
    // The parameter gradients are the pre-activation gradients times the inputs.
    let mut dw_hh = vec![0.0; 4 * hid * hid];
    for b in 0..n {
        for r in 0..4 * hid {
            for k in 0..hid {
                dw_hh[r * hid + k] += dpre[b * 4 * hid + r] * h0[b * hid + k];
            }
        }
    }
    assert_close("dW_hh", &grads.w_hh, &dw_hh, 1e-12);
}

/// A workspace reused for another cell or shape works; a backward after a forward of the
/// other cell is refused.
#[test]
#[should_panic(expected = "another forward")]
fn sequence_backward_refuses_another_cells_forward() {
    let s = RecurrentShape::new(1, 2, 1, 1).unwrap();
    let layer = Layer::random(&s, 1, 61);
    let mut ws = SequenceWorkspace::new();
    let _ = sequence(false, &s, &layer, &[0.5, 0.25], &mut ws);
    let mut grads = Layer::random(&s, 4, 0).zeros_like();
    let lstm = Layer::random(&s, 4, 62);
    lstm_sequence_backward(
        &s,
        &lstm.params(),
        &[1.0, 1.0],
        &mut ws,
        InputGrad::Values(&mut [0.0; 2]),
        &mut grads.grads(),
    );
}

#[test]
fn recurrent_workspace_is_reused_across_cells_and_shapes() {
    let mut ws = SequenceWorkspace::new();
    for (lstm, n, t, f, hid) in [
        (true, 3, 4, 2, 3),
        (false, 2, 2, 3, 2),
        (true, 1, 2, 2, 2),
        (false, 4, 3, 1, 5),
    ] {
        let s = RecurrentShape::new(n, t, f, hid).unwrap();
        let layer = Layer::random(&s, if lstm { 4 } else { 1 }, 70);
        let x = random(n * t * f, 71);
        let out = sequence(lstm, &s, &layer, &x, &mut ws);
        assert_close("out", &out, &layer.naive_sequence(lstm, &s, &x), 1e-12);
    }
}

/// Forward and backward of one recurrent layer read from tokens, and the same layer read
/// from the looked-up rows (what an `Embedding` would give) with its dX summed into the
/// rows' tokens (the `Embedding`'s backward): (out, dE, grads).
fn tokens_and_values(
    lstm: bool,
    s: &RecurrentShape,
    layer: &Layer,
    (ids, table, r): (&[f64], &[f64], &[f64]),
) -> [(Vec<f64>, Vec<f64>, Layer); 2] {
    let f = s.input();
    let run = |tokens: bool| {
        let mut ws = SequenceWorkspace::new();
        let mut out = vec![f64::NAN; s.batch() * s.steps() * s.hidden()];
        let x: Vec<f64> = (ids.iter())
            .flat_map(|&id| table[id as usize * f..(id as usize + 1) * f].to_vec())
            .collect();
        let input = if tokens {
            SequenceInput::Tokens { ids, table }
        } else {
            SequenceInput::Values(&x)
        };
        if lstm {
            lstm_sequence_forward(s, &layer.params(), input, &mut out, &mut ws);
        } else {
            rnn_sequence_forward(s, &layer.params(), input, &mut out, &mut ws);
        }
        let mut grads = layer.zeros_like();
        let (mut dtable, mut dx) = (vec![0.5; table.len()], vec![f64::NAN; x.len()]);
        let dinput = if tokens {
            InputGrad::Table(&mut dtable)
        } else {
            InputGrad::Values(&mut dx)
        };
        if lstm {
            lstm_sequence_backward(s, &layer.params(), r, &mut ws, dinput, &mut grads.grads());
        } else {
            rnn_sequence_backward(s, &layer.params(), r, &mut ws, dinput, &mut grads.grads());
        }
        if !tokens {
            for (&id, d) in ids.iter().zip(dx.chunks_exact(f)) {
                let row = &mut dtable[id as usize * f..(id as usize + 1) * f];
                row.iter_mut().zip(d).for_each(|(t, &d)| *t += d);
            }
        }
        (out, dtable, grads)
    };
    [run(true), run(false)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// A layer reading token ids looks up the same inputs and gives the same outputs and
    /// gradients (the table's added to what it held) as the layer reading the rows.
    #[test]
    fn recurrent_tokens_agree_with_their_rows(
        lstm in any::<bool>(),
        (n, t, f, hid, vocab) in (1usize..5, 1usize..5, 1usize..4, 1usize..5, 1usize..6),
        seed in 0u64..1000,
    ) {
        let s = RecurrentShape::new(n, t, f, hid).unwrap();
        let layer = Layer::random(&s, if lstm { 4 } else { 1 }, seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
        let ids: Vec<f64> = (0..n * t).map(|_| rng.gen_range(0..vocab) as f64).collect();
        let (table, r) = (random(vocab * f, seed + 2), random(n * t * hid, seed + 3));
        let [(out, dtable, g), (out_v, dtable_v, g_v)] =
            tokens_and_values(lstm, &s, &layer, (&ids, &table, &r));
        assert_close("out", &out, &out_v, 1e-13);
        assert_close("dE", &dtable, &dtable_v, 1e-12);
        assert_close("dW_ih", &g.w_ih, &g_v.w_ih, 1e-12);
        assert_close("dW_hh", &g.w_hh, &g_v.w_hh, 1e-12);
        assert_close("db_ih", &g.b_ih, &g_v.b_ih, 1e-12);
        assert_close("db_hh", &g.b_hh, &g_v.b_hh, 1e-12);
    }
}

#[test]
#[should_panic(expected = "token 3 of a table of 3 rows")]
fn sequence_refuses_a_token_outside_the_table() {
    let s = RecurrentShape::new(1, 2, 1, 1).unwrap();
    let layer = Layer::random(&s, 1, 71);
    let tokens = SequenceInput::Tokens {
        ids: &[0.0, 3.0],
        table: &[0.1, 0.2, 0.3],
    };
    let mut out = [0.0; 2];
    rnn_sequence_forward(
        &s,
        &layer.params(),
        tokens,
        &mut out,
        &mut SequenceWorkspace::new(),
    );
}

#[test]
#[should_panic(expected = "a table gradient after a forward from values")]
fn sequence_refuses_a_table_gradient_after_values() {
    let s = RecurrentShape::new(1, 2, 1, 1).unwrap();
    let layer = Layer::random(&s, 1, 72);
    let mut ws = SequenceWorkspace::new();
    let _ = sequence(false, &s, &layer, &[0.5, 0.25], &mut ws);
    let mut grads = layer.zeros_like();
    let dtable = InputGrad::Table(&mut [0.0; 2]);
    rnn_sequence_backward(
        &s,
        &layer.params(),
        &[1.0, 1.0],
        &mut ws,
        dtable,
        &mut grads.grads(),
    );
}
