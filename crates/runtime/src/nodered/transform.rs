//! The pure transforms between Node-RED's flat flows array and Stagehand's
//! named flows.
//!
//! One Stagehand flow per tab (`tab-<id>`) and per subflow
//! (`subflow-<id>`): a JSON array of the tab or subflow node followed by
//! every node whose `z` is its id, in their original order — the shape the
//! editor exports a single flow in. Everything else (global config nodes,
//! nodes whose `z` names no tab) goes into one flow named [`CONFIG_FLOW`],
//! `{"order": [ids…], "nodes": […], "env_types": {KEY: type…}}`, which also
//! keeps the editor's tab order, so reordering tabs changes only `config`.
//!
//! Env values are lifted out on the way in and the target's put back on the
//! way out (see the `env` module); a node's `credentials` member never
//! travels either way (Node-RED never returns it, and the target keeps its
//! own credentials for every node id that survives a deploy).
//!
//! The `global-config` node's env is not content at all but a projection of
//! the instance's env store: its entries are lifted out whole, leaving only
//! the type of each key that is not `str` (`env_types`, omitted when empty)
//! and any `cred` entries; a `global-config` node left with nothing else is
//! left out. On the way out it gets every key of the target that no tab,
//! group, subflow or subflow instance gives a value, so a key only the
//! target has survives a deploy of another instance's flows. Flows without
//! a `global-config` node get one ([`GLOBAL_CONFIG_ID`]) when there is such
//! a key; there is never a second one (Node-RED would merge both, and its
//! editor would show only one).

pub use super::env::GLOBAL_CONFIG_ID;
use super::env::{self, EnvTypes, Lifted};
use crate::{FoundValue, RuntimeError, RuntimeResult};
use serde_json::{Map, Value, json};
use stagehand_domain::{EnvKey, FlowContent, FlowName, SecretValue};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The name of the flow holding config nodes and the tab order.
pub const CONFIG_FLOW: &str = "config";

/// Named flows with values lifted out, and the values found.
pub type Split = (
    BTreeMap<FlowName, FlowContent>,
    BTreeMap<EnvKey, FoundValue>,
);

type Node = Map<String, Value>;

/// A tab or subflow and the nodes inside it.
struct Container {
    name: FlowName,
    id: String,
    nodes: Vec<Node>,
}

/// Node-RED's flows array (`GET /flows`, API v2, under `"flows"`) as
/// Stagehand flows plus the env values lifted out of them.
pub fn split(flows: &[Value]) -> RuntimeResult<Split> {
    let mut raw = Vec::with_capacity(flows.len());
    for (i, item) in flows.iter().enumerate() {
        let Value::Object(node) = item else {
            return Err(RuntimeError::Invalid(format!(
                "Node-RED's flows hold an item at position {i} that is not a node object"
            )));
        };
        let mut node = node.clone();
        node.remove("credentials");
        raw.push(node);
    }
    let scoped = env::scoped_names(&raw);
    let mut lifted = Lifted::default();
    let mut env_types = EnvTypes::new();
    let mut nodes = Vec::with_capacity(raw.len());
    for mut node in raw {
        if env::is_global_config(&node) {
            env::lift_global(&mut node, &mut lifted, &scoped, &mut env_types)?;
            if env::is_bare_global(&node) {
                continue;
            }
        } else {
            env::lift(&mut node, &mut lifted)?;
        }
        nodes.push(node);
    }

    let mut containers: Vec<Container> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for node in &nodes {
        if let Some(prefix) = container_prefix(node) {
            let id = container_id(node, prefix)?;
            if index.contains_key(&id) {
                return Err(RuntimeError::Invalid(format!(
                    "Node-RED's flows hold two tabs or subflows with id {id:?}"
                )));
            }
            index.insert(id.clone(), containers.len());
            containers.push(Container {
                name: flow_name(prefix, &id)?,
                id,
                nodes: vec![node.clone()],
            });
        }
    }
    let mut config_nodes = Vec::new();
    for node in nodes {
        if container_prefix(&node).is_some() {
            continue;
        }
        match node
            .get("z")
            .and_then(Value::as_str)
            .and_then(|z| index.get(z))
        {
            Some(&i) => containers[i].nodes.push(node),
            None => config_nodes.push(node),
        }
    }

    let order: Vec<Value> = containers
        .iter()
        .map(|c| Value::String(c.id.clone()))
        .collect();
    let mut out = BTreeMap::new();
    for c in containers {
        let content = Value::Array(c.nodes.into_iter().map(Value::Object).collect());
        out.insert(c.name.clone(), content_of(&c.name, &content)?);
    }
    let config_name = flow_name_raw(CONFIG_FLOW)?;
    let mut config = json!({"order": order, "nodes": config_nodes});
    if !env_types.is_empty() {
        config["env_types"] = json!(env_types);
    }
    out.insert(config_name.clone(), content_of(&config_name, &config)?);
    Ok((out, lifted.into_found()))
}

/// The inverse of [`split`]: Node-RED's flows array with `values` (the
/// **target's**) in every lifted env entry; a key with `None` or absent goes
/// out as `""`. Tabs and subflows come in `config`'s order, those it does not
/// list after it sorted by name, each followed by its nodes, then the config
/// nodes, then (when the flows have none and it has entries) the
/// `global-config` node. Its env holds every key of `values` and of
/// `env_types` that no other scope names. The same input always gives the
/// same output, and splitting it gives back `flows`.
pub fn assemble(
    flows: &BTreeMap<FlowName, FlowContent>,
    values: &BTreeMap<EnvKey, Option<SecretValue>>,
) -> RuntimeResult<Vec<Value>> {
    let (order, config_nodes, env_types) =
        match flows.iter().find(|(n, _)| n.as_str() == CONFIG_FLOW) {
            Some((_, content)) => parse_config(&content.to_value())?,
            None => (Vec::new(), Vec::new(), EnvTypes::new()),
        };
    // Sorted by name: the order of whatever `config` does not list.
    let mut by_id: BTreeMap<&FlowName, (String, Vec<Node>)> = BTreeMap::new();
    let mut ids: HashMap<String, &FlowName> = HashMap::new();
    for (name, content) in flows {
        if name.as_str() == CONFIG_FLOW {
            continue;
        }
        let (id, nodes) = parse_container(name, &content.to_value())?;
        if let Some(other) = ids.insert(id.clone(), name) {
            return Err(RuntimeError::Invalid(format!(
                "flows {other} and {name} are both Node-RED node {id:?}"
            )));
        }
        by_id.insert(name, (id, nodes));
    }

    let mut sequence: Vec<&FlowName> = Vec::with_capacity(by_id.len());
    let mut placed: HashSet<&FlowName> = HashSet::new();
    for id in &order {
        if let Some(&name) = ids.get(id)
            && placed.insert(name)
        {
            sequence.push(name);
        }
    }
    sequence.extend(by_id.keys().copied().filter(|n| !placed.contains(n)));

    let mut out = Vec::new();
    for name in sequence {
        if let Some((_, nodes)) = by_id.remove(name) {
            out.extend(nodes);
        }
    }
    out.extend(config_nodes);
    for node in &mut out {
        node.remove("credentials");
    }

    let scoped = env::scoped_names(&out);
    let mut projected = false;
    for node in &mut out {
        if !env::is_global_config(node) {
            env::inject(node, values)?;
        } else if !projected {
            env::project_global(node, values, &env_types, &scoped)?;
            projected = true;
        } else {
            // Node-RED merges every global-config node; only the first one
            // carries the projection, the others keep their cred entries.
            env::strip_global(node)?;
        }
    }
    if !projected {
        let mut global = Map::new();
        global.insert("id".into(), Value::String(free_id(&out)));
        global.insert("type".into(), Value::String(env::GLOBAL_CONFIG.into()));
        global.insert("modules".into(), Value::Object(Map::new()));
        env::project_global(&mut global, values, &env_types, &scoped)?;
        if global["env"].as_array().is_some_and(|e| !e.is_empty()) {
            out.push(global);
        }
    }
    Ok(out.into_iter().map(Value::Object).collect())
}

/// [`GLOBAL_CONFIG_ID`], or (should a node of the flows already hold it)
/// the first of `<it>.2`, `<it>.3`… that none does.
fn free_id(nodes: &[Node]) -> String {
    let taken: BTreeSet<&str> = nodes
        .iter()
        .filter_map(|n| n.get("id").and_then(Value::as_str))
        .collect();
    let mut id = GLOBAL_CONFIG_ID.to_owned();
    let mut n = 2;
    while taken.contains(id.as_str()) {
        id = format!("{GLOBAL_CONFIG_ID}.{n}");
        n += 1;
    }
    id
}

/// `tab` or `subflow` for the nodes that become flows of their own.
fn container_prefix(node: &Node) -> Option<&'static str> {
    match node.get("type").and_then(Value::as_str) {
        Some("tab") => Some("tab"),
        Some("subflow") => Some("subflow"),
        _ => None,
    }
}

fn container_id(node: &Node, prefix: &str) -> RuntimeResult<String> {
    node.get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            RuntimeError::Invalid(format!("Node-RED's flows hold a {prefix} without an id"))
        })
}

fn flow_name(prefix: &str, id: &str) -> RuntimeResult<FlowName> {
    FlowName::parse(&format!("{prefix}-{id}")).map_err(|e| {
        RuntimeError::Invalid(format!(
            "the Node-RED {prefix} with id {id:?} cannot be named as a Stagehand flow: {}",
            e.message()
        ))
    })
}

fn flow_name_raw(name: &str) -> RuntimeResult<FlowName> {
    FlowName::parse(name).map_err(|e| RuntimeError::Invalid(e.to_string()))
}

fn content_of(name: &FlowName, value: &Value) -> RuntimeResult<FlowContent> {
    FlowContent::from_value(value)
        .map_err(|e| RuntimeError::Invalid(format!("flow {name}: {}", e.message())))
}

/// `config`'s tab order, nodes and instance-wide env types.
fn parse_config(value: &Value) -> RuntimeResult<(Vec<String>, Vec<Node>, EnvTypes)> {
    let bad = || {
        RuntimeError::Invalid(format!(
            "flow {CONFIG_FLOW} is not Node-RED's config: expected {{\"order\": [ids], \"nodes\": [nodes], \"env_types\": {{KEY: type}}}}"
        ))
    };
    let order = value
        .get("order")
        .and_then(Value::as_array)
        .ok_or_else(bad)?
        .iter()
        .map(|id| id.as_str().map(str::to_owned).ok_or_else(bad))
        .collect::<RuntimeResult<Vec<_>>>()?;
    let nodes = value
        .get("nodes")
        .and_then(Value::as_array)
        .ok_or_else(bad)?
        .iter()
        .map(|n| n.as_object().cloned().ok_or_else(bad))
        .collect::<RuntimeResult<Vec<_>>>()?;
    let mut types = EnvTypes::new();
    if let Some(listed) = value.get("env_types") {
        for (name, ty) in listed.as_object().ok_or_else(bad)? {
            let key = EnvKey::parse(name).map_err(|e| {
                RuntimeError::Invalid(format!(
                    "flow {CONFIG_FLOW} types env var {name:?}, which cannot be a Stagehand key: {}",
                    e.message()
                ))
            })?;
            match ty.as_str() {
                Some(t) if !t.is_empty() && t != "cred" => types.insert(key, t.to_owned()),
                _ => {
                    return Err(RuntimeError::Invalid(format!(
                        "flow {CONFIG_FLOW} gives env var {name} a type that is not a Node-RED \
                         env type (text other than cred)"
                    )));
                }
            };
        }
    }
    Ok((order, nodes, types))
}

/// A tab or subflow flow: its id and its nodes (the container first). The
/// name must be the one [`split`] gives it, so the round trip is stable.
fn parse_container(name: &FlowName, value: &Value) -> RuntimeResult<(String, Vec<Node>)> {
    let bad = |why: &str| {
        RuntimeError::Invalid(format!(
            "flow {name} is not a Node-RED tab or subflow ({why}): a Node-RED instance's \
             flows are named tab-<id>, subflow-<id> and {CONFIG_FLOW}"
        ))
    };
    let items = value.as_array().ok_or_else(|| bad("not a list of nodes"))?;
    let nodes = items
        .iter()
        .map(|n| {
            n.as_object()
                .cloned()
                .ok_or_else(|| bad("an item is not a node"))
        })
        .collect::<RuntimeResult<Vec<_>>>()?;
    let first = nodes.first().ok_or_else(|| bad("it is empty"))?;
    let prefix =
        container_prefix(first).ok_or_else(|| bad("its first node is not a tab or subflow"))?;
    let id = container_id(first, prefix)?;
    if flow_name(prefix, &id)? != *name {
        return Err(bad(&format!("it holds {prefix} {id:?}")));
    }
    Ok((id, nodes))
}

#[cfg(test)]
#[path = "transform_tests.rs"]
mod tests;
