//! The sum over paths: every path from a node to the output, with the product of the local
//! derivatives along it. Their sum is the derivative; their number grows exponentially.

use super::real::Scalar;
use super::tape::{NodeId, Tape};
use super::GraphError;

/// One path `from -> ... -> to` through the graph.
///
/// ```
/// use backprop::graph::Tape;
/// let tape = Tape::new();
/// let a = tape.var(3.0);
/// let b = a * a; // two edges a -> b, two paths: db/da = a + a = 6
/// let paths = tape.paths(a.id(), b.id(), 10).unwrap();
/// assert_eq!(paths.len(), 2);
/// assert_eq!(paths.iter().map(|p| p.product).sum::<f64>(), 6.0);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Path<T = f64> {
    /// The nodes, from the start to the output.
    pub nodes: Vec<NodeId>,
    /// The local derivative of each edge: `partials[k]` = d `nodes[k+1]` / d `nodes[k]`.
    pub partials: Vec<T>,
    /// The product of the partials.
    pub product: T,
}

impl<T: Scalar> Tape<T> {
    /// How many paths lead from `from` to `to` (edges counted with multiplicity), by dynamic
    /// programming over the tape; saturates at `u64::MAX`.
    ///
    /// ```
    /// use backprop::graph::Tape;
    /// let tape = Tape::new();
    /// let mut x = tape.var(1.0);
    /// let a = x;
    /// for _ in 0..70 {
    ///     x = x + x; // doubles the number of paths
    /// }
    /// assert_eq!(tape.count_paths(a.id(), x.id()), u64::MAX);
    /// ```
    pub fn count_paths(&self, from: NodeId, to: NodeId) -> u64 {
        self.path_counts(from, to).last().copied().unwrap_or(0)
    }

    /// counts[i - from] = number of paths from `from` to node i, for i in from..=to.
    fn path_counts(&self, from: NodeId, to: NodeId) -> Vec<u64> {
        let inner = self.inner.borrow();
        if to < from || to.index() >= inner.nodes.len() {
            return Vec::new();
        }
        let start = from.index();
        let mut counts = vec![0u64; to.index() - start + 1];
        counts[0] = 1;
        for i in start + 1..=to.index() {
            counts[i - start] = inner.nodes[i]
                .args()
                .iter()
                .filter(|a| a.index() >= start)
                .fold(0u64, |s, a| s.saturating_add(counts[a.index() - start]));
        }
        counts
    }

    /// Every path from `from` to `to`, with the product of local derivatives along it.
    ///
    /// Refuses with [`GraphError::TooManyPaths`] when there are more than `limit` (counted
    /// first, so nothing is enumerated in vain). Enumerates with an explicit stack, so deep
    /// graphs are fine.
    ///
    /// ```
    /// use backprop::graph::Tape;
    /// let tape = Tape::new();
    /// let (a, b) = (tape.var(2.0), tape.var(3.0));
    /// let (c, d) = (a + b, a * b);
    /// let o = c * d * 0.5;
    /// // do/da: a -> c -> o (1 · 3) plus a -> d -> o (3 · 2.5) = 10.5
    /// let paths = tape.paths(a.id(), o.id(), 100).unwrap();
    /// let products: Vec<f64> = paths.iter().map(|p| p.product).collect();
    /// assert_eq!(products, vec![3.0, 7.5]);
    /// ```
    pub fn paths(&self, from: NodeId, to: NodeId, limit: u64) -> Result<Vec<Path<T>>, GraphError> {
        let counts = self.path_counts(from, to);
        let count = counts.last().copied().unwrap_or(0);
        if count > limit {
            return Err(GraphError::TooManyPaths { count, limit });
        }
        let mut found = Vec::with_capacity(count as usize);
        if count == 0 {
            return Ok(found);
        }
        let inner = self.inner.borrow();
        let (nodes, values) = (&inner.nodes, &inner.values);
        let start = from.index();
        // Depth-first from the output back to `from`: (node, next argument to try), and the
        // partial of the edge that led to each stacked node.
        let mut stack: Vec<(usize, usize)> = vec![(to.index(), 0)];
        let mut edge_partials: Vec<T> = Vec::new();
        while let Some(top) = stack.last_mut() {
            let (i, k) = *top;
            if i == start {
                let nodes_path = stack.iter().rev().map(|&(n, _)| NodeId(n as u32)).collect();
                let partials: Vec<T> = edge_partials.iter().rev().copied().collect();
                let product = partials.iter().fold(T::one(), |p, &d| p * d);
                found.push(Path {
                    nodes: nodes_path,
                    partials,
                    product,
                });
                stack.pop();
                edge_partials.pop();
                continue;
            }
            let node = nodes[i];
            if k >= node.op().arity() {
                stack.pop();
                edge_partials.pop();
                continue;
            }
            top.1 += 1;
            let arg = node.args()[k].index();
            if arg < start || counts[arg - start] == 0 {
                continue;
            }
            let [x, y] = node.arg_indices();
            let (_, dx, dy) = node.op().rule_with(values[x], values[y], Some(values[i]));
            edge_partials.push(if k == 0 { dx } else { dy });
            stack.push((arg, 0));
        }
        Ok(found)
    }
}
