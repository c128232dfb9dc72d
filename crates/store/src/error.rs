//! The store's errors: what went wrong in terms a caller can act on.

use stagehand_domain::{EnvKey, PromotionStatus, ValidationError};

/// Why a change could not be made as asked, given the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// A unique name or pairing is already taken.
    #[error("{message}")]
    Taken {
        field: &'static str,
        message: &'static str,
    },
    /// The source of a play changed since the preview the player saw.
    #[error(
        "{instance} changed since your preview (version {expected} then, {actual} now): review the plan again before you promote"
    )]
    SourceChanged {
        instance: String,
        expected: i64,
        actual: i64,
    },
    /// The instance changed since the caller last read it.
    #[error(
        "the instance changed since you loaded it (expected version {expected}, it is now {actual}); reload and try again"
    )]
    StaleVersion { expected: i64, actual: i64 },
    /// The idempotency key was used before for a different request.
    #[error("this idempotency key was already used for a different promotion")]
    IdempotencyKeyReused,
    /// The promotion is not in a status that allows this.
    #[error("the promotion is {}: it cannot be {} now", from.label(), to.as_done())]
    Transition {
        from: PromotionStatus,
        to: PromotionStatus,
    },
    /// The target stage requires every key to have a value.
    #[error("the target stage requires every env var to have a value; these would not: {}", keys_list(.0))]
    EnvValuesMissing(Vec<EnvKey>),
    /// The requester of a promotion tried to approve or reject it.
    #[error("you requested this promotion: someone else must approve it (you may withdraw it)")]
    OwnPromotion,
    /// A request for the same promotion already waits for approval.
    #[error(
        "a request to promote {from} into {to} is already waiting for approval (promotion {id}); \
         approve or reject it first"
    )]
    AlreadyPending {
        from: String,
        to: String,
        id: stagehand_domain::PromotionId,
    },
    /// The user already approved or rejected this promotion.
    #[error("you already decided on this promotion")]
    AlreadyDecided,
    /// The change would leave the team with no enabled member who holds
    /// `member.manage`: nobody could give or take a role there again.
    #[error(
        "this would leave the team with nobody who can manage its members (member.manage); give another member a role with member.manage first"
    )]
    LastManager,
    /// A stage with a request into or out of it awaiting approval: the
    /// request would outlive the stage, unseen on the pipeline's page.
    #[error(
        "a request to promote into or out of {instance} here is waiting for approval (promotion {id}): approve, reject or withdraw it first"
    )]
    RequestWaiting {
        instance: String,
        id: stagehand_domain::PromotionId,
    },
    /// A decision on a promotion no longer waiting for one.
    #[error("the promotion is {}: it no longer waits for a decision", .0.label())]
    Decided(PromotionStatus),
    /// The token was revoked already, or has expired.
    #[error("the token {0} was revoked already, or has expired: it no longer works")]
    TokenNotLive(String),
    /// A request into a stage that has left its pipeline since: what is
    /// still possible.
    #[error("the stage this is for was removed from its pipeline: {0}")]
    StageLeft(&'static str),
    /// The thing is still in use (e.g. an instance that is a stage).
    #[error("{0}")]
    InUse(&'static str),
    /// A promotion is being deployed into the instance's runtime; nothing
    /// else changes it until the runtime answers.
    #[error(
        "{instance} is being deployed to its runtime by promotion {id}; try again once it is applied or failed"
    )]
    Deploying {
        instance: String,
        id: stagehand_domain::PromotionId,
    },
    /// The instance mirrors a runtime: its flows change there (or by a
    /// promotion), then Stagehand pulls them.
    #[error(
        "{instance} is connected to {kind}: change its flows there and pull, or promote into it"
    )]
    Mirrored { instance: String, kind: String },
    /// A deploy or another pull was recorded while this pull read the
    /// runtime: what it read is older than what Stagehand now knows.
    #[error("{0} changed while it was being pulled; pull it again")]
    PulledMeanwhile(String),
    /// The instance is not connected to a runtime.
    #[error("{0} is not connected to a runtime")]
    NotConnected(String),
    /// The database aborted the transaction to resolve contention
    /// (deadlock or serialisation failure); retrying is safe.
    #[error("a concurrent change got in the way; try again")]
    Contention,
}

fn keys_list(keys: &[EnvKey]) -> String {
    keys.iter()
        .map(EnvKey::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing does not exist, or belongs to another team: the two are
    /// deliberately indistinguishable.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// A direct change of a protected instance by someone who does not
    /// manage protection: only an approved promotion or rollback may.
    #[error("{instance} is protected: it changes only through an approved promotion or rollback")]
    Protected { instance: String },
    /// The actor lacks what the store's own rules require (a grant beyond
    /// the grantor's permissions, changing protection, …).
    #[error("{0}")]
    Forbidden(&'static str),
    /// A grant (or removal) of permissions the actor does not hold.
    #[error("you cannot grant or take away permissions you do not hold yourself: {}", .0.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "))]
    BeyondGrantor(Vec<stagehand_domain::Permission>),
    /// A value could not be decrypted, or the key does not fit the data.
    #[error("encryption: {0}")]
    Crypto(String),
    /// The database cannot serve right now: unreachable, shutting down,
    /// out of connections, or out of disk. Nothing was changed; the same
    /// call may succeed later.
    /// (The cause is in the message, and deliberately not a `source`
    /// too: an error chain would print it twice.)
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// A file the store was asked to write (a backup) could not be.
    #[error("{0}")]
    File(std::io::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// Stored data that does not parse: a bug or tampering, never user input.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Unique constraints and the field and message each one maps to. Postgres
/// reports the constraint name; SQLite reports the columns.
const UNIQUE: &[(&str, &str, &str, &str)] = &[
    (
        "teams_name_key",
        "teams.name",
        "name",
        "a team with this name already exists",
    ),
    (
        "users_username_key",
        "users.username",
        "username",
        "this username is already taken",
    ),
    (
        "roles_team_name_key",
        "roles.team_id, roles.name",
        "name",
        "this team already has a role with this name",
    ),
    (
        "instances_team_name_key",
        "instances.team_id, instances.name",
        "name",
        "this team already has an instance with this name",
    ),
    (
        "pipelines_team_name_key",
        "pipelines.team_id, pipelines.name",
        "name",
        "this team already has a pipeline with this name",
    ),
    (
        "stages_pipeline_instance_key",
        "stages.pipeline_id, stages.instance_id",
        "instance_id",
        "this instance is already a stage of this pipeline",
    ),
    (
        "api_tokens_team_name_key",
        "api_tokens.team_id, api_tokens.name",
        "name",
        "this team already has a token with this name",
    ),
    (
        "role_bindings_pkey",
        "role_bindings.team_id, role_bindings.user_id, role_bindings.role",
        "role",
        "the user already holds this role in this team",
    ),
];

/// Whether the database failed for a reason of its own that may pass: it
/// cannot be reached or is shutting down, is out of connections or disk,
/// or cannot take writes. Not the caller's fault, and not a bug.
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // The primary result code is the low byte of the extended
                // one: SQLITE_BUSY (after the busy timeout), SQLITE_READONLY,
                // SQLITE_IOERR, SQLITE_FULL.
                let primary = code.parse::<i32>().unwrap_or(0) & 0xff;
                matches!(primary, 5 | 8 | 10 | 13)
            } else {
                // SQLSTATE classes 08 (connection exception) and 53
                // (insufficient resources: disk full, out of memory, too
                // many connections); 57P01-03 (shutting down, starting up);
                // 25006 (a read-only standby).
                code.starts_with("08")
                    || code.starts_with("53")
                    || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "25006")
            }
        }
        _ => false,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            crate::outage::seen();
            return StoreError::Unavailable(e);
        }
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                let (constraint, message) = (db.constraint().unwrap_or(""), db.message());
                if let Some((_, _, field, msg)) = UNIQUE
                    .iter()
                    .find(|(c, cols, _, _)| *c == constraint || message.ends_with(cols))
                {
                    return Conflict::Taken {
                        field,
                        message: msg,
                    }
                    .into();
                }
                if constraint == "promotions_team_idempotency_key"
                    || message.ends_with("promotions.team_id, promotions.idempotency_key")
                {
                    return Conflict::IdempotencyKeyReused.into();
                }
            }
            // 40001 serialization_failure, 40P01 deadlock_detected.
            if matches!(db.code().as_deref(), Some("40001" | "40P01")) {
                return Conflict::Contention.into();
            }
        }
        StoreError::Database(e)
    }
}
