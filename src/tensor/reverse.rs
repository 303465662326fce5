//! Reverse mode on the tensor tape: one loop from the output back to the inputs.

use std::fmt;
use std::ops::Index;

use smallvec::SmallVec;

use super::op::Pass;
use super::tape::{Tape, TensorId};
use super::tensor::Tensor;
use super::var::Var;
use crate::Float;

/// d(output)/d(node) for every node the output depends on through an input: one tensor per
/// node, shaped like the node's value.
///
/// The tensors live in buffers of the tape's: dropping the `Grads` gives them back for the
/// next backward pass, which is why it borrows the tape.
///
/// ```
/// use backprop::tensor::{Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let a = tape.var(Tensor::scalar(3.0));
/// let b = a + a; // db/da = 1 + 1: a is used twice, its two contributions add up
/// let g = b.backward();
/// assert_eq!(g.wrt(a).item(), 2.0);
/// assert_eq!(g[a.id()].item(), 2.0);
/// ```
pub struct Grads<'t, T: Float> {
    tape: &'t Tape<T>,
    grads: Vec<Option<Tensor<T>>>,
}

impl<T: Float> Grads<'_, T> {
    /// d(output)/d(node `id`), or `None` for a node no gradient reaches: a constant, a node
    /// computed from constants only, or a node after the output.
    pub fn get(&self, id: TensorId) -> Option<&Tensor<T>> {
        self.grads.get(id.index()).and_then(Option::as_ref)
    }

    /// d(output)/d(v).
    ///
    /// # Panics
    /// If no gradient reaches `v` (see [`Grads::get`]).
    pub fn wrt(&self, v: Var<'_, T>) -> &Tensor<T> {
        &self[v.id()]
    }
}

/// The buffers go back to the tape.
impl<T: Float> Drop for Grads<'_, T> {
    fn drop(&mut self) {
        // Never borrowed while a `Grads` is dropped, but a failed borrow only costs the reuse.
        if let Ok(mut pool) = self.tape.pool.try_borrow_mut() {
            for t in self.grads.drain(..).flatten() {
                pool.give(t);
            }
            pool.grad_slots = std::mem::take(&mut self.grads);
        }
    }
}

/// A copy in buffers of the same tape's (which get them back when it is dropped).
impl<T: Float> Clone for Grads<'_, T> {
    fn clone(&self) -> Self {
        let mut pool = self.tape.pool.borrow_mut();
        let grads = self.grads.iter();
        let grads = grads.map(|g| g.as_ref().map(|t| pool.copy(t))).collect();
        Grads {
            tape: self.tape,
            grads,
        }
    }
}

/// The gradients, not the tape.
impl<T: Float> fmt::Debug for Grads<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grads").field("grads", &self.grads).finish()
    }
}

/// The same gradients, from any tapes.
impl<T: Float> PartialEq for Grads<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.grads == other.grads
    }
}

impl<T: Float> Index<TensorId> for Grads<'_, T> {
    type Output = Tensor<T>;
    fn index(&self, id: TensorId) -> &Tensor<T> {
        self.get(id).unwrap_or_else(|| {
            panic!("no gradient for tensor {}: it is a constant, computed from constants only, or after the output", id.index())
        })
    }
}

impl<T: Float> Tape<T> {
    /// Reverse mode: d(Σ output)/d(node) for every node, in one reverse loop over the tape.
    ///
    /// The output's gradient is seeded with ones (so a scalar output gets d(output)/d(node));
    /// then each node, from the last to the first, hands each argument that needs a gradient
    /// its VJP ([`Op`](super::Op)'s rule), summed back over any broadcast axes, and added with
    /// `+=` to what that argument already has. A node's gradient is complete before it is
    /// used, because every node that uses it comes later on the tape; so a tensor used twice,
    /// or a weight used at every time step, gets the sum. Inputs the output does not depend
    /// on get zeros. Calling it again gives the same answer.
    ///
    /// # Panics
    /// If `output` is not on this tape.
    pub fn backward(&self, output: TensorId) -> Grads<'_, T> {
        let inner = self.inner.borrow();
        let mut pool = self.pool.borrow_mut();
        let pool = &mut *pool;
        let (nodes, values) = (&inner.nodes, &inner.values);
        let out = output.index();
        // The slots of the last `Grads` dropped, all `None`.
        let mut grads = std::mem::take(&mut pool.grad_slots);
        grads.resize_with(nodes.len(), || None);
        if nodes[out].requires_grad {
            grads[out] = Some(pool.full(values[out].shape(), T::one()));
        }
        let mut xs: SmallVec<[&Tensor<T>; 4]> = SmallVec::new(); // every node's arguments
        for i in (0..=out).rev() {
            let Some(g) = grads[i].take() else { continue };
            let args = inner.args_of(i);
            xs.clear();
            xs.extend(args.iter().map(|a| &values[a.index()]));
            for (k, a) in args.iter().map(|a| a.index()).enumerate() {
                if !nodes[a].requires_grad {
                    continue;
                }
                let pass = Pass::Vjp {
                    out: &values[i],
                    g: &g,
                    k,
                };
                let mut d = nodes[i].op.rule(&xs, pass, pool);
                if d.shape() != values[a].shape() {
                    // The one place broadcasting is undone.
                    let summed = d.sum_to(values[a].shape(), pool);
                    pool.give(std::mem::replace(&mut d, summed));
                }
                match &mut grads[a] {
                    Some(acc) => {
                        acc.add_assign(&d);
                        pool.give(d);
                    }
                    slot => *slot = Some(d),
                }
            }
            grads[i] = Some(g);
        }
        for (i, node) in nodes.iter().enumerate().take(out + 1) {
            if node.requires_grad && grads[i].is_none() {
                grads[i] = Some(pool.zeros(values[i].shape()));
            }
        }
        Grads { tape: self, grads }
    }
}
