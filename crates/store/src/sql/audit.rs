//! The audit log: written inside the transaction of the change it records.

use super::{Conn, Db, now, push_window_and_page};
use crate::error::StoreResult;
use crate::model::{AuditEvent, AuditFilter, NewAuditEvent};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use stagehand_domain::{AuditEventId, TeamId, UserId};
use uuid::Uuid;

/// Writes one audit event. Call it on the transaction of the change.
pub(super) async fn record(conn: &mut Conn, event: NewAuditEvent<'_>) -> StoreResult<()> {
    sqlx::query(
        "insert into audit_events (id, team_id, actor_user_id, actor, source_ip, kind, subject_id, details, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(Uuid::new_v4())
    .bind(event.team.map(|t| t.0))
    .bind(event.actor.user_id.map(|u| u.0))
    .bind(&event.actor.name)
    .bind(&event.actor.source_ip)
    .bind(event.kind.as_str())
    .bind(event.subject)
    .bind(Json(&event.details))
    .bind(now())
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    team_id: Option<Uuid>,
    actor_user_id: Option<Uuid>,
    actor: String,
    source_ip: Option<String>,
    kind: String,
    subject_id: Option<Uuid>,
    details: Json<serde_json::Value>,
    created_at: DateTime<Utc>,
}

pub(super) async fn list(
    conn: &mut Conn,
    team: TeamId,
    limit: i64,
) -> StoreResult<Vec<AuditEvent>> {
    let filter = AuditFilter {
        limit,
        ..AuditFilter::default()
    };
    history(conn, Some(team), &filter).await
}

/// The events of a team (or, with `None`, those of no team: logins, users),
/// newest first.
pub(super) async fn history(
    conn: &mut Conn,
    team: Option<TeamId>,
    f: &AuditFilter,
) -> StoreResult<Vec<AuditEvent>> {
    let mut q = sqlx::QueryBuilder::<Db>::new(
        "select id, team_id, actor_user_id, actor, source_ip, kind, subject_id, details, created_at
         from audit_events where ",
    );
    match team {
        Some(t) => q.push("team_id = ").push_bind(t.0),
        None => q.push("team_id is null"),
    };
    if let Some(a) = &f.actor {
        q.push(" and actor = ").push_bind(a.clone());
    }
    if let Some(k) = &f.kind {
        q.push(" and kind = ").push_bind(k.clone());
    }
    push_window_and_page(
        &mut q,
        f.since,
        f.until,
        f.before.map(|(at, id)| (at, id.0)),
        f.limit,
    );
    let rows: Vec<Row> = q.build_query_as().fetch_all(conn).await?;
    rows.into_iter()
        .map(|r| {
            Ok(AuditEvent {
                id: AuditEventId(r.id),
                team_id: r.team_id.map(TeamId),
                actor_user_id: r.actor_user_id.map(UserId),
                actor: r.actor,
                source_ip: r.source_ip,
                kind: r.kind,
                subject_id: r.subject_id,
                details: r.details.0,
                created_at: r.created_at,
            })
        })
        .collect()
}
