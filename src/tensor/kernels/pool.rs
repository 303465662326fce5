//! 2-D max and average pooling (PyTorch's `max_pool2d` and `avg_pool2d`, NCHW).
//!
//! Max pooling saves, for each output, the position of its window's maximum, so the
//! backward is a scatter: the whole gradient goes to that one input. On ties the FIRST
//! maximum in the window's row-major scan wins (a later equal value does not replace it),
//! which is PyTorch's rule; with inputs full of exact zeros (MNIST's background) this
//! decides where every gradient of an all-zero window goes.

use super::{checked_product, window_count, KernelError};
use crate::Float;
use rayon::prelude::*;

/// The sizes of one pooling: input `(N, C, H, W)`, kernel `(kH, kW)`, stride `(sh, sw)`,
/// padding `(ph, pw)` at most half the kernel (as PyTorch requires), output
/// `(N, C, OH, OW)` with `OH = floor((H + 2 ph - kH) / sh) + 1`.
///
/// ```
/// use backprop::tensor::kernels::Pool2dShape;
/// let s = Pool2dShape::new([64, 6, 28, 28], [2, 2], [2, 2], [0, 0]).unwrap();
/// assert_eq!(s.output_dims(), [64, 6, 14, 14]);
/// assert!(Pool2dShape::new([1, 1, 4, 4], [2, 2], [2, 2], [2, 0]).is_err()); // pad > k / 2
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dShape {
    planes: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    oh: usize,
    ow: usize,
    dims: [usize; 4],
}

impl Pool2dShape {
    /// Checks the sizes: all positive, padding at most half the kernel, lengths free of overflow.
    pub fn new(
        input: [usize; 4],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<Self, KernelError> {
        const OP: &str = "pool2d";
        if input.contains(&0) {
            return Err(KernelError::new(
                OP,
                format!("input {input:?} needs positive sizes"),
            ));
        }
        for axis in 0..2 {
            if padding[axis] > kernel[axis] / 2 {
                return Err(KernelError::new(
                    OP,
                    format!(
                        "padding {:?} must be at most half the kernel {kernel:?}",
                        padding
                    ),
                ));
            }
        }
        let [n, c, h, w] = input;
        let oh = window_count(OP, "height", h, kernel[0], stride[0], padding[0])?;
        let ow = window_count(OP, "width", w, kernel[1], stride[1], padding[1])?;
        let planes = checked_product(OP, &[n, c])?;
        checked_product(OP, &input)?;
        checked_product(OP, &[planes, oh, ow])?;
        Ok(Pool2dShape {
            planes,
            h,
            w,
            kh: kernel[0],
            kw: kernel[1],
            sh: stride[0],
            sw: stride[1],
            ph: padding[0],
            pw: padding[1],
            oh,
            ow,
            dims: input,
        })
    }

    /// `[N, C, H, W]`.
    pub fn input_dims(&self) -> [usize; 4] {
        self.dims
    }

    /// `[N, C, OH, OW]`.
    pub fn output_dims(&self) -> [usize; 4] {
        [self.dims[0], self.dims[1], self.oh, self.ow]
    }

    /// Whether these are `MaxPool2d(2)`'s windows: 2x2 at stride 2, no padding.
    pub fn is_2x2(&self) -> bool {
        (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw) == (2, 2, 2, 2, 0, 0)
    }

    fn input_len(&self) -> usize {
        self.planes * self.h * self.w
    }

    fn output_len(&self) -> usize {
        self.planes * self.oh * self.ow
    }

    /// The rows and columns of window `(oy, ox)` that lie inside the input (padding excluded).
    fn window(&self, oy: usize, ox: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let clip = |o: usize, s: usize, p: usize, k: usize, len: usize| {
            let start = o * s;
            start.saturating_sub(p)..(start + k).saturating_sub(p).min(len)
        };
        (
            clip(oy, self.sh, self.ph, self.kh, self.h),
            clip(ox, self.sw, self.pw, self.kw, self.w),
        )
    }
}

/// `y` = the maximum of each window; `argmax` = where it is, as an index `ih W + iw` into
/// its input plane (PyTorch's `return_indices`). Ties go to the first maximum in row-major
/// order within the window; a NaN counts as a maximum (it propagates, as in PyTorch).
///
/// # Panics
/// If a slice's length differs from what `s` says.
///
/// ```
/// use backprop::tensor::kernels::{max_pool2d_forward, Pool2dShape};
/// // One 2x2 window over [[0, 0], [0, 0]]: the maximum 0 is first found at index 0.
/// let s = Pool2dShape::new([1, 1, 2, 4], [2, 2], [2, 2], [0, 0]).unwrap();
/// let x = [0.0f64, 0.0, 1.0, 3.0, 0.0, 0.0, 3.0, 2.0];
/// let (mut y, mut arg) = ([0.0; 2], [0; 2]);
/// max_pool2d_forward(&s, &x, &mut y, &mut arg);
/// assert_eq!((y, arg), ([0.0, 3.0], [0, 3])); // 3 at (0, 3) comes before 3 at (1, 2)
/// ```
pub fn max_pool2d_forward<T: Float>(s: &Pool2dShape, x: &[T], y: &mut [T], argmax: &mut [usize]) {
    assert_eq!(x.len(), s.input_len(), "max_pool2d: input length");
    assert_eq!(y.len(), s.output_len(), "max_pool2d: output length");
    assert_eq!(argmax.len(), s.output_len(), "max_pool2d: argmax length");
    let (plane, out_plane) = (s.h * s.w, s.oh * s.ow);
    // Planes are independent, so they split over the rayon pool's threads with the same
    // result for any thread count; a task of at least 16 planes keeps the split's cost small.
    let planes = x
        .par_chunks_exact(plane)
        .zip(y.par_chunks_exact_mut(out_plane))
        .zip(argmax.par_chunks_exact_mut(out_plane))
        .with_min_len(16);
    if s.ph == 0 && s.pw == 0 {
        // Every window lies inside its plane: no clipping, and the window's size known to
        // the compiler in the common cases.
        planes.for_each(|((x, y), argmax)| match (s.kh, s.kw, s.sh, s.sw) {
            (2, 2, 2, 2) => max_plane_2x2(s, x, y, argmax, |v| v),
            (2, 2, ..) => max_plane_unpadded::<T, 2, 2>(s, s.kh, s.kw, x, y, argmax),
            (3, 3, ..) => max_plane_unpadded::<T, 3, 3>(s, s.kh, s.kw, x, y, argmax),
            (kh, kw, ..) => max_plane_unpadded::<T, 0, 0>(s, kh, kw, x, y, argmax),
        });
        return;
    }
    planes.for_each(|((x, y), argmax)| {
        for oy in 0..s.oh {
            for ox in 0..s.ow {
                let (rows, cols) = s.window(oy, ox);
                // Padding is at most half the kernel, so every window holds an input.
                let mut best_at = rows.start * s.w + cols.start;
                let mut best = T::neg_infinity();
                for r in rows {
                    for c in cols.clone() {
                        let v = x[r * s.w + c];
                        // Strictly greater: an equal value later in the scan does not win.
                        if v > best || v.is_nan() {
                            best = v;
                            best_at = r * s.w + c;
                        }
                    }
                }
                y[oy * s.ow + ox] = best;
                argmax[oy * s.ow + ox] = best_at;
            }
        }
    });
}

/// Takes `v` (at index `at`) as the window's maximum so far if it is greater than `best`
/// or NaN (not `!(v <= best)`, which would also let a number replace a NaN), written as
/// selects rather than a branch: on ReLU outputs (many ties at 0) a branch mispredicts
/// about every other window (the 2x2 pools of LeNet-5 ran 3-5 times faster without it).
#[inline(always)]
fn take_if_greater<T: Float>(v: T, at: usize, best: &mut T, best_at: &mut usize) {
    let take = (v > *best) | v.is_nan();
    *best = if take { v } else { *best };
    *best_at = if take { at } else { *best_at };
}

/// One plane of [`max_pool2d_forward`] for 2x2 windows at stride 2 without padding
/// (`MaxPool2d(2)`): the four values of window `(oy, ox)` read from two input rows side by
/// side, in the scan order and with the rule of [`max_plane_unpadded`]. Each value is
/// `map`ped first (identity, or ReLU for [`relu_max_pool2d_forward`]).
#[inline(always)]
fn max_plane_2x2<T: Float>(
    s: &Pool2dShape,
    x: &[T],
    y: &mut [T],
    argmax: &mut [usize],
    map: impl Fn(T) -> T,
) {
    let w = s.w;
    for (oy, (y_row, a_row)) in y
        .chunks_exact_mut(s.ow)
        .zip(argmax.chunks_exact_mut(s.ow))
        .enumerate()
    {
        let top = &x[2 * oy * w..][..2 * s.ow];
        let bottom = &x[(2 * oy + 1) * w..][..2 * s.ow];
        let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
        for (ox, ((y, at), (t, b))) in y_row.iter_mut().zip(a_row).zip(windows).enumerate() {
            let base = 2 * oy * w + 2 * ox;
            let (mut best, mut best_at) = (map(t[0]), base);
            take_if_greater(map(t[1]), base + 1, &mut best, &mut best_at);
            take_if_greater(map(b[0]), base + w, &mut best, &mut best_at);
            take_if_greater(map(b[1]), base + w + 1, &mut best, &mut best_at);
            *y = best;
            *at = best_at;
        }
    }
}

/// One plane of [`max_pool2d_forward`] without padding: window `(oy, ox)` is rows
/// `oy sh ..+ kh` and columns `ox sw ..+ kw`. `KH`, `KW` are the window's size when known
/// at compile time (0: use `kh`, `kw`). The scan order and the rule are the general
/// path's: starting from the first value (which the general path's `-inf` start always
/// takes, or leaves at `-inf` with the same index), a later value wins only if greater,
/// or NaN.
#[inline(always)]
fn max_plane_unpadded<T: Float, const KH: usize, const KW: usize>(
    s: &Pool2dShape,
    kh: usize,
    kw: usize,
    x: &[T],
    y: &mut [T],
    argmax: &mut [usize],
) {
    let (kh, kw) = if KH > 0 { (KH, KW) } else { (kh, kw) };
    for oy in 0..s.oh {
        let y_row = &mut y[oy * s.ow..(oy + 1) * s.ow];
        let a_row = &mut argmax[oy * s.ow..(oy + 1) * s.ow];
        for (ox, (y, at)) in y_row.iter_mut().zip(a_row).enumerate() {
            let base = oy * s.sh * s.w + ox * s.sw;
            let (mut best, mut best_at) = (x[base], base);
            for i in 0..kh {
                let row = &x[base + i * s.w..][..kw];
                for (j, &v) in row.iter().enumerate() {
                    // At (0, 0) this takes the first value again: no change.
                    take_if_greater(v, base + i * s.w + j, &mut best, &mut best_at);
                }
            }
            *y = best;
            *at = best_at;
        }
    }
}

/// The backward of [`max_pool2d_forward`]: adds (`+=`) each output's gradient into the one
/// input its `argmax` names, so inputs shared by overlapping windows (stride < kernel)
/// collect the gradients of every window they won.
///
/// # Panics
/// If a slice's length differs from what `s` says, or an index in `argmax` lies outside its plane.
///
/// ```
/// use backprop::tensor::kernels::{max_pool2d_backward, Pool2dShape};
/// let s = Pool2dShape::new([1, 1, 2, 4], [2, 2], [2, 2], [0, 0]).unwrap();
/// let mut dx = [0.0f64; 8];
/// max_pool2d_backward(&s, &[5.0, 7.0], &[0, 3], &mut dx);
/// assert_eq!(dx, [5.0, 0.0, 0.0, 7.0, 0.0, 0.0, 0.0, 0.0]);
/// ```
pub fn max_pool2d_backward<T: Float>(s: &Pool2dShape, dy: &[T], argmax: &[usize], dx: &mut [T]) {
    assert_eq!(dx.len(), s.input_len(), "max_pool2d backward: input length");
    assert_eq!(
        dy.len(),
        s.output_len(),
        "max_pool2d backward: output length"
    );
    assert_eq!(
        argmax.len(),
        s.output_len(),
        "max_pool2d backward: argmax length"
    );
    let (plane, out_plane) = (s.h * s.w, s.oh * s.ow);
    // As in the forward: planes are independent, so any thread count gives the same sums.
    dx.par_chunks_exact_mut(plane)
        .zip(dy.par_chunks_exact(out_plane))
        .zip(argmax.par_chunks_exact(out_plane))
        .with_min_len(16)
        .for_each(|((dx, dy), argmax)| {
            for (&g, &at) in dy.iter().zip(argmax) {
                dx[at] += g;
            }
        });
}

/// ReLU as `network::Activation::Relu` computes it: `v` if `v > 0`, else 0 (NaN gives 0).
#[inline(always)]
fn relu<T: Float>(v: T) -> T {
    if v > T::zero() {
        v
    } else {
        T::zero()
    }
}

/// `ReLU()` then `MaxPool2d(2)` in one pass: `y` = the maximum of each 2x2 window of
/// `relu(x)`, `argmax` its position, exactly what [`max_pool2d_forward`] gives on the
/// ReLU's output (the same values are compared in the same order), without writing that
/// output: on LeNet-5's first layer it is 301,056 values a batch that were written, read
/// back by the pool, and read again by the ReLU's backward.
///
/// # Panics
/// If `s` is not 2x2 windows at stride 2 without padding, or a slice's length differs
/// from what `s` says.
///
/// ```
/// use backprop::tensor::kernels::{relu_max_pool2d_forward, Pool2dShape};
/// let s = Pool2dShape::new([1, 1, 2, 4], [2, 2], [2, 2], [0, 0]).unwrap();
/// let (mut y, mut argmax) = ([0.0f64; 2], [0; 2]);
/// relu_max_pool2d_forward(&s, &[-1.0, 3.0, -2.0, -3.0, 2.0, 0.5, -4.0, -1.0], &mut y, &mut argmax);
/// assert_eq!((y, argmax), ([3.0, 0.0], [1, 2])); // all-negative: 0 at the first position
/// ```
pub fn relu_max_pool2d_forward<T: Float>(
    s: &Pool2dShape,
    x: &[T],
    y: &mut [T],
    argmax: &mut [usize],
) {
    assert!(s.is_2x2(), "relu_max_pool2d: needs 2x2 windows at stride 2");
    assert_eq!(x.len(), s.input_len(), "relu_max_pool2d: input length");
    assert_eq!(y.len(), s.output_len(), "relu_max_pool2d: output length");
    assert_eq!(
        argmax.len(),
        s.output_len(),
        "relu_max_pool2d: argmax length"
    );
    let (plane, out_plane) = (s.h * s.w, s.oh * s.ow);
    // As in max_pool2d_forward: independent planes, the same result on any thread count.
    x.par_chunks_exact(plane)
        .zip(y.par_chunks_exact_mut(out_plane))
        .zip(argmax.par_chunks_exact_mut(out_plane))
        .with_min_len(16)
        .for_each(|((x, y), argmax)| max_plane_2x2(s, x, y, argmax, relu));
}

/// The backward of [`relu_max_pool2d_forward`] from its output `y`: writes (not adds) `dx`,
/// the gradient at the ReLU's input. Each window's gradient goes to its argmax times the
/// ReLU's slope there, `[y > 0]`, and every other input gets 0. Computed as the two layers
/// would, `(0 + dy) * [y > 0]`, so even a `-0.0` or a NaN in `dy` gives the same bits.
///
/// # Panics
/// As [`relu_max_pool2d_forward`], or if an index in `argmax` lies outside its plane.
///
/// ```
/// use backprop::tensor::kernels::{relu_max_pool2d_backward, Pool2dShape};
/// let s = Pool2dShape::new([1, 1, 2, 4], [2, 2], [2, 2], [0, 0]).unwrap();
/// let mut dx = [9.0f64; 8];
/// relu_max_pool2d_backward(&s, &[3.0, 0.0], &[5.0, 7.0], &[1, 2], &mut dx);
/// assert_eq!(dx, [0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]); // the ReLU stops the 7
/// ```
pub fn relu_max_pool2d_backward<T: Float>(
    s: &Pool2dShape,
    y: &[T],
    dy: &[T],
    argmax: &[usize],
    dx: &mut [T],
) {
    assert!(
        s.is_2x2(),
        "relu_max_pool2d backward: needs 2x2 windows at stride 2"
    );
    assert_eq!(
        dx.len(),
        s.input_len(),
        "relu_max_pool2d backward: input length"
    );
    assert_eq!(
        y.len(),
        s.output_len(),
        "relu_max_pool2d backward: output length"
    );
    assert_eq!(
        dy.len(),
        s.output_len(),
        "relu_max_pool2d backward: output length"
    );
    assert_eq!(
        argmax.len(),
        s.output_len(),
        "relu_max_pool2d backward: argmax length"
    );
    let (plane, out_plane) = (s.h * s.w, s.oh * s.ow);
    dx.par_chunks_exact_mut(plane)
        .zip(y.par_chunks_exact(out_plane))
        .zip(dy.par_chunks_exact(out_plane))
        .zip(argmax.par_chunks_exact(out_plane))
        .with_min_len(16)
        .for_each(|(((dx, y), dy), argmax)| {
            // Zeroed a plane at a time, while it is in cache for the scatter.
            dx.fill(T::zero());
            for ((&y, &g), &at) in y.iter().zip(dy).zip(argmax) {
                let slope = if y > T::zero() { T::one() } else { T::zero() };
                dx[at] = (T::zero() + g) * slope;
            }
        });
}

/// `y` = the mean of each window, padding counted as zeros in the `kH kW` divisor
/// (PyTorch's default `count_include_pad=True`).
///
/// # Panics
/// If a slice's length differs from what `s` says.
///
/// ```
/// use backprop::tensor::kernels::{avg_pool2d_forward, Pool2dShape};
/// let s = Pool2dShape::new([1, 1, 2, 4], [2, 2], [2, 2], [0, 0]).unwrap();
/// let mut y = [0.0f64; 2];
/// avg_pool2d_forward(&s, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], &mut y);
/// assert_eq!(y, [3.5, 5.5]);
/// ```
pub fn avg_pool2d_forward<T: Float>(s: &Pool2dShape, x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), s.input_len(), "avg_pool2d: input length");
    assert_eq!(y.len(), s.output_len(), "avg_pool2d: output length");
    let (plane, out_plane) = (s.h * s.w, s.oh * s.ow);
    let scale = T::one() / T::from_f64((s.kh * s.kw) as f64);
    for (x, y) in x.chunks_exact(plane).zip(y.chunks_exact_mut(out_plane)) {
        for oy in 0..s.oh {
            for ox in 0..s.ow {
                let (rows, cols) = s.window(oy, ox);
                let mut sum = T::zero();
                for r in rows {
                    sum += x[r * s.w + cols.start..r * s.w + cols.end]
                        .iter()
                        .copied()
                        .sum::<T>();
                }
                y[oy * s.ow + ox] = sum * scale;
            }
        }
    }
}

/// The backward of [`avg_pool2d_forward`]: adds (`+=`) each output's gradient, divided by
/// `kH kW`, into every input of its window.
///
/// # Panics
/// If a slice's length differs from what `s` says.
///
/// ```
/// use backprop::tensor::kernels::{avg_pool2d_backward, Pool2dShape};
/// // Two overlapping 1x2 windows (stride 1) over three inputs: the middle one is in both.
/// let s = Pool2dShape::new([1, 1, 1, 3], [1, 2], [1, 1], [0, 0]).unwrap();
/// let mut dx = [0.0f64; 3];
/// avg_pool2d_backward(&s, &[2.0, 4.0], &mut dx);
/// assert_eq!(dx, [1.0, 3.0, 2.0]);
/// ```
pub fn avg_pool2d_backward<T: Float>(s: &Pool2dShape, dy: &[T], dx: &mut [T]) {
    assert_eq!(dx.len(), s.input_len(), "avg_pool2d backward: input length");
    assert_eq!(
        dy.len(),
        s.output_len(),
        "avg_pool2d backward: output length"
    );
    let (plane, out_plane) = (s.h * s.w, s.oh * s.ow);
    let scale = T::one() / T::from_f64((s.kh * s.kw) as f64);
    for (dx, dy) in dx.chunks_exact_mut(plane).zip(dy.chunks_exact(out_plane)) {
        for oy in 0..s.oh {
            for ox in 0..s.ow {
                let (rows, cols) = s.window(oy, ox);
                let g = dy[oy * s.ow + ox] * scale;
                for r in rows {
                    dx[r * s.w + cols.start..r * s.w + cols.end]
                        .iter_mut()
                        .for_each(|d| *d += g);
                }
            }
        }
    }
}
