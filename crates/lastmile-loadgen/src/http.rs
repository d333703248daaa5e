//! A minimal HTTP/1.1 client (GET only; Content-Length, chunked or read-to-close bodies) and
//! the worker that paces requests through it, over whatever stream the [`Connector`] opens.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::sync::watch;
use tokio::time::{Instant as TokioInstant, MissedTickBehavior};

use crate::connector::Connector;
use crate::report::{FailureKind, Recorder};
use crate::{LoadConfig, stopped};

/// Largest response head accepted; a test service's headers are a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body read; more than enough to identify a release.
const MAX_BODY: u64 = 16 * 1024 * 1024;

/// One HTTP worker: a request every `period`, on one connection it reuses or on a new one each time.
pub(crate) async fn worker<C: Connector>(
    config: Arc<LoadConfig>,
    connector: Arc<C>,
    keep_alive: bool,
    period: Duration,
    first_tick: Duration,
    recorder: Arc<Recorder>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval_at(TokioInstant::now() + first_tick, period);
    // After a stall (a slow request), carry on at the normal pace rather than in a burst.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut connection: Option<Connection<C::Stream>> = None;
    loop {
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => return,
            _ = ticks.tick() => {}
        }
        let started = Instant::now();
        let reused = connection.is_some();
        let attempt = request(&config, &*connector, keep_alive, &mut connection);
        match tokio::time::timeout(config.request_timeout, attempt).await {
            Ok(Ok(response)) => {
                let what = describe_request(&config.path, response.reused);
                recorder.response(response.status, &response.body, started.elapsed(), &what);
            }
            Ok(Err(failure)) => {
                connection = None;
                let what = describe_request(&config.path, failure.reused);
                recorder.request_failed(&format!("{what}: {}", failure.reason), failure.kind);
            }
            Err(_) => {
                // The connection is mid-exchange; it cannot carry another request.
                connection = None;
                let what = describe_request(&config.path, reused);
                let timeout = config.request_timeout;
                recorder.request_failed(
                    &format!("{what}: no response within {timeout:?}"),
                    FailureKind::Other,
                );
            }
        }
    }
}

fn describe_request(path: &str, reused: bool) -> String {
    let connection = if reused { "a reused" } else { "a new" };
    format!("GET {path} on {connection} connection")
}

/// A response read in full.
#[derive(Debug)]
struct Response {
    status: u16,
    body: Vec<u8>,
    /// Whether the connection that answered was reused.
    reused: bool,
}

/// Why a request got no usable response.
#[derive(Debug)]
struct Failure {
    reason: String,
    reused: bool,
    /// The server ended the connection before sending a single byte of response.
    before_response: bool,
    /// Whether TLS failed, rather than TCP or HTTP.
    kind: FailureKind,
}

/// An open connection, kept between requests when keep-alive allows.
#[derive(Debug)]
struct Connection<S> {
    stream: BufReader<S>,
}

/// Sends one request, on the kept connection if there is one. A kept connection that the
/// server closed while it sat idle fails before any response byte: that is the ordinary
/// keep-alive race, so the request is retried once on a new connection, as browsers do.
async fn request<C: Connector>(
    config: &LoadConfig,
    connector: &C,
    keep_alive: bool,
    connection: &mut Option<Connection<C::Stream>>,
) -> Result<Response, Failure> {
    if let Some(mut kept) = connection.take() {
        match exchange(&mut kept, config, keep_alive).await {
            Ok((status, body, reusable)) => {
                if reusable {
                    *connection = Some(kept);
                }
                return Ok(Response {
                    status,
                    body,
                    reused: true,
                });
            }
            Err(failure) if failure.before_response => {}
            Err(failure) => {
                return Err(Failure {
                    reused: true,
                    ..failure
                });
            }
        }
    }
    let stream = connector
        .connect(config.target)
        .await
        .map_err(|failure| Failure {
            reason: failure.reason,
            reused: false,
            before_response: true,
            kind: failure.kind,
        })?;
    let mut fresh = Connection {
        stream: BufReader::new(stream),
    };
    let (status, body, reusable) = exchange(&mut fresh, config, keep_alive).await?;
    if reusable {
        *connection = Some(fresh);
    }
    Ok(Response {
        status,
        body,
        reused: false,
    })
}

/// Writes the request and reads the whole response: (status, body, connection reusable).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    config: &LoadConfig,
    keep_alive: bool,
) -> Result<(u16, Vec<u8>, bool), Failure> {
    let request = format!(
        "GET {} HTTP/1.1\r\nhost: {}\r\nuser-agent: lastmile-loadgen\r\n{}\r\n",
        config.path,
        config.host_header(),
        if keep_alive {
            ""
        } else {
            "connection: close\r\n"
        },
    );
    let early = |error: io::Error| Failure {
        reason: format!("before the response: {}", describe_io(&error)),
        reused: false,
        before_response: true,
        kind: FailureKind::Other,
    };
    let writer = connection.stream.get_mut();
    writer.write_all(request.as_bytes()).await.map_err(early)?;
    // TLS may hold the request back in its own buffer until flushed.
    writer.flush().await.map_err(early)?;
    // Whether the server sent anything at all decides if the keep-alive retry applies.
    let first = connection.stream.fill_buf().await.map_err(early)?;
    if first.is_empty() {
        return Err(Failure {
            reason: "connection closed before the response".to_string(),
            reused: false,
            before_response: true,
            kind: FailureKind::Other,
        });
    }
    let late = |reason: String| Failure {
        reason,
        reused: false,
        before_response: false,
        kind: FailureKind::Other,
    };
    let head = read_head(&mut connection.stream).await.map_err(late)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = parse_status(status_line)
        .ok_or_else(|| late(format!("malformed status line {status_line:?}")))?;
    let mut content_length = None;
    let mut chunked = false;
    let mut close = status_line.starts_with("HTTP/1.0");
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let length = value
                .parse::<u64>()
                .map_err(|_| late(format!("malformed content-length {value:?}")))?;
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .to_ascii_lowercase()
                .split(',')
                .any(|coding| coding.trim() == "chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let value = value.to_ascii_lowercase();
            if value.split(',').any(|option| option.trim() == "close") {
                close = true;
            } else if value.split(',').any(|option| option.trim() == "keep-alive") {
                close = false;
            }
        }
    }
    let stream = &mut connection.stream;
    let body = if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if chunked {
        read_chunked(stream).await.map_err(late)?
    } else if let Some(length) = content_length {
        if length > MAX_BODY {
            return Err(late(format!(
                "body of {length} bytes is larger than 16 MiB"
            )));
        }
        let mut body = vec![0u8; length as usize];
        stream.read_exact(&mut body).await.map_err(|error| {
            late(format!(
                "body cut short after the head: {}",
                describe_io(&error)
            ))
        })?;
        body
    } else {
        // No length: the body runs to the end of the connection.
        close = true;
        let mut body = Vec::new();
        stream
            .take(MAX_BODY)
            .read_to_end(&mut body)
            .await
            .map_err(|error| late(format!("reading the body: {}", describe_io(&error))))?;
        body
    };
    Ok((status, body, keep_alive && !close))
}

/// Reads up to and including the blank line; returns the head without it.
async fn read_head<R: AsyncBufRead + Unpin>(stream: &mut R) -> Result<String, String> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let read = stream
            .read_until(b'\n', &mut head)
            .await
            .map_err(|error| format!("reading the response head: {}", describe_io(&error)))?;
        if read == 0 {
            return Err("connection closed in the middle of the response head".to_string());
        }
        if head.len() > MAX_HEAD {
            return Err("response head larger than 64 KiB".to_string());
        }
        if &head[before..] == b"\r\n" || &head[before..] == b"\n" {
            head.truncate(before);
            break;
        }
    }
    String::from_utf8(head).map_err(|_| "response head is not UTF-8".to_string())
}

fn parse_status(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// Reads a chunked body and its trailers.
async fn read_chunked<R: AsyncBufRead + Unpin>(stream: &mut R) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        let read = stream
            .read_line(&mut line)
            .await
            .map_err(|error| format!("reading a chunk size: {}", describe_io(&error)))?;
        if read == 0 {
            return Err("connection closed in the middle of a chunked body".to_string());
        }
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| format!("malformed chunk size {size_text:?}"))?;
        if size == 0 {
            break;
        }
        if body.len() as u64 + size > MAX_BODY {
            return Err("chunked body larger than 16 MiB".to_string());
        }
        let start = body.len();
        body.resize(start + size as usize, 0);
        stream
            .read_exact(&mut body[start..])
            .await
            .map_err(|error| format!("chunk cut short: {}", describe_io(&error)))?;
        let mut crlf = [0u8; 2];
        stream
            .read_exact(&mut crlf)
            .await
            .map_err(|error| format!("chunk cut short: {}", describe_io(&error)))?;
        if &crlf != b"\r\n" {
            return Err("chunk not followed by CRLF".to_string());
        }
    }
    // Trailers, up to the blank line.
    loop {
        let mut line = String::new();
        let read = stream
            .read_line(&mut line)
            .await
            .map_err(|error| format!("reading trailers: {}", describe_io(&error)))?;
        if read == 0 || line.trim().is_empty() {
            return Ok(body);
        }
    }
}

/// Short lower-case words for the errors a load test meets, so failure lists read alike.
pub(crate) fn describe_io(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        io::ErrorKind::ConnectionReset => "connection reset".to_string(),
        io::ErrorKind::ConnectionAborted => "connection aborted".to_string(),
        io::ErrorKind::BrokenPipe => "broken pipe (the server closed the connection)".to_string(),
        io::ErrorKind::UnexpectedEof => "connection closed early".to_string(),
        io::ErrorKind::TimedOut => "timed out".to_string(),
        _ => error.to_string(),
    }
}
