//! The Cube API side: HTTP client with auth and retries, page parsing, and reading one
//! partition's pages completely and consistently.

pub(crate) mod adaptive;
mod client;
mod listing;
mod page;
pub(crate) mod retry;

pub(crate) use client::{Campaign, CubeClient};
pub(crate) use listing::{Listing, ListingChange, Seen, MAX_READS};
pub use page::Page;

use crate::error::error_chain;
use crate::unit::Unit;

/// What went wrong talking to the API. Messages name the URL (which never holds credentials)
/// and say what to do.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SourceError {
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
    #[error("could not reach {url}: {}", error_chain(.source))]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// Never sent: credentials go to the configured origin only.
    #[error("refused to send credentials to {url}, which is not on the configured origin")]
    ForeignOrigin { url: String },
    #[error("{url}: {cause}")]
    BadResponse {
        url: String,
        #[source]
        cause: BodyError,
    },
    /// The listing changed under us on every re-read (the data broke the paging contract).
    #[error("{unit}: the API's listing changed while it was read, {reads} times in a row (last: {last}); nothing was written for it, so run again later")]
    Inconsistent {
        unit: Unit,
        reads: u32,
        #[source]
        last: ListingChange,
    },
}

/// A 2xx answer whose body is not what the endpoint promises.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the response is not a Cube page ({0})")]
    NotAPage(#[source] serde_json::Error),
    #[error("`results` is not an array of flat records ({0})")]
    NotRecords(#[source] serde_json::Error),
    #[error("expected a JSON array of campaigns ({0})")]
    NotCampaigns(#[source] serde_json::Error),
    #[error("a campaign has no numeric campaign__id")]
    CampaignWithoutId,
    #[error("expected a JSON array of custom field definitions ({0})")]
    NotFieldDefinitions(#[source] serde_json::Error),
}

impl SourceError {
    /// The cause without the URL, for log lines that carry the URL as a field.
    pub(crate) fn cause(&self) -> String {
        match self {
            SourceError::Status { status, detail, .. } => format!("HTTP {status}{detail}"),
            SourceError::Transport { source, .. } => error_chain(source),
            SourceError::BadResponse { cause, .. } => cause.to_string(),
            other => other.to_string(),
        }
    }

    /// True when the data, not the transport, broke the contract.
    pub(crate) fn is_contract_violation(&self) -> bool {
        matches!(
            self,
            SourceError::Inconsistent { .. } | SourceError::BadResponse { .. }
        )
    }
}
