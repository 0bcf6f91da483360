//! Work orders through the router, on SQLite and PostgreSQL: a whole life
//! (create, list, assign, start, checklist, complete, verify, close,
//! reopen) with its audit trail, listing filters and scoping, and reading
//! one work order with its cost.

use super::testing::{assert_fields, assert_rule, Fleet};
use crate::api::testing::{assert_error, TestApi};
use axum::http::StatusCode;
use serde_json::{json, Value};

fn ids(r: &Value) -> Vec<String> {
    r["work_orders"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn list(f: &Fleet, user: &str, query: &str) -> Vec<String> {
    let r = f.get(user, &format!("/api/v1/work-orders?{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
    ids(&r.json)
}

async fn life(api: TestApi) {
    let f = Fleet::new(api).await;
    let sup = f.id("sup");
    let tech = f.id("tech");

    // A supervisor's work order starts open; the store names it.
    let wo = f
        .create(
            "sup",
            json!({ "priority": "p2", "due": "2031-05-01", "description": "Trips at noon" }),
        )
        .await;
    let id = wo["id"].as_str().unwrap().to_owned();
    assert_eq!(id, "WO-000001");
    assert_eq!(wo["state"], "open");
    assert_eq!(wo["version"], 1);
    assert_eq!(wo["requested_by"], sup.as_str());
    assert_eq!(wo["work_type"], "corrective");
    assert_eq!(wo["sla_hours"], 24);
    assert_eq!(wo["due"], "2031-05-01");
    assert_eq!(wo["checklist"][0]["status"], "pending");
    assert_eq!(wo["checklist"][1]["kind"]["reading"]["unit"], "V");
    assert_eq!(wo["cost"]["total_cents"], 0);
    let audit = f.api.audit().await;
    assert_eq!(audit[0].action, "work_order.create");
    assert_eq!(audit[0].entity_id, id);
    assert_eq!(audit[0].site.as_deref(), Some("north"));
    assert!(audit[0].before.is_none());
    assert_eq!(audit[0].after.as_ref().unwrap()["state"], "open");

    // A technician's starts as a request.
    let req = f
        .create(
            "tech",
            json!({ "asset": "inv-2", "title": "Noisy cabinet fan",
                    "work_type": "inspection", "priority": "p4", "checklist": [] }),
        )
        .await;
    assert_eq!(req["state"], "requested");
    assert_eq!(req["cost"], Value::Null, "technicians do not see costs");
    let req_id = req["id"].as_str().unwrap().to_owned();

    // Listing: every filter, alone.
    assert_eq!(list(&f, "sup", "").await, [id.as_str(), req_id.as_str()]);
    assert_eq!(
        list(&f, "sup", "order=desc").await,
        [req_id.as_str(), id.as_str()]
    );
    assert_eq!(list(&f, "sup", "site=north").await.len(), 2);
    assert_eq!(list(&f, "sup", "site=south").await, Vec::<String>::new());
    assert_eq!(list(&f, "sup", "asset=inv-2").await, [req_id.as_str()]);
    assert_eq!(list(&f, "sup", "state=requested").await, [req_id.as_str()]);
    assert_eq!(list(&f, "sup", "state=open,requested").await.len(), 2);
    assert_eq!(list(&f, "sup", "due_from=2031-04-01").await, [id.as_str()]);
    assert_eq!(
        list(&f, "sup", "due_to=2031-04-01").await,
        Vec::<String>::new()
    );
    assert_eq!(list(&f, "sup", "type=inspection").await, [req_id.as_str()]);
    assert_eq!(list(&f, "sup", "priority=p2").await, [id.as_str()]);
    assert_eq!(list(&f, "sup", "q=OVERTEMP").await, [id.as_str()]);
    assert_eq!(
        list(&f, "sup", "sort=priority").await,
        [id.as_str(), req_id.as_str()]
    );
    assert_eq!(
        list(&f, "sup", "sort=due").await,
        [id.as_str(), req_id.as_str()]
    );
    assert_eq!(
        list(&f, "sup", "sort=updated_at&order=desc").await,
        [req_id.as_str(), id.as_str()]
    );
    assert_eq!(list(&f, "sup", "assignee=me").await, Vec::<String>::new());
    // Pages of one.
    let r = f.get("sup", "/api/v1/work-orders?limit=1").await;
    assert_eq!(ids(&r.json), [id.as_str()]);
    let next = r.json["next"].as_str().unwrap().to_owned();
    let r = f
        .get("sup", &format!("/api/v1/work-orders?limit=1&cursor={next}"))
        .await;
    assert_eq!(ids(&r.json), [req_id.as_str()]);
    assert_eq!(r.json["next"], Value::Null);
    let r = f
        .get(
            "sup",
            &format!("/api/v1/work-orders?limit=1&sort=due&cursor={next}"),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a cursor belongs to its sort"
    );
    // Worded as every listing words it (clients and the API fuzzer key on
    // the parameter named first), whether it is of another sort, another
    // listing, or no cursor at all.
    let users = f.get("root", "/api/v1/users?limit=1").await;
    let foreign = users.json["next"].as_str().unwrap().to_owned();
    for cursor in [next.as_str(), foreign.as_str(), "zz", "00"] {
        let r = f
            .get(
                "sup",
                &format!("/api/v1/work-orders?sort=due&cursor={cursor}"),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{cursor}: {}", r.text);
        assert_eq!(
            r.json["error"]["message"],
            "`cursor` is not a value returned as `next` by this listing and sort",
            "{cursor}"
        );
    }
    // The summary.
    let r = f.get("sup", "/api/v1/work-orders?asset=inv-1").await;
    let s = &r.json["work_orders"][0];
    for key in [
        "id",
        "site",
        "asset",
        "work_type",
        "priority",
        "state",
        "title",
        "assignees",
        "due",
        "sla_deadline",
        "updated_at",
        "version",
    ] {
        assert!(s.get(key).is_some(), "{key} missing: {s}");
    }
    // Scoping: the other site's technician and a contractor of the other
    // site see nothing of north, and cannot read it.
    assert!(list(&f, "southie", "").await.is_empty());
    assert!(list(&f, "con", "").await.is_empty());
    assert!(list(&f, "con", "site=north").await.is_empty());
    assert_eq!(list(&f, "viewer", "").await.len(), 2);
    assert_eq!(list(&f, "root", "").await.len(), 2);
    let r = f.get("con", &format!("/api/v1/work-orders/{id}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = f.get("sup", "/api/v1/work-orders/WO-999999").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!r.no_route);
    assert_error(&r.json, "not_found");

    // Assign: only users with a technician role at the site.
    let r = f
        .act(
            "sup",
            id.as_str(),
            json!({ "action": "assign", "assignees": [tech, f.id("southie"), "ghost"] }),
        )
        .await;
    assert_fields(&r, &["assignees[1]", "assignees[2]"]);
    let r = f
        .act(
            "sup",
            id.as_str(),
            json!({ "action": "assign", "assignees": [f.id("viewer")] }),
        )
        .await;
    assert_fields(&r, &["assignees[0]"]);
    let wo = f
        .act_ok(
            "sup",
            id.as_str(),
            json!({ "action": "assign", "assignees": [tech], "expected_version": 1 }),
        )
        .await;
    assert_eq!(
        (wo["state"].as_str(), wo["version"].as_i64()),
        (Some("assigned"), Some(2))
    );
    assert_eq!(wo["assignees"], json!([tech]));
    assert_eq!(list(&f, "tech", "assignee=me").await, [id.as_str()]);
    assert_eq!(
        list(&f, "sup", &format!("assignee={tech}&state=assigned")).await,
        [id.as_str()]
    );

    // Start, record the optional reading: completion is refused.
    f.act_ok("tech", id.as_str(), json!({ "action": "start" }))
        .await;
    let r = f
        .edit(
            "tech",
            id.as_str(),
            json!({ "record_item": { "key": "volts", "input": { "reading": { "value": 950.0 } } } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let item = &r.json["checklist"][1]["status"]["done"];
    assert_eq!(item["result"]["reading"]["flag"], "above_max", "{}", r.text);
    assert_eq!(item["by"], tech.as_str());
    let r = f
        .act("tech", id.as_str(), json!({ "action": "complete" }))
        .await;
    assert_rule(&r, "checklist_incomplete");
    assert!(r.json["error"]["message"].as_str().unwrap().contains("fan"));

    // A stale version is refused, whatever the change.
    let r = f
        .post(
            "tech",
            &format!("/api/v1/work-orders/{id}/edits"),
            json!({ "edit": { "record_item": { "key": "fan", "input": { "check": { "passed": true } } } },
                    "expected_version": 1 }),
        )
        .await;
    assert_rule(&r, "version_conflict");
    let current = f
        .get("tech", &format!("/api/v1/work-orders/{id}"))
        .await
        .json;
    let version = current["version"].as_i64().unwrap();
    let r = f
        .post(
            "tech",
            &format!("/api/v1/work-orders/{id}/edits"),
            json!({ "edit": { "record_item": { "key": "fan", "input": { "check": { "passed": true } } } },
                    "expected_version": version }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = f
        .edit(
            "tech",
            id.as_str(),
            json!({ "log_labour": { "minutes": 90, "date": "2031-04-02" } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = f
        .edit(
            "tech",
            id.as_str(),
            json!({ "use_part": { "part": "fuse-10a", "quantity": 2 } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["parts_used"][0]["unit_cost_cents"], 450);
    let wo = f
        .act_ok("tech", id.as_str(), json!({ "action": "complete" }))
        .await;
    assert_eq!(wo["state"], "completed");

    // Completion took the parts off the shelf, audited on the part.
    let audit = f.api.audit().await;
    assert_eq!(audit[0].action, "part.settle", "{audit:?}");
    assert_eq!(audit[0].entity_id, "fuse-10a");
    assert_eq!(audit[0].before.as_ref().unwrap()["on_hand"], 10);
    assert_eq!(audit[0].after.as_ref().unwrap()["on_hand"], 8);
    assert_eq!(audit[1].action, "work_order.complete");

    // Verification is a supervisor's.
    let r = f
        .act("tech", id.as_str(), json!({ "action": "verify" }))
        .await;
    assert_rule(&r, "supervisor_only");
    f.act_ok("sup", id.as_str(), json!({ "action": "verify" }))
        .await;
    let wo = f
        .act_ok("sup", id.as_str(), json!({ "action": "close" }))
        .await;
    assert_eq!(wo["state"], "closed");
    let wo = f
        .act_ok(
            "sup",
            id.as_str(),
            json!({ "action": "reopen", "reason": "Trips again" }),
        )
        .await;
    assert_eq!(wo["state"], "open");
    assert_eq!(wo["history"].as_array().unwrap().len(), 6);
    assert_eq!(wo["history"][5]["reason"], "Trips again");

    // The full record, with costs for the supervisor: 1.5 h at 45.00 plus
    // two fuses at 4.50.
    let r = f.get("sup", &format!("/api/v1/work-orders/{id}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json["cost"],
        json!({ "labour_cents": 6750, "parts_cents": 900, "total_cents": 7650 })
    );
    assert_eq!(r.json["labour"][0]["technician"], tech.as_str());
    assert_eq!(r.json["version"], wo["version"]);
    let r = f.get("tech", &format!("/api/v1/work-orders/{id}")).await;
    assert_eq!(r.json["cost"], Value::Null);

    // Every write has its audit entry, with the work order before and after.
    let audit = f.api.audit().await;
    let trail: Vec<&str> = audit
        .iter()
        .rev()
        .filter(|e| e.entity_id == id)
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        trail,
        [
            "work_order.create",
            "work_order.assign",
            "work_order.start",
            "work_order.record_item",
            "work_order.record_item",
            "work_order.log_labour",
            "work_order.use_part",
            "work_order.complete",
            "work_order.verify",
            "work_order.close",
            "work_order.reopen",
        ]
    );
    for e in audit.iter().filter(|e| e.entity_id == id) {
        if e.action == "work_order.create" {
            continue;
        }
        let (b, a) = (e.before.as_ref().unwrap(), e.after.as_ref().unwrap());
        assert_eq!(
            a["version"].as_i64().unwrap(),
            b["version"].as_i64().unwrap() + 1,
            "{}",
            e.action
        );
        assert_eq!(a["cost"], Value::Null, "audit entries carry no cost");
    }
    let e = audit
        .iter()
        .find(|e| e.action == "work_order.start")
        .unwrap();
    assert_eq!(e.before.as_ref().unwrap()["state"], "assigned");
    assert_eq!(e.after.as_ref().unwrap()["state"], "in_progress");
    assert_eq!(e.actor_id.as_deref(), Some(tech.as_str()));
}

#[tokio::test]
async fn life_on_sqlite() {
    life(TestApi::sqlite().await).await;
}

#[tokio::test]
async fn life_on_postgres() {
    life(TestApi::postgres().await).await;
}

/// Bodies and queries that cannot be work orders: 422 naming every field,
/// 400 for what is not JSON or not a query this listing takes.
async fn validation(api: TestApi) {
    let f = Fleet::new(api).await;
    let entries = f.api.audit().await.len();
    let r = f
        .post(
            "sup",
            "/api/v1/work-orders",
            json!({ "site": "bad site", "asset": "", "title": "  ", "due": "tomorrow",
                    "sla_hours": 0, "description": "a\u{0}b",
                    "checklist": [{ "key": "", "label": "x", "kind": "check" }] }),
        )
        .await;
    assert_fields(
        &r,
        &[
            "asset",
            "checklist[0].key",
            "description",
            "due",
            "site",
            "sla_hours",
            "title",
        ],
    );
    for (body, field) in [
        (json!({ "asset": "ghost" }), "asset"),
        (json!({ "asset": "wtg-1" }), "asset"),
        (json!({ "priority": "p9" }), "priority"),
        (json!({ "colour": "red" }), "colour"),
        (json!({ "sla_hours": 87_601 }), "sla_hours"),
        (
            json!({ "checklist": [
                { "key": "a", "label": "A", "kind": "check" },
                { "key": "a", "label": "B", "kind": "photo" }] }),
            "checklist",
        ),
        (
            json!({ "checklist": [{ "key": "a", "label": "A",
                    "kind": { "reading": { "unit": "V", "min": 5.0, "max": 1.0 } } }] }),
            "checklist",
        ),
    ] {
        let mut full = json!({ "site": "north", "asset": "inv-1", "title": "T" });
        for (k, v) in body.as_object().unwrap() {
            full[k] = v.clone();
        }
        let r = f.post("sup", "/api/v1/work-orders", full).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert_eq!(r.json["error"]["fields"][0]["field"], field, "{}", r.text);
    }
    // Not JSON at all.
    let r = f
        .api
        .raw(
            axum::http::Request::post("/api/v1/work-orders")
                .header("authorization", format!("Bearer {}", f.token("sup")))
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{\"site\": "))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_error(&r.json, "bad_request");
    // A viewer requests nothing; another site's user neither.
    let body = json!({ "site": "north", "asset": "inv-1", "title": "T" });
    let r = f.post("viewer", "/api/v1/work-orders", body.clone()).await;
    crate::api::testing::assert_forbidden(&r, Some("request_work"), Some("north"));
    let r = f.post("con", "/api/v1/work-orders", body).await;
    crate::api::testing::assert_forbidden(&r, Some("request_work"), Some("north"));
    assert_eq!(
        f.api.audit().await.len(),
        entries,
        "nothing refused is audited"
    );

    for bad in [
        "limit=0",
        "limit=1001",
        "state=done",
        "type=repair",
        "priority=urgent",
        // Enum values as the document lists them: none empty, none padded.
        "state=",
        "state=open,",
        "type=%20preventive",
        "priority=p1,,p2",
        "sort=title",
        "order=up",
        "due_from=yesterday",
        "cursor=zz",
        "colour=red",
        "asset=a&asset=b",
    ] {
        let r = f.get("sup", &format!("/api/v1/work-orders?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert_error(&r.json, "bad_request");
    }
    let r = f.get("sup", "/api/v1/work-orders?cursor=").await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "an empty cursor is the first page"
    );
    let r = f
        .api
        .send(axum::http::Method::GET, "/api/v1/work-orders", None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn validation_on_sqlite() {
    validation(TestApi::sqlite().await).await;
}

#[tokio::test]
async fn validation_on_postgres() {
    validation(TestApi::postgres().await).await;
}
