//! A team's API tokens: list (role, owner, creator, expiry, last use),
//! create (the secret is shown once, on the page the form leads to),
//! revoke. A token is the creator's own ("me": it acts for them and never
//! holds more than they do) or a team service account; nobody makes a
//! token that acts for someone else. The store enforces both.

use super::paths::parse_id;
use super::{Chrome, Form, flash, non_blank, render, when};
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
use stagehand_domain::{Name, TokenId, ValidationError};
use stagehand_store::NewApiToken;

struct TokenLine {
    id: String,
    name: String,
    role: String,
    owner: String,
    created_by: String,
    expires: String,
    last_used: String,
    live: bool,
    /// Revoked, as opposed to expired, when not live.
    revoked: bool,
    /// Whether this user may revoke it: their own, or one holding no more
    /// than they do.
    may_revoke: bool,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    chrome: Chrome,
    tokens: Vec<TokenLine>,
    /// The roles the user may give a token: those within their own.
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
    let roles = super::admin::grantable_roles(state, ctx).await?;
    let me = ctx.session.user.id;
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
            created_by: t.created_by.clone(),
            expires: t
                .expires_at
                .as_ref()
                .map_or_else(|| "never".to_owned(), when),
            last_used: t
                .last_used_at
                .as_ref()
                .map_or_else(|| "never".to_owned(), when),
            live: t.is_live(now),
            revoked: t.revoked_at.is_some(),
            may_revoke: t.user_id == Some(me) || roles.contains(&t.role),
            name: t.name.to_string(),
            role: t.role,
        })
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
    /// `me`: the token acts for the user creating it; `service`: a team
    /// service account.
    owner: String,
    /// The form's old field naming another member to act for: refused
    /// rather than ignored, so nobody silently gets a service account.
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
    if non_blank(&form.user).is_some() {
        return Err(ValidationError::new(
            "user",
            "a token that acts for a user is created by that user; choose me or a service account",
        )
        .into());
    }
    let user_id = match form.owner.trim() {
        "me" => Some(ctx.session.user.id),
        "service" => None,
        _ => {
            return Err(ValidationError::new(
                "owner",
                "must be me (the token acts for you) or service (a team service account)",
            )
            .into());
        }
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
    let revoked = state.store.revoke_token(team, id, &ctx.actor()).await?;
    Ok(flash::done(
        &format!("/teams/{team}/tokens"),
        &format!("Revoked the token {}: it no longer works.", revoked.name),
    ))
}
