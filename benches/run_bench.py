#!/usr/bin/env python3
"""`make bench`: cube-extract against a hand-written Python extractor and the conversion-only limit.

What it measures, in one run and on the same records (a seeded `cube_sim` dataset):

Table 1, throughput (simulator without latency, on 127.0.0.1):
- cube-extract end to end (`call-outcomes ... --concurrency C`), against a fresh simulator;
- the Python baseline `benches/baseline_extract.py` (requests + pyarrow, sequential), against a
  fresh simulator;
- DuckDB `read_json_auto` -> `COPY ... (FORMAT parquet, COMPRESSION zstd)` and Polars `read_ndjson`
  -> `write_parquet(compression="zstd")` on the same records as an NDJSON file (`cube_sim dump`
  with its two bookkeeping keys `__campaign_id`/`__date` stripped): no API, no paging, one output
  file, i.e. the conversion-only limit. Their time is the conversion inside the process (interpreter
  start and `import` excluded), which makes them a stricter bar;
- cube-extract again on a dataset with twice the days (peak RSS growth).
Records/s = records / time; MB/s = bytes of the records' compact JSON (the NDJSON without newlines)
/ time; peak RSS = ru_maxrss of the measured process from wait4 (the simulator, a separate
process, is not included; its CPU seconds during the run are shown). Output = sum of the
`.parquet` files written.

Table 2, latency (every simulator answer waits `--latency-ms`): cube-extract's wall time (median of
`--repeat` runs) against the ideal `pages x latency / concurrency` (pages from its report), at
`--concurrency` 8 and 16.

Table 3, a nightly run after a year of history (4 campaigns x 364 days extracted first): the next
day without a schema change, then the day after, where every record has one new key
(`cube_sim --new-column-from`), so every earlier file is brought to the new schema. The ratio of
the two nightly runs' wall times, median over `--repeat` copies of the history. Beside them, on
another copy, `examples/rewrite_floor` does only the file operations of those rewrites (no Parquet
work): the file system's share, which no rewrite can go below on this machine.

Table 4, a big snapshot (one CRM's customers).

Tables 5 and 6 (benches/scope_bench.py): an account of many sparse campaigns read per campaign and
for the whole account (`--scope`), and a throttling API (`Retry-After: 1` and `0`).

Table 7 (benches/query_bench.py): analysts' queries over a year of history as written, against the
same rows in one file and in DuckDB's month layout, and that year's backfill.

Table 8 (benches/delta_bench.py): that year's backfill as Delta tables against Parquet, and the
nightly runs on the Delta history, with and without a new column.

Then the targets, PASS/FAIL each. The exit status is 0 whatever the verdicts (a measurement, not a
test); it is non-zero only when the benchmark itself cannot run. The tables and verdicts also go
to `target/bench-results.md`. `--quick` runs a tiny version in seconds (a smoke test: its verdicts
mean nothing).
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import datetime as dt
import itertools
import json
import os
import platform
import re
import selectors
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import delta_bench
import query_bench
import scope_bench

REPO = Path(__file__).resolve().parents[1]
# Release builds; CUBE_EXTRACT_BIN / CUBE_SIM_BIN override them (e.g. to try the script on debug builds).
EXTRACT_BIN = Path(os.environ.get("CUBE_EXTRACT_BIN") or REPO / "target/release/cube-extract")
SIM_BIN = Path(os.environ.get("CUBE_SIM_BIN") or REPO / "target/release/examples/cube_sim")
FLOOR_BIN = REPO / "target/release/examples/rewrite_floor"
BASELINE = REPO / "benches/baseline_extract.py"
TOKEN = "sim-token"
PAGE_SIZE = 500
SEED = 7
# About 45 keys per record, with type drift and keys appearing mid-range (not `wide`).
QUIRKS = "odd-keys,case-keys,new-keys,drift"
SIM_START_TIMEOUT = 30.0  # seconds until a simulator must have printed its address

# The targets of the issues.
TARGET_BASELINE_SPEEDUP = 10.0  # end to end records/s >= 10x the Python baseline
TARGET_CPU_PER_100K = 0.8  # CPU seconds of cube-extract per 100k records
TARGET_LATENCY_RATIO = 1.15  # wall <= 1.15 x ideal with latency, at --concurrency 8 and 16
LATENCY_CONCURRENCIES = (8, 16)
TARGET_RSS_MIB = 200.0  # peak RSS of the base run
TARGET_RSS_GROWTH = 1.10  # peak RSS with 2x the days <= 1.10 x the base run's
TARGET_SIZE_RATIO = 1.10  # output bytes <= 1.10 x DuckDB's zstd Parquet
# The throughput, latency, nightly and scope tables measure one file per day, the layout their targets
# (and their comparisons with DuckDB writing "the same layout") were set on; the layouts table
# (query_bench.py) measures the default, one file per month, against it.
PARTITIONING = "day"
TARGET_NIGHTLY_RATIO = 3.0  # a nightly run meeting a new column <= 3x one without a schema change
NIGHTLY_CAMPAIGNS = 4
NIGHTLY_FIRST = dt.date(2023, 1, 1)

_RUN_IDS = itertools.count(1)  # numbers the measured runs, so repeats keep their own logs

MIB = 1024 * 1024
MB = 1_000_000


# ============================================================================================
# Datasets and measured processes
# ============================================================================================


SIM_HELP = ""  # `cube_sim serve --help`, read once in main()


@dataclasses.dataclass(frozen=True)
class Dataset:
    campaigns: int
    rows_per_day: int
    first: dt.date
    days: int
    quirks: str = QUIRKS

    @property
    def last(self) -> dt.date:
        return self.first + dt.timedelta(days=self.days - 1)

    @property
    def campaign_ids(self) -> str:
        # Active campaigns are 101, 102, ...; 199 (archived) is never one of them below 99.
        return ",".join(str(101 + i) for i in range(self.campaigns))

    def data_flags(self) -> list[str]:
        return [
            "--seed", str(SEED), "--campaigns", str(self.campaigns),
            "--rows-per-day", str(self.rows_per_day), "--quirks", self.quirks,
        ]

    def describe(self) -> str:
        return (
            f"{self.campaigns} campaigns x {self.days} days ({self.first}..{self.last}), "
            f"--rows-per-day {self.rows_per_day}, --quirks {self.quirks}, --page-size {PAGE_SIZE}, --seed {SEED}"
        )


@dataclasses.dataclass
class Measured:
    returncode: int
    wall: float  # seconds, from spawn to reaped
    maxrss_kib: int  # ru_maxrss of the process (KiB on Linux)
    cpu: float  # user + system CPU seconds of the process
    machine_busy: float  # CPU seconds the whole machine was busy (all processes) during the run
    stdout: str
    stderr: str


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs have spent not idle since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10]) if len(fields) > 9 else 0  # already counted in user/nice
    return (sum(fields) - idle - guest) / os.sysconf("SC_CLK_TCK")


def measure(cmd: list[str], log_prefix: Path, timeout: float, server: "Simulator | None" = None) -> Measured:
    """Runs cmd to completion; wall time and peak RSS from wait4. Output goes to files (no pipes to drain).
    With server: the run is stopped (SIGKILL) as soon as that simulator is found gone, instead of letting a
    client retry against nothing until the timeout."""
    out_path, err_path = log_prefix.with_suffix(".out"), log_prefix.with_suffix(".err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        busy0 = machine_busy_seconds()
        start = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=err, cwd=REPO)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.25):
                if server.exit_status():
                    proc.kill()
                    return

        watcher = threading.Thread(target=watch, daemon=True) if server else None
        if watcher:
            watcher.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            done.set()
            timer.cancel()
        wall = time.perf_counter() - start
        busy = machine_busy_seconds() - busy0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        returncode=proc.returncode,
        wall=wall,
        maxrss_kib=usage.ru_maxrss,
        cpu=usage.ru_utime + usage.ru_stime,
        machine_busy=busy,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


class Simulator:
    """`cube_sim serve` on 127.0.0.1; ready once it has printed its address (read from its stdout)."""

    def __init__(self, dataset: Dataset, log: Path, latency_ms: int = 0, page_size: int = PAGE_SIZE,
                 extra: tuple[str, ...] = ()):
        cmd = [str(SIM_BIN), "serve", "--port", "0", "--page-size", str(page_size), *dataset.data_flags(), *extra]
        # Every page is generated and serialized before the simulator listens, so a run measures
        # the client, not the simulator's JSON generation (which competes for the same 2 cores).
        if "--preload-from" in SIM_HELP:
            cmd += ["--cache-pages", "--preload-from", str(dataset.first), "--preload-to", str(dataset.last)]
        if latency_ms:
            cmd += ["--latency-ms", str(latency_ms)]
        self._err = open(log, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._err, cwd=REPO)
        line = self._first_line()
        if not line.startswith("listening on "):
            self.close()
            raise RuntimeError(f"cube_sim did not start ({' '.join(cmd)}): {line!r}; see {log}")
        self.url = line.removeprefix("listening on ").strip()

    def _first_line(self) -> str:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(SIM_START_TIMEOUT):
                return "(nothing within %.0f s)" % SIM_START_TIMEOUT
        finally:
            sel.close()
        return self.proc.stdout.readline().decode(errors="replace")

    def cpu_seconds(self) -> float:
        """User + system CPU time the simulator has used so far."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def exit_status(self) -> str | None:
        """None while the simulator runs; else how it ended (it should never end on its own)."""
        rc = self.proc.poll()
        if rc is None:
            return None
        return f"killed by signal {-rc}" if rc < 0 else f"exit {rc}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._err.close()

    def __enter__(self) -> "Simulator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_DUMP_PREFIX = re.compile(rb'^\{"__campaign_id":\d+,"__date":"[0-9-]+",')


@dataclasses.dataclass
class Dump:
    records: int
    json_bytes: int  # compact JSON of the records, bookkeeping keys and newlines excluded
    keys: int | None  # distinct keys over all records (None: not counted)
    seconds: float


def dump_ndjson(dataset: Dataset, log: Path, path: Path | None = None, with_partition: Path | None = None,
                count_keys: bool = False) -> Dump:
    """The dataset's records as NDJSON: into path with the bookkeeping keys `__campaign_id`/`__date`
    stripped, into with_partition as dumped (with them). Both None: count only."""
    cmd = [
        str(SIM_BIN), "dump", "--campaign", dataset.campaign_ids,
        "--from", dataset.first.isoformat(), "--to", dataset.last.isoformat(), *dataset.data_flags(),
    ]
    records = json_bytes = 0
    keys: set[str] = set()
    start = time.perf_counter()
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=REPO, bufsize=1 << 20)
        out = open(path, "wb", buffering=1 << 20) if path else None
        out_raw = open(with_partition, "wb", buffering=1 << 20) if with_partition else None
        try:
            for line in proc.stdout:
                if not line.endswith(b"\n"):
                    line += b"\n"
                m = _DUMP_PREFIX.match(line)
                if m:
                    record = b"{" + line[m.end():]
                else:  # keys in another order, or a record with no keys of its own
                    obj = json.loads(line)
                    obj.pop("__campaign_id", None)
                    obj.pop("__date", None)
                    record = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
                if count_keys:
                    keys.update(json.loads(record))
                records += 1
                json_bytes += len(record) - 1
                if out:
                    out.write(record)
                if out_raw:
                    out_raw.write(line)
        finally:
            for f in (out, out_raw):
                if f:
                    f.close()
            rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"cube_sim dump failed with exit {rc}: see {log}")
    return Dump(records, json_bytes, len(keys) if count_keys else None, time.perf_counter() - start)


def parquet_bytes(root: Path) -> tuple[int, int]:
    """(bytes, files) of every .parquet file under root."""
    total = files = 0
    for p in root.rglob("*.parquet"):
        total += p.stat().st_size
        files += 1
    return total, files


def file_system(path: Path) -> str:
    """The type of the file system `path` is on (from /proc/mounts), e.g. "ext4" or "tmpfs"."""
    best, kind = "", "?"
    try:
        target = str(path.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and (target == fields[1] or target.startswith(fields[1].rstrip("/") + "/")) \
                    and len(fields[1]) > len(best):
                best, kind = fields[1], fields[2]
    except OSError:
        pass
    return kind


# Folders holding what `fresh` moved out of the way, deleted when the benchmark ends.
_TRASH: list[Path] = []


def fresh(path: Path) -> Path:
    """Makes way for a new `path`: what is there is moved into a trash folder beside it, deleted
    only when the benchmark ends (`empty_trash`). Deleting thousands of files just before a
    measured run would tax that run: ext4 without a journal (as on this project's machine) skips
    every inode freed in the last 60 s (up to 6 minutes) each time it creates a file, so the run that follows a mass
    deletion pays for it in kernel time, and every run that writes files (DuckDB's too) did."""
    if path.exists() or path.is_symlink():
        trash = path.parent / f".bench-trash-{os.getpid()}"
        if trash not in _TRASH:
            trash.mkdir(parents=True, exist_ok=True)
            _TRASH.append(trash)
        path.rename(trash / f"{len(list(trash.iterdir())):04d}-{path.name}")
    return path


def empty_trash() -> None:
    for trash in _TRASH:
        shutil.rmtree(trash, ignore_errors=True)
    _TRASH.clear()


# ============================================================================================
# Contenders
# ============================================================================================


@dataclasses.dataclass
class Row:
    name: str
    records: int | None = None
    seconds: float | None = None
    json_bytes: int | None = None
    maxrss_kib: int | None = None
    out_bytes: int | None = None
    files: int | None = None
    cpu: float | None = None
    server_cpu: float | None = None
    other_cpu: float | None = None  # CPU seconds of everything else on the machine during the run
    notes: list[str] = dataclasses.field(default_factory=list)
    failed: str | None = None
    report: dict | None = None

    @property
    def rps(self) -> float | None:
        return self.records / self.seconds if self.records and self.seconds else None

    @property
    def mbps(self) -> float | None:
        return self.json_bytes / MB / self.seconds if self.json_bytes and self.seconds else None

    @property
    def rss_mib(self) -> float | None:
        return self.maxrss_kib / 1024 if self.maxrss_kib else None


def check_records(row: Row, expected: int | None) -> None:
    if expected is not None and row.records is not None and row.records != expected:
        row.notes.append(f"**{row.records} records, expected {expected}**")


def run_cube_extract(
    name: str, dataset: Dataset, work: Path, concurrency: int, timeout: float, latency_ms: int = 0,
    page_size: int = PAGE_SIZE,
) -> Row:
    row = Row(name)
    tag = f"{next(_RUN_IDS):02d}-{name.replace(' ', '_')}"
    dest = fresh(work / f"out-{name.replace(' ', '_')}")
    report_path = fresh(work / f"report-{tag}.json")
    with Simulator(dataset, work / f"sim-{tag}.log", latency_ms, page_size) as sim:
        cpu0 = sim.cpu_seconds()
        m = measure(
            [
                EXTRACT_BIN, "call-outcomes", "--partitioning", PARTITIONING, "--base-url", sim.url, "--token", TOKEN,
                "--campaign", dataset.campaign_ids, "--from", dataset.first.isoformat(),
                "--to", dataset.last.isoformat(), "--dest", dest, "--concurrency", str(concurrency),
                "--report", report_path, "-q",
            ],
            work / f"run-{tag}",
            timeout,
            server=sim,
        )
        sim_gone = sim.exit_status()
        row.server_cpu = None if sim_gone else sim.cpu_seconds() - cpu0
    row.seconds, row.maxrss_kib, row.cpu = m.wall, m.maxrss_kib, m.cpu
    row.other_cpu = max(0.0, m.machine_busy - m.cpu - (row.server_cpu or 0.0))
    try:
        row.report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        row.report = None
    if m.returncode != 0 or row.report is None:
        row.failed = f"exit {m.returncode}: {m.stderr.strip()[-300:] or '(no stderr)'}"
        if sim_gone:
            row.failed = f"the simulator ended during the run ({sim_gone}); cube-extract {row.failed}"
        return row
    row.records = row.report.get("rows")
    row.out_bytes, row.files = parquet_bytes(dest / "call_outcomes")
    rewritten = row.report.get("files_rewritten") or 0
    row.notes.append(
        f"{row.report.get('pages')} pages, {row.report.get('requests')} requests, "
        f"{rewritten} files rewritten"
    )
    return row


@dataclasses.dataclass
class SnapshotRow:
    customers: int
    measured: Measured | None = None
    rows: int | None = None
    row_groups: int | None = None
    failed: str | None = None

    def records_per_s(self) -> float | None:
        return self.rows / self.measured.wall if self.rows and self.measured else None

    def rss_mib(self) -> float | None:
        return self.measured.maxrss_kib / 1024 if self.measured else None


def run_snapshot(customers: int, work: Path, concurrency: int, timeout: float) -> SnapshotRow:
    """One CRM's customers snapshot (`cube-extract customers --crm 11:B2C`) of `customers` records,
    streamed into one file of several row groups."""
    row = SnapshotRow(customers)
    dest = fresh(work / "out-snapshot")
    report_path = fresh(work / "report-snapshot.json")
    log = work / "sim-snapshot.log"
    cmd = [str(SIM_BIN), "serve", "--port", "0", "--page-size", str(PAGE_SIZE), "--campaigns", "1",
           "--customers-per-crm", str(customers)]
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=REPO)
        try:
            line = proc.stdout.readline().decode(errors="replace")
            if not line.startswith("listening on "):
                row.failed = f"cube_sim did not start: {line!r}"
                return row
            url = line.removeprefix("listening on ").strip()
            m = measure([EXTRACT_BIN, "customers", "--base-url", url, "--token", TOKEN, "--crm", "11:B2C",
                         "--dest", dest, "--concurrency", str(concurrency), "--report", report_path, "-q"],
                        work / "run-snapshot", timeout)
        finally:
            proc.kill()
            proc.wait()
    row.measured = m
    if m.returncode != 0:
        row.failed = f"exit {m.returncode}: {m.stderr.strip()[-300:]}"
        return row
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(dest / "customers/data_owner_id=11/crm_type=B2C/part-00000.parquet").metadata
    row.rows, row.row_groups = meta.num_rows, meta.num_row_groups
    if row.rows != customers:
        row.failed = f"{row.rows} rows written of {customers} customers"
    return row


@dataclasses.dataclass
class NightlyRow:
    """A year of history, then nightly runs with and without a schema change."""
    dataset: Dataset
    history: Measured | None = None
    history_files: int | None = None
    plain: list[float] = dataclasses.field(default_factory=list)  # wall s of nightly runs, no change
    changed: list[float] = dataclasses.field(default_factory=list)  # wall s of nightly runs, one new column
    plain_cpu: list[float] = dataclasses.field(default_factory=list)
    changed_cpu: list[float] = dataclasses.field(default_factory=list)
    rewritten: int | None = None
    # wall s of examples/rewrite_floor on a copy that the changed run would rewrite: the file operations alone
    floor: list[float] = dataclasses.field(default_factory=list)
    failed: str | None = None
    where: str = ""  # the file system the copies were on

    @property
    def ratio(self) -> float | None:
        if self.failed or not self.plain or not self.changed:
            return None
        return statistics.median(self.changed) / statistics.median(self.plain)

    @property
    def floor_ratio(self) -> float | None:
        """The ratio a nightly run with a new column would reach if its rewrites cost only their file operations."""
        if self.failed or not self.plain or not self.floor:
            return None
        return (statistics.median(self.plain) + statistics.median(self.floor)) / statistics.median(self.plain)


def run_nightly(dataset: Dataset, work: Path, concurrency: int, timeout: float, repeat: int) -> NightlyRow:
    """Extracts `dataset` (the history), then, on `repeat` copies of it: the next day (no schema
    change), then the day after, where a new key appears (every history file is rewritten); and, on
    a copy taken before that, only the file operations of those rewrites (examples/rewrite_floor)."""
    row = NightlyRow(dataset, where=file_system(work))
    plain_day = dataset.last + dt.timedelta(days=1)
    changed_day = plain_day + dt.timedelta(days=1)
    history = fresh(work / "out-nightly-history")

    def extract(sim: Simulator, first: dt.date, last: dt.date, dest: Path, tag: str) -> tuple[Measured, dict | None]:
        report = fresh(work / f"report-nightly-{tag}.json")
        m = measure([EXTRACT_BIN, "call-outcomes", "--partitioning", PARTITIONING, "--base-url", sim.url, "--token", TOKEN,
                     "--campaign", dataset.campaign_ids, "--from", first.isoformat(), "--to", last.isoformat(),
                     "--dest", dest, "--concurrency", str(concurrency), "--report", report, "-q"],
                    work / f"run-nightly-{tag}", timeout, server=sim)
        try:
            return m, json.loads(report.read_text())
        except (OSError, ValueError):
            return m, None

    with Simulator(dataset, work / "sim-nightly.log", extra=("--new-column-from", changed_day.isoformat())) as sim:
        m, _ = extract(sim, dataset.first, dataset.last, history, "history")
        row.history = m
        if m.returncode != 0:
            row.failed = f"history run: exit {m.returncode}: {m.stderr.strip()[-300:]}"
            return row
        row.history_files = parquet_bytes(history / "call_outcomes")[1]
        for i in range(repeat):
            dest = fresh(work / f"out-nightly-{i}")
            shutil.copytree(history, dest)
            floor = work / f"out-nightly-floor-{i}"
            for day, walls, cpus, name in ((plain_day, row.plain, row.plain_cpu, "plain"),
                                           (changed_day, row.changed, row.changed_cpu, "changed")):
                if name == "changed":
                    shutil.copytree(dest, fresh(floor))
                m, report = extract(sim, day, day, dest, f"{name}-{i}")
                if m.returncode != 0 or report is None:
                    row.failed = f"nightly run of {day}: exit {m.returncode}: {m.stderr.strip()[-300:]}"
                    return row
                walls.append(m.wall)
                cpus.append(m.cpu)
                if name == "changed":
                    row.rewritten = report.get("files_rewritten")
                    if not any(c.get("change") == "added" for c in report.get("schema_changes") or []):
                        row.failed = f"the nightly run of {day} met no new column"
                        return row
            m = measure([FLOOR_BIN, floor, "call_outcomes"], work / f"run-nightly-floor-{i}", timeout)
            if m.returncode == 0:
                row.floor.append(m.wall)
            else:
                print(f"rewrite_floor failed (exit {m.returncode}): {m.stderr.strip()[-300:]}", file=sys.stderr)
            fresh(dest)
            fresh(floor)
    return row


def run_baseline(dataset: Dataset, work: Path, timeout: float) -> Row:
    row = Row("Python baseline (requests + pyarrow)")
    tag = f"{next(_RUN_IDS):02d}-baseline"
    dest = fresh(work / "out-baseline")
    with Simulator(dataset, work / f"sim-{tag}.log") as sim:
        cpu0 = sim.cpu_seconds()
        m = measure(
            [
                sys.executable, BASELINE, "--base-url", sim.url, "--token", TOKEN,
                "--campaign", dataset.campaign_ids, "--from", dataset.first.isoformat(),
                "--to", dataset.last.isoformat(), "--dest", dest,
            ],
            work / f"run-{tag}",
            timeout,
            server=sim,
        )
        sim_gone = sim.exit_status()
        row.server_cpu = None if sim_gone else sim.cpu_seconds() - cpu0
    row.seconds, row.maxrss_kib, row.cpu = m.wall, m.maxrss_kib, m.cpu
    row.other_cpu = max(0.0, m.machine_busy - m.cpu - (row.server_cpu or 0.0))
    if m.returncode != 0:
        row.failed = f"exit {m.returncode}: {m.stderr.strip()[-300:] or '(no stderr)'}"
        if sim_gone:
            row.failed = f"the simulator ended during the run ({sim_gone}); the baseline {row.failed}"
        return row
    summary = json.loads(m.stdout.strip().splitlines()[-1])
    row.records = summary["rows"]
    row.out_bytes, row.files = parquet_bytes(dest / "call_outcomes")
    row.notes.append(f"sequential, {summary['pages']} pages")
    return row


def run_converter(engine: str, ndjson: Path, work: Path, timeout: float, expected_columns: int | None) -> Row:
    name = {
        "duckdb": "DuckDB read_json_auto -> COPY parquet (conversion only)",
        "polars": "Polars read_ndjson -> write_parquet (conversion only)",
        "duckdb-partitioned": "DuckDB, one file per (campaign, day) like cube-extract (conversion only)",
    }[engine]
    row = Row(name)
    dst = fresh(work / (engine if engine == "duckdb-partitioned" else f"{engine}.parquet"))
    m = measure(
        [sys.executable, Path(__file__), "--_convert", engine, ndjson, dst],
        work / f"run-{next(_RUN_IDS):02d}-{engine}",
        timeout,
    )
    row.maxrss_kib, row.cpu = m.maxrss_kib, m.cpu
    row.other_cpu = max(0.0, m.machine_busy - m.cpu)  # over the whole process, imports included
    if m.returncode != 0:
        last = m.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        row.failed = f"exit {m.returncode}: {last[0][:300]}"
        return row
    result = json.loads(m.stdout.strip().splitlines()[-1])
    row.seconds, row.records = result["seconds"], result["rows"]
    row.out_bytes, row.files = parquet_bytes(dst) if dst.is_dir() else (dst.stat().st_size, 1)
    row.notes.append(f"process wall {m.wall:.2f} s, {result['columns']} columns")
    if expected_columns is not None and result["columns"] != expected_columns:
        row.notes.append(f"**{result['columns']} columns, the records have {expected_columns} keys**")
    return row


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def convert(engine: str, src: str, dst: str) -> None:
    """Child process of run_converter: the conversion only, timed from inside."""
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        start = time.perf_counter()
        con.execute(
            f"COPY (SELECT * FROM read_json_auto({_sql_literal(src)})) "
            f"TO {_sql_literal(dst)} (FORMAT parquet, COMPRESSION zstd)"
        )
        seconds = time.perf_counter() - start
        rows, columns = con.execute(
            f"SELECT count(*), (SELECT count(*) FROM parquet_schema({_sql_literal(dst)})) - 1 "
            f"FROM read_parquet({_sql_literal(dst)})"
        ).fetchone()
    elif engine == "duckdb-partitioned":
        # The NDJSON as dumped (with __campaign_id/__date), written as one file per (campaign, day), the
        # partition values only in the path (DuckDB leaves partition columns out of the files by default).
        import duckdb

        con = duckdb.connect()
        start = time.perf_counter()
        con.execute(
            f"COPY (SELECT * FROM read_json_auto({_sql_literal(src)})) TO {_sql_literal(dst)} "
            f"(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (__campaign_id, __date))"
        )
        seconds = time.perf_counter() - start
        glob = _sql_literal(dst + "/**/*.parquet")
        rows = con.execute(f"SELECT count(*) FROM read_parquet({glob}, hive_partitioning = false)").fetchone()[0]
        columns = len(con.execute(f"DESCRIBE SELECT * FROM read_parquet({glob}, hive_partitioning = false)").fetchall())
    elif engine == "polars":
        import polars as pl

        start = time.perf_counter()
        # The whole file for type inference: a sample would miss the types that drift late in the range.
        df = pl.read_ndjson(src, infer_schema_length=None)
        df.write_parquet(dst, compression="zstd")
        seconds = time.perf_counter() - start
        rows, columns = df.height, df.width
    else:
        raise SystemExit(f"unknown engine {engine}")
    print(json.dumps({"seconds": seconds, "rows": rows, "columns": columns}))


# ============================================================================================
# Tables and verdicts
# ============================================================================================


def fmt(value, spec: str, missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def throughput_table(rows: list[Row], reference: Row) -> list[str]:
    lines = [
        "| contender | records | time s | records/s | MB/s | peak RSS MiB | output MiB (files) "
        "| cube-extract speed-up | output vs cube-extract | CPU s | server CPU s | other CPU s | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r.failed:
            lines.append(f"| {r.name} | – | – | – | – | {fmt(r.rss_mib, '.0f')} | – | – | – | – | – | – | FAILED: {r.failed} |")
            continue
        speedup = (
            reference.rps / r.rps if reference.rps and r.rps and r is not reference else None
        )
        size_ratio = (
            r.out_bytes / reference.out_bytes if r.out_bytes and reference.out_bytes and r is not reference else None
        )
        out = f"{r.out_bytes / MIB:.1f} ({r.files})" if r.out_bytes is not None else "–"
        lines.append(
            f"| {r.name} | {fmt(r.records, ',')} | {fmt(r.seconds, '.2f')} | {fmt(r.rps, ',.0f')} "
            f"| {fmt(r.mbps, '.1f')} | {fmt(r.rss_mib, '.0f')} | {out} "
            f"| {fmt(speedup, '.2f', '')}{'x' if speedup else ''} "
            f"| {fmt(size_ratio, '.2f', '')}{'x' if size_ratio else ''} "
            f"| {fmt(r.cpu, '.1f')} | {fmt(r.server_cpu, '.1f')} | {fmt(r.other_cpu, '.1f')} | {'; '.join(r.notes)} |"
        )
    return lines


@dataclasses.dataclass
class LatencyRow:
    row: Row
    dataset_label: str
    latency_ms: int
    concurrency: int
    no_latency_seconds: float | None

    @property
    def pages(self) -> int | None:
        return self.row.report.get("pages") if self.row.report else None

    @property
    def requests(self) -> int | None:
        return self.row.report.get("requests") if self.row.report else None

    @property
    def ideal(self) -> float | None:
        return self.pages * self.latency_ms / 1000 / self.concurrency if self.pages else None

    @property
    def ratio(self) -> float | None:
        return self.row.seconds / self.ideal if self.ideal and not self.row.failed else None


def latency_table(rows: list[LatencyRow]) -> list[str]:
    lines = [
        "| dataset | latency ms | concurrency | records | pages | requests | ideal s (pages x latency / concurrency) "
        "| wall s | wall / ideal | same run without latency s | added by latency s | peak RSS MiB | other CPU s "
        "| notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for lr in rows:
        r = lr.row
        if r.failed:
            lines.append(f"| {lr.dataset_label} | {lr.latency_ms} | {lr.concurrency} | FAILED: {r.failed} |||||||||")
            continue
        added = r.seconds - lr.no_latency_seconds if lr.no_latency_seconds is not None else None
        lines.append(
            f"| {lr.dataset_label} | {lr.latency_ms} | {lr.concurrency} | {fmt(r.records, ',')} | {fmt(lr.pages, ',')} "
            f"| {fmt(lr.requests, ',')} | {fmt(lr.ideal, '.2f')} | {r.seconds:.2f} | {fmt(lr.ratio, '.2f')}x "
            f"| {fmt(lr.no_latency_seconds, '.2f')} | {fmt(added, '.2f')} | {fmt(r.rss_mib, '.0f')} "
            f"| {fmt(r.other_cpu, '.1f')} | {'; '.join(r.notes)} |"
        )
    return lines


def verdict(ok: bool | None, text: str) -> str:
    tag = "n/a " if ok is None else ("PASS" if ok else "FAIL")
    return f"- {tag} {text}"


def verdicts(cube: Row, baseline: Row | None, duck: Row | None, doubled: Row | None,
             latency: list[LatencyRow], duck_same_layout: Row | None = None,
             nightly: NightlyRow | None = None) -> list[str]:
    if cube.failed:
        return [verdict(None, f"every target: cube-extract failed ({cube.failed})")]
    out = []
    # 1. records/s against the baseline
    if baseline and baseline.rps and cube.rps:
        x = cube.rps / baseline.rps
        out.append(verdict(x >= TARGET_BASELINE_SPEEDUP,
                           f"end to end {cube.rps:,.0f} records/s = {x:.1f}x the Python baseline "
                           f"({baseline.rps:,.0f}/s); target >= {TARGET_BASELINE_SPEEDUP:.0f}x"))
    else:
        out.append(verdict(None, "end to end vs Python baseline: not measured"))
    # 2. no slower than DuckDB converting the same records into the same layout (one file per
    # (campaign, day)), and (informative) into one file.
    if duck_same_layout and duck_same_layout.seconds and cube.seconds:
        x = cube.seconds / duck_same_layout.seconds
        out.append(verdict(x <= 1.0,
                           f"end to end {cube.seconds:.2f} s vs DuckDB conversion only into the same layout "
                           f"{duck_same_layout.seconds:.2f} s ({x:.2f}x); target <= 1.00x"))
    else:
        out.append(verdict(None, "end to end vs DuckDB conversion only into the same layout: not measured"))
    if duck and duck.seconds and cube.seconds:
        out.append(verdict(None, f"(info) end to end {cube.seconds:.2f} s vs DuckDB conversion only into one file "
                                 f"{duck.seconds:.2f} s ({cube.seconds / duck.seconds:.2f}x)"))
    # 2b. CPU per 100k records
    if cube.cpu and cube.records:
        per = cube.cpu / cube.records * 100_000
        out.append(verdict(per <= TARGET_CPU_PER_100K,
                           f"{per:.2f} CPU s per 100k records ({cube.cpu:.1f} CPU s); target <= {TARGET_CPU_PER_100K}"))
    # 3. latency, at each concurrency
    for lr in latency:
        if lr.ratio:
            out.append(verdict(lr.ratio <= TARGET_LATENCY_RATIO,
                               f"{lr.latency_ms} ms latency, --concurrency {lr.concurrency}: wall "
                               f"{lr.row.seconds:.2f} s = {lr.ratio:.2f}x the ideal {lr.ideal:.2f} s; "
                               f"target <= {TARGET_LATENCY_RATIO}x"))
        else:
            out.append(verdict(None, f"latency at --concurrency {lr.concurrency}: not measured ({lr.row.failed})"))
    if not latency:
        out.append(verdict(None, "latency: not measured"))
    # 4. peak RSS
    if cube.rss_mib:
        out.append(verdict(cube.rss_mib < TARGET_RSS_MIB,
                           f"peak RSS {cube.rss_mib:.0f} MiB on {cube.records:,} records; target < {TARGET_RSS_MIB:.0f} MiB"))
    # 5. RSS growth with 2x records
    if doubled and not doubled.failed and doubled.rss_mib and cube.rss_mib:
        growth = doubled.rss_mib / cube.rss_mib
        out.append(verdict(growth <= TARGET_RSS_GROWTH,
                           f"peak RSS with twice the days ({fmt(doubled.records, ',')} records) {doubled.rss_mib:.0f} MiB "
                           f"= {growth:.2f}x the base run; target <= {TARGET_RSS_GROWTH:.2f}x"))
    else:
        out.append(verdict(None, "peak RSS growth with 2x the days: not measured"))
    # 6. output size
    if duck and duck.out_bytes and cube.out_bytes:
        ratio = cube.out_bytes / duck.out_bytes
        out.append(verdict(ratio <= TARGET_SIZE_RATIO,
                           f"output {cube.out_bytes / MIB:.1f} MiB in {cube.files} files = {ratio:.2f}x DuckDB's "
                           f"zstd Parquet ({duck.out_bytes / MIB:.1f} MiB, one file); target <= {TARGET_SIZE_RATIO:.2f}x"))
    else:
        out.append(verdict(None, "output size vs DuckDB: not measured"))
    # 6b. the same, against DuckDB writing the contract's layout (one file per partition): the
    # contract fixes that layout, and each file repeats its footer and dictionaries.
    if duck_same_layout and not duck_same_layout.failed and duck_same_layout.out_bytes and cube.out_bytes:
        ratio = cube.out_bytes / duck_same_layout.out_bytes
        out.append(verdict(ratio <= TARGET_SIZE_RATIO,
                           f"output {cube.out_bytes / MIB:.1f} MiB = {ratio:.2f}x DuckDB's zstd Parquet in the same "
                           f"layout ({duck_same_layout.out_bytes / MIB:.1f} MiB in {duck_same_layout.files} files); "
                           f"target <= {TARGET_SIZE_RATIO:.2f}x"))
    # 7. a nightly run that meets a new column after a year of history
    if nightly and nightly.ratio:
        out.append(verdict(nightly.ratio <= TARGET_NIGHTLY_RATIO,
                           f"nightly run meeting one new column after {nightly.history_files} files of history "
                           f"({nightly.rewritten} rewritten): {statistics.median(nightly.changed):.2f} s = "
                           f"{nightly.ratio:.2f}x a nightly run without a schema change "
                           f"({statistics.median(nightly.plain):.2f} s); target <= {TARGET_NIGHTLY_RATIO:.0f}x"))
    elif nightly:
        out.append(verdict(False if nightly.failed else None, f"nightly run with a new column: {nightly.failed or 'not measured'}"))
    if nightly and nightly.floor_ratio:
        out.append(verdict(None, f"(info) the file operations of those rewrites alone (examples/rewrite_floor, no "
                                 f"Parquet work) took {statistics.median(nightly.floor):.2f} s: with nothing else, "
                                 f"the run with a new column would be {nightly.floor_ratio:.2f}x the run without"))
    return out


# ============================================================================================
# Main
# ============================================================================================


def median_row(runs: list[Row]) -> Row:
    """The successful run with the median time (the lower one of an even count), with the highest peak
    RSS of the successful runs; failed runs are named in its notes. All failed: the first failure."""
    ok = [r for r in runs if not r.failed]
    failed = [r for r in runs if r.failed]
    if not ok:
        return failed[0]
    ordered = sorted(ok, key=lambda r: r.seconds)
    pick = ordered[(len(ordered) - 1) // 2]
    if len(ok) > 1:
        pick.maxrss_kib = max(r.maxrss_kib for r in ok)
        pick.notes.append(
            f"median of {len(ok)} runs: " + ", ".join(f"{r.seconds:.2f}" for r in ok) + " s; "
            f"peak RSS: the highest of them (" + ", ".join(f"{r.rss_mib:.0f}" for r in ok) + " MiB)"
        )
    for r in failed:
        pick.notes.append(f"**a further run FAILED and is left out: {r.failed}**")
    return pick


def git_state() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for pkg in ("duckdb", "polars", "pyarrow", "requests"):
        try:
            parts.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            parts.append(f"{pkg} missing")
    return f"Python {platform.python_version()}, " + ", ".join(parts)


def load() -> str:
    return "%.2f %.2f %.2f" % os.getloadavg()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny dataset; runs in seconds (smoke test)")
    p.add_argument("--campaigns", type=int, help="campaigns 101.. (full: 10, quick: 3)")
    p.add_argument("--days", type=int, help="days from --from (full: 30, quick: 14)")
    p.add_argument("--from", dest="first", type=dt.date.fromisoformat, help="first day (full: 2024-03-01, quick: 2024-03-08)")
    p.add_argument("--rows-per-day", type=int, help="mean rows per (campaign, day) (full: 1000, quick: 100)")
    p.add_argument("--concurrency", type=int, default=16, help="cube-extract --concurrency (default 16)")
    p.add_argument("--latency-ms", type=int, default=50, help="simulator latency of table 2 (default 50; 0 skips it)")
    p.add_argument("--latency-page-size", type=int, default=50,
                   help="also an informative latency row on the same records in pages this small (default 50; 0 skips)")
    p.add_argument("--repeat", type=int,
                   help="runs of cube-extract, DuckDB and Polars in table 1; the median is shown (full: 3, quick: 1)")
    p.add_argument("--min-records", type=int, help="warn when the dataset is smaller (full: 300000)")
    p.add_argument("--skip-baseline", action="store_true", help="leave out the (slow) Python baseline")
    p.add_argument("--skip-doubled", action="store_true", help="leave out the run over twice the days")
    p.add_argument("--nightly-days", type=int,
                   help="days of history before the nightly runs (full: 364, quick: 30; 0 skips them)")
    p.add_argument("--no-nightly-tmpfs", dest="nightly_tmpfs", action="store_false",
                   help="skip the nightly runs' repeat on /dev/shm (for information beside the work directory's)")
    p.add_argument("--nightly-rows-per-day", type=int, default=50,
                   help="mean rows per (campaign, day) of the nightly history (default 50)")
    p.add_argument("--no-duckdb-partitioned", dest="duckdb_partitioned", action="store_false",
                   help="leave out the DuckDB row that writes one file per (campaign, day) (a target's bar)")
    p.add_argument("--snapshot-customers", type=int,
                   help="customers of the snapshot run (full: 200000, quick: 20000; 0 skips it)")
    p.add_argument("--skip-scopes", action="store_true",
                   help="leave out the many-campaigns (--scope) and throttling tables")
    p.add_argument("--only-scopes", action="store_true",
                   help="run only the many-campaigns (--scope) and throttling tables")
    p.add_argument("--skip-queries", action="store_true", help="leave out the query table")
    p.add_argument("--only-queries", action="store_true", help="run only the query table")
    p.add_argument("--skip-delta", action="store_true", help="leave out the Delta table")
    p.add_argument("--only-delta", action="store_true", help="run only the Delta table")
    p.add_argument("--timeout", type=float, default=3600, help="seconds any one measured process may take")
    p.add_argument("--work-dir", type=Path, default=REPO / "target/bench", help="scratch space (emptied first)")
    p.add_argument("--results", type=Path, default=REPO / "target/bench-results.md")
    p.add_argument("--keep", action="store_true", help="keep the scratch space (outputs, NDJSON, logs)")
    p.add_argument("--_convert", nargs=3, metavar=("ENGINE", "SRC", "DST"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = args.quick
    args.campaigns = args.campaigns or (3 if quick else 10)
    args.days = args.days or (14 if quick else 30)
    args.first = args.first or (dt.date(2024, 3, 8) if quick else dt.date(2024, 3, 1))
    args.repeat = args.repeat or (1 if quick else 3)
    args.rows_per_day = args.rows_per_day or (100 if quick else 1000)
    args.min_records = args.min_records if args.min_records is not None else (0 if quick else 300_000)
    if args.nightly_days is None:
        args.nightly_days = 30 if quick else 364
    if args.snapshot_customers is None:
        args.snapshot_customers = 20_000 if quick else 200_000
    if not 1 <= args.campaigns <= 98:
        p.error("--campaigns must be 1..98 (ids 101..198; 199 is the archived one)")
    return args


def main(argv: list[str]) -> int:
    global EXTRACT_BIN, SIM_BIN, FLOOR_BIN
    args = parse_args(argv)
    if args._convert:
        convert(*args._convert)
        return 0
    atexit.register(empty_trash)
    for binary in (EXTRACT_BIN, SIM_BIN, FLOOR_BIN):
        if not binary.exists():
            print(f"{binary} is missing: run `cargo build --release --bin cube-extract --example cube_sim "
                  f"--example rewrite_floor` "
                  f"(or `make bench`)", file=sys.stderr)
            return 2
    global SIM_HELP
    sim_help = subprocess.run([SIM_BIN, "serve", "--help"], capture_output=True, text=True).stdout
    SIM_HELP = sim_help
    if args.latency_ms and "--latency-ms" not in sim_help:
        print("note: this cube_sim has no --latency-ms yet; the latency table is skipped", file=sys.stderr)
        args.latency_ms = 0

    work = args.work_dir
    fresh(work)
    work.mkdir(parents=True)
    # Every run uses copies taken now, so a build by someone else during the benchmark cannot swap them.
    (work / "bin").mkdir()
    binaries = []
    for binary in (EXTRACT_BIN, SIM_BIN, FLOOR_BIN):
        shown = binary.relative_to(REPO) if binary.is_relative_to(REPO) else binary
        built = dt.datetime.fromtimestamp(binary.stat().st_mtime).astimezone()
        binaries.append(f"{shown} (built {built:%Y-%m-%d %H:%M:%S})")
    EXTRACT_BIN = Path(shutil.copy2(EXTRACT_BIN, work / "bin" / EXTRACT_BIN.name))
    SIM_BIN = Path(shutil.copy2(SIM_BIN, work / "bin" / SIM_BIN.name))
    FLOOR_BIN = Path(shutil.copy2(FLOOR_BIN, work / "bin" / FLOOR_BIN.name))
    base = Dataset(args.campaigns, args.rows_per_day, args.first, args.days)
    doubled_ds = dataclasses.replace(base, days=args.days * 2)
    started = dt.datetime.now().astimezone()
    load_start = load()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    def only(what: str, tables: list[str], verdicts_: list[str]) -> int:
        """Writes the results of a run of one table group alone (`--only-*`)."""
        text = "\n".join([f"# cube-extract benchmark, {what} only ({started:%Y-%m-%d %H:%M %z}; commit "
                          f"{git_state()}; load {load_start} -> {load()})", "",
                          *tables, "## Targets", "", *verdicts_, ""])
        print(text)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(text)
        return 0

    me = sys.modules[__name__]
    if args.only_queries:
        queries = query_bench.run_queries(me, work, args.timeout, args.quick)
        return only("queries", query_bench.tables(queries), query_bench.verdicts(me, queries))
    if args.only_delta:
        delta = delta_bench.run_delta(me, work, args.timeout, args.quick)
        return only("Delta tables", delta_bench.tables(delta), delta_bench.verdicts(me, delta))
    if args.only_scopes:
        many = scope_bench.run_many_campaigns(me, work, args.timeout, args.quick)
        runs = (*many, [(ra, scope_bench.run_throttling(me, work, args.timeout, ra)) for ra in (1, 0)])
        return only("scopes", scope_bench.tables(*runs), scope_bench.verdicts(me, *runs))
    say(f"dataset: {base.describe()}")
    ndjson = work / "records.ndjson"
    ndjson_partitioned = work / "records-with-partition.ndjson"
    dump = dump_ndjson(base, work / "dump.log", ndjson,
                       ndjson_partitioned if args.duckdb_partitioned else None, count_keys=True)
    n_records, n_bytes = dump.records, dump.json_bytes
    say(f"dumped {n_records:,} records ({n_bytes / MB:.1f} MB of JSON, {dump.keys} distinct keys) "
        f"in {dump.seconds:.1f} s")
    warnings = []
    if n_records < args.min_records:
        warnings.append(f"the dataset has {n_records:,} records, fewer than {args.min_records:,}")

    def finish(row: Row, expected: int | None, json_bytes: int | None) -> Row:
        if not row.failed:
            row.json_bytes = json_bytes
            check_records(row, expected)
        say(f"{row.name}: " + (f"FAILED {row.failed}" if row.failed else
                               f"{row.seconds:.2f} s, {fmt(row.rss_mib, '.0f')} MiB peak RSS"))
        return row

    # ---- table 1 --------------------------------------------------------------------------
    cube = median_row([
        finish(run_cube_extract("cube-extract", base, work, args.concurrency, args.timeout), n_records, n_bytes)
        for _ in range(args.repeat)
    ])
    cube.name = f"**cube-extract** end to end (--concurrency {args.concurrency})"
    rows = [cube]
    baseline = None
    if not args.skip_baseline:
        say("Python baseline (sequential; the slow one)")
        baseline = finish(run_baseline(base, work, args.timeout), n_records, n_bytes)
        rows.append(baseline)
    duck = median_row([finish(run_converter("duckdb", ndjson, work, args.timeout, dump.keys), n_records, n_bytes)
                       for _ in range(args.repeat)])
    rows.append(duck)
    polars = median_row([finish(run_converter("polars", ndjson, work, args.timeout, dump.keys), n_records, n_bytes)
                         for _ in range(args.repeat)])
    rows.append(polars)
    duck_same_layout = None
    if args.duckdb_partitioned:
        duck_same_layout = median_row([finish(run_converter("duckdb-partitioned", ndjson_partitioned, work,
                                                            args.timeout, dump.keys), n_records, n_bytes)
                                       for _ in range(args.repeat)])
        rows.append(duck_same_layout)
    if not args.keep:
        for path in (ndjson, ndjson_partitioned, work / "duckdb.parquet", work / "polars.parquet",
                     work / "duckdb-partitioned"):
            fresh(path)

    doubled = None
    if not args.skip_doubled:
        d = dump_ndjson(doubled_ds, work / "dump-doubled.log")
        say(f"doubled dataset: {d.records:,} records ({d.json_bytes / MB:.1f} MB of JSON)")
        doubled = finish(run_cube_extract("cube-extract 2x", doubled_ds, work, args.concurrency, args.timeout),
                         d.records, d.json_bytes)
        doubled.name = f"cube-extract end to end, 2x the days ({doubled_ds.first}..{doubled_ds.last})"
        rows.append(doubled)

    # ---- table 2 --------------------------------------------------------------------------
    latency_rows: list[LatencyRow] = []
    if args.latency_ms:
        for concurrency in LATENCY_CONCURRENCIES:
            # A median, as for the throughput row: one run's wall time moves by more than a target's margin.
            lat = median_row([finish(run_cube_extract(f"cube-extract latency c{concurrency}", base, work,
                                                      concurrency, args.timeout, latency_ms=args.latency_ms),
                                     n_records, n_bytes)
                              for _ in range(args.repeat)])
            latency_rows.append(LatencyRow(lat, f"base (--page-size {PAGE_SIZE})", args.latency_ms, concurrency,
                                           None if cube.failed or concurrency != args.concurrency else cube.seconds))
        targets_latency = list(latency_rows)
        if args.latency_page_size:
            # The same records in many more, smaller pages: the wait per page then outweighs the work per
            # page, which shows whether the requests in flight really hide the latency.
            no_lat = finish(run_cube_extract("cube-extract small pages", base, work, args.concurrency, args.timeout,
                                             page_size=args.latency_page_size), n_records, n_bytes)
            lat = finish(run_cube_extract("cube-extract small pages latency", base, work, args.concurrency,
                                          args.timeout, latency_ms=args.latency_ms,
                                          page_size=args.latency_page_size), n_records, n_bytes)
            latency_rows.append(LatencyRow(lat, f"(info) base, --page-size {args.latency_page_size}",
                                           args.latency_ms, args.concurrency,
                                           None if no_lat.failed else no_lat.seconds))
    else:
        targets_latency = []
    # ---- table 3: a nightly run after a year of history ------------------------------------
    nightly = nightly_shm = None
    if args.nightly_days:
        nightly_ds = Dataset(NIGHTLY_CAMPAIGNS, args.nightly_rows_per_day, NIGHTLY_FIRST, args.nightly_days)
        say(f"nightly: history of {nightly_ds.describe()}")
        nightly = run_nightly(nightly_ds, work, args.concurrency, args.timeout, args.repeat)
        say("nightly: " + (f"FAILED {nightly.failed}" if nightly.failed else
                           f"{nightly.ratio:.2f}x ({nightly.changed} vs {nightly.plain} s)"))
        # The same on tmpfs, for information: it tells the tool's own cost from the file
        # system's (ext4 without a journal makes creating files dear after many deletions).
        shm = Path("/dev/shm")
        if args.nightly_tmpfs and shm.is_dir() and file_system(work) != "tmpfs":
            shm_work = shm / f"cube-bench-nightly-{os.getpid()}"
            shm_work.mkdir(exist_ok=True)
            try:
                nightly_shm = run_nightly(nightly_ds, shm_work, args.concurrency, args.timeout, args.repeat)
            finally:
                shutil.rmtree(shm_work, ignore_errors=True)
            say("nightly on tmpfs: " + (f"FAILED {nightly_shm.failed}" if nightly_shm.failed else
                                        f"{nightly_shm.ratio:.2f}x ({nightly_shm.changed} vs {nightly_shm.plain} s)"))
    # ---- table 4: a big snapshot -----------------------------------------------------------
    snapshot = None
    if args.snapshot_customers:
        snapshot = run_snapshot(args.snapshot_customers, work, args.concurrency, args.timeout)
        say("snapshot: " + (f"FAILED {snapshot.failed}" if snapshot.failed else
                            f"{snapshot.rows:,} customers in {snapshot.measured.wall:.2f} s, "
                            f"{snapshot.rss_mib():.0f} MiB peak RSS, {snapshot.row_groups} row groups"))
    # ---- tables 5 and 6: scopes (an account of many campaigns) and a throttling API -------------
    scope_runs = None
    if not args.skip_scopes:
        say("many campaigns: --scope campaign, then --scope account")
        many = scope_bench.run_many_campaigns(me, work, args.timeout, args.quick)
        throttled = [(ra, scope_bench.run_throttling(me, work, args.timeout, ra))
                     for ra in (1, 0)]
        scope_runs = (*many, throttled)
        say("many campaigns: " + ", ".join(f"{r.scope} {r.wall:.2f} s" if r.wall else r.scope for r in many))
    # ---- table 7: queries over a year of history ------------------------------------------
    queries = None
    if not args.skip_queries:
        say("queries: a year of history, then DuckDB and Polars over three layouts")
        queries = query_bench.run_queries(me, work, args.timeout, args.quick)
    # ---- table 8: Delta tables -------------------------------------------------------------
    delta = None
    if not args.skip_delta:
        say("Delta: a year of history as Parquet and as Delta, then nightly runs on the Delta history")
        delta = delta_bench.run_delta(me, work, args.timeout, args.quick)
    load_end = load()

    # ---- report ---------------------------------------------------------------------------
    lines = [
        f"# cube-extract benchmark{' (QUICK smoke run: the verdicts mean nothing)' if args.quick else ''}",
        "",
        f"- when: {started:%Y-%m-%d %H:%M %z}; commit {git_state()}; {os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.release()}; {versions()}",
        f"- load average (1/5/15 min) at start {load_start}, at end {load_end}: other work on the machine shares "
        f"its CPUs with every contender and the simulator",
        f"- dataset (all of table 1): {base.describe()}: **{n_records:,} records, "
        f"{n_bytes / MB:.1f} MB of JSON** ({n_bytes / max(n_records, 1):.0f} B per record, {dump.keys} distinct keys)",
        f"- binaries (copied at the start, all runs use the copies): {', '.join(binaries)}",
        f"- command: `{' '.join(['benches/run_bench.py', *argv]) if argv else 'benches/run_bench.py'}`",
        *(f"- WARNING: {w}" for w in warnings),
        "",
        "## Throughput (simulator on 127.0.0.1, no latency)",
        "",
        *throughput_table(rows, cube),
        "",
        "time: wall time of the process for cube-extract and the Python baseline (each against its own fresh "
        "simulator, which runs on the same CPUs); for DuckDB and Polars the conversion inside the process "
        "(NDJSON file already on disk and in the page cache, interpreter start and import excluded). "
        "MB/s = compact JSON bytes of the records / time. Peak RSS = ru_maxrss of the measured process (not the "
        "simulator). Speed-up = cube-extract records/s / the row's records/s. CPU = user+system CPU seconds "
        "of the measured process (for DuckDB and Polars including interpreter start and import). Server CPU = "
        f"simulator user+system CPU seconds during the run: on this {os.cpu_count()}-CPU machine the simulator "
        "competes with the API contenders for the same cores. Other CPU = CPU seconds the rest of the machine "
        "(other users' builds and tests, this script) used during the run: well above 0, the time is disturbed.",
        "",
    ]
    if cube.server_cpu and not cube.failed:
        floor = cube.server_cpu / (os.cpu_count() or 1)
        lines += [
            f"Simulator floor: serving these records cost the simulator {cube.server_cpu:.1f} CPU s, so no client "
            f"of this simulator on this {os.cpu_count()}-CPU machine can finish in less than {floor:.1f} s "
            f"({n_records / floor:,.0f} records/s), whatever its own cost.",
            "",
        ]
    if latency_rows:
        lines += [
            f"## Latency (every simulator answer waits {args.latency_ms} ms)",
            "",
            *latency_table(latency_rows),
            "",
            "ideal = pages x latency / concurrency (pages from the run's report). \"same run without latency\": "
            "the cube-extract row of the throughput table for the base row; for the small-page row, a run against "
            "a simulator without latency serving the same small pages. The target applies to the base row.",
            "",
        ]
    if nightly:
        def nightly_row(n: NightlyRow, note: str) -> str:
            return (
                f"| {n.where}{note} | {fmt(n.history.wall if n.history else None, '.2f')} | {fmt(n.history_files, ',')} "
                f"| {', '.join(f'{x:.2f}' for x in n.plain) or '–'} | {', '.join(f'{x:.2f}' for x in n.changed) or '–'} "
                f"| {fmt(n.rewritten, ',')} | {fmt(n.ratio, '.2f')}x "
                f"| {', '.join(f'{x:.2f}' for x in n.floor) or '–'} | {fmt(n.floor_ratio, '.2f')}x "
                f"| {', '.join(f'{x:.2f}' for x in n.plain_cpu)} / {', '.join(f'{x:.2f}' for x in n.changed_cpu)} |"
            )
        lines += [
            f"## A nightly run after a year of history ({nightly.dataset.describe()})",
            "",
            "| file system | history s | history files | nightly, no schema change s | nightly, one new column s "
            "| files rewritten | ratio | their file operations alone s | ratio with only those "
            "| CPU s (no change / new column) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            nightly_row(nightly, " (the work directory: the target)"),
            *([nightly_row(nightly_shm, " (/dev/shm, for information)")] if nightly_shm else []),
            "",
            "Each repeat runs on its own copy of the history: the next day, then the day after (where every record "
            "has one new key). Ratio = median of the second over median of the first. Their file operations alone: "
            "examples/rewrite_floor on another copy (history and the next day), doing per file only what a "
            "crash-safe rewrite must (read the ledger entry and the file, write the new file under staging and move "
            "it into place, write the new entry and move it into place, delete the old one; as many threads as "
            "cores); ratio with only those = (no change + those) / no change."
            + (f" FAILED: {nightly.failed}" if nightly.failed else "")
            + (f" On /dev/shm FAILED: {nightly_shm.failed}" if nightly_shm and nightly_shm.failed else ""),
            "",
        ]
    if snapshot:
        lines += [
            f"## Snapshot (`cube-extract customers --crm 11:B2C`: one CRM of {snapshot.customers:,} customers, "
            f"--page-size {PAGE_SIZE})",
            "",
            "| time (s) | records/s | peak RSS (MiB) | row groups | CPU (s) |",
            "|---:|---:|---:|---:|---:|",
            f"| {fmt(snapshot.measured.wall if snapshot.measured else None, '.2f')} "
            f"| {fmt(snapshot.records_per_s(), ',.0f')} | {fmt(snapshot.rss_mib(), '.0f')} "
            f"| {fmt(snapshot.row_groups, 'd')} | {fmt(snapshot.measured.cpu if snapshot.measured else None, '.2f')} |",
            "",
        ]
    snapshot_verdicts = []
    if snapshot:
        if snapshot.failed:
            snapshot_verdicts.append(verdict(False, f"snapshot of {snapshot.customers:,} customers FAILED: {snapshot.failed}"))
        else:
            snapshot_verdicts.append(verdict(
                snapshot.rss_mib() < TARGET_RSS_MIB and snapshot.row_groups > 1,
                f"snapshot of {snapshot.rows:,} customers: peak RSS {snapshot.rss_mib():.0f} MiB (target < "
                f"{TARGET_RSS_MIB:.0f}), {snapshot.row_groups} row groups (target: several)"))
    scope_verdicts = []
    if scope_runs:
        lines += scope_bench.tables(*scope_runs)
        scope_verdicts = scope_bench.verdicts(me, *scope_runs)
    query_verdicts = []
    if queries:
        lines += query_bench.tables(queries)
        query_verdicts = query_bench.verdicts(me, queries)
    delta_verdicts = []
    if delta:
        lines += delta_bench.tables(delta)
        delta_verdicts = delta_bench.verdicts(me, delta)
    lines += ["## Targets", "", *verdicts(cube, baseline, duck, doubled, targets_latency, duck_same_layout, nightly),
              *snapshot_verdicts, *scope_verdicts, *query_verdicts, *delta_verdicts, ""]
    text = "\n".join(lines)
    print(text)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    say(f"written to {args.results}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
