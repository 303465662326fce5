//! Each layer's forward and its vector-Jacobian product, side by side.
//!
//! A layer maps a batch `x` (n examples of its input shape, row-major) to `y`; its backward
//! turns `dy` = dJ/dy into `dx` = dJ/dx (written, when asked for) and adds dJ/dθ into the
//! gradients of its parameters. This is the post's Equation 3 (δ passed down through a
//! layer) and Equations 1-2 (a parameter's gradient from δ and what the layer saw), one
//! layer kind at a time; the heavy kinds call the hand-written kernels of
//! [`crate::tensor::kernels`].

use super::Layer;
use crate::linalg::{matmul, MatRef};
use crate::network::Activation;
use crate::tensor::kernels::{
    avg_pool2d_backward, avg_pool2d_forward, conv2d_backward, conv2d_forward,
    conv2d_weight_grad_per_example, lstm_sequence_backward, lstm_sequence_forward,
    max_pool2d_backward, max_pool2d_forward, recurrent_param_grads_per_example,
    relu_max_pool2d_backward, relu_max_pool2d_forward, rnn_sequence_backward, rnn_sequence_forward,
    Conv2dShape, Conv2dWorkspace, InputGrad, KernelError, ParamGrads, Params, Pool2dShape,
    RecurrentShape, SequenceInput, SequenceWorkspace,
};
use crate::Float;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Values per task of an elementwise layer split over the rayon pool. A value depends on
/// its own inputs only, so any split gives the same bits; below two chunks (a dense
/// layer's activations, most recurrent steps) the handing over would cost more than it saves.
pub(crate) const ELEMENTWISE_CHUNK: usize = 1 << 14;

/// `f` over matching chunks of `x` and `y`, on the pool's threads when there are several chunks.
fn elementwise<T: Float>(x: &[T], y: &mut [T], f: impl Fn(&[T], &mut [T]) + Sync) {
    if x.len() < 2 * ELEMENTWISE_CHUNK {
        return f(x, y);
    }
    x.par_chunks(ELEMENTWISE_CHUNK)
        .zip(y.par_chunks_mut(ELEMENTWISE_CHUNK))
        .for_each(|(x, y)| f(x, y));
}

/// As [`elementwise`] for a map of rows of `k` values (a softmax): chunks of whole rows.
fn by_rows<T: Float>(x: &[T], y: &mut [T], k: usize, f: impl Fn(&[T], &mut [T]) + Sync) {
    let rows = |x: &[T], y: &mut [T]| {
        for (x, y) in x.chunks_exact(k).zip(y.chunks_exact_mut(k)) {
            f(x, y);
        }
    };
    if x.len() < 2 * ELEMENTWISE_CHUNK {
        return rows(x, y);
    }
    let chunk = (ELEMENTWISE_CHUNK / k).max(1) * k;
    x.par_chunks(chunk)
        .zip(y.par_chunks_mut(chunk))
        .for_each(|(x, y)| rows(x, y));
}

/// As [`elementwise`] with two inputs, for a backward `f(y, dy, dx)`.
fn elementwise2<T: Float>(
    a: &[T],
    b: &[T],
    out: &mut [T],
    f: impl Fn(&[T], &[T], &mut [T]) + Sync,
) {
    if a.len() < 2 * ELEMENTWISE_CHUNK {
        return f(a, b, out);
    }
    a.par_chunks(ELEMENTWISE_CHUNK)
        .zip(b.par_chunks(ELEMENTWISE_CHUNK))
        .zip(out.par_chunks_mut(ELEMENTWISE_CHUNK))
        .for_each(|((a, b), out)| f(a, b, out));
}

/// What one layer keeps from its forward for its backward (beyond its input and output,
/// which the model keeps for every layer). Buffers grow to the largest batch and stay.
#[derive(Debug)]
pub(crate) enum State<T> {
    /// Nothing beyond x and y.
    Plain,
    /// The unfolded input and the shape of the last forward.
    Conv(Conv2dWorkspace<T>, Option<Conv2dShape>),
    /// The pooling shape and, for max pooling, each output's argmax in its plane.
    Pool(Option<Pool2dShape>, Vec<usize>),
    /// Per stacked layer: the kernel's states; the outputs of all but the top layer; two
    /// scratch buffers for gradients between stacked layers.
    Recurrent {
        ws: Vec<SequenceWorkspace<T>>,
        hidden: Vec<Vec<T>>,
        scratch: [Vec<T>; 2],
    },
    /// The mask (0 or 1/(1 - p)) and whether the last forward applied it.
    Dropout(Vec<T>, bool),
}

impl<T: Float> State<T> {
    pub(crate) fn for_layer(layer: &Layer) -> Self {
        match *layer {
            Layer::Conv2d { .. } => State::Conv(Conv2dWorkspace::new(), None),
            Layer::MaxPool2d { .. } | Layer::AvgPool2d { .. } => State::Pool(None, Vec::new()),
            Layer::Rnn { layers, .. } | Layer::Lstm { layers, .. } => State::Recurrent {
                ws: (0..layers).map(|_| SequenceWorkspace::new()).collect(),
                hidden: vec![Vec::new(); layers - 1],
                scratch: [Vec::new(), Vec::new()],
            },
            Layer::Dropout { .. } => State::Dropout(Vec::new(), false),
            _ => State::Plain,
        }
    }
}

/// Grows `v` to at least `len` (never shrinks, so a warm buffer is reused as is).
pub(crate) fn grow<T: Float>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::zero());
    }
}

/// One layer's place in the model: the layer, one example's input and output shapes, and
/// the batch size.
pub(crate) struct At<'a> {
    pub layer: &'a Layer,
    pub input: &'a [usize],
    pub output: &'a [usize],
    pub n: usize,
    /// A `MaxPool2d(2)` that also applies the ReLU before it: its `x` and `dx` are the
    /// ReLU's input and input gradient, and the model skips the ReLU layer.
    pub relu_first: bool,
    /// An RNN or LSTM right after an `Embedding` that reads the table itself: its `x` is the
    /// token ids, its parameters and gradients start with the table's, and the model skips
    /// the `Embedding` (see [`SequenceInput::Tokens`]).
    pub embedded: bool,
}

impl At<'_> {
    fn conv_shape(&self) -> Result<Conv2dShape, KernelError> {
        let Layer::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            ..
        } = *self.layer
        else {
            unreachable!("conv_shape of a Conv2d")
        };
        Conv2dShape::new(
            [self.n, in_channels, self.input[1], self.input[2]],
            [out_channels, in_channels, kernel.0, kernel.1],
            [stride.0, stride.1],
            [padding.0, padding.1],
        )
    }

    fn pool_shape(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
    ) -> Result<Pool2dShape, KernelError> {
        Pool2dShape::new(
            [self.n, self.input[0], self.input[1], self.input[2]],
            [kernel.0, kernel.1],
            [stride.0, stride.1],
            [0, 0],
        )
    }

    /// Stacked layer `l` of an RNN or LSTM: its kernel shape.
    fn recurrent_shape(&self, l: usize) -> Result<RecurrentShape, KernelError> {
        let (Layer::Rnn { input, hidden, .. } | Layer::Lstm { input, hidden, .. }) = *self.layer
        else {
            unreachable!("recurrent_shape of an RNN or LSTM")
        };
        RecurrentShape::new(
            self.n,
            self.input[0],
            if l == 0 { input } else { hidden },
            hidden,
        )
    }
}

fn params_of<T>(p: &[Vec<T>], l: usize) -> Params<'_, T> {
    Params {
        w_ih: &p[4 * l],
        w_hh: &p[4 * l + 1],
        b_ih: &p[4 * l + 2],
        b_hh: &p[4 * l + 3],
    }
}

/// The forward of one layer: `y` (already of the right length) from `x`.
///
/// `params` are the layer's own, in [`super::Arch::params`] order, after the table of the
/// `Embedding` below for an embedded RNN or LSTM ([`At::embedded`]). For `Embedding`, and an
/// embedded layer, `x` holds token ids already checked to be whole numbers in range.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<T: Float>(
    at: &At<'_>,
    params: &[Vec<T>],
    x: &[T],
    y: &mut [T],
    state: &mut State<T>,
    train: bool,
    rng: &mut ChaCha8Rng,
) -> Result<(), KernelError> {
    match (at.layer.clone(), state) {
        (
            Layer::Linear {
                in_features,
                out_features,
                ..
            },
            _,
        ) => {
            // z = x W^T + b on the last axis: every position of every example is a row.
            let rows = x.len() / in_features;
            let xm = MatRef::row_major(x, rows, in_features).expect("x is rows x in");
            let w = MatRef::row_major(&params[0], out_features, in_features).expect("W");
            matmul(y, xm, w.t(), T::one(), false);
            if let Some(b) = params.get(1) {
                for row in y.chunks_exact_mut(out_features) {
                    row.iter_mut().zip(b).for_each(|(z, &b)| *z += b);
                }
            }
        }
        (Layer::Conv2d { .. }, State::Conv(ws, shape)) => {
            let s = at.conv_shape()?;
            conv2d_forward(&s, x, &params[0], params.get(1).map(|b| &b[..]), y, ws);
            *shape = Some(s);
        }
        (Layer::MaxPool2d { kernel, stride }, State::Pool(shape, argmax)) => {
            let s = at.pool_shape(kernel, stride)?;
            argmax.resize(y.len(), 0);
            if at.relu_first {
                relu_max_pool2d_forward(&s, x, y, argmax);
            } else {
                max_pool2d_forward(&s, x, y, argmax);
            }
            *shape = Some(s);
        }
        (Layer::AvgPool2d { kernel, stride }, State::Pool(shape, _)) => {
            let s = at.pool_shape(kernel, stride)?;
            avg_pool2d_forward(&s, x, y);
            *shape = Some(s);
        }
        (Layer::Flatten, _) => y.copy_from_slice(x),
        (Layer::Relu, _) => elementwise(x, y, |x, y| Activation::Relu.f(x, y)),
        (Layer::Sigmoid, _) => elementwise(x, y, |x, y| Activation::Sigmoid.f(x, y)),
        (Layer::Tanh, _) => elementwise(x, y, |x, y| Activation::Tanh.f(x, y)),
        (Layer::LeakyRelu { slope }, _) => {
            let slope = T::from_f64(slope);
            for (y, &x) in y.iter_mut().zip(x) {
                *y = if x > T::zero() { x } else { slope * x };
            }
        }
        (Layer::Softmax, _) => {
            let k = at.output[at.output.len() - 1];
            by_rows(x, y, k, |x, y| Activation::Softmax.f(x, y));
        }
        (Layer::Embedding { dim, .. }, _) => {
            // Row `id` of the table for each token.
            for (&id, y) in x.iter().zip(y.chunks_exact_mut(dim)) {
                let id = id.to_f64() as usize;
                y.copy_from_slice(&params[0][id * dim..(id + 1) * dim]);
            }
        }
        (
            Layer::Rnn { layers, .. } | Layer::Lstm { layers, .. },
            State::Recurrent { ws, hidden, .. },
        ) => {
            let lstm = matches!(at.layer, Layer::Lstm { .. });
            let (table, params) = match params {
                [table, own @ ..] if at.embedded => (Some(&table[..]), own),
                own => (None, own),
            };
            for l in 0..layers {
                let s = at.recurrent_shape(l)?;
                let (below, rest) = hidden.split_at_mut(l);
                let out: &mut [T] = if l + 1 == layers {
                    &mut *y
                } else {
                    grow(&mut rest[0], at.n * s.steps() * s.hidden());
                    &mut rest[0][..at.n * s.steps() * s.hidden()]
                };
                let input = match (l, table) {
                    (0, Some(table)) => SequenceInput::Tokens {
                        ids: &x[..at.n * s.steps()],
                        table,
                    },
                    (0, None) => SequenceInput::Values(&x[..at.n * s.steps() * s.input()]),
                    _ => SequenceInput::Values(&below[l - 1][..at.n * s.steps() * s.input()]),
                };
                let p = params_of(params, l);
                if lstm {
                    lstm_sequence_forward(&s, &p, input, out, &mut ws[l]);
                } else {
                    rnn_sequence_forward(&s, &p, input, out, &mut ws[l]);
                }
            }
        }
        (Layer::Dropout { p }, State::Dropout(mask, applied)) => {
            *applied = train && p > 0.0;
            if *applied {
                // Each value kept with probability 1 - p and scaled so its mean is unchanged.
                let keep = T::from_f64(1.0 / (1.0 - p));
                grow(mask, x.len());
                for ((m, y), &x) in mask.iter_mut().zip(y.iter_mut()).zip(x) {
                    *m = if rng.gen::<f64>() < p {
                        T::zero()
                    } else {
                        keep
                    };
                    *y = x * *m;
                }
            } else {
                y.copy_from_slice(x);
            }
        }
        (layer, _) => unreachable!("a state made for another layer than {layer}"),
    }
    Ok(())
}

/// Where a layer's backward puts its parameter gradients: always added into the batch
/// gradients `grads`; also written per example into `per_example` (example e's gradient
/// of parameter j at `per_example[j][e len_j ..]`) when given.
pub(crate) struct Sinks<'a, T> {
    pub grads: &'a mut [Vec<T>],
    pub per_example: Option<&'a mut [Vec<T>]>,
}

/// The backward of one layer: from `dy` = dJ/dy, writes dJ/dx into `dx` (when given) and
/// adds dJ/dθ into `sinks`. `x` and `y` are what [`forward`] last took and gave; `params`
/// and `sinks.grads` are laid out as `params` there (an embedded layer's start with the
/// table's, into which it adds the table's gradient).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward<T: Float>(
    at: &At<'_>,
    params: &[Vec<T>],
    x: &[T],
    y: &[T],
    dy: &[T],
    dx: Option<&mut [T]>,
    sinks: Sinks<'_, T>,
    state: &mut State<T>,
) {
    let Sinks { grads, per_example } = sinks;
    match (at.layer.clone(), state) {
        (
            Layer::Linear {
                in_features,
                out_features,
                ..
            },
            _,
        ) => {
            let rows = x.len() / in_features;
            let xm = MatRef::row_major(x, rows, in_features).expect("x is rows x in");
            let dym = MatRef::row_major(dy, rows, out_features).expect("dy is rows x out");
            // Equation 1: dJ/dW = Σ_rows δ aᵀ = dYᵀ X; Equation 2: dJ/db = Σ_rows δ.
            matmul(&mut grads[0], dym.t(), xm, T::one(), true);
            if let Some(gb) = grads.get_mut(1) {
                for row in dy.chunks_exact(out_features) {
                    gb.iter_mut().zip(row).for_each(|(g, &d)| *g += d);
                }
            }
            if let Some(pe) = per_example {
                // The post's W_i = δ_i a_iᵀ, summed over an example's positions.
                let r = rows / at.n;
                let (w_len, b_len) = (out_features * in_features, out_features);
                for e in 0..at.n {
                    let xe = MatRef::row_major(&x[e * r * in_features..], r, in_features);
                    let de = MatRef::row_major(&dy[e * r * out_features..], r, out_features);
                    let (xe, de) = (xe.expect("rows"), de.expect("rows"));
                    matmul(
                        &mut pe[0][e * w_len..(e + 1) * w_len],
                        de.t(),
                        xe,
                        T::one(),
                        false,
                    );
                    if let Some(pb) = pe.get_mut(1) {
                        let pb = &mut pb[e * b_len..(e + 1) * b_len];
                        pb.fill(T::zero());
                        for row in dy[e * r * out_features..(e + 1) * r * out_features]
                            .chunks_exact(out_features)
                        {
                            pb.iter_mut().zip(row).for_each(|(g, &d)| *g += d);
                        }
                    }
                }
            }
            if let Some(dx) = dx {
                // Equation 3's Wᵀ δ, a row at a time: dX = dY W.
                let w = MatRef::row_major(&params[0], out_features, in_features).expect("W");
                matmul(dx, dym, w, T::one(), false);
            }
        }
        (Layer::Conv2d { .. }, State::Conv(ws, shape)) => {
            let s = shape.expect("a forward before the backward");
            let (gw, gb) = match grads {
                [w] => (w, None),
                [w, b] => (w, Some(&mut b[..])),
                _ => unreachable!("a convolution has a weight and maybe a bias"),
            };
            let mut dx = dx;
            if let Some(dx) = dx.as_deref_mut() {
                dx.fill(T::zero()); // the kernel adds into dx
            }
            conv2d_backward(&s, &params[0], dy, ws, dx, gw, gb);
            if let Some(pe) = per_example {
                let (pw, pb) = match pe {
                    [w] => (w, None),
                    [w, b] => (w, Some(&mut b[..])),
                    _ => unreachable!("a convolution has a weight and maybe a bias"),
                };
                conv2d_weight_grad_per_example(&s, dy, ws, pw, pb);
            }
        }
        (Layer::MaxPool2d { .. }, State::Pool(shape, argmax)) => {
            if let Some(dx) = dx {
                // The whole gradient goes to the window's (first) maximum.
                let s = shape.expect("a forward first");
                if at.relu_first {
                    relu_max_pool2d_backward(&s, y, dy, argmax, dx);
                } else {
                    dx.fill(T::zero());
                    max_pool2d_backward(&s, dy, argmax, dx);
                }
            }
        }
        (Layer::AvgPool2d { .. }, State::Pool(shape, _)) => {
            if let Some(dx) = dx {
                dx.fill(T::zero());
                avg_pool2d_backward(&shape.expect("a forward first"), dy, dx);
            }
        }
        (Layer::Flatten, _) => {
            if let Some(dx) = dx {
                dx.copy_from_slice(dy);
            }
        }
        // F' from the output: relu [y > 0], sigmoid y (1 - y), tanh 1 - y².
        (Layer::Relu, _) => {
            if let Some(dx) = dx {
                elementwise2(y, dy, dx, |y, g, d| Activation::Relu.backward(y, g, d));
            }
        }
        (Layer::Sigmoid, _) => {
            if let Some(dx) = dx {
                elementwise2(y, dy, dx, |y, g, d| Activation::Sigmoid.backward(y, g, d));
            }
        }
        (Layer::Tanh, _) => {
            if let Some(dx) = dx {
                elementwise2(y, dy, dx, |y, g, d| Activation::Tanh.backward(y, g, d));
            }
        }
        (Layer::LeakyRelu { slope }, _) => {
            if let Some(dx) = dx {
                // F'(x) = 1 for x > 0, the slope otherwise (PyTorch's F'(0) = slope).
                let slope = T::from_f64(slope);
                for ((d, &g), &x) in dx.iter_mut().zip(dy).zip(x) {
                    *d = if x > T::zero() { g } else { g * slope };
                }
            }
        }
        (Layer::Softmax, _) => {
            if let Some(dx) = dx {
                // The Jacobian-vector product dx_j = y_j (dy_j - Σ_k dy_k y_k), per row.
                let k = at.output[at.output.len() - 1];
                for ((d, y), g) in dx
                    .chunks_exact_mut(k)
                    .zip(y.chunks_exact(k))
                    .zip(dy.chunks_exact(k))
                {
                    Activation::Softmax.backward(y, g, d);
                }
            }
        }
        (Layer::Embedding { dim, .. }, _) => {
            // Each token's gradient goes to the row it copied; ids are not differentiable.
            for (&id, g) in x.iter().zip(dy.chunks_exact(dim)) {
                let id = id.to_f64() as usize;
                grads[0][id * dim..(id + 1) * dim]
                    .iter_mut()
                    .zip(g)
                    .for_each(|(w, &g)| *w += g);
            }
            if let Some(pe) = per_example {
                let per = x.len() / at.n;
                let len = grads[0].len();
                pe[0].fill(T::zero());
                for (t, (&id, g)) in x.iter().zip(dy.chunks_exact(dim)).enumerate() {
                    let (e, id) = (t / per, id.to_f64() as usize);
                    pe[0][e * len + id * dim..e * len + (id + 1) * dim]
                        .iter_mut()
                        .zip(g)
                        .for_each(|(w, &g)| *w += g);
                }
            }
        }
        (
            Layer::Rnn { layers, .. } | Layer::Lstm { layers, .. },
            State::Recurrent { ws, scratch, .. },
        ) => {
            let mut per_example = per_example;
            let lstm = matches!(at.layer, Layer::Lstm { .. });
            let (mut dtable, params, grads) = match (params, grads) {
                ([_, own @ ..], [dtable, own_grads @ ..]) if at.embedded => {
                    (Some(&mut dtable[..]), own, own_grads)
                }
                (own, own_grads) => (None, own, own_grads),
            };
            let [above, below] = scratch;
            let mut dx = dx;
            // Through time in each stacked layer, from the top one down; the input gradient
            // of layer l is the output gradient of layer l - 1.
            for l in (0..layers).rev() {
                let s = at.recurrent_shape(l).expect("checked by the forward");
                let in_len = at.n * s.steps() * s.input();
                let dout: &[T] = if l + 1 == layers {
                    dy
                } else {
                    &above[..at.n * s.steps() * s.hidden()]
                };
                let given = match l {
                    0 => (dtable.take().map(InputGrad::Table))
                        .or_else(|| dx.take().map(InputGrad::Values)),
                    _ => None,
                };
                let dxl = given.unwrap_or_else(|| {
                    grow(below, in_len);
                    InputGrad::Values(&mut below[..in_len])
                });
                let [w_ih, w_hh, b_ih, b_hh] = &mut grads[4 * l..4 * l + 4] else {
                    unreachable!("four parameters per stacked layer")
                };
                let mut g = ParamGrads {
                    w_ih,
                    w_hh,
                    b_ih,
                    b_hh,
                };
                let p = params_of(params, l);
                if lstm {
                    lstm_sequence_backward(&s, &p, dout, &mut ws[l], dxl, &mut g);
                } else {
                    rnn_sequence_backward(&s, &p, dout, &mut ws[l], dxl, &mut g);
                }
                if let Some(pe) = per_example.as_deref_mut() {
                    // Each sequence's W = Σ_t δ_t aᵀ from the δ the backward kept per step.
                    let [w_ih, w_hh, b_ih, b_hh] = &mut pe[4 * l..4 * l + 4] else {
                        unreachable!("four parameters per stacked layer")
                    };
                    let out = ParamGrads {
                        w_ih,
                        w_hh,
                        b_ih,
                        b_hh,
                    };
                    recurrent_param_grads_per_example(&ws[l], out);
                }
                std::mem::swap(above, below);
            }
        }
        (Layer::Dropout { .. }, State::Dropout(mask, applied)) => {
            if let Some(dx) = dx {
                if *applied {
                    for ((d, &g), &m) in dx.iter_mut().zip(dy).zip(mask.iter()) {
                        *d = g * m;
                    }
                } else {
                    dx.copy_from_slice(dy);
                }
            }
        }
        (layer, _) => unreachable!("a state made for another layer than {layer}"),
    }
}
