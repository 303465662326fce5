//! Per-example gradients: the post's W_i = dC_i/dw^l_jk and B_i = dC_i/db^l_j for every
//! example of a batch, from one batched forward and backward pass; and, for private
//! training, their norms and a weighted sum of them without building any of them.

use super::backprop::{equations_1_and_2, on_pool};
use super::{Gradients, Network, NetworkError, Workspace};
use crate::Float;

impl<T: Float> Network<T> {
    /// C_i and (W_i, B_i) = dC_i/dtheta for each example i of the batch (not divided by n),
    /// from one batched pass: Delta^l's row i is delta^l for example i, so
    /// W_i^l = delta_i^l (a_i^(l-1))^T (Equation 1, an outer product) and B_i^l = delta_i^l
    /// (Equation 2). Their mean is the batch gradient of [`Network::backprop`].
    ///
    /// # Errors
    /// [`NetworkError::EmptyBatch`] or [`NetworkError::BatchShape`] for a batch that does not
    /// fit the network.
    ///
    /// ```
    /// use backprop::linalg::Matrix;
    /// use backprop::network::{Activation, Cost, Layer, Network, Workspace};
    /// // a = 2 x, C = 1/2 (a - y)^2; examples x = 1, y = 0 (delta 2) and x = 2, y = 0 (delta 4)
    /// let net = Network::from_layers(vec![Layer {
    ///     weights: Matrix::from_vec(1, 1, vec![2.0f64]).unwrap(),
    ///     biases: vec![0.0], activation: Activation::Identity }], Cost::Quadratic).unwrap();
    /// let mut ws = Workspace::new(&net, 2);
    /// let (losses, grads) = net.per_example_gradients(&[1.0, 2.0], &[0.0, 0.0], 2, &mut ws).unwrap();
    /// assert_eq!(losses, [2.0, 8.0]);
    /// assert_eq!(grads[0].weights[0][(0, 0)], 2.0); // delta x = 2 * 1
    /// assert_eq!(grads[1].weights[0][(0, 0)], 8.0); // delta x = 4 * 2
    /// assert_eq!(grads[1].biases[0][0], 4.0);
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn per_example_gradients(
        &self,
        x: &[T],
        y: &[T],
        n: usize,
        ws: &mut Workspace<T>,
    ) -> Result<(Vec<T>, Vec<Gradients<T>>), NetworkError> {
        let mut losses = Vec::new();
        let mut grads = Vec::new();
        self.per_example_gradients_into(x, y, n, ws, &mut losses, &mut grads)?;
        Ok((losses, grads))
    }

    /// [`Network::per_example_gradients`] into buffers that are reused when already shaped
    /// (for repeated calls without allocation).
    pub fn per_example_gradients_into(
        &self,
        x: &[T],
        y: &[T],
        n: usize,
        ws: &mut Workspace<T>,
        losses: &mut Vec<T>,
        grads: &mut Vec<Gradients<T>>,
    ) -> Result<(), NetworkError> {
        self.check_batch(x, Some(y), n)?;
        self.deltas_unchecked(x, y, n, ws);
        losses.clear();
        losses.extend_from_slice(ws.losses());
        grads.truncate(n);
        grads.retain(|g| g.is_shaped_like(self));
        while grads.len() < n {
            grads.push(Gradients::zeros_like(self));
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let (width, fan_in) = (layer.weights.rows(), layer.weights.cols());
            let below = if i == 0 {
                x
            } else {
                &ws.a(i - 1)[..n * fan_in]
            };
            let delta = ws.delta(i);
            for (ex, g) in grads.iter_mut().enumerate() {
                let d = &delta[ex * width..(ex + 1) * width];
                let a = &below[ex * fan_in..(ex + 1) * fan_in];
                // Equation 1: dC_i/dw^l_jk = delta^l_j a^(l-1)_k.
                for (row, &dj) in g.weights[i].as_mut_slice().chunks_exact_mut(fan_in).zip(d) {
                    for (w, &ak) in row.iter_mut().zip(a) {
                        *w = dj * ak;
                    }
                }
                // Equation 2: dC_i/db^l_j = delta^l_j.
                g.biases[i].copy_from_slice(d);
            }
        }
        Ok(())
    }

    /// J, and the norm of each example's whole gradient ||(W_i, B_i)|| over every weight
    /// and bias into `norms`, from one batched pass and without building any W_i.
    ///
    /// Equation 1 makes W_i^l = delta_i^l (a_i^(l-1))^T an outer product, whose Frobenius
    /// norm is ||delta_i^l|| ||a_i^(l-1)||; Equation 2 makes B_i^l = delta_i^l. So
    ///
    /// ```text
    /// ||(W_i, B_i)||^2 = sum over l of ||delta_i^l||^2 (||a_i^(l-1)||^2 + 1)
    /// ```
    ///
    /// The pass (Z^l, A^l, Delta^l) stays in `ws` for [`Network::weighted_gradients`].
    /// The squares are summed in f64 whatever `T`.
    ///
    /// # Errors
    /// [`NetworkError::EmptyBatch`] or [`NetworkError::BatchShape`].
    ///
    /// ```
    /// use backprop::linalg::Matrix;
    /// use backprop::network::{Activation, Cost, Layer, Network, Workspace};
    /// // a = w . x + b, C = 1/2 (a - y)^2: W_i = delta x, B_i = delta.
    /// let net = Network::from_layers(vec![Layer {
    ///     weights: Matrix::from_vec(1, 2, vec![1.0f64, 1.0]).unwrap(),
    ///     biases: vec![0.0], activation: Activation::Identity }], Cost::Quadratic).unwrap();
    /// let mut ws = Workspace::new(&net, 1);
    /// let mut norms = Vec::new();
    /// // x = (3, 4), y = 5: a = 7, delta = 2, ||W|| = 2 * 5 = 10, ||B|| = 2.
    /// net.per_example_norms(&[3.0, 4.0], &[5.0], 1, &mut ws, &mut norms).unwrap();
    /// assert!((norms[0] - 104f64.sqrt()).abs() < 1e-14);
    /// ```
    pub fn per_example_norms(
        &self,
        x: &[T],
        y: &[T],
        n: usize,
        ws: &mut Workspace<T>,
        norms: &mut Vec<f64>,
    ) -> Result<T, NetworkError> {
        self.check_batch(x, Some(y), n)?;
        let j = on_pool(self.splits(n), || self.deltas_unchecked(x, y, n, ws));
        norms.clear();
        norms.resize(n, 0.0);
        let square = sum_squares::<T>;
        for (i, layer) in self.layers.iter().enumerate() {
            let (width, fan_in) = (layer.weights.rows(), layer.weights.cols());
            let below = if i == 0 { x } else { ws.a(i - 1) };
            let rows = ws.delta(i).chunks_exact(width);
            for ((norm, d), a) in norms.iter_mut().zip(rows).zip(below.chunks_exact(fan_in)) {
                // ||W_i^l||^2 + ||B_i^l||^2 = ||delta_i^l||^2 (||a_i^(l-1)||^2 + 1)
                *norm += square(d) * (square(a) + 1.0);
            }
        }
        norms.iter_mut().for_each(|s| *s = s.sqrt());
        Ok(j)
    }

    /// `grads` = scale sum_i c_i (W_i, B_i): Equations 1 and 2 over the batch with example
    /// i's error weighted by `c[i]`, from the pass that [`Network::per_example_norms`] (or
    /// [`Network::backprop`]) left in `ws` for the same `x`. With every c_i = 1 and
    /// scale = 1/n it is the batch gradient dJ/dtheta.
    ///
    /// Weighting example i's output error delta_i^L by c_i weights its delta_i^l in every
    /// layer by c_i, since Equation 3 is linear in delta^(l+1); so the rows of the stored
    /// Delta^l are scaled in place (Delta^l is left scaled) rather than running Equations 4
    /// and 3 again, and one product per layer gives the weighted sum.
    ///
    /// # Errors
    /// [`NetworkError::BatchShape`] for `x` or `c` of the wrong length,
    /// [`NetworkError::NoPass`] if `ws` was last used for another batch size or network,
    /// [`NetworkError::GradientShape`] if `grads` does not fit the network.
    ///
    /// ```
    /// use backprop::linalg::Matrix;
    /// use backprop::network::{Activation, Cost, Gradients, Layer, Network, Workspace};
    /// // a = 2 x, C = 1/2 a^2 at x = 1 and x = 2: W_1 = 2 * 1 = 2, W_2 = 4 * 2 = 8.
    /// let net = Network::from_layers(vec![Layer {
    ///     weights: Matrix::from_vec(1, 1, vec![2.0f64]).unwrap(),
    ///     biases: vec![0.0], activation: Activation::Identity }], Cost::Quadratic).unwrap();
    /// let (mut ws, mut g, mut norms) = (Workspace::new(&net, 2), Gradients::zeros_like(&net), vec![]);
    /// net.per_example_norms(&[1.0, 2.0], &[0.0, 0.0], 2, &mut ws, &mut norms).unwrap();
    /// net.weighted_gradients(&[1.0, 2.0], 2, &[1.0, 0.25], 1.0, &mut ws, &mut g).unwrap();
    /// assert_eq!(g.weights[0][(0, 0)], 2.0 + 0.25 * 8.0);
    /// assert_eq!(g.biases[0][0], 2.0 + 0.25 * 4.0); // B_i = delta_i = 2, 4
    /// ```
    pub fn weighted_gradients(
        &self,
        x: &[T],
        n: usize,
        c: &[T],
        scale: T,
        ws: &mut Workspace<T>,
        grads: &mut Gradients<T>,
    ) -> Result<(), NetworkError> {
        if !grads.is_shaped_like(self) {
            return Err(NetworkError::GradientShape);
        }
        self.weight_deltas(x, n, c, ws)?;
        on_pool(self.splits(n), || {
            for i in 0..self.layers.len() {
                let below = if i == 0 { x } else { ws.a(i - 1) };
                let (gw, gb) = (grads.weights[i].as_mut_slice(), &mut grads.biases[i][..]);
                // Equations 1 and 2: scale sum_i c_i delta_i^l a_i^(l-1)^T and scale sum_i
                // c_i delta_i^l, the c_i already in the rows of Delta^l.
                equations_1_and_2(ws.delta(i), below, n, gw, gb, scale, false);
            }
        });
        Ok(())
    }

    /// [`Network::weighted_gradients`] added straight into the weights and biases:
    /// theta <- theta + step sum_i c_i (W_i, B_i), an SGD step (step = -eta/B) that never
    /// stores the sum, as [`Network::sgd_train_step`] does for the batch gradient. Exact to
    /// do because the pass in `ws` has already used every W^l. Equals
    /// [`Network::weighted_gradients`] then theta += grads up to rounding.
    ///
    /// # Errors
    /// As [`Network::weighted_gradients`] (but no `grads`); the network is unchanged then.
    ///
    /// ```
    /// use backprop::linalg::Matrix;
    /// use backprop::network::{Activation, Cost, Layer, Network, Workspace};
    /// // a = 2 x, C = 1/2 a^2 at x = 1 and x = 2: W_1 = 2, W_2 = 8; B_1 = 2, B_2 = 4.
    /// let mut net = Network::from_layers(vec![Layer {
    ///     weights: Matrix::from_vec(1, 1, vec![2.0f64]).unwrap(),
    ///     biases: vec![0.0], activation: Activation::Identity }], Cost::Quadratic).unwrap();
    /// let (mut ws, mut norms) = (Workspace::new(&net, 2), vec![]);
    /// net.per_example_norms(&[1.0, 2.0], &[0.0, 0.0], 2, &mut ws, &mut norms).unwrap();
    /// net.weighted_step(&[1.0, 2.0], 2, &[1.0, 0.25], -0.1, &mut ws).unwrap();
    /// assert_eq!(net.layers[0].weights[(0, 0)], 2.0 - 0.1 * (2.0 + 0.25 * 8.0));
    /// assert_eq!(net.layers[0].biases[0], -0.1 * (2.0 + 0.25 * 4.0));
    /// ```
    pub fn weighted_step(
        &mut self,
        x: &[T],
        n: usize,
        c: &[T],
        step: T,
        ws: &mut Workspace<T>,
    ) -> Result<(), NetworkError> {
        self.weighted_step_then(x, n, c, step, ws, |_| ())
    }

    /// [`Network::weighted_step`] (nothing for `n` = 0), then `then` with the network, both
    /// in one hand-over to the thread pool when the products split: private training adds
    /// its noise to the weights there, and the noise of a big tensor is split over the
    /// threads too.
    pub(crate) fn weighted_step_then<R: Send>(
        &mut self,
        x: &[T],
        n: usize,
        c: &[T],
        step: T,
        ws: &mut Workspace<T>,
        then: impl FnOnce(&mut Self) -> R + Send,
    ) -> Result<R, NetworkError> {
        if n > 0 {
            self.weight_deltas(x, n, c, ws)?;
        }
        let splits = n > 0 && self.splits(n);
        Ok(on_pool(splits, || {
            if n > 0 {
                for (i, layer) in self.layers.iter_mut().enumerate() {
                    let below = if i == 0 { x } else { ws.a(i - 1) };
                    let (w, b) = (layer.weights.as_mut_slice(), &mut layer.biases[..]);
                    // Equations 1 and 2, accumulated: W^l += step sum_i c_i delta_i^l
                    // a_i^(l-1)^T, b^l += step sum_i c_i delta_i^l.
                    equations_1_and_2(ws.delta(i), below, n, w, b, step, true);
                }
            }
            then(self)
        }))
    }

    /// Checks a weighted sum's inputs against the pass in `ws`, then scales row i of every
    /// Delta^l by c_i.
    fn weight_deltas(
        &self,
        x: &[T],
        n: usize,
        c: &[T],
        ws: &mut Workspace<T>,
    ) -> Result<(), NetworkError> {
        self.check_batch(x, None, n)?;
        if c.len() != n {
            return Err(NetworkError::BatchShape {
                what: "example weights",
                n,
                width: 1,
                expected: n,
                got: c.len(),
            });
        }
        if !ws.holds(self, n) {
            return Err(NetworkError::NoPass { n });
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let width = layer.weights.rows();
            for (row, &ci) in ws.delta_mut(i).chunks_exact_mut(width).zip(c) {
                row.iter_mut().for_each(|d| *d *= ci);
            }
        }
        Ok(())
    }
}

/// sum_k v_k^2 in f64, in eight running sums: a single running sum waits for each add
/// (about 4 cycles), and a batch's inputs alone are n x 784 values (the small network's
/// norms took ~80 us of its ~400 us step that way; eight sums vectorise).
fn sum_squares<T: Float>(v: &[T]) -> f64 {
    let mut sums = [0.0f64; 8];
    let mut chunks = v.chunks_exact(8);
    for chunk in &mut chunks {
        for (s, &x) in sums.iter_mut().zip(chunk) {
            *s += x.to_f64() * x.to_f64();
        }
    }
    let rest: f64 = chunks
        .remainder()
        .iter()
        .map(|&x| x.to_f64() * x.to_f64())
        .sum();
    sums.iter().sum::<f64>() + rest
}

#[cfg(test)]
mod tests {
    use super::sum_squares;

    #[test]
    fn sum_squares_counts_every_value_once() {
        // 1^2 + ... + 19^2 = 19 * 20 * 39 / 6 = 2470: two chunks of eight and a rest of 3.
        let v: Vec<f32> = (1..=19).map(|i| i as f32).collect();
        assert_eq!(sum_squares(&v), 2470.0);
        assert_eq!(sum_squares::<f64>(&[]), 0.0);
        assert_eq!(sum_squares(&[0.5f64; 3]), 0.75);
    }
}
