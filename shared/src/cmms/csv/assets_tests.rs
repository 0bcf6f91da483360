use time::macros::date;

use super::*;
use crate::cmms::csv::report::RowError;
use crate::cmms::csv::MergeSummary;

const HEADER: &str =
    "id,site,parent,name,kind,manufacturer,model,serial,installed_on,criticality,location\n";

const EXAMPLE: &str = "\
id,site,parent,name,kind,manufacturer,model,serial,installed_on,criticality,location
blk-a,solar-north,,Block A,area,,,,,high,North field
inv-01,solar-north,blk-a,Inverter 1,inverter,SMA,Sunny Central 2500,SC25-0001,2021-06-30,critical,\"Row 3, position 4\"
cb-01,solar-north,inv-01,Combiner 1,Combiner Box,,,,2021-06-30,medium,
opt-01,solar-north,cb-01,Optimiser 1,dc optimiser,,,,,low,
";

/// A row of `assets.csv` with only the cross-row columns set.
fn row(id: &str, site: &str, parent: &str) -> String {
    format!("{id},{site},{parent},Name of {id},inverter,,,,,medium,\n")
}

fn stored(id: &str, site: &str, parent: Option<&str>) -> Asset {
    Asset {
        id: id.into(),
        site: site.into(),
        parent: parent.map(AssetId::from),
        name: format!("Name of {id}"),
        kind: AssetKind::Inverter,
        manufacturer: None,
        model: None,
        serial: None,
        installed_on: None,
        criticality: Criticality::Medium,
        location: None,
        points: Vec::new(),
    }
}

fn parse(
    rows: &[String],
    existing: &[Asset],
    mode: ImportMode,
) -> Result<Vec<Asset>, ImportReport> {
    let input = format!("{HEADER}{}", rows.concat());
    parse_assets(
        input.as_bytes(),
        &ImportContext::new(existing).with_mode(mode),
    )
}

fn errors(rows: &[String], existing: &[Asset], mode: ImportMode) -> Vec<RowError> {
    match parse(rows, existing, mode) {
        Ok(records) => panic!("expected errors, got {} records", records.len()),
        Err(report) => report.errors,
    }
}

fn located(errors: &[RowError]) -> Vec<(usize, &str, &str)> {
    errors
        .iter()
        .map(|e| (e.row, e.column.as_deref().unwrap_or(""), e.code.as_str()))
        .collect()
}

#[test]
fn the_documented_example_parses() {
    let assets = parse_assets(EXAMPLE.as_bytes(), &ImportContext::new(&[])).unwrap();
    assert_eq!(assets.len(), 4);
    let inv = &assets[1];
    assert_eq!(inv.parent, Some(AssetId::from("blk-a")));
    assert_eq!(inv.kind, AssetKind::Inverter);
    assert_eq!(inv.manufacturer.as_deref(), Some("SMA"));
    assert_eq!(inv.installed_on, Some(date!(2021 - 06 - 30)));
    assert_eq!(inv.criticality, Criticality::Critical);
    assert_eq!(inv.location.as_deref(), Some("Row 3, position 4"));
    assert_eq!(assets[0].parent, None);
    assert_eq!(assets[0].manufacturer, None);
    assert_eq!(assets[2].kind, AssetKind::CombinerBox);
    assert_eq!(assets[3].kind, AssetKind::Other("dc optimiser".into()));
    // Export writes kinds by their canonical name.
    assert_eq!(
        export_assets(&assets),
        EXAMPLE.replace("Combiner Box", "combiner_box")
    );
}

#[test]
fn kinds_by_name_and_other() {
    assert_eq!(parse_kind("PV-Array"), AssetKind::PvArray);
    assert_eq!(
        parse_kind("power conversion system"),
        AssetKind::PowerConversionSystem
    );
    assert_eq!(
        parse_kind("Solar Tracker"),
        AssetKind::Other("Solar Tracker".into())
    );
    for (name, kind) in &KINDS {
        assert_eq!(kind_name(kind), *name);
        assert_eq!(&parse_kind(name), kind);
    }
    assert_eq!(kind_name(&AssetKind::Other("Pump".into())), "Pump");
}

#[test]
fn field_errors_name_row_and_column() {
    let rows = [
        "a1,s1,,,inverter,,,,2023-02-30,urgent,\n".to_owned(),
        format!("a2,s 1,,{},,,,,30/06/2021,High,\n", "n".repeat(201)),
        "a3,s1,,Name,inverter,,,,,,\n".to_owned(),
    ];
    let errs = errors(&rows, &[], ImportMode::CreateOnly);
    assert_eq!(
        located(&errs),
        [
            (2, "name", code::REQUIRED),
            (2, "installed_on", code::INVALID_DATE),
            (2, "criticality", code::INVALID_CHOICE),
            (3, "site", code::INVALID_ID),
            (3, "name", code::TOO_LONG),
            (3, "kind", code::REQUIRED),
            (3, "installed_on", code::INVALID_DATE),
            (4, "criticality", code::REQUIRED),
        ]
    );
    assert_eq!(
        errs[1].message,
        "installed_on \"2023-02-30\" is not a date as YYYY-MM-DD (for example 2021-06-30)"
    );
    assert_eq!(
        errs[2].message,
        "criticality \"urgent\" is not one of: low, medium, high, critical"
    );
    assert_eq!(errs[4].message, "name is longer than 200 characters");
}

#[test]
fn duplicates_and_existing_ids() {
    let existing = [stored("old", "s1", None)];
    let rows = [row("a", "s1", ""), row("old", "s1", ""), row("a", "s1", "")];
    let errs = errors(&rows, &existing, ImportMode::CreateOnly);
    assert_eq!(
        located(&errs),
        [(3, "id", code::ALREADY_EXISTS), (4, "id", code::DUPLICATE)]
    );
    assert_eq!(errs[1].message, "asset a already appears on line 2");
    // Upsert accepts the existing id; the duplicate stays an error.
    let errs = errors(&rows, &existing, ImportMode::Upsert);
    assert_eq!(located(&errs), [(4, "id", code::DUPLICATE)]);
}

#[test]
fn parents_must_exist_at_the_same_site() {
    let existing = [stored("root", "s1", None), stored("other", "s2", None)];
    let rows = [
        row("a", "s1", "root"),  // line 2: stored parent
        row("b", "s1", "a"),     // line 3: parent in the file
        row("c", "s1", "ghost"), // line 4
        row("d", "s1", "other"), // line 5: stored parent, other site
        row("e", "s2", "a"),     // line 6: parent in the file, other site
        row("f", "s1", "g"),     // line 7: parent later in the file
        row("g", "s1", ""),
    ];
    let errs = errors(&rows, &existing, ImportMode::CreateOnly);
    assert_eq!(
        located(&errs),
        [
            (4, "parent", "unknown_parent"),
            (5, "parent", "parent_in_other_site"),
            (6, "parent", "parent_in_other_site"),
        ]
    );
    assert_eq!(
        errs[0].message,
        "asset c has parent ghost, which does not exist: it must be in this file or already stored"
    );
    assert_eq!(
        errs[1].message,
        "asset d is at site s1 but its parent other is at site s2"
    );
}

#[test]
fn a_child_of_a_refused_row_is_not_reported_again() {
    let rows = [
        "p,s1,,Parent,inverter,,,,,bogus,\n".to_owned(),
        row("c", "s1", "p"),
    ];
    let errs = errors(&rows, &[], ImportMode::CreateOnly);
    assert_eq!(located(&errs), [(2, "criticality", code::INVALID_CHOICE)]);
}

#[test]
fn cycles_and_depth_are_reported_on_the_offending_row() {
    let rows = [
        row("x", "s1", "z"), // line 2
        row("y", "s1", "x"),
        row("z", "s1", "y"),
        row("l2", "s1", ""), // line 5
        row("l3", "s1", "l2"),
        row("l4", "s1", "l3"),
        row("l5", "s1", "l4"),
        row("l6", "s1", "l5"),
        row("l7", "s1", "l6"), // line 10
        row("l8", "s1", "l7"),
        row("self", "s1", "self"), // line 12
    ];
    let errs = errors(&rows, &[], ImportMode::CreateOnly);
    assert_eq!(
        located(&errs),
        [
            (2, "parent", "hierarchy_cycle"),
            (10, "parent", "hierarchy_too_deep"),
            (12, "parent", "hierarchy_cycle"),
        ]
    );
    let deep = errs.iter().find(|e| e.row == 10).unwrap();
    assert_eq!(
        deep.message,
        "asset l7 would be at level 7; the deepest allowed is 6 (site = 1)"
    );
    let cycle = errs.iter().find(|e| e.row == 2).unwrap();
    assert_eq!(
        cycle.message,
        "asset x is its own ancestor (x -> z -> y -> x)"
    );
}

#[test]
fn moving_a_stored_asset_is_checked_with_its_stored_subtree() {
    // Stored: top > mid > leaf > leaf2 > leaf3 (levels 2..6) and a spare root.
    let existing = [
        stored("top", "s1", None),
        stored("mid", "s1", Some("top")),
        stored("leaf", "s1", Some("mid")),
        stored("leaf2", "s1", Some("leaf")),
        stored("leaf3", "s1", Some("leaf2")),
        stored("spare", "s1", None),
        stored("elsewhere", "s2", None),
    ];
    // Moving mid under spare keeps depth: fine.
    let ok = parse(&[row("mid", "s1", "spare")], &existing, ImportMode::Upsert).unwrap();
    assert_eq!(ok[0].parent, Some(AssetId::from("spare")));

    // Moving mid under leaf3 (its own descendant) is a cycle on mid's row.
    let errs = errors(&[row("mid", "s1", "leaf3")], &existing, ImportMode::Upsert);
    assert_eq!(located(&errs), [(2, "parent", "hierarchy_cycle")]);

    // Moving top under a new asset pushes the stored leaf3 to level 7:
    // reported on top's row, naming leaf3.
    let errs = errors(
        &[row("new", "s1", ""), row("top", "s1", "new")],
        &existing,
        ImportMode::Upsert,
    );
    assert_eq!(located(&errs), [(3, "parent", "hierarchy_too_deep")]);
    assert!(
        errs[0]
            .message
            .starts_with("asset leaf3 would be at level 7"),
        "{}",
        errs[0].message
    );

    // Moving mid to another site leaves its stored child behind.
    let errs = errors(
        &[row("mid", "s2", "elsewhere")],
        &existing,
        ImportMode::Upsert,
    );
    assert_eq!(located(&errs), [(2, "site", "parent_in_other_site")]);
    assert_eq!(
        errs[0].message,
        "asset mid moves to site s2 but 1 stored child asset(s) stay at their site (leaf); \
         move or re-parent them in the same file"
    );
    // Moving the whole subtree along is fine.
    let rows = [
        row("mid", "s2", "elsewhere"),
        row("leaf", "s2", "mid"),
        row("leaf2", "s2", "leaf"),
        row("leaf3", "s2", "leaf2"),
    ];
    assert_eq!(
        parse(&rows, &existing, ImportMode::Upsert).unwrap().len(),
        4
    );
}

#[test]
fn an_asset_with_points_cannot_change_site() {
    let mut inv = stored("inv", "s1", None);
    inv.points = vec!["s1/inv/p".into()];
    let errs = errors(&[row("inv", "s2", "")], &[inv], ImportMode::Upsert);
    assert_eq!(located(&errs), [(2, "site", "point_at_other_site")]);
}

#[test]
fn upsert_merge_keeps_points_and_counts_changes() {
    let mut inv = stored("inv", "s1", None);
    inv.points = vec!["s1/inv/p".into()];
    let same = stored("same", "s1", None);
    let existing = [inv.clone(), same];
    let rows = [
        "inv,s1,,Renamed,inverter,,,,,medium,\n".to_owned(),
        row("same", "s1", ""),
        row("fresh", "s1", "inv"),
    ];
    let parsed = parse(&rows, &existing, ImportMode::Upsert).unwrap();
    assert!(parsed.iter().all(|a| a.points.is_empty()));
    let merge = merge_assets(&existing, parsed);
    assert_eq!(
        merge.summary(),
        MergeSummary {
            created: 1,
            updated: 1,
            unchanged: 1
        }
    );
    assert_eq!(merge.updated[0].name, "Renamed");
    assert_eq!(merge.updated[0].points, inv.points);
    assert_eq!(merge.created[0].id, AssetId::from("fresh"));
}

#[test]
fn unknown_sites_are_refused_when_the_sites_are_given() {
    let sites: BTreeSet<SiteId> = ["s1".into()].into();
    let input = format!("{HEADER}{}{}", row("a", "s1", ""), row("b", "s2", ""));
    let ctx = ImportContext::new(&[]).with_known_sites(&sites);
    let report = parse_assets(input.as_bytes(), &ctx).unwrap_err();
    assert_eq!(located(&report.errors), [(3, "site", code::UNKNOWN_SITE)]);
}

#[test]
fn a_broken_stored_hierarchy_is_reported_on_the_header() {
    let existing = [stored("a", "s1", Some("b")), stored("b", "s1", Some("a"))];
    let errs = errors(&[row("c", "s1", "")], &existing, ImportMode::CreateOnly);
    assert_eq!(located(&errs), [(1, "", "hierarchy_cycle")]);
    assert_eq!(
        errs[0].message,
        "the stored assets break the hierarchy: asset a is its own ancestor (a -> b -> a)"
    );
    // Another site's broken data is not looked at.
    assert!(parse(&[row("c", "s2", "")], &existing, ImportMode::CreateOnly).is_ok());
}
