//! The primitive operations and their derivative rules: all of the calculus, in one table.

use super::real::Scalar;

/// A primitive operation of the graph. Each has at most two arguments, x and y.
///
/// ```
/// use backprop::graph::Op;
/// // d = a b at a = 2, b = 3: value 6, dd/da = b = 3, dd/db = a = 2.
/// assert_eq!(Op::Mul.rule(2.0, 3.0), (6.0, 3.0, 2.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    /// A leaf whose derivative is wanted (a variable).
    Input,
    /// A leaf constant.
    Const,
    /// x + y.
    Add,
    /// x - y.
    Sub,
    /// x * y.
    Mul,
    /// x / y.
    Div,
    /// -x.
    Neg,
    /// x^y.
    Pow,
    /// e^x.
    Exp,
    /// ln x.
    Ln,
    /// sqrt x.
    Sqrt,
    /// sin x.
    Sin,
    /// cos x.
    Cos,
    /// tan x.
    Tan,
    /// tanh x.
    Tanh,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// max(x, 0).
    Relu,
    /// |x|.
    Abs,
}

impl Op {
    /// How many arguments the op takes: 0 for leaves, 2 for `+ - * / ^`, 1 otherwise.
    ///
    /// ```
    /// use backprop::graph::Op;
    /// assert_eq!((Op::Input.arity(), Op::Exp.arity(), Op::Pow.arity()), (0, 1, 2));
    /// ```
    #[inline]
    pub fn arity(self) -> usize {
        match self {
            Op::Input | Op::Const => 0,
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow => 2,
            _ => 1,
        }
    }

    /// The op's symbol, as the `diff` language and the DOT export spell it.
    ///
    /// ```
    /// use backprop::graph::Op;
    /// assert_eq!(Op::Pow.symbol(), "^");
    /// ```
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Const => "const",
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Neg => "neg",
            Op::Pow => "^",
            Op::Exp => "exp",
            Op::Ln => "ln",
            Op::Sqrt => "sqrt",
            Op::Sin => "sin",
            Op::Cos => "cos",
            Op::Tan => "tan",
            Op::Tanh => "tanh",
            Op::Sigmoid => "sigmoid",
            Op::Relu => "relu",
            Op::Abs => "abs",
        }
    }

    /// The function of one argument named `name` in the `diff` language (`log` is `ln`).
    ///
    /// ```
    /// use backprop::graph::Op;
    /// assert_eq!(Op::function("log"), Some(Op::Ln));
    /// assert_eq!(Op::function("max"), None);
    /// ```
    pub fn function(name: &str) -> Option<Op> {
        Some(match name {
            "exp" => Op::Exp,
            "ln" | "log" => Op::Ln,
            "sqrt" => Op::Sqrt,
            "sin" => Op::Sin,
            "cos" => Op::Cos,
            "tan" => Op::Tan,
            "tanh" => Op::Tanh,
            "sigmoid" => Op::Sigmoid,
            "relu" => Op::Relu,
            "abs" => Op::Abs,
            _ => return None,
        })
    }

    /// The op's value and its local partial derivatives at (x, y): `(f, df/dx, df/dy)`.
    ///
    /// This is the only place a derivative rule is written. Forward mode, reverse mode, the
    /// sum over paths and the [`Dual`](super::Dual) numbers all read their local derivatives
    /// from here. For one-argument ops y is ignored and df/dy is 0; leaves return `(x, 0, 0)`
    /// (their value lives on the tape, not in a rule).
    ///
    /// ```
    /// use backprop::graph::Op;
    /// // o = u^2 at u = 3: 9, do/du = 2u = 6; do/d(exponent) = 9 ln 3.
    /// let (o, du, dy) = Op::Pow.rule(3.0, 2.0);
    /// assert_eq!((o, du), (9.0, 6.0));
    /// assert!((dy - 9.0 * 3f64.ln()).abs() < 1e-12);
    /// ```
    #[inline]
    pub fn rule<T: Scalar>(self, x: T, y: T) -> (T, T, T) {
        self.rule_with(x, y, None)
    }

    /// [`Op::rule`], reusing the op's value at (x, y) when it is already known (`out`): the
    /// rules whose derivative is written in terms of the output (e^x, tanh, sigmoid, tan,
    /// sqrt, x^y, x/y) then skip recomputing it. Backward passes use this, with the value
    /// stored on the tape.
    ///
    /// ```
    /// use backprop::graph::Op;
    /// let e = 1f64.exp();
    /// assert_eq!(Op::Exp.rule_with(1.0, 0.0, Some(e)), (e, e, 0.0));
    /// ```
    #[inline]
    pub fn rule_with<T: Scalar>(self, x: T, y: T, out: Option<T>) -> (T, T, T) {
        let (zero, one) = (T::zero(), T::one());
        // The op's value: reused if known, else computed by `f`.
        let value = |f: fn(T, T) -> T| out.unwrap_or_else(|| f(x, y));
        match self {
            Op::Input | Op::Const => (x, zero, zero),
            Op::Add => (x + y, one, one),
            Op::Sub => (x - y, one, -one),
            Op::Mul => (x * y, y, x),
            Op::Div => {
                let q = value(|x, y| x / y);
                (q, one / y, -q / y)
            }
            Op::Neg => (-x, -one, zero),
            Op::Pow => {
                let v = value(|x, y| x.pow(y));
                // d/dx x^y = y x^(y-1); at x = y = 0 that is 0 · inf, taken as 0. (Only
                // there: elsewhere y = 0 must still carry y's tangent when T is a Dual.)
                let dx = if y.value() == 0.0 && x.value() == 0.0 {
                    zero
                } else {
                    y * x.pow(y - 1.0)
                };
                // d/dy x^y = x^y ln x, as PyTorch computes it: NaN for x < 0 (ln x is not
                // real there), and at x = 0 taken as 0 when y >= 0 (x^y is 0 or 1 nearby).
                let dy = if x.value() == 0.0 && y.value() >= 0.0 {
                    zero
                } else {
                    v * x.ln()
                };
                (v, dx, dy)
            }
            Op::Exp => {
                let e = value(|x, _| x.exp());
                (e, e, zero)
            }
            Op::Ln => (x.ln(), one / x, zero),
            Op::Sqrt => {
                let s = value(|x, _| x.sqrt());
                (s, one / (s * 2.0), zero)
            }
            Op::Sin => (x.sin(), x.cos(), zero),
            Op::Cos => (x.cos(), -x.sin(), zero),
            Op::Tan => {
                let t = value(|x, _| x.tan());
                (t, one + t * t, zero)
            }
            Op::Tanh => {
                let t = value(|x, _| x.tanh());
                (t, one - t * t, zero)
            }
            Op::Sigmoid => {
                let s = value(|x, _| x.sigmoid());
                (s, s * (one - s), zero)
            }
            Op::Relu => {
                if x.value() > 0.0 {
                    (x, one, zero)
                } else {
                    (zero, zero, zero)
                }
            }
            Op::Abs => {
                let v = x.value();
                if v > 0.0 {
                    (x, one, zero)
                } else if v < 0.0 {
                    (-x, -one, zero)
                } else {
                    // |x| has no derivative at 0; take 0, as PyTorch does.
                    (zero, zero, zero)
                }
            }
        }
    }
}
