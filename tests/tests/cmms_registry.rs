//! End-to-end: onboarding of the demo solar site (`hil/onboarding/*.csv`)
//! into the real hub binary over HTTP, on SQLite and on PostgreSQL: each
//! file imported in order, a seventh level refused with its row named and
//! nothing of that file written, every register exported back and
//! compared with the file it came from, and the cost roll-up answering.
//!
//! Needs the hub binary (`cargo build -p dcmms-hub --bins`) and, for the
//! PostgreSQL case, the server binaries (see `tests/src/pg.rs`).

use anyhow::{ensure, Context};
use dcmms_e2e::procs::{repo_root, request_auth, HttpReply, HubProc};
use serde_json::Value;

const SITE: &str = "demo-site";
/// Files in import order, with their data rows.
const FILES: [(&str, usize); 4] = [("sites", 1), ("assets", 30), ("points", 21), ("parts", 10)];

fn onboarding(kind: &str) -> anyhow::Result<String> {
    let path = repo_root().join(format!("hil/onboarding/{kind}.csv"));
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

fn import(hub: &HubProc, kind: &str, query: &str, csv: &str) -> anyhow::Result<HttpReply> {
    request_auth(
        "POST",
        &hub.url(&format!("/api/v1/import/{kind}?{query}")),
        &hub.token,
        Some(("text/csv", csv.as_bytes().to_vec())),
    )
}

fn get(hub: &HubProc, path: &str) -> anyhow::Result<HttpReply> {
    request_auth("GET", &hub.url(path), &hub.token, None)
}

fn get_ok(hub: &HubProc, path: &str) -> anyhow::Result<Value> {
    let r = get(hub, path)?;
    ensure!(r.status == 200, "GET {path}: {} {}", r.status, r.body);
    r.json()
}

/// `(created, updated, unchanged, rows)` of a 200 answer.
fn counts(r: &HttpReply) -> anyhow::Result<(u64, u64, u64, u64)> {
    ensure!(r.status == 200, "import: {} {}", r.status, r.body);
    let j = r.json()?;
    let n = |k: &str| j[k].as_u64().with_context(|| format!("{k} in {j}"));
    Ok((n("created")?, n("updated")?, n("unchanged")?, n("rows")?))
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

fn onboard(db_url: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let hub = HubProc::start(&dir.path().join("hub"), db_url, 0)?;

    for (kind, rows) in FILES {
        let r = import(&hub, kind, "", &onboarding(kind)?)?;
        assert_eq!(counts(&r)?, (rows as u64, 0, 0, rows as u64), "{kind}");
    }

    // The tree is as the file says; points are linked to the simulator's.
    let assets = get_ok(&hub, &format!("/api/v1/assets?site={SITE}&limit=1000"))?;
    assert_eq!(assets["assets"].as_array().map(Vec::len), Some(30));
    let module = get_ok(&hub, "/api/v1/assets/mod-a1-01-01")?;
    assert_eq!(module["parent"], "str-a1-01");
    let linked = get_ok(
        &hub,
        &format!("/api/v1/assets?point={SITE}/inv-01/heatsink_temp"),
    )?;
    let ids: Vec<&str> = linked["assets"]
        .as_array()
        .context("assets")?
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, ["fan-inv-01"]);
    let children = get_ok(&hub, "/api/v1/assets/inv-01/children")?;
    assert_eq!(children["assets"].as_array().map(Vec::len), Some(3));
    let parts = get_ok(&hub, &format!("/api/v1/sites/{SITE}/parts?reorder=true"))?;
    let low: Vec<&str> = parts["parts"]
        .as_array()
        .context("parts")?
        .iter()
        .filter_map(|p| p["part"].as_str())
        .collect();
    assert_eq!(low, ["igbt-sc25"], "1 on hand at a reorder level of 1");

    // A seventh level (a cell under a module) refuses the whole file,
    // naming the row and column; the good row before it is not written.
    let header = onboarding("assets")?
        .lines()
        .next()
        .context("header")?
        .to_owned();
    let bad = format!(
        "{header}\n\
         blk-c,{SITE},,PV block C,area,,,,,high,\n\
         cell-01,{SITE},mod-a1-01-01,Cell 1,PV cell,,,,,low,\n"
    );
    let r = import(&hub, "assets", "", &bad)?;
    assert_eq!(r.status, 422, "{}", r.body);
    let j = r.json()?;
    let errors = j["error"]["report"]["errors"]
        .as_array()
        .context("report")?;
    assert_eq!(errors.len(), 1, "{j}");
    assert_eq!(errors[0]["row"], 3);
    assert_eq!(errors[0]["column"], "parent");
    assert_eq!(errors[0]["code"], "hierarchy_too_deep");
    assert_eq!(get(&hub, "/api/v1/assets/blk-c")?.status, 404);

    // Every register exports back to the lines it was imported from, as
    // UTF-8 CSV with a byte-order mark.
    for (kind, _) in FILES {
        let r = get(&hub, &format!("/api/v1/export/{kind}?site={SITE}"))?;
        assert_eq!(r.status, 200, "{kind}: {}", r.body);
        assert_eq!(r.content_type.as_deref(), Some("text/csv; charset=utf-8"));
        let text = r.body.strip_prefix('\u{feff}').context("byte-order mark")?;
        let file = onboarding(kind)?;
        assert_eq!(sorted_lines(text), sorted_lines(&file), "{kind}");
        // And imports back unchanged.
        let again = import(&hub, kind, "mode=upsert", &r.body)?;
        let rows = file.lines().count() as u64 - 1;
        assert_eq!(counts(&again)?, (0, 0, rows, rows), "{kind}");
    }

    // The cost roll-up answers (no work done yet: zero, in both forms).
    let costs = get_ok(
        &hub,
        &format!("/api/v1/costs?site={SITE}&from=2025-01-01&to=2025-12-31"),
    )?;
    assert_eq!(costs["cost"]["total"], "0.00");
    assert_eq!(costs["cost"]["total_cents"], 0);
    assert_eq!(costs["work_orders"], 0);

    // Every import left its audit entry.
    let audit = get_ok(&hub, "/api/v1/audit?entity_kind=import&limit=100")?;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .context("entries")?
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for kind in ["sites", "assets", "points", "parts"] {
        let action = format!("import.{kind}");
        assert_eq!(
            actions.iter().filter(|a| **a == action).count(),
            2,
            "{action} (first import and re-import): {actions:?}"
        );
    }
    hub.stop()
}

#[test]
fn onboarding_files_import_and_export_on_sqlite() -> anyhow::Result<()> {
    onboard("sqlite://hub.db")
}

#[test]
fn onboarding_files_import_and_export_on_postgresql() -> anyhow::Result<()> {
    let pg = dcmms_e2e::pg::PgCluster::start()?;
    onboard(pg.url())
}
