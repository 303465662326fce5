//! The sum over paths: every path from a node to the output, with the product of the local
//! derivatives along it. Their sum is the derivative; their number grows exponentially.
//!
//! A path is a sequence of distinct nodes. Where a node uses the same argument twice (`x * x`)
//! the two parallel edges are merged into one step whose factor is the sum of both local
//! derivatives (d(x·x)/dx = x + x), and the step records that it merges 2 edges.

use super::real::Scalar;
use super::tape::{Node, NodeId, Tape};
use super::GraphError;

/// One path `from -> ... -> to` through the graph.
///
/// ```
/// use backprop::graph::Tape;
/// let tape = Tape::new();
/// let a = tape.var(3.0);
/// let b = a * a; // two parallel edges a -> b, merged into one step: db/da = a + a = 6
/// let paths = tape.paths(a.id(), b.id(), 10).unwrap();
/// assert_eq!(paths.len(), 1);
/// assert_eq!((paths[0].partials[0], paths[0].edges[0]), (6.0, 2));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Path<T = f64> {
    /// The nodes, from the start to the output.
    pub nodes: Vec<NodeId>,
    /// `partials[k]` = d `nodes[k+1]` / d `nodes[k]`: the edge's local derivative, or the sum
    /// of both when `nodes[k+1]` uses `nodes[k]` twice.
    pub partials: Vec<T>,
    /// `edges[k]`: how many parallel edges step k merges (1, or 2 as in `x * x`).
    pub edges: Vec<u8>,
    /// The product of the partials.
    pub product: T,
}

/// How many paths lead from one node to an output, and how many steps they have in all.
/// Both saturate at `u64::MAX`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathTotals {
    /// The number of paths.
    pub paths: u64,
    /// The number of steps (merged edges) over all of them.
    pub steps: u64,
}

/// The distinct arguments of a node: `(argument slot, argument index)`, the second slot
/// left out when it repeats the first.
#[inline]
fn distinct_args(node: &Node) -> impl Iterator<Item = (usize, usize)> {
    let [x, y] = node.arg_indices();
    let arity = node.op().arity();
    let second = arity == 2 && y != x;
    (arity > 0)
        .then_some((0, x))
        .into_iter()
        .chain(second.then_some((1, y)))
}

impl<T: Scalar> Tape<T> {
    /// How many paths lead from `from` to `to` (parallel edges merged), by dynamic
    /// programming over the tape; saturates at `u64::MAX`.
    ///
    /// ```
    /// use backprop::graph::{Real, Tape};
    /// let tape = Tape::new();
    /// let mut x = tape.var(1.0);
    /// let a = x;
    /// for _ in 0..70 {
    ///     x = x + x.sin(); // two distinct ways on: doubles the number of paths
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
            counts[i - start] = distinct_args(&inner.nodes[i])
                .filter(|&(_, a)| a >= start)
                .fold(0u64, |s, (_, a)| s.saturating_add(counts[a - start]));
        }
        counts
    }

    /// For every node up to `to`, how many paths lead from it to `to` and how many steps they
    /// have in all: one reverse pass for all nodes at once, so that the paths of a whole
    /// program can be counted (and refused) before any is listed.
    ///
    /// ```
    /// use backprop::graph::{PathTotals, Tape};
    /// let tape = Tape::new();
    /// let (a, b) = (tape.var(2.0), tape.var(3.0));
    /// let (c, d) = (a + b, a * b);
    /// let o = c * d;
    /// let totals = tape.path_totals(o.id());
    /// // a -> c -> o and a -> d -> o: 2 paths, 4 steps.
    /// assert_eq!(totals[a.id().index()], PathTotals { paths: 2, steps: 4 });
    /// assert_eq!(totals[o.id().index()], PathTotals { paths: 1, steps: 0 });
    /// ```
    ///
    /// # Panics
    /// If `to` is not on this tape.
    pub fn path_totals(&self, to: NodeId) -> Vec<PathTotals> {
        let inner = self.inner.borrow();
        let mut totals = vec![PathTotals::default(); to.index() + 1];
        totals[to.index()].paths = 1;
        for i in (0..=to.index()).rev() {
            let here = totals[i];
            if here.paths == 0 {
                continue;
            }
            for (_, a) in distinct_args(&inner.nodes[i]) {
                let t = &mut totals[a];
                t.paths = t.paths.saturating_add(here.paths);
                t.steps = t
                    .steps
                    .saturating_add(here.steps)
                    .saturating_add(here.paths);
            }
        }
        totals
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
    /// // do/da: a -> c -> (c d) -> o (1 · 6 · 0.5) plus a -> d -> (c d) -> o (3 · 5 · 0.5)
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
        // Depth-first from the output back to `from`: (node, next argument slot to try), and
        // the step (partial, merged edges) that led to each stacked node.
        let mut stack: Vec<(usize, usize)> = vec![(to.index(), 0)];
        let mut steps: Vec<(T, u8)> = Vec::new();
        while let Some(top) = stack.last_mut() {
            let (i, k) = *top;
            if i == start {
                let nodes_path = stack.iter().rev().map(|&(n, _)| NodeId(n as u32)).collect();
                let partials: Vec<T> = steps.iter().rev().map(|s| s.0).collect();
                let edges = steps.iter().rev().map(|s| s.1).collect();
                let product = partials.iter().fold(T::one(), |p, &d| p * d);
                found.push(Path {
                    nodes: nodes_path,
                    partials,
                    edges,
                    product,
                });
                stack.pop();
                steps.pop();
                continue;
            }
            let node = nodes[i];
            let Some((slot, arg)) = distinct_args(&node).find(|&(slot, _)| slot >= k) else {
                stack.pop();
                steps.pop();
                continue;
            };
            top.1 = slot + 1;
            if arg < start || counts[arg - start] == 0 {
                continue;
            }
            let [x, y] = node.arg_indices();
            let (_, dx, dy) = node.op().rule_with(values[x], values[y], Some(values[i]));
            steps.push(match slot {
                0 if node.op().arity() == 2 && x == y => (dx + dy, 2),
                0 => (dx, 1),
                _ => (dy, 1),
            });
            stack.push((arg, 0));
        }
        Ok(found)
    }
}
