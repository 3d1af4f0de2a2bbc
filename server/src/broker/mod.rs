//! The cluster broker: what lets several nodes share rooms. Each backend is its own module; the
//! hub talks to the broker task (`node`) through its link (`link`), never to a backend's client
//! library.

mod backend;
pub(crate) mod link;
pub(crate) mod nicks;
pub(crate) mod node;
pub mod redis;
pub(crate) mod relay;
pub(crate) mod seats;
pub(crate) mod stats;

pub use backend::Backend;
