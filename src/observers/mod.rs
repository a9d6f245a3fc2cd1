//! Who hears of an extraction besides its report: the Dagster run that launched it (Pipes) and a
//! lineage backend (OpenLineage). Both are courtesies: one that cannot be reached costs a
//! warning, never the run; only settings that cannot be read refuse it (exit 2).

mod lineage;
mod pipes;

use std::path::PathBuf;

use crate::datasets::Dataset;
use crate::error::Outcome;
use crate::report::Report;
use crate::settings::Settings;
use lineage::{Lineage, LineageError};
use pipes::{Pipes, PipesError};

/// Why the observers' settings cannot be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ObserverError {
    #[error("{0}")]
    Pipes(#[from] PipesError),
    #[error("{0}")]
    Lineage(#[from] LineageError),
}

/// The observers of one run, each present only when its environment asks for it.
pub(crate) struct Observers {
    pipes: Option<Pipes>,
    lineage: Option<Lineage>,
}

impl Observers {
    /// The observers of a run of `job` (`sync`, or the table's name), from the environment and
    /// `--openlineage-file`.
    pub(crate) fn open(
        job: &str,
        lineage_file: Option<PathBuf>,
    ) -> Result<Observers, ObserverError> {
        // Lineage first: it sends nothing until the run starts, while Pipes says "opened" at once
        // and must then be closed.
        let lineage = Lineage::from_env(job, lineage_file)?;
        Ok(Observers {
            pipes: Pipes::open()?,
            lineage,
        })
    }

    /// The days Dagster's partitions span, when Dagster launched the run.
    pub(crate) fn days(&self) -> Option<(String, String)> {
        self.pipes.as_ref().and_then(Pipes::days)
    }

    /// The run begins with these settings.
    pub(crate) async fn started(&mut self, settings: &Settings) {
        if let Some(lineage) = &mut self.lineage {
            lineage.started(settings).await;
        }
    }

    /// The run was refused (exit 2) before it began.
    pub(crate) async fn refused(&self, error: &str) {
        if let Some(pipes) = &self.pipes {
            pipes.close(Some(&format!("exit 2: {error}")));
        }
        if let Some(lineage) = &self.lineage {
            lineage.refused(error).await;
        }
    }

    /// The run ended with these reports.
    pub(crate) async fn ended(&self, reports: &[(Dataset, Report)], outcome: Outcome) {
        if let Some(pipes) = &self.pipes {
            for (dataset, report) in reports {
                if report.status != "failed" {
                    pipes.materialized(dataset.name, report);
                }
            }
            let failure = reports.iter().find_map(|(_, r)| r.error.as_deref());
            match (outcome, failure) {
                (Outcome::Done, _) => pipes.close(None),
                (o, Some(error)) => pipes.close(Some(&format!("exit {}: {error}", o.exit_code()))),
                (o, None) => pipes.close(Some(&format!(
                    "exit {}: some partitions failed",
                    o.exit_code()
                ))),
            }
        }
        if let Some(lineage) = &self.lineage {
            lineage.ended(reports, outcome).await;
        }
    }
}
