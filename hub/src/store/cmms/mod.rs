//! The hub's maintenance (CMMS) records on SQLite or PostgreSQL: sites,
//! assets, work orders, preventive-maintenance plans, spare-parts stock and
//! costs.
//!
//! The rules are `dcmms_shared::cmms`'s, never this module's: every write
//! loads the record, calls the domain, and saves what the domain returned.
//! Work orders and PM plans are stored as the serialized domain struct
//! (the truth) plus columns that index it, rewritten on every save.
//!
//! Writes take a [`Tx`] the caller owns and commits, so that a route can add
//! its audit entry in the same transaction; they return the record before
//! and after ([`Changed`]) for that entry. On any error the caller must drop
//! (roll back) the transaction: the domain refuses before anything is
//! written, but a database error midway leaves the transaction half done.
//! Reads take a [`Db`]: the pool (`&Store`) or an open transaction.
//!
//! Concurrency: [`crate::store::Store::transaction`] takes SQLite's write lock at
//! once, so SQLite writers run one at a time; on PostgreSQL a write locks
//! the rows it loads (`FOR NO KEY UPDATE`) before calling the domain, in a
//! fixed order (work order, then parts by id, then PM plan), and every save
//! also checks the `version` it loaded.
//!
//! Errors are [`CmmsError`]: typed refusals with a stable [`CmmsError::code`]
//! for API clients; database failures stay inside [`CmmsError::Db`] and must
//! only be logged, never sent to clients.

pub mod assets;
pub mod costs;
pub mod parts;
pub mod pm;
pub mod seed;
pub mod sites;
mod wo_list;
pub mod work_orders;

#[cfg(test)]
mod tests;

use super::{both, Store, StoreError, Tx};
use dcmms_shared::cmms::pm::PmError;
use dcmms_shared::cmms::{
    AssetError, CostError, HierarchyError, StockError, TransitionError, WorkOrderId,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres, Sqlite, SqliteConnection};
use time::{Date, OffsetDateTime};

/// Why a CMMS store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmmsError {
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    #[error("{entity} {id} already exists")]
    Duplicate { entity: &'static str, id: String },
    /// The record changed since the caller read it.
    #[error("the record is at version {actual}, not {expected}")]
    Conflict { expected: i64, actual: i64 },
    /// The work-order rules refused the change.
    #[error(transparent)]
    Domain(#[from] TransitionError),
    /// The stock rules refused the change.
    #[error(transparent)]
    Stock(#[from] StockError),
    #[error(transparent)]
    Hierarchy(#[from] HierarchyError),
    #[error(transparent)]
    Asset(#[from] AssetError),
    #[error(transparent)]
    Plan(#[from] PmError),
    #[error(transparent)]
    Cost(#[from] CostError),
    /// Input the domain has no type for (a site id, a cursor).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// Database failure or inconsistent stored data: log it, answer 500.
    #[error(transparent)]
    Db(#[from] StoreError),
}

impl From<sqlx::Error> for CmmsError {
    fn from(e: sqlx::Error) -> Self {
        CmmsError::Db(StoreError::Db(e))
    }
}

impl CmmsError {
    /// Stable machine-readable code; `internal` for database failures.
    pub fn code(&self) -> &'static str {
        match self {
            CmmsError::NotFound { .. } => "not_found",
            CmmsError::Duplicate { .. } => "duplicate",
            CmmsError::Conflict { .. } => "version_conflict",
            CmmsError::Domain(e) => e.code(),
            CmmsError::Stock(e) => e.code(),
            CmmsError::Hierarchy(e) => e.code(),
            CmmsError::Asset(e) => e.code(),
            CmmsError::Plan(e) => e.code(),
            CmmsError::Cost(e) => e.code(),
            CmmsError::Invalid { code, .. } => code,
            CmmsError::Db(_) => "internal",
        }
    }

    /// Whether retrying the whole transaction may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, CmmsError::Db(e) if e.is_transient())
    }

    pub(crate) fn not_found(entity: &'static str, id: impl ToString) -> Self {
        CmmsError::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        CmmsError::Invalid {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        CmmsError::Db(StoreError::Corrupt(what.into()))
    }
}

/// A record before and after a write, for the caller's audit entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changed<T> {
    pub before: T,
    pub after: T,
}

/// Where a read runs: on a pooled connection, or inside a transaction
/// (to see its own uncommitted writes). `&Store` and `&mut Tx` convert.
pub enum Db<'a> {
    Pool(&'a Store),
    Tx(&'a mut Tx),
}

impl<'a> From<&'a Store> for Db<'a> {
    fn from(store: &'a Store) -> Self {
        Db::Pool(store)
    }
}

impl<'a> From<&'a mut Tx> for Db<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        Db::Tx(tx)
    }
}

/// A connection held for one read.
pub(crate) enum Lease<'a> {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
    Tx(&'a mut Tx),
}

impl<'a> Db<'a> {
    pub(crate) async fn lease(self) -> Result<Lease<'a>, CmmsError> {
        Ok(match self {
            Db::Pool(Store::Sqlite(p, _)) => Lease::Sqlite(p.acquire().await?),
            Db::Pool(Store::Postgres(p)) => Lease::Postgres(p.acquire().await?),
            Db::Tx(tx) => Lease::Tx(tx),
        })
    }
}

impl Lease<'_> {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Lease::Sqlite(c) => Conn::Sqlite(c),
            Lease::Postgres(c) => Conn::Postgres(c),
            Lease::Tx(tx) => conn(tx),
        }
    }
}

/// One connection of either driver; statements run on it with
/// `both!(c, Conn, x => query.execute(&mut **x))`.
pub(crate) enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

/// The connection of a transaction.
pub(crate) fn conn(tx: &mut Tx) -> Conn<'_> {
    match tx {
        Tx::Sqlite(t) => Conn::Sqlite(t),
        Tx::Postgres(t) => Conn::Postgres(t),
    }
}

impl Conn<'_> {
    pub(crate) fn is_pg(&self) -> bool {
        matches!(self, Conn::Postgres(_))
    }

    /// Row lock for a read that precedes a write: PostgreSQL only (SQLite's
    /// write transaction already excludes other writers). `NO KEY`: keys
    /// never change here, and the weaker lock lets other transactions keep
    /// inserting rows that reference the locked one (a work order at a site
    /// whose assets are being changed).
    pub(crate) fn for_update(&self) -> &'static str {
        if self.is_pg() {
            " FOR NO KEY UPDATE"
        } else {
            ""
        }
    }

    /// Placeholder `$n` of a JSON document column.
    pub(crate) fn json_param(&self, n: u32) -> String {
        if self.is_pg() {
            format!("${n}::jsonb")
        } else {
            format!("${n}")
        }
    }

    /// A JSON document column read back as text.
    pub(crate) fn json_col(&self, col: &str) -> String {
        if self.is_pg() {
            format!("{col}::text")
        } else {
            col.to_owned()
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

const DATE_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// `YYYY-MM-DD`, as the domain serialises dates.
pub(crate) fn date_str(d: Date) -> String {
    d.format(DATE_FORMAT)
        .unwrap_or_else(|_| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()))
}

pub(crate) fn parse_date(s: &str) -> Result<Date, CmmsError> {
    Date::parse(s, DATE_FORMAT).map_err(|_| CmmsError::corrupt(format!("stored date {s:?}")))
}

pub(crate) fn serialize_opt_date<S: serde::Serializer>(
    d: &Option<Date>,
    s: S,
) -> Result<S::Ok, S::Error> {
    d.map(date_str).serialize(s)
}

/// A document column's text.
pub(crate) fn to_doc<T: Serialize>(value: &T) -> Result<String, CmmsError> {
    serde_json::to_string(value).map_err(|e| CmmsError::corrupt(format!("serialising: {e}")))
}

pub(crate) fn from_doc<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, CmmsError> {
    serde_json::from_str(text).map_err(|e| CmmsError::corrupt(format!("stored {what}: {e}")))
}

/// The snake_case name of a unit enum variant (as serde writes it).
pub(crate) fn enum_str<T: Serialize>(value: &T) -> Result<String, CmmsError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(CmmsError::corrupt("enum without a plain name")),
    }
}

pub(crate) fn enum_from_str<T: for<'de> Deserialize<'de>>(
    what: &str,
    s: &str,
) -> Result<T, CmmsError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| CmmsError::corrupt(format!("stored {what} {s:?}")))
}

/// Whether a statement failed on a UNIQUE or PRIMARY KEY constraint.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Whether a statement failed on a FOREIGN KEY constraint.
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

/// Maps a unique violation of an insert to [`CmmsError::Duplicate`].
pub(crate) fn insert_error(e: sqlx::Error, entity: &'static str, id: &str) -> CmmsError {
    if is_unique_violation(&e) {
        CmmsError::Duplicate {
            entity,
            id: id.to_owned(),
        }
    } else {
        e.into()
    }
}

/// Takes the next value of a named counter, inside the transaction (the
/// counter row stays locked until it commits, so values never repeat).
pub(crate) async fn next_counter(c: &mut Conn<'_>, name: &str, n: i64) -> Result<i64, CmmsError> {
    let sql = "INSERT INTO cmms_counters (name, value) VALUES ($1, $2) \
               ON CONFLICT (name) DO UPDATE SET value = cmms_counters.value + $2 \
               RETURNING value";
    Ok(both!(c, Conn, x => {
        sqlx::query_scalar(sql).bind(name).bind(n).fetch_one(&mut **x).await?
    }))
}

/// Work-order id of counter value `n`: `WO-000123`.
pub(crate) fn work_order_id(n: i64) -> WorkOrderId {
    WorkOrderId(format!("WO-{n:06}"))
}
