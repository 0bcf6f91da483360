//! Spare parts and their stock, per site.
//!
//! A `parts` row plus its `part_reservations` rows are one domain
//! [`StockItem`]; every operation loads it (locking the row on PostgreSQL),
//! applies the domain operation, and saves the result, so quantities obey
//! the domain's invariants (never negative, never less on hand than
//! reserved) and a refusal is the domain's typed [`StockError`].
//! `part_consumptions` remembers how much of a part each work order has
//! taken off the shelf, so that completing a reopened work order consumes
//! only what was used since.

use super::{both, conn, ms, Changed, CmmsError, Conn, Db};
use crate::store::Tx;
use dcmms_shared::cmms::stock::StockRecord;
use dcmms_shared::cmms::{
    Money, PartId, SiteId, State, StockError, StockItem, TransitionError, WorkOrder, WorkOrderId,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

/// A part of a site's catalogue with its stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredPart {
    pub name: String,
    pub stock: StockItem,
}

/// What a caller supplies to add a part to a site's catalogue (with
/// nothing on hand).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPart {
    pub site: SiteId,
    pub part: PartId,
    pub name: String,
    /// Stock unit ("pcs", "ml").
    pub unit: String,
    pub unit_cost: Money,
    pub reorder_level: Option<u32>,
}

fn qty_of(what: &str, v: i64) -> Result<u32, CmmsError> {
    u32::try_from(v).map_err(|_| CmmsError::corrupt(format!("stored {what} {v}")))
}

type PartRow = (String, String, i64, Option<i64>, i64);

/// Loads a part and its reservations, locking the row on PostgreSQL when
/// `lock`.
pub(crate) async fn load(
    c: &mut Conn<'_>,
    site: &SiteId,
    part: &PartId,
    lock: bool,
) -> Result<Option<StoredPart>, CmmsError> {
    let sql = format!(
        "SELECT name, unit, unit_cost_cents, reorder_level, on_hand FROM parts \
         WHERE site = $1 AND part = $2{}",
        if lock { c.for_update() } else { "" }
    );
    let row: Option<PartRow> = both!(c, Conn, x => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(site.as_str())
            .bind(part.as_str())
            .fetch_optional(&mut **x)
            .await?
    });
    let Some((name, unit, cost, reorder, on_hand)) = row else {
        return Ok(None);
    };
    let reservations: Vec<(String, i64)> = both!(c, Conn, x => {
        sqlx::query_as(
            "SELECT work_order, qty FROM part_reservations WHERE site = $1 AND part = $2",
        )
        .bind(site.as_str())
        .bind(part.as_str())
        .fetch_all(&mut **x)
        .await?
    });
    let record = StockRecord {
        site: site.clone(),
        part: part.clone(),
        unit,
        unit_cost: Money::from_minor(cost),
        reorder_level: reorder.map(|r| qty_of("reorder level", r)).transpose()?,
        on_hand: qty_of("on hand", on_hand)?,
        reservations: reservations
            .into_iter()
            .map(|(wo, q)| Ok((WorkOrderId(wo), qty_of("reservation", q)?)))
            .collect::<Result<BTreeMap<_, _>, CmmsError>>()?,
    };
    let stock = StockItem::from_record(record)
        .map_err(|e| CmmsError::corrupt(format!("stock of {part} at {site}: {e}")))?;
    Ok(Some(StoredPart { name, stock }))
}

async fn load_for_change(
    c: &mut Conn<'_>,
    site: &SiteId,
    part: &PartId,
) -> Result<StoredPart, CmmsError> {
    load(c, site, part, true)
        .await?
        .ok_or_else(|| CmmsError::not_found("part", format!("{site}/{part}")))
}

/// Writes `after` over `before` (the row and the changed reservations).
async fn save(
    c: &mut Conn<'_>,
    before: &StoredPart,
    after: &StoredPart,
    at: OffsetDateTime,
) -> Result<(), CmmsError> {
    let s = &after.stock;
    let sql = "UPDATE parts SET name = $3, unit = $4, unit_cost_cents = $5, reorder_level = $6, \
               on_hand = $7, reserved = $8, updated_ms = $9 WHERE site = $1 AND part = $2";
    both!(c, Conn, x => {
        sqlx::query(sql)
            .bind(s.site.as_str())
            .bind(s.part.as_str())
            .bind(&after.name)
            .bind(&s.unit)
            .bind(s.unit_cost.minor())
            .bind(s.reorder_level.map(i64::from))
            .bind(i64::from(s.on_hand()))
            .bind(i64::from(s.reserved()))
            .bind(ms(at))
            .execute(&mut **x)
            .await?;
    });
    let old = before.stock.reservations();
    let new = s.reservations();
    let touched: BTreeSet<&WorkOrderId> = old.keys().chain(new.keys()).collect();
    for wo in touched {
        match (old.get(wo), new.get(wo)) {
            (a, b) if a == b => {}
            (_, None) => both!(c, Conn, x => {
                sqlx::query(
                    "DELETE FROM part_reservations WHERE site = $1 AND part = $2 AND work_order = $3",
                )
                .bind(s.site.as_str())
                .bind(s.part.as_str())
                .bind(wo.as_str())
                .execute(&mut **x)
                .await?;
            }),
            (_, Some(q)) => both!(c, Conn, x => {
                sqlx::query(
                    "INSERT INTO part_reservations (site, part, work_order, qty) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (site, part, work_order) \
                     DO UPDATE SET qty = excluded.qty",
                )
                .bind(s.site.as_str())
                .bind(s.part.as_str())
                .bind(wo.as_str())
                .bind(i64::from(*q))
                .execute(&mut **x)
                .await?;
            }),
        };
    }
    Ok(())
}

async fn record_consumption(
    c: &mut Conn<'_>,
    stock: &StockItem,
    wo: &WorkOrderId,
    qty: u32,
) -> Result<(), CmmsError> {
    if qty == 0 {
        return Ok(());
    }
    both!(c, Conn, x => {
        sqlx::query(
            "INSERT INTO part_consumptions (site, part, work_order, qty) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (site, part, work_order) DO UPDATE SET qty = part_consumptions.qty + excluded.qty",
        )
        .bind(stock.site.as_str())
        .bind(stock.part.as_str())
        .bind(wo.as_str())
        .bind(i64::from(qty))
        .execute(&mut **x)
        .await?;
    });
    Ok(())
}

/// Adds a part to a site's catalogue with nothing on hand.
pub async fn create(
    tx: &mut Tx,
    new: NewPart,
    at: OffsetDateTime,
) -> Result<StoredPart, CmmsError> {
    if new.name.trim().is_empty() || new.unit.trim().is_empty() {
        return Err(CmmsError::invalid(
            "part_name_required",
            "a part needs a name and a unit",
        ));
    }
    if new.unit_cost.minor() < 0 {
        return Err(CmmsError::invalid(
            "negative_cost",
            "a unit cost is not below zero",
        ));
    }
    let mut c = conn(tx);
    let key = format!("{}/{}", new.site, new.part);
    if load(&mut c, &new.site, &new.part, false).await?.is_some() {
        return Err(CmmsError::Duplicate {
            entity: "part",
            id: key,
        });
    }
    let sql =
        "INSERT INTO parts (site, part, name, unit, unit_cost_cents, reorder_level, on_hand, \
               reserved, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, $7)";
    both!(&mut c, Conn, x => {
        sqlx::query(sql)
            .bind(new.site.as_str())
            .bind(new.part.as_str())
            .bind(&new.name)
            .bind(&new.unit)
            .bind(new.unit_cost.minor())
            .bind(new.reorder_level.map(i64::from))
            .bind(ms(at))
            .execute(&mut **x)
            .await
            .map_err(|e| {
                if super::is_foreign_key_violation(&e) {
                    CmmsError::not_found("site", &new.site)
                } else {
                    super::insert_error(e, "part", &key)
                }
            })?;
    });
    let mut stock = StockItem::new(new.site, new.part, &new.unit, new.unit_cost);
    stock.reorder_level = new.reorder_level;
    Ok(StoredPart {
        name: new.name,
        stock,
    })
}

pub async fn get<'a>(
    db: impl Into<Db<'a>>,
    site: &SiteId,
    part: &PartId,
) -> Result<StoredPart, CmmsError> {
    let mut lease = db.into().lease().await?;
    load(&mut lease.conn(), site, part, false)
        .await?
        .ok_or_else(|| CmmsError::not_found("part", format!("{site}/{part}")))
}

/// A site's parts, by part id.
pub async fn list<'a>(db: impl Into<Db<'a>>, site: &SiteId) -> Result<Vec<StoredPart>, CmmsError> {
    let mut lease = db.into().lease().await?;
    let mut c = lease.conn();
    let ids: Vec<String> = both!(&mut c, Conn, x => {
        sqlx::query_scalar("SELECT part FROM parts WHERE site = $1 ORDER BY part")
            .bind(site.as_str())
            .fetch_all(&mut **x)
            .await?
    });
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(p) = load(&mut c, site, &PartId(id), false).await? {
            out.push(p);
        }
    }
    Ok(out)
}

/// Loads, changes with `op`, saves; returns before and after.
async fn change(
    tx: &mut Tx,
    site: &SiteId,
    part: &PartId,
    at: OffsetDateTime,
    op: impl FnOnce(&mut StoredPart) -> Result<u32, CmmsError>,
    consumed_by: Option<&WorkOrderId>,
) -> Result<Changed<StoredPart>, CmmsError> {
    let mut c = conn(tx);
    let before = load_for_change(&mut c, site, part).await?;
    let mut after = before.clone();
    let consumed = op(&mut after)?;
    save(&mut c, &before, &after, at).await?;
    if let Some(wo) = consumed_by {
        record_consumption(&mut c, &after.stock, wo, consumed).await?;
    }
    Ok(Changed { before, after })
}

/// Changes the catalogue details of a part (not its quantities).
pub async fn set_details(
    tx: &mut Tx,
    site: &SiteId,
    part: &PartId,
    name: String,
    unit_cost: Money,
    reorder_level: Option<u32>,
    at: OffsetDateTime,
) -> Result<Changed<StoredPart>, CmmsError> {
    if name.trim().is_empty() {
        return Err(CmmsError::invalid(
            "part_name_required",
            "a part needs a name",
        ));
    }
    if unit_cost.minor() < 0 {
        return Err(CmmsError::invalid(
            "negative_cost",
            "a unit cost is not below zero",
        ));
    }
    change(
        tx,
        site,
        part,
        at,
        |p| {
            p.name = name;
            p.stock.unit_cost = unit_cost;
            p.stock.reorder_level = reorder_level;
            Ok(0)
        },
        None,
    )
    .await
}

/// Goods received.
pub async fn receive(
    tx: &mut Tx,
    site: &SiteId,
    part: &PartId,
    qty: u32,
    at: OffsetDateTime,
) -> Result<Changed<StoredPart>, CmmsError> {
    change(
        tx,
        site,
        part,
        at,
        |p| Ok(p.stock.receive(qty).map(|_| 0)?),
        None,
    )
    .await
}

/// Sets on-hand to a physical count (refused below what is reserved).
pub async fn adjust(
    tx: &mut Tx,
    site: &SiteId,
    part: &PartId,
    counted: u32,
    at: OffsetDateTime,
) -> Result<Changed<StoredPart>, CmmsError> {
    change(
        tx,
        site,
        part,
        at,
        |p| Ok(p.stock.adjust_count(counted).map(|_| 0)?),
        None,
    )
    .await
}

/// The site and state of a work order, locking its row on PostgreSQL
/// (completion locks the work order before its parts too).
async fn work_order_site(c: &mut Conn<'_>, wo: &WorkOrderId) -> Result<(SiteId, State), CmmsError> {
    let sql = format!(
        "SELECT site, state FROM work_orders WHERE id = $1{}",
        c.for_update()
    );
    let row: Option<(String, String)> = both!(c, Conn, x => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(wo.as_str())
            .fetch_optional(&mut **x)
            .await?
    });
    let (site, state) = row.ok_or_else(|| CmmsError::not_found("work_order", wo))?;
    Ok((SiteId(site), super::enum_from_str("state", &state)?))
}

/// Sets `qty` of a part aside for a work order still to be done, from its
/// site's stock.
pub async fn reserve_part(
    tx: &mut Tx,
    wo: &WorkOrderId,
    part: &PartId,
    qty: u32,
    at: OffsetDateTime,
) -> Result<Changed<StoredPart>, CmmsError> {
    let (site, state) = work_order_site(&mut conn(tx), wo).await?;
    if !state.is_backlog() {
        return Err(TransitionError::NotEditableInState {
            state,
            action: "reserve_part",
        }
        .into());
    }
    change(
        tx,
        &site,
        part,
        at,
        |p| Ok(p.stock.reserve(wo, qty).map(|_| 0)?),
        None,
    )
    .await
}

/// Gives back `qty` of a work order's reservation.
pub async fn release_part(
    tx: &mut Tx,
    wo: &WorkOrderId,
    part: &PartId,
    qty: u32,
    at: OffsetDateTime,
) -> Result<Changed<StoredPart>, CmmsError> {
    let (site, _) = work_order_site(&mut conn(tx), wo).await?;
    change(
        tx,
        &site,
        part,
        at,
        |p| Ok(p.stock.release(wo, qty).map(|_| 0)?),
        None,
    )
    .await
}

/// Takes `qty` of a work order's reservation off the shelf now (it then
/// counts as consumed when the work order completes).
pub async fn consume(
    tx: &mut Tx,
    wo: &WorkOrderId,
    part: &PartId,
    qty: u32,
    at: OffsetDateTime,
) -> Result<Changed<StoredPart>, CmmsError> {
    let (site, _) = work_order_site(&mut conn(tx), wo).await?;
    change(
        tx,
        &site,
        part,
        at,
        |p| Ok(p.stock.consume(wo, qty).map(|_| qty)?),
        Some(wo),
    )
    .await
}

/// Parts reserved for a work order and their quantities.
pub async fn reservations_for<'a>(
    db: impl Into<Db<'a>>,
    wo: &WorkOrderId,
) -> Result<BTreeMap<PartId, u32>, CmmsError> {
    let mut lease = db.into().lease().await?;
    let mut c = lease.conn();
    let rows: Vec<(String, i64)> = both!(&mut c, Conn, x => {
        sqlx::query_as("SELECT part, qty FROM part_reservations WHERE work_order = $1")
            .bind(wo.as_str())
            .fetch_all(&mut **x)
            .await?
    });
    rows.into_iter()
        .map(|(p, q)| Ok((PartId(p), qty_of("reservation", q)?)))
        .collect()
}

/// Stock changes decided in full before any is written.
#[derive(Debug, Default)]
pub(crate) struct StockPlan {
    items: Vec<Planned>,
}

#[derive(Debug)]
struct Planned {
    before: StoredPart,
    after: StoredPart,
    work_order: WorkOrderId,
    consumed: u32,
}

/// Quantities per part of a work order from a per-work-order table.
async fn per_part(
    c: &mut Conn<'_>,
    table: &'static str,
    wo: &WorkOrder,
) -> Result<BTreeMap<PartId, u32>, CmmsError> {
    let sql = format!("SELECT part, qty FROM {table} WHERE work_order = $1 AND site = $2");
    let rows: Vec<(String, i64)> = both!(c, Conn, x => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(wo.id.as_str())
            .bind(wo.site.as_str())
            .fetch_all(&mut **x)
            .await?
    });
    rows.into_iter()
        .map(|(p, q)| Ok((PartId(p), qty_of(table, q)?)))
        .collect()
}

/// Completion: for every part used or reserved, consume what was used and
/// not yet consumed (reserving any shortfall from what is available first)
/// and release the rest of the reservation. A part short of stock refuses
/// the whole settlement with the domain's error.
pub(crate) async fn plan_settlement(
    c: &mut Conn<'_>,
    wo: &WorkOrder,
) -> Result<StockPlan, CmmsError> {
    let mut used: BTreeMap<PartId, u32> = BTreeMap::new();
    for usage in &wo.parts_used {
        let q = used.entry(usage.part.clone()).or_insert(0);
        *q = q.checked_add(usage.quantity).ok_or(StockError::Overflow)?;
    }
    let consumed = per_part(c, "part_consumptions", wo).await?;
    let reserved = per_part(c, "part_reservations", wo).await?;
    // Sorted, so concurrent settlements lock parts in the same order.
    let parts: BTreeSet<&PartId> = used.keys().chain(reserved.keys()).collect();
    let mut plan = StockPlan::default();
    for part in parts {
        let outstanding = used
            .get(part)
            .copied()
            .unwrap_or(0)
            .saturating_sub(consumed.get(part).copied().unwrap_or(0));
        let Some(before) = load(c, &wo.site, part, true).await? else {
            if outstanding > 0 {
                return Err(StockError::Insufficient {
                    part: part.clone(),
                    requested: outstanding,
                    available: 0,
                }
                .into());
            }
            continue;
        };
        let mut after = before.clone();
        let shortfall = outstanding.saturating_sub(after.stock.reserved_for(&wo.id));
        if shortfall > 0 {
            after.stock.reserve(&wo.id, shortfall)?;
        }
        after.stock.settle(&wo.id, outstanding)?;
        if after != before {
            plan.items.push(Planned {
                before,
                after,
                work_order: wo.id.clone(),
                consumed: outstanding,
            });
        }
    }
    Ok(plan)
}

/// Cancellation: every reservation of the work order goes back.
pub(crate) async fn plan_release(c: &mut Conn<'_>, wo: &WorkOrder) -> Result<StockPlan, CmmsError> {
    let reserved = per_part(c, "part_reservations", wo).await?;
    let mut plan = StockPlan::default();
    for part in reserved.keys() {
        let Some(before) = load(c, &wo.site, part, true).await? else {
            continue;
        };
        let mut after = before.clone();
        after.stock.release_all(&wo.id);
        plan.items.push(Planned {
            before,
            after,
            work_order: wo.id.clone(),
            consumed: 0,
        });
    }
    Ok(plan)
}

/// Writes a plan; returns the stock items before and after.
pub(crate) async fn apply_plan(
    c: &mut Conn<'_>,
    plan: StockPlan,
    at: OffsetDateTime,
) -> Result<Vec<Changed<StockItem>>, CmmsError> {
    let mut out = Vec::with_capacity(plan.items.len());
    for p in plan.items {
        save(c, &p.before, &p.after, at).await?;
        record_consumption(c, &p.after.stock, &p.work_order, p.consumed).await?;
        out.push(Changed {
            before: p.before.stock,
            after: p.after.stock,
        });
    }
    Ok(out)
}
