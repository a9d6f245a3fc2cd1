//! Resolved settings: the command line checked, parsed and merged with the environment, once.

use chrono::NaiveDate;
use object_store::path::Path;
use reqwest::header::HeaderValue;
use url::Url;

use crate::cli::{ExtractArgs, StatusArgs};
use crate::datasets::{Dataset, Partitioning, ScopeKind, TableFormat};
use crate::privacy::{Policy, PolicyError};
use crate::sink::{Destination, DestinationError, DestinationSpec, Paths, StoreError};
use crate::source::retry::RetryPolicy;
use crate::unit::{Crm, CrmType, Scope};
use crate::zone::Zone;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CampaignSelection {
    Ids(Vec<u64>),
    All { include_archived: bool },
}

/// What an extraction does, resolved from its command line and the environment.
pub(crate) struct Settings {
    /// The tables of the command, each at the scope it is read at.
    pub(crate) tables: Vec<Dataset>,
    /// `{base}/api/v1/`.
    pub(crate) api_root: Url,
    /// The `Authorization` header value (marked sensitive; never printed).
    pub(crate) auth: HeaderValue,
    /// `None` when no table of the command is read per campaign (nor per CRM of a campaign).
    pub(crate) campaigns: Option<CampaignSelection>,
    /// `--crm`: the CRMs of CRM tables, instead of those of the selected campaigns.
    pub(crate) crms: Vec<Crm>,
    pub(crate) days: Vec<NaiveDate>,
    /// The day of the machine when the run began: a snapshot's day.
    pub(crate) today: NaiveDate,
    /// `--timezone`: whose calendar `today` is, and a snapshot's day.
    pub(crate) zone: Zone,
    /// `--keep-history`: snapshot tables keep one snapshot per day.
    pub(crate) keep_history: bool,
    /// `--partitioning`, when given: checked against (or chosen for) each date-partitioned table.
    pub(crate) partitioning: Option<Partitioning>,
    /// `--table-format`, when given: checked against (or chosen for) each table.
    pub(crate) table_format: Option<TableFormat>,
    pub(crate) store: StoreSettings,
    /// `--concurrency`: the most requests in flight.
    pub(crate) concurrency: usize,
    /// `--fixed-concurrency`: no adapting below it.
    pub(crate) fixed_concurrency: bool,
    pub(crate) retry: RetryPolicy,
    pub(crate) resume: bool,
    pub(crate) report: Option<std::path::PathBuf>,
    /// Personal-data policy (`--drop-columns`, `--hash-columns` and the key).
    pub(crate) policy: Policy,
    /// `--rewrite`: a policy unlike the dataset's is adopted and existing files rewritten.
    pub(crate) rewrite: bool,
}

/// Where a command reads and writes, resolved once for every command: the destination and the
/// key of hashed columns.
pub(crate) struct StoreSettings {
    pub(crate) dest: DestinationSpec,
    /// `CUBE_EXTRACT_HASH_KEY`, if set.
    pub(crate) hash_key: Option<String>,
}

impl StoreSettings {
    pub(crate) fn resolve(dest: &str) -> Result<StoreSettings, UsageError> {
        Ok(StoreSettings {
            dest: DestinationSpec::parse(dest)?,
            hash_key: std::env::var(crate::cli::env::HASH_KEY).ok(),
        })
    }

    /// Opens the destination (creating a local directory) and checks that it answers, before
    /// anything of `dataset` is read or written.
    pub(crate) async fn open(&self, dataset: Dataset) -> Result<Destination, StoreError> {
        let dest = Destination::open(&self.dest)?;
        dest.check(&Paths::new(&dataset).state_root()).await?;
        Ok(dest)
    }

    /// As [`StoreSettings::open`], for a command that writes: also checks that the destination
    /// takes a write (a probe object under `_cube_extract/`, deleted at once).
    pub(crate) async fn open_for_writing(
        &self,
        dataset: Dataset,
    ) -> Result<Destination, StoreError> {
        let dest = self.open(dataset).await?;
        dest.check_writable(&Path::from(crate::sink::STATE_DIR))
            .await?;
        Ok(dest)
    }
}

/// A usage or configuration error: one sentence with the cause and the fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UsageError {
    #[error("{0}")]
    Zone(#[from] crate::zone::UnknownZone),
    #[error("--campaign {0:?} is not a campaign id; give numeric ids such as --campaign 926,927")]
    NotACampaignId(String),
    #[error(
        "no campaign given; pass --campaign ID (repeatable or comma separated) or --all-campaigns"
    )]
    NoCampaign,
    #[error("no campaign or CRM given; pass --crm DATA_OWNER_ID:CRM_TYPE (e.g. --crm 2:B2C), --campaign ID or --all-campaigns")]
    NoCampaignOrCrm,
    #[error("--crm {0:?} is not a CRM; write it as DATA_OWNER_ID:CRM_TYPE with a type of B2C or B2B, e.g. --crm 2:B2C")]
    NotACrm(String),
    #[error("--campaign does not apply to --scope account, whose listing holds every campaign of the account; drop --campaign, or use --scope campaign")]
    CampaignWithAccountScope,
    #[error("Cube does not serve {tables} per {scope}; call-outcomes and product-registrations take --scope campaign, crm or account, customer-status campaign or crm, the other tables none")]
    ScopeNotServed { scope: &'static str, tables: String },
    #[error("--{option} does not apply to {tables}; {fix}")]
    NotApplicable {
        option: &'static str,
        tables: String,
        fix: &'static str,
    },
    #[error("no destination given; pass --dest DIR, file:///path or s3://bucket/prefix")]
    NoDestination,
    #[error("{0}")]
    Destination(#[from] DestinationError),
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error(
        "no Cube URL given; pass --base-url https://ACCOUNT.headshed.com or set CUBE_BASE_URL"
    )]
    NoBaseUrl,
    // Never echo a URL that may carry a password; say what is wrong with it instead.
    #[error("--base-url is not an http(s) URL; write it as https://ACCOUNT.headshed.com")]
    BaseUrlNotHttp,
    #[error("--base-url must not contain a user name or password; pass them with --username and --password, or use --token")]
    BaseUrlWithCredentials,
    #[error("--base-url {0} has a query or fragment; give just the account URL")]
    BaseUrlWithQuery(Url),
    #[error("both a token and a user name/password were given; use either --token or --username with --password")]
    TwoCredentials,
    #[error("--username needs --password (or CUBE_PASSWORD)")]
    NoPassword,
    #[error("--password needs --username (or CUBE_USERNAME)")]
    NoUsername,
    #[error("no credentials given; pass --token (or CUBE_TOKEN), or --username and --password")]
    NoCredentials,
    #[error("the credentials contain characters that cannot be sent in an HTTP header; check --token / --password")]
    CredentialsNotAHeader,
    #[error("{what} {given:?} reaches before the first representable day")]
    DayOutOfRange { what: &'static str, given: String },
    #[error("{what} {given:?} is not a date; write it as YYYY-MM-DD, YYYYMMDD, today, yesterday or -Nd (N days ago)")]
    NotADay { what: &'static str, given: String },
    #[error("--to was given without --from; pass --from DATE too")]
    ToWithoutFrom,
    #[error("--to {to} is before --from {from}; swap them or fix the range")]
    ToBeforeFrom { from: NaiveDate, to: NaiveDate },
    #[error("--expect-to {to} is before --expect-from {from}; swap them or fix the range")]
    ExpectToBeforeFrom { from: NaiveDate, to: NaiveDate },
}

impl Settings {
    /// The settings of a command that extracts `datasets`.
    pub(crate) fn resolve(
        args: &ExtractArgs,
        datasets: &[Dataset],
    ) -> Result<Settings, UsageError> {
        let zone = Zone::parse(args.timezone.as_deref())?;
        Settings::resolve_on(args, zone.today(), datasets)
    }

    /// As [`Settings::resolve`], on the day `today` (of `--timezone`).
    pub(crate) fn resolve_on(
        args: &ExtractArgs,
        today: NaiveDate,
        datasets: &[Dataset],
    ) -> Result<Settings, UsageError> {
        let zone = Zone::parse(args.timezone.as_deref())?;
        let api_root = api_root(args.base_url.as_deref())?;
        let auth = auth_header(args)?;
        let tables = || {
            datasets
                .iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let not_applicable = |option, fix| UsageError::NotApplicable {
            option,
            tables: tables(),
            fix,
        };
        let tables = scoped(datasets, args.scope.map(scope_kind))?;
        let datasets = &tables[..];
        let crms = crms(&args.crms)?;
        let any = |f: fn(&Dataset) -> bool| datasets.iter().any(f);
        if !args.campaigns.is_empty() && args.scope == Some(crate::cli::ScopeArg::Account) {
            return Err(UsageError::CampaignWithAccountScope);
        }
        if !crms.is_empty() && !any(|d| d.scope() == ScopeKind::Crm) {
            return Err(not_applicable(
                "crm",
                "it selects the CRMs of the tables read per CRM (customers, custom-fields, --scope crm); use --campaign here",
            ));
        }
        if (args.from.is_some() || args.to.is_some()) && !any(Dataset::by_day) {
            return Err(not_applicable(
                "from/--to",
                "these tables are snapshots taken when the command runs; drop --from and --to",
            ));
        }
        if args.partitioning.is_some() && !any(Dataset::by_day) {
            return Err(not_applicable(
                "partitioning",
                "only call-outcomes and product-registrations are partitioned by date; drop --partitioning",
            ));
        }
        if args.keep_history && !any(Dataset::keeps_history) {
            return Err(not_applicable(
                "keep-history",
                "only customers and customer-status keep snapshots; drop --keep-history",
            ));
        }
        let wants_campaigns = any(|d| d.scope() == ScopeKind::Campaign)
            || (crms.is_empty() && any(|d| d.scope() == ScopeKind::Crm));
        let gave_campaigns = args.all_campaigns || !args.campaigns.is_empty();
        if gave_campaigns && !wants_campaigns {
            return Err(not_applicable(
                if args.all_campaigns { "all-campaigns" } else { "campaign" },
                "drop it (campaigns and --scope account list every campaign; the tables read per CRM take the CRMs given with --crm)",
            ));
        }
        let campaigns = if !wants_campaigns {
            None
        } else if args.all_campaigns {
            Some(CampaignSelection::All {
                include_archived: args.include_archived,
            })
        } else {
            let ids = campaign_ids(&args.campaigns)?;
            if ids.is_empty() {
                return Err(if any(|d| d.scope() == ScopeKind::Campaign) {
                    UsageError::NoCampaign
                } else {
                    UsageError::NoCampaignOrCrm
                });
            }
            Some(CampaignSelection::Ids(ids))
        };
        let days = days(args.from.as_deref(), args.to.as_deref(), today)?;
        let Some(dest) = args.dest.as_deref() else {
            return Err(UsageError::NoDestination);
        };
        let store = StoreSettings::resolve(dest)?;
        let policy = Policy::new(
            &args.drop_columns,
            &args.hash_columns,
            store.hash_key.as_deref(),
        )?;
        Ok(Settings {
            tables,
            policy,
            rewrite: args.rewrite,
            api_root,
            auth,
            campaigns,
            crms,
            days,
            today,
            zone,
            keep_history: args.keep_history,
            partitioning: args.partitioning.map(|p| match p {
                crate::cli::PartitioningArg::Month => Partitioning::Month,
                crate::cli::PartitioningArg::Day => Partitioning::Day,
            }),
            table_format: args.table_format.map(|f| match f {
                crate::cli::TableFormatArg::Parquet => TableFormat::Parquet,
                crate::cli::TableFormatArg::Delta => TableFormat::Delta,
            }),
            store,
            concurrency: args.concurrency,
            fixed_concurrency: args.fixed_concurrency,
            retry: RetryPolicy {
                max_attempts: args.max_attempts,
                budget: std::time::Duration::from_secs(args.retry_budget),
                ..RetryPolicy::default()
            },
            resume: args.resume,
            report: args.report.clone(),
        })
    }
}

/// The tables of a command at the scope asked for: each table the API serves at that scope
/// takes it (`sync` applies it to every table it fits), the others keep their own. A scope
/// that fits none of them is a usage error.
fn scoped(datasets: &[Dataset], scope: Option<ScopeKind>) -> Result<Vec<Dataset>, UsageError> {
    let Some(scope) = scope else {
        return Ok(datasets.to_vec());
    };
    if !datasets.iter().any(|d| d.serves(scope)) {
        let tables: Vec<&str> = datasets.iter().map(|d| d.name).collect();
        return Err(UsageError::ScopeNotServed {
            scope: scope.as_str(),
            tables: tables.join(", "),
        });
    }
    Ok(datasets.iter().map(|d| d.at(scope).unwrap_or(*d)).collect())
}

fn scope_kind(arg: crate::cli::ScopeArg) -> ScopeKind {
    match arg {
        crate::cli::ScopeArg::Campaign => ScopeKind::Campaign,
        crate::cli::ScopeArg::Crm => ScopeKind::Crm,
        crate::cli::ScopeArg::Account => ScopeKind::Account,
    }
}

/// `--campaign` values, deduplicated, in the order given.
fn campaign_ids(given: &[String]) -> Result<Vec<u64>, UsageError> {
    let mut ids = Vec::new();
    for raw in given.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match raw.parse::<u64>() {
            Ok(id) if !ids.contains(&id) => ids.push(id),
            Ok(_) => {}
            Err(_) => return Err(UsageError::NotACampaignId(raw.to_owned())),
        }
    }
    Ok(ids)
}

/// What `cube-extract status` was asked.
pub(crate) struct StatusSettings {
    pub(crate) store: StoreSettings,
    pub(crate) dataset: Dataset,
    /// `--campaign` or `--crm`: only these scopes (and, with `expect`, each of them is expected).
    pub(crate) scopes: Vec<Scope>,
    /// `--expect-from`/`--expect-to`.
    pub(crate) expect: Option<(NaiveDate, NaiveDate)>,
    pub(crate) json: bool,
}

impl StatusSettings {
    pub(crate) fn resolve(
        args: &StatusArgs,
        dataset: Dataset,
        today: NaiveDate,
    ) -> Result<StatusSettings, UsageError> {
        // Whether they fit the table's scope is known once its schema is read.
        let scopes: Vec<Scope> = campaign_ids(&args.campaigns)?
            .into_iter()
            .map(Scope::Campaign)
            .chain(crms(&args.crms)?.into_iter().map(Scope::Crm))
            .collect();
        let expect = match (&args.expect_from, &args.expect_to) {
            (Some(from), Some(to)) => {
                if !dataset.by_day() && !dataset.keeps_history() {
                    return Err(UsageError::NotApplicable {
                        option: "expect-from/--expect-to",
                        tables: dataset.name.to_owned(),
                        fix: "it holds one snapshot that each run replaces, not days; drop them",
                    });
                }
                let from = parse_day(from, "--expect-from", today)?;
                let to = parse_day(to, "--expect-to", today)?;
                if to < from {
                    return Err(UsageError::ExpectToBeforeFrom { from, to });
                }
                Some((from, to))
            }
            // clap makes each need the other.
            _ => None,
        };
        Ok(StatusSettings {
            store: StoreSettings::resolve(&args.dest)?,
            dataset,
            scopes,
            expect,
            json: args.json,
        })
    }
}

/// `--crm OWNER:TYPE` values, deduplicated, in the order given.
fn crms(given: &[String]) -> Result<Vec<Crm>, UsageError> {
    let mut out = Vec::new();
    for raw in given.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let crm = raw
            .split_once(':')
            .and_then(|(owner, ty)| {
                Some(Crm {
                    data_owner_id: owner.trim().parse().ok()?,
                    crm_type: CrmType::parse(ty)?,
                })
            })
            .ok_or_else(|| UsageError::NotACrm(raw.to_owned()))?;
        if !out.contains(&crm) {
            out.push(crm);
        }
    }
    Ok(out)
}

fn api_root(base: Option<&str>) -> Result<Url, UsageError> {
    let Some(base) = base.map(str::trim).filter(|b| !b.is_empty()) else {
        return Err(UsageError::NoBaseUrl);
    };
    let mut url = match Url::parse(base) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => u,
        _ => return Err(UsageError::BaseUrlNotHttp),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UsageError::BaseUrlWithCredentials);
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(UsageError::BaseUrlWithQuery(url));
    }
    let mut path = url.path().trim_end_matches('/').to_owned();
    if !path.ends_with("/api/v1") {
        path.push_str("/api/v1");
    }
    path.push('/');
    url.set_path(&path);
    Ok(url)
}

fn auth_header(args: &ExtractArgs) -> Result<HeaderValue, UsageError> {
    let value = match (&args.token, &args.username, &args.password) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => return Err(UsageError::TwoCredentials),
        (Some(t), None, None) if !t.trim().is_empty() => format!("Token {}", t.trim()),
        (None, Some(u), Some(p)) if !u.is_empty() => {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!("Basic {encoded}")
        }
        (None, Some(_), None) => return Err(UsageError::NoPassword),
        (None, None, Some(_)) => return Err(UsageError::NoUsername),
        _ => return Err(UsageError::NoCredentials),
    };
    let mut header =
        HeaderValue::from_str(&value).map_err(|_| UsageError::CredentialsNotAHeader)?;
    header.set_sensitive(true);
    Ok(header)
}

/// Parses a day: `YYYY-MM-DD`, `YYYYMMDD`, or relative to `today` (`today`, `yesterday`, `-Nd`
/// for N days before today). `what` names the option in the message.
fn parse_day(s: &str, what: &'static str, today: NaiveDate) -> Result<NaiveDate, UsageError> {
    let s = s.trim();
    let relative = match s.to_ascii_lowercase().as_str() {
        "today" => Some(0),
        "yesterday" => Some(1),
        other => other
            .strip_prefix('-')
            .and_then(|n| n.strip_suffix('d'))
            .and_then(|n| n.parse::<u32>().ok()),
    };
    if let Some(back) = relative {
        return today
            .checked_sub_days(chrono::Days::new(back.into()))
            .ok_or_else(|| UsageError::DayOutOfRange {
                what,
                given: s.to_owned(),
            });
    }
    let parsed = if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        NaiveDate::parse_from_str(s, "%Y%m%d")
    } else {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
    };
    parsed.map_err(|_| UsageError::NotADay {
        what,
        given: s.to_owned(),
    })
}

fn days(
    from: Option<&str>,
    to: Option<&str>,
    today: NaiveDate,
) -> Result<Vec<NaiveDate>, UsageError> {
    let (from, to) = match (from, to) {
        (None, None) => (today, today),
        (Some(f), None) => {
            let f = parse_day(f, "--from", today)?;
            (f, f)
        }
        (Some(f), Some(t)) => (parse_day(f, "--from", today)?, parse_day(t, "--to", today)?),
        (None, Some(_)) => return Err(UsageError::ToWithoutFrom),
    };
    if to < from {
        return Err(UsageError::ToBeforeFrom { from, to });
    }
    Ok(from.iter_days().take_while(|d| *d <= to).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn day_ranges() {
        let today = d("2026-11-28");
        assert_eq!(days(None, None, today).unwrap(), vec![today]);
        assert_eq!(
            days(Some("20190801"), Some("2019-08-03"), today)
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            days(Some("2019-08-01"), None, today).unwrap(),
            vec![d("2019-08-01")]
        );
        assert!(days(Some("2019-08-02"), Some("2019-08-01"), today)
            .unwrap_err()
            .to_string()
            .contains("before"));
        assert!(days(Some("2019-13-01"), None, today)
            .unwrap_err()
            .to_string()
            .contains("YYYY-MM-DD"));
        assert!(days(None, Some("2019-08-01"), today).is_err());
    }

    #[test]
    fn relative_days_count_back_from_today() {
        let today = d("2026-03-01");
        let from_to = |f: &str, t: &str| days(Some(f), Some(t), today).unwrap();
        assert_eq!(from_to("today", "today"), vec![today]);
        assert_eq!(from_to("yesterday", "yesterday"), vec![d("2026-02-28")]);
        assert_eq!(
            from_to("-3d", "yesterday"),
            vec![d("2026-02-26"), d("2026-02-27"), d("2026-02-28")]
        );
        assert_eq!(from_to("-0d", "Today"), vec![today]);
        assert!(days(Some("-3x"), None, today)
            .unwrap_err()
            .to_string()
            .contains("-Nd"));
        assert!(days(Some("yesterday"), Some("-2d"), today)
            .unwrap_err()
            .to_string()
            .contains("before"));
    }

    #[test]
    fn crms_are_owner_and_type_in_any_case_deduplicated() {
        let given = |list: &[&str]| crms(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let b2c = Crm {
            data_owner_id: 2,
            crm_type: CrmType::B2C,
        };
        assert_eq!(given(&["2:b2c", " 2:B2C ", ""]).unwrap(), vec![b2c]);
        assert_eq!(given(&["11:B2B"]).unwrap()[0].crm_type, CrmType::B2B);
        for bad in ["2", "2:B2X", "x:B2C", "2-B2C"] {
            assert!(
                given(&[bad])
                    .unwrap_err()
                    .to_string()
                    .contains("DATA_OWNER_ID:CRM_TYPE"),
                "{bad}"
            );
        }
    }

    #[test]
    fn api_root_is_normalised() {
        assert_eq!(
            api_root(Some("https://acme.headshed.com"))
                .unwrap()
                .as_str(),
            "https://acme.headshed.com/api/v1/"
        );
        assert_eq!(
            api_root(Some("http://127.0.0.1:8080/")).unwrap().as_str(),
            "http://127.0.0.1:8080/api/v1/"
        );
        assert_eq!(
            api_root(Some("https://x.headshed.com/api/v1/"))
                .unwrap()
                .as_str(),
            "https://x.headshed.com/api/v1/"
        );
        let e = api_root(Some("https://u:secret@x.com"))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"));
        assert!(api_root(Some("ftp://x")).is_err());
        assert!(api_root(None).is_err());
    }
}
