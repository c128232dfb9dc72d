//! The JSON API of connected instances: connect, disconnect, status, test
//! and pull. Credentials go in once and never come back out.

use super::instances::InstanceBody;
use crate::AppState;
use crate::authz::ApiCtx;
use crate::deploy::{self, ConnectRequest};
use crate::error::{AppError, AppResult};
use crate::views::paths::parse_id;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stagehand_domain::InstanceId;
use stagehand_runtime::{RuntimeAuth, RuntimeKind};
use stagehand_store::{RuntimeLink, RuntimeState};

fn instance_id(raw: &str) -> AppResult<InstanceId> {
    parse_id(raw, "instance")
}

/// A connected instance's runtime as the API shows it: never credentials.
#[derive(Debug, Serialize)]
pub(crate) struct RuntimeBody {
    kind: String,
    url: String,
    state: RuntimeState,
    /// What the last check said, when it was not in sync.
    state_detail: Option<String>,
    /// The runtime's revision when Stagehand last pulled or deployed.
    revision: Option<String>,
    synced_at: Option<DateTime<Utc>>,
    last_pull_at: Option<DateTime<Utc>>,
    checked_at: Option<DateTime<Utc>>,
    connected_at: DateTime<Utc>,
    connected_by: String,
}

impl From<RuntimeLink> for RuntimeBody {
    fn from(l: RuntimeLink) -> Self {
        Self {
            kind: l.kind,
            url: l.url,
            state: l.state,
            state_detail: l.state_detail,
            revision: l.revision,
            synced_at: l.synced_at,
            last_pull_at: l.last_pull_at,
            checked_at: l.checked_at,
            connected_at: l.connected_at,
            connected_by: l.connected_by,
        }
    }
}

/// The runtime's state, looked at now (a runtime that does not answer in
/// the page budget shows its last known state).
pub(crate) async fn runtime_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let id = instance_id(&id)?;
    let team = ctx.team_id();
    let instance = state.store.instance(team, id).await?;
    let link = deploy::link_now(&state, team, id, chrono::Duration::zero())
        .await?
        .ok_or_else(|| {
            AppError::Conflict(format!("{} is not connected to a runtime", instance.name))
        })?;
    Ok(axum::Json(RuntimeBody::from(link)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectBody {
    kind: RuntimeKind,
    url: String,
    auth: RuntimeAuth,
}

pub(crate) async fn runtime_put(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
    super::Json(body): super::Json<ConnectBody>,
) -> AppResult<Response> {
    let id = instance_id(&id)?;
    let link = deploy::connect(
        &state,
        ctx.team_id(),
        id,
        ConnectRequest {
            kind: body.kind,
            url: body.url,
            auth: body.auth,
        },
        &ctx.actor(),
    )
    .await?;
    Ok(axum::Json(RuntimeBody::from(link)).into_response())
}

pub(crate) async fn runtime_delete(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let id = instance_id(&id)?;
    state
        .store
        .disconnect_runtime(ctx.team_id(), id, &ctx.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// "Test connection": authenticates and reads the revision. A runtime
/// that refuses or does not answer is a 502 with `unreachable` or
/// `auth_failed`.
pub(crate) async fn runtime_test_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let link = deploy::test_connection(&state, ctx.team_id(), instance_id(&id)?).await?;
    Ok(axum::Json(RuntimeBody::from(link)).into_response())
}

/// Pull: the runtime's flows and values become the instance's.
pub(crate) async fn pull_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let id = instance_id(&id)?;
    let instance = deploy::pull(&state, ctx.team_id(), id, &ctx.actor()).await?;
    Ok(axum::Json(InstanceBody::new(instance, &ctx.permissions)).into_response())
}
