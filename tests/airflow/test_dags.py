"""The Airflow provider (cube_extract.airflow, installed from the wheel) in a real Airflow: run in two
venvs, Airflow 3.3 (.venv-airflow3) and Airflow 2.11 (.venv-airflow2), by `make test`.

Every DAG runs with `airflow dags test` against the simulator: the example daily DAG extracts
yesterday; a test DAG (tests/airflow/dags) has one task per exit code, and the tasks' states and tries
are read back from Airflow's database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "airflow"
TEST_DAGS = Path(__file__).parent / "dags"
EXTRACT_BIN = Path(os.environ.get("CUBE_EXTRACT_BIN") or REPO / "target/debug/cube-extract")
SIM_BIN = Path(os.environ.get("CUBE_SIM_BIN") or REPO / "target/debug/examples/cube_sim")
AIRFLOW = Path(sys.executable).parent / "airflow"
sys.path.insert(0, str(REPO / "tests" / "support"))
from lineage_backend import Backend  # noqa: E402
TIMEOUT = 600


def airflow_version() -> int:
    from importlib.metadata import version

    return int(version("apache-airflow").split(".")[0])


@pytest.fixture(scope="module")
def extract_bin():
    if not EXTRACT_BIN.is_file():
        pytest.fail(f"{EXTRACT_BIN} not found; run `cargo build` first", pytrace=False)
    return EXTRACT_BIN


def serve(*flags: str):
    if not SIM_BIN.is_file():
        pytest.fail(f"{SIM_BIN} not found; run `cargo build --all-targets` first", pytrace=False)
    proc = subprocess.Popen([str(SIM_BIN), "serve", "--port", "0", *flags], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    return proc, line.split()[-1]


@pytest.fixture(scope="module")
def sims():
    """The account (without product registrations), and one whose records move while read."""
    procs = [serve("--unserved", "product_registrations"), serve("--inserts-while-paging", "50", "--page-size", "10")]
    yield [url for _, url in procs]
    for proc, _ in procs:
        proc.terminate()
        proc.wait()


def connection(url: str, token: str = "sim-token") -> str:
    return json.dumps({"conn_type": "cube", "host": url, "password": token})


def airflow_env(home: Path, dags: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUBE_", "AIRFLOW", "OPENLINEAGE"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "NO_PROXY": "*",
        **extra,
    })
    return env


def airflow(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(AIRFLOW), *args], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    if check:
        assert done.returncode == 0, f"airflow {' '.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def task_instances(env: dict[str, str], dag_id: str) -> dict[str, tuple[str, int]]:
    """Each task's final state and how many tries it took, from Airflow's database (a mapped task's
    instances as `task[i]`)."""
    script = (
        "import json, sys\n"
        "from airflow.models import TaskInstance\n"
        "from airflow.utils.session import create_session\n"
        "with create_session() as s:\n"
        "    tis = s.query(TaskInstance).filter(TaskInstance.dag_id == sys.argv[1]).all()\n"
        "    print(json.dumps({ti.task_id + (f'[{ti.map_index}]' if ti.map_index >= 0 else ''):\n"
        "                      [str(ti.state), ti.try_number] for ti in tis}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, dag_id], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    return {k: tuple(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def test_the_exit_code_mapping():
    from cube_extract.airflow.operators import outcome

    assert outcome(0) == "success"
    for code in (1, 130, 143, 101):
        assert outcome(code) == "retry", code
    for code in (2, 3, 126, 127):
        assert outcome(code) == "fail", code


def test_the_backfill_months():
    sys.path.insert(0, str(EXAMPLES))
    try:
        from cube_extract_backfill import month_spans
    finally:
        sys.path.remove(str(EXAMPLES))
    assert [(s["from_date"], s["to_date"]) for s in month_spans("2023-11", "2024-02")] == [
        ("2023-11-01", "2023-11-30"), ("2023-12-01", "2023-12-31"),
        ("2024-01-01", "2024-01-31"), ("2024-02-01", "2024-02-29"),
    ]


def test_the_operator_builds_the_command_line_and_outlets():
    from cube_extract.airflow.operators import CubeExtractOperator

    op = CubeExtractOperator(task_id="t", command="sync", dest="s3://lake/cube", from_date="2024-03-01",
                             keep_history=True, extra_args=["--concurrency", "4"])
    assert op.arguments(1) == ["sync", "--dest", "s3://lake/cube", "--all-campaigns", "--from", "2024-03-01",
                               "--keep-history", "--summary", "json", "--no-progress", "--color", "never",
                               "--concurrency", "4"]
    assert op.arguments(2)[-1] == "--resume"
    assert sorted(o.uri for o in op.outlets) == sorted(
        f"s3://lake/cube/{t}" for t in ("call_outcomes", "product_registrations", "customers", "customer_status",
                                        "campaigns", "crm_custom_fields"))
    one = CubeExtractOperator(task_id="u", command="customers", dest="/lake", campaigns=[101, 102])
    assert one.arguments(1)[:5] == ["customers", "--dest", "/lake", "--campaign", "101,102"]
    assert [o.uri for o in one.outlets] == ["file:///lake/customers"]
    assert CubeExtractOperator(task_id="r", command="reconcile", dest="/lake").arguments(3) == [
        "reconcile", "--dest", "/lake"]
    with pytest.raises(ValueError, match="not a cube-extract command"):
        CubeExtractOperator(task_id="x", command="call_outcomes", dest="/lake")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """An Airflow home with its database, shared by the DAG runs of this module."""
    home = tmp_path_factory.mktemp("airflow-home")
    airflow(airflow_env(home, EXAMPLES, {}), "db", "migrate")
    return home


def test_the_provider_is_listed_and_the_dags_load(home):
    env = airflow_env(home, EXAMPLES, {})
    listed = airflow(env, "providers", "list", "-o", "json").stdout
    providers = json.loads(listed[listed.index("["):listed.rindex("]") + 1])
    assert [p["package_name"] for p in providers if "cube" in p["package_name"]] == ["cube-extract"]
    errors = airflow(env, "dags", "list-import-errors", "-o", "json").stdout
    assert "cube_extract" not in errors, errors
    tasks = airflow(env, "tasks", "list", "cube_extract_backfill").stdout.split()
    assert {"months", "extract_month", "reconcile"} <= set(tasks), tasks
    assert "sync" in airflow(env, "tasks", "list", "cube_extract_daily").stdout.split()


def test_the_daily_dag_extracts_yesterday(home, tmp_path, extract_bin, sims):
    """`airflow dags test cube_extract_daily 2024-03-02` against an account without product
    registrations: the sync task succeeds at its first try, extracts 2024-03-01 (the data interval's
    end less a day) and only that day, and skips product registrations."""
    lake = tmp_path / "lake"
    env = airflow_env(home, EXAMPLES, {
        "CUBE_EXTRACT_BIN": str(extract_bin),
        "AIRFLOW_CONN_CUBE_DEFAULT": connection(sims[0]),
        "CUBE_EXTRACT_DEST": str(lake),
    })
    test = airflow(env, "dags", "test", "cube_extract_daily", "2024-03-02")
    assert task_instances(env, "cube_extract_daily") == {"sync": ("success", 1)}
    assert "skipping product_registrations" in test.stdout + test.stderr
    assert (lake / "call_outcomes").is_dir()
    assert not (lake / "product_registrations").exists()
    status = subprocess.run([str(extract_bin), "status", "--dest", str(lake), "--json",
                             "--expect-from", "2024-03-01", "--expect-to", "2024-03-01"],
                            capture_output=True, text=True)
    assert status.returncode == 0, status.stdout + status.stderr
    held = json.loads(status.stdout)
    assert held["expected"]["complete"] is True
    assert {tuple(r) for scope in held["scopes"] for r in scope["ranges"]} == {("2024-03-01", "2024-03-01")}


@pytest.fixture
def backend():
    b = Backend()
    yield b
    b.close()


def test_the_backfill_dag_maps_months_then_reconciles(home, tmp_path, extract_bin, sims):
    """`airflow dags test cube_extract_backfill` for August and September 2019: one mapped extraction
    per month, then `reconcile`; every day of both months is held."""
    lake = tmp_path / "lake"
    env = airflow_env(home, EXAMPLES, {
        "CUBE_EXTRACT_BIN": str(extract_bin),
        "AIRFLOW_CONN_CUBE_DEFAULT": connection(sims[0]),
        "CUBE_EXTRACT_DEST": str(lake),
    })
    airflow(env, "dags", "test", "cube_extract_backfill", "2024-03-02",
            "--conf", json.dumps({"first_month": "2019-08", "last_month": "2019-09"}))
    assert task_instances(env, "cube_extract_backfill") == {
        "months": ("success", 1), "extract_month[0]": ("success", 1), "extract_month[1]": ("success", 1),
        "reconcile": ("success", 1)}
    status = subprocess.run([str(extract_bin), "status", "--dest", str(lake), "--json",
                             "--expect-from", "2019-08-01", "--expect-to", "2019-09-30"],
                            capture_output=True, text=True)
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["expected"]["complete"] is True


def test_each_exit_code_is_mapped(home, tmp_path, extract_bin, sims, backend):
    """Exit 0 succeeds and pushes the summary; 1 is retried with --resume; 2, 3 and 127 fail at their
    first try although the task may retry 3 times. Airflow's OpenLineage provider reports the tables
    the operator wrote; the binary's own events name the task's run as their parent."""
    record = tmp_path / "summary.json"
    airflow_lineage = tmp_path / "airflow-lineage.jsonl"
    env = airflow_env(home, TEST_DAGS, {
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(airflow_lineage),
                                                       "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "airflow-test",
        "OPENLINEAGE_URL": backend.url,
        "CUBE_EXTRACT_BIN": str(extract_bin),
        "CUBE_EXTRACT_DEST": str(tmp_path / "lake"),
        "CUBE_TEST_RECORD": str(record),
        "AIRFLOW_CONN_CUBE_DEFAULT": connection(sims[0]),
        "AIRFLOW_CONN_CUBE_DOWN": connection("http://127.0.0.1:1"),
        "AIRFLOW_CONN_CUBE_RESTLESS": connection(sims[1]),
    })
    test = airflow(env, "dags", "test", "cube_extract_exits", "2024-03-02", check=False)
    log = test.stdout + test.stderr
    states = task_instances(env, "cube_extract_exits")
    assert states == {
        "ok": ("success", 1),
        "record": ("success", 1),
        "partial": ("failed", 2),
        "refused": ("failed", 1),
        "broken": ("failed", 1),
        "missing": ("failed", 1),
        "held": ("success", 1),
        "not_held": ("failed", 1),
    }, (states, log[-5000:])
    for code in (2, 3, 127):
        assert f"cube-extract exited {code}" in log
    # The retry of exit 1 resumed; its first try did not.
    # (Airflow 2 prints each log line twice; each try has its own command line.)
    runs = list(dict.fromkeys(line.split("Running: ", 1)[1].split(" [")[0] for line in log.splitlines()
                              if "Running: " in line and "-partial" in line))
    assert len(runs) == 2 and " --resume " not in runs[0] and " --resume " in runs[1], runs
    # The XCom is the binary's summary.
    summary = json.loads(record.read_text())
    status = json.loads(subprocess.run([str(extract_bin), "status", "--dest", str(tmp_path / "lake"), "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert summary["exit_code"] == 0 and summary["rows"] == status["rows"] > 0
    assert summary["tables"]["call_outcomes"]["partitions"]["committed"] == 6
    # Airflow's COMPLETE event of `ok` has the operator's lineage: the table, its columns, what was written.
    airflow_events = [json.loads(line) for line in airflow_lineage.read_text().splitlines() if line.strip()]
    [ok_done] = [e for e in airflow_events if e["job"]["name"] == "cube_extract_exits.ok"
                 and e["eventType"] == "COMPLETE"]
    [table] = ok_done["outputs"]
    assert (table["namespace"], table["name"]) == ("file", str((tmp_path / "lake" / "call_outcomes").resolve()))
    assert table["outputFacets"]["outputStatistics"]["rowCount"] == summary["rows"]
    declared = json.loads((tmp_path / "lake" / "_cube_extract" / "call_outcomes" / "schema.json").read_text())
    assert [f["name"] for f in table["facets"]["schema"]["fields"]] == [c["name"] for c in declared["columns"]]
    # The binary's events: START and COMPLETE of `ok`'s run, whose parent is the task's run.
    ours = [e for e in backend.events if e["job"]["name"].startswith("cube-extract.")
            and e["run"]["facets"].get("parent", {}).get("job", {}).get("name") == "cube_extract_exits.ok"]
    assert [e["eventType"] for e in ours] == ["START", "COMPLETE"], backend.events
    parent = ours[0]["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == ok_done["run"]["runId"]
    assert parent["job"]["namespace"] == ours[0]["job"]["namespace"] == "airflow-test"
    # The token went to the binary's environment, never to a log.
    assert "sim-token" not in log.replace('"password": "sim-token"', "")
