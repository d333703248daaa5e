//! Where a request goes, and how messages name it without its secrets.

use http::Uri;

use crate::Error;

/// The scheme, host and port of a request's URL.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `https`.
    pub(crate) secure: bool,
    /// The host without IPv6 brackets: what is resolved and what TLS checks.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `Host` header: the URL's host and port, without user info.
    pub(crate) authority: String,
    /// `scheme://host[:port]/path`: no user info, no query, no fragment.
    pub(crate) shown: String,
}

impl Target {
    pub(crate) fn of(uri: &Uri) -> Result<Target, Error> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: redact(&uri.to_string()),
            reason: reason.to_owned(),
        };
        let secure = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(invalid("not an http:// or https:// URL")),
        };
        let Some(authority) = uri.authority() else {
            return Err(invalid("no host"));
        };
        let bracketed = authority.host();
        if bracketed.is_empty() {
            return Err(invalid("no host"));
        }
        let port = authority
            .port_u16()
            .unwrap_or(if secure { 443 } else { 80 });
        let authority = match authority.port_u16() {
            Some(port) => format!("{bracketed}:{port}"),
            None => bracketed.to_owned(),
        };
        Ok(Target {
            secure,
            host: bracketed
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            shown: format!(
                "{}://{authority}{}",
                if secure { "https" } else { "http" },
                uri.path()
            ),
            authority,
        })
    }
}

/// `url` without user info, query or fragment, for a message about a URL
/// that did not parse.
pub(crate) fn redact(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_shown_without_user_info_or_query() {
        let cases = [
            (
                "https://user:pw@hooks.example.test/services/x?token=s3cret",
                "https://hooks.example.test/services/x",
                "hooks.example.test",
                443,
            ),
            (
                "http://127.0.0.1:9000",
                "http://127.0.0.1:9000/",
                "127.0.0.1",
                9000,
            ),
            (
                "http://[::1]:8080/a#frag",
                "http://[::1]:8080/a",
                "::1",
                8080,
            ),
        ];
        for (url, shown, host, port) in cases {
            let target = Target::of(&url.parse().unwrap()).unwrap();
            assert_eq!(target.shown, shown, "{url}");
            assert_eq!(target.host, host, "{url}");
            assert_eq!(target.port, port, "{url}");
        }
        assert_eq!(
            redact("ftp://me:pw@example.test/x?key=1"),
            "ftp://example.test/x"
        );
        let error = Target::of(&"ftp://example.test/".parse().unwrap()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "ftp://example.test/: not an http:// or https:// URL"
        );
    }
}
