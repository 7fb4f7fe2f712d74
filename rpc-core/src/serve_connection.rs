//! [`serve_connection`]: one connection on any transport (an in-memory
//! [`tokio::io::duplex`], a Unix socket, ...), whole or in halves, serving a root object.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::Config;
use crate::conn::{PeerInfo, establish};
use crate::dispatch::Dispatch;
use crate::error::CallError;
use crate::io::budget::MemoryBudget;
use crate::object::RemoteRef;
use crate::protocol::ROOT_OBJECT;

/// Serves `root` over one connection on any transport (an in-memory
/// [`tokio::io::duplex`], a Unix socket, ...) until it closes. `peer` names the other end in
/// logs. Returns an error if the handshake fails. Reading and writing go through one lock on
/// the transport (it is split with [`tokio::io::split`]); a transport that splits without one
/// is better passed to [`serve_connection_halves`].
pub async fn serve_connection<T, R>(
    transport: T,
    root: R,
    config: Config,
    peer: &str,
) -> Result<(), CallError>
where
    T: AsyncRead + AsyncWrite + Send + 'static,
    R: RemoteRef,
{
    let (reader, writer) = tokio::io::split(transport);
    serve_connection_halves(reader, writer, root, config, peer).await
}

/// [`serve_connection`] over a transport already split into the half it reads from and the
/// half it writes to (`UnixStream::into_split`, `TcpStream::into_split`, a pair of pipes): the
/// connection's reader and writer then share no lock.
pub async fn serve_connection_halves<R, W, O>(
    reader: R,
    writer: W,
    root: O,
    config: Config,
    peer: &str,
) -> Result<(), CallError>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
    O: RemoteRef,
{
    let memory = MemoryBudget::new(config.memory_budget);
    let permanent = vec![(ROOT_OBJECT, local_root(&root)?)];
    let info = PeerInfo::local(peer);
    let connection = establish(reader, writer, config, permanent, info, memory).await?;
    connection.shared().closed().await;
    Ok(())
}

/// The dispatcher of a root object, which must live in this process.
pub(crate) fn local_root<R: RemoteRef>(root: &R) -> Result<Arc<dyn Dispatch>, CallError> {
    root.object()
        .local_dispatch()
        .cloned()
        .ok_or_else(|| CallError::Encode {
            what: "the root object",
            message: "a root object must be a local object (`FooRef::new(object)`), not a proxy \
                  of an object in another process"
                .into(),
        })
}
