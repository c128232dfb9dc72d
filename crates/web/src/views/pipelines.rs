//! The pipeline page: stages as cards left to right, each saying what it
//! runs (a content hash), whether it is behind the stage before it, how it
//! got there (promotion, who, when, edited since), what waits for it
//! (keys without a value, requests with their approvals) and its runtime's
//! state; adding, removing, reordering and protecting stages; play on every
//! stage but the last.

use super::paths::{PipelinePath, StagePath};
use super::promotions::{Names, PromotionRow};
use super::{Chrome, Form, flash, render, see_other, when};
use crate::AppState;
use crate::authz::Ctx;
use crate::error::{AppError, AppResult};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use stagehand_domain::{
    ContentHash, EnvKeyState, FlowName, InstanceId, Name, Permission, PromotionPlan, StageId,
    pipeline::MAX_REQUIRED_APPROVALS,
};
use stagehand_store::{InstanceName, Pipeline, PipelineOverview};
use std::collections::BTreeMap;

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
    Ok(flash::done(
        &format!("/teams/{team}/pipelines/{}", p.id),
        &format!("Created the pipeline {}.", p.name),
    ))
}

struct StageCard {
    id: String,
    instance_id: String,
    instance: String,
    flows: usize,
    awaiting: usize,
    /// The short content hash of the stage's flows and keys: equal stages
    /// show the same one.
    state_hash: String,
    required_approvals: u32,
    requires_all_env_values: bool,
    /// How the stage compares with the one before it (none for the first).
    compared: Option<Comparison>,
    /// How it got what it has.
    arrival: Option<ArrivalCard>,
    /// Promotions into this stage awaiting approval.
    pending: Vec<PendingCard>,
    /// A request waits into or out of this stage: it stays until decided.
    held: bool,
    is_first: bool,
    is_last: bool,
    /// The play button's words for a screen reader: its direction.
    play_label: String,
    /// The runtime's state, when the stage's instance is connected.
    runtime: Option<super::runtimes::RuntimeCard>,
}

/// A stage against the previous one: what playing that one would change.
struct Comparison {
    previous: String,
    equal: bool,
    /// Keys only this stage has (kept by every promotion): with them, an
    /// equal stage still runs another hash.
    extra_keys: usize,
    /// "2 flows added, 1 changed; 1 key to add".
    difference: String,
}

struct ArrivalCard {
    id: String,
    from: String,
    by: String,
    at: String,
    rolled_back_at: Option<String>,
    rolled_back_by: Option<String>,
    /// Flows that differ from what the promotion (or its rollback) left.
    changed_since: usize,
}

struct PendingCard {
    row: PromotionRow,
    approvals: u32,
    required: u32,
}

#[derive(Template)]
#[template(path = "pipeline.html")]
struct PipelinePage {
    chrome: Chrome,
    pipeline: Pipeline,
    stages: Vec<StageCard>,
    /// A request waits in the pipeline: it is not deleted until decided.
    held: bool,
    /// Instances of the team not yet in this pipeline.
    free_instances: Vec<InstanceName>,
    max_approvals: u32,
}

pub(crate) async fn view_pipeline_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<PipelinePath>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let PipelineOverview {
        pipeline,
        stages: overview,
        team_instances,
    } = state
        .store
        .pipeline_overview(team, id, ctx.can(Permission::PipelineEdit))
        .await?;
    // Promotions on this page are mostly between its stages, whose names
    // it has; one from a stage removed since names an instance of the team
    // (the store then reads their names; it may still exist).
    let names = Names::of_pipeline(&pipeline, &team_instances);
    let free_instances = if ctx.can(Permission::PipelineEdit) {
        team_instances
            .into_iter()
            .filter(|i| !pipeline.stages.iter().any(|s| s.instance_id == i.id))
            .collect()
    } else {
        Vec::new()
    };
    // Every connected stage's runtime, looked at now (each within the
    // page's budget; one that does not answer shows its last known state).
    let links: Vec<_> = overview.iter().filter_map(|o| o.runtime.clone()).collect();
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
    let mut stages = Vec::with_capacity(n);
    for (i, o) in overview.iter().enumerate() {
        let previous = i.checked_sub(1).map(|p| &overview[p]);
        let compared = previous.map(|p| {
            // What playing the previous stage would do here: the same
            // planner, on the stored hashes (no flow is read).
            let plan = PromotionPlan::between(&p.state, &o.state);
            Comparison {
                previous: p.stage.instance_name.to_string(),
                equal: plan.is_noop(),
                extra_keys: plan.keys_only_in_target.len(),
                difference: super::promotions::changes_in_words(&plan.summary(), "to add"),
            }
        });
        let arrival = o.arrival.as_ref().map(|a| ArrivalCard {
            id: a.promotion.id.to_string(),
            from: names.head_row(&a.promotion, String::new()).from,
            by: a.promotion.requested_by.clone(),
            at: when(a.applied_at.as_ref().unwrap_or(&a.promotion.created_at)),
            rolled_back_at: a.rolled_back_at.as_ref().map(when),
            rolled_back_by: a.rolled_back_by.clone(),
            changed_since: changed_flows(&a.left_flows, &o.state.flows),
        });
        let required = o.stage.protection.required_approvals;
        stages.push(StageCard {
            id: o.stage.id.to_string(),
            instance_id: o.stage.instance_id.to_string(),
            instance: o.stage.instance_name.to_string(),
            flows: o.state.flows.len(),
            awaiting: o
                .state
                .env
                .values()
                .filter(|k| **k == EnvKeyState::AwaitingValue)
                .count(),
            state_hash: o.state_hash.short().to_owned(),
            required_approvals: required,
            requires_all_env_values: o.stage.protection.requires_all_env_values,
            compared,
            arrival,
            pending: o
                .pending
                .iter()
                .map(|p| PendingCard {
                    row: names.head_row(&p.promotion, String::new()),
                    approvals: p.approvals,
                    required,
                })
                .collect(),
            held: overview.iter().flat_map(|c| &c.pending).any(|p| {
                p.promotion.source_stage_id == o.stage.id
                    || p.promotion.target_stage_id == o.stage.id
            }),
            is_first: i == 0,
            is_last: i + 1 == n,
            play_label: overview.get(i + 1).map_or_else(String::new, |next| {
                format!(
                    "Play: preview promoting {} into {}",
                    o.stage.instance_name, next.stage.instance_name
                )
            }),
            runtime: fresh
                .iter()
                .find(|l| l.instance_id == o.stage.instance_id)
                .cloned()
                .map(super::runtimes::RuntimeCard::new),
        });
    }
    render(PipelinePage {
        chrome: Chrome::new(&ctx),
        pipeline,
        held: stages.iter().any(|s| s.held),
        stages,
        free_instances,
        max_approvals: MAX_REQUIRED_APPROVALS,
    })
}

/// Flows added, changed or removed between two manifests.
fn changed_flows(
    then: &BTreeMap<FlowName, ContentHash>,
    now: &BTreeMap<FlowName, ContentHash>,
) -> usize {
    let changed_or_removed = then.iter().filter(|(n, h)| now.get(*n) != Some(*h)).count();
    let added = now.keys().filter(|n| !then.contains_key(*n)).count();
    changed_or_removed + added
}

pub(crate) async fn delete_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<PipelinePath>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let name = state.store.pipeline(team, id).await?.name;
    state.store.delete_pipeline(team, id, &ctx.actor()).await?;
    Ok(flash::done(
        &format!("/teams/{team}"),
        &format!("Deleted the pipeline {name}; its instances and promotion history are kept."),
    ))
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
    Ok(flash::done(
        &format!("/teams/{team}/pipelines/{id}"),
        "Added the stage.",
    ))
}

pub(crate) async fn remove_stage_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<StagePath>,
) -> AppResult<Response> {
    let (team, id, stage) = path.ids()?;
    let instance = state
        .store
        .pipeline(team, id)
        .await?
        .stages
        .into_iter()
        .find(|s| s.id == stage)
        .ok_or(AppError::NotFound("stage"))?
        .instance_name;
    state
        .store
        .remove_stage(team, id, stage, &ctx.actor())
        .await?;
    Ok(flash::done(
        &format!("/teams/{team}/pipelines/{id}"),
        &format!("Removed the stage {instance}; the instance is kept."),
    ))
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
    Ok(flash::done(
        &format!("/teams/{team}/pipelines/{id}"),
        "Moved the stage.",
    ))
}
