//! Bulk seeding, and the listing queries on a seeded fleet.
//!
//! `seed_timing` seeds `DCMMS_SEED_WORK_ORDERS` work orders (default 2,000)
//! on `DCMMS_SEED_ASSETS` assets (default 400) and `DCMMS_SEED_SITES` sites
//! (default 10), prints how long it took, then times typical listing
//! queries; with `DCMMS_EXPLAIN=1` it also prints their query plans, and
//! with `DCMMS_SEED_KEEP=/path/file.db` it keeps a copy of the seeded SQLite
//! database. For
//! the benchmark-sized figures:
//! `DCMMS_SEED_WORK_ORDERS=100000 DCMMS_SEED_ASSETS=20000 cargo test -p
//! dcmms-hub seed_timing -- --nocapture --test-threads 1`.

use super::super::seed::seed;
use super::super::wo_list::{decode_cursor, list_query, Arg};
use super::super::work_orders::{self, Sort, SortField, WorkOrderFilter};
use super::super::{assets, costs};
use super::{count, on_both};
use crate::store::Store;
use dcmms_shared::cmms::{validate_hierarchy, Money, SiteId, SiteScope, State, UserId};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use time::macros::date;

async fn seeds_a_small_fleet(store: Store) {
    let calls = Cell::new(Vec::new());
    let report = seed(&store, 3, 60, 12_345, |n| {
        let mut v = calls.take();
        v.push(n);
        calls.set(v);
    })
    .await
    .unwrap();
    assert_eq!(
        (report.sites, report.assets, report.work_orders),
        (3, 60, 12_345)
    );
    assert_eq!(calls.take(), [10_000, 12_345]);
    assert_eq!(count(&store, "sites").await, 3);
    assert_eq!(count(&store, "assets").await, 60);
    assert_eq!(count(&store, "work_orders").await, 12_345);
    assert!(count(&store, "work_order_assignees").await > 1_000);

    let all = assets::list(&store, &SiteScope::All, None, 1000)
        .await
        .unwrap();
    let links: Vec<_> = all.iter().map(|a| a.link()).collect();
    let levels = validate_hierarchy(&links).unwrap();
    assert_eq!(levels.values().max(), Some(&3));

    // The ids continue after the seed; documents parse; filters work.
    let mut tx = store.transaction().await.unwrap();
    assert_eq!(
        work_orders::next_id(&mut tx).await.unwrap().as_str(),
        "WO-012346"
    );
    drop(tx);
    let mut filter = WorkOrderFilter::new(SiteScope::Only([SiteId::from("seed-001")].into()));
    filter.states = vec![State::InProgress];
    let page = work_orders::list(&store, &filter, Sort::default(), None, Some(1000))
        .await
        .unwrap();
    assert!(!page.items.is_empty());
    for item in &page.items {
        let wo = &item.work_order;
        assert_eq!(
            (wo.site.as_str(), wo.state),
            ("seed-001", State::InProgress)
        );
        assert!(!wo.assignees.is_empty());
    }
    let rates: BTreeMap<UserId, Money> = (0..40)
        .map(|i| (UserId(format!("tech-{i:02}")), Money::from_minor(5_000)))
        .collect();
    let rollup = costs::rollup(
        &store,
        &SiteScope::All,
        date!(2025 - 01 - 01),
        date!(2025 - 12 - 31),
        &rates,
    )
    .await
    .unwrap();
    assert!(rollup.work_orders > 1_000, "{}", rollup.work_orders);
    assert_eq!(rollup.total, rollup.labour);
    // Seeding twice into one database is refused.
    assert_eq!(
        seed(&store, 3, 60, 1, |_| {}).await.unwrap_err().code(),
        "internal"
    );
}

on_both!(seeds_a_small_fleet);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn explain(store: &Store, sql: &str, args: &[Arg]) -> String {
    let pg = matches!(store, Store::Postgres(_));
    let sql = if pg {
        format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}")
    } else {
        format!("EXPLAIN QUERY PLAN {sql}")
    };
    let mut lines: Vec<String> = Vec::new();
    crate::store::both!(store, Store, p => {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        for row in q.fetch_all(p).await.unwrap() {
            use sqlx::Row;
            let col = if pg { 0 } else { 3 };
            lines.push(row.try_get::<String, _>(col).unwrap());
        }
    });
    lines.join("\n    ")
}

async fn seed_timing(store: Store) {
    let (sites, assets, wos) = (
        env("DCMMS_SEED_SITES", 10),
        env("DCMMS_SEED_ASSETS", 400),
        env("DCMMS_SEED_WORK_ORDERS", 2_000),
    );
    let report = seed(&store, sites, assets, wos, |_| {}).await.unwrap();
    let secs = report.elapsed.as_secs_f64();
    println!(
        "seed on {}: {sites} sites, {assets} assets, {wos} work orders in {secs:.2} s ({:.0} work orders/s)",
        store.kind(),
        wos as f64 / secs
    );

    // A copy of the seeded SQLite database to look at by hand.
    if let (Store::Sqlite(p, _), Some(path)) = (&store, std::env::var_os("DCMMS_SEED_KEEP")) {
        let path = path.to_string_lossy().replace('\'', "''");
        let sql = format!("VACUUM INTO '{path}'");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(p)
            .await
            .unwrap();
    }
    let all = WorkOrderFilter::new(SiteScope::All);
    let one_site = WorkOrderFilter::new(SiteScope::Only([SiteId::from("seed-003")].into()));
    let three_sites = WorkOrderFilter::new(SiteScope::Only(
        ["seed-001", "seed-004", "seed-007"]
            .map(SiteId::from)
            .into(),
    ));
    let newest = Sort {
        field: SortField::CreatedAt,
        descending: true,
    };
    let by_due = Sort {
        field: SortField::Due,
        descending: false,
    };
    let by_priority = Sort {
        field: SortField::Priority,
        descending: false,
    };
    let by_updated = Sort {
        field: SortField::UpdatedAt,
        descending: true,
    };
    let second_page = work_orders::list(&store, &all, newest, None, None)
        .await
        .unwrap()
        .next_cursor
        .unwrap();
    let cases: Vec<(&str, WorkOrderFilter, Sort, Option<String>)> = vec![
        ("all, newest", all.clone(), newest, None),
        (
            "all, newest, page 2",
            all.clone(),
            newest,
            Some(second_page),
        ),
        ("one site, by due", one_site.clone(), by_due, None),
        (
            "three sites, by priority",
            three_sites.clone(),
            by_priority,
            None,
        ),
        ("three sites, by updated", three_sites, by_updated, None),
        (
            "backlog states, by due",
            WorkOrderFilter {
                states: vec![State::Open, State::Assigned, State::InProgress],
                ..all.clone()
            },
            by_due,
            None,
        ),
        (
            "assignee, newest",
            WorkOrderFilter {
                assignee: Some("tech-07".into()),
                ..all.clone()
            },
            newest,
            None,
        ),
        (
            "asset, newest",
            WorkOrderFilter {
                asset: Some("seed-a000123".into()),
                ..all.clone()
            },
            newest,
            None,
        ),
        (
            "one site, due range",
            WorkOrderFilter {
                due_from: Some(date!(2025 - 03 - 01)),
                due_to: Some(date!(2025 - 03 - 31)),
                ..one_site
            },
            by_due,
            None,
        ),
        (
            "all, title search",
            WorkOrderFilter {
                title_contains: Some("inverter 77".into()),
                ..all
            },
            newest,
            None,
        ),
    ];
    let explain_too = std::env::var_os("DCMMS_EXPLAIN").is_some();
    for (name, filter, sort, cursor) in cases {
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let page = work_orders::list(&store, &filter, sort, cursor.as_deref(), None)
                .await
                .unwrap();
            times.push(started.elapsed());
            assert!(page.items.len() <= 50);
        }
        times.sort();
        println!(
            "  {name:<28} median {:>7.2} ms  max {:>7.2} ms",
            times[10].as_secs_f64() * 1e3,
            times[19].as_secs_f64() * 1e3
        );
        if explain_too {
            let after = cursor.as_deref().map(|c| decode_cursor(sort, c).unwrap());
            let pg = matches!(store, Store::Postgres(_));
            let (sql, args) = list_query(&filter, sort, after.as_ref(), 51, pg).unwrap();
            println!("    {}", explain(&store, &sql, &args).await);
        }
    }
}

on_both!(seed_timing);
