//! Snapshots as things a user opens, downloads and compares in the UI:
//! from a promotion's page to its snapshots, across instances, by a
//! viewer, never with a value; another team's snapshot does not exist.

use crate::harness::*;
use stagehand_domain::BuiltinRole;
use stagehand_domain::Permission;

#[tokio::test]
async fn a_viewer_opens_downloads_and_compares_snapshots_without_values() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[("orders", r#"{"v":1}"#)]).await;
    let prod = app
        .instance(team, "prod", &[("orders", r#"{"v":0}"#), ("legacy", "[]")])
        .await;
    let secret = "snapshot-never-holds-this-77";
    app.env(team, dev, "API_TOKEN", Some(secret)).await;
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
    let promotion_url = played.location.clone().unwrap();
    let promotion = app
        .store
        .promotion(
            team,
            promotion_url.rsplit('/').next().unwrap().parse().unwrap(),
        )
        .await
        .unwrap();
    let source = promotion.source_snapshot_id;
    let backup = promotion.backup_snapshot_id.unwrap();

    // The promotion's page links both snapshots and their comparison.
    let page = viewer.get(&promotion_url).await;
    for link in [
        format!("href=\"/teams/{team}/snapshots/{source}\""),
        format!("href=\"/teams/{team}/snapshots/{backup}\""),
        format!("href=\"/teams/{team}/snapshots/compare?from={backup}&amp;to={source}\""),
    ] {
        assert!(page.body.contains(&link), "{link}: {}", page.body);
    }
    // So does the instance page.
    let instance = viewer.get(&format!("/teams/{team}/instances/{prod}")).await;
    assert!(
        instance
            .body
            .contains(&format!("/teams/{team}/snapshots/{backup}"))
    );

    // A snapshot's page: what it holds, why, used by which promotion.
    let opened = viewer
        .get(&format!("/teams/{team}/snapshots/{source}"))
        .await;
    opened.assert_ok();
    for expected in [
        ">dev</a></h1>",
        "<code>orders</code>",
        "<code>API_TOKEN</code>",
        "promotion source",
        &format!("href=\"{promotion_url}\">dev → prod</a>, requested by lena"),
        // It can be compared with prod's backup.
        &format!("<option value=\"{backup}\">prod, promotion backup, "),
    ] {
        assert!(
            opened.body.contains(expected),
            "{expected}: {}",
            opened.body
        );
    }
    assert!(!opened.body.contains(secret));

    // The download is the file `flows push` takes: flows and keys.
    let file = viewer
        .http
        .get(app.url(&format!("/teams/{team}/snapshots/{source}/download")))
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert!(
        file.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"snapshot-")
    );
    let text = file.text().await.unwrap();
    assert!(!text.contains(secret));
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["flows"]["orders"], serde_json::json!({"v": 1}));
    assert_eq!(body["env_keys"], serde_json::json!(["API_TOKEN"]));

    // Compare prod's backup (A) with what dev sent (B).
    let compared = viewer
        .get(&format!(
            "/teams/{team}/snapshots/compare?from={backup}&to={source}"
        ))
        .await;
    compared.assert_ok();
    let b = &compared.body;
    assert!(b.contains("different"), "{b}");
    assert!(
        b.contains("Flows that differ</th><td><code>orders</code>"),
        "{b}"
    );
    assert!(
        b.contains("Flows only in A</th><td><code>legacy</code>"),
        "{b}"
    );
    assert!(
        b.contains("Keys only in B</th><td><code>API_TOKEN</code>"),
        "{b}"
    );
    assert!(
        b.contains("&#34;v&#34;: 0</span>") && b.contains("&#34;v&#34;: 1</span>"),
        "{b}"
    );
    assert!(!b.contains(secret));
    // A snapshot against itself is equal.
    let same = viewer
        .get(&format!(
            "/teams/{team}/snapshots/compare?from={source}&to={source}"
        ))
        .await;
    assert!(
        same.body
            .contains("A and B hold the same flows and env keys")
    );

    // Bad input: a clear answer, never another team's snapshot.
    let missing = viewer
        .get(&format!("/teams/{team}/snapshots/compare?from={source}"))
        .await;
    assert_eq!(missing.status, 422, "{}", missing.body);
    assert!(
        missing.body.contains("choose a snapshot"),
        "{}",
        missing.body
    );
    assert_eq!(
        viewer
            .get(&format!("/teams/{team}/snapshots/not-an-id"))
            .await
            .status,
        404
    );
    let other = app.team("other").await;
    let theirs = app.instance(other, "theirs", &[("x", "[]")]).await;
    let theirs_too = app.instance(other, "theirs-too", &[]).await;
    let (p2, s2) = app.pipeline(other, "p", &[theirs, theirs_too]).await;
    let outsider = app.member(other, "otto", BuiltinRole::Lead).await;
    let their = outsider
        .post(
            &format!("/teams/{other}/pipelines/{p2}/stages/{}/promote", s2[0]),
            &[],
        )
        .await
        .location
        .unwrap();
    let their_snapshot = app
        .store
        .promotion(other, their.rsplit('/').next().unwrap().parse().unwrap())
        .await
        .unwrap()
        .source_snapshot_id;
    for path in [
        format!("/teams/{team}/snapshots/{their_snapshot}"),
        format!("/teams/{team}/snapshots/{their_snapshot}/download"),
        format!("/teams/{team}/snapshots/compare?from={source}&to={their_snapshot}"),
    ] {
        assert_eq!(viewer.get(&path).await.status, 404, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_lead_promotes_an_earlier_snapshot_from_its_page_and_over_the_api() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[("orders", r#"{"v":1}"#)]).await;
    let qa = app.instance(team, "qa", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "checkout", &[dev, qa]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let viewer = app.member(team, "vera", BuiltinRole::Viewer).await;
    let promote = format!(
        "/teams/{team}/pipelines/{pipeline}/stages/{}/promote",
        stages[0]
    );
    let first = lead.post(&promote, &[]).await;
    let first_id = first
        .location
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let good = app
        .store
        .promotion(team, first_id.parse().unwrap())
        .await
        .unwrap()
        .source_snapshot_id;
    // dev moves on and ships.
    let token = app.token(team, "ci", "lead").await;
    let api = Api::new(&app);
    let (s, _) = api
        .call(
            &token,
            reqwest::Method::PUT,
            &format!("/instances/{dev}/flows/orders"),
            Some(serde_json::json!({"v": 2})),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::OK);
    lead.post(&promote, &[]).await;
    // Played again unchanged: a third snapshot of dev, with the second's
    // content, which the picker offers once.
    lead.post(&promote, &[]).await;

    // The snapshot's page offers to promote it, to whoever may play.
    let preview_url = format!(
        "/teams/{team}/pipelines/{pipeline}/stages/{}/preview?snapshot={good}",
        stages[0]
    );
    let opened = lead.get(&format!("/teams/{team}/snapshots/{good}")).await;
    assert!(
        opened.body.contains(&preview_url.replace('&', "&amp;"))
            || opened.body.contains(&preview_url),
        "{}",
        opened.body
    );
    assert!(
        opened
            .body
            .contains("Preview promoting it into qa in checkout")
    );
    let seen = viewer.get(&format!("/teams/{team}/snapshots/{good}")).await;
    assert!(!seen.body.contains("Preview promoting it"));

    // Its preview: the snapshot's content against qa now, chosen in the
    // select, carried by the play form.
    let preview = lead.get(&preview_url).await;
    preview.assert_ok();
    assert!(
        preview.body.contains("Promote snapshot"),
        "{}",
        preview.body
    );
    assert!(preview.body.contains(&format!("value=\"{good}\" selected")));
    assert_eq!(
        preview.body.matches("<option").count(),
        3,
        "as it is now, v1 and v2 once: {}",
        preview.body
    );
    assert!(
        preview
            .body
            .contains(&format!("name=\"source_snapshot\" value=\"{good}\""))
    );
    let diff = &preview.body[preview.body.find("class=\"diff\"").unwrap()..];
    assert!(
        diff.contains("d+\">+ ") && diff.contains("v&#34;: 1"),
        "the snapshot is the new side: {diff}"
    );
    let played = lead
        .post(
            &promote,
            &[
                ("source_snapshot", &good.to_string()),
                ("idempotency_key", "earlier-snapshot-1"),
            ],
        )
        .await;
    assert!(played.location.is_some(), "{}", played.body);
    let flow = app
        .store
        .flow(
            team,
            qa,
            &stagehand_domain::FlowName::parse("orders").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        flow.content.as_json(),
        r#"{"v":1}"#,
        "the chosen snapshot shipped"
    );

    // Over the API, the same; another instance's snapshot is a 422.
    let (s, body) = api
        .call(
            &token,
            reqwest::Method::POST,
            &format!("/pipelines/{pipeline}/stages/{}/promote", stages[0]),
            Some(serde_json::json!({"snapshot": good})),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{body}");
    assert_eq!(body["source_snapshot_id"], good.to_string());
    let qa_backup = body["backup_snapshot_id"].as_str().unwrap().to_owned();
    let (s, body) = api
        .call(
            &token,
            reqwest::Method::POST,
            &format!("/pipelines/{pipeline}/stages/{}/promote", stages[0]),
            Some(serde_json::json!({"snapshot": qa_backup})),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["fields"]["snapshot"].is_string(), "{body}");
}

#[tokio::test]
async fn a_lead_restores_an_instance_to_its_snapshot_from_its_page_and_over_the_api() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[("orders", r#"{"v":1}"#)]).await;
    let qa = app.instance(team, "qa", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "checkout", &[dev, qa]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let viewer = app.member(team, "vera", BuiltinRole::Viewer).await;
    let promote = format!(
        "/teams/{team}/pipelines/{pipeline}/stages/{}/promote",
        stages[0]
    );
    lead.post(&promote, &[]).await;
    let token = app.token(team, "ci", "lead").await;
    let api = Api::new(&app);
    let (s, _) = api
        .call(
            &token,
            reqwest::Method::PUT,
            &format!("/instances/{dev}/flows/orders"),
            Some(serde_json::json!({"v": 2})),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::OK);
    let second = lead.post(&promote, &[]).await;
    let second_id = second
        .location
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    // qa before the second promotion: orders v1.
    let good = app
        .store
        .promotion(team, second_id.parse().unwrap())
        .await
        .unwrap()
        .backup_snapshot_id
        .unwrap();
    let qa_orders = || async {
        app.store
            .flow(
                team,
                qa,
                &stagehand_domain::FlowName::parse("orders").unwrap(),
            )
            .await
            .unwrap()
            .content
            .as_json()
            .to_owned()
    };
    assert_eq!(qa_orders().await, r#"{"v":2}"#);

    // The snapshot's page offers the restore's preview to everyone who
    // may see it; only those who may play get the button on it.
    let restore = format!(
        "/teams/{team}/pipelines/{pipeline}/stages/{}/restore",
        stages[1]
    );
    let preview_url = format!("{restore}?snapshot={good}");
    let opened = lead.get(&format!("/teams/{team}/snapshots/{good}")).await;
    assert!(opened.body.contains(&preview_url), "{}", opened.body);
    assert!(opened.body.contains("Preview restoring qa to it"));
    let seen = viewer.get(&preview_url).await;
    seen.assert_ok();
    assert!(
        seen.body
            .contains("restoring needs the <code>promotion.rollback</code>")
    );
    assert!(!seen.body.contains("Confirm: restore"));
    let preview = lead.get(&preview_url).await;
    preview.assert_ok();
    assert!(
        preview.body.contains("Restore qa to snapshot"),
        "{}",
        preview.body
    );
    let diff = &preview.body[preview.body.find("class=\"diff\"").unwrap()..];
    assert!(
        diff.contains("d+\">+ ") && diff.contains("v&#34;: 1"),
        "the snapshot is the new side: {diff}"
    );
    // Without a snapshot there is nothing to preview.
    assert_eq!(lead.get(&restore).await.status, 422);
    // Who may see pipelines but not the instances' flows gets the plan,
    // not the flows' content (as on a play's preview).
    let (planner, _) = app
        .member_holding(team, "pia", "pipelines-only", &[Permission::PipelineView])
        .await;
    let plan_only = planner.get(&preview_url).await;
    plan_only.assert_ok();
    assert!(plan_only.body.contains("Changed"), "{}", plan_only.body);
    assert!(
        !plan_only.body.contains("class=\"diff\""),
        "{}",
        plan_only.body
    );
    // A viewer may not restore; a lead may, and lands on the promotion.
    let refused = viewer
        .post(&restore, &[("snapshot", &good.to_string())])
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(qa_orders().await, r#"{"v":2}"#);
    let done = lead
        .post(
            &format!("{restore}?snapshot={good}"),
            &[
                ("snapshot", &good.to_string()),
                ("idempotency_key", "restore-qa-1"),
            ],
        )
        .await;
    let page = done.location.clone().expect("a redirect to the promotion");
    assert_eq!(qa_orders().await, r#"{"v":1}"#, "the snapshot is back");
    let shown = lead.get(&page).await;
    assert!(shown.body.contains("Restore of qa"), "{}", shown.body);
    // Undoing it says what it undoes.
    assert!(
        shown.body.contains(">Preview undoing this restore<"),
        "{}",
        shown.body
    );
    assert!(
        !shown.body.contains("restore as it was then"),
        "{}",
        shown.body
    );
    let card = lead
        .get(&format!("/teams/{team}/pipelines/{pipeline}"))
        .await
        .body;
    assert!(
        card.contains(&format!(
            "href=\"{page}\">Restored to a snapshot</a> by lena"
        )),
        "{card}"
    );
    let history = lead.get(&format!("/teams/{team}/promotions")).await;
    assert!(history.body.contains("restore"), "{}", history.body);
    let audit = lead.get(&format!("/teams/{team}/audit")).await;
    assert!(
        audit.body.contains("restored qa to one of its snapshots"),
        "{}",
        audit.body
    );

    // Over the API: the preview, the restore, and a snapshot of another
    // instance refused with the field named.
    let (s, body) = api
        .call(
            &token,
            reqwest::Method::GET,
            &format!(
                "/pipelines/{pipeline}/stages/{}/restore-preview?snapshot={good}",
                stages[1]
            ),
            None,
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::OK, "{body}");
    assert_eq!(
        body["plan"]["flows_changed"].as_array().unwrap().len(),
        0,
        "{body}"
    );
    let latest = app
        .store
        .promotion(team, second_id.parse().unwrap())
        .await
        .unwrap()
        .source_snapshot_id;
    let (s, body) = api
        .call(
            &token,
            reqwest::Method::POST,
            &format!("/pipelines/{pipeline}/stages/{}/restore", stages[1]),
            Some(serde_json::json!({"snapshot": latest})),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["fields"]["snapshot"].is_string(), "{body}");
    let (s, body) = api
        .call(
            &token,
            reqwest::Method::POST,
            &format!("/pipelines/{pipeline}/stages/{}/restore", stages[1]),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // qa's backup from the page's restore holds orders v2: restore it.
    let backup = app
        .store
        .promotion(team, page.rsplit('/').next().unwrap().parse().unwrap())
        .await
        .unwrap()
        .backup_snapshot_id
        .unwrap();
    let (s, body) = api
        .call(
            &token,
            reqwest::Method::POST,
            &format!("/pipelines/{pipeline}/stages/{}/restore", stages[1]),
            Some(serde_json::json!({"snapshot": backup})),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{body}");
    assert_eq!(body["source_stage_id"], body["target_stage_id"]);
    assert_eq!(qa_orders().await, r#"{"v":2}"#);
    app.stop().await;
}
