//! Undoing an applied promotion (a rollback), seen before it is done: what
//! it will change in the target now, including what changed there since
//! the promotion. The button on the promotion page leads here; the undo
//! itself is `promotions::rollback_post`.

use super::paths::PromotionPath;
use super::promotions::{Names, PromotionRow, Ships, what_ships};
use super::{Chrome, render, see_other};
use crate::AppState;
use crate::authz::Ctx;
use crate::error::AppResult;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use stagehand_domain::{FlowName, Permission, PromotionPlan, PromotionStatus};
use stagehand_store::Promotion;
use std::collections::BTreeSet;

#[derive(Template)]
#[template(path = "rollback.html")]
struct UndoPage {
    chrome: Chrome,
    row: PromotionRow,
    promotion: Promotion,
    /// "this promotion", "this rollback" or "this restore".
    what: &'static str,
    ships: Ships,
    /// Flows the undo takes back that the promotion did not bring: changed
    /// in the target since.
    since: Vec<String>,
    required_approvals: u32,
    /// The target's version this preview shows: the undo is refused if it
    /// changed before the confirmation.
    target_version: i64,
}

/// What the page calls the promotion it undoes.
pub(crate) fn what_is_undone(p: &Promotion) -> &'static str {
    if p.rollback_of.is_some() {
        "this rollback"
    } else if p.is_restore() {
        "this restore"
    } else {
        "this promotion"
    }
}

/// Flows an undo touches beyond reversing what the promotion did: it
/// removes what the promotion added, changes back what it changed and adds
/// back what it removed; anything else was changed in the target since.
fn changed_since(promotion: &PromotionPlan, undo: &PromotionPlan) -> Vec<String> {
    fn beyond<'a>(
        undone: impl Iterator<Item = &'a FlowName>,
        done: impl Iterator<Item = &'a FlowName>,
    ) -> impl Iterator<Item = String> {
        let done: BTreeSet<&FlowName> = done.collect();
        undone
            .filter(move |n| !done.contains(n))
            .map(ToString::to_string)
    }
    let mut since: Vec<String> = beyond(
        undo.flows_removed.iter().map(|f| &f.name),
        promotion.flows_added.iter().map(|f| &f.name),
    )
    .chain(beyond(
        undo.flows_changed.iter().map(|f| &f.name),
        promotion.flows_changed.iter().map(|f| &f.name),
    ))
    .chain(beyond(
        undo.flows_added.iter().map(|f| &f.name),
        promotion.flows_removed.iter().map(|f| &f.name),
    ))
    .collect();
    since.sort();
    since
}

pub(crate) async fn view_undo_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<PromotionPath>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let promotion = state.store.promotion(team, id).await?;
    // Only an applied promotion can be undone: its page says what it is.
    if promotion.status != PromotionStatus::Applied {
        return Ok(see_other(&format!("/teams/{team}/promotions/{id}")));
    }
    // A request to undo it already waits: that is where to go.
    if let Some(waiting) = state
        .store
        .rollbacks_of(team, id)
        .await?
        .into_iter()
        .find(|r| r.status == PromotionStatus::PendingApproval)
    {
        return Ok(see_other(&format!(
            "/teams/{team}/promotions/{}",
            waiting.id
        )));
    }
    let target = state
        .store
        .instance(team, promotion.target_instance_id)
        .await?;
    let pipelines = state.store.pipelines(team).await?;
    let names = Names::new(&pipelines, &state.store.instances(team).await?);
    let ships = what_ships(
        &state,
        team,
        &promotion,
        target.name.as_str(),
        ctx.can(Permission::InstanceView),
        true,
    )
    .await?;
    render(UndoPage {
        chrome: Chrome::new(&ctx),
        row: names.row(&promotion),
        what: what_is_undone(&promotion),
        since: changed_since(&promotion.plan, &ships.plan),
        required_approvals: target.protection.required_approvals,
        target_version: target.version,
        ships,
        promotion,
    })
}
