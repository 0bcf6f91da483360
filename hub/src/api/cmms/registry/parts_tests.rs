//! Parts stock through the router: the catalogue, receipts and counts by
//! supervisors, stock refusals as 409 with the rule and the available
//! quantity, unit costs hidden from those without `view_costs`, and the
//! audit entry of every write.

use super::testkit::{ids, make_sites, on_both, patch, post, reserve};
use crate::api::testing::{assert_forbidden, TestApi};
use axum::http::StatusCode;
use dcmms_shared::cmms::role::UserKind;
use dcmms_shared::cmms::Role;
use serde_json::json;

async fn stock_routes(api: TestApi) {
    make_sites(&api, &["north", "south"]).await;
    let root = api.admin().await;
    api.add_user(
        "sup",
        UserKind::Staff,
        false,
        &[("north", Role::Supervisor)],
    )
    .await;
    api.add_user(
        "tech",
        UserKind::Staff,
        false,
        &[("north", Role::Technician)],
    )
    .await;
    api.add_user(
        "con",
        UserKind::Contractor,
        false,
        &[("south", Role::Supervisor)],
    )
    .await;
    let (sup, tech, con) = (
        api.login("sup").await,
        api.login("tech").await,
        api.login("con").await,
    );
    let base = "/api/v1/sites/north/parts";
    let fuse = format!("{base}/fuse-10a");

    let r = post(
        &api,
        base,
        &sup,
        json!({ "part": "fuse-10a", "name": "Fuse 10 A, gPV", "unit": "pcs",
                "unit_cost_cents": 450, "reorder_level": 5, "on_hand": 10 }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["unit_cost"], "4.50");
    assert_eq!(r.json["unit_cost_cents"], 450);
    assert_eq!(
        (r.json["on_hand"].as_u64(), r.json["available"].as_u64()),
        (Some(10), Some(10))
    );
    assert_eq!(r.json["needs_reorder"], false);
    let e = &api.audit().await[0];
    assert_eq!(
        (e.action.as_str(), e.entity_id.as_str()),
        ("part.create", "north/fuse-10a")
    );
    assert_eq!(e.after.as_ref().unwrap()["on_hand"], 10);
    let r = post(
        &api,
        base,
        &sup,
        json!({ "part": "oil-gx", "name": "Gear oil", "unit": "ml", "unit_cost_cents": 2 }),
    )
    .await;
    assert_eq!(
        r.json["reorder_level"],
        serde_json::Value::Null,
        "{}",
        r.text
    );

    // Refusals of the catalogue.
    let r = post(
        &api,
        base,
        &sup,
        json!({ "part": "fuse-10a", "name": "Again", "unit": "pcs", "unit_cost_cents": 1 }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json["error"]["rule"], "duplicate");
    let r = post(
        &api,
        base,
        &sup,
        json!({ "part": "x\ty", "name": "X", "unit": "a unit that is much longer than allowed here", "unit_cost_cents": -1 }),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let fields: Vec<&str> = r.json["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["part", "unit", "unit_cost_cents"]);
    let r = post(
        &api,
        "/api/v1/sites/west/parts",
        &root,
        json!({ "part": "p", "name": "P", "unit": "pcs", "unit_cost_cents": 1 }),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = post(
        &api,
        base,
        &tech,
        json!({ "part": "p", "name": "P", "unit": "pcs", "unit_cost_cents": 1 }),
    )
    .await;
    assert_forbidden(&r, Some("manage_stock"), Some("north"));

    // Receipts and counts, audited with the reason and the correction.
    let r = post(&api, &format!("{fuse}/receive"), &sup, json!({ "qty": 5 })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["on_hand"], 15);
    let e = &api.audit().await[0];
    assert_eq!(e.action, "part.receive");
    assert_eq!(
        (
            &e.before.as_ref().unwrap()["on_hand"],
            &e.after.as_ref().unwrap()["received"]
        ),
        (&json!(10), &json!(5))
    );
    let r = post(
        &api,
        &format!("{fuse}/adjust"),
        &sup,
        json!({ "counted": 3, "reason": "annual count" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (
            r.json["on_hand"].as_u64(),
            r.json["needs_reorder"].as_bool()
        ),
        (Some(3), Some(true))
    );
    let e = &api.audit().await[0];
    assert_eq!(e.action, "part.adjust");
    let after = e.after.as_ref().unwrap();
    assert_eq!(
        (&after["reason"], &after["correction"]),
        (&json!("annual count"), &json!(-12))
    );

    // Stock is never counted below what is reserved: 409 with the rule
    // and what is available; nothing changes.
    make_asset(&api, &root).await;
    reserve(&api, "north", "inv-01", "fuse-10a", 2).await;
    let entries = api.audit().await.len();
    let r = post(
        &api,
        &format!("{fuse}/adjust"),
        &sup,
        json!({ "counted": 1, "reason": "lost some" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json["error"]["rule"], "count_below_reserved");
    let msg = r.json["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("available: 1") && msg.contains("reserved: 2"),
        "{msg}"
    );
    for (body, field) in [
        (json!({ "counted": -1, "reason": "x" }), "counted"),
        (json!({ "counted": 1, "reason": "" }), "reason"),
        (json!({ "counted": 1 }), "reason"),
    ] {
        let r = post(&api, &format!("{fuse}/adjust"), &sup, body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.json["error"]["fields"][0]["field"], field);
    }
    let r = post(&api, &format!("{fuse}/receive"), &sup, json!({ "qty": 0 })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = post(
        &api,
        &format!("{fuse}/receive"),
        &sup,
        json!({ "qty": 1_000_000_001 }),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = post(
        &api,
        &format!("{fuse}/adjust"),
        &sup,
        json!({ "counted": u32::MAX, "reason": "x" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = post(&api, &format!("{fuse}/receive"), &sup, json!({ "qty": 1 })).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json["error"]["rule"], "stock_overflow");
    let msg = r.json["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("available: {}", u32::MAX - 2)),
        "{msg}"
    );
    let r = post(
        &api,
        &format!("{fuse}/adjust"),
        &sup,
        json!({ "counted": 3, "reason": "recount" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = post(&api, &format!("{fuse}/receive"), &tech, json!({ "qty": 1 })).await;
    assert_forbidden(&r, Some("manage_stock"), Some("north"));
    let r = post(
        &api,
        &format!("{base}/nope/receive"),
        &sup,
        json!({ "qty": 1 }),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(api.audit().await.len(), entries + 2, "the two counts");

    // Reading: reservations shown; costs only with view_costs.
    let r = api.get(&fuse, &sup).await;
    assert_eq!(
        (r.json["reserved"].as_u64(), r.json["available"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(r.json["reservations"][0]["qty"], 2);
    let r = api.get(&fuse, &tech).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.json["unit_cost"].is_null() && r.json["unit_cost_cents"].is_null(),
        "{}",
        r.text
    );
    assert_forbidden(&api.get(&fuse, &con).await, Some("view"), Some("north"));
    assert_eq!(
        api.get(&format!("{base}/nope"), &sup).await.status,
        StatusCode::NOT_FOUND
    );
    let r = api.get(base, &tech).await;
    assert_eq!(ids(&r.json, "parts", "part"), ["fuse-10a", "oil-gx"]);
    let r = api.get(&format!("{base}?reorder=true"), &sup).await;
    assert_eq!(ids(&r.json, "parts", "part"), ["fuse-10a"]);
    let r = api.get(&format!("{base}?reorder=false"), &sup).await;
    assert_eq!(ids(&r.json, "parts", "part"), ["oil-gx"]);
    let r = api.get(&format!("{base}?limit=1"), &sup).await;
    let next = r.json["next"].as_str().unwrap().to_owned();
    let r = api
        .get(&format!("{base}?limit=1&cursor={next}"), &sup)
        .await;
    assert_eq!(ids(&r.json, "parts", "part"), ["oil-gx"]);
    assert_eq!(
        api.get("/api/v1/sites/west/parts", &root).await.status,
        StatusCode::NOT_FOUND
    );
    assert_forbidden(&api.get(base, &con).await, Some("view"), Some("north"));

    // Catalogue changes, audited.
    let r = patch(
        &api,
        &fuse,
        &sup,
        json!({ "name": "Fuse 10 A", "unit_cost_cents": 475, "reorder_level": null }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (
            r.json["unit_cost"].as_str(),
            r.json["needs_reorder"].as_bool()
        ),
        (Some("4.75"), Some(false))
    );
    let e = &api.audit().await[0];
    assert_eq!(e.action, "part.update");
    assert_eq!(e.before.as_ref().unwrap()["reorder_level"], 5);
    assert!(e.after.as_ref().unwrap()["reorder_level"].is_null());
    let r = patch(&api, &fuse, &sup, json!({ "unit_cost_cents": -5 })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = patch(&api, &fuse, &sup, json!({ "on_hand": 50 })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
}
on_both!(stock_routes);

async fn make_asset(api: &TestApi, token: &str) {
    let r = post(
        api,
        "/api/v1/assets",
        token,
        json!({ "id": "inv-01", "site": "north", "name": "Inverter 1", "kind": "inverter" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}
