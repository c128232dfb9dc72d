//! A fresh, empty store per test, and factories that read like the product.

use stagehand_domain::{FlowContent, FlowName, InstanceId, Name, PipelineId, StageId, TeamId};
use stagehand_store::crypto::SecretKey;
use stagehand_store::testing::TestDatabase;
use stagehand_store::{Actor, Database, Instance, Pipeline, Store};
use std::sync::Arc;

pub struct Harness {
    pub store: Arc<dyn Store>,
    pub database: Database,
    pub key: SecretKey,
    db: TestDatabase,
}

impl Harness {
    fn of(db: TestDatabase) -> Self {
        Self {
            store: db.store.clone(),
            database: db.database.clone(),
            key: db.key.clone(),
            db,
        }
    }

    pub async fn sqlite() -> Self {
        Self::of(TestDatabase::sqlite().await.expect("open sqlite"))
    }

    pub async fn postgres() -> Self {
        let db = TestDatabase::postgres()
            .await
            .expect("open postgres")
            .expect(
                "the PostgreSQL half of the conformance suite needs DATABASE_URL; \
             run scripts/test.sh, which starts a throwaway server",
            );
        Self::of(db)
    }

    pub async fn cleanup(self) {
        drop(self.store);
        self.db.cleanup().await;
    }

    /// A statement run behind the store's back, for checks of what is at rest.
    pub async fn raw_blobs(&self, sql: &str) -> Vec<Vec<u8>> {
        match &self.database {
            Database::Postgres { url } => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
            }
            Database::Sqlite { path } => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap();
                sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
            }
        }
    }

    /// Every text the store keeps that is not a ciphertext: a secret found
    /// here has leaked.
    pub async fn all_stored_text(&self) -> String {
        let queries = [
            "select cast(plan as text) from promotions",
            "select cast(details as text) from audit_events",
            "select cast(flows as text) || cast(env_keys as text) from snapshots",
            "select cast(settings as text) from instances",
        ];
        let mut all = String::new();
        for q in queries {
            let texts: Vec<String> = match &self.database {
                Database::Postgres { url } => {
                    let pool = sqlx::PgPool::connect(url).await.unwrap();
                    sqlx::query_scalar(q).fetch_all(&pool).await.unwrap()
                }
                Database::Sqlite { path } => {
                    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .unwrap();
                    sqlx::query_scalar(q).fetch_all(&pool).await.unwrap()
                }
            };
            for t in texts {
                all.push_str(&t);
                all.push('\n');
            }
        }
        all
    }

    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("select count(*) from {table}");
        match &self.database {
            Database::Postgres { url } => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap()
            }
            Database::Sqlite { path } => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap();
                sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap()
            }
        }
    }

    /// A statement behind the store's back (tampering, for the audit chain).
    pub async fn exec(&self, sql: &str) {
        match &self.database {
            Database::Postgres { url } => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            Database::Sqlite { path } => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
        }
    }

    pub async fn team(&self, name: &str) -> TeamId {
        self.store
            .create_team(name_of(name), &actor())
            .await
            .unwrap()
            .id
    }

    pub async fn instance(&self, team: TeamId, name: &str) -> Instance {
        self.store
            .create_instance(
                team,
                name_of(name),
                serde_json::json!({ "url": format!("http://{name}") }),
                &actor(),
            )
            .await
            .unwrap()
    }

    pub async fn put(&self, team: TeamId, instance: InstanceId, name: &str, json: &str) {
        self.store
            .put_flow(team, instance, flow(name), content(json), None, &actor())
            .await
            .unwrap();
    }

    pub async fn set(&self, team: TeamId, instance: InstanceId, key: &str, value: Option<&str>) {
        self.store
            .set_env_var(
                team,
                instance,
                stagehand_domain::EnvKey::parse(key).unwrap(),
                value.map(|v| stagehand_domain::SecretValue::new(v.into())),
                &actor(),
            )
            .await
            .unwrap();
    }

    /// A pipeline dev → qa → prod over three fresh instances.
    pub async fn three_stage_pipeline(&self, team: TeamId) -> (Pipeline, [Instance; 3]) {
        let dev = self.instance(team, "dev").await;
        let qa = self.instance(team, "qa").await;
        let prod = self.instance(team, "prod").await;
        let p = self
            .store
            .create_pipeline(team, name_of("main"), &actor())
            .await
            .unwrap();
        for i in [&dev, &qa, &prod] {
            self.store
                .add_stage(team, p.id, i.id, None, &actor())
                .await
                .unwrap();
        }
        let p = self.store.pipeline(team, p.id).await.unwrap();
        (p, [dev, qa, prod])
    }

    pub async fn flows_of(&self, team: TeamId, instance: InstanceId) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for f in self.store.flows(team, instance).await.unwrap() {
            let c = self
                .store
                .flow(team, instance, &f.name)
                .await
                .unwrap()
                .content;
            out.push((f.name.to_string(), c.as_json().to_owned()));
        }
        out
    }
}

pub fn actor() -> Actor {
    Actor::system()
}

pub fn name_of(s: &str) -> Name {
    Name::parse("name", s).unwrap()
}

pub fn flow(s: &str) -> FlowName {
    FlowName::parse(s).unwrap()
}

pub fn content(json: &str) -> FlowContent {
    FlowContent::parse_json(json).unwrap()
}

pub fn request(
    team: TeamId,
    pipeline: PipelineId,
    stage: StageId,
) -> stagehand_store::PromotionRequest {
    stagehand_store::PromotionRequest {
        team,
        pipeline,
        stage,
        actor: actor(),
        idempotency_key: None,
        expected_target_version: None,
        overwrite_drift: false,
        expected_source_version: None,
        source_snapshot: None,
        restore: false,
    }
}
