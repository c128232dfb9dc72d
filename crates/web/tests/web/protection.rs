//! The protection bypass table: every state-changing route of the router,
//! pages and API, sent by a lead (a session, and a token with the lead
//! role) with its ids bound to a protected production instance. Each must
//! be refused as `protected`, or create a request awaiting approval, or
//! be refused for lack of permission, or be one that cannot reach the
//! instance — and after every single request, production is exactly as
//! it was. A new state-changing route without a row here fails the test.

use crate::api::Api;
use crate::harness::*;
use serde_json::{Value, json};
use stagehand_domain::{
    BuiltinRole, EnvKey, InstanceId, PromotionStatus, Protection, SecretValue, StageId, TeamId,
};
use stagehand_store::{Actor, PromotionRequest};
use stagehand_web::authz::Access;
use stagehand_web::routes::{ROUTES, RouteSpec};

/// What a lead's request on production must come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 403 with the code `protected`, naming the instance.
    Protected,
    /// A promotion or rollback request, `pending_approval`.
    Requested,
    /// The route does not reach production's state (it still must not
    /// change it: the check after each request covers that).
    Untouched,
}

/// Which stage a `{stage}` of the route means.
#[derive(Debug, Clone, Copy)]
enum StageIs {
    /// The stage before production: play on it promotes into production.
    Source,
    /// Production's own stage.
    Target,
}

/// One row per state-changing team route: what it must come to, the
/// stage it is about, and its body (form fields for pages, JSON for the
/// API).
fn row(route: &RouteSpec) -> Option<(Expect, StageIs, Body)> {
    use Expect::*;
    use StageIs::*;
    let form = |f: &[(&'static str, &'static str)]| Body::Form(f.to_vec());
    let none = Body::None;
    Some(match (route.method, route.path) {
        // Pages.
        ("post", "/teams/{team}/pipelines") => (Untouched, Source, form(&[("name", "another")])),
        ("post", "/teams/{team}/pipelines/{pipeline}/delete") => (Protected, Source, none),
        ("post", "/teams/{team}/pipelines/{pipeline}/stages") => {
            (Untouched, Source, form(&[("instance", "")]))
        }
        ("post", "/teams/{team}/pipelines/{pipeline}/stages/{stage}/remove") => {
            (Protected, Target, none)
        }
        // The first stage cannot move left: the order, which other rows
        // rely on, stays (reordering never changes an instance anyway).
        ("post", "/teams/{team}/pipelines/{pipeline}/stages/{stage}/move") => {
            (Untouched, Source, form(&[("direction", "left")]))
        }
        ("post", "/teams/{team}/pipelines/{pipeline}/stages/{stage}/promote") => {
            (Requested, Source, none)
        }
        // A restore of production to its backup is a request like a play.
        ("post", "/teams/{team}/pipelines/{pipeline}/stages/{stage}/restore") => {
            (Requested, Target, Body::Snapshot)
        }
        ("post", "/teams/{team}/promotions/{promotion}/rollback") => (Requested, Source, none),
        // The applied promotion is no longer pending: a conflict.
        ("post", "/teams/{team}/promotions/{promotion}/decision") => {
            (Untouched, Source, form(&[("decision", "approve")]))
        }
        ("post", "/teams/{team}/instances") => (Untouched, Source, form(&[("name", "fresh")])),
        ("post", "/teams/{team}/instances/{instance}/delete") => (Protected, Source, none),
        // A copy of a protected instance changes nothing in it.
        ("post", "/teams/{team}/instances/{instance}/duplicate") => {
            (Untouched, Source, form(&[("name", "copy-of-protected")]))
        }
        ("post", "/teams/{team}/instances/{instance}/settings") => (
            Protected,
            Source,
            form(&[("settings", r#"{"replicas": 0}"#)]),
        ),
        ("post", "/teams/{team}/instances/{instance}/flows") => (
            Protected,
            Source,
            form(&[("name", "hotfix"), ("content", r#"{"v": 666}"#)]),
        ),
        ("post", "/teams/{team}/instances/{instance}/flows/upload") => {
            (Protected, Source, Body::Upload)
        }
        ("post", "/teams/{team}/instances/{instance}/flows/{flow}/delete") => {
            (Protected, Source, none)
        }
        ("post", "/teams/{team}/instances/{instance}/env") => {
            (Protected, Source, form(&[("key", "BACKDOOR")]))
        }
        ("post", "/teams/{team}/instances/{instance}/env/missing") => {
            (Protected, Source, form(&[("keys", "BACKDOOR,OTHER")]))
        }
        ("post", "/teams/{team}/instances/{instance}/env/{key}/value") => (
            Protected,
            Source,
            form(&[("action", "set"), ("value", "attacker")]),
        ),
        ("post", "/teams/{team}/instances/{instance}/env/{key}/remove") => {
            (Protected, Source, none)
        }
        // Production here is not connected to a runtime: there is nothing
        // to test (a conflict). A pull would replace a protected
        // instance's values in Stagehand: refused before anything else.
        ("post", "/teams/{team}/instances/{instance}/runtime/test") => (Untouched, Source, none),
        ("post", "/teams/{team}/instances/{instance}/pull") => (Protected, Source, none),
        // The API.
        ("post", "/api/v1/teams/{team}/instances") => (
            Untouched,
            Source,
            Body::Json(json!({ "name": "fresh-api" })),
        ),
        ("patch", "/api/v1/instances/{instance}") => (
            Protected,
            Source,
            Body::Json(json!({ "settings": { "replicas": 0 } })),
        ),
        ("delete", "/api/v1/instances/{instance}") => (Protected, Source, none),
        ("put", "/api/v1/instances/{instance}/flows") => (
            Protected,
            Source,
            Body::Json(json!({ "flows": { "hotfix": { "v": 666 } } })),
        ),
        ("put", "/api/v1/instances/{instance}/flows/{flow}") => {
            (Protected, Source, Body::Json(json!({ "v": 666 })))
        }
        ("delete", "/api/v1/instances/{instance}/flows/{flow}") => (Protected, Source, none),
        ("put", "/api/v1/instances/{instance}/env/{key}") => (
            Protected,
            Source,
            Body::Json(json!({ "value": "attacker" })),
        ),
        ("delete", "/api/v1/instances/{instance}/env/{key}") => (Protected, Source, none),
        ("post", "/api/v1/teams/{team}/pipelines") => (
            Untouched,
            Source,
            Body::Json(json!({ "name": "another-api" })),
        ),
        ("patch", "/api/v1/pipelines/{pipeline}") => {
            (Untouched, Source, Body::Json(json!({ "name": "renamed" })))
        }
        ("delete", "/api/v1/pipelines/{pipeline}") => (Protected, Source, none),
        ("post", "/api/v1/pipelines/{pipeline}/stages") => (
            Untouched,
            Source,
            Body::Json(json!({ "instance": uuid::Uuid::nil().to_string() })),
        ),
        ("put", "/api/v1/pipelines/{pipeline}/stages") => {
            (Untouched, Source, Body::Json(json!({ "order": [] })))
        }
        ("delete", "/api/v1/pipelines/{pipeline}/stages/{stage}") => (Protected, Target, none),
        ("post", "/api/v1/pipelines/{pipeline}/stages/{stage}/promote") => {
            (Requested, Source, none)
        }
        ("post", "/api/v1/pipelines/{pipeline}/stages/{stage}/restore") => {
            (Requested, Target, Body::Snapshot)
        }
        ("post", "/api/v1/promotions/{promotion}/approve")
        | ("post", "/api/v1/promotions/{promotion}/reject") => (Untouched, Source, none),
        ("post", "/api/v1/promotions/{promotion}/rollback") => (Requested, Source, none),
        ("post", "/api/v1/instances/{instance}/runtime/test") => (Untouched, Source, none),
        ("post", "/api/v1/instances/{instance}/pull") => (Protected, Source, none),
        // A copy of a protected instance changes nothing in it.
        ("post", "/api/v1/instances/{instance}/duplicate") => (
            Untouched,
            Source,
            Body::Json(json!({ "name": "copy-of-protected" })),
        ),
        _ => return None,
    })
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Form(Vec<(&'static str, &'static str)>),
    Json(Value),
    /// A flow file, as the upload form sends it.
    Upload,
    /// `snapshot`: production's backup (a form field, or a JSON body).
    Snapshot,
}

struct Production {
    team: TeamId,
    reviewer: stagehand_domain::UserId,
    prod: InstanceId,
    stages: Vec<StageId>,
    params: Vec<(&'static str, String)>,
}

impl Production {
    fn param(&self, name: &str) -> &str {
        &self.params.iter().find(|(k, _)| *k == name).unwrap().1
    }

    fn path(&self, route: &RouteSpec, stage: StageIs) -> String {
        let mut path = route.path.to_owned();
        while let Some(start) = path.find('{') {
            let end = path[start..].find('}').unwrap() + start;
            let name = &path[start + 1..end];
            let value = match name {
                "stage" => match stage {
                    StageIs::Source => self.stages[0].to_string(),
                    StageIs::Target => self.stages[1].to_string(),
                },
                _ => self
                    .params
                    .iter()
                    .find(|(k, _)| *k == name)
                    .unwrap_or_else(|| panic!("no value for {{{name}}} in {}", route.path))
                    .1
                    .clone(),
            };
            path.replace_range(start..=end, &value);
        }
        path
    }
}

/// Everything production is: flows with content, keys with values,
/// settings, protection, version, its stages in every pipeline, existence.
async fn state_of(app: &TestApp, p: &Production) -> String {
    let Ok(i) = app.store.instance(p.team, p.prod).await else {
        return "gone".into();
    };
    let mut flows = Vec::new();
    for f in app.store.flows(p.team, p.prod).await.unwrap() {
        let c = app.store.flow(p.team, p.prod, &f.name).await.unwrap();
        flows.push((f.name.to_string(), c.content.as_json().to_owned()));
    }
    let mut env = Vec::new();
    for v in app.store.env_vars(p.team, p.prod).await.unwrap() {
        let value = app
            .store
            .reveal_env_value(p.team, p.prod, &v.key, &Actor::system())
            .await
            .unwrap();
        env.push((v.key.to_string(), value.map(|s| s.expose().to_owned())));
    }
    let stages: Vec<String> = app
        .store
        .pipelines(p.team)
        .await
        .unwrap()
        .iter()
        .flat_map(|pl| pl.stages.iter().map(move |s| (pl.id, s)))
        .filter(|(_, s)| s.instance_id == p.prod)
        .map(|(pl, s)| format!("{pl}/{}", s.id))
        .collect();
    format!(
        "{} v{} {:?} {} {flows:?} {env:?} {stages:?}",
        i.name, i.version, i.protection, i.settings
    )
}

async fn production(app: &TestApp) -> Production {
    let team = app.team("acme").await;
    let dev = app.instance(team, "dev", &[("orders", r#"{"v":2}"#)]).await;
    let prod = app
        .instance(team, "prod", &[("orders", r#"{"v":1}"#)])
        .await;
    app.store
        .set_env_var(
            team,
            prod,
            EnvKey::parse("DB_PASSWORD").unwrap(),
            Some(SecretValue::new("prod-secret".into())),
            &Actor::system(),
        )
        .await
        .unwrap();
    let (pipeline, stages) = app.pipeline(team, "release", &[dev, prod]).await;
    // An applied promotion into production, to roll back; then protect it.
    let applied = app
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
    assert_eq!(applied.status, PromotionStatus::Applied);
    app.store
        .set_instance_protection(
            team,
            prod,
            Protection::new(1, false).unwrap(),
            &Actor::system(),
        )
        .await
        .unwrap();
    // The source moves on, so a play has something to ship.
    app.store
        .put_flow(
            team,
            dev,
            stagehand_domain::FlowName::parse("orders").unwrap(),
            stagehand_domain::FlowContent::parse_json(r#"{"v":3}"#).unwrap(),
            None,
            &Actor::system(),
        )
        .await
        .unwrap();
    let member = app.user("member", false).await;
    app.bind(team, member, BuiltinRole::Viewer).await;
    let token = app.token(team, "a-token", "viewer").await;
    let token_id = app
        .store
        .tokens(team)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name.as_str() == "a-token")
        .unwrap()
        .id;
    drop(token);
    Production {
        team,
        reviewer: member,
        prod,
        stages: stages.clone(),
        params: vec![
            ("team", team.to_string()),
            ("pipeline", pipeline.to_string()),
            ("instance", prod.to_string()),
            ("promotion", applied.id.to_string()),
            ("snapshot", applied.backup_snapshot_id.unwrap().to_string()),
            ("flow", "orders".into()),
            ("key", "DB_PASSWORD".into()),
            ("user", member.to_string()),
            ("token", token_id.to_string()),
        ],
    }
}

#[tokio::test]
async fn no_state_changing_route_lets_a_lead_change_a_protected_instance() {
    let app = spawn_app().await;
    let p = production(&app).await;
    let lead = app.member(p.team, "lena", BuiltinRole::Lead).await;
    let lead_token = app.token(p.team, "lead-ci", "lead").await;
    let api = Api::new(&app, Some(lead_token));
    let lead_permissions = BuiltinRole::Lead.permissions();
    let before = state_of(&app, &p).await;
    let mut checked = 0;
    for route in ROUTES.iter().filter(|r| r.method != "get") {
        let permission = match route.access {
            Access::Team(p) | Access::Api(p) => p,
            // No team in the path: these routes cannot name a team's
            // instance (login, logout, platform administration).
            Access::Public | Access::Authenticated | Access::PlatformAdmin => continue,
        };
        let is_api = matches!(route.access, Access::Api(_));
        let Some((expect, stage, body)) = row(route) else {
            if !lead_permissions.contains(permission) {
                // The lead may not use it at all: 403, nothing else.
                let path = p.path(route, StageIs::Target);
                let status = if is_api {
                    api.send(route.method, &path, Some(json!({})), &[])
                        .await
                        .status
                } else {
                    lead.post(&path, &[]).await.status
                };
                assert_eq!(status, 403, "{} {path}", route.method);
                assert_eq!(state_of(&app, &p).await, before, "{} {path}", route.method);
                continue;
            }
            panic!(
                "{} {} is a state-changing route a lead may use: add it to the protection \
                 table in tests/web/protection.rs with what it must come to on a protected \
                 instance",
                route.method, route.path
            );
        };
        let path = p.path(route, stage);
        let what = format!("{} {path}", route.method);
        let (status, code, text) = if is_api {
            let json = match &body {
                Body::Json(v) => Some(v.clone()),
                Body::Snapshot => Some(json!({ "snapshot": p.param("snapshot") })),
                _ => None,
            };
            let a = api.send(route.method, &path, json, &[]).await;
            let code = a.body["error"]["code"].as_str().unwrap_or("").to_owned();
            let text = a.body.to_string();
            // A request answers 202 with the pending promotion.
            if expect == Expect::Requested {
                assert_eq!(a.status, 202, "{what}: {text}");
                assert_eq!(a.body["status"], "pending_approval", "{what}");
                let id = a.body["id"].as_str().unwrap().parse().unwrap();
                withdraw(&app, &p, id).await;
            }
            (a.status.as_u16(), code, text)
        } else {
            let page = match &body {
                Body::Upload => upload(&app, &lead, &path).await,
                Body::Form(fields) => lead.post(&path, fields).await,
                Body::Snapshot => lead.post(&path, &[("snapshot", p.param("snapshot"))]).await,
                _ => lead.post(&path, &[]).await,
            };
            if expect == Expect::Requested {
                assert_eq!(page.status, 303, "{what}: {}", page.body);
                let to = page.location.clone().unwrap();
                let id = to.rsplit('/').next().unwrap().parse().unwrap();
                let promotion = app.store.promotion(p.team, id).await.unwrap();
                assert_eq!(promotion.status, PromotionStatus::PendingApproval, "{what}");
                assert_eq!(promotion.target_instance_id, p.prod, "{what}");
                withdraw(&app, &p, id).await;
            }
            let code = if page.status == 403 && page.body.contains("is protected") {
                "protected".to_owned()
            } else {
                String::new()
            };
            (page.status.as_u16(), code, page.body)
        };
        if expect == Expect::Protected {
            assert_eq!(status, 403, "{what}: {text}");
            assert_eq!(code, "protected", "{what}: {text}");
            assert!(text.contains("prod"), "{what} names the instance: {text}");
        }
        assert_eq!(
            state_of(&app, &p).await,
            before,
            "{what} ({expect:?}) changed production"
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} routes were tried");
    app.stop().await;
}

/// A reviewer rejects a request, so the next row may request again (one
/// request per source and target waits at a time).
async fn withdraw(app: &TestApp, p: &Production, id: stagehand_domain::PromotionId) {
    let reviewer = Actor::user(
        p.reviewer,
        &stagehand_domain::Username::parse("member").unwrap(),
    );
    app.store
        .decide(p.team, id, stagehand_store::Decision::Reject, &reviewer)
        .await
        .unwrap();
}

async fn upload(app: &TestApp, client: &Client, path: &str) -> Page {
    let token = client.csrf.lock().unwrap().clone();
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::text(r#"{"v": 666}"#).file_name("orders.json"),
        )
        .text("csrf_token", token);
    let res = client
        .http
        .post(app.url(path))
        .header("accept", "text/html")
        .header("origin", app.url("").trim_end_matches('/').to_owned())
        .multipart(form)
        .send()
        .await
        .unwrap();
    client.page(res).await
}
