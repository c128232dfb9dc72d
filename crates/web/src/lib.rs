//! Stagehand's HTTP server. [`app`] builds the router so tests and `main`
//! serve the same thing; [`serve`] runs it until a shutdown signal, letting
//! in-flight requests finish, with every connection on a clock
//! ([`ConnectionLimits`]).
//!
//! Every route, with the permission it needs, is in [`routes`]; a request
//! passes [`authz`] (session, CSRF, team permission) before its handler.

pub mod api;
mod assets;
pub mod auth;
pub mod authz;
pub mod client_addr;
mod config;
mod delivery;
pub mod deploy;
mod error;
mod extract;
mod health;
pub mod jobs;
pub mod metrics;
mod play;
pub mod retention;
pub mod routes;
mod scrub;
mod security;
mod server;
mod views;

pub use config::{ConnectionLimits, LoginThrottle, RetentionOptions, RuntimeOptions, WebConfig};
pub use error::{AppError, AppResult};

use axum::Router;
use stagehand_store::Store;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::LatencyUnit;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<WebConfig>,
    /// Runtime clients, kept between requests (a Node-RED session token
    /// costs the runtime a bcrypt check to mint).
    pub(crate) runtimes: Arc<deploy::Clients>,
    /// Set once a shutdown began: `/readyz` answers 503 from then on.
    draining: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: WebConfig) -> Self {
        Self {
            store,
            config: Arc::new(config),
            runtimes: Arc::default(),
            draining: Arc::default(),
        }
    }

    /// Marks the server as going away: load balancers see `/readyz` fail
    /// and stop sending it requests, while it still serves them.
    pub fn begin_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    routes::router(&state)
        .route_layer(axum::middleware::from_fn(metrics::matched))
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn(drop_unsafe_request_id))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    // One line per request at INFO (status, latency), in
                    // its span; a 5xx is not logged again here: the error
                    // itself was, with its cause, where it happened, and a
                    // 503 from /readyz while draining is no error.
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_response(
                            DefaultOnResponse::new()
                                .level(tracing::Level::INFO)
                                .latency_unit(LatencyUnit::Micros),
                        )
                        .on_failure(()),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(axum::middleware::from_fn(metrics::track))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    client_addr::resolve,
                ))
                .layer(axum::middleware::from_fn(security::headers))
                .layer(axum::middleware::from_fn(views::flash::clear))
                .layer(axum::middleware::from_fn(error::render_errors))
                .layer(axum::extract::DefaultBodyLimit::max(config::MAX_BODY_BYTES)),
        )
        .with_state(state)
}

/// A caller's `x-request-id` is kept (a proxy's id ties its logs to ours)
/// only when it is 1 to 128 of `A-Z a-z 0-9 . _ -`; anything else, which
/// could forge fields in a text log, is replaced by a fresh id.
async fn drop_unsafe_request_id(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let safe = |v: &[u8]| {
        (1..=128).contains(&v.len())
            && v.iter()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
    };
    if req
        .headers()
        .get("x-request-id")
        .is_some_and(|v| !safe(v.as_bytes()))
    {
        req.headers_mut().remove("x-request-id");
    }
    next.run(req).await
}

/// Every log line written while serving a request carries its id (the
/// `x-request-id` the response returns) and its route template; never the
/// query string, which may hold a token.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    )
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for
/// in-flight requests to finish. Slow and idle connections are cut off and
/// the number of connections is capped, as `state.config.connections` says.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.connections.clone();
    server::run(listener, app(state), limits, shutdown).await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed
/// when this is called, not when the future is first polled: a SIGTERM
/// that arrives between "listening" and the accept loop's first turn (a
/// rolling restart of a pod that just started) would otherwise end the
/// process with the default action instead of a drain.
///
/// # Errors
/// When a handler cannot be installed.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    #[cfg(unix)]
    let received = async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    };
    #[cfg(not(unix))]
    let received = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    Ok(async move {
        received.await;
        tracing::info!("shutdown signal received; finishing in-flight requests");
    })
}
