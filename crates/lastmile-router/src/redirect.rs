//! The HTTP→HTTPS redirect of a plaintext listener: `308 Permanent Redirect` to the same host,
//! path and query over HTTPS. 308 (not 301) keeps the method and body of non-GET requests.

use http::{HeaderValue, Request, Response, StatusCode, header};

use crate::body::ProxyBody;
use crate::config::RedirectHttps;

/// The redirect for `req`, or 400 when its host cannot be put into a `Location` safely.
pub(crate) fn response<B>(req: &Request<B>, redirect: &RedirectHttps) -> Response<ProxyBody> {
    // An absolute-form target's authority takes precedence over Host (RFC 9112 §3.2.2).
    let host = match req.uri().authority() {
        Some(a) => Some(a.as_str()),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok()),
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let target = host
        .and_then(|h| location(h, redirect.port_for(host_of(h)?), path))
        .and_then(|l| HeaderValue::from_str(&l).ok());
    let Some(target) = target else {
        let mut resp = Response::new(ProxyBody::text("missing or invalid Host header\n"));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return resp;
    };
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    let h = resp.headers_mut();
    h.insert(header::LOCATION, target);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

/// `https://{host without port}{:port unless 443}{path and query}`; `None` when `authority` is
/// not a plain host (name, IPv4 or `[IPv6]`) with an optional numeric port.
pub(crate) fn location(authority: &str, port: u16, path_and_query: &str) -> Option<String> {
    let host = host_of(authority)?;
    let path = if path_and_query.starts_with('/') {
        path_and_query
    } else {
        // `OPTIONS *` and the like: the site's root.
        "/"
    };
    Some(if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    })
}

/// The host part of an authority, validated so that it cannot carry anything else.
fn host_of(authority: &str) -> Option<&str> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let literal = &authority[1..end];
        literal.parse::<std::net::Ipv6Addr>().ok()?;
        let rest = &authority[end + 1..];
        let port = match rest {
            "" => None,
            _ => Some(rest.strip_prefix(':')?),
        };
        (&authority[..=end], port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let name_ok = host.starts_with('[')
        || (!host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
    name_ok.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::location;

    #[test]
    fn locations_keep_host_path_and_query_and_drop_the_port() {
        let cases = [
            ("example.com", 443, "/", Some("https://example.com/")),
            (
                "example.com:80",
                443,
                "/a/b?x=1&y=2",
                Some("https://example.com/a/b?x=1&y=2"),
            ),
            (
                "example.com:8080",
                8443,
                "/p",
                Some("https://example.com:8443/p"),
            ),
            ("[::1]:80", 443, "/", Some("https://[::1]/")),
            (
                "[2001:db8::1]",
                8443,
                "/q?",
                Some("https://[2001:db8::1]:8443/q?"),
            ),
            ("127.0.0.1:8080", 443, "*", Some("https://127.0.0.1/")),
            ("evil.com\r\nSet-Cookie: x=1", 443, "/", None),
            ("user@example.com", 443, "/", None),
            ("example.com/path", 443, "/", None),
            ("example.com:", 443, "/", None),
            ("example.com:80x", 443, "/", None),
            ("[::1", 443, "/", None),
            ("[nope]", 443, "/", None),
            ("", 443, "/", None),
        ];
        for (host, port, path, want) in cases {
            assert_eq!(location(host, port, path).as_deref(), want, "{host:?}");
        }
    }
}
