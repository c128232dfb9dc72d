//! Query strings of the history and audit pages, their exports and the
//! API: every bad value is a 422 that names its parameter, on both
//! backends, and never a 400 or a 500.

use crate::harness::*;
use reqwest::StatusCode;
use serde_json::Value;
use stagehand_domain::BuiltinRole;
use stagehand_web::WebConfig;

/// A GET with a bearer token: status and JSON body.
async fn api_get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn assert_page_names(page: &Page, path: &str, field: &str) {
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{path}: {}",
        page.body
    );
    assert!(
        // Named as its form labels it, marked by its own name.
        page.body
            .contains(&format!("<li data-field=\"{field}\"><strong>")),
        "{path} should name {field}: {}",
        page.body
    );
}

fn assert_api_names(status: StatusCode, body: &Value, path: &str, field: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
    assert_eq!(body["error"]["code"], "invalid", "{path}: {body}");
    assert!(
        body["error"]["fields"].get(field).is_some(),
        "{path} should name {field}: {body}"
    );
}

async fn out_of_range_dates_and_cursors(backend: Backend) {
    let app = spawn_app_with(backend, WebConfig::default()).await;
    let team = app.team("payments").await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let admin = Client::new(&app);
    app.user("root", true).await;
    admin.login("root", PASSWORD).await.assert_redirect_to("/");
    let token = app.token(team, "ci", "lead").await;
    // Microseconds before the epoch that chrono accepts and PostgreSQL
    // cannot store (about 251,000 BC).
    let far = format!("-7922000000000000000_{}", uuid::Uuid::new_v4());

    let pages = [
        (
            format!("/teams/{team}/promotions?since=-5000-01-01"),
            "since",
        ),
        (
            format!("/teams/{team}/promotions?until=%2B200000-12-31"),
            "until",
        ),
        (
            format!("/teams/{team}/promotions?since=0000-12-31"),
            "since",
        ),
        (format!("/teams/{team}/promotions?cursor={far}"), "cursor"),
        (
            format!("/teams/{team}/promotions/export?since=-5000-01-01"),
            "since",
        ),
        (
            format!("/teams/{team}/promotions/export?format=json&cursor={far}"),
            "cursor",
        ),
        (format!("/teams/{team}/audit?until=-0001-01-01"), "until"),
        (format!("/teams/{team}/audit?cursor={far}"), "cursor"),
        (
            format!("/teams/{team}/audit/export?since=%2B10000-01-01"),
            "since",
        ),
        (format!("/teams/{team}/audit/export?cursor={far}"), "cursor"),
    ];
    for (path, field) in &pages {
        assert_page_names(&lead.get(path).await, path, field);
    }
    for (path, field) in [
        ("/admin/audit?since=-5000-01-01".to_owned(), "since"),
        (format!("/admin/audit/export?cursor={far}"), "cursor"),
    ] {
        assert_page_names(&admin.get(&path).await, &path, field);
    }

    let api = [
        (
            "/api/v1/promotions?since=0000-06-01T00:00:00Z".to_owned(),
            "since",
        ),
        // 23:59 on the last day of 9999 at UTC-5 is in the year 10000.
        (
            "/api/v1/promotions?until=9999-12-31T23:59:59-05:00".to_owned(),
            "until",
        ),
        (format!("/api/v1/promotions?cursor={far}"), "cursor"),
        (
            "/api/v1/audit?since=0001-01-01T00:00:00%2B01:00".to_owned(),
            "since",
        ),
        (format!("/api/v1/audit?cursor={far}"), "cursor"),
    ];
    for (path, field) in &api {
        let (status, body) = api_get(&app, &token, path).await;
        assert_api_names(status, &body, path, field);
    }

    // The edges of the range are accepted.
    lead.get(&format!(
        "/teams/{team}/promotions?since=0001-01-01&until=9999-12-31"
    ))
    .await
    .assert_ok();
    lead.get(&format!(
        "/teams/{team}/audit?since=0001-01-01&until=9999-12-31"
    ))
    .await
    .assert_ok();
    let (status, body) = api_get(
        &app,
        &token,
        "/api/v1/audit?since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59Z",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body["events"].as_array().unwrap().is_empty(), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn out_of_range_dates_and_cursors_are_422_naming_the_field_on_sqlite() {
    out_of_range_dates_and_cursors(Backend::Sqlite).await;
}

#[tokio::test]
async fn out_of_range_dates_and_cursors_are_422_naming_the_field_on_postgres() {
    out_of_range_dates_and_cursors(Backend::Postgres).await;
}

#[tokio::test]
async fn every_bad_query_value_is_a_422_naming_the_parameter() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let token = app.token(team, "ci", "lead").await;
    for list in ["/api/v1/promotions", "/api/v1/audit"] {
        for (query, field) in [
            ("limit=abc", "limit"),
            ("limit=1.5", "limit"),
            ("limit=99999999999999999999", "limit"),
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("since=yesterday", "since"),
            ("cursor=nope", "cursor"),
            // Bytes that are not UTF-8 once decoded are refused, not
            // turned into U+FFFD.
            ("since=%FF", "since"),
            ("actor=%C3%28", "actor"),
        ] {
            let path = format!("{list}?{query}");
            let (status, body) = api_get(&app, &token, &path).await;
            assert_api_names(status, &body, &path, field);
        }
        // Blank is absent, as everywhere else.
        let (status, body) = api_get(&app, &token, &format!("{list}?limit=")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for (path, field) in [
        (format!("/teams/{team}/promotions?status=%FF"), "status"),
        (format!("/teams/{team}/promotions?actor=%FF"), "actor"),
        (format!("/teams/{team}/audit?kind=%E2%82"), "kind"),
        (format!("/teams/{team}/audit/export?since=%FF"), "since"),
        (
            format!("/teams/{team}/promotions/export?format=xml"),
            "format",
        ),
    ] {
        assert_page_names(&lead.get(&path).await, &path, field);
    }
    let login = Client::new(&app).get("/login?next=%FF").await;
    assert_page_names(&login, "/login?next=%FF", "next");
    app.stop().await;
}
