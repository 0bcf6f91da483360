//! `/api/v1/pm-plans`: preventive-maintenance plans (list, create, read,
//! replace) and generating a plan's due work orders now.
//!
//! Reading needs a role at the plan's site; changing and generating need
//! `manage_plans` there (supervisors). Generation is the scheduler's
//! [`crate::pm_scheduler::run_plan`], so a manual run and a scheduled one
//! never create a work order twice for one occurrence.

use super::dto::{
    check_tasks, parse_date, ChecklistTask, PriorityName, WorkOrderView, WorkTypeName, MAX_TEXT,
    MAX_TITLE,
};
use super::{audit_json, check_id, check_line, check_text, entry, is_plain_id, store_error};
use crate::api::page::{self, Cursor};
use crate::api::{ApiError, ApiJson, ApiQuery, AppState, ErrorBody, FieldError};
use crate::audit;
use crate::auth::{require, token, Authenticated};
use crate::store::cmms::pm::{self as store_pm, StoredPlan};
use crate::store::cmms::{date_str, ms, CmmsError};
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::Json;
use dcmms_shared::cmms::pm::{
    Anchor, CalendarTrigger, Direction, IntervalUnit, MeterRule, MeterTrigger, PmError, Trigger,
};
use dcmms_shared::cmms::{
    AssetId, Checklist, Permission, PlanId, PmPlan, Priority, SiteId, SiteScope, WorkType,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// Largest calendar interval count and lead time.
const MAX_EVERY: u32 = 1000;
const MAX_LEAD_DAYS: u32 = 3650;

/// How a lead that is not shorter than the interval is refused (a rule
/// between two fields, which the document states in prose only).
const LEAD_BELOW_INTERVAL: &str = "must be shorter than the interval";
/// How a meter point of another site is refused (its message goes on with
/// the plan's site).
const POINT_AT_OTHER_SITE: &str = "is not at the plan's site";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PmIntervalUnit {
    Days,
    Weeks,
    Months,
}

/// `fixed`: occurrence n is due `start + n * interval`; `floating`: one
/// interval after the previous occurrence's work was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PmAnchor {
    Fixed,
    Floating,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PmDirection {
    Rising,
    Falling,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PmCalendarTrigger {
    #[schema(minimum = 1, maximum = 1000)]
    pub every: u32,
    pub unit: PmIntervalUnit,
    pub anchor: PmAnchor,
    /// Due date of the first occurrence (`YYYY-MM-DD`).
    #[schema(format = Date)]
    pub start: String,
    /// Days before the due date that the work order is generated; less
    /// than the shortest interval (`every` days, weeks x 7, months x 28).
    #[serde(default)]
    #[schema(maximum = 3650)]
    pub lead_days: u32,
}

/// `every`: at `origin + k * interval` of a running counter, generated
/// `lead` units early; `threshold`: once per crossing of `value`, re-armed
/// `hysteresis` back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PmMeterRule {
    Every {
        /// Above 0.
        #[schema(exclusive_minimum = 0.0)]
        interval: f64,
        #[serde(default)]
        origin: f64,
        /// At least 0 and below `interval`.
        #[serde(default)]
        #[schema(minimum = 0.0)]
        lead: f64,
    },
    Threshold {
        value: f64,
        direction: PmDirection,
        /// At least 0.
        #[serde(default)]
        #[schema(minimum = 0.0)]
        hysteresis: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PmMeterTrigger {
    /// Telemetry point `site/device/point`, at the plan's site.
    #[schema(
        max_length = 200,
        pattern = "^[A-Za-z0-9._-]{1,64}/[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub point: String,
    pub rule: PmMeterRule,
}

/// When a plan is due: `{"calendar": {...}}` or `{"meter": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PmTrigger {
    Calendar(PmCalendarTrigger),
    Meter(PmMeterTrigger),
}

impl From<&Trigger> for PmTrigger {
    fn from(t: &Trigger) -> Self {
        match t {
            Trigger::Calendar(c) => PmTrigger::Calendar(PmCalendarTrigger {
                every: c.every,
                unit: match c.unit {
                    IntervalUnit::Days => PmIntervalUnit::Days,
                    IntervalUnit::Weeks => PmIntervalUnit::Weeks,
                    IntervalUnit::Months => PmIntervalUnit::Months,
                },
                anchor: match c.anchor {
                    Anchor::Fixed => PmAnchor::Fixed,
                    Anchor::Floating => PmAnchor::Floating,
                },
                start: date_str(c.start),
                lead_days: c.lead_days,
            }),
            Trigger::Meter(m) => PmTrigger::Meter(PmMeterTrigger {
                point: m.point.clone(),
                rule: match m.rule {
                    MeterRule::Every {
                        interval,
                        origin,
                        lead,
                    } => PmMeterRule::Every {
                        interval,
                        origin,
                        lead,
                    },
                    MeterRule::Threshold {
                        value,
                        direction,
                        hysteresis,
                    } => PmMeterRule::Threshold {
                        value,
                        direction: match direction {
                            Direction::Rising => PmDirection::Rising,
                            Direction::Falling => PmDirection::Falling,
                        },
                        hysteresis,
                    },
                },
            }),
        }
    }
}

/// The domain trigger; problems are named under `trigger`.
fn trigger_of(t: PmTrigger, site: &str, problems: &mut Vec<FieldError>) -> Option<Trigger> {
    match t {
        PmTrigger::Calendar(c) => {
            let field = "trigger.calendar";
            if !(1..=MAX_EVERY).contains(&c.every) {
                problems.push(FieldError::new(
                    format!("{field}.every"),
                    format!("must be between 1 and {MAX_EVERY}"),
                ));
            }
            // The interval's shortest length in days, as the domain counts it.
            let shortest = u64::from(c.every)
                * match c.unit {
                    PmIntervalUnit::Days => 1,
                    PmIntervalUnit::Weeks => 7,
                    PmIntervalUnit::Months => 28,
                };
            if c.lead_days > MAX_LEAD_DAYS {
                problems.push(FieldError::new(
                    format!("{field}.lead_days"),
                    format!("at most {MAX_LEAD_DAYS}"),
                ));
            } else if c.every >= 1 && u64::from(c.lead_days) >= shortest {
                problems.push(FieldError::new(
                    format!("{field}.lead_days"),
                    format!("{LEAD_BELOW_INTERVAL} ({shortest} days at the shortest)"),
                ));
            }
            let start = parse_date(&c.start)
                .map_err(|m| problems.push(FieldError::new(format!("{field}.start"), m)))
                .ok()?;
            Some(Trigger::Calendar(CalendarTrigger {
                every: c.every,
                unit: match c.unit {
                    PmIntervalUnit::Days => IntervalUnit::Days,
                    PmIntervalUnit::Weeks => IntervalUnit::Weeks,
                    PmIntervalUnit::Months => IntervalUnit::Months,
                },
                anchor: match c.anchor {
                    PmAnchor::Fixed => Anchor::Fixed,
                    PmAnchor::Floating => Anchor::Floating,
                },
                start,
                lead_days: c.lead_days,
            }))
        }
        PmTrigger::Meter(m) => {
            let shaped = m.point.split_once('/').is_some_and(|(s, rest)| {
                dcmms_shared::validate_name(s).is_ok() && !rest.is_empty()
            }) && m.point.chars().count() <= 200
                && !m.point.chars().any(char::is_control);
            if !shaped {
                problems.push(FieldError::new(
                    "trigger.meter.point",
                    format!("must be a telemetry point `{site}/device/point` of the plan's site"),
                ));
            } else if m.point.split('/').next() != Some(site) {
                // The document cannot say this: the point's site is the
                // body's `site`.
                problems.push(FieldError::new(
                    "trigger.meter.point",
                    format!("{POINT_AT_OTHER_SITE} {site}"),
                ));
            }
            match &m.rule {
                PmMeterRule::Every { interval, lead, .. } => {
                    let rule = "trigger.meter.rule.every";
                    if !(interval.is_finite() && *interval > 0.0) {
                        problems.push(FieldError::new(
                            format!("{rule}.interval"),
                            "must be a number above 0",
                        ));
                    } else if !(lead.is_finite() && *lead >= 0.0) {
                        problems.push(FieldError::new(
                            format!("{rule}.lead"),
                            "must be at least 0",
                        ));
                    } else if lead >= interval {
                        problems.push(FieldError::new(format!("{rule}.lead"), LEAD_BELOW_INTERVAL));
                    }
                }
                PmMeterRule::Threshold { hysteresis, .. } => {
                    if !(hysteresis.is_finite() && *hysteresis >= 0.0) {
                        problems.push(FieldError::new(
                            "trigger.meter.rule.threshold.hysteresis",
                            "must be at least 0",
                        ));
                    }
                }
            }
            Some(Trigger::Meter(MeterTrigger {
                point: m.point,
                rule: match m.rule {
                    PmMeterRule::Every {
                        interval,
                        origin,
                        lead,
                    } => MeterRule::Every {
                        interval,
                        origin,
                        lead,
                    },
                    PmMeterRule::Threshold {
                        value,
                        direction,
                        hysteresis,
                    } => MeterRule::Threshold {
                        value,
                        direction: match direction {
                            PmDirection::Rising => Direction::Rising,
                            PmDirection::Falling => Direction::Falling,
                        },
                        hysteresis,
                    },
                },
            }))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PmWorkDone {
    pub index: u64,
    #[schema(format = Date)]
    pub date: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct PmReading {
    pub ts_ms: i64,
    pub value: f64,
}

/// What a plan remembers between runs.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PmStateView {
    /// Highest occurrence index generated or passed over.
    pub last_index: Option<u64>,
    /// Floating plans: the latest occurrence whose work was done.
    pub done: Option<PmWorkDone>,
    /// Meter plans: the last reading processed.
    pub last_reading: Option<PmReading>,
    /// Meter `every` plans: usage counted before counter resets.
    pub meter_offset: f64,
    /// Threshold plans: fired and not yet re-armed.
    pub fired: bool,
}

/// A preventive-maintenance plan.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PmPlanView {
    pub id: String,
    pub site: String,
    pub asset: String,
    pub title: String,
    pub description: String,
    pub work_type: WorkTypeName,
    pub priority: PriorityName,
    pub checklist: Vec<ChecklistTask>,
    pub trigger: PmTrigger,
    /// Pass it back as `expected_version` when replacing the plan.
    pub version: i64,
    /// Calendar plans: the first date on which a run generates a work
    /// order; null for meter plans and for plans waiting for their
    /// outstanding work.
    #[schema(format = Date)]
    pub next_due: Option<String>,
    pub state: PmStateView,
}

impl From<&StoredPlan> for PmPlanView {
    fn from(s: &StoredPlan) -> Self {
        let p = &s.plan;
        PmPlanView {
            id: p.id.to_string(),
            site: p.site.to_string(),
            asset: p.asset.to_string(),
            title: p.title.clone(),
            description: p.description.clone(),
            work_type: p.work_type.into(),
            priority: p.priority.into(),
            checklist: p.checklist.iter().map(Into::into).collect(),
            trigger: (&p.trigger).into(),
            version: s.version,
            next_due: s.next_due.map(date_str),
            state: PmStateView {
                last_index: s.state.last_index,
                done: s.state.done.map(|d| PmWorkDone {
                    index: d.index,
                    date: date_str(d.date),
                }),
                last_reading: s.state.last_reading.map(|r| PmReading {
                    ts_ms: r.ts_ms,
                    value: r.value,
                }),
                meter_offset: s.state.meter_offset,
                fired: s.state.fired,
            },
        }
    }
}

/// A plan as audit entries record it.
pub(crate) fn pm_plan_audit(s: &StoredPlan) -> Option<serde_json::Value> {
    audit_json(&PmPlanView::from(s))
}

/// Body of `POST /api/v1/pm-plans`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePmPlan {
    /// 1 to 64 of `A-Z a-z 0-9 . _ -`; default a generated `pm-<uuid>`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub id: Option<String>,
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub site: String,
    /// An asset at that site.
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,128}$")]
    pub asset: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub title: String,
    #[serde(default)]
    #[schema(
        max_length = 10000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub description: String,
    /// Default `preventive`.
    pub work_type: Option<WorkTypeName>,
    /// Default `p4`.
    pub priority: Option<PriorityName>,
    #[serde(default)]
    #[schema(max_items = 500)]
    pub checklist: Vec<ChecklistTask>,
    pub trigger: PmTrigger,
}

/// Body of `PUT /api/v1/pm-plans/{id}`: the whole definition (what the
/// plan generated so far stays). The site cannot change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePmPlan {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub site: String,
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,128}$")]
    pub asset: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub title: String,
    #[serde(default)]
    #[schema(
        max_length = 10000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub description: String,
    /// Default `preventive`.
    pub work_type: Option<WorkTypeName>,
    /// Default `p4`.
    pub priority: Option<PriorityName>,
    #[serde(default)]
    #[schema(max_items = 500)]
    pub checklist: Vec<ChecklistTask>,
    pub trigger: PmTrigger,
    /// The version last read; a plan changed meanwhile is refused with
    /// rule `version_conflict`.
    pub expected_version: Option<i64>,
}

/// The plan fields both bodies share.
struct PlanFields {
    site: String,
    asset: String,
    title: String,
    description: String,
    work_type: Option<WorkTypeName>,
    priority: Option<PriorityName>,
    checklist: Vec<ChecklistTask>,
    trigger: PmTrigger,
}

/// Checks and converts a plan body; every problem is named.
fn plan_of(id: PlanId, f: PlanFields) -> Result<PmPlan, ApiError> {
    let mut problems = Vec::new();
    if dcmms_shared::validate_name(id.as_str()).is_err() {
        problems.push(FieldError::new(
            "id",
            "a plan id is 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'",
        ));
    }
    if dcmms_shared::validate_name(&f.site).is_err() {
        problems.push(FieldError::new(
            "site",
            "a site name is 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'",
        ));
    }
    check_id(&mut problems, "asset", &f.asset);
    check_line(&mut problems, "title", &f.title, MAX_TITLE);
    check_text(&mut problems, "description", &f.description, MAX_TEXT);
    let tasks = check_tasks("checklist", &f.checklist);
    let checklist: Vec<_> = f.checklist.into_iter().map(Into::into).collect();
    if tasks.is_empty() {
        // The domain's own checks (unique keys, sane limits), now rather
        // than at every generation.
        if let Err(e) = Checklist::from_tasks(checklist.clone()) {
            problems.push(FieldError::new("checklist", format!("{e} ({})", e.code())));
        }
    }
    problems.extend(tasks);
    let trigger = trigger_of(f.trigger, &f.site, &mut problems);
    ApiError::invalid(problems)?;
    let Some(trigger) = trigger else {
        return Err(ApiError::invalid_field("trigger", "is invalid"));
    };
    let plan = PmPlan {
        id,
        site: SiteId(f.site),
        asset: AssetId(f.asset),
        title: f.title,
        description: f.description,
        work_type: f.work_type.map_or(WorkType::Preventive, Into::into),
        priority: f.priority.map_or(Priority::P4, Into::into),
        checklist,
        trigger,
    };
    plan.validate()
        .map_err(|e| ApiError::invalid_field("trigger", e.to_string()))?;
    Ok(plan)
}

/// Refusals of a plan write that are about the body: 422 naming the field.
fn plan_write_error(e: CmmsError) -> ApiError {
    match e {
        CmmsError::NotFound {
            entity: "asset",
            id,
        } => ApiError::invalid_field("asset", format!("no asset {id}")),
        CmmsError::Invalid {
            code: "asset_at_other_site",
            message,
        } => ApiError::invalid_field("asset", message),
        CmmsError::Plan(e @ PmError::InvalidPlan(_)) => {
            ApiError::invalid_field("trigger", e.to_string())
        }
        e => store_error(e),
    }
}

/// Loads a plan the caller sees; 404 otherwise.
async fn visible_plan(
    state: &AppState,
    auth: &Authenticated,
    id: &str,
) -> Result<StoredPlan, ApiError> {
    let not_found = || ApiError::not_found(format!("no PM plan {id}"));
    if !is_plain_id(id) {
        return Err(not_found());
    }
    let stored = match store_pm::get(&state.store, &PlanId(id.to_owned())).await {
        Err(CmmsError::NotFound { .. }) => return Err(not_found()),
        r => r.map_err(store_error)?,
    };
    if !auth.access.sees(&stored.plan.site) {
        return Err(not_found());
    }
    Ok(stored)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PmPlanListParams {
    /// Plans of this site only.
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    site: Option<String>,
    /// Plans of this asset only.
    #[param(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,128}$")]
    asset: Option<String>,
    /// Default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PmPlanList {
    /// By id.
    pub pm_plans: Vec<PmPlanView>,
    /// Cursor of the next page; null on the last.
    pub next: Option<String>,
}

const CURSOR_TAG: &str = "pm_plans:id";

/// List the PM plans of the sites the caller sees, by id.
#[utoipa::path(
    get, path = "/api/v1/pm-plans", tag = "preventive maintenance",
    params(PmPlanListParams),
    responses((status = 200, description = "A page of plans", body = PmPlanList)),
    security(("bearer" = [])),
)]
pub async fn list_plans(
    AxState(state): AxState<AppState>,
    auth: Authenticated,
    ApiQuery(p): ApiQuery<PmPlanListParams>,
) -> Result<Json<PmPlanList>, ApiError> {
    let limit = page::limit(p.limit)?;
    if p.asset.as_deref().is_some_and(|a| !is_plain_id(a)) {
        return Err(ApiError::bad_request(
            "`asset` is 1 to 128 characters without control characters",
        ));
    }
    let after = p
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| Cursor::decode(c, CURSOR_TAG, 1))
        .transpose()?
        .map(|c| c.key[0].clone());
    let visible = auth.access.visible_sites();
    let scope = match &p.site {
        None => visible,
        Some(s) => {
            let site = crate::api::users::parse_site(s)?;
            if visible.contains(&site) {
                SiteScope::Only([site].into())
            } else {
                SiteScope::Only(Default::default())
            }
        }
    };
    // The store lists every plan of the scope at once (plans are few per
    // site); pages are cut here, keyset by id.
    let rows: Vec<StoredPlan> = store_pm::list(&state.store, &scope)
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|s| {
            p.asset
                .as_deref()
                .is_none_or(|a| s.plan.asset.as_str() == a)
        })
        .filter(|s| after.as_deref().is_none_or(|a| s.plan.id.as_str() > a))
        .take(limit as usize + 1)
        .collect();
    let (rows, next) = page::split_page(rows, limit, |s| {
        Cursor::new(CURSOR_TAG, vec![s.plan.id.to_string()])
    });
    Ok(Json(PmPlanList {
        pm_plans: rows.iter().map(PmPlanView::from).collect(),
        next,
    }))
}

/// Create a PM plan (supervisors of its site).
#[utoipa::path(
    post, path = "/api/v1/pm-plans", tag = "preventive maintenance",
    request_body = CreatePmPlan,
    responses(
        (status = 201, description = "Created", body = PmPlanView),
        (status = 409, description = "`rule`: `duplicate` (the id is taken)", body = ErrorBody),
        (status = 422, description = "A field is invalid (`asset` unknown or at another site, `trigger` numbers, `checklist`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create_plan(
    AxState(state): AxState<AppState>,
    auth: Authenticated,
    ApiJson(body): ApiJson<CreatePmPlan>,
) -> Result<(StatusCode, Json<PmPlanView>), ApiError> {
    let id = match body.id {
        Some(id) => PlanId(id),
        None => PlanId(format!("pm-{}", token::new_id()?)),
    };
    let plan = plan_of(
        id,
        PlanFields {
            site: body.site,
            asset: body.asset,
            title: body.title,
            description: body.description,
            work_type: body.work_type,
            priority: body.priority,
            checklist: body.checklist,
            trigger: body.trigger,
        },
    )?;
    require(&auth.access, &plan.site, Permission::ManagePlans)?;
    let site = plan.site.clone();
    let at = OffsetDateTime::now_utc();
    let mut tx = state.store.transaction().await?;
    let stored = store_pm::create(&mut tx, plan, at)
        .await
        .map_err(plan_write_error)?;
    let view = PmPlanView::from(&stored);
    audit::record(
        &mut tx,
        &entry(
            auth.actor(),
            "pm_plan.create",
            "pm_plan",
            view.id.clone(),
            &site,
            None,
            audit_json(&view),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One PM plan.
#[utoipa::path(
    get, path = "/api/v1/pm-plans/{id}", tag = "preventive maintenance",
    params(("id" = String, Path, description = "Plan id")),
    responses(
        (status = 200, description = "The plan", body = PmPlanView),
        (status = 404, description = "No such plan (or at a site the caller cannot see)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_plan(
    AxState(state): AxState<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<PmPlanView>, ApiError> {
    let stored = visible_plan(&state, &auth, &id).await?;
    Ok(Json(PmPlanView::from(&stored)))
}

/// Replace a PM plan's definition (supervisors of its site).
#[utoipa::path(
    put, path = "/api/v1/pm-plans/{id}", tag = "preventive maintenance",
    params(("id" = String, Path, description = "Plan id")),
    request_body = UpdatePmPlan,
    responses(
        (status = 200, description = "The plan after the change", body = PmPlanView),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "`rule`: `version_conflict`", body = ErrorBody),
        (status = 422, description = "A field is invalid (`site` differs from the plan's, `asset`, `trigger`, `checklist`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn put_plan(
    AxState(state): AxState<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdatePmPlan>,
) -> Result<Json<PmPlanView>, ApiError> {
    let current = visible_plan(&state, &auth, &id).await?;
    require(&auth.access, &current.plan.site, Permission::ManagePlans)?;
    if body.site != current.plan.site.as_str() {
        return Err(ApiError::invalid_field(
            "site",
            format!("a plan stays at its site ({})", current.plan.site),
        ));
    }
    let expected = body.expected_version;
    let plan = plan_of(
        current.plan.id.clone(),
        PlanFields {
            site: body.site,
            asset: body.asset,
            title: body.title,
            description: body.description,
            work_type: body.work_type,
            priority: body.priority,
            checklist: body.checklist,
            trigger: body.trigger,
        },
    )?;
    let at = OffsetDateTime::now_utc();
    let mut tx = state.store.transaction().await?;
    let change = store_pm::update(&mut tx, plan, at, expected)
        .await
        .map_err(plan_write_error)?;
    let view = PmPlanView::from(&change.after);
    audit::record(
        &mut tx,
        &entry(
            auth.actor(),
            "pm_plan.update",
            "pm_plan",
            view.id.clone(),
            &current.plan.site,
            pm_plan_audit(&change.before),
            audit_json(&view),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// What a manual generation did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PmGenerated {
    pub plan: PmPlanView,
    /// Work orders created by this run (none when nothing new was due).
    pub work_orders: Vec<WorkOrderView>,
}

/// Generate the plan's due work orders now (supervisors of its site).
/// Idempotent: an occurrence already generated is never generated again.
#[utoipa::path(
    post, path = "/api/v1/pm-plans/{id}/generate", tag = "preventive maintenance",
    params(("id" = String, Path, description = "Plan id")),
    responses(
        (status = 200, description = "The plan after the run and the work orders it created", body = PmGenerated),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "The domain refused generation (`rule`, e.g. `date_out_of_range`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn generate_plan(
    AxState(state): AxState<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<PmGenerated>, ApiError> {
    let current = visible_plan(&state, &auth, &id).await?;
    require(&auth.access, &current.plan.site, Permission::ManagePlans)?;
    let at = OffsetDateTime::now_utc();
    let run = crate::pm_scheduler::run_plan(&state.store, &current.plan.id, at, &auth.actor())
        .await
        .map_err(store_error)?;
    state
        .metrics
        .pm_work_orders_created(run.work_orders.len() as u64);
    let costs = auth.access.can(&current.plan.site, Permission::ViewCosts);
    let work_orders = run
        .work_orders
        .iter()
        .map(|wo| {
            // A new work order costs nothing yet.
            let cost = costs.then(Default::default);
            WorkOrderView::new(wo, ms(at), &BTreeMap::new(), cost)
        })
        .collect();
    Ok(Json(PmGenerated {
        plan: PmPlanView::from(&run.plan.after),
        work_orders,
    }))
}
