//! OpenLineage: a START event when an extraction begins and one COMPLETE, FAIL or ABORT when it
//! ends, posted to a lineage backend (`OPENLINEAGE_URL`) and/or appended to a file
//! (`--openlineage-file`, a JSON object a line). Inputs are the Cube endpoints read (namespace
//! the account's URL, name the endpoint's path), outputs the tables written (namespace `file` or
//! `s3://bucket`, name the table's path), with their columns and what the run wrote to them.
//!
//! Events follow the OpenLineage spec 2-0-2 and its standard facets; `tests/interop` validates
//! every event the tests emit against the schemas in `shared/openlineage-spec`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Map, Value};
use url::Url;

use crate::datasets::Dataset;
use crate::error::Outcome;
use crate::report::{PartitionStatus, Report, TableSchema};
use crate::settings::Settings;
use crate::sink::DestinationSpec;

const URL_VAR: &str = "OPENLINEAGE_URL";
const ENDPOINT_VAR: &str = "OPENLINEAGE_ENDPOINT";
const API_KEY_VAR: &str = "OPENLINEAGE_API_KEY";
const NAMESPACE_VAR: &str = "OPENLINEAGE_NAMESPACE";
const DISABLED_VAR: &str = "OPENLINEAGE_DISABLED";
/// `NAMESPACE/JOB/RUN_ID` of the run that launched this one (what Airflow's
/// `lineage_parent_id` macro gives, and dbt-ol reads), and of that run's root.
const PARENT_VAR: &str = "OPENLINEAGE_PARENT_ID";
const ROOT_PARENT_VAR: &str = "OPENLINEAGE_ROOT_PARENT_ID";

const DEFAULT_ENDPOINT: &str = "api/v1/lineage";
const DEFAULT_NAMESPACE: &str = "cube-extract";
/// A backend that does not answer within this costs a warning, not a stalled run.
const TIMEOUT: Duration = Duration::from_secs(5);

const PRODUCER: &str = concat!(
    "https://pypi.org/project/cube-extract/",
    env!("CARGO_PKG_VERSION"),
    "/"
);
const EVENT_SCHEMA: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const FACETS: &str = "https://openlineage.io/spec/facets/";

/// Why the lineage settings cannot be used. Never names the API key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LineageError {
    #[error("{URL_VAR} is not an http(s) URL ({0}); fix it, or set {DISABLED_VAR}=true to send no lineage")]
    BadUrl(String),
    #[error(
        "the OpenLineage client cannot be built ({0}); set {DISABLED_VAR}=true to send no lineage"
    )]
    Client(String),
}

/// Where events go.
enum Transport {
    Http {
        client: reqwest::Client,
        url: Url,
        api_key: Option<String>,
    },
    File(PathBuf),
}

/// A job's run, as OpenLineage names it.
#[derive(Clone, Debug, PartialEq)]
struct RunRef {
    namespace: String,
    job: String,
    run_id: String,
}

impl RunRef {
    /// `NAMESPACE/JOB/RUN_ID`; the job's name may itself hold slashes.
    fn parse(text: &str) -> Option<RunRef> {
        let (namespace, rest) = text.trim().split_once('/')?;
        let (job, run_id) = rest.rsplit_once('/')?;
        uuid::Uuid::parse_str(run_id).ok()?;
        (!namespace.is_empty() && !job.is_empty()).then(|| RunRef {
            namespace: namespace.to_owned(),
            job: job.to_owned(),
            run_id: run_id.to_owned(),
        })
    }
}

/// One table of the run, as lineage names its source and its destination.
struct TableRef {
    input: (String, String),
    output: (String, String),
}

/// The lineage of one run: its identity, where its events go, and what it reads and writes.
pub(crate) struct Lineage {
    run_id: String,
    namespace: String,
    job: String,
    parent: Option<RunRef>,
    root: Option<RunRef>,
    transports: Vec<Transport>,
    tables: Vec<TableRef>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Lineage {
    /// The lineage of this process's run of `job`, when `OPENLINEAGE_URL` or `file` asks for it
    /// and `OPENLINEAGE_DISABLED` does not forbid it.
    pub(crate) fn from_env(
        job: &str,
        file: Option<PathBuf>,
    ) -> Result<Option<Lineage>, LineageError> {
        if var(DISABLED_VAR).is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1") {
            return Ok(None);
        }
        let mut transports = Vec::new();
        if let Some(base) = var(URL_VAR) {
            let endpoint = var(ENDPOINT_VAR).unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
            let text = format!(
                "{}/{}",
                base.trim_end_matches('/'),
                endpoint.trim_start_matches('/')
            );
            let url = match Url::parse(&text) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => u,
                Ok(u) => return Err(LineageError::BadUrl(format!("scheme {}", u.scheme()))),
                Err(e) => return Err(LineageError::BadUrl(e.to_string())),
            };
            let client = reqwest::Client::builder()
                .user_agent(concat!("cube-extract/", env!("CARGO_PKG_VERSION")))
                .timeout(TIMEOUT)
                .build()
                .map_err(|e| LineageError::Client(e.to_string()))?;
            transports.push(Transport::Http {
                client,
                url,
                api_key: var(API_KEY_VAR),
            });
        }
        if let Some(path) = file {
            transports.push(Transport::File(path));
        }
        if transports.is_empty() {
            return Ok(None);
        }
        let run_ref = |name: &str| {
            let text = var(name)?;
            let parsed = RunRef::parse(&text);
            if parsed.is_none() {
                tracing::warn!(
                    "{name} is not NAMESPACE/JOB/RUN_UUID; the lineage events name no parent run"
                );
            }
            parsed
        };
        Ok(Some(Lineage {
            run_id: uuid::Uuid::now_v7().to_string(),
            namespace: var(NAMESPACE_VAR).unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            job: format!("cube-extract.{job}"),
            parent: run_ref(PARENT_VAR),
            root: run_ref(ROOT_PARENT_VAR),
            transports,
            tables: Vec::new(),
        }))
    }

    /// Sends START, naming what the run reads and writes.
    pub(crate) async fn started(&mut self, settings: &Settings) {
        self.tables = settings
            .tables
            .iter()
            .map(|d| TableRef {
                input: input(&settings.api_root, d),
                output: output(&settings.store.dest, d.name),
            })
            .collect();
        let inputs: Vec<Value> = self.tables.iter().map(|t| dataset(&t.input)).collect();
        let outputs: Vec<Value> = self.tables.iter().map(|t| dataset(&t.output)).collect();
        let event = self.event("START", Map::new(), inputs, outputs);
        self.send(event).await;
    }

    /// Sends START (if the run had not begun) and FAIL for a run refused before it began.
    pub(crate) async fn refused(&self, error: &str) {
        self.send(self.event("START", Map::new(), Vec::new(), Vec::new()))
            .await;
        let mut facets = Map::new();
        facets.insert("errorMessage".into(), error_message(error));
        self.send(self.event("FAIL", facets, Vec::new(), Vec::new()))
            .await;
    }

    /// Sends COMPLETE, FAIL or ABORT: the tables with their columns and what the run wrote.
    pub(crate) async fn ended(&self, reports: &[(Dataset, Report)], outcome: Outcome) {
        let kind = match outcome {
            Outcome::Done => "COMPLETE",
            Outcome::Interrupted(_) => "ABORT",
            Outcome::Partial | Outcome::Refused | Outcome::ContractBroken => "FAIL",
        };
        let mut facets = Map::new();
        if let Some(error) = failure(reports, outcome) {
            facets.insert("errorMessage".into(), error_message(&error));
        }
        // A table `sync` skipped (the account does not serve it) was neither read nor written.
        let kept = || {
            self.tables
                .iter()
                .zip(reports)
                .filter(|(_, (_, r))| r.status != "skipped")
        };
        let inputs = kept().map(|(t, _)| dataset(&t.input)).collect();
        let outputs = kept()
            .map(|(t, (_, report))| written(&t.output, report))
            .collect();
        self.send(self.event(kind, facets, inputs, outputs)).await;
    }

    fn event(
        &self,
        kind: &str,
        mut run_facets: Map<String, Value>,
        inputs: Vec<Value>,
        outputs: Vec<Value>,
    ) -> Value {
        run_facets.insert(
            "processing_engine".into(),
            facet(
                "1-1-1/ProcessingEngineRunFacet",
                json!({ "name": "cube-extract", "version": env!("CARGO_PKG_VERSION") }),
            ),
        );
        if let Some(parent) = &self.parent {
            let mut body = json!({
                "run": { "runId": parent.run_id },
                "job": { "namespace": parent.namespace, "name": parent.job },
            });
            if let Some(root) = &self.root {
                body["root"] = json!({
                    "run": { "runId": root.run_id },
                    "job": { "namespace": root.namespace, "name": root.job },
                });
            }
            run_facets.insert("parent".into(), facet("1-2-0/ParentRunFacet", body));
        }
        json!({
            "eventType": kind,
            "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "producer": PRODUCER,
            "schemaURL": EVENT_SCHEMA,
            "run": { "runId": self.run_id, "facets": run_facets },
            "job": {
                "namespace": self.namespace,
                "name": self.job,
                "facets": { "jobType": facet(
                    "2-0-4/JobTypeJobFacet",
                    json!({ "processingType": "BATCH", "integration": "CUBE_EXTRACT", "jobType": "JOB" }),
                ) },
            },
            "inputs": inputs,
            "outputs": outputs,
        })
    }

    /// Posts or appends one event. Lineage is a courtesy to the platform: a backend that is down
    /// or a file that cannot be written costs a warning, never the run.
    async fn send(&self, event: Value) {
        let line = event.to_string();
        for transport in &self.transports {
            match transport {
                Transport::Http {
                    client,
                    url,
                    api_key,
                } => {
                    let mut request = client
                        .post(url.clone())
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(line.clone());
                    if let Some(key) = api_key {
                        request = request.bearer_auth(key);
                    }
                    let host = url.host_str().unwrap_or("?");
                    match request.send().await {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => tracing::warn!(
                            "the OpenLineage backend at {host} answered {} to a {} event; the run goes on without it",
                            r.status(),
                            event["eventType"].as_str().unwrap_or("?")
                        ),
                        Err(e) => tracing::warn!(
                            "the OpenLineage backend at {host} could not be reached ({}); the run goes on without it",
                            crate::error::error_chain(&e.without_url())
                        ),
                    }
                }
                Transport::File(path) => {
                    use std::io::Write;
                    let written = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
                    if let Err(e) = written {
                        tracing::warn!(
                            "could not write a lineage event to {} ({e}); the run goes on without it",
                            path.display()
                        );
                    }
                }
            }
        }
    }
}

/// A facet: its body with the producer and the URL of its schema.
fn facet(schema: &str, body: Value) -> Value {
    let name = schema.rsplit('/').next().unwrap_or(schema);
    let mut facet = json!({
        "_producer": PRODUCER,
        "_schemaURL": format!("{FACETS}{schema}.json#/$defs/{name}"),
    });
    if let (Some(map), Value::Object(body)) = (facet.as_object_mut(), body) {
        map.extend(body);
    }
    facet
}

fn error_message(message: &str) -> Value {
    facet(
        "1-0-1/ErrorMessageRunFacet",
        json!({ "message": message, "programmingLanguage": "Rust" }),
    )
}

fn dataset((namespace, name): &(String, String)) -> Value {
    json!({ "namespace": namespace, "name": name })
}

/// The Cube endpoint a table is read from: the account's URL, and the endpoint's path under the
/// API root (with its `{campaign_id}`-like placeholders).
fn input(api_root: &Url, table: &Dataset) -> (String, String) {
    let origin = api_root.origin().ascii_serialization();
    (origin, format!("{}{}", api_root.path(), table.endpoint()))
}

/// Where a table is written: `file` and its absolute path, or `s3://bucket` and its key prefix.
fn output(dest: &DestinationSpec, table: &str) -> (String, String) {
    match dest {
        DestinationSpec::Local(root) => ("file".into(), root.join(table).display().to_string()),
        DestinationSpec::S3 { bucket, prefix } if prefix.is_empty() => {
            (format!("s3://{bucket}"), table.to_owned())
        }
        DestinationSpec::S3 { bucket, prefix } => {
            (format!("s3://{bucket}"), format!("{prefix}/{table}"))
        }
    }
}

/// A table written by the run: its columns (when the run got as far as its schema) and what
/// this run wrote to it.
fn written(table: &(String, String), report: &Report) -> Value {
    let mut out = dataset(table);
    if let Some(schema) = &report.schema {
        out["facets"] = dataset_facets(schema);
    }
    out["outputFacets"] = json!({ "outputStatistics": facet(
        "1-0-2/OutputStatisticsOutputDatasetFacet",
        json!({
            "rowCount": report.rows,
            "size": report.bytes_written,
            "fileCount": report.files_written(),
        }),
    ) });
    out
}

fn dataset_facets(schema: &TableSchema) -> Value {
    let fields: Vec<Value> = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut field = json!({ "name": c.name, "type": c.ty, "ordinal_position": i + 1 });
            if let Some(label) = &c.label {
                field["description"] = label.as_str().into();
            }
            field
        })
        .collect();
    json!({
        "schema": facet("1-2-0/SchemaDatasetFacet", json!({ "fields": fields })),
        "storage": facet(
            "1-0-1/StorageDatasetFacet",
            json!({ "storageLayer": schema.format, "fileFormat": "parquet" }),
        ),
    })
}

/// What an unfinished run's FAIL or ABORT says: the first table's error, else how many
/// partitions failed and the first one's error.
fn failure(reports: &[(Dataset, Report)], outcome: Outcome) -> Option<String> {
    if outcome == Outcome::Done {
        return None;
    }
    if let Some(error) = reports.iter().find_map(|(_, r)| r.error.clone()) {
        return Some(error);
    }
    let failed: Vec<_> = reports
        .iter()
        .flat_map(|(_, r)| &r.partitions)
        .filter(|p| p.status == PartitionStatus::Failed)
        .collect();
    let total: usize = reports.iter().map(|(_, r)| r.partitions.len()).sum();
    match (outcome, failed.first()) {
        (Outcome::Interrupted(signal), _) => Some(format!("stopped by {}", signal.name())),
        (_, Some(first)) => Some(format!(
            "{} of {total} partitions failed; the first: {}",
            failed.len(),
            first.error.as_deref().unwrap_or("no message")
        )),
        (_, None) => Some(format!("cube-extract exited {}", outcome.exit_code())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parent_run_is_namespace_job_and_run_uuid() {
        let id = "01890a5d-ac96-774b-bcce-b302099a8057";
        assert_eq!(
            RunRef::parse(&format!("airflow/dag.task/{id}")),
            Some(RunRef {
                namespace: "airflow".into(),
                job: "dag.task".into(),
                run_id: id.into()
            })
        );
        // Slashes in the job's name stay in it.
        assert_eq!(
            RunRef::parse(&format!("ns/a/b/{id}")).map(|r| r.job),
            Some("a/b".into())
        );
        assert_eq!(RunRef::parse("ns/job/not-a-uuid"), None);
        assert_eq!(RunRef::parse(&format!("/job/{id}")), None);
        assert_eq!(RunRef::parse(id), None);
    }

    #[test]
    fn outputs_are_named_by_their_store() {
        let local = DestinationSpec::Local("/lake/cube".into());
        assert_eq!(
            output(&local, "call_outcomes"),
            ("file".into(), "/lake/cube/call_outcomes".into())
        );
        let s3 = DestinationSpec::parse("s3://lake/cube/").unwrap();
        assert_eq!(
            output(&s3, "customers"),
            ("s3://lake".into(), "cube/customers".into())
        );
        let bucket = DestinationSpec::parse("s3://lake").unwrap();
        assert_eq!(output(&bucket, "customers").1, "customers");
    }

    #[test]
    fn facets_name_their_schema() {
        let f = facet("1-0-1/ErrorMessageRunFacet", json!({"message": "m"}));
        assert_eq!(
            f["_schemaURL"],
            "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
        );
        assert_eq!(f["message"], "m");
        assert_eq!(f["_producer"], PRODUCER);
    }
}
