// backprop explore: the page. Plain JavaScript, no build step; every number comes from the
// server (the library), the page only draws and steps through what it was sent.
"use strict";

const FIGURE_1 = "c = a + b\nd = a * b\no = 0.5 * c * d";
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

// ---- the URL holds the page's state: #part=graph&program=...&a=2&b=3 ----

function readHash() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

function writeHash(changes) {
  const p = readHash();
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined) p.delete(k); else p.set(k, String(v));
  }
  history.replaceState(null, "", "#" + p.toString());
}

// Numbers as the command prints them: the shortest text that reads back exactly.
function fmt(x) {
  if (typeof x === "string") return x; // "inf", "-inf", "nan"
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e16 || a < 1e-5) return x.toExponential().replace("e+", "e");
  return String(x);
}

function svgEl(tag, attrs, parent) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

async function postJson(url, body) {
  const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const v = await r.json();
  return { ok: r.ok, status: r.status, body: v };
}

// ---- parts ----

function showPart(part) {
  if (!["graph", "network", "play"].includes(part)) part = "graph";
  for (const s of document.querySelectorAll(".part")) s.classList.toggle("current", s.id === part);
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.dataset.part === part);
  writeHash({ part });
  if (part === "network") Net.load();
  if (part === "play") Play.ensure();
}

for (const a of document.querySelectorAll("nav a")) {
  a.addEventListener("click", (e) => { e.preventDefault(); showPart(a.dataset.part); });
}

// =====================================================================================
// 1. The graph
// =====================================================================================

const Graph = {
  data: null,     // the answer of /api/graph
  pass: null,     // {mode, variable, steps, k, done}
  inputs: [],     // [[name, value]]
  timer: null,

  init() {
    const h = readHash();
    $("program").value = h.get("program") || FIGURE_1;
    $("program").addEventListener("input", () => this.changed(true));
    $("reverse-step").onclick = () => this.step("reverse");
    $("reverse-run").onclick = () => this.runAll("reverse");
    $("forward-step").onclick = () => this.step("forward");
    $("forward-run").onclick = () => this.runAll("forward");
    $("pass-reset").onclick = () => { this.pass = null; writeHash({ pass: null }); this.draw(); };
    $("forward-var").onchange = () => { if (this.pass && this.pass.mode === "forward") { this.pass = null; this.draw(); } };
    $("paths-var").onchange = () => this.drawPaths();
    this.load();
  },

  // The point: the values typed, else the URL's, else 2, 3, 1, 1, ...
  point(names) {
    const h = readHash();
    const at = {};
    names.forEach((n, i) => {
      const box = $("in-" + n);
      let v = box ? Number(box.value) : Number(h.get("at." + n) ?? (n === "a" ? 2 : n === "b" ? 3 : 1));
      if (!Number.isFinite(v)) v = 0;
      at[n] = v;
    });
    return at;
  },

  changed(programChanged) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(programChanged), programChanged ? 300 : 50);
  },

  async load() {
    const program = $("program").value;
    const names = inputNames(program);
    const at = this.point(names);
    const hash = { program: program === FIGURE_1 ? null : program };
    for (const k of readHash().keys()) if (k.startsWith("at.")) hash[k] = null;
    for (const [k, v] of Object.entries(at)) hash["at." + k] = v;
    writeHash(hash);
    const r = await postJson("/api/graph", { program, at, paths: true });
    const err = $("program-error");
    if (!r.ok) {
      err.hidden = false;
      err.textContent = r.body.error + caret(program, r.body.line, r.body.column);
      return;
    }
    err.hidden = true;
    const wasDone = this.pass && this.pass.done ? { mode: this.pass.mode, variable: this.pass.variable } : null;
    this.data = r.body;
    this.buildInputs(names, at);
    this.buildSelects();
    this.pass = null;
    const again = wasDone || (readHash().get("pass") ? { mode: readHash().get("pass"), variable: readHash().get("from") } : null);
    if (again && this.data.graph) {
      if (again.variable) $("forward-var").value = again.variable;
      this.start(again.mode);
      if (this.pass) { this.pass.k = this.pass.steps.length; this.pass.done = true; }
    }
    this.draw();
  },

  buildInputs(names, at) {
    const box = $("inputs");
    const have = [...box.querySelectorAll("input")].map((i) => i.dataset.name).join(",");
    if (have === names.join(",")) return;
    box.textContent = "";
    for (const n of names) {
      const label = document.createElement("label");
      label.textContent = n + " = ";
      const input = document.createElement("input");
      input.type = "number"; input.step = "any"; input.id = "in-" + n; input.dataset.name = n;
      input.value = at[n];
      input.addEventListener("input", () => this.changed(false));
      label.appendChild(input);
      box.appendChild(label);
    }
  },

  buildSelects() {
    const d = this.data.diff;
    const vars = Object.keys((d.reverse || d.forward).gradient);
    for (const id of ["forward-var", "paths-var"]) {
      const sel = $(id);
      const keep = sel.value;
      sel.textContent = "";
      for (const v of vars) {
        const o = document.createElement("option");
        o.textContent = v; sel.appendChild(o);
      }
      if (vars.includes(keep)) sel.value = keep;
    }
  },

  start(mode) {
    const g = this.data && this.data.graph;
    if (!g) return;
    if (mode === "reverse") {
      this.pass = { mode, variable: null, steps: g.reverse.steps, k: 0, done: false, seed: g.output };
    } else {
      const v = $("forward-var").value;
      const f = g.forward.find((f) => f.variable === v);
      if (!f) return;
      this.pass = { mode, variable: v, steps: f.steps, k: 0, done: false, seed: f.node };
    }
    writeHash({ pass: mode, from: mode === "forward" ? this.pass.variable : null });
  },

  step(mode) {
    const same = this.pass && this.pass.mode === mode && (mode === "reverse" || this.pass.variable === $("forward-var").value);
    if (!same || this.pass.done) this.start(mode);
    const p = this.pass;
    if (!p) return;
    if (p.k < p.steps.length) p.k += 1;
    p.done = p.k === p.steps.length;
    this.draw();
  },

  runAll(mode) {
    this.start(mode);
    if (!this.pass) return;
    this.pass.k = this.pass.steps.length;
    this.pass.done = true;
    this.draw();
  },

  // Each node's derivative after the steps taken: the value written by the last step into it.
  derivatives() {
    const p = this.pass, g = this.data.graph;
    const d = new Array(g.nodes.length).fill(null);
    if (!p) return d;
    d[p.seed] = 1;
    for (let i = 0; i < p.k; i++) {
      const [e, v] = p.steps[i];
      const edge = g.edges[e];
      d[p.mode === "reverse" ? edge.from : edge.to] = v;
    }
    return d;
  },

  draw() {
    const g = this.data && this.data.graph;
    const svg = $("graph-svg");
    svg.textContent = "";
    $("graph-note").hidden = !!g;
    if (!g) {
      $("graph-note").textContent = this.data ? this.data.too_large + "; the derivatives are below." : "";
      this.drawTable(); this.drawPaths(); this.drawStatus();
      return;
    }
    const out = g.nodes[g.output];
    const p = this.pass;
    const der = this.derivatives();
    const active = p && p.k > 0 ? g.edges[p.steps[p.k - 1][0]] : null;
    const activeEdge = p && p.k > 0 ? p.steps[p.k - 1][0] : -1;
    const done = new Set(p ? p.steps.slice(0, p.k).map((s) => s[0]) : []);
    const pos = layout(g);
    const W = 150, H = 58;
    svg.setAttribute("width", pos.width);
    svg.setAttribute("height", pos.height);
    svg.setAttribute("viewBox", `0 0 ${pos.width} ${pos.height}`);
    svgEl("defs", {}, svg).innerHTML =
      '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#8aa0b8"/></marker>';
    g.edges.forEach((e, k) => {
      const a = pos.xy[e.from], b = pos.xy[e.to];
      const cls = ["edge", e.live ? "" : "dead", done.has(k) ? "done" : "", k === activeEdge ? "active" : ""].join(" ");
      const grp = svgEl("g", { class: cls, "data-edge": k }, svg);
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
      svgEl("line", { x1, y1, x2, y2, "marker-end": "url(#arrow)" }, grp);
      if (e.live) {
        // Near the head, where edges into one node fan apart.
        const t = svgEl("text", { x: x1 + (x2 - x1) * 0.72, y: y1 + (y2 - y1) * 0.72 - 5, "text-anchor": "middle" }, grp);
        t.textContent = fmt(e.local);
      }
    });
    g.nodes.forEach((n, i) => {
      const { x, y } = pos.xy[i];
      const isActive = active && (p.mode === "reverse" ? active.from === i : active.to === i);
      const cls = ["node", n.constant ? "constant" : "", i === g.output ? "output" : "", isActive ? "active" : ""].join(" ");
      const grp = svgEl("g", { class: cls, "data-label": n.label, "data-node": i }, svg);
      svgEl("rect", { x, y, width: W, height: H, rx: 6 }, grp);
      const t1 = svgEl("text", { x: x + 8, y: y + 17, class: "label" }, grp);
      t1.textContent = clip(n.label, 18);
      const t2 = svgEl("text", { x: x + 8, y: y + 33, class: "value" }, grp);
      t2.textContent = (n.op === "const" ? "constant " : "= ") + fmt(n.value);
      if (der[i] !== null && !n.constant) {
        const t3 = svgEl("text", { x: x + 8, y: y + 50, class: "grad" }, grp);
        const name = n.name || clip(n.label, 10);
        t3.textContent = p.mode === "reverse"
          ? `d${out.label}/d${name} = ${fmt(der[i])}`
          : `d${name}/d${p.variable} = ${fmt(der[i])}`;
      }
      const title = svgEl("title", {}, grp);
      title.textContent = `${n.label}: op ${n.op}, value ${fmt(n.value)}` + (n.constant ? " (a constant: not differentiated)" : `, d${out.label}/d(node) = ${fmt(n.grad)}`);
    });
    this.drawTable(); this.drawPaths(); this.drawStatus();
  },

  drawStatus() {
    const p = this.pass;
    $("work").textContent = p ? p.k : 0;
    const rs = $("reverse-step"), fs = $("forward-step");
    rs.disabled = !!(p && p.mode === "reverse" && p.done);
    fs.disabled = !!(p && p.mode === "forward" && p.done && p.variable === $("forward-var").value);
    let s = "No pass yet.";
    if (p) {
      const what = p.mode === "reverse" ? "reverse mode from the output" : `forward mode from ${p.variable}`;
      s = `${what}: step ${p.k} of ${p.steps.length}` + (p.done ? " (done)" : "");
    }
    $("pass-status").textContent = s;
  },

  // Both modes' derivatives and work, as `backprop diff` gives them.
  drawTable() {
    const t = $("derivatives");
    t.textContent = "";
    if (!this.data) return;
    const d = this.data.diff;
    const row = (cells, head) => {
      const tr = document.createElement("tr");
      for (const c of cells) { const td = document.createElement(head ? "th" : "td"); td.textContent = c; tr.appendChild(td); }
      t.appendChild(tr);
    };
    row(["", "forward", "reverse"], true);
    row([`${d.output} =`, fmt(d.value), ""]);
    const names = Object.keys((d.reverse || d.forward).gradient);
    for (const n of names) {
      row([`d${d.output}/d${n}`, d.forward ? fmt(d.forward.gradient[n]) : "-", d.reverse ? fmt(d.reverse.gradient[n]) : "-"]);
    }
    row(["work", d.forward ? d.forward.work : "-", d.reverse ? d.reverse.work : "-"]);
  },

  drawPaths() {
    const t = $("paths");
    t.textContent = "";
    if (!this.data || !this.data.diff.paths) return;
    const d = this.data.diff;
    const v = d.paths.find((p) => p.variable === $("paths-var").value) || d.paths[0];
    if (!v) return;
    const add = (cells, cls) => {
      const tr = document.createElement("tr");
      if (cls) tr.className = cls;
      cells.forEach((c, i) => { const td = document.createElement("td"); td.textContent = c; if (i > 0) td.className = "num"; tr.appendChild(td); });
      t.appendChild(tr);
    };
    for (const p of v.paths) {
      const merged = p.edges.some((e) => e > 1) ? "   (parallel edges merged)" : "";
      add([p.nodes.join(" -> ") + merged, p.factors.map(fmt).join(" * ") + " = " + fmt(p.product)]);
    }
    add([`d${d.output}/d${v.variable}, over ${v.paths.length} path${v.paths.length === 1 ? "" : "s"}`, fmt(v.sum)], "sum");
  },
};

// The inputs of a program: names used but never assigned, in order of first use.
function inputNames(program) {
  const fns = new Set(["exp", "ln", "log", "sqrt", "sin", "cos", "tan", "tanh", "sigmoid", "relu", "abs"]);
  const assigned = new Set(), inputs = [];
  for (const raw of program.split(/[;\n]/)) {
    const line = raw.replace(/#.*/, "");
    const m = line.match(/^\s*([A-Za-z_]\w*)\s*=(.*)$/);
    const expr = m ? m[2] : line;
    for (const t of expr.matchAll(/[A-Za-z_]\w*/g)) {
      const after = expr.slice(t.index + t[0].length);
      if (fns.has(t[0]) && /^\s*\(/.test(after)) continue;
      if (/[0-9.]e$/i.test(expr.slice(0, t.index + 1)) && /^e\d*$/i.test(t[0])) continue;
      if (!assigned.has(t[0]) && !inputs.includes(t[0])) inputs.push(t[0]);
    }
    if (m) assigned.add(m[1]);
  }
  return inputs;
}

function caret(program, line, column) {
  if (!line) return "";
  const text = program.split("\n")[line - 1];
  if (text === undefined) return "";
  return "\n" + text + "\n" + " ".repeat(Math.max(0, column - 1)) + "^";
}

function clip(s, n) {
  return s.length > n ? s.slice(0, n - 1) + "\u2026" : s;
}

// Columns by depth (leaves left, the output right); a constant sits just left of its user.
function layout(g) {
  const n = g.nodes.length;
  const depth = new Array(n).fill(0);
  const args = Array.from({ length: n }, () => []);
  for (const e of g.edges) args[e.to].push(e.from);
  for (let i = 0; i < n; i++) for (const a of args[i]) depth[i] = Math.max(depth[i], depth[a] + 1);
  for (let i = 0; i < n; i++) {
    if (g.nodes[i].op === "const") {
      const users = g.edges.filter((e) => e.from === i).map((e) => depth[e.to]);
      if (users.length) depth[i] = Math.max(0, Math.min(...users) - 1);
    }
  }
  const cols = {};
  for (let i = 0; i < n; i++) (cols[depth[i]] = cols[depth[i]] || []).push(i);
  const xy = new Array(n);
  let rows = 0;
  for (const [d, list] of Object.entries(cols)) {
    list.forEach((i, r) => { xy[i] = { x: 20 + Number(d) * 210, y: 20 + r * 82 }; });
    rows = Math.max(rows, list.length);
  }
  const maxDepth = Math.max(...depth);
  return { xy, width: 40 + maxDepth * 210 + 150, height: 40 + rows * 82 };
}

// =====================================================================================
// 2. The network
// =====================================================================================

const Net = {
  data: null,
  k: 0, // steps shown: 0..10

  // The walk-through's steps: five of feed-forward, five of backpropagation.
  steps() {
    const s = this.data.steps;
    return [
      { title: "Step 1: a^1 = z^1 = x", equation: "feed-forward", show: { a: [1] } },
      { title: "Step 2: z^2 = W^2 a^1 + b^2, a^2 = F(z^2)", equation: "feed-forward", show: { a: [2] } },
      { title: "Step 3: z^3 = W^3 a^2 + b^3, a^3 = F(z^3)", equation: "feed-forward", show: { a: [3] } },
      { title: "Step 4: z^4 = W^4 a^3 + b^4, a^4 = F(z^4)", equation: "feed-forward", show: { a: [4] } },
      { title: "Step 5: C = C(a^4, y)", equation: "feed-forward", show: { cost: true } },
      { title: "Step 1: " + s[0].formula, equation: s[0].equation, show: { delta: [4] } },
      { title: "Step 2: " + s[1].formula, equation: s[1].equation, show: { delta: [3] } },
      { title: "Step 3: " + s[2].formula, equation: s[2].equation, show: { delta: [2] } },
      { title: "Step 4: " + s[3].formula, equation: s[3].equation, show: { dw: [4, 3, 2] } },
      { title: "Step 5: " + s[4].formula, equation: s[4].equation, show: { db: [4, 3, 2] } },
    ];
  },

  async load() {
    if (!this.data) {
      const r = await fetch("/api/network");
      this.data = await r.json();
      $("net-step").onclick = () => this.go(this.k + 1);
      $("net-back").onclick = () => this.go(this.k - 1);
      $("net-all").onclick = () => this.go(10);
      $("net-reset").onclick = () => this.go(0);
      this.k = Math.max(0, Math.min(10, Number(readHash().get("step") || 0)));
    }
    this.draw();
  },

  go(k) {
    this.k = Math.max(0, Math.min(10, k));
    writeHash({ step: this.k || null });
    this.draw();
  },

  layer(l) { return this.data.walk.layers[l - 2]; },

  draw() {
    const w = this.data.walk, steps = this.steps();
    const shown = { a: new Set(), delta: new Set(), dw: new Set(), db: new Set(), cost: false };
    for (let i = 0; i < this.k; i++) {
      const s = steps[i].show;
      for (const key of ["a", "delta", "dw", "db"]) for (const l of s[key] || []) shown[key].add(l);
      if (s.cost) shown.cost = true;
    }
    const current = this.k > 0 ? steps[this.k - 1] : null;
    const currentLayers = current ? [].concat(...Object.values(current.show).filter(Array.isArray)) : [];
    // The steps list.
    const ol = $("net-steps");
    ol.textContent = "";
    ol.appendChild(Object.assign(document.createElement("li"), { textContent: "Feed-forward", style: "list-style:none;font-weight:bold" }));
    steps.forEach((s, i) => {
      if (i === 5) ol.appendChild(Object.assign(document.createElement("li"), { textContent: "Backpropagation", style: "list-style:none;font-weight:bold" }));
      const li = document.createElement("li");
      li.style.listStyle = "none";
      li.textContent = s.title + (i >= 5 ? `   (${s.equation})` : "");
      li.className = i < this.k - 1 ? "done" : i === this.k - 1 ? "current" : "";
      ol.appendChild(li);
    });
    $("net-equation").textContent = current ? (current.equation === "feed-forward" ? "feed-forward" : "applying " + current.equation) : "";
    $("net-step").disabled = this.k === 10;
    $("net-back").disabled = this.k === 0;
    // The text, as `demo --network` prints it.
    const vec = (v) => "[" + v.map((x) => x.toFixed(6).padStart(10)).join("") + " ]";
    const lines = [];
    for (let i = 0; i < this.k; i++) {
      const s = steps[i].show;
      if (s.a && s.a[0] === 1) lines.push("Step 1: a^1 = z^1 = x".padEnd(30) + vec(w.x));
      else if (s.a) {
        const l = s.a[0], L = this.layer(l);
        lines.push(`Step ${l}: z^${l} = W^${l} a^${l - 1} + b^${l}`.padEnd(30) + vec(L.z));
        lines.push(`        a^${l} = F(z^${l})`.padEnd(30) + vec(L.a));
      } else if (s.cost) lines.push("Step 5: C = C(a^4, y)".padEnd(30) + "  " + w.C.toFixed(6).padStart(10));
      else if (s.delta) {
        const l = s.delta[0];
        lines.push(`${steps[i].title.padEnd(47)}(${steps[i].equation}) ` + vec(this.layer(l).delta));
      } else if (s.dw) {
        lines.push(`${steps[i].title.padEnd(47)}(${steps[i].equation})`);
        for (const l of [4, 3, 2]) {
          const L = this.layer(l), cols = l === 2 ? 2 : 4;
          for (let r = 0; r < L.delta.length; r++) {
            lines.push("        " + (r === 0 ? `dC/dW^${l} =` : "").padEnd(11) + " " + vec(L.dC_dW.slice(r * cols, (r + 1) * cols)));
          }
        }
      } else if (s.db) {
        lines.push(`${steps[i].title.padEnd(47)}(${steps[i].equation})`);
        for (const l of [4, 3, 2]) lines.push(`        dC/db^${l} = ` + vec(this.layer(l).dC_db));
      }
    }
    $("net-text").textContent = lines.join("\n");
    this.drawSvg(shown, currentLayers, current);
  },

  drawSvg(shown, currentLayers, current) {
    const w = this.data.walk, svg = $("net-svg");
    svg.textContent = "";
    const sizes = w.sizes, X = (l) => 60 + (l - 1) * 250, Y = (l, j) => 40 + j * 100 + (4 - sizes[l - 1]) * 50;
    svg.setAttribute("width", 960); svg.setAttribute("height", 440); svg.setAttribute("viewBox", "0 0 960 440");
    // The weight gradients are labelled on the edges into one neuron at a time (click another):
    // all 36 at once cover each other where the edges cross.
    const sel = this.selected || [4, 0];
    const isDw = current && current.show.dw;
    for (let l = 2; l <= 4; l++) {
      const L = this.layer(l);
      for (let j = 0; j < sizes[l - 1]; j++) {
        for (let k = 0; k < sizes[l - 2]; k++) {
          const active = isDw && shown.dw.has(l);
          const grp = svgEl("g", { class: "wedge" + (active ? " active" : "") }, svg);
          const x1 = X(l - 1) + 26, y1 = Y(l - 1, k), x2 = X(l) - 26, y2 = Y(l, j);
          svgEl("line", { x1, y1, x2, y2 }, grp);
          const title = svgEl("title", {}, grp);
          title.textContent = `w^${l}_${j + 1}${k + 1} = ${L.weights[j * sizes[l - 2] + k].toFixed(6)}` +
            (shown.dw.has(l) ? `, dC/dw^${l}_${j + 1}${k + 1} = ${L.dC_dW[j * sizes[l - 2] + k].toFixed(6)}` : "");
          if (active && l === sel[0] && j === sel[1]) {
            // Near the target, past the source neurons' own z, a and delta.
            const t = svgEl("text", { x: x1 + (x2 - x1) * 0.72, y: y1 + (y2 - y1) * 0.72 - 3, "text-anchor": "middle" }, grp);
            t.textContent = L.dC_dW[j * sizes[l - 2] + k].toFixed(4);
          }
        }
      }
    }
    for (let l = 1; l <= 4; l++) {
      for (let j = 0; j < sizes[l - 1]; j++) {
        const active = currentLayers.includes(l);
        const chosen = isDw && l === sel[0] && j === sel[1];
        const grp = svgEl("g", { class: "neuron" + (active ? " active" : "") + (chosen ? " chosen" : ""), "data-layer": l, "data-j": j + 1 }, svg);
        if (l > 1) {
          grp.addEventListener("click", () => { this.selected = [l, j]; this.drawSvg(shown, currentLayers, current); });
          const tip = svgEl("title", {}, grp);
          tip.textContent = "click: label the gradients of the weights into this neuron";
        }
        const x = X(l), y = Y(l, j);
        svgEl("circle", { cx: x, cy: y, r: 26 }, grp);
        const name = svgEl("text", { x, y: y + 4, "text-anchor": "middle" }, grp);
        name.textContent = l === 1 ? `x${j + 1}` : `${l},${j + 1}`;
        const lines = [];
        if (l === 1 && shown.a.has(1)) lines.push(["a", `a = ${w.x[j].toFixed(6)}`]);
        if (l > 1 && shown.a.has(l)) {
          const L = this.layer(l);
          lines.push(["z", `z = ${L.z[j].toFixed(6)}`], ["a", `a = ${L.a[j].toFixed(6)}`]);
        }
        if (l > 1 && shown.delta.has(l)) lines.push(["delta", `\u03b4 = ${this.layer(l).delta[j].toFixed(6)}`]);
        if (l > 1 && shown.db.has(l)) lines.push(["delta", `dC/db = ${this.layer(l).dC_db[j].toFixed(6)}`]);
        lines.forEach(([cls, s], i) => {
          const t = svgEl("text", { x: x + 30, y: y - 14 + i * 14, class: cls }, grp);
          t.textContent = s;
        });
      }
    }
    if (shown.cost) {
      const t = svgEl("text", { x: X(3), y: 425 }, svg);
      t.textContent = `C = ${w.C.toFixed(6)}  (y = ${w.y.join(", ")})`;
    }
  },
};

// =====================================================================================
// 3. The playground
// =====================================================================================

const COLORS = ["#f59322", "#0877bd", "#2ca02c", "#9467bd", "#d62728", "#8c564b", "#e377c2", "#7f7f7f"];
const DEFAULTS = { data: "xor", points: 500, noise: 0, test: 50, seed: 1, hidden: "4,4", activation: "tanh",
  cost: "log-likelihood", optimizer: "sgd", lr: 0.03, batch: 10, l2: 0 };
const FIELDS = { data: "p-data", points: "p-points", noise: "p-noise", test: "p-test", seed: "p-seed", hidden: "p-hidden",
  activation: "p-activation", cost: "p-cost", optimizer: "p-optimizer", lr: "p-lr", batch: "p-batch", l2: "p-l2" };

const Play = {
  ready: false,
  id: null,
  source: null,
  playing: false,
  start: null,
  frames: [],
  rows: null, // uploaded x, y, label rows

  ensure() {
    if (this.ready) return;
    this.ready = true;
    const h = readHash();
    for (const [k, id] of Object.entries(FIELDS)) {
      $(id).value = h.get(k) ?? DEFAULTS[k];
      $(id).addEventListener("change", () => this.remake());
    }
    $("p-play").onclick = () => this.act(this.playing ? "pause" : "play");
    $("p-step").onclick = () => this.act("step");
    $("p-reset").onclick = () => this.remake();
    $("p-csv").addEventListener("change", (e) => this.upload(e.target.files[0]));
    this.remake();
  },

  settings() {
    const v = (k) => $(FIELDS[k]).value;
    const hidden = v("hidden").trim() === "" ? [] : v("hidden").split(",").map((s) => Number(s.trim()));
    const s = { data: v("data"), points: Number(v("points")), noise: Number(v("noise")), test_percent: Number(v("test")),
      hidden, activation: v("activation"), cost: v("cost"), optimizer: v("optimizer"), lr: Number(v("lr")),
      batch: Number(v("batch")), l2: Number(v("l2")), seed: Number(v("seed")) };
    if (s.data === "csv") s.rows = this.rows || [];
    return s;
  },

  upload(file) {
    const err = $("p-csv-error");
    if (!file) return;
    file.text().then((text) => {
      const rows = [];
      const problems = [];
      text.split(/\r?\n/).forEach((line, i) => {
        if (!line.trim()) return;
        const cells = line.split(",").map((c) => c.trim());
        const nums = cells.map(Number);
        if (cells.length !== 3 || nums.some((x) => !Number.isFinite(x) || cells.some((c) => c === ""))) {
          if (i === 0) return; // a header
          problems.push(`line ${i + 1}: expected x,y,label, found "${line.slice(0, 40)}"`);
          return;
        }
        rows.push(nums);
      });
      if (problems.length) {
        err.hidden = false;
        err.textContent = problems[0] + (problems.length > 1 ? ` (and ${problems.length - 1} more)` : "");
        return;
      }
      err.hidden = true;
      this.rows = rows;
      this.remake();
    });
  },

  async remake() {
    const s = this.settings();
    $("p-csv-label").hidden = s.data !== "csv";
    const hash = {};
    for (const k of Object.keys(FIELDS)) hash[k] = String($(FIELDS[k]).value) === String(DEFAULTS[k]) ? null : $(FIELDS[k]).value;
    writeHash(hash);
    $("p-link").href = location.href;
    this.stop();
    const r = await postJson("/api/play", s);
    if (!r.ok) {
      $("p-error").hidden = false;
      $("p-error").textContent = r.body.error;
      return;
    }
    $("p-error").hidden = true;
    this.id = r.body.id;
    this.frames = [];
    const src = new EventSource(`/api/play/${this.id}/events`);
    this.source = src;
    src.addEventListener("start", (e) => { this.start = JSON.parse(e.data); this.buildNeurons(); });
    src.addEventListener("frame", (e) => this.frame(JSON.parse(e.data)));
    src.addEventListener("end", (e) => { $("p-error").hidden = false; $("p-error").textContent = JSON.parse(e.data).reason; this.setPlaying(false); src.close(); });
    src.onerror = () => { if (src.readyState === EventSource.CLOSED) this.setPlaying(false); };
    if (this.playing) this.act("play");
  },

  stop() {
    if (this.source) { this.source.close(); this.source = null; }
    if (this.id !== null) fetch(`/api/play/${this.id}`, { method: "POST", body: JSON.stringify({ action: "stop" }) }).catch(() => {});
    this.id = null;
  },

  act(action) {
    if (action === "play") this.setPlaying(true);
    if (action === "pause" || action === "step") this.setPlaying(false);
    if (this.id !== null) fetch(`/api/play/${this.id}`, { method: "POST", body: JSON.stringify({ action }) });
  },

  setPlaying(p) {
    this.playing = p;
    $("p-play").textContent = p ? "Pause" : "Play";
  },

  buildNeurons() {
    const box = $("p-neurons");
    box.textContent = "";
    const sizes = this.start.sizes;
    for (let l = 2; l < sizes.length; l++) {
      const col = document.createElement("div");
      col.className = "layer";
      col.appendChild(Object.assign(document.createElement("span"), { textContent: `layer ${l}` }));
      for (let j = 1; j <= sizes[l - 1]; j++) {
        const c = document.createElement("canvas");
        c.width = c.height = this.start.neuron_grid;
        c.id = `n-${l}-${j}`;
        c.title = `neuron ${j} of layer ${l}: its activation over the plane`;
        col.appendChild(c);
      }
      box.appendChild(col);
    }
  },

  frame(f) {
    if (!this.start) return;
    // Only what the curves need: a frame's maps are large, and a run may last many epochs.
    this.frames.push({ epoch: f.epoch, train_loss: f.train_loss, test_loss: f.test_loss });
    const pct = (x) => (100 * x).toFixed(1) + "%";
    $("p-epoch").textContent = `epoch ${f.epoch}`;
    $("p-train-loss").textContent = `train loss ${f.train_loss === null ? "-" : f.train_loss.toFixed(4)}`;
    $("p-test-loss").textContent = `test loss ${f.test_loss === null ? "-" : f.test_loss.toFixed(4)}`;
    $("p-test-accuracy").textContent = `test accuracy ${pct(f.test_accuracy)}`;
    $("p-test-accuracy").dataset.value = f.test_accuracy;
    this.drawDecision(f);
    this.drawCurves();
    for (const n of f.neurons) {
      const c = $(`n-${n.layer}-${n.j}`);
      if (c) drawMap(c, bytes(n.map), this.start.neuron_grid, (v) => diverging(v / 255));
    }
  },

  drawDecision(f) {
    const c = $("p-decision"), ctx = c.getContext("2d"), s = this.start;
    const d = bytes(f.decision), n = s.grid;
    const two = s.classes === 2;
    const cells = new Uint8Array(n * n);
    const img = document.createElement("canvas");
    img.width = img.height = n;
    const ictx = img.getContext("2d"), data = ictx.createImageData(n, n);
    for (let i = 0; i < n * n; i++) {
      const k = d[2 * i], p = d[2 * i + 1] / 255;
      let rgb;
      if (two) rgb = diverging(k === 1 ? p : 1 - p);
      else rgb = mix([255, 255, 255], hex(COLORS[k % COLORS.length]), Math.max(0, (p - 1 / s.classes) / (1 - 1 / s.classes)) * 0.8);
      // Paler than the points, as in TensorFlow Playground, so a point of the other class stands out.
      rgb = mix([255, 255, 255], rgb, 0.6);
      data.data.set([rgb[0], rgb[1], rgb[2], 255], 4 * i);
      cells[i] = k;
    }
    ictx.putImageData(data, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(img, 0, 0, c.width, c.height);
    const [x0, x1, y0, y1] = s.bounds;
    const px = (x) => ((x - x0) / (x1 - x0)) * c.width, py = (y) => (1 - (y - y0) / (y1 - y0)) * c.height;
    // Every point in its own class's full colour: training points ringed in white, test
    // points in black (TensorFlow Playground's convention).
    for (const [pts, ring] of [[s.train, "#fff"], [s.test, "#222"]]) {
      for (const [x, y, l] of pts) {
        ctx.beginPath();
        ctx.arc(px(x), py(y), 3.2, 0, 2 * Math.PI);
        ctx.fillStyle = COLORS[l % COLORS.length];
        ctx.fill();
        ctx.strokeStyle = ring;
        ctx.lineWidth = 1;
        ctx.stroke();
      }
    }
  },

  drawCurves() {
    const c = $("p-curves"), ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    const fr = this.frames.filter((f) => f.train_loss !== null && f.test_loss !== null);
    if (fr.length < 1) return;
    const max = Math.max(...fr.map((f) => Math.max(f.train_loss, f.test_loss)), 1e-9);
    const X = (i) => 30 + (i / Math.max(1, fr.length - 1)) * (c.width - 40), Y = (v) => c.height - 18 - (v / max) * (c.height - 30);
    ctx.font = "11px monospace"; ctx.fillStyle = "#666";
    ctx.fillText(max.toFixed(3), 2, 12); ctx.fillText("0", 18, c.height - 18);
    ctx.fillText(`epoch ${fr[fr.length - 1].epoch}`, c.width - 80, c.height - 4);
    for (const [key, color, label, lx] of [["train_loss", "#0877bd", "train", 70], ["test_loss", "#f59322", "test", 170]]) {
      ctx.strokeStyle = color; ctx.lineWidth = 1.8; ctx.beginPath();
      fr.forEach((f, i) => (i ? ctx.lineTo(X(i), Y(f[key])) : ctx.moveTo(X(i), Y(f[key]))));
      ctx.stroke();
      ctx.fillStyle = color; ctx.fillText(label + " loss", lx, 12);
    }
  },
};

function bytes(b64) {
  const s = atob(b64), out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function hex(h) {
  return [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
}

function mix(a, b, t) {
  return a.map((x, i) => Math.round(x + (b[i] - x) * t));
}

// 0 orange, 0.5 white, 1 blue.
function diverging(t) {
  return t < 0.5 ? mix(hex(COLORS[0]), [255, 255, 255], t * 2) : mix([255, 255, 255], hex(COLORS[1]), (t - 0.5) * 2);
}

function drawMap(canvas, values, n, color) {
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(n, n);
  for (let i = 0; i < n * n; i++) {
    const [r, g, b] = color(values[i]);
    img.data.set([r, g, b, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
}

// A link followed or a hash typed (the page's own changes use replaceState, which fires no
// event): the page is rebuilt from the URL.
window.addEventListener("hashchange", () => location.reload());

Graph.init();
showPart(readHash().get("part") || "graph");
