"""A Dagster asset that runs cube-extract through Dagster Pipes.

The binary reads the run's Pipes context (a daily partition key, or a range of them in a backfill,
gives `--from`/`--to`) and reports the table's materialization with its rows, files and bytes.
Dagster's own `PipesSubprocessClient` treats every non-zero exit alike; this asset opens the Pipes
session itself so that the exit code decides:

| exit | meaning                                                    | Dagster                                  |
|------|------------------------------------------------------------|------------------------------------------|
| 0    | every partition committed                                  | materialized, with the binary's metadata |
| 1, 130, 143 | partitions failed after retries / stopped by a signal | RetryRequested (the retry adds --resume) |
| 2, 3, 126, 127 | usage, broken data, binary unusable or missing   | Failure, not retried                     |

The binary is the cube-extract wheel's (`cube_extract.find_bin()`), else CUBE_EXTRACT_BIN, else PATH's.
Credentials come from the process environment (CUBE_BASE_URL, CUBE_TOKEN, AWS_*); CUBE_EXTRACT_ARGS adds
options to every run (e.g. "--concurrency 4 --max-attempts 3").
"""


import os
import shlex
import subprocess

from dagster import (
    AssetExecutionContext,
    DailyPartitionsDefinition,
    Definitions,
    Failure,
    PipesTempFileContextInjector,
    PipesTempFileMessageReader,
    RetryRequested,
    asset,
    open_pipes_session,
)

RETRIED = (1, 130, 143)
DAYS = DailyPartitionsDefinition(start_date="2019-08-01")


def binary() -> str:
    try:
        from cube_extract import BinaryNotFound, find_bin
    except ImportError:
        return os.environ.get("CUBE_EXTRACT_BIN", "cube-extract")
    try:
        return find_bin()
    except BinaryNotFound:
        return os.environ.get("CUBE_EXTRACT_BIN", "cube-extract")


def run_cube_extract(context: AssetExecutionContext, args: list[str]):
    """Runs `cube-extract ARGS` in a Pipes session; yields its materializations, or raises as the
    exit code says."""
    command = [binary(), *args, *shlex.split(os.environ.get("CUBE_EXTRACT_ARGS", ""))]
    if context.retry_number > 0:
        command.append("--resume")
    with open_pipes_session(
        context=context,
        context_injector=PipesTempFileContextInjector(),
        message_reader=PipesTempFileMessageReader(),
    ) as session:
        try:
            code = subprocess.run(command, env={**os.environ, **session.get_bootstrap_env_vars()}).returncode
        except FileNotFoundError:
            code = 127
        except PermissionError:
            code = 126
    if code == 0:
        yield from session.get_results()
        return
    if code in RETRIED:
        raise RetryRequested(max_retries=3, seconds_to_wait=float(os.environ.get("CUBE_EXTRACT_RETRY_WAIT", "60")))
    raise Failure(description=f"cube-extract exited {code}; not retried, see the step's log", allow_retries=False)


@asset(partitions_def=DAYS)
def call_outcomes(context: AssetExecutionContext):
    """The call outcomes of the partition's days, into $CUBE_EXTRACT_DEST."""
    campaigns = os.environ.get("CUBE_EXTRACT_CAMPAIGNS")
    selection = ["--campaign", campaigns] if campaigns else ["--all-campaigns"]
    yield from run_cube_extract(
        context, ["call-outcomes", *selection, "--dest", os.environ.get("CUBE_EXTRACT_DEST", "s3://lake/cube")]
    )


defs = Definitions(assets=[call_outcomes])
