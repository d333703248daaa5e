//! The client against real servers on 127.0.0.1: plain TCP ones written
//! here, and a rustls one with a self-signed certificate.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lastmile_http::{Client, Error, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// What a test server does with each connection once it read the request.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Writes these bytes and closes.
    Answers(&'static str),
    /// Answers 200 with the request it read (head and body) as the body.
    Echoes,
    /// Never answers; holds the connection open.
    Silent,
    /// Sends the head and 5 of the 100 bytes it announces, then stalls.
    StallsTheBody,
    /// Closes the connection without a byte.
    Closes,
}

/// How the server is reached.
#[derive(Debug, Clone, Copy)]
enum Server {
    /// Plain TCP.
    Plain(Behaviour),
    /// TLS with a self-signed certificate for `localhost` and 127.0.0.1.
    Tls(Behaviour),
    /// A port that nothing listens on any more.
    Dead,
    /// A listener whose accept queue is full, so a connect never completes.
    Full,
}

/// How the case's client trusts servers.
#[derive(Debug, Clone, Copy)]
enum Trust {
    /// Mozilla's roots plus the test server's certificate.
    TestCa,
    /// Mozilla's roots plus another, unrelated CA.
    OtherCa,
}

/// What the request must end in.
#[derive(Debug)]
enum Expect {
    /// An answer with this status and body.
    Answer(u16, &'static str),
    /// This error variant (by its name), with a message containing the text.
    Fails(&'static str, &'static str),
}

struct Case {
    name: &'static str,
    server: Server,
    trust: Trust,
    expect: Expect,
}

/// The total timeout in the table: each case's server answers at once or
/// never.
const TOTAL: Duration = Duration::from_secs(1);
/// The body limit in the table.
const LIMIT: usize = 16;

#[tokio::test]
async fn every_way_a_request_ends_is_told_apart() {
    use Behaviour::*;
    use Expect::*;
    let cases = [
        Case {
            name: "200 with a body",
            server: Server::Plain(Answers("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")),
            trust: Trust::TestCa,
            expect: Answer(200, "hello"),
        },
        Case {
            name: "a chunked body is joined",
            server: Server::Plain(Answers(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            )),
            trust: Trust::TestCa,
            expect: Answer(200, "hello world"),
        },
        Case {
            name: "404 is an answer, not an error",
            server: Server::Plain(Answers(
                "HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot found",
            )),
            trust: Trust::TestCa,
            expect: Answer(404, "not found"),
        },
        Case {
            name: "500 is an answer, not an error",
            server: Server::Plain(Answers("HTTP/1.0 500 Internal Server Error\r\n\r\n")),
            trust: Trust::TestCa,
            expect: Answer(500, ""),
        },
        Case {
            name: "connection refused",
            server: Server::Dead,
            trust: Trust::TestCa,
            expect: Fails("Connect", "cannot connect to 127.0.0.1:"),
        },
        Case {
            name: "no connection within the connect timeout",
            server: Server::Full,
            trust: Trust::TestCa,
            expect: Fails("ConnectTimeout", "no connection within 300ms"),
        },
        Case {
            name: "a server that never answers",
            server: Server::Plain(Silent),
            trust: Trust::TestCa,
            expect: Fails("Timeout", "no complete answer within 1s"),
        },
        Case {
            name: "headers, then a stalled body",
            server: Server::Plain(StallsTheBody),
            trust: Trust::TestCa,
            expect: Fails("Timeout", "no complete answer within 1s"),
        },
        Case {
            name: "a body over the limit",
            server: Server::Plain(Answers(
                "HTTP/1.1 200 OK\r\ncontent-length: 17\r\n\r\n12345678901234567",
            )),
            trust: Trust::TestCa,
            expect: Fails("BodyTooLarge", "body is larger than 16 bytes"),
        },
        Case {
            name: "closed without an answer",
            server: Server::Plain(Closes),
            trust: Trust::TestCa,
            expect: Fails("Closed", "the connection was closed without an answer"),
        },
        Case {
            name: "an answer cut short",
            server: Server::Plain(Answers("HTTP/1.1 200 OK\r\ncontent-le")),
            trust: Trust::TestCa,
            expect: Fails("Incomplete", "ended before the answer was complete"),
        },
        Case {
            name: "not HTTP",
            server: Server::Plain(Answers("SSH-2.0-OpenSSH_9.2\r\n")),
            trust: Trust::TestCa,
            expect: Fails(
                "NotHttp",
                r#"answered "SSH-2.0-OpenSSH_9.2", which is not HTTP"#,
            ),
        },
        Case {
            name: "https with the right CA",
            server: Server::Tls(Answers(
                "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecure",
            )),
            trust: Trust::TestCa,
            expect: Answer(200, "secure"),
        },
        Case {
            name: "https with a CA that did not sign the certificate",
            server: Server::Tls(Answers(
                "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecure",
            )),
            trust: Trust::OtherCa,
            expect: Fails("Tls", "TLS handshake failed: invalid peer certificate"),
        },
    ];
    let ca = TestCa::new();
    let other = TestCa::new();
    for case in cases {
        let (addr, _server) = start(case.server, &ca).await;
        let scheme = if matches!(case.server, Server::Tls(_)) {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://127.0.0.1:{}/thing", addr.port());
        let trusted = match case.trust {
            Trust::TestCa => &ca,
            Trust::OtherCa => &other,
        };
        let client = Client::new()
            .connect_timeout(Duration::from_millis(300))
            .timeout(TOTAL)
            .body_limit(LIMIT)
            .tls(lastmile_http::tls_config(trusted.pem.as_bytes()).unwrap());
        let started = Instant::now();
        let result = client.get(&url).await;
        assert!(
            started.elapsed() < TOTAL + Duration::from_millis(500),
            "{}: took {:?}",
            case.name,
            started.elapsed()
        );
        check(case.name, &url, result, &case.expect);
    }
}

fn check(name: &str, url: &str, result: Result<Response, Error>, expect: &Expect) {
    match (result, expect) {
        (Ok(answer), Expect::Answer(status, body)) => {
            assert_eq!(answer.status.as_u16(), *status, "{name}");
            assert_eq!(answer.text(), *body, "{name}");
        }
        (Err(error), Expect::Fails(variant, says)) => {
            let debug = format!("{error:?}");
            assert!(debug.starts_with(variant), "{name}: {debug}");
            let message = error.to_string();
            assert!(message.contains(says), "{name}: {message}");
            assert!(message.starts_with(url), "{name}: {message}");
        }
        (result, expect) => panic!("{name}: expected {expect:?}, got {result:?}"),
    }
}

/// The head returns as soon as it is in, even when the body never comes.
#[tokio::test]
async fn a_status_needs_only_the_head() {
    let ca = TestCa::new();
    let (addr, _server) = start(Server::Plain(Behaviour::StallsTheBody), &ca).await;
    let client = Client::new().timeout(Duration::from_secs(5));
    let request = http::Request::get(format!("http://127.0.0.1:{}/", addr.port()))
        .body(Bytes::new())
        .unwrap();
    let started = Instant::now();
    assert_eq!(client.status(request).await.unwrap(), 200);
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A prefix read cuts the body at the limit instead of failing.
#[tokio::test]
async fn a_prefix_is_cut_at_the_limit() {
    let ca = TestCa::new();
    let (addr, _server) = start(
        Server::Plain(Behaviour::Answers(
            "HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world",
        )),
        &ca,
    )
    .await;
    let request = http::Request::get(format!("http://127.0.0.1:{}/", addr.port()))
        .body(Bytes::new())
        .unwrap();
    let answer = Client::new()
        .body_limit(5)
        .send_prefix(request)
        .await
        .unwrap();
    assert_eq!(answer.text(), "hello");
}

/// `post_json` sends the body with its type and length, and the headers
/// every request carries.
#[tokio::test]
async fn a_json_post_carries_its_body_and_headers() {
    let ca = TestCa::new();
    let (addr, _server) = start(Server::Plain(Behaviour::Echoes), &ca).await;
    let url = format!("http://127.0.0.1:{}/hooks/a?x=1", addr.port());
    let answer = Client::new()
        .post_json(&url, r#"{"event":"promoted"}"#)
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let seen = answer.text().to_lowercase();
    for wanted in [
        "post /hooks/a?x=1 http/1.1\r\n",
        &format!("host: 127.0.0.1:{}\r\n", addr.port()),
        "content-type: application/json\r\n",
        "content-length: 20\r\n",
        "user-agent: lastmile/",
        "connection: close\r\n",
        "\r\n\r\n{\"event\":\"promoted\"}",
    ] {
        assert!(seen.contains(wanted), "{wanted:?} not in {seen:?}");
    }
}

/// A non-2xx status becomes an error only when asked, naming the status.
#[tokio::test]
async fn error_for_status_names_the_status() {
    let ca = TestCa::new();
    let (addr, _server) = start(
        Server::Plain(Behaviour::Answers("HTTP/1.1 503 Busy\r\n\r\n")),
        &ca,
    )
    .await;
    let url = format!("http://127.0.0.1:{}/ready", addr.port());
    let error = Client::new()
        .get(&url)
        .await
        .unwrap()
        .error_for_status()
        .unwrap_err();
    assert_eq!(error.status().map(|status| status.as_u16()), Some(503));
    assert_eq!(error.to_string(), format!("{url} answered 503"));
}

/// Neither the URL's user info and query nor a header reach a message.
#[tokio::test]
async fn messages_name_no_secret() {
    let ca = TestCa::new();
    for server in [Server::Dead, Server::Plain(Behaviour::Silent)] {
        let (addr, _server) = start(server, &ca).await;
        let request = http::Request::post(format!(
            "http://user:s3cret@127.0.0.1:{}/hook?token=s3cret",
            addr.port()
        ))
        .header("authorization", "Bearer s3cret")
        .body(Bytes::from_static(b"{}"))
        .unwrap();
        let error = Client::new()
            .timeout(Duration::from_millis(300))
            .send(request)
            .await
            .unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains(&format!("http://127.0.0.1:{}/hook", addr.port())),
            "{shown}"
        );
    }
    let error = Client::new()
        .get("ftp://user:s3cret@example.test/?token=s3cret")
        .await
        .unwrap_err();
    assert!(
        !format!("{error} {error:?}").contains("s3cret"),
        "{error:?}"
    );
}

/// An unreadable `LASTMILE_CA_FILE`-style PEM is refused with a reason.
#[test]
fn a_bad_extra_ca_is_refused() {
    let error = lastmile_http::tls_config(
        b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap_err();
    assert!(error.to_string().starts_with("TLS settings: "), "{error}");
}

/// A self-signed certificate for `localhost` and 127.0.0.1, and a TLS acceptor for it.
struct TestCa {
    pem: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl TestCa {
    fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        TestCa {
            pem: certificate.pem(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        }
    }
}

/// Starts `server` on 127.0.0.1; what it holds (listener, tasks) lives as
/// long as the returned guard.
async fn start(server: Server, ca: &TestCa) -> (SocketAddr, Guard) {
    match server {
        Server::Dead => {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            drop(listener);
            (addr, Guard::default())
        }
        Server::Full => {
            let socket = TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let listener = socket.listen(0).unwrap();
            let addr = listener.local_addr().unwrap();
            // Fill the accept queue: connects that complete stay queued, as
            // nothing accepts; once one no longer completes, it is full.
            let mut queued = Vec::new();
            loop {
                match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr))
                    .await
                {
                    Ok(stream) => queued.push(stream.unwrap()),
                    Err(_) => break,
                }
                assert!(queued.len() < 64, "the accept queue never filled");
            }
            (
                addr,
                Guard {
                    listener: Some(listener),
                    queued,
                    task: None,
                },
            )
        }
        Server::Plain(behaviour) | Server::Tls(behaviour) => {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let tls = matches!(server, Server::Tls(_)).then(|| ca.acceptor.clone());
            let task = tokio::spawn(async move {
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    match &tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                tokio::spawn(behave(stream, behaviour));
                            }
                        }
                        None => {
                            tokio::spawn(behave(tcp, behaviour));
                        }
                    }
                }
            });
            (
                addr,
                Guard {
                    listener: None,
                    queued: Vec::new(),
                    task: Some(task),
                },
            )
        }
    }
}

/// Keeps a test server alive; dropping it stops the server.
#[derive(Default)]
#[allow(dead_code)] // The listener and the queued streams are held, not read.
struct Guard {
    listener: Option<TcpListener>,
    queued: Vec<TcpStream>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn behave(mut stream: impl AsyncRead + AsyncWrite + Unpin, behaviour: Behaviour) {
    let request = read_request(&mut stream).await;
    match behaviour {
        Behaviour::Answers(answer) => {
            let _ = stream.write_all(answer.as_bytes()).await;
        }
        Behaviour::Echoes => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                request.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&request).await;
        }
        Behaviour::Silent => std::future::pending().await,
        Behaviour::StallsTheBody => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello")
                .await;
            std::future::pending().await
        }
        Behaviour::Closes => {}
    }
    let _ = stream.shutdown().await;
}

/// The request's head and, by its `content-length`, its body.
async fn read_request(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&request).to_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                return request;
            }
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return request,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
}
