//! How references travel: the serde side of [`ObjectRef`] and the per-connection tables of
//! exported and imported objects.
//!
//! A reference is (de)serialized with a *context*: the connection the bytes are for or come
//! from. Encoding and decoding of call arguments and answers set it (a thread-local, for the
//! duration of that one encode or decode), so a `<Trait>Ref` inside any serde value — a `Vec`,
//! an `Option`, a struct field — is handled wherever it sits:
//!
//! - a **local object** sent over a connection is *exported* on it: it gets an id in that
//!   connection's export table and travels as [`WireRef::SenderExports`]; the receiver gets a
//!   proxy that calls back over the same connection;
//! - a **proxy** sent back over the connection it came from travels as
//!   [`WireRef::ReceiverExports`] and arrives as the original local object: same identity,
//!   calls go straight to it;
//! - a proxy of *another* connection is refused: pbrs never silently proxies between
//!   connections.
//!
//! **Lifetimes.** The exporter counts how many times it has *sent* each object; the receiver
//! counts how many times it has *received* it into its live proxy. When the receiver's last
//! proxy clone drops, it sends `Decref { object, count: received }`, and the exporter subtracts
//! `count`; the object is released (its `Drop` runs) only when the difference reaches zero.
//! A reference re-sent while a decref is in flight is therefore never freed early: the
//! exporter's count includes the re-send, the decref does not. The root object is never
//! released. In-process calls (no connection) carry references in a side table instead.

use std::cell::RefCell;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::Shared;
use crate::object::ObjectRef;

/// A reference on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WireRef {
    /// An object the sender exports, by its id in the sender's table.
    SenderExports(u64),
    /// An object the receiver exported earlier, by its id in the receiver's table.
    ReceiverExports(u64),
    /// Only within one process: an index into the side table of an in-process call.
    InProcess(u32),
}

/// Where the references being encoded or decoded go to or come from.
pub(crate) enum RefContext {
    /// A connection; `exported` logs what this encode exported, to undo it if it fails.
    Connection {
        shared: Arc<Shared>,
        exported: Vec<u64>,
    },
    /// An in-process call: references travel as themselves.
    InProcess { refs: Vec<ObjectRef> },
}

thread_local! {
    static CONTEXT: RefCell<Option<RefContext>> = const { RefCell::new(None) };
}

impl RefContext {
    pub(crate) fn connection(shared: &Arc<Shared>) -> Self {
        RefContext::Connection {
            shared: Arc::clone(shared),
            exported: Vec::new(),
        }
    }

    /// Runs `f` (one encode or decode) with this context; returns its result and the context.
    pub(crate) fn enter<R>(self, f: impl FnOnce() -> R) -> (R, RefContext) {
        let previous = CONTEXT.with(|c| c.borrow_mut().replace(self));
        let result = f();
        let context = CONTEXT
            .with(|c| std::mem::replace(&mut *c.borrow_mut(), previous))
            .expect("the reference context vanished during an encode");
        (result, context)
    }

    /// Encodes with this context; if `encode` fails, the exports it made are undone.
    pub(crate) fn encode<R, E>(
        self,
        encode: impl FnOnce() -> Result<R, E>,
    ) -> (Result<R, E>, RefContext) {
        let (result, context) = self.enter(encode);
        if result.is_err() {
            if let RefContext::Connection { shared, exported } = &context {
                for id in exported {
                    shared.release_sent(*id, 1);
                }
            }
        }
        (result, context)
    }
}

fn with_context<R>(f: impl FnOnce(Option<&mut RefContext>) -> R) -> R {
    CONTEXT.with(|c| f(c.borrow_mut().as_mut()))
}

const NO_CONTEXT: &str = "a reference can only be sent as an argument or return value of a \
                          remote call (it was serialized outside of one)";

impl Serialize for ObjectRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let wire = with_context(|context| match context {
            None => Err(NO_CONTEXT.to_owned()),
            Some(RefContext::InProcess { refs }) => {
                refs.push(self.clone());
                u32::try_from(refs.len() - 1)
                    .map(WireRef::InProcess)
                    .map_err(|_| "too many references in one call".to_owned())
            }
            Some(RefContext::Connection { shared, exported }) => {
                let wire = self.to_wire(shared)?;
                if let WireRef::SenderExports(id) = wire {
                    exported.push(id);
                }
                Ok(wire)
            }
        })
        .map_err(serde::ser::Error::custom)?;
        wire.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ObjectRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireRef::deserialize(deserializer)?;
        with_context(|context| match (context, wire) {
            (None, _) => Err(NO_CONTEXT.to_owned()),
            (Some(RefContext::InProcess { refs }), WireRef::InProcess(i)) => refs
                .get(i as usize)
                .cloned()
                .ok_or_else(|| format!("no reference {i} in this in-process call")),
            (Some(RefContext::InProcess { .. }), other) => {
                Err(format!("{other:?} is not valid in an in-process call"))
            }
            (Some(RefContext::Connection { shared, .. }), WireRef::SenderExports(id)) => {
                Ok(shared.import(id))
            }
            (Some(RefContext::Connection { shared, .. }), WireRef::ReceiverExports(id)) => shared
                .exported(id)
                .map(ObjectRef::from_dispatch)
                .ok_or_else(|| {
                    format!("the peer sent back object {id}, which this side does not export")
                }),
            (Some(RefContext::Connection { .. }), WireRef::InProcess(_)) => {
                Err("the peer sent an in-process reference".to_owned())
            }
        })
        .map_err(serde::de::Error::custom)
    }
}
