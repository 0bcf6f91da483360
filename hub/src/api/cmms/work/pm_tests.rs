//! PM plans through the router, on SQLite and PostgreSQL: creation and its
//! validation, reading and listing by scope, replacing with a version,
//! and generation now (idempotent, audited).

use super::testing::{assert_fields, assert_rule, Fleet};
use crate::api::testing::{assert_forbidden, TestApi};
use crate::store::cmms::date_str;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

fn today() -> String {
    date_str(time::OffsetDateTime::now_utc().date())
}

fn weekly(id: Option<&str>) -> Value {
    let mut body = json!({
        "site": "north",
        "asset": "inv-1",
        "title": "Clean the inverter filters",
        "checklist": [{ "key": "filters", "label": "Filters clean", "kind": "check", "required": true }],
        "trigger": { "calendar": { "every": 7, "unit": "days", "anchor": "fixed",
                                   "start": today(), "lead_days": 1 } },
    });
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    body
}

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

async fn plans(api: TestApi) {
    let f = Fleet::new(api).await;
    let r = f
        .post("sup", "/api/v1/pm-plans", weekly(Some("weekly-clean")))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["id"], "weekly-clean");
    assert_eq!(r.json["version"], 1);
    assert_eq!(r.json["next_due"], today());
    assert_eq!(r.json["work_type"], "preventive");
    assert_eq!(r.json["priority"], "p4");
    assert_eq!(r.json["trigger"]["calendar"]["every"], 7);
    assert_eq!(r.json["state"]["last_index"], Value::Null);
    let e = &f.api.audit().await[0];
    assert_eq!(
        (e.action.as_str(), e.entity_id.as_str()),
        ("pm_plan.create", "weekly-clean")
    );
    assert_eq!(
        e.after.as_ref().unwrap()["title"],
        "Clean the inverter filters"
    );

    // Supervisors of the site only.
    let r = f.post("tech", "/api/v1/pm-plans", weekly(None)).await;
    assert_forbidden(&r, Some("manage_plans"), Some("north"));
    let r = f.post("con", "/api/v1/pm-plans", weekly(None)).await;
    assert_forbidden(&r, Some("manage_plans"), Some("north"));
    assert_rule(
        &f.post("sup", "/api/v1/pm-plans", weekly(Some("weekly-clean")))
            .await,
        "duplicate",
    );

    // Every field that cannot be a plan is named.
    let calendar = |c: Value| json!({ "calendar": c });
    for (body, fields) in [
        (with(weekly(None), "asset", json!("ghost")), vec!["asset"]),
        (with(weekly(None), "asset", json!("wtg-1")), vec!["asset"]),
        (with(weekly(None), "id", json!("no spaces")), vec!["id"]),
        (with(weekly(None), "title", json!(" ")), vec!["title"]),
        (
            with(
                weekly(None),
                "trigger",
                calendar(
                    json!({ "every": 0, "unit": "days", "anchor": "fixed", "start": "2031-01-01" }),
                ),
            ),
            vec!["trigger.calendar.every"],
        ),
        (
            with(
                weekly(None),
                "trigger",
                calendar(
                    json!({ "every": 7, "unit": "days", "anchor": "fixed", "start": "2031-01-01", "lead_days": 7 }),
                ),
            ),
            vec!["trigger.calendar.lead_days"],
        ),
        (
            with(
                weekly(None),
                "trigger",
                calendar(
                    json!({ "every": 1, "unit": "weeks", "anchor": "fixed", "start": "1st of May" }),
                ),
            ),
            vec!["trigger.calendar.start"],
        ),
        (
            with(
                weekly(None),
                "trigger",
                json!({ "meter": { "point": "south/wtg/hours", "rule": { "every": { "interval": 100.0 } } } }),
            ),
            vec!["trigger.meter.point"],
        ),
        (
            with(
                weekly(None),
                "trigger",
                json!({ "meter": { "point": "north/inv/hours", "rule": { "every": { "interval": -1.0 } } } }),
            ),
            vec!["trigger.meter.rule.every.interval"],
        ),
        (
            with(
                weekly(None),
                "trigger",
                json!({ "meter": { "point": "north/inv/hours", "rule": { "every": { "interval": 5.0, "lead": 5.0 } } } }),
            ),
            vec!["trigger.meter.rule.every.lead"],
        ),
        (
            with(
                weekly(None),
                "trigger",
                json!({ "meter": { "point": "north/inv/hours",
                                   "rule": { "threshold": { "value": 5.0, "direction": "rising", "hysteresis": -0.5 } } } }),
            ),
            vec!["trigger.meter.rule.threshold.hysteresis"],
        ),
        (
            with(
                weekly(None),
                "checklist",
                json!([{ "key": "a", "label": "A", "kind": "check" }, { "key": "a", "label": "B", "kind": "check" }]),
            ),
            vec!["checklist"],
        ),
        (with(weekly(None), "colour", json!("red")), vec!["colour"]),
    ] {
        let r = f.post("sup", "/api/v1/pm-plans", body.clone()).await;
        assert_fields(&r, &fields);
    }
    // A point of another site is told apart from a malformed one (the
    // first is a rule between fields, the second the document's pattern).
    for (point, message) in [
        ("south/wtg/hours", "is not at the plan's site north"),
        (
            "no site/hours",
            "must be a telemetry point `north/device/point` of the plan's site",
        ),
        (
            "north/",
            "must be a telemetry point `north/device/point` of the plan's site",
        ),
    ] {
        let trigger =
            json!({ "meter": { "point": point, "rule": { "every": { "interval": 1.0 } } } });
        let r = f
            .post(
                "sup",
                "/api/v1/pm-plans",
                with(weekly(None), "trigger", trigger),
            )
            .await;
        assert_fields(&r, &["trigger.meter.point"]);
        assert_eq!(r.json["error"]["fields"][0]["message"], message, "{point}");
    }

    // A generated id; a meter plan.
    let meter = with(
        weekly(None),
        "trigger",
        json!({ "meter": { "point": "north/inv-1/run_hours",
                           "rule": { "every": { "interval": 500.0 } } } }),
    );
    let r = f.post("root", "/api/v1/pm-plans", meter).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let meter_id = r.json["id"].as_str().unwrap().to_owned();
    assert!(meter_id.starts_with("pm-"), "{meter_id}");
    assert_eq!(r.json["next_due"], Value::Null);
    assert_eq!(r.json["trigger"]["meter"]["rule"]["every"]["origin"], 0.0);

    // Reading and listing, within the caller's sites.
    let r = f.get("viewer", "/api/v1/pm-plans/weekly-clean").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for who in ["con", "southie"] {
        let r = f.get(who, "/api/v1/pm-plans/weekly-clean").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        let r = f.get(who, "/api/v1/pm-plans").await;
        assert_eq!(r.json["pm_plans"], json!([]), "{}", r.text);
    }
    let r = f.get("sup", "/api/v1/pm-plans/nothing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = f.get("sup", "/api/v1/pm-plans?limit=1").await;
    let first = r.json["pm_plans"][0]["id"].as_str().unwrap().to_owned();
    let next = r.json["next"].as_str().unwrap().to_owned();
    let r = f
        .get("sup", &format!("/api/v1/pm-plans?limit=1&cursor={next}"))
        .await;
    let second = r.json["pm_plans"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json["next"], Value::Null);
    let mut both = vec![first, second];
    both.sort();
    let mut expected = vec![meter_id.clone(), "weekly-clean".to_owned()];
    expected.sort();
    assert_eq!(both, expected);
    let r = f.get("sup", "/api/v1/pm-plans?site=south").await;
    assert_eq!(r.json["pm_plans"], json!([]));
    let r = f.get("sup", "/api/v1/pm-plans?asset=inv-2").await;
    assert_eq!(r.json["pm_plans"], json!([]));
    for bad in [
        "limit=0",
        "cursor=zz",
        "site=no%20good",
        "colour=red",
        "asset=",
        "asset=a%01b",
    ] {
        let r = f.get("sup", &format!("/api/v1/pm-plans?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }

    // Replacing: with the version read, at the same site.
    let uri = "/api/v1/pm-plans/weekly-clean";
    let mut put = weekly(None);
    put["title"] = json!("Clean and inspect the filters");
    put["expected_version"] = json!(1);
    let r = f.send("sup", Method::PUT, uri, put.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["version"], 2);
    assert_eq!(r.json["title"], "Clean and inspect the filters");
    let e = &f.api.audit().await[0];
    assert_eq!(e.action, "pm_plan.update");
    assert_eq!(e.before.as_ref().unwrap()["version"], 1);
    assert_eq!(e.after.as_ref().unwrap()["version"], 2);
    assert_rule(
        &f.send("sup", Method::PUT, uri, put.clone()).await,
        "version_conflict",
    );
    let r = f
        .send(
            "sup",
            Method::PUT,
            uri,
            with(put.clone(), "site", json!("south")),
        )
        .await;
    assert_fields(&r, &["site"]);
    let r = f.send("tech", Method::PUT, uri, put.clone()).await;
    assert_forbidden(&r, Some("manage_plans"), Some("north"));
    let r = f
        .send("sup", Method::PUT, "/api/v1/pm-plans/nothing", put)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Generation now: the occurrence due today, once.
    let gen = "/api/v1/pm-plans/weekly-clean/generate";
    let r = f
        .api
        .send(Method::POST, gen, Some(f.token("tech")), None)
        .await;
    assert_forbidden(&r, Some("manage_plans"), Some("north"));
    let r = f
        .api
        .send(Method::POST, gen, Some(f.token("sup")), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let wos = r.json["work_orders"].as_array().unwrap();
    assert_eq!(wos.len(), 1, "{}", r.text);
    let wo = &wos[0];
    assert_eq!(wo["state"], "open");
    assert_eq!(wo["due"], today());
    assert_eq!(wo["work_type"], "preventive");
    assert_eq!(wo["requested_by"], "pm-generator");
    assert_eq!(
        wo["pm_occurrence"],
        json!({ "plan": "weekly-clean", "index": 0 })
    );
    assert_eq!(wo["checklist"][0]["key"], "filters");
    assert_eq!(r.json["plan"]["state"]["last_index"], 0);
    let wo_id = wo["id"].as_str().unwrap().to_owned();
    let audit = f.api.audit().await;
    assert_eq!(audit[0].action, "work_order.create");
    assert_eq!(audit[0].entity_id, wo_id);
    assert_eq!(audit[0].actor_name, "sup");
    assert_eq!(audit[1].action, "pm_plan.generate");
    assert_eq!(
        audit[1].before.as_ref().unwrap()["state"]["last_index"],
        Value::Null
    );
    assert_eq!(audit[1].after.as_ref().unwrap()["state"]["last_index"], 0);
    let entries = audit.len();
    let r = f
        .api
        .send(Method::POST, gen, Some(f.token("sup")), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["work_orders"], json!([]));
    assert_eq!(
        f.api.audit().await.len(),
        entries,
        "nothing new, nothing audited"
    );
    let r = f.get("tech", "/api/v1/work-orders?type=preventive").await;
    assert_eq!(r.json["work_orders"][0]["id"], wo_id.as_str());
    let r = f
        .api
        .send(
            Method::POST,
            "/api/v1/pm-plans/nothing/generate",
            Some(f.token("sup")),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        f.api
            .metrics
            .value("dcmms_hub_pm_work_orders_created_total"),
        Some(1.0)
    );
}

#[tokio::test]
async fn plans_on_sqlite() {
    plans(TestApi::sqlite().await).await;
}

#[tokio::test]
async fn plans_on_postgres() {
    plans(TestApi::postgres().await).await;
}

/// Numbers at the ends of what JSON carries into an f64, in a plan, its
/// checklist and a work order, are stored and read back exactly on both
/// databases (PostgreSQL gives JSONB numbers back in positional notation,
/// `f64::MAX` as 309 digits), in every listing and in the audit log.
async fn extreme_numbers(api: TestApi) {
    let f = Fleet::new(api).await;
    let (max, tiny) = (f64::MAX, f64::from_bits(1));
    let limits = json!([{ "key": "volts", "label": "DC voltage",
                          "kind": { "reading": { "unit": "V", "min": -max, "max": max } } }]);
    let mut every = with(
        weekly(Some("extreme-every")),
        "trigger",
        json!({ "meter": { "point": "north/inv-1/run_hours",
                           "rule": { "every": { "interval": max, "origin": -max, "lead": tiny } } } }),
    );
    every["checklist"] = limits.clone();
    let threshold = with(
        weekly(Some("extreme-threshold")),
        "trigger",
        json!({ "meter": { "point": "north/inv-1/temp",
                           "rule": { "threshold": { "value": -max, "direction": "falling",
                                                    "hysteresis": max } } } }),
    );
    for body in [every.clone(), threshold] {
        let r = f.post("sup", "/api/v1/pm-plans", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let check_every = |plan: &Value| {
        let rule = &plan["trigger"]["meter"]["rule"]["every"];
        assert_eq!(
            (
                rule["interval"].as_f64(),
                rule["origin"].as_f64(),
                rule["lead"].as_f64()
            ),
            (Some(max), Some(-max), Some(tiny)),
            "{plan}"
        );
        let reading = &plan["checklist"][0]["kind"]["reading"];
        assert_eq!(
            (reading["min"].as_f64(), reading["max"].as_f64()),
            (Some(-max), Some(max))
        );
    };
    let r = f.get("sup", "/api/v1/pm-plans/extreme-every").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    check_every(&r.json);
    let r = f.get("sup", "/api/v1/pm-plans").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    check_every(&r.json["pm_plans"][0]);
    let rule = &r.json["pm_plans"][1]["trigger"]["meter"]["rule"]["threshold"];
    assert_eq!(
        (rule["value"].as_f64(), rule["hysteresis"].as_f64()),
        (Some(-max), Some(max))
    );

    // Replaced, and run (no readings yet): still readable.
    every.as_object_mut().unwrap().remove("id");
    every["expected_version"] = json!(1);
    let uri = "/api/v1/pm-plans/extreme-every";
    let r = f.send("sup", Method::PUT, uri, every).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = f
        .api
        .send(
            Method::POST,
            &format!("{uri}/generate"),
            Some(f.token("sup")),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    check_every(&f.get("sup", uri).await.json);

    // A work order with the same limits.
    let wo = f.create("sup", json!({ "checklist": limits })).await;
    let r = f
        .get(
            "sup",
            &format!("/api/v1/work-orders/{}", wo["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let reading = &r.json["checklist"][0]["kind"]["reading"];
    assert_eq!(
        (reading["min"].as_f64(), reading["max"].as_f64()),
        (Some(-max), Some(max))
    );
    assert_eq!(
        f.get("sup", "/api/v1/work-orders").await.status,
        StatusCode::OK
    );

    // The audit log holds the same numbers.
    let r = f.get("root", "/api/v1/audit?entity_kind=pm_plan").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let first = r.json["entries"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    check_every(&first["after"]);
}

#[tokio::test]
async fn extreme_numbers_on_sqlite() {
    extreme_numbers(TestApi::sqlite().await).await;
}

#[tokio::test]
async fn extreme_numbers_on_postgres() {
    extreme_numbers(TestApi::postgres().await).await;
}
