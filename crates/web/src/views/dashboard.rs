//! The dashboard (the user's teams, their pipelines, recent promotions,
//! promotions awaiting the user's approval) and a team's home page.

use super::promotions::{Names, PromotionRow};
use super::{Chrome, render};
use crate::AppState;
use crate::authz::Ctx;
use crate::error::AppResult;
use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use stagehand_domain::{Permission, PromotionStatus};
use stagehand_store::{Instance, Pipeline, PromotionFilter};

struct TeamCard {
    id: String,
    name: String,
    roles: String,
    pipelines: Vec<Pipeline>,
    recent: Vec<PromotionRow>,
    awaiting: Vec<PromotionRow>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    teams: Vec<TeamCard>,
}

pub(crate) async fn view_dashboard_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> AppResult<Response> {
    let me = ctx.session.user.id;
    let mut teams = Vec::new();
    for m in state.store.memberships(me).await? {
        let team = m.team.id;
        let perms = state.store.permissions(team, me).await?;
        let pipelines = state.store.pipelines(team).await?;
        let names = Names::new(&pipelines, &state.store.instances(team).await?);
        let (mut recent, mut awaiting) = (Vec::new(), Vec::new());
        if perms.contains(Permission::PromotionView) {
            let filter = PromotionFilter {
                limit: 5,
                ..Default::default()
            };
            recent = state.store.promotion_history(team, &filter).await?;
        }
        if perms.contains(Permission::PromotionApprove) {
            let filter = PromotionFilter {
                status: Some(PromotionStatus::PendingApproval),
                limit: 20,
                ..Default::default()
            };
            awaiting = state
                .store
                .promotion_history(team, &filter)
                .await?
                .into_iter()
                .filter(|p| p.requested_by_user_id != Some(me))
                .collect();
        }
        let visible = perms.contains(Permission::PipelineView);
        teams.push(TeamCard {
            id: team.to_string(),
            name: m.team.name.to_string(),
            roles: m.roles.join(", "),
            pipelines: if visible { pipelines } else { Vec::new() },
            recent: recent.iter().map(|p| names.row(p)).collect(),
            awaiting: awaiting.iter().map(|p| names.row(p)).collect(),
        });
    }
    render(DashboardPage {
        chrome: Chrome::new(&ctx),
        teams,
    })
}

#[derive(Template)]
#[template(path = "team.html")]
struct TeamPage {
    chrome: Chrome,
    pipelines: Vec<Pipeline>,
    instances: Vec<Instance>,
}

pub(crate) async fn view_team_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> AppResult<Response> {
    let team = ctx.team_id()?;
    let pipelines = state.store.pipelines(team).await?;
    let instances = if ctx.can(Permission::InstanceView) {
        state.store.instances(team).await?
    } else {
        Vec::new()
    };
    render(TeamPage {
        chrome: Chrome::new(&ctx),
        pipelines,
        instances,
    })
}
