"""Runs cube-extract from an Airflow task and turns its exit code into the Airflow outcome.

| exit | meaning                                                    | Airflow                         |
|------|------------------------------------------------------------|---------------------------------|
| 0    | every partition committed                                  | success                         |
| 1    | some partitions failed after retries; the others committed | retry (the retry adds --resume) |
| 130, 143 | stopped by SIGINT / SIGTERM (e.g. the task was killed) | retry (with --resume)           |
| 2    | usage, configuration, credentials, unknown campaign        | fail, no retry                  |
| 3    | the data broke the contract (nothing wrong was committed)  | fail, no retry: alert a person  |

The binary is `cube-extract` on PATH, or CUBE_EXTRACT_BIN. Credentials and S3 settings come
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
    if exit_code in (2, 3):
        return FAIL
    # 1 (partial), 130/143 (interrupted) and anything unexpected (a crash): worth another try.
    return RETRY


def run_cube_extract(args: list[str], try_number: int = 1) -> None:
    """Runs `cube-extract ARGS`; raises so that Airflow retries or fails as `outcome` says.

    From the second try on, an extraction gets `--resume`: only the partitions the failed try
    did not commit are fetched again."""
    # Imported here so that `outcome` can be used (and tested) without Airflow.
    from airflow.exceptions import AirflowException, AirflowFailException

    command = [os.environ.get("CUBE_EXTRACT_BIN", "cube-extract"), *args]
    if try_number > 1 and args and args[0] != "reconcile":
        command.append("--resume")
    code = subprocess.run(command, check=False).returncode
    verdict = outcome(code)
    if verdict == FAIL:
        raise AirflowFailException(
            f"cube-extract exited {code}: {'a usage or configuration error' if code == 2 else 'the data broke the contract'}; "
            "not retried, see the task log"
        )
    if verdict == RETRY:
        raise AirflowException(f"cube-extract exited {code}; the committed partitions are kept, a retry resumes")
