//! The network's side of the [`crate::model`] seam: its parameters by name, as PyTorch
//! names an `nn.Sequential` of `Linear` layers saved under `layers`.

use super::{Gradients, Network};
use crate::model::{GradientShapeError, Model, NameBuf, Param, ParamMut, ValuesMut};
use crate::Float;

/// Weight layer i gives `layers.{i}.weight` (shape [N^(i+1), N^i], W^l with row j =
/// neuron j) then `layers.{i}.bias` (shape [N^(i+1)]), for i = 0, 1, ...: the names of
/// its model files ([`crate::model_file::weight_name`]).
///
/// ```
/// use backprop::model::Model;
/// use backprop::network::{Activation, Cost, Init, Network};
/// let net = Network::<f32>::new(&[784, 30, 10], &[Activation::Sigmoid; 2], Cost::Quadratic,
///                               Init::Scaled, 0).unwrap();
/// let mut seen = Vec::new();
/// net.visit_params(&mut |p| seen.push((p.name.to_string(), p.shape.to_vec(), p.values.len())));
/// assert_eq!(seen, [
///     ("layers.0.weight".to_string(), vec![30, 784], 23520),
///     ("layers.0.bias".to_string(), vec![30], 30),
///     ("layers.1.weight".to_string(), vec![10, 30], 300),
///     ("layers.1.bias".to_string(), vec![10], 10),
/// ]);
/// ```
impl<T: Float> Model<T> for Network<T> {
    type Grads = Gradients<T>;

    fn visit_params(&self, f: &mut dyn FnMut(Param<'_, T>)) {
        let mut name = NameBuf::new();
        for (i, l) in self.layers.iter().enumerate() {
            f(Param {
                name: name.format(format_args!("layers.{i}.weight")),
                shape: &[l.weights.rows(), l.weights.cols()],
                values: l.weights.as_slice(),
            });
            f(Param {
                name: name.format(format_args!("layers.{i}.bias")),
                shape: &[l.biases.len()],
                values: &l.biases,
            });
        }
    }

    fn visit_values_mut(&mut self, f: &mut dyn FnMut(ValuesMut<'_, T>)) {
        let mut name = NameBuf::new();
        for (i, l) in self.layers.iter_mut().enumerate() {
            let (rows, cols) = (l.weights.rows(), l.weights.cols());
            f(ValuesMut {
                name: name.format(format_args!("layers.{i}.weight")),
                shape: &[rows, cols],
                values: l.weights.as_mut_slice(),
            });
            let n = l.biases.len();
            f(ValuesMut {
                name: name.format(format_args!("layers.{i}.bias")),
                shape: &[n],
                values: &mut l.biases,
            });
        }
    }

    fn visit_params_mut(
        &mut self,
        grads: &Gradients<T>,
        f: &mut dyn FnMut(ParamMut<'_, T>),
    ) -> Result<(), GradientShapeError> {
        if !grads.is_shaped_like(self) {
            return Err(GradientShapeError);
        }
        let mut name = NameBuf::new();
        for (i, (l, (gw, gb))) in self
            .layers
            .iter_mut()
            .zip(grads.weights.iter().zip(&grads.biases))
            .enumerate()
        {
            let (rows, cols) = (l.weights.rows(), l.weights.cols());
            f(ParamMut {
                name: name.format(format_args!("layers.{i}.weight")),
                shape: &[rows, cols],
                values: l.weights.as_mut_slice(),
                grad: gw.as_slice(),
            });
            let n = l.biases.len();
            f(ParamMut {
                name: name.format(format_args!("layers.{i}.bias")),
                shape: &[n],
                values: &mut l.biases,
                grad: gb,
            });
        }
        Ok(())
    }
}
