//! The login and logout pages, and login throttling.
//!
//! The login form, sent before any session exists, carries its own CSRF
//! token, double-submitted in a short-lived cookie. Failed logins are
//! counted in the database per account and per address, each reserved
//! before its password is checked; past the limit, attempts are refused
//! until the window has passed, whether or not the password is right.

use super::{csrf, password, session};
use crate::AppState;
use crate::authz::{Ctx, source_ip};
use crate::error::{AppError, AppResult};
use crate::extract::Query;
use crate::views::{Form, render, see_other};
use askama::Template;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, RequestExt};
use axum_extra::extract::cookie::{Cookie, SameSite};
use chrono::Utc;
use serde::Deserialize;
use stagehand_domain::{SecretValue, Username};
use stagehand_store::{Actor, LoginScope, NewSession};

const LOGIN_CSRF_COOKIE: &str = "stagehand_login_csrf";

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    error: Option<String>,
    username: String,
}

/// Where to go after login: a path on this site, or `/`. Never an open
/// redirect: browsers drop tabs and newlines from a URL and read `\` as
/// `/`, so `/<TAB>/evil.example` is `//evil.example` to them. Anything with a
/// control character or a backslash is refused outright; what remains must
/// resolve against our own origin to a URL of that origin whose path does
/// not start with `//` once dot segments are gone (`/.//evil.example`). The
/// answer is the parsed URL's own serialisation (percent-encoded, so it is
/// always a valid `Location` header).
fn safe_next(next: Option<&str>) -> String {
    const HOME: &str = "/";
    let Some(next) = next else {
        return HOME.to_owned();
    };
    if !next.starts_with('/') || next.chars().any(|c| c.is_control() || c == '\\') {
        return HOME.to_owned();
    }
    let Ok(base) = url::Url::parse("http://stagehand.invalid/") else {
        return HOME.to_owned();
    };
    let Ok(resolved) = base.join(next) else {
        return HOME.to_owned();
    };
    let local = &resolved[url::Position::BeforePath..];
    if resolved.origin() != base.origin() || !local.starts_with('/') || local.starts_with("//") {
        return HOME.to_owned();
    }
    local.to_owned()
}

fn login_page(
    state: &AppState,
    next: String,
    username: String,
    error: Option<String>,
) -> AppResult<Response> {
    let token = session::random_token();
    let cookie = Cookie::build((LOGIN_CSRF_COOKIE, token.clone()))
        .path("/login")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.secure_cookies())
        .build();
    let status = if error.is_some() {
        axum::http::StatusCode::UNAUTHORIZED
    } else {
        axum::http::StatusCode::OK
    };
    let page = render(LoginPage {
        csrf: token,
        next,
        error,
        username,
    })?;
    Ok((status, [(header::SET_COOKIE, cookie.to_string())], page).into_response())
}

pub(crate) async fn view_login_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> AppResult<Response> {
    let next = safe_next(q.next.as_deref());
    if session::load(&state, &headers).await?.is_some() {
        return Ok(see_other(&next));
    }
    login_page(&state, next, String::new(), None)
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    csrf_token: String,
    next: Option<String>,
}

pub(crate) async fn view_login_post(
    State(state): State<AppState>,
    req: Request,
) -> AppResult<Response> {
    let headers = req.headers().clone();
    let ip = source_ip(&req);
    csrf::check_origin(&state, &headers)?;
    let Form(form): Form<LoginForm> = req.extract().await?;
    let cookie_token = session::cookie_value(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if cookie_token.is_empty() || !csrf::tokens_equal(&cookie_token, &form.csrf_token) {
        return Err(AppError::Csrf(
            "The login form expired. Reload the page and log in again.",
        ));
    }
    let next = safe_next(form.next.as_deref());
    let typed_name = form.username.trim().to_owned();
    let refuse = |message: &str| {
        login_page(
            &state,
            next.clone(),
            typed_name.clone(),
            Some(message.to_owned()),
        )
    };

    // Throttle first, so a locked account answers the same for any password.
    // A name that cannot be a username shares one scope (and never reaches
    // the database as typed: it may hold anything, NUL included).
    let account_scope = match Username::parse(&typed_name.to_lowercase()) {
        Ok(name) => format!("user:{name}"),
        Err(_) => "user:(not a username)".to_owned(),
    };
    let t = &state.config.throttle;
    let mut scopes = vec![LoginScope {
        scope: account_scope.clone(),
        limit: t.per_account,
    }];
    if let Some(ip) = &ip {
        scopes.push(LoginScope {
            scope: format!("ip:{}", crate::client_addr::throttle_key(ip)),
            limit: t.per_address,
        });
    }
    // Counted before the password is checked, in one atomic step with the
    // check of the limit: a burst of parallel attempts gets no more
    // password checks than the limit allows. A success releases it.
    let since = Utc::now() - chrono::TimeDelta::from_std(t.window).unwrap_or_default();
    let Some(attempt) = state.store.reserve_login_attempt(&scopes, since).await? else {
        return Err(AppError::TooManyRequests(format!(
            "Too many failed logins. Wait {} minutes, then try again.",
            t.window.as_secs().div_ceil(60)
        )));
    };

    let credentials = match Username::parse(&typed_name) {
        Ok(name) => state.store.user_credentials(&name).await?,
        Err(_) => None,
    };
    let known = credentials.as_ref().map(|c| c.user.username.to_string());
    let hash = credentials.as_ref().map(|c| c.password_hash.clone());
    // Unknown users are checked against a dummy hash: same time either way.
    let ok = password::verify_password(SecretValue::new(form.password), hash).await;
    let user = match credentials {
        Some(c) if ok && !c.user.disabled => c.user,
        _ => {
            let mut actor = Actor::system();
            actor.name = known.clone().unwrap_or_else(|| "unknown".into());
            if let Some(ip) = &ip {
                actor = actor.from_ip(ip.clone());
            }
            state
                .store
                .record_login_failure(&attempt, known.as_deref(), &actor)
                .await?;
            return refuse("Wrong username or password.");
        }
    };

    state
        .store
        .clear_login_failures(&attempt, &account_scope)
        .await?;
    // A fresh token at every login: a token planted before login is useless.
    if let Some(old) = session::cookie_value(&headers, session::COOKIE) {
        state
            .store
            .delete_session(&session::hash_token(&old), None)
            .await?;
    }
    let token = session::random_token();
    let absolute = chrono::TimeDelta::from_std(state.config.session_absolute).unwrap_or_default();
    let mut actor = Actor::user(user.id, &user.username);
    if let Some(ip) = ip {
        actor = actor.from_ip(ip);
    }
    state
        .store
        .create_session(
            NewSession {
                token_hash: session::hash_token(&token),
                user_id: user.id,
                csrf_token: session::random_token(),
                expires_at: Utc::now() + absolute,
            },
            &actor,
        )
        .await?;
    let mut res = see_other(&next);
    let cookie = session::cookie(&state, token).to_string();
    res.headers_mut().append(
        header::SET_COOKIE,
        cookie
            .parse()
            .map_err(|_| AppError::Internal("cookie header".into()))?,
    );
    Ok(res)
}

pub(crate) async fn logout_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> AppResult<Response> {
    state
        .store
        .delete_session(&ctx.session.token_hash, Some(&ctx.actor()))
        .await?;
    let mut res = see_other("/login");
    let removal = session::removal(&state).to_string();
    res.headers_mut().append(
        header::SET_COOKIE,
        removal
            .parse()
            .map_err(|_| AppError::Internal("cookie header".into()))?,
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_only_ever_a_local_path() {
        assert_eq!(safe_next(Some("/teams/x")), "/teams/x");
        assert_eq!(safe_next(Some("/teams/x?a=1#env")), "/teams/x?a=1#env");
        assert_eq!(safe_next(None), "/");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "\t//evil.example",
            "/\r\n/evil.example",
            "/\n/evil.example",
            "/\u{b}/evil.example",
            "/\0",
            "/\u{7f}/evil.example",
            "/\u{85}/evil.example",
            "/.//evil.example",
            "/..//evil.example",
            "/%2e%2e//evil.example",
            "/./%2e//evil.example",
            " /evil.example",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
    }

    #[test]
    fn next_comes_back_percent_encoded() {
        assert_eq!(safe_next(Some("/teams/a b")), "/teams/a%20b");
        assert_eq!(safe_next(Some("/%09/evil.example")), "/%09/evil.example");
        assert_eq!(safe_next(Some("/caf\u{e9}")), "/caf%C3%A9");
    }
}
