//! The queries, written once and compiled twice: `postgres.rs` and
//! `sqlite.rs` each include this module tree with `#[path]`, and `super::`
//! resolves to the including backend (its `Db`, `Conn`, `Backend`,
//! `lock_instance`, `lock_team`, `lock_login_scope` and `lock_purge`). The SQL is the common subset of both dialects
//! (`$N` parameters, `on conflict`, `returning`); whatever the dialects
//! force apart lives in the backend files, not here (`JSON_EACH`: the
//! function that lists a JSON object's entries).

mod approvals;
mod audit;
mod delivery;
mod history;
mod identity;
mod instances;
mod pipelines;
mod promotions;
mod retention;
mod runtimes;
mod sessions;
mod snapshots;
mod tokens;

use super::{Backend, Conn, Db, JSON_EACH, lock_instance, lock_login_scope, lock_purge, lock_team};
use crate::error::{StoreError, StoreResult};
use crate::model::*;
use crate::{BackendKind, Store};
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use stagehand_domain::{
    EnvKey, FlowContent, FlowName, InstanceId, Name, PermissionSet, PipelineId, PromotionId,
    Protection, SecretValue, SnapshotId, StageId, TeamId, TokenId, UserId, Username,
    ValidationError,
};

/// The time, to the microsecond both databases keep.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A stored value that must have been valid when it was written.
pub(crate) fn stored<T>(parsed: Result<T, ValidationError>) -> StoreResult<T> {
    parsed.map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Appends the time window and the keyset position shared by the history
/// queries, then their newest-first order and the page size. Rows are
/// ordered by `(created_at, id)` descending; `before` is the last row of the
/// previous page.
pub(crate) fn push_window_and_page(
    q: &mut sqlx::QueryBuilder<'_, Db>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    before: Option<(DateTime<Utc>, uuid::Uuid)>,
    limit: i64,
) {
    if let Some(t) = since {
        q.push(" and created_at >= ").push_bind(t);
    }
    if let Some(t) = until {
        q.push(" and created_at < ").push_bind(t);
    }
    if let Some((at, id)) = before {
        // A row comparison, which both databases answer from an index on
        // (…, created_at desc, id desc) without scanning the skipped pages.
        q.push(" and (created_at, id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" order by created_at desc, id desc limit ")
        .push_bind(limit.clamp(1, crate::model::MAX_PAGE));
}

/// Runs `$body` on a write transaction and commits it if the body succeeds;
/// on error (of the body or of the commit) the transaction is dropped, which
/// rolls it back, and the pool takes the connection back only once it is
/// outside the transaction (see `outside_transaction`).
macro_rules! write_tx {
    ($self:ident, $conn:ident => $body:expr) => {{
        let mut tx = $self.begin_write().await?;
        let $conn: &mut Conn = &mut *tx;
        let out = $body.await?;
        let committed = tx.commit().await;
        $self.committed();
        committed?;
        Ok(out)
    }};
}

/// Runs `$body` on a pooled connection.
macro_rules! read {
    ($self:ident, $conn:ident => $body:expr) => {{
        let mut c = {
            let _waiting = $self.waiters.enter();
            $self.pool.acquire().await?
        };
        let $conn: &mut Conn = &mut *c;
        $body.await
    }};
}

/// Walks one audit chain on a connection the caller holds: the store
/// transfer verifies a copy inside its transaction, before committing it.
pub(crate) async fn verify_audit_chain_on(
    conn: &mut Conn,
    team: Option<TeamId>,
) -> StoreResult<ChainReport> {
    audit::verify(conn, team).await
}

impl Backend {
    /// A write transaction ended (committed, or failed to commit): what
    /// this process remembers of the database from before it is stale.
    fn committed(&self) {
        if let Some(cache) = self.token_cache() {
            cache.changed();
        }
    }
}

const KEY_CHECK: &str = "key_check";

/// The size of the readiness probe's row: over two SQLite pages, so the
/// probe fails where a write would need the database to grow and cannot.
const READY_PROBE_BYTES: usize = 9 * 1024;

impl Backend {
    /// Fails if the data was encrypted with another key; records the key
    /// check on first use.
    pub async fn check_key(&self) -> StoreResult<()> {
        let stored: Option<String> =
            sqlx::query_scalar("select value from stagehand_meta where key = $1")
                .bind(KEY_CHECK)
                .fetch_optional(&self.pool)
                .await?;
        match stored {
            Some(check) if self.cipher.verify_key_check(&check) => Ok(()),
            Some(_) => Err(StoreError::Crypto(
                "the secret key does not match the key this database was encrypted with; \
                 set STAGEHAND_SECRET_KEY (or restore secret.key) to the original key"
                    .into(),
            )),
            None => {
                sqlx::query(
                    "insert into stagehand_meta (key, value, created_at) values ($1, $2, $3)
                     on conflict (key) do nothing",
                )
                .bind(KEY_CHECK)
                .bind(self.cipher.key_check())
                .bind(now())
                .execute(&self.pool)
                .await?;
                // Another replica may have won the race with another key.
                Box::pin(self.check_key()).await
            }
        }
    }
}

#[async_trait]
impl Store for Backend {
    fn kind(&self) -> BackendKind {
        Self::KIND
    }

    fn pool_stats(&self) -> crate::PoolStats {
        crate::PoolStats {
            max: self.pool.options().get_max_connections(),
            open: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            waiting: self.waiters.now(),
        }
    }

    async fn ready(&self) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("insert into stagehand_meta (key, value, created_at) values ($1, $2, $3)")
            .bind(format!("ready_probe_{}", uuid::Uuid::new_v4().simple()))
            .bind("x".repeat(READY_PROBE_BYTES))
            .bind(now())
            .execute(&mut *tx)
            .await?;
        tx.rollback().await?;
        Ok(())
    }

    async fn create_user(&self, user: NewUser, actor: &Actor) -> StoreResult<User> {
        write_tx!(self, c => identity::create_user(c, user, actor))
    }
    async fn user(&self, id: UserId) -> StoreResult<User> {
        read!(self, c => identity::user(c, id))
    }
    async fn user_credentials(&self, username: &Username) -> StoreResult<Option<UserCredentials>> {
        read!(self, c => identity::credentials(c, username))
    }
    async fn count_users(&self) -> StoreResult<i64> {
        read!(self, c => identity::count_users(c))
    }
    async fn set_user_disabled(
        &self,
        id: UserId,
        disabled: bool,
        actor: &Actor,
    ) -> StoreResult<User> {
        write_tx!(self, c => identity::set_disabled(c, id, disabled, actor))
    }
    async fn set_password(
        &self,
        id: UserId,
        password_hash: &str,
        actor: &Actor,
    ) -> StoreResult<()> {
        write_tx!(self, c => identity::set_password(c, id, password_hash, actor))
    }
    async fn create_team(&self, name: Name, actor: &Actor) -> StoreResult<Team> {
        write_tx!(self, c => identity::create_team(c, name, actor))
    }
    async fn create_team_with_admin(
        &self,
        name: Name,
        admin: UserId,
        actor: &Actor,
    ) -> StoreResult<Team> {
        write_tx!(self, c => identity::create_team_with_admin(c, name, admin, actor))
    }
    async fn team(&self, id: TeamId) -> StoreResult<Team> {
        read!(self, c => identity::team(c, id))
    }
    async fn teams(&self) -> StoreResult<Vec<Team>> {
        read!(self, c => identity::teams(c))
    }
    async fn create_role(
        &self,
        team: TeamId,
        name: Name,
        permissions: PermissionSet,
        actor: &Actor,
    ) -> StoreResult<CustomRole> {
        write_tx!(self, c => identity::create_role(c, team, name, permissions, actor))
    }
    async fn bind_role(
        &self,
        team: TeamId,
        user: UserId,
        role: &str,
        actor: &Actor,
    ) -> StoreResult<()> {
        write_tx!(self, c => identity::bind_role(c, team, user, role, actor))
    }
    async fn unbind_role(
        &self,
        team: TeamId,
        user: UserId,
        role: &str,
        actor: &Actor,
    ) -> StoreResult<()> {
        write_tx!(self, c => identity::unbind_role(c, team, user, role, actor))
    }
    async fn users(&self) -> StoreResult<Vec<User>> {
        read!(self, c => identity::users(c))
    }
    async fn members(&self, team: TeamId) -> StoreResult<Vec<Member>> {
        read!(self, c => identity::members(c, team))
    }
    async fn roles(&self, team: TeamId) -> StoreResult<Vec<CustomRole>> {
        read!(self, c => identity::roles(c, team))
    }
    async fn permissions(&self, team: TeamId, user: UserId) -> StoreResult<PermissionSet> {
        read!(self, c => identity::permissions(c, team, user))
    }

    async fn memberships(&self, user: UserId) -> StoreResult<Vec<Membership>> {
        read!(self, c => sessions::memberships(c, user))
    }

    async fn create_session(&self, session: NewSession, actor: &Actor) -> StoreResult<()> {
        write_tx!(self, c => sessions::create(c, session, actor))
    }
    async fn session_in_team(
        &self,
        token_hash: &str,
        team: Option<TeamId>,
    ) -> StoreResult<Option<SessionInTeam>> {
        read!(self, c => sessions::get_in_team(c, token_hash, team))
    }
    async fn touch_session(&self, token_hash: &str) -> StoreResult<()> {
        read!(self, c => sessions::touch(c, token_hash))
    }
    async fn delete_session(&self, token_hash: &str, actor: Option<&Actor>) -> StoreResult<()> {
        write_tx!(self, c => sessions::delete(c, token_hash, actor))
    }
    async fn reserve_login_attempt(
        &self,
        scopes: &[LoginScope],
        since: DateTime<Utc>,
    ) -> StoreResult<Option<LoginAttempt>> {
        write_tx!(self, c => sessions::reserve_attempt(c, scopes, since))
    }
    async fn record_login_failure(
        &self,
        attempt: &LoginAttempt,
        known_username: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<()> {
        write_tx!(self, c => sessions::record_failure(c, attempt, known_username, actor))
    }
    async fn clear_login_failures(&self, attempt: &LoginAttempt, scope: &str) -> StoreResult<()> {
        write_tx!(self, c => sessions::clear_failures(c, attempt, scope))
    }

    async fn create_token(&self, token: NewApiToken, actor: &Actor) -> StoreResult<ApiToken> {
        write_tx!(self, c => tokens::create(c, token, actor))
    }
    async fn authenticate_token(
        &self,
        secret_hash: &str,
    ) -> StoreResult<Option<(ApiToken, Team, PermissionSet)>> {
        let Some(cache) = self.token_cache() else {
            return read!(self, c => tokens::authenticate(c, secret_hash));
        };
        if let Some(found) = cache.get(secret_hash)
            && tokens::still_good(&found.0, now())
        {
            return Ok(Some(found));
        }
        let epoch = cache.epoch();
        let found = read!(self, c => tokens::authenticate(c, secret_hash))?;
        if let Some(found) = &found {
            cache.keep(secret_hash, epoch, found.clone());
        }
        Ok(found)
    }
    async fn tokens(&self, team: TeamId) -> StoreResult<Vec<ApiToken>> {
        read!(self, c => tokens::list(c, team))
    }
    async fn revoke_token(
        &self,
        team: TeamId,
        id: TokenId,
        actor: &Actor,
    ) -> StoreResult<ApiToken> {
        write_tx!(self, c => tokens::revoke(c, team, id, actor))
    }

    async fn create_instance(
        &self,
        team: TeamId,
        name: Name,
        settings: serde_json::Value,
        actor: &Actor,
    ) -> StoreResult<Instance> {
        write_tx!(self, c => instances::create(c, team, name, settings, actor))
    }
    async fn duplicate_instance(
        &self,
        team: TeamId,
        source: InstanceId,
        name: Name,
        into: Option<PipelineId>,
        actor: &Actor,
    ) -> StoreResult<Instance> {
        write_tx!(self, c => pipelines::duplicate_into(c, team, source, name, into, actor))
    }
    async fn instance(&self, team: TeamId, id: InstanceId) -> StoreResult<Instance> {
        read!(self, c => instances::get(c, team, id))
    }
    async fn instances(&self, team: TeamId) -> StoreResult<Vec<Instance>> {
        read!(self, c => instances::list(c, team))
    }
    async fn update_settings(
        &self,
        team: TeamId,
        id: InstanceId,
        settings: serde_json::Value,
        expected_version: Option<i64>,
        actor: &Actor,
    ) -> StoreResult<Instance> {
        write_tx!(self, c => instances::update_settings(c, team, id, settings, expected_version, actor))
    }
    async fn delete_instance(
        &self,
        team: TeamId,
        id: InstanceId,
        actor: &Actor,
    ) -> StoreResult<()> {
        write_tx!(self, c => instances::delete(c, team, id, actor))
    }
    async fn set_instance_protection(
        &self,
        team: TeamId,
        id: InstanceId,
        protection: Protection,
        actor: &Actor,
    ) -> StoreResult<Instance> {
        write_tx!(self, c => instances::set_protection(c, team, id, protection, actor))
    }
    async fn flows(&self, team: TeamId, instance: InstanceId) -> StoreResult<Vec<FlowMeta>> {
        read!(self, c => instances::flows(c, team, instance))
    }
    async fn flow(&self, team: TeamId, instance: InstanceId, name: &FlowName) -> StoreResult<Flow> {
        read!(self, c => instances::flow(c, team, instance, name))
    }
    async fn put_flow(
        &self,
        team: TeamId,
        instance: InstanceId,
        name: FlowName,
        content: FlowContent,
        expected_version: Option<i64>,
        actor: &Actor,
    ) -> StoreResult<Instance> {
        write_tx!(self, c => instances::put_flow(c, team, instance, name, content, expected_version, actor))
    }
    async fn delete_flow(
        &self,
        team: TeamId,
        instance: InstanceId,
        name: &FlowName,
        expected_version: Option<i64>,
        actor: &Actor,
    ) -> StoreResult<Instance> {
        write_tx!(self, c => instances::delete_flow(c, team, instance, name, expected_version, actor))
    }
    async fn replace_flows(
        &self,
        team: TeamId,
        instance: InstanceId,
        flows: Vec<(FlowName, FlowContent)>,
        expected_version: Option<i64>,
        actor: &Actor,
    ) -> StoreResult<Instance> {
        write_tx!(self, c => instances::replace_flows(c, team, instance, flows, expected_version, actor))
    }
    async fn env_vars(&self, team: TeamId, instance: InstanceId) -> StoreResult<Vec<EnvVarMeta>> {
        read!(self, c => instances::env_vars(c, team, instance))
    }
    async fn add_env_keys(
        &self,
        team: TeamId,
        instance: InstanceId,
        keys: Vec<EnvKey>,
        actor: &Actor,
    ) -> StoreResult<Vec<EnvKey>> {
        write_tx!(self, c => instances::add_env_keys(c, team, instance, keys, actor))
    }
    async fn set_env_var(
        &self,
        team: TeamId,
        instance: InstanceId,
        key: EnvKey,
        value: Option<SecretValue>,
        actor: &Actor,
    ) -> StoreResult<Instance> {
        write_tx!(self, c => instances::set_env_var(c, &self.cipher, team, instance, key, value, actor))
    }
    async fn remove_env_var(
        &self,
        team: TeamId,
        instance: InstanceId,
        key: &EnvKey,
        actor: &Actor,
    ) -> StoreResult<Instance> {
        write_tx!(self, c => instances::remove_env_var(c, team, instance, key, actor))
    }
    async fn reveal_env_value(
        &self,
        team: TeamId,
        instance: InstanceId,
        key: &EnvKey,
        actor: &Actor,
    ) -> StoreResult<Option<SecretValue>> {
        write_tx!(self, c => instances::reveal_env_value(c, &self.cipher, team, instance, key, actor))
    }

    async fn create_pipeline(
        &self,
        team: TeamId,
        name: Name,
        actor: &Actor,
    ) -> StoreResult<Pipeline> {
        write_tx!(self, c => pipelines::create(c, team, name, actor))
    }
    async fn pipeline(&self, team: TeamId, id: PipelineId) -> StoreResult<Pipeline> {
        read!(self, c => pipelines::get(c, team, id))
    }
    async fn pipelines(&self, team: TeamId) -> StoreResult<Vec<Pipeline>> {
        read!(self, c => pipelines::list(c, team))
    }
    async fn rename_pipeline(
        &self,
        team: TeamId,
        id: PipelineId,
        name: Name,
        actor: &Actor,
    ) -> StoreResult<Pipeline> {
        write_tx!(self, c => pipelines::rename(c, team, id, name, actor))
    }
    async fn pipeline_overview(
        &self,
        team: TeamId,
        id: PipelineId,
        with_team_instances: bool,
    ) -> StoreResult<PipelineOverview> {
        read!(self, c => pipelines::overview(c, &self.overview_cache, team, id, with_team_instances))
    }
    async fn delete_pipeline(
        &self,
        team: TeamId,
        id: PipelineId,
        actor: &Actor,
    ) -> StoreResult<()> {
        write_tx!(self, c => pipelines::delete(c, team, id, actor))
    }
    async fn add_stage(
        &self,
        team: TeamId,
        pipeline: PipelineId,
        instance: InstanceId,
        position: Option<usize>,
        actor: &Actor,
    ) -> StoreResult<Pipeline> {
        write_tx!(self, c => pipelines::add_stage(c, team, pipeline, instance, position, actor))
    }
    async fn remove_stage(
        &self,
        team: TeamId,
        pipeline: PipelineId,
        stage: StageId,
        actor: &Actor,
    ) -> StoreResult<Pipeline> {
        write_tx!(self, c => pipelines::remove_stage(c, team, pipeline, stage, actor))
    }
    async fn reorder_stages(
        &self,
        team: TeamId,
        pipeline: PipelineId,
        order: Vec<StageId>,
        actor: &Actor,
    ) -> StoreResult<Pipeline> {
        write_tx!(self, c => pipelines::reorder(c, team, pipeline, order, actor))
    }

    async fn preview_of(
        &self,
        team: TeamId,
        pipeline: PipelineId,
        stage: StageId,
        snapshot: Option<SnapshotId>,
    ) -> StoreResult<Preview> {
        read!(self, c => promotions::preview(c, team, pipeline, stage, snapshot, false))
    }
    async fn restore_preview(
        &self,
        team: TeamId,
        pipeline: PipelineId,
        stage: StageId,
        snapshot: SnapshotId,
    ) -> StoreResult<Preview> {
        read!(self, c => promotions::preview(c, team, pipeline, stage, Some(snapshot), true))
    }
    async fn play(&self, request: PromotionRequest) -> StoreResult<Played> {
        write_tx!(self, c => promotions::promote(c, request))
    }
    async fn rollback(
        &self,
        team: TeamId,
        promotion: PromotionId,
        expected_target_version: Option<i64>,
        actor: &Actor,
    ) -> StoreResult<Promotion> {
        write_tx!(self, c => promotions::rollback(c, team, promotion, expected_target_version, actor))
    }
    async fn decide_with_comment(
        &self,
        team: TeamId,
        promotion: PromotionId,
        decision: Decision,
        comment: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<Promotion> {
        write_tx!(self, c => approvals::decide(c, team, promotion, decision, comment, actor))
    }
    async fn approvals(&self, team: TeamId, promotion: PromotionId) -> StoreResult<Vec<Approval>> {
        read!(self, c => approvals::list(c, team, promotion))
    }
    async fn promotion(&self, team: TeamId, id: PromotionId) -> StoreResult<Promotion> {
        read!(self, c => promotions::get(c, team, id))
    }
    async fn promotions(&self, team: TeamId, limit: i64) -> StoreResult<Vec<Promotion>> {
        read!(self, c => promotions::list(c, team, limit))
    }
    async fn promotion_history(
        &self,
        team: TeamId,
        filter: &PromotionFilter,
    ) -> StoreResult<Vec<Promotion>> {
        read!(self, c => history::history(c, team, filter))
    }
    async fn snapshots(
        &self,
        team: TeamId,
        instance: InstanceId,
        limit: i64,
    ) -> StoreResult<Vec<SnapshotMeta>> {
        read!(self, c => snapshots::snapshots_of(c, team, instance, limit))
    }
    async fn snapshot(&self, team: TeamId, id: SnapshotId) -> StoreResult<Snapshot> {
        read!(self, c => snapshots::snapshot(c, team, id))
    }

    async fn delivery_days(
        &self,
        team: TeamId,
        pipeline: Option<PipelineId>,
        since: chrono::NaiveDate,
        until: chrono::NaiveDate,
    ) -> StoreResult<(Vec<stagehand_domain::delivery::DeliveryDay>, u64)> {
        read!(self, c => async {
            let days = delivery::days(&mut *c, team, pipeline, since, until).await?;
            Ok((days, delivery::waiting(c, team, pipeline).await?))
        })
    }

    async fn rebuild_delivery(&self) -> StoreResult<u64> {
        let leads = read!(self, c => delivery::without_lead_time(c))?;
        for arrival in leads {
            let done: StoreResult<()> =
                write_tx!(self, c => delivery::rebuild_lead_time(c, arrival));
            done?;
        }
        let days = read!(self, c => delivery::all_days(c))?;
        let n = days.len() as u64;
        for day in days {
            let done: StoreResult<()> = write_tx!(self, c => delivery::rebuild_day(c, day));
            done?;
        }
        Ok(n)
    }

    async fn snapshot_promotions(
        &self,
        team: TeamId,
        id: SnapshotId,
    ) -> StoreResult<Vec<PromotionHead>> {
        read!(self, c => history::of_snapshot(c, team, id))
    }
    async fn rollbacks_of(
        &self,
        team: TeamId,
        promotion: PromotionId,
    ) -> StoreResult<Vec<PromotionHead>> {
        read!(self, c => history::rollbacks_of(c, team, promotion))
    }

    async fn snapshot_flows(
        &self,
        team: TeamId,
        id: SnapshotId,
    ) -> StoreResult<Vec<(FlowName, FlowContent)>> {
        read!(self, c => async {
            let snapshot = snapshots::snapshot(&mut *c, team, id).await?;
            instances::blobs(c, &snapshot.flows).await
        })
    }

    async fn audit_events(&self, team: TeamId, limit: i64) -> StoreResult<Vec<AuditEvent>> {
        read!(self, c => audit::list(c, team, limit))
    }
    async fn verify_audit_chain(&self, team: Option<TeamId>) -> StoreResult<ChainReport> {
        read!(self, c => audit::verify(c, team))
    }
    async fn audit_history(
        &self,
        team: Option<TeamId>,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEvent>> {
        read!(self, c => audit::history(c, team, filter))
    }

    async fn connect_runtime(
        &self,
        team: TeamId,
        instance: InstanceId,
        link: NewRuntimeLink,
        actor: &Actor,
    ) -> StoreResult<RuntimeLink> {
        write_tx!(self, c => runtimes::connect(c, &self.cipher, team, instance, link, actor))
    }
    async fn disconnect_runtime(
        &self,
        team: TeamId,
        instance: InstanceId,
        actor: &Actor,
    ) -> StoreResult<()> {
        write_tx!(self, c => runtimes::disconnect(c, team, instance, actor))
    }
    async fn runtime_link(
        &self,
        team: TeamId,
        instance: InstanceId,
    ) -> StoreResult<Option<RuntimeLink>> {
        read!(self, c => runtimes::link(c, team, instance))
    }
    async fn runtime_links(&self, team: TeamId) -> StoreResult<Vec<RuntimeLink>> {
        read!(self, c => runtimes::links(c, team))
    }
    async fn all_runtime_links(&self) -> StoreResult<Vec<(TeamId, RuntimeLink)>> {
        read!(self, c => runtimes::all_links(c))
    }
    async fn runtime_credentials(
        &self,
        team: TeamId,
        instance: InstanceId,
    ) -> StoreResult<(RuntimeLink, SecretValue)> {
        read!(self, c => runtimes::credentials(c, &self.cipher, team, instance))
    }
    async fn record_runtime_check(
        &self,
        team: TeamId,
        instance: InstanceId,
        state: RuntimeState,
        detail: Option<String>,
        changed_by: Option<String>,
    ) -> StoreResult<RuntimeLink> {
        write_tx!(self, c => runtimes::record_check(c, team, instance, state, detail, changed_by))
    }
    async fn record_pull(
        &self,
        team: TeamId,
        instance: InstanceId,
        pulled: PulledState,
        actor: &Actor,
    ) -> StoreResult<Instance> {
        write_tx!(self, c => runtimes::pull(c, &self.cipher, team, instance, pulled, actor))
    }
    async fn deployment(
        &self,
        team: TeamId,
        promotion: PromotionId,
    ) -> StoreResult<DeploymentInput> {
        read!(self, c => runtimes::deployment(c, &self.cipher, team, promotion))
    }
    async fn finish_deploy(
        &self,
        team: TeamId,
        promotion: PromotionId,
        outcome: DeployOutcome,
        actor: &Actor,
        reconciled: bool,
    ) -> StoreResult<Promotion> {
        write_tx!(self, c => runtimes::finish(c, team, promotion, outcome, actor, reconciled))
    }
    async fn deploying_promotions(
        &self,
        started_before: DateTime<Utc>,
    ) -> StoreResult<Vec<Promotion>> {
        read!(self, c => runtimes::deploying(c, started_before))
    }
    async fn claim_job(
        &self,
        name: &str,
        every: std::time::Duration,
        holder: &str,
    ) -> StoreResult<bool> {
        write_tx!(self, c => runtimes::claim_job(c, name, every, holder))
    }

    async fn purge(
        &self,
        policy: &RetentionPolicy,
        dry_run: bool,
        actor: &Actor,
    ) -> StoreResult<PurgeReport> {
        let mut tx = self.begin_write().await?;
        let report = retention::purge(&mut tx, policy, dry_run, actor).await?;
        // A dry run did the same deletes, to count them: it undoes them.
        if dry_run {
            tx.rollback().await?;
        } else {
            let committed = tx.commit().await;
            self.committed();
            committed?;
        }
        Ok(report)
    }
}
