//! Retention: what a purge removes, what it must keep (whatever a kept
//! promotion's rollback or approval needs), and an audit log that still
//! verifies after its oldest events are gone.

use crate::approvals::person;
use crate::harness::*;
use chrono::{TimeDelta, Utc};
use stagehand_domain::{PromotionStatus, Protection, Username};
use stagehand_store::{
    Decision, LoginScope, NewSession, NewUser, PurgeReport, RetentionPolicy, Store,
};
use std::time::Duration;

/// Long enough that what came before is older than [`AGE`], on any clock.
const PAUSE: Duration = Duration::from_millis(2000);
/// The age limit the tests purge with.
const AGE: Duration = Duration::from_millis(1000);

fn by_age(keep_snapshots: Option<u32>) -> RetentionPolicy {
    RetentionPolicy {
        keep_snapshots_per_instance: keep_snapshots,
        max_age: Some(AGE),
        ..RetentionPolicy::default()
    }
}

/// A dry run, which must change nothing, then the purge, which must
/// remove exactly what the dry run counted.
async fn dry_run_then_purge(h: &Harness, policy: &RetentionPolicy) -> PurgeReport {
    let tables = [
        "sessions",
        "login_failures",
        "promotions",
        "promotion_approvals",
        "snapshots",
        "flow_blobs",
        "audit_events",
        "audit_chain_anchors",
    ];
    let mut before = Vec::new();
    for t in tables {
        before.push(h.count(t).await);
    }
    let dry = h.store.purge(policy, true, &actor()).await.unwrap();
    assert!(dry.dry_run);
    let mut after = Vec::new();
    for t in tables {
        after.push(h.count(t).await);
    }
    assert_eq!(before, after, "a dry run changed nothing");
    let real = h.store.purge(policy, false, &actor()).await.unwrap();
    assert!(!real.dry_run);
    assert_eq!(
        PurgeReport {
            dry_run: false,
            ..dry
        },
        real,
        "the purge removes what the dry run counted"
    );
    real
}

pub async fn expired_sessions_and_old_login_failures_go_and_live_ones_stay(h: &Harness) {
    let user = h
        .store
        .create_user(
            NewUser {
                username: Username::parse("lee").unwrap(),
                password_hash: "$argon2id$fake".into(),
                is_platform_admin: false,
            },
            &actor(),
        )
        .await
        .unwrap();
    let session = |hash: &str, ttl: TimeDelta| NewSession {
        token_hash: hash.into(),
        user_id: user.id,
        csrf_token: "csrf".into(),
        expires_at: Utc::now() + ttl,
    };
    h.store
        .create_session(session("short", TimeDelta::milliseconds(200)), &actor())
        .await
        .unwrap();
    h.store
        .create_session(session("long", TimeDelta::hours(1)), &actor())
        .await
        .unwrap();
    let scopes = |s: &str| {
        vec![LoginScope {
            scope: s.into(),
            limit: 5,
        }]
    };
    let since = Utc::now() - TimeDelta::hours(1);
    h.store
        .reserve_login_attempt(&scopes("user:old"), since)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(PAUSE).await;
    h.store
        .reserve_login_attempt(&scopes("user:new"), since)
        .await
        .unwrap()
        .unwrap();

    // The default keeps failures for a day: none of these is that old.
    let report = h
        .store
        .purge(&RetentionPolicy::default(), true, &actor())
        .await
        .unwrap();
    assert_eq!((report.sessions, report.login_failures), (1, 0));

    let policy = RetentionPolicy {
        login_failures_max_age: AGE,
        ..RetentionPolicy::default()
    };
    let report = dry_run_then_purge(h, &policy).await;
    assert_eq!((report.sessions, report.login_failures), (1, 1));
    assert_eq!(report.total(), 2);
    assert!(
        h.store
            .session_in_team("short", None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        h.store
            .session_in_team("long", None)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(h.count("login_failures").await, 1);
    // Audited in the platform chain, which still verifies.
    let purged = h
        .store
        .audit_history(
            None,
            &stagehand_store::AuditFilter {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let event = purged
        .iter()
        .find(|e| e.kind == "retention.purged")
        .unwrap();
    assert_eq!(event.details["sessions"], 1);
    assert!(h.store.verify_audit_chain(None).await.unwrap().intact);

    // Nothing left to purge: nothing audited.
    let events = h.count("audit_events").await;
    let again = h.store.purge(&policy, false, &actor()).await.unwrap();
    assert_eq!(again.total(), 0);
    assert_eq!(h.count("audit_events").await, events);
}

pub async fn flow_content_nothing_refers_to_goes_and_referenced_content_stays(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    // Replaced before anything snapshotted it: referenced by nothing.
    h.put(team, dev.id, "f", r#""draft""#).await;
    h.put(team, dev.id, "f", r#""dev""#).await;
    // Only the backup snapshot of the promotion will refer to this one.
    h.put(team, qa.id, "q", r#""qa-only""#).await;
    let promo = h
        .store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    assert_eq!(h.count("flow_blobs").await, 3);

    let report = dry_run_then_purge(h, &RetentionPolicy::default()).await;
    assert_eq!(report.flow_blobs, 1, "{report:?}");
    assert_eq!(report.total(), 1);
    assert_eq!(h.count("flow_blobs").await, 2);
    assert_eq!(
        h.flows_of(team, qa.id).await,
        vec![("f".to_owned(), r#""dev""#.to_owned())]
    );
    // The rollback restores content only a snapshot referred to.
    h.store
        .rollback(team, promo.id, None, &actor())
        .await
        .unwrap();
    assert_eq!(
        h.flows_of(team, qa.id).await,
        vec![("q".to_owned(), r#""qa-only""#.to_owned())]
    );
}

pub async fn keeping_the_last_snapshots_keeps_what_kept_promotions_roll_back_to(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    let play = || h.store.promote(request(team, p.id, p.stages[0].id));
    h.put(team, dev.id, "f", r#""v1""#).await;
    let p1 = play().await.unwrap();
    h.put(team, dev.id, "f", r#""v2""#).await;
    let p2 = play().await.unwrap();
    h.store.rollback(team, p2.id, None, &actor()).await.unwrap();
    tokio::time::sleep(PAUSE).await;
    h.put(team, dev.id, "f", r#""v3""#).await;
    let p3 = play().await.unwrap();
    // dev: three sources; qa: three backups and the rollback's own.
    assert_eq!(h.count("snapshots").await, 7);

    let report = dry_run_then_purge(h, &by_age(Some(1))).await;
    // p1 and p2 are finished and old; p3 is recent.
    assert_eq!(report.promotions, 2, "{report:?}");
    for gone in [p1.id, p2.id] {
        assert!(h.store.promotion(team, gone).await.is_err());
    }
    // Each instance keeps its newest snapshot, and p3's source and backup
    // (which are those newest ones): five of seven go.
    assert_eq!(report.snapshots, 5, "{report:?}");
    let kept: Vec<_> = h
        .store
        .snapshots(team, qa.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(kept, vec![p3.backup_snapshot_id.unwrap()]);
    assert!(h.store.snapshot(team, p3.source_snapshot_id).await.is_ok());
    // v2 was only in the purged snapshots; v1 is in p3's backup.
    assert_eq!(report.flow_blobs, 1, "{report:?}");

    // The kept promotion still rolls back, to the content its backup holds.
    h.store.rollback(team, p3.id, None, &actor()).await.unwrap();
    assert_eq!(
        h.flows_of(team, qa.id).await,
        vec![("f".to_owned(), r#""v1""#.to_owned())]
    );
    assert!(h.store.verify_audit_chain(Some(team)).await.unwrap().intact);
}

pub async fn pending_promotions_and_what_they_need_are_never_purged(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    h.store
        .set_instance_protection(team, qa.id, Protection::new(1, false).unwrap(), &actor())
        .await
        .unwrap();
    let ann = person(h, "ann").await;
    let play = || h.store.promote(request(team, p.id, p.stages[0].id));
    h.put(team, dev.id, "f", r#""v1""#).await;
    let applied = play().await.unwrap();
    h.store
        .decide(team, applied.id, Decision::Approve, &ann)
        .await
        .unwrap();
    // A rollback into a protected instance is a pending request of the
    // applied promotion's backup; approving it marks that one rolled back.
    let rollback = h
        .store
        .rollback(team, applied.id, None, &actor())
        .await
        .unwrap();
    assert_eq!(rollback.rollback_of, Some(applied.id));
    h.put(team, dev.id, "f", r#""v2""#).await;
    let pending = play().await.unwrap();
    assert_eq!(pending.status, PromotionStatus::PendingApproval);
    // Nothing refers to the source's earlier content but the pinned snapshot.
    h.put(team, dev.id, "f", r#""v3""#).await;
    tokio::time::sleep(PAUSE).await;

    let report = dry_run_then_purge(h, &by_age(Some(0))).await;
    assert_eq!(
        (report.promotions, report.approvals, report.snapshots),
        (0, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.flow_blobs, 0, "{report:?}");
    for kept in [applied.id, rollback.id, pending.id] {
        h.store.promotion(team, kept).await.unwrap();
    }

    // Both requests still apply, from what they pinned.
    h.store
        .decide(team, rollback.id, Decision::Approve, &ann)
        .await
        .unwrap();
    assert_eq!(
        h.store.promotion(team, applied.id).await.unwrap().status,
        PromotionStatus::RolledBack
    );
    assert!(h.flows_of(team, qa.id).await.is_empty());
    h.store
        .decide(team, pending.id, Decision::Approve, &ann)
        .await
        .unwrap();
    assert_eq!(
        h.flows_of(team, qa.id).await,
        vec![("f".to_owned(), r#""v2""#.to_owned())]
    );
}

/// What runs in a target now can always be undone: the last promotion
/// applied into it is kept by an age purge, however old, with what its
/// rollback needs; older ones go.
pub async fn the_last_promotion_into_each_target_is_kept_however_old(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    let play = || h.store.promote(request(team, p.id, p.stages[0].id));
    h.put(team, dev.id, "f", r#""v1""#).await;
    let older = play().await.unwrap();
    h.put(team, dev.id, "f", r#""v2""#).await;
    let last = play().await.unwrap();
    tokio::time::sleep(PAUSE).await;

    let report = dry_run_then_purge(h, &by_age(Some(1))).await;
    assert_eq!(report.promotions, 1, "{report:?}");
    assert!(h.store.promotion(team, older.id).await.is_err());
    h.store.promotion(team, last.id).await.unwrap();
    // Its rollback brings back what ran before it.
    h.store
        .rollback(team, last.id, None, &actor())
        .await
        .unwrap();
    assert_eq!(
        h.flows_of(team, qa.id).await,
        vec![("f".to_owned(), r#""v1""#.to_owned())]
    );
}

async fn verify(store: &dyn Store, team: Option<stagehand_domain::TeamId>) -> (bool, String) {
    let r = store.verify_audit_chain(team).await.unwrap();
    let reason = r
        .first_break
        .map(|b| format!("{} at {}", b.reason, b.seq))
        .unwrap_or_default();
    (r.intact, reason)
}

pub async fn an_age_purge_anchors_each_audit_chain_and_tampering_still_shows(h: &Harness) {
    let team = h.team("t").await;
    person(h, "ann").await; // a platform event
    h.instance(team, "a").await;
    h.instance(team, "b").await;
    tokio::time::sleep(PAUSE).await;
    h.instance(team, "c").await;

    // Team: events 1–3 are old, 4 is not. Platform: its one event is old
    // but the newest, which a chain always keeps.
    let report = dry_run_then_purge(h, &by_age(None)).await;
    assert_eq!(report.audit_events, 3, "{report:?}");
    assert!(report.chains_not_purged.is_empty());
    let r = h.store.verify_audit_chain(Some(team)).await.unwrap();
    assert!(r.intact, "{r:?}");
    assert_eq!(r.checked, 1);
    assert_eq!(verify(h.store.as_ref(), None).await, (true, String::new()));

    // Again, later: the team's anchor moves on, and the platform chain
    // (the user, the first purge) is cut too.
    tokio::time::sleep(PAUSE).await;
    h.instance(team, "d").await;
    let report = dry_run_then_purge(h, &by_age(None)).await;
    assert_eq!(report.audit_events, 2, "{report:?}");
    assert_eq!(
        verify(h.store.as_ref(), Some(team)).await,
        (true, String::new())
    );
    assert_eq!(verify(h.store.as_ref(), None).await, (true, String::new()));

    // A kept event edited behind the store's back is still found.
    h.exec("update audit_events set actor = 'mallory' where chain_seq = 5 and team_id is not null")
        .await;
    let (intact, why) = verify(h.store.as_ref(), Some(team)).await;
    assert!(
        !intact && why.contains("changed") && why.ends_with("at 5"),
        "{why}"
    );
    h.exec("update audit_events set actor = 'system' where chain_seq = 5 and team_id is not null")
        .await;
    assert!(verify(h.store.as_ref(), Some(team)).await.0);

    // An anchor moved behind the store's back (to hide a kept event) or
    // removed disagrees with what the last purge recorded.
    h.exec("update audit_chain_anchors set first_seq = 6 where chain <> 'platform'")
        .await;
    let (intact, why) = verify(h.store.as_ref(), Some(team)).await;
    assert!(!intact && why.contains("anchored"), "{why}");
    h.exec("update audit_chain_anchors set first_seq = 5 where chain <> 'platform'")
        .await;
    assert!(verify(h.store.as_ref(), Some(team)).await.0);
    h.exec("delete from audit_chain_anchors where chain <> 'platform'")
        .await;
    let (intact, why) = verify(h.store.as_ref(), Some(team)).await;
    assert!(!intact && why.contains("removed"), "{why}");

    // A chain that does not verify is not purged: that would erase the
    // evidence.
    tokio::time::sleep(PAUSE).await;
    h.instance(team, "e").await;
    let report = h.store.purge(&by_age(None), false, &actor()).await.unwrap();
    assert_eq!(report.chains_not_purged.len(), 1, "{report:?}");
    assert_eq!(report.chains_not_purged[0].team, Some(team));
    assert!(!verify(h.store.as_ref(), Some(team)).await.0);
    // The platform chain was purged and records the refusal.
    assert_eq!(verify(h.store.as_ref(), None).await, (true, String::new()));
}
