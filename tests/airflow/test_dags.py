"""The Airflow examples (examples/airflow): the DAG files load in a real DagBag, the exit-code
mapping is the documented one, and the task helper fails without retry or retries on the real
binary's exit codes.

Airflow pins Flask 2 while the interop tests' moto_server needs Flask 3, so these run in a venv of
their own: `make venv-airflow`, then `.venv-airflow/bin/python -m pytest tests/airflow`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = REPO / "examples" / "airflow"
EXTRACT_BIN = Path(os.environ.get("CUBE_EXTRACT_BIN") or REPO / "target/debug/cube-extract")


def _load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def extract_bin():
    if not EXTRACT_BIN.is_file():
        pytest.fail(f"{EXTRACT_BIN} not found; run `cargo build` first", pytrace=False)
    return EXTRACT_BIN


def test_airflow_exit_code_mapping():
    task = _load(AIRFLOW / "cube_extract_task.py")
    assert task.outcome(0) == task.SUCCESS
    for code in (1, 130, 143, 101):
        assert task.outcome(code) == task.RETRY, code
    for code in (2, 3):
        assert task.outcome(code) == task.FAIL, code


def test_airflow_backfill_months():
    backfill = _load(AIRFLOW / "cube_extract_backfill.py")
    assert backfill.month_spans("2023-11", "2024-02") == [
        ["2023-11-01", "2023-11-30"], ["2023-12-01", "2023-12-31"],
        ["2024-01-01", "2024-01-31"], ["2024-02-01", "2024-02-29"],
    ]


def test_airflow_task_fails_without_retry_on_exit_2_and_retries_on_exit_1(tmp_path, monkeypatch, extract_bin):
    from airflow.exceptions import AirflowException, AirflowFailException

    task = _load(AIRFLOW / "cube_extract_task.py")
    monkeypatch.setenv("CUBE_EXTRACT_BIN", str(extract_bin))
    # A real usage error of the real binary: exit 2, which must not be retried.
    with pytest.raises(AirflowFailException):
        task.run_cube_extract(["call-outcomes", "--campaign", "x", "--dest", str(tmp_path)])
    # An API that cannot be reached: exit 1, retried.
    with pytest.raises(AirflowException) as raised:
        task.run_cube_extract(["call-outcomes", "--base-url", "http://127.0.0.1:1", "--token", "t",
                               "--campaign", "1", "--dest", str(tmp_path), "--max-attempts", "1"])
    assert not isinstance(raised.value, AirflowFailException)


def test_airflow_dags_load_in_a_dagbag():
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(AIRFLOW), include_examples=False)
    assert bag.import_errors == {}
    assert {"cube_extract_daily", "cube_extract_backfill"} <= set(bag.dag_ids)
    backfill = bag.dags["cube_extract_backfill"]
    # Dynamic task mapping: one extract_month per month, then the fan-in.
    from airflow.models.mappedoperator import MappedOperator

    assert isinstance(backfill.get_task("extract_month"), MappedOperator)
    assert backfill.get_task("reconcile").upstream_task_ids == {"extract_month"}
    assert backfill.get_task("extract_month").upstream_task_ids == {"months"}
    # The daily DAG is one sync of every table.
    assert [t.task_id for t in bag.dags["cube_extract_daily"].tasks] == ["sync"]
    for dag_id in ("cube_extract_daily", "cube_extract_backfill"):
        for t in bag.dags[dag_id].tasks:
            if t.task_id not in ("months",):
                assert t.retries == 3, (dag_id, t.task_id)
