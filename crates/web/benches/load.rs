//! Load benchmark of the web UI against the real release binary and a
//! durable PostgreSQL (run `scripts/load.sh`, which provides both and wrk).
//!
//! - the pipeline page of a 3-stage pipeline of typical instances (50 flows,
//!   40 env keys each), 32 connections;
//! - the promotion history with 1,000,000 promotions seeded, for each filter
//!   and for a page deep in the history;
//! - the server's resident memory when idle.
//!
//! Each wrk run is repeated and the median reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stagehand_domain::{BuiltinRole, EnvKey, FlowContent, FlowName, Name, SecretValue, Username};
use stagehand_store::crypto::SecretKey;
use stagehand_store::{Actor, Database, NewUser, PromotionRequest, Store};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &str = "load test password";
const PROMOTIONS: i64 = 1_000_000;
const RUNS: usize = 3;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is required: run scripts/load.sh"))
}

struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    /// Requests sent, and those that failed at the socket (connect, read,
    /// write, timeout).
    sent: u64,
    socket_errors: u64,
}

fn parse_ms(s: &str) -> f64 {
    let s = s.trim();
    if let Some(v) = s.strip_suffix("us") {
        v.parse::<f64>().unwrap() / 1000.0
    } else if let Some(v) = s.strip_suffix("ms") {
        v.parse().unwrap()
    } else if let Some(v) = s.strip_suffix('s') {
        v.parse::<f64>().unwrap() * 1000.0
    } else {
        panic!("unknown wrk time {s}")
    }
}

/// How wrk sends its requests: with a session cookie (pages), or from a
/// Lua script (API calls).
enum Load<'a> {
    Cookie(&'a str),
    Script(&'a std::path::Path),
}

fn wrk(url: &str, load: &Load<'_>, connections: u32, seconds: u32) -> Wrk {
    let mut args = vec![
        "-t2".to_owned(),
        format!("-c{connections}"),
        format!("-d{seconds}s"),
        "--latency".to_owned(),
    ];
    match load {
        Load::Cookie(cookie) => args.extend([
            "-H".to_owned(),
            format!("Cookie: stagehand_session={cookie}"),
            "-H".to_owned(),
            "Accept: text/html".to_owned(),
        ]),
        Load::Script(path) => args.extend(["-s".to_owned(), path.display().to_string()]),
    }
    args.push(url.to_owned());
    let out = Command::new("wrk")
        .args(&args)
        .output()
        .expect("wrk (scripts/load.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in wrk output:\n{text}"))
            .to_owned()
    };
    let rps = line("Requests/sec:")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let p50 = parse_ms(line("50%").split_whitespace().nth(1).unwrap());
    let p99 = parse_ms(line("99%").split_whitespace().nth(1).unwrap());
    let non_2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses:"))
        .and_then(|l| l.split(':').nth(1))
        .map_or(0, |n| n.trim().parse().unwrap());
    let sent = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk output:\n{text}"));
    let socket_errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map_or(0, |rest| {
            rest.split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        });
    Wrk {
        rps,
        p50_ms: p50,
        p99_ms: p99,
        non_2xx,
        sent,
        socket_errors,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Runs wrk `RUNS` times; prints and returns the median throughput and p99.
fn measure(label: &str, url: &str, load: &Load<'_>, connections: u32, seconds: u32) -> (f64, f64) {
    let runs: Vec<Wrk> = (0..RUNS)
        .map(|_| {
            // Let the previous run's last requests drain out of the database.
            std::thread::sleep(Duration::from_secs(1));
            wrk(url, load, connections, seconds)
        })
        .collect();
    for r in &runs {
        assert_eq!(r.non_2xx, 0, "{label}: non-2xx answers under load");
    }
    let rps = median(runs.iter().map(|r| r.rps).collect());
    let p50 = median(runs.iter().map(|r| r.p50_ms).collect());
    let p99 = median(runs.iter().map(|r| r.p99_ms).collect());
    println!(
        "{label:<44} {connections:>3} conns  {rps:>8.0} req/s  p50 {p50:>7.2} ms  p99 {p99:>7.2} ms   (runs p99: {})",
        runs.iter()
            .map(|r| format!("{:.2}", r.p99_ms))
            .collect::<Vec<_>>()
            .join(", ")
    );
    (rps, p99)
}

/// CPU seconds (user + system) a process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

/// CPU seconds used by every PostgreSQL process on the machine.
fn postgres_cpu_secs() -> f64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("postgres"))
        })
        .map(cpu_secs)
        .sum()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

fn flow(i: usize, variant: usize) -> FlowContent {
    let nodes: Vec<_> = (0..12)
        .map(|n| serde_json::json!({"id": format!("{i}-{n}"), "type": "function", "name": format!("step {n} v{variant}"), "func": "return msg;", "wires": [[format!("{i}-{}", n + 1)]]}))
        .collect();
    FlowContent::from_value(&serde_json::json!({"id": format!("tab-{i}"), "nodes": nodes})).unwrap()
}

/// A typical instance: 50 flows of about 4 KB, the first `changed` of them
/// in `variant`, the rest in variant 0; 40 keys, two in three with a value
/// when `with_values`.
async fn typical_instance(
    store: &Arc<dyn Store>,
    team: stagehand_domain::TeamId,
    name: &str,
    changed: usize,
    variant: usize,
    with_values: bool,
) -> stagehand_domain::InstanceId {
    let system = Actor::system();
    let i = store
        .create_instance(
            team,
            Name::parse("name", name).unwrap(),
            serde_json::json!({}),
            &system,
        )
        .await
        .unwrap()
        .id;
    let flows = (0..50)
        .map(|f| {
            let v = if f < changed { variant } else { 0 };
            (
                FlowName::parse(&format!("flow-{f:02}")).unwrap(),
                flow(f, v),
            )
        })
        .collect();
    store
        .replace_flows(team, i, flows, None, &system)
        .await
        .unwrap();
    for k in 0..40 {
        let value = (with_values && k % 3 != 0).then(|| SecretValue::new(format!("value-{k}")));
        store
            .set_env_var(
                team,
                i,
                EnvKey::parse(&format!("KEY_{k:02}")).unwrap(),
                value,
                &system,
            )
            .await
            .unwrap();
    }
    i
}

/// A pipeline over `instances`, in order.
async fn pipeline_of(
    store: &Arc<dyn Store>,
    team: stagehand_domain::TeamId,
    name: &str,
    instances: &[stagehand_domain::InstanceId],
) -> stagehand_store::Pipeline {
    let system = Actor::system();
    let mut pipeline = store
        .create_pipeline(team, Name::parse("name", name).unwrap(), &system)
        .await
        .unwrap();
    for i in instances {
        pipeline = store
            .add_stage(team, pipeline.id, *i, None, &system)
            .await
            .unwrap();
    }
    pipeline
}

struct Seeded {
    team: String,
    pipeline: String,
    stage: String,
    deep_cursor: String,
}

async fn seed(store: &Arc<dyn Store>, url: &str) -> Seeded {
    let system = Actor::system();
    let hash = stagehand_web::auth::password::hash_password(SecretValue::new(PASSWORD.into()))
        .await
        .unwrap();
    let lead = store
        .create_user(
            NewUser {
                username: Username::parse("lena").unwrap(),
                password_hash: hash,
                is_platform_admin: false,
            },
            &system,
        )
        .await
        .unwrap();
    let team = store
        .create_team(Name::parse("name", "payments").unwrap(), &system)
        .await
        .unwrap()
        .id;
    store
        .bind_role(team, lead.id, BuiltinRole::Lead.as_str(), &system)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (n, name) in ["dev", "qa", "prod"].iter().enumerate() {
        ids.push(typical_instance(store, team, name, 5 * n, 1, true).await);
    }
    let pipeline = pipeline_of(store, team, "checkout", &ids).await;
    let stages: Vec<_> = pipeline.stages.iter().map(|s| s.id).collect();
    let first = store
        .promote(PromotionRequest {
            team,
            pipeline: pipeline.id,
            stage: stages[0],
            actor: Actor::user(lead.id, &lead.username),
            idempotency_key: None,
            expected_target_version: None,
            overwrite_drift: false,
            expected_source_version: None,
            source_snapshot: None,
            restore: false,
        })
        .await
        .unwrap();

    // A million promotions behind the store's back, spread over the stages,
    // actors and statuses (ten still awaiting approval), one a second into
    // the past.
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let started = std::time::Instant::now();
    let batch = 100_000;
    for from in (0..PROMOTIONS).step_by(batch) {
        sqlx::query(
            "insert into promotions (id, team_id, pipeline_id, source_stage_id, target_stage_id,
                source_instance_id, target_instance_id, status, source_snapshot_id, backup_snapshot_id,
                target_version, plan, requested_by_user_id, requested_by, created_at, applied_at,
                rolled_back_at, lead_seconds)
             select gen_random_uuid(), $1, $2,
                case when g % 2 = 0 then $3 else $4 end, case when g % 2 = 0 then $4 else $5 end,
                case when g % 2 = 0 then $6 else $7 end, case when g % 2 = 0 then $7 else $8 end,
                case when g % 100000 = 7 then 'pending_approval'
                     else (array['applied','applied','applied','rolled_back','rejected'])[1 + g % 5] end,
                $9, $9, g, $10, $11,
                (array['lena','omar','vera','ci-token'])[1 + g % 4],
                now() - make_interval(secs => g + 60), now() - make_interval(secs => g + 60),
                case when g % 5 = 3 then now() - make_interval(secs => g) end, g % 86400
             from generate_series($12::bigint, $13::bigint) g",
        )
        .bind(team.0)
        .bind(pipeline.id.0)
        .bind(stages[0].0)
        .bind(stages[1].0)
        .bind(stages[2].0)
        .bind(ids[0].0)
        .bind(ids[1].0)
        .bind(ids[2].0)
        .bind(first.source_snapshot_id.0)
        .bind(sqlx::types::Json(&first.plan))
        .bind(lead.id.0)
        .bind(from + 1)
        .bind(from + batch as i64)
        .execute(&pool)
        .await
        .unwrap();
    }
    // As a database in service would be: vacuumed (else autovacuum works
    // through the million new rows during the first measurements), its
    // statistics fresh, and the seeding's dirty pages written out (else
    // the next checkpoint lands in a measurement).
    sqlx::query("vacuum (analyze)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("checkpoint").execute(&pool).await.unwrap();
    println!(
        "seeded {PROMOTIONS} promotions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The cursor of a page half-way down the history.
    let (at, id): (chrono::DateTime<chrono::Utc>, uuid::Uuid) = sqlx::query_as(
        "select created_at, id from promotions where team_id = $1
         order by created_at desc, id desc offset 500000 limit 1",
    )
    .bind(team.0)
    .fetch_one(&pool)
    .await
    .unwrap();
    Seeded {
        team: team.to_string(),
        pipeline: pipeline.id.to_string(),
        stage: stages[1].to_string(),
        deep_cursor: format!("{}_{}", at.timestamp_micros(), id),
    }
}

async fn login(base: &str) -> String {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = client
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let at = form.find(marker).unwrap() + marker.len();
    let token = &form[at..at + form[at..].find('"').unwrap()];
    let res = client
        .post(format!("{base}/login"))
        .header("origin", base)
        .form(&[
            ("csrf_token", token),
            ("username", "lena"),
            ("password", PASSWORD),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "login failed");
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find_map(|v| v.strip_prefix("stagehand_session="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned()
}

/// 16 pipelines dev-N → prod-N of typical instances (50 flows, 40 keys,
/// 5 flows differing) and a lead's API token; the paths to promote.
async fn seed_promotions(
    store: &Arc<dyn Store>,
    team: stagehand_domain::TeamId,
) -> (String, Vec<String>) {
    let system = Actor::system();
    let mut paths = Vec::new();
    for p in 0..16 {
        let dev = typical_instance(store, team, &format!("dev-{p}"), 5, 1, false).await;
        let prod = typical_instance(store, team, &format!("prod-{p}"), 5, 0, false).await;
        let pipeline = pipeline_of(store, team, &format!("service-{p}"), &[dev, prod]).await;
        paths.push(format!(
            "/api/v1/pipelines/{}/stages/{}/promote",
            pipeline.id, pipeline.stages[0].id
        ));
    }
    let secret = stagehand_web::auth::tokens::new_secret();
    store
        .create_token(
            stagehand_store::NewApiToken {
                team,
                name: Name::parse("name", "load-ci").unwrap(),
                secret_hash: stagehand_web::auth::tokens::hash_secret(&secret),
                user_id: None,
                role: "lead".into(),
                expires_at: None,
            },
            &system,
        )
        .await
        .unwrap();
    (secret, paths)
}

struct Server(Child);

impl Server {
    /// `stagehand serve` on `port`, ready; SIGTERM drains it for a second
    /// first (`STAGEHAND_SHUTDOWN_DELAY_SECS`), as in production.
    async fn start(bin: &str, url: &str, key: &SecretKey, port: u16) -> Self {
        let mut cmd = Command::new(bin);
        cmd.env("DATABASE_URL", url);
        Self::serve(cmd, key, port).await
    }

    /// The same on the embedded store: SQLite in `data_dir`.
    async fn start_embedded(
        bin: &str,
        data_dir: &std::path::Path,
        key: &SecretKey,
        port: u16,
    ) -> Self {
        let mut cmd = Command::new(bin);
        cmd.env_remove("DATABASE_URL")
            .env("STAGEHAND_DATA_DIR", data_dir);
        Self::serve(cmd, key, port).await
    }

    async fn serve(mut cmd: Command, key: &SecretKey, port: u16) -> Self {
        let server = Server(
            cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}")])
                .env("STAGEHAND_SECRET_KEY", key.to_base64().as_str())
                .env("STAGEHAND_SHUTDOWN_DELAY_SECS", "1")
                .env("STAGEHAND_TRUSTED_PROXIES", "127.0.0.1")
                .env("RUST_LOG", "warn,sqlx::query=error")
                .stdout(Stdio::null())
                .spawn()
                .expect("start the server"),
        );
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    /// SIGTERM, and the exit status once it has drained.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        self.0.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx on loopback in front of `ports`, as `crates/cli/tests/replicas.rs`
/// runs it; stopped (SIGTERM) on drop.
struct Nginx {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Nginx {
    async fn start(ports: &[u16]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("stagehand-bench-nginx-{port}"));
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let upstreams: String = ports
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p} max_fails=0;\n"))
            .collect();
        let d = dir.display();
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "worker_processes 1;\npid {d}/nginx.pid;\nuser root;\n\
                 events {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n\
                 client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
                 fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n\
                 scgi_temp_path {d}/tmp/scgi;\n  upstream stagehand {{\n{upstreams}  }}\n\
                 server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
                 proxy_pass http://stagehand;\n      proxy_bind 127.0.0.1;\n\
                 proxy_set_header Host $http_host;\n\
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                 proxy_next_upstream error timeout;\n    }}\n  }}\n}}\n"
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .args(["-p", &d.to_string(), "-c"])
            .arg(dir.join("nginx.conf"))
            .args(["-e", &dir.join("error.log").display().to_string()])
            .args(["-g", "daemon off;"])
            .spawn()
            .expect("nginx (scripts/load.sh installs it)");
        for _ in 0..100 {
            if reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, port, dir }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn cpu_secs(&self) -> f64 {
        // The master and its one worker.
        let worker = std::fs::read_to_string(format!(
            "/proc/{}/task/{}/children",
            self.child.id(),
            self.child.id()
        ))
        .unwrap_or_default();
        cpu_secs(self.child.id())
            + worker
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .map(cpu_secs)
                .sum::<f64>()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::main]
async fn main() {
    let bin = env("STAGEHAND_BIN");
    // `cargo bench --bench load -- pipeline` (or `history`) runs one part.
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if only.as_deref() == Some("json") {
        // The embedded store needs no seeded PostgreSQL.
        json_reads(&bin).await;
        return;
    }
    let admin_url = env("DATABASE_URL");
    let name = format!("load_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("create database {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
    let key = SecretKey::generate();
    let store = stagehand_store::open(&Database::Postgres { url: url.clone() }, &key)
        .await
        .unwrap();
    let seeded = seed(&store, &url).await;

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = Server::start(&bin, &url, &key, port).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_kib(server.0.id());
    let cookie = login(&base).await;
    let t = &seeded.team;

    println!(
        "\nmachine: {} cores; wrk -t2, median of {RUNS} runs each",
        std::thread::available_parallelism().unwrap()
    );
    println!("idle RSS after start: {:.1} MB", idle as f64 / 1024.0);
    let wanted = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let only_replicas = only.as_deref() == Some("replicas");
    let wanted = |part: &str| !only_replicas && wanted(part);
    if wanted("pipeline") {
        let pipeline_url = format!("{base}/teams/{t}/pipelines/{}", seeded.pipeline);
        let queries = QueryStats::start(&url).await;
        let (server_cpu, pg_cpu) = (cpu_secs(server.0.id()), postgres_cpu_secs());
        let (rps, p99) = measure(
            "pipeline page (3 stages)",
            &pipeline_url,
            &Load::Cookie(&cookie),
            32,
            10,
        );
        let requests = rps * f64::from(RUNS as u32) * 10.0;
        println!(
            "  CPU per request (approx.): server {:.0} µs, PostgreSQL {:.0} µs",
            (cpu_secs(server.0.id()) - server_cpu) / requests * 1e6,
            (postgres_cpu_secs() - pg_cpu) / requests * 1e6,
        );
        if let Some(q) = queries {
            q.print(requests).await;
        }
        println!(
            "  target: >= 2000 req/s and p99 <= 50 ms: {}",
            if rps >= 2000.0 && p99 <= 50.0 {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    if wanted("promote") {
        let team: stagehand_domain::TeamId = t.parse().unwrap();
        let (secret, paths) = seed_promotions(&store, team).await;
        let list = paths
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        // Each connection cycles through the 16 pipelines; with `pace_ms`
        // it waits that long between requests (wrk's `delay`), turning the
        // closed loop into a steady rate.
        let script_for = |pace_ms: u32| {
            let path = std::env::temp_dir().join(format!(
                "stagehand-promote-{}-{pace_ms}.lua",
                std::process::id()
            ));
            let delay = if pace_ms > 0 {
                format!("delay = function() return {pace_ms} end\n")
            } else {
                String::new()
            };
            std::fs::write(
                &path,
                format!(
                    "local paths = {{{list}}}\nlocal i = math.random(0, 15)\n{delay}\
                     request = function()\n  i = i + 1\n  \
                     return wrk.format(\"POST\", paths[(i % #paths) + 1], {{[\"Authorization\"] = \"Bearer {secret}\"}}, \"\")\nend\n"
                ),
            )
            .unwrap();
            path
        };
        let flat_out = script_for(0);
        let (server_cpu, pg_cpu) = (cpu_secs(server.0.id()), postgres_cpu_secs());
        let (rps, _) = measure(
            "POST promote, 16 pipelines, flat out",
            &base,
            &Load::Script(&flat_out),
            16,
            10,
        );
        let requests = rps * f64::from(RUNS as u32) * 10.0;
        println!(
            "  CPU per promotion (approx.): server {:.0} µs, PostgreSQL {:.0} µs",
            (cpu_secs(server.0.id()) - server_cpu) / requests * 1e6,
            (postgres_cpu_secs() - pg_cpu) / requests * 1e6,
        );
        let paced = script_for(40);
        let (rps, p99) = measure(
            "POST promote, 16 pipelines, paced (40 ms)",
            &base,
            &Load::Script(&paced),
            16,
            10,
        );
        println!(
            "  target: >= 300 promotions/s sustained and p99 <= 50 ms: {}",
            if rps >= 300.0 && p99 <= 50.0 {
                "met"
            } else {
                "NOT met"
            }
        );
        let _ = std::fs::remove_file(&flat_out);
        let _ = std::fs::remove_file(&paced);
    }
    if wanted("metrics") {
        metrics(&store, &base, &cookie, &seeded).await;
    }
    if wanted("json") {
        json_reads(&bin).await;
    }
    if only.as_deref() == Some("replicas") {
        replicas(&bin, &url, &key, &server, port, &cookie, &seeded, &store).await;
    }
    if wanted("history") {
        let history = format!("{base}/teams/{t}/promotions");
        let cases = [
            ("history, first page", String::new()),
            (
                "history, page 10,001 (cursor at row 500,000)",
                format!("cursor={}", seeded.deep_cursor),
            ),
            (
                "history by pipeline",
                format!("pipeline={}", seeded.pipeline),
            ),
            ("history by stage", format!("stage={}", seeded.stage)),
            ("history by actor", "actor=vera".into()),
            ("history by status (rejected)", "status=rejected".into()),
            ("history by status (failed: none)", "status=failed".into()),
            (
                "history by date range",
                "since=2020-01-01&until=2099-12-31".into(),
            ),
            (
                "history by actor + status, deep",
                format!("actor=omar&status=applied&cursor={}", seeded.deep_cursor),
            ),
            (
                "history by stage + actor",
                format!("stage={}&actor=lena", seeded.stage),
            ),
        ];
        let mut worst: f64 = 0.0;
        for (label, query) in &cases {
            let (_, p99) = measure(
                label,
                &format!("{history}?{query}"),
                &Load::Cookie(&cookie),
                8,
                5,
            );
            worst = worst.max(p99);
        }
        println!(
            "  target: p99 <= 50 ms for every filter and page: worst {worst:.2} ms, {}",
            if worst <= 50.0 { "met" } else { "NOT met" }
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "RSS after the load: {:.1} MB",
        rss_kib(server.0.id()) as f64 / 1024.0
    );
    drop(server);
    store_cleanup(&admin, &name).await;
}

/// Delivery metrics over the million promotions: the rows rebuilt from
/// them (as after an upgrade), then the API and the page under load.
async fn metrics(store: &Arc<dyn Store>, base: &str, cookie: &str, seeded: &Seeded) {
    let started = std::time::Instant::now();
    let rows = store.rebuild_delivery().await.unwrap();
    println!(
        "delivery rows rebuilt from {PROMOTIONS} promotions: {rows} stage-days in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let team: stagehand_domain::TeamId = seeded.team.parse().unwrap();
    let secret = stagehand_web::auth::tokens::new_secret();
    store
        .create_token(
            stagehand_store::NewApiToken {
                team,
                name: Name::parse("name", "load-metrics").unwrap(),
                secret_hash: stagehand_web::auth::tokens::hash_secret(&secret),
                user_id: None,
                role: "viewer".into(),
                expires_at: None,
            },
            &Actor::system(),
        )
        .await
        .unwrap();
    let script = std::env::temp_dir().join(format!("stagehand-metrics-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!("wrk.headers[\"Authorization\"] = \"Bearer {secret}\"\n"),
    )
    .unwrap();
    let (t, p) = (&seeded.team, &seeded.pipeline);
    let mut worst: f64 = 0.0;
    for (label, url, load) in [
        (
            "API pipeline metrics, 30 days",
            format!("{base}/api/v1/pipelines/{p}/metrics"),
            Load::Script(&script),
        ),
        (
            "API pipeline metrics, 2 years",
            format!("{base}/api/v1/pipelines/{p}/metrics?days=731"),
            Load::Script(&script),
        ),
        (
            "API team metrics, 1 year",
            format!("{base}/api/v1/teams/{t}/metrics?days=365"),
            Load::Script(&script),
        ),
        (
            "metrics page, 30 days",
            format!("{base}/teams/{t}/pipelines/{p}/metrics"),
            Load::Cookie(cookie),
        ),
    ] {
        let (_, p99) = measure(label, &url, &load, 16, 10);
        worst = worst.max(p99);
    }
    println!(
        "  target: p99 <= 100 ms at 1,000,000 promotions: worst {worst:.2} ms, {}",
        if worst <= 100.0 { "met" } else { "NOT met" }
    );
    let _ = std::fs::remove_file(&script);
}

/// The JSON reads a CI job makes most, on the embedded store (SQLite, the
/// zero-setup default): the team's pipelines and one instance, with a
/// viewer's token, 16 connections. A pipeline of three typical instances.
async fn json_reads(bin: &str) {
    let dir = std::env::temp_dir().join(format!("stagehand-bench-embedded-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = SecretKey::generate();
    let database = Database::Sqlite {
        path: dir.join("stagehand.db"),
    };
    let store = stagehand_store::open(&database, &key).await.unwrap();
    let system = Actor::system();
    let team = store
        .create_team(Name::parse("name", "payments").unwrap(), &system)
        .await
        .unwrap()
        .id;
    let mut ids = Vec::new();
    for (n, name) in ["dev", "qa", "prod"].iter().enumerate() {
        ids.push(typical_instance(&store, team, name, 5 * n, 1, true).await);
    }
    pipeline_of(&store, team, "checkout", &ids).await;
    let secret = stagehand_web::auth::tokens::new_secret();
    store
        .create_token(
            stagehand_store::NewApiToken {
                team,
                name: Name::parse("name", "load-json").unwrap(),
                secret_hash: stagehand_web::auth::tokens::hash_secret(&secret),
                user_id: None,
                role: "viewer".into(),
                expires_at: None,
            },
            &system,
        )
        .await
        .unwrap();
    drop(store);
    let port = free_port();
    let server = Server::start_embedded(bin, &dir, &key, port).await;
    let script = dir.join("token.lua");
    std::fs::write(
        &script,
        format!("wrk.headers[\"Authorization\"] = \"Bearer {secret}\"\n"),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let mut slowest: f64 = f64::MAX;
    for (label, url) in [
        (
            "API team pipelines (embedded store)",
            format!("{base}/teams/{team}/pipelines"),
        ),
        (
            "API one instance (embedded store)",
            format!("{base}/instances/{}", ids[2]),
        ),
    ] {
        let (rps, _) = measure(label, &url, &Load::Script(&script), 16, 10);
        slowest = slowest.min(rps);
    }
    println!(
        "  target: >= 10000 req/s at 16 connections on the embedded store: slowest {slowest:.0} req/s, {}",
        if slowest >= 10_000.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What each statement cost PostgreSQL during a measurement, from
/// `pg_stat_statements`: only when the server preloads it
/// (`STAGEHAND_PG_OPTS="-c shared_preload_libraries=pg_stat_statements"
/// scripts/load.sh pipeline`).
struct QueryStats(sqlx::PgPool);

impl QueryStats {
    async fn start(url: &str) -> Option<Self> {
        let pool = sqlx::PgPool::connect(url).await.ok()?;
        sqlx::query("create extension if not exists pg_stat_statements")
            .execute(&pool)
            .await
            .ok()?;
        sqlx::query("select pg_stat_statements_reset()")
            .execute(&pool)
            .await
            .ok()?;
        Some(Self(pool))
    }

    async fn print(self, requests: f64) {
        // Planning is counted only with `pg_stat_statements.track_planning`
        // on (0 otherwise).
        let rows: Vec<(i64, f64, f64, i64, String)> = sqlx::query_as(
            "select calls, total_exec_time, total_plan_time, rows,
                    regexp_replace(query, '\\s+', ' ', 'g')
             from pg_stat_statements where query not ilike '%pg_stat_statements%'
             order by total_exec_time + total_plan_time desc limit 12",
        )
        .fetch_all(&self.0)
        .await
        .unwrap_or_default();
        println!(
            "  statements (calls per request, µs of execution and of planning per request, \
             rows per call):"
        );
        for (calls, exec_ms, plan_ms, rows, query) in rows {
            println!(
                "    {:>5.2} {:>6.1} µs {:>6.1} µs {:>6.1}  {}",
                calls as f64 / requests,
                exec_ms * 1000.0 / requests,
                plan_ms * 1000.0 / requests,
                rows as f64 / calls.max(1) as f64,
                query.chars().take(140).collect::<String>()
            );
        }
    }
}

/// Three replicas against one, on the same PostgreSQL and behind the same
/// nginx: the pipeline page and promote throughput, the CPU each request
/// costs server, database and balancer; then a rolling restart of the
/// three under load. (`scripts/load.sh replicas`; not part of the default
/// run.)
#[allow(clippy::too_many_arguments)]
async fn replicas(
    bin: &str,
    url: &str,
    key: &SecretKey,
    first: &Server,
    first_port: u16,
    cookie: &str,
    seeded: &Seeded,
    store: &Arc<dyn Store>,
) {
    let t = &seeded.team;
    let page = format!("/teams/{t}/pipelines/{}", seeded.pipeline);
    let team: stagehand_domain::TeamId = t.parse().unwrap();
    let (secret, paths) = seed_promotions(store, team).await;
    let list = paths
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let script =
        std::env::temp_dir().join(format!("stagehand-replicas-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "local paths = {{{list}}}\nlocal i = math.random(0, 15)\n\
             request = function()\n  i = i + 1\n  \
             return wrk.format(\"POST\", paths[(i % #paths) + 1], {{[\"Authorization\"] = \"Bearer {secret}\"}}, \"\")\nend\n"
        ),
    )
    .unwrap();
    let mut extra = Vec::new();
    let mut ports = vec![first_port];
    for _ in 0..2 {
        let port = free_port();
        extra.push(Server::start(bin, url, key, port).await);
        ports.push(port);
    }
    let one = Nginx::start(&ports[..1]).await;
    let three = Nginx::start(&ports).await;
    println!(
        "\nreplicas on one PostgreSQL, through nginx (1 worker); CPU per request is server + PostgreSQL + nginx"
    );
    for (label, lb, servers) in [
        ("1 replica", &one, vec![first.0.id()]),
        (
            "3 replicas",
            &three,
            std::iter::once(first.0.id())
                .chain(extra.iter().map(|s| s.0.id()))
                .collect(),
        ),
    ] {
        let servers_cpu = || servers.iter().copied().map(cpu_secs).sum::<f64>();
        let before = (servers_cpu(), postgres_cpu_secs(), lb.cpu_secs());
        let (rps, _) = measure(
            &format!("pipeline page, {label}"),
            &format!("{}{page}", lb.url()),
            &Load::Cookie(cookie),
            32,
            10,
        );
        let n = rps * f64::from(RUNS as u32) * 10.0;
        println!(
            "  CPU per request: server {:.0} µs, PostgreSQL {:.0} µs, nginx {:.0} µs",
            (servers_cpu() - before.0) / n * 1e6,
            (postgres_cpu_secs() - before.1) / n * 1e6,
            (lb.cpu_secs() - before.2) / n * 1e6,
        );
        let before = (servers_cpu(), postgres_cpu_secs(), lb.cpu_secs());
        let (rps, _) = measure(
            &format!("POST promote (16 pipelines), {label}"),
            &lb.url(),
            &Load::Script(&script),
            16,
            10,
        );
        let n = rps * f64::from(RUNS as u32) * 10.0;
        println!(
            "  CPU per promotion: server {:.0} µs, PostgreSQL {:.0} µs, nginx {:.0} µs",
            (servers_cpu() - before.0) / n * 1e6,
            (postgres_cpu_secs() - before.1) / n * 1e6,
            (lb.cpu_secs() - before.2) / n * 1e6,
        );
    }
    drop(one);

    // A rolling restart of the two extra replicas and a third started for
    // it, under load: each gets SIGTERM, drains, exits and is started again.
    let target = format!("{}{page}", three.url());
    let before = wrk(&target, &Load::Cookie(cookie), 16, 5);
    let load = {
        let target = target.clone();
        let cookie = cookie.to_owned();
        std::thread::spawn(move || wrk(&target, &Load::Cookie(&cookie), 16, 25))
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut exits = Vec::new();
    for (i, server) in extra.iter_mut().enumerate() {
        exits.push(server.terminate());
        *server = Server::start(bin, url, key, ports[i + 1]).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let during = load.join().unwrap();
    let (sent, failed) = (during.sent, during.non_2xx + during.socket_errors);
    println!(
        "rolling restart of 2 of 3 replicas (SIGTERM, 1 s drain, restart) under 16 connections for 25 s:\n  \
         {sent} requests sent, {failed} failed; p99 {:.2} ms during vs {:.2} ms before (p50 {:.2} vs {:.2}); exits: {exits:?}",
        during.p99_ms, before.p99_ms, during.p50_ms, before.p50_ms
    );
    drop(three);
    let _ = std::fs::remove_file(&script);
}

async fn store_cleanup(admin: &sqlx::PgPool, name: &str) {
    let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(admin)
        .await;
}
