//! Deploy benchmark: play dev → prod between two real Node-RED processes
//! through Stagehand's API, on a durable PostgreSQL (run
//! `scripts/bench-deploy.sh`, which provides both).
//!
//! For a typical instance (50 flows, 40 env keys, 5 flows changed per
//! round) and a large one (2,000 flows, ~20 MB), each round:
//! - changes 5 flows and the version answered by dev's `GET /version`,
//!   and waits until dev serves it (a lead tries dev before promoting);
//! - **play**: `POST …/promote` until it answers, and until prod's
//!   `GET /version` answers the new version (with prod's own value);
//! - **direct**: the same flows `POST /flows`ed straight to prod, as a
//!   script without Stagehand would (prod's flows as deployed, re-sent);
//! - Stagehand's share = play answer − direct POST.
//!
//! Medians of the rounds are printed; the README quotes them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use stagehand_runtime::testing::NodeRedProcess;
use stagehand_store::testing::TestDatabase;
use stagehand_web::{AppState, WebConfig};
use std::time::{Duration, Instant};

const ROUNDS: usize = 10;
const PROD_GREETING: &str = "prod-greeting";

/// An instance's flows: `tabs` tabs of `nodes_per_tab` function nodes whose
/// bodies are `padding` bytes, 40 env keys on the global config node (5
/// on the first tab), and the version endpoint on tab 0.
fn flows(tabs: usize, padding: usize, round: usize, greeting: &str) -> Value {
    let mut out = Vec::new();
    let global: Vec<Value> = (0..35)
        .map(|k| json!({"name": format!("KEY_{k:02}"), "value": format!("{greeting}-{k}"), "type": "str"}))
        .collect();
    out.push(json!({"id": "gc", "type": "global-config", "env": global, "modules": {}}));
    for t in 0..tabs {
        let id = format!("tab{t:04}");
        let mut tab = json!({"id": id, "type": "tab", "label": format!("Flow {t}")});
        if t == 0 {
            let mut env = vec![json!({"name": "GREETING", "value": greeting, "type": "str"})];
            env.extend((0..4).map(|k| json!({"name": format!("TAB_{k}"), "value": format!("{greeting}-t{k}"), "type": "str"})));
            tab["env"] = json!(env);
        }
        out.push(tab);
        if t == 0 {
            out.push(json!({"id": "in", "type": "http in", "z": id, "url": "/version", "method": "get", "upload": false, "wires": [["fn"]]}));
            out.push(json!({"id": "fn", "type": "function", "z": id, "outputs": 1, "wires": [["out"]],
                "func": format!("msg.payload = \"v{round} \" + env.get(\"GREETING\");\nreturn msg;")}));
            out.push(json!({"id": "out", "type": "http response", "z": id, "statusCode": "", "headers": {}, "wires": []}));
        }
        // Five flows change every round; the others stay.
        let changing = t > 0 && t <= 5;
        let suffix = if changing {
            format!(" round {round}")
        } else {
            String::new()
        };
        let body = format!("// {}{suffix}\nreturn msg;", "x".repeat(padding));
        out.push(json!({"id": format!("{id}-f"), "type": "function", "z": id, "outputs": 1, "wires": [[]], "func": body}));
    }
    json!(out)
}

async fn until_version(nr: &NodeRedProcess, want: &str, http: &reqwest::Client) {
    let url = format!("{}version", nr.url());
    let began = Instant::now();
    loop {
        if let Ok(r) = http.get(&url).send().await
            && r.status().is_success()
            && r.text().await.unwrap_or_default() == want
        {
            return;
        }
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "prod never answered {want}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run(label: &str, tabs: usize, padding: usize) {
    let (dev, prod) = tokio::join!(NodeRedProcess::start(), NodeRedProcess::start());
    let http = reqwest::Client::new();
    dev.deploy_raw(&json!({"flows": flows(tabs, padding, 0, "dev-greeting")}))
        .await;
    prod.deploy_raw(&json!({"flows": flows(tabs, padding, 0, PROD_GREETING)}))
        .await;
    let size = serde_json::to_vec(&flows(tabs, padding, 0, "x"))
        .unwrap()
        .len();

    let db = TestDatabase::postgres()
        .await
        .unwrap()
        .expect("DATABASE_URL: run scripts/bench-deploy.sh");
    let store = db.store.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(store.clone(), WebConfig::default());
    tokio::spawn(async move {
        stagehand_web::serve(listener, state, std::future::pending())
            .await
            .unwrap();
    });
    let actor = stagehand_store::Actor::system();
    let team = store
        .create_team(
            stagehand_domain::Name::parse("name", "bench").unwrap(),
            &actor,
        )
        .await
        .unwrap()
        .id;
    let secret = stagehand_web::auth::tokens::new_secret();
    store
        .create_token(
            stagehand_store::NewApiToken {
                team,
                name: stagehand_domain::Name::parse("name", "bench").unwrap(),
                secret_hash: stagehand_web::auth::tokens::hash_secret(&secret),
                user_id: None,
                role: "admin".into(),
                expires_at: None,
            },
            &actor,
        )
        .await
        .unwrap();
    let api = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{base}/api/v1{path}"))
            .bearer_auth(&secret);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status();
            let v: Value = res.json().await.unwrap_or(Value::Null);
            assert!(status.is_success(), "{status} {v}");
            v
        }
    };
    let post = reqwest::Method::POST;
    let mut ids = Vec::new();
    for name in ["dev", "prod"] {
        let i = api(
            post.clone(),
            format!("/teams/{team}/instances"),
            Some(json!({"name": name})),
        )
        .await;
        ids.push(i["id"].as_str().unwrap().to_owned());
    }
    let p = api(
        post.clone(),
        format!("/teams/{team}/pipelines"),
        Some(json!({"name": "main"})),
    )
    .await;
    let pipeline = p["id"].as_str().unwrap().to_owned();
    let mut stage = String::new();
    for id in &ids {
        let p = api(
            post.clone(),
            format!("/pipelines/{pipeline}/stages"),
            Some(json!({"instance": id})),
        )
        .await;
        stage = p["stages"][0]["id"].as_str().unwrap().to_owned();
    }
    for (id, nr) in ids.iter().zip([&dev, &prod]) {
        api(
            reqwest::Method::PUT,
            format!("/instances/{id}/runtime"),
            Some(json!({"kind": "node-red", "url": nr.url(), "auth": {"type": "bearer", "token": nr.token()}})),
        )
        .await;
    }
    api(post.clone(), format!("/instances/{}/pull", ids[1]), None).await;

    let (mut play_answer, mut play_serving, mut direct, mut share) =
        (vec![], vec![], vec![], vec![]);
    for round in 1..=ROUNDS {
        dev.deploy_raw(&json!({"flows": flows(tabs, padding, round, "dev-greeting")}))
            .await;
        // As a lead would: dev runs (and was tried) before it is promoted.
        until_version(&dev, &format!("v{round} dev-greeting"), &http).await;
        let began = Instant::now();
        let promoted = api(
            post.clone(),
            format!("/pipelines/{pipeline}/stages/{stage}/promote"),
            None,
        )
        .await;
        let answered = began.elapsed();
        assert_eq!(promoted["status"], "applied", "{promoted}");
        until_version(&prod, &format!("v{round} {PROD_GREETING}"), &http).await;
        let serving = began.elapsed();

        // The same flows, straight to prod's Admin API.
        let (deployed, _) = prod.flows_raw().await;
        let body = serde_json::to_vec(&json!({"flows": deployed})).unwrap();
        let began = Instant::now();
        let res = http
            .post(format!("{}flows", prod.url()))
            .bearer_auth(prod.token())
            .header("Node-RED-API-Version", "v2")
            .header("Node-RED-Deployment-Type", "full")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
        let post_took = began.elapsed();
        play_answer.push(ms(answered));
        play_serving.push(ms(serving));
        direct.push(ms(post_took));
        share.push(ms(answered) - ms(post_took));
        eprintln!(
            "{label} round {round}: play answered {:.1} ms, serving {:.1} ms; direct POST {:.1} ms",
            ms(answered),
            ms(serving),
            ms(post_took)
        );
    }
    println!(
        "{label} ({tabs} flows, {:.2} MB, 40 keys, 5 changed per round), medians of {ROUNDS}: \
         play answered {:.1} ms; prod serving the new version {:.1} ms after play; \
         direct POST /flows {:.1} ms; Stagehand's share {:.1} ms",
        size as f64 / 1e6,
        median(play_answer),
        median(play_serving),
        median(direct),
        median(share)
    );
    db.cleanup().await;
}

#[tokio::main]
async fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    if which.is_empty() || which == "typical" {
        run("typical", 50, 400).await;
    }
    if which.is_empty() || which == "large" {
        run("large", 2000, 10_000).await;
    }
}
