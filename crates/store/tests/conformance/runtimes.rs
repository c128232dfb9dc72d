//! Connected instances in the store: a promotion into a connected target
//! is planned and recorded `deploying`, nothing else changes the target
//! until the runtime's answer applies or fails it (once), pulls record the
//! runtime as the instance, and periodic jobs are claimed once per period.

use crate::harness::{Harness, actor, content, flow, request};
use stagehand_domain::{EnvKey, PermissionSet, PromotionStatus, SecretValue, UserId, Username};
use stagehand_store::{
    Actor, Conflict, DeployOutcome, NewRuntimeLink, PulledState, PulledValue, RuntimeState,
    StoreError,
};
use std::time::Duration;

const DEV_SECRET: &str = "dev-secret-0b1c";
const PROD_SECRET: &str = "prod-secret-77d2";

fn link() -> NewRuntimeLink {
    NewRuntimeLink {
        kind: "node-red".into(),
        url: "http://127.0.0.1:9/".into(),
        auth: SecretValue::new(r#"{"type":"bearer","token":"runtime-token-5f"}"#.into()),
    }
}

fn key(k: &str) -> EnvKey {
    EnvKey::parse(k).unwrap()
}

fn is_deploying_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(Conflict::Deploying { .. })))
}

pub async fn a_connected_target_deploys_in_two_steps_and_nothing_changes_it_meanwhile(h: &Harness) {
    let team = h.team("acme").await;
    let (p, [dev, qa, _prod]) = h.three_stage_pipeline(team).await;
    h.put(team, dev.id, "orders", r#"{"v": 2}"#).await;
    h.put(team, qa.id, "orders", r#"{"v": 1}"#).await;
    h.put(team, qa.id, "legacy", r#"{"old": true}"#).await;
    h.set(team, dev.id, "API_KEY", Some(DEV_SECRET)).await;
    h.set(team, qa.id, "DB_URL", Some(PROD_SECRET)).await;

    // Only someone who manages protection says where flows are sent.
    let nobody = Actor::user(
        UserId(uuid::Uuid::new_v4()),
        &Username::parse("nobody").unwrap(),
    )
    .holding(PermissionSet::default());
    let refused = h.store.connect_runtime(team, qa.id, link(), &nobody).await;
    assert!(
        matches!(refused, Err(StoreError::Forbidden(_))),
        "{refused:?}"
    );
    let connected = h
        .store
        .connect_runtime(team, qa.id, link(), &actor())
        .await
        .unwrap();
    assert_eq!(connected.state, RuntimeState::Unknown);
    assert_eq!(connected.revision, None);
    // Its flows are the runtime's: they change there, not here.
    let mirrored = h
        .store
        .put_flow(team, qa.id, flow("hotfix"), content("{}"), None, &actor())
        .await;
    assert!(
        matches!(
            mirrored,
            Err(StoreError::Conflict(Conflict::Mirrored { .. }))
        ),
        "{mirrored:?}"
    );
    let (_, auth) = h.store.runtime_credentials(team, qa.id).await.unwrap();
    assert!(auth.expose().contains("runtime-token-5f"));

    let before = h.flows_of(team, qa.id).await;
    let version = h.store.instance(team, qa.id).await.unwrap().version;
    let played = h
        .store
        .play(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    let deploying = played.promotion;
    assert_eq!(deploying.status, PromotionStatus::Deploying);
    assert!(deploying.backup_snapshot_id.is_some());
    assert!(deploying.deploy_started_at.is_some());
    assert_eq!(
        h.flows_of(team, qa.id).await,
        before,
        "nothing applied before the runtime answers"
    );
    assert_eq!(
        h.store.instance(team, qa.id).await.unwrap().version,
        version
    );

    // While it deploys, nothing else changes the target.
    assert!(is_deploying_conflict(
        h.store
            .set_env_var(team, qa.id, key("X"), None, &actor())
            .await
    ));
    assert!(is_deploying_conflict(
        h.store.play(request(team, p.id, p.stages[0].id)).await
    ));
    assert!(is_deploying_conflict(
        h.store.disconnect_runtime(team, qa.id, &actor()).await
    ));
    let pulled = PulledState {
        revision: "r-x".into(),
        flows: vec![],
        env: vec![],
        changed_by: None,
        started_at: chrono::Utc::now(),
    };
    assert!(is_deploying_conflict(
        h.store.record_pull(team, qa.id, pulled, &actor()).await
    ));

    // What the deploy sends: dev's flows, qa's own values, dev's new key
    // without a value.
    let input = h.store.deployment(team, deploying.id).await.unwrap();
    let names: Vec<_> = input.flows.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(names, ["orders"]);
    let values: Vec<_> = input
        .values
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_ref().map(|s| s.expose().to_owned())))
        .collect();
    assert_eq!(
        values,
        [
            ("API_KEY".to_owned(), None),
            ("DB_URL".to_owned(), Some(PROD_SECRET.to_owned()))
        ]
    );

    // The runtime took it: applied, once.
    let applied = h
        .store
        .finish_deploy(
            team,
            deploying.id,
            DeployOutcome::Accepted {
                revision: "rev-1".into(),
            },
            &actor(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(applied.status, PromotionStatus::Applied);
    assert_eq!(applied.runtime_revision.as_deref(), Some("rev-1"));
    assert_eq!(
        h.flows_of(team, qa.id).await,
        h.flows_of(team, dev.id).await
    );
    let again = h
        .store
        .finish_deploy(
            team,
            deploying.id,
            DeployOutcome::Failed {
                error: "late".into(),
                drifted: false,
            },
            &actor(),
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        again.status,
        PromotionStatus::Applied,
        "a second answer changes nothing"
    );
    let l = h.store.runtime_link(team, qa.id).await.unwrap().unwrap();
    assert_eq!(
        (l.revision.as_deref(), l.state),
        (Some("rev-1"), RuntimeState::InSync)
    );
    let env = h.store.env_vars(team, qa.id).await.unwrap();
    assert!(
        env.iter()
            .any(|e| e.key.as_str() == "API_KEY" && !e.has_value)
    );

    // A refused deploy: failed, the target as it was, drift recorded.
    h.put(team, dev.id, "orders", r#"{"v": 3}"#).await;
    let after_first = h.flows_of(team, qa.id).await;
    let second = h
        .store
        .play(request(team, p.id, p.stages[0].id))
        .await
        .unwrap()
        .promotion;
    let failed = h
        .store
        .finish_deploy(
            team,
            second.id,
            DeployOutcome::Failed {
                error: "changed in the runtime".into(),
                drifted: true,
            },
            &actor(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(failed.status, PromotionStatus::Failed);
    assert_eq!(
        failed.runtime_error.as_deref(),
        Some("changed in the runtime")
    );
    assert_eq!(h.flows_of(team, qa.id).await, after_first);
    let l = h.store.runtime_link(team, qa.id).await.unwrap().unwrap();
    assert_eq!(l.state, RuntimeState::Drifted);

    // A rollback into it deploys too: a new promotion of the backup.
    let rolling = h
        .store
        .rollback(team, applied.id, None, &actor())
        .await
        .unwrap();
    assert_eq!(rolling.status, PromotionStatus::Deploying);
    assert_eq!(rolling.rollback_of, Some(applied.id));
    let rolled = h
        .store
        .finish_deploy(
            team,
            rolling.id,
            DeployOutcome::Accepted {
                revision: "rev-2".into(),
            },
            &actor(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(rolled.status, PromotionStatus::Applied);
    assert_eq!(h.flows_of(team, qa.id).await, before);
    let original = h.store.promotion(team, applied.id).await.unwrap();
    assert_eq!(original.status, PromotionStatus::RolledBack);

    let chain = h.store.verify_audit_chain(Some(team)).await.unwrap();
    assert!(chain.intact, "{chain:?}");
    let stored = h.all_stored_text().await;
    for secret in [DEV_SECRET, PROD_SECRET, "runtime-token-5f"] {
        assert!(!stored.contains(secret), "{secret} is stored in clear");
    }
}

pub async fn a_pull_records_what_runs_in_the_runtime(h: &Harness) {
    let team = h.team("acme").await;
    let inst = h.instance(team, "prod").await;
    h.put(team, inst.id, "old", "{}").await;
    h.set(team, inst.id, "KEPT", Some("kept")).await;
    h.store
        .connect_runtime(team, inst.id, link(), &actor())
        .await
        .unwrap();
    let updated = h
        .store
        .record_pull(
            team,
            inst.id,
            PulledState {
                revision: "rev-9".into(),
                flows: vec![(flow("tab-1"), content(r#"[{"id": "1", "type": "tab"}]"#))],
                env: vec![
                    (
                        key("GREETING"),
                        PulledValue::Value(SecretValue::new(PROD_SECRET.into())),
                    ),
                    (key("OPENAI_KEY"), PulledValue::HeldByRuntime),
                    (key("EMPTY"), PulledValue::Empty),
                ],
                changed_by: Some("ops".into()),
                started_at: chrono::Utc::now(),
            },
            &actor(),
        )
        .await
        .unwrap();
    assert!(updated.version > inst.version);
    let flows: Vec<_> = h
        .flows_of(team, inst.id)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(flows, ["tab-1"]);
    let env: Vec<_> = h
        .store
        .env_vars(team, inst.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.key.to_string(), e.has_value))
        .collect();
    assert_eq!(
        env,
        [
            ("EMPTY".into(), false),
            ("GREETING".into(), true),
            ("KEPT".into(), true),
            ("OPENAI_KEY".into(), true),
        ]
    );
    let revealed = h
        .store
        .reveal_env_value(team, inst.id, &key("GREETING"), &actor())
        .await
        .unwrap();
    assert_eq!(revealed.unwrap().expose(), PROD_SECRET);
    let l = h.store.runtime_link(team, inst.id).await.unwrap().unwrap();
    assert_eq!(l.revision.as_deref(), Some("rev-9"));
    assert_eq!(l.state, RuntimeState::InSync);
    assert!(l.last_pull_at.is_some());
    // The same pull again changes nothing.
    let same = h
        .store
        .record_pull(
            team,
            inst.id,
            PulledState {
                revision: "rev-9".into(),
                flows: vec![(flow("tab-1"), content(r#"[{"id": "1", "type": "tab"}]"#))],
                env: vec![(
                    key("GREETING"),
                    PulledValue::Value(SecretValue::new(PROD_SECRET.into())),
                )],
                changed_by: None,
                started_at: chrono::Utc::now(),
            },
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!(same.version, updated.version);
    // A pull that read the runtime before the last one was recorded is
    // stale: refused, not recorded over it.
    let stale = h
        .store
        .record_pull(
            team,
            inst.id,
            PulledState {
                revision: "rev-8".into(),
                flows: vec![],
                env: vec![],
                changed_by: None,
                started_at: chrono::Utc::now() - chrono::Duration::seconds(60),
            },
            &actor(),
        )
        .await;
    assert!(
        matches!(
            stale,
            Err(StoreError::Conflict(Conflict::PulledMeanwhile(_)))
        ),
        "{stale:?}"
    );
    // A protected instance is pulled only by those who manage protection.
    h.store
        .set_instance_protection(
            team,
            inst.id,
            stagehand_domain::Protection {
                required_approvals: 1,
                requires_all_env_values: false,
            },
            &actor(),
        )
        .await
        .unwrap();
    let lead = Actor::user(
        UserId(uuid::Uuid::new_v4()),
        &Username::parse("lena").unwrap(),
    )
    .holding(stagehand_domain::BuiltinRole::Lead.permissions());
    let refused = h
        .store
        .record_pull(
            team,
            inst.id,
            PulledState {
                revision: "rev-10".into(),
                flows: vec![],
                env: vec![],
                changed_by: None,
                started_at: chrono::Utc::now(),
            },
            &lead,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Protected { .. })),
        "{refused:?}"
    );
    assert!(!h.all_stored_text().await.contains(PROD_SECRET));
    assert!(h.store.verify_audit_chain(Some(team)).await.unwrap().intact);
}

pub async fn each_period_of_a_job_is_claimed_once(h: &Harness) {
    let every = Duration::from_millis(400);
    let (a, b, c) = tokio::join!(
        h.store.claim_job("drift_check", every, "replica-a"),
        h.store.claim_job("drift_check", every, "replica-b"),
        h.store.claim_job("drift_check", every, "replica-c"),
    );
    let claimed = [a.unwrap(), b.unwrap(), c.unwrap()];
    assert_eq!(claimed.iter().filter(|c| **c).count(), 1, "{claimed:?}");
    assert!(
        !h.store
            .claim_job("drift_check", every, "replica-a")
            .await
            .unwrap()
    );
    // Another job is its own.
    assert!(
        h.store
            .claim_job("reconcile", every, "replica-b")
            .await
            .unwrap()
    );
    tokio::time::sleep(every + Duration::from_millis(100)).await;
    assert!(
        h.store
            .claim_job("drift_check", every, "replica-b")
            .await
            .unwrap()
    );
}

pub async fn the_reconciler_finds_old_deploys_of_every_team(h: &Harness) {
    let team = h.team("acme").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    h.put(team, dev.id, "orders", "{}").await;
    h.store
        .connect_runtime(team, qa.id, link(), &actor())
        .await
        .unwrap();
    let played = h
        .store
        .play(request(team, p.id, p.stages[0].id))
        .await
        .unwrap()
        .promotion;
    let later = chrono::Utc::now() + chrono::Duration::seconds(5);
    let earlier = chrono::Utc::now() - chrono::Duration::seconds(60);
    let found = h.store.deploying_promotions(later).await.unwrap();
    assert!(found.iter().any(|d| d.id == played.id));
    let found = h.store.deploying_promotions(earlier).await.unwrap();
    assert!(
        !found.iter().any(|d| d.id == played.id),
        "a live deploy is left alone"
    );
}
