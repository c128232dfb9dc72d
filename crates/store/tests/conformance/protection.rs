//! Protected instances: protection belongs to the instance, and nothing
//! but an approved promotion or rollback, or someone who manages
//! protection, changes one.

use crate::approvals::{conflict, person};
use crate::harness::*;
use serde_json::json;
use stagehand_domain::{
    BuiltinRole, EnvKey, Permission, PromotionStatus, Protection, SecretValue, TeamId,
};
use stagehand_store::{Actor, Conflict, Decision, Instance, StoreError, StoreResult};

/// A lead: everything but managing protection (and the admin's rights).
fn lead(actor: Actor) -> Actor {
    actor.holding(BuiltinRole::Lead.permissions())
}

fn admin(actor: Actor) -> Actor {
    actor.holding(BuiltinRole::Admin.permissions())
}

fn refused_as_protected<T: std::fmt::Debug>(what: &str, r: StoreResult<T>) {
    match r {
        Err(StoreError::Protected { instance }) => assert_eq!(instance, "prod", "{what}"),
        other => panic!("{what}: expected `protected`, got {other:?}"),
    }
}

/// What a protected instance is: flows, keys, values, settings, version,
/// protection and the pipelines it is a stage of.
async fn state_of(h: &Harness, team: TeamId, prod: &Instance) -> String {
    let i = h.store.instance(team, prod.id).await.unwrap();
    let flows = h.flows_of(team, prod.id).await;
    let env = h.store.env_vars(team, prod.id).await.unwrap();
    let mut values = Vec::new();
    for v in &env {
        values.push(
            h.store
                .reveal_env_value(team, prod.id, &v.key, &actor())
                .await
                .unwrap()
                .map(|s| s.expose().to_owned()),
        );
    }
    let stages: Vec<_> = h
        .store
        .pipelines(team)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|p| p.stages)
        .filter(|s| s.instance_id == prod.id)
        .map(|s| s.id)
        .collect();
    format!(
        "{:?} {:?} {:?} {:?} {:?} {flows:?} {values:?} {stages:?}",
        i.settings,
        i.version,
        i.protection,
        env.iter().map(|v| &v.key).collect::<Vec<_>>(),
        i.name,
    )
}

pub async fn protection_belongs_to_the_instance_in_every_pipeline(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, _qa, prod]) = h.three_stage_pipeline(team).await;
    let manager = admin(person(h, "ada").await);
    let rita = lead(person(h, "rita").await);
    // A lead cannot protect, or unprotect, an instance.
    assert!(matches!(
        h.store
            .set_instance_protection(team, prod.id, Protection::new(0, false).unwrap(), &rita)
            .await,
        Err(StoreError::Forbidden(_))
    ));
    let protected = h
        .store
        .set_instance_protection(team, prod.id, Protection::new(1, true).unwrap(), &manager)
        .await
        .unwrap();
    assert_eq!(protected.protection.required_approvals, 1);
    let event = &h.store.audit_events(team, 1).await.unwrap()[0];
    assert_eq!(event.kind, "instance.protection_changed");
    assert_eq!(event.details["to"]["required_approvals"], 1);
    assert_eq!(event.details["from"]["required_approvals"], 0);
    // Every pipeline shows it on prod's stage.
    let p = h.store.pipeline(team, p.id).await.unwrap();
    assert!(p.stages[2].protection.is_protected());

    // A second pipeline dev → prod starts protected, not at 0: play there
    // is a request.
    let side = h
        .store
        .create_pipeline(team, name_of("side"), &rita)
        .await
        .unwrap();
    for i in [dev.id, prod.id] {
        h.store
            .add_stage(team, side.id, i, None, &rita)
            .await
            .unwrap();
    }
    let side = h.store.pipeline(team, side.id).await.unwrap();
    assert!(side.stages[1].protection.is_protected());
    h.put(team, dev.id, "f", "{}").await;
    let mut req = request(team, side.id, side.stages[0].id);
    req.actor = rita.clone();
    req.actor.authority = stagehand_store::Authority::Holds(BuiltinRole::Lead.permissions());
    let played = h.store.play(req.clone()).await.unwrap();
    assert_eq!(played.promotion.status, PromotionStatus::PendingApproval);
    assert!(h.flows_of(team, prod.id).await.is_empty());
    // A second request of the same promotion while the first waits is a
    // conflict naming the first.
    match h.store.play(req).await {
        Err(StoreError::Conflict(Conflict::AlreadyPending { id, .. })) => {
            assert_eq!(id, played.promotion.id)
        }
        other => panic!("expected already pending, got {other:?}"),
    }

    // Removing the stage and adding the instance back resets nothing
    // (and removing it needs the manager).
    refused_as_protected(
        "a lead removes prod's stage",
        h.store
            .remove_stage(team, side.id, side.stages[1].id, &rita)
            .await,
    );
    refused_as_protected(
        "a lead deletes a pipeline holding prod",
        h.store.delete_pipeline(team, side.id, &rita).await,
    );
    // Not even the manager removes it while the request waits: withdrawn,
    // the request no longer holds it.
    assert!(matches!(
        h.store
            .remove_stage(team, side.id, side.stages[1].id, &manager)
            .await,
        Err(StoreError::Conflict(Conflict::RequestWaiting { .. }))
    ));
    h.store
        .decide(
            team,
            played.promotion.id,
            stagehand_store::Decision::Reject,
            &rita,
        )
        .await
        .unwrap();
    h.store
        .remove_stage(team, side.id, side.stages[1].id, &manager)
        .await
        .unwrap();
    let readded = h
        .store
        .add_stage(team, side.id, prod.id, None, &rita)
        .await
        .unwrap();
    assert_eq!(readded.stages[1].protection, protected.protection);
    assert_eq!(
        h.store.instance(team, prod.id).await.unwrap().protection,
        protected.protection
    );
}

pub async fn nothing_changes_a_protected_instance_directly_but_its_manager(h: &Harness) {
    let team = h.team("t").await;
    let (p, [_dev, _qa, prod]) = h.three_stage_pipeline(team).await;
    h.put(team, prod.id, "live", r#"{"v":1}"#).await;
    h.set(team, prod.id, "DB_PASSWORD", Some("hunter2")).await;
    let manager = admin(person(h, "ada").await);
    h.store
        .set_instance_protection(team, prod.id, Protection::new(2, false).unwrap(), &manager)
        .await
        .unwrap();
    let before = state_of(h, team, &prod).await;
    let rita = lead(person(h, "rita").await);
    let key = EnvKey::parse("DB_PASSWORD").unwrap();
    let secret = || Some(SecretValue::new("stolen".into()));

    refused_as_protected(
        "put_flow",
        h.store
            .put_flow(team, prod.id, flow("x"), content("{}"), None, &rita)
            .await,
    );
    refused_as_protected(
        "put_flow from a stale form",
        h.store
            .put_flow(team, prod.id, flow("x"), content("{}"), Some(1), &rita)
            .await,
    );
    refused_as_protected(
        "delete_flow",
        h.store
            .delete_flow(team, prod.id, &flow("live"), None, &rita)
            .await,
    );
    refused_as_protected(
        "replace_flows",
        h.store
            .replace_flows(team, prod.id, vec![], None, &rita)
            .await,
    );
    refused_as_protected(
        "set_env_var",
        h.store
            .set_env_var(team, prod.id, key.clone(), secret(), &rita)
            .await,
    );
    refused_as_protected(
        "add a key",
        h.store
            .set_env_var(team, prod.id, EnvKey::parse("NEW").unwrap(), None, &rita)
            .await,
    );
    refused_as_protected(
        "remove_env_var",
        h.store.remove_env_var(team, prod.id, &key, &rita).await,
    );
    refused_as_protected(
        "update_settings",
        h.store
            .update_settings(team, prod.id, json!({}), None, &rita)
            .await,
    );
    refused_as_protected(
        "remove_stage",
        h.store
            .remove_stage(team, p.id, p.stages[2].id, &rita)
            .await,
    );
    refused_as_protected(
        "delete_pipeline",
        h.store.delete_pipeline(team, p.id, &rita).await,
    );
    // A member with every permission but the one managing protection.
    let almost: stagehand_domain::PermissionSet = Permission::ALL
        .into_iter()
        .filter(|p| *p != Permission::MANAGES_PROTECTION)
        .collect();
    let almost = person(h, "almost").await.holding(almost);
    refused_as_protected(
        "set_env_var by a member holding all but protection",
        h.store
            .set_env_var(team, prod.id, key.clone(), secret(), &almost)
            .await,
    );
    assert_eq!(state_of(h, team, &prod).await, before);

    // The manager may, and the log says the instance was protected.
    h.store
        .set_env_var(team, prod.id, key.clone(), secret(), &manager)
        .await
        .unwrap();
    let event = &h.store.audit_events(team, 1).await.unwrap()[0];
    assert_eq!(event.kind, "envvar.value_set");
    assert_eq!(event.details["protected"], true);
    assert_eq!(event.actor, "ada");
    h.store
        .update_settings(team, prod.id, json!({ "replicas": 3 }), None, &manager)
        .await
        .unwrap();
}

pub async fn a_service_account_is_not_a_person(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, qa, _]) = h.three_stage_pipeline(team).await;
    let ada = admin(person(h, "ada").await);
    h.store
        .set_instance_protection(team, qa.id, Protection::new(1, false).unwrap(), &ada)
        .await
        .unwrap();
    h.put(team, dev.id, "f", "{}").await;
    // A service account that ada created requests a promotion.
    let mut service = Actor {
        user_id: None,
        name: "token:deploy-bot".into(),
        source_ip: None,
        accountable_user_id: ada.user_id,
        authority: stagehand_store::Authority::Unlimited,
    };
    service = service.holding(BuiltinRole::Admin.permissions());
    let mut req = request(team, p.id, p.stages[0].id);
    req.actor = service.clone();
    let promo = h.store.promote(req).await.unwrap();
    assert_eq!(promo.status, PromotionStatus::PendingApproval);
    assert_eq!(promo.requested_by_user_id, ada.user_id);
    // Its creator may not approve what the bot asked for…
    assert_eq!(
        conflict(
            h.store
                .decide(team, promo.id, Decision::Approve, &ada)
                .await
        ),
        Conflict::OwnPromotion
    );
    // …and the bot approves nothing.
    assert!(matches!(
        h.store
            .decide(team, promo.id, Decision::Approve, &service)
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(h.flows_of(team, qa.id).await.is_empty());
    // A person's own token decides as that person, once.
    let bob = lead(person(h, "bob").await);
    let bobs_token = Actor {
        name: "token:bob-laptop".into(),
        ..bob.clone()
    };
    h.store
        .decide(team, promo.id, Decision::Reject, &bobs_token)
        .await
        .unwrap();
    let decisions = h.store.approvals(team, promo.id).await.unwrap();
    assert_eq!(decisions[0].username, "bob");
}

pub async fn a_replayed_play_says_so(h: &Harness) {
    let team = h.team("t").await;
    let (p, [dev, _, _]) = h.three_stage_pipeline(team).await;
    h.put(team, dev.id, "f", "{}").await;
    let mut req = request(team, p.id, p.stages[0].id);
    req.idempotency_key = Some("once".into());
    let first = h.store.play(req.clone()).await.unwrap();
    assert!(!first.replayed);
    let again = h.store.play(req).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.promotion.id, first.promotion.id);
}
