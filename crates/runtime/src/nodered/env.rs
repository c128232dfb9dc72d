//! Env entries inside Node-RED's flow JSON (`env: [{name, value, type}]`):
//! which nodes carry them, lifting their values out on a pull, and putting
//! the target's values back on a deploy.
//!
//! The rule is one value per key: Node-RED scopes env vars (global-config,
//! tab, group, subflow, subflow instance) but Stagehand keeps a single
//! value per key, so a key found with two different values is refused
//! rather than silently merged. `cred` entries keep their values in Node-RED's
//! credential store, so they are never lifted and never carry a key.
//!
//! The `global-config` node is different: its env is a projection of the
//! instance's env store, not part of any flow. A pull lifts its entries out
//! whole (names, values, and the type of each key that needs one, see
//! [`EnvTypes`]); a deploy writes into it every key of the target that no
//! other scope gives a value (see [`project_global`]). So a key only the
//! target has stays in the target's runtime, and two instances whose
//! global env differs only in its keys or values hold the same flows.

use crate::{FoundValue, RuntimeError, RuntimeResult};
use serde_json::{Map, Value, json};
use stagehand_domain::{EnvKey, SecretValue};
use std::collections::{BTreeMap, BTreeSet};

/// The node type whose env is instance-wide (Node-RED ≥ 3.1).
pub const GLOBAL_CONFIG: &str = "global-config";

/// The id of the `global-config` node a deploy creates when the flows have
/// none: fixed, so deploying the same flows twice sends the same JSON (and
/// Node-RED computes the same `rev`).
pub const GLOBAL_CONFIG_ID: &str = "stagehand.global-config";

/// The Node-RED type of each instance-wide key that is not `str` (`num`,
/// `bool`, `json`, …), so `env.get` keeps returning a number or a boolean
/// after the entry has been lifted out. `str` keys are not listed.
pub type EnvTypes = BTreeMap<EnvKey, String>;

/// What the editor writes in a `cred` entry's `value`: "the real value is
/// in the credential store". Any other text there would be a secret that
/// someone deployed through the API, so it is replaced by this.
pub const CRED_PLACEHOLDER: &str = "__PWRD__";

/// Whether a node's `env` array holds env vars: tabs, groups, subflows,
/// subflow instances (`subflow:<id>`, which override the subflow's own) and
/// the `global-config` node. Other node types may use `env` for something
/// else, so they are left alone.
pub fn carries_env(node: &Map<String, Value>) -> bool {
    node.get("type").and_then(Value::as_str).is_some_and(|t| {
        matches!(t, "tab" | "group" | "subflow" | "global-config") || t.starts_with("subflow:")
    })
}

/// A node described for a message: its kind and id, never a value.
fn scope(node: &Map<String, Value>) -> String {
    let kind = match node.get("type").and_then(Value::as_str) {
        Some(t) if t.starts_with("subflow:") => "subflow instance",
        Some(t) => t,
        None => "node",
    };
    match node.get("id").and_then(Value::as_str) {
        Some(id) => format!("{kind} {id}"),
        None => kind.to_owned(),
    }
}

/// The values lifted so far, each with the first scope it was seen in.
#[derive(Debug, Default)]
pub struct Lifted {
    seen: BTreeMap<EnvKey, (SecretValue, String)>,
}

impl Lifted {
    /// One key per value: empty text is [`FoundValue::Empty`].
    pub fn into_found(self) -> BTreeMap<EnvKey, FoundValue> {
        self.seen
            .into_iter()
            .map(|(key, (value, _))| {
                let found = if value.expose().is_empty() {
                    FoundValue::Empty
                } else {
                    FoundValue::Value(value)
                };
                (key, found)
            })
            .collect()
    }

    fn record(&mut self, key: EnvKey, value: SecretValue, scope: &str) -> RuntimeResult<()> {
        match self.seen.get(&key) {
            Some((earlier, _)) if *earlier == value => Ok(()),
            Some((_, first)) => Err(RuntimeError::Invalid(format!(
                "env var {key} has different values in {first} and {scope}: Stagehand keeps one \
                 value per key, so give it the same value in both places or rename one"
            ))),
            None => {
                self.seen.insert(key, (value, scope.to_owned()));
                Ok(())
            }
        }
    }
}

/// Lifts the values of `node`'s env entries into `lifted`, leaving `""` in
/// their place (name and type kept), and seals `cred` entries. A
/// `global-config` node is [`lift_global`]'s.
pub fn lift(node: &mut Map<String, Value>, lifted: &mut Lifted) -> RuntimeResult<()> {
    if !carries_env(node) {
        return Ok(());
    }
    let scope = scope(node);
    for entry in entries(node, &scope)? {
        if is_cred(entry) {
            seal_cred(entry);
            continue;
        }
        let key = key_of(entry, &scope)?;
        let text = entry.get("value").map(value_text).unwrap_or_default();
        let value = SecretValue::parse_env_value(text)
            .map_err(|e| RuntimeError::Invalid(format!("env var {key} in {scope}: {e}")))?;
        lifted.record(key, value, &scope)?;
        entry.insert("value".into(), Value::String(String::new()));
    }
    Ok(())
}

/// Puts the target's value of each env entry of `node` back (a key with no
/// value goes out as `""`), and seals `cred` entries.
pub fn inject(
    node: &mut Map<String, Value>,
    values: &BTreeMap<EnvKey, Option<SecretValue>>,
) -> RuntimeResult<()> {
    if !carries_env(node) {
        return Ok(());
    }
    let scope = scope(node);
    for entry in entries(node, &scope)? {
        if is_cred(entry) {
            seal_cred(entry);
            continue;
        }
        let key = key_of(entry, &scope)?;
        let value = values
            .get(&key)
            .and_then(Option::as_ref)
            .map(|v| v.expose().to_owned())
            .unwrap_or_default();
        entry.insert("value".into(), Value::String(value));
    }
    Ok(())
}

/// Whether `node` is a `global-config` node, the instance-wide env scope.
pub fn is_global_config(node: &Map<String, Value>) -> bool {
    node.get("type").and_then(Value::as_str) == Some(GLOBAL_CONFIG)
}

/// The names every env scope but `global-config` gives a value to (`cred`
/// entries aside): on a deploy, these keys go to their scopes, not to the
/// `global-config` node. Malformed entries are skipped here; [`lift`] and
/// [`inject`] refuse them.
pub fn scoped_names<'a>(
    nodes: impl IntoIterator<Item = &'a Map<String, Value>>,
) -> BTreeSet<String> {
    nodes
        .into_iter()
        .filter(|node| carries_env(node) && !is_global_config(node))
        .filter_map(|node| node.get("env").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_object)
        .filter(|entry| !is_cred(entry))
        .filter_map(|entry| entry.get("name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// Lifts a `global-config` node's env out entirely: each value into
/// `lifted`, the type of each key no other scope names (`scoped`, see
/// [`scoped_names`]) into `types` when it is not `str` (the first one seen
/// wins), and the entries themselves out of the node. `cred` entries stay,
/// sealed; with none, the node is left without `env`.
pub fn lift_global(
    node: &mut Map<String, Value>,
    lifted: &mut Lifted,
    scoped: &BTreeSet<String>,
    types: &mut EnvTypes,
) -> RuntimeResult<()> {
    let scope = scope(node);
    for entry in entries(node, &scope)? {
        if is_cred(entry) {
            continue;
        }
        let key = key_of(entry, &scope)?;
        let text = entry.get("value").map(value_text).unwrap_or_default();
        let value = SecretValue::parse_env_value(text)
            .map_err(|e| RuntimeError::Invalid(format!("env var {key} in {scope}: {e}")))?;
        lifted.record(key.clone(), value, &scope)?;
        if let Some(ty) = entry.get("type").and_then(Value::as_str)
            && !ty.is_empty()
            && ty != "str"
            && !scoped.contains(key.as_str())
        {
            types.entry(key).or_insert_with(|| ty.to_owned());
        }
    }
    strip_global(node)
}

/// Whether a lifted `global-config` node holds nothing but its identity (no
/// `cred` entry, no module list, nothing else): such a node is left out of
/// the flows, since a deploy recreates it from the env store, and each
/// instance's editor gives it a different random id.
pub fn is_bare_global(node: &Map<String, Value>) -> bool {
    is_global_config(node)
        && node.iter().all(|(member, value)| match member.as_str() {
            "id" | "type" => true,
            "modules" => value.as_object().is_some_and(Map::is_empty),
            _ => false,
        })
}

/// Writes the instance-wide env into `node`, a `global-config` node: one
/// entry per key of `values` or `types` that no other scope names
/// (`scoped`) and that is not one of the node's own `cred` entries, sorted by
/// name, each with the target's value (`""` for none) and its type from
/// `types` (`str` otherwise), followed by the node's `cred` entries, sealed.
///
/// Flows stored before the env was lifted out whole still hold the entries
/// (with `""` values): those count as declared keys with their own type.
pub fn project_global(
    node: &mut Map<String, Value>,
    values: &BTreeMap<EnvKey, Option<SecretValue>>,
    types: &EnvTypes,
    scoped: &BTreeSet<String>,
) -> RuntimeResult<()> {
    let scope = scope(node);
    let mut types = types.clone();
    for entry in entries(node, &scope)? {
        if !is_cred(entry) {
            let key = key_of(entry, &scope)?;
            let ty = entry.get("type").and_then(Value::as_str).unwrap_or("str");
            types.entry(key).or_insert_with(|| ty.to_owned());
        }
    }
    strip_global(node)?;
    let creds = match node.remove("env") {
        Some(Value::Array(creds)) => creds,
        _ => Vec::new(),
    };
    let cred_names: BTreeSet<&str> = creds
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let keys: BTreeSet<&EnvKey> = values.keys().chain(types.keys()).collect();
    let mut env: Vec<Value> = keys
        .into_iter()
        .filter(|k| !scoped.contains(k.as_str()) && !cred_names.contains(k.as_str()))
        .map(|k| {
            let value = values
                .get(k)
                .and_then(Option::as_ref)
                .map(|v| v.expose().to_owned())
                .unwrap_or_default();
            let ty = types.get(k).map_or("str", String::as_str);
            json!({"name": k.as_str(), "value": value, "type": ty})
        })
        .collect();
    env.extend(creds);
    node.insert("env".into(), Value::Array(env));
    Ok(())
}

/// Leaves only the sealed `cred` entries in a `global-config` node that is
/// not the one carrying the projection (with none, no `env`): Node-RED
/// merges every `global-config` node, a later one over an earlier one.
pub fn strip_global(node: &mut Map<String, Value>) -> RuntimeResult<()> {
    let scope = scope(node);
    let mut creds = Vec::new();
    for entry in entries(node, &scope)? {
        if is_cred(entry) {
            seal_cred(entry);
            creds.push(Value::Object(entry.clone()));
        }
    }
    if creds.is_empty() {
        node.remove("env");
    } else {
        node.insert("env".into(), Value::Array(creds));
    }
    Ok(())
}

/// The node's env entries, each an object; no `env` at all is no entries.
fn entries<'a>(
    node: &'a mut Map<String, Value>,
    scope: &str,
) -> RuntimeResult<Vec<&'a mut Map<String, Value>>> {
    let Some(env) = node.get_mut("env") else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = env else {
        return Err(RuntimeError::Invalid(format!(
            "the env of {scope} is not a list of {{name, value, type}} entries"
        )));
    };
    items
        .iter_mut()
        .map(|item| match item {
            Value::Object(entry) => Ok(entry),
            _ => Err(RuntimeError::Invalid(format!(
                "the env of {scope} holds an entry that is not a {{name, value, type}} object"
            ))),
        })
        .collect()
}

fn is_cred(entry: &Map<String, Value>) -> bool {
    entry.get("type").and_then(Value::as_str) == Some("cred")
}

/// Replaces a real secret in a `cred` entry's `value` by the editor's
/// placeholder; `""`, the placeholder itself and no value stay as they are.
fn seal_cred(entry: &mut Map<String, Value>) {
    let sealed = match entry.get("value") {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty() || s == CRED_PLACEHOLDER,
        Some(_) => false,
    };
    if !sealed {
        entry.insert("value".into(), Value::String(CRED_PLACEHOLDER.into()));
    }
}

fn key_of(entry: &Map<String, Value>, scope: &str) -> RuntimeResult<EnvKey> {
    let name = entry
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RuntimeError::Invalid(format!("an env entry of {scope} has no name")))?;
    EnvKey::parse(name).map_err(|e| {
        RuntimeError::Invalid(format!(
            "env var {name:?} in {scope} cannot be a Stagehand key: {}",
            e.message()
        ))
    })
}

/// Node-RED keeps env values as text; anything else (a number or a JSON
/// value someone deployed through the API) is carried as its JSON text.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn key(k: &str) -> EnvKey {
        EnvKey::parse(k).unwrap()
    }

    #[test]
    fn only_env_scopes_are_touched() {
        let mut lifted = Lifted::default();
        let mut exec =
            node(json!({"id": "n", "type": "exec", "env": [{"name": "A", "value": "x"}]}));
        let before = exec.clone();
        lift(&mut exec, &mut lifted).unwrap();
        assert_eq!(exec, before);
        assert!(lifted.into_found().is_empty());
    }

    #[test]
    fn a_subflow_instance_is_an_env_scope() {
        let mut lifted = Lifted::default();
        let mut inst = node(json!({"id": "i", "type": "subflow:s1", "z": "t",
            "env": [{"name": "A", "value": "x", "type": "str"}]}));
        lift(&mut inst, &mut lifted).unwrap();
        assert_eq!(inst["env"][0]["value"], "");
        assert_eq!(
            lifted.into_found()[&key("A")],
            FoundValue::Value(SecretValue::new("x".into()))
        );
    }

    #[test]
    fn a_cred_entry_holding_a_real_secret_is_sealed() {
        let mut lifted = Lifted::default();
        let mut tab = node(json!({"id": "t", "type": "tab",
            "env": [{"name": "S", "value": "hunter2", "type": "cred"}]}));
        lift(&mut tab, &mut lifted).unwrap();
        assert_eq!(tab["env"][0]["value"], CRED_PLACEHOLDER);
        assert!(lifted.into_found().is_empty());
    }

    #[test]
    fn non_text_values_are_carried_as_json_text() {
        let mut lifted = Lifted::default();
        let mut tab = node(json!({"id": "t", "type": "tab",
            "env": [{"name": "N", "value": 5, "type": "num"}, {"name": "E", "type": "str"}]}));
        lift(&mut tab, &mut lifted).unwrap();
        let found = lifted.into_found();
        assert_eq!(
            found[&key("N")],
            FoundValue::Value(SecretValue::new("5".into()))
        );
        assert_eq!(found[&key("E")], FoundValue::Empty);
    }

    #[test]
    fn an_entry_without_a_name_is_refused() {
        let mut lifted = Lifted::default();
        let mut tab = node(json!({"id": "t", "type": "tab", "env": [{"value": "x"}]}));
        let err = lift(&mut tab, &mut lifted).unwrap_err();
        assert!(err.to_string().contains("tab t"), "{err}");
    }

    #[test]
    fn inject_fills_absent_and_unset_keys_with_empty_text() {
        let mut tab = node(json!({"id": "t", "type": "tab", "env": [
            {"name": "A", "value": "", "type": "str"},
            {"name": "B", "value": "", "type": "str"},
            {"name": "C", "value": "stale", "type": "str"}]}));
        let values = BTreeMap::from([
            (key("A"), Some(SecretValue::new("a".into()))),
            (key("B"), None),
        ]);
        inject(&mut tab, &values).unwrap();
        assert_eq!(tab["env"][0]["value"], "a");
        assert_eq!(tab["env"][1]["value"], "");
        assert_eq!(tab["env"][2]["value"], "");
    }
}
