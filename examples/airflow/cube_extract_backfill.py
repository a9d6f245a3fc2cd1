"""Backfill: a range of months fanned out over workers, then one reconcile (the fan-in).

Trigger with params `first_month` and `last_month` (YYYY-MM). Each month is one mapped task
(dynamic task mapping), all writing the same destination at once; `cube-extract reconcile`
then brings every file to the final dataset schema, so readers see one schema.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta

try:
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from cube_extract.airflow.operators import CubeExtractOperator, outlets_for

DEST = os.environ.get("CUBE_EXTRACT_DEST", "s3://lake/cube")


def month_spans(first_month: str, last_month: str) -> list[dict[str, str]]:
    """The first and last day of each month from first_month to last_month (YYYY-MM)."""
    year, month = (int(x) for x in first_month.split("-"))
    last = tuple(int(x) for x in last_month.split("-"))
    spans = []
    while (year, month) <= last:
        nxt = date(year + (month == 12), month % 12 + 1, 1)
        spans.append({"from_date": date(year, month, 1).isoformat(),
                      "to_date": (nxt - timedelta(days=1)).isoformat()})
        year, month = nxt.year, nxt.month
    return spans


with DAG(
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
):
    @task
    def months(params=None) -> list[dict[str, str]]:
        return month_spans(params["first_month"], params["last_month"])

    extract_month = CubeExtractOperator.partial(
        task_id="extract_month",
        command="call-outcomes",
        dest=DEST,
        max_active_tis_per_dag=8,
        # A mapped task's outlets are declared with its partial arguments.
        outlets=outlets_for("call-outcomes", DEST),
    ).expand_kwargs(months())
    extract_month >> CubeExtractOperator(task_id="reconcile", command="reconcile", dest=DEST)
