//! Authorisation: what each route requires ([`Access`], declared next to
//! the route in [`crate::routes`]) and the middleware that enforces it
//! before any handler runs. Handlers receive the result as [`Ctx`] and
//! never re-derive who the user is.

use crate::AppState;
use crate::auth::{csrf, session};
use crate::error::{AppError, AppResult};
use axum::extract::{RawPathParams, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use stagehand_domain::{Permission, PermissionSet, TeamId};
use stagehand_store::{Actor, ApiToken, Session, Team};
use std::net::SocketAddr;

/// What a route requires of the requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, logged in or not (login page, health probes, static files).
    Public,
    /// Any logged-in user.
    Authenticated,
    /// A platform administrator (users and teams across the installation).
    PlatformAdmin,
    /// A member of the `{team}` in the path holding this permission there.
    /// A non-member gets 404, as if the team did not exist.
    Team(Permission),
    /// The JSON API: an API token (`Authorization: Bearer …`) whose role in
    /// its team grants this permission. Ids of another team are not found;
    /// a `{team}` in the path must be the token's.
    Api(Permission),
}

/// The caller of an API route, as established by [`authorize`].
#[derive(Debug, Clone)]
pub struct ApiCtx {
    pub token: ApiToken,
    pub team: Team,
    pub permissions: PermissionSet,
    pub source_ip: Option<String>,
}

impl ApiCtx {
    /// The actor written into audit events: the token's name, holding
    /// what the token holds.
    pub fn actor(&self) -> Actor {
        let actor = self.token.actor().holding(self.permissions.clone());
        match &self.source_ip {
            Some(ip) => actor.from_ip(ip.clone()),
            None => actor,
        }
    }

    pub fn team_id(&self) -> TeamId {
        self.team.id
    }
}

/// The requester, as established by [`authorize`].
#[derive(Debug, Clone)]
pub struct Ctx {
    pub session: Session,
    pub source_ip: Option<String>,
    /// Set on [`Access::Team`] routes.
    pub team: Option<TeamCtx>,
    /// What the change before this page did ("Saved the flow orders.").
    pub flash: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TeamCtx {
    pub team: Team,
    pub permissions: PermissionSet,
}

impl Ctx {
    /// The actor written into audit events, holding the user's permissions
    /// in the route's team (none on routes without a team).
    pub fn actor(&self) -> Actor {
        let mut actor = Actor::user(self.session.user.id, &self.session.user.username);
        if let Some(t) = &self.team {
            actor = actor.holding(t.permissions.clone());
        }
        match &self.source_ip {
            Some(ip) => actor.from_ip(ip.clone()),
            None => actor,
        }
    }

    /// The team of a team route. Only [`Access::Team`] routes call this.
    pub fn team(&self) -> AppResult<&TeamCtx> {
        self.team
            .as_ref()
            .ok_or_else(|| AppError::Internal("team context on a route without a team".into()))
    }

    pub fn team_id(&self) -> AppResult<TeamId> {
        Ok(self.team()?.team.id)
    }

    /// Whether the user may do `p` in the route's team.
    pub fn can(&self, p: Permission) -> bool {
        self.team
            .as_ref()
            .is_some_and(|t| t.permissions.contains(p))
    }
}

/// The client's address: as [`crate::client_addr`] resolved it (through
/// trusted proxies), else the peer's, when the server has connect info.
pub fn source_ip(req: &Request) -> Option<String> {
    let ext = req.extensions();
    ext.get::<crate::client_addr::ClientAddr>()
        .map(|c| c.0)
        .or_else(|| {
            ext.get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
        .map(|ip| ip.to_string())
}

/// Enforces `access` for one route. Runs as that route's `route_layer`.
pub async fn authorize(
    State((state, access)): State<(AppState, Access)>,
    params: RawPathParams,
    req: Request,
    next: Next,
) -> Response {
    match check(&state, access, &params, req).await {
        Ok(mut req) => {
            // The handler reads the body itself; the fields are only for
            // a refusal's page (moved, not copied: a body may be large).
            let sent = req.extensions_mut().remove::<crate::views::SentForm>();
            let mut res = next.run(req).await;
            if let Some(sent) = sent
                && res.status().is_client_error()
            {
                res.extensions_mut().insert(sent);
            }
            res
        }
        Err(e) => e.into_response(),
    }
}

async fn check(
    state: &AppState,
    access: Access,
    params: &RawPathParams,
    mut req: Request,
) -> AppResult<Request> {
    if access == Access::Public {
        return Ok(req);
    }
    if let Access::Api(permission) = access {
        return check_token(state, permission, params, req).await;
    }
    // A team route names its team in the path; a malformed id is a team
    // that does not exist.
    let team_id = match access {
        Access::Team(_) => Some(
            params
                .iter()
                .find(|(k, _)| *k == "team")
                .and_then(|(_, v)| uuid::Uuid::parse_str(v).ok())
                .map(TeamId)
                .ok_or(AppError::NotFound("team"))?,
        ),
        _ => None,
    };
    let mut found = session::load_in_team(state, req.headers(), team_id)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    if !csrf::is_safe(req.method()) {
        req = csrf::check(state, &found.session.csrf_token, req).await?;
        // The body may have come long after the headers (a logout, a
        // disabled user or a lost role in between): what holds once it is
        // read is what the change acts with.
        found = session::load_in_team(state, req.headers(), team_id)
            .await?
            .ok_or(AppError::Unauthenticated)?;
    }
    let session = found.session;
    let team = match access {
        Access::Public | Access::Authenticated | Access::Api(_) => None,
        Access::PlatformAdmin => {
            if !session.user.is_platform_admin {
                return Err(AppError::Forbidden);
            }
            None
        }
        Access::Team(permission) => {
            // Not a member: the team does not exist as far as they know.
            let (team, permissions) = found.membership.ok_or(AppError::NotFound("team"))?;
            if permissions.is_empty() {
                return Err(AppError::NotFound("team"));
            }
            if !permissions.contains(permission) {
                return Err(AppError::Forbidden);
            }
            Some(TeamCtx { team, permissions })
        }
    };
    let source_ip = source_ip(&req);
    let flash = crate::views::flash::read(req.headers());
    req.extensions_mut().insert(Ctx {
        session,
        source_ip,
        team,
        flash,
    });
    Ok(req)
}

/// The bearer token of an API request: its secret is looked up by hash;
/// cookies play no part (so API requests need no CSRF token). A request
/// that changes something is checked again once its body is read: a body
/// may come long after the headers, and a token revoked (or an owner
/// disabled) meanwhile must not act.
async fn check_token(
    state: &AppState,
    permission: Permission,
    params: &RawPathParams,
    mut req: Request,
) -> AppResult<Request> {
    let secret = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(AppError::Unauthenticated)?
        .to_owned();
    let mut held = token_holds(state, permission, params, &secret).await?;
    if !csrf::is_safe(req.method()) {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, crate::config::MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                AppError::PayloadTooLarge("The request body is over the size limit.".into())
            })?;
        req = Request::from_parts(parts, axum::body::Body::from(bytes));
        held = token_holds(state, permission, params, &secret).await?;
    }
    let (token, team, permissions) = held;
    let source_ip = source_ip(&req);
    req.extensions_mut().insert(ApiCtx {
        token,
        team,
        permissions,
        source_ip,
    });
    Ok(req)
}

/// The live token with this secret, its team and what it holds there, if
/// it may use this route.
async fn token_holds(
    state: &AppState,
    permission: Permission,
    params: &RawPathParams,
    secret: &str,
) -> AppResult<(ApiToken, Team, PermissionSet)> {
    let (token, team, permissions) = state
        .store
        .authenticate_token(&crate::auth::tokens::hash_secret(secret))
        .await?
        .ok_or(AppError::Unauthenticated)?;
    // `{team}` in an API path is the team's id or its name (names are
    // unique): either way, only the token's own team exists for it.
    if let Some((_, path_team)) = params.iter().find(|(k, _)| *k == "team")
        && path_team != team.id.to_string()
        && path_team != team.name.as_str()
    {
        return Err(AppError::NotFound("team"));
    }
    if !permissions.contains(permission) {
        return Err(AppError::Forbidden);
    }
    Ok((token, team, permissions))
}
