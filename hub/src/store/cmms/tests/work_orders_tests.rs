//! Work orders: round trips, transitions, refusals and version conflicts.

use super::super::work_orders::{self, StoredWorkOrder};
use super::super::{conn, CmmsError};
use super::{at, code, create_wo, new_wo, on_both, setup, sup, tech, T0};
use crate::store::Store;
use dcmms_shared::cmms::work_order::LabourEntry;
use dcmms_shared::cmms::{
    Action, Actor, Edit, ItemInput, Priority, Role, State, TaskKind, TaskSpec, TransitionError,
    UserId, WorkOrderId,
};
use std::collections::BTreeSet;
use time::macros::date;

async fn transition(
    store: &Store,
    id: &WorkOrderId,
    action: Action,
    actor: &Actor,
    hours: i64,
) -> work_orders::WorkOrderChange {
    let mut tx = store.transaction().await.unwrap();
    let change = work_orders::transition(&mut tx, id, &action, actor, at(hours), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    change
}

async fn edit(
    store: &Store,
    id: &WorkOrderId,
    e: Edit,
    actor: &Actor,
    hours: i64,
) -> StoredWorkOrder {
    let mut tx = store.transaction().await.unwrap();
    let change = work_orders::edit(&mut tx, id, e, actor, at(hours), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    change.after
}

async fn round_trip_and_lifecycle(store: Store) {
    setup(&store, &["s1", "s2"], &[("inv-1", "s1"), ("inv-2", "s2")]).await;
    let mut new = new_wo("s1", "inv-1", "Replace fan");
    new.due = Some(date!(2025 - 03 - 10));
    new.sla_hours = Some(30);
    new.priority = Priority::P1;
    new.checklist.push(TaskSpec::new(
        "temp",
        "Cabinet temperature",
        TaskKind::Reading {
            unit: "degC".into(),
            min: Some(-10.0),
            max: Some(60.0),
        },
        false,
    ));
    let created = create_wo(&store, new.clone(), T0).await;
    assert_eq!(created.work_order.id.as_str(), "WO-000001");
    assert_eq!(
        (created.version, created.work_order.state),
        (1, State::Open)
    );
    assert_eq!(
        work_orders::get(&store, &created.work_order.id)
            .await
            .unwrap(),
        created
    );

    // A technician's work order is a request; a given id is kept.
    let mut tx = store.transaction().await.unwrap();
    let request = work_orders::create(
        &mut tx,
        new_wo("s1", "inv-1", "Noise"),
        &tech("ana", "s1"),
        T0,
    )
    .await
    .unwrap();
    assert_eq!(request.work_order.id.as_str(), "WO-000002");
    assert_eq!(request.work_order.state, State::Requested);
    let mut given = new_wo("s1", "inv-1", "From a gateway");
    given.id = "gw-7-0001".into();
    let stored = work_orders::create(&mut tx, given.clone(), &sup("s1"), T0)
        .await
        .unwrap();
    assert_eq!(stored.work_order.id.as_str(), "gw-7-0001");
    assert_eq!(
        code(work_orders::create(&mut tx, new_wo("s1", "inv-2", "x"), &sup("s1"), T0).await),
        "asset_at_other_site"
    );
    assert_eq!(
        code(work_orders::create(&mut tx, new_wo("s1", "ghost", "x"), &sup("s1"), T0).await),
        "not_found"
    );
    assert_eq!(
        code(work_orders::create(&mut tx, new_wo("s2", "inv-2", "x"), &sup("s1"), T0).await),
        "wrong_site"
    );
    tx.commit().await.unwrap();
    let mut tx = store.transaction().await.unwrap();
    assert_eq!(
        code(work_orders::create(&mut tx, given, &sup("s1"), T0).await),
        "duplicate"
    );
    drop(tx);

    // The whole lifecycle, with results, labour, comments and a hold.
    let id = created.work_order.id.clone();
    let s = sup("s1");
    let ana = tech("ana", "s1");
    let c = transition(
        &store,
        &id,
        Action::Schedule {
            date: date!(2025 - 03 - 05),
        },
        &s,
        1,
    )
    .await;
    assert_eq!((c.before, c.after.version), (created.clone(), 2));
    let users = BTreeSet::from([UserId::from("ana"), UserId::from("bo")]);
    transition(&store, &id, Action::Assign { users }, &s, 2).await;
    transition(&store, &id, Action::Start, &ana, 3).await;
    let fan = Edit::RecordItem {
        key: "fan".into(),
        input: ItemInput::Check { passed: true },
    };
    edit(&store, &id, fan, &ana, 4).await;
    let temp = Edit::RecordItem {
        key: "temp".into(),
        input: ItemInput::Reading { value: 71.5 },
    };
    edit(&store, &id, temp, &ana, 4).await;
    let labour = LabourEntry {
        technician: "ana".into(),
        date: date!(2025 - 03 - 03),
        minutes: 95,
        note: Some("fan swapped".into()),
    };
    edit(&store, &id, Edit::LogLabour(labour), &ana, 5).await;
    edit(
        &store,
        &id,
        Edit::Comment {
            text: "bearing worn".into(),
        },
        &ana,
        5,
    )
    .await;
    transition(
        &store,
        &id,
        Action::Hold {
            reason: "waiting for the crane".into(),
        },
        &ana,
        6,
    )
    .await;
    let held = work_orders::get(&store, &id).await.unwrap();
    assert_eq!(
        held.work_order.hold_reason.as_deref(),
        Some("waiting for the crane")
    );
    transition(&store, &id, Action::Resume, &ana, 7).await;
    let done = transition(&store, &id, Action::Complete, &ana, 8).await;
    assert_eq!(done.after.work_order.completed_at(), Some(at(8)));
    assert!(done.stock.is_empty());
    transition(&store, &id, Action::Verify, &s, 9).await;
    let closed = transition(&store, &id, Action::Close, &s, 10).await;
    assert_eq!(closed.after.work_order.state, State::Closed);
    assert_eq!(closed.after.version, 13);
    // Every field, history included, reads back exactly.
    let stored = work_orders::get(&store, &id).await.unwrap();
    assert_eq!(stored, closed.after);
    let wo = &stored.work_order;
    assert_eq!(wo.history.len(), 8);
    assert_eq!(wo.labour.len(), 1);
    assert_eq!(wo.comments[0].text, "bearing worn");
    assert!(wo.checklist.blocking_items().is_empty());
    assert_eq!(wo.scheduled_for, Some(date!(2025 - 03 - 05)));
    assert_eq!((wo.sla_hours, wo.due), (30, Some(date!(2025 - 03 - 10))));
    // The assignee table follows the struct.
    let mut filter = work_orders::WorkOrderFilter::new(dcmms_shared::cmms::SiteScope::All);
    filter.assignee = Some("bo".into());
    let page = work_orders::list(&store, &filter, Default::default(), None, None)
        .await
        .unwrap();
    assert_eq!(page.items, [stored]);
}

on_both!(round_trip_and_lifecycle);

/// The raw row, to prove a refused change wrote nothing.
async fn raw_row(store: &Store, id: &WorkOrderId) -> (i64, String, i64, String) {
    let wo = work_orders::get(store, id).await.unwrap();
    let sql = "SELECT version, state, updated_ms FROM work_orders WHERE id = $1";
    let (v, s, u): (i64, String, i64) = crate::store::both!(store, Store, p => {
        sqlx::query_as(sql).bind(id.as_str()).fetch_one(p).await.unwrap()
    });
    (v, s, u, serde_json::to_string(&wo.work_order).unwrap())
}

async fn refusals_and_conflicts(store: Store) {
    setup(&store, &["s1"], &[("inv-1", "s1")]).await;
    let wo = create_wo(&store, new_wo("s1", "inv-1", "Trip"), T0).await;
    let id = wo.work_order.id.clone();
    let before = raw_row(&store, &id).await;

    let mut tx = store.transaction().await.unwrap();
    let err = work_orders::transition(&mut tx, &id, &Action::Start, &sup("s1"), at(1), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CmmsError::Domain(TransitionError::NotAllowedFromState {
                from: State::Open,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "not_allowed_from_state");
    let viewer = Actor::new("vic", Role::Viewer, "s1");
    let r = work_orders::transition(
        &mut tx,
        &id,
        &Action::Cancel { reason: "x".into() },
        &viewer,
        at(1),
        None,
    )
    .await;
    assert_eq!(code(r), "read_only_role");
    let r = work_orders::transition(
        &mut tx,
        &id,
        &Action::Cancel { reason: " ".into() },
        &sup("s1"),
        at(1),
        None,
    )
    .await;
    assert_eq!(code(r), "reason_required");
    let r = work_orders::edit(
        &mut tx,
        &id,
        Edit::Comment { text: "hi".into() },
        &tech("ana", "s2"),
        at(1),
        None,
    )
    .await;
    assert_eq!(code(r), "wrong_site");
    let r = work_orders::edit(
        &mut tx,
        &id,
        Edit::RecordItem {
            key: "fan".into(),
            input: ItemInput::Check { passed: true },
        },
        &sup("s1"),
        at(1),
        None,
    )
    .await;
    assert_eq!(code(r), "not_editable_in_state");
    let r = work_orders::transition(
        &mut tx,
        &"WO-999999".into(),
        &Action::Approve,
        &sup("s1"),
        at(1),
        None,
    )
    .await;
    assert_eq!(code(r), "not_found");
    // Even committed, the refusals changed nothing.
    tx.commit().await.unwrap();
    assert_eq!(raw_row(&store, &id).await, before);

    // Optimistic concurrency.
    let mut tx = store.transaction().await.unwrap();
    let action = Action::Schedule {
        date: date!(2025 - 03 - 04),
    };
    let err = work_orders::transition(&mut tx, &id, &action, &sup("s1"), at(1), Some(7))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CmmsError::Conflict {
                expected: 7,
                actual: 1
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "version_conflict");
    let ok = work_orders::transition(&mut tx, &id, &action, &sup("s1"), at(1), Some(1))
        .await
        .unwrap();
    assert_eq!(ok.after.version, 2);
    let r = work_orders::edit(
        &mut tx,
        &id,
        Edit::Comment {
            text: "late".into(),
        },
        &sup("s1"),
        at(2),
        Some(1),
    )
    .await;
    assert!(
        matches!(
            r,
            Err(CmmsError::Conflict {
                expected: 1,
                actual: 2
            })
        ),
        "{r:?}"
    );
    // The save itself checks the version it was given.
    let stale = wo.clone();
    let mut changed = stale.work_order.clone();
    changed.title = "stale write".into();
    let r = work_orders::save(&mut conn(&mut tx), &stale, &changed, at(2)).await;
    assert!(
        matches!(
            r,
            Err(CmmsError::Conflict {
                expected: 1,
                actual: 2
            })
        ),
        "{r:?}"
    );
    tx.commit().await.unwrap();
    let now = work_orders::get(&store, &id).await.unwrap();
    assert_eq!((now.version, now.work_order.state), (2, State::Scheduled));
    assert_eq!(now.work_order.title, "Trip");

    // Two writers holding the same version: exactly one wins.
    let attempt = |user: &'static str| {
        let store = store.clone();
        let id = id.clone();
        async move {
            let mut tx = store.transaction().await.unwrap();
            let users = BTreeSet::from([UserId::from(user)]);
            let r = work_orders::transition(
                &mut tx,
                &id,
                &Action::Assign { users },
                &sup("s1"),
                at(3),
                Some(2),
            )
            .await;
            if r.is_ok() {
                tx.commit().await.unwrap();
            }
            r.map(|c| c.after.version)
        }
    };
    let (a, b) = tokio::join!(attempt("ana"), attempt("bo"));
    let results = [a, b];
    assert_eq!(
        results.iter().filter(|r| matches!(r, Ok(3))).count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(
                r,
                Err(CmmsError::Conflict {
                    expected: 2,
                    actual: 3
                })
            ))
            .count(),
        1,
        "{results:?}"
    );
    let now = work_orders::get(&store, &id).await.unwrap();
    assert_eq!((now.version, now.work_order.assignees.len()), (3, 1));
}

on_both!(refusals_and_conflicts);
