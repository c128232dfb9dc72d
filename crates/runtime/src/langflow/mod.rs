//! Langflow: the client (REST API v1, `x-api-key`) and, in [`transform`],
//! the pure transforms between Langflow's flows and variables and
//! Stagehand's flows and env.
//!
//! - **Pull** reads every flow of the key's user (`GET /api/v1/flows/`) as
//!   one Stagehand flow named `flow-<id>`, and the global variables as env:
//!   a Generic variable's value is found, a Credential's is held by
//!   Langflow, which never returns it.
//! - **Revision**: Langflow has none for the whole instance, so Stagehand
//!   makes one ([`transform::RevisionState`]): a digest of every flow plus
//!   each flow's version token, the value `If-Match` expects.
//! - **Deploy** re-reads the target and refuses (a `Conflict`, nothing
//!   written) if it differs from the base revision; then rewrites changed
//!   flows with `PUT /flows/{id}` and `If-Match` (so a graph edit racing
//!   the deploy is refused by Langflow itself; Langflow's token covers the
//!   graph only, so a rename or description edit landing in that window is
//!   overwritten), deletes flows absent from the
//!   deployment, and creates new ones with their ids. Variables are never
//!   written: a flow names its variables, and the target resolves those
//!   names against its own; no value of the source is ever sent.

pub mod transform;

use crate::http::{RuntimeHttp, error_message};
use crate::{
    Deployed, Deployment, Pulled, Revision, Runtime, RuntimeAuth, RuntimeError, RuntimeKind,
    RuntimeResult,
};
use async_trait::async_trait;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use stagehand_domain::{FlowContent, FlowName};
use std::collections::{BTreeMap, BTreeSet};
use transform::{RemoteFlow, RevisionState, Variable};

const FLOWS: &str = "api/v1/flows/";
const VARIABLES: &str = "api/v1/variables/";

/// A Langflow instance reached with an API key.
#[derive(Debug)]
pub struct Langflow {
    http: RuntimeHttp,
    auth: RuntimeAuth,
}

/// A target flow as read at the start of a deploy.
#[derive(Debug)]
struct Current {
    flow: RemoteFlow,
    content: FlowContent,
}

/// What the target holds now, read in one pass.
#[derive(Debug)]
struct Snapshot {
    flows: BTreeMap<String, Current>,
    state: RevisionState,
}

impl Langflow {
    pub fn new(http: RuntimeHttp, auth: RuntimeAuth) -> Self {
        Self { http, auth }
    }

    fn request(&self, method: Method, path: &str) -> RuntimeResult<RequestBuilder> {
        let request = self.http.request(method, path)?;
        match &self.auth {
            RuntimeAuth::ApiKey { key } => Ok(request.header("x-api-key", key.as_str())),
            // An open Langflow (AUTO_LOGIN) needs nothing.
            RuntimeAuth::None => Ok(request),
            other => Err(RuntimeError::Invalid(format!(
                "Langflow authenticates with an API key, not {}",
                other.type_name()
            ))),
        }
    }

    /// Sends a request and reads a 2xx JSON answer; any other answer is an
    /// error (`AuthFailed` for 401/403, by the HTTP layer).
    async fn json(&self, request: RequestBuilder) -> RuntimeResult<Value> {
        let response = self.http.send(request).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(RuntimeError::Rejected {
                status: status.as_u16(),
                message: error_message(response).await,
            });
        }
        let body = crate::http::read_limited(response, crate::http::MAX_ANSWER_BYTES).await?;
        serde_json::from_slice::<Value>(&body).map_err(|e| {
            RuntimeError::Invalid(format!(
                "Langflow answered with bad JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }

    /// Every flow of the key's user, as stored content, keyed by id.
    async fn snapshot(&self) -> RuntimeResult<Snapshot> {
        let request = self
            .request(Method::GET, FLOWS)?
            .query(&[("get_all", "true"), ("header_flows", "false")]);
        let Value::Array(list) = self.json(request).await? else {
            return Err(RuntimeError::Invalid(
                "Langflow's flow list is not a JSON array".into(),
            ));
        };
        let mut flows = BTreeMap::new();
        for raw in list {
            let flow = RemoteFlow::from_value(raw)?;
            let content = transform::stored_content(&flow.raw)?;
            flows.insert(flow.id.clone(), Current { flow, content });
        }
        let state = RevisionState::of(flows.values().map(|c| {
            (
                c.flow.id.as_str(),
                c.flow.version_token.as_deref(),
                &c.content,
            )
        }));
        Ok(Snapshot { flows, state })
    }

    async fn variables(&self) -> RuntimeResult<Vec<Variable>> {
        let value = self.json(self.request(Method::GET, VARIABLES)?).await?;
        // serde's message could quote a value: say where, not what.
        serde_json::from_value(value).map_err(|e| {
            RuntimeError::Invalid(format!(
                "Langflow's variable list is not as expected (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }

    /// The names of the global variables `deployment` needs (its env keys
    /// and the variables its flows are bound to) that the target does not
    /// have: those fields will resolve to nothing until someone creates
    /// the variable on the target. Reads only.
    pub async fn missing_variables(&self, deployment: &Deployment) -> RuntimeResult<Vec<String>> {
        let variables = self.variables().await?;
        Ok(missing_for(deployment, &variables).into_iter().collect())
    }

    /// `PUT /api/v1/flows/{id}`, guarded by `If-Match` when `token` is set.
    async fn put_flow(&self, id: &str, body: &Value, token: Option<&str>) -> RuntimeResult<()> {
        let mut request = self
            .request(Method::PUT, &format!("{FLOWS}{id}"))?
            .json(body);
        if let Some(token) = token {
            request = request.header("If-Match", format!("\"{token}\""));
        }
        let response = self.http.send(request).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = crate::http::read_limited(response, 64 * 1024)
            .await
            .unwrap_or_default();
        let detail = serde_json::from_slice::<Value>(&text)
            .ok()
            .and_then(|v| v.get("detail").cloned());
        let code = detail
            .as_ref()
            .and_then(|d| d.get("code"))
            .and_then(Value::as_str);
        if status == StatusCode::CONFLICT && code == Some("flow_version_conflict") {
            let by = detail
                .as_ref()
                .and_then(|d| d.pointer("/modified_by/username"))
                .and_then(Value::as_str)
                .map(|u| format!(" by {u}"))
                .unwrap_or_default();
            return Err(RuntimeError::Conflict(format!(
                "flow {id} was edited{by} on Langflow during the deploy"
            )));
        }
        // Only Langflow's own message, never the raw body (it could echo
        // what was sent); the caller scrubs it further.
        let message: String = detail
            .and_then(|d| d.as_str().map(str::to_owned))
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned())
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        Err(RuntimeError::Rejected {
            status: status.as_u16(),
            message: format!("writing flow {id}: {message}"),
        })
    }

    async fn delete_flow(&self, id: &str) -> RuntimeResult<()> {
        let request = self.request(Method::DELETE, &format!("{FLOWS}{id}"))?;
        let response = self.http.send(request).await?;
        let status = response.status();
        // Already gone is what a delete wants.
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(RuntimeError::Rejected {
            status: status.as_u16(),
            message: format!("deleting flow {id}: {}", error_message(response).await),
        })
    }
}

/// The variable names a deployment needs that `variables` lacks.
fn missing_for(deployment: &Deployment, variables: &[Variable]) -> BTreeSet<String> {
    let mut needed: BTreeSet<String> = deployment
        .values
        .keys()
        .map(|k| k.as_str().to_owned())
        .collect();
    for content in deployment.flows.values() {
        needed.extend(transform::bound_variables(&content.to_value()));
    }
    transform::missing_variables(needed.iter().map(String::as_str), variables)
}

/// One write of a deploy, planned before any is made.
#[derive(Debug)]
enum Write {
    Update {
        id: String,
        body: Value,
        token: Option<String>,
    },
    Create {
        id: String,
        body: Value,
    },
    Delete {
        id: String,
    },
}

/// Plans a deploy: changed flows updated (guarded by the base revision's
/// token, or unguarded when there is no base), flows absent from the
/// deployment deleted, new flows created. Unchanged flows are not
/// rewritten. Updates go first: they are the writes Langflow can refuse
/// on a stale token, so a conflict surfaces before anything is deleted or
/// created.
fn plan(
    deployment: &Deployment,
    current: &Snapshot,
    base: Option<&RevisionState>,
) -> RuntimeResult<Vec<Write>> {
    let mut wanted: BTreeMap<String, (&FlowName, &FlowContent)> = BTreeMap::new();
    for (name, content) in &deployment.flows {
        wanted.insert(transform::flow_id(name)?, (name, content));
    }
    let mut updates = Vec::new();
    let mut creates = Vec::new();
    for (id, (_, content)) in &wanted {
        match current.flows.get(id) {
            Some(existing) if existing.content.hash() == content.hash() => {}
            Some(existing) => updates.push(Write::Update {
                id: id.clone(),
                body: transform::put_body(content, Some(&existing.flow.raw))?,
                token: base.and_then(|b| b.tokens.get(id).cloned().flatten()),
            }),
            None => creates.push(Write::Create {
                id: id.clone(),
                body: transform::put_body(content, None)?,
            }),
        }
    }
    let deletes = current
        .flows
        .keys()
        .filter(|id| !wanted.contains_key(*id))
        .map(|id| Write::Delete { id: id.clone() });
    Ok(updates.into_iter().chain(deletes).chain(creates).collect())
}

#[async_trait]
impl Runtime for Langflow {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Langflow
    }

    async fn revision(&self) -> RuntimeResult<Revision> {
        Ok(self.snapshot().await?.state.encode())
    }

    async fn pull(&self) -> RuntimeResult<Pulled> {
        let snapshot = self.snapshot().await?;
        let variables = self.variables().await?;
        let mut flows = BTreeMap::new();
        let mut bound = BTreeSet::new();
        for current in snapshot.flows.values() {
            bound.extend(transform::bound_variables(&current.flow.raw));
            flows.insert(
                transform::flow_name(&current.flow.id)?,
                current.content.clone(),
            );
        }
        let (env, invalid) = transform::env_of(&variables, &bound);
        if !invalid.is_empty() {
            tracing::warn!(
                variables = ?invalid,
                "Langflow variables whose names are not valid env keys were not pulled"
            );
        }
        Ok(Pulled {
            revision: snapshot.state.encode(),
            flows,
            env,
            changed_by: None,
        })
    }

    async fn deploy(&self, deployment: &Deployment) -> RuntimeResult<Deployed> {
        let base = deployment
            .base_revision
            .as_ref()
            .map(RevisionState::decode)
            .transpose()?;
        let current = self.snapshot().await?;
        // Every precondition is checked before the first write: a target
        // that moved since the base revision is refused whole.
        if let Some(base) = &base
            && base.digest != current.state.digest
        {
            return Err(RuntimeError::Conflict(format!(
                "Langflow changed since Stagehand last read it ({}); nothing was deployed: pull it again and review",
                base.describe_change(&current.state)
            )));
        }
        let writes = plan(deployment, &current, base.as_ref())?;
        // Values stay where they are: report, never write, what is missing.
        let missing = missing_for(deployment, &self.variables().await?);
        if !missing.is_empty() {
            tracing::warn!(
                variables = ?missing,
                "the target Langflow has no global variable for these keys: the fields bound to them resolve to nothing until one is created there"
            );
        }
        let total = writes.len();
        for (done, write) in writes.into_iter().enumerate() {
            let result = match &write {
                Write::Update { id, body, token } => {
                    self.put_flow(id, body, token.as_deref()).await
                }
                Write::Create { id, body } => self.put_flow(id, body, None).await,
                Write::Delete { id } => self.delete_flow(id).await,
            };
            result.map_err(|e| partial(e, done, total))?;
        }
        Ok(Deployed {
            revision: self.snapshot().await?.state.encode(),
        })
    }
}

/// Says how far a deploy got when a write failed: Langflow has no
/// transaction over several flows, so a failure after the first write
/// leaves the target part-deployed, and the caller must not report that
/// nothing was deployed.
fn partial(error: RuntimeError, done: usize, total: usize) -> RuntimeError {
    let note = if done == 0 {
        " (nothing was deployed)".to_owned()
    } else {
        format!(" ({done} of {total} flow writes were already made: pull the target)")
    };
    match error {
        RuntimeError::Conflict(m) => RuntimeError::Conflict(m + &note),
        RuntimeError::Rejected { status, message } => RuntimeError::Rejected {
            status,
            message: message + &note,
        },
        RuntimeError::Unreachable(m) => RuntimeError::Unreachable(m + &note),
        RuntimeError::AuthFailed(m) => RuntimeError::AuthFailed(m + &note),
        RuntimeError::Invalid(m) => RuntimeError::Invalid(m + &note),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use stagehand_domain::{EnvKey, SecretValue};

    const A: &str = "00000000-0000-4000-8000-00000000000a";
    const B: &str = "00000000-0000-4000-8000-00000000000b";
    const C: &str = "00000000-0000-4000-8000-00000000000c";

    fn remote(id: &str, name: &str, token: &str) -> Current {
        let raw = json!({"id": id, "name": name, "version_token": token,
            "data": {"nodes": [], "edges": [], "viewport": {"x": 0, "y": 0, "zoom": 1}}});
        Current {
            content: transform::stored_content(&raw).unwrap(),
            flow: RemoteFlow::from_value(raw).unwrap(),
        }
    }

    fn snapshot(flows: Vec<Current>) -> Snapshot {
        let flows: BTreeMap<String, Current> =
            flows.into_iter().map(|c| (c.flow.id.clone(), c)).collect();
        let state = RevisionState::of(flows.values().map(|c| {
            (
                c.flow.id.as_str(),
                c.flow.version_token.as_deref(),
                &c.content,
            )
        }));
        Snapshot { flows, state }
    }

    fn deployment(flows: &[(&str, &str)]) -> Deployment {
        Deployment {
            flows: flows
                .iter()
                .map(|(id, name)| {
                    (
                        transform::flow_name(id).unwrap(),
                        FlowContent::from_value(
                            &json!({"name": name, "data": {"nodes": [], "edges": []}}),
                        )
                        .unwrap(),
                    )
                })
                .collect(),
            values: BTreeMap::from([(
                EnvKey::parse("GREETING").unwrap(),
                Some(SecretValue::new("prod".into())),
            )]),
            base_revision: None,
        }
    }

    #[test]
    fn a_deploy_updates_changed_flows_first_then_deletes_then_creates_and_skips_unchanged() {
        let target = snapshot(vec![remote(A, "a", "ta"), remote(B, "b-old", "tb")]);
        let base = target.state.clone();
        let writes = plan(
            &deployment(&[(B, "b-new"), (C, "c"), (A, "a")][..]),
            &target,
            Some(&base),
        )
        .unwrap();
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert!(
            matches!(&writes[0], Write::Update { id, token: Some(t), body } if id == B && t == "tb" && body["data"]["viewport"]["zoom"] == 1)
        );
        assert!(matches!(&writes[1], Write::Create { id, .. } if id == C));
        let writes = plan(&deployment(&[(C, "c")][..]), &target, None).unwrap();
        let kinds: Vec<&str> = writes
            .iter()
            .map(|w| match w {
                Write::Update { .. } => "update",
                Write::Delete { .. } => "delete",
                Write::Create { .. } => "create",
            })
            .collect();
        assert_eq!(kinds, ["delete", "delete", "create"]);
    }

    #[test]
    fn without_a_base_revision_updates_are_unguarded() {
        let target = snapshot(vec![remote(A, "a", "ta")]);
        let writes = plan(&deployment(&[(A, "a2")][..]), &target, None).unwrap();
        assert!(matches!(&writes[0], Write::Update { token: None, .. }));
    }

    #[test]
    fn a_flow_not_named_after_a_langflow_id_is_refused_before_any_write() {
        let target = snapshot(vec![]);
        let mut d = deployment(&[]);
        d.flows.insert(
            FlowName::parse("hand-made").unwrap(),
            FlowContent::from_value(&json!({"name": "x"})).unwrap(),
        );
        assert!(matches!(
            plan(&d, &target, None),
            Err(RuntimeError::Invalid(_))
        ));
    }

    #[test]
    fn missing_variables_include_deployment_keys_and_bound_names() {
        let mut d = deployment(&[]);
        d.flows.insert(
            transform::flow_name(A).unwrap(),
            FlowContent::from_value(&json!({"name": "x", "data": {"edges": [], "nodes": [
                {"id": "n", "data": {"node": {"template": {"f": {"load_from_db": true, "value": "API_TOKEN"}}}}}
            ]}}))
            .unwrap(),
        );
        let missing = missing_for(&d, &[]);
        assert_eq!(
            missing,
            BTreeSet::from(["API_TOKEN".to_owned(), "GREETING".to_owned()])
        );
    }

    #[test]
    fn a_failure_after_some_writes_says_so() {
        let e = partial(RuntimeError::Conflict("flow x".into()), 2, 3);
        assert!(e.to_string().contains("2 of 3 flow writes"));
        assert!(!e.to_string().contains("nothing was deployed"));
        let first = partial(RuntimeError::Conflict("flow x".into()), 0, 3);
        assert_eq!(
            first,
            RuntimeError::Conflict("flow x (nothing was deployed)".into())
        );
    }
}
