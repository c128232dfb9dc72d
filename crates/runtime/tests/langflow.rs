//! The Langflow connector against two real Langflow servers, dev and prod,
//! started by `scripts/test.sh` (see `scripts/lib/langflow.sh`) and shared by
//! every test here, each test as its own Langflow user on each server
//! (`stagehand_runtime::testing::langflow`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use stagehand_domain::{EnvKey, SecretValue};
use stagehand_runtime::langflow::transform::{RevisionState, flow_name};
use stagehand_runtime::testing::langflow::{Server, new_flow_id};
use stagehand_runtime::{Deployment, FoundValue, RuntimeError};
use std::collections::BTreeMap;

fn server(name: &str) -> Server {
    Server::from_env(name)
}

fn key(k: &str) -> EnvKey {
    EnvKey::parse(k).unwrap()
}

/// What Stagehand would send: the source's flows, the target's values.
fn deployment_of(
    source: &stagehand_runtime::Pulled,
    target: &stagehand_runtime::Pulled,
) -> Deployment {
    Deployment {
        flows: source.flows.clone(),
        values: source
            .env
            .keys()
            .map(|k| {
                let value = match target.env.get(k) {
                    Some(FoundValue::Value(v)) => Some(v.clone()),
                    _ => None,
                };
                (k.clone(), value)
            })
            .collect(),
        base_revision: Some(target.revision.clone()),
    }
}

#[tokio::test]
async fn promoting_a_flow_runs_it_on_prod_with_prods_own_value_and_leaves_prods_variables_alone() {
    let (dev_server, prod_server) = (server("DEV"), server("PROD"));
    let (dev, prod) = (dev_server.tenant().await, prod_server.tenant().await);
    dev.variable("GREETING", "Generic", "dev-value").await;
    dev.variable("DEV_TOKEN", "Credential", "dev-secret").await;
    prod.variable("GREETING", "Generic", "prod-value").await;
    prod.variable("PROD_TOKEN", "Credential", "prod-secret")
        .await;
    let greet = new_flow_id();
    dev.put_flow(&greet, &dev.greeting_flow("greet", "GREETING").await)
        .await;
    assert_eq!(dev.run(&greet).await, "dev-value");
    // A flow only prod has: the promotion removes it.
    let stray = new_flow_id();
    prod.put_flow(&stray, &prod.greeting_flow("stray", "GREETING").await)
        .await;
    let prod_variables_before = prod.variables().await;

    let pulled_dev = dev.runtime().pull().await.unwrap();
    assert_eq!(
        pulled_dev.flows.keys().cloned().collect::<Vec<_>>(),
        vec![flow_name(&greet).unwrap()]
    );
    assert_eq!(
        pulled_dev.env[&key("GREETING")],
        FoundValue::Value(SecretValue::new("dev-value".into()))
    );
    assert_eq!(pulled_dev.env[&key("DEV_TOKEN")], FoundValue::HeldByRuntime);
    let stored = pulled_dev.flows.values().next().unwrap().as_json();
    assert!(!stored.contains("dev-value") && !stored.contains("dev-secret"));

    let pulled_prod = prod.runtime().pull().await.unwrap();
    let deployment = deployment_of(&pulled_dev, &pulled_prod);
    // Keys with no variable on prod are reported, never created.
    assert_eq!(
        prod.langflow()
            .missing_variables(&deployment)
            .await
            .unwrap(),
        vec!["DEV_TOKEN".to_owned()]
    );
    let deployed = prod.runtime().deploy(&deployment).await.unwrap();

    assert_eq!(prod.run(&greet).await, "prod-value");
    assert_eq!(prod.flow_ids().await, vec![greet.clone()]);
    assert_eq!(prod.variables().await, prod_variables_before);
    assert_eq!(deployed.revision, prod.runtime().revision().await.unwrap());
    // Dev and prod now hold the same flow, as Stagehand sees it.
    let after = prod.runtime().pull().await.unwrap();
    assert_eq!(after.flows, pulled_dev.flows);
    assert_eq!(after.revision, deployed.revision);
    // A second identical promotion writes nothing: the revision holds.
    let again = prod
        .runtime()
        .deploy(&deployment_of(&pulled_dev, &after))
        .await
        .unwrap();
    assert_eq!(again.revision, deployed.revision);

    dev_server.remove(dev).await;
    prod_server.remove(prod).await;
}

#[tokio::test]
async fn a_deploy_over_a_stale_revision_is_a_conflict_and_prod_is_unchanged() {
    let (dev_server, prod_server) = (server("DEV"), server("PROD"));
    let (dev, prod) = (dev_server.tenant().await, prod_server.tenant().await);
    dev.variable("GREETING", "Generic", "dev-value").await;
    prod.variable("GREETING", "Generic", "prod-value").await;
    let greet = new_flow_id();
    let flow = dev.greeting_flow("greet", "GREETING").await;
    dev.put_flow(&greet, &flow).await;
    prod.put_flow(&greet, &flow).await;
    let mut edited_on_dev = flow.clone();
    edited_on_dev["description"] = json!("edited on dev");
    edited_on_dev["data"]["nodes"][1]["position"]["y"] = json!(100);
    dev.put_flow(&greet, &edited_on_dev).await;
    let pulled_dev = dev.runtime().pull().await.unwrap();
    let pulled_prod = prod.runtime().pull().await.unwrap();

    // Someone edits the prod flow after Stagehand read prod's revision.
    let mut edited_on_prod = flow.clone();
    edited_on_prod["data"]["nodes"][1]["position"]["y"] = json!(-50);
    prod.put_flow(&greet, &edited_on_prod).await;
    let prod_now = prod.runtime().pull().await.unwrap();

    let err = prod
        .runtime()
        .deploy(&deployment_of(&pulled_dev, &pulled_prod))
        .await
        .unwrap_err();
    let RuntimeError::Conflict(message) = &err else {
        panic!("expected a conflict, got {err:?}")
    };
    assert!(message.contains(&greet), "{message}");
    let after = prod.runtime().pull().await.unwrap();
    assert_eq!(after.revision, prod_now.revision);
    assert_eq!(after.flows, prod_now.flows);

    // The per-write guard: a base whose digest matches but whose token for
    // the flow is stale (an edit landing between the check and the write)
    // is refused by Langflow's If-Match, and mapped to a conflict too.
    let mut racing = RevisionState::decode(&prod_now.revision).unwrap();
    racing.tokens.insert(
        greet.clone(),
        Some("00000000-0000-4000-8000-000000000000".into()),
    );
    let mut deployment = deployment_of(&pulled_dev, &prod_now);
    deployment.base_revision = Some(racing.encode());
    let err = prod.runtime().deploy(&deployment).await.unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Conflict(m) if m.contains("edited")),
        "{err:?}"
    );
    assert_eq!(
        prod.runtime().pull().await.unwrap().revision,
        prod_now.revision
    );

    dev_server.remove(dev).await;
    prod_server.remove(prod).await;
}

#[tokio::test]
async fn a_wrong_api_key_is_refused_as_auth_failed() {
    let prod_server = server("PROD");
    let prod = prod_server.tenant().await;
    let wrong = prod.runtime_with_key("sk-not-the-key");
    assert!(matches!(
        wrong.revision().await,
        Err(RuntimeError::AuthFailed(_))
    ));
    assert!(matches!(
        wrong.pull().await,
        Err(RuntimeError::AuthFailed(_))
    ));
    let deployment = Deployment {
        flows: BTreeMap::new(),
        values: BTreeMap::new(),
        base_revision: None,
    };
    assert!(matches!(
        wrong.deploy(&deployment).await,
        Err(RuntimeError::AuthFailed(_))
    ));
    prod_server.remove(prod).await;
}

#[tokio::test]
async fn a_credential_variable_is_pulled_as_held_by_the_runtime_and_its_value_never_leaves() {
    let dev_server = server("DEV");
    let dev = dev_server.tenant().await;
    dev.variable("OPENAI_API_KEY", "Credential", "sk-very-secret")
        .await;
    dev.variable("REGION", "Generic", "eu-west").await;
    let pulled = dev.runtime().pull().await.unwrap();
    assert_eq!(
        pulled.env[&key("OPENAI_API_KEY")],
        FoundValue::HeldByRuntime
    );
    assert_eq!(
        pulled.env[&key("REGION")],
        FoundValue::Value(SecretValue::new("eu-west".into()))
    );
    assert!(!format!("{pulled:?}").contains("sk-very-secret"));
    dev_server.remove(dev).await;
}

#[tokio::test]
async fn a_flow_with_a_secret_typed_into_a_field_is_not_pulled() {
    let dev_server = server("DEV");
    let dev = dev_server.tenant().await;
    let id = new_flow_id();
    let mut flow = dev.greeting_flow("typed secret", "unused").await;
    let field = &mut flow["data"]["nodes"][0]["data"]["node"]["template"]["input_value"];
    field["load_from_db"] = json!(false);
    field["value"] = json!("sk-typed-in");
    dev.put_flow(&id, &flow).await;
    let err = dev.runtime().pull().await.unwrap_err();
    let RuntimeError::Invalid(message) = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains("TextInput-greet.input_value"), "{message}");
    assert!(!message.contains("sk-typed-in"));
    dev_server.remove(dev).await;
}
