//! Connected instances: the link to a runtime (its sealed credentials and
//! what Stagehand last saw of it), pulls that record the runtime's content
//! as the instance, and the second half of a deploy: the runtime's answer
//! turned into an applied or failed promotion.
//!
//! A promotion into a connected target is two transactions with the
//! runtime call between them. The first (in `promotions` / `approvals`)
//! plans it, takes the backup and records it `deploying`; while one is
//! deploying, nothing else changes the target ([`check_not_deploying`]).
//! The second ([`finish`]) applies the plan to Stagehand's copy once the
//! runtime took it, or marks it failed. A crash between the two leaves
//! `deploying`, which the reconciler resolves against the runtime.

use super::promotions::{
    PROMOTION_COLUMNS, PromotionRow, add_keys, apply_flow_changes, record_rolled_back,
};
use super::snapshots::{snapshot, take_snapshot};
use super::{Conn, audit, instances, lock_instance, now};
use crate::crypto::{Cipher, Sealed};
use crate::error::{Conflict, StoreError, StoreResult};
use crate::model::{
    Actor, DeployOutcome, DeploymentInput, Instance, NewAuditEvent, NewRuntimeLink, Promotion,
    PulledState, PulledValue, RuntimeLink, RuntimeState, SnapshotReason,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use stagehand_domain::{
    AuditEventKind, EnvKey, FlowContent, FlowName, InstanceId, InstanceState, PromotionId,
    PromotionPlan, PromotionStatus, SecretValue, TeamId,
};
use std::collections::BTreeMap;
use uuid::Uuid;

const LINK_COLUMNS: &str = "r.instance_id, r.kind, r.url, r.revision, r.synced_at, r.last_pull_at,
    r.state, r.state_detail, r.changed_by, r.checked_at, r.connected_at, r.connected_by";

#[derive(sqlx::FromRow)]
struct LinkRow {
    instance_id: Uuid,
    kind: String,
    url: String,
    revision: Option<String>,
    synced_at: Option<DateTime<Utc>>,
    last_pull_at: Option<DateTime<Utc>>,
    state: String,
    state_detail: Option<String>,
    changed_by: Option<String>,
    checked_at: Option<DateTime<Utc>>,
    connected_at: DateTime<Utc>,
    connected_by: String,
}

impl LinkRow {
    fn into_link(self) -> StoreResult<RuntimeLink> {
        Ok(RuntimeLink {
            instance_id: InstanceId(self.instance_id),
            kind: self.kind,
            url: self.url,
            revision: self.revision,
            synced_at: self.synced_at,
            last_pull_at: self.last_pull_at,
            state: RuntimeState::parse(&self.state)
                .ok_or_else(|| StoreError::Corrupt(format!("runtime state {:?}", self.state)))?,
            state_detail: self.state_detail,
            changed_by: self.changed_by,
            checked_at: self.checked_at,
            connected_at: self.connected_at,
            connected_by: self.connected_by,
        })
    }
}

/// The instance's runtime link, if it is connected (another team's
/// instance is not found).
pub(super) async fn link(
    conn: &mut Conn,
    team: TeamId,
    instance: InstanceId,
) -> StoreResult<Option<RuntimeLink>> {
    instances::get(conn, team, instance).await?;
    sqlx::query_as::<_, LinkRow>(&format!(
        "select {LINK_COLUMNS} from instance_runtimes r where r.instance_id = $1"
    ))
    .bind(instance.0)
    .fetch_optional(conn)
    .await?
    .map(LinkRow::into_link)
    .transpose()
}

/// Every connected instance of the team.
pub(super) async fn links(conn: &mut Conn, team: TeamId) -> StoreResult<Vec<RuntimeLink>> {
    sqlx::query_as::<_, LinkRow>(&format!(
        "select {LINK_COLUMNS} from instance_runtimes r join instances i on i.id = r.instance_id
         where i.team_id = $1 order by i.name"
    ))
    .bind(team.0)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(LinkRow::into_link)
    .collect()
}

/// Every connected instance of the installation, with its team: what the
/// background drift check walks.
pub(super) async fn all_links(conn: &mut Conn) -> StoreResult<Vec<(TeamId, RuntimeLink)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        team_id: Uuid,
        #[sqlx(flatten)]
        link: LinkRow,
    }
    sqlx::query_as::<_, Row>(&format!(
        "select i.team_id, {LINK_COLUMNS} from instance_runtimes r join instances i on i.id = r.instance_id
         order by r.instance_id"
    ))
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|r| Ok((TeamId(r.team_id), r.link.into_link()?)))
    .collect()
}

/// Connects (or re-connects) an instance to a runtime. Only someone who
/// manages protection may: the URL is where Stagehand will send flows.
pub(super) async fn connect(
    conn: &mut Conn,
    cipher: &Cipher,
    team: TeamId,
    instance: InstanceId,
    new: NewRuntimeLink,
    actor: &Actor,
) -> StoreResult<RuntimeLink> {
    check_manager(actor)?;
    lock_instance(conn, team, instance)
        .await?
        .ok_or(StoreError::NotFound("instance"))?;
    check_not_deploying(conn, team, instance).await?;
    let inst = instances::get(conn, team, instance).await?;
    let previous = link(conn, team, instance).await?;
    let sealed = cipher.seal_runtime_auth(instance, &new.auth);
    let at = now();
    // A new URL or kind is another runtime: what Stagehand knew of the
    // old one does not hold for it. New credentials for the same runtime
    // keep the revision.
    let same_runtime = previous
        .as_ref()
        .is_some_and(|p| p.kind == new.kind && p.url == new.url);
    sqlx::query(
        "insert into instance_runtimes (instance_id, kind, url, auth_nonce, auth_ciphertext, state,
             connected_at, connected_by)
         values ($1, $2, $3, $4, $5, 'unknown', $6, $7)
         on conflict (instance_id) do update set kind = excluded.kind, url = excluded.url,
             auth_nonce = excluded.auth_nonce, auth_ciphertext = excluded.auth_ciphertext,
             connected_at = excluded.connected_at, connected_by = excluded.connected_by",
    )
    .bind(instance.0)
    .bind(&new.kind)
    .bind(&new.url)
    .bind(&sealed.nonce)
    .bind(&sealed.ciphertext)
    .bind(at)
    .bind(&actor.name)
    .execute(&mut *conn)
    .await?;
    if !same_runtime {
        sqlx::query(
            "update instance_runtimes set revision = null, synced_at = null, last_pull_at = null,
                 state = 'unknown', state_detail = null, changed_by = null, checked_at = null
             where instance_id = $1",
        )
        .bind(instance.0)
        .execute(&mut *conn)
        .await?;
    }
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor,
            kind: AuditEventKind::RuntimeConnected,
            subject: Some(instance.0),
            details: json!({
                "instance": inst.name,
                "kind": new.kind,
                "url": new.url,
                "previous_url": previous.as_ref().map(|p| &p.url),
                "credentials_replaced": previous.is_some(),
            }),
        },
    )
    .await?;
    link(conn, team, instance)
        .await?
        .ok_or(StoreError::NotFound("runtime"))
}

pub(super) async fn disconnect(
    conn: &mut Conn,
    team: TeamId,
    instance: InstanceId,
    actor: &Actor,
) -> StoreResult<()> {
    check_manager(actor)?;
    lock_instance(conn, team, instance)
        .await?
        .ok_or(StoreError::NotFound("instance"))?;
    check_not_deploying(conn, team, instance).await?;
    let inst = instances::get(conn, team, instance).await?;
    let previous = link(conn, team, instance)
        .await?
        .ok_or_else(|| Conflict::NotConnected(inst.name.to_string()))?;
    sqlx::query("delete from instance_runtimes where instance_id = $1")
        .bind(instance.0)
        .execute(&mut *conn)
        .await?;
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor,
            kind: AuditEventKind::RuntimeDisconnected,
            subject: Some(instance.0),
            details: json!({ "instance": inst.name, "kind": previous.kind, "url": previous.url }),
        },
    )
    .await
}

fn check_manager(actor: &Actor) -> StoreResult<()> {
    if actor.manages_protection() {
        Ok(())
    } else {
        Err(StoreError::Forbidden(
            "connecting an instance to a runtime decides where Stagehand sends flows: it takes stage.promote_protected",
        ))
    }
}

/// The link and its credentials, for a runtime call. Not audited: the
/// credentials never leave the process except to their runtime.
pub(super) async fn credentials(
    conn: &mut Conn,
    cipher: &Cipher,
    team: TeamId,
    instance: InstanceId,
) -> StoreResult<(RuntimeLink, SecretValue)> {
    let inst = instances::get(conn, team, instance).await?;
    let found = link(conn, team, instance)
        .await?
        .ok_or_else(|| Conflict::NotConnected(inst.name.to_string()))?;
    let (nonce, ciphertext): (Vec<u8>, Vec<u8>) = sqlx::query_as(
        "select auth_nonce, auth_ciphertext from instance_runtimes where instance_id = $1",
    )
    .bind(instance.0)
    .fetch_one(&mut *conn)
    .await?;
    let auth = cipher
        .open_runtime_auth(instance, &Sealed { nonce, ciphertext })
        .map_err(|e| StoreError::Crypto(e.to_string()))?;
    Ok((found, auth))
}

/// Records what a look at the runtime found. An observation, not a
/// change: not audited, and it never touches the revision.
pub(super) async fn record_check(
    conn: &mut Conn,
    team: TeamId,
    instance: InstanceId,
    state: RuntimeState,
    detail: Option<String>,
    changed_by: Option<String>,
) -> StoreResult<RuntimeLink> {
    instances::get(conn, team, instance).await?;
    sqlx::query(
        "update instance_runtimes set state = $2, state_detail = $3, changed_by = $4, checked_at = $5
         where instance_id = $1",
    )
    .bind(instance.0)
    .bind(state.as_str())
    .bind(detail)
    .bind(changed_by)
    .bind(now())
    .execute(&mut *conn)
    .await?;
    link(conn, team, instance)
        .await?
        .ok_or(StoreError::NotFound("runtime"))
}

/// Refuses a change of an instance a promotion is being deployed into.
pub(super) async fn check_not_deploying(
    conn: &mut Conn,
    team: TeamId,
    instance: InstanceId,
) -> StoreResult<()> {
    let busy: Option<Uuid> = sqlx::query_scalar(
        "select id from promotions where team_id = $1 and target_instance_id = $2 and status = 'deploying'",
    )
    .bind(team.0)
    .bind(instance.0)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = busy {
        let inst = instances::get(conn, team, instance).await?;
        return Err(Conflict::Deploying {
            instance: inst.name.to_string(),
            id: PromotionId(id),
        }
        .into());
    }
    Ok(())
}

/// The kind of runtime the instance is connected to, if any.
pub(super) async fn connected_kind(
    conn: &mut Conn,
    instance: InstanceId,
) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("select kind from instance_runtimes where instance_id = $1")
            .bind(instance.0)
            .fetch_optional(conn)
            .await?,
    )
}

/// Refuses a direct flow edit of a connected instance: its flows are a
/// mirror of the runtime's.
pub(super) async fn check_flows_not_mirrored(
    conn: &mut Conn,
    instance: &Instance,
) -> StoreResult<()> {
    if let Some(kind) = connected_kind(conn, instance.id).await? {
        return Err(Conflict::Mirrored {
            instance: instance.name.to_string(),
            kind,
        }
        .into());
    }
    Ok(())
}

/// Records a runtime's content as the instance: its flows become exactly
/// the pulled ones, every pulled key gets the pulled value (sealed), keys
/// the runtime does not have are kept; snapshotted and audited (key names,
/// never values). Pulling changes nothing in the runtime, so it is not a
/// direct change of a protected instance: it records what runs there.
pub(super) async fn pull(
    conn: &mut Conn,
    cipher: &Cipher,
    team: TeamId,
    instance: InstanceId,
    pulled: PulledState,
    actor: &Actor,
) -> StoreResult<Instance> {
    lock_instance(conn, team, instance)
        .await?
        .ok_or(StoreError::NotFound("instance"))?;
    check_not_deploying(conn, team, instance).await?;
    let inst = instances::get(conn, team, instance).await?;
    // A pull replaces the instance's values in Stagehand: on a protected
    // instance, that is for those who manage protection.
    instances::check_unprotected(&inst, actor)?;
    let Some(known) = link(conn, team, instance).await? else {
        return Err(Conflict::NotConnected(inst.name.to_string()).into());
    };
    if known.synced_at.is_some_and(|at| at > pulled.started_at) {
        return Err(Conflict::PulledMeanwhile(inst.name.to_string()).into());
    }
    let current = instances::state(conn, instance).await?;
    let mut flows: BTreeMap<FlowName, FlowContent> = BTreeMap::new();
    for (name, content) in pulled.flows {
        flows.insert(name, content);
    }
    let wanted = InstanceState {
        flows: flows
            .iter()
            .map(|(n, c)| (n.clone(), c.hash().clone()))
            .collect(),
        env: current.env.clone(),
    };
    let plan = PromotionPlan::between(&wanted, &current);
    for (name, content) in &flows {
        if current.flows.get(name) != Some(content.hash()) {
            instances::save_blob(conn, team, content).await?;
        }
    }
    apply_flow_changes(conn, instance, &plan).await?;

    let mut values_changed = Vec::new();
    let mut keys_added = Vec::new();
    let mut stored_values = current_values(conn, cipher, instance).await?;
    for (key, value) in &pulled.env {
        let before = stored_values.remove(key);
        let (sealed, held) = match value {
            PulledValue::Value(v) => (Some(cipher.seal_env(instance, key, v)), false),
            PulledValue::HeldByRuntime => (None, true),
            PulledValue::Empty => (None, false),
        };
        let same = match (&before, value) {
            (Some(Stored { value: Some(b), .. }), PulledValue::Value(v)) => b == v,
            (
                Some(Stored {
                    value: None,
                    held: true,
                }),
                PulledValue::HeldByRuntime,
            ) => true,
            (
                Some(Stored {
                    value: None,
                    held: false,
                }),
                PulledValue::Empty,
            ) => true,
            _ => false,
        };
        if before.is_none() {
            keys_added.push(key.clone());
        } else if !same {
            values_changed.push(key.clone());
        }
        if same {
            continue;
        }
        let at = now();
        sqlx::query(
            "insert into env_vars (instance_id, key, value_nonce, value_ciphertext, held_by_runtime, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $6)
             on conflict (instance_id, key) do update set value_nonce = excluded.value_nonce,
                 value_ciphertext = excluded.value_ciphertext, held_by_runtime = excluded.held_by_runtime,
                 updated_at = excluded.updated_at",
        )
        .bind(instance.0)
        .bind(key.as_str())
        .bind(sealed.as_ref().map(|s| s.nonce.clone()))
        .bind(sealed.map(|s| s.ciphertext))
        .bind(held)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    let changed = !plan.is_noop() || !values_changed.is_empty() || !keys_added.is_empty();
    let updated = if changed {
        instances::bump_version(conn, team, instance).await?
    } else {
        inst
    };
    // A snapshot of what changed; a pull that found nothing new records
    // only that it looked (the revision, the audit event).
    let snap = if changed {
        let after = instances::state(conn, instance).await?;
        Some(take_snapshot(conn, team, instance, &after, SnapshotReason::RuntimePull).await?)
    } else {
        None
    };
    let at = now();
    sqlx::query(
        "update instance_runtimes set revision = $2, synced_at = $3, last_pull_at = $3,
             state = 'in_sync', state_detail = null, changed_by = $4, checked_at = $3
         where instance_id = $1",
    )
    .bind(instance.0)
    .bind(&pulled.revision)
    .bind(at)
    .bind(&pulled.changed_by)
    .execute(&mut *conn)
    .await?;
    if !changed {
        // It looked and found what Stagehand had: the revision is noted
        // above; there is no change to audit.
        return Ok(updated);
    }
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor,
            kind: AuditEventKind::InstancePulled,
            subject: Some(instance.0),
            details: json!({
                "instance": updated.name,
                "version": updated.version,
                "revision": pulled.revision,
                "snapshot": snap,
                "summary": plan.summary(),
                "keys_added": keys_added,
                "values_changed": values_changed,
            }),
        },
    )
    .await?;
    Ok(updated)
}

struct Stored {
    value: Option<SecretValue>,
    held: bool,
}

/// Every key of the instance with its value (opened) and whether only the
/// runtime holds it: one query, however many keys.
async fn current_values(
    conn: &mut Conn,
    cipher: &Cipher,
    instance: InstanceId,
) -> StoreResult<BTreeMap<EnvKey, Stored>> {
    type Row = (String, Option<Vec<u8>>, Option<Vec<u8>>, bool);
    let rows: Vec<Row> = sqlx::query_as(
        "select key, value_nonce, value_ciphertext, held_by_runtime from env_vars where instance_id = $1",
    )
    .bind(instance.0)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(key, nonce, ciphertext, held)| {
            let key = super::stored(EnvKey::parse(&key))?;
            let value = match (nonce, ciphertext) {
                (Some(nonce), Some(ciphertext)) => Some(
                    cipher
                        .open_env(instance, &key, &Sealed { nonce, ciphertext })
                        .map_err(|e| StoreError::Crypto(e.to_string()))?,
                ),
                _ => None,
            };
            Ok((key, Stored { value, held }))
        })
        .collect()
}

/// Records a promotion as being deployed: the first transaction of a
/// deploy. `promotion` carries its plan and backup; it is inserted, or (an
/// approved request) updated.
pub(super) async fn begin(
    conn: &mut Conn,
    promotion: &mut Promotion,
    insert: bool,
    actor: &Actor,
    target_name: &str,
) -> StoreResult<()> {
    let at = now();
    promotion.status = PromotionStatus::Deploying;
    promotion.deploy_started_at = Some(at);
    if insert {
        super::promotions::insert(conn, promotion).await?;
    } else {
        sqlx::query(
            "update promotions set status = $2, backup_snapshot_id = $3, plan = $4, deploy_started_at = $5
             where id = $1",
        )
        .bind(promotion.id.0)
        .bind(PromotionStatus::Deploying.as_str())
        .bind(promotion.backup_snapshot_id.map(|s| s.0))
        .bind(sqlx::types::Json(&promotion.plan))
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(promotion.team_id),
            actor,
            kind: AuditEventKind::PromotionDeploying,
            subject: Some(promotion.id.0),
            details: json!({
                "pipeline": promotion.pipeline_id,
                "to": target_name,
                "summary": promotion.plan.summary(),
                "source_snapshot": promotion.source_snapshot_id,
                "rollback_of": promotion.rollback_of,
                "overwrite_drift": promotion.overwrite_drift,
            }),
        },
    )
    .await
}

/// What a deploy sends: the flows the target will hold (the promotion's
/// source snapshot: for a rollback, the backup it restores) and the
/// target's own values for every key it will hold.
pub(super) async fn deployment(
    conn: &mut Conn,
    cipher: &Cipher,
    team: TeamId,
    id: PromotionId,
) -> StoreResult<DeploymentInput> {
    let promotion = super::promotions::get(conn, team, id).await?;
    if promotion.status != PromotionStatus::Deploying {
        return Err(Conflict::Transition {
            from: promotion.status,
            to: PromotionStatus::Applied,
        }
        .into());
    }
    let target = promotion.target_instance_id;
    let link = link(conn, team, target).await?.ok_or_else(|| {
        StoreError::Corrupt(format!(
            "promotion {id} deploys into an instance with no runtime"
        ))
    })?;
    let shipped = snapshot(conn, team, promotion.source_snapshot_id).await?;
    let flows = instances::blobs(conn, &shipped.flows).await?;
    let mut keys: Vec<EnvKey> = instances::state(conn, target)
        .await?
        .env
        .into_keys()
        .collect();
    if promotion.rollback_of.is_none() {
        keys.extend(promotion.plan.keys_to_add.iter().cloned());
    }
    keys.sort();
    keys.dedup();
    let mut stored_values = current_values(conn, cipher, target).await?;
    let values = keys
        .into_iter()
        .map(|key| {
            let value = stored_values.remove(&key).and_then(|s| s.value);
            (key, value)
        })
        .collect();
    Ok(DeploymentInput {
        promotion,
        link,
        flows,
        values,
    })
}

/// The second transaction of a deploy: the runtime's answer. Accepted,
/// the plan is applied to Stagehand's copy of the target, the runtime's
/// revision recorded and the promotion marked applied (a rollback also
/// marks what it undid rolled back); failed, the promotion is marked
/// failed with the runtime's error and the target is left as it was.
/// A promotion no longer deploying (a reconciler got there first) is
/// returned as it is.
pub(super) async fn finish(
    conn: &mut Conn,
    team: TeamId,
    id: PromotionId,
    outcome: DeployOutcome,
    actor: &Actor,
    reconciled: bool,
) -> StoreResult<Promotion> {
    let mut promotion = super::promotions::get(conn, team, id).await?;
    let target = promotion.target_instance_id;
    lock_instance(conn, team, target)
        .await?
        .ok_or(StoreError::NotFound("instance"))?;
    promotion = super::promotions::get(conn, team, id).await?;
    if promotion.status != PromotionStatus::Deploying {
        return Ok(promotion);
    }
    let at = now();
    match outcome {
        DeployOutcome::Accepted { revision } => {
            apply_flow_changes(conn, target, &promotion.plan).await?;
            if promotion.rollback_of.is_none() {
                add_keys(conn, target, &promotion.plan.keys_to_add).await?;
            }
            let updated = instances::bump_version(conn, team, target).await?;
            sqlx::query(
                "update promotions set status = $2, target_version = $3, applied_at = $4, runtime_revision = $5
                 where id = $1",
            )
            .bind(id.0)
            .bind(PromotionStatus::Applied.as_str())
            .bind(updated.version)
            .bind(at)
            .bind(&revision)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "update instance_runtimes set revision = $2, synced_at = $3, state = 'in_sync',
                     state_detail = null, changed_by = null, checked_at = $3
                 where instance_id = $1",
            )
            .bind(target.0)
            .bind(&revision)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            if let Some(original) = promotion.rollback_of {
                record_rolled_back(
                    conn,
                    team,
                    original,
                    at,
                    actor,
                    json!({
                        "instance": updated.name,
                        "restored_snapshot": promotion.source_snapshot_id,
                        "pre_rollback_snapshot": promotion.backup_snapshot_id,
                        "target_version": updated.version,
                        "summary": promotion.plan.summary(),
                        "deployed_by": promotion.id,
                        "runtime_revision": revision,
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
                    subject: Some(id.0),
                    details: json!({
                        "pipeline": promotion.pipeline_id,
                        "to": updated.name,
                        "target_version": updated.version,
                        "summary": promotion.plan.summary(),
                        "keys_added": promotion.plan.keys_to_add,
                        "runtime_revision": revision,
                        "reconciled": reconciled,
                    }),
                },
            )
            .await?;
            promotion.status = PromotionStatus::Applied;
            promotion.target_version = Some(updated.version);
            promotion.applied_at = Some(at);
            promotion.runtime_revision = Some(revision);
        }
        DeployOutcome::Failed { error, drifted } => {
            sqlx::query("update promotions set status = $2, runtime_error = $3 where id = $1")
                .bind(id.0)
                .bind(PromotionStatus::Failed.as_str())
                .bind(&error)
                .execute(&mut *conn)
                .await?;
            if drifted {
                sqlx::query(
                    "update instance_runtimes set state = 'drifted', state_detail = $2, checked_at = $3
                     where instance_id = $1",
                )
                .bind(target.0)
                .bind(&error)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            let inst = instances::get(conn, team, target).await?;
            audit::record(
                conn,
                NewAuditEvent {
                    team: Some(team),
                    actor,
                    kind: AuditEventKind::PromotionFailed,
                    subject: Some(id.0),
                    details: json!({
                        "pipeline": promotion.pipeline_id,
                        "to": inst.name,
                        "runtime_error": error,
                        "reconciled": reconciled,
                    }),
                },
            )
            .await?;
            promotion.status = PromotionStatus::Failed;
            promotion.runtime_error = Some(error);
        }
    }
    super::delivery::promotion_changed(conn, id).await?;
    Ok(promotion)
}

/// Promotions of every team that have been deploying since before
/// `started_before`: the reconciler's work.
pub(super) async fn deploying(
    conn: &mut Conn,
    started_before: DateTime<Utc>,
) -> StoreResult<Vec<Promotion>> {
    sqlx::query_as::<_, PromotionRow>(&format!(
        "select {PROMOTION_COLUMNS} from promotions
         where status = 'deploying' and deploy_started_at < $1 order by deploy_started_at"
    ))
    .bind(started_before)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(PromotionRow::into_promotion)
    .collect()
}

/// Claims one run of a periodic job for `holder`: true for exactly one
/// caller per period, however many replicas ask at once (the row update
/// is atomic on both databases).
pub(super) async fn claim_job(
    conn: &mut Conn,
    name: &str,
    every: std::time::Duration,
    holder: &str,
) -> StoreResult<bool> {
    let at = now();
    let next = at + chrono::Duration::from_std(every).unwrap_or(chrono::Duration::seconds(60));
    sqlx::query(
        "insert into jobs (name, next_run_at) values ($1, $2) on conflict (name) do nothing",
    )
    .bind(name)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    let claimed = sqlx::query(
        "update jobs set next_run_at = $2, holder = $3, last_run_at = $4
         where name = $1 and next_run_at <= $4",
    )
    .bind(name)
    .bind(next)
    .bind(holder)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(claimed.rows_affected() == 1)
}
