//! CPU time (not wall time: the machine is shared) of the convolution kernels and of one
//! LeNet-5 / convnet training step, for profiling on a loaded machine.
//!
//! ```text
//! cargo run --release --example conv_profile
//! ```

use backprop::linalg::{matmul, MatRef};
use backprop::network::Cost;
use backprop::nn::{preset, Arch, Sequential};
use backprop::tensor::kernels::{
    conv2d_backward, conv2d_forward, im2col, max_pool2d_forward, Conv2dShape, Conv2dWorkspace,
    Pool2dShape,
};
use std::hint::black_box;

/// Seconds this process's threads have run on a CPU (first field of each schedstat, ns).
fn cpu_seconds() -> f64 {
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path().join("schedstat");
        if let Ok(s) = std::fs::read_to_string(path) {
            total += s.split_whitespace().next().unwrap().parse::<f64>().unwrap() * 1e-9;
        }
    }
    total
}

/// CPU seconds per call of `f`, over at least 0.3 CPU seconds.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let t0 = cpu_seconds();
    let mut n = 0;
    loop {
        f();
        n += 1;
        let t = cpu_seconds() - t0;
        if t > 0.3 {
            return t / n as f64;
        }
    }
}

fn data(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + salt * 104_729) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

/// A layer's name, input and weight dims, and padding (stride 1).
type Layer = (&'static str, [usize; 4], [usize; 4], [usize; 2]);

fn main() {
    let layers: [Layer; 4] = [
        ("lenet5-c1", [64, 1, 28, 28], [6, 1, 5, 5], [2, 2]),
        ("lenet5-c3", [64, 6, 14, 14], [16, 6, 5, 5], [0, 0]),
        ("mnist-conv1", [64, 1, 28, 28], [32, 1, 3, 3], [0, 0]),
        ("mnist-conv2", [64, 32, 26, 26], [64, 32, 3, 3], [0, 0]),
    ];
    for (name, input, weight, pad) in layers {
        let s = Conv2dShape::new(input, weight, [1, 1], pad).unwrap();
        let xl: usize = input.iter().product();
        let wl: usize = weight.iter().product();
        let yl: usize = s.output_dims().iter().product();
        let (x, w, b, dy) = (data(xl, 1), data(wl, 2), data(weight[0], 3), data(yl, 4));
        let (mut y, mut dx, mut dw, mut db) = (
            vec![0.0; yl],
            vec![0.0; xl],
            vec![0.0; wl],
            vec![0.0; weight[0]],
        );
        let mut ws = Conv2dWorkspace::new();
        let gflop = 2.0 * s.multiply_adds() as f64 / 1e9;
        let fwd = time(|| conv2d_forward(&s, &x, &w, Some(&b), &mut y, &mut ws));
        let bwd =
            time(|| conv2d_backward(&s, &w, &dy, &mut ws, Some(&mut dx), &mut dw, Some(&mut db)));
        let bwd1 = time(|| conv2d_backward(&s, &w, &dy, &mut ws, None, &mut dw, Some(&mut db)));
        // The forward's product alone through the gemm crate, one example at a time.
        let (k, p) = (s.col_rows(), s.col_cols());
        let cols = data(k * p, 5);
        let mut out = vec![0.0f32; weight[0] * p];
        let gemm = time(|| {
            for _ in 0..input[0] {
                let wm = MatRef::row_major(&w, weight[0], k).unwrap();
                let cm = MatRef::row_major(&cols, k, p).unwrap();
                matmul(&mut out, wm, cm, 1.0, false);
            }
        });
        let mut cols_all = vec![0.0f32; k * p];
        let unfold = time(|| {
            for e in 0..input[0] {
                let per = xl / input[0];
                im2col(&s, &x[e * per..(e + 1) * per], &mut cols_all, p);
            }
        });
        // The backward's products through the gemm crate: dW += dY cols^T, dcols = W^T dY.
        let mut dcols = vec![0.0f32; k * p];
        let co = weight[0];
        let gemm_bwd = time(|| {
            for e in 0..input[0] {
                let dym = MatRef::row_major(&dy[e * co * p..(e + 1) * co * p], co, p).unwrap();
                let cm = MatRef::row_major(&cols, k, p).unwrap();
                let wm = MatRef::row_major(&w, co, k).unwrap();
                matmul(&mut dw, dym, cm.t(), 1.0, true);
                matmul(&mut dcols, wm.t(), dym, 1.0, false);
            }
        });
        let gemm_dw = time(|| {
            for e in 0..input[0] {
                let dym = MatRef::row_major(&dy[e * co * p..(e + 1) * co * p], co, p).unwrap();
                let cm = MatRef::row_major(&cols, k, p).unwrap();
                matmul(&mut dw, dym, cm.t(), 1.0, true);
            }
        });
        println!(
            "{name:12} im2col {:.3} ms  gemm-crate dW+dcols {:.3} ms, dW alone {:.3} ms",
            unfold * 1e3,
            gemm_bwd * 1e3,
            gemm_dw * 1e3
        );
        println!(
            "{name:12} fwd {:7.3} ms ({:5.1} GFLOP/s)  bwd {:7.3} ms ({:5.1})  bwd-no-dx {:7.3} ms ({:5.1})  gemm-crate fwd product {:7.3} ms ({:5.1})",
            fwd * 1e3, gflop / fwd, bwd * 1e3, 2.0 * gflop / bwd, bwd1 * 1e3, gflop / bwd1, gemm * 1e3, gflop / gemm
        );
    }
    let s = Pool2dShape::new([64, 6, 28, 28], [2, 2], [2, 2], [0, 0]).unwrap();
    let x = data(64 * 6 * 28 * 28, 7);
    let (mut y, mut at) = (vec![0.0; 64 * 6 * 14 * 14], vec![0; 64 * 6 * 14 * 14]);
    let t = time(|| max_pool2d_forward(&s, &x, &mut y, &mut at));
    println!("maxpool 64x6x28x28: {:.3} ms", t * 1e3);
    for name in ["lenet5", "convnet"] {
        let arch: Arch = preset(name, 10).unwrap().parse().unwrap();
        let mut net = Sequential::<f32>::new(&arch, &[1, 28, 28], 1).unwrap();
        let x = data(64 * 784, 8)
            .iter()
            .map(|v| v.abs())
            .collect::<Vec<_>>();
        let labels: Vec<f32> = (0..64).map(|i| (i % 10) as f32).collect();
        let step = time(|| {
            black_box(
                net.loss_and_grad(&x, &labels, 64, Cost::LogLikelihood)
                    .unwrap(),
            );
        });
        let fwd = time(|| {
            black_box(net.forward(&x, 64, false).unwrap());
        });
        println!(
            "{name}: loss_and_grad {:.2} ms ({:.0} samples per CPU second), forward {:.2} ms",
            step * 1e3,
            64.0 / step,
            fwd * 1e3
        );
    }
}
