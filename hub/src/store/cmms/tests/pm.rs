//! PM plans: generation never twice per occurrence, floating plans that
//! wait for the work, meter plans fed from stored telemetry.

use super::super::pm::{self, Generated, GENERATOR};
use super::super::work_orders;
use super::{code, count, new_wo, on_both, setup, sup, T0};
use crate::store::Store;
use dcmms_shared::cmms::pm::{
    Anchor, CalendarTrigger, IntervalUnit, MeterReading, MeterRule, MeterTrigger, Trigger,
};
use dcmms_shared::cmms::{
    Action, OccurrenceKey, PlanId, PmPlan, Priority, SiteScope, State, UserId, WorkType,
};
use dcmms_shared::{PointId, Quality, Sample};
use std::collections::BTreeSet;
use time::macros::{date, datetime};
use time::{Date, OffsetDateTime};

fn plan(id: &str, trigger: Trigger) -> PmPlan {
    PmPlan {
        id: id.into(),
        site: "s1".into(),
        asset: "a1".into(),
        title: format!("Plan {id}"),
        description: "Clean the filters".into(),
        work_type: WorkType::Preventive,
        priority: Priority::P4,
        checklist: Vec::new(),
        trigger,
    }
}

fn calendar(id: &str, every: u32, anchor: Anchor, lead_days: u32) -> PmPlan {
    plan(
        id,
        Trigger::Calendar(CalendarTrigger {
            every,
            unit: IntervalUnit::Days,
            anchor,
            start: date!(2025 - 03 - 03),
            lead_days,
        }),
    )
}

fn noon(d: Date) -> OffsetDateTime {
    d.with_hms(12, 0, 0).unwrap().assume_utc()
}

async fn create(store: &Store, p: PmPlan) -> pm::StoredPlan {
    let mut tx = store.transaction().await.unwrap();
    let stored = pm::create(&mut tx, p, T0).await.unwrap();
    tx.commit().await.unwrap();
    stored
}

async fn generate(store: &Store, id: &str, day: Date, readings: &[MeterReading]) -> Generated {
    let mut tx = store.transaction().await.unwrap();
    let g = pm::generate_due(&mut tx, &id.into(), noon(day), readings)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    g
}

fn indexes(g: &Generated) -> Vec<u64> {
    g.work_orders
        .iter()
        .map(|w| w.work_order.pm_occurrence.as_ref().unwrap().index)
        .collect()
}

async fn generation_is_idempotent(store: Store) {
    setup(&store, &["s1"], &[("a1", "s1")]).await;
    // Weekly from Monday 2025-03-03, generated a day early.
    let stored = create(&store, calendar("weekly", 7, Anchor::Fixed, 1)).await;
    assert_eq!(stored.next_due, Some(date!(2025 - 03 - 03)));
    assert_eq!(pm::get(&store, &"weekly".into()).await.unwrap(), stored);
    let mut tx = store.transaction().await.unwrap();
    assert_eq!(
        code(pm::create(&mut tx, calendar("weekly", 7, Anchor::Fixed, 1), T0).await),
        "duplicate"
    );
    drop(tx);
    let mut tx = store.transaction().await.unwrap();
    assert_eq!(
        code(pm::create(&mut tx, calendar("bad", 2, Anchor::Fixed, 5), T0).await),
        "invalid_plan"
    );
    drop(tx);

    let g = generate(&store, "weekly", date!(2025 - 03 - 03), &[]).await;
    assert_eq!(indexes(&g), [0]);
    let wo = &g.work_orders[0].work_order;
    assert_eq!(
        (wo.state, wo.due),
        (State::Open, Some(date!(2025 - 03 - 03)))
    );
    assert_eq!(wo.requested_by, UserId::from(GENERATOR));
    assert_eq!(wo.title, "Plan weekly");
    assert_eq!(g.plan.after.state.last_index, Some(0));
    assert_eq!(g.plan.after.next_due, Some(date!(2025 - 03 - 09)));
    assert_eq!(
        work_orders::get(&store, &wo.id).await.unwrap(),
        g.work_orders[0]
    );

    // Run again: nothing new, and the plan is not even saved.
    let again = generate(&store, "weekly", date!(2025 - 03 - 03), &[]).await;
    assert!(again.work_orders.is_empty());
    assert_eq!(again.plan.before, again.plan.after);
    assert_eq!(
        pm::due_plans(&store, date!(2025 - 03 - 08)).await.unwrap(),
        Vec::<PlanId>::new()
    );
    assert_eq!(
        pm::due_plans(&store, date!(2025 - 03 - 09)).await.unwrap(),
        [PlanId::from("weekly")]
    );
    assert_eq!(
        indexes(&generate(&store, "weekly", date!(2025 - 03 - 09), &[]).await),
        [1]
    );
    assert_eq!(count(&store, "work_orders").await, 2);

    // The unique (plan, index) refuses a second work order for an
    // occurrence, whoever tries.
    let mut tx = store.transaction().await.unwrap();
    let mut dup = new_wo("s1", "a1", "sneaky copy");
    dup.pm_occurrence = Some(OccurrenceKey {
        plan: "weekly".into(),
        index: 1,
    });
    let err = work_orders::create(&mut tx, dup, &sup("s1"), T0)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, super::super::CmmsError::Duplicate { entity: "pm_occurrence", id } if id == "weekly#1"),
        "{err:?}"
    );
    drop(tx);

    // Two runs at once, in two transactions: one creates the occurrence,
    // the other finds it done.
    let run = || {
        let store = store.clone();
        async move {
            let mut tx = store.transaction().await.unwrap();
            let g = pm::generate_due(&mut tx, &"weekly".into(), noon(date!(2025 - 03 - 16)), &[])
                .await
                .unwrap();
            tx.commit().await.unwrap();
            indexes(&g)
        }
    };
    let (a, b) = tokio::join!(run(), run());
    let mut both_runs = [a, b];
    both_runs.sort();
    assert_eq!(both_runs, [vec![], vec![2]]);
    assert_eq!(count(&store, "work_orders").await, 3);
    let list = pm::list(&store, &SiteScope::All).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].state.last_index, Some(2));
}

on_both!(generation_is_idempotent);

async fn floating_and_meter_plans(store: Store) {
    setup(&store, &["s1"], &[("a1", "s1")]).await;
    // Floating: the next one is due ten days after the work was done.
    create(&store, calendar("float", 10, Anchor::Floating, 0)).await;
    let g = generate(&store, "float", date!(2025 - 03 - 03), &[]).await;
    assert_eq!(indexes(&g), [0]);
    assert_eq!(
        g.plan.after.next_due, None,
        "waits for the outstanding work order"
    );
    assert!(generate(&store, "float", date!(2025 - 03 - 30), &[])
        .await
        .work_orders
        .is_empty());
    let id = g.work_orders[0].work_order.id.clone();
    let s = sup("s1");
    let mut tx = store.transaction().await.unwrap();
    let users = BTreeSet::from([UserId::from("ana")]);
    let steps = [Action::Assign { users }, Action::Start, Action::Complete];
    for action in &steps {
        let at = datetime!(2025-03-05 10:00 UTC);
        work_orders::transition(&mut tx, &id, action, &s, at, None)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let floating = pm::get(&store, &"float".into()).await.unwrap();
    assert_eq!(
        floating.state.done.map(|d| d.date),
        Some(date!(2025 - 03 - 05))
    );
    assert_eq!(floating.next_due, Some(date!(2025 - 03 - 15)));
    assert_eq!(
        indexes(&generate(&store, "float", date!(2025 - 03 - 15), &[]).await),
        [1]
    );

    // Telemetry of a run-hours counter, through the ingest path.
    let point = "s1/inv-1/run_hours";
    let mut ingest = store.begin().await.unwrap();
    let gw = ingest.touch_gateway("s1", "gw-1", 1).await.unwrap();
    ingest
        .upsert_points(gw.id, &[(0, point.to_owned())])
        .await
        .unwrap();
    let p = PointId(0);
    let samples = [
        Sample::good(p, 1_000, 50.0),
        Sample::good(p, 2_000, 120.0),
        Sample::bad(p, 2_500),
        Sample {
            point: p,
            ts_ms: 2_600,
            value: 999.0,
            quality: Quality::Bad,
        },
        Sample::good(p, 3_000, 210.0),
    ];
    ingest.insert_samples(gw.id, &samples).await.unwrap();
    ingest.commit().await.unwrap();
    let readings = pm::meter_readings(&store, &"s1".into(), point, 0)
        .await
        .unwrap();
    let pairs: Vec<(i64, f64)> = readings.iter().map(|r| (r.ts_ms, r.value)).collect();
    assert_eq!(pairs, [(1_000, 50.0), (2_000, 120.0), (3_000, 210.0)]);
    let later = pm::meter_readings(&store, &"s1".into(), point, 2_000)
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
    assert!(
        pm::meter_readings(&store, &"s1".into(), "s1/inv-1/nothing", 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        code(pm::meter_readings(&store, &"s2".into(), point, 0).await),
        "point_at_other_site"
    );

    // Every 100 h: the first reading is the baseline (50), 210 passes 100
    // and 200; one work order stands for both.
    let meter = plan(
        "hours",
        Trigger::Meter(MeterTrigger {
            point: point.into(),
            rule: MeterRule::Every {
                interval: 100.0,
                origin: 0.0,
                lead: 0.0,
            },
        }),
    );
    let stored = create(&store, meter).await;
    assert_eq!(stored.next_due, None);
    let due = pm::due_plans(&store, date!(2025 - 03 - 15)).await.unwrap();
    assert!(due.contains(&PlanId::from("hours")));
    let g = generate(&store, "hours", date!(2025 - 03 - 15), &readings).await;
    assert_eq!(indexes(&g), [2]);
    assert_eq!(g.work_orders[0].work_order.due, None);
    assert_eq!(
        g.plan.after.state.last_reading.map(|r| r.ts_ms),
        Some(3_000)
    );
    // The same readings again change nothing.
    let again = generate(&store, "hours", date!(2025 - 03 - 15), &readings).await;
    assert!(again.work_orders.is_empty());
    assert_eq!(again.plan.after.version, g.plan.after.version);

    // Plans refer to an asset of their own site.
    let mut tx = store.transaction().await.unwrap();
    let mut p = calendar("elsewhere", 7, Anchor::Fixed, 0);
    p.asset = "ghost".into();
    assert_eq!(code(pm::create(&mut tx, p, T0).await), "not_found");
    let mut changed = stored.plan.clone();
    changed.title = "Every 100 run hours".into();
    let c = pm::update(&mut tx, changed, T0, Some(g.plan.after.version))
        .await
        .unwrap();
    assert_eq!(c.after.state, c.before.state);
    let r = pm::update(&mut tx, stored.plan.clone(), T0, Some(g.plan.after.version)).await;
    assert_eq!(code(r), "version_conflict");
}

on_both!(floating_and_meter_plans);

/// The ends of f64 in a plan and in its state (a meter reading fed from
/// telemetry) are read back exactly: PostgreSQL gives JSONB numbers back in
/// positional notation, `f64::MAX` as 309 digits.
async fn extreme_numbers_read_back(store: Store) {
    setup(&store, &["s1"], &[("a1", "s1")]).await;
    let rule = MeterRule::Threshold {
        value: f64::MAX,
        direction: dcmms_shared::cmms::pm::Direction::Rising,
        hysteresis: f64::MAX,
    };
    let meter = |id: &str, rule: MeterRule| {
        plan(
            id,
            Trigger::Meter(MeterTrigger {
                point: "s1/dev/hours".into(),
                rule,
            }),
        )
    };
    let tiny = f64::from_bits(1);
    create(&store, meter("top", rule)).await;
    let every = MeterRule::Every {
        interval: f64::MAX,
        origin: -f64::MAX,
        lead: tiny,
    };
    create(&store, meter("every", every)).await;
    let readings = [
        MeterReading {
            ts_ms: 1,
            value: -f64::MAX,
        },
        MeterReading {
            ts_ms: 2,
            value: f64::MAX,
        },
    ];
    let g = generate(&store, "top", date!(2025 - 03 - 04), &readings).await;
    assert_eq!(indexes(&g), [1], "the top of the range is reached");
    let stored = g.plan.after;
    assert_eq!(stored.state.last_reading.map(|r| r.value), Some(f64::MAX));
    assert_eq!(pm::get(&store, &"top".into()).await.unwrap(), stored);
    // Run without readings: nothing is due, the definition stays readable.
    generate(&store, "every", date!(2025 - 03 - 04), &[]).await;
    let listed = pm::list(&store, &SiteScope::All).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], stored);
    match &listed[0].plan.trigger {
        Trigger::Meter(MeterTrigger {
            rule:
                MeterRule::Every {
                    interval,
                    origin,
                    lead,
                },
            ..
        }) => assert_eq!((*interval, *origin, *lead), (f64::MAX, -f64::MAX, tiny)),
        other => panic!("{other:?}"),
    }
}

on_both!(extreme_numbers_read_back);
