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
use stagehand_domain::{
    InstanceId, Name, PromotionStatus, StageId, StageProtection, pipeline::MAX_REQUIRED_APPROVALS,
};
use stagehand_store::{Instance, Pipeline, PromotionFilter};

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
    flows: usize,
    awaiting: usize,
    required_approvals: u32,
    requires_all_env_values: bool,
    last: Option<PromotionRow>,
    /// Promotions into this stage awaiting approval.
    pending: Vec<PromotionRow>,
    is_first: bool,
    is_last: bool,
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
    let pipeline = state.store.pipeline(team, id).await?;
    let instances = state.store.instances(team).await?;
    let names = Names::new(std::slice::from_ref(&pipeline), &instances);
    let n = pipeline.stages.len();
    let mut stages = Vec::with_capacity(n);
    for (i, s) in pipeline.stages.iter().enumerate() {
        let flows = state.store.flows(team, s.instance_id).await?.len();
        let awaiting = state
            .store
            .env_vars(team, s.instance_id)
            .await?
            .iter()
            .filter(|v| !v.has_value)
            .count();
        let last = state
            .store
            .promotion_history(
                team,
                &PromotionFilter {
                    pipeline: Some(id),
                    stage: Some(s.id),
                    limit: 1,
                    ..Default::default()
                },
            )
            .await?;
        let pending = state
            .store
            .promotion_history(
                team,
                &PromotionFilter {
                    pipeline: Some(id),
                    stage: Some(s.id),
                    status: Some(PromotionStatus::PendingApproval),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await?
            .iter()
            .filter(|p| p.target_stage_id == s.id)
            .map(|p| names.row(p))
            .collect();
        stages.push(StageCard {
            pending,
            id: s.id.to_string(),
            instance_id: s.instance_id.to_string(),
            instance: s.instance_name.to_string(),
            flows,
            awaiting,
            required_approvals: s.protection.required_approvals,
            requires_all_env_values: s.protection.requires_all_env_values,
            last: last.first().map(|p| names.row(p)),
            is_first: i == 0,
            is_last: i + 1 == n,
        });
    }
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

#[derive(Deserialize)]
pub(crate) struct ProtectionForm {
    required_approvals: String,
    /// A checkbox: present when ticked.
    requires_all_env_values: Option<String>,
}

pub(crate) async fn protection_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<StagePath>,
    Form(form): Form<ProtectionForm>,
) -> AppResult<Response> {
    let (team, id, stage) = path.ids()?;
    let approvals = form.required_approvals.trim().parse::<u32>().map_err(|_| {
        stagehand_domain::ValidationError::new(
            "required_approvals",
            format!("must be a whole number from 0 to {MAX_REQUIRED_APPROVALS}"),
        )
    })?;
    let protection = StageProtection::new(approvals, form.requires_all_env_values.is_some())?;
    state
        .store
        .set_stage_protection(team, id, stage, protection, &ctx.actor())
        .await?;
    Ok(see_other(&format!("/teams/{team}/pipelines/{id}")))
}
