//! Instances: their flows, env vars and settings. Every edit locks the
//! instance row, bumps its version and writes its audit event in one
//! transaction.

use super::{Conn, Db, audit, lock_instance, now, stored};
use crate::crypto::{Cipher, Sealed};
use crate::error::{Conflict, StoreError, StoreResult};
use crate::model::{Actor, EnvVarMeta, Flow, FlowMeta, Instance, InstanceName, NewAuditEvent};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::types::Json;
use stagehand_domain::{
    AuditEventKind, ContentHash, EnvKey, EnvKeyState, FlowContent, FlowName, InstanceId,
    InstanceState, Name, Protection, SecretValue, TeamId, ValidationError,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use uuid::Uuid;

/// Largest settings document, in bytes of JSON.
pub(crate) const MAX_SETTINGS_BYTES: usize = 256 * 1024;

#[derive(sqlx::FromRow)]
struct InstanceRow {
    id: Uuid,
    team_id: Uuid,
    name: String,
    settings: Json<serde_json::Value>,
    required_approvals: i32,
    requires_all_env_values: bool,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    settings_updated_at: DateTime<Utc>,
}

impl InstanceRow {
    fn into_instance(self) -> StoreResult<Instance> {
        Ok(Instance {
            id: InstanceId(self.id),
            team_id: TeamId(self.team_id),
            name: stored(Name::from_stored(&self.name))?,
            settings: self.settings.0,
            protection: stored(Protection::new(
                u32::try_from(self.required_approvals).unwrap_or(u32::MAX),
                self.requires_all_env_values,
            ))?,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            settings_updated_at: self.settings_updated_at,
        })
    }
}

/// Null `settings_updated_at`: unchanged since the instance was created.
const INSTANCE_COLUMNS: &str = "id, team_id, name, settings, required_approvals, \
     requires_all_env_values, version, created_at, updated_at, \
     coalesce(settings_updated_at, created_at) as settings_updated_at";

fn check_settings(settings: &serde_json::Value) -> StoreResult<()> {
    if !settings.is_object() {
        return Err(ValidationError::new("settings", "must be a JSON object").into());
    }
    stagehand_domain::check_no_nul("settings", settings)?;
    if settings.to_string().len() > MAX_SETTINGS_BYTES {
        return Err(ValidationError::new("settings", "must be at most 256 KiB").into());
    }
    Ok(())
}

pub(super) async fn create(
    conn: &mut Conn,
    team: TeamId,
    name: Name,
    settings: serde_json::Value,
    actor: &Actor,
) -> StoreResult<Instance> {
    let instance = insert(conn, team, name, settings).await?;
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor,
            kind: AuditEventKind::InstanceCreated,
            subject: Some(instance.id.0),
            details: json!({ "name": instance.name }),
        },
    )
    .await?;
    Ok(instance)
}

/// A new instance of the team, unaudited (the caller records why).
async fn insert(
    conn: &mut Conn,
    team: TeamId,
    name: Name,
    settings: serde_json::Value,
) -> StoreResult<Instance> {
    check_settings(&settings)?;
    super::identity::team(conn, team).await?;
    let at = now();
    sqlx::query_as::<_, InstanceRow>(&format!(
        "insert into instances (id, team_id, name, settings, version, created_at, updated_at)
         values ($1, $2, $3, $4, 1, $5, $5) returning {INSTANCE_COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(team.0)
    .bind(name.as_str())
    .bind(Json(&settings))
    .bind(at)
    .fetch_one(&mut *conn)
    .await?
    .into_instance()
}

/// A new instance named `name` with `source`'s flows (the same content)
/// and env keys **without their values**; never its settings, protection,
/// runtime connection or credentials. Audited as `instance.duplicated`.
pub(super) async fn duplicate(
    conn: &mut Conn,
    team: TeamId,
    source: InstanceId,
    name: Name,
    actor: &Actor,
) -> StoreResult<Instance> {
    // Another team's id is "not found", as everywhere.
    let from = get(conn, team, source).await?;
    let instance = insert(conn, team, name, json!({})).await?;
    let at = now();
    let flows = sqlx::query(
        "insert into flows (instance_id, name, content_hash, created_at, updated_at)
         select $1, name, content_hash, $2, $2 from flows where instance_id = $3",
    )
    .bind(instance.id.0)
    .bind(at)
    .bind(from.id.0)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let keys = sqlx::query(
        "insert into env_vars (instance_id, key, created_at, updated_at)
         select $1, key, $2, $2 from env_vars where instance_id = $3",
    )
    .bind(instance.id.0)
    .bind(at)
    .bind(from.id.0)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor,
            kind: AuditEventKind::InstanceDuplicated,
            subject: Some(instance.id.0),
            details: json!({
                "name": instance.name,
                "from_instance_id": from.id.0,
                "from_name": from.name,
                "flows": flows,
                "keys": keys,
            }),
        },
    )
    .await?;
    Ok(instance)
}

pub(super) async fn get(conn: &mut Conn, team: TeamId, id: InstanceId) -> StoreResult<Instance> {
    sqlx::query_as::<_, InstanceRow>(&format!(
        "select {INSTANCE_COLUMNS} from instances where id = $1 and team_id = $2"
    ))
    .bind(id.0)
    .bind(team.0)
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound("instance"))?
    .into_instance()
}

pub(super) async fn list(conn: &mut Conn, team: TeamId) -> StoreResult<Vec<Instance>> {
    sqlx::query_as::<_, InstanceRow>(&format!(
        "select {INSTANCE_COLUMNS} from instances where team_id = $1 order by name"
    ))
    .bind(team.0)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(InstanceRow::into_instance)
    .collect()
}

/// The team's instances by name, ids and names only.
pub(super) async fn names(conn: &mut Conn, team: TeamId) -> StoreResult<Vec<InstanceName>> {
    sqlx::query_as::<_, (Uuid, String)>(
        "select id, name from instances where team_id = $1 order by name",
    )
    .bind(team.0)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|(id, name)| {
        Ok(InstanceName {
            id: InstanceId(id),
            name: stored(Name::from_stored(&name))?,
        })
    })
    .collect()
}

/// Locks the instance for an edit and checks the caller's expected version.
pub(super) async fn lock_for_edit(
    conn: &mut Conn,
    team: TeamId,
    id: InstanceId,
    expected_version: Option<i64>,
) -> StoreResult<i64> {
    let version = lock_instance(conn, team, id)
        .await?
        .ok_or(StoreError::NotFound("instance"))?;
    match expected_version {
        Some(expected) if expected != version => Err(Conflict::StaleVersion {
            expected,
            actual: version,
        }
        .into()),
        _ => Ok(version),
    }
}

/// Locks the instance for a direct edit (anything but an approved
/// promotion or rollback) and enforces its protection: a protected
/// instance changes directly only at the hands of someone who manages
/// protection. Checked under the row lock, so a concurrent change of the
/// protection cannot slip between the check and the write.
pub(super) async fn lock_for_direct_edit(
    conn: &mut Conn,
    team: TeamId,
    id: InstanceId,
    expected_version: Option<i64>,
    actor: &Actor,
) -> StoreResult<Instance> {
    // Protection first: a stale form for a protected instance must say
    // "protected", not "reload and try again" (there is nothing to retry).
    lock_for_edit(conn, team, id, None).await?;
    let instance = get(conn, team, id).await?;
    check_unprotected(&instance, actor)?;
    super::runtimes::check_not_deploying(conn, team, id).await?;
    match expected_version {
        Some(expected) if expected != instance.version => Err(Conflict::StaleVersion {
            expected,
            actual: instance.version,
        }
        .into()),
        _ => Ok(instance),
    }
}

/// Refuses a direct change of a protected instance by someone who does
/// not manage protection.
pub(super) fn check_unprotected(instance: &Instance, actor: &Actor) -> StoreResult<()> {
    if instance.protection.is_protected() && !actor.manages_protection() {
        return Err(StoreError::Protected {
            instance: instance.name.to_string(),
        });
    }
    Ok(())
}

/// Sets an instance's protection; only someone who manages protection may.
pub(super) async fn set_protection(
    conn: &mut Conn,
    team: TeamId,
    id: InstanceId,
    protection: Protection,
    actor: &Actor,
) -> StoreResult<Instance> {
    if !actor.manages_protection() {
        return Err(StoreError::Forbidden(
            "changing an instance's protection needs stage.promote_protected",
        ));
    }
    lock_for_edit(conn, team, id, None).await?;
    let before = get(conn, team, id).await?;
    let instance = sqlx::query_as::<_, InstanceRow>(&format!(
        "update instances set required_approvals = $3, requires_all_env_values = $4, updated_at = $5
         where id = $1 and team_id = $2 returning {INSTANCE_COLUMNS}"
    ))
    .bind(id.0)
    .bind(team.0)
    .bind(i32::try_from(protection.required_approvals).unwrap_or(i32::MAX))
    .bind(protection.requires_all_env_values)
    .bind(now())
    .fetch_one(&mut *conn)
    .await?
    .into_instance()?;
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor,
            kind: AuditEventKind::InstanceProtectionChanged,
            subject: Some(id.0),
            details: json!({
                "instance": instance.name,
                "from": before.protection,
                "to": protection,
            }),
        },
    )
    .await?;
    Ok(instance)
}

/// Records that the instance changed; returns it as it now is.
pub(super) async fn bump_version(
    conn: &mut Conn,
    team: TeamId,
    id: InstanceId,
) -> StoreResult<Instance> {
    sqlx::query_as::<_, InstanceRow>(&format!(
        "update instances set version = version + 1, updated_at = $3
         where id = $1 and team_id = $2 returning {INSTANCE_COLUMNS}"
    ))
    .bind(id.0)
    .bind(team.0)
    .bind(now())
    .fetch_one(conn)
    .await?
    .into_instance()
}

pub(super) async fn update_settings(
    conn: &mut Conn,
    team: TeamId,
    id: InstanceId,
    settings: serde_json::Value,
    expected_version: Option<i64>,
    actor: &Actor,
) -> StoreResult<Instance> {
    check_settings(&settings)?;
    lock_for_direct_edit(conn, team, id, expected_version, actor).await?;
    sqlx::query("update instances set settings = $2, settings_updated_at = $3 where id = $1")
        .bind(id.0)
        .bind(Json(&settings))
        .bind(now())
        .execute(&mut *conn)
        .await?;
    let instance = bump_version(conn, team, id).await?;
    // Settings may hold secrets of their own: the event names the keys only.
    let keys: Vec<&String> = settings
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    edited(
        conn,
        &instance,
        actor,
        AuditEventKind::InstanceSettingsUpdated,
        json!({ "setting_keys": keys }),
    )
    .await?;
    Ok(instance)
}

pub(super) async fn delete(
    conn: &mut Conn,
    team: TeamId,
    id: InstanceId,
    actor: &Actor,
) -> StoreResult<()> {
    let instance = lock_for_direct_edit(conn, team, id, None, actor).await?;
    let stages: i64 = sqlx::query_scalar("select count(*) from stages where instance_id = $1")
        .bind(id.0)
        .fetch_one(&mut *conn)
        .await?;
    if stages > 0 {
        return Err(Conflict::InUse(
            "this instance is a stage of a pipeline; remove the stage first",
        )
        .into());
    }
    sqlx::query("delete from instances where id = $1")
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor,
            kind: AuditEventKind::InstanceDeleted,
            subject: Some(id.0),
            details: json!({ "name": instance.name }),
        },
    )
    .await
}

async fn edited(
    conn: &mut Conn,
    instance: &Instance,
    actor: &Actor,
    kind: AuditEventKind,
    mut details: serde_json::Value,
) -> StoreResult<()> {
    if let Some(map) = details.as_object_mut() {
        map.insert("instance".into(), json!(instance.name));
        map.insert("version".into(), json!(instance.version));
        if instance.protection.is_protected() {
            // A direct change of a protected instance, by someone who
            // manages protection: the log says so.
            map.insert("protected".into(), json!(true));
        }
    }
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(instance.team_id),
            actor,
            kind,
            subject: Some(instance.id.0),
            details,
        },
    )
    .await
}

// ---- flows ----

#[derive(sqlx::FromRow)]
struct FlowRow {
    name: String,
    content_hash: String,
    size_bytes: i32,
    updated_at: DateTime<Utc>,
}

impl FlowRow {
    fn into_meta(self) -> StoreResult<FlowMeta> {
        Ok(FlowMeta {
            name: stored(FlowName::parse(&self.name))?,
            hash: stored(ContentHash::from_stored(self.content_hash))?,
            size_bytes: self.size_bytes.into(),
            updated_at: self.updated_at,
        })
    }
}

pub(super) async fn flows(
    conn: &mut Conn,
    team: TeamId,
    instance: InstanceId,
) -> StoreResult<Vec<FlowMeta>> {
    get(conn, team, instance).await?;
    sqlx::query_as::<_, FlowRow>(
        "select f.name, f.content_hash, b.size_bytes, f.updated_at
         from flows f join flow_blobs b on b.hash = f.content_hash
         where f.instance_id = $1 order by f.name",
    )
    .bind(instance.0)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(FlowRow::into_meta)
    .collect()
}

pub(super) async fn flow(
    conn: &mut Conn,
    team: TeamId,
    instance: InstanceId,
    name: &FlowName,
) -> StoreResult<Flow> {
    get(conn, team, instance).await?;
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        meta: FlowRow,
        content: Json<serde_json::Value>,
    }
    let row: Row = sqlx::query_as(
        "select f.name, f.content_hash, b.size_bytes, f.updated_at, b.content
         from flows f join flow_blobs b on b.hash = f.content_hash
         where f.instance_id = $1 and f.name = $2",
    )
    .bind(instance.0)
    .bind(name.as_str())
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound("flow"))?;
    Ok(Flow {
        meta: row.meta.into_meta()?,
        content: stored(FlowContent::from_value(&row.content.0))?,
    })
}

/// The contents of the named flows, from their stored blobs.
pub(super) async fn blobs(
    conn: &mut Conn,
    flows: &BTreeMap<FlowName, ContentHash>,
) -> StoreResult<Vec<(FlowName, FlowContent)>> {
    let hashes: BTreeSet<&str> = flows.values().map(ContentHash::as_str).collect();
    let mut contents: BTreeMap<String, FlowContent> = BTreeMap::new();
    let hashes: Vec<&str> = hashes.into_iter().collect();
    for chunk in hashes.chunks(500) {
        let mut q = sqlx::QueryBuilder::<super::Db>::new(
            "select hash, content from flow_blobs where hash in (",
        );
        let mut list = q.separated(", ");
        for h in chunk {
            list.push_bind(*h);
        }
        q.push(")");
        let rows: Vec<(String, Json<serde_json::Value>)> =
            q.build_query_as().fetch_all(&mut *conn).await?;
        for (hash, content) in rows {
            contents.insert(hash, stored(FlowContent::from_value(&content.0))?);
        }
    }
    flows
        .iter()
        .map(|(name, hash)| {
            contents
                .get(hash.as_str())
                .cloned()
                .map(|c| (name.clone(), c))
                .ok_or_else(|| StoreError::Corrupt(format!("flow blob {hash} is missing")))
        })
        .collect()
}

/// Stores a flow's content once, keyed by its hash, and when `team` first
/// saved it (where a lead time starts).
pub(super) async fn save_blob(
    conn: &mut Conn,
    team: TeamId,
    content: &FlowContent,
) -> StoreResult<()> {
    let raw = serde_json::value::RawValue::from_string(content.as_json().to_owned())
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "insert into flow_blobs (hash, content, size_bytes, created_at) values ($1, $2, $3, $4)
         on conflict (hash) do nothing",
    )
    .bind(content.hash().as_str())
    .bind(Json(raw))
    .bind(i32::try_from(content.len()).unwrap_or(i32::MAX))
    .bind(now())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "insert into flow_saves (team_id, hash, first_saved_at) values ($1, $2, $3)
         on conflict (team_id, hash) do nothing",
    )
    .bind(team.0)
    .bind(content.hash().as_str())
    .bind(now())
    .execute(conn)
    .await?;
    Ok(())
}

/// Points a flow of an instance at content already stored.
pub(super) async fn point_flow(
    conn: &mut Conn,
    instance: InstanceId,
    name: &FlowName,
    hash: &ContentHash,
) -> StoreResult<()> {
    let at = now();
    sqlx::query(
        "insert into flows (instance_id, name, content_hash, created_at, updated_at) values ($1, $2, $3, $4, $4)
         on conflict (instance_id, name) do update set content_hash = excluded.content_hash, updated_at = excluded.updated_at",
    )
    .bind(instance.0)
    .bind(name.as_str())
    .bind(hash.as_str())
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn remove_flow(
    conn: &mut Conn,
    instance: InstanceId,
    name: &FlowName,
) -> StoreResult<bool> {
    let done = sqlx::query("delete from flows where instance_id = $1 and name = $2")
        .bind(instance.0)
        .bind(name.as_str())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn put_flow(
    conn: &mut Conn,
    team: TeamId,
    instance: InstanceId,
    name: FlowName,
    content: FlowContent,
    expected_version: Option<i64>,
    actor: &Actor,
) -> StoreResult<Instance> {
    let inst = lock_for_direct_edit(conn, team, instance, expected_version, actor).await?;
    super::runtimes::check_flows_not_mirrored(conn, &inst).await?;
    save_blob(conn, team, &content).await?;
    point_flow(conn, instance, &name, content.hash()).await?;
    let updated = bump_version(conn, team, instance).await?;
    edited(
        conn,
        &updated,
        actor,
        AuditEventKind::FlowSaved,
        json!({ "flow": name, "hash": content.hash() }),
    )
    .await?;
    Ok(updated)
}

pub(super) async fn delete_flow(
    conn: &mut Conn,
    team: TeamId,
    instance: InstanceId,
    name: &FlowName,
    expected_version: Option<i64>,
    actor: &Actor,
) -> StoreResult<Instance> {
    let inst = lock_for_direct_edit(conn, team, instance, expected_version, actor).await?;
    super::runtimes::check_flows_not_mirrored(conn, &inst).await?;
    if !remove_flow(conn, instance, name).await? {
        return Err(StoreError::NotFound("flow"));
    }
    let updated = bump_version(conn, team, instance).await?;
    edited(
        conn,
        &updated,
        actor,
        AuditEventKind::FlowDeleted,
        json!({ "flow": name }),
    )
    .await?;
    Ok(updated)
}

pub(super) async fn replace_flows(
    conn: &mut Conn,
    team: TeamId,
    instance: InstanceId,
    flows: Vec<(FlowName, FlowContent)>,
    expected_version: Option<i64>,
    actor: &Actor,
) -> StoreResult<Instance> {
    let mut seen = BTreeSet::new();
    if let Some((dup, _)) = flows.iter().find(|(n, _)| !seen.insert(n)) {
        return Err(ValidationError::new(
            "flows",
            format!("the flow name {dup:?} appears more than once"),
        )
        .into());
    }
    let inst = lock_for_direct_edit(conn, team, instance, expected_version, actor).await?;
    super::runtimes::check_flows_not_mirrored(conn, &inst).await?;
    let current = state(conn, instance).await?;
    let wanted = InstanceState {
        flows: flows
            .iter()
            .map(|(n, c)| (n.clone(), c.hash().clone()))
            .collect(),
        env: current.env.clone(),
    };
    let plan = stagehand_domain::PromotionPlan::between(&wanted, &current);
    for (name, content) in &flows {
        if current.flows.get(name) != Some(content.hash()) {
            save_blob(conn, team, content).await?;
        }
    }
    super::promotions::apply_flow_changes(conn, instance, &plan).await?;
    let updated = bump_version(conn, team, instance).await?;
    edited(
        conn,
        &updated,
        actor,
        AuditEventKind::FlowsReplaced,
        json!({ "summary": plan.summary() }),
    )
    .await?;
    Ok(updated)
}

// ---- env vars ----

pub(super) async fn env_vars(
    conn: &mut Conn,
    team: TeamId,
    instance: InstanceId,
) -> StoreResult<Vec<EnvVarMeta>> {
    get(conn, team, instance).await?;
    let rows: Vec<(String, bool, DateTime<Utc>)> = sqlx::query_as(
        "select key, value_ciphertext is not null or held_by_runtime, updated_at from env_vars
         where instance_id = $1 order by key",
    )
    .bind(instance.0)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(key, has_value, updated_at)| {
            Ok(EnvVarMeta {
                key: stored(EnvKey::parse(&key))?,
                has_value,
                updated_at,
            })
        })
        .collect()
}

pub(super) async fn set_env_var(
    conn: &mut Conn,
    cipher: &Cipher,
    team: TeamId,
    instance: InstanceId,
    key: EnvKey,
    value: Option<SecretValue>,
    actor: &Actor,
) -> StoreResult<Instance> {
    lock_for_direct_edit(conn, team, instance, None, actor).await?;
    let existed: Option<bool> = sqlx::query_scalar(
        "select value_ciphertext is not null from env_vars where instance_id = $1 and key = $2",
    )
    .bind(instance.0)
    .bind(key.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let sealed = value.as_ref().map(|v| cipher.seal_env(instance, &key, v));
    let at = now();
    sqlx::query(
        "insert into env_vars (instance_id, key, value_nonce, value_ciphertext, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $5)
         on conflict (instance_id, key) do update set value_nonce = excluded.value_nonce,
             value_ciphertext = excluded.value_ciphertext, updated_at = excluded.updated_at",
    )
    .bind(instance.0)
    .bind(key.as_str())
    .bind(sealed.as_ref().map(|s| s.nonce.clone()))
    .bind(sealed.map(|s| s.ciphertext))
    .bind(at)
    .execute(&mut *conn)
    .await?;
    let updated = bump_version(conn, team, instance).await?;
    let kind = match (existed, value.is_some()) {
        (_, true) => AuditEventKind::EnvValueSet,
        (Some(_), false) => AuditEventKind::EnvValueCleared,
        (None, false) => AuditEventKind::EnvKeyAdded,
    };
    // The event says that the value changed, never what it is.
    edited(conn, &updated, actor, kind, json!({ "key": key })).await?;
    Ok(updated)
}

/// Most keys added in one step.
const MAX_KEYS_ADDED: usize = 1000;

pub(super) async fn add_env_keys(
    conn: &mut Conn,
    team: TeamId,
    instance: InstanceId,
    keys: Vec<EnvKey>,
    actor: &Actor,
) -> StoreResult<Vec<EnvKey>> {
    if keys.len() > MAX_KEYS_ADDED {
        return Err(
            ValidationError::new("keys", format!("at most {MAX_KEYS_ADDED} keys at once")).into(),
        );
    }
    lock_for_direct_edit(conn, team, instance, None, actor).await?;
    let existing: BTreeSet<String> =
        sqlx::query_scalar("select key from env_vars where instance_id = $1")
            .bind(instance.0)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    let added: Vec<EnvKey> = keys
        .into_iter()
        .filter(|k| !existing.contains(k.as_str()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if added.is_empty() {
        return Ok(added);
    }
    super::promotions::add_keys(conn, instance, &added).await?;
    let updated = bump_version(conn, team, instance).await?;
    for key in &added {
        edited(
            conn,
            &updated,
            actor,
            AuditEventKind::EnvKeyAdded,
            json!({ "key": key }),
        )
        .await?;
    }
    Ok(added)
}

pub(super) async fn remove_env_var(
    conn: &mut Conn,
    team: TeamId,
    instance: InstanceId,
    key: &EnvKey,
    actor: &Actor,
) -> StoreResult<Instance> {
    lock_for_direct_edit(conn, team, instance, None, actor).await?;
    let done = sqlx::query("delete from env_vars where instance_id = $1 and key = $2")
        .bind(instance.0)
        .bind(key.as_str())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("env var"));
    }
    let updated = bump_version(conn, team, instance).await?;
    edited(
        conn,
        &updated,
        actor,
        AuditEventKind::EnvKeyRemoved,
        json!({ "key": key }),
    )
    .await?;
    Ok(updated)
}

pub(super) async fn reveal_env_value(
    conn: &mut Conn,
    cipher: &Cipher,
    team: TeamId,
    instance: InstanceId,
    key: &EnvKey,
    actor: &Actor,
) -> StoreResult<Option<SecretValue>> {
    let inst = get(conn, team, instance).await?;
    type SealedColumns = (Option<Vec<u8>>, Option<Vec<u8>>);
    let row: Option<SealedColumns> = sqlx::query_as(
        "select value_nonce, value_ciphertext from env_vars where instance_id = $1 and key = $2",
    )
    .bind(instance.0)
    .bind(key.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let value = match row.ok_or(StoreError::NotFound("env var"))? {
        (Some(nonce), Some(ciphertext)) => Some(
            cipher
                .open_env(instance, key, &Sealed { nonce, ciphertext })
                .map_err(|e| StoreError::Crypto(e.to_string()))?,
        ),
        _ => None,
    };
    edited(
        conn,
        &inst,
        actor,
        AuditEventKind::EnvValueRevealed,
        json!({ "key": key, "had_value": value.is_some() }),
    )
    .await?;
    Ok(value)
}

/// The instance's flows and key states, as the planner sees them.
pub(super) async fn state(conn: &mut Conn, instance: InstanceId) -> StoreResult<InstanceState> {
    Ok(states(conn, &[instance.0])
        .await?
        .remove(&instance.0)
        .unwrap_or_default())
}

/// [`states`] through the cache: instances whose version the cache holds
/// are not read again. Every instance asked for is in the answer.
pub(super) async fn states_cached(
    conn: &mut Conn,
    cache: &crate::cache::OverviewCache,
    instances: &[(Uuid, crate::cache::StateKey)],
) -> StoreResult<BTreeMap<Uuid, crate::cache::Known>> {
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    for (id, key) in instances {
        match cache.state(*id, *key) {
            Some(known) => {
                found.insert(*id, known);
            }
            None => missing.push(*id),
        }
    }
    let mut read = states(conn, &missing).await?;
    for (id, key) in instances.iter().filter(|(id, _)| missing.contains(id)) {
        let state = read.remove(id).unwrap_or_default();
        let hash = state.content_hash();
        let known = (Arc::new(state), hash);
        cache.keep_state(*id, *key, known.clone());
        found.insert(*id, known);
    }
    Ok(found)
}

/// [`state`] of several instances in one query; an instance with neither
/// flows nor keys is absent.
pub(super) async fn states(
    conn: &mut Conn,
    instances: &[Uuid],
) -> StoreResult<BTreeMap<Uuid, InstanceState>> {
    let mut found: BTreeMap<Uuid, InstanceState> = BTreeMap::new();
    if instances.is_empty() {
        return Ok(found);
    }
    // One row per flow ('f', name, hash) and per key ('k', key, '1' when
    // it has a value or the runtime holds it, '' when it awaits one).
    let mut q = sqlx::QueryBuilder::<Db>::new(
        "select instance_id, 'f' as kind, name, content_hash as detail from flows where instance_id in (",
    );
    let mut list = q.separated(", ");
    for i in instances {
        list.push_bind(*i);
    }
    q.push(
        ") union all select instance_id, 'k', key, case when value_ciphertext is not null or held_by_runtime then '1' else '' end
         from env_vars where instance_id in (",
    );
    let mut list = q.separated(", ");
    for i in instances {
        list.push_bind(*i);
    }
    q.push(")");
    let rows: Vec<(Uuid, String, String, String)> = q.build_query_as().fetch_all(conn).await?;
    for (instance, kind, name, detail) in rows {
        let state = found.entry(instance).or_default();
        if kind == "f" {
            state.flows.insert(
                stored(FlowName::parse(&name))?,
                stored(ContentHash::from_stored(detail))?,
            );
        } else {
            let key_state = if detail.is_empty() {
                EnvKeyState::AwaitingValue
            } else {
                EnvKeyState::HasValue
            };
            state.env.insert(stored(EnvKey::parse(&name))?, key_state);
        }
    }
    Ok(found)
}
