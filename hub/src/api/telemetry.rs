//! `GET /api/v1/telemetry`: raw samples of one point, paged, or time
//! buckets (min/max/avg/count) for charts.
//!
//! Query: `point=site/device/point`, `from`, `to` (RFC 3339, `from <= ts <
//! to`; an empty range has no samples), optional `limit` (raw, default
//! 1000, at most 10000), `cursor` (the `next` of the previous page; paging
//! resumes there instead of at `from`), `step` (`500ms`, `60s`, `5m`,
//! `1h`, `1d`) or `bucket_ms` for buckets. What the document says of each
//! parameter is exactly what is checked here; the rules that tie two
//! parameters together (`step` or `bucket_ms`; `limit` and `cursor` for raw
//! samples only; at most [`MAX_BUCKETS`] buckets) are beyond a parameter
//! schema and are told in the descriptions.
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
/// Widest bucket: 999999999 days, the most a `step` can spell.
pub const MAX_STEP_MS: i64 = 999_999_999 * 86_400_000;
/// `site/device/point`, each a name as `dcmms_shared::validate_name` has it.
pub const POINT_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}$";
/// [`parse_step`]: 1 to 9 digits without a leading zero, and a unit.
pub const STEP_PATTERN: &str = "^[1-9][0-9]{0,8}(ms|s|m|h|d)$";

/// Refusal of `step` with `bucket_ms`.
pub const BOTH_WIDTHS: &str = "give `step` or `bucket_ms`, not both";
/// Refusal of `limit` or `cursor` with buckets.
pub const RAW_ONLY: &str = "`limit` and `cursor` apply to raw samples, not to buckets";

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TelemetryParams {
    /// `site/device/point`.
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}$")]
    point: String,
    /// RFC 3339, inclusive. With `cursor`, paging resumes at the cursor
    /// instead.
    #[param(format = DateTime)]
    from: String,
    /// RFC 3339, exclusive. A `to` at or before `from` is an empty range.
    #[param(format = DateTime)]
    to: String,
    /// Raw samples per page, default 1000; not with `step` or `bucket_ms`.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// The `next` of the previous page; not with `step` or `bucket_ms`.
    cursor: Option<String>,
    /// Bucket width: 1 to 9 digits (no leading zero) and a unit, `ms`,
    /// `s`, `m`, `h` or `d`, as in `500ms`, `60s`, `5m`, `1h`, `1d`. Not
    /// with `bucket_ms`; at most 100000 buckets from `from` to `to`.
    #[param(pattern = "^[1-9][0-9]{0,8}(ms|s|m|h|d)$")]
    step: Option<String>,
    /// Bucket width in milliseconds (at most 999999999 days), instead of
    /// `step`; at most 100000 buckets from `from` to `to`.
    #[param(minimum = 1, maximum = 86399999913600000_i64)]
    bucket_ms: Option<i64>,
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

/// Parses an RFC 3339 `date-time` (section 5.6) to epoch milliseconds.
pub fn parse_time(key: &str, s: &str) -> Result<i64, ApiError> {
    let err = || {
        bad(format!(
            "`{key}` must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z"
        ))
    };
    // The parser also takes a space for the `T`, which RFC 3339 allows in
    // prose only; the grammar, and the document's `date-time`, do not.
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't')) {
        return Err(err());
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| err())?;
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

/// Parses `500ms`, `60s`, `5m`, `1h`, `1d` ([`STEP_PATTERN`]) into
/// milliseconds, at most [`MAX_STEP_MS`].
pub fn parse_step(s: &str) -> Result<i64, ApiError> {
    let err = || {
        bad(format!(
            "`step` must be a duration matching {STEP_PATTERN}, such as 500ms, 60s, 5m, 1h or 1d"
        ))
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (num, unit) = s.split_at(split);
    if !(1..=9).contains(&num.len()) || num.starts_with('0') {
        return Err(err());
    }
    let n: i64 = num.parse().map_err(|_| err())?;
    let mult = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(err()),
    };
    n.checked_mul(mult)
        .filter(|ms| (1..=MAX_STEP_MS).contains(ms))
        .ok_or_else(err)
}

fn parse_cursor(s: &str) -> Result<(i64, u64), ApiError> {
    let err = || bad("`cursor` is not a value returned as `next`");
    let (ts, skip) = s.split_once('.').ok_or_else(err)?;
    Ok((
        ts.parse().map_err(|_| err())?,
        skip.parse().map_err(|_| err())?,
    ))
}

/// Checks `site/device/point` ([`POINT_PATTERN`]) and returns the site.
fn validate_point(name: &str) -> Result<SiteId, ApiError> {
    let parts: Vec<&str> = name.split('/').collect();
    if parts.len() != 3 || parts.iter().any(|p| validate_name(p).is_err()) {
        return Err(bad(format!(
            "`point` must be site/device/point, matching {POINT_PATTERN}"
        )));
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
    let point = p.point.as_str();
    let site = validate_point(point)?;
    require(&auth.access, &site, Permission::View)?;
    let to_ms = parse_time("to", &p.to)?;
    let from_ms = parse_time("from", &p.from)?;
    let cursor = p.cursor.as_deref().map(parse_cursor).transpose()?;
    // The cursor is where the previous page ended, at or after `from`.
    let from_ms = cursor.map_or(from_ms, |(ts, _)| ts);
    let step_ms = match (&p.step, p.bucket_ms) {
        (Some(_), Some(_)) => return Err(bad(BOTH_WIDTHS)),
        (Some(s), None) => Some(parse_step(s)?),
        (None, Some(b)) if (1..=MAX_STEP_MS).contains(&b) => Some(b),
        (None, Some(_)) => {
            return Err(bad(format!(
                "`bucket_ms` must be between 1 and {MAX_STEP_MS}"
            )))
        }
        (None, None) => None,
    };
    if step_ms.is_some() && (cursor.is_some() || p.limit.is_some()) {
        return Err(bad(RAW_ONLY));
    }
    let limit = match p.limit {
        None => DEFAULT_LIMIT,
        Some(l) if (1..=MAX_LIMIT).contains(&l) => l,
        Some(_) => return Err(bad(format!("`limit` must be between 1 and {MAX_LIMIT}"))),
    };

    let point_ref = state
        .store
        .find_point(point)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no point named {point}")))?;

    if let Some(step_ms) = step_ms {
        // An empty range (`to` at or before `from`) has no buckets.
        let span = to_ms.saturating_sub(from_ms).max(0);
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
                &format!(
                    "/api/v1/telemetry?point=solar-1/inv1/p_ac&{RANGE}&limit=25&cursor={cursor}"
                ),
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
            format!("{p}&from=2026-01-01T00:00:00Z&to=2026-01-01%2001:00:00Z"),
            format!("{p}&{RANGE}&limit=0"),
            format!("{p}&{RANGE}&limit=10001"),
            format!("{p}&{RANGE}&limit=abc"),
            format!("{p}&{RANGE}&step=fast"),
            format!("{p}&{RANGE}&step=0s"),
            format!("{p}&{RANGE}&step=05m"),
            format!("{p}&{RANGE}&step=1000000000ms"),
            format!("{p}&{RANGE}&step=5M"),
            format!("{p}&{RANGE}&step=1ms"),
            format!("{p}&{RANGE}&step=1m&bucket_ms=5"),
            format!("{p}&{RANGE}&step=1m&limit=5"),
            format!("{p}&{RANGE}&bucket_ms=60000&cursor=0.0"),
            format!("{p}&{RANGE}&bucket_ms=0"),
            format!("{p}&{RANGE}&bucket_ms={}", MAX_STEP_MS + 1),
            format!("{p}&{RANGE}&bucket_ms=1.5"),
            format!("{p}&{RANGE}&cursor=zzz"),
            format!("{p}&{RANGE}&frm=1"),
            format!("point=../etc&{RANGE}"),
            format!("point=a/b&{RANGE}"),
            format!("point=a/b/c/d&{RANGE}"),
            format!("point=a//c&{RANGE}"),
            format!("point=a/b/{}&{RANGE}", "c".repeat(65)),
        ] {
            let (status, json, _) = call(&app, &format!("/api/v1/telemetry?{q}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {json}");
            assert_error(&json, "bad_request");
        }
    }

    /// A range with `to` at or before `from` is empty, not an error.
    #[tokio::test]
    async fn empty_ranges_have_no_samples() {
        let app = seeded().await;
        let p = "point=solar-1/inv1/p_ac";
        for range in [
            "from=2026-01-01T00:05:00Z&to=2026-01-01T00:05:00Z",
            "from=2026-01-01T01:00:00Z&to=2026-01-01T00:00:00Z",
        ] {
            let (status, json, _) = call(&app, &format!("/api/v1/telemetry?{p}&{range}")).await;
            assert_eq!(status, StatusCode::OK, "{json}");
            assert_eq!(json["samples"], serde_json::json!([]));
            assert_eq!(json["next"], Value::Null);
            let (status, json, _) =
                call(&app, &format!("/api/v1/telemetry?{p}&{range}&step=1m")).await;
            assert_eq!(status, StatusCode::OK, "{json}");
            assert_eq!(json["buckets"], serde_json::json!([]));
        }
    }

    /// The widest steps the document allows are served, and one bucket
    /// holds the whole range.
    #[tokio::test]
    async fn widest_steps() {
        let app = seeded().await;
        let p = "point=solar-1/inv1/p_ac";
        for width in [
            "step=999999999d".to_owned(),
            format!("bucket_ms={MAX_STEP_MS}"),
        ] {
            let (status, json, _) =
                call(&app, &format!("/api/v1/telemetry?{p}&{RANGE}&{width}")).await;
            assert_eq!(status, StatusCode::OK, "{width}: {json}");
            assert_eq!(json["step_ms"], MAX_STEP_MS);
            let b = json["buckets"].as_array().unwrap();
            assert_eq!(b.len(), 1, "{json}");
            assert_eq!(b[0]["count"], 60);
        }
    }

    #[tokio::test]
    async fn every_parameter_is_required_as_documented() {
        let app = seeded().await;
        for (q, message) in [
            (RANGE.to_owned(), "`point` is required"),
            (
                "point=solar-1/inv1/p_ac&to=2026-01-01T01:00:00Z".to_owned(),
                "`from` is required",
            ),
            (
                "point=solar-1/inv1/p_ac&from=2026-01-01T00:00:00Z".to_owned(),
                "`to` is required",
            ),
            (
                format!("point=solar-1/inv1/p_ac&{RANGE}&step=1m&bucket_ms=5"),
                BOTH_WIDTHS,
            ),
            (
                format!("point=solar-1/inv1/p_ac&{RANGE}&step=1m&limit=5"),
                RAW_ONLY,
            ),
        ] {
            let (status, json, _) = call(&app, &format!("/api/v1/telemetry?{q}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {json}");
            assert_eq!(json["error"]["message"], message, "{q}");
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
        assert_eq!(parse_step("999999999d").unwrap(), MAX_STEP_MS);
        for bad in [
            "s",
            "0s",
            "01s",
            "1",
            "1 s",
            "1S",
            "1w",
            "-1s",
            "+1s",
            "1000000000ms",
            "99999999999999999999h",
        ] {
            assert!(parse_step(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_time("from", "2026-01-01T00:00:00.5+01:00").unwrap(),
            T0 - 3_600_000 + 500
        );
        assert_eq!(format_ms(T0 + 1), "2026-01-01T00:00:00.001Z");
        // Every shape of the document's `date-time` (RFC 3339 section 5.6).
        for (text, ms) in [
            ("2026-01-01T00:00:00Z", T0),
            ("2026-01-01t00:00:00z", T0),
            ("2026-01-01T00:00:00.123456Z", T0 + 123),
            ("2026-01-01T00:00:00.1+00:00", T0 + 100),
            ("2026-01-01T00:00:00-00:00", T0),
            ("2026-01-01T23:59:59+23:59", T0 + 86_399_000 - 86_340_000),
            ("0001-01-01T00:00:00Z", -62_135_596_800_000),
            (
                "9999-12-31T23:59:59.999999-23:59",
                253_402_300_799_999 + 86_340_000,
            ),
        ] {
            assert_eq!(parse_time("from", text).unwrap(), ms, "{text}");
        }
        for bad in [
            "2026-01-01",
            "2026-01-01T00:00Z",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01T00:00:00+24:00",
        ] {
            assert!(parse_time("from", bad).is_err(), "{bad}");
        }
    }
}
