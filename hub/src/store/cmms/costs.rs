//! Maintenance cost of work orders and its roll-ups, computed by
//! `dcmms_shared::cmms::cost` from the stored work orders.
//!
//! Labour is costed at the technicians' hourly rates, supplied by the
//! caller as a [`RateCard`]; [`user_rates`] reads them from the users table
//! (`users.hourly_rate_cents`). A labour entry of a technician without a
//! rate is refused ([`CostError::MissingRate`]), never costed at zero.
//! Roll-ups pick the work orders whose labour/parts dates overlap the range
//! with the `cost_from`/`cost_to` columns and cost only the lines dated
//! inside it.

use super::{both, date_str, from_doc, work_orders, CmmsError, Conn, Db};
use dcmms_shared::cmms::cost::{self, CostLine, RateCard};
use dcmms_shared::cmms::{
    AssetId, CostError, Money, SiteId, SiteScope, UserId, WorkOrder, WorkOrderCost, WorkOrderId,
    YearMonth,
};
use sqlx::QueryBuilder;
use std::collections::BTreeMap;
use time::Date;

/// Work orders read per query by [`rollup`].
const BATCH: i64 = 1000;

/// Costs over a date range, summed several ways.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CostRollup {
    pub labour: Money,
    pub parts: Money,
    pub total: Money,
    pub by_asset: BTreeMap<AssetId, Money>,
    pub by_site: BTreeMap<SiteId, Money>,
    pub by_month: BTreeMap<YearMonth, Money>,
    /// Work orders with at least one cost line in the range.
    pub work_orders: usize,
}

/// Labour, parts and total of one work order.
pub async fn work_order_cost<'a>(
    db: impl Into<Db<'a>>,
    id: &WorkOrderId,
    rates: &impl RateCard,
) -> Result<WorkOrderCost, CmmsError> {
    let stored = work_orders::get(db, id).await?;
    Ok(cost::work_order_cost(&stored.work_order, rates)?)
}

/// Every user's hourly rate from the users table, as a rate card.
pub async fn user_rates<'a>(db: impl Into<Db<'a>>) -> Result<BTreeMap<UserId, Money>, CmmsError> {
    let mut lease = db.into().lease().await?;
    let mut c = lease.conn();
    let rows: Vec<(String, i64)> = both!(&mut c, Conn, x => {
        sqlx::query_as("SELECT id, CAST(hourly_rate_cents AS BIGINT) FROM users")
            .fetch_all(&mut **x)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(|(id, cents)| (UserId(id), Money::from_minor(cents)))
        .collect())
}

fn add_into<K: Ord>(
    into: &mut BTreeMap<K, Money>,
    from: BTreeMap<K, Money>,
) -> Result<(), CostError> {
    for (k, v) in from {
        let slot = into.entry(k).or_default();
        *slot = slot.checked_add(v).ok_or(CostError::Overflow)?;
    }
    Ok(())
}

fn add(a: Money, b: Money) -> Result<Money, CostError> {
    a.checked_add(b).ok_or(CostError::Overflow)
}

/// Costs dated `from..=to` of the work orders at the sites in `scope`,
/// summed in total, per asset, per site and per calendar month.
pub async fn rollup<'a>(
    db: impl Into<Db<'a>>,
    scope: &SiteScope,
    from: Date,
    to: Date,
    rates: &impl RateCard,
) -> Result<CostRollup, CmmsError> {
    let mut out = CostRollup::default();
    if from > to || matches!(scope, SiteScope::Only(s) if s.is_empty()) {
        return Ok(out);
    }
    let mut lease = db.into().lease().await?;
    let mut c = lease.conn();
    let doc = c.json_col("w.doc");
    let (from_s, to_s) = (date_str(from), date_str(to));
    let mut after = String::new();
    loop {
        let rows: Vec<(String, String)> = both!(&mut c, Conn, x => {
            let mut qb = QueryBuilder::new(format!("SELECT w.id, {doc} FROM work_orders w WHERE w.cost_to >= "));
            qb.push_bind(from_s.as_str())
                .push(" AND w.cost_from <= ")
                .push_bind(to_s.as_str())
                .push(" AND w.id > ")
                .push_bind(after.as_str());
            if let SiteScope::Only(sites) = scope {
                qb.push(" AND w.site IN (");
                let mut list = qb.separated(", ");
                for s in sites {
                    list.push_bind(s.as_str());
                }
                qb.push(")");
            }
            qb.push(" ORDER BY w.id LIMIT ").push_bind(BATCH);
            qb.build_query_as().fetch_all(&mut **x).await?
        });
        let Some((last, _)) = rows.last() else {
            break;
        };
        after = last.clone();
        let full = rows.len() as i64 == BATCH;
        let mut lines: Vec<CostLine> = Vec::new();
        for (_, doc) in rows {
            let wo: WorkOrder = from_doc("work order", &doc)?;
            let before = lines.len();
            lines.extend(
                cost::cost_lines(&wo, rates)?
                    .into_iter()
                    .filter(|l| (from..=to).contains(&l.date)),
            );
            if lines.len() > before {
                out.work_orders += 1;
            }
        }
        let of = |kind| cost::total(lines.iter().filter(|l| l.kind == kind));
        out.labour = add(out.labour, of(cost::CostKind::Labour)?)?;
        out.parts = add(out.parts, of(cost::CostKind::Parts)?)?;
        add_into(&mut out.by_asset, cost::by_asset(&lines)?)?;
        add_into(&mut out.by_site, cost::by_site(&lines)?)?;
        add_into(&mut out.by_month, cost::by_month(&lines)?)?;
        if !full {
            break;
        }
    }
    out.total = add(out.labour, out.parts)?;
    Ok(out)
}
