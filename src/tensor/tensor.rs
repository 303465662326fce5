//! [`Tensor`]: an owned, row-major N-dimensional array, and the plain (non-differentiated)
//! kernels the op table is written in.

use super::pool::Pool;
use super::shape::Dims;
use super::shape::{sum_to_into, walk, Shape};
use super::TensorError;
use crate::linalg::{matmul, MatRef};
use crate::Float;

/// An N-dimensional array of `f32` or `f64`: a [`Shape`] and its elements in row-major order.
///
/// It is a plain value: the tape stores one per node, and gradients come back as tensors.
///
/// ```
/// use backprop::tensor::Tensor;
/// let t = Tensor::from_vec([2, 3], vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
/// assert_eq!(t.dims(), [2, 3]);
/// assert_eq!(t.get(&[1, 0]), 4.0);
/// assert!(Tensor::from_vec([2, 2], vec![1.0f64]).is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<T> {
    shape: Shape,
    data: Vec<T>,
}

impl<T: Float> Tensor<T> {
    /// Wraps row-major `data` as a tensor of shape `dims`; an error unless the lengths agree.
    pub fn from_vec(dims: impl Into<Shape>, data: Vec<T>) -> Result<Self, TensorError> {
        let shape = dims.into();
        match shape.checked_numel() {
            Some(n) if n == data.len() => Ok(Tensor { shape, data }),
            _ => Err(TensorError::DataLength {
                shape,
                len: data.len(),
            }),
        }
    }

    /// A tensor from a shape and data of its length (checked by the caller).
    pub(crate) fn from_parts(shape: Shape, data: Vec<T>) -> Self {
        debug_assert_eq!(shape.checked_numel(), Some(data.len()));
        Tensor { shape, data }
    }

    /// A tensor of shape `dims` with element `i` (row-major) equal to `f(i)`.
    ///
    /// # Panics
    /// If the number of elements overflows `usize`.
    ///
    /// ```
    /// use backprop::tensor::Tensor;
    /// let t = Tensor::from_fn([2, 2], |i| i as f64);
    /// assert_eq!(t.as_slice(), [0.0, 1.0, 2.0, 3.0]);
    /// ```
    pub fn from_fn(dims: impl Into<Shape>, f: impl FnMut(usize) -> T) -> Self {
        let shape = dims.into();
        let data = (0..shape.numel()).map(f).collect();
        Tensor { shape, data }
    }

    /// A tensor of shape `dims` filled with `value`.
    ///
    /// # Panics
    /// If the number of elements overflows `usize`.
    pub fn full(dims: impl Into<Shape>, value: T) -> Self {
        let shape = dims.into();
        let data = vec![value; shape.numel()];
        Tensor { shape, data }
    }

    /// A tensor of zeros.
    ///
    /// # Panics
    /// If the number of elements overflows `usize`.
    pub fn zeros(dims: impl Into<Shape>) -> Self {
        Self::full(dims, T::zero())
    }

    /// A tensor of ones.
    ///
    /// # Panics
    /// If the number of elements overflows `usize`.
    pub fn ones(dims: impl Into<Shape>) -> Self {
        Self::full(dims, T::one())
    }

    /// One-hot rows: shape `[labels.len(), k]`, row r has a 1 at `labels[r]` (targets for the
    /// log-likelihood, C = -ln a_y). An error if a label is not below `k`.
    ///
    /// ```
    /// use backprop::tensor::Tensor;
    /// let y = Tensor::<f64>::one_hot(&[2, 0], 3).unwrap();
    /// assert_eq!(y.as_slice(), [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    /// assert!(Tensor::<f64>::one_hot(&[3], 3).is_err());
    /// ```
    pub fn one_hot(labels: &[usize], k: usize) -> Result<Self, TensorError> {
        if let Some(&index) = labels.iter().find(|&&l| l >= k) {
            return Err(TensorError::Index { index, len: k });
        }
        let shape = Shape::new(&[labels.len(), k]);
        shape.checked_numel().ok_or(TensorError::TooLarge)?;
        let mut t = Tensor::zeros(shape);
        for (r, &l) in labels.iter().enumerate() {
            t.data[r * k + l] = T::one();
        }
        Ok(t)
    }

    /// A rank-0 tensor holding `value`.
    pub fn scalar(value: T) -> Self {
        Tensor {
            shape: Shape::scalar(),
            data: vec![value],
        }
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The elements in row-major order.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// The elements in row-major order, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// The elements in row-major order.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    /// The one element of a tensor with one element (a scalar, or `[1, 1]`, ...).
    ///
    /// # Panics
    /// If the tensor does not hold exactly one element.
    pub fn item(&self) -> T {
        assert_eq!(
            self.numel(),
            1,
            "item() of a tensor of shape {}",
            self.shape
        );
        self.data[0]
    }

    /// The element at multi-index `index`.
    ///
    /// # Panics
    /// If `index` has the wrong length or is out of range.
    pub fn get(&self, index: &[usize]) -> T {
        assert_eq!(index.len(), self.shape.rank(), "index rank");
        let mut off = 0;
        for ((&i, &d), s) in index.iter().zip(self.dims()).zip(self.shape.row_strides()) {
            assert!(i < d, "index {index:?} out of range for {}", self.shape);
            off += i * s;
        }
        self.data[off]
    }

    /// The same elements converted to another precision.
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        Tensor {
            shape: self.shape.clone(),
            data: self
                .data
                .iter()
                .map(|&x| U::from_f64(Float::to_f64(x)))
                .collect(),
        }
    }

    /// `f` applied to every element.
    pub fn map(&self, f: impl Fn(T) -> T) -> Self {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(|&x| f(x)).collect(),
        }
    }

    /// The largest |a - b| over the elements (infinite if the shapes differ).
    pub fn max_abs_diff(&self, other: &Tensor<T>) -> f64 {
        if self.shape != other.shape {
            return f64::INFINITY;
        }
        self.data
            .iter()
            .zip(&other.data)
            .map(|(&a, &b)| (Float::to_f64(a) - Float::to_f64(b)).abs())
            .fold(0.0, f64::max)
    }

    /// The same elements with shape `dims`; an error unless the element counts agree.
    ///
    /// ```
    /// use backprop::tensor::Tensor;
    /// let t = Tensor::from_fn([2, 3], |i| i as f32).reshape([3, 2]).unwrap();
    /// assert_eq!(t.get(&[2, 0]), 4.0);
    /// ```
    pub fn reshape(self, dims: impl Into<Shape>) -> Result<Self, TensorError> {
        let to = dims.into();
        if to.checked_numel() != Some(self.numel()) {
            return Err(TensorError::Reshape {
                from: self.shape,
                to,
            });
        }
        Ok(Tensor {
            shape: to,
            data: self.data,
        })
    }

    /// `self` stretched to `to` (which it must broadcast to), copying into a buffer from
    /// `pool`.
    pub(crate) fn broadcast_to(&self, to: &Shape, pool: &mut Pool<T>) -> Self {
        let mut out = pool.take(to);
        let s = self.shape.strides_over(to);
        let mut n = 0;
        walk(to.dims(), [&s], |[i]| {
            out.data[n] = self.data[i];
            n += 1;
        });
        out
    }

    /// [`sum_to`](super::sum_to) as a tensor: the gradient of a broadcast, summed back to
    /// shape `to`, in a buffer from `pool`.
    pub(crate) fn sum_to(&self, to: &Shape, pool: &mut Pool<T>) -> Self {
        let mut out = pool.take(to);
        sum_to_into(&self.data, &self.shape, to, &mut out.data);
        out
    }

    /// `f(a, b)` elementwise over the broadcast of the two shapes (checked by the caller), in
    /// a buffer from `pool`.
    pub(crate) fn zip_broadcast(
        a: &Self,
        b: &Self,
        out: &Shape,
        f: impl Fn(T, T) -> T,
        pool: &mut Pool<T>,
    ) -> Self {
        let mut z = pool.take(out);
        let data = &mut z.data;
        // A suffix of the other's shape (a bias added to every row) repeats row by row.
        let suffix = |s: &Shape, of: &Shape| of.dims().ends_with(s.dims()) && s.numel() > 0;
        if &a.shape == out && &b.shape == out {
            let zs = data.iter_mut().zip(a.data.iter().zip(&b.data));
            zs.for_each(|(z, (&x, &y))| *z = f(x, y));
        } else if &a.shape == out && suffix(&b.shape, out) {
            let k = b.data.len();
            for (zr, r) in data.chunks_exact_mut(k).zip(a.data.chunks_exact(k)) {
                let zs = zr.iter_mut().zip(r.iter().zip(&b.data));
                zs.for_each(|(z, (&x, &y))| *z = f(x, y));
            }
        } else if &b.shape == out && suffix(&a.shape, out) {
            let k = a.data.len();
            for (zr, r) in data.chunks_exact_mut(k).zip(b.data.chunks_exact(k)) {
                let zs = zr.iter_mut().zip(a.data.iter().zip(r));
                zs.for_each(|(z, (&x, &y))| *z = f(x, y));
            }
        } else {
            let (sa, sb) = (a.shape.strides_over(out), b.shape.strides_over(out));
            let mut n = 0;
            walk(out.dims(), [&sa, &sb], |[i, j]| {
                data[n] = f(a.data[i], b.data[j]);
                n += 1;
            });
        }
        z
    }

    /// The axes permuted: axis `i` of the result is axis `perm[i]` of `self` (checked by the
    /// caller), in a buffer from `pool`.
    pub(crate) fn permute_unchecked(&self, perm: &[usize], pool: &mut Pool<T>) -> Self {
        let shape = Shape::from_iter(perm.iter().map(|&p| self.dims()[p]));
        let own = self.shape.row_strides();
        let s: Dims = perm.iter().map(|&p| own[p]).collect();
        let mut out = pool.take(&shape);
        let mut n = 0;
        walk(shape.dims(), [&s], |[i]| {
            out.data[n] = self.data[i];
            n += 1;
        });
        out
    }

    /// The maximum over the axes that `keep` has as 1 (a keepdim reduction).
    pub(crate) fn max_to(&self, keep: &Shape, pool: &mut Pool<T>) -> Self {
        let mut out = pool.full(keep, T::neg_infinity());
        let (src, dst) = (self.shape.row_strides(), keep.strides_over(&self.shape));
        walk(self.dims(), [&src, &dst], |[i, o]| {
            if self.data[i] > out.data[o] {
                out.data[o] = self.data[i];
            }
        });
        out
    }

    /// Elements `start..start + len` along `axis` (checked by the caller), in a buffer from
    /// `pool`.
    pub(crate) fn narrow_unchecked(
        &self,
        axis: usize,
        start: usize,
        len: usize,
        pool: &mut Pool<T>,
    ) -> Self {
        let (outer, dim, inner) = self.shape.around(axis);
        let mut shape = self.shape.clone();
        shape.set(axis, len);
        let mut out = pool.take(&shape);
        let block = len * inner;
        for (o, dst) in out
            .data
            .chunks_exact_mut(block.max(1))
            .enumerate()
            .take(outer)
        {
            let base = (o * dim + start) * inner;
            dst.copy_from_slice(&self.data[base..base + block]);
        }
        out
    }

    /// Adds `src` into elements `start..start + src.dims()[axis]` along `axis` (the reverse of
    /// [`Tensor::narrow_unchecked`]).
    pub(crate) fn add_narrow(&mut self, axis: usize, start: usize, src: &Self) {
        let (outer, dim, inner) = self.shape.around(axis);
        let len = src.dims()[axis];
        for o in 0..outer {
            let base = (o * dim + start) * inner;
            let from = &src.data[o * len * inner..(o + 1) * len * inner];
            for (d, &s) in self.data[base..base + len * inner].iter_mut().zip(from) {
                *d += s;
            }
        }
    }

    /// Rows along the last axis: (number of rows, row length). A scalar is one row of one.
    pub(crate) fn rows(&self) -> (usize, usize) {
        let k = self.dims().last().copied().unwrap_or(1);
        (self.numel().checked_div(k).unwrap_or(0), k)
    }

    /// `self += other`, same shapes.
    pub(crate) fn add_assign(&mut self, other: &Self) {
        debug_assert_eq!(self.shape, other.shape);
        for (a, &b) in self.data.iter_mut().zip(&other.data) {
            *a += b;
        }
    }
}

/// The batch axes and the trailing matrix of a tensor of rank >= 2: (batch shape, rows, cols).
pub(crate) fn split_matrix(s: &Shape) -> (Shape, usize, usize) {
    let d = s.dims();
    let r = d.len();
    (Shape::new(&d[..r - 2]), d[r - 2], d[r - 1])
}

/// Batched matrix product, accumulating: for every index of the batch shape `batch`,
/// `dst_b += op(lhs_b) op(rhs_b)`, where op transposes when the flag is set and each operand's
/// own batch axes broadcast over `batch`. A `dst` with fewer batch axes than `batch` receives
/// the sum over the missing ones, which is how a weight shared by a batch gets its gradient.
///
/// Every product goes through [`crate::linalg::matmul`]; transposes are strided views. Two
/// common layouts are folded into one product instead of a loop over the batch: a batched lhs
/// times a 2-D rhs (`(B, T, K) x (K, N)`: the rows of all batches stacked), and the sum over a
/// batch of `lhs_b^T rhs_b` into a 2-D dst (`dW = X^T G` with the batch as the inner dimension).
pub(crate) fn bmm_acc<T: Float>(
    dst: &mut Tensor<T>,
    lhs: &Tensor<T>,
    lt: bool,
    rhs: &Tensor<T>,
    rt: bool,
    batch: &Shape,
) {
    let (lb, lr, lc) = split_matrix(&lhs.shape);
    let (rb, rr, rc) = split_matrix(&rhs.shape);
    let (db, dr, dc) = split_matrix(&dst.shape);
    fn view<T: Float>(t: &Tensor<T>, off: usize, r: usize, c: usize, tr: bool) -> MatRef<'_, T> {
        let m = MatRef::row_major(&t.data[off..off + r * c], r, c).expect("block in bounds");
        if tr {
            m.t()
        } else {
            m
        }
    }
    let one = T::one();
    if rb.rank() == 0 && !lt && &lb == batch && &db == batch {
        let rows = batch.numel() * lr;
        let l = view(lhs, 0, rows, lc, false);
        matmul(&mut dst.data, l, view(rhs, 0, rr, rc, rt), one, true);
        return;
    }
    if db.rank() == 0 && lt && !rt && &lb == batch && &rb == batch {
        let rows = batch.numel() * lr;
        let l = view(lhs, 0, rows, lc, true);
        matmul(&mut dst.data, l, view(rhs, 0, rows, rc, false), one, true);
        return;
    }
    let (sl, sr, sd) = (
        lb.strides_over(batch),
        rb.strides_over(batch),
        db.strides_over(batch),
    );
    let (ml, mr, md) = (lr * lc, rr * rc, dr * dc);
    walk(batch.dims(), [&sl, &sr, &sd], |[l, r, d]| {
        let (a, b) = (view(lhs, l * ml, lr, lc, lt), view(rhs, r * mr, rr, rc, rt));
        matmul(&mut dst.data[d * md..(d + 1) * md], a, b, one, true);
    });
}
