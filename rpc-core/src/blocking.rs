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
/// proxies; pass their calls to [`Client::call`] to wait for them.
#[derive(Debug)]
pub struct Client {
    // Dropped before the runtime, so the connection closes while the runtime still runs.
    client: crate::Client,
    runtime: Runtime,
}

impl Client {
    /// Connects over TCP with the default [`Config`].
    pub fn connect<A: ToSocketAddrs>(addr: A) -> Result<Client, CallError> {
        Client::connect_with(addr, Config::default())
    }

    /// Connects over TCP with `config`.
    pub fn connect_with<A: ToSocketAddrs>(addr: A, config: Config) -> Result<Client, CallError> {
        let runtime = background_runtime()?;
        let client = runtime.block_on(crate::Client::connect_with(addr, config))?;
        Ok(Client { client, runtime })
    }

    /// Connects over TLS; see [`crate::Client::connect_tls`].
    pub fn connect_tls(addr: &str, tls: &ClientTls) -> Result<Client, CallError> {
        let runtime = background_runtime()?;
        let client = runtime.block_on(crate::Client::connect_tls(addr, tls))?;
        Ok(Client { client, runtime })
    }

    /// Connects to the object a sturdy URL names (see [`crate::Client::connect_url`]) and
    /// returns the client with the object's proxy.
    pub fn connect_url<R: RemoteRef>(url: &str) -> Result<(Client, R), CallError> {
        let runtime = background_runtime()?;
        let object: R = runtime.block_on(crate::Client::connect_url(url))?;
        let connection = object
            .object()
            .connection()
            .expect("an object reached through a URL lives across a connection");
        let client = crate::Client::from_connection(connection.clone());
        Ok((Client { client, runtime }, object))
    }

    /// The server's root object as a typed proxy.
    pub fn root<R: RemoteRef>(&self) -> Result<R, CallError> {
        self.runtime.block_on(self.client.root())
    }

    /// Waits for a call made through any proxy of this client.
    pub fn call<R: DeserializeOwned>(&self, call: CallFuture<R>) -> Result<R, CallError> {
        self.runtime.block_on(call)
    }

    /// Waits for any future, e.g. `futures::future::join_all` of several calls.
    pub fn wait<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Calls `method` on the root object, untyped, and waits for the answer.
    pub fn call_remote<A, R>(&self, method: &str, args: A) -> Result<R, CallError>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        self.call(self.client.call_remote(method, args))
    }

    /// The async client inside, for anything this facade does not cover.
    pub fn inner(&self) -> &crate::Client {
        &self.client
    }
}

/// The small runtime a blocking client runs its connection on.
fn background_runtime() -> Result<Runtime, CallError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("pbrs-blocking")
        .enable_all()
        .build()
        .map_err(|e| CallError::io("could not start the background runtime", e))
}
