//! A label for every node: its name, or for an unnamed one the expression that computes it.

use super::format::format_number;
use super::op::Op;
use super::real::Scalar;
use super::tape::{NodeId, Tape};

/// How long (in characters) an argument's text may be before a label shows it as `...`:
/// labels stay short however deep the expression, and building them stays linear.
const ARGUMENT_CHARS: usize = 30;

/// Binding strength, for parentheses: `+ -` < `* /` < unary minus < `^` < an atom.
const SUM: u8 = 1;
const PRODUCT: u8 = 2;
const NEGATION: u8 = 3;
const POWER: u8 = 4;
const ATOM: u8 = 5;

impl<T: Scalar> Tape<T> {
    /// A label for every node, in tape order: a named node's (first) name; a constant's
    /// value; an unnamed input's position (`input0`); and for an unnamed computed node the
    /// expression that computes it, in parentheses unless it is a function call, written
    /// with its arguments' names, e.g. `(w*x + b)`. An argument whose own text is longer than
    /// 30 characters is shown as `...`, so a label stays short: `(... + 1)`.
    ///
    /// ```
    /// use backprop::graph::{Real, Tape};
    /// let tape = Tape::new();
    /// let (w, x, b) = (tape.var(0.5), tape.var(2.0), tape.var(-1.0));
    /// for (v, name) in [(w, "w"), (x, "x"), (b, "b")] {
    ///     tape.set_name(v.id(), name);
    /// }
    /// let y = (w * x + b).sigmoid() * 2.0;
    /// let labels = tape.labels();
    /// assert_eq!(labels[3..], ["(w*x)", "(w*x + b)", "sigmoid(w*x + b)", "2", "(sigmoid(w*x + b)*2)"]);
    /// assert_eq!(labels[y.id().index()], "(sigmoid(w*x + b)*2)");
    /// ```
    pub fn labels(&self) -> Vec<String> {
        let inner = self.inner.borrow();
        // Each node's text as an argument, and how strongly it binds.
        let mut texts: Vec<Text> = Vec::with_capacity(inner.nodes.len());
        let mut labels = Vec::with_capacity(inner.nodes.len());
        for (i, node) in inner.nodes.iter().enumerate() {
            let name = self.name(NodeId(i as u32));
            let value = inner.values[i].value();
            let (text, strength) = match (name, node.op()) {
                // A second statement naming the same node (`d = c`) appends its name.
                (Some(n), _) => (n.split(", ").next().unwrap_or_default().to_string(), ATOM),
                (None, Op::Input) => (format!("input{i}"), ATOM),
                (None, Op::Const) if value < 0.0 => (format_number(value), NEGATION),
                (None, Op::Const) => (format_number(value), ATOM),
                (None, op) => {
                    let [x, y] = node.arg_indices();
                    let t = expression(op, &texts[x], &texts[y]);
                    labels.push(if t.strength == ATOM {
                        t.text.clone()
                    } else {
                        format!("({})", t.text)
                    });
                    texts.push(t);
                    continue;
                }
            };
            labels.push(text.clone());
            texts.push(Text {
                text,
                strength,
                elided: false,
            });
        }
        labels
    }
}

/// A node's text as an argument of another.
struct Text {
    text: String,
    /// How strongly it binds.
    strength: u8,
    /// Whether an argument somewhere inside is shown as `...`: then so is this text, in
    /// turn, so that every label after the first elision stays as short as `(... + 1)`.
    elided: bool,
}

/// The text of `op(x, y)`, given its arguments'.
fn expression(op: Op, x: &Text, y: &Text) -> Text {
    let elide = |t: &Text| t.elided || t.text.chars().count() > ARGUMENT_CHARS;
    let elided = elide(x) || (op.arity() == 2 && elide(y));
    // An argument as it appears inside: `...` when long, in parentheses when it binds more
    // loosely than `min` requires.
    let arg = |t: &Text, min: u8| {
        if elide(t) {
            "...".to_string()
        } else if t.strength < min {
            format!("({})", t.text)
        } else {
            t.text.clone()
        }
    };
    let (text, strength) = match op {
        Op::Add | Op::Sub => (
            format!("{} {} {}", arg(x, SUM), op.symbol(), arg(y, PRODUCT)),
            SUM,
        ),
        Op::Mul | Op::Div => (
            format!("{}{}{}", arg(x, PRODUCT), op.symbol(), arg(y, NEGATION)),
            PRODUCT,
        ),
        Op::Neg => (format!("-{}", arg(x, NEGATION)), NEGATION),
        Op::Pow => (format!("{}^{}", arg(x, ATOM), arg(y, NEGATION)), POWER),
        _ => (format!("{}({})", op.symbol(), arg(x, 0)), ATOM),
    };
    Text {
        text,
        strength,
        elided,
    }
}
