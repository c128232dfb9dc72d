//! Delivery metrics as a CI job and a lead read them: the API's figures
//! after real plays and a rollback, the period's errors, another team's
//! pipeline, and the pages with their SVG charts, for a viewer too.

use crate::harness::*;
use reqwest::Method;
use reqwest::StatusCode;
use stagehand_domain::BuiltinRole;

#[tokio::test]
async fn metrics_count_deployments_into_the_last_stage_and_the_rolled_back_ones() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[("orders", r#"{"v":1}"#)]).await;
    let qa = app.instance(team, "qa", &[]).await;
    let prod = app.instance(team, "prod", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "checkout", &[dev, qa, prod]).await;
    let token = app.token(team, "ci", "lead").await;
    let api = Api::new(&app);
    let promote = |stage| format!("/pipelines/{pipeline}/stages/{stage}/promote");

    // Two deliveries into prod, the second rolled back; qa's arrivals are
    // not deliveries.
    let mut shipped = Vec::new();
    for v in 2..=3 {
        let (s, _) = api
            .call(&token, Method::POST, &promote(stages[0]), None)
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, body) = api
            .call(&token, Method::POST, &promote(stages[1]), None)
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        shipped.push(body["id"].as_str().unwrap().to_owned());
        let content = format!(r#"{{"v":{v}}}"#);
        let (s, _) = api
            .call(
                &token,
                Method::PUT,
                &format!("/instances/{dev}/flows/orders"),
                Some(serde_json::from_str(&content).unwrap()),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, _) = api
        .call(
            &token,
            Method::POST,
            &format!("/promotions/{}/rollback", shipped[1]),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, m) = api
        .call(
            &token,
            Method::GET,
            &format!("/pipelines/{pipeline}/metrics"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["pipeline"]["name"], "checkout");
    assert_eq!(m["pipeline"]["last_stage"]["instance_name"], "prod");
    assert_eq!(m["days"], 30);
    assert_eq!(m["daily"].as_array().unwrap().len(), 30);
    assert_eq!(m["deployment_frequency"]["deployments"], 2);
    assert_eq!(m["change_failure_rate"]["attempts"], 2);
    assert_eq!(m["change_failure_rate"]["rolled_back"], 1);
    assert_eq!(m["change_failure_rate"]["rate"], 0.5);
    assert_eq!(m["time_to_restore"]["count"], 1);
    assert_eq!(m["lead_time"]["count"], 2);
    assert!(m["lead_time"]["median_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(m["approval_wait"]["count"], 0);
    assert_eq!(m["approval_wait"]["waiting_now"], 0);
    let today = chrono::Utc::now().date_naive().to_string();
    assert!(
        m["until"].as_str().unwrap() > today.as_str(),
        "today is in the period"
    );
    let daily_total: u64 = m["daily"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deployments"].as_u64().unwrap())
        .sum();
    assert_eq!(daily_total, 2);

    // The team adds up its pipelines' last stages: the same here.
    let (s, t) = api
        .call(
            &token,
            Method::GET,
            &format!("/teams/{team}/metrics?days=7"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["team"]["name"], "payments");
    assert_eq!(t["team"]["pipelines"], 1);
    assert_eq!(t["days"], 7);
    assert_eq!(t["deployment_frequency"]["deployments"], 2);
    let (s, by_name) = api
        .call(&token, Method::GET, "/teams/payments/metrics?days=7", None)
        .await;
    assert_eq!(
        (s, &by_name),
        (StatusCode::OK, &t),
        "a team by name is the same team"
    );

    // A period before any of it is empty, not an error.
    let (s, old) = api
        .call(
            &token,
            Method::GET,
            &format!("/pipelines/{pipeline}/metrics?since=2020-01-01&until=2020-01-31"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(old["days"], 31);
    assert_eq!(old["deployment_frequency"]["deployments"], 0);
    assert_eq!(old["change_failure_rate"]["rate"], serde_json::Value::Null);
    assert_eq!(old["lead_time"]["median_seconds"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_bad_period_or_another_teams_pipeline_is_a_clear_error() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let other = app.team("other").await;
    let a = app.instance(other, "a", &[]).await;
    let b = app.instance(other, "b", &[]).await;
    let (theirs, _) = app.pipeline(other, "theirs", &[a, b]).await;
    let token = app.token(team, "ci", "viewer").await;
    let api = Api::new(&app);
    for (query, field) in [
        ("since=last-week", "since"),
        ("until=2026-02-30", "until"),
        ("since=2026-11-10&until=2026-11-01", "since"),
        ("since=2001-01-01&until=2026-11-01", "since"),
        ("days=0", "days"),
        ("days=100000", "days"),
    ] {
        let (s, body) = api
            .call(
                &token,
                Method::GET,
                &format!("/teams/{team}/metrics?{query}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert!(
            body["error"]["fields"][field].is_string(),
            "{query}: {body}"
        );
    }
    let (s, _) = api
        .call(
            &token,
            Method::GET,
            &format!("/pipelines/{theirs}/metrics"),
            None,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "another team's pipeline does not exist"
    );
    let (s, _) = api
        .call(
            &token,
            Method::GET,
            &format!("/teams/{other}/metrics"),
            None,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a token answers for its own team only"
    );
}

#[tokio::test]
async fn the_metrics_pages_draw_the_figures_as_svg_for_a_viewer() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[("orders", r#"{"v":1}"#)]).await;
    let prod = app.instance(team, "prod", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "checkout", &[dev, prod]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let viewer = app.member(team, "vera", BuiltinRole::Viewer).await;
    let played = lead
        .post(
            &format!(
                "/teams/{team}/pipelines/{pipeline}/stages/{}/promote",
                stages[0]
            ),
            &[],
        )
        .await;
    assert!(played.location.is_some(), "{}", played.body);

    // The pipeline page links its metrics; the team page the team's.
    let pipeline_page = viewer
        .get(&format!("/teams/{team}/pipelines/{pipeline}"))
        .await;
    let metrics_url = format!("/teams/{team}/pipelines/{pipeline}/metrics");
    assert!(
        pipeline_page
            .body
            .contains(&format!("href=\"{metrics_url}\""))
    );
    let team_page = viewer.get(&format!("/teams/{team}")).await;
    assert!(
        team_page
            .body
            .contains(&format!("href=\"/teams/{team}/metrics\""))
    );

    let page = viewer.get(&format!("{metrics_url}?days=7")).await;
    page.assert_ok();
    let body = &page.body;
    for text in [
        "Delivery of checkout",
        "Deployments into prod, its last stage",
        "Deployment frequency",
        "1 deployment in 7 days",
        "Change failure rate",
        "0 %",
        "nothing shipped",
    ] {
        assert_eq!(
            body.contains(text),
            text != "nothing shipped",
            "{text}: {body}"
        );
    }
    // Four charts, each an image with words and a table of its numbers.
    assert_eq!(body.matches("<svg viewBox").count(), 4);
    assert_eq!(body.matches("role=\"img\"").count(), 4);
    assert_eq!(body.matches("<details>").count(), 4);
    assert!(body.contains("<title>"), "each bar says what it is");
    // One day of seven had a deployment: one bar in the daily chart.
    let daily = &body[body.find("id=\"daily\"").unwrap()..body.find("id=\"lead-times\"").unwrap()];
    assert_eq!(daily.matches("<rect x=").count(), 1, "{daily}");
    assert!(
        body.contains("value=\"7\" selected"),
        "the period chosen is kept"
    );
    let charts = &body[body.find("id=\"daily\"").unwrap()..body.find("id=\"how\"").unwrap()];
    assert!(!charts.contains("<script"), "no script draws the charts");

    let team_metrics = viewer.get(&format!("/teams/{team}/metrics")).await;
    team_metrics.assert_ok();
    assert!(team_metrics.body.contains("Delivery of team payments"));
    assert!(team_metrics.body.contains("1 deployment in 30 days"));

    // A bad period is a clear error page, not a chart of nothing.
    let bad = viewer.get(&format!("{metrics_url}?days=lots")).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("days"), "{}", bad.body);
}
