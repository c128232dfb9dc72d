//! Web sessions, team memberships and login throttling counters.

use super::identity::{self, TeamRow, UserRow};
use super::{Conn, audit, lock_login_scope, now};
use crate::error::StoreResult;
use crate::model::{
    Actor, LoginAttempt, LoginScope, Membership, NewAuditEvent, NewSession, Session, SessionInTeam,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use stagehand_domain::{AuditEventKind, PermissionSet, TeamId, UserId};
use uuid::Uuid;

/// How long failure rows are kept; longer than any throttle window.
const FAILURE_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(1);

pub(super) async fn create(conn: &mut Conn, new: NewSession, actor: &Actor) -> StoreResult<()> {
    let at = now();
    // Housekeeping rides along with logins: no background job to run.
    sqlx::query("delete from sessions where expires_at <= $1")
        .bind(at)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "insert into sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at)
         values ($1, $2, $3, $4, $4, $5)",
    )
    .bind(&new.token_hash)
    .bind(new.user_id.0)
    .bind(&new.csrf_token)
    .bind(at)
    .bind(new.expires_at)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        NewAuditEvent {
            team: None,
            actor,
            kind: AuditEventKind::UserLoggedIn,
            subject: Some(new.user_id.0),
            details: json!({}),
        },
    )
    .await
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    token_hash: String,
    csrf_token: String,
    session_created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    #[sqlx(flatten)]
    user: UserRow,
}

impl SessionRow {
    fn into_session(self) -> StoreResult<Session> {
        Ok(Session {
            token_hash: self.token_hash,
            csrf_token: self.csrf_token,
            created_at: self.session_created_at,
            last_seen_at: self.last_seen_at,
            expires_at: self.expires_at,
            user: self.user.into_credentials()?.user,
        })
    }
}

const SESSION_SELECT: &str =
    "select s.token_hash, s.csrf_token, s.created_at as session_created_at, s.last_seen_at,
            s.expires_at, u.id, u.username, u.password_hash, u.is_platform_admin,
            u.disabled_at, u.created_at";

/// The session and, when `team` is given and the user holds a role there,
/// the team and the user's permissions in it: one query for built-in roles
/// (every request of the UI asks this), one more per custom role.
pub(super) async fn get_in_team(
    conn: &mut Conn,
    token_hash: &str,
    team: Option<TeamId>,
) -> StoreResult<Option<SessionInTeam>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        session: SessionRow,
        role: Option<String>,
        team_name: Option<String>,
        team_created_at: Option<DateTime<Utc>>,
    }
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SESSION_SELECT}, b.role, t.name as team_name, t.created_at as team_created_at
         from sessions s join users u on u.id = s.user_id
         left join role_bindings b on b.user_id = u.id and b.team_id = $2
         left join teams t on t.id = b.team_id
         where s.token_hash = $1"
    ))
    .bind(token_hash)
    .bind(team.map(|t| t.0))
    .fetch_all(&mut *conn)
    .await?;
    let mut roles = Vec::new();
    let mut team_row = None;
    let mut session = None;
    for r in rows {
        if let (Some(role), Some(name), Some(created_at), Some(id)) =
            (r.role, r.team_name, r.team_created_at, team)
        {
            roles.push(role);
            team_row.get_or_insert(TeamRow {
                id: id.0,
                name,
                created_at,
            });
        }
        session.get_or_insert(r.session);
    }
    let Some(session) = session else {
        return Ok(None);
    };
    let membership = match team_row {
        None => None,
        Some(t) => {
            let team = t.into_team()?;
            let mut permissions = PermissionSet::empty();
            for role in &roles {
                // A binding to a custom role since deleted grants nothing.
                if let Some(p) = identity::role_permissions(conn, team.id, role).await? {
                    permissions.union(&p);
                }
            }
            Some((team, permissions))
        }
    };
    Ok(Some(SessionInTeam {
        session: session.into_session()?,
        membership,
    }))
}

pub(super) async fn touch(conn: &mut Conn, token_hash: &str) -> StoreResult<()> {
    sqlx::query("update sessions set last_seen_at = $1 where token_hash = $2")
        .bind(now())
        .bind(token_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends a session; with an actor, the logout is audited.
pub(super) async fn delete(
    conn: &mut Conn,
    token_hash: &str,
    actor: Option<&Actor>,
) -> StoreResult<()> {
    let user: Option<Uuid> =
        sqlx::query_scalar("delete from sessions where token_hash = $1 returning user_id")
            .bind(token_hash)
            .fetch_optional(&mut *conn)
            .await?;
    if let (Some(user), Some(actor)) = (user, actor) {
        audit::record(
            conn,
            NewAuditEvent {
                team: None,
                actor,
                kind: AuditEventKind::UserLoggedOut,
                subject: Some(user),
                details: json!({}),
            },
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn memberships(conn: &mut Conn, user: UserId) -> StoreResult<Vec<Membership>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        role: String,
        #[sqlx(flatten)]
        team: TeamRow,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "select b.role, t.id, t.name, t.created_at
         from role_bindings b join teams t on t.id = b.team_id
         where b.user_id = $1 order by t.name, b.role",
    )
    .bind(user.0)
    .fetch_all(conn)
    .await?;
    let mut out: Vec<Membership> = Vec::new();
    for row in rows {
        match out.last_mut() {
            Some(m) if m.team.id.0 == row.team.id => m.roles.push(row.role),
            _ => out.push(Membership {
                team: row.team.into_team()?,
                roles: vec![row.role],
            }),
        }
    }
    Ok(out)
}

/// Counts one attempt against every scope, unless a scope already holds its
/// limit of attempts since `since`. Each scope is locked first, in one
/// order (so two attempts sharing scopes cannot deadlock), for the rest of
/// the transaction (`lock_login_scope`: an advisory lock on PostgreSQL, the
/// write transaction itself on SQLite): a concurrent attempt on the same
/// scope waits there, then counts this one's row.
pub(super) async fn reserve_attempt(
    conn: &mut Conn,
    scopes: &[LoginScope],
    since: DateTime<Utc>,
) -> StoreResult<Option<LoginAttempt>> {
    let at = now();
    let mut names: Vec<&str> = scopes.iter().map(|s| s.scope.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for scope in &names {
        lock_login_scope(&mut *conn, scope).await?;
    }
    for scope in scopes {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from login_failures where scope = $1 and created_at > $2",
        )
        .bind(&scope.scope)
        .bind(since)
        .fetch_one(&mut *conn)
        .await?;
        if n >= scope.limit {
            return Ok(None);
        }
    }
    // Housekeeping rides along: failures far older than any window.
    sqlx::query("delete from login_failures where created_at < $1")
        .bind(at - FAILURE_RETENTION)
        .execute(&mut *conn)
        .await?;
    let mut rows = Vec::with_capacity(names.len());
    for scope in names {
        let id = Uuid::new_v4();
        sqlx::query("insert into login_failures (id, scope, created_at) values ($1, $2, $3)")
            .bind(id)
            .bind(scope)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        rows.push(id);
    }
    Ok(Some(LoginAttempt { rows }))
}

/// Audits a failed attempt (it was counted when reserved). The username is
/// recorded only for an account that exists: a name typed at a login form
/// may be a password typed into the wrong field.
pub(super) async fn record_failure(
    conn: &mut Conn,
    _attempt: &LoginAttempt,
    known_username: Option<&str>,
    actor: &Actor,
) -> StoreResult<()> {
    audit::record(
        conn,
        NewAuditEvent {
            team: None,
            actor,
            kind: AuditEventKind::UserLoginFailed,
            subject: None,
            details: json!({ "username": known_username }),
        },
    )
    .await
}

/// Releases a successful attempt and clears the failures of `scope`.
pub(super) async fn clear_failures(
    conn: &mut Conn,
    attempt: &LoginAttempt,
    scope: &str,
) -> StoreResult<()> {
    for id in &attempt.rows {
        sqlx::query("delete from login_failures where id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    // Rows past retention are the reservations' housekeeping: leaving them
    // alone keeps the two deletes off each other's rows.
    sqlx::query("delete from login_failures where scope = $1 and created_at >= $2")
        .bind(scope)
        .bind(now() - FAILURE_RETENTION)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
