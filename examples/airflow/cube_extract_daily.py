"""Daily: yesterday's call outcomes and product registrations of every active campaign.

The DAG runs each day for the day before (`{{ ds }}` is the start of the data interval). Exit 1
is retried with --resume; exit 2 and 3 fail at once (see cube_extract_task.py).
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
    def call_outcomes(ds=None, ti=None):
        run_cube_extract(["call-outcomes", "--all-campaigns", "--from", ds, "--dest", DEST], ti.try_number)

    @task
    def product_registrations(ds=None, ti=None):
        run_cube_extract(["product-registrations", "--all-campaigns", "--from", ds, "--dest", DEST], ti.try_number)

    call_outcomes()
    product_registrations()


cube_extract_daily()
