//! A team's API tokens: list (role, owner, expiry, last use), create (the
//! secret is shown once, on the page the form leads to), revoke.

use super::paths::parse_id;
use super::{Chrome, Form, non_blank, render, see_other, when};
use crate::AppState;
use crate::auth::tokens;
use crate::authz::Ctx;
use crate::error::AppResult;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{TimeDelta, Utc};
use serde::Deserialize;
use stagehand_domain::{BuiltinRole, Name, TokenId, Username, ValidationError};
use stagehand_store::NewApiToken;

struct TokenLine {
    id: String,
    name: String,
    role: String,
    owner: String,
    expires: String,
    last_used: String,
    live: bool,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    chrome: Chrome,
    tokens: Vec<TokenLine>,
    roles: Vec<String>,
    /// Set once, right after creation.
    created: Option<(String, String)>,
}

async fn page(
    state: &AppState,
    ctx: &Ctx,
    created: Option<(String, String)>,
) -> AppResult<Response> {
    let team = ctx.team_id()?;
    let now = Utc::now();
    let users = state.store.members(team).await?;
    let tokens = state
        .store
        .tokens(team)
        .await?
        .into_iter()
        .map(|t| TokenLine {
            id: t.id.to_string(),
            owner: t
                .user_id
                .and_then(|u| users.iter().find(|m| m.user.id == u))
                .map_or_else(
                    || "service account".to_owned(),
                    |m| m.user.username.to_string(),
                ),
            expires: t
                .expires_at
                .as_ref()
                .map_or_else(|| "never".to_owned(), when),
            last_used: t
                .last_used_at
                .as_ref()
                .map_or_else(|| "never".to_owned(), when),
            live: t.is_live(now),
            name: t.name.to_string(),
            role: t.role,
        })
        .collect();
    let roles = BuiltinRole::ALL
        .iter()
        .map(|r| r.as_str().to_owned())
        .chain(
            state
                .store
                .roles(team)
                .await?
                .into_iter()
                .map(|r| r.name.to_string()),
        )
        .collect();
    let page = render(TokensPage {
        chrome: Chrome::new(ctx),
        tokens,
        roles,
        created,
    })?;
    // The page may hold a secret: never cache it.
    Ok(([(header::CACHE_CONTROL, "no-store")], page).into_response())
}

pub(crate) async fn view_tokens_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> AppResult<Response> {
    page(&state, &ctx, None).await
}

#[derive(Deserialize)]
pub(crate) struct NewTokenForm {
    name: String,
    role: String,
    /// A member's username; blank for a team service account.
    user: Option<String>,
    /// Days until it expires; blank for never.
    expires_days: Option<String>,
}

pub(crate) async fn create_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(form): Form<NewTokenForm>,
) -> AppResult<Response> {
    let team = ctx.team_id()?;
    let name = Name::parse("name", &form.name)?;
    let user_id = match non_blank(&form.user) {
        None => None,
        Some(u) => Some(
            state
                .store
                .user_credentials(&Username::parse(u)?)
                .await?
                .ok_or_else(|| ValidationError::new("user", "there is no user with this name"))?
                .user
                .id,
        ),
    };
    let expires_at = match non_blank(&form.expires_days) {
        None => None,
        Some(d) => {
            let days = d
                .parse::<i64>()
                .ok()
                .filter(|d| (1..=3650).contains(d))
                .ok_or_else(|| {
                    ValidationError::new("expires_days", "must be 1 to 3650 days, or blank")
                })?;
            Some(Utc::now() + TimeDelta::days(days))
        }
    };
    let secret = tokens::new_secret();
    let token = state
        .store
        .create_token(
            NewApiToken {
                team,
                name,
                secret_hash: tokens::hash_secret(&secret),
                user_id,
                role: form.role.trim().to_owned(),
                expires_at,
            },
            &ctx.actor(),
        )
        .await?;
    // Shown on this response only, never stored: a reload shows the list.
    page(&state, &ctx, Some((token.name.to_string(), secret))).await
}

#[derive(Deserialize)]
pub(crate) struct TokenPath {
    token: String,
}

pub(crate) async fn revoke_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<TokenPath>,
) -> AppResult<Response> {
    let team = ctx.team_id()?;
    let id: TokenId = parse_id(&path.token, "token")?;
    state.store.revoke_token(team, id, &ctx.actor()).await?;
    Ok(see_other(&format!("/teams/{team}/tokens")))
}
