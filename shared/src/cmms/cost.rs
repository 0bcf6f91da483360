//! Maintenance cost: money, work-order cost, and roll-ups.
//!
//! Money is an integer number of minor units (cents) in [`Money`]; floats
//! never touch it. One deployment uses one currency, configured at the hub,
//! so amounts carry no currency code. Labour is costed from minutes and the
//! technician's hourly rate at costing time (the gateway does not hold
//! rates), rounded once per labour entry to the nearest cent, halves away
//! from zero. Parts are costed at the unit cost recorded when they were used.
//! All functions are pure; sums are computed in 128 bits and an amount that
//! does not fit an `i64` is an error, never a wrap.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, Month};

use super::ids::{AssetId, SiteId, UserId, WorkOrderId};
use super::work_order::WorkOrder;

/// An amount in minor units (cents) of the deployment's currency.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(i64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_minor(minor: i64) -> Self {
        Money(minor)
    }

    /// The amount in minor units (cents).
    pub const fn minor(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    pub fn checked_mul(self, quantity: u32) -> Option<Money> {
        self.0.checked_mul(i64::from(quantity)).map(Money)
    }

    fn from_i128(v: i128) -> Result<Money, CostError> {
        i64::try_from(v).map(Money).map_err(|_| CostError::Overflow)
    }
}

/// `12.34`, `-0.05`: two decimals, no currency.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

/// Hourly rates of technicians.
pub trait RateCard {
    fn hourly_rate(&self, technician: &UserId) -> Option<Money>;
}

impl RateCard for BTreeMap<UserId, Money> {
    fn hourly_rate(&self, technician: &UserId) -> Option<Money> {
        self.get(technician).copied()
    }
}

impl<S: std::hash::BuildHasher> RateCard for HashMap<UserId, Money, S> {
    fn hourly_rate(&self, technician: &UserId) -> Option<Money> {
        self.get(technician).copied()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CostError {
    /// A labour entry of a technician without a rate: refused rather than
    /// costed at zero, so that reports never silently undercount.
    #[error("no hourly rate for technician {technician}")]
    MissingRate { technician: UserId },
    #[error("amount does not fit in 64-bit minor units")]
    Overflow,
}

impl CostError {
    pub fn code(&self) -> &'static str {
        match self {
            CostError::MissingRate { .. } => "missing_rate",
            CostError::Overflow => "cost_overflow",
        }
    }
}

/// `minutes` at `rate` per hour, rounded to the nearest minor unit, halves
/// away from zero.
pub fn labour_cost(minutes: u32, rate: Money) -> Result<Money, CostError> {
    let num = i128::from(minutes) * i128::from(rate.0);
    let rounded = if num >= 0 {
        (num + 30) / 60
    } else {
        (num - 30) / 60
    };
    Money::from_i128(rounded)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostKind {
    Labour,
    Parts,
}

/// One costed labour entry or part usage of a work order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostLine {
    pub work_order: WorkOrderId,
    pub site: SiteId,
    pub asset: AssetId,
    /// When the cost was incurred: the labour or part-usage date.
    #[serde(with = "super::iso_date")]
    pub date: Date,
    pub kind: CostKind,
    pub amount: Money,
}

/// The cost lines of a work order, labour first, in recorded order.
pub fn cost_lines(wo: &WorkOrder, rates: &impl RateCard) -> Result<Vec<CostLine>, CostError> {
    let line = |date, kind, amount| CostLine {
        work_order: wo.id.clone(),
        site: wo.site.clone(),
        asset: wo.asset.clone(),
        date,
        kind,
        amount,
    };
    let mut lines = Vec::with_capacity(wo.labour.len() + wo.parts_used.len());
    for entry in &wo.labour {
        let rate = rates
            .hourly_rate(&entry.technician)
            .ok_or_else(|| CostError::MissingRate {
                technician: entry.technician.clone(),
            })?;
        lines.push(line(
            entry.date,
            CostKind::Labour,
            labour_cost(entry.minutes, rate)?,
        ));
    }
    for usage in &wo.parts_used {
        let amount = usage
            .unit_cost
            .checked_mul(usage.quantity)
            .ok_or(CostError::Overflow)?;
        lines.push(line(usage.date, CostKind::Parts, amount));
    }
    Ok(lines)
}

/// Labour, parts and their total for one work order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkOrderCost {
    pub labour: Money,
    pub parts: Money,
    pub total: Money,
}

/// Labour hours x rate + parts x unit cost.
pub fn work_order_cost(wo: &WorkOrder, rates: &impl RateCard) -> Result<WorkOrderCost, CostError> {
    let lines = cost_lines(wo, rates)?;
    let sum_of = |kind| total(lines.iter().filter(|l| l.kind == kind));
    let labour = sum_of(CostKind::Labour)?;
    let parts = sum_of(CostKind::Parts)?;
    Ok(WorkOrderCost {
        labour,
        parts,
        total: labour.checked_add(parts).ok_or(CostError::Overflow)?,
    })
}

/// A calendar month (UTC), the key of monthly roll-ups; `2025-02`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct YearMonth {
    pub year: i32,
    /// 1..=12.
    pub month: u8,
}

impl YearMonth {
    pub fn of(date: Date) -> Self {
        YearMonth {
            year: date.year(),
            month: u8::from(date.month()),
        }
    }

    pub fn month(self) -> Option<Month> {
        Month::try_from(self.month).ok()
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Sum of the amounts.
pub fn total<'a>(lines: impl IntoIterator<Item = &'a CostLine>) -> Result<Money, CostError> {
    Money::from_i128(lines.into_iter().map(|l| i128::from(l.amount.0)).sum())
}

/// Sums amounts per key.
pub fn rollup<'a, K: Ord>(
    lines: impl IntoIterator<Item = &'a CostLine>,
    key: impl Fn(&CostLine) -> K,
) -> Result<BTreeMap<K, Money>, CostError> {
    let mut sums: BTreeMap<K, i128> = BTreeMap::new();
    for line in lines {
        *sums.entry(key(line)).or_default() += i128::from(line.amount.0);
    }
    sums.into_iter()
        .map(|(k, v)| Money::from_i128(v).map(|m| (k, m)))
        .collect()
}

pub fn by_asset<'a>(
    lines: impl IntoIterator<Item = &'a CostLine>,
) -> Result<BTreeMap<AssetId, Money>, CostError> {
    rollup(lines, |l| l.asset.clone())
}

pub fn by_site<'a>(
    lines: impl IntoIterator<Item = &'a CostLine>,
) -> Result<BTreeMap<SiteId, Money>, CostError> {
    rollup(lines, |l| l.site.clone())
}

pub fn by_month<'a>(
    lines: impl IntoIterator<Item = &'a CostLine>,
) -> Result<BTreeMap<YearMonth, Money>, CostError> {
    rollup(lines, |l| YearMonth::of(l.date))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmms::checklist::Checklist;
    use crate::cmms::state::State;
    use crate::cmms::work_order::{LabourEntry, PartUsage, Priority, WorkType};
    use std::collections::BTreeSet;
    use time::macros::{date, datetime};

    fn wo(id: &str, site: &str, asset: &str) -> WorkOrder {
        WorkOrder {
            id: id.into(),
            site: site.into(),
            asset: asset.into(),
            work_type: WorkType::Corrective,
            priority: Priority::P3,
            title: "t".into(),
            description: String::new(),
            requested_by: "sup".into(),
            created_at: datetime!(2025-01-01 00:00 UTC),
            state: State::Closed,
            assignees: BTreeSet::new(),
            scheduled_for: None,
            due: None,
            sla_hours: 72,
            hold_reason: None,
            checklist: Checklist::default(),
            parts_used: Vec::new(),
            labour: Vec::new(),
            comments: Vec::new(),
            history: Vec::new(),
            pm_occurrence: None,
        }
    }

    fn labour(who: &str, date: Date, minutes: u32) -> LabourEntry {
        LabourEntry {
            technician: who.into(),
            date,
            minutes,
            note: None,
        }
    }

    fn parts(qty: u32, cents: i64, date: Date) -> PartUsage {
        PartUsage {
            part: "p".into(),
            quantity: qty,
            unit_cost: Money::from_minor(cents),
            date,
        }
    }

    fn rates() -> BTreeMap<UserId, Money> {
        [
            (UserId::from("ana"), Money::from_minor(6_000)),
            (UserId::from("bo"), Money::from_minor(4_550)),
        ]
        .into()
    }

    #[test]
    fn labour_rounds_to_the_nearest_cent() {
        // 1 min at 100.00/h = 166.67 cents.
        assert_eq!(
            labour_cost(1, Money::from_minor(10_000)).unwrap().minor(),
            167
        );
        // 1 min at 0.30/h = 0.5 cent: half rounds away from zero.
        assert_eq!(labour_cost(1, Money::from_minor(30)).unwrap().minor(), 1);
        assert_eq!(labour_cost(1, Money::from_minor(29)).unwrap().minor(), 0);
        assert_eq!(labour_cost(1, Money::from_minor(-30)).unwrap().minor(), -1);
        assert_eq!(
            labour_cost(90, Money::from_minor(4_550)).unwrap().minor(),
            6_825
        );
        assert_eq!(
            labour_cost(0, Money::from_minor(4_550)).unwrap(),
            Money::ZERO
        );
        assert_eq!(
            labour_cost(u32::MAX, Money::from_minor(i64::MAX)),
            Err(CostError::Overflow)
        );
    }

    #[test]
    fn work_order_cost_adds_labour_and_parts() {
        let mut w = wo("w1", "s1", "inv-1");
        w.labour.push(labour("ana", date!(2025 - 01 - 31), 90)); // 90.00
        w.labour.push(labour("bo", date!(2025 - 02 - 01), 20)); // 15.1666 -> 15.17
        w.parts_used.push(parts(3, 1_299, date!(2025 - 02 - 01))); // 38.97
        let cost = work_order_cost(&w, &rates()).unwrap();
        assert_eq!(cost.labour, Money::from_minor(9_000 + 1_517));
        assert_eq!(cost.parts, Money::from_minor(3_897));
        assert_eq!(cost.total.to_string(), "144.14");

        w.labour.push(labour("zed", date!(2025 - 02 - 01), 5));
        assert_eq!(
            work_order_cost(&w, &rates()),
            Err(CostError::MissingRate {
                technician: "zed".into()
            })
        );
        let mut w = wo("w2", "s1", "inv-1");
        w.parts_used
            .push(parts(u32::MAX, i64::MAX, date!(2025 - 02 - 01)));
        assert_eq!(work_order_cost(&w, &rates()), Err(CostError::Overflow));
    }

    #[test]
    fn rollups_by_asset_site_and_month() {
        let mut a = wo("w1", "s1", "inv-1");
        a.labour.push(labour("ana", date!(2025 - 01 - 31), 60)); // 60.00 in Jan
        a.parts_used.push(parts(1, 500, date!(2025 - 02 - 01))); // 5.00 in Feb
        let mut b = wo("w2", "s1", "inv-2");
        b.parts_used.push(parts(2, 250, date!(2025 - 02 - 14))); // 5.00 in Feb
        let mut c = wo("w3", "s2", "wt-7");
        c.labour.push(labour("bo", date!(2024 - 12 - 31), 60)); // 45.50 in Dec
        let lines: Vec<CostLine> = [&a, &b, &c]
            .iter()
            .flat_map(|w| cost_lines(w, &rates()).unwrap())
            .collect();
        assert_eq!(
            total(&lines).unwrap(),
            Money::from_minor(6_000 + 500 + 500 + 4_550)
        );

        let assets = by_asset(&lines).unwrap();
        assert_eq!(assets[&AssetId::from("inv-1")], Money::from_minor(6_500));
        assert_eq!(assets[&AssetId::from("inv-2")], Money::from_minor(500));
        assert_eq!(assets[&AssetId::from("wt-7")], Money::from_minor(4_550));

        let sites = by_site(&lines).unwrap();
        assert_eq!(sites[&SiteId::from("s1")], Money::from_minor(7_000));
        assert_eq!(sites[&SiteId::from("s2")], Money::from_minor(4_550));

        let months: Vec<(String, i64)> = by_month(&lines)
            .unwrap()
            .into_iter()
            .map(|(m, v)| (m.to_string(), v.minor()))
            .collect();
        assert_eq!(
            months,
            [
                ("2024-12".to_owned(), 4_550),
                ("2025-01".to_owned(), 6_000),
                ("2025-02".to_owned(), 1_000)
            ]
        );
        // Roll-ups over a filtered iterator: one site's months.
        let s1_feb = by_month(lines.iter().filter(|l| l.site == SiteId::from("s1"))).unwrap();
        assert_eq!(
            s1_feb[&YearMonth {
                year: 2025,
                month: 2
            }],
            Money::from_minor(1_000)
        );
        assert_eq!(
            YearMonth::of(date!(2025 - 02 - 14)).month(),
            Some(Month::February)
        );
    }

    #[test]
    fn money_display_and_serde() {
        assert_eq!(Money::from_minor(5).to_string(), "0.05");
        assert_eq!(Money::from_minor(-1_234).to_string(), "-12.34");
        assert_eq!(
            Money::from_minor(i64::MIN).to_string(),
            "-92233720368547758.08"
        );
        assert_eq!(
            serde_json::to_value(Money::from_minor(1_299)).unwrap(),
            1_299
        );
        assert_eq!(
            Money::from_minor(1).checked_add(Money::from_minor(i64::MAX)),
            None
        );
    }
}
