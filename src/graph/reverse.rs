//! Reverse mode (backpropagation): one pass from the output back to the leaves.

use std::ops::Index;

use super::real::Scalar;
use super::tape::{NodeId, Tape};
use super::var::Var;

/// d(output)/d(node) for every node of a tape, and the work it took.
///
/// ```
/// use backprop::graph::Tape;
/// let tape = Tape::new();
/// let a = tape.var(3.0);
/// let b = a + a; // db/da = 1 + 1: a is used twice, its two contributions add up
/// let g = b.backward();
/// assert_eq!(g.wrt(a), 2.0);
/// assert_eq!(g[a.id()], 2.0);
/// assert_eq!(g.work(), 2);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Adjoints<T = f64> {
    adjoint: Vec<T>,
    /// Whether each node lies on a path to the output: only those edges are work.
    reached: Vec<bool>,
    work: u64,
}

impl<T: Scalar> Default for Adjoints<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Scalar> Adjoints<T> {
    /// Empty buffers, to be filled by [`Tape::backward_into`].
    pub fn new() -> Self {
        Adjoints {
            adjoint: Vec::new(),
            reached: Vec::new(),
            work: 0,
        }
    }

    /// d(output)/d(v).
    pub fn wrt(&self, v: Var<'_, T>) -> T {
        self.adjoint[v.id().index()]
    }
    /// The number of local-derivative multiply-adds the pass performed: one per edge on a
    /// path from an input to the output (edges into constants are not differentiated).
    pub fn work(&self) -> u64 {
        self.work
    }
    /// Every node's adjoint, in tape order.
    pub fn as_slice(&self) -> &[T] {
        &self.adjoint
    }
}

impl<T> Index<NodeId> for Adjoints<T> {
    type Output = T;
    fn index(&self, id: NodeId) -> &T {
        &self.adjoint[id.index()]
    }
}

impl<T: Scalar> Tape<T> {
    /// Reverse mode: d(output)/d(node) for every node, in one reverse loop over the tape.
    ///
    /// The output's adjoint is seeded with 1; then each node, from the last to the first,
    /// adds `local derivative × its own adjoint` into each argument's adjoint with `+=`. A
    /// node's adjoint is complete before it is used, because every node that uses it comes
    /// later on the tape. Each derivative is computed once: the post's dynamic programming.
    /// Nodes after `output`, nodes it does not depend on, and constants (nodes that depend on
    /// no input: their derivative is never wanted) get 0. Calling it again gives the same
    /// answer (nothing on the tape changes).
    ///
    /// ```
    /// use backprop::graph::{Op, Tape};
    /// let tape = Tape::new();
    /// let (a, b) = (tape.input(2.0), tape.input(3.0));
    /// let c = tape.push(Op::Add, &[a, b]).unwrap();
    /// let d = tape.push(Op::Mul, &[a, b]).unwrap();
    /// let half = tape.constant(0.5);
    /// let t = tape.push(Op::Mul, &[half, c]).unwrap();
    /// let o = tape.push(Op::Mul, &[t, d]).unwrap();
    /// let g = tape.backward(o);
    /// assert_eq!([g[a], g[b], g[c], g[d]], [10.5, 8.0, 3.0, 2.5]);
    /// // 7 edges lead from an input to o; the edge into the constant 0.5 is not one of them.
    /// assert_eq!((g.work(), g[half]), (7, 0.0));
    /// ```
    ///
    /// # Panics
    /// If `output` is not on this tape.
    pub fn backward(&self, output: NodeId) -> Adjoints<T> {
        let mut adjoints = Adjoints::new();
        self.backward_into(output, &mut adjoints);
        adjoints
    }

    /// [`Tape::backward`] into existing buffers, so that a loop that rebuilds a graph of the
    /// same size (after [`Tape::clear`]) allocates nothing.
    ///
    /// ```
    /// use backprop::graph::{Adjoints, Tape};
    /// let mut tape = Tape::new();
    /// let mut g = Adjoints::new();
    /// for x0 in [1.0, 2.0] {
    ///     tape.clear();
    ///     let x = tape.var(x0);
    ///     let y = x * x;
    ///     tape.backward_into(y.id(), &mut g);
    ///     assert_eq!(g.wrt(x), 2.0 * x0);
    /// }
    /// ```
    ///
    /// # Panics
    /// If `output` is not on this tape.
    pub fn backward_into(&self, output: NodeId, adjoints: &mut Adjoints<T>) {
        let inner = self.inner.borrow();
        let (nodes, values) = (&inner.nodes, &inner.values);
        let Adjoints {
            adjoint,
            reached,
            work,
        } = adjoints;
        adjoint.clear();
        adjoint.resize(nodes.len(), T::zero());
        reached.clear();
        reached.resize(output.index() + 1, false);
        *work = 0;
        adjoint[output.index()] = T::one();
        reached[output.index()] = true;
        for i in (0..=output.index()).rev() {
            let node = nodes[i];
            let arity = node.op().arity();
            if !reached[i] || arity == 0 {
                continue;
            }
            let [x, y] = node.arg_indices();
            let (_, dx, dy) = node.op().rule_with(values[x], values[y], Some(values[i]));
            let g = adjoint[i];
            // Constants (nodes that depend on no input) get no derivative: d/d(2) of x^2 is
            // never wanted, and forward mode never computes it either.
            if nodes[x].depends_on_input() {
                adjoint[x] += dx * g;
                reached[x] = true;
                *work += 1;
            }
            if arity == 2 && nodes[y].depends_on_input() {
                adjoint[y] += dy * g;
                reached[y] = true;
                *work += 1;
            }
        }
    }
}
