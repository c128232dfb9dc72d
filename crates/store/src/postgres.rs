//! The PostgreSQL store: the production backend. Its queries are the shared
//! ones in `sql/`; this file holds only what the dialect forces: the pool,
//! migrations, and locks (`FOR UPDATE`, advisory locks).

use crate::crypto::Cipher;
use crate::error::StoreResult;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;

pub(crate) type Db = sqlx::Postgres;
pub(crate) type Conn = sqlx::PgConnection;
pub(crate) type Backend = PgStore;

/// A pooled connection idle this long is pinged before it is handed out.
const PING_IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// For this long after a database call failed for want of the database,
/// every pooled connection is pinged before it is handed out.
const PING_ALL_AFTER_OUTAGE: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: sqlx::PgPool,
    pub(crate) cipher: Cipher,
    pub(crate) waiters: crate::Waiters,
    /// The pipeline page's instance states and snapshot manifests.
    pub(crate) overview_cache: crate::cache::OverviewCache,
}

impl PgStore {
    pub async fn connect(url: &str, cipher: Cipher) -> StoreResult<Self> {
        Self::connect_with(url, cipher, &crate::StoreOptions::default()).await
    }

    /// Connects with a pool that waits at most `options.acquire_timeout`
    /// for a connection. With the server down, that is how long a request
    /// waits before its 503 (sqlx retries a refused connection until then).
    pub async fn connect_with(
        url: &str,
        cipher: Cipher,
        options: &crate::StoreOptions,
    ) -> StoreResult<Self> {
        let connect = PgConnectOptions::from_str(url)?.application_name("stagehand");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            // Idle connections go back to the server after a while, so a
            // quiet replica does not hold its whole pool.
            .idle_timeout(std::time::Duration::from_secs(60))
            .min_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .after_release(|conn, _| Box::pin(crate::outside_transaction(conn, false)))
            // sqlx pings every connection as it comes back to the pool and
            // closes one that does not answer, so a connection handed out
            // again soon after was alive a moment ago: pinging it once more
            // would cost a round trip per acquire. One idle for a while
            // (the server may have restarted meanwhile) is pinged, and
            // replaced if it is gone; so is every one for a while after the
            // database was found unreachable (others may have died too).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IDLE_AFTER
                        || crate::outage::within(PING_ALL_AFTER_OUTAGE)
                    {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect)
            .await?;
        Ok(Self {
            pool,
            cipher,
            waiters: crate::Waiters::default(),
            overview_cache: crate::cache::OverviewCache::default(),
        })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("../../migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    /// The pool, for tests and benchmarks that look behind the interface.
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }

    /// A transaction that will write. Writers serialise on row locks taken
    /// with [`lock_instance`].
    pub(crate) async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Db>> {
        let _waiting = self.waiters.enter();
        Ok(self.pool.begin().await?)
    }

    pub(crate) const KIND: crate::BackendKind = crate::BackendKind::Postgres;

    /// Other replicas change tokens, roles and members too: every request
    /// reads its token.
    pub(crate) fn token_cache(&self) -> Option<&crate::token_cache::TokenCache> {
        None
    }
}

/// Locks an instance row of the team for the rest of the transaction and
/// returns its version; `None` if there is no such instance in the team.
pub(crate) async fn lock_instance(
    conn: &mut Conn,
    team: stagehand_domain::TeamId,
    id: stagehand_domain::InstanceId,
) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar(
        "select version from instances where id = $1 and team_id = $2 for update",
    )
    .bind(id.0)
    .bind(team.0)
    .fetch_optional(conn)
    .await?)
}

/// The advisory-lock class of login throttling scopes (`b"lgin"`), so its
/// keys cannot collide with another use of advisory locks.
const LOGIN_SCOPE_LOCK_CLASS: i32 = 0x6c67_696e;

/// Serialises login attempts on one throttle scope until the transaction
/// ends: a transaction-scoped advisory lock on the scope's hash (two scopes
/// sharing a hash only wait for each other needlessly).
pub(crate) async fn lock_login_scope(conn: &mut Conn, scope: &str) -> StoreResult<()> {
    sqlx::query("select pg_advisory_xact_lock($1, hashtext($2))")
        .bind(LOGIN_SCOPE_LOCK_CLASS)
        .bind(scope)
        .execute(conn)
        .await?;
    Ok(())
}

/// The advisory-lock class of the purge (`b"prge"`).
const PURGE_LOCK_CLASS: i32 = 0x7072_6765;

/// Serialises purges (the CLI's and every replica's job) until the
/// transaction ends, so two never cut the same audit chain at once.
pub(crate) async fn lock_purge(conn: &mut Conn) -> StoreResult<()> {
    sqlx::query("select pg_advisory_xact_lock($1, 0)")
        .bind(PURGE_LOCK_CLASS)
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks a team row for the rest of the transaction, so changes that must
/// see every other change to the team's memberships (the last member who
/// manages it) take turns; `false` if there is no such team.
pub(crate) async fn lock_team(
    conn: &mut Conn,
    team: stagehand_domain::TeamId,
) -> StoreResult<bool> {
    let found: Option<uuid::Uuid> =
        sqlx::query_scalar("select id from teams where id = $1 for update")
            .bind(team.0)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

/// The table function that lists the entries of a JSON object column,
/// `jsonb_each_text`: its `value` column is each value as text.
pub(crate) const JSON_EACH: &str = "jsonb_each_text";

// Compiled once per backend on purpose: see sql/mod.rs.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

pub(crate) use sql::verify_audit_chain_on;
