//! The route table the controller publishes, and its compiled, lookup-ready form.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use crate::stats::StatsRing;
use crate::upstream::UpstreamState;

/// Every route of every listener; replaced as a whole by `Router::set_table`.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// The routes; order does not matter (the longest matching prefix wins).
    pub routes: Vec<Route>,
}

/// Requests arriving on `listen` for `host` under `path_prefix` go to `backends`.
#[derive(Debug, Clone)]
pub struct Route {
    /// Name shown in diagnostics.
    pub name: String,
    /// Address of the listener this route belongs to (as bound).
    pub listen: SocketAddr,
    /// Host header to match (case-insensitive, port ignored); `None` matches any host.
    pub host: Option<String>,
    /// Path prefix to match; `""` or `"/"` matches everything.
    pub path_prefix: String,
    /// Releases sharing the route's traffic by weight.
    pub backends: Vec<Backend>,
}

/// One release behind a route.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Release name, the key of `Router::stats`.
    pub release: String,
    /// Relative share of the route's traffic; 0 sends nothing.
    pub weight: u32,
    /// The release's running instances.
    pub instances: Vec<Upstream>,
}

/// One upstream instance.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Stable id, the key of `Router::in_flight`.
    pub id: String,
    /// Address the instance serves plain HTTP/1.1 on.
    pub addr: SocketAddr,
}

/// Health and load of one upstream of the current table.
#[derive(Debug, Clone)]
pub struct UpstreamHealth {
    /// The upstream's id.
    pub id: String,
    /// The upstream's address.
    pub addr: SocketAddr,
    /// Release the upstream belongs to.
    pub release: String,
    /// HTTP requests in flight to it (upgraded connections excluded).
    pub in_flight: usize,
    /// True while passive health keeps it out of rotation.
    pub ejected: bool,
}

/// A backend with its shared state resolved.
#[derive(Debug)]
pub(crate) struct CompiledBackend {
    pub(crate) release: String,
    pub(crate) weight: u64,
    pub(crate) stats: Arc<StatsRing>,
    pub(crate) instances: Vec<Arc<UpstreamState>>,
}

impl CompiledBackend {
    fn usable(&self, exclude: Option<&UpstreamState>) -> bool {
        self.weight > 0
            && self
                .instances
                .iter()
                .any(|u| !u.is_ejected() && !is(exclude, u))
    }
}

fn is(exclude: Option<&UpstreamState>, u: &UpstreamState) -> bool {
    exclude.is_some_and(|e| std::ptr::eq(e, u))
}

/// A route ready for matching and picking.
#[derive(Debug)]
pub(crate) struct CompiledRoute {
    host: Option<String>,
    prefix: String,
    pub(crate) backends: Vec<CompiledBackend>,
}

impl CompiledRoute {
    /// Weighted pick of a backend with a usable instance, then its least-loaded instance.
    pub(crate) fn pick(
        &self,
        rand: u64,
        exclude: Option<&UpstreamState>,
    ) -> Option<(&CompiledBackend, &Arc<UpstreamState>)> {
        let total: u64 = self
            .backends
            .iter()
            .filter(|b| b.usable(exclude))
            .map(|b| b.weight)
            .sum();
        if total == 0 {
            return None;
        }
        let mut r = rand % total;
        let backend = self
            .backends
            .iter()
            .filter(|b| b.usable(exclude))
            .find(|b| {
                if r < b.weight {
                    true
                } else {
                    r -= b.weight;
                    false
                }
            })?;
        let n = backend.instances.len();
        let start = ((rand >> 32) as usize) % n.max(1);
        let mut best: Option<(usize, &Arc<UpstreamState>)> = None;
        for i in 0..n {
            let u = &backend.instances[(start + i) % n];
            if u.is_ejected() || is(exclude, u) {
                continue;
            }
            let load = u.in_flight();
            if best.is_none_or(|(l, _)| load < l) {
                best = Some((load, u));
            }
        }
        best.map(|(_, u)| (backend, u))
    }

    /// The backend that would get the request by weight alone (to charge a 503 to).
    pub(crate) fn by_weight(&self, rand: u64) -> Option<&CompiledBackend> {
        let total: u64 = self.backends.iter().map(|b| b.weight).sum();
        if total == 0 {
            return self.backends.first();
        }
        let mut r = rand % total;
        self.backends.iter().find(|b| {
            if r < b.weight {
                true
            } else {
                r -= b.weight;
                false
            }
        })
    }

    fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(want) = &self.host {
            match host {
                Some(h) if strip_port(h).eq_ignore_ascii_case(want) => {}
                _ => return false,
            }
        }
        path.starts_with(self.prefix.as_str())
    }
}

/// `example.com:8080` → `example.com`, `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rfind(':') {
        Some(i) => &host[..i],
        None => host,
    }
}

/// The whole table, grouped by listener.
#[derive(Debug, Default)]
pub(crate) struct CompiledTable {
    /// Routes of each listen address, longest prefix first.
    listeners: Vec<(SocketAddr, Vec<Arc<CompiledRoute>>)>,
    /// Every distinct upstream of the table.
    pub(crate) upstreams: Vec<Arc<UpstreamState>>,
}

impl CompiledTable {
    /// The route for a request that arrived on `listener` (or, failing that, `local`).
    pub(crate) fn find(
        &self,
        listener: SocketAddr,
        local: SocketAddr,
        host: Option<&str>,
        path: &str,
    ) -> Option<&Arc<CompiledRoute>> {
        let routes = self
            .listeners
            .iter()
            .find(|(a, _)| *a == listener)
            .or_else(|| self.listeners.iter().find(|(a, _)| *a == local))?;
        routes.1.iter().find(|r| r.matches(host, path))
    }

    /// Resolves `table` against the registries so that counters and ejections survive swaps.
    pub(crate) fn compile(
        table: &RouteTable,
        upstreams: &mut HashMap<String, Weak<UpstreamState>>,
        stats: &mut HashMap<String, Arc<StatsRing>>,
        new_ring: &dyn Fn() -> StatsRing,
    ) -> CompiledTable {
        let mut out = CompiledTable::default();
        for route in &table.routes {
            let mut backends = Vec::with_capacity(route.backends.len());
            for b in &route.backends {
                let ring = stats
                    .entry(b.release.clone())
                    .or_insert_with(|| Arc::new(new_ring()))
                    .clone();
                let mut instances = Vec::with_capacity(b.instances.len());
                for inst in &b.instances {
                    let existing = upstreams.get(&inst.id).and_then(Weak::upgrade);
                    let state = match existing {
                        Some(s) if s.addr == inst.addr && s.release == b.release => s,
                        _ => {
                            let s = Arc::new(UpstreamState::new(
                                inst.id.clone(),
                                inst.addr,
                                b.release.clone(),
                                ring.clone(),
                            ));
                            upstreams.insert(inst.id.clone(), Arc::downgrade(&s));
                            s
                        }
                    };
                    if !out.upstreams.iter().any(|u| Arc::ptr_eq(u, &state)) {
                        out.upstreams.push(state.clone());
                    }
                    instances.push(state);
                }
                backends.push(CompiledBackend {
                    release: b.release.clone(),
                    weight: u64::from(b.weight),
                    stats: ring,
                    instances,
                });
            }
            let compiled = Arc::new(CompiledRoute {
                host: route
                    .host
                    .as_ref()
                    .map(|h| strip_port(h).to_ascii_lowercase()),
                prefix: route.path_prefix.clone(),
                backends,
            });
            match out.listeners.iter_mut().find(|(a, _)| *a == route.listen) {
                Some((_, routes)) => routes.push(compiled),
                None => out.listeners.push((route.listen, vec![compiled])),
            }
        }
        for (_, routes) in &mut out.listeners {
            routes.sort_by(|a, b| {
                b.prefix
                    .len()
                    .cmp(&a.prefix.len())
                    .then(b.host.is_some().cmp(&a.host.is_some()))
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("a.example:80"), "a.example");
        assert_eq!(strip_port("a.example"), "a.example");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }
}
