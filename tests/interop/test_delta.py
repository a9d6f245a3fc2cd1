"""Delta tables (`--table-format delta`): the scenario's three drifting, overlapping runs, read
through the Delta log by Python `deltalake` (PyArrow), `polars.scan_delta` and DuckDB's
`delta_scan`, must equal the simulator's dump; time travel to the version after the first run
gives that run's rows.

Spark's Delta reader (delta-spark) is not tested: no package reachable here ships its JARs. The
README gives the recipe.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO, TABLE, Extraction, Scenario, days, local_env, tail

# DuckDB 2.x has no offline delta extension: DuckDB 1.5.5 and its extension live in a venv of
# their own (`make venv-duckdb-delta`).
DUCKDB_DELTA_PYTHON = Path(os.environ.get("DUCKDB_DELTA_PYTHON") or REPO / ".venv-duckdb-delta/bin/python")

DUCKDB_SCRIPT = r"""
import os, sys, duckdb, duckdb_extension_delta
ext = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "v" + duckdb.__version__,
                   "delta.duckdb_extension")
con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
con.execute(f"LOAD '{ext}'")
con.execute("SET TimeZone = 'America/Sao_Paulo'")
table, out = sys.argv[1].replace("'", "''"), sys.argv[2].replace("'", "''")
con.execute(f"COPY (SELECT * FROM delta_scan('{table}')) TO '{out}' (FORMAT parquet)")
"""


def read_deltalake(path: str, **kwargs):
    """A Delta table through `deltalake`'s PyArrow dataset. Read on one thread: deltalake 1.6.6's
    `to_pyarrow_table()` reads right but can abort the interpreter at exit ("terminate called
    without an active exception", a thread of PyArrow's pool still inside deltalake's file
    system; delta-io/delta-rs#2184), which would fail the whole session."""
    import deltalake

    return deltalake.DeltaTable(path, **kwargs).to_pyarrow_dataset().to_table(use_threads=False)


def test_deltalake_pyarrow(delta_scenario: Scenario):
    table = read_deltalake(str(delta_scenario.table))
    delta_scenario.check_reader("deltalake PyArrow dataset", table.column_names, table.to_pylist())


def test_polars_scan_delta(delta_scenario: Scenario):
    import polars as pl

    df = pl.scan_delta(str(delta_scenario.table)).collect()
    delta_scenario.check_reader("Polars scan_delta", df.columns, df.to_dicts())


def test_duckdb_delta_scan(delta_scenario: Scenario, tmp_path: Path):
    if not DUCKDB_DELTA_PYTHON.exists():
        pytest.fail(f"{DUCKDB_DELTA_PYTHON} is missing: run `make venv-duckdb-delta`", pytrace=False)
    out = tmp_path / "read.parquet"
    r = subprocess.run(
        [str(DUCKDB_DELTA_PYTHON), "-c", DUCKDB_SCRIPT, str(delta_scenario.table), str(out)],
        capture_output=True, env=local_env(), timeout=120, stdin=subprocess.DEVNULL,
    )
    if r.returncode != 0:
        pytest.fail(f"DuckDB delta_scan exited {r.returncode}\nstderr:\n{tail(r.stderr)}", pytrace=False)
    table = pq.read_table(out)
    delta_scenario.check_reader("DuckDB 1.5.5 delta_scan", table.column_names, table.to_pylist())


def test_every_commit_is_one_change_and_no_file_is_shared(extraction_local_delta: Extraction):
    """Each data file is added once, under a name used once, and the latest version reads each
    (campaign, month) from one file."""
    import deltalake

    dt = deltalake.DeltaTable(str(extraction_local_delta.dest / TABLE))
    actions = pa.table(dt.get_add_actions(flatten=True)).to_pylist()
    paths = [a["path"] for a in actions]
    assert len(paths) == len(set(paths))
    assert all(Path(p).name.startswith("part-00000-") for p in paths), paths[:3]
    partitions = [(a["partition.campaign_id"], a["partition.month"]) for a in actions]
    assert len(partitions) == len(set(partitions)), "one file per (campaign, month)"


def test_time_travel_gives_the_rows_of_an_earlier_version(extraction_local_delta: Extraction, dumps):
    import deltalake
    import polars as pl

    path = str(extraction_local_delta.dest / TABLE)
    first = extraction_local_delta.runs[TABLE][0]
    assert first.delta_version is not None
    first_days = set(days(*first.days))
    expected = {(d["campaign_id"], d["date"]) for d in dumps[TABLE] if d["date"] in first_days}
    rows_expected = sum(1 for d in dumps[TABLE] if d["date"] in first_days)

    earlier = read_deltalake(path, version=first.delta_version)
    got = {(r["campaign_id"], r["date"].isoformat()) for r in earlier.select(["campaign_id", "date"]).to_pylist()}
    assert got == expected
    assert earlier.num_rows == rows_expected

    df = pl.scan_delta(path, version=first.delta_version).collect()
    assert df.height == rows_expected

    assert deltalake.DeltaTable(path).version() > first.delta_version
    all_days = {d["date"] for d in dumps[TABLE]}
    assert {r.isoformat() for r in read_deltalake(path).column("date").to_pylist()} == all_days


def test_the_duckdb_view_of_a_delta_table_reads_its_latest_version(extraction_local_delta: Extraction, dumps,
                                                                   extract_bin, tmp_path: Path):
    """`schema --duckdb-view` of a Delta table reads through `delta_scan`: the files of earlier
    versions under the same folder are not read."""
    if not DUCKDB_DELTA_PYTHON.exists():
        pytest.fail(f"{DUCKDB_DELTA_PYTHON} is missing: run `make venv-duckdb-delta`", pytrace=False)
    r = subprocess.run([str(extract_bin), "schema", "--dest", str(extraction_local_delta.dest), "--duckdb-view",
                        "calls"], capture_output=True, env=local_env(), timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, tail(r.stderr)
    view = tmp_path / "view.sql"
    view.write_bytes(r.stdout)
    script = DUCKDB_SCRIPT.split("table, out =")[0] + (
        "con.execute(open(sys.argv[1]).read())\n"
        "print(con.sql('SELECT count(*) FROM calls').fetchone()[0])\n"
    )
    r = subprocess.run([str(DUCKDB_DELTA_PYTHON), "-c", script, str(view)], capture_output=True, env=local_env(),
                       timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, tail(r.stderr)
    files = [p for p in (extraction_local_delta.dest / TABLE).rglob("*.parquet") if "_delta_log" not in p.parts]
    assert len(files) > len(deltalake_files(extraction_local_delta.dest / TABLE)), "earlier versions' files are there"
    assert int(r.stdout.decode().strip()) == len(dumps[TABLE])


def deltalake_files(table: Path) -> list[str]:
    import deltalake

    return deltalake.DeltaTable(str(table)).file_uris()
