//! What `backprop diff` reports about a program: values, each mode's derivatives and
//! work, and the paths; and its JSON.

use std::collections::HashMap;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{Program, ProgramError};
use crate::graph::NodeId;

/// Which differentiation modes to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward mode only: one pass per variable.
    Forward,
    /// Reverse mode only: one pass from the output.
    Reverse,
    /// Both, to compare.
    Both,
}

/// The result of one mode: d(output)/d(variable) for each input and named intermediate, and
/// the local-derivative multiply-adds it took.
#[derive(Clone, Debug, PartialEq)]
pub struct ModeReport {
    /// (name, derivative of the output with respect to it), inputs first, in program order.
    pub gradient: Vec<(String, f64)>,
    /// Local-derivative multiply-adds performed.
    pub work: u64,
}

/// Everything `backprop diff` reports; serializes to the JSON of `--json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// The output's name.
    pub output: String,
    /// The output's value.
    pub value: f64,
    /// Every named value: inputs, then statements, in program order.
    pub values: Vec<(String, f64)>,
    /// Forward mode's result, if it ran.
    pub forward: Option<ModeReport>,
    /// Reverse mode's result, if it ran.
    pub reverse: Option<ModeReport>,
}

/// One path from a variable to the output, through named nodes; the unnamed nodes between
/// two names are folded into one factor.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedPath {
    /// The names along the path, from the variable to the output.
    pub names: Vec<String>,
    /// `factors[k]` = the product of local derivatives from `names[k]` to `names[k+1]`.
    pub factors: Vec<f64>,
    /// The product of all factors.
    pub product: f64,
}

/// All paths from one variable to the output; their products sum to the derivative.
#[derive(Clone, Debug, PartialEq)]
pub struct VariablePaths {
    /// The variable.
    pub name: String,
    /// Its paths.
    pub paths: Vec<NamedPath>,
    /// The sum of the paths' products.
    pub sum: f64,
}

impl Program {
    /// Values and derivatives of the output with respect to every variable, by the chosen
    /// mode(s), with each mode's work.
    pub fn analyse(&self, mode: Mode) -> Analysis {
        let out = self.output().node;
        let vars = self.variables();
        let forward = (mode != Mode::Reverse).then(|| {
            let mut work = 0;
            let gradient = vars
                .iter()
                .map(|(name, id)| {
                    let t = self.tape.forward_mode(*id);
                    work += t.work();
                    (name.clone(), t[out])
                })
                .collect();
            ModeReport { gradient, work }
        });
        let reverse = (mode != Mode::Forward).then(|| {
            let adjoints = self.backward();
            ModeReport {
                gradient: vars
                    .iter()
                    .map(|(n, id)| (n.clone(), adjoints[*id]))
                    .collect(),
                work: adjoints.work(),
            }
        });
        Analysis {
            output: self.output().name.clone(),
            value: self.tape.value(out),
            values: self.values(),
            forward,
            reverse,
        }
    }

    /// For every variable, every path to the output (named nodes only; the unnamed nodes in
    /// between are folded into the factors). Refuses above `limit` paths per variable.
    ///
    /// ```
    /// use backprop::program::{figure_1_inputs, Program, FIGURE_1, PATH_LIMIT};
    /// let p = Program::compile(FIGURE_1, &figure_1_inputs()).unwrap();
    /// let paths = p.paths(PATH_LIMIT).unwrap();
    /// // do/da = 1 · 3 (a -> c -> o) + 3 · 2.5 (a -> d -> o) = 10.5
    /// assert_eq!(paths[0].paths[0].names, ["a", "c", "o"]);
    /// assert_eq!(paths[0].paths[0].factors, [1.0, 3.0]);
    /// assert_eq!(paths[0].sum, 10.5);
    /// ```
    pub fn paths(&self, limit: u64) -> Result<Vec<VariablePaths>, ProgramError> {
        let out = self.output();
        let mut names: HashMap<NodeId, &str> = HashMap::new();
        for (n, id) in self.inputs.iter().map(|(n, id)| (n, *id)) {
            names.entry(id).or_insert(n);
        }
        for s in &self.statements {
            names.entry(s.node).or_insert(&s.name);
        }
        self.variables()
            .into_iter()
            .map(|(name, id)| {
                let raw =
                    self.tape
                        .paths(id, out.node, limit)
                        .map_err(|source| ProgramError::Paths {
                            name: name.clone(),
                            source,
                        })?;
                let paths: Vec<NamedPath> = raw
                    .iter()
                    .map(|p| {
                        let mut path = NamedPath {
                            names: vec![name.clone()],
                            factors: Vec::new(),
                            product: p.product,
                        };
                        if p.nodes.len() == 1 {
                            // The variable is the output itself (`o = c`): one path, no edge.
                            path.names.push(out.name.clone());
                            path.factors.push(1.0);
                            return path;
                        }
                        let mut factor = 1.0;
                        let last = p.nodes.len() - 1;
                        for (k, node) in p.nodes.iter().enumerate().skip(1) {
                            factor *= p.partials[k - 1];
                            let label = if k == last {
                                Some(out.name.as_str())
                            } else {
                                names.get(node).copied()
                            };
                            if let Some(label) = label {
                                path.names.push(label.to_string());
                                path.factors.push(factor);
                                factor = 1.0;
                            }
                        }
                        path
                    })
                    .collect();
                let sum = paths.iter().map(|p| p.product).sum();
                Ok(VariablePaths { name, paths, sum })
            })
            .collect()
    }
}

/// Serializes pairs as a JSON object, in their order.
struct OrderedMap<'a>(&'a [(String, f64)]);

impl Serialize for OrderedMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for ModeReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("gradient", &OrderedMap(&self.gradient))?;
        map.serialize_entry("work", &self.work)?;
        map.end()
    }
}

/// `{"output", "value", "values", "forward", "reverse"}`, the last two only for the modes
/// that ran.
impl Serialize for Analysis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("output", &self.output)?;
        map.serialize_entry("value", &self.value)?;
        map.serialize_entry("values", &OrderedMap(&self.values))?;
        if let Some(f) = &self.forward {
            map.serialize_entry("forward", f)?;
        }
        if let Some(r) = &self.reverse {
            map.serialize_entry("reverse", r)?;
        }
        map.end()
    }
}
