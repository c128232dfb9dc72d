//! Real Langflow servers for tests, shared by every test of a run: the
//! servers are started once by `scripts/test.sh` (`scripts/lib/langflow.sh`),
//! which exports `STAGEHAND_LANGFLOW_<NAME>_URL` and `_KEY` (the
//! superuser's static key). A Langflow takes a minute and a gigabyte to
//! boot, so tests do not start their own; instead each test gets its own
//! Langflow *user* on each server ([`Server::tenant`]): flows and global
//! variables belong to a user, so a test's pulls and deploys see only its
//! own flows and variables, and tests running in parallel cannot touch
//! each other's. A test removes its tenants when it ends
//! ([`Server::remove`]); one that fails leaves them on a server that is
//! thrown away.

use crate::http::RuntimeHttp;
use crate::{ClientOptions, Connection, Runtime, RuntimeAuth, RuntimeKind};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// A random flow id (a v4 UUID): Langflow keeps a flow's id across
/// instances when it is written with `PUT /api/v1/flows/{id}`.
pub fn new_flow_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|e| panic!("cannot build an HTTP client: {e}"))
}

/// Sends `method path` with `x-api-key: key` and an optional JSON body;
/// answers the status and the JSON body (`Null` if it is not JSON).
async fn call(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http
        .request(method.clone(), format!("{base}/{path}"))
        .header("x-api-key", key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {base}/{path}: {}", e.without_url()));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// One of the shared servers, reached with its superuser's static key.
#[derive(Debug)]
pub struct Server {
    url: String,
    key: String,
    http: reqwest::Client,
}

impl Server {
    /// The server `scripts/lib/langflow.sh` started as `name` (`DEV`,
    /// `PROD`). Panics, saying how to get one, when its variables are not
    /// set: a test that needs Langflow fails rather than pass untested.
    pub fn from_env(name: &str) -> Self {
        let read = |what: &str| {
            let var = format!("STAGEHAND_LANGFLOW_{name}_{what}");
            std::env::var(&var).unwrap_or_else(|_| {
                panic!(
                    "{var} is not set: this test needs two real Langflow servers (DEV and PROD); \
                     run it through scripts/test.sh, which starts them, or start them yourself: \
                     source scripts/lib/langflow.sh; start_langflow DEV; start_langflow PROD; \
                     wait_langflow DEV; wait_langflow PROD"
                )
            })
        };
        Self {
            url: read("URL").trim_end_matches('/').to_owned(),
            key: read("KEY"),
            http: client(),
        }
    }

    /// The base URL, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        call(&self.http, &self.url, &self.key, method, path, body).await
    }

    /// A new active user, logged in once (which makes its default
    /// project), with an API key of its own.
    pub async fn tenant(&self) -> Tenant {
        let username = format!("t{}", uuid::Uuid::new_v4().simple());
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let (status, user) = self
            .call(
                Method::POST,
                "api/v1/users/",
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, 201, "create user: {user}");
        let user_id = user["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a user with no id: {user}"))
            .to_owned();
        let (status, body) = self
            .call(
                Method::PATCH,
                &format!("api/v1/users/{user_id}"),
                Some(json!({"is_active": true})),
            )
            .await;
        assert_eq!(status, 200, "activate user: {body}");
        let login = self
            .http
            .post(format!("{}/api/v1/login", self.url))
            .form(&[("username", &username), ("password", &password)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("log in: {}", e.without_url()));
        let login: Value = login.json().await.unwrap_or(Value::Null);
        let token = login["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("log in: {login}"));
        let key = self
            .http
            .post(format!("{}/api/v1/api_key/", self.url))
            .bearer_auth(token)
            .json(&json!({"name": "stagehand"}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("create an API key: {}", e.without_url()));
        let key: Value = key.json().await.unwrap_or(Value::Null);
        Tenant {
            url: self.url.clone(),
            key: key["api_key"]
                .as_str()
                .unwrap_or_else(|| panic!("create an API key: {key}"))
                .to_owned(),
            user_id,
            http: self.http.clone(),
        }
    }

    /// Deletes the tenant's user, and with it its flows and variables.
    pub async fn remove(&self, tenant: Tenant) {
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

/// A Langflow user of one test on one server, with its own API key. Its
/// methods act as that user would in the Langflow editor or API, not
/// through Stagehand's connector.
pub struct Tenant {
    url: String,
    key: String,
    user_id: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("url", &self.url)
            .field("user_id", &self.user_id)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl Tenant {
    /// The server's base URL, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The tenant's API key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// A connection to the server as this tenant, with `key`.
    pub fn connection_with_key(&self, key: &str) -> Connection {
        Connection {
            kind: RuntimeKind::Langflow,
            url: url::Url::parse(&self.url).unwrap_or_else(|e| panic!("bad fixture URL: {e}")),
            auth: RuntimeAuth::ApiKey { key: key.into() },
        }
    }

    /// Stagehand's connector, as this tenant.
    pub fn runtime(&self) -> Box<dyn Runtime> {
        self.runtime_with_key(&self.key)
    }

    /// Stagehand's connector with another key (a wrong one, say).
    pub fn runtime_with_key(&self, key: &str) -> Box<dyn Runtime> {
        crate::client(self.connection_with_key(key), &ClientOptions::default())
            .unwrap_or_else(|e| panic!("cannot build a Langflow client: {e}"))
    }

    /// The connector itself, for what the `Runtime` trait does not carry.
    pub fn langflow(&self) -> crate::langflow::Langflow {
        let connection = self.connection_with_key(&self.key);
        let http = RuntimeHttp::new(&connection, &ClientOptions::default())
            .unwrap_or_else(|e| panic!("cannot build a Langflow client: {e}"));
        crate::langflow::Langflow::new(http, connection.auth.clone())
    }

    /// Any call of Langflow's API as this tenant: status and JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        call(&self.http, &self.url, &self.key, method, path, body).await
    }

    /// Creates a global variable; `kind` is `Generic` or `Credential`.
    pub async fn variable(&self, name: &str, kind: &str, value: &str) {
        let (status, body) = self
            .call(
                Method::POST,
                "api/v1/variables/",
                Some(json!({"name": name, "value": value, "type": kind, "default_fields": []})),
            )
            .await;
        assert_eq!(status, 201, "create variable {name}: {body}");
    }

    /// The variables as Langflow lists them, sorted by name (a
    /// Credential's value comes back as null).
    pub async fn variables(&self) -> Vec<Value> {
        let (status, body) = self.call(Method::GET, "api/v1/variables/", None).await;
        assert_eq!(status, 200, "list variables: {body}");
        let mut list = body
            .as_array()
            .unwrap_or_else(|| panic!("variables are not a list: {body}"))
            .clone();
        list.sort_by_key(|v| v["name"].as_str().unwrap_or("").to_owned());
        list
    }

    /// Writes a flow as someone in the Langflow editor would; answers the
    /// flow as Langflow stored it.
    pub async fn put_flow(&self, id: &str, flow: &Value) -> Value {
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

    /// A flow as Langflow holds it.
    pub async fn flow(&self, id: &str) -> Value {
        let (status, body) = self
            .call(Method::GET, &format!("api/v1/flows/{id}"), None)
            .await;
        assert_eq!(status, 200, "get flow {id}: {body}");
        body
    }

    /// The ids of every flow of the tenant, sorted.
    pub async fn flow_ids(&self) -> Vec<String> {
        let (status, body) = self
            .call(Method::GET, "api/v1/flows/?get_all=true", None)
            .await;
        assert_eq!(status, 200, "list flows: {body}");
        let mut ids: Vec<String> = body
            .as_array()
            .unwrap_or_else(|| panic!("flows are not a list: {body}"))
            .iter()
            .filter_map(|f| f["id"].as_str().map(str::to_owned))
            .collect();
        ids.sort();
        ids
    }

    /// Runs a flow through the API (`POST /api/v1/run/{id}`) and answers
    /// the text it outputs.
    pub async fn run(&self, id: &str) -> String {
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

    /// A flow `Text Input → Text Output` named `name` whose input field is
    /// bound to the global variable `variable`: running it returns that
    /// variable's value on the instance it runs on, with no model
    /// involved. The components come from the server's own catalogue
    /// (`GET /api/v1/all`), so they match its version.
    pub async fn greeting_flow(&self, name: &str, variable: &str) -> Value {
        let (status, all) = self.call(Method::GET, "api/v1/all", None).await;
        assert_eq!(status, 200, "the component catalogue");
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
