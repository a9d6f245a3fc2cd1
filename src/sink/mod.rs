//! The output side: where files live, Parquet encoding, atomic placement, the ledger.

pub(crate) mod delta;
pub(crate) mod empty_strings;
mod in_flight;
mod ledger;
pub(crate) mod parquet;
mod paths;
mod schema_store;
mod store;
mod store_http;
mod target;
pub(crate) mod upload;

pub(crate) use empty_strings::EmptyStrings;
pub(crate) use ledger::{Committed, Ledger, LedgerRecord};
pub(crate) use paths::{MonthKey, Paths, DATA_FILE, DAY_COLUMN, STATE_DIR};
pub(crate) use schema_store::{Base, SchemaStore};
pub(crate) use store::{Destination, DestinationError, DestinationSpec, Staged, StoreError};
pub(crate) use target::Target;
