"""Daily: one `cube-extract sync` of every active campaign: yesterday's call outcomes and product
registrations, and today's snapshot of customers (one per day kept, --keep-history), call-flow status,
campaigns and custom-field definitions, in one process with one report.

The DAG runs each day for the day before (`{{ ds }}` is the start of the data interval). Exit 1
is retried with --resume (which skips the partitions and the snapshots already committed); exit 2
and 3 fail at once (see cube_extract_task.py).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta

from airflow.decorators import dag, task

sys.path.insert(0, os.path.dirname(__file__))
from cube_extract_task import run_cube_extract  # noqa: E402

DEST = os.environ.get("CUBE_EXTRACT_DEST", "s3://lake/cube")


@dag(
    dag_id="cube_extract_daily",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=10)},
    tags=["cube-extract"],
)
def cube_extract_daily():
    @task
    def sync(ds=None, ti=None):
        run_cube_extract(
            ["sync", "--all-campaigns", "--from", ds, "--keep-history", "--dest", DEST], ti.try_number
        )

    sync()


cube_extract_daily()
