//! The tape: the graph as a `Vec` of nodes in insertion order, which is a topological order.

use std::cell::RefCell;
use std::collections::HashMap;

use super::op::Op;
use super::real::Scalar;
use super::var::Var;
use super::GraphError;

/// The index of a node on its [`Tape`]: small and `Copy`.
///
/// ```
/// use backprop::graph::Tape;
/// let tape = Tape::new();
/// let a = tape.input(2.0);
/// assert_eq!(a.index(), 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub(crate) u32);

impl NodeId {
    /// The node's position on the tape.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One node: an op and up to two arguments. A one-argument op stores its argument twice and
/// a leaf stores 0s, so both slots are always valid indices. Its value is stored apart, in
/// the tape's value buffer: 12 bytes a node, plus 8 for the value.
///
/// A node also records whether it depends on an input: one that does not (a constant, or
/// `2 * 3`) has no derivative worth computing, so neither mode differentiates with respect
/// to it, and neither counts it as work.
///
/// ```
/// use backprop::graph::{Op, Tape};
/// let tape = Tape::new();
/// let (a, b) = (tape.input(2.0), tape.input(3.0));
/// let c = tape.push(Op::Add, &[a, b]).unwrap();
/// assert_eq!(tape.node(c).args(), &[a, b]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    op: Op,
    /// Whether some input is among the node's ancestors (or it is one).
    depends: bool,
    args: [NodeId; 2],
}

impl Node {
    /// The node's operation.
    #[inline]
    pub fn op(&self) -> Op {
        self.op
    }
    /// Both argument slots as indices, whatever the arity: the hot loops read them without
    /// branching, and ignore what the op does not use.
    #[inline]
    pub(crate) fn arg_indices(&self) -> [usize; 2] {
        [self.args[0].index(), self.args[1].index()]
    }

    /// Whether the node depends on an input (it is one, or is computed from one). A node that
    /// does not is a constant: its derivative is never computed.
    ///
    /// ```
    /// use backprop::graph::{Op, Tape};
    /// let tape = Tape::new();
    /// let (x, two) = (tape.input(3.0), tape.constant(2.0));
    /// let four = tape.push(Op::Add, &[two, two]).unwrap();
    /// let y = tape.push(Op::Mul, &[four, x]).unwrap();
    /// assert!(tape.node(x).depends_on_input() && tape.node(y).depends_on_input());
    /// assert!(!tape.node(two).depends_on_input() && !tape.node(four).depends_on_input());
    /// ```
    #[inline]
    pub fn depends_on_input(&self) -> bool {
        self.depends
    }

    /// The node's arguments (as many as the op's arity).
    #[inline]
    pub fn args(&self) -> &[NodeId] {
        &self.args[..self.op.arity()]
    }
}

#[derive(Debug)]
pub(crate) struct Inner<T> {
    pub(crate) nodes: Vec<Node>,
    pub(crate) values: Vec<T>,
    names: HashMap<u32, String>,
}

/// The computational graph: nodes in the order they were made, their values beside them.
///
/// Build it with [`Tape::var`] and ordinary arithmetic on the returned [`Var`] handles, or
/// node by node with [`Tape::input`], [`Tape::constant`] and [`Tape::push`]. Each new node's
/// value is computed as it is added (the post's feed-forward). Then
/// [`backward`](Tape::backward) gives d(output)/d(every node) in one reverse pass, and
/// [`forward_mode`](Tape::forward_mode) gives d(every node)/d(one node) in one forward pass.
///
/// The tape is generic over its number type: `f64`, or [`Dual<f64>`](super::Dual) for
/// Hessian-vector products. It uses interior mutability so that handles can be `Copy`.
///
/// ```
/// use backprop::graph::Tape;
/// let tape = Tape::new();
/// let (a, b) = (tape.var(2.0), tape.var(3.0));
/// let (c, d) = (a + b, a * b);
/// let o = c * d * 0.5;
/// assert_eq!((c.val(), d.val(), o.val()), (5.0, 6.0, 15.0));
/// let g = o.backward();
/// assert_eq!([g.wrt(a), g.wrt(b), g.wrt(c), g.wrt(d)], [10.5, 8.0, 3.0, 2.5]);
/// ```
#[derive(Debug)]
pub struct Tape<T = f64> {
    pub(crate) inner: RefCell<Inner<T>>,
}

impl<T: Scalar> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Scalar> Tape<T> {
    /// An empty tape.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty tape with room for `n` nodes, so that building allocates once.
    pub fn with_capacity(n: usize) -> Self {
        Tape {
            inner: RefCell::new(Inner {
                nodes: Vec::with_capacity(n),
                values: Vec::with_capacity(n),
                names: HashMap::new(),
            }),
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

    /// Removes every node, keeping the allocated capacity. It takes `&mut self`, so no
    /// handle to an old node can outlive it.
    pub fn clear(&mut self) {
        let inner = self.inner.get_mut();
        inner.nodes.clear();
        inner.values.clear();
        inner.names.clear();
    }

    /// Adds an input (a variable to differentiate with respect to) and returns its handle.
    ///
    /// # Panics
    /// If the tape already holds 2^32 - 1 nodes (use [`Tape::push`] to get an error instead).
    pub fn var(&self, value: T) -> Var<'_, T> {
        Var::new(self, self.input(value))
    }

    /// Adds an input node.
    ///
    /// # Panics
    /// If the tape already holds 2^32 - 1 nodes.
    pub fn input(&self, value: T) -> NodeId {
        self.leaf(Op::Input, value)
    }

    /// Adds a constant node.
    ///
    /// # Panics
    /// If the tape already holds 2^32 - 1 nodes.
    pub fn constant(&self, value: T) -> NodeId {
        self.leaf(Op::Const, value)
    }

    /// A handle for node `id`, to continue building with arithmetic.
    pub fn handle(&self, id: NodeId) -> Var<'_, T> {
        Var::new(self, id)
    }

    fn leaf(&self, op: Op, value: T) -> NodeId {
        let mut inner = self.inner.borrow_mut();
        let id = next_id(inner.nodes.len()).expect("tape is full (2^32 - 1 nodes)");
        inner.nodes.push(Node {
            op,
            depends: op == Op::Input,
            args: [NodeId(0); 2],
        });
        inner.values.push(value);
        id
    }

    /// Adds the node `op(args)`, computing its value; checks the arity and that every argument
    /// is already on the tape.
    ///
    /// ```
    /// use backprop::graph::{GraphError, Op, Tape};
    /// let tape = Tape::new();
    /// let a = tape.input(4.0);
    /// let s = tape.push(Op::Sqrt, &[a]).unwrap();
    /// assert_eq!(tape.value(s), 2.0);
    /// assert!(matches!(tape.push(Op::Add, &[a]), Err(GraphError::Arity { .. })));
    /// ```
    pub fn push(&self, op: Op, args: &[NodeId]) -> Result<NodeId, GraphError> {
        let len = self.len();
        if op.arity() == 0 || args.len() != op.arity() {
            return Err(GraphError::Arity {
                op: op.symbol(),
                expected: op.arity(),
                got: args.len(),
            });
        }
        if let Some(bad) = args.iter().find(|a| a.index() >= len) {
            return Err(GraphError::NodeOutOfRange {
                index: bad.index(),
                len,
            });
        }
        next_id(len).ok_or(GraphError::TooManyNodes)?;
        let y = args.get(1).copied().unwrap_or(args[0]);
        Ok(self.push_op(op, args[0], y))
    }

    /// Adds `op(x, y)` for arguments known to be on this tape (y is ignored by one-argument
    /// ops). The hot path of building: one borrow, two pushes.
    #[inline]
    pub(crate) fn push_op(&self, op: Op, x: NodeId, y: NodeId) -> NodeId {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let id = next_id(inner.nodes.len()).expect("tape is full (2^32 - 1 nodes)");
        let (vx, vy) = (inner.values[x.index()], inner.values[y.index()]);
        let depends = inner.nodes[x.index()].depends || inner.nodes[y.index()].depends;
        inner.nodes.push(Node {
            op,
            depends,
            args: [x, y],
        });
        inner.values.push(op.rule(vx, vy).0);
        id
    }

    /// The value of node `id`.
    ///
    /// # Panics
    /// If `id` is not on this tape.
    pub fn value(&self, id: NodeId) -> T {
        self.inner.borrow().values[id.index()]
    }

    /// Every node's value, in tape order.
    pub fn values(&self) -> Vec<T> {
        self.inner.borrow().values.clone()
    }

    /// Node `id`.
    ///
    /// # Panics
    /// If `id` is not on this tape.
    pub fn node(&self, id: NodeId) -> Node {
        self.inner.borrow().nodes[id.index()]
    }

    /// Gives node `id` a name (for DOT and for printing paths). A second name is appended.
    pub fn set_name(&self, id: NodeId, name: &str) {
        let mut inner = self.inner.borrow_mut();
        inner
            .names
            .entry(id.0)
            .and_modify(|n| {
                n.push_str(", ");
                n.push_str(name);
            })
            .or_insert_with(|| name.to_string());
    }

    /// Node `id`'s name, if it has one.
    pub fn name(&self, id: NodeId) -> Option<String> {
        self.inner.borrow().names.get(&id.0).cloned()
    }

    /// Changes the value of an input or constant; call [`Tape::forward`] to recompute the rest.
    ///
    /// ```
    /// use backprop::graph::{Op, Tape};
    /// let tape = Tape::new();
    /// let a = tape.input(2.0);
    /// let s = tape.push(Op::Mul, &[a, a]).unwrap();
    /// tape.set_value(a, 3.0).unwrap();
    /// tape.forward();
    /// assert_eq!(tape.value(s), 9.0);
    /// ```
    pub fn set_value(&self, id: NodeId, value: T) -> Result<(), GraphError> {
        let mut inner = self.inner.borrow_mut();
        let len = inner.nodes.len();
        match inner.nodes.get(id.index()) {
            None => Err(GraphError::NodeOutOfRange {
                index: id.index(),
                len,
            }),
            Some(n) if n.op.arity() != 0 => Err(GraphError::NotALeaf { index: id.index() }),
            Some(_) => {
                inner.values[id.index()] = value;
                Ok(())
            }
        }
    }

    /// Forward evaluation: recomputes every node's value from the leaves, in tape order.
    pub fn forward(&self) {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        for (i, node) in inner.nodes.iter().enumerate() {
            if node.op.arity() > 0 {
                let x = inner.values[node.args[0].index()];
                let y = inner.values[node.args[1].index()];
                inner.values[i] = node.op.rule(x, y).0;
            }
        }
    }
}

/// The id of the node at position `len`, if it fits in a u32.
#[inline]
fn next_id(len: usize) -> Option<NodeId> {
    u32::try_from(len)
        .ok()
        .filter(|&i| i < u32::MAX)
        .map(NodeId)
}
