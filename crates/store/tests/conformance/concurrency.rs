//! Many promotions into one target at once, with an edit of the target
//! racing them: they must serialise, and the log must match what happened.

use crate::harness::*;
use stagehand_store::{Conflict, StoreError};
use std::collections::BTreeSet;

pub async fn concurrent_promotions_into_one_target_serialise(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    for i in 0..10 {
        h.put(
            team,
            dev.id,
            &format!("flow-{i}"),
            &format!("{{\"i\": {i}}}"),
        )
        .await;
    }
    h.put(team, qa.id, "qa-only", "0").await;
    let start_version = h.store.instance(team, qa.id).await.unwrap().version;

    let mut tasks = Vec::new();
    for n in 0..20 {
        let store = h.store.clone();
        let mut req = request(team, p.id, p.stages[0].id);
        // Half pin the version they previewed; those may lose cleanly.
        if n % 2 == 0 {
            req.expected_target_version = Some(start_version);
        }
        tasks.push(tokio::spawn(async move { store.promote(req).await }));
    }
    let editor = {
        let store = h.store.clone();
        let qa = qa.id;
        tokio::spawn(async move {
            store
                .put_flow(
                    team,
                    qa,
                    flow("hotfix"),
                    content("\"edit\""),
                    None,
                    &actor(),
                )
                .await
        })
    };
    let mut applied = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(p) => applied.push(p),
            Err(StoreError::Conflict(Conflict::StaleVersion { .. } | Conflict::Contention)) => {}
            Err(other) => panic!("a promotion failed uncleanly: {other:?}"),
        }
    }
    let edit = editor.await.unwrap().expect("the edit applies");
    assert!(!applied.is_empty());

    // Every change got its own version: nothing interleaved, nothing lost.
    let mut versions: Vec<i64> = applied.iter().map(|p| p.target_version.unwrap()).collect();
    versions.push(edit.version);
    let distinct: BTreeSet<i64> = versions.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        versions.len(),
        "two changes share a version: {versions:?}"
    );
    let final_instance = h.store.instance(team, qa.id).await.unwrap();
    assert_eq!(
        final_instance.version,
        start_version + versions.len() as i64
    );

    // The final state is that of whichever change came last.
    let flows = h.flows_of(team, qa.id).await;
    let names: Vec<&str> = flows.iter().map(|(n, _)| n.as_str()).collect();
    let last_is_edit = edit.version == final_instance.version;
    let mut expected: Vec<String> = (0..10).map(|i| format!("flow-{i}")).collect();
    if last_is_edit {
        expected.push("hotfix".into());
    }
    expected.sort();
    assert_eq!(
        names,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );

    // One audit event per applied promotion, for exactly those promotions.
    let events = h.store.audit_events(team, 1000).await.unwrap();
    let audited: BTreeSet<uuid::Uuid> = events
        .iter()
        .filter(|e| e.kind == "promotion.applied")
        .filter_map(|e| e.subject_id)
        .collect();
    let promoted: BTreeSet<uuid::Uuid> = applied.iter().map(|p| p.id.0).collect();
    assert_eq!(audited, promoted);
    assert_eq!(h.count("promotions").await, applied.len() as i64);
}

/// Many login attempts on one account at once: counting and checking the
/// limit are one step, so no more than the limit get through, and a
/// successful attempt gives its place back.
pub async fn concurrent_login_attempts_never_exceed_the_limit(h: &Harness) {
    use stagehand_store::LoginScope;
    let since = chrono::Utc::now() - chrono::TimeDelta::minutes(15);
    let scopes = |n: usize| {
        vec![
            LoginScope {
                scope: "user:lena".into(),
                limit: 5,
            },
            LoginScope {
                scope: format!("ip:10.0.0.{}", n % 3),
                limit: 30,
            },
        ]
    };
    let mut tasks = Vec::new();
    for n in 0..40 {
        let store = h.store.clone();
        let scopes = scopes(n);
        tasks.push(tokio::spawn(async move {
            store.reserve_login_attempt(&scopes, since).await
        }));
    }
    let mut granted = Vec::new();
    for t in tasks {
        if let Some(attempt) = t.await.unwrap().expect("no error under contention") {
            granted.push(attempt);
        }
    }
    assert_eq!(granted.len(), 5, "exactly the limit gets through");
    assert!(
        h.store
            .reserve_login_attempt(&scopes(0), since)
            .await
            .unwrap()
            .is_none()
    );
    // A success releases its place and clears the account's failures.
    h.store
        .clear_login_failures(&granted[0], "user:lena")
        .await
        .unwrap();
    assert!(
        h.store
            .reserve_login_attempt(&scopes(0), since)
            .await
            .unwrap()
            .is_some()
    );

    // The per-address limit holds the same way across many accounts.
    let mut tasks = Vec::new();
    for n in 0..40 {
        let store = h.store.clone();
        let scopes = vec![
            LoginScope {
                scope: format!("user:u{n}"),
                limit: 5,
            },
            LoginScope {
                scope: "ip:192.0.2.1".into(),
                limit: 30,
            },
        ];
        tasks.push(tokio::spawn(async move {
            store.reserve_login_attempt(&scopes, since).await
        }));
    }
    let mut through = 0;
    for t in tasks {
        through += usize::from(t.await.unwrap().unwrap().is_some());
    }
    assert_eq!(through, 30);
}
