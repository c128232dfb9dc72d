//! The promotion history, the auditor's page: filter by pipeline, stage,
//! actor, status and dates; keyset pagination; export of the filtered set.

use super::listing::{
    MAX_EXPORT, PAGE, cursor_filter, export, filters_query, id_filter, paginate, parse_day,
    status_filter, text_filter,
};
use super::promotions::{Names, PromotionRow};
use super::{Chrome, non_blank, render};
use crate::AppState;
use crate::authz::Ctx;
use crate::error::AppResult;
use crate::extract::Query;
use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use stagehand_domain::{Permission, PipelineId, PromotionId, PromotionStatus, StageId};
use stagehand_store::{Promotion, PromotionFilter};

/// The filters, as they appear in the query string.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct HistoryQuery {
    pipeline: Option<String>,
    stage: Option<String>,
    actor: Option<String>,
    status: Option<String>,
    /// `YYYY-MM-DD`, inclusive.
    since: Option<String>,
    /// `YYYY-MM-DD`, inclusive.
    until: Option<String>,
    cursor: Option<String>,
    format: Option<String>,
}

impl HistoryQuery {
    fn filter(&self, limit: i64) -> AppResult<PromotionFilter> {
        Ok(PromotionFilter {
            pipeline: id_filter(self.pipeline.as_deref(), "pipeline")?.map(PipelineId),
            stage: id_filter(self.stage.as_deref(), "stage")?.map(StageId),
            actor: text_filter(self.actor.as_deref(), "actor")?,
            status: status_filter(self.status.as_deref())?,
            since: parse_day(non_blank(&self.since), "since", false)?,
            until: parse_day(non_blank(&self.until), "until", true)?,
            before: cursor_filter(self.cursor.as_deref())?.map(|(at, id)| (at, PromotionId(id))),
            limit: limit + 1,
        })
    }

    fn filters_query(&self) -> String {
        filters_query(&[
            ("pipeline", &self.pipeline),
            ("stage", &self.stage),
            ("actor", &self.actor),
            ("status", &self.status),
            ("since", &self.since),
            ("until", &self.until),
        ])
    }

    /// One page of the filtered history, and the cursor of the next.
    async fn page(
        &self,
        state: &AppState,
        ctx: &Ctx,
        size: i64,
    ) -> AppResult<(Vec<Promotion>, Option<String>)> {
        let mut found = state
            .store
            .promotion_history(ctx.team_id()?, &self.filter(size)?)
            .await?;
        let next = paginate(&mut found, size, |p| (p.created_at, p.id.0));
        Ok((found, next))
    }
}

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    chrome: Chrome,
    rows: Vec<PromotionRow>,
    pipelines: Vec<Choice>,
    stages: Vec<Choice>,
    statuses: Vec<Choice>,
    actor: String,
    since: String,
    until: String,
    filters: String,
    next_cursor: Option<String>,
    can_export: bool,
}

pub(crate) async fn view_history_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<HistoryQuery>,
) -> AppResult<Response> {
    let team = ctx.team_id()?;
    let (found, next_cursor) = q.page(&state, &ctx, PAGE).await?;
    let pipelines = state.store.pipelines(team).await?;
    let names = Names::new(&pipelines, &state.store.instances(team).await?);
    let selected = |v: &Option<String>, id: &str| non_blank(v) == Some(id);
    let stages = pipelines
        .iter()
        .flat_map(|p| p.stages.iter().map(move |s| (p, s)))
        .map(|(p, s)| Choice {
            selected: selected(&q.stage, &s.id.to_string()),
            value: s.id.to_string(),
            label: format!("{} / {}", p.name, s.instance_name),
        })
        .collect();
    let pipeline_choices = pipelines
        .iter()
        .map(|p| Choice {
            selected: selected(&q.pipeline, &p.id.to_string()),
            value: p.id.to_string(),
            label: p.name.to_string(),
        })
        .collect();
    let statuses = PromotionStatus::ALL
        .into_iter()
        .map(|s| Choice {
            selected: selected(&q.status, s.as_str()),
            value: s.as_str().into(),
            label: s.as_str().replace('_', " "),
        })
        .collect();
    render(HistoryPage {
        chrome: Chrome::new(&ctx),
        rows: found.iter().map(|p| names.row(p)).collect(),
        pipelines: pipeline_choices,
        stages,
        statuses,
        actor: q.actor.clone().unwrap_or_default(),
        since: q.since.clone().unwrap_or_default(),
        until: q.until.clone().unwrap_or_default(),
        filters: q.filters_query(),
        next_cursor,
        can_export: ctx.can(Permission::AuditExport),
    })
}

pub(crate) async fn export_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<HistoryQuery>,
) -> AppResult<Response> {
    let team = ctx.team_id()?;
    let (found, next_cursor) = q.page(&state, &ctx, MAX_EXPORT).await?;
    let names = Names::new(
        &state.store.pipelines(team).await?,
        &state.store.instances(team).await?,
    );
    let rows: Vec<PromotionRow> = found.iter().map(|p| names.row(p)).collect();
    let cells = rows
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.created_at.clone(),
                r.pipeline.clone(),
                r.from.clone(),
                r.to.clone(),
                r.status.to_owned(),
                r.requested_by.clone(),
                r.summary.clone(),
            ]
        })
        .collect();
    export(
        non_blank(&q.format),
        "promotions",
        &[
            "id",
            "created_at",
            "pipeline",
            "from",
            "to",
            "status",
            "requested_by",
            "summary",
        ],
        cells,
        serde_json::json!({ "promotions": rows, "next_cursor": next_cursor }),
    )
}
