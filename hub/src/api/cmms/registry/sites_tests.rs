//! Sites through the router: creation by fleet administrators only,
//! validation, listing scoped to what the caller sees, renames by the
//! site's administrators, and the audit entry of every write.

use super::testkit::{ids, on_both, patch, post};
use crate::api::testing::{assert_error, assert_forbidden, TestApi};
use axum::http::StatusCode;
use dcmms_shared::cmms::role::UserKind;
use dcmms_shared::cmms::Role;
use serde_json::json;

async fn sites_crud_and_scoping(api: TestApi) {
    let root = api.admin().await;
    let new =
        |id: &str| json!({ "id": id, "name": format!("Solar {id}"), "timezone": "Europe/Madrid" });

    let r = post(&api, "/api/v1/sites", &root, new("north")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["id"], "north");
    assert_eq!(r.json["timezone"], "Europe/Madrid");
    assert!(r.json["created_at"].as_str().unwrap().ends_with('Z'));
    let e = &api.audit().await[0];
    assert_eq!(
        (e.action.as_str(), e.entity_id.as_str()),
        ("site.create", "north")
    );
    assert_eq!(e.site.as_deref(), Some("north"));
    assert!(e.before.is_none());
    assert_eq!(e.after.as_ref().unwrap()["name"], "Solar north");
    assert_eq!(
        post(&api, "/api/v1/sites", &root, new("south"))
            .await
            .status,
        StatusCode::CREATED
    );

    // Taken id: 409; every bad field named; nothing written.
    let r = post(&api, "/api/v1/sites", &root, new("north")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json["error"]["rule"], "duplicate");
    let entries = api.audit().await.len();
    let r = post(
        &api,
        "/api/v1/sites",
        &root,
        json!({ "id": "no rth", "name": " padded", "timezone": "Europe Berlin" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let fields: Vec<&str> = r.json["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["id", "name", "timezone"]);
    assert_eq!(api.audit().await.len(), entries);

    // Only fleet administrators create sites, even a site's own admin.
    api.add_user("boss", UserKind::Staff, false, &[("north", Role::Admin)])
        .await;
    api.add_user(
        "con",
        UserKind::Contractor,
        false,
        &[("south", Role::Technician)],
    )
    .await;
    let boss = api.login("boss").await;
    let con = api.login("con").await;
    let r = post(&api, "/api/v1/sites", &boss, new("east")).await;
    assert_forbidden(&r, Some("manage_fleet"), None);

    // Listing: what each caller sees, paged by id.
    let r = api.get("/api/v1/sites", &root).await;
    assert_eq!(ids(&r.json, "sites", "id"), ["north", "south"]);
    let r = api.get("/api/v1/sites", &con).await;
    assert_eq!(ids(&r.json, "sites", "id"), ["south"]);
    let r = api.get("/api/v1/sites?limit=1", &root).await;
    assert_eq!(ids(&r.json, "sites", "id"), ["north"]);
    let next = r.json["next"].as_str().unwrap().to_owned();
    let r = api
        .get(&format!("/api/v1/sites?limit=1&cursor={next}"), &root)
        .await;
    assert_eq!(ids(&r.json, "sites", "id"), ["south"]);
    assert!(r.json["next"].is_null());
    for bad in ["limit=0", "cursor=zz", "colour=red"] {
        let r = api.get(&format!("/api/v1/sites?{bad}"), &root).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }

    // One site: 403 for a site the caller does not see, 404 for none.
    let r = api.get("/api/v1/sites/north", &con).await;
    assert_forbidden(&r, Some("view"), Some("north"));
    assert_eq!(
        api.get("/api/v1/sites/south", &con).await.status,
        StatusCode::OK
    );
    let r = api.get("/api/v1/sites/west", &root).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_error(&r.json, "not_found");
    let r = api.get("/api/v1/sites/bad%20id", &root).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    // Renames by the site's administrator, audited before and after.
    let r = patch(
        &api,
        "/api/v1/sites/north",
        &boss,
        json!({ "name": "Solar Park North" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["name"], "Solar Park North");
    assert_eq!(r.json["timezone"], "Europe/Madrid");
    let e = &api.audit().await[0];
    assert_eq!(e.action, "site.update");
    assert_eq!(e.before.as_ref().unwrap()["name"], "Solar north");
    assert_eq!(e.after.as_ref().unwrap()["name"], "Solar Park North");
    let entries = api.audit().await.len();
    let r = patch(
        &api,
        "/api/v1/sites/north",
        &boss,
        json!({ "name": "Solar Park North" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(api.audit().await.len(), entries, "no change, no entry");
    let r = patch(
        &api,
        "/api/v1/sites/south",
        &boss,
        json!({ "name": "Mine" }),
    )
    .await;
    assert_forbidden(&r, Some("manage_fleet"), Some("south"));
    let r = patch(&api, "/api/v1/sites/south", &con, json!({ "name": "Mine" })).await;
    assert_forbidden(&r, Some("manage_fleet"), Some("south"));
    let r = patch(
        &api,
        "/api/v1/sites/north",
        &boss,
        json!({ "timezone": "" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.json["error"]["fields"][0]["field"], "timezone");
    let r = patch(&api, "/api/v1/sites/west", &root, json!({ "name": "West" })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(api.audit().await.len(), entries);
}
on_both!(sites_crud_and_scoping);
