//! A CI job connects real Node-RED instances with the CLI, pulls and
//! promotes; then the server is killed (-9) after prod's runtime accepted a
//! deploy and before Stagehand recorded it: after a restart the promotion is
//! reconciled against the runtime, and the audit chain still verifies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{api_ok, pipeline_of, spawn_serve, team_of_token};

use serde_json::{Value, json};
use stagehand_runtime::testing::NodeRedProcess;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEV_GREETING: &str = "dev-value-31d7c0";
const PROD_GREETING: &str = "prod-value-88ae42";

fn stagehand(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stagehand"));
    c.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("STAGEHAND_DATA_DIR")
        .env_remove("STAGEHAND_SECRET_KEY")
        .env_remove("STAGEHAND_FAULT_PAUSE_AFTER_DEPLOY_MS")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    c
}

fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("stagehand-rt-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn greeter(prefix: &str, greeting: &str) -> Value {
    json!({"flows": [
        {"id": "tab1", "type": "tab", "label": "Greeter",
         "env": [{"name": "GREETING", "value": greeting, "type": "str"}]},
        {"id": "in1", "type": "http in", "z": "tab1", "url": "/greet", "method": "get",
         "upload": false, "wires": [["fn1"]]},
        {"id": "fn1", "type": "function", "z": "tab1", "outputs": 1, "wires": [["out1"]],
         "func": format!("msg.payload = {prefix:?} + env.get(\"GREETING\");\nreturn msg;")},
        {"id": "out1", "type": "http response", "z": "tab1", "statusCode": "", "headers": {}, "wires": []}
    ]})
}

async fn wait_for_greeting(nr: &NodeRedProcess, want: &str) {
    let url = format!("{}greet", nr.url());
    let began = Instant::now();
    let mut last = String::new();
    while began.elapsed() < Duration::from_secs(15) {
        if let Ok(r) = reqwest::get(&url).await {
            last = r.text().await.unwrap_or_default();
            if last == want {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("GET /greet answered {last:?}, not {want:?}");
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = stagehand(dir);
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "stagehand {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_ci_job_drives_node_red_and_a_crash_mid_deploy_is_reconciled() {
    let (dev, prod) = tokio::join!(NodeRedProcess::start(), NodeRedProcess::start());
    dev.deploy_raw(&greeter("v1 ", DEV_GREETING)).await;
    prod.deploy_raw(&greeter("old ", PROD_GREETING)).await;

    let dir = temp_dir();
    run(&dir, &["team", "create", "payments"], &[]);
    let token = run(
        &dir,
        &[
            "token", "create", "--team", "payments", "--role", "admin", "--name", "ci",
        ],
        &[],
    )
    .trim()
    .to_owned();
    let (server, url) = spawn_serve(stagehand(&dir));
    let team = team_of_token(&url, &token).await;
    let (pipeline, ids, stages) = pipeline_of(&url, &token, &team, &["dev", "prod"]).await;
    let remote = [
        ("STAGEHAND_URL", url.as_str()),
        ("STAGEHAND_TOKEN", token.as_str()),
    ];

    // Connect both with the CLI; the secret comes from the environment.
    let out = run(
        &dir,
        &[
            "instance",
            "connect",
            "--instance",
            &ids[0],
            "--kind",
            "node-red",
            "--runtime-url",
            dev.url(),
            "--auth",
            "basic",
            "--username",
            dev.username(),
        ],
        &[
            remote[0],
            remote[1],
            ("STAGEHAND_RUNTIME_SECRET", dev.password()),
        ],
    );
    assert!(out.contains("connected"), "{out}");
    assert!(!out.contains(dev.password()), "{out}");
    run(
        &dir,
        &[
            "instance",
            "connect",
            "--instance",
            &ids[1],
            "--kind",
            "node-red",
            "--runtime-url",
            prod.url(),
            "--auth",
            "bearer",
        ],
        &[
            remote[0],
            remote[1],
            ("STAGEHAND_RUNTIME_SECRET", prod.token()),
        ],
    );
    let out = run(&dir, &["instance", "test", "--instance", &ids[1]], &remote);
    assert!(out.contains("connection works"), "{out}");
    let out = run(&dir, &["instance", "pull", "--instance", &ids[1]], &remote);
    assert!(out.contains("pulled prod"), "{out}");
    let out = run(
        &dir,
        &["instance", "status", "--instance", &ids[1]],
        &remote,
    );
    assert!(out.contains("in_sync"), "{out}");
    let out = run(
        &dir,
        &["promote", "--pipeline", &pipeline, "--stage", &stages[0]],
        &remote,
    );
    assert!(out.contains("applied"), "{out}");
    wait_for_greeting(&prod, &format!("v1 {PROD_GREETING}")).await;
    stop(server);

    // The crash: the server pauses after prod's runtime accepted v2, and
    // is killed there.
    dev.deploy_raw(&greeter("v2 ", DEV_GREETING)).await;
    let (_, rev_before) = prod.flows_raw().await;
    let (mut crashing, url) = spawn_serve({
        let mut c = stagehand(&dir);
        c.env("STAGEHAND_FAULT_PAUSE_AFTER_DEPLOY_MS", "60000");
        c
    });
    let play = {
        let (url, token, pipeline, stage) = (
            url.clone(),
            token.clone(),
            pipeline.clone(),
            stages[0].clone(),
        );
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!(
                    "{url}/api/v1/pipelines/{pipeline}/stages/{stage}/promote"
                ))
                .bearer_auth(token)
                .send()
                .await
        })
    };
    let began = Instant::now();
    loop {
        let (_, rev) = prod.flows_raw().await;
        if rev != rev_before {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "prod never got the deploy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crashing.kill().unwrap(); // SIGKILL
    crashing.wait().unwrap();
    assert!(
        play.await.unwrap().is_err(),
        "the play's connection died with the server"
    );
    wait_for_greeting(&prod, &format!("v2 {PROD_GREETING}")).await;

    // Restarted, the server reconciles the orphaned deploy: prod holds what
    // was sent, so the promotion is applied, and says it was reconciled.
    let (server, url) = spawn_serve({
        let mut c = stagehand(&dir);
        c.env("STAGEHAND_RECONCILE_AFTER_SECS", "0")
            .env("STAGEHAND_RECONCILE_SECS", "1");
        c
    });
    let began = Instant::now();
    let newest = loop {
        let list = api_ok(
            &url,
            &token,
            reqwest::Method::GET,
            "/promotions?limit=1",
            None,
        )
        .await;
        let newest = list["promotions"][0].clone();
        if newest["status"] != "deploying" {
            break newest;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "still deploying: {newest}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(newest["status"], "applied", "{newest}");
    let (_, rev_now) = prod.flows_raw().await;
    assert_eq!(newest["runtime_revision"], rev_now, "{newest}");
    let audit = api_ok(
        &url,
        &token,
        reqwest::Method::GET,
        "/audit?kind=promotion.applied&limit=1",
        None,
    )
    .await;
    assert_eq!(audit["events"][0]["details"]["reconciled"], true, "{audit}");
    let status = run(
        &dir,
        &["instance", "status", "--instance", &ids[1]],
        &[("STAGEHAND_URL", url.as_str()), remote[1]],
    );
    assert!(status.contains("in_sync"), "{status}");
    stop(server);
    let verified = run(&dir, &["audit", "verify", "--team", "payments"], &[]);
    assert!(
        verified.contains("intact") || verified.contains("ok"),
        "{verified}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn stop(mut child: Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exited with {status}");
}
