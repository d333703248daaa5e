//! [`Client`]: one request per connection, within two timeouts.

use std::borrow::Cow;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::Error;
use crate::error::chain;
use crate::recorded::{FirstBytes, Recorded};
use crate::target::Target;

/// Default for [`Client::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`Client::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`Client::body_limit`]: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// A request: an absolute `http://` or `https://` URI and the whole body.
pub type Request = http::Request<Bytes>;

/// An HTTP client. Cheap to make and to clone: it holds only its settings.
#[derive(Debug, Clone)]
pub struct Client {
    connect_timeout: Duration,
    timeout: Duration,
    body_limit: usize,
    tls: Option<Arc<ClientConfig>>,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

/// An answer, its body read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// The URL, for [`Response::error_for_status`].
    target: String,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body, lossily decoded as UTF-8.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// `self` if its status is 2xx, else [`Error::Status`].
    pub fn error_for_status(self) -> Result<Response, Error> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(Error::Status {
                target: self.target,
                status: self.status,
            })
        }
    }
}

/// How much of the body to read.
#[derive(Debug, Clone, Copy)]
enum Read {
    /// None: return once the head is in.
    Head,
    /// All of it, failing past the limit.
    Whole,
    /// Up to the limit, dropping the rest.
    Prefix,
}

impl Client {
    /// A client with the default timeouts and body limit, trusting
    /// [`default_tls_config`](crate::default_tls_config) for https.
    pub fn new() -> Client {
        Client {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            body_limit: DEFAULT_BODY_LIMIT,
            tls: None,
        }
    }

    /// The longest wait for resolving the host and opening the TCP
    /// connection.
    pub fn connect_timeout(mut self, limit: Duration) -> Client {
        self.connect_timeout = limit;
        self
    }

    /// The longest wait for the whole exchange: connecting, TLS, sending
    /// the request and reading the answer with its body.
    pub fn timeout(mut self, limit: Duration) -> Client {
        self.timeout = limit;
        self
    }

    /// The largest body read, in bytes.
    pub fn body_limit(mut self, bytes: usize) -> Client {
        self.body_limit = bytes;
        self
    }

    /// TLS settings other than [`default_tls_config`](crate::default_tls_config),
    /// e.g. from [`tls_config`](crate::tls_config).
    pub fn tls(mut self, config: Arc<ClientConfig>) -> Client {
        self.tls = Some(config);
        self
    }

    /// Sends `request` and reads the answer whole. Any status is an answer
    /// (see [`Response::error_for_status`]); a body past the limit is
    /// [`Error::BodyTooLarge`].
    ///
    /// `Host`, `User-Agent` (`lastmile/VERSION`), `Connection: close` and
    /// `Content-Length` are added unless the request has them.
    pub async fn send(&self, request: Request) -> Result<Response, Error> {
        self.exchange(request, Read::Whole).await
    }

    /// Like [`Client::send`], but a body past the limit is cut there
    /// instead of failing: for callers that look at the start of it.
    pub async fn send_prefix(&self, request: Request) -> Result<Response, Error> {
        self.exchange(request, Read::Prefix).await
    }

    /// Sends `request` and returns the answer's status as soon as its head
    /// is in; the body is not read.
    pub async fn status(&self, request: Request) -> Result<StatusCode, Error> {
        Ok(self.exchange(request, Read::Head).await?.status)
    }

    /// `GET url`, asking for JSON.
    pub async fn get(&self, url: &str) -> Result<Response, Error> {
        let request = http::Request::get(url)
            .header(ACCEPT, "application/json")
            .body(Bytes::new());
        self.send(build(url, request)?).await
    }

    /// `POST url` with `json` as an `application/json` body.
    pub async fn post_json(&self, url: &str, json: impl Into<Bytes>) -> Result<Response, Error> {
        let request = http::Request::post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(json.into());
        self.send(build(url, request)?).await
    }

    async fn exchange(&self, request: Request, read: Read) -> Result<Response, Error> {
        let target = Target::of(request.uri())?;
        let limit = self.timeout;
        match tokio::time::timeout(limit, self.connect_and_send(&target, request, read)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                target: target.shown,
                limit,
            }),
        }
    }

    async fn connect_and_send(
        &self,
        target: &Target,
        request: Request,
        read: Read,
    ) -> Result<Response, Error> {
        let tcp = self.connect(target).await?;
        if !target.secure {
            return self.speak(tcp, target, request, read).await;
        }
        let config = match &self.tls {
            Some(config) => config.clone(),
            None => crate::default_tls_config()?,
        };
        let name = ServerName::try_from(target.host.clone()).map_err(|_| Error::InvalidUrl {
            url: target.shown.clone(),
            reason: format!("{} is not a valid TLS server name", target.host),
        })?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|error| Error::Tls {
                target: target.shown.clone(),
                reason: error.to_string(),
            })?;
        self.speak(tls, target, request, read).await
    }

    /// Resolves the host and connects to its addresses in turn, within the
    /// connect timeout.
    async fn connect(&self, target: &Target) -> Result<TcpStream, Error> {
        let attempt = async {
            let addrs: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, target.port)],
                Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
                    .await
                    .map_err(|error| Error::Dns {
                        target: target.shown.clone(),
                        host: target.host.clone(),
                        error,
                    })?
                    .collect(),
            };
            let mut failure = Error::Dns {
                target: target.shown.clone(),
                host: target.host.clone(),
                error: io::Error::other("no address"),
            };
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(tcp) => {
                        let _ = tcp.set_nodelay(true);
                        return Ok(tcp);
                    }
                    Err(error) => {
                        failure = Error::Connect {
                            target: target.shown.clone(),
                            addr,
                            error,
                        };
                    }
                }
            }
            Err(failure)
        };
        tokio::time::timeout(self.connect_timeout, attempt)
            .await
            .map_err(|_| Error::ConnectTimeout {
                target: target.shown.clone(),
                limit: self.connect_timeout,
            })?
    }

    /// HTTP/1.1 over `stream`: the request out, the answer in.
    async fn speak<S>(
        &self,
        stream: S,
        target: &Target,
        request: Request,
        read: Read,
    ) -> Result<Response, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let first = FirstBytes::default();
        let failed = |error: hyper::Error| classify(&error, target, &first);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(
            Recorded::new(stream, first.clone()),
        ))
        .await
        .map_err(failed)?;
        // The connection's task ends with this exchange, also when the
        // total timeout drops it half-way: nothing outlives the request.
        let _connection = AbortOnDrop(tokio::spawn(connection));
        let response = sender
            .send_request(origin_form(request, target))
            .await
            .map_err(failed)?;
        let (parts, body) = response.into_parts();
        let body = match read {
            Read::Head => Bytes::new(),
            Read::Whole | Read::Prefix => {
                self.read_body(body, matches!(read, Read::Prefix), target, &first)
                    .await?
            }
        };
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
            target: target.shown.clone(),
        })
    }

    async fn read_body(
        &self,
        mut body: Incoming,
        cut: bool,
        target: &Target,
        first: &FirstBytes,
    ) -> Result<Bytes, Error> {
        let mut read = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| classify(&error, target, first))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if read.len() + data.len() > self.body_limit {
                if cut {
                    read.extend_from_slice(&data[..self.body_limit - read.len()]);
                    break;
                }
                return Err(Error::BodyTooLarge {
                    target: target.shown.clone(),
                    limit: self.body_limit,
                });
            }
            read.extend_from_slice(&data);
        }
        Ok(read.freeze())
    }
}

/// `request` as sent on the connection: path and query only, with the
/// headers every request carries.
fn origin_form(request: Request, target: &Target) -> http::Request<Full<Bytes>> {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    parts.uri = path.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
    let headers = &mut parts.headers;
    if !headers.contains_key(HOST)
        && let Ok(host) = HeaderValue::from_str(&target.authority)
    {
        headers.insert(HOST, host);
    }
    headers
        .entry(USER_AGENT)
        .or_insert(HeaderValue::from_static(concat!(
            "lastmile/",
            env!("CARGO_PKG_VERSION")
        )));
    headers
        .entry(CONNECTION)
        .or_insert(HeaderValue::from_static("close"));
    if !body.is_empty() || matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
        headers
            .entry(CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(body.len()));
    }
    http::Request::from_parts(parts, Full::new(body))
}

/// A request from `builder`, or why the URL or a header cannot be one.
fn build(url: &str, builder: http::Result<Request>) -> Result<Request, Error> {
    builder.map_err(|error| Error::InvalidUrl {
        url: crate::target::redact(url),
        reason: error.to_string(),
    })
}

/// What a hyper error says about the peer: closed, reset, not HTTP, ….
fn classify(error: &hyper::Error, target: &Target, first: &FirstBytes) -> Error {
    let target = target.shown.clone();
    if error.is_parse() {
        return Error::NotHttp {
            target,
            answer: first.first_line(),
        };
    }
    let io_kind = std::iter::successors(
        std::error::Error::source(error),
        |cause: &&(dyn std::error::Error + 'static)| cause.source(),
    )
    .find_map(|cause| cause.downcast_ref::<io::Error>())
    .map(io::Error::kind);
    let ended = error.is_incomplete_message()
        || matches!(
            io_kind,
            Some(
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            )
        );
    if !ended {
        return Error::Protocol {
            target,
            reason: chain(error),
        };
    }
    if first.any() {
        Error::Incomplete { target }
    } else if matches!(
        io_kind,
        Some(io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted)
    ) {
        Error::Reset { target }
    } else {
        Error::Closed { target }
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
