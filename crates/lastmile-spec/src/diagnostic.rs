//! Spec problems: what went wrong, where, and what to do about it.
//!
//! Every problem becomes a [`SpecDiagnostic`] (plain data, serializable for
//! `--json`) and renders through miette with the offending token underlined.

use std::fmt;
use std::sync::Arc;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError,
    MietteSpanContents, SourceCode, SourceSpan, SpanContents,
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
    /// file (`spec::too-large`), which JSON shows as `null`.
    #[serde(serialize_with = "place_or_null")]
    pub line: usize,
    /// 1-based column (in characters) of the offending token; 0 with line 0.
    #[serde(serialize_with = "place_or_null")]
    pub column: usize,
    /// What to do about it.
    pub hint: Option<String>,
    /// The underlined source range and its short label; kept out of JSON
    /// because line and column already say where.
    #[serde(skip)]
    pub(crate) label: Option<Label>,
}

/// A line or column as JSON: `null` for 0 (no place in the file), so a
/// script never reads a line 0 that is not there.
fn place_or_null<S: serde::Serializer>(place: &usize, serializer: S) -> Result<S::Ok, S::Error> {
    match place {
        0 => serializer.serialize_none(),
        place => serializer.serialize_some(place),
    }
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
    pub(crate) fn new(file_name: &str, source: &str, mut diagnostics: Vec<SpecDiagnostic>) -> Self {
        let named_source = Arc::new(IndexedSource::new(file_name, source));
        named_source.place_at_labels(&mut diagnostics);
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
    let named_source = Arc::new(IndexedSource::new(file_name, source));
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
    source: Arc<IndexedSource>,
    /// `None` for a problem with the whole file (line 0): no snippet.
    span: Option<LabeledSpan>,
}

impl DiagnosticReport {
    fn new(diagnostic: SpecDiagnostic, source: Arc<IndexedSource>) -> Self {
        let text = source.text.as_str();
        if diagnostic.line == 0 && diagnostic.label.is_none() {
            return DiagnosticReport {
                diagnostic,
                source,
                span: None,
            };
        }
        let (offset, length, label) = match &diagnostic.label {
            Some(label) => (label.offset, label.length, Some(label.text.clone())),
            None => (
                source.offset_of(diagnostic.line, diagnostic.column),
                0,
                None,
            ),
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

/// The spec's text with the byte offset of every line, shared by all of a
/// file's diagnostics.
///
/// miette's own `SourceCode` for strings scans from the start of the file on
/// every read (rendering n errors took time in n²) and counts the column of
/// the header `file:line:column` in bytes; this finds a line by binary search
/// and counts columns in characters, as `--json` does.
#[derive(Debug)]
struct IndexedSource {
    name: String,
    text: String,
    /// Byte offset where each line starts; the first is 0.
    line_starts: Vec<usize>,
}

impl IndexedSource {
    fn new(name: &str, text: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(
                text.bytes()
                    .enumerate()
                    .filter(|(_, byte)| *byte == b'\n')
                    .map(|(index, _)| index + 1),
            )
            .collect();
        IndexedSource {
            name: name.to_owned(),
            text: text.to_owned(),
            line_starts,
        }
    }

    /// 0-based index of the line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|start| *start <= offset)
            .saturating_sub(1)
    }

    /// Byte offset where the 0-based line `line` ends, its newline included.
    fn line_end(&self, line: usize) -> usize {
        self.line_starts
            .get(line + 1)
            .copied()
            .unwrap_or(self.text.len())
    }

    /// Sets each labelled diagnostic's line and column from its label's byte
    /// offset, so `--json` names the place the caret shows. The parser counts
    /// a lone `\r` as a line break and the snippet does not; the offset is
    /// what both agree on.
    fn place_at_labels(&self, diagnostics: &mut [SpecDiagnostic]) {
        for diagnostic in diagnostics {
            let Some(label) = &diagnostic.label else {
                continue;
            };
            let offset = label.offset.min(self.text.len());
            let line = self.line_of(offset);
            let line_start = self.line_starts[line];
            diagnostic.line = line + 1;
            diagnostic.column = self
                .text
                .get(line_start..offset)
                .map_or(offset - line_start, |before| before.chars().count())
                + 1;
        }
    }

    /// Byte offset of a 1-based line and character column.
    fn offset_of(&self, line: usize, column: usize) -> usize {
        let Some(start) = self.line_starts.get(line.saturating_sub(1)).copied() else {
            return self.text.len();
        };
        let line_text = &self.text[start..self.line_end(line.saturating_sub(1))];
        let within: usize = line_text
            .chars()
            .take(column.saturating_sub(1))
            .map(char::len_utf8)
            .sum();
        start + within
    }
}

impl SourceCode for IndexedSource {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let offset = span.offset();
        let end = offset + span.len();
        if end > self.text.len() {
            return Err(MietteError::OutOfBounds);
        }
        let first_line = self.line_of(offset);
        let last_line = self.line_of(end.saturating_sub(1).max(offset));
        // As miette does: without lines before, the contents start at the span
        // itself, and its column is the span's; with them, at a line start.
        let (data_start, line, column) = if context_lines_before == 0 {
            let line_start = self.line_starts[first_line];
            let column = self
                .text
                .get(line_start..offset)
                .map_or(offset - line_start, |before| before.chars().count());
            (offset, first_line, column)
        } else {
            let line = first_line.saturating_sub(context_lines_before);
            (self.line_starts[line], line, 0)
        };
        let data_end = if context_lines_after == 0 && context_lines_before == 0 {
            end
        } else {
            let line = (last_line + context_lines_after).min(self.line_starts.len() - 1);
            self.line_end(line)
        };
        let data = &self.text.as_bytes()[data_start..data_end];
        let line_count = data.iter().filter(|byte| **byte == b'\n').count();
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            data,
            (data_start, data_end - data_start).into(),
            line,
            column,
            line_count,
        )))
    }
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

/// Sets the line and column of labelled diagnostics from their byte offsets
/// (see [`IndexedSource::place_at_labels`]).
pub(crate) fn place_at_labels(source: &str, diagnostics: &mut [SpecDiagnostic]) {
    IndexedSource::new("", source).place_at_labels(diagnostics);
}
