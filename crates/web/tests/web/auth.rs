//! Logging in and out, sessions, CSRF, throttling, security headers, and
//! the pages a user sees when something is wrong.

use crate::harness::*;
use reqwest::StatusCode;
use stagehand_domain::{BuiltinRole, EnvKey, SecretValue};
use stagehand_store::{Actor, AuditFilter};
use stagehand_web::WebConfig;
use std::time::Duration;

#[tokio::test]
async fn login_sets_a_hardened_cookie_and_logout_ends_the_session() {
    let app = spawn_app().await;
    app.user("lena", false).await;
    let c = Client::new(&app);
    c.get("/").await.assert_redirect_to("/login?next=%2F");
    let form = c.get("/login").await;
    let page = c
        .post_raw(
            "/login",
            &[
                ("csrf_token", &csrf_of(&form.body).unwrap()),
                ("username", "lena"),
                ("password", PASSWORD),
                ("next", "/"),
            ],
            true,
        )
        .await;
    page.assert_redirect_to("/");
    let cookie = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("stagehand_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag");
    let token = cookie
        .trim_start_matches("stagehand_session=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    c.get("/").await.assert_ok();

    c.post("/logout", &[]).await.assert_redirect_to("/login");
    c.get("/").await.assert_redirect_to("/login");
    // The old token is dead on the server, not only forgotten by the browser.
    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/"))
        .header("cookie", format!("stagehand_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::SEE_OTHER);
    let events = app
        .store
        .audit_history(
            None,
            &AuditFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains(&"user.logged_in") && kinds.contains(&"user.logged_out"),
        "{kinds:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let app = spawn_app().await;
    app.user("lena", false).await;
    let wrong = Client::new(&app)
        .login("lena", "not the password at all")
        .await;
    let unknown = Client::new(&app)
        .login("nobody", "not the password at all")
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, wrong.status);
    assert!(wrong.body.contains("Wrong username or password."));
    assert!(unknown.body.contains("Wrong username or password."));
    app.stop().await;
}

#[tokio::test]
async fn repeated_failures_lock_the_account_even_for_the_right_password() {
    let app = spawn_app().await;
    app.user("lena", false).await;
    let c = Client::new(&app);
    for _ in 0..5 {
        assert_eq!(c.login("lena", "wrong password!!").await.status, 401);
    }
    let locked = c.login("lena", PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        locked.body.contains("Too many failed logins"),
        "{}",
        locked.body
    );
    // Another account is not locked by lena's failures.
    app.user("omar", false).await;
    Client::new(&app)
        .login("omar", PASSWORD)
        .await
        .assert_redirect_to("/");
    app.stop().await;
}

#[tokio::test]
async fn an_idle_session_expires() {
    let config = WebConfig {
        session_idle: Duration::from_secs(1),
        ..WebConfig::default()
    };
    let app = spawn_app_with(default_backend(), config).await;
    app.user("lena", false).await;
    let c = Client::new(&app);
    c.login("lena", PASSWORD).await.assert_redirect_to("/");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    c.get("/").await.assert_redirect_to("/login");
    app.stop().await;
}

#[tokio::test]
async fn a_form_without_its_csrf_token_or_from_another_site_is_refused_and_writes_nothing() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let path = format!("/teams/{team}/instances");
    let no_token = lead.post_raw(&path, &[("name", "sneaky")], true).await;
    assert_eq!(no_token.status, 403);
    assert!(
        no_token.body.contains("Reload the page"),
        "{}",
        no_token.body
    );
    let token = lead.csrf.lock().unwrap().clone();
    let wrong_token = lead
        .post_raw(&path, &[("csrf_token", "forged"), ("name", "sneaky")], true)
        .await;
    assert_eq!(wrong_token.status, 403);
    let cross_site = lead
        .post_raw(&path, &[("csrf_token", &token), ("name", "sneaky")], false)
        .await;
    assert_eq!(cross_site.status, 403);
    assert!(cross_site.body.contains("another site"));
    assert!(app.store.instances(team).await.unwrap().is_empty());
    // The same form with the token goes through.
    lead.post(&path, &[("name", "fine")])
        .await
        .assert_redirect_to(&path);
    assert_eq!(app.store.instances(team).await.unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    let c = Client::new(&app);
    for path in ["/login", "/healthz", "/nowhere", "/static/stagehand-6.css"] {
        let page = c.get(path).await;
        let h = &page.headers;
        let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
        assert!(h.get("referrer-policy").is_some());
        assert!(h.get("x-request-id").is_some(), "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_missing_page_is_a_404_in_the_site_layout() {
    let app = spawn_app().await;
    let page = Client::new(&app).get("/no/such/page").await;
    assert_eq!(page.status, 404);
    assert!(
        page.body.contains("<title>Not found · Stagehand</title>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Request id"));
    app.stop().await;
}

#[tokio::test]
async fn a_viewer_sees_keys_but_no_value_and_no_play_or_edit_controls() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[("orders", "{}")]).await;
    let prod = app.instance(team, "prod", &[]).await;
    let (pipeline, _) = app.pipeline(team, "p", &[dev, prod]).await;
    let secret = "viewer-must-never-see-this";
    app.store
        .set_env_var(
            team,
            dev,
            EnvKey::parse("DB_PASSWORD").unwrap(),
            Some(SecretValue::new(secret.into())),
            &Actor::system(),
        )
        .await
        .unwrap();
    let viewer = app.member(team, "vera", BuiltinRole::Viewer).await;
    let instance = viewer.get(&format!("/teams/{team}/instances/{dev}")).await;
    instance.assert_ok();
    assert!(instance.body.contains("DB_PASSWORD"));
    assert!(!instance.body.contains(secret));
    assert!(!instance.body.contains("/reveal") && !instance.body.contains("Save flow"));
    let pipeline_page = viewer
        .get(&format!("/teams/{team}/pipelines/{pipeline}"))
        .await;
    pipeline_page.assert_ok();
    assert!(
        !pipeline_page.body.contains("▶ Play"),
        "no play button for a viewer"
    );
    assert!(!pipeline_page.body.contains("Add stage"));
    let preview = viewer
        .get(&format!(
            "/teams/{team}/pipelines/{pipeline}/stages/{}/preview",
            app.store.pipeline(team, pipeline).await.unwrap().stages[0].id
        ))
        .await;
    preview.assert_ok();
    assert!(
        !preview.body.contains("/promote"),
        "no confirm for a viewer"
    );
    // The reveal itself is refused on the server, not only hidden.
    let reveal = viewer
        .post(
            &format!("/teams/{team}/instances/{dev}/env/DB_PASSWORD/reveal"),
            &[],
        )
        .await;
    assert_eq!(reveal.status, 403);
    assert!(!reveal.body.contains(secret));
    app.stop().await;
}

#[tokio::test]
async fn an_admin_reveals_one_value_and_the_reveal_is_audited() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[]).await;
    app.store
        .set_env_var(
            team,
            dev,
            EnvKey::parse("DB_PASSWORD").unwrap(),
            Some(SecretValue::new("hunter2-but-longer".into())),
            &Actor::system(),
        )
        .await
        .unwrap();
    let admin = app.member(team, "adam", BuiltinRole::Admin).await;
    let page = admin
        .post(
            &format!("/teams/{team}/instances/{dev}/env/DB_PASSWORD/reveal"),
            &[],
        )
        .await;
    page.assert_ok();
    assert!(page.body.contains("hunter2-but-longer"));
    assert_eq!(page.headers.get("cache-control").unwrap(), "no-store");
    let audit = admin.get(&format!("/teams/{team}/audit")).await;
    assert!(audit.body.contains("envvar.value_revealed"));
    assert!(!audit.body.contains("hunter2-but-longer"));
    app.stop().await;
}

#[tokio::test]
async fn behind_https_the_session_cookie_is_secure() {
    let config = WebConfig::default().with_public_url(Some("https://stagehand.example".into()));
    let app = spawn_app_with(default_backend(), config).await;
    app.user("lena", false).await;
    let c = Client::new(&app);
    let form = c.get("/login").await;
    // The public origin is https, so the request must claim it.
    let res = c
        .http
        .post(app.url("/login"))
        .header("origin", "https://stagehand.example")
        .form(&[
            ("csrf_token", csrf_of(&form.body).unwrap().as_str()),
            ("username", "lena"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("stagehand_session="))
        .unwrap();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // A form from the plain-http origin is another site now.
    let wrong = c
        .post_raw(
            "/login",
            &[
                ("csrf_token", "x"),
                ("username", "lena"),
                ("password", PASSWORD),
            ],
            true,
        )
        .await;
    assert_eq!(wrong.status, 403);
    app.stop().await;
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_expiry_however_active() {
    let config = WebConfig {
        session_absolute: Duration::from_secs(2),
        ..WebConfig::default()
    };
    let app = spawn_app_with(default_backend(), config).await;
    app.user("lena", false).await;
    let c = Client::new(&app);
    c.login("lena", PASSWORD).await.assert_redirect_to("/");
    for _ in 0..3 {
        c.get("/").await.assert_ok();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    c.get("/").await.assert_redirect_to("/login");
    app.stop().await;
}

#[tokio::test]
async fn an_internal_error_shows_a_request_id_and_nothing_internal() {
    let app = spawn_app_with(Backend::Sqlite, WebConfig::default()).await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    // Corrupt the stored name behind the server's back.
    let stagehand_store::Database::Sqlite { path } = app.database() else {
        unreachable!()
    };
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("update instances set name = ''")
        .execute(&pool)
        .await
        .unwrap();
    let page = lead.get(&format!("/teams/{team}/instances/{dev}")).await;
    assert_eq!(page.status, 500);
    assert!(page.body.contains("Something went wrong") && page.body.contains("Request id"));
    let id = page.headers.get("x-request-id").unwrap().to_str().unwrap();
    assert!(page.body.contains(id), "the page shows the request's id");
    for internal in ["corrupt", "sqlite", "name", "stored"] {
        assert!(
            !page.body.to_lowercase().contains(&format!("{internal}:")),
            "{internal} leaked"
        );
    }
    app.stop().await;
}

/// Inputs for `next` that have led browsers off-site or servers into a 500.
const NASTY_NEXT: &[&str] = &[
    "/\t/evil.example",
    "/%09/evil.example",
    "\t//evil.example",
    "/\r\n/evil.example",
    "/\n/evil.example",
    "/\r/evil.example",
    "/\u{b}/evil.example",
    "/\0/evil.example",
    "/\u{7f}/evil.example",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/.//evil.example",
    "/%2e%2e//evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    " /evil.example",
    "/\u{2028}/evil.example",
];

/// Asserts that a browser following `location` stays on `app`'s origin,
/// even after it strips tabs and newlines and reads `\` as `/`.
fn assert_same_origin(app: &TestApp, location: &str, input: &str) {
    assert!(
        !location.chars().any(|c| c.is_control() || c == '\\'),
        "{input:?} → {location:?}"
    );
    let browser_view: String = location
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .map(|c| if c == '\\' { '/' } else { c })
        .collect();
    assert!(
        browser_view.starts_with('/') && !browser_view.starts_with("//"),
        "{input:?} → {location:?}"
    );
    let base = reqwest::Url::parse(&app.url("/")).unwrap();
    let resolved = base.join(&browser_view).unwrap();
    assert_eq!(resolved.origin(), base.origin(), "{input:?} → {location:?}");
}

#[tokio::test]
async fn login_next_never_leads_off_site_nor_to_a_500() {
    let app = spawn_app().await;
    app.user("lena", false).await;
    for &next in NASTY_NEXT {
        let c = Client::new(&app);
        // The form carries a cleaned `next`.
        let res = c
            .http
            .get(app.url("/login"))
            .query(&[("next", next)])
            .send()
            .await
            .unwrap();
        let form = c.page(res).await;
        assert_eq!(form.status, StatusCode::OK, "GET {next:?}: {}", form.body);
        let carried = field_value(&form.body, "next").unwrap();
        assert_same_origin(&app, &carried, next);
        // A forged form with the raw value is cleaned on the way out.
        let login = c
            .post_raw(
                "/login",
                &[
                    ("csrf_token", &csrf_of(&form.body).unwrap()),
                    ("username", "lena"),
                    ("password", PASSWORD),
                    ("next", next),
                ],
                true,
            )
            .await;
        assert_eq!(
            login.status,
            StatusCode::SEE_OTHER,
            "POST {next:?}: {}",
            login.body
        );
        assert_same_origin(&app, login.location.as_deref().unwrap(), next);
        // Logged in, the login page sends the user on at once: cleaned too.
        let res = c
            .http
            .get(app.url("/login"))
            .query(&[("next", next)])
            .send()
            .await
            .unwrap();
        let again = c.page(res).await;
        assert_eq!(
            again.status,
            StatusCode::SEE_OTHER,
            "{next:?}: {}",
            again.body
        );
        assert_same_origin(&app, again.location.as_deref().unwrap(), next);
    }
    // A plain local path survives, query and all.
    let c = Client::new(&app);
    c.login("lena", PASSWORD).await;
    let res = c
        .http
        .get(app.url("/login"))
        .query(&[("next", "/teams?x=1")])
        .send()
        .await
        .unwrap();
    assert_eq!(c.page(res).await.location.as_deref(), Some("/teams?x=1"));
    app.stop().await;
}

/// Fires one login per `(username, password)` at once, each from its own
/// browser (its own login form and CSRF cookie).
async fn login_burst(app: &TestApp, attempts: &[(String, &str)]) -> Vec<Page> {
    let mut ready = Vec::new();
    for _ in attempts {
        let c = Client::new(app);
        let form = c.get("/login").await;
        let csrf = csrf_of(&form.body).unwrap();
        ready.push((c, csrf));
    }
    futures_util::future::join_all(ready.iter().zip(attempts).map(
        |((c, csrf), (user, password))| async move {
            c.post_raw(
                "/login",
                &[
                    ("csrf_token", csrf.as_str()),
                    ("username", user.as_str()),
                    ("password", password),
                    ("next", "/"),
                ],
                true,
            )
            .await
        },
    ))
    .await
}

fn tally(pages: &[Page]) -> (usize, usize, usize) {
    let count = |s: StatusCode| pages.iter().filter(|p| p.status == s).count();
    let (wrong, throttled, in_) = (
        count(StatusCode::UNAUTHORIZED),
        count(StatusCode::TOO_MANY_REQUESTS),
        count(StatusCode::SEE_OTHER),
    );
    assert_eq!(wrong + throttled + in_, pages.len(), "only 401, 429 or 303");
    (wrong, throttled, in_)
}

async fn audit_kinds(app: &TestApp) -> Vec<String> {
    app.store
        .audit_history(
            None,
            &AuditFilter {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_parallel_logins_gets_no_more_password_checks_than_the_limit() {
    let app = spawn_app().await;
    app.user("lena", false).await;
    let wrong: Vec<(String, &str)> = (0..40)
        .map(|_| ("lena".to_owned(), "wrong password!!"))
        .collect();
    let (evaluated, throttled, _) = tally(&login_burst(&app, &wrong).await);
    assert_eq!(
        (evaluated, throttled),
        (5, 35),
        "40 parallel wrong passwords: the limit is 5"
    );
    let kinds = audit_kinds(&app).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "user.login_failed").count(),
        5
    );

    // The limit is spent: the right password inside a burst of wrong ones
    // does not get in.
    let mut mixed: Vec<(String, &str)> = (0..39)
        .map(|_| ("lena".to_owned(), "wrong password!!"))
        .collect();
    mixed.insert(20, ("lena".to_owned(), PASSWORD));
    let pages = login_burst(&app, &mixed).await;
    assert_eq!(tally(&pages), (0, 40, 0));
    assert!(
        !audit_kinds(&app)
            .await
            .iter()
            .any(|k| k == "user.logged_in")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_across_many_accounts_from_one_address_stops_at_the_address_limit() {
    let app = spawn_app().await;
    app.user("lena", false).await;
    let spray: Vec<(String, &str)> = (0..40)
        .map(|n| (format!("user-{n:02}"), "wrong password!!"))
        .collect();
    let (evaluated, throttled, _) = tally(&login_burst(&app, &spray).await);
    assert_eq!((evaluated, throttled), (30, 10), "the address limit is 30");
    // The address is locked, for a right password too.
    let locked = Client::new(&app).login("lena", PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}
