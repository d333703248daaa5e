//! The analysis timeline of a canary: canary against stable error rate and
//! p99 latency at each analysis tick, as one inline SVG rendered here (no
//! JavaScript, no chart library), from the deployment's `canary.decision`
//! events.
//!
//! Only the fields every analysis has are read (`analysis.canary` and
//! `analysis.stable` with `requests`, `errors`, `p99_ms`; `phase`,
//! `decision`, `canary_percent`, `reason`), and a missing one leaves a gap
//! instead of failing: the analysis may grow other fields. A long canary
//! is downsampled to at most [`MAX_POINTS`] points per line, keeping each
//! bucket's worst value, so the page stays small and a spike stays visible.
//! Every text in the picture is escaped.

use std::fmt::Write;

use lastmile_store::Event;
use serde_json::Value;

/// Points per line at most; more ticks are bucketed.
pub(crate) const MAX_POINTS: usize = 120;

/// Longest abort reason printed in the picture (the whole one is its
/// tooltip and is printed above the chart).
const REASON_CHARS: usize = 90;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 410.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
/// Top and bottom of the error-rate panel, then of the p99 panel.
const ERRORS_PANEL: (f64, f64) = (56.0, 176.0);
const LATENCY_PANEL: (f64, f64) = (226.0, 346.0);
const CANARY_COLOR: &str = "#d9480f";
const STABLE_COLOR: &str = "#1864ab";
const ABORT_COLOR: &str = "#cf222e";

/// One analysis tick, as the chart reads it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tick {
    /// Milliseconds since the first tick.
    pub(crate) at_ms: i64,
    pub(crate) phase: String,
    pub(crate) canary_percent: Option<f64>,
    pub(crate) decision: String,
    pub(crate) reason: Option<String>,
    pub(crate) canary: Side,
    pub(crate) stable: Side,
}

/// One release's figures at a tick; `None` where the analysis had none.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Side {
    /// Errors over requests, in percent; `None` without requests.
    pub(crate) error_percent: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
}

impl Side {
    fn of(sample: Option<&Value>) -> Side {
        let field = |name: &str| sample.and_then(|sample| sample.get(name)?.as_f64());
        let error_percent = match (field("requests"), field("errors")) {
            (Some(requests), Some(errors)) if requests > 0.0 => {
                Some((errors / requests * 100.0).clamp(0.0, 100.0))
            }
            _ => None,
        };
        Side {
            error_percent,
            p99_ms: field("p99_ms").filter(|p99| p99.is_finite() && *p99 >= 0.0),
        }
    }
}

/// The `canary.decision` events among `events`, oldest first, as ticks.
pub(crate) fn ticks(events: &[Event]) -> Vec<Tick> {
    let decisions: Vec<&Event> = events
        .iter()
        .filter(|event| event.kind == "canary.decision")
        .collect();
    let first = decisions.first().map_or(0, |event| event.at);
    decisions
        .into_iter()
        .map(|event| {
            let data = &event.data;
            let analysis = data.get("analysis");
            let text = |name: &str| data.get(name).and_then(Value::as_str).map(str::to_owned);
            Tick {
                at_ms: event.at.saturating_sub(first).max(0),
                phase: text("phase").unwrap_or_default(),
                canary_percent: data.get("canary_percent").and_then(Value::as_f64),
                decision: text("decision").unwrap_or_default(),
                reason: text("reason"),
                canary: Side::of(analysis.and_then(|analysis| analysis.get("canary"))),
                stable: Side::of(analysis.and_then(|analysis| analysis.get("stable"))),
            }
        })
        .collect()
}

/// At most `max` ticks standing for all of them: consecutive ticks are
/// bucketed, and each bucket keeps its last time and, per line, its worst
/// (highest) value.
pub(crate) fn downsample(ticks: &[Tick], max: usize) -> Vec<Tick> {
    if ticks.len() <= max || max == 0 {
        return ticks.to_vec();
    }
    let per_bucket = ticks.len().div_ceil(max);
    ticks
        .chunks(per_bucket)
        .filter_map(|bucket| {
            let mut point = bucket.last()?.clone();
            let worst = |pick: fn(&Tick) -> Option<f64>| {
                bucket
                    .iter()
                    .filter_map(pick)
                    .fold(None, |worst: Option<f64>, value| {
                        Some(worst.map_or(value, |worst| worst.max(value)))
                    })
            };
            point.canary.error_percent = worst(|tick| tick.canary.error_percent);
            point.stable.error_percent = worst(|tick| tick.stable.error_percent);
            point.canary.p99_ms = worst(|tick| tick.canary.p99_ms);
            point.stable.p99_ms = worst(|tick| tick.stable.p99_ms);
            Some(point)
        })
        .collect()
}

/// The chart, or `None` when there is no tick to draw. `failure` is the
/// deployment's reason: it marks the last tick when no tick decided to
/// abort (an abort by `lastmile abort` ends between ticks).
pub(crate) fn svg(all: &[Tick], failure: Option<&str>) -> Option<String> {
    let last = all.last()?;
    let points = downsample(all, MAX_POINTS);
    let end_ms = last.at_ms.max(1000);
    let x = |at_ms: i64| LEFT + (at_ms as f64 / end_ms as f64) * (WIDTH - LEFT - RIGHT);
    let max_errors = nice_ceiling(
        points
            .iter()
            .flat_map(|tick| [tick.canary.error_percent, tick.stable.error_percent])
            .flatten()
            .fold(1.0, f64::max),
    );
    let max_p99 = nice_ceiling(
        points
            .iter()
            .flat_map(|tick| [tick.canary.p99_ms, tick.stable.p99_ms])
            .flatten()
            .fold(1.0, f64::max),
    );

    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" font-family="system-ui, sans-serif" font-size="11" aria-label="{}">"#,
        escape(&format!(
            "Canary analysis: {} ticks over {}; canary against stable error rate and p99 latency",
            all.len(),
            seconds(last.at_ms)
        ))
    );
    let _ = write!(
        out,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##
    );
    legend(&mut out);
    let panels = [
        ("Error rate (%)", ERRORS_PANEL, max_errors, Line::ErrorRate),
        ("p99 latency (ms)", LATENCY_PANEL, max_p99, Line::P99),
    ];
    for (title, (top, bottom), maximum, line) in panels {
        let y = |value: f64| bottom - (value / maximum) * (bottom - top);
        let _ = write!(
            out,
            r##"<text x="{LEFT}" y="{}" font-weight="600" fill="#1d2433">{}</text>"##,
            top - 8.0,
            escape(title)
        );
        for fraction in [0.0, 0.5, 1.0] {
            let value = maximum * fraction;
            let at = y(value);
            let _ = write!(
                out,
                r##"<line x1="{LEFT}" x2="{}" y1="{at:.1}" y2="{at:.1}" stroke="#dde1e8"/><text x="{}" y="{:.1}" text-anchor="end" fill="#6b7385">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                at + 4.0,
                escape(&number(value))
            );
        }
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{LEFT}" y1="{top}" y2="{bottom}" stroke="#6b7385"/>"##
        );
        let lines: [(SideOf, &str); 2] =
            [(Side::stable, STABLE_COLOR), (Side::canary, CANARY_COLOR)];
        for (side, color) in lines {
            let path = path(&points, |tick| {
                line.value(side(tick))
                    .map(|value| (x(tick.at_ms), y(value)))
            });
            if !path.is_empty() {
                let _ = write!(
                    out,
                    r#"<path d="{path}" fill="none" stroke="{color}" stroke-width="1.8" stroke-linejoin="round"/>"#
                );
            }
        }
    }
    x_axis(&mut out, end_ms, &x);
    steps(&mut out, all, &x);
    abort(&mut out, all, failure, &x);
    out.push_str("</svg>");
    Some(out)
}

/// Picks one release's figures from a tick.
type SideOf = fn(&Tick) -> Side;

/// Which figure a line draws.
#[derive(Debug, Clone, Copy)]
enum Line {
    ErrorRate,
    P99,
}

impl Line {
    fn value(self, side: Side) -> Option<f64> {
        match self {
            Line::ErrorRate => side.error_percent,
            Line::P99 => side.p99_ms,
        }
    }
}

impl Side {
    fn canary(tick: &Tick) -> Side {
        tick.canary
    }

    fn stable(tick: &Tick) -> Side {
        tick.stable
    }
}

fn legend(out: &mut String) {
    for (index, (name, color)) in [("canary", CANARY_COLOR), ("stable", STABLE_COLOR)]
        .into_iter()
        .enumerate()
    {
        let left = LEFT + index as f64 * 90.0;
        let _ = write!(
            out,
            r##"<line x1="{left}" x2="{}" y1="16" y2="16" stroke="{color}" stroke-width="3"/><text x="{}" y="20" fill="#1d2433">{name}</text>"##,
            left + 24.0,
            left + 30.0
        );
    }
}

/// An SVG path through the points that have a value; a tick without one
/// breaks the line.
fn path(points: &[Tick], at: impl Fn(&Tick) -> Option<(f64, f64)>) -> String {
    let mut path = String::new();
    let mut drawing = false;
    for tick in points {
        match at(tick) {
            Some((x, y)) => {
                let _ = write!(path, "{}{x:.1},{y:.1} ", if drawing { "L" } else { "M" });
                drawing = true;
            }
            None => drawing = false,
        }
    }
    path.trim_end().to_owned()
}

fn x_axis(out: &mut String, end_ms: i64, x: &impl Fn(i64) -> f64) {
    let bottom = LATENCY_PANEL.1;
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" x2="{}" y1="{bottom}" y2="{bottom}" stroke="#6b7385"/>"##,
        WIDTH - RIGHT
    );
    let step = nice_ceiling(end_ms as f64 / 6.0).max(1.0) as i64;
    for at in (0..=6).map(|index| step.saturating_mul(index)) {
        if at > end_ms {
            break;
        }
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#6b7385">{}</text>"##,
            x(at),
            bottom + 16.0,
            escape(&seconds(at))
        );
    }
    let _ = write!(
        out,
        r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#1d2433">time since the first analysis</text>"##,
        (LEFT + WIDTH - RIGHT) / 2.0,
        bottom + 34.0
    );
}

/// A dashed line where each phase (a weight step, the dark launch, the
/// guard) begins, labelled with its name and weight.
fn steps(out: &mut String, all: &[Tick], x: &impl Fn(i64) -> f64) {
    let mut previous: Option<&str> = None;
    for tick in all {
        if previous == Some(tick.phase.as_str()) {
            continue;
        }
        previous = Some(tick.phase.as_str());
        let at = x(tick.at_ms);
        let label = match tick.canary_percent {
            Some(percent) => format!("{} · {}%", tick.phase, number(percent)),
            None => tick.phase.clone(),
        };
        let _ = write!(
            out,
            r##"<line class="step" x1="{at:.1}" x2="{at:.1}" y1="{}" y2="{}" stroke="#6b7385" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" fill="#6b7385">{}</text>"##,
            ERRORS_PANEL.0 - 4.0,
            LATENCY_PANEL.1,
            at + 3.0,
            ERRORS_PANEL.0 + 8.0,
            escape(&label)
        );
    }
}

/// A red line at the tick that decided to abort, with the reason.
fn abort(out: &mut String, all: &[Tick], failure: Option<&str>, x: &impl Fn(i64) -> f64) {
    let decided = all.iter().rev().find(|tick| tick.decision == "abort");
    let (tick, reason) = match (decided, failure) {
        (Some(tick), _) => (tick, tick.reason.as_deref().or(failure).unwrap_or("abort")),
        (None, Some(failure)) => match all.last() {
            Some(tick) => (tick, failure),
            None => return,
        },
        (None, None) => return,
    };
    let at = x(tick.at_ms);
    let shown: String = if reason.chars().count() > REASON_CHARS {
        let mut cut: String = reason.chars().take(REASON_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        reason.to_owned()
    };
    let anchor = if at > WIDTH / 2.0 { "end" } else { "start" };
    let text_x = if at > WIDTH / 2.0 { at - 4.0 } else { at + 4.0 };
    let _ = write!(
        out,
        r#"<g class="abort"><title>{}</title><line x1="{at:.1}" x2="{at:.1}" y1="{}" y2="{}" stroke="{ABORT_COLOR}" stroke-width="2"/><text x="{text_x:.1}" y="{}" text-anchor="{anchor}" fill="{ABORT_COLOR}">{}</text></g>"#,
        escape(reason),
        ERRORS_PANEL.0 - 4.0,
        LATENCY_PANEL.1,
        ERRORS_PANEL.0 + 22.0,
        escape(&format!("abort: {shown}"))
    );
}

/// The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above `value`.
fn nice_ceiling(value: f64) -> f64 {
    if !value.is_finite() || value <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * magnitude)
        .find(|nice| *nice >= value * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// `0`, `2.5`, `120`: a figure without trailing zeros.
fn number(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `0s`, `12s`, `1m30s`.
fn seconds(millis: i64) -> String {
    let seconds = millis / 1000;
    if seconds >= 60 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else if millis % 1000 == 0 || seconds >= 10 {
        format!("{seconds}s")
    } else {
        format!("{:.1}s", millis as f64 / 1000.0)
    }
}

/// Text as XML character data or an attribute value.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            character if character.is_control() && !matches!(character, '\n' | '\t') => {
                escaped.push(' ');
            }
            character => escaped.push(character),
        }
    }
    escaped
}

#[cfg(test)]
mod tests;
