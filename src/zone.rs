//! The time zone whose calendar names the days of `today`, `yesterday`, `-Nd` and of a kept
//! snapshot (`--timezone`): workers run in UTC while Cube accounts live in their own zone, and
//! "yesterday" at 00:30 in Oslo is another day than in UTC.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

/// `--timezone`: an IANA zone, or the machine's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Zone {
    #[default]
    Machine,
    Named(chrono_tz::Tz),
}

/// `--timezone` named no IANA zone.
#[derive(Debug, thiserror::Error)]
#[error("--timezone {0:?} is not an IANA time zone; give one such as Europe/Oslo or UTC")]
pub(crate) struct UnknownZone(pub(crate) String);

impl Zone {
    /// The zone `--timezone` names (none given: the machine's).
    pub(crate) fn parse(name: Option<&str>) -> Result<Zone, UnknownZone> {
        match name {
            None => Ok(Zone::Machine),
            Some(name) => name
                .trim()
                .parse::<chrono_tz::Tz>()
                .map(Zone::Named)
                .map_err(|_| UnknownZone(name.to_owned())),
        }
    }

    /// The day `at` falls on in this zone.
    pub(crate) fn day_of<T: TimeZone>(self, at: &DateTime<T>) -> NaiveDate {
        match self {
            Zone::Machine => at.with_timezone(&chrono::Local).date_naive(),
            Zone::Named(tz) => at.with_timezone(&tz).date_naive(),
        }
    }

    /// Today, in this zone.
    pub(crate) fn today(self) -> NaiveDate {
        self.day_of(&Utc::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moment_is_a_day_of_its_zone() {
        // 2024-03-03 00:30 in Oslo is still 2024-03-02 in UTC.
        let at = DateTime::parse_from_rfc3339("2024-03-02T23:30:00Z").unwrap();
        let oslo = Zone::parse(Some("Europe/Oslo")).unwrap();
        let utc = Zone::parse(Some("UTC")).unwrap();
        assert_eq!(oslo.day_of(&at).to_string(), "2024-03-03");
        assert_eq!(utc.day_of(&at).to_string(), "2024-03-02");
        assert!(Zone::parse(Some("Mars/Olympus_Mons")).is_err());
        assert_eq!(Zone::parse(None).unwrap(), Zone::Machine);
    }
}
