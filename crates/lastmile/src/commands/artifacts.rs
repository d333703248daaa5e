//! `lastmile artifacts`.

use std::path::Path;
use std::process::ExitCode;

use lastmile_store::Store;

use crate::cli::ArtifactsArgs;
use crate::output::{self, outln};
use crate::state;

pub(crate) fn artifacts(
    args: &ArtifactsArgs,
    state_dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (store, blobs) = state::open_existing(state_dir, &args.state.dir)?;
    let artifacts = store.list_artifacts(args.limit)?;
    if args.json {
        let rows: Vec<serde_json::Value> = artifacts
            .iter()
            .map(|artifact| {
                let mut value = serde_json::to_value(artifact).unwrap_or_default();
                value["path"] = blobs
                    .path(&artifact.id)
                    .map(|path| serde_json::Value::from(path.display().to_string()))
                    .unwrap_or(serde_json::Value::Null);
                value
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if artifacts.is_empty() {
        outln!("no artifacts yet: a run packs one when lastmile.yaml has `artifact.paths`");
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<66} {:<12} {:>6} {:>10}  {:<6}  CREATED",
        "ID",
        "APP",
        "FILES",
        "SIZE",
        "RUN"
    );
    for artifact in artifacts {
        outln!(
            "{:<66} {:<12} {:>6} {:>10}  {:<6}  {}",
            artifact.id,
            artifact.app,
            artifact.files,
            output::size(artifact.size),
            artifact
                .run_id
                .map_or("-".to_string(), |run| format!("#{run}")),
            output::timestamp(artifact.created_at),
        );
    }
    Ok(ExitCode::SUCCESS)
}
