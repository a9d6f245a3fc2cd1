"""examples/dagster: the asset materialized in a real Dagster (in process) through Pipes against
the simulator: the partition's day extracted, the table's metadata reported; exit 1 retried with
--resume; exit 2 and 127 failed at their first try.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXTRACT_BIN = Path(os.environ.get("CUBE_EXTRACT_BIN") or REPO / "target/debug/cube-extract")
SIM_BIN = REPO / "target/debug/examples/cube_sim"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("assets", REPO / "examples/dagster/cube_extract_assets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sim():
    proc = subprocess.Popen([str(SIM_BIN), "serve", "--port", "0"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    yield line.split()[-1]
    proc.terminate()
    proc.wait()


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CUBE_EXTRACT_BIN", str(EXTRACT_BIN))
    monkeypatch.setenv("CUBE_EXTRACT_DEST", str(tmp_path / "lake"))
    monkeypatch.setenv("CUBE_EXTRACT_CAMPAIGNS", "101")
    monkeypatch.setenv("CUBE_TOKEN", "sim-token")
    monkeypatch.setenv("CUBE_EXTRACT_RETRY_WAIT", "0")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster-home"))
    (tmp_path / "dagster-home").mkdir()
    return tmp_path


def materialize(example, key: str):
    from dagster import DagsterInstance, materialize as run

    return run([example.call_outcomes], partition_key=key, instance=DagsterInstance.ephemeral(),
               raise_on_error=False)


def test_a_partition_is_materialized_with_the_binarys_metadata(example, sim, env, monkeypatch):
    import json

    monkeypatch.setenv("CUBE_BASE_URL", sim)
    result = materialize(example, "2019-08-02")
    assert result.success
    [materialization] = result.asset_materializations_for_node("call_outcomes")
    assert materialization.partition == "2019-08-02"
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    status = subprocess.run([str(EXTRACT_BIN), "status", "--dest", str(env / "lake"), "--json"],
                            capture_output=True, text=True, check=True)
    held = json.loads(status.stdout)
    assert [tuple(r) for s in held["scopes"] for r in s["ranges"]] == [("2019-08-02", "2019-08-02")]
    assert metadata["rows"] == held["rows"] > 0
    assert metadata["files"] == 1 and metadata["bytes"] > 0 and metadata["table"] == "call_outcomes"
    schema = json.loads((env / "lake" / "_cube_extract" / "call_outcomes" / "schema.json").read_text())
    assert metadata["schema_version"] == schema["version"]


def attempts(result) -> int:
    return 1 + sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")


def test_exit_1_is_retried_with_resume(example, env, monkeypatch):
    # The real binary behind a script that notes each command line it is given.
    calls = env / "calls.txt"
    wrapper = env / "cube-extract"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {EXTRACT_BIN} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("CUBE_EXTRACT_BIN", str(wrapper))
    monkeypatch.setenv("CUBE_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CUBE_EXTRACT_ARGS", "--max-attempts 1")
    result = materialize(example, "2019-08-02")
    assert not result.success
    assert attempts(result) == 4  # the first try and 3 retries
    tries = calls.read_text().splitlines()
    assert len(tries) == 4 and "--resume" not in tries[0].split()
    assert all(t.split()[-1] == "--resume" for t in tries[1:]), tries


@pytest.mark.parametrize("case", ["usage", "missing binary"])
def test_exits_2_and_127_are_not_retried(example, sim, env, monkeypatch, case):
    monkeypatch.setenv("CUBE_BASE_URL", sim)
    if case == "usage":
        monkeypatch.setenv("CUBE_EXTRACT_CAMPAIGNS", "x")
    else:
        monkeypatch.setenv("CUBE_EXTRACT_BIN", str(env / "no-such-binary"))
    result = materialize(example, "2019-08-02")
    assert not result.success
    assert attempts(result) == 1
