//! The cluster broker: what lets several nodes share rooms. Each backend is its own module; the hub
//! talks to the broker, never to a backend's client library.

pub mod redis;
