//! Costs: one work order and roll-ups, with the figures worked out by hand.

use super::super::costs::{self, CostRollup};
use super::super::work_orders;
use super::{at, code, create_wo, new_wo, on_both, setup, sup, T0};
use crate::store::Store;
use dcmms_shared::cmms::work_order::{LabourEntry, PartUsage};
use dcmms_shared::cmms::{
    Action, AssetId, Edit, Money, SiteId, SiteScope, UserId, WorkOrderId, YearMonth,
};
use std::collections::{BTreeMap, BTreeSet};
use time::macros::date;
use time::Date;

fn labour(who: &str, date: Date, minutes: u32) -> Edit {
    Edit::LogLabour(LabourEntry {
        technician: who.into(),
        date,
        minutes,
        note: None,
    })
}

fn parts(qty: u32, cents: i64, date: Date) -> Edit {
    Edit::UsePart(PartUsage {
        part: "p".into(),
        quantity: qty,
        unit_cost: Money::from_minor(cents),
        date,
    })
}

/// A work order in progress with the given labour and parts.
async fn work_order(store: &Store, site: &str, asset: &str, edits: Vec<Edit>) -> WorkOrderId {
    let id = create_wo(store, new_wo(site, asset, "costed"), T0)
        .await
        .work_order
        .id;
    let s = sup(site);
    let mut tx = store.transaction().await.unwrap();
    let users = BTreeSet::from([UserId::from("ana")]);
    work_orders::transition(&mut tx, &id, &Action::Assign { users }, &s, at(1), None)
        .await
        .unwrap();
    work_orders::transition(&mut tx, &id, &Action::Start, &s, at(2), None)
        .await
        .unwrap();
    for e in edits {
        work_orders::edit(&mut tx, &id, e, &s, at(3), None)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    id
}

fn m(cents: i64) -> Money {
    Money::from_minor(cents)
}

fn ym(year: i32, month: u8) -> YearMonth {
    YearMonth { year, month }
}

async fn cost_rollups(store: Store) {
    setup(
        &store,
        &["s1", "s2"],
        &[("a1", "s1"), ("a2", "s1"), ("b1", "s2")],
    )
    .await;
    // 90 min at 60.00/h = 90.00; 20 min at 45.50/h = 15.1666 -> 15.17;
    // 3 x 12.99 = 38.97. Total 144.14.
    let w1 = work_order(
        &store,
        "s1",
        "a1",
        vec![
            labour("ana", date!(2025 - 01 - 31), 90),
            labour("bo", date!(2025 - 02 - 01), 20),
            parts(3, 1_299, date!(2025 - 02 - 01)),
        ],
    )
    .await;
    // 2 x 2.50 = 5.00 in February.
    work_order(
        &store,
        "s1",
        "a2",
        vec![parts(2, 250, date!(2025 - 02 - 14))],
    )
    .await;
    // 60 min at 45.50/h = 45.50 in December.
    work_order(
        &store,
        "s2",
        "b1",
        vec![labour("bo", date!(2024 - 12 - 31), 60)],
    )
    .await;
    // No costs at all: never picked.
    work_order(&store, "s2", "b1", vec![]).await;

    // Rates from the users table.
    for (id, cents) in [("ana", 6_000), ("bo", 4_550)] {
        crate::store::both!(&store, Store, p => {
            sqlx::query(
                "INSERT INTO users (id, username, display_name, password_hash, kind, is_admin, \
                 hourly_rate_cents, disabled, created_ms, updated_ms) \
                 VALUES ($1, $1, $1, 'x', 'staff', FALSE, $2, FALSE, 0, 0)",
            )
            .bind(id)
            .bind(cents)
            .execute(p)
            .await
            .unwrap();
        });
    }
    let rates = costs::user_rates(&store).await.unwrap();
    assert_eq!(
        rates,
        BTreeMap::from([
            (UserId::from("ana"), m(6_000)),
            (UserId::from("bo"), m(4_550))
        ])
    );

    let c = costs::work_order_cost(&store, &w1, &rates).await.unwrap();
    assert_eq!(
        (c.labour, c.parts, c.total),
        (m(10_517), m(3_897), m(14_414))
    );

    let all = costs::rollup(
        &store,
        &SiteScope::All,
        date!(2024 - 12 - 01),
        date!(2025 - 02 - 28),
        &rates,
    )
    .await
    .unwrap();
    assert_eq!(
        all,
        CostRollup {
            labour: m(9_000 + 1_517 + 4_550),
            parts: m(3_897 + 500),
            total: m(19_464),
            by_asset: BTreeMap::from([
                (AssetId::from("a1"), m(14_414)),
                (AssetId::from("a2"), m(500)),
                (AssetId::from("b1"), m(4_550)),
            ]),
            by_site: BTreeMap::from([
                (SiteId::from("s1"), m(14_914)),
                (SiteId::from("s2"), m(4_550))
            ]),
            by_month: BTreeMap::from([
                (ym(2024, 12), m(4_550)),
                (ym(2025, 1), m(9_000)),
                (ym(2025, 2), m(1_517 + 3_897 + 500)),
            ]),
            work_orders: 3,
        }
    );

    // One site, February only: lines outside the range are left out even
    // when their work order is in.
    let s1 = SiteScope::Only(BTreeSet::from([SiteId::from("s1")]));
    let feb = costs::rollup(
        &store,
        &s1,
        date!(2025 - 02 - 01),
        date!(2025 - 02 - 28),
        &rates,
    )
    .await
    .unwrap();
    assert_eq!((feb.total, feb.work_orders), (m(5_914), 2));
    assert_eq!(feb.by_asset[&AssetId::from("a1")], m(1_517 + 3_897));
    assert_eq!(feb.by_month.len(), 1);
    let one_day = costs::rollup(
        &store,
        &SiteScope::All,
        date!(2025 - 01 - 31),
        date!(2025 - 01 - 31),
        &rates,
    )
    .await
    .unwrap();
    assert_eq!(
        (one_day.total, one_day.labour, one_day.parts),
        (m(9_000), m(9_000), m(0))
    );
    let none = costs::rollup(
        &store,
        &SiteScope::All,
        date!(2025 - 03 - 01),
        date!(2025 - 12 - 31),
        &rates,
    )
    .await
    .unwrap();
    assert_eq!(none, CostRollup::default());

    // A technician without a rate is an error, never a zero.
    let partial: BTreeMap<UserId, Money> = BTreeMap::from([(UserId::from("ana"), m(6_000))]);
    assert_eq!(
        code(costs::work_order_cost(&store, &w1, &partial).await),
        "missing_rate"
    );
    let r = costs::rollup(
        &store,
        &SiteScope::All,
        date!(2024 - 01 - 01),
        date!(2025 - 12 - 31),
        &partial,
    )
    .await;
    assert_eq!(code(r), "missing_rate");
}

on_both!(cost_rollups);
