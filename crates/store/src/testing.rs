//! Throwaway databases for tests (this crate's conformance suite and the
//! web server's integration tests): an empty SQLite file in a temporary
//! directory, or a fresh database on the PostgreSQL server `DATABASE_URL`
//! points at. Not used by the server itself.

use crate::crypto::SecretKey;
use crate::{Database, Store, StoreResult};
use std::path::PathBuf;
use std::sync::Arc;

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
        let dir = std::env::temp_dir().join(format!("stagehand-test-{}", uuid::Uuid::new_v4()));
        let database = Database::Sqlite {
            path: dir.join("stagehand.db"),
        };
        let key = SecretKey::generate();
        let store = crate::open(&database, &key).await?;
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
