//! The audit log: written inside the transaction of the change it records,
//! as a hash chain per team (and one for the platform's own events), so an
//! edit or deletion behind the store's back is detected by [`verify`].

use super::{Conn, Db, now, push_window_and_page};
use crate::error::StoreResult;
use crate::model::{AuditEvent, AuditFilter, ChainBreak, ChainReport, NewAuditEvent};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::types::Json;
use stagehand_domain::{AuditEventId, TeamId, UserId};
use uuid::Uuid;

/// The chain an event belongs to: its team's, or the platform's.
fn chain_of(team: Option<TeamId>) -> String {
    team.map_or_else(|| "platform".to_owned(), |t| t.to_string())
}

/// An event's hash: SHA-256 over a canonical JSON array of its position,
/// the previous hash and every field (object keys sorted, times to the
/// microsecond in UTC). Version 1 of the encoding leads the array.
#[allow(clippy::too_many_arguments)]
fn event_hash(
    seq: i64,
    prev_hash: &str,
    id: Uuid,
    team: Option<Uuid>,
    actor_user_id: Option<Uuid>,
    actor: &str,
    source_ip: Option<&str>,
    kind: &str,
    subject: Option<Uuid>,
    details: &serde_json::Value,
    created_at: DateTime<Utc>,
) -> String {
    let canonical = serde_json::json!([
        1,
        seq,
        prev_hash,
        id,
        team,
        actor_user_id,
        actor,
        source_ip,
        kind,
        subject,
        details,
        created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Writes one audit event at the end of its chain. Call it on the
/// transaction of the change; the chain head's row lock orders the writers
/// of one chain until that transaction ends.
pub(super) async fn record(conn: &mut Conn, event: NewAuditEvent<'_>) -> StoreResult<()> {
    let chain = chain_of(event.team);
    let at = now();
    sqlx::query(
        "insert into audit_chain_heads (chain, seq, last_hash, created_at) values ($1, 0, '', $2)
         on conflict (chain) do nothing",
    )
    .bind(&chain)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    let (seq, prev_hash): (i64, String) = sqlx::query_as(
        "update audit_chain_heads set seq = seq + 1 where chain = $1 returning seq, last_hash",
    )
    .bind(&chain)
    .fetch_one(&mut *conn)
    .await?;
    let id = Uuid::new_v4();
    let team = event.team.map(|t| t.0);
    let user = event.actor.user_id.map(|u| u.0);
    let hash = event_hash(
        seq,
        &prev_hash,
        id,
        team,
        user,
        &event.actor.name,
        event.actor.source_ip.as_deref(),
        event.kind.as_str(),
        event.subject,
        &event.details,
        at,
    );
    sqlx::query(
        "insert into audit_events (id, team_id, actor_user_id, actor, source_ip, kind, subject_id,
            details, created_at, chain_seq, prev_hash, hash)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id)
    .bind(team)
    .bind(user)
    .bind(&event.actor.name)
    .bind(&event.actor.source_ip)
    .bind(event.kind.as_str())
    .bind(event.subject)
    .bind(Json(&event.details))
    .bind(at)
    .bind(seq)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query("update audit_chain_heads set last_hash = $2 where chain = $1")
        .bind(&chain)
        .bind(&hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Events read per round trip while verifying.
const VERIFY_BATCH: i64 = 5_000;

/// Walks a chain from its first event and reports the first broken link:
/// an event changed (its hash does not match its fields), removed (a gap
/// in the positions), or cut from the end (the head is further along).
pub(super) async fn verify(conn: &mut Conn, team: Option<TeamId>) -> StoreResult<ChainReport> {
    #[derive(sqlx::FromRow)]
    struct Chained {
        #[sqlx(flatten)]
        row: Row,
        chain_seq: i64,
        prev_hash: Option<String>,
        hash: Option<String>,
    }
    let head: Option<(i64, String)> =
        sqlx::query_as("select seq, last_hash from audit_chain_heads where chain = $1")
            .bind(chain_of(team))
            .fetch_optional(&mut *conn)
            .await?;
    let (mut expected_seq, mut prev) = (1_i64, String::new());
    let mut checked = 0_i64;
    let broken = |checked: i64, seq: i64, id: Option<Uuid>, reason: String| ChainReport {
        checked,
        intact: false,
        first_break: Some(ChainBreak {
            seq,
            event_id: id.map(AuditEventId),
            reason,
        }),
    };
    loop {
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "select id, team_id, actor_user_id, actor, source_ip, kind, subject_id, details,
                created_at, chain_seq, prev_hash, hash
             from audit_events where ",
        );
        match team {
            Some(t) => q.push("team_id = ").push_bind(t.0),
            None => q.push("team_id is null"),
        };
        q.push(" and chain_seq >= ")
            .push_bind(expected_seq)
            .push(" order by chain_seq limit ")
            .push_bind(VERIFY_BATCH);
        let rows: Vec<Chained> = q.build_query_as().fetch_all(&mut *conn).await?;
        let done = (rows.len() as i64) < VERIFY_BATCH;
        for c in rows {
            let r = &c.row;
            if c.chain_seq != expected_seq {
                return Ok(broken(
                    checked,
                    expected_seq,
                    None,
                    format!(
                        "event {expected_seq} is missing (the next one present is {})",
                        c.chain_seq
                    ),
                ));
            }
            if c.prev_hash.as_deref() != Some(prev.as_str()) {
                return Ok(broken(
                    checked,
                    c.chain_seq,
                    Some(r.id),
                    format!("event {} does not link to the event before it", c.chain_seq),
                ));
            }
            let recomputed = event_hash(
                c.chain_seq,
                &prev,
                r.id,
                r.team_id,
                r.actor_user_id,
                &r.actor,
                r.source_ip.as_deref(),
                &r.kind,
                r.subject_id,
                &r.details.0,
                r.created_at,
            );
            if c.hash.as_deref() != Some(recomputed.as_str()) {
                return Ok(broken(
                    checked,
                    c.chain_seq,
                    Some(r.id),
                    format!("event {} was changed after it was written", c.chain_seq),
                ));
            }
            prev = recomputed;
            expected_seq += 1;
            checked += 1;
        }
        if done {
            break;
        }
    }
    let head_seq = head.as_ref().map_or(0, |(s, _)| *s);
    if head_seq != checked {
        return Ok(broken(
            checked,
            checked + 1,
            None,
            format!(
                "the chain holds {checked} events but {head_seq} were written: the newest were removed"
            ),
        ));
    }
    if head.is_some_and(|(_, h)| h != prev) {
        return Ok(broken(
            checked,
            checked,
            None,
            "the last event does not match the chain's head".into(),
        ));
    }
    Ok(ChainReport {
        checked,
        intact: true,
        first_break: None,
    })
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
