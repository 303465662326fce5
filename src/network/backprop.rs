//! Feed-forward and the four equations, for a whole mini-batch at once.
//!
//! A batch of n examples is a matrix with one example per row, so the post's column vectors
//! become rows and its equations read, for the n x N^l matrices Z^l, A^l and Delta^l:
//!
//! ```text
//! feed-forward   Z^l = A^(l-1) W^l^T + b^l,        A^l = F(Z^l),     A^1 = X
//! Equation 4     Delta^L = dC/dA^L (.) F'(Z^L)     (a^L - y for the matched pairs)
//! Equation 3     Delta^l = (Delta^(l+1) W^(l+1)) (.) F'(Z^l),        l = L-1 .. 2
//! Equation 1     dJ/dW^l = (1/n) Delta^l^T A^(l-1)
//! Equation 2     dJ/db^l = (1/n) sum of the rows of Delta^l
//! ```
//!
//! Row i of Delta^l is the post's delta^l for example i, dC_i/dz^l; the 1/n of J = (1/n) sum
//! C_i is applied once, in Equations 1 and 2.
//!
//! Where the time goes, and what is done about it:
//! - ~90% of a step is the matrix products (the `gemm` crate's AVX-512 kernels); the bias,
//!   F and F' passes are fused into one pass over each row after each product.
//! - With two threads in the rayon pool and a step big enough ([`split_rows`]), the work is
//!   cut in two halves that share nothing, in two hand-overs between the threads: the whole
//!   feed-forward, the C_i and Equations 4 and 3, every layer, by examples (each half owns
//!   rows [0, h) or [h, n) of every Z, A, Delta; see `Network::pass`), then Equations 1
//!   and 2 by neurons j (rows of W, entries of b). A hand-over per product instead (~8 a
//!   step) made two threads no faster than one on the small network (784-128-64-10,
//!   batch 64, ~340 µs a step).
//! - A W^l whose rows are exactly 4 KiB long is copied to padded rows before its
//!   feed-forward product, which otherwise runs 30% slower. See [`padded_stride`].
//! - [`Network::sgd_train_step`] adds -eta/n Delta^T A^(l-1) straight into W^l (Equation 1
//!   accumulated by the product itself), so no gradient is materialised.

use super::{Activation, Gradients, Layer, Network, NetworkError};
use crate::linalg::{matmul_with, parallelism_for, MatRef};
use crate::Float;
use gemm::Parallelism;

/// Reusable buffers for Z^l, A^l and Delta^l of every weight layer, so that a training step
/// allocates nothing: they are sized for the largest batch seen and then only reused.
///
/// ```
/// use backprop::network::{Activation, Cost, Init, Network, Workspace};
/// let net = Network::<f32>::new(&[2, 4, 4, 3], &[Activation::Sigmoid; 3], Cost::Quadratic, Init::Scaled, 1).unwrap();
/// let mut ws = Workspace::new(&net, 10);
/// let out = net.feed_forward(&[0.5; 2 * 10], 10, &mut ws);
/// assert_eq!(out.len(), 10 * 3);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Workspace<T> {
    /// Z^l for each weight layer (index 0 is l = 2), n x N^l row-major.
    z: Vec<Vec<T>>,
    /// A^l = F(Z^l).
    a: Vec<Vec<T>>,
    /// Delta^l = dC_i/dZ^l, one row per example.
    delta: Vec<Vec<T>>,
    /// W^l copied with padded rows, for the layers [`padded_stride`] picks (else empty).
    padded: Vec<Vec<T>>,
    /// C_i for each example of the last batch.
    losses: Vec<T>,
    /// N^2..N^L these buffers were sized for.
    sizes: Vec<usize>,
    /// The number of examples of the last batch.
    n: usize,
}

impl<T: Float> Workspace<T> {
    /// Buffers for `net` and batches of up to `max_batch` examples (larger batches grow them).
    pub fn new(net: &Network<T>, max_batch: usize) -> Self {
        let mut ws = Workspace {
            z: Vec::new(),
            a: Vec::new(),
            delta: Vec::new(),
            padded: Vec::new(),
            losses: Vec::new(),
            sizes: Vec::new(),
            n: 0,
        };
        ws.fit(net.layers.iter().map(|l| l.biases.len()), max_batch);
        ws
    }

    /// Sizes the buffers for layers of `sizes` and `n` examples; allocates only on growth.
    fn fit(&mut self, sizes: impl ExactSizeIterator<Item = usize> + Clone, n: usize) {
        if !self.sizes.iter().copied().eq(sizes.clone()) {
            self.sizes = sizes.clone().collect();
            let empty = || vec![Vec::new(); self.sizes.len()];
            (self.z, self.a, self.delta) = (empty(), empty(), empty());
            self.padded = empty();
        }
        for (i, s) in sizes.enumerate() {
            for buf in [&mut self.z[i], &mut self.a[i], &mut self.delta[i]] {
                if buf.len() < n * s {
                    buf.resize(n * s, T::zero());
                }
            }
        }
        if self.losses.len() < n {
            self.losses.resize(n, T::zero());
        }
        self.n = n;
    }

    /// Z^l of the last batch, n x N^l row-major, for the weight layer `i` (l = i + 2).
    pub fn z(&self, i: usize) -> &[T] {
        &self.z[i][..self.n * self.sizes[i]]
    }

    /// A^l of the last batch, n x N^l row-major, for the weight layer `i` (l = i + 2).
    pub fn a(&self, i: usize) -> &[T] {
        &self.a[i][..self.n * self.sizes[i]]
    }

    /// Delta^l of the last backward pass (row i = dC_i/dz^l), for the weight layer `i`.
    pub fn delta(&self, i: usize) -> &[T] {
        &self.delta[i][..self.n * self.sizes[i]]
    }

    /// Delta^l of the last backward pass, to rescale its rows (private training's clip
    /// factors, [`Network::weighted_gradients`]).
    pub(crate) fn delta_mut(&mut self, i: usize) -> &mut [T] {
        &mut self.delta[i][..self.n * self.sizes[i]]
    }

    /// Whether the buffers were last sized for `n` examples of `net`'s layers.
    pub(crate) fn holds(&self, net: &Network<T>, n: usize) -> bool {
        self.n == n
            && self
                .sizes
                .iter()
                .copied()
                .eq(net.layers.iter().map(|l| l.biases.len()))
    }

    /// C_i of each example of the last backward pass or [`Network::cost`].
    pub fn losses(&self) -> &[T] {
        &self.losses[..self.n]
    }

    /// J = (1/n) sum C_i, summed in example order: the same bits however many threads
    /// computed the C_i.
    fn mean_loss(&self) -> T {
        let total = self.losses().iter().fold(T::zero(), |sum, &c| sum + c);
        total / T::from_f64(self.n as f64)
    }
}

/// The rows of Z^l, A^l and Delta^l of one weight layer that belong to one block of
/// examples: the whole batch, or one half of it for one thread.
struct Rows<'a, T> {
    z: &'a mut [T],
    a: &'a mut [T],
    delta: &'a mut [T],
}

impl<T> Rows<'_, T> {
    /// The first `h` rows of `width` entries, and the rest.
    fn split_at(self, h: usize, width: usize) -> (Self, Self) {
        let (z0, z1) = self.z.split_at_mut(h * width);
        let (a0, a1) = self.a.split_at_mut(h * width);
        let (delta0, delta1) = self.delta.split_at_mut(h * width);
        (
            Rows {
                z: z0,
                a: a0,
                delta: delta0,
            },
            Rows {
                z: z1,
                a: a1,
                delta: delta1,
            },
        )
    }
}

/// How far [`Network::pass`] goes: feed-forward only, then C_i, then Equations 4 and 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upto {
    Forward,
    Cost,
    Deltas,
}

impl<T: Float> Network<T> {
    pub(crate) fn check_batch(
        &self,
        x: &[T],
        y: Option<&[T]>,
        n: usize,
    ) -> Result<(), NetworkError> {
        if n == 0 {
            return Err(NetworkError::EmptyBatch);
        }
        // N^1 and N^L straight from the layers: `sizes()` would allocate on every step.
        let (n_in, n_out) = match (self.layers.first(), self.layers.last()) {
            (Some(first), Some(last)) => (first.weights.cols(), last.weights.rows()),
            _ => return Err(NetworkError::TooFewLayers { got: 0 }),
        };
        // The fields are public, so re-check that the layers chain (O(L), no allocation).
        for (i, l) in self.layers.iter().enumerate() {
            let (rows, cols) = (l.weights.rows(), l.weights.cols());
            if l.biases.len() != rows {
                return Err(NetworkError::BiasLength {
                    layer: i + 2,
                    rows,
                    biases: l.biases.len(),
                });
            }
            if i > 0 && cols != self.layers[i - 1].weights.rows() {
                let expected = self.layers[i - 1].weights.rows();
                return Err(NetworkError::SizesDontChain {
                    layer: i + 2,
                    rows,
                    cols,
                    expected,
                });
            }
        }
        let check = |what, data: &[T], width: usize| {
            let expected = n.saturating_mul(width);
            if data.len() != expected {
                return Err(NetworkError::BatchShape {
                    what,
                    n,
                    width,
                    expected,
                    got: data.len(),
                });
            }
            Ok(())
        };
        check("inputs", x, n_in)?;
        if let Some(y) = y {
            check("targets", y, n_out)?;
        }
        Ok(())
    }

    /// Feed-forward for a batch: `x` is n x N^1 row-major (one example per row); returns
    /// A^L, n x N^L. Z^l and A^l of every layer stay in `ws`.
    ///
    /// # Errors
    /// [`NetworkError::EmptyBatch`] or [`NetworkError::BatchShape`] if `x` is not n x N^1.
    ///
    /// ```
    /// use backprop::linalg::Matrix;
    /// use backprop::network::{Activation, Cost, Layer, Network, Workspace};
    /// // z = 1 * x1 + 2 * x2 + 0.5
    /// let net = Network::from_layers(vec![Layer {
    ///     weights: Matrix::from_vec(1, 2, vec![1.0f64, 2.0]).unwrap(),
    ///     biases: vec![0.5], activation: Activation::Identity }], Cost::Quadratic).unwrap();
    /// let mut ws = Workspace::new(&net, 2);
    /// assert_eq!(net.try_feed_forward(&[1.0, 1.0, 0.0, -1.0], 2, &mut ws).unwrap(), [3.5, -1.5]);
    /// ```
    pub fn try_feed_forward<'w>(
        &self,
        x: &[T],
        n: usize,
        ws: &'w mut Workspace<T>,
    ) -> Result<&'w [T], NetworkError> {
        self.check_batch(x, None, n)?;
        on_pool(self.splits(n), || self.forward_unchecked(x, n, ws));
        Ok(ws.a(self.layers.len() - 1))
    }

    /// [`Network::try_feed_forward`], panicking on a batch of the wrong shape.
    ///
    /// # Panics
    /// If `n == 0` or `x.len() != n * N^1`.
    pub fn feed_forward<'w>(&self, x: &[T], n: usize, ws: &'w mut Workspace<T>) -> &'w [T] {
        self.try_feed_forward(x, n, ws)
            .unwrap_or_else(|e| panic!("feed_forward: {e}"))
    }

    fn forward_unchecked(&self, x: &[T], n: usize, ws: &mut Workspace<T>) {
        self.pass(x, &[], n, ws, Upto::Forward);
    }

    /// Feed-forward, then C_i for each example into `ws`; returns J = (1/n) sum C_i.
    fn costs_unchecked(&self, x: &[T], y: &[T], n: usize, ws: &mut Workspace<T>) -> T {
        self.pass(x, y, n, ws, Upto::Cost);
        ws.mean_loss()
    }

    /// J = (1/n) sum_x C_x over the batch (`y` is n x N^L: one-hot rows for log-likelihood);
    /// each C_x stays in [`Workspace::losses`].
    ///
    /// # Errors
    /// [`NetworkError::EmptyBatch`] or [`NetworkError::BatchShape`].
    ///
    /// ```
    /// use backprop::linalg::Matrix;
    /// use backprop::network::{Activation, Cost, Layer, Network, Workspace};
    /// let net = Network::from_layers(vec![Layer {
    ///     weights: Matrix::from_vec(1, 1, vec![2.0f64]).unwrap(),
    ///     biases: vec![0.0], activation: Activation::Identity }], Cost::Quadratic).unwrap();
    /// let mut ws = Workspace::new(&net, 2);
    /// // outputs 2 and 4 against targets 0 and 0: J = (2 + 8) / 2
    /// assert_eq!(net.try_cost(&[1.0, 2.0], &[0.0, 0.0], 2, &mut ws).unwrap(), 5.0);
    /// assert_eq!(ws.losses(), [2.0, 8.0]);
    /// ```
    pub fn try_cost(
        &self,
        x: &[T],
        y: &[T],
        n: usize,
        ws: &mut Workspace<T>,
    ) -> Result<T, NetworkError> {
        self.check_batch(x, Some(y), n)?;
        Ok(on_pool(self.splits(n), || {
            self.costs_unchecked(x, y, n, ws)
        }))
    }

    /// [`Network::try_cost`], panicking on shapes that do not fit.
    ///
    /// # Panics
    /// If `n == 0`, `x` is not n x N^1 or `y` is not n x N^L.
    pub fn cost(&self, x: &[T], y: &[T], n: usize, ws: &mut Workspace<T>) -> T {
        self.try_cost(x, y, n, ws)
            .unwrap_or_else(|e| panic!("cost: {e}"))
    }

    /// Feed-forward and Equations 4 and 3: fills Delta^l of every layer in `ws` (row i is
    /// dC_i/dz^l, not yet divided by n) and returns J.
    pub(crate) fn deltas_unchecked(&self, x: &[T], y: &[T], n: usize, ws: &mut Workspace<T>) -> T {
        self.pass(x, y, n, ws, Upto::Deltas);
        ws.mean_loss()
    }

    /// Feed-forward for the batch and, as far as `upto` asks, C_i into `ws.losses` and
    /// Equations 4 and 3 into `ws.delta`; `y` is empty for [`Upto::Forward`].
    ///
    /// Everything here is per example: row i of every Z^l, A^l and Delta^l depends only on
    /// example i and on the weights, which nothing here changes. So when the step splits
    /// ([`Network::split`]), the whole pass runs as two halves of the batch, one per thread,
    /// in one `rayon::join`, each with the rows [0, h) or [h, n) of every buffer. A hand-over
    /// between threads costs a few microseconds; one per pass instead of one per product
    /// is what lets the small network's ~340 µs step gain from a second thread.
    fn pass(&self, x: &[T], y: &[T], n: usize, ws: &mut Workspace<T>, upto: Upto) {
        self.pass_on(x, y, n, ws, upto, true);
    }

    /// [`Network::pass`], on the calling thread alone unless `may_thread`.
    fn pass_on(
        &self,
        x: &[T],
        y: &[T],
        n: usize,
        ws: &mut Workspace<T>,
        upto: Upto,
        may_thread: bool,
    ) {
        ws.fit(self.layers.iter().map(|l| l.biases.len()), n);
        // Both halves read the padded copies of W^l, so they are made once, before the split.
        for (layer, padded) in self.layers.iter().zip(&mut ws.padded) {
            copy_padded(layer, padded);
        }
        let Workspace {
            z,
            a,
            delta,
            padded,
            losses,
            sizes,
            ..
        } = ws;
        let buffers = (z
            .iter_mut()
            .zip(a.iter_mut())
            .zip(delta.iter_mut())
            .zip(sizes.iter()))
        .map(|(((z, a), delta), &s)| Rows {
            z: &mut z[..n * s],
            a: &mut a[..n * s],
            delta: &mut delta[..n * s],
        });
        let losses = &mut losses[..n];
        match self.split(n).filter(|_| may_thread) {
            Some(h) => {
                let count = self.layers.len();
                let (mut rows0, mut rows1) = (Vec::with_capacity(count), Vec::with_capacity(count));
                for (rows, &width) in buffers.zip(sizes.iter()) {
                    let (r0, r1) = rows.split_at(h, width);
                    rows0.push(r0);
                    rows1.push(r1);
                }
                let (x0, x1) = x.split_at(x.len() / n * h);
                let (y0, y1) = y.split_at(y.len() / n * h);
                let (l0, l1) = losses.split_at_mut(h);
                rayon::join(
                    || self.pass_rows(x0, y0, &mut rows0, l0, padded, upto, false),
                    || self.pass_rows(x1, y1, &mut rows1, l1, padded, upto, false),
                );
            }
            None => {
                let mut rows: Vec<_> = buffers.collect();
                self.pass_rows(x, y, &mut rows, losses, padded, upto, may_thread);
            }
        }
    }

    /// [`Network::pass`] for one block of examples: `x`, `y`, `rows` and `losses` hold only
    /// the block's rows. With `alone` (the block is the whole batch) a product big enough
    /// may use the pool's threads itself; a half of a split batch runs single-threaded.
    #[allow(clippy::too_many_arguments)]
    fn pass_rows(
        &self,
        x: &[T],
        y: &[T],
        rows: &mut [Rows<'_, T>],
        losses: &mut [T],
        padded: &[Vec<T>],
        upto: Upto,
        alone: bool,
    ) {
        let m = losses.len();
        let par = |n, k| {
            if alone {
                parallelism_for(m, n, k)
            } else {
                Parallelism::None
            }
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let (width, fan_in) = (layer.weights.rows(), layer.weights.cols());
            let (done, rest) = rows.split_at_mut(i);
            let below = if i == 0 { x } else { &*done[i - 1].a };
            let w_t = weights_t(layer, &padded[i]);
            layer_forward(layer, w_t, below, rest[0].z, rest[0].a, par(width, fan_in));
        }
        if upto == Upto::Forward {
            return;
        }

        let out = self.layers.len() - 1;
        let (act, width) = (self.layers[out].activation, self.layers[out].biases.len());
        let output = &mut rows[out];
        let (z, a) = (output.z.chunks_exact(width), output.a.chunks_exact(width));
        for (((loss, z), a), y) in losses.iter_mut().zip(z).zip(a).zip(y.chunks_exact(width)) {
            *loss = self.cost.cost_from_z(act, z, a, y);
        }
        if upto == Upto::Cost {
            return;
        }

        // Equation 4: delta^L = dC/da^L (.) F'(z^L).
        let (a, delta) = (&*output.a, &mut *output.delta);
        if self.cost.matched_activation() == Some(act) {
            // Sigmoid + cross-entropy, softmax + log-likelihood: F' cancels dC/da, leaving
            // delta^L = a^L - y (tested against the general path below).
            for ((d, &a), &y) in delta.iter_mut().zip(a).zip(y) {
                *d = a - y;
            }
        } else {
            for ((d, a), y) in delta
                .chunks_exact_mut(width)
                .zip(a.chunks_exact(width))
                .zip(y.chunks_exact(width))
            {
                self.cost.dcost_da(a, y, d);
                backward_in_place(act, a, d);
            }
        }

        // Equation 3: delta^l = (W^(l+1)^T delta^(l+1)) (.) F'(z^l), for l = L-1 down to 2;
        // for the batch, Delta^l = (Delta^(l+1) W^(l+1)) (.) F'(Z^l), row by row.
        for i in (0..out).rev() {
            let (lower, upper) = rows.split_at_mut(i + 1);
            let (here, above) = (&mut lower[i], &self.layers[i + 1]);
            let par = par(above.weights.cols(), above.weights.rows());
            let act = self.layers[i].activation;
            equation_3(above, act, upper[0].delta, here.a, here.delta, par);
        }
    }

    /// Backpropagation for a batch: returns J = (1/n) sum C_x and overwrites `grads` with
    /// dJ/dW^l and dJ/db^l, by the four equations (see the module docs).
    ///
    /// `x` is n x N^1 and `y` n x N^L, row-major, one example per row (for log-likelihood a
    /// row of `y` is one-hot).
    ///
    /// # Errors
    /// [`NetworkError::EmptyBatch`], [`NetworkError::BatchShape`] for inputs or targets of
    /// the wrong length, [`NetworkError::GradientShape`] if `grads` does not fit the network.
    ///
    /// ```
    /// use backprop::linalg::Matrix;
    /// use backprop::network::{Activation, Cost, Gradients, Layer, Network, Workspace};
    /// // One neuron a = w x + b, C = 1/2 (a - y)^2; x = 3, y = 1, w = 2, b = 0:
    /// // a = 6, delta = a - y = 5, dC/dw = delta x = 15, dC/db = delta = 5.
    /// let net = Network::from_layers(vec![Layer {
    ///     weights: Matrix::from_vec(1, 1, vec![2.0f64]).unwrap(),
    ///     biases: vec![0.0], activation: Activation::Identity }], Cost::Quadratic).unwrap();
    /// let (mut ws, mut g) = (Workspace::new(&net, 1), Gradients::zeros_like(&net));
    /// let j = net.try_backprop(&[3.0], &[1.0], 1, &mut ws, &mut g).unwrap();
    /// assert_eq!((j, g.weights[0][(0, 0)], g.biases[0][0]), (12.5, 15.0, 5.0));
    /// ```
    pub fn try_backprop(
        &self,
        x: &[T],
        y: &[T],
        n: usize,
        ws: &mut Workspace<T>,
        grads: &mut Gradients<T>,
    ) -> Result<T, NetworkError> {
        self.check_batch(x, Some(y), n)?;
        if !grads.is_shaped_like(self) {
            return Err(NetworkError::GradientShape);
        }
        Ok(on_pool(self.splits(n), || {
            self.backprop_unchecked(x, y, n, ws, grads)
        }))
    }

    fn backprop_unchecked(
        &self,
        x: &[T],
        y: &[T],
        n: usize,
        ws: &mut Workspace<T>,
        grads: &mut Gradients<T>,
    ) -> T {
        // Feed-forward, Equation 4 and Equation 3.
        let j = self.deltas_unchecked(x, y, n, ws);
        let inv_n = T::one() / T::from_f64(n as f64);
        for i in 0..self.layers.len() {
            let (delta, a_below) = self.delta_and_input(i, x, n, ws);
            // Equations 1 and 2: dJ/dW^l = (1/n) Delta^l^T A^(l-1), dJ/db^l = (1/n) sum of
            // the rows of Delta^l.
            let (gw, gb) = (grads.weights[i].as_mut_slice(), &mut grads.biases[i][..]);
            equations_1_and_2(delta, a_below, n, gw, gb, inv_n, false);
        }
        j
    }

    /// Layer i's errors Delta^l and the activations A^(l-1) below it (the batch x for the
    /// first layer), after a pass of `n` examples: the two factors of Equations 1 and 2.
    fn delta_and_input<'a>(
        &self,
        i: usize,
        x: &'a [T],
        n: usize,
        ws: &'a Workspace<T>,
    ) -> (&'a [T], &'a [T]) {
        let w = &self.layers[i].weights;
        let a_below = if i == 0 {
            x
        } else {
            &ws.a[i - 1][..n * w.cols()]
        };
        (&ws.delta[i][..n * w.rows()], a_below)
    }

    /// Backpropagation for one block of a batch, as data-parallel training adds blocks up
    /// ([`crate::dist`]): returns the **sum** of the C_i and overwrites `grads` with the
    /// sums of the per-example gradients, sum_i dC_i/dW^l and sum_i dC_i/db^l (the post's
    /// W_i and B_i added up, not divided by n).
    ///
    /// It runs on the calling thread alone, with the same four equations as
    /// [`Network::try_backprop`]: the bits depend only on the weights and the block's
    /// examples, never on how many threads or processes share the batch.
    ///
    /// # Errors
    /// As [`Network::try_backprop`].
    ///
    /// ```
    /// use backprop::network::{Activation, Cost, Gradients, Init, Network, Workspace};
    /// let net = Network::<f64>::new(&[2, 3, 2], &[Activation::Tanh, Activation::Softmax],
    ///                               Cost::LogLikelihood, Init::Scaled, 4).unwrap();
    /// let (x, y) = ([0.5, -1.0, 2.0, 0.25], [1.0, 0.0, 0.0, 1.0]);
    /// let (mut ws, mut sum, mut mean) =
    ///     (Workspace::new(&net, 2), Gradients::zeros_like(&net), Gradients::zeros_like(&net));
    /// let total = net.try_backprop_sum(&x, &y, 2, &mut ws, &mut sum).unwrap();
    /// let j = net.backprop(&x, &y, 2, &mut ws, &mut mean);
    /// // The sums are n = 2 times the means of `backprop`.
    /// assert!((total / 2.0 - j).abs() < 1e-15);
    /// assert!((sum.weights[0][(1, 0)] / 2.0 - mean.weights[0][(1, 0)]).abs() < 1e-15);
    /// ```
    pub fn try_backprop_sum(
        &self,
        x: &[T],
        y: &[T],
        n: usize,
        ws: &mut Workspace<T>,
        grads: &mut Gradients<T>,
    ) -> Result<T, NetworkError> {
        self.check_batch(x, Some(y), n)?;
        if !grads.is_shaped_like(self) {
            return Err(NetworkError::GradientShape);
        }
        // Feed-forward, Equation 4 and Equation 3, on this thread.
        self.pass_on(x, y, n, ws, Upto::Deltas, false);
        let total = ws.losses().iter().fold(T::zero(), |sum, &c| sum + c);
        for i in 0..self.layers.len() {
            let (delta, a_below) = self.delta_and_input(i, x, n, ws);
            // Equations 1 and 2, summed over the block: Delta^l^T A^(l-1), and the sum of
            // the rows of Delta^l.
            let (gw, gb) = (grads.weights[i].as_mut_slice(), &mut grads.biases[i][..]);
            neurons_1_and_2(delta, a_below, n, 0, gw, gb, T::one(), false, false);
        }
        Ok(total)
    }

    /// [`Network::try_backprop`], panicking on shapes that do not fit.
    ///
    /// # Panics
    /// If `n == 0`, `x` is not n x N^1, `y` is not n x N^L, or `grads` is not shaped like
    /// the network.
    pub fn backprop(
        &self,
        x: &[T],
        y: &[T],
        n: usize,
        ws: &mut Workspace<T>,
        grads: &mut Gradients<T>,
    ) -> T {
        self.try_backprop(x, y, n, ws, grads)
            .unwrap_or_else(|e| panic!("backprop: {e}"))
    }
}

/// The row `h` at which to cut a batch of `n` examples into two halves, one per thread, for
/// a product of `work` multiply-adds; `None` to keep it whole (one thread, or `gemm`'s own).
///
/// Splitting the batch makes each half an independent single-threaded product with its own
/// bias, activation and F' passes, with no synchronisation inside; the rows of Z^l, A^l and
/// Delta^l come out the same whoever computes them, so the result does not depend on timing.
/// Below ~10^6 multiply-adds (the nielsen network's products) waking a second thread
/// costs more than it saves.
pub(crate) fn split_rows(n: usize, work: usize) -> Option<usize> {
    const THRESHOLD: usize = 1 << 20;
    (n >= 2 && work >= THRESHOLD && rayon::current_num_threads() >= 2).then_some(n / 2)
}

impl<T: Float> Network<T> {
    /// The row at which a pass over a batch of `n` examples is cut in two halves, one per
    /// thread: when its largest product is worth splitting (see [`split_rows`]), the whole
    /// pass is, every layer, since the hand-over is paid once either way.
    pub(crate) fn split(&self, n: usize) -> Option<usize> {
        let largest = (self.layers.iter())
            .map(|l| {
                n.saturating_mul(l.weights.rows())
                    .saturating_mul(l.weights.cols())
            })
            .max();
        split_rows(n, largest.unwrap_or(0))
    }

    /// Whether a step on a batch of `n` splits (see [`Network::split`]).
    pub(crate) fn splits(&self, n: usize) -> bool {
        self.split(n).is_some()
    }
}

/// Runs `f` on a worker of the rayon pool when `splits` (some product of the step will be
/// split in two), so that the halves [`split_rows`] makes are handed to the other worker
/// cheaply (a local queue) instead of each being sent into the pool from outside and waited
/// for. Otherwise `f` runs right here: the hand-over alone cost the nielsen step ~40%.
pub(crate) fn on_pool<R: Send>(splits: bool, f: impl FnOnce() -> R + Send) -> R {
    if splits && rayon::current_thread_index().is_none() {
        rayon::scope(|_| f())
    } else {
        f()
    }
}

/// The row stride at which to copy W^l (N^l x N^(l-1)) before the feed-forward product,
/// or `None` to read it in place.
///
/// The product reads W^l^T, so `gemm` packs W^l by walking down its columns; when a row
/// is a multiple of 4 KiB long (N^(l-1) = 1024 in f32) every element of such a walk falls
/// in the same set of the L1 cache, which then holds only 8 of them. Measured on the wide
/// network's 256 x 1024 x 1024 product, one thread: 8.0-8.5 ms read in place, 6.0-6.2 ms
/// copied to rows of 1024 + 16 (the copy included), as fast as the same product with
/// N^(l-1) = 784. Only for layers big enough to pay for the copy.
pub(crate) fn padded_stride<T>(width: usize, fan_in: usize) -> Option<usize> {
    let row_bytes = fan_in * std::mem::size_of::<T>();
    let pad = 64 / std::mem::size_of::<T>().max(1);
    (row_bytes.is_multiple_of(4096) && width >= 64 && fan_in > 0).then_some(fan_in + pad)
}

/// Copies W^l to `padded` with rows [`padded_stride`] apart, if it picks this layer.
fn copy_padded<T: Float>(layer: &Layer<T>, padded: &mut Vec<T>) {
    let (width, fan_in) = (layer.weights.rows(), layer.weights.cols());
    if let Some(stride) = padded_stride::<T>(width, fan_in) {
        if padded.len() < width * stride {
            padded.resize(width * stride, T::zero());
        }
        let rows = padded.chunks_exact_mut(stride);
        for (copy, row) in rows.zip(layer.weights.as_slice().chunks_exact(fan_in)) {
            copy[..fan_in].copy_from_slice(row);
        }
    }
}

/// W^l^T (N^(l-1) x N^l) as the feed-forward product reads it: from the copy with padded
/// rows that [`copy_padded`] made, or in place.
fn weights_t<'a, T: Float>(layer: &'a Layer<T>, padded: &'a [T]) -> MatRef<'a, T> {
    let (width, fan_in) = (layer.weights.rows(), layer.weights.cols());
    match padded_stride::<T>(width, fan_in) {
        Some(stride) => MatRef::strided(padded, fan_in, width, 1, stride).expect("copied"),
        None => layer.weights.view().t(),
    }
}

/// Feed-forward through one layer for a block of rows (examples) of the batch; `w_t` is
/// W^l^T, N^(l-1) x N^l.
fn layer_forward<T: Float>(
    layer: &Layer<T>,
    w_t: MatRef<'_, T>,
    below: &[T],
    z: &mut [T],
    a: &mut [T],
    par: Parallelism,
) {
    let (width, fan_in) = (layer.weights.rows(), layer.weights.cols());
    let input = MatRef::row_major(below, z.len() / width, fan_in).expect("sized by fit");
    // Z^l = A^(l-1) W^l^T ...
    matmul_with(z, input, w_t, T::one(), false, par);
    // ... + b^l, and A^l = F(Z^l), in one pass over each row.
    for (z, a) in z.chunks_exact_mut(width).zip(a.chunks_exact_mut(width)) {
        for (z, &b) in z.iter_mut().zip(&layer.biases) {
            *z += b;
        }
        layer.activation.f(z, a);
    }
}

/// Equation 3 for a block of rows: `delta = (d_above W^(l+1)) (.) F'(z^l)`, F' read from
/// the rows `a` of A^l.
fn equation_3<T: Float>(
    above: &Layer<T>,
    act: Activation,
    d_above: &[T],
    a: &[T],
    delta: &mut [T],
    par: Parallelism,
) {
    let (width, rows) = (above.weights.cols(), d_above.len() / above.weights.rows());
    let d_above = MatRef::row_major(d_above, rows, above.weights.rows()).expect("sized by fit");
    matmul_with(delta, d_above, above.weights.view(), T::one(), false, par);
    for (d, a) in delta.chunks_exact_mut(width).zip(a.chunks_exact(width)) {
        backward_in_place(act, a, d);
    }
}

/// Equations 1 and 2 for one layer, scaled: with `accumulate`, `w += scale Delta^T A^(l-1)`
/// and `b += scale delta` for each row (the fused SGD update, scale = -eta/n); without,
/// `w = scale Delta^T A^(l-1)` and `b = scale (sum of the rows of Delta)` (the gradient,
/// scale = 1/n). `w` is N^l x N^(l-1) row-major, `delta` n x N^l, `below` n x N^(l-1).
///
/// Row j of `w` and entry j of `b` depend only on column j of Delta, so two threads can each
/// take half of the neurons j, writing disjoint rows; each entry is computed the same way
/// whoever computes it.
pub(crate) fn equations_1_and_2<T: Float>(
    delta: &[T],
    below: &[T],
    n: usize,
    w: &mut [T],
    b: &mut [T],
    scale: T,
    accumulate: bool,
) {
    let (width, fan_in) = (b.len(), below.len() / n);
    match split_rows(width, n * width * fan_in) {
        Some(h) => {
            let (w0, w1) = w.split_at_mut(h * fan_in);
            let (b0, b1) = b.split_at_mut(h);
            rayon::join(
                || neurons_1_and_2(delta, below, n, 0, w0, b0, scale, accumulate, false),
                || neurons_1_and_2(delta, below, n, h, w1, b1, scale, accumulate, false),
            );
        }
        None => neurons_1_and_2(delta, below, n, 0, w, b, scale, accumulate, true),
    }
}

/// [`equations_1_and_2`] for the neurons `first..first + b.len()`: `w` and `b` hold only
/// their rows and entries. With `may_thread`, a product big enough may use the pool's
/// threads (only for all the neurons).
#[allow(clippy::too_many_arguments)]
fn neurons_1_and_2<T: Float>(
    delta: &[T],
    below: &[T],
    n: usize,
    first: usize,
    w: &mut [T],
    b: &mut [T],
    scale: T,
    accumulate: bool,
    may_thread: bool,
) {
    let (width, fan_in, count) = (delta.len() / n, below.len() / n, b.len());
    // Columns first..first+count of Delta, read transposed in place: count x n.
    let delta_t = MatRef::strided(&delta[first..], count, n, 1, width).expect("inside Delta");
    let below_v = MatRef::row_major(below, n, fan_in).expect("sized by fit");
    // Equation 1: dC/dw^l_jk = delta^l_j a^(l-1)_k, summed over the batch as one product.
    let par = parallelism_for(count, fan_in, n);
    let par = if count == width && may_thread {
        par
    } else {
        Parallelism::None
    };
    matmul_with(w, delta_t, below_v, scale, accumulate, par);
    // Equation 2: dC/db^l_j = delta^l_j.
    if !accumulate {
        b.fill(T::zero());
    }
    for row in delta.chunks_exact(width) {
        let row = &row[first..first + count];
        if accumulate {
            for (b, &d) in b.iter_mut().zip(row) {
                *b += scale * d;
            }
        } else {
            for (b, &d) in b.iter_mut().zip(row) {
                *b += d;
            }
        }
    }
    if !accumulate {
        b.iter_mut().for_each(|b| *b *= scale);
    }
}

/// `d <- (dF/dz)^T d` for one example's row, in place: `d` holds dC/da on entry and
/// delta = dC/dz on return ([`Activation::backward`] without a second buffer).
#[inline]
fn backward_in_place<T: Float>(act: Activation, a: &[T], d: &mut [T]) {
    if act == Activation::Softmax {
        let dot: T = a.iter().zip(d.iter()).map(|(&a, &g)| a * g).sum();
        for (d, &a) in d.iter_mut().zip(a) {
            *d = a * (*d - dot);
        }
    } else if act != Activation::Identity {
        for (d, &a) in d.iter_mut().zip(a) {
            *d *= act.df(a);
        }
    }
}

/// The general Equation 4 for one example, dC/da^L pushed back through F: the path the
/// matched pairs short-cut. Public so that tests and readers can compare the two.
///
/// ```
/// use backprop::network::{general_output_delta, Activation, Cost};
/// // softmax + log-likelihood: the general path gives a - y
/// let (a, y) = ([0.2f64, 0.8], [0.0, 1.0]);
/// let mut d = [0.0; 2];
/// general_output_delta(Cost::LogLikelihood, Activation::Softmax, &a, &y, &mut d);
/// assert!((d[0] - 0.2).abs() < 1e-15 && (d[1] + 0.2).abs() < 1e-15);
/// ```
pub fn general_output_delta<T: Float>(
    cost: Cost,
    act: Activation,
    a: &[T],
    y: &[T],
    delta: &mut [T],
) {
    cost.dcost_da(a, y, delta);
    backward_in_place(act, a, delta);
}

use super::Cost;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Init;
    use rand::{Rng, SeedableRng};

    /// Layers large enough that every product of the step crosses `split_rows`' threshold
    /// (feed-forward, Equation 3 and Equation 1), and an odd batch for uneven halves.
    fn case() -> (Network<f64>, Vec<f64>, Vec<f64>, usize) {
        let acts = [Activation::Relu, Activation::Tanh, Activation::Softmax];
        let net = Network::new(
            &[200, 160, 160, 10],
            &acts,
            Cost::LogLikelihood,
            Init::Scaled,
            3,
        )
        .unwrap();
        let n = 47;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let x = (0..n * 200).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut y = vec![0.0; n * 10];
        for row in y.chunks_exact_mut(10) {
            row[rng.gen_range(0..10)] = 1.0;
        }
        (net, x, y, n)
    }

    /// Feed-forward output, J, the gradients, and the network after one fused SGD step.
    fn run(threads: usize) -> (Vec<f64>, f64, Gradients<f64>, Network<f64>) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let (mut net, x, y, n) = case();
            assert_eq!(split_rows(n, n * 160 * 160).is_some(), threads > 1);
            let mut ws = Workspace::new(&net, n);
            let out = net.feed_forward(&x, n, &mut ws).to_vec();
            let mut g = Gradients::zeros_like(&net);
            let j = net.backprop(&x, &y, n, &mut ws, &mut g);
            net.sgd_train_step(&x, &y, n, &mut ws, 0.5).unwrap();
            (out, j, g, net)
        })
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (p, q) in a.iter().zip(b) {
            assert!((p - q).abs() <= 1e-12 * (1.0 + q.abs()), "{p} vs {q}");
        }
    }

    /// Everything a pass leaves: the feed-forward output; J and the C_i from `cost`; J, the
    /// gradients and Delta^l from `backprop`; the network after one fused SGD step.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        out: Vec<f64>,
        j_cost: f64,
        losses: Vec<f64>,
        j: f64,
        grads: Gradients<f64>,
        deltas: Vec<Vec<f64>>,
        net: Network<f64>,
    }

    fn whole_pass(threads: usize, cost: Cost, acts: &[Activation]) -> Outcome {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let sizes = [30, 512, 64, 32, 10];
            let mut net = Network::new(&sizes, acts, cost, Init::Scaled, 5).unwrap();
            let n = 41;
            // Only W^3 (64 x 512) crosses the threshold on its own, and its rows are 4 KiB
            // long, so both halves read its padded copy; W^2, W^4 and W^5 are split only
            // because the whole pass is.
            assert_eq!(padded_stride::<f64>(64, 512), Some(520));
            assert!(split_rows(n, n * 512 * 30).is_none());
            assert_eq!(split_rows(n, n * 64 * 512).is_some(), threads > 1);
            assert_eq!(net.split(n), (threads > 1).then_some(20));
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
            let x: Vec<f64> = (0..n * 30).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let mut y = vec![0.0; n * 10];
            for row in y.chunks_exact_mut(10) {
                row[rng.gen_range(0..10)] = 1.0;
            }
            let mut ws = Workspace::new(&net, n);
            let out = net.feed_forward(&x, n, &mut ws).to_vec();
            let j_cost = net.cost(&x, &y, n, &mut ws);
            let losses = ws.losses().to_vec();
            let mut g = Gradients::zeros_like(&net);
            let j = net.backprop(&x, &y, n, &mut ws, &mut g);
            let deltas = (0..4).map(|i| ws.delta(i).to_vec()).collect();
            net.sgd_train_step(&x, &y, n, &mut ws, 0.5).unwrap();
            Outcome {
                out,
                j_cost,
                losses,
                j,
                grads: g,
                deltas,
                net,
            }
        })
    }

    #[test]
    fn whole_pass_in_two_halves_matches_one_thread() {
        use Activation::*;
        // The matched pair (Equation 4 as a - y) and the general Equation 4.
        let cases = [
            (Cost::LogLikelihood, [Tanh, Relu, Sigmoid, Softmax]),
            (Cost::Quadratic, [Relu, LeakyRelu, Tanh, Sigmoid]),
        ];
        for (cost, acts) in cases {
            let one = whole_pass(1, cost, &acts);
            let two = whole_pass(2, cost, &acts);
            close(&two.out, &one.out);
            close(&[two.j_cost, two.j], &[one.j_cost, one.j]);
            close(&two.losses, &one.losses);
            // J is the mean of the C_i, summed in example order on either path.
            for o in [&one, &two] {
                assert_eq!(o.j_cost, o.losses.iter().sum::<f64>() / 41.0);
            }
            for i in 0..4 {
                close(
                    two.grads.weights[i].as_slice(),
                    one.grads.weights[i].as_slice(),
                );
                close(&two.grads.biases[i], &one.grads.biases[i]);
                close(&two.deltas[i], &one.deltas[i]);
                let (l2, l1) = (&two.net.layers[i], &one.net.layers[i]);
                close(l2.weights.as_slice(), l1.weights.as_slice());
                close(&l2.biases, &l1.biases);
            }
            // The halves never race: the same thread count gives the same bits.
            assert_eq!(whole_pass(2, cost, &acts), two);
        }
    }

    #[test]
    fn only_steps_worth_a_hand_over_split() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            let new = |sizes: &[usize], acts: &[Activation]| {
                Network::<f32>::new(sizes, acts, Cost::LogLikelihood, Init::Scaled, 1).unwrap()
            };
            use Activation::*;
            // nielsen, batch 10: 784 x 30 x 10 = 235,200 multiply-adds at most; stays whole.
            assert_eq!(new(&[784, 30, 10], &[Sigmoid, Softmax]).split(10), None);
            // small, batch 64: 64 x 128 x 784 = 6.4 million; the pass splits in two halves.
            let small = new(&[784, 128, 64, 10], &[Relu, Relu, Softmax]);
            assert_eq!(small.split(64), Some(32));
            assert_eq!(small.split(1), None);
        });
    }

    #[test]
    fn padded_copy_of_w_gives_the_plain_product() {
        // f32 rows of 1024 are 4 KiB long: the copy is taken; 784 are not.
        assert_eq!(padded_stride::<f32>(64, 1024), Some(1040));
        assert_eq!(padded_stride::<f64>(64, 512), Some(520));
        assert_eq!(padded_stride::<f32>(64, 784), None);
        assert_eq!(padded_stride::<f32>(10, 1024), None);
        let acts = [Activation::Relu, Activation::Sigmoid];
        let net =
            Network::<f32>::new(&[1024, 96, 3], &acts, Cost::Quadratic, Init::Scaled, 4).unwrap();
        let n = 5;
        let x: Vec<f32> = (0..n * 1024)
            .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
            .collect();
        let mut ws = Workspace::new(&net, n);
        net.feed_forward(&x, n, &mut ws);
        // Z^2 by the plain path: W^2 read transposed in place, then + b^2.
        let layer = &net.layers[0];
        let mut z = vec![0.0f32; n * 96];
        let input = MatRef::row_major(&x, n, 1024).unwrap();
        matmul_with(
            &mut z,
            input,
            layer.weights.view().t(),
            1.0,
            false,
            Parallelism::None,
        );
        for (k, (got, want)) in ws.z(0).iter().zip(&z).enumerate() {
            let want = want + layer.biases[k % 96];
            assert!(
                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "{got} vs {want}"
            );
        }
        // The copy follows the weights: w^2_03 += 1 moves z^2_0 of example 0 by x_3.
        let (b0, mut net) = (layer.biases[0], net.clone());
        net.layers[0].weights[(0, 3)] += 1.0;
        net.feed_forward(&x, n, &mut ws);
        let moved = ws.z(0)[0] - (z[0] + b0);
        assert!((moved - x[3]).abs() < 1e-4, "{moved} vs {}", x[3]);
    }

    #[test]
    fn two_halves_on_two_threads_match_one_thread() {
        let (out1, j1, g1, net1) = run(1);
        let (out2, j2, g2, net2) = run(2);
        close(&out2, &out1);
        close(&[j2], &[j1]);
        for i in 0..3 {
            close(g2.weights[i].as_slice(), g1.weights[i].as_slice());
            close(&g2.biases[i], &g1.biases[i]);
            close(
                net2.layers[i].weights.as_slice(),
                net1.layers[i].weights.as_slice(),
            );
            close(&net2.layers[i].biases, &net1.layers[i].biases);
        }
        // The halves never race: the same thread count gives the same bits.
        let (out3, j3, g3, net3) = run(2);
        assert_eq!((out3, j3), (out2, j2));
        assert_eq!(g3.weights, g2.weights);
        assert_eq!(g3.biases, g2.biases);
        assert_eq!(net3.layers, net2.layers);
    }
}
