//! Node-RED: the Admin API client ([`NodeRed`]) and the pure transforms
//! between Node-RED's flat flows array and Stagehand's flows
//! ([`transform`], with env entries in the private `env` module).
//!
//! Node-RED's `rev` (a SHA-256 of its flows) is the revision: `POST /flows`
//! with a stale `rev` is refused with 409, which is what makes a deploy
//! safe against a change Stagehand did not see.

mod env;
pub mod transform;

pub use transform::{CONFIG_FLOW, assemble, split};

use crate::http::{RuntimeHttp, error_message};
use crate::{
    Deployed, Deployment, Pulled, Revision, Runtime, RuntimeAuth, RuntimeError, RuntimeKind,
    RuntimeResult,
};
use async_trait::async_trait;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use stagehand_domain::SecretValue;
use std::sync::Mutex;

/// Node-RED refused a session token it had just issued: the user lacks a
/// permission (a read-only user cannot deploy).
const SESSION_REFUSED: &str = "accepted the username and password but refused the session (does the user have permission for this?)";

/// The Admin API version whose `/flows` carries `rev` alongside the flows.
const API_VERSION: (&str, &str) = ("Node-RED-API-Version", "v2");

/// A Node-RED instance, reached through its Admin API.
#[derive(Debug)]
pub struct NodeRed {
    http: RuntimeHttp,
    auth: RuntimeAuth,
    /// The bearer token `Basic` credentials were exchanged for, reused until
    /// Node-RED refuses it.
    session: Mutex<Option<SecretValue>>,
}

/// `GET /flows` (v2).
#[derive(Deserialize)]
struct FlowsAnswer {
    flows: Vec<Value>,
    rev: String,
}

/// `POST /flows` (v2).
#[derive(Deserialize)]
struct DeployAnswer {
    rev: String,
}

/// `POST /auth/token`.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

impl NodeRed {
    pub fn new(http: RuntimeHttp, auth: RuntimeAuth) -> Self {
        Self {
            http,
            auth,
            session: Mutex::new(None),
        }
    }

    /// Sends a request built by `build` with the connection's credentials.
    /// With `Basic`, a cached token Node-RED refuses (it expired, or
    /// Node-RED's sessions were reset) is replaced once by a fresh one.
    async fn call(
        &self,
        build: impl Fn() -> RuntimeResult<RequestBuilder>,
    ) -> RuntimeResult<Response> {
        match &self.auth {
            RuntimeAuth::None => self
                .http
                .send(build()?)
                .await
                .map_err(refused("it asks for credentials")),
            RuntimeAuth::Bearer { token } => self
                .http
                .send(build()?.bearer_auth(token))
                .await
                .map_err(refused(
                    "it refused the token (unknown, or without permission for this)",
                )),
            RuntimeAuth::Basic { username, password } => {
                let cached = self.cached_session();
                let token = match &cached {
                    Some(token) => token.clone(),
                    None => self.log_in(username, password).await?,
                };
                match self.http.send(build()?.bearer_auth(token.expose())).await {
                    Err(RuntimeError::AuthFailed(_)) if cached.is_some() => {
                        let token = self.log_in(username, password).await?;
                        self.http
                            .send(build()?.bearer_auth(token.expose()))
                            .await
                            .map_err(refused(SESSION_REFUSED))
                    }
                    other => other.map_err(refused(SESSION_REFUSED)),
                }
            }
            RuntimeAuth::ApiKey { .. } => Err(RuntimeError::Invalid(
                "Node-RED takes no API key: use a bearer token or a username and password".into(),
            )),
        }
    }

    fn cached_session(&self) -> Option<SecretValue> {
        self.session.lock().map(|s| s.clone()).unwrap_or(None)
    }

    /// Exchanges adminAuth credentials for a bearer token and caches it.
    async fn log_in(&self, username: &str, password: &str) -> RuntimeResult<SecretValue> {
        let form = [
            ("client_id", "node-red-admin"),
            ("grant_type", "password"),
            ("scope", "*"),
            ("username", username),
            ("password", password),
        ];
        let request = self.http.request(Method::POST, "auth/token")?.form(&form);
        let response = self
            .http
            .send(request)
            .await
            .map_err(refused("it refused the username and password"))?;
        let response = ok_or_rejected(response).await?;
        let answer: TokenAnswer = read_json(response, "POST /auth/token").await?;
        let token = SecretValue::new(answer.access_token);
        if let Ok(mut session) = self.session.lock() {
            *session = Some(token.clone());
        }
        Ok(token)
    }

    async fn get_flows(&self) -> RuntimeResult<FlowsAnswer> {
        let response = self
            .call(|| {
                Ok(self
                    .http
                    .request(Method::GET, "flows")?
                    .header(API_VERSION.0, API_VERSION.1))
            })
            .await?;
        let response = ok_or_rejected(response).await?;
        read_json(response, "GET /flows").await
    }
}

#[async_trait]
impl Runtime for NodeRed {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::NodeRed
    }

    async fn revision(&self) -> RuntimeResult<Revision> {
        Ok(Revision(self.get_flows().await?.rev))
    }

    async fn pull(&self) -> RuntimeResult<Pulled> {
        let answer = self.get_flows().await?;
        let (flows, env) = split(&answer.flows)?;
        Ok(Pulled {
            revision: Revision(answer.rev),
            flows,
            env,
            changed_by: None,
        })
    }

    async fn deploy(&self, deployment: &Deployment) -> RuntimeResult<Deployed> {
        let flows = assemble(&deployment.flows, &deployment.values)?;
        let nodes = flows.len();
        let mut body = json!({ "flows": flows });
        if let Some(rev) = &deployment.base_revision {
            body["rev"] = Value::String(rev.0.clone());
        }
        let response = self
            .call(|| {
                Ok(self
                    .http
                    .request(Method::POST, "flows")?
                    .header(API_VERSION.0, API_VERSION.1)
                    .header("Node-RED-Deployment-Type", "full")
                    .json(&body))
            })
            .await?;
        if response.status() == StatusCode::CONFLICT {
            return Err(RuntimeError::Conflict(format!(
                "Node-RED's flows are no longer at revision {}: someone deployed to it since \
                 Stagehand last pulled, and nothing was deployed; pull again and review \
                 before deploying",
                deployment
                    .base_revision
                    .as_ref()
                    .map_or("(none)", |r| r.0.as_str())
            )));
        }
        let response = ok_or_rejected(response).await?;
        let answer: DeployAnswer = read_json(response, "POST /flows").await?;
        tracing::info!(nodes, flows = deployment.flows.len(), rev = %answer.rev, "deployed to Node-RED");
        Ok(Deployed {
            revision: Revision(answer.rev),
        })
    }

    /// The session token Node-RED issued for `Basic` credentials, which
    /// an answer may echo like the credentials (the caller scrubs both).
    fn session_secrets(&self) -> Vec<SecretValue> {
        self.cached_session().into_iter().collect()
    }
}

/// Says which credentials Node-RED refused, replacing the bare status.
fn refused(what: &'static str) -> impl Fn(RuntimeError) -> RuntimeError {
    move |e| match e {
        RuntimeError::AuthFailed(status) => {
            RuntimeError::AuthFailed(format!("Node-RED {what} ({status})"))
        }
        other => other,
    }
}

/// A non-success answer as `Rejected`, with Node-RED's own message.
async fn ok_or_rejected(response: Response) -> RuntimeResult<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    Err(RuntimeError::Rejected {
        status: status.as_u16(),
        message: error_message(response).await,
    })
}

async fn read_json<T: for<'de> Deserialize<'de>>(
    response: Response,
    what: &str,
) -> RuntimeResult<T> {
    let status = response.status().as_u16();
    let text = crate::http::read_limited(response, crate::http::MAX_ANSWER_BYTES).await?;
    serde_json::from_slice(&text).map_err(|e| RuntimeError::Rejected {
        status,
        message: format!(
            "the answer to {what} is not what Node-RED sends ({}): is this Node-RED?",
            e.classify_name()
        ),
    })
}

/// Names a serde_json error's category without quoting the input.
trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not JSON",
            serde_json::error::Category::Data => "unexpected shape",
        }
    }
}
