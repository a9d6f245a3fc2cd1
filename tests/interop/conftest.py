"""Shared fixtures and helpers of the Python interop tests.

The scenario: the API simulator (`cube_sim serve`) on 127.0.0.1 with every quirk on, and three
overlapping `cube-extract call-outcomes` runs into one destination (the second brings type drift and
new keys, so the earlier files must be rewritten). The expected data is the simulator's own dump
(`cube_sim dump`), normalised per column by the type that `schema.json` declares, as the contract
(docs/contract.md) prescribes. Nothing here hard-codes an expected value.

The scenario runs once per backend (`scenario[local]`, `scenario[s3]`): into a local directory, and into
`s3://cube-interop/lake` on a moto_server on 127.0.0.1 (a real S3-compatible HTTP server, started once
per session). For S3 every object under the prefix is then downloaded, key for key, into a local
directory, and the same tests read that copy.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import importlib.util
import json
import os
import re
import selectors
import subprocess
import sys
import threading
import time
import unicodedata
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pytest

REPO = Path(__file__).resolve().parents[2]

EXTRACT_BIN = Path(os.environ.get("CUBE_EXTRACT_BIN") or REPO / "target/debug/cube-extract")
SIM_BIN = Path(os.environ.get("CUBE_SIM_BIN") or REPO / "target/debug/examples/cube_sim")

TOKEN = "sim-token"
CAMPAIGNS = (101, 102, 103)
CAMPAIGN_ARG = ",".join(str(c) for c in CAMPAIGNS)
# Flags that select the simulated data set; `serve` and `dump` must get the same ones.
DATA_FLAGS = ["--quirks", "all", "--seed", "7", "--campaigns", "3", "--rows-per-day", "60"]
PAGE_SIZE = "37"
# The runs of the scenario, in order: (from, to).
RUNS = (("2019-08-01", "2019-08-12"), ("2019-08-10", "2019-08-25"), ("2019-08-05", "2019-08-06"))
DATA_FROM, DATA_TO = "2019-08-01", "2019-08-25"
# The fan-out scenario: four writers started together on these disjoint chunks of the same range,
# then one `cube-extract reconcile` (an Airflow backfill's mapped tasks and its fan-in).
FANOUT = (("2019-08-01", "2019-08-07"), ("2019-08-08", "2019-08-13"), ("2019-08-14", "2019-08-19"),
          ("2019-08-20", "2019-08-25"))

# The destinations every scenario test runs against.
BACKENDS = ("local", "s3")
# moto_server of the interpreter running the tests (`moto[server]` in requirements.txt).
MOTO_BIN = Path(os.environ.get("MOTO_SERVER_BIN") or Path(sys.prefix) / "bin" / "moto_server")
S3_BUCKET = "cube-interop"
S3_PREFIX = "lake"  # --dest s3://S3_BUCKET/S3_PREFIX
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}

PARTITION_COLUMNS = ("campaign_id", "date")
# What a reader finds beside the columns of schema.json, per `--partitioning`: a day table's
# folders; a month table's folders and its `date` column.
LAYOUT_COLUMNS = {"day": PARTITION_COLUMNS, "month": ("campaign_id", "month", "date")}
TABLE = "call_outcomes"
# Every table the scenario extracts (into the same destination), with its command and the
# `cube_sim dump` flags that print its records.
TABLES = {
    "call_outcomes": ("call-outcomes", []),
    "product_registrations": ("product-registrations", ["--table", "product-registrations"]),
}

SIM_START_TIMEOUT = 30  # seconds until the simulator must have printed its address
S3_START_TIMEOUT = 30  # seconds until moto_server must have printed its address
RUN_TIMEOUT = 120  # seconds per extractor run / dump

# schema.json type names -> the Arrow type every file must carry.
ARROW_TYPES = {
    "Utf8": pa.string(),
    "Int64": pa.int64(),
    "Float64": pa.float64(),
    "Boolean": pa.bool_(),
    "Date32": pa.date32(),
    "Timestamp(Microsecond, None)": pa.timestamp("us"),
    'Timestamp(Microsecond, "UTC")': pa.timestamp("us", tz="UTC"),
}
NAIVE_TS = "Timestamp(Microsecond, None)"
UTC_TS = 'Timestamp(Microsecond, "UTC")'

MAX_SHOWN = 8  # differences quoted in a failure message


# --------------------------------------------------------------------------------------------
# Environment: nothing may leave 127.0.0.1.


def local_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: no proxies, no CUBE_* / AWS_* settings leaking in.

    `extra` is added last: the S3 runs pass their AWS_* settings (for the local server) that way."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().endswith("_PROXY") and not k.startswith(("CUBE_", "AWS_"))
    }
    env["NO_PROXY"] = env["no_proxy"] = "*"
    env.setdefault("RUST_BACKTRACE", "1")
    env.update(extra or {})
    return env


def require_binary(path: Path, what: str, hint: str | None = None) -> Path:
    if not path.is_file() or not os.access(path, os.X_OK):
        hint = hint or (
            f"run `cargo build --all-targets` in {REPO} first "
            f"(or point {'CUBE_EXTRACT_BIN' if 'extract' in what else 'CUBE_SIM_BIN'} at it)"
        )
        pytest.fail(f"{what} binary not found or not executable at {path}; {hint}", pytrace=False)
    return path


def tail(text: str | bytes, n: int = 4000) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= n else "...\n" + text[-n:]


# --------------------------------------------------------------------------------------------
# JSON values as the API serves them. Numbers keep their literal text, because a number in a Utf8
# column must read back as exactly its JSON text.


class JsonNumber:
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    @property
    def is_integer_literal(self) -> bool:
        return not any(c in self.text for c in ".eE")

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsonNumber) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def parse_json_line(line: str) -> dict[str, Any]:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise ValueError(f"duplicate key {k!r} in one dump record")
            out[k] = v
        return out

    return json.loads(line, parse_int=JsonNumber, parse_float=JsonNumber, object_pairs_hook=pairs)


def describe_raw(v: Any) -> str:
    if v is ABSENT:
        return "<absent>"
    if isinstance(v, JsonNumber):
        return v.text
    return json.dumps(v, ensure_ascii=False)


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()


@dataclasses.dataclass(frozen=True)
class Unrepresentable:
    """An expected value that the declared column type cannot hold: never equal to anything read."""

    raw: str
    type: str

    def __repr__(self) -> str:
        return f"<JSON {self.raw} cannot be stored in a {self.type} column>"


def _parse_naive_ts(s: str) -> dt.datetime:
    v = dt.datetime.fromisoformat(s)
    if v.tzinfo is not None:
        raise ValueError("has a zone")
    return v


def _parse_zoned_ts(s: str) -> dt.datetime:
    v = dt.datetime.fromisoformat(s)
    if v.tzinfo is None:
        raise ValueError("has no zone")
    return v.astimezone(dt.timezone.utc)


def normalise_expected(raw: Any, type_name: str) -> Any:
    """The value a reader must return for JSON value `raw` in a column of `type_name` (contract rules)."""
    if raw is ABSENT or raw is None:
        return None
    bad = Unrepresentable(describe_raw(raw), type_name)
    if type_name == "Utf8":
        if isinstance(raw, str):
            return raw
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if isinstance(raw, JsonNumber):
            return raw.text
        return bad
    if isinstance(raw, str) and raw == "" and type_name in ARROW_TYPES:
        return None
    try:
        if type_name == "Int64":
            if isinstance(raw, JsonNumber) and raw.is_integer_literal:
                return int(raw.text)
        elif type_name == "Float64":
            if isinstance(raw, JsonNumber):
                return float(raw.text)
        elif type_name == "Boolean":
            if isinstance(raw, bool):
                return raw
        elif type_name == NAIVE_TS:
            if isinstance(raw, str):
                return _parse_naive_ts(raw)
        elif type_name == UTC_TS:
            if isinstance(raw, str):
                return _parse_zoned_ts(raw)
        elif type_name == "Date32":
            if isinstance(raw, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
                return dt.date.fromisoformat(raw)
    except ValueError:
        pass
    return bad


def normalise_actual(v: Any) -> Any:
    """A value as read by an engine, made comparable: zoned timestamps as UTC instants."""
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.astimezone(dt.timezone.utc)
    return v


def same_value(expected: Any, actual: Any) -> bool:
    """Equality that also demands the same kind of value (1 != 1.0 != True, naive != zoned)."""
    if expected is None:
        return actual is None
    if isinstance(expected, Unrepresentable):
        return False
    if isinstance(expected, bool):
        return isinstance(actual, bool) and actual == expected
    if isinstance(expected, int):
        return isinstance(actual, int) and not isinstance(actual, bool) and actual == expected
    if isinstance(expected, float):
        return isinstance(actual, float) and actual == expected
    if isinstance(expected, str):
        return isinstance(actual, str) and actual == expected
    if isinstance(expected, dt.datetime):
        return (
            isinstance(actual, dt.datetime)
            and (actual.tzinfo is None) == (expected.tzinfo is None)
            and actual == expected
        )
    if isinstance(expected, dt.date):
        return isinstance(actual, dt.date) and not isinstance(actual, dt.datetime) and actual == expected
    return False


def nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def partition_date(v: Any) -> str | None:
    """The `date` partition value as YYYY-MM-DD, from a date or a string; None if it is neither."""
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return v.isoformat()
    if isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
        return v
    return None


def days(first: str, last: str) -> list[str]:
    d, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    out = []
    while d <= end:
        out.append(d.isoformat())
        d += dt.timedelta(days=1)
    return out


# --------------------------------------------------------------------------------------------
# The simulator.


@dataclasses.dataclass
class Simulator:
    url: str
    proc: subprocess.Popen
    output: list[bytes]  # stdout after the first line, and stderr, for failure messages

    def log(self) -> str:
        return tail(b"".join(self.output))


def _drain(stream, sink: list[bytes]) -> None:
    for chunk in iter(lambda: stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536), b""):
        sink.append(chunk)


@pytest.fixture(scope="session")
def sim_bin() -> Path:
    return require_binary(SIM_BIN, "cube_sim simulator")


@pytest.fixture(scope="session")
def extract_bin() -> Path:
    return require_binary(EXTRACT_BIN, "cube-extract")


@pytest.fixture(scope="session")
def simulator(sim_bin: Path):
    with serve(sim_bin, ["--page-size", PAGE_SIZE, *DATA_FLAGS]) as sim:
        yield sim


def load_module(path: Path):
    """A Python file of examples/ as a module, to call its functions."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def serve(sim_bin: Path, flags: list[str]):
    """`cube_sim serve` with `flags` on 127.0.0.1, until the block ends."""
    cmd = [str(sim_bin), "serve", "--port", "0", *flags]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=local_env()
    )
    output: list[bytes] = []
    try:
        # Block (with a deadline, not a sleep) until the first stdout line arrives.
        first = b""
        deadline = time.monotonic() + SIM_START_TIMEOUT
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while b"\n" not in first:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(timeout=left):
                    break
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                first += chunk
        line, _, rest = first.partition(b"\n")
        output.append(rest)
        m = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+))/?", line.decode("utf-8", "replace").strip())
        if not m or int(m.group(2)) == 0:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(
                f"`{' '.join(cmd)}` did not print 'listening on http://127.0.0.1:PORT' as its first line "
                f"within {SIM_START_TIMEOUT}s; got {line!r}, exit status {proc.returncode}\n"
                f"stderr:\n{tail(err)}",
                pytrace=False,
            )
        for stream in (proc.stdout, proc.stderr):
            threading.Thread(target=_drain, args=(stream, output), daemon=True).start()
        yield Simulator(url=m.group(1), proc=proc, output=output)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def run_dump(sim_bin: Path, table: str = TABLE) -> list[dict[str, Any]]:
    cmd = [str(sim_bin), "dump", "--campaign", CAMPAIGN_ARG, "--from", DATA_FROM, "--to", DATA_TO, *DATA_FLAGS,
           *TABLES[table][1]]
    r = subprocess.run(cmd, capture_output=True, env=local_env(), timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        pytest.fail(f"`{' '.join(cmd)}` exited {r.returncode}\nstderr:\n{tail(r.stderr)}", pytrace=False)
    records = []
    for n, line in enumerate(r.stdout.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = parse_json_line(line)
            campaign = rec.pop("__campaign_id")
            day = rec.pop("__date")
            assert isinstance(campaign, JsonNumber) and campaign.is_integer_literal, campaign
            assert isinstance(day, str) and partition_date(day) == day, day
        except Exception as e:  # noqa: BLE001 - reported with the offending line
            pytest.fail(f"dump line {n} is not a record with __campaign_id/__date: {e!r}\n{line[:500]}", pytrace=False)
        records.append({"campaign_id": int(campaign.text), "date": day, "record": rec})
    if not records:
        pytest.fail(f"`{' '.join(cmd)}` printed no records", pytrace=False)
    return records


# --------------------------------------------------------------------------------------------
# The scenario.


@dataclasses.dataclass
class RunResult:
    days: tuple[str, str]
    cmd: list[str]
    stderr: str
    report: dict[str, Any]
    delta_version: int | None = None  # a local Delta table's latest version after the run


@dataclasses.dataclass
class Scenario:
    backend: str  # "local" or "s3"
    layout: str  # "day" or "month" (--partitioning)
    dest: Path  # a local directory with the output (for S3: a download of the bucket prefix)
    table: Path
    runs: list[RunResult]
    schema: dict[str, Any]
    columns: list[dict[str, Any]]  # schema.json columns
    types: dict[str, str]  # column name -> schema.json type
    dump: list[dict[str, Any]]  # {"campaign_id", "date", "record"}
    key_to_column: dict[str, str]  # JSON key (as served) -> column name
    unmapped_keys: list[str]  # JSON keys no column came from
    ambiguous_keys: dict[str, list[str]]  # JSON key -> several candidate columns
    widened_to_utf8: set[str]  # columns some run widened to Utf8
    expected: dict[tuple[int, str, Any], dict[str, Any]]  # row key -> column -> normalised value
    expected_raw: dict[tuple[int, str, Any], dict[str, Any]]  # row key -> column -> raw JSON value
    duplicate_dump_keys: list[tuple[int, str, Any]]

    @property
    def column_names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    @property
    def layout_columns(self) -> tuple[str, ...]:
        """What a reader finds beside the columns of schema.json."""
        return LAYOUT_COLUMNS[self.layout]

    def parquet_files(self) -> list[Path]:
        """The data files (stray files are the layout test's business)."""
        return sorted(p for p in self.table.rglob("*.parquet") if p.is_file())

    def check_reader(self, engine: str, columns: Iterable[str], rows: list[dict[str, Any]]) -> None:
        """Assert that `rows` (read by `engine`, result columns `columns`) hold exactly the dump."""
        check_reader_result(self, engine, list(columns), rows)


def _map_keys(columns: list[dict[str, Any]], keys: Iterable[str]):
    by_source: dict[str, list[str]] = collections.defaultdict(list)
    by_source_nfc: dict[str, list[str]] = collections.defaultdict(list)
    for c in columns:
        sk = c.get("source_key")
        if isinstance(sk, str):
            by_source[sk].append(c["name"])
            by_source_nfc[nfc(sk)].append(c["name"])
    mapping, unmapped, ambiguous = {}, [], {}
    for k in sorted(keys):
        cands = by_source.get(k) or by_source_nfc.get(nfc(k)) or []
        if len(cands) == 1:
            mapping[k] = cands[0]
        elif not cands:
            unmapped.append(k)
        else:
            ambiguous[k] = cands
    return mapping, unmapped, ambiguous


def row_key(campaign_id: int, day: str, customer: Any) -> tuple[int, str, Any]:
    return (campaign_id, day, customer)


@pytest.fixture(scope="session")
def dumps(sim_bin: Path) -> dict[str, list[dict[str, Any]]]:
    """The simulator's records of every table."""
    return {table: run_dump(sim_bin, table) for table in TABLES}


# --------------------------------------------------------------------------------------------
# The S3 backend: a real S3-compatible server (moto_server) on 127.0.0.1.


@dataclasses.dataclass
class S3Server:
    url: str
    bucket: str
    client: Any  # boto3 S3 client for that server
    proc: subprocess.Popen
    output: collections.deque  # the server's stdout+stderr (its request log), for failure messages

    def log(self) -> str:
        return tail(b"".join(self.output))

    def env(self) -> dict[str, str]:
        """What a child process needs to reach this server (and only it)."""
        return {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": self.url, "AWS_ALLOW_HTTP": "true"}

    def keys(self, prefix: str, bucket: str | None = None) -> list[str]:
        """The current object keys under `prefix` (of `bucket`, default the scenario's), all pages."""
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket or self.bucket, Prefix=prefix):
            out.extend(o["Key"] for o in page.get("Contents") or [])
        return out


def s3_client(url: str):
    import boto3
    from botocore.config import Config

    return boto3.session.Session(
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_CREDENTIALS["AWS_REGION"],
    ).client(
        "s3",
        endpoint_url=url,
        # proxies={} (not None): never route 127.0.0.1 through an environment proxy.
        config=Config(proxies={}, s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


@pytest.fixture(scope="session")
def s3_server():
    moto = require_binary(
        MOTO_BIN, "moto_server (S3 server)",
        "install tests/interop/requirements.txt into this interpreter (or point MOTO_SERVER_BIN at it)",
    )
    cmd = [str(moto), "-H", "127.0.0.1", "-p", "0"]
    # stderr into stdout: one pipe to watch for the address and to drain afterwards.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=local_env()
    )
    output: collections.deque = collections.deque(maxlen=512)
    try:
        # Block (with a deadline, not a sleep) until it prints the address it listens on.
        seen = b""
        m = None
        deadline = time.monotonic() + S3_START_TIMEOUT
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while m is None:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(timeout=left):
                    break
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk
                m = re.search(rb"Running on (http://127\.0\.0\.1:([1-9]\d*))\b", seen)
        output.append(seen)
        if m is None:
            proc.kill()
            rest, _ = proc.communicate(timeout=10)
            pytest.fail(
                f"`{' '.join(cmd)}` did not print 'Running on http://127.0.0.1:PORT' within {S3_START_TIMEOUT}s; "
                f"exit status {proc.returncode}\noutput:\n{tail(seen + (rest or b''))}",
                pytrace=False,
            )
        threading.Thread(target=_drain, args=(proc.stdout, output), daemon=True).start()
        url = m.group(1).decode()
        client = s3_client(url)
        try:
            client.create_bucket(Bucket=S3_BUCKET)
            # Versioning keeps every object ever written (and deleted) listable, so a temporary object
            # that was written and removed again is still visible to the layout test.
            client.put_bucket_versioning(Bucket=S3_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"could not create bucket {S3_BUCKET} on {url}: {e!r}\nserver log:\n{tail(b''.join(output))}",
                        pytrace=False)
        yield S3Server(url=url, bucket=S3_BUCKET, client=client, proc=proc, output=output)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------
# The scenario: the same three runs, into a local directory or into S3.


@dataclasses.dataclass
class Extraction:
    backend: str
    dest: Path  # a local directory holding the output (for S3: a download of everything under the prefix)
    runs: dict[str, list[RunResult]]  # table -> its runs
    layout: str = "day"  # --partitioning
    table_format: str = "parquet"  # --table-format


def run_extractions(
    extract_bin: Path, simulator: Simulator, dest_arg: str, reports_dir: Path, backend: str,
    extra_env: dict[str, str] | None = None, server_log=None, partitioning: str = "day", tables=tuple(TABLES),
    table_format: str = "parquet",
) -> dict[str, list[RunResult]]:
    """The runs of every table, one table after the other, into the same destination."""
    return {
        table: _run_table(extract_bin, simulator, dest_arg, reports_dir, backend, table, extra_env, server_log,
                          partitioning, table_format)
        for table in tables
    }


def _run_table(
    extract_bin: Path, simulator: Simulator, dest_arg: str, reports_dir: Path, backend: str, table: str,
    extra_env: dict[str, str] | None, server_log, partitioning: str, table_format: str = "parquet",
) -> list[RunResult]:
    runs: list[RunResult] = []
    for i, (first, last) in enumerate(RUNS, 1):
        report_path = reports_dir / f"{table}-run{i}.json"
        cmd = [
            str(extract_bin), TABLES[table][0], "--partitioning", partitioning, "--table-format", table_format,
            "--base-url", simulator.url, "--token", TOKEN,
            "--campaign", CAMPAIGN_ARG, "--from", first, "--to", last,
            "--dest", dest_arg, "--report", str(report_path),
        ]
        what = f"[{backend}] {table} run {i} ({first}..{last})"
        try:
            r = subprocess.run(cmd, capture_output=True, env=local_env(extra_env), timeout=RUN_TIMEOUT,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"{what} did not finish in {RUN_TIMEOUT}s\nstderr:\n{tail(e.stderr or b'')}", pytrace=False)
        stderr = r.stderr.decode("utf-8", "replace")
        shown = " ".join(cmd).replace(TOKEN, "***")
        if r.returncode != 0:
            pytest.fail(
                f"{what} exited {r.returncode}, expected 0\n{shown}\n"
                f"stderr:\n{tail(stderr)}\nsimulator log:\n{simulator.log()}"
                + (f"\nS3 server log:\n{server_log()}" if server_log else ""),
                pytrace=False,
            )
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            pytest.fail(f"{what} wrote no readable --report {report_path}: {e!r}", pytrace=False)
        log = Path(dest_arg) / table / "_delta_log"
        version = max((int(p.stem) for p in log.glob("*.json")), default=None) if log.is_dir() else None
        runs.append(RunResult((first, last), cmd, stderr, report, version))
    return runs


def run_fanout(
    extract_bin: Path, simulator: Simulator, dest_arg: str, reports_dir: Path, backend: str,
    extra_env: dict[str, str] | None = None,
) -> dict[str, list[RunResult]]:
    """Four call-outcome writers at once into one destination, then `reconcile`."""
    procs = []
    for i, (first, last) in enumerate(FANOUT, 1):
        report_path = reports_dir / f"fanout-{i}.json"
        cmd = [
            str(extract_bin), "call-outcomes", "--partitioning", "day", "--base-url", simulator.url, "--token", TOKEN,
            "--campaign", CAMPAIGN_ARG, "--from", first, "--to", last, "--dest", dest_arg,
            "--report", str(report_path),
        ]
        procs.append((cmd, report_path, (first, last), subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=local_env(extra_env),
        )))
    runs = []
    for cmd, report_path, span, proc in procs:
        try:
            _, err = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"[{backend}] fan-out writer {span} did not finish in {RUN_TIMEOUT}s", pytrace=False)
        stderr = err.decode("utf-8", "replace")
        if proc.returncode != 0:
            pytest.fail(f"[{backend}] fan-out writer {span} exited {proc.returncode}\nstderr:\n{tail(stderr)}",
                        pytrace=False)
        runs.append(RunResult(span, cmd, stderr, json.loads(report_path.read_text(encoding="utf-8"))))
    cmd = [str(extract_bin), "reconcile", "--dest", dest_arg]
    r = subprocess.run(cmd, capture_output=True, env=local_env(extra_env), timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        pytest.fail(f"[{backend}] `cube-extract reconcile` exited {r.returncode}\nstderr:\n{tail(r.stderr)}",
                    pytrace=False)
    return {TABLE: runs}


@pytest.fixture(scope="session")
def extraction_local_fanout(tmp_path_factory, extract_bin: Path, simulator: Simulator) -> Extraction:
    dest = tmp_path_factory.mktemp("dest-local-fanout")
    runs = run_fanout(extract_bin, simulator, str(dest), tmp_path_factory.mktemp("reports-local-fanout"), "local")
    return Extraction("local", dest, runs)


@pytest.fixture(scope="session")
def extraction_s3_fanout(tmp_path_factory, extract_bin: Path, simulator: Simulator, s3_server: S3Server) -> Extraction:
    # A bucket of its own: the S3 layout tests look at everything in the scenario's bucket.
    bucket, prefix = "cube-interop-fanout", "lake"
    s3_server.client.create_bucket(Bucket=bucket)
    runs = run_fanout(
        extract_bin, simulator, f"s3://{bucket}/{prefix}", tmp_path_factory.mktemp("reports-s3-fanout"),
        "s3", extra_env=s3_server.env(),
    )
    copy = tmp_path_factory.mktemp("dest-s3-fanout-download")
    if not download_prefix(s3_server, f"{prefix}/", copy, bucket):
        pytest.fail(f"nothing under s3://{bucket}/{prefix}/ after the fan-out", pytrace=False)
    return Extraction("s3", copy, runs)


@pytest.fixture(scope="session")
def extraction_local(tmp_path_factory, extract_bin: Path, simulator: Simulator) -> Extraction:
    dest = tmp_path_factory.mktemp("dest-local")
    runs = run_extractions(extract_bin, simulator, str(dest), tmp_path_factory.mktemp("reports-local"), "local")
    return Extraction("local", dest, runs)


def download_prefix(server: S3Server, prefix: str, into: Path, bucket: str | None = None) -> int:
    """Copy every object under `prefix` to `into`, keeping the rest of its key as the relative path."""
    bucket = bucket or server.bucket
    root = into.resolve()
    n = 0
    for key in server.keys(prefix, bucket):
        rel = key[len(prefix):]
        target = (root / rel).resolve()
        if not rel or rel.startswith("/") or root not in target.parents:
            pytest.fail(f"object key {key!r} does not map to a file under {root}", pytrace=False)
        if key.endswith("/"):  # a "folder" marker object: keep it visible as a directory
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(server.client.get_object(Bucket=bucket, Key=key)["Body"].read())
        n += 1
    return n


@pytest.fixture(scope="session")
def extraction_s3(tmp_path_factory, extract_bin: Path, simulator: Simulator, s3_server: S3Server) -> Extraction:
    runs = run_extractions(
        extract_bin, simulator, f"s3://{s3_server.bucket}/{S3_PREFIX}", tmp_path_factory.mktemp("reports-s3"), "s3",
        extra_env=s3_server.env(), server_log=s3_server.log,
    )
    copy = tmp_path_factory.mktemp("dest-s3-download")
    if not download_prefix(s3_server, f"{S3_PREFIX}/", copy):
        pytest.fail(f"nothing under s3://{s3_server.bucket}/{S3_PREFIX}/ after the runs", pytrace=False)
    return Extraction("s3", copy, runs)


@pytest.fixture(scope="session")
def extraction_local_months(tmp_path_factory, extract_bin: Path, simulator: Simulator) -> Extraction:
    dest = tmp_path_factory.mktemp("dest-local-months")
    runs = run_extractions(extract_bin, simulator, str(dest), tmp_path_factory.mktemp("reports-local-months"),
                           "local", partitioning="month")
    return Extraction("local", dest, runs, "month")


@pytest.fixture(scope="session")
def extraction_s3_months(tmp_path_factory, extract_bin: Path, simulator: Simulator, s3_server: S3Server) -> Extraction:
    bucket, prefix = "cube-interop-months", "lake"
    s3_server.client.create_bucket(Bucket=bucket)
    runs = run_extractions(
        extract_bin, simulator, f"s3://{bucket}/{prefix}", tmp_path_factory.mktemp("reports-s3-months"), "s3",
        extra_env=s3_server.env(), partitioning="month", tables=(TABLE,),
    )
    copy = tmp_path_factory.mktemp("dest-s3-months-download")
    if not download_prefix(s3_server, f"{prefix}/", copy, bucket):
        pytest.fail(f"nothing under s3://{bucket}/{prefix}/ after the month runs", pytrace=False)
    return Extraction("s3", copy, runs, "month")


@pytest.fixture(scope="session")
def extraction_local_delta(tmp_path_factory, extract_bin: Path, simulator: Simulator) -> Extraction:
    dest = tmp_path_factory.mktemp("dest-local-delta")
    runs = run_extractions(extract_bin, simulator, str(dest), tmp_path_factory.mktemp("reports-local-delta"),
                           "local", partitioning="month", table_format="delta")
    return Extraction("local", dest, runs, "month", "delta")


@pytest.fixture(scope="session")
def extraction_s3_delta(tmp_path_factory, extract_bin: Path, simulator: Simulator, s3_server: S3Server) -> Extraction:
    bucket, prefix = "cube-interop-delta", "lake"
    s3_server.client.create_bucket(Bucket=bucket)
    runs = run_extractions(
        extract_bin, simulator, f"s3://{bucket}/{prefix}", tmp_path_factory.mktemp("reports-s3-delta"), "s3",
        extra_env=s3_server.env(), partitioning="month", tables=(TABLE,), table_format="delta",
    )
    copy = tmp_path_factory.mktemp("dest-s3-delta-download")
    if not download_prefix(s3_server, f"{prefix}/", copy, bucket):
        pytest.fail(f"nothing under s3://{bucket}/{prefix}/ after the Delta runs", pytrace=False)
    return Extraction("s3", copy, runs, "month", "delta")


# The same runs into Delta tables (`--table-format delta`), read through their log.
DELTA_SCENARIOS = [("local_delta", table) for table in TABLES] + [("s3_delta", TABLE)]


@pytest.fixture(scope="session", params=DELTA_SCENARIOS, ids=[f"{b}-{t}" for b, t in DELTA_SCENARIOS])
def delta_scenario(request, dumps) -> Scenario:
    backend, table = request.param
    return build_scenario(request.getfixturevalue(f"extraction_{backend}"), table, dumps)


# (extraction, table): the three overlapping runs of each table on each backend, the fan-out of
# call outcomes on each backend, and the same runs into month tables (`--partitioning month`).
SCENARIOS = (
    [(backend, table) for table in TABLES for backend in BACKENDS]
    + [(f"{backend}_fanout", TABLE) for backend in BACKENDS]
    + [("local_months", table) for table in TABLES]
    + [("s3_months", TABLE)]
)


@pytest.fixture(scope="session", params=SCENARIOS, ids=[f"{b}-{t}" for b, t in SCENARIOS])
def scenario(request, dumps) -> Scenario:
    backend, table = request.param
    return build_scenario(request.getfixturevalue(f"extraction_{backend}"), table, dumps)


def build_scenario(extraction: Extraction, table: str, dumps) -> Scenario:
    dest, runs, dump = extraction.dest, extraction.runs[table], dumps[table]

    schema_path = dest / "_cube_extract" / table / "schema.json"
    try:
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
        columns = schema["columns"]
        assert isinstance(columns, list) and all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in columns)
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"{schema_path} is missing or not the documented format: {e!r}", pytrace=False)
    types = {c["name"]: c.get("type") for c in columns}

    widened = set()
    for run in runs:
        for ch in run.report.get("schema_changes") or []:
            if isinstance(ch, dict) and ch.get("change") == "widened" and ch.get("to") == "Utf8":
                widened.add(ch.get("column"))

    all_keys = {k for d in dump for k in d["record"]}
    key_to_column, unmapped, ambiguous = _map_keys(columns, all_keys)

    expected, expected_raw, dups = {}, {}, []
    customer_col = key_to_column.get("crm__customer_id", "crm__customer_id")
    for d in dump:
        rec = d["record"]
        raw_by_col = {name: ABSENT for name in types}
        for k, v in rec.items():
            if k in key_to_column:
                raw_by_col[key_to_column[k]] = v
        norm = {name: normalise_expected(raw, types[name]) for name, raw in raw_by_col.items()}
        key = row_key(d["campaign_id"], d["date"], norm.get(customer_col))
        if key in expected:
            dups.append(key)
        expected[key] = norm
        expected_raw[key] = raw_by_col

    return Scenario(
        backend=extraction.backend, layout=extraction.layout, dest=dest, table=dest / table, runs=runs, schema=schema, columns=columns, types=types, dump=dump,
        key_to_column=key_to_column, unmapped_keys=unmapped, ambiguous_keys=ambiguous,
        widened_to_utf8=widened, expected=expected, expected_raw=expected_raw, duplicate_dump_keys=dups,
    )


# --------------------------------------------------------------------------------------------
# Comparing what a reader returned with the dump.


def show(v: Any) -> str:
    """A compact, unambiguous rendering of a value for failure messages."""
    if isinstance(v, dt.datetime):
        return f"{v.isoformat(sep=' ')} ({'zoned' if v.tzinfo else 'naive'} datetime)"
    if isinstance(v, dt.date):
        return f"{v.isoformat()} (date)"
    if isinstance(v, (bool, int, float, str)) or v is None:
        return f"{v!r} ({type(v).__name__})"
    return repr(v)


def _fmt_key(key) -> str:
    return f"(campaign_id={key[0]}, date={key[1]}, crm__customer_id={key[2]!r})"


def check_reader_result(sc: Scenario, engine: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
    problems: list[str] = []

    if sc.duplicate_dump_keys:
        problems.append(f"the dump itself repeats row keys, e.g. {[_fmt_key(k) for k in sc.duplicate_dump_keys[:3]]}")
    if sc.unmapped_keys or sc.ambiguous_keys:
        problems.append(
            f"JSON keys of the dump with no column in schema.json (their data is lost): {sc.unmapped_keys[:MAX_SHOWN]}"
            + (f"; keys matching several columns: {dict(list(sc.ambiguous_keys.items())[:MAX_SHOWN])}" if sc.ambiguous_keys else "")
        )

    # Columns.
    counts = collections.Counter(columns)
    repeated = sorted(c for c, n in counts.items() if n > 1)
    want = set(sc.column_names) | set(sc.layout_columns)
    missing = sorted(want - set(columns))
    extra = sorted(set(columns) - want)
    if repeated or missing or extra:
        problems.append(
            f"result columns differ from schema.json + partition columns: "
            f"missing {missing[:MAX_SHOWN]}{'...' if len(missing) > MAX_SHOWN else ''} ({len(missing)}), "
            f"unexpected {extra[:MAX_SHOWN]} ({len(extra)}), repeated {repeated[:MAX_SHOWN]}"
        )

    # Row count.
    if len(rows) != len(sc.expected):
        problems.append(f"{len(rows)} rows read, the dump has {len(sc.expected)}")

    # Row keys.
    customer_col = sc.key_to_column.get("crm__customer_id", "crm__customer_id")
    bad_partition: list[str] = []
    actual: dict[tuple, dict[str, Any]] = {}
    seen = collections.Counter()
    for row in rows:
        cid, day = row.get("campaign_id"), partition_date(row.get("date"))
        if sc.layout == "month":
            # A month table's `date` is a column of the file, read as a date; its folder, the month.
            date = row.get("date")
            is_date = isinstance(date, dt.date) and not isinstance(date, dt.datetime)
            if not is_date or day is None or str(row.get("month")) != day[:7]:
                bad_partition.append(f"date={date!r} ({type(date).__name__}) month={row.get('month')!r}")
                continue
        if not isinstance(cid, int) or isinstance(cid, bool) or day is None:
            bad_partition.append(f"campaign_id={row.get('campaign_id')!r} date={row.get('date')!r}")
            continue
        key = row_key(cid, day, normalise_actual(row.get(customer_col)))
        seen[key] += 1
        actual[key] = row
    if bad_partition:
        problems.append(
            f"{len(bad_partition)} rows whose partition columns are not an int campaign_id and a date/'YYYY-MM-DD' "
            f"date, e.g. {bad_partition[:MAX_SHOWN]}"
        )
    dups = [k for k, n in seen.items() if n > 1]
    if dups:
        problems.append(f"{len(dups)} (campaign_id, date, crm__customer_id) read more than once, e.g. "
                        f"{[_fmt_key(k) + f' x{seen[k]}' for k in dups[:MAX_SHOWN]]}")
    lost = [k for k in sc.expected if k not in actual]
    if lost:
        problems.append(f"{len(lost)} dump rows not read, e.g. {[_fmt_key(k) for k in lost[:MAX_SHOWN]]}")
    alien = [k for k in actual if k not in sc.expected]
    if alien:
        problems.append(f"{len(alien)} rows read that the dump does not have, e.g. {[_fmt_key(k) for k in alien[:MAX_SHOWN]]}")

    # Values.
    diffs: list[str] = []
    per_column = collections.Counter()
    for key, exp_row in sc.expected.items():
        row = actual.get(key)
        if row is None:
            continue
        raw_row = sc.expected_raw[key]
        for col, exp in exp_row.items():
            if col not in row:
                continue  # reported above as a missing column
            act = normalise_actual(row[col])
            if same_value(exp, act):
                continue
            per_column[col] += 1
            if len(diffs) < MAX_SHOWN:
                diffs.append(
                    f"{_fmt_key(key)} column {col!r} ({sc.types.get(col)}): JSON {describe_raw(raw_row[col])}, "
                    f"expected {show(exp)}, read {show(act)}"
                )
    if per_column:
        problems.append(
            f"{sum(per_column.values())} values differ in {len(per_column)} columns "
            f"{dict(per_column.most_common(MAX_SHOWN))}; first differences:\n    " + "\n    ".join(diffs)
        )

    if problems:
        raise AssertionError(f"{engine}: the data read differs from the simulator's dump:\n  - " + "\n  - ".join(problems))


# --------------------------------------------------------------------------------------------
# Spark.


@pytest.fixture(scope="session")
def spark():
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    for k in [k for k in os.environ if k.upper().endswith("_PROXY")]:
        del os.environ[k]
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("cube-extract-interop")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
