//! One function per store behaviour; each runs on both backends.

use crate::harness::*;
use stagehand_domain::{
    BuiltinRole, EnvKey, FlowContent, Permission, PermissionSet, PromotionPlan, PromotionStatus,
    Protection, SecretValue, Username,
};
use stagehand_store::crypto::SecretKey;
use stagehand_store::{Conflict, NewUser, StoreError};
use std::collections::BTreeMap;

fn key(k: &str) -> EnvKey {
    EnvKey::parse(k).unwrap()
}

pub async fn env_values_round_trip_and_are_ciphertext_at_rest(h: &Harness) {
    let team = h.team("t").await;
    let i = h.instance(team, "dev").await;
    h.set(team, i.id, "DB_PASSWORD", Some("correct-horse-battery"))
        .await;
    let v = h
        .store
        .reveal_env_value(team, i.id, &key("DB_PASSWORD"), &actor())
        .await
        .unwrap();
    assert_eq!(v.unwrap().expose(), "correct-horse-battery");
    let at_rest = h.raw_blobs("select value_ciphertext from env_vars").await;
    assert_eq!(at_rest.len(), 1);
    assert!(!String::from_utf8_lossy(&at_rest[0]).contains("correct-horse"));
}

pub async fn a_wrong_secret_key_fails_loudly_at_open(h: &Harness) {
    let team = h.team("t").await;
    let i = h.instance(team, "dev").await;
    h.set(team, i.id, "K", Some("v")).await;
    let err = stagehand_store::open(&h.database, &SecretKey::generate())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Crypto(_)), "{err:?}");
    assert!(err.to_string().contains("does not match"), "{err}");
    // The right key still opens it.
    stagehand_store::open(&h.database, &h.key).await.unwrap();
}

pub async fn teams_roles_and_bindings_give_permissions(h: &Harness) {
    let team = h.team("payments").await;
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
    assert!(h.store.permissions(team, user.id).await.unwrap().is_empty());
    h.store
        .bind_role(team, user.id, "viewer", &actor())
        .await
        .unwrap();
    assert_eq!(
        h.store.permissions(team, user.id).await.unwrap(),
        BuiltinRole::Viewer.permissions()
    );

    let perms: PermissionSet = [Permission::EnvvarReveal].into_iter().collect();
    h.store
        .create_role(team, name_of("secret keeper"), perms, &actor())
        .await
        .unwrap();
    h.store
        .bind_role(team, user.id, "secret keeper", &actor())
        .await
        .unwrap();
    let all = h.store.permissions(team, user.id).await.unwrap();
    assert!(all.contains(Permission::EnvvarReveal) && all.contains(Permission::InstanceView));
    assert!(!all.contains(Permission::StagePromote));

    // Members and roles are listed; unbinding takes the role's permissions away.
    let members = h.store.members(team).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].roles, ["secret keeper", "viewer"]);
    let roles = h.store.roles(team).await.unwrap();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].name.as_str(), "secret keeper");
    h.store
        .unbind_role(team, user.id, "secret keeper", &actor())
        .await
        .unwrap();
    assert_eq!(
        h.store.permissions(team, user.id).await.unwrap(),
        BuiltinRole::Viewer.permissions()
    );
    assert!(matches!(
        h.store
            .unbind_role(team, user.id, "secret keeper", &actor())
            .await,
        Err(StoreError::NotFound(_))
    ));
    let events = h.store.audit_events(team, 10).await.unwrap();
    assert_eq!(events[0].kind, "member.unbound");
    assert_eq!(h.store.users().await.unwrap().len(), 1);

    // No such role; a built-in name cannot be redefined; another team sees nothing.
    let err = h
        .store
        .bind_role(team, user.id, "root", &actor())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref v) if v.field() == "role"),
        "{err:?}"
    );
    let err = h
        .store
        .create_role(
            team,
            name_of("admin"),
            BuiltinRole::Viewer.permissions(),
            &actor(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let other = h.team("other").await;
    assert!(
        h.store
            .permissions(other, user.id)
            .await
            .unwrap()
            .is_empty()
    );
    let creds = h
        .store
        .user_credentials(&Username::parse("lee").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.user.id, user.id);
    assert!(!format!("{creds:?}").contains("argon2"));

    // A team and its first admin come together or not at all.
    let founded = h
        .store
        .create_team_with_admin(name_of("founded"), user.id, &actor())
        .await
        .unwrap();
    assert_eq!(
        h.store.permissions(founded.id, user.id).await.unwrap(),
        BuiltinRole::Admin.permissions()
    );
    let teams_before = h.store.teams().await.unwrap().len();
    let nobody = stagehand_domain::UserId::new();
    assert!(matches!(
        h.store
            .create_team_with_admin(name_of("orphan"), nobody, &actor())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        h.store.teams().await.unwrap().len(),
        teams_before,
        "nothing written"
    );
}

pub async fn duplicate_names_are_typed_conflicts(h: &Harness) {
    let team = h.team("t").await;
    let err = h
        .store
        .create_team(name_of("t"), &actor())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Taken { field: "name", .. })
        ),
        "{err:?}"
    );
    h.instance(team, "dev").await;
    let err = h
        .store
        .create_instance(team, name_of("dev"), serde_json::json!({}), &actor())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Taken { field: "name", .. })
        ),
        "{err:?}"
    );
    // The same name in another team is fine.
    let other = h.team("u").await;
    h.instance(other, "dev").await;
    let new = || NewUser {
        username: Username::parse("sam").unwrap(),
        password_hash: "x".into(),
        is_platform_admin: false,
    };
    h.store.create_user(new(), &actor()).await.unwrap();
    let err = h.store.create_user(new(), &actor()).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Taken {
                field: "username",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(h.store.count_users().await.unwrap(), 1);
}

pub async fn another_teams_ids_are_not_found(h: &Harness) {
    let mine = h.team("mine").await;
    let theirs = h.team("theirs").await;
    let (p, [dev, ..]) = h.three_stage_pipeline(theirs).await;
    h.put(theirs, dev.id, "f", "{}").await;
    let nf = |r: Result<_, StoreError>| matches!(r, Err(StoreError::NotFound(_)));
    assert!(nf(h.store.instance(mine, dev.id).await.map(|_| ())));
    assert!(nf(h.store.flows(mine, dev.id).await.map(|_| ())));
    assert!(nf(h.store.flow(mine, dev.id, &flow("f")).await.map(|_| ())));
    assert!(nf(h.store.env_vars(mine, dev.id).await.map(|_| ())));
    assert!(nf(h.store.pipeline(mine, p.id).await.map(|_| ())));
    assert!(nf(h
        .store
        .preview(mine, p.id, p.stages[0].id)
        .await
        .map(|_| ())));
    assert!(nf(h
        .store
        .promote(request(mine, p.id, p.stages[0].id))
        .await
        .map(|_| ())));
    assert!(nf(h
        .store
        .put_flow(mine, dev.id, flow("x"), content("{}"), None, &actor())
        .await
        .map(|_| ())));
    assert!(nf(h
        .store
        .reveal_env_value(mine, dev.id, &key("K"), &actor())
        .await
        .map(|_| ())));
    assert!(nf(h.store.delete_instance(mine, dev.id, &actor()).await));
    let promo = h
        .store
        .promote(request(theirs, p.id, p.stages[0].id))
        .await
        .unwrap();
    assert!(nf(h.store.promotion(mine, promo.id).await.map(|_| ())));
    assert!(nf(h
        .store
        .rollback(mine, promo.id, None, &actor())
        .await
        .map(|_| ())));
    assert!(nf(h
        .store
        .snapshot(mine, promo.source_snapshot_id)
        .await
        .map(|_| ())));
    assert!(h.store.promotions(mine, 10).await.unwrap().is_empty());
    assert!(
        h.store
            .audit_events(mine, 100)
            .await
            .unwrap()
            .iter()
            .all(|e| e.kind == "team.created")
    );
}

pub async fn flows_are_saved_listed_and_deleted_with_versions(h: &Harness) {
    let team = h.team("t").await;
    let i = h.instance(team, "dev").await;
    assert_eq!(i.version, 1);
    let v2 = h
        .store
        .put_flow(
            team,
            i.id,
            flow("b"),
            content(r#"{"n": 1}"#),
            Some(1),
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    h.put(team, i.id, "a", "[1, 2]").await;
    let listed = h.store.flows(team, i.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(listed[0].hash, *content("[1,2]").hash());
    assert_eq!(
        h.store
            .flow(team, i.id, &flow("b"))
            .await
            .unwrap()
            .content
            .as_json(),
        r#"{"n":1}"#
    );
    let after = h
        .store
        .delete_flow(team, i.id, &flow("a"), None, &actor())
        .await
        .unwrap();
    assert_eq!(after.version, 4);
    assert!(matches!(
        h.store
            .delete_flow(team, i.id, &flow("a"), None, &actor())
            .await,
        Err(StoreError::NotFound("flow"))
    ));
    let replaced = h
        .store
        .replace_flows(
            team,
            i.id,
            vec![
                (flow("c"), content("3")),
                (flow("b"), content(r#"{"n": 2}"#)),
            ],
            None,
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!(replaced.version, 5);
    assert_eq!(
        h.flows_of(team, i.id).await,
        [
            ("b".to_owned(), r#"{"n":2}"#.to_owned()),
            ("c".to_owned(), "3".to_owned())
        ]
    );
    let kinds: Vec<String> = h
        .store
        .audit_events(team, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "flow.saved").count(), 2);
    assert!(
        kinds.contains(&"flow.deleted".to_owned()) && kinds.contains(&"flows.replaced".to_owned())
    );
}

pub async fn bad_flow_input_writes_nothing(h: &Harness) {
    let team = h.team("t").await;
    let i = h.instance(team, "dev").await;
    h.put(team, i.id, "keep", "1").await;
    let before_events = h.count("audit_events").await;
    let err = h
        .store
        .replace_flows(
            team,
            i.id,
            vec![(flow("x"), content("1")), (flow("x"), content("2"))],
            None,
            &actor(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref v) if v.field() == "flows"),
        "{err:?}"
    );
    assert!(err.to_string().contains("more than once"));
    // Content that is not JSON, or too large, never becomes a FlowContent.
    assert!(FlowContent::parse_json("{not json").is_err());
    assert!(
        FlowContent::parse_json(&format!(
            "\"{}\"",
            "x".repeat(stagehand_domain::MAX_FLOW_BYTES)
        ))
        .is_err()
    );
    assert_eq!(
        h.flows_of(team, i.id).await,
        [("keep".to_owned(), "1".to_owned())]
    );
    assert_eq!(h.store.instance(team, i.id).await.unwrap().version, 2);
    assert_eq!(h.count("audit_events").await, before_events);
}

pub async fn a_stale_version_is_a_conflict_and_writes_nothing(h: &Harness) {
    let team = h.team("t").await;
    let i = h.instance(team, "dev").await;
    h.put(team, i.id, "a", "1").await;
    let err = h
        .store
        .put_flow(team, i.id, flow("a"), content("2"), Some(1), &actor())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::StaleVersion {
                expected: 1,
                actual: 2
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        h.flows_of(team, i.id).await,
        [("a".to_owned(), "1".to_owned())]
    );
}

pub async fn env_vars_are_set_cleared_removed_and_revealed_with_audit(h: &Harness) {
    let team = h.team("t").await;
    let i = h.instance(team, "dev").await;
    h.set(team, i.id, "API_URL", None).await;
    h.set(team, i.id, "TOKEN", Some("tok-123-secret")).await;
    let vars = h.store.env_vars(team, i.id).await.unwrap();
    assert_eq!(
        vars.iter()
            .map(|v| (v.key.as_str(), v.has_value))
            .collect::<Vec<_>>(),
        [("API_URL", false), ("TOKEN", true)]
    );
    h.set(team, i.id, "TOKEN", None).await;
    assert_eq!(
        h.store
            .reveal_env_value(team, i.id, &key("TOKEN"), &actor())
            .await
            .unwrap(),
        None
    );
    h.store
        .remove_env_var(team, i.id, &key("API_URL"), &actor())
        .await
        .unwrap();
    assert!(matches!(
        h.store
            .remove_env_var(team, i.id, &key("API_URL"), &actor())
            .await,
        Err(StoreError::NotFound(_))
    ));
    let kinds: Vec<String> = h
        .store
        .audit_events(team, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for k in [
        "envvar.key_added",
        "envvar.value_set",
        "envvar.value_cleared",
        "envvar.key_removed",
        "envvar.value_revealed",
    ] {
        assert!(kinds.iter().any(|x| x == k), "missing {k} in {kinds:?}");
    }
    assert!(!h.all_stored_text().await.contains("tok-123"));
}

pub async fn settings_must_be_an_object(h: &Harness) {
    let team = h.team("t").await;
    let i = h.instance(team, "dev").await;
    let err = h
        .store
        .update_settings(team, i.id, serde_json::json!([1]), None, &actor())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref v) if v.field() == "settings"),
        "{err:?}"
    );
    let updated = h
        .store
        .update_settings(
            team,
            i.id,
            serde_json::json!({"workers": 4}),
            Some(1),
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!(updated.settings, serde_json::json!({"workers": 4}));
    assert_eq!(updated.version, 2);
}

pub async fn stages_are_added_inserted_reordered_and_removed(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, prod]) = h.three_stage_pipeline(team).await;
    let names = |p: &stagehand_store::Pipeline| {
        p.stages
            .iter()
            .map(|s| s.instance_name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&p), ["dev", "qa", "prod"]);
    let staging = h.instance(team, "staging").await;
    let p2 = h
        .store
        .add_stage(team, p.id, staging.id, Some(2), &actor())
        .await
        .unwrap();
    assert_eq!(names(&p2), ["dev", "qa", "staging", "prod"]);
    assert_eq!(
        p2.stages.iter().map(|s| s.position).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    let order = vec![
        p2.stages[1].id,
        p2.stages[0].id,
        p2.stages[3].id,
        p2.stages[2].id,
    ];
    let p3 = h
        .store
        .reorder_stages(team, p.id, order, &actor())
        .await
        .unwrap();
    assert_eq!(names(&p3), ["qa", "dev", "prod", "staging"]);
    let err = h
        .store
        .reorder_stages(team, p.id, vec![p3.stages[0].id], &actor())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let p4 = h
        .store
        .remove_stage(team, p.id, p3.stages[1].id, &actor())
        .await
        .unwrap();
    assert_eq!(names(&p4), ["qa", "prod", "staging"]);
    assert_eq!(
        p4.stages.iter().map(|s| s.position).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(
        h.store.pipelines(team).await.unwrap(),
        std::slice::from_ref(&p4)
    );
    let _ = (dev, qa, prod);
    let err = h
        .store
        .add_stage(team, p.id, staging.id, Some(9), &actor())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref v) if v.field() == "position"),
        "{err:?}"
    );
    let kinds: Vec<String> = h
        .store
        .audit_events(team, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"stages.reordered".into()) && kinds.contains(&"stage.removed".into()));
}

pub async fn a_stage_cannot_use_another_teams_instance_or_repeat_one(h: &Harness) {
    let team = h.team("t").await;
    let other = h.team("o").await;
    let foreign = h.instance(other, "theirs").await;
    let mine = h.instance(team, "mine").await;
    let p = h
        .store
        .create_pipeline(team, name_of("p"), &actor())
        .await
        .unwrap();
    let err = h
        .store
        .add_stage(team, p.id, foreign.id, None, &actor())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref v) if v.field() == "instance_id"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("theirs"));
    h.store
        .add_stage(team, p.id, mine.id, None, &actor())
        .await
        .unwrap();
    let err = h
        .store
        .add_stage(team, p.id, mine.id, None, &actor())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Taken {
                field: "instance_id",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(h.store.pipeline(team, p.id).await.unwrap().stages.len(), 1);
}

pub async fn an_instance_that_is_a_stage_cannot_be_deleted(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, ..]) = h.three_stage_pipeline(team).await;
    let err = h
        .store
        .delete_instance(team, dev.id, &actor())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(Conflict::InUse(_))),
        "{err:?}"
    );
    h.store
        .remove_stage(team, p.id, p.stages[0].id, &actor())
        .await
        .unwrap();
    h.store
        .delete_instance(team, dev.id, &actor())
        .await
        .unwrap();
    assert!(matches!(
        h.store.instance(team, dev.id).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn promotion_follows_the_design_semantics(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    h.put(team, dev.id, "same", r#"{"v": 1}"#).await;
    h.put(team, dev.id, "changed", r#"{"v": "new"}"#).await;
    h.put(team, dev.id, "added", r#"{"v": 3}"#).await;
    h.put(team, qa.id, "same", r#"{"v": 1}"#).await;
    h.put(team, qa.id, "changed", r#"{"v": "old"}"#).await;
    h.put(team, qa.id, "removed", r#"{"v": 0}"#).await;
    h.set(team, dev.id, "SHARED", Some("dev-value")).await;
    h.set(team, dev.id, "NEW_KEY", Some("dev-only-value")).await;
    h.set(team, qa.id, "SHARED", Some("qa-value")).await;
    h.set(team, qa.id, "QA_ONLY", Some("qa-only-value")).await;
    let qa_settings = h.store.instance(team, qa.id).await.unwrap().settings;

    let preview = h.store.preview(team, p.id, p.stages[0].id).await.unwrap();
    let promo = h
        .store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    assert_eq!(promo.status, PromotionStatus::Applied);
    assert_eq!(promo.plan, preview.plan);
    let plan = &promo.plan;
    assert_eq!(
        plan.flows_added
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["added"]
    );
    assert_eq!(
        plan.flows_changed
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["changed"]
    );
    assert_eq!(
        plan.flows_removed
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["removed"]
    );
    assert_eq!(
        plan.flows_unchanged
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>(),
        ["same"]
    );
    assert_eq!(plan.keys_to_add, [key("NEW_KEY")]);
    assert_eq!(plan.keys_only_in_target, [key("QA_ONLY")]);

    assert_eq!(
        h.flows_of(team, qa.id).await,
        h.flows_of(team, dev.id).await
    );
    let reveal = |k: &'static str| async move {
        h.store
            .reveal_env_value(team, qa.id, &key(k), &actor())
            .await
            .unwrap()
            .map(|v| v.expose().to_owned())
    };
    assert_eq!(reveal("SHARED").await.as_deref(), Some("qa-value"));
    assert_eq!(reveal("QA_ONLY").await.as_deref(), Some("qa-only-value"));
    assert_eq!(reveal("NEW_KEY").await, None);
    let after = h.store.instance(team, qa.id).await.unwrap();
    assert_eq!(after.settings, qa_settings);
    assert_eq!(Some(after.version), promo.target_version);

    let backup = h
        .store
        .snapshot(team, promo.backup_snapshot_id.unwrap())
        .await
        .unwrap();
    assert_eq!(
        backup.flows.keys().map(|f| f.as_str()).collect::<Vec<_>>(),
        ["changed", "removed", "same"]
    );
    assert_eq!(backup.env_keys, [key("QA_ONLY"), key("SHARED")]);
    let source = h
        .store
        .snapshot(team, promo.source_snapshot_id)
        .await
        .unwrap();
    assert_eq!(source.instance_id, dev.id);
    let events = h.store.audit_events(team, 100).await.unwrap();
    let applied: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "promotion.applied")
        .collect();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].subject_id, Some(promo.id.0));
    assert_eq!(h.store.promotions(team, 10).await.unwrap(), [promo]);
}

pub async fn unchanged_flows_are_not_rewritten(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    h.put(team, dev.id, "same", "1").await;
    h.put(team, qa.id, "same", "1").await;
    h.put(team, dev.id, "other", "2").await;
    let before = h.store.flows(team, qa.id).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    h.store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    let after = h.store.flows(team, qa.id).await.unwrap();
    let same = |fs: &[stagehand_store::FlowMeta]| {
        fs.iter()
            .find(|f| f.name.as_str() == "same")
            .unwrap()
            .updated_at
    };
    assert_eq!(same(&before), same(&after));
    assert_eq!(after.len(), 2);
}

pub async fn the_store_applies_plans_exactly_as_the_domain_does(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    // A handful of overlapping shapes, promoted one after another.
    type Flows<'a> = &'a [(&'a str, &'a str)];
    let rounds: [(Flows, Flows, &[&str], &[&str]); 3] = [
        (
            &[("a", "1"), ("b", "2")],
            &[("b", "3"), ("c", "4")],
            &["K1", "K2"],
            &["K2", "K3"],
        ),
        (&[("a", "5")], &[], &["K4"], &[]),
        (&[], &[("z", "9")], &[], &["K9"]),
    ];
    for (dev_flows, qa_flows, dev_keys, qa_keys) in rounds {
        h.store
            .replace_flows(
                team,
                dev.id,
                dev_flows
                    .iter()
                    .map(|(n, c)| (flow(n), content(c)))
                    .collect(),
                None,
                &actor(),
            )
            .await
            .unwrap();
        for (n, c) in qa_flows {
            h.put(team, qa.id, n, c).await;
        }
        for k in dev_keys {
            h.set(team, dev.id, k, Some("dv")).await;
        }
        for k in qa_keys {
            h.set(team, qa.id, k, Some(&format!("qa-{k}"))).await;
        }
        let flows_before: BTreeMap<_, _> = h
            .store
            .flows(team, qa.id)
            .await
            .unwrap()
            .into_iter()
            .map(|f| (f.name, f.hash))
            .collect();
        let mut env_expected: BTreeMap<EnvKey, Option<SecretValue>> = BTreeMap::new();
        for v in h.store.env_vars(team, qa.id).await.unwrap() {
            let val = h
                .store
                .reveal_env_value(team, qa.id, &v.key, &actor())
                .await
                .unwrap();
            env_expected.insert(v.key, val);
        }
        let promo = h
            .store
            .promote(request(team, p.id, p.stages[0].id))
            .await
            .unwrap();
        let mut flows_expected = flows_before;
        PromotionPlan::apply_to(&promo.plan, &mut flows_expected, &mut env_expected);
        let flows_now: BTreeMap<_, _> = h
            .store
            .flows(team, qa.id)
            .await
            .unwrap()
            .into_iter()
            .map(|f| (f.name, f.hash))
            .collect();
        assert_eq!(flows_now, flows_expected);
        let mut env_now = BTreeMap::new();
        for v in h.store.env_vars(team, qa.id).await.unwrap() {
            let val = h
                .store
                .reveal_env_value(team, qa.id, &v.key, &actor())
                .await
                .unwrap();
            env_now.insert(v.key, val);
        }
        assert_eq!(env_now, env_expected);
    }
}

pub async fn no_value_reaches_a_snapshot_plan_or_audit_event(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, prod]) = h.three_stage_pipeline(team).await;
    h.set(team, dev.id, "A", Some("leak-canary-aaa")).await;
    h.set(team, dev.id, "B", Some("leak-canary-bbb")).await;
    h.set(team, qa.id, "B", Some("leak-canary-qa")).await;
    h.put(team, dev.id, "f", "1").await;
    let promo = h
        .store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    h.store
        .promote(request(team, p.id, p.stages[1].id))
        .await
        .unwrap();
    h.store
        .rollback(team, promo.id, None, &actor())
        .await
        .unwrap();
    let text = h.all_stored_text().await;
    assert!(text.contains("\"A\""), "keys are recorded: {text}");
    assert!(!text.contains("leak-canary"), "a value leaked: {text}");
    let debug = format!("{:?}", h.store.promotions(team, 10).await.unwrap());
    assert!(!debug.contains("leak-canary"));
    assert_eq!(
        h.store
            .reveal_env_value(team, prod.id, &key("A"), &actor())
            .await
            .unwrap(),
        None
    );
}

pub async fn promoting_the_last_stage_is_refused_and_writes_nothing(h: &Harness) {
    let team = h.team("t").await;
    let (p, [_, _, prod]) = h.three_stage_pipeline(team).await;
    let events = h.count("audit_events").await;
    let err = h
        .store
        .promote(request(team, p.id, p.stages[2].id))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref v) if v.field() == "stage"),
        "{err:?}"
    );
    assert!(matches!(
        h.store.preview(team, p.id, p.stages[2].id).await,
        Err(StoreError::Invalid(_))
    ));
    let err = h
        .store
        .promote(request(team, p.id, stagehand_domain::StageId::new()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound("stage")), "{err:?}");
    assert_eq!(h.count("promotions").await, 0);
    assert_eq!(h.count("snapshots").await, 0);
    assert_eq!(h.count("audit_events").await, events);
    assert_eq!(h.store.instance(team, prod.id).await.unwrap().version, 1);
}

pub async fn a_retried_promotion_with_the_same_idempotency_key_is_one_promotion(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, ..]) = h.three_stage_pipeline(team).await;
    h.put(team, dev.id, "f", "1").await;
    let mut req = request(team, p.id, p.stages[0].id);
    req.idempotency_key = Some("ci-run-42".into());
    let first = h.store.promote(req.clone()).await.unwrap();
    h.put(team, dev.id, "g", "2").await;
    let second = h.store.promote(req.clone()).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(h.count("promotions").await, 1);
    req.stage = p.stages[1].id;
    let err = h.store.promote(req.clone()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(Conflict::IdempotencyKeyReused)),
        "{err:?}"
    );
    req.idempotency_key = Some("bad\nkey".into());
    assert!(matches!(
        h.store.promote(req).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(h.count("promotions").await, 1);
}

pub async fn a_promotion_against_a_stale_preview_is_a_conflict(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    h.put(team, dev.id, "f", "1").await;
    let preview = h.store.preview(team, p.id, p.stages[0].id).await.unwrap();
    h.put(team, qa.id, "hotfix", "1").await;
    let mut req = request(team, p.id, p.stages[0].id);
    req.expected_target_version = Some(preview.target_version);
    let err = h.store.promote(req.clone()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(Conflict::StaleVersion { .. })),
        "{err:?}"
    );
    assert_eq!(h.count("promotions").await, 0);
    assert_eq!(
        h.flows_of(team, qa.id).await,
        [("hotfix".to_owned(), "1".to_owned())]
    );
    req.expected_target_version = Some(
        h.store
            .preview(team, p.id, p.stages[0].id)
            .await
            .unwrap()
            .target_version,
    );
    h.store.promote(req).await.unwrap();
}

pub async fn rollback_restores_the_flows_and_is_audited(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    h.put(team, qa.id, "prod-flow", "1").await;
    h.put(team, qa.id, "shared", "\"old\"").await;
    h.put(team, dev.id, "shared", "\"new\"").await;
    h.put(team, dev.id, "dev-flow", "2").await;
    h.set(team, dev.id, "NEW", Some("x")).await;
    let before = h.flows_of(team, qa.id).await;
    let promo = h
        .store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    assert_ne!(h.flows_of(team, qa.id).await, before);
    h.set(team, qa.id, "NEW", Some("qa-set-after")).await;
    let rolled = h
        .store
        .rollback(team, promo.id, None, &actor())
        .await
        .unwrap();
    assert_eq!(rolled.status, PromotionStatus::RolledBack);
    assert!(rolled.rolled_back_at.is_some());
    // Who rolled it back is kept with it.
    assert_eq!(rolled.rolled_back_by.as_deref(), Some("system"));
    assert_eq!(h.store.promotion(team, promo.id).await.unwrap(), rolled);
    assert_eq!(h.flows_of(team, qa.id).await, before);
    // Keys and values stay as they are: a rollback restores flows only.
    let v = h
        .store
        .reveal_env_value(team, qa.id, &key("NEW"), &actor())
        .await
        .unwrap();
    assert_eq!(v.unwrap().expose(), "qa-set-after");
    let err = h
        .store
        .rollback(team, promo.id, None, &actor())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Transition {
                from: PromotionStatus::RolledBack,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        h.store.promotion(team, promo.id).await.unwrap().status,
        PromotionStatus::RolledBack
    );
    let events = h.store.audit_events(team, 50).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "promotion.rolled_back")
            .count(),
        1
    );
    // The target's snapshots list both backups, newest first.
    let reasons: Vec<&str> = h
        .store
        .snapshots(team, qa.id, 10)
        .await
        .unwrap()
        .iter()
        .map(|s| s.reason.as_str())
        .collect();
    assert_eq!(reasons, ["rollback_backup", "promotion_backup"]);
    let other = h.team("other").await;
    assert!(matches!(
        h.store.snapshots(other, qa.id, 10).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn a_stage_requiring_all_values_refuses_promotions_that_leave_keys_empty(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    h.store
        .set_instance_protection(
            team,
            p.stages[1].instance_id,
            Protection::new(0, true).unwrap(),
            &actor(),
        )
        .await
        .unwrap();
    h.set(team, dev.id, "NEEDED", Some("dev")).await;
    h.put(team, dev.id, "f", "1").await;
    let err = h
        .store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(Conflict::EnvValuesMissing(ref k)) if k == &[key("NEEDED")]),
        "{err:?}"
    );
    assert!(err.to_string().contains("NEEDED"));
    assert!(h.flows_of(team, qa.id).await.is_empty());
    assert_eq!(h.count("promotions").await, 0);
    h.set(team, qa.id, "NEEDED", Some("qa")).await;
    let ok = h
        .store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    assert_eq!(ok.status, PromotionStatus::Applied);
}

pub async fn a_protected_stage_gets_a_pending_promotion_pinned_to_the_source(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    h.store
        .set_instance_protection(
            team,
            p.stages[1].instance_id,
            Protection::new(2, false).unwrap(),
            &actor(),
        )
        .await
        .unwrap();
    h.put(team, dev.id, "reviewed", "1").await;
    let promo = h
        .store
        .promote(request(team, p.id, p.stages[0].id))
        .await
        .unwrap();
    assert_eq!(promo.status, PromotionStatus::PendingApproval);
    assert_eq!(promo.backup_snapshot_id, None);
    assert!(
        h.flows_of(team, qa.id).await.is_empty(),
        "nothing applies before approval"
    );
    let pinned = h
        .store
        .snapshot(team, promo.source_snapshot_id)
        .await
        .unwrap();
    h.put(team, dev.id, "later", "2").await;
    assert_eq!(
        pinned.flows.keys().map(|f| f.as_str()).collect::<Vec<_>>(),
        ["reviewed"]
    );
    assert_eq!(
        h.store
            .snapshot(team, promo.source_snapshot_id)
            .await
            .unwrap(),
        pinned,
        "snapshots are immutable"
    );
    let events = h.store.audit_events(team, 3).await.unwrap();
    assert_eq!(events[1].kind, "promotion.requested");
}

pub async fn a_duplicate_has_the_flows_and_keys_but_no_value_setting_or_connection(h: &Harness) {
    let team = h.team("t").await;
    let dev = h.instance(team, "dev").await;
    h.put(team, dev.id, "orders", r#"{"n": 1}"#).await;
    h.put(team, dev.id, "billing", r#"{"n": 2}"#).await;
    h.set(team, dev.id, "API_URL", None).await;
    h.set(team, dev.id, "DB_PASSWORD", Some("dev-secret-7c1e"))
        .await;
    h.store
        .update_settings(
            team,
            dev.id,
            serde_json::json!({"workers": 4}),
            None,
            &actor(),
        )
        .await
        .unwrap();
    h.store
        .set_instance_protection(team, dev.id, Protection::new(1, false).unwrap(), &actor())
        .await
        .unwrap();

    let qa = h
        .store
        .duplicate_instance(team, dev.id, name_of("qa"), None, &actor())
        .await
        .unwrap();
    assert_eq!(qa.name.as_str(), "qa");
    assert_eq!(
        h.flows_of(team, qa.id).await,
        h.flows_of(team, dev.id).await
    );
    let keys: Vec<_> = h
        .store
        .env_vars(team, qa.id)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.key.as_str().to_owned(), v.has_value))
        .collect();
    assert_eq!(
        keys,
        [
            ("API_URL".to_owned(), false),
            ("DB_PASSWORD".to_owned(), false)
        ]
    );
    assert_eq!(qa.settings, serde_json::json!({}));
    assert!(!qa.protection.is_protected(), "{:?}", qa.protection);
    // The source keeps its value.
    assert!(
        h.store
            .env_vars(team, dev.id)
            .await
            .unwrap()
            .iter()
            .any(|v| v.key.as_str() == "DB_PASSWORD" && v.has_value)
    );
    // Audited, without any value.
    let events = h.store.audit_events(team, 100).await.unwrap();
    let duplicated = events
        .iter()
        .find(|e| e.kind.as_str() == "instance.duplicated")
        .expect("an instance.duplicated event");
    assert_eq!(duplicated.details["from_name"], "dev");
    assert_eq!(duplicated.details["keys"], 2);
    assert!(!format!("{events:?}").contains("dev-secret-7c1e"));

    // A taken name, and another team's instance, change nothing.
    let before = h.count("instances").await;
    assert!(
        h.store
            .duplicate_instance(team, dev.id, name_of("qa"), None, &actor())
            .await
            .is_err()
    );
    let other = h.team("other").await;
    let err = h
        .store
        .duplicate_instance(other, dev.id, name_of("stolen"), None, &actor())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(h.count("instances").await, before);

    // Into a pipeline: right after the source's stage, in one step.
    let prod = h.instance(team, "prod").await;
    let p = h
        .store
        .create_pipeline(team, name_of("checkout"), &actor())
        .await
        .unwrap();
    for i in [dev.id, prod.id] {
        h.store
            .add_stage(team, p.id, i, None, &actor())
            .await
            .unwrap();
    }
    let staging = h
        .store
        .duplicate_instance(team, dev.id, name_of("staging"), Some(p.id), &actor())
        .await
        .unwrap();
    let order: Vec<_> = h
        .store
        .pipeline(team, p.id)
        .await
        .unwrap()
        .stages
        .iter()
        .map(|s| s.instance_id)
        .collect();
    assert_eq!(order, [dev.id, staging.id, prod.id]);
    // Into another team's pipeline: nothing is created.
    let before = h.count("instances").await;
    let theirs = h
        .store
        .create_pipeline(other, name_of("theirs"), &actor())
        .await
        .unwrap();
    let err = h
        .store
        .duplicate_instance(team, dev.id, name_of("sneaky"), Some(theirs.id), &actor())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(h.count("instances").await, before);
}
