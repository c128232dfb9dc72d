//! The audit log: written inside the transaction of the change it records,
//! as a hash chain per team (and one for the platform's own events), so an
//! edit or deletion behind the store's back is detected by [`verify`].
//!
//! A purge (`retention.rs`) may remove the oldest events of a chain: the
//! chain's *anchor* then says where it starts and what its first kept
//! event links to, and the purge's own event in the platform chain
//! records every anchor, so an anchor written or removed behind the
//! store's back disagrees with the last purge and is reported.

use super::{Conn, Db, now, push_window_and_page};
use crate::error::{StoreError, StoreResult};
use crate::model::{Actor, AuditEvent, AuditFilter, ChainBreak, ChainReport, NewAuditEvent};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::types::Json;
use stagehand_domain::{AuditEventId, AuditEventKind, TeamId, UserId};
use uuid::Uuid;

/// The chain an event belongs to: its team's, or the platform's.
pub(super) fn chain_of(team: Option<TeamId>) -> String {
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

/// The kind of the platform event a purge writes; it lists every chain's
/// anchor as that purge left them.
const PURGE_KIND: AuditEventKind = AuditEventKind::RetentionPurged;

/// Where a chain starts once its oldest events were purged.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(super) struct Anchor {
    pub(super) chain: String,
    /// The position of the first kept event.
    pub(super) first_seq: i64,
    /// The hash of the last purged event, which the first kept one links to.
    pub(super) prev_hash: String,
    /// Events purged from the front of the chain, over every purge.
    pub(super) purged_events: i64,
}

impl Anchor {
    /// How the purge event records it.
    pub(super) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "chain": self.chain,
            "first_seq": self.first_seq,
            "prev_hash": self.prev_hash,
            "purged_events": self.purged_events,
        })
    }
}

/// The team of a chain name (`None`: the platform's).
pub(super) fn team_of_chain(chain: &str) -> StoreResult<Option<TeamId>> {
    if chain == "platform" {
        return Ok(None);
    }
    Uuid::parse_str(chain)
        .map(|u| Some(TeamId(u)))
        .map_err(|_| StoreError::Corrupt(format!("audit chain {chain:?}")))
}

/// Appends `team_id = …` (or `is null`) for the chain of `team`.
pub(super) fn push_chain(q: &mut sqlx::QueryBuilder<'_, Db>, team: Option<TeamId>) {
    match team {
        Some(t) => q.push("team_id = ").push_bind(t.0),
        None => q.push("team_id is null"),
    };
}

pub(super) async fn anchor(conn: &mut Conn, chain: &str) -> StoreResult<Option<Anchor>> {
    Ok(sqlx::query_as(
        "select chain, first_seq, prev_hash, purged_events from audit_chain_anchors where chain = $1",
    )
    .bind(chain)
    .fetch_optional(conn)
    .await?)
}

pub(super) async fn anchors(conn: &mut Conn) -> StoreResult<Vec<Anchor>> {
    Ok(sqlx::query_as(
        "select chain, first_seq, prev_hash, purged_events from audit_chain_anchors order by chain",
    )
    .fetch_all(conn)
    .await?)
}

/// Moves a chain's anchor (a purge just removed the events before
/// `first_seq`).
pub(super) async fn set_anchor(conn: &mut Conn, anchor: &Anchor, actor: &Actor) -> StoreResult<()> {
    let at = now();
    sqlx::query(
        "insert into audit_chain_anchors
            (chain, first_seq, prev_hash, purged_events, purged_at, purged_by, created_at)
         values ($1, $2, $3, $4, $5, $6, $5)
         on conflict (chain) do update set first_seq = excluded.first_seq,
            prev_hash = excluded.prev_hash, purged_events = excluded.purged_events,
            purged_at = excluded.purged_at, purged_by = excluded.purged_by",
    )
    .bind(&anchor.chain)
    .bind(anchor.first_seq)
    .bind(&anchor.prev_hash)
    .bind(anchor.purged_events)
    .bind(at)
    .bind(&actor.name)
    .execute(conn)
    .await?;
    Ok(())
}

/// The anchor of `chain` as the newest purge event recorded it: `None` if
/// no purge was ever recorded, `Some(None)` if the last one left the chain
/// unanchored. That event is in the platform chain, which verifies on its
/// own, so an anchor moved or removed behind the store's back disagrees
/// with it.
async fn recorded_anchor(
    conn: &mut Conn,
    chain: &str,
) -> StoreResult<Option<Option<(i64, String)>>> {
    let details: Option<Json<serde_json::Value>> = sqlx::query_scalar(
        "select details from audit_events
         where team_id is null and kind = $1 and chain_seq is not null
         order by chain_seq desc limit 1",
    )
    .bind(PURGE_KIND.as_str())
    .fetch_optional(conn)
    .await?;
    let Some(Json(details)) = details else {
        return Ok(None);
    };
    let found = details["anchors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["chain"].as_str() == Some(chain))
        .map(|a| {
            (
                a["first_seq"].as_i64().unwrap_or(0),
                a["prev_hash"].as_str().unwrap_or("").to_owned(),
            )
        });
    Ok(Some(found))
}

/// How far a walk along a chain got.
pub(super) struct Walked {
    /// Events whose hash and link were checked.
    pub(super) checked: i64,
    /// The position after the last event checked.
    pub(super) next_seq: i64,
    /// The hash of the last event checked (the anchor's if none was).
    pub(super) last_hash: String,
    pub(super) broken: Option<ChainBreak>,
}

/// Walks the chain of `team` from position `from` (whose event must link
/// to `prev`) up to `through` (inclusive; `None`: to its end), checking
/// each event's position, link and hash, and stops at the first break.
pub(super) async fn walk(
    conn: &mut Conn,
    team: Option<TeamId>,
    from: i64,
    prev: String,
    through: Option<i64>,
) -> StoreResult<Walked> {
    #[derive(sqlx::FromRow)]
    struct Chained {
        #[sqlx(flatten)]
        row: Row,
        chain_seq: i64,
        prev_hash: Option<String>,
        hash: Option<String>,
    }
    let mut w = Walked {
        checked: 0,
        next_seq: from,
        last_hash: prev,
        broken: None,
    };
    let brk = |seq: i64, id: Option<Uuid>, reason: String| {
        Some(ChainBreak {
            seq,
            event_id: id.map(AuditEventId),
            reason,
        })
    };
    loop {
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "select id, team_id, actor_user_id, actor, source_ip, kind, subject_id, details,
                created_at, chain_seq, prev_hash, hash
             from audit_events where ",
        );
        push_chain(&mut q, team);
        q.push(" and chain_seq >= ").push_bind(w.next_seq);
        if let Some(last) = through {
            q.push(" and chain_seq <= ").push_bind(last);
        }
        q.push(" order by chain_seq limit ").push_bind(VERIFY_BATCH);
        let rows: Vec<Chained> = q.build_query_as().fetch_all(&mut *conn).await?;
        let done = (rows.len() as i64) < VERIFY_BATCH;
        for c in rows {
            let r = &c.row;
            let expected = w.next_seq;
            if c.chain_seq != expected {
                w.broken = brk(
                    expected,
                    None,
                    format!(
                        "event {expected} is missing (the next one present is {})",
                        c.chain_seq
                    ),
                );
                return Ok(w);
            }
            if c.prev_hash.as_deref() != Some(w.last_hash.as_str()) {
                let reason = if w.checked == 0 && expected > 1 {
                    format!("event {expected} does not link to the chain's anchor")
                } else {
                    format!("event {expected} does not link to the event before it")
                };
                w.broken = brk(expected, Some(r.id), reason);
                return Ok(w);
            }
            let recomputed = event_hash(
                c.chain_seq,
                &w.last_hash,
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
                w.broken = brk(
                    expected,
                    Some(r.id),
                    format!("event {expected} was changed after it was written"),
                );
                return Ok(w);
            }
            w.last_hash = recomputed;
            w.next_seq += 1;
            w.checked += 1;
        }
        if done {
            break;
        }
    }
    if let Some(last) = through
        && w.next_seq <= last
    {
        let expected = w.next_seq;
        w.broken = brk(expected, None, format!("event {expected} is missing"));
    }
    Ok(w)
}

/// Walks a chain from its first event (or its anchor, where a purge cut
/// its oldest events) and reports the first broken link: an event changed
/// (its hash does not match its fields), removed (a gap in the positions),
/// cut from the end (the head is further along), or an anchor that is not
/// the one the last purge recorded.
pub(super) async fn verify(conn: &mut Conn, team: Option<TeamId>) -> StoreResult<ChainReport> {
    let chain = chain_of(team);
    let head: Option<(i64, String)> =
        sqlx::query_as("select seq, last_hash from audit_chain_heads where chain = $1")
            .bind(&chain)
            .fetch_optional(&mut *conn)
            .await?;
    let broken = |checked: i64, seq: i64, id: Option<AuditEventId>, reason: String| ChainReport {
        checked,
        intact: false,
        first_break: Some(ChainBreak {
            seq,
            event_id: id,
            reason,
        }),
    };
    let anchor = anchor(conn, &chain).await?;
    let recorded = recorded_anchor(conn, &chain).await?;
    match (&anchor, recorded) {
        (None, None | Some(None)) => {}
        (Some(a), Some(Some((seq, hash)))) if a.first_seq == seq && a.prev_hash == hash => {}
        (Some(a), _) => {
            return Ok(broken(
                0,
                a.first_seq,
                None,
                format!(
                    "the chain is anchored at event {} but the last purge did not leave it there",
                    a.first_seq
                ),
            ));
        }
        (None, Some(Some((seq, _)))) => {
            return Ok(broken(
                0,
                1,
                None,
                format!("the anchor the last purge left at event {seq} was removed"),
            ));
        }
    }
    let (from, prev) = anchor.map_or((1, String::new()), |a| (a.first_seq, a.prev_hash));
    let w = walk(conn, team, from, prev, None).await?;
    if let Some(b) = w.broken {
        return Ok(broken(w.checked, b.seq, b.event_id, b.reason));
    }
    let head_seq = head.as_ref().map_or(0, |(s, _)| *s);
    let last_seq = w.next_seq - 1;
    if head_seq != last_seq {
        return Ok(broken(
            w.checked,
            w.next_seq,
            None,
            format!(
                "the chain holds events up to {last_seq} but {head_seq} were written: the newest were removed"
            ),
        ));
    }
    if head.is_some_and(|(_, h)| h != w.last_hash) {
        return Ok(broken(
            w.checked,
            last_seq,
            None,
            "the last event does not match the chain's head".into(),
        ));
    }
    Ok(ChainReport {
        checked: w.checked,
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
