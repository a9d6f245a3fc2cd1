"""Tables of the CRM and the account scope (`--scope crm|account`), as `cube-extract sync` writes them
against a simulator that anonymizes every 9th customer, read by DuckDB, Polars (directory and glob),
PyArrow and Spark with their plain calls, must hold exactly the simulator's dump of that scope (as
multisets: a CRM's or the account's listing may hold one customer twice on a day, once per campaign);
and the README's join of account-scope call outcomes to campaigns (by name within the data owner) and
customers (anonymized ids left out) must count exactly what the simulator implies.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    ABSENT,
    CAMPAIGN_ARG,
    REPO,
    RUN_TIMEOUT,
    TOKEN,
    load_module,
    local_env,
    normalise_actual,
    normalise_expected,
    parse_json_line,
    partition_date,
    serve,
    tail,
)

QUERIES = REPO / "examples" / "queries"
FROM, TO = "2019-08-01", "2019-08-03"
FLAGS = ["--quirks", "drift,new-keys,odd-keys,empty-days", "--seed", "7", "--campaigns", "3",
         "--rows-per-day", "60", "--anonymize-every", "9", "--customers-per-crm", "400"]
SCOPES = ("crm", "account")
# (scope, table) -> (dump flags, partition columns)
LAYOUTS = {
    ("crm", "call_outcomes"): (["--scope", "crm", "--from", FROM, "--to", TO], ("data_owner_id", "crm_type", "date")),
    ("crm", "product_registrations"): (["--table", "product-registrations", "--scope", "crm", "--from", FROM,
                                        "--to", TO], ("data_owner_id", "crm_type", "date")),
    ("crm", "customer_status"): (["--table", "customer-status", "--scope", "crm"], ("data_owner_id", "crm_type")),
    ("account", "call_outcomes"): (["--scope", "account", "--from", FROM, "--to", TO], ("date",)),
    ("account", "product_registrations"): (["--table", "product-registrations", "--scope", "account", "--from", FROM,
                                            "--to", TO], ("date",)),
}


def dump(sim_bin: Path, *extra: str, campaigns: str = CAMPAIGN_ARG) -> list[dict[str, Any]]:
    cmd = [str(sim_bin), "dump", "--campaign", campaigns, *FLAGS, *extra]
    r = subprocess.run(cmd, capture_output=True, env=local_env(), timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        pytest.fail(f"`{' '.join(cmd)}` exited {r.returncode}\nstderr:\n{tail(r.stderr)}", pytrace=False)
    return [parse_json_line(line) for line in r.stdout.decode("utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def lakes(tmp_path_factory, sim_bin: Path, extract_bin: Path) -> dict[str, Path]:
    """One `sync --scope S --all-campaigns` per scope, each into its own destination."""
    out = {}
    with serve(sim_bin, ["--page-size", "41", *FLAGS]) as sim:
        for scope in SCOPES:
            dest = tmp_path_factory.mktemp(f"scope-{scope}") / "lake"
            cmd = [str(extract_bin), "sync", "--scope", scope, "--all-campaigns", "--base-url", sim.url, "--token",
                   TOKEN, "--from", FROM, "--to", TO, "--dest", str(dest), "--log-format", "json"]
            r = subprocess.run(cmd, capture_output=True, env=local_env(), timeout=RUN_TIMEOUT,
                               stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                pytest.fail(f"`{' '.join(cmd)}` exited {r.returncode}\nstderr:\n{tail(r.stderr)}", pytrace=False)
            out[scope] = dest
    return out


def canon(v: Any) -> tuple:
    """A value with its kind, hashable: 1, 1.0 and True stay apart, as do naive and zoned times."""
    if v is None:
        return ("null",)
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        return ("float", v)
    if isinstance(v, str):
        return ("str", v)
    if isinstance(v, dt.datetime):
        return ("datetime", v.tzinfo is None, v.isoformat())
    if isinstance(v, dt.date):
        return ("date", v.isoformat())
    return ("other", repr(v))


def partition_text(name: str, v: Any) -> str:
    return partition_date(v) if name == "date" else str(v)


def check(lake: Path, sim_bin: Path, scope: str, table: str, engine: str, rows: list[dict[str, Any]]) -> None:
    flags, partitions = LAYOUTS[(scope, table)]
    schema = json.loads((lake / "_cube_extract" / table / "schema.json").read_text())
    assert schema["scope"] == scope
    columns = [c for c in schema["columns"] if c.get("personal_data") != "dropped"]
    expected = collections.Counter()
    for rec in dump(sim_bin, *flags):
        key = tuple(partition_text(p, getattr(rec[f"__{p}"], "text", rec[f"__{p}"])) for p in partitions)
        values = tuple(canon(normalise_expected(rec.get(c["source_key"], ABSENT), c["type"])) for c in columns)
        expected[key + values] += 1
    # The tables by date are month tables (the default): `month` is their folder, `date` a column.
    by_month = "date" in partitions
    assert schema.get("partitioning") == ("month" if by_month else None)
    names = sorted([c["name"] for c in columns] + list(partitions) + (["month"] if by_month else []))
    actual = collections.Counter()
    for row in rows:
        assert sorted(row) == names, f"{engine}: columns of {table} are {sorted(row)}"
        if by_month:
            date = row["date"]
            assert isinstance(date, dt.date) and not isinstance(date, dt.datetime), f"{engine}: date is {date!r}"
            assert str(row["month"]) == date.isoformat()[:7], f"{engine}: {date} in month {row['month']!r}"
        key = tuple(partition_text(p, row[p]) for p in partitions)
        actual[key + tuple(canon(normalise_actual(row[c["name"]])) for c in columns)] += 1
    assert sum(actual.values()) == sum(expected.values()), (
        f"{engine} read {sum(actual.values())} rows of {scope} {table}, the simulator served {sum(expected.values())}")
    missing, extra = expected - actual, actual - expected
    assert not missing and not extra, (
        f"{engine} {scope} {table}: {sum(missing.values())} rows missing, {sum(extra.values())} unexpected; "
        f"first missing {list(missing)[:1]}")


CASES = sorted(LAYOUTS)


@pytest.mark.parametrize("scope,table", CASES)
def test_duckdb(lakes, sim_bin: Path, scope: str, table: str):
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        glob = str(lakes[scope] / table / "**" / "*.parquet").replace("'", "''")
        rel = con.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true)")
        rows = [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    finally:
        con.close()
    check(lakes[scope], sim_bin, scope, table, "DuckDB", rows)


@pytest.mark.parametrize("scope,table", CASES)
def test_polars_directory(lakes, sim_bin: Path, scope: str, table: str):
    import polars as pl

    df = pl.scan_parquet(f"{lakes[scope] / table}/", hive_partitioning=True).collect()
    check(lakes[scope], sim_bin, scope, table, "Polars directory", df.to_dicts())


@pytest.mark.parametrize("scope,table", CASES)
def test_polars_glob(lakes, sim_bin: Path, scope: str, table: str):
    import polars as pl

    df = pl.scan_parquet(f"{lakes[scope] / table}/**/*.parquet", hive_partitioning=True).collect()
    check(lakes[scope], sim_bin, scope, table, "Polars glob", df.to_dicts())


@pytest.mark.parametrize("scope,table", CASES)
def test_pyarrow(lakes, sim_bin: Path, scope: str, table: str):
    import pyarrow.parquet as pq

    check(lakes[scope], sim_bin, scope, table, "PyArrow", pq.read_table(lakes[scope] / table).to_pylist())


@pytest.mark.parametrize("scope,table", CASES)
def test_spark(lakes, sim_bin: Path, scope: str, table: str, spark):
    # Arrow collection keeps zoned timestamps as instants (collect() would give naive local times).
    rows = spark.read.parquet(str(lakes[scope] / table)).toArrow().to_pylist()
    check(lakes[scope], sim_bin, scope, table, "Spark", rows)


# --------------------------------------------------------------------------------------------
# The join of the README for call outcomes without a campaign id.


@pytest.fixture(scope="module")
def implied(sim_bin: Path) -> dict[tuple[int, str, str], int]:
    """(campaign id, campaign name, customer region) -> calls: each call outcome of the account's
    listing, its campaign found by the dump's own campaign id, joined to its CRM's customer of the same
    non-empty id."""
    campaigns = {c["campaign__id"].text: c for c in dump(sim_bin, "--table", "campaigns")}
    customers = {}
    for c in dump(sim_bin, "--table", "customers"):
        customers[(c["__data_owner_id"].text, c["__crm_type"], c["crm__customer_id"])] = c
    counts = collections.Counter()
    anonymized = 0
    for rec in dump(sim_bin, "--from", FROM, "--to", TO, campaigns=",".join(campaigns)):
        if rec["crm__customer_id"] == "":
            anonymized += 1
            continue
        campaign = campaigns[rec["__campaign_id"].text]
        customer = customers[(campaign["data_owner__id"].text, campaign["campaign__crm_type"], rec["crm__customer_id"])]
        counts[(int(campaign["campaign__id"].text), campaign["campaign__name"], customer["crm__custom_info__3902"])] += 1
    assert counts and anonymized, "the scenario holds calls of anonymized customers"
    return dict(counts)


def test_duckdb_account_join(lakes, implied):
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.execute("SET VARIABLE lake = ?", [str(lakes["account"])])
        rows = con.execute((QUERIES / "duckdb_account_join.sql").read_text()).fetchall()
    finally:
        con.close()
    assert {(i, n, r): c for i, n, r, c in rows} == implied


def test_polars_account_join(lakes, implied):
    lake = str(lakes["account"])
    r = subprocess.run([sys.executable, str(QUERIES / "polars_join.py"), lake, "account"],
                       capture_output=True, text=True, env=local_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    df = load_module(QUERIES / "polars_join.py").account_calls_per_region(lake)
    assert {(d["campaign__id"], d["campaign__name"], d["region"]): d["calls"] for d in df.to_dicts()} == implied


def test_spark_account_join(lakes, implied, spark):
    df = load_module(QUERIES / "spark_join.py").account_calls_per_region(spark, str(lakes["account"]))
    assert {(r["campaign__id"], r["campaign__name"], r["region"]): r["calls"] for r in df.collect()} == implied
