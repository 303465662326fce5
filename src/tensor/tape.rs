//! The tape: tensor nodes in creation order (a topological order), their values beside them.

use std::cell::{Ref, RefCell, RefMut};

use smallvec::SmallVec;

use super::op::{Op, Pass};
use super::pool::Pool;
use super::shape::Shape;
use super::tensor::Tensor;
use super::var::Var;
use super::TensorError;
use crate::Float;

/// The index of a node on its [`Tape`]: small and `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TensorId(pub(crate) u32);

impl TensorId {
    /// The node's position on the tape.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One node: its op, where its arguments sit in the tape's argument list, whether a
/// gradient flows into it (it is an input or depends on one), and whether its value's buffer
/// came from the tape's pool (and goes back there when the node is removed).
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) op: Op,
    pub(crate) args: (u32, u32),
    pub(crate) requires_grad: bool,
    pub(crate) pooled: bool,
}

#[derive(Debug)]
pub(crate) struct Inner<T> {
    pub(crate) nodes: Vec<Node>,
    pub(crate) values: Vec<Tensor<T>>,
    /// Every node's arguments, one after another (a concat has any number).
    pub(crate) args: Vec<TensorId>,
}

impl<T> Inner<T> {
    pub(crate) fn args_of(&self, i: usize) -> &[TensorId] {
        let (start, len) = self.nodes[i].args;
        &self.args[start as usize..(start + len) as usize]
    }
}

/// The tensor graph: nodes in the order they were made, each value computed as its node is
/// added (the feed-forward), and [`Tape::backward`] for the gradients, in one reverse loop.
///
/// Build it with [`Tape::var`] (inputs: parameters, and anything to differentiate by),
/// [`Tape::constant_var`] (data, targets) and the methods and operators of the returned
/// [`Var`] handles; or op by op with [`Tape::push`], which reports bad shapes as errors.
/// Interior mutability lets the handles be `Copy`.
///
/// Values and gradients are written into buffers the tape keeps: [`Tape::clear`] (or
/// [`Tape::truncate`]) and dropping a [`Grads`](super::Grads) give them back, so a training
/// loop that clears the tape and builds the same graph each step allocates nothing once the
/// first step has sized them (beyond what the matrix products' GEMM does per call).
///
/// ```
/// use backprop::tensor::{Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let x = tape.var(Tensor::from_vec([3], vec![1.0, 2.0, 3.0]).unwrap());
/// // y = Σ x², dy/dx = 2x
/// let y = (x * x).sum_all();
/// assert_eq!(y.item(), 14.0);
/// let g = y.backward();
/// assert_eq!(g.wrt(x).as_slice(), [2.0, 4.0, 6.0]);
/// ```
#[derive(Debug)]
pub struct Tape<T: Float = f64> {
    pub(crate) inner: RefCell<Inner<T>>,
    /// Spare buffers, borrowed only inside the tape's own methods.
    pub(crate) pool: RefCell<Pool<T>>,
}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Tape<T> {
    /// An empty tape.
    pub fn new() -> Self {
        Tape {
            inner: RefCell::new(Inner {
                nodes: Vec::new(),
                values: Vec::new(),
                args: Vec::new(),
            }),
            pool: RefCell::new(Pool::default()),
        }
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.inner.borrow().nodes.len()
    }

    /// Whether the tape has no nodes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every node, keeping the allocated capacity and the values' buffers for the
    /// next graph (a training loop rebuilds its graph each step). It takes `&mut self`, so no
    /// handle to an old node, and no [`Grads`](super::Grads), can outlive it.
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Removes the nodes from position `len` on, keeping the first `len` and their values:
    /// put the parameters on the tape first, and each step truncates back to them, so they
    /// are neither copied nor moved. The removed values' buffers are kept for reuse, as by
    /// [`Tape::clear`].
    ///
    /// ```
    /// use backprop::tensor::{Tape, Tensor};
    /// let mut tape = Tape::<f64>::new();
    /// let w = tape.input(Tensor::from_vec([2], vec![1.0, -1.0]).unwrap());
    /// let params = tape.len();
    /// for _ in 0..3 {
    ///     tape.truncate(params);
    ///     // J = Σ w², dJ/dw = 2w: gradient descent with η = 0.25 halves w every step
    ///     let wv = tape.handle(w);
    ///     let g = (wv * wv).sum_all().backward();
    ///     let mut value = tape.value_mut(w);
    ///     for (v, d) in value.as_mut_slice().iter_mut().zip(g.wrt(wv).as_slice()) {
    ///         *v -= 0.25 * d;
    ///     }
    /// }
    /// assert_eq!(tape.value(w).as_slice(), [0.125, -0.125]);
    /// ```
    ///
    /// # Panics
    /// If `len` is past the end of the tape.
    pub fn truncate(&mut self, len: usize) {
        let (inner, pool) = (self.inner.get_mut(), self.pool.get_mut());
        assert!(
            len <= inner.nodes.len(),
            "truncate: {len} is past the tape's end"
        );
        let start = inner
            .nodes
            .get(len)
            .map_or(inner.args.len(), |n| n.args.0 as usize);
        for (node, value) in inner.nodes.drain(len..).zip(inner.values.drain(len..)) {
            if node.pooled {
                pool.give(value);
            }
        }
        inner.args.truncate(start);
    }

    /// Adds an input (a tensor to differentiate with respect to) and returns its handle.
    ///
    /// # Panics
    /// If the tape already holds 2^32 - 1 nodes.
    pub fn var(&self, value: Tensor<T>) -> Var<'_, T> {
        Var::new(self, self.input(value))
    }

    /// Adds a constant (data, targets: no gradient flows into it) and returns its handle.
    ///
    /// # Panics
    /// If the tape already holds 2^32 - 1 nodes.
    pub fn constant_var(&self, value: Tensor<T>) -> Var<'_, T> {
        Var::new(self, self.constant(value))
    }

    /// Adds an input node.
    ///
    /// # Panics
    /// If the tape already holds 2^32 - 1 nodes.
    pub fn input(&self, value: Tensor<T>) -> TensorId {
        self.leaf(Op::Input, value)
    }

    /// Adds a constant node.
    ///
    /// # Panics
    /// If the tape already holds 2^32 - 1 nodes.
    pub fn constant(&self, value: Tensor<T>) -> TensorId {
        self.leaf(Op::Const, value)
    }

    /// Adds an input holding a copy of `data` (row-major, of shape `dims`), in a buffer the
    /// tape reuses: a batch put on a cleared tape every step costs no allocation. An error
    /// if the length does not fit the shape.
    ///
    /// ```
    /// use backprop::tensor::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var_from_slice([2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    /// assert_eq!(x.value().get(&[1, 0]), 3.0);
    /// assert!(tape.var_from_slice([3], &[1.0]).is_err());
    /// ```
    ///
    /// # Panics
    /// If the tape already holds 2^32 - 1 nodes.
    pub fn var_from_slice(
        &self,
        dims: impl Into<Shape>,
        data: &[T],
    ) -> Result<Var<'_, T>, TensorError> {
        let id = self.leaf_from_slice(Op::Input, dims.into(), data)?;
        Ok(Var::new(self, id))
    }

    /// Adds a constant holding a copy of `data` (see [`Tape::var_from_slice`]).
    ///
    /// # Panics
    /// If the tape already holds 2^32 - 1 nodes.
    pub fn constant_from_slice(
        &self,
        dims: impl Into<Shape>,
        data: &[T],
    ) -> Result<Var<'_, T>, TensorError> {
        let id = self.leaf_from_slice(Op::Const, dims.into(), data)?;
        Ok(Var::new(self, id))
    }

    /// A handle for node `id`, to continue building with its methods.
    pub fn handle(&self, id: TensorId) -> Var<'_, T> {
        Var::new(self, id)
    }

    fn leaf_from_slice(&self, op: Op, shape: Shape, data: &[T]) -> Result<TensorId, TensorError> {
        if shape.checked_numel() != Some(data.len()) {
            return Err(TensorError::DataLength {
                shape,
                len: data.len(),
            });
        }
        let mut value = self.pool.borrow_mut().take(&shape);
        value.as_mut_slice().copy_from_slice(data);
        Ok(self.leaf_node(op, value, true))
    }

    fn leaf(&self, op: Op, value: Tensor<T>) -> TensorId {
        // The caller's buffer is dropped, not pooled, when the node goes: a caller that puts
        // a fresh tensor on every step would otherwise grow the pool without bound.
        self.leaf_node(op, value, false)
    }

    fn leaf_node(&self, op: Op, value: Tensor<T>, pooled: bool) -> TensorId {
        let mut inner = self.inner.borrow_mut();
        let id = next_id(inner.nodes.len()).expect("tape is full (2^32 - 1 nodes)");
        let requires_grad = op == Op::Input;
        let start = inner.args.len() as u32;
        inner.nodes.push(Node {
            op,
            args: (start, 0),
            requires_grad,
            pooled,
        });
        inner.values.push(value);
        id
    }

    /// Adds the node `op(args)` and computes its value; checks the number of arguments, that
    /// they are on the tape, and their shapes ([`Op::out_shape`]).
    ///
    /// ```
    /// use backprop::tensor::{Op, Tape, Tensor, TensorError};
    /// let tape = Tape::<f64>::new();
    /// let a = tape.input(Tensor::zeros([2, 3]));
    /// let b = tape.input(Tensor::zeros([4]));
    /// let err = tape.push(Op::Add, &[a, b]).unwrap_err();
    /// assert_eq!(err.to_string(), "'+': shapes [2, 3] and [4] do not broadcast");
    /// assert!(matches!(tape.push(Op::Add, &[a]), Err(TensorError::Arity { .. })));
    /// ```
    pub fn push(&self, op: Op, args: &[TensorId]) -> Result<TensorId, TensorError> {
        let len = self.len();
        let arity_ok = match op.arity() {
            Some(n) => n > 0 && args.len() == n,
            None => !args.is_empty(),
        };
        if !arity_ok {
            return Err(TensorError::Arity {
                op: op.name(),
                expected: op.arity().unwrap_or(1),
                got: args.len(),
            });
        }
        if let Some(bad) = args.iter().find(|a| a.index() >= len) {
            return Err(TensorError::NodeOutOfRange {
                index: bad.index(),
                len,
            });
        }
        let id = next_id(len).ok_or(TensorError::TooManyNodes)?;
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let xs: SmallVec<[&Tensor<T>; 4]> = args.iter().map(|a| &inner.values[a.index()]).collect();
        let shapes: SmallVec<[&Shape; 4]> = xs.iter().map(|x| x.shape()).collect();
        let shape = op.out_shape(&shapes)?;
        shape.checked_numel().ok_or(TensorError::TooLarge)?;
        let mut pool = self.pool.borrow_mut();
        let value = op.rule(&xs, Pass::Value { shape: &shape }, &mut pool);
        drop((shapes, xs)); // a SmallVec's borrow lasts until it is dropped
        debug_assert_eq!(value.shape(), &shape, "{op:?}");
        let requires_grad = args.iter().any(|a| inner.nodes[a.index()].requires_grad);
        let start = u32::try_from(inner.args.len()).map_err(|_| TensorError::TooManyNodes)?;
        inner.args.extend_from_slice(args);
        inner.nodes.push(Node {
            op,
            args: (start, args.len() as u32),
            requires_grad,
            pooled: true,
        });
        inner.values.push(value);
        Ok(id)
    }

    /// The value of node `id`, borrowed: drop it before adding nodes.
    ///
    /// # Panics
    /// If `id` is not on this tape.
    pub fn value(&self, id: TensorId) -> Ref<'_, Tensor<T>> {
        Ref::map(self.inner.borrow(), |inner| &inner.values[id.index()])
    }

    /// The value of leaf `id` (an input or a constant), to change in place: an optimizer's
    /// step on a parameter kept on the tape (see [`Tape::truncate`]). Nodes computed from it
    /// keep their old values; truncate the tape and build them again.
    ///
    /// # Panics
    /// If `id` is not on this tape or is not a leaf, or a value is borrowed.
    pub fn value_mut(&self, id: TensorId) -> RefMut<'_, Tensor<T>> {
        RefMut::map(self.inner.borrow_mut(), |inner| {
            let op = &inner.nodes[id.index()].op;
            assert!(
                matches!(op, Op::Input | Op::Const),
                "value_mut: tensor {} is not a leaf but '{}'",
                id.index(),
                op.name()
            );
            &mut inner.values[id.index()]
        })
    }

    /// Node `id`'s op.
    ///
    /// # Panics
    /// If `id` is not on this tape.
    pub fn op(&self, id: TensorId) -> Op {
        self.inner.borrow().nodes[id.index()].op.clone()
    }

    /// Node `id`'s arguments.
    ///
    /// # Panics
    /// If `id` is not on this tape.
    pub fn args(&self, id: TensorId) -> Vec<TensorId> {
        self.inner.borrow().args_of(id.index()).to_vec()
    }
}

/// The id of the node at position `len`, if it fits in a u32.
#[inline]
fn next_id(len: usize) -> Option<TensorId> {
    u32::try_from(len)
        .ok()
        .filter(|&i| i < u32::MAX)
        .map(TensorId)
}
