//! Snapshots in the UI: one snapshot's page (what it holds by hash, its
//! keys, why and when it was taken, the promotions that used it), its
//! download, and the comparison of any two of the team's snapshots (of
//! one instance or of two: "does prod match qa?") with each flow's diff.

use super::diffs::{Differ, FlowDiff};
use super::paths::parse_id;
use super::promotions::{Names, PromotionRow};
use super::{Chrome, render, when};
use crate::AppState;
use crate::authz::Ctx;
use crate::error::{AppError, AppResult};
use crate::extract::Query;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use stagehand_domain::{FlowContent, FlowName, PromotionPlan, SnapshotId};
use stagehand_store::{Snapshot, SnapshotMeta};
use std::collections::HashMap;

#[derive(Deserialize)]
pub(crate) struct SnapshotPath {
    team: String,
    snapshot: String,
}

impl SnapshotPath {
    fn id(&self) -> AppResult<SnapshotId> {
        parse_id::<stagehand_domain::TeamId>(&self.team, "team")?;
        parse_id(&self.snapshot, "snapshot")
    }
}

/// A snapshot as people name it: "qa, promotion backup, 2026-… (1a2b3c4d5e6f)".
struct Label {
    id: String,
    instance_id: String,
    instance: String,
    reason: String,
    at: String,
    hash: String,
}

impl Label {
    fn new(
        names: &HashMap<stagehand_domain::InstanceId, String>,
        s: &SnapshotMeta,
        instance: stagehand_domain::InstanceId,
    ) -> Self {
        Self {
            id: s.id.to_string(),
            instance_id: instance.to_string(),
            instance: names
                .get(&instance)
                .cloned()
                .unwrap_or_else(|| "(deleted instance)".into()),
            reason: s.reason.as_str().replace('_', " "),
            at: when(&s.created_at),
            hash: s.content_hash.short().to_owned(),
        }
    }

    fn of(names: &HashMap<stagehand_domain::InstanceId, String>, s: &Snapshot) -> Self {
        Self::new(
            names,
            &SnapshotMeta {
                id: s.id,
                reason: s.reason,
                content_hash: s.content_hash.clone(),
                created_at: s.created_at,
            },
            s.instance_id,
        )
    }

    fn text(&self) -> String {
        format!(
            "{}, {}, {} ({})",
            self.instance, self.reason, self.at, self.hash
        )
    }
}

struct FlowLine {
    name: String,
    hash: String,
}

#[derive(Template)]
#[template(path = "snapshot.html")]
struct SnapshotPage {
    chrome: Chrome,
    label: Label,
    flows: Vec<FlowLine>,
    keys: Vec<String>,
    used_by: Vec<PromotionRow>,
    /// Snapshots it may be compared with: the instance's own, then the
    /// newest of each other instance.
    compare_with: Vec<(String, String)>,
    /// Where it may be promoted: the preview of each stage of its instance
    /// that has a next stage, and what that next stage is.
    promote_to: Vec<(String, String)>,
    /// Where it may be restored: the restore preview of each stage of its
    /// instance, and the pipeline's name.
    restore_in: Vec<(String, String)>,
}

/// Snapshots offered to compare with, per instance.
const CHOICES_PER_INSTANCE: i64 = 10;
/// Instances whose snapshots are offered.
const CHOICE_INSTANCES: usize = 20;

async fn instance_names(
    state: &AppState,
    team: stagehand_domain::TeamId,
) -> AppResult<(
    Vec<stagehand_store::Instance>,
    HashMap<stagehand_domain::InstanceId, String>,
)> {
    let instances = state.store.instances(team).await?;
    let names = instances
        .iter()
        .map(|i| (i.id, i.name.to_string()))
        .collect();
    Ok((instances, names))
}

pub(crate) async fn view_snapshot_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<SnapshotPath>,
) -> AppResult<Response> {
    let team = ctx.team_id()?;
    let id = path.id()?;
    let snapshot = state.store.snapshot(team, id).await?;
    let (instances, names) = instance_names(&state, team).await?;
    let used_by = state.store.snapshot_promotions(team, id).await?;
    let pipelines = state.store.pipelines(team).await?;
    let rows = Names::new(&pipelines, &instances);
    let promote_to = pipelines
        .iter()
        .filter_map(|p| {
            let at = p
                .stages
                .iter()
                .position(|s| s.instance_id == snapshot.instance_id)?;
            let next = p.stages.get(at + 1)?;
            Some((
                format!(
                    "/teams/{team}/pipelines/{}/stages/{}/preview?snapshot={id}",
                    p.id, p.stages[at].id
                ),
                format!("{} in {}", next.instance_name, p.name),
            ))
        })
        .collect();
    let restore_in = pipelines
        .iter()
        .filter_map(|p| {
            let stage = p
                .stages
                .iter()
                .find(|s| s.instance_id == snapshot.instance_id)?;
            Some((
                format!(
                    "/teams/{team}/pipelines/{}/stages/{}/restore?snapshot={id}",
                    p.id, stage.id
                ),
                p.name.to_string(),
            ))
        })
        .collect();
    // This instance first, then the others.
    let mut order: Vec<stagehand_domain::InstanceId> = vec![snapshot.instance_id];
    order.extend(
        instances
            .iter()
            .map(|i| i.id)
            .filter(|i| *i != snapshot.instance_id)
            .take(CHOICE_INSTANCES),
    );
    let mut compare_with = Vec::new();
    for instance in order {
        if !names.contains_key(&instance) {
            continue;
        }
        for s in state
            .store
            .snapshots(team, instance, CHOICES_PER_INSTANCE)
            .await?
            .into_iter()
            .filter(|s| s.id != id)
        {
            let l = Label::new(&names, &s, instance);
            compare_with.push((l.id.clone(), l.text()));
        }
    }
    render(SnapshotPage {
        chrome: Chrome::new(&ctx),
        label: Label::of(&names, &snapshot),
        flows: snapshot
            .flows
            .iter()
            .map(|(name, hash)| FlowLine {
                name: name.to_string(),
                hash: hash.short().to_owned(),
            })
            .collect(),
        keys: snapshot.env_keys.iter().map(ToString::to_string).collect(),
        used_by: used_by
            .iter()
            .map(|p| rows.head_row(p, String::new()))
            .collect(),
        compare_with,
        promote_to,
        restore_in,
    })
}

/// The same file as the API's download: what `stagehand flows push` takes.
pub(crate) async fn download_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<SnapshotPath>,
) -> AppResult<Response> {
    crate::api::snapshots::file(&state, ctx.team_id()?, path.id()?).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct CompareQuery {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage {
    chrome: Chrome,
    from: Label,
    to: Label,
    equal: bool,
    plan: PromotionPlan,
    diffs: Vec<FlowDiff>,
    diff_old: String,
    diff_new: String,
}

/// Most flows whose diff the comparison shows.
const MAX_DIFFS: usize = 20;

pub(crate) async fn compare_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<CompareQuery>,
) -> AppResult<Response> {
    let team = ctx.team_id()?;
    let required = |raw: Option<String>, field: &'static str| -> AppResult<SnapshotId> {
        let raw = raw
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| AppError::invalid(field, "choose a snapshot"))?;
        parse_id(raw.trim(), "snapshot")
    };
    let (from, to) = (required(q.from, "from")?, required(q.to, "to")?);
    let (a, b, a_flows, b_flows) = tokio::try_join!(
        state.store.snapshot(team, from),
        state.store.snapshot(team, to),
        state.store.snapshot_flows(team, from),
        state.store.snapshot_flows(team, to),
    )?;
    let (_, names) = instance_names(&state, team).await?;
    // The plan that would turn A into B: B as the source, A as the target.
    let plan = PromotionPlan::between(&b.state(), &a.state());
    let a_flows: HashMap<FlowName, FlowContent> = a_flows.into_iter().collect();
    let b_flows: HashMap<FlowName, FlowContent> = b_flows.into_iter().collect();
    let differ = Differ::new();
    let diffs: Vec<FlowDiff> = plan
        .flows_changed
        .iter()
        .map(|c| {
            differ.diff(
                "Changed",
                &c.name,
                a_flows.get(&c.name),
                b_flows.get(&c.name),
            )
        })
        .chain(
            plan.flows_added
                .iter()
                .map(|f| differ.diff("Only in B", &f.name, None, b_flows.get(&f.name))),
        )
        .chain(
            plan.flows_removed
                .iter()
                .map(|f| differ.diff("Only in A", &f.name, a_flows.get(&f.name), None)),
        )
        .take(MAX_DIFFS)
        .collect();
    let (from, to) = (Label::of(&names, &a), Label::of(&names, &b));
    render(ComparePage {
        chrome: Chrome::new(&ctx),
        diff_old: format!("A: {}", from.text()),
        diff_new: format!("B: {}", to.text()),
        equal: a.content_hash == b.content_hash,
        from,
        to,
        plan,
        diffs,
    })
}
