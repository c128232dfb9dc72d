//! Connected instances end to end: the server drives two real Node-RED
//! processes (dev and prod) through the API, on SQLite and PostgreSQL.
//! Play deploys dev's flows into prod with prod's own values and
//! credentials; a direct change in prod is drift, refused until overwritten;
//! a rollback deploys the backup; a dead prod fails the promotion cleanly.

use crate::harness::{Api, Backend, TestApp, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};
use stagehand_domain::BuiltinRole;
use stagehand_runtime::testing::{NodeRedProcess, RecordingProxy};
use stagehand_web::WebConfig;
use std::time::{Duration, Instant};

const DEV_GREETING: &str = "dev-value-7f3a91";
const DEV_PASSWORD: &str = "dev-password-0c2d55";
const PROD_GREETING: &str = "prod-value-4be812";
const PROD_ONLY: &str = "prod-only-value-a1c9";

/// A greeter tab: `GET /greet` answers `prefix` + GREETING, beside an `http
/// request` node with basic-auth credentials.
fn greeter(prefix: &str, env: Value, user: &str, password: &str) -> Value {
    json!({"flows": [
        {"id": "tab1", "type": "tab", "label": "Greeter", "env": env},
        {"id": "in1", "type": "http in", "z": "tab1", "url": "/greet", "method": "get",
         "upload": false, "wires": [["fn1"]]},
        {"id": "fn1", "type": "function", "z": "tab1", "outputs": 1, "wires": [["out1"]],
         "func": format!("msg.payload = {prefix:?} + env.get(\"GREETING\");\nreturn msg;")},
        {"id": "out1", "type": "http response", "z": "tab1", "statusCode": "", "headers": {}, "wires": []},
        {"id": "req1", "type": "http request", "z": "tab1", "method": "GET", "ret": "txt",
         "url": "http://127.0.0.1:9/unused", "authType": "basic", "wires": [[]],
         "credentials": {"user": user, "password": password}}
    ]})
}

fn dev_flows(prefix: &str) -> Value {
    greeter(
        prefix,
        json!([{"name": "GREETING", "value": DEV_GREETING, "type": "str"}]),
        "dev-user",
        DEV_PASSWORD,
    )
}

async fn wait_for_greeting(nr: &NodeRedProcess, want: &str) {
    let http = reqwest::Client::new();
    let url = format!("{}greet", nr.url());
    let began = Instant::now();
    let mut last = String::new();
    while began.elapsed() < Duration::from_secs(15) {
        if let Ok(response) = http.get(&url).send().await {
            last = response.text().await.unwrap_or_default();
            if last == want {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("GET /greet answered {last:?}, not {want:?}");
}

async fn connected_pipeline_scenario(backend: Backend) {
    let (dev, prod) = tokio::join!(NodeRedProcess::start(), NodeRedProcess::start());
    dev.deploy_raw(&dev_flows("v1 ")).await;
    prod.deploy_raw(&greeter(
        "old ",
        json!([
            {"name": "GREETING", "value": PROD_GREETING, "type": "str"},
            {"name": "PROD_ONLY", "value": PROD_ONLY, "type": "str"}
        ]),
        "prod-user",
        "prod-password-91f0",
    ))
    .await;
    wait_for_greeting(&prod, &format!("old {PROD_GREETING}")).await;
    // Everything Stagehand sends prod goes through this proxy.
    let proxy = RecordingProxy::start(prod.url()).await;

    let app = spawn_app_with(backend, WebConfig::default()).await;
    let api = Api::new(&app);
    let team = app.team("payments").await;
    let admin = app.token(team, "platform-bot", "admin").await;
    let lead = app.token(team, "ci", "lead").await;
    let dev_id = app.instance(team, "dev", &[]).await;
    let prod_id = app.instance(team, "prod", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "main", &[dev_id, prod_id]).await;
    let put = reqwest::Method::PUT;
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    // A lead may not say where flows go; an admin may. The answer never
    // holds the credentials.
    let connect_dev = json!({"kind": "node-red", "url": dev.url(),
        "auth": {"type": "basic", "username": dev.username(), "password": dev.password()}});
    let (s, _) = api
        .call(
            &lead,
            put.clone(),
            &format!("/instances/{dev_id}/runtime"),
            Some(connect_dev.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, body) = api
        .call(
            &admin,
            put.clone(),
            &format!("/instances/{dev_id}/runtime"),
            Some(connect_dev),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(!body.to_string().contains(dev.password()), "{body}");
    let (s, body) = api
        .call(
            &admin,
            put.clone(),
            &format!("/instances/{prod_id}/runtime"),
            Some(json!({"kind": "node-red", "url": proxy.url(),
                "auth": {"type": "bearer", "token": prod.token()}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // Never pulled: Stagehand does not know what runs in prod yet, so a
    // play would be a blind overwrite.
    let (s, body) = api
        .call(
            &lead,
            get.clone(),
            &format!("/instances/{prod_id}/runtime"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "drifted", "{body}");
    let play = format!("/pipelines/{pipeline}/stages/{}/promote", stages[0]);
    let (s, body) = api.call(&lead, post.clone(), &play, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "drifted", "{body}");

    // Test connection, then pull prod: its values land in its own store.
    let (s, body) = api
        .call(
            &lead,
            post.clone(),
            &format!("/instances/{prod_id}/runtime/test"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = api
        .call(
            &lead,
            post.clone(),
            &format!("/instances/{prod_id}/pull"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, body) = api
        .call(
            &lead,
            get.clone(),
            &format!("/instances/{prod_id}/runtime"),
            None,
        )
        .await;
    assert_eq!(body["state"], "in_sync", "{body}");
    let prod_version_before = app.store.instance(team, prod_id).await.unwrap().version;

    // Play: dev is pulled first, then deployed into prod with prod's values.
    let (s, promoted) = api.call(&lead, post.clone(), &play, None).await;
    assert_eq!(s, StatusCode::CREATED, "{promoted}");
    assert_eq!(promoted["status"], "applied", "{promoted}");
    assert!(promoted["runtime_revision"].is_string(), "{promoted}");
    wait_for_greeting(&prod, &format!("v1 {PROD_GREETING}")).await;
    let creds = prod.get_raw("credentials/http-request/req1").await;
    assert_eq!(creds["user"], "prod-user", "{creds}");
    assert_eq!(creds["has_password"], true, "{creds}");
    let prod_env = api.value_keys(&lead, prod_id).await;
    assert!(
        prod_env.iter().any(|(k, has)| k == "PROD_ONLY" && *has),
        "{prod_env:?}"
    );
    assert!(
        prod_env.iter().any(|(k, has)| k == "GREETING" && *has),
        "{prod_env:?}"
    );
    assert!(app.store.instance(team, prod_id).await.unwrap().version > prod_version_before);
    let (_, body) = api
        .call(
            &lead,
            get.clone(),
            &format!("/instances/{prod_id}/runtime"),
            None,
        )
        .await;
    assert_eq!(body["state"], "in_sync", "{body}");
    assert_eq!(body["revision"], promoted["runtime_revision"], "{body}");

    // Someone deploys a hotfix straight into prod: drift, seen and refused.
    prod.deploy_raw(&greeter(
        "hotfix ",
        json!([{"name": "GREETING", "value": PROD_GREETING, "type": "str"}]),
        "prod-user",
        "prod-password-91f0",
    ))
    .await;
    wait_for_greeting(&prod, &format!("hotfix {PROD_GREETING}")).await;
    let (_, body) = api
        .call(
            &lead,
            get.clone(),
            &format!("/instances/{prod_id}/runtime"),
            None,
        )
        .await;
    assert_eq!(body["state"], "drifted", "{body}");
    dev.deploy_raw(&dev_flows("v2 ")).await;
    let (s, body) = api.call(&lead, post.clone(), &play, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "drifted", "{body}");
    wait_for_greeting(&prod, &format!("hotfix {PROD_GREETING}")).await;
    // The pipeline page shows it too.
    let page = app_page(&app, team).await;
    assert!(page.contains("drifted"), "pipeline page has no drift");
    // A lead's preview says so and offers both ways out: pull prod first
    // (and come back to the preview), or overwrite it.
    let lena = app.member(team, "lena", BuiltinRole::Lead).await;
    let preview_path = format!(
        "/teams/{team}/pipelines/{pipeline}/stages/{}/preview",
        stages[0]
    );
    let preview = lena.get(&preview_path).await;
    preview.assert_ok();
    assert!(
        preview.body.contains("name=\"overwrite_drift\""),
        "no overwrite choice"
    );
    assert!(preview.body.contains("Pull prod first"), "no pull choice");
    let pulled = lena
        .post(
            &format!("/teams/{team}/instances/{dev_id}/pull"),
            &[("next", preview_path.as_str())],
        )
        .await;
    pulled.assert_redirect_to(&preview_path);
    let elsewhere = lena
        .post(
            &format!("/teams/{team}/instances/{dev_id}/pull"),
            &[("next", "https://evil.example/")],
        )
        .await;
    elsewhere.assert_redirect_to(&format!("/teams/{team}/instances/{dev_id}"));
    // A confirm from a preview of an older dev is refused: dev is pulled,
    // and the lead reviews what would really ship.
    let stale = lena
        .post(
            &format!(
                "/teams/{team}/pipelines/{pipeline}/stages/{}/promote",
                stages[0]
            ),
            &[("expected_source_version", "1"), ("overwrite_drift", "on")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    assert!(stale.body.contains("since your preview"), "{}", stale.body);

    // Choosing to overwrite ships v2, and the audit log says so.
    let (s, overwrite) = api
        .call(
            &lead,
            post.clone(),
            &play,
            Some(json!({"overwrite_drift": true})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{overwrite}");
    assert_eq!(overwrite["status"], "applied", "{overwrite}");
    assert_eq!(overwrite["overwrite_drift"], true, "{overwrite}");
    wait_for_greeting(&prod, &format!("v2 {PROD_GREETING}")).await;

    // The overwrite pulled prod first: its backup is the hotfix, and the
    // rollback deploys it back.
    let (s, rolled) = api
        .call(
            &lead,
            post.clone(),
            &format!("/promotions/{}/rollback", overwrite["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{rolled}");
    assert_eq!(rolled["status"], "applied", "{rolled}");
    assert_eq!(rolled["rollback_of"], overwrite["id"], "{rolled}");
    wait_for_greeting(&prod, &format!("hotfix {PROD_GREETING}")).await;
    let (_, original) = api
        .call(
            &lead,
            get.clone(),
            &format!("/promotions/{}", overwrite["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(original["status"], "rolled_back", "{original}");

    // A restore of prod to a snapshot of its own (the one the rollback
    // took, of v2) deploys that snapshot, with prod's own values.
    let (s, restored) = api
        .call(
            &lead,
            post.clone(),
            &format!("/pipelines/{pipeline}/stages/{}/restore", stages[1]),
            Some(json!({"snapshot": rolled["backup_snapshot_id"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{restored}");
    assert_eq!(restored["status"], "applied", "{restored}");
    assert_eq!(restored["source_stage_id"], restored["target_stage_id"]);
    wait_for_greeting(&prod, &format!("v2 {PROD_GREETING}")).await;

    // No dev value and no dev credential ever reached prod.
    let sent = proxy.requests();
    assert!(
        sent.iter()
            .any(|r| r.method == "POST" && r.path == "/flows")
    );
    for request in &sent {
        let body = request.body_text();
        for secret in [DEV_GREETING, DEV_PASSWORD, "dev-user", dev.password()] {
            assert!(
                !body.contains(secret),
                "{} {} sent {secret}",
                request.method,
                request.path
            );
        }
    }

    // Prod goes down: the promotion fails cleanly and prod is unchanged.
    let before = app.store.instance(team, prod_id).await.unwrap();
    let flows_before = app.store.flows(team, prod_id).await.unwrap();
    drop(proxy);
    let mut prod = prod;
    prod.kill();
    dev.deploy_raw(&dev_flows("v3 ")).await;
    let (s, failed) = api.call(&lead, post.clone(), &play, None).await;
    assert_eq!(s, StatusCode::CREATED, "{failed}");
    assert_eq!(failed["status"], "failed", "{failed}");
    // Prod's proxy answers 502 for it; without the proxy, "unreachable".
    let why = failed["runtime_error"].as_str().unwrap();
    assert!(
        why.contains("502") || why.contains("unreachable"),
        "{failed}"
    );
    let after = app.store.instance(team, prod_id).await.unwrap();
    assert_eq!(after.version, before.version);
    assert_eq!(
        app.store.flows(team, prod_id).await.unwrap(),
        flows_before,
        "prod's flows in Stagehand are what last ran there"
    );

    // Every step is in the audit chain, which verifies; no value in it.
    let (_, audit) = api
        .call(&admin, get.clone(), "/audit?limit=200", None)
        .await;
    let text = audit.to_string();
    for kind in [
        "runtime.connected",
        "instance.pulled",
        "promotion.deploying",
        "promotion.applied",
        "promotion.failed",
        "promotion.rolled_back",
    ] {
        assert!(text.contains(kind), "no {kind} in the audit log");
    }
    for secret in [DEV_GREETING, PROD_GREETING, PROD_ONLY, DEV_PASSWORD] {
        assert!(!text.contains(secret), "the audit log holds {secret}");
    }
    let (_, verify) = api.call(&admin, get.clone(), "/audit/verify", None).await;
    assert_eq!(verify["intact"], true, "{verify}");
    drop(dev);
    app.stop().await;
}

/// The pipeline page, as a viewer sees it.
async fn app_page(app: &TestApp, team: stagehand_domain::TeamId) -> String {
    let viewer = app.member(team, "vera", BuiltinRole::Viewer).await;
    let pipelines = app.store.pipelines(team).await.unwrap();
    let page = viewer
        .get(&format!("/teams/{team}/pipelines/{}", pipelines[0].id))
        .await;
    page.assert_ok();
    page.body
}

#[tokio::test]
async fn a_connected_pipeline_on_sqlite() {
    connected_pipeline_scenario(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_connected_pipeline_on_postgres() {
    connected_pipeline_scenario(Backend::Postgres).await;
}

/// Reviewers approve what they saw: into a protected target Stagehand never
/// pulled (or that drifted since), an approval is refused and nothing is
/// deployed; once someone who manages protection pulls it, the approval
/// deploys.
#[tokio::test]
async fn an_approval_never_deploys_blind_into_a_protected_runtime() {
    let (dev, prod) = tokio::join!(NodeRedProcess::start(), NodeRedProcess::start());
    dev.deploy_raw(&dev_flows("v1 ")).await;
    // Prod runs something Stagehand has never seen.
    prod.deploy_raw(&greeter(
        "before ",
        json!([{"name": "GREETING", "value": PROD_GREETING, "type": "str"}]),
        "prod-user",
        "prod-password-3e",
    ))
    .await;
    let app = spawn_app_with(Backend::Sqlite, WebConfig::default()).await;
    let api = Api::new(&app);
    let team = app.team("payments").await;
    let admin = app.token(team, "admin-bot", "admin").await;
    let lead = app.token(team, "ci", "lead").await;
    let dev_id = app.instance(team, "dev", &[]).await;
    let prod_id = app.instance(team, "prod", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "main", &[dev_id, prod_id]).await;
    let (put, post) = (reqwest::Method::PUT, reqwest::Method::POST);
    for (id, nr) in [(dev_id, &dev), (prod_id, &prod)] {
        let (s, body) = api
            .call(
                &admin,
                put.clone(),
                &format!("/instances/{id}/runtime"),
                Some(json!({"kind": "node-red", "url": nr.url(),
                    "auth": {"type": "bearer", "token": nr.token()}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let (s, body) = api
        .call(
            &admin,
            put.clone(),
            &format!("/instances/{prod_id}/protection"),
            Some(json!({"required_approvals": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let play = format!("/pipelines/{pipeline}/stages/{}/promote", stages[0]);
    let pull = format!("/instances/{prod_id}/pull");
    // Never pulled: even a request is refused (it could only be approved
    // blind).
    let (s, body) = api.call(&lead, post.clone(), &play, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "drifted", "{body}");
    // A lead may not pull a protected instance (it replaces its values).
    let (s, body) = api.call(&lead, post.clone(), &pull, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "protected", "{body}");
    let (s, body) = api.call(&admin, post.clone(), &pull, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, requested) = api.call(&lead, post.clone(), &play, None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{requested}");
    let id = requested["id"].as_str().unwrap().to_owned();

    // Someone changes prod directly while the request waits: the approval
    // is refused, and nothing reaches prod.
    let prod_rev = prod
        .deploy_raw(&greeter(
            "precious ",
            json!([{"name": "GREETING", "value": PROD_GREETING, "type": "str"}]),
            "prod-user",
            "prod-password-3e",
        ))
        .await;
    // Approvals are people's: an admin's own token.
    let ana = app.user("ana", false).await;
    app.bind(team, ana, BuiltinRole::Admin).await;
    let reviewer = app.own_token(team, ana, "ana-cli", "admin").await;
    let approve = format!("/promotions/{id}/approve");
    let (s, body) = api.call(&reviewer, post.clone(), &approve, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "drifted", "{body}");
    let (_, rev_now) = prod.flows_raw().await;
    assert_eq!(rev_now, prod_rev, "nothing reached prod");
    wait_for_greeting(&prod, &format!("precious {PROD_GREETING}")).await;
    let (_, still) = api
        .call(
            &admin,
            reqwest::Method::GET,
            &format!("/promotions/{id}"),
            None,
        )
        .await;
    assert_eq!(still["status"], "pending_approval", "{still}");

    // Pulled by someone who manages protection, the approval deploys.
    let (s, body) = api.call(&admin, post.clone(), &pull, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, applied) = api.call(&reviewer, post.clone(), &approve, None).await;
    assert_eq!(s, StatusCode::OK, "{applied}");
    assert_eq!(applied["status"], "applied", "{applied}");
    wait_for_greeting(&prod, &format!("v1 {PROD_GREETING}")).await;
    app.stop().await;
}

/// A runtime (or a proxy, or a wrong URL) that echoes the request in its
/// errors never gets a credential or a value onto a page, into an answer
/// or into the audit log.
#[tokio::test]
async fn a_runtime_echoing_requests_in_its_errors_leaks_nothing() {
    // The request's body first, then its headers.
    let echo = fake_runtime(|head, sent| {
        (
            "400 Bad Request",
            json!({"message": format!("bad request: {sent} {head}")}),
        )
    })
    .await;
    let app = spawn_app_with(Backend::Sqlite, WebConfig::default()).await;
    let api = Api::new(&app);
    let team = app.team("payments").await;
    let admin = app.token(team, "admin-bot", "admin").await;
    let viewer = app.token(team, "auditor", "viewer").await;
    let qa = app.instance(team, "qa", &[]).await;
    const PASSWORD: &str = "echoed-password-8c1f";
    let (s, body) = api
        .call(
            &admin,
            reqwest::Method::PUT,
            &format!("/instances/{qa}/runtime"),
            Some(json!({"kind": "node-red", "url": echo,
                "auth": {"type": "basic", "username": "admin", "password": PASSWORD}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, test) = api
        .call(
            &admin,
            reqwest::Method::POST,
            &format!("/instances/{qa}/runtime/test"),
            None,
        )
        .await;
    let (_, status) = api
        .call(
            &viewer,
            reqwest::Method::GET,
            &format!("/instances/{qa}/runtime"),
            None,
        )
        .await;
    let (_, pull) = api
        .call(
            &admin,
            reqwest::Method::POST,
            &format!("/instances/{qa}/pull"),
            None,
        )
        .await;
    let vera = app.member(team, "vera", BuiltinRole::Viewer).await;
    let page = vera.get(&format!("/teams/{team}/instances/{qa}")).await;
    let (_, audit) = api
        .call(&admin, reqwest::Method::GET, "/audit?limit=100", None)
        .await;
    for (what, text) in [
        ("test", test.to_string()),
        ("status", status.to_string()),
        ("pull", pull.to_string()),
        ("page", page.body.clone()),
        ("audit", audit.to_string()),
    ] {
        assert!(
            !text.contains(PASSWORD),
            "{what} leaks the password: {text}"
        );
    }
    assert!(
        status.to_string().contains("[redacted]") || test.to_string().contains("[redacted]"),
        "the echo was not seen at all: {status} {test}"
    );
    app.stop().await;
}

/// The same, on a deploy: a stand-in for Node-RED (a fake peer is enough
/// here: what is tested is Stagehand's redaction, not Node-RED) issues a
/// session token for the username and password, serves empty flows, and
/// answers the deploy with 400 echoing the env values it was sent and the
/// `Authorization` header, mangled as a runtime might: a value with a
/// newline, a value after a long message (shortening must not cut it in
/// half past recognition), the session token it issued itself.
#[tokio::test]
async fn a_deploy_echoed_back_in_an_error_shows_no_value_and_no_session() {
    const SESSION: &str = "NRSESSION-abcdefghijklmnop";
    let url = fake_runtime(|head, sent| {
        if head.starts_with("POST /auth/token") {
            (
                "200 OK",
                json!({"access_token": SESSION, "expires_in": 3600, "token_type": "Bearer"}),
            )
        } else if head.starts_with("GET /flows") {
            ("200 OK", json!({"rev": "r1", "flows": []}))
        } else {
            // Every env value the deploy carried, as the runtime
            // might print them, then the credentials.
            let flows: Value = serde_json::from_str(sent).unwrap_or(Value::Null);
            let values: Vec<String> = flows["flows"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|n| n["env"].as_array().cloned().unwrap_or_default())
                .filter_map(|e| e["value"].as_str().map(str::to_owned))
                .collect();
            let auth = head
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                .unwrap_or("");
            (
                "400 Bad Request",
                json!({"message": format!(
                    "{} | {} | {}",
                    values.join(" | "),
                    values.join("").replace('\n', ""),
                    auth
                )}),
            )
        }
    })
    .await;
    let app = spawn_app_with(Backend::Sqlite, WebConfig::default()).await;
    let api = Api::new(&app);
    let team = app.team("payments").await;
    let admin = app.token(team, "admin-bot", "admin").await;
    let viewer = app.token(team, "auditor", "viewer").await;
    let dev = app
        .instance(team, "dev", &[("tab-t1", r#"[{"id":"t1","type":"tab","label":"orders","env":[{"name":"MULTI","type":"str","value":""},{"name":"LONG","type":"str","value":""}]}]"#)])
        .await;
    let qa = app.instance(team, "qa", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "p", &[dev, qa]).await;
    const MULTI: &str = "SECRETVAL-line1\nSECRETVAL-line2";
    let long = format!("{}SECRETVAL-qa-longval", "x".repeat(178));
    let (s, body) = api
        .call(
            &admin,
            reqwest::Method::PUT,
            &format!("/instances/{qa}/runtime"),
            Some(json!({"kind": "node-red", "url": url,
                "auth": {"type": "basic", "username": "admin", "password": "pw-8c1f-long"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = api
        .call(
            &admin,
            reqwest::Method::POST,
            &format!("/instances/{qa}/pull"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    for (key, value) in [("MULTI", MULTI), ("LONG", long.as_str())] {
        let (s, body) = api
            .call(
                &admin,
                reqwest::Method::PUT,
                &format!("/instances/{qa}/env/{key}"),
                Some(json!({ "value": value })),
            )
            .await;
        assert!(s.is_success(), "{s} {body}");
    }
    let (_, played) = api
        .call(
            &admin,
            reqwest::Method::POST,
            &format!("/pipelines/{pipeline}/stages/{}/promote", stages[0]),
            Some(json!({})),
        )
        .await;
    let id = played["id"].as_str().map(str::to_owned).unwrap_or_default();
    let (_, promotion) = api
        .call(
            &viewer,
            reqwest::Method::GET,
            &format!("/promotions/{id}"),
            None,
        )
        .await;
    assert_eq!(promotion["status"], "failed", "{played} {promotion}");
    let (_, audit) = api
        .call(&viewer, reqwest::Method::GET, "/audit?limit=100", None)
        .await;
    let vera = app.member(team, "vera", BuiltinRole::Viewer).await;
    let page = vera
        .get(&format!("/teams/{team}/promotions/{id}"))
        .await
        .body;
    let log = vera.get(&format!("/teams/{team}/audit")).await.body;
    for (what, text) in [
        ("play", played.to_string()),
        ("promotion", promotion.to_string()),
        ("audit", audit.to_string()),
        ("page", page),
        ("audit page", log),
    ] {
        for secret in ["SECRETVAL", SESSION, "pw-8c1f", "YWRtaW46"] {
            assert!(!text.contains(secret), "{what} shows {secret}: {text}");
        }
    }
    assert!(
        promotion.to_string().contains("[redacted]"),
        "the echo was not seen at all: {promotion}"
    );
    app.stop().await;
}

/// A stand-in for a runtime on loopback: each request (read whole, by its
/// `content-length`) is answered with what `respond` makes of its head and
/// body: a status line's tail and a JSON body. Its base URL.
async fn fake_runtime(respond: fn(&str, &str) -> (&'static str, Value)) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let want = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= want {
                            break;
                        }
                    }
                }
                let request = String::from_utf8_lossy(&request).to_string();
                let (head, sent) = request.split_once("\r\n\r\n").unwrap_or((&request, ""));
                let (status, body) = respond(head, sent);
                let body = body.to_string();
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}
