//! Forward mode: tangents pushed from one chosen node towards the output.

use std::ops::Index;

use super::real::Scalar;
use super::tape::{NodeId, Tape};

/// d(node)/d(seed) for every node of a tape, and the work it took.
///
/// ```
/// use backprop::graph::Tape;
/// let tape = Tape::new();
/// let (a, b) = (tape.var(2.0), tape.var(3.0));
/// let o = (a + b) * (a * b) * 0.5;
/// let t = tape.forward_mode(a.id());
/// assert_eq!(t[o.id()], 10.5);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Tangents<T = f64> {
    tangent: Vec<T>,
    work: u64,
}

impl<T: Scalar> Tangents<T> {
    /// The number of local-derivative multiply-adds the pass performed: one per edge it
    /// propagated along (edges leaving nodes that depend on the seed).
    pub fn work(&self) -> u64 {
        self.work
    }
    /// Every node's tangent, in tape order.
    pub fn as_slice(&self) -> &[T] {
        &self.tangent
    }
}

impl<T> Index<NodeId> for Tangents<T> {
    type Output = T;
    fn index(&self, id: NodeId) -> &T {
        &self.tangent[id.index()]
    }
}

impl<T: Scalar> Tape<T> {
    /// Forward mode: d(node)/d(seed) for every node, in one forward loop from `seed`.
    ///
    /// The seed's tangent is 1; each later node that depends on the seed gets
    /// `Σ local derivative × argument's tangent` over its arguments that depend on it: the
    /// arithmetic of dual numbers, along the tape. A whole gradient takes one pass per input,
    /// and passes from different inputs recompute the same downstream derivatives (the
    /// post's point: see [`Tangents::work`]).
    ///
    /// ```
    /// use backprop::graph::Tape;
    /// let tape = Tape::new();
    /// let (a, b) = (tape.var(2.0), tape.var(3.0));
    /// let (c, d) = (a + b, a * b);
    /// let o = c * d;
    /// // From a: a->c, a->d, c->o, d->o. From c: c->o.
    /// assert_eq!(tape.forward_mode(a.id()).work(), 4);
    /// assert_eq!(tape.forward_mode(c.id()).work(), 1);
    /// // Reverse mode: o->c, o->d, c->a, c->b, d->a, d->b, each once.
    /// assert_eq!(o.backward().work(), 6);
    /// ```
    ///
    /// # Panics
    /// If `seed` is not on this tape.
    pub fn forward_mode(&self, seed: NodeId) -> Tangents<T> {
        let inner = self.inner.borrow();
        let (nodes, values) = (&inner.nodes, &inner.values);
        let mut tangent = vec![T::zero(); nodes.len()];
        let mut reached = vec![false; nodes.len()];
        tangent[seed.index()] = T::one();
        reached[seed.index()] = true;
        let mut work = 0;
        for i in seed.index() + 1..nodes.len() {
            let node = nodes[i];
            let arity = node.op().arity();
            if arity == 0 {
                continue;
            }
            let [x, y] = node.arg_indices();
            let from_x = reached[x];
            let from_y = arity == 2 && reached[y];
            if !from_x && !from_y {
                continue;
            }
            let (_, dx, dy) = node.op().rule_with(values[x], values[y], Some(values[i]));
            let mut t = T::zero();
            if from_x {
                t += dx * tangent[x];
                work += 1;
            }
            if from_y {
                t += dy * tangent[y];
                work += 1;
            }
            tangent[i] = t;
            reached[i] = true;
        }
        Tangents { tangent, work }
    }
}
