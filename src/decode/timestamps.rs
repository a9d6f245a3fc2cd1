//! The API's dates and timestamps: its own layouts read at fixed positions, anything else by
//! chrono.

use std::sync::LazyLock;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{DateTime, NaiveDate};

/// Days since 1970-01-01 of `YYYY-MM-DD` (a time after it, if any, is ignored).
pub(crate) fn parse_date(s: &str) -> Option<i32> {
    if let Some(days) = s.as_bytes().get(..10).and_then(fixed::date) {
        return Some(days);
    }
    let date = NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()?;
    Some((date - NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as i32)
}

/// Microseconds of a local wall-clock time such as `2019-08-14 09:34` (seconds and fractions optional).
pub fn parse_naive_timestamp(s: &str) -> Option<i64> {
    fixed::naive(s.as_bytes()).or_else(|| parse_naive_general(s))
}

/// Microseconds since the epoch (UTC) of a time with offset, e.g. `2020-02-12T10:27:06.477+0100`.
pub fn parse_zoned_timestamp(s: &str) -> Option<i64> {
    fixed::zoned(s.as_bytes()).or_else(|| parse_zoned_general(s))
}

/// The API's own layouts read at fixed positions: chrono's format-driven parsing costs about
/// five times as much per value, and a wide extraction has several timestamps per record.
/// Anything else (another layout, an impossible date or time) is left to the general parsers,
/// which decide; for what these accept, they give the same result.
mod fixed {
    use chrono::NaiveDate;

    /// The number written by the ASCII digits `b`, if all are digits.
    fn number(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    }

    /// Days since 1970-01-01 of `YYYY-MM-DD` (exactly ten bytes).
    pub(super) fn date(b: &[u8]) -> Option<i32> {
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let (y, m, d) = (number(&b[..4])?, number(&b[5..7])?, number(&b[8..10])?);
        let date = NaiveDate::from_ymd_opt(y as i32, m, d)?;
        Some((date - NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as i32)
    }

    /// Seconds since midnight of `HH:MM` or `HH:MM:SS`.
    fn time(b: &[u8]) -> Option<i64> {
        let (h, m) = (number(b.get(..2)?)?, number(b.get(3..5)?)?);
        let s = match b.len() {
            5 => 0,
            8 if b[5] == b':' => number(&b[6..8])?,
            _ => return None,
        };
        (b[2] == b':' && h < 24 && m < 60 && s < 60).then_some(i64::from(h * 3600 + m * 60 + s))
    }

    /// Microseconds of `YYYY-MM-DD HH:MM[:SS]` (or with `T`), taken as UTC.
    pub(super) fn naive(b: &[u8]) -> Option<i64> {
        if b.len() < 16 || !matches!(b[10], b' ' | b'T') {
            return None;
        }
        let days = i64::from(date(&b[..10])?);
        Some((days * 86_400 + time(&b[11..])?) * 1_000_000)
    }

    /// Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS.fff±HHMM`.
    pub(super) fn zoned(b: &[u8]) -> Option<i64> {
        if b.len() != 28 || b[10] != b'T' || b[19] != b'.' {
            return None;
        }
        let local = naive(&b[..19])?;
        let millis = i64::from(number(&b[20..23])?);
        let sign = match b[23] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let (oh, om) = (number(&b[24..26])?, number(&b[26..28])?);
        if oh > 23 || om > 59 {
            return None;
        }
        let offset = sign * i64::from(oh * 3600 + om * 60);
        Some(local + millis * 1000 - offset * 1_000_000)
    }
}

/// [`parse_naive_timestamp`] for any layout chrono reads (public for `benches/page_passes.rs`).
#[doc(hidden)]
pub fn parse_naive_general(s: &str) -> Option<i64> {
    static FORMATS: LazyLock<[Vec<Item<'static>>; 4]> = LazyLock::new(|| {
        [
            "%Y-%m-%d %H:%M",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%dT%H:%M:%S%.f",
        ]
        .map(|f| StrftimeItems::new(f).collect())
    });
    FORMATS
        .iter()
        .find_map(|items| parse_with(s, items)?.to_naive_datetime_with_offset(0).ok())
        .map(|t| t.and_utc().timestamp_micros())
}

/// [`parse_zoned_timestamp`] for any layout chrono reads (public for `benches/page_passes.rs`).
#[doc(hidden)]
pub fn parse_zoned_general(s: &str) -> Option<i64> {
    static FORMATS: LazyLock<[Vec<Item<'static>>; 2]> = LazyLock::new(|| {
        ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"]
            .map(|f| StrftimeItems::new(f).collect())
    });
    FORMATS
        .iter()
        .find_map(|items| parse_with(s, items)?.to_datetime().ok())
        .or_else(|| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_micros())
}

/// Parses `s` with a format compiled once: `parse_from_str` would re-read the format string
/// for every value, which showed up in profiles of wide extractions.
fn parse_with(s: &str, items: &[Item<'static>]) -> Option<Parsed> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, s, items.iter()).ok()?;
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed-position parsers agree with chrono's wherever they accept a value, and leave
    /// the rest to it.
    #[test]
    fn fixed_position_parsing_agrees_with_the_general_parsers() {
        let naive = [
            "2019-08-14 09:34",
            "2019-08-14T09:34",
            "2019-08-14 23:59:59",
            "2020-02-29 00:00",
            "1969-12-31 23:59",
            "2019-02-29 10:00",
            "2019-08-14 24:00",
            "2019-08-14 09:34:60",
            "2019-08-14 09:34:05.250",
            "2019-08-14 9:34",
            "2019-08-14 09:34 ",
            "2019-8-14 09:34",
        ];
        for s in naive {
            if let Some(fast) = fixed::naive(s.as_bytes()) {
                assert_eq!(Some(fast), parse_naive_general(s), "{s}");
            }
            assert_eq!(parse_naive_timestamp(s), parse_naive_general(s), "{s}");
        }
        assert!(fixed::naive(b"2019-08-14 09:34").is_some());
        let zoned = [
            "2020-02-12T10:27:06.477+0100",
            "2020-02-12T00:27:06.000-0530",
            "1970-01-01T00:00:00.001+0000",
            "2020-02-30T10:27:06.477+0100",
            "2020-02-12T10:27:06.477+01:00",
            "2020-02-12T10:27:06+0100",
            "2020-02-12 10:27:06.477+0100",
            "2020-02-12T10:27:06.4771+0100",
        ];
        for s in zoned {
            if let Some(fast) = fixed::zoned(s.as_bytes()) {
                assert_eq!(Some(fast), parse_zoned_general(s), "{s}");
            }
            assert_eq!(parse_zoned_timestamp(s), parse_zoned_general(s), "{s}");
        }
        assert!(fixed::zoned(b"2020-02-12T10:27:06.477+0100").is_some());
        for d in [
            "2019-08-14",
            "2020-02-29",
            "2019-02-29",
            "1900-01-01",
            "2019-08-1x",
        ] {
            let general = NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .ok()
                .map(|x| (x - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32);
            assert_eq!(parse_date(d), general, "{d}");
        }
    }
}
