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
    pub(crate) waiters: crate::Waiters,
    /// The pipeline page's instance states and snapshot manifests.
    pub(crate) overview_cache: crate::cache::OverviewCache,
    /// API tokens authenticated a moment ago (this process makes every
    /// change to the file, but for the CLI's: see the module).
    pub(crate) token_cache: crate::token_cache::TokenCache,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub async fn connect(path: &Path, cipher: Cipher) -> StoreResult<Self> {
        Self::connect_with(path, cipher, None).await
    }

    /// [`connect`](Self::connect), with a disk a test can fill.
    pub(crate) async fn connect_with(
        path: &Path,
        cipher: Cipher,
        disk: Option<crate::testing::DiskSpace>,
    ) -> StoreResult<Self> {
        let io = |e| crate::StoreError::Database(sqlx::Error::Io(e));
        if let Some(dir) = path.parent() {
            crate::files::create_private_dir(dir).map_err(io)?;
        }
        crate::files::create_private_file(path).map_err(io)?;
        Self::private_files(path).map_err(io)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let mut pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A file does not hang up: pinging each connection before
            // handing it out only costs a round trip to its worker thread.
            .test_before_acquire(false)
            .after_release(|conn, _| Box::pin(crate::outside_transaction(conn, true)));
        let before = disk.clone();
        pool = pool.before_acquire(move |c, meta| {
            let disk = before.clone();
            Box::pin(async move {
                // A connection opened while the file could not be written
                // stays read-only for good (SQLite falls back to read-only
                // at open): once a call found the file unavailable, every
                // connection from before then is replaced by a new one.
                if crate::outage::predates(meta.age) {
                    return Ok(false);
                }
                if let Some(disk) = disk {
                    disk.apply(c).await?;
                }
                Ok(true)
            })
        });
        if let Some(disk) = disk {
            pool = pool.after_connect(move |c, _| Box::pin(disk.clone().apply(c)));
        }
        let pool = pool.connect_with(options).await?;
        // The first connection created the -wal and -shm.
        Self::private_files(path).map_err(io)?;
        Ok(Self {
            pool,
            cipher,
            waiters: crate::Waiters::default(),
            overview_cache: crate::cache::OverviewCache::default(),
            token_cache: crate::token_cache::TokenCache::default(),
        })
    }

    /// The database and the files SQLite keeps next to it, 0600.
    fn private_files(path: &Path) -> std::io::Result<()> {
        crate::files::private_file(path)?;
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            crate::files::private_file(Path::new(&side))?;
        }
        Ok(())
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
        let _waiting = self.waiters.enter();
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub(crate) const KIND: crate::BackendKind = crate::BackendKind::Sqlite;

    /// This process is the file's one server: it may remember tokens.
    pub(crate) fn token_cache(&self) -> Option<&crate::token_cache::TokenCache> {
        Some(&self.token_cache)
    }
}

/// Writes a consistent copy of the database at `db` into the new file `to`
/// (mode 0600) with `VACUUM INTO`. That is one read transaction, so a
/// running server carries on serving, and writing, meanwhile. The copy is
/// a complete database: restore it by putting it in place of
/// `stagehand.db` while the server is stopped. It holds no key: env values
/// need the same secret key to be read again.
pub async fn backup(db: &Path, to: &Path) -> StoreResult<()> {
    let io = crate::StoreError::File;
    if !db.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("there is no SQLite database at {}", db.display()),
        )));
    }
    if to.symlink_metadata().is_ok() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists; back up into a new file", to.display()),
        )));
    }
    // Created private first: VACUUM INTO fills an empty file as it is.
    crate::files::create_new_private_file(to).map_err(|e| {
        io(std::io::Error::new(
            e.kind(),
            format!("cannot create {}: {e}", to.display()),
        ))
    })?;
    let options = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30));
    let mut conn: sqlx::SqliteConnection = sqlx::Connection::connect_with(&options).await?;
    let written = sqlx::query("vacuum into $1")
        .bind(to.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await;
    sqlx::Connection::close(conn).await?;
    if let Err(e) = written {
        let _ = std::fs::remove_file(to);
        return Err(e.into());
    }
    crate::files::private_file(to).map_err(io)?;
    Ok(())
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

/// Nothing to take: the write transaction (`BEGIN IMMEDIATE`) already
/// serialises login attempts, as every other writer.
pub(crate) async fn lock_login_scope(_conn: &mut Conn, _scope: &str) -> StoreResult<()> {
    Ok(())
}

/// Nothing to take: the write transaction already serialises purges, as
/// every other writer.
pub(crate) async fn lock_purge(_conn: &mut Conn) -> StoreResult<()> {
    Ok(())
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

/// The table function that lists the entries of a JSON object column,
/// `json_each`: its `value` column is each value, a string as text.
pub(crate) const JSON_EACH: &str = "json_each";

// Compiled once per backend on purpose: see sql/mod.rs.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

pub(crate) use sql::verify_audit_chain_on;
