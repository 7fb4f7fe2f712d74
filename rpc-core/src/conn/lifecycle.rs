//! [`Lifecycle`]: a connection is open, then closed once, for one reason, and whoever asked
//! to be told (disconnect hooks, waiters) is told exactly once.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

pub(crate) use crate::lock::lock;

/// Why a connection closed.
#[derive(Debug, Clone)]
pub(crate) enum Closed {
    /// This side closed it.
    Local(String),
    /// The peer closed it or the transport failed: ordinary, logged at debug level.
    Transport(String),
    /// The peer broke the protocol or a limit: logged as one warning naming the peer.
    Protocol(String),
}

impl Closed {
    pub(crate) fn reason(&self) -> &str {
        match self {
            Closed::Local(r) | Closed::Transport(r) | Closed::Protocol(r) => r,
        }
    }
}

/// A callback run once when the connection closes.
pub(crate) type DisconnectCallback = Box<dyn FnOnce(&str) + Send>;

struct Hooks {
    next_id: u64,
    callbacks: HashMap<u64, DisconnectCallback>,
}

/// Open or closed, and the hooks to run on closing.
pub(crate) struct Lifecycle {
    closed: Mutex<Option<Closed>>,
    /// Said after the reason, once closed: what became of the connection since.
    afterword: Mutex<Option<String>>,
    is_closed: AtomicBool,
    token: CancellationToken,
    hooks: Mutex<Hooks>,
}

impl Lifecycle {
    pub(crate) fn new() -> Self {
        Lifecycle {
            closed: Mutex::new(None),
            afterword: Mutex::new(None),
            is_closed: AtomicBool::new(false),
            token: CancellationToken::new(),
            hooks: Mutex::new(Hooks {
                next_id: 0,
                callbacks: HashMap::new(),
            }),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.is_closed.load(Ordering::Acquire)
    }

    /// Why it closed; `None` while open.
    pub(crate) fn reason(&self) -> Option<String> {
        if !self.is_closed() {
            return None;
        }
        let reason = lock(&self.closed).as_ref().map(|c| c.reason().to_owned())?;
        Some(match lock(&self.afterword).as_deref() {
            Some(afterword) => format!("{reason}; {afterword}"),
            None => reason,
        })
    }

    /// Once closed, `afterword` follows the reason in [`Lifecycle::reason`] (replacing an
    /// earlier one): what became of the connection since, for calls still made on it.
    /// Ignored while open.
    pub(crate) fn set_afterword(&self, afterword: &str) {
        if self.is_closed() {
            *lock(&self.afterword) = Some(afterword.to_owned());
        }
    }

    /// Marks the connection closed for `why`; `false` if it already was (only the first
    /// caller goes on to tear it down, then calls [`Lifecycle::finish`]).
    pub(crate) fn begin_close(&self, why: &Closed) -> bool {
        let mut closed = lock(&self.closed);
        if closed.is_some() {
            return false;
        }
        *closed = Some(why.clone());
        self.is_closed.store(true, Ordering::Release);
        true
    }

    /// Wakes every waiter and runs every hook, once. A hook that panics is logged; the others
    /// still run.
    pub(crate) fn finish(&self, reason: &str) {
        self.token.cancel();
        let callbacks = std::mem::take(&mut lock(&self.hooks).callbacks);
        for (_, callback) in callbacks {
            run_hook(callback, reason);
        }
    }

    /// Resolves once closed.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }

    /// The token cancelled on closing.
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Registers `callback`; runs it at once if already closed. Returns its id.
    pub(crate) fn add_hook(&self, callback: DisconnectCallback) -> u64 {
        let mut hooks = lock(&self.hooks);
        let id = hooks.next_id;
        hooks.next_id += 1;
        if !self.token.is_cancelled() {
            hooks.callbacks.insert(id, callback);
            return id;
        }
        drop(hooks);
        run_hook(callback, &self.reason().unwrap_or_default());
        id
    }

    /// Takes a hook back; `false` if it already ran.
    pub(crate) fn remove_hook(&self, id: u64) -> bool {
        lock(&self.hooks).callbacks.remove(&id).is_some()
    }
}

fn run_hook(callback: DisconnectCallback, reason: &str) {
    if std::panic::catch_unwind(AssertUnwindSafe(|| callback(reason))).is_err() {
        tracing::warn!("a disconnect callback panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn closes_once_and_runs_each_hook_once_even_if_one_panics() {
        let life = Lifecycle::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        life.add_hook(Box::new(|_| panic!("a bad hook")));
        life.add_hook(Box::new(move |reason| {
            assert_eq!(reason, "bye");
            counted.fetch_add(1, Ordering::SeqCst);
        }));
        let cancelled = life.add_hook(Box::new(|_| unreachable!()));
        assert!(life.remove_hook(cancelled));
        assert!(life.begin_close(&Closed::Local("bye".into())));
        assert!(!life.begin_close(&Closed::Transport("again".into())));
        life.finish("bye");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(life.reason().as_deref(), Some("bye"));
        // A hook added after closing runs at once.
        let late = Arc::clone(&runs);
        life.add_hook(Box::new(move |_| {
            late.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn an_afterword_follows_the_reason_once_closed() {
        let life = Lifecycle::new();
        life.set_afterword("too early");
        assert!(life.begin_close(&Closed::Transport("lost".into())));
        assert_eq!(life.reason().as_deref(), Some("lost"));
        life.set_afterword("replaced");
        assert_eq!(life.reason().as_deref(), Some("lost; replaced"));
        life.set_afterword("closed");
        assert_eq!(life.reason().as_deref(), Some("lost; closed"));
    }
}
