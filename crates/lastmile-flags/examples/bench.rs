//! In-process evaluation cost: `cargo run --release -p lastmile-flags --example bench`.
//!
//! Times a static flag and a flag whose third rule (after a country rule and
//! a segment rule that do not match) splits by a rollout, over 5 million
//! evaluations each, cycling through 1,024 contexts so the hash sees
//! different keys. Prints nanoseconds per evaluation.

use std::hint::black_box;
use std::time::Instant;

use lastmile_flags::{Context, FlagSet, NoCanary};

#[path = "support/bench_flags.rs"]
mod bench_flags;

const EVALUATIONS: u32 = 5_000_000;

fn main() {
    let flags = bench_flags::bench_flags();
    let contexts: Vec<Context> = (0..1024)
        .map(|user| {
            Context::new()
                .with_key(format!("user-{user}"))
                .with("country", "DK")
                .with("email", format!("user-{user}@customer.org"))
                .with("app_version", "2.3.0")
                .with("plan", "pro")
        })
        .collect();
    for (label, key) in [
        ("static flag", "static-flag"),
        ("3-rule targeted rollout", "new-checkout"),
    ] {
        // Warm up caches and the branch predictor before timing.
        run(&flags, key, &contexts, EVALUATIONS / 10);
        let started = Instant::now();
        let served = run(&flags, key, &contexts, EVALUATIONS);
        let elapsed = started.elapsed();
        let per = elapsed.as_nanos() as f64 / f64::from(EVALUATIONS);
        println!(
            "{label:<26} {EVALUATIONS} evaluations in {:>7.1} ms: {per:>6.1} ns/evaluation ({served} served the first variant)",
            elapsed.as_secs_f64() * 1000.0
        );
    }
}

/// Evaluates `key` `count` times; returns how many got the first variant so
/// the work cannot be optimised away.
fn run(flags: &FlagSet, key: &str, contexts: &[Context], count: u32) -> u32 {
    let mut first = 0;
    for index in 0..count {
        let context = &contexts[index as usize % contexts.len()];
        match flags.evaluate(black_box(key), black_box(context), &NoCanary) {
            Ok(answer) => {
                first += u32::from(answer.variant == "on" || answer.variant == "blue");
                black_box(answer);
            }
            Err(error) => panic!("{key}: {error}"),
        }
    }
    first
}
