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
