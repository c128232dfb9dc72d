//! Approvals of promotions and rollbacks into protected instances.

use crate::harness::*;
use stagehand_domain::{PromotionStatus, Protection, TeamId, Username};
use stagehand_store::{Actor, Conflict, Decision, NewUser, StoreError};

pub(crate) async fn person(h: &Harness, name: &str) -> Actor {
    let user = h
        .store
        .create_user(
            NewUser {
                username: Username::parse(name).unwrap(),
                password_hash: "$argon2id$fake".into(),
                is_platform_admin: false,
            },
            &actor(),
        )
        .await
        .unwrap();
    Actor::user(user.id, &user.username)
}

pub(crate) fn conflict(r: Result<impl std::fmt::Debug, StoreError>) -> Conflict {
    match r {
        Err(StoreError::Conflict(c)) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn protect(h: &Harness, team: TeamId, p: &stagehand_store::Pipeline, approvals: u32) {
    h.store
        .set_instance_protection(
            team,
            p.stages[1].instance_id,
            Protection::new(approvals, false).unwrap(),
            &actor(),
        )
        .await
        .unwrap();
}

pub async fn n_approvals_from_others_apply_the_pinned_snapshot(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    protect(h, team, &p, 2).await;
    let (rita, ann, bob) = (
        person(h, "rita").await,
        person(h, "ann").await,
        person(h, "bob").await,
    );
    h.put(team, dev.id, "reviewed", r#"{"v":1}"#).await;
    let mut req = request(team, p.id, p.stages[0].id);
    req.actor = rita.clone();
    let promo = h.store.promote(req).await.unwrap();
    assert_eq!(promo.status, PromotionStatus::PendingApproval);
    // The source moves on after the request; the reviewed state must ship.
    h.put(team, dev.id, "reviewed", r#"{"v":2}"#).await;
    h.put(team, dev.id, "unreviewed", "{}").await;

    // The requester cannot approve their own promotion.
    assert_eq!(
        conflict(
            h.store
                .decide(team, promo.id, Decision::Approve, &rita)
                .await
        ),
        Conflict::OwnPromotion
    );
    // One approval of two: still pending, nothing applied.
    let after_one = h
        .store
        .decide(team, promo.id, Decision::Approve, &ann)
        .await
        .unwrap();
    assert_eq!(after_one.status, PromotionStatus::PendingApproval);
    assert!(h.flows_of(team, qa.id).await.is_empty());
    // A reviewer decides once.
    assert_eq!(
        conflict(
            h.store
                .decide(team, promo.id, Decision::Approve, &ann)
                .await
        ),
        Conflict::AlreadyDecided
    );
    // The second approval applies what was reviewed.
    let applied = h
        .store
        .decide(team, promo.id, Decision::Approve, &bob)
        .await
        .unwrap();
    assert_eq!(applied.status, PromotionStatus::Applied);
    assert!(applied.backup_snapshot_id.is_some());
    assert_eq!(
        h.flows_of(team, qa.id).await,
        [("reviewed".to_owned(), r#"{"v":1}"#.to_owned())]
    );
    assert_eq!(h.store.promotion(team, promo.id).await.unwrap(), applied);
    let decisions = h.store.approvals(team, promo.id).await.unwrap();
    let names: Vec<&str> = decisions.iter().map(|a| a.username.as_str()).collect();
    assert_eq!(names, ["ann", "bob"]);
    let kinds: Vec<String> = h
        .store
        .audit_events(team, 3)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "promotion.applied",
            "promotion.approved",
            "promotion.approved"
        ]
    );
    // A decision names what it was on, so the log can say so.
    let approved = &h.store.audit_events(team, 3).await.unwrap()[1];
    assert_eq!(approved.details["from"], "dev", "{:?}", approved.details);
    assert_eq!(approved.details["to"], "qa", "{:?}", approved.details);
    // Applied is final for reviewers.
    assert_eq!(
        conflict(
            h.store
                .decide(team, promo.id, Decision::Reject, &rita)
                .await
        ),
        Conflict::Decided(PromotionStatus::Applied)
    );
    // A rollback into the protected instance is a request too: nothing
    // changes until two people other than its requester approve it.
    let request = h.store.rollback(team, promo.id, None, &ann).await.unwrap();
    assert_eq!(request.status, PromotionStatus::PendingApproval);
    assert_eq!(request.rollback_of, Some(promo.id));
    assert_eq!(h.flows_of(team, qa.id).await.len(), 1);
    assert_eq!(
        h.store.promotion(team, promo.id).await.unwrap().status,
        PromotionStatus::Applied
    );
    // Asking again while it waits is the same request.
    assert_eq!(
        h.store
            .rollback(team, promo.id, None, &bob)
            .await
            .unwrap()
            .id,
        request.id
    );
    assert_eq!(
        conflict(
            h.store
                .decide(team, request.id, Decision::Approve, &ann)
                .await
        ),
        Conflict::OwnPromotion
    );
    h.store
        .decide(team, request.id, Decision::Approve, &rita)
        .await
        .unwrap();
    assert_eq!(h.flows_of(team, qa.id).await.len(), 1);
    let restored = h
        .store
        .decide(team, request.id, Decision::Approve, &bob)
        .await
        .unwrap();
    assert_eq!(restored.status, PromotionStatus::Applied);
    assert!(h.flows_of(team, qa.id).await.is_empty());
    let newest = &h.store.snapshots(team, qa.id, 1).await.unwrap()[0];
    assert_eq!(
        newest.reason,
        stagehand_store::SnapshotReason::RollbackBackup
    );
    assert_eq!(
        h.store.promotion(team, promo.id).await.unwrap().status,
        PromotionStatus::RolledBack
    );
    let kinds: Vec<String> = h
        .store
        .audit_events(team, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["promotion.applied", "promotion.rolled_back"]);
}

pub async fn one_rejection_rejects_and_writes_nothing_to_the_target(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    protect(h, team, &p, 1).await;
    let (rita, ann) = (person(h, "rita").await, person(h, "ann").await);
    h.put(team, dev.id, "f", "{}").await;
    let mut req = request(team, p.id, p.stages[0].id);
    req.actor = rita.clone();
    let promo = h.store.promote(req).await.unwrap();
    let version = h.store.instance(team, qa.id).await.unwrap().version;
    let rejected = h
        .store
        .decide(team, promo.id, Decision::Reject, &ann)
        .await
        .unwrap();
    assert_eq!(rejected.status, PromotionStatus::Rejected);
    assert!(h.flows_of(team, qa.id).await.is_empty());
    assert_eq!(
        h.store.instance(team, qa.id).await.unwrap().version,
        version
    );
    assert_eq!(
        h.store.audit_events(team, 1).await.unwrap()[0].kind,
        "promotion.rejected"
    );
    // Another team cannot even see it.
    let other = h.team("other").await;
    assert!(matches!(
        h.store
            .decide(other, promo.id, Decision::Approve, &ann)
            .await,
        Err(StoreError::NotFound(_))
    ));

    // The requester may withdraw a request of their own (not approve it):
    // it ends rejected, nothing applied, and the audit log says who.
    let mut req = request(team, p.id, p.stages[0].id);
    req.actor = rita.clone();
    let again = h.store.promote(req).await.unwrap();
    let withdrawn = h
        .store
        .decide(team, again.id, Decision::Reject, &rita)
        .await
        .unwrap();
    assert_eq!(withdrawn.status, PromotionStatus::Rejected);
    assert!(h.flows_of(team, qa.id).await.is_empty());
    let event = &h.store.audit_events(team, 1).await.unwrap()[0];
    assert_eq!(event.kind, "promotion.rejected");
    assert_eq!(event.details["withdrawn"], true);
    assert_eq!(event.actor, "rita");
}

/// A request waiting for approval keeps both its stages in the pipeline:
/// it would otherwise outlive them, unseen on the pipeline's page, and
/// still apply. One whose stage left anyway can be rejected only.
pub async fn a_stage_with_a_waiting_request_stays_until_it_is_decided(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, _, _]) = h.three_stage_pipeline(team).await;
    protect(h, team, &p, 1).await;
    let (rita, ann) = (person(h, "rita").await, person(h, "ann").await);
    h.put(team, dev.id, "a", "{}").await;
    let mut req = request(team, p.id, p.stages[0].id);
    req.actor = rita.clone();
    let promo = h.store.promote(req).await.unwrap();
    assert_eq!(promo.status, PromotionStatus::PendingApproval);
    for stage in [&p.stages[0], &p.stages[1]] {
        match conflict(h.store.remove_stage(team, p.id, stage.id, &actor()).await) {
            Conflict::RequestWaiting { instance, id } => {
                assert_eq!(instance, stage.instance_name.as_str());
                assert_eq!(id, promo.id);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        conflict(h.store.delete_pipeline(team, p.id, &actor()).await),
        Conflict::RequestWaiting { .. }
    ));
    assert_eq!(h.store.pipeline(team, p.id).await.unwrap().stages.len(), 3);

    // Withdrawn, it no longer holds the stage.
    h.store
        .decide(team, promo.id, Decision::Reject, &rita)
        .await
        .unwrap();
    h.store
        .remove_stage(team, p.id, p.stages[0].id, &actor())
        .await
        .unwrap();

    // A request left behind by a stage removed before this rule: it can
    // be rejected, never approved. (qa → prod, prod protected; qa and prod
    // are now at positions 0 and 1.)
    h.store
        .set_instance_protection(
            team,
            p.stages[2].instance_id,
            Protection::new(1, false).unwrap(),
            &actor(),
        )
        .await
        .unwrap();
    let mut req = request(team, p.id, p.stages[1].id);
    req.actor = rita.clone();
    let left = h.store.promote(req).await.unwrap();
    assert_eq!(left.status, PromotionStatus::PendingApproval);
    h.exec("delete from stages where position = 1").await;
    assert_eq!(
        conflict(h.store.decide(team, left.id, Decision::Approve, &ann).await),
        Conflict::StageLeft("the request can be rejected, not approved")
    );
    let rejected = h
        .store
        .decide(team, left.id, Decision::Reject, &ann)
        .await
        .unwrap();
    assert_eq!(rejected.status, PromotionStatus::Rejected);

    // Nor is a new one made: undoing a promotion into a stage that left,
    // its instance protected since, points at the backup instead.
    let team = h.team("t2").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    h.put(team, dev.id, "a", "{}").await;
    let applied = h
        .store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    assert_eq!(applied.status, PromotionStatus::Applied);
    h.store
        .remove_stage(team, p.id, p.stages[1].id, &actor())
        .await
        .unwrap();
    h.store
        .set_instance_protection(team, qa.id, Protection::new(1, false).unwrap(), &actor())
        .await
        .unwrap();
    assert!(matches!(
        conflict(h.store.rollback(team, applied.id, None, &rita).await),
        Conflict::StageLeft(_)
    ));
    assert_eq!(h.flows_of(team, qa.id).await.len(), 1);
}
