//! The `canary` strategy: weight steps with in-router analysis between
//! them, a dark launch (mirroring) before any user traffic, pauses resumed
//! by `lastmile promote`, abort at once on a bad verdict, and a guard after
//! promotion.
//!
//! Each tick (`analysis.interval`, default 1 s) reads the canary's and
//! stable's counters over the same window (since the step began, at most
//! the router's 60 s) and decides:
//!
//! - **abort**: the analysis fails the canary (see `analysis.rs`), the step
//!   ran past `step_deadline` without enough evidence, or `lastmile abort`;
//! - **hold**: the step is younger than `step_duration` or has fewer than
//!   `min_requests` canary requests (evidence gating: too little traffic
//!   never counts as a pass);
//! - **continue**: on to the next weight step;
//! - **promote**: the last step passed, or `lastmile promote`.
//!
//! Every decision is recorded as a `canary.decision` event with the numbers
//! behind it. Weights are written to the store before the router is told.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lastmile_host::{CohortRule, KeySource, MirrorRule, PinRule, ReleaseStats, WarmupRule};
use lastmile_spec::{Canary, CanaryStep, CohortKey, PinTarget, Service};
use lastmile_store::{EnvironmentState, Phase, ReleaseRecord};
use serde_json::json;
use tokio::sync::Notify;

use crate::analysis::{Analysis, Latencies, Sample, Thresholds, analyse};
use crate::engine::{Drive, Failure};

/// The router keeps this much history per release.
const MAX_WINDOW: Duration = Duration::from_secs(60);

/// How long aborted canary instances keep running (in-flight requests
/// finish; weight is already 0).
const ABORT_STOP_DELAY: Duration = Duration::from_secs(2);

/// Weight units per percent: weights are sent as integers out of 10 000 so
/// steps like 0.5% are exact.
const UNITS_PER_PERCENT: f64 = 100.0;

/// Signals from `lastmile promote` and `lastmile abort` to a running canary.
#[derive(Debug, Default)]
pub struct CanaryControl {
    promote: AtomicBool,
    abort: AtomicBool,
    suspend: AtomicBool,
    wake: Notify,
}

impl CanaryControl {
    /// Resume a pause, or skip the remaining steps.
    pub fn promote(&self) {
        self.promote.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    /// Send all traffic back to stable and fail the release.
    pub fn abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    /// Freeze the canary where it is (it writes nothing more) while another
    /// process takes over and resumes it.
    pub fn suspend(&self) {
        self.suspend.store(true, Ordering::SeqCst);
    }

    /// Undo `suspend` (the takeover failed).
    pub fn unsuspend(&self) {
        self.suspend.store(false, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    fn suspended(&self) -> bool {
        self.suspend.load(Ordering::SeqCst)
    }

    fn take_promote(&self) -> bool {
        self.promote.swap(false, Ordering::SeqCst)
    }

    fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }
}

/// What one tick decided.
enum Decision {
    Hold,
    Continue,
    Promote,
    Abort(String),
}

impl Decision {
    fn name(&self) -> &'static str {
        match self {
            Decision::Hold => "hold",
            Decision::Continue => "continue",
            Decision::Promote => "promote",
            Decision::Abort(_) => "abort",
        }
    }
}

/// The spec's limits, with the phase's `min_requests` (which gates the
/// latency verdicts too).
pub(crate) fn thresholds(canary: &Canary, min_requests: u64) -> Thresholds {
    Thresholds {
        max_error_rate_increase: canary.max_error_rate_increase,
        confidence: canary.analysis.confidence,
        max_p95_ratio: canary.analysis.max_p95_ratio,
        max_p99_ratio: canary.max_latency_ratio,
        max_p95_ms: canary.analysis.max_p95_ms,
        max_p99_ms: canary.analysis.max_p99_ms,
        latency_floor_ms: canary.analysis.latency_floor_ms,
        min_requests,
    }
}

/// The warm-up rule the router applies to a canary environment's instances.
pub(crate) fn warmup_rule(canary: &Canary) -> WarmupRule {
    WarmupRule {
        requests: canary.analysis.warmup_requests,
        duration_ms: canary.analysis.warmup.as_millis().min(u128::from(u64::MAX)) as u64,
    }
}

fn key_source(key: &CohortKey) -> KeySource {
    match key {
        CohortKey::Header(name) => KeySource::Header(name.to_ascii_lowercase()),
        CohortKey::Cookie(name) => KeySource::Cookie(name.clone()),
    }
}

fn units(percent: f64) -> u32 {
    (percent * UNITS_PER_PERCENT).round().clamp(0.0, 10_000.0) as u32
}

impl Drive<'_> {
    /// The route while a canary runs: canary listed first (it owns the low
    /// cohort buckets), pins resolved to the two releases.
    pub(crate) fn canary_route(
        &self,
        stable: &ReleaseRecord,
        canary: &ReleaseRecord,
        canary_percent: f64,
        mirror: Option<MirrorRule>,
    ) -> lastmile_host::RouteSpec {
        let canary_units = units(canary_percent);
        let mut weights = vec![(canary.id.clone(), canary_units)];
        weights.push((stable.id.clone(), 10_000 - canary_units));
        let mut route = self.route.with(weights);
        route.cohort = self.environment.cohort.as_ref().map(|cohort| CohortRule {
            key: key_source(&cohort.key),
            set_cookie: cohort.set_cookie.clone(),
        });
        route.pins = self
            .environment
            .pins
            .iter()
            .map(|pin| PinRule {
                key: key_source(&pin.key),
                value: pin.value.clone(),
                release: match pin.to {
                    PinTarget::Canary => canary.id.clone(),
                    PinTarget::Stable => stable.id.clone(),
                },
            })
            .collect();
        route.mirror = mirror;
        route
    }

    /// Writes the weights (the stable release stays current), then tells
    /// every host.
    async fn set_canary_weight(
        &self,
        phase: &Phase,
        stable: &ReleaseRecord,
        canary: &ReleaseRecord,
        percent: f64,
        mirror: Option<MirrorRule>,
    ) -> Result<(), Failure> {
        let route = self.canary_route(stable, canary, percent, mirror);
        let previous = self
            .store()
            .get_environment(self.env_name())?
            .and_then(|state| state.previous_release);
        let state = EnvironmentState {
            name: self.env_name().to_string(),
            current_release: Some(stable.id.clone()),
            previous_release: previous,
            weights: route.weights.clone(),
            warm_until: None,
        };
        self.advance(
            phase,
            json!({ "canary_percent": percent, "weights": route.weights, "mirror": route.mirror }),
            Some(&state),
        )?;
        self.engine().set_route(&route).await?;
        self.notify("step", canary, Some(stable), Some(percent), None);
        Ok(())
    }

    /// `analysis.prometheus`: the query's value must stay at or below `max`.
    /// An unreachable Prometheus is no evidence either way.
    async fn prometheus_failure(&self, canary: &Canary) -> Option<String> {
        let check = canary.analysis.prometheus.as_ref()?;
        let url = format!(
            "{}/api/v1/query?query={}",
            check.url.trim_end_matches('/'),
            percent_encode(&check.query)
        );
        let answer = match crate::webhook::get(&url, Duration::from_secs(5)).await {
            Ok(answer) if answer.status == 200 => answer,
            Ok(answer) => {
                self.progress.step(&format!(
                    "prometheus answered {}; ignored this tick",
                    answer.status.as_u16()
                ));
                return None;
            }
            Err(error) => {
                self.progress.step(&format!(
                    "prometheus unreachable ({error}); ignored this tick"
                ));
                return None;
            }
        };
        let value = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|body| {
                body["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|text| text.parse::<f64>().ok())
            })?;
        (value > check.max).then(|| {
            format!(
                "prometheus query `{}` is {value}, above its max of {}",
                check.query, check.max
            )
        })
    }

    /// Both releases' counters over the last `window`, summed over hosts
    /// (their latency histograms merged).
    async fn samples(
        &self,
        stable: &ReleaseRecord,
        canary: &ReleaseRecord,
        window: Duration,
    ) -> Result<(Sample, Sample), Failure> {
        let mut samples = Vec::with_capacity(2);
        for release in [canary, stable] {
            let mut stats = Vec::new();
            for host in self.hosts() {
                stats.push(host.stats(&release.id, window).await?);
            }
            samples.push(sample_of(&stats));
        }
        let stable = samples.pop().unwrap_or_default();
        let canary = samples.pop().unwrap_or_default();
        Ok((canary, stable))
    }

    fn record_decision(
        &self,
        phase: &Phase,
        percent: f64,
        decision: &Decision,
        analysis: &Analysis,
        elapsed: Duration,
    ) {
        let reason = match decision {
            Decision::Abort(reason) => Some(reason.clone()),
            _ => None,
        };
        let analysis = serde_json::to_value(analysis).unwrap_or_default();
        self.note_analysis(analysis.clone());
        let _ = self.store().record_event(
            "canary.decision",
            &format!("deployment/{}", self.record.id),
            "lastmile",
            &json!({
                "environment": self.env_name(),
                "phase": phase,
                "canary_percent": percent,
                "decision": decision.name(),
                "reason": reason,
                "step_elapsed_ms": elapsed.as_millis() as u64,
                "analysis": analysis,
            }),
        );
    }

    /// Waits for the next tick, a promote or an abort.
    async fn tick(&self, control: &CanaryControl, interval: Duration) {
        let woken = control.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if !control.aborted() && !control.suspended() {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = woken => {}
            }
        }
        // Suspended for a handover: park here, writing nothing, until the
        // process exits or the handover is called off.
        while control.suspended() {
            let woken = control.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if !control.suspended() {
                break;
            }
            woken.await;
        }
    }

    /// Runs one analysed phase (a weight step, or the dark launch when
    /// `mirror` is set) until a decision other than hold.
    #[allow(clippy::too_many_arguments)]
    async fn analysed_phase(
        &self,
        phase: &Phase,
        stable: &ReleaseRecord,
        canary_release: &ReleaseRecord,
        canary: &Canary,
        percent: f64,
        min_requests: u64,
        min_duration: Duration,
        control: &CanaryControl,
    ) -> Decision {
        let started = Instant::now();
        let thresholds = thresholds(canary, min_requests);
        let mut last_report = Instant::now();
        loop {
            self.tick(control, canary.analysis.interval).await;
            let elapsed = started.elapsed();
            if control.aborted() {
                return Decision::Abort("aborted by `lastmile abort`".to_string());
            }
            let window = elapsed.clamp(Duration::from_secs(1), MAX_WINDOW);
            let (canary_sample, stable_sample) =
                match self.samples(stable, canary_release, window).await {
                    Ok(samples) => samples,
                    Err(failure) => return Decision::Abort(failure.message),
                };
            let analysis = analyse(&canary_sample, &stable_sample, &thresholds);
            let prometheus = self.prometheus_failure(canary).await;
            let decision = if let Some(failure) = analysis.failure().or(prometheus) {
                Decision::Abort(failure)
            } else if control.take_promote() {
                Decision::Promote
            } else if elapsed >= min_duration && canary_sample.requests >= min_requests {
                Decision::Continue
            } else if elapsed >= canary.step_deadline {
                Decision::Abort(format!(
                    "not enough evidence: {} canary requests in {} s at this step, {} needed within the step deadline of {} s",
                    canary_sample.requests,
                    elapsed.as_secs(),
                    min_requests,
                    canary.step_deadline.as_secs()
                ))
            } else {
                Decision::Hold
            };
            self.record_decision(phase, percent, &decision, &analysis, elapsed);
            match decision {
                Decision::Hold => {
                    if last_report.elapsed() >= Duration::from_secs(5) {
                        last_report = Instant::now();
                        self.progress.step(&format!(
                            "{phase}: holding ({}, {:.2}% errors vs stable {:.2}%, {}; needs {} and {} s)",
                            lastmile_store::counted(canary_sample.requests, "canary request"),
                            canary_sample.error_rate() * 100.0,
                            stable_sample.error_rate() * 100.0,
                            analysis.latency_summary(),
                            lastmile_store::counted(min_requests, "request"),
                            min_duration.as_secs()
                        ));
                    }
                }
                decision => return decision,
            }
        }
    }

    /// Waits at a `pause` step for `lastmile promote` (or abort).
    async fn pause(&self, phase: &Phase, control: &CanaryControl) -> Decision {
        self.progress.step(&format!(
            "{phase}: paused; `lastmile promote {}` goes on, `lastmile abort {}` rolls back",
            self.env_name(),
            self.env_name()
        ));
        loop {
            if control.aborted() {
                return Decision::Abort("aborted by `lastmile abort`".to_string());
            }
            if control.take_promote() {
                return Decision::Continue;
            }
            self.tick(control, Duration::from_secs(1)).await;
        }
    }

    /// The canary strategy. `from` is stable; without one there is nothing
    /// to compare with, so the release goes straight to all traffic.
    pub(crate) async fn canary(
        &self,
        from: Option<&ReleaseRecord>,
        to: &ReleaseRecord,
        service: &Service,
        canary: &Canary,
        control: &Arc<CanaryControl>,
    ) -> Result<(), Failure> {
        self.ensure_everywhere(to).await?;
        self.advance(&Phase::Starting, json!({ "release": to.id }), None)?;
        self.scale(to, service, self.environment.instances.max(1))
            .await?;
        self.verify(to).await?;
        let Some(stable) = from else {
            self.progress
                .step("no stable release to compare with: the first release takes all traffic");
            return self.switch(None, to, None).await;
        };
        self.dark_launch_then_steps(stable, to, canary, control)
            .await
    }

    /// The dark launch (when the spec has a `mirror`), then the weight steps
    /// from the first. A restarted controller resumes a canary that was in
    /// its dark phase here: the mirror's `duration` and `min_requests` are
    /// counted again from the restart, as no user traffic has moved yet.
    pub(crate) async fn dark_launch_then_steps(
        &self,
        stable: &ReleaseRecord,
        to: &ReleaseRecord,
        canary: &Canary,
        control: &CanaryControl,
    ) -> Result<(), Failure> {
        if let Some(mirror) = &canary.mirror {
            let rule = MirrorRule {
                release: to.id.clone(),
                percent: mirror.percent,
                methods: mirror.methods.clone(),
            };
            self.set_canary_weight(&Phase::Dark, stable, to, 0.0, Some(rule))
                .await?;
            self.progress.step(&format!(
                "dark launch: {}% of {} requests mirrored to {}",
                mirror.percent,
                mirror.methods.join("/"),
                to.version
            ));
            match self
                .analysed_phase(
                    &Phase::Dark,
                    stable,
                    to,
                    canary,
                    0.0,
                    mirror.min_requests,
                    mirror.duration,
                    control,
                )
                .await
            {
                Decision::Abort(reason) => return self.abort(stable, to, &reason).await,
                Decision::Promote | Decision::Continue | Decision::Hold => {}
            }
        }

        self.canary_steps(stable, to, canary, control, 0).await
    }

    /// The weight steps from `first_step` (0-based) on, then promotion and
    /// the guard. A restarted controller resumes a canary that was at a
    /// weight step here.
    pub(crate) async fn canary_steps(
        &self,
        stable: &ReleaseRecord,
        to: &ReleaseRecord,
        canary: &Canary,
        control: &CanaryControl,
        first_step: usize,
    ) -> Result<(), Failure> {
        let steps = &canary.steps;
        let mut percent = steps[..first_step.min(steps.len())]
            .iter()
            .rev()
            .find_map(|step| match step {
                CanaryStep::Weight(weight) => Some(*weight),
                CanaryStep::Pause => None,
            })
            .unwrap_or(0.0);
        for (index, step) in steps.iter().enumerate().skip(first_step) {
            let phase = Phase::Step(index + 1);
            let decision = match step {
                CanaryStep::Pause => {
                    self.advance(
                        &Phase::StepPaused(index + 1),
                        json!({ "canary_percent": percent }),
                        None,
                    )?;
                    self.pause(&phase, control).await
                }
                CanaryStep::Weight(weight) => {
                    percent = *weight;
                    if percent >= 100.0 {
                        break;
                    }
                    self.set_canary_weight(&phase, stable, to, percent, None)
                        .await?;
                    self.progress
                        .step(&format!("{phase}: {percent}% of traffic on {}", to.version));
                    self.analysed_phase(
                        &phase,
                        stable,
                        to,
                        canary,
                        percent,
                        canary.min_requests,
                        canary.step_duration,
                        control,
                    )
                    .await
                }
            };
            match decision {
                Decision::Abort(reason) => return self.abort(stable, to, &reason).await,
                Decision::Promote => {
                    self.progress.step("promoted by `lastmile promote`");
                    break;
                }
                Decision::Continue | Decision::Hold => {}
            }
        }
        // Promotion: the old release stays warm through the guard window.
        let guard = canary.guard;
        let warm_until =
            (!guard.is_zero()).then(|| crate::engine::now_millis() + guard.as_millis() as i64);
        self.switch(
            Some(stable),
            to,
            warm_until.or(Some(crate::engine::now_millis())),
        )
        .await?;
        if !guard.is_zero() {
            self.guard(stable, to, canary, control).await?;
        }
        Ok(())
    }

    /// After promotion: keep judging the new release against the baseline
    /// stable had before it (its last window), and roll back to the warm
    /// stable on a regression.
    async fn guard(
        &self,
        stable: &ReleaseRecord,
        promoted: &ReleaseRecord,
        canary: &Canary,
        control: &CanaryControl,
    ) -> Result<(), Failure> {
        let (_, baseline) = self.samples(stable, promoted, MAX_WINDOW).await?;
        self.progress.step(&format!(
            "guarding {} for {} s against {}'s baseline ({}, {:.2}% errors)",
            promoted.version,
            canary.guard.as_secs(),
            stable.version,
            lastmile_store::counted(baseline.requests, "request"),
            baseline.error_rate() * 100.0
        ));
        let thresholds = thresholds(canary, canary.min_requests);
        let started = Instant::now();
        while started.elapsed() < canary.guard {
            self.tick(control, canary.analysis.interval).await;
            if control.aborted() {
                return self
                    .abort(
                        stable,
                        promoted,
                        "aborted by `lastmile abort` during the guard",
                    )
                    .await;
            }
            let window = started.elapsed().clamp(Duration::from_secs(1), MAX_WINDOW);
            let (current, _) = self.samples(stable, promoted, window).await?;
            let analysis = analyse(&current, &baseline, &thresholds);
            if let Some(failure) = analysis.failure() {
                self.record_decision(
                    &Phase::Guard,
                    100.0,
                    &Decision::Abort(failure.clone()),
                    &analysis,
                    started.elapsed(),
                );
                return self
                    .abort(
                        stable,
                        promoted,
                        &format!("regression after promotion: {failure}"),
                    )
                    .await;
            }
        }
        Ok(())
    }

    /// Abort: all traffic back on stable at once (written first), then the
    /// canary's instances stop after a short delay. Stable is never touched.
    async fn abort(
        &self,
        stable: &ReleaseRecord,
        canary: &ReleaseRecord,
        reason: &str,
    ) -> Result<(), Failure> {
        let started = Instant::now();
        let weights = vec![(stable.id.clone(), 10_000)];
        let mut route = self.route.with(weights.clone());
        route.cohort = None;
        let previous = self
            .store()
            .get_environment(self.env_name())?
            .and_then(|state| state.previous_release)
            .filter(|previous| previous != &stable.id);
        let state = EnvironmentState {
            name: self.env_name().to_string(),
            current_release: Some(stable.id.clone()),
            previous_release: previous,
            weights,
            warm_until: None,
        };
        self.advance(&Phase::Aborting, json!({ "reason": reason }), Some(&state))?;
        self.engine().set_route(&route).await?;
        self.progress.step(&format!(
            "aborted: all traffic back on {} in {} ms; {reason}",
            stable.version,
            started.elapsed().as_millis()
        ));
        tokio::time::sleep(ABORT_STOP_DELAY).await;
        self.stop_others(&[stable.id.as_str()]).await?;
        let _ = canary;
        Err(Failure::aborted(reason))
    }
}

/// One host's counters of a release as the analysis reads them.
/// One release's sample from its counters on every host: counts summed,
/// latency histograms merged, quantiles computed once.
fn sample_of(stats: &[ReleaseStats]) -> Sample {
    let sum = |count: fn(&ReleaseStats) -> u64| {
        stats
            .iter()
            .fold(0u64, |total, stats| total.saturating_add(count(stats)))
    };
    Sample::new(
        sum(|stats| stats.requests),
        sum(|stats| stats.errors_5xx.saturating_add(stats.connect_errors)),
        sum(|stats| stats.warmup_requests),
        Latencies::from_counts(stats.iter().flat_map(|stats| {
            stats
                .latency_window
                .iter()
                .map(|bucket| (bucket.ms, bucket.requests))
        })),
    )
}

/// Percent-encodes a query parameter value.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char);
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}
