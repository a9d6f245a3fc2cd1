"""CubeExtractOperator: one cube-extract command as an Airflow task.

| exit | meaning                                                    | the task                        |
|------|------------------------------------------------------------|---------------------------------|
| 0    | every partition committed                                  | success; XCom = the summary     |
| 1    | some partitions failed after retries; the others committed | retried (the retry adds --resume) |
| 130, 143 | stopped by SIGINT / SIGTERM                            | retried (with --resume)         |
| 2    | usage, configuration, credentials, unknown campaign        | failed, not retried             |
| 3    | the data broke the contract (nothing wrong was committed)  | failed, not retried: alert a person |
| 126, 127 | the binary cannot be run / is not there                | failed, not retried: fix the worker |

Credentials come from a `cube` connection (host: the account's URL; password: the API token, or a
login and its password), else from the worker's environment (CUBE_BASE_URL, CUBE_TOKEN); S3 settings
from the worker's environment (AWS_*). They reach the binary as its environment, never as arguments.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Sequence

from cube_extract import BinaryNotFound, find_bin
from cube_extract.airflow._compat import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    BaseOperator,
    Outlet,
)
from cube_extract.airflow.hooks import CubeHook

# The extraction commands and the tables each writes.
TABLES = {
    "call-outcomes": ("call_outcomes",),
    "product-registrations": ("product_registrations",),
    "customers": ("customers",),
    "customer-status": ("customer_status",),
    "campaigns": ("campaigns",),
    "custom-fields": ("crm_custom_fields",),
}
TABLES["sync"] = tuple(t for tables in TABLES.values() for t in tables)
COMMANDS = (*TABLES, "reconcile")

RETRIED = (1, 130, 143)
WHY_NOT_RETRIED = {
    2: "a usage or configuration error",
    3: "the data broke the contract; nothing wrong was committed, ask a person to look",
    126: "the binary cannot be executed",
    127: "the binary was not found: pip install cube-extract on the workers, or set CUBE_EXTRACT_BIN",
}


def outcome(exit_code: int) -> str:
    """`success`, `retry` or `fail`: what Airflow should do after cube-extract exited so."""
    if exit_code == 0:
        return "success"
    if exit_code in WHY_NOT_RETRIED:
        return "fail"
    # 1, 130, 143, and anything unexpected (a crash): worth another try.
    return "retry"


def binary(explicit: str | None = None) -> str:
    """The binary: `explicit`, else the wheel's (then CUBE_EXTRACT_BIN, then PATH's)."""
    if explicit:
        return explicit
    try:
        return find_bin()
    except BinaryNotFound:
        return os.environ.get("CUBE_EXTRACT_BIN") or "cube-extract"


def table_uri(dest: str, table: str) -> str | None:
    """The URI of a table under `dest` (s3://bucket/prefix/table or file:///abs/table), or None when
    `dest` is still a template."""
    if "{{" in dest:
        return None
    if dest.startswith("s3://"):
        return f"{dest.rstrip('/')}/{table}"
    path = dest[len("file://"):] if dest.startswith("file://") else dest
    return Path(os.path.abspath(path), table).as_uri()


def outlets_for(command: str, dest: str) -> list:
    """The tables `command` writes under `dest`, as outlets (Assets on Airflow 3, Datasets on 2)."""
    uris = [table_uri(dest, t) for t in TABLES.get(command, ())]
    return [Outlet(uri) for uri in uris if uri]


def run_binary(command: list[str], env: dict[str, str], log, on_start=None) -> tuple[int, str]:
    """Runs `command`, its stderr line by line into the task log; returns the exit code and stdout.
    126/127 when it cannot be started, as a shell would say."""
    try:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        log.error("%s was not found", command[0])
        return 127, ""
    except PermissionError:
        log.error("%s cannot be executed", command[0])
        return 126, ""
    if on_start:
        on_start(proc)

    def forward():
        for line in proc.stderr:
            log.info("%s", line.rstrip("\n"))

    forwarder = threading.Thread(target=forward, daemon=True)
    forwarder.start()
    stdout = proc.stdout.read()
    proc.wait()
    forwarder.join()
    return proc.returncode, stdout


class CubeExtractOperator(BaseOperator):
    """Runs `cube-extract COMMAND`; pushes its one-line JSON summary (rows, partitions by status,
    files, bytes, tables, exit code) as the task's XCom, and declares the tables it writes as outlets
    (an Asset on Airflow 3, a Dataset on Airflow 2).

    :param dest: the destination (a local directory, file:///path or s3://bucket/prefix).
    :param command: `sync` (every table, the default), a table's command (`call-outcomes`, ...) or
        `reconcile`.
    :param cube_conn_id: the `cube` connection; when it does not exist, the worker's environment.
    :param campaigns: `"all"` (the default: --all-campaigns), a campaign id or a list of them, or None.
    :param crm: a CRM (`OWNER:TYPE`) or a list of them.
    :param from_date, to_date: the days (YYYY-MM-DD, `yesterday`, `-7d`...), templated.
    :param extra_args: more options, as the CLI takes them (e.g. ["--concurrency", "4"]).
    :param binary: the binary's path; by default the wheel's, else CUBE_EXTRACT_BIN, else PATH's.
    """

    template_fields: Sequence[str] = ("dest", "from_date", "to_date", "campaigns", "crm", "extra_args", "timezone")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        dest: str,
        command: str = "sync",
        cube_conn_id: str = CubeHook.default_conn_name,
        campaigns: str | int | Sequence[str | int] | None = "all",
        crm: str | Sequence[str] | None = None,
        from_date: str | None = None,
        to_date: str | None = None,
        scope: str | None = None,
        partitioning: str | None = None,
        table_format: str | None = None,
        keep_history: bool = False,
        timezone: str | None = None,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
        **kwargs: Any,
    ) -> None:
        if command not in COMMANDS:
            raise ValueError(f"command {command!r} is not a cube-extract command; use one of {', '.join(COMMANDS)}")
        kwargs.setdefault("outlets", outlets_for(command, dest))
        super().__init__(**kwargs)
        self.dest = dest
        self.command = command
        self.cube_conn_id = cube_conn_id
        self.campaigns = campaigns
        self.crm = crm
        self.from_date = from_date
        self.to_date = to_date
        self.scope = scope
        self.partitioning = partitioning
        self.table_format = table_format
        self.keep_history = keep_history
        self.timezone = timezone
        self.extra_args = list(extra_args)
        self.binary = binary
        self._proc: subprocess.Popen | None = None
        self._lineage: dict | None = None

    def arguments(self, try_number: int) -> list[str]:
        """The command line after the binary (credentials excepted: they go in the environment)."""
        args = [self.command, "--dest", self.dest]
        if self.command == "reconcile":
            return [*args, *self.extra_args]
        if self.campaigns == "all":
            args.append("--all-campaigns")
        elif self.campaigns is not None:
            ids = self.campaigns if isinstance(self.campaigns, (list, tuple)) else [self.campaigns]
            args += ["--campaign", ",".join(str(c) for c in ids)]
        for crm in [self.crm] if isinstance(self.crm, str) else (self.crm or []):
            args += ["--crm", crm]
        for option, value in (("--from", self.from_date), ("--to", self.to_date), ("--scope", self.scope),
                              ("--partitioning", self.partitioning), ("--table-format", self.table_format),
                              ("--timezone", self.timezone)):
            if value:
                args += [option, str(value)]
        if self.keep_history:
            args.append("--keep-history")
        args += ["--summary", "json", "--no-progress", "--color", "never", *self.extra_args]
        # A retry fetches only what the failed try did not commit.
        if try_number > 1:
            args.append("--resume")
        return args

    def environment(self, context) -> dict[str, str]:
        env = dict(os.environ)
        try:
            env.update(CubeHook(self.cube_conn_id).env())
        except AirflowNotFoundException:
            self.log.info("no connection %s: the Cube account comes from the worker's environment", self.cube_conn_id)
        env.update(_parent_run(context))
        return env

    def execute(self, context) -> dict | None:
        ti = context["ti"]
        command = [binary(self.binary), *self.arguments(ti.try_number)]
        with tempfile.TemporaryDirectory(prefix="cube-extract-") as tmp:
            # The binary's lineage events, read back for Airflow's: a file of the task's own, unless the
            # DAG asks for one.
            events = Path(tmp) / "lineage.jsonl"
            if "--openlineage-file" in self.extra_args:
                events = Path(self.extra_args[self.extra_args.index("--openlineage-file") + 1])
            elif self.command != "reconcile":
                command += ["--openlineage-file", str(events)]
            self.log.info("Running: %s", shlex.join(command))
            code, stdout = run_binary(command, self.environment(context), self.log, self._started)
            self._lineage = _last_event(events)
        self._proc = None
        summary = _summary(stdout)
        verdict = outcome(code)
        if verdict == "fail":
            raise AirflowFailException(f"cube-extract exited {code}: {WHY_NOT_RETRIED[code]}; not retried, see the log")
        if verdict == "retry":
            raise AirflowException(f"cube-extract exited {code}; the committed partitions are kept, a retry resumes")
        return summary

    def _started(self, proc: subprocess.Popen) -> None:
        self._proc = proc

    def on_kill(self) -> None:
        # SIGTERM lets the binary finish the partitions it is placing and exit 143: a retry resumes.
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)

    def get_openlineage_facets_on_complete(self, task_instance):
        """The tables read and written, with their columns and what this run wrote, as the binary's
        COMPLETE event named them; Airflow's OpenLineage provider emits them for the task."""
        return _operator_lineage(self._lineage)


def _summary(stdout: str) -> dict | None:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    try:
        return json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None


def _last_event(path: Path) -> dict | None:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    return json.loads(lines[-1]) if lines else None


def _parent_run(context) -> dict[str, str]:
    """OPENLINEAGE_PARENT_ID (and the root's) of this task's run, when Airflow's OpenLineage provider
    is installed: the binary's lineage events name the task as their parent, and its job shares the
    task's namespace unless OPENLINEAGE_NAMESPACE says otherwise."""
    try:
        from airflow.providers.openlineage.plugins.macros import (
            lineage_job_namespace,
            lineage_parent_id,
            lineage_root_parent_id,
        )
    except ImportError:
        return {}
    ti = context["ti"]
    env = {}
    try:
        env["OPENLINEAGE_PARENT_ID"] = lineage_parent_id(ti)
        env["OPENLINEAGE_ROOT_PARENT_ID"] = lineage_root_parent_id(ti)
        if "OPENLINEAGE_NAMESPACE" not in os.environ:
            env["OPENLINEAGE_NAMESPACE"] = lineage_job_namespace()
    except Exception:  # noqa: BLE001 - lineage must never cost the task
        pass
    return env


def _operator_lineage(event: dict | None):
    if not event:
        return None
    from airflow.providers.common.compat.openlineage.facet import (
        InputDataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
        SchemaDatasetFacet,
        SchemaDatasetFacetFields,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    def schema(facets: dict) -> dict:
        fields = (facets.get("schema") or {}).get("fields")
        if fields is None:
            return {}
        return {"schema": SchemaDatasetFacet(fields=[
            SchemaDatasetFacetFields(name=f["name"], type=f.get("type"), description=f.get("description"))
            for f in fields])}

    outputs = []
    for out in event.get("outputs", []):
        stats = (out.get("outputFacets") or {}).get("outputStatistics")
        output_facets = {}
        if stats:
            output_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
                rowCount=stats.get("rowCount"), size=stats.get("size"), fileCount=stats.get("fileCount"))
        outputs.append(OutputDataset(namespace=out["namespace"], name=out["name"],
                                     facets=schema(out.get("facets") or {}), outputFacets=output_facets))
    inputs = [InputDataset(namespace=i["namespace"], name=i["name"]) for i in event.get("inputs", [])]
    return OperatorLineage(inputs=inputs, outputs=outputs)
