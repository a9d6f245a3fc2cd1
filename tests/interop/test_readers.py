"""The output of a drifting, overlapping multi-run extraction, read back by DuckDB, Polars, PyArrow
and Spark with their plain calls (no union/merge options), must equal the simulator's dump.

Run: `.venv/bin/pytest tests/interop` after `cargo build --all-targets` (see conftest.py).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import (
    ARROW_TYPES,
    CAMPAIGNS,
    MAX_SHOWN,
    PARTITION_COLUMNS,
    REPO,
    TOKEN,
    JsonNumber,
    Scenario,
    days,
    nfc,
)


# --------------------------------------------------------------------------------------------
# Readers, each with its plain call.


def test_duckdb(scenario: Scenario):
    import duckdb

    # No extension downloads (nothing leaves 127.0.0.1); a non-UTC session zone makes a naive/zoned
    # timestamp mix-up visible as shifted values.
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.execute("SET TimeZone = 'America/Sao_Paulo'")
        glob = str(scenario.table / "**" / "*.parquet").replace("'", "''")
        rel = con.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true)")
        columns = list(rel.columns)
        rows = [dict(zip(columns, r)) for r in rel.fetchall()]
    finally:
        con.close()
    scenario.check_reader("DuckDB read_parquet", columns, rows)


def test_polars_directory(scenario: Scenario):
    import polars as pl

    df = pl.scan_parquet(f"{scenario.table}/", hive_partitioning=True).collect()
    scenario.check_reader("Polars scan_parquet(directory)", df.columns, df.to_dicts())


def test_polars_glob(scenario: Scenario):
    import polars as pl

    df = pl.scan_parquet(f"{scenario.table}/**/*.parquet", hive_partitioning=True).collect()
    scenario.check_reader("Polars scan_parquet(glob)", df.columns, df.to_dicts())


def test_pyarrow_dataset(scenario: Scenario):
    import pyarrow.dataset as ds

    table = ds.dataset(str(scenario.table), format="parquet", partitioning="hive").to_table()
    scenario.check_reader("PyArrow dataset", table.column_names, table.to_pylist())


def test_spark(scenario: Scenario, spark):
    df = spark.read.parquet(str(scenario.table))
    # Arrow collection keeps zoned timestamps as instants (collect() would give naive local times).
    table = df.toArrow()
    scenario.check_reader("Spark read.parquet", df.columns, table.to_pylist())


# --------------------------------------------------------------------------------------------
# The files themselves.


def test_table_root_holds_only_partition_folders_and_parquet_files(scenario: Scenario):
    table = scenario.table
    assert table.is_dir(), f"{table} does not exist"
    # A day table: campaign_id=*/date=YYYY-MM-DD/; a month table: campaign_id=*/month=YYYY-MM/.
    key, shape, fmt = {
        "day": ("date", r"\d{4}-\d{2}-\d{2}", "%Y-%m-%d"),
        "month": ("month", r"\d{4}-\d{2}", "%Y-%m"),
    }[scenario.layout]
    stray: list[str] = []
    with_files: set[tuple[int, str]] = set()
    for top in sorted(table.iterdir()):
        m = re.fullmatch(r"campaign_id=(\d+)", top.name)
        if not (top.is_dir() and not top.is_symlink() and m):
            stray.append(str(top.relative_to(table)))
            continue
        for sub in sorted(top.iterdir()):
            d = re.fullmatch(f"{key}=({shape})", sub.name)
            try:
                valid = d is not None and dt.datetime.strptime(d.group(1), fmt).strftime(fmt) == d.group(1)
            except ValueError:
                valid = False
            if not (sub.is_dir() and not sub.is_symlink() and valid):
                stray.append(str(sub.relative_to(table)))
                continue
            for f in sorted(sub.iterdir()):
                if f.is_file() and not f.is_symlink() and f.name.endswith(".parquet") and not f.name.startswith((".", "_")):
                    with_files.add((int(m.group(1)), d.group(1)))
                else:
                    stray.append(str(f.relative_to(table)))
    assert not stray, f"entries under {table} that are not campaign_id=*/{key}=*/ folders or .parquet files: {stray[:MAX_SHOWN]}"

    width = len(dt.date(2000, 1, 1).strftime(fmt))
    want = {(d["campaign_id"], d["date"][:width]) for d in scenario.dump}
    missing, extra = sorted(want - with_files), sorted(with_files - want)
    assert not missing and not extra, (
        f"partitions with data files differ from the dump's non-empty (campaign, {key}) pairs: "
        f"missing {missing[:MAX_SHOWN]}, unexpected {extra[:MAX_SHOWN]}"
    )


def test_every_file_has_every_column_with_the_same_type(scenario: Scenario):
    files = scenario.parquet_files()
    assert files, f"no files under {scenario.table}"
    declared = {}
    bad_decl = []
    for name, t in scenario.types.items():
        if t in ARROW_TYPES:
            declared[name] = ARROW_TYPES[t]
        else:
            bad_decl.append((name, t))
    assert not bad_decl, f"schema.json declares types outside the contract: {bad_decl[:MAX_SHOWN]}"
    if scenario.layout == "month":
        declared["date"] = pa.date32()  # a month file holds each row's day

    # problem -> files it occurs in, so that one defect repeated in every file reads as one line.
    problems: dict[str, list[str]] = collections.defaultdict(list)
    seen_types: dict[str, set[str]] = collections.defaultdict(set)
    for f in files:
        rel = str(f.relative_to(scenario.table))
        try:
            schema = pq.read_schema(f)
        except Exception as e:  # noqa: BLE001
            problems[f"unreadable: {e}"].append(rel)
            continue
        names = schema.names
        repeated = sorted(n for n, c in collections.Counter(names).items() if c > 1)
        if repeated:
            problems[f"repeated columns {repeated}"].append(rel)
        missing = sorted(set(declared) - set(names))
        extra = sorted(set(names) - set(declared))
        if missing:
            problems[f"lacks columns {missing[:MAX_SHOWN]} ({len(missing)})"].append(rel)
        if extra:
            problems[f"has columns not in schema.json {extra[:MAX_SHOWN]} ({len(extra)})"].append(rel)
        for field in schema:
            t = field.type
            seen_types[field.name].add(str(t))
            if (pa.types.is_null(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
                    or pa.types.is_dictionary(t)):
                problems[f"column {field.name!r} has the forbidden type {t}"].append(rel)
            elif field.name in declared and t != declared[field.name]:
                problems[f"column {field.name!r} is {t}, schema.json says "
                         f"{scenario.types[field.name]} ({declared[field.name]})"].append(rel)
    varying = {n: sorted(ts) for n, ts in seen_types.items() if len(ts) > 1}
    lines = [f"columns whose type differs between files: {dict(list(varying.items())[:MAX_SHOWN])}"] if varying else []
    for msg, where in list(problems.items())[: 2 * MAX_SHOWN]:
        lines.append(f"{msg}: in {len(where)} of {len(files)} files, e.g. {where[:3]}")
    if lines:
        raise AssertionError(f"{len(problems)} kinds of schema problems in the data files:\n  " + "\n  ".join(lines))


def test_files_are_zstd_compressed(scenario: Scenario):
    files = scenario.parquet_files()
    assert files, f"no files under {scenario.table}"
    other = collections.Counter()
    for f in files:
        md = pq.ParquetFile(f).metadata
        for rg in range(md.num_row_groups):
            for c in range(md.num_columns):
                codec = md.row_group(rg).column(c).compression
                if codec != "ZSTD":
                    other[(str(f.relative_to(scenario.table)), codec)] += 1
    assert not other, f"column chunks not zstd-compressed: {dict(list(other.items())[:MAX_SHOWN])}"


# --------------------------------------------------------------------------------------------
# schema.json against the dump.


def test_schema_json_names_follow_the_contract(scenario: Scenario):
    problems: list[str] = []
    if scenario.schema.get("dataset") != scenario.table.name:
        problems.append(f"dataset is {scenario.schema.get('dataset')!r}")
    if not isinstance(scenario.schema.get("version"), int):
        problems.append(f"version is {scenario.schema.get('version')!r}, not an integer")
    for c in scenario.columns:
        missing = [k for k in ("name", "type", "source_key", "label", "first_seen") if k not in c]
        if missing:
            problems.append(f"column {c.get('name')!r} lacks {missing}")
    names = scenario.column_names
    folded = collections.Counter(n.lower() for n in names)
    clash = sorted(n for n, k in folded.items() if k > 1)
    if clash:
        problems.append(f"column names equal ignoring case: {clash[:MAX_SHOWN]}")
    shadow = [n for n in names if n.lower() in PARTITION_COLUMNS]
    if shadow:
        problems.append(f"columns that shadow a partition column: {shadow}")
    not_nfc = [n for n in names if nfc(n) != n]
    if not_nfc:
        problems.append(f"column names not in NFC: {[n.encode('unicode_escape').decode() for n in not_nfc]}")
    # A key that needs no disambiguation keeps its (NFC) name exactly.
    source_folded = collections.Counter(nfc(c["source_key"]).lower() for c in scenario.columns if isinstance(c.get("source_key"), str))
    for c in scenario.columns:
        sk = c.get("source_key")
        if not isinstance(sk, str):
            continue
        f = nfc(sk).lower()
        if f not in PARTITION_COLUMNS and source_folded[f] == 1 and c["name"] != nfc(sk):
            problems.append(f"key {sk!r} became column {c['name']!r} although it clashes with nothing")
    if scenario.unmapped_keys:
        problems.append(f"dump keys with no column (source_key): {scenario.unmapped_keys[:MAX_SHOWN]}")
    if scenario.ambiguous_keys:
        problems.append(f"dump keys claimed by several columns: {dict(list(scenario.ambiguous_keys.items())[:MAX_SHOWN])}")
    assert not problems, "schema.json:\n  " + "\n  ".join(problems)


def _contract_type(values: list) -> str | None:
    """The type the contract prescribes for an unknown key with these JSON values; None if it leaves it open."""
    kinds = set()
    big = False
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            kinds.add("bool")
        elif isinstance(v, JsonNumber):
            if v.is_integer_literal:
                kinds.add("int")
                big |= abs(int(v.text)) > 2**53
            else:
                kinds.add("frac")
        elif isinstance(v, str):
            kinds.add("str" if v != "" else "empty")
        else:
            return None
    if "str" in kinds:
        return "Utf8"
    kinds.discard("empty")
    if not kinds:
        return "Utf8" if values and any(v == "" for v in values) else None
    if kinds == {"bool"}:
        return "Boolean"
    if kinds == {"int"}:
        return "Int64"
    if kinds == {"int", "frac"}:
        return "Utf8" if big else "Float64"
    if kinds == {"frac"}:
        return "Float64"
    return None  # booleans mixed with numbers: not specified


def test_schema_json_types_follow_the_contract(scenario: Scenario):
    known = {c["name"]: c["type"] for c in json.loads((REPO / "schemas" / "call_outcomes.json").read_text("utf-8"))["columns"]}
    values: dict[str, list] = collections.defaultdict(list)
    for d in scenario.dump:
        for k, v in d["record"].items():
            values[k].append(v)
    problems = []
    for key, vals in sorted(values.items()):
        col = scenario.key_to_column.get(key)
        if col is None:
            continue  # reported by the names test
        want = known.get(key) or _contract_type(vals)
        got = scenario.types.get(col)
        if want is not None and got != want:
            sample = sorted({(type(v).__name__, str(v)) for v in vals if v is not None and v != ""})[:4]
            problems.append(f"key {key!r} (column {col!r}) is {got}, the contract gives {want}; values e.g. {sample}")
    for name, t in known.items():
        if name in scenario.types and scenario.types[name] != t:
            problems.append(f"known column {name!r} is {scenario.types[name]}, schemas/call_outcomes.json fixes {t}")
    assert not problems, "schema.json types:\n  " + "\n  ".join(dict.fromkeys(problems))


# --------------------------------------------------------------------------------------------
# The reports of the three runs.


def test_run_reports(scenario: Scenario):
    per_partition = collections.Counter((d["campaign_id"], d["date"]) for d in scenario.dump)
    problems = []
    for i, run in enumerate(scenario.runs, 1):
        rep = run.report
        text = json.dumps(rep, ensure_ascii=False)
        if TOKEN in text or TOKEN in run.stderr:
            problems.append(f"run {i}: the token appears in the report or the logs")
        if rep.get("status") != "ok" or rep.get("exit_code") != 0:
            problems.append(f"run {i}: status {rep.get('status')!r}, exit_code {rep.get('exit_code')!r}")
        entries = collections.defaultdict(list)
        for p in rep.get("partitions") or []:
            entries[(p.get("campaign_id"), p.get("date"))].append(p)
        want = {(c, d) for c in CAMPAIGNS for d in days(*run.days)}
        if set(entries) != want:
            problems.append(f"run {i}: partitions listed {sorted(set(entries) - want)[:MAX_SHOWN]} not asked, "
                            f"{sorted(want - set(entries))[:MAX_SHOWN]} missing")
        for key in sorted(want & set(entries)):
            ps = entries[key]
            n = per_partition.get(key, 0)
            if len(ps) != 1:
                problems.append(f"run {i}: {key} listed {len(ps)} times")
                continue
            p = ps[0]
            status = "committed" if n else "empty"
            if p.get("status") != status or (p.get("rows") or 0) != n:
                problems.append(f"run {i}: {key} is {p.get('status')!r} with {p.get('rows')!r} rows; "
                                f"the dump has {n} rows, so expected {status!r}")
        total = sum(per_partition.get(k, 0) for k in want)
        if rep.get("rows") != total:
            problems.append(f"run {i}: report rows {rep.get('rows')!r}, the dump has {total} in its range")
    assert not problems, "reports:\n  " + "\n  ".join(problems[:4 * MAX_SHOWN])
