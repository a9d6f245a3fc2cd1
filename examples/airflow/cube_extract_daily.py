"""Daily: one `cube-extract sync` of every active campaign: yesterday's call outcomes and product
registrations, and today's snapshot of customers (one per day kept, --keep-history), call-flow status,
campaigns and custom-field definitions, in one process with one report.

The DAG runs each day for the day before: the day that ends at its data interval's end
(`data_interval_end - 1 day`). Not `{{ ds }}`: on Airflow 3 `@daily` is a cron trigger timetable and
`ds` is the day the run starts, the day that has just begun; the interval's end less a day is
yesterday on Airflow 2 and 3 alike. Exit 1
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
    def sync(data_interval_end=None, ti=None):
        day = (data_interval_end - timedelta(days=1)).date().isoformat()
        run_cube_extract(
            ["sync", "--all-campaigns", "--from", day, "--keep-history", "--dest", DEST], ti.try_number
        )

    sync()


cube_extract_daily()
