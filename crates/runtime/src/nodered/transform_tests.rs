//! The rules of [`super::split`] and [`super::assemble`], one test each,
//! then the properties over random Node-RED-like flow arrays.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn name(n: &str) -> FlowName {
    FlowName::parse(n).unwrap()
}

fn key(k: &str) -> EnvKey {
    EnvKey::parse(k).unwrap()
}

fn value(v: &str) -> FoundValue {
    FoundValue::Value(SecretValue::new(v.into()))
}

fn flow(flows: &BTreeMap<FlowName, FlowContent>, n: &str) -> Value {
    flows[&name(n)].to_value()
}

/// The values a pull found, as a deployment of the same instance sends them.
fn own_values(found: &BTreeMap<EnvKey, FoundValue>) -> BTreeMap<EnvKey, Option<SecretValue>> {
    found
        .iter()
        .map(|(k, v)| {
            let v = match v {
                FoundValue::Value(s) => Some(s.clone()),
                FoundValue::Empty | FoundValue::HeldByRuntime => None,
            };
            (k.clone(), v)
        })
        .collect()
}

fn ids(payload: &[Value]) -> Vec<&str> {
    payload.iter().map(|n| n["id"].as_str().unwrap()).collect()
}

fn sample() -> Vec<Value> {
    serde_json::from_value(json!([
        {"id": "t1", "type": "tab", "label": "One", "env": [{"name": "GREETING", "value": "hello", "type": "str"}]},
        {"id": "n1", "type": "inject", "z": "t1", "wires": [["n2"]]},
        {"id": "s1", "type": "subflow", "name": "Sub", "env": [{"name": "RETRIES", "value": "3", "type": "num"}]},
        {"id": "n2", "type": "debug", "z": "t1"},
        {"id": "b1", "type": "mqtt-broker", "broker": "localhost"},
        {"id": "t2", "type": "tab", "label": "Two"},
        {"id": "n3", "type": "function", "z": "s1"},
        {"id": "gc", "type": "global-config", "env": [{"name": "REGION", "value": "eu", "type": "str"}]},
        {"id": "lost", "type": "debug", "z": "nowhere"}
    ]))
    .unwrap()
}

#[test]
fn each_tab_and_subflow_becomes_a_flow_holding_its_nodes_in_order() {
    let (flows, _) = split(&sample()).unwrap();
    let names: Vec<&str> = flows.keys().map(FlowName::as_str).collect();
    assert_eq!(names, ["config", "subflow-s1", "tab-t1", "tab-t2"]);
    let t1 = flow(&flows, "tab-t1");
    assert_eq!(t1.as_array().unwrap().len(), 3);
    assert_eq!(t1[0]["id"], "t1");
    assert_eq!(t1[1]["id"], "n1");
    assert_eq!(t1[2]["id"], "n2");
    assert_eq!(flow(&flows, "subflow-s1")[1]["id"], "n3");
}

#[test]
fn config_holds_the_tab_order_and_every_node_without_a_tab() {
    let (flows, _) = split(&sample()).unwrap();
    let config = flow(&flows, "config");
    assert_eq!(config["order"], json!(["t1", "s1", "t2"]));
    let config_ids: Vec<&str> = config["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(config_ids, ["b1", "gc", "lost"]);
}

#[test]
fn an_empty_instance_is_one_empty_config_flow() {
    let (flows, env) = split(&[]).unwrap();
    assert_eq!(flows.len(), 1);
    assert_eq!(flow(&flows, "config"), json!({"order": [], "nodes": []}));
    assert!(env.is_empty());
    assert!(assemble(&flows, &BTreeMap::new()).unwrap().is_empty());
}

#[test]
fn reordering_tabs_changes_only_config() {
    let mut reordered = sample();
    let t2 = reordered.remove(5);
    reordered.insert(0, t2);
    let (a, _) = split(&sample()).unwrap();
    let (b, _) = split(&reordered).unwrap();
    for (n, content) in &a {
        assert_eq!(content == &b[n], n.as_str() != "config", "{n}");
    }
}

#[test]
fn env_values_are_lifted_out_of_tabs_subflows_and_global_config() {
    let (flows, env) = split(&sample()).unwrap();
    assert_eq!(env[&key("GREETING")], value("hello"));
    assert_eq!(env[&key("RETRIES")], value("3"));
    assert_eq!(env[&key("REGION")], value("eu"));
    assert_eq!(
        flow(&flows, "tab-t1")[0]["env"],
        json!([{"name": "GREETING", "value": "", "type": "str"}])
    );
    assert_eq!(flow(&flows, "config")["nodes"][1]["env"][0]["value"], "");
}

#[test]
fn instances_differing_only_in_values_give_identical_flows() {
    let text = serde_json::to_string(&sample()).unwrap();
    let other: Vec<Value> =
        serde_json::from_str(&text.replace("hello", "bonjour").replace("\"eu\"", "\"us\""))
            .unwrap();
    assert_eq!(split(&sample()).unwrap().0, split(&other).unwrap().0);
}

#[test]
fn an_empty_value_is_found_empty() {
    let nodes =
        [json!({"id": "t", "type": "tab", "env": [{"name": "A", "value": "", "type": "str"}]})];
    assert_eq!(split(&nodes).unwrap().1[&key("A")], FoundValue::Empty);
}

#[test]
fn group_and_subflow_instance_env_is_lifted_too() {
    let nodes = [
        json!({"id": "t", "type": "tab"}),
        json!({"id": "g", "type": "group", "z": "t", "env": [{"name": "G", "value": "gv", "type": "str"}]}),
        json!({"id": "i", "type": "subflow:s", "z": "t", "env": [{"name": "I", "value": "iv", "type": "str"}]}),
    ];
    let (flows, env) = split(&nodes).unwrap();
    assert_eq!(env[&key("G")], value("gv"));
    assert_eq!(env[&key("I")], value("iv"));
    let tab = flow(&flows, "tab-t");
    assert_eq!(tab[1]["env"][0]["value"], "");
    assert_eq!(tab[2]["env"][0]["value"], "");
}

#[test]
fn cred_entries_stay_in_the_flow_and_give_no_key() {
    let entry = json!({"name": "API_KEY", "value": "__PWRD__", "type": "cred"});
    let nodes = [json!({"id": "t", "type": "tab", "env": [entry]})];
    let (flows, env) = split(&nodes).unwrap();
    assert!(env.is_empty());
    assert_eq!(flow(&flows, "tab-t")[0]["env"][0], entry);
    let payload = assemble(
        &flows,
        &BTreeMap::from([(key("API_KEY"), Some(SecretValue::new("x".into())))]),
    )
    .unwrap();
    assert_eq!(payload[0]["env"][0], entry);
}

#[test]
fn the_same_value_in_two_scopes_is_one_key() {
    let nodes = [
        json!({"id": "t", "type": "tab", "env": [{"name": "A", "value": "same", "type": "str"}]}),
        json!({"id": "gc", "type": "global-config", "env": [{"name": "A", "value": "same", "type": "str"}]}),
    ];
    let (_, env) = split(&nodes).unwrap();
    assert_eq!(env.len(), 1);
    assert_eq!(env[&key("A")], value("same"));
}

#[test]
fn two_values_for_one_key_are_refused_naming_the_key_and_scopes_not_the_values() {
    let nodes = [
        json!({"id": "t", "type": "tab", "env": [{"name": "A", "value": "first-secret", "type": "str"}]}),
        json!({"id": "gc", "type": "global-config", "env": [{"name": "A", "value": "second-secret", "type": "str"}]}),
    ];
    let err = split(&nodes).unwrap_err();
    let RuntimeError::Invalid(message) = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains("env var A"), "{message}");
    assert!(
        message.contains("tab t") && message.contains("global-config gc"),
        "{message}"
    );
    assert!(message.contains("one value per key"), "{message}");
    assert!(!message.contains("secret"), "{message}");
}

#[test]
fn an_env_name_that_is_no_stagehand_key_is_refused_by_name() {
    let nodes = [
        json!({"id": "t", "type": "tab", "env": [{"name": "my-var", "value": "x", "type": "str"}]}),
    ];
    let err = split(&nodes).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Invalid(m) if m.contains("\"my-var\"") && m.contains("tab t")),
        "{err}"
    );
}

#[test]
fn a_tab_id_that_cannot_name_a_flow_is_refused() {
    let nodes = [json!({"id": "a/b", "type": "tab"})];
    let err = split(&nodes).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Invalid(m) if m.contains("\"a/b\"")),
        "{err}"
    );
}

#[test]
fn an_item_that_is_not_a_node_is_refused() {
    assert!(matches!(split(&[json!(3)]), Err(RuntimeError::Invalid(_))));
}

#[test]
fn credentials_never_travel() {
    let nodes = [
        json!({"id": "t", "type": "tab"}),
        json!({"id": "r", "type": "http request", "z": "t", "credentials": {"user": "u", "password": "p"}}),
    ];
    let (flows, _) = split(&nodes).unwrap();
    assert!(!flows[&name("tab-t")].as_json().contains("credentials"));
    let mut tampered = flows.clone();
    let mut tab = flow(&flows, "tab-t");
    tab[1]["credentials"] = json!({"password": "p"});
    tampered.insert(name("tab-t"), FlowContent::from_value(&tab).unwrap());
    let payload = assemble(&tampered, &BTreeMap::new()).unwrap();
    assert!(payload.iter().all(|n| n.get("credentials").is_none()));
}

#[test]
fn assemble_follows_config_order_then_unlisted_flows_by_name_then_config_nodes() {
    let (mut flows, _) = split(&sample()).unwrap();
    flows.insert(
        name("config"),
        FlowContent::from_value(&json!({
            "order": ["t2", "gone", "t1"],
            "nodes": [{"id": "b1", "type": "mqtt-broker"}]
        }))
        .unwrap(),
    );
    let payload = assemble(&flows, &BTreeMap::new()).unwrap();
    assert_eq!(ids(&payload), ["t2", "t1", "n1", "n2", "s1", "n3", "b1"]);
}

#[test]
fn assemble_puts_the_targets_values_in_and_empties_the_rest() {
    let (flows, _) = split(&sample()).unwrap();
    let values = BTreeMap::from([
        (key("GREETING"), Some(SecretValue::new("prod-hello".into()))),
        (key("RETRIES"), None),
    ]);
    let payload = assemble(&flows, &values).unwrap();
    assert_eq!(payload[0]["env"][0]["value"], "prod-hello");
    let s1 = payload.iter().find(|n| n["id"] == "s1").unwrap();
    assert_eq!(s1["env"][0]["value"], "");
    let gc = payload.iter().find(|n| n["id"] == "gc").unwrap();
    assert_eq!(gc["env"][0]["value"], "");
}

#[test]
fn assemble_refuses_a_flow_that_is_not_a_tab_or_subflow() {
    let mut flows = BTreeMap::new();
    flows.insert(
        name("notes"),
        FlowContent::from_value(&json!({"text": "hi"})).unwrap(),
    );
    let err = assemble(&flows, &BTreeMap::new()).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Invalid(m) if m.contains("flow notes")),
        "{err}"
    );
    let mut flows = BTreeMap::new();
    flows.insert(
        name("tab-x"),
        FlowContent::from_value(&json!([{"id": "y", "type": "tab"}])).unwrap(),
    );
    let err = assemble(&flows, &BTreeMap::new()).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Invalid(m) if m.contains("tab-x")),
        "{err}"
    );
}

#[test]
fn the_round_trip_of_the_sample_is_stable() {
    let (flows, env) = split(&sample()).unwrap();
    let payload = assemble(&flows, &own_values(&env)).unwrap();
    let (again, env_again) = split(&payload).unwrap();
    assert_eq!(again, flows);
    assert_eq!(env_again, env);
    assert_eq!(payload, assemble(&flows, &own_values(&env)).unwrap());
}

// ---- properties ------------------------------------------------------------

const KEYS: usize = 5;
const ENV_TYPES: [&str; 6] = ["str", "num", "bool", "json", "env", "cred"];
const NON_SCOPE_ENV: &str = "not-an-env-var";

/// One env entry: which key, which type.
type EnvSpec = (usize, usize);
/// One node: its kind, where it sits, its env entries.
type NodeSpec = (usize, usize, Vec<EnvSpec>);

#[derive(Debug, Clone)]
struct Case {
    nodes: Vec<Value>,
    dev: Vec<String>,
    prod: Vec<Option<String>>,
}

fn env_array(specs: &[EnvSpec], dev: &[String]) -> Value {
    let entries = specs.iter().map(|&(k, t)| {
        let ty = ENV_TYPES[t % ENV_TYPES.len()];
        if ty == "cred" {
            json!({"name": format!("CRED{k}"), "value": "__PWRD__", "type": "cred"})
        } else {
            json!({"name": format!("K{k}"), "value": dev[k], "type": ty})
        }
    });
    Value::Array(entries.collect())
}

fn build(
    tabs: usize,
    subflows: usize,
    scope_env: Vec<Vec<EnvSpec>>,
    specs: Vec<NodeSpec>,
    global: Option<Vec<EnvSpec>>,
    dev: Vec<String>,
    prod: Vec<Option<String>>,
) -> Case {
    let mut containers = Vec::new();
    let mut nodes = Vec::new();
    for i in 0..tabs + subflows {
        let (id, ty) = if i < tabs {
            (format!("{i:04x}.tab"), "tab")
        } else {
            (format!("{i:04x}.sub"), "subflow")
        };
        let env = env_array(&scope_env[i % scope_env.len()], &dev);
        nodes.push(json!({"id": id, "type": ty, "label": format!("L{i}"), "env": env}));
        containers.push(id);
    }
    let subflow_ids: Vec<String> = containers[tabs..].to_vec();
    for (n, (kind, parent, env)) in specs.into_iter().enumerate() {
        let id = format!("{n:04x}.node");
        let mut node = match kind % 6 {
            0 => json!({"id": id, "type": "inject", "wires": [[]]}),
            1 => json!({"id": id, "type": "function", "func": "return msg;"}),
            2 => json!({"id": id, "type": "group", "nodes": [], "env": env_array(&env, &dev)}),
            3 if !subflow_ids.is_empty() => json!({
                "id": id, "type": format!("subflow:{}", subflow_ids[n % subflow_ids.len()]),
                "env": env_array(&env, &dev)
            }),
            4 => json!({"id": id, "type": "mqtt-broker", "broker": "localhost"}),
            _ => json!({"id": id, "type": "exec", "env": [{"name": "X", "value": NON_SCOPE_ENV}]}),
        };
        if parent < containers.len() {
            node["z"] = json!(containers[parent]);
        } else if parent == containers.len() + 1 {
            node["z"] = json!("missing.tab");
        }
        nodes.push(node);
    }
    if let Some(env) = global {
        nodes.push(json!({"id": "gc", "type": "global-config", "env": env_array(&env, &dev)}));
    }
    Case { nodes, dev, prod }
}

fn arb_env() -> impl Strategy<Value = Vec<EnvSpec>> {
    prop::collection::vec((0..KEYS, 0..ENV_TYPES.len()), 0..4)
}

fn arb_case() -> impl Strategy<Value = Case> {
    (
        0usize..4,
        0usize..3,
        prop::collection::vec(arb_env(), 1..4),
        prop::collection::vec((0usize..6, 0usize..9, arb_env()), 0..20),
        prop::option::of(arb_env()),
        prop::collection::vec(
            prop_oneof![1 => Just(String::new()), 4 => "dv_[a-z]{12,16}"],
            KEYS,
        ),
        prop::collection::vec(prop::option::weighted(0.8, "PR_[A-Z0-9]{12}"), KEYS),
    )
        .prop_map(|(t, s, scope_env, specs, global, dev, prod)| {
            build(t, s, scope_env, specs, global, dev, prod)
        })
        .prop_flat_map(|case| {
            let Case { nodes, dev, prod } = case;
            Just(nodes).prop_shuffle().prop_map(move |nodes| Case {
                nodes,
                dev: dev.clone(),
                prod: prod.clone(),
            })
        })
}

fn prod_values(case: &Case) -> BTreeMap<EnvKey, Option<SecretValue>> {
    (0..KEYS)
        .map(|k| {
            (
                key(&format!("K{k}")),
                case.prod[k].clone().map(SecretValue::new),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_source_value_is_in_any_outgoing_payload(case in arb_case()) {
        let (flows, _) = split(&case.nodes).unwrap();
        let payload = serde_json::to_string(&assemble(&flows, &prod_values(&case)).unwrap()).unwrap();
        for dev in case.dev.iter().filter(|d| !d.is_empty()) {
            prop_assert!(!payload.contains(dev.as_str()), "{dev} leaked into {payload}");
        }
    }

    #[test]
    fn every_lifted_entry_carries_the_targets_value(case in arb_case()) {
        let (flows, _) = split(&case.nodes).unwrap();
        let prod = prod_values(&case);
        for node in assemble(&flows, &prod).unwrap() {
            let Value::Object(node) = node else { unreachable!() };
            if !env::carries_env(&node) {
                continue;
            }
            for entry in node.get("env").and_then(Value::as_array).into_iter().flatten() {
                if entry["type"] == "cred" {
                    prop_assert_eq!(&entry["value"], "__PWRD__");
                    continue;
                }
                let k = key(entry["name"].as_str().unwrap());
                let want = prod[&k].as_ref().map(SecretValue::expose).unwrap_or("");
                prop_assert_eq!(entry["value"].as_str(), Some(want));
            }
        }
    }

    #[test]
    fn the_round_trip_is_stable(case in arb_case()) {
        let (flows, env) = split(&case.nodes).unwrap();
        let own = assemble(&flows, &own_values(&env)).unwrap();
        let (flows_again, env_again) = split(&own).unwrap();
        prop_assert_eq!(&flows_again, &flows);
        prop_assert_eq!(&env_again, &env);
        let deployed = assemble(&flows, &prod_values(&case)).unwrap();
        prop_assert_eq!(&split(&deployed).unwrap().0, &flows);
    }

    #[test]
    fn no_node_is_ever_dropped(case in arb_case()) {
        let (flows, env) = split(&case.nodes).unwrap();
        let payload = assemble(&flows, &own_values(&env)).unwrap();
        let mut before: Vec<&str> = ids(&case.nodes);
        let mut after: Vec<&str> = ids(&payload);
        before.sort_unstable();
        after.sort_unstable();
        prop_assert_eq!(before, after);
    }
}
