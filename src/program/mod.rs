//! The small language of `backprop diff`, parsed into a [`Tape`], and what the command
//! reports about it.
//!
//! A program is statements separated by `;` or newlines, each `name = expr` in the post's
//! style; a bare `expr` may end it. The last statement is the output. Names used but never
//! assigned are the inputs, and take their values from the bindings (`--at`).
//!
//! ```
//! use backprop::program::{Mode, Program};
//! let at = [("a".to_string(), 2.0), ("b".to_string(), 3.0)];
//! let p = Program::compile("c = a + b; d = a * b; o = 0.5 * c * d", &at).unwrap();
//! let r = p.analyse(Mode::Both);
//! assert_eq!(r.value, 15.0);
//! let reverse = r.reverse.unwrap();
//! assert_eq!(reverse.gradient, vec![
//!     ("a".to_string(), 10.5), ("b".to_string(), 8.0),
//!     ("c".to_string(), 3.0), ("d".to_string(), 2.5),
//! ]);
//! // Forward mode repeats work that reverse mode does once.
//! assert!(r.forward.unwrap().work > reverse.work);
//! ```

mod lexer;
mod parser;
mod report;

use std::collections::HashSet;
use std::fmt;

use crate::graph::{format_number, Adjoints, GraphError, NodeId, Tape};

pub use parser::MAX_DEPTH;
pub use report::{Analysis, ForwardSkipped, Mode, ModeReport, NamedPath, VariablePaths, WithPaths};

/// The post's Figure 1 as a program.
pub const FIGURE_1: &str = "c = a + b\nd = a * b\no = 0.5 * c * d";

/// The post's input values for Figure 1: a = 2, b = 3.
pub fn figure_1_inputs() -> Vec<(String, f64)> {
    vec![("a".to_string(), 2.0), ("b".to_string(), 3.0)]
}

/// How many paths `--paths` lists, over all variables, before it refuses.
pub const PATH_LIMIT: u64 = 1000;

/// How many steps (edges) `--paths` lists, over all paths, before it refuses: a few paths
/// through a long chain would otherwise print a line per path as long as the program.
pub const PATH_STEP_LIMIT: u64 = 100_000;

/// The largest variables × graph nodes for which [`Mode::Both`] runs forward mode (one pass
/// over the graph per variable): about a second of work. Above it only reverse mode runs;
/// [`Mode::Forward`] runs it whatever the size.
pub const FORWARD_LIMIT: u64 = 100_000_000;

/// A position in the program text: line and column, both from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    /// The line, from 1.
    pub line: usize,
    /// The column (in characters), from 1.
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// What can be wrong with a program or its bindings. Each message is one line and names the
/// position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProgramError {
    /// A character the language does not use.
    #[error("{pos}: unexpected character '{found}'")]
    UnexpectedChar {
        /// Where.
        pos: Pos,
        /// The character.
        found: char,
    },
    /// A malformed number such as `1.2.3`, or one too large for f64 (`1e999`).
    #[error("{pos}: '{text}' is not a valid finite number")]
    BadNumber {
        /// Where.
        pos: Pos,
        /// Its text.
        text: String,
    },
    /// A token where another was needed.
    #[error("{pos}: expected {expected}, found {found}")]
    Unexpected {
        /// Where.
        pos: Pos,
        /// What would have been valid.
        expected: &'static str,
        /// What was there.
        found: String,
    },
    /// `name(...)` for a function the language does not have.
    #[error("{pos}: unknown function '{name}' (known: exp, ln, log, sqrt, sin, cos, tan, tanh, sigmoid, relu, abs)")]
    UnknownFunction {
        /// Where.
        pos: Pos,
        /// The name.
        name: String,
    },
    /// A name assigned a second time.
    #[error("{pos}: '{name}' is assigned twice (first at {first}); a name may be assigned once")]
    Reassigned {
        /// The second assignment.
        pos: Pos,
        /// The name.
        name: String,
        /// The first assignment.
        first: Pos,
    },
    /// A name used before the statement that assigns it.
    #[error("{pos}: '{name}' is used before it is assigned")]
    UsedBeforeAssigned {
        /// The use.
        pos: Pos,
        /// The name.
        name: String,
    },
    /// An input with no value.
    #[error("{pos}: input '{name}' has no value (give it with --at {name}=...)")]
    MissingInput {
        /// Its first use.
        pos: Pos,
        /// The name.
        name: String,
    },
    /// A binding for a name the program computes.
    #[error("{pos}: '{name}' is assigned by the program, so it cannot also be given a value")]
    AtAssigned {
        /// The assignment.
        pos: Pos,
        /// The name.
        name: String,
    },
    /// A bare expression that is not the last statement.
    #[error("{pos}: a bare expression must be the last statement (write 'name = ...')")]
    BareNotLast {
        /// Where it starts.
        pos: Pos,
    },
    /// Nesting past [`MAX_DEPTH`].
    #[error("{pos}: expression nested deeper than {limit} levels")]
    TooDeep {
        /// Where the limit was hit.
        pos: Pos,
        /// The limit.
        limit: usize,
    },
    /// An operation whose value is not finite: outside its domain, or overflowing.
    #[error("{pos}: '{op}' of {} is {}, not a finite number (outside its domain, or too large)", numbers(args), format_number(*value))]
    NotFinite {
        /// The operation's position.
        pos: Pos,
        /// Its symbol.
        op: &'static str,
        /// Its arguments' values.
        args: Vec<f64>,
        /// The value it gave.
        value: f64,
    },
    /// A program with no statement.
    #[error("the program is empty")]
    Empty,
    /// The graph refused a node (e.g. it is full).
    #[error("{pos}: {source}")]
    Graph {
        /// Where.
        pos: Pos,
        /// Why.
        source: GraphError,
    },
    /// A malformed binding in `name=value,...`.
    #[error("binding '{text}': {reason}")]
    BadBinding {
        /// The binding's text.
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Too many paths to list, over all variables.
    #[error("{} paths from the {variables} variables to the output, over the limit of {limit} in all", count_text(*paths))]
    TooManyPaths {
        /// The number of paths (saturated at 2^64 - 1).
        paths: u64,
        /// The number of variables.
        variables: usize,
        /// The limit.
        limit: u64,
    },
    /// Paths too long to list: too many steps over all paths.
    #[error("{} paths with {} steps in all, over the limit of {limit} steps", count_text(*paths), count_text(*steps))]
    TooManyPathSteps {
        /// The number of paths.
        paths: u64,
        /// The number of steps along them (saturated at 2^64 - 1).
        steps: u64,
        /// The limit.
        limit: u64,
    },
    /// Too many paths to list, for one variable.
    #[error("paths from '{name}': {source}")]
    Paths {
        /// The variable.
        name: String,
        /// The refusal.
        source: GraphError,
    },
}

/// Numbers as the reports print them: `-4`, or `(1, 0)` for two.
fn numbers(xs: &[f64]) -> String {
    let each: Vec<String> = xs.iter().map(|&x| format_number(x)).collect();
    match each.as_slice() {
        [one] => one.clone(),
        _ => format!("({})", each.join(", ")),
    }
}

/// A count, or "2^64 or more" where it saturated.
fn count_text(n: u64) -> String {
    if n == u64::MAX {
        "2^64 or more".to_string()
    } else {
        n.to_string()
    }
}

/// One statement `name = expr`: the name, the node holding its value, where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// The name (for a bare last expression: `output`).
    pub name: String,
    /// Its node on the tape.
    pub node: NodeId,
    /// Where the statement starts.
    pub pos: Pos,
}

/// Parses `name=value,name=value` (the `--at` flag). Names must be distinct.
///
/// ```
/// use backprop::program::parse_bindings;
/// assert_eq!(parse_bindings("a=-4, b=2e0").unwrap(),
///            vec![("a".to_string(), -4.0), ("b".to_string(), 2.0)]);
/// assert!(parse_bindings("a=1,a=2").is_err());
/// ```
pub fn parse_bindings(s: &str) -> Result<Vec<(String, f64)>, ProgramError> {
    let mut out: Vec<(String, f64)> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = |reason| ProgramError::BadBinding {
            text: part.to_string(),
            reason,
        };
        let (name, value) = part.split_once('=').ok_or(bad("expected name=value"))?;
        let name = name.trim();
        let valid_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !valid_name {
            return Err(bad("the name is not a valid identifier"));
        }
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| bad("the value is not a number"))?;
        if !value.is_finite() {
            return Err(bad("the value is not finite"));
        }
        if !seen.insert(name) {
            return Err(bad("the name is given twice"));
        }
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// A compiled program: its tape, inputs and statements.
///
/// ```
/// use backprop::program::Program;
/// let p = Program::compile("y = x^2 + 5*x + 4", &[("x".to_string(), 3.0)]).unwrap();
/// assert_eq!(p.output().name, "y");
/// assert_eq!(p.tape().value(p.output().node), 28.0);
/// ```
#[derive(Debug)]
pub struct Program {
    tape: Tape<f64>,
    inputs: Vec<(String, NodeId)>,
    statements: Vec<Statement>,
}

impl Program {
    /// Parses `source` into a tape, taking input values from `at`. Names in `at` that the
    /// program never uses become inputs too (their derivative is 0).
    ///
    /// ```
    /// use backprop::program::{Program, ProgramError};
    /// let at = [("a".to_string(), 1.0), ("b".to_string(), 2.0)];
    /// let err = Program::compile("o = a +* b", &at).unwrap_err();
    /// assert_eq!(err.to_string(), "line 1, column 8: expected a number, a name or '(', found '*'");
    /// ```
    pub fn compile(source: &str, at: &[(String, f64)]) -> Result<Program, ProgramError> {
        let toks = lexer::lex(source)?;
        let tape = Tape::new();
        let parsed = parser::Parser::new(toks, &tape, at).program()?;
        let mut inputs = parsed.inputs;
        let used: HashSet<String> = inputs.iter().map(|(n, _)| n.clone()).collect();
        for (name, value) in at {
            if !used.contains(name) {
                let node = tape.input(*value);
                tape.set_name(node, name);
                inputs.push((name.clone(), node));
            }
        }
        Ok(Program {
            tape,
            inputs,
            statements: parsed.statements,
        })
    }

    /// The tape the program was compiled into.
    pub fn tape(&self) -> &Tape<f64> {
        &self.tape
    }

    /// The inputs (name, node), in order of first use, then unused bindings.
    pub fn inputs(&self) -> &[(String, NodeId)] {
        &self.inputs
    }

    /// The statements, in order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// The last statement: the output.
    pub fn output(&self) -> &Statement {
        self.statements
            .last()
            .expect("a compiled program has a statement")
    }

    /// The variables derivatives are reported for: inputs and every statement but the last.
    pub fn variables(&self) -> Vec<(String, NodeId)> {
        let n = self.statements.len() - 1;
        self.inputs
            .iter()
            .cloned()
            .chain(
                self.statements[..n]
                    .iter()
                    .map(|s| (s.name.clone(), s.node)),
            )
            .collect()
    }

    /// Every named value: inputs, then statements.
    pub fn values(&self) -> Vec<(String, f64)> {
        self.inputs
            .iter()
            .cloned()
            .chain(self.statements.iter().map(|s| (s.name.clone(), s.node)))
            .map(|(n, id)| (n, self.tape.value(id)))
            .collect()
    }

    /// Reverse mode from the output (the adjoints of every node).
    pub fn backward(&self) -> Adjoints<f64> {
        self.tape.backward(self.output().node)
    }

    /// The graph in Graphviz DOT with every node's value and reverse-mode derivative.
    pub fn to_dot(&self) -> String {
        self.tape.to_dot(Some(&self.backward()))
    }
}
