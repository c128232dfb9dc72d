//! Bad input on the forms: each answered with a page that names the field
//! and what to fix, and nothing written.

use crate::harness::*;
use stagehand_domain::BuiltinRole;

#[tokio::test]
async fn bad_forms_are_answered_with_what_to_fix_and_write_nothing() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[("orders", "{}")]).await;
    let (pipeline, _) = app.pipeline(team, "p", &[dev]).await;
    let other = app.team("other").await;
    let foreign = app.instance(other, "theirs", &[]).await;
    let admin = app.member(team, "adam", BuiltinRole::Admin).await;
    let audit_before = app.store.audit_events(team, 1000).await.unwrap().len();
    let long = "x".repeat(5000);
    let (foreign_id, dev_id) = (foreign.to_string(), dev.to_string());
    // (path, form fields, expected status, what the page must say)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            format!("/teams/{team}/instances"),
            vec![("name", "")],
            422,
            "name",
        ),
        (
            format!("/teams/{team}/instances"),
            vec![("name", &long)],
            422,
            "name",
        ),
        (format!("/teams/{team}/instances"), vec![], 422, "form"),
        (
            format!("/teams/{team}/instances"),
            vec![("name", "dev")],
            409,
            "already",
        ),
        (
            format!("/teams/{team}/pipelines"),
            vec![("name", "  ")],
            422,
            "name",
        ),
        (
            format!("/teams/{team}/instances/{dev}/flows"),
            vec![("name", "broken"), ("content", "{not json")],
            422,
            "content",
        ),
        (
            format!("/teams/{team}/instances/{dev}/flows"),
            vec![("name", ""), ("content", "{}")],
            422,
            "name",
        ),
        (
            format!("/teams/{team}/instances/{dev}/env"),
            vec![("key", "1-not a key")],
            422,
            "key",
        ),
        (
            format!("/teams/{team}/instances/{dev}/settings"),
            vec![("settings", "[1, 2]")],
            422,
            "settings",
        ),
        (
            format!("/teams/{team}/instances/{dev}/settings"),
            vec![("settings", "{")],
            422,
            "settings",
        ),
        (
            format!("/teams/{team}/pipelines/{pipeline}/stages"),
            vec![("instance", &foreign_id)],
            422,
            "no such instance in this team",
        ),
        (
            format!("/teams/{team}/pipelines/{pipeline}/stages"),
            vec![("instance", "not-an-id")],
            422,
            "instance",
        ),
        (
            format!("/teams/{team}/pipelines/{pipeline}/stages"),
            vec![("instance", &dev_id), ("position", "0")],
            422,
            "position",
        ),
        (
            format!("/teams/{team}/instances/{foreign}/flows"),
            vec![("name", "x"), ("content", "{}")],
            404,
            "not exist",
        ),
        (
            format!("/teams/{team}/instances/{dev}/env/NOPE/value"),
            vec![("action", "set"), ("value", "v")],
            404,
            "not exist",
        ),
        (
            format!("/teams/{team}/pipelines/not-a-uuid/delete"),
            vec![],
            404,
            "not exist",
        ),
    ];
    for (path, fields, status, says) in &cases {
        let page = admin.post(path, fields).await;
        assert_eq!(
            page.status.as_u16(),
            *status,
            "{path} {fields:?}: {}",
            page.body
        );
        assert!(
            page.body.contains(says),
            "{path} {fields:?} should say {says:?}: {}",
            page.body
        );
        assert!(page.body.contains("<title>"), "a page in the site's layout");
    }
    // Nothing was written: the same instances, flows, stages and audit trail.
    assert_eq!(app.store.instances(team).await.unwrap().len(), 1);
    assert_eq!(app.store.flows(team, dev).await.unwrap().len(), 1);
    assert!(app.store.env_vars(team, dev).await.unwrap().is_empty());
    assert_eq!(
        app.store
            .pipeline(team, pipeline)
            .await
            .unwrap()
            .stages
            .len(),
        1
    );
    assert_eq!(
        app.store.audit_events(team, 1000).await.unwrap().len(),
        audit_before
    );
    app.stop().await;
}

#[tokio::test]
async fn another_teams_ids_are_not_found_and_never_named() {
    let app = spawn_app().await;
    let mine = app.team("mine").await;
    let theirs = app.team("theirs").await;
    let secret_name = "their-secret-instance";
    let foreign = app.instance(theirs, secret_name, &[]).await;
    let (their_pipeline, _) = app.pipeline(theirs, "their-pipeline", &[foreign]).await;
    let admin = app.member(mine, "adam", BuiltinRole::Admin).await;
    for path in [
        format!("/teams/{mine}/instances/{foreign}"),
        format!("/teams/{mine}/pipelines/{their_pipeline}"),
        format!("/teams/{theirs}/instances/{foreign}"),
        format!("/teams/{theirs}"),
    ] {
        let page = admin.get(&path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(!page.body.contains(secret_name) && !page.body.contains("their-pipeline"));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let huge = "x".repeat(27 * 1024 * 1024);
    let page = lead
        .post(
            &format!("/teams/{team}/instances/{dev}/flows"),
            &[("name", "big"), ("content", &huge)],
        )
        .await;
    assert_eq!(
        page.status,
        413,
        "{}",
        &page.body[..page.body.len().min(500)]
    );
    assert!(app.store.flows(team, dev).await.unwrap().is_empty());
    // A flow under the body limit but over the 8 MiB flow limit names the rule.
    let big = format!("[\"{}\"]", "y".repeat(9 * 1024 * 1024));
    let page = lead
        .post(
            &format!("/teams/{team}/instances/{dev}/flows"),
            &[("name", "big"), ("content", &big)],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(
        page.body.contains("content"),
        "{}",
        &page.body[..page.body.len().min(500)]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_flow_file_uploads_as_json_or_yaml_and_a_bad_one_names_the_line() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let url = app.url(&format!("/teams/{team}/instances/{dev}/flows/upload"));
    let upload = |file: &'static str, body: &'static str, with_token: bool| {
        let token = lead.csrf.lock().unwrap().clone();
        let mut form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::text(body).file_name(file));
        if with_token {
            form = form.text("csrf_token", token);
        }
        lead.http
            .post(&url)
            .header("accept", "text/html")
            .header("origin", app.url("").trim_end_matches('/').to_owned())
            .multipart(form)
            .send()
    };
    let res = upload("orders.yaml", "id: t1\nnodes:\n  - type: inject\n", true)
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/flows/orders")
    );
    let stored = app
        .store
        .flow(
            team,
            dev,
            &stagehand_domain::FlowName::parse("orders").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        stored.content.to_value(),
        serde_json::json!({"id": "t1", "nodes": [{"type": "inject"}]})
    );
    let res = upload("billing.json", r#"{"id": "t2"}"#, true)
        .await
        .unwrap();
    assert_eq!(res.status(), 303);

    let res = upload("broken.yaml", "a: [1, 2\nb: 3\n", true)
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("not valid YAML") && body.contains("line"),
        "{body}"
    );
    let res = upload("notes.txt", "hello", true).await.unwrap();
    assert_eq!(res.status(), 422);
    let res = upload("sneaky.json", "{}", false).await.unwrap();
    assert_eq!(res.status(), 403, "the upload needs its CSRF token too");
    let names: Vec<String> = app
        .store
        .flows(team, dev)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name.to_string())
        .collect();
    assert_eq!(names, ["billing", "orders"]);
    app.stop().await;
}

#[tokio::test]
async fn bad_stage_and_decision_forms_are_answered_and_change_nothing() {
    let app = spawn_app().await;
    let team = app.team("t").await;
    let dev = app.instance(team, "dev", &[("a", "1")]).await;
    let prod = app.instance(team, "prod", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "p", &[dev, prod]).await;
    let admin = app.member(team, "adam", BuiltinRole::Admin).await;
    let base = format!("/teams/{team}/pipelines/{pipeline}/stages/{}", stages[1]);
    let protection = format!("/teams/{team}/instances/{prod}/protection");
    for (path, fields, field) in [
        (
            protection.clone(),
            vec![("required_approvals", "many")],
            "required_approvals",
        ),
        (
            protection.clone(),
            vec![("required_approvals", "99")],
            "required_approvals",
        ),
        (
            protection.clone(),
            vec![("required_approvals", "-1")],
            "required_approvals",
        ),
        (
            format!("{base}/move"),
            vec![("direction", "up")],
            "direction",
        ),
    ] {
        let page = admin.post(&path, &fields).await;
        assert_eq!(page.status, 422, "{path} {fields:?}");
        assert!(page.body.contains(field), "{path}: {}", page.body);
    }
    let after = app.store.pipeline(team, pipeline).await.unwrap();
    assert_eq!(
        after.stages.iter().map(|s| s.id).collect::<Vec<_>>(),
        stages
    );
    assert!(!after.stages[1].protection.is_protected());

    // A decision on a promotion that is not pending, and a made-up one.
    let promoted = admin
        .post(
            &format!(
                "/teams/{team}/pipelines/{pipeline}/stages/{}/promote",
                stages[0]
            ),
            &[],
        )
        .await;
    let url = promoted.location.unwrap();
    let not_pending = admin
        .post(&format!("{url}/decision"), &[("decision", "approve")])
        .await;
    assert_eq!(not_pending.status, 409);
    assert!(
        not_pending
            .body
            .contains("the promotion is applied: it no longer waits for a decision"),
        "{}",
        not_pending.body
    );
    let made_up = admin
        .post(&format!("{url}/decision"), &[("decision", "maybe")])
        .await;
    assert_eq!(made_up.status, 422);
    // The last stage has nothing to promote into.
    let last = admin.post(&format!("{base}/promote"), &[]).await;
    assert_eq!(last.status, 409);
    assert!(last.body.contains("last stage"));
    app.stop().await;
}

/// A form sent by htmx (boosted, as every page's forms are) gets its error
/// in the form's own slot: the page, the form and what was typed stay, and
/// the field is named for the stylesheet to mark. Without JavaScript, the
/// error is a page of its own.
#[tokio::test]
async fn a_form_error_lands_in_the_form_and_names_the_field() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let path = format!("/teams/{team}/instances/{dev}/flows");
    let token = lead.csrf.lock().unwrap().clone();
    let res = lead
        .http
        .post(format!("{}{path}", lead.base()))
        .header("accept", "text/html")
        .header("origin", lead.base())
        .header("hx-request", "true")
        .header("hx-boosted", "true")
        .form(&[
            ("csrf_token", token.as_str()),
            ("name", "orders"),
            ("content", "{\"steps\": [pasted, not json"),
        ])
        .send()
        .await
        .unwrap();
    let inline = lead.page(res).await;
    assert_eq!(inline.status, 422, "{}", inline.body);
    let header = |name: &str| {
        inline
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("hx-retarget"), "find .form-error");
    assert!(header("hx-reswap").starts_with("innerHTML"));
    assert_eq!(header("hx-push-url"), "false");
    assert!(
        !inline.body.contains("<html"),
        "a fragment: {}",
        inline.body
    );
    assert!(
        inline.body.contains("data-field=\"content\""),
        "{}",
        inline.body
    );
    assert!(inline.body.contains("what you typed is still there"));
    // Named as the form labels it; a typo needs no request id.
    assert!(
        inline.body.contains("<strong>Content:</strong>"),
        "{}",
        inline.body
    );
    assert!(!inline.body.contains("Request id"), "{}", inline.body);

    // The same form without JavaScript: the instance's page again, its
    // new-flow form open and filled in as sent, the field marked.
    let page = lead
        .post(&path, &[("name", "orders"), ("content", "{not json")])
        .await;
    assert_eq!(page.status, 422);
    assert!(page.body.contains("<html"), "{}", page.body);
    assert!(page.headers.get("hx-retarget").is_none());
    assert!(page.body.contains("<details open>"), "{}", page.body);
    assert!(page.body.contains("value=\"orders\""));
    assert!(page.body.contains(">{not json</textarea>"), "{}", page.body);
    assert!(
        page.body
            .contains("aria-describedby=\"flow-content-error\"")
    );
    // From the flow's own page, that page again, with the paste.
    app.store
        .put_flow(
            team,
            dev,
            stagehand_domain::FlowName::parse("orders").unwrap(),
            stagehand_domain::FlowContent::parse_json("[]").unwrap(),
            None,
            &stagehand_store::Actor::system(),
        )
        .await
        .unwrap();
    let edit = lead
        .post(
            &path,
            &[("name", "orders"), ("content", "[1, 2,"), ("form", "edit")],
        )
        .await;
    assert_eq!(edit.status, 422);
    assert!(edit.body.contains(">[1, 2,</textarea>"), "{}", edit.body);
    assert!(edit.body.contains("id=\"content-error\""), "{}", edit.body);
    let saved = app
        .store
        .flow(
            team,
            dev,
            &stagehand_domain::FlowName::parse("orders").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(saved.content.as_json(), "[]", "nothing saved");
    app.stop().await;
}

/// "New flow" on the instance page makes a flow: a name that is taken is
/// refused, naming the field and keeping what was typed, and the flow of
/// that name is left as it was (it is changed on its own page).
#[tokio::test]
async fn new_flow_never_replaces_a_flow_of_the_same_name() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let orders = stagehand_domain::FlowName::parse("orders").unwrap();
    app.store
        .put_flow(
            team,
            dev,
            orders.clone(),
            stagehand_domain::FlowContent::parse_json("[{\"id\": \"kept\"}]").unwrap(),
            None,
            &stagehand_store::Actor::system(),
        )
        .await
        .unwrap();
    let path = format!("/teams/{team}/instances/{dev}/flows");
    let page = lead
        .post(
            &path,
            &[("name", "orders"), ("content", "[]"), ("form", "new")],
        )
        .await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("exists already"), "{}", page.body);
    // The page came back at the form's address: opened again as a page
    // (typed in, or from the history), it leads to the instance page,
    // not to "method not allowed". The API keeps its 405.
    lead.get(&path)
        .await
        .assert_redirect_to(&format!("/teams/{team}/instances/{dev}"));
    assert_eq!(
        lead.get(&format!("/api/v1/teams/{team}/pipelines/x"))
            .await
            .status,
        404
    );
    let api = lead.get(&format!("/api/v1/instances/{dev}/pull")).await;
    assert_eq!(api.status, 405, "{}", api.body);
    assert!(
        page.body.contains("aria-describedby=\"flow-name-error\""),
        "{}",
        page.body
    );
    assert!(page.body.contains(">[]</textarea>"), "{}", page.body);
    let kept = app.store.flow(team, dev, &orders).await.unwrap();
    assert!(kept.content.as_json().contains("kept"), "replaced");
    // A new name is made; from the flow's own page the flow is changed.
    lead.post(
        &path,
        &[("name", "payments"), ("content", "[]"), ("form", "new")],
    )
    .await
    .assert_redirect_to(&format!("{path}/payments"));
    lead.post(
        &path,
        &[("name", "orders"), ("content", "[]"), ("form", "edit")],
    )
    .await
    .assert_redirect_to(&format!("{path}/orders"));
    let changed = app.store.flow(team, dev, &orders).await.unwrap();
    assert_eq!(changed.content.as_json(), "[]");
    app.stop().await;
}

/// A caller's request id is echoed (and logged) only when it is plain: one
/// that could forge fields in a text log is replaced by a fresh one.
#[tokio::test]
async fn only_a_plain_request_id_is_taken_from_the_caller() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    for (sent, kept) in [
        ("proxy-1a2b.3c_4d", true),
        ("<img src=x onerror=alert(1)>", false),
        ("a b status=500", false),
        (&*"x".repeat(129), false),
    ] {
        let res = http
            .get(app.url("/healthz"))
            .header("x-request-id", sent)
            .send()
            .await
            .unwrap();
        let got = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(got == sent, kept, "{sent:?} came back as {got:?}");
        assert!(!got.is_empty());
    }
    app.stop().await;
}

/// Without JavaScript, a form refused for its fields comes back filled in
/// on the error page ("Send it again"): the field marked, what was typed
/// kept, a secret never sent back; sent again, it works.
#[tokio::test]
async fn without_javascript_a_refused_form_comes_back_filled_in() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[]).await;
    let admin = app.member(team, "adam", BuiltinRole::Admin).await;

    // A name taken: 409, the name field named and marked.
    let (pipeline, _) = app.pipeline(team, "checkout", &[dev]).await;
    let duplicate = format!("/teams/{team}/instances/{dev}/duplicate");
    let taken = admin
        .post(
            &duplicate,
            &[("name", "dev"), ("pipeline", &pipeline.to_string())],
        )
        .await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    for expected in [
        "<li data-field=\"name\"><strong>Name:</strong>",
        "<h2>Send it again</h2>",
        &format!("<form method=\"post\" action=\"{duplicate}\">"),
        "name=\"name\" value=\"dev\" aria-invalid=\"true\"",
        &format!("<a href=\"/teams/{team}/instances/{dev}\">Back to the page</a>"),
    ] {
        assert!(taken.body.contains(expected), "{expected}: {}", taken.body);
    }
    assert_eq!(taken.headers["cache-control"], "no-store");
    // What else was sent rides along, hidden; sent again with another
    // name, it makes the copy, in the pipeline as asked.
    let csrf = csrf_of(&taken.body).expect("the form's CSRF token");
    let kept = field_value(&taken.body, "pipeline").expect("the pipeline kept");
    assert_eq!(kept, pipeline.to_string());
    let again = admin
        .post_raw(
            &duplicate,
            &[("csrf_token", &csrf), ("name", "qa"), ("pipeline", &kept)],
            true,
        )
        .await;
    assert_eq!(again.status, 303, "{}", again.body);
    let stages = app.store.pipeline(team, pipeline).await.unwrap().stages;
    assert_eq!(
        stages
            .iter()
            .map(|s| s.instance_name.as_str())
            .collect::<Vec<_>>(),
        ["dev", "qa"]
    );

    // A secret is never sent back, even to whoever typed it.
    let refused = admin
        .post(
            &format!("/teams/{team}/instances/{dev}/runtime"),
            &[
                ("kind", "node-red"),
                ("url", "not a url"),
                ("auth_type", "bearer"),
                ("secret", "typed-secret-never-echoed"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("<h2>Send it again</h2>"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("except secrets"), "{}", refused.body);
    assert!(!refused.body.contains("typed-secret-never-echoed"));
    app.stop().await;
}
