//! Dense row-major matrices, the storage of weights, activations and errors.

use crate::Float;

/// A dense row-major matrix: element (r, c) is `data[r * cols + c]`.
///
/// Weights W^l are stored as N^l x N^(l-1) (row j = neuron j, column k = input k: the post's
/// w^l_jk, and PyTorch's `nn.Linear` layout). A mini-batch of activations is n x N^l, one
/// example per row.
///
/// ```
/// use backprop::linalg::Matrix;
/// let m = Matrix::from_vec(2, 3, vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
/// assert_eq!(m[(1, 0)], 4.0);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix<T> {
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

impl<T: Float> Matrix<T> {
    /// A `rows x cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix {
            rows,
            cols,
            data: vec![T::zero(); rows * cols],
        }
    }

    /// Wraps row-major `data`; `None` unless `data.len() == rows * cols`.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<T>) -> Option<Self> {
        (rows.checked_mul(cols) == Some(data.len())).then_some(Matrix { rows, cols, data })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The elements in row-major order.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// The elements in row-major order, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> &[T] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// Consumes the matrix, returning its row-major elements.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }
}

impl<T> std::ops::Index<(usize, usize)> for Matrix<T> {
    type Output = T;
    fn index(&self, (r, c): (usize, usize)) -> &T {
        assert!(r < self.rows && c < self.cols, "index out of bounds");
        &self.data[r * self.cols + c]
    }
}

impl<T> std::ops::IndexMut<(usize, usize)> for Matrix<T> {
    fn index_mut(&mut self, (r, c): (usize, usize)) -> &mut T {
        assert!(r < self.rows && c < self.cols, "index out of bounds");
        &mut self.data[r * self.cols + c]
    }
}

/// A read-only strided view of a matrix: element (r, c) is `data[r * row_stride + c * col_stride]`.
///
/// Transposing a view swaps its strides and copies nothing, which is how the backward pass
/// multiplies by Delta^T and the forward pass by W^T.
///
/// ```
/// use backprop::linalg::MatRef;
/// let a = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let m = MatRef::row_major(&a, 2, 3).unwrap();
/// let t = m.t();
/// assert_eq!((t.rows(), t.cols()), (3, 2));
/// assert_eq!(t.get(2, 1), 6.0);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T: Copy> MatRef<'a, T> {
    /// A view of row-major `data` as `rows x cols`; `None` unless `data.len() >= rows * cols`.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Option<Self> {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// A view with explicit strides; `None` unless every element it addresses lies inside
    /// `data` (so the unsafe GEMM call below can never read out of bounds).
    pub fn strided(
        data: &'a [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Option<Self> {
        (extent(rows, cols, row_stride, col_stride)? <= data.len()).then_some(MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// The transpose, sharing the same elements (strides swapped, nothing copied).
    pub fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            data: self.data,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Element (r, c).
    ///
    /// # Panics
    /// If `r >= rows` or `c >= cols`.
    pub fn get(&self, r: usize, c: usize) -> T {
        assert!(r < self.rows && c < self.cols, "index out of bounds");
        self.data[r * self.row_stride + c * self.col_stride]
    }
}

impl<T: Float> Matrix<T> {
    /// A view of the whole matrix.
    pub fn view(&self) -> MatRef<'_, T> {
        MatRef {
            data: &self.data,
            rows: self.rows,
            cols: self.cols,
            row_stride: self.cols,
            col_stride: 1,
        }
    }
}

/// One past the largest offset a view addresses (0 for an empty view); `None` on overflow.
fn extent(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(row_stride)?
        .checked_add((cols - 1).checked_mul(col_stride)?)?
        .checked_add(1)
}

/// The threading for a product of `m x k` by `k x n`: `gemm`'s own Rayon threads for the
/// wide network's products (256 x 784 x 1024 and up, ~2 * 10^8 multiply-adds), none below.
///
/// PEERS.md measured on this kind of 2-core machine that a second thread paid only on the
/// wide network and slowed the small shapes down; the threshold sits between the two
/// (the small network's largest product is 64 x 784 x 128 = 6.4 * 10^6).
///
/// The network splits its large products across the pool's threads itself (two halves that
/// share nothing, see `network::backprop`), and uses this only for the products it keeps whole.
///
/// The thread count is the current rayon pool's (`RAYON_NUM_THREADS`, or a pool the caller
/// enters with `install`, e.g. for a `--threads` flag); with one thread nothing is spawned.
/// On a machine busy with other work one thread can be faster: measured here under a load
/// of ~4.5 on 2 cores, the wide step took 44 ms with 1 thread and 48-50 ms with 2.
pub fn parallelism_for(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    const THRESHOLD: usize = 32 << 20;
    let threads = rayon::current_num_threads();
    if threads > 1 && m.saturating_mul(n).saturating_mul(k) >= THRESHOLD {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// `dst = scale * lhs * rhs` (or `dst += scale * lhs * rhs` when `accumulate`), where `dst`
/// is a row-major `lhs.rows() x rhs.cols()` block and `lhs`, `rhs` are any strided views
/// (transposes included): the one matrix product of the network, done by the `gemm` crate.
///
/// Nothing is copied or allocated here; `gemm` itself packs operands into a buffer it
/// allocates per call (as every blocked GEMM does), which the allocator recycles.
///
/// # Panics
/// If the shapes do not agree (`lhs.cols() != rhs.rows()`, or `dst` shorter than
/// `lhs.rows() * rhs.cols()`): a programming error inside the crate, never bad user input.
///
/// ```
/// use backprop::linalg::{matmul, MatRef};
/// // [1 2; 3 4] * [5 6; 7 8]^T = [17 23; 39 53]
/// let a = [1.0f64, 2.0, 3.0, 4.0];
/// let b = [5.0f64, 6.0, 7.0, 8.0];
/// let mut c = [0.0; 4];
/// let (a, b) = (MatRef::row_major(&a, 2, 2).unwrap(), MatRef::row_major(&b, 2, 2).unwrap());
/// matmul(&mut c, a, b.t(), 1.0, false);
/// assert_eq!(c, [17.0, 23.0, 39.0, 53.0]);
/// ```
pub fn matmul<T: Float>(
    dst: &mut [T],
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    scale: T,
    accumulate: bool,
) {
    let par = parallelism_for(lhs.rows, rhs.cols, lhs.cols);
    matmul_with(dst, lhs, rhs, scale, accumulate, par);
}

/// [`matmul`] with the threading chosen by the caller: `Parallelism::None` for a product
/// that is itself one half of work already split across the pool's threads.
pub(crate) fn matmul_with<T: Float>(
    dst: &mut [T],
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    scale: T,
    accumulate: bool,
    par: gemm::Parallelism,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "matmul: inner dimensions differ");
    assert!(dst.len() >= m * n, "matmul: destination too short");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(T::zero());
        }
        return;
    }
    let as_isize = |s: usize| isize::try_from(s).expect("stride fits isize");
    // SAFETY: `lhs` and `rhs` were built by `MatRef::strided`/`row_major`/`view`, which check
    // that every offset (r * row_stride + c * col_stride, r < rows, c < cols) lies inside
    // their slices, and `t()` preserves that; so gemm reads only inside `lhs.data` and
    // `rhs.data`. `dst` is a row-major m x n block (dst_rs = n, dst_cs = 1) and the assert
    // above proves `dst.len() >= m * n`, so every write is in bounds, and distinct (r, c)
    // map to distinct offsets, so no two threads write the same element. `dst` is a unique
    // `&mut` borrow, so it cannot alias the shared `lhs`/`rhs`. `T: Float` is implemented
    // only for f32 and f64, both of which gemm supports (it panics, not UB, otherwise).
    // The test `linalg_matmul_every_transposition` exercises all four layouts.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            as_isize(n),
            accumulate,
            lhs.data.as_ptr(),
            as_isize(lhs.col_stride),
            as_isize(lhs.row_stride),
            rhs.data.as_ptr(),
            as_isize(rhs.col_stride),
            as_isize(rhs.row_stride),
            T::one(),
            scale,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Vec<f64> {
        let mut c = vec![0.0; a.rows() * b.cols()];
        for i in 0..a.rows() {
            for j in 0..b.cols() {
                for p in 0..a.cols() {
                    c[i * b.cols() + j] += a.get(i, p) * b.get(p, j);
                }
            }
        }
        c
    }

    #[test]
    fn linalg_matmul_every_transposition() {
        // Shapes large enough to cross gemm's blocking (and, for the last, its threading).
        for &(m, k, n) in &[(3, 5, 4), (17, 33, 9), (64, 130, 70), (300, 400, 300)] {
            let a: Vec<f64> = (0..m * k).map(|i| ((i * 7 % 13) as f64) - 6.0).collect();
            let b: Vec<f64> = (0..k * n)
                .map(|i| ((i * 5 % 11) as f64) * 0.5 - 2.0)
                .collect();
            // Stored as A (m x k) and A^T (k x m), B (k x n) and B^T (n x k).
            let at: Vec<f64> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let a_v = MatRef::row_major(&a, m, k).unwrap();
            let b_v = MatRef::row_major(&b, k, n).unwrap();
            let want = naive(a_v, b_v);
            let lhs = [a_v, MatRef::row_major(&at, k, m).unwrap().t()];
            let rhs = [b_v, MatRef::row_major(&bt, n, k).unwrap().t()];
            for l in lhs {
                for r in rhs {
                    let mut c = vec![1.0; m * n];
                    matmul(&mut c, l, r, 1.0, false);
                    assert_eq!(c, want, "{m}x{k}x{n}");
                    // accumulate with a scale: c = want + 0.5 want
                    matmul(&mut c, l, r, 0.5, true);
                    for (x, w) in c.iter().zip(&want) {
                        assert_eq!(*x, 1.5 * w);
                    }
                }
            }
        }
    }

    #[test]
    fn linalg_views_reject_out_of_bounds() {
        let a = [0.0f64; 6];
        assert!(MatRef::row_major(&a, 2, 3).is_some());
        assert!(MatRef::row_major(&a, 3, 3).is_none());
        assert!(MatRef::strided(&a, 2, 3, 1, 2).is_some()); // a transposed 3 x 2
        assert!(MatRef::strided(&a, 2, 3, 1, 3).is_none());
        assert!(MatRef::strided(&a, usize::MAX, 2, usize::MAX, 1).is_none());
        assert!(MatRef::row_major(&a, 0, 100).is_some());
    }

    #[test]
    #[should_panic(expected = "inner dimensions")]
    fn linalg_matmul_rejects_mismatched_shapes() {
        let a = [0.0f64; 6];
        let v = MatRef::row_major(&a, 2, 3).unwrap();
        let mut c = [0.0; 4];
        matmul(&mut c, v, v, 1.0, false);
    }
}
