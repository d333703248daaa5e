//! Request smuggling and response-queue poisoning: one table row per attack class, each run
//! through a real router on 127.0.0.1:0 in front of a raw-socket backend that records every
//! byte it receives.
//!
//! For every row: the client gets the expected status (and, for a refusal, the connection
//! closes); what the backend received parses as exactly the requests the router was meant to
//! forward, with nothing left over; and a following request on a new client connection gets
//! its own answer.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lastmile_router::{Backend, ListenerHandle, Route, RouteTable, Router, RouterConfig, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound for anything a test waits on.
const LIMIT: Duration = Duration::from_secs(8);

/// One request as the backend parsed it.
#[derive(Debug, Clone)]
struct Seen {
    /// Which backend connection carried it (0, 1, …).
    conn: usize,
    method: String,
    path: String,
    /// Header fields, names lowercased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Everything one backend received: raw bytes per connection, and the requests parsed from them.
#[derive(Debug, Default)]
struct Record {
    raw: Vec<Vec<u8>>,
    seen: Vec<Seen>,
}

type Bad = fn(&str) -> Option<Vec<u8>>;

/// A raw TCP backend: answers each request it parses with `200` and a body naming the path
/// (`path=/x`), keep-alive; `bad(path)` may supply a broken response instead.
async fn backend(bad: Bad) -> (SocketAddr, Arc<Mutex<Record>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let record = Arc::new(Mutex::new(Record::default()));
    let rec = record.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let conn = {
                let mut r = rec.lock().unwrap();
                r.raw.push(Vec::new());
                r.raw.len() - 1
            };
            let rec = rec.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Ok(Some((n, mut seen))) = parse_request(&buf) {
                        buf.drain(..n);
                        seen.conn = conn;
                        let path = seen.path.clone();
                        rec.lock().unwrap().seen.push(seen);
                        let answer = bad(&path).unwrap_or_else(|| {
                            let body = format!("path={path}");
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            )
                            .into_bytes()
                        });
                        if s.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                    let n = match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    rec.lock().unwrap().raw[conn].extend_from_slice(&chunk[..n]);
                    buf.extend_from_slice(&chunk[..n]);
                }
            });
        }
    });
    (addr, record)
}

/// A strict parser of what the router forwards: CRLF lines, exactly one of Content-Length or
/// `Transfer-Encoding: chunked` for a body. `Err` for anything else.
fn parse_request(buf: &[u8]) -> Result<Option<(usize, Seen)>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, path, "HTTP/1.1"] = parts[..] else {
        return Err(format!("bad request line {line:?}"));
    };
    let mut headers = Vec::new();
    for l in lines {
        if l.contains('\n') || l.contains('\r') {
            return Err(format!("bare CR/LF in {l:?}"));
        }
        let (n, v) = l.split_once(':').ok_or(format!("no colon in {l:?}"))?;
        if n.is_empty() || n.contains(' ') {
            return Err(format!("bad name in {l:?}"));
        }
        headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut seen = Seen {
        conn: 0,
        method: method.into(),
        path: path.into(),
        headers,
        body: Vec::new(),
    };
    let cl = seen.header("content-length");
    let te = seen.header("transfer-encoding");
    let start = end + 4;
    match (cl.as_slice(), te.as_slice()) {
        ([], []) => Ok(Some((start, seen))),
        ([n], []) => {
            let n: usize = n.parse().map_err(|_| format!("bad length {n:?}"))?;
            if buf.len() < start + n {
                return Ok(None);
            }
            seen.body = buf[start..start + n].to_vec();
            Ok(Some((start + n, seen)))
        }
        ([], ["chunked"]) => {
            let mut at = start;
            loop {
                let Some(le) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                let line = std::str::from_utf8(&buf[at..at + le]).map_err(|e| e.to_string())?;
                let size = line.split(';').next().unwrap_or_default();
                let size = usize::from_str_radix(size, 16).map_err(|_| format!("size {line:?}"))?;
                at += le + 2;
                if size == 0 {
                    // Trailers up to the empty line.
                    loop {
                        let Some(le) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
                            return Ok(None);
                        };
                        at += le + 2;
                        if le == 0 {
                            return Ok(Some((at, seen)));
                        }
                    }
                }
                if buf.len() < at + size + 2 {
                    return Ok(None);
                }
                seen.body.extend_from_slice(&buf[at..at + size]);
                if &buf[at + size..at + size + 2] != b"\r\n" {
                    return Err("chunk without CRLF".into());
                }
                at += size + 2;
            }
        }
        _ => Err(format!("ambiguous framing: cl={cl:?} te={te:?}")),
    }
}

impl Record {
    /// Re-parses each connection's raw bytes from the start: they must be whole requests only.
    fn check_no_stray_bytes(&self) {
        self.check_requests(false);
    }

    /// Like `check_no_stray_bytes`, but a connection may end inside its last request (a body the
    /// router was relaying when it gave up on the client and dropped the upstream connection).
    fn check_requests(&self, truncated_tail_ok: bool) {
        for (i, raw) in self.raw.iter().enumerate() {
            let mut at = 0;
            while at < raw.len() {
                match parse_request(&raw[at..]) {
                    Ok(Some((n, _))) => at += n,
                    Ok(None) if truncated_tail_ok => break,
                    Ok(None) => panic!(
                        "backend connection {i} has stray bytes: {:?}",
                        String::from_utf8_lossy(&raw[at..])
                    ),
                    Err(e) => panic!(
                        "backend connection {i} got an unparsable request ({e}): {:?}",
                        String::from_utf8_lossy(raw)
                    ),
                }
            }
        }
    }

    fn paths(&self) -> Vec<String> {
        self.seen.iter().map(|s| s.path.clone()).collect()
    }
}

struct Proxy {
    _router: Router,
    addr: SocketAddr,
    _handle: ListenerHandle,
}

fn proxy_to(backend: SocketAddr) -> Proxy {
    let router = Router::new(RouterConfig::default());
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let handle = router.serve(l).unwrap();
    router.set_table(RouteTable {
        routes: vec![Route {
            name: "all".into(),
            listen: addr,
            host: None,
            path_prefix: "/".into(),
            backends: vec![Backend {
                release: "r1".into(),
                weight: 1,
                instances: vec![Upstream {
                    id: "b1".into(),
                    addr: backend,
                }],
            }],
            cohort: None,
            pins: Vec::new(),
            mirror: None,
            warmup: Default::default(),
        }],
    });
    Proxy {
        _router: router,
        addr,
        _handle: handle,
    }
}

/// One response read off `s`: (status, head, body); the body is framed by Content-Length, or
/// chunked (decoded, no extensions or trailers expected).
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u16, String, Vec<u8>)> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked")
            {
                if let Some(stop) = buf[end..].windows(5).position(|w| w == b"0\r\n\r\n") {
                    let mut body = Vec::new();
                    let mut at = end + 4;
                    loop {
                        let le = buf[at..].windows(2).position(|w| w == b"\r\n")?;
                        let size =
                            usize::from_str_radix(std::str::from_utf8(&buf[at..at + le]).ok()?, 16)
                                .ok()?;
                        at += le + 2;
                        if size == 0 {
                            break;
                        }
                        body.extend_from_slice(&buf[at..at + size]);
                        at += size + 2;
                    }
                    buf.drain(..end + stop + 5);
                    let status = head.get(9..12)?.parse().ok()?;
                    return Some((status, head, body));
                }
            } else {
                let len: usize = head
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    buf.drain(..end + 4 + len);
                    let status = head.get(9..12)?.parse().ok()?;
                    return Some((status, head, body));
                }
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The peer closed (EOF or reset) with nothing more to read.
async fn closed(s: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match tokio::time::timeout(LIMIT, s.read_to_end(&mut rest)).await {
        Ok(Ok(_)) => rest.is_empty(),
        Ok(Err(_)) => true,
        Err(_) => false,
    }
}

/// A fresh client connection asks for `/victim` and must get `/victim`'s answer.
async fn victim_gets_its_own_answer(p: &Proxy, row: &str) {
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /victim HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = tokio::time::timeout(LIMIT, read_response(&mut s, &mut Vec::new()))
        .await
        .unwrap();
    let (status, head, body) = got.unwrap_or_else(|| panic!("{row}: victim got no answer"));
    assert_eq!(status, 200, "{row}: victim: {head}");
    assert_eq!(
        body, b"path=/victim",
        "{row}: victim got someone else's answer"
    );
}

/// A request row: what the client sends, what it must get, what the backend must see.
struct Row {
    name: &'static str,
    request: &'static [u8],
    status: u16,
    /// Paths the backend must receive, in order (before the victim).
    forwarded: &'static [&'static str],
}

const fn refused(name: &'static str, request: &'static [u8], status: u16) -> Row {
    Row {
        name,
        request,
        status,
        forwarded: &[],
    }
}

const ROWS: &[Row] = &[
    // The original exploit: Connection named Content-Length, the router dropped it but framed
    // the body itself, and the backend read the body as a second request.
    Row {
        name: "connection names content-length",
        request: b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 34\r\nConnection: content-length\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        status: 200,
        forwarded: &["/first"],
    },
    Row {
        name: "connection names transfer-encoding",
        request: b"POST /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n23\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n",
        status: 200,
        forwarded: &["/first"],
    },
    Row {
        name: "connection names host and x-forwarded-for",
        request: b"GET /first HTTP/1.1\r\nHost: x\r\nConnection: host, x-forwarded-for, keep-alive\r\n\r\n",
        status: 200,
        forwarded: &["/first"],
    },
    Row {
        name: "chunked with odd optional whitespace",
        request: b"POST /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \t chunked \t\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        status: 200,
        forwarded: &["/first"],
    },
    Row {
        name: "chunked in capitals",
        request: b"POST /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        status: 200,
        forwarded: &["/first"],
    },
    Row {
        name: "absolute-form target matching Host",
        request: b"GET http://x/first HTTP/1.1\r\nHost: x\r\n\r\n",
        status: 200,
        forwarded: &["/first"],
    },
    Row {
        name: "valid chunk extensions and trailers",
        request: b"POST /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b;c=\"d e\"\r\nhello\r\n0\r\nx-t: 1\r\n\r\n",
        status: 200,
        forwarded: &["/first"],
    },
    Row {
        name: "a valid request, then CL+TE pipelined behind it",
        request: b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nPOST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        status: 200,
        forwarded: &["/first"],
    },
    refused("CL+TE", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", 400),
    refused("TE+CL", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nG", 400),
    refused("TE with CL: 0", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    refused("differing Content-Lengths", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    refused("duplicate equal Content-Lengths", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    refused("Content-Length list form", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello", 400),
    refused("Content-Length with a sign", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", 400),
    refused("Content-Length in hex", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello", 400),
    refused("Content-Length with trailing junk", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5a\r\n\r\nhello", 400),
    refused("Content-Length empty", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", 400),
    refused("Content-Length overflowing", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
    refused("chunked, chunked", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 501),
    refused("two chunked field lines", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    refused("gzip, chunked", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    refused("identity", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nhello", 501),
    refused("chunked with a parameter", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", 501),
    refused("quoted chunked", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", 501),
    refused("empty Transfer-Encoding", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n0\r\n\r\n", 400),
    refused("Transfer-Encoding in HTTP/1.0", b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    refused("vertical tab before chunked", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", 400),
    refused("vertical tab in a value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x0bb\r\n\r\n", 400),
    refused("NUL in a value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    refused("DEL in a value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n", 400),
    refused("bare LF line endings", b"GET / HTTP/1.1\nHost: x\n\n", 400),
    refused("bare LF after one header", b"GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", 400),
    refused("bare LF ending the request line", b"GET / HTTP/1.1\nHost: x\r\n\r\n", 400),
    refused("bare CR in a header", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
    refused("bare CR ending the head", b"GET / HTTP/1.1\r\nHost: x\r\n\r\r\n", 400),
    refused("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    refused("obs-fold of Transfer-Encoding", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400),
    refused("whitespace before the colon", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    refused("tab before the colon", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length\t: 5\r\n\r\nhello", 400),
    refused("space before the first header", b"POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: x\r\n\r\n0\r\n\r\n", 400),
    refused("control byte in the target", b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    refused("tab in the request line", b"GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    refused("two spaces in the request line", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    refused("unknown version", b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 400),
    refused("chunk size overflow", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n", 400),
    refused("chunk size with bare LF", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400),
    refused("chunk size with trailing space", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 400),
    refused("chunk size with a sign", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", 400),
    refused("chunk data without CRLF", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n", 400),
    refused("chunk extension with bare LF", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\nhello\r\n0\r\n\r\n", 400),
    refused("chunk extension with a control byte", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n0\r\n\r\n", 400),
    refused("chunk extension with a space in a token", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b c\r\nhello\r\n0\r\n\r\n", 400),
    refused("chunk extension with an open quote", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"b\r\nhello\r\n0\r\n\r\n", 400),
    refused("trailer with bare LF", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nx-t: 1\n\r\n", 400),
    refused("trailers ending with bare LF", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nx-t: 1\r\n\n", 400),
    refused("trailer without a colon", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nGET /smuggled HTTP/1.1\r\n\r\n", 400),
    refused("trailer naming Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 40\r\n\r\n", 400),
    refused("two Host headers", b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    refused("two equal Host headers", b"GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", 400),
    refused("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400),
    refused("Host with a space", b"GET / HTTP/1.1\r\nHost: x y\r\n\r\n", 400),
    refused("Host with userinfo", b"GET / HTTP/1.1\r\nHost: a@x\r\n\r\n", 400),
    refused("absolute-form target disagreeing with Host", b"GET http://evil/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    refused("absolute-form target without authority", b"GET http:///a HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    refused("authority-form target", b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", 400),
];

#[tokio::test]
async fn request_rows() {
    for row in ROWS {
        let (up, record) = backend(|_| None).await;
        let p = proxy_to(up);
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(row.request).await.unwrap();
        let mut buf = Vec::new();
        let got = tokio::time::timeout(LIMIT, read_response(&mut s, &mut buf))
            .await
            .unwrap_or_else(|_| panic!("{}: no answer in time", row.name));
        let (status, head, body) = got.unwrap_or_else(|| panic!("{}: closed unanswered", row.name));
        assert_eq!(status, row.status, "{}: {head}", row.name);
        if row.status >= 400 {
            assert!(
                head.to_ascii_lowercase().contains("connection: close"),
                "{}: {head}",
                row.name
            );
            assert!(closed(&mut s).await, "{}: connection left open", row.name);
        } else {
            let want = format!("path={}", row.forwarded[0]);
            assert_eq!(String::from_utf8_lossy(&body), want, "{}", row.name);
        }
        drop(s);
        victim_gets_its_own_answer(&p, row.name).await;
        let rec = record.lock().unwrap();
        rec.check_no_stray_bytes();
        let mut want: Vec<String> = row.forwarded.iter().map(|p| p.to_string()).collect();
        want.push("/victim".into());
        assert_eq!(
            rec.paths(),
            want,
            "{}: the backend saw other requests",
            row.name
        );
        for seen in &rec.seen {
            assert_eq!(seen.header("host").len(), 1, "{}: {seen:?}", row.name);
            assert!(
                seen.header("connection").is_empty(),
                "{}: Connection forwarded: {seen:?}",
                row.name
            );
        }
    }
}

#[tokio::test]
async fn forwarded_framing_is_the_routers_own() {
    let (up, record) = backend(|_| None).await;
    let p = proxy_to(up);
    // The exploit, chunked with Connection naming transfer-encoding, Connection naming Host and
    // X-Forwarded-For; one client connection each (the exploit leaves a byte unread).
    for row in &ROWS[..3] {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(row.request).await.unwrap();
        let (status, _, _) = read_response(&mut s, &mut Vec::new()).await.unwrap();
        assert_eq!(status, 200, "{}", row.name);
    }
    let rec = record.lock().unwrap();
    let [first, second, third] = &rec.seen[..] else {
        panic!("{:?}", rec.seen);
    };
    assert_eq!(
        (first.method.as_str(), second.method.as_str()),
        ("POST", "POST")
    );
    assert_eq!(first.header("content-length"), ["34"]);
    // The 34 bytes the client framed (its 35th byte stays on the client connection).
    assert_eq!(first.body, b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r");
    assert_eq!(second.header("transfer-encoding"), ["chunked"]);
    assert_eq!(second.body, b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(third.header("host"), ["x"]);
    assert_eq!(third.header("x-forwarded-for"), ["127.0.0.1"]);
    rec.check_no_stray_bytes();
}

/// An upstream answer for the first request of a row; later requests get normal answers.
struct UpRow {
    name: &'static str,
    response: &'static [u8],
    status: u16,
}

const UP_ROWS: &[UpRow] = &[
    UpRow {
        name: "conflicting Content-Lengths",
        response: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
        status: 502,
    },
    UpRow {
        name: "duplicate equal Content-Lengths",
        response: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        status: 502,
    },
    UpRow {
        name: "Content-Length list",
        response: b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
        status: 502,
    },
    UpRow {
        name: "non-numeric Content-Length",
        response: b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello",
        status: 502,
    },
    UpRow {
        name: "CL+TE",
        response: b"HTTP/1.1 200 OK\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
        status: 502,
    },
    UpRow {
        name: "Transfer-Encoding in HTTP/1.0",
        response: b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n0\r\n\r\n",
        status: 502,
    },
    UpRow {
        name: "gzip, chunked",
        response: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        status: 502,
    },
    UpRow {
        name: "two Transfer-Encoding lines",
        response: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        status: 502,
    },
    UpRow {
        name: "bad chunk size",
        response: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        status: 502,
    },
    UpRow {
        name: "chunk size overflow",
        response: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        status: 502,
    },
    UpRow {
        name: "chunk with bare LF",
        response: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        status: 502,
    },
    UpRow {
        name: "obs-fold",
        response: b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 5\r\n\r\nhello",
        status: 502,
    },
    UpRow {
        name: "control byte in a value",
        response: b"HTTP/1.1 200 OK\r\nX-A: a\x0bb\r\nContent-Length: 5\r\n\r\nhello",
        status: 502,
    },
    UpRow {
        name: "Connection names content-length",
        response: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: content-length\r\n\r\nhello",
        status: 200,
    },
    UpRow {
        name: "Connection names transfer-encoding",
        response: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        status: 200,
    },
    UpRow {
        name: "whitespace before the colon (removed, RFC 9112 §5.1)",
        response: b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
        status: 200,
    },
];

#[tokio::test]
async fn upstream_rows() {
    for (i, row) in UP_ROWS.iter().enumerate() {
        // The backend answers `/bad` with the row's response (every row has its own backend).
        static CURRENT: Mutex<usize> = Mutex::new(0);
        *CURRENT.lock().unwrap() = i;
        let (up, record) = backend(|path| {
            (path == "/bad").then(|| UP_ROWS[*CURRENT.lock().unwrap()].response.to_vec())
        })
        .await;
        let p = proxy_to(up);
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"GET /bad HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let got = tokio::time::timeout(LIMIT, read_response(&mut s, &mut buf))
            .await
            .unwrap_or_else(|_| panic!("{}: no answer in time", row.name));
        let (status, head, body) = got.unwrap_or_else(|| panic!("{}: closed unanswered", row.name));
        assert_eq!(status, row.status, "{}: {head}", row.name);
        let lower = head.to_ascii_lowercase();
        if status == 200 {
            assert_eq!(body, b"hello", "{}: {head}", row.name);
            // Exactly one framing header, written by the router.
            let framing = lower
                .lines()
                .filter(|l| l.starts_with("content-length:") || l.starts_with("transfer-encoding:"))
                .count();
            assert_eq!(framing, 1, "{}: {head}", row.name);
            assert!(!lower.contains("content-length :"), "{}: {head}", row.name);
        }
        // The client's side of the exchange was clean: its connection may stay, and its next
        // request must get its own answer too.
        let mut want = vec!["/bad"];
        if !lower.contains("connection: close") {
            s.write_all(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let (status, head, body) = read_response(&mut s, &mut buf).await.unwrap();
            assert_eq!(
                (status, &body[..]),
                (200, &b"path=/again"[..]),
                "{}: {head}",
                row.name
            );
            want.push("/again");
        }
        drop(s);
        victim_gets_its_own_answer(&p, row.name).await;
        want.push("/victim");
        let rec = record.lock().unwrap();
        rec.check_no_stray_bytes();
        assert_eq!(rec.paths(), want, "{}", row.name);
        if status != 200 {
            assert!(
                rec.seen[1..].iter().all(|s| s.conn != rec.seen[0].conn),
                "{}: the upstream connection with doubtful framing was reused: {:?}",
                row.name,
                rec.seen
            );
        }
    }
}

/// Inputs for the socket fuzz test: arbitrary bytes, and valid requests with a few bytes
/// replaced or inserted (CR, LF, space, colon, control bytes are the interesting ones).
fn fuzz_inputs(n: usize) -> Vec<Vec<u8>> {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    const TEMPLATES: &[&[u8]] = &[
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nt: 1\r\n\r\n",
        b"GET http://x/d HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, x-a\r\nX-A: 1\r\n\r\n",
        b"GET /e HTTP/1.0\r\n\r\n",
    ];
    let byte = prop_oneof![
        Just(b'\r'),
        Just(b'\n'),
        Just(b' '),
        Just(b':'),
        Just(b','),
        Just(b'0'),
        Just(0x0b),
        any::<u8>()
    ];
    let edit = (any::<usize>(), byte, any::<bool>());
    let mutated =
        (0..TEMPLATES.len(), proptest::collection::vec(edit, 0..3)).prop_map(|(t, edits)| {
            let mut r = TEMPLATES[t].to_vec();
            for (at, b, insert) in edits {
                let at = at % r.len();
                if insert {
                    r.insert(at, b);
                } else {
                    r[at] = b;
                }
            }
            r
        });
    let strategy = prop_oneof![proptest::collection::vec(any::<u8>(), 0..200), mutated];
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

/// Arbitrary bytes over real sockets: every connection is answered or closed within the head
/// and idle timeouts, whatever reaches the backend is clean requests, and a victim afterwards
/// gets its own answer.
#[tokio::test]
async fn arbitrary_bytes_over_a_socket_are_answered_or_closed() {
    let (up, record) = backend(|_| None).await;
    let router = Router::new(RouterConfig {
        header_read_timeout: Duration::from_millis(300),
        ..RouterConfig::default()
    });
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let handle = router
        .serve_with(
            l,
            lastmile_router::ListenerConfig {
                limits: lastmile_router::Limits {
                    idle_timeout: Duration::from_millis(300),
                    body_read_timeout: Duration::from_millis(300),
                    ..lastmile_router::Limits::default()
                },
                ..lastmile_router::ListenerConfig::default()
            },
        )
        .unwrap();
    let p = Proxy {
        _router: router.clone(),
        addr,
        _handle: handle,
    };
    router.set_table(RouteTable {
        routes: vec![Route {
            name: "all".into(),
            listen: addr,
            host: None,
            path_prefix: "/".into(),
            backends: vec![Backend {
                release: "r1".into(),
                weight: 1,
                instances: vec![Upstream {
                    id: "b1".into(),
                    addr: up,
                }],
            }],
            cohort: None,
            pins: Vec::new(),
            mirror: None,
            warmup: Default::default(),
        }],
    });
    let inputs = fuzz_inputs(128);
    let mut tasks = Vec::new();
    for input in inputs {
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            // The router may close before taking everything: a failed write is fine.
            let _ = s.write_all(&input).await;
            let mut got = Vec::new();
            let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
            assert!(
                r.is_ok(),
                "not answered or closed in time: {:?}",
                String::from_utf8_lossy(&input)
            );
            if !got.is_empty() {
                assert!(
                    got.starts_with(b"HTTP/1.1 "),
                    "{:?} -> {:?}",
                    String::from_utf8_lossy(&input),
                    String::from_utf8_lossy(&got)
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    victim_gets_its_own_answer(&p, "fuzz").await;
    let rec = record.lock().unwrap();
    rec.check_requests(true);
    assert_eq!(rec.seen.last().map(|s| s.path.as_str()), Some("/victim"));
    assert!(
        rec.seen.len() > 10,
        "too few inputs were valid: {:?}",
        rec.paths()
    );
}

/// The hyper path (h2 clients) applies the same response framing rules.
#[tokio::test]
async fn upstream_rows_over_h2() {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    for (i, row) in UP_ROWS.iter().enumerate() {
        static CURRENT: Mutex<usize> = Mutex::new(0);
        *CURRENT.lock().unwrap() = i;
        let (up, record) = backend(|path| {
            (path == "/bad").then(|| UP_ROWS[*CURRENT.lock().unwrap()].response.to_vec())
        })
        .await;
        let p = proxy_to(up);
        let tcp = TcpStream::connect(p.addr).await.unwrap();
        let (mut c, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut fetch = async |path: &str| {
            let req = hyper::Request::get(format!("http://x{path}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            // A reset stream (status 0) is how h2 cuts off a body that broke mid-way.
            let Ok(resp) = tokio::time::timeout(LIMIT, c.send_request(req))
                .await
                .unwrap()
            else {
                return (0, Bytes::new());
            };
            let status = resp.status().as_u16();
            let body = match resp.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => Bytes::from(format!("body failed: {e}")),
            };
            (status, body)
        };
        let (status, body) = fetch("/bad").await;
        // hyper refuses whitespace before the colon itself, where the HTTP/1.1 path removes it;
        // a broken chunk is found while the body streams, after the head went out: the h2
        // stream is reset instead (the HTTP/1.1 path can still answer 502 when the broken chunk
        // came with the head).
        let want = if row.name.starts_with("whitespace") {
            502
        } else {
            row.status
        };
        let broken_chunk = row.name.contains("chunk ");
        assert!(
            status == want || (broken_chunk && status == 0),
            "{}: {status} {body:?}",
            row.name
        );
        if status == 200 {
            assert_eq!(&body[..], b"hello", "{}", row.name);
        }
        let (status, body) = fetch("/victim").await;
        assert_eq!(
            (status, &body[..]),
            (200, &b"path=/victim"[..]),
            "{}",
            row.name
        );
        let rec = record.lock().unwrap();
        rec.check_no_stray_bytes();
        assert_eq!(rec.paths(), ["/bad", "/victim"], "{}", row.name);
        if want != 200 {
            assert_ne!(rec.seen[0].conn, rec.seen[1].conn, "{}: reused", row.name);
        }
    }
}
