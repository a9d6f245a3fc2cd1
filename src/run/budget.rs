//! The budgets of a run: blocking threads doing CPU work at once, partitions in flight, and
//! pages fetched but not yet encoded.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// CPU work (parsing, decoding, encoding) runs on at most one blocking thread per core: more
/// would only contend, and every extra thread grows its own allocator arena.
pub(crate) struct CpuSlots(Semaphore);

impl CpuSlots {
    pub(crate) fn new() -> CpuSlots {
        CpuSlots(Semaphore::new(cores()))
    }

    /// Runs `work` on a blocking thread once a slot is free, and frees the slot when it ends.
    /// A panic in `work` is a bug: it goes on unwinding here.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let _slot = self
            .0
            .acquire()
            .await
            .expect("the CPU slots are never closed");
        match tokio::task::spawn_blocking(work).await {
            Ok(value) => value,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Partitions extracted at once: one per request slot, plus one per core for the partitions
/// that are being encoded (or recorded) and so have no request in flight; with only one per
/// request slot, those slots would idle while the API's latency dominates.
pub(crate) fn partitions_in_flight(concurrency: usize) -> usize {
    concurrency.max(1) + cores()
}

/// Pages fetched but not yet encoded. A page per partition in flight plus three per request slot
/// keeps every request slot busy while encoding lags a little, and bounds raw JSON in memory.
/// More than one, because a partition read whole holds its pages' shares until its file is
/// encoded: with one per slot, a day of `--concurrency` pages fetching while another encodes
/// leaves no share for a third, and the request slots idle for every encoding. Measured on an
/// account's listing of 9 pages a day at `--concurrency 8` (docs/performance.md): 1.65x the
/// ideal time with one per slot, 1.26x with two, 1.20x with three, no better with four.
pub(crate) struct PageBudget {
    pages: usize,
    /// More pages than partitions in flight: see [`PageBudget::whole_read_pages`].
    shares: Arc<Semaphore>,
    in_flight: usize,
}

impl PageBudget {
    pub(crate) fn new(concurrency: usize) -> PageBudget {
        let in_flight = partitions_in_flight(concurrency);
        let pages = in_flight + 3 * concurrency.max(1);
        PageBudget {
            pages,
            shares: Arc::new(Semaphore::new(pages)),
            in_flight,
        }
    }

    /// A share for one page, held until the page is encoded.
    pub(crate) async fn one(&self) -> OwnedSemaphorePermit {
        self.many(1).await
    }

    /// A share for `n` pages at once, so that no partition holds part of its share while it
    /// waits for the rest.
    pub(crate) async fn many(&self, n: u32) -> OwnedSemaphorePermit {
        self.shares
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("the page budget is never closed")
    }

    /// The most pages a partition may read completely before encoding: the budget less one
    /// page for every other partition in flight (each may hold its page 1 while it waits), so
    /// that a whole-partition read can always get its share and never waits on a partition
    /// that waits on it.
    pub(crate) fn whole_read_pages(&self) -> usize {
        self.pages.saturating_sub(self.in_flight) + 1
    }
}
