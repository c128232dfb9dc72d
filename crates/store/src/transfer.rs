//! Moving a store from the embedded SQLite default to PostgreSQL
//! (`stagehand migrate-store --to postgres://…`): every table copied, row
//! for row, into an empty, freshly migrated PostgreSQL database inside one
//! transaction, then verified there before that transaction commits — row
//! counts and a content hash per table computed the same way on both sides,
//! and every audit chain walked. A copy that does not verify is rolled
//! back, leaving the target as empty as it was.
//!
//! Values travel as they are stored: env values and runtime credentials stay
//! ciphertext, so the target needs the source's secret key (it is checked
//! against the source before anything is copied). Column types come from
//! the target's schema, so a column a later migration adds is copied
//! without a change here; a table is copied only once it is in [`TABLES`].

use crate::crypto::{Cipher, SecretKey};
use crate::model::ChainReport;
use chrono::{DateTime, SubsecRound, Utc};
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteLockingMode, SqliteRow};
use sqlx::types::Json;
use sqlx::{Connection, Row};
use stagehand_domain::TeamId;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Every table Stagehand keeps, in foreign-key order (a table comes after
/// every table it references), with its primary key: the one list of what
/// a move copies. A test fails when a migration adds a table that is not
/// here (see `the_copy_list_names_every_table_of_the_schema`).
pub const TABLES: &[Table] = &[
    Table::new("stagehand_meta", &["key"]),
    Table::new("teams", &["id"]),
    Table::new("users", &["id"]),
    Table::new("roles", &["id"]),
    Table::new("role_bindings", &["team_id", "user_id", "role"]),
    Table::new("instances", &["id"]),
    Table::new("flow_blobs", &["hash"]),
    Table::new("flow_saves", &["team_id", "hash"]),
    Table::new("flows", &["instance_id", "name"]),
    Table::new("env_vars", &["instance_id", "key"]),
    Table::new("instance_runtimes", &["instance_id"]),
    Table::new("pipelines", &["id"]),
    Table::new("stages", &["id"]),
    Table::new("snapshots", &["id"]),
    Table::new("promotions", &["id"]),
    Table::new("promotion_approvals", &["promotion_id", "user_id"]),
    Table::new("delivery_days", &["stage_id", "day"]),
    Table::new("audit_chain_heads", &["chain"]),
    Table::new("audit_events", &["id"]),
    Table::new("audit_chain_anchors", &["chain"]),
    Table::new("sessions", &["token_hash"]),
    Table::new("login_failures", &["id"]),
    Table::new("api_tokens", &["id"]),
    Table::new("jobs", &["name"]),
];

/// The table sqlx keeps its migration history in: not data, never copied
/// (the target gets its own by being migrated).
pub const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// One table of the copy list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    /// Its primary key: the order rows are copied and hashed in.
    pub key: &'static [&'static str],
}

impl Table {
    const fn new(name: &'static str, key: &'static [&'static str]) -> Self {
        Self { name, key }
    }
}

/// Rows sent to PostgreSQL per insert, at most.
const BATCH_ROWS: usize = 500;
/// Bytes (of the rows' canonical encoding) per insert, at most: big flows
/// are not gathered by the hundred.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Why a move did not happen. None of these left anything in the target.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("there is no SQLite database at {0}")]
    SourceMissing(PathBuf),
    #[error(
        "the SQLite database {0} is in use (a running `stagehand serve`?): stop the server first, \
         so nothing changes while it is copied"
    )]
    SourceInUse(PathBuf),
    #[error("the source database cannot be moved: {0}")]
    Source(String),
    #[error(
        "the secret key does not match the key the source was encrypted with; \
         set STAGEHAND_SECRET_KEY (or keep secret.key in --data-dir) to the source's key"
    )]
    KeyMismatch,
    #[error(
        "the target database already holds data: {found}. migrate-store copies only into an \
         empty database: create a new one (e.g. `createdb stagehand`) and point --to at it"
    )]
    TargetNotEmpty { found: String },
    #[error("the schemas do not match: {0}")]
    Schema(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

/// What was copied into one table, and whether it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub table: &'static str,
    pub source_rows: u64,
    pub target_rows: u64,
    /// SHA-256 (hex) over the rows in primary-key order, each value
    /// normalised (see [`canonical_row`]).
    pub source_hash: String,
    pub target_hash: String,
}

impl TableReport {
    pub fn matches(&self) -> bool {
        self.source_rows == self.target_rows && self.source_hash == self.target_hash
    }
}

/// One audit chain, walked on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCheck {
    /// `platform`, or the team's name.
    pub chain: String,
    pub source: ChainReport,
    pub target: ChainReport,
}

/// The outcome of a move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferReport {
    pub tables: Vec<TableReport>,
    pub chains: Vec<ChainCheck>,
    /// Whether the copy was committed: only when everything verified.
    pub committed: bool,
}

impl TransferReport {
    /// Every table's count and hash match, and every chain holds.
    pub fn verified(&self) -> bool {
        self.tables.iter().all(TableReport::matches) && self.chains.iter().all(|c| c.target.intact)
    }
}

/// Copies the SQLite store at `source` into the empty PostgreSQL database
/// at `target_url`, verifies the copy and commits it only if it verified.
/// `key` must be the key the source was encrypted with. `progress` hears of
/// each table once it is copied and checked.
pub async fn sqlite_to_postgres(
    source: &Path,
    target_url: &str,
    key: &SecretKey,
    mut progress: impl FnMut(&TableReport),
) -> Result<TransferReport, TransferError> {
    let mut src = open_source(source).await?;
    // Held to the end: consistent reads, and no writer while we copy.
    let mut src_tx = src.begin_with("BEGIN EXCLUSIVE").await.map_err(|e| {
        if is_busy(&e) {
            TransferError::SourceInUse(source.to_owned())
        } else {
            e.into()
        }
    })?;
    check_source_migrations(&mut src_tx).await?;
    check_source_key(&mut src_tx, key).await?;

    let options = PgConnectOptions::from_str(target_url)?.application_name("stagehand-migrate");
    let mut dst = PgConnection::connect_with(&options).await?;
    refuse_unless_empty(&mut dst, false).await?;
    sqlx::migrate!("../../migrations/postgres")
        .run(&mut dst)
        .await?;

    let mut tx = dst.begin().await?;
    // Nobody else writes (or reads a half copy) until we commit.
    let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    sqlx::query(&format!(
        "lock table {} in access exclusive mode",
        names.join(", ")
    ))
    .execute(&mut *tx)
    .await?;
    refuse_unless_empty(&mut tx, true).await?;

    let mut report = TransferReport {
        tables: Vec::new(),
        chains: Vec::new(),
        committed: false,
    };
    for table in TABLES {
        let columns = columns_of(&mut src_tx, &mut tx, table).await?;
        let (source_rows, source_hash) = copy_table(&mut src_tx, &mut tx, table, &columns).await?;
        let (target_rows, target_hash) = hash_target(&mut tx, table, &columns).await?;
        let t = TableReport {
            table: table.name,
            source_rows,
            target_rows,
            source_hash,
            target_hash,
        };
        progress(&t);
        report.tables.push(t);
    }
    advance_sequences(&mut tx).await?;
    report.chains = check_chains(&mut src_tx, &mut tx).await?;

    if report.verified() {
        tx.commit().await?;
        report.committed = true;
    } else {
        tx.rollback().await?;
    }
    src_tx.rollback().await?;
    Ok(report)
}

/// The source, opened for this one copy: never created, and locked so that
/// a running server (which keeps connections open) is noticed.
async fn open_source(path: &Path) -> Result<SqliteConnection, TransferError> {
    if !path.is_file() {
        return Err(TransferError::SourceMissing(path.to_owned()));
    }
    // Exclusive locking mode: once our transaction has the database, no
    // other connection gets in (not even to read) until we close it; and
    // while any other connection has it open, we do not get in.
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .locking_mode(SqliteLockingMode::Exclusive)
        .busy_timeout(Duration::from_secs(2));
    SqliteConnection::connect_with(&options).await.map_err(|e| {
        if is_busy(&e) {
            TransferError::SourceInUse(path.to_owned())
        } else {
            e.into()
        }
    })
}

fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.message().contains("database is locked"))
}

/// The source must be migrated exactly as far as this binary knows.
async fn check_source_migrations(src: &mut SqliteConnection) -> Result<(), TransferError> {
    let known = sqlx::migrate!("../../migrations/sqlite");
    let has_table: Option<String> =
        sqlx::query_scalar("select name from sqlite_master where type = 'table' and name = $1")
            .bind(MIGRATIONS_TABLE)
            .fetch_optional(&mut *src)
            .await?;
    if has_table.is_none() {
        return Err(TransferError::Source(
            "it has no migration history: it is not a Stagehand database".into(),
        ));
    }
    let applied: Vec<(i64, bool, Vec<u8>)> = sqlx::query_as(&format!(
        "select version, success, checksum from {MIGRATIONS_TABLE} order by version"
    ))
    .fetch_all(&mut *src)
    .await?;
    for (version, success, checksum) in &applied {
        let Some(m) = known.iter().find(|m| m.version == *version) else {
            return Err(TransferError::Source(format!(
                "it has migration {version}, which this stagehand does not know: \
                 run the migrate-store of the stagehand version that wrote it"
            )));
        };
        if !success {
            return Err(TransferError::Source(format!(
                "migration {version} failed on it; run `stagehand migrate` and try again"
            )));
        }
        if m.checksum.as_ref() != checksum.as_slice() {
            return Err(TransferError::Source(format!(
                "migration {version} on it differs from this stagehand's"
            )));
        }
    }
    let done: BTreeSet<i64> = applied.iter().map(|(v, _, _)| *v).collect();
    let missing: Vec<String> = known
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !done.contains(&m.version))
        .map(|m| m.version.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(TransferError::Source(format!(
            "it is not fully migrated (missing {}): run `stagehand migrate` on it first",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// The key check the source recorded must open with `key`: the copy keeps
/// the ciphertext, so the target will need this very key.
async fn check_source_key(
    src: &mut SqliteConnection,
    key: &SecretKey,
) -> Result<(), TransferError> {
    let stored: Option<String> =
        sqlx::query_scalar("select value from stagehand_meta where key = 'key_check'")
            .fetch_optional(&mut *src)
            .await?;
    match stored {
        Some(check) if !Cipher::new(key).verify_key_check(&check) => {
            Err(TransferError::KeyMismatch)
        }
        _ => Ok(()),
    }
}

/// Refuses a target holding anything: a row in one of Stagehand's tables,
/// or a table that is not Stagehand's. Migration history alone is fine (an
/// empty database a server was once pointed at and stopped). Once
/// `migrated`, a table that is not in [`TABLES`] came from our own
/// migrations: the copy list is behind the schema, and nothing is copied.
async fn refuse_unless_empty(dst: &mut PgConnection, migrated: bool) -> Result<(), TransferError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables
         where table_schema = current_schema() and table_type = 'BASE TABLE'
         order by table_name",
    )
    .fetch_all(&mut *dst)
    .await?;
    let mut found = Vec::new();
    for name in tables {
        if name == MIGRATIONS_TABLE {
            continue;
        }
        if !TABLES.iter().any(|t| t.name == name) {
            if migrated {
                return Err(TransferError::Schema(format!(
                    "table {name} is not in the copy list (stagehand_store::transfer::TABLES), \
                     so this stagehand cannot move it"
                )));
            }
            found.push(format!("table {name}, which is not Stagehand's"));
            continue;
        }
        let rows: i64 = sqlx::query_scalar(&format!("select count(*) from {}", ident(&name)))
            .fetch_one(&mut *dst)
            .await?;
        if rows > 0 {
            found.push(format!(
                "{name} ({rows} row{})",
                if rows == 1 { "" } else { "s" }
            ));
        }
    }
    if found.is_empty() {
        Ok(())
    } else {
        Err(TransferError::TargetNotEmpty {
            found: found.join(", "),
        })
    }
}

/// How a column is read on both sides: its PostgreSQL type decides (SQLite
/// keeps uuids as blobs, times as text, booleans as integers, JSON as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Uuid,
    Text,
    Time,
    Json,
    Bytes,
    Int4,
    Int8,
    Bool,
    Date,
}

impl Kind {
    fn of(table: &str, column: &str, pg_type: &str) -> Result<Self, TransferError> {
        Ok(match pg_type {
            "uuid" => Self::Uuid,
            "text" | "character varying" => Self::Text,
            "timestamp with time zone" => Self::Time,
            "jsonb" | "json" => Self::Json,
            "bytea" => Self::Bytes,
            "integer" => Self::Int4,
            "bigint" => Self::Int8,
            "boolean" => Self::Bool,
            "date" => Self::Date,
            other => {
                return Err(TransferError::Schema(format!(
                    "{table}.{column} is of type {other}, which migrate-store does not copy yet"
                )));
            }
        })
    }
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: Kind,
}

/// The table's columns as the target has them (names and types), after
/// checking the source has the very same names.
async fn columns_of(
    src: &mut SqliteConnection,
    dst: &mut PgConnection,
    table: &Table,
) -> Result<Vec<Column>, TransferError> {
    let target: Vec<(String, String)> = sqlx::query_as(
        "select column_name::text, data_type::text from information_schema.columns
         where table_schema = current_schema() and table_name = $1 order by ordinal_position",
    )
    .bind(table.name)
    .fetch_all(&mut *dst)
    .await?;
    let source: BTreeSet<String> = sqlx::query_scalar("select name from pragma_table_info($1)")
        .bind(table.name)
        .fetch_all(&mut *src)
        .await?
        .into_iter()
        .collect();
    let target_names: BTreeSet<String> = target.iter().map(|(n, _)| n.clone()).collect();
    if source.is_empty() || target.is_empty() {
        return Err(TransferError::Schema(format!(
            "table {} is missing in the {}",
            table.name,
            if source.is_empty() {
                "source"
            } else {
                "target"
            }
        )));
    }
    if source != target_names {
        let only = |a: &BTreeSet<String>, b: &BTreeSet<String>| {
            a.difference(b).cloned().collect::<Vec<_>>().join(", ")
        };
        return Err(TransferError::Schema(format!(
            "table {}: columns only in the source: [{}]; only in the target: [{}]",
            table.name,
            only(&source, &target_names),
            only(&target_names, &source)
        )));
    }
    target
        .into_iter()
        .map(|(name, ty)| {
            Ok(Column {
                kind: Kind::of(table.name, &name, &ty)?,
                name,
            })
        })
        .collect()
}

/// One value, typed (a typed null binds as the column's type).
#[derive(Debug, Clone)]
enum Cell {
    Uuid(Option<uuid::Uuid>),
    Text(Option<String>),
    Time(Option<DateTime<Utc>>),
    Json(Option<serde_json::Value>),
    Bytes(Option<Vec<u8>>),
    Int4(Option<i32>),
    Int8(Option<i64>),
    Bool(Option<bool>),
    Date(Option<chrono::NaiveDate>),
}

fn read_sqlite(row: &SqliteRow, i: usize, kind: Kind) -> Result<Cell, sqlx::Error> {
    Ok(match kind {
        Kind::Uuid => Cell::Uuid(row.try_get(i)?),
        Kind::Text => Cell::Text(row.try_get(i)?),
        // Both databases keep microseconds: a finer SQLite time (written
        // straight from the clock) is cut as PostgreSQL would keep it.
        Kind::Time => Cell::Time(
            row.try_get::<Option<DateTime<Utc>>, _>(i)?
                .map(|t| t.trunc_subsecs(6)),
        ),
        Kind::Json => Cell::Json(
            row.try_get::<Option<Json<serde_json::Value>>, _>(i)?
                .map(|j| j.0),
        ),
        Kind::Bytes => Cell::Bytes(row.try_get(i)?),
        Kind::Int4 => Cell::Int4(
            row.try_get::<Option<i64>, _>(i)?
                .map(i32::try_from)
                .transpose()
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        ),
        Kind::Int8 => Cell::Int8(row.try_get(i)?),
        Kind::Bool => Cell::Bool(row.try_get(i)?),
        Kind::Date => Cell::Date(row.try_get(i)?),
    })
}

fn read_pg(row: &PgRow, i: usize, kind: Kind) -> Result<Cell, sqlx::Error> {
    Ok(match kind {
        Kind::Uuid => Cell::Uuid(row.try_get(i)?),
        Kind::Text => Cell::Text(row.try_get(i)?),
        Kind::Time => Cell::Time(row.try_get(i)?),
        Kind::Json => Cell::Json(
            row.try_get::<Option<Json<serde_json::Value>>, _>(i)?
                .map(|j| j.0),
        ),
        Kind::Bytes => Cell::Bytes(row.try_get(i)?),
        Kind::Int4 => Cell::Int4(row.try_get(i)?),
        Kind::Int8 => Cell::Int8(row.try_get(i)?),
        Kind::Bool => Cell::Bool(row.try_get(i)?),
        Kind::Date => Cell::Date(row.try_get(i)?),
    })
}

/// A row's canonical encoding, the same whichever database it was read
/// from: a JSON array of its values in column order, uuids as lowercase
/// text, times as UTC to the microsecond, JSON with its object keys sorted,
/// bytes as hex, null as null.
fn canonical_row(cells: &[Cell]) -> String {
    let mut out = String::from("[");
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let json = |v: serde_json::Value| v.to_string();
        let text = |s: &str| serde_json::Value::from(s).to_string();
        let part = match cell {
            Cell::Uuid(None)
            | Cell::Text(None)
            | Cell::Time(None)
            | Cell::Json(None)
            | Cell::Bytes(None)
            | Cell::Int4(None)
            | Cell::Int8(None)
            | Cell::Bool(None)
            | Cell::Date(None) => "null".to_owned(),
            Cell::Uuid(Some(u)) => text(&u.hyphenated().to_string()),
            Cell::Text(Some(s)) => text(s),
            Cell::Time(Some(t)) => text(&t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
            Cell::Json(Some(v)) => {
                let mut s = String::new();
                canonical_json(v, &mut s);
                s
            }
            Cell::Bytes(Some(b)) => text(&hex::encode(b)),
            Cell::Int4(Some(n)) => json((*n).into()),
            Cell::Int8(Some(n)) => json((*n).into()),
            Cell::Bool(Some(b)) => json((*b).into()),
            Cell::Date(Some(d)) => text(&d.format("%Y-%m-%d").to_string()),
        };
        out.push_str(&part);
    }
    out.push(']');
    out
}

/// JSON with every object's keys in byte order, whatever order the value
/// kept them in (PostgreSQL's jsonb keeps its own).
fn canonical_json(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::from(k.as_str()).to_string());
                out.push(':');
                if let Some(inner) = map.get(k) {
                    canonical_json(inner, out);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Quotes an identifier from our own lists or catalogs.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn column_list(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `order by` over the primary key, in the byte order both databases agree
/// on (SQLite compares text bytewise; PostgreSQL does with `collate "C"`).
fn key_order(table: &Table, columns: &[Column], postgres: bool) -> String {
    table
        .key
        .iter()
        .map(|k| {
            let text = columns.iter().any(|c| c.name == *k && c.kind == Kind::Text);
            if postgres && text {
                format!("{} collate \"C\"", ident(k))
            } else {
                ident(k)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Streams the source table into the target in batches; the number of rows
/// and their hash.
async fn copy_table(
    src: &mut SqliteConnection,
    dst: &mut PgConnection,
    table: &Table,
    columns: &[Column],
) -> Result<(u64, String), TransferError> {
    let select = format!(
        "select {} from {} order by {}",
        column_list(columns),
        ident(table.name),
        key_order(table, columns, false)
    );
    let mut hasher = Sha256::new();
    let mut rows = 0_u64;
    let mut batch: Vec<Vec<Cell>> = Vec::with_capacity(BATCH_ROWS);
    let mut batch_bytes = 0_usize;
    let mut stream = sqlx::query(&select).fetch(&mut *src);
    while let Some(row) = stream.try_next().await? {
        let cells = columns
            .iter()
            .enumerate()
            .map(|(i, c)| read_sqlite(&row, i, c.kind))
            .collect::<Result<Vec<_>, _>>()?;
        let canonical = canonical_row(&cells);
        hasher.update(canonical.as_bytes());
        hasher.update(b"\n");
        rows += 1;
        batch_bytes += canonical.len();
        batch.push(cells);
        if batch.len() >= BATCH_ROWS || batch_bytes >= BATCH_BYTES {
            insert_batch(dst, table, columns, std::mem::take(&mut batch)).await?;
            batch_bytes = 0;
        }
    }
    drop(stream);
    if !batch.is_empty() {
        insert_batch(dst, table, columns, batch).await?;
    }
    Ok((rows, hex::encode(hasher.finalize())))
}

async fn insert_batch(
    dst: &mut PgConnection,
    table: &Table,
    columns: &[Column],
    rows: Vec<Vec<Cell>>,
) -> Result<(), TransferError> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
        "insert into {} ({}) ",
        ident(table.name),
        column_list(columns)
    ));
    q.push_values(rows, |mut b, cells| {
        for cell in cells {
            match cell {
                Cell::Uuid(v) => b.push_bind(v),
                Cell::Text(v) => b.push_bind(v),
                Cell::Time(v) => b.push_bind(v),
                Cell::Json(v) => b.push_bind(v.map(Json)),
                Cell::Bytes(v) => b.push_bind(v),
                Cell::Int4(v) => b.push_bind(v),
                Cell::Int8(v) => b.push_bind(v),
                Cell::Bool(v) => b.push_bind(v),
                Cell::Date(v) => b.push_bind(v),
            };
        }
    });
    q.build().execute(&mut *dst).await?;
    Ok(())
}

/// Reads the table back from the target (inside the copy's transaction)
/// and hashes it as [`copy_table`] hashed the source.
async fn hash_target(
    dst: &mut PgConnection,
    table: &Table,
    columns: &[Column],
) -> Result<(u64, String), TransferError> {
    let select = format!(
        "select {} from {} order by {}",
        column_list(columns),
        ident(table.name),
        key_order(table, columns, true)
    );
    let mut hasher = Sha256::new();
    let mut rows = 0_u64;
    let mut stream = sqlx::query(&select).fetch(&mut *dst);
    while let Some(row) = stream.try_next().await? {
        let cells = columns
            .iter()
            .enumerate()
            .map(|(i, c)| read_pg(&row, i, c.kind))
            .collect::<Result<Vec<_>, _>>()?;
        hasher.update(canonical_row(&cells).as_bytes());
        hasher.update(b"\n");
        rows += 1;
    }
    Ok((rows, hex::encode(hasher.finalize())))
}

/// Moves every sequence of the target's tables (serial or identity
/// columns; today's schema has none) past the largest copied value, so
/// the next insert does not collide with a copied row.
async fn advance_sequences(dst: &mut PgConnection) -> Result<(), TransferError> {
    let sequenced: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "select table_name::text, column_name::text,
                pg_get_serial_sequence(quote_ident(table_name::text), column_name::text)
         from information_schema.columns
         where table_schema = current_schema()
           and (column_default like 'nextval(%' or is_identity = 'YES')",
    )
    .fetch_all(&mut *dst)
    .await?;
    for (table, column, sequence) in sequenced {
        let Some(sequence) = sequence else { continue };
        sqlx::query(&format!(
            "select setval($1, coalesce((select max({c}) from {t}), 0) + 1, false)",
            c = ident(&column),
            t = ident(&table)
        ))
        .bind(sequence)
        .execute(&mut *dst)
        .await?;
    }
    Ok(())
}

/// Walks every audit chain (the platform's and each team's) on both sides.
async fn check_chains(
    src: &mut SqliteConnection,
    dst: &mut PgConnection,
) -> Result<Vec<ChainCheck>, TransferError> {
    let teams: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("select id, name from teams order by name collate \"C\"")
            .fetch_all(&mut *dst)
            .await?;
    let chains = std::iter::once(("platform".to_owned(), None))
        .chain(teams.into_iter().map(|(id, name)| (name, Some(TeamId(id)))));
    let mut out = Vec::new();
    for (chain, team) in chains {
        out.push(ChainCheck {
            chain,
            source: crate::sqlite::verify_audit_chain_on(src, team).await?,
            target: crate::postgres::verify_audit_chain_on(dst, team).await?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_encodes_the_same_whatever_order_its_json_keys_came_in() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,"x"],"c":null}}"#).unwrap_or_default();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"c":null,"d":[1,"x"]},"b":1}"#).unwrap_or_default();
        assert_eq!(
            canonical_row(&[Cell::Json(Some(a))]),
            canonical_row(&[Cell::Json(Some(b))])
        );
    }

    #[test]
    fn values_are_normalised_and_nulls_stay_null() {
        let id = uuid::Uuid::from_u128(0xABCD);
        let at = DateTime::parse_from_rfc3339("2024-05-01T10:00:00.123456+02:00")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let row = canonical_row(&[
            Cell::Uuid(Some(id)),
            Cell::Time(Some(at)),
            Cell::Bytes(Some(vec![0, 255])),
            Cell::Bool(Some(true)),
            Cell::Int4(Some(7)),
            Cell::Text(None),
        ]);
        assert_eq!(
            row,
            r#"["00000000-0000-0000-0000-00000000abcd","2024-05-01T08:00:00.123456Z","00ff",true,7,null]"#
        );
    }

    #[test]
    fn the_sqlite_and_postgres_migrations_are_the_same_set() {
        let versions = |m: &sqlx::migrate::Migrator| -> Vec<(i64, String)> {
            m.iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect()
        };
        assert_eq!(
            versions(&sqlx::migrate!("../../migrations/sqlite")),
            versions(&sqlx::migrate!("../../migrations/postgres"))
        );
    }

    #[test]
    fn a_table_comes_after_every_table_it_references_in_the_copy_list() {
        // Checked against the real schema in the conformance suite; here,
        // only that the list has no duplicates.
        let names: BTreeSet<&str> = TABLES.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), TABLES.len());
    }
}
