"""`""` survives a widening: a column that held numbers or booleans and `""` stores `""` as null
(the contract); once it widens to Utf8, every `""` the API served in it must read back as `""`,
including in files written before the widening, and every null as null. Checked with DuckDB and
PyArrow in each call-outcomes scenario: three overlapping runs (the second meets the drift after
some of its own days and all of the first run's were committed) and four concurrent writers plus
`reconcile`, each on local disk and on S3.
"""

from __future__ import annotations

from typing import Any

import pytest

from conftest import TABLE, Scenario, normalise_actual, partition_date, row_key


def cells(scenario: Scenario) -> dict[tuple, dict[str, Any]]:
    """Row key -> column -> raw JSON value, for the columns widened to Utf8 where the API served
    `""` or null."""
    columns = [c for c in scenario.widened_to_utf8 if scenario.types.get(c) == "Utf8"]
    out: dict[tuple, dict[str, Any]] = {}
    for key, raw in scenario.expected_raw.items():
        picked = {c: raw[c] for c in columns if raw.get(c) == "" or raw.get(c) is None}
        if picked:
            out[key] = picked
    return out


def check(scenario: Scenario, engine: str, rows: list[dict[str, Any]]) -> None:
    customer = scenario.key_to_column.get("crm__customer_id", "crm__customer_id")
    expected = cells(scenario)
    empty = sum(1 for picked in expected.values() for v in picked.values() if v == "")
    assert empty > 0, f"the scenario serves no \"\" in a column widened to Utf8 ({scenario.widened_to_utf8})"
    wrong = []
    for row in rows:
        key = row_key(row["campaign_id"], partition_date(row["date"]), normalise_actual(row[customer]))
        for column, raw in expected.get(key, {}).items():
            if row[column] != raw:
                wrong.append(f"{key} {column!r}: served {raw!r}, read {row[column]!r}")
    assert not wrong, f"{engine}: {len(wrong)} of {empty} \"\" and the nulls beside them differ, e.g. {wrong[:5]}"


def selected(scenario: Scenario) -> list[str]:
    customer = scenario.key_to_column.get("crm__customer_id", "crm__customer_id")
    return sorted({customer, *scenario.widened_to_utf8})


@pytest.fixture
def call_outcomes(scenario: Scenario) -> Scenario:
    if scenario.table.name != TABLE:
        pytest.skip("the drift quirks are in call outcomes")
    return scenario


def test_duckdb_reads_back_every_empty_string(call_outcomes: Scenario):
    import duckdb

    sc = call_outcomes
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        glob = str(sc.table / "**" / "*.parquet").replace("'", "''")
        names = ", ".join('"' + c.replace('"', '""') + '"' for c in selected(sc))
        rel = con.sql(f"SELECT campaign_id, date, {names} FROM read_parquet('{glob}', hive_partitioning = true)")
        columns = list(rel.columns)
        rows = [dict(zip(columns, r)) for r in rel.fetchall()]
    finally:
        con.close()
    check(sc, "DuckDB", rows)


def test_pyarrow_reads_back_every_empty_string(call_outcomes: Scenario):
    import pyarrow.dataset as ds

    sc = call_outcomes
    table = ds.dataset(str(sc.table), format="parquet", partitioning="hive").to_table(
        columns=["campaign_id", "date", *selected(sc)]
    )
    check(sc, "PyArrow", table.to_pylist())
