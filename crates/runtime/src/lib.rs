//! Clients of real workflow runtimes behind one interface, [`Runtime`], a
//! module per kind. A runtime speaks in Stagehand's terms: its flows come
//! back as named [`FlowContent`] with every env value lifted out (into
//! [`Pulled::env`]), and a [`Deployment`] goes out with the *target's* own
//! values re-injected. No credential ever leaves the runtime, and no value
//! of another instance ever reaches it.
//!
//! The transforms between a runtime's JSON and Stagehand's flows are pure
//! functions in each kind's module; the HTTP clients own timeouts, no
//! redirects and one origin (see [`http`]).

pub mod http;
pub mod langflow;
pub mod nodered;
pub mod testing;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use stagehand_domain::{EnvKey, FlowContent, FlowName, SecretValue};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Which runtime an instance is connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RuntimeKind {
    #[serde(rename = "node-red")]
    NodeRed,
    #[serde(rename = "langflow")]
    Langflow,
}

impl RuntimeKind {
    pub const ALL: [RuntimeKind; 2] = [Self::NodeRed, Self::Langflow];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NodeRed => "node-red",
            Self::Langflow => "langflow",
        }
    }

    /// The name people know it by.
    pub fn label(self) -> &'static str {
        match self {
            Self::NodeRed => "Node-RED",
            Self::Langflow => "Langflow",
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RuntimeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown runtime kind {s:?}: expected node-red or langflow"))
    }
}

/// How Stagehand authenticates to a runtime. `Debug` never prints a secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuntimeAuth {
    /// No authentication (a runtime on a private network).
    None,
    /// A static bearer token (Node-RED `adminAuth.tokens`).
    Bearer { token: String },
    /// A user and password exchanged for a token (Node-RED `POST /auth/token`).
    Basic { username: String, password: String },
    /// An API key sent as `x-api-key` (Langflow).
    ApiKey { key: String },
}

impl RuntimeAuth {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Bearer { .. } => "bearer",
            Self::Basic { .. } => "basic",
            Self::ApiKey { .. } => "api_key",
        }
    }
}

impl fmt::Debug for RuntimeAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => write!(f, "Basic({username}, [redacted])"),
            other => write!(f, "{}([redacted])", other.type_name()),
        }
    }
}

impl Drop for RuntimeAuth {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        match self {
            Self::None => {}
            Self::Bearer { token } => token.zeroize(),
            Self::Basic { password, .. } => password.zeroize(),
            Self::ApiKey { key } => key.zeroize(),
        }
    }
}

/// Where a runtime is and how to reach it.
#[derive(Debug, Clone)]
pub struct Connection {
    pub kind: RuntimeKind,
    /// The runtime's base URL (`http` or `https`, no credentials in it).
    pub url: url::Url,
    pub auth: RuntimeAuth,
}

/// A runtime's own marker of its content: Node-RED's `rev`, a digest of
/// Langflow's flow versions. Opaque to everyone but the kind's module.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision(pub String);

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a pull found for one env key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoundValue {
    /// The runtime holds this value (it is lifted out of the flows).
    Value(SecretValue),
    /// The runtime holds a value it never returns (a Langflow Credential
    /// variable): the key "has a value", Stagehand does not know it.
    HeldByRuntime,
    /// The key exists with no value.
    Empty,
}

/// A runtime's content in Stagehand's terms.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub revision: Revision,
    /// Flows with every env value lifted out: two runtimes whose flows
    /// differ only in env values give equal flows here.
    pub flows: BTreeMap<FlowName, FlowContent>,
    pub env: BTreeMap<EnvKey, FoundValue>,
    /// Who last changed the runtime, when it says so.
    pub changed_by: Option<String>,
}

/// What to send to a target runtime.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The target's new flow set, as Stagehand stores flows (values lifted).
    pub flows: BTreeMap<FlowName, FlowContent>,
    /// The **target's** values, re-injected for every env entry; a key
    /// with `None` goes out empty.
    pub values: BTreeMap<EnvKey, Option<SecretValue>>,
    /// The revision the target had when Stagehand last saw it; the runtime
    /// refuses the deploy (a [`RuntimeError::Conflict`]) if it changed.
    /// `None` deploys unconditionally.
    pub base_revision: Option<Revision>,
}

/// The runtime accepted a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub revision: Revision,
}

/// Why a runtime call failed. Messages never carry a credential or a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// No answer: refused, reset, timed out, DNS.
    #[error("the runtime is unreachable: {0}")]
    Unreachable(String),
    /// The runtime refused Stagehand's credentials.
    #[error("the runtime refused the credentials: {0}")]
    AuthFailed(String),
    /// The runtime changed since `base_revision`.
    #[error("the runtime changed since Stagehand last saw it: {0}")]
    Conflict(String),
    /// The runtime answered with an error.
    #[error("the runtime answered {status}: {message}")]
    Rejected { status: u16, message: String },
    /// The runtime's content cannot be carried as Stagehand flows (or the
    /// flows cannot be turned into the runtime's payload).
    #[error("{0}")]
    Invalid(String),
}

impl RuntimeError {
    /// A short machine-readable name of the failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::AuthFailed(_) => "auth_failed",
            Self::Conflict(_) => "runtime_conflict",
            Self::Rejected { .. } => "runtime_rejected",
            Self::Invalid(_) => "runtime_invalid",
        }
    }
}

pub type RuntimeResult<T> = Result<T, RuntimeError>;

/// How runtime calls behave.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The whole-request timeout of every runtime call.
    pub timeout: Duration,
    /// The connect timeout.
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// One runtime, reached through its connection.
#[async_trait]
pub trait Runtime: Send + Sync + fmt::Debug {
    fn kind(&self) -> RuntimeKind;
    /// Authenticates and reads the current revision: "test connection".
    async fn revision(&self) -> RuntimeResult<Revision>;
    /// Reads the runtime's flows and env values.
    async fn pull(&self) -> RuntimeResult<Pulled>;
    /// Sends a deployment, guarded by its `base_revision`.
    async fn deploy(&self, deployment: &Deployment) -> RuntimeResult<Deployed>;
    /// Secrets the client was issued along the way (Node-RED's session
    /// token for a username and password), which an answer may echo like
    /// the configured credentials.
    fn session_secrets(&self) -> Vec<SecretValue> {
        Vec::new()
    }
}

/// A client of the runtime `connection` points at.
pub fn client(connection: Connection, options: &ClientOptions) -> RuntimeResult<Box<dyn Runtime>> {
    let http = http::RuntimeHttp::new(&connection, options)?;
    Ok(match connection.kind {
        RuntimeKind::NodeRed => Box::new(nodered::NodeRed::new(http, connection.auth.clone())),
        RuntimeKind::Langflow => Box::new(langflow::Langflow::new(http, connection.auth.clone())),
    })
}
