//! hello: a small HTTP service for lastmile's examples and tests.
//!
//! Standard library only, so its pipeline builds in seconds.
//!
//! - `GET /` answers `hello from hello <version>` (or `HELLO_MESSAGE` and the version).
//! - `GET /healthz` answers `ok` once ready (503 before).
//! - `GET /ws` upgrades to a WebSocket that echoes text and binary messages.
//!
//! On SIGTERM it stops accepting, finishes in-flight requests, sends every WebSocket a close
//! frame with code 1001 (going away), waits up to 2 s for them, and exits 0.
//!
//! Environment knobs make it misbehave on purpose, for demos and tests:
//!
//! | variable | effect |
//! | --- | --- |
//! | `PORT` | port to listen on (default 8080) |
//! | `HELLO_VERSION` | version to report (default: `LASTMILE_RELEASE_VERSION`, else the crate version) |
//! | `HELLO_MESSAGE` | what `/` answers before the version (default `hello from hello`) |
//! | `HELLO_ERROR_RATE` | fraction 0.0..=1.0 of `/` requests answered with 500 |
//! | `HELLO_ERRORS_AFTER_MS` | `HELLO_ERROR_RATE` applies only this long after start (a release that degrades) |
//! | `HELLO_LATENCY_MS` | delay added to every `/` request |
//! | `HELLO_LATENCY_JITTER_MS` | random delay on top: `20` uniform in 0..20 ms, `exp:15` exponential with a 15 ms mean |
//! | `HELLO_WARMUP_REQUESTS` | the first `N` (or `MIN-MAX`: a count drawn per process) `/` requests of each process are slow |
//! | `HELLO_WARMUP_LATENCY_MS` | how slow: uniform in `MIN-MAX` ms instead of the latency above (default `50-150`) |
//! | `HELLO_READY_AFTER_MS` | `/healthz` answers 503 until this long after start |
//! | `HELLO_NEVER_READY` | `1`: `/healthz` always answers 503 |

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod config;
mod websocket;

use config::Config;
use websocket::{Action, Messages, CLOSE_GOING_AWAY};

/// How long a stop waits for in-flight HTTP requests (the deploy's grace period is longer).
const HTTP_DRAIN: Duration = Duration::from_secs(5);
/// How long a stop waits for WebSocket clients to answer the close frame.
const WEBSOCKET_DRAIN: Duration = Duration::from_secs(2);
/// How often the accept loop and the drain look at their flags.
const POLL: Duration = Duration::from_millis(20);

/// Set by the SIGTERM handler; the accept loop polls it.
static SIGTERM_RECEIVED: AtomicBool = AtomicBool::new(false);

extern "C" {
    /// The C library's `signal(2)`: std offers no way to install a handler, and hello has no
    /// dependencies. The handler is passed as an address, and the old one returned as one.
    fn signal(signum: i32, handler: usize) -> usize;
}

extern "C" fn on_sigterm(_signum: i32) {
    // Only an atomic store: the one kind of work that is safe inside a signal handler.
    SIGTERM_RECEIVED.store(true, Ordering::SeqCst);
}

fn install_sigterm_handler() {
    const SIGTERM: i32 = 15;
    let handler: extern "C" fn(i32) = on_sigterm;
    // SAFETY: `signal` is called with a valid signal number and a handler that has the C ABI
    // and is async-signal-safe (it only stores to an atomic).
    unsafe {
        signal(SIGTERM, handler as usize);
    }
}

fn main() {
    let config = match Config::from_env(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("hello: {message}");
            std::process::exit(2);
        }
    };
    install_sigterm_handler();
    let listener = match TcpListener::bind(("0.0.0.0", config.port)) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("hello: cannot listen on port {}: {error}; set PORT to a free port", config.port);
            std::process::exit(1);
        }
    };
    // Nonblocking, so the loop below can notice SIGTERM between connections.
    if let Err(error) = listener.set_nonblocking(true) {
        eprintln!("hello: cannot make the listener nonblocking: {error}");
        std::process::exit(1);
    }
    eprintln!("hello {} listening on port {}", config.version, config.port);
    let state = Arc::new(State::new(config));
    while !SIGTERM_RECEIVED.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => spawn_connection(stream, &state),
            // WouldBlock is the idle case; anything else (say, out of file descriptors) is
            // worth a pause rather than a busy loop.
            Err(_) => std::thread::sleep(POLL),
        }
    }
    // Stop accepting first: new connections are refused while the old ones finish.
    drop(listener);
    eprintln!("hello {}: SIGTERM, draining", state.config.version);
    let outcome = drain(&state, HTTP_DRAIN, WEBSOCKET_DRAIN);
    eprintln!("hello {}: stopped ({outcome})", state.config.version);
    std::process::exit(0);
}

fn spawn_connection(stream: TcpStream, state: &Arc<State>) {
    let state = Arc::clone(state);
    std::thread::spawn(move || {
        // A socket that cannot be set up is one client's loss, not the server's.
        if prepare_accepted(&stream).is_err() {
            return;
        }
        // A client that vanishes mid-request is not an error worth reporting.
        let _ = serve(stream, &state);
    });
}

/// Sets up an accepted socket: blocking, and with Nagle's algorithm off.
///
/// With Nagle on, a response that leaves in more than one segment waits for the client's
/// delayed ACK of the first, which on Linux added about 40 ms to every keep-alive request
/// after the first, direct or through lastmile's router.
fn prepare_accepted(stream: &TcpStream) -> std::io::Result<()> {
    // Accepted sockets do not inherit the listener's mode on Linux, but other systems differ.
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)
}

struct State {
    config: Config,
    started: Instant,
    random: AtomicU64,
    /// How many `/` requests this process's warm-up lasts, drawn at start.
    warmup_requests: u64,
    /// `/` requests begun so far, so each knows whether it falls in the warm-up.
    root_requests: AtomicU64,
    /// Set when the server stops: responses say `connection: close` and idle connections end.
    stopping: AtomicBool,
    next_id: AtomicU64,
    /// Open HTTP connections, so a stop can end the idle ones.
    http: Mutex<HashMap<u64, HttpConnection>>,
    /// Open WebSockets, so a stop can send each one a close frame.
    websockets: Mutex<HashMap<u64, Arc<WebSocket>>>,
}

struct HttpConnection {
    stream: TcpStream,
    /// Between reading a request line and writing its response.
    busy: bool,
}

/// The write half of an open WebSocket; the lock keeps frames from two threads whole.
struct WebSocket {
    writer: Mutex<TcpStream>,
    close_sent: AtomicBool,
}

impl WebSocket {
    /// Sends a data or control frame, unless a close was already sent (RFC 6455 5.5.1).
    fn send(&self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut writer = lock(&self.writer);
        if self.close_sent.load(Ordering::SeqCst) {
            return Ok(());
        }
        websocket::write_frame(&mut *writer, opcode, payload)
    }

    /// Sends a close frame once; later calls do nothing.
    fn close(&self, payload: &[u8]) -> std::io::Result<()> {
        let mut writer = lock(&self.writer);
        if self.close_sent.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        websocket::write_frame(&mut *writer, websocket::OP_CLOSE, payload)
    }
}

/// Locks a mutex even if a connection thread panicked while holding it: the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    fn new(config: Config) -> State {
        let mut state = State {
            config,
            started: Instant::now(),
            random: AtomicU64::new(seed()),
            warmup_requests: 0,
            root_requests: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            http: Mutex::new(HashMap::new()),
            websockets: Mutex::new(HashMap::new()),
        };
        state.warmup_requests = state.config.warmup_requests_for(state.uniform());
        state
    }

    /// A uniform number in [0, 1): splitmix64 over a shared counter.
    fn uniform(&self) -> f64 {
        let mut z = self.random.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn set_busy(&self, id: u64, busy: bool) {
        if let Some(connection) = lock(&self.http).get_mut(&id) {
            connection.busy = busy;
        }
    }

    /// Ends idle keep-alive connections and sends every WebSocket a "going away" close frame.
    fn begin_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for connection in lock(&self.http).values() {
            if !connection.busy {
                // Shutting the read side wakes the thread blocked waiting for the next request;
                // busy threads finish their response and see `stopping` afterwards.
                let _ = connection.stream.shutdown(Shutdown::Read);
            }
        }
        let websockets: Vec<Arc<WebSocket>> = lock(&self.websockets).values().cloned().collect();
        for socket in websockets {
            let _ = socket.close(&websocket::close_payload(CLOSE_GOING_AWAY, "server stopping"));
        }
    }
}

/// Stops gracefully: in-flight requests finish, WebSockets get a close frame and up to
/// `websocket_grace` to answer it. Returns a one-line summary.
fn drain(state: &State, http_grace: Duration, websocket_grace: Duration) -> String {
    let start = Instant::now();
    state.begin_stop();
    let mut forced_websockets = 0;
    let mut websockets_done = false;
    loop {
        if !websockets_done {
            let open = lock(&state.websockets);
            if open.is_empty() {
                websockets_done = true;
            } else if start.elapsed() >= websocket_grace {
                // The client never answered; ending the TCP connection is all that is left.
                forced_websockets = open.len();
                for socket in open.values() {
                    let _ = lock(&socket.writer).shutdown(Shutdown::Both);
                }
                websockets_done = true;
            }
        }
        let http_open = lock(&state.http).len();
        if websockets_done && (http_open == 0 || start.elapsed() >= http_grace) {
            return format!(
                "{http_open} HTTP connections cut, {forced_websockets} WebSockets cut, after {:?}",
                start.elapsed()
            );
        }
        std::thread::sleep(POLL);
    }
}

fn seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    nanos as u64 ^ u64::from(std::process::id()) << 32
}

/// Removes a connection from its registry when its thread ends, however it ends.
struct Registered<'a> {
    state: &'a State,
    id: u64,
    websocket: bool,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if self.websocket {
            lock(&self.state.websockets).remove(&self.id);
        } else {
            lock(&self.state.http).remove(&self.id);
        }
    }
}

/// Serves one connection, keeping it alive across requests (HTTP/1.1).
fn serve(stream: TcpStream, state: &State) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    lock(&state.http).insert(id, HttpConnection { stream: stream.try_clone()?, busy: false });
    let mut registered = Registered { state, id, websocket: false };
    if state.stopping() {
        // Accepted just before the stop, after the idle connections were woken: answer the
        // request the client already sent, but do not wait long for one.
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    }
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        state.set_busy(id, true);
        let mut close = request_line.ends_with("HTTP/1.0\r\n");
        let mut content_length = 0usize;
        let mut upgrade_websocket = false;
        let mut websocket_key = None;
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
            } else if name.eq_ignore_ascii_case("upgrade") {
                upgrade_websocket = value.eq_ignore_ascii_case("websocket");
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                websocket_key = Some(value.to_string());
            }
        }
        if content_length > 0 {
            std::io::copy(&mut (&mut reader).take(content_length as u64), &mut std::io::sink())?;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("");
        let is_websocket_path = path.split('?').next() == Some("/ws");
        if method == "GET" && is_websocket_path && upgrade_websocket {
            if let Some(key) = websocket_key {
                // The connection changes registry: a stop now sends it a close frame instead.
                lock(&state.http).remove(&id);
                registered.websocket = true;
                return serve_websocket(reader, writer, &key, state, id);
            }
        }
        let (status, body) = if is_websocket_path {
            let hint = "/ws expects a WebSocket upgrade (Upgrade: websocket, Sec-WebSocket-Key)\n";
            (400, hint.to_string())
        } else {
            respond(state, method, path)
        };
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            500 => "Internal Server Error",
            _ => "Service Unavailable",
        };
        let body = if method == "HEAD" { String::new() } else { body };
        // Once stopping, this is the connection's last response; saying so lets the client
        // open its next connection elsewhere instead of racing the close.
        close |= state.stopping();
        // Formatted whole and written at once: `write!` on a socket is a write call per piece.
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nx-hello-version: {}\r\n{}\r\n{body}",
            body.len(),
            state.config.version,
            if close { "connection: close\r\n" } else { "" },
        );
        writer.write_all(response.as_bytes())?;
        state.set_busy(id, false);
        if close || state.stopping() {
            return Ok(());
        }
    }
}

/// Completes the upgrade, then echoes until either side closes.
fn serve_websocket(
    mut reader: BufReader<TcpStream>,
    mut writer: TcpStream,
    key: &str,
    state: &State,
    id: u64,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\nx-hello-version: {}\r\n\r\n",
        websocket::accept_key(key),
        state.config.version,
    );
    writer.write_all(response.as_bytes())?;
    // A WebSocket may sit quiet for long stretches; the stop path, not a timeout, ends it.
    reader.get_ref().set_read_timeout(None)?;
    let socket =
        Arc::new(WebSocket { writer: Mutex::new(writer), close_sent: AtomicBool::new(false) });
    lock(&state.websockets).insert(id, Arc::clone(&socket));
    if state.stopping() {
        // The stop's close pass may have run before this socket was registered.
        socket.close(&websocket::close_payload(CLOSE_GOING_AWAY, "server stopping"))?;
    }
    let mut messages = Messages::default();
    loop {
        let frame = match websocket::read_frame(&mut reader) {
            Ok(frame) => frame,
            Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                let payload = websocket::close_payload(websocket::CLOSE_PROTOCOL_ERROR, "");
                return socket.close(&payload);
            }
            Err(error) => return Err(error),
        };
        match messages.feed(frame) {
            Ok(Action::Reply(opcode, payload)) => socket.send(opcode, &payload)?,
            Ok(Action::Nothing) => {}
            Ok(Action::Close(payload)) => {
                // Either the client started the close (answer it) or it answered ours; both
                // end with the server closing the TCP connection, as RFC 6455 7.1.1 prefers.
                socket.close(&payload)?;
                return Ok(());
            }
            Err(code) => return socket.close(&websocket::close_payload(code, "")),
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
            let index = state.root_requests.fetch_add(1, Ordering::Relaxed);
            let latency = state.config.latency_of(index, state.warmup_requests, state.uniform());
            if !latency.is_zero() {
                std::thread::sleep(latency);
            }
            if state.uniform() < state.config.error_rate_at(state.started.elapsed()) {
                (500, format!("hello {} failed on purpose (HELLO_ERROR_RATE)\n", state.config.version))
            } else {
                (200, format!("{} {}\n", state.config.message, state.config.version))
            }
        }
        _ => (404, "not found\n".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::{client_frame, read_server_frame, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
    use std::net::SocketAddr;

    /// A hello on 127.0.0.1:0 with these knobs; the accept thread lives as long as the test binary.
    fn start(pairs: &[(&str, &str)]) -> (SocketAddr, Arc<State>) {
        let pairs: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let config =
            Config::from_env(|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
                .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::new(config));
        let accepting = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                spawn_connection(stream, &accepting);
            }
        });
        (addr, state)
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream
    }

    /// Reads a response head, up to and including the blank line.
    fn read_head(stream: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).unwrap(), 1, "connection ended mid-head: {head:?}");
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    }

    fn get(stream: &mut TcpStream, path: &str) -> (String, String) {
        write!(stream, "GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").unwrap();
        let head = read_head(stream);
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).unwrap();
        (head, String::from_utf8(body).unwrap())
    }

    fn open_websocket(addr: SocketAddr) -> TcpStream {
        let mut stream = connect(addr);
        write!(
            stream,
            "GET /ws HTTP/1.1\r\nhost: test\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
        )
        .unwrap();
        let head = read_head(&mut stream);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(head.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
        stream
    }

    #[test]
    fn root_reports_the_release_version() {
        let (addr, _state) = start(&[("LASTMILE_RELEASE_VERSION", "r42")]);
        let mut stream = connect(addr);
        let (head, body) = get(&mut stream, "/");
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert_eq!(body, "hello from hello r42\n");
        // Keep-alive: the same connection answers again.
        assert_eq!(get(&mut stream, "/healthz").1, "ok\n");
    }

    #[test]
    fn root_answers_the_message_it_is_given() {
        let (addr, _state) = start(&[("HELLO_MESSAGE", "howdy from hello"), ("LASTMILE_RELEASE_VERSION", "v2")]);
        assert_eq!(get(&mut connect(addr), "/").1, "howdy from hello v2\n");
    }

    #[test]
    fn the_warmup_slows_the_first_root_requests_of_the_process() {
        let (addr, state) =
            start(&[("HELLO_WARMUP_REQUESTS", "3"), ("HELLO_WARMUP_LATENCY_MS", "100-120")]);
        assert_eq!(state.warmup_requests, 3);
        let mut stream = connect(addr);
        // Health probes are not the app's traffic: they neither wait nor use up the warm-up.
        assert_eq!(get(&mut stream, "/healthz").1, "ok\n");
        assert_eq!(state.root_requests.load(Ordering::Relaxed), 0);
        for _ in 0..3 {
            let began = Instant::now();
            let (head, _) = get(&mut stream, "/");
            assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
            assert!(began.elapsed() >= Duration::from_millis(100), "a warm-up request took {:?}", began.elapsed());
        }
        // On another connection too: the warm-up belongs to the process, not the connection.
        let (head, _) = get(&mut connect(addr), "/");
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert_eq!(state.root_requests.load(Ordering::Relaxed), 4);
        assert_eq!(state.config.latency_of(3, state.warmup_requests, 0.5), Duration::ZERO);
    }

    #[test]
    fn accepted_sockets_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(!accepted.nodelay().unwrap(), "Nagle is on by default, so the check below means something");
        prepare_accepted(&accepted).unwrap();
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY is set on accepted sockets");
    }

    #[test]
    fn websocket_echoes_answers_pings_and_closes() {
        let (addr, _state) = start(&[]);
        let mut ws = open_websocket(addr);
        ws.write_all(&client_frame(true, OP_TEXT, b"hello", [1, 2, 3, 4])).unwrap();
        assert_eq!(read_server_frame(&mut ws).unwrap().payload, b"hello");
        // A message in two fragments comes back whole.
        ws.write_all(&client_frame(false, OP_TEXT, b"frag", [5, 6, 7, 8])).unwrap();
        ws.write_all(&client_frame(true, 0, b"ments", [9, 9, 9, 9])).unwrap();
        let echoed = read_server_frame(&mut ws).unwrap();
        assert_eq!((echoed.opcode, echoed.payload), (OP_TEXT, b"fragments".to_vec()));
        ws.write_all(&client_frame(true, OP_PING, b"p", [0, 0, 0, 1])).unwrap();
        let pong = read_server_frame(&mut ws).unwrap();
        assert_eq!((pong.opcode, pong.payload), (OP_PONG, b"p".to_vec()));
        let close = websocket::close_payload(1000, "done");
        ws.write_all(&client_frame(true, OP_CLOSE, &close, [4, 3, 2, 1])).unwrap();
        let answer = read_server_frame(&mut ws).unwrap();
        assert_eq!((answer.opcode, answer.payload), (OP_CLOSE, vec![0x03, 0xE8]));
        assert_eq!(ws.read(&mut [0u8; 1]).unwrap(), 0, "the server ends the connection");
    }

    #[test]
    fn ws_path_without_an_upgrade_is_a_bad_request() {
        let (addr, _state) = start(&[]);
        let (head, _) = get(&mut connect(addr), "/ws");
        assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    }

    #[test]
    fn stop_finishes_requests_and_closes_websockets_going_away() {
        let (addr, state) = start(&[("HELLO_LATENCY_MS", "300")]);
        let mut ws = open_websocket(addr);
        let mut idle = connect(addr);
        // A keep-alive connection that served a request and now waits for the next one.
        write!(idle, "GET /healthz HTTP/1.1\r\n\r\n").unwrap();
        read_head(&mut idle);
        idle.read_exact(&mut [0u8; 3]).unwrap();
        // A request still in flight (300 ms of latency) when the stop begins.
        let mut slow = connect(addr);
        write!(slow, "GET / HTTP/1.1\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(100));

        let draining = Arc::clone(&state);
        let drain =
            std::thread::spawn(move || drain(&draining, HTTP_DRAIN, WEBSOCKET_DRAIN));

        let (head, body) = {
            let head = read_head(&mut slow);
            let mut body = String::new();
            slow.read_to_string(&mut body).unwrap();
            (head, body)
        };
        assert!(head.starts_with("HTTP/1.1 200 ") && head.contains("connection: close"), "{head}");
        assert!(body.starts_with("hello from hello"), "{body}");
        assert_eq!(idle.read(&mut [0u8; 1]).unwrap(), 0, "idle keep-alive connection is closed");
        let close = read_server_frame(&mut ws).unwrap();
        assert_eq!(close.opcode, OP_CLOSE);
        assert_eq!(&close.payload[..2], &1001u16.to_be_bytes());
        ws.write_all(&client_frame(true, OP_CLOSE, &close.payload[..2], [1, 1, 1, 1])).unwrap();
        assert_eq!(ws.read(&mut [0u8; 1]).unwrap(), 0);
        let summary = drain.join().unwrap();
        assert!(summary.starts_with("0 HTTP connections cut, 0 WebSockets cut"), "{summary}");
    }

    #[test]
    fn stop_cuts_websockets_that_never_answer() {
        let (addr, state) = start(&[]);
        let mut ws = open_websocket(addr);
        // The server registers the socket just after its 101 reaches us.
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock(&state.websockets).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let summary = drain(&state, HTTP_DRAIN, Duration::from_millis(200));
        assert!(summary.contains("1 WebSockets cut"), "{summary}");
        assert_eq!(read_server_frame(&mut ws).unwrap().opcode, OP_CLOSE);
        assert_eq!(ws.read(&mut [0u8; 1]).unwrap(), 0);
    }
}
