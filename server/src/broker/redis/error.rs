//! The broker's one error type: what a caller can act on (retry later, fix the config, report a
//! bug), not which Redis call failed.

use std::time::Duration;

/// Why a broker call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The URL could not be parsed as a Redis URL (`redis://HOST:PORT[/DB]`).
    #[error("bad redis url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// The room name is not letters, digits, '-', '_' or '.'.
    #[error("invalid room name {0:?}")]
    InvalidRoom(String),
    /// An argument the broker would have to store or send is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// Redis could not be reached, or the connection dropped: retry later.
    #[error("redis unreachable: {0}")]
    Unreachable(#[source] ::redis::RedisError),
    /// Redis did not answer within the call timeout: retry later. A write may or may not have
    /// happened (a publish retried with the same idem key is safe).
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered a script or command with an error (a bug or a misconfigured server).
    #[error("redis replied with an error: {0}")]
    Redis(#[source] ::redis::RedisError),
    /// A broker other than Redis (the simulations' in-memory one) could not be reached, or its
    /// connection dropped: retry later.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// Redis answered, but not in the shape the broker expects.
    #[error("malformed reply from redis: {0}")]
    Malformed(String),
}

impl BrokerError {
    /// True when a retry may succeed once Redis is back.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable(_) | Self::Timeout(_) | Self::Unavailable(_)
        )
    }

    /// An [`Unavailable`](Self::Unavailable) error: what a backend other than Redis reports
    /// when its broker cannot be reached.
    pub fn unavailable(why: impl Into<String>) -> Self {
        Self::Unavailable(why.into())
    }

    /// A [`Malformed`](Self::Malformed) error: the broker answered in a shape not expected.
    pub fn malformed(what: impl Into<String>) -> Self {
        Self::Malformed(what.into())
    }
}

impl From<::redis::RedisError> for BrokerError {
    fn from(e: ::redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
        {
            Self::Unreachable(e)
        } else {
            Self::Redis(e)
        }
    }
}
