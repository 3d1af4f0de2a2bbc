//! The operator endpoint: what became of a kick, its authentication (the `Authorization: Bearer
//! <token>` check) and the record of failed attempts (counted in `/metrics`, logged at most once
//! per second).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::header::HeaderValue;
use subtle::ConstantTimeEq;

/// What became of an operator's kick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kicked {
    /// This node held the member and closed it.
    Here(chat_engine::ClientId),
    /// Another node of the cluster holds the name: the kick was sent to it.
    Sent { node: String },
    /// Nobody in the room has that name (on any node).
    NoSuchUser,
    /// The cluster's Redis could not be asked.
    Unavailable,
}

/// Why a request was not let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No `Authorization`, or not the `Bearer` scheme (401).
    Missing,
    /// A bearer token, but not this server's (403).
    Wrong,
}

impl Denied {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Denied::Missing => "missing",
            Denied::Wrong => "wrong",
        }
    }
}

/// Whether `authorization` carries `token`. The scheme is case-insensitive (RFC 9110 section
/// 11.1: `bearer x` and `BEARER x` are `Bearer x`).
///
/// Compared in constant time: a comparison that stops at the first differing byte tells a
/// patient attacker, through response times, how much of a guess was right. (Only the length
/// can show; `subtle` answers unequal lengths at once.)
pub(crate) fn authorize(authorization: Option<&HeaderValue>, token: &str) -> Result<(), Denied> {
    let value = authorization.ok_or(Denied::Missing)?.as_bytes();
    let split = value
        .iter()
        .position(|&b| b == b' ')
        .ok_or(Denied::Missing)?;
    let (scheme, rest) = value.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(Denied::Missing);
    }
    let presented = rest.trim_ascii();
    if bool::from(presented.ct_eq(token.as_bytes())) {
        Ok(())
    } else {
        Err(Denied::Wrong)
    }
}

/// How often a failed attempt is logged at most; the ones between are counted, and the next
/// warning says how many there were.
pub(crate) const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Failed attempts since the last warning: a guessing attacker would otherwise write a log
/// line per guess.
#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    last_warning: Option<Instant>,
    suppressed: u64,
}

impl FailureLog {
    /// Records a failure at `now`; `Some(n)` when it should be logged, `n` being the failures
    /// not logged since the previous warning.
    pub(crate) fn record(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means another request panicked mid-update of two counters.
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let due = window
            .last_warning
            .is_none_or(|last| now.saturating_duration_since(last) >= FAILURE_LOG_INTERVAL);
        if due {
            window.last_warning = Some(now);
            Some(std::mem::take(&mut window.suppressed))
        } else {
            window.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(value: &str) -> Result<(), Denied> {
        authorize(
            Some(&HeaderValue::from_str(value).expect("header")),
            "s3cret",
        )
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(auth("Bearer s3cret"), Ok(()));
        assert_eq!(auth("bearer s3cret"), Ok(()));
        assert_eq!(auth("BEARER s3cret"), Ok(()));
        assert_eq!(auth("Bearer   s3cret"), Ok(()));
    }

    #[test]
    fn other_schemes_and_tokens_are_refused() {
        assert_eq!(authorize(None, "s3cret"), Err(Denied::Missing));
        assert_eq!(auth("Basic s3cret"), Err(Denied::Missing));
        assert_eq!(auth("Bearers3cret"), Err(Denied::Missing));
        assert_eq!(auth("s3cret"), Err(Denied::Missing));
        assert_eq!(auth("Bearer s3cre"), Err(Denied::Wrong));
        assert_eq!(auth("Bearer s3cretX"), Err(Denied::Wrong));
        assert_eq!(auth("Bearer S3CRET"), Err(Denied::Wrong));
        assert_eq!(auth("Bearer "), Err(Denied::Wrong));
    }

    #[test]
    fn failures_are_logged_at_most_once_per_interval_with_the_count_between() {
        let log = FailureLog::default();
        let t0 = Instant::now();
        assert_eq!(log.record(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(log.record(t0 + Duration::from_millis(i * 100)), None);
        }
        assert_eq!(log.record(t0 + FAILURE_LOG_INTERVAL), Some(5));
        assert_eq!(
            log.record(t0 + FAILURE_LOG_INTERVAL + Duration::from_millis(1)),
            None
        );
        assert_eq!(log.record(t0 + 3 * FAILURE_LOG_INTERVAL), Some(1));
    }
}
