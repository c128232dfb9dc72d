//! What users and probes see when the database fails under the server: a
//! full disk, a PostgreSQL that stops answering.

use crate::harness::*;
use reqwest::StatusCode;
use serde_json::Value;
use stagehand_domain::BuiltinRole;
use stagehand_store::testing::{DiskSpace, TestDatabase};
use stagehand_web::WebConfig;

async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    let res = reqwest::get(app.url("/readyz")).await.unwrap();
    let status = res.status();
    (status, res.json().await.expect("readyz answers JSON"))
}

/// A flow of `kib` KiB, as the flow form sends it.
fn flow_of(kib: usize) -> String {
    serde_json::json!({ "blob": "x".repeat(kib * 1024) }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_writes_and_logins_recover_without_a_restart() {
    let disk = DiskSpace::default();
    let db = TestDatabase::sqlite_with_disk(disk.clone()).await.unwrap();
    let app = spawn_app_over(db, WebConfig::default()).await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    assert_eq!(readyz(&app).await.0, StatusCode::OK);
    let flows = format!("/teams/{team}/instances/{dev}/flows");

    disk.fill();
    for i in 0..4 {
        let name = format!("big-{i}");
        let page = lead
            .post(&flows, &[("name", &name), ("content", &flow_of(256))])
            .await;
        assert_eq!(
            page.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            page.body
        );
        assert!(page.body.contains("<html"), "an error page: {}", page.body);
    }
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unavailable");

    disk.free();
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Logins and writes work again on every pooled connection.
    for i in 0..6 {
        let c = Client::new(&app);
        let login = c.login("lena", PASSWORD).await;
        assert_eq!(
            login.status,
            StatusCode::SEE_OTHER,
            "login {i}: {}",
            login.body
        );
        let name = format!("small-{i}");
        lead.post(&flows, &[("name", &name), ("content", "{}")])
            .await
            .assert_redirect_to(&format!("/teams/{team}/instances/{dev}/flows/small-{i}"));
    }
    lead.post(&flows, &[("name", "big"), ("content", &flow_of(256))])
        .await
        .assert_redirect_to(&format!("/teams/{team}/instances/{dev}/flows/big"));
    app.stop().await;
}

/// The API's error body, `{"error": {code, message, fields, request_id}}`.
fn assert_api_error(body: &Value, code: &str) {
    let e = &body["error"];
    assert_eq!(e["code"], code, "{body}");
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(e["fields"].is_object(), "{body}");
    assert!(
        e["request_id"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_postgres_answers_a_fast_503() {
    let mut db = TestDatabase::postgres()
        .await
        .unwrap()
        .expect("DATABASE_URL: run scripts/test.sh");
    let proxy = PgProxy::start(&db.database).await;
    db.store = stagehand_store::open(&proxy.database, &db.key)
        .await
        .unwrap();
    let app = spawn_app_over(db, WebConfig::default()).await;
    let team = app.team("payments").await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let token = app.token(team, "ci", "lead").await;
    let api = reqwest::Client::new();
    let list = || {
        api.get(app.url("/api/v1/promotions"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(list().await.unwrap().status(), StatusCode::OK);
    assert_eq!(readyz(&app).await.0, StatusCode::OK);

    proxy.cut();

    let started = std::time::Instant::now();
    let res = list().await.unwrap();
    let api_took = started.elapsed();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_api_error(&res.json().await.unwrap(), "unavailable");

    let started = std::time::Instant::now();
    let page = lead.get(&format!("/teams/{team}/promotions")).await;
    let page_took = started.elapsed();
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert!(page.body.contains("<html"), "{}", page.body);
    assert!(!page.body.contains("PoolTimedOut"), "{}", page.body);

    let started = std::time::Instant::now();
    let (status, body) = readyz(&app).await;
    let ready_took = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unavailable");
    eprintln!("with PostgreSQL gone: API {api_took:?}, page {page_took:?}, readyz {ready_took:?}");
    assert!(api_took < std::time::Duration::from_secs(3), "{api_took:?}");
    assert!(
        page_took < std::time::Duration::from_secs(3),
        "{page_took:?}"
    );
    assert!(
        ready_took < std::time::Duration::from_secs(1),
        "{ready_took:?}"
    );

    // Back without a restart of Stagehand.
    proxy.restore().await;
    assert_eq!(list().await.unwrap().status(), StatusCode::OK);
    lead.get(&format!("/teams/{team}/promotions"))
        .await
        .assert_ok();
    assert_eq!(readyz(&app).await.0, StatusCode::OK);
    app.stop().await;
}
