//! What `backprop diff` reports about a program: values, each mode's derivatives and
//! work, and the paths; and its JSON.

use std::fmt;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{Program, ProgramError, FORWARD_LIMIT, PATH_STEP_LIMIT};
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
    /// Why forward mode did not run in [`Mode::Both`], if it was skipped.
    pub forward_skipped: Option<ForwardSkipped>,
}

/// Forward mode, skipped in [`Mode::Both`] because the program is too large for it: it makes
/// one pass over the graph per variable, so its time grows as variables × nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardSkipped {
    /// The number of variables (inputs and intermediate statements).
    pub variables: usize,
    /// The number of nodes on the graph.
    pub nodes: usize,
}

impl fmt::Display for ForwardSkipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "forward mode skipped: {} variables x {} graph nodes is over the limit of {} \
             (it makes one pass over the graph per variable)",
            self.variables, self.nodes, FORWARD_LIMIT
        )
    }
}

impl Analysis {
    /// Every derivative that is not a finite number, as `(mode, variable, value)`.
    ///
    /// ```
    /// use backprop::program::{Mode, Program};
    /// // d sqrt(u)/du = 1 / (2 sqrt(u)) is infinite at u = 0.
    /// let p = Program::compile("o = sqrt(a - 2)", &[("a".to_string(), 2.0)]).unwrap();
    /// let a = p.analyse(Mode::Reverse);
    /// assert_eq!(a.non_finite(), [("reverse", "a", f64::INFINITY)]);
    /// ```
    pub fn non_finite(&self) -> Vec<(&'static str, &str, f64)> {
        let modes = [("forward", &self.forward), ("reverse", &self.reverse)];
        modes
            .into_iter()
            .filter_map(|(mode, r)| r.as_ref().map(|r| (mode, r)))
            .flat_map(|(mode, r)| {
                r.gradient
                    .iter()
                    .filter(|(_, d)| !d.is_finite())
                    .map(move |(name, d)| (mode, name.as_str(), *d))
            })
            .collect()
    }
}

/// One path from a variable to the output, through every node between them: named ones by
/// their name, unnamed ones by their expression (see [`Tape::labels`](crate::graph::Tape::labels)).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedPath {
    /// The labels along the path, from the variable to the output.
    pub names: Vec<String>,
    /// `factors[k]` = the local derivative d `names[k+1]` / d `names[k]` (the sum of both
    /// when `names[k+1]` uses `names[k]` twice).
    pub factors: Vec<f64>,
    /// `edges[k]`: how many parallel edges step k merges (1, or 2 as in `x*x`).
    pub edges: Vec<u8>,
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
    /// mode(s), with each mode's work. In [`Mode::Both`], forward mode is skipped (see
    /// [`Analysis::forward_skipped`]) when variables × graph nodes exceeds [`FORWARD_LIMIT`]:
    /// it makes one pass over the graph per variable, where reverse mode makes one in all.
    pub fn analyse(&self, mode: Mode) -> Analysis {
        let out = self.output().node;
        let vars = self.variables();
        let nodes = self.tape.len();
        let too_large = (vars.len() as u128) * (nodes as u128) > u128::from(FORWARD_LIMIT);
        let forward_skipped = (mode == Mode::Both && too_large).then_some(ForwardSkipped {
            variables: vars.len(),
            nodes,
        });
        let forward = (mode != Mode::Reverse && forward_skipped.is_none()).then(|| {
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
            forward_skipped,
        }
    }

    /// For every variable, every path to the output through every node between (unnamed
    /// nodes labelled by their expression), parallel edges merged (see
    /// [`Path`](crate::graph::Path)). Counts first, in one pass, and refuses when there are
    /// more than `limit` paths in all, or more than [`PATH_STEP_LIMIT`] steps along them.
    ///
    /// ```
    /// use backprop::program::{figure_1_inputs, Program, FIGURE_1, PATH_LIMIT};
    /// let p = Program::compile(FIGURE_1, &figure_1_inputs()).unwrap();
    /// let paths = p.paths(PATH_LIMIT).unwrap();
    /// // do/da = 1 · 0.5 · 6 (a -> c -> (0.5*c) -> o) + 3 · 2.5 (a -> d -> o) = 10.5
    /// assert_eq!(paths[0].paths[0].names, ["a", "c", "(0.5*c)", "o"]);
    /// assert_eq!(paths[0].paths[0].factors, [1.0, 0.5, 6.0]);
    /// assert_eq!(paths[0].sum, 10.5);
    /// ```
    pub fn paths(&self, limit: u64) -> Result<Vec<VariablePaths>, ProgramError> {
        let out = self.output();
        let vars = self.variables();
        let totals = self.tape.path_totals(out.node);
        let at = |id: NodeId| totals.get(id.index()).copied().unwrap_or_default();
        let (paths, steps) = vars.iter().fold((0u64, 0u64), |(p, s), (_, id)| {
            let t = at(*id);
            (p.saturating_add(t.paths), s.saturating_add(t.steps))
        });
        if paths > limit {
            return Err(ProgramError::TooManyPaths {
                paths,
                variables: vars.len(),
                limit,
            });
        }
        if steps > PATH_STEP_LIMIT {
            return Err(ProgramError::TooManyPathSteps {
                paths,
                steps,
                limit: PATH_STEP_LIMIT,
            });
        }
        let labels = self.tape.labels();
        vars.into_iter()
            .map(|(name, id)| {
                if at(id).paths == 0 {
                    // Skip the count from `id`, a pass over the rest of the tape.
                    return Ok(VariablePaths {
                        name,
                        paths: Vec::new(),
                        sum: 0.0,
                    });
                }
                let raw =
                    self.tape
                        .paths(id, out.node, limit)
                        .map_err(|source| ProgramError::Paths {
                            name: name.clone(),
                            source,
                        })?;
                let paths: Vec<NamedPath> = raw
                    .into_iter()
                    .map(|p| {
                        let mut names: Vec<String> =
                            p.nodes.iter().map(|n| labels[n.index()].clone()).collect();
                        names[0].clone_from(&name);
                        if p.nodes.len() == 1 {
                            // The variable is the output itself (`o = c`): one path, no edge.
                            names.push(out.name.clone());
                            return NamedPath {
                                names,
                                factors: vec![1.0],
                                edges: vec![1],
                                product: p.product,
                            };
                        }
                        if let Some(last) = names.last_mut() {
                            last.clone_from(&out.name);
                        }
                        NamedPath {
                            names,
                            factors: p.partials,
                            edges: p.edges,
                            product: p.product,
                        }
                    })
                    .collect();
                let sum = paths.iter().map(|p| p.product).sum();
                Ok(VariablePaths { name, paths, sum })
            })
            .collect()
    }
}

/// A number for JSON: finite ones as numbers (full precision), the others as the strings
/// `"inf"`, `"-inf"` and `"nan"`, since JSON has no such numbers (serde_json would write
/// `null`, which reads as "missing").
struct Num(f64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_finite() {
            s.serialize_f64(self.0)
        } else {
            s.serialize_str(&crate::graph::format_number(self.0))
        }
    }
}

/// Serializes pairs as a JSON object, in their order.
struct OrderedMap<'a>(&'a [(String, f64)]);

impl Serialize for OrderedMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, &Num(*v))?;
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
/// that ran, and `"forward_skipped"` (the reason, as text) when forward mode was skipped.
/// Numbers that are not finite are the strings `"inf"`, `"-inf"`, `"nan"`.
///
/// ```
/// use backprop::program::{Mode, Program};
/// let p = Program::compile("o = sqrt(a - 2)", &[("a".to_string(), 2.0)]).unwrap();
/// let json = serde_json::to_string(&p.analyse(Mode::Reverse)).unwrap();
/// assert_eq!(json, r#"{"output":"o","value":0.0,"values":{"a":2.0,"o":0.0},"reverse":{"gradient":{"a":"inf"},"work":2}}"#);
/// ```
impl Serialize for Analysis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        self.entries(&mut map)?;
        map.end()
    }
}

impl Analysis {
    fn entries<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        map.serialize_entry("output", &self.output)?;
        map.serialize_entry("value", &Num(self.value))?;
        map.serialize_entry("values", &OrderedMap(&self.values))?;
        if let Some(f) = &self.forward {
            map.serialize_entry("forward", f)?;
        }
        if let Some(r) = &self.reverse {
            map.serialize_entry("reverse", r)?;
        }
        if let Some(skipped) = &self.forward_skipped {
            map.serialize_entry("forward_skipped", &skipped.to_string())?;
        }
        Ok(())
    }
}

/// An [`Analysis`] and the paths: the analysis's JSON with one more key, `"paths"`.
///
/// ```
/// use backprop::program::{Mode, Program, WithPaths, PATH_LIMIT};
/// let p = Program::compile("y = x*x", &[("x".to_string(), 3.0)]).unwrap();
/// let (a, paths) = (p.analyse(Mode::Reverse), p.paths(PATH_LIMIT).unwrap());
/// let json = serde_json::to_string(&WithPaths(&a, &paths)).unwrap();
/// assert!(json.ends_with(r#""paths":[{"variable":"x","sum":6.0,"paths":[{"nodes":["x","y"],"factors":[6.0],"edges":[2],"product":6.0}]}]}"#));
/// ```
pub struct WithPaths<'a>(pub &'a Analysis, pub &'a [VariablePaths]);

impl Serialize for WithPaths<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        self.0.entries(&mut map)?;
        map.serialize_entry("paths", self.1)?;
        map.end()
    }
}

/// `{"variable", "sum", "paths": [{"nodes", "factors", "edges", "product"}, ...]}`.
impl Serialize for VariablePaths {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("variable", &self.name)?;
        map.serialize_entry("sum", &Num(self.sum))?;
        let paths: Vec<PathJson<'_>> = self.paths.iter().map(PathJson).collect();
        map.serialize_entry("paths", &paths)?;
        map.end()
    }
}

struct PathJson<'a>(&'a NamedPath);

impl Serialize for PathJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("nodes", &p.names)?;
        let factors: Vec<Num> = p.factors.iter().map(|&f| Num(f)).collect();
        map.serialize_entry("factors", &factors)?;
        map.serialize_entry("edges", &p.edges)?;
        map.serialize_entry("product", &Num(p.product))?;
        map.end()
    }
}
