//! The seam between a model and everything that trains or stores it.
//!
//! Optimizers, checkpoints, model files and the training loop see a model only as its
//! **named parameters**: for each, a name (`layers.0.weight`, or `0.weight`,
//! `1.weight_ih_l0` as PyTorch's `state_dict` names an `nn.Sequential`), a shape, its
//! values and, while training, its gradient. Nothing about layers crosses the seam, so one
//! optimizer serves a fully connected [`Network`](crate::network::Network), a CNN or an
//! LSTM alike (dfdx's visitor over named parameters). The cost is not part of a model
//! either: it only makes the gradients.
//!
//! ## Why a visitor
//!
//! [`Model`] hands out its parameters one at a time to a closure, in a fixed order, rather
//! than returning a `Vec` of views:
//!
//! - a model keeps its parameters wherever suits it (a `Matrix` and a `Vec` per layer, one
//!   flat buffer) and its gradients in a store of its own ([`Model::Grads`]); the visit
//!   borrows both for the length of one call, which a `Vec<(&mut [T], &[T])>` could only
//!   do by allocating;
//! - an optimizer step must not allocate: a visit allocates nothing, and a name can be
//!   formatted on the stack ([`NameBuf`]) rather than stored in the model;
//! - the closure is `&mut dyn FnMut`, so `dyn Model<T, Grads = G>` works too.
//!
//! The order is part of the contract: every visit of one model yields the same names, in
//! the same order, with the same shapes (until the model itself is rebuilt). An
//! optimizer checks the names at every step, so a model whose parameters changed is
//! refused rather than updated with another parameter's state.
//!
//! ```
//! use backprop::model::Model;
//! use backprop::network::{Activation, Cost, Gradients, Init, Network};
//!
//! let mut net = Network::<f64>::new(&[2, 3, 1], &[Activation::Tanh, Activation::Identity],
//!                                   Cost::Quadratic, Init::Scaled, 1).unwrap();
//! let names: Vec<String> = net.param_infos().into_iter().map(|p| p.name).collect();
//! assert_eq!(names, ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]);
//!
//! // Plain gradient descent on any model, through the seam: w <- w - eta dJ/dw.
//! let mut grads = Gradients::zeros_like(&net);
//! grads.biases[1][0] = 2.0;
//! let before = net.layers[1].biases[0];
//! net.visit_params_mut(&grads, &mut |p| {
//!     for (w, g) in p.values.iter_mut().zip(p.grad) {
//!         *w -= 0.25 * g;
//!     }
//! }).unwrap();
//! assert_eq!(net.layers[1].biases[0], before - 0.5);
//! ```

use crate::Float;
use std::fmt;

/// A parameter as read: its name, shape (row-major) and values.
#[derive(Clone, Copy, Debug)]
pub struct Param<'a, T> {
    /// The name, unique within the model (`layers.0.weight`).
    pub name: &'a str,
    /// The shape, PyTorch's layout (`[out, in]` for a linear layer's weight).
    pub shape: &'a [usize],
    /// The values, row-major; as many as the product of `shape`.
    pub values: &'a [T],
}

/// A parameter as an optimizer sees it: name, shape, values to update, and dJ/dvalues.
#[derive(Debug)]
pub struct ParamMut<'a, T> {
    /// The name, unique within the model.
    pub name: &'a str,
    /// The shape.
    pub shape: &'a [usize],
    /// The values, row-major.
    pub values: &'a mut [T],
    /// The gradient of the cost with respect to `values`, of the same length.
    pub grad: &'a [T],
}

/// A parameter's values to overwrite (when a model file is loaded into a model).
#[derive(Debug)]
pub struct ValuesMut<'a, T> {
    /// The name.
    pub name: &'a str,
    /// The shape.
    pub shape: &'a [usize],
    /// The values, row-major.
    pub values: &'a mut [T],
}

/// A parameter's name and shape, owned: what an optimizer is built from and a file
/// header lists.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ParamInfo {
    /// The name.
    pub name: String,
    /// The shape.
    pub shape: Vec<usize>,
}

impl ParamInfo {
    /// The number of values (the product of the shape; 1 for a scalar, shape `[]`), or
    /// `None` if that overflows `usize`.
    ///
    /// ```
    /// use backprop::model::ParamInfo;
    /// let p = ParamInfo { name: "0.weight".into(), shape: vec![6, 1, 5, 5] };
    /// assert_eq!(p.len(), Some(150));
    /// assert_eq!(ParamInfo { name: "huge".into(), shape: vec![usize::MAX, 2] }.len(), None);
    /// ```
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }

    /// Whether this parameter counts as a bias for weight decay (see [`is_bias`]).
    pub fn is_bias(&self) -> bool {
        is_bias(&self.name, &self.shape)
    }
}

/// The rule that decides which parameters weight decay spares when it should spare the
/// biases: a parameter is a bias if its name ends in `bias` (`layers.0.bias`, `2.bias`)
/// or it has one dimension (an LSTM's `bias_ih_l0`, a normalisation layer's scale). The
/// weights of linear, convolutional and recurrent layers have two or more.
///
/// ```
/// use backprop::model::is_bias;
/// assert!(is_bias("layers.0.bias", &[30]));
/// assert!(is_bias("1.bias_ih_l0", &[80]));
/// assert!(!is_bias("layers.0.weight", &[30, 784]));
/// assert!(!is_bias("0.weight", &[6, 1, 5, 5]));
/// ```
pub fn is_bias(name: &str, shape: &[usize]) -> bool {
    name.ends_with("bias") || shape.len() == 1
}

/// Gradients that are not shaped like the model's parameters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the gradients are not shaped like the model's parameters")]
pub struct GradientShapeError;

/// A model, as optimizers, files and the training loop see it: its named parameters.
///
/// Implementations must visit the same names, in the same order, with the same shapes,
/// on every call of either method, and give each [`ParamMut::grad`] the length of its
/// [`ParamMut::values`].
pub trait Model<T: Float> {
    /// Where the model keeps dJ/dparameters: one gradient per parameter, shaped alike
    /// (for a [`Network`](crate::network::Network), [`Gradients`](crate::network::Gradients)).
    type Grads;

    /// Calls `f` with every parameter, in the model's fixed order.
    fn visit_params(&self, f: &mut dyn FnMut(Param<'_, T>));

    /// Calls `f` with every parameter and its gradient from `grads`, in the same order as
    /// [`Model::visit_params`]. Allocates nothing.
    ///
    /// # Errors
    /// [`GradientShapeError`] if `grads` is not shaped like the model; `f` is not called
    /// then.
    fn visit_params_mut(
        &mut self,
        grads: &Self::Grads,
        f: &mut dyn FnMut(ParamMut<'_, T>),
    ) -> Result<(), GradientShapeError>;

    /// Calls `f` with every parameter's values to overwrite, in the same order as
    /// [`Model::visit_params`] (for loading a model file).
    fn visit_values_mut(&mut self, f: &mut dyn FnMut(ValuesMut<'_, T>));

    /// The names and shapes of the parameters, in order (allocates; for building an
    /// optimizer or a file header).
    fn param_infos(&self) -> Vec<ParamInfo> {
        let mut out = Vec::new();
        self.visit_params(&mut |p| {
            out.push(ParamInfo {
                name: p.name.to_string(),
                shape: p.shape.to_vec(),
            })
        });
        out
    }
}

/// A parameter name formatted on the stack, for models that make their names as they
/// visit (`layers.{i}.weight`) instead of storing them: a visit then allocates nothing.
///
/// ```
/// use backprop::model::NameBuf;
/// let mut buf = NameBuf::new();
/// assert_eq!(buf.format(format_args!("layers.{}.weight", 12)), "layers.12.weight");
/// assert_eq!(buf.format(format_args!("layers.{}.bias", 3)), "layers.3.bias");
/// ```
#[derive(Clone)]
pub struct NameBuf {
    bytes: [u8; NameBuf::CAPACITY],
    len: usize,
}

impl NameBuf {
    /// The longest name it holds, in bytes: room for any `usize` index and a prefix and
    /// suffix of 40 bytes between them.
    pub const CAPACITY: usize = 64;

    /// An empty buffer.
    pub fn new() -> Self {
        NameBuf {
            bytes: [0; Self::CAPACITY],
            len: 0,
        }
    }

    /// Formats `args` into the buffer, replacing what it held, and returns it.
    ///
    /// # Panics
    /// If the name is longer than [`NameBuf::CAPACITY`] bytes: a model whose names can be
    /// longer stores them instead.
    pub fn format(&mut self, args: fmt::Arguments<'_>) -> &str {
        self.len = 0;
        fmt::Write::write_fmt(self, args).expect("a parameter name longer than NameBuf holds");
        std::str::from_utf8(&self.bytes[..self.len]).expect("written from &str pieces")
    }
}

impl Default for NameBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for NameBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dest = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        dest.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A model of layers with its input shape, cost and vocabulary is, to optimizers and
/// files, its layers' named parameters (PyTorch's `state_dict` names); its gradients live
/// in the layers, so its gradient store is `()` as a [`Sequential`](crate::nn::Sequential)'s.
///
/// ```
/// use backprop::model::Model;
/// use backprop::network::Cost;
/// use backprop::nn::ArchModel;
/// let arch = "Conv2d(1, 2, 3), ReLU(), Flatten(), Linear(72, 3), Softmax(dim=-1)".parse().unwrap();
/// let model = ArchModel::<f32>::new(&arch, &[1, 8, 8], Cost::LogLikelihood, None, 1).unwrap();
/// let names: Vec<String> = model.param_infos().into_iter().map(|p| p.name).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "3.weight", "3.bias"]);
/// ```
impl<T: Float> Model<T> for crate::nn::ArchModel<T> {
    type Grads = ();

    fn visit_params(&self, f: &mut dyn FnMut(Param<'_, T>)) {
        self.net.visit_params(f)
    }

    fn visit_params_mut(
        &mut self,
        grads: &(),
        f: &mut dyn FnMut(ParamMut<'_, T>),
    ) -> Result<(), GradientShapeError> {
        self.net.visit_params_mut(grads, f)
    }

    fn visit_values_mut(&mut self, f: &mut dyn FnMut(ValuesMut<'_, T>)) {
        self.net.visit_values_mut(f)
    }
}
