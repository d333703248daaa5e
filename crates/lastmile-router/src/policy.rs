//! The one request policy of both HTTP paths — the hand-written HTTP/1.1 path (`http1`) and the
//! hyper path for h2 (`proxy`): which requests may be retried, what each header field means to
//! the router (hop-by-hop, framing, forwarding, and which of them `Connection` may not remove),
//! the forwarding headers the router adds, and every error the router answers with itself.
//!
//! Framing (`Content-Length`, `Transfer-Encoding`) is never copied from one hop to the next: the
//! router writes it from what it parsed. `Connection` may name further hop-by-hop fields
//! (RFC 9110 §7.6.1), but never one the router itself depends on for framing, routing or the
//! exchange (`Host`, framing, `Expect`, the forwarding headers): a client that could remove
//! those could make the router and the upstream disagree about where a request ends.

/// Whether a request with this method may be sent again, to another instance, after a connect
/// failure: the idempotent methods of RFC 9110 §9.2.2 (the caller also requires no body).
pub(crate) fn is_retryable_method(method: &[u8]) -> bool {
    matches!(method, b"GET" | b"HEAD" | b"OPTIONS" | b"PUT" | b"DELETE")
}

/// What a header field is to the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    Upgrade,
    Expect,
    /// `te`, `trailer`, `keep-alive`, `proxy-*`: describe one hop; never forwarded.
    HopByHop,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    XRequestId,
    /// End to end: forwarded as is (unless `Connection` names it).
    Other,
}

impl Field {
    /// `Connection` may name this field to have it dropped: only fields the router does not
    /// itself read or write.
    pub(crate) fn connection_may_remove(self) -> bool {
        self == Field::Other
    }

    /// A hop-by-hop field (RFC 9110 §7.6.1) that is dropped when a head is forwarded (`Upgrade`
    /// and `Connection: upgrade` are re-added by the router for an upgrade it relays).
    pub(crate) fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            Field::Connection | Field::TransferEncoding | Field::Upgrade | Field::HopByHop
        )
    }
}

fn is(name: &[u8], lit: &[u8]) -> bool {
    name.eq_ignore_ascii_case(lit)
}

/// Classifies a header field name (case-insensitive); a length switch, then one comparison.
pub(crate) fn classify(name: &[u8]) -> Field {
    let field = match name.len() {
        2 if is(name, b"te") => Field::HopByHop,
        4 if is(name, b"host") => Field::Host,
        6 if is(name, b"expect") => Field::Expect,
        7 if is(name, b"trailer") => Field::HopByHop,
        7 if is(name, b"upgrade") => Field::Upgrade,
        10 if is(name, b"connection") => Field::Connection,
        10 if is(name, b"keep-alive") => Field::HopByHop,
        12 if is(name, b"x-request-id") => Field::XRequestId,
        14 if is(name, b"content-length") => Field::ContentLength,
        15 if is(name, b"x-forwarded-for") => Field::XForwardedFor,
        16 if is(name, b"x-forwarded-host") => Field::XForwardedHost,
        17 if is(name, b"transfer-encoding") => Field::TransferEncoding,
        17 if is(name, b"x-forwarded-proto") => Field::XForwardedProto,
        _ => Field::Other,
    };
    if field == Field::Other && name.len() > 6 && is(&name[..6], b"proxy-") {
        return Field::HopByHop;
    }
    field
}

/// The client chain; the router appends the client's IP.
pub(crate) const X_FORWARDED_FOR: &str = "x-forwarded-for";
/// The scheme the client used.
pub(crate) const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
/// The Host (or HTTP/2 authority) the client asked for.
pub(crate) const X_FORWARDED_HOST: &str = "x-forwarded-host";
/// Kept when the client sent one, else a fresh 16-hex-digit id.
pub(crate) const X_REQUEST_ID: &str = "x-request-id";
/// `x-forwarded-proto` of a plain-text listener.
pub(crate) const PROTO_HTTP: &str = "http";
/// `X-Forwarded-Proto` of requests that arrived over TLS.
pub(crate) const PROTO_HTTPS: &str = "https";

/// Every answer the router makes itself, with its status and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// A head or body the router will not forward (smuggling guards, bad syntax); closes.
    BadRequest,
    /// No route matches the listener, Host and path.
    NoRoute,
    /// The client stopped sending its body for `body_read_timeout`; closes.
    RequestTimeout,
    /// The body is larger than `max_body_bytes`; closes.
    BodyTooLarge,
    /// Above the client IP's `rate_limit`; the connection stays usable.
    TooManyRequests,
    /// The head is larger than `max_header_bytes` or has more than `max_headers` fields.
    HeadersTooLarge,
    /// A transfer coding other than `chunked`; closes.
    NotImplemented,
    /// No connection to any instance could be opened.
    ConnectFailed,
    /// The upstream connection failed after the request went out.
    UpstreamFailed,
    /// The upstream's response head or framing is invalid or ambiguous.
    BadResponse,
    /// A 101 answered a request that asked for no upgrade.
    SwitchedUnasked,
    /// Every instance of the chosen release is ejected (or there is none).
    NoHealthyInstance,
    /// No response head within `upstream_timeout`.
    UpstreamTimeout,
}

impl ErrorKind {
    pub(crate) fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::NoRoute => 404,
            ErrorKind::RequestTimeout => 408,
            ErrorKind::BodyTooLarge => 413,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::HeadersTooLarge => 431,
            ErrorKind::NotImplemented => 501,
            ErrorKind::ConnectFailed
            | ErrorKind::UpstreamFailed
            | ErrorKind::BadResponse
            | ErrorKind::SwitchedUnasked => 502,
            ErrorKind::NoHealthyInstance => 503,
            ErrorKind::UpstreamTimeout => 504,
        }
    }

    /// The response body (one line of text).
    pub(crate) fn message(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad request\n",
            ErrorKind::NoRoute => "no route\n",
            ErrorKind::RequestTimeout => "request body timed out\n",
            ErrorKind::BodyTooLarge => "request body too large\n",
            ErrorKind::TooManyRequests => "too many requests\n",
            ErrorKind::HeadersTooLarge => "request header fields too large\n",
            ErrorKind::NotImplemented => "transfer coding not implemented\n",
            ErrorKind::ConnectFailed => "upstream connect failed\n",
            ErrorKind::UpstreamFailed => "upstream failed\n",
            ErrorKind::BadResponse => "upstream sent an invalid response\n",
            ErrorKind::SwitchedUnasked => "upstream switched protocols unasked\n",
            ErrorKind::NoHealthyInstance => "no healthy instance\n",
            ErrorKind::UpstreamTimeout => "upstream timeout\n",
        }
    }

    /// The status line's reason phrase.
    pub(crate) fn reason(self) -> &'static str {
        http::StatusCode::from_u16(self.status())
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::{Field, classify};

    #[test]
    fn connection_cannot_remove_what_the_router_reads() {
        for name in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "connection",
            "upgrade",
            "expect",
            "TE",
            "trailer",
            "keep-alive",
            "proxy-connection",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-request-id",
        ] {
            assert!(!classify(name.as_bytes()).connection_may_remove(), "{name}");
        }
        for name in ["x-custom", "cookie", "proxy", "hosts", "content-type"] {
            assert_eq!(classify(name.as_bytes()), Field::Other, "{name}");
        }
        assert_eq!(classify(b"Proxy-Authorization"), Field::HopByHop);
    }
}
