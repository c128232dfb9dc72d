//! What must not be read or kept: instance settings (values only with
//! `instance.edit`, on the pages and in the API), and no authenticated
//! answer may be stored by a browser's cache.

use crate::access::{fill, send, world};
use crate::harness::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stagehand_domain::BuiltinRole;
use stagehand_store::Actor;
use stagehand_web::authz::Access;
use stagehand_web::routes::ROUTES;

const CREDENTIAL_SECRET: &str = "node-red-credential-secret-4b7e";

async fn api_get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value, String) {
    let res = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap(), text)
}

#[tokio::test]
async fn settings_values_need_instance_edit_on_the_page_and_in_the_api() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let id = app.instance(team, "node-red", &[]).await;
    let created = app.store.instance(team, id).await.unwrap().created_at;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let updated = app
        .store
        .update_settings(
            team,
            id,
            json!({ "credentialSecret": CREDENTIAL_SECRET, "uiPort": "port-value-1880" }),
            None,
            &Actor::system(),
        )
        .await
        .unwrap();
    assert!(updated.settings_updated_at > created);
    let changed = updated
        .settings_updated_at
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    let path = format!("/teams/{team}/instances/{id}");

    // A viewer sees that settings exist, their keys and when they changed.
    let viewer = app.member(team, "vera", BuiltinRole::Viewer).await;
    let page = viewer.get(&path).await;
    page.assert_ok();
    assert!(
        page.body.contains("<code>credentialSecret</code>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<code>uiPort</code>"));
    assert!(page.body.contains(&changed), "{}", page.body);
    assert!(
        !page.body.contains(CREDENTIAL_SECRET),
        "a viewer read the secret"
    );
    assert!(!page.body.contains("port-value-1880"));
    // A lead, who may edit the instance, reads and edits the values.
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let page = lead.get(&path).await;
    assert!(page.body.contains(CREDENTIAL_SECRET) && page.body.contains("Save settings"));

    // The same rule in the API, for one instance and for the list.
    let viewer_token = app.token(team, "dashboard", "viewer").await;
    let lead_token = app.token(team, "ci", "lead").await;
    let (status, body, text) =
        api_get(&app, &viewer_token, &format!("/api/v1/instances/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(body.get("settings").is_none(), "{text}");
    assert_eq!(body["setting_keys"], json!(["credentialSecret", "uiPort"]));
    assert_eq!(
        body["settings_updated_at"],
        json!(updated.settings_updated_at)
    );
    assert!(!text.contains(CREDENTIAL_SECRET), "{text}");
    let (status, body, text) = api_get(
        &app,
        &viewer_token,
        &format!("/api/v1/teams/{team}/instances"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!text.contains(CREDENTIAL_SECRET), "{text}");
    assert!(body["instances"][0].get("settings").is_none());
    assert_eq!(
        body["instances"][0]["setting_keys"],
        json!(["credentialSecret", "uiPort"])
    );
    let (_, body, _) = api_get(&app, &lead_token, &format!("/api/v1/instances/{id}")).await;
    assert_eq!(body["settings"]["credentialSecret"], CREDENTIAL_SECRET);
    assert_eq!(body["setting_keys"], json!(["credentialSecret", "uiPort"]));
    app.stop().await;
}

fn assert_no_store(headers: &reqwest::header::HeaderMap, what: &str) {
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "{what}"
    );
}

#[tokio::test]
async fn every_authenticated_answer_says_no_store() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let admin = app.member(team, "adam", BuiltinRole::Admin).await;
    let viewer = app.member(team, "vera", BuiltinRole::Viewer).await;
    app.user("root", true).await;
    let platform = Client::new(&app);
    platform.login("root", PASSWORD).await;
    let token = app.token(team, "ci", "admin").await;
    // Logging out ends the sessions the rest need: last.
    let mut routes: Vec<_> = ROUTES.iter().collect();
    routes.sort_by_key(|r| r.path == "/logout");
    let mut n = 0;
    for route in routes {
        n += 1;
        let w = world(&app, team, n).await;
        let path = fill(route, &w);
        match route.access {
            Access::Public => {}
            Access::Api(_) => {
                let url = app.url(&path);
                let http = reqwest::Client::new();
                let req = match route.method {
                    "get" => http.get(url),
                    "post" => http.post(url).json(&json!({})),
                    "put" => http.put(url).json(&json!({})),
                    "patch" => http.patch(url).json(&json!({})),
                    _ => http.delete(url),
                };
                let res = req.bearer_auth(&token).send().await.unwrap();
                let what = format!("{} {path}: {}", route.method, res.status());
                assert_no_store(res.headers(), &what);
            }
            Access::PlatformAdmin => {
                let page = send(&platform, route, &path, &w).await;
                assert_no_store(&page.headers, &format!("{} {path}", route.method));
            }
            Access::Authenticated | Access::Team(_) => {
                // Granted or refused, the answer is never kept.
                for client in [&viewer, &admin] {
                    let page = send(client, route, &path, &w).await;
                    let what = format!("{} {path}: {}", route.method, page.status);
                    assert_no_store(&page.headers, &what);
                }
            }
        }
    }
    // Versioned static files may still be cached.
    let css = Client::new(&app).get("/static/stagehand-6.css").await;
    assert!(
        css.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    app.stop().await;
}
