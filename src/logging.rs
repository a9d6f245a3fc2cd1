//! Logs (tracing) and the progress bar (indicatif) on stderr; stdout stays free for machine output.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::cli::{ColorChoice, LogFormat};
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
    /// The bar is on screen (started, not finished): log lines are written above it. Before
    /// and after, they go straight to stderr, so that no line redraws a bar that is not there.
    drawn: Arc<AtomicBool>,
}

#[derive(Default)]
struct Totals {
    rows: AtomicU64,
    failed: AtomicU64,
}

impl Progress {
    /// A bar for a person at a terminal (human logs, stderr a terminal, not `--no-progress`).
    pub(crate) fn new(format: LogFormat, no_progress: bool) -> Progress {
        let visible = format == LogFormat::Human && !no_progress && std::io::stderr().is_terminal();
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
            drawn: Arc::default(),
        }
    }

    /// No bar, for commands that print their result to stdout.
    pub(crate) fn hidden() -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
            totals: Arc::default(),
            drawn: Arc::default(),
        }
    }

    pub(crate) fn start(&self, partitions: u64) {
        self.bar.set_length(partitions);
        self.drawn.store(true, Ordering::SeqCst);
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

    /// Takes the bar off the screen for good, whatever way the run ends.
    pub(crate) fn finish(&self) {
        self.drawn.store(false, Ordering::SeqCst);
        self.bar.finish_and_clear();
        self.bar.set_draw_target(ProgressDrawTarget::hidden());
    }
}

/// Writes log lines above the progress bar while it is drawn, straight to stderr otherwise.
#[derive(Clone)]
struct BarWriter(ProgressBar, Arc<AtomicBool>);

impl Write for BarWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.1.load(Ordering::SeqCst) {
            true => self.0.suspend(|| std::io::stderr().write_all(buf))?,
            false => std::io::stderr().write_all(buf)?,
        }
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

/// Whether stderr gets colours: `--color always|never` if given; otherwise none when `NO_COLOR`
/// is set (and not empty), colours when `FORCE_COLOR` is (and not empty or `0`), else only at a
/// terminal (the conventions of no-color.org and force-color.org, as cargo and uv keep them).
pub(crate) fn colors(choice: ColorChoice) -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) => false,
        ColorChoice::Auto if set("FORCE_COLOR") => true,
        ColorChoice::Auto => std::io::stderr().is_terminal(),
    }
}

/// Human log lines as cargo and uv write theirs: `error: <sentence>`, `warning: ...`, an info
/// line as it is; no timestamp (a person reads them as they come; JSON logs carry the time).
struct Human {
    ansi: bool,
}

impl<S, N> FormatEvent<S, N> for Human
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let (label, style) = match *event.metadata().level() {
            Level::ERROR => ("error", "\x1b[1;31m"),
            Level::WARN => ("warning", "\x1b[1;33m"),
            Level::INFO => ("", ""),
            Level::DEBUG => ("debug", "\x1b[2m"),
            Level::TRACE => ("trace", "\x1b[2m"),
        };
        match (label.is_empty(), self.ansi) {
            (true, _) => {}
            (false, true) => write!(writer, "{style}{label}:\x1b[0m ")?,
            (false, false) => write!(writer, "{label}: ")?,
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The logging of a command that prints its result on stdout (`schema`, `status`, `vacuum`):
/// human lines on stderr, coloured as `NO_COLOR`/`FORCE_COLOR` and the terminal say, no bar.
pub(crate) fn init_for_a_result() {
    init(
        LogFormat::Human,
        0,
        false,
        colors(ColorChoice::Auto),
        &Progress::hidden(),
    );
}

/// Installs the global subscriber. `RUST_LOG` wins over -v/-q.
pub(crate) fn init(format: LogFormat, verbose: u8, quiet: bool, ansi: bool, progress: &Progress) {
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
    let writer = BarWriter(progress.bar.clone(), Arc::clone(&progress.drawn));
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
            .with_ansi(ansi)
            .event_format(Human { ansi })
            .try_init(),
    };
}
