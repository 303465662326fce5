//! Models written by hand from tape ops (convolution, pooling, a residual connection)
//! against `nn::Sequential`, which runs the same layers through its own VJPs: the two
//! paths must give the same J and gradients.

use backprop::network::Cost;
use backprop::nn::{Arch, Sequential};
use backprop::tensor::{Tape, Tensor};

const ARCH: &str =
    "Conv2d(1, 4, 3), ReLU(), MaxPool2d(2), Flatten(), Linear(36, 5), Softmax(dim=-1)";

fn batch(n: usize) -> (Vec<f64>, Vec<usize>) {
    // Deterministic values with exact zeros (as MNIST has), so max-pool sees ties.
    let x = (0..n * 64)
        .map(|i| {
            let v = ((i * 37 + 11) % 23) as f64 / 23.0 - 0.3;
            if v < 0.0 {
                0.0
            } else {
                v
            }
        })
        .collect();
    let labels = (0..n).map(|i| (i * 3 + 1) % 5).collect();
    (x, labels)
}

#[test]
fn a_cnn_written_with_tape_ops_equals_sequential() {
    let n = 3;
    let arch: Arch = ARCH.parse().unwrap();
    let mut seq = Sequential::<f64>::new(&arch, &[1, 8, 8], 7).unwrap();
    let (x, labels) = batch(n);
    let targets: Vec<f64> = labels.iter().map(|&l| l as f64).collect();
    let j_seq = seq
        .loss_and_grad(&x, &targets, n, Cost::LogLikelihood)
        .unwrap();

    let tape = Tape::<f64>::new();
    let param = |name: &str, shape: &[usize]| {
        tape.var(Tensor::from_vec(shape.to_vec(), seq.param(name).unwrap().to_vec()).unwrap())
    };
    let (w0, b0) = (
        param("0.weight", &[4, 1, 3, 3]),
        param("0.bias", &[4, 1, 1]),
    );
    let (w4, b4) = (param("4.weight", &[5, 36]), param("4.bias", &[5]));
    let xs = tape.var(Tensor::from_vec([n, 1, 8, 8], x).unwrap());
    let mut one_hot = vec![0.0; n * 5];
    for (i, &l) in labels.iter().enumerate() {
        one_hot[i * 5 + l] = 1.0;
    }
    let y = tape.var(Tensor::from_vec([n, 5], one_hot).unwrap());
    let a = (xs.conv2d(w0, [1, 1], [0, 0]) + b0)
        .relu()
        .max_pool2d([2, 2]);
    let z = a.reshape([n, 36]).matmul_t(w4) + b4;
    let j = z.softmax_log_likelihood(y);
    assert!((j.item() - j_seq).abs() < 1e-12, "{} vs {j_seq}", j.item());
    let grads = j.backward();
    for (v, name) in [
        (w0, "0.weight"),
        (b0, "0.bias"),
        (w4, "4.weight"),
        (b4, "4.bias"),
    ] {
        let tape_g = grads.wrt(v);
        let seq_g = seq.grad(name).unwrap();
        assert_eq!(tape_g.as_slice().len(), seq_g.len(), "{name}");
        for (a, b) in tape_g.as_slice().iter().zip(seq_g) {
            assert!((a - b).abs() < 1e-12, "{name}: {a} vs {b}");
        }
    }
}

/// A model that is not a sequence: y = relu(conv(x)) + x, a residual block. Its gradient
/// with respect to x is the sum over the two paths, as the post's chain rule says: the
/// identity path gives exactly 1 per element, the convolution path the rest.
#[test]
fn a_residual_connection_sums_the_two_paths() {
    let tape = Tape::<f64>::new();
    let x = tape.var(
        Tensor::from_vec(
            [1, 2, 4, 4],
            (0..32).map(|i| (i as f64 * 0.37).sin()).collect(),
        )
        .unwrap(),
    );
    let w = tape.var(
        Tensor::from_vec(
            [2, 2, 3, 3],
            (0..36).map(|i| (i as f64 * 0.11).cos() * 0.2).collect(),
        )
        .unwrap(),
    );
    let y = x.conv2d(w, [1, 1], [1, 1]).relu() + x;
    let grads = y.sum_all().backward();
    let dx = grads.wrt(x);

    let tape2 = Tape::<f64>::new();
    let x2 = tape2.var(x.to_tensor());
    let w2 = tape2.var(w.to_tensor());
    let grads2 = x2.conv2d(w2, [1, 1], [1, 1]).relu().sum_all().backward();
    let conv_only = grads2.wrt(x2);
    for (a, b) in dx.as_slice().iter().zip(conv_only.as_slice()) {
        assert!((a - (b + 1.0)).abs() < 1e-12, "{a} vs {b} + 1");
    }
}
