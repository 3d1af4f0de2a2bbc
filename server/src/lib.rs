//! `chat-server`: hyper 1 + fastwebsockets + tokio around `chat-engine`.
//!
//! [`run`] serves HTTP and WebSockets on any [`Listener`], so tests pass a TCP listener on
//! `127.0.0.1:0` and the simulations pass turmoil's: the very same code runs on both.
//! [`run_with_backend`] is the same for a cluster node whose shared broker is any
//! [`broker::Backend`] (the simulations' in-memory one), not a Redis.

mod admin;
pub mod broker;
mod bucket;
pub mod cli;
mod client_config;
mod clock;
mod clustering;
mod connection;
mod fanout;
mod http;
mod hub;
mod inline_queue;
mod keeping;
mod link;
pub mod listener;
mod metrics;
mod origin;
mod per_ip;
mod security_headers;
mod server;
pub mod settings;
mod sim_disk;
mod sink;
mod starting;
mod static_files;
mod store;
mod store_link;
#[cfg(any(test, feature = "test-kit"))]
pub mod test_kit;
mod untrusted;
mod write_deadline;
mod writer;
mod ws_read;
mod ws_write;

pub use connection::serve_echo;
pub use listener::Listener;
pub use server::{display_url, run, run_with_backend};
pub use settings::{
    ConnLimits, Durability, Settings, StaticSource, StoreAt, StoreSettings, WallClock,
};
/// The simulated disk a store can sit on (simulations and tests).
#[doc(hidden)]
pub use sim_disk::Disk;
/// Fills a data directory for the restart benchmark (`examples/fill_store.rs`).
#[doc(hidden)]
pub use store::fill_store;
