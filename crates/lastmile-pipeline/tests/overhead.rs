//! Per-step overhead of the runner against `sh -c true` run by hand.
//! Ignored by default (it measures, it does not judge speed); run with
//! `cargo test --release -p lastmile-pipeline --test overhead -- --ignored --nocapture`.

#[path = "pipeline/support.rs"]
#[allow(
    dead_code,
    reason = "shared with the pipeline tests, which use all of it"
)]
mod support;

use std::time::{Duration, Instant};

use lastmile_pipeline::{PlainReporter, run_pipeline_with_environment};
use lastmile_spec::{Pipeline, Secrets, Spec};
use lastmile_store::{RunStatus, StepStatus};
use support::{Fixture, StepExt, step};

const STEPS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it by hand with --release --nocapture"]
async fn sequential_true_steps() {
    let by_hand = {
        let started = Instant::now();
        for _ in 0..STEPS {
            let status = std::process::Command::new("sh")
                .args(["-c", "true"])
                .status()
                .expect("sh runs");
            assert!(status.success());
        }
        started.elapsed()
    };

    let fixture = Fixture::new();
    let steps = (0..STEPS)
        .map(|index| {
            let chained = step(&format!("s{index}"), "true");
            if index == 0 {
                chained
            } else {
                chained.needs(&[&format!("s{}", index - 1)])
            }
        })
        .collect();
    let spec = Spec {
        app: "overhead".to_owned(),
        pipeline: Pipeline { steps },
        artifact: None,
        service: None,
        secrets: Secrets::default(),
        environments: Vec::new(),
        flags: Vec::new(),
        segments: Vec::new(),
        reserved_sections: Vec::new(),
    };
    let reporter = PlainReporter::to_writer(std::io::sink());
    let started = Instant::now();
    let summary = run_pipeline_with_environment(
        &spec,
        fixture.spec_dir.path(),
        &fixture.store,
        &fixture.blobs,
        &fixture.options,
        &|_: &str| None,
        &reporter,
        std::future::pending(),
    )
    .await
    .expect("the run completes");
    let by_lastmile = started.elapsed();

    assert_eq!(summary.status, RunStatus::Succeeded);
    assert!(
        summary
            .steps
            .iter()
            .all(|step| step.status == StepStatus::Succeeded)
    );
    let per_step = |total: Duration| total.as_secs_f64() * 1000.0 / STEPS as f64;
    println!(
        "{STEPS} sequential `true` steps: sh by hand {:.2} ms/step, lastmile {:.2} ms/step, \
         overhead {:.2} ms/step",
        per_step(by_hand),
        per_step(by_lastmile),
        per_step(by_lastmile) - per_step(by_hand)
    );
}
