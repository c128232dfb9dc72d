//! The Langflow connector against two real Langflow servers, dev and prod,
//! started by `scripts/test.sh` (see `scripts/lib/langflow.sh`) and shared by
//! every test here. Each test gets its own Langflow *user* on each server
//! (made with the superuser's key): flows and global variables belong to a
//! user, so a test's pulls and deploys see only its own flows and
//! variables, and tests running in parallel cannot delete each other's
//! flows. A test deletes its users (and so their flows and variables) when
//! it ends; one that fails leaves them on a server that is thrown away.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stagehand_domain::{EnvKey, SecretValue};
use stagehand_runtime::http::RuntimeHttp;
use stagehand_runtime::langflow::Langflow;
use stagehand_runtime::langflow::transform::{RevisionState, flow_name};
use stagehand_runtime::{
    ClientOptions, Connection, Deployment, FoundValue, Runtime, RuntimeAuth, RuntimeError,
    RuntimeKind,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One of the two servers, reached with its superuser's static key.
struct Server {
    url: String,
    key: String,
    http: reqwest::Client,
}

fn server(name: &str) -> Server {
    let read = |what: &str| {
        let var = format!("STAGEHAND_LANGFLOW_{name}_{what}");
        std::env::var(&var).unwrap_or_else(|_| {
            panic!(
                "{var} is not set: the Langflow tests need two real Langflow servers; \
                 run them through scripts/test.sh, which starts them (scripts/lib/langflow.sh)"
            )
        })
    };
    Server {
        url: read("URL").trim_end_matches('/').to_owned(),
        key: read("KEY"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    }
}

/// A unique suffix for names and ids in this run.
fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let seed = format!(
        "{nanos}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    hex::encode(Sha256::digest(seed.as_bytes()))
}

/// A fresh random flow id (a v4-shaped UUID).
fn new_flow_id() -> String {
    let h = unique();
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// A Langflow user of one test on one server, with its own API key.
struct Tenant {
    url: String,
    key: String,
    user_id: String,
    http: reqwest::Client,
}

impl Server {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/{path}", self.url))
            .header("x-api-key", &self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A new active user, logged in once (which makes its default
    /// project), with an API key of its own.
    async fn tenant(&self) -> Tenant {
        let username = format!("t{}", &unique()[..16]);
        let password = format!("pw-{}", unique());
        let (status, user) = self
            .call(
                Method::POST,
                "api/v1/users/",
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, 201, "create user: {user}");
        let user_id = user["id"].as_str().unwrap().to_owned();
        let (status, body) = self
            .call(
                Method::PATCH,
                &format!("api/v1/users/{user_id}"),
                Some(json!({"is_active": true})),
            )
            .await;
        assert_eq!(status, 200, "activate user: {body}");
        let login: Value = self
            .http
            .post(format!("{}/api/v1/login", self.url))
            .form(&[("username", &username), ("password", &password)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["access_token"].as_str().expect("login").to_owned();
        let key: Value = self
            .http
            .post(format!("{}/api/v1/api_key/", self.url))
            .bearer_auth(token)
            .json(&json!({"name": "stagehand"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Tenant {
            url: self.url.clone(),
            key: key["api_key"].as_str().expect("api key").to_owned(),
            user_id,
            http: self.http.clone(),
        }
    }

    async fn remove(&self, tenant: Tenant) {
        let (status, body) = self
            .call(
                Method::DELETE,
                &format!("api/v1/users/{}", tenant.user_id),
                None,
            )
            .await;
        assert!(status < 300, "delete user: {status} {body}");
    }
}

impl Tenant {
    fn runtime(&self) -> Box<dyn Runtime> {
        self.runtime_with_key(&self.key)
    }

    /// The connector itself, for what the `Runtime` trait does not carry.
    fn langflow(&self) -> Langflow {
        let connection = Connection {
            kind: RuntimeKind::Langflow,
            url: self.url.parse().unwrap(),
            auth: RuntimeAuth::ApiKey {
                key: self.key.clone(),
            },
        };
        let http = RuntimeHttp::new(&connection, &ClientOptions::default()).unwrap();
        Langflow::new(http, connection.auth.clone())
    }

    fn runtime_with_key(&self, key: &str) -> Box<dyn Runtime> {
        stagehand_runtime::client(
            Connection {
                kind: RuntimeKind::Langflow,
                url: self.url.parse().unwrap(),
                auth: RuntimeAuth::ApiKey { key: key.into() },
            },
            &ClientOptions::default(),
        )
        .unwrap()
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/{path}", self.url))
            .header("x-api-key", &self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn variable(&self, name: &str, kind: &str, value: &str) {
        let (status, body) = self
            .call(
                Method::POST,
                "api/v1/variables/",
                Some(json!({"name": name, "value": value, "type": kind, "default_fields": []})),
            )
            .await;
        assert_eq!(status, 201, "create variable {name}: {body}");
    }

    /// The variables as Langflow lists them, sorted by name.
    async fn variables(&self) -> Vec<Value> {
        let (status, body) = self.call(Method::GET, "api/v1/variables/", None).await;
        assert_eq!(status, 200, "{body}");
        let mut list = body.as_array().unwrap().clone();
        list.sort_by_key(|v| v["name"].as_str().unwrap_or("").to_owned());
        list
    }

    /// Writes a flow as someone in the Langflow editor would.
    async fn put_flow(&self, id: &str, flow: &Value) -> Value {
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("api/v1/flows/{id}"),
                Some(flow.clone()),
            )
            .await;
        assert!(status == 200 || status == 201, "put flow: {status} {body}");
        body
    }

    async fn flow_ids(&self) -> Vec<String> {
        let (status, body) = self
            .call(Method::GET, "api/v1/flows/?get_all=true", None)
            .await;
        assert_eq!(status, 200, "{body}");
        let mut ids: Vec<String> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }

    /// Runs a flow through the API and returns the text it outputs.
    async fn run(&self, id: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("api/v1/run/{id}?stream=false"),
                Some(json!({"input_type": "text", "output_type": "text"})),
            )
            .await;
        assert_eq!(status, 200, "run: {body}");
        body.pointer("/outputs/0/outputs/0/results/text/text")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no text output in {body}"))
            .to_owned()
    }

    /// A flow `Text Input → Text Output` whose input field is bound to the
    /// global variable `variable`: running it returns that variable's value
    /// on the instance it runs on, with no model involved. The components
    /// come from the server's own catalogue, so they match its version.
    async fn greeting_flow(&self, name: &str, variable: &str) -> Value {
        let (status, all) = self.call(Method::GET, "api/v1/all", None).await;
        assert_eq!(status, 200);
        let node = |kind: &str, id: &str, x: i64| {
            json!({"id": id, "type": "genericNode", "position": {"x": x, "y": 0},
                   "data": {"id": id, "type": kind, "node": all["input_output"][kind].clone()}})
        };
        let mut input = node("TextInput", "TextInput-greet", 0);
        let template = &mut input["data"]["node"]["template"];
        template["input_value"]["value"] = json!(variable);
        template["input_value"]["load_from_db"] = json!(true);
        template["input_value"]["password"] = json!(true);
        template["use_global_variable"]["value"] = json!(true);
        let output = node("TextOutput", "TextOutput-greet", 400);
        json!({
            "name": name,
            "description": "says the greeting of the instance it runs on",
            "data": {
                "nodes": [input, output],
                "edges": [{
                    "id": "edge-greet", "source": "TextInput-greet", "target": "TextOutput-greet",
                    "data": {
                        "sourceHandle": {"dataType": "TextInput", "id": "TextInput-greet", "name": "text", "output_types": ["Message"]},
                        "targetHandle": {"fieldName": "input_value", "id": "TextOutput-greet", "inputTypes": ["Message"], "type": "str"}
                    }
                }],
                "viewport": {"x": 0, "y": 0, "zoom": 1}
            }
        })
    }
}

fn key(k: &str) -> EnvKey {
    EnvKey::parse(k).unwrap()
}

/// What Stagehand would send: the source's flows, the target's values.
fn deployment_of(
    source: &stagehand_runtime::Pulled,
    target: &stagehand_runtime::Pulled,
) -> Deployment {
    Deployment {
        flows: source.flows.clone(),
        values: source
            .env
            .keys()
            .map(|k| {
                let value = match target.env.get(k) {
                    Some(FoundValue::Value(v)) => Some(v.clone()),
                    _ => None,
                };
                (k.clone(), value)
            })
            .collect(),
        base_revision: Some(target.revision.clone()),
    }
}

#[tokio::test]
async fn promoting_a_flow_runs_it_on_prod_with_prods_own_value_and_leaves_prods_variables_alone() {
    let (dev_server, prod_server) = (server("DEV"), server("PROD"));
    let (dev, prod) = (dev_server.tenant().await, prod_server.tenant().await);
    dev.variable("GREETING", "Generic", "dev-value").await;
    dev.variable("DEV_TOKEN", "Credential", "dev-secret").await;
    prod.variable("GREETING", "Generic", "prod-value").await;
    prod.variable("PROD_TOKEN", "Credential", "prod-secret")
        .await;
    let greet = new_flow_id();
    dev.put_flow(&greet, &dev.greeting_flow("greet", "GREETING").await)
        .await;
    assert_eq!(dev.run(&greet).await, "dev-value");
    // A flow only prod has: the promotion removes it.
    let stray = new_flow_id();
    prod.put_flow(&stray, &prod.greeting_flow("stray", "GREETING").await)
        .await;
    let prod_variables_before = prod.variables().await;

    let pulled_dev = dev.runtime().pull().await.unwrap();
    assert_eq!(
        pulled_dev.flows.keys().cloned().collect::<Vec<_>>(),
        vec![flow_name(&greet).unwrap()]
    );
    assert_eq!(
        pulled_dev.env[&key("GREETING")],
        FoundValue::Value(SecretValue::new("dev-value".into()))
    );
    assert_eq!(pulled_dev.env[&key("DEV_TOKEN")], FoundValue::HeldByRuntime);
    let stored = pulled_dev.flows.values().next().unwrap().as_json();
    assert!(!stored.contains("dev-value") && !stored.contains("dev-secret"));

    let pulled_prod = prod.runtime().pull().await.unwrap();
    let deployment = deployment_of(&pulled_dev, &pulled_prod);
    // Keys with no variable on prod are reported, never created.
    assert_eq!(
        prod.langflow()
            .missing_variables(&deployment)
            .await
            .unwrap(),
        vec!["DEV_TOKEN".to_owned()]
    );
    let deployed = prod.runtime().deploy(&deployment).await.unwrap();

    assert_eq!(prod.run(&greet).await, "prod-value");
    assert_eq!(prod.flow_ids().await, vec![greet.clone()]);
    assert_eq!(prod.variables().await, prod_variables_before);
    assert_eq!(deployed.revision, prod.runtime().revision().await.unwrap());
    // Dev and prod now hold the same flow, as Stagehand sees it.
    let after = prod.runtime().pull().await.unwrap();
    assert_eq!(after.flows, pulled_dev.flows);
    assert_eq!(after.revision, deployed.revision);
    // A second identical promotion writes nothing: the revision holds.
    let again = prod
        .runtime()
        .deploy(&deployment_of(&pulled_dev, &after))
        .await
        .unwrap();
    assert_eq!(again.revision, deployed.revision);

    dev_server.remove(dev).await;
    prod_server.remove(prod).await;
}

#[tokio::test]
async fn a_deploy_over_a_stale_revision_is_a_conflict_and_prod_is_unchanged() {
    let (dev_server, prod_server) = (server("DEV"), server("PROD"));
    let (dev, prod) = (dev_server.tenant().await, prod_server.tenant().await);
    dev.variable("GREETING", "Generic", "dev-value").await;
    prod.variable("GREETING", "Generic", "prod-value").await;
    let greet = new_flow_id();
    let flow = dev.greeting_flow("greet", "GREETING").await;
    dev.put_flow(&greet, &flow).await;
    prod.put_flow(&greet, &flow).await;
    let mut edited_on_dev = flow.clone();
    edited_on_dev["description"] = json!("edited on dev");
    edited_on_dev["data"]["nodes"][1]["position"]["y"] = json!(100);
    dev.put_flow(&greet, &edited_on_dev).await;
    let pulled_dev = dev.runtime().pull().await.unwrap();
    let pulled_prod = prod.runtime().pull().await.unwrap();

    // Someone edits the prod flow after Stagehand read prod's revision.
    let mut edited_on_prod = flow.clone();
    edited_on_prod["data"]["nodes"][1]["position"]["y"] = json!(-50);
    prod.put_flow(&greet, &edited_on_prod).await;
    let prod_now = prod.runtime().pull().await.unwrap();

    let err = prod
        .runtime()
        .deploy(&deployment_of(&pulled_dev, &pulled_prod))
        .await
        .unwrap_err();
    let RuntimeError::Conflict(message) = &err else {
        panic!("expected a conflict, got {err:?}")
    };
    assert!(message.contains(&greet), "{message}");
    let after = prod.runtime().pull().await.unwrap();
    assert_eq!(after.revision, prod_now.revision);
    assert_eq!(after.flows, prod_now.flows);

    // The per-write guard: a base whose digest matches but whose token for
    // the flow is stale (an edit landing between the check and the write)
    // is refused by Langflow's If-Match, and mapped to a conflict too.
    let mut racing = RevisionState::decode(&prod_now.revision).unwrap();
    racing.tokens.insert(
        greet.clone(),
        Some("00000000-0000-4000-8000-000000000000".into()),
    );
    let mut deployment = deployment_of(&pulled_dev, &prod_now);
    deployment.base_revision = Some(racing.encode());
    let err = prod.runtime().deploy(&deployment).await.unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Conflict(m) if m.contains("edited")),
        "{err:?}"
    );
    assert_eq!(
        prod.runtime().pull().await.unwrap().revision,
        prod_now.revision
    );

    dev_server.remove(dev).await;
    prod_server.remove(prod).await;
}

#[tokio::test]
async fn a_wrong_api_key_is_refused_as_auth_failed() {
    let prod_server = server("PROD");
    let prod = prod_server.tenant().await;
    let wrong = prod.runtime_with_key("sk-not-the-key");
    assert!(matches!(
        wrong.revision().await,
        Err(RuntimeError::AuthFailed(_))
    ));
    assert!(matches!(
        wrong.pull().await,
        Err(RuntimeError::AuthFailed(_))
    ));
    let deployment = Deployment {
        flows: BTreeMap::new(),
        values: BTreeMap::new(),
        base_revision: None,
    };
    assert!(matches!(
        wrong.deploy(&deployment).await,
        Err(RuntimeError::AuthFailed(_))
    ));
    prod_server.remove(prod).await;
}

#[tokio::test]
async fn a_credential_variable_is_pulled_as_held_by_the_runtime_and_its_value_never_leaves() {
    let dev_server = server("DEV");
    let dev = dev_server.tenant().await;
    dev.variable("OPENAI_API_KEY", "Credential", "sk-very-secret")
        .await;
    dev.variable("REGION", "Generic", "eu-west").await;
    let pulled = dev.runtime().pull().await.unwrap();
    assert_eq!(
        pulled.env[&key("OPENAI_API_KEY")],
        FoundValue::HeldByRuntime
    );
    assert_eq!(
        pulled.env[&key("REGION")],
        FoundValue::Value(SecretValue::new("eu-west".into()))
    );
    assert!(!format!("{pulled:?}").contains("sk-very-secret"));
    dev_server.remove(dev).await;
}

#[tokio::test]
async fn a_flow_with_a_secret_typed_into_a_field_is_not_pulled() {
    let dev_server = server("DEV");
    let dev = dev_server.tenant().await;
    let id = new_flow_id();
    let mut flow = dev.greeting_flow("typed secret", "unused").await;
    let field = &mut flow["data"]["nodes"][0]["data"]["node"]["template"]["input_value"];
    field["load_from_db"] = json!(false);
    field["value"] = json!("sk-typed-in");
    dev.put_flow(&id, &flow).await;
    let err = dev.runtime().pull().await.unwrap_err();
    let RuntimeError::Invalid(message) = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains("TextInput-greet.input_value"), "{message}");
    assert!(!message.contains("sk-typed-in"));
    dev_server.remove(dev).await;
}
