//! CSV onboarding through the router: each kind imported then exported
//! and compared, all-or-nothing files with the report naming row and
//! column, create-only versus upsert (moves included), permission at every
//! site a file touches, body size and content type, and the audit entries.

use super::testkit::{count, import, import_bytes, on_both, post, reserve};
use crate::api::testing::{assert_error, assert_forbidden, Resp, TestApi};
use axum::http::{header, Request, StatusCode};
use dcmms_shared::cmms::role::UserKind;
use dcmms_shared::cmms::Role;
use serde_json::json;

const SITES: &str = "id,name,timezone\n\
    north,Solar North,Europe/Madrid\n\
    south,\"Solar South, Ridge\",Europe/Lisbon\n";

/// Six levels at north (the site and five of assets), children before
/// their parents in places; one asset at south.
const ASSETS: &str = "id,site,parent,name,kind,manufacturer,model,serial,installed_on,criticality,location\n\
    mod-01,north,str-01,Module 1,PV module,,,,,low,\n\
    blk-a,north,,Block A,area,,,,,high,North field\n\
    inv-01,north,blk-a,Inverter 1,inverter,SMA,Sunny Central 2500,SC-0001,2021-06-30,critical,\"Row 3, position 4\"\n\
    str-01,north,cb-01,String 1,pv_string,,,,,low,\n\
    cb-01,north,inv-01,Combiner 1,combiner_box,,,,2021-06-30,medium,\n\
    s-inv,south,,Inverter S,inverter,,,,,medium,\n";

const POINTS: &str = "asset,point\n\
    inv-01,north/inv-01/ac_power\n\
    inv-01,north/inv-01/dc_voltage\n\
    s-inv,south/inv-01/ac_power\n";

const PARTS: &str = "site,part,name,unit,unit_cost,reorder_level,on_hand\n\
    north,fuse-10a,\"Fuse 10 A, gPV\",pcs,4.50,20,85\n\
    north,oil-gx,Gear oil,ml,0.02,,12000\n\
    south,brake-pad,Brake pad set,pcs,310.00,2,4\n";

fn summary(r: &Resp, created: u64, updated: u64, unchanged: u64, rows: u64) {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (
            r.json["created"].as_u64(),
            r.json["updated"].as_u64(),
            r.json["unchanged"].as_u64(),
            r.json["rows"].as_u64()
        ),
        (Some(created), Some(updated), Some(unchanged), Some(rows)),
        "{}",
        r.text
    );
}

/// `(row, column, code)` of a refused file's report.
fn report(r: &Resp) -> Vec<(u64, String, String)> {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "invalid", "{}", r.text);
    r.json["error"]["report"]["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.text))
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["column"].as_str().unwrap_or("").to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// An export's text (checked to be CSV with a byte-order mark).
async fn export(api: &TestApi, token: &str, kind: &str, query: &str) -> String {
    let req = Request::get(format!("/api/v1/export/{kind}?{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(api.app.clone(), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "export {kind}");
    let ct = resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(ct, "text/csv; charset=utf-8");
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    text.strip_prefix('\u{feff}')
        .unwrap_or_else(|| panic!("no byte-order mark: {text:?}"))
        .to_owned()
}

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

async fn import_then_export(api: TestApi) {
    let root = api.admin().await;
    let r = import(&api, &root, "sites", "", SITES).await;
    summary(&r, 2, 0, 0, 2);
    assert_eq!(r.json["dry_run"], false);
    let r = import(&api, &root, "assets", "", ASSETS).await;
    summary(&r, 6, 0, 0, 6);
    let r = import(&api, &root, "points", "", POINTS).await;
    summary(&r, 3, 0, 0, 3);
    let r = import(&api, &root, "parts", "", PARTS).await;
    summary(&r, 3, 0, 0, 3);

    // What was written, through the other routes.
    let r = api.get("/api/v1/assets/mod-01", &root).await;
    assert_eq!(
        (r.json["parent"].as_str(), r.json["kind"].as_str()),
        (Some("str-01"), Some("PV module"))
    );
    let r = api.get("/api/v1/assets/inv-01", &root).await;
    assert_eq!(
        r.json["points"],
        json!(["north/inv-01/ac_power", "north/inv-01/dc_voltage"])
    );
    assert_eq!(r.json["location"], "Row 3, position 4");
    let r = api.get("/api/v1/sites/north/parts/fuse-10a", &root).await;
    assert_eq!(
        (
            r.json["on_hand"].as_u64(),
            r.json["unit_cost_cents"].as_u64()
        ),
        (Some(85), Some(450))
    );
    assert_eq!(
        api.get("/api/v1/sites/south", &root).await.json["name"],
        "Solar South, Ridge"
    );

    // Audit: one entry per record, one per file.
    let audit = api.audit().await;
    let file = audit.iter().find(|e| e.action == "import.assets").unwrap();
    assert_eq!(file.entity_kind, "import");
    assert_eq!(file.site, None, "the file touches two sites");
    let after = file.after.as_ref().unwrap();
    assert_eq!(
        (&after["created"], &after["rows"], &after["mode"]),
        (&json!(6), &json!(6), &json!("create_only"))
    );
    assert_eq!(after["sites"], json!(["north", "south"]));
    assert_eq!(
        audit.iter().filter(|e| e.action == "asset.create").count(),
        6
    );
    let created = audit
        .iter()
        .find(|e| e.action == "asset.create" && e.entity_id == "cb-01")
        .unwrap();
    assert_eq!(created.after.as_ref().unwrap()["parent"], "inv-01");
    let linked = audit
        .iter()
        .find(|e| e.action == "asset.points_set" && e.entity_id == "inv-01")
        .unwrap();
    assert_eq!(linked.before.as_ref().unwrap()["points"], json!([]));
    assert_eq!(
        audit.iter().filter(|e| e.action == "part.create").count(),
        3
    );
    assert_eq!(
        audit.iter().filter(|e| e.action == "site.create").count(),
        2
    );

    // Export: the same records, and importing it back changes nothing.
    for (kind, input, rows) in [
        ("sites", SITES, 2),
        ("assets", ASSETS, 6),
        ("points", POINTS, 3),
        ("parts", PARTS, 3),
    ] {
        let text = export(&api, &root, kind, "").await;
        assert_eq!(sorted_lines(&text), sorted_lines(input), "{kind}");
        let r = import_bytes(
            &api,
            &root,
            kind,
            "mode=upsert",
            format!("\u{feff}{text}").into_bytes(),
            "text/csv; charset=utf-8",
        )
        .await;
        summary(&r, 0, 0, rows, rows);
    }
    let south = export(&api, &root, "assets", "site=south").await;
    assert_eq!(south.lines().count(), 2, "{south}");
}
on_both!(import_then_export);

async fn all_or_nothing(api: TestApi) {
    let root = api.admin().await;
    summary(&import(&api, &root, "sites", "", SITES).await, 2, 0, 0, 2);
    summary(&import(&api, &root, "assets", "", ASSETS).await, 6, 0, 0, 6);
    let (assets, entries) = (count(&api, "assets").await, api.audit().await.len());

    // Good rows, a 7th level (line 4) and a row without a name (line 5):
    // nothing is written, the report names each row and column.
    let file =
        "id,site,parent,name,kind,manufacturer,model,serial,installed_on,criticality,location\n\
        blk-b,north,,Block B,area,,,,,high,\n\
        inv-02,north,blk-b,Inverter 2,inverter,,,,,high,\n\
        cell-01,north,mod-01,Cell 1,other,,,,,low,\n\
        inv-03,north,blk-b,,inverter,,,,,high,\n";
    let r = import(&api, &root, "assets", "", file).await;
    assert_eq!(
        report(&r),
        [
            (4, "parent".to_owned(), "hierarchy_too_deep".to_owned()),
            (5, "name".to_owned(), "required".to_owned()),
        ]
    );
    assert_eq!(r.json["error"]["report"]["rows"], 4);
    assert_eq!(r.json["error"]["report"]["errors_omitted"], 0);
    let msg = r.json["error"]["message"].as_str().unwrap();
    assert!(msg.contains("nothing was imported"), "{msg}");
    assert!(r.json["error"]["report"]["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("cell-01"));
    assert_eq!(count(&api, "assets").await, assets);
    assert_eq!(api.audit().await.len(), entries);

    // Unknown sites, bad values and a broken header are reported too.
    let r = import(
        &api,
        &root,
        "parts",
        "",
        "site,part,name,unit,unit_cost,reorder_level,on_hand\nwest,p,P,pcs,1.234,,1\n",
    )
    .await;
    assert_eq!(
        report(&r),
        [
            (2, "site".to_owned(), "unknown_site".to_owned()),
            (2, "unit_cost".to_owned(), "invalid_amount".to_owned()),
        ]
    );
    let r = import(
        &api,
        &root,
        "points",
        "",
        "asset,pont\ninv-01,north/inv-01/x\n",
    )
    .await;
    let codes: Vec<String> = report(&r).into_iter().map(|e| e.2).collect();
    assert_eq!(codes, ["unknown_column", "missing_columns"]);
    assert_eq!(
        report(&import(&api, &root, "sites", "", "").await)[0].2,
        "missing_header"
    );
    let r = import_bytes(
        &api,
        &root,
        "sites",
        "",
        b"id,name,timezone\nn\xff,N,UTC\n".to_vec(),
        "text/csv",
    )
    .await;
    assert_eq!(report(&r)[0].2, "invalid_utf8");
    let r = import(
        &api,
        &root,
        "sites",
        "",
        "id,name,timezone\nn1,N\u{0}1,UTC\n",
    )
    .await;
    assert_eq!(report(&r), [(2, String::new(), "malformed_csv".to_owned())]);
    assert_eq!(count(&api, "parts").await, 0);
    assert_eq!(api.audit().await.len(), entries);
}
on_both!(all_or_nothing);

async fn create_only_and_upsert(api: TestApi) {
    let root = api.admin().await;
    summary(&import(&api, &root, "sites", "", SITES).await, 2, 0, 0, 2);

    let r = import(&api, &root, "sites", "", SITES).await;
    assert_eq!(
        report(&r),
        [
            (2, "id".to_owned(), "already_exists".to_owned()),
            (3, "id".to_owned(), "already_exists".to_owned()),
        ]
    );
    let changed = "id,name,timezone\n\
        north,Solar Park North,Europe/Madrid\n\
        south,\"Solar South, Ridge\",Europe/Lisbon\n\
        east,Solar East,UTC\n";
    // A dry run counts and writes nothing.
    let entries = api.audit().await.len();
    let r = import(&api, &root, "sites", "mode=upsert&dry_run=true", changed).await;
    summary(&r, 1, 1, 1, 3);
    assert_eq!(r.json["dry_run"], true);
    assert_eq!(
        api.get("/api/v1/sites/east", &root).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(api.audit().await.len(), entries);
    let r = import(&api, &root, "sites", "mode=upsert", changed).await;
    summary(&r, 1, 1, 1, 3);
    assert_eq!(
        api.get("/api/v1/sites/north", &root).await.json["name"],
        "Solar Park North"
    );
    let audit = api.audit().await;
    let e = audit.iter().find(|e| e.action == "site.update").unwrap();
    assert_eq!(e.before.as_ref().unwrap()["name"], "Solar North");
    assert_eq!(e.after.as_ref().unwrap()["name"], "Solar Park North");

    // Assets: swapping a parent and its child is one valid upsert.
    summary(&import(&api, &root, "assets", "", ASSETS).await, 6, 0, 0, 6);
    let swap = "id,site,parent,name,kind,manufacturer,model,serial,installed_on,criticality,location\n\
        blk-a,north,inv-01,Block A,area,,,,,high,North field\n\
        inv-01,north,,Inverter 1,inverter,SMA,Sunny Central 2500,SC-0001,2021-06-30,critical,\"Row 3, position 4\"\n";
    let r = import(&api, &root, "assets", "mode=upsert", swap).await;
    summary(&r, 0, 2, 0, 2);
    assert!(api.get("/api/v1/assets/inv-01", &root).await.json["parent"].is_null());
    assert_eq!(
        api.get("/api/v1/assets/blk-a", &root).await.json["parent"],
        "inv-01"
    );
    let audit = api.audit().await;
    let e = audit
        .iter()
        .find(|e| e.action == "asset.update" && e.entity_id == "blk-a")
        .unwrap();
    assert!(e.before.as_ref().unwrap()["parent"].is_null());
    assert_eq!(e.after.as_ref().unwrap()["parent"], "inv-01");

    // A move whose old subtree, carried along, would be too deep for a
    // moment: x1 goes under h3 while its child c1 leaves it for h3 too.
    let head = ASSETS.lines().next().unwrap();
    let row = |id: &str, parent: &str| format!("{id},south,{parent},{id},area,,,,,low,\n");
    let tree: String = [
        ("h1", ""),
        ("h2", "h1"),
        ("h3", "h2"),
        ("x1", ""),
        ("c1", "x1"),
        ("d1", "c1"),
    ]
    .iter()
    .map(|(id, parent)| row(id, parent))
    .collect();
    summary(
        &import(&api, &root, "assets", "", &format!("{head}\n{tree}")).await,
        6,
        0,
        0,
        6,
    );
    let moves = format!("{head}\n{}{}", row("x1", "h3"), row("c1", "h3"));
    summary(
        &import(&api, &root, "assets", "mode=upsert", &moves).await,
        0,
        2,
        0,
        2,
    );
    assert_eq!(
        api.get("/api/v1/assets/d1", &root).await.json["parent"],
        "c1"
    );
    assert_eq!(
        api.get("/api/v1/assets/c1", &root).await.json["parent"],
        "h3"
    );

    // Parts: the count replaces on-hand, never below what is reserved;
    // a stored part's unit does not change.
    summary(&import(&api, &root, "parts", "", PARTS).await, 3, 0, 0, 3);
    reserve(&api, "north", "inv-01", "fuse-10a", 30).await;
    let recount = |on_hand: u32, unit: &str| {
        format!(
            "site,part,name,unit,unit_cost,reorder_level,on_hand\n\
             north,fuse-10a,\"Fuse 10 A, gPV\",{unit},4.75,20,{on_hand}\n"
        )
    };
    let r = import(&api, &root, "parts", "mode=upsert", &recount(40, "pcs")).await;
    summary(&r, 0, 1, 0, 1);
    let r = api.get("/api/v1/sites/north/parts/fuse-10a", &root).await;
    assert_eq!(
        (
            r.json["on_hand"].as_u64(),
            r.json["reserved"].as_u64(),
            r.json["unit_cost"].as_str()
        ),
        (Some(40), Some(30), Some("4.75"))
    );
    let r = import(&api, &root, "parts", "mode=upsert", &recount(20, "pcs")).await;
    assert_eq!(
        report(&r),
        [(2, "on_hand".to_owned(), "count_below_reserved".to_owned())]
    );
    let r = import(&api, &root, "parts", "mode=upsert", &recount(40, "box")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json["error"]["rule"], "unit_change");
    let r = import(&api, &root, "parts", "", &recount(40, "pcs")).await;
    assert_eq!(
        report(&r),
        [(2, "part".to_owned(), "already_exists".to_owned())]
    );

    // Points: create-only refuses a stored link, upsert skips it.
    summary(&import(&api, &root, "points", "", POINTS).await, 3, 0, 0, 3);
    let more = "asset,point\ninv-01,north/inv-01/ac_power\ninv-01,north/inv-01/frequency\n";
    assert_eq!(
        report(&import(&api, &root, "points", "", more).await)[0].2,
        "already_exists"
    );
    summary(
        &import(&api, &root, "points", "mode=upsert", more).await,
        1,
        0,
        1,
        2,
    );
    let r = api.get("/api/v1/assets/inv-01", &root).await;
    assert_eq!(r.json["points"].as_array().unwrap().len(), 3);
}
on_both!(create_only_and_upsert);

async fn refusals(api: TestApi) {
    let root = api.admin().await;
    summary(&import(&api, &root, "sites", "", SITES).await, 2, 0, 0, 2);
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
    let sup = api.login("sup").await;
    let tech = api.login("tech").await;
    let entries = api.audit().await.len();

    // A file touching a site the caller may not change: 403 naming it,
    // before any check of the file's contents.
    let r = import(&api, &sup, "assets", "", ASSETS).await;
    assert_forbidden(&r, Some("manage_assets"), Some("south"));
    let r = import(
        &api,
        &sup,
        "assets",
        "",
        &ASSETS.replace(",south,", ",zz top,"),
    )
    .await;
    assert_eq!(
        report(&r)[0].1,
        "site",
        "an invalid site id is the parser's to report"
    );
    let north_only: String = ASSETS
        .lines()
        .filter(|l| !l.contains("south"))
        .map(|l| format!("{l}\n"))
        .collect();
    let r = import(&api, &tech, "assets", "", &north_only).await;
    assert_forbidden(&r, Some("manage_assets"), Some("north"));
    summary(
        &import(&api, &sup, "assets", "", &north_only).await,
        5,
        0,
        0,
        5,
    );
    let r = import(&api, &sup, "sites", "mode=upsert", SITES).await;
    assert_forbidden(&r, Some("manage_fleet"), Some("north"));
    let r = import(&api, &sup, "parts", "", PARTS).await;
    assert_forbidden(&r, Some("manage_stock"), Some("south"));
    // A stored asset moved by the file touches its current site too.
    let r = post(
        &api,
        "/api/v1/assets",
        &root,
        json!({ "id": "s-1", "site": "south", "name": "S", "kind": "area" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let grab =
        "id,site,parent,name,kind,manufacturer,model,serial,installed_on,criticality,location\n\
        s-1,north,,S,area,,,,,low,\n";
    let r = import(&api, &sup, "assets", "mode=upsert", grab).await;
    assert_forbidden(&r, Some("manage_assets"), Some("south"));
    let r = import(&api, &sup, "points", "", "asset,point\ns-1,south/d/p\n").await;
    assert_forbidden(&r, Some("manage_assets"), Some("south"));
    // The north-only import (five assets and the file) and s-1.
    let entries = entries + 5 + 1 + 1;
    assert_eq!(api.audit().await.len(), entries);

    // Body size, content type, kind and query.
    let big = vec![b'x'; super::csv_import::MAX_IMPORT_BYTES + 1];
    let r = import_bytes(&api, &root, "sites", "", big, "text/csv").await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&r.json, "payload_too_large");
    let r = import_bytes(&api, &root, "sites", "", SITES.into(), "application/json").await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&r.json, "unsupported_media_type");
    let r = import_bytes(&api, &root, "sites", "", SITES.into(), "text/plain").await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = import(&api, &root, "users", "", SITES).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_error(&r.json, "not_found");
    for q in ["mode=replace", "dry_run=maybe", "colour=red"] {
        let r = import(&api, &root, "sites", q, SITES).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.text);
    }
    let r = import(&api, "not-a-token", "sites", "", SITES).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.audit().await.len(), entries);

    // Export: what the caller sees; unit costs only with view_costs.
    let text = export_status(&api, &tech, "parts", "site=north").await;
    assert_eq!(text.0, StatusCode::FORBIDDEN);
    let text = export_status(&api, &tech, "parts", "").await;
    assert_eq!(
        text.1,
        "\u{feff}site,part,name,unit,unit_cost,reorder_level,on_hand\n"
    );
    let text = export_status(&api, &sup, "assets", "").await;
    assert!(
        !text.1.contains("s-1") && text.1.contains("blk-a"),
        "{}",
        text.1
    );
    assert_eq!(
        export_status(&api, &sup, "assets", "site=south").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        export_status(&api, &sup, "things", "").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        export_status(&api, &sup, "sites", "site=a%20b").await.0,
        StatusCode::BAD_REQUEST
    );
}
on_both!(refusals);

async fn export_status(
    api: &TestApi,
    token: &str,
    kind: &str,
    query: &str,
) -> (StatusCode, String) {
    let r = api
        .get(&format!("/api/v1/export/{kind}?{query}"), token)
        .await;
    (r.status, r.text)
}

/// Files naming more sites than a query may bind, and thousands of assets
/// at one site written for real: no limit of the databases shows through.
/// (New assets are written a level at a time, with one check of the
/// site's hierarchy per level, so the time grows linearly with the file.)
async fn large_files(api: TestApi) {
    let root = api.admin().await;
    let mut sites = String::from("id,name,timezone\n");
    for n in 0..40_000 {
        sites.push_str(&format!("site-{n:05},Site {n},UTC\n"));
    }
    let started = std::time::Instant::now();
    let r = import(&api, &root, "sites", "dry_run=true", &sites).await;
    summary(&r, 40_000, 0, 0, 40_000);
    eprintln!("sites.csv, 40000 rows, dry run: {:?}", started.elapsed());
    let r = import(
        &api,
        &root,
        "parts",
        "",
        "site,part,name,unit,unit_cost,reorder_level,on_hand\n",
    )
    .await;
    summary(&r, 0, 0, 0, 0);

    summary(&import(&api, &root, "sites", "", SITES).await, 2, 0, 0, 2);
    let head = ASSETS.lines().next().unwrap();
    // Strings before their inverters, inverters before their blocks.
    let mut assets = format!("{head}\n");
    for b in 0..10 {
        for i in 0..10 {
            for k in 0..49 {
                assets.push_str(&format!(
                    "str-{b}-{i}-{k:02},north,inv-{b}-{i},String {b}.{i}.{k},pv_string,,,,,low,\n"
                ));
            }
            assets.push_str(&format!(
                "inv-{b}-{i},north,blk-{b},Inverter {b}.{i},inverter,SMA,SC 2500,SN{b}{i},2021-06-30,high,\n"
            ));
        }
        assets.push_str(&format!("blk-{b},north,,Block {b},area,,,,,high,\n"));
    }
    let started = std::time::Instant::now();
    let r = import(&api, &root, "assets", "", &assets).await;
    summary(&r, 5010, 0, 0, 5010);
    eprintln!("assets.csv, 5010 rows, written: {:?}", started.elapsed());
    assert_eq!(count(&api, "assets").await, 5010);
    let r = api.get("/api/v1/assets/str-9-9-48", &root).await;
    assert_eq!(r.json["parent"], "inv-9-9", "{}", r.text);
    let r = api
        .get("/api/v1/assets/inv-9-9/children?limit=1000", &root)
        .await;
    assert_eq!(r.json["assets"].as_array().map(Vec::len), Some(49));
    let created = api
        .audit()
        .await
        .iter()
        .filter(|e| e.action == "asset.create")
        .count();
    assert_eq!(created, 5010, "one audit entry per asset");
}
on_both!(large_files);

/// An upsert that creates assets under ones it moves, across sites and
/// levels: each level's moves are written before the next level's new
/// assets, so every new asset finds its parent where the file puts it.
async fn new_assets_follow_moves(api: TestApi) {
    let root = api.admin().await;
    summary(&import(&api, &root, "sites", "", SITES).await, 2, 0, 0, 2);
    summary(&import(&api, &root, "assets", "", ASSETS).await, 6, 0, 0, 6);
    let head = ASSETS.lines().next().unwrap();
    // s-inv moves from south to under blk-a at north; a new combiner goes
    // under it and a new string under that; a new block at south takes
    // a new inverter. Listed children first.
    let file = format!(
        "{head}\n\
         s-str,north,s-cb,String S,pv_string,,,,,low,\n\
         s-cb,north,s-inv,Combiner S,combiner_box,,,,,medium,\n\
         s-inv,north,blk-a,Inverter S,inverter,,,,,medium,\n\
         b-inv,south,b-blk,Inverter B,inverter,,,,,medium,\n\
         b-blk,south,,Block B,area,,,,,high,\n"
    );
    let r = import(&api, &root, "assets", "mode=upsert", &file).await;
    summary(&r, 4, 1, 0, 5);
    for (id, site, parent) in [
        ("s-inv", "north", "blk-a"),
        ("s-cb", "north", "s-inv"),
        ("s-str", "north", "s-cb"),
        ("b-inv", "south", "b-blk"),
    ] {
        let r = api.get(&format!("/api/v1/assets/{id}"), &root).await;
        assert_eq!(
            (r.json["site"].as_str(), r.json["parent"].as_str()),
            (Some(site), Some(parent)),
            "{}",
            r.text
        );
    }
    // Too deep once written: nothing is.
    let deeper = format!(
        "{head}\n\
         s-leaf,north,s-str,Leaf,area,,,,,low,\n\
         s-leaf2,north,s-leaf,Leaf 2,area,,,,,low,\n"
    );
    let r = import(&api, &root, "assets", "", &deeper).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(count(&api, "assets").await, 10);
}
on_both!(new_assets_follow_moves);
