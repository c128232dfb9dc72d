//! Nobody grants more than they hold: binding and defining roles, minting
//! API tokens, and what a token may still do once the person behind it
//! changed. And a team always keeps someone who can manage its members.

use crate::approvals::{conflict, person};
use crate::harness::*;
use stagehand_domain::{BuiltinRole, Permission, PermissionSet, TeamId, UserId};
use stagehand_store::{Actor, Conflict, NewApiToken, StoreError, StoreResult};

fn set(ps: &[Permission]) -> PermissionSet {
    ps.iter().copied().collect()
}

fn id(actor: &Actor) -> UserId {
    actor.user_id.unwrap()
}

/// `who` holding in `team` exactly a custom role named `role` made of `ps`
/// (created and bound by the system), and the actor acting with it.
async fn holding_only(
    h: &Harness,
    team: TeamId,
    who: Actor,
    role: &str,
    ps: &[Permission],
) -> Actor {
    h.store
        .create_role(team, name_of(role), set(ps), &actor())
        .await
        .unwrap();
    h.store
        .bind_role(team, id(&who), role, &actor())
        .await
        .unwrap();
    let held = h.store.permissions(team, id(&who)).await.unwrap();
    assert_eq!(held, set(ps));
    who.holding(held)
}

fn beyond<T: std::fmt::Debug>(what: &str, r: StoreResult<T>) -> Vec<Permission> {
    match r {
        Err(StoreError::BeyondGrantor(ps)) => {
            assert!(!ps.is_empty(), "{what}: an empty list of permissions");
            ps
        }
        other => panic!("{what}: expected `beyond the grantor`, got {other:?}"),
    }
}

fn token(team: TeamId, name: &str, user: Option<UserId>, role: &str) -> NewApiToken {
    NewApiToken {
        team,
        name: name_of(name),
        secret_hash: format!("hash-{name}"),
        user_id: user,
        role: role.into(),
        expires_at: None,
    }
}

async fn token_permissions(h: &Harness, name: &str) -> Option<PermissionSet> {
    h.store
        .authenticate_token(&format!("hash-{name}"))
        .await
        .unwrap()
        .map(|(_, _, p)| p)
}

pub async fn binding_or_defining_a_role_never_grants_more_than_the_grantor_holds(h: &Harness) {
    let team = h.team("t").await;
    let mia = holding_only(
        h,
        team,
        person(h, "mia").await,
        "member manager",
        &[Permission::MemberManage],
    )
    .await;
    let vic = person(h, "vic").await;
    let adele = person(h, "adele").await;
    h.store
        .bind_role(team, id(&adele), "admin", &actor())
        .await
        .unwrap();
    let events = h.store.audit_events(team, 100).await.unwrap().len();

    // Mia cannot make herself, or anyone, an admin, nor even a viewer: she
    // does not hold what those roles grant.
    let lacked = beyond(
        "bind herself to admin",
        h.store.bind_role(team, id(&mia), "admin", &mia).await,
    );
    assert!(lacked.contains(&Permission::EnvvarReveal) && lacked.contains(&Permission::RoleManage));
    assert!(!lacked.contains(&Permission::MemberManage));
    beyond(
        "bind another to admin",
        h.store.bind_role(team, id(&vic), "admin", &mia).await,
    );
    beyond(
        "bind another to viewer",
        h.store.bind_role(team, id(&vic), "viewer", &mia).await,
    );
    // Nor take away a role she could not give: an admin keeps it.
    beyond(
        "take the admin role from an admin",
        h.store.unbind_role(team, id(&adele), "admin", &mia).await,
    );
    assert_eq!(
        h.store.permissions(team, id(&adele)).await.unwrap(),
        BuiltinRole::Admin.permissions()
    );
    assert_eq!(
        h.store.permissions(team, id(&mia)).await.unwrap(),
        set(&[Permission::MemberManage])
    );
    assert!(
        h.store
            .permissions(team, id(&vic))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        h.store.audit_events(team, 100).await.unwrap().len(),
        events,
        "a refused grant writes nothing"
    );
    // What she holds, she may hand on.
    h.store
        .bind_role(team, id(&vic), "member manager", &mia)
        .await
        .unwrap();

    // A role manager defines roles only out of what they hold.
    let rex = holding_only(
        h,
        team,
        person(h, "rex").await,
        "role maker",
        &[Permission::RoleManage, Permission::InstanceView],
    )
    .await;
    let every: PermissionSet = Permission::ALL.into_iter().collect();
    let lacked = beyond(
        "define a role with every permission",
        h.store
            .create_role(team, name_of("everything"), every, &rex)
            .await,
    );
    assert_eq!(lacked.len(), Permission::ALL.len() - 2);
    beyond(
        "define a role with one permission too many",
        h.store
            .create_role(
                team,
                name_of("reveal"),
                set(&[Permission::InstanceView, Permission::EnvvarReveal]),
                &rex,
            )
            .await,
    );
    h.store
        .create_role(
            team,
            name_of("looker"),
            set(&[Permission::InstanceView]),
            &rex,
        )
        .await
        .unwrap();
    let names: Vec<String> = h
        .store
        .roles(team)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name.to_string())
        .collect();
    assert_eq!(names, ["looker", "member manager", "role maker"]);

    // An admin grants anything; so does Stagehand itself (the local CLI).
    let ada = person(h, "ada")
        .await
        .holding(BuiltinRole::Admin.permissions());
    h.store
        .bind_role(team, id(&vic), "admin", &ada)
        .await
        .unwrap();
    h.store
        .bind_role(team, id(&mia), "lead", &actor())
        .await
        .unwrap();
    // A platform administrator holds nothing in a new team, yet becomes
    // its admin when creating it.
    let root = person(h, "root").await;
    let new_team = h
        .store
        .create_team_with_admin(name_of("fresh"), id(&root), &root)
        .await
        .unwrap();
    assert_eq!(
        h.store.permissions(new_team.id, id(&root)).await.unwrap(),
        BuiltinRole::Admin.permissions()
    );
}

pub async fn a_token_never_holds_more_than_the_people_behind_it(h: &Harness) {
    let team = h.team("t").await;
    let tom = holding_only(
        h,
        team,
        person(h, "tom").await,
        "token manager",
        &[Permission::TokenManage],
    )
    .await;
    let vera = person(h, "vera").await;
    h.store
        .bind_role(team, id(&vera), "viewer", &actor())
        .await
        .unwrap();

    // Capped by the creator at creation.
    let lacked = beyond(
        "a token manager mints an admin token",
        h.store
            .create_token(token(team, "root-ci", None, "admin"), &tom)
            .await,
    );
    assert!(lacked.contains(&Permission::MemberManage));
    beyond(
        "a token manager mints his own admin token",
        h.store
            .create_token(token(team, "mine", Some(id(&tom)), "admin"), &tom)
            .await,
    );
    h.store
        .create_token(token(team, "tokens-bot", None, "token manager"), &tom)
        .await
        .unwrap();

    // A user's token is made by that user: not by a token manager, and not
    // by Stagehand itself.
    for (who, by, role) in [
        ("tom", &tom, "token manager"),
        ("system", &actor(), "viewer"),
    ] {
        let r = h
            .store
            .create_token(token(team, "in-veras-name", Some(id(&vera)), role), by)
            .await;
        assert!(
            matches!(r, Err(StoreError::Forbidden(_))),
            "{who} mints vera's token: {r:?}"
        );
    }
    assert_eq!(h.store.tokens(team).await.unwrap().len(), 1);

    // A lead's own token: the audit event names owner and creator.
    let lena = person(h, "lena").await;
    h.store
        .bind_role(team, id(&lena), "lead", &actor())
        .await
        .unwrap();
    let lena = lena.holding(BuiltinRole::Lead.permissions());
    let made = h
        .store
        .create_token(token(team, "lena-laptop", Some(id(&lena)), "lead"), &lena)
        .await
        .unwrap();
    assert_eq!(made.created_by_user_id, lena.user_id);
    let event = &h.store.audit_events(team, 1).await.unwrap()[0];
    assert_eq!(event.kind, "token.created");
    assert_eq!(event.details["owner"], "lena");
    assert_eq!(event.details["created_by"], "lena");
    assert_eq!(
        event.details["created_by_user_id"],
        serde_json::json!(id(&lena))
    );
    assert_eq!(
        token_permissions(h, "lena-laptop").await.unwrap(),
        BuiltinRole::Lead.permissions()
    );

    // Capped by the owner on every request: demoted to viewer, the token
    // holds only what both roles grant; gone from the team, nothing at all.
    h.store
        .bind_role(team, id(&lena), "viewer", &actor())
        .await
        .unwrap();
    h.store
        .unbind_role(team, id(&lena), "lead", &actor())
        .await
        .unwrap();
    assert_eq!(
        token_permissions(h, "lena-laptop").await.unwrap(),
        BuiltinRole::Viewer.permissions()
    );
    h.store
        .unbind_role(team, id(&lena), "viewer", &actor())
        .await
        .unwrap();
    assert_eq!(
        token_permissions(h, "lena-laptop").await,
        None,
        "left the team"
    );
    // Coming back brings back what she holds then, not more.
    h.store
        .bind_role(team, id(&lena), "viewer", &actor())
        .await
        .unwrap();
    assert_eq!(
        token_permissions(h, "lena-laptop").await.unwrap(),
        BuiltinRole::Viewer.permissions()
    );

    // A token made for someone else before this was refused authenticates
    // to nothing.
    h.store
        .create_token(token(team, "old-style", Some(id(&lena)), "viewer"), &lena)
        .await
        .unwrap();
    assert!(token_permissions(h, "old-style").await.is_some());
    h.exec(
        "update api_tokens set created_by_user_id = null, created_by = 'system'
         where secret_hash = 'hash-old-style'",
    )
    .await;
    // Written behind the store's back, as another process would: the
    // embedded store may serve the token it remembers for a second more.
    let refused_by = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    while token_permissions(h, "old-style").await.is_some() {
        assert!(
            std::time::Instant::now() < refused_by,
            "old-style token still taken"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A service account is capped only when it is made.
    assert_eq!(
        token_permissions(h, "tokens-bot").await.unwrap(),
        set(&[Permission::TokenManage])
    );
}

pub async fn a_password_reset_revokes_every_token_the_user_owns(h: &Harness) {
    let (team, other) = (h.team("t").await, h.team("u").await);
    let lena = person(h, "lena").await;
    for t in [team, other] {
        h.store
            .bind_role(t, id(&lena), "admin", &actor())
            .await
            .unwrap();
    }
    let lena = lena.holding(BuiltinRole::Admin.permissions());
    for (t, name) in [(team, "laptop"), (other, "desktop")] {
        h.store
            .create_token(token(t, name, Some(id(&lena)), "lead"), &lena)
            .await
            .unwrap();
    }
    // A service account she made is the team's, not hers: it stays.
    h.store
        .create_token(token(team, "ci", None, "lead"), &lena)
        .await
        .unwrap();
    let root = person(h, "root").await;
    h.store
        .set_password(id(&lena), "$argon2id$new", &root)
        .await
        .unwrap();
    for name in ["laptop", "desktop"] {
        assert_eq!(token_permissions(h, name).await, None, "{name}");
    }
    assert!(token_permissions(h, "ci").await.is_some());
    for (t, name) in [(team, "laptop"), (other, "desktop")] {
        let event = &h.store.audit_events(t, 1).await.unwrap()[0];
        assert_eq!(event.kind, "token.revoked");
        assert_eq!(event.actor, "root");
        assert_eq!(event.details["name"], name);
        assert_eq!(event.details["reason"], "password reset");
        assert!(
            h.store
                .tokens(t)
                .await
                .unwrap()
                .iter()
                .any(|k| k.name.as_str() == name && k.revoked_at.is_some())
        );
        assert!(h.store.verify_audit_chain(Some(t)).await.unwrap().intact);
    }
}

pub async fn the_last_member_who_manages_a_team_cannot_be_unbound(h: &Harness) {
    let team = h.team("t").await;
    let ada = person(h, "ada").await;
    let bob = person(h, "bob").await;
    h.store
        .bind_role(team, id(&ada), "admin", &actor())
        .await
        .unwrap();
    h.store
        .bind_role(team, id(&ada), "viewer", &actor())
        .await
        .unwrap();
    let ada = ada.holding(BuiltinRole::Admin.permissions());
    let events = h.store.audit_events(team, 100).await.unwrap().len();

    // Alone, Ada cannot drop her admin role (her viewer role may go).
    assert_eq!(
        conflict(h.store.unbind_role(team, id(&ada), "admin", &ada).await),
        Conflict::LastManager
    );
    assert_eq!(
        conflict(h.store.unbind_role(team, id(&ada), "admin", &actor()).await),
        Conflict::LastManager,
        "not even Stagehand itself leaves a team unmanaged"
    );
    assert_eq!(h.store.audit_events(team, 100).await.unwrap().len(), events);
    assert!(
        h.store
            .permissions(team, id(&ada))
            .await
            .unwrap()
            .contains(Permission::MemberManage)
    );
    h.store
        .unbind_role(team, id(&ada), "viewer", &ada)
        .await
        .unwrap();

    // A disabled admin manages nothing.
    h.store
        .bind_role(team, id(&bob), "admin", &ada)
        .await
        .unwrap();
    h.store
        .set_user_disabled(id(&bob), true, &actor())
        .await
        .unwrap();
    assert_eq!(
        conflict(h.store.unbind_role(team, id(&ada), "admin", &ada).await),
        Conflict::LastManager
    );
    h.store
        .set_user_disabled(id(&bob), false, &actor())
        .await
        .unwrap();
    h.store
        .unbind_role(team, id(&ada), "admin", &ada)
        .await
        .unwrap();
    // Now Bob is the last one; a custom role with member.manage counts.
    assert_eq!(
        conflict(h.store.unbind_role(team, id(&bob), "admin", &actor()).await),
        Conflict::LastManager
    );
    let cy = person(h, "cy").await;
    holding_only(h, team, cy, "doorkeeper", &[Permission::MemberManage]).await;
    h.store
        .unbind_role(team, id(&bob), "admin", &actor())
        .await
        .unwrap();
    assert_eq!(
        h.store.audit_events(team, 1).await.unwrap()[0].kind,
        "member.unbound"
    );
}

/// Revoking a token takes away what it holds: from a token holding no more
/// than the revoker does, or the revoker's own. A token is revoked once:
/// again (a stale page) is a conflict, and audited once.
pub async fn a_token_is_revoked_only_by_someone_holding_what_it_holds(h: &Harness) {
    let team = h.team("t").await;
    let tess = person(h, "tess").await;
    let tess = holding_only(h, team, tess, "token-keeper", &[Permission::TokenManage]).await;
    let admin_bot = h
        .store
        .create_token(token(team, "admin-bot", None, "admin"), &actor())
        .await
        .unwrap();
    let viewer_bot = h
        .store
        .create_token(token(team, "viewer-bot", None, "viewer"), &actor())
        .await
        .unwrap();
    let ps = beyond(
        "revoke an admin token",
        h.store.revoke_token(team, admin_bot.id, &tess).await,
    );
    assert!(ps.contains(&Permission::MemberManage), "{ps:?}");
    assert!(
        h.store
            .authenticate_token("hash-admin-bot")
            .await
            .unwrap()
            .is_some()
    );
    // A viewer's token holds instance.view and more that tess lacks too;
    // a token of her own role she may revoke.
    let keeper_bot = h
        .store
        .create_token(token(team, "keeper-bot", None, "token-keeper"), &actor())
        .await
        .unwrap();
    beyond(
        "revoke a viewer token",
        h.store.revoke_token(team, viewer_bot.id, &tess).await,
    );
    h.store
        .revoke_token(team, keeper_bot.id, &tess)
        .await
        .unwrap();
    // Her own token, whatever its role says, is hers to revoke.
    let own = h
        .store
        .create_token(token(team, "mine", Some(id(&tess)), "token-keeper"), &tess)
        .await
        .unwrap();
    h.store
        .bind_role(team, id(&tess), "viewer", &actor())
        .await
        .unwrap();
    h.store.revoke_token(team, own.id, &tess).await.unwrap();

    // Once is enough.
    let store = h.store.clone();
    let events = || async {
        store
            .audit_events(team, 500)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.kind == "token.revoked")
            .count()
    };
    let before = events().await;
    match conflict(h.store.revoke_token(team, keeper_bot.id, &actor()).await) {
        Conflict::TokenNotLive(name) => assert_eq!(name, "keeper-bot"),
        other => panic!("{other:?}"),
    }
    assert_eq!(events().await, before);
    // The system (the CLI) may revoke any.
    h.store
        .revoke_token(team, admin_bot.id, &actor())
        .await
        .unwrap();
}
