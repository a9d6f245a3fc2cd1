//! cube-extract: Headshed Cube (call outcomes, product registrations, customers, call-flow
//! status, campaigns, custom-field definitions) -> Hive-partitioned Parquet on disk or S3.
//!
//! [`commands`] wires each subcommand; `datasets` declares each table; `run` is the engine that drives the stages, which talk
//! through plain types and know nothing of it: `source` (pages of raw JSON) -> [`schema`] (keys
//! and types) -> [`decode`] (Arrow batches) -> `sink` (Parquet files, atomically placed, and the
//! ledger) -> `report` (what the run did). `error` maps how a command ended to its exit status.

pub mod cli;
pub mod commands;
mod datasets;
pub mod decode;
pub mod error;
mod inventory;
mod logging;
mod observers;
mod privacy;
mod report;
mod run;
pub mod schema;
mod settings;
mod sink;
pub mod source;
mod unit;
mod zone;
