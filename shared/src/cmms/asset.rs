//! Assets and the rules of the asset hierarchy.
//!
//! This module owns the [`Asset`] record and [`validate_hierarchy`], the one
//! definition of what a valid tree of parent links is. It never looks up
//! assets anywhere: callers hand it the links of a site (or of the whole
//! fleet) and get either the level of every asset or the first broken rule,
//! naming the offending asset.
//!
//! Levels: the site itself is level 1, an asset without a parent hangs
//! directly under its site at level 2, and the deepest allowed asset is at
//! level [`MAX_LEVEL`] (6), so a site has at most five levels of assets
//! (for example site > block > inverter > MPPT > string > module).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::Date;

use super::ids::{AssetId, SiteId};
use super::iso_date;

/// Deepest level an asset may sit at; the site is level 1.
pub const MAX_LEVEL: u8 = 6;

/// What an asset is. `Other` covers equipment without a dedicated kind; its
/// text is free-form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    /// A part of a site grouping equipment (a PV block, a feeder, a turbine row).
    Area,
    Inverter,
    Transformer,
    CombinerBox,
    PvArray,
    PvString,
    Tracker,
    WindTurbine,
    Gearbox,
    Generator,
    BatteryStorage,
    BatteryRack,
    PowerConversionSystem,
    Switchgear,
    Meter,
    WeatherStation,
    Controller,
    Other(String),
}

/// How much an asset's failure hurts; drives default work-order priority in
/// the hub and the order of the backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criticality {
    Low,
    Medium,
    High,
    /// Failure stops the site or endangers people.
    Critical,
}

/// One piece of equipment at a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    pub id: AssetId,
    pub site: SiteId,
    /// `None`: directly under the site (level 2).
    pub parent: Option<AssetId>,
    pub name: String,
    pub kind: AssetKind,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    #[serde(with = "iso_date::option")]
    pub installed_on: Option<Date>,
    pub criticality: Criticality,
    /// Free-form location (row/position, GPS, room).
    pub location: Option<String>,
    /// Telemetry points measured on this asset, as `site/device/point` names.
    pub points: Vec<String>,
}

/// Why an asset record was refused (its own fields; links are checked by
/// [`validate_hierarchy`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssetError {
    #[error("asset name is empty")]
    EmptyName,
    #[error("asset name is longer than {MAX_NAME} characters")]
    NameTooLong,
    #[error("telemetry point {point:?} is not a site/device/point name")]
    BadPoint { point: String },
    #[error("telemetry point {point:?} is not at the asset's site {site}")]
    PointAtOtherSite { point: String, site: SiteId },
}

impl AssetError {
    pub fn code(&self) -> &'static str {
        match self {
            AssetError::EmptyName => "asset_name_required",
            AssetError::NameTooLong => "asset_name_too_long",
            AssetError::BadPoint { .. } => "bad_point_name",
            AssetError::PointAtOtherSite { .. } => "point_at_other_site",
        }
    }
}

/// Longest asset name, in characters.
pub const MAX_NAME: usize = 200;

impl Asset {
    /// Checks the record's own fields: a name, and linked points named
    /// `site/device/point` (each part a valid [`crate::validate_name`]) at
    /// the asset's own site.
    pub fn validate(&self) -> Result<(), AssetError> {
        if self.name.trim().is_empty() {
            return Err(AssetError::EmptyName);
        }
        if self.name.chars().count() > MAX_NAME {
            return Err(AssetError::NameTooLong);
        }
        for point in &self.points {
            let parts: Vec<&str> = point.split('/').collect();
            let bad = || AssetError::BadPoint {
                point: point.clone(),
            };
            if parts.len() != 3 || parts.iter().any(|p| crate::validate_name(p).is_err()) {
                return Err(bad());
            }
            if parts[0] != self.site.as_str() {
                return Err(AssetError::PointAtOtherSite {
                    point: point.clone(),
                    site: self.site.clone(),
                });
            }
        }
        Ok(())
    }

    /// The parent link of this asset, for [`validate_hierarchy`].
    pub fn link(&self) -> ParentLink {
        ParentLink {
            id: self.id.clone(),
            site: self.site.clone(),
            parent: self.parent.clone(),
        }
    }
}

/// The part of an asset that the hierarchy rules look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentLink {
    pub id: AssetId,
    pub site: SiteId,
    pub parent: Option<AssetId>,
}

impl ParentLink {
    pub fn new(id: &str, site: &str, parent: Option<&str>) -> Self {
        ParentLink {
            id: AssetId::from(id),
            site: SiteId::from(site),
            parent: parent.map(AssetId::from),
        }
    }
}

/// A broken hierarchy rule, naming the asset that breaks it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HierarchyError {
    #[error("asset {asset} appears more than once")]
    DuplicateId { asset: AssetId },
    #[error("asset {asset} has parent {parent}, which does not exist")]
    UnknownParent { asset: AssetId, parent: AssetId },
    #[error("asset {asset} is at site {site} but its parent {parent} is at site {parent_site}")]
    CrossSite {
        asset: AssetId,
        site: SiteId,
        parent: AssetId,
        parent_site: SiteId,
    },
    /// `cycle` lists the assets of the loop, starting and ending at `asset`.
    #[error("asset {asset} is its own ancestor ({})", join(cycle))]
    Cycle { asset: AssetId, cycle: Vec<AssetId> },
    #[error(
        "asset {asset} would be at level {level}; the deepest allowed is {MAX_LEVEL} (site = 1)"
    )]
    TooDeep { asset: AssetId, level: usize },
}

impl HierarchyError {
    /// Stable machine-readable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            HierarchyError::DuplicateId { .. } => "duplicate_asset",
            HierarchyError::UnknownParent { .. } => "unknown_parent",
            HierarchyError::CrossSite { .. } => "parent_in_other_site",
            HierarchyError::Cycle { .. } => "hierarchy_cycle",
            HierarchyError::TooDeep { .. } => "hierarchy_too_deep",
        }
    }

    /// The asset that breaks the rule.
    pub fn asset(&self) -> &AssetId {
        match self {
            HierarchyError::DuplicateId { asset }
            | HierarchyError::UnknownParent { asset, .. }
            | HierarchyError::CrossSite { asset, .. }
            | HierarchyError::Cycle { asset, .. }
            | HierarchyError::TooDeep { asset, .. } => asset,
        }
    }
}

fn join(ids: &[AssetId]) -> String {
    ids.iter()
        .map(AssetId::as_str)
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// Checks a complete set of parent links: ids unique, every parent present,
/// parent in the same site, no cycles, no asset deeper than [`MAX_LEVEL`].
/// On success returns the level of every asset (2 for a top-level asset).
///
/// The links must be complete: a parent missing from `links` is an
/// [`HierarchyError::UnknownParent`]. To check a proposed change (a new
/// asset, a move), pass the current links with the change applied.
/// Assets are visited in id order, so the error reported for a given set of
/// links does not depend on the order they were passed in.
pub fn validate_hierarchy(links: &[ParentLink]) -> Result<BTreeMap<AssetId, u8>, HierarchyError> {
    let mut by_id: BTreeMap<&AssetId, &ParentLink> = BTreeMap::new();
    for link in links {
        if by_id.insert(&link.id, link).is_some() {
            return Err(HierarchyError::DuplicateId {
                asset: link.id.clone(),
            });
        }
    }
    for link in by_id.values() {
        if let Some(parent) = &link.parent {
            let Some(p) = by_id.get(parent) else {
                return Err(HierarchyError::UnknownParent {
                    asset: link.id.clone(),
                    parent: parent.clone(),
                });
            };
            if p.site != link.site {
                return Err(HierarchyError::CrossSite {
                    asset: link.id.clone(),
                    site: link.site.clone(),
                    parent: parent.clone(),
                    parent_site: p.site.clone(),
                });
            }
        }
    }

    // Walk up from each asset until a known level, a root, or a repeat.
    // Each asset is resolved once, so the whole check is linear.
    let mut levels: BTreeMap<AssetId, usize> = BTreeMap::new();
    for start in by_id.keys() {
        if levels.contains_key(*start) {
            continue;
        }
        let mut path: Vec<&AssetId> = Vec::new();
        let mut cursor: &AssetId = start;
        let base = loop {
            if let Some(level) = levels.get(cursor) {
                break *level;
            }
            if let Some(pos) = path.iter().position(|id| *id == cursor) {
                let mut cycle: Vec<AssetId> = path[pos..].iter().map(|id| (*id).clone()).collect();
                cycle.push(cursor.clone());
                return Err(HierarchyError::Cycle {
                    asset: cursor.clone(),
                    cycle,
                });
            }
            path.push(cursor);
            match by_id.get(cursor).and_then(|l| l.parent.as_ref()) {
                Some(parent) => cursor = parent,
                // The site is level 1.
                None => break 1,
            }
        };
        for (depth, id) in path.iter().rev().enumerate() {
            let level = base + depth + 1;
            if level > usize::from(MAX_LEVEL) {
                return Err(HierarchyError::TooDeep {
                    asset: (*id).clone(),
                    level,
                });
            }
            levels.insert((*id).clone(), level);
        }
    }
    Ok(levels
        .into_iter()
        .map(|(id, level)| (id, u8::try_from(level).unwrap_or(u8::MAX)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(id: &str, parent: Option<&str>) -> ParentLink {
        ParentLink::new(id, "s1", parent)
    }

    #[test]
    fn levels_of_a_valid_tree() {
        let links = [
            l("block", None),
            l("inv", Some("block")),
            l("mppt", Some("inv")),
            l("string", Some("mppt")),
            l("module", Some("string")),
            l("other", None),
        ];
        let levels = validate_hierarchy(&links).unwrap();
        assert_eq!(levels[&AssetId::from("block")], 2);
        assert_eq!(levels[&AssetId::from("module")], 6);
        assert_eq!(levels[&AssetId::from("other")], 2);
        assert_eq!(levels.len(), 6);
    }

    #[test]
    fn too_deep_names_the_first_asset_past_the_limit() {
        let links = [
            l("a", None),
            l("b", Some("a")),
            l("c", Some("b")),
            l("d", Some("c")),
            l("e", Some("d")),
            l("f", Some("e")),
            l("g", Some("f")),
        ];
        let err = validate_hierarchy(&links).unwrap_err();
        assert_eq!(
            err,
            HierarchyError::TooDeep {
                asset: AssetId::from("f"),
                level: 7
            }
        );
        assert_eq!(err.code(), "hierarchy_too_deep");
        // The same error whatever order the links come in.
        let mut reversed = links.to_vec();
        reversed.reverse();
        assert_eq!(validate_hierarchy(&reversed).unwrap_err(), err);
    }

    #[test]
    fn cycles_are_found_and_named() {
        let err = validate_hierarchy(&[l("a", Some("c")), l("b", Some("a")), l("c", Some("b"))])
            .unwrap_err();
        match &err {
            HierarchyError::Cycle { asset, cycle } => {
                assert_eq!(asset, &AssetId::from("a"));
                let names: Vec<&str> = cycle.iter().map(AssetId::as_str).collect();
                assert_eq!(names, ["a", "c", "b", "a"]);
            }
            other => panic!("expected a cycle, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "asset a is its own ancestor (a -> c -> b -> a)"
        );

        let err = validate_hierarchy(&[l("x", Some("x"))]).unwrap_err();
        assert_eq!(err.code(), "hierarchy_cycle");
        assert_eq!(err.asset(), &AssetId::from("x"));

        // A tree hanging below a cycle reports the cycle, not depth.
        let err = validate_hierarchy(&[l("a", Some("b")), l("b", Some("a")), l("leaf", Some("a"))])
            .unwrap_err();
        assert_eq!(err.code(), "hierarchy_cycle");
    }

    #[test]
    fn parent_must_exist_and_be_in_the_same_site() {
        let err = validate_hierarchy(&[l("a", Some("ghost"))]).unwrap_err();
        assert_eq!(
            err,
            HierarchyError::UnknownParent {
                asset: AssetId::from("a"),
                parent: AssetId::from("ghost")
            }
        );
        let err = validate_hierarchy(&[
            ParentLink::new("p", "s1", None),
            ParentLink::new("c", "s2", Some("p")),
        ])
        .unwrap_err();
        assert_eq!(err.code(), "parent_in_other_site");
        assert_eq!(err.asset(), &AssetId::from("c"));
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let err = validate_hierarchy(&[l("a", None), l("a", None)]).unwrap_err();
        assert_eq!(err.code(), "duplicate_asset");
    }

    #[test]
    fn two_sites_validate_independently() {
        let links = [
            ParentLink::new("a1", "s1", None),
            ParentLink::new("a2", "s1", Some("a1")),
            ParentLink::new("b1", "s2", None),
        ];
        let levels = validate_hierarchy(&links).unwrap();
        assert_eq!(levels[&AssetId::from("a2")], 3);
        assert_eq!(levels[&AssetId::from("b1")], 2);
    }

    #[test]
    fn asset_serialises_with_snake_case_kinds_and_iso_dates() {
        let asset = Asset {
            id: "inv-01".into(),
            site: "s1".into(),
            parent: Some("block-a".into()),
            name: "Inverter 1".into(),
            kind: AssetKind::CombinerBox,
            manufacturer: Some("SMA".into()),
            model: None,
            serial: None,
            installed_on: Some(time::macros::date!(2021 - 06 - 30)),
            criticality: Criticality::High,
            location: None,
            points: vec!["s1/inv-01/ac_power".into()],
        };
        let json = serde_json::to_value(&asset).unwrap();
        assert_eq!(json["kind"], "combiner_box");
        assert_eq!(json["criticality"], "high");
        assert_eq!(json["installed_on"], "2021-06-30");
        let back: Asset = serde_json::from_value(json).unwrap();
        assert_eq!(back, asset);
        assert_eq!(asset.validate(), Ok(()));
        assert_eq!(
            asset.link(),
            ParentLink::new("inv-01", "s1", Some("block-a"))
        );
    }

    #[test]
    fn asset_fields_are_validated() {
        let mut asset = Asset {
            id: "inv-01".into(),
            site: "s1".into(),
            parent: None,
            name: "Inverter 1".into(),
            kind: AssetKind::Other("dc optimiser".into()),
            manufacturer: None,
            model: None,
            serial: None,
            installed_on: None,
            criticality: Criticality::Low,
            location: None,
            points: vec!["s1/inv-01/ac_power".into()],
        };
        assert_eq!(asset.validate(), Ok(()));
        assert_eq!(
            serde_json::to_value(&asset.kind).unwrap(),
            serde_json::json!({"other": "dc optimiser"})
        );
        asset.points.push("s1/inv-01".into());
        assert_eq!(asset.validate().unwrap_err().code(), "bad_point_name");
        asset.points[1] = "s1/inv 01/x".into();
        assert_eq!(asset.validate().unwrap_err().code(), "bad_point_name");
        asset.points[1] = "s2/inv-01/x".into();
        assert_eq!(asset.validate().unwrap_err().code(), "point_at_other_site");
        asset.points.pop();
        asset.name = " ".into();
        assert_eq!(asset.validate(), Err(AssetError::EmptyName));
        asset.name = "x".repeat(MAX_NAME + 1);
        assert_eq!(asset.validate(), Err(AssetError::NameTooLong));
    }
}
