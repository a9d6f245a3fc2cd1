//! Reading one partition's listing: page 1 tells `count` and the page size; pages 2..N are
//! fetched concurrently by number (in order, at most `fan_out` at once) and each is checked
//! against page 1 as it arrives, so a listing that changed while we paged is caught.

use super::Page;
use crate::datasets::UniqueKey;
use crate::schema::Misfit;

/// How a read of a listing found it changed (or unfit for the file being written): the day is
/// read again.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ListingChange {
    #[error("page 1 is empty but count is {count}")]
    EmptyFirstPage { count: u64 },
    #[error("count went from {from} to {to} at page {page}")]
    CountChanged { from: u64, to: u64, page: u32 },
    #[error("page {page} held {held} records where {due} were due")]
    WrongSize { page: u32, held: usize, due: u64 },
    #[error("page {page} of {pages} has next = {has_next}")]
    WrongNext {
        page: u32,
        pages: u32,
        has_next: bool,
    },
    /// A record seen twice in one snapshot: rows moved between pages while they were read.
    #[error("a record with the same {key} as an earlier one came on page {page}")]
    SeenTwice { key: &'static str, page: u32 },
    /// A page that vanished means the listing shrank under us.
    #[error("{url} vanished")]
    Vanished { url: String },
    /// A page brought a key or type the file being written cannot hold (it was started with
    /// the schema known at page 1).
    #[error("{0} while the day was read")]
    Misfit(#[from] Misfit),
}

/// The records of one read of a listing so far, by the digest of their unique key: a record
/// seen twice means rows moved between pages while they were read.
pub(crate) struct Seen {
    key: Option<&'static str>,
    ids: std::collections::HashSet<u64>,
}

impl Seen {
    /// `unique_key`: what no two records share (`None`: nothing to check).
    pub(crate) fn new(unique_key: Option<UniqueKey>) -> Seen {
        Seen {
            key: unique_key.map(|k| k.key),
            ids: Default::default(),
        }
    }

    pub(crate) fn check(&mut self, page: &Page) -> Result<(), ListingChange> {
        let Some(key) = self.key else {
            return Ok(());
        };
        for &id in &page.ids {
            if !self.ids.insert(id) {
                return Err(ListingChange::SeenTwice {
                    key,
                    page: page.number,
                });
            }
        }
        Ok(())
    }
}

/// Reads of one partition before a listing that keeps changing fails it.
pub(crate) const MAX_READS: u32 = 3;

/// The shape of a listing as page 1 announced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Listing {
    pub(crate) count: u64,
    pub(crate) page_size: u64,
    pub(crate) pages: u32,
}

impl Listing {
    /// `Ok(None)` for an empty listing; `Err` when page 1 contradicts itself.
    pub(crate) fn from_first(first: &Page) -> Result<Option<Listing>, ListingChange> {
        if first.records == 0 {
            return if first.count == 0 && !first.has_next {
                Ok(None)
            } else {
                Err(ListingChange::EmptyFirstPage { count: first.count })
            };
        }
        let page_size = first.records as u64;
        let listing = Listing {
            count: first.count,
            page_size,
            pages: first.count.div_ceil(page_size).max(1) as u32,
        };
        listing.check(first)?;
        Ok(Some(listing))
    }

    /// Every page must report the same `count`, be full but for the last (which holds the rest),
    /// and link onwards exactly when it is not the last. Together: the rows add up to `count`.
    pub(crate) fn check(&self, page: &Page) -> Result<(), ListingChange> {
        if page.count != self.count {
            return Err(ListingChange::CountChanged {
                from: self.count,
                to: page.count,
                page: page.number,
            });
        }
        let last = page.number == self.pages;
        let due = if last {
            self.count - self.page_size * u64::from(self.pages - 1)
        } else {
            self.page_size
        };
        if page.records as u64 != due {
            return Err(ListingChange::WrongSize {
                page: page.number,
                held: page.records,
                due,
            });
        }
        if page.has_next == last {
            return Err(ListingChange::WrongNext {
                page: page.number,
                pages: self.pages,
                has_next: page.has_next,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn page(number: u32, count: u64, records: usize, next: bool) -> Page {
        let results: Vec<String> = (0..records).map(|i| format!("{{\"i\": {i}}}")).collect();
        let body = format!(
            "{{\"count\": {count}, \"next\": {}, \"results\": [{}]}}",
            if next { "\"x\"" } else { "null" },
            results.join(",")
        );
        Page::parse(number, Bytes::from(body), &[]).unwrap()
    }

    #[test]
    fn a_consistent_listing_passes() {
        let l = Listing::from_first(&page(1, 7, 3, true)).unwrap().unwrap();
        assert_eq!(l.pages, 3);
        assert!(l.check(&page(2, 7, 3, true)).is_ok());
        assert!(l.check(&page(3, 7, 1, false)).is_ok());
    }

    #[test]
    fn every_kind_of_change_is_caught() {
        let l = Listing::from_first(&page(1, 7, 3, true)).unwrap().unwrap();
        assert!(l
            .check(&page(2, 8, 3, true))
            .unwrap_err()
            .to_string()
            .contains("count went"));
        assert!(l
            .check(&page(2, 7, 2, true))
            .unwrap_err()
            .to_string()
            .contains("records"));
        assert!(l.check(&page(3, 7, 2, false)).is_err());
        assert!(l
            .check(&page(3, 7, 1, true))
            .unwrap_err()
            .to_string()
            .contains("next"));
        assert!(l
            .check(&page(2, 7, 3, false))
            .unwrap_err()
            .to_string()
            .contains("next"));
    }

    #[test]
    fn empty_and_contradictory_first_pages() {
        assert_eq!(Listing::from_first(&page(1, 0, 0, false)), Ok(None));
        assert!(Listing::from_first(&page(1, 5, 0, false)).is_err());
        assert!(
            Listing::from_first(&page(1, 3, 3, true)).is_err(),
            "a full single page must not link on"
        );
        assert!(
            Listing::from_first(&page(1, 2, 3, false)).is_err(),
            "more rows than count"
        );
    }
}
