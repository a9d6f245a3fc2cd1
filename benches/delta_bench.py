"""The `make bench` table of issue 26: what a Delta table costs to write. A year of history (4
campaigns x 365 days, `--rows-per-day 300`) is extracted into month tables as Parquet and as Delta,
BACKFILLS times each, the formats taking turns (the median is the figure). Then, on copies of the
Delta history, nightly runs: the next day (no schema change), then the day after (one new column),
NIGHTLIES times each. The log of each run meeting the new column is read: its commit must add the
column (a metaData action) and replace only its own month's file.
Called by `run_bench.py` (which passes itself as `bench`, for its `measure`, `Simulator`, `Dataset`).

Targets: the Delta backfill within 1.2x of the Parquet one, peak RSS under 200 MB; the nightly that
meets a new column at most 1.2x a plain nightly, no file rewritten.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import statistics
from pathlib import Path
from types import ModuleType

CAMPAIGNS = 4
DAYS = 365
ROWS_PER_DAY = 300
FIRST = dt.date(2023, 1, 1)
BACKFILLS = 3
NIGHTLIES = 5
TARGET_BACKFILL = 1.2  # Delta backfill / Parquet backfill
TARGET_RSS_MIB = 200
TARGET_NEW_COLUMN = 1.2  # Delta nightly with a new column / Delta plain nightly
FORMATS = ("parquet", "delta")


@dataclasses.dataclass
class DeltaRun:
    days: int = DAYS
    walls: dict[str, list[float]] = dataclasses.field(default_factory=lambda: {f: [] for f in FORMATS})
    rss_mib: dict[str, float] = dataclasses.field(default_factory=dict)
    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    plain: list[float] = dataclasses.field(default_factory=list)
    changed: list[float] = dataclasses.field(default_factory=list)
    rewritten: int | None = None  # files the new-column nightly wrote anew (its report)
    removed: int | None = None  # files its commits removed (each the month file it rebuilt with the day)
    commits: int | None = None  # versions it committed
    versions: int | None = None  # log versions after the backfill
    failed: str | None = None

    def backfill(self, fmt: str) -> float:
        return statistics.median(self.walls[fmt])


def _extract(bench: ModuleType, sim, dataset, first: dt.date, last: dt.date, dest: Path, fmt: str,
             work: Path, tag: str, timeout: float):
    report = bench.fresh(work / f"report-delta-{tag}.json")
    m = bench.measure(
        [bench.EXTRACT_BIN, "call-outcomes", "--partitioning", "month", "--table-format", fmt,
         "--base-url", sim.url, "--token", bench.TOKEN, "--campaign", dataset.campaign_ids,
         "--from", first.isoformat(), "--to", last.isoformat(), "--dest", dest, "--report", report, "-q"],
        work / f"run-delta-{tag}", timeout, server=sim,
    )
    try:
        return m, json.loads(report.read_text())
    except (OSError, ValueError):
        return m, None


def _commits(table: Path, after: int) -> list[list[dict]]:
    """The actions of each log version after `after`."""
    log = table / "_delta_log"
    versions = sorted((int(p.stem), p) for p in log.glob("*.json") if int(p.stem) > after)
    return [[json.loads(line) for line in p.read_text().splitlines() if line.strip()] for _, p in versions]


def _latest(table: Path) -> int:
    return max(int(p.stem) for p in (table / "_delta_log").glob("*.json"))


def run_delta(bench: ModuleType, work: Path, timeout: float, quick: bool) -> DeltaRun:
    days = 60 if quick else DAYS
    run = DeltaRun(days=days)
    dataset = bench.Dataset(CAMPAIGNS, ROWS_PER_DAY, FIRST, days)
    plain_day = dataset.last + dt.timedelta(days=1)
    changed_day = plain_day + dt.timedelta(days=1)
    history = work / "out-delta-history"
    with bench.Simulator(dataset, work / "sim-delta.log", extra=("--new-column-from", changed_day.isoformat())) as sim:
        for i in range(BACKFILLS):
            for fmt in FORMATS:
                dest = bench.fresh(work / f"out-delta-{fmt}")
                m, report = _extract(bench, sim, dataset, FIRST, dataset.last, dest, fmt, work, f"{fmt}-{i}",
                                     timeout)
                if m.returncode != 0 or report is None:
                    run.failed = f"the {fmt} backfill exited {m.returncode}: {m.stderr.strip()[-300:]}"
                    return run
                run.walls[fmt].append(m.wall)
                run.rss_mib[fmt] = max(run.rss_mib.get(fmt, 0.0), m.maxrss_kib / 1024)
                run.rows[fmt] = report.get("rows")
                if fmt == "delta" and i == 0:
                    bench.fresh(history)
                    shutil.copytree(dest, history)
        run.versions = sum(1 for _ in (history / "call_outcomes" / "_delta_log").glob("*.json"))
        for i in range(NIGHTLIES):
            copy = bench.fresh(work / "out-delta-nightly")
            shutil.copytree(history, copy)
            for day, walls in ((plain_day, run.plain), (changed_day, run.changed)):
                before = _latest(copy / "call_outcomes")
                m, report = _extract(bench, sim, dataset, day, day, copy, "delta", work, f"nightly-{i}-{day}", timeout)
                if m.returncode != 0 or report is None:
                    run.failed = f"the Delta nightly of {day} exited {m.returncode}: {m.stderr.strip()[-300:]}"
                    return run
                walls.append(m.wall)
                if day == changed_day:
                    if not any(c.get("change") == "added" for c in report.get("schema_changes") or []):
                        run.failed = f"the Delta nightly of {day} met no new column"
                        return run
                    commits = _commits(copy / "call_outcomes", before)
                    if sum(1 for c in commits if any("metaData" in a for a in c)) != 1:
                        run.failed = f"the Delta nightly of {day} did not add its column in one commit"
                        return run
                    run.rewritten = report.get("files_rewritten")
                    run.removed = sum(1 for c in commits for a in c if "remove" in a)
                    run.commits = len(commits)
            bench.fresh(copy)
    if run.rows.get("parquet") != run.rows.get("delta"):
        run.failed = f"the formats wrote different row counts: {run.rows}"
    return run


def tables(run: DeltaRun) -> list[str]:
    head = (f"## Delta tables: a year of history ({CAMPAIGNS} campaigns x {run.days} days, about {ROWS_PER_DAY} "
            f"rows a campaign-day), month files")
    if run.failed:
        return [head, "", f"FAILED: {run.failed}", ""]
    return [
        head, "",
        f"Backfill (no latency; {BACKFILLS} runs each, the formats taking turns):", "",
        "| --table-format | backfill s (each run) | median s | peak RSS MiB | rows |",
        "|---|---:|---:|---:|---:|",
        *(f"| {fmt} | {', '.join(f'{x:.2f}' for x in run.walls[fmt])} | {run.backfill(fmt):.2f} "
          f"| {run.rss_mib[fmt]:.0f} | {run.rows[fmt]:,} |" for fmt in FORMATS),
        "",
        f"Nightly runs on copies of the Delta history ({run.versions} log versions; {NIGHTLIES} runs each):", "",
        "| nightly | wall s (each run) | median s |",
        "|---|---:|---:|",
        f"| the next day | {', '.join(f'{x:.2f}' for x in run.plain)} | {statistics.median(run.plain):.2f} |",
        f"| the day after, meeting a new column | {', '.join(f'{x:.2f}' for x in run.changed)} "
        f"| {statistics.median(run.changed):.2f} |",
        "",
        f"The run meeting the new column: {run.commits} commits (one per campaign's month), one of them with the "
        f"metaData action that adds the column; {run.removed} files removed (each the month file rebuilt with the "
        f"day), {run.rewritten} files rewritten.", "",
    ]


def verdicts(bench: ModuleType, run: DeltaRun) -> list[str]:
    v = bench.verdict
    if run.failed:
        return [v(False, f"Delta tables: {run.failed}")]
    p, d = run.backfill("parquet"), run.backfill("delta")
    plain, changed = statistics.median(run.plain), statistics.median(run.changed)
    return [
        v(d <= TARGET_BACKFILL * p and run.rss_mib["delta"] < TARGET_RSS_MIB,
          f"Delta backfill of the year: {d:.2f} s = {d / p:.2f}x the Parquet format's {p:.2f} s (target <= "
          f"{TARGET_BACKFILL}x), peak RSS {run.rss_mib['delta']:.0f} MiB (target < {TARGET_RSS_MIB})"),
        v(changed <= TARGET_NEW_COLUMN * plain and run.rewritten == 0 and run.removed == run.commits,
          f"Delta nightly meeting a new column: {changed:.2f} s = {changed / plain:.2f}x a plain nightly "
          f"({plain:.2f} s; target <= {TARGET_NEW_COLUMN}x), {run.rewritten} files rewritten, {run.removed} removed "
          f"(the months it rebuilt with its day)"),
    ]
