//! Remote commands for CI/CD: an API client of a running server
//! (`STAGEHAND_URL`, `STAGEHAND_TOKEN`). Every failure says what went wrong
//! and exits with a code a pipeline can branch on (see [`Exit`]).

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use stagehand_domain::{FlowContent, FlowName};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Exit codes of the remote commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Anything else (a server error, an unexpected answer).
    Failure = 1,
    /// The server could not be reached.
    Network = 3,
    /// 401 or 403: the token is missing, wrong, expired, or lacks the role.
    Denied = 4,
    /// 404: no such instance, pipeline, stage or promotion in the token's team.
    NotFound = 5,
    /// 409: a conflict (the target changed, a stale version, …).
    Conflict = 6,
    /// The promotion waits for approval (without `--wait`).
    Pending = 7,
    /// Bad input: a file that does not parse, or a 400/413/422.
    Invalid = 8,
}

/// A failure of a remote command: its message and exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

type Result<T> = std::result::Result<T, Failure>;

#[derive(Debug, Args)]
pub(crate) struct Server {
    /// The server, e.g. https://stagehand.example.com.
    #[arg(long, env = "STAGEHAND_URL", global = true)]
    url: Option<String>,
    /// An API token (`stagehand token create`).
    #[arg(long, env = "STAGEHAND_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FlowsCommand {
    /// Replace an instance's flows with the files of DIR, atomically: each
    /// *.json, *.yaml or *.yml file is a flow named by its file stem. DIR
    /// may also be a snapshot's download (`snapshot-….json`): its flows.
    Push {
        #[arg(long)]
        instance: String,
        dir: PathBuf,
    },
    /// Write an instance's flows into DIR as NAME.json files.
    Pull {
        #[arg(long)]
        instance: String,
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum InstanceCommand {
    /// Connect an instance to its runtime (needs stage.promote_protected).
    /// The secret (password, token or API key) is read from the first line
    /// of standard input, or STAGEHAND_RUNTIME_SECRET: never an argument,
    /// so it stays out of shell history and process lists.
    Connect {
        #[arg(long)]
        instance: String,
        /// node-red or langflow.
        #[arg(long)]
        kind: String,
        /// The runtime's base URL, e.g. http://node-red.internal:1880.
        #[arg(long = "runtime-url")]
        runtime_url: String,
        /// basic (Node-RED adminAuth), bearer (Node-RED token), api_key
        /// (Langflow) or none.
        #[arg(long)]
        auth: String,
        /// The adminAuth user (with --auth basic).
        #[arg(long)]
        username: Option<String>,
    },
    /// Disconnect an instance from its runtime.
    Disconnect {
        #[arg(long)]
        instance: String,
    },
    /// The runtime's state: in_sync, drifted, unreachable or auth_failed.
    Status {
        #[arg(long)]
        instance: String,
    },
    /// Test the connection: authenticate and read the runtime's revision.
    Test {
        #[arg(long)]
        instance: String,
    },
    /// Make a new instance from this one: its flows and env keys, never a
    /// value, its settings or its runtime connection. Prints the new id.
    Duplicate {
        #[arg(long)]
        instance: String,
        /// The new instance's name.
        #[arg(long)]
        name: String,
        /// A pipeline (id) the new instance joins as a stage: right after
        /// the source when the source is one of its stages, last otherwise.
        #[arg(long)]
        pipeline: Option<String>,
    },
    /// Pull the runtime's flows and values into the instance.
    Pull {
        #[arg(long)]
        instance: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum EnvCommand {
    /// List an instance's env keys and whether each has a value.
    Keys {
        #[arg(long)]
        instance: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PromoteArgs {
    #[arg(long)]
    pipeline: String,
    /// The source stage; its next stage is the target.
    #[arg(long)]
    stage: String,
    /// Wait until a promotion into a protected stage is approved or
    /// rejected (up to --timeout seconds).
    #[arg(long)]
    wait: bool,
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Makes a retried run create one promotion, not two.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Into a connected target changed in its runtime since Stagehand last
    /// saw it: overwrite it anyway (audited). Without it, such a play is
    /// refused (exit 6); pull the target first to keep what runs there.
    #[arg(long)]
    overwrite_drift: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PromotionsCommand {
    /// List promotions, newest first.
    List {
        #[arg(long)]
        pipeline: Option<String>,
        #[arg(long)]
        stage: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(server: &Server) -> Result<Self> {
        let base = server
            .url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                Failure::new(
                    Exit::Failure,
                    "set STAGEHAND_URL (or --url) to the server's address",
                )
            })?;
        let token = server
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Failure::new(
                    Exit::Denied,
                    "set STAGEHAND_TOKEN (or --token) to an API token",
                )
            })?;
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .map_err(|e| Failure::new(Exit::Failure, e.to_string()))?,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Result<(u16, Value)> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let res = req.send().await.map_err(|e| {
            Failure::new(Exit::Network, format!("could not reach {}: {e}", self.base))
        })?;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status < 400 {
            return Ok((status, value));
        }
        let err = &value["error"];
        let mut message = err["message"]
            .as_str()
            .unwrap_or("the server refused the request")
            .to_owned();
        if let Some(fields) = err["fields"].as_object() {
            for (field, why) in fields {
                message.push_str(&format!("\n  {field}: {}", why.as_str().unwrap_or("")));
            }
        }
        let exit = match status {
            401 | 403 => Exit::Denied,
            404 => Exit::NotFound,
            409 => Exit::Conflict,
            400 | 413 | 415 | 422 => Exit::Invalid,
            _ => Exit::Failure,
        };
        Err(Failure::new(exit, format!("{status}: {message}")))
    }

    async fn get(&self, path: &str) -> Result<Value> {
        Ok(self.send(reqwest::Method::GET, path, None, &[]).await?.1)
    }
}

/// Reads DIR's flow files: name → document. Names each bad file and, for
/// a parse error, the line.
/// The flows of a snapshot's download (`GET /snapshots/{id}/download`):
/// `{"flows": {name: document}, …}`, each name and document checked as a
/// pushed file's would be.
pub(crate) fn read_snapshot_file(path: &Path) -> Result<BTreeMap<String, Value>> {
    let bad = |m: String| Failure::new(Exit::Invalid, format!("{}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let flows = doc
        .get("flows")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("not a snapshot download: no \"flows\" object".into()))?;
    flows
        .iter()
        .map(|(name, content)| {
            let name = FlowName::parse(name)
                .map_err(|e| bad(format!("{name:?} is not a flow name: {}", e.message())))?;
            let content = FlowContent::from_value(content)
                .map_err(|e| bad(format!("flow {name}: {}", e.message())))?;
            Ok((name.to_string(), content.to_value()))
        })
        .collect()
}

pub(crate) fn read_flow_dir(dir: &Path) -> Result<BTreeMap<String, Value>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Failure::new(Exit::Invalid, format!("{}: {e}", dir.display())))?;
    let mut flows: BTreeMap<String, (PathBuf, Value)> = BTreeMap::new();
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !matches!(ext.as_str(), "json" | "yaml" | "yml") || !path.is_file() {
            continue;
        }
        let bad = |m: String| Failure::new(Exit::Invalid, format!("{}: {m}", path.display()));
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let name =
            FlowName::parse(stem).map_err(|e| bad(format!("not a flow name: {}", e.message())))?;
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let content = if ext == "json" {
            FlowContent::parse_json(&text)
        } else {
            FlowContent::parse_yaml(&text)
        }
        .map_err(|e| bad(e.message().to_owned()))?;
        if let Some((other, _)) = flows.get(name.as_str()) {
            return Err(bad(format!("flow {name} is also in {}", other.display())));
        }
        flows.insert(name.to_string(), (path.clone(), content.to_value()));
    }
    Ok(flows.into_iter().map(|(n, (_, v))| (n, v)).collect())
}

/// The secret of a runtime connection: STAGEHAND_RUNTIME_SECRET, or the
/// first line of standard input.
fn runtime_secret() -> Result<String> {
    if let Ok(s) = std::env::var("STAGEHAND_RUNTIME_SECRET")
        && !s.is_empty()
    {
        return Ok(s);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Failure::new(Exit::Invalid, format!("could not read the secret: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn print_runtime(v: &Value) {
    println!(
        "{} at {}: {}{}",
        v["kind"].as_str().unwrap_or("runtime"),
        v["url"].as_str().unwrap_or("?"),
        v["state"].as_str().unwrap_or("unknown"),
        v["state_detail"]
            .as_str()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    );
}

pub(crate) async fn instance(server: &Server, command: InstanceCommand) -> Result<()> {
    let client = Client::new(server)?;
    match command {
        InstanceCommand::Connect {
            instance,
            kind,
            runtime_url,
            auth,
            username,
        } => {
            let auth = match auth.as_str() {
                "none" => json!({ "type": "none" }),
                "bearer" => json!({ "type": "bearer", "token": runtime_secret()? }),
                "api_key" => json!({ "type": "api_key", "key": runtime_secret()? }),
                "basic" => json!({
                    "type": "basic",
                    "username": username.ok_or_else(|| Failure::new(Exit::Invalid, "--auth basic needs --username"))?,
                    "password": runtime_secret()?,
                }),
                other => {
                    return Err(Failure::new(
                        Exit::Invalid,
                        format!("--auth must be basic, bearer, api_key or none, not {other:?}"),
                    ));
                }
            };
            let (_, link) = client
                .send(
                    reqwest::Method::PUT,
                    &format!("/instances/{instance}/runtime"),
                    Some(&json!({ "kind": kind, "url": runtime_url, "auth": auth })),
                    &[],
                )
                .await?;
            print!("connected: ");
            print_runtime(&link);
        }
        InstanceCommand::Disconnect { instance } => {
            client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/instances/{instance}/runtime"),
                    None,
                    &[],
                )
                .await?;
            println!("disconnected {instance}");
        }
        InstanceCommand::Status { instance } => {
            print_runtime(
                &client
                    .get(&format!("/instances/{instance}/runtime"))
                    .await?,
            );
        }
        InstanceCommand::Test { instance } => {
            let (_, link) = client
                .send(
                    reqwest::Method::POST,
                    &format!("/instances/{instance}/runtime/test"),
                    None,
                    &[],
                )
                .await?;
            print!("connection works: ");
            print_runtime(&link);
        }
        InstanceCommand::Pull { instance } => {
            let (_, updated) = client
                .send(
                    reqwest::Method::POST,
                    &format!("/instances/{instance}/pull"),
                    None,
                    &[],
                )
                .await?;
            println!(
                "pulled {} (version {})",
                updated["name"].as_str().unwrap_or(&instance),
                updated["version"]
            );
        }
        InstanceCommand::Duplicate {
            instance,
            name,
            pipeline,
        } => {
            let mut body = serde_json::json!({ "name": name });
            if let Some(p) = &pipeline {
                body["pipeline"] = serde_json::json!(p);
            }
            let (_, made) = client
                .send(
                    reqwest::Method::POST,
                    &format!("/instances/{instance}/duplicate"),
                    Some(&body),
                    &[],
                )
                .await?;
            eprintln!(
                "duplicated {instance} as {}{} (flows and env keys; set its values before promoting into it)",
                made["name"].as_str().unwrap_or(&name),
                if pipeline.is_some() {
                    ", a stage of the pipeline"
                } else {
                    ""
                }
            );
            println!("{}", made["id"].as_str().unwrap_or_default());
        }
    }
    Ok(())
}

pub(crate) async fn flows(server: &Server, command: FlowsCommand) -> Result<()> {
    let client = Client::new(server)?;
    match command {
        FlowsCommand::Push { instance, dir } => {
            let flows = if dir.is_file() {
                read_snapshot_file(&dir)?
            } else {
                read_flow_dir(&dir)?
            };
            let count = flows.len();
            let (_, updated) = client
                .send(
                    reqwest::Method::PUT,
                    &format!("/instances/{instance}/flows"),
                    Some(&json!({ "flows": flows })),
                    &[],
                )
                .await?;
            println!(
                "pushed {count} flows to {} (version {})",
                updated["name"].as_str().unwrap_or(&instance),
                updated["version"]
            );
        }
        FlowsCommand::Pull { instance, dir } => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Failure::new(Exit::Failure, format!("{}: {e}", dir.display())))?;
            let list = client.get(&format!("/instances/{instance}/flows")).await?;
            let names: Vec<String> = list["flows"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["name"].as_str().map(str::to_owned))
                .collect();
            for name in &names {
                // Names are validated: no separators, never '.' or '..'.
                let flow_name = FlowName::parse(name).map_err(|e| {
                    Failure::new(Exit::Failure, format!("server sent a bad flow name: {e}"))
                })?;
                let doc = client
                    .get(&format!(
                        "/instances/{instance}/flows/{}",
                        encode(flow_name.as_str())
                    ))
                    .await?;
                let path = dir.join(format!("{name}.json"));
                let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
                std::fs::write(&path, text)
                    .map_err(|e| Failure::new(Exit::Failure, format!("{}: {e}", path.display())))?;
            }
            println!("pulled {} flows into {}", names.len(), dir.display());
        }
    }
    Ok(())
}

/// Percent-encodes a path segment.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) async fn env(server: &Server, command: EnvCommand) -> Result<()> {
    let EnvCommand::Keys { instance } = command;
    let client = Client::new(server)?;
    let env = client.get(&format!("/instances/{instance}/env")).await?;
    for var in env["env"].as_array().into_iter().flatten() {
        let state = if var["has_value"].as_bool() == Some(true) {
            "set"
        } else {
            "awaiting a value"
        };
        println!("{}\t{state}", var["key"].as_str().unwrap_or(""));
    }
    Ok(())
}

pub(crate) async fn promote(server: &Server, args: PromoteArgs) -> Result<()> {
    let client = Client::new(server)?;
    let base = format!("/pipelines/{}/stages/{}", args.pipeline, args.stage);
    let preview = client.get(&format!("{base}/preview")).await?;
    print_plan(&preview);
    let mut headers = vec![("if-match", format!("\"{}\"", preview["target_version"]))];
    if let Some(k) = &args.idempotency_key {
        headers.push(("idempotency-key", k.clone()));
    }
    let (_, mut promotion) = client
        .send(
            reqwest::Method::POST,
            &format!("{base}/promote"),
            args.overwrite_drift
                .then(|| json!({ "overwrite_drift": true }))
                .as_ref(),
            &headers,
        )
        .await?;
    let id = promotion["id"].as_str().unwrap_or("").to_owned();
    println!(
        "promotion {id}: {}",
        promotion["status"].as_str().unwrap_or("?")
    );
    if promotion["status"] == "pending_approval" {
        if !args.wait {
            return Err(Failure::new(
                Exit::Pending,
                format!("promotion {id} awaits approval; rerun with --wait to wait for it"),
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(args.timeout);
        while promotion["status"] == "pending_approval" {
            if Instant::now() > deadline {
                return Err(Failure::new(
                    Exit::Pending,
                    format!(
                        "promotion {id} still awaits approval after {} s",
                        args.timeout
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            promotion = client.get(&format!("/promotions/{id}")).await?;
        }
        println!(
            "promotion {id}: {}",
            promotion["status"].as_str().unwrap_or("?")
        );
    }
    match promotion["status"].as_str() {
        Some("applied") => Ok(()),
        Some(other) => Err(Failure::new(
            Exit::Failure,
            match promotion["runtime_error"].as_str() {
                Some(why) => format!("promotion {id} was {other}: {why}"),
                None => format!("promotion {id} was {other}"),
            },
        )),
        None => Err(Failure::new(
            Exit::Failure,
            "the server's answer had no status",
        )),
    }
}

/// The target's keys that will have no value once the plan is applied:
/// those awaiting one today and every key the plan adds (as the web
/// preview says; `PromotionPlan::keys_awaiting_value_after`).
fn awaiting_after(plan: &Value) -> Value {
    let mut keys: Vec<&str> = ["target_keys_awaiting_value", "keys_to_add"]
        .iter()
        .flat_map(|k| plan[*k].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    Value::from(keys)
}

fn print_plan(preview: &Value) {
    let plan = &preview["plan"];
    let awaiting = awaiting_after(plan);
    let names = |list: &Value, key: &str| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|v| v.get(key).unwrap_or(v).as_str().unwrap_or("").to_owned())
            .collect()
    };
    println!(
        "plan: {} → {}",
        preview["source"]["instance_name"].as_str().unwrap_or("?"),
        preview["target"]["instance_name"].as_str().unwrap_or("?")
    );
    for (label, list, key) in [
        ("flows added", &plan["flows_added"], "name"),
        ("flows changed", &plan["flows_changed"], "name"),
        ("flows removed", &plan["flows_removed"], "name"),
        ("keys to add", &plan["keys_to_add"], ""),
        (
            "keys awaiting a value on the target after this",
            &awaiting,
            "",
        ),
    ] {
        let n = names(list, key);
        println!(
            "  {label}: {}",
            if n.is_empty() {
                "none".to_owned()
            } else {
                n.join(", ")
            }
        );
    }
    println!(
        "  flows unchanged: {}",
        plan["flows_unchanged"].as_array().map_or(0, Vec::len)
    );
}

pub(crate) async fn promotions(server: &Server, command: PromotionsCommand) -> Result<()> {
    let PromotionsCommand::List {
        pipeline,
        stage,
        status,
        actor,
        limit,
    } = command;
    let client = Client::new(server)?;
    let mut query = vec![format!("limit={limit}")];
    for (k, v) in [
        ("pipeline", pipeline),
        ("stage", stage),
        ("status", status),
        ("actor", actor),
    ] {
        if let Some(v) = v {
            query.push(format!("{k}={}", encode(&v)));
        }
    }
    let list = client
        .get(&format!("/promotions?{}", query.join("&")))
        .await?;
    for p in list["promotions"].as_array().into_iter().flatten() {
        println!(
            "{}\t{}\t{}\t{}",
            p["created_at"].as_str().unwrap_or(""),
            p["status"].as_str().unwrap_or(""),
            p["requested_by"].as_str().unwrap_or(""),
            p["id"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_awaiting_after_a_plan_include_the_keys_it_adds() {
        let plan = json!({
            "target_keys_awaiting_value": ["TOKEN", "API_URL"],
            "keys_to_add": ["API_URL", "NEW_KEY"],
        });
        assert_eq!(
            awaiting_after(&plan),
            json!(["API_URL", "NEW_KEY", "TOKEN"])
        );
        assert_eq!(awaiting_after(&json!({})), json!([]));
    }
}
