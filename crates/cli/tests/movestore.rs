//! Moving and restoring stores with the real binary, as an operator does:
//! `migrate-store` from a seeded SQLite store to PostgreSQL, then serving
//! from the copy; `backup` of a running SQLite store and a restore; and a
//! `pg_dump` / `pg_restore` round trip. PostgreSQL tests need
//! `DATABASE_URL` (scripts/test.sh sets it) and fail without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{KEY, PgDatabase, hidden_csrf, psql, spawn_serve, temp_dir, terminate};

use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ADA_PASSWORD: &str = "ada's long enough password";
const DEV_VALUE: &str = "dev-value-9f3a1c";
const PROD_VALUE: &str = "prod-value-41bd07";

/// The binary in `dir`, with nothing from the test's environment.
fn stagehand(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stagehand"));
    c.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("STAGEHAND_DATA_DIR")
        .env_remove("STAGEHAND_SECRET_KEY")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    c
}

fn run(mut cmd: Command, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        writeln!(input, "{text}").unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a seeded store holds, as the API shows it.
struct Seeded {
    token: String,
    team: String,
    dev: String,
    prod: String,
    promotions: Value,
    dev_flows: Value,
    dev_env: Value,
}

/// A browser-like session: the session cookie and its CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// Logs in through the login form; `None` if the password was refused.
async fn login(url: &str, username: &str, password: &str) -> Option<Session> {
    let web = no_redirects();
    let page = web.get(format!("{url}/login")).send().await.unwrap();
    let login_cookie = cookie(&page, "stagehand_login_csrf").unwrap();
    let csrf = hidden_csrf(&page.text().await.unwrap());
    let res = web
        .post(format!("{url}/login"))
        .header("cookie", login_cookie)
        .form(&[
            ("username", username),
            ("password", password),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    if res.status() != 303 {
        return None;
    }
    let cookie = cookie(&res, "stagehand_session").unwrap();
    let home = web
        .get(format!("{url}/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    let csrf = hidden_csrf(&home.text().await.unwrap());
    Some(Session { cookie, csrf })
}

async fn form(url: &str, s: &Session, path: &str, fields: &[(&str, &str)]) {
    let mut fields = fields.to_vec();
    fields.push(("csrf_token", &s.csrf));
    let res = no_redirects()
        .post(format!("{url}{path}"))
        .header("cookie", &s.cookie)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{path}: {}", res.text().await.unwrap());
}

/// `METHOD /api/v1…` with the token; the JSON answer (status checked).
async fn api(url: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let client = reqwest::Client::new();
    let mut req = client
        .request(method.parse().unwrap(), format!("{url}/api/v1{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// Seeds a store through the CLI and a running server: an admin and a
/// member, a team, a custom role bound to the member, a service token,
/// dev and prod with flows and env values, a pipeline, a promotion applied,
/// one rolled back, one approved into a protected prod, and the audit
/// events of all of it. `cmd` gives the binary with the store's settings.
async fn seed(cmd: &dyn Fn() -> Command) -> Seeded {
    ok(&run(
        cmd(),
        &["user", "create", "ada", "--admin", "--password-stdin"],
        Some(ADA_PASSWORD),
    ));
    ok(&run(
        cmd(),
        &["user", "create", "bob", "--password-stdin"],
        Some("bob's long enough password"),
    ));
    ok(&run(cmd(), &["team", "create", "payments"], None));
    ok(&run(
        cmd(),
        &[
            "member", "add", "--team", "payments", "--user", "ada", "--role", "admin",
        ],
        None,
    ));
    let token = ok(&run(
        cmd(),
        &[
            "token", "create", "--team", "payments", "--role", "admin", "--name", "ci",
        ],
        None,
    ))
    .trim()
    .to_owned();

    let (server, url) = spawn_serve(cmd());
    let team =
        api(&url, &token, "GET", "/audit?kind=token.created", None).await["events"][0]["team_id"]
            .as_str()
            .unwrap()
            .to_owned();
    let ada = login(&url, "ada", ADA_PASSWORD).await.expect("ada logs in");
    form(
        &url,
        &ada,
        &format!("/teams/{team}/roles"),
        &[
            ("name", "auditor"),
            ("permission", "audit.view"),
            ("permission", "promotion.view"),
        ],
    )
    .await;
    form(
        &url,
        &ada,
        &format!("/teams/{team}/members"),
        &[("username", "bob"), ("role", "auditor")],
    )
    .await;

    let mut ids = Vec::new();
    for name in ["dev", "prod"] {
        let i = api(
            &url,
            &token,
            "POST",
            &format!("/teams/{team}/instances"),
            Some(json!({"name": name, "settings": {"url": format!("http://{name}:1880"), "retries": 3}})),
        )
        .await;
        ids.push(i["id"].as_str().unwrap().to_owned());
    }
    let (dev, prod) = (ids[0].clone(), ids[1].clone());
    let flows = |step: &str| {
        json!({"flows": {
            "orders": {"steps": ["charge", step], "meta": {"z": 1, "a": "é"}},
            "billing": [{"id": "n1", "type": "inject"}]
        }})
    };
    api(
        &url,
        &token,
        "PUT",
        &format!("/instances/{dev}/flows"),
        Some(flows("ship")),
    )
    .await;
    api(
        &url,
        &token,
        "PUT",
        &format!("/instances/{dev}/env/API_KEY"),
        Some(json!({"value": DEV_VALUE})),
    )
    .await;
    api(
        &url,
        &token,
        "PUT",
        &format!("/instances/{dev}/env/AWAITING"),
        Some(json!({"value": null})),
    )
    .await;
    api(
        &url,
        &token,
        "PUT",
        &format!("/instances/{prod}/env/API_KEY"),
        Some(json!({"value": PROD_VALUE})),
    )
    .await;
    let pipeline = api(
        &url,
        &token,
        "POST",
        &format!("/teams/{team}/pipelines"),
        Some(json!({"name": "checkout"})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stages = Value::Null;
    for i in [&dev, &prod] {
        stages = api(
            &url,
            &token,
            "POST",
            &format!("/pipelines/{pipeline}/stages"),
            Some(json!({"instance": i})),
        )
        .await;
    }
    let first = stages["stages"][0]["id"].as_str().unwrap().to_owned();
    let play = format!("/pipelines/{pipeline}/stages/{first}/promote");
    let applied = api(&url, &token, "POST", &play, Some(json!({}))).await;
    assert_eq!(applied["status"], "applied", "{applied}");
    api(
        &url,
        &token,
        "PUT",
        &format!("/instances/{dev}/flows"),
        Some(flows("refund")),
    )
    .await;
    let second = api(&url, &token, "POST", &play, Some(json!({}))).await;
    let second = second["id"].as_str().unwrap();
    api(
        &url,
        &token,
        "POST",
        &format!("/promotions/{second}/rollback"),
        None,
    )
    .await;
    // Prod asks for an approval; ada, a person, gives it.
    api(
        &url,
        &token,
        "PUT",
        &format!("/instances/{prod}/protection"),
        Some(json!({"required_approvals": 1, "requires_all_env_values": false})),
    )
    .await;
    api(
        &url,
        &token,
        "PUT",
        &format!("/instances/{dev}/flows"),
        Some(flows("notify")),
    )
    .await;
    let pending = api(&url, &token, "POST", &play, Some(json!({}))).await;
    assert_eq!(pending["status"], "pending_approval", "{pending}");
    let pending = pending["id"].as_str().unwrap();
    form(
        &url,
        &ada,
        &format!("/teams/{team}/promotions/{pending}/decision"),
        &[("decision", "approve")],
    )
    .await;
    let approved = api(&url, &token, "GET", &format!("/promotions/{pending}"), None).await;
    assert_eq!(approved["status"], "applied", "{approved}");

    let seeded = Seeded {
        promotions: api(&url, &token, "GET", "/promotions", None).await,
        dev_flows: api(
            &url,
            &token,
            "GET",
            &format!("/instances/{dev}/flows"),
            None,
        )
        .await,
        dev_env: api(&url, &token, "GET", &format!("/instances/{dev}/env"), None).await,
        token,
        team,
        dev,
        prod,
    };
    let statuses: Vec<&str> = seeded.promotions["promotions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["applied", "rolled_back", "applied"]);
    assert!(terminate(server).success());
    seeded
}

/// What a store serving `seeded`'s data must show: the admin logs in with
/// the old password, the old token works, flows, keys, a revealed value and
/// the promotion history are as they were, and every audit chain holds.
async fn assert_serves(cmd: &dyn Fn() -> Command, seeded: &Seeded) {
    let verify = ok(&run(cmd(), &["audit", "verify"], None));
    assert!(
        verify.contains("platform: intact") && verify.contains("payments: intact"),
        "{verify}"
    );
    let (server, url) = spawn_serve(cmd());
    assert!(login(&url, "ada", ADA_PASSWORD).await.is_some());
    assert!(
        login(&url, "ada", "not ada's password at all")
            .await
            .is_none()
    );
    let t = &seeded.token;
    let dev = &seeded.dev;
    assert_eq!(
        api(&url, t, "GET", "/promotions", None).await,
        seeded.promotions
    );
    assert_eq!(
        api(&url, t, "GET", &format!("/instances/{dev}/flows"), None).await,
        seeded.dev_flows
    );
    assert_eq!(
        api(&url, t, "GET", &format!("/instances/{dev}/env"), None).await,
        seeded.dev_env
    );
    for (instance, value) in [(dev, DEV_VALUE), (&seeded.prod, PROD_VALUE)] {
        let revealed = api(
            &url,
            t,
            "GET",
            &format!("/instances/{instance}/env/API_KEY/value"),
            None,
        )
        .await;
        assert_eq!(revealed["value"], value);
    }
    let chain = api(&url, t, "GET", "/audit/verify", None).await;
    assert_eq!(chain["intact"], true, "{chain}");
    let team = api(
        &url,
        t,
        "GET",
        &format!("/teams/{}/instances", seeded.team),
        None,
    )
    .await;
    assert!(team.to_string().contains("\"prod\""), "{team}");
    assert!(terminate(server).success());
}

#[tokio::test]
async fn migrate_store_moves_a_seeded_sqlite_store_to_postgres_and_serves_from_it() {
    let target = PgDatabase::create("move_target");
    let dir = temp_dir("move");
    // The key the SQLite store was written with: the generated secret.key.
    let sqlite = || stagehand(&dir);
    let seeded = seed(&sqlite).await;

    // While the server runs, the store is not moved.
    let (server, _) = spawn_serve(sqlite());
    let busy = run(sqlite(), &["migrate-store", "--to", &target.url], None);
    assert!(!busy.status.success());
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(
        err.contains("in use") && err.contains("stop the server"),
        "{err}"
    );
    assert!(terminate(server).success());
    assert_eq!(
        psql(
            &target.url,
            "select count(*) from information_schema.tables where table_schema = 'public'"
        ),
        "0",
        "a refused move leaves the target untouched"
    );

    // The password never shows, even in a failure.
    let with_password = target
        .url
        .replacen("://postgres@", "://postgres:hunter2-secret@", 1);
    let moved = run(sqlite(), &["migrate-store", "--to", &with_password], None);
    let out = ok(&moved);
    let all = format!("{out}{}", String::from_utf8_lossy(&moved.stderr));
    assert!(!all.contains("hunter2-secret"), "{all}");
    assert!(all.contains("postgres:***@"), "{all}");
    for table in [
        "users",
        "promotions",
        "promotion_approvals",
        "audit_events",
        "env_vars",
    ] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{table} ")))
            .unwrap();
        assert!(line.ends_with(" ok"), "{line}");
    }
    assert!(out.contains("audit chain payments: intact"), "{out}");
    assert!(
        out.contains("verified:") && out.contains("committed"),
        "{out}"
    );
    assert_eq!(
        psql(&target.url, "select count(*) from promotion_approvals"),
        "1"
    );

    // Served from PostgreSQL with the same key (here from the environment).
    let key = std::fs::read_to_string(dir.join("stagehand-data/secret.key")).unwrap();
    let empty_dir = temp_dir("move");
    let postgres = || {
        let mut c = stagehand(&empty_dir);
        c.env("DATABASE_URL", &target.url)
            .env("STAGEHAND_SECRET_KEY", key.trim());
        c
    };
    assert_serves(&postgres, &seeded).await;
    for d in [dir, empty_dir] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[tokio::test]
async fn migrate_store_refuses_a_target_with_data_and_leaves_it_untouched() {
    let target = PgDatabase::create("move_busy");
    let dir = temp_dir("move");
    ok(&run(stagehand(&dir), &["team", "create", "payments"], None));
    // A Stagehand that already ran on the target: its own team in it.
    let mut on_target = stagehand(&dir);
    on_target
        .env("DATABASE_URL", &target.url)
        .env("STAGEHAND_SECRET_KEY", KEY);
    ok(&run(on_target, &["team", "create", "search"], None));
    let before = psql(
        &target.url,
        "select string_agg(name, ',') from teams; select count(*) from audit_events",
    );

    let out = run(
        stagehand(&dir),
        &["migrate-store", "--to", &target.url],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already holds data") && err.contains("teams (1 row)"),
        "{err}"
    );
    assert_eq!(
        psql(
            &target.url,
            "select string_agg(name, ',') from teams; select count(*) from audit_events",
        ),
        before
    );
    // Neither is a target URL that is not PostgreSQL's, nor a run with
    // DATABASE_URL set (the source is the SQLite store).
    let out = run(
        stagehand(&dir),
        &["migrate-store", "--to", "mysql://x"],
        None,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("PostgreSQL URL"));
    let mut with_url = stagehand(&dir);
    with_url.env("DATABASE_URL", &target.url);
    let out = run(with_url, &["migrate-store", "--to", &target.url], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL is set"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn backup_of_a_running_sqlite_store_restores_and_serves_the_data() {
    let dir = temp_dir("move");
    let sqlite = || stagehand(&dir);
    let seeded = seed(&sqlite).await;

    // Taken while the server runs (and writes: each request is audited).
    let (server, url) = spawn_serve(sqlite());
    let backup = dir.join("backups/stagehand-backup.db");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    let taken = run(
        sqlite(),
        &["backup", "--to", backup.to_str().unwrap()],
        None,
    );
    let out = ok(&taken);
    assert!(out.contains("backed up"), "{out}");
    assert!(String::from_utf8_lossy(&taken.stderr).contains("secret key is not in the backup"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A second backup into the same file is refused, not overwritten.
    let again = run(
        sqlite(),
        &["backup", "--to", backup.to_str().unwrap()],
        None,
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    api(&url, &seeded.token, "GET", "/promotions", None).await;
    assert!(terminate(server).success());

    // Restored: the backup as the database of a new data directory, with
    // the same key.
    let restored = temp_dir("move");
    let data = restored.join("stagehand-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(&backup, data.join("stagehand.db")).unwrap();
    std::fs::copy(
        dir.join("stagehand-data/secret.key"),
        data.join("secret.key"),
    )
    .unwrap();
    let from_backup = || stagehand(&restored);
    assert_serves(&from_backup, &seeded).await;
    for d in [dir, restored] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// `pg_dump` and `pg_restore`: on PATH, or the newest in
/// /usr/lib/postgresql/*/bin (Debian's layout).
fn pg_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    let newest = dirs
        .into_iter()
        .rev()
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    newest.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    })
}

#[tokio::test]
async fn a_pg_dump_of_a_seeded_database_restores_into_a_fresh_one_that_serves() {
    let (Some(dump), Some(restore)) = (pg_tool("pg_dump"), pg_tool("pg_restore")) else {
        panic!("pg_dump and pg_restore come with PostgreSQL, which scripts/test.sh installs");
    };
    let source = PgDatabase::create("dump_source");
    let target = PgDatabase::create("dump_target");
    let dir = temp_dir("move");
    let on = |url: &str| {
        let mut c = stagehand(&dir);
        c.env("DATABASE_URL", url).env("STAGEHAND_SECRET_KEY", KEY);
        c
    };
    let seeded = seed(&|| on(&source.url)).await;

    let file = dir.join("stagehand.dump");
    let dumped = Command::new(dump)
        .args([
            "-Fc",
            "--no-owner",
            "-f",
            file.to_str().unwrap(),
            &source.url,
        ])
        .output()
        .unwrap();
    assert!(
        dumped.status.success(),
        "{}",
        String::from_utf8_lossy(&dumped.stderr)
    );
    let restored = Command::new(restore)
        .args([
            "--no-owner",
            "--exit-on-error",
            "-d",
            &target.url,
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert_serves(&|| on(&target.url), &seeded).await;
    std::fs::remove_dir_all(dir).unwrap();
}
