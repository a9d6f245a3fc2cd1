"""The tables beside call outcomes (customers, customer_status, campaigns, crm_custom_fields), as one
`cube-extract sync` writes them, read by DuckDB, Polars (directory and glob), PyArrow and Spark with
their plain calls, must equal the simulator's dump; and the README's join of call outcomes to
customers and campaigns (examples/queries/*_join.*) must count exactly what the simulator implies.

Run: `.venv/bin/pytest tests/interop` after `cargo build --all-targets` (see conftest.py).
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    ABSENT,
    CAMPAIGN_ARG,
    DATA_FLAGS,
    REPO,
    RUN_TIMEOUT,
    TOKEN,
    load_module,
    local_env,
    normalise_actual,
    normalise_expected,
    parse_json_line,
    same_value,
    tail,
)

QUERIES = REPO / "examples" / "queries"
FROM, TO = "2019-08-01", "2019-08-03"

# table -> (dump --table, partition columns, unique key)
NEW_TABLES = {
    "customers": ("customers", ("data_owner_id", "crm_type"), "crm__customer_id"),
    "customer_status": ("customer-status", ("campaign_id",), "crm__customer_id"),
    "campaigns": ("campaigns", (), "campaign__id"),
    "crm_custom_fields": ("crm-custom-fields", ("data_owner_id", "crm_type"), "id"),
}


def dump(sim_bin: Path, table: str, *extra: str) -> list[dict[str, Any]]:
    cmd = [str(sim_bin), "dump", "--table", table, "--campaign", CAMPAIGN_ARG, *DATA_FLAGS, *extra]
    r = subprocess.run(cmd, capture_output=True, env=local_env(), timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        pytest.fail(f"`{' '.join(cmd)}` exited {r.returncode}\nstderr:\n{tail(r.stderr)}", pytrace=False)
    return [parse_json_line(line) for line in r.stdout.decode("utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def lake(tmp_path_factory, extract_bin: Path, simulator) -> Path:
    dest = tmp_path_factory.mktemp("sync") / "lake"
    cmd = [str(extract_bin), "sync", "--base-url", simulator.url, "--token", TOKEN, "--campaign", CAMPAIGN_ARG,
           "--from", FROM, "--to", TO, "--dest", str(dest), "--log-format", "json"]
    r = subprocess.run(cmd, capture_output=True, env=local_env(), timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        pytest.fail(f"`{' '.join(cmd)}` exited {r.returncode}\nstderr:\n{tail(r.stderr)}", pytrace=False)
    return dest


def schema_columns(lake: Path, table: str) -> list[dict[str, Any]]:
    schema = json.loads((lake / "_cube_extract" / table / "schema.json").read_text())
    return [c for c in schema["columns"] if c.get("personal_data") != "dropped"]


def part_key(value: Any) -> str:
    return str(value)


def check_table(lake: Path, sim_bin: Path, table: str, engine: str, rows: list[dict[str, Any]]) -> None:
    dump_name, partitions, unique = NEW_TABLES[table]
    columns = schema_columns(lake, table)
    expected = {}
    for rec in dump(sim_bin, dump_name):
        key = tuple(part_key(rec.pop(f"__{p}").text if hasattr(rec[f"__{p}"], "text") else rec.pop(f"__{p}"))
                    for p in partitions)
        uid = rec[unique]
        expected[key + (getattr(uid, "text", uid),)] = rec
    assert len(rows) == len(expected), f"{engine} read {len(rows)} rows of {table}, the simulator served {len(expected)}"
    names = [c["name"] for c in columns] + list(partitions)
    problems = []
    for row in rows:
        assert sorted(row) == sorted(names), f"{engine}: columns of {table} are {sorted(row)}"
        key = tuple(part_key(row[p]) for p in partitions) + (part_key(row[unique]),)
        rec = expected.get(key)
        if rec is None:
            problems.append(f"unexpected row {key}")
            continue
        for c in columns:
            want = normalise_expected(rec.get(c["source_key"], ABSENT), c["type"])
            got = normalise_actual(row[c["name"]])
            if not same_value(want, got):
                problems.append(f"{key} {c['name']}: got {got!r}, want {want!r}")
    assert not problems, f"{engine} {table}: {len(problems)} differences, first: {problems[:5]}"


@pytest.mark.parametrize("table", sorted(NEW_TABLES))
def test_duckdb(lake: Path, sim_bin: Path, table: str):
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        glob = str(lake / table / "**" / "*.parquet").replace("'", "''")
        rel = con.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true)")
        rows = [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    finally:
        con.close()
    check_table(lake, sim_bin, table, "DuckDB", rows)


@pytest.mark.parametrize("table", sorted(NEW_TABLES))
def test_polars_directory(lake: Path, sim_bin: Path, table: str):
    import polars as pl

    df = pl.scan_parquet(f"{lake / table}/", hive_partitioning=True).collect()
    check_table(lake, sim_bin, table, "Polars directory", df.to_dicts())


@pytest.mark.parametrize("table", sorted(NEW_TABLES))
def test_polars_glob(lake: Path, sim_bin: Path, table: str):
    import polars as pl

    df = pl.scan_parquet(f"{lake / table}/**/*.parquet", hive_partitioning=True).collect()
    check_table(lake, sim_bin, table, "Polars glob", df.to_dicts())


@pytest.mark.parametrize("table", sorted(NEW_TABLES))
def test_pyarrow(lake: Path, sim_bin: Path, table: str):
    import pyarrow.parquet as pq

    t = pq.read_table(lake / table)
    check_table(lake, sim_bin, table, "PyArrow", t.to_pylist())


@pytest.mark.parametrize("table", sorted(NEW_TABLES))
def test_spark(lake: Path, sim_bin: Path, table: str, spark):
    rows = [r.asDict() for r in spark.read.parquet(str(lake / table)).collect()]
    check_table(lake, sim_bin, table, "Spark", rows)


# --------------------------------------------------------------------------------------------
# The join of the README.


@pytest.fixture(scope="module")
def implied(sim_bin: Path) -> dict[tuple[str, str], int]:
    """(campaign name, customer region) -> calls, from the simulator's dumps: each call outcome
    joined to its campaign and to its CRM's customer of the same id."""
    campaigns = {c["campaign__id"].text: c for c in dump(sim_bin, "campaigns")}
    customers = {}
    for c in dump(sim_bin, "customers"):
        customers[(c["__data_owner_id"].text, c["__crm_type"], c["crm__customer_id"])] = c
    counts = collections.Counter()
    for rec in dump(sim_bin, "call-outcomes", "--from", FROM, "--to", TO):
        campaign = campaigns[rec["__campaign_id"].text]
        customer = customers.get((campaign["data_owner__id"].text, campaign["campaign__crm_type"],
                                  rec["crm__customer_id"]))
        assert customer is not None, f"call outcome of unknown customer {rec['crm__customer_id']}"
        counts[(campaign["campaign__name"], customer["crm__custom_info__3902"])] += 1
    assert counts
    return dict(counts)


def test_duckdb_join(lake: Path, implied):
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.execute("SET VARIABLE lake = ?", [str(lake)])
        rows = con.execute((QUERIES / "duckdb_join.sql").read_text()).fetchall()
    finally:
        con.close()
    assert {(n, r): c for n, r, c in rows} == implied


def test_polars_join(lake: Path, implied):
    r = subprocess.run([sys.executable, str(QUERIES / "polars_join.py"), str(lake)],
                       capture_output=True, text=True, env=local_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    df = load_module(QUERIES / "polars_join.py").calls_per_region(str(lake))
    assert {(d["campaign__name"], d["region"]): d["calls"] for d in df.to_dicts()} == implied


def test_spark_join(lake: Path, implied, spark):
    df = load_module(QUERIES / "spark_join.py").calls_per_region(spark, str(lake))
    assert {(r["campaign__name"], r["region"]): r["calls"] for r in df.collect()} == implied
