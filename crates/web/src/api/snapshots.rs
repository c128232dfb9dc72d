//! Snapshots over the API: an instance's snapshots, one snapshot (its
//! flows' hashes and its env keys, never a value), its download (the flow
//! documents, in the shape `stagehand flows push` takes back), and the
//! comparison of any two of the team's snapshots, across instances too, in
//! the plan shape a preview has.

use crate::AppState;
use crate::authz::ApiCtx;
use crate::error::{AppError, AppResult};
use crate::extract::Query;
use crate::views::paths::parse_id;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use stagehand_domain::{InstanceId, PromotionPlan, SnapshotId, TeamId};
use stagehand_store::Snapshot;

fn snapshot_id(raw: &str) -> AppResult<SnapshotId> {
    parse_id(raw, "snapshot")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<String>,
}

/// `GET /instances/{id}/snapshots`: newest first.
pub(crate) async fn list_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> AppResult<Response> {
    let instance: InstanceId = parse_id(&id, "instance")?;
    let limit = super::promotions::limit(q.limit.as_deref())?;
    // Another team's instance does not exist here.
    state.store.instance(ctx.team_id(), instance).await?;
    let found = state
        .store
        .snapshots(ctx.team_id(), instance, limit)
        .await?;
    Ok(axum::Json(json!({ "snapshots": found })).into_response())
}

/// `GET /snapshots/{id}`: what it holds, by hash, and its keys.
pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let snapshot = state
        .store
        .snapshot(ctx.team_id(), snapshot_id(&id)?)
        .await?;
    Ok(axum::Json(snapshot).into_response())
}

/// `GET /snapshots/{id}/download`: the flow documents themselves, as a
/// file: `{"snapshot": …, "flows": {name: document}, "env_keys": [...]}`,
/// which `stagehand flows push --instance ID FILE` pushes back.
pub(crate) async fn download_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    file(&state, ctx.team_id(), snapshot_id(&id)?).await
}

/// The download of a snapshot of the team, for the API and the UI alike.
pub(crate) async fn file(state: &AppState, team: TeamId, id: SnapshotId) -> AppResult<Response> {
    let snapshot = state.store.snapshot(team, id).await?;
    let flows: Map<String, Value> = state
        .store
        .snapshot_flows(team, id)
        .await?
        .into_iter()
        .map(|(name, content)| (name.as_str().to_owned(), content.to_value()))
        .collect();
    let body = json!({
        "snapshot": {
            "id": snapshot.id,
            "instance_id": snapshot.instance_id,
            "reason": snapshot.reason,
            "content_hash": snapshot.content_hash,
            "created_at": snapshot.created_at,
        },
        "flows": flows,
        "env_keys": snapshot.env_keys,
    });
    let mut res = axum::Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"snapshot-{}.json\"",
        snapshot.id
    )) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompareQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /snapshots/compare?from=A&to=B`: what changed from A to B, in the
/// plan shape of a preview (B as the source, A as the target: the plan
/// that would turn A into B). Any two snapshots of the team, of one
/// instance or of two ("does prod match qa?": `equal`).
pub(crate) async fn compare_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Query(q): Query<CompareQuery>,
) -> AppResult<Response> {
    let required = |raw: Option<String>, field: &'static str| -> AppResult<SnapshotId> {
        let raw = raw
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| AppError::invalid(field, "a snapshot id is required"))?;
        raw.trim()
            .parse()
            .map_err(|_| AppError::invalid(field, "must be a snapshot id"))
    };
    let (from, to) = (required(q.from, "from")?, required(q.to, "to")?);
    let team = ctx.team_id();
    let (a, b) = tokio::try_join!(
        state.store.snapshot(team, from),
        state.store.snapshot(team, to)
    )?;
    let plan = PromotionPlan::between(&b.state(), &a.state());
    let meta = |s: &Snapshot| {
        json!({ "id": s.id, "instance_id": s.instance_id, "reason": s.reason,
                "content_hash": s.content_hash, "created_at": s.created_at })
    };
    Ok(axum::Json(json!({
        "from": meta(&a),
        "to": meta(&b),
        "equal": a.content_hash == b.content_hash,
        "summary": plan.summary(),
        "plan": plan,
    }))
    .into_response())
}
