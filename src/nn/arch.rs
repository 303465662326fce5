//! The `arch` string: a model written as PyTorch would write an `nn.Sequential`, layers
//! separated by top-level commas, each a constructor call with positional and keyword
//! arguments as PyTorch's constructors take them:
//!
//! ```text
//! Conv2d(1, 6, 5, padding=2), ReLU(), MaxPool2d(2), Flatten(), Linear(1176, 10), Softmax(dim=-1)
//! ```
//!
//! Parsing checks every argument; [`Arch::shapes`] then follows one example's shape through
//! the layers and refuses a layer that does not fit what comes before it, naming both sizes,
//! before any tensor exists.

use std::fmt;

/// One layer of an arch, with PyTorch's meaning.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// `Linear(in_features, out_features, bias=True)`: y = x Wᵀ + b on the last axis.
    Linear {
        /// Size of the last axis it takes.
        in_features: usize,
        /// Size of the last axis it gives.
        out_features: usize,
        /// Whether it has `b`.
        bias: bool,
    },
    /// `Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True)`.
    Conv2d {
        /// C of the (C, H, W) input.
        in_channels: usize,
        /// C of the output.
        out_channels: usize,
        /// (kH, kW).
        kernel: (usize, usize),
        /// (sH, sW).
        stride: (usize, usize),
        /// Zero padding (pH, pW) on each side.
        padding: (usize, usize),
        /// Whether it has a bias per output channel.
        bias: bool,
    },
    /// `MaxPool2d(kernel_size, stride=kernel_size)`.
    MaxPool2d {
        /// (kH, kW).
        kernel: (usize, usize),
        /// (sH, sW).
        stride: (usize, usize),
    },
    /// `AvgPool2d(kernel_size, stride=kernel_size)`.
    AvgPool2d {
        /// (kH, kW).
        kernel: (usize, usize),
        /// (sH, sW).
        stride: (usize, usize),
    },
    /// `Flatten()`: every axis of an example into one.
    Flatten,
    /// `ReLU()`.
    Relu,
    /// `Sigmoid()`.
    Sigmoid,
    /// `Tanh()`.
    Tanh,
    /// `LeakyReLU(negative_slope=0.01)`.
    LeakyRelu {
        /// The slope for negative inputs.
        slope: f64,
    },
    /// `Softmax(dim=-1)`: over the last axis.
    Softmax,
    /// `Embedding(num_embeddings, embedding_dim)`: token ids to vectors.
    Embedding {
        /// How many ids (the vocabulary size).
        num: usize,
        /// The length of each vector.
        dim: usize,
    },
    /// `RNN(input_size, hidden_size, num_layers=1)`, tanh, batch-first, zero initial state,
    /// the whole output sequence.
    Rnn {
        /// F of the (T, F) input.
        input: usize,
        /// Size of h.
        hidden: usize,
        /// Stacked layers.
        layers: usize,
    },
    /// `LSTM(input_size, hidden_size, num_layers=1)`: gates i, f, g, o in PyTorch's order,
    /// batch-first, zero initial state, the whole output sequence.
    Lstm {
        /// F of the (T, F) input.
        input: usize,
        /// Size of h and c.
        hidden: usize,
        /// Stacked layers.
        layers: usize,
    },
    /// `Dropout(p=0.5)`: in training, each value is zeroed with probability p and the rest
    /// scaled by 1/(1 - p); the identity in evaluation.
    Dropout {
        /// The probability of zeroing.
        p: f64,
    },
}

/// How a parameter starts, as PyTorch's `reset_parameters` draws it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamInit {
    /// U(-bound, bound): `Linear` and `Conv2d` (bound = 1/sqrt(fan_in)), `RNN` and `LSTM`
    /// (bound = 1/sqrt(hidden)).
    Uniform(f64),
    /// N(0, 1): `Embedding`.
    Normal,
}

/// A parameter a layer owns: its name as `nn.Sequential` names it, its shape, its start.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// `{i}.weight`, `{i}.bias`, `{i}.weight_ih_l0`, ...
    pub name: String,
    /// PyTorch's layout.
    pub shape: Vec<usize>,
    /// PyTorch's default initialisation.
    pub init: ParamInit,
}

/// A model as a sequence of layers: what an `arch` string says.
///
/// ```
/// use backprop::nn::{Arch, Layer};
/// let arch: Arch = "Linear(4, 3), ReLU(), Linear(3, 2, bias=False)".parse().unwrap();
/// assert_eq!(arch.layers().len(), 3);
/// assert_eq!(arch.layers()[2], Layer::Linear { in_features: 3, out_features: 2, bias: false });
/// // One example of shape [4] becomes [3], then [3], then [2].
/// assert_eq!(arch.shapes(&[4]).unwrap(), vec![vec![4], vec![3], vec![3], vec![2]]);
/// // The canonical string, as a model file stores it.
/// assert_eq!(arch.to_string(), "Linear(4, 3), ReLU(), Linear(3, 2, bias=False)");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Arch {
    layers: Vec<Layer>,
}

/// A wrong arch string, or a layer that does not fit its input.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ArchError {
    /// The text is not a list of constructor calls, or an argument is wrong.
    #[error("arch: layer {index} ({layer}) at column {column}: {message}")]
    Syntax {
        /// 0-based position of the layer in the arch (its parameter prefix).
        index: usize,
        /// The layer's text, cut to a readable length.
        layer: String,
        /// 1-based character column in the arch string where the problem is.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The arch has no layers.
    #[error("arch: no layers (write e.g. \"Linear(4, 2)\")")]
    Empty,
    /// A layer that does not fit the shape it is given.
    #[error("arch: layer {index} ({layer}) takes {expected} but is given {given}")]
    Shape {
        /// 0-based position of the layer.
        index: usize,
        /// The layer, in canonical form.
        layer: String,
        /// What the layer takes.
        expected: String,
        /// What the previous layers (or the input) give.
        given: String,
    },
    /// A cost that the last layer's output does not support (see
    /// [`check_cost`](super::check_cost)).
    #[error("arch: {0}")]
    Cost(String),
}

/// The longest piece of user text an error quotes.
const QUOTE: usize = 60;

fn quote(text: &str) -> String {
    let t = text.trim();
    if t.chars().count() <= QUOTE {
        t.to_string()
    } else {
        format!("{}...", t.chars().take(QUOTE).collect::<String>())
    }
}

impl std::str::FromStr for Arch {
    type Err = ArchError;
    fn from_str(s: &str) -> Result<Self, ArchError> {
        let mut layers = Vec::new();
        for (index, (start, text)) in split_top_level(s).into_iter().enumerate() {
            if text.trim().is_empty() && index == 0 && s.trim().is_empty() {
                return Err(ArchError::Empty);
            }
            layers.push(parse_layer(index, start, text)?);
        }
        if layers.is_empty() {
            return Err(ArchError::Empty);
        }
        Ok(Arch { layers })
    }
}

impl Arch {
    /// An arch from layers built in code.
    ///
    /// # Errors
    /// [`ArchError::Empty`] for no layers.
    pub fn new(layers: Vec<Layer>) -> Result<Self, ArchError> {
        if layers.is_empty() {
            return Err(ArchError::Empty);
        }
        Ok(Arch { layers })
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The shape of one example before the first layer and after each layer (so
    /// `layers().len() + 1` shapes). `input` is one example's shape without the batch axis:
    /// `[C, H, W]` for an image, `[T]` for T token ids, `[T, F]` for T vectors of F values,
    /// `[F]` for a vector.
    ///
    /// ```
    /// use backprop::nn::Arch;
    /// let lenet: Arch = "Conv2d(1, 6, 5, padding=2), ReLU(), MaxPool2d(2), Conv2d(6, 16, 5), \
    ///     ReLU(), MaxPool2d(2), Flatten(), Linear(400, 120)".parse().unwrap();
    /// let shapes = lenet.shapes(&[1, 28, 28]).unwrap();
    /// assert_eq!(shapes[3], vec![6, 14, 14]);
    /// assert_eq!(shapes[7], vec![400]);
    /// let bad: Arch = "Conv2d(1, 6, 5, padding=2), MaxPool2d(2), Flatten(), Linear(399, 120)"
    ///     .parse().unwrap();
    /// let e = bad.shapes(&[1, 28, 28]).unwrap_err().to_string();
    /// assert!(e.contains("399") && e.contains("1176"), "{e}");
    /// ```
    ///
    /// # Errors
    /// [`ArchError::Shape`] naming the first layer that does not fit, with both sizes.
    pub fn shapes(&self, input: &[usize]) -> Result<Vec<Vec<usize>>, ArchError> {
        let mut shapes = vec![input.to_vec()];
        for (index, layer) in self.layers.iter().enumerate() {
            let given = shapes.last().expect("starts with the input");
            // Token ids are the model's input, checked there: an Embedding reads nothing else.
            let embedding_inside = index > 0 && matches!(layer, Layer::Embedding { .. });
            let next = (if embedding_inside {
                Err(
                    "token ids, which only the model's input holds: an Embedding comes first"
                        .to_string(),
                )
            } else {
                layer.output_shape(given)
            })
            .map_err(|expected| ArchError::Shape {
                index,
                layer: layer.to_string(),
                expected,
                given: describe(given),
            })?;
            shapes.push(next);
        }
        Ok(shapes)
    }

    /// Every parameter of the model, in `nn.Sequential`'s order and names.
    ///
    /// ```
    /// use backprop::nn::Arch;
    /// let arch: Arch = "Embedding(65, 64), LSTM(64, 128, num_layers=2), Linear(128, 65)"
    ///     .parse().unwrap();
    /// let names: Vec<String> = arch.params().into_iter().map(|p| p.name).collect();
    /// assert_eq!(&names[..3], ["0.weight", "1.weight_ih_l0", "1.weight_hh_l0"]);
    /// assert_eq!(names[5], "1.weight_ih_l1");
    /// assert_eq!(names.last().unwrap(), "2.bias");
    /// ```
    pub fn params(&self) -> Vec<ParamSpec> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| l.params(i))
            .collect()
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.layers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{l}")?;
        }
        Ok(())
    }
}

fn describe(shape: &[usize]) -> String {
    match shape {
        [] => "a scalar".to_string(),
        [n] => format!("{n} values"),
        _ => format!(
            "shape {}",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x")
        ),
    }
}

/// floor((size + 2 padding - kernel) / stride) + 1, or None when the window does not fit.
fn window_out(size: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = size.checked_add(padding.checked_mul(2)?)?;
    padded.checked_sub(kernel).map(|r| r / stride + 1)
}

impl Layer {
    /// The shape of one example after this layer, or what the layer takes.
    fn output_shape(&self, x: &[usize]) -> Result<Vec<usize>, String> {
        let spatial = |kernel: (usize, usize),
                       stride: (usize, usize),
                       padding: (usize, usize),
                       c_out: usize| match x {
            [_, h, w] => match (
                window_out(*h, kernel.0, stride.0, padding.0),
                window_out(*w, kernel.1, stride.1, padding.1),
            ) {
                (Some(oh), Some(ow)) => Ok(vec![c_out, oh, ow]),
                _ => Err(format!(
                    "an image of at least {}x{} (after padding)",
                    kernel.0, kernel.1
                )),
            },
            _ => Err("a C x H x W image".to_string()),
        };
        match *self {
            Layer::Linear {
                in_features,
                out_features,
                ..
            } => match x.split_last() {
                Some((&last, rest)) if last == in_features => {
                    let mut s = rest.to_vec();
                    s.push(out_features);
                    Ok(s)
                }
                _ => Err(format!("{in_features} values on its last axis")),
            },
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                ..
            } => match x {
                [c, _, _] if *c != in_channels => Err(format!("{in_channels} channels")),
                _ => spatial(kernel, stride, padding, out_channels),
            },
            Layer::MaxPool2d { kernel, stride } | Layer::AvgPool2d { kernel, stride } => {
                let c = x.first().copied().unwrap_or(0);
                spatial(kernel, stride, (0, 0), c)
            }
            Layer::Flatten => Ok(vec![x.iter().product()]),
            Layer::Relu
            | Layer::Sigmoid
            | Layer::Tanh
            | Layer::LeakyRelu { .. }
            | Layer::Softmax
            | Layer::Dropout { .. } => Ok(x.to_vec()),
            Layer::Embedding { dim, .. } => match x {
                [t] => Ok(vec![*t, dim]),
                _ => Err("a sequence of token ids (shape T)".to_string()),
            },
            Layer::Rnn { input, hidden, .. } | Layer::Lstm { input, hidden, .. } => match x {
                [t, f] if *f == input => Ok(vec![*t, hidden]),
                _ => Err(format!(
                    "a sequence of vectors of {input} values (shape T x {input})"
                )),
            },
        }
    }

    /// The parameters of the layer at position `i` of a sequence.
    fn params(&self, i: usize) -> Vec<ParamSpec> {
        let p = |name: String, shape: Vec<usize>, init| ParamSpec { name, shape, init };
        let uniform = |fan_in: usize| ParamInit::Uniform(1.0 / (fan_in as f64).sqrt());
        match *self {
            Layer::Linear {
                in_features,
                out_features,
                bias,
            } => {
                let mut v = vec![p(
                    format!("{i}.weight"),
                    vec![out_features, in_features],
                    uniform(in_features),
                )];
                if bias {
                    v.push(p(
                        format!("{i}.bias"),
                        vec![out_features],
                        uniform(in_features),
                    ));
                }
                v
            }
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel,
                bias,
                ..
            } => {
                let fan_in = in_channels * kernel.0 * kernel.1;
                let mut v = vec![p(
                    format!("{i}.weight"),
                    vec![out_channels, in_channels, kernel.0, kernel.1],
                    uniform(fan_in),
                )];
                if bias {
                    v.push(p(format!("{i}.bias"), vec![out_channels], uniform(fan_in)));
                }
                v
            }
            Layer::Embedding { num, dim } => {
                vec![p(format!("{i}.weight"), vec![num, dim], ParamInit::Normal)]
            }
            Layer::Rnn {
                input,
                hidden,
                layers,
            }
            | Layer::Lstm {
                input,
                hidden,
                layers,
            } => {
                let gates = if matches!(self, Layer::Lstm { .. }) {
                    4
                } else {
                    1
                };
                let init = uniform(hidden);
                (0..layers)
                    .flat_map(|l| {
                        let fan = if l == 0 { input } else { hidden };
                        [
                            p(
                                format!("{i}.weight_ih_l{l}"),
                                vec![gates * hidden, fan],
                                init,
                            ),
                            p(
                                format!("{i}.weight_hh_l{l}"),
                                vec![gates * hidden, hidden],
                                init,
                            ),
                            p(format!("{i}.bias_ih_l{l}"), vec![gates * hidden], init),
                            p(format!("{i}.bias_hh_l{l}"), vec![gates * hidden], init),
                        ]
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

fn pair(p: (usize, usize)) -> String {
    if p.0 == p.1 {
        p.0.to_string()
    } else {
        format!("({}, {})", p.0, p.1)
    }
}

impl fmt::Display for Layer {
    /// PyTorch's constructor call, with the arguments that differ from the defaults.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Layer::Linear {
                in_features,
                out_features,
                bias,
            } => {
                write!(f, "Linear({in_features}, {out_features}")?;
                if !bias {
                    f.write_str(", bias=False")?;
                }
                f.write_str(")")
            }
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                bias,
            } => {
                write!(f, "Conv2d({in_channels}, {out_channels}, {}", pair(kernel))?;
                if stride != (1, 1) {
                    write!(f, ", stride={}", pair(stride))?;
                }
                if padding != (0, 0) {
                    write!(f, ", padding={}", pair(padding))?;
                }
                if !bias {
                    f.write_str(", bias=False")?;
                }
                f.write_str(")")
            }
            Layer::MaxPool2d { kernel, stride } | Layer::AvgPool2d { kernel, stride } => {
                let name = if matches!(self, Layer::MaxPool2d { .. }) {
                    "MaxPool2d"
                } else {
                    "AvgPool2d"
                };
                write!(f, "{name}({}", pair(kernel))?;
                if stride != kernel {
                    write!(f, ", stride={}", pair(stride))?;
                }
                f.write_str(")")
            }
            Layer::Flatten => f.write_str("Flatten()"),
            Layer::Relu => f.write_str("ReLU()"),
            Layer::Sigmoid => f.write_str("Sigmoid()"),
            Layer::Tanh => f.write_str("Tanh()"),
            Layer::LeakyRelu { slope } => write!(f, "LeakyReLU({slope:?})"),
            Layer::Softmax => f.write_str("Softmax(dim=-1)"),
            Layer::Embedding { num, dim } => write!(f, "Embedding({num}, {dim})"),
            Layer::Rnn {
                input,
                hidden,
                layers,
            }
            | Layer::Lstm {
                input,
                hidden,
                layers,
            } => {
                let name = if matches!(self, Layer::Lstm { .. }) {
                    "LSTM"
                } else {
                    "RNN"
                };
                write!(f, "{name}({input}, {hidden}")?;
                if layers != 1 {
                    write!(f, ", num_layers={layers}")?;
                }
                f.write_str(")")
            }
            Layer::Dropout { p } => write!(f, "Dropout({p:?})"),
        }
    }
}

/// Splits at commas outside parentheses: each piece with its byte offset.
fn split_top_level(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push((start, &s[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push((start, &s[start..]));
    out
}

/// An argument's value as written.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    None,
    Pair(i64, i64),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::Str(s) => write!(f, "'{s}'"),
            Value::None => f.write_str("None"),
            Value::Pair(a, b) => write!(f, "({a}, {b})"),
        }
    }
}

/// One argument: its keyword (if any), its value, and its column.
struct Arg {
    key: Option<String>,
    value: Value,
    column: usize,
}

/// Parses `Name(args)` at byte offset `start` of the whole string.
fn parse_layer(index: usize, start: usize, text: &str) -> Result<Layer, ArchError> {
    let lead = text.len() - text.trim_start().len();
    let column_of = |offset: usize| start + offset + 1;
    let err = |offset: usize, message: String| ArchError::Syntax {
        index,
        layer: quote(text),
        column: column_of(offset),
        message,
    };
    let body = text.trim();
    if body.is_empty() {
        return Err(err(lead, "empty layer (two commas in a row?)".into()));
    }
    let open = body
        .find('(')
        .ok_or_else(|| err(lead, "expected a constructor call such as ReLU()".into()))?;
    if !body.ends_with(')') {
        return Err(err(
            lead + body.len(),
            "expected ')' at the end of the layer".into(),
        ));
    }
    let name = body[..open].trim();
    let inner = &body[open + 1..body.len() - 1];
    let inner_offset = lead + open + 1;
    let mut args = Vec::new();
    if !inner.trim().is_empty() {
        for (at, piece) in split_top_level(inner) {
            let offset = inner_offset + at;
            let piece_lead = piece.len() - piece.trim_start().len();
            let p = piece.trim();
            if p.is_empty() {
                return Err(err(offset, "empty argument".into()));
            }
            let (key, value_text) = match p.find('=') {
                Some(eq) => (Some(p[..eq].trim().to_string()), p[eq + 1..].trim()),
                None => (None, p),
            };
            let value = parse_value(value_text).ok_or_else(|| {
                err(
                    offset + piece_lead,
                    format!("'{}' is not a value", quote(value_text)),
                )
            })?;
            args.push(Arg {
                key,
                value,
                column: column_of(offset + piece_lead),
            });
        }
    }
    let sig = Signature::of(name).ok_or_else(|| {
        err(
            lead,
            format!(
                "unknown layer '{}' (known: {})",
                quote(name),
                Signature::NAMES.join(", ")
            ),
        )
    })?;
    let mut bound = sig
        .bind(&args)
        .map_err(|(column, message)| ArchError::Syntax {
            index,
            layer: quote(text),
            column,
            message: format!("{name}: {message}"),
        })?;
    sig.build(&mut bound)
        .map_err(|(column, message)| ArchError::Syntax {
            index,
            layer: quote(text),
            column: column.unwrap_or(column_of(lead)),
            message: format!("{name}: {message}"),
        })
}

fn parse_value(t: &str) -> Option<Value> {
    match t {
        "True" => return Some(Value::Bool(true)),
        "False" => return Some(Value::Bool(false)),
        "None" => return Some(Value::None),
        _ => {}
    }
    if let Some(inner) = t.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
        return match parts.as_slice() {
            [a, ""] | [a] => Some(Value::Int(a.parse().ok()?)),
            [a, b] => Some(Value::Pair(a.parse().ok()?, b.parse().ok()?)),
            _ => None,
        };
    }
    if (t.starts_with('\'') && t.ends_with('\'') || t.starts_with('"') && t.ends_with('"'))
        && t.len() >= 2
    {
        return Some(Value::Str(t[1..t.len() - 1].to_string()));
    }
    if let Ok(i) = t.parse::<i64>() {
        return Some(Value::Int(i));
    }
    t.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(Value::Float)
}

/// A constructor's parameters in PyTorch's order, with their defaults.
struct Signature {
    name: &'static str,
    params: &'static [(&'static str, Option<Value0>)],
}

/// A default value (a `const`-friendly mirror of [`Value`]).
#[derive(Clone, Copy)]
enum Value0 {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'static str),
    None,
}

impl From<Value0> for Value {
    fn from(v: Value0) -> Value {
        match v {
            Value0::Int(i) => Value::Int(i),
            Value0::Float(x) => Value::Float(x),
            Value0::Bool(b) => Value::Bool(b),
            Value0::Str(s) => Value::Str(s.to_string()),
            Value0::None => Value::None,
        }
    }
}

use Value0 as D;

const SIGNATURES: &[Signature] = &[
    Signature {
        name: "Linear",
        params: &[
            ("in_features", None),
            ("out_features", None),
            ("bias", Some(D::Bool(true))),
        ],
    },
    Signature {
        name: "Conv2d",
        params: &[
            ("in_channels", None),
            ("out_channels", None),
            ("kernel_size", None),
            ("stride", Some(D::Int(1))),
            ("padding", Some(D::Int(0))),
            ("dilation", Some(D::Int(1))),
            ("groups", Some(D::Int(1))),
            ("bias", Some(D::Bool(true))),
            ("padding_mode", Some(D::Str("zeros"))),
        ],
    },
    Signature {
        name: "MaxPool2d",
        params: &[
            ("kernel_size", None),
            ("stride", Some(D::None)),
            ("padding", Some(D::Int(0))),
            ("dilation", Some(D::Int(1))),
            ("return_indices", Some(D::Bool(false))),
            ("ceil_mode", Some(D::Bool(false))),
        ],
    },
    Signature {
        name: "AvgPool2d",
        params: &[
            ("kernel_size", None),
            ("stride", Some(D::None)),
            ("padding", Some(D::Int(0))),
            ("ceil_mode", Some(D::Bool(false))),
            ("count_include_pad", Some(D::Bool(true))),
            ("divisor_override", Some(D::None)),
        ],
    },
    Signature {
        name: "Flatten",
        params: &[
            ("start_dim", Some(D::Int(1))),
            ("end_dim", Some(D::Int(-1))),
        ],
    },
    Signature {
        name: "ReLU",
        params: &[("inplace", Some(D::Bool(false)))],
    },
    Signature {
        name: "Sigmoid",
        params: &[],
    },
    Signature {
        name: "Tanh",
        params: &[],
    },
    Signature {
        name: "LeakyReLU",
        params: &[
            ("negative_slope", Some(D::Float(0.01))),
            ("inplace", Some(D::Bool(false))),
        ],
    },
    Signature {
        name: "Softmax",
        params: &[("dim", Some(D::Int(-1)))],
    },
    Signature {
        name: "Embedding",
        params: &[
            ("num_embeddings", None),
            ("embedding_dim", None),
            ("padding_idx", Some(D::None)),
        ],
    },
    Signature {
        name: "RNN",
        params: &[
            ("input_size", None),
            ("hidden_size", None),
            ("num_layers", Some(D::Int(1))),
            ("nonlinearity", Some(D::Str("tanh"))),
            ("bias", Some(D::Bool(true))),
            ("batch_first", Some(D::Bool(true))),
            ("dropout", Some(D::Float(0.0))),
            ("bidirectional", Some(D::Bool(false))),
        ],
    },
    Signature {
        name: "LSTM",
        params: &[
            ("input_size", None),
            ("hidden_size", None),
            ("num_layers", Some(D::Int(1))),
            ("bias", Some(D::Bool(true))),
            ("batch_first", Some(D::Bool(true))),
            ("dropout", Some(D::Float(0.0))),
            ("bidirectional", Some(D::Bool(false))),
            ("proj_size", Some(D::Int(0))),
        ],
    },
    Signature {
        name: "Dropout",
        params: &[
            ("p", Some(D::Float(0.5))),
            ("inplace", Some(D::Bool(false))),
        ],
    },
];

/// The arguments bound to a signature's parameters: value and column (None: the default).
struct Bound {
    values: Vec<(&'static str, Value, Option<usize>)>,
}

type ArgError = (usize, String);
type BuildError = (Option<usize>, String);

/// The largest size a layer argument may have: far beyond any model that fits in memory,
/// small enough that products of a few sizes cannot overflow.
pub const MAX_SIZE: usize = 1 << 24;

impl Bound {
    fn get(&self, name: &str) -> (&Value, Option<usize>) {
        let (_, v, c) = self
            .values
            .iter()
            .find(|(n, _, _)| *n == name)
            .expect("a parameter of the signature");
        (v, *c)
    }

    /// A size: a whole number from 1 to [`MAX_SIZE`].
    fn size(&self, name: &str) -> Result<usize, BuildError> {
        match self.get(name) {
            (Value::Int(v), _) if *v >= 1 && (*v as u64) <= MAX_SIZE as u64 => Ok(*v as usize),
            (v, c) => Err((
                c,
                format!("{name} must be a whole number from 1 to {MAX_SIZE}, not {v}"),
            )),
        }
    }

    /// A size or a pair of sizes (PyTorch's `_pair`), each at least `min`.
    fn pair(&self, name: &str, min: i64) -> Result<(usize, usize), BuildError> {
        let (v, c) = self.get(name);
        let (a, b) = match v {
            Value::Int(a) => (*a, *a),
            Value::Pair(a, b) => (*a, *b),
            _ => return Err((c, format!("{name} must be a number or a pair, not {v}"))),
        };
        let ok = |x: i64| x >= min && x as u64 <= MAX_SIZE as u64;
        if ok(a) && ok(b) {
            Ok((a as usize, b as usize))
        } else {
            Err((c, format!("{name} must be at least {min}, not {v}")))
        }
    }

    fn boolean(&self, name: &str) -> Result<bool, BuildError> {
        match self.get(name) {
            (Value::Bool(b), _) => Ok(*b),
            (v, c) => Err((c, format!("{name} must be True or False, not {v}"))),
        }
    }

    fn number(&self, name: &str) -> Result<f64, BuildError> {
        match self.get(name) {
            (Value::Int(i), _) => Ok(*i as f64),
            (Value::Float(x), _) => Ok(*x),
            (v, c) => Err((c, format!("{name} must be a number, not {v}"))),
        }
    }

    /// Refuses an argument this project does not implement unless it has `expected`'s value.
    fn only(&self, name: &str, expected: Value, why: &str) -> Result<(), BuildError> {
        let (v, c) = self.get(name);
        let same = match (v, &expected) {
            (Value::Int(a), Value::Pair(x, y)) => a == x && a == y,
            (Value::Pair(a, b), Value::Int(x)) => a == x && b == x,
            (Value::Int(a), Value::Float(x)) => (*a as f64) == *x,
            (a, b) => a == b,
        };
        if same {
            Ok(())
        } else {
            Err((c, format!("{name}={v} is not supported ({why})")))
        }
    }
}

impl Signature {
    const NAMES: [&'static str; 14] = [
        "Linear",
        "Conv2d",
        "MaxPool2d",
        "AvgPool2d",
        "Flatten",
        "ReLU",
        "Sigmoid",
        "Tanh",
        "LeakyReLU",
        "Softmax",
        "Embedding",
        "RNN",
        "LSTM",
        "Dropout",
    ];

    fn of(name: &str) -> Option<&'static Signature> {
        SIGNATURES.iter().find(|s| s.name == name)
    }

    /// Binds positional then keyword arguments as Python does; fills in defaults.
    fn bind(&self, args: &[Arg]) -> Result<Bound, ArgError> {
        let mut slots: Vec<Option<(Value, usize)>> = vec![None; self.params.len()];
        let mut seen_keyword = false;
        for (i, a) in args.iter().enumerate() {
            match &a.key {
                None => {
                    if seen_keyword {
                        return Err((a.column, "a positional argument after a keyword one".into()));
                    }
                    if i >= self.params.len() {
                        return Err((
                            a.column,
                            format!(
                                "takes at most {} arguments, got {}",
                                self.params.len(),
                                args.len()
                            ),
                        ));
                    }
                    slots[i] = Some((a.value.clone(), a.column));
                }
                Some(key) => {
                    seen_keyword = true;
                    let at = self
                        .params
                        .iter()
                        .position(|(n, _)| n == key)
                        .ok_or_else(|| {
                            let names: Vec<&str> = self.params.iter().map(|(n, _)| *n).collect();
                            (
                                a.column,
                                format!(
                                    "no argument '{}' (it takes {})",
                                    quote(key),
                                    if names.is_empty() {
                                        "none".to_string()
                                    } else {
                                        names.join(", ")
                                    }
                                ),
                            )
                        })?;
                    if slots[at].is_some() {
                        return Err((a.column, format!("'{key}' given twice")));
                    }
                    slots[at] = Some((a.value.clone(), a.column));
                }
            }
        }
        let mut values = Vec::with_capacity(self.params.len());
        for ((name, default), slot) in self.params.iter().zip(slots) {
            match (slot, default) {
                (Some((v, c)), _) => values.push((*name, v, Some(c))),
                (None, Some(d)) => values.push((*name, Value::from(*d), None)),
                (None, None) => {
                    let column = args.last().map_or(0, |a| a.column);
                    return Err((column, format!("missing argument '{name}'")));
                }
            }
        }
        Ok(Bound { values })
    }

    fn build(&self, b: &mut Bound) -> Result<Layer, BuildError> {
        Ok(match self.name {
            "Linear" => Layer::Linear {
                in_features: b.size("in_features")?,
                out_features: b.size("out_features")?,
                bias: b.boolean("bias")?,
            },
            "Conv2d" => {
                b.only("dilation", Value::Int(1), "dilation 1 only")?;
                b.only("groups", Value::Int(1), "groups 1 only")?;
                b.only(
                    "padding_mode",
                    Value::Str("zeros".into()),
                    "zero padding only",
                )?;
                Layer::Conv2d {
                    in_channels: b.size("in_channels")?,
                    out_channels: b.size("out_channels")?,
                    kernel: b.pair("kernel_size", 1)?,
                    stride: b.pair("stride", 1)?,
                    padding: b.pair("padding", 0)?,
                    bias: b.boolean("bias")?,
                }
            }
            "MaxPool2d" | "AvgPool2d" => {
                b.only("padding", Value::Int(0), "no padding")?;
                b.only("ceil_mode", Value::Bool(false), "floor mode only")?;
                if self.name == "MaxPool2d" {
                    b.only("dilation", Value::Int(1), "dilation 1 only")?;
                    b.only(
                        "return_indices",
                        Value::Bool(false),
                        "a layer returns one tensor",
                    )?;
                } else {
                    b.only("count_include_pad", Value::Bool(true), "no padding")?;
                    b.only("divisor_override", Value::None, "the window's size divides")?;
                }
                let kernel = b.pair("kernel_size", 1)?;
                let stride = match b.get("stride").0 {
                    Value::None => kernel,
                    _ => b.pair("stride", 1)?,
                };
                if self.name == "MaxPool2d" {
                    Layer::MaxPool2d { kernel, stride }
                } else {
                    Layer::AvgPool2d { kernel, stride }
                }
            }
            "Flatten" => {
                b.only(
                    "start_dim",
                    Value::Int(1),
                    "every axis of an example is flattened",
                )?;
                b.only(
                    "end_dim",
                    Value::Int(-1),
                    "every axis of an example is flattened",
                )?;
                Layer::Flatten
            }
            "ReLU" => Layer::Relu,
            "Sigmoid" => Layer::Sigmoid,
            "Tanh" => Layer::Tanh,
            "LeakyReLU" => {
                let slope = b.number("negative_slope")?;
                if !slope.is_finite() {
                    return Err((
                        b.get("negative_slope").1,
                        "negative_slope must be finite".into(),
                    ));
                }
                Layer::LeakyRelu { slope }
            }
            "Softmax" => {
                b.only("dim", Value::Int(-1), "softmax over the last axis: dim=-1")?;
                Layer::Softmax
            }
            "Embedding" => {
                b.only("padding_idx", Value::None, "no padding index")?;
                Layer::Embedding {
                    num: b.size("num_embeddings")?,
                    dim: b.size("embedding_dim")?,
                }
            }
            "RNN" | "LSTM" => {
                b.only(
                    "bias",
                    Value::Bool(true),
                    "both biases are kept, as PyTorch's default",
                )?;
                b.only(
                    "batch_first",
                    Value::Bool(true),
                    "sequences are batch-first",
                )?;
                b.only("dropout", Value::Float(0.0), "use a Dropout() layer")?;
                b.only("bidirectional", Value::Bool(false), "one direction")?;
                if self.name == "RNN" {
                    b.only("nonlinearity", Value::Str("tanh".into()), "tanh only")?;
                } else {
                    b.only("proj_size", Value::Int(0), "no projection")?;
                }
                let (input, hidden, layers) = (
                    b.size("input_size")?,
                    b.size("hidden_size")?,
                    b.size("num_layers")?,
                );
                if self.name == "RNN" {
                    Layer::Rnn {
                        input,
                        hidden,
                        layers,
                    }
                } else {
                    Layer::Lstm {
                        input,
                        hidden,
                        layers,
                    }
                }
            }
            "Dropout" => {
                let p = b.number("p")?;
                if !(0.0..1.0).contains(&p) {
                    return Err((b.get("p").1, format!("p must be in [0, 1), not {p}")));
                }
                Layer::Dropout { p }
            }
            other => unreachable!("a signature without a builder: {other}"),
        })
    }
}
