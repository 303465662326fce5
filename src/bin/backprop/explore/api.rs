//! The JSON answers of `explore`: `/api/diff` (exactly `diff --json --paths`), `/api/graph`
//! (the tape drawn and each mode's steps, one multiply-add at a time) and `/api/network`
//! (`demo --network --json` and the names of its steps).
//!
//! Each handler is a function from the request body to a status and a body, so that the
//! tests call it without a server.

use backprop::graph::{NodeId, Op, Tape};
use backprop::program::{parse_bindings, Mode};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::diff::{differentiate, json as diff_json, Differentiated};

/// An answer: the HTTP status and a JSON body.
pub type Answer = (u16, String);

/// A refusal: `{"error": message}`, with the line and column where the message names one
/// (`program: line 1, column 11: ...`), for the page to point at.
pub fn error(status: u16, message: &str) -> Answer {
    let mut body = json!({ "error": message });
    if let Some((line, column)) = position(message) {
        body["line"] = json!(line);
        body["column"] = json!(column);
    }
    (status, body.to_string())
}

/// `line L, column C` in a message.
fn position(message: &str) -> Option<(usize, usize)> {
    let rest = &message[message.find("line ")? + 5..];
    let (line, rest) = rest.split_once(", column ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.parse().ok()?, column.parse().ok()?))
}

/// The largest graph `/api/graph` draws: more nodes would not be readable on a page, and
/// their steps would be a large answer.
pub const MAX_DRAWN_NODES: usize = 300;

/// The body of `/api/diff` and `/api/graph`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffRequest {
    program: String,
    #[serde(default)]
    at: Bindings,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default = "yes")]
    paths: bool,
}

fn yes() -> bool {
    true
}

/// The point: `{"a": 2, "b": 3}` in the order given (the order of unused inputs, as in
/// `--at`), or the text of `--at`, `"a=2,b=3"`.
#[derive(Default)]
struct Bindings(String);

impl<'de> Deserialize<'de> for Bindings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Bindings;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of numbers such as {\"a\": 2, \"b\": 3}, or \"a=2,b=3\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Bindings, E> {
                Ok(Bindings(s.to_string()))
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Bindings, M::Error> {
                let mut parts = Vec::new();
                while let Some((name, value)) = m.next_entry::<String, f64>()? {
                    if name.contains([',', '=']) {
                        return Err(serde::de::Error::custom(format!(
                            "'{name}' is not a valid identifier"
                        )));
                    }
                    // Display of f64 reads back exactly.
                    parts.push(format!("{name}={value}"));
                }
                Ok(Bindings(parts.join(",")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A parsed request: the body, the point, the mode.
type Parsed = (DiffRequest, Vec<(String, f64)>, Mode);

/// Parses a request body, or the 400 that says what is wrong with it.
fn request(body: &[u8]) -> Result<Parsed, Answer> {
    let r: DiffRequest =
        serde_json::from_slice(body).map_err(|e| error(400, &format!("request body: {e}")))?;
    let at = parse_bindings(&r.at.0).map_err(|e| error(400, &format!("at: {e}")))?;
    let mode = match r.mode.as_deref() {
        None | Some("both") => Mode::Both,
        Some("forward") => Mode::Forward,
        Some("reverse") => Mode::Reverse,
        Some(other) => {
            let m = format!("mode: '{other}' is not one of forward, reverse, both");
            return Err(error(400, &m));
        }
    };
    Ok((r, at, mode))
}

fn differentiated(body: &[u8]) -> Result<(Differentiated, bool), Answer> {
    let (r, at, mode) = request(body)?;
    differentiate(&r.program, "program", &at, mode, r.paths)
        .map(|d| (d, r.paths))
        .map_err(|e| error(400, &crate::message(&e)))
}

/// `POST /api/diff`: exactly the line `backprop diff PROGRAM --at ... --json --paths`
/// prints (without `--paths` when the body says `"paths": false`), or a 400 with the
/// command's message.
pub fn diff(body: &[u8]) -> Answer {
    match differentiated(body) {
        Ok((d, _)) => match diff_json(&d.analysis, d.paths.as_deref()) {
            Ok(json) => (200, json),
            Err(e) => error(500, &e.to_string()),
        },
        Err(answer) => answer,
    }
}

/// `POST /api/graph`: `{"diff": <the answer of /api/diff>, "graph": ...}`, where the graph
/// is every node of the tape (label, op, value, derivative), every edge with its local
/// derivative, and each mode's steps; `"graph": null` with `"too_large"` above
/// [`MAX_DRAWN_NODES`] nodes.
pub fn graph(body: &[u8]) -> Answer {
    match differentiated(body) {
        Ok((d, _)) => {
            let diff: Value = match serde_json::from_str(
                &diff_json(&d.analysis, d.paths.as_deref()).unwrap_or_default(),
            ) {
                Ok(v) => v,
                Err(e) => return error(500, &e.to_string()),
            };
            let nodes = node_ids(&d);
            let (graph, too_large) = if nodes.len() > MAX_DRAWN_NODES {
                let note = format!(
                    "{} graph nodes: the page draws at most {MAX_DRAWN_NODES}",
                    nodes.len()
                );
                (Value::Null, Value::String(note))
            } else {
                (draw(&d, &nodes), Value::Null)
            };
            let body = json!({ "diff": diff, "graph": graph, "too_large": too_large });
            (200, body.to_string())
        }
        Err(answer) => answer,
    }
}

/// Every node of the program's tape, in tape order: those of the statements and inputs and
/// all they are computed from (the parser makes no other node).
fn node_ids(d: &Differentiated) -> Vec<NodeId> {
    let p = &d.program;
    let tape = p.tape();
    let mut seen = vec![false; tape.len()];
    let mut stack: Vec<NodeId> = p.inputs().iter().map(|(_, id)| *id).collect();
    stack.extend(p.statements().iter().map(|s| s.node));
    let mut ids = Vec::new();
    while let Some(id) = stack.pop() {
        if std::mem::replace(&mut seen[id.index()], true) {
            continue;
        }
        ids.push(id);
        stack.extend_from_slice(tape.node(id).args());
    }
    ids.sort();
    ids
}

/// One edge x -> f: its local derivative df/dx, and whether it is differentiated (x depends
/// on an input; an edge out of a constant is not).
struct Edge {
    from: usize,
    to: usize,
    local: f64,
    live: bool,
}

fn edges(tape: &Tape<f64>, nodes: &[NodeId], pos: &[usize]) -> Vec<Edge> {
    let mut out = Vec::new();
    for &id in nodes {
        let node = tape.node(id);
        let args = node.args();
        let x = tape.value(args.first().copied().unwrap_or(id));
        let y = tape.value(args.get(1).copied().unwrap_or(id));
        let (_, dx, dy) = node.op().rule_with(x, y, Some(tape.value(id)));
        for (a, local) in args.iter().zip([dx, dy]) {
            out.push(Edge {
                from: pos[a.index()],
                to: pos[id.index()],
                local,
                live: tape.node(*a).depends_on_input(),
            });
        }
    }
    out
}

/// A number for the page: finite ones as numbers, others as "inf", "-inf", "nan" (as in
/// `diff --json`).
fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        json!(backprop::graph::format_number(x))
    }
}

fn draw(d: &Differentiated, nodes: &[NodeId]) -> Value {
    let p = &d.program;
    let tape = p.tape();
    let labels = tape.labels();
    // Tape index -> position in `nodes`.
    let mut pos = vec![usize::MAX; tape.len()];
    for (k, id) in nodes.iter().enumerate() {
        pos[id.index()] = k;
    }
    let edges = edges(tape, nodes, &pos);
    let output = pos[p.output().node.index()];
    let adjoints = p.backward();
    let node_json: Vec<Value> = nodes
        .iter()
        .map(|&id| {
            let node = tape.node(id);
            let name = p
                .inputs()
                .iter()
                .find(|(_, i)| *i == id)
                .map(|(n, _)| n.clone())
                .or_else(|| tape.name(id).map(|n| n.split(", ").next().unwrap_or("").into()));
            json!({
                "label": labels[id.index()],
                "name": name,
                "op": match node.op() { Op::Input => "input", Op::Const => "const", op => op.symbol() },
                "value": num(tape.value(id)),
                "constant": !node.depends_on_input(),
                "grad": num(adjoints[id]),
            })
        })
        .collect();
    let edge_json: Vec<Value> = edges
        .iter()
        .map(|e| json!({"from": e.from, "to": e.to, "local": num(e.local), "live": e.live}))
        .collect();
    let forward: Vec<Value> = p
        .variables()
        .iter()
        .map(|(name, id)| {
            let (steps, work) = forward_steps(nodes.len(), &edges, pos[id.index()]);
            json!({"variable": name, "node": pos[id.index()], "steps": steps, "work": work})
        })
        .collect();
    let (steps, work) = reverse_steps(nodes.len(), &edges, output);
    json!({
        "nodes": node_json,
        "edges": edge_json,
        "output": output,
        "forward": forward,
        "reverse": {"steps": steps, "work": work},
    })
}

/// Forward mode from node `seed`, one multiply-add a step, as
/// [`Tape::forward_mode`](backprop::graph::Tape::forward_mode) does them: in tape order, each
/// node reached from the seed adds `local × tangent` of each argument reached. A step is
/// `[edge, tangent of the edge's head after it]`.
fn forward_steps(n: usize, edges: &[Edge], seed: usize) -> (Vec<Value>, u64) {
    let mut tangent = vec![0.0; n];
    let mut reached = vec![false; n];
    tangent[seed] = 1.0;
    reached[seed] = true;
    let mut steps = Vec::new();
    // Edges are grouped by head, heads in tape order.
    for (k, e) in edges.iter().enumerate() {
        if e.to <= seed || !reached[e.from] {
            continue;
        }
        tangent[e.to] += e.local * tangent[e.from];
        reached[e.to] = true;
        steps.push(json!([k, num(tangent[e.to])]));
    }
    let work = steps.len() as u64;
    (steps, work)
}

/// Reverse mode from the output, one multiply-add a step, as
/// [`Tape::backward`](backprop::graph::Tape::backward) does them: heads from the output back,
/// each reached node adds `local × its adjoint` into each argument that depends on an
/// input. A step is `[edge, adjoint of the edge's tail after it]`.
fn reverse_steps(n: usize, edges: &[Edge], output: usize) -> (Vec<Value>, u64) {
    let mut adjoint = vec![0.0; n];
    let mut reached = vec![false; n];
    adjoint[output] = 1.0;
    reached[output] = true;
    let mut steps = Vec::new();
    let mut k = edges.len();
    while k > 0 {
        // The edges of one head, in argument order.
        let head = edges[k - 1].to;
        let mut first = k - 1;
        while first > 0 && edges[first - 1].to == head {
            first -= 1;
        }
        if head <= output && reached[head] {
            for (j, e) in edges.iter().enumerate().take(k).skip(first) {
                if e.live {
                    adjoint[e.from] += e.local * adjoint[head];
                    reached[e.from] = true;
                    steps.push(json!([j, num(adjoint[e.from])]));
                }
            }
        }
        k = first;
    }
    let work = steps.len() as u64;
    (steps, work)
}

/// `GET /api/network`: `{"walk": <what demo --network --json prints>, "steps": [{"formula",
/// "equation"}, ...]}`, the backpropagation steps as the walk-through names them.
pub fn network() -> Answer {
    match crate::demo_network::json() {
        Ok(walk) => {
            let steps: Vec<Value> = crate::demo_network::BACKPROP_STEPS
                .iter()
                .map(|(formula, equation)| json!({"formula": formula, "equation": equation}))
                .collect();
            (200, json!({"walk": walk, "steps": steps}).to_string())
        }
        Err(e) => error(500, &crate::message(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backprop::program::{figure_1_inputs, Program, FIGURE_1};

    fn post(f: fn(&[u8]) -> Answer, body: Value) -> (u16, Value) {
        let (status, text) = f(body.to_string().as_bytes());
        (status, serde_json::from_str(&text).unwrap())
    }

    #[test]
    fn figure_1_steps_end_where_each_mode_ends() {
        let (status, v) = post(graph, json!({"program": FIGURE_1, "at": {"a": 2, "b": 3}}));
        assert_eq!(status, 200);
        let g = &v["graph"];
        let label = |k: usize| g["nodes"][k]["label"].as_str().unwrap().to_string();
        let out = g["output"].as_u64().unwrap() as usize;
        assert_eq!(label(out), "o");
        assert_eq!(g["nodes"][out]["value"], 15.0);
        // Reverse mode: 7 multiply-adds, the last adjoint of a is do/da = 10.5.
        let steps = g["reverse"]["steps"].as_array().unwrap();
        assert_eq!(g["reverse"]["work"], 7);
        assert_eq!(steps.len(), 7);
        let edges = &g["edges"];
        let tail = |s: &Value| {
            edges[s[0].as_u64().unwrap() as usize]["from"]
                .as_u64()
                .unwrap()
        };
        let last_a = steps
            .iter()
            .rev()
            .find(|s| label(tail(s) as usize) == "a")
            .unwrap();
        assert_eq!(last_a[1], 10.5);
        // Forward mode: 5 + 5 + 2 + 1 = 13, as `demo` counts.
        let works: Vec<u64> = g["forward"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["work"].as_u64().unwrap())
            .collect();
        assert_eq!(works, [5, 5, 2, 1]);
        // The tangent of o after the last step from b: do/db = 8.
        let from_b = &g["forward"][1]["steps"];
        let last = from_b.as_array().unwrap().last().unwrap();
        assert_eq!(
            label(
                edges[last[0].as_u64().unwrap() as usize]["to"]
                    .as_u64()
                    .unwrap() as usize
            ),
            "o"
        );
        assert_eq!(last[1], 8.0);
        // Each node's derivative is reverse mode's.
        let a = (0..g["nodes"].as_array().unwrap().len())
            .find(|&k| label(k) == "a")
            .unwrap();
        assert_eq!(g["nodes"][a]["grad"], 10.5);
    }

    #[test]
    fn steps_agree_with_the_tape_on_a_program_that_reuses_values() {
        // x is used twice by x*x, and u twice downstream; a constant feeds sin.
        let src = "u = x*x + sin(2*x); v = u*y - u/y; o = exp(v) + v^2";
        let at = [("x".to_string(), 0.7), ("y".to_string(), 1.3)];
        let p = Program::compile(src, &at).unwrap();
        let analysis = p.analyse(Mode::Both);
        let (_, v) = post(graph, json!({"program": src, "at": {"x": 0.7, "y": 1.3}}));
        let g = &v["graph"];
        assert_eq!(
            g["reverse"]["work"],
            analysis.reverse.as_ref().unwrap().work
        );
        let forward_work: u64 = g["forward"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["work"].as_u64().unwrap())
            .sum();
        assert_eq!(forward_work, analysis.forward.as_ref().unwrap().work);
        // The last adjoint written into each variable is its derivative.
        let label = |k: u64| {
            g["nodes"][k as usize]["label"]
                .as_str()
                .unwrap()
                .to_string()
        };
        for (name, d) in &analysis.reverse.as_ref().unwrap().gradient {
            let last = g["reverse"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .find(|s| {
                    label(
                        g["edges"][s[0].as_u64().unwrap() as usize]["from"]
                            .as_u64()
                            .unwrap(),
                    ) == *name
                });
            assert_eq!(last.unwrap()[1].as_f64().unwrap(), *d, "{name}");
        }
    }

    #[test]
    fn diff_answers_what_the_command_prints_and_refuses_as_it_does() {
        let (status, text) = diff(br#"{"program": "c = a + b; d = a * b; o = 0.5 * c * d", "at": {"a": 2, "b": 3}, "paths": false}"#);
        assert_eq!(status, 200);
        let p = Program::compile(FIGURE_1, &figure_1_inputs()).unwrap();
        assert_eq!(text, serde_json::to_string(&p.analyse(Mode::Both)).unwrap());
        let (status, v) = post(diff, json!({"program": "o = (a + b", "at": "a=1,b=2"}));
        assert_eq!(status, 400);
        assert_eq!(
            v["error"],
            "program: line 1, column 11: expected ')', found end of program"
        );
        assert_eq!(
            (v["line"].as_u64(), v["column"].as_u64()),
            (Some(1), Some(11))
        );
        let (status, v) = post(diff, json!({"program": "o = a", "at": {"a": "two"}}));
        assert_eq!(status, 400);
        assert!(
            v["error"].as_str().unwrap().starts_with("request body: "),
            "{v}"
        );
        let (status, v) = post(
            diff,
            json!({"program": "o = a", "at": {"a": 1}, "mode": "sideways"}),
        );
        assert_eq!(
            (status, v["error"].as_str().unwrap()),
            (400, "mode: 'sideways' is not one of forward, reverse, both")
        );
        assert_eq!(diff(b"not json").0, 400);
    }

    #[test]
    fn a_graph_too_large_to_draw_is_still_differentiated() {
        let program: String = (0..MAX_DRAWN_NODES)
            .map(|i| format!("x{} = x{i} * 1.5\n", i + 1))
            .collect();
        let (status, v) = post(
            graph,
            json!({"program": program, "at": {"x0": 1}, "paths": false}),
        );
        assert_eq!(status, 200);
        assert!(v["graph"].is_null());
        assert!(
            v["too_large"].as_str().unwrap().contains("at most 300"),
            "{v}"
        );
        assert!(v["diff"]["reverse"]["work"].as_u64().unwrap() > 0);
    }
}
