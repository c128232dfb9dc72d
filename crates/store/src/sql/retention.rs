//! Retention: the purge of what a [`RetentionPolicy`] does not keep, in
//! one transaction, in an order where each step sees what the previous
//! ones freed: promotions, then the snapshots only they pointed to, then
//! the flow content only those snapshots referred to.
//!
//! What is never purged, whatever the policy:
//! - a promotion still pending approval or deploying, and any promotion a
//!   kept one is the rollback of (its approval marks that one rolled back);
//! - a snapshot a kept promotion points to (its source, which a pending
//!   one applies; its backup, which its rollback restores);
//! - flow content an instance's flows or any kept snapshot refer to;
//! - the newest event of an audit chain, any event after the first one
//!   at or past the cutoff (only a prefix goes), and every event of a
//!   chain that does not verify (purging would erase the evidence).

use super::audit::{self, Anchor};
use super::{Conn, Db, JSON_EACH, lock_purge, now};
use crate::error::StoreResult;
use crate::model::{Actor, ChainNotPurged, NewAuditEvent, PurgeReport, RetentionPolicy};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use stagehand_domain::AuditEventKind;

/// Promotions that are not kept: finished and older than `$1`, not the
/// last one applied into its target (its rollback undoes what runs there
/// now, however old it is), and not what a kept promotion rolls back
/// (followed along `rollback_of` chains).
const PURGEABLE_PROMOTIONS: &str = "
    with recursive kept (id, rollback_of) as (
        select id, rollback_of from promotions
        where created_at >= $1 or status in ('pending_approval', 'deploying')
            or id in (
                select id from (
                    select id, row_number() over (
                        partition by target_instance_id order by created_at desc, id desc
                    ) as n
                    from promotions where status = 'applied'
                ) newest where n = 1
            )
        union
        select p.id, p.rollback_of from promotions p join kept k on p.id = k.rollback_of
    )
    select id from promotions where id not in (select id from kept)";

fn age(d: std::time::Duration) -> TimeDelta {
    // Past chrono's range is longer than anything kept: nothing that old.
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

fn before(at: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    at.checked_sub_signed(age(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(super) async fn purge(
    conn: &mut Conn,
    policy: &RetentionPolicy,
    dry_run: bool,
    actor: &Actor,
) -> StoreResult<PurgeReport> {
    lock_purge(conn).await?;
    let at = now();
    let mut r = PurgeReport {
        dry_run,
        ..PurgeReport::default()
    };
    r.sessions = sqlx::query("delete from sessions where expires_at <= $1")
        .bind(at)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    r.login_failures = sqlx::query("delete from login_failures where created_at < $1")
        .bind(before(at, policy.login_failures_max_age))
        .execute(&mut *conn)
        .await?
        .rows_affected();

    let cutoff = policy.max_age.map(|d| before(at, d));
    if let Some(cutoff) = cutoff {
        r.approvals = sqlx::query(&format!(
            "delete from promotion_approvals where promotion_id in ({PURGEABLE_PROMOTIONS})"
        ))
        .bind(cutoff)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        r.promotions = sqlx::query(&format!(
            "delete from promotions where id in ({PURGEABLE_PROMOTIONS})"
        ))
        .bind(cutoff)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        // The delivery rows of the days it reached keep their counts.
        if r.promotions > 0 {
            let first_kept = cutoff
                .date_naive()
                .succ_opt()
                .unwrap_or(cutoff.date_naive());
            super::delivery::freeze_before(conn, first_kept).await?;
        }
    }

    if let Some(keep) = policy.keep_snapshots_per_instance {
        r.snapshots = sqlx::query(
            "delete from snapshots where id in (
                select id from (
                    select id, row_number() over (
                        partition by instance_id order by created_at desc, id desc) as n
                    from snapshots
                ) ranked where n > $1
            )
            and not exists (select 1 from promotions p where p.source_snapshot_id = snapshots.id)
            and not exists (select 1 from promotions p where p.backup_snapshot_id = snapshots.id)",
        )
        .bind(i64::from(keep))
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }

    // Content is stored once per hash and shared: it goes only when no
    // instance's flow and no snapshot refers to it.
    r.flow_blobs = sqlx::query(&format!(
        "delete from flow_blobs
         where not exists (select 1 from flows f where f.content_hash = flow_blobs.hash)
         and hash not in (select e.value from snapshots s, {JSON_EACH}(s.flows) e)"
    ))
    .execute(&mut *conn)
    .await?
    .rows_affected();

    if let Some(cutoff) = cutoff {
        let chains: Vec<String> =
            sqlx::query_scalar("select chain from audit_chain_heads order by chain")
                .fetch_all(&mut *conn)
                .await?;
        for chain in chains {
            purge_chain(conn, &chain, cutoff, actor, &mut r).await?;
        }
        // Events from before the chains began belong to none.
        r.audit_events +=
            sqlx::query("delete from audit_events where chain_seq is null and created_at < $1")
                .bind(cutoff)
                .execute(&mut *conn)
                .await?
                .rows_affected();
    }

    if !dry_run && r.total() > 0 {
        let anchors: Vec<serde_json::Value> = audit::anchors(conn)
            .await?
            .iter()
            .map(Anchor::to_json)
            .collect();
        audit::record(
            conn,
            NewAuditEvent {
                team: None,
                actor,
                kind: AuditEventKind::RetentionPurged,
                subject: None,
                details: json!({
                    "policy": {
                        "keep_snapshots_per_instance": policy.keep_snapshots_per_instance,
                        "max_age_secs": policy.max_age.map(|d| d.as_secs()),
                    },
                    "sessions": r.sessions,
                    "login_failures": r.login_failures,
                    "promotions": r.promotions,
                    "approvals": r.approvals,
                    "snapshots": r.snapshots,
                    "flow_blobs": r.flow_blobs,
                    "audit_events": r.audit_events,
                    "chains_not_purged": r.chains_not_purged.iter()
                        .map(|c| json!({ "chain": c.chain, "seq": c.first_break.seq }))
                        .collect::<Vec<_>>(),
                    // Every chain's anchor, as this purge leaves them:
                    // what `verify` holds each anchor to.
                    "anchors": anchors,
                }),
            },
        )
        .await?;
    }
    Ok(r)
}

/// Removes the events of `chain` before the first one at or after
/// `cutoff` (keeping the newest event whatever its age), once the events
/// to go are checked to verify, and moves the chain's anchor to the first
/// kept event.
async fn purge_chain(
    conn: &mut Conn,
    chain: &str,
    cutoff: DateTime<Utc>,
    actor: &Actor,
    r: &mut PurgeReport,
) -> StoreResult<()> {
    let team = audit::team_of_chain(chain)?;
    let current = audit::anchor(conn, chain).await?;
    let start = current.as_ref().map_or(1, |a| a.first_seq);

    let mut q =
        sqlx::QueryBuilder::<Db>::new("select max(chain_seq), min(case when created_at >= ");
    q.push_bind(cutoff)
        .push(" then chain_seq end) from audit_events where ");
    audit::push_chain(&mut q, team);
    q.push(" and chain_seq is not null");
    let (newest, first_recent): (Option<i64>, Option<i64>) =
        q.build_query_as().fetch_one(&mut *conn).await?;
    let Some(newest) = newest else {
        return Ok(());
    };
    let keep_from = first_recent.unwrap_or(newest).min(newest);
    if keep_from <= start {
        return Ok(());
    }

    // The events about to go, and the first kept one's link to them, must
    // verify: a purge never erases the evidence of tampering.
    let prev = current
        .as_ref()
        .map_or_else(String::new, |a| a.prev_hash.clone());
    let walked = audit::walk(conn, team, start, prev, Some(keep_from)).await?;
    if let Some(first_break) = walked.broken {
        tracing::warn!(chain, seq = first_break.seq, reason = %first_break.reason,
            "the audit chain does not verify: its old events are not purged");
        r.chains_not_purged.push(ChainNotPurged {
            chain: chain.to_owned(),
            team,
            first_break,
        });
        return Ok(());
    }
    let mut q = sqlx::QueryBuilder::<Db>::new("select prev_hash from audit_events where ");
    audit::push_chain(&mut q, team);
    q.push(" and chain_seq = ").push_bind(keep_from);
    let link: Option<String> = q.build_query_scalar().fetch_one(&mut *conn).await?;

    let mut q = sqlx::QueryBuilder::<Db>::new("delete from audit_events where ");
    audit::push_chain(&mut q, team);
    q.push(" and chain_seq < ").push_bind(keep_from);
    let n = q.build().execute(&mut *conn).await?.rows_affected();
    r.audit_events += n;
    let purged_before = current.map_or(0, |a| a.purged_events);
    audit::set_anchor(
        conn,
        &Anchor {
            chain: chain.to_owned(),
            first_seq: keep_from,
            prev_hash: link.unwrap_or_default(),
            purged_events: purged_before + i64::try_from(n).unwrap_or(i64::MAX),
        },
        actor,
    )
    .await
}
