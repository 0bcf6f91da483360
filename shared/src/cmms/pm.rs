//! Preventive-maintenance plans and the generation of their occurrences.
//!
//! This module owns when a plan is due. [`due_occurrences`] is a pure
//! function of the plan, its [`PmState`], today's UTC date and new meter
//! readings; it returns the occurrences to turn into work orders and the
//! state to store with them, in the same transaction. Every occurrence has
//! a stable [`OccurrenceKey`] (plan id + index). An index at or below
//! `state.last_index` is never produced again, so storing the returned
//! state with the work orders guarantees "never twice for the same due
//! occurrence"; a unique constraint on the key is a second guard. Nothing
//! here reads the clock, telemetry or a database.
//!
//! Calendar plans (dates are UTC calendar dates):
//! - `fixed`: occurrence `n` (from 0) is due on `start + n * interval`,
//!   always computed from `start`, so month ends do not drift: every month
//!   from Jan 31 gives Jan 31, Feb 28 (29 in a leap year), Mar 31, Apr 30.
//! - `floating`: the first occurrence is due on `start`; each next one is
//!   due one interval after the previous one's work was done (recorded with
//!   [`PmState::work_done`]), and none is generated while the previous one
//!   is outstanding. Month steps clamp to the month's last day.
//! - An occurrence is generated `lead_days` before it is due.
//!
//! Meter plans read one telemetry point:
//! - `every`: occurrence `k` (from 1) is due when the meter reaches
//!   `origin + k * interval`, generated `lead` units earlier. A new plan
//!   starts from its first reading: multiples the meter had already passed
//!   are not back-dated work.
//! - `threshold`: fires once per crossing into the far side of `value`
//!   (at or above when rising, at or below when falling) and re-arms when
//!   the meter goes back beyond `hysteresis`. A plan that has seen no
//!   reading is armed, so a meter already past the threshold fires at once.
//!
//! Decisions:
//! - Schedules collapse: when several occurrences of a calendar or `every`
//!   plan are due at one evaluation (a meter jumping from 90 to 310 with an
//!   interval of 100, or a hub that was down for weeks), one occurrence is
//!   produced, for the latest of them (300 above), with `collapsed` counting
//!   the ones it stands for (100 and 200); the next is then 400. One
//!   overdue job is what a technician does, not three copies of it.
//!   Threshold crossings are events and are not collapsed: two crossings in
//!   one batch give two occurrences.
//! - Counter resets: for `every` plans the meter is a running counter; a
//!   reading below the previous one means it was reset or replaced. Usage
//!   continues from where it was: the value before the reset is added to an
//!   offset and the new raw value counts as usage since the reset. Nothing
//!   fires for the drop and nothing is lost.
//! - Readings with a timestamp at or before the last one processed are
//!   ignored, so a replayed batch changes nothing; non-finite values are
//!   ignored.
//! - Meter comparisons are in `f64` with a tolerance of 1e-9 of an interval,
//!   so that a reading of exactly 0.3 reaches the third multiple of 0.1.

use serde::{Deserialize, Serialize};
use time::{Date, Month};

use super::checklist::TaskSpec;
use super::ids::{AssetId, PlanId, SiteId, WorkOrderId};
use super::iso_date;
use super::work_order::{NewWorkOrder, Priority, WorkType};

/// Relative tolerance of meter multiples (see the module documentation).
const METER_EPSILON: f64 = 1e-9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalUnit {
    Days,
    Weeks,
    Months,
}

/// How a calendar plan counts its intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// From the start date, whatever happened to earlier occurrences.
    Fixed,
    /// From when the previous occurrence's work was done.
    Floating,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarTrigger {
    /// At least 1.
    pub every: u32,
    pub unit: IntervalUnit,
    pub anchor: Anchor,
    /// Due date of the first occurrence.
    #[serde(with = "iso_date")]
    pub start: Date,
    /// Days before the due date that the work order is generated. Less than
    /// the shortest interval (`every` days, weeks x 7, months x 28).
    pub lead_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Fires when the meter rises to or above the threshold.
    Rising,
    /// Fires when the meter falls to or below the threshold.
    Falling,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeterRule {
    /// Every `interval` units from `origin`; generated `lead` units early
    /// (`0 <= lead < interval`).
    Every {
        interval: f64,
        origin: f64,
        lead: f64,
    },
    /// Once per crossing of `value`; re-armed when the meter is back more
    /// than `hysteresis` (>= 0) on the near side.
    Threshold {
        value: f64,
        direction: Direction,
        hysteresis: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeterTrigger {
    /// Telemetry point, as a `site/device/point` name.
    pub point: String,
    pub rule: MeterRule,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Calendar(CalendarTrigger),
    Meter(MeterTrigger),
}

/// A preventive-maintenance plan: what to do on which asset, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PmPlan {
    pub id: PlanId,
    pub site: SiteId,
    pub asset: AssetId,
    pub title: String,
    pub description: String,
    /// `preventive` for schedules, usually `predictive` for thresholds.
    pub work_type: WorkType,
    pub priority: Priority,
    pub checklist: Vec<TaskSpec>,
    pub trigger: Trigger,
}

/// One meter reading of the plan's point (caller filters by point).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeterReading {
    /// Milliseconds since the Unix epoch, as in [`crate::Sample`].
    pub ts_ms: i64,
    pub value: f64,
}

/// Identifies an occurrence for ever: `{plan}#{index}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OccurrenceKey {
    pub plan: PlanId,
    /// Calendar: `n` from 0 (fixed: the n-th interval from start; floating:
    /// the n-th generated). Meter `every`: the multiple `k` from 1.
    /// Threshold: the crossing count from 1.
    pub index: u64,
}

impl std::fmt::Display for OccurrenceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.plan, self.index)
    }
}

/// When an occurrence is due.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Due {
    Date(#[serde(with = "iso_date")] Date),
    /// Meter value at which it is due (a multiple, or the threshold).
    Meter(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    pub key: OccurrenceKey,
    pub due: Due,
    /// Earlier occurrences this one stands for (see module docs); 0 usually.
    pub collapsed: u64,
    /// Meter plans: the reading that made it due.
    pub reading: Option<MeterReading>,
}

/// What a plan remembers between evaluations. Start with
/// `PmState::default()`; store the state returned by [`due_occurrences`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PmState {
    /// Highest index generated, or passed over (collapsed, or already
    /// reached by the meter when a plan starts). Never produced again.
    pub last_index: Option<u64>,
    /// Floating calendar plans: the latest occurrence whose work was done.
    pub done: Option<WorkDone>,
    /// Meter plans: the last reading processed.
    pub last_reading: Option<MeterReading>,
    /// Meter `every` plans: usage counted before counter resets.
    pub meter_offset: f64,
    /// Threshold plans: fired and not yet re-armed.
    pub fired: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkDone {
    pub index: u64,
    #[serde(with = "iso_date")]
    pub date: Date,
}

impl PmState {
    /// Records that the work order of occurrence `index` was completed (or
    /// cancelled: a floating plan then restarts from that date) on `date`.
    /// Older occurrences than the one already recorded are ignored.
    pub fn work_done(&mut self, index: u64, date: Date) {
        if self.done.is_none_or(|d| index >= d.index) {
            self.done = Some(WorkDone { index, date });
        }
    }
}

/// Result of one evaluation: occurrences to create, and the new state.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub occurrences: Vec<Occurrence>,
    pub state: PmState,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PmError {
    #[error("invalid plan: {0}")]
    InvalidPlan(&'static str),
    #[error("due date beyond the supported calendar range")]
    DateOutOfRange,
}

impl PmError {
    pub fn code(&self) -> &'static str {
        match self {
            PmError::InvalidPlan(_) => "invalid_plan",
            PmError::DateOutOfRange => "date_out_of_range",
        }
    }
}

impl PmPlan {
    /// Checks the trigger's numbers (see the field documentation).
    pub fn validate(&self) -> Result<(), PmError> {
        let bad = |why| Err(PmError::InvalidPlan(why));
        match &self.trigger {
            Trigger::Calendar(c) => {
                if c.every == 0 {
                    return bad("interval must be at least 1");
                }
                let shortest = u64::from(c.every)
                    * match c.unit {
                        IntervalUnit::Days => 1,
                        IntervalUnit::Weeks => 7,
                        IntervalUnit::Months => 28,
                    };
                if u64::from(c.lead_days) >= shortest {
                    return bad("lead time must be shorter than the interval");
                }
            }
            Trigger::Meter(m) => match m.rule {
                MeterRule::Every {
                    interval,
                    origin,
                    lead,
                } => {
                    if !(interval.is_finite() && interval > 0.0 && origin.is_finite()) {
                        return bad("meter interval must be a positive number");
                    }
                    if !(lead.is_finite() && lead >= 0.0 && lead < interval) {
                        return bad("meter lead must be at least 0 and below the interval");
                    }
                }
                MeterRule::Threshold {
                    value, hysteresis, ..
                } => {
                    if !(value.is_finite() && hysteresis.is_finite() && hysteresis >= 0.0) {
                        return bad("threshold and hysteresis must be numbers, hysteresis >= 0");
                    }
                }
            },
        }
        Ok(())
    }

    /// The work order to create for an occurrence: the plan's asset, title,
    /// checklist and priority, due on the occurrence's date (meter
    /// occurrences get no due date; the priority's SLA applies).
    pub fn work_order_for(&self, occurrence: &Occurrence, id: WorkOrderId) -> NewWorkOrder {
        NewWorkOrder {
            id,
            site: self.site.clone(),
            asset: self.asset.clone(),
            work_type: self.work_type,
            priority: self.priority,
            title: self.title.clone(),
            description: self.description.clone(),
            due: match occurrence.due {
                Due::Date(d) => Some(d),
                Due::Meter(_) => None,
            },
            sla_hours: None,
            checklist: self.checklist.clone(),
            pm_occurrence: Some(occurrence.key.clone()),
        }
    }
}

/// The occurrences of `plan` to generate now. `today` is the UTC date;
/// `readings` are new readings of a meter plan's point in any order
/// (ignored by calendar plans). See the module documentation for the rules.
pub fn due_occurrences(
    plan: &PmPlan,
    state: &PmState,
    today: Date,
    readings: &[MeterReading],
) -> Result<Generation, PmError> {
    plan.validate()?;
    let mut next = state.clone();
    let key = |index| OccurrenceKey {
        plan: plan.id.clone(),
        index,
    };
    let occurrences = match &plan.trigger {
        Trigger::Calendar(c) => calendar_due(c, &mut next, today)?
            .map(|(index, date, collapsed)| Occurrence {
                key: key(index),
                due: Due::Date(date),
                collapsed,
                reading: None,
            })
            .into_iter()
            .collect(),
        Trigger::Meter(m) => {
            let mut fresh: Vec<MeterReading> = readings
                .iter()
                .filter(|r| r.value.is_finite())
                .filter(|r| state.last_reading.is_none_or(|last| r.ts_ms > last.ts_ms))
                .copied()
                .collect();
            fresh.sort_by_key(|r| r.ts_ms);
            match m.rule {
                MeterRule::Every {
                    interval,
                    origin,
                    lead,
                } => meter_every_due(interval, origin, lead, &mut next, &fresh)
                    .map(|(k, reading, collapsed)| Occurrence {
                        key: key(k),
                        due: Due::Meter(origin + k as f64 * interval),
                        collapsed,
                        reading: Some(reading),
                    })
                    .into_iter()
                    .collect(),
                MeterRule::Threshold {
                    value,
                    direction,
                    hysteresis,
                } => threshold_crossings(value, direction, hysteresis, &mut next, &fresh)
                    .into_iter()
                    .map(|(index, reading)| Occurrence {
                        key: key(index),
                        due: Due::Meter(value),
                        collapsed: 0,
                        reading: Some(reading),
                    })
                    .collect(),
            }
        }
    };
    Ok(Generation {
        occurrences,
        state: next,
    })
}

/// Calendar plans: (index, due date, collapsed) of the occurrence to
/// generate, if any; updates `state.last_index`.
fn calendar_due(
    c: &CalendarTrigger,
    state: &mut PmState,
    today: Date,
) -> Result<Option<(u64, Date, u64)>, PmError> {
    let horizon = add_days(today, i64::from(c.lead_days))?;
    let Some(first) = state.last_index.map_or(Some(0), |i| i.checked_add(1)) else {
        return Ok(None);
    };
    let due = match c.anchor {
        Anchor::Fixed => latest_fixed(c, horizon)?
            .filter(|(n, _)| *n >= first)
            .map(|(n, due)| (n, due, n - first)),
        Anchor::Floating => {
            let due = match (state.last_index, state.done) {
                (None, _) => Some(c.start),
                (Some(last), Some(done)) if done.index >= last => {
                    Some(step(done.date, c.every, c.unit, 1)?)
                }
                // The previous occurrence is still outstanding.
                (Some(_), _) => None,
            };
            due.filter(|d| *d <= horizon).map(|d| (first, d, 0))
        }
    };
    if let Some((index, _, _)) = due {
        state.last_index = Some(index);
    }
    Ok(due)
}

/// Meter `every` plans: (multiple, reading that reached it, collapsed) of
/// the occurrence to generate, if any; updates the meter state.
fn meter_every_due(
    interval: f64,
    origin: f64,
    lead: f64,
    state: &mut PmState,
    fresh: &[MeterReading],
) -> Option<(u64, MeterReading, u64)> {
    let multiple = |effective: f64, ahead: f64| -> u64 {
        let k = ((effective - origin + ahead) / interval + METER_EPSILON).floor();
        // Saturating float-to-int: a negative value gives 0.
        k as u64
    };
    let mut best: Option<(u64, MeterReading)> = None;
    for r in fresh {
        let effective = match state.last_reading {
            Some(prev) if r.value < prev.value => {
                // Counter reset: keep the usage counted before it.
                state.meter_offset += prev.value;
                state.meter_offset + r.value
            }
            _ => state.meter_offset + r.value,
        };
        if state.last_index.is_none() {
            // A new plan: what the meter already passed is not due work.
            state.last_index = Some(multiple(effective, 0.0));
        }
        state.last_reading = Some(*r);
        let k = multiple(effective, lead);
        if k > state.last_index.unwrap_or(0) && best.is_none_or(|(b, _)| k > b) {
            best = Some((k, *r));
        }
    }
    let (k, reading) = best?;
    // Still the stored index, or the baseline just taken.
    let passed = state.last_index.unwrap_or(0);
    state.last_index = Some(k);
    Some((k, reading, k - passed - 1))
}

/// Threshold plans: (crossing index, reading) of every crossing in `fresh`;
/// updates the meter state.
fn threshold_crossings(
    value: f64,
    direction: Direction,
    hysteresis: f64,
    state: &mut PmState,
    fresh: &[MeterReading],
) -> Vec<(u64, MeterReading)> {
    let mut crossings = Vec::new();
    for r in fresh {
        let (beyond, rearm) = match direction {
            Direction::Rising => (r.value >= value, r.value < value - hysteresis),
            Direction::Falling => (r.value <= value, r.value > value + hysteresis),
        };
        if state.fired {
            if rearm {
                state.fired = false;
            }
        } else if beyond {
            let index = state.last_index.map_or(1, |i| i + 1);
            crossings.push((index, *r));
            state.last_index = Some(index);
            state.fired = true;
        }
        state.last_reading = Some(*r);
    }
    crossings
}

/// The latest fixed occurrence due on or before `horizon`, if any.
fn latest_fixed(c: &CalendarTrigger, horizon: Date) -> Result<Option<(u64, Date)>, PmError> {
    if horizon < c.start {
        return Ok(None);
    }
    let every = u64::from(c.every);
    let n = match c.unit {
        IntervalUnit::Days | IntervalUnit::Weeks => {
            let days = (horizon.to_julian_day() - c.start.to_julian_day()) as u64;
            let period = if c.unit == IntervalUnit::Weeks {
                7 * every
            } else {
                every
            };
            days / period
        }
        IntervalUnit::Months => {
            let months = month_index(horizon) - month_index(c.start);
            let n = months as u64 / every;
            // A clamped month end can fall after the horizon in its month.
            if step(c.start, c.every, c.unit, n)? > horizon {
                n.saturating_sub(1)
            } else {
                n
            }
        }
    };
    Ok(Some((n, step(c.start, c.every, c.unit, n)?)))
}

fn month_index(d: Date) -> i64 {
    i64::from(d.year()) * 12 + i64::from(u8::from(d.month())) - 1
}

/// `from` plus `n` intervals of `every` `unit`; month steps keep the day of
/// `from`, clamped to the month's length.
fn step(from: Date, every: u32, unit: IntervalUnit, n: u64) -> Result<Date, PmError> {
    let count = i64::try_from(
        n.checked_mul(u64::from(every))
            .ok_or(PmError::DateOutOfRange)?,
    )
    .map_err(|_| PmError::DateOutOfRange)?;
    match unit {
        IntervalUnit::Days => add_days(from, count),
        IntervalUnit::Weeks => add_days(from, count.checked_mul(7).ok_or(PmError::DateOutOfRange)?),
        IntervalUnit::Months => {
            let total = month_index(from)
                .checked_add(count)
                .ok_or(PmError::DateOutOfRange)?;
            let year = i32::try_from(total.div_euclid(12)).map_err(|_| PmError::DateOutOfRange)?;
            let month = Month::try_from((total.rem_euclid(12) + 1) as u8)
                .map_err(|_| PmError::DateOutOfRange)?;
            let day = from.day().min(month.length(year));
            Date::from_calendar_date(year, month, day).map_err(|_| PmError::DateOutOfRange)
        }
    }
}

fn add_days(from: Date, days: i64) -> Result<Date, PmError> {
    let jd = i64::from(from.to_julian_day())
        .checked_add(days)
        .and_then(|jd| i32::try_from(jd).ok())
        .ok_or(PmError::DateOutOfRange)?;
    Date::from_julian_day(jd).map_err(|_| PmError::DateOutOfRange)
}

#[cfg(test)]
#[path = "pm_tests.rs"]
mod tests;
