//! Parts stock: the domain operations through the store, and what
//! completion and cancellation do to it.

use super::super::parts::{self, NewPart, StoredPart};
use super::super::{work_orders, CmmsError};
use super::{at, code, count, create_wo, new_wo, on_both, setup, sup, tech, T0};
use crate::store::Store;
use dcmms_shared::cmms::work_order::PartUsage;
use dcmms_shared::cmms::{
    Action, Actor, Edit, ItemInput, Money, PartId, StockError, UserId, WorkOrderId,
};
use std::collections::{BTreeMap, BTreeSet};
use time::macros::date;

async fn add_part(store: &Store, part: &str, qty: u32) {
    let mut tx = store.transaction().await.unwrap();
    let new = NewPart {
        site: "s1".into(),
        part: part.into(),
        name: format!("Part {part}"),
        unit: "pcs".into(),
        unit_cost: Money::from_minor(450),
        reorder_level: Some(2),
    };
    parts::create(&mut tx, new, T0).await.unwrap();
    if qty > 0 {
        parts::receive(&mut tx, &"s1".into(), &part.into(), qty, T0)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn stock(store: &Store, part: &str) -> StoredPart {
    parts::get(store, &"s1".into(), &part.into()).await.unwrap()
}

/// (on hand, reserved) of a part.
async fn levels(store: &Store, part: &str) -> (u32, u32) {
    let p = stock(store, part).await;
    (p.stock.on_hand(), p.stock.reserved())
}

async fn stock_operations(store: Store) {
    setup(&store, &["s1"], &[("a1", "s1")]).await;
    add_part(&store, "fuse", 10).await;
    let wo1 = create_wo(&store, new_wo("s1", "a1", "one"), T0)
        .await
        .work_order
        .id;
    let wo2 = create_wo(&store, new_wo("s1", "a1", "two"), T0)
        .await
        .work_order
        .id;
    let (site, fuse): (_, PartId) = ("s1".into(), "fuse".into());

    let mut tx = store.transaction().await.unwrap();
    let again = NewPart {
        site: "s1".into(),
        part: "fuse".into(),
        name: "x".into(),
        unit: "pcs".into(),
        unit_cost: Money::ZERO,
        reorder_level: None,
    };
    assert_eq!(
        code(parts::create(&mut tx, again.clone(), T0).await),
        "duplicate"
    );
    let elsewhere = NewPart {
        site: "nowhere".into(),
        ..again
    };
    assert_eq!(
        code(parts::create(&mut tx, elsewhere, T0).await),
        "not_found"
    );
    drop(tx);

    let mut tx = store.transaction().await.unwrap();
    assert_eq!(
        code(parts::receive(&mut tx, &site, &fuse, 0, T0).await),
        "zero_quantity"
    );
    let c = parts::reserve_part(&mut tx, &wo1, &fuse, 4, T0)
        .await
        .unwrap();
    assert_eq!(
        (c.before.stock.reserved(), c.after.stock.reserved()),
        (0, 4)
    );
    let err = parts::reserve_part(&mut tx, &wo2, &fuse, 7, T0)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            CmmsError::Stock(StockError::Insufficient {
                requested: 7,
                available: 6,
                ..
            })
        ),
        "{err:?}"
    );
    parts::release_part(&mut tx, &wo1, &fuse, 1, T0)
        .await
        .unwrap();
    assert_eq!(
        code(parts::release_part(&mut tx, &wo1, &fuse, 5, T0).await),
        "not_reserved"
    );
    assert_eq!(
        code(parts::adjust(&mut tx, &site, &fuse, 2, T0).await),
        "count_below_reserved"
    );
    parts::adjust(&mut tx, &site, &fuse, 8, T0).await.unwrap();
    let c = parts::consume(&mut tx, &wo1, &fuse, 1, T0).await.unwrap();
    assert_eq!((c.after.stock.on_hand(), c.after.stock.reserved()), (7, 2));
    assert_eq!(
        code(parts::consume(&mut tx, &wo2, &fuse, 1, T0).await),
        "not_reserved"
    );
    assert_eq!(
        code(parts::reserve_part(&mut tx, &"WO-999999".into(), &fuse, 1, T0).await),
        "not_found"
    );
    assert_eq!(
        code(parts::receive(&mut tx, &site, &"bolt".into(), 1, T0).await),
        "not_found"
    );
    let c = parts::set_details(
        &mut tx,
        &site,
        &fuse,
        "Fuse 10 A".into(),
        Money::from_minor(500),
        None,
        T0,
    )
    .await
    .unwrap();
    assert_eq!(c.before.name, "Part fuse");
    tx.commit().await.unwrap();

    let p = stock(&store, "fuse").await;
    assert_eq!(
        (
            p.name.as_str(),
            p.stock.unit_cost.minor(),
            p.stock.reorder_level
        ),
        ("Fuse 10 A", 500, None)
    );
    assert_eq!(
        (
            p.stock.on_hand(),
            p.stock.reserved(),
            p.stock.reserved_for(&wo1)
        ),
        (7, 2, 2)
    );
    assert_eq!(parts::list(&store, &site).await.unwrap(), [p]);
    assert_eq!(
        parts::reservations_for(&store, &wo1).await.unwrap(),
        BTreeMap::from([(fuse.clone(), 2)])
    );
    assert_eq!(count(&store, "part_consumptions").await, 1);

    // Finished work takes no reservations; cancelling gives them back.
    let s = sup("s1");
    let mut tx = store.transaction().await.unwrap();
    let cancel = Action::Cancel {
        reason: "not needed".into(),
    };
    let change = work_orders::transition(&mut tx, &wo1, &cancel, &s, at(1), None)
        .await
        .unwrap();
    assert_eq!(change.stock.len(), 1);
    assert_eq!(change.stock[0].after.reserved_for(&wo1), 0);
    assert_eq!(
        code(parts::reserve_part(&mut tx, &wo1, &fuse, 1, T0).await),
        "not_editable_in_state"
    );
    tx.commit().await.unwrap();
    assert_eq!(levels(&store, "fuse").await, (7, 0));
    assert!(parts::reservations_for(&store, &wo1)
        .await
        .unwrap()
        .is_empty());
}

on_both!(stock_operations);

fn use_part(part: &str, quantity: u32) -> Edit {
    Edit::UsePart(PartUsage {
        part: part.into(),
        quantity,
        unit_cost: Money::from_minor(450),
        date: date!(2025 - 03 - 03),
    })
}

async fn run(store: &Store, id: &WorkOrderId, steps: Vec<(Action, Actor)>) {
    let mut tx = store.transaction().await.unwrap();
    for (i, (action, actor)) in steps.iter().enumerate() {
        work_orders::transition(&mut tx, id, action, actor, at(i as i64 + 1), None)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn edit(
    store: &Store,
    id: &WorkOrderId,
    e: Edit,
    actor: &Actor,
) -> work_orders::WorkOrderChange {
    let mut tx = store.transaction().await.unwrap();
    let c = work_orders::edit(&mut tx, id, e, actor, at(5), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c
}

async fn completion_consumes_stock(store: Store) {
    setup(&store, &["s1"], &[("a1", "s1")]).await;
    // "zz-filter" sorts after "fuse": the fuse is settled in memory before
    // the filter's shortage is found, and must still not be written.
    add_part(&store, "fuse", 10).await;
    add_part(&store, "zz-filter", 1).await;
    let id = create_wo(&store, new_wo("s1", "a1", "Swap fuses"), T0)
        .await
        .work_order
        .id;
    let s = sup("s1");
    let ana = tech("ana", "s1");
    let users = BTreeSet::from([UserId::from("ana")]);
    run(
        &store,
        &id,
        vec![
            (
                Action::Assign {
                    users: users.clone(),
                },
                s.clone(),
            ),
            (Action::Start, ana.clone()),
        ],
    )
    .await;
    let mut tx = store.transaction().await.unwrap();
    parts::reserve_part(&mut tx, &id, &"fuse".into(), 3, T0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let fan = Edit::RecordItem {
        key: "fan".into(),
        input: ItemInput::Check { passed: true },
    };
    edit(&store, &id, fan, &ana).await;
    edit(&store, &id, use_part("fuse", 2), &ana).await;
    edit(&store, &id, use_part("zz-filter", 2), &ana).await;
    let before = work_orders::get(&store, &id).await.unwrap();

    // Short of filters: the transition fails with the stock error and,
    // even committed, changes nothing.
    let mut tx = store.transaction().await.unwrap();
    let err = work_orders::transition(&mut tx, &id, &Action::Complete, &ana, at(6), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            CmmsError::Stock(StockError::Insufficient { part, requested: 2, available: 1 })
                if part.as_str() == "zz-filter"
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "insufficient_stock");
    tx.commit().await.unwrap();
    assert_eq!(work_orders::get(&store, &id).await.unwrap(), before);
    assert_eq!(levels(&store, "fuse").await, (10, 3));
    assert_eq!(levels(&store, "zz-filter").await, (1, 0));

    // With enough stock, completion consumes what was used and releases
    // the rest of the reservation.
    let mut tx = store.transaction().await.unwrap();
    parts::receive(&mut tx, &"s1".into(), &"zz-filter".into(), 1, T0)
        .await
        .unwrap();
    let done = work_orders::transition(&mut tx, &id, &Action::Complete, &ana, at(6), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(done.stock.len(), 2);
    assert_eq!(levels(&store, "fuse").await, (8, 0));
    assert_eq!(levels(&store, "zz-filter").await, (0, 0));

    // Parts recorded after completion leave the shelf at once.
    edit(&store, &id, use_part("fuse", 1), &s).await;
    assert_eq!(levels(&store, "fuse").await, (7, 0));
    let mut tx = store.transaction().await.unwrap();
    let r = work_orders::edit(&mut tx, &id, use_part("zz-filter", 1), &s, at(7), None).await;
    assert_eq!(code(r), "insufficient_stock");
    drop(tx);

    // Reopened and completed again: only the new usage is consumed.
    run(
        &store,
        &id,
        vec![
            (
                Action::Reopen {
                    reason: "fuse blew again".into(),
                },
                s.clone(),
            ),
            (Action::Assign { users }, s.clone()),
            (Action::Start, ana.clone()),
        ],
    )
    .await;
    edit(&store, &id, use_part("fuse", 2), &ana).await;
    run(&store, &id, vec![(Action::Complete, ana.clone())]).await;
    assert_eq!(levels(&store, "fuse").await, (5, 0));
    assert_eq!(levels(&store, "zz-filter").await, (0, 0));
    let consumed: Vec<(String, i64)> = crate::store::both!(&store, Store, p => {
        sqlx::query_as("SELECT part, qty FROM part_consumptions WHERE work_order = $1 ORDER BY part")
            .bind(id.as_str())
            .fetch_all(p)
            .await
            .unwrap()
    });
    assert_eq!(
        consumed,
        [("fuse".to_owned(), 5), ("zz-filter".to_owned(), 2)]
    );
}

on_both!(completion_consumes_stock);
