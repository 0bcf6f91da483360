//! The cost roll-up through the router, with the figures worked out by
//! hand, scoped to the sites where the caller may see costs.

use super::testkit::{costed_work_order, make_sites, on_both, post, set_rate};
use crate::api::testing::{assert_forbidden, TestApi};
use axum::http::StatusCode;
use dcmms_shared::cmms::role::UserKind;
use dcmms_shared::cmms::Role;
use serde_json::json;
use time::macros::date;

async fn cost_rollup(api: TestApi) {
    make_sites(&api, &["s1", "s2"]).await;
    let root = api.admin().await;
    for (id, site) in [("a1", "s1"), ("a2", "s1"), ("b1", "s2")] {
        let r = post(
            &api,
            "/api/v1/assets",
            &root,
            json!({ "id": id, "site": site, "name": id, "kind": "inverter" }),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let ana = api.add_user("ana", UserKind::Staff, false, &[]).await;
    let bo = api.add_user("bo", UserKind::Staff, false, &[]).await;
    set_rate(&api, &ana, 6_000).await;
    set_rate(&api, &bo, 4_550).await;
    // 90 min at 60.00/h = 90.00; 20 min at 45.50/h = 15.1666 -> 15.17;
    // 3 x 12.99 = 38.97: 144.14 on a1.
    costed_work_order(
        &api,
        "s1",
        "a1",
        &[
            (ana.as_str(), date!(2025 - 01 - 31), 90),
            (bo.as_str(), date!(2025 - 02 - 01), 20),
        ],
        &[(3, 1_299, date!(2025 - 02 - 01))],
    )
    .await;
    // 2 x 2.50 on a2 in February; 60 min at 45.50/h on b1 in December.
    costed_work_order(&api, "s1", "a2", &[], &[(2, 250, date!(2025 - 02 - 14))]).await;
    costed_work_order(
        &api,
        "s2",
        "b1",
        &[(bo.as_str(), date!(2024 - 12 - 31), 60)],
        &[],
    )
    .await;

    let r = api
        .get("/api/v1/costs?from=2024-12-01&to=2025-02-28", &root)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json,
        json!({
            "from": "2024-12-01", "to": "2025-02-28", "work_orders": 3,
            "cost": {
                "labour": "150.67", "labour_cents": 15_067,
                "parts": "43.97", "parts_cents": 4_397,
                "total": "194.64", "total_cents": 19_464,
            },
            "by_site": [
                { "site": "s1", "work_orders": 2, "cost": {
                    "labour": "105.17", "labour_cents": 10_517, "parts": "43.97", "parts_cents": 4_397,
                    "total": "149.14", "total_cents": 14_914 } },
                { "site": "s2", "work_orders": 1, "cost": {
                    "labour": "45.50", "labour_cents": 4_550, "parts": "0.00", "parts_cents": 0,
                    "total": "45.50", "total_cents": 4_550 } },
            ],
            "by_asset": [
                { "asset": "a1", "site": "s1", "total": "144.14", "total_cents": 14_414 },
                { "asset": "a2", "site": "s1", "total": "5.00", "total_cents": 500 },
                { "asset": "b1", "site": "s2", "total": "45.50", "total_cents": 4_550 },
            ],
            "by_month": [
                { "month": "2024-12", "total": "45.50", "total_cents": 4_550 },
                { "month": "2025-01", "total": "90.00", "total_cents": 9_000 },
                { "month": "2025-02", "total": "59.14", "total_cents": 5_914 },
            ],
        })
    );

    // Only lines dated in the range count.
    let r = api
        .get("/api/v1/costs?from=2025-02-01&to=2025-02-28&site=s1", &root)
        .await;
    assert_eq!(r.json["cost"]["total_cents"], 5_914, "{}", r.text);
    assert_eq!(r.json["work_orders"], 2);

    // Scoped to the sites where the caller may see costs.
    api.add_user(
        "sup",
        UserKind::Staff,
        false,
        &[("s1", Role::Supervisor), ("s2", Role::Technician)],
    )
    .await;
    let sup = api.login("sup").await;
    let r = api
        .get("/api/v1/costs?from=2024-12-01&to=2025-02-28", &sup)
        .await;
    assert_eq!(r.json["cost"]["total_cents"], 14_914, "{}", r.text);
    assert_eq!(r.json["by_site"].as_array().unwrap().len(), 1);
    let r = api
        .get("/api/v1/costs?from=2024-12-01&to=2025-02-28&site=s2", &sup)
        .await;
    assert_forbidden(&r, Some("view_costs"), Some("s2"));
    api.add_user(
        "tech",
        UserKind::Contractor,
        false,
        &[("s1", Role::Technician)],
    )
    .await;
    let tech = api.login("tech").await;
    let r = api
        .get("/api/v1/costs?from=2024-12-01&to=2025-02-28", &tech)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["cost"]["total"], "0.00");
    assert_eq!(r.json["by_site"], json!([]));

    for bad in [
        "to=2025-02-28",
        "from=2025-13-01&to=2025-02-28",
        "from=2025-1-01&to=2025-02-28",
        "from=2025-01-01&to=2025-02-28&site=a%20b",
        "from=2025-01-01&to=2025-02-28&colour=red",
    ] {
        let r = api.get(&format!("/api/v1/costs?{bad}"), &root).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
    // An empty range has no costs.
    let r = api
        .get("/api/v1/costs?from=2025-03-01&to=2025-02-28", &root)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (
            r.json["work_orders"].as_u64(),
            r.json["cost"]["total_cents"].as_i64()
        ),
        (Some(0), Some(0))
    );
    let r = api
        .get("/api/v1/costs?from=2025-01-01&to=2025-02-28&site=s9", &root)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}
on_both!(cost_rollup);
