//! Restore: a stage's instance set back to one of its own snapshots. It is
//! a promotion like any other (the snapshot is its source, the instance
//! its target): the preview shows what it changes, the confirm plays it,
//! and the target's protection, approvals and runtime deploy apply.

use super::diffs::{Differ, FlowDiff};
use super::paths::{StagePath, parse_id};
use super::runtimes::RuntimeCard;
use super::{Chrome, Form, flash, non_blank, render, when};
use crate::AppState;
use crate::authz::Ctx;
use crate::error::{AppError, AppResult};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use stagehand_domain::{Permission, PromotionPlan, PromotionStatus, SnapshotId};
use stagehand_store::{Pipeline, PromotionRequest, RuntimeState};
use std::collections::HashMap;

/// Most changed flows whose diff the preview shows inline.
const MAX_DIFFS: usize = 20;

#[derive(Template)]
#[template(path = "restore.html")]
struct RestorePage {
    chrome: Chrome,
    pipeline: Pipeline,
    stage_id: String,
    /// The instance restored (the plan's target).
    target: String,
    target_instance_id: String,
    snapshot_id: String,
    snapshot_hash: String,
    snapshot_reason: String,
    snapshot_at: String,
    plan: PromotionPlan,
    diffs: Vec<FlowDiff>,
    diff_old: String,
    diff_new: String,
    awaiting_after: Vec<String>,
    target_version: i64,
    idempotency_key: String,
    protected: bool,
    required_approvals: u32,
    blocked: Option<String>,
    target_runtime: Option<RuntimeCard>,
    target_drifted: bool,
}

/// `?snapshot=`: the snapshot to restore (required).
#[derive(Deserialize)]
pub(crate) struct RestoreQuery {
    snapshot: Option<String>,
}

fn snapshot_id(raw: &Option<String>) -> AppResult<SnapshotId> {
    let raw = non_blank(raw).ok_or_else(|| {
        AppError::invalid("snapshot", "choose the snapshot to restore, from its page")
    })?;
    parse_id(raw, "snapshot")
}

pub(crate) async fn view_restore_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<StagePath>,
    crate::extract::Query(q): crate::extract::Query<RestoreQuery>,
) -> AppResult<Response> {
    let (team, pipeline_id, stage) = path.ids()?;
    let id = snapshot_id(&q.snapshot)?;
    let (pipeline, preview, snapshot) = tokio::try_join!(
        state.store.pipeline(team, pipeline_id),
        state.store.restore_preview(team, pipeline_id, stage, id),
        state.store.snapshot(team, id),
    )?;
    let instance = preview.target.instance_id;
    let name = preview.target.instance_name.to_string();
    // Flow contents are for those who may see the instance's flows.
    let shown = if ctx.can(Permission::InstanceView) {
        MAX_DIFFS
    } else {
        0
    };
    let kept: HashMap<_, _> = if preview.plan.flows_changed.is_empty() || shown == 0 {
        HashMap::new()
    } else {
        state
            .store
            .snapshot_flows(team, id)
            .await?
            .into_iter()
            .collect()
    };
    let differ = Differ::new();
    let mut diffs = Vec::new();
    for change in preview.plan.flows_changed.iter().take(shown) {
        let now = state
            .store
            .flow(team, instance, &change.name)
            .await?
            .content;
        diffs.push(differ.diff("Changed", &change.name, Some(&now), kept.get(&change.name)));
    }
    let awaiting_after: Vec<String> = preview
        .plan
        .keys_awaiting_value_after()
        .iter()
        .map(ToString::to_string)
        .collect();
    let protection = preview.target.protection;
    let blocked = (protection.requires_all_env_values && !awaiting_after.is_empty()).then(|| {
        format!(
            "{name} requires every env var to have a value, and after this restore these would have none: {}. Set their values on {name} first.",
            awaiting_after.join(", "),
        )
    });
    let target_link =
        crate::deploy::link_now(&state, team, instance, crate::deploy::PAGE_CHECK_REUSE).await?;
    let target_drifted = target_link
        .as_ref()
        .is_some_and(|l| l.state == RuntimeState::Drifted);
    let hash = snapshot.content_hash.short().to_owned();
    render(RestorePage {
        chrome: Chrome::new(&ctx),
        pipeline,
        stage_id: stage.to_string(),
        diff_old: format!("{name} today"),
        diff_new: format!("snapshot {hash}"),
        target: name,
        target_instance_id: instance.to_string(),
        snapshot_id: id.to_string(),
        snapshot_hash: hash,
        snapshot_reason: snapshot.reason.as_str().replace('_', " "),
        snapshot_at: when(&snapshot.created_at),
        plan: preview.plan,
        diffs,
        awaiting_after,
        target_version: preview.target_version,
        idempotency_key: crate::auth::session::random_token(),
        protected: protection.is_protected(),
        required_approvals: protection.required_approvals,
        blocked,
        target_runtime: target_link.map(RuntimeCard::new),
        target_drifted,
    })
}

#[derive(Deserialize)]
pub(crate) struct RestoreForm {
    snapshot: Option<String>,
    expected_target_version: Option<i64>,
    idempotency_key: Option<String>,
    /// A checkbox: overwrite a connected instance that drifted (audited).
    overwrite_drift: Option<String>,
}

pub(crate) async fn restore_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<StagePath>,
    Form(form): Form<RestoreForm>,
) -> AppResult<Response> {
    let (team, pipeline, stage) = path.ids()?;
    let promotion = crate::deploy::play(
        &state,
        PromotionRequest {
            team,
            pipeline,
            stage,
            actor: ctx.actor(),
            idempotency_key: non_blank(&form.idempotency_key).map(str::to_owned),
            expected_target_version: form.expected_target_version,
            overwrite_drift: form.overwrite_drift.is_some(),
            expected_source_version: None,
            source_snapshot: Some(snapshot_id(&form.snapshot)?),
            restore: true,
        },
        None,
    )
    .await?
    .promotion;
    Ok(flash::done(
        &format!("/teams/{team}/promotions/{}", promotion.id),
        restored_message(promotion.status),
    ))
}

/// What the page after a restore says.
fn restored_message(status: PromotionStatus) -> &'static str {
    match status {
        PromotionStatus::PendingApproval => "Restore requested: it applies once approved.",
        PromotionStatus::Deploying => "Restore sent to the runtime: reload to see how it ends.",
        PromotionStatus::Failed => "The restore failed: nothing was changed.",
        _ => "Restored.",
    }
}
