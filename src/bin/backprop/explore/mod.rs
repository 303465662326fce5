//! `backprop explore`: the post as a page to play with, served on this machine.
//!
//! The page (HTML, CSS, JavaScript, all in the binary) has three parts: Figure 1's graph,
//! stepped through in forward and reverse mode; Figure 2's network, walked through the four
//! equations; and a playground that trains a small network on points of the plane. All the
//! computing is done here, by the library, behind a small JSON API (see the README).

mod api;
mod play;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tiny_http::{Header, Method, Request, Response, Server};

/// Serve the post's figures as a page to play with: the graph, the network, a playground.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The port (0 picks a free one).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// The address to listen on. Anything but a loopback address (127.0.0.1, ::1) lets other
    /// machines use the page and make this one train networks.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Open the page in the system's browser.
    #[arg(long)]
    pub open: bool,
}

/// Request bodies above this size are refused with 413.
pub const MAX_BODY: usize = 1 << 20;
/// At most this many requests are handled at once; more get 503.
const MAX_REQUESTS: usize = 64;

const INDEX: &str = include_str!("assets/index.html");
const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

pub fn run(args: Args) -> anyhow::Result<()> {
    let address = SocketAddr::new(args.host, args.port);
    let server = Server::http(address)
        .map_err(|e| anyhow::anyhow!("--port {}: {address}: {e}", args.port))?;
    let bound = server
        .server_addr()
        .to_ip()
        .context("the server is not on an IP address")?;
    let url = format!("http://{bound}/");
    crate::outln!("backprop explore: serving the post's figures on {url} (Ctrl-C to stop)");
    if !args.host.is_loopback() {
        crate::errln!(
            "warning: listening on {} lets every machine that reaches it use the page and train networks here",
            args.host
        );
    }
    if args.open {
        open(&url);
    }
    let runs = Arc::new(play::Runs::default());
    let busy = Arc::new(AtomicUsize::new(0));
    for request in server.incoming_requests() {
        if busy.fetch_add(1, Ordering::SeqCst) >= MAX_REQUESTS {
            busy.fetch_sub(1, Ordering::SeqCst);
            let _ = request.respond(json(&api::error(503, "too many requests at once")));
            continue;
        }
        let (runs, busy) = (runs.clone(), busy.clone());
        std::thread::spawn(move || {
            handle(request, &runs);
            busy.fetch_sub(1, Ordering::SeqCst);
        });
    }
    Ok(())
}

/// Starts the system's browser on `url`, or says why not.
fn open(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    if let Err(e) = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        crate::errln!("note: --open: could not start {opener} ({e}); open {url} by hand");
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

fn json((status, body): &api::Answer) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body.clone())
        .with_status_code(*status)
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("Cache-Control", "no-store"))
}

fn asset(body: &'static str, kind: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body).with_header(header("Content-Type", kind))
}

/// The request body, or the refusal: over [`MAX_BODY`] (by its length, or as it is read) 413.
fn body(request: &mut Request) -> Result<Vec<u8>, api::Answer> {
    let too_large = || api::error(413, &format!("the request body is over {MAX_BODY} bytes"));
    if request.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| api::error(400, &format!("reading the request body: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(too_large());
    }
    Ok(body)
}

fn handle(mut request: Request, runs: &play::Runs) {
    let path = request
        .url()
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .to_string();
    let method = request.method().clone();
    let response = match (&method, path.as_str()) {
        (Method::Get, "/") | (Method::Get, "/index.html") => {
            asset(INDEX, "text/html; charset=utf-8")
        }
        (Method::Get, "/style.css") => asset(STYLE, "text/css; charset=utf-8"),
        (Method::Get, "/app.js") => asset(SCRIPT, "text/javascript; charset=utf-8"),
        (Method::Get, "/api/network") => json(&api::network()),
        (Method::Get, p) if p.starts_with("/api/play/") && p.ends_with("/events") => {
            let id = p["/api/play/".len()..p.len() - "/events".len()].parse::<u64>();
            match id
                .map_err(|_| api::error(404, "no such run"))
                .and_then(|id| runs.start(id).map(|r| (id, r)))
            {
                Ok((id, (run, control))) => {
                    stream(request, run, &control);
                    runs.finish(id);
                    return;
                }
                Err(answer) => json(&answer),
            }
        }
        (Method::Post, _) => {
            let body = match body(&mut request) {
                Ok(body) => body,
                Err(answer) => {
                    let _ = request.respond(json(&answer));
                    return;
                }
            };
            match path.as_str() {
                "/api/diff" => json(&api::diff(&body)),
                "/api/graph" => json(&api::graph(&body)),
                "/api/play" => json(&runs.make(&body)),
                p if p.starts_with("/api/play/") => match p["/api/play/".len()..].parse::<u64>() {
                    Ok(id) => json(&runs.act(id, &body)),
                    Err(_) => json(&api::error(404, "no such run")),
                },
                _ => json(&api::error(404, &format!("no such page: {path}"))),
            }
        }
        (Method::Get, _) => json(&api::error(404, &format!("no such page: {path}"))),
        _ => json(&api::error(405, &format!("{method} is not served"))),
    };
    let _ = request.respond(response);
}

/// Server-sent events: written straight to the connection, flushed after each, so that a
/// page that has gone makes the next write fail and the run end.
fn stream(request: Request, run: play::Run, control: &play::Control) {
    let mut out = request.into_writer();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
    if out
        .write_all(head.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return;
    }
    run.stream(control, &mut out);
}
