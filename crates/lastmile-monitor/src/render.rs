//! Renders a [`MetricsSnapshot`] with `prometheus-client`, in the
//! OpenMetrics text format or in the classic Prometheus text format (0.0.4)
//! that every Prometheus and `promtool check metrics` read.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metrics_snapshot::{DurationHistogram, MetricsSnapshot};

/// Labels as (name, value) pairs.
type Labels = Vec<(String, String)>;
type Counters = Family<Labels, Counter>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;

/// Run duration buckets, in seconds: a few seconds up to an hour.
const RUN_DURATION_BUCKETS: [f64; 11] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

/// `Content-Type` of [`render_metrics`]'s text.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `Content-Type` of [`render_openmetrics`]'s text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders the snapshot in the Prometheus text format 0.0.4 (serve it as
/// [`PROMETHEUS_CONTENT_TYPE`]): the OpenMetrics text of
/// [`render_openmetrics`] with counter families named by their `_total`
/// samples and without the `# EOF` marker, which is what that format and
/// `promtool check metrics` expect.
pub fn render_metrics(snapshot: &MetricsSnapshot) -> String {
    to_prometheus_text(&render_openmetrics(snapshot))
}

/// Rewrites prometheus-client's OpenMetrics text as Prometheus 0.0.4 text.
fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // HELP comes before TYPE: hold it until the type says whether to rename.
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            if let Some(held) = help.replace(line) {
                out.push_str(held);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let counter = rest
                .strip_suffix(" counter")
                .filter(|name| !name.ends_with("_total"));
            if let Some(held) = help.take() {
                match counter {
                    Some(name) => {
                        let text = held
                            .strip_prefix(&format!("# HELP {name} ")[..])
                            .unwrap_or("");
                        out.push_str(&format!("# HELP {name}_total {text}\n"));
                    }
                    None => {
                        out.push_str(held);
                        out.push('\n');
                    }
                }
            }
            match counter {
                Some(name) => out.push_str(&format!("# TYPE {name}_total counter\n")),
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(held) = help {
        out.push_str(held);
        out.push('\n');
    }
    out
}

/// Renders the snapshot as OpenMetrics text (ends with `# EOF`; serve it as
/// [`OPENMETRICS_CONTENT_TYPE`]).
///
/// Names (counters get `_total` on their samples):
/// `lastmile_runs{status}`, `lastmile_run_duration_seconds` (histogram),
/// `lastmile_deployments{environment,outcome}`,
/// `lastmile_rollbacks{environment}`,
/// `lastmile_router_requests{environment,release}`,
/// `lastmile_router_server_errors{environment,release}`,
/// `lastmile_router_connect_errors{environment,release}` (counters since the
/// router started),
/// `lastmile_router_request_duration_seconds{environment,release}`
/// (histogram since the router started),
/// `lastmile_router_latency_p50_last_60s_seconds{environment,release}` (and
/// `p95`, `p99`; gauges over the last 60 s),
/// `lastmile_dora_window_seconds{environment}`,
/// `lastmile_dora_deployments{environment}`,
/// `lastmile_dora_deployment_frequency_per_day{environment}`,
/// `lastmile_dora_lead_time_median_seconds{environment}`,
/// `lastmile_dora_change_failure_ratio{environment}`,
/// `lastmile_dora_recovery_time_median_seconds{environment}`,
/// `lastmile_dora_tier{environment,metric,tier}` (1 for the current tier).
/// DORA figures without data (`None`) have no sample.
pub fn render_openmetrics(snapshot: &MetricsSnapshot) -> String {
    let mut registry = Registry::default();

    let runs = Counters::default();
    for (status, count) in &snapshot.runs_by_status {
        runs.get_or_create(&labels(&[("status", status)]))
            .inc_by(*count);
    }
    registry.register("lastmile_runs", "Finished runs by final status", runs);

    let durations = Histogram::new(RUN_DURATION_BUCKETS);
    for seconds in &snapshot.run_durations_seconds {
        durations.observe(*seconds);
    }
    registry.register(
        "lastmile_run_duration_seconds",
        "Duration of finished runs",
        durations,
    );

    let deployments = Counters::default();
    for ((environment, outcome), count) in &snapshot.deployments {
        deployments
            .get_or_create(&labels(&[
                ("environment", environment),
                ("outcome", outcome),
            ]))
            .inc_by(*count);
    }
    registry.register(
        "lastmile_deployments",
        "Finished deployments by environment and outcome",
        deployments,
    );

    let rollbacks = Counters::default();
    for (environment, count) in &snapshot.rollbacks {
        rollbacks
            .get_or_create(&labels(&[("environment", environment)]))
            .inc_by(*count);
    }
    registry.register(
        "lastmile_rollbacks",
        "Finished rollbacks by environment",
        rollbacks,
    );

    let requests = Counters::default();
    let server_errors = Counters::default();
    let connect_errors = Counters::default();
    let mut durations = RecordedHistograms::default();
    for traffic in &snapshot.router {
        let set = labels(&[
            ("environment", &traffic.environment),
            ("release", &traffic.release),
        ]);
        requests.get_or_create(&set).inc_by(traffic.requests);
        server_errors
            .get_or_create(&set)
            .inc_by(traffic.server_errors);
        connect_errors
            .get_or_create(&set)
            .inc_by(traffic.connect_errors);
        durations.0.push((set, traffic.durations.clone()));
    }
    registry.register(
        "lastmile_router_requests",
        "Requests the router proxied since it started",
        requests,
    );
    registry.register(
        "lastmile_router_server_errors",
        "Responses with a 5xx status since the router started",
        server_errors,
    );
    registry.register(
        "lastmile_router_connect_errors",
        "Failed connection attempts to instances since the router started",
        connect_errors,
    );
    registry.register(
        "lastmile_router_request_duration_seconds",
        "Time until the response headers were ready, since the router started",
        durations,
    );

    let p50 = Gauges::default();
    let p95 = Gauges::default();
    let p99 = Gauges::default();
    for latency in &snapshot.router_latency {
        let set = labels(&[
            ("environment", &latency.environment),
            ("release", &latency.release),
        ]);
        p50.get_or_create(&set).set(latency.p50_seconds);
        p95.get_or_create(&set).set(latency.p95_seconds);
        p99.get_or_create(&set).set(latency.p99_seconds);
    }
    registry.register(
        "lastmile_router_latency_p50_last_60s_seconds",
        "Median router latency over the last 60 s (0 without requests)",
        p50,
    );
    registry.register(
        "lastmile_router_latency_p95_last_60s_seconds",
        "95th percentile router latency over the last 60 s (0 without requests)",
        p95,
    );
    registry.register(
        "lastmile_router_latency_p99_last_60s_seconds",
        "99th percentile router latency over the last 60 s (0 without requests)",
        p99,
    );

    register_dora(&mut registry, snapshot);

    let mut text = String::new();
    // Writing into a String cannot fail; the Result is fmt's signature.
    if encode(&mut text, &registry).is_err() {
        text.clear();
    }
    text
}

/// The DORA gauges, one sample per environment (none for a missing figure).
fn register_dora(registry: &mut Registry, snapshot: &MetricsSnapshot) {
    let window = Gauges::default();
    let count = Gauges::default();
    let frequency = Gauges::default();
    let lead = Gauges::default();
    let failure = Gauges::default();
    let recovery = Gauges::default();
    let tier = Gauges::default();
    for report in &snapshot.dora {
        let set = labels(&[("environment", &report.environment)]);
        window
            .get_or_create(&set)
            .set(report.window_days * 86_400.0);
        count.get_or_create(&set).set(report.deployments as f64);
        frequency
            .get_or_create(&set)
            .set(report.deployment_frequency_per_day);
        if let Some(hours) = report.lead_time_median_hours {
            lead.get_or_create(&set).set(hours * 3600.0);
        }
        if let Some(rate) = report.change_failure_rate {
            failure.get_or_create(&set).set(rate);
        }
        if let Some(hours) = report.recovery_time_median_hours {
            recovery.get_or_create(&set).set(hours * 3600.0);
        }
        let tiers = [
            ("deployment_frequency", report.tiers.deployment_frequency),
            ("lead_time", report.tiers.lead_time),
            ("change_failure_rate", report.tiers.change_failure_rate),
            ("recovery_time", report.tiers.recovery_time),
        ];
        for (metric, value) in tiers {
            tier.get_or_create(&labels(&[
                ("environment", &report.environment),
                ("metric", metric),
                ("tier", value.as_str()),
            ]))
            .set(1.0);
        }
    }
    registry.register(
        "lastmile_dora_window_seconds",
        "Length of the window the DORA figures cover",
        window,
    );
    registry.register(
        "lastmile_dora_deployments",
        "Finished deployments in the DORA window",
        count,
    );
    registry.register(
        "lastmile_dora_deployment_frequency_per_day",
        "Succeeded deployments per day over the DORA window",
        frequency,
    );
    registry.register(
        "lastmile_dora_lead_time_median_seconds",
        "Median lead time from run start to first success in the environment",
        lead,
    );
    registry.register(
        "lastmile_dora_change_failure_ratio",
        "Failed changes over finished deployments in the DORA window",
        failure,
    );
    registry.register(
        "lastmile_dora_recovery_time_median_seconds",
        "Median time from a failed deployment or rollback to the next success",
        recovery,
    );
    registry.register(
        "lastmile_dora_tier",
        "DORA 2024 tier of each figure (1 for the tier it is in)",
        tier,
    );
}

/// Histograms whose cumulative counts were recorded elsewhere (the router
/// keeps them): prometheus-client's own `Histogram` can only be observed one
/// value at a time.
#[derive(Debug, Default)]
struct RecordedHistograms(Vec<(Labels, DurationHistogram)>);

impl EncodeMetric for RecordedHistograms {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (set, histogram) in &self.0 {
            // The encoder wants each bucket's own count and sums them up.
            let mut per_bucket = Vec::with_capacity(histogram.buckets.len() + 1);
            let mut below = 0;
            for &(bound, cumulative) in &histogram.buckets {
                per_bucket.push((bound, cumulative.saturating_sub(below)));
                below = below.max(cumulative);
            }
            per_bucket.push((f64::INFINITY, histogram.count.saturating_sub(below)));
            encoder.encode_family(set)?.encode_histogram::<NoLabelSet>(
                histogram.sum_seconds,
                histogram.count,
                &per_bucket,
                None,
            )?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}
