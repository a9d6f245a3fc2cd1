//! The command line as the user typed it (clap). Validation that needs more than one argument,
//! the clock or the environment happens in [`crate::settings`].

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Environment variables read by the tool itself (S3 settings are read by object_store from the
/// standard `AWS_*` variables).
pub mod env {
    pub const BASE_URL: &str = "CUBE_BASE_URL";
    pub const TOKEN: &str = "CUBE_TOKEN";
    pub const USERNAME: &str = "CUBE_USERNAME";
    pub const PASSWORD: &str = "CUBE_PASSWORD";
    /// The HMAC-SHA256 key of `--hash-columns`.
    pub const HASH_KEY: &str = "CUBE_EXTRACT_HASH_KEY";
}

#[derive(Debug, Parser)]
#[command(
    name = "cube-extract",
    version,
    about = "Copies Headshed Cube (call outcomes, product registrations, customers, call-flow status, campaigns, custom-field definitions) into Hive-partitioned Parquet on local disk or S3."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Extract call outcomes, one Parquet partition per (campaign, day).
    CallOutcomes(ExtractArgs),
    /// Extract product registrations into their own table, one partition per (campaign, day).
    ProductRegistrations(ExtractArgs),
    /// Snapshot the customers of each CRM (data owner, CRM type), one file per CRM.
    Customers(ExtractArgs),
    /// Snapshot the call-flow status of each campaign's customers, one file per campaign.
    CustomerStatus(ExtractArgs),
    /// Copy every campaign of the account (archived ones included) into one file.
    Campaigns(ExtractArgs),
    /// Copy the custom-field definitions of each CRM, one file per CRM.
    CustomFields(ExtractArgs),
    /// Every table in one process: call outcomes and product registrations for the days asked,
    /// and today's snapshot of the others; one report with a section per table.
    Sync(ExtractArgs),
    /// Print a dataset's schema (column, type, label, first seen) from its destination.
    Schema(SchemaArgs),
    /// Bring every file of a dataset to its current schema: the fan-in step after several
    /// writers extracted into one destination at once.
    Reconcile(ReconcileArgs),
    /// What a destination holds of a table, from its ledger and schema (no API access): per
    /// campaign or CRM the committed days, gaps, empty days, rows, files and the newest commit.
    Status(StatusArgs),
    /// Delete the files of Delta tables that no version within the retention reads (files of
    /// replaced days and months, and of killed runs).
    Vacuum(VacuumArgs),
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Destination the dataset was extracted to: a local directory, file:///path, or s3://bucket/prefix.
    #[arg(long, value_name = "URL")]
    pub dest: String,
    /// Which table.
    #[arg(long, value_enum, default_value_t = Table::CallOutcomes)]
    pub table: Table,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// More log detail (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// Destination the tables were extracted to: a local directory, file:///path, or s3://bucket/prefix.
    #[arg(long, value_name = "URL")]
    pub dest: String,
    /// Only this table [default: every Delta table at --dest].
    #[arg(long, value_enum)]
    pub table: Option<Table>,
    /// Keep the files any version of the last H hours reads (time travel, queries in flight).
    #[arg(long, value_name = "H", default_value_t = 168)]
    pub retain_hours: u64,
    /// Allow --retain-hours under 168.
    #[arg(long)]
    pub force: bool,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Destination the dataset was extracted to: a local directory, file:///path, or s3://bucket/prefix.
    #[arg(long, value_name = "URL")]
    pub dest: String,
    /// Which table.
    #[arg(long, value_enum, default_value_t = Table::CallOutcomes)]
    pub table: Table,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
    /// Only these campaigns (repeat or separate with commas); with --expect-from, a campaign
    /// the destination lacks counts as missing every day.
    #[arg(
        long = "campaign",
        value_name = "ID",
        value_delimiter = ',',
        conflicts_with = "crms"
    )]
    pub campaigns: Vec<String>,
    /// Only these CRMs (DATA_OWNER_ID:CRM_TYPE), for a table read per CRM; with
    /// --expect-from, a CRM the destination lacks counts as missing every day.
    #[arg(long = "crm", value_name = "OWNER:TYPE", value_delimiter = ',')]
    pub crms: Vec<String>,
    /// Exit 1 unless every day from this one to --expect-to is committed (empty days count),
    /// for every campaign (or CRM) held or named; YYYY-MM-DD, YYYYMMDD, today, yesterday or -Nd.
    #[arg(long, value_name = "DATE", requires = "expect_to")]
    pub expect_from: Option<String>,
    /// Last day of --expect-from's range, inclusive.
    #[arg(long, value_name = "DATE", requires = "expect_from")]
    pub expect_to: Option<String>,
    /// The IANA time zone whose calendar names today, yesterday and -Nd [default: the machine's].
    #[arg(long, value_name = "IANA")]
    pub timezone: Option<String>,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Destination the dataset was extracted to: a local directory, file:///path, or s3://bucket/prefix.
    #[arg(long, value_name = "URL")]
    pub dest: String,
    /// Which table.
    #[arg(long, value_enum, default_value_t = Table::CallOutcomes)]
    pub table: Table,
    /// Print the schema as JSON (the dataset's schema.json).
    #[arg(long, conflicts_with = "duckdb_view")]
    pub json: bool,
    /// Print a DuckDB `CREATE VIEW NAME` over the table that names each custom column by its label.
    #[arg(long, value_name = "NAME")]
    pub duckdb_view: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Table {
    CallOutcomes,
    ProductRegistrations,
    Customers,
    CustomerStatus,
    Campaigns,
    CrmCustomFields,
}

#[derive(Clone, Debug, Args)]
pub struct ExtractArgs {
    /// Cube account URL, e.g. https://acme.headshed.com (the API root is {base}/api/v1/).
    #[arg(long, env = env::BASE_URL, value_name = "URL")]
    pub base_url: Option<String>,
    /// API token, sent as `Authorization: Token <token>`.
    #[arg(long, env = env::TOKEN, value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// User name for HTTP Basic authentication (with --password).
    #[arg(long, env = env::USERNAME, value_name = "USER")]
    pub username: Option<String>,
    /// Password for HTTP Basic authentication (with --username).
    #[arg(long, env = env::PASSWORD, value_name = "PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// Campaign id; repeat the option or separate ids with commas.
    #[arg(long = "campaign", value_name = "ID", value_delimiter = ',')]
    pub campaigns: Vec<String>,
    /// Every campaign the account lists (archived ones only with --include-archived).
    #[arg(long, conflicts_with = "campaigns")]
    pub all_campaigns: bool,
    /// With --all-campaigns: include archived campaigns too.
    #[arg(long, requires = "all_campaigns")]
    pub include_archived: bool,
    /// What one partition holds: a campaign's records (campaign), a CRM's (crm) or the whole
    /// account's (account). For call-outcomes, product-registrations (all three),
    /// customer-status (campaign, crm) and sync (applied to every table it fits); chosen when
    /// the table is created [default: campaign].
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
    /// A CRM as DATA_OWNER_ID:CRM_TYPE (e.g. 2:B2C), for the tables read per CRM (customers,
    /// custom-fields, --scope crm) instead of the CRMs of the selected campaigns; repeat the
    /// option or separate CRMs with commas.
    #[arg(long = "crm", value_name = "OWNER:TYPE", value_delimiter = ',')]
    pub crms: Vec<String>,
    /// Snapshot tables (customers, customer-status) keep one snapshot per day under
    /// snapshot_date=YYYY-MM-DD instead of replacing the last; chosen when the table is created.
    #[arg(long)]
    pub keep_history: bool,
    /// How the files of date-partitioned tables are cut: one file per month holding its days
    /// in order (month), or one per day (day). Chosen when the table is created [default: month;
    /// tables made before this option are day].
    #[arg(long, value_enum)]
    pub partitioning: Option<PartitioningArg>,
    /// What the tables are: plain Hive-partitioned Parquet (parquet), or Delta Lake tables whose
    /// log makes every change one atomic commit (delta). Chosen when a table is created
    /// [default: parquet].
    #[arg(long, value_enum)]
    pub table_format: Option<TableFormatArg>,
    /// The IANA time zone (e.g. Europe/Oslo) whose calendar names today, yesterday, -Nd and a
    /// kept snapshot's day [default: the machine's].
    #[arg(long, value_name = "IANA")]
    pub timezone: Option<String>,
    /// First day: YYYY-MM-DD, YYYYMMDD, today, yesterday or -Nd (N days ago); default today (in --timezone).
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Last day, inclusive, in the same forms (default: --from).
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,

    /// Destination: a local directory, file:///path, or s3://bucket/prefix.
    #[arg(long, value_name = "URL")]
    pub dest: Option<String>,

    /// Most requests in flight. The number in flight adapts below it: halved when the API
    /// throttles (429/503) or slows down, one more after each healthy round.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = parse_concurrency)]
    pub concurrency: usize,
    /// Keep --concurrency requests in flight whatever the API answers (no adapting).
    #[arg(long)]
    pub fixed_concurrency: bool,
    /// Attempts per request before a partition fails (retries 408, 429, 5xx and transport errors).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = parse_attempts)]
    pub max_attempts: u32,
    /// Longest time, in seconds, one request may spend retrying.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub retry_budget: u64,
    /// Skip (campaign, day) partitions an earlier run committed.
    #[arg(long)]
    pub resume: bool,
    /// Leave out the columns whose name matches GLOB (e.g. 'crm__standard_info__*'); repeatable.
    #[arg(long, value_name = "GLOB")]
    pub drop_columns: Vec<String>,
    /// Replace the values of matching columns by their HMAC-SHA256 (hex), keyed by
    /// CUBE_EXTRACT_HASH_KEY; repeatable.
    #[arg(long, value_name = "GLOB")]
    pub hash_columns: Vec<String>,
    /// Accept --drop-columns/--hash-columns (or a hash key) that differ from the dataset's, and
    /// rewrite its existing files to match.
    #[arg(long)]
    pub rewrite: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Colours on stderr: auto (at a terminal, unless NO_COLOR is set; FORCE_COLOR forces them),
    /// always or never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// No progress bar, even at a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Write a JSON summary of the run to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
    /// Print a one-line JSON summary of the run on stdout (exit code, rows, partitions by
    /// status, files, bytes, and the same per table), for orchestrators.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub summary: Option<SummaryFormat>,
    /// Append the run's OpenLineage events (START, then COMPLETE, FAIL or ABORT) to FILE, a JSON
    /// object a line; OPENLINEAGE_URL posts them to a lineage backend.
    #[arg(long, value_name = "FILE")]
    pub openlineage_file: Option<std::path::PathBuf>,
    /// More log detail (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// `--partitioning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PartitioningArg {
    Month,
    Day,
}

/// `--color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// `--summary`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    Json,
}

/// `--table-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TableFormatArg {
    Parquet,
    Delta,
}

/// `--scope`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    Campaign,
    Crm,
    Account,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Why a count option's value was refused (clap puts the option before it).
#[derive(Debug, thiserror::Error)]
pub enum CountError {
    #[error("it must be at least 1{0}")]
    Zero(&'static str),
    #[error("it must be a whole number, at least 1")]
    NotANumber,
}

fn parse_attempts(s: &str) -> Result<u32, CountError> {
    match s.parse::<u32>() {
        Ok(0) => Err(CountError::Zero(" (1 = no retries)")),
        Ok(n) => Ok(n),
        Err(_) => Err(CountError::NotANumber),
    }
}

fn parse_concurrency(s: &str) -> Result<usize, CountError> {
    match s.parse::<usize>() {
        Ok(0) => Err(CountError::Zero("")),
        Ok(n) => Ok(n),
        Err(_) => Err(CountError::NotANumber),
    }
}
