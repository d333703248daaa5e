//! The route table the controller publishes, and its compiled, lookup-ready form.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

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
    /// Sticky cohorts: users with a key keep their backend as weights change; `None` picks at random.
    pub cohort: Option<CohortRule>,
    /// Requests carrying a given key value go to a given release first (checked before `cohort`).
    pub pins: Vec<PinRule>,
    /// Dark launch: copies of some requests go to a release whose answers are discarded.
    pub mirror: Option<MirrorRule>,
    /// Which answers of a new instance are its warm-up, left out of the window's latency.
    pub warmup: WarmupRule,
}

/// An instance's answers are warm-up while it has given fewer than `requests` answers or its
/// first answer was less than `duration` ago. Warm-up answers count as requests, errors and in
/// the since-start totals, but not in the window's latency histogram
/// ([`ReleaseStats::warmup_requests`](crate::ReleaseStats::warmup_requests) counts them): a new
/// process's first slow answers (cold caches, lazy imports, JIT) say nothing about its release.
/// The default, zero and zero, has no warm-up. The counts belong to the instance (its id and
/// address) and survive table swaps; an instance that comes back on a new address warms up again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WarmupRule {
    /// Answers that are warm-up.
    pub requests: u64,
    /// Time from the first answer that is warm-up.
    pub duration: Duration,
}

/// Where a request's key is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A request header (lowercase name); surrounding whitespace is ignored.
    Header(String),
    /// A cookie of the `Cookie` header (exact name).
    Cookie(String),
}

/// Sticky cohorts: the key's bucket (`cohort_bucket(salt, key)`) picks the backend.
///
/// Buckets are handed out in `backends` order (weight-0 backends skipped), each backend owning
/// `weight * 10000 / total` of them: the first backend owns the low buckets, so a canary listed
/// first only gains users as its weight grows, and a user on the canary stays there.
#[derive(Debug, Clone)]
pub struct CohortRule {
    /// Where the user's key comes from.
    pub key: KeySource,
    /// Mixed into the hash (the environment name), so cohorts differ between environments.
    pub salt: String,
    /// When set, a request without a key gets a random one (16 hex chars) as this cookie
    /// (`Set-Cookie: name=id; Path=/; Max-Age=31536000; SameSite=Lax`); without it such
    /// requests are split at random by weight.
    pub set_cookie: Option<String>,
}

/// Requests whose key equals `value` go to `release` while it has a healthy instance.
#[derive(Debug, Clone)]
pub struct PinRule {
    /// Where the key comes from.
    pub key: KeySource,
    /// The key value that pins.
    pub value: String,
    /// The release (one of the route's `backends`, any weight) that gets those requests.
    pub release: String,
}

/// Copies of some requests go to `release` too; its answers are discarded, the user never waits.
#[derive(Debug, Clone)]
pub struct MirrorRule {
    /// The release (one of the route's `backends`, normally at weight 0) that gets the copies.
    pub release: String,
    /// Share of the eligible requests copied, 0.0..=100.0.
    pub percent: f64,
    /// Methods copied (case-insensitive), e.g. `["GET", "HEAD"]`.
    pub methods: Vec<String>,
}

impl Default for MirrorRule {
    /// No release, 0 %, GET and HEAD only (safe to repeat).
    fn default() -> Self {
        MirrorRule {
            release: String::new(),
            percent: 0.0,
            methods: vec!["GET".into(), "HEAD".into()],
        }
    }
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
        self.weight > 0 && self.any_usable(exclude)
    }

    /// Has an instance in rotation, whatever its weight (pins and mirrors ignore weights).
    fn any_usable(&self, exclude: Option<&UpstreamState>) -> bool {
        self.instances
            .iter()
            .any(|u| !u.is_ejected() && !is(exclude, u))
    }
}

/// The backend's least-loaded usable instance (ties broken from a random start).
pub(crate) fn least_loaded<'a>(
    backend: &'a CompiledBackend,
    rand: u64,
    exclude: Option<&UpstreamState>,
) -> Option<&'a Arc<UpstreamState>> {
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
    best.map(|(_, u)| u)
}

fn is(exclude: Option<&UpstreamState>, u: &UpstreamState) -> bool {
    exclude.is_some_and(|e| std::ptr::eq(e, u))
}

/// A pin with its release resolved to a backend index.
#[derive(Debug)]
pub(crate) struct CompiledPin {
    key: KeySource,
    value: Vec<u8>,
    backend: usize,
}

/// A mirror with its release resolved to a backend index.
#[derive(Debug)]
pub(crate) struct CompiledMirror {
    backend: usize,
    /// Copy when `rand % 1_000_000 < threshold`.
    threshold: u64,
    methods: Vec<String>,
}

/// How the request chose among the backends (decided from its head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Steer {
    /// Random by weight.
    Weighted,
    /// A pin matched: this backend first, then `then`.
    Pinned(usize, Option<u32>),
    /// A cohort bucket in `0..10000`.
    Bucket(u32),
}

/// A route ready for matching and picking.
#[derive(Debug)]
pub(crate) struct CompiledRoute {
    host: Option<String>,
    prefix: String,
    pub(crate) backends: Vec<CompiledBackend>,
    cohort: Option<CohortRule>,
    pins: Vec<CompiledPin>,
    mirror: Option<CompiledMirror>,
}

impl CompiledRoute {
    /// Pins or a cohort could apply: the request's headers must be looked at.
    pub(crate) fn steers(&self) -> bool {
        self.cohort.is_some() || !self.pins.is_empty()
    }

    /// The cohort key the request carries: the rule's key, else the cookie `set_cookie` names.
    fn cohort_key<'a, I>(&self, headers: I) -> Option<&'a [u8]>
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        let c = self.cohort.as_ref()?;
        crate::cohort::find_key(&c.key, headers.clone()).or_else(|| {
            let name = c.set_cookie.as_deref()?;
            crate::cohort::find_cookie(name.as_bytes(), headers)
        })
    }

    /// How a request with `headers` picks its backend, and the `Set-Cookie` value to answer with
    /// when a cohort had to give a new user a key (`new_id` makes it).
    pub(crate) fn decide<'a, I>(
        &self,
        headers: I,
        new_id: impl FnOnce() -> [u8; 16],
    ) -> (Steer, Option<Vec<u8>>)
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        if !self.steers() {
            return (Steer::Weighted, None);
        }
        let mut cookie = None;
        let bucket = match (&self.cohort, self.cohort_key(headers.clone())) {
            (Some(c), Some(key)) => Some(crate::cohort::bucket_of(&c.salt, key)),
            (Some(c), None) => c.set_cookie.as_deref().map(|name| {
                let id = new_id();
                cookie = Some(crate::cohort::set_cookie_value(name, &id));
                crate::cohort::bucket_of(&c.salt, &id)
            }),
            (None, _) => None,
        };
        (self.steer(headers, bucket), cookie)
    }

    /// Pins first, then the cohort `bucket` (if any), else weighted.
    fn steer<'a, I>(&self, headers: I, bucket: Option<u32>) -> Steer
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        for pin in &self.pins {
            if crate::cohort::find_key(&pin.key, headers.clone()) == Some(pin.value.as_slice()) {
                return Steer::Pinned(pin.backend, bucket);
            }
        }
        bucket.map_or(Steer::Weighted, Steer::Bucket)
    }

    /// The backend that owns cohort bucket `b` (weight-0 backends own none).
    fn by_bucket(&self, b: u32) -> Option<&CompiledBackend> {
        let total: u64 = self.backends.iter().map(|x| x.weight).sum();
        if total == 0 {
            return None;
        }
        let mut upto = 0u64;
        let mut last = None;
        for backend in self.backends.iter().filter(|x| x.weight > 0) {
            upto += backend.weight * 10_000 / total;
            if u64::from(b) < upto {
                return Some(backend);
            }
            last = Some(backend);
        }
        // Rounding leaves the top buckets to the last backend.
        last
    }

    /// The backend and instance for a request steered by `steer`; pins and cohorts fall back to
    /// the weighted pick when their backend has no usable instance.
    pub(crate) fn pick_steered(
        &self,
        steer: Steer,
        rand: u64,
        exclude: Option<&UpstreamState>,
    ) -> Option<(&CompiledBackend, &Arc<UpstreamState>)> {
        let preferred = match steer {
            Steer::Weighted => None,
            Steer::Pinned(i, bucket) => {
                let pinned = self.backends.get(i).filter(|b| b.any_usable(exclude));
                pinned.or_else(|| bucket.and_then(|b| self.by_bucket(b)))
            }
            Steer::Bucket(b) => self.by_bucket(b),
        };
        // `least_loaded` finds no instance in a backend without a usable one.
        if let Some(backend) = preferred
            && let Some(u) = least_loaded(backend, rand, exclude)
        {
            return Some((backend, u));
        }
        self.pick(rand, exclude)
    }

    /// Whether a request with `method` is to be copied to the mirror (`rand` is drawn only then).
    pub(crate) fn mirrors(&self, method: &str, rand: impl FnOnce() -> u64) -> bool {
        self.mirror.as_ref().is_some_and(|m| {
            m.methods.iter().any(|x| x.eq_ignore_ascii_case(method))
                && rand() % 1_000_000 < m.threshold
        })
    }

    /// The backend that receives mirrored copies.
    pub(crate) fn mirror_backend(&self) -> Option<&CompiledBackend> {
        self.backends.get(self.mirror.as_ref()?.backend)
    }

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
        least_loaded(backend, rand, exclude).map(|u| (backend, u))
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
                    state.set_warmup(&route.warmup);
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
            let index_of = |release: &str| route.backends.iter().position(|b| b.release == release);
            let pins = route
                .pins
                .iter()
                .filter_map(|p| {
                    Some(CompiledPin {
                        key: p.key.clone(),
                        value: p.value.clone().into_bytes(),
                        backend: index_of(&p.release)?,
                    })
                })
                .collect();
            let mirror = route.mirror.as_ref().and_then(|m| {
                let threshold = (m.percent.clamp(0.0, 100.0) * 10_000.0).round() as u64;
                (threshold > 0).then_some(())?;
                Some(CompiledMirror {
                    backend: index_of(&m.release)?,
                    threshold,
                    methods: m.methods.clone(),
                })
            });
            let compiled = Arc::new(CompiledRoute {
                host: route
                    .host
                    .as_ref()
                    .map(|h| strip_port(h).to_ascii_lowercase()),
                prefix: route.path_prefix.clone(),
                backends,
                cohort: route.cohort.clone(),
                pins,
                mirror,
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
