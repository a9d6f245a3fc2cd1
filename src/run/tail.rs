//! The end of a run, overlapped: near the end (see [`Unfinished::new`]), the files this run's
//! schema changes left behind are rewritten while the last partitions still run, not after
//! them. With an API's latency, the last partitions mostly wait for answers, and the rewrite
//! (0.075 s for 190 files in the benchmark's latency run) used to come on top.
//!
//! Only units no partition of the run is still extracting are touched: a rewrite of a unit's old
//! file placed after the run's new file of that unit would bring the old rows back. The rewrite
//! at the end of the run still runs, and finds what this one left (or what a later schema change
//! made stale again).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

use super::reconcile::{Reconciler, Rewritten};
use super::signal::Shutdown;
use super::state::Run;
use crate::logging::DETAIL;
use crate::unit::Unit;

/// The units of a run that have not ended yet, by table, and how many have yet to start.
pub(super) struct Unfinished {
    /// Table index -> its units whose partitions have not ended.
    units: Mutex<HashMap<usize, HashSet<Unit>>>,
    not_started: AtomicUsize,
    /// The early rewrite begins when this many partitions are left to start.
    early_at: usize,
    /// Told when the early rewrite may begin, or once every partition has ended.
    begin: Notify,
    all_ended: AtomicBool,
}

impl Unfinished {
    /// `early_at`: how many partitions may be left to start when the early rewrite begins.
    /// Late enough that the schema has likely settled (a change after it only costs those files
    /// a second rewrite), early enough that the rest of the run can hide the rewrite.
    pub(super) fn new(todo: &[(usize, Unit)], early_at: usize) -> Unfinished {
        let mut units: HashMap<usize, HashSet<Unit>> = HashMap::new();
        for (table, unit) in todo {
            units.entry(*table).or_default().insert(*unit);
        }
        let begin = Notify::new();
        if todo.len() <= early_at {
            // A short run: the moment is now (the rewrite finds no change of this run yet).
            begin.notify_one();
        }
        Unfinished {
            units: Mutex::new(units),
            not_started: AtomicUsize::new(todo.len()),
            early_at,
            begin,
            all_ended: AtomicBool::new(false),
        }
    }

    /// A partition starts.
    pub(super) fn started(&self) {
        if self.not_started.fetch_sub(1, Ordering::SeqCst) == self.early_at + 1 {
            self.begin.notify_one();
        }
    }

    /// A partition ended, whatever its outcome.
    pub(super) fn ended(&self, table: usize, unit: &Unit) {
        if let Some(units) = self.lock().get_mut(&table) {
            units.remove(unit);
        }
    }

    /// Every partition has ended (or a signal stopped them).
    pub(super) fn all_ended(&self) {
        self.all_ended.store(true, Ordering::SeqCst);
        self.begin.notify_one();
    }

    fn of(&self, table: usize) -> HashSet<Unit> {
        self.lock().get(&table).cloned().unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, HashSet<Unit>>> {
        self.units.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Near the end of the run, rewrites the files of each table whose schema changed in this run,
/// leaving the units still being extracted or yet to start. Returns what it rewrote, by table
/// index.
/// Nothing is done when every partition ended first (the rewrite at the end does it all), or
/// after a signal. A failure is left to the rewrite at the end, which meets it again.
pub(super) async fn rewrite_early(
    planned: &[(usize, Run)],
    unfinished: &Unfinished,
    shutdown: &Shutdown,
) -> HashMap<usize, Rewritten> {
    let mut done = HashMap::new();
    unfinished.begin.notified().await;
    for (table, run) in planned {
        if unfinished.all_ended.load(Ordering::SeqCst) || shutdown.received().is_some() {
            break;
        }
        if !run.schema_changed_in_run().await {
            continue;
        }
        let leave = unfinished.of(*table);
        let target = run.target().await;
        let pass = Reconciler {
            dest: &run.dest,
            paths: &run.paths,
            policy: &run.policy,
            cpu: &run.cpu,
            every_file: false,
            policy_changed: run.policy_changed,
        };
        match shutdown
            .unless_stopped(pass.reconcile_leaving(&target, &leave))
            .await
        {
            Err(_) => break,
            Ok(Ok(rewritten)) => {
                tracing::info!(target: DETAIL, table = run.dataset.name, files = rewritten.files, left = leave.len(), "rewrote files while the last partitions ran");
                done.insert(*table, rewritten);
            }
            Ok(Err(e)) => {
                tracing::info!(target: DETAIL, table = run.dataset.name, error = %e, "rewriting while the last partitions ran failed; the rewrite at the end tries again");
            }
        }
    }
    done
}
