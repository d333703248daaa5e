//! Flag evaluation: operators, rule order, reasons, rollouts, canaries and
//! overrides, each built from a real `lastmile.yaml` text.

#[path = "flags/operators.rs"]
mod operators;
#[path = "flags/overrides.rs"]
mod overrides;
#[path = "flags/reasons.rs"]
mod reasons;
#[path = "flags/rollouts.rs"]
mod rollouts;

use lastmile_flags::FlagSet;

/// Parses a spec whose `segments:`/`flags:` are `lines` and compiles its flags.
fn flag_set(lines: &[&str]) -> FlagSet {
    let mut source = String::from("app: shop\npipeline: { steps: [{ name: build, run: make }] }\n");
    source.push_str("environments:\n  production: { strategy: canary }\n");
    for line in lines {
        source.push_str(line);
        source.push('\n');
    }
    let (spec, _) = match lastmile_spec::parse("lastmile.yaml", &source) {
        Ok(parsed) => parsed,
        Err(errors) => panic!("{}", errors.render(false)),
    };
    FlagSet::new(&spec.flags, &spec.segments)
}
