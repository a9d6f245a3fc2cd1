//! A dataset schema shown to people: as a table, or as a DuckDB view that names each custom
//! column by its label.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::DatasetSchema;
use crate::privacy::Treatment;

/// One line per column: name, type in the files, label, first day seen, personal-data note.
pub(crate) fn table(schema: &DatasetSchema) -> String {
    let rows: Vec<[String; 5]> = schema
        .columns()
        .iter()
        .map(|c| {
            let treatment = schema.treatment(c);
            [
                c.name.clone(),
                match treatment {
                    Treatment::Hash => "Utf8".to_owned(),
                    _ => c.ty.name().to_owned(),
                },
                c.label.clone().unwrap_or_default(),
                c.first_seen.map(|d| d.to_string()).unwrap_or_default(),
                match treatment {
                    Treatment::Keep => String::new(),
                    Treatment::Hash => "hashed (HMAC-SHA256)".to_owned(),
                    Treatment::Drop => "dropped (not in the files)".to_owned(),
                },
            ]
        })
        .collect();
    let header = ["column", "type", "label", "first seen", "personal data"];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = format!(
        "{} (schema version {}, {} columns)\n",
        schema.dataset,
        schema.version,
        rows.len()
    );
    for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            write!(line, "{cell:<w$}  ").expect("writing to a String");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A `CREATE OR REPLACE VIEW` selecting every column of the files, each labelled custom column
/// under its label. A label that would clash (ignoring case, as DuckDB does) with another output
/// name becomes `label (column)`; the partition columns come last.
/// Where a view reads a table from.
pub(crate) enum ViewSource<'a> {
    /// Every Parquet file under a glob, with Hive partitioning.
    Files(&'a str),
    /// A Delta table's folder, through DuckDB's `delta` extension (`delta_scan`).
    Delta(&'a str),
}

pub(crate) fn duckdb_view(schema: &DatasetSchema, view: &str, source: ViewSource<'_>) -> String {
    let in_files: Vec<_> = schema
        .columns()
        .iter()
        .filter(|c| schema.treatment(c) != Treatment::Drop)
        .collect();
    let mut taken: HashSet<String> = in_files
        .iter()
        .filter(|c| c.label.is_none())
        .map(|c| c.name.to_lowercase())
        .chain(schema.path_columns().iter().map(|c| c.to_lowercase()))
        .collect();
    let mut select = Vec::with_capacity(in_files.len() + 2);
    for c in &in_files {
        let Some(label) = &c.label else {
            select.push(ident(&c.name));
            continue;
        };
        let alias = [label.clone(), format!("{label} ({})", c.name)]
            .into_iter()
            .find(|a| !taken.contains(&a.to_lowercase()))
            .unwrap_or_else(|| c.name.clone());
        taken.insert(alias.to_lowercase());
        if alias == c.name {
            select.push(ident(&c.name));
        } else {
            select.push(format!("{} AS {}", ident(&c.name), ident(&alias)));
        }
    }
    select.extend(schema.path_columns().iter().map(|c| ident(c)));
    let from = match source {
        ViewSource::Files(glob) => {
            format!("read_parquet({}, hive_partitioning = true)", literal(glob))
        }
        ViewSource::Delta(table) => format!("delta_scan({})", literal(table)),
    };
    format!(
        "CREATE OR REPLACE VIEW {} AS\nSELECT\n  {}\nFROM {from};\n",
        ident(view),
        select.join(",\n  "),
    )
}

/// A SQL identifier, quoted.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::KnownFields;
    use std::collections::HashMap;

    fn schema_with_labels() -> DatasetSchema {
        let mut s = DatasetSchema::new(&KnownFields::call_outcomes());
        let keys = crate::schema::keys_of(
            r#"[{"crm__custom_info__1": "a", "crm__custom_info__2": "b", "crm__custom_info__3": "c"}]"#,
        );
        s.set_labels(HashMap::from([
            (
                "crm__custom_info__1".to_owned(),
                "Address \"street\"".to_owned(),
            ),
            (
                "crm__custom_info__2".to_owned(),
                "Campaign__Name".to_owned(),
            ),
            (
                "crm__custom_info__3".to_owned(),
                "address \"STREET\"".to_owned(),
            ),
        ]));
        s.merge(&keys, chrono::NaiveDate::from_ymd_opt(2019, 8, 1).unwrap());
        s
    }

    #[test]
    fn a_delta_view_reads_through_delta_scan() {
        let sql = duckdb_view(
            &schema_with_labels(),
            "calls",
            ViewSource::Delta("s3://b/it's/call_outcomes"),
        );
        assert!(
            sql.ends_with("FROM delta_scan('s3://b/it''s/call_outcomes');\n"),
            "{sql}"
        );
    }

    #[test]
    fn view_aliases_labels_and_resolves_clashes() {
        let sql = duckdb_view(
            &schema_with_labels(),
            "calls",
            ViewSource::Files("/data/it's/call_outcomes/*/*/*.parquet"),
        );
        assert!(sql.starts_with("CREATE OR REPLACE VIEW \"calls\" AS\n"));
        assert!(
            sql.contains("\"crm__custom_info__1\" AS \"Address \"\"street\"\"\""),
            "{sql}"
        );
        // A label equal (ignoring case) to another column keeps the column's name in it.
        assert!(
            sql.contains("\"crm__custom_info__2\" AS \"Campaign__Name (crm__custom_info__2)\""),
            "{sql}"
        );
        assert!(
            sql.contains(
                "\"crm__custom_info__3\" AS \"address \"\"STREET\"\" (crm__custom_info__3)\""
            ),
            "{sql}"
        );
        assert!(sql.contains(
            "read_parquet('/data/it''s/call_outcomes/*/*/*.parquet', hive_partitioning = true)"
        ));
    }

    #[test]
    fn table_lists_every_column_with_its_label() {
        let text = table(&schema_with_labels());
        assert!(text.starts_with("call_outcomes (schema version"));
        let line = text
            .lines()
            .find(|l| l.starts_with("crm__custom_info__1 "))
            .unwrap();
        assert!(
            line.contains("Utf8")
                && line.contains("Address \"street\"")
                && line.contains("2019-08-01")
        );
    }
}
