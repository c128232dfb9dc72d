//! The team lead's day: edit a dev flow, preview, play, see the history
//! entry, roll back. On both backends.

use crate::harness::*;
use stagehand_domain::{BuiltinRole, EnvKey, FlowName, Permission, SecretValue};
use stagehand_store::Actor;
use stagehand_web::WebConfig;

async fn a_lead_edits_previews_plays_and_rolls_back(backend: Backend) {
    let app = spawn_app_with(backend, WebConfig::default()).await;
    let team = app.team("payments").await;
    let dev = app
        .instance(team, "dev", &[("orders", r#"{"v":1}"#), ("old", "[]")])
        .await;
    let prod = app
        .instance(team, "prod", &[("orders", r#"{"v":0}"#), ("legacy", "[]")])
        .await;
    let (pipeline, stages) = app.pipeline(team, "checkout", &[dev, prod]).await;
    let actor = Actor::system();
    let secret = "s3cr3t-dev-value-9f8e";
    app.store
        .set_env_var(
            team,
            dev,
            EnvKey::parse("API_TOKEN").unwrap(),
            Some(SecretValue::new(secret.into())),
            &actor,
        )
        .await
        .unwrap();
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;

    // Edit a dev flow through the form.
    let base = format!("/teams/{team}/instances/{dev}");
    lead.get(&base).await.assert_ok();
    lead.post(
        &format!("{base}/flows"),
        &[
            ("name", "orders"),
            ("content", r#"{"v": 2, "steps": ["a"]}"#),
        ],
    )
    .await
    .assert_redirect_to(&format!("{base}/flows/orders"));

    // The pipeline page offers play on dev, not on prod (the last stage).
    let page = lead
        .get(&format!("/teams/{team}/pipelines/{pipeline}"))
        .await;
    page.assert_ok();
    let play = format!(
        "/teams/{team}/pipelines/{pipeline}/stages/{}/preview",
        stages[0]
    );
    assert!(page.body.contains(&play), "{}", page.body);
    assert!(!page.body.contains(&format!("stages/{}/preview", stages[1])));

    // The preview shows the plan and a readable diff, never the value.
    let preview = lead.get(&play).await;
    preview.assert_ok();
    for expected in ["orders", "old", "legacy", "API_TOKEN", "steps", "d+"] {
        assert!(
            preview.body.contains(expected),
            "{expected} missing from the preview"
        );
    }
    assert!(!preview.body.contains(secret));
    // The diff says which side is which: prod today, what dev brings.
    assert!(
        preview
            .body
            .contains("Changed: <code>orders</code> <span class=\"muted\">(<span class=\"d-\">−</span> prod today, <span class=\"d+\">+</span> from dev)"),
        "{}",
        preview.body
    );
    let version = field_value(&preview.body, "expected_target_version").unwrap();
    let key = field_value(&preview.body, "idempotency_key").unwrap();

    // Confirm, twice (a double click): one promotion.
    let promote = format!(
        "/teams/{team}/pipelines/{pipeline}/stages/{}/promote",
        stages[0]
    );
    let form = [
        ("expected_target_version", version.as_str()),
        ("idempotency_key", key.as_str()),
    ];
    let first = lead.post(&promote, &form).await;
    first.assert_redirect_to(&format!("/teams/{team}/promotions/"));
    let second = lead.post(&promote, &form).await;
    assert_eq!(first.location, second.location);
    let promotions = app.store.promotions(team, 10).await.unwrap();
    assert_eq!(promotions.len(), 1);

    // Prod now has dev's flows, the new key without a value, its settings.
    let flows: Vec<String> = app
        .store
        .flows(team, prod)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name.to_string())
        .collect();
    assert_eq!(flows, ["old", "orders"]);
    let env = app.store.env_vars(team, prod).await.unwrap();
    assert_eq!(env.len(), 1);
    assert!(!env[0].has_value);
    assert_eq!(
        app.store.instance(team, prod).await.unwrap().settings["url"],
        "https://prod.example"
    );

    // The promotion page and the history show it.
    let detail = lead.get(first.location.as_deref().unwrap()).await;
    detail.assert_ok();
    assert!(
        detail.body.contains("applied") && detail.body.contains(">Preview undoing this promotion<")
    );
    // An empty row of the plan says so.
    assert!(
        detail
            .body
            .contains("<th>Keys only in prod</th><td><span class=\"muted\">none</span>"),
        "{}",
        detail.body
    );
    let history = lead.get(&format!("/teams/{team}/promotions")).await;
    history.assert_ok();
    assert!(history.body.contains("dev → prod"), "{}", history.body);

    // Undoing is previewed first: what it changes in prod now, and what
    // it takes back that the promotion did not bring (a hotfix made
    // straight in prod since).
    app.store
        .put_flow(
            team,
            prod,
            FlowName::parse("hotfix").unwrap(),
            stagehand_domain::FlowContent::parse_json("[]").unwrap(),
            None,
            &Actor::system(),
        )
        .await
        .unwrap();
    let undo = lead
        .get(&format!("{}/rollback", first.location.as_deref().unwrap()))
        .await;
    undo.assert_ok();
    assert!(
        undo.body.contains(">Confirm: undo this promotion<"),
        "{}",
        undo.body
    );
    let since = &undo.body[undo.body.find("id=\"changed-since\"").expect("a warning")..];
    let since = &since[..since.find("</section>").unwrap()];
    assert!(since.contains("<code>hotfix</code>"), "{since}");
    assert!(
        !since.contains("<code>orders</code>"),
        "the promotion changed orders: {since}"
    );
    assert!(
        undo.body
            .contains("Flows removed</th><td><code>hotfix</code>"),
        "{}",
        undo.body
    );
    assert!(!undo.body.contains(secret));
    // Confirmed after prod changed again: refused, nothing undone, and
    // the answer leads back to the preview as it is now.
    let seen = field_value(&undo.body, "expected_target_version").unwrap();
    app.store
        .put_flow(
            team,
            prod,
            FlowName::parse("hotfix2").unwrap(),
            stagehand_domain::FlowContent::parse_json("[]").unwrap(),
            None,
            &Actor::system(),
        )
        .await
        .unwrap();
    let rollback_path = format!("{}/rollback", first.location.as_deref().unwrap());
    let stale = lead
        .post(
            &rollback_path,
            &[("expected_target_version", seen.as_str())],
        )
        .await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert!(
        stale.body.contains(&format!("href=\"{rollback_path}\"")),
        "{}",
        stale.body
    );
    assert!(
        app.store
            .flow(team, prod, &FlowName::parse("hotfix2").unwrap())
            .await
            .is_ok()
    );

    // Roll back: prod's flows are restored.
    let rollback = format!("{}/rollback", first.location.as_deref().unwrap());
    lead.post(&rollback, &[])
        .await
        .assert_redirect_to(first.location.as_deref().unwrap());
    let restored: Vec<String> = app
        .store
        .flows(team, prod)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name.to_string())
        .collect();
    assert_eq!(restored, ["legacy", "orders"]);
    let orders = app
        .store
        .flow(team, prod, &FlowName::parse("orders").unwrap())
        .await
        .unwrap();
    assert_eq!(orders.content.to_value(), serde_json::json!({"v": 0}));
    let detail = lead.get(first.location.as_deref().unwrap()).await;
    assert!(detail.body.contains("rolled_back"));
    // Who rolled it back, as who requested it.
    assert!(
        detail.body.contains(", by lena</td></tr>"),
        "{}",
        detail.body
    );
    // Prod's page lists the backups the promotion and the rollback took.
    let prod_page = lead.get(&format!("/teams/{team}/instances/{prod}")).await;
    assert!(
        prod_page.body.contains("promotion backup") && prod_page.body.contains("rollback backup")
    );
    assert!(!detail.body.contains("Preview undoing"));
    // Undone, there is no undo to preview: its page says why.
    lead.get(&format!("{}/rollback", first.location.as_deref().unwrap()))
        .await
        .assert_redirect_to(first.location.as_deref().unwrap());

    // Nothing anywhere a lead can load shows the value.
    for path in [
        format!("/teams/{team}/instances/{dev}"),
        format!("/teams/{team}/audit"),
        format!("/teams/{team}/promotions/export?format=json"),
        format!("/teams/{team}/audit/export?format=csv"),
    ] {
        let page = lead.get(&path).await;
        page.assert_ok();
        assert!(!page.body.contains(secret), "{path} shows the secret");
    }
    app.stop().await;
}

#[tokio::test]
async fn play_on_sqlite() {
    a_lead_edits_previews_plays_and_rolls_back(Backend::Sqlite).await;
}

#[tokio::test]
async fn play_on_postgres() {
    a_lead_edits_previews_plays_and_rolls_back(Backend::Postgres).await;
}

#[tokio::test]
async fn a_stale_preview_is_refused_with_a_clear_conflict() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[("a", "1")]).await;
    let prod = app.instance(team, "prod", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "p", &[dev, prod]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let preview = lead
        .get(&format!(
            "/teams/{team}/pipelines/{pipeline}/stages/{}/preview",
            stages[0]
        ))
        .await;
    preview.assert_ok();
    let version = field_value(&preview.body, "expected_target_version").unwrap();
    // Someone edits prod after the preview was loaded.
    app.store
        .put_flow(
            team,
            prod,
            FlowName::parse("hotfix").unwrap(),
            stagehand_domain::FlowContent::parse_json("{}").unwrap(),
            None,
            &Actor::system(),
        )
        .await
        .unwrap();
    let page = lead
        .post(
            &format!(
                "/teams/{team}/pipelines/{pipeline}/stages/{}/promote",
                stages[0]
            ),
            &[
                ("expected_target_version", &version),
                ("idempotency_key", "k1"),
            ],
        )
        .await;
    assert_eq!(page.status, 409);
    assert!(
        page.body.contains("changed since you loaded it"),
        "{}",
        page.body
    );
    // The way on is a link to the preview as it is now, not "reload".
    let preview_path = format!(
        "/teams/{team}/pipelines/{pipeline}/stages/{}/preview",
        stages[0]
    );
    assert!(
        page.body.contains(&format!(
            "<a href=\"{preview_path}\">See it again as it is now</a>"
        )),
        "{}",
        page.body
    );
    lead.get(&preview_path).await.assert_ok();
    assert!(app.store.promotions(team, 10).await.unwrap().is_empty());

    // So is one whose source changed since: what ships is what was shown.
    let preview = lead.get(&preview_path).await;
    let target_version = field_value(&preview.body, "expected_target_version").unwrap();
    let source_version = field_value(&preview.body, "expected_source_version").unwrap();
    app.store
        .put_flow(
            team,
            dev,
            FlowName::parse("a").unwrap(),
            stagehand_domain::FlowContent::parse_json("2").unwrap(),
            None,
            &Actor::system(),
        )
        .await
        .unwrap();
    let page = lead
        .post(
            &format!(
                "/teams/{team}/pipelines/{pipeline}/stages/{}/promote",
                stages[0]
            ),
            &[
                ("expected_target_version", &target_version),
                ("expected_source_version", &source_version),
                ("idempotency_key", "k2"),
            ],
        )
        .await;
    assert_eq!(page.status, 409, "{}", page.body);
    assert!(
        page.body
            .contains("dev changed since your preview (version"),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!("<a href=\"{preview_path}\">")));
    assert!(app.store.promotions(team, 10).await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_lead_requests_into_a_protected_instance_and_two_others_approve_what_ships() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[("orders", r#"{"v":1}"#)]).await;
    let prod = app.instance(team, "prod", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "p", &[dev, prod]).await;
    let admin = app.member(team, "adam", BuiltinRole::Admin).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let second = app.member(team, "sara", BuiltinRole::Admin).await;
    let base = format!("/teams/{team}/pipelines/{pipeline}/stages");

    // Only those who manage protection may protect an instance.
    let protect = format!("/teams/{team}/instances/{prod}/protection");
    assert_eq!(
        lead.post(&protect, &[("required_approvals", "2")])
            .await
            .status,
        403
    );
    admin
        .post(
            &protect,
            &[
                ("required_approvals", "2"),
                ("pipeline", &pipeline.to_string()),
            ],
        )
        .await
        .assert_redirect_to(&format!("/teams/{team}/pipelines/{pipeline}"));

    // A lead requests the promotion: the preview says it will wait.
    let preview = lead.get(&format!("{base}/{}/preview", stages[0])).await;
    assert!(
        preview.body.contains("Request promotion"),
        "{}",
        preview.body
    );
    let promote = format!("{base}/{}/promote", stages[0]);
    let requested = lead.post(&promote, &[]).await;
    let promotion_url = requested.location.clone().unwrap();
    assert!(app.store.flows(team, prod).await.unwrap().is_empty());
    // While it waits, neither of its stages leaves the pipeline: the page
    // says so instead of offering it, and the store refuses it anyway.
    let page = admin
        .get(&format!("/teams/{team}/pipelines/{pipeline}"))
        .await
        .body;
    assert!(
        page.contains(
            "A request into or out of prod is waiting for approval: it must be approved, \
             rejected or withdrawn before the stage can leave p."
        ),
        "{page}"
    );
    // Neither its source: dev.
    assert!(!page.contains("Yes, remove the stage prod"), "{page}");
    assert!(!page.contains("Yes, remove the stage dev"), "{page}");
    assert!(!page.contains("Yes, delete p</button>"), "{page}");
    for stage in &stages {
        let refused = admin.post(&format!("{base}/{stage}/remove"), &[]).await;
        assert_eq!(refused.status, 409, "{}", refused.body);
        assert!(
            refused.body.contains("is waiting for approval (promotion"),
            "{}",
            refused.body
        );
    }
    assert_eq!(
        app.store
            .pipeline(team, pipeline)
            .await
            .unwrap()
            .stages
            .len(),
        2
    );
    // The source changes after the request.
    lead.post(
        &format!("/teams/{team}/instances/{dev}/flows"),
        &[("name", "orders"), ("content", r#"{"v":2}"#)],
    )
    .await
    .assert_redirect_to("/teams/");

    // Nothing warns while prod is as it was at the request; a direct
    // change by a protection manager since is called out to reviewers.
    assert!(
        !lead
            .get(&promotion_url)
            .await
            .body
            .contains("target-changed")
    );
    admin
        .post(
            &format!("/teams/{team}/instances/{prod}/env"),
            &[("key", "HOTFIX_FLAG")],
        )
        .await
        .assert_redirect_to("/teams/");
    let warned = lead.get(&promotion_url).await;
    assert!(
        warned
            .body
            .contains("prod changed since this was requested"),
        "{}",
        warned.body
    );
    // Reviewers see what approving ships: the pinned dev (v 1, not the
    // v 2 dev has now) over prod as it is now (with its hotfix key, kept),
    // flow by flow.
    let ships = &warned.body[warned.body.find("id=\"what-ships\"").unwrap()..];
    let ships = &ships[..ships.find("</section>").unwrap()];
    assert!(
        ships.contains("What approving will change in prod"),
        "{ships}"
    );
    assert!(ships.contains("Added: <code>orders</code>"), "{ships}");
    assert!(ships.contains("−</span> prod now"), "{ships}");
    assert!(ships.contains("&#34;v&#34;: 1</span>"), "{ships}");
    assert!(!ships.contains("&#34;v&#34;: 2"), "{ships}");
    assert!(
        ships.contains("Keys only in prod (kept)</th><td><code>HOTFIX_FLAG</code>"),
        "{ships}"
    );
    // Flow contents are for those who may see flows: an auditor holding
    // only promotion.view sees the plan, not the diff.
    let (auditor, _) = app
        .member_holding(team, "audrey", "auditor", &[Permission::PromotionView])
        .await;
    let seen = auditor.get(&promotion_url).await;
    seen.assert_ok();
    assert!(seen.body.contains("What approving will change in prod"));
    assert!(!seen.body.contains("class=\"diff\""), "{}", seen.body);

    // The pipeline page shows the pending promotion on the target stage.
    let page = lead
        .get(&format!("/teams/{team}/pipelines/{pipeline}"))
        .await;
    assert!(page.body.contains("awaiting approval"), "{}", page.body);

    // The requester cannot approve; two others can.
    let decide = format!("{promotion_url}/decision");
    let own = lead.post(&decide, &[("decision", "approve")]).await;
    assert_eq!(own.status, 409);
    assert!(own.body.contains("someone else must approve"));
    // The form says it is final, and takes a reason; each decision asks
    // first, without JavaScript too (its button opens the question).
    let review = admin.get(&promotion_url).await;
    for asked in [
        "<summary>Approve…</summary>",
        "Approve dev → prod? If yours is the last approval needed, it applies to prod now. \
         A decision cannot be taken back.",
        "<summary>Reject…</summary>",
        "Reject dev → prod? The request ends, and nothing changes in prod.",
        ">Yes, approve</button>",
        ">Yes, reject</button>",
    ] {
        assert!(review.body.contains(asked), "{asked}: {}", review.body);
    }
    assert!(!review.body.contains("hx-confirm"), "{}", review.body);
    assert!(review.body.contains("<label for=\"decision-comment\">"));
    // Too long a reason is refused, and nothing is decided.
    let long = "x".repeat(2001);
    let refused = admin
        .post(&decide, &[("decision", "approve"), ("comment", &long)])
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    admin
        .post(
            &decide,
            &[
                ("decision", "approve"),
                ("comment", "  Checked the orders diff with Sara.  "),
            ],
        )
        .await
        .assert_redirect_to(&promotion_url);
    assert!(
        app.store.flows(team, prod).await.unwrap().is_empty(),
        "1 of 2"
    );
    let reviewed = lead.get(&promotion_url).await;
    assert!(
        reviewed
            .body
            .contains("<q class=\"comment\">Checked the orders diff with Sara.</q>"),
        "{}",
        reviewed.body
    );
    let approved = app
        .store
        .audit_events(team, 50)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "promotion.approved")
        .unwrap();
    assert_eq!(
        approved.details["comment"],
        "Checked the orders diff with Sara."
    );
    second
        .post(&decide, &[("decision", "approve")])
        .await
        .assert_redirect_to(&promotion_url);
    // The last approval says it shipped.
    let after = second.get(&promotion_url).await;
    assert!(
        after
            .body
            .contains("Recorded your approval, the last one needed: the promotion is applied."),
        "{}",
        after.body
    );
    let shipped = app
        .store
        .flow(team, prod, &FlowName::parse("orders").unwrap())
        .await
        .unwrap();
    assert_eq!(shipped.content.to_value(), serde_json::json!({"v": 1}));
    let detail = lead.get(&promotion_url).await;
    assert!(detail.body.contains("applied") && detail.body.contains("sara"));

    // The lead's rollback into prod is a request too; prod keeps what
    // shipped until two others approve it.
    let rollback = lead.post(&format!("{promotion_url}/rollback"), &[]).await;
    let request_url = rollback.location.clone().unwrap();
    assert_ne!(request_url, promotion_url);
    let request = lead.get(&request_url).await;
    assert!(
        request
            .body
            .contains("<span class=\"status pending_approval\">awaiting approval</span></h1>"),
        "{}",
        request.body
    );
    // It reads as a rollback throughout: its title, the snapshot it puts
    // back, what approving does, and the keys it keeps.
    let reviewing = admin.get(&request_url).await.body;
    for expected in [
        "<title>Rollback of prod",
        "<h1>Rollback of prod",
        "<th>Snapshot it puts back</th>",
        "Approving puts back the backup of prod taken before the promotion it undoes.",
        "<th>Keys of prod, all kept (a rollback puts back flows only)</th>",
    ] {
        assert!(reviewing.contains(expected), "{expected}: {reviewing}");
    }
    for wrong in [
        "Promotion rollback",
        "Source snapshot",
        "applies the source",
    ] {
        assert!(!reviewing.contains(wrong), "{wrong}: {reviewing}");
    }
    // The promotion's backup is named by its content hash, as snapshots
    // are everywhere, not by its id.
    let promotion_id: stagehand_domain::PromotionId =
        promotion_url.rsplit('/').next().unwrap().parse().unwrap();
    let applied = app.store.promotion(team, promotion_id).await.unwrap();
    let backup = app
        .store
        .snapshot(team, applied.backup_snapshot_id.unwrap())
        .await
        .unwrap();
    let shown = lead.get(&promotion_url).await.body;
    assert!(
        shown.contains(&format!(
            "<code>{}</code></a>, taken",
            backup.content_hash.short()
        )),
        "{shown}"
    );
    assert!(shown.contains("<th>prod version after it</th>"), "{shown}");
    // The promotion it undoes points to it, and offers no second undo.
    let original = lead.get(&promotion_url).await;
    assert!(
        original.body.contains(
            "A request to undo this promotion is waiting for approval:</strong> <a href=\""
        ),
        "{}",
        original.body
    );
    assert!(
        original.body.contains(&format!("href=\"{request_url}\"")),
        "{}",
        original.body
    );
    assert!(
        !original.body.contains("Preview undoing"),
        "{}",
        original.body
    );
    // Its undo preview sends to the waiting request.
    lead.get(&format!("{promotion_url}/rollback"))
        .await
        .assert_redirect_to(&request_url);
    // Lists say what it is: a rollback into prod, not "prod → prod".
    let history = lead.get(&format!("/teams/{team}/promotions")).await;
    assert!(history.body.contains("rollback → prod"), "{}", history.body);
    assert!(!history.body.contains("prod → prod"), "{}", history.body);
    assert_eq!(app.store.flows(team, prod).await.unwrap().len(), 1);
    for reviewer in [&admin, &second] {
        reviewer
            .post(
                &format!("{request_url}/decision"),
                &[("decision", "approve")],
            )
            .await
            .assert_redirect_to(&request_url);
    }
    assert!(app.store.flows(team, prod).await.unwrap().is_empty());
    // The last approval's message and the decisions say what they were.
    let done = second.get(&request_url).await;
    assert!(
        done.body
            .contains("Recorded your approval, the last one needed: the rollback is applied."),
        "{}",
        done.body
    );
    assert!(
        done.body.contains("<strong>approved</strong>"),
        "{}",
        done.body
    );
    let original = lead.get(&promotion_url).await;
    assert!(
        original.body.contains(&format!(
            "<th>Its rollback</th><td><a href=\"{request_url}\">applied</a>"
        )),
        "{}",
        original.body
    );
    app.stop().await;
}

#[tokio::test]
async fn counts_on_the_pipeline_page_and_dashboard_read_as_words() {
    let app = spawn_app_with(Backend::Sqlite, WebConfig::default()).await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[("orders", r#"{"v":1}"#)]).await;
    let prod = app
        .instance(team, "prod", &[("a", "[]"), ("b", "[]")])
        .await;
    app.env(team, prod, "API_TOKEN", None).await;
    let (pipeline, _) = app.pipeline(team, "checkout", &[dev, prod]).await;
    app.pipeline(team, "solo", &[dev]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let page = lead
        .get(&format!("/teams/{team}/pipelines/{pipeline}"))
        .await;
    page.assert_ok();
    assert!(page.body.contains(" · 1 flow</p>"), "{}", page.body);
    assert!(page.body.contains(" · 2 flows</p>"), "{}", page.body);
    assert!(
        page.body.contains("1 key awaiting a value"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("1 flows") && !page.body.contains("1 keys"));
    let dashboard = lead.get("/").await;
    dashboard.assert_ok();
    assert!(dashboard.body.contains(">2 stages<"), "{}", dashboard.body);
    assert!(dashboard.body.contains(">1 stage<"), "{}", dashboard.body);
}

#[tokio::test]
async fn a_lead_duplicates_an_instance_from_its_page_and_a_viewer_cannot() {
    let app = spawn_app_with(Backend::Sqlite, WebConfig::default()).await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[("orders", r#"{"v":1}"#)]).await;
    let secret = "dev-only-value-51aa";
    app.env(team, dev, "API_TOKEN", Some(secret)).await;
    let page = format!("/teams/{team}/instances/{dev}");
    let viewer = app.member(team, "vic", BuiltinRole::Viewer).await;
    let seen = viewer.get(&page).await;
    seen.assert_ok();
    assert!(
        !seen.body.contains("/duplicate"),
        "a viewer is offered duplicate"
    );
    let refused = viewer
        .post(&format!("{page}/duplicate"), &[("name", "qa")])
        .await;
    assert_eq!(refused.status, 403);

    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let form = lead.get(&page).await;
    assert!(
        form.body.contains("<label for=\"duplicate-name\">"),
        "{}",
        form.body
    );
    let made = lead
        .post(&format!("{page}/duplicate"), &[("name", "qa")])
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let at = made.location.clone().unwrap();
    assert!(
        at.starts_with(&format!("/teams/{team}/instances/")) && at != page,
        "{at}"
    );
    let qa = lead.get(&at).await;
    qa.assert_ok();
    assert!(qa.body.contains("orders") && qa.body.contains("API_TOKEN"));
    assert!(!qa.body.contains(secret));
    // A taken name is refused, with the field named.
    let again = lead
        .post(&format!("{page}/duplicate"), &[("name", "qa")])
        .await;
    assert_eq!(again.status, 409, "{}", again.body);

    // Into a pipeline, in one step: the copy becomes the stage after dev.
    let prod = app.instance(team, "prod", &[]).await;
    let (pipeline, _) = app.pipeline(team, "checkout", &[dev, prod]).await;
    let form = lead.get(&page).await;
    assert!(
        form.body.contains(">checkout (right after dev)</option>"),
        "{}",
        form.body
    );
    lead.post(
        &format!("{page}/duplicate"),
        &[("name", "staging"), ("pipeline", &pipeline.to_string())],
    )
    .await
    .assert_redirect_to(&format!("/teams/{team}/instances/"));
    let order = |p: stagehand_store::Pipeline| -> Vec<String> {
        p.stages
            .iter()
            .map(|s| s.instance_name.to_string())
            .collect()
    };
    assert_eq!(
        order(app.store.pipeline(team, pipeline).await.unwrap()),
        ["dev", "staging", "prod"]
    );
    // Who may edit instances but not pipelines is neither offered it nor
    // allowed it, and nothing is made.
    let (editor, _) = app
        .member_holding(
            team,
            "ed",
            "instance-editor",
            &[Permission::InstanceView, Permission::InstanceEdit],
        )
        .await;
    assert!(!editor.get(&page).await.body.contains("duplicate-pipeline"));
    let before = app.store.instances(team).await.unwrap().len();
    let refused = editor
        .post(
            &format!("{page}/duplicate"),
            &[("name", "sneaky"), ("pipeline", &pipeline.to_string())],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(app.store.instances(team).await.unwrap().len(), before);
}

#[tokio::test]
async fn each_change_says_what_it_did_once_and_never_a_value() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[]).await;
    app.env(team, dev, "API_TOKEN", None).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let page = format!("/teams/{team}/instances/{dev}");

    let saved = lead
        .post(
            &format!("{page}/flows"),
            &[("name", "orders"), ("content", r#"{"v":1}"#)],
        )
        .await;
    assert_eq!(saved.status, 303);
    let set = saved.headers["set-cookie"].to_str().unwrap();
    assert!(
        set.starts_with("stagehand_flash=") && set.contains("HttpOnly"),
        "{set}"
    );
    let next = lead.get(saved.location.as_deref().unwrap()).await;
    assert!(
        next.body
            .contains("<p class=\"flash\" role=\"status\">Saved the flow orders.</p>"),
        "{}",
        next.body
    );
    // Shown once.
    let again = lead.get(saved.location.as_deref().unwrap()).await;
    assert!(!again.body.contains("class=\"flash\""), "{}", again.body);

    // A value set: the message names the key, never the value.
    let secret = "flash-never-shows-9d1";
    let set_value = lead
        .post(
            &format!("{page}/env/API_TOKEN/value"),
            &[("action", "set"), ("value", secret)],
        )
        .await;
    assert_eq!(set_value.status, 303, "{}", set_value.body);
    assert!(
        !set_value.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("flash-never")
    );
    let shown = lead.get(&page).await;
    assert!(
        shown.body.contains("Saved the value of API_TOKEN."),
        "{}",
        shown.body
    );
    assert!(!shown.body.contains(secret));
    // A refused change says why on its own page, and leaves no message.
    let refused = lead
        .post(
            &format!("{page}/flows"),
            &[("name", "orders"), ("content", "{")],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(!lead.get(&page).await.body.contains("class=\"flash\""));

    // What goes is named in the message that says it went.
    let qa = app.instance(team, "qa", &[]).await;
    let scratch = app.instance(team, "scratch", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "checkout", &[dev, qa]).await;
    let admin = app.member(team, "adam", BuiltinRole::Admin).await;
    let admin = &admin;
    let said = |res: Page| async move {
        let next = admin
            .get(res.location.as_deref().expect("a redirect"))
            .await;
        let at = next.body.find("class=\"flash\"").expect("a message");
        next.body[at..at + next.body[at..].find("</p>").unwrap()].to_owned()
    };
    let saved = admin
        .post(
            &format!("/teams/{team}/instances/{qa}/settings"),
            &[("settings", "{\"region\": \"eu\"}")],
        )
        .await;
    assert!(said(saved).await.contains("Saved the settings of qa."));
    let removed = admin
        .post(
            &format!(
                "/teams/{team}/pipelines/{pipeline}/stages/{}/remove",
                stages[1]
            ),
            &[],
        )
        .await;
    assert!(
        said(removed)
            .await
            .contains("Removed the stage qa; the instance is kept.")
    );
    let deleted = admin
        .post(&format!("/teams/{team}/pipelines/{pipeline}/delete"), &[])
        .await;
    assert!(
        said(deleted)
            .await
            .contains("Deleted the pipeline checkout;")
    );
    let deleted = admin
        .post(&format!("/teams/{team}/instances/{scratch}/delete"), &[])
        .await;
    assert!(
        said(deleted)
            .await
            .contains("Deleted the instance scratch with")
    );
    app.token(team, "deploy-bot", "viewer").await;
    let token = app.store.tokens(team).await.unwrap()[0].id;
    let revoked = admin
        .post(&format!("/teams/{team}/tokens/{token}/revoke"), &[])
        .await;
    assert!(
        said(revoked)
            .await
            .contains("Revoked the token deploy-bot:")
    );
    let lena = app.store.members(team).await.unwrap();
    let lena = lena
        .iter()
        .find(|m| m.user.username.as_str() == "lena")
        .unwrap();
    let taken = admin
        .post(
            &format!("/teams/{team}/members/{}/unbind", lena.user.id),
            &[("role", "lead")],
        )
        .await;
    assert!(said(taken).await.contains("Took the role lead from lena."));
    app.stop().await;
}

#[tokio::test]
async fn a_preview_that_changes_nothing_says_so() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[("a", "1")]).await;
    let prod = app.instance(team, "prod", &[("a", "1")]).await;
    let (pipeline, stages) = app.pipeline(team, "p", &[dev, prod]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let preview = lead
        .get(&format!(
            "/teams/{team}/pipelines/{pipeline}/stages/{}/preview",
            stages[0]
        ))
        .await;
    preview.assert_ok();
    assert!(
        preview
            .body
            .contains("Nothing would change:</strong> prod already holds"),
        "{}",
        preview.body
    );
    app.store
        .put_flow(
            team,
            dev,
            FlowName::parse("b").unwrap(),
            stagehand_domain::FlowContent::parse_json("{}").unwrap(),
            None,
            &Actor::system(),
        )
        .await
        .unwrap();
    let changed = lead
        .get(&format!(
            "/teams/{team}/pipelines/{pipeline}/stages/{}/preview",
            stages[0]
        ))
        .await;
    assert!(
        !changed.body.contains("Nothing would change"),
        "{}",
        changed.body
    );
    app.stop().await;
}

/// A lead who asked for a promotion into a protected instance may take the
/// request back: it ends, nothing ships, and the history and the audit log
/// say who withdrew it. Another lead sees no withdraw button, and the
/// requester still cannot approve their own.
#[tokio::test]
async fn a_requester_withdraws_their_own_pending_request() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[("orders", r#"{"v":1}"#)]).await;
    let prod = app.instance(team, "prod", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "p", &[dev, prod]).await;
    app.store
        .set_instance_protection(
            team,
            prod,
            stagehand_domain::Protection::new(1, false).unwrap(),
            &Actor::system(),
        )
        .await
        .unwrap();
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let other = app.member(team, "otto", BuiltinRole::Lead).await;
    let asked = lead
        .post(
            &format!(
                "/teams/{team}/pipelines/{pipeline}/stages/{}/promote",
                stages[0]
            ),
            &[],
        )
        .await;
    let page = asked.location.clone().unwrap();
    let mine = lead.get(&page).await;
    assert!(mine.body.contains("Withdraw the request"), "{}", mine.body);
    assert!(!mine.body.contains("value=\"approve\""), "{}", mine.body);
    let theirs = other.get(&page).await;
    assert!(!theirs.body.contains("Withdraw the request"));
    assert!(theirs.body.contains("value=\"approve\""));

    let decision = format!("{page}/decision");
    assert_eq!(
        lead.post(&decision, &[("decision", "approve")])
            .await
            .status,
        409,
        "the requester still cannot approve"
    );
    let done = lead
        .post(
            &decision,
            &[("decision", "reject"), ("comment", "wrong flow version")],
        )
        .await;
    done.assert_redirect_to(&page);
    let after = lead.get(&page).await;
    assert!(
        after.body.contains("Withdrew your request"),
        "{}",
        after.body
    );
    assert!(
        after.body.contains("withdrew the request"),
        "{}",
        after.body
    );
    // Its status reads as what happened: withdrawn, not rejected.
    assert!(
        after
            .body
            .contains("<span class=\"status rejected\">withdrawn</span></h1>"),
        "{}",
        after.body
    );
    assert!(app.store.flows(team, prod).await.unwrap().is_empty());
    let audit = lead.get(&format!("/teams/{team}/audit")).await;
    assert!(
        audit.body.contains("withdrew their request"),
        "{}",
        audit.body
    );
    app.stop().await;
}

#[tokio::test]
async fn an_empty_team_is_told_to_create_an_instance_before_adding_a_stage() {
    let app = spawn_app_with(Backend::Sqlite, WebConfig::default()).await;
    let team = app.team("payments").await;
    let (pipeline, _) = app.pipeline(team, "checkout", &[]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let page = lead
        .get(&format!("/teams/{team}/pipelines/{pipeline}"))
        .await;
    page.assert_ok();
    assert!(
        page.body.contains("The team has no instance yet."),
        "{}",
        page.body
    );
    assert!(!page.body.contains("already a stage here"), "{}", page.body);
    app.stop().await;
}
