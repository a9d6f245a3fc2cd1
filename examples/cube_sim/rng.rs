//! Deterministic randomness (splitmix64; stable across platforms and crate versions).

use chrono::{Datelike, NaiveDate};

use super::*;

pub(crate) const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 output function.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) struct Rng {
    pub(crate) state: u64,
}

impl Rng {
    /// A stream keyed by an ordered tuple of numbers.
    pub(crate) fn new(parts: &[u64]) -> Self {
        let mut h: u64 = 0x243F_6A88_85A3_08D3;
        for &p in parts {
            h = mix64(h.rotate_left(23) ^ mix64(p.wrapping_add(GOLDEN)));
        }
        Rng { state: h }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix64(self.state)
    }

    /// Uniform in 0..n (0 when n == 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in lo..=hi.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p` percent.
    pub(crate) fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// Independent streams, so that switching a quirk on never shifts the values of another.
pub(crate) const STREAM_COUNT: u64 = 1;
pub(crate) const STREAM_ROW: u64 = 2;
pub(crate) const STREAM_DRIFT: u64 = 3;
pub(crate) const STREAM_NEW_KEYS: u64 = 4;
pub(crate) const STREAM_ODD_KEYS: u64 = 5;
pub(crate) const STREAM_CASE_KEYS: u64 = 6;
pub(crate) const STREAM_WIDE: u64 = 7;
pub(crate) const STREAM_PRODUCT: u64 = 8;
pub(crate) const STREAM_INSERT: u64 = 9;
pub(crate) const STREAM_NEW_COLUMN: u64 = 13;
/// Row number of the first inserted record (fault `inserts_while_paging`) in the product
/// stream, far above any base row index.
pub(crate) const INSERTED_ROW_BASE: u64 = 1 << 40;

pub(crate) fn day_number(day: NaiveDate) -> u64 {
    i64::from(day.num_days_from_ce()) as u64
}

pub(crate) fn stream(
    cfg: &SimConfig,
    stream: u64,
    campaign_id: u64,
    day: NaiveDate,
    row: u64,
) -> Rng {
    Rng::new(&[cfg.seed, stream, campaign_id, day_number(day), row])
}
