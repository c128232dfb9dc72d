//! The Node-RED connector against real Node-RED processes (see
//! `stagehand_runtime::testing`): authentication, transport failures,
//! redirects, pulling, and the promotion a team lead cares about — dev's
//! flows deployed into prod with prod's own values and credentials.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use stagehand_domain::{EnvKey, SecretValue};
use stagehand_runtime::testing::{NodeRedProcess, RecordingProxy};
use stagehand_runtime::{
    ClientOptions, Connection, Deployment, FoundValue, Pulled, Runtime, RuntimeAuth, RuntimeError,
    RuntimeKind, client,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn connect(url: &str, auth: RuntimeAuth) -> Box<dyn Runtime> {
    let connection = Connection {
        kind: RuntimeKind::NodeRed,
        url: url::Url::parse(url).unwrap(),
        auth,
    };
    client(connection, &ClientOptions::default()).unwrap()
}

fn key(k: &str) -> EnvKey {
    EnvKey::parse(k).unwrap()
}

/// The values of a pull, as a deployment into that same instance sends them.
fn values_of(pulled: &Pulled) -> BTreeMap<EnvKey, Option<SecretValue>> {
    pulled
        .env
        .iter()
        .map(|(k, v)| {
            let v = match v {
                FoundValue::Value(s) => Some(s.clone()),
                _ => None,
            };
            (k.clone(), v)
        })
        .collect()
}

#[tokio::test]
async fn basic_and_bearer_credentials_both_work() {
    let nr = NodeRedProcess::start().await;
    eprintln!("Node-RED answered after {:?}", nr.started_in());
    let rev = nr
        .deploy_raw(&json!([{"id": "t1", "type": "tab", "label": "One"}]))
        .await;

    let basic = connect(nr.url(), nr.basic_auth());
    assert_eq!(basic.revision().await.unwrap().0, rev);
    // The exchanged token is cached and reused.
    assert_eq!(basic.pull().await.unwrap().revision.0, rev);

    let bearer = connect(nr.url(), nr.bearer_auth());
    assert_eq!(bearer.revision().await.unwrap().0, rev);
}

#[tokio::test]
async fn a_revoked_session_token_is_replaced_once() {
    let nr = NodeRedProcess::start().await;
    let proxy = RecordingProxy::start(nr.url()).await;
    let basic = connect(proxy.url(), nr.basic_auth());
    let rev = basic.revision().await.unwrap();

    // Someone logs the session out (Node-RED's sessions can also expire).
    let session = proxy
        .requests()
        .iter()
        .find(|r| r.path == "/flows")
        .and_then(|r| {
            r.headers
                .iter()
                .find(|(n, _)| n == "authorization")
                .cloned()
        })
        .map(|(_, v)| v.trim_start_matches("Bearer ").to_owned())
        .unwrap();
    let revoked = reqwest::Client::new()
        .post(format!("{}auth/revoke", nr.url()))
        .bearer_auth(&session)
        .form(&[("token", session.as_str())])
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());

    assert_eq!(basic.revision().await.unwrap(), rev);
    let paths: Vec<String> = proxy
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        paths,
        [
            "POST /auth/token",
            "GET /flows",
            "GET /flows",
            "POST /auth/token",
            "GET /flows"
        ]
    );
}

#[tokio::test]
async fn wrong_credentials_are_auth_failed_and_never_echoed() {
    let nr = NodeRedProcess::start().await;
    let cases = [
        RuntimeAuth::Basic {
            username: nr.username().into(),
            password: "not-the-password-1234".into(),
        },
        RuntimeAuth::Bearer {
            token: "not-the-token-5678".into(),
        },
        RuntimeAuth::None,
    ];
    for auth in cases {
        let what = auth.type_name();
        let err = connect(nr.url(), auth).revision().await.unwrap_err();
        assert!(
            matches!(err, RuntimeError::AuthFailed(_)),
            "{what}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            !message.contains("1234") && !message.contains("5678"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn nothing_listening_is_unreachable_fast() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let began = Instant::now();
    let err = connect(&format!("http://127.0.0.1:{port}/"), RuntimeAuth::None)
        .revision()
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Unreachable(_)), "{err:?}");
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
}

/// A loopback listener answering every connection with `answer`, recording
/// what it received.
async fn raw_server(answer: String) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0; 16 * 1024];
            let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
                .await
                .map_or(0, |r| r.unwrap_or(0));
            record
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    (port, seen)
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed_and_no_credential_reaches_it() {
    let body = r#"{"flows":[],"rev":"elsewhere"}"#;
    let (other, other_seen) = raw_server(format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let (redirector, redirector_seen) = raw_server(format!(
        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{other}/flows\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ))
    .await;
    let url = format!("http://127.0.0.1:{redirector}/");
    let auths = [
        RuntimeAuth::Bearer {
            token: "token-for-the-first-origin".into(),
        },
        RuntimeAuth::Basic {
            username: "admin".into(),
            password: "password-for-the-first-origin".into(),
        },
    ];
    for auth in auths {
        let err = connect(&url, auth).revision().await.unwrap_err();
        assert!(
            matches!(err, RuntimeError::Rejected { status: 302, .. }),
            "{err:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(redirector_seen.lock().unwrap().len(), 2);
    assert!(
        other_seen.lock().unwrap().is_empty(),
        "{:?}",
        other_seen.lock().unwrap()
    );
}

#[tokio::test]
async fn a_pull_lifts_env_values_out_of_the_flows() {
    let nr = NodeRedProcess::start().await;
    let rev = nr
        .deploy_raw(&json!({"flows": [
            {"id": "t1", "type": "tab", "label": "One", "env": [
                {"name": "GREETING", "value": "hello-from-the-tab", "type": "str"},
                {"name": "API_KEY", "value": "__PWRD__", "type": "cred"}
            ], "credentials": {"API_KEY": "held-in-the-credential-store"}},
            {"id": "g1", "type": "group", "z": "t1", "nodes": ["d1"], "env": [
                {"name": "LIMIT", "value": "10", "type": "num"}
            ]},
            {"id": "d1", "type": "debug", "z": "t1", "g": "g1"},
            {"id": "gc", "type": "global-config", "env": [
                {"name": "REGION", "value": "eu-west", "type": "str"},
                {"name": "BLANK", "value": "", "type": "str"}
            ]}
        ]}))
        .await;

    let pulled = connect(nr.url(), nr.basic_auth()).pull().await.unwrap();
    assert_eq!(pulled.revision.0, rev);
    let found = |k: &str| pulled.env.get(&key(k)).cloned();
    let value = |v: &str| Some(FoundValue::Value(SecretValue::new(v.into())));
    assert_eq!(found("GREETING"), value("hello-from-the-tab"));
    assert_eq!(found("LIMIT"), value("10"));
    assert_eq!(found("REGION"), value("eu-west"));
    assert_eq!(found("BLANK"), Some(FoundValue::Empty));
    assert_eq!(found("API_KEY"), None);

    let names: Vec<&str> = pulled.flows.keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["config", "tab-t1"]);
    let all: String = pulled.flows.values().map(|f| f.as_json()).collect();
    for secret in [
        "hello-from-the-tab",
        "eu-west",
        "held-in-the-credential-store",
    ] {
        assert!(!all.contains(secret), "{secret} is in the pulled flows");
    }
    assert!(
        all.contains(r#""name":"API_KEY","type":"cred","value":"__PWRD__""#),
        "{all}"
    );
}

const DEV_GREETING: &str = "dev-value-7f3a9c41d2";
const DEV_PASSWORD: &str = "dev-password-5e1d88";
const PROD_GREETING: &str = "prod-value-2b8e10c7";
const PROD_ONLY: &str = "prod-only-value-9d04";

/// A greeter tab: `GET /greet` answers `prefix` + the tab's GREETING, and an
/// `http request` node with basic-auth credentials.
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

/// Polls `GET /greet` until it answers `want` (Node-RED answers a deploy
/// before the new flows have started).
async fn wait_for_greeting(nr: &NodeRedProcess, want: &str) {
    wait_for(nr, "greet", want).await;
}

/// Polls `GET /<path>` until it answers `want`.
async fn wait_for(nr: &NodeRedProcess, path: &str, want: &str) {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", nr.url());
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
    panic!("GET /{path} answered {last:?}, not {want:?}");
}

#[tokio::test]
async fn dev_flows_deploy_to_prod_with_prods_values_and_credentials() {
    let (dev, prod) = tokio::join!(NodeRedProcess::start(), NodeRedProcess::start());
    eprintln!(
        "Node-RED answered after {:?} and {:?}",
        dev.started_in(),
        prod.started_in()
    );
    dev.deploy_raw(&greeter(
        "",
        json!([{"name": "GREETING", "value": DEV_GREETING, "type": "str"}]),
        "dev-user",
        DEV_PASSWORD,
    ))
    .await;
    let prod_rev = prod
        .deploy_raw(&greeter(
            "old ",
            json!([
                {"name": "GREETING", "value": PROD_GREETING, "type": "str"},
                {"name": "PROD_ONLY", "value": PROD_ONLY, "type": "str"}
            ]),
            "prod-user",
            "prod-password-61aa",
        ))
        .await;
    wait_for_greeting(&prod, &format!("old {PROD_GREETING}")).await;

    let proxy = RecordingProxy::start(prod.url()).await;
    let dev_client = connect(dev.url(), dev.bearer_auth());
    let prod_client = connect(proxy.url(), prod.basic_auth());
    let from_dev = dev_client.pull().await.unwrap();
    let at_prod = prod_client.pull().await.unwrap();
    assert_eq!(at_prod.revision.0, prod_rev);
    assert!(at_prod.env.contains_key(&key("PROD_ONLY")));

    let began = Instant::now();
    let deployed = prod_client
        .deploy(&Deployment {
            flows: from_dev.flows.clone(),
            values: values_of(&at_prod),
            base_revision: Some(at_prod.revision.clone()),
        })
        .await
        .unwrap();
    eprintln!("the deploy took {:?}", began.elapsed());
    let (_, rev_now) = prod.flows_raw().await;
    assert_eq!(deployed.revision.0, rev_now);
    assert_ne!(rev_now, prod_rev);

    // Prod runs dev's flows with prod's value...
    wait_for_greeting(&prod, PROD_GREETING).await;
    // ...keeps its own credentials for the node dev also has...
    let creds = prod.get_raw("credentials/http-request/req1").await;
    assert_eq!(creds["has_password"], true, "{creds}");
    assert_eq!(creds["user"], "prod-user", "{creds}");
    // ...and now holds what dev holds, values aside...
    let after = connect(prod.url(), prod.bearer_auth())
        .pull()
        .await
        .unwrap();
    assert_eq!(after.flows, from_dev.flows);
    // ...keeping the key dev's flows do not name (now instance-wide, on
    // the global-config node).
    assert_eq!(
        after.env.get(&key("PROD_ONLY")),
        Some(&FoundValue::Value(SecretValue::new(PROD_ONLY.into())))
    );

    // Nothing of dev's went through the proxy; prod's value did.
    let sent = proxy.requests();
    let deploys: Vec<_> = sent
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/flows")
        .collect();
    assert_eq!(deploys.len(), 1, "{sent:?}");
    assert!(deploys[0].body_text().contains(PROD_GREETING));
    for request in &sent {
        let body = request.body_text();
        for dev_secret in [DEV_GREETING, DEV_PASSWORD, "dev-user"] {
            assert!(
                !body.contains(dev_secret),
                "{} {} sent {dev_secret}",
                request.method,
                request.path
            );
        }
    }

    // A deploy based on a revision prod no longer has is refused, and prod
    // is left as it was.
    let (flows_before, _) = prod.flows_raw().await;
    let err = prod_client
        .deploy(&Deployment {
            flows: from_dev.flows.clone(),
            values: BTreeMap::new(),
            base_revision: Some(at_prod.revision.clone()),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Conflict(_)), "{err:?}");
    let (flows_after, rev_after) = prod.flows_raw().await;
    assert_eq!(rev_after, rev_now);
    assert_eq!(flows_after, flows_before);
    wait_for_greeting(&prod, PROD_GREETING).await;
}

const DEV_GLOBAL: &str = "dev-global-value-3c71e0";

/// A tab declaring only GREETING whose `GET /global` answers what three
/// instance-wide keys resolve to there, and an instance-wide env.
fn with_global_probe(global_id: &str, tab_env: Value, global_env: Value) -> Value {
    let mut flows = greeter("", tab_env, "user", "password-0b3e");
    let nodes = flows["flows"].as_array_mut().unwrap();
    nodes.extend([
        json!({"id": "in2", "type": "http in", "z": "tab1", "url": "/global", "method": "get",
               "upload": false, "wires": [["fn2"]]}),
        json!({"id": "fn2", "type": "function", "z": "tab1", "outputs": 1, "wires": [["out2"]],
               "func": "const port = env.get(\"PORT\");\n\
                        msg.payload = [env.get(\"PROD_ONLY\"), env.get(\"DEV_GLOBAL\"), typeof port + \":\" + port].map(String).join(\"|\");\n\
                        return msg;"}),
        json!({"id": "out2", "type": "http response", "z": "tab1", "statusCode": "", "headers": {}, "wires": []}),
        // Each editor gives its global-config node an id of its own.
        json!({"id": global_id, "type": "global-config", "env": global_env, "modules": {}}),
    ]);
    flows
}

/// What a promotion sends: the target's values, and every key only the
/// source has, without a value.
fn promoted_values(source: &Pulled, target: &Pulled) -> BTreeMap<EnvKey, Option<SecretValue>> {
    let mut values = values_of(target);
    for k in source.env.keys() {
        values.entry(k.clone()).or_insert(None);
    }
    values
}

#[tokio::test]
async fn a_global_key_only_prod_has_survives_a_deploy_of_devs_flows() {
    let (dev, prod) = tokio::join!(NodeRedProcess::start(), NodeRedProcess::start());
    dev.deploy_raw(&with_global_probe(
        "a1b2c3d4e5f60718",
        json!([{"name": "GREETING", "value": DEV_GREETING, "type": "str"}]),
        json!([
            {"name": "DEV_GLOBAL", "value": DEV_GLOBAL, "type": "str"},
            {"name": "PORT", "value": "1880", "type": "num"}
        ]),
    ))
    .await;
    prod.deploy_raw(&with_global_probe(
        "90f1e2d3c4b5a697",
        json!([{"name": "GREETING", "value": PROD_GREETING, "type": "str"}]),
        json!([
            {"name": "PROD_ONLY", "value": "prod-only-value", "type": "str"},
            {"name": "PORT", "value": "8443", "type": "num"}
        ]),
    ))
    .await;
    wait_for(&prod, "global", "prod-only-value|undefined|number:8443").await;

    let proxy = RecordingProxy::start(prod.url()).await;
    let prod_client = connect(proxy.url(), prod.basic_auth());
    let from_dev = connect(dev.url(), dev.bearer_auth()).pull().await.unwrap();
    let at_prod = prod_client.pull().await.unwrap();
    // Different global keys and values, different global-config ids: the
    // same `config` flow.
    let config = |p: &Pulled| {
        p.flows
            .iter()
            .find(|(n, _)| n.as_str() == "config")
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(config(&from_dev), config(&at_prod));
    assert_eq!(
        config(&at_prod).to_value(),
        json!({"order": ["tab1"], "nodes": [], "env_types": {"PORT": "num"}})
    );

    let deployment = Deployment {
        flows: from_dev.flows.clone(),
        values: promoted_values(&from_dev, &at_prod),
        base_revision: Some(at_prod.revision.clone()),
    };
    let deployed = prod_client.deploy(&deployment).await.unwrap();

    // Prod's global-config holds prod's keys with prod's values, and dev's
    // key without one.
    let (flows, rev) = prod.flows_raw().await;
    assert_eq!(rev, deployed.revision.0);
    let globals: Vec<&Value> = flows
        .iter()
        .filter(|n| n["type"] == "global-config")
        .collect();
    assert_eq!(globals.len(), 1, "{flows:?}");
    assert_eq!(
        globals[0]["env"],
        json!([
            {"name": "DEV_GLOBAL", "value": "", "type": "str"},
            {"name": "PORT", "value": "8443", "type": "num"},
            {"name": "PROD_ONLY", "value": "prod-only-value", "type": "str"}
        ])
    );
    // A function in a tab that does not declare them reads them from there.
    wait_for(&prod, "global", "prod-only-value||number:8443").await;
    wait_for_greeting(&prod, PROD_GREETING).await;

    // Prod pulls back as dev's flows, with its own key kept.
    let after = connect(prod.url(), prod.bearer_auth())
        .pull()
        .await
        .unwrap();
    assert_eq!(after.flows, from_dev.flows);
    assert_eq!(
        after.env.get(&key("PROD_ONLY")),
        Some(&FoundValue::Value(SecretValue::new(
            "prod-only-value".into()
        )))
    );
    assert_eq!(after.env.get(&key("DEV_GLOBAL")), Some(&FoundValue::Empty));

    // Deploying the same again changes nothing in Node-RED.
    let again = prod_client
        .deploy(&Deployment {
            base_revision: Some(deployed.revision.clone()),
            ..deployment
        })
        .await
        .unwrap();
    assert_eq!(again, deployed);

    for request in proxy.requests() {
        let body = request.body_text();
        for dev_secret in [DEV_GREETING, DEV_GLOBAL] {
            assert!(
                !body.contains(dev_secret),
                "{} {} sent {dev_secret}",
                request.method,
                request.path
            );
        }
    }
}
