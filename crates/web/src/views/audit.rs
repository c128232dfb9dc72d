//! The audit log of a team: every event, filterable, paginated by keyset,
//! exportable. Events carry no secret values by construction (the store
//! never writes one), so the page can show their details as they are.

use super::listing::{
    MAX_EXPORT, PAGE, cursor_filter, export, filters_query, paginate, parse_day, text_filter,
};
use super::{Chrome, non_blank, render, when};
use crate::AppState;
use crate::authz::Ctx;
use crate::error::AppResult;
use crate::extract::Query;
use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use stagehand_domain::{AuditEventId, Permission, TeamId};
use stagehand_store::{AuditEvent, AuditFilter};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditQuery {
    actor: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    format: Option<String>,
}

impl AuditQuery {
    fn filter(&self, limit: i64) -> AppResult<AuditFilter> {
        Ok(AuditFilter {
            actor: text_filter(self.actor.as_deref(), "actor")?,
            kind: text_filter(self.kind.as_deref(), "kind")?,
            since: parse_day(non_blank(&self.since), "since", false)?,
            until: parse_day(non_blank(&self.until), "until", true)?,
            before: cursor_filter(self.cursor.as_deref())?.map(|(at, id)| (at, AuditEventId(id))),
            limit: limit + 1,
        })
    }

    fn filters_query(&self) -> String {
        filters_query(&[
            ("actor", &self.actor),
            ("kind", &self.kind),
            ("since", &self.since),
            ("until", &self.until),
        ])
    }

    /// One page of the filtered events of `team` (or, with `None`, of the
    /// platform: users and logins), and the cursor of the next.
    async fn page(
        &self,
        state: &AppState,
        team: Option<TeamId>,
        size: i64,
    ) -> AppResult<(Vec<AuditEvent>, Option<String>)> {
        let mut found = state.store.audit_history(team, &self.filter(size)?).await?;
        let next = paginate(&mut found, size, |e| (e.created_at, e.id.0));
        Ok((found, next))
    }
}

#[derive(Debug, Clone, serde::Serialize)]
struct EventRow {
    id: String,
    created_at: String,
    actor: String,
    source_ip: String,
    kind: String,
    /// What happened, in words, with names: "saved the flow orders in dev".
    sentence: String,
    details: String,
}

fn row(e: &AuditEvent) -> EventRow {
    EventRow {
        id: e.id.to_string(),
        created_at: when(&e.created_at),
        actor: e.actor.clone(),
        source_ip: e.source_ip.clone().unwrap_or_default(),
        kind: e.kind.clone(),
        sentence: super::audit_words::sentence(&e.kind, &e.details),
        details: e.details.to_string(),
    }
}

/// The event kinds the filter offers: (name, label).
fn kinds() -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<_> = stagehand_domain::AuditEventKind::ALL
        .into_iter()
        .map(|k| (k.as_str(), super::audit_words::label(k)))
        .collect();
    all.sort_by_key(|(_, label)| *label);
    all
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    rows: Vec<EventRow>,
    actor: String,
    kind: String,
    /// Every kind, for the filter list.
    kinds: Vec<(&'static str, &'static str)>,
    since: String,
    until: String,
    filters: String,
    next_cursor: Option<String>,
    can_export: bool,
    /// `/teams/{team}/audit` or `/admin/audit`.
    base: String,
    title: String,
}

/// Whose events a page shows.
struct Scope {
    team: Option<TeamId>,
    base: String,
    title: String,
    can_export: bool,
}

impl Scope {
    fn team(ctx: &Ctx) -> AppResult<Self> {
        let team = ctx.team()?;
        Ok(Self {
            team: Some(team.team.id),
            base: format!("/teams/{}/audit", team.team.id),
            title: format!("Audit log of {}", team.team.name),
            can_export: ctx.can(Permission::AuditExport),
        })
    }

    /// Events of no team: users, logins. Platform administrators only.
    fn platform() -> Self {
        Self {
            team: None,
            base: "/admin/audit".into(),
            title: "Platform audit log".into(),
            can_export: true,
        }
    }
}

pub(crate) async fn view_audit_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<AuditQuery>,
) -> AppResult<Response> {
    show(&state, &ctx, &q, Scope::team(&ctx)?).await
}

pub(crate) async fn view_platform_audit_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<AuditQuery>,
) -> AppResult<Response> {
    show(&state, &ctx, &q, Scope::platform()).await
}

async fn show(state: &AppState, ctx: &Ctx, q: &AuditQuery, scope: Scope) -> AppResult<Response> {
    let (events, next_cursor) = q.page(state, scope.team, PAGE).await?;
    render(AuditPage {
        base: scope.base,
        title: scope.title,
        chrome: Chrome::new(ctx),
        rows: events.iter().map(row).collect(),
        actor: q.actor.clone().unwrap_or_default(),
        kind: q.kind.clone().unwrap_or_default(),
        kinds: kinds(),
        since: q.since.clone().unwrap_or_default(),
        until: q.until.clone().unwrap_or_default(),
        filters: q.filters_query(),
        next_cursor,
        can_export: scope.can_export,
    })
}

pub(crate) async fn export_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<AuditQuery>,
) -> AppResult<Response> {
    export_events(&state, &q, Scope::team(&ctx)?).await
}

pub(crate) async fn platform_export_get(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> AppResult<Response> {
    export_events(&state, &q, Scope::platform()).await
}

async fn export_events(state: &AppState, q: &AuditQuery, scope: Scope) -> AppResult<Response> {
    let (events, next_cursor) = q.page(state, scope.team, MAX_EXPORT).await?;
    let rows: Vec<EventRow> = events.iter().map(row).collect();
    let cells = rows
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.created_at.clone(),
                r.actor.clone(),
                r.source_ip.clone(),
                r.kind.clone(),
                r.details.clone(),
            ]
        })
        .collect();
    export(
        non_blank(&q.format),
        "audit",
        &["id", "created_at", "actor", "source_ip", "kind", "details"],
        cells,
        serde_json::json!({ "events": rows, "next_cursor": next_cursor }),
    )
}
