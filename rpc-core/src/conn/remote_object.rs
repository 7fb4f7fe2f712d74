//! [`RemoteObject`]: an object the peer exported, as this side holds it (the inside of a
//! remote [`ObjectRef`](crate::ObjectRef)).
//!
//! Every reference that arrives becomes one `RemoteObject` (shared by the clones of its
//! `ObjectRef`); the connection's import table counts them, and when the last one of an
//! object is dropped the peer is sent a decref (see `imports`). It can be sent back only
//! over the connection it came from.

use std::fmt;
use std::sync::Arc;

use super::shared::{Connection, Shared};
use crate::protocol::{self, WireRef};

/// An object exported by the peer, as this side holds it.
pub(crate) struct RemoteObject {
    connection: Connection,
    id: u64,
    /// Counted in the import table (every object but the peer's root).
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
    /// The root object of the peer of `connection` (permanent: never counted).
    pub(crate) fn root(connection: Connection, interface: Option<String>) -> Arc<RemoteObject> {
        Arc::new(RemoteObject {
            connection,
            id: protocol::ROOT_OBJECT,
            counted: false,
            interface,
        })
    }

    /// A proxy of the peer's object `id`, whose reference just arrived (and was counted in
    /// the import table).
    pub(crate) fn imported(connection: Connection, id: u64, interface: String) -> Arc<Self> {
        Arc::new(RemoteObject {
            connection,
            id,
            counted: true,
            interface: Some(interface),
        })
    }

    /// Its id in the peer's export table.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn interface(&self) -> Option<&str> {
        self.interface.as_deref()
    }

    /// The connection it lives behind.
    pub(crate) fn connection(&self) -> &Connection {
        &self.connection
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
            self.connection.shared().release_import(self.id);
        }
    }
}
