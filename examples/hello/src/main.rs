//! hello: a small HTTP service for lastmile's examples and tests.
//!
//! Standard library only, so its pipeline builds in seconds.
//!
//! - `GET /` answers `hello from <app> <version>`.
//! - `GET /healthz` answers `ok` once ready (503 before).
//!
//! Environment knobs make it misbehave on purpose, for demos and tests:
//!
//! | variable | effect |
//! | --- | --- |
//! | `PORT` | port to listen on (default 8080) |
//! | `HELLO_VERSION` | version to report (default: `LASTMILE_RELEASE_VERSION`, else the crate version) |
//! | `HELLO_ERROR_RATE` | fraction 0.0..=1.0 of `/` requests answered with 500 |
//! | `HELLO_LATENCY_MS` | delay added to every `/` request |
//! | `HELLO_READY_AFTER_MS` | `/healthz` answers 503 until this long after start |
//! | `HELLO_NEVER_READY` | `1`: `/healthz` always answers 503 |

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod config;

use config::Config;

fn main() {
    let config = match Config::from_env(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("hello: {message}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(("0.0.0.0", config.port)) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("hello: cannot listen on port {}: {error}; set PORT to a free port", config.port);
            std::process::exit(1);
        }
    };
    eprintln!("hello {} listening on port {}", config.version, config.port);
    let state = Arc::new(State { config, started: Instant::now(), random: AtomicU64::new(seed()) });
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let state = Arc::clone(&state);
        std::thread::spawn(move || {
            // A client that vanishes mid-request is not an error worth reporting.
            let _ = serve(stream, &state);
        });
    }
}

struct State {
    config: Config,
    started: Instant,
    random: AtomicU64,
}

impl State {
    /// A uniform number in [0, 1): splitmix64 over a shared counter.
    fn uniform(&self) -> f64 {
        let mut z = self.random.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    nanos as u64 ^ u64::from(std::process::id()) << 32
}

/// Serves one connection, keeping it alive across requests (HTTP/1.1).
fn serve(stream: TcpStream, state: &State) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut close = request_line.ends_with("HTTP/1.0\r\n");
        let mut content_length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else { continue };
            let value = value.trim();
            if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().unwrap_or(0);
            }
        }
        if content_length > 0 {
            std::io::copy(&mut (&mut reader).take(content_length as u64), &mut std::io::sink())?;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("");
        let (status, body) = respond(state, method, path);
        let reason = match status {
            200 => "OK",
            404 => "Not Found",
            405 => "Method Not Allowed",
            500 => "Internal Server Error",
            _ => "Service Unavailable",
        };
        let body = if method == "HEAD" { String::new() } else { body };
        write!(
            writer,
            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nx-hello-version: {}\r\n{}\r\n{body}",
            body.len(),
            state.config.version,
            if close { "connection: close\r\n" } else { "" },
        )?;
        writer.flush()?;
        if close {
            return Ok(());
        }
    }
}



fn respond(state: &State, method: &str, path: &str) -> (u16, String) {
    if method != "GET" && method != "HEAD" {
        return (405, "only GET and HEAD\n".to_string());
    }
    let path = path.split('?').next().unwrap_or("");
    match path {
        "/healthz" => {
            if state.config.is_ready(state.started.elapsed()) {
                (200, "ok\n".to_string())
            } else {
                (503, "not ready\n".to_string())
            }
        }
        "/" => {
            if !state.config.latency.is_zero() {
                std::thread::sleep(state.config.latency);
            }
            if state.uniform() < state.config.error_rate {
                (500, format!("hello {} failed on purpose (HELLO_ERROR_RATE)\n", state.config.version))
            } else {
                (200, format!("hello from hello {}\n", state.config.version))
            }
        }
        _ => (404, "not found\n".to_string()),
    }
}
