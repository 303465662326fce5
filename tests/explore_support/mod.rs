//! What the `explore` tests share: the server started on a free port, a small HTTP client,
//! and a WebDriver client for headless Chromium (through chromium-driver).

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// `backprop explore --port 0`, killed when dropped.
pub struct Server {
    child: Child,
    /// The port it said it listens on.
    pub port: u16,
}

impl Server {
    pub fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_backprop"))
            .args(["explore", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the first line");
        // "backprop explore: serving the post's figures on http://127.0.0.1:PORT/ (...)"
        let port = line
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Server { child, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port`; the status and the body.
pub fn request(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // A body refused by its length is answered before it is read; the write may then fail.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// POSTs a JSON value.
pub fn post(port: u16, path: &str, body: &Value) -> (u16, String) {
    request(port, "POST", path, body.to_string().as_bytes())
}

/// Where the screenshots go: `BACKPROP_SCREENSHOTS` (the README's command sets it to
/// docs/explore), else the test's scratch directory.
pub fn screenshot_dir() -> PathBuf {
    let dir = match std::env::var_os("BACKPROP_SCREENSHOTS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("explore-screenshots"),
    };
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    dir
}

/// Finds a program on PATH or at one of `paths`.
fn find(names: &[&str]) -> Option<PathBuf> {
    for name in names {
        let p = PathBuf::from(name);
        if p.is_absolute() && p.is_file() {
            return Some(p);
        }
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Headless Chromium driven over WebDriver by chromium-driver.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

/// Chromium and its driver, or why the browser tests are skipped. With
/// `BACKPROP_BROWSER_TESTS=require` (as CI runs them) a missing browser fails the test.
pub fn browser() -> Option<Browser> {
    let chromium = std::env::var_os("CHROME")
        .map(PathBuf::from)
        .or_else(|| find(&["chromium", "chromium-browser", "/usr/bin/chromium"]));
    let driver = find(&["chromedriver", "/usr/bin/chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        let message = "no Chromium found (chromium and chromium-driver): the browser tests of `explore` are skipped; \
             install them (Debian: apt-get install chromium chromium-driver) to run them";
        if std::env::var("BACKPROP_BROWSER_TESTS").as_deref() == Ok("require") {
            panic!("{message}");
        }
        eprintln!("skipped: {message}");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium-driver starts");
    let mut b = Browser {
        driver: child,
        port,
        session: String::new(),
    };
    let t = Instant::now();
    while request_ok(port, "GET", "/status", &Value::Null).is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "chromium-driver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
        "binary": chromium,
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1100", "--hide-scrollbars", "--force-device-scale-factor=1"]
    }}}});
    let v = b.call("POST", "/session", &caps);
    b.session = v["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
        .to_string();
    Some(b)
}

fn request_ok(port: u16, method: &str, path: &str, body: &Value) -> Option<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    drop(s.set_read_timeout(Some(Duration::from_secs(120))));
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    let (_, body) = read_response(&mut BufReader::new(s))?;
    serde_json::from_str(&body).ok()
}

/// Reads one response: by its Content-Length, chunked, or to the end of the connection
/// (chromium-driver keeps connections open, so reading to the end would wait).
fn read_response(r: &mut impl BufRead) -> Option<(String, String)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    let mut body = Vec::new();
    if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body).ok()?;
    } else if lower.contains("transfer-encoding: chunked") {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        r.read_to_end(&mut body).ok()?;
    }
    Some((head, String::from_utf8_lossy(&body).into_owned()))
}

impl Browser {
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let v = request_ok(self.port, method, path, body)
            .unwrap_or_else(|| panic!("WebDriver {method} {path}: no answer"));
        if let Some(e) = v["value"]["error"].as_str() {
            panic!("WebDriver {method} {path}: {e}: {}", v["value"]["message"]);
        }
        v
    }

    fn session(&self, method: &str, path: &str, body: &Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.session("POST", "/url", &json!({ "url": url }));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub fn eval(&self, script: &str, args: Value) -> Value {
        self.session(
            "POST",
            "/execute/sync",
            &json!({"script": script, "args": args}),
        )
    }

    /// Waits until `script` returns something truthy; its value.
    pub fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let t = Instant::now();
        loop {
            let v = self.eval(script, json!([]));
            if !(v.is_null() || v == json!(false) || v == json!("")) {
                return v;
            }
            assert!(t.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn element(&self, css: &str) -> String {
        let v = self.session(
            "POST",
            "/element",
            &json!({"using": "css selector", "value": css}),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|id| id.as_str())
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    /// A real click on the element.
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.session("POST", &format!("/element/{id}/click"), &json!({}));
    }

    /// Clears an input and types `text` into it, as a person would.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.session("POST", &format!("/element/{id}/clear"), &json!({}));
        self.session(
            "POST",
            &format!("/element/{id}/value"),
            &json!({ "text": text }),
        );
    }

    /// The text of the first element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let v = self.eval(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([css]),
        );
        v.as_str()
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    /// A PNG of the window.
    pub fn screenshot(&self, path: &std::path::Path) {
        let v = self.session("GET", "/screenshot", &Value::Null);
        let png = base64_decode(v.as_str().expect("base64"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).expect("the screenshot is written");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request_ok(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                &Value::Null,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| !matches!(c, b'=' | b'\n' | b'\r'))
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | (value(c) as u32) << (18 - 6 * i));
        for k in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * k)) as u8);
        }
    }
    out
}
