//! The output side: where files live, Parquet encoding, atomic placement, the ledger.

pub mod layout;
pub mod ledger;
pub mod parquet;
pub mod schema_store;
pub mod store;
pub mod upload;

pub use layout::Layout;
pub use ledger::{Committed, Ledger, LedgerRecord};
pub use schema_store::{Base, SchemaStore};
pub use store::{Destination, DestinationSpec, StoreError};
