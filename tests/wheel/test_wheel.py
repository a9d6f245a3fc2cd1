"""The wheel, as a new user meets it: built by maturin (dev profile: the release build is `make wheel`'s),
installed with `pip install --no-index` into a fresh venv, and run with no cargo on PATH.

Run: `make test` (or `.venv/bin/pytest tests/wheel` with MATURIN set to a maturin binary).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MATURIN = Path(os.environ.get("MATURIN") or REPO / ".venv-build/bin/maturin")
# A PATH with the system's tools and nothing of the Rust toolchain's.
BARE_PATH = "/usr/bin:/bin"


def run(cmd: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, stdin=subprocess.DEVNULL, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} exited {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r


def bare_env(**extra: str) -> dict[str, str]:
    env = {"PATH": BARE_PATH, "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not MATURIN.exists():
        pytest.fail(f"{MATURIN} is missing: run `make venv-build`", pytrace=False)
    out = tmp_path_factory.mktemp("wheels")
    run([str(MATURIN), "build", "--profile", "dev", "--out", str(out)], cwd=REPO)
    wheels = list(out.glob("cube_extract-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory) -> Path:
    """A fresh venv with only the wheel, installed from the file (no index)."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    run([str(env_dir / "bin/python"), "-m", "pip", "install", "--quiet", "--no-index", "--disable-pip-version-check",
         str(wheel)])
    return env_dir


def test_no_cargo_on_the_path_used():
    assert shutil.which("cargo", path=BARE_PATH) is None


def test_the_wheel_names_its_glibc(wheel: Path):
    # maturin checks the binary's symbol versions and tags the wheel with the oldest glibc it runs on.
    assert "manylinux_2_" in wheel.name, wheel.name


def test_the_installed_binary_runs(installed: Path):
    version = run([str(installed / "bin/cube-extract"), "--version"], env=bare_env()).stdout
    assert version.startswith("cube-extract "), version


def test_python_m_cube_extract_runs_it(installed: Path):
    version = run([str(installed / "bin/python"), "-m", "cube_extract", "--version"], env=bare_env()).stdout
    assert version.startswith("cube-extract "), version


def test_find_bin_finds_the_wheels_binary(installed: Path):
    found = run([str(installed / "bin/python"), "-c", "import cube_extract; print(cube_extract.find_bin())"],
                env=bare_env(CUBE_EXTRACT_BIN="/nonexistent")).stdout.strip()
    assert Path(found) == installed / "bin/cube-extract"


def test_find_bin_falls_back_to_the_variable_then_path(tmp_path: Path):
    """Without the wheel's binary: CUBE_EXTRACT_BIN, then PATH, then a one-sentence error."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = str(env_dir / "bin/python")
    code = "import cube_extract; print(cube_extract.find_bin())"
    binary = tmp_path / "bin" / "cube-extract"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\necho fake\n")
    binary.chmod(0o755)
    source = str(REPO / "python")
    got = run([python, "-c", code], env=bare_env(PYTHONPATH=source, CUBE_EXTRACT_BIN=str(binary))).stdout.strip()
    assert got == str(binary)
    got = run([python, "-c", code], env=bare_env(PYTHONPATH=source, PATH=f"{binary.parent}:{BARE_PATH}")).stdout.strip()
    assert got == str(binary)
    r = subprocess.run([python, "-m", "cube_extract", "--version"], capture_output=True, text=True,
                       env=bare_env(PYTHONPATH=source), timeout=60)
    assert r.returncode == 127
    assert r.stderr.startswith("error: no cube-extract binary") and r.stderr.count("\n") == 1, r.stderr
