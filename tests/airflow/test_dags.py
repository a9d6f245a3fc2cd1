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
    for code in (2, 3, 126, 127):
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
    # A worker without the binary: 127, not retried.
    monkeypatch.setenv("CUBE_EXTRACT_BIN", str(tmp_path / "no-such-binary"))
    with pytest.raises(AirflowFailException, match="exited 127"):
        task.run_cube_extract(["call-outcomes", "--campaign", "1", "--dest", str(tmp_path)])


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


SIM_BIN = Path(os.environ.get("CUBE_SIM_BIN") or REPO / "target/debug/examples/cube_sim")


@pytest.fixture
def sim_without_product_registrations():
    """A simulated Cube account without the product-registrations module (404 on its endpoint)."""
    import subprocess

    if not SIM_BIN.is_file():
        pytest.fail(f"{SIM_BIN} not found; run `cargo build --all-targets` first", pytrace=False)
    proc = subprocess.Popen([str(SIM_BIN), "serve", "--port", "0", "--unserved", "product_registrations"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    yield line.split()[-1]
    proc.terminate()
    proc.wait()


def test_airflow_daily_dag_skips_a_table_the_account_does_not_serve(tmp_path, extract_bin,
                                                                     sim_without_product_registrations):
    """`airflow dags test cube_extract_daily` against an account without product registrations:
    the sync task succeeds at its first try; every other table is extracted, and none is
    written for product registrations."""
    import json
    import subprocess
    import sys

    airflow = Path(sys.executable).parent / "airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(AIRFLOW),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "CUBE_EXTRACT_BIN": str(extract_bin),
        "CUBE_BASE_URL": sim_without_product_registrations,
        "CUBE_TOKEN": "sim-token",
        "CUBE_EXTRACT_DEST": str(tmp_path / "lake"),
    }
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)
    test = subprocess.run([str(airflow), "dags", "test", "cube_extract_daily", "2024-03-02"], env=env,
                          capture_output=True, text=True)
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    runs = subprocess.run([str(airflow), "tasks", "states-for-dag-run", "cube_extract_daily",
                           "manual__2024-03-02T00:00:00+00:00", "-o", "json"],
                          env=env, capture_output=True, text=True)
    assert runs.returncode == 0, runs.stderr[-3000:]
    # The last line is the JSON list (Airflow may log before it).
    states = {t["task_id"]: t["state"] for t in json.loads(runs.stdout.strip().splitlines()[-1])}
    assert states == {"sync": "success"}, states
    assert "Marking task as UP_FOR_RETRY" not in test.stdout, "the first try succeeded"
    assert "skipping product_registrations" in test.stdout + test.stderr
    lake = tmp_path / "lake"
    assert (lake / "call_outcomes").is_dir()
    assert not (lake / "product_registrations").exists()
    assert not (lake / "_cube_extract" / "product_registrations").exists()
    # A run at 2024-03-02 00:00 extracts yesterday, 2024-03-01 (its data interval's end less a day),
    # and only that day.
    status = subprocess.run([str(extract_bin), "status", "--dest", str(lake), "--json",
                             "--expect-from", "2024-03-01", "--expect-to", "2024-03-01"],
                            capture_output=True, text=True)
    assert status.returncode == 0, status.stdout + status.stderr
    held = json.loads(status.stdout)
    assert held["expected"]["complete"] is True
    ranges = {tuple(r) for scope in held["scopes"] for r in scope["ranges"]}
    assert ranges == {("2024-03-01", "2024-03-01")}, held["scopes"]
