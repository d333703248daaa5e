//! The pipeline runner: runs `pipeline.steps` as a DAG of processes.
//!
//! (in progress)

mod cache;
mod dag;
mod mask;
mod package;
mod process;
mod report;
mod runner;
mod secrets;
mod workspace;
