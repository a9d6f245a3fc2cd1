"""The `make bench` tables of issue 24, called by `run_bench.py` (which passes itself as `bench`, for
its `measure`, `Simulator`, `Dataset` and binaries):

- An account of many campaigns: 200 sparse campaigns (0-40 records a campaign-day, some empty) x 30
  days, 50 ms latency, `--concurrency 8`: `--scope account` (median of 3 runs) against `--scope
  campaign --all-campaigns` (one run of 40 s) (requests, wall time, each run against its own ideal
  pages x latency / concurrency), both tables checked against the simulator's dump (row counts),
  and the account runs' peak RSS.
- A throttling API: 429 above 3 requests in flight, 20 ms a request, `Retry-After: 1` and `0`,
  `--concurrency 8`, 30 partitions: throttled share of the requests served, and wall time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
from pathlib import Path
from types import ModuleType

MANY_CAMPAIGNS = 200
MANY_ROWS_PER_DAY = 20  # mean; with quirk `sparse`, 0..=40 a campaign-day
MANY_DAYS = 30
MANY_FIRST = dt.date(2024, 3, 1)
MANY_LATENCY_MS = 50
MANY_CONCURRENCY = 8
TARGET_FEWER_REQUESTS = 20.0  # account scope makes >= 20x fewer requests than campaign scope
TARGET_FASTER = 15.0  # and runs >= 15x faster
TARGET_IDEAL_RATIO = 1.2  # account scope within 1.2x of pages x latency / concurrency
TARGET_RSS_MIB = 200.0

THROTTLE_DAYS = 30
THROTTLE_LIMIT = 3
THROTTLE_LATENCY_MS = 20
TARGET_THROTTLED_SHARE = 0.10
TARGET_THROTTLED_WALL = 3.0


@dataclasses.dataclass
class ScopeRun:
    scope: str
    wall: float | None = None
    rss_mib: float | None = None
    requests: int | None = None
    pages: int | None = None
    rows: int | None = None
    expected_rows: int | None = None
    retries: int | None = None
    failed: str | None = None
    # Every run's wall time, when the row is a median.
    walls: list[float] = dataclasses.field(default_factory=list)

    def ideal(self, latency_ms: int, concurrency: int) -> float | None:
        return self.pages * latency_ms / 1000 / concurrency if self.pages else None


def _dump_rows(bench: ModuleType, flags: list[str], log: Path) -> int:
    """Records the simulator serves for a dump with `flags` (NDJSON lines counted as they stream)."""
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(bench.SIM_BIN), "dump", *flags], stdout=subprocess.PIPE, stderr=err)
        n = sum(1 for _ in proc.stdout)
        proc.wait()
    return n


def _extract(bench: ModuleType, sim, args: list[str], work: Path, tag: str, timeout: float) -> ScopeRun:
    run = ScopeRun(tag)
    dest = bench.fresh(work / f"out-{tag}")
    report_path = bench.fresh(work / f"report-{tag}.json")
    m = bench.measure(
        [bench.EXTRACT_BIN, "call-outcomes", "--partitioning", bench.PARTITIONING, "--base-url", sim.url,
         "--token", bench.TOKEN, *args,
         "--dest", dest, "--report", report_path, "-q"],
        work / f"run-{tag}", timeout, server=sim,
    )
    run.wall, run.rss_mib = m.wall, m.maxrss_kib / 1024
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        report = None
    if m.returncode != 0 or report is None:
        run.failed = f"exit {m.returncode}: {m.stderr.strip()[-300:] or '(no stderr)'}"
        return run
    run.requests, run.pages, run.rows = report.get("requests"), report.get("pages"), report.get("rows")
    run.retries = report.get("retries")
    bench.fresh(dest)
    return run


def _extract_median(bench: ModuleType, sim, args: list[str], work: Path, tag: str, timeout: float,
                    runs: int) -> ScopeRun:
    """`runs` runs in turn: the median wall time and the highest peak RSS, as the latency rows of
    `run_bench.py` have (one run of two seconds moves by more than the target's margin)."""
    done = [_extract(bench, sim, args, work, f"{tag}-{i}", timeout) for i in range(runs)]
    failed = next((r for r in done if r.failed), None)
    if failed:
        failed.scope = tag
        return failed
    median = sorted(done, key=lambda r: r.wall)[runs // 2]
    return dataclasses.replace(median, scope=tag, rss_mib=max(r.rss_mib for r in done),
                               walls=[r.wall for r in done])


def run_many_campaigns(bench: ModuleType, work: Path, timeout: float, quick: bool) -> tuple[ScopeRun, ScopeRun]:
    campaigns = 20 if quick else MANY_CAMPAIGNS
    days = 5 if quick else MANY_DAYS
    dataset = bench.Dataset(campaigns, MANY_ROWS_PER_DAY, MANY_FIRST, days, quirks=bench.QUIRKS + ",sparse")
    span = ["--from", MANY_FIRST.isoformat(), "--to", dataset.last.isoformat()]
    data = dataset.data_flags()
    with bench.Simulator(dataset, work / "sim-many.log", MANY_LATENCY_MS, extra=("--preload-account",)) as sim:
        campaign = _extract(bench, sim, ["--scope", "campaign", "--all-campaigns", *span,
                                         "--concurrency", str(MANY_CONCURRENCY)], work, "campaign", timeout)
        account = _extract_median(bench, sim, ["--scope", "account", *span,
                                               "--concurrency", str(MANY_CONCURRENCY)], work, "account", timeout,
                                  runs=1 if quick else 3)
    # The campaign scope reads the active campaigns; the account's listing holds the archived one too.
    active = ",".join(str(c) for c in range(101, 101 + campaigns + (1 if campaigns >= 99 else 0)) if c != 199)
    campaign.expected_rows = _dump_rows(bench, ["--campaign", active, *span, *data], work / "dump-many-c.log")
    account.expected_rows = _dump_rows(bench, ["--scope", "account", *span, *data], work / "dump-many-a.log")
    return campaign, account


def run_throttling(bench: ModuleType, work: Path, timeout: float, retry_after: int) -> ScopeRun:
    dataset = bench.Dataset(1, 60, MANY_FIRST, THROTTLE_DAYS)
    with bench.Simulator(dataset, work / f"sim-throttle-{retry_after}.log", THROTTLE_LATENCY_MS,
                         extra=("--max-in-flight", str(THROTTLE_LIMIT), "--retry-after", str(retry_after))) as sim:
        return _extract(bench, sim, ["--campaign", "101", "--from", MANY_FIRST.isoformat(),
                                     "--to", dataset.last.isoformat(), "--concurrency", "8"],
                        work, f"throttle-{retry_after}", timeout)


def _runs(r: ScopeRun) -> str:
    if len(r.walls) < 2:
        return ""
    walls = ", ".join(f"{w:.2f}" for w in r.walls)
    return f"median of {len(r.walls)} runs: {walls} s; peak RSS: the highest of them"


def _fmt(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def tables(campaign: ScopeRun, account: ScopeRun, throttled: list[tuple[int, ScopeRun]]) -> list[str]:
    lines = [
        f"## An account of many campaigns ({MANY_CAMPAIGNS} campaigns x {MANY_DAYS} days, 0-40 records a "
        f"campaign-day, {MANY_LATENCY_MS} ms latency, --concurrency {MANY_CONCURRENCY})",
        "",
        "| scope | rows (dump) | requests | pages | ideal s | wall s | wall / ideal | peak RSS MiB | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in (campaign, account):
        ideal = r.ideal(MANY_LATENCY_MS, MANY_CONCURRENCY)
        ratio = r.wall / ideal if ideal and r.wall and not r.failed else None
        lines.append(
            f"| {r.scope} | {_fmt(r.rows, ',')} ({_fmt(r.expected_rows, ',')}) | {_fmt(r.requests, ',')} "
            f"| {_fmt(r.pages, ',')} | {_fmt(ideal, '.2f')} | {_fmt(r.wall, '.2f')} | {_fmt(ratio, '.3f')} "
            f"| {_fmt(r.rss_mib, '.0f')} | {('FAILED: ' + r.failed) if r.failed else _runs(r)} |"
        )
    lines += [
        "",
        f"## A throttling API (429 above {THROTTLE_LIMIT} requests in flight, {THROTTLE_LATENCY_MS} ms a request, "
        f"--concurrency 8, {THROTTLE_DAYS} partitions)",
        "",
        "| Retry-After | requests served | throttled | share | wall s | notes |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for retry_after, r in throttled:
        share = r.retries / r.requests if r.requests and r.retries is not None else None
        lines.append(
            f"| {retry_after} | {_fmt(r.requests, ',')} | {_fmt(r.retries, ',')} | {_fmt(share, '.1%')} "
            f"| {_fmt(r.wall, '.2f')} | {('FAILED: ' + r.failed) if r.failed else ''} |"
        )
    lines += ["", "Throttled = the run's retries (every retry here answers a 429); requests served include them.", ""]
    return lines


def verdicts(bench: ModuleType, campaign: ScopeRun, account: ScopeRun,
             throttled: list[tuple[int, ScopeRun]]) -> list[str]:
    v = bench.verdict
    out = []
    if campaign.failed or account.failed:
        out.append(v(False, f"many campaigns: a run failed ({campaign.failed or account.failed})"))
    else:
        exact = campaign.rows == campaign.expected_rows and account.rows == account.expected_rows
        out.append(v(exact, f"many campaigns: both tables hold the simulator's rows (campaign {campaign.rows:,} of "
                            f"{campaign.expected_rows:,}, account {account.rows:,} of {account.expected_rows:,})"))
        fewer = campaign.requests / account.requests
        out.append(v(fewer >= TARGET_FEWER_REQUESTS, f"many campaigns: --scope account makes {fewer:.1f}x fewer "
                                                     f"requests (target >= {TARGET_FEWER_REQUESTS:.0f}x)"))
        faster = campaign.wall / account.wall
        out.append(v(faster >= TARGET_FASTER, f"many campaigns: --scope account runs {faster:.1f}x faster "
                                              f"(target >= {TARGET_FASTER:.0f}x)"))
        ideal = account.ideal(MANY_LATENCY_MS, MANY_CONCURRENCY)
        ratio = account.wall / ideal
        out.append(v(ratio <= TARGET_IDEAL_RATIO, f"many campaigns: --scope account {ratio:.3f}x its ideal "
                                                  f"{ideal:.2f} s (target <= {TARGET_IDEAL_RATIO}x)"))
        out.append(v(account.rss_mib < TARGET_RSS_MIB, f"many campaigns: --scope account peak RSS "
                                                       f"{account.rss_mib:.0f} MiB (target < {TARGET_RSS_MIB:.0f})"))
    for retry_after, r in throttled:
        if r.failed:
            out.append(v(False, f"throttling, Retry-After {retry_after}: FAILED {r.failed}"))
            continue
        share = r.retries / r.requests
        out.append(v(share <= TARGET_THROTTLED_SHARE and r.wall <= TARGET_THROTTLED_WALL,
                     f"throttling, Retry-After {retry_after}: {share:.1%} of {r.requests} requests throttled "
                     f"(target <= {TARGET_THROTTLED_SHARE:.0%}), {r.wall:.2f} s (target <= "
                     f"{TARGET_THROTTLED_WALL:.0f} s)"))
    return out
