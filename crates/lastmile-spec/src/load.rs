//! Finding, reading and parsing `lastmile.yaml`.

use std::path::{Path, PathBuf};

use serde_saphyr::MessageFormatter;
use serde_saphyr::budget::BudgetBreach;

use crate::diagnostic::{Label, Severity, SpecDiagnostic, SpecErrors};
use crate::model::Spec;
use crate::node::{self, Node, Place, Value};
use crate::reader::{self, Reader};

/// The spec's file name inside an app directory.
pub const SPEC_FILE: &str = "lastmile.yaml";

/// A spec read from disk, with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The validated spec.
    pub spec: Spec,
    /// Absolute path of the file.
    pub file: PathBuf,
    /// Absolute path of the directory holding it (paths in the spec are relative to it).
    pub dir: PathBuf,
    /// Warnings: valid but not acted upon (reserved sections).
    pub warnings: Vec<SpecDiagnostic>,
}

/// Why a spec could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    /// No `lastmile.yaml` where we looked.
    #[error("no {SPEC_FILE} in {}", searched.display())]
    #[diagnostic(code(spec::not_found))]
    NotFound {
        /// The directory (or file path) that was searched.
        searched: PathBuf,
        /// The spec file that was looked for (`DIR/lastmile.yaml`, or the
        /// file named).
        file: PathBuf,
        /// What to do: create the file, or name the app's directory
        /// ([`LoadError::suggesting`] words it for the command at hand).
        #[help]
        hint: String,
    },
    /// The file exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    #[diagnostic(
        code(spec::unreadable),
        help("check that the file exists and that you may read it (its permissions)")
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid spec.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(SpecErrors),
}

impl LoadError {
    /// The same error with a not-found hint naming `example`, the command
    /// the user ran pointed at an app's directory (`lastmile up
    /// examples/hello`); other errors are returned unchanged.
    #[must_use]
    pub fn suggesting(self, example: &str) -> LoadError {
        match self {
            LoadError::NotFound { searched, file, .. } => LoadError::NotFound {
                searched,
                file,
                hint: not_found_hint(example),
            },
            other => other,
        }
    }
}

fn not_found_hint(example: &str) -> String {
    format!("create {SPEC_FILE} there (see docs/spec.md), or pass the app's directory: `{example}`")
}

/// Loads `path`: a directory holding `lastmile.yaml`, or the file itself.
pub fn load(path: &Path) -> Result<LoadedSpec, LoadError> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let file = if absolute.is_dir() {
        absolute.join(SPEC_FILE)
    } else {
        absolute.clone()
    };
    if !file.is_file() {
        let searched = if absolute.is_dir() {
            absolute
        } else {
            file.clone()
        };
        return Err(LoadError::NotFound {
            searched,
            file,
            hint: not_found_hint("lastmile check examples/hello"),
        });
    }
    let bytes = std::fs::read(&file).map_err(|source| LoadError::Read {
        path: file.clone(),
        source,
    })?;
    // Diagnostics name the file as the user did (`lastmile.yaml`,
    // `app/lastmile.yaml`), which is shorter than the absolute path and the
    // same on every machine.
    let as_given = if path.is_dir() {
        path.join(SPEC_FILE)
    } else {
        path.to_path_buf()
    };
    let as_given = as_given.strip_prefix(".").unwrap_or(&as_given);
    let file_name = as_given.display().to_string();
    let source = String::from_utf8(bytes).map_err(|error| {
        LoadError::Invalid(not_utf8(&file_name, error.as_bytes(), error.utf8_error()))
    })?;
    let (spec, warnings) = parse(&file_name, &source).map_err(LoadError::Invalid)?;
    let dir = file
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    Ok(LoadedSpec {
        spec,
        file,
        dir,
        warnings,
    })
}

/// Parses and validates spec text; `Ok` carries the warnings.
pub fn parse(file_name: &str, source: &str) -> Result<(Spec, Vec<SpecDiagnostic>), SpecErrors> {
    let root = if only_comments(source) {
        Node {
            value: Value::Null,
            place: Place {
                line: 1,
                column: 1,
                offset: 0,
                length: 0,
            },
        }
    } else {
        match node::parse_tree(source) {
            Ok(root) => root,
            Err(error) => {
                let diagnostic = syntax_diagnostic(file_name, source, &error);
                return Err(SpecErrors::new(file_name, source, vec![diagnostic]));
            }
        }
    };
    let mut reader = Reader::new(file_name, source);
    let spec = reader::read_spec(&mut reader, &root);
    let (mut errors, mut warnings): (Vec<_>, Vec<_>) = reader
        .diagnostics
        .into_iter()
        .partition(|diagnostic| diagnostic.severity == Severity::Error);
    errors.sort_by_key(|diagnostic| (diagnostic.line, diagnostic.column));
    crate::diagnostic::place_at_labels(source, &mut warnings);
    warnings.sort_by_key(|diagnostic| (diagnostic.line, diagnostic.column));
    match spec {
        Some(spec) if errors.is_empty() => Ok((spec, warnings)),
        _ if errors.is_empty() => {
            // Every path that drops the spec records why; this keeps a bug there
            // from turning into a silent success.
            let internal = SpecDiagnostic {
                severity: Severity::Error,
                code: "spec::internal".to_owned(),
                message: "the spec could not be read, but no reason was recorded".to_owned(),
                file: file_name.to_owned(),
                line: 1,
                column: 1,
                hint: Some("this is a lastmile bug; please report it with the file".to_owned()),
                label: None,
            };
            Err(SpecErrors::new(file_name, source, vec![internal]))
        }
        _ => Err(SpecErrors::new(file_name, source, errors)),
    }
}

/// True when the text holds nothing but blank lines and comments.
fn only_comments(source: &str) -> bool {
    source.lines().all(|line| {
        let trimmed = line.trim();
        trimmed.is_empty() || trimmed.starts_with('#') || trimmed == "---" || trimmed == "..."
    })
}

fn syntax_diagnostic(file_name: &str, source: &str, error: &serde_saphyr::Error) -> SpecDiagnostic {
    if let Some(breach) = budget_breach(error) {
        return too_large_diagnostic(file_name, breach);
    }
    let message = serde_saphyr::UserMessageFormatter
        .format_message(error)
        .into_owned();
    let location = error.location();
    let line = location
        .map_or(1, |location| usize::try_from(location.line()).unwrap_or(1))
        .max(1);
    let column = location
        .map_or(1, |location| {
            usize::try_from(location.column()).unwrap_or(1)
        })
        .max(1);
    let offset = location
        .and_then(|location| location.span().byte_offset())
        .and_then(|offset| usize::try_from(offset).ok())
        .unwrap_or_else(|| offset_of(source, line, column))
        .min(source.len());
    SpecDiagnostic {
        severity: Severity::Error,
        code: "spec::syntax".to_owned(),
        message: format!("invalid YAML: {message}"),
        file: file_name.to_owned(),
        line,
        column,
        hint: Some(
            "fix the YAML syntax here first; lastmile checks the rest of the file once it parses"
                .to_owned(),
        ),
        label: Some(Label {
            offset,
            length: 0,
            text: "here".to_owned(),
        }),
    }
}

fn offset_of(source: &str, line: usize, column: usize) -> usize {
    let line_start: usize = source
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum();
    let within: usize = source[line_start.min(source.len())..]
        .chars()
        .take(column - 1)
        .map(char::len_utf8)
        .sum();
    line_start + within
}

/// The budget limit the parser stopped at, under any alias or snippet wrapping.
fn budget_breach(mut error: &serde_saphyr::Error) -> Option<&BudgetBreach> {
    loop {
        match error {
            serde_saphyr::Error::Budget { breach, .. } => return Some(breach),
            serde_saphyr::Error::AliasError { error: inner, .. }
            | serde_saphyr::Error::WithSnippet { error: inner, .. } => error = inner,
            _ => return None,
        }
    }
}

/// `spec::too-large`: the file is past a parser limit. The place the parser
/// stopped at is where the count ran out, not where the problem is, so the
/// diagnostic has no location (line and column 0).
fn too_large_diagnostic(file_name: &str, breach: &BudgetBreach) -> SpecDiagnostic {
    let limits = serde_saphyr::Budget::default();
    let what = match breach {
        BudgetBreach::Nodes { .. } => {
            format!(
                "more than {} values (keys, scalars, lists and maps)",
                limits.max_nodes
            )
        }
        BudgetBreach::Events { .. } => format!("more than {} YAML events", limits.max_events),
        BudgetBreach::Aliases { .. } => {
            format!("more than {} aliases (`*name`)", limits.max_aliases)
        }
        BudgetBreach::Anchors { .. } => {
            format!("more than {} anchors (`&name`)", limits.max_anchors)
        }
        BudgetBreach::Depth { .. } => {
            format!("values nested more than {} levels deep", limits.max_depth)
        }
        BudgetBreach::Documents { .. } => {
            format!("more than {} YAML documents", limits.max_documents)
        }
        BudgetBreach::MergeKeys { .. } => {
            format!("more than {} merge keys (`<<`)", limits.max_merge_keys)
        }
        BudgetBreach::AliasAnchorRatio { aliases, anchors } => format!(
            "{aliases} aliases for {anchors} anchors; more than {} uses per anchor is how alias bombs grow",
            limits.alias_anchor_ratio_multiplier
        ),
        BudgetBreach::RecordedAnchorEvents { .. } | BudgetBreach::RecordedAnchorBytes { .. } => {
            "anchors that expand to more than lastmile reads".to_owned()
        }
        BudgetBreach::ScalarBytes { .. } | BudgetBreach::InputBytes { .. } => {
            "more text than lastmile reads".to_owned()
        }
        _ => "more structure than lastmile reads".to_owned(),
    };
    SpecDiagnostic {
        severity: Severity::Error,
        code: "spec::too-large".to_owned(),
        message: format!("the spec is too large to read: it has {what}"),
        file: file_name.to_owned(),
        line: 0,
        column: 0,
        hint: Some(
            "a spec is usually a few hundred lines; remove generated or repeated content, and write values out instead of repeating aliases"
                .to_owned(),
        ),
        label: None,
    }
}

/// `spec::not-utf8` at the first byte that is not UTF-8, shown against the
/// text with that byte replaced (everything before it is unchanged).
fn not_utf8(file_name: &str, bytes: &[u8], error: std::str::Utf8Error) -> SpecErrors {
    let offset = error.valid_up_to();
    let valid = String::from_utf8_lossy(&bytes[..offset]);
    let line_start = valid.rfind('\n').map_or(0, |newline| newline + 1);
    let line = valid.matches('\n').count() + 1;
    let column = valid[line_start..].chars().count() + 1;
    let byte = bytes.get(offset).copied().unwrap_or_default();
    let diagnostic = SpecDiagnostic {
        severity: Severity::Error,
        code: "spec::not-utf8".to_owned(),
        message: format!(
            "the file is not UTF-8 text: byte 0x{byte:02X} at line {line}, column {column} is not valid UTF-8"
        ),
        file: file_name.to_owned(),
        line,
        column,
        hint: Some(
            "save the file as UTF-8 in your editor, or convert it (from Latin-1: `iconv -f latin1 -t utf-8`); lastmile checks the rest once it is UTF-8".to_owned(),
        ),
        label: Some(Label {
            offset,
            length: 0,
            text: "not UTF-8".to_owned(),
        }),
    };
    SpecErrors::new(file_name, &String::from_utf8_lossy(bytes), vec![diagnostic])
}
