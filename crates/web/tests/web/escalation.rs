//! Nobody exceeds what they hold, whatever state-changing route they use.
//! Generated from the route table: for every `Team(p)` or `Api(p)` route
//! that is not a GET, a member whose only role is a custom role holding
//! exactly `p` (plus what the route needs to reach its target) sends the
//! route's most escalating requests, listed in [`table`]. Afterwards the
//! permissions they can exercise (their own in the team, and those of
//! every token they created or own) are still within what they started
//! with, nobody in the team gained a permission they do not hold, no role
//! they defined holds more than they do, and no token they made acts for
//! anyone but themselves. A new state-changing route
//! without an entry in the table fails the test, naming the route.

use crate::access::{World, fill, world};
use crate::harness::*;
use serde_json::{Value, json};
use stagehand_domain::{BuiltinRole, Permission, PermissionSet, TeamId, UserId};
use stagehand_web::authz::Access;
use stagehand_web::routes::{ROUTES, RouteSpec};
use std::collections::BTreeMap;

/// One request a member tries.
enum Body {
    /// A form post (with the session's CSRF token).
    Form(Vec<(&'static str, String)>),
    /// A multipart upload of one file (with the CSRF token).
    Upload {
        file: &'static str,
        content: &'static str,
    },
    /// An API request with this JSON body, or none.
    Json(Option<Value>),
}

/// Who is trying, and names the requests can use.
struct Scene {
    /// The member's username.
    me: String,
    /// Another member of the team (a viewer).
    victim: String,
    /// The member's own (only) role.
    own_role: String,
    free_instance: String,
    n: usize,
}

struct Entry {
    method: &'static str,
    path: &'static str,
    /// Permissions the member needs besides the route's to reach its
    /// target (none today: every handler acts on its declared permission).
    needs: &'static [Permission],
    attempts: fn(&Scene) -> Vec<Body>,
}

fn form(fields: &[(&'static str, &str)]) -> Body {
    Body::Form(fields.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
}

fn empty(_: &Scene) -> Vec<Body> {
    vec![form(&[])]
}

fn no_body(_: &Scene) -> Vec<Body> {
    vec![Body::Json(None)]
}

/// Every state-changing team and API route, with its most escalating
/// requests. A route that grants nothing still gets an entry: the test
/// checks that it grants nothing.
fn table() -> Vec<Entry> {
    vec![
        // Grants: the routes this test exists for.
        Entry {
            method: "post",
            path: "/teams/{team}/members",
            needs: &[],
            attempts: |s| {
                vec![
                    form(&[("username", &s.me), ("role", "admin")]),
                    form(&[("username", &s.victim), ("role", "admin")]),
                    form(&[("username", &s.victim), ("role", "lead")]),
                    form(&[("username", &s.victim), ("role", &s.own_role)]),
                ]
            },
        },
        Entry {
            method: "post",
            path: "/teams/{team}/members/{user}/unbind",
            needs: &[],
            attempts: |_| vec![form(&[("role", "viewer")])],
        },
        Entry {
            method: "post",
            path: "/teams/{team}/roles",
            needs: &[],
            attempts: |s| {
                let mut every: Vec<(&'static str, String)> =
                    vec![("name", format!("everything-{}", s.n))];
                every.extend(
                    Permission::ALL
                        .iter()
                        .map(|p| ("permission", p.as_str().to_owned())),
                );
                vec![
                    Body::Form(every),
                    Body::Form(vec![
                        ("name", format!("mine-and-reveal-{}", s.n)),
                        ("permission", "envvar.reveal".into()),
                        ("permission", "member.manage".into()),
                        ("permission", "role.manage".into()),
                    ]),
                ]
            },
        },
        Entry {
            method: "post",
            path: "/teams/{team}/tokens",
            needs: &[],
            attempts: |s| {
                vec![
                    form(&[("name", "root-ci"), ("role", "admin"), ("owner", "service")]),
                    form(&[("name", "my-root"), ("role", "admin"), ("owner", "me")]),
                    form(&[
                        ("name", "in-their-name"),
                        ("role", &s.own_role),
                        ("owner", "service"),
                        ("user", &s.victim),
                    ]),
                    form(&[
                        ("name", "as-them"),
                        ("role", &s.own_role),
                        ("owner", &s.victim),
                    ]),
                    form(&[("name", "my-own"), ("role", &s.own_role), ("owner", "me")]),
                ]
            },
        },
        Entry {
            method: "post",
            path: "/teams/{team}/tokens/{token}/revoke",
            needs: &[],
            attempts: empty,
        },
        // Pipelines and play.
        Entry {
            method: "post",
            path: "/teams/{team}/pipelines",
            needs: &[],
            attempts: |s| vec![form(&[("name", &format!("esc-{}", s.n))])],
        },
        Entry {
            method: "post",
            path: "/teams/{team}/pipelines/{pipeline}/delete",
            needs: &[],
            attempts: empty,
        },
        Entry {
            method: "post",
            path: "/teams/{team}/pipelines/{pipeline}/stages",
            needs: &[],
            attempts: |s| vec![form(&[("instance", &s.free_instance)])],
        },
        Entry {
            method: "post",
            path: "/teams/{team}/pipelines/{pipeline}/stages/{stage}/remove",
            needs: &[],
            attempts: empty,
        },
        Entry {
            method: "post",
            path: "/teams/{team}/pipelines/{pipeline}/stages/{stage}/move",
            needs: &[],
            attempts: |_| vec![form(&[("direction", "right")])],
        },
        Entry {
            method: "post",
            path: "/teams/{team}/pipelines/{pipeline}/stages/{stage}/promote",
            needs: &[],
            attempts: empty,
        },
        Entry {
            method: "post",
            path: "/teams/{team}/pipelines/{pipeline}/stages/{stage}/restore",
            needs: &[],
            attempts: empty,
        },
        Entry {
            method: "post",
            path: "/teams/{team}/promotions/{promotion}/rollback",
            needs: &[],
            attempts: empty,
        },
        Entry {
            method: "post",
            path: "/teams/{team}/promotions/{promotion}/decision",
            needs: &[],
            attempts: |_| vec![form(&[("decision", "approve")])],
        },
        // Instances.
        Entry {
            method: "post",
            path: "/teams/{team}/instances",
            needs: &[],
            attempts: |s| vec![form(&[("name", &format!("esc-{}", s.n))])],
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/duplicate",
            needs: &[],
            attempts: |s| vec![Body::Form(vec![("name", format!("dup-page-esc-{}", s.n))])],
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/delete",
            needs: &[],
            attempts: empty,
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/settings",
            needs: &[],
            attempts: |_| vec![form(&[("settings", r#"{"replicas": 9}"#)])],
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/protection",
            needs: &[],
            attempts: |_| vec![form(&[("required_approvals", "0")])],
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/runtime",
            needs: &[],
            attempts: |_| {
                vec![form(&[
                    ("kind", "node-red"),
                    ("url", "http://127.0.0.1:9/"),
                    ("auth_type", "bearer"),
                    ("secret", "runtime-token-escalation"),
                ])]
            },
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/runtime/disconnect",
            needs: &[],
            attempts: empty,
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/runtime/test",
            needs: &[],
            attempts: empty,
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/pull",
            needs: &[],
            attempts: empty,
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/flows",
            needs: &[],
            attempts: |_| vec![form(&[("name", "orders"), ("content", "[]")])],
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/flows/upload",
            needs: &[],
            attempts: |_| {
                vec![Body::Upload {
                    file: "uploaded.json",
                    content: "[]",
                }]
            },
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/flows/{flow}/delete",
            needs: &[],
            attempts: empty,
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/env",
            needs: &[],
            attempts: |_| vec![form(&[("key", "NEW_KEY")])],
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/env/missing",
            needs: &[],
            attempts: |_| vec![form(&[("keys", "NEW_KEY,OTHER_KEY")])],
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/env/{key}/value",
            needs: &[],
            attempts: |_| vec![form(&[("action", "set"), ("value", "v")])],
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/env/{key}/remove",
            needs: &[],
            attempts: empty,
        },
        Entry {
            method: "post",
            path: "/teams/{team}/instances/{instance}/env/{key}/reveal",
            needs: &[],
            attempts: empty,
        },
        // The JSON API, with a token the member made for themselves.
        Entry {
            method: "post",
            path: "/api/v1/teams/{team}/instances",
            needs: &[],
            attempts: |s| {
                vec![Body::Json(Some(
                    json!({ "name": format!("api-esc-{}", s.n) }),
                ))]
            },
        },
        Entry {
            method: "post",
            path: "/api/v1/instances/{instance}/duplicate",
            needs: &[],
            attempts: |s| {
                vec![Body::Json(Some(
                    json!({ "name": format!("dup-esc-{}", s.n) }),
                ))]
            },
        },
        Entry {
            method: "patch",
            path: "/api/v1/instances/{instance}",
            needs: &[],
            attempts: |_| vec![Body::Json(Some(json!({ "settings": { "replicas": 9 } })))],
        },
        Entry {
            method: "delete",
            path: "/api/v1/instances/{instance}",
            needs: &[],
            attempts: no_body,
        },
        Entry {
            method: "put",
            path: "/api/v1/instances/{instance}/protection",
            needs: &[],
            attempts: |_| vec![Body::Json(Some(json!({ "required_approvals": 0 })))],
        },
        // Where flows are sent is the connection's to say: a connection
        // grants nothing, and its answer holds no credential.
        Entry {
            method: "put",
            path: "/api/v1/instances/{instance}/runtime",
            needs: &[],
            attempts: |_| {
                vec![Body::Json(Some(json!({
                    "kind": "node-red", "url": "http://127.0.0.1:9/",
                    "auth": {"type": "bearer", "token": "runtime-token-escalation"}
                })))]
            },
        },
        Entry {
            method: "delete",
            path: "/api/v1/instances/{instance}/runtime",
            needs: &[],
            attempts: no_body,
        },
        Entry {
            method: "post",
            path: "/api/v1/instances/{instance}/runtime/test",
            needs: &[],
            attempts: no_body,
        },
        Entry {
            method: "post",
            path: "/api/v1/instances/{instance}/pull",
            needs: &[],
            attempts: no_body,
        },
        Entry {
            method: "put",
            path: "/api/v1/instances/{instance}/flows",
            needs: &[],
            attempts: |_| vec![Body::Json(Some(json!({ "flows": { "from-ci": {} } })))],
        },
        Entry {
            method: "put",
            path: "/api/v1/instances/{instance}/flows/{flow}",
            needs: &[],
            attempts: |_| vec![Body::Json(Some(json!({ "v": 2 })))],
        },
        Entry {
            method: "delete",
            path: "/api/v1/instances/{instance}/flows/{flow}",
            needs: &[],
            attempts: no_body,
        },
        Entry {
            method: "put",
            path: "/api/v1/instances/{instance}/env/{key}",
            needs: &[],
            attempts: |_| vec![Body::Json(Some(json!({ "value": "v" })))],
        },
        Entry {
            method: "delete",
            path: "/api/v1/instances/{instance}/env/{key}",
            needs: &[],
            attempts: no_body,
        },
        Entry {
            method: "post",
            path: "/api/v1/teams/{team}/pipelines",
            needs: &[],
            attempts: |s| {
                vec![Body::Json(Some(
                    json!({ "name": format!("api-esc-{}", s.n) }),
                ))]
            },
        },
        Entry {
            method: "patch",
            path: "/api/v1/pipelines/{pipeline}",
            needs: &[],
            attempts: |s| {
                vec![Body::Json(Some(
                    json!({ "name": format!("renamed-{}", s.n) }),
                ))]
            },
        },
        Entry {
            method: "delete",
            path: "/api/v1/pipelines/{pipeline}",
            needs: &[],
            attempts: no_body,
        },
        Entry {
            method: "post",
            path: "/api/v1/pipelines/{pipeline}/stages",
            needs: &[],
            attempts: |s| vec![Body::Json(Some(json!({ "instance": s.free_instance })))],
        },
        Entry {
            method: "put",
            path: "/api/v1/pipelines/{pipeline}/stages",
            needs: &[],
            attempts: |_| vec![Body::Json(Some(json!({ "order": [] })))],
        },
        Entry {
            method: "delete",
            path: "/api/v1/pipelines/{pipeline}/stages/{stage}",
            needs: &[],
            attempts: no_body,
        },
        Entry {
            method: "post",
            path: "/api/v1/pipelines/{pipeline}/stages/{stage}/promote",
            needs: &[],
            attempts: no_body,
        },
        Entry {
            method: "post",
            path: "/api/v1/pipelines/{pipeline}/stages/{stage}/restore",
            needs: &[],
            attempts: no_body,
        },
        Entry {
            method: "post",
            path: "/api/v1/promotions/{promotion}/approve",
            needs: &[],
            attempts: no_body,
        },
        Entry {
            method: "post",
            path: "/api/v1/promotions/{promotion}/reject",
            needs: &[],
            attempts: no_body,
        },
        Entry {
            method: "post",
            path: "/api/v1/promotions/{promotion}/rollback",
            needs: &[],
            attempts: no_body,
        },
    ]
}

/// What everyone holds in the team, and what every custom role grants.
#[derive(Debug, Clone)]
struct Holdings {
    members: BTreeMap<UserId, PermissionSet>,
    roles: BTreeMap<String, PermissionSet>,
}

async fn holdings(app: &TestApp, team: TeamId) -> Holdings {
    let mut members = BTreeMap::new();
    for m in app.store.members(team).await.unwrap() {
        let held = app.store.permissions(team, m.user.id).await.unwrap();
        members.insert(m.user.id, held);
    }
    let roles = app
        .store
        .roles(team)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.name.to_string(), r.permissions))
        .collect();
    Holdings { members, roles }
}

fn role_grants(roles: &BTreeMap<String, PermissionSet>, role: &str) -> PermissionSet {
    BuiltinRole::parse(role)
        .map(BuiltinRole::permissions)
        .or_else(|| roles.get(role).cloned())
        .unwrap_or_default()
}

/// Panics, naming the route, if the member or anyone through them now
/// holds more than `start`.
async fn assert_within(
    app: &TestApp,
    team: TeamId,
    route: &str,
    me: UserId,
    start: &PermissionSet,
    before: &Holdings,
    secrets: &[String],
) {
    let after = holdings(app, team).await;
    let own = after.members.get(&me).cloned().unwrap_or_default();
    assert!(
        start.lacks(&own).is_empty(),
        "{route}: the member now holds {:?} beyond {start:?}",
        start.lacks(&own)
    );
    for (user, held) in &after.members {
        let had = before.members.get(user).cloned().unwrap_or_default();
        let gained: PermissionSet = had.lacks(held).into_iter().collect();
        assert!(
            start.lacks(&gained).is_empty(),
            "{route}: user {user} gained {:?}, which the member does not hold",
            start.lacks(&gained)
        );
    }
    for (name, grants) in &after.roles {
        if before.roles.get(name) != Some(grants) {
            assert!(
                start.lacks(grants).is_empty(),
                "{route}: the role {name:?} now grants {:?} beyond the member's",
                start.lacks(grants)
            );
        }
    }
    let now = chrono::Utc::now();
    for token in app.store.tokens(team).await.unwrap() {
        assert!(
            !(token.created_by_user_id == Some(me) && token.user_id.is_some_and(|u| u != me)),
            "{route}: the member made the token {}, which acts for someone else",
            token.name
        );
        let theirs = token.user_id == Some(me) || token.created_by_user_id == Some(me);
        if theirs && token.is_live(now) {
            let grants = role_grants(&after.roles, &token.role);
            assert!(
                start.lacks(&grants).is_empty(),
                "{route}: the token {} acts as {} with {:?} beyond the member's",
                token.name,
                token.role,
                start.lacks(&grants)
            );
        }
    }
    // Whatever secret a page handed out holds no more, as the API sees it.
    for secret in secrets {
        let found = app
            .store
            .authenticate_token(&stagehand_web::auth::tokens::hash_secret(secret))
            .await
            .unwrap();
        if let Some((token, _, held)) = found {
            assert!(
                start.lacks(&held).is_empty(),
                "{route}: the new token {} holds {:?} beyond the member's",
                token.name,
                start.lacks(&held)
            );
        }
    }
}

/// A token secret shown on a page, if any.
fn secret_on(page: &str) -> Option<String> {
    page.split("<pre class=\"secret\">")
        .nth(1)
        .and_then(|r| r.split("</pre>").next())
        .map(str::to_owned)
}

async fn attempt(
    app: &TestApp,
    route: &RouteSpec,
    path: &str,
    client: &Client,
    token: Option<&str>,
    body: Body,
) -> (u16, String) {
    match body {
        Body::Form(fields) => {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let page = client.post(path, &fields).await;
            (page.status.as_u16(), page.body)
        }
        Body::Upload { file, content } => {
            let csrf = client.csrf.lock().unwrap().clone();
            let form = reqwest::multipart::Form::new()
                .text("csrf_token", csrf)
                .part(
                    "file",
                    reqwest::multipart::Part::text(content).file_name(file),
                );
            let res = client
                .http
                .post(app.url(path))
                .header("accept", "text/html")
                .header("origin", client.base().to_owned())
                .multipart(form)
                .send()
                .await
                .unwrap();
            let page = client.page(res).await;
            (page.status.as_u16(), page.body)
        }
        Body::Json(json) => {
            let http = reqwest::Client::new();
            let url = app.url(path);
            let mut req = match route.method {
                "post" => http.post(url),
                "put" => http.put(url),
                "patch" => http.patch(url),
                "delete" => http.delete(url),
                other => panic!("{other} {path}: no such API method"),
            };
            if let Some(json) = json {
                req = req.json(&json);
            }
            let res = req
                .bearer_auth(token.expect("an API route needs the member's token"))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.text().await.unwrap())
        }
    }
}

/// The other member `world()` made (a viewer), by username.
async fn victim_of(app: &TestApp, w: &World) -> String {
    let id = &w.params.iter().find(|(k, _)| *k == "user").unwrap().1;
    app.store
        .user(UserId(id.parse().unwrap()))
        .await
        .unwrap()
        .username
        .to_string()
}

#[tokio::test]
async fn no_state_changing_route_lets_a_member_exceed_what_they_hold() {
    let app = spawn_app().await;
    let team = app.team("alpha").await;
    // The team keeps an admin of its own throughout.
    app.member(team, "adam", BuiltinRole::Admin).await;
    let table = table();
    for e in &table {
        assert!(
            ROUTES
                .iter()
                .any(|r| r.method == e.method && r.path == e.path),
            "the escalation table has an entry for {} {}, which is no longer a route",
            e.method,
            e.path
        );
    }
    let mut n = 0;
    for route in ROUTES.iter().filter(|r| r.method != "get") {
        let permission = match route.access {
            Access::Team(p) | Access::Api(p) => p,
            _ => continue,
        };
        let name = format!("{} {}", route.method, route.path);
        let entry = table
            .iter()
            .find(|e| e.method == route.method && e.path == route.path)
            .unwrap_or_else(|| {
                panic!(
                    "{name} changes state but has no entry in the escalation table \
                     (crates/web/tests/web/escalation.rs): add its most escalating requests"
                )
            });
        n += 1;
        let w = world(&app, team, 20_000 + n).await;
        let path = fill(route, &w);
        let victim = victim_of(&app, &w).await;
        let mut grants = vec![permission];
        grants.extend_from_slice(entry.needs);
        let (me, own_role) = (format!("esc-{n}"), format!("only-{n}"));
        let (client, me_id) = app.member_holding(team, &me, &own_role, &grants).await;
        let start = app.store.permissions(team, me_id).await.unwrap();
        let token = match route.access {
            Access::Api(_) => Some(
                app.own_token(team, me_id, &format!("esc-token-{n}"), &own_role)
                    .await,
            ),
            _ => None,
        };
        let scene = Scene {
            me,
            victim,
            own_role,
            free_instance: w.free_instance.clone(),
            n,
        };
        let before = holdings(&app, team).await;
        let mut secrets = Vec::new();
        for body in (entry.attempts)(&scene) {
            let (status, text) = attempt(&app, route, &path, &client, token.as_deref(), body).await;
            // The request reached the route's handler: neither the login
            // nor the membership check stopped it, and nothing broke.
            assert!(
                ![401, 404, 405].contains(&status) && status < 500,
                "{name} as a member holding {start:?}: {status} {text}"
            );
            secrets.extend(secret_on(&text));
        }
        assert_within(&app, team, &name, me_id, &start, &before, &secrets).await;
    }
    assert!(n >= 40, "only {n} state-changing routes were tried");
    app.stop().await;
}
