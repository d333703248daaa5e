//! `lastmile check [DIR]`.

use std::process::ExitCode;

use lastmile_spec::{LoadError, LoadedSpec};
use miette::Diagnostic;
use serde_json::json;

use crate::cli::CheckArgs;
use crate::output::{self, outln};

pub(crate) fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let loaded = lastmile_spec::load(&args.dir)
        .map_err(|error| error.suggesting("lastmile check examples/hello"));
    if args.json {
        return check_json(args, loaded);
    }
    match loaded {
        Ok(loaded) => {
            print_warnings(&loaded);
            let steps: Vec<&str> = loaded
                .spec
                .pipeline
                .steps
                .iter()
                .map(|step| step.name.as_str())
                .collect();
            let environments: Vec<&str> = loaded
                .spec
                .environments
                .iter()
                .map(|env| env.name.as_str())
                .collect();
            outln!(
                "{} {} is valid: app `{}`, {} step{} ({}), {} environment{}{}",
                output::good("✓"),
                loaded.file.display(),
                loaded.spec.app,
                steps.len(),
                plural(steps.len()),
                steps.join(", "),
                environments.len(),
                plural(environments.len()),
                if environments.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", environments.join(", "))
                },
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            print_load_error(error);
            Ok(ExitCode::from(1))
        }
    }
}

fn check_json(args: &CheckArgs, loaded: Result<LoadedSpec, LoadError>) -> anyhow::Result<ExitCode> {
    let (report, code) = match loaded {
        Ok(loaded) => (
            json!({
                "valid": true,
                "file": loaded.file,
                "app": loaded.spec.app,
                "diagnostics": loaded.warnings,
            }),
            ExitCode::SUCCESS,
        ),
        Err(LoadError::Invalid(errors)) => (
            json!({ "valid": false, "file": args.dir, "diagnostics": errors.diagnostics() }),
            ExitCode::from(1),
        ),
        Err(other) => {
            // The same code and hint the human output shows. The problem is
            // the file itself, not a place in it: no line or column.
            let file = match &other {
                LoadError::NotFound { file, .. } | LoadError::Read { path: file, .. } => {
                    file.display().to_string()
                }
                LoadError::Invalid(_) => args.dir.display().to_string(),
            };
            (
                json!({
                    "valid": false,
                    "file": file,
                    "diagnostics": [{
                        "severity": "error",
                        "code": other.code().map(|code| code.to_string()),
                        "message": other.to_string(),
                        "file": file,
                        "line": null,
                        "column": null,
                        "hint": other.help().map(|hint| hint.to_string()),
                    }],
                }),
                ExitCode::from(1),
            )
        }
    };
    outln!("{}", serde_json::to_string_pretty(&report)?);
    Ok(code)
}

/// Prints a spec's warnings (sections this version does not act on yet).
pub(crate) fn print_warnings(loaded: &LoadedSpec) {
    if loaded.warnings.is_empty() {
        return;
    }
    let source = std::fs::read_to_string(&loaded.file).unwrap_or_default();
    eprint!(
        "{}",
        lastmile_spec::render_warnings(
            &loaded.file.display().to_string(),
            &source,
            &loaded.warnings,
            output::colors()
        )
    );
}

/// Loads the spec of `dir` for a command; a spec that is missing or
/// invalid is printed (a missing one with a hint naming `example`, the
/// command pointed at an app's directory) and gives `None`.
pub(crate) fn load_or_report(dir: &std::path::Path, example: &str) -> Option<LoadedSpec> {
    match lastmile_spec::load(dir) {
        Ok(loaded) => {
            print_warnings(&loaded);
            Some(loaded)
        }
        Err(error) => {
            print_load_error(error.suggesting(example));
            None
        }
    }
}

/// Prints why a spec could not be loaded, with snippets and hints.
pub(crate) fn print_load_error(error: LoadError) {
    match error {
        LoadError::Invalid(errors) => eprint!("{}", errors.render(output::colors())),
        other => eprintln!("{:?}", miette::Report::new(other)),
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}
