//! Restore: an instance set back to one of its own snapshots, as a
//! promotion like any other: previewed, backed up, reversible, audited,
//! held for approval into a protected instance, and never counted as a
//! deployment in the delivery metrics.

use crate::approvals::{conflict, person};
use crate::harness::{Harness, actor, flow, request};
use chrono::{Days, Utc};
use stagehand_domain::{PromotionStatus, Protection};
use stagehand_store::{Conflict, Decision, StoreError};

pub async fn a_restore_is_a_promotion_of_the_snapshot_into_its_own_instance(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _prod]) = h.three_stage_pipeline(team).await;
    let qa_stage = p.stages[1].id;
    h.put(team, dev.id, "orders", r#"{"v":1}"#).await;
    h.store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    h.put(team, dev.id, "orders", r#"{"v":2}"#).await;
    h.put(team, dev.id, "extra", "{}").await;
    let second = h
        .store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    // qa as it was before the second promotion: orders v1 alone.
    let good = second.backup_snapshot_id.unwrap();

    let preview = h
        .store
        .restore_preview(team, p.id, qa_stage, good)
        .await
        .unwrap();
    assert_eq!(preview.source.id, qa_stage);
    assert_eq!(preview.target.id, qa_stage);
    assert_eq!(preview.plan.flows_changed.len(), 1);
    assert_eq!(preview.plan.flows_removed[0].name, flow("extra"));

    let mut req = request(team, p.id, qa_stage);
    req.source_snapshot = Some(good);
    req.restore = true;
    req.idempotency_key = Some("restore-1".into());
    let restored = h.store.promote(req.clone()).await.unwrap();
    assert_eq!(restored.status, PromotionStatus::Applied);
    assert!(restored.is_restore());
    assert_eq!(
        (restored.source_instance_id, restored.target_instance_id),
        (qa.id, qa.id)
    );
    assert_eq!(restored.source_snapshot_id, good, "the snapshot is pinned");
    assert_eq!(
        h.flows_of(team, qa.id).await,
        vec![("orders".to_owned(), r#"{"v":1}"#.to_owned())]
    );
    assert_eq!(h.flows_of(team, dev.id).await.len(), 2, "dev is untouched");
    let events = h.store.audit_events(team, 1).await.unwrap();
    assert_eq!(events[0].subject_id, Some(restored.id.0));
    assert_eq!(events[0].details["restore"], true);
    assert_eq!(events[0].details["chosen_snapshot"], good.to_string());

    // A retry is the same restore; the key on a play is a conflict.
    let again = h.store.play(req).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.promotion.id, restored.id);
    let mut play = request(team, p.id, qa_stage);
    play.idempotency_key = Some("restore-1".into());
    assert_eq!(
        conflict(h.store.promote(play).await),
        Conflict::IdempotencyKeyReused
    );

    // Reversible: its rollback brings back what the restore replaced.
    h.store
        .rollback(team, restored.id, None, &actor())
        .await
        .unwrap();
    assert_eq!(h.flows_of(team, qa.id).await.len(), 2);

    // Two arrivals into qa were deployments; the restore and its rollback
    // were not.
    let today = Utc::now().date_naive();
    let days = h
        .store
        .delivery_days(team, Some(p.id), today - Days::new(1), today + Days::new(2))
        .await
        .unwrap()
        .0;
    let into_qa: u64 = days
        .iter()
        .filter(|d| d.stage_id == qa_stage)
        .map(|d| d.deployments)
        .sum();
    assert_eq!(into_qa, 2);
    h.store.rebuild_delivery().await.unwrap();
    let rebuilt = h
        .store
        .delivery_days(team, Some(p.id), today - Days::new(1), today + Days::new(2))
        .await
        .unwrap()
        .0;
    assert_eq!(rebuilt, days, "a rebuild counts the restore the same way");

    // Only a snapshot of the instance itself, and only a named one.
    let devs = second.source_snapshot_id;
    let before = h.count("promotions").await;
    for (snapshot, what) in [(Some(devs), "dev's snapshot"), (None, "no snapshot")] {
        let mut req = request(team, p.id, qa_stage);
        req.source_snapshot = snapshot;
        req.restore = true;
        match h.store.promote(req).await {
            Err(StoreError::Invalid(e)) => assert_eq!(e.field(), "snapshot", "{what}: {e}"),
            other => panic!("{what}: expected an invalid snapshot, got {other:?}"),
        }
    }
    assert!(matches!(
        h.store.restore_preview(team, p.id, qa_stage, devs).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(h.count("promotions").await, before, "nothing written");
    // Another team's snapshot does not exist for this one.
    let other = h.team("other").await;
    let mut req = request(other, p.id, qa_stage);
    req.source_snapshot = Some(good);
    req.restore = true;
    assert!(h.store.promote(req).await.is_err());
    assert_eq!(h.count("promotions").await, before, "nothing written");
}

pub async fn a_restore_into_a_protected_instance_waits_for_its_approvals(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _prod]) = h.three_stage_pipeline(team).await;
    let qa_stage = p.stages[1].id;
    h.put(team, dev.id, "orders", r#"{"v":1}"#).await;
    h.store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    h.put(team, dev.id, "orders", r#"{"v":2}"#).await;
    let second = h
        .store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    let good = second.backup_snapshot_id.unwrap();
    h.store
        .set_instance_protection(team, qa.id, Protection::new(1, false).unwrap(), &actor())
        .await
        .unwrap();

    let (rita, ann) = (person(h, "rita").await, person(h, "ann").await);
    let mut req = request(team, p.id, qa_stage);
    req.actor = rita.clone();
    req.source_snapshot = Some(good);
    req.restore = true;
    let asked = h.store.promote(req.clone()).await.unwrap();
    assert_eq!(asked.status, PromotionStatus::PendingApproval);
    assert_eq!(
        h.flows_of(team, qa.id).await,
        vec![("orders".to_owned(), r#"{"v":2}"#.to_owned())],
        "nothing changes before the approval"
    );
    // One waiting restore per instance.
    match conflict(h.store.promote(req).await) {
        Conflict::AlreadyPending { id, .. } => assert_eq!(id, asked.id),
        other => panic!("expected the pending restore, got {other:?}"),
    }
    assert_eq!(
        conflict(
            h.store
                .decide(team, asked.id, Decision::Approve, &rita)
                .await
        ),
        Conflict::OwnPromotion
    );
    let applied = h
        .store
        .decide(team, asked.id, Decision::Approve, &ann)
        .await
        .unwrap();
    assert_eq!(applied.status, PromotionStatus::Applied);
    assert_eq!(
        h.flows_of(team, qa.id).await,
        vec![("orders".to_owned(), r#"{"v":1}"#.to_owned())]
    );
    // The event of the approval that applied it says what shipped.
    let event = &h.store.audit_events(team, 1).await.unwrap()[0];
    assert_eq!(event.kind, "promotion.applied");
    assert_eq!(event.details["restore"], true);
    assert_eq!(event.details["source_snapshot"], good.to_string());
}
