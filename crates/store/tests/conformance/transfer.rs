//! Moving a SQLite store to PostgreSQL (`stagehand_store::transfer`): the
//! copy list covers the schema, a seeded store arrives whole and readable,
//! and a target that is not empty or a source in use is refused. The
//! PostgreSQL halves need `DATABASE_URL`; without it they say so and pass.

use crate::harness::{actor, content, flow, name_of, request};
use stagehand_domain::{EnvKey, Permission, PermissionSet, SecretValue, Username};
use stagehand_store::crypto::{Cipher, SecretKey};
use stagehand_store::postgres::PgStore;
use stagehand_store::sqlite::SqliteStore;
use stagehand_store::transfer::{self, MIGRATIONS_TABLE, TABLES, TransferError};
use stagehand_store::{NewApiToken, NewRuntimeLink, NewUser, Store};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// A fresh, empty database on the `DATABASE_URL` server: its URL and a
/// guard that drops it.
pub struct PgDatabase {
    pub url: String,
    admin: String,
    name: String,
}

impl PgDatabase {
    pub async fn create() -> Option<Self> {
        let Ok(admin) = std::env::var("DATABASE_URL") else {
            eprintln!("skipped: DATABASE_URL is not set (scripts/test.sh sets it)");
            return None;
        };
        let name = format!("move_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(&admin).await.unwrap();
        sqlx::query(&format!("create database {name}"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap().to_owned();
        Some(Self {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }

    pub async fn drop_it(self) {
        let pool = sqlx::PgPool::connect(&self.admin).await.unwrap();
        let _ = sqlx::query(&format!(
            "drop database if exists {} with (force)",
            self.name
        ))
        .execute(&pool)
        .await;
    }
}

fn temp_sqlite() -> PathBuf {
    std::env::temp_dir()
        .join(format!("stagehand-move-{}", uuid::Uuid::new_v4()))
        .join("stagehand.db")
}

async fn migrated_sqlite(path: &std::path::Path, key: &SecretKey) -> SqliteStore {
    let s = SqliteStore::connect(path, Cipher::new(key)).await.unwrap();
    s.migrate().await.unwrap();
    s.check_key().await.unwrap();
    s
}

/// Every table of the migrated SQLite schema is in the copy list with its
/// primary key, after the tables it references; and so on PostgreSQL.
/// A migration adding a table fails this until the table is listed.
#[tokio::test]
async fn the_copy_list_names_every_table_of_the_schema() {
    let listed: BTreeSet<&str> = TABLES.iter().map(|t| t.name).collect();
    assert_eq!(listed.len(), TABLES.len(), "a table is listed twice");

    let path = temp_sqlite();
    let s = migrated_sqlite(&path, &SecretKey::generate()).await;
    let pool = s.pool();
    let tables: BTreeSet<String> = sqlx::query_scalar(
        "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .filter(|n: &String| n != MIGRATIONS_TABLE)
    .collect();
    let listed_owned: BTreeSet<String> = listed.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        tables, listed_owned,
        "stagehand_store::transfer::TABLES must name every table of the schema \
         (add a new table there, after the tables it references)"
    );
    for (position, table) in TABLES.iter().enumerate() {
        let key: Vec<String> =
            sqlx::query_scalar("select name from pragma_table_info($1) where pk > 0 order by pk")
                .bind(table.name)
                .fetch_all(pool)
                .await
                .unwrap();
        assert_eq!(key, table.key, "the primary key of {}", table.name);
        let referenced: Vec<String> =
            sqlx::query_scalar("select \"table\" from pragma_foreign_key_list($1)")
                .bind(table.name)
                .fetch_all(pool)
                .await
                .unwrap();
        for r in referenced {
            let at = TABLES.iter().position(|t| t.name == r);
            assert!(
                at.is_some_and(|at| at < position),
                "{} references {r}, which must come before it in TABLES",
                table.name
            );
        }
    }
    s.pool().close().await;
    let _ = std::fs::remove_dir_all(path.parent().unwrap());

    let Some(pg) = PgDatabase::create().await else {
        return;
    };
    let store = PgStore::connect(&pg.url, Cipher::new(&SecretKey::generate()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let tables: BTreeSet<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables
         where table_schema = current_schema() and table_type = 'BASE TABLE'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
    .into_iter()
    .filter(|n: &String| n != MIGRATIONS_TABLE)
    .collect();
    assert_eq!(tables, listed_owned, "the PostgreSQL schema's tables");
    store.pool().close().await;
    pg.drop_it().await;
}

/// What the seeded store holds, to compare after the move.
struct Seeded {
    team: stagehand_domain::TeamId,
    dev: stagehand_domain::InstanceId,
    prod: stagehand_domain::InstanceId,
}

/// A store with something in every area: users, a team, a custom role
/// bound to a member, a token expiring at a nanosecond time, instances with
/// flows and env values, a runtime connection, promotions applied and
/// rolled back, and the audit events of all of it.
async fn seed(s: &SqliteStore) -> Seeded {
    let ada = s
        .create_user(
            NewUser {
                username: Username::parse("ada").unwrap(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                is_platform_admin: true,
            },
            &actor(),
        )
        .await
        .unwrap();
    let bob = s
        .create_user(
            NewUser {
                username: Username::parse("bob").unwrap(),
                password_hash: "x".into(),
                is_platform_admin: false,
            },
            &actor(),
        )
        .await
        .unwrap();
    let team = s
        .create_team_with_admin(name_of("payments"), ada.id, &actor())
        .await
        .unwrap()
        .id;
    let perms: PermissionSet = [Permission::AuditView, Permission::PromotionView]
        .into_iter()
        .collect();
    s.create_role(team, name_of("auditor"), perms, &actor())
        .await
        .unwrap();
    s.bind_role(team, bob.id, "auditor", &actor())
        .await
        .unwrap();
    s.create_token(
        NewApiToken {
            team,
            name: name_of("ci"),
            secret_hash: "0".repeat(64),
            user_id: None,
            role: "lead".into(),
            // Straight from the clock: nanoseconds, which PostgreSQL does
            // not keep.
            expires_at: Some(chrono::Utc::now() + chrono::TimeDelta::days(30)),
        },
        &actor(),
    )
    .await
    .unwrap();
    let dev = s
        .create_instance(
            team,
            name_of("dev"),
            serde_json::json!({"z": 1, "a": [true, null, 1.5]}),
            &actor(),
        )
        .await
        .unwrap()
        .id;
    let prod = s
        .create_instance(team, name_of("prod"), serde_json::json!({}), &actor())
        .await
        .unwrap()
        .id;
    for (name, json) in [
        ("orders", r#"{"steps":["charge"],"b":{"y":1,"x":"é"}}"#),
        ("billing", r#"[1,2,3]"#),
    ] {
        s.put_flow(team, dev, flow(name), content(json), None, &actor())
            .await
            .unwrap();
    }
    let key = |k: &str| EnvKey::parse(k).unwrap();
    s.set_env_var(
        team,
        dev,
        key("API_TOKEN"),
        Some(SecretValue::new("dev-secret-1".into())),
        &actor(),
    )
    .await
    .unwrap();
    s.set_env_var(
        team,
        prod,
        key("API_TOKEN"),
        Some(SecretValue::new("prod-secret-2".into())),
        &actor(),
    )
    .await
    .unwrap();
    s.set_env_var(team, dev, key("EMPTY"), None, &actor())
        .await
        .unwrap();
    s.connect_runtime(
        team,
        prod,
        NewRuntimeLink {
            kind: "node-red".into(),
            url: "http://prod.invalid:1880".into(),
            auth: SecretValue::new("{\"password\":\"runtime-secret\"}".into()),
        },
        &actor(),
    )
    .await
    .unwrap();
    // Promotions go into a second, unconnected target.
    let qa = s
        .create_instance(team, name_of("qa"), serde_json::json!({}), &actor())
        .await
        .unwrap()
        .id;
    let p = s
        .create_pipeline(team, name_of("main"), &actor())
        .await
        .unwrap();
    for i in [dev, qa] {
        s.add_stage(team, p.id, i, None, &actor()).await.unwrap();
    }
    let p = s.pipeline(team, p.id).await.unwrap();
    let first = p.stages[0].id;
    s.promote(request(team, p.id, first)).await.unwrap();
    s.put_flow(
        team,
        dev,
        flow("orders"),
        content(r#"{"steps":["charge","ship"]}"#),
        None,
        &actor(),
    )
    .await
    .unwrap();
    let second = s.promote(request(team, p.id, first)).await.unwrap();
    s.rollback(team, second.id, None, &actor()).await.unwrap();
    Seeded { team, dev, prod }
}

#[tokio::test]
async fn a_seeded_sqlite_store_moves_to_postgres_whole_and_verified() {
    let Some(pg) = PgDatabase::create().await else {
        return;
    };
    let key = SecretKey::generate();
    let path = temp_sqlite();
    let s = migrated_sqlite(&path, &key).await;
    let seeded = seed(&s).await;
    let promotions_before = s.promotions(seeded.team, 100).await.unwrap();
    let tokens_before = s.tokens(seeded.team).await.unwrap();
    let flows_before = s.flows(seeded.team, seeded.dev).await.unwrap();
    // More rows than one batch holds, so the copy flushes mid-stream.
    let mut tx = s.pool().begin().await.unwrap();
    for i in 0..1_234 {
        sqlx::query("insert into login_failures (id, scope, created_at) values ($1, $2, $3)")
            .bind(uuid::Uuid::new_v4())
            .bind(format!("ip:10.0.{}.{}", i / 256, i % 256))
            .bind(chrono::Utc::now())
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    s.pool().close().await;

    let mut heard = Vec::new();
    let report = transfer::sqlite_to_postgres(&path, &pg.url, &key, |t| heard.push(t.table))
        .await
        .unwrap();
    assert!(report.verified() && report.committed, "{report:#?}");
    assert_eq!(heard, TABLES.iter().map(|t| t.name).collect::<Vec<_>>());
    let rows = |name: &str| {
        report
            .tables
            .iter()
            .find(|t| t.table == name)
            .unwrap()
            .target_rows
    };
    assert_eq!(rows("users"), 2);
    assert_eq!(rows("login_failures"), 1_234);
    assert_eq!(rows("promotions"), 2, "two plays, the second rolled back");
    assert!(rows("audit_events") > 10);
    assert!(
        report
            .chains
            .iter()
            .all(|c| c.target.intact && c.source.intact)
    );
    assert_eq!(report.chains.len(), 2, "the platform's and the team's");

    // The copy reads as the original through the store, with the same key.
    let t = PgStore::connect(&pg.url, Cipher::new(&key)).await.unwrap();
    t.migrate().await.unwrap();
    t.check_key().await.unwrap();
    let promotions_after = t.promotions(seeded.team, 100).await.unwrap();
    assert_eq!(promotions_after, promotions_before);
    let statuses: Vec<String> = promotions_after
        .iter()
        .map(|p| p.status.to_string())
        .collect();
    assert_eq!(statuses, ["rolled_back", "applied"]);
    assert_eq!(
        t.flows(seeded.team, seeded.dev).await.unwrap(),
        flows_before
    );
    let tokens_after = t.tokens(seeded.team).await.unwrap();
    assert_eq!(tokens_after.len(), tokens_before.len());
    assert_eq!(
        tokens_after[0].expires_at.map(|e| e.timestamp_micros()),
        tokens_before[0].expires_at.map(|e| e.timestamp_micros())
    );
    let revealed = t
        .reveal_env_value(
            seeded.team,
            seeded.prod,
            &EnvKey::parse("API_TOKEN").unwrap(),
            &actor(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revealed.expose(), "prod-secret-2");
    let (_, auth) = t
        .runtime_credentials(seeded.team, seeded.prod)
        .await
        .unwrap();
    assert!(auth.expose().contains("runtime-secret"));
    for team in [None, Some(seeded.team)] {
        assert!(t.verify_audit_chain(team).await.unwrap().intact);
    }
    // Another key cannot open the copy.
    let other = PgStore::connect(&pg.url, Cipher::new(&SecretKey::generate()))
        .await
        .unwrap();
    assert!(other.check_key().await.is_err());
    other.pool().close().await;
    t.pool().close().await;

    // The same source again: the target is no longer empty.
    let again = transfer::sqlite_to_postgres(&path, &pg.url, &key, |_| {}).await;
    match again {
        Err(TransferError::TargetNotEmpty { found }) => {
            assert!(found.contains("users (2 rows)"), "{found}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    pg.drop_it().await;
}

#[tokio::test]
async fn a_target_with_data_or_a_source_in_use_is_refused_and_nothing_is_written() {
    let Some(pg) = PgDatabase::create().await else {
        return;
    };
    let key = SecretKey::generate();
    let path = temp_sqlite();
    let s = migrated_sqlite(&path, &key).await;
    seed(&s).await;

    // The store is still open (as a running server keeps it).
    let busy = transfer::sqlite_to_postgres(&path, &pg.url, &key, |_| {}).await;
    assert!(
        matches!(busy, Err(TransferError::SourceInUse(_))),
        "{busy:?}"
    );
    s.pool().close().await;

    // Another key than the source's.
    let wrong = transfer::sqlite_to_postgres(&path, &pg.url, &SecretKey::generate(), |_| {}).await;
    assert!(
        matches!(wrong, Err(TransferError::KeyMismatch)),
        "{wrong:?}"
    );

    // A target holding someone else's table, and nothing of ours.
    let pool = sqlx::PgPool::connect(&pg.url).await.unwrap();
    sqlx::query("create table invoices (id integer primary key)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("insert into invoices values (1)")
        .execute(&pool)
        .await
        .unwrap();
    let refused = transfer::sqlite_to_postgres(&path, &pg.url, &key, |_| {}).await;
    match refused {
        Err(e @ TransferError::TargetNotEmpty { .. }) => {
            assert!(
                e.to_string().contains("invoices, which is not Stagehand's"),
                "{e}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables where table_schema = current_schema()",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(tables, ["invoices"], "nothing was migrated into it");
    pool.close().await;

    // A source from a newer stagehand, or one not fully migrated.
    let source = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(
        "insert into _sqlx_migrations (version, description, success, checksum, execution_time)
         values (9999, 'from the future', true, x'00', 0)",
    )
    .execute(&source)
    .await
    .unwrap();
    source.close().await;
    let newer = transfer::sqlite_to_postgres(&path, &pg.url, &key, |_| {}).await;
    assert!(
        newer.as_ref().is_err_and(|e| e
            .to_string()
            .contains("9999, which this stagehand does not know")),
        "{newer:?}"
    );
    let source = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("delete from _sqlx_migrations where version in (9, 9999)")
        .execute(&source)
        .await
        .unwrap();
    source.close().await;
    let behind = transfer::sqlite_to_postgres(&path, &pg.url, &key, |_| {}).await;
    assert!(
        behind
            .as_ref()
            .is_err_and(|e| e.to_string().contains("not fully migrated (missing 9)")),
        "{behind:?}"
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    pg.drop_it().await;
}
