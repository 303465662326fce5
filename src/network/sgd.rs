//! Stochastic gradient descent exactly as the post ends: shuffled mini-batches, and
//! w <- w - eta dJ/dw for each.

use super::backprop::{equations_1_and_2, on_pool};
use super::{Network, NetworkError, Workspace};
use crate::Float;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

impl<T: Float> Network<T> {
    /// Trains by SGD for `epochs` passes over the `n` examples (`x`: n x N^1, `y`: n x N^L),
    /// in mini-batches of `batch_size` (the last one smaller if it does not divide n), in an
    /// order shuffled each epoch by a stream seeded with `seed`. Returns the mean cost J of
    /// each epoch, measured on each batch before its update.
    ///
    /// All buffers are allocated once, before the first step; each step is
    /// [`Network::sgd_train_step`].
    ///
    /// # Errors
    /// [`NetworkError::ZeroBatchSize`], and those of [`Network::backprop`] for data that does
    /// not fit the network.
    ///
    /// ```
    /// use backprop::network::{Activation, Cost, Init, Network};
    /// // XOR with a 2-4-1 sigmoid network.
    /// let x = [0.0f64, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
    /// let y = [0.0, 1.0, 1.0, 0.0];
    /// let mut net = Network::new(&[2, 4, 1], &[Activation::Sigmoid; 2], Cost::CrossEntropy, Init::Large, 1).unwrap();
    /// let costs = net.sgd(&x, &y, 4, 4, 2000, 2.0, 7).unwrap();
    /// assert!(costs[1999] < 0.05 * costs[0], "{} -> {}", costs[0], costs[1999]);
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn sgd(
        &mut self,
        x: &[T],
        y: &[T],
        n: usize,
        batch_size: usize,
        epochs: usize,
        eta: T,
        seed: u64,
    ) -> Result<Vec<T>, NetworkError> {
        if batch_size == 0 {
            return Err(NetworkError::ZeroBatchSize);
        }
        self.check_batch(x, Some(y), n)?;
        let sizes = self.sizes();
        let (n_in, n_out) = (sizes[0], sizes[sizes.len() - 1]);
        let batch_size = batch_size.min(n);
        let mut ws = Workspace::new(self, batch_size);
        let (mut bx, mut by) = (
            vec![T::zero(); batch_size * n_in],
            vec![T::zero(); batch_size * n_out],
        );
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut costs = Vec::with_capacity(epochs);
        for _ in 0..epochs {
            order.shuffle(&mut rng);
            let mut total = T::zero();
            for batch in order.chunks(batch_size) {
                let m = batch.len();
                for (r, &e) in batch.iter().enumerate() {
                    bx[r * n_in..(r + 1) * n_in].copy_from_slice(&x[e * n_in..(e + 1) * n_in]);
                    by[r * n_out..(r + 1) * n_out].copy_from_slice(&y[e * n_out..(e + 1) * n_out]);
                }
                let j = self.sgd_train_step(&bx[..m * n_in], &by[..m * n_out], m, &mut ws, eta)?;
                total += j * T::from_f64(m as f64);
            }
            costs.push(total / T::from_f64(n as f64));
        }
        Ok(costs)
    }
}

impl<T: Float> Network<T> {
    /// One SGD step on a batch with the update fused into Equations 1 and 2: returns J and
    /// leaves W^l <- W^l - eta (1/n) Delta^l^T A^(l-1), b^l <- b^l - eta (1/n) sum rows of
    /// Delta^l, without materialising the gradients.
    ///
    /// Exact to do because Equation 3 has already used every W^(l+1) before any W^l
    /// changes. The result equals [`Network::backprop`] then [`Network::sgd_step`] up to
    /// rounding (the product is accumulated into W^l instead of added afterwards); a test
    /// holds the two paths together.
    ///
    /// # Errors
    /// [`NetworkError::EmptyBatch`] or [`NetworkError::BatchShape`].
    ///
    /// ```
    /// use backprop::network::{Activation, Cost, Gradients, Init, Network, Workspace};
    /// let mut fused = Network::<f64>::new(&[3, 4, 2], &[Activation::Tanh, Activation::Sigmoid],
    ///                                     Cost::CrossEntropy, Init::Scaled, 1).unwrap();
    /// let mut plain = fused.clone();
    /// let (x, y) = ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [1.0, 0.0, 0.0, 1.0]);
    /// let mut ws = Workspace::new(&fused, 2);
    /// let j1 = fused.sgd_train_step(&x, &y, 2, &mut ws, 0.5).unwrap();
    /// let mut g = Gradients::zeros_like(&plain);
    /// let j2 = plain.backprop(&x, &y, 2, &mut ws, &mut g);
    /// plain.sgd_step(&g, 0.5);
    /// assert_eq!(j1, j2);
    /// let w = |n: &Network<f64>| n.layers[0].weights[(1, 2)];
    /// assert!((w(&fused) - w(&plain)).abs() < 1e-15);
    /// ```
    pub fn sgd_train_step(
        &mut self,
        x: &[T],
        y: &[T],
        n: usize,
        ws: &mut Workspace<T>,
        eta: T,
    ) -> Result<T, NetworkError> {
        self.check_batch(x, Some(y), n)?;
        let splits = self.splits(n);
        Ok(on_pool(splits, || {
            self.sgd_train_step_unchecked(x, y, n, ws, eta)
        }))
    }

    fn sgd_train_step_unchecked(
        &mut self,
        x: &[T],
        y: &[T],
        n: usize,
        ws: &mut Workspace<T>,
        eta: T,
    ) -> T {
        // Feed-forward, Equation 4 and Equation 3 (all deltas, before any weight moves).
        let j = self.deltas_unchecked(x, y, n, ws);
        let step = -eta / T::from_f64(n as f64);
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let fan_in = layer.weights.cols();
            let delta = ws.delta(i);
            let below = if i == 0 {
                x
            } else {
                &ws.a(i - 1)[..n * fan_in]
            };
            // Equations 1 and 2, accumulated: W^l += (-eta/n) Delta^l^T A^(l-1), and
            // b^l += (-eta/n) delta^l for each row of Delta^l.
            let w = layer.weights.as_mut_slice();
            equations_1_and_2(delta, below, n, w, &mut layer.biases, step, true);
        }
        j
    }
}
