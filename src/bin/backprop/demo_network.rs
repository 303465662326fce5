//! `backprop demo --network`: the post's Figure 2 walked through for one example, step by
//! step, as the post prints it: feed-forward (z^l, a^l), then delta^4, delta^3, delta^2 by
//! Equations 4 and 3, then dC/dW^l and dC/db^l by Equations 1 and 2.

use anyhow::Context;
use backprop::linalg::Matrix;
use backprop::network::{gradcheck, Activation, Cost, Layer, Network, Workspace};
use std::fmt::Write;

/// Figure 2's sizes N^1..N^4.
const SIZES: [usize; 4] = [2, 4, 4, 3];
/// The example x^(i) and its target y^(i).
const X: [f64; 2] = [0.3, -0.7];
const Y: [f64; 3] = [1.0, 0.0, 0.0];

/// Figure 2 with fixed weights w^l_jk = 0.8 sin(7l + 3j + k) and biases b^l_j = 0.5 cos(l + j)
/// (deterministic, varied, no symmetry), sigmoid everywhere, quadratic cost: the general
/// Equation 4, dC/da^4 times F'(z^4), with nothing cancelled.
fn figure2() -> anyhow::Result<Network<f64>> {
    let layers = (0..3)
        .map(|i| {
            let (rows, cols, l) = (SIZES[i + 1], SIZES[i], (i + 2) as f64);
            let w = (0..rows * cols)
                .map(|p| {
                    0.8 * (7.0 * l + 3.0 * (p / cols + 1) as f64 + (p % cols + 1) as f64).sin()
                })
                .collect();
            Layer {
                weights: Matrix::from_vec(rows, cols, w).expect("sized"),
                biases: (0..rows)
                    .map(|j| 0.5 * (l + (j + 1) as f64).cos())
                    .collect(),
                activation: Activation::Sigmoid,
            }
        })
        .collect();
    Ok(Network::from_layers(layers, Cost::Quadratic)?)
}

/// Everything the walk-through shows, computed by the library.
struct Walk {
    net: Network<f64>,
    /// z^l and a^l for l = 2..4 (index 0 is l = 2).
    z: Vec<Vec<f64>>,
    a: Vec<Vec<f64>>,
    cost: f64,
    /// delta^l for l = 2..4.
    delta: Vec<Vec<f64>>,
    /// dC/dW^l and dC/db^l for l = 2..4.
    dw: Vec<Matrix<f64>>,
    db: Vec<Vec<f64>>,
    /// The worst relative error of these gradients against finite differences.
    check: f64,
}

fn walk() -> anyhow::Result<Walk> {
    let net = figure2()?;
    let mut ws = Workspace::new(&net, 1);
    let (losses, grads) = net.per_example_gradients(&X, &Y, 1, &mut ws)?;
    let grads = grads.into_iter().next().context("one example")?;
    let layers = 0..net.layers.len();
    Ok(Walk {
        z: layers.clone().map(|i| ws.z(i).to_vec()).collect(),
        a: layers.clone().map(|i| ws.a(i).to_vec()).collect(),
        delta: layers.map(|i| ws.delta(i).to_vec()).collect(),
        cost: losses[0],
        dw: grads.weights,
        db: grads.biases,
        check: gradcheck(&net, &X, &Y, 1)?.max_rel_error,
        net,
    })
}

fn vector(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:>10.6}")).collect();
    format!("[{} ]", parts.join(""))
}

fn render_text(w: &Walk) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "The post's Figure 2: layers 2, 4, 4, 3; F = sigmoid; C = 1/2 ||a^4 - y||^2"
    );
    let _ = writeln!(
        s,
        "weights w^l_jk = 0.8 sin(7l + 3j + k), biases b^l_j = 0.5 cos(l + j)"
    );
    let _ = writeln!(s, "one example x = (0.3, -0.7) with label y = (1, 0, 0)\n");
    let _ = writeln!(s, "Feed-forward");
    let _ = writeln!(s, "{:<30}{}", "Step 1: a^1 = z^1 = x", vector(&X));
    for i in 0..3 {
        let l = i + 2;
        let step = format!("Step {l}: z^{l} = W^{l} a^{} + b^{l}", l - 1);
        let _ = writeln!(s, "{step:<30}{}", vector(&w.z[i]));
        let _ = writeln!(
            s,
            "{:<30}{}",
            format!("        a^{l} = F(z^{l})"),
            vector(&w.a[i])
        );
    }
    let _ = writeln!(s, "{:<30}  {:>10.6}\n", "Step 5: C = C(a^4, y)", w.cost);
    let _ = writeln!(s, "Backpropagation");
    let step = |k: usize| {
        let (formula, equation) = BACKPROP_STEPS[k];
        format!("Step {}: {formula:<39}({equation})", k + 1)
    };
    for k in 0..3 {
        let _ = writeln!(s, "{} {}", step(k), vector(&w.delta[2 - k]));
    }
    let _ = writeln!(s, "{}", step(3));
    for i in (0..3).rev() {
        let l = i + 2;
        for r in 0..w.dw[i].rows() {
            let label = if r == 0 {
                format!("dC/dW^{l} =")
            } else {
                String::new()
            };
            let _ = writeln!(s, "        {label:<11} {}", vector(w.dw[i].row(r)));
        }
    }
    let _ = writeln!(s, "{}", step(4));
    for i in (0..3).rev() {
        let _ = writeln!(s, "        dC/db^{} = {}", i + 2, vector(&w.db[i]));
    }
    let _ = writeln!(
        s,
        "\nchecked against central finite differences: worst relative error {:.1e}",
        w.check
    );
    s
}

/// The backpropagation steps of the walk-through, in order: the formula and the equation of
/// the post it applies (`explore` names its steps by these too).
pub const BACKPROP_STEPS: [(&str, &str); 5] = [
    ("delta^4 = dC/da^4 . F'(z^4)", "Equation 4"),
    ("delta^3 = (W^4^T delta^4) . F'(z^3)", "Equation 3"),
    ("delta^2 = (W^3^T delta^3) . F'(z^2)", "Equation 3"),
    ("dC/dw^l_jk = delta^l_j a^(l-1)_k", "Equation 1"),
    ("dC/db^l_j = delta^l_j", "Equation 2"),
];

/// What `demo --network --json` prints, as a value.
pub fn json() -> anyhow::Result<serde_json::Value> {
    Ok(render_json(&walk()?))
}

fn render_json(w: &Walk) -> serde_json::Value {
    let layers: Vec<serde_json::Value> = (0..3)
        .map(|i| {
            serde_json::json!({
                "l": i + 2,
                "weights": w.net.layers[i].weights.as_slice(),
                "biases": w.net.layers[i].biases,
                "z": w.z[i],
                "a": w.a[i],
                "delta": w.delta[i],
                "dC_dW": w.dw[i].as_slice(),
                "dC_db": w.db[i],
            })
        })
        .collect();
    serde_json::json!({
        "sizes": SIZES,
        "activation": "sigmoid",
        "cost": "quadratic",
        "x": X,
        "y": Y,
        "C": w.cost,
        "layers": layers,
        "gradcheck_max_rel_error": w.check,
    })
}

/// Prints the walk-through (as text, or as one JSON object with `json`).
pub fn run(json: bool) -> anyhow::Result<()> {
    let w = walk()?;
    crate::out!(
        "{}",
        if json {
            render_json(&w).to_string() + "\n"
        } else {
            render_text(&w)
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sigmoid(z: f64) -> f64 {
        1.0 / (1.0 + (-z).exp())
    }

    #[test]
    fn the_walk_matches_the_posts_equations_computed_by_hand() {
        let w = walk().unwrap();
        // Feed-forward by the post's sums, z^l_j = sum_k w^l_jk a^(l-1)_k + b^l_j.
        let mut a_prev = X.to_vec();
        for i in 0..3 {
            let layer = &w.net.layers[i];
            for j in 0..SIZES[i + 1] {
                let z: f64 = (0..SIZES[i])
                    .map(|k| layer.weights[(j, k)] * a_prev[k])
                    .sum::<f64>()
                    + layer.biases[j];
                assert!((z - w.z[i][j]).abs() < 1e-14);
                assert!((sigmoid(z) - w.a[i][j]).abs() < 1e-14);
            }
            a_prev = w.a[i].clone();
        }
        // Equation 4 with C = 1/2 ||a - y||^2 and F' = a (1 - a).
        for (j, y) in Y.iter().enumerate() {
            let a = w.a[2][j];
            assert!(((a - y) * a * (1.0 - a) - w.delta[2][j]).abs() < 1e-15);
        }
        // Equation 3: delta^l_j = F'(z^l_j) sum_q delta^(l+1)_q w^(l+1)_qj.
        for i in (0..2).rev() {
            for j in 0..4 {
                let a = w.a[i][j];
                let s: f64 = (0..SIZES[i + 2])
                    .map(|q| w.delta[i + 1][q] * w.net.layers[i + 1].weights[(q, j)])
                    .sum();
                assert!((a * (1.0 - a) * s - w.delta[i][j]).abs() < 1e-15);
            }
        }
        // Equations 1 and 2.
        for i in 0..3 {
            let below: &[f64] = if i == 0 { &X } else { &w.a[i - 1] };
            for j in 0..SIZES[i + 1] {
                assert_eq!(w.db[i][j], w.delta[i][j]);
                for (k, &ak) in below.iter().enumerate() {
                    assert_eq!(w.dw[i][(j, k)], w.delta[i][j] * ak);
                }
            }
        }
        assert!(w.check < 1e-7, "{}", w.check);
    }

    #[test]
    fn text_and_json_show_every_step() {
        let w = walk().unwrap();
        let text = render_text(&w);
        for needle in [
            "Step 4: z^4",
            "(Equation 4)",
            "delta^2",
            "dC/dW^2 =",
            "dC/db^4 =",
        ] {
            assert!(text.contains(needle), "{needle}\n{text}");
        }
        let v: serde_json::Value = render_json(&w);
        assert_eq!(v["layers"][2]["delta"].as_array().unwrap().len(), 3);
        assert_eq!(v["C"].as_f64().unwrap(), w.cost);
    }
}
