//! The real `stagehand` binary, run as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{spawn_serve, terminate};

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("stagehand-cli-{}", uuid_like()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ rand_nanos()
    )
}

fn rand_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(url).await.unwrap();
    (
        r.status().as_u16(),
        r.json::<serde_json::Value>().await.unwrap(),
    )
}

#[tokio::test]
async fn serve_with_no_configuration_uses_sqlite_and_stops_cleanly_on_sigterm() {
    let dir = temp_dir();
    let (child, url) = spawn_serve(stagehand(&dir));
    let (status, body) = get_json(&format!("{url}/healthz")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = get_json(&format!("{url}/readyz")).await;
    assert_eq!(status, 200);
    assert_eq!(body["database"], "sqlite");
    assert!(dir.join("stagehand-data/stagehand.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(dir.join("stagehand-data/secret.key")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }
    let exit = terminate(child);
    assert!(exit.success(), "{exit:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A SIGTERM that arrives the moment serve says it listens (a rolling
/// restart of a pod that just started) still stops it gracefully: the
/// handler is installed before the announcement, never after it.
#[test]
fn a_sigterm_right_after_serve_announces_itself_stops_it_gracefully() {
    for _ in 0..5 {
        let dir = temp_dir();
        let (child, _url) = spawn_serve(stagehand(&dir));
        let exit = terminate(child);
        assert!(
            exit.success(),
            "a SIGTERM right after start ended serve with {exit:?}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[tokio::test]
async fn serve_uses_postgres_when_database_url_is_set() {
    let admin = std::env::var("DATABASE_URL").expect(
        "this test needs DATABASE_URL; run scripts/test.sh, which starts a throwaway PostgreSQL",
    );
    let name = format!("cli_{}", rand_nanos());
    create_database(&admin, &name);
    let dir = temp_dir();
    let mut cmd = stagehand(&dir);
    let base = admin.rsplit_once('/').unwrap().0;
    cmd.env("DATABASE_URL", format!("{base}/{name}"));
    cmd.env(
        "STAGEHAND_SECRET_KEY",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    );
    let (child, url) = spawn_serve(cmd);
    let (status, body) = get_json(&format!("{url}/readyz")).await;
    assert_eq!((status, body["database"].as_str()), (200, Some("postgres")));
    assert!(terminate(child).success());
    assert!(
        !dir.join("stagehand-data/secret.key").exists(),
        "a key from the environment is not written to disk"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Creates an empty database on the test server with psql, which comes
/// with PostgreSQL.
fn create_database(admin: &str, name: &str) {
    let out = Command::new("psql")
        .args([admin, "-c", &format!("create database {name}")])
        .output()
        .expect("psql is installed with PostgreSQL");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn user_create_reads_the_password_from_stdin_and_refuses_duplicates() {
    let dir = temp_dir();
    let run = |name: &str, password: &str| {
        let mut child = stagehand(&dir)
            .args(["user", "create", name, "--admin", "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let ok = run("ada", "a long enough password");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("created user ada"));
    let again = run("ada", "another long password");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already taken"));
    let short = run("bob", "short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12"));
    let bad = run("Not Valid", "a long enough password");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("username"));
    for out in [&ok, &again, &short, &bad] {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !all.contains("long enough password") && !all.contains("another long"),
            "password echoed: {all}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_wrong_secret_key_stops_the_server_with_a_clear_message() {
    let dir = temp_dir();
    let migrate = stagehand(&dir).arg("migrate").output().unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    // First start records the generated key; a different key must be refused.
    let first = stagehand(&dir)
        .args(["user", "create", "ada", "--password-stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            writeln!(c.stdin.take().unwrap(), "a long enough password")?;
            c.wait()
        })
        .unwrap();
    assert!(first.success());
    let out = stagehand(&dir)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env(
            "STAGEHAND_SECRET_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not match the key this database was encrypted with"),
        "{err}"
    );
    let bad = stagehand(&dir)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("STAGEHAND_SECRET_KEY", "not-base64")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("STAGEHAND_SECRET_KEY must be 32 bytes"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_admin_bootstraps_a_team_and_a_token_that_the_api_accepts() {
    let dir = temp_dir();
    let run = |args: &[&str]| {
        let out = stagehand(&dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let mut user = stagehand(&dir)
        .args(["user", "create", "ci-owner", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(user.stdin.take().unwrap(), "a long enough password").unwrap();
    assert!(user.wait().unwrap().success());
    let (ok, created, err) = run(&["team", "create", "payments"]);
    assert!(ok, "{err}");
    // "created team payments (<id>)": the id works wherever the name does.
    let team_id = created
        .rsplit_once('(')
        .and_then(|(_, rest)| rest.split(')').next())
        .unwrap()
        .to_owned();
    let (ok, _, err) = run(&["team", "create", "payments"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run(&[
        "member", "add", "--team", &team_id, "--user", "ci-owner", "--role", "viewer",
    ]);
    assert!(ok, "{err}");
    assert!(
        run(&[
            "member", "add", "--team", "payments", "--user", "ci-owner", "--role", "lead"
        ])
        .0
    );
    let (ok, _, err) = run(&[
        "member", "add", "--team", "nope", "--user", "ci-owner", "--role", "lead",
    ]);
    assert!(!ok && err.contains("no team named"), "{err}");
    let (ok, _, err) = run(&[
        "token",
        "create",
        "--team",
        "payments",
        "--role",
        "lead",
        "--expires",
        "soon",
    ]);
    assert!(!ok && err.contains("--expires"), "{err}");

    // The CLI makes service accounts only: a user's token is the user's to make.
    let (ok, _, err) = run(&[
        "token", "create", "--team", "payments", "--role", "viewer", "--user", "ci-owner",
    ]);
    assert!(!ok && err.contains("--user"), "{err}");
    let (ok, stdout, stderr) = run(&[
        "token",
        "create",
        "--team",
        "payments",
        "--role",
        "viewer",
        "--name",
        "deploy-bot",
        "--expires",
        "30d",
    ]);
    assert!(ok, "{stderr}");
    // The secret, alone on stdout; the explanation on stderr.
    let secret = stdout.trim();
    assert_eq!(stdout.lines().count(), 1);
    assert!(secret.starts_with("sh_"), "{stdout}");
    assert!(stderr.contains("deploy-bot") && stderr.contains("shown once"));
    assert!(!stderr.contains(secret));

    let (child, url) = spawn_serve(stagehand(&dir));
    let client = reqwest::Client::new();
    let res = client
        .get(format!("{url}/api/v1/promotions"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .get(format!("{url}/api/v1/promotions"))
        .bearer_auth("sh_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(terminate(child).success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_ci_job_pushes_flows_and_promotes_with_the_cli() {
    let dir = temp_dir();
    let local = |args: &[&str]| {
        let out = stagehand(&dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    local(&["team", "create", "payments"]);
    let secret = local(&[
        "token", "create", "--team", "payments", "--role", "admin", "--name", "ci",
    ])
    .trim()
    .to_owned();
    let (server, url) = spawn_serve(stagehand(&dir));
    let api = reqwest::Client::new();
    let post = |path: String, body: serde_json::Value| {
        let req = api
            .post(format!("{url}/api/v1{path}"))
            .bearer_auth(&secret)
            .json(&body);
        async move {
            req.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let get = |path: String| {
        let req = api.get(format!("{url}/api/v1{path}")).bearer_auth(&secret);
        async move {
            req.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    // The token's team, as its audit log tells.
    let team = get("/audit?kind=token.created".to_owned()).await["events"][0]["team_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dev = post(
        format!("/teams/{team}/instances"),
        serde_json::json!({"name": "dev"}),
    )
    .await;
    let prod = post(
        format!("/teams/{team}/instances"),
        serde_json::json!({"name": "prod"}),
    )
    .await;
    let (dev, prod) = (
        dev["id"].as_str().unwrap().to_owned(),
        prod["id"].as_str().unwrap().to_owned(),
    );
    let pipeline = post(
        format!("/teams/{team}/pipelines"),
        serde_json::json!({"name": "checkout"}),
    )
    .await;
    let pipeline = pipeline["id"].as_str().unwrap().to_owned();
    post(
        format!("/pipelines/{pipeline}/stages"),
        serde_json::json!({"instance": dev}),
    )
    .await;
    let stages = post(
        format!("/pipelines/{pipeline}/stages"),
        serde_json::json!({"instance": prod}),
    )
    .await;
    let first_stage = stages["stages"][0]["id"].as_str().unwrap().to_owned();

    let remote = |args: &[&str], token: &str| {
        let out = stagehand(&dir)
            .args(args)
            .env("STAGEHAND_URL", &url)
            .env("STAGEHAND_TOKEN", token)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // A bad file is named, with its line; nothing is pushed.
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("orders.json"), "{\"steps\": [\"charge\"]}").unwrap();
    std::fs::write(flows.join("billing.yaml"), "steps:\n  - invoice\n").unwrap();
    std::fs::write(flows.join("broken.yaml"), "a: [1, 2\nb: 3\n").unwrap();
    std::fs::write(flows.join("README.md"), "ignored").unwrap();
    let (code, _, err) = remote(
        &["flows", "push", "--instance", &dev, flows.to_str().unwrap()],
        &secret,
    );
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("broken.yaml") && err.contains("line"), "{err}");
    std::fs::remove_file(flows.join("broken.yaml")).unwrap();
    let (code, out, err) = remote(
        &["flows", "push", "--instance", &dev, flows.to_str().unwrap()],
        &secret,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pushed 2 flows"), "{out}");

    // A new stage made from dev: its flows, no value; the new id on stdout.
    let (code, out, err) = remote(
        &[
            "instance",
            "duplicate",
            "--instance",
            &dev,
            "--name",
            "dev-copy",
        ],
        &secret,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("duplicated"), "{err}");
    let copy = out.trim().to_owned();
    assert_eq!(copy.len(), 36, "{out}");
    let pulled = dir.join("copy-flows");
    let (code, _, err) = remote(
        &[
            "flows",
            "pull",
            "--instance",
            &copy,
            pulled.to_str().unwrap(),
        ],
        &secret,
    );
    assert_eq!(code, 0, "{err}");
    assert!(pulled.join("orders.json").is_file() && pulled.join("billing.json").is_file());
    // A snapshot's download (GET /api/v1/snapshots/{id}/download) pushes
    // back as it is; a file that is not one is named and refused.
    let download = dir.join("snapshot-download.json");
    std::fs::write(
        &download,
        r#"{"snapshot": {"id": "x"}, "flows": {"orders": {"steps": ["refund"]}}, "env_keys": ["API_URL"]}"#,
    )
    .unwrap();
    let (code, out, err) = remote(
        &[
            "flows",
            "push",
            "--instance",
            &copy,
            download.to_str().unwrap(),
        ],
        &secret,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pushed 1 flows"), "{out}");
    std::fs::write(&download, r#"{"orders": {}}"#).unwrap();
    let (code, _, err) = remote(
        &[
            "flows",
            "push",
            "--instance",
            &copy,
            download.to_str().unwrap(),
        ],
        &secret,
    );
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("not a snapshot download"), "{err}");

    let (code, out, err) = remote(
        &[
            "promote",
            "--pipeline",
            &pipeline,
            "--stage",
            &first_stage,
            "--idempotency-key",
            "run-1",
        ],
        &secret,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("flows added: billing, orders") && out.contains(": applied"),
        "{out}"
    );
    let (code, out, _) = remote(&["promotions", "list", "--status", "applied"], &secret);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("token:ci"));

    let pulled = dir.join("pulled");
    let (code, out, err) = remote(
        &[
            "flows",
            "pull",
            "--instance",
            &prod,
            pulled.to_str().unwrap(),
        ],
        &secret,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pulled 2 flows"));
    let billing: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pulled.join("billing.json")).unwrap())
            .unwrap();
    assert_eq!(billing, serde_json::json!({"steps": ["invoice"]}));

    // Exit codes a pipeline can branch on.
    assert_eq!(
        remote(&["env", "keys", "--instance", &dev], "sh_wrong").0,
        4
    );
    let unknown = "00000000-0000-4000-8000-000000000001";
    assert_eq!(
        remote(&["env", "keys", "--instance", unknown], &secret).0,
        5
    );
    let (code, _, err) = remote(
        &[
            "promote",
            "--pipeline",
            &pipeline,
            "--stage",
            stages["stages"][1]["id"].as_str().unwrap(),
        ],
        &secret,
    );
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("last stage"), "{err}");
    let unreachable = stagehand(&dir)
        .args(["env", "keys", "--instance", &dev])
        .env("STAGEHAND_URL", "http://127.0.0.1:9")
        .env("STAGEHAND_TOKEN", &secret)
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("could not reach"));
    // And one that joins the pipeline right after dev, in one step.
    let (code, out, err) = remote(
        &[
            "instance",
            "duplicate",
            "--instance",
            &dev,
            "--name",
            "staging",
            "--pipeline",
            &pipeline,
        ],
        &secret,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("a stage of the pipeline"), "{err}");
    let staging = out.trim().to_owned();
    let stages = get(format!("/pipelines/{pipeline}")).await;
    assert_eq!(
        stages["stages"][1]["instance_id"],
        staging.as_str(),
        "{stages}"
    );
    assert!(terminate(server).success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn audit_verify_finds_a_row_edited_behind_the_servers_back() {
    let dir = temp_dir();
    let run = |args: &[&str]| {
        stagehand(&dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    assert!(run(&["team", "create", "payments"]).status.success());
    assert!(run(&["team", "create", "search"]).status.success());
    let ok = run(&["audit", "verify"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        out.contains("payments: intact (1 events)") && out.contains("search: intact"),
        "{out}"
    );

    // Edit the team's event in the SQLite file directly.
    let db = dir.join("stagehand-data/stagehand.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query(
        "update audit_events set actor = 'mallory'
         where kind = 'team.created' and details like '%payments%'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let bad = run(&["audit", "verify"]);
    assert!(!bad.status.success());
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(
        out.contains("payments: BROKEN at event 1") && out.contains("changed"),
        "{out}"
    );
    assert!(out.contains("search: intact"), "{out}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("1 audit chain(s) broken"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn purge_dry_run_says_what_would_go_and_the_audit_log_verifies_after_the_purge() {
    let dir = temp_dir();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = stagehand(&dir)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    // Three events in the team's chain, none in the platform's.
    run(&["team", "create", "payments"], &[]);
    for name in ["a", "b"] {
        run(
            &[
                "token", "create", "--team", "payments", "--role", "viewer", "--name", name,
            ],
            &[],
        );
    }

    // By default only what nobody can use goes: here, nothing.
    let out = run(&["purge", "--dry-run"], &[]);
    assert!(out.starts_with("Dry run: nothing was removed"), "{out}");
    assert!(out.contains("0 expired sessions"), "{out}");
    assert!(
        out.contains("no audit events: they are kept forever") && out.contains("no snapshots"),
        "{out}"
    );

    // Older than 0 days: everything but each chain's newest event. The
    // flag overrides the environment.
    let out = run(
        &[
            "purge",
            "--dry-run",
            "--max-age-days",
            "0",
            "--keep-snapshots",
            "3",
        ],
        &[("STAGEHAND_RETAIN_DAYS", "365")],
    );
    assert!(out.contains("2 audit events older than 0 days"), "{out}");
    assert!(
        out.contains("0 snapshots beyond the newest 3 per instance"),
        "{out}"
    );
    let verified = run(&["audit", "verify"], &[]);
    assert!(
        verified.contains("payments: intact (3 events)"),
        "{verified}"
    );

    let out = run(&["purge"], &[("STAGEHAND_RETAIN_DAYS", "0")]);
    assert!(out.starts_with("Purged:"), "{out}");
    assert!(out.contains("2 audit events older than 0 days"), "{out}");
    // The chain starts at its anchor and still verifies; the purge itself
    // is in the platform's chain.
    let verified = run(&["audit", "verify"], &[]);
    assert!(
        verified.contains("payments: intact (1 events)")
            && verified.contains("platform: intact (1 events)"),
        "{verified}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[cfg(unix)]
#[test]
fn the_data_directory_is_0700_and_its_files_0600_even_when_they_were_not() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let set =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    let dir = temp_dir();
    let data = dir.join("stagehand-data");
    let create_user = |name: &str| {
        let mut child = stagehand(&dir)
            .args(["user", "create", name, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "a long enough password").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let files = [
        "stagehand.db",
        "stagehand.db-wal",
        "stagehand.db-shm",
        "secret.key",
    ];

    // First start: created private.
    create_user("ada");
    assert_eq!(mode(&data), 0o700);
    for f in files.iter().map(|f| data.join(f)).filter(|p| p.exists()) {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    assert!(data.join("secret.key").exists() && data.join("stagehand.db").exists());

    // Loosened (an older version, a restore from backup): tightened again.
    set(&data, 0o755);
    for f in files.iter().map(|f| data.join(f)).filter(|p| p.exists()) {
        set(&f, 0o644);
    }
    create_user("bob");
    assert_eq!(mode(&data), 0o700);
    for f in files.iter().map(|f| data.join(f)).filter(|p| p.exists()) {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_carry_the_request_id() {
    let dir = temp_dir();
    let mut child = stagehand(&dir)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("STAGEHAND_LOG_FORMAT", "json")
        .env("RUST_LOG", "info,tower_http=debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let url = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        lines.push(v.clone());
        let message = v["fields"]["message"].as_str().unwrap_or("").to_owned();
        if let Some(at) = message.find("http://") {
            break message[at..].to_owned();
        }
    };
    let res = reqwest::get(format!("{url}/api/v1/no-such-thing"))
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(res.status(), 404);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut of_request = Vec::new();
    while Instant::now() < deadline && of_request.len() < 2 {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        if v["span"]["request_id"] == id.as_str() {
            of_request.push(v.clone());
        }
        lines.push(v);
    }
    // tower_http's "started processing" and "finished processing" lines,
    // both inside the request's span.
    assert!(
        of_request.len() >= 2,
        "no log lines with request id {id}: {lines:#?}"
    );
    assert!(
        of_request
            .iter()
            .all(|l| l["span"]["path"] == "/api/v1/no-such-thing" && l["level"].is_string())
    );
    let exit = terminate(child);
    assert!(exit.success(), "{exit:?}; the log: {lines:#?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rebuild_metrics_recomputes_the_delivery_rows_and_says_how_many() {
    let dir = temp_dir();
    let out = stagehand(&dir)
        .args(["rebuild-metrics"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("delivery metrics rebuilt: 0 stage-days in "),
        "{stdout}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
