//! The ingest transaction: every statement the ingest path runs, inside
//! one database transaction that commits or leaves nothing behind.
//!
//! Bulk inserts differ per driver: SQLite takes multi-row `VALUES` in
//! chunks below its bound-variable limit; PostgreSQL takes one `UNNEST` of
//! array binds per chunk.

use super::{both, Store, StoreError, Tx};
use dcmms_shared::Sample;
use sqlx::{Connection, QueryBuilder, Sqlite, Transaction};

/// Rows per SQLite multi-row INSERT (5 binds each, far below the 32766
/// variable limit; a fixed size keeps the prepared statement cached).
const SQLITE_SAMPLE_CHUNK: usize = 1000;
const SQLITE_POINT_CHUNK: usize = 1000;
/// Rows per PostgreSQL UNNEST insert (bounds one message's size).
const PG_CHUNK: usize = 50_000;

/// An open ingest transaction.
pub struct IngestTx {
    tx: Tx,
}

/// A gateway's bookkeeping as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayRow {
    pub id: i32,
    pub catalog_len: u32,
    pub acked_seq: i64,
    pub max_seq: i64,
}

/// Result of storing catalog entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogOutcome {
    Stored,
    /// A name already belongs to another point; nothing of this catalog
    /// was stored.
    NameConflict,
}

fn quality_of(s: &Sample) -> i16 {
    s.quality.as_u8() as i16
}

/// NaN cannot be stored in SQLite REAL (it reads back as NULL anyway), so
/// "no valid value" is NULL in both databases; the quality column keeps why.
fn value_of(s: &Sample) -> Option<f64> {
    if s.value.is_nan() {
        None
    } else {
        Some(s.value)
    }
}

impl IngestTx {
    pub(super) async fn begin(store: &Store) -> Result<IngestTx, StoreError> {
        // On the writer connection, deferred: the first statement writes,
        // so the lock is taken at once.
        let tx = match store {
            Store::Sqlite(_, w) => Tx::Sqlite(w.begin().await?),
            Store::Postgres(p) => Tx::Postgres(p.begin().await?),
        };
        Ok(IngestTx { tx })
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await
    }

    /// Registers the gateway on first contact, marks it seen, and returns
    /// its bookkeeping.
    pub async fn touch_gateway(
        &mut self,
        site: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<GatewayRow, StoreError> {
        let tenant = dcmms_shared::topic::tenant_id(site, name);
        let sql = "INSERT INTO gateways (site, name, tenant, first_seen_ms, last_seen_ms) \
                   VALUES ($1, $2, $3, $4, $4) \
                   ON CONFLICT (site, name) DO UPDATE SET last_seen_ms = excluded.last_seen_ms \
                   RETURNING id, catalog_len, acked_seq, max_seq";
        let (id, catalog_len, acked_seq, max_seq): (i32, i64, i64, i64) = both!(&mut self.tx, Tx, t => {
            sqlx::query_as(sql)
                .bind(site)
                .bind(name)
                .bind(&tenant)
                .bind(now_ms)
                .fetch_one(&mut **t)
                .await?
        });
        let catalog_len = u32::try_from(catalog_len)
            .map_err(|_| StoreError::Corrupt(format!("gateway {id} catalog_len {catalog_len}")))?;
        Ok(GatewayRow {
            id,
            catalog_len,
            acked_seq,
            max_seq,
        })
    }

    /// Upserts `(point_id, name)` for a gateway. A name owned by another
    /// point rolls back just these entries (a savepoint) and is reported,
    /// so one misconfigured gateway cannot fail the whole batch.
    pub async fn upsert_points(
        &mut self,
        gateway_id: i32,
        entries: &[(i32, String)],
    ) -> Result<CatalogOutcome, StoreError> {
        if entries.is_empty() {
            return Ok(CatalogOutcome::Stored);
        }
        let result = match &mut self.tx {
            Tx::Sqlite(t) => {
                let mut sp = t.begin().await?;
                let mut res = Ok(());
                for chunk in entries.chunks(SQLITE_POINT_CHUNK) {
                    let mut qb: QueryBuilder<Sqlite> =
                        QueryBuilder::new("INSERT INTO points (gateway_id, point_id, name) ");
                    qb.push_values(chunk, |mut b, (id, name)| {
                        b.push_bind(gateway_id)
                            .push_bind(*id)
                            .push_bind(name.as_str());
                    });
                    qb.push(
                        " ON CONFLICT (gateway_id, point_id) DO UPDATE SET name = excluded.name",
                    );
                    if let Err(e) = qb.build().execute(&mut *sp).await {
                        res = Err(e);
                        break;
                    }
                }
                finish_savepoint(sp, res).await?
            }
            Tx::Postgres(t) => {
                let mut sp = t.begin().await?;
                let mut res = Ok(());
                for chunk in entries.chunks(PG_CHUNK) {
                    let ids: Vec<i32> = chunk.iter().map(|(id, _)| *id).collect();
                    let names: Vec<&str> = chunk.iter().map(|(_, n)| n.as_str()).collect();
                    let r = sqlx::query(
                        "INSERT INTO points (gateway_id, point_id, name) \
                         SELECT $1, * FROM UNNEST($2::int4[], $3::text[]) \
                         ON CONFLICT (gateway_id, point_id) DO UPDATE SET name = EXCLUDED.name",
                    )
                    .bind(gateway_id)
                    .bind(&ids)
                    .bind(&names)
                    .execute(&mut *sp)
                    .await;
                    if let Err(e) = r {
                        res = Err(e);
                        break;
                    }
                }
                finish_savepoint(sp, res).await?
            }
        };
        Ok(result)
    }

    /// Records a block; returns false when `(gateway, seq)` was already
    /// there (a resend of a committed block).
    pub async fn insert_block(
        &mut self,
        gateway_id: i32,
        seq: i64,
        sample_count: i64,
        now_ms: i64,
        rejected: bool,
    ) -> Result<bool, StoreError> {
        let sql = "INSERT INTO blocks (gateway_id, seq, sample_count, received_ms, rejected) \
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (gateway_id, seq) DO NOTHING";
        let done = both!(&mut self.tx, Tx, t => {
            sqlx::query(sql)
                .bind(gateway_id)
                .bind(seq)
                .bind(sample_count)
                .bind(now_ms)
                .bind(rejected)
                .execute(&mut **t)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Bulk-inserts samples; returns how many rows were written.
    pub async fn insert_samples(
        &mut self,
        gateway_id: i32,
        samples: &[Sample],
    ) -> Result<u64, StoreError> {
        let mut written = 0;
        match &mut self.tx {
            Tx::Sqlite(t) => {
                for chunk in samples.chunks(SQLITE_SAMPLE_CHUNK) {
                    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                        "INSERT INTO telemetry (gateway_id, point_id, ts_ms, value, quality) ",
                    );
                    qb.push_values(chunk, |mut b, s| {
                        b.push_bind(gateway_id)
                            .push_bind(s.point.0 as i32)
                            .push_bind(s.ts_ms)
                            .push_bind(value_of(s))
                            .push_bind(quality_of(s));
                    });
                    written += qb.build().execute(&mut **t).await?.rows_affected();
                }
            }
            Tx::Postgres(t) => {
                for chunk in samples.chunks(PG_CHUNK) {
                    let points: Vec<i32> = chunk.iter().map(|s| s.point.0 as i32).collect();
                    let ts: Vec<i64> = chunk.iter().map(|s| s.ts_ms).collect();
                    let values: Vec<Option<f64>> = chunk.iter().map(value_of).collect();
                    let quality: Vec<i16> = chunk.iter().map(quality_of).collect();
                    written += sqlx::query(
                        "INSERT INTO telemetry (gateway_id, point_id, ts_ms, value, quality) \
                         SELECT $1, * FROM UNNEST($2::int4[], $3::int8[], $4::float8[], $5::int2[])",
                    )
                    .bind(gateway_id)
                    .bind(&points)
                    .bind(&ts)
                    .bind(&values)
                    .bind(&quality)
                    .execute(&mut **t)
                    .await?
                    .rows_affected();
                }
            }
        }
        Ok(written)
    }

    /// Stores a status report unless a newer one (by the gateway's own
    /// timestamp) is already there, e.g. when a retained message replays.
    pub async fn store_status(
        &mut self,
        gateway_id: i32,
        status_json: &str,
        status_ts_ms: i64,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE gateways SET status_json = $2, status_ms = $3 \
                   WHERE id = $1 AND (status_ms IS NULL OR status_ms <= $3)";
        both!(&mut self.tx, Tx, t => {
            sqlx::query(sql)
                .bind(gateway_id)
                .bind(status_json)
                .bind(status_ts_ms)
                .execute(&mut **t)
                .await?;
        });
        Ok(())
    }

    /// Advances the gateway's settled-sequence mark over contiguous blocks
    /// after `floor`, and saves it with `catalog_len` and `max_seq`.
    /// Returns the new mark.
    pub async fn save_progress(
        &mut self,
        gateway_id: i32,
        floor: i64,
        max_seq: i64,
        catalog_len: u32,
    ) -> Result<i64, StoreError> {
        let mut acked = floor;
        loop {
            let seqs: Vec<i64> = both!(&mut self.tx, Tx, t => {
                sqlx::query_scalar(
                    "SELECT seq FROM blocks WHERE gateway_id = $1 AND seq > $2 ORDER BY seq LIMIT 4096",
                )
                .bind(gateway_id)
                .bind(acked)
                .fetch_all(&mut **t)
                .await?
            });
            let before = acked;
            for s in &seqs {
                if *s == acked + 1 {
                    acked = *s;
                } else {
                    break;
                }
            }
            if seqs.len() < 4096 || acked - before < seqs.len() as i64 {
                break;
            }
        }
        let sql =
            "UPDATE gateways SET acked_seq = $2, max_seq = $3, catalog_len = $4 WHERE id = $1";
        both!(&mut self.tx, Tx, t => {
            sqlx::query(sql)
                .bind(gateway_id)
                .bind(acked)
                .bind(max_seq)
                .bind(catalog_len as i64)
                .execute(&mut **t)
                .await?;
        });
        Ok(acked)
    }
}

async fn finish_savepoint<DB: sqlx::Database>(
    sp: Transaction<'_, DB>,
    res: Result<(), sqlx::Error>,
) -> Result<CatalogOutcome, StoreError> {
    match res {
        Ok(()) => {
            sp.commit().await?;
            Ok(CatalogOutcome::Stored)
        }
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            sp.rollback().await?;
            Ok(CatalogOutcome::NameConflict)
        }
        Err(e) => Err(e.into()),
    }
}
