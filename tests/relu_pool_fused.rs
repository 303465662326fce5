//! `ReLU()` then `MaxPool2d(2)` in one pass gives the same bits as the two layers: the
//! kernels against `Activation::Relu` and the max-pool kernels (negative values, ties at 0
//! and between positives, -0.0 and NaN, an odd plane whose last row and column no window
//! covers), and a model whose ReLU is pooled against the same model with an identity
//! (a `Dropout` with p = 0) between them, which keeps the layers apart.

use backprop::network::{Activation, Cost};
use backprop::nn::{Arch, Sequential};
use backprop::tensor::kernels::{
    max_pool2d_backward, max_pool2d_forward, relu_max_pool2d_backward, relu_max_pool2d_forward,
    Pool2dShape,
};

/// Values in [-1, 1] on a grid of 0.25, so many windows tie (at 0 after the ReLU, and
/// between positives), with a -0.0 and a NaN among them.
fn values(len: usize, salt: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..len)
        .map(|i| ((i * 7919 + salt * 104_729) % 9) as f32 / 4.0 - 1.0)
        .collect();
    v[3] = -0.0;
    v[len / 2] = f32::NAN;
    v
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn kernels_match_relu_then_max_pool() {
    let s = Pool2dShape::new([3, 2, 7, 9], [2, 2], [2, 2], [0, 0]).unwrap();
    let [n, c, h, w] = s.input_dims();
    let [_, _, oh, ow] = s.output_dims();
    let (in_len, out_len) = (n * c * h * w, n * c * oh * ow);
    let x = values(in_len, 1);
    let mut dy = values(out_len, 2);
    dy[1] = -0.0;

    // The two layers.
    let mut r = vec![0.0f32; in_len];
    Activation::Relu.f(&x, &mut r);
    let (mut y, mut argmax) = (vec![0.0f32; out_len], vec![0; out_len]);
    max_pool2d_forward(&s, &r, &mut y, &mut argmax);
    let mut dr = vec![0.0f32; in_len];
    max_pool2d_backward(&s, &dy, &argmax, &mut dr);
    let mut dx = vec![0.0f32; in_len];
    Activation::Relu.backward(&r, &dr, &mut dx);

    // One pass each way; dx starts stale, as the model's buffers do.
    let (mut fy, mut fargmax) = (vec![7.0f32; out_len], vec![0; out_len]);
    relu_max_pool2d_forward(&s, &x, &mut fy, &mut fargmax);
    let mut fdx = vec![7.0f32; in_len];
    relu_max_pool2d_backward(&s, &fy, &dy, &fargmax, &mut fdx);

    assert_eq!(bits(&fy), bits(&y));
    assert_eq!(fargmax, argmax);
    assert_eq!(bits(&fdx), bits(&dx));
    assert!(
        y.contains(&0.0) && dx.iter().any(|d| d.is_nan()),
        "the case has ties and a NaN"
    );
}

#[test]
#[should_panic(expected = "2x2 windows at stride 2")]
fn kernels_refuse_other_windows() {
    let s = Pool2dShape::new([1, 1, 4, 4], [2, 2], [1, 1], [0, 0]).unwrap();
    relu_max_pool2d_forward(&s, &[0.0; 16], &mut [0.0; 9], &mut [0; 9]);
}

/// Loss, gradients and the input's gradient of `arch` on a fixed batch.
fn run(arch: &str, seed: u64) -> (f32, Vec<Vec<f32>>, Vec<f32>) {
    let arch: Arch = arch.parse().unwrap();
    let mut net = Sequential::<f32>::new(&arch, &[1, 11, 11], seed).unwrap();
    let x = values(4 * 121, 3);
    let x: Vec<f32> = x
        .iter()
        .map(|v| if v.is_nan() { 0.5 } else { *v })
        .collect();
    let targets = [0.0, 2.0, 1.0, 2.0];
    let j = net
        .loss_and_grad(&x, &targets, 4, Cost::LogLikelihood)
        .unwrap();
    let grads = net.grads().map(|(_, _, g)| g.to_vec()).collect();
    net.forward(&x, 4, true).unwrap();
    let dout = values(4 * 3, 4);
    let dout: Vec<f32> = dout
        .iter()
        .map(|v| if v.is_nan() { 1.0 } else { *v })
        .collect();
    net.zero_grads();
    let dx = net.backward(&dout).unwrap().to_vec();
    (j, grads, dx)
}

#[test]
fn model_with_pooled_relu_matches_separate_layers() {
    // ReLU first (its gradient is the input's) and after a convolution.
    let tail = "Conv2d(2, 3, 2), ReLU(), MaxPool2d(2), Flatten(), Linear(12, 3), Softmax(dim=-1)";
    let fused = format!("ReLU(), MaxPool2d(2), Conv2d(1, 2, 1), {tail}");
    let apart = "ReLU(), Dropout(p=0.0), MaxPool2d(2), Conv2d(1, 2, 1), Conv2d(2, 3, 2), ReLU(), \
                 Dropout(p=0.0), MaxPool2d(2), Flatten(), Linear(12, 3), Softmax(dim=-1)";
    let mut live = 0;
    for seed in 0..8 {
        let (jf, gf, dxf) = run(&fused, seed);
        let (ja, ga, dxa) = run(apart, seed);
        assert_eq!(jf.to_bits(), ja.to_bits());
        assert_eq!(gf.len(), ga.len());
        for (f, a) in gf.iter().zip(&ga) {
            assert_eq!(bits(f), bits(a));
        }
        assert_eq!(bits(&dxf), bits(&dxa));
        // Some initialisations leave the second ReLU dead; count those that do not.
        live += usize::from(dxf.iter().any(|&d| d != 0.0) && dxf.contains(&0.0));
    }
    assert!(live >= 2, "only {live} of 8 cases pass a gradient down");
}
