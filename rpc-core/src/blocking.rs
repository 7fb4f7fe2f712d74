//! A blocking facade for programs without an async runtime of their own (a GUI event loop, a
//! plain command-line tool): [`Client`] runs a small tokio runtime on a background thread and
//! waits for each call on the calling thread.
//!
//! ```no_run
//! # use rpc_core::remote;
//! # #[remote] pub trait Calculator { async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32); }
//! # fn main() -> Result<(), rpc_core::CallError> {
//! let client = rpc_core::blocking::Client::connect("127.0.0.1:8992")?;
//! let calc: CalculatorRef = client.root()?;
//! let (sum, worker) = client.call(calc.calculate(42, 47))?;
//! # Ok(()) }
//! ```
//!
//! # Not inside a tokio runtime
//!
//! Its methods block the calling thread, so they refuse to run on a thread of a tokio
//! runtime (inside `#[tokio::main]`, `#[tokio::test]` or a spawned task), where blocking
//! would stall the runtime's other tasks: they fail with [`CallError::BlockingInRuntime`]
//! instead (and [`Client::wait`], which returns no `Result`, panics with the same message).
//! In async code, use the async [`crate::Client`] and `.await` its calls. Synchronous code
//! that must block belongs on a thread of its own (`std::thread::spawn`). A
//! `tokio::task::spawn_blocking` thread also counts as a runtime's thread (pbrs cannot tell it
//! from one running async code); there, wait for the async client's calls with
//! `tokio::runtime::Handle::current().block_on(...)`.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::ToSocketAddrs;
use tokio::runtime::Runtime;

use crate::call::CallFuture;
use crate::config::Config;
use crate::error::CallError;
use crate::object::RemoteRef;
use crate::tls::ClientTls;

/// A [`crate::Client`] whose methods block. Proxies obtained from it are the ordinary typed
/// proxies; pass their calls to [`Client::call`] to wait for them. Use it outside any tokio
/// runtime (see the [module docs](self)).
#[derive(Debug)]
pub struct Client {
    /// `None` only while dropping.
    inner: Option<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: crate::Client,
    runtime: Runtime,
}

impl Client {
    /// Connects over TCP with the default [`Config`].
    ///
    /// # Errors
    /// [`CallError::BlockingInRuntime`] on a thread of a tokio runtime; otherwise those of
    /// [`crate::Client::connect`].
    pub fn connect<A: ToSocketAddrs>(addr: A) -> Result<Client, CallError> {
        outside_runtime("connect")?;
        Client::connect_with(addr, Config::default())
    }

    /// Connects over TCP with `config`; errors as [`connect`](Client::connect).
    pub fn connect_with<A: ToSocketAddrs>(addr: A, config: Config) -> Result<Client, CallError> {
        let runtime = background_runtime("connect_with")?;
        let client = runtime.block_on(crate::Client::connect_with(addr, config))?;
        Ok(Client::new(client, runtime))
    }

    /// Connects over TLS; see [`crate::Client::connect_tls`]. Errors as
    /// [`connect`](Client::connect).
    pub fn connect_tls(addr: &str, tls: &ClientTls) -> Result<Client, CallError> {
        let runtime = background_runtime("connect_tls")?;
        let client = runtime.block_on(crate::Client::connect_tls(addr, tls))?;
        Ok(Client::new(client, runtime))
    }

    /// Connects to the object a sturdy URL names (see [`crate::Client::connect_url`]) and
    /// returns the client with the object's proxy. Errors as [`connect`](Client::connect).
    pub fn connect_url<R: RemoteRef>(url: &str) -> Result<(Client, R), CallError> {
        let runtime = background_runtime("connect_url")?;
        let object: R = runtime.block_on(crate::Client::connect_url(url))?;
        let connection = object
            .object()
            .connection()
            .expect("an object reached through a URL lives across a connection");
        let client = crate::Client::from_connection(connection.clone());
        Ok((Client::new(client, runtime), object))
    }

    fn new(client: crate::Client, runtime: Runtime) -> Client {
        Client {
            inner: Some(Inner { client, runtime }),
        }
    }

    fn inner_parts(&self) -> &Inner {
        self.inner
            .as_ref()
            .expect("present until the client is dropped")
    }

    /// Runs `future` to completion on the background runtime, unless this thread belongs to
    /// a tokio runtime.
    fn block_on<F: Future>(&self, method: &'static str, future: F) -> Result<F::Output, CallError> {
        outside_runtime(method)?;
        Ok(self.inner_parts().runtime.block_on(future))
    }

    /// The server's root object as a typed proxy.
    pub fn root<R: RemoteRef>(&self) -> Result<R, CallError> {
        self.block_on("root", self.inner().root())?
    }

    /// Waits for a call made through any proxy of this client.
    pub fn call<R: DeserializeOwned>(&self, call: CallFuture<R>) -> Result<R, CallError> {
        self.block_on("call", call)?
    }

    /// Waits for any future, e.g. `futures::future::join_all` of several calls.
    ///
    /// # Panics
    /// On a thread of a tokio runtime, with the message of [`CallError::BlockingInRuntime`]
    /// (the other methods return that error; this one has no `Result` to put it in).
    pub fn wait<F: Future>(&self, future: F) -> F::Output {
        self.block_on("wait", future)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Calls `method` on the root object, untyped, and waits for the answer.
    pub fn call_remote<A, R>(&self, method: &str, args: A) -> Result<R, CallError>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        self.block_on("call_remote", self.inner().call_remote(method, args))?
    }

    /// The async client inside, for anything this facade does not cover.
    pub fn inner(&self) -> &crate::Client {
        &self.inner_parts().client
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let Some(Inner { client, runtime }) = self.inner.take() else {
            return;
        };
        // The connection closes while the runtime still runs.
        drop(client);
        if tokio::runtime::Handle::try_current().is_ok() {
            // Dropped on a runtime's thread, where waiting for the background runtime to
            // stop would panic ("Cannot drop a runtime in a context where blocking is not
            // allowed"): let it stop by itself.
            runtime.shutdown_background();
        }
    }
}

/// `Err(BlockingInRuntime)` when this thread belongs to a tokio runtime, where blocking would
/// panic or stall it.
fn outside_runtime(method: &'static str) -> Result<(), CallError> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Err(CallError::BlockingInRuntime { method }),
        Err(_) => Ok(()),
    }
}

/// The small runtime a blocking client runs its connection on. Checks first that this thread
/// is not a runtime's: the new runtime could not even be dropped there.
fn background_runtime(method: &'static str) -> Result<Runtime, CallError> {
    outside_runtime(method)?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("pbrs-blocking")
        .enable_all()
        .build()
        .map_err(|e| CallError::io("could not start the background runtime", e))
}
