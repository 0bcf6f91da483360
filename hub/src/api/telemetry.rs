//! `GET /api/v1/telemetry`: raw samples of one point, paged, or time
//! buckets (min/max/avg/count) for charts.
//!
//! Query: `point=site/device/point`, `from`, `to` (RFC 3339, `from <= ts <
//! to`), optional `limit` (raw, default 1000, at most 10000), `cursor`
//! (the `next` of the previous page; replaces `from`), `step` (`500ms`,
//! `60s`, `5m`, `1h`, `1d`) or `bucket_ms` for buckets.
//!
//! Any role may read telemetry, of the sites it sees: the first level of a
//! point name is its site, checked before the database is asked.

use super::{ApiError, ApiQuery, AppState, ErrorBody};
use crate::auth::{require, Authenticated};
use crate::store::{Bucket, RawSample};
use axum::extract::State;
use axum::Json;
use dcmms_shared::cmms::{Permission, SiteId};
use dcmms_shared::{validate_name, Quality};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

pub const DEFAULT_LIMIT: u32 = 1000;
pub const MAX_LIMIT: u32 = 10_000;
/// Most buckets one request may ask for.
pub const MAX_BUCKETS: i64 = 100_000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TelemetryParams {
    /// `site/device/point` (required).
    point: Option<String>,
    /// RFC 3339, inclusive (required unless `cursor` is given).
    from: Option<String>,
    /// RFC 3339, exclusive (required).
    to: Option<String>,
    /// Raw samples per page, 1..=10000, default 1000.
    limit: Option<String>,
    /// The `next` of the previous page; replaces `from`.
    cursor: Option<String>,
    /// Bucket width: `500ms`, `60s`, `5m`, `1h`, `1d`.
    step: Option<String>,
    /// Bucket width in milliseconds (instead of `step`).
    bucket_ms: Option<String>,
}

/// One raw sample.
#[derive(Debug, Serialize, ToSchema)]
pub struct SampleView {
    #[schema(format = DateTime)]
    pub ts: String,
    /// Null when the gateway had no valid value.
    pub value: Option<f64>,
    /// `good`, `uncertain` or `bad`.
    pub quality: String,
}

/// Aggregate of one time bucket (null values are not counted).
#[derive(Debug, Serialize, ToSchema)]
pub struct BucketView {
    #[schema(format = DateTime)]
    pub ts: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub avg: Option<f64>,
    pub count: i64,
}

/// A page of raw samples.
#[derive(Debug, Serialize, ToSchema)]
pub struct TelemetrySamples {
    pub point: String,
    pub from: String,
    pub to: String,
    pub samples: Vec<SampleView>,
    /// Cursor of the next page; null on the last.
    pub next: Option<String>,
}

/// Time buckets for charts.
#[derive(Debug, Serialize, ToSchema)]
pub struct TelemetryBuckets {
    pub point: String,
    pub from: String,
    pub to: String,
    pub step_ms: i64,
    pub buckets: Vec<BucketView>,
}

/// Raw samples, or buckets when `step` or `bucket_ms` is given.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum TelemetryResponse {
    Samples(TelemetrySamples),
    Buckets(TelemetryBuckets),
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// Parses an RFC 3339 timestamp to epoch milliseconds.
pub fn parse_time(key: &str, s: &str) -> Result<i64, ApiError> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        bad(format!(
            "`{key}` must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z"
        ))
    })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| bad(format!("`{key}` is out of range")))
}

/// Formats epoch milliseconds as RFC 3339 UTC with milliseconds.
pub fn format_ms(ms: i64) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Parses `500ms`, `60s`, `5m`, `1h`, `1d` into milliseconds.
pub fn parse_step(s: &str) -> Result<i64, ApiError> {
    let err = || bad("`step` must be a duration such as 500ms, 60s, 5m, 1h or 1d");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().map_err(|_| err())?;
    let mult = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(err()),
    };
    n.checked_mul(mult).filter(|ms| *ms > 0).ok_or_else(err)
}

fn parse_cursor(s: &str) -> Result<(i64, u64), ApiError> {
    let err = || bad("`cursor` is not a value returned as `next`");
    let (ts, skip) = s.split_once('.').ok_or_else(err)?;
    Ok((
        ts.parse().map_err(|_| err())?,
        skip.parse().map_err(|_| err())?,
    ))
}

/// Checks `site/device/point` and returns the site.
fn validate_point(name: &str) -> Result<SiteId, ApiError> {
    let parts: Vec<&str> = name.split('/').collect();
    if parts.len() != 3 || parts.iter().any(|p| validate_name(p).is_err()) {
        return Err(bad("`point` must be site/device/point"));
    }
    Ok(SiteId::from(parts[0]))
}

fn sample_view(s: &RawSample) -> SampleView {
    let quality = u8::try_from(s.quality)
        .ok()
        .and_then(Quality::from_u8)
        .unwrap_or(Quality::Bad);
    SampleView {
        ts: format_ms(s.ts_ms),
        value: s.value,
        quality: quality.as_str().to_owned(),
    }
}

fn bucket_view(b: &Bucket) -> BucketView {
    BucketView {
        ts: format_ms(b.ts_ms),
        min: b.min,
        max: b.max,
        avg: b.avg,
        count: b.count,
    }
}

/// Raw samples of one point, paged, or time buckets.
#[utoipa::path(
    get, path = "/api/v1/telemetry", tag = "telemetry",
    params(TelemetryParams),
    responses(
        (status = 200, description = "Samples or buckets", body = TelemetryResponse),
        (status = 404, description = "No such point", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_telemetry(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiQuery(p): ApiQuery<TelemetryParams>,
) -> Result<Json<TelemetryResponse>, ApiError> {
    let point = p
        .point
        .as_deref()
        .ok_or_else(|| bad("`point` is required"))?;
    let site = validate_point(point)?;
    require(&auth.access, &site, Permission::View)?;
    let to_ms = parse_time(
        "to",
        p.to.as_deref().ok_or_else(|| bad("`to` is required"))?,
    )?;
    let cursor = p.cursor.as_deref().map(parse_cursor).transpose()?;
    let from_ms = match (&p.from, cursor) {
        (_, Some((ts, _))) => ts,
        (Some(from), None) => parse_time("from", from)?,
        (None, None) => return Err(bad("`from` is required")),
    };
    if from_ms >= to_ms {
        return Err(bad("`from` must be before `to`"));
    }
    let step_ms = match (&p.step, &p.bucket_ms) {
        (Some(_), Some(_)) => return Err(bad("give `step` or `bucket_ms`, not both")),
        (Some(s), None) => Some(parse_step(s)?),
        (None, Some(b)) => Some(
            b.parse::<i64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| bad("`bucket_ms` must be a positive integer"))?,
        ),
        (None, None) => None,
    };
    let limit = match &p.limit {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|v| (1..=MAX_LIMIT).contains(v))
            .ok_or_else(|| bad(format!("`limit` must be between 1 and {MAX_LIMIT}")))?,
    };

    let point_ref = state
        .store
        .find_point(point)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no point named {point}")))?;

    if let Some(step_ms) = step_ms {
        if cursor.is_some() || p.limit.is_some() {
            return Err(bad(
                "`cursor` and `limit` apply to raw samples, not buckets",
            ));
        }
        let span = to_ms.saturating_sub(from_ms);
        if span / step_ms > MAX_BUCKETS {
            return Err(bad(format!(
                "more than {MAX_BUCKETS} buckets; use a larger step"
            )));
        }
        let buckets = state
            .store
            .buckets(&point_ref, from_ms, to_ms, step_ms)
            .await?;
        return Ok(Json(TelemetryResponse::Buckets(TelemetryBuckets {
            point: point.to_owned(),
            from: format_ms(from_ms),
            to: format_ms(to_ms),
            step_ms,
            buckets: buckets.iter().map(bucket_view).collect(),
        })));
    }

    let skip = cursor.map_or(0, |(_, k)| k);
    let page = state
        .store
        .raw_samples(&point_ref, from_ms, to_ms, skip, limit)
        .await?;
    Ok(Json(TelemetryResponse::Samples(TelemetrySamples {
        point: point.to_owned(),
        from: format_ms(from_ms),
        to: format_ms(to_ms),
        samples: page.samples.iter().map(sample_view).collect(),
        next: page.next.map(|(ts, k)| format!("{ts}.{k}")),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::testing::{assert_error, assert_forbidden, TestApi};
    use crate::ingest::apply_batch;
    use crate::ingest::plan::{Body, Inbound};
    use axum::http::StatusCode;
    use dcmms_shared::cmms::role::UserKind;
    use dcmms_shared::cmms::Role;
    use dcmms_shared::{
        encode_samples, BlockClass, PointCatalog, PointId, Sample, TelemetryBlock, Topic, TopicKind,
    };
    use serde_json::Value;

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    /// The API with telemetry of solar-1 stored, and an admin's token.
    async fn seeded() -> (TestApi, String) {
        let api = TestApi::sqlite().await;
        let store = api.store.clone();
        let cat = Inbound {
            topic: Topic::new("solar-1", "gw", TopicKind::Catalog).unwrap(),
            body: Body::Catalog(PointCatalog {
                first_id: 0,
                names: vec!["inv1/p_ac".into()],
            }),
        };
        // One sample per 10 s for 10 minutes, value = minute index; one bad.
        let mut samples: Vec<Sample> = (0..60)
            .map(|i| Sample::good(PointId(0), T0 + i * 10_000, (i / 6) as f64))
            .collect();
        samples.push(Sample::bad(PointId(0), T0 + 600_000));
        let block = Inbound {
            topic: Topic::new("solar-1", "gw", TopicKind::Telemetry).unwrap(),
            body: Body::Block(TelemetryBlock {
                seq: 1,
                class: BlockClass::Telemetry,
                sample_count: samples.len() as u32,
                first_ts_ms: T0,
                last_ts_ms: T0 + 600_000,
                catalog_len: 1,
                samples: encode_samples(&samples).unwrap(),
            }),
        };
        apply_batch(&store, &[cat, block], 1).await.unwrap();
        let token = api.admin().await;
        (api, token)
    }

    async fn call(app: &(TestApi, String), uri: &str) -> (StatusCode, Value, String) {
        let r = app.0.get(uri, &app.1).await;
        (r.status, r.json, r.text)
    }

    const RANGE: &str = "from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z";

    #[tokio::test]
    async fn raw_samples_page_in_order() {
        let app = seeded().await;
        let (status, json, _) = call(
            &app,
            &format!("/api/v1/telemetry?point=solar-1/inv1/p_ac&{RANGE}&limit=25"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        assert_eq!(json["point"], "solar-1/inv1/p_ac");
        let samples = json["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 25);
        assert_eq!(samples[0]["ts"], "2026-01-01T00:00:00.000Z");
        assert_eq!(samples[0]["value"], 0.0);
        assert_eq!(samples[0]["quality"], "good");
        assert_eq!(samples[7]["value"], 1.0);

        // Follow the cursor to the end.
        let mut all = samples.clone();
        let mut next = json["next"].as_str().map(str::to_owned);
        while let Some(cursor) = next {
            let (status, json, _) = call(
                &app,
                &format!("/api/v1/telemetry?point=solar-1/inv1/p_ac&to=2026-01-01T01:00:00Z&limit=25&cursor={cursor}"),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{json}");
            all.extend(json["samples"].as_array().unwrap().iter().cloned());
            next = json["next"].as_str().map(str::to_owned);
        }
        assert_eq!(all.len(), 61);
        let last = all.last().unwrap();
        assert_eq!(last["ts"], "2026-01-01T00:10:00.000Z");
        assert_eq!(last["value"], Value::Null, "NaN is null in JSON");
        assert_eq!(last["quality"], "bad");
    }

    #[tokio::test]
    async fn downsampled_buckets() {
        let app = seeded().await;
        let (status, json, _) = call(
            &app,
            &format!("/api/v1/telemetry?point=solar-1/inv1/p_ac&{RANGE}&step=2m"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        assert_eq!(json["step_ms"], 120_000);
        let b = json["buckets"].as_array().unwrap();
        // 0..10 min in 2-min buckets, plus the bad sample at 10:00.
        assert_eq!(b.len(), 6);
        assert_eq!(b[0]["ts"], "2026-01-01T00:00:00.000Z");
        assert_eq!(
            (b[0]["min"].as_f64(), b[0]["max"].as_f64()),
            (Some(0.0), Some(1.0))
        );
        assert_eq!(b[0]["avg"].as_f64(), Some(0.5));
        assert_eq!(b[0]["count"], 12);
        assert_eq!(b[5]["count"], 0);
        assert_eq!(b[5]["avg"], Value::Null);

        let (_, same, _) = call(
            &app,
            &format!("/api/v1/telemetry?point=solar-1/inv1/p_ac&{RANGE}&bucket_ms=120000"),
        )
        .await;
        assert_eq!(same["buckets"], json["buckets"]);
    }

    #[tokio::test]
    async fn bad_params_are_400_with_one_shape() {
        let app = seeded().await;
        let p = "point=solar-1/inv1/p_ac";
        for q in [
            RANGE.to_string(),
            format!("{p}&to=2026-01-01T01:00:00Z"),
            format!("{p}&from=2026-01-01T00:00:00Z"),
            format!("{p}&from=yesterday&to=2026-01-01T01:00:00Z"),
            format!("{p}&from=2026-01-01T02:00:00Z&to=2026-01-01T01:00:00Z"),
            format!("{p}&{RANGE}&limit=0"),
            format!("{p}&{RANGE}&limit=abc"),
            format!("{p}&{RANGE}&step=fast"),
            format!("{p}&{RANGE}&step=0s"),
            format!("{p}&{RANGE}&step=1ms"),
            format!("{p}&{RANGE}&step=1m&bucket_ms=5"),
            format!("{p}&{RANGE}&cursor=zzz"),
            format!("{p}&{RANGE}&frm=1"),
            format!("point=../etc&{RANGE}"),
            format!("point=a/b&{RANGE}"),
        ] {
            let (status, json, _) = call(&app, &format!("/api/v1/telemetry?{q}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {json}");
            assert_error(&json, "bad_request");
        }
    }

    #[tokio::test]
    async fn unknown_point_is_404() {
        let app = seeded().await;
        let (status, json, _) = call(
            &app,
            &format!("/api/v1/telemetry?point=solar-1/inv9/p_ac&{RANGE}"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_error(&json, "not_found");
    }

    /// Telemetry needs a token, and shows only the sites the user sees.
    #[tokio::test]
    async fn site_scope() {
        let app = seeded().await;
        let api = &app.0;
        let uri = format!("/api/v1/telemetry?point=solar-1/inv1/p_ac&{RANGE}&limit=5");
        let r = api.send(axum::http::Method::GET, &uri, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_error(&r.json, "unauthorized");

        api.add_user(
            "joe",
            UserKind::Contractor,
            false,
            &[("wind-2", Role::Technician)],
        )
        .await;
        api.add_user("ana", UserKind::Staff, false, &[("solar-1", Role::Viewer)])
            .await;
        let joe = api.login("joe").await;
        let ana = api.login("ana").await;
        let r = api.get(&uri, &joe).await;
        assert_forbidden(&r, Some("view"), Some("solar-1"));
        // Whether the point exists is not revealed to someone who may not see it.
        let r = api
            .get(
                &format!("/api/v1/telemetry?point=solar-1/nothing/here&{RANGE}"),
                &joe,
            )
            .await;
        assert_forbidden(&r, Some("view"), Some("solar-1"));
        let r = api.get(&uri, &ana).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["samples"].as_array().unwrap().len(), 5);
    }

    #[test]
    fn steps_and_times() {
        assert_eq!(parse_step("500ms").unwrap(), 500);
        assert_eq!(parse_step("60s").unwrap(), 60_000);
        assert_eq!(parse_step("1d").unwrap(), 86_400_000);
        assert!(parse_step("s").is_err());
        assert!(parse_step("99999999999999999999h").is_err());
        assert_eq!(
            parse_time("from", "2026-01-01T00:00:00.5+01:00").unwrap(),
            T0 - 3_600_000 + 500
        );
        assert_eq!(format_ms(T0 + 1), "2026-01-01T00:00:00.001Z");
    }
}
