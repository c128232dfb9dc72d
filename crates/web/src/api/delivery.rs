//! Delivery metrics over the API: a pipeline's and a team's figures over a
//! period (`?since=&until=`, or `?days=`), as the metrics pages show them.

use crate::AppState;
use crate::authz::ApiCtx;
use crate::delivery::{self, PeriodQuery};
use crate::error::AppResult;
use crate::extract::Query;
use crate::views::paths::parse_id;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use stagehand_domain::delivery::DeliveryMetrics;

fn body(scope: (&str, Value), metrics: &DeliveryMetrics) -> Response {
    let mut out = json!({ scope.0: scope.1 });
    if let (Some(out), Ok(Value::Object(figures))) =
        (out.as_object_mut(), serde_json::to_value(metrics))
    {
        out.extend(figures);
    }
    axum::Json(out).into_response()
}

/// Deployments into the pipeline's last stage, their lead time, failure
/// rate and time to restore, and approval waits into any of its stages.
pub(crate) async fn pipeline_metrics_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> AppResult<Response> {
    let period = q.period(delivery::today())?;
    let (pipeline, metrics) = delivery::of_pipeline(
        state.store.as_ref(),
        ctx.team_id(),
        parse_id(&id, "pipeline")?,
        period,
    )
    .await?;
    let last = pipeline.stages.last().map(
        |s| json!({ "id": s.id, "instance_id": s.instance_id, "instance_name": s.instance_name }),
    );
    let scope = json!({ "id": pipeline.id, "name": pipeline.name, "last_stage": last });
    Ok(body(("pipeline", scope), &metrics))
}

/// The same figures over every pipeline of the team (each into its own
/// last stage).
pub(crate) async fn team_metrics_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Query(q): Query<PeriodQuery>,
) -> AppResult<Response> {
    let period = q.period(delivery::today())?;
    let (pipelines, metrics) =
        delivery::of_team(state.store.as_ref(), ctx.team_id(), period).await?;
    let team = state.store.team(ctx.team_id()).await?;
    let scope = json!({ "id": team.id, "name": team.name, "pipelines": pipelines.len() });
    Ok(body(("team", scope), &metrics))
}
