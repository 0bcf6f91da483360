//! `points.csv`: which telemetry points measure which asset.
//!
//! | column  | required | value |
//! |---------|----------|-------|
//! | `asset` | yes      | id of a stored asset (import `assets.csv` first) |
//! | `point` | yes      | telemetry point as `site/device/point`, at the asset's site |
//!
//! Each part of the point name is 1-64 characters from
//! `A-Z a-z 0-9 - _ .`, as in the gateway's configuration, and the first
//! part is the asset's site. One row per link; an asset with three points
//! has three rows.
//!
//! ```text
//! asset,point
//! inv-01,solar-north/inv-01/ac_power
//! inv-01,solar-north/inv-01/dc_voltage
//! met-01,solar-north/weather/irradiance
//! ```
//!
//! The key is the pair (`asset`, `point`); a pair appears once per file.
//! Import adds links and never removes one: with create-only, a link that
//! already exists is an error; with upsert it is counted as unchanged.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::cells::{shown, Cells};
use super::report::{code, Errors, ImportReport};
use super::{finish, merge_by_key, table, ImportContext, ImportMode, Merge};
use crate::cmms::{Asset, AssetError, AssetId};

/// The columns of `points.csv`, in export order.
pub const POINT_COLUMNS: [&str; 2] = ["asset", "point"];
const ASSET: usize = 0;
const POINT: usize = 1;

/// One telemetry point measured on one asset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PointLink {
    pub asset: AssetId,
    /// `site/device/point`.
    pub point: String,
}

/// The links of some assets, asset by asset, in point order.
pub fn point_links(assets: &[Asset]) -> Vec<PointLink> {
    assets
        .iter()
        .flat_map(|a| {
            a.points.iter().map(|p| PointLink {
                asset: a.id.clone(),
                point: p.clone(),
            })
        })
        .collect()
}

/// Why `point` is not a `site/device/point` name; `None` if it is one.
fn point_problem(point: &str) -> Option<String> {
    let parts: Vec<&str> = point.split('/').collect();
    if parts.len() != 3 {
        return Some(format!(
            "has {} part(s); a point is named site/device/point",
            parts.len()
        ));
    }
    let labels = ["site", "device", "point"];
    parts.iter().zip(labels).find_map(|(part, label)| {
        crate::validate_name(part)
            .err()
            .map(|e| format!("has an invalid {label} part {}: {e}", shown(part)))
    })
}

/// Checks a `points.csv` file against the stored assets; the links in
/// file order, or every problem.
pub fn parse_points(
    input: &[u8],
    ctx: &ImportContext<'_, Asset>,
) -> Result<Vec<PointLink>, ImportReport> {
    let mut errors = Errors::default();
    let table = table::read(
        input,
        "points.csv",
        &POINT_COLUMNS,
        &ctx.options,
        &mut errors,
    );
    let stored: HashMap<&AssetId, &Asset> = ctx.existing.iter().map(|a| (&a.id, a)).collect();
    let mut first_line: HashMap<PointLink, usize> = HashMap::new();
    let mut records = Vec::with_capacity(table.rows.len());

    for row in &table.rows {
        let mut c = Cells::new(row, &POINT_COLUMNS, &mut errors);
        let asset = AssetId(c.id(ASSET));
        let point = c.required(POINT).unwrap_or_default().to_owned();
        let point_ok = !point.is_empty()
            && match point_problem(&point) {
                None => true,
                Some(why) => {
                    let e = AssetError::BadPoint {
                        point: point.clone(),
                    };
                    c.fail(POINT, e.code(), format!("point {} {why}", shown(&point)));
                    false
                }
            };
        let owner = stored.get(&asset).copied();
        if !asset.as_str().is_empty() && owner.is_none() {
            c.fail(
                ASSET,
                code::UNKNOWN_ASSET,
                format!("asset {asset} does not exist; import it in assets.csv first"),
            );
        }
        let (Some(owner), true) = (owner, point_ok) else {
            continue;
        };
        if point.split('/').next() != Some(owner.site.as_str()) {
            let e = AssetError::PointAtOtherSite {
                point: point.clone(),
                site: owner.site.clone(),
            };
            c.fail(POINT, e.code(), e.to_string());
        }
        let link = PointLink { asset, point };
        if let Some(first) = first_line.get(&link) {
            c.fail(
                POINT,
                code::DUPLICATE,
                format!(
                    "point {} of asset {} already appears on line {first}",
                    link.point, link.asset
                ),
            );
        } else {
            first_line.insert(link.clone(), c.line());
            if ctx.options.mode == ImportMode::CreateOnly && owner.points.contains(&link.point) {
                c.fail(
                    POINT,
                    code::ALREADY_EXISTS,
                    format!(
                        "asset {} already has point {} (import with upsert to skip existing links)",
                        link.asset, link.point
                    ),
                );
            }
        }
        if c.ok() {
            records.push(link);
        }
    }
    finish(errors, table.count, &ctx.options, records)
}

/// Writes `points.csv`: one row per point of each asset, in the order
/// given.
pub fn export_points(assets: &[Asset]) -> String {
    let mut out = String::new();
    table::write_record(&mut out, POINT_COLUMNS);
    for a in assets {
        for p in &a.points {
            table::write_record(&mut out, [a.id.as_str(), p.as_str()]);
        }
    }
    out
}

/// Splits parsed links into created (to add to their asset's points) and
/// unchanged (already linked); a link has no fields to update.
pub fn merge_points(existing: &[Asset], imported: Vec<PointLink>) -> Merge<PointLink> {
    let links: BTreeSet<PointLink> = point_links(existing).into_iter().collect();
    let existing: BTreeMap<PointLink, &PointLink> = links.iter().map(|l| (l.clone(), l)).collect();
    merge_by_key(existing, imported, Clone::clone, |_, _| None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmms::csv::MergeSummary;
    use crate::cmms::{AssetKind, Criticality};

    fn asset(id: &str, site: &str, points: &[&str]) -> Asset {
        Asset {
            id: id.into(),
            site: site.into(),
            parent: None,
            name: id.to_uppercase(),
            kind: AssetKind::Inverter,
            manufacturer: None,
            model: None,
            serial: None,
            installed_on: None,
            criticality: Criticality::Medium,
            location: None,
            points: points.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn link(asset: &str, point: &str) -> PointLink {
        PointLink {
            asset: asset.into(),
            point: point.into(),
        }
    }

    #[test]
    fn the_documented_example_parses_and_round_trips() {
        let input = "asset,point\n\
                     inv-01,solar-north/inv-01/ac_power\n\
                     inv-01,solar-north/inv-01/dc_voltage\n\
                     met-01,solar-north/weather/irradiance\n";
        let stored = [
            asset("inv-01", "solar-north", &[]),
            asset("met-01", "solar-north", &[]),
        ];
        let links = parse_points(input.as_bytes(), &ImportContext::new(&stored)).unwrap();
        assert_eq!(
            links,
            [
                link("inv-01", "solar-north/inv-01/ac_power"),
                link("inv-01", "solar-north/inv-01/dc_voltage"),
                link("met-01", "solar-north/weather/irradiance")
            ]
        );
        let with_points = [
            asset(
                "inv-01",
                "solar-north",
                &[
                    "solar-north/inv-01/ac_power",
                    "solar-north/inv-01/dc_voltage",
                ],
            ),
            asset("met-01", "solar-north", &["solar-north/weather/irradiance"]),
        ];
        assert_eq!(export_points(&with_points), input);
        assert_eq!(point_links(&with_points), links);
    }

    #[test]
    fn link_errors_name_row_and_column() {
        let stored = [
            asset("inv-01", "s1", &["s1/inv-01/p0"]),
            asset("inv-02", "s2", &[]),
        ];
        let input = "Point,Asset\n\
                     s1/inv-01/p1,inv-01\n\
                     s1/inv-01,inv-01\n\
                     s1/inv 01/p1,inv-01\n\
                     s1/inv-01/p1,ghost\n\
                     s1/inv-02/p1,inv-02\n\
                     s1/inv-01/p1,inv-01\n\
                     s1/inv-01/p0,inv-01\n\
                     ,\"\"\n\
                     ,inv-01\n";
        let report = parse_points(input.as_bytes(), &ImportContext::new(&stored)).unwrap_err();
        let got: Vec<(usize, &str, &str)> = report
            .errors
            .iter()
            .map(|e| (e.row, e.column.as_deref().unwrap_or(""), e.code.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (3, "point", code::BAD_POINT_NAME),
                (4, "point", code::BAD_POINT_NAME),
                (5, "asset", code::UNKNOWN_ASSET),
                (6, "point", code::POINT_AT_OTHER_SITE),
                (7, "point", code::DUPLICATE),
                (8, "point", code::ALREADY_EXISTS),
                (10, "point", code::REQUIRED),
            ]
        );
        assert_eq!(report.rows, 8, "the row of empty fields is blank");
        let msg = |row: usize| &report.errors.iter().find(|e| e.row == row).unwrap().message;
        assert_eq!(
            msg(3),
            "point \"s1/inv-01\" has 2 part(s); a point is named site/device/point"
        );
        assert_eq!(
            msg(4),
            "point \"s1/inv 01/p1\" has an invalid device part \"inv 01\": name contains ' '; \
             use letters, digits, '-', '_' or '.'"
        );
        assert_eq!(
            msg(6),
            "telemetry point \"s1/inv-02/p1\" is not at the asset's site s2"
        );
        assert_eq!(
            msg(7),
            "point s1/inv-01/p1 of asset inv-01 already appears on line 2"
        );
    }

    #[test]
    fn upsert_counts_existing_links_as_unchanged() {
        let stored = [asset("inv-01", "s1", &["s1/inv-01/p0"])];
        let input = b"asset,point\ninv-01,s1/inv-01/p0\ninv-01,s1/inv-01/p1\n";
        let ctx = ImportContext::new(&stored).with_mode(ImportMode::Upsert);
        let links = parse_points(input, &ctx).unwrap();
        let merge = merge_points(&stored, links);
        assert_eq!(
            merge.summary(),
            MergeSummary {
                created: 1,
                updated: 0,
                unchanged: 1
            }
        );
        assert_eq!(merge.created, [link("inv-01", "s1/inv-01/p1")]);
    }
}
