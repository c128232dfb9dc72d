//! Local administration, straight on the configured database (the same
//! `DATABASE_URL` / `STAGEHAND_DATA_DIR` as `serve`): users, teams, role
//! bindings and API tokens, for bootstrapping and scripts. Every change is
//! audited with the actor `system`.
//!
//! The CLI acts as Stagehand itself: whoever runs it already holds the
//! database and its key, so no team role caps it. It binds any role and
//! creates team service-account tokens with any role. It does not create a
//! token that acts for a user (approving, counting as that person): only
//! the user makes one, for themselves, on the team's API tokens page. And,
//! like everyone, it cannot leave a team with nobody who manages members.

use crate::StorageArgs;
use anyhow::{Context, Result, bail};
use chrono::{TimeDelta, Utc};
use clap::{Args, Subcommand};
use stagehand_domain::{Name, SecretValue, TeamId, UserId, Username};
use stagehand_store::{
    Actor, NewApiToken, NewUser, PurgeReport, RetentionPolicy, Store, StoreError,
};
use stagehand_web::auth::{password, tokens};
use std::io::{BufRead, IsTerminal};

#[derive(Debug, Subcommand)]
pub(crate) enum TeamCommand {
    /// Create a team.
    Create { name: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MemberCommand {
    /// Give a user a role (built-in or custom) in a team.
    Add {
        #[arg(long)]
        team: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a team service-account token and print its secret, once, on
    /// its own line. (A token that acts for a user is created by that user
    /// on the team's API tokens page.)
    Create {
        #[arg(long)]
        team: String,
        /// The role the token acts with in the team.
        #[arg(long)]
        role: String,
        /// The token's name (shown as the actor in the audit log).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, e.g. 30d, 12h or 90m; without it, until revoked.
        #[arg(long)]
        expires: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Walk the tamper-evident audit chains (every team's and the
    /// platform's, or one team's) and report the first broken link.
    Verify {
        #[arg(long)]
        team: Option<String>,
    },
}

pub(crate) async fn audit(storage: &StorageArgs, command: AuditCommand) -> Result<()> {
    let AuditCommand::Verify { team } = command;
    let store = storage.open().await?;
    let chains: Vec<(String, Option<TeamId>)> = match team {
        Some(name) => vec![(name.clone(), Some(team_named(store.as_ref(), &name).await?))],
        None => std::iter::once(("platform".to_owned(), None))
            .chain(
                store
                    .teams()
                    .await?
                    .into_iter()
                    .map(|t| (t.name.to_string(), Some(t.id))),
            )
            .collect(),
    };
    let mut broken = 0;
    for (name, id) in chains {
        let report = store.verify_audit_chain(id).await?;
        match report.first_break {
            None => println!("{name}: intact ({} events)", report.checked),
            Some(b) => {
                broken += 1;
                println!(
                    "{name}: BROKEN at event {}{}: {}",
                    b.seq,
                    b.event_id.map(|i| format!(" ({i})")).unwrap_or_default(),
                    b.reason
                );
            }
        }
    }
    if broken > 0 {
        bail!("{broken} audit chain(s) broken");
    }
    Ok(())
}

/// What `stagehand purge` removes; the flags override the environment.
#[derive(Debug, Args)]
pub(crate) struct PurgeArgs {
    /// Print what would go, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Keep this many snapshots per instance, newest first (and every
    /// snapshot a kept promotion points to). Unset: keep them all.
    #[arg(long, env = "STAGEHAND_RETAIN_SNAPSHOTS")]
    keep_snapshots: Option<u32>,
    /// Purge finished promotions and audit events older than this many
    /// days. Unset: keep them forever.
    #[arg(long, env = "STAGEHAND_RETAIN_DAYS")]
    max_age_days: Option<u32>,
}

impl PurgeArgs {
    pub(crate) fn policy(&self) -> RetentionPolicy {
        policy(self.keep_snapshots, self.max_age_days)
    }
}

/// The retention policy of the flags or variables (`serve` reads the same).
pub(crate) fn policy(keep_snapshots: Option<u32>, max_age_days: Option<u32>) -> RetentionPolicy {
    RetentionPolicy {
        keep_snapshots_per_instance: keep_snapshots,
        max_age: max_age_days.map(|d| std::time::Duration::from_secs(u64::from(d) * 24 * 60 * 60)),
        ..RetentionPolicy::default()
    }
}

pub(crate) async fn rebuild_metrics(storage: &StorageArgs) -> Result<()> {
    let store = storage.open().await?;
    let started = std::time::Instant::now();
    let rows = store.rebuild_delivery().await.map_err(plain)?;
    println!(
        "delivery metrics rebuilt: {rows} stage-days in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub(crate) async fn purge(storage: &StorageArgs, args: PurgeArgs) -> Result<()> {
    let policy = args.policy();
    let store = storage.open().await?;
    let report = store
        .purge(&policy, args.dry_run, &{
            // Named apart from the server's own job in the audit log and
            // the anchors.
            let mut actor = Actor::system();
            actor.name = "stagehand purge (command line)".into();
            actor
        })
        .await
        .map_err(plain)?;
    let teams: Vec<(String, String)> = store
        .teams()
        .await?
        .into_iter()
        .map(|t| (t.id.to_string(), t.name.to_string()))
        .collect();
    print!("{}", describe_purge(&report, &policy, &teams));
    Ok(())
}

fn days(n: u64) -> String {
    if n == 1 {
        "1 day".into()
    } else {
        format!("{n} days")
    }
}

/// The report in plain words, one line per category.
fn describe_purge(r: &PurgeReport, policy: &RetentionPolicy, teams: &[(String, String)]) -> String {
    let age = policy.max_age.map(|d| days(d.as_secs() / 86_400));
    let mut out = String::new();
    out.push_str(if r.dry_run {
        "Dry run: nothing was removed. A purge now would remove:\n"
    } else if r.total() == 0 {
        "Nothing to purge. Checked:\n"
    } else {
        "Purged:\n"
    });
    let mut line = |text: String| {
        out.push_str("  ");
        out.push_str(&text);
        out.push('\n');
    };
    line(format!("{} expired sessions", r.sessions));
    line(format!(
        "{} failed-login records older than {}",
        r.login_failures,
        days(policy.login_failures_max_age.as_secs() / 86_400)
    ));
    line(match &age {
        Some(age) => format!(
            "{} finished promotions older than {age}, with {} approvals of theirs \
             (pending and deploying ones, and any a kept one rolls back, are kept)",
            r.promotions, r.approvals
        ),
        None => "no promotions: they are kept forever (no --max-age-days)".into(),
    });
    line(match policy.keep_snapshots_per_instance {
        Some(n) => format!(
            "{} snapshots beyond the newest {n} per instance that no kept promotion points to",
            r.snapshots
        ),
        None => "no snapshots: they are all kept (no --keep-snapshots)".into(),
    });
    line(format!(
        "{} flow contents that no instance and no snapshot refers to",
        r.flow_blobs
    ));
    line(match &age {
        Some(age) => format!(
            "{} audit events older than {age} (each chain keeps its newest event and starts \
             at an anchor, so `stagehand audit verify` still checks it)",
            r.audit_events
        ),
        None => "no audit events: they are kept forever (no --max-age-days)".into(),
    });
    for c in &r.chains_not_purged {
        let name = teams
            .iter()
            .find(|(id, _)| *id == c.chain)
            .map_or_else(|| c.chain.clone(), |(_, name)| format!("team {name}"));
        out.push_str(&format!(
            "The audit log of {name} was left whole: it does not verify (event {}: {}). \
             Run `stagehand audit verify`.\n",
            c.first_break.seq, c.first_break.reason
        ));
    }
    out
}

/// Turns a store error into a message without the internal chain.
fn plain(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Conflict(c) => anyhow::anyhow!("{c}"),
        StoreError::Invalid(v) => anyhow::anyhow!("{v}"),
        other => other.into(),
    }
}

/// A team by its name or its id (names are unique, and an id is never a
/// valid name's meaning for another team).
async fn team_named(store: &dyn Store, name: &str) -> Result<TeamId> {
    store
        .teams()
        .await?
        .into_iter()
        .find(|t| t.name.as_str() == name || t.id.to_string() == name)
        .map(|t| t.id)
        .with_context(|| format!("there is no team named {name:?} (give its name or its id)"))
}

async fn user_named(store: &dyn Store, name: &str) -> Result<UserId> {
    let username = Username::parse(name)?;
    Ok(store
        .user_credentials(&username)
        .await?
        .with_context(|| format!("there is no user named {name:?}"))?
        .user
        .id)
}

pub(crate) async fn team(storage: &StorageArgs, command: TeamCommand) -> Result<()> {
    let TeamCommand::Create { name } = command;
    let store = storage.open().await?;
    let team = store
        .create_team(Name::parse("name", &name)?, &Actor::system())
        .await
        .map_err(plain)?;
    println!("created team {} ({})", team.name, team.id);
    Ok(())
}

pub(crate) async fn member(storage: &StorageArgs, command: MemberCommand) -> Result<()> {
    let MemberCommand::Add { team, user, role } = command;
    let store = storage.open().await?;
    let team_id = team_named(store.as_ref(), &team).await?;
    let user_id = user_named(store.as_ref(), &user).await?;
    store
        .bind_role(team_id, user_id, &role, &Actor::system())
        .await
        .map_err(plain)?;
    println!("{user} is now {role} in {team}");
    Ok(())
}

/// `30d`, `12h`, `90m`.
fn parse_lifetime(raw: &str) -> Result<TimeDelta> {
    let (number, unit) = raw.split_at(raw.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .with_context(|| format!("--expires {raw:?}: use a number and d, h or m, e.g. 30d"))?;
    match unit {
        "d" => Ok(TimeDelta::days(n)),
        "h" => Ok(TimeDelta::hours(n)),
        "m" => Ok(TimeDelta::minutes(n)),
        _ => bail!("--expires {raw:?}: use a number and d, h or m, e.g. 30d"),
    }
}

pub(crate) async fn token(storage: &StorageArgs, command: TokenCommand) -> Result<()> {
    let TokenCommand::Create {
        team,
        role,
        name,
        expires,
    } = command;
    let expires_at = expires
        .as_deref()
        .map(parse_lifetime)
        .transpose()?
        .map(|d| Utc::now() + d);
    let store = storage.open().await?;
    let team_id = team_named(store.as_ref(), &team).await?;
    let name =
        name.unwrap_or_else(|| format!("service-{}", &tokens::new_secret()[3..9].to_lowercase()));
    let secret = tokens::new_secret();
    let token = store
        .create_token(
            NewApiToken {
                team: team_id,
                name: Name::parse("name", &name)?,
                secret_hash: tokens::hash_secret(&secret),
                user_id: None,
                role,
                expires_at,
            },
            &Actor::system(),
        )
        .await
        .map_err(plain)?;
    eprintln!(
        "created service-account token {} for team {team} with role {}{}; the secret is shown once:",
        token.name,
        token.role,
        token
            .expires_at
            .map(|e| format!(", expiring {}", e.format("%Y-%m-%d %H:%M UTC")))
            .unwrap_or_default()
    );
    println!("{secret}");
    Ok(())
}

pub(crate) async fn create_user(
    storage: &StorageArgs,
    username: &str,
    admin: bool,
    from_stdin: bool,
) -> Result<()> {
    let username = Username::parse(username)?;
    let password = read_password(from_stdin)?;
    password::check_new_password(&password)?;
    let store = storage.open().await?;
    let hash = password::hash_password(password).await?;
    let new = NewUser {
        username: username.clone(),
        password_hash: hash,
        is_platform_admin: admin,
    };
    let user = store
        .create_user(new, &Actor::system())
        .await
        .map_err(plain)?;
    println!("created user {} ({})", user.username, user.id);
    Ok(())
}

fn read_password(from_stdin: bool) -> Result<SecretValue> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(SecretValue::new(
            line.trim_end_matches(['\r', '\n']).to_owned(),
        ));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to prompt for a password: pass --password-stdin and pipe it in");
    }
    let first = rpassword::prompt_password("password: ")?;
    let second = rpassword::prompt_password("again: ")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(SecretValue::new(first))
}
