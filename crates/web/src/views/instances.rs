//! Instances: the list; the instance page with its flows, env vars (keys,
//! masked values, "awaiting a value"), and settings; a flow's page with its
//! JSON editor. Values are never rendered, except on the one-off reveal
//! page, which needs `envvar.reveal` and is audited. Settings values are
//! rendered only for those who may edit the instance.

use super::paths::{FlowPath, InstancePath, KeyPath};
use super::{Chrome, Form, flash, non_blank, render, see_other, when};
use crate::AppState;
use crate::authz::Ctx;
use crate::error::{AppError, AppResult};
use askama::Template;
use axum::Extension;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use stagehand_domain::{
    EnvKey, FlowContent, FlowName, MAX_FLOW_BYTES, Name, Permission, Protection, SecretValue,
    ValidationError,
};
use stagehand_store::{EnvVarMeta, FlowMeta, Instance};

#[derive(Template)]
#[template(path = "instances.html")]
struct InstancesPage {
    chrome: Chrome,
    instances: Vec<Instance>,
}

pub(crate) async fn view_instances_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> AppResult<Response> {
    let instances = state.store.instances(ctx.team_id()?).await?;
    render(InstancesPage {
        chrome: Chrome::new(&ctx),
        instances,
    })
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    name: String,
}

pub(crate) async fn create_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(form): Form<CreateForm>,
) -> AppResult<Response> {
    let team = ctx.team_id()?;
    let name = Name::parse("name", &form.name)?;
    let i = state
        .store
        .create_instance(team, name, serde_json::json!({}), &ctx.actor())
        .await?;
    Ok(flash::done(
        &format!("/teams/{team}/instances/{}", i.id),
        &format!("Created the instance {}.", i.name),
    ))
}

#[derive(Template)]
#[template(path = "instance.html")]
struct InstancePage {
    chrome: Chrome,
    instance: Instance,
    flows: Vec<FlowMeta>,
    env: Vec<EnvVarMeta>,
    /// The settings document, only for those who may read its values.
    settings: Option<String>,
    setting_keys: Vec<String>,
    settings_updated_at: String,
    max_flow_mib: usize,
    snapshots: Vec<SnapshotLine>,
    /// Whether this user may change the instance directly: `instance.edit`
    /// and, on a protected instance, the permission managing protection.
    may_edit: bool,
    /// The same for values: `envvar.set` (and managing protection).
    may_set_values: bool,
    max_approvals: u32,
    /// Its runtime, when connected: then its flows change there, not here.
    runtime: Option<super::runtimes::RuntimeCard>,
    /// Pipelines a duplicate may join (for those who may edit pipelines),
    /// with whether this instance is one of their stages.
    pipelines: Vec<(String, String, bool)>,
    /// Pipelines this instance is a stage of (id, name), for those who may
    /// delete it: it must leave them first.
    stage_of: Vec<(String, String)>,
    /// The new-flow form as sent, when it came back with errors.
    draft: Option<FlowDraft>,
}

/// A flow form sent back with errors, to fill the form again: what was
/// typed, and what is wrong with each field.
#[derive(Debug, Clone)]
pub(crate) struct FlowDraft {
    name: String,
    content: String,
    errors: Vec<stagehand_domain::FieldError>,
}

impl InstancePage {
    /// What deleting the instance takes with it: "its 2 flows and 3 env
    /// vars (1 with a value)".
    fn what_goes(&self) -> String {
        let n = |count: usize, one: &str, many: &str| {
            format!("{count} {}", if count == 1 { one } else { many })
        };
        let valued = self.env.iter().filter(|v| v.has_value).count();
        format!(
            "its {} and {} ({} with a value)",
            n(self.flows.len(), "flow", "flows"),
            n(self.env.len(), "env var", "env vars"),
            valued
        )
    }
}

impl FlowDraft {
    /// What is wrong with `field`, if anything.
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }
}

struct SnapshotLine {
    id: String,
    reason: String,
    hash: String,
    at: String,
}

/// Snapshots listed on an instance's page.
const SNAPSHOTS_SHOWN: i64 = 20;

pub(crate) async fn view_instance_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<InstancePath>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    instance_page(&state, &ctx, team, id, None).await
}

async fn instance_page(
    state: &AppState,
    ctx: &Ctx,
    team: stagehand_domain::TeamId,
    id: stagehand_domain::InstanceId,
    draft: Option<FlowDraft>,
) -> AppResult<Response> {
    let instance = state.store.instance(team, id).await?;
    let flows = state.store.flows(team, id).await?;
    let env = state.store.env_vars(team, id).await?;
    let snapshots = state
        .store
        .snapshots(team, id, SNAPSHOTS_SHOWN)
        .await?
        .into_iter()
        .map(|s| SnapshotLine {
            id: s.id.to_string(),
            reason: s.reason.as_str().replace('_', " "),
            hash: s.content_hash.short().to_owned(),
            at: when(&s.created_at),
        })
        .collect();
    let direct = !instance.protection.is_protected() || ctx.can(Permission::MANAGES_PROTECTION);
    let runtime = crate::deploy::link_now(state, team, id, crate::deploy::PAGE_CHECK_REUSE)
        .await?
        .map(super::runtimes::RuntimeCard::new);
    // Settings may hold credentials: their values only for those who may
    // edit the instance; everyone else sees the keys and when they changed.
    let may_read_settings = ctx.team()?.permissions.may_read_settings();
    let all_pipelines = if ctx.can(Permission::InstanceEdit) {
        state.store.pipelines(team).await?
    } else {
        Vec::new()
    };
    let stage_of = all_pipelines
        .iter()
        .filter(|p| p.stages.iter().any(|s| s.instance_id == id))
        .map(|p| (p.id.to_string(), p.name.to_string()))
        .collect();
    let pipelines = if ctx.can(Permission::PipelineEdit) {
        all_pipelines
            .into_iter()
            .map(|p| {
                let here = p.stages.iter().any(|s| s.instance_id == id);
                (p.id.to_string(), p.name.to_string(), here)
            })
            .collect()
    } else {
        Vec::new()
    };
    render(InstancePage {
        draft,
        pipelines,
        stage_of,
        snapshots,
        may_edit: direct && ctx.can(Permission::InstanceEdit),
        may_set_values: direct && ctx.can(Permission::EnvvarSet),
        max_approvals: stagehand_domain::pipeline::MAX_REQUIRED_APPROVALS,
        runtime,
        chrome: Chrome::new(ctx),
        settings: may_read_settings
            .then(|| serde_json::to_string_pretty(&instance.settings).unwrap_or_default()),
        setting_keys: instance.setting_keys(),
        settings_updated_at: when(&instance.settings_updated_at),
        instance,
        flows,
        env,
        max_flow_mib: MAX_FLOW_BYTES / (1024 * 1024),
    })
}

#[derive(Deserialize)]
pub(crate) struct DuplicateForm {
    name: String,
    /// A pipeline the copy joins as a stage (blank: none).
    pipeline: Option<String>,
}

/// The pipeline a duplicate joins: blank for none; adding a stage needs
/// `pipeline.edit` as well.
pub(crate) fn duplicate_into(
    can_edit_pipelines: bool,
    raw: Option<&str>,
) -> AppResult<Option<stagehand_domain::PipelineId>> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if !can_edit_pipelines {
        return Err(crate::error::AppError::Forbidden);
    }
    super::paths::parse_id(raw, "pipeline").map(Some)
}

/// A new instance from this one (its flows and env keys, no value, no
/// settings, no connection); then its page, where its values are set.
pub(crate) async fn duplicate_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<InstancePath>,
    Form(form): Form<DuplicateForm>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let name = Name::parse("name", &form.name)?;
    let into = duplicate_into(ctx.can(Permission::PipelineEdit), form.pipeline.as_deref())?;
    let made = state
        .store
        .duplicate_instance(team, id, name, into, &ctx.actor())
        .await?;
    // Its page either way: that is where its values are set.
    let message = format!(
        "Created {} from this instance: its flows and env keys, without values{}. Set its values here before promoting into it.",
        made.name,
        if into.is_some() {
            ", as a stage of the pipeline"
        } else {
            ""
        }
    );
    Ok(flash::done(
        &format!("/teams/{team}/instances/{}", made.id),
        &message,
    ))
}

pub(crate) async fn delete_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<InstancePath>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let name = state.store.instance(team, id).await?.name;
    state.store.delete_instance(team, id, &ctx.actor()).await?;
    Ok(flash::done(
        &format!("/teams/{team}/instances"),
        &format!("Deleted the instance {name} with its flows and env vars."),
    ))
}

#[derive(Deserialize)]
pub(crate) struct ProtectionForm {
    required_approvals: String,
    /// A checkbox: present when ticked.
    requires_all_env_values: Option<String>,
    /// The pipeline page the form was sent from, to go back to.
    pipeline: Option<String>,
}

pub(crate) async fn protection_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<InstancePath>,
    Form(form): Form<ProtectionForm>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let protection = parse_protection(
        &form.required_approvals,
        form.requires_all_env_values.is_some(),
    )?;
    state
        .store
        .set_instance_protection(team, id, protection, &ctx.actor())
        .await?;
    // Back where the form was: a pipeline of this team (an id, never a
    // path), or the instance.
    let back = match form
        .pipeline
        .as_deref()
        .map(str::parse::<stagehand_domain::PipelineId>)
    {
        Some(Ok(p)) if state.store.pipeline(team, p).await.is_ok() => {
            format!("/teams/{team}/pipelines/{p}")
        }
        _ => format!("/teams/{team}/instances/{id}"),
    };
    Ok(flash::done(&back, "Saved the protection."))
}

/// The protection form's fields, as a [`Protection`].
pub(crate) fn parse_protection(
    approvals: &str,
    requires_all_env_values: bool,
) -> AppResult<Protection> {
    let max = stagehand_domain::pipeline::MAX_REQUIRED_APPROVALS;
    let approvals = approvals.trim().parse::<u32>().map_err(|_| {
        ValidationError::new(
            "required_approvals",
            format!("must be a whole number from 0 to {max}"),
        )
    })?;
    Ok(Protection::new(approvals, requires_all_env_values)?)
}

#[derive(Deserialize)]
pub(crate) struct SettingsForm {
    settings: String,
    expected_version: Option<i64>,
}

pub(crate) async fn settings_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<InstancePath>,
    Form(form): Form<SettingsForm>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let settings: serde_json::Value = serde_json::from_str(&form.settings)
        .map_err(|e| ValidationError::new("settings", format!("is not valid JSON: {e}")))?;
    if !settings.is_object() {
        return Err(ValidationError::new("settings", "must be a JSON object ({...})").into());
    }
    let saved = state
        .store
        .update_settings(team, id, settings, form.expected_version, &ctx.actor())
        .await?;
    Ok(flash::done(
        &format!("/teams/{team}/instances/{id}#settings"),
        &format!("Saved the settings of {}.", saved.name),
    ))
}

#[derive(Deserialize)]
pub(crate) struct FlowForm {
    name: String,
    content: String,
    expected_version: Option<i64>,
    /// `edit`: sent from the flow's own page; `new`: from the instance
    /// page's "New flow", which never replaces a flow.
    form: Option<String>,
}

pub(crate) async fn save_flow_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<InstancePath>,
    headers: axum::http::HeaderMap,
    Form(form): Form<FlowForm>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let mut errors = Vec::new();
    let name = FlowName::parse(&form.name)
        .map_err(|e| errors.push(e.0))
        .ok();
    let content = FlowContent::parse_json(&form.content)
        .map_err(|e| errors.push(e.0))
        .ok();
    // "New flow" makes a flow: one of the same name is changed on its own
    // page, never replaced unseen from here.
    if form.form.as_deref() == Some("new")
        && let Some(n) = &name
    {
        match state.store.flow(team, id, n).await {
            Ok(_) => errors.push(stagehand_domain::FieldError {
                field: "flow_name".into(),
                message: format!(
                    "a flow named {n} exists already: open it to change it, or choose another name"
                ),
            }),
            Err(stagehand_store::StoreError::NotFound("flow")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (Some(name), Some(content), true) = (name, content, errors.is_empty()) else {
        // htmx puts the error in the form, which keeps what was typed;
        // without it, the page comes back with the form filled in again.
        if headers.contains_key("hx-request") {
            return Err(AppError::Invalid(errors));
        }
        let draft = FlowDraft {
            name: form.name,
            content: form.content,
            errors,
        };
        let page = match (form.form.as_deref(), FlowName::parse(&draft.name)) {
            (Some("edit"), Ok(flow)) => flow_page(&state, &ctx, team, id, flow, Some(draft)).await,
            _ => instance_page(&state, &ctx, team, id, Some(draft)).await,
        };
        return page.map(|mut res| {
            *res.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            res
        });
    };
    state
        .store
        .put_flow(
            team,
            id,
            name.clone(),
            content,
            form.expected_version,
            &ctx.actor(),
        )
        .await?;
    Ok(flash::done(
        &format!(
            "/teams/{team}/instances/{id}/flows/{}",
            super::url_encode(name.as_str())
        ),
        &format!("Saved the flow {name}."),
    ))
}

/// A flow from an uploaded file: JSON, or YAML (stored as JSON). The flow
/// is named by the file's stem unless a name is given.
pub(crate) async fn upload_flow_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<InstancePath>,
    form: Result<Multipart, MultipartRejection>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let bad = |m: String| AppError::from(ValidationError::new("file", m));
    let mut form =
        form.map_err(|_| bad("send the file with the page's upload form (multipart)".into()))?;
    let (mut file, mut name) = (None, None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| bad(format!("could not be read: {e}")))?
    {
        match field.name() {
            Some("file") => {
                let file_name = field.file_name().unwrap_or_default().to_owned();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| bad(format!("could not be read: {e}")))?;
                // Refused, not decoded with U+FFFD in place of what is not
                // UTF-8.
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| bad("is not UTF-8 text".into()))?;
                file = Some((file_name, text));
            }
            Some("name") => {
                let bytes = field.bytes().await.unwrap_or_default();
                name = Some(String::from_utf8(bytes.to_vec()).map_err(|_| {
                    AppError::from(ValidationError::new("name", "is not UTF-8 text"))
                })?);
            }
            _ => {}
        }
    }
    let (file_name, text) = file.ok_or_else(|| bad("choose a file to upload".into()))?;
    let (stem, extension) = file_name
        .rsplit_once('.')
        .unwrap_or((file_name.as_str(), ""));
    let content = match extension.to_ascii_lowercase().as_str() {
        "json" => FlowContent::parse_json(&text)?,
        "yaml" | "yml" => FlowContent::parse_yaml(&text)?,
        _ => return Err(bad("must be a .json, .yaml or .yml file".into())),
    };
    let name = FlowName::parse(non_blank(&name).unwrap_or(stem))?;
    state
        .store
        .put_flow(team, id, name.clone(), content, None, &ctx.actor())
        .await?;
    Ok(flash::done(
        &format!(
            "/teams/{team}/instances/{id}/flows/{}",
            super::url_encode(name.as_str())
        ),
        &format!("Saved the flow {name}."),
    ))
}

#[derive(Template)]
#[template(path = "flow.html")]
struct FlowPage {
    chrome: Chrome,
    instance: Instance,
    meta: FlowMeta,
    content: String,
    updated_at: String,
    /// What is wrong with the content sent back, if it was.
    content_error: Option<String>,
}

pub(crate) async fn view_flow_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<FlowPath>,
) -> AppResult<Response> {
    let (team, id, name) = path.ids()?;
    flow_page(&state, &ctx, team, id, name, None).await
}

async fn flow_page(
    state: &AppState,
    ctx: &Ctx,
    team: stagehand_domain::TeamId,
    id: stagehand_domain::InstanceId,
    name: FlowName,
    draft: Option<FlowDraft>,
) -> AppResult<Response> {
    let instance = state.store.instance(team, id).await?;
    let flow = state.store.flow(team, id, &name).await?;
    let content_error = draft
        .as_ref()
        .and_then(|d| d.error("content"))
        .map(str::to_owned);
    render(FlowPage {
        chrome: Chrome::new(ctx),
        instance,
        updated_at: when(&flow.meta.updated_at),
        content: match draft {
            Some(d) => d.content,
            None => serde_json::to_string_pretty(&flow.content.to_value()).unwrap_or_default(),
        },
        content_error,
        meta: flow.meta,
    })
}

pub(crate) async fn download_flow_get(
    State(state): State<AppState>,
    Path(path): Path<FlowPath>,
) -> AppResult<Response> {
    let (team, id, name) = path.ids()?;
    let flow = state.store.flow(team, id, &name).await?;
    let body = serde_json::to_string_pretty(&flow.content.to_value()).unwrap_or_default();
    // The name is validated, but keep the header to safe characters anyway.
    let file: String = name
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}.json\""),
            ),
        ],
        body,
    )
        .into_response())
}

#[derive(Deserialize)]
pub(crate) struct VersionForm {
    expected_version: Option<i64>,
}

pub(crate) async fn delete_flow_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<FlowPath>,
    Form(form): Form<VersionForm>,
) -> AppResult<Response> {
    let (team, id, name) = path.ids()?;
    state
        .store
        .delete_flow(team, id, &name, form.expected_version, &ctx.actor())
        .await?;
    Ok(flash::done(
        &format!("/teams/{team}/instances/{id}#flows"),
        &format!("Deleted the flow {name}."),
    ))
}

#[derive(Deserialize)]
pub(crate) struct AddKeyForm {
    key: String,
}

/// Adds a key awaiting a value. Setting its value needs `envvar.set`.
pub(crate) async fn add_key_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<InstancePath>,
    Form(form): Form<AddKeyForm>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let key = EnvKey::parse(form.key.trim())?;
    if state
        .store
        .env_vars(team, id)
        .await?
        .iter()
        .any(|v| v.key == key)
    {
        return Err(AppError::Conflict(format!(
            "The key {key} already exists on this instance."
        )));
    }
    state
        .store
        .set_env_var(team, id, key.clone(), None, &ctx.actor())
        .await?;
    Ok(flash::done(
        &format!("/teams/{team}/instances/{id}#env"),
        &format!("Added the key {key}, without a value."),
    ))
}

#[derive(Deserialize)]
pub(crate) struct MissingKeysForm {
    /// Keys, separated by commas or spaces.
    keys: String,
}

/// Adds, in one step and without values, the keys a refused promotion
/// said the instance lacks; then its page, where their values are set.
pub(crate) async fn add_missing_keys_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<InstancePath>,
    Form(form): Form<MissingKeysForm>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let keys = form
        .keys
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|k| !k.is_empty())
        .map(|k| EnvKey::parse(k).map_err(AppError::from))
        .collect::<AppResult<Vec<_>>>()?;
    if keys.is_empty() {
        return Err(ValidationError::new("keys", "name at least one key").into());
    }
    let added = state
        .store
        .add_env_keys(team, id, keys, &ctx.actor())
        .await?;
    let message = match added.len() {
        0 => "It has every one of those keys already.".to_owned(),
        n => format!(
            "Added {} without {}: {}. Set {} below, then play again.",
            if n == 1 { "1 key" } else { "the keys" },
            if n == 1 { "a value" } else { "values" },
            added
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if n == 1 { "its value" } else { "their values" },
        ),
    };
    Ok(flash::done(
        &format!("/teams/{team}/instances/{id}#env"),
        &message,
    ))
}

#[derive(Deserialize)]
pub(crate) struct ValueForm {
    /// `set` or `clear`.
    action: String,
    value: Option<String>,
}

pub(crate) async fn set_value_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<KeyPath>,
    Form(form): Form<ValueForm>,
) -> AppResult<Response> {
    let (team, id, key) = path.ids()?;
    // Only existing keys: adding a key is `instance.edit`'s business.
    if !state
        .store
        .env_vars(team, id)
        .await?
        .iter()
        .any(|v| v.key == key)
    {
        return Err(AppError::NotFound("env var"));
    }
    let value = match form.action.as_str() {
        "clear" => None,
        "set" => {
            let raw = form.value.unwrap_or_default();
            if raw.is_empty() {
                return Err(ValidationError::new(
                    "value",
                    "type a value, or use Clear to remove it",
                )
                .into());
            }
            Some(SecretValue::parse_env_value(raw)?)
        }
        _ => return Err(ValidationError::new("action", "must be set or clear").into()),
    };
    let message = if value.is_some() {
        format!("Saved the value of {key}.")
    } else {
        format!("Cleared the value of {key}: it awaits a new one.")
    };
    state
        .store
        .set_env_var(team, id, key, value, &ctx.actor())
        .await?;
    Ok(flash::done(
        &format!("/teams/{team}/instances/{id}#env"),
        &message,
    ))
}

pub(crate) async fn remove_key_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<KeyPath>,
) -> AppResult<Response> {
    let (team, id, key) = path.ids()?;
    state
        .store
        .remove_env_var(team, id, &key, &ctx.actor())
        .await?;
    Ok(flash::done(
        &format!("/teams/{team}/instances/{id}#env"),
        &format!("Removed the key {key} and its value."),
    ))
}

#[derive(Template)]
#[template(path = "revealed.html")]
struct RevealedPage {
    chrome: Chrome,
    instance: Instance,
    key: String,
    value: Option<String>,
}

/// A reveal's address asked for with GET (Back in the browser, where htmx
/// asks the server for the page again): the instance page, never a value.
pub(crate) async fn reveal_get(Path(path): Path<KeyPath>) -> AppResult<Response> {
    let (team, id, _) = path.ids()?;
    Ok(see_other(&format!("/teams/{team}/instances/{id}#env")))
}

/// Shows one value, once: the page is not cached and the reveal is audited.
pub(crate) async fn reveal_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<KeyPath>,
) -> AppResult<Response> {
    let (team, id, key) = path.ids()?;
    let instance = state.store.instance(team, id).await?;
    let value = state
        .store
        .reveal_env_value(team, id, &key, &ctx.actor())
        .await?;
    let page = render(RevealedPage {
        chrome: Chrome::new(&ctx),
        instance,
        key: key.to_string(),
        value: value.map(|v| v.expose().to_owned()),
    })?;
    Ok(([(header::CACHE_CONTROL, "no-store")], page).into_response())
}
