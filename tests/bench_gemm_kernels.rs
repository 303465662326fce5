//! The kernels `benches/gemm.rs` times, checked against a plain triple loop in every
//! layout a training step uses (transposed views included), and the list of products.

#[path = "../benches/common/kernels.rs"]
mod kernels;

use kernels::{
    forward_t_products, matmul, matmul_to, max_relative_error, naive, step_products, Kernel,
    Product, Role, View,
};

fn check(product: &Product) {
    let (lhs_buf, rhs_buf) = product.buffers(product.m as u64 * 31 + product.n as u64);
    let (lhs, rhs) = product.views(&lhs_buf, &rhs_buf);
    let expected = naive(lhs, rhs);
    for kernel in [Kernel::Gemm, Kernel::GemmRayon(2), Kernel::MatrixMultiply] {
        let mut dst = vec![f32::NAN; product.m * product.n];
        matmul_to(kernel, &mut dst, product.col_major(), lhs, rhs);
        // f32 accumulation errs by at most about k eps of the sum of |terms|; 1e-5 of it
        // is far above that (k <= 784 here) and far below any layout mistake.
        assert!(expected.iter().all(|v| v.is_finite()));
        let all = (0..product.m).flat_map(|i| (0..product.n).map(move |j| (i, j)));
        let err = max_relative_error(lhs, rhs, &dst, product.col_major(), all);
        assert!(
            err < 1e-5,
            "{} {kernel:?}: relative error {err}",
            product.id
        );
    }
}

#[test]
fn every_layout_matches_the_triple_loop() {
    // Odd sizes that are not multiples of any SIMD width, and the degenerate 1s.
    for &(batch, sizes) in &[
        (7usize, &[13usize, 5, 3][..]),
        (1, &[4, 1, 2]),
        (33, &[65, 17, 9, 10]),
        (10, &[784, 30, 10]),
    ] {
        for product in step_products("t", sizes, batch) {
            check(&product);
        }
        for product in forward_t_products("t", sizes, batch) {
            check(&product);
        }
    }
}

#[test]
fn the_error_measure_sees_a_wrong_entry() {
    let (a, b) = ([1.0f32, 2.0], [3.0f32, 4.0]); // [1 2] [3 4]^T = 11
    let (lhs, rhs) = (View::new(&a, 1, 2), View::new(&b, 2, 1));
    assert_eq!(
        max_relative_error(lhs, rhs, &[11.0], false, std::iter::once((0, 0))),
        0.0
    );
    let err = max_relative_error(lhs, rhs, &[11.011], false, std::iter::once((0, 0)));
    assert!((err - 0.001).abs() < 1e-6, "{err}");
    assert!(naive(lhs, rhs) == vec![11.0]);
}

#[test]
fn transposed_views_read_the_transpose() {
    // W = [[1, 2, 3], [4, 5, 6]] stored 2 x 3; its transpose viewed as 3 x 2.
    let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let wt = View::transpose_of(&w, 2, 3);
    assert_eq!((wt.rows, wt.cols), (3, 2));
    assert_eq!([wt.get(0, 1), wt.get(2, 0), wt.get(2, 1)], [4.0, 3.0, 6.0]);
    // A = [[1, 1, 1]] times W^T = [1+2+3, 4+5+6] = [6, 15], for every kernel.
    let a = [1.0, 1.0, 1.0];
    for kernel in [Kernel::Gemm, Kernel::GemmRayon(2), Kernel::MatrixMultiply] {
        let mut z = [0.0f32; 2];
        matmul(kernel, &mut z, View::new(&a, 1, 3), wt);
        assert_eq!(z, [6.0, 15.0], "{kernel:?}");
    }
}

#[test]
fn step_products_of_the_small_network() {
    let p = step_products("small", &[784, 128, 64, 10], 64);
    let shapes: Vec<_> = p
        .iter()
        .map(|p| (p.id.as_str(), p.role, p.m, p.k, p.n))
        .collect();
    assert_eq!(
        shapes,
        vec![
            ("small-fwd-l2", Role::Forward, 64, 784, 128),
            ("small-fwd-l3", Role::Forward, 64, 128, 64),
            ("small-fwd-l4", Role::Forward, 64, 64, 10),
            ("small-eq3-l3", Role::Eq3, 64, 10, 64),
            ("small-eq3-l2", Role::Eq3, 64, 64, 128),
            ("small-eq1-l4", Role::Eq1, 10, 64, 64),
            ("small-eq1-l3", Role::Eq1, 64, 64, 128),
            ("small-eq1-l2", Role::Eq1, 128, 64, 784),
        ]
    );
    // The products' flops add up to the harness's count per example (`backprop bench
    // --json`'s train_gflop_per_sec uses it) times the batch: forward 2 N^l N^(l-1) per
    // layer, Equation 1 the same, Equation 3 for every layer but the first.
    let forward = 2 * (784 * 128 + 128 * 64 + 64 * 10);
    let per_example = forward + forward + 2 * (128 * 64 + 64 * 10);
    let flops: u64 = p.iter().map(Product::flops).sum();
    assert_eq!(flops, per_example * 64);
}

#[test]
fn forward_t_writes_z_in_its_own_layout() {
    // A = [[1, 0, 2], [0, 1, 1]] (n = 2 examples x 3 inputs), W = [[1, 1, 1], [1, 0, 0]]
    // (2 outputs x 3 inputs): Z = A W^T = [[3, 1], [2, 0]], row-major [3, 1, 2, 0].
    let a = [1.0, 0.0, 2.0, 0.0, 1.0, 1.0];
    let w = [1.0, 1.0, 1.0, 1.0, 0.0, 0.0];
    let p = &forward_t_products("t", &[3, 2], 2)[0];
    assert_eq!((p.m, p.k, p.n, p.col_major()), (2, 3, 2, true));
    let (lhs, rhs) = p.views(&w, &a);
    for kernel in [Kernel::Gemm, Kernel::GemmRayon(2), Kernel::MatrixMultiply] {
        let mut z = [f32::NAN; 4];
        matmul_to(kernel, &mut z, true, lhs, rhs);
        assert_eq!(z, [3.0, 1.0, 2.0, 0.0], "{kernel:?}");
    }
}

#[test]
fn empty_inner_dimension_gives_zeros() {
    let mut dst = [f32::NAN; 6];
    matmul(
        Kernel::Gemm,
        &mut dst,
        View::new(&[], 2, 0),
        View::new(&[], 0, 3),
    );
    assert_eq!(dst, [0.0; 6]);
}

#[test]
#[should_panic(expected = "outside its buffer")]
fn a_view_past_its_buffer_is_refused() {
    // A 2 x 3 view needs 6 values: with 5 the kernel would read past the end.
    let short = [0.0f32; 5];
    let mut dst = [0.0f32; 4];
    matmul(
        Kernel::Gemm,
        &mut dst,
        View::new(&short, 2, 3),
        View::new(&[0.0; 6], 3, 2),
    );
}

#[test]
#[should_panic(expected = "destination")]
fn a_short_destination_is_refused() {
    let mut dst = [0.0f32; 3];
    matmul(
        Kernel::MatrixMultiply,
        &mut dst,
        View::new(&[0.0; 6], 2, 3),
        View::new(&[0.0; 6], 3, 2),
    );
}
