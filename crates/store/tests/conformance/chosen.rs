//! Play of a chosen snapshot of the source (FlowFuse's "prompt for
//! snapshot"): what ships is that snapshot, pinned as the promotion's
//! source, whatever the source holds now; another instance's snapshot is
//! refused and writes nothing.

use crate::harness::{Harness, flow, request};
use stagehand_store::StoreError;

pub async fn play_promotes_a_chosen_snapshot_of_the_source(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, prod]) = h.three_stage_pipeline(team).await;
    h.put(team, dev.id, "orders", r#"{"v":1}"#).await;
    let first = h
        .store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    let good = first.source_snapshot_id;
    // dev moves on, and so does qa.
    h.put(team, dev.id, "orders", r#"{"v":2}"#).await;
    h.put(team, dev.id, "extra", "{}").await;
    h.store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    assert_eq!(h.flows_of(team, qa.id).await.len(), 2);

    // The preview of the chosen snapshot is its plan against qa now.
    let preview = h
        .store
        .preview_of(team, p.id, p.stages[0].id, Some(good))
        .await
        .unwrap();
    assert_eq!(preview.plan.flows_changed.len(), 1);
    assert_eq!(preview.plan.flows_removed.len(), 1);
    assert_eq!(preview.plan.flows_removed[0].name, flow("extra"));

    let mut req = request(team, p.id, p.stages[0].id);
    req.source_snapshot = Some(good);
    let back = h.store.promote(req).await.unwrap();
    assert_eq!(
        back.source_snapshot_id, good,
        "the chosen snapshot is pinned"
    );
    // The audit log says an earlier snapshot shipped, and which.
    let events = h.store.audit_events(team, 1).await.unwrap();
    assert_eq!(events[0].subject_id, Some(back.id.0));
    assert_eq!(events[0].details["chosen_snapshot"], good.to_string());
    assert_eq!(
        h.flows_of(team, qa.id).await,
        vec![("orders".to_owned(), r#"{"v":1}"#.to_owned())]
    );
    assert_eq!(
        h.flows_of(team, dev.id).await.len(),
        2,
        "the source is untouched"
    );

    // A snapshot of another instance (qa's backup) is not dev's to play.
    let not_devs = back.backup_snapshot_id.unwrap();
    let mut req = request(team, p.id, p.stages[0].id);
    req.source_snapshot = Some(not_devs);
    let before = h.count("promotions").await;
    match h.store.promote(req).await {
        Err(StoreError::Invalid(e)) => assert_eq!(e.field(), "snapshot", "{e}"),
        other => panic!("expected an invalid snapshot, got {other:?}"),
    }
    assert_eq!(h.count("promotions").await, before, "nothing written");
    let refused = h
        .store
        .preview_of(team, p.id, p.stages[1].id, Some(good))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    // Another team's snapshot does not exist.
    let other = h.team("other").await;
    let mut req = request(other, p.id, p.stages[0].id);
    req.source_snapshot = Some(good);
    assert!(h.store.promote(req).await.is_err());
    assert!(h.flows_of(team, prod.id).await.is_empty());
}
