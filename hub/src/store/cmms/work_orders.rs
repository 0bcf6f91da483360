//! Work orders: creation, transitions, edits, and the row that indexes
//! them.
//!
//! A work order is stored as the serialized [`WorkOrder`] (`doc`, the
//! truth) plus columns derived from it (`IndexRow`) and its assignees in
//! `work_order_assignees` (with copies of the site, state and sort keys, for
//! "assigned to me" listings); every save rewrites both from the struct. The
//! `version` column counts saves: a save names the version it loaded and
//! fails with [`CmmsError::Conflict`] if another transaction saved first.
//!
//! Side effects of a transition happen in the same transaction: reaching
//! `completed` settles the parts stock (consumes what was used, releases the
//! rest; a shortage refuses the transition before anything is written),
//! cancelling releases the reservations, and both record the work as done
//! on the PM plan that generated the work order.
//!
//! Listing lives in `wo_list` and is re-exported here.

use super::{both, conn, enum_str, from_doc, ms, next_counter, parts, pm, to_doc};
use super::{date_str, work_order_id, Changed, CmmsError, Conn, Db};
use crate::store::Tx;
use dcmms_shared::cmms::{Action, Actor, Edit, NewWorkOrder, StockItem, WorkOrder, WorkOrderId};
use serde::Serialize;
use sqlx::QueryBuilder;
use time::{OffsetDateTime, UtcOffset};

pub use super::wo_list::{
    list, Sort, SortField, WorkOrderFilter, WorkOrderPage, DEFAULT_LIMIT, MAX_LIMIT,
};

/// Name of the work-order id counter.
pub(crate) const COUNTER: &str = "work_order";

/// Sort key of a work order without a due date (last when ascending).
pub(crate) const NO_DUE: &str = "9999-12-31";

/// A work order and the version it was saved at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredWorkOrder {
    pub work_order: WorkOrder,
    /// Pass it back as `expected_version` to refuse a change made meanwhile.
    pub version: i64,
}

/// What a transition or an edit changed, for the caller's audit entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkOrderChange {
    pub before: StoredWorkOrder,
    pub after: StoredWorkOrder,
    /// Stock items the change settled or released (completion,
    /// cancellation, parts used after completion).
    pub stock: Vec<Changed<StockItem>>,
}

/// The columns of a work-order row, derived from the struct.
#[derive(Debug, Clone)]
pub(crate) struct IndexRow {
    pub id: String,
    pub site: String,
    pub asset: String,
    pub work_type: String,
    pub priority: String,
    pub state: String,
    pub title: String,
    pub requested_by: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub due: Option<String>,
    pub due_key: String,
    pub scheduled_for: Option<String>,
    pub sla_deadline_ms: i64,
    pub completed_ms: Option<i64>,
    pub pm_plan: Option<String>,
    pub pm_index: Option<i64>,
    pub cost_from: Option<String>,
    pub cost_to: Option<String>,
    pub doc: String,
}

/// Every column but `version`, in the order [`bind_row!`] binds them.
pub(crate) const ROW_COLUMNS: &str =
    "id, site, asset, work_type, priority, state, title, requested_by, created_ms, updated_ms, \
     due, due_key, scheduled_for, sla_deadline_ms, completed_ms, pm_plan, pm_index, cost_from, \
     cost_to, doc";

/// Binds the 20 [`ROW_COLUMNS`] of an [`IndexRow`] in order.
macro_rules! bind_row {
    ($q:expr, $r:expr) => {
        $q.bind(&$r.id)
            .bind(&$r.site)
            .bind(&$r.asset)
            .bind(&$r.work_type)
            .bind(&$r.priority)
            .bind(&$r.state)
            .bind(&$r.title)
            .bind(&$r.requested_by)
            .bind($r.created_ms)
            .bind($r.updated_ms)
            .bind(&$r.due)
            .bind(&$r.due_key)
            .bind(&$r.scheduled_for)
            .bind($r.sla_deadline_ms)
            .bind($r.completed_ms)
            .bind(&$r.pm_plan)
            .bind($r.pm_index)
            .bind(&$r.cost_from)
            .bind(&$r.cost_to)
            .bind(&$r.doc)
    };
}

impl IndexRow {
    pub(crate) fn of(wo: &WorkOrder, updated: OffsetDateTime) -> Result<IndexRow, CmmsError> {
        let cost_dates = wo
            .labour
            .iter()
            .map(|l| l.date)
            .chain(wo.parts_used.iter().map(|p| p.date));
        let (cost_from, cost_to) = cost_dates.fold((None, None), |(lo, hi), d| {
            (
                Some(lo.map_or(d, |lo: time::Date| lo.min(d))),
                Some(hi.map_or(d, |hi: time::Date| hi.max(d))),
            )
        });
        let pm_index = match &wo.pm_occurrence {
            Some(k) => Some(i64::try_from(k.index).map_err(|_| {
                CmmsError::invalid("bad_occurrence", format!("occurrence index {}", k.index))
            })?),
            None => None,
        };
        Ok(IndexRow {
            id: wo.id.0.clone(),
            site: wo.site.0.clone(),
            asset: wo.asset.0.clone(),
            work_type: enum_str(&wo.work_type)?,
            priority: enum_str(&wo.priority)?,
            state: wo.state.as_str().to_owned(),
            title: wo.title.clone(),
            requested_by: wo.requested_by.0.clone(),
            created_ms: ms(wo.created_at),
            updated_ms: ms(updated),
            due: wo.due.map(date_str),
            due_key: wo.due.map_or_else(|| NO_DUE.to_owned(), date_str),
            scheduled_for: wo.scheduled_for.map(date_str),
            sla_deadline_ms: ms(wo.sla_deadline()),
            completed_ms: wo.completed_at().map(ms),
            pm_plan: wo.pm_occurrence.as_ref().map(|k| k.plan.0.clone()),
            pm_index,
            cost_from: cost_from.map(date_str),
            cost_to: cost_to.map(date_str),
            doc: to_doc(wo)?,
        })
    }
}

/// Maps a unique violation of a work-order insert to the key it broke.
fn duplicate(e: sqlx::Error, wo: &WorkOrder) -> CmmsError {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            let what = d.constraint().unwrap_or(d.message());
            return match &wo.pm_occurrence {
                Some(key) if what.contains("pm_") => CmmsError::Duplicate {
                    entity: "pm_occurrence",
                    id: key.to_string(),
                },
                _ => CmmsError::Duplicate {
                    entity: "work_order",
                    id: wo.id.0.clone(),
                },
            };
        }
    }
    e.into()
}

/// Mints the next work-order id (`WO-000123`); the counter row stays
/// locked until the transaction ends.
pub async fn next_id(tx: &mut Tx) -> Result<WorkOrderId, CmmsError> {
    Ok(work_order_id(
        next_counter(&mut conn(tx), COUNTER, 1).await?,
    ))
}

/// Creates a work order with the domain's [`WorkOrder::create`] (which
/// decides the first state from the actor's role). An empty `new.id` is
/// replaced with the next `WO-nnnnnn`; a given id must be unused. The asset
/// must exist at the work order's site.
pub async fn create(
    tx: &mut Tx,
    new: NewWorkOrder,
    actor: &Actor,
    at: OffsetDateTime,
) -> Result<StoredWorkOrder, CmmsError> {
    let mut wo = WorkOrder::create(new, actor, at)?;
    let mut c = conn(tx);
    if wo.id.as_str().is_empty() {
        wo.id = work_order_id(next_counter(&mut c, COUNTER, 1).await?);
    }
    insert(&mut c, wo, at).await
}

/// Inserts a new work order at version 1.
pub(crate) async fn insert(
    c: &mut Conn<'_>,
    wo: WorkOrder,
    at: OffsetDateTime,
) -> Result<StoredWorkOrder, CmmsError> {
    let asset_site: Option<String> = both!(c, Conn, x => {
        sqlx::query_scalar("SELECT site FROM assets WHERE id = $1")
            .bind(wo.asset.as_str())
            .fetch_optional(&mut **x)
            .await?
    });
    match asset_site {
        None => return Err(CmmsError::not_found("asset", &wo.asset)),
        Some(site) if site != wo.site.as_str() => {
            return Err(CmmsError::invalid(
                "asset_at_other_site",
                format!("asset {} is at site {site}, not {}", wo.asset, wo.site),
            ))
        }
        Some(_) => {}
    }
    let row = IndexRow::of(&wo, at)?;
    let sql = format!(
        "INSERT INTO work_orders ({ROW_COLUMNS}, version) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, {}, 1)",
        c.json_param(20)
    );
    both!(c, Conn, x => {
        bind_row!(sqlx::query(sqlx::AssertSqlSafe(sql)), row)
            .execute(&mut **x)
            .await
            .map_err(|e| duplicate(e, &wo))?;
    });
    write_assignees(c, &wo, &row).await?;
    Ok(StoredWorkOrder {
        work_order: wo,
        version: 1,
    })
}

/// Columns of `work_order_assignees` after the pair (work_order, user_id).
pub(crate) const ASSIGNEE_COLUMNS: &str =
    "work_order, user_id, site, state, created_ms, updated_ms, due_key, priority";

/// Rewrites the assignee rows of a work order (with their copies of its
/// site, state and sort keys).
async fn write_assignees(
    c: &mut Conn<'_>,
    wo: &WorkOrder,
    row: &IndexRow,
) -> Result<(), CmmsError> {
    both!(c, Conn, x => {
        sqlx::query("DELETE FROM work_order_assignees WHERE work_order = $1")
            .bind(wo.id.as_str())
            .execute(&mut **x)
            .await?;
        if !wo.assignees.is_empty() {
            let mut qb = QueryBuilder::new(format!("INSERT INTO work_order_assignees ({ASSIGNEE_COLUMNS}) "));
            qb.push_values(&wo.assignees, |mut b, user| {
                b.push_bind(&row.id)
                    .push_bind(user.as_str())
                    .push_bind(&row.site)
                    .push_bind(&row.state)
                    .push_bind(row.created_ms)
                    .push_bind(row.updated_ms)
                    .push_bind(&row.due_key)
                    .push_bind(&row.priority);
            });
            qb.build().execute(&mut **x).await?;
        }
    });
    Ok(())
}

/// Refreshes the copies of a work order's columns in its assignee rows.
async fn update_assignees(c: &mut Conn<'_>, row: &IndexRow) -> Result<(), CmmsError> {
    let sql = "UPDATE work_order_assignees SET site = $2, state = $3, created_ms = $4, \
               updated_ms = $5, due_key = $6, priority = $7 WHERE work_order = $1";
    both!(c, Conn, x => {
        sqlx::query(sql)
            .bind(&row.id)
            .bind(&row.site)
            .bind(&row.state)
            .bind(row.created_ms)
            .bind(row.updated_ms)
            .bind(&row.due_key)
            .bind(&row.priority)
            .execute(&mut **x)
            .await?;
    });
    Ok(())
}

/// Loads a work order; on PostgreSQL `lock` also locks its row until the
/// transaction ends.
pub(crate) async fn load(
    c: &mut Conn<'_>,
    id: &WorkOrderId,
    lock: bool,
) -> Result<Option<StoredWorkOrder>, CmmsError> {
    let sql = format!(
        "SELECT {}, version FROM work_orders WHERE id = $1{}",
        c.json_col("doc"),
        if lock { c.for_update() } else { "" }
    );
    let row: Option<(String, i64)> = both!(c, Conn, x => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(&mut **x)
            .await?
    });
    row.map(|(doc, version)| {
        Ok(StoredWorkOrder {
            work_order: from_doc("work order", &doc)?,
            version,
        })
    })
    .transpose()
}

/// Saves a changed work order over `version`; returns the new version.
pub(crate) async fn save(
    c: &mut Conn<'_>,
    before: &StoredWorkOrder,
    wo: &WorkOrder,
    at: OffsetDateTime,
) -> Result<i64, CmmsError> {
    let row = IndexRow::of(wo, at)?;
    let sql = format!(
        "UPDATE work_orders SET site = $2, asset = $3, work_type = $4, priority = $5, state = $6, \
         title = $7, requested_by = $8, created_ms = $9, updated_ms = $10, due = $11, \
         due_key = $12, scheduled_for = $13, sla_deadline_ms = $14, completed_ms = $15, \
         pm_plan = $16, pm_index = $17, cost_from = $18, cost_to = $19, doc = {}, \
         version = version + 1 WHERE id = $1 AND version = $21",
        c.json_param(20)
    );
    let updated = both!(c, Conn, x => {
        bind_row!(sqlx::query(sqlx::AssertSqlSafe(sql)), row)
            .bind(before.version)
            .execute(&mut **x)
            .await?
            .rows_affected()
    });
    if updated == 0 {
        let actual: Option<i64> = both!(c, Conn, x => {
            sqlx::query_scalar("SELECT version FROM work_orders WHERE id = $1")
                .bind(wo.id.as_str())
                .fetch_optional(&mut **x)
                .await?
        });
        return Err(match actual {
            Some(actual) => CmmsError::Conflict {
                expected: before.version,
                actual,
            },
            None => CmmsError::not_found("work_order", &wo.id),
        });
    }
    if wo.assignees != before.work_order.assignees {
        write_assignees(c, wo, &row).await?;
    } else if !wo.assignees.is_empty() {
        update_assignees(c, &row).await?;
    }
    Ok(before.version + 1)
}

/// Loads a work order for a change, checking the caller's version.
async fn load_for_change(
    c: &mut Conn<'_>,
    id: &WorkOrderId,
    expected_version: Option<i64>,
) -> Result<StoredWorkOrder, CmmsError> {
    let before = load(c, id, true)
        .await?
        .ok_or_else(|| CmmsError::not_found("work_order", id))?;
    match expected_version {
        Some(expected) if expected != before.version => Err(CmmsError::Conflict {
            expected,
            actual: before.version,
        }),
        _ => Ok(before),
    }
}

pub async fn get<'a>(
    db: impl Into<Db<'a>>,
    id: &WorkOrderId,
) -> Result<StoredWorkOrder, CmmsError> {
    let mut lease = db.into().lease().await?;
    load(&mut lease.conn(), id, false)
        .await?
        .ok_or_else(|| CmmsError::not_found("work_order", id))
}

/// Takes a state-machine action ([`dcmms_shared::cmms::apply`]) and saves
/// the result with its side effects (see the module documentation).
/// `expected_version`: the version the caller last read, if it wants a
/// change made meanwhile refused with [`CmmsError::Conflict`].
pub async fn transition(
    tx: &mut Tx,
    id: &WorkOrderId,
    action: &Action,
    actor: &Actor,
    at: OffsetDateTime,
    expected_version: Option<i64>,
) -> Result<WorkOrderChange, CmmsError> {
    let mut c = conn(tx);
    let before = load_for_change(&mut c, id, expected_version).await?;
    let mut wo = before.work_order.clone();
    wo.transition(action, actor, at)?;

    let was = &before.work_order;
    let completed = was.completed_at().is_none() && wo.completed_at().is_some();
    let cancelled = wo.state == dcmms_shared::cmms::State::Cancelled && was.state != wo.state;
    // Stock is decided in full before anything is written.
    let stock = if completed {
        parts::plan_settlement(&mut c, &wo).await?
    } else if cancelled {
        parts::plan_release(&mut c, &wo).await?
    } else {
        parts::StockPlan::default()
    };
    let version = save(&mut c, &before, &wo, at).await?;
    let stock = parts::apply_plan(&mut c, stock, at).await?;
    if completed || cancelled {
        if let Some(key) = &wo.pm_occurrence {
            pm::record_work_done(&mut c, key, at.to_offset(UtcOffset::UTC).date(), at).await?;
        }
    }
    Ok(WorkOrderChange {
        before,
        after: StoredWorkOrder {
            work_order: wo,
            version,
        },
        stock,
    })
}

/// Applies an edit ([`WorkOrder::apply_edit`]) and saves it. Parts used on
/// a work order that is already completed are taken off the stock at once.
pub async fn edit(
    tx: &mut Tx,
    id: &WorkOrderId,
    edit: Edit,
    actor: &Actor,
    at: OffsetDateTime,
    expected_version: Option<i64>,
) -> Result<WorkOrderChange, CmmsError> {
    let mut c = conn(tx);
    let before = load_for_change(&mut c, id, expected_version).await?;
    let mut wo = before.work_order.clone();
    let uses_part = matches!(edit, Edit::UsePart(_));
    wo.apply_edit(edit, actor, at)?;
    let stock = if uses_part && wo.completed_at().is_some() {
        parts::plan_settlement(&mut c, &wo).await?
    } else {
        parts::StockPlan::default()
    };
    let version = save(&mut c, &before, &wo, at).await?;
    let stock = parts::apply_plan(&mut c, stock, at).await?;
    Ok(WorkOrderChange {
        before,
        after: StoredWorkOrder {
            work_order: wo,
            version,
        },
        stock,
    })
}
