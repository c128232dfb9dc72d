//! Three `stagehand serve` replicas that share nothing but one PostgreSQL,
//! behind nginx on loopback, as a Kubernetes Deployment runs them behind an
//! ingress: sessions work on every replica, plays into one target are
//! serialised whichever replica takes them, a rolling restart under load
//! fails no request, a kill -9 leaves nothing half done, three replicas
//! starting at once on an empty database migrate it once, each background
//! job runs on one replica per period and moves when that one dies, and
//! login throttling keys on the client behind the proxy.
//!
//! nginx and wrk come from Debian's packages; `scripts/test.sh` installs
//! them. Load is bounded in time and sent only to loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{
    KEY, PgDatabase, api, api_ok, hidden_csrf, pipeline_of, psql, team_of_token, temp_dir,
};

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN_PASSWORD: &str = "correct horse battery staple";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} is not installed: run scripts/test.sh, which installs it (apt-get install {name})"
    );
}

fn stagehand(dir: &Path, db: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stagehand"));
    c.current_dir(dir)
        .env("DATABASE_URL", db)
        .env("STAGEHAND_SECRET_KEY", KEY)
        .env_remove("STAGEHAND_DATA_DIR")
        .env_remove("STAGEHAND_FAULT_PAUSE_AFTER_DEPLOY_MS")
        .env_remove("STAGEHAND_LOG_FORMAT")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    c
}

fn run(dir: &Path, db: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = stagehand(dir, db);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "stagehand {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One `stagehand serve` on a fixed port (so nginx's upstream list stays
/// right across restarts).
struct Replica {
    port: u16,
    metrics_port: u16,
    child: Option<Child>,
    env: Vec<(String, String)>,
    dir: PathBuf,
    db: String,
}

impl Replica {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.metrics_port)
    }

    /// Starts the process (without waiting for it to be ready).
    fn spawn(&mut self) {
        let mut cmd = stagehand(&self.dir, &self.db);
        cmd.args(["serve", "--bind", &format!("127.0.0.1:{}", self.port)])
            .env(
                "STAGEHAND_METRICS_BIND",
                format!("127.0.0.1:{}", self.metrics_port),
            )
            .env("STAGEHAND_TRUSTED_PROXIES", "127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let port = self.port;
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("replica {port}: {line}");
            }
        });
        self.child = Some(child);
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/readyz", self.url())).await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} not ready after 60 s",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn pid(&self) -> String {
        self.child.as_ref().unwrap().id().to_string()
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.pid()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit; its status.
    async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} did not exit",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Replicas of one installation, and nginx in front of them.
struct Cluster {
    dir: PathBuf,
    db: String,
    _database: PgDatabase,
    replicas: Vec<Replica>,
    nginx: Option<Child>,
    nginx_port: u16,
}

impl Cluster {
    /// `n` replicas on a fresh database (not started).
    fn new(n: usize, env: &[(&str, &str)]) -> Self {
        let dir = temp_dir("replicas");
        let database = PgDatabase::create("replicas");
        let db = database.url.clone();
        let replicas = (0..n)
            .map(|_| Replica {
                port: free_port(),
                metrics_port: free_port(),
                child: None,
                env: env
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                dir: dir.clone(),
                db: db.clone(),
            })
            .collect();
        Self {
            dir,
            db,
            _database: database,
            replicas,
            nginx: None,
            nginx_port: 0,
        }
    }

    async fn start_all(&mut self) {
        for r in &mut self.replicas {
            r.spawn();
        }
        for r in &self.replicas {
            r.wait_ready().await;
        }
    }

    /// nginx on a free port, round-robin over the replicas; a refused or
    /// reset connection is retried on the next replica (nginx's default
    /// for requests it may repeat), so a replica that stopped accepting
    /// costs nobody a request. The client's address goes on in
    /// `X-Forwarded-For`.
    async fn start_nginx(&mut self) {
        let port = free_port();
        let d = self.dir.join("nginx");
        for sub in ["tmp", "logs"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let upstreams: String = self
            .replicas
            .iter()
            .map(|r| format!("    server 127.0.0.1:{} max_fails=0;\n", r.port))
            .collect();
        let conf = format!(
            "worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
user root;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  client_max_body_size 26m;
  upstream stagehand {{
{upstreams}  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://stagehand;
      proxy_bind 127.0.0.1;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_next_upstream error timeout;
      proxy_connect_timeout 2s;
    }}
  }}
}}
",
            d = d.display()
        );
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        let child = Command::new(tool("nginx"))
            .args(["-p", &d.display().to_string(), "-c"])
            .arg(d.join("nginx.conf"))
            .args(["-e", &d.join("logs/error.log").display().to_string()])
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.nginx = Some(child);
        self.nginx_port = port;
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{}/healthz", self.url()))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "nginx did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// nginx's address.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.nginx_port)
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> String {
        run(&self.dir, &self.db, args, stdin)
    }

    /// An administrator, a team `payments` and an admin token of it; the
    /// token and the team's id.
    async fn bootstrap(&self) -> (String, String) {
        self.run(
            &["user", "create", "admin", "--admin", "--password-stdin"],
            Some(&format!("{ADMIN_PASSWORD}\n")),
        );
        self.run(&["team", "create", "payments"], None);
        self.run(
            &[
                "member", "add", "--team", "payments", "--user", "admin", "--role", "admin",
            ],
            None,
        );
        let token = self
            .run(
                &[
                    "token", "create", "--team", "payments", "--role", "admin", "--name", "ci",
                ],
                None,
            )
            .trim()
            .to_owned();
        (token, String::new())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut n) = self.nginx.take() {
            // SIGTERM, not SIGKILL: nginx's workers outlive a killed master.
            let _ = Command::new("kill")
                .args(["-TERM", &n.id().to_string()])
                .status();
            let _ = n.wait();
        }
        self.replicas.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A pipeline dev → prod with a flow in dev; the pipeline's id and its
/// first stage's id.
async fn pipeline_with_a_flow(base: &str, token: &str, team: &str) -> (String, String) {
    let (pipeline, ids, stages) = pipeline_of(base, token, team, &["dev", "prod"]).await;
    api_ok(
        base,
        token,
        reqwest::Method::PUT,
        &format!("/instances/{}/flows/orders", ids[0]),
        Some(json!([{"id": "t1", "type": "tab", "label": "Orders"}])),
    )
    .await;
    (pipeline, stages[0].clone())
}

/// A browser's session, held by hand: cookies are per host, not per port,
/// so one jar would send them to every replica anyway; here it is explicit.
struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new(from: Option<IpAddr>) -> Self {
        Self::forging(from, None)
    }

    /// A client that sends its own `X-Forwarded-For` on every request.
    fn forging(from: Option<IpAddr>, forwarded_for: Option<&'static str>) -> Self {
        let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(ip) = from {
            b = b.local_address(ip);
        }
        if let Some(forged) = forwarded_for {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(
                "x-forwarded-for",
                reqwest::header::HeaderValue::from_static(forged),
            );
            // nginx passes a client's own Forwarded on untouched.
            h.insert(
                "forwarded",
                reqwest::header::HeaderValue::from_static("for=127.0.0.78"),
            );
            b = b.default_headers(h);
        }
        Self {
            http: b.build().unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all(reqwest::header::SET_COOKIE) {
            let pair = v.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    async fn get(&mut self, url: &str) -> (u16, String) {
        let res = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&res);
        (res.status().as_u16(), res.text().await.unwrap())
    }

    async fn post_form(&mut self, base: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let res = self
            .http
            .post(format!("{base}{path}"))
            .header("cookie", self.cookie_header())
            .header("origin", base)
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep_cookies(&res);
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        (status, if status == 303 { location } else { body })
    }

    /// Logs in at `base`; the answer's status and location or body.
    async fn login(&mut self, base: &str, user: &str, password: &str) -> (u16, String) {
        let (_, page) = self.get(&format!("{base}/login")).await;
        let csrf = hidden_csrf(&page);
        self.post_form(
            base,
            "/login",
            &[
                ("username", user),
                ("password", password),
                ("csrf_token", &csrf),
            ],
        )
        .await
    }
}

/// A wrk run's report.
#[derive(Debug, Default)]
struct Load {
    requests: u64,
    non_2xx: u64,
    socket_errors: u64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Load {
    fn failed(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }
}

fn millis(s: &str) -> f64 {
    let s = s.trim();
    if let Some(v) = s.strip_suffix("us") {
        v.parse::<f64>().unwrap() / 1000.0
    } else if let Some(v) = s.strip_suffix("ms") {
        v.parse().unwrap()
    } else if let Some(v) = s.strip_suffix('s') {
        v.parse::<f64>().unwrap() * 1000.0
    } else {
        panic!("latency {s:?}")
    }
}

fn parse_wrk(out: &str) -> Load {
    let mut load = Load::default();
    for line in out.lines() {
        let l = line.trim();
        if let Some(n) = l
            .split(" requests in")
            .next()
            .filter(|_| l.contains(" requests in"))
        {
            load.requests = n.trim().parse().unwrap();
        } else if let Some(n) = l.strip_prefix("Non-2xx or 3xx responses:") {
            load.non_2xx = n.trim().parse().unwrap();
        } else if let Some(rest) = l.strip_prefix("Socket errors:") {
            load.socket_errors = rest
                .split(',')
                .map(|p| p.split_whitespace().last().unwrap().parse::<u64>().unwrap())
                .sum();
        } else if let Some(v) = l.strip_prefix("50%") {
            load.p50_ms = millis(v);
        } else if let Some(v) = l.strip_prefix("99%") {
            load.p99_ms = millis(v);
        }
    }
    assert!(load.requests > 0, "wrk sent nothing:\n{out}");
    load
}

/// wrk against `url` for `secs` seconds, in the background.
fn start_wrk(url: &str, token: &str, secs: u64, connections: u32) -> Child {
    Command::new(tool("wrk"))
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            "--timeout",
            "5s",
            "-H",
            &format!("Authorization: Bearer {token}"),
            url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish_wrk(child: Child) -> Load {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "wrk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_wrk(&text)
}

async fn metrics_of(url: &str) -> prometheus_parse::Scrape {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn sum_of(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn sessions_plays_and_login_throttling_across_three_replicas() {
    let mut c = Cluster::new(3, &[]);
    c.start_all().await;
    c.start_nginx().await;
    let (token, _) = c.bootstrap().await;
    let lb = c.url();
    let team = team_of_token(&lb, &token).await;

    // A session made on one replica works on the others.
    let r: Vec<String> = c.replicas.iter().map(Replica::url).collect();
    let mut alice = Browser::new(None);
    let (status, to) = alice.login(&r[0], "admin", ADMIN_PASSWORD).await;
    assert_eq!((status, to.as_str()), (303, "/"), "login");
    for base in &r {
        let (status, page) = alice.get(&format!("{base}/teams/{team}")).await;
        assert_eq!(status, 200, "{base}: {page}");
    }
    // A logout on one ends it everywhere.
    let (_, page) = alice.get(&format!("{}/", r[1])).await;
    let csrf = hidden_csrf(&page);
    let (status, _) = alice
        .post_form(&r[1], "/logout", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(status, 303);
    alice.cookies.insert(
        "stagehand_session".into(),
        // The cookie the logout cleared, presented again.
        String::new(),
    );
    for base in &r {
        let (status, _) = alice.get(&format!("{base}/teams/{team}")).await;
        assert_ne!(status, 200, "{base} still serves a logged-out session");
    }

    // Plays into one target, at once, on every replica: each is applied or
    // a clean 409, and the history holds exactly the applied ones.
    let (pipeline, stage) = pipeline_with_a_flow(&lb, &token, &team).await;
    let mut plays = Vec::new();
    for i in 0..12 {
        let base = r[i % 3].clone();
        let token = token.clone();
        let path = format!("/pipelines/{pipeline}/stages/{stage}/promote");
        plays.push(tokio::spawn(async move {
            api(&base, &token, reqwest::Method::POST, &path, None).await
        }));
    }
    let mut applied = 0;
    for p in plays {
        let (status, body) = p.await.unwrap();
        match status {
            200 | 201 => {
                assert_eq!(body["status"], "applied", "{body}");
                applied += 1;
            }
            409 => assert_eq!(body["error"]["code"], "conflict", "{body}"),
            other => panic!("a concurrent play answered {other}: {body}"),
        }
    }
    assert!(applied >= 1);
    let history = api_ok(
        &lb,
        &token,
        reqwest::Method::GET,
        &format!("/promotions?pipeline={pipeline}&limit=100"),
        None,
    )
    .await;
    let statuses: Vec<&str> = history["promotions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), applied, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == "applied"), "{statuses:?}");
    let verify = api_ok(&lb, &token, reqwest::Method::GET, "/audit/verify", None).await;
    assert_eq!(verify["intact"], true, "{verify}");

    // Behind nginx every request comes from 127.0.0.1; the replicas trust
    // it, so the throttle keys on the client nginx saw. One client (from
    // 127.0.0.2, claiming to be 127.0.0.77 in its own X-Forwarded-For)
    // fails enough logins to lock its address...
    let mut mallory = Browser::forging(Some("127.0.0.2".parse().unwrap()), Some("127.0.0.77"));
    let mut locked = false;
    for i in 0..40 {
        // Each with another name: the account limit is not what stops it.
        let (status, body) = mallory.login(&lb, &format!("nobody{i}"), "wrong").await;
        assert_ne!(status, 303);
        if body.contains("Too many") || status == 429 {
            locked = true;
            break;
        }
    }
    assert!(
        locked,
        "40 failed logins from one address were never throttled"
    );
    // ...while another client (127.0.0.3) logs in at once.
    let mut bob = Browser::new(Some("127.0.0.3".parse().unwrap()));
    let (status, to) = bob.login(&lb, "admin", ADMIN_PASSWORD).await;
    assert_eq!(
        (status, to.as_str()),
        (303, "/"),
        "another client was locked out"
    );
    // The audit log says where each came from (logins are platform
    // events, outside the team's chain the token reads).
    let logged_in = psql(
        &c.db,
        "select source_ip from audit_events where kind = 'user.logged_in'",
    );
    assert!(logged_in.lines().any(|ip| ip == "127.0.0.3"), "{logged_in}");
    let failed = psql(
        &c.db,
        "select distinct source_ip from audit_events where kind = 'user.login_failed'",
    );
    assert_eq!(failed, "127.0.0.2", "failures recorded from elsewhere");
    let forged = psql(
        &c.db,
        "select count(*) from audit_events where source_ip = '127.0.0.77'",
    );
    assert_eq!(forged, "0", "a forged X-Forwarded-For was believed");
    let forged = psql(
        &c.db,
        "select count(*) from audit_events where source_ip = '127.0.0.78'",
    );
    assert_eq!(forged, "0", "a client's own Forwarded header was believed");
}

#[tokio::test]
async fn a_rolling_restart_under_load_fails_no_request() {
    let mut c = Cluster::new(3, &[("STAGEHAND_SHUTDOWN_DELAY_SECS", "1")]);
    c.start_all().await;
    c.start_nginx().await;
    let (token, _) = c.bootstrap().await;
    let team = team_of_token(&c.url(), &token).await;
    pipeline_with_a_flow(&c.url(), &token, &team).await;
    let target = format!("{}/api/v1/teams/{team}/pipelines", c.url());

    let before = finish_wrk(start_wrk(&target, &token, 3, 8));
    assert_eq!(before.failed(), 0, "{before:?}");

    let load = start_wrk(&target, &token, 20, 8);
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..c.replicas.len() {
        let r = &mut c.replicas[i];
        r.signal("-TERM");
        // It says it is going away before it stops serving.
        let deadline = Instant::now() + Duration::from_millis(800);
        loop {
            let res = reqwest::get(format!("{}/readyz", r.url())).await.unwrap();
            if res.status() == 503 {
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["status"], "draining");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz did not turn 503 after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = r.wait_exit(Duration::from_secs(30)).await;
        assert!(status.success(), "replica exited with {status:?}");
        r.spawn();
        r.wait_ready().await;
    }
    let during = finish_wrk(load);
    eprintln!(
        "rolling restart: before p50 {:.2} ms p99 {:.2} ms ({} requests); during: {} requests, {} failed, p50 {:.2} ms p99 {:.2} ms",
        before.p50_ms,
        before.p99_ms,
        before.requests,
        during.requests,
        during.failed(),
        during.p50_ms,
        during.p99_ms
    );
    assert_eq!(during.failed(), 0, "{during:?}");
    assert!(during.requests > 100, "{during:?}");
}

#[tokio::test]
async fn kill_9_of_one_replica_under_load_leaves_nothing_half_done() {
    let mut c = Cluster::new(3, &[]);
    c.start_all().await;
    c.start_nginx().await;
    let (token, _) = c.bootstrap().await;
    let lb = c.url();
    let team = team_of_token(&lb, &token).await;
    let (pipeline, stage) = pipeline_with_a_flow(&lb, &token, &team).await;
    let target = format!("{lb}/api/v1/teams/{team}/pipelines");

    let connections = 8;
    let load = start_wrk(&target, &token, 8, connections);
    // Plays through the balancer while a replica dies.
    let plays = {
        let (lb, token) = (lb.clone(), token.clone());
        let path = format!("/pipelines/{pipeline}/stages/{stage}/promote");
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..30 {
                answers.push(api(&lb, &token, reqwest::Method::POST, &path, None).await.0);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.replicas[1].signal("-KILL");
    c.replicas[1].wait_exit(Duration::from_secs(5)).await;
    let report = finish_wrk(load);
    let answers = plays.await.unwrap();

    // Only what was in flight on the dead replica may fail.
    assert!(
        report.failed() <= u64::from(connections),
        "more failed than were in flight: {report:?}"
    );
    // A play either happened or it did not: none is left in between.
    let open = psql(
        &c.db,
        "select count(*) from promotions where status not in ('applied', 'failed', 'rejected', 'rolled_back', 'pending_approval')",
    );
    assert_eq!(open, "0");
    let applied = answers.iter().filter(|s| matches!(**s, 200 | 201)).count();
    let recorded: usize = psql(
        &c.db,
        "select count(*) from promotions where status = 'applied'",
    )
    .parse()
    .unwrap();
    // A play whose answer was lost with the replica may have committed.
    assert!(
        recorded >= applied && recorded <= applied + 1,
        "{recorded} recorded, {applied} answered: {answers:?}"
    );
    // The others go on: ready, and a play through the balancer works.
    for (i, r) in c.replicas.iter().enumerate() {
        if i != 1 {
            assert_eq!(
                reqwest::get(format!("{}/readyz", r.url()))
                    .await
                    .unwrap()
                    .status(),
                200
            );
        }
    }
    let (status, body) = api(
        &lb,
        &token,
        reqwest::Method::POST,
        &format!("/pipelines/{pipeline}/stages/{stage}/promote"),
        None,
    )
    .await;
    assert!(matches!(status, 200 | 201), "{status} {body}");
    let verify = api_ok(&lb, &token, reqwest::Method::GET, "/audit/verify", None).await;
    assert_eq!(verify["intact"], true, "{verify}");
}

#[tokio::test]
async fn three_replicas_started_at_once_on_an_empty_database_migrate_it_once() {
    let mut c = Cluster::new(3, &[]);
    for r in &mut c.replicas {
        r.spawn();
    }
    for r in &c.replicas {
        r.wait_ready().await;
    }
    let files =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/postgres"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "sql")
            })
            .count();
    assert_eq!(
        psql(&c.db, "select count(*) from _sqlx_migrations where success"),
        files.to_string()
    );
    assert_eq!(
        psql(
            &c.db,
            "select count(*) from (select version from _sqlx_migrations group by version having count(*) > 1) d"
        ),
        "0"
    );
    // Each can serve: a user created through one is seen by all.
    c.bootstrap().await;
    for r in &c.replicas {
        let (status, _) = Browser::new(None)
            .login(&r.url(), "admin", ADMIN_PASSWORD)
            .await;
        assert_eq!(status, 303, "{}", r.url());
    }
}

#[tokio::test]
async fn each_background_job_runs_on_one_replica_per_period_and_moves_when_it_dies() {
    let mut c = Cluster::new(
        3,
        &[
            ("STAGEHAND_RECONCILE_SECS", "1"),
            ("STAGEHAND_DRIFT_CHECK_SECS", "1"),
        ],
    );
    c.start_all().await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut runs = Vec::new();
    let mut timed = false;
    for r in &c.replicas {
        let m = metrics_of(&r.metrics_url()).await;
        runs.push(sum_of(
            &m,
            "stagehand_job_runs_total",
            &[("job", "reconcile_deploys")],
        ));
        // The scrape parses and holds what operators look for.
        assert_eq!(sum_of(&m, "stagehand_build_info", &[]), 1.0);
        assert!(
            m.samples
                .iter()
                .any(|s| s.metric == "stagehand_db_pool_connections"
                    && s.labels.get("state") == Some("max"))
        );
        // A replica that never won a period has no run to time.
        timed |= m.samples.iter().any(|s| {
            s.metric == "stagehand_job_duration_seconds_count"
                || s.metric == "stagehand_job_duration_seconds"
        });
    }
    assert!(timed, "no replica timed a job run");
    let elapsed = started.elapsed().as_secs_f64();
    let total: f64 = runs.iter().sum();
    eprintln!("reconcile runs per replica after {elapsed:.1} s: {runs:?}");
    // One run per one-second period across the three (plus the first),
    // where three replicas each running it would make about three times
    // as many.
    assert!(
        total <= elapsed + 2.0,
        "{total} runs in {elapsed:.1} s: {runs:?}"
    );
    assert!(
        total >= elapsed * 0.5,
        "{total} runs in {elapsed:.1} s: {runs:?}"
    );

    // The two that ran it last die; the third takes every period over.
    let survivor = 2;
    let before = runs[survivor];
    for i in 0..2 {
        c.replicas[i].signal("-KILL");
        c.replicas[i].wait_exit(Duration::from_secs(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let m = metrics_of(&c.replicas[survivor].metrics_url()).await;
    let after = sum_of(
        &m,
        "stagehand_job_runs_total",
        &[("job", "reconcile_deploys")],
    );
    assert!(
        after - before >= 3.0,
        "the survivor ran it {} times in 5 s",
        after - before
    );
    assert_eq!(
        sum_of(
            &m,
            "stagehand_job_runs_total",
            &[("job", "reconcile_deploys"), ("result", "failed")]
        ),
        0.0
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_are_not_on_the_public_address() {
    let mut c = Cluster::new(1, &[]);
    c.start_all().await;
    let (token, _) = c.bootstrap().await;
    let base = c.replicas[0].url();
    let team = team_of_token(&base, &token).await;
    let (pipeline, stage) = pipeline_with_a_flow(&base, &token, &team).await;
    api_ok(
        &base,
        &token,
        reqwest::Method::POST,
        &format!("/pipelines/{pipeline}/stages/{stage}/promote"),
        None,
    )
    .await;
    for _ in 0..3 {
        api_ok(
            &base,
            &token,
            reqwest::Method::GET,
            &format!("/teams/{team}/pipelines"),
            None,
        )
        .await;
    }
    let _ = reqwest::get(format!("{base}/no/such/{}", "x".repeat(40)))
        .await
        .unwrap();
    // A method a client makes up is not a new series.
    let brew = reqwest::Method::from_bytes(b"BREW").unwrap();
    let _ = reqwest::Client::new()
        .request(brew, format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    // Not on the public address.
    assert_eq!(
        reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .status(),
        404
    );

    let res = reqwest::get(c.replicas[0].metrics_url()).await.unwrap();
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let m = metrics_of(&c.replicas[0].metrics_url()).await;
    assert_eq!(
        sum_of(
            &m,
            "stagehand_http_requests_total",
            &[
                ("route", "/api/v1/teams/:team/pipelines"),
                ("method", "GET"),
                ("status", "200"),
            ]
        ),
        3.0
    );
    assert!(
        m.samples
            .iter()
            .all(|s| s.labels.get("method") != Some("BREW")),
        "a made-up method became a label"
    );
    assert_eq!(
        sum_of(
            &m,
            "stagehand_http_requests_total",
            &[("method", "other"), ("status", "405")]
        ),
        1.0
    );
    assert!(
        m.samples
            .iter()
            .all(|s| s.labels.get("route").is_none_or(|r| !r.contains("xxxx"))),
        "a raw path became a label"
    );
    assert_eq!(
        sum_of(
            &m,
            "stagehand_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        2.0, // /no/such/… and /metrics
    );
    assert!(m.samples.iter().any(
        |s| s.metric == "stagehand_http_request_duration_seconds_count"
            || s.metric == "stagehand_http_request_duration_seconds"
    ));
    assert_eq!(
        sum_of(
            &m,
            "stagehand_promotions_total",
            &[("action", "play"), ("outcome", "applied")]
        ),
        1.0
    );
    for state in ["in_use", "idle", "waiting", "max"] {
        assert!(
            m.samples
                .iter()
                .any(|s| s.metric == "stagehand_db_pool_connections"
                    && s.labels.get("state") == Some(state)),
            "no pool gauge {state}"
        );
    }
    assert_eq!(
        sum_of(&m, "stagehand_db_pool_connections", &[("state", "max")]),
        20.0
    );
}
