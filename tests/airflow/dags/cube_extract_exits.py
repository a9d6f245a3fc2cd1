"""A DAG for tests/airflow: one CubeExtractOperator per exit code, each against its own `cube`
connection (set by the test), and a task that records the summary the first pushed as its XCom."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from cube_extract.airflow.operators import CubeExtractOperator
from cube_extract.airflow.sensors import CubeExtractStatusSensor

DEST = os.environ["CUBE_EXTRACT_DEST"]

with DAG(dag_id="cube_extract_exits", schedule=None, start_date=datetime(2024, 1, 1), catchup=False,
         default_args={"retries": 3, "retry_delay": timedelta(seconds=0)}):
    day = {"from_date": "2019-08-01", "to_date": "2019-08-02"}
    ok = CubeExtractOperator(task_id="ok", command="call-outcomes", dest=DEST, **day)
    # An API that cannot be reached: exit 1, retried once (with --resume).
    CubeExtractOperator(task_id="partial", command="call-outcomes", dest=DEST + "-partial", cube_conn_id="cube_down",
                        extra_args=["--max-attempts", "1"], retries=1, **day)
    # A campaign the account does not list: exit 2.
    CubeExtractOperator(task_id="refused", command="call-outcomes", dest=DEST + "-refused", campaigns=999, **day)
    # Records that move while the day is read, every time: exit 3.
    CubeExtractOperator(task_id="broken", command="call-outcomes", dest=DEST + "-broken", cube_conn_id="cube_restless",
                        campaigns=101, from_date="2019-08-01", extra_args=["--max-attempts", "1"])
    # No binary on the worker: 127.
    CubeExtractOperator(task_id="missing", command="call-outcomes", dest=DEST + "-missing",
                        binary="/nonexistent/cube-extract", **day)

    @task
    def record(summary=None):
        with open(os.environ["CUBE_TEST_RECORD"], "w") as f:
            json.dump(summary, f)

    record(ok.output)
    # The days `ok` extracted are held; a month nobody extracted is not (the sensor times out).
    ok >> CubeExtractStatusSensor(task_id="held", dest=DEST, expect_from="2019-08-01", expect_to="2019-08-02",
                                  poke_interval=0.1, timeout=60)
    CubeExtractStatusSensor(task_id="not_held", dest=DEST + "-partial", expect_from="2019-09-01", poke_interval=0.1,
                            timeout=1, retries=0)
