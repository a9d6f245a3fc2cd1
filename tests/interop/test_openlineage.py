"""OpenLineage events of the real binary against the simulator: written to a file
(`--openlineage-file`) and posted to a lineage backend (a small HTTP server on 127.0.0.1 standing in
for Marquez). Every event is validated against the OpenLineage JSON schemas of `shared/openlineage-spec`
(its copy in `openlineage-spec/` beside this file; offline: each file registered under its `$id`), and
each facet against its own schema; the figures are compared with the run's `--summary json` and `schema.json`.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from conftest import REPO, RUN_TIMEOUT, local_env, serve, tail

sys.path.insert(0, str(REPO / "tests" / "support"))
from lineage_backend import Backend  # noqa: E402

# A copy of shared/openlineage-spec, as CI's clean checkout has no ../shared (its README says so).
SPEC = Path(__file__).parent / "openlineage-spec"
SHARED_SPEC = REPO.parent / "shared" / "openlineage-spec"
SECRET_TOKEN = "tok-LINEAGE-s3cret-7731"
API_KEY = "ol-key-9f2e-do-not-leak"
S3_SECRET = "moto-S3CRET-4471"  # moto takes any credentials
TABLES = ("call_outcomes", "product_registrations", "customers", "customer_status", "campaigns",
          "crm_custom_fields")


def _spec_files() -> list[Path]:
    if not (SPEC / "OpenLineage.json").is_file():
        pytest.fail(f"the OpenLineage spec is not at {SPEC}", pytrace=False)
    return [SPEC / "OpenLineage.json", *sorted((SPEC / "facets").glob("*.json"))]


def _registry_and_facets():
    registry = Registry()
    facets = {}  # facet key (e.g. "schema") -> (its file's $id, its definition's name)
    for path in _spec_files():
        schema = json.loads(path.read_text())
        registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
        if path.parent.name != "facets":
            continue
        for key, ref in schema["properties"].items():
            if "$ref" in ref:  # (the lineage facet, which cube-extract does not emit, has two shapes)
                facets[key] = (schema["$id"], ref["$ref"].rsplit("/", 1)[-1])
    return registry, facets


REGISTRY, FACETS = _registry_and_facets()
EVENT_ID = json.loads((SPEC / "OpenLineage.json").read_text())["$id"]


def validate(event: dict) -> None:
    """The event against the spec's RunEvent, then each facet against its own schema."""
    def check(schema_ref: str, instance) -> None:
        validator = Draft202012Validator({"$ref": schema_ref}, registry=REGISTRY, format_checker=FormatChecker())
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
        assert not errors, f"{schema_ref}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors)

    check(f"{EVENT_ID}#/$defs/RunEvent", event)
    dt.datetime.fromisoformat(event["eventTime"])  # RFC 3339, which the format checker may not check
    facet_groups = [event["run"].get("facets", {}), event["job"].get("facets", {})]
    for ds in event.get("inputs", []) + event.get("outputs", []):
        facet_groups += [ds.get("facets", {}), ds.get("inputFacets", {}), ds.get("outputFacets", {})]
    for group in facet_groups:
        for key, facet in group.items():
            assert key in FACETS, f"facet {key} is not a standard facet of the spec"
            schema_id, name = FACETS[key]
            check(f"{schema_id}#/$defs/{name}", facet)
            assert facet["_schemaURL"] == f"{schema_id}#/$defs/{name}", facet["_schemaURL"]


def test_the_spec_copy_is_the_shared_one():
    if not SHARED_SPEC.is_dir():
        pytest.skip(f"{SHARED_SPEC} is not on this machine (a clean checkout): the copy is what the tests use")
    copy = {p.relative_to(SPEC): p.read_bytes() for p in SPEC.rglob("*.json")}
    shared = {p.relative_to(SHARED_SPEC): p.read_bytes() for p in SHARED_SPEC.rglob("*.json")}
    assert copy == shared


def events_of(path: Path) -> list[dict]:
    events = [json.loads(line) for line in path.read_text().splitlines()]
    for event in events:
        validate(event)
    return events


@pytest.fixture(scope="module")
def sim(sim_bin):
    with serve(sim_bin, ["--token", SECRET_TOKEN, "--campaigns", "2", "--rows-per-day", "20"]) as s:
        yield s


def extract(extract_bin, args: list[str], env: dict | None = None, timeout=RUN_TIMEOUT):
    return subprocess.run([str(extract_bin), *args], env=local_env(env), capture_output=True, text=True,
                          timeout=timeout)


def sync_args(sim, dest: Path) -> list[str]:
    return ["sync", "--base-url", sim.url, "--token", SECRET_TOKEN, "--all-campaigns", "--from", "2019-08-01",
            "--to", "2019-08-02", "--dest", str(dest), "--no-progress"]


def test_a_run_emits_start_then_complete_with_the_summary_figures_and_the_columns(tmp_path, extract_bin, sim):
    events_file = tmp_path / "lineage.jsonl"
    done = extract(extract_bin, [*sync_args(sim, tmp_path / "lake"), "--summary", "json",
                                 "--openlineage-file", str(events_file)])
    assert done.returncode == 0, tail(done.stderr)
    summary = json.loads(done.stdout)
    start, complete = events_of(events_file)
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert start["job"] == complete["job"] and start["job"]["name"] == "cube-extract.sync"
    assert start["eventTime"] <= complete["eventTime"]
    # Inputs: the account's URL and each table's endpoint; outputs: each table's folder.
    origin = sim.url.rstrip("/")
    assert {i["namespace"] for i in complete["inputs"]} == {origin}
    assert len({i["name"] for i in complete["inputs"]}) == len(TABLES)
    assert all(i["name"].startswith("/api/v1/") for i in complete["inputs"])
    outputs = {o["name"]: o for o in complete["outputs"]}
    lake = (tmp_path / "lake").resolve()
    assert set(outputs) == {str(lake / t) for t in TABLES}
    assert {o["namespace"] for o in complete["outputs"]} == {"file"}
    assert [o["name"] for o in start["outputs"]] == [o["name"] for o in complete["outputs"]]
    for table in TABLES:
        out = outputs[str(lake / table)]
        stats = out["outputFacets"]["outputStatistics"]
        figures = summary["tables"][table]
        assert (stats["rowCount"], stats["size"], stats["fileCount"]) == (
            figures["rows"], figures["bytes"], figures["files"]), table
        # The schema facet is schema.json's columns: names, types and labels, in order.
        declared = json.loads((lake / "_cube_extract" / table / "schema.json").read_text())["columns"]
        fields = out["facets"]["schema"]["fields"]
        assert [(f["name"], f["type"], f.get("description")) for f in fields] == [
            (c["name"], c["type"], c["label"]) for c in declared], table
        assert out["facets"]["storage"]["storageLayer"] == "parquet"
    assert any(f.get("description") for o in outputs.values() for f in o["facets"]["schema"]["fields"]), \
        "some custom field has its label"
    assert SECRET_TOKEN not in events_file.read_text()


@pytest.fixture
def backend():
    b = Backend()
    yield b
    b.close()


def test_events_are_posted_to_the_backend_with_the_api_key_and_a_parent_run(tmp_path, extract_bin, sim, backend):
    parent = "airflow/cube_extract_daily.sync/01890a5d-ac96-774b-bcce-b302099a8057"
    root = "airflow/cube_extract_daily/01890a5d-ac96-774b-bcce-b302099a8000"
    done = extract(extract_bin, [*sync_args(sim, tmp_path / "lake")], {
        "OPENLINEAGE_URL": backend.url + "/", "OPENLINEAGE_ENDPOINT": "/api/v1/lineage", "OPENLINEAGE_API_KEY": API_KEY,
        "OPENLINEAGE_NAMESPACE": "nightly", "OPENLINEAGE_PARENT_ID": parent, "OPENLINEAGE_ROOT_PARENT_ID": root,
    })
    assert done.returncode == 0, tail(done.stderr)
    assert [(path, body["eventType"]) for path, _, body in backend.received] == [
        ("/api/v1/lineage", "START"), ("/api/v1/lineage", "COMPLETE")]
    for _, headers, body in backend.received:
        validate(body)
        assert headers["authorization"] == f"Bearer {API_KEY}"
        assert headers["content-type"] == "application/json"
        assert body["job"]["namespace"] == "nightly"
        facet = body["run"]["facets"]["parent"]
        assert (facet["job"]["namespace"], facet["job"]["name"], facet["run"]["runId"]) == tuple(parent.split("/"))
        assert (facet["root"]["job"]["name"], facet["root"]["run"]["runId"]) == tuple(root.split("/")[1:])
        text = json.dumps(body)
        assert API_KEY not in text and SECRET_TOKEN not in text
    assert API_KEY not in done.stderr


def test_a_backend_that_is_down_costs_a_warning_not_the_run(tmp_path, extract_bin, sim):
    done = extract(extract_bin, [*sync_args(sim, tmp_path / "lake"), "--summary", "json"],
                   {"OPENLINEAGE_URL": "http://127.0.0.1:1", "OPENLINEAGE_API_KEY": API_KEY})
    assert done.returncode == 0, tail(done.stderr)
    assert json.loads(done.stdout)["rows"] > 0
    warnings = [l for l in done.stderr.splitlines() if "OpenLineage backend" in l]
    assert len(warnings) == 2 and all(l.startswith("warning: ") for l in warnings), done.stderr
    assert API_KEY not in done.stderr


def test_a_backend_that_answers_an_error_costs_a_warning(tmp_path, extract_bin, sim):
    failing = Backend(status=500)
    try:
        done = extract(extract_bin, sync_args(sim, tmp_path / "lake"), {"OPENLINEAGE_URL": failing.url})
    finally:
        failing.close()
    assert done.returncode == 0, tail(done.stderr)
    assert len(failing.received) == 2
    assert "answered 500 Internal Server Error to a START event" in done.stderr, done.stderr


def test_a_refused_run_fails_with_its_error_sentence(tmp_path, extract_bin, sim):
    events_file = tmp_path / "lineage.jsonl"
    done = extract(extract_bin, ["call-outcomes", "--base-url", sim.url, "--token", SECRET_TOKEN, "--campaign", "999",
                                 "--from", "2019-08-01", "--dest", str(tmp_path / "lake"),
                                 "--openlineage-file", str(events_file)])
    assert done.returncode == 2, tail(done.stderr)
    start, fail = events_of(events_file)
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    message = fail["run"]["facets"]["errorMessage"]["message"]
    assert done.stderr.strip() == f"error: {message}"
    assert "999" in message
    # A usage error found before the API is asked: START names nothing, FAIL says why.
    bad = extract(extract_bin, ["call-outcomes", "--token", SECRET_TOKEN, "--campaign", "1", "--dest",
                                str(tmp_path / "lake2"), "--openlineage-file", str(tmp_path / "usage.jsonl")])
    assert bad.returncode == 2
    start, fail = events_of(tmp_path / "usage.jsonl")
    assert fail["eventType"] == "FAIL" and fail["run"]["facets"]["errorMessage"]["message"] in bad.stderr
    assert not (tmp_path / "lake").exists() and not (tmp_path / "lake2").exists()
    assert SECRET_TOKEN not in events_file.read_text() + (tmp_path / "usage.jsonl").read_text()


def test_an_unreachable_api_fails_the_run_with_the_reason(tmp_path, extract_bin):
    events_file = tmp_path / "lineage.jsonl"
    done = extract(extract_bin, ["call-outcomes", "--base-url", "http://127.0.0.1:1", "--token", SECRET_TOKEN,
                                 "--campaign", "1", "--from", "2019-08-01", "--dest", str(tmp_path / "lake"),
                                 "--max-attempts", "1", "--openlineage-file", str(events_file)])
    assert done.returncode == 1, tail(done.stderr)
    start, fail = events_of(events_file)
    assert fail["eventType"] == "FAIL"
    assert fail["run"]["facets"]["errorMessage"]["message"] in done.stderr


def test_failed_partitions_fail_the_run_naming_the_first(tmp_path, extract_bin, sim_bin):
    events_file = tmp_path / "lineage.jsonl"
    with serve(sim_bin, ["--failing-day", "2019-08-02", "--campaigns", "1"]) as failing:
        done = extract(extract_bin, ["call-outcomes", "--base-url", failing.url, "--token", "sim-token",
                                     "--all-campaigns", "--from", "2019-08-01", "--to", "2019-08-03",
                                     "--partitioning", "day", "--max-attempts", "1", "--dest", str(tmp_path / "lake"),
                                     "--openlineage-file", str(events_file), "--summary", "json"])
    assert done.returncode == 1, tail(done.stderr)
    start, fail = events_of(events_file)
    assert fail["eventType"] == "FAIL"
    message = fail["run"]["facets"]["errorMessage"]["message"]
    assert message.startswith("1 of 3 partitions failed; the first: "), message
    stats = fail["outputs"][0]["outputFacets"]["outputStatistics"]
    summary = json.loads(done.stdout)
    assert (stats["rowCount"], stats["fileCount"]) == (summary["rows"], summary["files"]) and stats["rowCount"] > 0


def test_a_signal_aborts_the_run(tmp_path, extract_bin, sim_bin):
    events_file = tmp_path / "lineage.jsonl"
    with serve(sim_bin, ["--latency-ms", "200", "--campaigns", "1"]) as slow:
        proc = subprocess.Popen(
            [str(extract_bin), "call-outcomes", "--base-url", slow.url, "--token", "sim-token", "--all-campaigns",
             "--from", "2019-08-01", "--to", "2019-12-31", "--dest", str(tmp_path / "lake"), "--concurrency", "1",
             "--openlineage-file", str(events_file)],
            env=local_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # Wait (with a deadline) for START: the run has begun.
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (events_file.exists() and events_file.read_text().endswith("\n")):
            assert proc.poll() is None and time.monotonic() < deadline, "no START event"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    assert proc.returncode == 143, tail(stderr)
    start, abort = events_of(events_file)
    assert (start["eventType"], abort["eventType"]) == ("START", "ABORT")
    assert abort["run"]["facets"]["errorMessage"]["message"].startswith("stopped by SIGTERM; ")


def test_lineage_is_off_when_disabled_and_a_bad_url_refuses_the_run(tmp_path, extract_bin, sim, backend):
    events_file = tmp_path / "lineage.jsonl"
    done = extract(extract_bin, [*sync_args(sim, tmp_path / "lake"), "--openlineage-file", str(events_file)],
                   {"OPENLINEAGE_URL": backend.url, "OPENLINEAGE_DISABLED": "true"})
    assert done.returncode == 0, tail(done.stderr)
    assert not events_file.exists() and backend.received == []
    bad = extract(extract_bin, sync_args(sim, tmp_path / "lake2"), {"OPENLINEAGE_URL": "ftp://lineage.example"})
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("error: OPENLINEAGE_URL is not an http(s) URL (scheme ftp); fix it, or set "
                                  "OPENLINEAGE_DISABLED=true to send no lineage")
    assert not (tmp_path / "lake2").exists()


def test_a_malformed_parent_is_left_out_with_a_warning(tmp_path, extract_bin, sim):
    events_file = tmp_path / "lineage.jsonl"
    done = extract(extract_bin, [*sync_args(sim, tmp_path / "lake"), "--openlineage-file", str(events_file)],
                   {"OPENLINEAGE_PARENT_ID": "airflow/no-run-id"})
    assert done.returncode == 0, tail(done.stderr)
    assert "OPENLINEAGE_PARENT_ID is not NAMESPACE/JOB/RUN_UUID" in done.stderr
    assert all("parent" not in e["run"]["facets"] for e in events_of(events_file))


def test_s3_outputs_are_named_by_bucket_and_key_and_hold_no_secret(tmp_path, extract_bin, sim, s3_server):
    events_file = tmp_path / "lineage.jsonl"
    # A bucket of its own: the scenario's bucket holds only the scenario's prefix.
    bucket = "cube-lineage"
    s3_server.client.create_bucket(Bucket=bucket)
    done = extract(extract_bin, ["call-outcomes", "--base-url", sim.url, "--token", SECRET_TOKEN, "--all-campaigns",
                                 "--from", "2019-08-01", "--dest", f"s3://{bucket}/lineage/lake",
                                 "--table-format", "delta", "--openlineage-file", str(events_file)],
                   {**s3_server.env(), "AWS_SECRET_ACCESS_KEY": S3_SECRET})
    assert done.returncode == 0, tail(done.stderr)
    _, complete = events_of(events_file)
    (out,) = complete["outputs"]
    assert (out["namespace"], out["name"]) == (f"s3://{bucket}", "lineage/lake/call_outcomes")
    assert out["facets"]["storage"]["storageLayer"] == "delta"
    text = events_file.read_text()
    assert S3_SECRET not in text and SECRET_TOKEN not in text
