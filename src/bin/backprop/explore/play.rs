//! The playground: a small network trained on points of the plane by the library's
//! [`Network`] and [`Optimizer`], its state streamed to the page after every epoch.
//!
//! A run is made by `POST /api/play` (the settings; checked, the data drawn), streamed by
//! `GET /api/play/ID/events` (server-sent events: one `start`, then a `frame` per epoch)
//! and steered by `POST /api/play/ID` (`{"action": "play" | "pause" | "step" | "stop"}`). It
//! ends when its page goes away (the next write fails), when it is stopped, or at
//! [`MAX_RUN_TIME`].

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use backprop::data::{synthetic, Dataset};
use backprop::network::{Activation, Cost, Gradients, Init, Network, Workspace};
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{error, Answer};

/// At most this many hidden layers ...
pub const MAX_LAYERS: usize = 6;
/// ... of at most this many neurons.
pub const MAX_NEURONS: usize = 8;
/// At most this many generated points, or uploaded rows.
pub const MAX_POINTS: usize = 5000;
/// At most this many classes in an uploaded file (labels 0 to 7).
pub const MAX_CLASSES: usize = 8;
/// A run ends after this long, playing or not.
pub const MAX_RUN_TIME: Duration = Duration::from_secs(15 * 60);
/// At most this many runs stream at once; a run not streamed within [`PENDING_TIME`] of its
/// making is dropped.
pub const MAX_RUNNING: usize = 4;
const PENDING_TIME: Duration = Duration::from_secs(60);
/// The decision map is GRID x GRID cells; each neuron's map NEURON_GRID x NEURON_GRID.
const GRID: usize = 48;
const NEURON_GRID: usize = 16;
/// Frames are at least this far apart while playing (an epoch of a few hundred points
/// takes well under this).
const FRAME_TIME: Duration = Duration::from_millis(40);

/// The settings of a run, as the page sends them.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// xor, spirals, moons, circles, blobs, or csv (then `rows`).
    data: String,
    #[serde(default = "default_points")]
    points: usize,
    #[serde(default)]
    noise: f64,
    /// The percentage of points held out for testing.
    #[serde(default = "default_test_percent")]
    test_percent: f64,
    /// x, y, label rows, for `data: "csv"`.
    #[serde(default)]
    rows: Vec<(f64, f64, f64)>,
    /// Hidden layer sizes.
    hidden: Vec<usize>,
    activation: String,
    cost: String,
    optimizer: String,
    lr: f64,
    batch: usize,
    #[serde(default)]
    l2: f64,
    #[serde(default)]
    seed: u64,
}

fn default_points() -> usize {
    500
}

fn default_test_percent() -> f64 {
    50.0
}

/// A checked run, ready to stream.
pub struct Run {
    net: Network<f64>,
    optimizer: Optimizer<f64>,
    lr: f64,
    batch: usize,
    train: Dataset,
    test: Dataset,
    /// The points as given (train, then test), for drawing: x, y, label.
    shown: (Vec<[f64; 3]>, Vec<[f64; 3]>),
    /// [x min, x max, y min, y max] of the drawing; inputs are scaled from it to [-1, 1].
    bounds: [f64; 4],
    rng: ChaCha8Rng,
    epoch: u64,
    made: Instant,
}

/// Checks the settings and draws the data.
pub fn make(s: &Settings) -> Result<Run, String> {
    if s.hidden.len() > MAX_LAYERS {
        return Err(format!(
            "hidden: {} layers, at most {MAX_LAYERS}",
            s.hidden.len()
        ));
    }
    if let Some(n) = s.hidden.iter().find(|&&n| n == 0 || n > MAX_NEURONS) {
        return Err(format!(
            "hidden: a layer of {n} neurons; each has 1 to {MAX_NEURONS}"
        ));
    }
    let activation: Activation = s
        .activation
        .parse()
        .map_err(|e| format!("activation: {e}"))?;
    if activation == Activation::Softmax {
        return Err("activation: softmax is for the output layer only".into());
    }
    let cost: Cost = s.cost.parse().map_err(|e| format!("cost: {e}"))?;
    let kind: OptimizerKind = s.optimizer.parse().map_err(|e| format!("optimizer: {e}"))?;
    if !(s.lr > 0.0 && s.lr <= 10.0) {
        return Err(format!("lr: {} is not in (0, 10]", s.lr));
    }
    if !(0.0..=1.0).contains(&s.l2) {
        return Err(format!("l2: {} is not in [0, 1]", s.l2));
    }
    if !(0.0..=1.0).contains(&s.noise) {
        return Err(format!("noise: {} is not in [0, 1]", s.noise));
    }
    if !(10.0..=90.0).contains(&s.test_percent) {
        return Err(format!(
            "test_percent: {} is not in [10, 90]",
            s.test_percent
        ));
    }
    if s.batch == 0 {
        return Err("batch: must be at least 1".into());
    }
    let data = data(s)?;
    let split = data
        .stratified_split(s.test_percent / 100.0, s.seed)
        .map_err(|e| format!("test_percent: {e}"))?;
    let points = |d: &Dataset| -> Vec<[f64; 3]> {
        (0..d.len())
            .map(|i| {
                [
                    d.input(i)[0] as f64,
                    d.input(i)[1] as f64,
                    d.labels[i] as f64,
                ]
            })
            .collect()
    };
    let shown = (points(&split.train), points(&split.test));
    let bounds = bounds(&data);
    let (mut train, mut test) = (split.train, split.test);
    for d in [&mut train, &mut test] {
        for p in d.inputs.chunks_exact_mut(2) {
            let (x, y) = scale(bounds, p[0] as f64, p[1] as f64);
            (p[0], p[1]) = (x as f32, y as f32);
        }
    }
    let classes = data.classes;
    let mut sizes = vec![2];
    sizes.extend(&s.hidden);
    sizes.push(classes);
    let output = match cost {
        Cost::LogLikelihood => Activation::Softmax,
        _ => Activation::Sigmoid,
    };
    let mut acts = vec![activation; s.hidden.len()];
    acts.push(output);
    let init = match activation {
        Activation::Relu | Activation::LeakyRelu => Init::He,
        _ => Init::Xavier,
    };
    let net = Network::new(&sizes, &acts, cost, init, s.seed).map_err(|e| e.to_string())?;
    let config = OptimizerConfig {
        weight_decay: s.l2,
        // L2 as in Nielsen's book and the playgrounds: the weights only.
        decay_biases: false,
        ..OptimizerConfig::new(kind)
    };
    let optimizer = Optimizer::new(config, &net).map_err(|e| format!("optimizer: {e}"))?;
    Ok(Run {
        net,
        optimizer,
        lr: s.lr,
        batch: s.batch.min(train.len()),
        train,
        test,
        shown,
        bounds,
        rng: ChaCha8Rng::seed_from_u64(s.seed),
        epoch: 0,
        made: Instant::now(),
    })
}

/// The points of the settings: a generated set with its noise, or the uploaded rows.
fn data(s: &Settings) -> Result<Dataset, String> {
    let n = s.points;
    if s.data != "csv" && !(10..=MAX_POINTS).contains(&n) {
        return Err(format!("points: {n} is not in [10, {MAX_POINTS}]"));
    }
    let mut d = match s.data.as_str() {
        "xor" => synthetic::xor(n, s.seed),
        "spirals" => synthetic::spirals(n, s.seed),
        "moons" => synthetic::moons(n, s.seed),
        "circles" => synthetic::circles(n, s.seed),
        "blobs" => synthetic::blobs(n, s.seed),
        "csv" => return rows(&s.rows),
        other => {
            return Err(format!(
                "data: '{other}' is not one of xor, spirals, moons, circles, blobs, csv"
            ))
        }
    };
    synthetic::add_noise(&mut d, s.noise, s.seed.wrapping_add(1));
    Ok(d)
}

/// Uploaded x, y, label rows: finite coordinates, labels 0 to 7, two classes at least.
fn rows(rows: &[(f64, f64, f64)]) -> Result<Dataset, String> {
    if rows.len() < 10 || rows.len() > MAX_POINTS {
        return Err(format!(
            "rows: {} rows; give 10 to {MAX_POINTS}",
            rows.len()
        ));
    }
    let mut inputs = Vec::with_capacity(rows.len() * 2);
    let mut labels = Vec::with_capacity(rows.len());
    for (i, &(x, y, l)) in rows.iter().enumerate() {
        if !(x.is_finite() && y.is_finite() && (x as f32).is_finite() && (y as f32).is_finite()) {
            return Err(format!("rows: row {}: x and y must be finite", i + 1));
        }
        if l.fract() != 0.0 || !(0.0..MAX_CLASSES as f64).contains(&l) {
            return Err(format!(
                "rows: row {}: label {l} is not a whole number from 0 to {}",
                i + 1,
                MAX_CLASSES - 1
            ));
        }
        inputs.extend([x as f32, y as f32]);
        labels.push(l as u32);
    }
    let mut d = Dataset::new(inputs, labels, 2).map_err(|e| format!("rows: {e}"))?;
    if d.distinct_labels() < 2 {
        return Err("rows: every row has the same label; give two classes at least".into());
    }
    d.classes = d.classes.max(2);
    Ok(d)
}

/// The data's bounding box with a margin, never empty.
fn bounds(d: &Dataset) -> [f64; 4] {
    let mut b = [f64::MAX, f64::MIN, f64::MAX, f64::MIN];
    for p in d.inputs.chunks_exact(2) {
        let (x, y) = (p[0] as f64, p[1] as f64);
        b = [b[0].min(x), b[1].max(x), b[2].min(y), b[3].max(y)];
    }
    let pad = |lo: f64, hi: f64| {
        let m = ((hi - lo) * 0.08).max(1e-3);
        (lo - m, hi + m)
    };
    let (x0, x1) = pad(b[0], b[1]);
    let (y0, y1) = pad(b[2], b[3]);
    [x0, x1, y0, y1]
}

/// A point of the drawing, scaled to the network's [-1, 1]^2.
fn scale(b: [f64; 4], x: f64, y: f64) -> (f64, f64) {
    (
        2.0 * (x - b[0]) / (b[1] - b[0]) - 1.0,
        2.0 * (y - b[2]) / (b[3] - b[2]) - 1.0,
    )
}

/// The centres of an n x n grid over [-1, 1]^2, row by row from the top (y = 1) down.
fn grid(n: usize) -> Vec<f64> {
    let c = |i: usize| -1.0 + (2 * i + 1) as f64 / n as f64;
    (0..n)
        .flat_map(|r| (0..n).flat_map(move |col| [c(col), -c(r)]))
        .collect()
}

/// Loss and accuracy of `net` on `d`.
fn score(net: &Network<f64>, d: &Dataset, ws: &mut Workspace<f64>) -> (f64, f64) {
    let all: Vec<usize> = (0..d.len()).collect();
    let mut x = vec![0.0; d.len() * 2];
    let mut y = vec![0.0; d.len() * d.classes];
    if d.inputs_into(&all, &mut x).is_err() || d.one_hot(&all, &mut y).is_err() {
        return (f64::NAN, 0.0);
    }
    let loss = net.cost(&x, &y, d.len(), ws);
    let out = net.feed_forward(&x, d.len(), ws);
    let right = out
        .chunks_exact(d.classes)
        .zip(&d.labels)
        .filter(|(o, &l)| argmax(o) == l as usize)
        .count();
    (loss, right as f64 / d.len().max(1) as f64)
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Bytes as base64, for the maps (a third of their size as JSON numbers).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= c.len() {
                s.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

impl Run {
    /// One epoch: the training part shuffled, one optimizer step per mini-batch.
    fn epoch(&mut self, ws: &mut Workspace<f64>, grads: &mut Gradients<f64>) -> Result<(), String> {
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        order.shuffle(&mut self.rng);
        let c = self.train.classes;
        let mut x = vec![0.0; self.batch * 2];
        let mut y = vec![0.0; self.batch * c];
        for b in order.chunks(self.batch) {
            let n = b.len();
            self.train
                .inputs_into(b, &mut x[..n * 2])
                .map_err(|e| e.to_string())?;
            self.train
                .one_hot(b, &mut y[..n * c])
                .map_err(|e| e.to_string())?;
            self.net.backprop(&x[..n * 2], &y[..n * c], n, ws, grads);
            self.optimizer
                .step(&mut self.net, grads, self.lr)
                .map_err(|e| e.to_string())?;
        }
        self.epoch += 1;
        Ok(())
    }

    fn start(&self) -> Value {
        json!({
            "bounds": self.bounds,
            "train": self.shown.0,
            "test": self.shown.1,
            "sizes": self.net.sizes(),
            "classes": self.train.classes,
            "grid": GRID,
            "neuron_grid": NEURON_GRID,
        })
    }

    /// The state after an epoch: losses, accuracies, the decision map (per cell the class
    /// and its probability, 0-255) and every hidden neuron's map (its activation, scaled
    /// from its least to its greatest over the map, 0-255).
    fn frame(&self, ws: &mut Workspace<f64>) -> Value {
        let (train_loss, train_accuracy) = score(&self.net, &self.train, ws);
        let (test_loss, test_accuracy) = score(&self.net, &self.test, ws);
        let cells = grid(GRID);
        let out = self.net.feed_forward(&cells, GRID * GRID, ws);
        let mut decision = Vec::with_capacity(GRID * GRID * 2);
        for o in out.chunks_exact(self.train.classes) {
            let k = argmax(o);
            let sum: f64 = o.iter().sum();
            let p = if sum > 0.0 { o[k] / sum } else { 0.0 };
            decision.extend([k as u8, (p * 255.0).round().clamp(0.0, 255.0) as u8]);
        }
        let cells = grid(NEURON_GRID);
        self.net.feed_forward(&cells, NEURON_GRID * NEURON_GRID, ws);
        let mut neurons = Vec::new();
        for (i, &width) in self.net.sizes()[1..self.net.layers.len()]
            .iter()
            .enumerate()
        {
            let a = ws.a(i);
            for j in 0..width {
                let v: Vec<f64> = a.chunks_exact(width).map(|row| row[j]).collect();
                let (lo, hi) = v
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
                let span = if hi > lo { hi - lo } else { 1.0 };
                let bytes: Vec<u8> = v
                    .iter()
                    .map(|&x| ((x - lo) / span * 255.0).round() as u8)
                    .collect();
                neurons.push(
                    json!({"layer": i + 2, "j": j + 1, "lo": lo, "hi": hi, "map": base64(&bytes)}),
                );
            }
        }
        json!({
            "epoch": self.epoch,
            "train_loss": finite(train_loss),
            "test_loss": finite(test_loss),
            "train_accuracy": train_accuracy,
            "test_accuracy": test_accuracy,
            "decision": base64(&decision),
            "neurons": neurons,
            "seconds": self.made.elapsed().as_secs_f64(),
        })
    }

    /// Streams the run to `out` until it is stopped, its page goes away or time is up.
    pub fn stream(mut self, control: &Control, out: &mut dyn Write) {
        let mut ws = Workspace::new(
            &self.net,
            self.batch
                .max(GRID * GRID)
                .max(self.train.len())
                .max(self.test.len()),
        );
        let mut grads = Gradients::zeros_like(&self.net);
        let started = Instant::now();
        let send = |out: &mut dyn Write, kind: &str, v: &Value| -> bool {
            write!(out, "event: {kind}\ndata: {v}\n\n")
                .and_then(|()| out.flush())
                .is_ok()
        };
        let first = self.frame(&mut ws);
        if !send(out, "start", &self.start()) || !send(out, "frame", &first) {
            return;
        }
        loop {
            if started.elapsed() > MAX_RUN_TIME {
                let m = format!(
                    "the run ended after {} minutes, the playground's limit",
                    MAX_RUN_TIME.as_secs() / 60
                );
                send(out, "end", &json!({"reason": m}));
                return;
            }
            let Some(epochs) = control.next(Duration::from_secs(1)) else {
                return;
            };
            if epochs == 0 {
                // Paused: a comment keeps the stream alive and finds a page that has gone.
                if write!(out, ": paused\n\n")
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    return;
                }
                continue;
            }
            let t = Instant::now();
            if let Err(e) = self.epoch(&mut ws, &mut grads) {
                send(out, "end", &json!({ "reason": e }));
                return;
            }
            let frame = self.frame(&mut ws);
            if !send(out, "frame", &frame) {
                return;
            }
            if !frame["train_loss"].is_number() {
                send(
                    out,
                    "end",
                    &json!({"reason": "the training loss is no longer a finite number: try a smaller learning rate"}),
                );
                return;
            }
            if let Some(rest) = FRAME_TIME.checked_sub(t.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }
}

fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// How the page steers a run: play, pause, one step, stop.
#[derive(Default)]
pub struct Control {
    state: Mutex<ControlState>,
    changed: Condvar,
}

#[derive(Default)]
struct ControlState {
    playing: bool,
    steps: u32,
    stopped: bool,
}

impl Control {
    /// Applies an action; false for an unknown one.
    pub fn act(&self, action: &str) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match action {
            "play" => s.playing = true,
            "pause" => s.playing = false,
            "step" => {
                s.playing = false;
                s.steps = s.steps.saturating_add(1).min(100);
            }
            "stop" => s.stopped = true,
            _ => return false,
        }
        self.changed.notify_all();
        true
    }

    /// Waits up to `wait` for something to do: `Some(1)` for an epoch, `Some(0)` if paused
    /// still, `None` once stopped.
    fn next(&self, wait: Duration) -> Option<u32> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !s.stopped && !s.playing && s.steps == 0 {
            s = self
                .changed
                .wait_timeout(s, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if s.stopped {
            return None;
        }
        if s.playing {
            return Some(1);
        }
        if s.steps > 0 {
            s.steps -= 1;
            return Some(1);
        }
        Some(0)
    }
}

/// Every run: made and waiting for its stream, or streaming.
#[derive(Default)]
pub struct Runs {
    inner: Mutex<RunsInner>,
}

#[derive(Default)]
struct RunsInner {
    next_id: u64,
    pending: HashMap<u64, (Run, Arc<Control>)>,
    running: HashMap<u64, Arc<Control>>,
}

impl Runs {
    /// `POST /api/play`: checks the settings, draws the data, and answers the run's id.
    pub fn make(&self, body: &[u8]) -> Answer {
        let settings: Settings = match serde_json::from_slice(body) {
            Ok(s) => s,
            Err(e) => return error(400, &format!("request body: {e}")),
        };
        let run = match make(&settings) {
            Ok(run) => run,
            Err(e) => return error(400, &e),
        };
        let (train, test) = (run.train.len(), run.test.len());
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        r.pending
            .retain(|_, (run, _)| run.made.elapsed() < PENDING_TIME);
        if r.pending.len() >= 4 * MAX_RUNNING {
            return error(
                503,
                "too many playground runs waiting to start; try again in a minute",
            );
        }
        r.next_id += 1;
        let id = r.next_id;
        r.pending.insert(id, (run, Arc::new(Control::default())));
        (
            200,
            json!({"id": id, "train": train, "test": test}).to_string(),
        )
    }

    /// `POST /api/play/ID`: an action for a run.
    pub fn act(&self, id: u64, body: &[u8]) -> Answer {
        #[derive(Deserialize)]
        struct Action {
            action: String,
        }
        let a: Action = match serde_json::from_slice(body) {
            Ok(a) => a,
            Err(e) => return error(400, &format!("request body: {e}")),
        };
        let r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let control = r
            .running
            .get(&id)
            .or_else(|| r.pending.get(&id).map(|(_, c)| c));
        match control {
            None => error(
                404,
                &format!("no playground run {id} (it ended, or was never made)"),
            ),
            Some(c) if c.act(&a.action) => (200, json!({"id": id, "action": a.action}).to_string()),
            Some(_) => error(
                400,
                &format!(
                    "action: '{}' is not one of play, pause, step, stop",
                    a.action
                ),
            ),
        }
    }

    /// Takes a made run to stream it, or the refusal.
    pub fn start(&self, id: u64) -> Result<(Run, Arc<Control>), Answer> {
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if r.running.len() >= MAX_RUNNING {
            return Err(error(
                503,
                &format!("{MAX_RUNNING} playground runs are streaming already; close a page first"),
            ));
        }
        let (run, control) = r
            .pending
            .remove(&id)
            .ok_or_else(|| error(404, &format!("no playground run {id} waiting to start")))?;
        r.running.insert(id, control.clone());
        Ok((run, control))
    }

    /// Forgets a run whose stream has ended.
    pub fn finish(&self, id: u64) {
        let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        r.running.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(data: &str) -> Settings {
        serde_json::from_value(json!({
            "data": data, "points": 400, "noise": 0.0, "test_percent": 50,
            "hidden": [8, 8], "activation": "tanh", "cost": "log-likelihood",
            "optimizer": "adam", "lr": 0.03, "batch": 10, "l2": 0.0, "seed": 1
        }))
        .unwrap()
    }

    #[test]
    fn xor_is_learnt_to_95_percent_in_a_few_seconds() {
        let mut run = make(&settings("xor")).unwrap();
        let mut ws = Workspace::new(&run.net, GRID * GRID);
        let mut grads = Gradients::zeros_like(&run.net);
        let t = Instant::now();
        let mut accuracy = 0.0;
        while run.epoch < 300 && accuracy < 0.95 {
            run.epoch(&mut ws, &mut grads).unwrap();
            accuracy = run.frame(&mut ws)["test_accuracy"].as_f64().unwrap();
        }
        assert!(accuracy >= 0.95, "{accuracy} after {} epochs", run.epoch);
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    }

    #[test]
    fn a_frame_has_every_map() {
        let run = make(&settings("circles")).unwrap();
        let mut ws = Workspace::new(&run.net, GRID * GRID);
        let f = run.frame(&mut ws);
        // 48 x 48 cells of two bytes: 4608 bytes, 6144 base64 characters.
        assert_eq!(f["decision"].as_str().unwrap().len(), 6144);
        assert_eq!(f["neurons"].as_array().unwrap().len(), 16);
        assert_eq!(f["neurons"][0]["map"].as_str().unwrap().len(), 344); // 256 bytes
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }

    #[test]
    fn settings_out_of_bounds_are_refused_naming_the_setting() {
        let cases: [(&str, Value, &str); 7] = [
            (
                "hidden",
                json!([8, 8, 8, 8, 8, 8, 8]),
                "hidden: 7 layers, at most 6",
            ),
            ("hidden", json!([9]), "hidden: a layer of 9 neurons"),
            (
                "points",
                json!(100_000),
                "points: 100000 is not in [10, 5000]",
            ),
            ("lr", json!(0), "lr: 0 is not in (0, 10]"),
            (
                "activation",
                json!("softmax"),
                "activation: softmax is for the output layer only",
            ),
            ("data", json!("csv"), "rows: 0 rows; give 10 to 5000"),
            (
                "test_percent",
                json!(95),
                "test_percent: 95 is not in [10, 90]",
            ),
        ];
        for (key, value, message) in cases {
            let mut s = serde_json::to_value(settings_json()).unwrap();
            s[key] = value;
            let s: Settings = serde_json::from_value(s).unwrap();
            let e = make(&s).err().unwrap();
            assert!(e.starts_with(message), "{key}: {e}");
        }
        let rows: Vec<(f64, f64, f64)> = (0..20).map(|i| (i as f64, 1.0, 9.0)).collect();
        assert!(super::rows(&rows)
            .unwrap_err()
            .contains("label 9 is not a whole number from 0 to 7"));
        let rows: Vec<(f64, f64, f64)> = (0..20).map(|i| (i as f64, 1.0, (i % 3) as f64)).collect();
        assert_eq!(super::rows(&rows).unwrap().classes, 3);
    }

    fn settings_json() -> Value {
        json!({
            "data": "xor", "points": 400, "noise": 0.0, "test_percent": 50,
            "hidden": [4], "activation": "tanh", "cost": "log-likelihood",
            "optimizer": "sgd", "lr": 0.03, "batch": 10, "l2": 0.0, "seed": 1
        })
    }

    #[test]
    fn a_stream_stops_when_its_page_goes_away() {
        struct Closing(usize);
        impl Write for Closing {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::ErrorKind::BrokenPipe.into());
                }
                self.0 -= 1;
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let run = make(&settings("moons")).unwrap();
        let control = Control::default();
        control.act("play");
        let t = Instant::now();
        // Playing forever; the writer fails after a few writes, and the stream returns.
        run.stream(&control, &mut Closing(5));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
