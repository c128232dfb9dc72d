//! The instance page's runtime card: connect, disconnect, test, pull.

use super::paths::InstancePath;
use super::{Form, flash, non_blank, when};
use crate::AppState;
use crate::authz::Ctx;
use crate::deploy::{self, ConnectRequest};
use crate::error::{AppError, AppResult};
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use stagehand_runtime::{RuntimeAuth, RuntimeKind};
use stagehand_store::RuntimeLink;

/// What the instance page shows of a connected runtime.
pub(crate) struct RuntimeCard {
    pub kind: &'static str,
    pub url: String,
    pub state: &'static str,
    pub state_label: &'static str,
    pub state_detail: Option<String>,
    pub revision: String,
    pub last_pull: String,
    pub checked: String,
    pub connected: String,
}

impl RuntimeCard {
    pub(crate) fn new(link: RuntimeLink) -> Self {
        Self {
            kind: link
                .kind
                .parse::<RuntimeKind>()
                .map(RuntimeKind::label)
                .unwrap_or("runtime"),
            state: link.state.as_str(),
            state_label: link.state.label(),
            state_detail: link.state_detail,
            revision: link
                .revision
                .map(|r| r.chars().take(12).collect())
                .unwrap_or_else(|| "none yet".into()),
            last_pull: link
                .last_pull_at
                .as_ref()
                .map(when)
                .unwrap_or_else(|| "never".into()),
            checked: link
                .checked_at
                .as_ref()
                .map(when)
                .unwrap_or_else(|| "never".into()),
            connected: format!("{} by {}", when(&link.connected_at), link.connected_by),
            url: link.url,
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ConnectForm {
    kind: String,
    url: String,
    auth_type: String,
    username: Option<String>,
    secret: Option<String>,
}

pub(crate) async fn connect_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<InstancePath>,
    Form(form): Form<ConnectForm>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let kind: RuntimeKind = form
        .kind
        .parse()
        .map_err(|m: String| AppError::invalid("kind", m))?;
    let secret = form.secret.clone().unwrap_or_default();
    let auth = match form.auth_type.as_str() {
        "none" => RuntimeAuth::None,
        "bearer" => RuntimeAuth::Bearer { token: secret },
        "basic" => RuntimeAuth::Basic {
            username: non_blank(&form.username).unwrap_or_default().to_owned(),
            password: secret,
        },
        "api_key" => RuntimeAuth::ApiKey { key: secret },
        _ => {
            return Err(AppError::invalid(
                "auth_type",
                "must be none, bearer, basic or api_key",
            ));
        }
    };
    deploy::connect(
        &state,
        team,
        id,
        ConnectRequest {
            kind,
            url: form.url.clone(),
            auth,
        },
        &ctx.actor(),
    )
    .await?;
    // Look at it at once, so the page says whether the credentials work.
    let _ = deploy::check(&state, team, id, &state.config.runtimes.client).await;
    Ok(flash::done(
        &format!("/teams/{team}/instances/{id}#runtime"),
        "Connected the runtime; its state is below.",
    ))
}

pub(crate) async fn disconnect_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<InstancePath>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    let name = state.store.instance(team, id).await?.name;
    state
        .store
        .disconnect_runtime(team, id, &ctx.actor())
        .await?;
    Ok(flash::done(
        &format!("/teams/{team}/instances/{id}#runtime"),
        &format!(
            "Disconnected {name} from its runtime: Stagehand no longer deploys to it, and its \
             credentials are deleted."
        ),
    ))
}

pub(crate) async fn test_post(
    State(state): State<AppState>,
    Path(path): Path<InstancePath>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    deploy::test_connection(&state, team, id).await?;
    Ok(flash::done(
        &format!("/teams/{team}/instances/{id}#runtime"),
        "The connection works.",
    ))
}

#[derive(Deserialize)]
pub(crate) struct PullForm {
    /// Where to go back to: a page of this team (the preview that offered
    /// the pull), never another site.
    next: Option<String>,
}

pub(crate) async fn pull_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<InstancePath>,
    Form(form): Form<PullForm>,
) -> AppResult<Response> {
    let (team, id) = path.ids()?;
    deploy::pull(&state, team, id, &ctx.actor()).await?;
    let own = format!("/teams/{team}/");
    let back = match non_blank(&form.next) {
        Some(next)
            if next.starts_with(&own)
                && !next.contains("//")
                && !next.contains('\\')
                && next.chars().all(|c| c.is_ascii_graphic()) =>
        {
            next.to_owned()
        }
        _ => format!("/teams/{team}/instances/{id}"),
    };
    Ok(flash::done(
        &back,
        "Pulled the runtime's flows into the instance.",
    ))
}
