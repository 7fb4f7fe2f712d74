//! What the `fib-server` and `fib-client` binaries share: logging to stderr, and the signal
//! to shut down.

/// Logs to stderr, at `level` (`error`, `warn`, `info`, `debug`, `trace`, or a tracing
/// filter), keeping stdout for the program's own lines.
///
/// # Errors
/// A level that is not a filter, said in words.
pub fn init_logging(level: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| format!("--log-level {level:?} is not a log filter: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init()
        .map_err(|e| e.to_string())
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: call it before announcing that the program
/// is ready, so that a signal sent right after the announcement is never the fatal default.
/// Call it inside a tokio runtime.
///
/// # Errors
/// When a handler cannot be installed.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
                _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C: shutting down");
        })
    }
}
