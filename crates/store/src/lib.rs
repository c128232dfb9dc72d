//! Stagehand's storage: one interface, [`Store`], with a PostgreSQL and a
//! SQLite implementation that share their queries (see `sql/`), plus the
//! encryption of env values at rest.

mod cache;
pub mod crypto;
mod error;
pub mod files;
pub mod model;
mod outage;
pub mod postgres;
pub mod sqlite;
pub mod testing;
mod token_cache;
pub mod transfer;

pub use error::{Conflict, StoreError, StoreResult};
pub use model::*;

use async_trait::async_trait;
use stagehand_domain::{
    EnvKey, FlowContent, FlowName, InstanceId, Name, PermissionSet, PipelineId, PromotionId,
    Protection, SecretValue, SnapshotId, StageId, TeamId, TokenId, UserId, Username,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A snapshot of a store's connection pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// The most connections the pool opens.
    pub max: u32,
    /// Connections open now, in use or idle.
    pub open: u32,
    /// Open connections nobody is using.
    pub idle: u32,
    /// Callers waiting for a connection.
    pub waiting: u32,
}

/// Counts the callers waiting for a pooled connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Waiters(Arc<std::sync::atomic::AtomicU32>);

impl Waiters {
    /// Counted as waiting until the guard drops.
    pub(crate) fn enter(&self) -> WaitGuard {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        WaitGuard(self.0.clone())
    }

    pub(crate) fn now(&self) -> u32 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub(crate) struct WaitGuard(Arc<std::sync::atomic::AtomicU32>);

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Which database a store keeps its data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Postgres,
    Sqlite,
}

/// Everything Stagehand keeps. Every call that changes state writes its
/// audit event in the same transaction; every call that takes a `team` acts
/// only on that team's data, and treats another team's ids as not found.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> BackendKind;
    /// Answers once the database takes a write: the readiness probe. It
    /// writes a row of more than a page in a write transaction and rolls it
    /// back, so a database that cannot take the write lock or grow by a
    /// page (a full disk) is not ready. It leaves nothing behind.
    async fn ready(&self) -> StoreResult<()>;
    /// How busy the connection pool is right now (for metrics).
    fn pool_stats(&self) -> PoolStats;

    // Users, teams, roles.
    async fn create_user(&self, user: NewUser, actor: &Actor) -> StoreResult<User>;
    async fn user(&self, id: UserId) -> StoreResult<User>;
    async fn user_credentials(&self, username: &Username) -> StoreResult<Option<UserCredentials>>;
    async fn count_users(&self) -> StoreResult<i64>;
    /// Disables (ending every session of the user) or re-enables a user.
    async fn set_user_disabled(
        &self,
        id: UserId,
        disabled: bool,
        actor: &Actor,
    ) -> StoreResult<User>;
    /// Replaces a user's password hash and ends every session of theirs.
    async fn set_password(&self, id: UserId, password_hash: &str, actor: &Actor)
    -> StoreResult<()>;
    async fn create_team(&self, name: Name, actor: &Actor) -> StoreResult<Team>;
    /// Creates a team and binds `admin` to its admin role, in one
    /// transaction: a new team is never left without anyone to run it.
    async fn create_team_with_admin(
        &self,
        name: Name,
        admin: UserId,
        actor: &Actor,
    ) -> StoreResult<Team>;
    async fn team(&self, id: TeamId) -> StoreResult<Team>;
    async fn teams(&self) -> StoreResult<Vec<Team>>;
    async fn create_role(
        &self,
        team: TeamId,
        name: Name,
        permissions: PermissionSet,
        actor: &Actor,
    ) -> StoreResult<CustomRole>;
    /// Binds `role` (a built-in role name or a custom role of the team).
    async fn bind_role(
        &self,
        team: TeamId,
        user: UserId,
        role: &str,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Removes one role from a member of the team.
    async fn unbind_role(
        &self,
        team: TeamId,
        user: UserId,
        role: &str,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Every user of the installation, by username.
    async fn users(&self) -> StoreResult<Vec<User>>;
    /// The team's members with their roles, by username.
    async fn members(&self, team: TeamId) -> StoreResult<Vec<Member>>;
    /// The team's custom roles, by name.
    async fn roles(&self, team: TeamId) -> StoreResult<Vec<CustomRole>>;
    /// The union of the permissions of every role the user holds in the team.
    async fn permissions(&self, team: TeamId, user: UserId) -> StoreResult<PermissionSet>;

    /// The teams the user holds a role in, with those roles.
    async fn memberships(&self, user: UserId) -> StoreResult<Vec<Membership>>;

    // Sessions and login throttling.
    /// Starts a session; the login is audited in the same transaction.
    async fn create_session(&self, session: NewSession, actor: &Actor) -> StoreResult<()>;
    /// The session and, for `team`, the user's membership there: what every
    /// request's authorisation needs, in one round trip.
    async fn session_in_team(
        &self,
        token_hash: &str,
        team: Option<TeamId>,
    ) -> StoreResult<Option<SessionInTeam>>;
    /// Records activity on a session (for its idle expiry).
    async fn touch_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Ends a session; with an actor, the logout is audited.
    async fn delete_session(&self, token_hash: &str, actor: Option<&Actor>) -> StoreResult<()>;
    /// Counts one login attempt against every scope, in one atomic step
    /// with checking that each scope has had fewer than its limit since
    /// `since`: concurrent attempts on a scope are serialised, so no more
    /// than the limit are ever let through to a password check. `None`
    /// (nothing counted) when a scope is at its limit.
    async fn reserve_login_attempt(
        &self,
        scopes: &[LoginScope],
        since: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Option<LoginAttempt>>;
    /// The reserved attempt failed: it stays counted; the failure is audited.
    async fn record_login_failure(
        &self,
        attempt: &LoginAttempt,
        known_username: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// The reserved attempt succeeded: it is released, and the failures
    /// counted against `scope` (the account) are cleared.
    async fn clear_login_failures(&self, attempt: &LoginAttempt, scope: &str) -> StoreResult<()>;

    // API tokens.
    /// Creates a token with a role in one team; the caller keeps the secret.
    async fn create_token(&self, token: NewApiToken, actor: &Actor) -> StoreResult<ApiToken>;
    /// The live token with this secret hash, its team and its permissions
    /// there; records its use.
    async fn authenticate_token(
        &self,
        secret_hash: &str,
    ) -> StoreResult<Option<(ApiToken, Team, PermissionSet)>>;
    async fn tokens(&self, team: TeamId) -> StoreResult<Vec<ApiToken>>;
    async fn revoke_token(&self, team: TeamId, id: TokenId, actor: &Actor)
    -> StoreResult<ApiToken>;

    // Instances, flows, env vars, settings.
    async fn create_instance(
        &self,
        team: TeamId,
        name: Name,
        settings: serde_json::Value,
        actor: &Actor,
    ) -> StoreResult<Instance>;
    /// A new instance named `name` from `source`: its flows and its env
    /// keys without values; never its settings, protection, runtime
    /// connection or credentials. Audited (`instance.duplicated`).
    /// A new instance with the source's flows and env keys, without
    /// values, settings, protection or runtime. With `into`, it joins that
    /// pipeline in the same transaction: right after the source when the
    /// source is one of its stages, last otherwise.
    async fn duplicate_instance(
        &self,
        team: TeamId,
        source: InstanceId,
        name: Name,
        into: Option<PipelineId>,
        actor: &Actor,
    ) -> StoreResult<Instance>;
    async fn instance(&self, team: TeamId, id: InstanceId) -> StoreResult<Instance>;
    async fn instances(&self, team: TeamId) -> StoreResult<Vec<Instance>>;
    async fn update_settings(
        &self,
        team: TeamId,
        id: InstanceId,
        settings: serde_json::Value,
        expected_version: Option<i64>,
        actor: &Actor,
    ) -> StoreResult<Instance>;
    async fn delete_instance(&self, team: TeamId, id: InstanceId, actor: &Actor)
    -> StoreResult<()>;
    /// Sets how the instance guards itself; the actor must manage
    /// protection. Audited with the protection before and after.
    async fn set_instance_protection(
        &self,
        team: TeamId,
        id: InstanceId,
        protection: Protection,
        actor: &Actor,
    ) -> StoreResult<Instance>;
    async fn flows(&self, team: TeamId, instance: InstanceId) -> StoreResult<Vec<FlowMeta>>;
    async fn flow(&self, team: TeamId, instance: InstanceId, name: &FlowName) -> StoreResult<Flow>;
    async fn put_flow(
        &self,
        team: TeamId,
        instance: InstanceId,
        name: FlowName,
        content: FlowContent,
        expected_version: Option<i64>,
        actor: &Actor,
    ) -> StoreResult<Instance>;
    async fn delete_flow(
        &self,
        team: TeamId,
        instance: InstanceId,
        name: &FlowName,
        expected_version: Option<i64>,
        actor: &Actor,
    ) -> StoreResult<Instance>;
    /// Makes the instance's flow set exactly `flows`, in one transaction.
    async fn replace_flows(
        &self,
        team: TeamId,
        instance: InstanceId,
        flows: Vec<(FlowName, FlowContent)>,
        expected_version: Option<i64>,
        actor: &Actor,
    ) -> StoreResult<Instance>;
    async fn env_vars(&self, team: TeamId, instance: InstanceId) -> StoreResult<Vec<EnvVarMeta>>;
    /// Adds the keys the instance lacks, without values, in one
    /// transaction; a direct edit, so the instance's protection applies.
    /// The keys added, sorted (those it had already are left alone).
    async fn add_env_keys(
        &self,
        team: TeamId,
        instance: InstanceId,
        keys: Vec<EnvKey>,
        actor: &Actor,
    ) -> StoreResult<Vec<EnvKey>>;
    /// Adds the key if missing, and sets its value (or clears it with `None`).
    async fn set_env_var(
        &self,
        team: TeamId,
        instance: InstanceId,
        key: EnvKey,
        value: Option<SecretValue>,
        actor: &Actor,
    ) -> StoreResult<Instance>;
    async fn remove_env_var(
        &self,
        team: TeamId,
        instance: InstanceId,
        key: &EnvKey,
        actor: &Actor,
    ) -> StoreResult<Instance>;
    /// Decrypts one value; the reveal itself is audited.
    async fn reveal_env_value(
        &self,
        team: TeamId,
        instance: InstanceId,
        key: &EnvKey,
        actor: &Actor,
    ) -> StoreResult<Option<SecretValue>>;

    // Pipelines and stages.
    async fn create_pipeline(
        &self,
        team: TeamId,
        name: Name,
        actor: &Actor,
    ) -> StoreResult<Pipeline>;
    async fn pipeline(&self, team: TeamId, id: PipelineId) -> StoreResult<Pipeline>;
    async fn pipelines(&self, team: TeamId) -> StoreResult<Vec<Pipeline>>;
    async fn rename_pipeline(
        &self,
        team: TeamId,
        id: PipelineId,
        name: Name,
        actor: &Actor,
    ) -> StoreResult<Pipeline>;
    /// The pipeline and what each stage's card shows: flow count, keys
    /// awaiting a value, last promotion, promotions awaiting approval; with
    /// the team's instance names when `with_team_instances` (and whenever
    /// a promotion shown needs one). One connection, whatever it reads.
    async fn pipeline_overview(
        &self,
        team: TeamId,
        id: PipelineId,
        with_team_instances: bool,
    ) -> StoreResult<PipelineOverview>;
    async fn delete_pipeline(&self, team: TeamId, id: PipelineId, actor: &Actor)
    -> StoreResult<()>;
    /// Inserts a stage at `position` (0-based; `None` appends).
    async fn add_stage(
        &self,
        team: TeamId,
        pipeline: PipelineId,
        instance: InstanceId,
        position: Option<usize>,
        actor: &Actor,
    ) -> StoreResult<Pipeline>;
    async fn remove_stage(
        &self,
        team: TeamId,
        pipeline: PipelineId,
        stage: StageId,
        actor: &Actor,
    ) -> StoreResult<Pipeline>;
    async fn reorder_stages(
        &self,
        team: TeamId,
        pipeline: PipelineId,
        order: Vec<StageId>,
        actor: &Actor,
    ) -> StoreResult<Pipeline>;
    // Promotions.
    /// The plan of a play on `stage`, without changing anything.
    async fn preview(
        &self,
        team: TeamId,
        pipeline: PipelineId,
        stage: StageId,
    ) -> StoreResult<Preview> {
        self.preview_of(team, pipeline, stage, None).await
    }
    /// The plan of a play on `stage` that promotes `snapshot` (one of the
    /// source instance's) instead of the source as it is now.
    async fn preview_of(
        &self,
        team: TeamId,
        pipeline: PipelineId,
        stage: StageId,
        snapshot: Option<SnapshotId>,
    ) -> StoreResult<Preview>;
    /// The plan of restoring the stage's instance to `snapshot`, one of
    /// its own: the snapshot is the source, the instance now the target.
    async fn restore_preview(
        &self,
        team: TeamId,
        pipeline: PipelineId,
        stage: StageId,
        snapshot: SnapshotId,
    ) -> StoreResult<Preview>;
    /// Play: applies a promotion or, into a protected instance, requests
    /// one (`pending_approval`, pinned to the source snapshot taken now).
    async fn play(&self, request: PromotionRequest) -> StoreResult<Played>;
    /// [`Store::play`], for callers that do not care whether it replayed.
    async fn promote(&self, request: PromotionRequest) -> StoreResult<Promotion> {
        Ok(self.play(request).await?.promotion)
    }
    /// Restores the target's flows from the promotion's backup snapshot;
    /// into a protected instance, requests that instead (a new
    /// `pending_approval` promotion whose `rollback_of` is `promotion`).
    /// `expected_target_version`: the target's version the caller's
    /// preview of the undo saw; a stale one is a conflict.
    async fn rollback(
        &self,
        team: TeamId,
        promotion: PromotionId,
        expected_target_version: Option<i64>,
        actor: &Actor,
    ) -> StoreResult<Promotion>;
    /// A reviewer approves or rejects a pending promotion. The last
    /// approval a protected instance needs applies the pinned snapshot.
    async fn decide(
        &self,
        team: TeamId,
        promotion: PromotionId,
        decision: Decision,
        actor: &Actor,
    ) -> StoreResult<Promotion> {
        self.decide_with_comment(team, promotion, decision, None, actor)
            .await
    }
    /// [`decide`](Self::decide), with the reviewer's reason (trimmed; blank
    /// is none; at most 2,000 characters), kept with the decision and in
    /// its audit event.
    async fn decide_with_comment(
        &self,
        team: TeamId,
        promotion: PromotionId,
        decision: Decision,
        comment: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<Promotion>;
    /// The decisions taken on a promotion, oldest first.
    async fn approvals(&self, team: TeamId, promotion: PromotionId) -> StoreResult<Vec<Approval>>;
    async fn promotion(&self, team: TeamId, id: PromotionId) -> StoreResult<Promotion>;
    /// The newest promotions of the team, newest first.
    async fn promotions(&self, team: TeamId, limit: i64) -> StoreResult<Vec<Promotion>>;
    /// The team's promotions that match `filter`, newest first.
    async fn promotion_history(
        &self,
        team: TeamId,
        filter: &PromotionFilter,
    ) -> StoreResult<Vec<Promotion>>;
    async fn snapshot(&self, team: TeamId, id: SnapshotId) -> StoreResult<Snapshot>;
    /// The flows a snapshot of the team holds, with their content.
    async fn snapshot_flows(
        &self,
        team: TeamId,
        id: SnapshotId,
    ) -> StoreResult<Vec<(FlowName, FlowContent)>>;
    /// The newest snapshots of an instance, newest first.
    async fn snapshots(
        &self,
        team: TeamId,
        instance: InstanceId,
        limit: i64,
    ) -> StoreResult<Vec<SnapshotMeta>>;
    /// The promotions that pinned the snapshot as their source or took it
    /// as their backup, newest first (at most 20): why it was taken.
    /// The delivery rows of a team (or of one of its pipelines) for the
    /// days in `[since, until)`, and the requests into its stages awaiting
    /// approval now.
    async fn delivery_days(
        &self,
        team: TeamId,
        pipeline: Option<PipelineId>,
        since: chrono::NaiveDate,
        until: chrono::NaiveDate,
    ) -> StoreResult<(Vec<stagehand_domain::delivery::DeliveryDay>, u64)>;
    /// Recomputes every delivery row from the promotions (after an upgrade
    /// from a version that did not keep them); answers the rows written.
    /// Each day is its own transaction, under its target's lock.
    async fn rebuild_delivery(&self) -> StoreResult<u64>;
    async fn snapshot_promotions(
        &self,
        team: TeamId,
        id: SnapshotId,
    ) -> StoreResult<Vec<PromotionHead>>;
    /// The rollbacks of the promotion (each a promotion `rollback_of` it:
    /// requested into a protected instance, or deployed into a connected
    /// one), newest first.
    async fn rollbacks_of(
        &self,
        team: TeamId,
        promotion: PromotionId,
    ) -> StoreResult<Vec<PromotionHead>>;

    // Audit.
    /// The newest audit events of the team, newest first.
    async fn audit_events(&self, team: TeamId, limit: i64) -> StoreResult<Vec<AuditEvent>>;
    /// Walks the audit chain of a team (or with `None`, the platform's) and
    /// reports the first broken link.
    async fn verify_audit_chain(&self, team: Option<TeamId>) -> StoreResult<ChainReport>;
    /// The events of a team (or with `None`, the platform's own: users and
    /// logins) that match `filter`, newest first.
    async fn audit_history(
        &self,
        team: Option<TeamId>,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEvent>>;

    // Connected instances (runtimes).
    /// Connects an instance to a runtime (or replaces the connection); the
    /// actor must manage protection. Audited without the credentials.
    async fn connect_runtime(
        &self,
        team: TeamId,
        instance: InstanceId,
        link: NewRuntimeLink,
        actor: &Actor,
    ) -> StoreResult<RuntimeLink>;
    async fn disconnect_runtime(
        &self,
        team: TeamId,
        instance: InstanceId,
        actor: &Actor,
    ) -> StoreResult<()>;
    async fn runtime_link(
        &self,
        team: TeamId,
        instance: InstanceId,
    ) -> StoreResult<Option<RuntimeLink>>;
    async fn runtime_links(&self, team: TeamId) -> StoreResult<Vec<RuntimeLink>>;
    /// Every connected instance of the installation (the drift check's list).
    async fn all_runtime_links(&self) -> StoreResult<Vec<(TeamId, RuntimeLink)>>;
    /// The link and its decrypted credentials, for a call to the runtime.
    async fn runtime_credentials(
        &self,
        team: TeamId,
        instance: InstanceId,
    ) -> StoreResult<(RuntimeLink, SecretValue)>;
    /// Records what a look at the runtime found (not audited).
    async fn record_runtime_check(
        &self,
        team: TeamId,
        instance: InstanceId,
        state: RuntimeState,
        detail: Option<String>,
        changed_by: Option<String>,
    ) -> StoreResult<RuntimeLink>;
    /// Records a runtime's content as the instance (flows, values), with
    /// its revision; snapshotted and audited.
    async fn record_pull(
        &self,
        team: TeamId,
        instance: InstanceId,
        pulled: PulledState,
        actor: &Actor,
    ) -> StoreResult<Instance>;
    /// What a `deploying` promotion sends to its target's runtime.
    async fn deployment(
        &self,
        team: TeamId,
        promotion: PromotionId,
    ) -> StoreResult<DeploymentInput>;
    /// The runtime's answer to a deploy: applies or fails the promotion.
    async fn finish_deploy(
        &self,
        team: TeamId,
        promotion: PromotionId,
        outcome: DeployOutcome,
        actor: &Actor,
        reconciled: bool,
    ) -> StoreResult<Promotion>;
    /// Every team's promotions deploying since before `started_before`.
    async fn deploying_promotions(
        &self,
        started_before: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<Promotion>>;
    /// Claims this period's run of a background job: true for one caller
    /// per period across every replica sharing the database.
    async fn claim_job(&self, name: &str, every: Duration, holder: &str) -> StoreResult<bool>;

    // Retention.
    /// Removes what `policy` does not keep, in one transaction: expired
    /// sessions, old failed logins, old finished promotions (never one a
    /// kept promotion's rollback refers to), snapshots past the per-instance
    /// limit that no kept promotion points to, flow content nothing refers
    /// to, and the oldest audit events of each chain (a prefix, anchored so
    /// the chain still verifies; never from a chain that does not verify).
    /// Audited in the platform chain when anything went. With `dry_run`,
    /// the same work is done and rolled back: the report counts exactly
    /// what a purge now would remove.
    async fn purge(
        &self,
        policy: &RetentionPolicy,
        dry_run: bool,
        actor: &Actor,
    ) -> StoreResult<PurgeReport>;
}

/// Where the data lives.
#[derive(Clone)]
pub enum Database {
    /// `postgres://…`
    Postgres { url: String },
    /// A SQLite file.
    Sqlite { path: PathBuf },
}

impl std::fmt::Debug for Database {
    /// Never prints the Postgres password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Postgres { url } => write!(f, "Postgres({})", redact_url(url)),
            Self::Sqlite { path } => write!(f, "Sqlite({})", path.display()),
        }
    }
}

/// A database URL fit to print: `postgres://user:secret@host/db` →
/// `postgres://user:***@host/db`, and a secret in the query
/// (`?password=…`, `sslpassword`, `sslkey`, `passfile`) blanked the same
/// way. A URL that does not parse shows only its scheme.
pub fn redact_url(raw: &str) -> String {
    /// Query parameters libpq and sqlx read a secret from.
    const SECRET_PARAMS: &[&str] = &["password", "sslpassword", "sslkey", "passfile"];
    let Ok(mut url) = url::Url::parse(raw) else {
        // Not a URL we can take apart: show only what it starts with.
        let scheme = raw.split_once("://").map_or("", |(s, _)| s);
        return format!("{scheme}://(a URL that does not parse; not shown)");
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let secret = SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str());
                let v = if secret {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// How the store waits on its database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// How long a call waits for a PostgreSQL connection (a free one from
    /// the pool, or a new one) before it fails as
    /// [`StoreError::Unavailable`]: with the server down, requests are
    /// answered 503 after this long instead of hanging.
    pub acquire_timeout: Duration,
    /// The most PostgreSQL connections this process opens (SQLite keeps
    /// its own small pool). Every replica opens up to this many: keep
    /// replicas × this (plus one more replica during a rolling update)
    /// under the server's `max_connections`.
    pub max_connections: u32,
}

impl StoreOptions {
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 20;
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            acquire_timeout: Self::DEFAULT_ACQUIRE_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Opens the database, applies pending migrations, and checks that `key`
/// is the key the data was encrypted with (recording it on first use).
pub async fn open(database: &Database, key: &crypto::SecretKey) -> StoreResult<Arc<dyn Store>> {
    open_with(database, key, &StoreOptions::default()).await
}

/// [`open`] with options other than the defaults.
pub async fn open_with(
    database: &Database,
    key: &crypto::SecretKey,
    options: &StoreOptions,
) -> StoreResult<Arc<dyn Store>> {
    let cipher = crypto::Cipher::new(key);
    Ok(match database {
        Database::Postgres { url } => {
            let s = postgres::PgStore::connect_with(url, cipher, options).await?;
            s.migrate().await?;
            s.check_key().await?;
            Arc::new(s)
        }
        Database::Sqlite { path } => {
            let s = sqlite::SqliteStore::connect(path, cipher).await?;
            s.migrate().await?;
            s.check_key().await?;
            Arc::new(s)
        }
    })
}

/// Whether a connection handed back to a pool may serve again: only if it
/// is outside any transaction. A transaction dropped on an error (or a
/// cancelled request) queues its rollback; if that rollback did not take
/// (SQLite rolls back by itself on `database or disk is full`, so sqlx's
/// own `ROLLBACK` then fails and its transaction depth stays at one), the
/// connection is closed rather than pooled: pooled, every later `BEGIN` on
/// it would fail until a restart.
///
/// `flush`: SQLite's queued rollback only updates the depth once its
/// worker thread has run it, so a connection that still looks inside a
/// transaction is flushed (a ping runs what it has queued) and asked
/// again. One that looks outside needs no flush: a queued rollback only
/// ever lowers the depth. (Each ping is a round trip to the worker thread,
/// which is most of what a small read costs on SQLite.) PostgreSQL updates
/// the depth at once.
pub(crate) async fn outside_transaction<C: sqlx::Connection>(
    conn: &mut C,
    flush: bool,
) -> sqlx::Result<bool> {
    if flush && conn.is_in_transaction() {
        conn.ping().await?;
    }
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!("closing a database connection left inside a transaction");
    }
    Ok(clean)
}

/// Applies pending migrations only.
pub async fn migrate(database: &Database, options: &StoreOptions) -> StoreResult<()> {
    let cipher = crypto::Cipher::new(&crypto::SecretKey::generate());
    match database {
        Database::Postgres { url } => {
            postgres::PgStore::connect_with(url, cipher, options)
                .await?
                .migrate()
                .await
        }
        Database::Sqlite { path } => {
            sqlite::SqliteStore::connect(path, cipher)
                .await?
                .migrate()
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postgres_password_is_never_printed() {
        let db = Database::Postgres {
            url: "postgres://app:s3cret@db:5432/stagehand".into(),
        };
        let shown = format!("{db:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("app:***@db:5432"), "{shown}");
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::redact_url;

    #[test]
    fn no_password_survives_redaction() {
        for (url, secret) in [
            ("postgres://mover:s3cret@db:5432/x", "s3cret"),
            // An unencoded @ in the password: the last @ ends the userinfo.
            (
                "postgres://mover:p@ssW0rdSECRET@127.0.0.1:5432/x",
                "ssW0rdSECRET",
            ),
            ("postgres://mover@db/x?password=p%40ssSECRET", "ssSECRET"),
            (
                "postgres://mover@db/x?sslmode=require&PASSWORD=QSECRET",
                "QSECRET",
            ),
            ("postgres://mover@db/x?sslpassword=KEYSECRET", "KEYSECRET"),
            ("postgres://mo ver:SPACESECRET@db/x", "SPACESECRET"),
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains(secret), "{url} → {shown}");
        }
        assert_eq!(
            redact_url("postgres://mover:s3cret@db:5432/x?sslmode=require"),
            "postgres://mover:***@db:5432/x?sslmode=require"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
    }
}
