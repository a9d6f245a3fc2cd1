//! Reading one partition (campaign, day) completely: page 1 tells `count` and the page size, the
//! remaining pages are fetched concurrently by number, and the whole listing is checked for
//! consistency. A listing that changed while we paged is read again, up to a bound.

use futures::{StreamExt, TryStreamExt};

use super::{CubeClient, Page, SourceError};
use crate::schema::KeyKinds;
use crate::unit::{Dataset, Unit};

/// Reads of one partition before giving up on a listing that keeps changing.
pub const MAX_READS: u32 = 3;

/// A partition's pages in order, with the union of their keys.
#[derive(Debug)]
pub struct Fetched {
    pub pages: Vec<Page>,
    pub keys: KeyKinds,
    pub rows: usize,
}

pub async fn fetch_partition(
    client: &CubeClient,
    dataset: &Dataset,
    unit: &Unit,
    fan_out: usize,
) -> Result<Fetched, SourceError> {
    let mut problem = String::new();
    for read in 1..=MAX_READS {
        match read_once(client, dataset, unit, fan_out).await? {
            Ok(fetched) => return Ok(fetched),
            Err(p) => {
                tracing::warn!(campaign = unit.campaign_id, day = %unit.day, read, problem = %p, "listing changed while paging; reading the day again");
                problem = p;
            }
        }
    }
    Err(SourceError::Inconsistent(format!(
        "{unit}: the API's listing changed while it was read, {MAX_READS} times in a row (last: {problem}); nothing was written for it, so run again later"
    )))
}

/// One read. The outer error is a failure to talk to the API; the inner one an inconsistent listing.
async fn read_once(
    client: &CubeClient,
    dataset: &Dataset,
    unit: &Unit,
    fan_out: usize,
) -> Result<Result<Fetched, String>, SourceError> {
    let first = client.page(dataset, unit, 1).await?;
    let count = first.count;
    if first.records == 0 {
        return Ok(if count == 0 && !first.has_next {
            Ok(Fetched {
                pages: Vec::new(),
                keys: KeyKinds::default(),
                rows: 0,
            })
        } else {
            Err(format!("page 1 is empty but count is {count}"))
        });
    }
    let size = first.records as u64;
    let n_pages = count.div_ceil(size).max(1) as u32;
    let rest: Result<Vec<Page>, SourceError> = futures::stream::iter(2..=n_pages)
        .map(|n| client.page(dataset, unit, n))
        .buffered(fan_out.max(1))
        .try_collect()
        .await;
    let rest = match rest {
        Ok(pages) => pages,
        // A page that vanished means the listing shrank under us.
        Err(SourceError::NotFound { url }) => return Ok(Err(format!("{url} vanished"))),
        Err(e) => return Err(e),
    };
    let mut pages = Vec::with_capacity(n_pages as usize);
    pages.push(first);
    pages.extend(rest);
    Ok(check(pages, count, size).map(|pages| {
        let mut keys = KeyKinds::default();
        for p in &pages {
            keys.merge(&p.keys);
        }
        let rows = pages.iter().map(|p| p.records).sum();
        Fetched { pages, keys, rows }
    }))
}

/// Every page must report the same `count`, be full but for the last, and link onwards exactly
/// when it is not the last; the rows must add up to `count`.
fn check(pages: Vec<Page>, count: u64, size: u64) -> Result<Vec<Page>, String> {
    let last = pages.len() as u32;
    for p in &pages {
        if p.count != count {
            return Err(format!(
                "count went from {count} to {} at page {}",
                p.count, p.number
            ));
        }
        let expected = if p.number < last {
            size
        } else {
            count - size * u64::from(last - 1)
        };
        if p.records as u64 != expected {
            return Err(format!(
                "page {} held {} records where {expected} were due",
                p.number, p.records
            ));
        }
        if p.has_next != (p.number < last) {
            return Err(format!(
                "page {} of {last} has next = {}",
                p.number, p.has_next
            ));
        }
    }
    Ok(pages)
}
