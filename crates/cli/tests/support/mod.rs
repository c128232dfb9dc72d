//! What the binary's tests share: temporary directories, starting and
//! stopping `stagehand serve`, fresh PostgreSQL databases, and reading a
//! form's CSRF token. Each test file uses part of it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A fixed secret key (base64 of 32 bytes) for tests that set one.
pub const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A new, empty directory under the system's temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "stagehand-{tag}-{}-{}",
        std::process::id(),
        nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts `serve` on a free port; the child and its base URL, once it
/// listens. Panics (killing it) if it reports an error or takes a minute.
pub fn spawn_serve(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("serve: {line}");
            if let Some(at) = line.find("listening on http://") {
                let url: String = line[at + "listening on ".len()..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '\u{1b}')
                    .collect();
                let _ = tx.send(Ok(url));
            }
            if line.contains("error:") {
                let _ = tx.send(Err(line));
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(url)) => (child, url),
        other => {
            let _ = child.kill();
            panic!("serve did not start: {other:?}");
        }
    }
}

/// SIGTERM, then its exit status (within 20 s).
pub fn terminate(mut child: Child) -> ExitStatus {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fresh database on the `DATABASE_URL` server, dropped with the value.
/// Never skipped: scripts/test.sh starts a throwaway PostgreSQL.
#[derive(Debug)]
pub struct PgDatabase {
    pub url: String,
    admin: String,
    name: String,
}

impl PgDatabase {
    pub fn create(label: &str) -> Self {
        let admin = std::env::var("DATABASE_URL").expect(
            "this test needs DATABASE_URL; run scripts/test.sh, which starts a throwaway PostgreSQL",
        );
        let name = format!("{label}_{}_{}", std::process::id(), nanos());
        psql(&admin, &format!("create database {name}"));
        let base = admin.rsplit_once('/').unwrap().0;
        Self {
            url: format!("{base}/{name}"),
            admin,
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin,
                "-qc",
                &format!("drop database if exists {} with (force)", self.name),
            ])
            .output();
    }
}

/// Runs one statement with psql (which comes with PostgreSQL); its output,
/// unaligned and trimmed.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-Atqc", sql])
        .output()
        .expect("psql is installed with PostgreSQL");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The value of a page's hidden `csrf_token` field.
pub fn hidden_csrf(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no csrf token in {html}"))
        + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// One API call with a token: its status and JSON body (null if none).
pub async fn api(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{base}/api/v1{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// [`api`] that must succeed; its body.
pub async fn api_ok(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let (status, v) = api(base, token, method, path, body).await;
    assert!((200..300).contains(&status), "{path}: {status} {v}");
    v
}

/// The id of the token's team, from the token's own audit trail.
pub async fn team_of_token(base: &str, token: &str) -> String {
    let v = api_ok(
        base,
        token,
        reqwest::Method::GET,
        "/audit?kind=token.created",
        None,
    )
    .await;
    v["events"][0]["team_id"].as_str().unwrap().to_owned()
}

/// A pipeline `main` of new instances named `names`, made through the API:
/// the pipeline's id, the instances' ids and the stages' ids, in order.
pub async fn pipeline_of(
    base: &str,
    token: &str,
    team: &str,
    names: &[&str],
) -> (String, Vec<String>, Vec<String>) {
    let post = reqwest::Method::POST;
    let mut ids = Vec::new();
    for name in names {
        let i = api_ok(
            base,
            token,
            post.clone(),
            &format!("/teams/{team}/instances"),
            Some(json!({"name": name})),
        )
        .await;
        ids.push(i["id"].as_str().unwrap().to_owned());
    }
    let p = api_ok(
        base,
        token,
        post.clone(),
        &format!("/teams/{team}/pipelines"),
        Some(json!({"name": "main"})),
    )
    .await;
    let pipeline = p["id"].as_str().unwrap().to_owned();
    let mut stages = Vec::new();
    for id in &ids {
        let p = api_ok(
            base,
            token,
            post.clone(),
            &format!("/pipelines/{pipeline}/stages"),
            Some(json!({"instance": id})),
        )
        .await;
        stages = p["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
    }
    (pipeline, ids, stages)
}
