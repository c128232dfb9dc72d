//! The pipeline page as a lead reads it: what each stage runs, whether it
//! is behind the stage before it, how it got there, what was changed in it
//! since, and what waits for it. Seen by a viewer, without values.

use crate::harness::*;
use stagehand_domain::{BuiltinRole, StageId};

/// One stage's card of a pipeline page.
fn card<'a>(body: &'a str, stage: &StageId) -> &'a str {
    let start = body
        .find(&format!("id=\"stage-{stage}\""))
        .unwrap_or_else(|| panic!("no card for {stage}: {body}"));
    let end = body[start..].find("</li>").unwrap() + start;
    &body[start..end]
}

/// The short state hash a card shows.
fn runs(card: &str) -> &str {
    let at = card.find("runs <code>").unwrap() + "runs <code>".len();
    &card[at..at + 12]
}

#[tokio::test]
async fn the_pipeline_page_shows_what_runs_where_and_what_waits() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[("orders", r#"{"v":1}"#)]).await;
    let qa = app.instance(team, "qa", &[]).await;
    let prod = app.instance(team, "prod", &[]).await;
    let secret = "dev-only-secret-4711";
    app.env(team, dev, "API_TOKEN", Some(secret)).await;
    let (pipeline, stages) = app.pipeline(team, "checkout", &[dev, qa, prod]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let admin = app.member(team, "adam", BuiltinRole::Admin).await;
    let viewer = app.member(team, "vera", BuiltinRole::Viewer).await;
    let page_url = format!("/teams/{team}/pipelines/{pipeline}");
    let base = format!("{page_url}/stages");

    // Nothing promoted yet: qa is behind dev by a flow and a key; prod is
    // the same as qa (both empty).
    let body = viewer.get(&page_url).await.body;
    let qa_card = card(&body, &stages[1]);
    assert!(qa_card.contains("behind dev"), "{qa_card}");
    assert!(qa_card.contains("1 flow added; 1 key to add"), "{qa_card}");
    assert!(
        qa_card.contains("Nothing promoted into it yet"),
        "{qa_card}"
    );
    let prod_card = card(&body, &stages[2]);
    assert!(prod_card.contains("same as qa"), "{prod_card}");
    assert_eq!(runs(qa_card), runs(prod_card));
    assert_ne!(runs(card(&body, &stages[0])), runs(qa_card));
    // Each play button says where it goes (to those who may play).
    assert!(!body.contains("aria-label=\"Play"));
    let body = lead.get(&page_url).await.body;
    assert!(
        body.contains("aria-label=\"Play: preview promoting dev into qa\""),
        "{body}"
    );
    assert!(body.contains("aria-label=\"Play: preview promoting qa into prod\""));

    // dev → qa: qa holds what dev holds, from that promotion, by lena.
    let played = lead
        .post(&format!("{base}/{}/promote", stages[0]), &[])
        .await;
    let into_qa = played.location.clone().unwrap();
    let body = viewer.get(&page_url).await.body;
    let qa_card = card(&body, &stages[1]);
    assert!(qa_card.contains("same as dev"), "{qa_card}");
    assert!(
        qa_card.contains(&format!("href=\"{into_qa}\">dev</a>, played by lena")),
        "{qa_card}"
    );
    assert!(qa_card.contains("1 key awaiting a value"), "{qa_card}");
    assert_eq!(runs(qa_card), runs(card(&body, &stages[0])));
    assert!(card(&body, &stages[2]).contains("behind qa"));

    // A key only qa has: nothing to promote, yet another hash, and the
    // card says why rather than "same as dev".
    app.env(team, qa, "QA_ONLY", Some("x")).await;
    let body = viewer.get(&page_url).await.body;
    let qa_card = card(&body, &stages[1]);
    assert!(qa_card.contains("up to date with dev"), "{qa_card}");
    assert!(qa_card.contains("1 key only here"), "{qa_card}");
    assert!(!qa_card.contains("same as dev"), "{qa_card}");

    // A dev edit puts qa behind by one changed flow.
    lead.post(
        &format!("/teams/{team}/instances/{dev}/flows"),
        &[("name", "orders"), ("content", r#"{"v":2}"#)],
    )
    .await
    .assert_redirect_to("/teams/");
    let body = viewer.get(&page_url).await.body;
    let qa_card = card(&body, &stages[1]);
    assert!(
        qa_card.contains("behind dev</span> 1 flow changed<"),
        "{qa_card}"
    );

    // A rollback of qa says so, and qa is back to empty.
    lead.post(&format!("{into_qa}/rollback"), &[])
        .await
        .assert_redirect_to("/teams/");
    let body = viewer.get(&page_url).await.body;
    let qa_card = card(&body, &stages[1]);
    assert!(
        qa_card.contains("; <strong>rolled back</strong> 20"),
        "{qa_card}"
    );
    // (The key it added stays, without a value: a rollback restores flows.)
    assert!(
        qa_card.contains("behind dev</span> 1 flow added<"),
        "{qa_card}"
    );
    assert!(!qa_card.contains("changed here since"), "{qa_card}");

    // dev → qa → prod, then a direct hotfix in prod: prod says it was
    // changed since its promotion, and differs from qa.
    lead.post(&format!("{base}/{}/promote", stages[0]), &[])
        .await;
    lead.post(&format!("{base}/{}/promote", stages[1]), &[])
        .await;
    let body = viewer.get(&page_url).await.body;
    assert!(card(&body, &stages[2]).contains("same as qa"), "{body}");
    admin
        .post(
            &format!("/teams/{team}/instances/{prod}/flows"),
            &[("name", "orders"), ("content", r#"{"v":"hotfix"}"#)],
        )
        .await
        .assert_redirect_to("/teams/");
    let body = viewer.get(&page_url).await.body;
    let prod_card = card(&body, &stages[2]);
    assert!(
        prod_card.contains("1 flow changed here since"),
        "{prod_card}"
    );
    assert!(
        prod_card.contains("behind qa</span> 1 flow changed<"),
        "{prod_card}"
    );

    // Protected by two approvals: a request into prod with one approval
    // so far says so on prod's card.
    admin
        .post(
            &format!("/teams/{team}/instances/{prod}/protection"),
            &[("required_approvals", "2")],
        )
        .await;
    let requested = lead
        .post(&format!("{base}/{}/promote", stages[1]), &[])
        .await;
    let request = requested.location.clone().unwrap();
    admin
        .post(&format!("{request}/decision"), &[("decision", "approve")])
        .await
        .assert_redirect_to(&request);
    let body = viewer.get(&page_url).await.body;
    let prod_card = card(&body, &stages[2]);
    assert!(
        prod_card.contains("qa → prod by lena, 1 of 2 approvals so far"),
        "{prod_card}"
    );
    assert!(prod_card.contains(&format!("href=\"{request}#approvals\"")));
    // A viewer sees every state, never a value.
    assert!(!body.contains(secret));
    app.stop().await;
}

#[tokio::test]
async fn irreversible_actions_confirm_naming_what_they_destroy_and_sit_apart() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[("orders", "[]")]).await;
    let prod = app.instance(team, "prod", &[]).await;
    app.env(team, dev, "API_TOKEN", Some("v")).await;
    let (pipeline, _) = app.pipeline(team, "checkout", &[dev, prod]).await;
    let admin = app.member(team, "adam", BuiltinRole::Admin).await;

    let page = admin
        .get(&format!("/teams/{team}/instances/{dev}"))
        .await
        .body;
    for expected in [
        "Clear the value of API_TOKEN? It is deleted, and API_TOKEN awaits a new one.",
        ">Yes, clear API_TOKEN</button>",
        ">Yes, remove API_TOKEN</button>",
        "<summary>Save settings…</summary>",
        "Save the settings of dev? They replace the current ones, which are not kept: no snapshot holds settings.",
        ">Yes, save the settings of dev</button>",
        "<label for=\"settings-document\">",
    ] {
        assert!(page.contains(expected), "{expected}: {page}");
    }
    // Deleting sits in its own section, last. dev is a stage: the section
    // says where, and that it must leave first (the store refuses).
    let delete = &page[page
        .find("class=\"card danger-zone\" id=\"delete\"")
        .expect("a delete section")..];
    assert!(
        delete.contains(&format!(
            "dev is a stage of <a href=\"/teams/{team}/pipelines/{pipeline}\">checkout</a>: \
             remove it from that pipeline first, then delete it here."
        )),
        "{delete}"
    );
    assert!(!delete.contains("Yes, delete dev"), "{delete}");
    assert!(
        !page[page.find("id=\"settings\"").unwrap()..page.find("id=\"delete\"").unwrap()]
            .contains("/delete\"")
    );
    // One in no pipeline: the question comes before the button, with or
    // without JavaScript (the first click opens it, the second confirms),
    // and counts what goes.
    let scratch = app
        .instance(team, "scratch", &[("a", "[]"), ("b", "[]")])
        .await;
    app.env(team, scratch, "ONE", Some("v")).await;
    app.env(team, scratch, "TWO", None).await;
    let page = admin
        .get(&format!("/teams/{team}/instances/{scratch}"))
        .await
        .body;
    let delete = &page[page
        .find("class=\"card danger-zone\" id=\"delete\"")
        .expect("a delete section")..];
    assert!(
        delete.contains("<summary>Delete scratch…</summary>"),
        "{delete}"
    );
    assert!(
        delete.contains(
            "<strong>Delete scratch with its 2 flows and 2 env vars (1 with a value)?</strong> \
             This cannot be undone."
        ),
        "{delete}"
    );
    assert!(delete.contains(">Yes, delete scratch</button>"), "{delete}");

    let page = admin
        .get(&format!("/teams/{team}/pipelines/{pipeline}"))
        .await
        .body;
    let add_stage = &page[page.find("<h2>Add a stage</h2>").unwrap()..];
    let add_stage = &add_stage[..add_stage.find("</section>").unwrap()];
    assert!(!add_stage.contains("Delete"), "{add_stage}");
    let delete = &page[page
        .find("class=\"card danger-zone\" id=\"delete\"")
        .expect("a delete section")..];
    assert!(
        delete.contains("<summary>Delete checkout…</summary>"),
        "{delete}"
    );
    assert!(delete.contains(
        "<strong>Delete the pipeline checkout and its stages?</strong> Its instances and promotion history are kept."
    ));
    assert!(
        delete.contains(">Yes, delete checkout</button>"),
        "{delete}"
    );
    // Removing a stage asks first too.
    for expected in [
        "<summary aria-label=\"Remove the stage prod…\">Remove…</summary>",
        "Remove the stage prod from checkout? The instance prod itself is kept, with its flows and history.",
        ">Yes, remove the stage prod</button>",
    ] {
        assert!(page.contains(expected), "{expected}: {page}");
    }

    // So do revoking a token, taking a role and disabling a user: the
    // button opens the question, its own button acts.
    app.token(team, "deploy-bot", "lead").await;
    let tokens = admin.get(&format!("/teams/{team}/tokens")).await.body;
    for expected in [
        "<summary aria-label=\"Revoke deploy-bot…\">Revoke…</summary>",
        "Revoke deploy-bot? Jobs using it stop working at once, and it cannot be brought back.",
        ">Yes, revoke deploy-bot</button>",
    ] {
        assert!(tokens.contains(expected), "{expected}: {tokens}");
    }
    let members = admin.get(&format!("/teams/{team}/members")).await.body;
    for expected in [
        "<summary aria-label=\"Take the role admin from adam…\">",
        "Take the role admin from adam? What it allows stops at once, for their API tokens too. \
         It is their only role here: adam leaves the team.",
        ">Yes, take admin from adam</button>",
    ] {
        assert!(members.contains(expected), "{expected}: {members}");
    }
    app.user("root", true).await;
    let root = Client::new(&app);
    root.login("root", PASSWORD).await;
    let users = root.get("/admin").await.body;
    for expected in [
        "<summary aria-label=\"Disable adam…\">Disable…</summary>",
        "Disable adam? Their sessions end now and their API tokens stop working until they are enabled again.",
        ">Yes, disable adam</button>",
        "<summary aria-label=\"Reset password of adam…\">Reset password…</summary>",
        "A new password ends adam's sessions and revokes every API token they own, in every team.",
    ] {
        assert!(users.contains(expected), "{expected}: {users}");
    }
    for page in [&page, &tokens, &members, &users] {
        assert!(!page.contains("hx-confirm"), "{page}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_refusal_for_keys_without_values_offers_to_add_the_missing_keys_in_one_step() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[("orders", "[]")]).await;
    let prod = app.instance(team, "prod", &[]).await;
    app.env(team, dev, "API_TOKEN", Some("dev-value-never-copied"))
        .await;
    app.env(team, dev, "DB_URL", Some("dev-db")).await;
    app.env(team, prod, "DB_URL", Some("prod-db")).await;
    let (pipeline, stages) = app.pipeline(team, "checkout", &[dev, prod]).await;
    let admin = app.member(team, "adam", BuiltinRole::Admin).await;
    let viewer = app.member(team, "vera", BuiltinRole::Viewer).await;
    admin
        .post(
            &format!("/teams/{team}/instances/{prod}/protection"),
            &[
                ("required_approvals", "0"),
                ("requires_all_env_values", "on"),
            ],
        )
        .await;

    let preview_url = format!(
        "/teams/{team}/pipelines/{pipeline}/stages/{}/preview",
        stages[0]
    );
    let preview = admin.get(&preview_url).await.body;
    let blocked = &preview[preview.find("id=\"blocked\"").expect("refused")..];
    assert!(
        blocked.contains("these would have none: API_TOKEN"),
        "{blocked}"
    );
    assert!(
        blocked.contains(&format!(
            "action=\"/teams/{team}/instances/{prod}/env/missing\""
        )),
        "{blocked}"
    );
    assert!(
        blocked.contains("name=\"keys\" value=\"API_TOKEN\""),
        "{blocked}"
    );
    assert!(
        blocked.contains("Add 1 missing key to prod, without values"),
        "{blocked}"
    );
    // A viewer is neither offered it nor allowed it.
    assert!(!viewer.get(&preview_url).await.body.contains("/env/missing"));
    let refused = viewer
        .post(
            &format!("/teams/{team}/instances/{prod}/env/missing"),
            &[("keys", "API_TOKEN")],
        )
        .await;
    assert_eq!(refused.status, 403);

    // Protected, prod changes directly only at the hands of a protection
    // manager: a lead is told so, not offered a step they cannot take.
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    admin
        .post(
            &format!("/teams/{team}/instances/{prod}/protection"),
            &[
                ("required_approvals", "1"),
                ("requires_all_env_values", "on"),
            ],
        )
        .await;
    let told = lead.get(&preview_url).await.body;
    assert!(!told.contains("/env/missing"), "{told}");
    assert!(
        told.contains("prod is protected: only someone who manages its protection can add keys or set values on it."),
        "{told}"
    );
    admin
        .post(
            &format!("/teams/{team}/instances/{prod}/protection"),
            &[
                ("required_approvals", "0"),
                ("requires_all_env_values", "on"),
            ],
        )
        .await;

    // One step: the key is there, without a value; what prod had stays.
    let added = admin
        .post(
            &format!("/teams/{team}/instances/{prod}/env/missing"),
            &[("keys", "API_TOKEN,DB_URL")],
        )
        .await;
    added.assert_redirect_to(&format!("/teams/{team}/instances/{prod}#env"));
    let page = admin.get(added.location.as_deref().unwrap()).await.body;
    assert!(
        page.contains(
            "Added 1 key without a value: API_TOKEN. Set its value below, then play again."
        ),
        "{page}"
    );
    let keys: Vec<(String, bool)> = app
        .store
        .env_vars(team, prod)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.key.to_string(), v.has_value))
        .collect();
    assert_eq!(
        keys,
        [("API_TOKEN".to_owned(), false), ("DB_URL".to_owned(), true)]
    );
    // A bad key is refused by name, and nothing is added.
    let bad = admin
        .post(
            &format!("/teams/{team}/instances/{prod}/env/missing"),
            &[("keys", "GOOD_ONE,1bad")],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(app.store.env_vars(team, prod).await.unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn the_audit_log_reads_as_sentences_and_filters_by_a_list_of_kinds() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[]).await;
    let admin = app.member(team, "adam", BuiltinRole::Admin).await;
    admin
        .post(
            &format!("/teams/{team}/instances/{dev}/flows"),
            &[("name", "orders"), ("content", "[]")],
        )
        .await;
    let secret = "audit-page-never-shows-3c";
    app.env(team, dev, "API_TOKEN", Some(secret)).await;
    admin
        .post(
            &format!("/teams/{team}/instances/{dev}/env/API_TOKEN/reveal"),
            &[],
        )
        .await;

    let log = admin.get(&format!("/teams/{team}/audit")).await;
    log.assert_ok();
    for expected in [
        "<td>saved the flow orders in dev</td>",
        "<td>revealed the value of API_TOKEN in dev</td>",
        // The filter is a list of kinds, by name.
        "<option value=\"envvar.value_revealed\">Env value revealed</option>",
    ] {
        assert!(log.body.contains(expected), "{expected}: {}", log.body);
    }
    assert!(!log.body.contains(secret));
    let filtered = admin
        .get(&format!("/teams/{team}/audit?kind=envvar.value_revealed"))
        .await;
    assert!(filtered.body.contains("revealed the value of API_TOKEN"));
    assert!(!filtered.body.contains("saved the flow orders"));
    assert!(
        filtered
            .body
            .contains("<option value=\"envvar.value_revealed\" selected>"),
        "{}",
        filtered.body
    );
    app.stop().await;
}

#[tokio::test]
async fn an_arrival_from_a_removed_stage_names_its_instance_and_history_reads_in_words() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let dev = app.instance(team, "dev", &[("orders", r#"{"v":1}"#)]).await;
    let qa = app.instance(team, "qa", &[]).await;
    let prod = app.instance(team, "prod", &[]).await;
    let (pipeline, stages) = app.pipeline(team, "checkout", &[dev, qa, prod]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let viewer = app.member(team, "vera", BuiltinRole::Viewer).await;
    for stage in &stages[..2] {
        let played = lead
            .post(
                &format!("/teams/{team}/pipelines/{pipeline}/stages/{stage}/promote"),
                &[],
            )
            .await;
        assert!(played.location.is_some(), "{}", played.body);
    }
    // qa leaves the pipeline; the instance stays.
    app.store
        .remove_stage(team, pipeline, stages[1], &stagehand_store::Actor::system())
        .await
        .unwrap();
    let page = viewer
        .get(&format!("/teams/{team}/pipelines/{pipeline}"))
        .await;
    let prod_card = card(&page.body, &stages[2]);
    assert!(prod_card.contains(">qa</a>, played by"), "{prod_card}");
    assert!(!page.body.contains("(deleted instance)"), "{}", page.body);
    let _ = (dev, qa, prod);

    // The history says what each promotion changed in words.
    let history = viewer.get(&format!("/teams/{team}/promotions")).await;
    assert!(history.body.contains("1 flow added"), "{}", history.body);
    assert!(!history.body.contains("~0"), "{}", history.body);
}

#[tokio::test]
async fn a_lead_is_told_who_changes_protection() {
    let app = spawn_app().await;
    let team = app.team("payments").await;
    let prod = app.instance(team, "prod", &[]).await;
    let lead = app.member(team, "lena", BuiltinRole::Lead).await;
    let admin = app.member(team, "ada", BuiltinRole::Admin).await;
    let hint = "Protection is changed by those who manage it";
    let page = lead.get(&format!("/teams/{team}/instances/{prod}")).await;
    page.assert_ok();
    assert!(page.body.contains(hint), "{}", page.body);
    let page = admin.get(&format!("/teams/{team}/instances/{prod}")).await;
    assert!(!page.body.contains(hint), "{}", page.body);
    assert!(page.body.contains("Save protection"), "{}", page.body);
    app.stop().await;
}
