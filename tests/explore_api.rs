//! `backprop explore`'s JSON API over real HTTP, without a browser: the server started on a
//! free port, its answers compared with what the commands print.

mod explore_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use explore_support::{post, request, Server};
use serde_json::{json, Value};

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn diff_answers_exactly_what_diff_json_prints() {
    let server = Server::start();
    let cases = [
        (
            "c = a + b; d = a * b; o = 0.5 * c * d",
            json!({"a": 2, "b": 3}),
            "a=2,b=3",
        ),
        (
            "y = sigmoid(w * x + b)",
            json!({"w": 0.5, "x": 2, "b": -1}),
            "w=0.5,x=2,b=-1",
        ),
        // An unused binding keeps its place; a derivative that is not finite is a string.
        ("o = sqrt(a - 2)", json!({"a": 2, "z": 0.1}), "a=2,z=0.1"),
        (
            "u = x*x; o = u^3 / (1 + exp(-u))",
            json!({"x": -0.3}),
            "x=-0.3",
        ),
    ];
    for (program, at, flag) in cases {
        let (status, body) = post(
            server.port,
            "/api/diff",
            &json!({"program": program, "at": at}),
        );
        assert_eq!(status, 200, "{body}");
        let printed = cli(&["diff", program, "--at", flag, "--json", "--paths"]);
        assert_eq!(
            body,
            String::from_utf8(printed.stdout).unwrap().trim_end(),
            "{program}"
        );
        // Without the paths: `diff --json` alone.
        let (_, body) = post(
            server.port,
            "/api/diff",
            &json!({"program": program, "at": at, "paths": false}),
        );
        let printed = cli(&["diff", program, "--at", flag, "--json"]);
        assert_eq!(
            body,
            String::from_utf8(printed.stdout).unwrap().trim_end(),
            "{program}"
        );
    }
}

#[test]
fn a_bad_program_gets_400_with_the_commands_message() {
    let server = Server::start();
    let deep = format!("o = {}a{}", "(".repeat(300), ")".repeat(300));
    let programs = [
        "o = (a + b",
        "o = a +* b",
        "o = foo(a)",
        "o = a; o = 2",
        "o = ln(a - 5)",
        deep.as_str(),
    ];
    for program in programs {
        let (status, body) = post(
            server.port,
            "/api/diff",
            &json!({"program": program, "at": {"a": 1, "b": 2}}),
        );
        assert_eq!(status, 400, "{program}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let printed = cli(&["diff", program, "--at", "a=1,b=2"]);
        let stderr = String::from_utf8(printed.stderr).unwrap();
        assert_eq!(
            format!("error: {}", v["error"].as_str().unwrap()),
            stderr.trim_end(),
            "{program}"
        );
    }
    // Too many paths for --paths: the command's refusal too.
    let chain: String = (0..12)
        .map(|i| format!("x{} = x{i} + x{i}*2\n", i + 1))
        .collect();
    let (status, body) = post(
        server.port,
        "/api/diff",
        &json!({"program": chain, "at": {"x0": 1}}),
    );
    assert_eq!(status, 400);
    assert!(
        body.contains("--paths: ") && body.contains("over the limit of 1000 in all"),
        "{body}"
    );
}

#[test]
fn limits_of_a_page_that_is_an_input_like_any_other() {
    let server = Server::start();
    // Over 1 MB: 413, by the length it claims.
    let big = vec![b' '; (1 << 20) + 1];
    let (status, body) = request(server.port, "POST", "/api/diff", &big);
    assert_eq!(
        (status, body.as_str()),
        (413, r#"{"error":"the request body is over 1048576 bytes"}"#)
    );
    // Exactly 1 MB is read (and is not JSON).
    let (status, _) = request(server.port, "POST", "/api/diff", &vec![b' '; 1 << 20]);
    assert_eq!(status, 400);
    // A playground beyond its bounds.
    let settings = json!({"data": "xor", "hidden": [9], "activation": "tanh", "cost": "log-likelihood",
                          "optimizer": "sgd", "lr": 0.03, "batch": 10});
    let (status, body) = post(server.port, "/api/play", &settings);
    assert_eq!(status, 400);
    assert!(
        body.contains("hidden: a layer of 9 neurons; each has 1 to 8"),
        "{body}"
    );
    // Pages: the page itself, its script, and nothing else.
    let (status, page) = request(server.port, "GET", "/", b"");
    assert_eq!(status, 200);
    assert!(
        page.contains("<script src=\"/app.js\">")
            && !page.contains("http://")
            && !page.contains("https://")
    );
    assert_eq!(request(server.port, "GET", "/app.js", b"").0, 200);
    assert_eq!(request(server.port, "GET", "/etc/passwd", b"").0, 404);
    // The network walk-through is demo --network --json's.
    let (status, body) = request(server.port, "GET", "/api/network", b"");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let printed: Value =
        serde_json::from_slice(&cli(&["demo", "--network", "--json"]).stdout).unwrap();
    assert_eq!(v["walk"], printed);
    assert_eq!(v["steps"][0]["equation"], "Equation 4");
}

/// Opens the event stream of a new xor run; the connection, with the `start` event read.
fn open_run(port: u16) -> Result<(u64, BufReader<TcpStream>), u16> {
    let settings = json!({"data": "xor", "points": 200, "hidden": [4], "activation": "tanh",
                          "cost": "log-likelihood", "optimizer": "sgd", "lr": 0.03, "batch": 10});
    let (status, body) = post(port, "/api/play", &settings);
    assert_eq!(status, 200, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_u64()
        .unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /api/play/{id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    if !line.contains(" 200 ") {
        return Err(line.split(' ').nth(1).unwrap().parse().unwrap());
    }
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.starts_with("event: start") {
            return Ok((id, r));
        }
    }
}

/// The next `frame` event's data.
fn next_frame(r: &mut BufReader<TcpStream>) -> Value {
    let mut line = String::new();
    let mut frame = false;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.starts_with("event: frame") {
            frame = true;
        } else if frame && line.starts_with("data: ") {
            return serde_json::from_str(&line[6..]).unwrap();
        }
    }
}

#[test]
fn a_run_streams_epochs_on_demand_and_ends_with_its_page() {
    let server = Server::start();
    let (id, mut r) = open_run(server.port).unwrap();
    assert_eq!(next_frame(&mut r)["epoch"], 0);
    // Paused until told: one step is one epoch.
    let (status, _) = post(
        server.port,
        &format!("/api/play/{id}"),
        &json!({"action": "step"}),
    );
    assert_eq!(status, 200);
    let f = next_frame(&mut r);
    assert_eq!(f["epoch"], 1);
    assert!(f["test_loss"].as_f64().unwrap() > 0.0);
    let (status, body) = post(
        server.port,
        &format!("/api/play/{id}"),
        &json!({"action": "jump"}),
    );
    assert_eq!(status, 400, "{body}");
    // Four runs stream at once; a fifth is refused until a page goes away.
    let others: Vec<_> = (0..3).map(|_| open_run(server.port).unwrap()).collect();
    assert_eq!(open_run(server.port).err(), Some(503));
    drop(r);
    // The paused run finds its page gone at its next keep-alive write, within seconds.
    let t = Instant::now();
    loop {
        match open_run(server.port) {
            Ok(_) => break,
            Err(503) if t.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(status) => panic!(
                "a gone page's run still holds its place ({status}) after {:?}",
                t.elapsed()
            ),
        }
    }
    drop(others);
}
