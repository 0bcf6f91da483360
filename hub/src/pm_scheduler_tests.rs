//! The PM scheduler in process, on SQLite and PostgreSQL: a calendar plan
//! due today gives one work order and a second pass none; a meter plan fed
//! by ingested telemetry gives one when the counter crosses a multiple; a
//! broken plan is counted and does not stop the others.

use super::*;
use crate::store::cmms::{assets, sites};
use dcmms_shared::cmms::pm::{
    Anchor, CalendarTrigger, IntervalUnit, MeterRule, MeterTrigger, Trigger,
};
use dcmms_shared::cmms::{
    Asset, AssetKind, Criticality, PmPlan, Priority, State, UserId, WorkType,
};
use dcmms_shared::{PointId, Sample};

fn plan(id: &str, trigger: Trigger) -> PmPlan {
    PmPlan {
        id: id.into(),
        site: "s1".into(),
        asset: "a1".into(),
        title: format!("Plan {id}"),
        description: String::new(),
        work_type: WorkType::Preventive,
        priority: Priority::P4,
        checklist: Vec::new(),
        trigger,
    }
}

fn every_100(point: &str) -> Trigger {
    Trigger::Meter(MeterTrigger {
        point: point.into(),
        rule: MeterRule::Every {
            interval: 100.0,
            origin: 0.0,
            lead: 0.0,
        },
    })
}

async fn setup(store: &Store, at: OffsetDateTime) {
    let mut tx = store.transaction().await.unwrap();
    sites::create(
        &mut tx,
        sites::NewSite {
            id: "s1".into(),
            name: "Site 1".into(),
            timezone: "UTC".into(),
        },
        at,
    )
    .await
    .unwrap();
    let asset = Asset {
        id: "a1".into(),
        site: "s1".into(),
        parent: None,
        name: "Inverter 1".into(),
        kind: AssetKind::Inverter,
        manufacturer: None,
        model: None,
        serial: None,
        installed_on: None,
        criticality: Criticality::Medium,
        location: None,
        points: Vec::new(),
    };
    assets::create(&mut tx, asset, at).await.unwrap();
    let calendar = Trigger::Calendar(CalendarTrigger {
        every: 7,
        unit: IntervalUnit::Days,
        anchor: Anchor::Fixed,
        start: at.date(),
        lead_days: 0,
    });
    for p in [
        plan("weekly", calendar),
        plan("hours", every_100("s1/inv-1/run_hours")),
        // Reads a point of another site: every run of it fails.
        plan("broken", every_100("s2/inv-9/run_hours")),
    ] {
        pm::create(&mut tx, p, at).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// Ingests run-hour readings as the MQTT ingest path stores them.
async fn ingest(store: &Store, samples: &[(i64, f64)]) {
    let mut tx = store.begin().await.unwrap();
    let gw = tx.touch_gateway("s1", "gw-1", 1).await.unwrap();
    tx.upsert_points(gw.id, &[(0, "s1/inv-1/run_hours".to_owned())])
        .await
        .unwrap();
    let samples: Vec<Sample> = samples
        .iter()
        .map(|(ts, v)| Sample::good(PointId(0), *ts, *v))
        .collect();
    tx.insert_samples(gw.id, &samples).await.unwrap();
    tx.commit().await.unwrap();
}

async fn system_entries(store: &Store) -> Vec<crate::audit::AuditRow> {
    let q = crate::audit::AuditQuery {
        scope: crate::audit::AuditScope::All,
        entity_kind: None,
        entity_id: None,
        actor_id: None,
        site: None,
        from_ms: None,
        to_ms: None,
        before_id: None,
        fetch: 1000,
    };
    crate::audit::list(store, &q)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.actor_name == "system")
        .collect()
}

async fn passes(store: Store) {
    let at = OffsetDateTime::now_utc();
    setup(&store, at).await;
    let metrics = HubMetrics::new();

    let first = run_pass(&store, &metrics, at).await;
    assert_eq!(
        first,
        PassReport {
            plans_checked: 3,
            work_orders_created: 1,
            plans_failed: 1,
        }
    );
    let wos = crate::store::cmms::work_orders::list(
        &store,
        &crate::store::cmms::work_orders::WorkOrderFilter::new(dcmms_shared::cmms::SiteScope::All),
        Default::default(),
        None,
        None,
    )
    .await
    .unwrap()
    .items;
    assert_eq!(wos.len(), 1);
    let wo = &wos[0].work_order;
    assert_eq!(wo.state, State::Open);
    assert_eq!(wo.requested_by, UserId::from(pm::GENERATOR));
    assert_eq!(wo.due, Some(at.date()));
    let audit = system_entries(&store).await;
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["work_order.create", "pm_plan.generate"]);
    assert!(audit.iter().all(|e| e.actor_id.is_none()));
    assert_eq!(audit[0].entity_id, wo.id.as_str());
    assert_eq!(audit[0].after.as_ref().unwrap()["state"], "open");

    // Nothing new: the weekly plan is not even picked, the meter plan has
    // no readings.
    let second = run_pass(&store, &metrics, at).await;
    assert_eq!(
        second,
        PassReport {
            plans_checked: 2,
            work_orders_created: 0,
            plans_failed: 1,
        }
    );
    assert_eq!(system_entries(&store).await.len(), 2);

    // The counter starts at 50 (the baseline) and passes 100.
    let t0 = at.unix_timestamp() * 1000;
    ingest(
        &store,
        &[(t0, 50.0), (t0 + 5_000, 80.0), (t0 + 10_000, 120.0)],
    )
    .await;
    let third = run_pass(&store, &metrics, at).await;
    assert_eq!(third.work_orders_created, 1);
    let hours = pm::get(&store, &"hours".into()).await.unwrap();
    assert_eq!(hours.state.last_index, Some(1));
    assert_eq!(hours.state.last_reading.map(|r| r.ts_ms), Some(t0 + 10_000));
    // Readings already fed change nothing; a new one below 200 neither.
    ingest(&store, &[(t0 + 15_000, 190.0)]).await;
    assert_eq!(run_pass(&store, &metrics, at).await.work_orders_created, 0);

    assert_eq!(metrics.value(crate::metrics::names::PM_RUNS), Some(4.0));
    assert_eq!(
        metrics.value(crate::metrics::names::PM_WORK_ORDERS),
        Some(2.0)
    );
    assert_eq!(
        metrics.value(crate::metrics::names::PM_PLAN_ERRORS),
        Some(4.0)
    );
}

#[tokio::test]
async fn passes_on_sqlite() {
    let (store, _dir) = crate::store::testing::sqlite().await;
    passes(store).await;
}

#[tokio::test]
async fn passes_on_postgres() {
    let (store, _pg) = crate::store::testing::postgres().await;
    passes(store).await;
}

/// The spawned task runs a pass at once and stops with the token.
#[tokio::test]
async fn the_task_runs_at_once_and_stops_with_the_token() {
    let (store, _dir) = crate::store::testing::sqlite().await;
    setup(&store, OffsetDateTime::now_utc()).await;
    let metrics = HubMetrics::new();
    let (tracker, token) = (TaskTracker::new(), CancellationToken::new());
    spawn(
        &tracker,
        token.clone(),
        store.clone(),
        metrics.clone(),
        Duration::from_secs(3600),
    );
    tracker.close();
    let created = crate::metrics::names::PM_WORK_ORDERS;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metrics.value(created) != Some(1.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no pass within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .expect("the scheduler stops with its token");
}
