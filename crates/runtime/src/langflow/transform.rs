//! The pure half of the Langflow connector: a Langflow flow (as `GET
//! /api/v1/flows/` returns it) ↔ the content Stagehand stores, the
//! [`Revision`] that guards a deploy, and global variables → env entries.
//! Nothing here does I/O, so all of it is unit-tested without a server.
//!
//! **What a stored flow leaves out, and why.** Langflow returns, next to a
//! flow's graph, fields that belong to the instance or to the moment, not
//! to the flow. Keeping them would make the same flow differ between dev
//! and prod (so every promotion would rewrite every flow), and sending them
//! would point a prod flow at dev's user or project:
//!
//! - `id`: carried by the Stagehand name (`flow-<id>`), which a deploy
//!   reads it back from, so it is not stored twice;
//! - `user_id`, `folder_id`, `workspace_id`: the owner and project on *this*
//!   instance; ids from another instance mean nothing there (a create lands
//!   in the target user's default project, an update keeps its project);
//! - `updated_at`, `version_token`, `last_modified_by`: change on every
//!   save; the token lives in the [`Revision`] instead, where it guards the
//!   deploy;
//! - `webhook`, `name_key`, `fs_path`: derived by the server on each save
//!   (`webhook` from whether the graph holds a Webhook component), never
//!   content of their own;
//! - in `data`: `viewport` (where the editor's canvas was panned and
//!   zoomed), and `selected` / `dragging` on nodes and edges (what someone
//!   last clicked). The editor autosaves these; they are a person's view of
//!   the graph, not the graph. A deploy keeps the target's own viewport.
//!
//! Everything else is kept as Langflow returned it, unknown future fields
//! included: dropping by name, not keeping by name, so a new Langflow field
//! travels rather than silently vanishing. The Webhook component's
//! `endpoint`/`curl` fields hold the placeholders `BACKEND_URL` and
//! `CURL_WEBHOOK` in storage (the editor renders the instance's URL at
//! display time), so they are not per-instance and need no rewrite.
//!
//! **Values.** A field bound to a global variable holds
//! `load_from_db: true` and the variable's *name* as its value, so no value
//! is inside a flow and nothing needs lifting: the target resolves the name
//! against its own variables. A secret typed straight into a `password`
//! field, however, *is* returned by Langflow. Stagehand refuses to carry
//! such a flow (pull and deploy both fail with the flow, node and field
//! named, and never the value): storing it would put a dev secret into
//! Stagehand's flow history and ship it to prod, and silently blanking it
//! would break the flow on every deploy.

use crate::{FoundValue, Revision, RuntimeError, RuntimeResult};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use stagehand_domain::{EnvKey, FlowContent, FlowName, SecretValue};
use std::collections::{BTreeMap, BTreeSet};

/// Stagehand names a Langflow flow `flow-<id>`: the id is what Langflow
/// keeps across instances (`PUT /flows/{id}`), the display name is not
/// unique across users and can be renamed.
pub const FLOW_NAME_PREFIX: &str = "flow-";

/// Top-level fields of a Langflow flow that are not stored (see the module
/// doc for why each one goes).
pub const DROPPED_FLOW_FIELDS: [&str; 10] = [
    "id",
    "user_id",
    "folder_id",
    "workspace_id",
    "updated_at",
    "version_token",
    "last_modified_by",
    "webhook",
    "name_key",
    "fs_path",
];

/// Fields of `data` that are editor view state.
const DROPPED_DATA_FIELDS: [&str; 1] = ["viewport"];
/// Fields of each node and edge that are editor view state.
const DROPPED_ELEMENT_FIELDS: [&str; 2] = ["selected", "dragging"];

/// The Stagehand name of the Langflow flow `id`.
pub fn flow_name(id: &str) -> RuntimeResult<FlowName> {
    if !is_flow_id(id) {
        return Err(RuntimeError::Invalid(format!(
            "Langflow returned a flow id that is not a UUID: {id:?}"
        )));
    }
    FlowName::parse(&format!("{FLOW_NAME_PREFIX}{id}"))
        .map_err(|e| RuntimeError::Invalid(e.message().to_owned()))
}

/// The Langflow id a Stagehand flow name stands for. Only names this
/// module made (`flow-<uuid>`) can be deployed to Langflow: a flow must
/// keep one id on every stage, so Stagehand never invents one.
pub fn flow_id(name: &FlowName) -> RuntimeResult<String> {
    name.as_str()
        .strip_prefix(FLOW_NAME_PREFIX)
        .map(str::to_ascii_lowercase)
        .filter(|id| is_flow_id(id))
        .ok_or_else(|| {
            RuntimeError::Invalid(format!(
                "flow {name:?} cannot go to Langflow: its name must be flow-<Langflow flow id> (pulled from a Langflow instance)"
            ))
        })
}

/// A hyphenated UUID, as Langflow writes ids.
fn is_flow_id(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A flow as the list endpoint returns it: the fields this module reads,
/// and the whole object.
#[derive(Debug, Clone)]
pub struct RemoteFlow {
    pub id: String,
    /// What `If-Match` expects; `None` for a row written before Langflow
    /// had tokens (such a row cannot be guarded per write).
    pub version_token: Option<String>,
    pub raw: Value,
}

impl RemoteFlow {
    pub fn from_value(raw: Value) -> RuntimeResult<Self> {
        let id = raw
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| RuntimeError::Invalid("Langflow returned a flow without an id".into()))?
            .to_owned();
        let version_token = raw
            .get("version_token")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Self {
            id,
            version_token,
            raw,
        })
    }

    /// The display name, for messages.
    pub fn label(&self) -> &str {
        self.raw.get("name").and_then(Value::as_str).unwrap_or("")
    }
}

/// The content Stagehand stores for a Langflow flow: the flow without the
/// instance- and moment-bound fields. Fails on a literal secret.
pub fn stored_content(flow: &Value) -> RuntimeResult<FlowContent> {
    let Value::Object(fields) = flow else {
        return Err(RuntimeError::Invalid(
            "Langflow returned a flow that is not a JSON object".into(),
        ));
    };
    let mut kept = fields.clone();
    for field in DROPPED_FLOW_FIELDS {
        kept.remove(field);
    }
    if let Some(Value::Object(data)) = kept.get_mut("data") {
        strip_view_state(data);
    }
    let label = fields.get("name").and_then(Value::as_str).unwrap_or("");
    refuse_literal_secrets(label, &kept)?;
    FlowContent::from_value(&Value::Object(kept))
        .map_err(|e| RuntimeError::Invalid(format!("flow {label:?}: {}", e.message())))
}

fn strip_view_state(data: &mut Map<String, Value>) {
    for field in DROPPED_DATA_FIELDS {
        data.remove(field);
    }
    for list in ["nodes", "edges"] {
        if let Some(Value::Array(items)) = data.get_mut(list) {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                for field in DROPPED_ELEMENT_FIELDS {
                    item.remove(field);
                }
            }
        }
    }
}

/// A `password` field holding a value typed straight in (not bound to a
/// variable): where a secret would leak into a stored flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteralSecret {
    pub node: String,
    pub field: String,
}

/// Every component field of a flow, as (node id, field name, field).
fn template_fields(flow: &Map<String, Value>) -> impl Iterator<Item = (&str, &str, &Value)> {
    flow.get("data")
        .and_then(|d| d.get("nodes"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|node| {
            let node_id = node.get("id").and_then(Value::as_str).unwrap_or("");
            node.get("data")
                .and_then(|d| d.get("node"))
                .and_then(|n| n.get("template"))
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(move |(name, field)| (node_id, name.as_str(), field))
        })
}

fn is_bound(field: &Value) -> bool {
    field.get("load_from_db").and_then(Value::as_bool) == Some(true)
}

/// The `password` fields that hold a literal value.
pub fn literal_secrets(flow: &Map<String, Value>) -> Vec<LiteralSecret> {
    template_fields(flow)
        .filter(|(_, _, field)| {
            field.get("password").and_then(Value::as_bool) == Some(true)
                && !is_bound(field)
                && field
                    .get("value")
                    .is_some_and(|v| !(v.is_null() || v.as_str().is_some_and(str::is_empty)))
        })
        .map(|(node, name, _)| LiteralSecret {
            node: node.to_owned(),
            field: name.to_owned(),
        })
        .collect()
}

fn refuse_literal_secrets(label: &str, flow: &Map<String, Value>) -> RuntimeResult<()> {
    let found = literal_secrets(flow);
    if found.is_empty() {
        return Ok(());
    }
    let places: Vec<String> = found
        .iter()
        .map(|s| format!("{}.{}", s.node, s.field))
        .collect();
    Err(RuntimeError::Invalid(format!(
        "flow {label:?} has a secret typed straight into {}: Stagehand does not carry secrets inside flows. \
         Bind the field to a Credential global variable in Langflow instead (each stage then keeps its own value)",
        places.join(", ")
    )))
}

/// The names of the global variables a flow's fields are bound to.
pub fn bound_variables(flow: &Value) -> BTreeSet<String> {
    let Some(fields) = flow.as_object() else {
        return BTreeSet::new();
    };
    template_fields(fields)
        .filter(|(_, _, field)| is_bound(field))
        .filter_map(|(_, _, field)| field.get("value").and_then(Value::as_str))
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The body of `PUT /api/v1/flows/{id}` for stored `content`. An existing
/// target flow's `viewport` is carried over (it is the target editor's
/// view, not content); nothing else of the target's is.
pub fn put_body(content: &FlowContent, existing: Option<&Value>) -> RuntimeResult<Value> {
    let Value::Object(mut body) = content.to_value() else {
        return Err(RuntimeError::Invalid(
            "a Langflow flow must be a JSON object".into(),
        ));
    };
    for field in DROPPED_FLOW_FIELDS {
        body.remove(field);
    }
    let label = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if label.is_empty() {
        return Err(RuntimeError::Invalid(
            "a Langflow flow needs a non-empty \"name\"".into(),
        ));
    }
    match body.get("data") {
        Some(Value::Object(data)) if data.contains_key("nodes") && data.contains_key("edges") => {}
        _ => {
            return Err(RuntimeError::Invalid(format!(
                "flow {label:?} has no \"data\" with \"nodes\" and \"edges\": not a Langflow flow"
            )));
        }
    }
    refuse_literal_secrets(&label, &body)?;
    let viewport = existing
        .and_then(|e| e.get("data"))
        .and_then(|d| d.get("viewport"))
        .cloned();
    if let (Some(viewport), Some(Value::Object(data))) = (viewport, body.get_mut("data")) {
        data.insert("viewport".into(), viewport);
    }
    Ok(Value::Object(body))
}

/// What a Langflow revision holds: a digest of every flow's id, version
/// token and stored content (so it changes when a flow is edited, renamed,
/// added or removed: Langflow rotates the token on graph edits only), and
/// each flow's token, which is what `If-Match` expects when the deploy
/// writes that flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionState {
    /// `v` tells this encoding from a later one.
    pub v: u8,
    /// SHA-256 (hex) over the sorted (id, token, content hash) triples.
    pub digest: String,
    /// Flow id → its version token (`None`: a legacy row with no token).
    pub tokens: BTreeMap<String, Option<String>>,
}

impl RevisionState {
    /// The state of a runtime holding `flows` (id, token, stored content).
    pub fn of<'a>(
        flows: impl IntoIterator<Item = (&'a str, Option<&'a str>, &'a FlowContent)>,
    ) -> Self {
        let mut rows: Vec<(&str, Option<&str>, &str)> = flows
            .into_iter()
            .map(|(id, token, content)| (id, token, content.hash().as_str()))
            .collect();
        rows.sort_unstable();
        let mut hasher = Sha256::new();
        for (id, token, hash) in &rows {
            hasher.update(id.as_bytes());
            hasher.update(b"\0");
            hasher.update(token.unwrap_or("-").as_bytes());
            hasher.update(b"\0");
            hasher.update(hash.as_bytes());
            hasher.update(b"\n");
        }
        Self {
            v: 1,
            digest: hex::encode(hasher.finalize()),
            tokens: rows
                .into_iter()
                .map(|(id, token, _)| (id.to_owned(), token.map(str::to_owned)))
                .collect(),
        }
    }

    /// The opaque revision string: compact JSON of this state.
    pub fn encode(&self) -> Revision {
        Revision(serde_json::to_string(self).unwrap_or_default())
    }

    /// Reads back a revision this module made.
    pub fn decode(revision: &Revision) -> RuntimeResult<Self> {
        serde_json::from_str::<Self>(&revision.0)
            .ok()
            .filter(|s| s.v == 1)
            .ok_or_else(|| {
                RuntimeError::Invalid(
                    "the stored revision is not a Langflow revision: pull the instance again"
                        .into(),
                )
            })
    }

    /// In words, what changed from `self` (the base) to `now`, for a
    /// conflict message: flows edited, added and removed, by id.
    pub fn describe_change(&self, now: &Self) -> String {
        let mut parts = Vec::new();
        let changed: Vec<&str> = now
            .tokens
            .iter()
            .filter(|(id, token)| self.tokens.get(*id).is_some_and(|t| t != *token))
            .map(|(id, _)| id.as_str())
            .collect();
        let added: Vec<&str> = now
            .tokens
            .keys()
            .filter(|id| !self.tokens.contains_key(*id))
            .map(String::as_str)
            .collect();
        let removed: Vec<&str> = self
            .tokens
            .keys()
            .filter(|id| !now.tokens.contains_key(*id))
            .map(String::as_str)
            .collect();
        for (what, ids) in [("edited", changed), ("added", added), ("removed", removed)] {
            if !ids.is_empty() {
                parts.push(format!("{what}: {}", ids.join(", ")));
            }
        }
        if parts.is_empty() {
            "a flow was renamed or its settings changed".into()
        } else {
            format!("flows {}", parts.join("; "))
        }
    }
}

/// A Langflow global variable as `GET /api/v1/variables/` returns it.
#[derive(Clone, Deserialize)]
pub struct Variable {
    pub name: String,
    /// `Generic` or `Credential`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// A Generic variable's value; always `null` for a Credential.
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub has_value: Option<bool>,
}

impl std::fmt::Debug for Variable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Variable")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("value", &self.value.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Global variables → env entries. A Generic variable's value is found; a
/// Credential's is held by Langflow (it never returns it); a name bound in a
/// flow with no variable behind it is a key awaiting a value. Names that
/// are not valid env keys (Langflow allows spaces) are returned apart so
/// the caller can say so rather than drop them silently.
pub fn env_of(
    variables: &[Variable],
    bound: &BTreeSet<String>,
) -> (BTreeMap<EnvKey, FoundValue>, Vec<String>) {
    let mut env = BTreeMap::new();
    let mut invalid = Vec::new();
    for variable in variables {
        let Ok(key) = EnvKey::parse(&variable.name) else {
            invalid.push(variable.name.clone());
            continue;
        };
        let found = if variable.kind.as_deref() == Some("Credential") {
            if variable.has_value == Some(false) {
                FoundValue::Empty
            } else {
                FoundValue::HeldByRuntime
            }
        } else {
            match &variable.value {
                Some(v) if !v.is_empty() => FoundValue::Value(SecretValue::new(v.clone())),
                _ => FoundValue::Empty,
            }
        };
        env.insert(key, found);
    }
    for name in bound {
        match EnvKey::parse(name) {
            Ok(key) => {
                env.entry(key).or_insert(FoundValue::Empty);
            }
            Err(_) => {
                if !invalid.contains(name) {
                    invalid.push(name.clone());
                }
            }
        }
    }
    (env, invalid)
}

/// The keys a deployment needs (its env keys and the variables its flows
/// are bound to) that have no variable on the target.
pub fn missing_variables<'a>(
    needed: impl IntoIterator<Item = &'a str>,
    variables: &[Variable],
) -> BTreeSet<String> {
    let present: BTreeSet<&str> = variables.iter().map(|v| v.name.as_str()).collect();
    needed
        .into_iter()
        .filter(|name| !present.contains(name))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "c13c9d44-17b3-451b-93ec-3e87fa32710f";

    fn text_node(id: &str, value: &str, bound: bool, password: bool) -> Value {
        json!({
            "id": id, "type": "genericNode", "position": {"x": 0, "y": 0},
            "selected": true, "dragging": false,
            "data": {"id": id, "type": "TextInput", "node": {"template": {
                "input_value": {"load_from_db": bound, "password": password, "value": value, "type": "str"},
                "code": {"value": "class X: pass", "password": false, "load_from_db": false}
            }}}
        })
    }

    fn langflow_flow(nodes: Vec<Value>) -> Value {
        json!({
            "id": ID, "name": "greet", "description": null,
            "user_id": "e0afb70e-a3cb-4475-9dc1-ded44bea33b0",
            "folder_id": "c32802df-0bf5-488b-9122-2b40a1ecd1ae", "workspace_id": null,
            "updated_at": "2026-11-23T19:20:34+00:00",
            "version_token": "128e1605-f827-42fc-ad49-d7e14d763438",
            "webhook": false, "name_key": null, "endpoint_name": "greet", "tags": ["a"],
            "access_type": "PRIVATE", "locked": false,
            "data": {"nodes": nodes, "edges": [{"id": "e1", "source": "a", "target": "b", "selected": true}],
                     "viewport": {"x": 1, "y": 2, "zoom": 0.5}}
        })
    }

    #[test]
    fn a_flow_is_named_after_its_langflow_id_and_the_name_gives_the_id_back() {
        let name = flow_name(ID).unwrap();
        assert_eq!(name.as_str(), format!("flow-{ID}"));
        assert_eq!(flow_id(&name).unwrap(), ID);
        assert!(flow_name("../etc").is_err());
        let foreign = FlowName::parse("my flow").unwrap();
        assert!(matches!(flow_id(&foreign), Err(RuntimeError::Invalid(_))));
        let bad = FlowName::parse("flow-not-a-uuid").unwrap();
        assert!(flow_id(&bad).is_err());
    }

    #[test]
    fn stored_content_drops_instance_and_moment_bound_fields_and_keeps_the_rest() {
        let flow = langflow_flow(vec![text_node("TextInput-a", "GREETING", true, true)]);
        let content = stored_content(&flow).unwrap().to_value();
        for gone in [
            "id",
            "user_id",
            "folder_id",
            "workspace_id",
            "updated_at",
            "version_token",
            "webhook",
            "name_key",
        ] {
            assert!(content.get(gone).is_none(), "{gone} should be dropped");
        }
        for kept in ["name", "endpoint_name", "tags", "access_type", "locked"] {
            assert_eq!(content.get(kept), flow.get(kept), "{kept} should be kept");
        }
        assert!(content["data"].get("viewport").is_none());
        assert!(content["data"]["nodes"][0].get("selected").is_none());
        assert!(content["data"]["nodes"][0].get("dragging").is_none());
        assert!(content["data"]["edges"][0].get("selected").is_none());
        assert_eq!(
            content["data"]["nodes"][0]["position"],
            json!({"x": 0, "y": 0})
        );
        assert_eq!(
            content["data"]["nodes"][0]["data"]["node"]["template"]["input_value"]["value"],
            "GREETING"
        );
    }

    #[test]
    fn the_same_flow_on_two_instances_stores_the_same_content() {
        let dev = langflow_flow(vec![text_node("TextInput-a", "GREETING", true, true)]);
        let mut prod = dev.clone();
        prod["user_id"] = json!("11111111-1111-1111-1111-111111111111");
        prod["folder_id"] = json!("22222222-2222-2222-2222-222222222222");
        prod["updated_at"] = json!("2027-01-01T00:00:00+00:00");
        prod["version_token"] = json!("33333333-3333-3333-3333-333333333333");
        prod["data"]["viewport"] = json!({"x": 9, "y": 9, "zoom": 2});
        prod["data"]["nodes"][0]["selected"] = json!(false);
        assert_eq!(
            stored_content(&dev).unwrap().hash(),
            stored_content(&prod).unwrap().hash()
        );
    }

    #[test]
    fn a_secret_typed_into_a_password_field_is_refused_without_showing_it() {
        let flow = langflow_flow(vec![text_node("OpenAI-x", "sk-live-123", false, true)]);
        let err = stored_content(&flow).unwrap_err();
        let RuntimeError::Invalid(message) = &err else {
            panic!("{err:?}")
        };
        assert!(message.contains("OpenAI-x.input_value"), "{message}");
        assert!(message.contains("Credential global variable"), "{message}");
        assert!(!message.contains("sk-live-123"));
    }

    #[test]
    fn bound_empty_and_non_password_fields_are_not_secrets() {
        let flow = langflow_flow(vec![
            text_node("a", "GREETING", true, true),
            text_node("b", "", false, true),
            text_node("c", "hello", false, false),
        ]);
        assert!(stored_content(&flow).is_ok());
        assert_eq!(
            bound_variables(&flow),
            BTreeSet::from(["GREETING".to_owned()])
        );
    }

    #[test]
    fn the_put_body_is_the_content_with_the_targets_viewport() {
        let flow = langflow_flow(vec![text_node("a", "GREETING", true, true)]);
        let content = stored_content(&flow).unwrap();
        let mut target = flow.clone();
        target["data"]["viewport"] = json!({"x": 7, "y": 7, "zoom": 1});
        let body = put_body(&content, Some(&target)).unwrap();
        assert_eq!(body["data"]["viewport"], json!({"x": 7, "y": 7, "zoom": 1}));
        assert!(body.get("user_id").is_none() && body.get("folder_id").is_none());
        let fresh = put_body(&content, None).unwrap();
        assert!(fresh["data"].get("viewport").is_none());
        assert_eq!(fresh["name"], "greet");
    }

    #[test]
    fn a_put_body_needs_a_name_and_a_graph_and_no_literal_secret() {
        let no_name =
            FlowContent::from_value(&json!({"data": {"nodes": [], "edges": []}})).unwrap();
        assert!(put_body(&no_name, None).is_err());
        let no_graph = FlowContent::from_value(&json!({"name": "x", "data": {}})).unwrap();
        assert!(put_body(&no_graph, None).is_err());
        let secret = FlowContent::from_value(&json!({"name": "x", "data": {"edges": [],
            "nodes": [text_node("a", "sk-1", false, true)]}}))
        .unwrap();
        assert!(put_body(&secret, None).is_err());
    }

    fn content(n: u8) -> FlowContent {
        FlowContent::from_value(&json!({"name": format!("f{n}")})).unwrap()
    }

    #[test]
    fn a_revision_round_trips_and_carries_each_flows_token() {
        let (a, b) = (content(1), content(2));
        let state = RevisionState::of([("id-b", Some("t2"), &b), ("id-a", None, &a)]);
        let decoded = RevisionState::decode(&state.encode()).unwrap();
        assert_eq!(decoded, state);
        assert_eq!(decoded.tokens["id-a"], None);
        assert_eq!(decoded.tokens["id-b"].as_deref(), Some("t2"));
        assert!(RevisionState::decode(&Revision("abc".into())).is_err());
    }

    #[test]
    fn a_revision_changes_when_a_flow_is_edited_renamed_added_or_removed() {
        let (a, b) = (content(1), content(2));
        let base = RevisionState::of([("x", Some("t1"), &a)]);
        let same = RevisionState::of([("x", Some("t1"), &a)]);
        assert_eq!(base.encode(), same.encode());
        let edited = RevisionState::of([("x", Some("t9"), &a)]);
        let renamed = RevisionState::of([("x", Some("t1"), &b)]);
        let added = RevisionState::of([("x", Some("t1"), &a), ("y", Some("t2"), &b)]);
        let removed = RevisionState::of(std::iter::empty());
        for other in [&edited, &renamed, &added, &removed] {
            assert_ne!(base.digest, other.digest);
        }
        assert!(base.describe_change(&edited).contains("edited: x"));
        assert!(base.describe_change(&added).contains("added: y"));
        assert!(base.describe_change(&removed).contains("removed: x"));
        assert!(base.describe_change(&renamed).contains("renamed"));
    }

    fn var(name: &str, kind: &str, value: Option<&str>) -> Variable {
        Variable {
            name: name.into(),
            kind: Some(kind.into()),
            value: value.map(str::to_owned),
            has_value: Some(true),
        }
    }

    #[test]
    fn generic_values_are_found_credentials_are_held_and_unbacked_bindings_await_a_value() {
        let vars = [
            var("GREETING", "Generic", Some("dev-value")),
            var("OPENAI_API_KEY", "Credential", None),
            var("has space", "Generic", Some("x")),
        ];
        let bound = BTreeSet::from(["GREETING".to_owned(), "MISSING".to_owned()]);
        let (env, invalid) = env_of(&vars, &bound);
        let key = |k: &str| EnvKey::parse(k).unwrap();
        assert_eq!(
            env[&key("GREETING")],
            FoundValue::Value(SecretValue::new("dev-value".into()))
        );
        assert_eq!(env[&key("OPENAI_API_KEY")], FoundValue::HeldByRuntime);
        assert_eq!(env[&key("MISSING")], FoundValue::Empty);
        assert_eq!(env.len(), 3);
        assert_eq!(invalid, vec!["has space".to_owned()]);
        assert!(!format!("{:?}", vars[0]).contains("dev-value"));
    }

    #[test]
    fn missing_variables_are_the_needed_names_the_target_lacks() {
        let vars = [var("GREETING", "Generic", Some("prod"))];
        assert_eq!(
            missing_variables(["GREETING", "OTHER"], &vars),
            BTreeSet::from(["OTHER".to_owned()])
        );
    }
}
