//! What the register route tests share: running one scenario on both
//! databases, requests with JSON or CSV bodies, and records made straight
//! in the store (sites, work orders with labour and parts, reservations).

use crate::api::testing::{Resp, TestApi};
use crate::store::cmms::{parts, sites, work_orders};
use crate::store::Store;
use axum::body::Body;
use axum::http::{header, Method, Request};
use dcmms_shared::cmms::work_order::{LabourEntry, PartUsage};
use dcmms_shared::cmms::{
    Action, Actor, Edit, Money, NewWorkOrder, Priority, Role, TaskKind, TaskSpec, UserId,
    WorkOrderId, WorkType,
};
use serde_json::Value;
use std::collections::BTreeSet;
use time::macros::datetime;
use time::{Date, OffsetDateTime};

/// Runs `scenario(api)` on SQLite and on PostgreSQL.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(crate::api::testing::TestApi::sqlite().await).await;
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(crate::api::testing::TestApi::postgres().await).await;
            }
        }
    };
}
pub(crate) use on_both;

pub const T0: OffsetDateTime = datetime!(2025-03-03 08:00 UTC);

pub async fn send(api: &TestApi, method: Method, uri: &str, token: &str, body: Value) -> Resp {
    api.send(method, uri, Some(token), Some(body)).await
}

pub async fn post(api: &TestApi, uri: &str, token: &str, body: Value) -> Resp {
    send(api, Method::POST, uri, token, body).await
}

pub async fn patch(api: &TestApi, uri: &str, token: &str, body: Value) -> Resp {
    send(api, Method::PATCH, uri, token, body).await
}

/// `POST /api/v1/import/{kind}?{query}` with a CSV body.
pub async fn import(api: &TestApi, token: &str, kind: &str, query: &str, csv: &str) -> Resp {
    import_bytes(api, token, kind, query, csv.as_bytes().to_vec(), "text/csv").await
}

pub async fn import_bytes(
    api: &TestApi,
    token: &str,
    kind: &str,
    query: &str,
    body: Vec<u8>,
    content_type: &str,
) -> Resp {
    let req = Request::post(format!("/api/v1/import/{kind}?{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap();
    api.raw(req).await
}

/// The ids of a listing's items under `key` (`assets`, `sites`, ...),
/// taking `field` of each.
pub fn ids(json: &Value, key: &str, field: &str) -> Vec<String> {
    json[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        .iter()
        .map(|v| v[field].as_str().unwrap().to_owned())
        .collect()
}

/// Creates sites straight in the store.
pub async fn make_sites(api: &TestApi, ids: &[&str]) {
    let mut tx = api.store.transaction().await.unwrap();
    for id in ids {
        sites::create(
            &mut tx,
            sites::NewSite {
                id: (*id).into(),
                name: format!("Site {id}"),
                timezone: "Europe/Madrid".into(),
            },
            T0,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

fn supervisor(site: &str) -> Actor {
    Actor::new("sup", Role::Supervisor, site)
}

/// A work order on `asset`, assigned to `tech` and started, with the
/// given labour `(technician, date, minutes)` and parts `(qty, cents, date)`.
pub async fn costed_work_order(
    api: &TestApi,
    site: &str,
    asset: &str,
    labour: &[(&str, Date, u32)],
    parts_used: &[(u32, i64, Date)],
) -> WorkOrderId {
    let s = supervisor(site);
    let mut tx = api.store.transaction().await.unwrap();
    let wo = work_orders::create(&mut tx, new_wo(site, asset), &s, T0)
        .await
        .unwrap()
        .work_order
        .id;
    let users = BTreeSet::from([UserId::from("tech")]);
    work_orders::transition(&mut tx, &wo, &Action::Assign { users }, &s, T0, None)
        .await
        .unwrap();
    work_orders::transition(&mut tx, &wo, &Action::Start, &s, T0, None)
        .await
        .unwrap();
    for (who, date, minutes) in labour {
        let e = Edit::LogLabour(LabourEntry {
            technician: (*who).into(),
            date: *date,
            minutes: *minutes,
            note: None,
        });
        work_orders::edit(&mut tx, &wo, e, &s, T0, None)
            .await
            .unwrap();
    }
    for (qty, cents, date) in parts_used {
        let e = Edit::UsePart(PartUsage {
            part: "p".into(),
            quantity: *qty,
            unit_cost: Money::from_minor(*cents),
            date: *date,
        });
        work_orders::edit(&mut tx, &wo, e, &s, T0, None)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    wo
}

fn new_wo(site: &str, asset: &str) -> NewWorkOrder {
    NewWorkOrder {
        id: "".into(),
        site: site.into(),
        asset: asset.into(),
        work_type: WorkType::Corrective,
        priority: Priority::P2,
        title: "Inverter trips".into(),
        description: "Overtemperature".into(),
        due: None,
        sla_hours: None,
        checklist: vec![TaskSpec::new("fan", "Fan runs", TaskKind::Check, true)],
        pm_occurrence: None,
    }
}

/// Reserves `qty` of a part for a new work order on `asset`.
pub async fn reserve(api: &TestApi, site: &str, asset: &str, part: &str, qty: u32) {
    let s = supervisor(site);
    let mut tx = api.store.transaction().await.unwrap();
    let wo = work_orders::create(&mut tx, new_wo(site, asset), &s, T0)
        .await
        .unwrap()
        .work_order
        .id;
    parts::reserve_part(&mut tx, &wo, &part.into(), qty, T0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Sets a user's hourly rate straight in the store.
pub async fn set_rate(api: &TestApi, user: &UserId, cents: i64) {
    crate::store::both!(&api.store, Store, p => {
        sqlx::query("UPDATE users SET hourly_rate_cents = $2 WHERE id = $1")
            .bind(user.as_str())
            .bind(cents)
            .execute(p)
            .await
            .unwrap();
    });
}

/// Rows of a table.
pub async fn count(api: &TestApi, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    crate::store::both!(&api.store, Store, p => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(p).await.unwrap()
    })
}
