//! Reading one partition's listing: page 1 tells `count` and the page size; pages 2..N are
//! fetched concurrently by number (in order, at most `fan_out` at once) and each is checked
//! against page 1 as it arrives, so a listing that changed while we paged is caught.

use super::Page;

/// Reads of one partition before a listing that keeps changing fails it.
pub const MAX_READS: u32 = 3;

/// The shape of a listing as page 1 announced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listing {
    pub count: u64,
    pub page_size: u64,
    pub pages: u32,
}

impl Listing {
    /// `Ok(None)` for an empty listing; `Err` when page 1 contradicts itself.
    pub fn from_first(first: &Page) -> Result<Option<Listing>, String> {
        if first.records == 0 {
            return if first.count == 0 && !first.has_next {
                Ok(None)
            } else {
                Err(format!("page 1 is empty but count is {}", first.count))
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
    pub fn check(&self, page: &Page) -> Result<(), String> {
        if page.count != self.count {
            return Err(format!(
                "count went from {} to {} at page {}",
                self.count, page.count, page.number
            ));
        }
        let last = page.number == self.pages;
        let due = if last {
            self.count - self.page_size * u64::from(self.pages - 1)
        } else {
            self.page_size
        };
        if page.records as u64 != due {
            return Err(format!(
                "page {} held {} records where {due} were due",
                page.number, page.records
            ));
        }
        if page.has_next == last {
            return Err(format!(
                "page {} of {} has next = {}",
                page.number, self.pages, page.has_next
            ));
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
        Page::parse(number, Bytes::from(body)).unwrap()
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
            .contains("count went"));
        assert!(l
            .check(&page(2, 7, 2, true))
            .unwrap_err()
            .contains("records"));
        assert!(l.check(&page(3, 7, 2, false)).is_err());
        assert!(l.check(&page(3, 7, 1, true)).unwrap_err().contains("next"));
        assert!(l.check(&page(2, 7, 3, false)).unwrap_err().contains("next"));
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
