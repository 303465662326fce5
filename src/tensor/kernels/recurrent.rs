//! One step, and whole sequences, of PyTorch's `nn.LSTM` and `nn.RNN` (tanh), one layer.
//!
//! Both start from the same affine map of the input x (N x F) and the previous hidden state
//! h (N x H), with weights `W_ih` (G H x F), `W_hh` (G H x H) and biases `b_ih`, `b_hh`
//! (G H), G = 4 for the LSTM and 1 for the RNN:
//!
//! ```text
//! pre = x W_ih^T + b_ih + h W_hh^T + b_hh                         N x G H, two GEMMs
//! RNN   h' = tanh(pre)
//! LSTM  [i f g o] = [sigmoid tanh sigmoid sigmoid applied to the four H-column blocks of pre]
//!       c' = f . c + i . g        h' = o . tanh(c')
//! ```
//!
//! and the backward of both ends in the same four GEMMs and a column sum, from the
//! gradient of the pre-activations `dpre`:
//! `dx = dpre W_ih`, `dh = dpre W_hh`, `dW_ih += dpre^T x`, `dW_hh += dpre^T h`,
//! `db_ih = db_hh += sum over the batch of dpre`.

use super::{avx2_fma, checked_product, KernelError};
use crate::float::{as_f32, as_f32_mut, is_f32};
use crate::linalg::{matmul, matmul_with, MatRef};
use crate::Float;

/// The sizes of a recurrent layer: `batch` sequences of `steps` time steps, `input`
/// features per step, `hidden` units. Single-step kernels ignore `steps`.
///
/// ```
/// use backprop::tensor::kernels::RecurrentShape;
/// let s = RecurrentShape::new(2, 3, 5, 4).unwrap();
/// assert_eq!((s.batch(), s.steps(), s.input(), s.hidden()), (2, 3, 5, 4));
/// assert!(RecurrentShape::new(2, 3, 0, 4).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecurrentShape {
    batch: usize,
    steps: usize,
    input: usize,
    hidden: usize,
}

impl RecurrentShape {
    /// Checks that every size is positive and that every buffer length (up to the LSTM's
    /// `(steps + 1) batch 4 hidden` saved states) is free of overflow.
    pub fn new(
        batch: usize,
        steps: usize,
        input: usize,
        hidden: usize,
    ) -> Result<Self, KernelError> {
        const OP: &str = "recurrent";
        if batch == 0 || steps == 0 || input == 0 || hidden == 0 {
            return Err(KernelError::new(
                OP,
                format!(
                    "batch {batch}, steps {steps}, input {input}, hidden {hidden} must be positive"
                ),
            ));
        }
        let steps1 = steps
            .checked_add(1)
            .ok_or_else(|| KernelError::new(OP, "steps overflow"))?;
        checked_product(OP, &[4, hidden, input.max(hidden)])?;
        checked_product(OP, &[batch, steps, input])?;
        checked_product(OP, &[steps1, batch, 4, hidden])?;
        Ok(RecurrentShape {
            batch,
            steps,
            input,
            hidden,
        })
    }

    /// Sequences in a batch (N).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Time steps per sequence (T).
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Features per step (F).
    pub fn input(&self) -> usize {
        self.input
    }

    /// Hidden units (H).
    pub fn hidden(&self) -> usize {
        self.hidden
    }
}

/// A layer's parameters in PyTorch's layout: `w_ih` (G H x F), `w_hh` (G H x H), `b_ih`
/// and `b_hh` (G H), G = 4 (gates i, f, g, o, in that order) for the LSTM, 1 for the RNN.
#[derive(Clone, Copy, Debug)]
pub struct Params<'a, T> {
    /// Input-to-hidden weights, `weight_ih_l0`.
    pub w_ih: &'a [T],
    /// Hidden-to-hidden weights, `weight_hh_l0`.
    pub w_hh: &'a [T],
    /// Input-to-hidden bias, `bias_ih_l0`.
    pub b_ih: &'a [T],
    /// Hidden-to-hidden bias, `bias_hh_l0`.
    pub b_hh: &'a [T],
}

/// Gradients of a layer's parameters, laid out as [`Params`]; the backward kernels add
/// (`+=`) into them, so a sequence (or a batch split in parts) accumulates.
#[derive(Debug)]
pub struct ParamGrads<'a, T> {
    /// Gradient of `w_ih`.
    pub w_ih: &'a mut [T],
    /// Gradient of `w_hh`.
    pub w_hh: &'a mut [T],
    /// Gradient of `b_ih`.
    pub b_ih: &'a mut [T],
    /// Gradient of `b_hh`.
    pub b_hh: &'a mut [T],
}

/// Where one step's backward writes (overwriting, not adding): the gradients of the step's
/// input `dx` (N x F), previous hidden state `dh_prev` (N x H) and, for the LSTM, previous
/// cell state `dc_prev` (N x H; empty for the RNN), and of the pre-activations `dpre`
/// (N x G H), which the parameter gradients are built from.
#[derive(Debug)]
pub struct StepGrads<'a, T> {
    /// Gradient of the step's input.
    pub dx: &'a mut [T],
    /// Gradient of the previous hidden state.
    pub dh_prev: &'a mut [T],
    /// Gradient of the previous cell state (LSTM; empty for the RNN).
    pub dc_prev: &'a mut [T],
    /// Gradient of the pre-activations (the gates before their nonlinearities).
    pub dpre: &'a mut [T],
}

/// What an LSTM step's backward needs from its forward: the step's inputs `x`, `h_prev`,
/// `c_prev`, the activated gates `[i f g o]` (N x 4H) and the new cell state `c`.
#[derive(Clone, Copy, Debug)]
pub struct LstmSaved<'a, T> {
    /// The step's input (N x F).
    pub x: &'a [T],
    /// The previous hidden state (N x H).
    pub h_prev: &'a [T],
    /// The previous cell state (N x H).
    pub c_prev: &'a [T],
    /// The activated gates i, f, g, o (N x 4H).
    pub gates: &'a [T],
    /// The new cell state (N x H).
    pub c: &'a [T],
}

/// What an RNN step's backward needs from its forward: the inputs `x`, `h_prev` and the
/// output `h = tanh(pre)`, whose derivative is `1 - h^2`.
#[derive(Clone, Copy, Debug)]
pub struct RnnSaved<'a, T> {
    /// The step's input (N x F).
    pub x: &'a [T],
    /// The previous hidden state (N x H).
    pub h_prev: &'a [T],
    /// The new hidden state (N x H).
    pub h: &'a [T],
}

/// What a whole-sequence layer reads: the values x (N, T, F), or the token ids (N, T) of
/// an `Embedding` whose table E (V x F) the layer looks up itself. Then x (E's row of each
/// id) is never multiplied: the input products `x W_ih^T + b` of all N T positions are
/// rows of the V x G H table `E W_ih^T + b` (one small GEMM), and the backward's `dX = dPre
/// W_ih` and `dW_ih = dPre^T X` become products of dPre summed per token (V rows rather
/// than N T).
///
/// ```
/// use backprop::tensor::kernels::{rnn_sequence_forward, Params, RecurrentShape, SequenceInput, SequenceWorkspace};
/// // Tokens 1 then 0 of the table [[0.5], [1.0]] through h_t = tanh(x_t + h_(t-1)).
/// let s = RecurrentShape::new(1, 2, 1, 1).unwrap();
/// let p = Params { w_ih: &[1.0f64], w_hh: &[1.0], b_ih: &[0.0], b_hh: &[0.0] };
/// let mut out = [0.0; 2];
/// let tokens = SequenceInput::Tokens { ids: &[1.0, 0.0], table: &[0.5, 1.0] };
/// rnn_sequence_forward(&s, &p, tokens, &mut out, &mut SequenceWorkspace::new());
/// assert_eq!(out, [1.0f64.tanh(), (0.5 + 1.0f64.tanh()).tanh()]);
/// ```
#[derive(Clone, Copy, Debug)]
pub enum SequenceInput<'a, T> {
    /// x, (N, T, F) row-major.
    Values(&'a [T]),
    /// Token ids looked up in a table.
    Tokens {
        /// N T whole numbers below V, (N, T) row-major.
        ids: &'a [T],
        /// E, V x F row-major.
        table: &'a [T],
    },
}

/// Where a whole-sequence backward puts the gradient of what the layer read: dX (N, T, F),
/// written, for [`SequenceInput::Values`]; dJ/dE (V x F), added to, for
/// [`SequenceInput::Tokens`] (the `Embedding`'s own backward then has nothing left to do).
///
/// ```
/// use backprop::tensor::kernels::{
///     rnn_sequence_backward, rnn_sequence_forward, InputGrad, ParamGrads, Params,
///     RecurrentShape, SequenceInput, SequenceWorkspace,
/// };
/// // One step h = tanh(2 e) of token 1 of the table [[0.0], [0.5]], dJ/dh = 1: row 1 of the
/// // table gets 2 (1 - h^2) (added to the 1 it held), row 0 nothing; dW_ih = (1 - h^2) e.
/// let s = RecurrentShape::new(1, 1, 1, 1).unwrap();
/// let p = Params { w_ih: &[2.0f64], w_hh: &[0.0], b_ih: &[0.0], b_hh: &[0.0] };
/// let mut ws = SequenceWorkspace::new();
/// let mut h = [0.0];
/// let tokens = SequenceInput::Tokens { ids: &[1.0], table: &[0.0, 0.5] };
/// rnn_sequence_forward(&s, &p, tokens, &mut h, &mut ws);
/// let (mut w_ih, mut w_hh, mut b_ih, mut b_hh) = ([0.0], [0.0], [0.0], [0.0]);
/// let mut g = ParamGrads { w_ih: &mut w_ih, w_hh: &mut w_hh, b_ih: &mut b_ih, b_hh: &mut b_hh };
/// let mut de = [0.0, 1.0];
/// rnn_sequence_backward(&s, &p, &[1.0], &mut ws, InputGrad::Table(&mut de), &mut g);
/// let d = 1.0 - h[0] * h[0];
/// assert_eq!(de[0], 0.0);
/// assert!((de[1] - (1.0 + 2.0 * d)).abs() < 1e-15);
/// assert!((w_ih[0] - 0.5 * d).abs() < 1e-15);
/// ```
#[derive(Debug)]
pub enum InputGrad<'a, T> {
    /// dX, (N, T, F), overwritten.
    Values(&'a mut [T]),
    /// dJ/dE, V x F, added to.
    Table(&'a mut [T]),
}

fn check_params<T>(s: &RecurrentShape, g: usize, p: &Params<'_, T>) {
    let gh = g * s.hidden;
    assert_eq!(p.w_ih.len(), gh * s.input, "recurrent: w_ih length");
    assert_eq!(p.w_hh.len(), gh * s.hidden, "recurrent: w_hh length");
    assert_eq!(p.b_ih.len(), gh, "recurrent: b_ih length");
    assert_eq!(p.b_hh.len(), gh, "recurrent: b_hh length");
}

/// `pre = x W_ih^T + b_ih + h W_hh^T + b_hh` (N x G H).
fn pre_activations<T: Float>(
    s: &RecurrentShape,
    g: usize,
    p: &Params<'_, T>,
    x: &[T],
    h_prev: &[T],
    pre: &mut [T],
) {
    check_params(s, g, p);
    let (n, f, h, gh) = (s.batch, s.input, s.hidden, g * s.hidden);
    assert_eq!(x.len(), n * f, "recurrent: input length");
    assert_eq!(h_prev.len(), n * h, "recurrent: hidden state length");
    assert_eq!(pre.len(), n * gh, "recurrent: gates length");
    for row in pre.chunks_exact_mut(gh) {
        for ((v, &a), &b) in row.iter_mut().zip(p.b_ih).zip(p.b_hh) {
            *v = a + b;
        }
    }
    let view = |d, r, c| MatRef::row_major(d, r, c).expect("length checked");
    matmul(pre, view(x, n, f), view(p.w_ih, gh, f).t(), T::one(), true);
    matmul(
        pre,
        view(h_prev, n, h),
        view(p.w_hh, gh, h).t(),
        T::one(),
        true,
    );
}

/// From `dpre` (N x G H): `dx = dpre W_ih`, `dh_prev = dpre W_hh` (written), and the
/// parameter gradients (added).
fn affine_backward<T: Float>(
    s: &RecurrentShape,
    g: usize,
    p: &Params<'_, T>,
    x: &[T],
    h_prev: &[T],
    out: &mut StepGrads<'_, T>,
    grads: &mut ParamGrads<'_, T>,
) {
    let (n, f, h, gh) = (s.batch, s.input, s.hidden, g * s.hidden);
    assert_eq!(x.len(), n * f, "recurrent backward: input length");
    assert_eq!(
        h_prev.len(),
        n * h,
        "recurrent backward: hidden state length"
    );
    assert_eq!(out.dx.len(), n * f, "recurrent backward: dx length");
    assert_eq!(
        out.dh_prev.len(),
        n * h,
        "recurrent backward: dh_prev length"
    );
    assert_eq!(
        grads.w_ih.len(),
        gh * f,
        "recurrent backward: w_ih gradient length"
    );
    assert_eq!(
        grads.w_hh.len(),
        gh * h,
        "recurrent backward: w_hh gradient length"
    );
    assert_eq!(
        grads.b_ih.len(),
        gh,
        "recurrent backward: b_ih gradient length"
    );
    assert_eq!(
        grads.b_hh.len(),
        gh,
        "recurrent backward: b_hh gradient length"
    );
    let view = |d, r, c| MatRef::row_major(d, r, c).expect("length checked");
    let dpre = view(&*out.dpre, n, gh);
    matmul(out.dx, dpre, view(p.w_ih, gh, f), T::one(), false);
    matmul(out.dh_prev, dpre, view(p.w_hh, gh, h), T::one(), false);
    matmul(grads.w_ih, dpre.t(), view(x, n, f), T::one(), true);
    matmul(grads.w_hh, dpre.t(), view(h_prev, n, h), T::one(), true);
    for row in out.dpre.chunks_exact(gh) {
        for ((a, b), &d) in grads.b_ih.iter_mut().zip(grads.b_hh.iter_mut()).zip(row) {
            *a += d;
            *b += d;
        }
    }
}

/// Whether `T` is `f32`: there the gates use a rational approximation of tanh that the
/// compiler vectorizes (libm's scalar `expf`/`tanhf` took a quarter of a char-LSTM training
/// step); `f64` keeps the library's `exp` and `tanh`, the reference the tests hold to 1e-9.
fn single<T: Float>() -> bool {
    T::EPS.to_f64() > 1e-10
}

/// tanh; for `f32`, the odd 13/6 rational minimax approximation of Eigen
/// (`generic_fast_tanh_float`), within 2e-7 of tanh everywhere (tested), clamped where
/// tanh rounds to ±1 in `f32`. A NaN stays NaN (the clamp compares; it does not use `max`).
#[inline(always)]
fn tanh_gate<T: Float>(x: T) -> T {
    if !single::<T>() {
        return x.tanh();
    }
    let c = |v: f64| T::from_f64(v);
    let bound = c(7.905_311_107_635_498);
    let x = if x > bound {
        bound
    } else if x < -bound {
        -bound
    } else {
        x
    };
    let x2 = x * x;
    let mut p = c(-2.760_768_477_423_55e-16);
    for a in [
        2.000_187_904_824_77e-13,
        -8.604_671_522_137_35e-11,
        5.122_297_090_371_14e-8,
        1.485_722_357_179_79e-5,
        6.372_619_288_754_36e-4,
        4.893_524_558_917_86e-3,
    ] {
        p = p * x2 + c(a);
    }
    let mut q = c(1.198_258_394_667_02e-6);
    for b in [
        1.185_347_056_866_54e-4,
        2.268_434_632_439e-3,
        4.893_525_185_543_85e-3,
    ] {
        q = q * x2 + c(b);
    }
    x * p / q
}

/// The logistic sigmoid 1 / (1 + e^-z); for `f32`, 1/2 + tanh(z / 2) / 2 through [`tanh_gate`].
#[inline(always)]
fn sigmoid<T: Float>(z: T) -> T {
    if single::<T>() {
        let half = T::from_f64(0.5);
        half + half * tanh_gate(half * z)
    } else {
        T::one() / (T::one() + (-z).exp())
    }
}

/// The LSTM cells of one step for a batch, in place: `gates` (N x 4H) holds the
/// pre-activations on entry and the activated gates `[i f g o]` on exit; writes
/// `c = f . c_prev + i . g`, `h = o . tanh(c)` and, when given, `tanh(c)` (N x H each).
fn lstm_cells_forward<T: Float>(
    hid: usize,
    gates: &mut [T],
    c_prev: &[T],
    c: &mut [T],
    h: &mut [T],
    tanh_c: Option<&mut [T]>,
) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        if let (Some(g), Some(cp), Some(c), Some(h)) = (
            as_f32_mut(gates),
            as_f32(c_prev),
            as_f32_mut(c),
            as_f32_mut(h),
        ) {
            let t = tanh_c.map(|t| as_f32_mut(t).expect("T is f32"));
            // SAFETY: the CPU has AVX2 and FMA (checked above), all the function needs.
            unsafe { lstm_cells_forward_avx2(hid, g, cp, c, h, t) };
            return;
        }
    }
    lstm_cells_forward_body(hid, gates, c_prev, c, h, tanh_c);
}

/// [`lstm_cells_forward`] on AVX2, 8 units at a time in explicit vectors (the compiler left
/// the zipped scalar loop scalar: a quarter of a char-LSTM training step), the leftover
/// units through the scalar body: the same operations in the same order (no contraction
/// into FMAs), so the same bits.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn lstm_cells_forward_avx2(
    hid: usize,
    gates: &mut [f32],
    c_prev: &[f32],
    c: &mut [f32],
    h: &mut [f32],
    mut tanh_c: Option<&mut [f32]>,
) {
    use std::arch::x86_64::*;
    let n = c_prev.len() / hid;
    assert!(
        gates.len() == n * 4 * hid && c.len() == n * hid && h.len() == n * hid,
        "lstm cells: lengths"
    );
    if let Some(t) = tanh_c.as_deref() {
        assert_eq!(t.len(), n * hid, "lstm cells: tanh(c) length");
    }
    let wide = hid / 8 * 8;
    for b in 0..n {
        let gp = gates.as_mut_ptr().add(b * 4 * hid);
        let row = b * hid;
        for u in (0..wide).step_by(8) {
            // SAFETY: u + 8 <= hid, and every row is inside its slice (lengths asserted
            // above): gates row b spans 4 hid values, the others hid.
            let (ip, fp, gq, op) = (
                gp.add(u),
                gp.add(hid + u),
                gp.add(2 * hid + u),
                gp.add(3 * hid + u),
            );
            let i = sigmoid8(_mm256_loadu_ps(ip));
            let f = sigmoid8(_mm256_loadu_ps(fp));
            let g = tanh8(_mm256_loadu_ps(gq));
            let o = sigmoid8(_mm256_loadu_ps(op));
            _mm256_storeu_ps(ip, i);
            _mm256_storeu_ps(fp, f);
            _mm256_storeu_ps(gq, g);
            _mm256_storeu_ps(op, o);
            let cp = _mm256_loadu_ps(c_prev.as_ptr().add(row + u));
            let cn = _mm256_add_ps(_mm256_mul_ps(f, cp), _mm256_mul_ps(i, g));
            _mm256_storeu_ps(c.as_mut_ptr().add(row + u), cn);
            let tc = tanh8(cn);
            if let Some(t) = tanh_c.as_deref_mut() {
                _mm256_storeu_ps(t.as_mut_ptr().add(row + u), tc);
            }
            _mm256_storeu_ps(h.as_mut_ptr().add(row + u), _mm256_mul_ps(o, tc));
        }
        for u in wide..hid {
            let g = &mut gates[b * 4 * hid..(b + 1) * 4 * hid];
            let (i, f, gg, o) = (
                sigmoid(g[u]),
                sigmoid(g[hid + u]),
                tanh_gate(g[2 * hid + u]),
                sigmoid(g[3 * hid + u]),
            );
            (g[u], g[hid + u], g[2 * hid + u], g[3 * hid + u]) = (i, f, gg, o);
            let cn = f * c_prev[row + u] + i * gg;
            c[row + u] = cn;
            let tc = tanh_gate(cn);
            if let Some(t) = tanh_c.as_deref_mut() {
                t[row + u] = tc;
            }
            h[row + u] = o * tc;
        }
    }
}

/// [`sigmoid`] on 8 lanes of `f32`: 1/2 + tanh(z / 2) / 2, as the scalar one.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn sigmoid8(z: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let half = _mm256_set1_ps(0.5);
    _mm256_add_ps(half, _mm256_mul_ps(half, tanh8(_mm256_mul_ps(half, z))))
}

/// [`tanh_gate`] on 8 lanes of `f32`, the same operations in the same order. The clamp's
/// `min(bound, x)` and `max(-bound, x)` return their second operand `x` when it is NaN, as
/// the scalar comparisons do.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tanh8(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let bound = 7.905_311_107_635_498_f64 as f32;
    let x = _mm256_max_ps(
        _mm256_set1_ps(-bound),
        _mm256_min_ps(_mm256_set1_ps(bound), x),
    );
    let x2 = _mm256_mul_ps(x, x);
    let mut p = _mm256_set1_ps(-2.760_768_477_423_55e-16_f64 as f32);
    for a in [
        2.000_187_904_824_77e-13_f64,
        -8.604_671_522_137_35e-11,
        5.122_297_090_371_14e-8,
        1.485_722_357_179_79e-5,
        6.372_619_288_754_36e-4,
        4.893_524_558_917_86e-3,
    ] {
        p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(a as f32));
    }
    let mut q = _mm256_set1_ps(1.198_258_394_667_02e-6_f64 as f32);
    for b in [
        1.185_347_056_866_54e-4_f64,
        2.268_434_632_439e-3,
        4.893_525_185_543_85e-3,
    ] {
        q = _mm256_add_ps(_mm256_mul_ps(q, x2), _mm256_set1_ps(b as f32));
    }
    _mm256_div_ps(_mm256_mul_ps(x, p), q)
}

#[inline(always)]
fn lstm_cells_forward_body<T: Float>(
    hid: usize,
    gates: &mut [T],
    c_prev: &[T],
    c: &mut [T],
    h: &mut [T],
    mut tanh_c: Option<&mut [T]>,
) {
    for (b, (((gates, c_prev), c), h)) in gates
        .chunks_exact_mut(4 * hid)
        .zip(c_prev.chunks_exact(hid))
        .zip(c.chunks_exact_mut(hid))
        .zip(h.chunks_exact_mut(hid))
        .enumerate()
    {
        let (i, rest) = gates.split_at_mut(hid);
        let (f, rest) = rest.split_at_mut(hid);
        let (g, o) = rest.split_at_mut(hid);
        // i, f and o are sigmoids; g, the third block, is a tanh.
        for ((((((i, f), g), o), &cp), c), h) in i
            .iter_mut()
            .zip(f.iter_mut())
            .zip(g.iter_mut())
            .zip(o.iter_mut())
            .zip(c_prev)
            .zip(c.iter_mut())
            .zip(h.iter_mut())
        {
            (*i, *f, *g, *o) = (sigmoid(*i), sigmoid(*f), tanh_gate(*g), sigmoid(*o));
            *c = *f * cp + *i * *g;
            *h = tanh_gate(*c); // times o below, once tanh(c) is kept
        }
        if let Some(t) = tanh_c.as_deref_mut() {
            t[b * hid..(b + 1) * hid].copy_from_slice(h);
        }
        h.iter_mut().zip(o.iter()).for_each(|(h, &o)| *h = o * *h);
    }
}

/// The backward of [`lstm_cells_forward`] for one step, from the gradients `dh`, `dc` of
/// the new states: writes `dc_prev` (N x H) and `dpre`, the gradient of the pre-activation
/// gates (N x 4H).
///
/// ```text
/// dc~ = dc + dh . o . (1 - tanh(c)^2)       dc_prev = dc~ . f
/// dpre_i = dc~ . g . i (1 - i)              dpre_f  = dc~ . c_prev . f (1 - f)
/// dpre_g = dc~ . i . (1 - g^2)              dpre_o  = dh . tanh(c) . o (1 - o)
/// ```
fn lstm_cells_backward<T: Float>(
    hid: usize,
    gates: &[T],
    c_prev: &[T],
    tanh_c: &[T],
    (dh, dc): (&[T], &[T]),
    dc_prev: &mut [T],
    dpre: &mut [T],
) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        if let (Some(g), Some(cp), Some(tc), Some(dh), Some(dc), Some(dcp), Some(dp)) = (
            as_f32(gates),
            as_f32(c_prev),
            as_f32(tanh_c),
            as_f32(dh),
            as_f32(dc),
            as_f32_mut(dc_prev),
            as_f32_mut(dpre),
        ) {
            // SAFETY: the CPU has AVX2 and FMA (checked above), all the function needs.
            unsafe { lstm_cells_backward_avx2(hid, g, cp, tc, (dh, dc), dcp, dp) };
            return;
        }
    }
    lstm_cells_backward_body(hid, gates, c_prev, tanh_c, (dh, dc), dc_prev, dpre);
}

/// [`lstm_cells_backward`] on AVX2, 8 units at a time in explicit vectors and the leftover
/// units in scalars, with the same operations in the same order, so the same bits (as the
/// forward's).
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn lstm_cells_backward_avx2(
    hid: usize,
    gates: &[f32],
    c_prev: &[f32],
    tanh_c: &[f32],
    (dh, dc): (&[f32], &[f32]),
    dc_prev: &mut [f32],
    dpre: &mut [f32],
) {
    use std::arch::x86_64::*;
    let n = c_prev.len() / hid;
    assert!(
        gates.len() == n * 4 * hid
            && dpre.len() == n * 4 * hid
            && [tanh_c.len(), dh.len(), dc.len(), dc_prev.len()] == [n * hid; 4],
        "lstm cells backward: lengths"
    );
    let wide = hid / 8 * 8;
    let one = _mm256_set1_ps(1.0);
    for b in 0..n {
        let (row, grow) = (b * hid, b * 4 * hid);
        for u in (0..wide).step_by(8) {
            // SAFETY: u + 8 <= hid, and every row is inside its slice (lengths asserted
            // above): rows of gates and dpre span 4 hid values, the others hid.
            let ld = |v: &[f32], at: usize| _mm256_loadu_ps(v.as_ptr().add(at));
            let (i, f) = (ld(gates, grow + u), ld(gates, grow + hid + u));
            let (g, o) = (ld(gates, grow + 2 * hid + u), ld(gates, grow + 3 * hid + u));
            let (tc, dhv, cp) = (ld(tanh_c, row + u), ld(dh, row + u), ld(c_prev, row + u));
            let mul = |a, b| _mm256_mul_ps(a, b);
            let sub = |a, b| _mm256_sub_ps(a, b);
            let dct = _mm256_add_ps(ld(dc, row + u), mul(mul(dhv, o), sub(one, mul(tc, tc))));
            _mm256_storeu_ps(dc_prev.as_mut_ptr().add(row + u), mul(dct, f));
            let d = dpre.as_mut_ptr().add(grow + u);
            _mm256_storeu_ps(d, mul(mul(mul(dct, g), i), sub(one, i)));
            _mm256_storeu_ps(d.add(hid), mul(mul(mul(dct, cp), f), sub(one, f)));
            _mm256_storeu_ps(d.add(2 * hid), mul(mul(dct, i), sub(one, mul(g, g))));
            _mm256_storeu_ps(d.add(3 * hid), mul(mul(mul(dhv, tc), o), sub(one, o)));
        }
        for u in wide..hid {
            let (i, f, g, o, tc) = (
                gates[grow + u],
                gates[grow + hid + u],
                gates[grow + 2 * hid + u],
                gates[grow + 3 * hid + u],
                tanh_c[row + u],
            );
            let dct = dc[row + u] + dh[row + u] * o * (1.0 - tc * tc);
            dc_prev[row + u] = dct * f;
            let d = &mut dpre[grow..grow + 4 * hid];
            d[u] = dct * g * i * (1.0 - i);
            d[hid + u] = dct * c_prev[row + u] * f * (1.0 - f);
            d[2 * hid + u] = dct * i * (1.0 - g * g);
            d[3 * hid + u] = dh[row + u] * tc * o * (1.0 - o);
        }
    }
}

#[inline(always)]
fn lstm_cells_backward_body<T: Float>(
    hid: usize,
    gates: &[T],
    c_prev: &[T],
    tanh_c: &[T],
    (dh, dc): (&[T], &[T]),
    dc_prev: &mut [T],
    dpre: &mut [T],
) {
    let one = T::one();
    for ((((((gates, c_prev), tc), dh), dc), dc_prev), dpre) in gates
        .chunks_exact(4 * hid)
        .zip(c_prev.chunks_exact(hid))
        .zip(tanh_c.chunks_exact(hid))
        .zip(dh.chunks_exact(hid))
        .zip(dc.chunks_exact(hid))
        .zip(dc_prev.chunks_exact_mut(hid))
        .zip(dpre.chunks_exact_mut(4 * hid))
    {
        let (i, rest) = gates.split_at(hid);
        let (f, rest) = rest.split_at(hid);
        let (g, o) = rest.split_at(hid);
        let (di, rest) = dpre.split_at_mut(hid);
        let (df, rest) = rest.split_at_mut(hid);
        let (dg, d_o) = rest.split_at_mut(hid);
        for u in 0..hid {
            let (i, f, g, o, tc) = (i[u], f[u], g[u], o[u], tc[u]);
            let dct = dc[u] + dh[u] * o * (one - tc * tc);
            dc_prev[u] = dct * f;
            di[u] = dct * g * i * (one - i);
            df[u] = dct * c_prev[u] * f * (one - f);
            dg[u] = dct * i * (one - g * g);
            d_o[u] = dh[u] * tc * o * (one - o);
        }
    }
}

/// One LSTM step, `nn.LSTM`'s: writes the activated gates `[i f g o]` (N x 4H, kept for
/// the backward), the new cell state `c = f . c_prev + i . g` and the new hidden state
/// `h = o . tanh(c)`.
///
/// # Panics
/// If a slice's length differs from what `s` says.
///
/// ```
/// use backprop::tensor::kernels::{lstm_step_forward, Params, RecurrentShape};
/// // One unit, zero weights, biases making every pre-activation 0: i = f = o = 1/2, g = 0,
/// // so c = c_prev / 2 and h = tanh(c) / 2.
/// let s = RecurrentShape::new(1, 1, 1, 1).unwrap();
/// let z = [0.0f64; 4];
/// let p = Params { w_ih: &z, w_hh: &z, b_ih: &z, b_hh: &z };
/// let (mut gates, mut c, mut h) = ([0.0; 4], [0.0], [0.0]);
/// lstm_step_forward(&s, &p, &[1.0], &[0.0], &[2.0], &mut gates, &mut c, &mut h);
/// assert_eq!(gates, [0.5, 0.5, 0.0, 0.5]);
/// assert_eq!(c, [1.0]);
/// assert_eq!(h, [0.5 * 1.0f64.tanh()]);
/// ```
#[allow(clippy::too_many_arguments)] // three inputs and three outputs, each its own slice
pub fn lstm_step_forward<T: Float>(
    s: &RecurrentShape,
    p: &Params<'_, T>,
    x: &[T],
    h_prev: &[T],
    c_prev: &[T],
    gates: &mut [T],
    c: &mut [T],
    h: &mut [T],
) {
    let hid = s.hidden;
    assert_eq!(c_prev.len(), s.batch * hid, "lstm: cell state length");
    assert_eq!(c.len(), s.batch * hid, "lstm: new cell state length");
    assert_eq!(h.len(), s.batch * hid, "lstm: new hidden state length");
    pre_activations(s, 4, p, x, h_prev, gates);
    lstm_cells_forward(hid, gates, c_prev, c, h, None);
}

/// The backward of [`lstm_step_forward`], given the gradients `dh` and `dc` of the step's
/// new states: writes `out` (`dx`, `dh_prev`, `dc_prev`, and `dpre`, the gradient of the
/// pre-activation gates) and adds the parameter gradients into `grads`.
///
/// ```text
/// dc~ = dc + dh . o . (1 - tanh(c)^2)       dc_prev = dc~ . f
/// dpre_i = dc~ . g . i (1 - i)              dpre_f  = dc~ . c_prev . f (1 - f)
/// dpre_g = dc~ . i . (1 - g^2)              dpre_o  = dh . tanh(c) . o (1 - o)
/// ```
///
/// # Panics
/// If a slice's length differs from what `s` says.
///
/// ```
/// use backprop::tensor::kernels::{
///     lstm_step_backward, LstmSaved, ParamGrads, Params, RecurrentShape, StepGrads,
/// };
/// // i = f = o = 1/2, g = 0, c_prev = 2, c = 1 (the forward's example); with dh = 0 and
/// // dc = 1: dc_prev = f = 1/2, dpre_f = c_prev f (1 - f) = 1/2, dpre_g = i = 1/2.
/// let s = RecurrentShape::new(1, 1, 1, 1).unwrap();
/// let z = [0.0f64; 4];
/// let p = Params { w_ih: &z, w_hh: &z, b_ih: &z, b_hh: &z };
/// let saved = LstmSaved { x: &[1.0], h_prev: &[0.0], c_prev: &[2.0], gates: &[0.5, 0.5, 0.0, 0.5], c: &[1.0] };
/// let (mut dx, mut dh_prev, mut dc_prev, mut dpre) = ([0.0], [0.0], [0.0], [0.0; 4]);
/// let (mut gw_ih, mut gw_hh, mut gb_ih, mut gb_hh) = ([0.0; 4], [0.0; 4], [0.0; 4], [0.0; 4]);
/// let mut grads = ParamGrads { w_ih: &mut gw_ih, w_hh: &mut gw_hh, b_ih: &mut gb_ih, b_hh: &mut gb_hh };
/// let out = StepGrads { dx: &mut dx, dh_prev: &mut dh_prev, dc_prev: &mut dc_prev, dpre: &mut dpre };
/// lstm_step_backward(&s, &p, &saved, &[0.0], &[1.0], out, &mut grads);
/// assert_eq!(dpre, [0.0, 0.5, 0.5, 0.0]);
/// assert_eq!(dc_prev, [0.5]);
/// assert_eq!(gw_ih, [0.0, 0.5, 0.5, 0.0]); // dpre^T x with x = 1
/// ```
pub fn lstm_step_backward<T: Float>(
    s: &RecurrentShape,
    p: &Params<'_, T>,
    saved: &LstmSaved<'_, T>,
    dh: &[T],
    dc: &[T],
    mut out: StepGrads<'_, T>,
    grads: &mut ParamGrads<'_, T>,
) {
    let (n, hid) = (s.batch, s.hidden);
    assert_eq!(
        saved.gates.len(),
        n * 4 * hid,
        "lstm backward: gates length"
    );
    for (what, len) in [
        ("c_prev", saved.c_prev.len()),
        ("c", saved.c.len()),
        ("dh", dh.len()),
        ("dc", dc.len()),
        ("dc_prev", out.dc_prev.len()),
    ] {
        assert_eq!(len, n * hid, "lstm backward: {what} length");
    }
    assert_eq!(out.dpre.len(), n * 4 * hid, "lstm backward: dpre length");
    assert_eq!(out.dh_prev.len(), n * hid, "lstm backward: dh_prev length");
    // tanh(c) goes into dh_prev, which the affine backward overwrites after.
    for (t, &c) in out.dh_prev.iter_mut().zip(saved.c) {
        *t = tanh_gate(c);
    }
    lstm_cells_backward(
        hid,
        saved.gates,
        saved.c_prev,
        &*out.dh_prev,
        (dh, dc),
        &mut *out.dc_prev,
        &mut *out.dpre,
    );
    check_params(s, 4, p);
    affine_backward(s, 4, p, saved.x, saved.h_prev, &mut out, grads);
}

/// One tanh-RNN step, `nn.RNN`'s: writes `h = tanh(x W_ih^T + b_ih + h_prev W_hh^T + b_hh)`
/// (N x H), which is also all its backward needs besides the inputs.
///
/// # Panics
/// If a slice's length differs from what `s` says.
///
/// ```
/// use backprop::tensor::kernels::{rnn_step_forward, Params, RecurrentShape};
/// // h = tanh(2 x + 0.5 h_prev + 0.25 + 0.25) with x = 1, h_prev = -2.
/// let s = RecurrentShape::new(1, 1, 1, 1).unwrap();
/// let p = Params { w_ih: &[2.0f64], w_hh: &[0.5], b_ih: &[0.25], b_hh: &[0.25] };
/// let mut h = [0.0];
/// rnn_step_forward(&s, &p, &[1.0], &[-2.0], &mut h);
/// assert_eq!(h, [1.5f64.tanh()]);
/// ```
pub fn rnn_step_forward<T: Float>(
    s: &RecurrentShape,
    p: &Params<'_, T>,
    x: &[T],
    h_prev: &[T],
    h: &mut [T],
) {
    pre_activations(s, 1, p, x, h_prev, h);
    h.iter_mut().for_each(|v| *v = tanh_gate(*v));
}

/// The backward of [`rnn_step_forward`], given the gradient `dh` of the new hidden state:
/// `dpre = dh . (1 - h^2)`, then writes `out.dx`, `out.dh_prev`, `out.dpre` (`out.dc_prev`
/// is unused and may be empty) and adds the parameter gradients into `grads`.
///
/// # Panics
/// If a slice's length differs from what `s` says.
///
/// ```
/// use backprop::tensor::kernels::{
///     rnn_step_backward, ParamGrads, Params, RecurrentShape, RnnSaved, StepGrads,
/// };
/// // h = tanh(pre) = 0.5: dpre = dh (1 - 0.25); dx = 2 dpre, dh_prev = 0.5 dpre.
/// let s = RecurrentShape::new(1, 1, 1, 1).unwrap();
/// let p = Params { w_ih: &[2.0f64], w_hh: &[0.5], b_ih: &[0.0], b_hh: &[0.0] };
/// let saved = RnnSaved { x: &[3.0], h_prev: &[-1.0], h: &[0.5] };
/// let (mut dx, mut dh_prev, mut dpre) = ([0.0], [0.0], [0.0]);
/// let (mut gw_ih, mut gw_hh, mut gb_ih, mut gb_hh) = ([0.0], [0.0], [0.0], [0.0]);
/// let mut grads = ParamGrads { w_ih: &mut gw_ih, w_hh: &mut gw_hh, b_ih: &mut gb_ih, b_hh: &mut gb_hh };
/// let out = StepGrads { dx: &mut dx, dh_prev: &mut dh_prev, dc_prev: &mut [], dpre: &mut dpre };
/// rnn_step_backward(&s, &p, &saved, &[4.0], out, &mut grads);
/// assert_eq!((dpre, dx, dh_prev), ([3.0], [6.0], [1.5]));
/// assert_eq!((gw_ih, gw_hh, gb_ih), ([9.0], [-3.0], [3.0]));
/// ```
pub fn rnn_step_backward<T: Float>(
    s: &RecurrentShape,
    p: &Params<'_, T>,
    saved: &RnnSaved<'_, T>,
    dh: &[T],
    mut out: StepGrads<'_, T>,
    grads: &mut ParamGrads<'_, T>,
) {
    let len = s.batch * s.hidden;
    assert_eq!(saved.h.len(), len, "rnn backward: h length");
    assert_eq!(dh.len(), len, "rnn backward: dh length");
    assert_eq!(out.dpre.len(), len, "rnn backward: dpre length");
    for ((d, &g), &h) in out.dpre.iter_mut().zip(dh).zip(saved.h) {
        *d = g * (T::one() - h * h);
    }
    check_params(s, 1, p);
    affine_backward(s, 1, p, saved.x, saved.h_prev, &mut out, grads);
}

/// The states a whole-sequence forward keeps for its backward, and the backward's scratch:
/// grown to the largest shape seen, then reused, so a warm training step allocates nothing.
/// One workspace serves either cell; a backward must follow a forward of the same cell and
/// shape. After a backward it also holds every step's `dpre`, from which
/// [`recurrent_param_grads_per_example`] builds each sequence's own parameter gradients.
#[derive(Clone, Debug, Default)]
pub struct SequenceWorkspace<T> {
    /// The shape and gate count (4 LSTM, 1 RNN) of the last forward.
    last: Option<(RecurrentShape, usize)>,
    /// Whether a backward followed that forward (`dpre` is then filled).
    backward_done: bool,
    /// x, by [`Halves`]: each half's T blocks (time-major), so all steps' input products
    /// are one GEMM (for values). So are the other buffers of blocks below.
    xs: Vec<T>,
    /// h_0 = 0, h_1, ..., h_T: T + 1 blocks of N x H. For the RNN, blocks 1..T first hold
    /// the pre-activations.
    hs: Vec<T>,
    /// c_0 = 0, c_1, ..., c_T (LSTM).
    cs: Vec<T>,
    /// tanh(c_1), ..., tanh(c_T) (LSTM), kept so the backward need not recompute them.
    tanh_c: Vec<T>,
    /// Each step's pre-activations, then activated gates (LSTM): T blocks of N x 4H.
    gates: Vec<T>,
    /// Each step's gradient of the pre-activations: T blocks of N x G H.
    dpre: Vec<T>,
    /// Backward scratch: dh, dc (incoming), dh_prev, dc_prev (N x H each).
    dh: Vec<T>,
    dc: Vec<T>,
    dh_prev: Vec<T>,
    dc_prev: Vec<T>,
    /// The input gradient, time-major (T blocks of N x F).
    dxs: Vec<T>,
    /// `W_hh` packed for the per-step products of the last pass (see [`pack_w_hh`]).
    packed: Vec<f32>,
    /// For [`SequenceInput::Tokens`] (else empty): each row's token, by [`Halves`] as `xs`;
    /// the table E the forward read; and V x G H per token: `b_ih + b_hh + E W_ih^T` after
    /// the forward, the sums of dPre after the backward.
    ids: Vec<u32>,
    table: Vec<T>,
    per_token: Vec<T>,
}

/// Sets `v`'s length to `len`, keeping its allocation and (up to `len`) its values: every
/// value a pass reads it writes first, except h_0, c_0 and the incoming dh, dc, which are
/// zeroed explicitly.
fn fit<T: Float>(v: &mut Vec<T>, len: usize) {
    v.resize(len, T::zero());
}

impl<T: Float> SequenceWorkspace<T> {
    /// An empty workspace; the first forward sizes it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sizes the buffers (zeroing h_0 and c_0) and copies x (N, T, F) time-major, from the
    /// values given or the table rows of the tokens (keeping the ids and the table).
    fn start(&mut self, s: &RecurrentShape, g: usize, input: SequenceInput<'_, T>) {
        let (n, t, f, h) = (s.batch, s.steps, s.input, s.hidden);
        self.last = Some((*s, g));
        self.backward_done = false;
        let lstm = g == 4;
        fit(&mut self.xs, t * n * f);
        fit(&mut self.hs, (t + 1) * n * h);
        fit(&mut self.cs, if lstm { (t + 1) * n * h } else { 0 });
        fit(&mut self.tanh_c, if lstm { t * n * h } else { 0 });
        fit(&mut self.gates, if lstm { t * n * 4 * h } else { 0 });
        let halves = Halves::of(n);
        for (first, m) in halves.parts() {
            let zero = halves.row(t + 1, 0, first) * h..(halves.row(t + 1, 0, first) + m) * h;
            self.hs[zero.clone()].fill(T::zero());
            if lstm {
                self.cs[zero].fill(T::zero());
            }
        }
        match input {
            SequenceInput::Values(x) => {
                assert_eq!(x.len(), n * t * f, "sequence: input length");
                self.ids.clear();
                self.table.clear();
                for (b, seq) in x.chunks_exact(t * f).enumerate() {
                    for (step, x_t) in seq.chunks_exact(f).enumerate() {
                        self.xs[halves.row(t, step, b) * f..][..f].copy_from_slice(x_t);
                    }
                }
            }
            SequenceInput::Tokens { ids, table } => {
                assert_eq!(ids.len(), n * t, "sequence: token count");
                assert!(
                    !table.is_empty() && table.len() % f == 0,
                    "sequence: a table of rows of {f} values"
                );
                let vocab = table.len() / f;
                assert!(
                    vocab <= u32::MAX as usize,
                    "sequence: a table of {vocab} rows"
                );
                fit(&mut self.table, table.len());
                self.table.copy_from_slice(table);
                self.ids.resize(n * t, 0);
                for (b, seq) in ids.chunks_exact(t).enumerate() {
                    for (step, &id) in seq.iter().enumerate() {
                        let id = id.to_f64();
                        assert!(
                            id >= 0.0 && id.fract() == 0.0 && id < vocab as f64,
                            "sequence: token {id} of a table of {vocab} rows"
                        );
                        let (row, id) = (halves.row(t, step, b), id as usize);
                        self.ids[row] = id as u32;
                        self.xs[row * f..][..f].copy_from_slice(&table[id * f..][..f]);
                    }
                }
            }
        }
    }

    /// For tokens, the per-token input products `b_ih + b_hh + E W_ih^T` (V x G H) that
    /// [`input_projection`] looks up.
    fn tabulate_inputs(&mut self, p: &Params<'_, T>) {
        if self.ids.is_empty() {
            return;
        }
        let gh = p.b_ih.len();
        let f = p.w_ih.len() / gh;
        let vocab = self.table.len() / f;
        fit(&mut self.per_token, vocab * gh);
        bias_rows(p, &mut self.per_token);
        matmul(
            &mut self.per_token,
            view(&self.table, vocab, f),
            view(p.w_ih, gh, f).t(),
            T::one(),
            true,
        );
    }

    /// Copies h_1..h_T into `out` (N, T, H).
    fn outputs(&self, s: &RecurrentShape, out: &mut [T]) {
        let (n, t, h) = (s.batch, s.steps, s.hidden);
        assert_eq!(out.len(), n * t * h, "sequence: output length");
        let halves = Halves::of(n);
        for (b, seq) in out.chunks_exact_mut(t * h).enumerate() {
            for (step, o) in seq.chunks_exact_mut(h).enumerate() {
                o.copy_from_slice(&self.hs[halves.row(t + 1, step + 1, b) * h..][..h]);
            }
        }
    }

    fn start_backward(&mut self, s: &RecurrentShape, g: usize, dout: &[T], dx: &InputGrad<'_, T>) {
        assert_eq!(
            self.last,
            Some((*s, g)),
            "sequence backward: the workspace holds another forward"
        );
        let (n, t, f, h) = (s.batch, s.steps, s.input, s.hidden);
        assert_eq!(
            dout.len(),
            n * t * h,
            "sequence backward: output gradient length"
        );
        match dx {
            InputGrad::Values(dx) => assert_eq!(
                dx.len(),
                n * t * f,
                "sequence backward: input gradient length"
            ),
            InputGrad::Table(dtable) => {
                assert!(
                    !self.ids.is_empty(),
                    "sequence backward: a table gradient after a forward from values"
                );
                assert_eq!(
                    dtable.len(),
                    self.table.len(),
                    "sequence backward: table gradient length"
                );
            }
        }
        let lstm = g == 4;
        fit(&mut self.dh, n * h);
        fit(&mut self.dc, if lstm { n * h } else { 0 });
        fit(&mut self.dh_prev, n * h);
        fit(&mut self.dc_prev, if lstm { n * h } else { 0 });
        fit(&mut self.dpre, t * n * g * h);
        let values = matches!(dx, InputGrad::Values(_));
        fit(&mut self.dxs, if values { t * n * f } else { 0 });
        // Nothing flows back into the last step from after it.
        self.dh_prev.fill(T::zero());
        self.dc_prev.fill(T::zero());
    }
}

/// How the whole-sequence kernels split a batch: the first `ceil(N / 2)` sequences and the
/// rest, each run through every step on its own under `rayon::join` (so on two threads when
/// the pool has them, with nothing shared until the recurrence is over). The split does not
/// depend on the thread count, so neither do the results. Every buffer of per-step blocks
/// holds the first half's blocks (`ceil(N / 2)` rows each, time-major), then the second's.
#[derive(Clone, Copy, Debug)]
struct Halves {
    n: usize,
    n0: usize,
}

impl Halves {
    fn of(n: usize) -> Self {
        Halves {
            n,
            n0: n.div_ceil(2),
        }
    }

    /// (first sequence, number of sequences) of each half; the second is empty when N = 1.
    fn parts(self) -> [(usize, usize); 2] {
        [(0, self.n0), (self.n0, self.n - self.n0)]
    }

    /// The row holding sequence `b`'s block `t` in a buffer of `blocks` blocks per half.
    fn row(self, blocks: usize, t: usize, b: usize) -> usize {
        if b < self.n0 {
            t * self.n0 + b
        } else {
            blocks * self.n0 + t * (self.n - self.n0) + b - self.n0
        }
    }
}

/// Sets `dh` = the gradient flowing back into h_t of the sequences `first..` of one half:
/// `dout[:, t, :]` plus what step t + 1 sent to its previous state (`dh_prev`, zero before
/// the last step's backward).
fn gather_dh<T: Float>(
    s: &RecurrentShape,
    (first, t): (usize, usize),
    dout: &[T],
    dh_prev: &[T],
    dh: &mut [T],
) {
    let (steps, h) = (s.steps, s.hidden);
    for (b, (dh, dh_prev)) in dh
        .chunks_exact_mut(h)
        .zip(dh_prev.chunks_exact(h))
        .enumerate()
    {
        let d = &dout[((first + b) * steps + t) * h..][..h];
        for ((v, &a), &p) in dh.iter_mut().zip(d).zip(dh_prev) {
            *v = a + p;
        }
    }
}

fn view<T: Float>(d: &[T], rows: usize, cols: usize) -> MatRef<'_, T> {
    MatRef::row_major(d, rows, cols).expect("length checked")
}

/// Row r of `pre` set to row `ids[r]` of `per_token` (rows as wide as `pre`'s).
fn look_up<T: Float>(pre: &mut [T], ids: &[u32], per_token: &[T]) {
    let width = pre.len() / ids.len();
    for (row, &id) in pre.chunks_exact_mut(width).zip(ids) {
        row.copy_from_slice(&per_token[id as usize * width..][..width]);
    }
}

/// Each G H-wide row of `rows` set to `b_ih + b_hh`.
fn bias_rows<T: Float>(p: &Params<'_, T>, rows: &mut [T]) {
    for row in rows.chunks_exact_mut(p.b_ih.len()) {
        for ((v, &a), &b) in row.iter_mut().zip(p.b_ih).zip(p.b_hh) {
            *v = a + b;
        }
    }
}

/// The input half of the pre-activations of `rows` rows at once, before the recurrence (it
/// does not depend on h): `pre = b_ih + b_hh + X W_ih^T`, X the rows x F inputs. (For
/// tokens, [`look_up`] in the table of that product per token instead.)
fn input_projection<T: Float>(rows: usize, p: &Params<'_, T>, xs: &[T], pre: &mut [T]) {
    let gh = p.b_ih.len();
    let f = p.w_ih.len() / gh;
    let pre = &mut pre[..rows * gh];
    bias_rows(p, pre);
    matmul(
        pre,
        view(&xs[..rows * f], rows, f),
        view(p.w_ih, gh, f).t(),
        T::one(),
        true,
    );
}

/// The product of each step of the recurrence, `m` rows of one half: `dst += h W_hh^T`
/// (forward: `h` is m x H, `dst` m x G H) or `dst = dpre W_hh` (backward: `dpre` m x G H,
/// `dst` m x H). `w` is `W_hh` and its packing by [`pack_w_hh`] for this direction: the
/// AVX2 kernel when there is one, else `gemm`. One thread each: the halves are the
/// parallelism.
fn step_product<T: Float>(
    dst: &mut [T],
    a: &[T],
    m: usize,
    (w_hh, packed): (&[T], &[f32]),
    forward: bool,
) {
    let k = a.len() / m;
    let other = w_hh.len() / k;
    if !packed.is_empty() {
        if let (Some(d), Some(a)) = (as_f32_mut(dst), as_f32(a)) {
            packed_product(d, a, (m, k, other), packed, forward);
            return;
        }
    }
    let w = view(
        w_hh,
        if forward { other } else { k },
        if forward { k } else { other },
    );
    matmul_with(
        dst,
        view(a, m, k),
        if forward { w.t() } else { w },
        T::one(),
        forward,
        gemm::Parallelism::None,
    );
}

/// `W_hh` packed once per pass for [`step_product`]: the matrix B of the product (`W_hh^T`
/// forward, `W_hh` backward, K x N) in panels of 16 columns, each K rows of 16 contiguous
/// values, so the kernel streams a panel with two aligned-width loads per k. Empty when the
/// AVX2 kernel does not apply (`T` is not `f32`, the CPU lacks AVX2 or FMA, or N is not a
/// multiple of 16), and the products then go through `gemm` unpacked.
fn pack_w_hh<T: Float>(w_hh: &[T], g: usize, h: usize, forward: bool, packed: &mut Vec<f32>) {
    packed.clear();
    let (k, n) = if forward { (h, g * h) } else { (g * h, h) };
    if !(is_f32::<T>() && n % PANEL == 0 && avx2_fma()) {
        return;
    }
    packed.reserve(k * n);
    for p in 0..n / PANEL {
        for kk in 0..k {
            for c in p * PANEL..(p + 1) * PANEL {
                // B[kk][c]: W_hh^T (forward) or W_hh (backward), W_hh being N x K forward.
                let v = if forward {
                    w_hh[c * k + kk]
                } else {
                    w_hh[kk * n + c]
                };
                packed.push(v.to_f64() as f32);
            }
        }
    }
}

/// Columns per panel of the packed B: two AVX registers of `f32`.
const PANEL: usize = 16;

/// `dst (m x n) (+)= a (m x k) B`, B packed by [`pack_w_hh`] (`packed.len() == k n`), on
/// AVX2 and FMA: rows in blocks of 6 against one 16-column panel at a time (12 accumulator
/// registers), each sum over k in order from the value in `dst` (`accumulate`) or zero.
///
/// # Panics
/// If a length disagrees with m, k and n, n is not a multiple of 16, or the CPU lacks AVX2
/// or FMA.
#[cfg(target_arch = "x86_64")]
fn packed_product(
    dst: &mut [f32],
    a: &[f32],
    (m, k, n): (usize, usize, usize),
    packed: &[f32],
    accumulate: bool,
) {
    assert!(avx2_fma(), "packed product: the CPU lacks AVX2 or FMA");
    assert!(n % PANEL == 0, "packed product: n not a multiple of 16");
    assert_eq!(dst.len(), m * n, "packed product: dst length");
    assert_eq!(a.len(), m * k, "packed product: a length");
    assert_eq!(packed.len(), k * n, "packed product: packed length");
    // SAFETY: the CPU has AVX2 and FMA (checked above), the features the function is
    // compiled for; and the lengths it relies on are those asserted above.
    unsafe { packed_product_avx2(dst, a, (m, k, n), packed, accumulate) }
}

#[cfg(not(target_arch = "x86_64"))]
fn packed_product(_: &mut [f32], _: &[f32], _: (usize, usize, usize), _: &[f32], _: bool) {
    unreachable!("packed product: pack_w_hh packs nothing off x86-64")
}

/// The body of [`packed_product`].
///
/// # Safety
/// The CPU must have AVX2 and FMA, and `dst.len() >= m n`, `a.len() >= m k`,
/// `packed.len() >= k n` with `n % 16 == 0`: every pointer below stays inside its slice
/// (rows r < m, columns c < n, k index < k; a panel is k x 16 values at `p 16 k`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn packed_product_avx2(
    dst: &mut [f32],
    a: &[f32],
    (m, k, n): (usize, usize, usize),
    packed: &[f32],
    accumulate: bool,
) {
    // As few blocks as rows of 6 need, of near-equal heights: a block of one or two rows
    // has too few independent sums to hide the FMA latency (25 rows: five blocks of 5
    // rather than four of 6 and one of 1). Each value's sum over k runs in the same order
    // whatever the blocks, so the bits do not depend on them.
    let blocks = m.div_ceil(6);
    for p in 0..n / PANEL {
        let panel = packed.as_ptr().add(p * PANEL * k);
        let mut r = 0;
        for left in (1..=blocks).rev() {
            let d = dst.as_mut_ptr().add(r * n + p * PANEL);
            let a = a.as_ptr().add(r * k);
            let rows = (m - r).div_ceil(left);
            match rows {
                6 => block::<6>(d, n, a, k, panel, accumulate),
                5 => block::<5>(d, n, a, k, panel, accumulate),
                4 => block::<4>(d, n, a, k, panel, accumulate),
                3 => block::<3>(d, n, a, k, panel, accumulate),
                2 => block::<2>(d, n, a, k, panel, accumulate),
                1 => block::<1>(d, n, a, k, panel, accumulate),
                // m - r <= 6 left and m - r >= left hold at every block.
                _ => unreachable!("packed product: a block of {rows} rows"),
            }
            r += rows;
        }
    }
}

/// MR rows of `dst` (row stride `ldd`) by one 16-column panel, over `k` (`a`'s row stride).
///
/// # Safety
/// As [`packed_product_avx2`], for the MR rows and the panel given.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block<const MR: usize>(
    dst: *mut f32,
    ldd: usize,
    a: *const f32,
    k: usize,
    panel: *const f32,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    if accumulate {
        for (i, acc) in acc.iter_mut().enumerate() {
            acc[0] = _mm256_loadu_ps(dst.add(i * ldd));
            acc[1] = _mm256_loadu_ps(dst.add(i * ldd + 8));
        }
    }
    for kk in 0..k {
        let b0 = _mm256_loadu_ps(panel.add(kk * PANEL));
        let b1 = _mm256_loadu_ps(panel.add(kk * PANEL + 8));
        for (i, acc) in acc.iter_mut().enumerate() {
            let x = _mm256_broadcast_ss(&*a.add(i * k + kk));
            acc[0] = _mm256_fmadd_ps(x, b0, acc[0]);
            acc[1] = _mm256_fmadd_ps(x, b1, acc[1]);
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        _mm256_storeu_ps(dst.add(i * ldd), acc[0]);
        _mm256_storeu_ps(dst.add(i * ldd + 8), acc[1]);
    }
}

fn check_grads<T>(s: &RecurrentShape, g: usize, grads: &ParamGrads<'_, T>) {
    let gh = g * s.hidden;
    assert_eq!(
        grads.w_ih.len(),
        gh * s.input,
        "recurrent backward: w_ih gradient length"
    );
    assert_eq!(
        grads.w_hh.len(),
        gh * s.hidden,
        "recurrent backward: w_hh gradient length"
    );
    assert_eq!(
        grads.b_ih.len(),
        gh,
        "recurrent backward: b_ih gradient length"
    );
    assert_eq!(
        grads.b_hh.len(),
        gh,
        "recurrent backward: b_hh gradient length"
    );
}

/// After the recurrence has filled every step's `dpre`: the products that do not depend on
/// the order of the steps, each one GEMM over all T N rows (two for `dW_hh`, one per half).
/// `dX = dPre W_ih` (scattered into `dx`, (N, T, F)), `dW_ih += dPre^T X`, `dW_hh +=
/// dPre_{2..T}^T H_{1..T-1}` (h_0 = 0 adds nothing), `db_ih = db_hh += the column sums of
/// dPre`. For tokens, X's rows are rows of E: with S (V x G H) the sums of dPre's rows per
/// token, `dE += S W_ih`, `dW_ih += S^T E`, and the bias gradients are S's column sums.
fn sequence_param_grads<T: Float>(
    s: &RecurrentShape,
    g: usize,
    p: &Params<'_, T>,
    ws: &mut SequenceWorkspace<T>,
    dx: InputGrad<'_, T>,
    grads: &mut ParamGrads<'_, T>,
) {
    let (n, t, f, h, gh) = (s.batch, s.steps, s.input, s.hidden, g * s.hidden);
    let (rows, halves) = (t * n, Halves::of(n));
    let dpre = view(&ws.dpre, rows, gh);
    let bias_sums = match dx {
        InputGrad::Values(dx) => {
            matmul(&mut ws.dxs, dpre, view(p.w_ih, gh, f), T::one(), false);
            for (b, seq) in dx.chunks_exact_mut(t * f).enumerate() {
                for (step, d) in seq.chunks_exact_mut(f).enumerate() {
                    d.copy_from_slice(&ws.dxs[halves.row(t, step, b) * f..][..f]);
                }
            }
            matmul(grads.w_ih, dpre.t(), view(&ws.xs, rows, f), T::one(), true);
            &ws.dpre
        }
        InputGrad::Table(dtable) => {
            let vocab = ws.table.len() / f;
            fit(&mut ws.per_token, vocab * gh);
            ws.per_token.fill(T::zero());
            for (row, &id) in ws.dpre.chunks_exact(gh).zip(&ws.ids) {
                let sum = &mut ws.per_token[id as usize * gh..][..gh];
                sum.iter_mut().zip(row).for_each(|(s, &d)| *s += d);
            }
            let sums = view(&ws.per_token, vocab, gh);
            matmul(dtable, sums, view(p.w_ih, gh, f), T::one(), true);
            let table = view(&ws.table, vocab, f);
            matmul(grads.w_ih, sums.t(), table, T::one(), true);
            &ws.per_token
        }
    };
    for row in bias_sums.chunks_exact(gh) {
        for ((a, b), &d) in grads.b_ih.iter_mut().zip(grads.b_hh.iter_mut()).zip(row) {
            *a += d;
            *b += d;
        }
    }
    for (first, m) in halves.parts() {
        if t > 1 && m > 0 {
            let later = &ws.dpre[halves.row(t, 1, first) * gh..][..(t - 1) * m * gh];
            let h_prev = &ws.hs[halves.row(t + 1, 1, first) * h..][..(t - 1) * m * h];
            let (later, h_prev) = (view(later, (t - 1) * m, gh), view(h_prev, (t - 1) * m, h));
            matmul(grads.w_hh, later.t(), h_prev, T::one(), true);
        }
    }
    ws.backward_done = true;
}

/// One half's forward recurrence: `m` sequences, their buffers (`gates`: T blocks of m x 4H
/// holding the input pre-activations; `hs`, `cs`: T + 1 blocks of m x H from a zero block;
/// `tanh_c`: T blocks).
struct LstmHalf<'a, T> {
    m: usize,
    /// For tokens, the half's ids (by step), whose input products the half looks up in
    /// `per_token` step by step (so each block is still in cache for its step's product);
    /// empty when `gates` already holds them.
    ids: &'a [u32],
    per_token: &'a [T],
    gates: &'a mut [T],
    hs: &'a mut [T],
    cs: &'a mut [T],
    tanh_c: &'a mut [T],
}

fn lstm_forward_half<T: Float>(s: &RecurrentShape, w_hh: (&[T], &[f32]), half: LstmHalf<'_, T>) {
    let LstmHalf {
        m,
        ids,
        per_token,
        gates,
        hs,
        cs,
        tanh_c,
    } = half;
    if m == 0 {
        return;
    }
    let h = s.hidden;
    let (mh, mg) = (m * h, m * 4 * h);
    for t in 0..s.steps {
        // States t and t + 1 live in adjacent blocks: split between them.
        let (h_prev, h_next) = hs[t * mh..(t + 2) * mh].split_at_mut(mh);
        let (c_prev, c_next) = cs[t * mh..(t + 2) * mh].split_at_mut(mh);
        let gates = &mut gates[t * mg..(t + 1) * mg];
        if !ids.is_empty() {
            look_up(gates, &ids[t * m..(t + 1) * m], per_token);
        }
        if t > 0 {
            step_product(gates, h_prev, m, w_hh, true);
        }
        let tanh_c = &mut tanh_c[t * mh..(t + 1) * mh];
        lstm_cells_forward(h, gates, c_prev, c_next, h_next, Some(tanh_c));
    }
}

/// An LSTM layer over whole sequences, `nn.LSTM(batch_first=True)` with zero initial
/// states: `x` is (N, T, F) values or (N, T) tokens ([`SequenceInput`]), `out` receives
/// every h_t as (N, T, H); `ws` keeps the states for [`lstm_sequence_backward`]. The same
/// cells as [`lstm_step_forward`], organised for speed: the input products of all T steps
/// are one GEMM before the recurrence (for tokens, rows of a table looked up step by step),
/// so each step adds only `h_(t-1) W_hh^T` (N x 4H) and applies the gates in one fused
/// pass.
///
/// # Panics
/// If a slice's length differs from what `s` says, a token is not a whole number below the
/// table's rows, or the table is not whole rows of F values.
///
/// ```
/// use backprop::tensor::kernels::{
///     lstm_sequence_forward, Params, RecurrentShape, SequenceInput, SequenceWorkspace,
/// };
/// // Zero weights, biases making every pre-activation 0: i = f = o = 1/2, g = 0, so the
/// // cell stays 0 and so does every h_t.
/// let s = RecurrentShape::new(2, 3, 1, 1).unwrap();
/// let z = [0.0f64; 4];
/// let p = Params { w_ih: &z, w_hh: &z, b_ih: &z, b_hh: &z };
/// let mut out = [1.0; 6];
/// lstm_sequence_forward(&s, &p, SequenceInput::Values(&[1.0; 6]), &mut out, &mut SequenceWorkspace::new());
/// assert_eq!(out, [0.0; 6]);
/// ```
pub fn lstm_sequence_forward<T: Float>(
    s: &RecurrentShape,
    p: &Params<'_, T>,
    x: SequenceInput<'_, T>,
    out: &mut [T],
    ws: &mut SequenceWorkspace<T>,
) {
    check_params(s, 4, p);
    ws.start(s, 4, x);
    ws.tabulate_inputs(p);
    let (n, t, h) = (s.batch, s.steps, s.hidden);
    if ws.ids.is_empty() {
        input_projection(t * n, p, &ws.xs, &mut ws.gates);
    }
    let halves = Halves::of(n);
    let [(_, m0), (_, m1)] = halves.parts();
    let (i0, i1) = ws.ids.split_at(if ws.ids.is_empty() { 0 } else { t * m0 });
    let (g0, g1) = ws.gates.split_at_mut(t * m0 * 4 * h);
    let (h0, h1) = ws.hs.split_at_mut((t + 1) * m0 * h);
    let (c0, c1) = ws.cs.split_at_mut((t + 1) * m0 * h);
    let (tc0, tc1) = ws.tanh_c.split_at_mut(t * m0 * h);
    let per_token = &ws.per_token[..];
    let half = |m, ids, gates, hs, cs, tanh_c| LstmHalf {
        m,
        ids,
        per_token,
        gates,
        hs,
        cs,
        tanh_c,
    };
    let (a, b) = (half(m0, i0, g0, h0, c0, tc0), half(m1, i1, g1, h1, c1, tc1));
    pack_w_hh(p.w_hh, 4, h, true, &mut ws.packed);
    let w = (p.w_hh, &ws.packed[..]);
    rayon::join(|| lstm_forward_half(s, w, a), || lstm_forward_half(s, w, b));
    ws.outputs(s, out);
}

/// One half's backward recurrence: its sequences `first..first + m`, the forward's saved
/// `gates`, `cs`, `tanh_c` of the half, and its `dpre` blocks and N x H scratch rows.
struct LstmHalfBack<'a, T> {
    first: usize,
    m: usize,
    gates: &'a [T],
    cs: &'a [T],
    tanh_c: &'a [T],
    dpre: &'a mut [T],
    dh: &'a mut [T],
    dc: &'a mut [T],
    dh_prev: &'a mut [T],
    dc_prev: &'a mut [T],
}

fn lstm_backward_half<T: Float>(
    s: &RecurrentShape,
    w_hh: (&[T], &[f32]),
    dout: &[T],
    half: LstmHalfBack<'_, T>,
) {
    let LstmHalfBack {
        first,
        m,
        gates,
        cs,
        tanh_c,
        dpre,
        dh,
        mut dc,
        dh_prev,
        mut dc_prev,
    } = half;
    if m == 0 {
        return;
    }
    let h = s.hidden;
    let (mh, mg) = (m * h, m * 4 * h);
    for t in (0..s.steps).rev() {
        gather_dh(s, (first, t), dout, dh_prev, dh);
        std::mem::swap(&mut dc, &mut dc_prev); // dc = what step t + 1 sent back
        let dpre = &mut dpre[t * mg..(t + 1) * mg];
        lstm_cells_backward(
            h,
            &gates[t * mg..(t + 1) * mg],
            &cs[t * mh..(t + 1) * mh],
            &tanh_c[t * mh..(t + 1) * mh],
            (dh, dc),
            dc_prev,
            dpre,
        );
        if t > 0 {
            // h_0 is a constant: its gradient is not needed.
            step_product(dh_prev, dpre, m, w_hh, false);
        }
    }
}

/// The backward of [`lstm_sequence_forward`] through time, from the gradient `dout` of every
/// h_t (N, T, H): writes the input gradient `dx` (N, T, F), or adds the table's for tokens
/// ([`InputGrad`]), and adds the parameter gradients into `grads`. The recurrence, from t =
/// T down to 1, does per step only what depends on the step after it (the cells' backward, as [`lstm_step_backward`]'s, and `dh_(t-1) =
/// dpre_t W_hh`); the input and parameter gradients are then one GEMM each over all steps.
///
/// # Panics
/// If a slice's length differs from what `s` says, `ws` last ran another forward, or a
/// table's gradient is asked after a forward from values.
pub fn lstm_sequence_backward<T: Float>(
    s: &RecurrentShape,
    p: &Params<'_, T>,
    dout: &[T],
    ws: &mut SequenceWorkspace<T>,
    dx: InputGrad<'_, T>,
    grads: &mut ParamGrads<'_, T>,
) {
    check_params(s, 4, p);
    check_grads(s, 4, grads);
    ws.start_backward(s, 4, dout, &dx);
    let (t, h) = (s.steps, s.hidden);
    let [(_, m0), (first1, m1)] = Halves::of(s.batch).parts();
    let (g0, g1) = ws.gates.split_at(t * m0 * 4 * h);
    let (c0, c1) = ws.cs.split_at((t + 1) * m0 * h);
    let (tc0, tc1) = ws.tanh_c.split_at(t * m0 * h);
    let (dp0, dp1) = ws.dpre.split_at_mut(t * m0 * 4 * h);
    let (dh0, dh1) = ws.dh.split_at_mut(m0 * h);
    let (dc0, dc1) = ws.dc.split_at_mut(m0 * h);
    let (dhp0, dhp1) = ws.dh_prev.split_at_mut(m0 * h);
    let (dcp0, dcp1) = ws.dc_prev.split_at_mut(m0 * h);
    let a = LstmHalfBack {
        first: 0,
        m: m0,
        gates: g0,
        cs: c0,
        tanh_c: tc0,
        dpre: dp0,
        dh: dh0,
        dc: dc0,
        dh_prev: dhp0,
        dc_prev: dcp0,
    };
    pack_w_hh(p.w_hh, 4, h, false, &mut ws.packed);
    let w = (p.w_hh, &ws.packed[..]);
    let b = LstmHalfBack {
        first: first1,
        m: m1,
        gates: g1,
        cs: c1,
        tanh_c: tc1,
        dpre: dp1,
        dh: dh1,
        dc: dc1,
        dh_prev: dhp1,
        dc_prev: dcp1,
    };
    rayon::join(
        || lstm_backward_half(s, w, dout, a),
        || lstm_backward_half(s, w, dout, b),
    );
    sequence_param_grads(s, 4, p, ws, dx, grads);
}

/// One half of the RNN forward: `m` sequences, their inputs `xs` (T blocks of m x F) and
/// states `hs` (T + 1 blocks of m x H from a zero block).
fn rnn_forward_half<T: Float>(
    s: &RecurrentShape,
    (p, packed, per_token): (&Params<'_, T>, &[f32], &[T]),
    (m, xs, ids): (usize, &[T], &[u32]),
    hs: &mut [T],
) {
    if m == 0 {
        return;
    }
    let mh = m * s.hidden;
    if ids.is_empty() {
        input_projection(s.steps * m, p, xs, &mut hs[mh..]);
    } else {
        look_up(&mut hs[mh..][..s.steps * mh], ids, per_token);
    }
    for t in 0..s.steps {
        let (h_prev, h_next) = hs[t * mh..(t + 2) * mh].split_at_mut(mh);
        if t > 0 {
            step_product(h_next, h_prev, m, (p.w_hh, packed), true);
        }
        h_next.iter_mut().for_each(|v| *v = tanh_gate(*v));
    }
}

/// A tanh-RNN layer over whole sequences, `nn.RNN(batch_first=True)` with a zero initial
/// state: `x` is (N, T, F) values or (N, T) tokens ([`SequenceInput`]), `out` receives every
/// h_t as (N, T, H); `ws` keeps the states for [`rnn_sequence_backward`]. As
/// [`rnn_step_forward`], with the input products of all steps done before the recurrence
/// (one GEMM, or for tokens rows of a table).
///
/// # Panics
/// If a slice's length differs from what `s` says, a token is not a whole number below the
/// table's rows, or the table is not whole rows of F values.
///
/// ```
/// use backprop::tensor::kernels::{
///     rnn_sequence_forward, Params, RecurrentShape, SequenceInput, SequenceWorkspace,
/// };
/// // One unit, h_t = tanh(x_t + h_(t-1)): h_1 = tanh(1), h_2 = tanh(1 + tanh(1)).
/// let s = RecurrentShape::new(1, 2, 1, 1).unwrap();
/// let p = Params { w_ih: &[1.0f64], w_hh: &[1.0], b_ih: &[0.0], b_hh: &[0.0] };
/// let mut out = [0.0; 2];
/// rnn_sequence_forward(&s, &p, SequenceInput::Values(&[1.0, 1.0]), &mut out, &mut SequenceWorkspace::new());
/// assert_eq!(out, [1.0f64.tanh(), (1.0 + 1.0f64.tanh()).tanh()]);
/// ```
pub fn rnn_sequence_forward<T: Float>(
    s: &RecurrentShape,
    p: &Params<'_, T>,
    x: SequenceInput<'_, T>,
    out: &mut [T],
    ws: &mut SequenceWorkspace<T>,
) {
    check_params(s, 1, p);
    ws.start(s, 1, x);
    ws.tabulate_inputs(p);
    let (t, f, h) = (s.steps, s.input, s.hidden);
    let [(_, m0), (_, m1)] = Halves::of(s.batch).parts();
    let (x0, x1) = ws.xs.split_at(t * m0 * f);
    let (i0, i1) = ws.ids.split_at(if ws.ids.is_empty() { 0 } else { t * m0 });
    let (h0, h1) = ws.hs.split_at_mut((t + 1) * m0 * h);
    pack_w_hh(p.w_hh, 1, h, true, &mut ws.packed);
    let w = (p, &ws.packed[..], &ws.per_token[..]);
    rayon::join(
        || rnn_forward_half(s, w, (m0, x0, i0), h0),
        || rnn_forward_half(s, w, (m1, x1, i1), h1),
    );
    ws.outputs(s, out);
}

/// One half of the RNN backward: its sequences `first..first + m`, their states `hs`, and
/// their `dpre` blocks and scratch rows.
struct RnnHalfBack<'a, T> {
    first: usize,
    m: usize,
    hs: &'a [T],
    dpre: &'a mut [T],
    dh: &'a mut [T],
    dh_prev: &'a mut [T],
}

fn rnn_backward_half<T: Float>(
    s: &RecurrentShape,
    w_hh: (&[T], &[f32]),
    dout: &[T],
    half: RnnHalfBack<'_, T>,
) {
    let RnnHalfBack {
        first,
        m,
        hs,
        dpre,
        dh,
        dh_prev,
    } = half;
    if m == 0 {
        return;
    }
    let mh = m * s.hidden;
    for t in (0..s.steps).rev() {
        gather_dh(s, (first, t), dout, dh_prev, dh);
        let dpre = &mut dpre[t * mh..(t + 1) * mh];
        for ((d, &g), &h) in dpre.iter_mut().zip(&*dh).zip(&hs[(t + 1) * mh..]) {
            *d = g * (T::one() - h * h);
        }
        if t > 0 {
            step_product(dh_prev, dpre, m, w_hh, false);
        }
    }
}

/// The backward of [`rnn_sequence_forward`] through time: writes `dx` (N, T, F), or adds the
/// table's gradient for tokens ([`InputGrad`]), and adds the parameter gradients into
/// `grads`; per step `dpre_t = dh_t . (1 - h_t^2)` and `dh_(t-1) = dpre_t W_hh`, then one GEMM each for the input and parameter gradients.
///
/// # Panics
/// If a slice's length differs from what `s` says, `ws` last ran another forward, or a
/// table's gradient is asked after a forward from values.
pub fn rnn_sequence_backward<T: Float>(
    s: &RecurrentShape,
    p: &Params<'_, T>,
    dout: &[T],
    ws: &mut SequenceWorkspace<T>,
    dx: InputGrad<'_, T>,
    grads: &mut ParamGrads<'_, T>,
) {
    check_params(s, 1, p);
    check_grads(s, 1, grads);
    ws.start_backward(s, 1, dout, &dx);
    let (t, h) = (s.steps, s.hidden);
    let [(_, m0), (first1, m1)] = Halves::of(s.batch).parts();
    let (h0, h1) = ws.hs.split_at((t + 1) * m0 * h);
    let (dp0, dp1) = ws.dpre.split_at_mut(t * m0 * h);
    let (dh0, dh1) = ws.dh.split_at_mut(m0 * h);
    let (dhp0, dhp1) = ws.dh_prev.split_at_mut(m0 * h);
    let half = |first, m, hs, dpre, dh, dh_prev| RnnHalfBack {
        first,
        m,
        hs,
        dpre,
        dh,
        dh_prev,
    };
    let (a, b) = (
        half(0, m0, h0, dp0, dh0, dhp0),
        half(first1, m1, h1, dp1, dh1, dhp1),
    );
    pack_w_hh(p.w_hh, 1, h, false, &mut ws.packed);
    let w = (p.w_hh, &ws.packed[..]);
    rayon::join(
        || rnn_backward_half(s, w, dout, a),
        || rnn_backward_half(s, w, dout, b),
    );
    sequence_param_grads(s, 1, p, ws, dx, grads);
}

/// Sequence `e`'s `count` rows from block `from` of a buffer of `blocks` blocks per half,
/// `width` wide: every m-th row of its half (of m sequences).
fn sequence_rows<T: Float>(
    d: &[T],
    halves: Halves,
    e: usize,
    [blocks, from, count, width]: [usize; 4],
) -> MatRef<'_, T> {
    let m = if e < halves.n0 {
        halves.n0
    } else {
        halves.n - halves.n0
    };
    let d = &d[halves.row(blocks, from, e) * width..];
    MatRef::strided(d, count, width, m * width, 1).expect("inside the buffer")
}

/// Each sequence's own parameter gradients from the last backward through `ws` (of the
/// LSTM or RNN whose forward and backward it ran), without a pass per sequence: sequence
/// e's rows of the saved per-step `dpre` and of the inputs give `dW_ih[e] = Σ_t dpre_(t,e)^T
/// x_(t,e)`, `dW_hh[e] = Σ_t dpre_(t,e)^T h_(t-1,e)`, `db_ih[e] = db_hh[e] = Σ_t dpre_(t,e)`.
/// `out`'s slices hold N blocks (sequence e's gradient of a parameter at `e len ..`), which
/// are overwritten. Their sum over e is what the backward added into its `grads`.
///
/// # Panics
/// If `ws` holds no backward, or a slice of `out` is not N times its parameter's length.
///
/// ```
/// use backprop::tensor::kernels::{
///     recurrent_param_grads_per_example, rnn_sequence_backward, rnn_sequence_forward, InputGrad,
///     ParamGrads, Params, RecurrentShape, SequenceInput, SequenceWorkspace,
/// };
/// // Two sequences of one step through h = tanh(2 x): the weight gradient of each is
/// // dh (1 - h^2) x, and the batch's is their sum.
/// let s = RecurrentShape::new(2, 1, 1, 1).unwrap();
/// let p = Params { w_ih: &[2.0f64], w_hh: &[0.0], b_ih: &[0.0], b_hh: &[0.0] };
/// let (x, dh) = ([0.5, -1.0], [1.0, 3.0]);
/// let mut ws = SequenceWorkspace::new();
/// let mut h = [0.0; 2];
/// rnn_sequence_forward(&s, &p, SequenceInput::Values(&x), &mut h, &mut ws);
/// let (mut w_ih, mut w_hh, mut b_ih, mut b_hh) = ([0.0], [0.0], [0.0], [0.0]);
/// let mut g = ParamGrads { w_ih: &mut w_ih, w_hh: &mut w_hh, b_ih: &mut b_ih, b_hh: &mut b_hh };
/// rnn_sequence_backward(&s, &p, &dh, &mut ws, InputGrad::Values(&mut [0.0; 2]), &mut g);
/// let (mut e_ih, mut e_hh, mut e_bi, mut e_bh) = ([0.0; 2], [0.0; 2], [0.0; 2], [0.0; 2]);
/// let pe = ParamGrads { w_ih: &mut e_ih, w_hh: &mut e_hh, b_ih: &mut e_bi, b_hh: &mut e_bh };
/// recurrent_param_grads_per_example(&ws, pe);
/// let want: Vec<f64> = (0..2).map(|e| dh[e] * (1.0 - h[e] * h[e]) * x[e]).collect();
/// assert!((e_ih[0] - want[0]).abs() < 1e-15 && (e_ih[1] - want[1]).abs() < 1e-15);
/// assert!((w_ih[0] - (e_ih[0] + e_ih[1])).abs() < 1e-15);
/// assert_eq!(e_hh, [0.0; 2]); // one step: h_0 = 0
/// ```
pub fn recurrent_param_grads_per_example<T: Float>(
    ws: &SequenceWorkspace<T>,
    out: ParamGrads<'_, T>,
) {
    let (s, g) = ws.last.expect("per-example gradients: no forward");
    assert!(
        ws.backward_done,
        "per-example gradients: no backward after the forward"
    );
    let (n, t, f, h, gh) = (s.batch, s.steps, s.input, s.hidden, g * s.hidden);
    let ParamGrads {
        w_ih,
        w_hh,
        b_ih,
        b_hh,
    } = out;
    assert_eq!(w_ih.len(), n * gh * f, "per-example gradients: w_ih length");
    assert_eq!(w_hh.len(), n * gh * h, "per-example gradients: w_hh length");
    assert_eq!(b_ih.len(), n * gh, "per-example gradients: b_ih length");
    assert_eq!(b_hh.len(), n * gh, "per-example gradients: b_hh length");
    // Sequence e's rows are every m-th row of its half's time-major blocks (m sequences).
    let halves = Halves::of(n);
    for e in 0..n {
        let rows = |d, blocks, from, count, width| {
            sequence_rows(d, halves, e, [blocks, from, count, width])
        };
        let dpre = rows(&ws.dpre, t, 0, t, gh);
        matmul(
            &mut w_ih[e * gh * f..(e + 1) * gh * f],
            dpre.t(),
            rows(&ws.xs, t, 0, t, f),
            T::one(),
            false,
        );
        let w_hh = &mut w_hh[e * gh * h..(e + 1) * gh * h];
        if t > 1 {
            let later = rows(&ws.dpre, t, 1, t - 1, gh);
            matmul(
                w_hh,
                later.t(),
                rows(&ws.hs, t + 1, 1, t - 1, h),
                T::one(),
                false,
            );
        } else {
            w_hh.fill(T::zero());
        }
        let b = &mut b_ih[e * gh..(e + 1) * gh];
        b.fill(T::zero());
        for step in 0..t {
            let row = &ws.dpre[halves.row(t, step, e) * gh..][..gh];
            b.iter_mut().zip(row).for_each(|(b, &d)| *b += d);
        }
        b_hh[e * gh..(e + 1) * gh].copy_from_slice(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(rng: &mut rand_chacha::ChaCha8Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    /// The AVX2 kernel on packed `W_hh` and the `gemm` path agree with a plain f64 sum in
    /// both directions, for every count of leftover rows (blocks of 6).
    #[test]
    fn packed_product_agrees_with_gemm_and_plain_sums() {
        if !avx2_fma() {
            eprintln!("this CPU lacks AVX2 or FMA: the packed kernel is never used here");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (g, h) = (4, 32);
        let w = random(&mut rng, g * h * h);
        let mut packed = Vec::new();
        for forward in [true, false] {
            pack_w_hh(&w, g, h, forward, &mut packed);
            let (k, n) = if forward { (h, g * h) } else { (g * h, h) };
            assert_eq!(packed.len(), k * n);
            for m in 1..=13 {
                let a = random(&mut rng, m * k);
                let start = random(&mut rng, m * n);
                let (mut fast, mut slow) = (start.clone(), start.clone());
                step_product(&mut fast, &a, m, (&w, &packed), forward);
                step_product(&mut slow, &a, m, (&w, &[]), forward);
                for r in 0..m {
                    for c in 0..n {
                        let b = |kk: usize| {
                            if forward {
                                w[c * k + kk]
                            } else {
                                w[kk * n + c]
                            }
                        };
                        let init = if forward {
                            start[r * n + c] as f64
                        } else {
                            0.0
                        };
                        let want = init
                            + (0..k)
                                .map(|kk| a[r * k + kk] as f64 * b(kk) as f64)
                                .sum::<f64>();
                        for got in [fast[r * n + c], slow[r * n + c]] {
                            assert!(
                                (got as f64 - want).abs() < 1e-5,
                                "m {m} ({r}, {c}) forward {forward}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
        // f64, and widths the panels do not divide, take the gemm path.
        pack_w_hh(&[0.5f64; 4 * 16 * 16], 4, 16, true, &mut packed);
        assert!(packed.is_empty());
        pack_w_hh(&w[..4 * 12 * 12], 4, 12, false, &mut packed);
        assert!(packed.is_empty());
    }

    /// The AVX2 cells give the portable body's bits, forward and backward, in the vector
    /// lanes and the leftover units, across the whole range of the gates (past tanh's clamp
    /// at ±7.9 too, and through a NaN).
    #[test]
    fn avx2_cells_give_the_baseline_bits() {
        if !avx2_fma() {
            eprintln!("this CPU lacks AVX2 or FMA: the AVX2 cells are never used here");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (n, h) = (3, 37); // 37: the 8-lane loops' leftovers too
        let big = |rng: &mut rand_chacha::ChaCha8Rng, len| -> Vec<f32> {
            (0..len).map(|_| rng.gen_range(-12.0..12.0)).collect()
        };
        let (mut pre, c_prev) = (big(&mut rng, n * 4 * h), random(&mut rng, n * h));
        // A NaN in a vector lane and in a leftover unit stays NaN, with the same bits.
        (pre[5], pre[4 * h + 36]) = (f32::NAN, -f32::NAN);
        let mut outs = Vec::new();
        for avx2 in [true, false] {
            let (mut gates, mut c, mut hh, mut tc) = (
                pre.clone(),
                vec![0.0; n * h],
                vec![0.0; n * h],
                vec![0.0; n * h],
            );
            if avx2 {
                lstm_cells_forward(h, &mut gates, &c_prev, &mut c, &mut hh, Some(&mut tc));
            } else {
                lstm_cells_forward_body(h, &mut gates, &c_prev, &mut c, &mut hh, Some(&mut tc));
            }
            let (dh, dc) = (vec![0.5; n * h], vec![-0.25; n * h]);
            let (mut dc_prev, mut dpre) = (vec![0.0; n * h], vec![0.0; n * 4 * h]);
            let args = (&gates[..], &c_prev[..], &tc[..], (&dh[..], &dc[..]));
            if avx2 {
                lstm_cells_backward(h, args.0, args.1, args.2, args.3, &mut dc_prev, &mut dpre);
            } else {
                let (g, cp, t, d) = args;
                lstm_cells_backward_body(h, g, cp, t, d, &mut dc_prev, &mut dpre);
            }
            outs.push([gates, c, hh, tc, dc_prev, dpre]);
        }
        let bits = |v: &[Vec<f32>; 6]| -> Vec<Vec<u32>> {
            v.iter()
                .map(|v| v.iter().map(|x| x.to_bits()).collect())
                .collect()
        };
        assert_eq!(bits(&outs[0]), bits(&outs[1]));
        assert!(outs[0][0].iter().any(|g| g.abs() > 0.9999)); // saturated gates too
        assert!(outs[0][0][5].is_nan() && outs[0][0][4 * h + 36].is_nan());
    }

    /// The kernel's bounds rest on its length checks: a short destination is refused.
    #[test]
    #[should_panic(expected = "dst length")]
    fn packed_product_refuses_a_short_destination() {
        if !avx2_fma() {
            panic!("dst length (no AVX2: nothing to check)");
        }
        let packed = vec![0.0f32; 16 * 4];
        packed_product(
            &mut [0.0; 16 * 2 - 1],
            &[0.0; 2 * 4],
            (2, 4, 16),
            &packed,
            false,
        );
    }

    /// The halves run on two threads or one with the same results, to the bit.
    #[test]
    fn sequences_give_the_same_bits_on_one_thread_and_two() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let s = RecurrentShape::new(5, 4, 3, 16).unwrap();
        let (w_ih, w_hh) = (random(&mut rng, 64 * 3), random(&mut rng, 64 * 16));
        let (b_ih, b_hh) = (random(&mut rng, 64), random(&mut rng, 64));
        let p = Params {
            w_ih: &w_ih,
            w_hh: &w_hh,
            b_ih: &b_ih,
            b_hh: &b_hh,
        };
        let (x, dout) = (random(&mut rng, 5 * 4 * 3), random(&mut rng, 5 * 4 * 16));
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut ws = SequenceWorkspace::new();
                let mut out = vec![0.0f32; 5 * 4 * 16];
                lstm_sequence_forward(&s, &p, SequenceInput::Values(&x), &mut out, &mut ws);
                let mut dx = vec![0.0; x.len()];
                let mut gw = [
                    vec![0.0; 64 * 3],
                    vec![0.0; 64 * 16],
                    vec![0.0; 64],
                    vec![0.0; 64],
                ];
                let [w_ih, w_hh, b_ih, b_hh] = &mut gw;
                let mut g = ParamGrads {
                    w_ih,
                    w_hh,
                    b_ih,
                    b_hh,
                };
                let dxg = InputGrad::Values(&mut dx[..]);
                lstm_sequence_backward(&s, &p, &dout, &mut ws, dxg, &mut g);
                (out, dx, gw)
            })
        };
        assert_eq!(run(1), run(2));
    }
}
