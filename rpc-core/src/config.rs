//! [`Config`]: the limits and timeouts of a connection, the same type on both ends.

use std::time::Duration;

/// Limits and timeouts of connections. `Config::default()` is meant for production; every
/// field can be changed, on a [`Server`](crate::Server) and on a [`Client`](crate::Client).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Largest frame accepted or sent, in bytes. Default 4 MiB (gRPC's default). A call whose
    /// arguments do not fit fails at the caller with [`CallError::FrameTooLarge`]; a peer
    /// announcing a larger frame is disconnected. Both ends should use the same value.
    ///
    /// [`CallError::FrameTooLarge`]: crate::CallError::FrameTooLarge
    pub max_frame_length: usize,
    /// Incoming calls running at once on one connection. A call beyond it is answered at once
    /// with [`RemoteErrorKind::Overloaded`](crate::RemoteErrorKind::Overloaded); nothing queues
    /// without bound. Default 1024.
    pub max_in_flight_calls: usize,
    /// Time to establish the TCP connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Time for the hello exchange once connected. Default 10 s.
    pub handshake_timeout: Duration,
    /// Time for the rest of a frame to arrive once its first bytes (even just its length
    /// header) have, and how long a peer may take no byte of what this side has to send it.
    /// Bounds how long a slow or stalled peer can hold a half-received frame (and the buffer
    /// reserved for it) or a full output queue. Default 30 s.
    pub frame_timeout: Duration,
    /// On graceful shutdown, how long calls in flight may still run before their connections
    /// are closed anyway. Default 10 s.
    pub shutdown_grace: Duration,
    /// Objects one side may export on one connection (the root included). An encode that
    /// would export one more fails with a clear error; the connection lives on. Default 10,000.
    pub max_exported_objects: usize,
    /// Keepalive `(interval, timeout)`: after `interval` without a frame from the peer, send a
    /// ping; if nothing arrives within `timeout` more, the connection is closed and everything
    /// on it fails with `Disconnected`. `None` turns keepalive off. Default 30 s and 20 s.
    pub keepalive: Option<(Duration, Duration)>,
    /// Deadline of every call made on this connection that sets none itself
    /// ([`ObjectRef::with_timeout`](crate::ObjectRef::with_timeout)). Default none.
    pub default_call_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_length: 4 * 1024 * 1024,
            max_in_flight_calls: 1024,
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            max_exported_objects: 10_000,
            keepalive: Some((Duration::from_secs(30), Duration::from_secs(20))),
            default_call_timeout: None,
        }
    }
}

impl Config {
    /// Sets [`max_frame_length`](Config::max_frame_length).
    ///
    /// # Panics
    /// If `bytes` is below 64 or above `u32::MAX` (what the 4-byte length prefix can say).
    pub fn max_frame_length(mut self, bytes: usize) -> Self {
        assert!(
            (64..=crate::codec::MAX_FRAME_LENGTH_CEILING).contains(&bytes),
            "max_frame_length must be between 64 bytes and u32::MAX, got {bytes}"
        );
        self.max_frame_length = bytes;
        self
    }

    /// Sets [`max_in_flight_calls`](Config::max_in_flight_calls) (at least 1).
    pub fn max_in_flight_calls(mut self, calls: usize) -> Self {
        self.max_in_flight_calls = calls.max(1);
        self
    }

    /// Sets [`connect_timeout`](Config::connect_timeout).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Sets [`handshake_timeout`](Config::handshake_timeout).
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// Sets [`frame_timeout`](Config::frame_timeout).
    pub fn frame_timeout(mut self, t: Duration) -> Self {
        self.frame_timeout = t;
        self
    }

    /// Sets [`max_exported_objects`](Config::max_exported_objects) (at least 1).
    pub fn max_exported_objects(mut self, objects: usize) -> Self {
        self.max_exported_objects = objects.max(1);
        self
    }

    /// Sets [`keepalive`](Config::keepalive): ping after `interval` of silence, give up
    /// `timeout` later.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keepalive = Some((interval, timeout));
        self
    }

    /// Turns keepalive off.
    pub fn no_keepalive(mut self) -> Self {
        self.keepalive = None;
        self
    }

    /// Sets [`default_call_timeout`](Config::default_call_timeout).
    pub fn default_call_timeout(mut self, timeout: Duration) -> Self {
        self.default_call_timeout = Some(timeout);
        self
    }

    /// Sets [`shutdown_grace`](Config::shutdown_grace).
    pub fn shutdown_grace(mut self, t: Duration) -> Self {
        self.shutdown_grace = t;
        self
    }
}
