//! Properties of all formats: round trips, tolerance of how files are
//! written (column order, case, BOM, line endings, quoting), robustness
//! against arbitrary bytes, all-or-nothing, limits, and a large file.

use std::time::Instant;

use proptest::prelude::*;
use time::Date;

use super::report::code;
use super::*;
use crate::cmms::{Asset, AssetId, AssetKind, Criticality, Money};

// ---- generators -----------------------------------------------------------

/// Free text as an import leaves it: trimmed, non-empty, with the
/// characters that need quoting.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,;\"'\n\r\t/éß日本-]{1,24}"
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("non-empty", |s| !s.is_empty())
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

/// An identifier: no control characters.
fn ident() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,\"'._/-]{1,16}"
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("non-empty", |s| !s.is_empty())
}

fn site_name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-zA-Z0-9_.-]{0,12}"
}

fn kind() -> impl Strategy<Value = AssetKind> {
    let known: Vec<AssetKind> = assets::KINDS.iter().map(|(_, k)| k.clone()).collect();
    prop_oneof![
        prop::sample::select(known),
        // Text that is not a known kind's name stays `Other`.
        text()
            .prop_filter("not a known kind", |t| matches!(
                assets::parse_kind(t),
                AssetKind::Other(_)
            ))
            .prop_map(AssetKind::Other),
    ]
}

fn criticality() -> impl Strategy<Value = Criticality> {
    prop_oneof![
        Just(Criticality::Low),
        Just(Criticality::Medium),
        Just(Criticality::High),
        Just(Criticality::Critical),
    ]
}

fn date() -> impl Strategy<Value = Date> {
    (1900i32..2100, 1u8..=12, 1u8..=28).prop_map(|(y, m, d)| {
        let month = time::Month::try_from(m).unwrap_or(time::Month::January);
        Date::from_calendar_date(y, month, d).unwrap()
    })
}

/// A valid register: unique ids, parents earlier in the list at the same
/// site, no asset deeper than level 6.
fn register() -> impl Strategy<Value = Vec<Asset>> {
    let sites = prop::collection::vec(site_name(), 1..4);
    let one = (
        ident(),
        any::<prop::sample::Index>(),
        prop::option::of(any::<prop::sample::Index>()),
        text(),
        kind(),
        (opt_text(), opt_text(), opt_text()),
        prop::option::of(date()),
        criticality(),
        opt_text(),
    );
    (sites, prop::collection::vec(one, 0..24)).prop_map(|(sites, rows)| {
        let mut out: Vec<(Asset, u8)> = Vec::new();
        for (
            i,
            (
                id,
                site,
                parent,
                name,
                kind,
                (manufacturer, model, serial),
                installed_on,
                criticality,
                location,
            ),
        ) in rows.into_iter().enumerate()
        {
            let site = site.get(&sites).clone();
            let candidates: Vec<&(Asset, u8)> = out
                .iter()
                .filter(|(a, level)| a.site.as_str() == site && *level < 6)
                .collect();
            let (parent, level) = match parent {
                Some(pick) if !candidates.is_empty() => {
                    let (p, l) = pick.get(&candidates);
                    (Some(p.id.clone()), l + 1)
                }
                _ => (None, 2),
            };
            let asset = Asset {
                id: AssetId(format!("{i}{id}")),
                site: site.into(),
                parent,
                name,
                kind,
                manufacturer,
                model,
                serial,
                installed_on,
                criticality,
                location,
                points: Vec::new(),
            };
            out.push((asset, level));
        }
        out.into_iter().map(|(a, _)| a).collect()
    })
}

fn site_records() -> impl Strategy<Value = Vec<SiteRecord>> {
    prop::collection::btree_map(
        site_name(),
        (text(), "[A-Z][a-z]{1,8}(/[A-Z][a-z_]{1,10}){0,2}"),
        0..10,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(id, (name, timezone))| SiteRecord {
                id: id.into(),
                name,
                timezone,
            })
            .collect()
    })
}

fn part_records() -> impl Strategy<Value = Vec<PartRecord>> {
    let fields = (
        text(),
        "[a-zA-Z]{1,6}",
        prop_oneof![0i64..100_000, Just(i64::MAX), 0..i64::MAX],
        prop::option::of(any::<u32>()),
        any::<u32>(),
    );
    prop::collection::btree_map((site_name(), ident()), fields, 0..12).prop_map(|m| {
        m.into_iter()
            .map(
                |((site, part), (name, unit, cost, reorder_level, on_hand))| PartRecord {
                    site: site.into(),
                    part: part.into(),
                    name,
                    unit,
                    unit_cost: Money::from_minor(cost),
                    reorder_level,
                    on_hand,
                },
            )
            .collect()
    })
}

/// Assets with points at their own site.
fn assets_with_points() -> impl Strategy<Value = Vec<Asset>> {
    let point = ("[a-z0-9_.-]{1,10}", "[a-zA-Z0-9_.-]{1,10}");
    prop::collection::btree_map(
        ident(),
        (site_name(), prop::collection::btree_set(point, 0..4)),
        0..8,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(id, (site, points))| Asset {
                id: id.into(),
                points: points
                    .into_iter()
                    .map(|(d, p)| format!("{site}/{d}/{p}"))
                    .collect(),
                site: site.into(),
                parent: None,
                name: "n".into(),
                kind: AssetKind::Meter,
                manufacturer: None,
                model: None,
                serial: None,
                installed_on: None,
                criticality: Criticality::Low,
                location: None,
            })
            .collect()
    })
}

// ---- rewriting an exported file the way other tools write it -----------

/// How a file is written: column order, header case, BOM, line ending,
/// quoting every field, blank lines.
#[derive(Debug, Clone)]
struct Style {
    order: Vec<prop::sample::Index>,
    upper_header: bool,
    bom: bool,
    crlf: bool,
    quote_all: bool,
    blank_every: Option<usize>,
}

fn style() -> impl Strategy<Value = Style> {
    (
        prop::collection::vec(any::<prop::sample::Index>(), 12),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(1usize..4),
    )
        .prop_map(
            |(order, upper_header, bom, crlf, quote_all, blank_every)| Style {
                order,
                upper_header,
                bom,
                crlf,
                quote_all,
                blank_every,
            },
        )
}

/// Re-reads an exported file (with the csv crate) and writes it again in
/// `style`.
fn restyle(exported: &str, style: &Style) -> Vec<u8> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(exported.as_bytes());
    let records: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    let width = records[0].len();
    let mut perm: Vec<usize> = (0..width).collect();
    for (i, pick) in style.order.iter().take(width).enumerate() {
        let j = i + pick.index(width - i);
        perm.swap(i, j);
    }
    let end = if style.crlf { "\r\n" } else { "\n" };
    let mut out = String::new();
    if style.bom {
        out.push('\u{feff}');
    }
    for (n, record) in records.iter().enumerate() {
        let fields: Vec<String> = perm
            .iter()
            .map(|&c| {
                let mut f = record[c].clone();
                if n == 0 && style.upper_header {
                    f = f.to_uppercase().replace('_', " ");
                }
                if style.quote_all || f.contains([',', '"', '\r', '\n']) {
                    f = format!("\"{}\"", f.replace('"', "\"\""));
                }
                f
            })
            .collect();
        out.push_str(&fields.join(","));
        out.push_str(end);
        if style.blank_every.is_some_and(|k| n % k == 0) {
            out.push_str(end);
        }
    }
    out.into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sites_round_trip(records in site_records(), style in style()) {
        let exported = export_sites(&records);
        let parsed = parse_sites(exported.as_bytes(), &ImportContext::new(&[])).unwrap();
        prop_assert_eq!(&parsed, &records);
        prop_assert_eq!(export_sites(&parsed), exported.clone());
        let restyled = parse_sites(&restyle(&exported, &style), &ImportContext::new(&[])).unwrap();
        prop_assert_eq!(restyled, records);
    }

    #[test]
    fn assets_round_trip(records in register(), style in style()) {
        let exported = export_assets(&records);
        let parsed = parse_assets(exported.as_bytes(), &ImportContext::new(&[]));
        let parsed = parsed.map_err(|r| TestCaseError::fail(format!("{r:?}\n{exported}")))?;
        prop_assert_eq!(&parsed, &records);
        prop_assert_eq!(export_assets(&parsed), exported.clone());
        let restyled = parse_assets(&restyle(&exported, &style), &ImportContext::new(&[])).unwrap();
        prop_assert_eq!(&restyled, &records);
        // Re-importing the export with upsert changes nothing.
        let ctx = ImportContext::new(&records).with_mode(ImportMode::Upsert);
        let again = parse_assets(exported.as_bytes(), &ctx).unwrap();
        prop_assert_eq!(merge_assets(&records, again).summary(), MergeSummary {
            created: 0, updated: 0, unchanged: records.len()
        });
    }

    #[test]
    fn points_round_trip(assets in assets_with_points(), style in style()) {
        let exported = export_points(&assets);
        let links = point_links(&assets);
        let mut bare = assets.clone();
        for a in &mut bare {
            a.points.clear();
        }
        let parsed = parse_points(exported.as_bytes(), &ImportContext::new(&bare)).unwrap();
        prop_assert_eq!(&parsed, &links);
        prop_assert_eq!(merge_points(&bare, parsed.clone()).summary().created, links.len());
        let mut rebuilt = bare.clone();
        for l in &parsed {
            rebuilt.iter_mut().find(|a| a.id == l.asset).unwrap().points.push(l.point.clone());
        }
        prop_assert_eq!(export_points(&rebuilt), exported.clone());
        let restyled = parse_points(&restyle(&exported, &style), &ImportContext::new(&bare)).unwrap();
        prop_assert_eq!(restyled, links);
    }

    #[test]
    fn parts_round_trip(records in part_records(), style in style()) {
        let exported = export_parts(&records);
        let parsed = parse_parts(exported.as_bytes(), &ImportContext::new(&[])).unwrap();
        prop_assert_eq!(&parsed, &records);
        prop_assert_eq!(export_parts(&parsed), exported.clone());
        let restyled = parse_parts(&restyle(&exported, &style), &ImportContext::new(&[])).unwrap();
        prop_assert_eq!(restyled, records);
    }

    /// Arbitrary bytes, and text made of CSV punctuation and the formats'
    /// column names, never panic a parser; every error points at a line
    /// of the input.
    #[test]
    fn parsers_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        pieces in prop::collection::vec(prop_oneof![
            Just("id"), Just("site"), Just("parent"), Just("name"), Just("kind"),
            Just("manufacturer"), Just("model"), Just("serial"), Just("installed_on"),
            Just("criticality"), Just("location"), Just("timezone"), Just("asset"),
            Just("point"), Just("part"), Just("unit"), Just("unit_cost"),
            Just("reorder_level"), Just("on_hand"), Just(","), Just("\""), Just("\n"),
            Just("\r"), Just(" "), Just("a"), Just("s1"), Just("1"), Just("-"),
            Just("."), Just("/"), Just("2021-06-30"), Just("\u{feff}"), Just("\u{0}"),
        ], 0..120),
    ) {
        let text = pieces.concat();
        let existing_assets = [Asset {
            id: "a".into(), site: "s1".into(), parent: None, name: "n".into(),
            kind: AssetKind::Area, manufacturer: None, model: None, serial: None,
            installed_on: None, criticality: Criticality::Low, location: None,
            points: vec!["s1/d/p".into()],
        }];
        for input in [bytes.as_slice(), text.as_bytes()] {
            let lines = input.iter().filter(|b| matches!(b, b'\n' | b'\r')).count() + 1;
            let mut reports = Vec::new();
            for mode in [ImportMode::CreateOnly, ImportMode::Upsert] {
                reports.push(parse_sites(input, &ImportContext::new(&[]).with_mode(mode)).err());
                reports.push(parse_assets(input, &ImportContext::new(&existing_assets).with_mode(mode)).err());
                reports.push(parse_points(input, &ImportContext::new(&existing_assets).with_mode(mode)).err());
                reports.push(parse_parts(input, &ImportContext::new(&[]).with_mode(mode)).err());
            }
            for report in reports.into_iter().flatten() {
                prop_assert!(!report.is_ok());
                for e in &report.errors {
                    prop_assert!(e.row >= 1 && e.row <= lines, "{:?} in {:?}", e, input);
                }
            }
        }
    }
}

// ---- whole files -----------------------------------------------------------

/// A register of `n` assets at one site: areas of 99 inverters each.
fn big_assets_file(n: usize) -> String {
    let mut out = String::from(
        "id,site,parent,name,kind,manufacturer,model,serial,installed_on,criticality,location\n",
    );
    for i in 0..n {
        if i % 100 == 0 {
            out.push_str(&format!("area-{i},s1,,Area {i},area,,,,,high,Field {i}\n"));
        } else {
            let area = i - i % 100;
            out.push_str(&format!(
                "inv-{i},s1,area-{area},Inverter {i},inverter,SMA,SC 2500,SN{i:08},2021-06-30,critical,\"Row {i}, pos 1\"\n"
            ));
        }
    }
    out
}

#[test]
fn ten_thousand_assets_parse() {
    let input = big_assets_file(10_000);
    let started = Instant::now();
    let assets = parse_assets(input.as_bytes(), &ImportContext::new(&[])).unwrap();
    let parse = started.elapsed();
    assert_eq!(assets.len(), 10_000);
    assert_eq!(assets[101].parent, Some(AssetId::from("area-100")));
    let started = Instant::now();
    let exported = export_assets(&assets);
    let export = started.elapsed();
    assert_eq!(exported, input);
    println!(
        "assets.csv, 10,000 rows, {} bytes: parse {:.1} ms, export {:.1} ms",
        input.len(),
        parse.as_secs_f64() * 1e3,
        export.as_secs_f64() * 1e3
    );

    // Upsert of the same file over the stored register: all unchanged.
    let started = Instant::now();
    let ctx = ImportContext::new(&assets).with_mode(ImportMode::Upsert);
    let again = parse_assets(input.as_bytes(), &ctx).unwrap();
    let merge = merge_assets(&assets, again);
    println!(
        "assets.csv, 10,000 rows over 10,000 stored, upsert parse + merge: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(merge.summary().unchanged, 10_000);
}

#[test]
fn one_bad_row_refuses_the_whole_file() {
    let mut input = big_assets_file(10_000);
    // Line 5002 holds asset 5000 (an area); give it an impossible date.
    input = input.replacen(
        "area-5000,s1,,Area 5000,area,,,,,",
        "area-5000,s1,,Area 5000,area,,,,2021-13-01,",
        1,
    );
    let report = parse_assets(input.as_bytes(), &ImportContext::new(&[])).unwrap_err();
    assert_eq!(report.rows, 10_000);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let e = &report.errors[0];
    assert_eq!(
        (e.row, e.column.as_deref(), e.code.as_str()),
        (5002, Some("installed_on"), code::INVALID_DATE)
    );
}

#[test]
fn every_error_is_counted_and_the_list_is_bounded() {
    let mut input = String::from("id,name,timezone\n");
    for i in 0..2_500 {
        input.push_str(&format!("s{i},,UTC\n"));
    }
    let report = parse_sites(input.as_bytes(), &ImportContext::new(&[])).unwrap_err();
    assert_eq!(report.errors.len(), DEFAULT_MAX_ERRORS);
    assert_eq!(report.errors_omitted, 1_500);
    assert_eq!(report.errors[999].row, 1_001);
    let options = ImportOptions {
        max_errors: usize::MAX,
        ..ImportOptions::default()
    };
    let report = parse_sites(
        input.as_bytes(),
        &ImportContext::new(&[]).with_options(options),
    )
    .unwrap_err();
    assert_eq!(report.errors.len(), 2_500);
    assert_eq!(report.errors_omitted, 0);
}

#[test]
fn the_row_limit_is_configurable() {
    assert_eq!(ImportOptions::default().max_rows, 100_000);
    let input = "asset,point\na,s1/d/p1\na,s1/d/p2\na,s1/d/p3\n";
    let options = ImportOptions {
        max_rows: 2,
        ..ImportOptions::default()
    };
    let report = parse_points(
        input.as_bytes(),
        &ImportContext::new(&[]).with_options(options),
    )
    .unwrap_err();
    assert_eq!(report.errors.len(), 1);
    assert_eq!(
        (report.errors[0].row, report.errors[0].code.as_str()),
        (4, code::TOO_MANY_ROWS)
    );
}

#[test]
fn header_problems_are_file_level_errors() {
    let report = parse_assets(
        b"id,site,name,Instaled On,kind,criticality\n",
        &ImportContext::new(&[]),
    )
    .unwrap_err();
    let got: Vec<(usize, Option<&str>, &str)> = report
        .errors
        .iter()
        .map(|e| (e.row, e.column.as_deref(), e.code.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, Some("Instaled On"), code::UNKNOWN_COLUMN),
            (1, None, code::MISSING_COLUMNS)
        ]
    );
    assert_eq!(
        report.errors[1].message,
        "the header lacks the columns parent, manufacturer, model, serial, installed_on, location \
         (every column of assets.csv must be present, even if its values are empty; the columns \
         are: id, site, parent, name, kind, manufacturer, model, serial, installed_on, \
         criticality, location)"
    );
    let report = parse_parts(b"\xef\xbb\xbf", &ImportContext::new(&[])).unwrap_err();
    assert_eq!(report.errors[0].code, code::MISSING_HEADER);
}

#[test]
fn bom_crlf_reordered_columns_and_quotes() {
    let input = "\u{feff}TimeZone,\"Name\",ID\r\n\
                 \"Europe/Berlin\",\"Park \"\"North\"\", phase 2\",solar-north\r\n\
                 \r\n\
                 UTC,\"Two\r\nlines\",wind-07\r\n";
    let sites = parse_sites(input.as_bytes(), &ImportContext::new(&[])).unwrap();
    assert_eq!(
        sites,
        [
            SiteRecord {
                id: "solar-north".into(),
                name: "Park \"North\", phase 2".into(),
                timezone: "Europe/Berlin".into()
            },
            SiteRecord {
                id: "wind-07".into(),
                name: "Two\r\nlines".into(),
                timezone: "UTC".into()
            },
        ]
    );
    // Errors after a quoted line break carry the file's line numbers.
    let bad = input.replace("wind-07", "wind 07");
    let report = parse_sites(bad.as_bytes(), &ImportContext::new(&[])).unwrap_err();
    assert_eq!(report.errors[0].row, 4);
    assert_eq!(report.errors[0].column.as_deref(), Some("id"));
}

#[test]
fn the_report_serialises_for_the_api() {
    let report = parse_sites(b"id,name,timezone\ns1,,UTC\n", &ImportContext::new(&[])).unwrap_err();
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "rows": 1,
            "errors": [{"row": 2, "column": "name", "code": "required", "message": "name is required"}],
            "errors_omitted": 0
        })
    );
    let summary = MergeSummary {
        created: 1,
        updated: 2,
        unchanged: 3,
    };
    assert_eq!(
        serde_json::to_value(summary).unwrap(),
        serde_json::json!({"created": 1, "updated": 2, "unchanged": 3})
    );
    assert_eq!(serde_json::to_value(ImportMode::Upsert).unwrap(), "upsert");
}
