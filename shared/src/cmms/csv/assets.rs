//! `assets.csv`: the asset register of one or more sites.
//!
//! | column         | required | value |
//! |----------------|----------|-------|
//! | `id`           | yes      | unique asset id, up to 128 characters |
//! | `site`         | yes      | the site's id (as in `sites.csv`) |
//! | `parent`       | no       | id of the parent asset, in this file or already stored; empty: directly under the site |
//! | `name`         | yes      | up to 200 characters |
//! | `kind`         | yes      | see below |
//! | `manufacturer` | no       | up to 500 characters |
//! | `model`        | no       | up to 500 characters |
//! | `serial`       | no       | up to 500 characters |
//! | `installed_on` | no       | date as `YYYY-MM-DD` |
//! | `criticality`  | yes      | `low`, `medium`, `high` or `critical` |
//! | `location`     | no       | free text (row/position, GPS, room), up to 500 characters |
//!
//! `kind` is one of `area`, `inverter`, `transformer`, `combiner_box`,
//! `pv_array`, `pv_string`, `tracker`, `wind_turbine`, `gearbox`,
//! `generator`, `battery_storage`, `battery_rack`,
//! `power_conversion_system`, `switchgear`, `meter`, `weather_station`,
//! `controller` (case, spaces and `-` do not matter: `Combiner Box` is
//! `combiner_box`). Any other text is accepted as a kind of its own
//! ([`AssetKind::Other`]) and kept as written, so check the spelling of
//! the known kinds.
//!
//! ```text
//! id,site,parent,name,kind,manufacturer,model,serial,installed_on,criticality,location
//! blk-a,solar-north,,Block A,area,,,,,high,North field
//! inv-01,solar-north,blk-a,Inverter 1,inverter,SMA,Sunny Central 2500,SC25-0001,2021-06-30,critical,"Row 3, position 4"
//! cb-01,solar-north,inv-01,Combiner 1,Combiner Box,,,,2021-06-30,medium,
//! opt-01,solar-north,cb-01,Optimiser 1,dc optimiser,,,,,low,
//! ```
//!
//! Rules across rows: an id appears once per file; a parent is in the
//! file or already stored, at the same site; and the resulting hierarchy
//! (stored assets with the file's applied) has no cycle and no asset
//! deeper than five levels below its site
//! ([`validate_hierarchy`]). A hierarchy
//! error is reported on the row of the asset that breaks the rule, or,
//! when that asset is a stored one (an asset moved by the file takes its
//! stored children along), on the row of its nearest ancestor in the file.
//!
//! The key is `id`. On re-import with upsert every column is replaced;
//! the asset's telemetry points (set by `points.csv`) are kept. Moving an
//! asset to another site is refused while it has points or children at
//! the old site.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use time::Date;

use super::cells::{Cells, MAX_ID};
use super::report::{code, Errors, ImportReport};
use super::{check_known_site, finish, merge_by_key, table, ImportContext, ImportMode, Merge};
use crate::cmms::asset::MAX_NAME;
use crate::cmms::{
    validate_hierarchy, Asset, AssetId, AssetKind, Criticality, HierarchyError, ParentLink, SiteId,
};

/// The columns of `assets.csv`, in export order.
pub const ASSET_COLUMNS: [&str; 11] = [
    "id",
    "site",
    "parent",
    "name",
    "kind",
    "manufacturer",
    "model",
    "serial",
    "installed_on",
    "criticality",
    "location",
];
const ID: usize = 0;
const SITE: usize = 1;
const PARENT: usize = 2;
const NAME: usize = 3;
const KIND: usize = 4;
const MANUFACTURER: usize = 5;
const MODEL: usize = 6;
const SERIAL: usize = 7;
const INSTALLED_ON: usize = 8;
const CRITICALITY: usize = 9;
const LOCATION: usize = 10;

/// Hierarchy errors (cycles, depth) listed per file; each costs a pass
/// over the hierarchy, and a file with this many is wrong at the root.
const MAX_HIERARCHY_ERRORS: usize = 100;

pub(super) const KINDS: [(&str, AssetKind); 17] = [
    ("area", AssetKind::Area),
    ("inverter", AssetKind::Inverter),
    ("transformer", AssetKind::Transformer),
    ("combiner_box", AssetKind::CombinerBox),
    ("pv_array", AssetKind::PvArray),
    ("pv_string", AssetKind::PvString),
    ("tracker", AssetKind::Tracker),
    ("wind_turbine", AssetKind::WindTurbine),
    ("gearbox", AssetKind::Gearbox),
    ("generator", AssetKind::Generator),
    ("battery_storage", AssetKind::BatteryStorage),
    ("battery_rack", AssetKind::BatteryRack),
    ("power_conversion_system", AssetKind::PowerConversionSystem),
    ("switchgear", AssetKind::Switchgear),
    ("meter", AssetKind::Meter),
    ("weather_station", AssetKind::WeatherStation),
    ("controller", AssetKind::Controller),
];

const CRITICALITIES: [(&str, Criticality); 4] = [
    ("low", Criticality::Low),
    ("medium", Criticality::Medium),
    ("high", Criticality::High),
    ("critical", Criticality::Critical),
];

/// The kind written in the file: a known kind's name, or `Other`'s text.
pub fn kind_name(kind: &AssetKind) -> &str {
    match kind {
        AssetKind::Other(text) => text,
        known => KINDS
            .iter()
            .find(|(_, k)| k == known)
            .map_or("other", |(name, _)| name),
    }
}

/// The kind of a (non-empty, trimmed) value: a known kind by name, else
/// `Other` with the text as written.
pub fn parse_kind(value: &str) -> AssetKind {
    let name = table::normalise_header(value);
    KINDS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or_else(|| AssetKind::Other(value.to_owned()), |(_, k)| k.clone())
}

fn criticality_name(c: Criticality) -> &'static str {
    CRITICALITIES
        .iter()
        .find(|(_, k)| *k == c)
        .map_or("", |(name, _)| name)
}

fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Checks an `assets.csv` file against the stored assets; the assets in
/// file order (with no points: merge keeps the stored ones), or every
/// problem.
pub fn parse_assets(
    input: &[u8],
    ctx: &ImportContext<'_, Asset>,
) -> Result<Vec<Asset>, ImportReport> {
    let mut errors = Errors::default();
    let table = table::read(
        input,
        "assets.csv",
        &ASSET_COLUMNS,
        &ctx.options,
        &mut errors,
    );
    let stored: HashMap<&AssetId, &Asset> = ctx.existing.iter().map(|a| (&a.id, a)).collect();
    // First line and site of every id in the file, rows with errors
    // included, so that a child of a bad row is not also "unknown".
    let mut seen: HashMap<AssetId, (usize, String)> = HashMap::new();
    let mut good: Vec<(usize, Asset)> = Vec::with_capacity(table.rows.len());

    for row in &table.rows {
        let mut c = Cells::new(row, &ASSET_COLUMNS, &mut errors);
        let id = AssetId(c.id(ID));
        let site = c.site(SITE);
        check_known_site(&mut c, SITE, &site, ctx.sites);
        let parent = c.optional_id(PARENT).map(AssetId);
        let name = c.text(NAME, MAX_NAME);
        let kind = parse_kind(&c.text(KIND, MAX_ID));
        let manufacturer = c.optional_text(MANUFACTURER);
        let model = c.optional_text(MODEL);
        let serial = c.optional_text(SERIAL);
        let installed_on = c.date(INSTALLED_ON);
        let criticality = c.choice(CRITICALITY, &CRITICALITIES);
        let location = c.optional_text(LOCATION);

        let old = stored.get(&id).copied();
        if !id.as_str().is_empty() {
            if let Some((first, _)) = seen.get(&id) {
                c.fail(
                    ID,
                    code::DUPLICATE,
                    format!("asset {id} already appears on line {first}"),
                );
            } else {
                seen.insert(id.clone(), (c.line(), site.clone()));
                if old.is_some() && ctx.options.mode == ImportMode::CreateOnly {
                    c.fail(
                        ID,
                        code::ALREADY_EXISTS,
                        format!("asset {id} already exists (import with upsert to update it)"),
                    );
                }
            }
        }
        let (Some(criticality), true) = (criticality, c.ok()) else {
            continue;
        };
        let asset = Asset {
            id,
            site: SiteId(site),
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
        if let Err(e) = asset.validate() {
            c.fail(NAME, e.code(), e.to_string());
            continue;
        }
        // Stored points stay with the asset: they must remain at its site.
        if let Some(old) = old.filter(|o| !o.points.is_empty() && o.site != asset.site) {
            let moved = Asset {
                points: old.points.clone(),
                ..asset.clone()
            };
            if let Err(e) = moved.validate() {
                c.fail(
                    SITE,
                    e.code(),
                    format!("{e}; unlink the asset's points before moving it to another site"),
                );
                continue;
            }
        }
        good.push((c.line(), asset));
    }

    if table.usable {
        check_hierarchy(&good, &seen, ctx.existing, table.header_line, &mut errors);
    }
    let records = good.into_iter().map(|(_, a)| a).collect();
    finish(errors, table.count, &ctx.options, records)
}

/// The rules across rows: parents exist at the same site, stored children
/// of moved assets stay at their parent's site, and the hierarchy with
/// the file applied is valid.
fn check_hierarchy(
    good: &[(usize, Asset)],
    seen: &HashMap<AssetId, (usize, String)>,
    stored: &[Asset],
    header_line: usize,
    errors: &mut Errors,
) {
    let parent_col = Some(ASSET_COLUMNS[PARENT]);
    let stored_by_id: HashMap<&AssetId, &Asset> = stored.iter().map(|a| (&a.id, a)).collect();
    let in_file: HashMap<&AssetId, &(usize, Asset)> = good.iter().map(|g| (&g.1.id, g)).collect();
    // Links whose parent is not checked further (reported or unknowable).
    let mut cut: BTreeSet<AssetId> = BTreeSet::new();

    for (line, asset) in good {
        let Some(parent) = &asset.parent else {
            continue;
        };
        let parent_site = match (seen.get(parent), stored_by_id.get(parent)) {
            (Some((_, site)), _) if site.is_empty() => {
                // The parent's row has an error already.
                cut.insert(asset.id.clone());
                continue;
            }
            (Some((_, site)), _) => site.as_str(),
            (None, Some(p)) => p.site.as_str(),
            (None, None) => {
                let e = HierarchyError::UnknownParent {
                    asset: asset.id.clone(),
                    parent: parent.clone(),
                };
                errors.push(
                    *line,
                    parent_col,
                    e.code(),
                    format!("{e}: it must be in this file or already stored"),
                );
                cut.insert(asset.id.clone());
                continue;
            }
        };
        if !in_file.contains_key(parent) && seen.contains_key(parent) {
            // The parent's row was refused; its site is known but not its
            // place in the hierarchy.
            cut.insert(asset.id.clone());
        }
        if parent_site != asset.site.as_str() {
            let e = HierarchyError::CrossSite {
                asset: asset.id.clone(),
                site: asset.site.clone(),
                parent: parent.clone(),
                parent_site: SiteId::from(parent_site),
            };
            errors.push(*line, parent_col, e.code(), e.to_string());
            cut.insert(asset.id.clone());
        }
    }

    // Stored children left behind at another site by a moved parent: one
    // error per moved asset, naming the children.
    let mut left_behind: BTreeMap<&AssetId, Vec<&Asset>> = BTreeMap::new();
    for child in stored.iter().filter(|a| !seen.contains_key(&a.id)) {
        if let Some((_, parent)) = child.parent.as_ref().and_then(|p| in_file.get(p)) {
            if parent.site != child.site {
                left_behind.entry(&parent.id).or_default().push(child);
                cut.insert(child.id.clone());
            }
        }
    }
    for (moved, children) in left_behind {
        let Some((line, asset)) = in_file.get(moved).copied() else {
            continue;
        };
        let first = children[0];
        let e = HierarchyError::CrossSite {
            asset: first.id.clone(),
            site: first.site.clone(),
            parent: asset.id.clone(),
            parent_site: asset.site.clone(),
        };
        let mut names: Vec<&str> = children.iter().take(5).map(|c| c.id.as_str()).collect();
        if children.len() > 5 {
            names.push("...");
        }
        errors.push(
            *line,
            Some(ASSET_COLUMNS[SITE]),
            e.code(),
            format!(
                "asset {moved} moves to site {} but {} stored child asset(s) stay at their \
                 site ({}); move or re-parent them in the same file",
                asset.site,
                children.len(),
                names.join(", ")
            ),
        );
    }

    // The hierarchy of the touched sites, stored links with the file's
    // applied. Other sites cannot be affected: parents are same-site.
    let mut sites: BTreeSet<&SiteId> = good.iter().map(|(_, a)| &a.site).collect();
    sites.extend(
        good.iter()
            .filter_map(|(_, a)| stored_by_id.get(&a.id).map(|s| &s.site)),
    );
    let mut links: BTreeMap<AssetId, ParentLink> = stored
        .iter()
        .filter(|a| sites.contains(&a.site))
        .map(|a| (a.id.clone(), a.link()))
        .collect();
    for (_, asset) in good {
        links.insert(asset.id.clone(), asset.link());
    }
    for id in &cut {
        if let Some(link) = links.get_mut(id) {
            link.parent = None;
        }
    }
    let lines: HashMap<&AssetId, usize> = good.iter().map(|(l, a)| (&a.id, *l)).collect();
    for _ in 0..MAX_HIERARCHY_ERRORS {
        let list: Vec<ParentLink> = links.values().cloned().collect();
        let Err(e) = validate_hierarchy(&list) else {
            return;
        };
        let blamed = blame(&links, e.asset(), &lines);
        let row = blamed.as_ref().and_then(|id| lines.get(id)).copied();
        match row {
            Some(line) if !errors.has(line, e.code()) => {
                errors.push(line, parent_col, e.code(), e.to_string());
            }
            Some(_) => {}
            None => errors.push(
                header_line,
                None,
                e.code(),
                format!("the stored assets break the hierarchy: {e}"),
            ),
        }
        // Take the blamed link out and look for the next error. Cutting
        // the blamed asset's link ends a cycle through it or the depth of
        // everything below it; a link already cut cannot be, so cut the
        // named asset's (it has a parent, or it would not break a rule).
        let target = match (&e, &blamed) {
            (HierarchyError::Cycle { .. } | HierarchyError::TooDeep { .. }, Some(id))
                if links.get(id).is_some_and(|l| l.parent.is_some()) =>
            {
                id.clone()
            }
            _ => e.asset().clone(),
        };
        match links.get_mut(&target) {
            Some(link) if link.parent.is_some() => link.parent = None,
            // No progress possible (a duplicate id): stop looking.
            _ => return,
        }
    }
}

/// The asset of the file to blame for an error at `asset`: itself, or its
/// nearest ancestor that is in the file.
fn blame(
    links: &BTreeMap<AssetId, ParentLink>,
    asset: &AssetId,
    in_file: &HashMap<&AssetId, usize>,
) -> Option<AssetId> {
    let mut cursor = asset;
    for _ in 0..=links.len() {
        if in_file.contains_key(cursor) {
            return Some(cursor.clone());
        }
        cursor = links.get(cursor)?.parent.as_ref()?;
    }
    None
}

/// Writes `assets.csv`, in the order given; points are written by
/// [`export_points`](super::export_points).
pub fn export_assets(assets: &[Asset]) -> String {
    let mut out = String::new();
    table::write_record(&mut out, ASSET_COLUMNS);
    for a in assets {
        let installed_on = a.installed_on.map(format_date).unwrap_or_default();
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        table::write_record(
            &mut out,
            [
                a.id.as_str(),
                a.site.as_str(),
                a.parent.as_ref().map_or("", AssetId::as_str),
                &a.name,
                kind_name(&a.kind),
                &opt(&a.manufacturer),
                &opt(&a.model),
                &opt(&a.serial),
                &installed_on,
                criticality_name(a.criticality),
                &opt(&a.location),
            ],
        );
    }
    out
}

/// Splits parsed assets into created, updated and unchanged; updated
/// assets keep their stored points.
pub fn merge_assets(existing: &[Asset], imported: Vec<Asset>) -> Merge<Asset> {
    let existing = existing.iter().map(|a| (a.id.clone(), a)).collect();
    merge_by_key(
        existing,
        imported,
        |a| a.id.clone(),
        |old, mut new| {
            new.points.clone_from(&old.points);
            (*old != new).then_some(new)
        },
    )
}

#[cfg(test)]
#[path = "assets_tests.rs"]
mod tests;
