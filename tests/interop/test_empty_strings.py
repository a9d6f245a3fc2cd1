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

from conftest import TABLE, JsonNumber, Scenario, normalise_actual, partition_date, row_key


def mixed_utf8_columns(scenario: Scenario) -> list[str]:
    """Columns that ended as Utf8 though the API also served numbers or booleans in them: those a
    writer may have written typed (with `""` as null) before it met the text. Taken from the
    dump, not from the reports, whose widenings depend on which writer met the drift first."""
    utf8 = {c for c, t in scenario.types.items() if t == "Utf8"}
    mixed = set()
    for raw in scenario.expected_raw.values():
        for c in utf8 - mixed:
            v = raw.get(c)
            if isinstance(v, (bool, int, float, JsonNumber)):
                mixed.add(c)
    return sorted(mixed)


def cells(scenario: Scenario) -> dict[tuple, dict[str, Any]]:
    """Row key -> column -> raw JSON value, for the mixed Utf8 columns where the API served `""`
    or null."""
    columns = mixed_utf8_columns(scenario)
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
    assert empty > 0, f"the scenario serves no \"\" in a Utf8 column of numbers or booleans ({mixed_utf8_columns(scenario)})"
    wrong = []
    for row in rows:
        key = row_key(row["campaign_id"], partition_date(row["date"]), normalise_actual(row[customer]))
        for column, raw in expected.get(key, {}).items():
            if row[column] != raw:
                wrong.append(f"{key} {column!r}: served {raw!r}, read {row[column]!r}")
    assert not wrong, f"{engine}: {len(wrong)} of {empty} \"\" and the nulls beside them differ, e.g. {wrong[:5]}"


def selected(scenario: Scenario) -> list[str]:
    customer = scenario.key_to_column.get("crm__customer_id", "crm__customer_id")
    return sorted({customer, *mixed_utf8_columns(scenario)})


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
