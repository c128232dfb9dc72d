//! What callers and auditors rely on: API tokens and the tamper-evident
//! audit chain.

use crate::harness::*;
use stagehand_domain::{BuiltinRole, Username};
use stagehand_store::{Conflict, NewUser, StoreError};

pub async fn api_tokens_authenticate_until_revoked_expired_or_their_user_is_disabled(h: &Harness) {
    let team = h.team("t").await;
    let new = |name: &str, hash: &str, user, role: &str, expires_at| stagehand_store::NewApiToken {
        team,
        name: name_of(name),
        secret_hash: hash.into(),
        user_id: user,
        role: role.into(),
        expires_at,
    };
    let service = h
        .store
        .create_token(new("ci", "hash-ci", None, "lead", None), &actor())
        .await
        .unwrap();
    let (token, found_team, perms) = h
        .store
        .authenticate_token("hash-ci")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((token.id, found_team.id), (service.id, team));
    assert_eq!(perms, BuiltinRole::Lead.permissions());
    assert_eq!(token.actor().name, "token:ci");
    assert!(
        h.store
            .authenticate_token("hash-unknown")
            .await
            .unwrap()
            .is_none()
    );

    // Names are unique per team; roles must exist; users must be members.
    assert!(matches!(
        h.store
            .create_token(new("ci", "hash-2", None, "lead", None), &actor())
            .await,
        Err(StoreError::Conflict(Conflict::Taken { field: "name", .. }))
    ));
    assert!(matches!(
        h.store.create_token(new("x", "hash-3", None, "wizard", None), &actor()).await,
        Err(StoreError::Invalid(v)) if v.field() == "role"
    ));
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
    // A user's token is made by that user (see grants.rs).
    let lee = stagehand_store::Actor::user(user.id, &user.username)
        .holding(BuiltinRole::Viewer.permissions());
    assert!(matches!(
        h.store.create_token(new("lee", "hash-4", Some(user.id), "viewer", None), &lee).await,
        Err(StoreError::Invalid(v)) if v.field() == "user"
    ));
    h.store
        .bind_role(team, user.id, "viewer", &actor())
        .await
        .unwrap();
    h.store
        .create_token(new("lee", "hash-4", Some(user.id), "viewer", None), &lee)
        .await
        .unwrap();
    assert!(
        h.store
            .authenticate_token("hash-4")
            .await
            .unwrap()
            .is_some()
    );
    h.store
        .set_user_disabled(user.id, true, &actor())
        .await
        .unwrap();
    assert!(
        h.store
            .authenticate_token("hash-4")
            .await
            .unwrap()
            .is_none(),
        "disabled user"
    );

    // Expired and revoked tokens are refused.
    assert!(matches!(
        h.store
            .create_token(new("past", "hash-5", None, "lead", Some(chrono::Utc::now() - chrono::TimeDelta::hours(1))), &actor())
            .await,
        Err(StoreError::Invalid(v)) if v.field() == "expires_at"
    ));
    h.store
        .create_token(
            new(
                "brief",
                "hash-6",
                None,
                "lead",
                Some(chrono::Utc::now() + chrono::TimeDelta::milliseconds(300)),
            ),
            &actor(),
        )
        .await
        .unwrap();
    assert!(
        h.store
            .authenticate_token("hash-6")
            .await
            .unwrap()
            .is_some()
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(
        h.store
            .authenticate_token("hash-6")
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    h.store
        .revoke_token(team, service.id, &actor())
        .await
        .unwrap();
    assert!(
        h.store
            .authenticate_token("hash-ci")
            .await
            .unwrap()
            .is_none(),
        "revoked"
    );
    let listed = h.store.tokens(team).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(
        listed
            .iter()
            .find(|t| t.name.as_str() == "ci")
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        listed
            .iter()
            .find(|t| t.name.as_str() == "ci")
            .unwrap()
            .last_used_at
            .is_some()
    );
    // Another team cannot revoke it; the audit has no secret hash.
    let other = h.team("other").await;
    assert!(matches!(
        h.store.revoke_token(other, service.id, &actor()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(!h.all_stored_text().await.contains("hash-ci"));
}

pub async fn the_audit_chain_detects_edits_deletions_and_truncation(h: &Harness) {
    let team = h.team("t").await;
    for name in ["a", "b", "c", "d"] {
        h.instance(team, name).await;
    }
    // team.created + 4 instance.created; the platform chain is separate.
    let report = h.store.verify_audit_chain(Some(team)).await.unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(report.checked, 5);
    assert!(h.store.verify_audit_chain(None).await.unwrap().intact);

    // An edit behind the store's back: found at its position.
    h.exec("update audit_events set actor = 'mallory' where chain_seq = 3 and team_id is not null")
        .await;
    let report = h.store.verify_audit_chain(Some(team)).await.unwrap();
    assert!(!report.intact);
    let broken = report.first_break.unwrap();
    assert_eq!(broken.seq, 3);
    assert!(broken.event_id.is_some());
    assert!(broken.reason.contains("changed"), "{}", broken.reason);
    h.exec("update audit_events set actor = 'system' where chain_seq = 3 and team_id is not null")
        .await;
    assert!(
        h.store.verify_audit_chain(Some(team)).await.unwrap().intact,
        "restored"
    );

    // A deleted event leaves a gap.
    h.exec("delete from audit_events where chain_seq = 2 and team_id is not null")
        .await;
    let broken = h
        .store
        .verify_audit_chain(Some(team))
        .await
        .unwrap()
        .first_break
        .unwrap();
    assert_eq!(broken.seq, 2);
    assert!(broken.reason.contains("missing"), "{}", broken.reason);

    // Removing the newest events is caught by the chain's head.
    let other = h.team("other").await;
    h.instance(other, "x").await;
    h.exec(
        "delete from audit_events where chain_seq = 2
         and team_id = (select id from teams where name = 'other')",
    )
    .await;
    let report = h.store.verify_audit_chain(Some(other)).await.unwrap();
    assert!(!report.intact);
    assert!(report.first_break.unwrap().reason.contains("newest"));
}
