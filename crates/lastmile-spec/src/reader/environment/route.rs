//! `route`: where the router accepts an environment's traffic, its TLS and
//! its limits, and the checks between environments that share a listener.
//!
//! Certificate and key files are not opened here: a spec is often checked on
//! a machine other than the one that serves it, so their existence is a
//! deploy-time question.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::model::{
    Acme, Hsts, LETS_ENCRYPT_DIRECTORY, RateLimit, Route, RouteLimits, RouteTls, TlsSource,
};
use crate::node::{Node, Place, Value};
use crate::reader::service::http_path;
use crate::reader::{Fields, Problem, Reader};
use crate::scalar::{self, AddressError};

const ROUTE_KEYS: &[&str] = &["listen", "host", "path_prefix", "tls", "limits"];
const TLS_KEYS: &[&str] = &["cert", "key", "acme", "redirect_from", "hsts"];
const ACME_KEYS: &[&str] = &["email", "directory", "ca"];
const HSTS_KEYS: &[&str] = &["max_age", "include_subdomains", "preload"];
const LIMIT_KEYS: &[&str] = &[
    "max_body",
    "max_headers",
    "max_connections",
    "max_connections_per_ip",
    "body_timeout",
    "idle_timeout",
    "send_timeout",
    "rate_limit",
];
const RATE_LIMIT_KEYS: &[&str] = &["per_second", "burst"];

/// Most header fields a request may be allowed: the router reads no more.
const MAX_HEADERS: u32 = 256;
/// Above this a connection or rate limit protects nothing.
const MAX_COUNT: u32 = 1_000_000;
/// The largest `max_body` accepted (1 TiB).
const MAX_BODY: u64 = 1 << 40;
/// Timeouts below this cut off healthy clients; above it they protect nothing.
const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(3600));
/// HSTS preload lists require at least a year.
const PRELOAD_MAX_AGE: Duration = Duration::from_secs(365 * 86_400);

/// Where a route's parts were written, for the checks across environments.
#[derive(Debug, Clone, Copy)]
pub(super) struct RouteSite {
    /// The `listen` value.
    listen: Place,
    /// The `tls` key, if any.
    tls: Option<Place>,
    /// The `redirect_from` value, or the `acme` key when it took its default.
    redirect_from: Option<Place>,
    /// Whether `redirect_from` is ACME's default rather than written.
    redirect_defaulted: bool,
    /// The `limits` key, if any.
    limits: Option<Place>,
}

/// One environment's route as the cross-environment checks see it.
pub(super) struct PlacedRoute<'route> {
    pub(super) environment: &'route str,
    pub(super) route: &'route Route,
    pub(super) site: RouteSite,
}

pub(super) fn read_route(
    reader: &mut Reader<'_>,
    node: &Node,
    environment: &str,
) -> Option<(Route, RouteSite)> {
    let fields = reader.fields(
        node,
        &format!("the route of environment `{environment}`"),
        ROUTE_KEYS,
        &[("listen", "listen: \"127.0.0.1:8080\"")],
    )?;
    let listen_node = fields.get("listen");
    let listen = listen_node.and_then(|value| address(reader, value, "route.listen"));
    let host = match fields.get("host") {
        Some(value) => reader
            .non_empty_text(
                value,
                "route.host",
                "write a host name such as `example.com`, or remove `host` to match any",
            )
            .map(|host| Some((host, value.place))),
        None => Some(None),
    };
    let path_prefix = match fields.get("path_prefix") {
        Some(value) => http_path(reader, value, "route.path_prefix"),
        None => Some("/".to_owned()),
    };
    let tls_key = fields.key("tls").map(|key| key.place);
    let tls = match (fields.get("tls"), tls_key) {
        (Some(value), Some(key_place)) => {
            let host = host.as_ref().map(|host| host.as_ref());
            read_tls(reader, value, key_place, environment, listen, host)
                .map(|(tls, redirect)| Some((tls, redirect)))
        }
        _ => Some(None),
    };
    let limits = match fields.get("limits") {
        Some(value) => read_limits(reader, value, environment),
        None => Some(RouteLimits::default()),
    };
    let (tls, redirect) = match tls? {
        Some((tls, redirect)) => (Some(tls), redirect),
        None => (None, None),
    };
    let site = RouteSite {
        listen: listen_node.map_or(node.place, |value| value.place),
        tls: tls_key,
        redirect_from: redirect.map(|redirect| redirect.place),
        redirect_defaulted: redirect.is_some_and(|redirect| redirect.defaulted),
        limits: fields.key("limits").map(|key| key.place),
    };
    let route = Route {
        listen: listen?,
        host: host?.map(|(host, _)| host),
        path_prefix: path_prefix?,
        tls,
        limits: limits?,
    };
    Some((route, site))
}

/// An address such as `":443"` (see [`scalar::parse_address`]).
fn address(reader: &mut Reader<'_>, node: &Node, what: &str) -> Option<SocketAddr> {
    let text = reader.text(node, what)?;
    match scalar::parse_address(&text) {
        Ok(address) => Some(address),
        Err(AddressError::Port(message)) => {
            reader.error(
                node.place,
                Problem::new(
                    "spec::invalid-port",
                    format!("invalid port in `{what}`: {message}"),
                    "bad port",
                )
                .hint("write a port from 1 to 65535, e.g. \"127.0.0.1:8080\""),
            );
            None
        }
        Err(AddressError::Address(message)) => {
            reader.error(
                node.place,
                Problem::new(
                    "spec::invalid-address",
                    format!("invalid address in `{what}`: {message}"),
                    "bad address",
                )
                .hint("write \"127.0.0.1:8080\", \":8080\" (all interfaces) or \"[::1]:8080\""),
            );
            None
        }
    }
}

/// Whether binding both addresses would collide: the same port on the same
/// IP, or on any IP when either is unspecified (`:80` takes every interface).
fn overlaps(first: SocketAddr, second: SocketAddr) -> bool {
    first.port() == second.port()
        && (first.ip() == second.ip()
            || first.ip().is_unspecified()
            || second.ip().is_unspecified())
}

/// Where a route's `redirect_from` came from.
#[derive(Debug, Clone, Copy)]
struct RedirectPlace {
    /// The `redirect_from` value, or the `acme` key when it took its default.
    place: Place,
    /// Whether it is ACME's default rather than written.
    defaulted: bool,
}

/// `route.tls`, with where its `redirect_from` came from (if it has one).
fn read_tls(
    reader: &mut Reader<'_>,
    node: &Node,
    key_place: Place,
    environment: &str,
    listen: Option<SocketAddr>,
    host: Option<Option<&(String, Place)>>,
) -> Option<(RouteTls, Option<RedirectPlace>)> {
    let context = format!("the TLS of environment `{environment}`");
    let fields = reader.fields(node, &context, TLS_KEYS, &[])?;
    let acme_place = fields.key("acme").map_or(key_place, |key| key.place);
    let mut source = read_source(reader, node, &fields, environment);
    if let (Some(Some(TlsSource::Acme(_))), Some(host)) = (&source, host) {
        if check_acme_host(reader, host, acme_place, environment).is_none() {
            source = None;
        }
    }
    let written_redirect = fields.get("redirect_from");
    let redirect_from = match written_redirect {
        Some(value) => address(reader, value, "route.tls.redirect_from")
            .map(|address| Some((address, value.place))),
        // HTTP-01 validation reaches port 80, so ACME always gets a plaintext listener.
        None => match (&source, listen) {
            (Some(Some(TlsSource::Acme(_))), Some(listen)) => {
                Some(Some((SocketAddr::new(listen.ip(), 80), acme_place)))
            }
            _ => Some(None),
        },
    };
    let redirect_from = match (redirect_from, listen) {
        (Some(Some((redirect, place))), Some(listen)) if overlaps(redirect, listen) => {
            let (message, hint) = if written_redirect.is_some() {
                (
                    format!(
                        "`redirect_from` ({redirect}) is the route's own `listen` ({listen}); one port cannot serve both HTTP and HTTPS"
                    ),
                    "set `redirect_from` to another port, e.g. \":80\", or remove it",
                )
            } else {
                (
                    format!(
                        "with `acme`, `redirect_from` defaults to {redirect} (ACME validates on port 80), which is the route's own `listen` ({listen})"
                    ),
                    "listen for HTTPS on another port, e.g. `listen: \":443\"`, or set `redirect_from` to a free port",
                )
            };
            reader.error(
                place,
                Problem::new(
                    "spec::redirect-conflict",
                    message,
                    "same address as `listen`",
                )
                .hint(hint),
            );
            None
        }
        (redirect_from, _) => redirect_from,
    };
    let hsts = match fields.get("hsts") {
        Some(value) => read_hsts(reader, value, environment),
        None => Some(None),
    };
    let redirect_from = redirect_from?;
    Some((
        RouteTls {
            source: source??,
            redirect_from: redirect_from.map(|(address, _)| address),
            hsts: hsts?,
        },
        redirect_from.map(|(_, place)| RedirectPlace {
            place,
            defaulted: written_redirect.is_none(),
        }),
    ))
}

/// Exactly one of `cert` + `key` and `acme`. `None`: a problem reported here
/// or in the source's own values; `Some(None)`: no source, but a misspelled
/// key already says so.
fn read_source(
    reader: &mut Reader<'_>,
    node: &Node,
    fields: &Fields<'_>,
    environment: &str,
) -> Option<Option<TlsSource>> {
    let context = format!("the TLS of environment `{environment}`");
    let first_key_place = match &node.value {
        Value::Map(pairs) if !pairs.is_empty() => pairs[0].0.place,
        _ => node.place,
    };
    let (cert, key, acme) = (fields.get("cert"), fields.get("key"), fields.get("acme"));
    if let (Some(acme_key), true) = (fields.key("acme"), cert.is_some() || key.is_some()) {
        reader.error(
            acme_key.place,
            Problem::new(
                "spec::conflicting-keys",
                format!("{context} has both certificate files (`cert`, `key`) and `acme`; it takes one"),
                "second certificate source",
            )
            .hint("keep `cert` and `key` to serve your own certificate, or `acme` to have one issued, not both"),
        );
        return None;
    }
    if let Some(acme) = acme {
        return Some(read_acme(reader, acme, environment).map(TlsSource::Acme));
    }
    let misspelled = ["cert", "key", "acme"]
        .iter()
        .any(|key| fields.misspelled(key));
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let cert = path(reader, cert, "route.tls.cert", "cert: certs/site.pem");
            let key = path(reader, key, "route.tls.key", "key: certs/site-key.pem");
            Some(Some(TlsSource::Files {
                cert: cert?,
                key: key?,
            }))
        }
        (None, None) if misspelled => Some(None),
        (None, None) => {
            reader.error(
                first_key_place,
                Problem::new(
                    "spec::missing-key",
                    format!("{context} has neither `cert` + `key` nor `acme`; it needs one"),
                    "no certificate source in this map",
                )
                .hint("add `acme: { email: ops@example.com }` to have a certificate issued, or `cert: certs/site.pem` and `key: certs/site-key.pem` to serve your own"),
            );
            None
        }
        (Some(_), None) | (None, Some(_)) if misspelled => Some(None),
        (Some(_), None) => {
            reader.error(
                first_key_place,
                Problem::new(
                    "spec::missing-key",
                    format!("{context} has `cert` but no `key`; a certificate is served with its private key"),
                    "no `key` in this map",
                )
                .hint("add `key: certs/site-key.pem`, the PEM private key of the certificate"),
            );
            None
        }
        (None, Some(_)) => {
            reader.error(
                first_key_place,
                Problem::new(
                    "spec::missing-key",
                    format!("{context} has `key` but no `cert`; a private key is served with its certificate"),
                    "no `cert` in this map",
                )
                .hint("add `cert: certs/site.pem`, the PEM certificate chain for the key"),
            );
            None
        }
    }
}

/// A file path as written: non-empty text.
fn path(reader: &mut Reader<'_>, node: &Node, what: &str, example: &str) -> Option<PathBuf> {
    reader
        .non_empty_text(
            node,
            what,
            &format!("write a path relative to the directory of lastmile.yaml or absolute, e.g. `{example}`"),
        )
        .map(PathBuf::from)
}

/// `route.tls.acme`; `acme:` or `acme: {}` takes every default.
fn read_acme(reader: &mut Reader<'_>, node: &Node, environment: &str) -> Option<Acme> {
    let mut acme = Acme::default();
    if node.value == Value::Null {
        return Some(acme);
    }
    let fields = reader.fields(
        node,
        &format!("the ACME settings of environment `{environment}`"),
        ACME_KEYS,
        &[],
    )?;
    let mut complete = true;
    if let Some(value) = fields.get("email") {
        match reader.text(value, "route.tls.acme.email") {
            Some(email) if scalar::is_email(email.trim()) => {
                acme.email = Some(email.trim().to_owned())
            }
            Some(email) => {
                complete = false;
                reader.error(
                    value.place,
                    Problem::new(
                        "spec::invalid-email",
                        format!("`route.tls.acme.email` is `{email}`, which is not an email address"),
                        "not an email address",
                    )
                    .hint("write the contact address alone, e.g. `ops@example.com` (no name, `<>` or `mailto:`)"),
                );
            }
            None => complete = false,
        }
    }
    if let Some(value) = fields.get("directory") {
        match reader.text(value, "route.tls.acme.directory") {
            Some(url) if url.starts_with("https://") && scalar::is_http_url(&url) => {
                acme.directory = url;
            }
            Some(url) => {
                complete = false;
                reader.error(
                    value.place,
                    Problem::new(
                        "spec::invalid-url",
                        format!("`route.tls.acme.directory` must be an https:// URL, found `{url}`"),
                        "not an https:// URL",
                    )
                    .hint(format!("write the CA's ACME directory URL, e.g. `{LETS_ENCRYPT_DIRECTORY}`; plain http:// is refused (test CAs such as Pebble serve https: trust their root with `ca`)")),
                );
            }
            None => complete = false,
        }
    }
    if let Some(value) = fields.get("ca") {
        match path(
            reader,
            value,
            "route.tls.acme.ca",
            "ca: certs/pebble-root.pem",
        ) {
            Some(ca) => acme.ca = Some(ca),
            None => complete = false,
        }
    }
    complete.then_some(acme)
}

/// ACME (HTTP-01) issues for one DNS name: the route's `host`.
fn check_acme_host(
    reader: &mut Reader<'_>,
    host: Option<&(String, Place)>,
    acme_place: Place,
    environment: &str,
) -> Option<()> {
    let Some((host, host_place)) = host else {
        reader.error(
            acme_place,
            Problem::new(
                "spec::acme-host",
                format!("`acme` needs a `host` on the route of environment `{environment}`: a certificate is issued for a name"),
                "no `host` to issue for",
            )
            .hint("add `host: hello.example.com` (the name clients use) to the route, or serve your own certificate with `cert` and `key`"),
        );
        return None;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let (message, hint) = if bare.parse::<IpAddr>().is_ok() {
        (
            format!(
                "`route.host` is the IP address `{host}`; ACME (HTTP-01) issues certificates for DNS names only"
            ),
            "set `host` to the DNS name clients use, or serve your own certificate with `cert` and `key`",
        )
    } else if host.contains('*') {
        (
            format!(
                "`route.host` `{host}` has a wildcard; ACME HTTP-01 validation cannot issue wildcard certificates (they need DNS-01)"
            ),
            "name one host, e.g. `hello.example.com`, or bring a wildcard certificate with `cert` and `key`",
        )
    } else if !scalar::is_dns_name(host) {
        (
            format!(
                "`route.host` `{host}` is not a valid DNS name, which `acme` needs to issue a certificate"
            ),
            "a DNS name is dot-separated labels of letters, digits and `-`, e.g. `hello.example.com` (no scheme, port or trailing dot)",
        )
    } else {
        return Some(());
    };
    reader.error(
        *host_place,
        Problem::new("spec::acme-host", message, "cannot be issued by ACME").hint(hint),
    );
    None
}

/// `hsts: true`, `hsts: false` or a map; `Some(None)` means no header.
fn read_hsts(reader: &mut Reader<'_>, node: &Node, environment: &str) -> Option<Option<Hsts>> {
    match node.value {
        Value::Bool(true) => return Some(Some(Hsts::default())),
        Value::Bool(false) => return Some(None),
        Value::Map(_) => {}
        _ => {
            reader.error(
                node.place,
                Problem::new(
                    "spec::wrong-type",
                    format!(
                        "`route.tls.hsts` must be true, false or a map, found {}",
                        node.value.kind()
                    ),
                    "expected true, false or a map",
                )
                .hint("write `hsts: true` for a year, or a map such as `hsts: { max_age: 365d, include_subdomains: true }`"),
            );
            return None;
        }
    }
    let fields = reader.fields(
        node,
        &format!("the HSTS of environment `{environment}`"),
        HSTS_KEYS,
        &[],
    )?;
    let mut hsts = Hsts::default();
    let max_age = fields
        .get("max_age")
        .map(|value| reader.duration(value, "route.tls.hsts.max_age"));
    let include_subdomains = fields
        .get("include_subdomains")
        .map(|value| reader.boolean(value, "route.tls.hsts.include_subdomains"));
    let preload = fields
        .get("preload")
        .map(|value| reader.boolean(value, "route.tls.hsts.preload"));
    if let Some(max_age) = max_age {
        hsts.max_age = max_age?;
    }
    if let Some(include_subdomains) = include_subdomains {
        hsts.include_subdomains = include_subdomains?;
    }
    if let Some(preload) = preload {
        hsts.preload = preload?;
    }
    if hsts.preload && (!hsts.include_subdomains || hsts.max_age < PRELOAD_MAX_AGE) {
        let place = fields
            .get("preload")
            .map_or(node.place, |value| value.place);
        reader.error(
            place,
            Problem::new(
                "spec::hsts-preload",
                "`hsts.preload` needs `include_subdomains: true` and a `max_age` of at least 365d; browsers' preload lists refuse anything less",
                "preload without its requirements",
            )
            .hint("add `include_subdomains: true` and `max_age: 365d` (or longer), or remove `preload`"),
        );
        return None;
    }
    Some(Some(hsts))
}

fn read_limits(reader: &mut Reader<'_>, node: &Node, environment: &str) -> Option<RouteLimits> {
    let fields = reader.fields(
        node,
        &format!("the limits of environment `{environment}`"),
        LIMIT_KEYS,
        &[],
    )?;
    let mut complete = true;
    let mut limits = RouteLimits::default();
    let (shortest, longest) = TIMEOUT_RANGE;
    if let Some(value) = fields.get("max_body") {
        limits.max_body = reader.size(value, "route.limits.max_body", 1, MAX_BODY);
        complete &= limits.max_body.is_some();
    }
    for (key, slot, maximum) in [
        ("max_headers", &mut limits.max_headers, MAX_HEADERS),
        ("max_connections", &mut limits.max_connections, MAX_COUNT),
        (
            "max_connections_per_ip",
            &mut limits.max_connections_per_ip,
            MAX_COUNT,
        ),
    ] {
        if let Some(value) = fields.get(key) {
            *slot = reader.count(value, &format!("route.limits.{key}"), 1, maximum);
            complete &= slot.is_some();
        }
    }
    for (key, slot) in [
        ("body_timeout", &mut limits.body_timeout),
        ("idle_timeout", &mut limits.idle_timeout),
        ("send_timeout", &mut limits.send_timeout),
    ] {
        if let Some(value) = fields.get(key) {
            *slot =
                reader.duration_between(value, &format!("route.limits.{key}"), shortest, longest);
            complete &= slot.is_some();
        }
    }
    if let Some(value) = fields.get("rate_limit") {
        limits.rate_limit = read_rate_limit(reader, value, environment);
        complete &= limits.rate_limit.is_some();
    }
    if let (Some(per_ip), Some(total), Some(value)) = (
        limits.max_connections_per_ip,
        limits.max_connections,
        fields.get("max_connections_per_ip"),
    ) {
        if per_ip > total {
            complete = false;
            reader.error(
                value.place,
                Problem::new(
                    "spec::conflicting-limits",
                    format!("`max_connections_per_ip` ({per_ip}) is above `max_connections` ({total}); one client could never reach it"),
                    "above `max_connections`",
                )
                .hint(format!("lower `max_connections_per_ip` to at most {total}, or raise `max_connections`")),
            );
        }
    }
    complete.then_some(limits)
}

fn read_rate_limit(reader: &mut Reader<'_>, node: &Node, environment: &str) -> Option<RateLimit> {
    let fields = reader.fields(
        node,
        &format!("the rate limit of environment `{environment}`"),
        RATE_LIMIT_KEYS,
        &[("per_second", "per_second: 50")],
    )?;
    let per_second = fields
        .get("per_second")
        .and_then(|value| reader.count(value, "route.limits.rate_limit.per_second", 1, MAX_COUNT));
    let burst = match fields.get("burst") {
        Some(value) => reader
            .count(value, "route.limits.rate_limit.burst", 1, MAX_COUNT)
            .map(Some),
        None => Some(None),
    };
    let per_second = per_second?;
    Some(RateLimit {
        per_second,
        burst: burst?.unwrap_or(per_second),
    })
}

/// Environments that share a `listen` address share one listener, so they
/// must agree on what it is: plain or TLS, its redirect and its limits; and a
/// `redirect_from` must not take an address another route listens on.
pub(super) fn check_listeners(reader: &mut Reader<'_>, routes: &[PlacedRoute<'_>]) {
    for (index, later) in routes.iter().enumerate() {
        let earlier = routes[..index]
            .iter()
            .find(|earlier| earlier.route.listen == later.route.listen);
        if let Some(earlier) = earlier {
            check_shared_listener(reader, earlier, later);
        }
    }
    let redirect_of =
        |placed: &PlacedRoute<'_>| placed.route.tls.as_ref().and_then(|tls| tls.redirect_from);
    for (index, placed) in routes.iter().enumerate() {
        let Some(redirect) = redirect_of(placed) else {
            continue;
        };
        let place = placed.site.redirect_from.unwrap_or(placed.site.listen);
        // One plaintext listener may serve the redirects of several HTTPS
        // listeners, but two different addresses that collide cannot both bind.
        let colliding = routes[..index].iter().find_map(|earlier| {
            let other = redirect_of(earlier)?;
            (other != redirect && overlaps(other, redirect)).then_some((earlier, other))
        });
        if let Some((earlier, other)) = colliding {
            let (name, line) = (
                earlier.environment,
                earlier
                    .site
                    .redirect_from
                    .unwrap_or(earlier.site.listen)
                    .line,
            );
            reader.error(
                place,
                Problem::new(
                    "spec::redirect-conflict",
                    format!(
                        "environment `{}` redirects from {redirect}, which collides with the redirect of environment `{name}` ({other}, line {line}); both cannot be bound",
                        placed.environment
                    ),
                    "collides with another redirect",
                )
                .hint("use the same `redirect_from` on both (one plaintext listener serves both), or different ports"),
            );
        }
        let taken = routes.iter().find(|other| {
            other.environment != placed.environment && overlaps(redirect, other.route.listen)
        });
        if let Some(other) = taken {
            let (name, line) = (other.environment, other.site.listen.line);
            let environment = placed.environment;
            let written = if placed.site.redirect_defaulted {
                format!(
                    "environment `{environment}` redirects from {redirect} (the default with `acme`)"
                )
            } else {
                format!("the `redirect_from` of environment `{environment}` is {redirect}")
            };
            reader.error(
                place,
                Problem::new(
                    "spec::redirect-conflict",
                    format!("{written}, but environment `{name}` listens there (line {line})"),
                    "address taken by another route",
                )
                .hint(format!("set `redirect_from` on `{environment}` to a free address, or move environment `{name}` to another `listen`; a plaintext redirect listener cannot also serve routes")),
            );
        }
    }
}

fn check_shared_listener(
    reader: &mut Reader<'_>,
    earlier: &PlacedRoute<'_>,
    later: &PlacedRoute<'_>,
) {
    let listen = later.route.listen;
    let (first, second) = (earlier.environment, later.environment);
    let line = earlier.site.listen.line;
    let conflict = |message: String, label: &str, hint: String| {
        Problem::new("spec::listener-conflict", message, label).hint(hint)
    };
    match (&earlier.route.tls, &later.route.tls) {
        (None, None) => {}
        (Some(_), None) | (None, Some(_)) => {
            let (plain, secure) = if later.route.tls.is_none() {
                (second, first)
            } else {
                (first, second)
            };
            reader.error(
                later.site.tls.unwrap_or(later.site.listen),
                conflict(
                    format!("environments `{first}` (line {line}) and `{second}` share the listener {listen}, but `{secure}` serves HTTPS there and `{plain}` plain HTTP; one listener cannot be both"),
                    "plain and TLS on one listener",
                    format!("give `{plain}` the same `tls` as `{secure}`, or move one of them to another `listen` address"),
                ),
            );
        }
        (Some(earlier_tls), Some(later_tls)) => {
            if earlier_tls.redirect_from != later_tls.redirect_from {
                let written = |redirect: Option<SocketAddr>| {
                    redirect.map_or_else(|| "none".to_owned(), |address| address.to_string())
                };
                reader.error(
                    later.site.redirect_from.or(later.site.tls).unwrap_or(later.site.listen),
                    conflict(
                        format!(
                            "environments `{first}` (line {line}) and `{second}` share the listener {listen} but redirect to it from different addresses ({} and {})",
                            written(earlier_tls.redirect_from),
                            written(later_tls.redirect_from)
                        ),
                        "a second redirect for one listener",
                        "set the same `redirect_from` on both; one HTTPS listener has one plaintext redirect".to_owned(),
                    ),
                );
            }
            let hosts_overlap = match (&earlier.route.host, &later.route.host) {
                (Some(earlier_host), Some(later_host)) => {
                    earlier_host.eq_ignore_ascii_case(later_host)
                }
                _ => true,
            };
            if hosts_overlap && earlier_tls.source != later_tls.source {
                reader.error(
                    later.site.tls.unwrap_or(later.site.listen),
                    conflict(
                        format!("environments `{first}` (line {line}) and `{second}` share the listener {listen} and can answer the same host, but with different certificates"),
                        "another certificate for the same host",
                        "give each environment its own `host` (the certificate is chosen by the name the client asks for), or the same `cert` and `key` or `acme`".to_owned(),
                    ),
                );
            }
        }
    }
    let differing = differing_limits(&earlier.route.limits, &later.route.limits);
    if !differing.is_empty() {
        reader.error(
            later.site.limits.unwrap_or(later.site.listen),
            conflict(
                format!(
                    "environments `{first}` (line {line}) and `{second}` share the listener {listen} but set different limits ({})",
                    differing.join(", ")
                ),
                "different limits for one listener",
                "limits belong to the listener: write the same `limits` on both (a YAML anchor shares them: `limits: &edge { … }`, then `limits: *edge`)".to_owned(),
            ),
        );
    }
}

/// The `limits` keys whose values differ (set on one side only counts).
fn differing_limits(first: &RouteLimits, second: &RouteLimits) -> Vec<String> {
    let same = [
        first.max_body == second.max_body,
        first.max_headers == second.max_headers,
        first.max_connections == second.max_connections,
        first.max_connections_per_ip == second.max_connections_per_ip,
        first.body_timeout == second.body_timeout,
        first.idle_timeout == second.idle_timeout,
        first.send_timeout == second.send_timeout,
        first.rate_limit == second.rate_limit,
    ];
    LIMIT_KEYS
        .iter()
        .zip(same)
        .filter(|(_, same)| !same)
        .map(|(key, _)| format!("`{key}`"))
        .collect()
}
