//! f32 matrix products of one training step of each `backprop bench` network (issue #5),
//! with `gemm` on one thread and on `Rayon(2)`, and `matrixmultiply` on one thread.
//!
//! Throughput is 2 m k n elements per iteration, so criterion's `Gelem/s` reads as
//! GFLOP/s. Forward products multiply by W^T and Equation 1 by Delta^T as transposed
//! views (swapped strides), exactly as the network would pass them. The `fwdT` groups
//! compute the forward product the other way round, Z^T = W A^T written column-major
//! into Z's buffer, so W is read unstrided: an alternative layout to choose from.
//!
//! ```text
//! cargo bench --bench gemm -- --warm-up-time 1 --measurement-time 2
//! cargo bench --bench gemm -- wide-fwd          # one group
//! python3 bench/gemm_table.py                   # the GFLOP/s table
//! ```

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

#[path = "common/kernels.rs"]
mod kernels;
use kernels::{all_products, matmul_to, max_relative_error, Kernel};

fn bench_products(c: &mut Criterion) {
    for product in all_products() {
        let (lhs_buf, rhs_buf) = product.buffers(1);
        let (lhs, rhs) = product.views(&lhs_buf, &rhs_buf);
        let mut dst = vec![0.0f32; product.m * product.n];
        let mut group = c.benchmark_group(&product.id);
        group.throughput(Throughput::Elements(product.flops()));
        for kernel in Kernel::ALL {
            // A timed wrong answer is worthless: check a sample of entries first.
            dst.fill(f32::NAN);
            matmul_to(kernel, &mut dst, product.col_major(), lhs, rhs);
            let sample = (0..64).map(|t| ((t * 7919) % product.m, (t * 104_729) % product.n));
            let err = max_relative_error(lhs, rhs, &dst, product.col_major(), sample);
            assert!(
                err < 1e-5,
                "{} {}: relative error {err}",
                product.id,
                kernel.name()
            );
            let shape = format!("{}x{}@{}x{}", product.m, product.k, product.k, product.n);
            group.bench_with_input(BenchmarkId::new(kernel.name(), shape), &kernel, |b, &k| {
                let col_major = product.col_major();
                b.iter(|| {
                    matmul_to(
                        k,
                        black_box(&mut dst),
                        col_major,
                        black_box(lhs),
                        black_box(rhs),
                    )
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_products);
criterion_main!(benches);
