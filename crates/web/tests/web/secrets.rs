//! What must not be kept: no authenticated answer may be stored by a
//! browser's cache.

use crate::access::{fill, send, world};
use crate::harness::*;
use serde_json::json;
use stagehand_domain::BuiltinRole;
use stagehand_web::authz::Access;
use stagehand_web::routes::ROUTES;

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
    let css = Client::new(&app).get("/static/stagehand-1.css").await;
    assert!(
        css.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    app.stop().await;
}
