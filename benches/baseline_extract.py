#!/usr/bin/env python3
"""The hand-written Python baseline of the benchmark: what a competent engineer writes in an afternoon.

Copies call outcomes from a Cube API (`/api/v1/campaigns/{id}/call_outcomes/`) into Hive-style
Parquet, the way generic tools do it: sequentially, one campaign and one day at a time, fetching
`?page=1`, `?page=2`, ... until a page has no `next`, with one `requests.Session` (keep-alive).

Per (campaign, day) the records become one pyarrow Table:
- the columns are the union of the keys of that day's records, in first-seen order (records of one
  day need not all carry the same keys; a missing key is null);
- a column whose non-null values mix Python types (a string with numbers or booleans, booleans
  with numbers) is stringified (strings kept, anything else as its JSON text) so Arrow can type it;
  ints mixed with floats are left to Arrow (float64);
- it is written as zstd Parquet to `{dest}/call_outcomes/campaign_id={id}/date={YYYY-MM-DD}/part-00000.parquet`.

No schema is shared across days (each file has whatever types its day inferred), no retries, no
consistency checks: it is a performance baseline, not a second implementation of the contract.
At the end one JSON line goes to stdout: {"rows", "pages", "requests", "bytes_written", "files"}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import requests


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000")
    p.add_argument("--token", required=True)
    p.add_argument("--campaign", required=True, help="comma separated campaign ids")
    p.add_argument("--from", dest="date_from", required=True, help="YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", required=True, help="YYYY-MM-DD (inclusive)")
    p.add_argument("--dest", required=True, help="a local directory")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    return p.parse_args(argv)


def days(first: dt.date, last: dt.date):
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


def fetch_day(session: requests.Session, base_url: str, campaign: int, day: dt.date, timeout: float):
    """Every record of one (campaign, day), page by page. Returns (records, pages)."""
    url = f"{base_url}/api/v1/campaigns/{campaign}/call_outcomes/"
    ymd = day.strftime("%Y%m%d")
    records: list[dict] = []
    page = 1
    while True:
        resp = session.get(
            url, params={"from_date": ymd, "to_date": ymd, "page": page}, timeout=timeout
        )
        resp.raise_for_status()
        body = resp.json()
        records.extend(body["results"])
        if not body.get("next"):
            return records, page
        page += 1


def _kind(value) -> str:
    # bool before int: bool is a subclass of int
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "str"
    return "other"


def to_table(records: list[dict]) -> pa.Table:
    """One Arrow table from records with possibly different keys and mixed value types."""
    keys: dict[str, None] = {}
    for record in records:
        for key in record:
            if key not in keys:
                keys[key] = None
    columns: dict[str, list] = {}
    for key in keys:
        values = [record.get(key) for record in records]
        kinds = {_kind(v) for v in values if v is not None}
        if len(kinds) > 1 or "other" in kinds:
            values = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
        columns[key] = values
    return pa.Table.from_pydict(columns)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    base_url = args.base_url.rstrip("/")
    campaigns = [int(c) for c in args.campaign.split(",") if c.strip()]
    first = dt.date.fromisoformat(args.date_from)
    last = dt.date.fromisoformat(args.date_to)

    session = requests.Session()
    session.headers.update({"Authorization": f"Token {args.token}", "Accept": "application/json"})

    totals = {"rows": 0, "pages": 0, "requests": 0, "bytes_written": 0, "files": 0}
    for campaign in campaigns:
        for day in days(first, last):
            records, pages = fetch_day(session, base_url, campaign, day, args.timeout)
            totals["pages"] += pages
            totals["requests"] += pages
            if not records:
                continue
            table = to_table(records)
            folder = os.path.join(
                args.dest, "call_outcomes", f"campaign_id={campaign}", f"date={day.isoformat()}"
            )
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, "part-00000.parquet")
            pq.write_table(table, path, compression="zstd")
            totals["rows"] += table.num_rows
            totals["bytes_written"] += os.path.getsize(path)
            totals["files"] += 1
    print(json.dumps(totals))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
