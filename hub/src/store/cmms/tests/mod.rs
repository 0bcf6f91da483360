//! Tests of the CMMS store. Every scenario is one async function taking a
//! fresh [`Store`], run once on SQLite and once on a throwaway PostgreSQL
//! cluster by [`on_both!`].

use super::{assets, sites, work_orders, CmmsError};
use crate::store::Store;
use dcmms_shared::cmms::{
    Actor, Asset, AssetKind, Criticality, NewWorkOrder, Priority, Role, TaskKind, TaskSpec,
    WorkType,
};
use time::macros::datetime;
use time::OffsetDateTime;

mod bulk_assets;
mod costs;
mod list;
mod pm;
mod records;
mod seed;
mod stock;
mod work_orders_tests;

/// Runs `scenario(store)` on SQLite and on PostgreSQL.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (store, _dir) = crate::store::testing::sqlite().await;
                super::$name(store).await;
            }
            #[tokio::test]
            async fn postgres() {
                let (store, _pg) = crate::store::testing::postgres().await;
                super::$name(store).await;
            }
        }
    };
}
pub(crate) use on_both;

/// The time most test actions happen at.
pub(super) const T0: OffsetDateTime = datetime!(2025-03-03 08:00 UTC);

pub(super) fn at(hours: i64) -> OffsetDateTime {
    T0 + time::Duration::hours(hours)
}

pub(super) fn sup(site: &str) -> Actor {
    Actor::new("sup", Role::Supervisor, site)
}

pub(super) fn tech(user: &str, site: &str) -> Actor {
    Actor::new(user, Role::Technician, site)
}

/// A bare asset (an inverter) at `site` under `parent`.
pub(super) fn asset(id: &str, site: &str, parent: Option<&str>) -> Asset {
    Asset {
        id: id.into(),
        site: site.into(),
        parent: parent.map(Into::into),
        name: format!("Asset {id}"),
        kind: AssetKind::Inverter,
        manufacturer: None,
        model: None,
        serial: None,
        installed_on: None,
        criticality: Criticality::Medium,
        location: None,
        points: Vec::new(),
    }
}

/// Creates sites and top-level assets `(id, site)` in one transaction.
pub(super) async fn setup(store: &Store, site_ids: &[&str], asset_ids: &[(&str, &str)]) {
    let mut tx = store.transaction().await.unwrap();
    for s in site_ids {
        sites::create(
            &mut tx,
            sites::NewSite {
                id: (*s).into(),
                name: format!("Site {s}"),
                timezone: "Europe/Madrid".into(),
            },
            T0,
        )
        .await
        .unwrap();
    }
    for (a, s) in asset_ids {
        assets::create(&mut tx, asset(a, s, None), T0)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// A corrective work order on `asset` with one required check; the store
/// mints its id.
pub(super) fn new_wo(site: &str, asset: &str, title: &str) -> NewWorkOrder {
    NewWorkOrder {
        id: "".into(),
        site: site.into(),
        asset: asset.into(),
        work_type: WorkType::Corrective,
        priority: Priority::P2,
        title: title.into(),
        description: "Inverter trips on overtemperature".into(),
        due: None,
        sla_hours: None,
        checklist: vec![TaskSpec::new("fan", "Fan runs", TaskKind::Check, true)],
        pm_occurrence: None,
    }
}

/// Creates and commits a work order as the site's supervisor.
pub(super) async fn create_wo(
    store: &Store,
    new: NewWorkOrder,
    at: OffsetDateTime,
) -> work_orders::StoredWorkOrder {
    let actor = sup(new.site.as_str());
    let mut tx = store.transaction().await.unwrap();
    let wo = work_orders::create(&mut tx, new, &actor, at).await.unwrap();
    tx.commit().await.unwrap();
    wo
}

/// Counts the rows of a table.
pub(super) async fn count(store: &Store, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    crate::store::both!(store, Store, p => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(p).await.unwrap()
    })
}

/// The code of an error, with the error shown when the test fails.
pub(super) fn code<T: std::fmt::Debug>(r: Result<T, CmmsError>) -> &'static str {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}
