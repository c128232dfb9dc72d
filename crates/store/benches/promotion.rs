//! Promotion apply, measured on both backends (run `scripts/bench.sh`).
//!
//! Two shapes from the foundation issue:
//! - typical: 50 flows (~200 KB in all), 40 env keys, 5 flows differing;
//! - large: 2,000 flows (~20 MB in all), 500 env keys, 10 % differing.
//!
//! Each round first makes the source differ from the target in exactly the
//! stated number of flows (untimed), then times one `Store::promote`. The
//! large shape also reports the peak resident memory the promotion added
//! (Linux: VmHWM after resetting it through /proc/self/clear_refs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stagehand_domain::{EnvKey, FlowContent, FlowName, Name, SecretValue};
use stagehand_store::crypto::SecretKey;
use stagehand_store::{Actor, Database, PromotionRequest, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Shape {
    name: &'static str,
    flows: usize,
    flow_bytes: usize,
    keys: usize,
    differing: usize,
    rounds: usize,
}

const SHAPES: [Shape; 2] = [
    Shape {
        name: "typical",
        flows: 50,
        flow_bytes: 4_000,
        keys: 40,
        differing: 5,
        rounds: 41,
    },
    Shape {
        name: "large",
        flows: 2_000,
        flow_bytes: 10_000,
        keys: 500,
        differing: 200,
        rounds: 11,
    },
];

/// A flow document of about `bytes` bytes, shaped like a Node-RED tab.
fn flow_json(i: usize, variant: usize, bytes: usize) -> FlowContent {
    let node = |n: usize| {
        serde_json::json!({
            "id": format!("{i:04}-{n:03}"), "type": "function", "z": format!("tab-{i}"),
            "name": format!("step {n} v{variant}"), "func": "msg.payload = msg.payload * 2; return msg;",
            "wires": [[format!("{i:04}-{:03}", n + 1)]], "x": 120 + n * 20, "y": 80,
        })
    };
    let per_node = node(0).to_string().len();
    let nodes: Vec<_> = (0..(bytes / per_node).max(1)).map(node).collect();
    FlowContent::from_value(&serde_json::json!({ "id": format!("tab-{i}"), "label": format!("flow {i}"), "nodes": nodes }))
        .unwrap()
}

fn rss_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn run(store: Arc<dyn Store>, backend: &str, shape: &Shape) {
    let actor = Actor::system();
    let team = store
        .create_team(
            Name::parse("n", &format!("bench {}", shape.name)).unwrap(),
            &actor,
        )
        .await
        .unwrap();
    let dev = store
        .create_instance(
            team.id,
            Name::parse("n", "dev").unwrap(),
            serde_json::json!({}),
            &actor,
        )
        .await
        .unwrap();
    let qa = store
        .create_instance(
            team.id,
            Name::parse("n", "qa").unwrap(),
            serde_json::json!({}),
            &actor,
        )
        .await
        .unwrap();
    let p = store
        .create_pipeline(team.id, Name::parse("n", "main").unwrap(), &actor)
        .await
        .unwrap();
    store
        .add_stage(team.id, p.id, dev.id, None, &actor)
        .await
        .unwrap();
    let p = store
        .add_stage(team.id, p.id, qa.id, None, &actor)
        .await
        .unwrap();

    let names: Vec<FlowName> = (0..shape.flows)
        .map(|i| FlowName::parse(&format!("flow-{i:04}")).unwrap())
        .collect();
    let base: Vec<(FlowName, FlowContent)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), flow_json(i, 0, shape.flow_bytes)))
        .collect();
    let payload: usize = base.iter().map(|(_, c)| c.len()).sum();
    store
        .replace_flows(team.id, dev.id, base.clone(), None, &actor)
        .await
        .unwrap();
    store
        .replace_flows(team.id, qa.id, base, None, &actor)
        .await
        .unwrap();
    for k in 0..shape.keys {
        let key = EnvKey::parse(&format!("KEY_{k:03}")).unwrap();
        store
            .set_env_var(
                team.id,
                dev.id,
                key,
                Some(SecretValue::new(format!("value-{k}"))),
                &actor,
            )
            .await
            .unwrap();
    }
    // The variants of the differing flows, stored up front so rounds only
    // repoint them.
    let variants: Vec<Vec<FlowContent>> = (1..=2)
        .map(|v| {
            (0..shape.differing)
                .map(|i| flow_json(i, v, shape.flow_bytes))
                .collect()
        })
        .collect();

    let mut times = Vec::new();
    let mut peak_extra_kib = 0;
    for round in 0..shape.rounds {
        for (i, content) in variants[round % 2].iter().enumerate() {
            store
                .put_flow(
                    team.id,
                    dev.id,
                    names[i].clone(),
                    content.clone(),
                    None,
                    &actor,
                )
                .await
                .unwrap();
        }
        let request = PromotionRequest {
            team: team.id,
            pipeline: p.id,
            stage: p.stages[0].id,
            actor: actor.clone(),
            idempotency_key: None,
            expected_target_version: None,
            overwrite_drift: false,
            expected_source_version: None,
            source_snapshot: None,
            restore: false,
        };
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = rss_kib("VmRSS:").unwrap_or(0);
        let started = Instant::now();
        let promotion = store.promote(request).await.unwrap();
        let took = started.elapsed();
        let peak = rss_kib("VmHWM:").unwrap_or(0);
        peak_extra_kib = peak_extra_kib.max(peak.saturating_sub(before));
        let changed = promotion.plan.flows_changed.len();
        assert_eq!(
            changed, shape.differing,
            "round {round} changed {changed} flows"
        );
        assert_eq!(
            promotion.plan.flows_unchanged.len(),
            shape.flows - shape.differing
        );
        if round > 0 {
            // Round 0 also adds every key; it is a warm-up, not a sample.
            times.push(took);
        }
    }
    let mut sorted = times.clone();
    sorted.sort();
    println!(
        "{backend:<9} {:<8} payload {:>6.1} MB  median {:>8.2} ms  min {:>8.2} ms  max {:>8.2} ms  ({} runs)  peak extra RSS {:>6.1} MB ({:.2}x payload)",
        shape.name,
        payload as f64 / 1e6,
        median(times).as_secs_f64() * 1e3,
        sorted[0].as_secs_f64() * 1e3,
        sorted[sorted.len() - 1].as_secs_f64() * 1e3,
        sorted.len(),
        peak_extra_kib as f64 * 1024.0 / 1e6,
        peak_extra_kib as f64 * 1024.0 / payload as f64,
    );
}

#[tokio::main]
async fn main() {
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let key = SecretKey::generate();
    let dir = std::env::temp_dir().join(format!("stagehand-bench-{}", std::process::id()));
    let mut backends = vec![(
        "sqlite",
        Database::Sqlite {
            path: dir.join("bench.db"),
        },
    )];
    match std::env::var("DATABASE_URL") {
        Ok(url) => backends.push(("postgres", Database::Postgres { url })),
        Err(_) => eprintln!(
            "DATABASE_URL is not set: PostgreSQL is not measured (scripts/bench.sh starts one)"
        ),
    }
    for (backend, database) in backends {
        if only.as_deref().is_some_and(|o| o != backend) {
            continue;
        }
        let store = stagehand_store::open(&database, &key).await.unwrap();
        for shape in &SHAPES {
            run(store.clone(), backend, shape).await;
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
