//! Safe, checked wrappers over the three f32 matrix-product kernels the GEMM bench
//! compares, and the products of one training step of each `backprop bench` network.
//! Shared by `benches/gemm.rs` and `tests/bench_gemm_kernels.rs` (which checks every
//! layout against a plain triple loop).

#![allow(dead_code)] // each includer uses a different part

/// A read-only matrix view: element (i, j) is `data[i * row_stride + j * col_stride]`.
/// A transposed operand is the same buffer with the strides swapped: no copy.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major `stored_rows x stored_cols` matrix, as a
    /// `stored_cols x stored_rows` view of the same memory.
    pub fn transpose_of(data: &'a [f32], stored_rows: usize, stored_cols: usize) -> Self {
        View {
            data,
            rows: stored_cols,
            cols: stored_rows,
            row_stride: 1,
            col_stride: stored_cols,
        }
    }

    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }

    /// True when every (i, j) of the view is inside `data`; the one check that makes
    /// the raw-pointer kernels below sound.
    fn fits(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1).checked_mul(self.row_stride).and_then(|r| {
            (self.cols - 1)
                .checked_mul(self.col_stride)
                .and_then(|c| r.checked_add(c))
        });
        matches!(last, Some(l) if l < self.data.len() && l <= isize::MAX as usize)
    }
}

/// Which kernel computes a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// `gemm::gemm` with `Parallelism::None`.
    Gemm,
    /// `gemm::gemm` with `Parallelism::Rayon(threads)`.
    GemmRayon(usize),
    /// `matrixmultiply::sgemm`, single thread.
    MatrixMultiply,
}

impl Kernel {
    pub const ALL: [Kernel; 3] = [Kernel::Gemm, Kernel::GemmRayon(2), Kernel::MatrixMultiply];

    pub fn name(self) -> String {
        match self {
            Kernel::Gemm => "gemm-1t".to_owned(),
            Kernel::GemmRayon(t) => format!("gemm-rayon{t}"),
            Kernel::MatrixMultiply => "matrixmultiply-1t".to_owned(),
        }
    }
}

/// `dst = lhs rhs`, with `dst` row-major `lhs.rows x rhs.cols`.
///
/// # Panics
/// If the shapes disagree or a view reaches outside its buffer.
pub fn matmul(kernel: Kernel, dst: &mut [f32], lhs: View<'_>, rhs: View<'_>) {
    matmul_to(kernel, dst, false, lhs, rhs)
}

/// `dst = lhs rhs`, with `dst` `lhs.rows x rhs.cols`, row-major or, if `col_major`,
/// column-major (which is the transpose's row-major layout: Z^T written as Z).
///
/// # Panics
/// If the shapes disagree or a view reaches outside its buffer.
pub fn matmul_to(kernel: Kernel, dst: &mut [f32], col_major: bool, lhs: View<'_>, rhs: View<'_>) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "inner dimensions differ");
    assert_eq!(dst.len(), m * n, "destination is not {m} x {n}");
    assert!(
        lhs.fits() && rhs.fits(),
        "a view reaches outside its buffer"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        dst.fill(0.0);
        return;
    }
    let (dst_ptr, lhs_ptr, rhs_ptr) = (dst.as_mut_ptr(), lhs.data.as_ptr(), rhs.data.as_ptr());
    // Row-major (n, 1) or column-major (1, m): either way the m x n elements are exactly
    // the m * n distinct slots of dst.
    let (dst_rs, dst_cs) = if col_major {
        (1, m as isize)
    } else {
        (n as isize, 1)
    };
    match kernel {
        Kernel::Gemm | Kernel::GemmRayon(_) => {
            let parallelism = match kernel {
                Kernel::GemmRayon(t) => gemm::Parallelism::Rayon(t),
                _ => gemm::Parallelism::None,
            };
            // SAFETY: `fits` proved every (i, p) of lhs and (p, j) of rhs, i < m, p < k,
            // j < n, indexes inside its slice, and `dst.len() == m * n` with row-major
            // strides (n, 1) or (1, m) covers dst exactly; all strides fit in isize
            // (checked by `fits`; m, n <= dst.len()). dst is borrowed mutably, lhs and rhs shared, so
            // the borrow checker rules out aliasing. read_dst = false: dst is only
            // written (alpha unused), beta = 1 gives dst = lhs rhs. f32 is a type gemm
            // supports, so it does not panic.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    dst_ptr,
                    dst_cs,
                    dst_rs,
                    false,
                    lhs_ptr,
                    lhs.col_stride as isize,
                    lhs.row_stride as isize,
                    rhs_ptr,
                    rhs.col_stride as isize,
                    rhs.row_stride as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                )
            }
        }
        Kernel::MatrixMultiply => {
            // SAFETY: as for gemm above: every index the product reads is inside lhs
            // or rhs (`fits`), dst is exactly m x n with distinct elements (strides
            // (n, 1) or (1, m)), and it does not alias the inputs. beta = 0, so dst is
            // not read before it is written.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    lhs_ptr,
                    lhs.row_stride as isize,
                    lhs.col_stride as isize,
                    rhs_ptr,
                    rhs.row_stride as isize,
                    rhs.col_stride as isize,
                    0.0,
                    dst_ptr,
                    dst_rs,
                    dst_cs,
                )
            }
        }
    }
}

/// The three kinds of product in a training step, with rows as examples:
/// A^(l-1) is n x N^(l-1), W^l is N^l x N^(l-1), Delta^l is n x N^l.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Z^l = A^(l-1) W^l^T: m = n, k = N^(l-1), columns = N^l; W^T a transposed view.
    Forward,
    /// Equation 3: Delta^(l+1) W^(l+1): m = n, k = N^(l+1), columns = N^l.
    Eq3,
    /// Equation 1: dW^l = Delta^l^T A^(l-1): m = N^l, k = n, columns = N^(l-1);
    /// Delta^T a transposed view.
    Eq1,
    /// The forward product the other way round: Z^T = W^l A^(l-1)^T, m = N^l,
    /// k = N^(l-1), columns = n, written column-major, i.e. into Z's own row-major
    /// layout. W is read unstrided, A^T is the strided view instead.
    ForwardT,
}

/// One product of one network's training step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    /// e.g. `wide-eq1-l2`.
    pub id: String,
    pub role: Role,
    /// lhs is m x k, rhs k x n, dst m x n.
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

impl Product {
    pub fn flops(&self) -> u64 {
        2 * (self.m * self.k * self.n) as u64
    }

    /// The operands' buffers in the layout the network stores them in (row-major A,
    /// W, Delta), filled with values in [-1, 1) from a small LCG (no rand needed).
    pub fn buffers(&self, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let lhs = (0..self.m * self.k).map(|_| next()).collect();
        let rhs = (0..self.k * self.n).map(|_| next()).collect();
        (lhs, rhs)
    }

    /// The views of `buffers`: transposed where the step multiplies by a transpose.
    pub fn views<'a>(&self, lhs: &'a [f32], rhs: &'a [f32]) -> (View<'a>, View<'a>) {
        let (m, k, n) = (self.m, self.k, self.n);
        match self.role {
            // A (n x in) times the transpose of W (stored out x in).
            Role::Forward => (View::new(lhs, m, k), View::transpose_of(rhs, n, k)),
            // Delta (n x out) times W (out x in).
            Role::Eq3 => (View::new(lhs, m, k), View::new(rhs, k, n)),
            // The transpose of Delta (stored n x out) times A (n x in).
            Role::Eq1 => (View::transpose_of(lhs, k, m), View::new(rhs, k, n)),
            // W (out x in) times the transpose of A (stored n x in).
            Role::ForwardT => (View::new(lhs, m, k), View::transpose_of(rhs, n, k)),
        }
    }

    /// Whether the product is written column-major (see [`Role::ForwardT`]).
    pub fn col_major(&self) -> bool {
        self.role == Role::ForwardT
    }
}

/// Every product in one training step of a network of layer `sizes` at batch `n`.
pub fn step_products(config: &str, sizes: &[usize], batch: usize) -> Vec<Product> {
    let mut out = Vec::new();
    // Weight layer l = i + 2 maps N^(l-1) = sizes[i] to N^l = sizes[i + 1].
    for (i, w) in sizes.windows(2).enumerate() {
        let (n_in, n_out, l) = (w[0], w[1], i + 2);
        out.push(Product {
            id: format!("{config}-fwd-l{l}"),
            role: Role::Forward,
            m: batch,
            k: n_in,
            n: n_out,
        });
    }
    for (i, w) in sizes.windows(2).enumerate().skip(1).rev() {
        // Delta^(l-1) from Delta^l W^l, for l = L..3.
        let (n_in, n_out, l) = (w[0], w[1], i + 2);
        out.push(Product {
            id: format!("{config}-eq3-l{}", l - 1),
            role: Role::Eq3,
            m: batch,
            k: n_out,
            n: n_in,
        });
    }
    for (i, w) in sizes.windows(2).enumerate().rev() {
        let (n_in, n_out, l) = (w[0], w[1], i + 2);
        out.push(Product {
            id: format!("{config}-eq1-l{l}"),
            role: Role::Eq1,
            m: n_out,
            k: batch,
            n: n_in,
        });
    }
    out
}

/// The forward products of a network computed as Z^T = W A^T ([`Role::ForwardT`]): an
/// alternative to compare with the `fwd` products, not part of the step's total.
pub fn forward_t_products(config: &str, sizes: &[usize], batch: usize) -> Vec<Product> {
    sizes
        .windows(2)
        .enumerate()
        .map(|(i, w)| Product {
            id: format!("{config}-fwdT-l{}", i + 2),
            role: Role::ForwardT,
            m: w[1],
            k: w[0],
            n: batch,
        })
        .collect()
}

/// The products of the three `backprop bench` networks, the alternative forward
/// products, then 256^3 and 512^3 squares.
pub fn all_products() -> Vec<Product> {
    let mut p = Vec::new();
    for (config, sizes, batch) in [
        ("nielsen", &[784, 30, 10][..], 10),
        ("small", &[784, 128, 64, 10], 64),
        ("wide", &[784, 1024, 1024, 10], 256),
    ] {
        p.extend(step_products(config, sizes, batch));
        p.extend(forward_t_products(config, sizes, batch));
    }
    for s in [256, 512] {
        p.push(Product {
            id: format!("square-{s}"),
            role: Role::Eq3,
            m: s,
            k: s,
            n: s,
        });
    }
    p
}

/// The plain triple loop, in f64: the reference every kernel is checked against.
pub fn naive(lhs: View<'_>, rhs: View<'_>) -> Vec<f64> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let a = lhs.get(i, p) as f64;
            for j in 0..n {
                out[i * n + j] += a * rhs.get(p, j) as f64;
            }
        }
    }
    out
}

/// Entry (i, j) of lhs rhs in f64.
pub fn entry(lhs: View<'_>, rhs: View<'_>, i: usize, j: usize) -> f64 {
    (0..lhs.cols)
        .map(|p| lhs.get(i, p) as f64 * rhs.get(p, j) as f64)
        .sum()
}

/// The largest error of `dst` against `expected`, relative to the sum of |terms| of the
/// entry (the f32 bound scales with it), over the given entries.
pub fn max_relative_error(
    lhs: View<'_>,
    rhs: View<'_>,
    dst: &[f32],
    col_major: bool,
    entries: impl Iterator<Item = (usize, usize)>,
) -> f64 {
    let (m, n) = (lhs.rows, rhs.cols);
    entries
        .map(|(i, j)| {
            let scale: f64 = (0..lhs.cols)
                .map(|p| (lhs.get(i, p) as f64 * rhs.get(p, j) as f64).abs())
                .sum();
            let got = if col_major {
                dst[j * m + i]
            } else {
                dst[i * n + j]
            };
            (got as f64 - entry(lhs, rhs, i, j)).abs() / scale.max(f64::MIN_POSITIVE)
        })
        .fold(0.0, f64::max)
}
