//! Administration: the platform administrator's users and teams, and a
//! team admin's members, role bindings and custom roles.

use super::paths::parse_id;
use super::{Chrome, Form, flash, non_blank, render};
use crate::AppState;
use crate::auth::password;
use crate::authz::Ctx;
use crate::error::{AppError, AppResult};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use stagehand_domain::{
    BuiltinRole, Name, Permission, PermissionSet, SecretValue, UserId, Username, ValidationError,
};
use stagehand_store::{CustomRole, Member, NewUser, Team, User};

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    chrome: Chrome,
    users: Vec<User>,
    teams: Vec<Team>,
    min_password: usize,
}

pub(crate) async fn view_admin_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> AppResult<Response> {
    render(AdminPage {
        chrome: Chrome::new(&ctx),
        users: state.store.users().await?,
        teams: state.store.teams().await?,
        min_password: password::MIN_PASSWORD_CHARS,
    })
}

#[derive(Deserialize)]
pub(crate) struct NewUserForm {
    username: String,
    password: String,
    /// A checkbox: present when ticked.
    platform_admin: Option<String>,
}

pub(crate) async fn create_user_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(form): Form<NewUserForm>,
) -> AppResult<Response> {
    let mut errors = Vec::new();
    let username = Username::parse(form.username.trim())
        .map_err(|e| errors.push(e.0))
        .ok();
    let secret = SecretValue::new(form.password);
    if let Err(e) = password::check_new_password(&secret) {
        errors.push(e.0);
    }
    let Some(username) = username.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let password_hash = password::hash_password(secret)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    state
        .store
        .create_user(
            NewUser {
                username,
                password_hash,
                is_platform_admin: form.platform_admin.is_some(),
            },
            &ctx.actor(),
        )
        .await?;
    Ok(flash::done("/admin", "Created the user."))
}

#[derive(Deserialize)]
pub(crate) struct UserPath {
    user: String,
}

#[derive(Deserialize)]
pub(crate) struct DisabledForm {
    /// `true` to disable, `false` to enable again.
    disabled: String,
}

pub(crate) async fn set_disabled_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<UserPath>,
    Form(form): Form<DisabledForm>,
) -> AppResult<Response> {
    let user: UserId = parse_id(&path.user, "user")?;
    let disabled = match form.disabled.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(ValidationError::new("disabled", "must be true or false").into()),
    };
    if disabled && user == ctx.session.user.id {
        return Err(ValidationError::new(
            "user",
            "you cannot disable yourself; ask another platform administrator",
        )
        .into());
    }
    let changed = state
        .store
        .set_user_disabled(user, disabled, &ctx.actor())
        .await?;
    let who = changed.username;
    Ok(flash::done(
        "/admin",
        &if disabled {
            format!("Disabled {who}: their sessions and tokens no longer work.")
        } else {
            format!("Enabled {who}.")
        },
    ))
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    password: String,
}

/// Sets a new password for a user; their sessions end.
pub(crate) async fn reset_password_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<UserPath>,
    Form(form): Form<PasswordForm>,
) -> AppResult<Response> {
    let user: UserId = parse_id(&path.user, "user")?;
    let secret = SecretValue::new(form.password);
    password::check_new_password(&secret)?;
    let hash = password::hash_password(secret)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    state.store.set_password(user, &hash, &ctx.actor()).await?;
    Ok(flash::done("/admin", "Set the new password."))
}

#[derive(Deserialize)]
pub(crate) struct NewTeamForm {
    name: String,
}

/// Creates a team and makes its creator the team's admin, so the new team
/// is never an empty room nobody can enter.
pub(crate) async fn create_team_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(form): Form<NewTeamForm>,
) -> AppResult<Response> {
    let name = Name::parse("name", &form.name)?;
    let team = state
        .store
        .create_team_with_admin(name, ctx.session.user.id, &ctx.actor())
        .await?;
    Ok(flash::done(
        &format!("/teams/{}/members", team.id),
        &format!("Created the team {}; you are its admin.", team.name),
    ))
}

struct PermissionChoice {
    name: &'static str,
}

/// The roles (built-in, then the team's custom ones) whose every
/// permission the user holds in the route's team: the ones they may bind
/// or give a token. Only decides what to offer; the store checks again.
pub(crate) async fn grantable_roles(state: &AppState, ctx: &Ctx) -> AppResult<Vec<String>> {
    let held = &ctx.team()?.permissions;
    let custom = state.store.roles(ctx.team_id()?).await?;
    Ok(BuiltinRole::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), r.permissions()))
        .chain(
            custom
                .into_iter()
                .map(|r| (r.name.to_string(), r.permissions)),
        )
        .filter(|(_, granted)| held.lacks(granted).is_empty())
        .map(|(name, _)| name)
        .collect())
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    chrome: Chrome,
    members: Vec<Member>,
    /// The roles the user may bind: those within their own permissions.
    grantable: Vec<String>,
    custom: Vec<CustomRole>,
    /// The permissions a new role may hold: those the user holds.
    all_permissions: Vec<PermissionChoice>,
}

pub(crate) async fn view_members_get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> AppResult<Response> {
    let team = ctx.team_id()?;
    let held = &ctx.team()?.permissions;
    render(MembersPage {
        chrome: Chrome::new(&ctx),
        members: state.store.members(team).await?,
        grantable: grantable_roles(&state, &ctx).await?,
        custom: state.store.roles(team).await?,
        all_permissions: Permission::ALL
            .iter()
            .filter(|p| held.contains(**p))
            .map(|p| PermissionChoice { name: p.as_str() })
            .collect(),
    })
}

#[derive(Deserialize)]
pub(crate) struct BindForm {
    username: String,
    role: String,
}

pub(crate) async fn bind_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(form): Form<BindForm>,
) -> AppResult<Response> {
    let team = ctx.team_id()?;
    let username = Username::parse(form.username.trim())?;
    let user = state
        .store
        .user_credentials(&username)
        .await?
        .ok_or_else(|| ValidationError::new("username", "there is no user with this name"))?
        .user;
    state
        .store
        .bind_role(team, user.id, form.role.trim(), &ctx.actor())
        .await?;
    Ok(flash::done(
        &format!("/teams/{team}/members"),
        &format!("Gave {} the role {}.", user.username, form.role.trim()),
    ))
}

#[derive(Deserialize)]
pub(crate) struct UnbindForm {
    role: String,
}

pub(crate) async fn unbind_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(path): Path<UserPath>,
    Form(form): Form<UnbindForm>,
) -> AppResult<Response> {
    let team = ctx.team_id()?;
    let user: UserId = parse_id(&path.user, "user")?;
    // Only members of this team can be unbound here: anyone else is not
    // found, whatever their id.
    let Some(member) = state
        .store
        .members(team)
        .await?
        .into_iter()
        .find(|m| m.user.id == user)
    else {
        return Err(AppError::NotFound("member"));
    };
    state
        .store
        .unbind_role(team, user, form.role.trim(), &ctx.actor())
        .await?;
    Ok(flash::done(
        &format!("/teams/{team}/members"),
        &format!(
            "Took the role {} from {}.",
            form.role.trim(),
            member.user.username
        ),
    ))
}

/// Creates a custom role from the ticked permissions.
pub(crate) async fn create_role_post(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(fields): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let team = ctx.team_id()?;
    let name = fields
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.clone());
    let name = Name::parse("name", non_blank(&name).unwrap_or(""))?;
    let permissions: PermissionSet = fields
        .iter()
        .filter(|(k, _)| k == "permission")
        .map(|(_, v)| {
            v.parse::<Permission>()
                .map_err(|e| ValidationError::new("permission", e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    state
        .store
        .create_role(team, name.clone(), permissions, &ctx.actor())
        .await?;
    Ok(flash::done(
        &format!("/teams/{team}/members"),
        &format!("Created the role {name}."),
    ))
}
