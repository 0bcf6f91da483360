//! Read path for the API: point lookup, raw samples with keyset-style
//! paging, time buckets for charts, and the gateway list.

use super::{both, Store, StoreError};
use dcmms_shared::GatewayStatus;

/// A stored point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointRef {
    pub gateway_id: i32,
    pub point_id: i32,
    pub name: String,
}

/// One stored sample; `value` is None when the gateway had no valid value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawSample {
    pub ts_ms: i64,
    pub value: Option<f64>,
    pub quality: i16,
}

/// A page of raw samples and where the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryPage {
    pub samples: Vec<RawSample>,
    /// `(ts_ms, skip)`: the next page starts at `ts_ms`, after skipping
    /// `skip` samples that carry exactly that timestamp.
    pub next: Option<(i64, u64)>,
}

/// Aggregate of one time bucket (values that are NULL are not counted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub ts_ms: i64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub avg: Option<f64>,
    pub count: i64,
}

/// A gateway as the fleet list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySummary {
    pub site: String,
    pub gateway: String,
    pub last_seen_ms: i64,
    pub catalog_len: i64,
    pub acked_seq: i64,
    pub max_seq: i64,
    pub status: Option<GatewayStatus>,
    pub status_received_ms: Option<i64>,
}

impl Store {
    pub async fn find_point(&self, name: &str) -> Result<Option<PointRef>, StoreError> {
        let row: Option<(i32, i32)> = both!(self, Store, p => {
            sqlx::query_as("SELECT gateway_id, point_id FROM points WHERE name = $1")
                .bind(name)
                .fetch_optional(p)
                .await?
        });
        Ok(row.map(|(gateway_id, point_id)| PointRef {
            gateway_id,
            point_id,
            name: name.to_owned(),
        }))
    }

    /// Samples of `point` with `from_ms <= ts < to_ms` in time order, at
    /// most `limit`, starting after `skip` samples at exactly `from_ms`.
    pub async fn raw_samples(
        &self,
        point: &PointRef,
        from_ms: i64,
        to_ms: i64,
        skip: u64,
        limit: u32,
    ) -> Result<TelemetryPage, StoreError> {
        // Ties on ts are ordered by (quality, value) so that pages are
        // stable; rows equal in all three are interchangeable.
        let sql = "SELECT ts_ms, value, quality FROM telemetry \
                   WHERE gateway_id = $1 AND point_id = $2 AND ts_ms >= $3 AND ts_ms < $4 \
                   ORDER BY ts_ms, quality, value LIMIT $5 OFFSET $6";
        let fetch = limit as i64 + 1;
        let skip_i = i64::try_from(skip).unwrap_or(i64::MAX);
        let rows: Vec<(i64, Option<f64>, i16)> = both!(self, Store, p => {
            sqlx::query_as(sql)
                .bind(point.gateway_id)
                .bind(point.point_id)
                .bind(from_ms)
                .bind(to_ms)
                .bind(fetch)
                .bind(skip_i)
                .fetch_all(p)
                .await?
        });
        let mut samples: Vec<RawSample> = rows
            .into_iter()
            .map(|(ts_ms, value, quality)| RawSample {
                ts_ms,
                value,
                quality,
            })
            .collect();
        let next = next_cursor(&samples, from_ms, skip, limit as usize);
        samples.truncate(limit as usize);
        Ok(TelemetryPage { samples, next })
    }

    /// Buckets of `step_ms` aligned to multiples of `step_ms` since the
    /// epoch, over `from_ms <= ts < to_ms`, in time order; empty buckets are
    /// omitted.
    pub async fn buckets(
        &self,
        point: &PointRef,
        from_ms: i64,
        to_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<Bucket>, StoreError> {
        // Bucketing relative to an origin at or before `from` keeps the
        // integer division on non-negative numbers (both databases truncate
        // toward zero).
        let origin = from_ms.div_euclid(step_ms) * step_ms;
        let sql = "SELECT $5 + ((ts_ms - $5) / $6) * $6 AS bucket, \
                   MIN(value), MAX(value), AVG(value), COUNT(value) FROM telemetry \
                   WHERE gateway_id = $1 AND point_id = $2 AND ts_ms >= $3 AND ts_ms < $4 \
                   GROUP BY bucket ORDER BY bucket";
        type Row = (i64, Option<f64>, Option<f64>, Option<f64>, i64);
        let rows: Vec<Row> = both!(self, Store, p => {
            sqlx::query_as(sql)
                .bind(point.gateway_id)
                .bind(point.point_id)
                .bind(from_ms)
                .bind(to_ms)
                .bind(origin)
                .bind(step_ms)
                .fetch_all(p)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(ts_ms, min, max, avg, count)| Bucket {
                ts_ms,
                min,
                max,
                avg,
                count,
            })
            .collect())
    }

    /// Every gateway that has ever connected, by site then name.
    pub async fn gateways(&self) -> Result<Vec<GatewaySummary>, StoreError> {
        type Row = (
            String,
            String,
            i64,
            i64,
            i64,
            i64,
            Option<String>,
            Option<i64>,
        );
        let sql = "SELECT site, name, last_seen_ms, catalog_len, acked_seq, max_seq, status_json, status_ms \
                   FROM gateways ORDER BY site, name";
        let rows: Vec<Row> = both!(self, Store, p => sqlx::query_as(sql).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(
                |(site, gateway, last_seen_ms, catalog_len, acked_seq, max_seq, json, status_ms)| {
                    let status = json.and_then(|j| match serde_json::from_str(&j) {
                        Ok(s) => Some(s),
                        Err(e) => {
                            tracing::warn!(%site, %gateway, error = %e, "stored status does not parse");
                            None
                        }
                    });
                    GatewaySummary {
                        site,
                        gateway,
                        last_seen_ms,
                        catalog_len,
                        acked_seq,
                        max_seq,
                        status,
                        status_received_ms: status_ms,
                    }
                },
            )
            .collect())
    }
}

/// Cursor after a page: `rows` holds up to `limit + 1` rows fetched from
/// `(from_ms, skip)`; None when they all fit.
pub(crate) fn next_cursor(
    rows: &[RawSample],
    from_ms: i64,
    skip: u64,
    limit: usize,
) -> Option<(i64, u64)> {
    if rows.len() <= limit {
        return None;
    }
    let next_ts = rows[limit].ts_ms;
    let mut same = rows[..limit].iter().filter(|r| r.ts_ms == next_ts).count() as u64;
    if next_ts == from_ms {
        same += skip;
    }
    Some((next_ts, same))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(ts: &[i64]) -> Vec<RawSample> {
        ts.iter()
            .map(|&ts_ms| RawSample {
                ts_ms,
                value: Some(1.0),
                quality: 0,
            })
            .collect()
    }

    #[test]
    fn cursor_skips_ties_already_returned() {
        assert_eq!(next_cursor(&rows(&[1, 2, 3]), 0, 0, 3), None);
        assert_eq!(next_cursor(&rows(&[1, 2, 3, 4]), 0, 0, 3), Some((4, 0)));
        assert_eq!(next_cursor(&rows(&[1, 4, 4, 4]), 0, 0, 3), Some((4, 2)));
        // A page entirely inside one timestamp accumulates the skip.
        assert_eq!(next_cursor(&rows(&[4, 4, 4, 4]), 4, 3, 3), Some((4, 6)));
    }
}
