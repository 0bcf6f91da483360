//! Spare-parts stock of one part at one site.
//!
//! This module owns the stock rules: quantities never go negative and
//! `on_hand >= reserved` always holds, where `reserved` is the sum of the
//! per-work-order reservations. Every operation checks first and changes
//! nothing when it refuses, returning a typed error that says how much was
//! available. The invariants are private: a [`StockItem`] can only be built
//! empty or from a [`StockRecord`] that passes the same checks (which is
//! also how it deserialises). Quantities are whole units of the part's
//! stock unit (pieces, or e.g. millilitres for oil).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::cost::Money;
use super::ids::{PartId, SiteId, WorkOrderId};

/// Why a stock operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StockError {
    #[error("quantity must be above zero")]
    ZeroQuantity,
    #[error("cannot reserve {requested} of {part}: only {available} available")]
    Insufficient {
        part: PartId,
        requested: u32,
        available: u32,
    },
    #[error("work order {work_order} has {reserved} of {part} reserved, not {requested}")]
    NotReserved {
        part: PartId,
        work_order: WorkOrderId,
        reserved: u32,
        requested: u32,
    },
    #[error("a count of {counted} is below the {reserved} reserved for work orders")]
    BelowReserved { counted: u32, reserved: u32 },
    #[error("quantity would exceed {}", u32::MAX)]
    Overflow,
}

impl StockError {
    pub fn code(&self) -> &'static str {
        match self {
            StockError::ZeroQuantity => "zero_quantity",
            StockError::Insufficient { .. } => "insufficient_stock",
            StockError::NotReserved { .. } => "not_reserved",
            StockError::BelowReserved { .. } => "count_below_reserved",
            StockError::Overflow => "stock_overflow",
        }
    }
}

/// The stored form of a stock item, with no invariants; convert with
/// [`StockItem::from_record`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockRecord {
    pub site: SiteId,
    pub part: PartId,
    pub unit: String,
    pub unit_cost: Money,
    pub reorder_level: Option<u32>,
    pub on_hand: u32,
    pub reservations: BTreeMap<WorkOrderId, u32>,
}

/// Stock of one part at one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StockRecord", into = "StockRecord")]
pub struct StockItem {
    pub site: SiteId,
    pub part: PartId,
    /// The stock unit ("pcs", "ml", "m").
    pub unit: String,
    /// Cost of one unit, recorded on a work order when the part is used.
    pub unit_cost: Money,
    /// Reorder when the available quantity is at or below this level;
    /// `None`: not replenished automatically.
    pub reorder_level: Option<u32>,
    on_hand: u32,
    /// Never holds zero quantities.
    reservations: BTreeMap<WorkOrderId, u32>,
    /// Sum of `reservations`, kept with it.
    reserved: u32,
}

impl StockItem {
    /// An item with nothing on hand.
    pub fn new(site: SiteId, part: PartId, unit: &str, unit_cost: Money) -> Self {
        StockItem {
            site,
            part,
            unit: unit.to_owned(),
            unit_cost,
            reorder_level: None,
            on_hand: 0,
            reservations: BTreeMap::new(),
            reserved: 0,
        }
    }

    /// Rebuilds an item from storage, refusing records that break the
    /// invariants (reservations above on-hand, zero reservations dropped).
    pub fn from_record(record: StockRecord) -> Result<Self, StockError> {
        let reservations: BTreeMap<WorkOrderId, u32> = record
            .reservations
            .into_iter()
            .filter(|(_, q)| *q > 0)
            .collect();
        let reserved = reservations
            .values()
            .try_fold(0u32, |acc, q| acc.checked_add(*q))
            .ok_or(StockError::Overflow)?;
        if reserved > record.on_hand {
            return Err(StockError::BelowReserved {
                counted: record.on_hand,
                reserved,
            });
        }
        Ok(StockItem {
            site: record.site,
            part: record.part,
            unit: record.unit,
            unit_cost: record.unit_cost,
            reorder_level: record.reorder_level,
            on_hand: record.on_hand,
            reservations,
            reserved,
        })
    }

    pub fn on_hand(&self) -> u32 {
        self.on_hand
    }

    pub fn reserved(&self) -> u32 {
        self.reserved
    }

    /// On hand and not reserved.
    pub fn available(&self) -> u32 {
        self.on_hand - self.reserved
    }

    /// Quantity reserved for one work order.
    pub fn reserved_for(&self, work_order: &WorkOrderId) -> u32 {
        self.reservations.get(work_order).copied().unwrap_or(0)
    }

    pub fn reservations(&self) -> &BTreeMap<WorkOrderId, u32> {
        &self.reservations
    }

    /// Available quantity at or below the reorder level.
    pub fn needs_reorder(&self) -> bool {
        self.reorder_level
            .is_some_and(|level| self.available() <= level)
    }

    /// Goods received.
    pub fn receive(&mut self, qty: u32) -> Result<(), StockError> {
        nonzero(qty)?;
        self.on_hand = self.on_hand.checked_add(qty).ok_or(StockError::Overflow)?;
        Ok(())
    }

    /// Sets parts aside for a work order; refused when fewer than `qty` are
    /// available, saying how many are.
    pub fn reserve(&mut self, work_order: &WorkOrderId, qty: u32) -> Result<(), StockError> {
        nonzero(qty)?;
        let available = self.available();
        if qty > available {
            return Err(StockError::Insufficient {
                part: self.part.clone(),
                requested: qty,
                available,
            });
        }
        *self.reservations.entry(work_order.clone()).or_insert(0) += qty;
        self.reserved += qty;
        Ok(())
    }

    /// Gives back part of a work order's reservation.
    pub fn release(&mut self, work_order: &WorkOrderId, qty: u32) -> Result<(), StockError> {
        nonzero(qty)?;
        self.check_reserved(work_order, qty)?;
        self.take_reservation(work_order, qty);
        Ok(())
    }

    /// Gives back a work order's whole reservation (on cancellation);
    /// returns how much was released.
    pub fn release_all(&mut self, work_order: &WorkOrderId) -> u32 {
        let qty = self.reservations.remove(work_order).unwrap_or(0);
        self.reserved -= qty;
        qty
    }

    /// Uses `qty` from a work order's reservation: it leaves the shelf.
    pub fn consume(&mut self, work_order: &WorkOrderId, qty: u32) -> Result<(), StockError> {
        nonzero(qty)?;
        self.check_reserved(work_order, qty)?;
        self.take_reservation(work_order, qty);
        self.on_hand -= qty;
        Ok(())
    }

    /// On completion: consumes `used` from the work order's reservation and
    /// releases the rest; returns the quantity released. `used` may be 0.
    pub fn settle(&mut self, work_order: &WorkOrderId, used: u32) -> Result<u32, StockError> {
        self.check_reserved(work_order, used)?;
        if used > 0 {
            self.consume(work_order, used)?;
        }
        Ok(self.release_all(work_order))
    }

    /// Sets on-hand to a physical count; refused below what is reserved.
    /// Returns the correction (count minus previous on-hand).
    pub fn adjust_count(&mut self, counted: u32) -> Result<i64, StockError> {
        if counted < self.reserved {
            return Err(StockError::BelowReserved {
                counted,
                reserved: self.reserved,
            });
        }
        let delta = i64::from(counted) - i64::from(self.on_hand);
        self.on_hand = counted;
        Ok(delta)
    }

    fn check_reserved(&self, work_order: &WorkOrderId, qty: u32) -> Result<(), StockError> {
        let reserved = self.reserved_for(work_order);
        if qty > reserved {
            return Err(StockError::NotReserved {
                part: self.part.clone(),
                work_order: work_order.clone(),
                reserved,
                requested: qty,
            });
        }
        Ok(())
    }

    /// Caller has checked that `qty` is reserved for `work_order`.
    fn take_reservation(&mut self, work_order: &WorkOrderId, qty: u32) {
        if let Some(r) = self.reservations.get_mut(work_order) {
            *r -= qty;
            if *r == 0 {
                self.reservations.remove(work_order);
            }
            self.reserved -= qty;
        }
    }
}

fn nonzero(qty: u32) -> Result<(), StockError> {
    if qty == 0 {
        Err(StockError::ZeroQuantity)
    } else {
        Ok(())
    }
}

impl TryFrom<StockRecord> for StockItem {
    type Error = StockError;

    fn try_from(record: StockRecord) -> Result<Self, StockError> {
        StockItem::from_record(record)
    }
}

impl From<StockItem> for StockRecord {
    fn from(item: StockItem) -> Self {
        StockRecord {
            site: item.site,
            part: item.part,
            unit: item.unit,
            unit_cost: item.unit_cost,
            reorder_level: item.reorder_level,
            on_hand: item.on_hand,
            reservations: item.reservations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item() -> StockItem {
        StockItem::new(
            "s1".into(),
            "fuse-10a".into(),
            "pcs",
            Money::from_minor(450),
        )
    }

    fn wo(id: &str) -> WorkOrderId {
        WorkOrderId::from(id)
    }

    #[test]
    fn reserve_consume_release() {
        let mut s = item();
        s.receive(10).unwrap();
        s.reserve(&wo("a"), 4).unwrap();
        s.reserve(&wo("b"), 5).unwrap();
        assert_eq!((s.on_hand(), s.reserved(), s.available()), (10, 9, 1));
        let err = s.reserve(&wo("c"), 2).unwrap_err();
        assert_eq!(
            err,
            StockError::Insufficient {
                part: "fuse-10a".into(),
                requested: 2,
                available: 1
            }
        );
        assert_eq!(
            err.to_string(),
            "cannot reserve 2 of fuse-10a: only 1 available"
        );
        assert_eq!(err.code(), "insufficient_stock");

        s.consume(&wo("a"), 3).unwrap();
        assert_eq!(
            (s.on_hand(), s.reserved(), s.reserved_for(&wo("a"))),
            (7, 6, 1)
        );
        let err = s.consume(&wo("a"), 2).unwrap_err();
        assert_eq!(err.code(), "not_reserved");
        s.release(&wo("a"), 1).unwrap();
        assert!(!s.reservations().contains_key(&wo("a")));
        assert_eq!(s.release(&wo("a"), 1).unwrap_err().code(), "not_reserved");

        // Completion: use 2 of the 5, the other 3 go back.
        assert_eq!(s.settle(&wo("b"), 2).unwrap(), 3);
        assert_eq!((s.on_hand(), s.reserved(), s.available()), (5, 0, 5));
        assert_eq!(s.settle(&wo("b"), 1).unwrap_err().code(), "not_reserved");
        assert_eq!(s.settle(&wo("nothing"), 0).unwrap(), 0);
    }

    #[test]
    fn refusals_change_nothing() {
        let mut s = item();
        s.receive(3).unwrap();
        s.reserve(&wo("a"), 2).unwrap();
        let before = s.clone();
        assert_eq!(s.receive(0).unwrap_err().code(), "zero_quantity");
        assert_eq!(s.reserve(&wo("a"), 0).unwrap_err().code(), "zero_quantity");
        assert!(s.reserve(&wo("b"), 2).is_err());
        assert!(s.consume(&wo("b"), 1).is_err());
        assert!(s.settle(&wo("a"), 3).is_err());
        assert_eq!(
            s.adjust_count(1).unwrap_err().code(),
            "count_below_reserved"
        );
        assert_eq!(s.receive(u32::MAX).unwrap_err().code(), "stock_overflow");
        assert_eq!(s, before);
    }

    #[test]
    fn counts_and_reorder() {
        let mut s = item();
        assert!(!s.needs_reorder(), "no level, no reorder");
        s.reorder_level = Some(2);
        assert!(s.needs_reorder());
        s.receive(5).unwrap();
        assert!(!s.needs_reorder());
        s.reserve(&wo("a"), 3).unwrap();
        assert!(s.needs_reorder(), "available 2 is at the level");
        assert_eq!(s.adjust_count(4).unwrap(), -1);
        assert_eq!(s.adjust_count(9).unwrap(), 5);
        assert!(!s.needs_reorder());
        assert_eq!(s.release_all(&wo("a")), 3);
        assert_eq!(s.release_all(&wo("a")), 0);
    }

    #[test]
    fn deserialisation_checks_invariants() {
        let mut s = item();
        s.receive(4).unwrap();
        s.reserve(&wo("a"), 4).unwrap();
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["reservations"]["a"], 4);
        assert_eq!(
            serde_json::from_value::<StockItem>(json.clone()).unwrap(),
            s
        );
        let mut bad = json;
        bad["on_hand"] = 3.into();
        let err = serde_json::from_value::<StockItem>(bad).unwrap_err();
        assert!(err.to_string().contains("below the 4 reserved"), "{err}");

        let mut record = StockRecord::from(s.clone());
        record.reservations.insert(wo("z"), 0);
        let rebuilt = StockItem::from_record(record).unwrap();
        assert_eq!(rebuilt, s, "zero reservations are dropped");
        let mut record = StockRecord::from(s);
        record.on_hand = u32::MAX;
        record.reservations.insert(wo("b"), u32::MAX);
        assert_eq!(
            StockItem::from_record(record).unwrap_err(),
            StockError::Overflow
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Receive(u32),
        Reserve(u8, u32),
        Release(u8, u32),
        ReleaseAll(u8),
        Consume(u8, u32),
        Settle(u8, u32),
        Count(u32),
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        let wo = 0u8..4;
        let qty = prop_oneof![0u32..20, Just(u32::MAX), (u32::MAX - 20)..=u32::MAX];
        prop_oneof![
            qty.clone().prop_map(Op::Receive),
            (wo.clone(), qty.clone()).prop_map(|(w, q)| Op::Reserve(w, q)),
            (wo.clone(), qty.clone()).prop_map(|(w, q)| Op::Release(w, q)),
            wo.clone().prop_map(Op::ReleaseAll),
            (wo.clone(), qty.clone()).prop_map(|(w, q)| Op::Consume(w, q)),
            (wo, qty.clone()).prop_map(|(w, q)| Op::Settle(w, q)),
            qty.prop_map(Op::Count),
        ]
    }

    proptest! {
        /// Random operations against a plain model: the item agrees with the
        /// model whenever an operation succeeds, a refused operation changes
        /// nothing, and quantities never go negative or below reservations.
        #[test]
        fn random_operations_keep_the_invariants(ops in prop::collection::vec(arb_op(), 1..80)) {
            let mut s = item();
            let mut on_hand: u64 = 0;
            let mut res: BTreeMap<u8, u64> = BTreeMap::new();
            for op in ops {
                let before = s.clone();
                let reserved: u64 = res.values().sum();
                let expect_ok = match &op {
                    Op::Receive(q) => *q > 0 && on_hand + u64::from(*q) <= u64::from(u32::MAX),
                    Op::Reserve(_, q) => *q > 0 && u64::from(*q) <= on_hand - reserved,
                    Op::Release(w, q) | Op::Consume(w, q) => {
                        *q > 0 && u64::from(*q) <= res.get(w).copied().unwrap_or(0)
                    }
                    Op::Settle(w, q) => u64::from(*q) <= res.get(w).copied().unwrap_or(0),
                    Op::ReleaseAll(_) => true,
                    Op::Count(c) => u64::from(*c) >= reserved,
                };
                let ok = match &op {
                    Op::Receive(q) => s.receive(*q).is_ok(),
                    Op::Reserve(w, q) => s.reserve(&wo(&w.to_string()), *q).is_ok(),
                    Op::Release(w, q) => s.release(&wo(&w.to_string()), *q).is_ok(),
                    Op::ReleaseAll(w) => {
                        s.release_all(&wo(&w.to_string()));
                        true
                    }
                    Op::Consume(w, q) => s.consume(&wo(&w.to_string()), *q).is_ok(),
                    Op::Settle(w, q) => s.settle(&wo(&w.to_string()), *q).is_ok(),
                    Op::Count(c) => s.adjust_count(*c).is_ok(),
                };
                prop_assert_eq!(ok, expect_ok, "{:?}", op);
                if ok {
                    match op {
                        Op::Receive(q) => on_hand += u64::from(q),
                        Op::Reserve(w, q) => *res.entry(w).or_default() += u64::from(q),
                        Op::Release(w, q) => *res.entry(w).or_default() -= u64::from(q),
                        Op::ReleaseAll(w) => { res.remove(&w); }
                        Op::Consume(w, q) => {
                            *res.entry(w).or_default() -= u64::from(q);
                            on_hand -= u64::from(q);
                        }
                        Op::Settle(w, q) => {
                            res.remove(&w);
                            on_hand -= u64::from(q);
                        }
                        Op::Count(c) => on_hand = u64::from(c),
                    }
                    res.retain(|_, q| *q > 0);
                } else {
                    prop_assert_eq!(&s, &before);
                }
                prop_assert_eq!(u64::from(s.on_hand()), on_hand);
                prop_assert_eq!(u64::from(s.reserved()), res.values().sum::<u64>());
                prop_assert!(s.on_hand() >= s.reserved());
                prop_assert_eq!(s.reserved(), s.reservations().values().sum::<u32>());
                prop_assert!(s.reservations().values().all(|q| *q > 0));
            }
            // And the item survives storage.
            let back: StockItem = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
            prop_assert_eq!(back, s);
        }
    }
}
