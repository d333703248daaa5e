//! The flags both examples serve: a static flag (`static-flag`) and a
//! 3-rule targeted rollout (`new-checkout`), so `bench/flags` compares the
//! in-process cost (`bench`) with the OFREP server (`ofrep_server`) on the
//! same definitions.

use lastmile_flags::FlagSet;

const SPEC: &str = r##"
app: shop
pipeline: { steps: [{ name: build, run: make }] }
segments:
  beta-testers:
    - { attribute: email, op: ends_with, value: "@example.com" }
flags:
  static-flag:
    type: string
    variants: { blue: "#00f", red: "#f00" }
    default: blue
  new-checkout:
    rules:
      - when: [ { attribute: country, op: in, value: [SE, NO] } ]
        variant: on
      - segment: beta-testers
        variant: on
      - when: [ { attribute: app_version, op: semver_gte, value: "2.1.0" } ]
        rollout: { on: 25, off: 75 }
    rollout: { on: 10, off: 90 }
"##;

/// The flag set of `SPEC`; exits with the rendered errors if it does not parse.
pub(crate) fn bench_flags() -> FlagSet {
    let (spec, _) = match lastmile_spec::parse("lastmile.yaml", SPEC) {
        Ok(parsed) => parsed,
        Err(errors) => {
            eprintln!("{}", errors.render(false));
            std::process::exit(1);
        }
    };
    FlagSet::new(&spec.flags, &spec.segments)
}
