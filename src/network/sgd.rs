//! Stochastic gradient descent exactly as the seed ends: shuffled mini-batches, and
//! w <- w - eta dJ/dw for each.

use super::{Gradients, Network, NetworkError, Workspace};
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
    /// All buffers are allocated once, before the first step.
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
        let mut grads = Gradients::zeros_like(self);
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
                let j =
                    self.try_backprop(&bx[..m * n_in], &by[..m * n_out], m, &mut ws, &mut grads)?;
                total += j * T::from_f64(m as f64);
                self.sgd_step(&grads, eta);
            }
            costs.push(total / T::from_f64(n as f64));
        }
        Ok(costs)
    }
}
