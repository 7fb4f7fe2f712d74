//! The handshake: each side sends its hello, then reads the peer's, within
//! `handshake_timeout`. Both send before reading, so a mismatch is reported on both sides.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::codec;
use crate::config::Config;
use crate::error::{CallError, TimeoutKind};
use crate::io::frame_reader::{FrameReader, ReadError};
use crate::protocol;
use crate::tls;

/// Exchanges hellos over `frames` and `writer`.
pub(crate) async fn handshake<R, W>(
    frames: &mut FrameReader<R>,
    writer: &mut W,
    config: &Config,
) -> Result<(), CallError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let exchange = async {
        let hello = codec::one_frame(&protocol::hello(), config.max_frame_length)
            .map_err(|e| CallError::io("could not encode the hello", e))?;
        let sent = async {
            writer.write_all(&hello).await?;
            writer.flush().await
        };
        sent.await
            .map_err(|e| CallError::disconnected(format!("sending the hello failed: {e}")))?;
        match frames.next_frame().await {
            Ok(None) => Err(CallError::disconnected(
                "the peer closed the connection during the handshake",
            )),
            Err(ReadError::Protocol(_)) if frames.announced().is_some_and(tls::looks_like_tls) => {
                Err(CallError::protocol(
                    "the peer speaks TLS, but this side does not: connect to a TLS server with \
                     Client::connect_tls or a pbrs:// URL, or serve TLS with Server::with_tls",
                ))
            }
            Err(ReadError::Protocol(m)) => Err(CallError::protocol(format!("bad hello: {m}"))),
            // Over TLS, a certificate refused by the peer shows here, at the first read.
            Err(ReadError::Transport(e)) if tls::verify::rustls_error(&e).is_some() => {
                Err(CallError::Tls {
                    message: tls::verify::describe(&e, tls::verify::Side::Client),
                })
            }
            Err(ReadError::Transport(e)) => Err(CallError::disconnected(format!(
                "reading the peer's hello failed: {e}"
            ))),
            Ok(Some(frame)) => protocol::check_hello(&frame).map_err(CallError::protocol),
        }
    };
    match tokio::time::timeout(config.handshake_timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(CallError::timeout(
            TimeoutKind::Handshake,
            config.handshake_timeout,
        )),
    }
}
