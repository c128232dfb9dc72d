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

fn globals(payload: &[Value]) -> Vec<&Value> {
    payload
        .iter()
        .filter(|n| n["type"] == "global-config")
        .collect()
}

/// The env of the payload's one `global-config` node.
fn global_env(payload: &[Value]) -> Value {
    let globals = globals(payload);
    assert_eq!(globals.len(), 1, "{payload:?}");
    globals[0]["env"].clone()
}

fn some(v: &str) -> Option<SecretValue> {
    Some(SecretValue::new(v.into()))
}

fn config_with(nodes: Value, env_types: Option<Value>) -> BTreeMap<FlowName, FlowContent> {
    let mut config = json!({"order": [], "nodes": nodes});
    if let Some(types) = env_types {
        config["env_types"] = types;
    }
    BTreeMap::from([(name("config"), FlowContent::from_value(&config).unwrap())])
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
        {"id": "gc", "type": "global-config", "env": [
            {"name": "REGION", "value": "eu", "type": "str"},
            {"name": "PORT", "value": "8080", "type": "num"}
        ], "modules": {}},
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
fn config_holds_the_tab_order_every_node_without_a_tab_and_the_global_env_types() {
    let (flows, _) = split(&sample()).unwrap();
    // The global-config node held only env: it is left out, and of its env
    // only the type of the key that is not text remains.
    assert_eq!(
        flow(&flows, "config"),
        json!({
            "order": ["t1", "s1", "t2"],
            "nodes": [
                {"id": "b1", "type": "mqtt-broker", "broker": "localhost"},
                {"id": "lost", "type": "debug", "z": "nowhere"}
            ],
            "env_types": {"PORT": "num"}
        })
    );
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
    assert_eq!(env[&key("PORT")], value("8080"));
    assert_eq!(
        flow(&flows, "tab-t1")[0]["env"],
        json!([{"name": "GREETING", "value": "", "type": "str"}])
    );
    let all: String = flows.values().map(FlowContent::as_json).collect();
    assert!(!all.contains("REGION"), "{all}");
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
    // GREETING and RETRIES are their scopes', not global; PORT keeps its
    // type and goes out even without a value (the flows declare it); REGION
    // is text and this target has no such key, so nothing is left of it.
    assert_eq!(
        global_env(&payload),
        json!([{"name": "PORT", "value": "", "type": "num"}])
    );
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

// ---- the global-config node: a projection of the env store -----------------

#[test]
fn a_target_only_key_goes_to_a_global_config_node_with_the_targets_value() {
    let (flows, _) = split(&sample()).unwrap();
    let values = BTreeMap::from([
        (key("GREETING"), some("prod-hello")),
        (key("REGION"), some("us")),
        (key("PROD_ONLY"), some("prod-only")),
        (key("AWAITING"), None),
    ]);
    let payload = assemble(&flows, &values).unwrap();
    // The flows hold no global-config node, so one is made, last, sorted,
    // and a key its tab gives a value (GREETING) is not repeated.
    assert_eq!(
        payload.last().unwrap(),
        &json!({"id": GLOBAL_CONFIG_ID, "type": "global-config", "modules": {}, "env": [
            {"name": "AWAITING", "value": "", "type": "str"},
            {"name": "PORT", "value": "", "type": "num"},
            {"name": "PROD_ONLY", "value": "prod-only", "type": "str"},
            {"name": "REGION", "value": "us", "type": "str"}
        ]})
    );
    assert_eq!(globals(&payload).len(), 1);
    assert_eq!(payload[0]["env"][0]["value"], "prod-hello");
    // Deploying it again sends the same JSON, and it pulls back as the flows
    // that were deployed.
    assert_eq!(payload, assemble(&flows, &values).unwrap());
    let (again, env) = split(&payload).unwrap();
    assert_eq!(again, flows);
    assert_eq!(env[&key("PROD_ONLY")], value("prod-only"));
    assert_eq!(env[&key("AWAITING")], FoundValue::Empty);
}

#[test]
fn without_global_keys_no_global_config_node_is_made() {
    let nodes =
        [json!({"id": "t", "type": "tab", "env": [{"name": "A", "value": "a", "type": "str"}]})];
    let (flows, env) = split(&nodes).unwrap();
    let payload = assemble(&flows, &own_values(&env)).unwrap();
    assert!(globals(&payload).is_empty(), "{payload:?}");
}

#[test]
fn the_type_of_a_key_another_scope_names_is_not_kept() {
    let nodes = [
        json!({"id": "t", "type": "tab", "env": [{"name": "A", "value": "1", "type": "str"}]}),
        json!({"id": "gc", "type": "global-config", "env": [
            {"name": "A", "value": "1", "type": "num"},
            {"name": "B", "value": "true", "type": "bool"}
        ]}),
    ];
    let (flows, env) = split(&nodes).unwrap();
    assert_eq!(flow(&flows, "config")["env_types"], json!({"B": "bool"}));
    let payload = assemble(&flows, &own_values(&env)).unwrap();
    assert_eq!(
        global_env(&payload),
        json!([{"name": "B", "value": "true", "type": "bool"}])
    );
}

#[test]
fn a_global_config_node_with_cred_entries_is_kept_with_only_them() {
    let nodes = [
        json!({"id": "gcx", "type": "global-config", "modules": {}, "env": [
            {"name": "A", "value": "dev-a", "type": "str"},
            {"name": "S", "value": "hunter2", "type": "cred"}
        ]}),
    ];
    let (flows, env) = split(&nodes).unwrap();
    assert_eq!(env.keys().collect::<Vec<_>>(), [&key("A")]);
    assert_eq!(
        flow(&flows, "config")["nodes"],
        json!([{"id": "gcx", "type": "global-config", "modules": {},
            "env": [{"name": "S", "value": env::CRED_PLACEHOLDER, "type": "cred"}]}])
    );
    // The target's values go into that node (the credentials Node-RED keeps
    // for it stay attached to its id); a key named like a cred entry does
    // not become a second entry.
    let values = BTreeMap::from([(key("A"), some("prod-a")), (key("S"), some("x"))]);
    let payload = assemble(&flows, &values).unwrap();
    assert_eq!(ids(&payload), ["gcx"]);
    assert_eq!(
        global_env(&payload),
        json!([
            {"name": "A", "value": "prod-a", "type": "str"},
            {"name": "S", "value": env::CRED_PLACEHOLDER, "type": "cred"}
        ])
    );
}

#[test]
fn a_global_config_node_with_more_than_env_is_kept_without_it() {
    let node = json!({"id": "gcm", "type": "global-config",
        "modules": {"node-red-contrib-x": "1.0.0"},
        "env": [{"name": "A", "value": "a", "type": "str"}]});
    let (flows, env) = split(&[node]).unwrap();
    assert_eq!(
        flow(&flows, "config")["nodes"],
        json!([{"id": "gcm", "type": "global-config", "modules": {"node-red-contrib-x": "1.0.0"}}])
    );
    let payload = assemble(&flows, &own_values(&env)).unwrap();
    assert_eq!(ids(&payload), ["gcm"]);
    assert_eq!(
        global_env(&payload),
        json!([{"name": "A", "value": "a", "type": "str"}])
    );
}

#[test]
fn of_two_global_config_nodes_only_the_first_carries_the_env_and_none_is_added() {
    let cred = |n: &str| json!({"name": n, "value": "__PWRD__", "type": "cred"});
    let nodes = [
        json!({"id": "g1", "type": "global-config", "env": [cred("S1"), {"name": "A", "value": "a", "type": "str"}]}),
        json!({"id": "g2", "type": "global-config", "env": [{"name": "B", "value": "b", "type": "str"}, cred("S2")]}),
    ];
    let (flows, env) = split(&nodes).unwrap();
    let payload = assemble(&flows, &own_values(&env)).unwrap();
    assert_eq!(ids(&payload), ["g1", "g2"]);
    assert_eq!(
        payload[0]["env"],
        json!([
            {"name": "A", "value": "a", "type": "str"},
            {"name": "B", "value": "b", "type": "str"},
            cred("S1")
        ])
    );
    assert_eq!(payload[1]["env"], json!([cred("S2")]));
    assert_eq!(split(&payload).unwrap().0, flows);
}

#[test]
fn the_made_global_config_node_never_takes_an_id_in_use() {
    let flows = config_with(
        json!([{"id": GLOBAL_CONFIG_ID, "type": "mqtt-broker"}]),
        None,
    );
    let payload = assemble(&flows, &BTreeMap::from([(key("A"), some("a"))])).unwrap();
    assert_eq!(
        ids(&payload),
        [GLOBAL_CONFIG_ID, "stagehand.global-config.2"]
    );
}

#[test]
fn flows_stored_with_global_entries_in_place_still_deploy_them() {
    // What a pull stored before global env was lifted out whole.
    let flows = config_with(
        json!([{"id": "gc", "type": "global-config", "env": [
            {"name": "OLD", "value": "", "type": "bool"},
            {"name": "TEXT", "value": "", "type": "str"}
        ]}]),
        None,
    );
    let values = BTreeMap::from([(key("TEXT"), some("t"))]);
    let payload = assemble(&flows, &values).unwrap();
    assert_eq!(
        global_env(&payload),
        json!([
            {"name": "OLD", "value": "", "type": "bool"},
            {"name": "TEXT", "value": "t", "type": "str"}
        ])
    );
    assert_eq!(
        flow(&split(&payload).unwrap().0, "config"),
        json!({"order": [], "nodes": [], "env_types": {"OLD": "bool"}})
    );
}

#[test]
fn env_types_naming_no_key_or_no_type_are_refused() {
    for (types, names) in [
        (json!({"my-var": "num"}), "\"my-var\""),
        (json!({"A": "cred"}), "env var A"),
        (json!({"A": 3}), "env var A"),
        (json!(["A"]), "env_types"),
    ] {
        let err = assemble(&config_with(json!([]), Some(types)), &BTreeMap::new()).unwrap_err();
        assert!(
            matches!(&err, RuntimeError::Invalid(m) if m.contains(names)),
            "{err}"
        );
    }
}

#[test]
fn instances_differing_only_in_global_keys_and_values_give_identical_flows() {
    let mut prod = sample();
    let gc = prod.iter_mut().find(|n| n["id"] == "gc").unwrap();
    *gc = json!({"id": "another-random-id", "type": "global-config", "env": [
        {"name": "PROD_ONLY", "value": "p", "type": "str"},
        {"name": "PORT", "value": "9090", "type": "num"}
    ]});
    assert_eq!(split(&sample()).unwrap().0, split(&prod).unwrap().0);
    // Nor does a global-config node written by another editor, with only
    // the typed key.
    let mut other: Vec<Value> = sample().into_iter().filter(|n| n["id"] != "gc").collect();
    other.push(json!({"id": "x", "type": "global-config", "env": [
        {"name": "PORT", "value": "1", "type": "num"}]}));
    assert_eq!(split(&sample()).unwrap().0, split(&other).unwrap().0);
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
    /// Prod's values of the keys dev's flows name, `K0`…
    prod: Vec<Option<String>>,
    /// Prod's values of keys dev has no trace of, `P0`…
    prod_only: Vec<Option<String>>,
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
    Case {
        nodes,
        dev,
        prod,
        prod_only: Vec::new(),
    }
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
        prop::collection::vec(prop::option::weighted(0.8, "PO_[A-Z0-9]{12}"), 0..3),
    )
        .prop_map(
            |(t, s, scope_env, specs, global, dev, prod, prod_only)| Case {
                prod_only,
                ..build(t, s, scope_env, specs, global, dev, prod)
            },
        )
        .prop_flat_map(|case| {
            let Case {
                nodes,
                dev,
                prod,
                prod_only,
            } = case;
            Just(nodes).prop_shuffle().prop_map(move |nodes| Case {
                nodes,
                dev: dev.clone(),
                prod: prod.clone(),
                prod_only: prod_only.clone(),
            })
        })
}

/// Prod's values as a promotion from dev sends them: prod's own keys, and
/// every key of dev's (all `K*` here) with prod's value or none.
fn prod_values(case: &Case) -> BTreeMap<EnvKey, Option<SecretValue>> {
    let named = (0..KEYS).map(|k| (format!("K{k}"), case.prod[k].clone()));
    let only = (case.prod_only.iter().enumerate()).map(|(i, v)| (format!("P{i}"), v.clone()));
    named
        .chain(only)
        .map(|(k, v)| (key(&k), v.map(SecretValue::new)))
        .collect()
}

/// `nodes` with the text entries of its global-config node replaced by
/// `text` (made, or left out, per `make`): what another instance with the
/// same flows but other instance-wide keys and values holds.
fn with_other_global_text(
    nodes: &[Value],
    text: &BTreeMap<String, String>,
    make: bool,
) -> Vec<Value> {
    let mut nodes = nodes.to_vec();
    let entries = text
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v, "type": "str"}));
    match nodes.iter().position(|n| n["type"] == "global-config") {
        Some(i) => {
            let mut env: Vec<Value> = nodes[i]["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["type"] != "str")
                .cloned()
                .collect();
            env.splice(0..0, entries);
            if env.is_empty() && !make {
                nodes.remove(i);
            } else {
                nodes[i]["env"] = Value::Array(env);
            }
        }
        None if make || !text.is_empty() => nodes.push(json!({
            "id": "elsewhere", "type": "global-config", "env": entries.collect::<Vec<_>>(), "modules": {}
        })),
        None => {}
    }
    nodes
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
    fn every_target_key_reaches_the_target_with_its_value(case in arb_case()) {
        let (flows, _) = split(&case.nodes).unwrap();
        let prod = prod_values(&case);
        let payload = assemble(&flows, &prod).unwrap();
        let mut sent: BTreeMap<EnvKey, BTreeSet<&str>> = BTreeMap::new();
        for node in &payload {
            for entry in node.get("env").and_then(Value::as_array).into_iter().flatten() {
                if entry["type"] != "cred" && node["type"] != "exec" {
                    sent.entry(key(entry["name"].as_str().unwrap()))
                        .or_default()
                        .insert(entry["value"].as_str().unwrap());
                }
            }
        }
        for (k, v) in &prod {
            let want = v.as_ref().map(SecretValue::expose).unwrap_or("");
            prop_assert_eq!(sent.get(k), Some(&BTreeSet::from([want])), "{}", k);
        }
        prop_assert!(globals(&payload).len() <= 1.max(case.nodes.iter().filter(|n| n["type"] == "global-config").count()));
    }

    #[test]
    fn global_keys_and_values_never_change_the_flows(
        case in arb_case(),
        text in prop::collection::btree_map("G[0-9]", "[a-z]{0,8}", 0..4),
        make in any::<bool>(),
    ) {
        let other = with_other_global_text(&case.nodes, &text, make);
        prop_assert_eq!(split(&case.nodes).unwrap().0, split(&other).unwrap().0);
    }

    #[test]
    fn no_node_but_a_bare_global_config_is_ever_dropped(case in arb_case()) {
        let (flows, env) = split(&case.nodes).unwrap();
        let payload = assemble(&flows, &own_values(&env)).unwrap();
        let kept = |nodes: &[Value]| {
            let mut ids: Vec<String> = nodes
                .iter()
                .filter(|n| {
                    n["type"] != "global-config"
                        || n["env"].as_array().into_iter().flatten().any(|e| e["type"] == "cred")
                })
                .map(|n| n["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort_unstable();
            ids
        };
        prop_assert_eq!(kept(&case.nodes), kept(&payload));
    }
}
