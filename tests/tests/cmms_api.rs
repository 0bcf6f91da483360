//! End-to-end: one work order's whole life over HTTP against the real hub
//! binary, on SQLite and on PostgreSQL. The administrator registers a site,
//! an asset and a stocked part through the registry routes and creates a
//! technician; the technician requests work, the administrator approves,
//! schedules and assigns it, the technician executes it (checklist,
//! labour, parts), completion is refused until the checklist is done,
//! verification is refused to the technician, and the audit log shows
//! every step with its author. The hub's own PM scheduler runs at start.

use anyhow::{ensure, Context};
use dcmms_e2e::procs::{
    dump_log, get_json_auth, get_text, login, post_json_auth, put_json_auth, send_json_auth,
    wait_for, HubProc,
};
use serde_json::{json, Value};
use std::time::Duration;

const TECH_PASSWORD: &str = "technician e2e password";

struct Api<'a> {
    hub: &'a HubProc,
}

impl Api<'_> {
    fn post(&self, token: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        post_json_auth(&self.hub.url(path), token, &body)
    }

    /// A request whose refusal the test checks: (status, body).
    fn send(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Value,
    ) -> anyhow::Result<(u16, Value)> {
        send_json_auth(method, &self.hub.url(path), token, Some(&body))
    }

    fn act(&self, token: &str, id: &str, body: Value) -> anyhow::Result<Value> {
        self.post(
            token,
            &format!("/api/v1/work-orders/{id}/transitions"),
            body,
        )
    }

    fn edit(&self, token: &str, id: &str, edit: Value) -> anyhow::Result<Value> {
        self.post(
            token,
            &format!("/api/v1/work-orders/{id}/edits"),
            json!({ "edit": edit }),
        )
    }
}

/// The refusal's status and rule.
fn refusal(r: &(u16, Value)) -> (u16, &str) {
    (r.0, r.1["error"]["rule"].as_str().unwrap_or(""))
}

fn life(hub: &HubProc) -> anyhow::Result<()> {
    let api = Api { hub };
    let admin = hub.token.as_str();

    // The hub's scheduler made its first pass at start.
    wait_for(
        "the first PM scheduler pass",
        Duration::from_secs(30),
        || {
            let text = get_text(&hub.url("/metrics")).ok()?;
            text.lines()
                .any(|l| l.starts_with("dcmms_hub_pm_runs_total ") && !l.ends_with(" 0"))
                .then_some(())
        },
    )?;

    // Registers, through the registry routes.
    api.post(
        admin,
        "/api/v1/sites",
        json!({ "id": "north", "name": "North solar park", "timezone": "Europe/Madrid" }),
    )?;
    api.post(
        admin,
        "/api/v1/assets",
        json!({ "id": "inv-01", "site": "north", "name": "Inverter 1", "kind": "inverter" }),
    )?;
    api.post(
        admin,
        "/api/v1/sites/north/parts",
        json!({ "part": "fuse-10a", "name": "Fuse 10 A", "unit": "pcs",
                "unit_cost_cents": 450, "on_hand": 10 }),
    )?;

    // A technician of the site.
    let user = api.post(
        admin,
        "/api/v1/users",
        json!({ "username": "tina", "password": TECH_PASSWORD, "hourly_rate_cents": 4000 }),
    )?;
    let tina_id = user["id"].as_str().context("user id")?.to_owned();
    put_json_auth(
        &hub.url(&format!("/api/v1/users/{tina_id}/sites/north")),
        admin,
        &json!({ "role": "technician" }),
    )?;
    let tina = login(hub.api, "tina", TECH_PASSWORD)?;

    // The technician requests work; it starts as a request.
    let wo = api.post(
        &tina,
        "/api/v1/work-orders",
        json!({
            "site": "north", "asset": "inv-01", "priority": "p2",
            "title": "Inverter trips on overtemperature",
            "checklist": [
                { "key": "fan", "label": "Cooling fan runs", "kind": "check", "required": true },
                { "key": "sign", "label": "Site owner signs off", "kind": "signature", "required": true },
            ],
        }),
    )?;
    let id = wo["id"].as_str().context("work-order id")?.to_owned();
    ensure!(wo["state"] == "requested", "{wo}");
    ensure!(wo["version"] == 1, "{wo}");

    // The administrator approves, schedules and assigns it.
    let tomorrow = time::OffsetDateTime::now_utc()
        .date()
        .next_day()
        .context("date")?;
    let day = format!(
        "{:04}-{:02}-{:02}",
        tomorrow.year(),
        u8::from(tomorrow.month()),
        tomorrow.day()
    );
    api.act(
        admin,
        &id,
        json!({ "action": "approve", "expected_version": 1 }),
    )?;
    api.act(admin, &id, json!({ "action": "schedule", "date": day }))?;
    let stale = api.send(
        admin,
        "POST",
        &format!("/api/v1/work-orders/{id}/transitions"),
        json!({ "action": "assign", "assignees": [tina_id], "expected_version": 1 }),
    )?;
    ensure!(refusal(&stale) == (409, "version_conflict"), "{:?}", stale);
    let wo = api.act(
        admin,
        &id,
        json!({ "action": "assign", "assignees": [tina_id] }),
    )?;
    ensure!(
        wo["state"] == "assigned" && wo["scheduled_for"] == day.as_str(),
        "{wo}"
    );
    let mine = get_json_auth(&hub.url("/api/v1/work-orders?assignee=me"), &tina)?;
    ensure!(mine["work_orders"][0]["id"] == id.as_str(), "{mine}");

    // The technician executes it.
    api.act(&tina, &id, json!({ "action": "start" }))?;
    api.edit(
        &tina,
        &id,
        json!({ "record_item": { "key": "fan", "input": { "check": { "passed": true } } } }),
    )?;
    api.edit(
        &tina,
        &id,
        json!({ "log_labour": { "minutes": 45, "note": "Replaced the fuse" } }),
    )?;
    api.edit(
        &tina,
        &id,
        json!({ "use_part": { "part": "fuse-10a", "quantity": 1 } }),
    )?;
    api.edit(
        &tina,
        &id,
        json!({ "comment": { "text": "Fan was fine; fuse was blown" } }),
    )?;
    let early = api.send(
        &tina,
        "POST",
        &format!("/api/v1/work-orders/{id}/transitions"),
        json!({ "action": "complete" }),
    )?;
    ensure!(
        refusal(&early) == (409, "checklist_incomplete"),
        "{:?}",
        early
    );
    api.edit(&tina, &id, json!({ "record_item": { "key": "sign", "input": { "signature": { "signer": "Ana Owner" } } } }))?;
    let wo = api.act(&tina, &id, json!({ "action": "complete" }))?;
    ensure!(wo["state"] == "completed", "{wo}");
    let verify = api.send(
        &tina,
        "POST",
        &format!("/api/v1/work-orders/{id}/transitions"),
        json!({ "action": "verify" }),
    )?;
    ensure!(refusal(&verify) == (409, "supervisor_only"), "{:?}", verify);

    // The administrator verifies and closes it; the record has its cost.
    api.act(admin, &id, json!({ "action": "verify" }))?;
    let wo = api.act(admin, &id, json!({ "action": "close" }))?;
    ensure!(wo["state"] == "closed", "{wo}");
    let full = get_json_auth(&hub.url(&format!("/api/v1/work-orders/{id}")), admin)?;
    ensure!(
        full["cost"] == json!({ "labour_cents": 3000, "parts_cents": 450, "total_cents": 3450 }),
        "{full}"
    );
    ensure!(
        full["history"].as_array().map(Vec::len) == Some(7),
        "{full}"
    );
    let part = get_json_auth(&hub.url("/api/v1/sites/north/parts/fuse-10a"), admin)?;
    ensure!(part["on_hand"] == 9, "the fuse left the shelf: {part}");

    // The audit log shows every step, by whom, with the state it left.
    let audit = get_json_auth(
        &hub.url(&format!(
            "/api/v1/audit?entity_kind=work_order&entity_id={id}"
        )),
        admin,
    )?;
    let entries = audit["entries"].as_array().context("entries")?;
    let steps: Vec<(String, String, String)> = entries
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_owned(),
                e["actor_name"].as_str().unwrap_or("").to_owned(),
                e["after"]["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected = [
        ("work_order.create", "tina", "requested"),
        ("work_order.approve", "admin", "open"),
        ("work_order.schedule", "admin", "scheduled"),
        ("work_order.assign", "admin", "assigned"),
        ("work_order.start", "tina", "in_progress"),
        ("work_order.record_item", "tina", "in_progress"),
        ("work_order.log_labour", "tina", "in_progress"),
        ("work_order.use_part", "tina", "in_progress"),
        ("work_order.comment", "tina", "in_progress"),
        ("work_order.record_item", "tina", "in_progress"),
        ("work_order.complete", "tina", "completed"),
        ("work_order.verify", "admin", "verified"),
        ("work_order.close", "admin", "closed"),
    ];
    let got: Vec<(&str, &str, &str)> = steps
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    ensure!(got == expected, "audit trail {got:?}");
    for e in entries
        .iter()
        .filter(|e| e["action"] != "work_order.create")
    {
        ensure!(
            e["before"]["version"].as_i64().map(|v| v + 1) == e["after"]["version"].as_i64(),
            "before/after versions of {e}"
        );
    }
    Ok(())
}

fn run(hub: HubProc) -> anyhow::Result<()> {
    let result = life(&hub);
    if result.is_err() {
        dump_log(&hub.log);
    }
    result?;
    hub.stop()
}

#[test]
fn a_work_order_lives_its_life_over_http_on_sqlite() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    run(HubProc::start(
        &dir.path().join("hub"),
        "sqlite://hub.db",
        0,
    )?)
}

#[test]
fn a_work_order_lives_its_life_over_http_on_postgresql() -> anyhow::Result<()> {
    let pg = dcmms_e2e::pg::PgCluster::start()?;
    let dir = tempfile::tempdir()?;
    run(HubProc::start(&dir.path().join("hub"), pg.url(), 0)?)
}
