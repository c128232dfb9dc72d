//! The pipeline page: stages as cards left to right, each with its
//! instance, flow count, keys awaiting values and last promotion; adding,
//! removing, reordering and protecting stages; play on every stage but the
//! last.

use super::paths::{PipelinePath, StagePath};
use super::promotions::{Names, PromotionRow};
use super::{Chrome, Form, render, see_other};
use crate::AppState;
use crate::authz::Ctx;
use crate::error::{AppError, AppResult};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use stagehand_domain::{InstanceId, Name, Permission, StageId, pipeline::MAX_REQUIRED_APPROVALS};
use stagehand_store::{Instance, Pipeline};

#[derive(Deserialize)]
pub(crate) struct NameForm {
    name: String,
}

pub(crate) async fn create_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(form): Form<NameForm>,
) -> AppResult<Response> {
    let team = ctx.team_id()?;
    let name = Name::parse("name", &form.name)?;
    let p = state
        .store
        .create_pipeline(team, name, &ctx.actor())
        .await?;
    Ok(see_other(&format!("/teams/{team}/pipelines/{}", p.id)))
}

struct StageCard {
    id: String,
    instance_id: String,
    instance: String,
    flows: i64,
    awaiting: i64,
    required_approvals: u32,
    requires_all_env_values: bool,
    last: Option<PromotionRow>,
    /// Promotions into this stage awaiting approval.
    pending: Vec<PromotionRow>,
    is_first: bool,
    is_last: bool,
    /// The runtime's state, when the stage's instance is connected.
    runtime: Option<super::runtimes::RuntimeCard>,
}

#[derive(Template)]
#[template(path = "pipeline.html")]
struct PipelinePage {
    chrome: Chrome,
    pipeline: Pipeline,
    stages: Vec<StageCard>,
    /// Instances of the team not yet in this pipeline.
    free_instances: Vec<Instance>,
    max_approvals: u32,
}

pub(crate) async fn view_pipeline_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<PipelinePath>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let (pipeline, overview) = state.store.pipeline_overview(team, id).await?;
    // Promotions on this page are between its stages, whose names it has;
    // the team's other instances matter only to those who may add a stage.
    let names = Names::of_pipelines(std::slice::from_ref(&pipeline));
    let instances = if ctx.can(Permission::PipelineEdit) {
        state.store.instances(team).await?
    } else {
        Vec::new()
    };
    // Every connected stage's runtime, looked at now (each within the
    // page's budget; one that does not answer shows its last known state).
    let links = state.store.runtime_links(team).await?;
    let connected: Vec<_> = overview
        .iter()
        .map(|o| o.stage.instance_id)
        .filter(|i| links.iter().any(|l| l.instance_id == *i))
        .collect();
    let mut fresh =
        crate::deploy::check_many(&state, team, &connected, crate::deploy::PAGE_CHECK_REUSE).await;
    for l in links {
        if !fresh.iter().any(|f| f.instance_id == l.instance_id) {
            fresh.push(l);
        }
    }
    let n = overview.len();
    let stages = overview
        .iter()
        .enumerate()
        .map(|(i, o)| StageCard {
            id: o.stage.id.to_string(),
            instance_id: o.stage.instance_id.to_string(),
            instance: o.stage.instance_name.to_string(),
            flows: o.flows,
            awaiting: o.keys_awaiting_value,
            required_approvals: o.stage.protection.required_approvals,
            requires_all_env_values: o.stage.protection.requires_all_env_values,
            last: o
                .last_promotion
                .as_ref()
                .map(|p| names.head_row(p, String::new())),
            pending: o
                .pending
                .iter()
                .map(|p| names.head_row(p, String::new()))
                .collect(),
            is_first: i == 0,
            is_last: i + 1 == n,
            runtime: fresh
                .iter()
                .find(|l| l.instance_id == o.stage.instance_id)
                .cloned()
                .map(super::runtimes::RuntimeCard::new),
        })
        .collect();
    let free_instances = instances
        .into_iter()
        .filter(|i| !pipeline.stages.iter().any(|s| s.instance_id == i.id))
        .collect();
    render(PipelinePage {
        chrome: Chrome::new(&ctx),
        pipeline,
        stages,
        free_instances,
        max_approvals: MAX_REQUIRED_APPROVALS,
    })
}

pub(crate) async fn delete_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<PipelinePath>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    state.store.delete_pipeline(team, id, &ctx.actor()).await?;
    Ok(see_other(&format!("/teams/{team}")))
}

#[derive(Deserialize)]
pub(crate) struct AddStageForm {
    instance: String,
    /// 1-based position; blank appends.
    position: Option<String>,
}

pub(crate) async fn add_stage_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<PipelinePath>,
    Form(form): Form<AddStageForm>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let instance: InstanceId = form.instance.trim().parse().map_err(|_| {
        AppError::from(stagehand_domain::ValidationError::new(
            "instance",
            "choose an instance",
        ))
    })?;
    let position = match super::non_blank(&form.position) {
        None => None,
        Some(p) => Some(
            p.parse::<usize>()
                .ok()
                .filter(|p| *p >= 1)
                .map(|p| p - 1)
                .ok_or_else(|| {
                    AppError::from(stagehand_domain::ValidationError::new(
                        "position",
                        "must be a whole number from 1",
                    ))
                })?,
        ),
    };
    state
        .store
        .add_stage(team, id, instance, position, &ctx.actor())
        .await?;
    Ok(see_other(&format!("/teams/{team}/pipelines/{id}")))
}

pub(crate) async fn remove_stage_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<StagePath>,
) -> AppResult<Response> {
    let (team, id, stage) = path.ids()?;
    state
        .store
        .remove_stage(team, id, stage, &ctx.actor())
        .await?;
    Ok(see_other(&format!("/teams/{team}/pipelines/{id}")))
}

#[derive(Deserialize)]
pub(crate) struct MoveForm {
    direction: String,
}

pub(crate) async fn move_stage_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<StagePath>,
    Form(form): Form<MoveForm>,
) -> AppResult<Response> {
    let (team, id, stage) = path.ids()?;
    let pipeline = state.store.pipeline(team, id).await?;
    let mut order: Vec<StageId> = pipeline.stages.iter().map(|s| s.id).collect();
    let i = order
        .iter()
        .position(|s| *s == stage)
        .ok_or(AppError::NotFound("stage"))?;
    let j = match form.direction.as_str() {
        "left" if i > 0 => i - 1,
        "right" if i + 1 < order.len() => i + 1,
        "left" | "right" => {
            return Ok(see_other(&format!("/teams/{team}/pipelines/{id}")));
        }
        _ => {
            return Err(stagehand_domain::ValidationError::new(
                "direction",
                "must be left or right",
            )
            .into());
        }
    };
    order.swap(i, j);
    state
        .store
        .reorder_stages(team, id, order, &ctx.actor())
        .await?;
    Ok(see_other(&format!("/teams/{team}/pipelines/{id}")))
}
