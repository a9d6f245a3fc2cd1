//! Logs (tracing) and the progress bar (indicatif) on stderr; stdout stays free for machine output.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Partitions done out of total, rows and failures; drawn only for a person at a terminal.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(format: LogFormat) -> Progress {
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
        Progress { bar }
    }

    pub fn start(&self, partitions: u64) {
        self.bar.set_length(partitions);
        self.bar.enable_steady_tick(Duration::from_millis(200));
    }

    pub fn partition_done(&self, rows: u64, failed: bool) {
        let (rows_total, failed_total) = self.counts();
        let rows_total = rows_total + rows;
        let failed_total = failed_total + u64::from(failed);
        let rate = rows_total as f64 / self.bar.elapsed().as_secs_f64().max(0.001);
        self.bar.set_message(format!(
            "{rows_total} rows, {rate:.0} rows/s{}",
            if failed_total > 0 {
                format!(", {failed_total} failed")
            } else {
                String::new()
            }
        ));
        self.bar.inc(1);
    }

    fn counts(&self) -> (u64, u64) {
        // The message is the single source of the running totals; parse it back.
        let msg = self.bar.message();
        let rows = msg
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let failed = msg
            .rsplit(", ")
            .next()
            .and_then(|s| s.strip_suffix(" failed"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        (rows, failed)
    }

    pub fn finish(&self) {
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
pub fn init(format: LogFormat, verbose: u8, quiet: bool, progress: &Progress) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,cube_extract={default}")));
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
