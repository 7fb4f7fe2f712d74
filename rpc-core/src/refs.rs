//! How references travel: the serde side of [`ObjectRef`].
//!
//! A reference inside an argument or a return value — a `<Trait>Ref` alone, in a `Vec`, an
//! `Option`, a struct field — is written as an index into a *reference table* that travels
//! beside the payload (see [`crate::protocol`]). Encoding and decoding set a context for that
//! (a thread-local, for the duration of one encode or decode):
//!
//! - encoding for a **connection**, a local object is *exported* on it and listed as
//!   [`WireRef::SenderExports`]; a proxy that came from this same connection is listed as
//!   [`WireRef::ReceiverExports`]; a proxy of another connection is refused (pbrs never
//!   silently proxies between connections);
//! - encoding **in process** (an untyped call of a local object), references are kept as
//!   they are;
//! - decoding, the table has already been resolved into `ObjectRef`s (by the connection's
//!   reader, as the frame arrived), and an index picks one.
//!
//! **Lifetimes.** The exporter counts how many times it has *sent* each object; the receiver
//! counts how many times it has *received* it into its live proxy. When the receiver's last
//! proxy clone drops, it sends `Decref { object, count: received }`, and the exporter subtracts
//! `count`; the object is released (its `Drop` runs) only when the difference reaches zero.
//! A reference re-sent while a decref is in flight is therefore never freed early: the
//! exporter's count includes the re-send, the decref does not. The root object is never
//! released.

use std::cell::RefCell;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::connection::Shared;
use crate::object::ObjectRef;
use crate::protocol::WireRef;

/// Where the references being encoded go, or where the decoded ones come from.
enum RefContext {
    /// Encoding for a connection; `exported` logs what this encode exported, to undo it if
    /// the encode fails.
    Export {
        shared: Arc<Shared>,
        table: Vec<WireRef>,
        exported: Vec<u64>,
    },
    /// Encoding in process: references are kept as they are.
    Collect { refs: Vec<ObjectRef> },
    /// Decoding: the frame's table, resolved.
    Resolve { refs: Vec<ObjectRef> },
}

thread_local! {
    static CONTEXT: RefCell<Option<RefContext>> = const { RefCell::new(None) };
}

/// Runs `f` with `context`; returns what `f` returned and the context.
fn enter<R>(context: RefContext, f: impl FnOnce() -> R) -> (R, RefContext) {
    let previous = CONTEXT.with(|c| c.borrow_mut().replace(context));
    let result = f();
    let context = CONTEXT
        .with(|c| std::mem::replace(&mut *c.borrow_mut(), previous))
        .expect("the reference context vanished during an encode");
    (result, context)
}

/// Runs `encode` (one encode for the connection `shared`). `encode` gets the reference table
/// of what it has encoded so far from [`reference_table`]. If it fails, the exports it made
/// are undone.
pub(crate) fn encode_for<R, E>(
    shared: &Arc<Shared>,
    encode: impl FnOnce() -> Result<R, E>,
) -> Result<R, E> {
    let context = RefContext::Export {
        shared: Arc::clone(shared),
        table: Vec::new(),
        exported: Vec::new(),
    };
    let (result, context) = enter(context, encode);
    if result.is_err() {
        if let RefContext::Export { exported, .. } = context {
            for id in exported {
                shared.release_sent(id, 1);
            }
        }
    }
    result
}

/// Inside [`encode_for`]: the reference table so far.
pub(crate) fn reference_table() -> Vec<WireRef> {
    CONTEXT.with(|c| match &*c.borrow() {
        Some(RefContext::Export { table, .. }) => table.clone(),
        _ => Vec::new(),
    })
}

/// Runs `encode` in process; returns its result and the references it encoded.
pub(crate) fn encode_in_process<R>(encode: impl FnOnce() -> R) -> (R, Vec<ObjectRef>) {
    match enter(RefContext::Collect { refs: Vec::new() }, encode) {
        (result, RefContext::Collect { refs }) => (result, refs),
        (result, _) => (result, Vec::new()),
    }
}

/// Runs `decode` with the resolved reference table `refs`.
pub(crate) fn decode_with<R>(refs: Vec<ObjectRef>, decode: impl FnOnce() -> R) -> R {
    enter(RefContext::Resolve { refs }, decode).0
}

const NO_CONTEXT: &str = "a reference can only be sent as an argument or return value of a \
                          remote call (it was serialized outside of one)";

impl Serialize for ObjectRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let index = CONTEXT
            .with(|c| match c.borrow_mut().as_mut() {
                None | Some(RefContext::Resolve { .. }) => Err(NO_CONTEXT.to_owned()),
                Some(RefContext::Collect { refs }) => {
                    refs.push(self.clone());
                    Ok(refs.len() - 1)
                }
                Some(RefContext::Export {
                    shared,
                    table,
                    exported,
                }) => {
                    let wire = self.to_wire(shared)?;
                    if let WireRef::SenderExports { id, .. } = wire {
                        exported.push(id);
                    }
                    table.push(wire);
                    Ok(table.len() - 1)
                }
            })
            .map_err(serde::ser::Error::custom)?;
        u32::try_from(index)
            .map_err(|_| serde::ser::Error::custom("too many references in one message"))?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ObjectRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let index = u32::deserialize(deserializer)? as usize;
        CONTEXT
            .with(|c| match &*c.borrow() {
                Some(RefContext::Resolve { refs }) => refs.get(index).cloned().ok_or_else(|| {
                    format!(
                        "reference {index} is not in the message's table of {}",
                        refs.len()
                    )
                }),
                _ => Err(NO_CONTEXT.to_owned()),
            })
            .map_err(serde::de::Error::custom)
    }
}
