//! Identifiers handed out by counters that never reuse a value: clients (so a stale id held by
//! the shell can never reach a newer client) and store operations (so the store's commits can be
//! checked against the order the engine asked for them).

use std::fmt;

/// One connection's identity for the engine's lifetime.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ClientId(u64);

impl ClientId {
    /// The raw counter value (for logs and maps in the shell).
    pub fn get(self) -> u64 {
        self.0
    }

    pub(crate) fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// One `Output::Store` the engine asked for, named again by `Input::Committed` when the store
/// reports it durable. Increasing per engine, in the order the stores were emitted.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct OpId(u64);

impl OpId {
    /// The raw counter value (for the store's records and logs).
    pub fn get(self) -> u64 {
        self.0
    }

    /// The id with this raw value: for a shell or store that kept `get()` (an id the engine never
    /// handed out is refused by `Input::Committed`, never trusted).
    pub fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's log lines and the store's errors name operations by this spelling (a
    /// client's is pinned in `tests/limits.rs`).
    #[test]
    fn an_op_prints_as_op_and_its_counter() {
        assert_eq!(OpId::from_raw(42).to_string(), "op42");
    }
}
