"""Backfill: a range of months fanned out over workers, then one reconcile (the fan-in).

Trigger with params `first_month` and `last_month` (YYYY-MM). Each month is one mapped task
(dynamic task mapping), all writing the same destination at once; `cube-extract reconcile`
then brings every file to the final dataset schema, so readers see one schema.
"""

from __future__ import annotations

import os
import sys
from datetime import date, datetime, timedelta

from airflow.decorators import dag, task
from airflow.models.param import Param

sys.path.insert(0, os.path.dirname(__file__))
from cube_extract_task import run_cube_extract  # noqa: E402

DEST = os.environ.get("CUBE_EXTRACT_DEST", "s3://lake/cube")


def month_spans(first_month: str, last_month: str) -> list[list[str]]:
    """[[first day, last day], ...] of each month from first_month to last_month (YYYY-MM)."""
    year, month = (int(x) for x in first_month.split("-"))
    last = tuple(int(x) for x in last_month.split("-"))
    spans = []
    while (year, month) <= last:
        nxt = date(year + (month == 12), month % 12 + 1, 1)
        spans.append([date(year, month, 1).isoformat(), (nxt - timedelta(days=1)).isoformat()])
        year, month = nxt.year, nxt.month
    return spans


@dag(
    dag_id="cube_extract_backfill",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params={
        "first_month": Param("2023-01", type="string", pattern=r"^\d{4}-\d{2}$"),
        "last_month": Param("2023-12", type="string", pattern=r"^\d{4}-\d{2}$"),
    },
    default_args={"retries": 3, "retry_delay": timedelta(minutes=10)},
    tags=["cube-extract"],
)
def cube_extract_backfill():
    @task
    def months(params=None) -> list[list[str]]:
        return month_spans(params["first_month"], params["last_month"])

    @task(max_active_tis_per_dag=8)
    def extract_month(span: list[str], ti=None):
        run_cube_extract(
            ["call-outcomes", "--all-campaigns", "--from", span[0], "--to", span[1], "--dest", DEST],
            ti.try_number,
        )

    @task
    def reconcile(ti=None):
        run_cube_extract(["reconcile", "--dest", DEST], ti.try_number)

    extract_month.expand(span=months()) >> reconcile()


cube_extract_backfill()
