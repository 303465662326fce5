//! [`Tensor`]: an owned, row-major N-dimensional array, and the plain (non-differentiated)
//! kernels the op table is written in.

use super::shape::{sum_to, walk, Shape};
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
        for ((&i, &d), s) in index.iter().zip(self.dims()).zip(self.shape.strides()) {
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

    /// `self` stretched to `to` (which it must broadcast to), copying.
    pub(crate) fn broadcast_to(&self, to: &Shape) -> Self {
        if &self.shape == to {
            return self.clone();
        }
        let s = self.shape.strides_over(to);
        let mut data = Vec::with_capacity(to.numel());
        walk(to.dims(), [&s], |[i]| data.push(self.data[i]));
        Tensor {
            shape: to.clone(),
            data,
        }
    }

    /// [`sum_to`] as a tensor: the gradient of a broadcast, summed back to shape `to`.
    pub(crate) fn sum_to(&self, to: &Shape) -> Self {
        Tensor {
            data: sum_to(&self.data, &self.shape, to),
            shape: to.clone(),
        }
    }

    /// `f(a, b)` elementwise over the broadcast of the two shapes (checked by the caller).
    pub(crate) fn zip_broadcast(a: &Self, b: &Self, out: &Shape, f: impl Fn(T, T) -> T) -> Self {
        // A suffix of the other's shape (a bias added to every row) repeats row by row.
        let suffix = |s: &Shape, of: &Shape| of.dims().ends_with(s.dims()) && s.numel() > 0;
        let data = if &a.shape == out && &b.shape == out {
            a.data.iter().zip(&b.data).map(|(&x, &y)| f(x, y)).collect()
        } else if &a.shape == out && suffix(&b.shape, out) {
            let k = b.data.len();
            let rows = a.data.chunks_exact(k);
            rows.flat_map(|r| r.iter().zip(&b.data).map(|(&x, &y)| f(x, y)))
                .collect()
        } else if &b.shape == out && suffix(&a.shape, out) {
            let k = a.data.len();
            let rows = b.data.chunks_exact(k);
            rows.flat_map(|r| a.data.iter().zip(r).map(|(&x, &y)| f(x, y)))
                .collect()
        } else {
            let (sa, sb) = (a.shape.strides_over(out), b.shape.strides_over(out));
            let mut data = Vec::with_capacity(out.numel());
            walk(out.dims(), [&sa, &sb], |[i, j]| {
                data.push(f(a.data[i], b.data[j]))
            });
            data
        };
        Tensor {
            shape: out.clone(),
            data,
        }
    }

    /// The axes permuted: axis `i` of the result is axis `perm[i]` of `self` (checked by the
    /// caller).
    pub(crate) fn permute_unchecked(&self, perm: &[usize]) -> Self {
        let dims: Vec<usize> = perm.iter().map(|&p| self.dims()[p]).collect();
        let own = self.shape.strides();
        let s: Vec<usize> = perm.iter().map(|&p| own[p]).collect();
        let mut data = Vec::with_capacity(self.numel());
        walk(&dims, [&s], |[i]| data.push(self.data[i]));
        Tensor {
            shape: Shape::from(dims),
            data,
        }
    }

    /// The maximum over the axes that `keep` has as 1 (a keepdim reduction).
    pub(crate) fn max_to(&self, keep: &Shape) -> Self {
        let mut out = Tensor::full(keep.clone(), T::neg_infinity());
        let (src, dst) = (self.shape.strides(), keep.strides_over(&self.shape));
        walk(self.dims(), [&src, &dst], |[i, o]| {
            if self.data[i] > out.data[o] {
                out.data[o] = self.data[i];
            }
        });
        out
    }

    /// Elements `start..start + len` along `axis` (checked by the caller).
    pub(crate) fn narrow_unchecked(&self, axis: usize, start: usize, len: usize) -> Self {
        let (outer, dim, inner) = self.shape.around(axis);
        let mut dims = self.dims().to_vec();
        dims[axis] = len;
        let mut data = Vec::with_capacity(outer * len * inner);
        for o in 0..outer {
            let base = (o * dim + start) * inner;
            data.extend_from_slice(&self.data[base..base + len * inner]);
        }
        Tensor {
            shape: Shape::from(dims),
            data,
        }
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
