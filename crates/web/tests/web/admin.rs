//! Administration over HTTP: a platform administrator creates a user and a
//! team; a team admin creates a custom role, binds it, and takes it away.

use crate::harness::*;
use stagehand_domain::{Permission, Username};

#[tokio::test]
async fn an_admin_creates_a_custom_role_and_binds_it() {
    let app = spawn_app().await;
    app.user("root", true).await;
    let root = Client::new(&app);
    root.login("root", PASSWORD).await.assert_redirect_to("/");

    // The platform admin creates a user and a team; they become its admin.
    root.post(
        "/admin/users",
        &[("username", "rita"), ("password", "rita's long password")],
    )
    .await
    .assert_redirect_to("/admin");
    let short = root
        .post(
            "/admin/users",
            &[("username", "sam"), ("password", "short")],
        )
        .await;
    assert_eq!(short.status, 422);
    assert!(short.body.contains("at least 12 characters"));
    let made = root.post("/admin/teams", &[("name", "payments")]).await;
    made.assert_redirect_to("/teams/");
    let members_url = made.location.clone().unwrap();
    let team = app.store.teams().await.unwrap()[0].id;
    let page = root.get(&members_url).await;
    page.assert_ok();
    assert!(page.body.contains("root") && page.body.contains(">admin<"));

    // A custom role from ticked permissions, bound to rita.
    root.post(
        &format!("/teams/{team}/roles"),
        &[
            ("name", "release manager"),
            ("permission", "pipeline.view"),
            ("permission", "stage.promote"),
        ],
    )
    .await
    .assert_redirect_to(&members_url);
    root.post(
        &format!("/teams/{team}/members"),
        &[("username", "rita"), ("role", "release manager")],
    )
    .await
    .assert_redirect_to(&members_url);
    let rita = app
        .store
        .user_credentials(&Username::parse("rita").unwrap())
        .await
        .unwrap()
        .unwrap()
        .user
        .id;
    let perms = app.store.permissions(team, rita).await.unwrap();
    assert!(perms.contains(Permission::StagePromote));
    assert!(!perms.contains(Permission::InstanceEdit));

    // Rita can log in and see the team's pipelines but not its members.
    let c = Client::new(&app);
    c.login("rita", "rita's long password")
        .await
        .assert_redirect_to("/");
    c.get(&format!("/teams/{team}")).await.assert_ok();
    assert_eq!(c.get(&members_url).await.status, 403);

    // Unknown users and roles are named in the answer; nothing is bound.
    let nobody = root
        .post(
            &format!("/teams/{team}/members"),
            &[("username", "nobody"), ("role", "viewer")],
        )
        .await;
    assert_eq!(nobody.status, 422);
    assert!(nobody.body.contains("no user with this name"));
    let bad_role = root
        .post(
            &format!("/teams/{team}/members"),
            &[("username", "rita"), ("role", "wizard")],
        )
        .await;
    assert_eq!(bad_role.status, 422);
    assert!(bad_role.body.contains("no role named"));

    // Taking the role away takes the access away.
    root.post(
        &format!("/teams/{team}/members/{rita}/unbind"),
        &[("role", "release manager")],
    )
    .await
    .assert_redirect_to(&members_url);
    assert!(app.store.permissions(team, rita).await.unwrap().is_empty());
    assert_eq!(c.get(&format!("/teams/{team}")).await.status, 404);
    let audit = root.get(&format!("/teams/{team}/audit")).await;
    for kind in [
        "role.created",
        "member.bound",
        "member.unbound",
        "team.created",
    ] {
        assert!(
            audit.body.contains(kind),
            "{kind} missing from the audit log"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn disabling_a_user_or_resetting_their_password_ends_their_sessions() {
    let app = spawn_app().await;
    let root_id = app.user("root", true).await;
    let root = Client::new(&app);
    root.login("root", PASSWORD).await.assert_redirect_to("/");
    let team = app.team("t").await;
    let lena = app
        .member(team, "lena", stagehand_domain::BuiltinRole::Lead)
        .await;
    let lena_id = app
        .store
        .user_credentials(&Username::parse("lena").unwrap())
        .await
        .unwrap()
        .unwrap()
        .user
        .id;
    lena.get("/").await.assert_ok();

    root.post(
        &format!("/admin/users/{lena_id}/disabled"),
        &[("disabled", "true")],
    )
    .await
    .assert_redirect_to("/admin");
    lena.get("/").await.assert_redirect_to("/login");
    let refused = Client::new(&app).login("lena", PASSWORD).await;
    assert_eq!(refused.status, 401, "a disabled user cannot log in");
    // Nobody locks themselves out.
    let own = root
        .post(
            &format!("/admin/users/{root_id}/disabled"),
            &[("disabled", "true")],
        )
        .await;
    assert_eq!(own.status, 422);

    root.post(
        &format!("/admin/users/{lena_id}/disabled"),
        &[("disabled", "false")],
    )
    .await
    .assert_redirect_to("/admin");
    let again = Client::new(&app);
    again.login("lena", PASSWORD).await.assert_redirect_to("/");
    let short = root
        .post(
            &format!("/admin/users/{lena_id}/password"),
            &[("password", "short")],
        )
        .await;
    assert_eq!(short.status, 422);
    root.post(
        &format!("/admin/users/{lena_id}/password"),
        &[("password", "a brand new password")],
    )
    .await
    .assert_redirect_to("/admin");
    again.get("/").await.assert_redirect_to("/login");
    assert_eq!(Client::new(&app).login("lena", PASSWORD).await.status, 401);
    Client::new(&app)
        .login("lena", "a brand new password")
        .await
        .assert_redirect_to("/");
    let events = app
        .store
        .audit_history(
            None,
            &stagehand_store::AuditFilter {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    for kind in ["user.disabled", "user.enabled", "user.password_reset"] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
    }
    // The platform audit log shows them to the platform admin.
    let page = root.get("/admin/audit").await;
    page.assert_ok();
    assert!(page.body.contains("user.password_reset") && page.body.contains("user.login_failed"));
    app.stop().await;
}

#[tokio::test]
async fn an_admin_creates_a_token_in_the_ui_sees_it_once_and_revokes_it() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let admin = app
        .member(team, "adam", stagehand_domain::BuiltinRole::Admin)
        .await;
    let viewer = app
        .member(team, "vera", stagehand_domain::BuiltinRole::Viewer)
        .await;
    let url = format!("/teams/{team}/tokens");
    assert_eq!(viewer.get(&url).await.status, 403);
    let created = admin
        .post(
            &url,
            &[
                ("name", "deploy"),
                ("role", "viewer"),
                ("owner", "service"),
                ("expires_days", "30"),
            ],
        )
        .await;
    created.assert_ok();
    assert_eq!(created.headers.get("cache-control").unwrap(), "no-store");
    let secret = created
        .body
        .split("<pre class=\"secret\">")
        .nth(1)
        .and_then(|r| r.split("</pre>").next())
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("sh_"));
    // Shown once: the list never shows it again.
    let list = admin.get(&url).await;
    assert!(list.body.contains("deploy") && !list.body.contains(&secret));

    let api = reqwest::Client::new();
    let call = || {
        api.get(app.url("/api/v1/promotions"))
            .bearer_auth(&secret)
            .send()
    };
    assert_eq!(call().await.unwrap().status(), 200);
    let list = admin.get(&url).await;
    assert!(
        !list.body.contains(">never</td></tr>") || list.body.contains("UTC"),
        "last use shown"
    );
    let id = app.store.tokens(team).await.unwrap()[0].id;
    admin
        .post(&format!("{url}/{id}/revoke"), &[])
        .await
        .assert_redirect_to(&url);
    assert_eq!(call().await.unwrap().status(), 401);
    let bad = admin
        .post(
            &url,
            &[("name", "x"), ("role", "wizard"), ("owner", "service")],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("no role named"));
    let bad = admin
        .post(
            &url,
            &[("name", "y"), ("role", "viewer"), ("owner", "nobody")],
        )
        .await;
    assert_eq!(bad.status, 422);
    let audit = admin.get(&format!("/teams/{team}/audit")).await;
    assert!(audit.body.contains("token.created") && audit.body.contains("token.revoked"));
    assert!(!audit.body.contains(&secret));
    app.stop().await;
}
