//! The file-system floor of bringing a dataset's files up to date: for every file of a
//! cube-extract destination on local disk, only the file operations a crash-safe rewrite needs,
//! with no Parquet work at all. `make bench` runs it on a copy of the nightly benchmark's history,
//! beside the nightly run that rewrites those files, so that its figure says how much of that
//! run's time the file system alone would take on this machine.
//!
//! Per file, as cube-extract does it: read the ledger entry and the data file; write the new file
//! under the staging folder (the old bytes and 512 more, standing in for a new column) and move
//! it over the old one; write the new ledger entry under a temporary name and move it into
//! place; delete the old entry. On as many threads as cores.
//!
//! Usage: `rewrite_floor DEST TABLE`. It changes every file under DEST: run it on a copy.
//! Prints one JSON line: `{"files": n, "seconds": s}`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dest, table] = args.as_slice() else {
        eprintln!("usage: rewrite_floor DEST TABLE (it changes every file under DEST: use a copy)");
        std::process::exit(2);
    };
    let dest = PathBuf::from(dest);
    let state = dest.join("_cube_extract").join(table);
    let staging = state.join("staging");
    fs::create_dir_all(&staging)?;
    let started = Instant::now();
    let entries = ledger_entries(&state.join("ledger"))?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let share = entries.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = entries
            .chunks(share)
            .enumerate()
            .map(|(t, chunk)| {
                let (dest, staging) = (&dest, &staging);
                s.spawn(move || {
                    chunk
                        .iter()
                        .enumerate()
                        .try_for_each(|(i, entry)| rewrite_one(dest, staging, entry, (t << 32) | i))
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("a worker panicked"))
    })?;
    println!(
        "{{\"files\": {}, \"seconds\": {:.4}}}",
        entries.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The ledger's entries: `campaign_id=…/date=…/v{version}.json` under `ledger`.
fn ledger_entries(ledger: &Path) -> io::Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for campaign in fs::read_dir(ledger)? {
        for day in fs::read_dir(campaign?.path())? {
            for entry in fs::read_dir(day?.path())? {
                entries.push(entry?.path());
            }
        }
    }
    Ok(entries)
}

fn rewrite_one(dest: &Path, staging: &Path, entry: &Path, n: usize) -> io::Result<()> {
    let text = fs::read_to_string(entry)?;
    let mut record: serde_json::Value = serde_json::from_str(&text).map_err(io::Error::other)?;
    let (Some(file), Some(version)) = (
        record["file"].as_str().map(str::to_owned),
        record["schema_version"].as_u64(),
    ) else {
        return Err(io::Error::other(format!(
            "{} names no file or version",
            entry.display()
        )));
    };
    let data_path = dest.join(&file);
    let mut data = fs::read(&data_path)?;
    data.extend_from_slice(&[0; 512]);
    let staged = staging.join(format!("{n:016x}.parquet"));
    fs::write(&staged, &data)?;
    fs::rename(&staged, &data_path)?;
    let next = entry.with_file_name(format!("v{}.json", version + 1));
    let temporary = entry.with_file_name(format!("v{}.json#1", version + 1));
    record["schema_version"] = (version + 1).into();
    fs::write(
        &temporary,
        serde_json::to_vec_pretty(&record).map_err(io::Error::other)?,
    )?;
    fs::rename(&temporary, &next)?;
    fs::remove_file(entry)
}
