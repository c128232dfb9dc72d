//! What the pages read: the filtered, keyset-paged history and the
//! pipeline overview.

use crate::harness::*;
use stagehand_domain::{EnvKeyState, PromotionStatus, Protection};
use stagehand_store::{StageOverview, StoreError};

pub async fn the_history_filters_and_pages_by_keyset(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    // 7 promotions: dev → qa four times, qa → prod three times.
    for round in 0..7 {
        let (source, stage) = if round < 4 {
            (dev.id, p.stages[0].id)
        } else {
            (qa.id, p.stages[1].id)
        };
        h.put(team, source, "f", &format!("{{\"round\":{round}}}"))
            .await;
        let mut req = request(team, p.id, stage);
        req.actor.name = if round % 2 == 0 { "ann" } else { "bob" }.into();
        h.store.promote(req).await.unwrap();
    }
    let all = |f: stagehand_store::PromotionFilter| async move {
        h.store.promotion_history(team, &f).await.unwrap()
    };
    let everything = all(stagehand_store::PromotionFilter {
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(everything.len(), 7);
    assert!(
        everything
            .windows(2)
            .all(|w| (w[0].created_at, w[0].id) > (w[1].created_at, w[1].id)),
        "newest first"
    );
    // qa's stage is the target of four and the source of three.
    let by_stage = all(stagehand_store::PromotionFilter {
        stage: Some(p.stages[1].id),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(by_stage.len(), 7);
    let into_prod = all(stagehand_store::PromotionFilter {
        stage: Some(p.stages[2].id),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(into_prod.len(), 3);
    let by_actor = all(stagehand_store::PromotionFilter {
        actor: Some("ann".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(by_actor.len(), 4);
    assert!(by_actor.iter().all(|p| p.requested_by == "ann"));
    let rejected = all(stagehand_store::PromotionFilter {
        status: Some(PromotionStatus::Rejected),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert!(rejected.is_empty());
    let future = all(stagehand_store::PromotionFilter {
        since: Some(chrono::Utc::now() + chrono::TimeDelta::days(1)),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert!(future.is_empty());

    // Pages of 3 by keyset, with and without the stage filter, cover every
    // row once, in order.
    for stage in [None, Some(p.stages[1].id)] {
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = all(stagehand_store::PromotionFilter {
                stage,
                before,
                limit: 3,
                ..Default::default()
            })
            .await;
            if page.is_empty() {
                break;
            }
            before = page.last().map(|p| (p.created_at, p.id));
            seen.extend(page.into_iter().map(|p| p.id));
        }
        let expected: Vec<_> = everything.iter().map(|p| p.id).collect();
        assert_eq!(seen, expected, "stage filter {stage:?}");
    }
}

pub async fn the_pipeline_overview_counts_flows_keys_and_promotions_per_stage(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, _, _]) = h.three_stage_pipeline(team).await;
    h.put(team, dev.id, "a", "1").await;
    h.put(team, dev.id, "b", "2").await;
    h.set(team, dev.id, "TOKEN", Some("v")).await;
    h.set(team, dev.id, "EMPTY", None).await;
    h.store
        .set_instance_protection(
            team,
            p.stages[2].instance_id,
            Protection::new(1, false).unwrap(),
            &actor(),
        )
        .await
        .unwrap();
    let applied = h
        .store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    let pending = h
        .store
        .promote(request(team, p.id, p.stages[1].id))
        .await
        .unwrap();
    let overview = h.store.pipeline_overview(team, p.id, false).await.unwrap();
    assert_eq!(overview.pipeline.id, p.id);
    // Every promotion shown is between its stages: no other name is read.
    assert!(overview.team_instances.is_empty());
    let cards = overview.stages;
    let awaiting = |c: &StageOverview| {
        c.state
            .env
            .values()
            .filter(|k| **k == EnvKeyState::AwaitingValue)
            .count()
    };
    let counts: Vec<(usize, usize)> = cards
        .iter()
        .map(|c| (c.state.flows.len(), awaiting(c)))
        .collect();
    // qa got both flows and both keys, without values.
    assert_eq!(counts, [(2, 1), (2, 2), (0, 0)]);
    // Each stage's arrival is the newest promotion applied into it: none
    // into dev, the applied one into qa, none yet into prod (its request
    // waits, with no approval so far).
    assert!(cards[0].arrival.is_none() && cards[2].arrival.is_none());
    let arrival = cards[1].arrival.as_ref().unwrap();
    assert_eq!(arrival.promotion.id, applied.id);
    assert!(arrival.applied_at.is_some() && arrival.rolled_back_at.is_none());
    assert_eq!(*arrival.left_flows, cards[0].state.flows);
    // Same flows and keys, whatever the values: the same state hash.
    assert_eq!(cards[1].state.content_hash(), cards[0].state.content_hash());
    assert!(cards.iter().all(|c| c.state_hash == c.state.content_hash()));
    assert!(cards[0].pending.is_empty() && cards[1].pending.is_empty());
    assert_eq!(cards[2].pending.len(), 1);
    assert_eq!(cards[2].pending[0].promotion.id, pending.id);
    assert_eq!(cards[2].pending[0].approvals, 0);

    // After a rollback, what the arrival left is the backup (qa's flows
    // before: none), and the stage says when.
    h.store
        .rollback(team, applied.id, None, &actor())
        .await
        .unwrap();
    let cards = h
        .store
        .pipeline_overview(team, p.id, false)
        .await
        .unwrap()
        .stages;
    let arrival = cards[1].arrival.as_ref().unwrap();
    assert_eq!(arrival.promotion.id, applied.id);
    assert!(arrival.rolled_back_at.is_some());
    assert_eq!(arrival.rolled_back_by.as_deref(), Some("system"));
    assert!(arrival.left_flows.is_empty() && cards[1].state.flows.is_empty());

    // An empty pipeline has a page too; another team's has none.
    let empty = h
        .store
        .create_pipeline(team, name_of("empty"), &actor())
        .await
        .unwrap();
    let found = h
        .store
        .pipeline_overview(team, empty.id, true)
        .await
        .unwrap();
    assert_eq!(found.pipeline.name.as_str(), "empty");
    assert!(found.pipeline.stages.is_empty() && found.stages.is_empty());
    // Asked for, the team's instances come with it, by name.
    let names: Vec<&str> = found
        .team_instances
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    let mut expected: Vec<&str> = p.stages.iter().map(|s| s.instance_name.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(names, expected);
    let other = h.team("other").await;
    assert!(matches!(
        h.store.pipeline_overview(other, p.id, true).await,
        Err(StoreError::NotFound(_))
    ));

    // Once dev is no stage of the pipeline, qa's arrival comes from an
    // instance that is not: the team's names come without being asked
    // for, so that the card can name it.
    h.store
        .remove_stage(team, p.id, p.stages[0].id, &actor())
        .await
        .unwrap();
    let overview = h.store.pipeline_overview(team, p.id, false).await.unwrap();
    assert_eq!(overview.stages.len(), 2);
    assert!(
        overview
            .team_instances
            .iter()
            .any(|i| i.id == p.stages[0].instance_id && i.name == p.stages[0].instance_name)
    );
}
