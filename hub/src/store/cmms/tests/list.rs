//! Listing: every filter and sort order against a model computed from the
//! stored work orders, and keyset pages while rows are being inserted.

use super::super::work_orders::{self, Sort, SortField, StoredWorkOrder, WorkOrderFilter};
use super::super::{date_str, enum_str, ms};
use super::{at, code, create_wo, new_wo, on_both, setup, sup};
use crate::store::Store;
use dcmms_shared::cmms::{Action, Priority, SiteId, SiteScope, State, UserId, WorkOrder, WorkType};
use std::collections::{BTreeMap, BTreeSet};
use time::macros::date;

const SORTS: [SortField; 4] = [
    SortField::CreatedAt,
    SortField::Due,
    SortField::Priority,
    SortField::UpdatedAt,
];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Int(i64),
    Text(String),
}

fn key(wo: &WorkOrder, field: SortField, updated: &BTreeMap<String, i64>) -> Key {
    match field {
        SortField::CreatedAt => Key::Int(ms(wo.created_at)),
        SortField::UpdatedAt => Key::Int(updated[wo.id.as_str()]),
        SortField::Due => Key::Text(wo.due.map_or_else(|| "9999-12-31".to_owned(), date_str)),
        SortField::Priority => Key::Text(enum_str(&wo.priority).unwrap()),
    }
}

/// Ids in the order the listing must return them.
fn expected(
    all: &[StoredWorkOrder],
    keep: &dyn Fn(&WorkOrder) -> bool,
    sort: Sort,
    updated: &BTreeMap<String, i64>,
) -> Vec<String> {
    let mut rows: Vec<(Key, String)> = all
        .iter()
        .map(|s| &s.work_order)
        .filter(|wo| keep(wo))
        .map(|wo| (key(wo, sort.field, updated), wo.id.0.clone()))
        .collect();
    rows.sort();
    if sort.descending {
        rows.reverse();
    }
    rows.into_iter().map(|(_, id)| id).collect()
}

/// Every id the listing returns, page by page.
async fn walk(store: &Store, filter: &WorkOrderFilter, sort: Sort, limit: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = work_orders::list(store, filter, sort, cursor.as_deref(), Some(limit))
            .await
            .unwrap();
        assert!(page.items.len() <= limit as usize);
        ids.extend(page.items.iter().map(|s| s.work_order.id.0.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return ids,
        }
    }
}

async fn updated_map(store: &Store) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> = crate::store::both!(store, Store, p => {
        sqlx::query_as("SELECT id, updated_ms FROM work_orders").fetch_all(p).await.unwrap()
    });
    rows.into_iter().collect()
}

fn scope(sites: &[&str]) -> SiteScope {
    SiteScope::Only(sites.iter().map(|s| SiteId::from(*s)).collect())
}

async fn filters_and_sorts(store: Store) {
    setup(
        &store,
        &["s1", "s2", "s3"],
        &[("a1", "s1"), ("a2", "s1"), ("b1", "s2"), ("c1", "s3")],
    )
    .await;
    let places = [("s1", "a1"), ("s1", "a2"), ("s2", "b1"), ("s3", "c1")];
    let types = [
        WorkType::Corrective,
        WorkType::Preventive,
        WorkType::Inspection,
    ];
    for i in 0..16i64 {
        let (site, asset) = places[i as usize % 4];
        let title = if i % 5 == 0 {
            format!("Replace fan {i}")
        } else {
            format!("Inspect {i}")
        };
        let mut new = new_wo(site, asset, &title);
        new.priority = Priority::ALL[((i + i / 4) % 4) as usize];
        new.work_type = types[i as usize % 3];
        new.due = (i % 3 != 0).then(|| date!(2025 - 03 - 10) + time::Duration::days(i * 7 % 5));
        // Creation times repeat: ties are broken by id.
        let wo = create_wo(&store, new, at(i % 7)).await;
        let id = wo.work_order.id;
        let mut tx = store.transaction().await.unwrap();
        let assign = |users: &[&str]| Action::Assign {
            users: users.iter().map(|u| UserId::from(*u)).collect(),
        };
        let actions = match (i % 4, i % 5) {
            // Changes after the assignment: the assignee rows' copies of
            // the state and sort keys follow.
            (1, _) if i == 5 => vec![
                assign(&["ana"]),
                Action::Schedule {
                    date: date!(2025 - 03 - 20),
                },
            ],
            (1, _) if i == 9 => vec![
                assign(&["ana"]),
                Action::Cancel {
                    reason: "dup".into(),
                },
            ],
            (1, _) => vec![assign(&["ana"])],
            (2, _) => vec![assign(&["bo", "ana"])],
            (_, 3) => vec![Action::Cancel {
                reason: "dup".into(),
            }],
            _ => vec![],
        };
        for (k, action) in actions.iter().enumerate() {
            work_orders::transition(
                &mut tx,
                &id,
                action,
                &sup(site),
                at(20 + i + k as i64),
                None,
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let mut all = Vec::new();
    for n in 1..=16 {
        all.push(
            work_orders::get(&store, &super::super::work_order_id(n))
                .await
                .unwrap(),
        );
    }
    let updated = updated_map(&store).await;
    assert!(all.iter().any(|s| s.work_order.state == State::Cancelled));

    type Keep = Box<dyn Fn(&WorkOrder) -> bool>;
    let ana = UserId::from("ana");
    let bo = UserId::from("bo");
    let cases: Vec<(WorkOrderFilter, Keep)> = vec![
        (WorkOrderFilter::new(SiteScope::All), Box::new(|_| true)),
        (
            WorkOrderFilter::new(scope(&["s1"])),
            Box::new(|w| w.site.as_str() == "s1"),
        ),
        (
            WorkOrderFilter::new(scope(&["s2", "s3"])),
            Box::new(|w| w.site.as_str() != "s1"),
        ),
        (
            WorkOrderFilter {
                asset: Some("a2".into()),
                ..WorkOrderFilter::new(SiteScope::All)
            },
            Box::new(|w| w.asset.as_str() == "a2"),
        ),
        (
            WorkOrderFilter {
                states: vec![State::Assigned],
                ..WorkOrderFilter::new(SiteScope::All)
            },
            Box::new(|w| w.state == State::Assigned),
        ),
        (
            WorkOrderFilter {
                states: vec![State::Open, State::Cancelled],
                ..WorkOrderFilter::new(SiteScope::All)
            },
            Box::new(|w| matches!(w.state, State::Open | State::Cancelled)),
        ),
        (
            WorkOrderFilter {
                assignee: Some(ana.clone()),
                ..WorkOrderFilter::new(SiteScope::All)
            },
            Box::new(move |w| w.assignees.contains(&ana)),
        ),
        (
            WorkOrderFilter {
                assignee: Some(bo.clone()),
                ..WorkOrderFilter::new(scope(&["s2"]))
            },
            Box::new(move |w| w.assignees.contains(&bo) && w.site.as_str() == "s2"),
        ),
        (
            WorkOrderFilter {
                due_from: Some(date!(2025 - 03 - 11)),
                due_to: Some(date!(2025 - 03 - 12)),
                ..WorkOrderFilter::new(SiteScope::All)
            },
            Box::new(|w| {
                w.due
                    .is_some_and(|d| d >= date!(2025 - 03 - 11) && d <= date!(2025 - 03 - 12))
            }),
        ),
        (
            WorkOrderFilter {
                work_types: vec![WorkType::Preventive],
                ..WorkOrderFilter::new(SiteScope::All)
            },
            Box::new(|w| w.work_type == WorkType::Preventive),
        ),
        (
            WorkOrderFilter {
                priorities: vec![Priority::P1, Priority::P2],
                ..WorkOrderFilter::new(SiteScope::All)
            },
            Box::new(|w| w.priority <= Priority::P2),
        ),
        (
            WorkOrderFilter {
                title_contains: Some("FAN".into()),
                ..WorkOrderFilter::new(SiteScope::All)
            },
            Box::new(|w| w.title.contains("fan")),
        ),
        (
            WorkOrderFilter {
                states: vec![State::Assigned],
                assignee: Some("ana".into()),
                ..WorkOrderFilter::new(scope(&["s1"]))
            },
            Box::new(|w| {
                w.site.as_str() == "s1"
                    && w.state == State::Assigned
                    && w.assignees.contains(&UserId::from("ana"))
            }),
        ),
        (
            WorkOrderFilter {
                assignee: Some("ana".into()),
                states: vec![State::Cancelled],
                ..WorkOrderFilter::new(SiteScope::All)
            },
            Box::new(|w| w.state == State::Cancelled && w.assignees.contains(&UserId::from("ana"))),
        ),
        (
            // Through the join: a filter only the work-order row has.
            WorkOrderFilter {
                assignee: Some("ana".into()),
                work_types: vec![WorkType::Corrective, WorkType::Inspection],
                priorities: vec![Priority::P2, Priority::P3, Priority::P4],
                ..WorkOrderFilter::new(scope(&["s1", "s2"]))
            },
            Box::new(|w| {
                w.assignees.contains(&UserId::from("ana"))
                    && w.work_type != WorkType::Preventive
                    && w.priority >= Priority::P2
                    && w.site.as_str() != "s3"
            }),
        ),
        (
            WorkOrderFilter {
                due_to: Some(date!(2025 - 03 - 11)),
                ..WorkOrderFilter::new(SiteScope::All)
            },
            Box::new(|w| w.due.is_some_and(|d| d <= date!(2025 - 03 - 11))),
        ),
        (
            WorkOrderFilter {
                assignee: Some("ana".into()),
                due_from: Some(date!(2025 - 03 - 12)),
                ..WorkOrderFilter::new(SiteScope::All)
            },
            Box::new(|w| {
                w.assignees.contains(&UserId::from("ana"))
                    && w.due.is_some_and(|d| d >= date!(2025 - 03 - 12))
            }),
        ),
        (WorkOrderFilter::new(scope(&[])), Box::new(|_| false)),
    ];
    for (i, (filter, keep)) in cases.iter().enumerate() {
        for field in SORTS {
            for descending in [false, true] {
                let sort = Sort { field, descending };
                let want = expected(&all, keep.as_ref(), sort, &updated);
                assert!(
                    i == cases.len() - 1 || !want.is_empty(),
                    "case {i} selects nothing"
                );
                assert_eq!(
                    walk(&store, filter, sort, 3).await,
                    want,
                    "case {i} {sort:?}"
                );
            }
        }
    }
    // One page holds whole documents and versions.
    let page = work_orders::list(
        &store,
        &WorkOrderFilter::new(SiteScope::All),
        Sort::default(),
        None,
        Some(1000),
    )
    .await
    .unwrap();
    assert_eq!(page.next_cursor, None);
    let by_id: BTreeMap<_, _> = all.iter().map(|s| (s.work_order.id.clone(), s)).collect();
    for item in &page.items {
        assert_eq!(&item, &by_id[&item.work_order.id]);
    }
    // Limits are clamped; cursors are checked.
    let page = work_orders::list(
        &store,
        &WorkOrderFilter::new(SiteScope::All),
        Sort::default(),
        None,
        Some(0),
    )
    .await
    .unwrap();
    assert_eq!(page.items.len(), 1);
    let cursor = page.next_cursor.unwrap();
    let other = Sort {
        field: SortField::Due,
        descending: false,
    };
    let filter = WorkOrderFilter::new(SiteScope::All);
    assert_eq!(
        code(work_orders::list(&store, &filter, other, Some(&cursor), None).await),
        "invalid_cursor"
    );
    assert_eq!(
        code(work_orders::list(&store, &filter, Sort::default(), Some("zz"), None).await),
        "invalid_cursor"
    );
    let desc = Sort {
        field: SortField::CreatedAt,
        descending: true,
    };
    assert_eq!(
        code(work_orders::list(&store, &filter, desc, Some(&cursor), None).await),
        "invalid_cursor"
    );
}

on_both!(filters_and_sorts);

async fn pages_while_inserting(store: Store) {
    setup(&store, &["s1"], &[("a1", "s1")]).await;
    let mut originals = BTreeSet::new();
    for i in 0..25i64 {
        let mut new = new_wo("s1", "a1", &format!("Original {i}"));
        new.due = Some(date!(2025 - 04 - 01) + time::Duration::days(i % 6));
        originals.insert(create_wo(&store, new, at(i / 2)).await.work_order.id.0);
    }
    let mut inserted = 0i64;
    for field in SORTS {
        for descending in [false, true] {
            let sort = Sort { field, descending };
            let filter = WorkOrderFilter::new(SiteScope::All);
            let mut seen: Vec<String> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = work_orders::list(&store, &filter, sort, cursor.as_deref(), Some(4))
                    .await
                    .unwrap();
                seen.extend(page.items.iter().map(|s| s.work_order.id.0.clone()));
                // Rows land before and after the cursor between pages.
                inserted += 1;
                let mut new = new_wo("s1", "a1", &format!("Inserted {inserted}"));
                new.due = Some(date!(2025 - 04 - 01) + time::Duration::days(inserted % 7));
                new.priority = Priority::ALL[inserted as usize % 4];
                create_wo(&store, new, at(inserted % 15)).await;
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let unique: BTreeSet<&String> = seen.iter().collect();
            assert_eq!(unique.len(), seen.len(), "{sort:?}: a row was listed twice");
            let visited: Vec<&String> = seen.iter().filter(|id| originals.contains(*id)).collect();
            assert_eq!(
                visited.len(),
                originals.len(),
                "{sort:?}: an original row was skipped"
            );
        }
    }
}

on_both!(pages_while_inserting);
