//! The hub's database: SQLite (embedded default) or PostgreSQL, behind one
//! [`Store`].
//!
//! Most statements are the same text on both (`$n` placeholders, `ON
//! CONFLICT`, `RETURNING`); the [`both!`] macro runs one body against
//! whichever pool is in use, type-checked once per driver. Where SQL differs
//! (bulk inserts) the write path matches on the driver explicitly. Schema
//! changes are versioned migrations under `hub/migrations/{sqlite,postgres}`,
//! kept column-for-column equal.
//!
//! This module never sends database error text to API clients; callers
//! log [`StoreError`] and answer with a generic message.

pub mod cmms;
mod read;
mod users;
mod write;

pub use cmms::{Changed, CmmsError, Db};
pub use read::{Bucket, GatewaySummary, PointRef, RawSample, TelemetryPage};
pub use users::{
    NewUser, SortKey, TokenRow, UserFilter, UserRow, UserUpdate, UserWithRoles, UsersPage,
};
pub use write::{CatalogOutcome, GatewayRow, IngestTx};

use crate::config::DatabaseLocation;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};
use std::time::Duration;

/// Runs `$body` with `$c` bound to the pool or transaction of either driver
/// (for a [`Store`], the pool of readers).
macro_rules! both {
    ($on:expr, Store, $c:ident => $body:expr) => {
        match $on {
            Store::Sqlite($c, _) => $body,
            Store::Postgres($c) => $body,
        }
    };
    ($on:expr, $enum:ident, $c:ident => $body:expr) => {
        match $on {
            $enum::Sqlite($c) => $body,
            $enum::Postgres($c) => $body,
        }
    };
}
pub(crate) use both;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database folder {path}: {source}")]
    Folder {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether retrying the same transaction may succeed (lock contention,
    /// a dropped connection) as opposed to a statement that will fail again.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => {
                let code = e.code();
                let code = code.as_deref().unwrap_or("");
                // SQLite BUSY/LOCKED (5, 6 and their extended codes); PostgreSQL
                // serialization failure, deadlock, admin shutdown, connection classes.
                matches!(
                    code,
                    "5" | "6" | "517" | "261" | "262" | "40001" | "40P01" | "57P01"
                ) || code.starts_with("08")
            }
            StoreError::Db(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed,
            ) => true,
            _ => false,
        }
    }
}

impl StoreError {
    /// Whether the statement broke a UNIQUE constraint (a name already taken).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

/// An open transaction on either driver: [`Tx::commit`] or drop (which
/// rolls back). Write helpers of every module take `&mut Tx`, so that a
/// change and its audit entry ([`crate::audit::record`]) commit together.
/// Run a statement on it with the [`both!`] macro:
/// `both!(tx, Tx, t => sqlx::query(..).execute(&mut **t).await?)`.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tx::Sqlite(_) => "Tx::Sqlite",
            Tx::Postgres(_) => "Tx::Postgres",
        })
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), StoreError> {
        both!(self, Tx, t => t.commit().await?);
        Ok(())
    }
}

/// Bytes of an SQLite database file mapped into memory (256 MiB: the
/// work-order tables and indexes of a large fleet; the address space only,
/// pages are shared with the OS cache).
const SQLITE_MMAP_BYTES: u64 = 256 * 1024 * 1024;

/// Connection pool of either driver.
#[derive(Debug, Clone)]
pub enum Store {
    /// The pool readers share, and a pool of one connection on which every
    /// write transaction takes its turn. SQLite has one writer at a time:
    /// waiting in this queue is fair and wakes at once, where writers that
    /// contend for the file lock sleep in SQLite's busy handler (for up to
    /// 100 ms a try) and answer late under load.
    Sqlite(SqlitePool, SqlitePool),
    Postgres(PgPool),
}

impl Store {
    /// Opens (creating if needed) and migrates the database.
    pub async fn open(
        location: &DatabaseLocation,
        max_connections: u32,
    ) -> Result<Store, StoreError> {
        let store = match location {
            DatabaseLocation::Sqlite(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                        path: dir.to_owned(),
                        source,
                    })?;
                }
                let opts = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
                    // Reads straight from the mapped file instead of
                    // copying pages through read(2), and a page cache per
                    // connection that holds the hot indexes of the
                    // work-order listings (16 MiB each).
                    .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string())
                    .pragma("cache_size", "-16384")
                    .pragma("temp_store", "memory");
                let pool = SqlitePoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts.clone())
                    .await?;
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await?;
                Store::Sqlite(pool, writer)
            }
            DatabaseLocation::Postgres(url) => {
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?;
                Store::Postgres(pool)
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(_, w) => sqlx::migrate!("./migrations/sqlite").run(w).await?,
            Store::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// Driver name, for logs and `/health`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(..) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        both!(self, Store, p => {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    /// Starts a read-write transaction. On SQLite it waits for the writer
    /// connection, then takes the write lock at once (`BEGIN IMMEDIATE`): a
    /// deferred transaction that reads, then writes after ingest committed,
    /// would fail with a stale snapshot instead of waiting for the lock.
    pub async fn transaction(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Store::Sqlite(_, w) => Tx::Sqlite(w.begin_with("BEGIN IMMEDIATE").await?),
            Store::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Starts an ingest transaction.
    pub async fn begin(&self) -> Result<IngestTx, StoreError> {
        IngestTx::begin(self).await
    }

    /// Closes every pooled connection (SQLite checkpoints its WAL).
    pub async fn close(&self) {
        match self {
            Store::Sqlite(readers, writer) => {
                readers.close().await;
                writer.close().await;
            }
            Store::Postgres(p) => p.close().await,
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! One test body, both databases.
    use super::*;

    /// A store on a fresh SQLite file; the folder lives as long as the guard.
    pub async fn sqlite() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&DatabaseLocation::Sqlite(dir.path().join("t.db")), 4)
            .await
            .unwrap();
        (store, dir)
    }

    /// A store on a throwaway PostgreSQL cluster; fails (never skips) when
    /// the server binaries are missing.
    pub async fn postgres() -> (Store, dcmms_e2e::pg::PgCluster) {
        let cluster = tokio::task::spawn_blocking(dcmms_e2e::pg::PgCluster::start)
            .await
            .unwrap()
            .expect("PostgreSQL test cluster");
        let store = Store::open(&DatabaseLocation::Postgres(cluster.url().to_owned()), 4)
            .await
            .unwrap();
        (store, cluster)
    }
}
