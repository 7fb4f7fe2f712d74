//! The broker's HTTP side, next to its pbrs port (`broker-server --http ADDR`), with axum:
//!
//! - `/`: a live status page: the queued workers in queue order with their address,
//!   capacity, load, spare capacity, hand-outs and last update, and a chart of hand-outs per
//!   second over the last five minutes. Plain HTML, CSS and JavaScript built into the
//!   program (nothing fetched from elsewhere); it polls `/status.json` every second.
//! - `/status.json`: [`BrokerService::status`] as JSON.
//! - `/metrics`: the Prometheus text format, rendered by the [`PrometheusHandle`] it was
//!   given (see [`crate::telemetry`] on who installs the recorder); without one, 404 with a
//!   message saying so.
//! - `/healthz`: `ok`, for liveness checks.
//!
//! Everything is read-only: nothing here changes the queue.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::service::BrokerService;
use crate::status::Status;

/// The status page, built into the program.
const PAGE: &str = include_str!("page.html");

/// The Prometheus text format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the handlers read.
#[derive(Clone)]
struct Shared {
    service: BrokerService,
    metrics: Option<PrometheusHandle>,
}

/// The HTTP side of a broker, bound and ready to [`run`](Self::run).
pub struct HttpSide {
    listener: TcpListener,
    router: Router,
}

impl std::fmt::Debug for HttpSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSide")
            .field("local_addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl HttpSide {
    /// Serves `service`'s status, and `metrics` when given, on `listener`.
    pub fn new(
        listener: TcpListener,
        service: BrokerService,
        metrics: Option<PrometheusHandle>,
    ) -> Self {
        HttpSide {
            listener,
            router: router(service, metrics),
        }
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// If the listener's address cannot be read.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets the requests in progress finish.
    ///
    /// # Errors
    /// When accepting connections fails for good.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let addr = self.listener.local_addr()?;
        tracing::info!(%addr, "http serving");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!(%addr, "http stopped");
        Ok(())
    }
}

/// The routes of the HTTP side (see the [module docs](self)), for a program that serves
/// them itself, e.g. nested in its own axum router.
pub fn router(service: BrokerService, metrics: Option<PrometheusHandle>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/status.json", get(status))
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .with_state(Shared { service, metrics })
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn status(State(shared): State<Shared>) -> axum::Json<Status> {
    axum::Json(shared.service.status())
}

async fn render_metrics(State(shared): State<Shared>) -> Response {
    let Some(handle) = shared.metrics else {
        let why = "no metrics here: this broker was started without a Prometheus recorder\n";
        return (StatusCode::NOT_FOUND, why).into_response();
    };
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], handle.render()).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}
