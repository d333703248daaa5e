//! Mirroring over smart HTTP: a tiny server in the test runs `git http-backend` (CGI) per request.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use lastmile_git::{GitError, Mirror};

#[path = "support/git.rs"]
mod support;
use support::git;

/// Serves every repository under `root` over smart HTTP until dropped.
struct GitHttpServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GitHttpServer {
    fn start(root: PathBuf) -> Self {
        Self::start_with_password(root, None)
    }

    /// With `authorization` ("Basic …"), a request without that header is answered 401.
    fn start_with_password(root: PathBuf, authorization: Option<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    // One request per connection; failures just drop the connection.
                    let _ = serve(stream, &root, authorization);
                }
            }
        });
        GitHttpServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream, root: &Path, authorization: Option<&str>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    if let Some(expected) = authorization
        && headers.get("authorization").map(String::as_str) != Some(expected)
    {
        let mut stream = stream;
        stream.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return stream.flush();
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            if size == 0 {
                // Trailer section ends with an empty line.
                let mut end = String::new();
                reader.read_line(&mut end)?;
                break;
            }
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = headers.get("content-length") {
        body.resize(len.parse().unwrap_or(0), 0);
        reader.read_exact(&mut body)?;
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cgi = Command::new("git");
    cgi.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (header, var) in [
        ("content-type", "CONTENT_TYPE"),
        ("git-protocol", "GIT_PROTOCOL"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
    ] {
        if let Some(v) = headers.get(header) {
            cgi.env(var, v);
        }
    }
    let mut child = cgi.spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let output = child.wait_with_output()?;
    let _ = writer.join();
    let out = output.stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            out.windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        })
        .unwrap_or((0, 0));
    let head = String::from_utf8_lossy(&out[..split.0]).to_string();
    let payload = &out[split.1..];
    let mut status = "200 OK".to_string();
    let mut response = Vec::new();
    let mut extra = String::new();
    for h in head.lines() {
        match h.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
            Some(_) => {
                extra.push_str(h.trim_end());
                extra.push_str("\r\n");
            }
            None => {}
        }
    }
    write!(
        response,
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    )?;
    response.extend_from_slice(payload);
    let mut stream = stream;
    stream.write_all(&response)?;
    stream.flush()
}

/// A work repository with one commit on `main` and a bare copy of it served as
/// `served/app.git`; returns (work dir, served dir, the commit).
fn served_repo(root: &Path) -> (PathBuf, PathBuf, String) {
    let work = root.join("work");
    std::fs::create_dir(&work).expect("mkdir");
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("a.txt"), "one\n").expect("write");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    let served = root.join("served");
    std::fs::create_dir(&served).expect("mkdir");
    git(
        &served,
        &[
            "clone",
            "-q",
            "--bare",
            &work.display().to_string(),
            "app.git",
        ],
    );
    (work, served, first)
}

#[test]
fn clone_and_fetch_over_http() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (work, served, first) = served_repo(tmp.path());
    let server = GitHttpServer::start(served.clone());
    let url = format!("http://127.0.0.1:{}/app.git", server.port);
    let mirror = Mirror::open_or_clone(&url, &tmp.path().join("mirror")).expect("http clone");
    let heads = mirror.fetch().expect("fetch");
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].sha, first);

    std::fs::write(work.join("a.txt"), "two\n").expect("write");
    git(&work, &["commit", "-q", "-am", "two"]);
    let second = git(&work, &["rev-parse", "HEAD"]);
    let bare = served.join("app.git").display().to_string();
    git(&work, &["push", "-q", &bare, "main"]);
    let heads = mirror.fetch().expect("fetch again");
    assert_eq!(heads[0].sha, second);
    assert_eq!(mirror.commit(&second).expect("commit").subject, "two");

    let missing = format!("http://127.0.0.1:{}/nope.git", server.port);
    let err = Mirror::open_or_clone(&missing, &tmp.path().join("other")).expect_err("404");
    assert!(matches!(err, GitError::Clone { .. }), "{err:?}");
    assert!(err.to_string().contains(&missing), "{err}");
    drop(server);
}

#[test]
fn a_password_in_the_url_is_used_and_never_shown() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_work, served, first) = served_repo(tmp.path());
    // base64("bot:tok3n")
    let server = GitHttpServer::start_with_password(served, Some("Basic Ym90OnRvazNu"));
    let url = |password: &str| format!("http://bot:{password}@127.0.0.1:{}/app.git", server.port);

    let mirror = Mirror::open_or_clone(&url("tok3n"), &tmp.path().join("mirror"))
        .expect("the password in the URL is sent");
    assert_eq!(mirror.fetch().expect("fetch")[0].sha, first);

    // A wrong password fails at once: no prompt for another one.
    let err = Mirror::open_or_clone(&url("wr0ngpass"), &tmp.path().join("other"))
        .expect_err("wrong password");
    assert!(matches!(err, GitError::Clone { .. }), "{err:?}");
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("wr0ngpass"), "{text}");
        assert!(text.contains("bot:***@127.0.0.1"), "{text}");
        assert!(
            text.contains("Authentication failed"),
            "git's own words: {text}"
        );
    }
    assert!(
        !tmp.path().join("other").exists(),
        "a failed clone leaves nothing"
    );

    drop(server);
    let err = mirror.fetch().expect_err("the server is gone");
    assert!(matches!(err, GitError::Fetch { .. }), "{err:?}");
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("tok3n"), "{text}");
        assert!(text.contains("bot:***@127.0.0.1"), "{text}");
        assert!(text.contains("connect"), "git's own words: {text}");
    }
    assert!(!format!("{mirror:?}").contains("tok3n"));
}
