//! `--timezone`: the calendar of `today`, `yesterday` and `-Nd` is the zone's, not the
//! machine's (workers run in UTC, accounts live in their own zone).

use chrono::Utc;

use crate::cube_sim::{self, SimConfig};
use crate::support::*;

/// The day `today` names in `zone` around now (a run may straddle midnight there).
fn today_in(zone: chrono_tz::Tz) -> chrono::NaiveDate {
    Utc::now().with_timezone(&zone).date_naive()
}

#[test]
fn today_is_the_zones_day() {
    let sim = cube_sim::start(SimConfig::default());
    // 25 hours apart: their todays always differ.
    for zone in [
        chrono_tz::Pacific::Kiritimati,
        chrono_tz::Pacific::Pago_Pago,
    ] {
        let ws = Workspace::new();
        let before = today_in(zone);
        let out = ws.extract(
            &sim,
            &[
                "--campaign",
                "101",
                "--from",
                "yesterday",
                "--to",
                "today",
                "--timezone",
                zone.name(),
            ],
        );
        let after = today_in(zone);
        out.assert_code(0);
        let days: Vec<String> = out.report()["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["date"].as_str().unwrap().to_owned())
            .collect();
        let expected = |today: chrono::NaiveDate| {
            vec![
                (today - chrono::Duration::days(1)).to_string(),
                today.to_string(),
            ]
        };
        assert!(
            days == expected(before) || days == expected(after),
            "{zone}: {days:?}, today there {before}"
        );
    }
}

#[test]
fn an_unknown_zone_exits_2_with_one_sentence() {
    let sim = cube_sim::start(SimConfig::default());
    let ws = Workspace::new();
    let out = ws.extract(
        &sim,
        &["--campaign", "101", "--timezone", "Mars/Olympus_Mons"],
    );
    let error = out.refused_with_one_error();
    assert!(error.contains("Europe/Oslo"), "{}", error);
    assert!(!ws.dest().exists(), "nothing written");
}
