"""The query examples of examples/queries run against the extracted data and count what the
simulator served (the Airflow examples have their own tests and venv: tests/airflow).

Run: `.venv/bin/pytest tests/interop` after `cargo build --all-targets` (see conftest.py).
"""

from __future__ import annotations

import collections
import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO, TABLE, Scenario, local_env

QUERIES = REPO / "examples" / "queries"


def _load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _expected_counts(scenario: Scenario) -> dict[tuple[str, int, str], int]:
    """(date, campaign, call_outcome__type) -> records the simulator served."""
    counts = collections.Counter()
    for d in scenario.dump:
        counts[(d["date"], d["campaign_id"], d["record"].get("call_outcome__type"))] += 1
    return dict(counts)


def _only_call_outcomes(scenario: Scenario):
    if scenario.table.name != TABLE:
        pytest.skip("the query examples read call outcomes")


def test_duckdb_example(scenario: Scenario):
    import duckdb

    _only_call_outcomes(scenario)
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.execute("SET VARIABLE lake = ?", [str(scenario.dest)])
        rows = con.execute((QUERIES / "duckdb.sql").read_text()).fetchall()
    finally:
        con.close()
    got = {(str(d), c, t): n for d, c, t, n in rows}
    assert got == _expected_counts(scenario)


def test_polars_example(scenario: Scenario):
    _only_call_outcomes(scenario)
    r = subprocess.run([sys.executable, str(QUERIES / "polars_outcomes.py"), str(scenario.dest)],
                       capture_output=True, text=True, env=local_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "date,campaign_id,call_outcome__type,calls"
    got = {}
    for line in lines[1:]:
        d, c, t, n = line.split(",")
        got[(d, int(c), t)] = int(n)
    assert got == _expected_counts(scenario)


def test_spark_example(scenario: Scenario, spark):
    _only_call_outcomes(scenario)
    df = _load(QUERIES / "spark_outcomes.py").outcomes_per_day(spark, str(scenario.dest))
    got = {(str(r["date"]), r["campaign_id"], r["call_outcome__type"]): r["calls"] for r in df.collect()}
    assert got == _expected_counts(scenario)
