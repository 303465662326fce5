//! Graphviz DOT export: one record per node with its name, op, value and derivative.

use std::fmt::Write;

use super::real::Scalar;
use super::reverse::Adjoints;
use super::tape::Tape;

impl<T: Scalar> Tape<T> {
    /// The graph in Graphviz DOT, left to right, one record `{ name | op | value | grad }` per
    /// node (like micrograd's `draw_dot`); `grad` is shown when `adjoints` is given.
    /// Render with `dot -Tsvg graph.dot > graph.svg`.
    ///
    /// ```
    /// use backprop::graph::Tape;
    /// let tape = Tape::new();
    /// let a = tape.var(2.0);
    /// tape.set_name(a.id(), "a");
    /// let b = a * 3.0;
    /// let dot = tape.to_dot(Some(&b.backward()));
    /// assert!(dot.starts_with("digraph"));
    /// assert!(dot.contains("n0 [label=\"{ a | input | value 2 | grad 3 }\"]"));
    /// assert!(dot.contains("n0 -> n2"));
    /// ```
    pub fn to_dot(&self, adjoints: Option<&Adjoints<T>>) -> String {
        let inner = self.inner.borrow();
        let mut out = String::from("digraph backprop {\n  rankdir=LR;\n  node [shape=record];\n");
        for (i, node) in inner.nodes.iter().enumerate() {
            let id = super::NodeId(i as u32);
            let name = self.name(id).unwrap_or_default();
            let _ = write!(
                out,
                "  n{i} [label=\"{{ {} | {} | value {}",
                escape(&name),
                escape(node.op().symbol()),
                inner.values[i].value()
            );
            if let Some(g) = adjoints {
                let _ = write!(out, " | grad {}", g.as_slice()[i].value());
            }
            out.push_str(" }\"];\n");
            for a in node.args() {
                let _ = writeln!(out, "  n{} -> n{i};", a.index());
            }
        }
        out.push_str("}\n");
        out
    }
}

/// Escapes the characters that are special inside a DOT record label.
fn escape(s: &str) -> String {
    let mut e = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '{' | '}' | '|' | '<' | '>' | '"' | '\\') {
            e.push('\\');
        }
        e.push(c);
    }
    e
}
