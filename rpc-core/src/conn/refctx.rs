//! How references travel: the context that encodes and decodes [`Reference`]s, and the
//! frames built with it.
//!
//! A reference inside an argument or a return value — a `<Trait>Ref` alone, in a `Vec`, an
//! `Option`, a struct field — is written as an index into a *reference table* that travels
//! in the frame's header (see [`crate::protocol`]). Encoding and decoding set a context for
//! that (a thread-local, for the duration of one encode or decode, restored even if the
//! encode panics):
//!
//! - encoding for a **connection** ([`encode_frame`]), a local object is *exported* on it and
//!   listed as [`WireRef::SenderExports`]; a proxy that came from this same connection is
//!   listed as [`WireRef::ReceiverExports`]; a proxy of another connection is refused (pbrs
//!   never silently proxies between connections). The exports stay pending until the frame
//!   is queued ([`EncodedFrame`]), and are rolled back if it never is, or the encode fails or
//!   panics. A frame is first encoded as if it carried no reference, holding nothing of the
//!   connection; the first reference met stops that, and the frame is encoded again with the
//!   export context (so a value with references is serialized twice, the first time in
//!   part);
//! - encoding **in process** (an untyped call of a local object), references are kept as
//!   they are;
//! - decoding, the table has already been resolved into `Reference`s ([`resolve`], by the
//!   connection's reader, as the frame arrived, in frame order), and an index picks one.
//!
//! **Lifetimes.** The exporter counts how many times it has *sent* each object; the receiver
//! counts how many times it has *received* it. When the receiver's last proxy drops, it sends
//! `Decref { object, count: received }`, and the exporter subtracts `count`; the object is
//! released (its `Drop` runs) only when the difference reaches zero. A reference re-sent while
//! a decref is in flight is therefore never freed early: the exporter's count includes the
//! re-send, the decref does not. The root object is never released.

use std::cell::RefCell;
use std::sync::Arc;

use bytes::BytesMut;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::shared::{Reference, RemoteObject, Shared};
use crate::codec::{self, BuiltFrame};
use crate::protocol::{self, Message, WireRef};

/// Encoding for a connection: the table so far, the exports to commit or roll back, and the
/// peer's objects referred to (kept alive until the frame is queued).
struct ExportContext {
    shared: Arc<Shared>,
    table: Vec<WireRef>,
    exported: Vec<u64>,
    held: Vec<Arc<RemoteObject>>,
}

impl ExportContext {
    fn new(shared: &Arc<Shared>) -> Self {
        ExportContext {
            shared: Arc::clone(shared),
            table: Vec::new(),
            exported: Vec::new(),
            held: Vec::new(),
        }
    }
}

impl Drop for ExportContext {
    fn drop(&mut self) {
        // Still here: the encode failed or panicked before its frame was built.
        if !self.exported.is_empty() {
            self.shared.roll_back_exports(&self.exported);
        }
    }
}

/// Where the references being encoded go, or where the decoded ones come from.
enum Context {
    /// Encoding for a connection, until a reference is met: most frames carry none, and this
    /// holds nothing of the connection. A reference marks it and fails the encode, which
    /// [`encode_frame`] then runs again with an `Export` context.
    Plain {
        references: bool,
    },
    Export(ExportContext),
    /// Encoding in process: references are kept as they are.
    Collect(Vec<Reference>),
    /// Decoding: the frame's table, resolved.
    Resolve(Vec<Reference>),
}

scoped_tls::scoped_thread_local!(static CONTEXT: RefCell<Context>);

/// Runs `f` with `context`; returns what `f` returned and the context. If `f` panics, the
/// previous context is restored and `context` dropped (rolling back its exports). The context
/// stays on this stack frame: the thread-local holds only its address while `f` runs.
/// Inlined: called, it read its `context` argument with one wide load of the narrow stores
/// that had just written it, which stalls (perf: a quarter of its time).
#[inline(always)]
fn enter<R>(context: Context, f: impl FnOnce() -> R) -> (R, Context) {
    let context = RefCell::new(context);
    let result = CONTEXT.set(&context, f);
    (result, context.into_inner())
}

/// Runs `f` on the current context, if there is one.
fn with_context<R>(f: impl FnOnce(Option<&RefCell<Context>>) -> R) -> R {
    if CONTEXT.is_set() {
        CONTEXT.with(|context| f(Some(context)))
    } else {
        f(None)
    }
}

/// Why a frame could not be built.
#[derive(Debug)]
pub(crate) enum FrameError {
    Encode(String),
    TooLarge(usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Encode(message) => f.write_str(message),
            FrameError::TooLarge(size) => write!(
                f,
                "it is {size} bytes, over the frame limit (max_frame_length)"
            ),
        }
    }
}

/// A frame encoded for a connection, with the exports it made still pending: they are
/// committed when it is queued ([`EncodedFrame::try_queue`]), and rolled back if it is
/// dropped unqueued. It also holds the proxies of the peer's objects it refers to: were the
/// last of them dropped before the frame is queued (a lazy call's arguments are dropped when
/// the call is made), the decref would reach the peer before the frame that needs the object.
pub(crate) struct EncodedFrame {
    bytes: BuiltFrame,
    /// Boxed, and only for a frame with references: most have none, and a call's future,
    /// which holds its frame until the first poll, is moved about whole.
    references: Option<Box<FrameReferences>>,
}

/// What a frame with references holds until it is queued.
struct FrameReferences {
    /// The exports it made, if any, and their connection (to roll them back on): a frame
    /// without any holds no `Arc<Shared>` of its own.
    exports: Option<(Arc<Shared>, Vec<u64>)>,
    _held: Vec<Arc<RemoteObject>>,
}

impl EncodedFrame {
    /// Queues the frame (one that can wait: a call or an answer) on `shared`, the connection
    /// it was encoded for, if the outbox has room for it now, committing its exports and
    /// running `on_queued` just before, under the queue's lock (so before anyone can write the
    /// frame); otherwise hands it back (wait with `outbox.room()` and try again).
    pub(crate) fn try_queue(
        mut self,
        shared: &Shared,
        on_queued: impl FnOnce(),
    ) -> Result<(), EncodedFrame> {
        let bytes = std::mem::take(&mut self.bytes);
        let queued = shared.outbox.try_queue(bytes, || {
            if let Some((shared, exported)) =
                self.references.as_mut().and_then(|r| r.exports.take())
            {
                shared.commit_exports(&exported);
            }
            on_queued();
        });
        match queued {
            // Dropped here, outside the queue's lock: the proxies it holds may send decrefs.
            Ok(()) => Ok(()),
            Err(bytes) => {
                // It waits for room: in memory of its own size, not holding on to the
                // scratch memory it was built in (see `codec::build_frame`).
                self.bytes = bytes.detached();
                Err(self)
            }
        }
    }
}

impl Drop for EncodedFrame {
    fn drop(&mut self) {
        if let Some((shared, exported)) = self.references.as_ref().and_then(|r| r.exports.as_ref())
        {
            shared.roll_back_exports(exported);
        }
    }
}

/// Encodes one frame for `shared`: the header `header(refs)`, then the payload
/// `write_payload` writes. References in the payload are exported on the connection (pending)
/// and listed in the header. `write_payload` is called twice when the payload holds a
/// reference (see the module docs), each time on a fresh buffer: it must write the same
/// bytes each time.
pub(crate) fn encode_frame<'m>(
    shared: &Arc<Shared>,
    header: impl Fn(Vec<WireRef>) -> Message<'m>,
    write_payload: impl Fn(&mut BytesMut) -> Result<(), String>,
) -> Result<EncodedFrame, FrameError> {
    let limit = shared.config().max_frame_length;
    let build = || {
        let (header_len, frame) = codec::build_frame(|frame| {
            codec::encode_header(&header(Vec::new()), frame)?;
            let header_len = frame.len();
            write_payload(frame)?;
            Ok(header_len)
        });
        header_len.map(|header_len| (frame, header_len))
    };
    // First as if the frame carried no reference (no count of the connection taken, nothing
    // to commit or roll back); again, exporting, only if it does.
    let (plain, context) = enter(Context::Plain { references: false }, build);
    if let Context::Plain { references: false } = context {
        let (frame, _) = plain.map_err(FrameError::Encode)?;
        return Ok(EncodedFrame {
            bytes: within(limit, frame)?,
            references: None,
        });
    }
    // The part built before the reference goes first: the scratch memory it was cut from can
    // then be used again in place.
    drop(plain);
    let (result, Context::Export(mut context)) =
        enter(Context::Export(ExportContext::new(shared)), build)
    else {
        unreachable!("the export context was replaced");
    };
    let (frame, header_len) = result.map_err(FrameError::Encode)?;
    let table = std::mem::take(&mut context.table);
    let frame = if table.is_empty() {
        frame
    } else {
        // Rewrite the header with the table the payload produced.
        let (written, with_refs) = codec::build_frame(|with_refs| {
            codec::encode_header(&header(table), with_refs)?;
            with_refs.extend_from_slice(&frame.as_slice()[header_len..]);
            Ok(())
        });
        written.map_err(FrameError::Encode)?;
        with_refs
    };
    // Checked while the context still holds the exports: a frame too large rolls them back.
    let frame = within(limit, frame)?;
    let exported = std::mem::take(&mut context.exported);
    Ok(EncodedFrame {
        bytes: frame,
        references: Some(Box::new(FrameReferences {
            exports: (!exported.is_empty()).then(|| (Arc::clone(shared), exported)),
            _held: std::mem::take(&mut context.held),
        })),
    })
}

/// Encodes, after what `dst` holds, the frame of `header` and of the payload `write_payload`
/// writes into `dst`, if the frame carries no reference and `write_payload` says it wrote it
/// (it may refuse for reasons of its own: too long for where the frame goes). Otherwise `false`,
/// and `dst` is as it was: [`encode_frame`] then builds the frame, exporting its references, or
/// says why it fails.
pub(crate) fn encode_plain_into(
    dst: &mut BytesMut,
    header: &Message<'_>,
    write_payload: impl FnOnce(&mut BytesMut) -> bool,
) -> bool {
    let start = dst.len();
    let (written, context) = enter(Context::Plain { references: false }, || {
        codec::encode_header(header, dst).is_ok() && write_payload(dst)
    });
    let plain = written && matches!(context, Context::Plain { references: false });
    if !plain {
        dst.truncate(start);
    }
    plain
}

/// `frame`, if it is within the frame limit `limit`.
fn within(limit: usize, frame: BuiltFrame) -> Result<BuiltFrame, FrameError> {
    if frame.len() > limit {
        return Err(FrameError::TooLarge(frame.len()));
    }
    Ok(frame)
}

/// Runs `encode` in process; returns its result and the references it encoded.
pub(crate) fn encode_in_process<R>(encode: impl FnOnce() -> R) -> (R, Vec<Reference>) {
    match enter(Context::Collect(Vec::new()), encode) {
        (result, Context::Collect(refs)) => (result, refs),
        (result, _) => (result, Vec::new()),
    }
}

/// Runs `decode` with the resolved reference table `refs`. An empty table (most frames) sets
/// no context, unless one is set already (it must not show through): a reference decoded
/// without one is not in the table, as with an empty one.
pub(crate) fn decode_with<R>(refs: Vec<Reference>, decode: impl FnOnce() -> R) -> R {
    if refs.is_empty() && !CONTEXT.is_set() {
        return decode();
    }
    enter(Context::Resolve(refs), decode).0
}

/// Resolves the reference table of a frame that just arrived on `shared`.
pub(crate) fn resolve(shared: &Arc<Shared>, table: Vec<WireRef>) -> Result<Vec<Reference>, String> {
    if table.is_empty() {
        return Ok(Vec::new());
    }
    table
        .into_iter()
        .map(|wire| match wire {
            WireRef::SenderExports { id, interface } => {
                let connection = shared.connection();
                if id == protocol::ROOT_OBJECT {
                    return Ok(Reference::Remote(RemoteObject::root(
                        connection,
                        Some(interface),
                    )));
                }
                shared.note_import(id);
                Ok(Reference::Remote(RemoteObject::imported(
                    connection, id, interface,
                )))
            }
            WireRef::ReceiverExports(id) => {
                shared.exported(id).map(Reference::Local).ok_or_else(|| {
                    format!("the peer sent back object {id}, which this side does not export")
                })
            }
        })
        .collect()
}

const AGAIN_WITH_EXPORTS: &str = "a reference: the frame is encoded again, exporting";

const NO_CONTEXT: &str = "a reference can only be sent as an argument or return value of a \
                          remote call (it was serialized outside of one)";

/// Serializes `reference` as an index into the current context's table.
pub(crate) fn serialize_reference<S: Serializer>(
    reference: &Reference,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let index = with_context(|c| match c.map(RefCell::borrow_mut).as_deref_mut() {
        None | Some(Context::Resolve(_)) => Err(NO_CONTEXT.to_owned()),
        Some(Context::Plain { references }) => {
            // Encoded again with an export context (see `encode_frame`).
            *references = true;
            Err(AGAIN_WITH_EXPORTS.to_owned())
        }
        Some(Context::Collect(refs)) => {
            refs.push(reference.clone());
            Ok(refs.len() - 1)
        }
        Some(Context::Export(ExportContext {
            shared,
            table,
            exported,
            held,
        })) => {
            let wire = reference.to_wire(shared)?;
            if let Reference::Remote(remote) = reference {
                held.push(Arc::clone(remote));
            }
            if let WireRef::SenderExports { id, .. } = wire
                && id != protocol::ROOT_OBJECT
            {
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

/// Deserializes a reference: an index into the current context's resolved table.
pub(crate) fn deserialize_reference<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Reference, D::Error> {
    let index = u32::deserialize(deserializer)? as usize;
    with_context(|c| match c.map(RefCell::borrow).as_deref() {
        Some(Context::Resolve(refs)) => refs.get(index).cloned().ok_or_else(|| {
            format!(
                "reference {index} is not in the message's table of {}",
                refs.len()
            )
        }),
        // Decoded with an empty table (`decode_with`), or outside any pbrs message.
        None => Err(format!(
            "reference {index} is not in the message's table (it has none; a reference can \
             only be decoded from a pbrs message)"
        )),
        Some(_) => Err(NO_CONTEXT.to_owned()),
    })
    .map_err(serde::de::Error::custom)
}
