//! The SQLite store: the embedded, zero-setup default (single node). Its
//! queries are the shared ones in `sql/`; this file holds only what the
//! dialect forces: the file and its pragmas, migrations, and write
//! serialisation (`BEGIN IMMEDIATE` takes the database's one write lock up
//! front, so there are no row locks to take).

use crate::crypto::Cipher;
use crate::error::StoreResult;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::Duration;

pub(crate) type Db = sqlx::Sqlite;
pub(crate) type Conn = sqlx::SqliteConnection;
pub(crate) type Backend = SqliteStore;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: sqlx::SqlitePool,
    pub(crate) cipher: Cipher,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub async fn connect(path: &Path, cipher: Cipher) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| crate::StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(Self { pool, cipher })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("../../migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    /// The pool, for tests and benchmarks that look behind the interface.
    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }

    /// A transaction that will write: `BEGIN IMMEDIATE`, so a transaction
    /// that reads before it writes never fails to upgrade its lock.
    pub(crate) async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Db>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub(crate) const KIND: crate::BackendKind = crate::BackendKind::Sqlite;
}

/// The instance's version; the write transaction already excludes every
/// other writer. `None` if there is no such instance in the team.
pub(crate) async fn lock_instance(
    conn: &mut Conn,
    team: stagehand_domain::TeamId,
    id: stagehand_domain::InstanceId,
) -> StoreResult<Option<i64>> {
    Ok(
        sqlx::query_scalar("select version from instances where id = $1 and team_id = $2")
            .bind(id.0)
            .bind(team.0)
            .fetch_optional(conn)
            .await?,
    )
}

/// Whether the team exists; the write transaction already excludes every
/// other writer, so there is nothing to lock.
pub(crate) async fn lock_team(
    conn: &mut Conn,
    team: stagehand_domain::TeamId,
) -> StoreResult<bool> {
    let found: Option<uuid::Uuid> = sqlx::query_scalar("select id from teams where id = $1")
        .bind(team.0)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

// Compiled once per backend on purpose: see sql/mod.rs.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;
