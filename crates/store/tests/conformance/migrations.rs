//! Migrations that move data keep it: a database as it was before a
//! migration, with rows written then, opened by today's store.

use crate::harness::Harness;
use stagehand_domain::{InstanceId, TeamId};
use stagehand_store::Database;
use stagehand_store::crypto::SecretKey;
use std::borrow::Cow;
use uuid::Uuid;

const INSERT_TEAM: &str = "insert into teams (id, name, created_at) values ($1, 'acme', $2)";
const INSERT_USER: &str = "insert into users (id, username, password_hash, is_platform_admin, \
    created_at) values ($1, 'ada', 'x', false, $2)";
const INSERT_INSTANCE: &str = "insert into instances (id, team_id, name, settings, version, \
    created_at, updated_at) values ($1, $2, $3, '{}', 1, $4, $4)";
const INSERT_PIPELINE: &str =
    "insert into pipelines (id, team_id, name, created_at) values ($1, $2, $3, $4)";
const INSERT_STAGE: &str = "insert into stages (id, pipeline_id, team_id, instance_id, position, \
    required_approvals, requires_all_env_values, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8)";
const INSERT_TOKEN: &str = "insert into api_tokens (id, team_id, name, secret_hash, role, \
    created_by, created_at) values ($1, $2, 'ci', 'hash', 'lead', 'ada', $3)";

/// Rows as a database at migration 0005 held them: `prod` is a stage of
/// two pipelines, protected in one (2 approvals) and requiring every value
/// in the other; a token created by `ada`.
macro_rules! seed_before_0006 {
    ($pool:expr, $team:expr, $prod:expr) => {{
        let at = chrono::Utc::now();
        let (dev, ada) = (Uuid::new_v4(), Uuid::new_v4());
        let q = sqlx::query(INSERT_TEAM).bind($team).bind(at);
        q.execute($pool).await.unwrap();
        let q = sqlx::query(INSERT_USER).bind(ada).bind(at);
        q.execute($pool).await.unwrap();
        for (id, name) in [($prod, "prod"), (dev, "dev")] {
            let q = sqlx::query(INSERT_INSTANCE).bind(id).bind($team).bind(name);
            q.bind(at).execute($pool).await.unwrap();
        }
        let pipelines = [("one", 2, false), ("two", 0, true)];
        for (name, approvals, all_values) in pipelines {
            let pipeline = Uuid::new_v4();
            let q = sqlx::query(INSERT_PIPELINE).bind(pipeline).bind($team);
            q.bind(name).bind(at).execute($pool).await.unwrap();
            for (position, instance) in [(0, dev), (1, $prod)] {
                let is_prod = instance == $prod;
                let q = sqlx::query(INSERT_STAGE)
                    .bind(Uuid::new_v4())
                    .bind(pipeline)
                    .bind($team)
                    .bind(instance)
                    .bind(position)
                    .bind(if is_prod { approvals } else { 0 })
                    .bind(is_prod && all_values)
                    .bind(at);
                q.execute($pool).await.unwrap();
            }
        }
        let q = sqlx::query(INSERT_TOKEN).bind(Uuid::new_v4()).bind($team);
        q.bind(at).execute($pool).await.unwrap();
    }};
}

fn before_0006(mut m: sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    m.migrations = Cow::Owned(
        m.migrations
            .iter()
            .filter(|x| x.version < 6)
            .cloned()
            .collect(),
    );
    m
}

pub async fn protection_moves_from_stages_to_their_instances(h: &Harness) {
    let (team, prod) = (Uuid::new_v4(), Uuid::new_v4());
    let (database, cleanup): (Database, Option<(String, String)>) = match &h.database {
        Database::Sqlite { path } => {
            let path = path.with_file_name(format!("old-{}.db", Uuid::new_v4()));
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .foreign_keys(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            before_0006(sqlx::migrate!("../../migrations/sqlite"))
                .run(&pool)
                .await
                .unwrap();
            seed_before_0006!(&pool, team, prod);
            pool.close().await;
            (Database::Sqlite { path }, None)
        }
        Database::Postgres { .. } => {
            let admin = std::env::var("DATABASE_URL").unwrap();
            let name = format!("m_{}", Uuid::new_v4().simple());
            let server = sqlx::PgPool::connect(&admin).await.unwrap();
            sqlx::query(&format!("create database {name}"))
                .execute(&server)
                .await
                .unwrap();
            let base = admin.rsplit_once('/').unwrap().0;
            let url = format!("{base}/{name}");
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            before_0006(sqlx::migrate!("../../migrations/postgres"))
                .run(&pool)
                .await
                .unwrap();
            seed_before_0006!(&pool, team, prod);
            pool.close().await;
            (Database::Postgres { url }, Some((admin, name)))
        }
    };
    let store = stagehand_store::open(&database, &SecretKey::generate())
        .await
        .unwrap();
    let prod = store
        .instance(TeamId(team), InstanceId(prod))
        .await
        .unwrap();
    assert_eq!(prod.protection.required_approvals, 2);
    assert!(prod.protection.requires_all_env_values);
    let dev = store
        .instances(TeamId(team))
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.name.as_str() == "dev")
        .unwrap();
    assert!(!dev.protection.is_protected() && !dev.protection.requires_all_env_values);
    let token = &store.tokens(TeamId(team)).await.unwrap()[0];
    assert!(token.created_by_user_id.is_some());
    drop(store);
    if let Some((admin, name)) = cleanup {
        let server = sqlx::PgPool::connect(&admin).await.unwrap();
        sqlx::query(&format!("drop database if exists {name} with (force)"))
            .execute(&server)
            .await
            .unwrap();
    }
}

fn before(mut m: sqlx::migrate::Migrator, version: i64) -> sqlx::migrate::Migrator {
    m.migrations = Cow::Owned(
        m.migrations
            .iter()
            .filter(|x| x.version < version)
            .cloned()
            .collect(),
    );
    m
}

const INSERT_SNAPSHOT: &str = "insert into snapshots (id, team_id, instance_id, reason, \
    content_hash, flows, env_keys, created_at) values ($1, $2, $3, 'promotion_source', $4, '{}', '[]', $5)";
const INSERT_PROMOTION: &str = "insert into promotions (id, team_id, pipeline_id, source_stage_id, \
    target_stage_id, source_instance_id, target_instance_id, status, source_snapshot_id, plan, \
    requested_by_user_id, requested_by, created_at, requested_target_version) \
    values ($1, $2, $3, $4, $5, $6, $7, 'pending_approval', $8, $9, $10, 'ada', $11, 1)";
const INSERT_APPROVAL: &str = "insert into promotion_approvals (promotion_id, user_id, decision, \
    created_at) values ($1, $2, 'approve', $3)";

/// Rows as a database at migration 0008 held them: a promotion waiting
/// for approval with one approval already given.
macro_rules! seed_before_0009 {
    ($pool:expr, $team:expr, $promotion:expr) => {{
        let at = chrono::Utc::now();
        let (ada, bob, dev, prod, snap) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let q = sqlx::query(INSERT_TEAM).bind($team).bind(at);
        q.execute($pool).await.unwrap();
        for user in [ada, bob] {
            let q = sqlx::query(
                "insert into users (id, username, password_hash, is_platform_admin, created_at) \
                 values ($1, $2, 'x', false, $3)",
            )
            .bind(user)
            .bind(format!("u{}", user.simple()))
            .bind(at);
            q.execute($pool).await.unwrap();
        }
        for (id, name) in [(prod, "prod"), (dev, "dev")] {
            let q = sqlx::query(INSERT_INSTANCE).bind(id).bind($team).bind(name);
            q.bind(at).execute($pool).await.unwrap();
        }
        let q = sqlx::query(INSERT_SNAPSHOT)
            .bind(snap)
            .bind($team)
            .bind(dev)
            .bind("0".repeat(64))
            .bind(at);
        q.execute($pool).await.unwrap();
        let plan = serde_json::to_string(&stagehand_domain::PromotionPlan::between(
            &Default::default(),
            &Default::default(),
        ))
        .unwrap();
        let q = sqlx::query(INSERT_PROMOTION)
            .bind($promotion)
            .bind($team)
            .bind(Uuid::new_v4())
            .bind(Uuid::new_v4())
            .bind(Uuid::new_v4())
            .bind(dev)
            .bind(prod)
            .bind(snap)
            .bind(sqlx::types::Json(
                serde_json::from_str::<serde_json::Value>(&plan).unwrap(),
            ))
            .bind(ada)
            .bind(at);
        q.execute($pool).await.unwrap();
        let q = sqlx::query(INSERT_APPROVAL)
            .bind($promotion)
            .bind(bob)
            .bind(at);
        q.execute($pool).await.unwrap();
    }};
}

/// SQLite rebuilds the promotions table in 0009 (to allow `deploying`);
/// the rebuild must keep every promotion and every approval given.
pub async fn promotions_and_their_approvals_survive_the_runtimes_migration(h: &Harness) {
    let (team, promotion) = (Uuid::new_v4(), Uuid::new_v4());
    let (database, cleanup): (Database, Option<(String, String)>) = match &h.database {
        Database::Sqlite { path } => {
            let path = path.with_file_name(format!("old-{}.db", Uuid::new_v4()));
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .foreign_keys(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            before(sqlx::migrate!("../../migrations/sqlite"), 9)
                .run(&pool)
                .await
                .unwrap();
            seed_before_0009!(&pool, team, promotion);
            pool.close().await;
            (Database::Sqlite { path }, None)
        }
        Database::Postgres { .. } => {
            let admin = std::env::var("DATABASE_URL").unwrap();
            let name = format!("m_{}", Uuid::new_v4().simple());
            let server = sqlx::PgPool::connect(&admin).await.unwrap();
            sqlx::query(&format!("create database {name}"))
                .execute(&server)
                .await
                .unwrap();
            let base = admin.rsplit_once('/').unwrap().0;
            let url = format!("{base}/{name}");
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            before(sqlx::migrate!("../../migrations/postgres"), 9)
                .run(&pool)
                .await
                .unwrap();
            seed_before_0009!(&pool, team, promotion);
            pool.close().await;
            (Database::Postgres { url }, Some((admin, name)))
        }
    };
    let store = stagehand_store::open(&database, &SecretKey::generate())
        .await
        .unwrap();
    let p = store
        .promotion(TeamId(team), stagehand_domain::PromotionId(promotion))
        .await
        .unwrap();
    assert_eq!(p.status, stagehand_domain::PromotionStatus::PendingApproval);
    assert!(!p.overwrite_drift);
    assert_eq!(p.runtime_revision, None);
    let approvals = store
        .approvals(TeamId(team), stagehand_domain::PromotionId(promotion))
        .await
        .unwrap();
    assert_eq!(
        approvals.len(),
        1,
        "the approval given before the migration is kept"
    );
    drop(store);
    if let Some((admin, name)) = cleanup {
        let server = sqlx::PgPool::connect(&admin).await.unwrap();
        sqlx::query(&format!("drop database if exists {name} with (force)"))
            .execute(&server)
            .await
            .unwrap();
    }
}
