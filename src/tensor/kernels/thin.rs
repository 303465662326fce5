//! Products for the thin matrices of small convolutions, on AVX2 and FMA, without packing.
//!
//! A convolution's per-example products have one tiny side: LeNet-5's first layer computes
//! `Y = W cols` with W of 6 x 25 and cols of 25 x 784, its weight gradient `dY cols^T` sums
//! 784 products for each of 6 x 25 entries. The `gemm` crate packs both operands of every
//! such call into its own layout first, and on these shapes the packing cost more than the
//! arithmetic (about 14% of a LeNet-5 step). Here the operands are read where they are:
//!
//! ```text
//! nn  C (m x n) (+)= A B      A (m x k) at any strides, B (k x n) row-major: each row of
//!                             B is read in 8-lane vectors, each A entry broadcast
//! nt  C (m x n) (+)= A B^T    A (m x k) and B (n x k) row-major: each C entry a dot
//!                             product of two contiguous rows
//! ```
//!
//! Both keep a block of C in registers (const-generic block sizes, so the accumulators are
//! arrays the compiler unrolls into registers) and sum over k in order within each lane.
//! They run only when the CPU has AVX2 and FMA and `T` is `f32`; [`super::conv`] falls back to
//! the `gemm` crate otherwise, and the tests below compare both against direct loops.

use super::avx2_fma;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// One operand's layout: entry `(i, j)` at `i * rows + j * cols`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Strides {
    pub rows: usize,
    pub cols: usize,
}

/// `c (+)= a b` (see the module docs): `c` is `m x n` row-major with row stride `ldc`, `a`
/// is `m x k` at strides `sa`, `b` is `k x n` with row stride `ldb`. With `accumulate` the
/// products are added to `c`, otherwise they replace it.
///
/// # Panics
/// If a slice is too short for its shape, or the CPU lacks AVX2 or FMA.
#[allow(clippy::too_many_arguments)]
pub(super) fn nn(
    (m, k, n): (usize, usize, usize),
    c: &mut [f32],
    ldc: usize,
    a: &[f32],
    sa: Strides,
    b: &[f32],
    ldb: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(avx2_fma(), "thin::nn needs AVX2 and FMA");
    assert!(
        ldc >= n && c.len() >= (m - 1) * ldc + n,
        "thin::nn: c too short"
    );
    assert!(ldb >= n, "thin::nn: ldb below n");
    if k > 0 {
        assert!(b.len() >= (k - 1) * ldb + n, "thin::nn: b too short");
        assert!(
            a.len() > (m - 1) * sa.rows + (k - 1) * sa.cols,
            "thin::nn: a too short"
        );
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 and FMA are present (asserted above), and every index the kernel reads or
    // writes is in the ranges the asserts above proved in bounds (see `nn_avx2`).
    unsafe {
        nn_avx2((m, k, n), c, ldc, a, sa, b, ldb, accumulate)
    }
}

/// `c (+)= a b^T` (see the module docs): `c` is `m x n` with row stride `ldc`, `a` is
/// `m x k` with row stride `lda`, `b` is `n x k` with row stride `ldb`.
///
/// # Panics
/// If a slice is too short for its shape, or the CPU lacks AVX2 or FMA.
#[allow(clippy::too_many_arguments)]
pub(super) fn nt(
    (m, k, n): (usize, usize, usize),
    c: &mut [f32],
    ldc: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(avx2_fma(), "thin::nt needs AVX2 and FMA");
    assert!(
        ldc >= n && c.len() >= (m - 1) * ldc + n,
        "thin::nt: c too short"
    );
    assert!(
        lda >= k && a.len() >= (m - 1) * lda + k,
        "thin::nt: a too short"
    );
    assert!(
        ldb >= k && b.len() >= (n - 1) * ldb + k,
        "thin::nt: b too short"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `nn`: AVX2 and FMA are present and the asserts bound every access.
    unsafe {
        nt_avx2((m, k, n), c, ldc, a, lda, b, ldb, accumulate)
    }
}

/// Rows of C per block of [`nn`] (times two 8-lane vectors: 12 of the 16 registers), so
/// that B, the larger operand, is read once for up to 6 rows of C.
const NN_ROWS: usize = 6;

/// The mask of the first `len` lanes of 8 (all when `len >= 8`), for `maskload`/`maskstore`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn lanes(len: usize) -> __m256i {
    let len = len.min(8) as i32;
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(len),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// The sum of the 8 lanes of `v`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn lane_sum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn nn_avx2(
    (m, k, n): (usize, usize, usize),
    c: &mut [f32],
    ldc: usize,
    a: &[f32],
    sa: Strides,
    b: &[f32],
    ldb: usize,
    accumulate: bool,
) {
    let mut i = 0;
    while i < m {
        let rows = (m - i).min(NN_ROWS);
        let mut j = 0;
        while j < n {
            // Two vectors of columns while they fit whole, then one or two masked.
            let width = (n - j).min(16);
            let full = lanes(8);
            // SAFETY (for the block calls): rows i..i + rows <= m, columns j..j + width <= n
            // of C and B, and A's rows i.. over all k: in bounds by `nn`'s asserts.
            unsafe {
                if width == 16 {
                    nn_block_rows::<2, false>(
                        rows,
                        (i, j),
                        k,
                        c,
                        ldc,
                        a,
                        sa,
                        b,
                        ldb,
                        full,
                        accumulate,
                    );
                } else if width < 8 {
                    let last = lanes(width);
                    nn_block_rows::<1, true>(
                        rows,
                        (i, j),
                        k,
                        c,
                        ldc,
                        a,
                        sa,
                        b,
                        ldb,
                        last,
                        accumulate,
                    );
                } else {
                    nn_block_rows::<1, false>(
                        rows,
                        (i, j),
                        k,
                        c,
                        ldc,
                        a,
                        sa,
                        b,
                        ldb,
                        full,
                        accumulate,
                    );
                    if width > 8 {
                        let (at, last) = ((i, j + 8), lanes(width - 8));
                        nn_block_rows::<1, true>(
                            rows, at, k, c, ldc, a, sa, b, ldb, last, accumulate,
                        );
                    }
                }
            }
            j += width;
        }
        i += rows;
    }
}

/// Dispatches a block of `rows` (1 to [`NN_ROWS`]) rows to its const-sized kernel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn nn_block_rows<const V: usize, const M: bool>(
    rows: usize,
    at: (usize, usize),
    k: usize,
    c: &mut [f32],
    ldc: usize,
    a: &[f32],
    sa: Strides,
    b: &[f32],
    ldb: usize,
    last: __m256i,
    acc: bool,
) {
    // SAFETY: the caller's bounds hold for each block size.
    unsafe {
        match rows {
            6 => nn_block::<6, V, M>(at, k, c, ldc, a, sa, b, ldb, last, acc),
            5 => nn_block::<5, V, M>(at, k, c, ldc, a, sa, b, ldb, last, acc),
            4 => nn_block::<4, V, M>(at, k, c, ldc, a, sa, b, ldb, last, acc),
            3 => nn_block::<3, V, M>(at, k, c, ldc, a, sa, b, ldb, last, acc),
            2 => nn_block::<2, V, M>(at, k, c, ldc, a, sa, b, ldb, last, acc),
            _ => nn_block::<1, V, M>(at, k, c, ldc, a, sa, b, ldb, last, acc),
        }
    }
}

/// C's rows `i..i + R`, columns `j..j + 8 V`; with `M` the last vector's lanes are masked by
/// `last` (a masked load costs more than a plain one, so whole vectors go without).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn nn_block<const R: usize, const V: usize, const M: bool>(
    (i, j): (usize, usize),
    k: usize,
    c: &mut [f32],
    ldc: usize,
    a: &[f32],
    sa: Strides,
    b: &[f32],
    ldb: usize,
    last: __m256i,
    acc: bool,
) {
    let masked = |v: usize| M && v + 1 == V;
    let load = |p: *const f32, v: usize| {
        // SAFETY: the caller's pointers, in bounds for the lanes loaded (see below).
        unsafe {
            if masked(v) {
                _mm256_maskload_ps(p, last)
            } else {
                _mm256_loadu_ps(p)
            }
        }
    };
    let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    let mut sum = [[_mm256_setzero_ps(); V]; R];
    // SAFETY: every pointer below stays in the block the caller proved in bounds: rows of
    // A i..i + R at columns < k, rows of B < k at columns j..j + 8 V (masked lanes are not
    // read or written), rows of C i..i + R at the same columns.
    unsafe {
        if acc {
            for (r, row) in sum.iter_mut().enumerate() {
                for (v, s) in row.iter_mut().enumerate() {
                    let p = cp.add((i + r) * ldc + j + 8 * v);
                    *s = load(p, v);
                }
            }
        }
        for t in 0..k {
            let mut bv = [_mm256_setzero_ps(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = load(bp.add(t * ldb + j + 8 * v), v);
            }
            for (r, row) in sum.iter_mut().enumerate() {
                let w = _mm256_set1_ps(*ap.add((i + r) * sa.rows + t * sa.cols));
                for (s, &x) in row.iter_mut().zip(&bv) {
                    *s = _mm256_fmadd_ps(w, x, *s);
                }
            }
        }
        for (r, row) in sum.iter().enumerate() {
            for (v, &s) in row.iter().enumerate() {
                let p = cp.add((i + r) * ldc + j + 8 * v);
                if masked(v) {
                    _mm256_maskstore_ps(p, last, s);
                } else {
                    _mm256_storeu_ps(p, s);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn nt_avx2(
    (m, k, n): (usize, usize, usize),
    c: &mut [f32],
    ldc: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    accumulate: bool,
) {
    // Row blocks as tall as the registers allow, so that B (a convolution's cols, the
    // larger operand, often out of L1) is streamed once or twice while A (dY, small) is
    // read again from L1 for each block of B's rows.
    let mut i = 0;
    while i < m {
        let rows = m - i;
        // SAFETY: each call covers rows i..i + R <= m of A and C and all n rows of B, in
        // bounds by `nt`'s asserts.
        let step = unsafe {
            let args = (i, n, k, &mut *c, ldc, a, lda, b, ldb, accumulate);
            match rows {
                3.. => nt_rows::<3, 3>(args),
                2 => nt_rows::<2, 3>(args),
                _ => nt_rows::<1, 3>(args),
            }
        };
        i += step;
    }
}

/// The arguments of [`nt_rows`]: first row, n, k, then C, A and B with their row strides.
type NtArgs<'a> = (
    usize,
    usize,
    usize,
    &'a mut [f32],
    usize,
    &'a [f32],
    usize,
    &'a [f32],
    usize,
    bool,
);

/// Rows `i..i + R` of C, all n columns, in blocks of S columns (the last block narrower);
/// returns R.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn nt_rows<const R: usize, const S: usize>(
    (i, n, k, c, ldc, a, lda, b, ldb, acc): NtArgs<'_>,
) -> usize {
    let mut j = 0;
    // SAFETY: columns j..j + S <= n (or the narrower tail) of C and rows of B: in bounds.
    unsafe {
        while j + S <= n {
            nt_block::<R, S>((i, j), k, c, ldc, a, lda, b, ldb, acc);
            j += S;
        }
        match n - j {
            0 => {}
            1 => nt_block::<R, 1>((i, j), k, c, ldc, a, lda, b, ldb, acc),
            _ => nt_block::<R, 2>((i, j), k, c, ldc, a, lda, b, ldb, acc),
        }
    }
    R
}

/// C's rows `i..i + R`, columns `j..j + S`: `R S` dot products over k, 8 lanes at a time,
/// each lane summed in order and the lanes added at the end.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn nt_block<const R: usize, const S: usize>(
    (i, j): (usize, usize),
    k: usize,
    c: &mut [f32],
    ldc: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    acc: bool,
) {
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let mut sum = [[_mm256_setzero_ps(); S]; R];
    let mut t = 0;
    // SAFETY: rows i..i + R of A and j..j + S of B at columns t..t + 8 <= k (or masked to
    // k): in the block the caller proved in bounds.
    unsafe {
        // Whole vectors with plain loads, then the last k % 8 columns masked.
        while t < k {
            let mask = lanes(k - t);
            let load = |p: *const f32| {
                if t + 8 <= k {
                    _mm256_loadu_ps(p)
                } else {
                    _mm256_maskload_ps(p, mask)
                }
            };
            let mut bv = [_mm256_setzero_ps(); S];
            for (s, x) in bv.iter_mut().enumerate() {
                *x = load(bp.add((j + s) * ldb + t));
            }
            for (r, row) in sum.iter_mut().enumerate() {
                let av = load(ap.add((i + r) * lda + t));
                for (s, &x) in row.iter_mut().zip(&bv) {
                    *s = _mm256_fmadd_ps(av, x, *s);
                }
            }
            t += 8;
        }
    }
    for (r, row) in sum.iter().enumerate() {
        for (s, &v) in row.iter().enumerate() {
            let dot = lane_sum(v);
            let out = &mut c[(i + r) * ldc + j + s];
            *out = if acc { *out + dot } else { dot };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, salt: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + salt * 104_729) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    fn close(got: &[f32], want: &[f64], what: &str) {
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{what}[{i}]: {g} against {w}"
            );
        }
    }

    /// Every block size and tail: m, n and k across the block and vector widths.
    #[test]
    fn nn_and_nt_match_direct_sums() {
        if !avx2_fma() {
            return; // the conv tests exercise the fallback
        }
        for &(m, k, n) in &[
            (6, 25, 784),
            (16, 150, 100),
            (150, 16, 100),
            (1, 1, 1),
            (7, 3, 33),
            (13, 17, 15),
            (5, 40, 47),
        ] {
            for acc in [false, true] {
                // nn: A (m x k) read transposed from a k x m buffer, as conv's W^T.
                let at = values(k * m, 1);
                let b = values(k * (n + 3), 2);
                let ldc = n + 1;
                let mut c = values(m * ldc, 3);
                let mut want: Vec<f64> = c.iter().map(|&v| v as f64).collect();
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k)
                            .map(|t| at[t * m + i] as f64 * b[t * (n + 3) + j] as f64)
                            .sum();
                        let w = &mut want[i * ldc + j];
                        *w = if acc { *w + dot } else { dot };
                    }
                }
                let sa = Strides { rows: 1, cols: m };
                nn((m, k, n), &mut c, ldc, &at, sa, &b, n + 3, acc);
                close(&c, &want, &format!("nn {m}x{k}x{n} acc {acc}"));

                // nt: A (m x k) and B (n x k), rows padded.
                let a = values(m * (k + 2), 4);
                let b = values(n * (k + 1), 5);
                let mut c = values(m * ldc, 6);
                let mut want: Vec<f64> = c.iter().map(|&v| v as f64).collect();
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k)
                            .map(|t| a[i * (k + 2) + t] as f64 * b[j * (k + 1) + t] as f64)
                            .sum();
                        let w = &mut want[i * ldc + j];
                        *w = if acc { *w + dot } else { dot };
                    }
                }
                nt((m, k, n), &mut c, ldc, &a, k + 2, &b, k + 1, acc);
                close(&c, &want, &format!("nt {m}x{k}x{n} acc {acc}"));
            }
        }
    }

    /// Columns of C outside the n asked for are left alone (the masked lanes).
    #[test]
    fn nn_writes_only_its_columns() {
        if !avx2_fma() {
            return;
        }
        let (m, k, n, ldc) = (3, 2, 5, 40);
        let mut c = vec![7.0f32; m * ldc];
        nn(
            (m, k, n),
            &mut c,
            ldc,
            &[1.0; 6],
            Strides { rows: 2, cols: 1 },
            &[1.0; 10],
            5,
            false,
        );
        for (idx, &v) in c.iter().enumerate() {
            let want = if idx % ldc < n { 2.0 } else { 7.0 };
            assert_eq!(v, want, "c[{idx}]");
        }
    }
}
