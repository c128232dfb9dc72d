//! Moving and backing up the store: `migrate-store` copies the embedded
//! SQLite store into an empty PostgreSQL database and verifies the copy;
//! `backup` writes an online copy of the SQLite store. Both act on the
//! SQLite database in `--data-dir`.

use crate::StorageArgs;
use anyhow::{Context, Result, bail};
use stagehand_store::transfer::{self, TableReport, TransferReport};
use stagehand_store::{Database, redact_url};
use std::path::Path;

/// `stagehand migrate-store --to postgres://…`.
pub(crate) async fn migrate_store(storage: &StorageArgs, to: &str) -> Result<()> {
    let shown = redact_url(to);
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        bail!(
            "--to must be a PostgreSQL URL (postgres://user:password@host/database), got {shown}"
        );
    }
    let Database::Sqlite { path } = storage.sqlite_database()? else {
        unreachable!("sqlite_database only answers SQLite")
    };
    let key = storage.existing_key()?;
    println!("moving {} to {shown}", path.display());
    println!("(the server must be stopped: the SQLite database is locked while it is copied)");
    let report = transfer::sqlite_to_postgres(&path, to, &key, print_table)
        .await
        .with_context(|| format!("could not move the store to {shown}"))?;
    print_chains(&report);
    let rows: u64 = report.tables.iter().map(|t| t.target_rows).sum();
    if report.verified() && report.committed {
        println!(
            "verified: {} tables, {rows} rows, every row count and content hash equal, every audit chain intact; the copy is committed",
            report.tables.len()
        );
        println!(
            "next: start stagehand with DATABASE_URL set to the target and the same secret key \
             (STAGEHAND_SECRET_KEY, or this --data-dir's secret.key); keep {} as a backup",
            path.display()
        );
        Ok(())
    } else {
        bail!("the copy did not verify, so it was rolled back: the target holds no data");
    }
}

fn print_table(t: &TableReport) {
    let short = |h: &str| h.get(..16).unwrap_or(h).to_owned();
    if t.matches() {
        println!(
            "  {:<22} {:>9} rows  sha256 {}  ok",
            t.table,
            t.target_rows,
            short(&t.target_hash)
        );
    } else {
        println!(
            "  {:<22} MISMATCH: source {} rows sha256 {}, target {} rows sha256 {}",
            t.table,
            t.source_rows,
            short(&t.source_hash),
            t.target_rows,
            short(&t.target_hash)
        );
    }
}

fn print_chains(report: &TransferReport) {
    for c in &report.chains {
        match (&c.target.first_break, c.source.intact) {
            (None, _) => println!(
                "  audit chain {}: intact ({} events)",
                c.chain, c.target.checked
            ),
            (Some(b), source_intact) => println!(
                "  audit chain {}: BROKEN at event {}: {}{}",
                c.chain,
                b.seq,
                b.reason,
                if source_intact {
                    " (intact in the source)"
                } else {
                    " (already broken in the source: run `stagehand audit verify`)"
                }
            ),
        }
    }
}

/// `stagehand backup --to FILE`.
pub(crate) async fn backup(storage: &StorageArgs, to: &Path) -> Result<()> {
    let Database::Sqlite { path } = storage.sqlite_database()? else {
        unreachable!("sqlite_database only answers SQLite")
    };
    stagehand_store::sqlite::backup(&path, to)
        .await
        .with_context(|| format!("could not back up {} to {}", path.display(), to.display()))?;
    let size = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up {} to {} ({size} bytes)",
        path.display(),
        to.display()
    );
    eprintln!(
        "the secret key is not in the backup: keep STAGEHAND_SECRET_KEY (or {}) safe, \
         separately; env values cannot be read without it",
        storage.key_file().display()
    );
    Ok(())
}
