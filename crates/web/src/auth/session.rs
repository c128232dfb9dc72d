//! Sessions: an opaque random token in an `HttpOnly`, `SameSite=Lax`
//! cookie; the database keeps only its SHA-256, the user, the CSRF token
//! and the expiries, so any replica can serve any request. A login always
//! makes a new token (rotation); logout deletes the row.

use crate::AppState;
use crate::error::AppResult;
use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};
use stagehand_domain::TeamId;
use stagehand_store::{Session, SessionInTeam};

pub const COOKIE: &str = "stagehand_session";

/// Activity is written back at most this often, not on every request.
const TOUCH_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps instead of the token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| Cookie::parse(pair.trim().to_owned()).ok())
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// The live session of the request, if any. An expired session (idle or
/// absolute) is deleted and treated as none.
pub async fn load(state: &AppState, headers: &HeaderMap) -> AppResult<Option<Session>> {
    Ok(load_in_team(state, headers, None).await?.map(|s| s.session))
}

/// [`load`], with the user's membership of `team` read in the same query.
pub async fn load_in_team(
    state: &AppState,
    headers: &HeaderMap,
    team: Option<TeamId>,
) -> AppResult<Option<SessionInTeam>> {
    let Some(token) = cookie_value(headers, COOKIE) else {
        return Ok(None);
    };
    let hash = hash_token(&token);
    let Some(found) = state.store.session_in_team(&hash, team).await? else {
        return Ok(None);
    };
    let session = &found.session;
    let now = Utc::now();
    let idle = chrono::TimeDelta::from_std(state.config.session_idle).unwrap_or(TOUCH_EVERY);
    if session.expires_at <= now || session.last_seen_at + idle <= now || session.user.disabled {
        state.store.delete_session(&hash, None).await?;
        return Ok(None);
    }
    if session.last_seen_at + TOUCH_EVERY.min(idle / 2) <= now {
        state.store.touch_session(&hash).await?;
    }
    Ok(Some(found))
}

/// The session cookie for `token`.
pub fn cookie(state: &AppState, token: String) -> Cookie<'static> {
    Cookie::build((COOKIE, token))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.secure_cookies())
        .build()
}

/// A cookie that tells the browser to forget the session.
pub fn removal(state: &AppState) -> Cookie<'static> {
    let mut c = cookie(state, String::new());
    c.make_removal();
    c
}
