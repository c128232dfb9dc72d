//! Users, teams, custom roles and role bindings, and the rules that keep
//! grants honest: nobody creates or binds a role holding a permission they
//! do not hold themselves, and no unbind leaves a team without anyone who
//! can manage its members.

use super::{Conn, audit, lock_team, now, stored, tokens};
use crate::error::{Conflict, StoreError, StoreResult};
use crate::model::{
    Actor, CustomRole, Member, NewAuditEvent, NewUser, Team, User, UserCredentials,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::types::Json;
use stagehand_domain::{
    AuditEventKind, BuiltinRole, Name, Permission, PermissionSet, RoleId, TeamId, UserId, Username,
    ValidationError,
};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub(super) id: Uuid,
    username: String,
    password_hash: String,
    is_platform_admin: bool,
    disabled_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl UserRow {
    pub(super) fn into_credentials(self) -> StoreResult<UserCredentials> {
        Ok(UserCredentials {
            user: User {
                id: UserId(self.id),
                username: stored(Username::parse(&self.username))?,
                is_platform_admin: self.is_platform_admin,
                disabled: self.disabled_at.is_some(),
                created_at: self.created_at,
            },
            password_hash: self.password_hash,
        })
    }
}

const USER_COLUMNS: &str =
    "id, username, password_hash, is_platform_admin, disabled_at, created_at";

pub(super) async fn create_user(conn: &mut Conn, new: NewUser, actor: &Actor) -> StoreResult<User> {
    let row: UserRow = sqlx::query_as(&format!(
        "insert into users (id, username, password_hash, is_platform_admin, created_at)
         values ($1, $2, $3, $4, $5) returning {USER_COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(new.username.as_str())
    .bind(&new.password_hash)
    .bind(new.is_platform_admin)
    .bind(now())
    .fetch_one(&mut *conn)
    .await?;
    let user = row.into_credentials()?.user;
    audit::record(
        conn,
        NewAuditEvent {
            team: None,
            actor,
            kind: AuditEventKind::UserCreated,
            subject: Some(user.id.0),
            details: json!({ "username": user.username, "is_platform_admin": user.is_platform_admin }),
        },
    )
    .await?;
    Ok(user)
}

pub(super) async fn user(conn: &mut Conn, id: UserId) -> StoreResult<User> {
    let row: Option<UserRow> =
        sqlx::query_as(&format!("select {USER_COLUMNS} from users where id = $1"))
            .bind(id.0)
            .fetch_optional(conn)
            .await?;
    Ok(row
        .ok_or(StoreError::NotFound("user"))?
        .into_credentials()?
        .user)
}

pub(super) async fn credentials(
    conn: &mut Conn,
    username: &Username,
) -> StoreResult<Option<UserCredentials>> {
    let row: Option<UserRow> = sqlx::query_as(&format!(
        "select {USER_COLUMNS} from users where username = $1"
    ))
    .bind(username.as_str())
    .fetch_optional(conn)
    .await?;
    row.map(UserRow::into_credentials).transpose()
}

pub(super) async fn count_users(conn: &mut Conn) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("select count(*) from users")
        .fetch_one(conn)
        .await?)
}

#[derive(sqlx::FromRow)]
pub(super) struct TeamRow {
    pub(super) id: Uuid,
    pub(super) name: String,
    pub(super) created_at: DateTime<Utc>,
}

impl TeamRow {
    pub(super) fn into_team(self) -> StoreResult<Team> {
        Ok(Team {
            id: TeamId(self.id),
            name: stored(Name::from_stored(&self.name))?,
            created_at: self.created_at,
        })
    }
}

pub(super) async fn create_team(conn: &mut Conn, name: Name, actor: &Actor) -> StoreResult<Team> {
    let team = sqlx::query_as::<_, TeamRow>(
        "insert into teams (id, name, created_at) values ($1, $2, $3) returning id, name, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(name.as_str())
    .bind(now())
    .fetch_one(&mut *conn)
    .await?
    .into_team()?;
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team.id),
            actor,
            kind: AuditEventKind::TeamCreated,
            subject: Some(team.id.0),
            details: json!({ "name": team.name }),
        },
    )
    .await?;
    Ok(team)
}

pub(super) async fn create_team_with_admin(
    conn: &mut Conn,
    name: Name,
    admin: UserId,
    actor: &Actor,
) -> StoreResult<Team> {
    let team = create_team(&mut *conn, name, actor).await?;
    // The platform administrator's own power, not a grant out of a team
    // role: they hold nothing in a team that does not exist yet.
    let member = self::user(conn, admin).await?;
    insert_binding(conn, team.id, &member, BuiltinRole::Admin.as_str(), actor).await?;
    Ok(team)
}

pub(super) async fn team(conn: &mut Conn, id: TeamId) -> StoreResult<Team> {
    sqlx::query_as::<_, TeamRow>("select id, name, created_at from teams where id = $1")
        .bind(id.0)
        .fetch_optional(conn)
        .await?
        .ok_or(StoreError::NotFound("team"))?
        .into_team()
}

pub(super) async fn teams(conn: &mut Conn) -> StoreResult<Vec<Team>> {
    sqlx::query_as::<_, TeamRow>("select id, name, created_at from teams order by name")
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(TeamRow::into_team)
        .collect()
}

pub(super) async fn create_role(
    conn: &mut Conn,
    team: TeamId,
    name: Name,
    permissions: PermissionSet,
    actor: &Actor,
) -> StoreResult<CustomRole> {
    if BuiltinRole::parse(name.as_str()).is_some() {
        return Err(ValidationError::new("name", "is the name of a built-in role").into());
    }
    if permissions.is_empty() {
        return Err(ValidationError::new("permissions", "tick at least one permission").into());
    }
    // A role is a grant waiting to be bound: nobody defines one beyond
    // what they hold.
    let beyond = actor.authority.lacks(&permissions);
    if !beyond.is_empty() {
        return Err(StoreError::BeyondGrantor(beyond));
    }
    self::team(conn, team).await?;
    let id = RoleId::new();
    sqlx::query("insert into roles (id, team_id, name, permissions, created_at) values ($1, $2, $3, $4, $5)")
        .bind(id.0)
        .bind(team.0)
        .bind(name.as_str())
        .bind(Json(&permissions))
        .bind(now())
        .execute(&mut *conn)
        .await?;
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor,
            kind: AuditEventKind::RoleCreated,
            subject: Some(id.0),
            details: json!({ "name": name, "permissions": permissions }),
        },
    )
    .await?;
    Ok(CustomRole {
        id,
        team_id: team,
        name,
        permissions,
    })
}

/// The permissions of a role name in a team: a built-in role, or a custom
/// role of that team; `None` if there is no such role.
pub(super) async fn role_permissions(
    conn: &mut Conn,
    team: TeamId,
    role: &str,
) -> StoreResult<Option<PermissionSet>> {
    if let Some(builtin) = BuiltinRole::parse(role) {
        return Ok(Some(builtin.permissions()));
    }
    let row: Option<Json<Vec<String>>> =
        sqlx::query_scalar("select permissions from roles where team_id = $1 and name = $2")
            .bind(team.0)
            .bind(role)
            .fetch_optional(conn)
            .await?;
    row.map(|Json(names)| parse_permissions(&names)).transpose()
}

/// A custom role's stored permission names.
pub(super) fn parse_permissions(names: &[String]) -> StoreResult<PermissionSet> {
    names
        .iter()
        .map(|n| {
            n.parse::<Permission>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .collect()
}

/// A role's permissions from a row that has read its custom role's
/// stored permissions (`None`: no such custom role) beside it.
pub(super) fn joined_role_permissions(
    role: &str,
    custom: Option<&[String]>,
) -> StoreResult<Option<PermissionSet>> {
    match BuiltinRole::parse(role) {
        Some(builtin) => Ok(Some(builtin.permissions())),
        None => custom.map(parse_permissions).transpose(),
    }
}

/// Binds `role` to `user`; the actor must hold every permission of the
/// role.
pub(super) async fn bind_role(
    conn: &mut Conn,
    team: TeamId,
    user: UserId,
    role: &str,
    actor: &Actor,
) -> StoreResult<()> {
    self::team(conn, team).await?;
    let member = self::user(conn, user).await?;
    let Some(granted) = role_permissions(conn, team, role).await? else {
        return Err(
            ValidationError::new("role", format!("this team has no role named {role:?}")).into(),
        );
    };
    let beyond = actor.authority.lacks(&granted);
    if !beyond.is_empty() {
        return Err(StoreError::BeyondGrantor(beyond));
    }
    insert_binding(conn, team, &member, role, actor).await
}

/// The binding row and its audit event, with no rule checked: the caller
/// has checked the role exists and that the actor may grant it.
async fn insert_binding(
    conn: &mut Conn,
    team: TeamId,
    member: &User,
    role: &str,
    actor: &Actor,
) -> StoreResult<()> {
    sqlx::query(
        "insert into role_bindings (team_id, user_id, role, created_at) values ($1, $2, $3, $4)",
    )
    .bind(team.0)
    .bind(member.id.0)
    .bind(role)
    .bind(now())
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor,
            kind: AuditEventKind::MemberBound,
            subject: Some(member.id.0),
            details: json!({ "username": member.username, "role": role }),
        },
    )
    .await
}

pub(super) async fn permissions(
    conn: &mut Conn,
    team: TeamId,
    user: UserId,
) -> StoreResult<PermissionSet> {
    let roles: Vec<String> =
        sqlx::query_scalar("select role from role_bindings where team_id = $1 and user_id = $2")
            .bind(team.0)
            .bind(user.0)
            .fetch_all(&mut *conn)
            .await?;
    let mut all = PermissionSet::empty();
    for role in roles {
        // A binding to a custom role that was since deleted grants nothing.
        if let Some(p) = role_permissions(conn, team, &role).await? {
            all.union(&p);
        }
    }
    Ok(all)
}

pub(super) async fn users(conn: &mut Conn) -> StoreResult<Vec<User>> {
    let rows: Vec<UserRow> = sqlx::query_as(&format!(
        "select {USER_COLUMNS} from users order by username"
    ))
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| Ok(r.into_credentials()?.user))
        .collect()
}

pub(super) async fn members(conn: &mut Conn, team: TeamId) -> StoreResult<Vec<Member>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        role: String,
        #[sqlx(flatten)]
        user: UserRow,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "select b.role, u.id, u.username, u.password_hash, u.is_platform_admin, u.disabled_at,
                u.created_at
         from role_bindings b join users u on u.id = b.user_id
         where b.team_id = $1 order by u.username, b.role",
    )
    .bind(team.0)
    .fetch_all(conn)
    .await?;
    let mut out: Vec<Member> = Vec::new();
    for row in rows {
        match out.last_mut() {
            Some(m) if m.user.id.0 == row.user.id => m.roles.push(row.role),
            _ => out.push(Member {
                user: row.user.into_credentials()?.user,
                roles: vec![row.role],
            }),
        }
    }
    Ok(out)
}

pub(super) async fn roles(conn: &mut Conn, team: TeamId) -> StoreResult<Vec<CustomRole>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Uuid,
        name: String,
        permissions: Json<PermissionSet>,
    }
    let rows: Vec<Row> =
        sqlx::query_as("select id, name, permissions from roles where team_id = $1 order by name")
            .bind(team.0)
            .fetch_all(conn)
            .await?;
    rows.into_iter()
        .map(|r| {
            Ok(CustomRole {
                id: RoleId(r.id),
                team_id: team,
                name: stored(Name::from_stored(&r.name))?,
                permissions: r.permissions.0,
            })
        })
        .collect()
}

/// Removes one role from a member. Refused when the member is the last
/// enabled one holding `member.manage` and the role is what gave it to
/// them: a team nobody can manage stays that way.
pub(super) async fn unbind_role(
    conn: &mut Conn,
    team: TeamId,
    user: UserId,
    role: &str,
    actor: &Actor,
) -> StoreResult<()> {
    // Two admins unbinding each other at once must not both succeed.
    if !lock_team(conn, team).await? {
        return Err(StoreError::NotFound("team"));
    }
    let member = self::user(conn, user).await?;
    // Taking a role away is capped like granting it: a member holding only
    // `member.manage` cannot strip an admin of what they cannot give back.
    if let Some(held) = role_permissions(conn, team, role).await? {
        let beyond = actor.authority.lacks(&held);
        if !beyond.is_empty() {
            return Err(StoreError::BeyondGrantor(beyond));
        }
    }
    let managed_before = managers(conn, team).await?;
    let removed =
        sqlx::query("delete from role_bindings where team_id = $1 and user_id = $2 and role = $3")
            .bind(team.0)
            .bind(user.0)
            .bind(role)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    if removed == 0 {
        return Err(StoreError::NotFound("role binding"));
    }
    if managed_before > 0 && managers(conn, team).await? == 0 {
        // Returning the error drops the transaction: the binding stays.
        return Err(Conflict::LastManager.into());
    }
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(team),
            actor,
            kind: AuditEventKind::MemberUnbound,
            subject: Some(user.0),
            details: json!({ "username": member.username, "role": role }),
        },
    )
    .await
}

/// How many enabled members of the team hold `member.manage` (through a
/// built-in or a custom role). A disabled user manages nothing.
async fn managers(conn: &mut Conn, team: TeamId) -> StoreResult<usize> {
    let bindings: Vec<(Uuid, String)> = sqlx::query_as(
        "select b.user_id, b.role from role_bindings b join users u on u.id = b.user_id
         where b.team_id = $1 and u.disabled_at is null",
    )
    .bind(team.0)
    .fetch_all(&mut *conn)
    .await?;
    let mut managing = std::collections::BTreeSet::new();
    for (user, role) in bindings {
        if role_permissions(conn, team, &role)
            .await?
            .is_some_and(|p| p.contains(Permission::MemberManage))
        {
            managing.insert(user);
        }
    }
    Ok(managing.len())
}

/// Disables or re-enables a user. Disabling ends every session of theirs.
pub(super) async fn set_disabled(
    conn: &mut Conn,
    id: UserId,
    disabled: bool,
    actor: &Actor,
) -> StoreResult<User> {
    let target = self::user(conn, id).await?;
    sqlx::query("update users set disabled_at = $2 where id = $1")
        .bind(id.0)
        .bind(disabled.then(now))
        .execute(&mut *conn)
        .await?;
    if disabled {
        end_sessions(conn, id).await?;
    }
    audit::record(
        conn,
        NewAuditEvent {
            team: None,
            actor,
            kind: if disabled {
                AuditEventKind::UserDisabled
            } else {
                AuditEventKind::UserEnabled
            },
            subject: Some(id.0),
            details: json!({ "username": target.username }),
        },
    )
    .await?;
    self::user(conn, id).await
}

/// Replaces a user's password hash, ends every session of theirs and
/// revokes every API token they own: whoever had the old password may
/// have made one.
pub(super) async fn set_password(
    conn: &mut Conn,
    id: UserId,
    password_hash: &str,
    actor: &Actor,
) -> StoreResult<()> {
    let target = self::user(conn, id).await?;
    sqlx::query("update users set password_hash = $2 where id = $1")
        .bind(id.0)
        .bind(password_hash)
        .execute(&mut *conn)
        .await?;
    end_sessions(conn, id).await?;
    tokens::revoke_all_owned_by(conn, &target, "password reset", actor).await?;
    audit::record(
        conn,
        NewAuditEvent {
            team: None,
            actor,
            kind: AuditEventKind::UserPasswordReset,
            subject: Some(id.0),
            details: json!({ "username": target.username }),
        },
    )
    .await
}

async fn end_sessions(conn: &mut Conn, user: UserId) -> StoreResult<()> {
    sqlx::query("delete from sessions where user_id = $1")
        .bind(user.0)
        .execute(conn)
        .await?;
    Ok(())
}
