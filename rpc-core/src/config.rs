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
    /// without bound. Default 1024. A call holds its slot from when it is read to when its
    /// answer is queued. On a `current_thread` runtime a handler that finishes at its first
    /// poll is run as soon as its call is read, so it frees its slot before the next call (it
    /// counts in [`Peer::calls_in_flight`](crate::Peer::calls_in_flight) until that call is
    /// admitted, or until the frames read at once are all handled); on a
    /// multi-threaded runtime the calls read in one burst all take their slots before a task
    /// runs them.
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
    /// Deadline of every call made over this connection through a reference that sets none
    /// itself. Default [`Config::DEFAULT_CALL_TIMEOUT`], 10 s (tarpc's default too).
    ///
    /// A peer that stops answering without closing the connection (a stopped or hung process,
    /// a cable pulled) would otherwise hold every call to it, and everything awaiting those
    /// calls (a server calling all its listeners, as in the `weblog` example), until keepalive
    /// notices: [`keepalive`](Config::keepalive)'s interval + timeout, 50 s by default. Past the
    /// deadline the caller gets [`CallError::Timeout`] with
    /// [`TimeoutKind::Call`](crate::TimeoutKind::Call), and since the deadline travels with the
    /// call, the callee drops the handler too.
    ///
    /// For calls that legitimately take longer, give their reference its own deadline,
    /// [`with_timeout`](crate::ObjectRef::with_timeout), or none,
    /// [`without_timeout`](crate::ObjectRef::without_timeout); `None` here
    /// ([`no_default_call_timeout`](Config::no_default_call_timeout)) means calls without a
    /// deadline of their own have none. Calls of local objects (`FooRef::new(obj)`) have no
    /// default deadline.
    ///
    /// [`CallError::Timeout`]: crate::CallError::Timeout
    pub default_call_timeout: Option<Duration>,
    /// Bytes one connection may hold queued for its peer, every kind of frame counted:
    /// answers, error answers, pongs, calls, cancels, decrefs. `None` (the default) means
    /// three times [`max_frame_length`](Config::max_frame_length) (12 MiB for 4 MiB frames).
    ///
    /// The budget is split in thirds. While more than a third is queued, new incoming calls
    /// are answered `Overloaded`. Calls and answers (frames that can wait) are queued while
    /// the queue stays within two thirds, and otherwise wait until the peer has read enough;
    /// the last third is room for the small frames that cannot wait (error answers, pongs,
    /// cancels, decrefs). A frame that would take the queue past the whole budget means the
    /// peer keeps sending but does not read what it is sent: the connection is closed, with
    /// one warning naming the peer. Values below `max_frame_length` + 64 KiB are raised to
    /// that.
    pub output_budget: Option<usize>,
    /// Bytes all the connections of one [`Server`](crate::Server) may hold together in
    /// frames still arriving and in frames queued for their peers. Default 256 MiB. A
    /// connection whose next incoming frame is large (over 64 KiB) waits before reading it
    /// while the budget is spent, and so do calls and answers about to be queued; small
    /// frames are always read, so small calls keep being served. A [`Client`](crate::Client)
    /// has a budget of this size for its one connection.
    pub memory_budget: usize,
    /// Connections a [`Server`](crate::Server) serves at once. A connection accepted beyond
    /// it is closed at once (and logged); the server goes on accepting. Default 10,000.
    pub max_connections: usize,
    /// How deeply nested a decoded value may be (arguments and answers, on both ends; frame
    /// headers are read without recursion, whatever this says): deeper input is refused
    /// (`BadArguments` for arguments) instead of exhausting the stack. One level is one value
    /// inside another: a struct field, a sequence or map element, an enum's content, an
    /// `Option`'s `Some`, a newtype. Default 128.
    pub max_decode_depth: usize,
}

impl Config {
    /// The default of [`default_call_timeout`](Config::default_call_timeout): 10 s.
    pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
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
            default_call_timeout: Some(Config::DEFAULT_CALL_TIMEOUT),
            output_budget: None,
            memory_budget: 256 * 1024 * 1024,
            max_connections: 10_000,
            max_decode_depth: crate::codec::DEFAULT_MAX_DECODE_DEPTH,
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

    /// No default deadline: a call whose reference sets none
    /// ([`ObjectRef::with_timeout`](crate::ObjectRef::with_timeout)) waits until it is
    /// answered, cancelled, or the connection is lost (keepalive notices a silent peer).
    pub fn no_default_call_timeout(mut self) -> Self {
        self.default_call_timeout = None;
        self
    }

    /// Sets [`output_budget`](Config::output_budget).
    pub fn output_budget(mut self, bytes: usize) -> Self {
        self.output_budget = Some(bytes);
        self
    }

    /// The output budget in force: [`output_budget`](Config::output_budget), or three frame
    /// lengths, and never below one frame length + 64 KiB.
    pub fn effective_output_budget(&self) -> usize {
        let floor = self.max_frame_length.saturating_add(64 * 1024);
        self.output_budget
            .unwrap_or(self.max_frame_length.saturating_mul(3))
            .max(floor)
    }

    /// Sets [`memory_budget`](Config::memory_budget) (at least one frame length is always
    /// let through).
    pub fn memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// Sets [`max_connections`](Config::max_connections) (at least 1).
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// Sets [`max_decode_depth`](Config::max_decode_depth) (at least 1).
    pub fn max_decode_depth(mut self, levels: usize) -> Self {
        self.max_decode_depth = levels.max(1);
        self
    }

    /// Sets [`shutdown_grace`](Config::shutdown_grace).
    pub fn shutdown_grace(mut self, t: Duration) -> Self {
        self.shutdown_grace = t;
        self
    }
}
