//! The JSON API over HTTP, as a CI job uses it: with API tokens.

use crate::access::{fill, world};
use crate::harness::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stagehand_domain::{BuiltinRole, EnvKey, SecretValue};
use stagehand_store::Actor;
use stagehand_web::authz::Access;
use stagehand_web::routes::ROUTES;

/// An API client holding one token.
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Api {
    pub(crate) fn new(app: &TestApp, token: Option<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: app.url(""),
            token,
        }
    }

    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "get" => self.http.get(url),
            "post" => self.http.post(url),
            "put" => self.http.put(url),
            "delete" => self.http.delete(url),
            "patch" => self.http.patch(url),
            other => panic!("no {other}"),
        };
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"))
        };
        Answer { status, body }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send("get", path, None, &[]).await
    }
}

fn body_for(path: &str, method: &str) -> Option<Value> {
    match method {
        "put" if path.ends_with("/flows") => Some(json!({ "flows": { "from-ci": {"v": 1} } })),
        "put" if path.contains("/env/") => Some(json!({ "value": "v" })),
        "put" if path.ends_with("/stages") => Some(json!({ "order": [] })),
        "put" if path.ends_with("/protection") => Some(json!({ "required_approvals": 1 })),
        // Nothing listens on port 9: connecting calls nothing.
        "put" if path.ends_with("/runtime") => Some(json!({
            "kind": "node-red", "url": "http://127.0.0.1:9/", "auth": {"type": "none"}
        })),
        "put" => Some(json!({ "steps": [] })),
        "post"
            if path.ends_with("/instances")
                || path.ends_with("/pipelines")
                || path.ends_with("/duplicate") =>
        {
            Some(json!({ "name": format!("api-{}", uuid::Uuid::new_v4().simple()) }))
        }
        "post" if path.ends_with("/stages") => {
            Some(json!({ "instance": uuid::Uuid::new_v4().to_string() }))
        }
        "patch" if path.contains("/pipelines/") => {
            Some(json!({ "name": format!("renamed-{}", uuid::Uuid::new_v4().simple()) }))
        }
        "patch" => Some(json!({ "settings": {"replicas": 2} })),
        _ => None,
    }
}

#[tokio::test]
async fn every_api_route_answers_every_token_as_declared() {
    let app = spawn_app().await;
    let team = app.team("alpha").await;
    let other = app.team("beta").await;
    let tokens = [
        (
            "viewer",
            Some(app.token(team, "ci-viewer", "viewer").await),
            Some(BuiltinRole::Viewer),
        ),
        (
            "lead",
            Some(app.token(team, "ci-lead", "lead").await),
            Some(BuiltinRole::Lead),
        ),
        (
            "admin",
            Some(app.token(team, "ci-admin", "admin").await),
            Some(BuiltinRole::Admin),
        ),
        (
            "other team",
            Some(app.token(other, "their-ci", "admin").await),
            None,
        ),
        ("no token", None, None),
    ];
    let mut n = 0;
    for route in ROUTES.iter().filter(|r| matches!(r.access, Access::Api(_))) {
        let Access::Api(permission) = route.access else {
            unreachable!()
        };
        for (who, token, role) in &tokens {
            n += 1;
            let w = world(&app, team, 10_000 + n).await;
            let path = fill(route, &w);
            let answer = Api::new(&app, token.clone())
                .send(route.method, &path, body_for(&path, route.method), &[])
                .await;
            let ctx = format!(
                "{} {path} with {who}: {} {}",
                route.method, answer.status, answer.body
            );
            let code = answer.body["error"]["code"].as_str().unwrap_or("");
            match (token, role) {
                (None, _) => {
                    assert_eq!(answer.status, 401, "{ctx}");
                    assert_eq!(code, "unauthorized", "{ctx}");
                }
                // Another team's token: the team's ids (in the path or the
                // query) do not exist for it; a route without ids answers
                // with its own team's (empty) data.
                (Some(_), None) if route.path.contains('{') || path.contains('?') => {
                    assert_eq!(answer.status, 404, "{ctx}")
                }
                (Some(_), None) => {
                    assert_eq!(answer.status, 200, "{ctx}");
                    for (_, value) in &w.params {
                        assert!(
                            !answer.body.to_string().contains(value.as_str()) || value.len() < 30,
                            "{ctx} leaks {value}"
                        );
                    }
                }
                (Some(_), Some(r)) if !r.permissions().contains(permission) => {
                    assert_eq!(answer.status, 403, "{ctx}");
                    assert_eq!(code, "forbidden", "{ctx}");
                }
                (Some(_), Some(_)) => assert!(
                    ![401, 403, 404].contains(&answer.status.as_u16())
                        && answer.status.as_u16() < 500,
                    "{ctx}"
                ),
            }
        }
    }
    assert!(n >= 5 * 20, "walked only {n} requests");
    app.stop().await;
}

#[tokio::test]
async fn a_ci_job_pushes_flows_previews_and_promotes_with_a_token() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[("old", "{}")]).await;
    let prod = app.instance(team, "prod", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "checkout", &[dev, prod]).await;
    let secret_value = "ci-must-never-see-this";
    app.store
        .set_env_var(
            team,
            dev,
            EnvKey::parse("API_KEY").unwrap(),
            Some(SecretValue::new(secret_value.into())),
            &Actor::system(),
        )
        .await
        .unwrap();
    let ci = Api::new(&app, Some(app.token(team, "github-actions", "lead").await));

    // Replace dev's flows in one call.
    let pushed = ci
        .send(
            "put",
            &format!("/api/v1/instances/{dev}/flows"),
            Some(json!({"flows": {"orders": {"v": 2}, "billing": [1]}})),
            &[],
        )
        .await;
    assert_eq!(pushed.status, 200, "{}", pushed.body);
    let flows = ci.get(&format!("/api/v1/instances/{dev}/flows")).await;
    let names: Vec<&str> = flows.body["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["billing", "orders"]);
    let one = ci
        .get(&format!("/api/v1/instances/{dev}/flows/orders"))
        .await;
    assert_eq!(one.body, json!({"v": 2}));

    // Env keys, never values.
    let env = ci.get(&format!("/api/v1/instances/{dev}/env")).await;
    assert_eq!(env.body["env"][0]["key"], "API_KEY");
    assert_eq!(env.body["env"][0]["has_value"], true);
    assert!(!env.body.to_string().contains(secret_value));
    // A lead's token cannot reveal it.
    let reveal = ci
        .get(&format!("/api/v1/instances/{dev}/env/API_KEY/value"))
        .await;
    assert_eq!(reveal.status, 403);

    // Preview, then play twice with one idempotency key: one promotion.
    let base = format!("/api/v1/pipelines/{pipeline}/stages/{}", stages[0]);
    let preview = ci.get(&format!("{base}/preview")).await;
    assert_eq!(preview.status, 200);
    assert_eq!(preview.body["plan"]["keys_to_add"], json!(["API_KEY"]));
    let version = preview.body["target_version"].to_string();
    let if_match = format!("\"{version}\"");
    let headers = [
        ("idempotency-key", "run-42"),
        ("if-match", if_match.as_str()),
    ];
    let first = ci
        .send("post", &format!("{base}/promote"), None, &headers)
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["status"], "applied");
    let retry = ci
        .send("post", &format!("{base}/promote"), None, &headers)
        .await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.body["id"], first.body["id"]);
    assert!(!first.body.to_string().contains(secret_value));
    // A stale If-Match is a conflict.
    let stale = ci
        .send(
            "post",
            &format!("{base}/promote"),
            None,
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(stale.status, 409);
    assert_eq!(stale.body["error"]["code"], "conflict");

    // Prod got the flows and the key without its value.
    let prod_env = ci.get(&format!("/api/v1/instances/{prod}/env")).await;
    assert_eq!(prod_env.body["env"][0]["has_value"], false);

    // The history pages by cursor, and the audit names the token.
    let page = ci.get("/api/v1/promotions?limit=1").await;
    assert_eq!(page.body["promotions"].as_array().unwrap().len(), 1);
    let audit = ci.get("/api/v1/audit?kind=promotion.applied").await;
    assert_eq!(audit.body["events"][0]["actor"], "token:github-actions");
    let id = first.body["id"].as_str().unwrap();
    let detail = ci.get(&format!("/api/v1/promotions/{id}")).await;
    assert_eq!(detail.body["requested_by"], "token:github-actions");

    // Rename the pipeline; a taken or empty name is refused.
    let renamed = ci
        .send(
            "patch",
            &format!("/api/v1/pipelines/{pipeline}"),
            Some(json!({"name": "checkout-v2"})),
            &[],
        )
        .await;
    assert_eq!(renamed.status, 200);
    assert_eq!(renamed.body["name"], "checkout-v2");
    let empty = ci
        .send(
            "patch",
            &format!("/api/v1/pipelines/{pipeline}"),
            Some(json!({"name": ""})),
            &[],
        )
        .await;
    assert_eq!(empty.status, 422);

    // The team's audit chain holds.
    let verified = ci.get("/api/v1/audit/verify").await;
    assert_eq!(verified.body["intact"], true, "{}", verified.body);
    assert!(verified.body["checked"].as_i64().unwrap() >= 5);

    // Roll back through the API.
    let rolled = ci
        .send(
            "post",
            &format!("/api/v1/promotions/{id}/rollback"),
            None,
            &[],
        )
        .await;
    assert_eq!(rolled.body["status"], "rolled_back");
    app.stop().await;
}

#[tokio::test]
async fn bad_api_requests_get_json_errors_naming_the_field() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let other = app.team("other").await;
    let dev = app.instance(team, "dev", &[]).await;
    let theirs = app.instance(other, "theirs", &[]).await;
    let admin = Api::new(&app, Some(app.token(team, "ci", "admin").await));
    let raw = reqwest::Client::new();
    let url = |p: &str| app.url(p);
    let token = admin.token.clone().unwrap();

    // Malformed JSON, wrong content type, wrong shape: the field where
    // reading stopped, or the whole body.
    for (body, ctype, field) in [
        ("{not json", "application/json", "body"),
        ("{}", "text/plain", "body"),
        ("{\"flows\": 3}", "application/json", "flows"),
        ("{\"flows\": {}} trailing", "application/json", "body"),
    ] {
        let res = raw
            .put(url(&format!("/api/v1/instances/{dev}/flows")))
            .bearer_auth(&token)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{body} as {ctype}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "invalid");
        assert!(err["error"]["fields"][field].is_string(), "{err}");
    }
    // Field errors name the field.
    let bad_name = admin
        .send(
            "post",
            &format!("/api/v1/teams/{team}/instances"),
            Some(json!({"name": ""})),
            &[],
        )
        .await;
    assert_eq!(bad_name.status, 422);
    assert!(
        bad_name.body["error"]["fields"]["name"].is_string(),
        "{}",
        bad_name.body
    );
    let bad_key = admin
        .send(
            "put",
            &format!("/api/v1/instances/{dev}/env/9-bad"),
            Some(json!({"value": "x"})),
            &[],
        )
        .await;
    assert_eq!(bad_key.status, 422);
    assert!(bad_key.body["error"]["fields"]["key"].is_string());
    let taken = admin
        .send(
            "post",
            &format!("/api/v1/teams/{team}/instances"),
            Some(json!({"name": "dev"})),
            &[],
        )
        .await;
    assert_eq!(taken.status, 409);

    // Unknown and foreign ids are 404, never naming anything.
    for path in [
        format!("/api/v1/instances/{theirs}"),
        format!("/api/v1/instances/{}", uuid::Uuid::new_v4()),
        "/api/v1/instances/not-a-uuid".to_owned(),
        format!("/api/v1/teams/{other}/instances"),
    ] {
        let answer = admin.get(&path).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.body["error"]["code"], "not_found");
        assert!(!answer.body.to_string().contains("theirs"));
    }
    let bad_cursor = admin.get("/api/v1/promotions?cursor=garbage").await;
    assert_eq!(bad_cursor.status, 422);
    let bad_limit = admin.get("/api/v1/promotions?limit=100000").await;
    assert_eq!(bad_limit.status, 422);

    // A body over the limit.
    let huge = format!(
        "{{\"flows\": {{\"x\": \"{}\"}}}}",
        "y".repeat(27 * 1024 * 1024)
    );
    let res = raw
        .put(url(&format!("/api/v1/instances/{dev}/flows")))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);

    // Tokens: unknown, revoked, expired.
    let unknown = Api::new(&app, Some("sh_not-a-real-token".into()))
        .get(&format!("/api/v1/teams/{team}/instances"))
        .await;
    assert_eq!(unknown.status, 401);
    let revoked_secret = app.token(team, "old-ci", "viewer").await;
    let id = app
        .store
        .tokens(team)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name.as_str() == "old-ci")
        .unwrap()
        .id;
    app.store
        .revoke_token(team, id, &Actor::system())
        .await
        .unwrap();
    let revoked = Api::new(&app, Some(revoked_secret))
        .get(&format!("/api/v1/teams/{team}/instances"))
        .await;
    assert_eq!(revoked.status, 401);
    assert!(
        app.store.instances(team).await.unwrap().len() == 1,
        "nothing was written"
    );
    app.stop().await;
}

/// Rewrite the committed copy with `STAGEHAND_WRITE_OPENAPI=1`.
#[tokio::test]
async fn the_committed_openapi_document_matches_the_code_and_is_served() {
    let generated =
        serde_json::to_string_pretty(&stagehand_web::api::openapi::document()).unwrap() + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    if std::env::var_os("STAGEHAND_WRITE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "crates/web/openapi.json is out of date; regenerate it with \
         STAGEHAND_WRITE_OPENAPI=1 cargo nextest run -p stagehand-web openapi"
    );
    let doc: Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every API route is in it, with its method.
    for route in ROUTES.iter().filter(|r| matches!(r.access, Access::Api(_))) {
        let p = route.path.trim_start_matches("/api/v1");
        assert!(
            doc["paths"][p][route.method].is_object(),
            "{} {p} missing",
            route.method
        );
    }
    let app = spawn_app().await;
    let served: Value = reqwest::get(app.url("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, doc);
    app.stop().await;
}

/// PostgreSQL cannot store the NUL character; every way in refuses it with
/// a 422 instead of failing inside the database. (Found by schemathesis.)
#[tokio::test]
async fn a_nul_character_is_refused_everywhere_not_a_500() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[]).await;
    let admin = Api::new(&app, Some(app.token(team, "ci", "admin").await));
    let settings = admin
        .send(
            "post",
            &format!("/api/v1/teams/{team}/instances"),
            Some(json!({"name": "x", "settings": {"a\u{0}b": 1}})),
            &[],
        )
        .await;
    assert_eq!(settings.status, 422, "{}", settings.body);
    assert!(settings.body["error"]["fields"]["settings"].is_string());
    let flow = admin
        .send(
            "put",
            &format!("/api/v1/instances/{dev}/flows/f"),
            Some(json!({"v": "a\u{0}"})),
            &[],
        )
        .await;
    assert_eq!(flow.status, 422, "{}", flow.body);
    let set = admin
        .send(
            "put",
            &format!("/api/v1/instances/{dev}/flows"),
            Some(json!({"flows": {"f": ["\u{0}"]}})),
            &[],
        )
        .await;
    assert_eq!(set.status, 422, "{}", set.body);
    for path in ["/api/v1/promotions?actor=%00", "/api/v1/audit?kind=a%00b"] {
        let answer = admin.get(path).await;
        assert_eq!(answer.status, 422, "{path}: {}", answer.body);
    }
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    for path in [
        format!("/teams/{team}/promotions?actor=%00"),
        format!("/teams/{team}/audit?actor=x%00"),
    ] {
        assert_eq!(lead.get(&path).await.status, 422, "{path}");
    }
    let page = lead
        .post(
            &format!("/teams/{team}/instances/{dev}/settings"),
            &[("settings", "{\"a\": \"\\u0000\"}")],
        )
        .await;
    assert_eq!(page.status, 422);
    let login = Client::new(&app).login("le\u{0}na", PASSWORD).await;
    assert_eq!(login.status, 401, "{}", login.body);
    assert_eq!(app.store.instances(team).await.unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn setting_a_value_needs_envvar_set_and_adding_a_key_needs_instance_edit() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[]).await;
    app.store
        .set_env_var(
            team,
            dev,
            EnvKey::parse("EXISTING").unwrap(),
            None,
            &Actor::system(),
        )
        .await
        .unwrap();
    // A custom role that may set values but not edit instances.
    let perms: stagehand_domain::PermissionSet = [
        stagehand_domain::Permission::InstanceView,
        stagehand_domain::Permission::EnvvarSet,
    ]
    .into_iter()
    .collect();
    app.store
        .create_role(
            team,
            stagehand_domain::Name::parse("name", "secret setter").unwrap(),
            perms,
            &Actor::system(),
        )
        .await
        .unwrap();
    let setter = Api::new(&app, Some(app.token(team, "setter", "secret setter").await));
    let set = setter
        .send(
            "put",
            &format!("/api/v1/instances/{dev}/env/EXISTING"),
            Some(json!({"value": "v"})),
            &[],
        )
        .await;
    assert_eq!(set.status, 204, "{}", set.body);
    let add = setter
        .send(
            "put",
            &format!("/api/v1/instances/{dev}/env/NEW_KEY"),
            Some(json!({"value": "v"})),
            &[],
        )
        .await;
    assert_eq!(add.status, 403, "{}", add.body);
    let keys: Vec<String> = app
        .store
        .env_vars(team, dev)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.key.to_string())
        .collect();
    assert_eq!(keys, ["EXISTING"]);
    app.stop().await;
}

/// Retries racing each other: only the request that created the
/// promotion says 201 (202 into a protected instance); every other says
/// 200 with the same promotion.
#[tokio::test]
async fn concurrent_retries_with_one_idempotency_key_create_one_promotion_and_one_201() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[("orders", r#"{"v":1}"#)]).await;
    let qa = app.instance(team, "qa", &[]).await;
    let prod = app.instance(team, "prod", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "p", &[dev, qa, prod]).await;
    app.store
        .set_instance_protection(
            team,
            prod,
            stagehand_domain::Protection::new(1, false).unwrap(),
            &Actor::system(),
        )
        .await
        .unwrap();
    let token = app.token(team, "ci", "lead").await;
    for (stage, created) in [(stages[0], 201), (stages[1], 202)] {
        let path = format!("/api/v1/pipelines/{pipeline}/stages/{stage}/promote");
        let key = format!("retry-{stage}");
        let answers = futures_util::future::join_all((0..8).map(|_| {
            let api = Api::new(&app, Some(token.clone()));
            let (path, key) = (path.clone(), key.clone());
            async move {
                api.send("post", &path, None, &[("idempotency-key", &key)])
                    .await
            }
        }))
        .await;
        let mut statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
        statuses.sort_unstable();
        let mut wanted = vec![200; 7];
        wanted.push(created);
        wanted.sort_unstable();
        assert_eq!(statuses, wanted, "{stage}");
        let ids: std::collections::BTreeSet<String> =
            answers.iter().map(|a| a.body["id"].to_string()).collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
    }
    assert_eq!(app.store.promotions(team, 10).await.unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn an_instance_is_duplicated_with_its_flows_and_keys_but_no_value() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let other = app.team("beta").await;
    let dev = app
        .instance(team, "dev", &[("orders", "{\"v\": 1}"), ("billing", "[1]")])
        .await;
    let secret_value = "dev-only-value-4d2a";
    app.env(team, dev, "API_KEY", Some(secret_value)).await;
    let lead = Api::new(&app, Some(app.token(team, "ci", "lead").await));

    let made = lead
        .send(
            "post",
            &format!("/api/v1/instances/{dev}/duplicate"),
            Some(json!({"name": "qa"})),
            &[],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert!(!made.body.to_string().contains(secret_value));
    assert_eq!(made.body["name"], "qa");
    let qa = made.body["id"].as_str().unwrap().to_owned();
    let flows = lead.get(&format!("/api/v1/instances/{qa}/flows")).await;
    let names: Vec<&str> = flows.body["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["billing", "orders"]);
    let orders = lead
        .get(&format!("/api/v1/instances/{qa}/flows/orders"))
        .await;
    assert_eq!(orders.body, json!({"v": 1}));
    let env = lead.get(&format!("/api/v1/instances/{qa}/env")).await;
    assert_eq!(env.body["env"][0]["key"], "API_KEY", "{}", env.body);
    assert_eq!(env.body["env"][0]["has_value"], false, "{}", env.body);

    // A taken name, a bad name, an unknown field: refused, nothing made.
    for (body, status) in [
        (json!({"name": "qa"}), 409),
        (json!({"name": ""}), 422),
        (json!({"name": "qa2", "settings": {"x": 1}}), 422),
    ] {
        let refused = lead
            .send(
                "post",
                &format!("/api/v1/instances/{dev}/duplicate"),
                Some(body.clone()),
                &[],
            )
            .await;
        assert_eq!(refused.status, status, "{body}: {}", refused.body);
    }
    // Another team's token cannot copy this team's instance.
    let theirs = Api::new(&app, Some(app.token(other, "their-ci", "admin").await));
    let stolen = theirs
        .send(
            "post",
            &format!("/api/v1/instances/{dev}/duplicate"),
            Some(json!({"name": "stolen"})),
            &[],
        )
        .await;
    assert_eq!(stolen.status, 404, "{}", stolen.body);
    let list = lead.get(&format!("/api/v1/teams/{team}/instances")).await;
    assert_eq!(list.body["instances"].as_array().unwrap().len(), 2);

    // Into a pipeline where dev is not a stage: the copy is its last.
    let prod = app.instance(team, "prod", &[]).await;
    let (pipeline, _) = app.pipeline(team, "checkout", &[prod]).await;
    let staged = lead
        .send(
            "post",
            &format!("/api/v1/instances/{dev}/duplicate"),
            Some(json!({"name": "staging", "pipeline": pipeline.to_string()})),
            &[],
        )
        .await;
    assert_eq!(staged.status, 201, "{}", staged.body);
    let stages = app.store.pipeline(team, pipeline).await.unwrap().stages;
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[1].instance_name.as_str(), "staging");
    // Another team's pipeline, or a malformed id: 404, nothing made.
    let (their_pipeline, _) = app.pipeline(other, "theirs", &[]).await;
    for into in [their_pipeline.to_string(), "not-an-id".to_owned()] {
        let refused = lead
            .send(
                "post",
                &format!("/api/v1/instances/{dev}/duplicate"),
                Some(json!({"name": "sneaky", "pipeline": into})),
                &[],
            )
            .await;
        assert_eq!(refused.status, 404, "{into}: {}", refused.body);
    }
    let list = lead.get(&format!("/api/v1/teams/{team}/instances")).await;
    assert_eq!(list.body["instances"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn a_team_is_named_by_its_id_or_its_name_in_api_paths() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let other = app.team("beta").await;
    app.instance(team, "dev", &[]).await;
    let ci = Api::new(&app, Some(app.token(team, "ci", "viewer").await));
    let by_id = ci.get(&format!("/api/v1/teams/{team}/instances")).await;
    let by_name = ci.get("/api/v1/teams/payments/instances").await;
    assert_eq!(by_id.status, 200, "{}", by_id.body);
    assert_eq!(by_name.status, 200, "{}", by_name.body);
    assert_eq!(by_id.body, by_name.body);
    assert_eq!(by_name.body["instances"][0]["name"], "dev");
    let pipelines = ci.get("/api/v1/teams/payments/pipelines").await;
    assert_eq!(pipelines.status, 200, "{}", pipelines.body);
    // Another team, by name or id, does not exist for this token; nor does
    // a name that is no team's.
    for path in [
        "/api/v1/teams/beta/instances".to_owned(),
        format!("/api/v1/teams/{other}/instances"),
        "/api/v1/teams/nobody/instances".to_owned(),
        "/api/v1/teams/PAYMENTS/instances".to_owned(),
    ] {
        let answer = ci.get(&path).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert_eq!(answer.body["error"]["code"], "not_found");
    }
}

#[tokio::test]
async fn snapshots_are_listed_opened_downloaded_and_compared_without_values() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let other = app.team("beta").await;
    let dev = app
        .instance(team, "dev", &[("orders", "{\"v\": 1}"), ("billing", "[1]")])
        .await;
    let prod = app.instance(team, "prod", &[("legacy", "{}")]).await;
    let (pipeline, stages) = app.pipeline(team, "checkout", &[dev, prod]).await;
    let secret_value = "dev-only-value-93be";
    app.env(team, dev, "API_KEY", Some(secret_value)).await;
    let ci = Api::new(&app, Some(app.token(team, "ci", "lead").await));
    let played = ci
        .send(
            "post",
            &format!("/api/v1/pipelines/{pipeline}/stages/{}/promote", stages[0]),
            None,
            &[],
        )
        .await;
    assert_eq!(played.status, 201, "{}", played.body);
    let source = played.body["source_snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let backup = played.body["backup_snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Listed per instance, newest first.
    let listed = ci.get(&format!("/api/v1/instances/{prod}/snapshots")).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["snapshots"][0]["id"], backup.as_str());
    assert_eq!(listed.body["snapshots"][0]["reason"], "promotion_backup");
    // One snapshot: flows by hash and keys, never a value.
    let one = ci.get(&format!("/api/v1/snapshots/{source}")).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert!(one.body["flows"]["orders"].is_string(), "{}", one.body);
    assert_eq!(one.body["env_keys"], json!(["API_KEY"]));
    assert!(!one.body.to_string().contains(secret_value));
    // The download holds the documents, as a file.
    let res = reqwest::Client::new()
        .get(app.url(&format!("/api/v1/snapshots/{source}/download")))
        .bearer_auth(app.token(team, "ci-2", "viewer").await)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"snapshot-")
    );
    let file: Value = res.json().await.unwrap();
    assert_eq!(file["flows"]["orders"], json!({"v": 1}));
    assert_eq!(file["flows"]["billing"], json!([1]));
    assert!(!file.to_string().contains(secret_value));

    // Compare across instances: from prod as it was to dev as it shipped.
    let cmp = ci
        .get(&format!(
            "/api/v1/snapshots/compare?from={backup}&to={source}"
        ))
        .await;
    assert_eq!(cmp.status, 200, "{}", cmp.body);
    assert_eq!(cmp.body["equal"], false);
    let added: Vec<&str> = cmp.body["plan"]["flows_added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(added, ["billing", "orders"]);
    assert_eq!(cmp.body["plan"]["flows_removed"][0]["name"], "legacy");
    assert_eq!(cmp.body["plan"]["keys_to_add"], json!(["API_KEY"]));
    // Prod now matches what shipped.
    let after = ci.get(&format!("/api/v1/instances/{prod}/snapshots")).await;
    assert_eq!(after.body["snapshots"].as_array().unwrap().len(), 1);
    let same = ci
        .get(&format!(
            "/api/v1/snapshots/compare?from={source}&to={source}"
        ))
        .await;
    assert_eq!(same.body["equal"], true);

    // Bad and foreign input: clear errors, never another team's data.
    for (path, status, field) in [
        (
            format!("/api/v1/snapshots/compare?from={source}"),
            422,
            "to",
        ),
        (
            format!("/api/v1/snapshots/compare?from=x&to={source}"),
            422,
            "from",
        ),
        (
            format!("/api/v1/instances/{prod}/snapshots?limit=0"),
            422,
            "limit",
        ),
    ] {
        let answer = ci.get(&path).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        assert!(
            answer.body["error"]["fields"][field].is_string(),
            "{path}: {}",
            answer.body
        );
    }
    let theirs = Api::new(&app, Some(app.token(other, "their-ci", "admin").await));
    for path in [
        format!("/api/v1/snapshots/{source}"),
        format!("/api/v1/snapshots/{source}/download"),
        format!("/api/v1/snapshots/compare?from={source}&to={source}"),
        format!("/api/v1/instances/{dev}/snapshots"),
        format!("/api/v1/snapshots/{}", uuid::Uuid::new_v4()),
    ] {
        let answer = theirs.get(&path).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
    }
}

/// A change's body may come long after its headers: a token revoked in
/// between does not act (it was checked when the headers came, and is
/// checked again once the body is read).
#[tokio::test]
async fn a_token_revoked_while_its_body_is_on_the_way_does_not_act() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let secret = app.token(team, "ci", "lead").await;
    let token = app.store.tokens(team).await.unwrap()[0].id;
    let body = r#"{"name": "sent-after-the-revoke"}"#;
    let host = app
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut socket = tokio::net::TcpStream::connect(&host).await.unwrap();
    socket
        .write_all(
            format!(
                "POST /api/v1/teams/{team}/instances HTTP/1.1\r\nHost: {host}\r\n\
                 Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.store
        .revoke_token(team, token, &stagehand_store::Actor::system())
        .await
        .unwrap();
    socket.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        app.store.instances(team).await.unwrap().is_empty(),
        "nothing made"
    );
    app.stop().await;
}
