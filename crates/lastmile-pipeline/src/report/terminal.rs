//! Live status lines on a terminal: one per step and an overall bar.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use lastmile_artifact::Packed;
use lastmile_store::{LogStream, RunId, StepStatus, counted};

use crate::report::Reporter;
use crate::report::plain::outcome;
use crate::runner::{RunSummary, StepSummary};

/// Longest output excerpt kept on a status line; the bar truncates further
/// to the terminal width.
const EXCERPT_CHARS: usize = 200;
const TICK: Duration = Duration::from_millis(120);

/// A status line per step (pending, running with a spinner, elapsed time and
/// the latest output line, then its outcome) above an `n/N steps` bar.
/// Output lines are not streamed unless `verbose`: they are in the store.
pub struct TerminalReporter {
    multi: MultiProgress,
    verbose: bool,
    bars: Mutex<Bars>,
}

#[derive(Default)]
struct Bars {
    steps: HashMap<String, ProgressBar>,
    overall: Option<ProgressBar>,
    packaging: Option<ProgressBar>,
}

impl fmt::Debug for TerminalReporter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TerminalReporter")
            .field("verbose", &self.verbose)
            .finish_non_exhaustive()
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the templates in this file are constants that parse")
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
}

fn pending_style() -> ProgressStyle {
    style("  {prefix:.dim} {msg:.dim}")
}

fn running_style() -> ProgressStyle {
    style("{spinner:.cyan} {prefix:.bold} {elapsed:>4} {wide_msg:.dim}")
}

fn finished_style(status: StepStatus) -> ProgressStyle {
    match status {
        StepStatus::Succeeded => style("  {prefix} {msg:.green}"),
        StepStatus::Cached => style("  {prefix} {msg:.cyan}"),
        StepStatus::Failed | StepStatus::TimedOut => style("  {prefix} {msg:.red}"),
        _ => style("  {prefix} {msg:.yellow}"),
    }
}

/// Control characters (tabs, escape sequences) would break the line layout.
fn excerpt(line: &str) -> String {
    line.chars()
        .take(EXCERPT_CHARS)
        .map(|character| {
            if character.is_control() {
                ' '
            } else {
                character
            }
        })
        .collect()
}

impl TerminalReporter {
    /// A reporter drawing on stderr; `verbose` also prints every output line
    /// above the bars.
    pub fn new(verbose: bool) -> Self {
        Self {
            multi: MultiProgress::new(),
            verbose,
            bars: Mutex::new(Bars::default()),
        }
    }

    fn with_bars<T>(&self, action: impl FnOnce(&mut Bars) -> T) -> T {
        let mut bars = self
            .bars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        action(&mut bars)
    }

    fn step_bar(&self, step: &str) -> Option<ProgressBar> {
        self.with_bars(|bars| bars.steps.get(step).cloned())
    }

    fn advance_overall(&self) {
        self.with_bars(|bars| {
            if let Some(overall) = &bars.overall {
                overall.inc(1);
            }
        });
    }
}

impl Reporter for TerminalReporter {
    fn note(&self, text: &str) {
        // Before the bars exist (notes come before the run starts), so a
        // plain line on stderr does not disturb them.
        eprintln!("note: {text}");
    }

    fn run_started(&self, run: RunId, app: &str, steps: &[String]) {
        let width = steps
            .iter()
            .map(|name| name.chars().count())
            .max()
            .unwrap_or(0);
        self.with_bars(|bars| {
            for name in steps {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(pending_style());
                bar.set_prefix(format!("{name:width$}"));
                bar.set_message("pending");
                bars.steps.insert(name.clone(), bar);
            }
            let overall = self.multi.add(ProgressBar::new(steps.len() as u64));
            overall.set_style(style(
                "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} steps {elapsed}",
            ));
            overall.set_prefix(format!("run #{run} {app}"));
            bars.overall = Some(overall);
        });
    }

    fn step_started(&self, step: &str, attempt: u32) {
        if let Some(bar) = self.step_bar(step) {
            bar.set_style(running_style());
            if attempt == 1 {
                bar.reset_elapsed();
                bar.set_message("");
            }
            bar.enable_steady_tick(TICK);
        }
    }

    fn step_retrying(&self, step: &str, attempt: u32, max_attempts: u32, reason: &str) {
        if let Some(bar) = self.step_bar(step) {
            bar.set_message(format!("⟳ retrying ({attempt}/{max_attempts}): {reason}"));
        }
        if self.verbose {
            let _ = self.multi.println(format!(
                "[{step}] ⟳ retrying ({attempt}/{max_attempts}): {reason}"
            ));
        }
    }

    fn step_output(&self, step: &str, stream: LogStream, line: &str) {
        if let Some(bar) = self.step_bar(step) {
            bar.set_message(excerpt(line));
        }
        if self.verbose {
            let marker = if stream == LogStream::System {
                "! "
            } else {
                ""
            };
            let _ = self.multi.println(format!("[{step}] {marker}{line}"));
        }
    }

    fn step_finished(&self, step: &StepSummary) {
        if let Some(bar) = self.step_bar(&step.name) {
            bar.disable_steady_tick();
            bar.set_style(finished_style(step.status));
            bar.finish_with_message(outcome(step));
        }
        self.advance_overall();
    }

    fn step_cached(&self, step: &str) {
        if let Some(bar) = self.step_bar(step) {
            bar.set_style(finished_style(StepStatus::Cached));
            bar.finish_with_message("↷ cached");
        }
        self.advance_overall();
    }

    fn packaging_started(&self) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(running_style());
        bar.set_prefix("artifact");
        bar.set_message("packing");
        bar.enable_steady_tick(TICK);
        self.with_bars(|bars| bars.packaging = Some(bar));
    }

    fn packaging_finished(&self, artifact: &Packed) {
        if let Some(bar) = self.with_bars(|bars| bars.packaging.take()) {
            bar.set_style(finished_style(StepStatus::Succeeded));
            bar.finish_with_message(format!(
                "✓ packed {} ({})",
                artifact.id.get(..12).unwrap_or(&artifact.id),
                counted(artifact.files, "file")
            ));
        }
    }

    fn run_finished(&self, _summary: &RunSummary) {
        self.with_bars(|bars| {
            // Steps that never ran keep their last word instead of a spinner.
            for bar in bars.steps.values() {
                if !bar.is_finished() {
                    bar.disable_steady_tick();
                    bar.set_style(finished_style(StepStatus::Skipped));
                    bar.abandon_with_message("· skipped");
                }
            }
            if let Some(bar) = bars.packaging.take() {
                bar.abandon_with_message("not packed");
            }
            if let Some(overall) = &bars.overall {
                overall.abandon();
            }
        });
    }
}
