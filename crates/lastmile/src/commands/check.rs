//! `lastmile check [DIR]`.

use std::process::ExitCode;

use lastmile_spec::{LoadError, LoadedSpec};
use miette::Diagnostic;
use serde_json::json;

use crate::cli::CheckArgs;
use crate::output::{self, outln};

pub(crate) fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let loaded = lastmile_spec::load(&args.dir);
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
        Err(other) => (
            // The same code and hint the human output shows; line and column
            // are 0 because the problem is the file itself, not a place in it.
            json!({
                "valid": false,
                "file": args.dir,
                "diagnostics": [{
                    "severity": "error",
                    "code": other.code().map(|code| code.to_string()),
                    "message": other.to_string(),
                    "file": args.dir,
                    "line": 0,
                    "column": 0,
                    "hint": other.help().map(|hint| hint.to_string()),
                }],
            }),
            ExitCode::from(1),
        ),
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
