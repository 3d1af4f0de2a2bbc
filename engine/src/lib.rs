//! `chat-engine`: the whole chat logic as a deterministic, sans-IO state machine.
//!
//! Inputs go in through [`Engine::connect`], [`Engine::handle`] and [`Engine::kick`], each with
//! the time ([`Now`]) it happened; instructions come out of [`Engine::poll_output`]; the next
//! deadline comes from [`Engine::poll_timeout`]. No runtime, sockets, clocks or randomness are
//! used here: the same inputs always give the same outputs, which is what lets the server, the
//! simulations, the property tests and the fuzzers all drive this one engine.

#![warn(missing_docs)]

mod claims;
mod client;
mod commands;
mod commit;
mod config;
mod departures;
mod dormant;
mod engine;
mod error;
mod flow;
mod greeting;
mod history;
mod ids;
mod input;
mod invariants;
mod membership;
pub mod names;
mod ordering;
mod output;
mod presence;
pub mod protocol;
mod rate;
mod remote;
mod room;
mod scrollback;
mod time;
mod timer;
mod waking;

pub use claims::ClaimOutcome;
pub use commit::RestoredRoom;
pub use config::Config;
pub use engine::{Engine, Stats};
pub use error::Error;
pub use ids::{ClientId, OpId};
pub use input::Input;
pub use ordering::Unnumbered;
pub use output::{close_code, CloseReason, LeaveReason, Output};
pub use protocol::{JoinRequest, Renamed, ServerMessage};
pub use remote::RemoteSeat;
pub use time::Now;

#[cfg(any(test, feature = "test-kit"))]
mod fake_broker;
#[cfg(any(test, feature = "test-kit"))]
pub mod test_kit;
#[cfg(test)]
mod tests;
