//! Snapshots: immutable manifests of an instance's flows (name → hash) and
//! env keys, taken by promotions and rollbacks; never values.

use super::{Conn, Db, instances, now, stored};
use crate::cache::Manifest;
use crate::error::{StoreError, StoreResult};
use crate::model::{Snapshot, SnapshotMeta, SnapshotReason};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use stagehand_domain::{
    ContentHash, EnvKey, FlowName, InstanceId, InstanceState, SnapshotId, TeamId,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

pub(super) async fn take_snapshot(
    conn: &mut Conn,
    team: TeamId,
    instance: InstanceId,
    state: &InstanceState,
    reason: SnapshotReason,
) -> StoreResult<SnapshotId> {
    let id = SnapshotId::new();
    let keys: Vec<&EnvKey> = state.env.keys().collect();
    sqlx::query(
        "insert into snapshots (id, team_id, instance_id, reason, content_hash, flows, env_keys, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.0)
    .bind(team.0)
    .bind(instance.0)
    .bind(reason.as_str())
    .bind(state.content_hash().as_str())
    .bind(Json(&state.flows))
    .bind(Json(&keys))
    .bind(now())
    .execute(conn)
    .await?;
    Ok(id)
}

pub(super) async fn snapshot(
    conn: &mut Conn,
    team: TeamId,
    id: SnapshotId,
) -> StoreResult<Snapshot> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Uuid,
        team_id: Uuid,
        instance_id: Uuid,
        reason: String,
        content_hash: String,
        flows: Json<BTreeMap<FlowName, ContentHash>>,
        env_keys: Json<Vec<EnvKey>>,
        created_at: DateTime<Utc>,
    }
    let r: Row = sqlx::query_as(
        "select id, team_id, instance_id, reason, content_hash, flows, env_keys, created_at
         from snapshots where id = $1 and team_id = $2",
    )
    .bind(id.0)
    .bind(team.0)
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound("snapshot"))?;
    Ok(Snapshot {
        id: SnapshotId(r.id),
        team_id: TeamId(r.team_id),
        instance_id: InstanceId(r.instance_id),
        reason: SnapshotReason::parse(&r.reason)
            .ok_or_else(|| StoreError::Corrupt(format!("snapshot reason {:?}", r.reason)))?,
        content_hash: stored(ContentHash::from_stored(r.content_hash))?,
        flows: r.flows.0,
        env_keys: r.env_keys.0,
        created_at: r.created_at,
    })
}

/// The newest snapshots of an instance of the team, newest first.
pub(super) async fn snapshots_of(
    conn: &mut Conn,
    team: TeamId,
    instance: InstanceId,
    limit: i64,
) -> StoreResult<Vec<SnapshotMeta>> {
    instances::get(conn, team, instance).await?;
    let rows: Vec<(Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
        "select id, reason, content_hash, created_at from snapshots
         where instance_id = $1 and team_id = $2 order by created_at desc, id desc limit $3",
    )
    .bind(instance.0)
    .bind(team.0)
    .bind(limit.clamp(1, crate::model::MAX_PAGE))
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(id, reason, hash, created_at)| {
            Ok(SnapshotMeta {
                id: SnapshotId(id),
                reason: SnapshotReason::parse(&reason)
                    .ok_or_else(|| StoreError::Corrupt(format!("snapshot reason {reason:?}")))?,
                content_hash: stored(ContentHash::from_stored(hash))?,
                created_at,
            })
        })
        .collect()
}

/// The flows of the given snapshots, through the cache (a snapshot never
/// changes); a snapshot not found is absent.
pub(super) async fn manifests(
    conn: &mut Conn,
    cache: &crate::cache::OverviewCache,
    ids: &[Uuid],
) -> StoreResult<std::collections::HashMap<Uuid, Arc<Manifest>>> {
    let mut found = std::collections::HashMap::new();
    let mut missing = Vec::new();
    for id in ids {
        match cache.manifest(*id) {
            Some(m) => {
                found.insert(*id, m);
            }
            None if !missing.contains(id) => missing.push(*id),
            None => {}
        }
    }
    if !missing.is_empty() {
        let mut q = sqlx::QueryBuilder::<Db>::new("select id, flows from snapshots where id in (");
        let mut list = q.separated(", ");
        for id in &missing {
            list.push_bind(*id);
        }
        q.push(")");
        let rows: Vec<(Uuid, Json<Manifest>)> = q.build_query_as().fetch_all(conn).await?;
        for (id, flows) in rows {
            let m = Arc::new(flows.0);
            cache.keep_manifest(id, m.clone());
            found.insert(id, m);
        }
    }
    Ok(found)
}
