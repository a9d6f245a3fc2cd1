//! The Cube API side: HTTP client with auth and retries, page parsing, and reading one
//! partition's pages completely and consistently.

mod client;
mod page;
mod partition;
pub mod retry;

pub use client::{Campaign, Counters, CubeClient};
pub use page::Page;
pub use partition::{Listing, MAX_READS};

/// What went wrong talking to the API. Messages name the URL (which never holds credentials)
/// and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the API at {origin} rejected the credentials (HTTP {status}); check --token, or --username and --password")]
    Auth { origin: String, status: u16 },
    #[error("{url} was not found (HTTP 404); check --base-url and the campaign ids")]
    NotFound { url: String },
    #[error("{url} answered HTTP {status}{detail}")]
    Status {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("could not reach {url}: {cause}")]
    Transport { url: String, cause: String },
    #[error("{url}: {cause}")]
    BadResponse { url: String, cause: String },
    /// The listing changed under us on every re-read (the data broke the paging contract).
    #[error("{0}")]
    Inconsistent(String),
}

impl SourceError {
    /// The cause without the URL, for log lines that carry the URL as a field.
    pub fn cause(&self) -> String {
        match self {
            SourceError::Status { status, detail, .. } => format!("HTTP {status}{detail}"),
            SourceError::Transport { cause, .. } | SourceError::BadResponse { cause, .. } => {
                cause.clone()
            }
            other => other.to_string(),
        }
    }

    /// True when the data, not the transport, broke the contract.
    pub fn is_contract_violation(&self) -> bool {
        matches!(
            self,
            SourceError::Inconsistent(_) | SourceError::BadResponse { .. }
        )
    }
}
