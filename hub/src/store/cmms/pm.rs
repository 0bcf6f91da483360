//! Preventive-maintenance plans: storage and generation of their work
//! orders.
//!
//! A plan row holds the [`PmPlan`] and its [`PmState`] as JSON, plus
//! columns for the scheduler: `kind`, the meter `point`, and `next_due`,
//! the first UTC date on which a run of a calendar plan generates an
//! occurrence (found by asking the domain's [`due_occurrences`]), so that
//! picking the plans to run is one indexed range scan.
//!
//! [`generate_due`] never creates two work orders for one occurrence, even
//! when two hubs or tasks run it at once: it locks the plan row (PostgreSQL)
//! or holds SQLite's write lock, creates the work orders and stores the new
//! state in one transaction, and the UNIQUE `(pm_plan, pm_index)` of
//! `work_orders` refuses a second work order for an occurrence whatever
//! happens.

use super::work_orders::{self, StoredWorkOrder};
use super::{both, conn, from_doc, ms, next_counter, to_doc, work_order_id};
use super::{date_str, parse_date, serialize_opt_date, Changed, CmmsError, Conn, Db};
use crate::store::Tx;
use dcmms_shared::cmms::pm::{MeterReading, Trigger};
use dcmms_shared::cmms::{
    due_occurrences, Actor, OccurrenceKey, PlanId, PmPlan, PmState, Role, SiteId, SiteScope,
    WorkOrder,
};
use serde::Serialize;
use sqlx::QueryBuilder;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

/// The user PM-generated work orders are requested by; it acts as an
/// administrator of the plan's site.
pub const GENERATOR: &str = "pm-generator";

/// How far ahead `next_due` is searched; a calendar plan due later than
/// this has none (and is then picked by nobody until it changes).
const SEARCH_DAYS: i64 = 366 * 20;

/// Most readings [`meter_readings`] returns at once.
pub const MAX_READINGS: i64 = 100_000;

/// A plan, what it remembers between runs, and its save count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredPlan {
    pub plan: PmPlan,
    pub state: PmState,
    pub version: i64,
    /// Calendar plans: first UTC date on which [`generate_due`] creates a
    /// work order; `None` for meter plans and for plans with nothing
    /// pending (a floating plan waiting for its outstanding work order).
    #[serde(serialize_with = "serialize_opt_date")]
    pub next_due: Option<Date>,
}

/// What one run of [`generate_due`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generated {
    /// Unchanged (same version) when nothing was due and no reading was new.
    pub plan: Changed<StoredPlan>,
    pub work_orders: Vec<StoredWorkOrder>,
}

fn utc_date(at: OffsetDateTime) -> Date {
    at.to_offset(UtcOffset::UTC).date()
}

/// The first date from `today` on which the plan generates something.
/// Whether a calendar plan is due only moves from "no" to "yes" as the
/// date advances, so a binary search over the days finds it.
pub(crate) fn next_due(plan: &PmPlan, state: &PmState, today: Date) -> Option<Date> {
    if !matches!(plan.trigger, Trigger::Calendar(_)) {
        return None;
    }
    let due =
        |d: Date| due_occurrences(plan, state, d, &[]).is_ok_and(|g| !g.occurrences.is_empty());
    if due(today) {
        return Some(today);
    }
    let (mut lo, mut hi) = (today, today.checked_add(Duration::days(SEARCH_DAYS))?);
    if !due(hi) {
        return None;
    }
    while (hi - lo).whole_days() > 1 {
        let mid = lo + Duration::days((hi - lo).whole_days() / 2);
        if due(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

fn kind_and_point(plan: &PmPlan) -> (&'static str, Option<&str>) {
    match &plan.trigger {
        Trigger::Calendar(_) => ("calendar", None),
        Trigger::Meter(m) => ("meter", Some(m.point.as_str())),
    }
}

/// The plan's asset must exist at the plan's site.
async fn check_asset(c: &mut Conn<'_>, plan: &PmPlan) -> Result<(), CmmsError> {
    let site: Option<String> = both!(c, Conn, x => {
        sqlx::query_scalar("SELECT site FROM assets WHERE id = $1")
            .bind(plan.asset.as_str())
            .fetch_optional(&mut **x)
            .await?
    });
    match site {
        None => Err(CmmsError::not_found("asset", &plan.asset)),
        Some(s) if s != plan.site.as_str() => Err(CmmsError::invalid(
            "asset_at_other_site",
            format!("asset {} is at site {s}, not {}", plan.asset, plan.site),
        )),
        Some(_) => Ok(()),
    }
}

pub(crate) async fn load(
    c: &mut Conn<'_>,
    id: &PlanId,
    lock: bool,
) -> Result<Option<StoredPlan>, CmmsError> {
    let sql = format!(
        "SELECT {}, {}, version, next_due FROM pm_plans WHERE id = $1{}",
        c.json_col("plan"),
        c.json_col("state"),
        if lock { c.for_update() } else { "" }
    );
    let row: Option<(String, String, i64, Option<String>)> = both!(c, Conn, x => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(&mut **x)
            .await?
    });
    row.map(|(plan, state, version, next)| {
        Ok(StoredPlan {
            plan: from_doc("pm plan", &plan)?,
            state: from_doc("pm state", &state)?,
            version,
            next_due: next.as_deref().map(parse_date).transpose()?,
        })
    })
    .transpose()
}

/// Writes `after` over `before`, checking `before.version`.
async fn save(
    c: &mut Conn<'_>,
    before: &StoredPlan,
    after: &StoredPlan,
    at: OffsetDateTime,
) -> Result<(), CmmsError> {
    let (kind, point) = kind_and_point(&after.plan);
    let sql = format!(
        "UPDATE pm_plans SET site = $2, asset = $3, kind = $4, point = $5, next_due = $6, \
         title = $7, plan = {}, state = {}, version = version + 1, updated_ms = $10 \
         WHERE id = $1 AND version = $11",
        c.json_param(8),
        c.json_param(9)
    );
    let p = &after.plan;
    let updated = both!(c, Conn, x => {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(p.id.as_str())
            .bind(p.site.as_str())
            .bind(p.asset.as_str())
            .bind(kind)
            .bind(point)
            .bind(after.next_due.map(date_str))
            .bind(&p.title)
            .bind(to_doc(p)?)
            .bind(to_doc(&after.state)?)
            .bind(ms(at))
            .bind(before.version)
            .execute(&mut **x)
            .await?
            .rows_affected()
    });
    if updated == 0 {
        let actual = load(c, &p.id, false)
            .await?
            .ok_or_else(|| CmmsError::not_found("pm_plan", &p.id))?
            .version;
        return Err(CmmsError::Conflict {
            expected: before.version,
            actual,
        });
    }
    Ok(())
}

/// Stores a new plan with a fresh state.
pub async fn create(
    tx: &mut Tx,
    plan: PmPlan,
    at: OffsetDateTime,
) -> Result<StoredPlan, CmmsError> {
    plan.validate()?;
    let mut c = conn(tx);
    check_asset(&mut c, &plan).await?;
    let state = PmState::default();
    let next = next_due(&plan, &state, utc_date(at));
    let (kind, point) = kind_and_point(&plan);
    let sql = format!(
        "INSERT INTO pm_plans (id, site, asset, kind, point, next_due, title, plan, state, \
         version, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, {}, {}, 1, $10, $10)",
        c.json_param(8),
        c.json_param(9)
    );
    both!(&mut c, Conn, x => {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(plan.id.as_str())
            .bind(plan.site.as_str())
            .bind(plan.asset.as_str())
            .bind(kind)
            .bind(point)
            .bind(next.map(date_str))
            .bind(&plan.title)
            .bind(to_doc(&plan)?)
            .bind(to_doc(&state)?)
            .bind(ms(at))
            .execute(&mut **x)
            .await
            .map_err(|e| super::insert_error(e, "pm_plan", plan.id.as_str()))?;
    });
    Ok(StoredPlan {
        plan,
        state,
        version: 1,
        next_due: next,
    })
}

/// Replaces a plan's definition; its state (what was generated) stays.
pub async fn update(
    tx: &mut Tx,
    plan: PmPlan,
    at: OffsetDateTime,
    expected_version: Option<i64>,
) -> Result<Changed<StoredPlan>, CmmsError> {
    plan.validate()?;
    let mut c = conn(tx);
    let before = load(&mut c, &plan.id, true)
        .await?
        .ok_or_else(|| CmmsError::not_found("pm_plan", &plan.id))?;
    if let Some(expected) = expected_version.filter(|v| *v != before.version) {
        return Err(CmmsError::Conflict {
            expected,
            actual: before.version,
        });
    }
    check_asset(&mut c, &plan).await?;
    let after = StoredPlan {
        next_due: next_due(&plan, &before.state, utc_date(at)),
        plan,
        state: before.state.clone(),
        version: before.version + 1,
    };
    save(&mut c, &before, &after, at).await?;
    Ok(Changed { before, after })
}

pub async fn get<'a>(db: impl Into<Db<'a>>, id: &PlanId) -> Result<StoredPlan, CmmsError> {
    let mut lease = db.into().lease().await?;
    load(&mut lease.conn(), id, false)
        .await?
        .ok_or_else(|| CmmsError::not_found("pm_plan", id))
}

/// The plans of the sites in `scope`, by id.
pub async fn list<'a>(
    db: impl Into<Db<'a>>,
    scope: &SiteScope,
) -> Result<Vec<StoredPlan>, CmmsError> {
    if matches!(scope, SiteScope::Only(s) if s.is_empty()) {
        return Ok(Vec::new());
    }
    let mut lease = db.into().lease().await?;
    let mut c = lease.conn();
    let ids: Vec<String> = both!(&mut c, Conn, x => {
        let mut qb = QueryBuilder::new("SELECT id FROM pm_plans WHERE TRUE");
        if let SiteScope::Only(sites) = scope {
            qb.push(" AND site IN (");
            let mut list = qb.separated(", ");
            for s in sites {
                list.push_bind(s.as_str());
            }
            qb.push(")");
        }
        qb.push(" ORDER BY id");
        qb.build_query_scalar().fetch_all(&mut **x).await?
    });
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(p) = load(&mut c, &PlanId(id), false).await? {
            out.push(p);
        }
    }
    Ok(out)
}

/// The plans a scheduler should run on `today`: calendar plans whose
/// `next_due` has come, and every meter plan (they depend on readings).
pub async fn due_plans<'a>(db: impl Into<Db<'a>>, today: Date) -> Result<Vec<PlanId>, CmmsError> {
    let mut lease = db.into().lease().await?;
    let mut c = lease.conn();
    let ids: Vec<String> = both!(&mut c, Conn, x => {
        sqlx::query_scalar(
            "SELECT id FROM pm_plans WHERE kind = 'calendar' AND next_due <= $1 \
             UNION ALL SELECT id FROM pm_plans WHERE kind = 'meter' ORDER BY id",
        )
        .bind(date_str(today))
        .fetch_all(&mut **x)
        .await?
    });
    Ok(ids.into_iter().map(PlanId).collect())
}

/// Runs a plan: asks [`due_occurrences`] what is due on the UTC date of
/// `at` given new meter `readings` (ignored by calendar plans), creates one
/// work order per occurrence (`requested_by` [`GENERATOR`], created at
/// `at`), and stores the new state, all in the caller's transaction.
pub async fn generate_due(
    tx: &mut Tx,
    id: &PlanId,
    at: OffsetDateTime,
    readings: &[MeterReading],
) -> Result<Generated, CmmsError> {
    let mut c = conn(tx);
    let before = load(&mut c, id, true)
        .await?
        .ok_or_else(|| CmmsError::not_found("pm_plan", id))?;
    let today = utc_date(at);
    let generation = due_occurrences(&before.plan, &before.state, today, readings)?;
    let actor = Actor::new(GENERATOR, Role::Admin, before.plan.site.clone());
    let mut created = Vec::with_capacity(generation.occurrences.len());
    for occurrence in &generation.occurrences {
        let wo_id = work_order_id(next_counter(&mut c, work_orders::COUNTER, 1).await?);
        let new = before.plan.work_order_for(occurrence, wo_id);
        let wo = WorkOrder::create(new, &actor, at)?;
        created.push(work_orders::insert(&mut c, wo, at).await?);
    }
    let mut after = StoredPlan {
        next_due: next_due(&before.plan, &generation.state, today),
        plan: before.plan.clone(),
        state: generation.state,
        version: before.version,
    };
    if after.state != before.state || after.next_due != before.next_due {
        after.version += 1;
        save(&mut c, &before, &after, at).await?;
    }
    Ok(Generated {
        plan: Changed { before, after },
        work_orders: created,
    })
}

/// Records on the plan that the work order of occurrence `key` was done
/// (completed or cancelled) on `date`; a floating plan counts its next
/// interval from there.
pub(crate) async fn record_work_done(
    c: &mut Conn<'_>,
    key: &OccurrenceKey,
    date: Date,
    at: OffsetDateTime,
) -> Result<(), CmmsError> {
    let Some(before) = load(c, &key.plan, true).await? else {
        return Ok(());
    };
    let mut state = before.state.clone();
    state.work_done(key.index, date);
    if state == before.state {
        return Ok(());
    }
    let after = StoredPlan {
        next_due: next_due(&before.plan, &state, utc_date(at)),
        plan: before.plan.clone(),
        state,
        version: before.version + 1,
    };
    save(c, &before, &after, at).await
}

/// Readings of telemetry point `point` (`site/device/point`, which must be
/// at `site`) after `from_ts_ms`, oldest first, at most [`MAX_READINGS`]
/// (call again from the last one for more). Samples without a valid value
/// or of bad quality are left out. An unknown point has no readings.
pub async fn meter_readings<'a>(
    db: impl Into<Db<'a>>,
    site: &SiteId,
    point: &str,
    from_ts_ms: i64,
) -> Result<Vec<MeterReading>, CmmsError> {
    if point.split('/').next() != Some(site.as_str()) {
        return Err(CmmsError::invalid(
            "point_at_other_site",
            format!("telemetry point {point:?} is not at site {site}"),
        ));
    }
    let mut lease = db.into().lease().await?;
    let mut c = lease.conn();
    let rows: Vec<(i64, f64)> = both!(&mut c, Conn, x => {
        sqlx::query_as(
            "SELECT t.ts_ms, t.value FROM points p JOIN telemetry t \
             ON t.gateway_id = p.gateway_id AND t.point_id = p.point_id \
             WHERE p.name = $1 AND t.ts_ms > $2 AND t.value IS NOT NULL AND t.quality < 2 \
             ORDER BY t.ts_ms LIMIT $3",
        )
        .bind(point)
        .bind(from_ts_ms)
        .bind(MAX_READINGS)
        .fetch_all(&mut **x)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|(ts_ms, value)| MeterReading { ts_ms, value })
        .collect())
}
