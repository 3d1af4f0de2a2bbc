//! The Redis broker's client layer: one shared Redis orders every room's messages (the room's `seq`),
//! keeps a bounded history per room, fans messages out to every node over pub/sub, and arbitrates
//! nicknames and presence across nodes.
//!
//! Key layout (every key of room `R` carries the hash tag `{R}`, so a Redis Cluster could shard by
//! room later; see [`keys`]):
//! - `chat:{R}:meta` HASH: `epoch` (string), `seq` (the room's last seq);
//! - `chat:{R}:log` STREAM: entry id `<seq>-0`, one field `p` = the message body, exact `MAXLEN`;
//! - `chat:{R}:op:<idem>` STRING `"<seq>\n<epoch>"` with a short expiry: a retried publish;
//! - `chat:{R}:nick:<nick_key>` STRING = owner, with an expiry: a claimed nickname;
//! - per node N (all under the hash tag `{seats}`): `chat:{seats}:N` HASH client -> `[room,
//!   nick]` (its members), `chat:{seats}:N:n` its announcements' counter, `chat:{seats}:N:alive`
//!   present while it announces; `chat:{seats}:nodes` SET of the nodes that announced;
//! - one pub/sub channel for all rooms, [`DELIVERIES`]: every node subscribes once; and one for
//!   what nodes tell each other (typing, kicks, seat announcements), [`keys::RELAY`].
//!
//! Every step that touches more than one key is one Lua script ([`scripts`]), so it is atomic.

mod client;
mod envelope;
mod error;
pub mod keys;
#[cfg(any(test, feature = "test-kit"))]
pub mod process;
mod scripts;
mod subscription;
#[cfg(test)]
mod tests;

pub use client::{
    BrokerOptions, Claim, NodeSeats, Numbered, Ordered, Published, Range, RedisBroker, RoomState,
};
pub use error::BrokerError;
pub use keys::DELIVERIES;
pub use subscription::{subscribe, Event};
