//! Feed-forward and the four equations, for a whole mini-batch at once.
//!
//! A batch of n examples is a matrix with one example per row, so the seed's column vectors
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
//! Row i of Delta^l is the seed's delta^l for example i, dC_i/dz^l; the 1/n of J = (1/n) sum
//! C_i is applied once, in Equations 1 and 2.

use super::{Activation, Gradients, Network, NetworkError};
use crate::linalg::{matmul, MatRef};
use crate::Float;

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

    /// C_i of each example of the last backward pass or [`Network::cost`].
    pub fn losses(&self) -> &[T] {
        &self.losses[..self.n]
    }
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
        self.forward_unchecked(x, n, ws);
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
        ws.fit(self.layers.iter().map(|l| l.biases.len()), n);
        for (i, layer) in self.layers.iter().enumerate() {
            let (width, fan_in) = (layer.weights.rows(), layer.weights.cols());
            let (done, rest) = ws.a.split_at_mut(i);
            let below = if i == 0 { x } else { &done[i - 1] };
            let input = MatRef::row_major(below, n, fan_in).expect("checked or sized by fit");
            let (z, a) = (&mut ws.z[i][..n * width], &mut rest[0][..n * width]);
            // Z^l = A^(l-1) W^l^T (W^l read transposed in place) ...
            matmul(z, input, layer.weights.view().t(), T::one(), false);
            // ... + b^l, and A^l = F(Z^l), in one pass over each row.
            for (z, a) in z.chunks_exact_mut(width).zip(a.chunks_exact_mut(width)) {
                for (z, &b) in z.iter_mut().zip(&layer.biases) {
                    *z += b;
                }
                layer.activation.f(z, a);
            }
        }
    }

    /// Feed-forward, then C_i for each example into `ws`; returns J = (1/n) sum C_i.
    fn costs_unchecked(&self, x: &[T], y: &[T], n: usize, ws: &mut Workspace<T>) -> T {
        self.forward_unchecked(x, n, ws);
        let out = self.layers.len() - 1;
        let (width, act) = (ws.sizes[out], self.layers[out].activation);
        let mut total = T::zero();
        for (i, loss) in ws.losses[..n].iter_mut().enumerate() {
            let r = i * width..(i + 1) * width;
            *loss = self
                .cost
                .cost_from_z(act, &ws.z[out][r.clone()], &ws.a[out][r.clone()], &y[r]);
            total += *loss;
        }
        total / T::from_f64(n as f64)
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
        Ok(self.costs_unchecked(x, y, n, ws))
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
        let j = self.costs_unchecked(x, y, n, ws);
        let out = self.layers.len() - 1;
        let (act, width) = (self.layers[out].activation, ws.sizes[out]);
        let (a, delta) = (&ws.a[out][..n * width], &mut ws.delta[out][..n * width]);

        // Equation 4: delta^L = dC/da^L (.) F'(z^L).
        if self.cost.matched_activation() == Some(act) {
            // Sigmoid + cross-entropy, softmax + log-likelihood: F' cancels dC/da, leaving
            // delta^L = a^L - y (tested against the general path below).
            for ((d, &a), &y) in delta.iter_mut().zip(a).zip(&y[..n * width]) {
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
        // for the batch, Delta^l = (Delta^(l+1) W^(l+1)) (.) F'(Z^l).
        for i in (0..out).rev() {
            let (width, above) = (ws.sizes[i], &self.layers[i + 1]);
            let (lower, upper) = ws.delta.split_at_mut(i + 1);
            let d_above = MatRef::row_major(&upper[0], n, ws.sizes[i + 1]).expect("sized by fit");
            let delta = &mut lower[i][..n * width];
            matmul(delta, d_above, above.weights.view(), T::one(), false);
            let act = self.layers[i].activation;
            for (d, a) in delta
                .chunks_exact_mut(width)
                .zip(ws.a[i].chunks_exact(width))
            {
                backward_in_place(act, a, d);
            }
        }
        j
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
        // Feed-forward, Equation 4 and Equation 3.
        let j = self.deltas_unchecked(x, y, n, ws);
        let inv_n = T::one() / T::from_f64(n as f64);
        for (i, layer) in self.layers.iter().enumerate() {
            let (width, fan_in) = (layer.weights.rows(), layer.weights.cols());
            let delta = &ws.delta[i][..n * width];
            let a_below = if i == 0 {
                x
            } else {
                &ws.a[i - 1][..n * fan_in]
            };
            // Equation 1: dC/dw^l_jk = delta^l_j a^(l-1)_k; for the batch mean,
            // dJ/dW^l = (1/n) Delta^l^T A^(l-1) (Delta^l read transposed in place).
            let delta_t = MatRef::row_major(delta, n, width).expect("sized").t();
            let a_below = MatRef::row_major(a_below, n, fan_in).expect("sized");
            matmul(
                grads.weights[i].as_mut_slice(),
                delta_t,
                a_below,
                inv_n,
                false,
            );
            // Equation 2: dC/db^l_j = delta^l_j; dJ/db^l = (1/n) sum of the rows of Delta^l.
            let gb = &mut grads.biases[i];
            gb.fill(T::zero());
            for row in delta.chunks_exact(width) {
                for (g, &d) in gb.iter_mut().zip(row) {
                    *g += d;
                }
            }
            gb.iter_mut().for_each(|g| *g *= inv_n);
        }
        Ok(j)
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
