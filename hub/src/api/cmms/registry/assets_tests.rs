//! Assets through the router: creation and changes by supervisors only,
//! listing scoped and filtered, hierarchy refusals as 409 with the rule,
//! point links, and the audit entry of every write.

use super::testkit::{ids, make_sites, on_both, patch, post, send};
use crate::api::testing::{assert_error, assert_forbidden, Resp, TestApi};
use axum::http::{Method, StatusCode};
use dcmms_shared::cmms::role::UserKind;
use dcmms_shared::cmms::Role;
use serde_json::{json, Value};

fn asset(id: &str, site: &str, parent: Option<&str>) -> Value {
    json!({ "id": id, "site": site, "parent": parent, "name": format!("Asset {id}"), "kind": "area" })
}

async fn create(api: &TestApi, token: &str, body: Value) -> Resp {
    post(api, "/api/v1/assets", token, body).await
}

fn field_names(r: &Resp) -> Vec<String> {
    r.json["error"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.text))
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_owned())
        .collect()
}

async fn asset_crud_scoping_and_audit(api: TestApi) {
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

    let r = create(&api, &sup, asset("blk-a", "north", None)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = create(
        &api,
        &sup,
        json!({
            "id": "inv-01", "site": "north", "parent": "blk-a", "name": "Inverter 1",
            "kind": "Inverter", "manufacturer": "SMA", "model": "Sunny Central 2500",
            "installed_on": "2021-06-30", "criticality": "critical", "location": "Row 3",
            "points": ["north/inv-01/ac_power", "north/inv-01/dc_voltage", "north/inv-01/ac_power"],
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["kind"], "inverter");
    assert_eq!(r.json["installed_on"], "2021-06-30");
    assert_eq!(r.json["criticality"], "critical");
    assert_eq!(
        r.json["points"],
        json!(["north/inv-01/ac_power", "north/inv-01/dc_voltage"]),
        "a repeated point is kept once"
    );
    let e = &api.audit().await[0];
    assert_eq!(
        (e.action.as_str(), e.entity_id.as_str()),
        ("asset.create", "inv-01")
    );
    assert_eq!(e.site.as_deref(), Some("north"));
    assert_eq!(e.after.as_ref().unwrap()["parent"], "blk-a");
    assert_eq!(
        create(&api, &con, asset("s-1", "south", None)).await.status,
        StatusCode::CREATED
    );
    let r = create(
        &api,
        &sup,
        json!({ "id": "inv-02", "site": "north", "parent": "blk-a", "name": "Inverter 2",
                "kind": "dc optimiser", "criticality": "low" }),
    )
    .await;
    assert_eq!(r.json["kind"], "dc optimiser", "{}", r.text);

    // A technician may not create assets (manage_assets is supervisor+),
    // a contractor not at another site; nothing is written.
    let entries = api.audit().await.len();
    assert_forbidden(
        &create(&api, &tech, asset("x", "north", None)).await,
        Some("manage_assets"),
        Some("north"),
    );
    assert_forbidden(
        &create(&api, &con, asset("x", "north", None)).await,
        Some("manage_assets"),
        Some("north"),
    );

    // Refusals: taken id, unknown site, bad fields.
    let r = create(&api, &sup, asset("inv-01", "north", None)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json["error"]["rule"], "duplicate");
    let r = create(&api, &root, asset("w-1", "west", None)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(field_names(&r), ["site"]);
    let r = create(
        &api,
        &sup,
        json!({ "id": " x", "site": "north", "name": "", "kind": "area",
                "installed_on": "2021-02-30", "points": ["south/d/p", "bad"] }),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(field_names(&r), ["id", "name", "points[1]"]);
    let r = create(
        &api,
        &sup,
        json!({ "id": "x", "site": "north", "name": "X", "kind": "area", "points": ["south/d/p"] }),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(field_names(&r), ["points"]);
    let r = create(
        &api,
        &sup,
        json!({ "id": "x", "site": "north", "name": "X", "kind": "area", "installed_on": "30/06/2021" }),
    )
    .await;
    assert_eq!(field_names(&r), ["installed_on"]);
    assert_eq!(api.audit().await.len(), entries);

    // Reading: a site the caller does not see is not disclosed.
    assert_eq!(
        api.get("/api/v1/assets/inv-01", &tech).await.json["name"],
        "Inverter 1"
    );
    let r = api.get("/api/v1/assets/inv-01", &con).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_error(&r.json, "not_found");
    assert_eq!(
        api.get("/api/v1/assets/nope", &root).await.status,
        StatusCode::NOT_FOUND
    );
    for bad in ["a%00b", "%20a", "a%0A"] {
        let r = api.get(&format!("/api/v1/assets/{bad}"), &root).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert_error(&r.json, "bad_request");
    }

    // Listing: scoped, filtered, paged by id.
    let list = |token: &str, q: &str| {
        let uri = format!("/api/v1/assets?{q}");
        let token = token.to_owned();
        let api = &api;
        async move {
            let r = api.get(&uri, &token).await;
            assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text);
            ids(&r.json, "assets", "id")
        }
    };
    assert_eq!(list(&root, "").await, ["blk-a", "inv-01", "inv-02", "s-1"]);
    assert_eq!(list(&con, "").await, ["s-1"]);
    assert_eq!(list(&tech, "").await, ["blk-a", "inv-01", "inv-02"]);
    assert_eq!(list(&root, "site=south").await, ["s-1"]);
    assert_eq!(list(&root, "kind=inverter").await, ["inv-01"]);
    assert_eq!(
        list(&root, "kind=DC%20optimiser").await,
        Vec::<String>::new()
    );
    assert_eq!(list(&root, "kind=dc%20optimiser").await, ["inv-02"]);
    assert_eq!(list(&root, "criticality=critical").await, ["inv-01"]);
    assert_eq!(list(&root, "parent=blk-a").await, ["inv-01", "inv-02"]);
    assert_eq!(
        list(&root, "point=north/inv-01/dc_voltage").await,
        ["inv-01"]
    );
    assert_eq!(
        list(&con, "point=north/inv-01/dc_voltage").await,
        Vec::<String>::new()
    );
    assert_eq!(
        list(&root, "parent=blk-a&criticality=low").await,
        ["inv-02"]
    );
    let r = api.get("/api/v1/assets?limit=2", &root).await;
    assert_eq!(ids(&r.json, "assets", "id"), ["blk-a", "inv-01"]);
    let next = r.json["next"].as_str().unwrap().to_owned();
    assert_eq!(
        list(&root, &format!("limit=2&cursor={next}")).await,
        ["inv-02", "s-1"]
    );
    assert_eq!(
        list(&root, &format!("limit=1&kind=area&cursor={next}")).await,
        ["s-1"]
    );
    assert_forbidden(
        &api.get("/api/v1/assets?site=north", &con).await,
        Some("view"),
        Some("north"),
    );
    for bad in [
        "limit=0",
        "criticality=huge",
        "cursor=00",
        "site=a%20b",
        "colour=red",
        "kind=",
        "parent=",
        "parent=a%00b",
        "kind=%20x",
        "point=north/inv-01",
        "point=north/inv%00/p",
        // Empty: the document's pattern wants three names.
        "point=",
        "point=//",
    ] {
        let r = api.get(&format!("/api/v1/assets?{bad}"), &root).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
    let r = api.get("/api/v1/assets/blk-a/children", &tech).await;
    assert_eq!(ids(&r.json, "assets", "id"), ["inv-01", "inv-02"]);
    let r = api
        .get("/api/v1/assets/blk-a/children?limit=1", &tech)
        .await;
    assert!(r.json["next"].is_string());
    assert_eq!(
        api.get("/api/v1/assets/blk-a/children", &con).await.status,
        StatusCode::NOT_FOUND
    );

    // Changes: fields, cleared fields, audited before and after.
    let r = patch(
        &api,
        "/api/v1/assets/inv-01",
        &sup,
        json!({ "name": "Inverter 01", "manufacturer": null, "criticality": "high" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["name"], "Inverter 01");
    assert!(r.json["manufacturer"].is_null());
    assert_eq!(r.json["model"], "Sunny Central 2500");
    let e = &api.audit().await[0];
    assert_eq!(e.action, "asset.update");
    assert_eq!(e.before.as_ref().unwrap()["manufacturer"], "SMA");
    assert_eq!(e.after.as_ref().unwrap()["criticality"], "high");
    let entries = api.audit().await.len();
    let r = patch(
        &api,
        "/api/v1/assets/inv-01",
        &sup,
        json!({ "name": "Inverter 01" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(api.audit().await.len(), entries, "no change, no entry");
    assert_forbidden(
        &patch(
            &api,
            "/api/v1/assets/inv-01",
            &tech,
            json!({ "name": "Mine" }),
        )
        .await,
        Some("manage_assets"),
        Some("north"),
    );
    let r = patch(
        &api,
        "/api/v1/assets/inv-01",
        &con,
        json!({ "name": "Mine" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = patch(&api, "/api/v1/assets/inv-01", &sup, json!({ "name": "" })).await;
    assert_eq!(field_names(&r), ["name"]);
    let r = patch(
        &api,
        "/api/v1/assets/inv-01",
        &sup,
        json!({ "site": "south" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

    // Points: replaced, checked against the asset's site.
    let uri = "/api/v1/assets/inv-02/points";
    let r = send(
        &api,
        Method::PUT,
        uri,
        &sup,
        json!({ "points": ["north/inv-02/ac_power"] }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["points"], json!(["north/inv-02/ac_power"]));
    let e = &api.audit().await[0];
    assert_eq!(e.action, "asset.points_set");
    assert_eq!(e.before.as_ref().unwrap()["points"], json!([]));
    let r = send(
        &api,
        Method::PUT,
        uri,
        &sup,
        json!({ "points": ["south/inv-02/ac_power"] }),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(field_names(&r), ["points"]);
    let r = send(
        &api,
        Method::PUT,
        uri,
        &sup,
        json!({ "points": ["north/inv 02/p"] }),
    )
    .await;
    assert_eq!(field_names(&r), ["points[0]"]);
    let r = send(&api, Method::PUT, uri, &tech, json!({ "points": [] })).await;
    assert_forbidden(&r, Some("manage_assets"), Some("north"));
    let r = send(&api, Method::PUT, uri, &sup, json!({ "points": [] })).await;
    assert_eq!(r.json["points"], json!([]));
}
on_both!(asset_crud_scoping_and_audit);

/// Moves and creations that break the hierarchy are refused with the
/// domain's rule, and change nothing.
async fn hierarchy_refusals(api: TestApi) {
    make_sites(&api, &["north", "south"]).await;
    let root = api.admin().await;
    // Levels 2 to 6 (the site is level 1): the deepest allowed.
    let chain = ["l2", "l3", "l4", "l5", "l6"];
    let mut parent: Option<&str> = None;
    for id in chain {
        let r = create(&api, &root, asset(id, "north", parent)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        parent = Some(id);
    }
    assert_eq!(
        create(&api, &root, asset("s2", "south", None)).await.status,
        StatusCode::CREATED
    );
    let entries = api.audit().await.len();

    let refused = |r: Resp, rule: &str| {
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert_error(&r.json, "conflict");
        assert_eq!(r.json["error"]["rule"], rule, "{}", r.text);
    };
    refused(
        create(&api, &root, asset("l7", "north", Some("l6"))).await,
        "hierarchy_too_deep",
    );
    refused(
        create(&api, &root, asset("x", "north", Some("s2"))).await,
        "parent_in_other_site",
    );
    refused(
        create(&api, &root, asset("x", "north", Some("ghost"))).await,
        "unknown_parent",
    );
    let mv = |id: &str, to: Value| {
        let uri = format!("/api/v1/assets/{id}");
        let api = &api;
        let root = root.clone();
        async move { patch(api, &uri, &root, json!({ "parent": to })).await }
    };
    refused(mv("l2", json!("l4")).await, "hierarchy_cycle");
    refused(mv("l3", json!("l3")).await, "hierarchy_cycle");
    refused(mv("l3", json!("s2")).await, "parent_in_other_site");
    refused(mv("l3", json!("ghost")).await, "unknown_parent");
    // A subtree moved one level down would put l6 at level 7.
    assert_eq!(
        create(&api, &root, asset("side", "north", Some("l2")))
            .await
            .status,
        StatusCode::CREATED
    );
    refused(mv("l3", json!("side")).await, "hierarchy_too_deep");
    let entries_after_side = entries + 1;
    assert_eq!(api.audit().await.len(), entries_after_side);
    assert_eq!(
        api.get("/api/v1/assets/l3", &root).await.json["parent"],
        "l2"
    );

    // A valid move is audited as a move; moving under the site is null.
    let r = mv("l5", json!("l2")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let e = &api.audit().await[0];
    assert_eq!(e.action, "asset.move");
    assert_eq!(e.before.as_ref().unwrap()["parent"], "l4");
    assert_eq!(e.after.as_ref().unwrap()["parent"], "l2");
    let r = mv("l5", Value::Null).await;
    assert!(r.json["parent"].is_null(), "{}", r.text);
    let r = api.get("/api/v1/assets?parent=l2", &root).await;
    assert_eq!(ids(&r.json, "assets", "id"), ["l3", "side"]);
}
on_both!(hierarchy_refusals);
