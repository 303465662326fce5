//! Shapes: dimensions, row-major strides, NumPy broadcasting, and [`sum_to`], the one place
//! where broadcasting is undone.

use std::fmt;

use smallvec::SmallVec;

/// Dimensions or strides, inline up to rank 4 (more spill to the heap): a shape is made for
/// every node of every step, and should not cost an allocation.
pub(crate) type Dims = SmallVec<[usize; 4]>;

/// The dimensions of a tensor, outermost first (row-major: the last axis is contiguous).
///
/// A shape of rank 0 (`[]`) holds one number, a scalar.
///
/// ```
/// use backprop::tensor::Shape;
/// let s = Shape::new(&[2, 3, 4]);
/// assert_eq!((s.rank(), s.numel()), (3, 24));
/// assert_eq!(s.strides(), [12, 4, 1]);
/// // NumPy broadcasting: align on the right, a 1 stretches to the other side's size.
/// assert_eq!(s.broadcast(&Shape::new(&[3, 1])), Some(Shape::new(&[2, 3, 4])));
/// assert_eq!(s.broadcast(&Shape::new(&[2, 4])), None);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Dims);

impl Shape {
    /// The shape with these dimensions.
    pub fn new(dims: &[usize]) -> Self {
        Shape(Dims::from_slice(dims))
    }

    /// The shape of a scalar, `[]`.
    pub fn scalar() -> Self {
        Shape(Dims::new())
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// The number of axes.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The number of elements (1 for a scalar).
    ///
    /// # Panics
    /// If the product overflows `usize` (shapes made by [`Tensor`](super::Tensor) constructors
    /// are checked, see [`Shape::checked_numel`]).
    pub fn numel(&self) -> usize {
        self.checked_numel()
            .expect("shape has more than usize::MAX elements")
    }

    /// The number of elements, or `None` if it overflows `usize`.
    pub fn checked_numel(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// Row-major strides: how far apart, in elements, neighbours along each axis are.
    pub fn strides(&self) -> Vec<usize> {
        self.row_strides().to_vec()
    }

    /// [`Shape::strides`], without allocating.
    pub(crate) fn row_strides(&self) -> Dims {
        let mut s: Dims = smallvec::smallvec![1; self.rank()];
        for i in (0..self.rank().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.0[i + 1];
        }
        s
    }

    /// The shape with one more axis, innermost.
    pub(crate) fn push(&mut self, dim: usize) {
        self.0.push(dim);
    }

    /// Sets axis `axis` to `dim`.
    pub(crate) fn set(&mut self, axis: usize, dim: usize) {
        self.0[axis] = dim;
    }

    /// The shape both `self` and `other` broadcast to (NumPy and PyTorch rules: align the
    /// dimensions on the right; each pair must be equal or contain a 1), or `None`.
    pub fn broadcast(&self, other: &Shape) -> Option<Shape> {
        let rank = self.rank().max(other.rank());
        let dim = |s: &Shape, i: usize| {
            // Axis i of the result, counted from the left of the longer shape.
            (i + s.rank()).checked_sub(rank).map_or(1, |j| s.0[j])
        };
        (0..rank)
            .map(|i| match (dim(self, i), dim(other, i)) {
                (a, b) if a == b => Some(a),
                (1, b) => Some(b),
                (a, 1) => Some(a),
                _ => None,
            })
            .collect::<Option<Dims>>()
            .map(Shape)
    }

    /// Whether `self` broadcasts to `to` without changing `to`.
    pub fn broadcasts_to(&self, to: &Shape) -> bool {
        self.broadcast(to).as_ref() == Some(to)
    }

    /// The strides of `self` laid over the larger shape `to` it broadcasts to: one per axis
    /// of `to`, 0 where `self` is stretched (a 1, or an axis it does not have).
    pub(crate) fn strides_over(&self, to: &Shape) -> Dims {
        debug_assert!(self.broadcasts_to(to), "{self} does not broadcast to {to}");
        let own = self.row_strides();
        let skip = to.rank() - self.rank();
        (0..to.rank())
            .map(|i| match i.checked_sub(skip) {
                Some(j) if self.0[j] != 1 => own[j],
                _ => 0,
            })
            .collect()
    }

    /// The shape with the axes in `axes` set to 1 (a reduction with `keepdim`).
    pub(crate) fn keepdim(&self, axes: &[usize]) -> Shape {
        let mut d = self.0.clone();
        axes.iter().for_each(|&a| d[a] = 1);
        Shape(d)
    }

    /// The shape without the axes in `axes` (a reduction without `keepdim`).
    pub(crate) fn without(&self, axes: &[usize]) -> Shape {
        Shape(
            self.0
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect(),
        )
    }

    /// (product of the axes before `axis`, the axis, product of the axes after): the shape
    /// seen as three axes, for ops that work along one axis.
    pub(crate) fn around(&self, axis: usize) -> (usize, usize, usize) {
        let outer = self.0[..axis].iter().product();
        let inner = self.0[axis + 1..].iter().product();
        (outer, self.0[axis], inner)
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape::new(d)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape::new(&d)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape::new(&d)
    }
}

impl FromIterator<usize> for Shape {
    fn from_iter<I: IntoIterator<Item = usize>>(dims: I) -> Self {
        Shape(dims.into_iter().collect())
    }
}

impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

/// Visits every index of `dims` in row-major order, calling `f` with the offsets that `N`
/// stride sets give it: `f([Σ i_d s0_d, Σ i_d s1_d, ...])`. The innermost axis is a plain loop.
/// This is how broadcast operands, reductions and permutations are walked without copies.
pub(crate) fn walk<const N: usize>(
    dims: &[usize],
    strides: [&[usize]; N],
    mut f: impl FnMut([usize; N]),
) {
    if dims.contains(&0) {
        return;
    }
    let r = dims.len();
    if r == 0 {
        f([0; N]);
        return;
    }
    let last = dims[r - 1];
    let step: [usize; N] = std::array::from_fn(|k| strides[k][r - 1]);
    let mut idx: Dims = smallvec::smallvec![0; r];
    let mut off = [0usize; N];
    loop {
        for j in 0..last {
            f(std::array::from_fn(|k| off[k] + j * step[k]));
        }
        // Carry into the outer axes, odometer fashion.
        let mut d = r - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            for k in 0..N {
                off[k] += strides[k][d];
            }
            if idx[d] < dims[d] {
                break;
            }
            for k in 0..N {
                off[k] -= strides[k][d] * dims[d];
            }
            idx[d] = 0;
        }
    }
}

/// Undoes broadcasting: sums `g` (of shape `from`) over every axis along which `to` was
/// stretched to `from`, giving a gradient of shape `to`.
///
/// If y = f(broadcast(x)), each element of x was used once per copy, so its gradient is the
/// sum over the copies. Every op's vector-Jacobian product may return a gradient in the
/// broadcast shape; the reverse pass calls this, and nothing else reduces broadcasts.
///
/// # Panics
/// If `to` does not broadcast to `from`, or `g.len() != from.numel()`.
///
/// ```
/// use backprop::tensor::{sum_to, Shape};
/// // b of shape [3] was added to every row of a [2, 3]: db = column sums of g.
/// let g = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0];
/// assert_eq!(sum_to(&g, &Shape::new(&[2, 3]), &Shape::new(&[3])), [11.0, 22.0, 33.0]);
/// assert_eq!(sum_to(&g, &Shape::new(&[2, 3]), &Shape::new(&[2, 1])), [6.0, 60.0]);
/// ```
pub fn sum_to<T: crate::Float>(g: &[T], from: &Shape, to: &Shape) -> Vec<T> {
    assert!(
        to.broadcasts_to(from),
        "sum_to: {to} does not broadcast to {from}"
    );
    let mut out = vec![T::zero(); to.numel()];
    sum_to_into(g, from, to, &mut out);
    out
}

/// [`sum_to`] into `out`, which holds `to.numel()` elements (overwritten).
pub(crate) fn sum_to_into<T: crate::Float>(g: &[T], from: &Shape, to: &Shape, out: &mut [T]) {
    assert!(
        to.broadcasts_to(from),
        "sum_to: {to} does not broadcast to {from}"
    );
    assert_eq!(
        g.len(),
        from.numel(),
        "sum_to: {} values for {from}",
        g.len()
    );
    if from == to {
        out.copy_from_slice(g);
        return;
    }
    out.fill(T::zero());
    if from.dims().ends_with(to.dims()) && !out.is_empty() {
        // Summed over leading axes only (a bias's gradient): add the rows, in the same
        // order as the general walk below.
        for row in g.chunks_exact(out.len()) {
            out.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
        }
        return;
    }
    let (src, dst) = (from.row_strides(), to.strides_over(from));
    walk(from.dims(), [&src, &dst], |[i, o]| out[o] += g[i]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_visits_row_major_with_broadcast_strides() {
        let mut seen = Vec::new();
        walk(&[2, 3], [&[3, 1], &[0, 1]], |[i, b]| seen.push((i, b)));
        assert_eq!(seen, [(0, 0), (1, 1), (2, 2), (3, 0), (4, 1), (5, 2)]);
        let mut n = 0;
        walk(&[], [&[]], |_| n += 1);
        assert_eq!(n, 1);
        walk(&[3, 0], [&[0, 1]], |_| n += 1);
        assert_eq!(n, 1);
    }

    #[test]
    fn sum_to_a_suffix_adds_the_rows_and_other_broadcasts_walk() {
        let g: Vec<f64> = (0..24).map(|i| i as f64).collect();
        let from = Shape::new(&[2, 3, 4]);
        // Over the two leading axes (the fast path): column j gets Σ_i g[4 i + j].
        let want: Vec<f64> = (0..4)
            .map(|j| (0..6).map(|i| (4 * i + j) as f64).sum())
            .collect();
        assert_eq!(sum_to(&g, &from, &Shape::new(&[4])), want);
        assert_eq!(sum_to(&g, &from, &Shape::new(&[1, 1, 4])), want);
        // [3, 4] is a suffix too; [2, 1, 4] is not (the general walk).
        let rows: Vec<f64> = (0..12).map(|i| g[i] + g[i + 12]).collect();
        assert_eq!(sum_to(&g, &from, &Shape::new(&[3, 4])), rows);
        let mid: Vec<f64> = (0..2)
            .flat_map(|a| (0..4).map(move |j| (0..3).map(|b| (12 * a + 4 * b + j) as f64).sum()))
            .collect();
        assert_eq!(sum_to(&g, &from, &Shape::new(&[2, 1, 4])), mid);
    }

    #[test]
    fn broadcast_rules() {
        let s = |d: &[usize]| Shape::new(d);
        assert_eq!(s(&[]).broadcast(&s(&[2, 3])), Some(s(&[2, 3])));
        assert_eq!(s(&[4, 1, 3]).broadcast(&s(&[5, 1])), Some(s(&[4, 5, 3])));
        assert_eq!(s(&[0]).broadcast(&s(&[1])), Some(s(&[0])));
        assert_eq!(s(&[2]).broadcast(&s(&[3])), None);
        assert_eq!(
            s(&[4, 1, 3]).strides_over(&s(&[2, 4, 5, 3])).as_slice(),
            [0, 3, 0, 1]
        );
    }
}
