//! The preventive-maintenance scheduler: every `[cmms] pm_interval_s` it
//! runs the plans that may have something due, turning due occurrences
//! into work orders.
//!
//! Which plans and what is due are the store's and the domain's decisions
//! ([`pm::due_plans`]: calendar plans whose next due date has come, and
//! every meter plan; [`pm::generate_due`]: the occurrences, never twice).
//! This module only feeds meter plans the telemetry readings stored since
//! the last one they processed, runs each plan in its own transaction
//! with its audit entries (actor `system`; the work orders are requested
//! by the store's PM generator, an administrator of the plan's site), and
//! counts. One plan's failure is logged and counted, never fatal: the
//! other plans still run, and the failed one is tried again next time.
//!
//! [`run_plan`] is also what `POST /api/v1/pm-plans/{id}/generate` calls.

use crate::api::cmms::work::{pm_plan_audit, WorkOrderView};
use crate::audit::{self, AuditActor, AuditEntry};
use crate::metrics::HubMetrics;
use crate::store::cmms::pm::{self, StoredPlan, MAX_READINGS};
use crate::store::cmms::work_orders::StoredWorkOrder;
use crate::store::cmms::{ms, Changed, CmmsError};
use crate::store::Store;
use dcmms_shared::cmms::pm::Trigger;
use dcmms_shared::cmms::PlanId;
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Reading batches fed to one meter plan in one run (each at most
/// [`MAX_READINGS`]); a longer backlog continues at the next run.
const MAX_BATCHES: usize = 10;

/// What one run of one plan did.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRun {
    pub plan: Changed<StoredPlan>,
    pub work_orders: Vec<StoredWorkOrder>,
    /// Meter readings fed to the plan.
    pub readings: usize,
}

/// What one pass of the scheduler did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PassReport {
    pub plans_checked: usize,
    pub work_orders_created: usize,
    pub plans_failed: usize,
}

/// Runs plan `id` at `at` in one transaction: feeds a meter plan the
/// readings of its point stored after the last one it processed, creates
/// the due work orders, and records the audit entries as `actor`
/// (`pm_plan.generate` when the plan changed, `work_order.create` for
/// each work order). Idempotent: a second run with nothing new creates
/// nothing and records nothing.
pub async fn run_plan(
    store: &Store,
    id: &PlanId,
    at: OffsetDateTime,
    actor: &AuditActor,
) -> Result<PlanRun, CmmsError> {
    let mut tx = store.transaction().await?;
    let first = pm::get(&mut tx, id).await?;
    let mut work_orders = Vec::new();
    let mut readings = 0;
    let mut plan = Changed {
        before: first.clone(),
        after: first.clone(),
    };
    match &first.plan.trigger {
        Trigger::Calendar(_) => {
            let g = pm::generate_due(&mut tx, id, at, &[]).await?;
            plan.after = g.plan.after;
            work_orders = g.work_orders;
        }
        Trigger::Meter(meter) => {
            for _ in 0..MAX_BATCHES {
                let from = plan.after.state.last_reading.map_or(i64::MIN, |r| r.ts_ms);
                let batch =
                    pm::meter_readings(&mut tx, &first.plan.site, &meter.point, from).await?;
                let g = pm::generate_due(&mut tx, id, at, &batch).await?;
                plan.after = g.plan.after;
                work_orders.extend(g.work_orders);
                readings += batch.len();
                if (batch.len() as i64) < MAX_READINGS {
                    break;
                }
            }
        }
    }
    let site = first.plan.site.clone();
    let entry = |action, kind, entity_id, before, after| AuditEntry {
        at_ms: crate::auth::now_ms(),
        actor: actor.clone(),
        action,
        entity_kind: kind,
        entity_id,
        site: Some(site.clone()),
        before,
        after,
    };
    if plan.after.version != plan.before.version || !work_orders.is_empty() {
        let e = entry(
            "pm_plan.generate",
            "pm_plan",
            id.to_string(),
            pm_plan_audit(&plan.before),
            pm_plan_audit(&plan.after),
        );
        audit::record(&mut tx, &e).await?;
    }
    for wo in &work_orders {
        let view = WorkOrderView::new(wo, ms(at), &BTreeMap::new(), None);
        let e = entry(
            "work_order.create",
            "work_order",
            wo.work_order.id.to_string(),
            None,
            serde_json::to_value(&view).ok(),
        );
        audit::record(&mut tx, &e).await?;
    }
    tx.commit().await?;
    Ok(PlanRun {
        plan,
        work_orders,
        readings,
    })
}

/// One pass: runs every plan [`pm::due_plans`] picks for the UTC date of
/// `at`, each in its own transaction, as the `system` actor.
pub async fn run_pass(store: &Store, metrics: &HubMetrics, at: OffsetDateTime) -> PassReport {
    let mut report = PassReport::default();
    metrics.pm_run();
    let today = at.to_offset(time::UtcOffset::UTC).date();
    let plans = match pm::due_plans(store, today).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "PM scheduler: cannot list the due plans");
            metrics.db_error();
            return report;
        }
    };
    let system = AuditActor::system();
    for id in plans {
        report.plans_checked += 1;
        match run_plan(store, &id, at, &system).await {
            Ok(run) => {
                report.work_orders_created += run.work_orders.len();
                metrics.pm_work_orders_created(run.work_orders.len() as u64);
                for wo in &run.work_orders {
                    tracing::debug!(plan = %id, work_order = %wo.work_order.id, "PM work order created");
                }
            }
            Err(e) => {
                report.plans_failed += 1;
                metrics.pm_plan_error();
                tracing::warn!(plan = %id, code = e.code(), error = %e, "PM scheduler: plan failed; the others go on");
            }
        }
    }
    tracing::info!(
        plans_checked = report.plans_checked,
        work_orders_created = report.work_orders_created,
        plans_failed = report.plans_failed,
        "PM scheduler pass done"
    );
    report
}

/// Starts the scheduler on `tracker`: a pass at once, then one every
/// `interval`, until `token` is cancelled (a pass in progress is then
/// abandoned; its open transaction rolls back).
pub fn spawn(
    tracker: &TaskTracker,
    token: CancellationToken,
    store: Store,
    metrics: HubMetrics,
    interval: Duration,
) {
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tick.tick() => {}
            }
            tokio::select! {
                _ = token.cancelled() => break,
                _ = run_pass(&store, &metrics, OffsetDateTime::now_utc()) => {}
            }
        }
        tracing::debug!("PM scheduler stopped");
    });
}

#[cfg(test)]
#[path = "pm_scheduler_tests.rs"]
mod tests;
