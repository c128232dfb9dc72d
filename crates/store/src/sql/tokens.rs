//! API tokens: created with a role in one team, found by the hash of their
//! secret, revocable, with their last use recorded. A token never holds
//! more than the person behind it: its role is capped by its creator's
//! permissions when it is made, a user's token is made only by that user,
//! and on every request it holds only what its owner still holds in the
//! team (nothing at all once the owner has left it or is disabled).

use super::{Conn, audit, identity, now, stored};
use crate::error::{Conflict, StoreError, StoreResult};
use crate::model::{Actor, ApiToken, NewApiToken, NewAuditEvent, Team, User};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use stagehand_domain::{
    AuditEventKind, Name, PermissionSet, TeamId, TokenId, UserId, ValidationError,
};
use uuid::Uuid;

/// Last use is written back at most this often.
const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(60);

const COLUMNS: &str = "id, team_id, name, user_id, role, created_by, created_by_user_id,
    expires_at, last_used_at, revoked_at, created_at";

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    team_id: Uuid,
    name: String,
    user_id: Option<Uuid>,
    role: String,
    created_by: String,
    created_by_user_id: Option<Uuid>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl Row {
    fn into_token(self) -> StoreResult<ApiToken> {
        Ok(ApiToken {
            id: TokenId(self.id),
            team_id: TeamId(self.team_id),
            name: stored(Name::from_stored(&self.name))?,
            user_id: self.user_id.map(UserId),
            role: self.role,
            created_by: self.created_by,
            created_by_user_id: self.created_by_user_id.map(UserId),
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
            created_at: self.created_at,
        })
    }
}

pub(super) async fn create(
    conn: &mut Conn,
    new: NewApiToken,
    actor: &Actor,
) -> StoreResult<ApiToken> {
    identity::team(conn, new.team).await?;
    let Some(granted) = identity::role_permissions(conn, new.team, &new.role).await? else {
        return Err(ValidationError::new(
            "role",
            format!("this team has no role named {:?}", new.role),
        )
        .into());
    };
    let beyond = actor.authority.lacks(&granted);
    if !beyond.is_empty() {
        return Err(StoreError::BeyondGrantor(beyond));
    }
    let owner = match new.user_id {
        None => None,
        // A token that acts for a person (approves in their name, counts
        // as them) is made by that person, for themselves; nobody else,
        // not even Stagehand itself, makes one for them.
        Some(user) if actor.user_id != Some(user) => {
            return Err(StoreError::Forbidden(
                "a token that acts for a user can be created only by that user; \
                 create a service account instead",
            ));
        }
        Some(user) => {
            if identity::permissions(conn, new.team, user)
                .await?
                .is_empty()
            {
                return Err(
                    ValidationError::new("user", "the user is not a member of this team").into(),
                );
            }
            Some(identity::user(conn, user).await?)
        }
    };
    let at = now();
    if new.expires_at.is_some_and(|e| e <= at) {
        return Err(ValidationError::new("expires_at", "must be in the future").into());
    }
    let token: Row = sqlx::query_as(&format!(
        "insert into api_tokens (id, team_id, name, secret_hash, user_id, role, created_by,
            created_by_user_id, expires_at, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) returning {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(new.team.0)
    .bind(new.name.as_str())
    .bind(&new.secret_hash)
    .bind(new.user_id.map(|u| u.0))
    .bind(&new.role)
    .bind(&actor.name)
    .bind(actor.user_id.map(|u| u.0))
    .bind(new.expires_at)
    .bind(at)
    .fetch_one(&mut *conn)
    .await?;
    let token = token.into_token()?;
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(new.team),
            actor,
            kind: AuditEventKind::TokenCreated,
            subject: Some(token.id.0),
            details: json!({
                "name": token.name,
                "role": token.role,
                "expires_at": token.expires_at,
                // `null`: a service account of the team.
                "owner": owner.as_ref().map(|u| u.username.as_str()),
                "owner_id": token.user_id,
                "created_by": token.created_by,
                "created_by_user_id": token.created_by_user_id,
            }),
        },
    )
    .await?;
    Ok(token)
}

/// A token with its team and its custom role's permissions, read in one
/// query: authentication runs on every API request.
#[derive(sqlx::FromRow)]
struct AuthRow {
    #[sqlx(flatten)]
    token: Row,
    team_name: String,
    team_created_at: DateTime<Utc>,
    /// `None` unless the role is a custom role of the team.
    role_permissions: Option<sqlx::types::Json<Vec<String>>>,
}

/// The live token with this secret hash, its team, and what it may do
/// there: its role's permissions, and for a user's token only those its
/// owner still holds in the team. `None` if unknown, revoked or expired,
/// and for a user's token whose owner is disabled, has left the team, or
/// did not create it (made before that was refused).
pub(super) async fn authenticate(
    conn: &mut Conn,
    secret_hash: &str,
) -> StoreResult<Option<(ApiToken, Team, PermissionSet)>> {
    let row: Option<AuthRow> = sqlx::query_as(
        "select t.id, t.team_id, t.name, t.user_id, t.role, t.created_by,
            t.created_by_user_id, t.expires_at, t.last_used_at, t.revoked_at, t.created_at,
            tm.name as team_name, tm.created_at as team_created_at,
            r.permissions as role_permissions
         from api_tokens t
         join teams tm on tm.id = t.team_id
         left join roles r on r.team_id = t.team_id and r.name = t.role
         where t.secret_hash = $1",
    )
    .bind(secret_hash)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let token = row.token.into_token()?;
    let team = identity::TeamRow {
        id: token.team_id.0,
        name: row.team_name,
        created_at: row.team_created_at,
    }
    .into_team()?;
    let mut permissions = identity::joined_role_permissions(
        &token.role,
        row.role_permissions.as_ref().map(|p| p.0.as_slice()),
    )?
    .unwrap_or_default();
    let at = now();
    if !token.is_live(at) {
        return Ok(None);
    }
    if let Some(user) = token.user_id {
        if token.created_by_user_id != Some(user) || identity::user(conn, user).await?.disabled {
            return Ok(None);
        }
        let held = identity::permissions(conn, token.team_id, user).await?;
        if held.is_empty() {
            // The owner left the team: their token goes with them.
            return Ok(None);
        }
        permissions = permissions.intersection(&held);
    }
    let mut token = token;
    if token.last_used_at.is_none_or(|t| t + TOUCH_EVERY <= at) {
        sqlx::query("update api_tokens set last_used_at = $2 where id = $1")
            .bind(token.id.0)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        token.last_used_at = Some(at);
    }
    Ok(Some((token, team, permissions)))
}

/// Whether a token authenticated a moment ago may be used again without
/// reading it: still live, and its last use recent enough not to need
/// writing back.
pub(super) fn still_good(token: &ApiToken, at: DateTime<Utc>) -> bool {
    token.is_live(at) && token.last_used_at.is_some_and(|t| t + TOUCH_EVERY > at)
}

pub(super) async fn list(conn: &mut Conn, team: TeamId) -> StoreResult<Vec<ApiToken>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from api_tokens where team_id = $1 order by name"
    ))
    .bind(team.0)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Row::into_token).collect()
}

pub(super) async fn revoke(
    conn: &mut Conn,
    team: TeamId,
    id: TokenId,
    actor: &Actor,
) -> StoreResult<ApiToken> {
    let at = now();
    let row: Option<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from api_tokens where id = $1 and team_id = $2"
    ))
    .bind(id.0)
    .bind(team.0)
    .fetch_optional(&mut *conn)
    .await?;
    let token = row.ok_or(StoreError::NotFound("token"))?.into_token()?;
    if !token.is_live(at) {
        return Err(Conflict::TokenNotLive(token.name.to_string()).into());
    }
    // Taking a token away is taking away what it holds: only from one
    // holding no more than the actor does (as with roles), unless it is
    // the actor's own.
    if token.user_id.is_none() || token.user_id != actor.user_id {
        let held = identity::role_permissions(conn, team, &token.role)
            .await?
            .unwrap_or_else(PermissionSet::empty);
        let beyond = actor.authority.lacks(&held);
        if !beyond.is_empty() {
            return Err(StoreError::BeyondGrantor(beyond));
        }
    }
    let row: Option<Row> = sqlx::query_as(&format!(
        "update api_tokens set revoked_at = $3
         where id = $1 and team_id = $2 and revoked_at is null returning {COLUMNS}"
    ))
    .bind(id.0)
    .bind(team.0)
    .bind(at)
    .fetch_optional(&mut *conn)
    .await?;
    let token = row
        .ok_or_else(|| Conflict::TokenNotLive(token.name.to_string()))?
        .into_token()?;
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor,
            kind: AuditEventKind::TokenRevoked,
            subject: Some(id.0),
            details: json!({ "name": token.name }),
        },
    )
    .await?;
    Ok(token)
}

/// Revokes every live token `owner` owns, in every team, each audited in
/// its team with the reason.
pub(super) async fn revoke_all_owned_by(
    conn: &mut Conn,
    owner: &User,
    reason: &str,
    actor: &Actor,
) -> StoreResult<()> {
    let at = now();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "update api_tokens set revoked_at = $2
         where user_id = $1 and revoked_at is null and (expires_at is null or expires_at > $2)
         returning {COLUMNS}"
    ))
    .bind(owner.id.0)
    .bind(at)
    .fetch_all(&mut *conn)
    .await?;
    for token in rows {
        let token = token.into_token()?;
        audit::record(
            conn,
            NewAuditEvent {
                team: Some(token.team_id),
                actor,
                kind: AuditEventKind::TokenRevoked,
                subject: Some(token.id.0),
                details: json!({
                    "name": token.name,
                    "owner": owner.username,
                    "reason": reason,
                }),
            },
        )
        .await?;
    }
    Ok(())
}
