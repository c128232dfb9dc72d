//! Instances, flows and env vars over the API. Env values are never in a
//! response, except from the reveal endpoint (`envvar.reveal`, audited).

use super::Json;
use crate::AppState;
use crate::authz::ApiCtx;
use crate::error::{AppError, AppResult};
use crate::views::paths::parse_id;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stagehand_domain::{
    EnvKey, FlowContent, FlowName, InstanceId, Name, Permission, PermissionSet, SecretValue, TeamId,
};
use stagehand_store::Instance;
use std::collections::BTreeMap;

/// An instance as the API shows it to its caller: the settings' values
/// only to a caller who may read them (`instance.edit`, see
/// [`PermissionSet::may_read_settings`]); to every caller, which top-level
/// keys exist and when the settings last changed.
#[derive(Debug, Serialize)]
pub(crate) struct InstanceBody {
    id: InstanceId,
    team_id: TeamId,
    name: Name,
    #[serde(skip_serializing_if = "Option::is_none")]
    settings: Option<Value>,
    setting_keys: Vec<String>,
    settings_updated_at: DateTime<Utc>,
    protection: stagehand_domain::Protection,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl InstanceBody {
    pub(crate) fn new(instance: Instance, permissions: &PermissionSet) -> Self {
        Self {
            setting_keys: instance.setting_keys(),
            settings: permissions.may_read_settings().then_some(instance.settings),
            id: instance.id,
            team_id: instance.team_id,
            name: instance.name,
            settings_updated_at: instance.settings_updated_at,
            protection: instance.protection,
            version: instance.version,
            created_at: instance.created_at,
            updated_at: instance.updated_at,
        }
    }
}

fn instance_id(raw: &str) -> AppResult<InstanceId> {
    parse_id(raw, "instance")
}

fn flow_name(raw: &str) -> AppResult<FlowName> {
    FlowName::parse(raw).map_err(|_| AppError::NotFound("flow"))
}

pub(crate) async fn list_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
) -> AppResult<Response> {
    let instances: Vec<InstanceBody> = state
        .store
        .instances(ctx.team_id())
        .await?
        .into_iter()
        .map(|i| InstanceBody::new(i, &ctx.permissions))
        .collect();
    Ok(axum::Json(json!({ "instances": instances })).into_response())
}

#[derive(Deserialize)]
pub(crate) struct NewInstance {
    name: String,
    #[serde(default)]
    settings: Option<Value>,
}

pub(crate) async fn create_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Json(body): Json<NewInstance>,
) -> AppResult<Response> {
    let name = Name::parse("name", &body.name)?;
    let settings = body.settings.unwrap_or_else(|| json!({}));
    if !settings.is_object() {
        return Err(AppError::invalid("settings", "must be a JSON object"));
    }
    let created = state
        .store
        .create_instance(ctx.team_id(), name, settings, &ctx.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(InstanceBody::new(created, &ctx.permissions)),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DuplicateBody {
    name: String,
    /// A pipeline of the team the copy joins as a stage: right after the
    /// source when the source is one of its stages, last otherwise.
    /// Needs `pipeline.edit` too.
    pipeline: Option<String>,
}

/// A new instance from this one: its flows and env keys, never a value,
/// its settings, protection or runtime connection.
pub(crate) async fn duplicate_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
    Json(body): Json<DuplicateBody>,
) -> AppResult<Response> {
    let source = instance_id(&id)?;
    let name = Name::parse("name", &body.name)?;
    let into = crate::views::instances::duplicate_into(
        ctx.permissions
            .contains(stagehand_domain::Permission::PipelineEdit),
        body.pipeline.as_deref(),
    )?;
    let created = state
        .store
        .duplicate_instance(ctx.team_id(), source, name, into, &ctx.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(InstanceBody::new(created, &ctx.permissions)),
    )
        .into_response())
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let instance = state
        .store
        .instance(ctx.team_id(), instance_id(&id)?)
        .await?;
    Ok(axum::Json(InstanceBody::new(instance, &ctx.permissions)).into_response())
}

pub(crate) async fn flows_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let flows = state.store.flows(ctx.team_id(), instance_id(&id)?).await?;
    Ok(axum::Json(json!({ "flows": flows })).into_response())
}

/// Replaces the whole flow set in one transaction: `{"flows": {name: doc}}`.
#[derive(Deserialize)]
pub(crate) struct FlowSet {
    flows: BTreeMap<String, Value>,
    expected_version: Option<i64>,
}

pub(crate) async fn flows_put(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
    Json(body): Json<FlowSet>,
) -> AppResult<Response> {
    let mut flows = Vec::with_capacity(body.flows.len());
    let mut errors = Vec::new();
    for (name, doc) in &body.flows {
        match (FlowName::parse(name), FlowContent::from_value(doc)) {
            (Ok(n), Ok(c)) => flows.push((n, c)),
            (n, c) => {
                for e in [n.err(), c.err()].into_iter().flatten() {
                    errors.push(stagehand_domain::FieldError {
                        field: "flows".into(),
                        message: format!("{name}: {} {}", e.field(), e.message()),
                    });
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let updated = state
        .store
        .replace_flows(
            ctx.team_id(),
            instance_id(&id)?,
            flows,
            body.expected_version,
            &ctx.actor(),
        )
        .await?;
    Ok(axum::Json(InstanceBody::new(updated, &ctx.permissions)).into_response())
}

pub(crate) async fn flow_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path((id, name)): Path<(String, String)>,
) -> AppResult<Response> {
    let flow = state
        .store
        .flow(ctx.team_id(), instance_id(&id)?, &flow_name(&name)?)
        .await?;
    Ok((
        [("etag", format!("\"{}\"", flow.meta.hash))],
        axum::Json(flow.content.to_value()),
    )
        .into_response())
}

/// Creates or replaces one flow; the body is the flow document.
pub(crate) async fn flow_put(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path((id, name)): Path<(String, String)>,
    Json(doc): Json<Value>,
) -> AppResult<Response> {
    let name = FlowName::parse(&name)?;
    let content = FlowContent::from_value(&doc)?;
    let updated = state
        .store
        .put_flow(
            ctx.team_id(),
            instance_id(&id)?,
            name,
            content,
            None,
            &ctx.actor(),
        )
        .await?;
    Ok(axum::Json(InstanceBody::new(updated, &ctx.permissions)).into_response())
}

pub(crate) async fn flow_delete(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path((id, name)): Path<(String, String)>,
) -> AppResult<Response> {
    state
        .store
        .delete_flow(
            ctx.team_id(),
            instance_id(&id)?,
            &flow_name(&name)?,
            None,
            &ctx.actor(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Keys and whether each has a value; never a value.
pub(crate) async fn env_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let env = state
        .store
        .env_vars(ctx.team_id(), instance_id(&id)?)
        .await?;
    Ok(axum::Json(json!({ "env": env })).into_response())
}

/// `{"value": "…"}` sets the value (adding the key if missing);
/// `{"value": null}` leaves the key awaiting a value.
#[derive(Deserialize)]
pub(crate) struct EnvValue {
    value: Option<String>,
}

pub(crate) async fn env_put(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path((id, key)): Path<(String, String)>,
    Json(body): Json<EnvValue>,
) -> AppResult<Response> {
    let key = EnvKey::parse(&key)?;
    let value = body.value.map(SecretValue::parse_env_value).transpose()?;
    let instance = instance_id(&id)?;
    // Setting a value is `envvar.set`; adding a key is an edit of the
    // instance, as on the instance page.
    let exists = state
        .store
        .env_vars(ctx.team_id(), instance)
        .await?
        .iter()
        .any(|v| v.key == key);
    if !exists && !ctx.permissions.contains(Permission::InstanceEdit) {
        return Err(AppError::Forbidden);
    }
    state
        .store
        .set_env_var(ctx.team_id(), instance, key, value, &ctx.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn env_delete(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path((id, key)): Path<(String, String)>,
) -> AppResult<Response> {
    let key = EnvKey::parse(&key).map_err(|_| AppError::NotFound("env var"))?;
    state
        .store
        .remove_env_var(ctx.team_id(), instance_id(&id)?, &key, &ctx.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// One value, revealed: `envvar.reveal` only, audited, never cached.
pub(crate) async fn env_value_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path((id, key)): Path<(String, String)>,
) -> AppResult<Response> {
    let key = EnvKey::parse(&key).map_err(|_| AppError::NotFound("env var"))?;
    let value = state
        .store
        .reveal_env_value(ctx.team_id(), instance_id(&id)?, &key, &ctx.actor())
        .await?;
    Ok((
        [("cache-control", "no-store")],
        axum::Json(json!({ "key": key, "value": value.as_ref().map(SecretValue::expose) })),
    )
        .into_response())
}

/// `{"settings": {...}, "expected_version": n}`: replaces the settings.
#[derive(Deserialize)]
pub(crate) struct Patch {
    settings: Option<Value>,
    expected_version: Option<i64>,
}

pub(crate) async fn patch(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
    Json(body): Json<Patch>,
) -> AppResult<Response> {
    let id = instance_id(&id)?;
    let Some(settings) = body.settings else {
        let instance = state.store.instance(ctx.team_id(), id).await?;
        return Ok(axum::Json(InstanceBody::new(instance, &ctx.permissions)).into_response());
    };
    if !settings.is_object() {
        return Err(AppError::invalid("settings", "must be a JSON object"));
    }
    let updated = state
        .store
        .update_settings(
            ctx.team_id(),
            id,
            settings,
            body.expected_version,
            &ctx.actor(),
        )
        .await?;
    Ok(axum::Json(InstanceBody::new(updated, &ctx.permissions)).into_response())
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    state
        .store
        .delete_instance(ctx.team_id(), instance_id(&id)?, &ctx.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `{"required_approvals": N, "requires_all_env_values": bool}`: how the
/// instance guards itself.
#[derive(Deserialize)]
pub(crate) struct ProtectionBody {
    required_approvals: u32,
    #[serde(default)]
    requires_all_env_values: bool,
}

pub(crate) async fn protection_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let instance = state
        .store
        .instance(ctx.team_id(), instance_id(&id)?)
        .await?;
    Ok(axum::Json(instance.protection).into_response())
}

/// Needs the permission that manages protection (the route declares it;
/// the store checks it again in the transaction).
pub(crate) async fn protection_put(
    State(state): State<AppState>,
    Extension(ctx): Extension<ApiCtx>,
    Path(id): Path<String>,
    Json(body): Json<ProtectionBody>,
) -> AppResult<Response> {
    let protection =
        stagehand_domain::Protection::new(body.required_approvals, body.requires_all_env_values)?;
    let updated = state
        .store
        .set_instance_protection(ctx.team_id(), instance_id(&id)?, protection, &ctx.actor())
        .await?;
    Ok(axum::Json(updated.protection).into_response())
}
