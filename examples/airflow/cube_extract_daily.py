"""Daily: one `cube-extract sync` of every active campaign: yesterday's call outcomes and product
registrations, and today's snapshot of customers (one per day kept, --keep-history), call-flow status,
campaigns and custom-field definitions, in one process with one report.

Needs `pip install 'cube-extract[airflow]'` on the workers and a `cube` connection `cube_default`
(host: the account's URL; password: the API token). The run extracts the day that ends at its data
interval's end (`data_interval_end - 1 day`): yesterday on Airflow 2 and 3 alike (`ds` is not: on
Airflow 3 `@daily` is a cron trigger timetable and `ds` is the day that has just begun). Exit 1 is
retried with --resume; exits 2 and 3 fail at once (see CubeExtractOperator).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from cube_extract.airflow.operators import CubeExtractOperator

DEST = os.environ.get("CUBE_EXTRACT_DEST", "s3://lake/cube")

with DAG(
    dag_id="cube_extract_daily",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=10)},
    tags=["cube-extract"],
):
    CubeExtractOperator(
        task_id="sync",
        command="sync",
        from_date="{{ (data_interval_end - macros.timedelta(days=1)) | ds }}",
        keep_history=True,
        dest=DEST,
    )
