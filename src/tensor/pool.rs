//! The tape's spare buffers: values and gradients are taken from here and given back when the
//! tape is cleared, so a training loop that rebuilds the same graph every step stops
//! allocating once the first step has sized everything.

use std::collections::HashMap;

use super::kernels::Conv2dWorkspace;
use super::shape::Shape;
use super::tensor::Tensor;
use crate::Float;

/// Element buffers keyed by their length, and the kernels' scratch.
#[derive(Debug, Default)]
pub(crate) struct Pool<T> {
    free: HashMap<usize, Vec<Vec<T>>>,
    /// The unfolded input of the last convolution and the backward's scratch.
    pub(crate) conv: Conv2dWorkspace<T>,
    /// The window maxima's positions, for max-pooling.
    pub(crate) argmax: Vec<usize>,
    /// The gradient slots of the last [`Grads`](super::Grads) dropped, for the next
    /// backward pass.
    pub(crate) grad_slots: Vec<Option<Tensor<T>>>,
}

impl<T: Float> Pool<T> {
    /// A tensor of shape `shape` whose elements are stale: the caller writes every one.
    pub(crate) fn take(&mut self, shape: &Shape) -> Tensor<T> {
        let n = shape.numel();
        let data = match self.free.get_mut(&n).and_then(Vec::pop) {
            Some(data) => data,
            None => vec![T::zero(); n],
        };
        Tensor::from_parts(shape.clone(), data)
    }

    /// Gives a buffer back (one the pool handed out, or the tape's pool would grow).
    pub(crate) fn give(&mut self, t: Tensor<T>) {
        let data = t.into_vec();
        self.free.entry(data.len()).or_default().push(data);
    }

    /// A tensor of shape `shape` filled with `value`.
    pub(crate) fn full(&mut self, shape: &Shape, value: T) -> Tensor<T> {
        let mut t = self.take(shape);
        t.as_mut_slice().fill(value);
        t
    }

    /// A tensor of zeros.
    pub(crate) fn zeros(&mut self, shape: &Shape) -> Tensor<T> {
        self.full(shape, T::zero())
    }

    /// A rank-0 tensor.
    pub(crate) fn scalar(&mut self, value: T) -> Tensor<T> {
        self.full(&Shape::scalar(), value)
    }

    /// A copy of `x`.
    pub(crate) fn copy(&mut self, x: &Tensor<T>) -> Tensor<T> {
        let mut t = self.take(x.shape());
        t.as_mut_slice().copy_from_slice(x.as_slice());
        t
    }

    /// `f` applied to every element of `x`.
    pub(crate) fn map(&mut self, x: &Tensor<T>, f: impl Fn(T) -> T) -> Tensor<T> {
        let mut t = self.take(x.shape());
        for (y, &x) in t.as_mut_slice().iter_mut().zip(x.as_slice()) {
            *y = f(x);
        }
        t
    }
}
