"""Labels of custom fields, as analysts meet them: `cube.labels` in every file read through DuckDB's
`parquet_kv_metadata`, PyArrow and Polars, and the DuckDB view of `cube-extract schema --duckdb-view`
run by real DuckDB.

Run: `.venv/bin/pytest tests/interop` after `cargo build --all-targets` (see conftest.py).
"""

from __future__ import annotations

import json
import subprocess

import pyarrow.parquet as pq

from conftest import Scenario, local_env, tail


def _labels(scenario: Scenario) -> dict[str, str]:
    """column -> label, from schema.json (the columns that are in the files)."""
    return {c["name"]: c["label"] for c in scenario.columns
            if c.get("label") and c.get("personal_data") != "dropped"}


def _duckdb():
    import duckdb

    return duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})


def test_every_file_carries_the_labels_readable_by_duckdb_pyarrow_and_polars(scenario: Scenario):
    import polars as pl

    labels = _labels(scenario)
    assert len(labels) >= 5, f"schema.json labels too few custom columns: {labels}"
    files = scenario.parquet_files()
    con = _duckdb()
    try:
        glob = str(scenario.table / "**" / "*.parquet").replace("'", "''")
        rows = con.execute(
            f"SELECT file_name, value FROM parquet_kv_metadata('{glob}') WHERE key = 'cube.labels'"
        ).fetchall()
    finally:
        con.close()
    assert len(rows) == len(files), f"{len(rows)} files with cube.labels out of {len(files)}"
    bad = [f for f, v in rows if json.loads(v) != labels]
    assert not bad, f"cube.labels differs from schema.json in {len(bad)} files, e.g. {bad[:3]}"
    first = files[0]
    assert json.loads(pq.read_metadata(first).metadata[b"cube.labels"]) == labels
    assert json.loads(pl.read_parquet_metadata(first)["cube.labels"]) == labels


def test_the_duckdb_view_names_custom_columns_by_label(scenario: Scenario, extract_bin):
    table_flag = scenario.table.name.replace("_", "-")
    cmd = [str(extract_bin), "schema", "--dest", str(scenario.dest), "--table", table_flag,
           "--duckdb-view", "labelled"]
    r = subprocess.run(cmd, capture_output=True, env=local_env(), timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}: {tail(r.stderr)}"
    sql = r.stdout.decode()
    labels = _labels(scenario)
    con = _duckdb()
    try:
        con.execute(sql)
        view_cols = [d[0] for d in con.execute("SELECT * FROM labelled LIMIT 0").description]
        count = con.execute("SELECT count(*) FROM labelled").fetchone()[0]
        glob = str(scenario.table / "**" / "*.parquet").replace("'", "''")
        for column, label in labels.items():
            same = con.execute(
                f"""SELECT count(*) FROM labelled v JOIN read_parquet('{glob}', hive_partitioning = true) t
                    USING (campaign_id, "date", crm__customer_id)
                    WHERE v."{label.replace('"', '""')}" IS NOT DISTINCT FROM t."{column.replace('"', '""')}" """
            ).fetchone()[0]
            assert same == count, f"{label!r} does not hold the values of {column!r} ({same} of {count} rows)"
    finally:
        con.close()
    assert count == len(scenario.expected), f"the view has {count} rows, the dump {len(scenario.expected)}"
    in_files = [c["name"] for c in scenario.columns if c.get("personal_data") != "dropped"]
    assert len(view_cols) == len(in_files) + len(scenario.layout_columns), view_cols
    assert view_cols[-len(scenario.layout_columns):] == list(scenario.layout_columns), view_cols
    for label in labels.values():
        assert label in view_cols, f"label {label!r} is not a column of the view: {view_cols}"
