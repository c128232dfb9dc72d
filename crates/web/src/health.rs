//! Liveness and readiness probes for load balancers and orchestrators.
//! Both are public: they reveal nothing but whether the server and its
//! database answer.

use crate::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use stagehand_store::BackendKind;

/// The process is up.
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The process can serve: it is not shutting down (see
/// [`AppState::begin_draining`]) and its database takes a write (see
/// [`stagehand_store::Store::ready`]) within [`WebConfig::ready_timeout`],
/// so a probe answers in bounded time even when the database does not.
///
/// [`WebConfig::ready_timeout`]: crate::WebConfig::ready_timeout
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = match state.store.kind() {
        BackendKind::Postgres => "postgres",
        BackendKind::Sqlite => "sqlite",
    };
    if state.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining", "database": database })),
        );
    }
    let probe = tokio::time::timeout(state.config.ready_timeout, state.store.ready()).await;
    match probe {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": database })),
        ),
        failed => {
            match failed {
                Ok(Err(e)) => tracing::warn!(error = %e, "readiness check failed"),
                _ => tracing::warn!(
                    timeout = ?state.config.ready_timeout,
                    "readiness check failed: the database did not answer in time"
                ),
            }
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": database })),
            )
        }
    }
}
