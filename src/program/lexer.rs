//! The lexer: text to tokens, each with the position where it starts.

use std::fmt;

use super::{Pos, ProgramError};
use crate::graph::format_number;

/// A token of the `diff` language.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Number(f64),
    Name(String),
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    LParen,
    RParen,
    Assign,
    /// `;` or a newline: the end of a statement.
    Sep,
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Number(x) => write!(f, "number {}", format_number(*x)),
            Tok::Name(n) => write!(f, "name '{n}'"),
            Tok::Plus => f.write_str("'+'"),
            Tok::Minus => f.write_str("'-'"),
            Tok::Star => f.write_str("'*'"),
            Tok::Slash => f.write_str("'/'"),
            Tok::Caret => f.write_str("'^'"),
            Tok::LParen => f.write_str("'('"),
            Tok::RParen => f.write_str("')'"),
            Tok::Assign => f.write_str("'='"),
            Tok::Sep => f.write_str("end of statement"),
            Tok::Eof => f.write_str("end of program"),
        }
    }
}

/// Splits `src` into tokens; `#` starts a comment that runs to the end of the line.
pub(crate) fn lex(src: &str) -> Result<Vec<(Tok, Pos)>, ProgramError> {
    let mut toks = Vec::new();
    let mut chars = src.char_indices().peekable();
    let mut cursor = Cursor {
        line: 1,
        at: 0,
        column: 1,
    };
    while let Some(&(at, c)) = chars.peek() {
        let pos = cursor.pos(src, at);
        let single = match c {
            '+' => Some(Tok::Plus),
            '-' => Some(Tok::Minus),
            '/' => Some(Tok::Slash),
            '^' => Some(Tok::Caret),
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '=' => Some(Tok::Assign),
            ';' => Some(Tok::Sep),
            _ => None,
        };
        if let Some(t) = single {
            chars.next();
            toks.push((t, pos));
            continue;
        }
        match c {
            '\n' => {
                chars.next();
                toks.push((Tok::Sep, pos));
                cursor = Cursor {
                    line: cursor.line + 1,
                    at: at + 1,
                    column: 1,
                };
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                while chars.peek().is_some_and(|&(_, c)| c != '\n') {
                    chars.next();
                }
            }
            '*' => {
                chars.next();
                // `**` is accepted as `^`, as Python spells it.
                if chars.peek().is_some_and(|&(_, c)| c == '*') {
                    chars.next();
                    toks.push((Tok::Caret, pos));
                } else {
                    toks.push((Tok::Star, pos));
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                let end = number_end(src, at);
                let text = &src[at..end];
                let x = text
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| ProgramError::BadNumber {
                        pos,
                        text: text.to_string(),
                    })?;
                while chars.peek().is_some_and(|&(i, _)| i < end) {
                    chars.next();
                }
                toks.push((Tok::Number(x), pos));
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut end = at;
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' {
                        end = i + c.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                toks.push((Tok::Name(src[at..end].to_string()), pos));
            }
            c => return Err(ProgramError::UnexpectedChar { pos, found: c }),
        }
    }
    let pos = cursor.pos(src, src.len());
    toks.push((Tok::Eof, pos));
    Ok(toks)
}

/// Where the lexer is: columns count characters, not bytes, from 1, and advance
/// incrementally so that a long line costs linear time.
struct Cursor {
    line: usize,
    /// The byte offset `column` refers to.
    at: usize,
    column: usize,
}

impl Cursor {
    fn pos(&mut self, src: &str, at: usize) -> Pos {
        self.column += src[self.at..at].chars().count();
        self.at = at;
        Pos {
            line: self.line,
            column: self.column,
        }
    }
}

/// The end of the number starting at byte `at`: digits, one '.', and an exponent
/// `e[+-]digits`. Anything malformed is caught by `parse`.
fn number_end(src: &str, at: usize) -> usize {
    let b = src.as_bytes();
    let mut i = at;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
        i += 1;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    i
}
