//! Env entries inside Node-RED's flow JSON (`env: [{name, value, type}]`):
//! which nodes carry them, lifting their values out on a pull, and putting
//! the target's values back on a deploy.
//!
//! The rule is one value per key: Node-RED scopes env vars (global-config,
//! tab, group, subflow, subflow instance) but Stagehand keeps a single
//! value per key, so a key found with two different values is refused
//! rather than silently merged. `cred` entries keep their values in Node-RED's
//! credential store, so they are never lifted and never carry a key.

use crate::{FoundValue, RuntimeError, RuntimeResult};
use serde_json::{Map, Value};
use stagehand_domain::{EnvKey, SecretValue};
use std::collections::BTreeMap;

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
/// their place (name and type kept), and seals `cred` entries.
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
