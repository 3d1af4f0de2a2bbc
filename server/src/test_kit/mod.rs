//! Test support, compiled only for chat-server's own tests and behind the `test-kit` feature
//! (its integration tests and the fuzz harness enable it; a release build never does).
//!
//! [`wire`] is the one WebSocket frame codec the tests trust: it writes client frames and judges
//! server frames without fastwebsockets, so it can catch what the server's stack gets wrong.

pub mod wire;
