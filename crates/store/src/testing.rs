//! Throwaway databases for tests (this crate's conformance suite and the
//! web server's integration tests): an empty SQLite file in a temporary
//! directory, or a fresh database on the PostgreSQL server `DATABASE_URL`
//! points at. Not used by the server itself.

use crate::crypto::SecretKey;
use crate::{Database, Store, StoreResult};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A SQLite disk a test can fill and free again, or make read-only and
/// writable again.
///
/// While full, every pooled connection runs with `PRAGMA max_page_count`
/// at the database's current size, so a write that needs one more page
/// fails with SQLite's own `database or disk is full`, as on a full disk.
///
/// While read-only, every connection handed out or opened is set
/// `PRAGMA query_only`, so a write fails with SQLite's `attempt to write a
/// readonly database`; and, as SQLite's own fallback to read-only when it
/// opens a file it cannot write, a connection stays so after the file is
/// writable again.
#[derive(Debug, Clone, Default)]
pub struct DiskSpace {
    full: Arc<AtomicBool>,
    read_only: Arc<AtomicBool>,
}

impl DiskSpace {
    pub fn fill(&self) {
        self.full.store(true, Ordering::SeqCst);
    }

    pub fn free(&self) {
        self.full.store(false, Ordering::SeqCst);
    }

    pub fn make_read_only(&self) {
        self.read_only.store(true, Ordering::SeqCst);
    }

    pub fn make_writable(&self) {
        self.read_only.store(false, Ordering::SeqCst);
    }

    /// Applies the current state to a connection (on connect and on every
    /// acquire, so a change reaches connections already in the pool).
    pub(crate) async fn apply(self, conn: &mut sqlx::SqliteConnection) -> sqlx::Result<()> {
        // SQLite never lowers the limit below the current size, and caps
        // it at its own maximum.
        let pages: u64 = if self.full.load(Ordering::SeqCst) {
            1
        } else {
            4_294_967_294
        };
        sqlx::query(&format!("pragma max_page_count = {pages}"))
            .execute(&mut *conn)
            .await?;
        if self.read_only.load(Ordering::SeqCst) {
            sqlx::query("pragma query_only = 1").execute(conn).await?;
        }
        Ok(())
    }
}

/// One empty, migrated database, removed by [`TestDatabase::cleanup`].
#[derive(Debug)]
pub struct TestDatabase {
    pub store: Arc<dyn Store>,
    pub database: Database,
    pub key: SecretKey,
    sqlite_dir: Option<PathBuf>,
    pg_admin: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn sqlite() -> StoreResult<Self> {
        Self::sqlite_on(None).await
    }

    /// A SQLite database on a disk the test can fill (see [`DiskSpace`]).
    pub async fn sqlite_with_disk(disk: DiskSpace) -> StoreResult<Self> {
        Self::sqlite_on(Some(disk)).await
    }

    async fn sqlite_on(disk: Option<DiskSpace>) -> StoreResult<Self> {
        let dir = std::env::temp_dir().join(format!("stagehand-test-{}", uuid::Uuid::new_v4()));
        let path = dir.join("stagehand.db");
        let database = Database::Sqlite { path: path.clone() };
        let key = SecretKey::generate();
        let s =
            crate::sqlite::SqliteStore::connect_with(&path, crate::crypto::Cipher::new(&key), disk)
                .await?;
        s.migrate().await?;
        s.check_key().await?;
        let store: Arc<dyn Store> = Arc::new(s);
        Ok(Self {
            store,
            database,
            key,
            sqlite_dir: Some(dir),
            pg_admin: None,
        })
    }

    /// A new database on the server of `DATABASE_URL`; `None` without one.
    pub async fn postgres() -> StoreResult<Option<Self>> {
        let Ok(admin) = std::env::var("DATABASE_URL") else {
            return Ok(None);
        };
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(&admin).await?;
        sqlx::query(&format!("create database {name}"))
            .execute(&pool)
            .await?;
        pool.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        let database = Database::Postgres {
            url: format!("{base}/{name}"),
        };
        let key = SecretKey::generate();
        let store = crate::open(&database, &key).await?;
        Ok(Some(Self {
            store,
            database,
            key,
            sqlite_dir: None,
            pg_admin: Some((admin, name)),
        }))
    }

    pub async fn cleanup(self) {
        drop(self.store);
        if let Some(dir) = self.sqlite_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((admin, name)) = self.pg_admin
            && let Ok(pool) = sqlx::PgPool::connect(&admin).await
        {
            let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                .execute(&pool)
                .await;
        }
    }
}
