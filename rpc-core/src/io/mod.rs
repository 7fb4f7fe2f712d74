//! Bytes in and out of one transport: the [`outbox`] that batches writes and bounds what is
//! queued for the peer, the [`frame_reader`] that times and budgets incoming frames, the
//! [`budget`] shared by a server's connections, and the keepalive's [`liveness`] clock.
//!
//! Nothing here knows what a frame means; the connection layer (`conn`) does.

pub(crate) mod budget;
pub(crate) mod frame_reader;
pub(crate) mod liveness;
pub(crate) mod outbox;
