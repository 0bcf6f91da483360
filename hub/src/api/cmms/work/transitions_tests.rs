//! Transitions, edits and reservations through the router, on SQLite and
//! PostgreSQL: every refusal comes back with the domain rule that made
//! it, payloads are checked per action, and stock moves are audited.

use super::testing::{assert_fields, assert_rule, Fleet};
use crate::api::testing::{assert_error, assert_forbidden, TestApi};
use axum::http::{Method, StatusCode};
use dcmms_shared::cmms::transitions;
use serde_json::{json, Value};

async fn refusals(api: TestApi) {
    let f = Fleet::new(api).await;
    let (tech, tech2) = (f.id("tech"), f.id("tech2"));
    let id = f.create("sup", json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let entries = f.api.audit().await.len();

    // State machine rules, each with its code.
    assert_rule(
        &f.act("sup", &id, json!({ "action": "start" })).await,
        "not_allowed_from_state",
    );
    assert_rule(
        &f.act(
            "tech",
            &id,
            json!({ "action": "assign", "assignees": [tech] }),
        )
        .await,
        "supervisor_only",
    );
    assert_rule(
        &f.act("sup", &id, json!({ "action": "assign", "assignees": [] }))
            .await,
        "assignee_required",
    );
    assert_rule(
        &f.act(
            "sup",
            &id,
            json!({ "action": "schedule", "date": "2020-01-01" }),
        )
        .await,
        "schedule_in_past",
    );
    assert_rule(
        &f.act("sup", &id, json!({ "action": "cancel" })).await,
        "reason_required",
    );
    assert_rule(
        &f.act("sup", &id, json!({ "action": "cancel", "reason": "  " }))
            .await,
        "reason_required",
    );
    // Payloads are checked per action (422, naming the field).
    for (body, field) in [
        (json!({ "action": "approve", "date": "2031-01-01" }), "date"),
        (json!({ "action": "schedule" }), "date"),
        (json!({ "action": "schedule", "date": "soon" }), "date"),
        (json!({ "action": "assign" }), "assignees"),
        (json!({ "action": "start", "reason": "why not" }), "reason"),
        (json!({ "action": "start", "assignees": [] }), "assignees"),
        (json!({ "action": "dance" }), "action"),
        (json!({ "action": "start", "force": true }), "force"),
        (
            json!({ "action": "start", "expected_version": "one" }),
            "expected_version",
        ),
    ] {
        let r = f.act("sup", &id, body.clone()).await;
        assert_fields(&r, &[field]);
    }
    // Viewers and strangers are refused before any rule.
    let r = f.act("viewer", &id, json!({ "action": "start" })).await;
    assert_forbidden(&r, Some("execute_work"), Some("north"));
    let r = f
        .edit("viewer", &id, json!({ "comment": { "text": "hi" } }))
        .await;
    assert_forbidden(&r, Some("comment"), Some("north"));
    let r = f.act("con", &id, json!({ "action": "start" })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = f
        .act("sup", "WO-424242", json!({ "action": "start" }))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_error(&r.json, "not_found");
    assert_eq!(
        f.api.audit().await.len(),
        entries,
        "refusals are not audited"
    );

    f.act_ok(
        "sup",
        &id,
        json!({ "action": "schedule", "date": "2099-01-01" }),
    )
    .await;
    f.act_ok(
        "sup",
        &id,
        json!({ "action": "assign", "assignees": [tech] }),
    )
    .await;
    assert_rule(
        &f.act("tech2", &id, json!({ "action": "start" })).await,
        "not_assigned",
    );
    f.act_ok("tech", &id, json!({ "action": "start" })).await;
    assert_rule(
        &f.act("tech", &id, json!({ "action": "hold" })).await,
        "reason_required",
    );
    let wo = f
        .act_ok(
            "tech",
            &id,
            json!({ "action": "hold", "reason": "Waiting for fuses" }),
        )
        .await;
    assert_eq!(wo["hold_reason"], "Waiting for fuses");
    let wo = f.act_ok("tech", &id, json!({ "action": "resume" })).await;
    assert_eq!(wo["hold_reason"], Value::Null);
    assert_rule(
        &f.act("tech", &id, json!({ "action": "complete" })).await,
        "checklist_incomplete",
    );

    // Edit rules.
    for (user, edit, rule) in [
        (
            "tech",
            json!({ "log_labour": { "technician": tech2, "minutes": 30 } }),
            "own_entries_only",
        ),
        (
            "tech",
            json!({ "log_labour": { "minutes": 0 } }),
            "invalid_quantity",
        ),
        (
            "tech",
            json!({ "comment": { "text": "  " } }),
            "text_required",
        ),
        (
            "tech",
            json!({ "record_item": { "key": "nope", "input": { "check": { "passed": true } } } }),
            "unknown_checklist_item",
        ),
        (
            "tech",
            json!({ "record_item": { "key": "fan", "input": { "reading": { "value": 1.0 } } } }),
            "result_kind_mismatch",
        ),
        (
            "tech",
            json!({ "skip_item": { "key": "fan", "reason": "" } }),
            "reason_required",
        ),
        (
            "tech",
            json!({ "set_details": { "title": "Mine now" } }),
            "supervisor_only",
        ),
        (
            "tech2",
            json!({ "comment": { "text": "I can comment" } }),
            "",
        ),
        (
            "tech2",
            json!({ "record_item": { "key": "fan", "input": { "check": { "passed": true } } } }),
            "not_assigned",
        ),
        (
            "tech",
            json!({ "use_part": { "part": "fuse-10a", "quantity": 0 } }),
            "invalid_quantity",
        ),
    ] {
        let r = f.edit(user, &id, edit.clone()).await;
        if rule.is_empty() {
            assert_eq!(r.status, StatusCode::OK, "{edit}: {}", r.text);
        } else {
            assert_rule(&r, rule);
        }
    }
    for (edit, field) in [
        (
            json!({ "log_labour": { "technician": "ghost", "minutes": 5 } }),
            "edit.log_labour.technician",
        ),
        (
            json!({ "log_labour": { "minutes": 100_001 } }),
            "edit.log_labour.minutes",
        ),
        (
            json!({ "log_labour": { "minutes": 5, "date": "2031-13-01" } }),
            "edit.log_labour.date",
        ),
        (
            json!({ "use_part": { "part": "gasket", "quantity": 1 } }),
            "edit.use_part.part",
        ),
        (
            json!({ "set_priority": { "priority": "p1", "sla_hours": 0 } }),
            "edit.set_priority.sla_hours",
        ),
        (json!({ "set_due": { "due": "never" } }), "edit.set_due.due"),
        (json!({ "paint": { "colour": "red" } }), "edit"),
        (
            json!({ "set_details": { "title": " " } }),
            "edit.set_details.title",
        ),
        (
            json!({ "comment": { "text": "bell\u{7}" } }),
            "edit.comment.text",
        ),
        (
            json!({ "record_item": { "key": "fan", "input": { "signature": { "signer": "a\u{0}b" } } } }),
            "edit.record_item.input.signature.signer",
        ),
    ] {
        let r = f.edit("tech", &id, edit.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{edit}: {}",
            r.text
        );
        assert_eq!(r.json["error"]["fields"][0]["field"], field, "{}", r.text);
    }
    let r = f
        .post(
            "tech",
            &format!("/api/v1/work-orders/{id}/edits"),
            json!({}),
        )
        .await;
    assert_fields(&r, &["edit"]);

    // A part the site does not stock: completion is refused by the stock
    // rule, and nothing changes.
    let r = f
        .edit(
            "tech",
            &id,
            json!({ "use_part": { "part": "gasket", "quantity": 1, "unit_cost_cents": 120 } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = f
        .edit(
            "tech",
            &id,
            json!({ "skip_item": { "key": "fan", "reason": "Fan removed" } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let before = f
        .get("sup", &format!("/api/v1/work-orders/{id}"))
        .await
        .json;
    assert_rule(
        &f.act("tech", &id, json!({ "action": "complete" })).await,
        "insufficient_stock",
    );
    let after = f
        .get("sup", &format!("/api/v1/work-orders/{id}"))
        .await
        .json;
    assert_eq!(before, after);

    // Supervisors may correct the record after completion, technicians not.
    let other = f.create("sup", json!({ "checklist": [] })).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    f.act_ok(
        "sup",
        &other,
        json!({ "action": "assign", "assignees": [tech] }),
    )
    .await;
    f.act_ok("tech", &other, json!({ "action": "start" })).await;
    f.act_ok("tech", &other, json!({ "action": "complete" }))
        .await;
    assert_rule(
        &f.edit("tech", &other, json!({ "log_labour": { "minutes": 5 } }))
            .await,
        "not_editable_in_state",
    );
    let r = f
        .edit(
            "sup",
            &other,
            json!({ "log_labour": { "technician": tech, "minutes": 5 } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Cancelled is final; a technician may withdraw their own request only.
    let request = f.create("tech", json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_rule(
        &f.act(
            "tech2",
            &request,
            json!({ "action": "cancel", "reason": "dup" }),
        )
        .await,
        "supervisor_only",
    );
    let wo = f
        .act_ok(
            "tech",
            &request,
            json!({ "action": "cancel", "reason": "Duplicate" }),
        )
        .await;
    assert_eq!(wo["state"], "cancelled");
    assert_rule(
        &f.act(
            "sup",
            &request,
            json!({ "action": "reopen", "reason": "x" }),
        )
        .await,
        "not_allowed_from_state",
    );
}

#[tokio::test]
async fn refusals_on_sqlite() {
    refusals(TestApi::sqlite().await).await;
}

#[tokio::test]
async fn refusals_on_postgres() {
    refusals(TestApi::postgres().await).await;
}

async fn reservations(api: TestApi) {
    let f = Fleet::new(api).await;
    let id = f.create("sup", json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = format!("/api/v1/work-orders/{id}/parts");
    let reserve = |user: &'static str, body: Value| {
        let uri = uri.clone();
        let f = &f;
        async move { f.post(user, &uri, body).await }
    };
    let r = reserve("tech", json!({ "part": "fuse-10a", "qty": 3 })).await;
    assert_forbidden(&r, Some("manage_stock"), Some("north"));
    let r = reserve("sup", json!({ "part": "fuse-10a", "qty": 3 })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json,
        json!({ "work_order": id, "part": "fuse-10a", "unit": "pcs",
                "reserved_for_work_order": 3, "on_hand": 10, "reserved": 3, "available": 7 })
    );
    let e = &f.api.audit().await[0];
    assert_eq!(e.action, "work_order.reserve_part");
    assert_eq!(e.entity_id, id);
    assert_eq!(e.before.as_ref().unwrap()["reserved_for_work_order"], 0);
    assert_eq!(e.after.as_ref().unwrap()["reserved_for_work_order"], 3);
    assert_rule(
        &reserve("sup", json!({ "part": "fuse-10a", "qty": 8 })).await,
        "insufficient_stock",
    );
    assert_rule(
        &reserve("sup", json!({ "part": "fuse-10a", "qty": 0 })).await,
        "zero_quantity",
    );
    assert_fields(
        &reserve("sup", json!({ "part": "gasket", "qty": 1 })).await,
        &["part"],
    );
    assert_fields(
        &reserve("sup", json!({ "part": "fuse-10a", "qty": -1 })).await,
        &["qty"],
    );
    let r = f.get("sup", &format!("/api/v1/work-orders/{id}")).await;
    assert_eq!(
        r.json["reserved_parts"],
        json!([{ "part": "fuse-10a", "qty": 3 }])
    );

    let del = |q: &'static str| {
        let uri = format!("/api/v1/work-orders/{id}/parts/fuse-10a{q}");
        let f = &f;
        async move {
            f.api
                .send(Method::DELETE, &uri, Some(f.token("sup")), None)
                .await
        }
    };
    let r = del("?qty=1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["reserved_for_work_order"], 2);
    assert_rule(&del("?qty=5").await, "not_reserved");
    let r = del("?qty=x").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = del("").await;
    assert_eq!(r.json["reserved_for_work_order"], 0, "{}", r.text);
    assert_eq!(r.json["available"], 10);
    let r = del("").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(f.api.audit().await[0].action, "work_order.release_part");

    // Cancelling gives every reservation back, audited on the part.
    reserve("sup", json!({ "part": "fuse-10a", "qty": 4 })).await;
    f.act_ok(
        "sup",
        &id,
        json!({ "action": "cancel", "reason": "Not needed" }),
    )
    .await;
    let audit = f.api.audit().await;
    assert_eq!(audit[0].action, "part.release");
    assert_eq!(audit[0].before.as_ref().unwrap()["reserved"], 4);
    assert_eq!(audit[0].after.as_ref().unwrap()["reserved"], 0);
    assert_eq!(audit[1].action, "work_order.cancel");
    // Nothing is reserved for finished work.
    assert_rule(
        &reserve("sup", json!({ "part": "fuse-10a", "qty": 1 })).await,
        "not_editable_in_state",
    );
}

#[tokio::test]
async fn reservations_on_sqlite() {
    reservations(TestApi::sqlite().await).await;
}

#[tokio::test]
async fn reservations_on_postgres() {
    reservations(TestApi::postgres().await).await;
}

/// The table clients read is the domain's.
#[tokio::test]
async fn the_transition_table_is_the_domains() {
    let f = Fleet::new(TestApi::sqlite().await).await;
    let r = f.get("viewer", "/api/v1/work-orders/transitions").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let rows = r.json["transitions"].as_array().unwrap();
    assert_eq!(rows.len(), transitions().len());
    for (row, (from, action, to)) in rows.iter().zip(transitions()) {
        assert_eq!(row["from"], from.as_str());
        assert_eq!(row["action"], action.as_str());
        assert_eq!(row["to"], to.as_str());
    }
    assert_eq!(
        rows[0],
        json!({ "from": "requested", "action": "approve", "to": "open", "who": "supervisor" })
    );
    let r = f
        .api
        .send(Method::GET, "/api/v1/work-orders/transitions", None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// The document closes the request enums as serde does, and every pattern
/// it gives these routes is one the checks enforce.
#[test]
fn request_schemas_say_what_is_enforced() {
    let doc = serde_json::to_value(crate::api::openapi::document()).unwrap();
    let schemas = &doc["components"]["schemas"];
    for name in super::CLOSED_ENUMS {
        let variants = schemas[*name]["oneOf"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: {}", schemas[*name]));
        for v in variants.iter().filter(|v| v.get("properties").is_some()) {
            assert_eq!(v["additionalProperties"], false, "{name}: {v}");
        }
    }
    let mut patterns = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(p)) = m.get("pattern") {
                    out.push(p.clone());
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    for name in [
        "CreateWorkOrder",
        "ChecklistTask",
        "ChecklistTaskKind",
        "ChecklistInput",
        "TransitionRequest",
        "EditRequest",
        "WorkOrderEdit",
        "ReservePart",
        "CreatePmPlan",
        "UpdatePmPlan",
        "PmTrigger",
        "PmMeterTrigger",
    ] {
        assert!(schemas.get(name).is_some(), "schema {name} missing");
        walk(&schemas[name], &mut patterns);
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/api/v1/work-orders") || path.starts_with("/api/v1/pm-plans") {
            walk(item, &mut patterns);
        }
    }
    assert!(patterns.len() > 20, "{patterns:?}");
    for p in &patterns {
        assert!(
            super::PATTERNS.contains(&p.as_str()),
            "undeclared pattern {p}"
        );
    }
}
