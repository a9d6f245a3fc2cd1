//! The records the API serves: data tables and the record generators.

use chrono::{Datelike, Days, NaiveDate};
use serde_json::{Map, Value};

use super::*;

pub(crate) const FIRST_NAMES: [&str; 24] = [
    "Ola", "Kari", "Bjørn", "Åse", "Ståle", "Øystein", "Sigrid", "Håkon", "Ingrid", "Tor", "Mette",
    "Jørgen", "Solveig", "Ærlend", "Åsmund", "Marit", "Nils", "Linnéa", "Per", "Gro", "Henrik",
    "Astrid", "Sindre", "Bodil",
];
pub(crate) const LAST_NAMES: [&str; 22] = [
    "Nordmann",
    "Løvås",
    "Ærø",
    "Hansen",
    "Johansen",
    "Bråten",
    "Sæther",
    "Østby",
    "Haugen",
    "Dåvøy",
    "Kjærnes",
    "Berg",
    "Solberg",
    "Aas",
    "Nilsen",
    "Lie",
    "Grønli",
    "Strøm",
    "Bjørnstad",
    "Fjærli",
    "Myhre",
    "Håland",
];
pub(crate) const EMAIL_DOMAINS: [&str; 6] = [
    "online.no",
    "gmail.com",
    "hotmail.com",
    "live.no",
    "outlook.com",
    "broadpark.no",
];
pub(crate) const STREETS: [&str; 12] = [
    "Olavegen",
    "Storgata",
    "Kongens gate",
    "Øvre Slottsgate",
    "Bjørnstjerne Bjørnsons vei",
    "Åsveien",
    "Fjordgata",
    "Kirkegata",
    "Sjøgata",
    "Ærfuglveien",
    "Trollstigvegen",
    "Lærkeveien",
];
/// (postal code, city): codes are strings, several with a leading zero.
pub(crate) const POSTAL_PLACES: [(&str, &str); 14] = [
    ("0235", "OSLO"),
    ("0562", "OSLO"),
    ("0150", "OSLO"),
    ("1337", "SANDVIKA"),
    ("1440", "DRØBAK"),
    ("2609", "LILLEHAMMER"),
    ("4950", "RISØR"),
    ("5003", "BERGEN"),
    ("6002", "ÅLESUND"),
    ("6300", "ÅNDALSNES"),
    ("6210", "TROLLSTIGEN"),
    ("7010", "TRONDHEIM"),
    ("8006", "BODØ"),
    ("9008", "TROMSØ"),
];
pub(crate) const UPDATERS: [&str; 4] = [
    "import@headshed.com",
    "kari.selger@salgsbyraa.no",
    "api@norgesforsikring.no",
    "ola.hansen@salgsbyraa.no",
];
pub(crate) const UPDATE_METHODS: [&str; 4] = ["Import", "Manuell", "API", "Samtale"];
/// (email, team, department)
pub(crate) const SELLERS: [(&str, &str, &str); 8] = [
    ("kari.selger@salgsbyraa.no", "Team Nord", "Trondheim"),
    ("ola.hansen@salgsbyraa.no", "Team Øst", "Oslo"),
    ("siri.aasen@salgsbyraa.no", "Team Vest", "Bergen"),
    ("per.ostli@salgsbyraa.no", "Team Nord", "Tromsø"),
    ("tor.bjorgum@salgsbyraa.no", "Team Øst", "Oslo"),
    ("aase.laerdal@salgsbyraa.no", "Team Vest", "Bergen"),
    ("jorgen.sather@salgsbyraa.no", "Team Midt", "Trondheim"),
    ("selger@selskap.no", "Team Midt", "Trondheim"),
];
pub(crate) const SUBTYPES_SALE: [&str; 3] = ["Ja - Salg", "Ja - Oppgradering", "Ja - Verving"];
pub(crate) const SUBTYPES_NO_SALE: [&str; 4] = [
    "Nei - Ikke interessert",
    "Nei - Har allerede avtale",
    "Nei - For dyrt",
    "Nei - Reservert mot telefonsalg",
];
pub(crate) const SUBTYPES_CALLBACK: [&str; 2] =
    ["Ring tilbake senere", "Ring tilbake - avtalt tid"];
pub(crate) const SUBTYPES_NOT_REACHED: [&str; 3] = ["Ikke svar", "Opptatt", "Feil nummer"];
pub(crate) const COMMENTS: [&str; 10] = [
    "Kunden ønsker å bli ringt etter kl. 17",
    "Sa \"kanskje\" – ring tilbake neste uke",
    "Har allerede avtale med konkurrent",
    "Linje 1\nLinje 2: kunden vil ha tilbud på e-post",
    "Sti til avtale: C:\\kunder\\2019\\ærlig.pdf",
    "Veldig fornøyd 😀👍",
    "Tab\tseparert kommentar",
    "Kunden svarte: «nei takk»",
    "Æ e itj interessert, sa han 🙃",
    "Sjekk 'adresse' \\ postnummer\r\nstemmer ikke",
];
pub(crate) const ADDITIONAL_INPUT: [&str; 4] = [
    "Ønsker tilbud på bredbånd",
    "Kontaktes igjen i mars",
    "Referanse: 12-345/B",
    "Betaler med eFaktura",
];
pub(crate) const SEGMENTS_B2C: [&str; 3] = ["Privat 18-35", "Privat 36-60", "Privat 60+"];
pub(crate) const SEGMENTS_B2B: [&str; 3] = ["SMB", "Storkunde", "Offentlig sektor"];
pub(crate) const CAMPAIGN_CODES: [&str; 5] = ["HØST-A", "VIP24", "VERV-10", "TILBUD50", ""];
pub(crate) const CONTACT_WISHES: [&str; 4] = ["Ja, på telefon", "Ja, på e-post", "Nei", ""];
pub(crate) const RESUMES: [&str; 4] = [
    "Kort samtale",
    "Lang samtale – kunden var positiv",
    "Ingen",
    "",
];
pub(crate) const WIDE_WORDS: [&str; 6] = ["alfa", "bøtte", "østers", "ærfugl", "åker", "fjell"];
/// (product__code, product__title, product__price), the product fields Headshed documents.
pub(crate) const PRODUCTS: [(&str, &str, f64); 6] = [
    ("INNBO", "Innboforsikring", 249.5),
    ("BIL+", "Bilforsikring Pluss", 412.75),
    ("STROM", "Strøm Spot", 39.9),
    ("FIBER500", "Fiber 500", 649.0),
    ("ALARM", "Alarmpakke", 399.9),
    ("REISE", "Reiseforsikring", 189.25),
];
/// A custom product field (`product__extra__<label>`): the binding period in months, or "".
pub(crate) const PRODUCT_EXTRA_KEY: &str = "product__extra__Bindingstid (mnd)";

// ============================================================================================
// Records
// ============================================================================================

pub(crate) fn put(r: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    r.insert(key.to_owned(), value.into());
}

pub(crate) fn ymd(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

pub(crate) fn days_before(day: NaiveDate, n: u64) -> NaiveDate {
    day.checked_sub_days(Days::new(n)).unwrap_or(day)
}

/// Lower-case ASCII for e-mail addresses ("Bjørn" -> "bjorn", "Ærø" -> "aero").
pub(crate) fn ascii_fold(s: &str) -> String {
    let mut out = String::new();
    for c in s.to_lowercase().chars() {
        match c {
            'æ' => out.push_str("ae"),
            'ø' => out.push('o'),
            'å' => out.push('a'),
            'é' => out.push('e'),
            c if c.is_ascii_alphanumeric() => out.push(c),
            _ => {}
        }
    }
    out
}

pub(crate) fn mobile_phone(rng: &mut Rng) -> String {
    format!("{}{:07}", rng.pick(&[4, 9]), rng.below(10_000_000))
}

pub(crate) fn landline_phone(rng: &mut Rng) -> String {
    format!("{}{:07}", rng.range(2, 7), rng.below(10_000_000))
}

/// Last Sunday of a month.
pub(crate) fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let first_of_next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }
    .expect("valid date");
    let last = first_of_next.pred_opt().expect("valid date");
    days_before(last, u64::from(last.weekday().num_days_from_sunday()))
}

/// UTC offset of Europe/Oslo during office hours of `day` (CEST from the last Sunday of March
/// to the last Sunday of October).
pub(crate) fn oslo_offset(day: NaiveDate) -> &'static str {
    let year = day.year();
    if day >= last_sunday(year, 3) && day < last_sunday(year, 10) {
        "+0200"
    } else {
        "+0100"
    }
}

/// Number of records of one campaign on one day (0 for an unknown campaign).
pub fn row_count(cfg: &SimConfig, campaign_id: u64, day: NaiveDate) -> usize {
    if campaign_meta(cfg, campaign_id).is_none() || (cfg.quirks.empty_days && day.day() % 7 == 0) {
        return 0;
    }
    let mean = u64::from(cfg.rows_per_day);
    let (lo, hi) = if cfg.quirks.sparse {
        (0, mean * 2)
    } else {
        (mean / 2, mean * 3 / 2)
    };
    stream(cfg, STREAM_COUNT, campaign_id, day, 0).range(lo, hi) as usize
}

/// The records the API serves for one campaign and one day, in API order. A pure function of
/// the data fields of `cfg` (seed, campaigns, rows_per_day, data-changing quirks). Empty for an
/// unknown campaign. Every record's customer is one of its CRM's ([`crm_customer`]), and within
/// a (campaign, day) no customer is called twice ([`called_customer`]).
pub fn records(cfg: &SimConfig, campaign_id: u64, day: NaiveDate) -> Vec<Map<String, Value>> {
    let Some(meta) = campaign_meta(cfg, campaign_id) else {
        return Vec::new();
    };
    let n = row_count(cfg, campaign_id, day);
    (0..n).map(|idx| record(cfg, &meta, day, idx, n)).collect()
}

/// The records of one campaign and day after `version` inserts (fault `inserts_while_paging`):
/// `version` extra records in front of the base [`records`], the latest insert first, so that
/// going from version v to v + 1 shifts every row by one place. Inserted record j (0-based) is
/// a copy of base record j % n whose customer (`crm__customer_id` and standard info) is
/// replaced by another of the CRM's, one no base record of the day called, so the key set and
/// the JSON kind of every value are those of a base record of that day.
/// A day without base records stays empty; version 0 is [`records`].
pub fn records_at(
    cfg: &SimConfig,
    campaign_id: u64,
    day: NaiveDate,
    version: u32,
) -> Vec<Map<String, Value>> {
    let base = records(cfg, campaign_id, day);
    if base.is_empty() || version == 0 {
        return base;
    }
    let n = base.len();
    let mut out: Vec<Map<String, Value>> = (0..version as usize)
        .rev()
        .map(|j| inserted_record(cfg, campaign_id, day, &base[j % n], n, j))
        .collect();
    out.extend(base);
    out
}

/// The records of one campaign and day as served once every insert of fault
/// `inserts_while_paging` has happened (`records_at(.., cfg.faults.inserts_while_paging)`);
/// equal to [`records`] without that fault.
pub fn final_records(cfg: &SimConfig, campaign_id: u64, day: NaiveDate) -> Vec<Map<String, Value>> {
    records_at(cfg, campaign_id, day, cfg.faults.inserts_while_paging)
}

/// Inserted record `j` of a day with `n` base records, copied from `template`.
pub(crate) fn inserted_record(
    cfg: &SimConfig,
    campaign_id: u64,
    day: NaiveDate,
    template: &Map<String, Value>,
    n: usize,
    j: usize,
) -> Map<String, Value> {
    let mut r = template.clone();
    // A customer of the CRM that no base record of the day called.
    let meta = campaign_meta(cfg, campaign_id).expect("inserts happen in known campaigns");
    let k = called_customer(cfg, campaign_id, day, n + j);
    take_customer(&mut r, &crm_customer(cfg, meta.owner_id, meta.crm_type, k));
    r
}

/// The product registrations of one campaign and day: the rows with `call_outcome__type` "Sale"
/// (about a third), each with `product__code`, `product__title`, `product__price` (a number)
/// and `product__extra__Bindingstid (mnd)` (an integer or "") appended.
pub fn product_registrations(
    cfg: &SimConfig,
    campaign_id: u64,
    day: NaiveDate,
) -> Vec<Map<String, Value>> {
    product_registrations_at(cfg, campaign_id, day, 0)
}

/// The product registrations of [`records_at`] `version`: those of [`product_registrations`]
/// preceded by the sales among the inserted records (with their own product values).
pub fn product_registrations_at(
    cfg: &SimConfig,
    campaign_id: u64,
    day: NaiveDate,
    version: u32,
) -> Vec<Map<String, Value>> {
    let records = records_at(cfg, campaign_id, day, version);
    let inserted = records.len().min(version as usize);
    records
        .into_iter()
        .enumerate()
        .filter(|(_, r)| r.get("call_outcome__type").and_then(Value::as_str) == Some("Sale"))
        .map(|(pos, mut r)| {
            // Base rows keep their own index (so inserts never change them); inserted rows use
            // a number of their own.
            let row = if pos < inserted {
                INSERTED_ROW_BASE + (inserted - 1 - pos) as u64
            } else {
                (pos - inserted) as u64
            };
            let mut rng = stream(cfg, STREAM_PRODUCT, campaign_id, day, row);
            let (code, title, price) = *rng.pick(&PRODUCTS);
            put(&mut r, "product__code", code);
            put(&mut r, "product__title", title);
            put(&mut r, "product__price", price);
            let months = match rng.below(3) {
                0 => Value::from(""),
                1 => Value::from(12),
                _ => Value::from(24),
            };
            put(&mut r, PRODUCT_EXTRA_KEY, months);
            r
        })
        .collect()
}

/// The product registrations once every insert of fault `inserts_while_paging` has happened.
pub fn final_product_registrations(
    cfg: &SimConfig,
    campaign_id: u64,
    day: NaiveDate,
) -> Vec<Map<String, Value>> {
    product_registrations_at(cfg, campaign_id, day, cfg.faults.inserts_while_paging)
}

/// One call outcome. All base values come from the row stream in a fixed order; every quirk
/// draws from its own stream, so quirks never change the base values.
pub(crate) fn record(
    cfg: &SimConfig,
    meta: &CampaignMeta,
    day: NaiveDate,
    idx: usize,
    n: usize,
) -> Map<String, Value> {
    let row = idx as u64;
    let mut d = Draw {
        cfg,
        meta,
        day,
        idx,
        n,
        q: &cfg.quirks,
        cid: meta.id,
        row,
        date: ymd(day),
        dom: day.day(),
        late: day.day() >= 15,
        rng: stream(cfg, STREAM_ROW, meta.id, day, row),
    };
    let mut r = Map::new();
    // One stream feeds the parts in this order, so the order is part of the data.
    customer(&mut d, &mut r);
    change_log(&mut d, &mut r);
    let (mut drift, mut new_keys) = custom_info(&mut d, &mut r);
    let segment = call_outcome(&mut d, &mut r);
    let mut case = quirk_extras(&mut d, &mut r, &mut drift, &mut new_keys);
    campaign_and_organisation(&mut d, &mut r, segment, &mut case);
    if cfg.new_column_from.is_some_and(|from| day >= from) {
        // Drawn from its own stream, after everything else: the other keys stay as they were.
        let mut later = stream(cfg, STREAM_NEW_COLUMN, meta.id, day, row);
        put(&mut r, NEW_COLUMN_KEY, later.below(5));
    }
    r
}

/// The key of [`SimConfig::new_column_from`].
pub(crate) const NEW_COLUMN_KEY: &str = "call_outcome__extra__Oppfølging";

/// What the parts of one record are drawn from.
struct Draw<'a> {
    cfg: &'a SimConfig,
    meta: &'a CampaignMeta,
    day: NaiveDate,
    /// The record's position in its day, of `n`.
    idx: usize,
    n: usize,
    q: &'a Quirks,
    cid: u64,
    row: u64,
    date: String,
    dom: u32,
    /// The second half of the month, where drift quirks begin.
    late: bool,
    rng: Rng,
}

/// The customer: `crm__customer_id` and `crm__standard_info__*`.
fn customer(d: &mut Draw<'_>, r: &mut Map<String, Value>) {
    let idx = d.idx;
    let rng = &mut d.rng;
    let customer_id = format!("{:07}{:05}", rng.range(1_000_000, 9_999_999), idx % 100_000);
    let first = *rng.pick(&FIRST_NAMES);
    let last = *rng.pick(&LAST_NAMES);
    let phone_1 = mobile_phone(rng);
    let phone_2 = match rng.below(10) {
        0..=2 => String::new(),
        3..=5 => landline_phone(rng),
        _ => mobile_phone(rng),
    };
    let phone_3 = if rng.percent(70) {
        String::new()
    } else {
        landline_phone(rng)
    };
    let email = if rng.percent(85) {
        let sep = *rng.pick(&[".", "_", ""]);
        let domain = *rng.pick(&EMAIL_DOMAINS);
        format!("{}{sep}{}@{domain}", ascii_fold(first), ascii_fold(last))
    } else {
        String::new()
    };
    put(r, "crm__customer_id", customer_id);
    put(r, "crm__standard_info__name", format!("{first} {last}"));
    put(r, "crm__standard_info__phone_1", phone_1);
    put(r, "crm__standard_info__phone_2", phone_2);
    put(r, "crm__standard_info__phone_3", phone_3);
    put(r, "crm__standard_info__email", email);
    // The customer called is one of the CRM's: its id and standard info are the customer's
    // (the values drawn above only keep the row stream where it was).
    let k = called_customer(d.cfg, d.cid, d.day, idx);
    take_customer(r, &crm_customer(d.cfg, d.meta.owner_id, d.meta.crm_type, k));
}

/// Copies a CRM customer's id and standard info into a call-outcome record.
fn take_customer(r: &mut Map<String, Value>, customer: &Map<String, Value>) {
    for key in [
        "crm__customer_id",
        "crm__standard_info__name",
        "crm__standard_info__phone_1",
        "crm__standard_info__phone_2",
        "crm__standard_info__phone_3",
        "crm__standard_info__email",
    ] {
        if let Some(v) = customer.get(key) {
            put(r, key, v.clone());
        }
    }
}

/// `crm__change_log__*`.
fn change_log(d: &mut Draw<'_>, r: &mut Map<String, Value>) {
    let day = d.day;
    let rng = &mut d.rng;
    let (updated, updated_by, method) = if rng.percent(70) {
        let when = days_before(day, rng.range(1, 400));
        (ymd(when), *rng.pick(&UPDATERS), *rng.pick(&UPDATE_METHODS))
    } else {
        (String::new(), "", "")
    };
    put(r, "crm__change_log__updated", updated);
    put(r, "crm__change_log__updated_by", updated_by);
    put(r, "crm__change_log__update_method", method);
}

/// `crm__custom_info__*`; returns the drift and new-keys streams, which the quirk extras go on drawing from.
fn custom_info(d: &mut Draw<'_>, r: &mut Map<String, Value>) -> (Rng, Rng) {
    let cfg = d.cfg;
    let day = d.day;
    let q = d.q;
    let cid = d.cid;
    let row = d.row;
    let dom = d.dom;
    let late = d.late;
    let rng = &mut d.rng;
    let street = format!(
        "{} {}{}",
        rng.pick(&STREETS),
        rng.range(1, 120),
        if rng.percent(15) {
            *rng.pick(&["A", "B", "C"])
        } else {
            ""
        }
    );
    let (postal_code, city) = *rng.pick(&POSTAL_PLACES);
    let meter_id = format!("{:010}", rng.below(10_000_000_000));
    let start_date = if rng.percent(75) {
        ymd(days_before(day, rng.below(3650)))
    } else {
        String::new()
    };
    let age = rng.range(18, 90);
    let age_empty = rng.percent(10);
    let household = rng.range(1, 8);
    let mut age_value = if age_empty {
        Value::from("")
    } else {
        Value::from(age)
    };
    let mut household_value = Value::from(household);
    let mut drift = stream(cfg, STREAM_DRIFT, cid, day, row);
    if q.drift && late {
        if !age_empty && drift.percent(33) {
            age_value = Value::from(age as f64 + 0.5);
        }
        if drift.percent(15) {
            household_value = Value::from("ukjent");
        }
    }
    put(r, "crm__custom_info__3900", street);
    put(r, "crm__custom_info__3901", postal_code);
    put(r, "crm__custom_info__3902", city);
    put(r, "crm__custom_info__1405", meter_id);
    put(r, "crm__custom_info__1406", start_date);
    put(r, "crm__custom_info__220", age_value);
    put(r, "crm__custom_info__1407", household_value);
    let mut new_keys = stream(cfg, STREAM_NEW_KEYS, cid, day, row);
    if q.new_keys && dom >= 20 {
        put(r, "crm__custom_info__4100", new_keys.below(10_000));
    }
    if q.wide {
        let mut wide = stream(cfg, STREAM_WIDE, cid, day, row);
        for k in 0..WIDE_KEYS {
            let value = if wide.percent(15) {
                Value::from("")
            } else {
                match wide_kind(k) {
                    WideKind::Text => {
                        Value::from(format!("{} {}", wide.pick(&WIDE_WORDS), wide.below(1000)))
                    }
                    WideKind::Int => Value::from(wide.below(100_000)),
                    WideKind::Bool => Value::from(wide.percent(50)),
                }
            };
            put(r, &format!("crm__custom_info__{}", 5000 + k), value);
        }
    }
    (drift, new_keys)
}

/// `call_outcome__*`; returns the segment, which the campaign part names.
fn call_outcome(d: &mut Draw<'_>, r: &mut Map<String, Value>) -> &'static str {
    let meta = d.meta;
    let day = d.day;
    let idx = d.idx;
    let n = d.n;
    let date = &d.date;
    let rng = &mut d.rng;
    let (seller, team, department) = *rng.pick(&SELLERS);
    // Rows are spread over 08:00..20:00 in order, so submitted_when never decreases.
    let slot = (720 / n.max(1)).max(1) as u64;
    let minute = 480 + (idx * 720 / n.max(1)) as u64 + rng.below(slot);
    let (otype, subtypes): (&str, &[&str]) = match rng.below(100) {
        0..=29 => ("Sale", &SUBTYPES_SALE),
        30..=64 => ("No sale", &SUBTYPES_NO_SALE),
        65..=79 => ("Callback", &SUBTYPES_CALLBACK),
        _ => ("Not reached", &SUBTYPES_NOT_REACHED),
    };
    let subtype = *rng.pick(subtypes);
    let comment = if rng.percent(55) {
        ""
    } else {
        *rng.pick(&COMMENTS)
    };
    let additional = if rng.percent(70) {
        ""
    } else {
        *rng.pick(&ADDITIONAL_INPUT)
    };
    let report_by = if rng.percent(90) {
        seller
    } else {
        rng.pick(&SELLERS).0
    };
    let report_minute = minute + if rng.percent(80) { 0 } else { rng.range(1, 3) };
    let (seconds, millis) = (rng.below(60), rng.below(1000));
    let incoming = if rng.percent(60) {
        ""
    } else {
        *rng.pick(&["Ja", "Nei"])
    };
    let segment = if meta.crm_type == "B2C" {
        *rng.pick(&SEGMENTS_B2C)
    } else {
        *rng.pick(&SEGMENTS_B2B)
    };
    let hhmm = |m: u64| format!("{:02}:{:02}", m / 60, m % 60);
    put(r, "call_outcome__submitted_by", seller);
    put(
        r,
        "call_outcome__submitted_when",
        format!("{date} {}", hhmm(minute)),
    );
    put(r, "call_outcome__type", otype);
    put(r, "call_outcome__subtype", subtype);
    put(r, "call_outcome__submitted_in_department", department);
    put(r, "call_outcome__comment", comment);
    put(r, "call_outcome__additional_input_text", additional);
    put(r, "call_outcome__report_as__submitted_by", report_by);
    put(r, "call_outcome__report_as__submitted_in_team", team);
    put(
        r,
        "call_outcome__report_as__submitted_when",
        format!("{date} {}", hhmm(report_minute)),
    );
    put(
        r,
        "call_outcome__report_as__submitted_when_timestamp",
        format!(
            "{date}T{}:{seconds:02}.{millis:03}{}",
            hhmm(report_minute),
            oslo_offset(day)
        ),
    );
    put(r, "call_outcome__extra__Innkommende samtale", incoming);
    segment
}

/// `call_outcome__extra__*` added by quirks; returns the case-keys stream.
fn quirk_extras(
    d: &mut Draw<'_>,
    r: &mut Map<String, Value>,
    drift: &mut Rng,
    new_keys: &mut Rng,
) -> Rng {
    let cfg = d.cfg;
    let day = d.day;
    let q = d.q;
    let cid = d.cid;
    let row = d.row;
    let dom = d.dom;
    let late = d.late;
    if q.drift {
        let consent = if late && drift.percent(20) {
            Value::from("Ja")
        } else if drift.percent(20) {
            Value::from("")
        } else {
            Value::from(drift.percent(50))
        };
        put(r, "call_outcome__extra__Samtykke", consent);
    }
    if q.new_keys && dom >= 10 {
        put(
            r,
            "call_outcome__extra__Kampanjekode",
            *new_keys.pick(&CAMPAIGN_CODES),
        );
    }
    if q.odd_keys {
        let mut odd = stream(cfg, STREAM_ODD_KEYS, cid, day, row);
        let permanent = match odd.below(3) {
            0 => Value::from(true),
            1 => Value::from(false),
            _ => Value::from(""),
        };
        let amount = (odd.range(50, 5000) * 100 + odd.range(1, 99)) as f64 / 100.0;
        put(r, "call_outcome__extra__Fast ansatt over 50 %", permanent);
        put(
            r,
            "call_outcome__extra__Ønsker du å bli kontaktet?",
            *odd.pick(&CONTACT_WISHES),
        );
        put(r, "call_outcome__extra__Beløp (kr)", amount);
        // "Résumé" in Unicode NFD: 'e' followed by U+0301 COMBINING ACUTE ACCENT.
        put(
            r,
            "call_outcome__extra__Re\u{0301}sume\u{0301}",
            *odd.pick(&RESUMES),
        );
    }
    let mut case = stream(cfg, STREAM_CASE_KEYS, cid, day, row);
    if q.case_keys {
        put(
            r,
            "call_outcome__extra__Kommentar",
            format!(
                "Stor K: {}",
                case.pick(&["ring igjen", "ok", "sendt tilbud"])
            ),
        );
        put(
            r,
            "call_outcome__extra__kommentar",
            format!("liten k: {}", case.pick(&["notat", "oppfølging", "ingen"])),
        );
    }
    case
}

/// The campaign and organisation.
fn campaign_and_organisation(
    d: &mut Draw<'_>,
    r: &mut Map<String, Value>,
    segment: &str,
    case: &mut Rng,
) {
    let meta = d.meta;
    let day = d.day;
    let q = d.q;
    let cid = d.cid;
    put(r, "campaign__name", meta.name.as_str());
    put(r, "assignment__name", meta.assignment_name);
    put(r, "client__short_name", meta.client_short_name);
    put(r, "data_owner__name", meta.owner_name);
    put(r, "segment__name", segment);
    if q.case_keys {
        put(r, "Date", ymd(days_before(day, case.below(30))));
        put(r, "campaign_id", 9000 + cid);
    }
}
