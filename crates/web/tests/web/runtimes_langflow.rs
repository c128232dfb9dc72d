//! Connected Langflow instances end to end, on SQLite and PostgreSQL: the
//! server drives the two shared real Langflow servers (dev and prod, one
//! fresh Langflow user on each per test) through Stagehand's API only;
//! Langflow is called directly only to set up and to check, as someone in
//! its editor would. Play ships dev's flow into prod, where it runs with
//! prod's own variable; prod's variables are never written; an edit in
//! prod is drift, refused until overwritten; an edit racing the deploy is
//! refused by Langflow's `If-Match` and fails the promotion.

use crate::harness::{Api, Backend, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stagehand_runtime::testing::RecordingProxy;
use stagehand_runtime::testing::langflow::{Server, Tenant, new_flow_id};
use stagehand_web::WebConfig;

const DEV_GREETING: &str = "dev-greeting-5e1c07";
const DEV_SECRET: &str = "dev-secret-93ab4e";
const PROD_GREETING: &str = "prod-greeting-b27d40";
const PROD_SECRET: &str = "prod-secret-6f18c2";

/// The flow as it reads on `tenant` now, with its description set to
/// `description`: an edit as the Langflow editor makes one. Langflow's
/// version token does not move (only a graph edit moves it).
async fn edit_flow(tenant: &Tenant, id: &str, description: &str) {
    let mut flow = tenant.flow(id).await;
    flow["description"] = json!(description);
    tenant.put_flow(id, &flow).await;
}

/// A graph edit in the Langflow editor: the output node moved to `y`.
/// Langflow rotates the flow's version token.
async fn move_output_node(tenant: &Tenant, id: &str, y: i64) {
    let mut flow = tenant.flow(id).await;
    flow["data"]["nodes"][1]["position"]["y"] = json!(y);
    tenant.put_flow(id, &flow).await;
}

/// A variable list reduced to what a user sees: name, type, value
/// (Langflow never returns a Credential's).
fn visible(variables: &[Value]) -> Vec<(String, String, Value)> {
    variables
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                v["type"].as_str().unwrap().to_owned(),
                v["value"].clone(),
            )
        })
        .collect()
}

async fn langflow_pipeline_scenario(backend: Backend) {
    // Missing servers fail here, before anything else is started.
    let (dev_server, prod_server) = (Server::from_env("DEV"), Server::from_env("PROD"));
    let (dev, prod) = tokio::join!(dev_server.tenant(), prod_server.tenant());
    dev.variable("GREETING", "Generic", DEV_GREETING).await;
    dev.variable("DEV_TOKEN", "Credential", DEV_SECRET).await;
    prod.variable("GREETING", "Generic", PROD_GREETING).await;
    prod.variable("PROD_TOKEN", "Credential", PROD_SECRET).await;
    let greet = new_flow_id();
    dev.put_flow(&greet, &dev.greeting_flow("greet", "GREETING").await)
        .await;
    assert_eq!(dev.run(&greet).await, DEV_GREETING);
    let prod_variables = prod.variables().await;
    assert_eq!(
        visible(&prod_variables),
        vec![
            ("GREETING".into(), "Generic".into(), json!(PROD_GREETING)),
            ("PROD_TOKEN".into(), "Credential".into(), Value::Null),
        ]
    );
    // Everything Stagehand sends prod goes through this proxy.
    let proxy = RecordingProxy::start(prod.url()).await;

    let app = spawn_app_with(backend, WebConfig::default()).await;
    let api = Api::new(&app);
    let team = app.team("agents").await;
    let admin = app.token(team, "platform-bot", "admin").await;
    let lead = app.token(team, "ci", "lead").await;
    let dev_id = app.instance(team, "dev", &[]).await;
    let prod_id = app.instance(team, "prod", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "main", &[dev_id, prod_id]).await;
    let play = format!("/pipelines/{pipeline}/stages/{}/promote", stages[0]);
    let runtime_of = |id| format!("/instances/{id}/runtime");

    // An admin connects both; the answer never holds the key.
    for (id, url, key) in [
        (dev_id, dev.url().to_owned(), dev.key()),
        (prod_id, proxy.url().to_owned(), prod.key()),
    ] {
        let (s, body) = api
            .call(
                &admin,
                Method::PUT,
                &runtime_of(id),
                Some(json!({"kind": "langflow", "url": url,
                    "auth": {"type": "api_key", "key": key}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert!(!body.to_string().contains(key), "{body}");
    }
    let (s, body) = api
        .call(
            &admin,
            Method::POST,
            &format!("{}/test", runtime_of(prod_id)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = api
        .call(
            &admin,
            Method::POST,
            &format!("/instances/{prod_id}/pull"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, body) = api
        .call(&lead, Method::GET, &runtime_of(prod_id), None)
        .await;
    assert_eq!(body["state"], "in_sync", "{body}");

    // A lead plays dev → prod: the flow runs on prod with prod's value.
    let (s, promoted) = api.call(&lead, Method::POST, &play, None).await;
    assert_eq!(s, StatusCode::CREATED, "{promoted}");
    assert_eq!(promoted["status"], "applied", "{promoted}");
    assert_eq!(prod.run(&greet).await, PROD_GREETING);
    assert_eq!(prod.flow_ids().await, vec![greet.clone()]);
    assert_eq!(
        prod.variables().await,
        prod_variables,
        "prod's variables are untouched"
    );
    let prod_env = api.value_keys(&lead, prod_id).await;
    for (key, has_value) in [
        ("GREETING", true),
        ("PROD_TOKEN", true),
        ("DEV_TOKEN", false),
    ] {
        assert!(
            prod_env.contains(&(key.to_owned(), has_value)),
            "{key} should have a value: {has_value}; prod's env is {prod_env:?}"
        );
    }
    let (_, body) = api
        .call(&lead, Method::GET, &runtime_of(prod_id), None)
        .await;
    assert_eq!(body["state"], "in_sync", "{body}");
    assert_eq!(body["revision"], promoted["runtime_revision"], "{body}");

    // Someone edits the prod flow in Langflow: drift, seen and refused.
    edit_flow(&prod, &greet, "hotfix made on prod").await;
    let (_, body) = api
        .call(&lead, Method::GET, &runtime_of(prod_id), None)
        .await;
    assert_eq!(body["state"], "drifted", "{body}");
    edit_flow(&dev, &greet, "v2").await;
    let (s, body) = api.call(&lead, Method::POST, &play, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "drifted", "{body}");
    assert_eq!(
        prod.flow(&greet).await["description"],
        "hotfix made on prod"
    );

    // Choosing to overwrite ships v2.
    let (s, overwrite) = api
        .call(
            &lead,
            Method::POST,
            &play,
            Some(json!({"overwrite_drift": true})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{overwrite}");
    assert_eq!(overwrite["status"], "applied", "{overwrite}");
    assert_eq!(overwrite["overwrite_drift"], true, "{overwrite}");
    assert_eq!(prod.flow(&greet).await["description"], "v2");
    assert_eq!(prod.run(&greet).await, PROD_GREETING);
    let (_, body) = api
        .call(&lead, Method::GET, &runtime_of(prod_id), None)
        .await;
    assert_eq!(body["state"], "in_sync", "{body}");

    // A graph edit lands in prod after Stagehand's drift check and its own
    // re-read, while its write is on the way: the proxy holds the write
    // until the edit is made. Langflow refuses the stale If-Match, and the
    // promotion fails saying so; the edit stands. (Langflow's If-Match
    // covers the graph only: a rename racing the write would not be
    // caught, by Langflow's design.)
    edit_flow(&dev, &greet, "v3").await;
    let mut held = proxy.hold_next("PUT", &format!("/api/v1/flows/{greet}"));
    let race = async {
        held.reached().await;
        move_output_node(&prod, &greet, -50).await;
        held.release();
    };
    let ((s, raced), ()) = tokio::join!(api.call(&lead, Method::POST, &play, None), race);
    assert_eq!(s, StatusCode::CREATED, "{raced}");
    assert_eq!(raced["status"], "failed", "{raced}");
    let error = raced["runtime_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("edited") && error.contains(&greet),
        "{raced}"
    );
    assert!(error.contains("nothing was deployed"), "{raced}");
    let raced_flow = prod.flow(&greet).await;
    assert_eq!(raced_flow["description"], "v2", "nothing of v3 landed");
    assert_eq!(raced_flow["data"]["nodes"][1]["position"]["y"], -50);
    let put_with_if_match = proxy
        .requests()
        .into_iter()
        .any(|r| r.method == "PUT" && r.headers.iter().any(|(n, _)| n == "if-match"));
    assert!(put_with_if_match, "no guarded write reached prod");
    let (_, body) = api
        .call(&lead, Method::GET, &runtime_of(prod_id), None)
        .await;
    assert_eq!(body["state"], "drifted", "{body}");

    // Nothing of dev's reached prod, and prod's variables were only read.
    let sent = proxy.requests();
    assert!(
        sent.iter().any(|r| r.method == "PUT"),
        "no flow was written"
    );
    for request in &sent {
        if request.path.starts_with("/api/v1/variables") {
            assert_eq!(request.method, "GET", "{} {}", request.method, request.path);
        }
        let headers = format!("{:?}", request.headers);
        for secret in [DEV_GREETING, DEV_SECRET, dev.key()] {
            assert!(
                !request.body_text().contains(secret) && !headers.contains(secret),
                "{} {} sent {secret}",
                request.method,
                request.path
            );
        }
    }
    assert_eq!(prod.variables().await, prod_variables);

    // Every step is in the audit chain, which verifies; no value in it.
    let (_, audit) = api
        .call(&admin, Method::GET, "/audit?limit=200", None)
        .await;
    let text = audit.to_string();
    for kind in [
        "runtime.connected",
        "instance.pulled",
        "promotion.deploying",
        "promotion.applied",
        "promotion.failed",
    ] {
        assert!(text.contains(kind), "no {kind} in the audit log");
    }
    for secret in [
        DEV_GREETING,
        DEV_SECRET,
        PROD_GREETING,
        PROD_SECRET,
        dev.key(),
        prod.key(),
    ] {
        assert!(!text.contains(secret), "the audit log holds a secret");
    }
    let (_, verify) = api.call(&admin, Method::GET, "/audit/verify", None).await;
    assert_eq!(verify["intact"], true, "{verify}");

    app.stop().await;
    drop(proxy);
    dev_server.remove(dev).await;
    prod_server.remove(prod).await;
}

#[tokio::test]
async fn a_langflow_pipeline_on_sqlite() {
    langflow_pipeline_scenario(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_langflow_pipeline_on_postgres() {
    langflow_pipeline_scenario(Backend::Postgres).await;
}
