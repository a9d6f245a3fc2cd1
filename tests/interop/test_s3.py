"""S3-only checks, made in the bucket itself (the reader tests read a download of it).

Run: `.venv/bin/pytest tests/interop` after `cargo build --all-targets` (see conftest.py).
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from conftest import MAX_SHOWN, S3_PREFIX, TABLES, Extraction, S3Server


def _valid_partition_key(key: str, table: str) -> bool:
    m = re.fullmatch(
        re.escape(f"{S3_PREFIX}/{table}/") + r"campaign_id=(\d+)/date=(\d{4}-\d{2}-\d{2})/part-00000\.parquet", key
    )
    if not m:
        return False
    try:
        return dt.date.fromisoformat(m.group(2)).isoformat() == m.group(2)
    except ValueError:
        return False


@pytest.mark.parametrize("table", list(TABLES))
def test_s3_table_prefix_only_ever_holds_final_partition_objects(s3_server: S3Server, extraction_s3: Extraction,
                                                                   table: str):
    """Every key under {prefix}/call_outcomes/ is campaign_id=<n>/date=<YYYY-MM-DD>/part-00000.parquet:
    now, and (the bucket is versioned, so deleted objects stay listable) at any moment of the three runs."""
    client, bucket = s3_server.client, s3_server.bucket
    table_prefix = f"{S3_PREFIX}/{table}/"
    problems = []

    current = s3_server.keys(table_prefix)
    if not current:
        problems.append(f"no objects under s3://{bucket}/{table_prefix}")
    bad = sorted(k for k in current if not _valid_partition_key(k, table))
    if bad:
        problems.append(f"{len(bad)} object(s) under the table prefix that are not a partition's part-00000.parquet: "
                        f"{bad[:MAX_SHOWN]}")

    # Every version and delete marker ever made under the table prefix: a temporary or staging object that
    # was written there and removed again shows up here.
    ever: set[str] = set()
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=table_prefix):
        ever.update(v["Key"] for v in page.get("Versions") or [])
        ever.update(d["Key"] for d in page.get("DeleteMarkers") or [])
    bad_ever = sorted(k for k in ever - set(current) if not _valid_partition_key(k, table))
    if bad_ever:
        problems.append(f"{len(bad_ever)} object(s) were written under the table prefix and later deleted: "
                        f"{bad_ever[:MAX_SHOWN]}")

    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=f"{S3_PREFIX}/").get("Uploads") or []
    if uploads:
        problems.append(f"multipart uploads left open: {[u['Key'] for u in uploads][:MAX_SHOWN]}")

    outside = sorted(k for k in s3_server.keys("") if not k.startswith(f"{S3_PREFIX}/"))
    if outside:
        problems.append(f"objects outside the --dest prefix s3://{bucket}/{S3_PREFIX}/: {outside[:MAX_SHOWN]}")

    assert not problems, "S3 destination:\n  " + "\n  ".join(problems)
