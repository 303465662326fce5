//! 2-D convolution (PyTorch's `conv2d`: cross-correlation, zero padding) by unfold + GEMM.
//!
//! Unfold (im2col) copies every receptive field of one example into a column of a
//! `K x P` matrix, `K = C_in kH kW` (one row per weight of a filter) and `P = OH OW` (one
//! column per output pixel). Then, with the weights as a `C_out x K` matrix W:
//!
//! ```text
//! forward          Y_n  = W cols_n (+ b)          C_out x P, which is example n of NCHW
//! input gradient   dX_n = fold(W^T dY_n)          fold adds overlapping fields back up
//! weight gradient  dW   = sum_n dY_n cols_n^T     per example: dW_n = dY_n cols_n^T
//! bias gradient    db   = sum over n, oh, ow of dY
//! ```
//!
//! The forward keeps every example's cols in the workspace, so the backward and the
//! per-example weight gradients reuse them instead of unfolding again.
//!
//! One GEMM per example rather than one per batch: measured in `benches/kernels.rs` (group
//! `conv-fwd-layout`, f32, batch 64, 2 threads on a loaded 2-core machine), the batch-wide
//! product, which also needs its output permuted from `C_out x (N P)` to NCHW, reached
//! 2.3 / 4.8 / 2.7 / 5.3 GFLOP/s on LeNet-5's two convolutions and examples/mnist's two,
//! against 3.5 / 7.3 / 6.4 / 7.9 per example (slower in every run); per example, the
//! examples also split across the rayon pool's threads with no reduction in the forward.
//!
//! For small weights in f32 (LeNet-5's convolutions) the products run on the kernels of
//! [`super::thin`], which read the operands in place: the `gemm` crate's packing of both
//! operands cost more than the arithmetic of these thin products.

use super::thin::{self, Strides};
use super::{avx2_fma, checked_product, window_count, KernelError};
use crate::float::{as_f32, as_f32_mut, is_f32};
use crate::linalg::{matmul_with, MatRef};
use crate::Float;
use gemm::Parallelism;
use rayon::prelude::*;

/// The sizes of one convolution: input `(N, C_in, H, W)`, weight `(C_out, C_in, kH, kW)`,
/// stride `(sh, sw)`, zero padding `(ph, pw)`, output `(N, C_out, OH, OW)` with
/// `OH = floor((H + 2 ph - kH) / sh) + 1` (and likewise OW).
///
/// ```
/// use backprop::tensor::kernels::Conv2dShape;
/// // LeNet-5's first convolution on a batch of 64 MNIST digits.
/// let s = Conv2dShape::new([64, 1, 28, 28], [6, 1, 5, 5], [1, 1], [2, 2]).unwrap();
/// assert_eq!(s.output_dims(), [64, 6, 28, 28]);
/// assert!(Conv2dShape::new([1, 1, 3, 3], [1, 2, 3, 3], [1, 1], [0, 0]).is_err()); // C_in differs
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    oh: usize,
    ow: usize,
}

impl Conv2dShape {
    /// Checks the sizes: all positive, the weight's `C_in` equal to the input's, each
    /// kernel no larger than its padded input, and every buffer length (input, weight,
    /// output and the batch's unfolded cols) free of overflow.
    pub fn new(
        input: [usize; 4],
        weight: [usize; 4],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<Self, KernelError> {
        const OP: &str = "conv2d";
        let [n, c_in, h, w] = input;
        let [c_out, wc_in, kh, kw] = weight;
        if input.contains(&0) || weight.contains(&0) {
            return Err(KernelError::new(
                OP,
                format!("input {input:?} and weight {weight:?} need positive sizes"),
            ));
        }
        if wc_in != c_in {
            return Err(KernelError::new(
                OP,
                format!(
                    "weight {weight:?} has {wc_in} input channels, the input {input:?} has {c_in}"
                ),
            ));
        }
        let oh = window_count(OP, "height", h, kh, stride[0], padding[0])?;
        let ow = window_count(OP, "width", w, kw, stride[1], padding[1])?;
        checked_product(OP, &[n, c_in, h, w])?;
        checked_product(OP, &[n, c_out, oh, ow])?;
        checked_product(OP, &[n, c_in, kh, kw, oh, ow])?;
        checked_product(OP, &[n, c_out, c_in, kh, kw])?;
        Ok(Conv2dShape {
            n,
            c_in,
            h,
            w,
            c_out,
            kh,
            kw,
            sh: stride[0],
            sw: stride[1],
            ph: padding[0],
            pw: padding[1],
            oh,
            ow,
        })
    }

    /// `[N, C_in, H, W]`.
    pub fn input_dims(&self) -> [usize; 4] {
        [self.n, self.c_in, self.h, self.w]
    }

    /// `[C_out, C_in, kH, kW]`.
    pub fn weight_dims(&self) -> [usize; 4] {
        [self.c_out, self.c_in, self.kh, self.kw]
    }

    /// `[N, C_out, OH, OW]`.
    pub fn output_dims(&self) -> [usize; 4] {
        [self.n, self.c_out, self.oh, self.ow]
    }

    /// The rows of one example's unfolded input: `K = C_in kH kW`.
    pub fn col_rows(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// The columns of one example's unfolded input: `P = OH OW`.
    pub fn col_cols(&self) -> usize {
        self.oh * self.ow
    }

    /// Multiply-adds of the forward product over the batch (`N C_out K P`); each of the two
    /// backward products costs as many.
    pub fn multiply_adds(&self) -> usize {
        self.n * self.c_out * self.col_rows() * self.col_cols()
    }

    fn example_in(&self) -> usize {
        self.c_in * self.h * self.w
    }

    fn example_out(&self) -> usize {
        self.c_out * self.col_cols()
    }

    fn example_cols(&self) -> usize {
        self.col_rows() * self.col_cols()
    }

    fn weight_len(&self) -> usize {
        self.c_out * self.col_rows()
    }
}

/// The range of output positions `o` whose input position `o s + k - pad` lies in `[0, len)`,
/// clamped to `[0, out)`: the valid part of one row of an unfolded field.
#[inline]
fn valid_range(out: usize, len: usize, s: usize, k: usize, pad: usize) -> (usize, usize) {
    // o s + k >= pad  <=>  o >= ceil((pad - k) / s)
    let lo = if pad > k { (pad - k).div_ceil(s) } else { 0 };
    // o s + k - pad < len  <=>  o s < len + pad - k  <=>  o < ceil((len + pad - k) / s)
    let hi = if len + pad > k {
        (len + pad - k).div_ceil(s)
    } else {
        0
    };
    let lo = lo.min(out);
    (lo, hi.clamp(lo, out))
}

/// Unfolds one example `x` (`C_in x H x W`) into `cols`: row `r = (c kH + i) kW + j` holds,
/// for every output pixel `(oy, ox)` in row-major order, the input at
/// `(c, oy sh + i - ph, ox sw + j - pw)`, or 0 where that falls in the padding.
///
/// Row `r` starts at `cols[r * ld]`, so `ld = P` gives a `K x P` row-major matrix, and a
/// larger `ld` lays several examples side by side.
///
/// # Panics
/// If `x` is shorter than one example or `cols` than `(K - 1) ld + P`, or `ld < P`.
///
/// ```
/// use backprop::tensor::kernels::{im2col, Conv2dShape};
/// // One 2x2 kernel over a 3x3 image, stride 1: four fields of four pixels.
/// let s = Conv2dShape::new([1, 1, 3, 3], [1, 1, 2, 2], [1, 1], [0, 0]).unwrap();
/// let x = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
/// let mut cols = [0.0; 16];
/// im2col(&s, &x, &mut cols, 4);
/// assert_eq!(cols[..4], [1.0, 2.0, 4.0, 5.0]); // kernel tap (0, 0) at each output pixel
/// assert_eq!(cols[12..], [5.0, 6.0, 8.0, 9.0]); // tap (1, 1)
/// ```
pub fn im2col<T: Float>(s: &Conv2dShape, x: &[T], cols: &mut [T], ld: usize) {
    let (p, k) = (s.col_cols(), s.col_rows());
    assert!(x.len() >= s.example_in(), "im2col: input too short");
    assert!(
        ld >= p && cols.len() >= (k - 1) * ld + p,
        "im2col: cols too short"
    );
    let plane = s.h * s.w;
    if s.sh == 1 && s.sw == 1 {
        return im2col_unit_stride(s, x, cols, ld);
    }
    for c in 0..s.c_in {
        let x_c = &x[c * plane..(c + 1) * plane];
        for i in 0..s.kh {
            for j in 0..s.kw {
                let r = (c * s.kh + i) * s.kw + j;
                let row = &mut cols[r * ld..r * ld + p];
                let (lo, hi) = valid_range(s.ow, s.w, s.sw, j, s.pw);
                for (oy, out) in row.chunks_exact_mut(s.ow).enumerate() {
                    let y = oy * s.sh + i;
                    if y < s.ph || y - s.ph >= s.h {
                        out.fill(T::zero());
                        continue;
                    }
                    let src = &x_c[(y - s.ph) * s.w..(y - s.ph + 1) * s.w];
                    // Guarded: rows are short, and a fill call on an empty part cost
                    // about as much as the row's copy (measured on LeNet-5's layers).
                    if lo > 0 {
                        out[..lo].fill(T::zero());
                    }
                    if hi < out.len() {
                        out[hi..].fill(T::zero());
                    }
                    if lo == hi {
                        continue;
                    } else if s.sw == 1 {
                        copy_short(&mut out[lo..hi], &src[lo + j - s.pw..]);
                    } else {
                        for (v, o) in out[lo..hi].iter_mut().zip(lo..) {
                            *v = src[o * s.sw + j - s.pw];
                        }
                    }
                }
            }
        }
    }
}

/// [`im2col`] at stride 1, where a field row's valid part is the same columns `lo..hi` of
/// the input row `oy + i - ph` for every output row `oy` in `ylo..yhi`: both ranges are
/// found once per cols row, the rows outside them zeroed in one fill, and each output row
/// is a copy of `hi - lo` values between its zeroed padding columns. About half the
/// instructions of the general loop on LeNet-5's and examples/mnist's layers.
fn im2col_unit_stride<T: Float>(s: &Conv2dShape, x: &[T], cols: &mut [T], ld: usize) {
    let (p, ow, plane) = (s.col_cols(), s.ow, s.h * s.w);
    for c in 0..s.c_in {
        let x_c = &x[c * plane..(c + 1) * plane];
        for i in 0..s.kh {
            let (ylo, yhi) = valid_range(s.oh, s.h, 1, i, s.ph);
            for j in 0..s.kw {
                let r = (c * s.kh + i) * s.kw + j;
                let row = &mut cols[r * ld..r * ld + p];
                let (lo, hi) = valid_range(ow, s.w, 1, j, s.pw);
                if lo == hi || ylo == yhi {
                    row.fill(T::zero());
                    continue;
                }
                row[..ylo * ow].fill(T::zero());
                row[yhi * ow..].fill(T::zero());
                // Input row ylo + i - ph, column lo + j - pw, for output (ylo, lo).
                let first = (ylo + i - s.ph) * s.w + lo + j - s.pw;
                let fields = row[ylo * ow..yhi * ow].chunks_exact_mut(ow);
                for (k, out) in fields.enumerate() {
                    field_row(out, (lo, hi), &x_c[first + k * s.w..]);
                }
            }
        }
    }
}

/// One output row of a field: zero padding in `out[..lo]` and `out[hi..]`, the first `hi -
/// lo` values of `src` between. In rows of 8 or more values, padding of up to 8 columns a
/// side is zeroed by a move of 8 zeros at the row's end, before the copy overwrites what is
/// not padding: no loop, which LLVM would turn into a `memset` call per row (as it does a
/// copy loop into `memcpy`).
#[inline(always)]
fn field_row<T: Float>(out: &mut [T], (lo, hi): (usize, usize), src: &[T]) {
    let ow = out.len();
    if ow < 8 || lo > 8 || ow - hi > 8 {
        out[..lo].fill(T::zero());
        out[hi..].fill(T::zero());
    } else {
        let zeros = |out: &mut [T], at: usize| {
            let z: &mut [T; 8] = (&mut out[at..at + 8]).try_into().expect("8 values");
            *z = [T::zero(); 8];
        };
        if lo > 0 {
            zeros(out, 0);
        }
        if hi < ow {
            zeros(out, ow - 8);
        }
    }
    copy_short(&mut out[lo..hi], src);
}

/// `dst` = the first `dst.len()` values of `src`. From 8 to 32 values (a field row of
/// LeNet-5's and examples/mnist's layers), up to four moves of 8 values, the last one
/// overlapping, with no loop: LLVM turns an element loop into a `memcpy` call, whose call
/// and size dispatch cost more than such a copy (10% of a LeNet-5 step).
#[inline(always)]
fn copy_short<T: Copy>(dst: &mut [T], src: &[T]) {
    let n = dst.len();
    let src = &src[..n];
    if !(8..=32).contains(&n) {
        return dst.copy_from_slice(src);
    }
    let eight = |dst: &mut [T], at: usize| {
        let d: &mut [T; 8] = (&mut dst[at..at + 8]).try_into().expect("8 values");
        *d = src[at..at + 8].try_into().expect("8 values");
    };
    eight(dst, 0);
    if n > 16 {
        eight(dst, 8);
    }
    if n > 24 {
        eight(dst, 16);
    }
    eight(dst, n - 8);
}

/// [`col2im`] at stride 1, with the ranges of [`im2col_unit_stride`].
fn col2im_unit_stride<T: Float>(s: &Conv2dShape, cols: &[T], ld: usize, dx: &mut [T]) {
    let (p, ow, plane) = (s.col_cols(), s.ow, s.h * s.w);
    for c in 0..s.c_in {
        let dx_c = &mut dx[c * plane..(c + 1) * plane];
        for i in 0..s.kh {
            let (ylo, yhi) = valid_range(s.oh, s.h, 1, i, s.ph);
            for j in 0..s.kw {
                let r = (c * s.kh + i) * s.kw + j;
                let row = &cols[r * ld..r * ld + p];
                let (lo, hi) = valid_range(ow, s.w, 1, j, s.pw);
                if lo == hi || ylo == yhi {
                    continue;
                }
                let first = (ylo + i - s.ph) * s.w + lo + j - s.pw;
                let fields = row[ylo * ow..yhi * ow].chunks_exact(ow);
                for (src, dst) in fields.zip(dx_c[first..].chunks_mut(s.w)) {
                    for (d, &v) in dst.iter_mut().zip(&src[lo..hi]) {
                        *d += v;
                    }
                }
            }
        }
    }
}

/// Folds `cols` back onto one example: the adjoint of [`im2col`], adding (`+=`) each entry
/// into the input position it was copied from, so fields that overlap add up and entries
/// in the padding are dropped.
///
/// # Panics
/// As [`im2col`].
///
/// ```
/// use backprop::tensor::kernels::{col2im, Conv2dShape};
/// // A 2x2 kernel over a 3x3 image: the centre pixel lies in all four fields.
/// let s = Conv2dShape::new([1, 1, 3, 3], [1, 1, 2, 2], [1, 1], [0, 0]).unwrap();
/// let mut dx = [0.0f64; 9];
/// col2im(&s, &[1.0; 16], 4, &mut dx);
/// assert_eq!(dx, [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);
/// ```
pub fn col2im<T: Float>(s: &Conv2dShape, cols: &[T], ld: usize, dx: &mut [T]) {
    let (p, k) = (s.col_cols(), s.col_rows());
    assert!(dx.len() >= s.example_in(), "col2im: input too short");
    assert!(
        ld >= p && cols.len() >= (k - 1) * ld + p,
        "col2im: cols too short"
    );
    let plane = s.h * s.w;
    if s.sh == 1 && s.sw == 1 {
        return col2im_unit_stride(s, cols, ld, dx);
    }
    for c in 0..s.c_in {
        let dx_c = &mut dx[c * plane..(c + 1) * plane];
        for i in 0..s.kh {
            for j in 0..s.kw {
                let r = (c * s.kh + i) * s.kw + j;
                let row = &cols[r * ld..r * ld + p];
                let (lo, hi) = valid_range(s.ow, s.w, s.sw, j, s.pw);
                for (oy, src) in row.chunks_exact(s.ow).enumerate() {
                    let y = oy * s.sh + i;
                    if y < s.ph || y - s.ph >= s.h {
                        continue;
                    }
                    let dst = &mut dx_c[(y - s.ph) * s.w..(y - s.ph + 1) * s.w];
                    if lo == hi {
                        continue;
                    } else if s.sw == 1 {
                        let dst = &mut dst[lo + j - s.pw..hi + j - s.pw];
                        for (d, &v) in dst.iter_mut().zip(&src[lo..hi]) {
                            *d += v;
                        }
                    } else {
                        for (o, &v) in src[lo..hi].iter().enumerate() {
                            dst[(lo + o) * s.sw + j - s.pw] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Weights (`C_out C_in kH kW`) up to which the products run on [`thin`]'s kernels: LeNet-5's
/// two convolutions (150 and 2,400) and examples/mnist's first; beyond it (the convnet's
/// second convolution, 18,432) the `gemm` crate's blocking pays for its packing, and the
/// thin kernels, which stream the cols once per 6 rows of output, made the step slower.
const THIN_WEIGHTS: usize = 4096;

/// Whether the products of `s` run on [`thin`]'s kernels (f32 on a CPU with AVX2 and FMA,
/// small weights) rather than the `gemm` crate's.
fn thin_path<T: Float>(s: &Conv2dShape) -> bool {
    s.weight_len() <= THIN_WEIGHTS && is_f32::<T>() && avx2_fma()
}

/// `v` as `f32`, on the [`thin_path`] only.
fn f32_of<T: Float>(v: &[T]) -> &[f32] {
    as_f32(v).expect("the thin path runs on f32")
}

/// Buffers of a convolution that outlive one call: the batch's unfolded input (written by
/// [`conv2d_forward`], read by the backward kernels) and the backward's scratch. They grow
/// to the largest shape seen and are then reused, so a warm training step allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct Conv2dWorkspace<T> {
    cols: Vec<T>,
    dcols: Vec<T>,
    partials: Vec<T>,
    shape: Option<Conv2dShape>,
}

impl<T: Float> Conv2dWorkspace<T> {
    /// An empty workspace; the first forward sizes it.
    pub fn new() -> Self {
        Conv2dWorkspace {
            cols: Vec::new(),
            dcols: Vec::new(),
            partials: Vec::new(),
            shape: None,
        }
    }

    /// The unfolded input of the last forward: example `n`'s `K x P` matrix (see [`im2col`])
    /// at `[n K P, (n + 1) K P)`.
    pub fn cols(&self) -> &[T] {
        self.shape
            .map_or(&[][..], |s| &self.cols[..s.n * s.example_cols()])
    }

    fn saved_cols(&self, s: &Conv2dShape) -> &[T] {
        assert_eq!(
            self.shape.as_ref(),
            Some(s),
            "conv2d backward: the workspace holds another forward's shape"
        );
        &self.cols[..s.n * s.example_cols()]
    }
}

fn grow<T: Float>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::zero());
    }
}

/// `y = conv2d(x, weight) + bias`, PyTorch's semantics, keeping the unfolded input in `ws`.
///
/// `x` is `(N, C_in, H, W)`, `weight` `(C_out, C_in, kH, kW)`, `bias` `(C_out)`, `y`
/// `(N, C_out, OH, OW)`, all row-major (NCHW). Examples are spread over the rayon pool's
/// threads, each one unfold and one GEMM.
///
/// # Panics
/// If a slice's length differs from what `s` says.
///
/// ```
/// use backprop::tensor::kernels::{conv2d_forward, Conv2dShape, Conv2dWorkspace};
/// // A 2x2 kernel of ones over a 3x3 image sums each 2x2 block; the bias adds 0.5.
/// let s = Conv2dShape::new([1, 1, 3, 3], [1, 1, 2, 2], [1, 1], [0, 0]).unwrap();
/// let x = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
/// let mut y = [0.0; 4];
/// conv2d_forward(&s, &x, &[1.0; 4], Some(&[0.5]), &mut y, &mut Conv2dWorkspace::new());
/// assert_eq!(y, [12.5, 16.5, 24.5, 28.5]);
/// ```
pub fn conv2d_forward<T: Float>(
    s: &Conv2dShape,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    ws: &mut Conv2dWorkspace<T>,
) {
    let (k, p, kp) = (s.col_rows(), s.col_cols(), s.example_cols());
    assert_eq!(x.len(), s.n * s.example_in(), "conv2d: input length");
    assert_eq!(weight.len(), s.weight_len(), "conv2d: weight length");
    assert_eq!(y.len(), s.n * s.example_out(), "conv2d: output length");
    if let Some(b) = bias {
        assert_eq!(b.len(), s.c_out, "conv2d: bias length");
    }
    grow(&mut ws.cols, s.n * kp);
    ws.shape = Some(*s);
    let w = MatRef::row_major(weight, s.c_out, k).expect("weight length checked");
    let fast = thin_path::<T>(s);
    ws.cols[..s.n * kp]
        .par_chunks_mut(kp)
        .zip(y.par_chunks_mut(s.example_out()))
        .zip(x.par_chunks(s.example_in()))
        .for_each(|((cols, y), x)| {
            im2col(s, x, cols, p);
            // Y = b + W cols: the bias written first and the product added onto it, one
            // pass over Y fewer than adding the bias afterwards.
            if let Some(b) = bias {
                for (row, &b) in y.chunks_exact_mut(p).zip(b) {
                    row.fill(b);
                }
            }
            if fast {
                // The same product without the gemm crate's packing (see `thin`).
                let y = as_f32_mut(y).expect("fast implies f32");
                let (wf, cf) = (f32_of(weight), f32_of(cols));
                let sa = Strides { rows: k, cols: 1 };
                thin::nn((s.c_out, k, p), y, p, wf, sa, cf, p, bias.is_some());
            } else {
                let cols = MatRef::row_major(cols, k, p).expect("cols sized above");
                matmul_with(y, w, cols, T::one(), bias.is_some(), Parallelism::None);
            }
        });
}

/// The backward of [`conv2d_forward`], from the output's gradient `dy` and the cols the
/// forward left in `ws`: adds (`+=`) the input gradient into `dx` (skipped when `None`,
/// e.g. for a first layer), the batch's weight gradient into `dweight` and the bias
/// gradient into `dbias`.
///
/// The batch is split into one run of examples per rayon thread; each run accumulates its
/// own weight gradient with GEMMs, and the runs are added at the end.
///
/// # Panics
/// If a slice's length differs from what `s` says, or `ws` last ran a forward of another shape.
///
/// ```
/// use backprop::tensor::kernels::{conv2d_backward, conv2d_forward, Conv2dShape, Conv2dWorkspace};
/// // y = sum of each 2x2 block; with dy = 1 everywhere, dW[i][j] = sum of the pixels that
/// // tap (i, j) sees, and dx counts the fields each pixel lies in.
/// let s = Conv2dShape::new([1, 1, 3, 3], [1, 1, 2, 2], [1, 1], [0, 0]).unwrap();
/// let x = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
/// let (mut y, mut ws) = ([0.0; 4], Conv2dWorkspace::new());
/// conv2d_forward(&s, &x, &[1.0; 4], None, &mut y, &mut ws);
/// let (mut dx, mut dw, mut db) = ([0.0; 9], [0.0; 4], [0.0; 1]);
/// conv2d_backward(&s, &[1.0; 4], &[1.0; 4], &mut ws, Some(&mut dx), &mut dw, Some(&mut db));
/// assert_eq!(dw, [12.0, 16.0, 24.0, 28.0]);
/// assert_eq!(dx, [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);
/// assert_eq!(db, [4.0]);
/// ```
pub fn conv2d_backward<T: Float>(
    s: &Conv2dShape,
    weight: &[T],
    dy: &[T],
    ws: &mut Conv2dWorkspace<T>,
    dx: Option<&mut [T]>,
    dweight: &mut [T],
    mut dbias: Option<&mut [T]>,
) {
    let (k, p, kp) = (s.col_rows(), s.col_cols(), s.example_cols());
    let (in_len, out_len, w_len) = (s.example_in(), s.example_out(), s.weight_len());
    assert_eq!(weight.len(), w_len, "conv2d backward: weight length");
    assert_eq!(
        dy.len(),
        s.n * out_len,
        "conv2d backward: output gradient length"
    );
    assert_eq!(
        dweight.len(),
        w_len,
        "conv2d backward: weight gradient length"
    );
    if let Some(dx) = &dx {
        assert_eq!(
            dx.len(),
            s.n * in_len,
            "conv2d backward: input gradient length"
        );
    }
    if let Some(db) = &dbias {
        assert_eq!(db.len(), s.c_out, "conv2d backward: bias gradient length");
    }
    ws.saved_cols(s);
    // One run of consecutive examples per thread, none empty.
    let per = s.n.div_ceil(rayon::current_num_threads().clamp(1, s.n));
    let runs = s.n.div_ceil(per);
    let part_len = w_len + s.c_out;
    grow(&mut ws.partials, runs * part_len);
    if dx.is_some() {
        grow(&mut ws.dcols, runs * kp);
    }
    let Conv2dWorkspace {
        cols,
        dcols,
        partials,
        ..
    } = ws;
    let cols = &cols[..s.n * kp];
    let w = MatRef::row_major(weight, s.c_out, k).expect("weight length checked");
    let fast = thin_path::<T>(s);
    let run = |r: usize, part: &mut [T], dcols: &mut [T], mut dx: Option<&mut [T]>| {
        let (dw, db) = part.split_at_mut(w_len);
        for (j, e) in (r * per..((r + 1) * per).min(s.n)).enumerate() {
            let dy_e = &dy[e * out_len..(e + 1) * out_len];
            let dy_m = MatRef::row_major(dy_e, s.c_out, p).expect("length checked");
            let cols_e = MatRef::row_major(&cols[e * kp..(e + 1) * kp], k, p).expect("sized");
            // dW += dY_n cols_n^T (the first example of a run overwrites)
            if fast {
                let dw = as_f32_mut(&mut *dw).expect("fast implies f32");
                let (dyf, cf) = (f32_of(dy_e), f32_of(&cols[e * kp..(e + 1) * kp]));
                thin::nt((s.c_out, p, k), dw, k, dyf, p, cf, p, j > 0);
            } else {
                matmul_with(dw, dy_m, cols_e.t(), T::one(), j > 0, Parallelism::None);
            }
            for (b, row) in db.iter_mut().zip(dy_e.chunks_exact(p)) {
                let sum = plane_sum(row);
                *b = if j > 0 { *b + sum } else { sum };
            }
            if let Some(dx) = dx.as_deref_mut() {
                // dX_n += fold(W^T dY_n)
                if fast {
                    let dc = as_f32_mut(&mut *dcols).expect("fast implies f32");
                    let sa = Strides { rows: 1, cols: k };
                    thin::nn(
                        (k, s.c_out, p),
                        dc,
                        p,
                        f32_of(weight),
                        sa,
                        f32_of(dy_e),
                        p,
                        false,
                    );
                } else {
                    matmul_with(dcols, w.t(), dy_m, T::one(), false, Parallelism::None);
                }
                col2im(s, dcols, p, &mut dx[j * in_len..(j + 1) * in_len]);
            }
        }
    };
    let parts = partials[..runs * part_len].par_chunks_mut(part_len);
    match dx {
        Some(dx) => parts
            .zip(dcols[..runs * kp].par_chunks_mut(kp))
            .zip(dx.par_chunks_mut(per * in_len))
            .enumerate()
            .for_each(|(r, ((part, dcols), dx))| run(r, part, dcols, Some(dx))),
        None => parts
            .enumerate()
            .for_each(|(r, part)| run(r, part, &mut [], None)),
    }
    for part in partials[..runs * part_len].chunks_exact(part_len) {
        let (dw, db) = part.split_at(w_len);
        dweight.iter_mut().zip(dw).for_each(|(g, &v)| *g += v);
        if let Some(dbias) = dbias.as_deref_mut() {
            dbias.iter_mut().zip(db).for_each(|(g, &v)| *g += v);
        }
    }
}

/// The sum of one output plane of `dy` (a bias's gradient from one example), in eight
/// running sums that the compiler keeps in one vector register: a single running sum is
/// one dependent add per value, which made the bias gradients of LeNet-5's first
/// convolution (784 values a plane) cost as much as its col2im. The batch and the
/// per-example gradients both add with this, so their sums agree.
fn plane_sum<T: Float>(v: &[T]) -> T {
    let mut lanes = [T::zero(); 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder().iter().fold(T::zero(), |s, &x| s + x);
    for c in chunks {
        lanes.iter_mut().zip(c).for_each(|(s, &x)| *s += x);
    }
    let [a, b, c, d, e, f, g, h] = lanes;
    ((a + e) + (b + f)) + ((c + g) + (d + h)) + rest
}

/// Per-example gradients of the weights (and biases) from the cols the forward left in
/// `ws`: writes `dY_n cols_n^T` into example `n`'s `(C_out, C_in, kH, kW)` block of
/// `dweight` (`N` blocks) and, when given, `dY_n` summed over its pixels into row `n` of
/// `dbias` (`N x C_out`). Their sums over `n` are [`conv2d_backward`]'s batch gradients.
///
/// # Panics
/// If a slice's length differs from what `s` says, or `ws` last ran a forward of another shape.
///
/// ```
/// use backprop::tensor::kernels::{
///     conv2d_forward, conv2d_weight_grad_per_example, Conv2dShape, Conv2dWorkspace,
/// };
/// // Two 1x1 images, a 1x1 kernel: each example's weight gradient is dy_n x_n.
/// let s = Conv2dShape::new([2, 1, 1, 1], [1, 1, 1, 1], [1, 1], [0, 0]).unwrap();
/// let (mut y, mut ws) = ([0.0f64; 2], Conv2dWorkspace::new());
/// conv2d_forward(&s, &[3.0, 5.0], &[2.0], None, &mut y, &mut ws);
/// let (mut dw, mut db) = ([0.0; 2], [0.0; 2]);
/// conv2d_weight_grad_per_example(&s, &[1.0, 10.0], &ws, &mut dw, Some(&mut db));
/// assert_eq!((dw, db), ([3.0, 50.0], [1.0, 10.0]));
/// ```
pub fn conv2d_weight_grad_per_example<T: Float>(
    s: &Conv2dShape,
    dy: &[T],
    ws: &Conv2dWorkspace<T>,
    dweight: &mut [T],
    dbias: Option<&mut [T]>,
) {
    let (k, p, kp) = (s.col_rows(), s.col_cols(), s.example_cols());
    let (out_len, w_len) = (s.example_out(), s.weight_len());
    assert_eq!(
        dy.len(),
        s.n * out_len,
        "conv2d per-example: output gradient length"
    );
    assert_eq!(
        dweight.len(),
        s.n * w_len,
        "conv2d per-example: weight gradient length"
    );
    let cols = ws.saved_cols(s);
    dweight
        .par_chunks_mut(w_len)
        .zip(dy.par_chunks(out_len))
        .zip(cols.par_chunks(kp))
        .for_each(|((dw, dy), cols)| {
            if thin_path::<T>(s) {
                let dw = as_f32_mut(dw).expect("f32 on the thin path");
                thin::nt(
                    (s.c_out, p, k),
                    dw,
                    k,
                    f32_of(dy),
                    p,
                    f32_of(cols),
                    p,
                    false,
                );
                return;
            }
            let dy = MatRef::row_major(dy, s.c_out, p).expect("length checked");
            let cols = MatRef::row_major(cols, k, p).expect("sized");
            matmul_with(dw, dy, cols.t(), T::one(), false, Parallelism::None);
        });
    if let Some(db) = dbias {
        assert_eq!(
            db.len(),
            s.n * s.c_out,
            "conv2d per-example: bias gradient length"
        );
        for (b, row) in db.iter_mut().zip(dy.chunks_exact(p)) {
            *b = plane_sum(row);
        }
    }
}
