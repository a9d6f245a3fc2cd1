//! Logs (tracing) and the progress bar (indicatif) on stderr; stdout stays free for machine output.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;
use crate::source::adaptive::ConcurrencyUsed;

/// The target of the per-partition and per-schema-change events: in human logs they are shown
/// from `-v` on (a person reads the bar and the summary instead); JSON logs always carry them.
pub(crate) const DETAIL: &str = "cube_extract::detail";

/// Partitions done out of total, rows, rows/s, retries and failures; drawn only for a person at
/// a terminal.
#[derive(Clone)]
pub(crate) struct Progress {
    bar: ProgressBar,
    totals: Arc<Totals>,
}

#[derive(Default)]
struct Totals {
    rows: AtomicU64,
    failed: AtomicU64,
}

impl Progress {
    pub(crate) fn new(format: LogFormat) -> Progress {
        let visible = format == LogFormat::Human && std::io::stderr().is_terminal();
        let bar = if visible {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {pos}/{len} partitions [{bar:30}] {msg} ({elapsed})",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress {
            bar,
            totals: Arc::default(),
        }
    }

    /// No bar, for commands that print their result to stdout.
    pub(crate) fn hidden() -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
            totals: Arc::default(),
        }
    }

    pub(crate) fn start(&self, partitions: u64) {
        self.bar.set_length(partitions);
        self.bar.enable_steady_tick(Duration::from_millis(200));
    }

    pub(crate) fn partition_done(
        &self,
        rows: u64,
        failed: bool,
        retries: u64,
        concurrency: ConcurrencyUsed,
    ) {
        let rows = self.totals.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        let failed = self
            .totals
            .failed
            .fetch_add(u64::from(failed), Ordering::Relaxed)
            + u64::from(failed);
        let rate = rows as f64 / self.bar.elapsed().as_secs_f64().max(0.001);
        let mut msg = format!(
            "{rows} rows, {rate:.0} rows/s, {retries} retries, concurrency {} (mean {:.1})",
            concurrency.last, concurrency.mean
        );
        if failed > 0 {
            msg.push_str(&format!(", {failed} failed"));
        }
        self.bar.set_message(msg);
        self.bar.inc(1);
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Writes log lines above the progress bar instead of through it.
#[derive(Clone)]
struct BarWriter(ProgressBar);

impl Write for BarWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for BarWriter {
    type Writer = BarWriter;
    fn make_writer(&'a self) -> BarWriter {
        self.clone()
    }
}

/// Installs the global subscriber. `RUST_LOG` wins over -v/-q.
pub(crate) fn init(format: LogFormat, verbose: u8, quiet: bool, progress: &Progress) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let detail = match (format, quiet, verbose) {
        (LogFormat::Human, false, 0) => "warn",
        _ => default,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // The Delta kernel logs what it expects (a table not made yet) as errors; ours carry
        // its words when they matter.
        EnvFilter::new(format!(
            "warn,delta_kernel=off,delta_kernel_default_engine=off,cube_extract={default},{DETAIL}={detail}"
        ))
    });
    let writer = BarWriter(progress.bar.clone());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .compact()
            .try_init(),
    };
}
