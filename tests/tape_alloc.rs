//! A warm tensor tape allocates nothing per training step beyond what the GEMM crate does:
//! values and gradients come from the tape's pool, shapes are inline, the parameters stay on
//! the tape (`truncate`) and the batch is copied into a pooled buffer.
//!
//! Checked with a counting global allocator (this test binary only) that counts the calling
//! thread's allocations, so the harness's own threads do not disturb the count. The products
//! here are below `linalg::parallelism_for`'s threshold, so GEMM runs on the calling thread
//! and its allocations are counted too: `gemm` allocates packing buffers per call for
//! products large enough to pack (and nothing for small ones). So the MLP's count is compared
//! with the count of the very same products made by `linalg::matmul` alone, and must equal
//! it; a step's own bookkeeping adds nothing.

use backprop::linalg::{matmul, MatRef};
use backprop::tensor::kernels::{conv2d_backward, conv2d_forward, Conv2dShape, Conv2dWorkspace};
use backprop::tensor::{Tape, TensorId};
#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

/// Deterministic values in [-0.5, 0.5).
fn fill(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + seed * 104_729) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

/// An MLP on the tape: sizes, its parameters (W^l of shape (out, in), b^l) put on once.
struct Mlp {
    sizes: Vec<usize>,
    params: Vec<(TensorId, TensorId)>,
}

impl Mlp {
    fn new(tape: &Tape<f32>, sizes: &[usize]) -> Self {
        let params = sizes
            .windows(2)
            .enumerate()
            .map(|(l, io)| {
                let w = tape.var_from_slice([io[1], io[0]], &fill(io[0] * io[1], l));
                let b = tape.var_from_slice([io[1]], &fill(io[1], l + 10));
                (w.unwrap().id(), b.unwrap().id())
            })
            .collect();
        Mlp {
            sizes: sizes.to_vec(),
            params,
        }
    }

    /// One SGD step: truncate to the parameters, z = A Wᵀ + b, relu, softmax + log-likelihood,
    /// backward, w ← w − η dJ/dw in place. Returns J.
    fn step(&self, tape: &mut Tape<f32>, x: &[f32], y: &[f32], n: usize) -> f32 {
        tape.truncate(2 * self.params.len());
        let (inputs, outputs) = (self.sizes[0], *self.sizes.last().unwrap());
        let mut a = tape.constant_from_slice([n, inputs], x).unwrap();
        let y = tape.constant_from_slice([n, outputs], y).unwrap();
        let last = self.params.len() - 1;
        for (l, &(w, b)) in self.params.iter().enumerate() {
            let z = a.matmul_t(tape.handle(w)) + tape.handle(b);
            a = if l == last {
                z.softmax_log_likelihood(y)
            } else {
                z.relu()
            };
        }
        let grads = a.backward();
        for &(w, b) in &self.params {
            for p in [w, b] {
                let mut value = tape.value_mut(p);
                let g = grads[p].as_slice();
                value
                    .as_mut_slice()
                    .iter_mut()
                    .zip(g)
                    .for_each(|(v, g)| *v -= 0.1 * g);
            }
        }
        a.item()
    }
}

#[test]
fn warm_mlp_step_allocates_only_what_gemm_does() {
    // A small net (GEMM packs nothing) and one whose products GEMM packs.
    for (sizes, n) in [(&[20, 16, 10][..], 8), (&[196, 128, 64, 10][..], 64)] {
        let mut tape = Tape::<f32>::new();
        let mlp = Mlp::new(&tape, sizes);
        let (x, mut y) = (fill(n * sizes[0], 1), vec![0.0; n * sizes.last().unwrap()]);
        let k = *sizes.last().unwrap();
        y.chunks_exact_mut(k)
            .enumerate()
            .for_each(|(r, row)| row[r % k] = 1.0);
        let mut costs = Vec::with_capacity(8);
        for _ in 0..3 {
            costs.push(mlp.step(&mut tape, &x, &y, n)); // warm-up: sizes the pool
        }
        let before = allocations();
        for _ in 0..5 {
            costs.push(mlp.step(&mut tape, &x, &y, n));
        }
        let tape_count = allocations() - before;
        // The training runs: J goes down on this one batch.
        assert!(costs[7] < costs[0], "{sizes:?}: J {costs:?}");

        let gemm_count = gemm_allocations(sizes, n, 5);
        eprintln!(
            "{sizes:?} batch {n}: 5 warm steps, {tape_count} allocations; GEMM alone {gemm_count}"
        );
        assert_eq!(
            tape_count, gemm_count,
            "{sizes:?}: the tape made {tape_count} allocations in 5 steps, its GEMM calls {gemm_count}"
        );
        // The counter works: a fresh tape allocates.
        let before = allocations();
        let mut fresh = Tape::<f32>::new();
        Mlp::new(&fresh, sizes).step(&mut fresh, &x, &y, n);
        assert!(allocations() > before);
    }
}

/// The allocations of `steps` steps' worth of the MLP's products, by `linalg::matmul` alone
/// on warm buffers: forward z = A Wᵀ; backward dW = Gᵀ A and, above the first layer,
/// dA = G W.
fn gemm_allocations(sizes: &[usize], n: usize, steps: usize) -> usize {
    let big = sizes.iter().max().unwrap() * sizes.iter().max().unwrap().max(&n);
    let (a, w, mut z, mut dw) = (fill(big, 2), fill(big, 3), vec![0.0; big], vec![0.0; big]);
    let mut count = 0;
    for s in 0..=steps {
        let before = allocations();
        for (l, io) in sizes.windows(2).enumerate() {
            let (i, o) = (io[0], io[1]);
            let am = MatRef::row_major(&a[..n * i], n, i).unwrap();
            let wm = MatRef::row_major(&w[..o * i], o, i).unwrap();
            matmul(&mut z[..n * o], am, wm.t(), 1.0, true);
            let g = MatRef::row_major(&a[..n * o], n, o).unwrap();
            matmul(&mut dw[..o * i], g.t(), am, 1.0, true);
            if l > 0 {
                matmul(&mut z[..n * i], g, wm, 1.0, true);
            }
        }
        if s > 0 {
            count += allocations() - before; // the first round warms the buffers
        }
    }
    count
}

/// A small CNN through the tape's own conv and pooling ops: conv 3x3 (4 channels) + bias,
/// relu, 2x2 max-pool, flatten, linear, softmax + log-likelihood; its count is compared with
/// the same kernels' (two unfoldings + GEMMs forward, one weight-gradient GEMM) and the
/// linear layer's three products, run alone on warm buffers.
#[test]
fn warm_cnn_step_allocates_only_what_gemm_does() {
    let (n, c, hw, k) = (4, 4, 8, 10);
    let flat = c * 3 * 3;
    let mut tape = Tape::<f32>::new();
    let conv_w = tape
        .var_from_slice([c, 1, 3, 3], &fill(c * 9, 1))
        .unwrap()
        .id();
    let conv_b = tape.var_from_slice([c, 1, 1], &fill(c, 2)).unwrap().id();
    let w = tape
        .var_from_slice([k, flat], &fill(k * flat, 3))
        .unwrap()
        .id();
    let b = tape.var_from_slice([k], &fill(k, 4)).unwrap().id();
    let x = fill(n * hw * hw, 5);
    let mut y = vec![0.0; n * k];
    y.chunks_exact_mut(k)
        .enumerate()
        .for_each(|(r, row)| row[r % k] = 1.0);
    let step = |tape: &mut Tape<f32>| {
        tape.truncate(4);
        let xv = tape.constant_from_slice([n, 1, hw, hw], &x).unwrap();
        let yv = tape.constant_from_slice([n, k], &y).unwrap();
        let h = xv.conv2d(tape.handle(conv_w), [1, 1], [0, 0]) + tape.handle(conv_b);
        let h = h.relu().max_pool2d([2, 2]).reshape([n, flat]);
        let j = (h.matmul_t(tape.handle(w)) + tape.handle(b)).softmax_log_likelihood(yv);
        let grads = j.backward();
        for p in [conv_w, conv_b, w, b] {
            let mut value = tape.value_mut(p);
            let g = grads[p].as_slice();
            value
                .as_mut_slice()
                .iter_mut()
                .zip(g)
                .for_each(|(v, g)| *v -= 0.1 * g);
        }
        j.item()
    };
    let mut costs = Vec::with_capacity(8);
    for _ in 0..3 {
        costs.push(step(&mut tape));
    }
    let before = allocations();
    for _ in 0..5 {
        costs.push(step(&mut tape));
    }
    let tape_count = allocations() - before;
    assert!(costs[7] < costs[0], "J {costs:?}");

    // The same kernels and products alone.
    let s = Conv2dShape::new([n, 1, hw, hw], [c, 1, 3, 3], [1, 1], [0, 0]).unwrap();
    let (cw, mut out, mut dw) = (fill(c * 9, 1), vec![0.0; n * c * 36], vec![0.0; c * 9]);
    let mut ws = Conv2dWorkspace::new();
    let (h, lw) = (fill(n * flat, 6), fill(k * flat, 3));
    let (mut z, mut dh, mut dlw) = (vec![0.0; n * k], vec![0.0; n * flat], vec![0.0; k * flat]);
    let mut gemm_count = 0;
    for round in 0..6 {
        let before = allocations();
        conv2d_forward(&s, &x, &cw, None, &mut out, &mut ws); // the value
        conv2d_forward(&s, &x, &cw, None, &mut out, &mut ws); // redone by the weight's VJP
        conv2d_backward(&s, &cw, &out, &mut ws, None, &mut dw, None);
        let hm = MatRef::row_major(&h, n, flat).unwrap();
        let wm = MatRef::row_major(&lw, k, flat).unwrap();
        matmul(&mut z, hm, wm.t(), 1.0, true);
        let g = MatRef::row_major(&y, n, k).unwrap();
        matmul(&mut dh, g, wm, 1.0, true);
        matmul(&mut dlw, g.t(), hm, 1.0, true);
        if round > 0 {
            gemm_count += allocations() - before;
        }
    }
    eprintln!("CNN: 5 warm steps, {tape_count} allocations; its kernels alone {gemm_count}");
    assert_eq!(
        tape_count, gemm_count,
        "the CNN made {tape_count} allocations in 5 steps, its kernels {gemm_count}"
    );
}
