"""A Prefect recipe: run cube-extract as a task that retries only what a retry can fix.

Prefect's own retries treat every failure alike; cube-extract's exit code says which to retry:

| exit | meaning                                                    | Prefect                          |
|------|------------------------------------------------------------|----------------------------------|
| 0    | every partition committed                                  | completed; returns the summary   |
| 1    | some partitions failed after retries; the others committed | retried, with --resume           |
| 130, 143 | stopped by SIGINT / SIGTERM                            | retried, with --resume           |
| 2    | usage, configuration, credentials, unknown campaign        | failed, not retried              |
| 3    | the data broke the contract                                | failed, not retried: alert       |
| 126, 127 | the binary cannot be run / is not there                | failed, not retried              |

The binary is the cube-extract wheel's (`cube_extract.find_bin()`), else CUBE_EXTRACT_BIN, else PATH's.
Credentials come from the worker's environment (CUBE_BASE_URL, CUBE_TOKEN, AWS_*).

    python examples/prefect/cube_extract_flow.py          # yesterday's sync into $CUBE_EXTRACT_DEST
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess

from prefect import flow, task
from prefect.runtime import task_run

RETRIED = (1, 130, 143)


class CubeExtractExit(Exception):
    """cube-extract ended with a non-zero exit code."""

    def __init__(self, code: int, summary: dict | None):
        super().__init__(f"cube-extract exited {code}" + (" (retried with --resume)" if code in RETRIED else ""))
        self.code = code
        self.summary = summary


def binary() -> str:
    try:
        from cube_extract import BinaryNotFound, find_bin
    except ImportError:
        return os.environ.get("CUBE_EXTRACT_BIN", "cube-extract")
    try:
        return find_bin()
    except BinaryNotFound:
        return os.environ.get("CUBE_EXTRACT_BIN", "cube-extract")


def retry_on_exit_code(task, task_run, state) -> bool:
    """Prefect's retry condition: only exits a later try can fix."""
    try:
        state.result()
    except CubeExtractExit as e:
        return e.code in RETRIED
    except Exception:  # noqa: BLE001 - anything else is not cube-extract's verdict: retry
        return True
    return False


# Attempts of every cube-extract task, for the tests (the flow runs in this process).
ATTEMPTS: list[list[str]] = []


@task(retries=3, retry_delay_seconds=30, retry_condition_fn=retry_on_exit_code)
def cube_extract(args: list[str]) -> dict:
    """Runs `cube-extract ARGS --summary json`; returns its summary. A retry adds --resume."""
    command = [binary(), *args, "--summary", "json"]
    if task_run.run_count > 1 and args and args[0] != "reconcile":
        command.append("--resume")
    ATTEMPTS.append(command)
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        code, out = done.returncode, done.stdout
    except FileNotFoundError:
        code, out = 127, ""
    except PermissionError:
        code, out = 126, ""
    lines = out.strip().splitlines()
    summary = json.loads(lines[-1]) if lines else None
    if code != 0:
        raise CubeExtractExit(code, summary)
    return summary


@flow(name="cube-extract-daily")
def cube_extract_daily(day: str | None = None, dest: str | None = None) -> dict:
    """Yesterday's (or `day`'s) call outcomes and product registrations, and today's snapshots."""
    day = day or (dt.date.today() - dt.timedelta(days=1)).isoformat()
    dest = dest or os.environ.get("CUBE_EXTRACT_DEST", "s3://lake/cube")
    return cube_extract(["sync", "--all-campaigns", "--from", day, "--keep-history", "--dest", dest])


if __name__ == "__main__":
    print(cube_extract_daily())
