//! `backprop explore` in a real browser: headless Chromium driven over WebDriver
//! (chromium-driver), clicking and typing as a person would, reading what the page shows.
//! Skipped with a message when no Chromium is installed (CI installs it and requires it).
//!
//! The screenshots of the README come from here:
//! `BACKPROP_SCREENSHOTS=docs/explore cargo test --release --test explore_browser`.

mod explore_support;

use std::time::{Duration, Instant};

use explore_support::{browser, screenshot_dir, Server};
use serde_json::json;

/// The text of a node of the graph, by its label.
fn node(label: &str) -> String {
    format!("#graph-svg g.node[data-label='{label}']")
}

#[test]
fn the_page_shows_the_posts_numbers_and_learns_xor() {
    let Some(b) = browser() else { return };
    let server = Server::start();
    let shots = screenshot_dir();

    // 1. The graph, at the post's a = 2, b = 3: reverse mode one step at a time.
    b.goto(&server.url("/#part=graph"));
    b.wait_for(
        "the graph",
        "return document.querySelector(\"#graph-svg g.node[data-label='o']\")",
        Duration::from_secs(10),
    );
    assert!(
        b.text(&node("o")).contains("= 15"),
        "{}",
        b.text(&node("o"))
    );
    let mut clicks = 0;
    while b.eval(
        "return document.getElementById('reverse-step').disabled",
        json!([]),
    ) == json!(false)
    {
        b.click("#reverse-step");
        clicks += 1;
        assert!(clicks <= 100, "reverse mode does not end");
    }
    let work: u64 = b.text("#work").trim().parse().unwrap();
    // As many steps as the work counter says, and as many as `diff` counts: 7.
    assert_eq!((clicks, work), (7, 7));
    assert!(b.text("#pass-status").contains("step 7 of 7 (done)"));
    assert!(
        b.text(&node("o")).contains("= 15"),
        "{}",
        b.text(&node("o"))
    );
    assert!(
        b.text(&node("a")).contains("do/da = 10.5"),
        "{}",
        b.text(&node("a"))
    );
    assert!(
        b.text(&node("b")).contains("do/db = 8"),
        "{}",
        b.text(&node("b"))
    );
    assert!(
        b.text("#paths").contains("a -> d -> o3 * 2.5 = 7.5"),
        "{}",
        b.text("#paths")
    );
    b.screenshot(&shots.join("graph.png"));

    // a = 1: c = 4, d = 3, o = 6; do/da = (d + c b) / 2 = 7.5.
    b.type_into("#in-a", "1");
    b.wait_for(
        "o = 6",
        "return document.querySelector(\"#graph-svg g.node[data-label='o']\").textContent.includes('= 6')",
        Duration::from_secs(10),
    );
    assert!(
        b.text(&node("a")).contains("do/da = 7.5"),
        "{}",
        b.text(&node("a"))
    );
    // The point is in the URL.
    let url = b.eval("return location.hash", json!([]));
    assert!(url.as_str().unwrap().contains("at.a=1"), "{url}");

    // A program with an error: the message and its position under the box.
    b.type_into("#program", "o = (a + b");
    let error = b.wait_for(
        "the error",
        "const e = document.getElementById('program-error'); return !e.hidden && e.textContent",
        Duration::from_secs(10),
    );
    assert!(
        error
            .as_str()
            .unwrap()
            .starts_with("program: line 1, column 11: expected ')', found end of program"),
        "{error}"
    );

    // 2. The network: step to delta^4 and compare with `demo --network`.
    b.goto(&server.url("/#part=network"));
    b.wait_for(
        "the network",
        "return document.querySelector('#net-svg g.neuron')",
        Duration::from_secs(10),
    );
    for _ in 0..6 {
        b.click("#net-step");
    }
    assert_eq!(b.text("#net-equation"), "applying Equation 4");
    let page_line = b.text("#net-text").lines().last().unwrap().to_string();
    let demo = std::process::Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(["demo", "--network"])
        .output()
        .unwrap();
    let demo = String::from_utf8(demo.stdout).unwrap();
    let demo_line = demo.lines().find(|l| l.contains("delta^4 =")).unwrap();
    assert_eq!(page_line, demo_line);
    // Each output neuron shows its own delta: the numbers of the line, one by one.
    let vector: Vec<&str> = demo_line
        .rsplit('[')
        .next()
        .unwrap()
        .trim_end_matches(" ]")
        .split_whitespace()
        .collect();
    for (j, d) in vector.iter().enumerate() {
        let neuron = b.text(&format!(
            "#net-svg g.neuron[data-layer='4'][data-j='{}']",
            j + 1
        ));
        assert!(neuron.contains(&format!("δ = {d}")), "{neuron} lacks {d}");
    }
    b.click("#net-step");
    b.click("#net-step");
    b.click("#net-step");
    assert_eq!(b.text("#net-equation"), "applying Equation 1");
    b.screenshot(&shots.join("network.png"));

    // 3. The playground: xor to 95% test accuracy within 20 seconds; the settings from the URL.
    b.goto(&server.url("/#part=play&hidden=8,8&optimizer=adam&lr=0.03"));
    b.wait_for(
        "the first frame",
        "return document.getElementById('p-epoch').textContent === 'epoch 0'",
        Duration::from_secs(10),
    );
    assert_eq!(
        b.eval(
            "return document.getElementById('p-optimizer').value",
            json!([])
        ),
        json!("adam")
    );
    let t = Instant::now();
    b.click("#p-play");
    let accuracy = loop {
        let a = b.eval(
            "return Number(document.getElementById('p-test-accuracy').dataset.value || 0)",
            json!([]),
        );
        let a = a.as_f64().unwrap();
        if a >= 0.95 {
            break a;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "test accuracy {a} after {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "xor: test accuracy {accuracy} after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // Let it learn a little more for the picture, then pause.
    std::thread::sleep(Duration::from_secs(2));
    b.click("#p-play");
    assert_eq!(b.text("#p-play"), "Play");
    let neurons = b.eval(
        "return document.querySelectorAll('#p-neurons canvas').length",
        json!([]),
    );
    assert_eq!(neurons, json!(16));
    b.screenshot(&shots.join("playground.png"));
}
