//! Graphviz DOT export: one record per node with its name, op, value and derivative, and
//! each edge's local derivative on the edge.

use std::fmt::Write;

use super::format::format_number;
use super::real::Scalar;
use super::reverse::Adjoints;
use super::tape::Tape;

impl<T: Scalar> Tape<T> {
    /// The graph in Graphviz DOT, left to right, one record `{ name | op | value | grad }` per
    /// node (like micrograd's `draw_dot`); `grad` is shown when `adjoints` is given, except
    /// on constants, which are not differentiated. An unnamed computed node is named by its
    /// expression (see [`Tape::labels`]). Each edge `x -> f` is labelled with its local
    /// derivative df/dx; an edge out of a constant is dashed and unlabelled, as that
    /// derivative is never computed. Render with `dot -Tsvg graph.dot > graph.svg`.
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
    /// assert!(dot.contains("n2 [label=\"{ (a*3) | * | value 6 | grad 1 }\"]"));
    /// // d(a*3)/da = 3
    /// assert!(dot.contains("n0 -> n2 [label=\"3\"];"));
    /// assert!(dot.contains("n1 -> n2 [style=dashed];"));
    /// ```
    pub fn to_dot(&self, adjoints: Option<&Adjoints<T>>) -> String {
        let labels = self.labels();
        let inner = self.inner.borrow();
        let mut out = String::from("digraph backprop {\n  rankdir=LR;\n  node [shape=record];\n");
        for (i, node) in inner.nodes.iter().enumerate() {
            let id = super::NodeId(i as u32);
            let name = match self.name(id) {
                Some(name) => name,
                None if node.op().arity() > 0 => labels[i].clone(),
                None => String::new(),
            };
            let _ = write!(
                out,
                "  n{i} [label=\"{{ {} | {} | value {}",
                escape(&name),
                escape(node.op().symbol()),
                format_number(inner.values[i].value())
            );
            if let Some(g) = adjoints.filter(|_| node.depends_on_input()) {
                let _ = write!(out, " | grad {}", format_number(g.as_slice()[i].value()));
            }
            out.push_str(" }\"];\n");
            let [x, y] = node.arg_indices();
            let (_, dx, dy) =
                node.op()
                    .rule_with(inner.values[x], inner.values[y], Some(inner.values[i]));
            for (a, partial) in node.args().iter().zip([dx, dy]) {
                if inner.nodes[a.index()].depends_on_input() {
                    let d = format_number(partial.value());
                    let _ = writeln!(out, "  n{} -> n{i} [label=\"{d}\"];", a.index());
                } else {
                    let _ = writeln!(out, "  n{} -> n{i} [style=dashed];", a.index());
                }
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
