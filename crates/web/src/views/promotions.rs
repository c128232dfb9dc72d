//! Play: the preview of a promotion and its confirm; the promotion page
//! with rollback; and the names that turn promotion rows into lines.

use super::diffs::{Differ, FlowDiff};
use super::paths::{PromotionPath, StagePath};
use super::{Chrome, Form, flash, non_blank, render, when};
use crate::AppState;
use crate::authz::Ctx;
use crate::error::AppResult;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use stagehand_domain::{
    EnvKeyState, FlowName, InstanceId, InstanceState, Permission, PipelineId, PromotionPlan,
    PromotionStatus, SnapshotId, TeamId,
};
use stagehand_store::{
    Decision, Instance, InstanceName, Pipeline, Promotion, PromotionHead, PromotionRequest,
};
use std::collections::HashMap;

/// What a plan changes, in words: "2 flows added, 1 changed; 3 keys
/// added" (`keys` says what becomes of the keys: "added", "to add");
/// empty when it changes nothing.
pub(crate) fn changes_in_words(s: &stagehand_domain::plan::PlanSummary, keys: &str) -> String {
    let flows: Vec<String> = [
        (s.flows_added, "added"),
        (s.flows_changed, "changed"),
        (s.flows_removed, "removed"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .enumerate()
    .map(|(i, (n, what))| match (i, n) {
        (0, 1) => format!("1 flow {what}"),
        (0, n) => format!("{n} flows {what}"),
        (_, n) => format!("{n} {what}"),
    })
    .collect();
    let mut words = flows.join(", ");
    if s.keys_added > 0 {
        if !words.is_empty() {
            words.push_str("; ");
        }
        let key = if s.keys_added == 1 { "key" } else { "keys" };
        words.push_str(&format!("{} {key} {keys}", s.keys_added));
    }
    words
}

/// Names for the ids in promotion rows, looked up once per page.
pub(crate) struct Names {
    pipelines: HashMap<PipelineId, String>,
    instances: HashMap<InstanceId, String>,
}

impl Names {
    pub fn new(pipelines: &[Pipeline], instances: &[Instance]) -> Self {
        let mut names = Self::of_pipelines(pipelines);
        names
            .instances
            .extend(instances.iter().map(|i| (i.id, i.name.to_string())));
        names
    }

    /// Names of one pipeline, its stages' instances and `others`.
    pub fn of_pipeline(pipeline: &Pipeline, others: &[InstanceName]) -> Self {
        let mut names = Self::of_pipelines(std::slice::from_ref(pipeline));
        names
            .instances
            .extend(others.iter().map(|i| (i.id, i.name.to_string())));
        names
    }

    /// Names known from the pipelines alone: their stages' instances.
    pub fn of_pipelines(pipelines: &[Pipeline]) -> Self {
        Self {
            pipelines: pipelines
                .iter()
                .map(|p| (p.id, p.name.to_string()))
                .collect(),
            instances: pipelines
                .iter()
                .flat_map(|p| &p.stages)
                .map(|s| (s.instance_id, s.instance_name.to_string()))
                .collect(),
        }
    }

    fn instance(&self, id: InstanceId) -> String {
        self.instances
            .get(&id)
            .cloned()
            .unwrap_or_else(|| "(deleted instance)".into())
    }

    pub fn row(&self, p: &Promotion) -> PromotionRow {
        let s = p.plan.summary();
        let words = changes_in_words(&s, "added");
        let words = if words.is_empty() {
            "no change".into()
        } else {
            words
        };
        self.head_row(&PromotionHead::from(p), words)
    }

    /// A line for a promotion read without its plan.
    pub fn head_row(&self, p: &PromotionHead, summary: String) -> PromotionRow {
        PromotionRow {
            id: p.id.to_string(),
            pipeline_id: p.pipeline_id.to_string(),
            pipeline: self
                .pipelines
                .get(&p.pipeline_id)
                .cloned()
                .unwrap_or_else(|| "(deleted pipeline)".into()),
            // A rollback request restores the target from its own backup:
            // "rollback → prod", not "prod → prod".
            from: if p.rollback_of.is_some() {
                "rollback".into()
            } else if p.is_restore() {
                // A restore sets the target back to one of its snapshots.
                "restore".into()
            } else {
                self.instance(p.source_instance_id)
            },
            to: self.instance(p.target_instance_id),
            status: p.status.as_str(),
            status_label: p.status.label(),
            requested_by: p.requested_by.clone(),
            created_at: when(&p.created_at),
            summary,
        }
    }
}

/// A promotion as a line of a table.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct PromotionRow {
    pub id: String,
    pub pipeline_id: String,
    pub pipeline: String,
    pub from: String,
    pub to: String,
    pub status: &'static str,
    /// The status as people read it: "awaiting approval".
    pub status_label: &'static str,
    pub requested_by: String,
    pub created_at: String,
    pub summary: String,
}

/// Most changed flows whose diff the preview shows inline.
const MAX_DIFFS: usize = 20;

#[derive(Template)]
#[template(path = "preview.html")]
struct PreviewPage {
    chrome: Chrome,
    pipeline: Pipeline,
    source: String,
    target: String,
    stage_id: String,
    plan: PromotionPlan,
    diffs: Vec<FlowDiff>,
    /// What the diffs' two sides are: "prod today", "from qa".
    diff_old: String,
    diff_new: String,
    awaiting_after: Vec<String>,
    target_version: i64,
    source_version: i64,
    idempotency_key: String,
    protected: bool,
    required_approvals: u32,
    blocked: Option<String>,
    /// Keys the target lacks that a refusal names, comma-separated, when
    /// this user may add them to the target directly.
    keys_to_add_here: Option<String>,
    /// The source's runtime, when connected: it is pulled before it ships.
    source_runtime: Option<super::runtimes::RuntimeCard>,
    source_instance_id: String,
    /// The target's runtime, looked at now, when connected.
    target_runtime: Option<super::runtimes::RuntimeCard>,
    target_instance_id: String,
    /// The target's runtime changed behind Stagehand's back.
    target_drifted: bool,
    /// The snapshot of the source promoted instead of its current state.
    chosen: Option<SnapshotChoice>,
    /// The source's recent snapshots, to promote one of them instead.
    choices: Vec<SnapshotChoice>,
}

/// A snapshot of the source that play may promote.
struct SnapshotChoice {
    id: String,
    /// Its short content hash.
    hash: String,
    label: String,
    selected: bool,
}

/// `?snapshot=`: promote that snapshot of the source, not its state now.
#[derive(Deserialize, Default)]
pub(crate) struct PreviewQuery {
    snapshot: Option<String>,
}

/// Recent snapshots of the source a lead may promote instead of its state.
const SNAPSHOT_CHOICES: i64 = 20;

pub(crate) async fn view_preview_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<StagePath>,
    crate::extract::Query(q): crate::extract::Query<PreviewQuery>,
) -> AppResult<Response> {
    let (team, pipeline_id, stage) = path.ids()?;
    let chosen_id: Option<SnapshotId> = non_blank(&q.snapshot)
        .map(|raw| super::paths::parse_id(raw, "snapshot"))
        .transpose()?;
    let pipeline = state.store.pipeline(team, pipeline_id).await?;
    let preview = state
        .store
        .preview_of(team, pipeline_id, stage, chosen_id)
        .await?;
    let mut diffs = Vec::new();
    let differ = Differ::new();
    // A chosen snapshot's flows come from it, not from the source now.
    // Flow contents are for those who may see the instances' flows.
    let shown = if ctx.can(Permission::InstanceView) {
        MAX_DIFFS
    } else {
        0
    };
    let chosen_flows: std::collections::HashMap<_, _> = match chosen_id {
        Some(id) if !preview.plan.flows_changed.is_empty() && shown > 0 => state
            .store
            .snapshot_flows(team, id)
            .await?
            .into_iter()
            .collect(),
        _ => Default::default(),
    };
    for change in preview.plan.flows_changed.iter().take(shown) {
        let from = state
            .store
            .flow(team, preview.target.instance_id, &change.name)
            .await?
            .content;
        let to = match chosen_flows.get(&change.name) {
            Some(content) => content.clone(),
            None => {
                state
                    .store
                    .flow(team, preview.source.instance_id, &change.name)
                    .await?
                    .content
            }
        };
        diffs.push(differ.diff("Changed", &change.name, Some(&from), Some(&to)));
    }
    let empty = InstanceState::default().content_hash();
    let choice = |s: &stagehand_store::SnapshotMeta| SnapshotChoice {
        id: s.id.to_string(),
        hash: s.content_hash.short().to_owned(),
        label: format!(
            "{}{} ({}, {})",
            s.content_hash.short(),
            if s.content_hash == empty {
                ", empty: no flow, no key"
            } else {
                ""
            },
            s.reason.as_str().replace('_', " "),
            when(&s.created_at)
        ),
        selected: Some(s.id) == chosen_id,
    };
    let recent = state
        .store
        .snapshots(team, preview.source.instance_id, SNAPSHOT_CHOICES)
        .await?;
    // One choice per content: the newest snapshot of it (or the chosen).
    let mut seen = std::collections::HashSet::new();
    let mut choices: Vec<SnapshotChoice> = recent
        .iter()
        .filter(|s| seen.insert(s.content_hash.clone()) || Some(s.id) == chosen_id)
        .map(choice)
        .collect();
    let chosen = match chosen_id {
        None => None,
        Some(id) => {
            let s = state.store.snapshot(team, id).await?;
            let meta = stagehand_store::SnapshotMeta {
                id: s.id,
                reason: s.reason,
                content_hash: s.content_hash,
                created_at: s.created_at,
            };
            if !choices.iter().any(|c| c.selected) {
                choices.push(choice(&meta));
            }
            Some(choice(&meta))
        }
    };
    let awaiting_after: Vec<String> = preview
        .plan
        .keys_awaiting_value_after()
        .iter()
        .map(ToString::to_string)
        .collect();
    let protection = preview.target.protection;
    let blocked = if protection.requires_all_env_values && !awaiting_after.is_empty() {
        Some(format!(
            "{} requires every env var to have a value, and after this promotion these would have none: {}. Set their values on {} first{}.",
            preview.target.instance_name,
            awaiting_after.join(", "),
            preview.target.instance_name,
            ""
        ))
    } else {
        None
    };
    // Adding keys to the target is a direct edit of it: offered to those
    // who may make one (the store checks again).
    let may_edit_target = ctx.can(Permission::InstanceEdit)
        && (!protection.is_protected() || ctx.can(Permission::MANAGES_PROTECTION));
    let keys_to_add_here =
        (blocked.is_some() && may_edit_target && !preview.plan.keys_to_add.is_empty()).then(|| {
            preview
                .plan
                .keys_to_add
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        });
    // A chosen snapshot ships as kept: the source's runtime is not pulled.
    let source_runtime = match chosen_id {
        Some(_) => None,
        None => state
            .store
            .runtime_link(team, preview.source.instance_id)
            .await?
            .map(super::runtimes::RuntimeCard::new),
    };
    let target_link = crate::deploy::link_now(
        &state,
        team,
        preview.target.instance_id,
        crate::deploy::PAGE_CHECK_REUSE,
    )
    .await?;
    let target_drifted = target_link
        .as_ref()
        .is_some_and(|l| l.state == stagehand_store::RuntimeState::Drifted);
    render(PreviewPage {
        source_runtime,
        source_instance_id: preview.source.instance_id.to_string(),
        target_runtime: target_link.map(super::runtimes::RuntimeCard::new),
        target_instance_id: preview.target.instance_id.to_string(),
        target_drifted,
        chrome: Chrome::new(&ctx),
        diff_old: format!("{} today", preview.target.instance_name),
        diff_new: match &chosen {
            Some(c) => format!("snapshot {} of {}", c.hash, preview.source.instance_name),
            None => format!("from {}", preview.source.instance_name),
        },
        source: preview.source.instance_name.to_string(),
        target: preview.target.instance_name.to_string(),
        stage_id: stage.to_string(),
        pipeline,
        plan: preview.plan,
        diffs,
        awaiting_after,
        target_version: preview.target_version,
        source_version: preview.source_version,
        idempotency_key: crate::auth::session::random_token(),
        protected: protection.is_protected(),
        required_approvals: protection.required_approvals,
        blocked,
        keys_to_add_here,
        chosen,
        choices,
    })
}

#[derive(Deserialize)]
pub(crate) struct PromoteForm {
    expected_target_version: Option<i64>,
    idempotency_key: Option<String>,
    /// A checkbox: overwrite a connected target that drifted (audited).
    overwrite_drift: Option<String>,
    /// The source's version the preview showed.
    expected_source_version: Option<i64>,
    /// Promote this snapshot of the source instead of its state now.
    source_snapshot: Option<String>,
}

pub(crate) async fn promote_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<StagePath>,
    Form(form): Form<PromoteForm>,
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
            expected_source_version: form.expected_source_version,
            source_snapshot: non_blank(&form.source_snapshot)
                .map(|raw| super::paths::parse_id(raw, "source_snapshot"))
                .transpose()?,
            restore: false,
        },
        form.expected_source_version,
    )
    .await?
    .promotion;
    Ok(flash::done(
        &format!("/teams/{team}/promotions/{}", promotion.id),
        played_message(promotion.status),
    ))
}

/// What the page after a play says.
fn played_message(status: PromotionStatus) -> &'static str {
    match status {
        PromotionStatus::PendingApproval => "Promotion requested: it applies once approved.",
        PromotionStatus::Deploying => "Promotion sent to the runtime: reload to see how it ends.",
        PromotionStatus::Failed => "The promotion failed: nothing was changed.",
        _ => "Promotion applied.",
    }
}

struct DecisionRow {
    username: String,
    decision: String,
    comment: Option<String>,
    at: String,
}

#[derive(Template)]
#[template(path = "promotion.html")]
struct PromotionPage {
    chrome: Chrome,
    row: PromotionRow,
    promotion: Promotion,
    applied_at: String,
    rolled_back_at: String,
    can_roll_back: bool,
    /// What undoing it undoes, in words ("this promotion").
    undo_what: &'static str,
    /// Its rollbacks that are promotions of their own (into a protected
    /// or connected instance), newest first.
    rollbacks: Vec<RollbackLink>,
    /// The one of them still waiting for approval.
    waiting_rollback: Option<RollbackLink>,
    decisions: Vec<DecisionRow>,
    /// Approvals the target stage requires now (0 if it is gone).
    required_approvals: u32,
    /// The target's version at request time and now, if they differ.
    target_changed: Option<(i64, i64)>,
    can_decide: bool,
    /// The request is this user's own, pending: they may withdraw it.
    can_withdraw: bool,
    /// For a request awaiting approval: what approving it would do now.
    ships: Option<Ships>,
    /// The source snapshot's short hash and when it was taken (an earlier
    /// one than the play when a lead chose it).
    source_snapshot: Option<(String, String)>,
    /// The backup's, named the same way (snapshots are known by their hash).
    backup_snapshot: Option<(String, String)>,
}

/// A rollback of the promotion on show.
#[derive(Clone)]
struct RollbackLink {
    id: String,
    status: &'static str,
    by: String,
    at: String,
}

/// What approving a waiting request does now: the pinned snapshot over the
/// target as it is today (not as it was at the request), with the diff of
/// every added and changed flow.
/// With `undo`, what undoing an applied promotion does now: its backup's
/// flows over the target as it is today.
pub(super) struct Ships {
    pub(super) plan: PromotionPlan,
    pub(super) diffs: Vec<FlowDiff>,
    /// What the diffs' two sides are.
    pub(super) diff_old: String,
    pub(super) diff_new: String,
}

pub(super) async fn what_ships(
    state: &AppState,
    team: TeamId,
    p: &Promotion,
    target_name: &str,
    with_diffs: bool,
    undo: bool,
) -> AppResult<Ships> {
    let pinned_id = if undo {
        p.backup_snapshot_id
            .ok_or(crate::error::AppError::NotFound("snapshot"))?
    } else {
        p.source_snapshot_id
    };
    let (snapshot, pinned, flows, env) = tokio::try_join!(
        state.store.snapshot(team, pinned_id),
        state.store.snapshot_flows(team, pinned_id),
        state.store.flows(team, p.target_instance_id),
        state.store.env_vars(team, p.target_instance_id),
    )?;
    let target = InstanceState {
        flows: flows.into_iter().map(|f| (f.name, f.hash)).collect(),
        env: env
            .into_iter()
            .map(|e| (e.key, EnvKeyState::of(&e.has_value.then_some(()))))
            .collect(),
    };
    // What approving applies: a rollback (and an undo) restores flows only.
    let plan = if undo || p.rollback_of.is_some() {
        PromotionPlan::restoring(snapshot.flows.clone(), &target)
    } else {
        PromotionPlan::between(&snapshot.state(), &target)
    };
    let pinned: HashMap<FlowName, stagehand_domain::FlowContent> = pinned.into_iter().collect();
    let mut diffs = Vec::new();
    let differ = Differ::new();
    // Flow contents are for those who may see the instances' flows.
    let shown = if with_diffs { MAX_DIFFS } else { 0 };
    for change in plan.flows_changed.iter().take(shown) {
        let now = state
            .store
            .flow(team, p.target_instance_id, &change.name)
            .await?;
        if let Some(then) = pinned.get(&change.name) {
            diffs.push(differ.diff("Changed", &change.name, Some(&now.content), Some(then)));
        }
    }
    for add in &plan.flows_added {
        if diffs.len() >= shown {
            break;
        }
        if let Some(content) = pinned.get(&add.name) {
            diffs.push(differ.diff("Added", &add.name, None, Some(content)));
        }
    }
    Ok(Ships {
        plan,
        diffs,
        diff_old: format!("{target_name} now"),
        diff_new: if undo {
            "the backup"
        } else {
            "the pinned snapshot"
        }
        .to_owned(),
    })
}

pub(crate) async fn view_promotion_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<PromotionPath>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let promotion = state.store.promotion(team, id).await?;
    let store = &state.store;
    let hash_and_time = |id| async move {
        store
            .snapshot(team, id)
            .await
            .ok()
            .map(|s| (s.content_hash.short().to_owned(), when(&s.created_at)))
    };
    let source_snapshot = hash_and_time(promotion.source_snapshot_id).await;
    let backup_snapshot = match promotion.backup_snapshot_id {
        Some(b) => hash_and_time(b).await,
        None => None,
    };
    let pipelines = state.store.pipelines(team).await?;
    let names = Names::new(&pipelines, &state.store.instances(team).await?);
    // Protection belongs to the target instance (0 if it is gone).
    let target = state
        .store
        .instance(team, promotion.target_instance_id)
        .await
        .ok();
    let required_approvals = target
        .as_ref()
        .map_or(0, |i| i.protection.required_approvals);
    // A waiting request whose target changed since: the approval applies
    // the pinned snapshot over the target as it is now, not as reviewed.
    let target_changed = match (&target, promotion.requested_target_version) {
        (Some(t), Some(then))
            if promotion.status == PromotionStatus::PendingApproval && t.version != then =>
        {
            Some((then, t.version))
        }
        _ => None,
    };
    let decisions = state
        .store
        .approvals(team, id)
        .await?
        .into_iter()
        .map(|a| DecisionRow {
            username: a.username,
            decision: a.decision,
            comment: a.comment,
            at: when(&a.created_at),
        })
        .collect::<Vec<_>>();
    let me = ctx.session.user.id;
    let can_withdraw = promotion.status == PromotionStatus::PendingApproval
        && ctx.can(Permission::PromotionApprove)
        && promotion.requested_by_user_id == Some(me);
    let can_decide = promotion.status == PromotionStatus::PendingApproval
        && ctx.can(Permission::PromotionApprove)
        && promotion.requested_by_user_id != Some(me)
        && !state
            .store
            .approvals(team, id)
            .await?
            .iter()
            .any(|a| a.user_id == me);
    let ships = match &target {
        Some(t) if promotion.status == PromotionStatus::PendingApproval => Some(
            what_ships(
                &state,
                team,
                &promotion,
                t.name.as_str(),
                ctx.can(Permission::InstanceView),
                false,
            )
            .await?,
        ),
        _ => None,
    };
    let rollbacks: Vec<(PromotionStatus, RollbackLink)> = state
        .store
        .rollbacks_of(team, id)
        .await?
        .into_iter()
        .map(|r| {
            (
                r.status,
                RollbackLink {
                    id: r.id.to_string(),
                    status: r.status.label(),
                    by: r.requested_by,
                    at: when(&r.created_at),
                },
            )
        })
        .collect();
    // A request its requester rejected was withdrawn, not rejected.
    let mut row = names.row(&promotion);
    if promotion.status == PromotionStatus::Rejected
        && decisions
            .iter()
            .any(|d| d.decision == "reject" && d.username == promotion.requested_by)
    {
        row.status_label = "withdrawn";
    }
    let waiting_rollback = rollbacks
        .iter()
        .find(|(s, _)| *s == PromotionStatus::PendingApproval)
        .map(|(_, r)| r.clone());
    render(PromotionPage {
        rollbacks: rollbacks.into_iter().map(|(_, r)| r).collect(),
        waiting_rollback,
        ships,
        source_snapshot,
        backup_snapshot,
        decisions,
        required_approvals,
        target_changed,
        can_decide,
        can_withdraw,
        chrome: Chrome::new(&ctx),
        row,
        applied_at: promotion.applied_at.as_ref().map(when).unwrap_or_default(),
        rolled_back_at: promotion
            .rolled_back_at
            .as_ref()
            .map(when)
            .unwrap_or_default(),
        can_roll_back: promotion.status == PromotionStatus::Applied
            && ctx.can(Permission::PromotionRollback),
        undo_what: super::undo::what_is_undone(&promotion),
        promotion,
    })
}

#[derive(Deserialize)]
pub(crate) struct DecisionForm {
    /// `approve` or `reject`.
    decision: String,
    /// Why, optionally; kept with the decision and in the audit log.
    comment: Option<String>,
}

pub(crate) async fn decide_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<PromotionPath>,
    Form(form): Form<DecisionForm>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let decision = match form.decision.as_str() {
        "approve" => Decision::Approve,
        "reject" => Decision::Reject,
        _ => {
            return Err(stagehand_domain::ValidationError::new(
                "decision",
                "must be approve or reject",
            )
            .into());
        }
    };
    let after = crate::deploy::decide(
        &state,
        team,
        id,
        decision,
        form.comment.as_deref(),
        &ctx.actor(),
    )
    .await?;
    // What was decided on, in words: a rollback or a restore is one too.
    let kind = if after.rollback_of.is_some() {
        "rollback"
    } else if after.is_restore() {
        "restore"
    } else {
        "promotion"
    };
    Ok(flash::done(
        &format!("/teams/{team}/promotions/{id}"),
        &match (decision, after.status) {
            (Decision::Reject, _) if after.requested_by_user_id == Some(ctx.session.user.id) => {
                "Withdrew your request: it will not apply.".to_owned()
            }
            (Decision::Reject, _) => format!("Recorded your rejection: the {kind} will not apply."),
            (Decision::Approve, PromotionStatus::Applied) => {
                format!("Recorded your approval, the last one needed: the {kind} is applied.")
            }
            (Decision::Approve, PromotionStatus::Deploying) => format!(
                "Recorded your approval, the last one needed: the {kind} is being deployed to the runtime."
            ),
            (Decision::Approve, _) => "Recorded your approval; it waits for the others.".to_owned(),
        },
    ))
}

/// The undo's form: the target's version its preview showed (absent from
/// an older page: then the undo applies to the target as it is).
#[derive(Deserialize)]
pub(crate) struct RollbackForm {
    expected_target_version: Option<i64>,
}

pub(crate) async fn rollback_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<PromotionPath>,
    Form(form): Form<RollbackForm>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    // Into a protected instance, this is a new request awaiting approval:
    // show it.
    let done =
        crate::deploy::rollback(&state, team, id, form.expected_target_version, &ctx.actor())
            .await?;
    Ok(flash::done(
        &format!("/teams/{team}/promotions/{}", done.id),
        if done.status == PromotionStatus::PendingApproval {
            "Rollback requested: it applies once approved."
        } else {
            "Rolled back: the flows are as they were before this promotion."
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::changes_in_words;
    use stagehand_domain::plan::PlanSummary;

    fn summary(added: usize, changed: usize, removed: usize, keys: usize) -> PlanSummary {
        PlanSummary {
            flows_added: added,
            flows_changed: changed,
            flows_removed: removed,
            keys_added: keys,
            flows_unchanged: 0,
            keys_only_in_target: 0,
        }
    }

    #[test]
    fn a_history_row_says_its_changes_in_words() {
        assert_eq!(changes_in_words(&summary(0, 0, 0, 0), "added"), "");
        assert_eq!(
            changes_in_words(&summary(0, 1, 0, 0), "added"),
            "1 flow changed"
        );
        assert_eq!(
            changes_in_words(&summary(2, 1, 0, 3), "added"),
            "2 flows added, 1 changed; 3 keys added"
        );
        assert_eq!(
            changes_in_words(&summary(0, 0, 1, 1), "added"),
            "1 flow removed; 1 key added"
        );
        assert_eq!(
            changes_in_words(&summary(0, 0, 0, 2), "added"),
            "2 keys added"
        );
    }
}
