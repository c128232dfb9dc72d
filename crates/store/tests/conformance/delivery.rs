//! Delivery metrics rows: each change of a promotion recomputes the day
//! rows of its target stage, and a rebuild from the promotions alone comes
//! to the same rows.

use crate::approvals::person;
use crate::harness::{Harness, actor, request};
use chrono::{Days, Utc};
use stagehand_domain::delivery::DeliveryDay;
use stagehand_domain::{PromotionStatus, Protection, SecretValue, StageId};
use stagehand_store::{Decision, DeployOutcome, NewRuntimeLink};

/// Everything of `stage` over yesterday, today and tomorrow (a test that
/// runs across midnight still sees all of it), added up.
fn total(days: &[DeliveryDay], stage: StageId) -> DeliveryDay {
    let mut sum = DeliveryDay::default();
    for d in days.iter().filter(|d| d.stage_id == stage) {
        sum.deployments += d.deployments;
        sum.rolled_back += d.rolled_back;
        sum.failed += d.failed;
        sum.lead_times.merge(&d.lead_times);
        sum.restore_times.merge(&d.restore_times);
        sum.approval_waits.merge(&d.approval_waits);
    }
    sum
}

pub async fn delivery_rows_follow_arrivals_rollbacks_decisions_and_failed_deploys(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, _qa, prod]) = h.three_stage_pipeline(team).await;
    let (qa_stage, prod_stage) = (p.stages[1].id, p.stages[2].id);
    let today = Utc::now().date_naive();
    let (since, until) = (today - Days::new(1), today + Days::new(2));
    let read = || async {
        h.store
            .delivery_days(team, Some(p.id), since, until)
            .await
            .unwrap()
    };

    // Another team saved the same content five hours ago: that is not
    // this team's lead time (nor its business).
    let other = h.team("other").await;
    let theirs = h.instance(other, "theirs").await;
    h.put(other, theirs.id, "copy", r#"{"v":1}"#).await;
    let hours_ago = |n: i64| (Utc::now() - chrono::Duration::hours(n)).to_rfc3339();
    h.exec(&format!(
        "update flow_saves set first_saved_at = '{}'",
        hours_ago(5)
    ))
    .await;
    // This team's flow, first saved two hours ago, reaches prod through qa.
    h.put(team, dev.id, "orders", r#"{"v":1}"#).await;
    h.exec(&format!(
        "update flow_saves set first_saved_at = '{}' where first_saved_at > '{}'",
        hours_ago(2),
        hours_ago(3)
    ))
    .await;
    h.store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    let shipped = h
        .store
        .promote(request(team, p.id, qa_stage))
        .await
        .unwrap();
    let (days, waiting) = read().await;
    assert_eq!(waiting, 0);
    let prod_row = total(&days, prod_stage);
    assert_eq!(prod_row.deployments, 1);
    assert_eq!(prod_row.lead_times.count, 1);
    let lead = prod_row.lead_times.max;
    assert!((7_190..7_300).contains(&lead), "lead time {lead} s");
    assert_eq!(
        total(&days, qa_stage).deployments,
        1,
        "each stage has its rows"
    );

    // Rolled back: a failure of that deployment, restored in seconds.
    h.store
        .rollback(team, shipped.id, None, &actor())
        .await
        .unwrap();
    let prod_row = total(&read().await.0, prod_stage);
    assert_eq!((prod_row.deployments, prod_row.rolled_back), (1, 1));
    assert_eq!(prod_row.restore_times.count, 1);
    assert!(prod_row.restore_times.max < 60);

    // Protected prod: one rejected request, one approved; each waited.
    h.store
        .set_instance_protection(team, prod.id, Protection::new(1, false).unwrap(), &actor())
        .await
        .unwrap();
    let reviewer = person(h, "rev").await;
    h.put(team, dev.id, "orders", r#"{"v":2}"#).await;
    h.store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    let first = h
        .store
        .promote(request(team, p.id, qa_stage))
        .await
        .unwrap();
    assert_eq!(first.status, PromotionStatus::PendingApproval);
    assert_eq!(read().await.1, 1, "one request waits");
    h.store
        .decide(team, first.id, Decision::Reject, &reviewer)
        .await
        .unwrap();
    let second = h
        .store
        .promote(request(team, p.id, qa_stage))
        .await
        .unwrap();
    let approved = h
        .store
        .decide(team, second.id, Decision::Approve, &reviewer)
        .await
        .unwrap();
    assert_eq!(approved.status, PromotionStatus::Applied);
    let (days, waiting) = read().await;
    assert_eq!(waiting, 0);
    let prod_row = total(&days, prod_stage);
    assert_eq!(prod_row.deployments, 2);
    assert_eq!(prod_row.approval_waits.count, 2);
    assert_eq!(prod_row.lead_times.count, 2);

    // Into a connected prod whose deploy fails: a failed deploy, restored
    // by the next arrival.
    h.store
        .set_instance_protection(team, prod.id, Protection::new(0, false).unwrap(), &actor())
        .await
        .unwrap();
    h.store
        .connect_runtime(
            team,
            prod.id,
            NewRuntimeLink {
                kind: "node-red".into(),
                url: "http://127.0.0.1:9/".into(),
                auth: SecretValue::new(r#"{"type":"bearer","token":"t"}"#.into()),
            },
            &actor(),
        )
        .await
        .unwrap();
    h.put(team, dev.id, "orders", r#"{"v":3}"#).await;
    h.store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    let failing = h
        .store
        .promote(request(team, p.id, qa_stage))
        .await
        .unwrap();
    assert_eq!(failing.status, PromotionStatus::Deploying);
    let failed = DeployOutcome::Failed {
        error: "connection refused".into(),
        drifted: false,
    };
    h.store
        .finish_deploy(team, failing.id, failed, &actor(), false)
        .await
        .unwrap();
    let prod_row = total(&read().await.0, prod_stage);
    assert_eq!(prod_row.failed, 1);
    assert_eq!(prod_row.restore_times.count, 1, "not restored yet");
    let retry = h
        .store
        .promote(request(team, p.id, qa_stage))
        .await
        .unwrap();
    let accepted = DeployOutcome::Accepted {
        revision: "r2".into(),
    };
    h.store
        .finish_deploy(team, retry.id, accepted, &actor(), false)
        .await
        .unwrap();
    let before = read().await.0;
    let prod_row = total(&before, prod_stage);
    assert_eq!((prod_row.deployments, prod_row.failed), (3, 1));
    assert_eq!(
        prod_row.restore_times.count, 2,
        "the failed deploy is restored"
    );

    // Another team sees none of it.
    let (none, _) = h
        .store
        .delivery_days(other, None, since, until)
        .await
        .unwrap();
    assert!(none.is_empty());

    // The rows are what the promotions say: a rebuild comes to the same.
    h.exec("delete from delivery_days").await;
    h.exec("update promotions set lead_seconds = null").await;
    assert!(read().await.0.is_empty());
    assert!(h.store.rebuild_delivery().await.unwrap() > 0);
    let mut rebuilt = read().await.0;
    let mut before = before;
    for rows in [&mut rebuilt, &mut before] {
        rows.sort_by_key(|d| (d.stage_id, d.day));
    }
    assert_eq!(rebuilt, before);
    let (team_days, _) = h
        .store
        .delivery_days(team, None, since, until)
        .await
        .unwrap();
    assert_eq!(
        team_days.len(),
        rebuilt.len(),
        "the team holds one pipeline"
    );

    // A purge of old promotions does not take them out of the figures:
    // the days it reached keep their rows, even through a rebuild.
    let purged = h
        .store
        .purge(
            &stagehand_store::RetentionPolicy {
                keep_snapshots_per_instance: None,
                max_age: Some(std::time::Duration::ZERO),
                login_failures_max_age: std::time::Duration::from_secs(3_600),
            },
            false,
            &actor(),
        )
        .await
        .unwrap();
    assert!(purged.promotions > 0, "{purged:?}");
    h.store.rebuild_delivery().await.unwrap();
    let mut after = read().await.0;
    after.sort_by_key(|d| (d.stage_id, d.day));
    assert_eq!(after, rebuilt);
}
