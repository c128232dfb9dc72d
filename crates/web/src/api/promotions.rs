//! Promotions over the API: the filtered history with cursor pagination,
//! one promotion, approve / reject, rollback; and the audit log.

use crate::AppState;
use crate::authz::ApiCtx;
use crate::error::{AppError, AppResult};
use crate::extract::Query;
use crate::views::listing::{
    cursor_filter, id_filter, paginate, status_filter, storable, text_filter,
};
use crate::views::paths::parse_id;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use stagehand_domain::{AuditEventId, PromotionId};
use stagehand_store::{AuditFilter, Decision, PromotionFilter};

/// Rows per page unless `limit` says otherwise (at most 500).
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;

/// The page size: blank is the default.
pub(super) fn limit(raw: Option<&str>) -> AppResult<i64> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| AppError::invalid("limit", "must be a whole number from 1 to 500")),
    }
}

/// Times in RFC 3339, e.g. `2026-11-23T12:00:00Z`, in the years 1 to 9999
/// (UTC).
fn parse_time(raw: &Option<String>, field: &'static str) -> AppResult<Option<DateTime<Utc>>> {
    raw.as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    AppError::invalid(field, "must be an RFC 3339 time, e.g. 2026-11-23T12:00:00Z")
                })
                .and_then(|t| storable(t.to_utc(), field))
        })
        .transpose()
}

#[derive(Deserialize)]
pub(crate) struct HistoryQuery {
    pipeline: Option<String>,
    stage: Option<String>,
    actor: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

pub(crate) async fn list_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Query(q): Query<HistoryQuery>,
) -> AppResult<Response> {
    let size = limit(q.limit.as_deref())?;
    let filter = PromotionFilter {
        pipeline: id_filter(q.pipeline.as_deref(), "pipeline")?.map(stagehand_domain::PipelineId),
        stage: id_filter(q.stage.as_deref(), "stage")?.map(stagehand_domain::StageId),
        actor: text_filter(q.actor.as_deref(), "actor")?,
        status: status_filter(q.status.as_deref())?,
        since: parse_time(&q.since, "since")?,
        until: parse_time(&q.until, "until")?,
        before: cursor_filter(q.cursor.as_deref())?.map(|(at, id)| (at, PromotionId(id))),
        limit: size + 1,
    };
    let mut found = state
        .store
        .promotion_history(ctx.team_id(), &filter)
        .await?;
    let next = paginate(&mut found, size, |p| (p.created_at, p.id.0));
    Ok(axum::Json(json!({ "promotions": found, "next_cursor": next })).into_response())
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let id: PromotionId = parse_id(&id, "promotion")?;
    let promotion = state.store.promotion(ctx.team_id(), id).await?;
    let approvals = state.store.approvals(ctx.team_id(), id).await?;
    let mut body = serde_json::to_value(&promotion).unwrap_or_default();
    body["approvals"] = json!(approvals);
    Ok(axum::Json(body).into_response())
}

/// Approve's and reject's optional body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    /// Why; kept with the decision and in the audit log.
    comment: Option<String>,
}

async fn decide(
    state: &AppState,
    ctx: &ApiCtx,
    id: &str,
    decision: Decision,
    body: DecisionBody,
) -> AppResult<Response> {
    let promotion = crate::deploy::decide(
        state,
        ctx.team_id(),
        parse_id(id, "promotion")?,
        decision,
        body.comment.as_deref(),
        &ctx.actor(),
    )
    .await?;
    Ok(axum::Json(promotion).into_response())
}

pub(crate) async fn approve_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
    super::OptionalJson(body): super::OptionalJson<DecisionBody>,
) -> AppResult<Response> {
    decide(&state, &ctx, &id, Decision::Approve, body).await
}

pub(crate) async fn reject_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
    super::OptionalJson(body): super::OptionalJson<DecisionBody>,
) -> AppResult<Response> {
    decide(&state, &ctx, &id, Decision::Reject, body).await
}

pub(crate) async fn rollback_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let promotion = crate::deploy::rollback(
        &state,
        ctx.team_id(),
        parse_id(&id, "promotion")?,
        None,
        &ctx.actor(),
    )
    .await?;
    // Into a protected instance, the rollback is a request: 202.
    let status = if promotion.status == stagehand_domain::PromotionStatus::PendingApproval {
        axum::http::StatusCode::ACCEPTED
    } else {
        axum::http::StatusCode::OK
    };
    Ok((status, axum::Json(promotion)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    actor: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

pub(crate) async fn audit_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Query(q): Query<AuditQuery>,
) -> AppResult<Response> {
    let size = limit(q.limit.as_deref())?;
    let filter = AuditFilter {
        actor: text_filter(q.actor.as_deref(), "actor")?,
        kind: text_filter(q.kind.as_deref(), "kind")?,
        since: parse_time(&q.since, "since")?,
        until: parse_time(&q.until, "until")?,
        before: cursor_filter(q.cursor.as_deref())?.map(|(at, id)| (at, AuditEventId(id))),
        limit: size + 1,
    };
    let mut found = state
        .store
        .audit_history(Some(ctx.team_id()), &filter)
        .await?;
    let next = paginate(&mut found, size, |e| (e.created_at, e.id.0));
    Ok(axum::Json(json!({ "events": found, "next_cursor": next })).into_response())
}

/// Walks the team's tamper-evident audit chain: `{"checked", "intact",
/// "first_break": {"seq", "event_id", "reason"}}`.
pub(crate) async fn audit_verify_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
) -> AppResult<Response> {
    let report = state.store.verify_audit_chain(Some(ctx.team_id())).await?;
    Ok(axum::Json(report).into_response())
}
