//! Approvals of promotions and rollbacks into protected instances
//! (DESIGN.md point 8).
//!
//! A decision is taken under the target's row lock, like a play. Only a
//! person decides (a service-account token is not one), and never the
//! person answerable for the request; each person decides once, whether
//! through a session or their own token. One rejection rejects; the
//! requester's own rejection withdraws the request. When the
//! approvals reach the instance's required number, the promotion applies
//! the snapshot pinned at request time, not whatever the source holds by
//! then: what was reviewed is what ships.

use super::promotions::{add_keys, apply_flow_changes, get, record_rolled_back, restore_plan};
use super::snapshots::{snapshot, take_snapshot};
use super::{Conn, audit, instances, now};
use crate::error::{Conflict, StoreError, StoreResult};
use crate::model::{Actor, Approval, Decision, NewAuditEvent, Promotion, SnapshotReason};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::types::Json;
use stagehand_domain::{
    AuditEventKind, EnvKeyState, InstanceState, PromotionId, PromotionPlan, PromotionStatus,
    TeamId, UserId,
};
use uuid::Uuid;

/// Longest comment on a decision, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// A decision's comment: trimmed, blank is none, at most
/// [`MAX_COMMENT_CHARS`], no NUL (PostgreSQL cannot store one).
fn decision_comment(raw: Option<&str>) -> StoreResult<Option<String>> {
    let Some(text) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_COMMENT_CHARS {
        return Err(stagehand_domain::ValidationError::new(
            "comment",
            format!("at most {MAX_COMMENT_CHARS} characters"),
        )
        .into());
    }
    if text.contains('\0') {
        return Err(
            stagehand_domain::ValidationError::new("comment", "must not contain NUL").into(),
        );
    }
    Ok(Some(text.to_owned()))
}

/// A decision as read: reviewer, username, decision, comment, when.
type ApprovalRow = (Uuid, String, String, Option<String>, DateTime<Utc>);

pub(super) async fn list(
    conn: &mut Conn,
    team: TeamId,
    promotion: PromotionId,
) -> StoreResult<Vec<Approval>> {
    get(conn, team, promotion).await?;
    let rows: Vec<ApprovalRow> = sqlx::query_as(
        "select a.user_id, u.username, a.decision, a.comment, a.created_at
         from promotion_approvals a join users u on u.id = a.user_id
         where a.promotion_id = $1 order by a.created_at",
    )
    .bind(promotion.0)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, username, decision, comment, created_at)| Approval {
            user_id: UserId(id),
            username,
            decision,
            comment,
            created_at,
        })
        .collect())
}

pub(super) async fn decide(
    conn: &mut Conn,
    team: TeamId,
    id: PromotionId,
    decision: Decision,
    comment: Option<&str>,
    actor: &Actor,
) -> StoreResult<Promotion> {
    let comment = decision_comment(comment)?;
    let promotion = get(conn, team, id).await?;
    instances::lock_for_edit(conn, team, promotion.target_instance_id, None).await?;
    // Re-read under the lock: another reviewer may have just decided.
    let mut promotion = get(conn, team, id).await?;
    if promotion.status != PromotionStatus::PendingApproval {
        return Err(Conflict::Decided(promotion.status).into());
    }
    let reviewer =
        actor
            .user_id
            .ok_or(StoreError::Invalid(stagehand_domain::ValidationError::new(
                "actor",
                "only a user can approve or reject",
            )))?;
    // The requester may not approve their request, but may withdraw it:
    // a rejection of their own.
    let withdrawn = promotion.requested_by_user_id == Some(reviewer);
    if withdrawn && decision == Decision::Approve {
        return Err(Conflict::OwnPromotion.into());
    }
    // A request whose stage left its pipeline (stages no longer leave
    // while one waits; older data may hold such a request) is no longer
    // shown there: it can be rejected, not approved.
    if decision == Decision::Approve {
        let stage_left: bool =
            sqlx::query_scalar("select not exists (select 1 from stages where id = $1)")
                .bind(promotion.target_stage_id.0)
                .fetch_one(&mut *conn)
                .await?;
        if stage_left {
            return Err(Conflict::StageLeft("the request can be rejected, not approved").into());
        }
    }
    let inserted = sqlx::query(
        "insert into promotion_approvals (promotion_id, user_id, decision, comment, created_at)
         values ($1, $2, $3, $4, $5) on conflict (promotion_id, user_id) do nothing",
    )
    .bind(id.0)
    .bind(reviewer.0)
    .bind(decision.as_str())
    .bind(comment.as_deref())
    .bind(now())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(Conflict::AlreadyDecided.into());
    }
    let kind = match decision {
        Decision::Approve => AuditEventKind::PromotionApproved,
        Decision::Reject => AuditEventKind::PromotionRejected,
    };
    // Which promotion, in names: the log reads "approved dev → prod" (an
    // instance deleted since has none).
    let names = instances::names(conn, team).await?;
    let name_of = |i: stagehand_domain::InstanceId| {
        names.iter().find(|n| n.id == i).map(|n| n.name.to_string())
    };
    let mut details = json!({
        "requested_by": promotion.requested_by,
        "withdrawn": withdrawn,
        "from": name_of(promotion.source_instance_id),
        "to": name_of(promotion.target_instance_id),
        "rollback": promotion.rollback_of.is_some(),
        "restore": promotion.is_restore(),
    });
    if let Some(c) = &comment {
        details["comment"] = json!(c);
    }
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor,
            kind,
            subject: Some(id.0),
            details,
        },
    )
    .await?;
    if decision == Decision::Reject {
        set_status(conn, id, PromotionStatus::Rejected).await?;
        super::delivery::promotion_changed(conn, id).await?;
        promotion.status = PromotionStatus::Rejected;
        return Ok(promotion);
    }

    let approvals: i64 = sqlx::query_scalar(
        "select count(*) from promotion_approvals where promotion_id = $1 and decision = 'approve'",
    )
    .bind(id.0)
    .fetch_one(&mut *conn)
    .await?;
    // The protection of the target instance, read under its lock: it
    // belongs to the instance, whatever became of the pipeline since.
    let protection = instances::get(conn, team, promotion.target_instance_id)
        .await?
        .protection;
    if approvals < i64::from(protection.required_approvals) {
        return Ok(promotion);
    }
    apply_pinned(
        conn,
        team,
        &mut promotion,
        protection.requires_all_env_values,
        actor,
    )
    .await?;
    super::delivery::promotion_changed(conn, id).await?;
    Ok(promotion)
}

/// Applies the promotion's pinned source snapshot to its target.
async fn apply_pinned(
    conn: &mut Conn,
    team: TeamId,
    promotion: &mut Promotion,
    requires_all_env_values: bool,
    actor: &Actor,
) -> StoreResult<()> {
    super::runtimes::check_not_deploying(conn, team, promotion.target_instance_id).await?;
    let pinned = snapshot(conn, team, promotion.source_snapshot_id).await?;
    let undone = match promotion.rollback_of {
        Some(original) => Some(check_still_applied(conn, team, original).await?),
        None => None,
    };
    let target_id = promotion.target_instance_id;
    let current = instances::state(conn, target_id).await?;
    let plan = if undone.is_some() {
        // A rollback restores flows only, as a direct one does.
        restore_plan(pinned.flows, &current)
    } else {
        // The snapshot has key names only; whether the source had values
        // does not matter to the target, which never gets them.
        let source = InstanceState {
            flows: pinned.flows,
            env: pinned
                .env_keys
                .into_iter()
                .map(|k| (k, EnvKeyState::AwaitingValue))
                .collect(),
        };
        PromotionPlan::between(&source, &current)
    };
    if requires_all_env_values && undone.is_none() {
        let missing = plan.keys_awaiting_value_after();
        if !missing.is_empty() {
            return Err(Conflict::EnvValuesMissing(missing).into());
        }
    }
    let backup = take_snapshot(
        conn,
        team,
        target_id,
        &current,
        if undone.is_some() {
            SnapshotReason::RollbackBackup
        } else {
            SnapshotReason::PromotionBackup
        },
    )
    .await?;
    if super::runtimes::connected_kind(conn, target_id)
        .await?
        .is_some()
    {
        // Into a connected target the approval deploys; the runtime's
        // answer applies it (`runtimes::finish`).
        promotion.backup_snapshot_id = Some(backup);
        promotion.plan = plan;
        let target = instances::get(conn, team, target_id).await?;
        return super::runtimes::begin(conn, promotion, false, actor, target.name.as_str()).await;
    }
    apply_flow_changes(conn, target_id, &plan).await?;
    add_keys(conn, target_id, &plan.keys_to_add).await?;
    let updated = instances::bump_version(conn, team, target_id).await?;
    let at = now();
    sqlx::query(
        "update promotions set status = $2, backup_snapshot_id = $3, target_version = $4,
         applied_at = $5, plan = $6 where id = $1",
    )
    .bind(promotion.id.0)
    .bind(PromotionStatus::Applied.as_str())
    .bind(backup.0)
    .bind(updated.version)
    .bind(at)
    .bind(Json(&plan))
    .execute(&mut *conn)
    .await?;
    if let Some(original) = undone {
        record_rolled_back(
            conn,
            team,
            original,
            at,
            actor,
            json!({
                "instance": updated.name,
                "restored_snapshot": promotion.source_snapshot_id,
                "pre_rollback_snapshot": backup,
                "target_version": updated.version,
                "summary": plan.summary(),
                "approved_request": promotion.id,
            }),
        )
        .await?;
    }
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor,
            kind: AuditEventKind::PromotionApplied,
            subject: Some(promotion.id.0),
            details: json!({
                "pipeline": promotion.pipeline_id,
                "to": updated.name,
                "target_version": updated.version,
                "summary": plan.summary(),
                "keys_added": plan.keys_to_add,
                "approved": true,
                // What shipped: the snapshot pinned at the request; a
                // restore sets the instance back to one of its own.
                "source_snapshot": promotion.source_snapshot_id,
                "restore": promotion.is_restore(),
            }),
        },
    )
    .await?;
    promotion.status = PromotionStatus::Applied;
    promotion.backup_snapshot_id = Some(backup);
    promotion.target_version = Some(updated.version);
    promotion.applied_at = Some(at);
    promotion.plan = plan;
    Ok(())
}

/// The promotion a rollback request undoes must still be applied when the
/// request is approved (not rolled back meanwhile by another request).
async fn check_still_applied(
    conn: &mut Conn,
    team: TeamId,
    original: PromotionId,
) -> StoreResult<PromotionId> {
    let status = get(conn, team, original).await?.status;
    if !status.can_become(PromotionStatus::RolledBack) {
        return Err(Conflict::Transition {
            from: status,
            to: PromotionStatus::RolledBack,
        }
        .into());
    }
    Ok(original)
}

async fn set_status(conn: &mut Conn, id: PromotionId, status: PromotionStatus) -> StoreResult<()> {
    sqlx::query("update promotions set status = $2 where id = $1")
        .bind(id.0)
        .bind(status.as_str())
        .execute(conn)
        .await?;
    Ok(())
}
