"""examples/prefect: a real Prefect 3 flow (in process, on Prefect's ephemeral API) runs the real
binary against the simulator: exit 0 returns the summary; exit 1 is retried with --resume; exit 2
and 127 fail at their first try.
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
def recipe(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                       "PREFECT_LOGGING_LEVEL": "WARNING", "CUBE_EXTRACT_BIN": str(EXTRACT_BIN)})
    spec = importlib.util.spec_from_file_location("recipe", REPO / "examples/prefect/cube_extract_flow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # No waiting between tries in the tests.
    module.cube_extract = module.cube_extract.with_options(retry_delay_seconds=0)
    return module


@pytest.fixture(scope="module")
def sim():
    proc = subprocess.Popen([str(SIM_BIN), "serve", "--port", "0"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    yield line.split()[-1]
    proc.terminate()
    proc.wait()


def attempts_of(recipe, flow_fn):
    recipe.ATTEMPTS.clear()
    try:
        result = flow_fn()
    except Exception as e:  # noqa: BLE001 - the flow's failure is what some tests expect
        result = e
    return result, list(recipe.ATTEMPTS)


def test_exit_0_returns_the_summary(recipe, sim, tmp_path, monkeypatch):
    monkeypatch.setenv("CUBE_BASE_URL", sim)
    monkeypatch.setenv("CUBE_TOKEN", "sim-token")

    @recipe.flow
    def one():
        return recipe.cube_extract(["call-outcomes", "--campaign", "101", "--from", "2019-08-01",
                                    "--dest", str(tmp_path)])

    summary, attempts = attempts_of(recipe, one)
    assert len(attempts) == 1
    assert summary["exit_code"] == 0 and summary["rows"] > 0, summary


def test_exit_1_is_retried_with_resume(recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("CUBE_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CUBE_TOKEN", "t")

    @recipe.flow
    def unreachable():
        return recipe.cube_extract(["call-outcomes", "--campaign", "101", "--from", "2019-08-01",
                                    "--dest", str(tmp_path), "--max-attempts", "1"])

    result, attempts = attempts_of(recipe, unreachable)
    assert isinstance(result, recipe.CubeExtractExit) and result.code == 1, result
    assert len(attempts) == 4, attempts  # the first try and 3 retries
    assert "--resume" not in attempts[0] and all("--resume" in a for a in attempts[1:])


@pytest.mark.parametrize("case", ["usage", "missing binary"])
def test_exits_2_and_127_are_not_retried(recipe, tmp_path, monkeypatch, case):
    if case == "missing binary":
        monkeypatch.setenv("CUBE_EXTRACT_BIN", str(tmp_path / "no-such-binary"))
        args, code = ["call-outcomes", "--campaign", "101", "--dest", str(tmp_path)], 127
    else:
        args, code = ["call-outcomes", "--campaign", "x", "--dest", str(tmp_path)], 2

    @recipe.flow
    def refused():
        return recipe.cube_extract(args)

    result, attempts = attempts_of(recipe, refused)
    assert isinstance(result, recipe.CubeExtractExit) and result.code == code, result
    assert len(attempts) == 1, attempts
