//! Records the store returns and the requests it takes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stagehand_domain::plan::InstanceState;
use stagehand_domain::{
    AuditEventKind, ContentHash, EnvKey, FlowContent, FlowName, InstanceId, Name, Permission,
    PermissionSet, PipelineId, PromotionId, PromotionPlan, PromotionStatus, Protection,
    SecretValue, SnapshotId, StageId, TeamId, UserId, Username,
};
use std::collections::BTreeMap;

/// Who makes a change, and from where. Written into every audit event.
///
/// The store enforces its own rules with it, inside the transaction of the
/// change: protection of instances ([`Authority`] must hold
/// [`Permission::MANAGES_PROTECTION`]), grants that never exceed the
/// grantor's permissions, and approvals by people other than the requester.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// The person acting: a user, or the owner of a user's API token.
    /// `None` for Stagehand itself and for a service-account token.
    pub user_id: Option<UserId>,
    /// A username, a token's name, or `system`.
    pub name: String,
    pub source_ip: Option<String>,
    /// The person answerable for the change: `user_id`, or for a service
    /// account the user who created it. A promotion requested through a
    /// service account may not be approved by that person.
    pub accountable_user_id: Option<UserId>,
    /// What the actor holds in the team the change is about.
    #[serde(skip)]
    pub authority: Authority,
}

/// What an [`Actor`] may do, as far as the store's own rules go (routes
/// check their declared permission before the store is called).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authority {
    /// Stagehand itself, or an operator at the server's own CLI.
    Unlimited,
    /// A member, or an API token, holding these permissions in the team.
    Holds(PermissionSet),
}

impl Authority {
    pub fn may(&self, p: Permission) -> bool {
        match self {
            Self::Unlimited => true,
            Self::Holds(set) => set.contains(p),
        }
    }

    /// The permissions of `granted` the actor does not hold itself.
    pub fn lacks(&self, granted: &PermissionSet) -> Vec<Permission> {
        match self {
            Self::Unlimited => Vec::new(),
            Self::Holds(set) => set.lacks(granted),
        }
    }
}

impl Actor {
    /// Stagehand itself (migrations, the CLI acting locally).
    pub fn system() -> Self {
        Self {
            user_id: None,
            name: "system".into(),
            source_ip: None,
            accountable_user_id: None,
            authority: Authority::Unlimited,
        }
    }

    /// A user holding, until [`Actor::holding`] says otherwise, nothing.
    pub fn user(id: UserId, username: &Username) -> Self {
        Self {
            user_id: Some(id),
            name: username.to_string(),
            source_ip: None,
            accountable_user_id: Some(id),
            authority: Authority::Holds(PermissionSet::empty()),
        }
    }

    /// The same actor, holding `permissions` in the team at hand.
    pub fn holding(mut self, permissions: PermissionSet) -> Self {
        self.authority = Authority::Holds(permissions);
        self
    }

    pub fn from_ip(mut self, ip: impl Into<String>) -> Self {
        self.source_ip = Some(ip.into());
        self
    }

    /// Whether the actor may change protected instances directly.
    pub fn manages_protection(&self) -> bool {
        self.authority.may(Permission::MANAGES_PROTECTION)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Team {
    pub id: TeamId,
    pub name: Name,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub username: Username,
    pub is_platform_admin: bool,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A user with their password hash, for login only.
#[derive(Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
}

impl std::fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCredentials")
            .field("user", &self.user)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: Username,
    /// An encoded Argon2id (PHC) hash; the store never sees passwords.
    pub password_hash: String,
    pub is_platform_admin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomRole {
    pub id: stagehand_domain::RoleId,
    pub team_id: TeamId,
    pub name: Name,
    pub permissions: PermissionSet,
}

/// An instance with its settings. Not `Serialize` on purpose: the settings'
/// values are for those who may edit the instance, so every answer that
/// shows an instance chooses what of the settings it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: InstanceId,
    pub team_id: TeamId,
    pub name: Name,
    pub settings: serde_json::Value,
    /// Whether, and how, the instance guards itself.
    pub protection: Protection,
    /// Bumped by every change to the instance's flows, env vars or settings.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the settings last changed (the creation time if never since).
    pub settings_updated_at: DateTime<Utc>,
}

impl Instance {
    /// The settings' top-level keys, in order.
    pub fn setting_keys(&self) -> Vec<String> {
        self.settings
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// A flow without its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowMeta {
    pub name: FlowName,
    pub hash: ContentHash,
    pub size_bytes: i64,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub meta: FlowMeta,
    pub content: FlowContent,
}

/// An env var as anyone may see it: the key and whether it has a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvVarMeta {
    pub key: EnvKey,
    pub has_value: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pipeline {
    pub id: PipelineId,
    pub team_id: TeamId,
    pub name: Name,
    pub created_at: DateTime<Utc>,
    /// In order, first to last.
    pub stages: Vec<Stage>,
}

impl Pipeline {
    /// The stage and the one after it, for a play on `stage`.
    pub fn stage_and_next(&self, stage: StageId) -> Option<(&Stage, Option<&Stage>)> {
        let i = self.stages.iter().position(|s| s.id == stage)?;
        Some((&self.stages[i], self.stages.get(i + 1)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    pub id: StageId,
    pub instance_id: InstanceId,
    pub instance_name: Name,
    /// 0-based.
    pub position: i64,
    /// The protection of the stage's instance (it belongs to the instance).
    pub protection: Protection,
}

/// Why a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotReason {
    /// The source of a promotion, as it was at request time.
    PromotionSource,
    /// The target of a promotion, just before the promotion changed it.
    PromotionBackup,
    /// The target just before a rollback changed it.
    RollbackBackup,
    /// A connected instance as its runtime held it when pulled.
    RuntimePull,
}

impl SnapshotReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PromotionSource => "promotion_source",
            Self::PromotionBackup => "promotion_backup",
            Self::RollbackBackup => "rollback_backup",
            Self::RuntimePull => "runtime_pull",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::PromotionSource,
            Self::PromotionBackup,
            Self::RollbackBackup,
            Self::RuntimePull,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// An immutable record of an instance's flows and env keys (never values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub id: SnapshotId,
    pub team_id: TeamId,
    pub instance_id: InstanceId,
    pub reason: SnapshotReason,
    pub content_hash: ContentHash,
    pub flows: BTreeMap<FlowName, ContentHash>,
    pub env_keys: Vec<EnvKey>,
    pub created_at: DateTime<Utc>,
}

impl Snapshot {
    /// What the planner sees of the snapshot: its flows and its keys (a
    /// snapshot keeps no values, so no key counts as awaiting one).
    pub fn state(&self) -> InstanceState {
        InstanceState {
            flows: self.flows.clone(),
            env: self
                .env_keys
                .iter()
                .map(|k| (k.clone(), stagehand_domain::EnvKeyState::HasValue))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Promotion {
    pub id: PromotionId,
    pub team_id: TeamId,
    pub pipeline_id: PipelineId,
    pub source_stage_id: StageId,
    pub target_stage_id: StageId,
    pub source_instance_id: InstanceId,
    pub target_instance_id: InstanceId,
    pub status: PromotionStatus,
    /// Pinned at request time: what was reviewed is what ships.
    pub source_snapshot_id: SnapshotId,
    /// The target as it was before this promotion; set once applied.
    pub backup_snapshot_id: Option<SnapshotId>,
    /// The target's version this promotion produced, once applied.
    pub target_version: Option<i64>,
    /// The target's version when the promotion was requested.
    pub requested_target_version: Option<i64>,
    pub plan: PromotionPlan,
    /// The person answerable for the request (for a service account, the
    /// user who created it): they may not approve it.
    pub requested_by_user_id: Option<UserId>,
    pub requested_by: String,
    pub idempotency_key: Option<String>,
    /// Set on a requested rollback into a protected instance: the
    /// promotion it undoes once approved.
    pub rollback_of: Option<PromotionId>,
    pub created_at: DateTime<Utc>,
    pub applied_at: Option<DateTime<Utc>>,
    pub rolled_back_at: Option<DateTime<Utc>>,
    /// Who rolled it back (an actor's name, as `requested_by`).
    pub rolled_back_by: Option<String>,
    /// Into a connected target: the runtime's revision once it accepted.
    pub runtime_revision: Option<String>,
    /// Into a connected target: why the runtime did not take it.
    pub runtime_error: Option<String>,
    /// The requester chose to overwrite a target changed in its runtime.
    pub overwrite_drift: bool,
    /// When the promotion was sent to the target's runtime.
    pub deploy_started_at: Option<DateTime<Utc>>,
}

impl Promotion {
    /// A restore of the instance to one of its own snapshots (not a
    /// rollback of a promotion): its source and target are one stage.
    pub fn is_restore(&self) -> bool {
        self.source_stage_id == self.target_stage_id && self.rollback_of.is_none()
    }
}

/// What a play did: a new promotion, or the first one again for a retry
/// with the same idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Played {
    pub promotion: Promotion,
    /// The request repeated an earlier one; nothing new was created.
    pub replayed: bool,
}

/// A promotion without its plan: what lists and cards show, cheap to read
/// many of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromotionHead {
    pub id: PromotionId,
    pub pipeline_id: PipelineId,
    pub source_stage_id: StageId,
    pub target_stage_id: StageId,
    pub source_instance_id: InstanceId,
    pub target_instance_id: InstanceId,
    pub status: PromotionStatus,
    pub requested_by_user_id: Option<UserId>,
    pub requested_by: String,
    /// Set on a requested rollback: the promotion it undoes.
    pub rollback_of: Option<PromotionId>,
    pub created_at: DateTime<Utc>,
}

impl PromotionHead {
    /// See [`Promotion::is_restore`].
    pub fn is_restore(&self) -> bool {
        self.source_stage_id == self.target_stage_id && self.rollback_of.is_none()
    }
}

impl From<&Promotion> for PromotionHead {
    fn from(p: &Promotion) -> Self {
        Self {
            id: p.id,
            pipeline_id: p.pipeline_id,
            source_stage_id: p.source_stage_id,
            target_stage_id: p.target_stage_id,
            source_instance_id: p.source_instance_id,
            target_instance_id: p.target_instance_id,
            status: p.status,
            requested_by_user_id: p.requested_by_user_id,
            requested_by: p.requested_by.clone(),
            rollback_of: p.rollback_of,
            created_at: p.created_at,
        }
    }
}

/// One press of play.
#[derive(Debug, Clone)]
pub struct PromotionRequest {
    pub team: TeamId,
    pub pipeline: PipelineId,
    /// The source stage; its next stage is the target.
    pub stage: StageId,
    pub actor: Actor,
    /// A retry with the same key returns the first promotion.
    pub idempotency_key: Option<String>,
    /// The target version the preview was computed against; a promotion
    /// into a target that changed since fails with a conflict.
    pub expected_target_version: Option<i64>,
    /// Into a connected target that changed in its runtime since Stagehand
    /// last saw it: overwrite it anyway (audited).
    pub overwrite_drift: bool,
    /// The source version the preview showed; a play of a source that
    /// changed since fails with a conflict (what ships is what was
    /// reviewed). Not for a chosen snapshot or a restore.
    pub expected_source_version: Option<i64>,
    /// Promote this snapshot of the source instance instead of its current
    /// state (an earlier known-good state, say); it is pinned as the
    /// promotion's source snapshot.
    pub source_snapshot: Option<SnapshotId>,
    /// Restore the stage's own instance to `source_snapshot` (one of its
    /// snapshots, required) instead of promoting into the next stage. A
    /// restore is a promotion like any other: the target's protection,
    /// approvals, runtime deploy, backup and audit all apply.
    pub restore: bool,
}

/// What play on a stage would do, computed without changing anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preview {
    pub source: Stage,
    pub target: Stage,
    pub source_version: i64,
    pub target_version: i64,
    pub plan: PromotionPlan,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub id: stagehand_domain::AuditEventId,
    pub team_id: Option<TeamId>,
    pub actor_user_id: Option<UserId>,
    pub actor: String,
    pub source_ip: Option<String>,
    pub kind: String,
    pub subject_id: Option<uuid::Uuid>,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// An audit event about to be written, inside the change it records.
#[derive(Debug, Clone)]
pub struct NewAuditEvent<'a> {
    pub team: Option<TeamId>,
    pub actor: &'a Actor,
    pub kind: AuditEventKind,
    pub subject: Option<uuid::Uuid>,
    pub details: serde_json::Value,
}

/// A login throttling scope (`user:NAME`, `ip:ADDRESS`) and how many
/// failed attempts it may hold inside the throttle window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginScope {
    pub scope: String,
    pub limit: i64,
}

/// A login attempt, counted against each of its scopes before its password
/// is checked (one counted row per scope). A failure leaves it counted; a
/// success releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginAttempt {
    pub(crate) rows: Vec<uuid::Uuid>,
}

/// A web session about to be created. The store keeps only the token's
/// hash; the token itself lives in the user's cookie.
#[derive(Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub user_id: UserId,
    pub csrf_token: String,
    /// The absolute expiry: the session ends then, however active.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A live web session and its user.
#[derive(Clone)]
pub struct Session {
    pub token_hash: String,
    pub user: User,
    /// The synchronizer token every state-changing request must carry.
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user.username)
            .field("last_seen_at", &self.last_seen_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A user of a team, and the roles they hold in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub user: User,
    pub roles: Vec<String>,
}

/// A session, and the team a request is about when its user is a member.
#[derive(Debug, Clone)]
pub struct SessionInTeam {
    pub session: Session,
    /// The team and the user's permissions in it; `None` if the user holds
    /// no role there (or no team was asked about).
    pub membership: Option<(Team, PermissionSet)>,
}

/// A team the user belongs to, and the roles they hold in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub team: Team,
    pub roles: Vec<String>,
}

/// Which promotions a history query returns: every set field must match.
/// Results come newest first; `before` continues after the last row of the
/// previous page (keyset pagination: no offset scans).
#[derive(Debug, Clone, Default)]
pub struct PromotionFilter {
    pub pipeline: Option<PipelineId>,
    /// Promotions out of or into this stage.
    pub stage: Option<StageId>,
    pub actor: Option<String>,
    pub status: Option<PromotionStatus>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub before: Option<(DateTime<Utc>, PromotionId)>,
    pub limit: i64,
}

/// Which audit events a query returns, newest first; see [`PromotionFilter`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub before: Option<(DateTime<Utc>, stagehand_domain::AuditEventId)>,
    pub limit: i64,
}

/// Most rows one history query returns.
pub const MAX_PAGE: i64 = 1000;

/// One reviewer's decision on a pending promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub user_id: UserId,
    pub username: String,
    /// `approve` or `reject`.
    pub decision: String,
    /// Why, in the reviewer's words, if they said.
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A reviewer's answer to a pending promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }
}

/// What the pipeline page shows, read on one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineOverview {
    pub pipeline: Pipeline,
    /// One card per stage, in order.
    pub stages: Vec<StageOverview>,
    /// The team's instances by name: read when asked for (to offer them as
    /// new stages), and whenever a card's promotion comes from an instance
    /// that is no stage here (one removed since), so that it can be named.
    /// Empty otherwise.
    pub team_instances: Vec<InstanceName>,
}

/// An instance's id and name, no more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceName {
    pub id: InstanceId,
    pub name: Name,
}

/// What a stage's card on the pipeline page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct StageOverview {
    pub stage: Stage,
    /// The stage's instance as the planner sees it: each flow's content
    /// hash and each key's state, never a value. Comparing it with the
    /// previous stage's tells whether this one is behind, without reading
    /// a flow.
    pub state: std::sync::Arc<InstanceState>,
    /// The state's content hash: stages holding the same have the same.
    pub state_hash: ContentHash,
    /// The newest promotion applied into the stage (rolled back since,
    /// perhaps), with what it left there.
    pub arrival: Option<Arrival>,
    /// Promotions into the stage awaiting approval, newest first.
    pub pending: Vec<PendingRequest>,
    /// Its instance's runtime connection, if it has one (as last seen:
    /// the page looks at the runtime itself).
    pub runtime: Option<RuntimeLink>,
}

/// How a stage got what it has: the newest promotion applied into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub promotion: PromotionHead,
    pub applied_at: Option<DateTime<Utc>>,
    pub rolled_back_at: Option<DateTime<Utc>>,
    pub rolled_back_by: Option<String>,
    /// The flows the promotion left in the stage: its pinned snapshot's,
    /// or after a rollback the backup's. Today's flows differing from them
    /// were changed in the stage since.
    pub left_flows: std::sync::Arc<BTreeMap<FlowName, ContentHash>>,
}

/// A promotion awaiting approval, with the approvals it has so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    pub promotion: PromotionHead,
    pub approvals: u32,
}

/// A snapshot as a line of a list: without its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotMeta {
    pub id: SnapshotId,
    pub reason: SnapshotReason,
    pub content_hash: ContentHash,
    pub created_at: DateTime<Utc>,
}

/// An API token, without its secret (only a hash of it is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: stagehand_domain::TokenId,
    pub team_id: TeamId,
    pub name: Name,
    /// The user it acts for; `None` for a team service account.
    pub user_id: Option<UserId>,
    pub role: String,
    pub created_by: String,
    /// The user who created it, when a user did (not the local CLI).
    pub created_by_user_id: Option<UserId>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ApiToken {
    /// Whether the token may be used at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }

    /// The actor its requests are audited as: the token's name.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.user_id,
            name: format!("token:{}", self.name),
            source_ip: None,
            accountable_user_id: self.user_id.or(self.created_by_user_id),
            authority: Authority::Holds(PermissionSet::empty()),
        }
    }
}

/// A token about to be created; the caller made the secret and hashed it.
#[derive(Clone)]
pub struct NewApiToken {
    pub team: TeamId,
    pub name: Name,
    pub secret_hash: String,
    pub user_id: Option<UserId>,
    pub role: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for NewApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiToken")
            .field("team", &self.team)
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// What verifying an audit chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Events whose hash and link were checked.
    pub checked: i64,
    pub intact: bool,
    pub first_break: Option<ChainBreak>,
}

/// The first place an audit chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// The position in the chain (1 is the first event).
    pub seq: i64,
    /// The event at that position, if it is still there.
    pub event_id: Option<stagehand_domain::AuditEventId>,
    pub reason: String,
}

/// What the purge ([`crate::Store::purge`]) removes. The default keeps
/// everything anyone may still read or roll back, and removes only what
/// nobody can use any more: expired sessions, failed-login rows past every
/// throttle window, and flow content no instance and no snapshot refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionPolicy {
    /// Snapshots kept per instance, newest first. A snapshot a kept
    /// promotion points to (its source, its backup) is kept whatever this
    /// says, so every kept promotion can still be rolled back. `None`:
    /// every snapshot is kept.
    pub keep_snapshots_per_instance: Option<u32>,
    /// Finished promotions (never pending or deploying ones) and audit
    /// events older than this are purged; each audit chain keeps its
    /// newest event and is anchored at its first kept one. `None`: kept
    /// forever.
    pub max_age: Option<std::time::Duration>,
    /// Failed-login rows older than this are purged: longer than any
    /// throttle window, or the throttle would forget failures it counts.
    pub login_failures_max_age: std::time::Duration,
}

impl RetentionPolicy {
    /// How long failed-login rows are kept by default: a day.
    pub const DEFAULT_LOGIN_FAILURES_MAX_AGE: std::time::Duration =
        std::time::Duration::from_secs(24 * 60 * 60);
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            keep_snapshots_per_instance: None,
            max_age: None,
            login_failures_max_age: Self::DEFAULT_LOGIN_FAILURES_MAX_AGE,
        }
    }
}

/// What a purge removed, or with `dry_run` would have removed: rows per
/// category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub dry_run: bool,
    pub sessions: u64,
    pub login_failures: u64,
    pub promotions: u64,
    /// The approvals of the purged promotions.
    pub approvals: u64,
    pub snapshots: u64,
    pub flow_blobs: u64,
    pub audit_events: u64,
    /// Audit chains whose old events were kept because the chain does not
    /// verify: purging them would erase the evidence.
    pub chains_not_purged: Vec<ChainNotPurged>,
}

impl PurgeReport {
    /// Rows removed (or that would be), over every category.
    pub fn total(&self) -> u64 {
        self.sessions
            + self.login_failures
            + self.promotions
            + self.approvals
            + self.snapshots
            + self.flow_blobs
            + self.audit_events
    }
}

/// An audit chain the purge left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainNotPurged {
    /// `platform`, or the team's id.
    pub chain: String,
    pub team: Option<TeamId>,
    pub first_break: ChainBreak,
}

/// What the last look at a connected instance's runtime found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeState {
    /// Not checked since it was connected.
    Unknown,
    /// The runtime holds the revision Stagehand last pulled or deployed.
    InSync,
    /// The runtime changed behind Stagehand's back.
    Drifted,
    Unreachable,
    AuthFailed,
}

impl RuntimeState {
    pub const ALL: [RuntimeState; 5] = [
        Self::Unknown,
        Self::InSync,
        Self::Drifted,
        Self::Unreachable,
        Self::AuthFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::InSync => "in_sync",
            Self::Drifted => "drifted",
            Self::Unreachable => "unreachable",
            Self::AuthFailed => "auth_failed",
        }
    }

    /// How a person reads it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unknown => "not checked yet",
            Self::InSync => "in sync",
            Self::Drifted => "drifted",
            Self::Unreachable => "unreachable",
            Self::AuthFailed => "auth failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A connected instance's runtime as Stagehand knows it. Never holds the
/// credentials: those are read only by [`crate::Store::runtime_credentials`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeLink {
    pub instance_id: InstanceId,
    /// `node-red` or `langflow`.
    pub kind: String,
    pub url: String,
    /// The runtime's revision when Stagehand last pulled or deployed.
    pub revision: Option<String>,
    pub synced_at: Option<DateTime<Utc>>,
    pub last_pull_at: Option<DateTime<Utc>>,
    pub state: RuntimeState,
    /// What the last check said (an error, the revision it found).
    pub state_detail: Option<String>,
    /// Who changed the runtime, when it says so.
    pub changed_by: Option<String>,
    pub checked_at: Option<DateTime<Utc>>,
    pub connected_at: DateTime<Utc>,
    pub connected_by: String,
}

/// Connects an instance to a runtime.
#[derive(Debug, Clone)]
pub struct NewRuntimeLink {
    pub kind: String,
    pub url: String,
    /// The credentials, as the runtime crate serialises them; sealed at rest.
    pub auth: SecretValue,
}

/// What a pull found for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PulledValue {
    Value(SecretValue),
    /// Only the runtime knows the value (a Langflow Credential variable).
    HeldByRuntime,
    Empty,
}

/// A runtime's content, in Stagehand's terms, to record as the instance.
#[derive(Debug, Clone)]
pub struct PulledState {
    pub revision: String,
    pub flows: Vec<(FlowName, FlowContent)>,
    pub env: Vec<(EnvKey, PulledValue)>,
    pub changed_by: Option<String>,
    /// When the pull asked the runtime: a deploy or pull recorded since
    /// makes this one stale (refused rather than recorded over it).
    pub started_at: DateTime<Utc>,
}

/// Everything a deploy sends: the flows the target will hold and the
/// target's own values. Built by [`crate::Store::deployment`].
#[derive(Debug, Clone)]
pub struct DeploymentInput {
    pub promotion: Promotion,
    pub link: RuntimeLink,
    pub flows: Vec<(FlowName, FlowContent)>,
    /// The target's values for every key it will hold (`None`: awaiting).
    pub values: Vec<(EnvKey, Option<SecretValue>)>,
}

/// How a runtime answered a deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployOutcome {
    /// The runtime took it; this is its new revision.
    Accepted { revision: String },
    /// It did not. `drifted`: because the runtime changed since Stagehand
    /// last saw it.
    Failed { error: String, drifted: bool },
}
