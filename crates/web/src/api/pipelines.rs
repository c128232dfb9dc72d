//! Pipelines and play over the API: list, read, preview, promote.

use crate::AppState;
use crate::authz::ApiCtx;
use crate::error::{AppError, AppResult};
use crate::views::paths::parse_id;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use stagehand_domain::{PipelineId, StageId};
use stagehand_store::PromotionRequest;

fn ids(pipeline: &str, stage: &str) -> AppResult<(PipelineId, StageId)> {
    Ok((parse_id(pipeline, "pipeline")?, parse_id(stage, "stage")?))
}

pub(crate) async fn list_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
) -> AppResult<Response> {
    let pipelines = state.store.pipelines(ctx.team_id()).await?;
    Ok(axum::Json(json!({ "pipelines": pipelines })).into_response())
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let pipeline = state
        .store
        .pipeline(ctx.team_id(), parse_id(&id, "pipeline")?)
        .await?;
    Ok(axum::Json(pipeline).into_response())
}

/// The plan of a play on the stage, changing nothing.
pub(crate) async fn preview_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path((pipeline, stage)): Path<(String, String)>,
) -> AppResult<Response> {
    let (pipeline, stage) = ids(&pipeline, &stage)?;
    let preview = state.store.preview(ctx.team_id(), pipeline, stage).await?;
    Ok(axum::Json(preview).into_response())
}

/// Play's optional body.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlayBody {
    /// Into a connected target that changed in its runtime since Stagehand
    /// last saw it: overwrite it anyway (audited).
    #[serde(default)]
    overwrite_drift: bool,
    /// Promote this snapshot of the source instance instead of its current
    /// state.
    #[serde(default)]
    snapshot: Option<stagehand_domain::SnapshotId>,
}

/// Longest `Idempotency-Key` accepted (the store checks it too).
const MAX_KEY: usize = 200;

/// A play's `Idempotency-Key` and `If-Match: "<target version>"`.
fn play_headers(headers: &HeaderMap) -> AppResult<(Option<String>, Option<i64>)> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= MAX_KEY)
                .ok_or_else(|| {
                    AppError::invalid(
                        "Idempotency-Key",
                        "must be 1 to 200 visible ASCII characters",
                    )
                })?;
            Some(k.to_owned())
        }
    };
    let expected_target_version = match headers.get("if-match") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .map(|s| s.trim().trim_matches('"'))
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| {
                    AppError::invalid("If-Match", "must be the target version, e.g. \"7\"")
                })?,
        ),
    };
    Ok((key, expected_target_version))
}

/// Only the request that created the promotion says so (201, or 202 for
/// a request awaiting approval); a retry with the same idempotency key
/// (even a concurrent one) gets 200.
fn played(played: stagehand_store::Played) -> Response {
    let status = if played.replayed {
        StatusCode::OK
    } else if played.promotion.status == stagehand_domain::PromotionStatus::PendingApproval {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    (status, axum::Json(played.promotion)).into_response()
}

/// Play. `Idempotency-Key` makes a retry return the first promotion;
/// `If-Match: "<target version>"` refuses a target that changed since the
/// caller's preview. Answers 201 with the promotion, `applied` or
/// `pending_approval`; 200 for a retry.
pub(crate) async fn promote_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path((pipeline, stage)): Path<(String, String)>,
    headers: HeaderMap,
    super::OptionalJson(body): super::OptionalJson<PlayBody>,
) -> AppResult<Response> {
    let (pipeline, stage) = ids(&pipeline, &stage)?;
    let (idempotency_key, expected_target_version) = play_headers(&headers)?;
    let result = crate::play::promote(
        &state,
        PromotionRequest {
            team: ctx.team_id(),
            pipeline,
            stage,
            actor: ctx.actor(),
            idempotency_key,
            expected_target_version,
            overwrite_drift: body.overwrite_drift,
            expected_source_version: None,
            source_snapshot: body.snapshot,
            restore: false,
        },
    )
    .await?;
    Ok(played(result))
}

/// `?snapshot=`: the snapshot of the stage's instance to restore.
#[derive(serde::Deserialize)]
pub(crate) struct RestoreQuery {
    snapshot: Option<String>,
}

fn snapshot_to_restore(raw: Option<&str>) -> AppResult<stagehand_domain::SnapshotId> {
    let raw = raw
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AppError::invalid("snapshot", "name the snapshot to restore"))?;
    raw.parse()
        .map_err(|_| AppError::invalid("snapshot", "is not a snapshot id"))
}

/// The plan of restoring the stage's instance to one of its snapshots,
/// changing nothing: the same shape as a play's preview, the snapshot as
/// its source.
pub(crate) async fn restore_preview_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path((pipeline, stage)): Path<(String, String)>,
    crate::extract::Query(q): crate::extract::Query<RestoreQuery>,
) -> AppResult<Response> {
    let (pipeline, stage) = ids(&pipeline, &stage)?;
    // Ids first: another team's pipeline does not exist, snapshot or not.
    state.store.pipeline(ctx.team_id(), pipeline).await?;
    let snapshot = snapshot_to_restore(q.snapshot.as_deref())?;
    let preview = state
        .store
        .restore_preview(ctx.team_id(), pipeline, stage, snapshot)
        .await?;
    Ok(axum::Json(preview).into_response())
}

/// Restore's body.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestoreBody {
    /// The snapshot of the stage's instance to restore (required; read
    /// after the ids, so another team's pipeline is a 404 either way).
    #[serde(default)]
    snapshot: Option<String>,
    #[serde(default)]
    overwrite_drift: bool,
}

/// Restores the stage's instance to one of its snapshots: a promotion of
/// the snapshot into the instance, with play's headers and answers.
pub(crate) async fn restore_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path((pipeline, stage)): Path<(String, String)>,
    headers: HeaderMap,
    super::OptionalJson(body): super::OptionalJson<RestoreBody>,
) -> AppResult<Response> {
    let (pipeline, stage) = ids(&pipeline, &stage)?;
    let (idempotency_key, expected_target_version) = play_headers(&headers)?;
    state.store.pipeline(ctx.team_id(), pipeline).await?;
    let result = crate::play::promote(
        &state,
        PromotionRequest {
            team: ctx.team_id(),
            pipeline,
            stage,
            actor: ctx.actor(),
            idempotency_key,
            expected_target_version,
            overwrite_drift: body.overwrite_drift,
            expected_source_version: None,
            source_snapshot: Some(snapshot_to_restore(body.snapshot.as_deref())?),
            restore: true,
        },
    )
    .await?;
    Ok(played(result))
}

#[derive(serde::Deserialize)]
pub(crate) struct NewPipeline {
    name: String,
}

pub(crate) async fn create_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    super::Json(body): super::Json<NewPipeline>,
) -> AppResult<Response> {
    let name = stagehand_domain::Name::parse("name", &body.name)?;
    let pipeline = state
        .store
        .create_pipeline(ctx.team_id(), name, &ctx.actor())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(pipeline)).into_response())
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    state
        .store
        .delete_pipeline(ctx.team_id(), parse_id(&id, "pipeline")?, &ctx.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `{"instance": id, "position": n}` (0-based; omitted appends).
#[derive(serde::Deserialize)]
pub(crate) struct NewStage {
    instance: String,
    position: Option<usize>,
}

pub(crate) async fn add_stage_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
    super::Json(body): super::Json<NewStage>,
) -> AppResult<Response> {
    let instance = body
        .instance
        .parse()
        .map_err(|_| AppError::invalid("instance", "is not an instance id"))?;
    let pipeline = state
        .store
        .add_stage(
            ctx.team_id(),
            parse_id(&id, "pipeline")?,
            instance,
            body.position,
            &ctx.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(pipeline)).into_response())
}

pub(crate) async fn remove_stage_delete(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path((pipeline, stage)): Path<(String, String)>,
) -> AppResult<Response> {
    let (pipeline, stage) = ids(&pipeline, &stage)?;
    let updated = state
        .store
        .remove_stage(ctx.team_id(), pipeline, stage, &ctx.actor())
        .await?;
    Ok(axum::Json(updated).into_response())
}

/// `{"order": [stage ids]}`: every stage exactly once.
#[derive(serde::Deserialize)]
pub(crate) struct StageOrder {
    order: Vec<String>,
}

pub(crate) async fn reorder_put(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
    super::Json(body): super::Json<StageOrder>,
) -> AppResult<Response> {
    let order = body
        .order
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|_| AppError::invalid("order", "holds something that is not a stage id"))
        })
        .collect::<AppResult<Vec<StageId>>>()?;
    let updated = state
        .store
        .reorder_stages(
            ctx.team_id(),
            parse_id(&id, "pipeline")?,
            order,
            &ctx.actor(),
        )
        .await?;
    Ok(axum::Json(updated).into_response())
}

/// `{"name": "…"}`: renames the pipeline.
pub(crate) async fn patch(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
    super::Json(body): super::Json<NewPipeline>,
) -> AppResult<Response> {
    let name = stagehand_domain::Name::parse("name", &body.name)?;
    let pipeline = state
        .store
        .rename_pipeline(
            ctx.team_id(),
            parse_id(&id, "pipeline")?,
            name,
            &ctx.actor(),
        )
        .await?;
    Ok(axum::Json(pipeline).into_response())
}
