//! Names and text as users send them: invisible characters are refused,
//! lookalike spellings are one name, and bytes that are not UTF-8 are a
//! 422 naming the field, never silently turned into U+FFFD.

use crate::harness::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stagehand_domain::BuiltinRole;

async fn api(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let http = reqwest::Client::new();
    let req = match method {
        "post" => http.post(app.url(path)),
        "patch" => http.patch(app.url(path)),
        other => panic!("no {other}"),
    };
    let res = req
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A form post with a body exactly as given (percent-escapes and raw bytes
/// included), with the session's CSRF token first.
async fn post_bytes(c: &Client, path: &str, rest: &[u8]) -> Page {
    let mut body = format!("csrf_token={}&", c.csrf.lock().unwrap()).into_bytes();
    body.extend_from_slice(rest);
    let res = c
        .http
        .post(format!("{}{path}", c.base()))
        .header("accept", "text/html")
        .header("origin", c.base().to_owned())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    c.page(res).await
}

fn assert_names(page: &Page, field: &str) {
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(
        // Named as its form labels it, marked by its own name.
        page.body
            .contains(&format!("<li data-field=\"{field}\"><strong>")),
        "should name {field}: {}",
        page.body
    );
}

#[tokio::test]
async fn names_with_invisible_characters_are_refused_and_lookalikes_are_one_name() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let admin = app.member(team, "adam", BuiltinRole::Admin).await;
    let root = Client::new(&app);
    app.user("root", true).await;
    root.login("root", PASSWORD).await.assert_redirect_to("/");
    let token = app.token(team, "ci", "admin").await;

    for (path, fields) in [
        (
            format!("/teams/{team}/instances"),
            vec![("name", "\u{200B}")],
        ),
        (
            format!("/teams/{team}/instances"),
            vec![("name", "dev\u{202E}dorp")],
        ),
        (
            format!("/teams/{team}/pipelines"),
            vec![("name", "main\u{2066}")],
        ),
        (
            format!("/teams/{team}/roles"),
            vec![("name", "\u{FEFF}auditor")],
        ),
        (
            format!("/teams/{team}/tokens"),
            vec![
                ("name", "ci\u{00AD}bot"),
                ("role", "viewer"),
                ("owner", "service"),
            ],
        ),
    ] {
        assert_names(&admin.post(&path, &fields).await, "name");
    }
    assert_names(
        &root.post("/admin/teams", &[("name", "\u{3164}")]).await,
        "name",
    );
    let (status, body) = api(
        &app,
        &token,
        "post",
        &format!("/api/v1/teams/{team}/instances"),
        json!({ "name": "\u{200D}" }).to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["fields"]["name"].is_string(), "{body}");
    assert!(app.store.instances(team).await.unwrap().is_empty());

    // A decomposed "é" is stored composed, so it is the same name as the
    // composed one.
    let (status, body) = api(
        &app,
        &token,
        "post",
        &format!("/api/v1/teams/{team}/instances"),
        json!({ "name": "Cafe\u{0301}" }).to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "Caf\u{00E9}");
    let again = admin
        .post(
            &format!("/teams/{team}/instances"),
            &[("name", "Caf\u{00E9}")],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    app.stop().await;
}

#[tokio::test]
async fn text_that_is_not_utf8_is_a_422_naming_the_field_and_writes_nothing() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let token = app.token(team, "ci", "lead").await;
    let audit_before = app.store.audit_events(team, 1000).await.unwrap().len();

    let instances = format!("/teams/{team}/instances");
    assert_names(&post_bytes(&lead, &instances, b"name=%FF").await, "name");
    assert_names(
        &post_bytes(&lead, &instances, b"name=dev\xff").await,
        "name",
    );
    let flows = format!("/teams/{team}/instances/{dev}/flows");
    assert_names(
        &post_bytes(
            &lead,
            &flows,
            b"name=orders&content=%7B%22a%22%3A%22%C3%28%22%7D",
        )
        .await,
        "content",
    );

    // The JSON API: the field where reading stopped.
    let (status, body) = api(
        &app,
        &token,
        "post",
        &format!("/api/v1/teams/{team}/instances"),
        b"{\"name\": \"dev\xff\"}".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["fields"]["name"].is_string(), "{body}");

    // An uploaded flow file.
    let form = reqwest::multipart::Form::new()
        .text("csrf_token", lead.csrf.lock().unwrap().clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"{\"a\": \"\xff\"}".to_vec()).file_name("orders.json"),
        );
    let res = lead
        .http
        .post(app.url(&format!("{flows}/upload")))
        .header("accept", "text/html")
        .header("origin", lead.base().to_owned())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_names(&lead.page(res).await, "file");

    assert_eq!(app.store.instances(team).await.unwrap().len(), 1);
    assert!(app.store.flows(team, dev).await.unwrap().is_empty());
    assert_eq!(
        app.store.audit_events(team, 1000).await.unwrap().len(),
        audit_before
    );
    app.stop().await;
}
