//! [`RemoteObject`]: an object the peer exported, as this side holds it (the inside of a
//! remote [`ObjectRef`](crate::ObjectRef)).
//!
//! It counts how many times the peer sent it (see [`crate::refs`]); when the last reference
//! to it drops, the peer is told with a decref of that count. Calls through it go over the
//! connection it came from, and it can be sent back only over that same connection.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::call::CallFuture;
use crate::codec;
use crate::connection::{Connection, Shared};
use crate::peer::Peer;
use crate::protocol::{self, WireRef};

/// An object exported by the peer, as this side holds it: the inside of a remote
/// `ObjectRef`. When the last reference to it drops, the peer is told (a decref).
pub(crate) struct RemoteObject {
    connection: Connection,
    id: u64,
    /// How many times the peer sent this object to this proxy (0 for the root: not counted).
    received: AtomicU64,
    counted: bool,
    /// The name of its remote trait, as the peer said (unknown for a root from `Client::root`).
    interface: Option<String>,
}

impl fmt::Debug for RemoteObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "object {} of {}",
            self.id,
            self.connection.shared().peer()
        )
    }
}

impl RemoteObject {
    /// The root object of the peer of `connection`.
    pub(crate) fn root(connection: Connection, interface: Option<String>) -> Arc<RemoteObject> {
        Arc::new(RemoteObject {
            connection,
            id: protocol::ROOT_OBJECT,
            received: AtomicU64::new(0),
            counted: false,
            interface,
        })
    }

    /// A proxy of the peer's object `id`, just received for the first time (or again after
    /// the previous proxy was dropped).
    pub(crate) fn imported(connection: Connection, id: u64, interface: String) -> Arc<Self> {
        Arc::new(RemoteObject {
            connection,
            id,
            received: AtomicU64::new(1),
            counted: true,
            interface: Some(interface),
        })
    }

    /// The peer sent this object once more.
    pub(crate) fn received_again(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// Its id in the peer's export table.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn interface(&self) -> Option<&str> {
        self.interface.as_deref()
    }

    pub(crate) fn call<A, R>(
        &self,
        method: &str,
        args: &A,
        timeout: Option<Duration>,
    ) -> CallFuture<R>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        let timeout = timeout.or(self.connection.shared().config().default_call_timeout);
        let started = self.connection.start_call(self.id, method, timeout, |buf| {
            codec::encode_into(args, buf)
        });
        match started {
            Ok(pending) => CallFuture::remote(pending, timeout),
            Err(e) => CallFuture::failed(e),
        }
    }

    pub(crate) fn peer(&self) -> Peer {
        Peer::new(Arc::clone(self.connection.shared()))
    }

    pub(crate) fn same_object(&self, other: &RemoteObject) -> bool {
        self.id == other.id && Arc::ptr_eq(self.connection.shared(), other.connection.shared())
    }

    /// Written for `shared`: valid only on the connection it came from.
    pub(crate) fn to_wire(&self, shared: &Arc<Shared>) -> Result<WireRef, String> {
        if Arc::ptr_eq(self.connection.shared(), shared) {
            Ok(WireRef::ReceiverExports(self.id))
        } else {
            Err(format!(
                "a reference to an object of {} cannot be sent to {}: references are valid only \
                 on the connection they came from, and pbrs does not proxy between connections",
                self.connection.shared().peer(),
                shared.peer()
            ))
        }
    }
}

impl Drop for RemoteObject {
    fn drop(&mut self) {
        if self.counted {
            let count = *self.received.get_mut();
            self.connection.shared().release_import(self, count);
        }
    }
}
