//! Promotions: preview, play, rollback (reading them back is `history`,
//! the snapshots they take are `snapshots`).
//!
//! A play is one transaction: lock source and target (in id order, so two
//! promotions in opposite directions cannot deadlock), check the
//! idempotency key, snapshot both sides, apply the plan, bump the target's
//! version, write the promotion row and its audit event.

use super::snapshots::{snapshot, take_snapshot};
use super::{Conn, audit, instances, lock_instance, now, pipelines, runtimes};
use crate::error::{Conflict, StoreError, StoreResult};
use crate::model::{
    Actor, NewAuditEvent, Played, Preview, Promotion, PromotionRequest, SnapshotReason, Stage,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::types::Json;
use stagehand_domain::{
    AuditEventKind, EnvKey, InstanceId, InstanceState, PipelineId, PromotionId, PromotionPlan,
    PromotionStatus, SnapshotId, StageId, TeamId, UserId, ValidationError,
};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Longest idempotency key accepted.
pub(crate) const MAX_IDEMPOTENCY_KEY: usize = 200;

/// The source and target stages of a play on `stage`; of a restore, the
/// stage twice.
async fn stages_of_play(
    conn: &mut Conn,
    team: TeamId,
    pipeline: PipelineId,
    stage: StageId,
    restore: bool,
) -> StoreResult<(Stage, Stage)> {
    let p = pipelines::get(conn, team, pipeline).await?;
    match p.stage_and_next(stage) {
        None => Err(StoreError::NotFound("stage")),
        Some((this, _)) if restore => Ok((this.clone(), this.clone())),
        Some((_, None)) => Err(ValidationError::new(
            "stage",
            "the last stage has no next stage to promote into",
        )
        .into()),
        Some((source, Some(target))) => Ok((source.clone(), target.clone())),
    }
}

/// What play promotes: the source instance as it is now, or a snapshot of
/// it chosen by the caller (which must be one of the source's). A restore
/// must name one.
async fn source_state(
    conn: &mut Conn,
    team: TeamId,
    source: &Stage,
    chosen: Option<SnapshotId>,
    restore: bool,
) -> StoreResult<InstanceState> {
    let Some(id) = chosen else {
        if restore {
            return Err(ValidationError::new(
                "snapshot",
                format!("name the snapshot of {} to restore", source.instance_name),
            )
            .into());
        }
        return instances::state(conn, source.instance_id).await;
    };
    let snap = snapshot(conn, team, id).await?;
    if snap.instance_id != source.instance_id {
        let role = if restore {
            "the instance restored"
        } else {
            "the stage played"
        };
        return Err(ValidationError::new(
            "snapshot",
            format!("is not a snapshot of {}, {role}", source.instance_name),
        )
        .into());
    }
    Ok(snap.state())
}

pub(super) async fn preview(
    conn: &mut Conn,
    team: TeamId,
    pipeline: PipelineId,
    stage: StageId,
    chosen: Option<SnapshotId>,
    restore: bool,
) -> StoreResult<Preview> {
    let (source, target) = stages_of_play(conn, team, pipeline, stage, restore).await?;
    let source_version = instances::get(conn, team, source.instance_id)
        .await?
        .version;
    let target_version = instances::get(conn, team, target.instance_id)
        .await?
        .version;
    let plan = PromotionPlan::between(
        &source_state(conn, team, &source, chosen, restore).await?,
        &instances::state(conn, target.instance_id).await?,
    );
    Ok(Preview {
        source,
        target,
        source_version,
        target_version,
        plan,
    })
}

/// Applies the flow part of a plan to an instance: deletes, then points
/// added and changed flows at their (already stored) content. Unchanged
/// flows are not touched.
pub(super) async fn apply_flow_changes(
    conn: &mut Conn,
    instance: InstanceId,
    plan: &PromotionPlan,
) -> StoreResult<()> {
    for removed in &plan.flows_removed {
        instances::remove_flow(conn, instance, &removed.name).await?;
    }
    for added in &plan.flows_added {
        instances::point_flow(conn, instance, &added.name, &added.hash).await?;
    }
    for changed in &plan.flows_changed {
        instances::point_flow(conn, instance, &changed.name, &changed.to).await?;
    }
    Ok(())
}

/// Adds the plan's new keys to the instance, without values.
pub(super) async fn add_keys(
    conn: &mut Conn,
    instance: InstanceId,
    keys: &[EnvKey],
) -> StoreResult<()> {
    let at = now();
    for key in keys {
        sqlx::query(
            "insert into env_vars (instance_id, key, created_at, updated_at) values ($1, $2, $3, $3)
             on conflict (instance_id, key) do nothing",
        )
        .bind(instance.0)
        .bind(key.as_str())
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn check_idempotency_key(key: &str) -> StoreResult<()> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || key.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "idempotency_key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters"),
        )
        .into());
    }
    Ok(())
}

async fn by_idempotency_key(
    conn: &mut Conn,
    team: TeamId,
    key: &str,
) -> StoreResult<Option<Promotion>> {
    sqlx::query_as::<_, PromotionRow>(&format!(
        "select {PROMOTION_COLUMNS} from promotions where team_id = $1 and idempotency_key = $2"
    ))
    .bind(team.0)
    .bind(key)
    .fetch_optional(conn)
    .await?
    .map(PromotionRow::into_promotion)
    .transpose()
}

/// Locks both instances in id order; returns the source's version and the
/// target's.
async fn lock_pair(
    conn: &mut Conn,
    team: TeamId,
    source: InstanceId,
    target: InstanceId,
) -> StoreResult<(i64, i64)> {
    let (mut source_version, mut target_version) = (None, None);
    let mut ids = vec![source, target];
    ids.sort();
    // A restore's source is its target: one lock.
    ids.dedup();
    for id in ids {
        let v = lock_instance(conn, team, id)
            .await?
            .ok_or(StoreError::NotFound("instance"))?;
        if id == source {
            source_version = Some(v);
        }
        if id == target {
            target_version = Some(v);
        }
    }
    source_version
        .zip(target_version)
        .ok_or(StoreError::NotFound("instance"))
}

pub(super) async fn promote(conn: &mut Conn, req: PromotionRequest) -> StoreResult<Played> {
    let team = req.team;
    if let Some(key) = &req.idempotency_key {
        check_idempotency_key(key)?;
    }
    let (source, target) = stages_of_play(conn, team, req.pipeline, req.stage, req.restore).await?;
    let (source_version, target_version) =
        lock_pair(conn, team, source.instance_id, target.instance_id).await?;

    // Under the lock, a retry sees the first attempt's row.
    if let Some(key) = &req.idempotency_key
        && let Some(existing) = by_idempotency_key(conn, team, key).await?
    {
        let same_request = existing.pipeline_id == req.pipeline
            && existing.source_stage_id == req.stage
            && existing.is_restore() == req.restore
            && req
                .source_snapshot
                .is_none_or(|chosen| chosen == existing.source_snapshot_id);
        return if same_request {
            Ok(Played {
                promotion: existing,
                replayed: true,
            })
        } else {
            Err(Conflict::IdempotencyKeyReused.into())
        };
    }
    if let Some(expected) = req.expected_target_version
        && expected != target_version
    {
        return Err(Conflict::StaleVersion {
            expected,
            actual: target_version,
        }
        .into());
    }
    if let Some(expected) = req.expected_source_version
        && expected != source_version
        && req.source_snapshot.is_none()
        && !req.restore
    {
        return Err(Conflict::SourceChanged {
            instance: source.instance_name.to_string(),
            expected,
            actual: source_version,
        }
        .into());
    }

    runtimes::check_not_deploying(conn, team, target.instance_id).await?;
    // The protection of the target instance, read under its lock.
    let protection = instances::get(conn, team, target.instance_id)
        .await?
        .protection;
    let source_state = source_state(conn, team, &source, req.source_snapshot, req.restore).await?;
    let target_state = instances::state(conn, target.instance_id).await?;
    let plan = PromotionPlan::between(&source_state, &target_state);
    if protection.requires_all_env_values {
        let missing = plan.keys_awaiting_value_after();
        if !missing.is_empty() {
            return Err(Conflict::EnvValuesMissing(missing).into());
        }
    }
    // A chosen snapshot is what ships; else the source as it is now.
    let source_snapshot = match req.source_snapshot {
        Some(chosen) => chosen,
        None => {
            take_snapshot(
                conn,
                team,
                source.instance_id,
                &source_state,
                SnapshotReason::PromotionSource,
            )
            .await?
        }
    };
    let mut promotion = Promotion {
        id: PromotionId::new(),
        team_id: team,
        pipeline_id: req.pipeline,
        source_stage_id: source.id,
        target_stage_id: target.id,
        source_instance_id: source.instance_id,
        target_instance_id: target.instance_id,
        status: PromotionStatus::PendingApproval,
        source_snapshot_id: source_snapshot,
        backup_snapshot_id: None,
        target_version: None,
        requested_target_version: Some(target_version),
        plan,
        requested_by_user_id: req.actor.accountable_user_id,
        requested_by: req.actor.name.clone(),
        idempotency_key: req.idempotency_key.clone(),
        rollback_of: None,
        created_at: now(),
        applied_at: None,
        rolled_back_at: None,
        rolled_back_by: None,
        runtime_revision: None,
        runtime_error: None,
        overwrite_drift: req.overwrite_drift,
        deploy_started_at: None,
    };

    if protection.is_protected() {
        // One waiting request per source and target: a second would let
        // reviewers apply the same change twice, or the older one after
        // the newer.
        let waiting: Option<Uuid> = sqlx::query_scalar(
            "select id from promotions where team_id = $1 and source_instance_id = $2
             and target_instance_id = $3 and status = 'pending_approval' and rollback_of is null",
        )
        .bind(team.0)
        .bind(source.instance_id.0)
        .bind(target.instance_id.0)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(id) = waiting {
            return Err(Conflict::AlreadyPending {
                from: if req.restore {
                    format!("a snapshot of {}", source.instance_name)
                } else {
                    source.instance_name.to_string()
                },
                to: target.instance_name.to_string(),
                id: PromotionId(id),
            }
            .into());
        }
    }
    // An overwrite is the requester's choice only where no review follows.
    promotion.overwrite_drift = req.overwrite_drift && !protection.is_protected();
    if !protection.is_protected()
        && runtimes::connected_kind(conn, target.instance_id)
            .await?
            .is_some()
    {
        // Into a connected target: record it deploying; the runtime's
        // answer applies it (`runtimes::finish`).
        let backup = take_snapshot(
            conn,
            team,
            target.instance_id,
            &target_state,
            SnapshotReason::PromotionBackup,
        )
        .await?;
        promotion.backup_snapshot_id = Some(backup);
        runtimes::begin(
            conn,
            &mut promotion,
            true,
            &req.actor,
            target.instance_name.as_str(),
        )
        .await?;
        return Ok(Played {
            promotion,
            replayed: false,
        });
    }
    let kind = if protection.is_protected() {
        // What was reviewed is what ships: the approval applies the pinned
        // source snapshot, not whatever the source holds by then.
        AuditEventKind::PromotionRequested
    } else {
        let backup = take_snapshot(
            conn,
            team,
            target.instance_id,
            &target_state,
            SnapshotReason::PromotionBackup,
        )
        .await?;
        apply_flow_changes(conn, target.instance_id, &promotion.plan).await?;
        add_keys(conn, target.instance_id, &promotion.plan.keys_to_add).await?;
        let updated = instances::bump_version(conn, team, target.instance_id).await?;
        promotion.status = PromotionStatus::Applied;
        promotion.backup_snapshot_id = Some(backup);
        promotion.target_version = Some(updated.version);
        promotion.applied_at = Some(promotion.created_at);
        AuditEventKind::PromotionApplied
    };
    insert(conn, &promotion).await?;
    if promotion.status == PromotionStatus::Applied {
        super::delivery::arrived(conn, &promotion).await?;
    }
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor: &req.actor,
            kind,
            subject: Some(promotion.id.0),
            details: json!({
                "pipeline": promotion.pipeline_id,
                "from": source.instance_name,
                "to": target.instance_name,
                "target_version": promotion.target_version,
                "summary": promotion.plan.summary(),
                "keys_added": promotion.plan.keys_to_add,
                // An earlier snapshot chosen to ship, not the source now.
                "chosen_snapshot": req.source_snapshot,
                // The instance set back to one of its own snapshots.
                "restore": req.restore,
            }),
        },
    )
    .await?;
    Ok(Played {
        promotion,
        replayed: false,
    })
}

pub(super) async fn rollback(
    conn: &mut Conn,
    team: TeamId,
    id: PromotionId,
    expected_target_version: Option<i64>,
    actor: &Actor,
) -> StoreResult<Promotion> {
    let mut promotion = get(conn, team, id).await?;
    instances::lock_for_edit(
        conn,
        team,
        promotion.target_instance_id,
        expected_target_version,
    )
    .await?;
    // Re-read under the lock: a concurrent rollback may have won.
    promotion = get(conn, team, id).await?;
    if !promotion.status.can_become(PromotionStatus::RolledBack) {
        return Err(Conflict::Transition {
            from: promotion.status,
            to: PromotionStatus::RolledBack,
        }
        .into());
    }
    let backup_id = promotion.backup_snapshot_id.ok_or_else(|| {
        StoreError::Corrupt(format!("applied promotion {id} has no backup snapshot"))
    })?;
    runtimes::check_not_deploying(conn, team, promotion.target_instance_id).await?;
    let target = instances::get(conn, team, promotion.target_instance_id).await?;
    if target.protection.is_protected() {
        return request_rollback(
            conn,
            team,
            &promotion,
            backup_id,
            target.version,
            actor,
            false,
        )
        .await;
    }
    if runtimes::connected_kind(conn, target.id).await?.is_some() {
        // Into a connected target a rollback is deployed like a
        // promotion: a new promotion of the backup, `rollback_of` this one.
        return request_rollback(
            conn,
            team,
            &promotion,
            backup_id,
            target.version,
            actor,
            true,
        )
        .await;
    }
    let backup = snapshot(conn, team, backup_id).await?;
    let current = instances::state(conn, promotion.target_instance_id).await?;
    let safety = take_snapshot(
        conn,
        team,
        promotion.target_instance_id,
        &current,
        SnapshotReason::RollbackBackup,
    )
    .await?;
    let restore = restore_plan(backup.flows, &current);
    apply_flow_changes(conn, promotion.target_instance_id, &restore).await?;
    let updated = instances::bump_version(conn, team, promotion.target_instance_id).await?;
    let at = now();
    record_rolled_back(
        conn,
        team,
        id,
        at,
        actor,
        json!({
            "instance": updated.name,
            "restored_snapshot": backup_id,
            "pre_rollback_snapshot": safety,
            "target_version": updated.version,
            "summary": restore.summary(),
        }),
    )
    .await?;
    promotion.status = PromotionStatus::RolledBack;
    promotion.rolled_back_at = Some(at);
    promotion.rolled_back_by = Some(actor.name.clone());
    Ok(promotion)
}

/// The plan of a rollback: the target's flows as the backup had them.
/// Flows only: keys a promotion added stay, and no value is touched.
pub(super) fn restore_plan(
    backup_flows: BTreeMap<stagehand_domain::FlowName, stagehand_domain::ContentHash>,
    current: &InstanceState,
) -> PromotionPlan {
    PromotionPlan::restoring(backup_flows, current)
}

/// Marks an applied promotion rolled back and writes its audit event:
/// the last step of a direct rollback and of an approved rollback request.
pub(super) async fn record_rolled_back(
    conn: &mut Conn,
    team: TeamId,
    id: PromotionId,
    at: DateTime<Utc>,
    actor: &Actor,
    details: serde_json::Value,
) -> StoreResult<()> {
    sqlx::query(
        "update promotions set status = $2, rolled_back_at = $3, rolled_back_by = $4 where id = $1",
    )
    .bind(id.0)
    .bind(PromotionStatus::RolledBack.as_str())
    .bind(at)
    .bind(&actor.name)
    .execute(&mut *conn)
    .await?;
    super::delivery::promotion_changed(conn, id).await?;
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor,
            kind: AuditEventKind::PromotionRolledBack,
            subject: Some(id.0),
            details,
        },
    )
    .await
}

/// A rollback into a protected instance: a pending promotion of the
/// backup snapshot into the same instance, applied once approved (flows
/// only, as a direct rollback). A second request while one is pending
/// returns the first.
///
/// With `deploy` (an unprotected connected target) the new promotion is
/// not a request but the rollback itself, recorded `deploying`.
async fn request_rollback(
    conn: &mut Conn,
    team: TeamId,
    original: &Promotion,
    backup_id: SnapshotId,
    target_version: i64,
    actor: &Actor,
    deploy: bool,
) -> StoreResult<Promotion> {
    let pending: Option<PromotionRow> = sqlx::query_as(&format!(
        "select {PROMOTION_COLUMNS} from promotions
         where team_id = $1 and rollback_of = $2 and status = 'pending_approval'"
    ))
    .bind(team.0)
    .bind(original.id.0)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = pending {
        return row.into_promotion();
    }
    // A request waits on its stage's card; one into a stage that left its
    // pipeline would wait unseen (and could never be approved).
    if !deploy {
        let stage_left: bool =
            sqlx::query_scalar("select not exists (select 1 from stages where id = $1)")
                .bind(original.target_stage_id.0)
                .fetch_one(&mut *conn)
                .await?;
        if stage_left {
            return Err(Conflict::StageLeft(
                "a request to roll it back would wait where nobody sees it; restore the backup \
                 snapshot from the instance's page instead",
            )
            .into());
        }
    }
    let backup = snapshot(conn, team, backup_id).await?;
    let current = instances::state(conn, original.target_instance_id).await?;
    let plan = restore_plan(backup.flows, &current);
    let mut request = Promotion {
        id: PromotionId::new(),
        team_id: team,
        pipeline_id: original.pipeline_id,
        source_stage_id: original.target_stage_id,
        target_stage_id: original.target_stage_id,
        source_instance_id: original.target_instance_id,
        target_instance_id: original.target_instance_id,
        status: PromotionStatus::PendingApproval,
        source_snapshot_id: backup_id,
        backup_snapshot_id: None,
        target_version: None,
        requested_target_version: Some(target_version),
        plan,
        requested_by_user_id: actor.accountable_user_id,
        requested_by: actor.name.clone(),
        idempotency_key: None,
        rollback_of: Some(original.id),
        created_at: now(),
        applied_at: None,
        rolled_back_at: None,
        rolled_back_by: None,
        runtime_revision: None,
        runtime_error: None,
        overwrite_drift: false,
        deploy_started_at: None,
    };
    if deploy {
        let safety = take_snapshot(
            conn,
            team,
            original.target_instance_id,
            &current,
            SnapshotReason::RollbackBackup,
        )
        .await?;
        request.backup_snapshot_id = Some(safety);
        let target = instances::get(conn, team, original.target_instance_id).await?;
        runtimes::begin(conn, &mut request, true, actor, target.name.as_str()).await?;
        return Ok(request);
    }
    insert(conn, &request).await?;
    let target = instances::get(conn, team, original.target_instance_id).await?;
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor,
            kind: AuditEventKind::RollbackRequested,
            subject: Some(request.id.0),
            details: json!({
                "to": target.name,
                "rollback_of": original.id,
                "restores_snapshot": backup_id,
                "summary": request.plan.summary(),
            }),
        },
    )
    .await?;
    Ok(request)
}

pub(super) const PROMOTION_COLUMNS: &str = "id, team_id, pipeline_id, source_stage_id, target_stage_id, source_instance_id,
    target_instance_id, status, source_snapshot_id, backup_snapshot_id, target_version, requested_target_version,
    plan, requested_by_user_id,
    requested_by, idempotency_key, rollback_of, created_at, applied_at, rolled_back_at,
    runtime_revision, runtime_error, overwrite_drift, deploy_started_at, rolled_back_by";

#[derive(sqlx::FromRow)]
pub(super) struct PromotionRow {
    id: Uuid,
    team_id: Uuid,
    pipeline_id: Uuid,
    source_stage_id: Uuid,
    target_stage_id: Uuid,
    source_instance_id: Uuid,
    target_instance_id: Uuid,
    status: String,
    source_snapshot_id: Uuid,
    backup_snapshot_id: Option<Uuid>,
    target_version: Option<i64>,
    requested_target_version: Option<i64>,
    plan: Json<PromotionPlan>,
    requested_by_user_id: Option<Uuid>,
    requested_by: String,
    idempotency_key: Option<String>,
    rollback_of: Option<Uuid>,
    created_at: DateTime<Utc>,
    applied_at: Option<DateTime<Utc>>,
    rolled_back_at: Option<DateTime<Utc>>,
    runtime_revision: Option<String>,
    runtime_error: Option<String>,
    overwrite_drift: bool,
    deploy_started_at: Option<DateTime<Utc>>,
    rolled_back_by: Option<String>,
}

impl PromotionRow {
    pub(super) fn into_promotion(self) -> StoreResult<Promotion> {
        Ok(Promotion {
            id: PromotionId(self.id),
            team_id: TeamId(self.team_id),
            pipeline_id: PipelineId(self.pipeline_id),
            source_stage_id: StageId(self.source_stage_id),
            target_stage_id: StageId(self.target_stage_id),
            source_instance_id: InstanceId(self.source_instance_id),
            target_instance_id: InstanceId(self.target_instance_id),
            status: self.status.parse().map_err(
                |e: stagehand_domain::promotion::UnknownStatus| StoreError::Corrupt(e.to_string()),
            )?,
            source_snapshot_id: SnapshotId(self.source_snapshot_id),
            backup_snapshot_id: self.backup_snapshot_id.map(SnapshotId),
            target_version: self.target_version,
            requested_target_version: self.requested_target_version,
            plan: self.plan.0,
            requested_by_user_id: self.requested_by_user_id.map(UserId),
            requested_by: self.requested_by,
            idempotency_key: self.idempotency_key,
            rollback_of: self.rollback_of.map(PromotionId),
            created_at: self.created_at,
            applied_at: self.applied_at,
            rolled_back_at: self.rolled_back_at,
            rolled_back_by: self.rolled_back_by,
            runtime_revision: self.runtime_revision,
            runtime_error: self.runtime_error,
            overwrite_drift: self.overwrite_drift,
            deploy_started_at: self.deploy_started_at,
        })
    }
}

pub(super) async fn insert(conn: &mut Conn, p: &Promotion) -> StoreResult<()> {
    sqlx::query(&format!(
        "insert into promotions ({PROMOTION_COLUMNS})
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                 $21, $22, $23, $24, $25)"
    ))
    .bind(p.id.0)
    .bind(p.team_id.0)
    .bind(p.pipeline_id.0)
    .bind(p.source_stage_id.0)
    .bind(p.target_stage_id.0)
    .bind(p.source_instance_id.0)
    .bind(p.target_instance_id.0)
    .bind(p.status.as_str())
    .bind(p.source_snapshot_id.0)
    .bind(p.backup_snapshot_id.map(|s| s.0))
    .bind(p.target_version)
    .bind(p.requested_target_version)
    .bind(Json(&p.plan))
    .bind(p.requested_by_user_id.map(|u| u.0))
    .bind(&p.requested_by)
    .bind(&p.idempotency_key)
    .bind(p.rollback_of.map(|r| r.0))
    .bind(p.created_at)
    .bind(p.applied_at)
    .bind(p.rolled_back_at)
    .bind(&p.runtime_revision)
    .bind(&p.runtime_error)
    .bind(p.overwrite_drift)
    .bind(p.deploy_started_at)
    .bind(&p.rolled_back_by)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn get(conn: &mut Conn, team: TeamId, id: PromotionId) -> StoreResult<Promotion> {
    sqlx::query_as::<_, PromotionRow>(&format!(
        "select {PROMOTION_COLUMNS} from promotions where id = $1 and team_id = $2"
    ))
    .bind(id.0)
    .bind(team.0)
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound("promotion"))?
    .into_promotion()
}

pub(super) async fn list(conn: &mut Conn, team: TeamId, limit: i64) -> StoreResult<Vec<Promotion>> {
    sqlx::query_as::<_, PromotionRow>(&format!(
        "select {PROMOTION_COLUMNS} from promotions where team_id = $1 order by created_at desc, id desc limit $2"
    ))
    .bind(team.0)
    .bind(limit.clamp(1, 1000))
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(PromotionRow::into_promotion)
    .collect()
}
