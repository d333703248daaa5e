//! Secret values for the steps that ask for them.
//!
//! A step names its secrets (`secrets: [DEPLOY_TOKEN]`); the values come from
//! the process environment first, then from the dotenv file `secrets.file`
//! points at. Values never appear in an error message: errors name the
//! secret, the file and the line, never what was on it.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use lastmile_spec::Spec;

#[cfg(test)]
mod tests;

/// Errors while looking secret values up.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Some referenced secrets have no value anywhere lastmile looked.
    #[error(
        "no value for secret{plural} {names} (looked in {looked}); \
         export {them} in the environment{file_hint}",
        plural = if names.len() == 1 { "" } else { "s" },
        names = names.join(", "),
        them = if names.len() == 1 { "it" } else { "them" },
        file_hint = file_hint(file.as_deref()),
    )]
    Missing {
        /// Every missing name, sorted.
        names: Vec<String>,
        /// Where lastmile looked, in words.
        looked: String,
        /// The secrets file, when the spec names one.
        file: Option<PathBuf>,
    },
    /// The secrets file exists but could not be read.
    #[error(
        "could not read the secrets file {}: {source}; check its permissions or fix `secrets.file` in lastmile.yaml",
        path.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A line of the secrets file is not `NAME=value`.
    #[error("{}:{line}: {problem}; lines must look like `NAME=value` (optionally `export NAME=\"value\"`)", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong, in words that never quote the value.
        problem: &'static str,
    },
    /// `secrets.file` starts with `~/` but `HOME` is not set.
    #[error("`secrets.file` is {file} but HOME is not set; set HOME or give an absolute path")]
    NoHome {
        /// The configured path.
        file: String,
    },
}

fn file_hint(file: Option<&Path>) -> String {
    match file {
        Some(path) => format!(" or add `NAME=value` lines to {}", path.display()),
        None => " or name a dotenv file in `secrets.file` of lastmile.yaml".to_owned(),
    }
}

/// Secret values with the warnings met while reading them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Name → value for every secret any step references.
    pub values: BTreeMap<String, String>,
    /// Things the user should fix that do not stop the run (a secrets file
    /// readable by other users).
    pub warnings: Vec<String>,
}

/// Values for every secret referenced by any step; the environment wins over
/// `spec.secrets.file`.
pub fn resolve(
    spec_dir: &Path,
    spec: &Spec,
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, SecretError> {
    resolve_with_warnings(spec_dir, spec, environment).map(|resolved| resolved.values)
}

/// Like [`resolve`], also returning warnings about the secrets file.
pub fn resolve_with_warnings(
    spec_dir: &Path,
    spec: &Spec,
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, SecretError> {
    let wanted: BTreeSet<&str> = spec
        .pipeline
        .steps
        .iter()
        .flat_map(|step| step.secrets.iter().map(String::as_str))
        .collect();

    let mut resolved = Resolved::default();
    let mut missing = Vec::new();
    for name in &wanted {
        match environment(name) {
            Some(value) => {
                resolved.values.insert((*name).to_owned(), value);
            }
            None => missing.push(*name),
        }
    }
    if missing.is_empty() {
        // The file is read only when needed: a CI machine that exports every
        // secret need not have it.
        return Ok(resolved);
    }

    let Some(configured) = &spec.secrets.file else {
        return Err(SecretError::Missing {
            names: missing.iter().map(|name| (*name).to_owned()).collect(),
            looked: "the process environment".to_owned(),
            file: None,
        });
    };
    let path = secrets_file_path(spec_dir, configured, environment)?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(SecretError::Missing {
                names: missing.iter().map(|name| (*name).to_owned()).collect(),
                looked: format!(
                    "the process environment; the secrets file {} does not exist",
                    path.display()
                ),
                file: Some(path),
            });
        }
        Err(source) => return Err(SecretError::Read { path, source }),
    };
    if let Some(warning) = permission_warning(&path) {
        resolved.warnings.push(warning);
    }

    let mut from_file = parse_dotenv(&text).map_err(|(line, problem)| SecretError::Syntax {
        path: path.clone(),
        line,
        problem,
    })?;
    let mut still_missing = Vec::new();
    for name in missing {
        match from_file.remove(name) {
            Some(value) => {
                resolved.values.insert(name.to_owned(), value);
            }
            None => still_missing.push(name.to_owned()),
        }
    }
    if !still_missing.is_empty() {
        return Err(SecretError::Missing {
            names: still_missing,
            looked: format!("the process environment and {}", path.display()),
            file: Some(path),
        });
    }
    Ok(resolved)
}

/// `secrets.file` as a path: `~/` from HOME, relative to the spec directory.
fn secrets_file_path(
    spec_dir: &Path,
    configured: &str,
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, SecretError> {
    if let Some(rest) = configured.strip_prefix("~/") {
        let home = environment("HOME")
            .filter(|home| !home.is_empty())
            .ok_or_else(|| SecretError::NoHome {
                file: configured.to_owned(),
            })?;
        return Ok(Path::new(&home).join(rest));
    }
    Ok(spec_dir.join(configured))
}

#[cfg(unix)]
fn permission_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "the secrets file {} can be read by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )
    })
}

#[cfg(not(unix))]
fn permission_warning(_path: &Path) -> Option<String> {
    None
}

/// Parses dotenv text; errors carry the 1-based line and a value-free reason.
///
/// Supported: `NAME=value`, `export NAME=value`, `#` comment lines, inline
/// ` # comments` after unquoted values, `'literal'` values, and `"quoted"`
/// values with `\n \r \t \" \\ \$` escapes. Quoted values may span lines
/// (a PEM key pasted as is). Later lines win over earlier ones.
fn parse_dotenv(text: &str) -> Result<BTreeMap<String, String>, (usize, &'static str)> {
    let mut values = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut index = 0;
    while index < lines.len() {
        let line_number = index + 1;
        let line = lines[index].trim();
        index += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export")
            .filter(|rest| rest.starts_with([' ', '\t']))
            .map_or(line, str::trim_start);
        let Some((name, rest)) = line.split_once('=') else {
            return Err((line_number, "expected `=` after the name"));
        };
        let name = name.trim();
        if !is_valid_name(name) {
            return Err((
                line_number,
                "the name must be letters, digits and `_`, not starting with a digit",
            ));
        }
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                // Gather lines until the closing quote.
                let mut body = rest[1..].to_owned();
                let (value, after) = loop {
                    if let Some(found) = closing_quote(&body, quote) {
                        let value = if quote == '"' {
                            unescape_double_quoted(&body[..found])
                        } else {
                            body[..found].to_owned()
                        };
                        break (value, body[found + 1..].to_owned());
                    }
                    let Some(next) = lines.get(index) else {
                        return Err((line_number, "the quoted value is never closed"));
                    };
                    body.push('\n');
                    body.push_str(next);
                    index += 1;
                };
                let after = after.trim();
                if !(after.is_empty() || after.starts_with('#')) {
                    return Err((line_number, "unexpected text after the closing quote"));
                }
                value
            }
            _ => {
                let without_comment = match rest.find(" #").or_else(|| rest.find("\t#")) {
                    Some(start) => &rest[..start],
                    None => rest,
                };
                without_comment.trim_end().to_owned()
            }
        };
        values.insert(name.to_owned(), value);
    }
    Ok(values)
}

fn is_valid_name(name: &str) -> bool {
    let mut characters = name.chars();
    matches!(characters.next(), Some(first) if first.is_ascii_alphabetic() || first == '_')
        && characters.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Byte index of the closing quote, skipping `\"` inside double quotes.
fn closing_quote(body: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (position, character) in body.char_indices() {
        if quote == '"' && escaped {
            escaped = false;
        } else if quote == '"' && character == '\\' {
            escaped = true;
        } else if character == quote {
            return Some(position);
        }
    }
    None
}

fn unescape_double_quoted(body: &str) -> String {
    let mut value = String::with_capacity(body.len());
    let mut characters = body.chars();
    while let Some(character) = characters.next() {
        if character != '\\' {
            value.push(character);
            continue;
        }
        match characters.next() {
            Some('n') => value.push('\n'),
            Some('r') => value.push('\r'),
            Some('t') => value.push('\t'),
            Some(other @ ('"' | '\\' | '$')) => value.push(other),
            // Unknown escapes stay as written, like most dotenv readers.
            Some(other) => {
                value.push('\\');
                value.push(other);
            }
            None => value.push('\\'),
        }
    }
    value
}
