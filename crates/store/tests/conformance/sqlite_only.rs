//! Cases that run on SQLite only, each saying why.

use stagehand_domain::Name;
use stagehand_store::testing::{DiskSpace, TestDatabase};
use stagehand_store::{Actor, StoreError};

fn name(n: &str) -> Name {
    Name::parse("name", n).unwrap()
}

/// SQLite only: the full disk is simulated with SQLite's `max_page_count`
/// pragma; PostgreSQL's equivalent failure (a server that stops answering)
/// is the web suite's `a_stopped_postgres_answers_a_fast_503`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_cleanly_and_they_recover_once_space_returns() {
    let disk = DiskSpace::default();
    let db = TestDatabase::sqlite_with_disk(disk.clone()).await.unwrap();
    let store = db.store.clone();
    let team = store
        .create_team(name("payments"), &Actor::system())
        .await
        .unwrap()
        .id;
    store.ready().await.unwrap();

    disk.fill();
    // Settings large enough to need new pages, whatever the free list holds.
    let big = serde_json::json!({ "blob": "x".repeat(200 * 1024) });
    for i in 0..6 {
        let err = store
            .create_instance(
                team,
                name(&format!("big-{i}")),
                big.clone(),
                &Actor::system(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
    let err = store.ready().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");

    disk.free();
    store.ready().await.unwrap();
    // Every pooled connection takes writes again: none was left inside a
    // transaction by the failures.
    for i in 0..12 {
        store
            .create_instance(
                team,
                name(&format!("small-{i}")),
                serde_json::json!({}),
                &Actor::system(),
            )
            .await
            .unwrap_or_else(|e| panic!("write {i} after space returned: {e}"));
    }
    store
        .create_instance(team, name("big-again"), big, &Actor::system())
        .await
        .unwrap();
    assert_eq!(store.instances(team).await.unwrap().len(), 13);
    db.cleanup().await;
}

/// SQLite only: a file SQLite opens while it cannot write it is opened
/// read-only, and that connection stays so (simulated with `query_only`,
/// since the tests run as root, whom file modes do not stop). Once the
/// file is writable again, writes work again without a restart: the pool
/// replaces every connection it held from before the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_file_fails_writes_and_they_recover_once_it_is_writable() {
    let disk = DiskSpace::default();
    let db = TestDatabase::sqlite_with_disk(disk.clone()).await.unwrap();
    let store = db.store.clone();
    let team = store
        .create_team(name("payments"), &Actor::system())
        .await
        .unwrap()
        .id;

    disk.make_read_only();
    // Several at once, so that the pool opens connections meanwhile.
    let writes = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create_instance(
                    team,
                    name(&format!("ro-{i}")),
                    serde_json::json!({}),
                    &Actor::system(),
                )
                .await
        })
    });
    for w in writes {
        let err = w.await.unwrap().unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
    assert!(store.instances(team).await.unwrap().is_empty());

    disk.make_writable();
    for i in 0..12 {
        store
            .create_instance(
                team,
                name(&format!("rw-{i}")),
                serde_json::json!({}),
                &Actor::system(),
            )
            .await
            .unwrap_or_else(|e| panic!("write {i} after the file is writable again: {e}"));
    }
    store.ready().await.unwrap();
    assert_eq!(store.instances(team).await.unwrap().len(), 12);
    db.cleanup().await;
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// SQLite only: PostgreSQL keeps its files itself.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_directory_and_files_are_private_to_the_user() {
    use std::os::unix::fs::PermissionsExt;
    let root = std::env::temp_dir().join(format!("stagehand-modes-{}", uuid::Uuid::new_v4()));

    // Created here: a 0700 directory with 0600 files, whatever the umask.
    let fresh = root.join("fresh").join("data");
    let path = fresh.join("stagehand.db");
    let database = stagehand_store::Database::Sqlite { path: path.clone() };
    let key = stagehand_store::crypto::SecretKey::generate();
    let store = stagehand_store::open(&database, &key).await.unwrap();
    store
        .create_team(name("payments"), &Actor::system())
        .await
        .unwrap();
    assert_eq!(mode(&fresh), 0o700);
    for file in ["stagehand.db", "stagehand.db-wal", "stagehand.db-shm"] {
        assert_eq!(mode(&fresh.join(file)), 0o600, "{file}");
    }
    drop(store);

    // Left readable by an older version: made private again at start.
    for file in ["stagehand.db", "stagehand.db-wal", "stagehand.db-shm"] {
        let p = fresh.join(file);
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let store = stagehand_store::open(&database, &key).await.unwrap();
    store.teams().await.unwrap();
    for file in ["stagehand.db", "stagehand.db-wal", "stagehand.db-shm"] {
        assert_eq!(mode(&fresh.join(file)), 0o600, "{file}");
    }
    drop(store);
    std::fs::remove_dir_all(root).unwrap();
}

/// SQLite only: PostgreSQL reads the token on every request; the embedded
/// store remembers a token it authenticated for up to a second. A change
/// this process commits is seen at once (the shared cases check revoking,
/// expiring, disabling and changing roles); a change another process makes
/// to the same file (the CLI while the server runs) within that second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_by_another_process_stops_working_within_a_second() {
    let db = TestDatabase::sqlite().await.unwrap();
    let server = db.store.clone();
    let team = server
        .create_team(name("payments"), &Actor::system())
        .await
        .unwrap()
        .id;
    let token = server
        .create_token(
            stagehand_store::NewApiToken {
                team,
                name: name("ci"),
                secret_hash: "hash-ci".into(),
                user_id: None,
                role: "lead".into(),
                expires_at: None,
            },
            &Actor::system(),
        )
        .await
        .unwrap();
    assert!(
        server
            .authenticate_token("hash-ci")
            .await
            .unwrap()
            .is_some()
    );

    // The CLI: its own store on the same file.
    let cli = stagehand_store::open(&db.database, &db.key).await.unwrap();
    cli.revoke_token(team, token.id, &Actor::system())
        .await
        .unwrap();
    assert!(cli.authenticate_token("hash-ci").await.unwrap().is_none());

    let revoked_at = std::time::Instant::now();
    while server
        .authenticate_token("hash-ci")
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_millis(1500),
            "the server still takes a token another process revoked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(cli);
    db.cleanup().await;
}
