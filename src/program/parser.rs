//! The parser: tokens straight into a [`Tape`], by recursive descent with an explicit depth
//! limit, so that however deep the nesting, the answer is an error with a position and never
//! a stack overflow.

use std::collections::{HashMap, HashSet};

use super::lexer::Tok;
use super::{Pos, ProgramError, Statement};
use crate::graph::{NodeId, Op, Tape};

/// How deeply expressions may nest (parentheses, unary minus, exponents, function calls).
pub const MAX_DEPTH: usize = 200;

#[derive(Clone, Copy)]
enum Binding {
    Input(NodeId),
    Assigned(NodeId, Pos),
}

pub(crate) struct Parsed {
    pub(crate) inputs: Vec<(String, NodeId)>,
    pub(crate) statements: Vec<Statement>,
}

pub(crate) struct Parser<'a> {
    toks: Vec<(Tok, Pos)>,
    i: usize,
    tape: &'a Tape<f64>,
    /// The bindings of `--at`, by name.
    at: HashMap<&'a str, f64>,
    env: HashMap<String, Binding>,
    /// Every name some statement assigns, so that a use before the assignment is caught.
    assigned_later: HashSet<String>,
    inputs: Vec<(String, NodeId)>,
    depth: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(toks: Vec<(Tok, Pos)>, tape: &'a Tape<f64>, at: &'a [(String, f64)]) -> Self {
        let assigned_later = toks
            .windows(2)
            .filter_map(|w| match (&w[0].0, &w[1].0) {
                (Tok::Name(n), Tok::Assign) => Some(n.clone()),
                _ => None,
            })
            .collect();
        Parser {
            toks,
            i: 0,
            tape,
            at: at.iter().map(|(n, v)| (n.as_str(), *v)).collect(),
            env: HashMap::new(),
            assigned_later,
            inputs: Vec::new(),
            depth: 0,
        }
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.i].0
    }

    fn pos(&self) -> Pos {
        self.toks[self.i].1
    }

    fn bump(&mut self) -> (Tok, Pos) {
        let t = self.toks[self.i].clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn unexpected(&self, expected: &'static str) -> ProgramError {
        ProgramError::Unexpected {
            pos: self.pos(),
            expected,
            found: self.peek().to_string(),
        }
    }

    /// program := (statement (';' | newline))* ; the last statement may be a bare expression.
    pub(crate) fn program(mut self) -> Result<Parsed, ProgramError> {
        let mut statements: Vec<Statement> = Vec::new();
        loop {
            while *self.peek() == Tok::Sep {
                self.bump();
            }
            if *self.peek() == Tok::Eof {
                break;
            }
            let pos = self.pos();
            let is_assignment = matches!(self.peek(), Tok::Name(_))
                && matches!(self.toks.get(self.i + 1), Some((Tok::Assign, _)));
            if is_assignment {
                let Tok::Name(name) = self.bump().0 else {
                    unreachable!("checked above")
                };
                self.bump();
                if let Some(Binding::Assigned(_, first)) = self.env.get(&name) {
                    return Err(ProgramError::Reassigned {
                        pos,
                        name,
                        first: *first,
                    });
                }
                if self.at.contains_key(name.as_str()) {
                    return Err(ProgramError::AtAssigned { pos, name });
                }
                let node = self.expr()?;
                self.assigned_later.remove(&name);
                self.end_of_statement()?;
                self.tape.set_name(node, &name);
                self.env.insert(name.clone(), Binding::Assigned(node, pos));
                statements.push(Statement { name, node, pos });
            } else {
                let node = self.expr()?;
                self.end_of_statement()?;
                while *self.peek() == Tok::Sep {
                    self.bump();
                }
                if *self.peek() != Tok::Eof {
                    return Err(ProgramError::BareNotLast { pos });
                }
                let name = self.fresh_output_name();
                self.tape.set_name(node, &name);
                statements.push(Statement { name, node, pos });
            }
        }
        if statements.is_empty() {
            return Err(ProgramError::Empty);
        }
        Ok(Parsed {
            inputs: self.inputs,
            statements,
        })
    }

    fn end_of_statement(&mut self) -> Result<(), ProgramError> {
        match self.peek() {
            Tok::Sep | Tok::Eof => Ok(()),
            _ => Err(self.unexpected("an operator or the end of the statement")),
        }
    }

    fn fresh_output_name(&self) -> String {
        let taken = |n: &str| self.env.contains_key(n) || self.at.contains_key(n);
        let mut name = "output".to_string();
        let mut k = 2;
        while taken(&name) {
            name = format!("output_{k}");
            k += 1;
        }
        name
    }

    /// Adds `op(args)`; a value that is not finite (ln of a negative number, 1/0, an
    /// overflow) is an error at the op's position, not a NaN that travels silently.
    fn push(&self, op: Op, args: &[NodeId], pos: Pos) -> Result<NodeId, ProgramError> {
        let node = self
            .tape
            .push(op, args)
            .map_err(|e| ProgramError::Graph { pos, source: e })?;
        let value = self.tape.value(node);
        if !value.is_finite() {
            return Err(ProgramError::NotFinite {
                pos,
                op: op.symbol(),
                args: args.iter().map(|&a| self.tape.value(a)).collect(),
                value,
            });
        }
        Ok(node)
    }

    /// expr := term (('+' | '-') term)*
    fn expr(&mut self) -> Result<NodeId, ProgramError> {
        let mut x = self.term()?;
        loop {
            let op = match self.peek() {
                Tok::Plus => Op::Add,
                Tok::Minus => Op::Sub,
                _ => return Ok(x),
            };
            let pos = self.bump().1;
            let y = self.term()?;
            x = self.push(op, &[x, y], pos)?;
        }
    }

    /// term := unary (('*' | '/') unary)*
    fn term(&mut self) -> Result<NodeId, ProgramError> {
        let mut x = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Star => Op::Mul,
                Tok::Slash => Op::Div,
                _ => return Ok(x),
            };
            let pos = self.bump().1;
            let y = self.unary()?;
            x = self.push(op, &[x, y], pos)?;
        }
    }

    /// unary := ('-' | '+') unary | power. Every nesting passes through here, so this is
    /// where the depth is counted.
    fn unary(&mut self) -> Result<NodeId, ProgramError> {
        if self.depth >= MAX_DEPTH {
            return Err(ProgramError::TooDeep {
                pos: self.pos(),
                limit: MAX_DEPTH,
            });
        }
        self.depth += 1;
        let result = match self.peek() {
            Tok::Minus => {
                let pos = self.bump().1;
                self.unary().and_then(|x| self.push(Op::Neg, &[x], pos))
            }
            Tok::Plus => {
                self.bump();
                self.unary()
            }
            _ => self.power(),
        };
        self.depth -= 1;
        result
    }

    /// power := primary ('^' unary)? — right-associative, and tighter than unary minus on
    /// its left: `-a^2` is `-(a^2)`, `a^-1` is `a^(-1)`.
    fn power(&mut self) -> Result<NodeId, ProgramError> {
        let base = self.primary()?;
        if *self.peek() != Tok::Caret {
            return Ok(base);
        }
        let pos = self.bump().1;
        let exponent = self.unary()?;
        self.push(Op::Pow, &[base, exponent], pos)
    }

    /// primary := number | name | function '(' expr ')' | '(' expr ')'
    fn primary(&mut self) -> Result<NodeId, ProgramError> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Number(x) => {
                self.bump();
                Ok(self.tape.constant(x))
            }
            Tok::LParen => {
                self.bump();
                let x = self.expr()?;
                self.expect_rparen()?;
                Ok(x)
            }
            Tok::Name(name) => {
                self.bump();
                if *self.peek() == Tok::LParen {
                    let op =
                        Op::function(&name).ok_or(ProgramError::UnknownFunction { pos, name })?;
                    self.bump();
                    let x = self.expr()?;
                    self.expect_rparen()?;
                    self.push(op, &[x], pos)
                } else {
                    self.variable(name, pos)
                }
            }
            _ => Err(self.unexpected("a number, a name or '('")),
        }
    }

    fn expect_rparen(&mut self) -> Result<(), ProgramError> {
        if *self.peek() == Tok::RParen {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected("')'"))
        }
    }

    /// A name in an expression: an earlier statement's result, or an input from `--at`.
    fn variable(&mut self, name: String, pos: Pos) -> Result<NodeId, ProgramError> {
        match self.env.get(&name) {
            Some(Binding::Assigned(node, _)) | Some(Binding::Input(node)) => return Ok(*node),
            None => {}
        }
        if self.assigned_later.contains(&name) {
            return Err(ProgramError::UsedBeforeAssigned { pos, name });
        }
        let Some(&value) = self.at.get(name.as_str()) else {
            return Err(ProgramError::MissingInput { pos, name });
        };
        let node = self.tape.input(value);
        self.tape.set_name(node, &name);
        self.env.insert(name.clone(), Binding::Input(node));
        self.inputs.push((name, node));
        Ok(node)
    }
}
