//! Per-example gradients: the post's W_i = dC_i/dw^l_jk and B_i = dC_i/db^l_j for every
//! example of a batch, from one batched forward and backward pass.

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
}
