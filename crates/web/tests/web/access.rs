//! The route × role matrix: every route of the router, requested by an
//! anonymous visitor, a viewer, a lead and an admin of the team, an admin
//! of another team and a platform administrator, each answered as the route's declared access
//! says: a redirect to login, 404 (another team's ids do not exist), 403,
//! or success.

use crate::harness::*;
use reqwest::StatusCode;
use stagehand_domain::{BuiltinRole, EnvKey, PermissionSet, SecretValue, TeamId, Username};
use stagehand_store::{Actor, NewUser, PromotionRequest};
use stagehand_web::authz::Access;
use stagehand_web::routes::{ROUTES, RouteSpec};

/// A fresh set of objects in the team, so a destructive request by one
/// role does not spoil the next role's turn.
pub(crate) struct World {
    pub params: Vec<(&'static str, String)>,
    pub free_instance: String,
}

pub(crate) async fn world(app: &TestApp, team: TeamId, n: usize) -> World {
    let dev = app
        .instance(team, &format!("dev-{n}"), &[("orders", r#"{"v":1}"#)])
        .await;
    let prod = app.instance(team, &format!("prod-{n}"), &[]).await;
    let spare = app.instance(team, &format!("spare-{n}"), &[]).await;
    app.store
        .set_env_var(
            team,
            dev,
            EnvKey::parse("API_TOKEN").unwrap(),
            Some(SecretValue::new("v".into())),
            &Actor::system(),
        )
        .await
        .unwrap();
    let (pipeline, stages) = app.pipeline(team, &format!("p-{n}"), &[dev, prod]).await;
    // A member the member routes can act on (no password: never logs in).
    let member = app
        .store
        .create_user(
            NewUser {
                username: Username::parse(&format!("member-{n}")).unwrap(),
                password_hash: "unusable".into(),
                is_platform_admin: false,
            },
            &Actor::system(),
        )
        .await
        .unwrap()
        .id;
    app.bind(team, member, BuiltinRole::Viewer).await;
    app.token(team, &format!("token-{n}"), "viewer").await;
    let token = app
        .store
        .tokens(team)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name.as_str() == format!("token-{n}"))
        .unwrap()
        .id;
    let promotion = app
        .store
        .promote(PromotionRequest {
            team,
            pipeline,
            stage: stages[0],
            actor: Actor::system(),
            idempotency_key: None,
            expected_target_version: None,
            overwrite_drift: false,
            expected_source_version: None,
            source_snapshot: None,
            restore: false,
        })
        .await
        .unwrap();
    World {
        params: vec![
            ("team", team.to_string()),
            ("pipeline", pipeline.to_string()),
            ("stage", stages[0].to_string()),
            ("instance", dev.to_string()),
            ("promotion", promotion.id.to_string()),
            ("flow", "orders".into()),
            ("key", "API_TOKEN".into()),
            ("file", "stagehand-6.css".into()),
            ("user", member.to_string()),
            ("token", token.to_string()),
            ("snapshot", promotion.source_snapshot_id.to_string()),
        ],
        free_instance: spare.to_string(),
    }
}

/// The route's path with every `{param}` filled; an unknown parameter
/// fails the test, so a new kind of route must be taught to the matrix.
pub(crate) fn fill(route: &RouteSpec, world: &World) -> String {
    let mut path = route.path.to_owned();
    while let Some(start) = path.find('{') {
        let end = path[start..].find('}').unwrap() + start;
        let name = &path[start + 1..end];
        let value = world
            .params
            .iter()
            .find(|(k, _)| *k == name)
            .unwrap_or_else(|| {
                panic!(
                    "the matrix does not know the parameter {{{name}}} of {}",
                    route.path
                )
            })
            .1
            .clone();
        path.replace_range(start..=end, &value);
    }
    // A route whose query is required: the world's snapshot against itself.
    if route.path.ends_with("/snapshots/compare") {
        let snapshot = &world
            .params
            .iter()
            .find(|(k, _)| *k == "snapshot")
            .unwrap()
            .1;
        path.push_str(&format!("?from={snapshot}&to={snapshot}"));
    }
    path
}

pub(crate) async fn send(client: &Client, route: &RouteSpec, path: &str, world: &World) -> Page {
    match route.method {
        "get" => client.get(path).await,
        "post" => {
            client
                .post(
                    path,
                    &[
                        ("name", "matrix-made"),
                        ("content", "[]"),
                        ("key", "NEW_KEY"),
                        ("value", "v"),
                        ("action", "set"),
                        ("direction", "right"),
                        ("required_approvals", "0"),
                        ("instance", &world.free_instance),
                        ("settings", "{}"),
                        ("username", "vera"),
                        ("role", "viewer"),
                        ("decision", "approve"),
                        ("disabled", "false"),
                        ("permission", "instance.view"),
                        ("password", "a long enough password"),
                    ],
                )
                .await
        }
        // API routes; without a token every one of them is a 401.
        "put" | "delete" | "patch" => {
            let url = format!("{}{path}", client.base());
            let req = match route.method {
                "put" => client.http.put(url).json(&serde_json::json!({})),
                "patch" => client.http.patch(url).json(&serde_json::json!({})),
                _ => client.http.delete(url),
            };
            client.page(req.send().await.unwrap()).await
        }
        other => panic!("the matrix does not send {other} requests"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Anonymous,
    Member(BuiltinRole),
    OtherTeamAdmin,
    /// A platform administrator who is not a member of the team.
    PlatformAdmin,
}

fn expect(route: &RouteSpec, who: Who, page: &Page, path: &str) {
    let to_login = page.status == StatusCode::SEE_OTHER
        && page
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with("/login?next="));
    let granted = |perms: PermissionSet, p| perms.contains(p);
    let ctx = format!(
        "{} {path} as {who:?}: {} {:?}",
        route.method, page.status, page.location
    );
    match (route.access, who) {
        // Public routes never ask for a login; what they answer is their own
        // business (POST /login without the login form's token is a 403).
        (Access::Public, _) => assert!(!to_login && page.status.as_u16() < 500, "{ctx}"),
        // A browser session is no API credential.
        (Access::Api(_), _) => {
            assert_eq!(page.status, 401, "{ctx}");
            assert!(
                page.body.contains("\"unauthorized\""),
                "{ctx}: {}",
                page.body
            );
        }
        (_, Who::Anonymous) => assert!(to_login, "{ctx}"),
        (Access::Team(_), Who::OtherTeamAdmin | Who::PlatformAdmin) => {
            assert_eq!(page.status, 404, "{ctx}")
        }
        (Access::Team(p), Who::Member(role)) if !granted(role.permissions(), p) => {
            assert_eq!(page.status, 403, "{ctx}");
            assert!(page.body.contains("Not allowed"), "{ctx}");
        }
        (Access::PlatformAdmin, Who::Member(_) | Who::OtherTeamAdmin) => {
            assert_eq!(page.status, 403, "{ctx}")
        }
        _ => assert!(
            !to_login
                && ![401, 403, 404].contains(&page.status.as_u16())
                && page.status.as_u16() < 500,
            "{ctx}: {}",
            page.body
        ),
    }
}

#[tokio::test]
async fn every_route_answers_every_role_as_declared() {
    let app = spawn_app().await;
    let team = app.team("alpha").await;
    let other = app.team("beta").await;
    let anonymous = Client::new(&app);
    let viewer = app.member(team, "vera", BuiltinRole::Viewer).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let admin = app.member(team, "adam", BuiltinRole::Admin).await;
    let outsider = app.member(other, "otto", BuiltinRole::Admin).await;
    app.user("root", true).await;
    let platform = Client::new(&app);
    platform.login("root", PASSWORD).await;
    let cast: [(Who, &Client); 6] = [
        (Who::PlatformAdmin, &platform),
        (Who::Anonymous, &anonymous),
        (Who::OtherTeamAdmin, &outsider),
        (Who::Member(BuiltinRole::Viewer), &viewer),
        (Who::Member(BuiltinRole::Lead), &lead),
        (Who::Member(BuiltinRole::Admin), &admin),
    ];
    // Logging out ends the session the rest of the matrix needs: last.
    let mut routes: Vec<&RouteSpec> = ROUTES.iter().collect();
    routes.sort_by_key(|r| r.path == "/logout");
    let mut n = 0;
    for route in routes {
        for (who, client) in &cast {
            n += 1;
            let w = world(&app, team, n).await;
            let path = fill(route, &w);
            let page = send(client, route, &path, &w).await;
            expect(route, *who, &page, &path);
        }
    }
    assert!(n >= 6 * 40, "the matrix walked only {n} requests");
    app.stop().await;
}
