"""Runs cube-extract from an Airflow task and turns its exit code into the Airflow outcome.

| exit | meaning                                                    | Airflow                         |
|------|------------------------------------------------------------|---------------------------------|
| 0    | every partition committed                                  | success                         |
| 1    | some partitions failed after retries; the others committed | retry (the retry adds --resume) |
| 130, 143 | stopped by SIGINT / SIGTERM (e.g. the task was killed) | retry (with --resume)           |
| 2    | usage, configuration, credentials, unknown campaign        | fail, no retry                  |
| 3    | the data broke the contract (nothing wrong was committed)  | fail, no retry: alert a person  |
| 126, 127 | the binary cannot be run / is not there                | fail, no retry: fix the worker  |

The binary is the one the `cube-extract` wheel installed (`cube_extract.find_bin()`), else
CUBE_EXTRACT_BIN, else `cube-extract` on PATH. Credentials and S3 settings come
from the worker's environment (CUBE_TOKEN, CUBE_BASE_URL, AWS_*), never from DAG code.
"""

from __future__ import annotations

import os
import subprocess

SUCCESS, RETRY, FAIL = "success", "retry", "fail"


def outcome(exit_code: int) -> str:
    """What Airflow should do after cube-extract exited with `exit_code`."""
    if exit_code == 0:
        return SUCCESS
    # 126/127: the shell's "cannot execute" and "not found"; retrying cannot fix a worker.
    if exit_code in (2, 3, 126, 127):
        return FAIL
    # 1 (partial), 130/143 (interrupted) and anything unexpected (a crash): worth another try.
    return RETRY


def binary() -> str:
    """The cube-extract binary: the wheel's (if the package is installed), else CUBE_EXTRACT_BIN,
    else the name, for PATH."""
    try:
        from cube_extract import BinaryNotFound, find_bin
    except ImportError:
        return os.environ.get("CUBE_EXTRACT_BIN", "cube-extract")
    try:
        return find_bin()
    except BinaryNotFound:
        return os.environ.get("CUBE_EXTRACT_BIN", "cube-extract")


def run_cube_extract(args: list[str], try_number: int = 1) -> None:
    """Runs `cube-extract ARGS`; raises so that Airflow retries or fails as `outcome` says.

    From the second try on, an extraction gets `--resume`: only the partitions the failed try
    did not commit are fetched again."""
    # Imported here so that `outcome` can be used (and tested) without Airflow.
    from airflow.exceptions import AirflowException, AirflowFailException

    command = [binary(), *args]
    if try_number > 1 and args and args[0] != "reconcile":
        command.append("--resume")
    try:
        code = subprocess.run(command, check=False).returncode
    except FileNotFoundError:
        code = 127
    except PermissionError:
        code = 126
    verdict = outcome(code)
    if verdict == FAIL:
        why = {
            2: "a usage or configuration error",
            3: "the data broke the contract",
            126: f"{command[0]} cannot be executed",
            127: f"{command[0]} was not found: pip install the cube-extract wheel on the workers, or set CUBE_EXTRACT_BIN",
        }[code]
        raise AirflowFailException(f"cube-extract exited {code}: {why}; not retried, see the task log")
    if verdict == RETRY:
        raise AirflowException(f"cube-extract exited {code}; the committed partitions are kept, a retry resumes")
