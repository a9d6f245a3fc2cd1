//! Dagster Pipes: launched by Dagster's `PipesSubprocessClient`, the binary reads the run's
//! context (a partition key or range gives `--from`/`--to`) and reports a materialization per
//! table (rows, files, bytes, schema version) back through the messages channel.
//!
//! The two bootstrap variables, `DAGSTER_PIPES_CONTEXT` and `DAGSTER_PIPES_MESSAGES`, each hold
//! zlib-compressed JSON in base64: where the context is (`{"path": ...}` or `{"data": ...}`) and
//! where messages go (`{"path": ...}`: a file Dagster reads, a JSON object a line, or
//! `{"stdio": "stderr"|"stdout"}`). Protocol version 0.1.

use std::io::{Read, Write};

use base64::Engine;
use serde_json::{json, Value};

use crate::report::Report;

const CONTEXT_VAR: &str = "DAGSTER_PIPES_CONTEXT";
const MESSAGES_VAR: &str = "DAGSTER_PIPES_MESSAGES";
const VERSION: &str = "0.1";

/// Why the Pipes bootstrap could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the Dagster Pipes bootstrap ({var}) cannot be read ({cause}); launch cube-extract with Dagster's PipesSubprocessClient, or unset {var}")]
pub(crate) struct PipesError {
    var: &'static str,
    cause: String,
}

/// A Pipes session: the run's context, and where to write messages.
pub(crate) struct Pipes {
    context: Value,
    sink: Sink,
}

enum Sink {
    File(std::path::PathBuf),
    Stderr,
    Stdout,
}

/// The parameters one bootstrap variable holds: base64 of zlib of JSON.
fn params(var: &'static str) -> Result<Option<Value>, PipesError> {
    let Some(raw) = std::env::var_os(var) else {
        return Ok(None);
    };
    let failed = |cause: String| PipesError { var, cause };
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(raw.to_string_lossy().trim())
        .map_err(|e| failed(e.to_string()))?;
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(&compressed[..])
        .read_to_end(&mut json)
        .map_err(|e| failed(e.to_string()))?;
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|e| failed(e.to_string()))
}

impl Pipes {
    /// The session Dagster opened for this process, if it launched it.
    pub(crate) fn open() -> Result<Option<Pipes>, PipesError> {
        let (Some(context), Some(messages)) = (params(CONTEXT_VAR)?, params(MESSAGES_VAR)?) else {
            return Ok(None);
        };
        let context = match (&context["data"], context["path"].as_str()) {
            (data @ Value::Object(_), _) => data.clone(),
            (_, Some(path)) => std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                .map_err(|cause| PipesError {
                    var: CONTEXT_VAR,
                    cause,
                })?,
            _ => {
                return Err(PipesError {
                    var: CONTEXT_VAR,
                    cause: "neither data nor path".into(),
                })
            }
        };
        let sink = match (messages["path"].as_str(), messages["stdio"].as_str()) {
            (Some(path), _) => Sink::File(path.into()),
            (None, Some("stdout")) => Sink::Stdout,
            (None, Some(_)) => Sink::Stderr,
            (None, None) => {
                return Err(PipesError {
                    var: MESSAGES_VAR,
                    cause: "no path or stdio to write messages to".into(),
                })
            }
        };
        let pipes = Pipes { context, sink };
        pipes.send("opened", json!({ "extras": {} }));
        Ok(Some(pipes))
    }

    /// The days the run's partitions span (`YYYY-MM-DD` keys of a daily partitioning): a key
    /// range, or one key.
    pub(crate) fn days(&self) -> Option<(String, String)> {
        let range = &self.context["partition_key_range"];
        match (range["start"].as_str(), range["end"].as_str()) {
            (Some(start), Some(end)) => Some((start.to_owned(), end.to_owned())),
            _ => self.context["partition_key"]
                .as_str()
                .map(|k| (k.to_owned(), k.to_owned())),
        }
    }

    /// The asset a table's materialization is reported for: the run's one asset, else the
    /// table's name among the run's assets.
    fn asset_key(&self, table: &str) -> Option<String> {
        let keys: Vec<&str> = self.context["asset_keys"]
            .as_array()
            .map(|k| k.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match keys.as_slice() {
            [only] => Some((*only).to_owned()),
            many => many.iter().find(|k| **k == table).map(|k| (*k).to_owned()),
        }
    }

    /// Reports a table's materialization with what the run wrote and the schema it left.
    pub(crate) fn materialized(&self, table: &str, report: &Report) {
        let Some(asset_key) = self.asset_key(table) else {
            return;
        };
        let int = |v: u64| json!({ "raw_value": v, "type": "int" });
        let mut metadata = json!({
            "table": { "raw_value": table, "type": "text" },
            "rows": int(report.rows as u64),
            "files": int(report.files_written() as u64),
            "bytes": int(report.bytes_written),
        });
        if let Some(schema) = &report.schema {
            metadata["schema_version"] = int(schema.version);
        }
        self.send(
            "report_asset_materialization",
            json!({ "asset_key": asset_key, "data_version": null, "metadata": metadata }),
        );
    }

    /// Ends the session (an error message when the run failed).
    pub(crate) fn close(&self, failure: Option<&str>) {
        // Dagster reads an `exception` key, when there is one, as the failure's.
        let params = match failure {
            None => json!({}),
            Some(message) => json!({ "exception": {
                "name": "CubeExtractError", "message": message, "stack": [], "cause": null, "context": null
            }}),
        };
        self.send("closed", params);
    }

    fn send(&self, method: &str, params: Value) {
        let line = json!({ "__dagster_pipes_version": VERSION, "method": method, "params": params })
            .to_string() + "\n";
        // Messages are a courtesy to the orchestrator: one that cannot be written costs a
        // warning, never the run.
        let written = match &self.sink {
            Sink::File(path) => std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .and_then(|mut f| f.write_all(line.as_bytes())),
            Sink::Stderr => std::io::stderr().write_all(line.as_bytes()),
            Sink::Stdout => std::io::stdout().write_all(line.as_bytes()),
        };
        if let Err(e) = written {
            tracing::warn!("could not send a Dagster Pipes message ({e}); the run goes on");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_gives_its_days_and_asset() {
        let pipes = Pipes {
            context: json!({
                "asset_keys": ["call_outcomes"],
                "partition_key_range": {"start": "2019-08-01", "end": "2019-08-03"},
            }),
            sink: Sink::Stderr,
        };
        assert_eq!(
            pipes.days(),
            Some(("2019-08-01".into(), "2019-08-03".into()))
        );
        assert_eq!(
            pipes.asset_key("customers").as_deref(),
            Some("call_outcomes")
        );
        let many = Pipes {
            context: json!({"asset_keys": ["customers", "campaigns"], "partition_key": "2019-08-02"}),
            sink: Sink::Stderr,
        };
        assert_eq!(
            many.days(),
            Some(("2019-08-02".into(), "2019-08-02".into()))
        );
        assert_eq!(many.asset_key("campaigns").as_deref(), Some("campaigns"));
        assert_eq!(many.asset_key("call_outcomes"), None);
    }
}
