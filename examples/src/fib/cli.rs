//! What the `fib-server` and `fib-client` binaries share: logging to stderr, and the signal
//! to shut down.

/// Checks a `--log-level` value as clap parses it (`value_parser = log_filter`): `error`,
/// `warn`, `info`, `debug`, `trace`, or a tracing filter such as `examples=debug,rpc_core=info`.
///
/// # Errors
/// A value that is not a filter, said in words (clap shows it as a usage error).
pub fn log_filter(level: &str) -> Result<String, String> {
    match tracing_subscriber::EnvFilter::try_new(level) {
        Ok(_) => Ok(level.to_owned()),
        Err(e) => Err(format!(
            "not a log filter ({e}); try error, warn, info, debug or trace"
        )),
    }
}

/// Sends the log lines that `level` (checked by [`log_filter`]) lets through to stderr,
/// keeping stdout for the program's own lines. Does nothing if a logger is already set.
pub fn log_to_stderr(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
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
