//! Spec problems: what went wrong, where, and what to do about it.
//!
//! Every problem becomes a [`SpecDiagnostic`] (plain data, serializable for
//! `--json`) and renders through miette with the offending token underlined.

use std::fmt;
use std::sync::Arc;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode,
};
use serde::Serialize;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The spec cannot be used.
    Error,
    /// The spec is usable, but something in it is not acted upon.
    Warning,
}

/// One problem in a spec, with its place and a hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecDiagnostic {
    /// `error` or `warning`.
    pub severity: Severity,
    /// Stable identifier, e.g. `spec::unknown-key`.
    pub code: String,
    /// What is wrong, naming the key or value.
    pub message: String,
    /// The file as the user named it.
    pub file: String,
    /// 1-based line of the offending token; 0 when the problem is the whole
    /// file (`spec::too-large`, `spec::not_found`).
    pub line: usize,
    /// 1-based column (in characters) of the offending token; 0 with line 0.
    pub column: usize,
    /// What to do about it.
    pub hint: Option<String>,
    /// The underlined source range and its short label; kept out of JSON
    /// because line and column already say where.
    #[serde(skip)]
    pub(crate) label: Option<Label>,
}

/// The underlined range of a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Label {
    /// Byte offset in the source.
    pub(crate) offset: usize,
    /// Length in bytes (0 is widened to one character when rendered).
    pub(crate) length: usize,
    /// Short text under the caret.
    pub(crate) text: String,
}

/// Every error found in a spec (never empty), with the source to show them.
#[derive(Debug, Clone)]
pub struct SpecErrors {
    file_name: String,
    reports: Vec<DiagnosticReport>,
    diagnostics: Vec<SpecDiagnostic>,
}

impl SpecErrors {
    pub(crate) fn new(file_name: &str, source: &str, diagnostics: Vec<SpecDiagnostic>) -> Self {
        let named_source = Arc::new(NamedSource::new(file_name, source.to_owned()));
        let reports = diagnostics
            .iter()
            .map(|diagnostic| DiagnosticReport::new(diagnostic.clone(), named_source.clone()))
            .collect();
        SpecErrors {
            file_name: file_name.to_owned(),
            reports,
            diagnostics,
        }
    }

    /// All errors, in file order.
    pub fn diagnostics(&self) -> &[SpecDiagnostic] {
        &self.diagnostics
    }

    /// Human text for every error, 100 columns wide, deterministic without color.
    pub fn render(&self, color: bool) -> String {
        let mut text = format!("{self}\n\n");
        let rendered: Vec<String> = self
            .reports
            .iter()
            .map(|report| render_one(report, color))
            .collect();
        text.push_str(&rendered.join("\n"));
        text
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.diagnostics.len();
        write!(
            formatter,
            "{} is not a valid lastmile spec: {count} error{}",
            self.file_name,
            if count == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for SpecErrors {}

impl Diagnostic for SpecErrors {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("spec::invalid"))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(
            "fix the errors below, then run `lastmile check` again",
        ))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(
            self.reports.iter().map(|report| report as &dyn Diagnostic),
        ))
    }
}

/// Renders warnings (or any diagnostics) against their source, one after another.
pub fn render_warnings(
    file_name: &str,
    source: &str,
    warnings: &[SpecDiagnostic],
    color: bool,
) -> String {
    let named_source = Arc::new(NamedSource::new(file_name, source.to_owned()));
    let rendered: Vec<String> = warnings
        .iter()
        .map(|warning| {
            let mut warning = warning.clone();
            warning.file = file_name.to_owned();
            render_one(&DiagnosticReport::new(warning, named_source.clone()), color)
        })
        .collect();
    rendered.join("\n")
}

fn render_one(report: &DiagnosticReport, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false)
        .without_syntax_highlighting();
    let mut text = String::new();
    if handler.render_report(&mut text, report).is_err() {
        // Rendering into a String cannot fail on I/O; fall back to the plain facts.
        text = report.diagnostic.plain();
    }
    text
}

impl SpecDiagnostic {
    /// `file:line:column: severity: message` and the hint, without a snippet.
    fn plain(&self) -> String {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut text = format!(
            "{}:{}:{}: {severity}: {}\n",
            self.file, self.line, self.column, self.message
        );
        if let Some(hint) = &self.hint {
            text.push_str(&format!("  help: {hint}\n"));
        }
        text
    }
}

/// A diagnostic bound to its source, as miette wants it.
#[derive(Debug, Clone)]
struct DiagnosticReport {
    diagnostic: SpecDiagnostic,
    source: Arc<NamedSource<String>>,
    /// `None` for a problem with the whole file (line 0): no snippet.
    span: Option<LabeledSpan>,
}

impl DiagnosticReport {
    fn new(diagnostic: SpecDiagnostic, source: Arc<NamedSource<String>>) -> Self {
        let text = source.inner();
        if diagnostic.line == 0 && diagnostic.label.is_none() {
            return DiagnosticReport {
                diagnostic,
                source,
                span: None,
            };
        }
        let (offset, length, label) = match &diagnostic.label {
            Some(label) => (label.offset, label.length, Some(label.text.clone())),
            None => (offset_of(text, diagnostic.line, diagnostic.column), 0, None),
        };
        let offset = offset.min(text.len());
        let length = widen_to_character(text, offset, length);
        let span = Some(LabeledSpan::new(label, offset, length));
        DiagnosticReport {
            diagnostic,
            source,
            span,
        }
    }
}

/// A zero-length span renders as a bare caret; give it the width of the
/// character it sits on so the underline is visible.
fn widen_to_character(text: &str, offset: usize, length: usize) -> usize {
    if length > 0 {
        return length.min(text.len() - offset);
    }
    text[offset..].chars().next().map_or(0, |character| {
        if character == '\n' {
            0
        } else {
            character.len_utf8()
        }
    })
}

/// Byte offset of a 1-based line and character column.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (index, line_text) in text.split_inclusive('\n').enumerate() {
        if index + 1 == line {
            let within: usize = line_text
                .chars()
                .take(column.saturating_sub(1))
                .map(char::len_utf8)
                .sum();
            return offset + within;
        }
        offset += line_text.len();
    }
    offset
}

impl fmt::Display for DiagnosticReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for DiagnosticReport {}

impl Diagnostic for DiagnosticReport {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(&self.diagnostic.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diagnostic
            .hint
            .as_ref()
            .map(|hint| Box::new(hint) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.span.as_ref().map(|_| &self.source as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.span
            .as_ref()
            .map(|span| Box::new(std::iter::once(span.clone())) as Box<dyn Iterator<Item = _>>)
    }
}
