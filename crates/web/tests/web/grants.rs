//! Grants over HTTP: a member hands out only what they hold (roles, role
//! definitions, tokens), a user's token is theirs alone and never outlives
//! what they hold, and a team keeps someone who can manage it.

use crate::harness::*;
use stagehand_domain::{BuiltinRole, EnvKey, Permission, SecretValue, Username};
use stagehand_store::Actor;

async fn user_id(app: &TestApp, name: &str) -> stagehand_domain::UserId {
    app.store
        .user_credentials(&Username::parse(name).unwrap())
        .await
        .unwrap()
        .unwrap()
        .user
        .id
}

/// The answer of a bearer-token call: its status.
async fn api_status(app: &TestApp, secret: &str, method: &str, path: &str) -> u16 {
    let http = reqwest::Client::new();
    let url = app.url(path);
    let req = match method {
        "get" => http.get(url),
        "put" => http
            .put(url)
            .json(&serde_json::json!({ "flows": { "f": {} } })),
        other => panic!("no {other}"),
    };
    req.bearer_auth(secret)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_member_manager_cannot_make_anyone_an_admin_nor_reveal_values() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[]).await;
    app.store
        .set_env_var(
            team,
            dev,
            EnvKey::parse("DB_PASSWORD").unwrap(),
            Some(SecretValue::new("hunter2-prod".into())),
            &Actor::system(),
        )
        .await
        .unwrap();
    let (mia, mia_id) = app
        .member_holding(team, "mia", "member manager", &[Permission::MemberManage])
        .await;
    app.user("vic", false).await;
    let members = format!("/teams/{team}/members");
    for who in ["mia", "vic"] {
        let refused = mia
            .post(&members, &[("username", who), ("role", "admin")])
            .await;
        assert_eq!(refused.status, 403, "bind {who} to admin: {}", refused.body);
        assert!(
            refused
                .body
                .contains("cannot grant or take away permissions you do not hold")
                && refused.body.contains("envvar.reveal"),
            "{}",
            refused.body
        );
    }
    assert_eq!(
        app.store.permissions(team, mia_id).await.unwrap(),
        [Permission::MemberManage].into_iter().collect()
    );
    let reveal = mia
        .post(
            &format!("/teams/{team}/instances/{dev}/env/DB_PASSWORD/reveal"),
            &[],
        )
        .await;
    assert_eq!(reveal.status, 403);
    assert!(!reveal.body.contains("hunter2-prod"));
    // The members page offers only what she may give.
    let page = mia.get(&members).await;
    page.assert_ok();
    assert!(page.body.contains(r#"<option value="member manager">"#));
    assert!(!page.body.contains(r#"<option value="admin">"#));
    // What she holds, she may hand on.
    mia.post(&members, &[("username", "vic"), ("role", "member manager")])
        .await
        .assert_redirect_to(&members);

    // A role manager defines roles only out of what they hold.
    let (rex, _) = app
        .member_holding(team, "rex", "role maker", &[Permission::RoleManage])
        .await;
    let mut every: Vec<(&str, &str)> = vec![("name", "everything")];
    every.extend(Permission::ALL.iter().map(|p| ("permission", p.as_str())));
    rex.get("/").await.assert_ok();
    let refused = rex.post(&format!("/teams/{team}/roles"), &every).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(app.store.roles(team).await.unwrap().len() == 2);
    rex.post(
        &format!("/teams/{team}/roles"),
        &[("name", "role maker too"), ("permission", "role.manage")],
    )
    .await
    .assert_redirect_to(&members);
    app.stop().await;
}

#[tokio::test]
async fn a_token_manager_mints_neither_admin_tokens_nor_tokens_in_someone_elses_name() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let (tom, tom_id) = app
        .member_holding(team, "tom", "token manager", &[Permission::TokenManage])
        .await;
    app.member(team, "vera", BuiltinRole::Viewer).await;
    let url = format!("/teams/{team}/tokens");
    tom.get(&url).await.assert_ok();
    for (owner, name) in [("service", "root-ci"), ("me", "toms-root")] {
        let refused = tom
            .post(&url, &[("name", name), ("role", "admin"), ("owner", owner)])
            .await;
        assert_eq!(refused.status, 403, "{owner}: {}", refused.body);
        assert!(refused.body.contains("do not hold"), "{}", refused.body);
    }
    // Nobody makes a token in another member's name: the form has no
    // such choice, and the old field is refused, not ignored.
    let refused = tom
        .post(
            &url,
            &[
                ("name", "veras"),
                ("role", "token manager"),
                ("owner", "service"),
                ("user", "vera"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    let refused = tom
        .post(
            &url,
            &[
                ("name", "veras"),
                ("role", "token manager"),
                ("owner", "vera"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(app.store.tokens(team).await.unwrap().is_empty());

    // His own token and a service account, within what he holds.
    let page = tom.get(&url).await;
    assert!(page.body.contains(r#"<option value="me">"#));
    assert!(!page.body.contains(r#"<option value="admin">"#));
    tom.post(
        &url,
        &[("name", "toms"), ("role", "token manager"), ("owner", "me")],
    )
    .await
    .assert_ok();
    tom.post(
        &url,
        &[
            ("name", "bot"),
            ("role", "token manager"),
            ("owner", "service"),
        ],
    )
    .await
    .assert_ok();
    let tokens = app.store.tokens(team).await.unwrap();
    let toms = tokens.iter().find(|t| t.name.as_str() == "toms").unwrap();
    assert_eq!(
        (toms.user_id, toms.created_by_user_id),
        (Some(tom_id), Some(tom_id))
    );
    let bot = tokens.iter().find(|t| t.name.as_str() == "bot").unwrap();
    assert_eq!((bot.user_id, bot.created_by_user_id), (None, Some(tom_id)));
    let events = app.store.audit_events(team, 2).await.unwrap();
    assert_eq!(events[0].kind, "token.created");
    assert_eq!(events[0].details["owner"], serde_json::Value::Null);
    assert_eq!(events[0].details["created_by"], "tom");
    assert_eq!(events[1].details["owner"], "tom");
    assert_eq!(events[1].details["created_by"], "tom");
    app.stop().await;
}

#[tokio::test]
async fn a_users_token_holds_only_what_they_still_hold_and_ends_when_they_leave() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[]).await;
    let admin = app.member(team, "adam", BuiltinRole::Admin).await;
    app.member(team, "lena", BuiltinRole::Lead).await;
    let lena = user_id(&app, "lena").await;
    let secret = app.own_token(team, lena, "lena-laptop", "lead").await;
    let flows = format!("/api/v1/instances/{dev}/flows");
    assert_eq!(api_status(&app, &secret, "put", &flows).await, 200);

    // Demoted to viewer: the lead token reads, and writes no more.
    let members = format!("/teams/{team}/members");
    admin
        .post(&members, &[("username", "lena"), ("role", "viewer")])
        .await
        .assert_redirect_to(&members);
    admin
        .post(&format!("{members}/{lena}/unbind"), &[("role", "lead")])
        .await
        .assert_redirect_to(&members);
    assert_eq!(api_status(&app, &secret, "get", &flows).await, 200);
    assert_eq!(api_status(&app, &secret, "put", &flows).await, 403);

    // Gone from the team: the token authenticates to nothing.
    admin
        .post(&format!("{members}/{lena}/unbind"), &[("role", "viewer")])
        .await
        .assert_redirect_to(&members);
    assert_eq!(api_status(&app, &secret, "get", &flows).await, 401);
    assert_eq!(
        api_status(&app, &secret, "get", "/api/v1/promotions").await,
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn a_password_reset_revokes_the_users_tokens() {
    let app = spawn_app().await;
    app.user("root", true).await;
    let root = Client::new(&app);
    root.login("root", PASSWORD).await.assert_redirect_to("/");
    let team = app.team("t").await;
    app.member(team, "lena", BuiltinRole::Lead).await;
    let lena = user_id(&app, "lena").await;
    let secret = app.own_token(team, lena, "lena-laptop", "lead").await;
    let ci = app.token(team, "ci", "viewer").await;
    assert_eq!(
        api_status(&app, &secret, "get", "/api/v1/promotions").await,
        200
    );
    root.post(
        &format!("/admin/users/{lena}/password"),
        &[("password", "a brand new password")],
    )
    .await
    .assert_redirect_to("/admin");
    assert_eq!(
        api_status(&app, &secret, "get", "/api/v1/promotions").await,
        401
    );
    // The team's service account is nobody's password.
    assert_eq!(
        api_status(&app, &ci, "get", "/api/v1/promotions").await,
        200
    );
    let event = &app.store.audit_events(team, 1).await.unwrap()[0];
    assert_eq!(event.kind, "token.revoked");
    assert_eq!(event.actor, "root");
    assert_eq!(event.details["reason"], "password reset");
    app.stop().await;
}

#[tokio::test]
async fn the_last_admin_cannot_unbind_themselves() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let adam = app.member(team, "adam", BuiltinRole::Admin).await;
    let adam_id = user_id(&app, "adam").await;
    let members = format!("/teams/{team}/members");
    let refused = adam
        .post(&format!("{members}/{adam_id}/unbind"), &[("role", "admin")])
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused.body.contains("nobody who can manage its members"),
        "{}",
        refused.body
    );
    assert!(
        app.store
            .permissions(team, adam_id)
            .await
            .unwrap()
            .contains(Permission::MemberManage)
    );
    // With a second admin, he may step down.
    app.member(team, "ada", BuiltinRole::Admin).await;
    adam.post(&format!("{members}/{adam_id}/unbind"), &[("role", "admin")])
        .await
        .assert_redirect_to(&members);
    app.stop().await;
}

/// A member who manages tokens but holds little cannot stop a job that
/// holds more (an admin's CI token): the page offers no revoke for it, and
/// a forged one is refused. A token goes once: a second revoke (a stale
/// page) says it is gone already.
#[tokio::test]
async fn revoking_takes_away_only_what_the_revoker_holds_and_only_once() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let (keeper, _) = app
        .member_holding(team, "tess", "token-keeper", &[Permission::TokenManage])
        .await;
    app.token(team, "admin-bot", "admin").await;
    app.token(team, "keeper-bot", "token-keeper").await;
    let tokens = app.store.tokens(team).await.unwrap();
    let id_of = |n: &str| tokens.iter().find(|t| t.name.as_str() == n).unwrap().id;
    let page = keeper.get(&format!("/teams/{team}/tokens")).await.body;
    assert!(!page.contains("Yes, revoke admin-bot"), "{page}");
    assert!(page.contains("holds more than you"), "{page}");
    assert!(page.contains("Yes, revoke keeper-bot"), "{page}");

    let forged = keeper
        .post(
            &format!("/teams/{team}/tokens/{}/revoke", id_of("admin-bot")),
            &[],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(
        app.store
            .tokens(team)
            .await
            .unwrap()
            .iter()
            .all(|t| t.revoked_at.is_none())
    );
    let path = format!("/teams/{team}/tokens/{}/revoke", id_of("keeper-bot"));
    assert_eq!(keeper.post(&path, &[]).await.status, 303);
    let again = keeper.post(&path, &[]).await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(
        again
            .body
            .contains("the token keeper-bot was revoked already"),
        "{}",
        again.body
    );
    let page = keeper.get(&format!("/teams/{team}/tokens")).await.body;
    assert!(
        page.contains("<span class=\"badge warn\">revoked</span>"),
        "{page}"
    );
    app.stop().await;
}
