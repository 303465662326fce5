//! f32 convolutions of LeNet-5 (1->6 channels, 5x5, pad 2 on 28x28; 6->16, 5x5 on 14x14)
//! and of PyTorch's examples/mnist (1->32, 3x3 on 28x28; 32->64, 3x3 on 26x26), batch 64.
//!
//! Throughput is counted in floating-point operations (2 per multiply-add: N C_out K P for
//! the forward product, as much again for each backward product), so criterion's
//! `Gelem/s` reads as GFLOP/s. Groups:
//!
//! - `conv/<layer>`: `fwd`, `bwd` (input, weight and bias gradients), `bwd-no-dx` (a first
//!   layer's backward: no input gradient), and `fwd+bwd`.
//! - `conv-fwd-layout/<layer>`: the forward as one GEMM per example (what the kernel does)
//!   against one GEMM per batch (unfold all examples side by side into `K x (N P)`, one
//!   product, then permute `C_out x (N P)` into NCHW).
//!
//! ```text
//! cargo bench --bench kernels -- --warm-up-time 1 --measurement-time 3
//! ```

use backprop::linalg::{matmul, MatRef};
use backprop::tensor::kernels::{
    conv2d_backward, conv2d_forward, im2col, Conv2dShape, Conv2dWorkspace,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const BATCH: usize = 64;

/// A layer's name, input and weight dims, and padding (stride 1).
type Layer = (&'static str, [usize; 4], [usize; 4], [usize; 2]);

const LAYERS: [Layer; 4] = [
    ("lenet5-c1", [BATCH, 1, 28, 28], [6, 1, 5, 5], [2, 2]),
    ("lenet5-c3", [BATCH, 6, 14, 14], [16, 6, 5, 5], [0, 0]),
    ("mnist-conv1", [BATCH, 1, 28, 28], [32, 1, 3, 3], [0, 0]),
    ("mnist-conv2", [BATCH, 32, 26, 26], [64, 32, 3, 3], [0, 0]),
];

fn data(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + salt * 104_729) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

struct Bufs {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    y: Vec<f32>,
    dy: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
}

impl Bufs {
    fn new(s: &Conv2dShape) -> Self {
        let (xl, wl, yl) = (
            s.input_dims().iter().product(),
            s.weight_dims().iter().product(),
            s.output_dims().iter().product(),
        );
        let c_out = s.weight_dims()[0];
        Bufs {
            x: data(xl, 1),
            w: data(wl, 2),
            b: data(c_out, 3),
            y: vec![0.0; yl],
            dy: data(yl, 4),
            dx: vec![0.0; xl],
            dw: vec![0.0; wl],
            db: vec![0.0; c_out],
        }
    }
}

/// The forward as one product per batch: cols `K x (N P)`, `Z = W cols` (`C_out x (N P)`),
/// then NCHW. `cols` and `z` are the caller's.
fn forward_one_gemm(s: &Conv2dShape, b: &mut Bufs, cols: &mut [f32], z: &mut [f32]) {
    let ([n, c_in, h, w], [c_out, ..]) = (s.input_dims(), s.weight_dims());
    let (k, p) = (s.col_rows(), s.col_cols());
    for e in 0..n {
        let x = &b.x[e * c_in * h * w..(e + 1) * c_in * h * w];
        im2col(s, x, &mut cols[e * p..], n * p);
    }
    let wm = MatRef::row_major(&b.w, c_out, k).unwrap();
    matmul(
        z,
        wm,
        MatRef::row_major(cols, k, n * p).unwrap(),
        1.0,
        false,
    );
    for o in 0..c_out {
        for e in 0..n {
            let src = &z[o * n * p + e * p..o * n * p + (e + 1) * p];
            let dst = &mut b.y[(e * c_out + o) * p..(e * c_out + o + 1) * p];
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = v + b.b[o];
            }
        }
    }
}

fn bench_conv(c: &mut Criterion) {
    for (name, input, weight, pad) in LAYERS {
        let s = Conv2dShape::new(input, weight, [1, 1], pad).unwrap();
        let flops = 2 * s.multiply_adds() as u64;
        let mut b = Bufs::new(&s);
        let mut ws = Conv2dWorkspace::new();

        // A timed wrong answer is worthless: the two forwards must agree first.
        conv2d_forward(&s, &b.x, &b.w, Some(&b.b), &mut b.y, &mut ws);
        let want = b.y.clone();
        let mut cols = vec![0.0f32; s.input_dims()[0] * s.col_rows() * s.col_cols()];
        let mut z = vec![0.0f32; b.y.len()];
        forward_one_gemm(&s, &mut b, &mut cols, &mut z);
        let err =
            b.y.iter()
                .zip(&want)
                .map(|(a, w)| (a - w).abs())
                .fold(0.0f32, f32::max);
        assert!(err < 1e-4, "{name}: the two forwards differ by {err}");

        let mut group = c.benchmark_group(format!("conv/{name}"));
        group.throughput(Throughput::Elements(flops));
        group.bench_function("fwd", |bch| {
            bch.iter(|| conv2d_forward(&s, black_box(&b.x), &b.w, Some(&b.b), &mut b.y, &mut ws))
        });
        group.throughput(Throughput::Elements(2 * flops));
        group.bench_function("bwd", |bch| {
            bch.iter(|| {
                conv2d_backward(
                    &s,
                    &b.w,
                    black_box(&b.dy),
                    &mut ws,
                    Some(&mut b.dx),
                    &mut b.dw,
                    Some(&mut b.db),
                )
            })
        });
        group.throughput(Throughput::Elements(flops));
        group.bench_function("bwd-no-dx", |bch| {
            bch.iter(|| {
                conv2d_backward(
                    &s,
                    &b.w,
                    black_box(&b.dy),
                    &mut ws,
                    None,
                    &mut b.dw,
                    Some(&mut b.db),
                )
            })
        });
        group.throughput(Throughput::Elements(3 * flops));
        group.bench_function("fwd+bwd", |bch| {
            bch.iter(|| {
                conv2d_forward(&s, black_box(&b.x), &b.w, Some(&b.b), &mut b.y, &mut ws);
                conv2d_backward(
                    &s,
                    &b.w,
                    black_box(&b.dy),
                    &mut ws,
                    Some(&mut b.dx),
                    &mut b.dw,
                    Some(&mut b.db),
                );
            })
        });
        group.finish();

        let mut group = c.benchmark_group(format!("conv-fwd-layout/{name}"));
        group.throughput(Throughput::Elements(flops));
        group.bench_function("gemm-per-example", |bch| {
            bch.iter(|| conv2d_forward(&s, black_box(&b.x), &b.w, Some(&b.b), &mut b.y, &mut ws))
        });
        group.bench_function("gemm-per-batch", |bch| {
            bch.iter(|| forward_one_gemm(&s, black_box(&mut b), &mut cols, &mut z))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    // No plots: this machine has no system fonts for criterion's plotters backend.
    config = Criterion::default().without_plots();
    targets = bench_conv
}
criterion_main!(benches);
