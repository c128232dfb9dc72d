//! Prometheus metrics: what the server does (requests by route template,
//! promotions, runtime deploys, background jobs, the database pool), kept
//! by the `metrics` facade and rendered by `metrics-exporter-prometheus`.
//!
//! They are served only on their own address (`STAGEHAND_METRICS_BIND`),
//! never on the public one: route names and counts are not for users. With
//! no recorder installed (tests, or metrics off) every record is a no-op.

use crate::AppState;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Latency buckets in seconds: from a cached page to a large deploy.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same
/// handle) and describes every metric.
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    describe();
    gauge!("stagehand_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "stagehand_http_requests_total",
        "HTTP requests answered, by route template, method and status"
    );
    describe_histogram!(
        "stagehand_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to the response's headers, by route template, method and status"
    );
    describe_counter!(
        "stagehand_promotions_total",
        "Plays, rollbacks and decisions, by action and outcome (the promotion's status, or the error's code)"
    );
    describe_histogram!(
        "stagehand_promotion_duration_seconds",
        metrics::Unit::Seconds,
        "Time a play, rollback or decision took, runtime deploy included, by action"
    );
    describe_counter!(
        "stagehand_runtime_deploys_total",
        "Deploys sent to connected runtimes, by runtime kind and result"
    );
    describe_histogram!(
        "stagehand_runtime_deploy_duration_seconds",
        metrics::Unit::Seconds,
        "Time a runtime took to answer a deploy, by runtime kind"
    );
    describe_gauge!(
        "stagehand_db_pool_connections",
        "Database connections by state: in_use, idle, waiting (callers waiting for one), max"
    );
    describe_counter!(
        "stagehand_job_runs_total",
        "Background job runs on this replica, by job and result"
    );
    describe_histogram!(
        "stagehand_job_duration_seconds",
        metrics::Unit::Seconds,
        "Time a background job run took, by job"
    );
    describe_gauge!("stagehand_build_info", "The running version (always 1)");
}

/// Serves `GET /metrics` (and nothing else) on the metrics address until
/// the process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState, handle: PrometheusHandle) {
    let router = Router::new()
        .route("/metrics", get(render))
        .with_state((state, handle));
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "the metrics listener stopped");
    }
}

async fn render(State((state, handle)): State<(AppState, PrometheusHandle)>) -> Response {
    let pool = state.store.pool_stats();
    for (kind, n) in [
        ("in_use", pool.open.saturating_sub(pool.idle)),
        ("idle", pool.idle),
        ("waiting", pool.waiting),
        ("max", pool.max),
    ] {
        gauge!("stagehand_db_pool_connections", "state" => kind).set(f64::from(n));
    }
    let mut res = handle.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

/// Keeps the recorder's histograms bounded: run for the process's life.
pub async fn upkeep(handle: PrometheusHandle) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        handle.run_upkeep();
    }
}

/// The route template a response was served by, carried from inside the
/// router (where it is known) out to [`track`].
#[derive(Debug, Clone)]
struct Route(MatchedPath);

/// Runs inside every route: tells [`track`] which template matched.
pub(crate) async fn matched(path: MatchedPath, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    res.extensions_mut().insert(Route(path));
    res
}

/// Counts and times every request, by route template (`unmatched` for
/// paths no route serves: never the raw path, which anyone can vary).
/// A template's `{param}` is written `:param` (see [`route_label`]).
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let res = next.run(req).await;
    let route = res
        .extensions()
        .get::<Route>()
        .map_or_else(|| "unmatched".to_owned(), |r| route_label(r.0.as_str()));
    let status = res.status().as_u16().to_string();
    let labels = [
        ("route", route),
        ("method", method.to_owned()),
        ("status", status),
    ];
    counter!("stagehand_http_requests_total", &labels).increment(1);
    histogram!("stagehand_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    res
}

/// A method as a label: the standard ones, and `other` for any extension
/// method a client makes up (each would otherwise be a new series).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A route template as a label: `/teams/{team}` becomes `/teams/:team`,
/// which every Prometheus text parser and PromQL regex takes as it is.
fn route_label(template: &str) -> String {
    template.replace('{', ":").replace('}', "")
}

/// Records one play, rollback or decision and how it ended.
pub(crate) fn promotion<T>(
    action: &'static str,
    started: Instant,
    result: &crate::AppResult<T>,
    status: impl Fn(&T) -> String,
) {
    let outcome = match result {
        Ok(v) => status(v),
        Err(e) => e.code().to_owned(),
    };
    counter!("stagehand_promotions_total", "action" => action, "outcome" => outcome).increment(1);
    histogram!("stagehand_promotion_duration_seconds", "action" => action)
        .record(started.elapsed().as_secs_f64());
}

/// Records one deploy sent to a runtime.
pub(crate) fn runtime_deploy(kind: &str, result: &'static str, took: Duration) {
    counter!("stagehand_runtime_deploys_total", "kind" => kind.to_owned(), "result" => result)
        .increment(1);
    histogram!("stagehand_runtime_deploy_duration_seconds", "kind" => kind.to_owned())
        .record(took.as_secs_f64());
}

/// Records one run of a background job.
pub(crate) fn job_run(job: &'static str, ok: bool, took: Duration) {
    let result = if ok { "ok" } else { "failed" };
    counter!("stagehand_job_runs_total", "job" => job, "result" => result).increment(1);
    histogram!("stagehand_job_duration_seconds", "job" => job).record(took.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded_whatever_the_client_sends() {
        let made_up = axum::http::Method::from_bytes(b"PURGE-EVERYTHING").unwrap();
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&axum::http::Method::PATCH), "PATCH");
        assert_eq!(
            route_label("/api/v1/teams/{team}/pipelines"),
            "/api/v1/teams/:team/pipelines"
        );
    }
}
