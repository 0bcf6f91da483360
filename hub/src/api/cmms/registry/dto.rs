//! Request and response types of the register routes, and the checks of
//! their fields.
//!
//! Field checks go through the CSV formats of `dcmms_shared::cmms::csv`:
//! a record is written as a one-row file and read back with the format's
//! own parser, whose per-cell errors become the 422's fields. So the API
//! and the import accept exactly the same values, and every record the API
//! stores exports to a file that imports back.

use crate::api::telemetry::format_ms;
use crate::api::FieldError;
use crate::store::cmms::parts::StoredPart;
use crate::store::cmms::sites::Site;
use dcmms_shared::cmms::csv::assets::{kind_name, parse_kind};
use dcmms_shared::cmms::csv::{self, ImportContext, PartRecord, SiteRecord};
use dcmms_shared::cmms::{Asset, AssetId, AssetKind, Criticality, Money};
use serde::{Deserialize, Deserializer, Serialize};
use time::Date;
use utoipa::ToSchema;

// What the document says each text field accepts, as JSON Schema
// patterns; the schema attributes repeat them as literals (utoipa takes
// no constants) and a test holds the two together. The checks below are
// these patterns, in code: values are refused, never trimmed or repaired,
// so a value the document calls valid is accepted and one it calls
// invalid is refused.

/// A site id (`dcmms_shared::validate_name`).
#[cfg(test)]
pub const SITE_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
/// `site/device/point`.
#[cfg(test)]
pub const POINT_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}$";
/// Text without control characters (Unicode `Cc`) and without white space
/// (Unicode `White_Space`) at either end: ids, names, free text.
#[cfg(test)]
pub const TEXT_PATTERN: &str = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$";
/// An IANA time-zone name's shape, as `sites.csv` checks it.
#[cfg(test)]
pub const TIMEZONE_PATTERN: &str = "^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$";
/// Longest time-zone name.
pub const MAX_TIMEZONE: usize = 64;
/// Longest id (asset, part) and kind.
pub const MAX_ID: usize = 128;
/// Longest name.
pub const MAX_NAME: usize = 200;
/// Longest free text (manufacturer, model, serial, location, reason).
pub const MAX_TEXT: usize = 500;
/// Longest stock unit.
pub const MAX_UNIT: usize = 32;
/// Highest unit cost, in cents.
pub const MAX_COST_CENTS: i64 = 1_000_000_000_000;

/// The problems found in a request's fields.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<FieldError>);

impl Problems {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// [`TEXT_PATTERN`], 1 to `max` characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.is_empty() || value.chars().count() > max {
            self.fail(field, format!("must be 1 to {max} characters"));
        } else if value.chars().any(char::is_control) {
            self.fail(field, "must not contain control characters");
        } else if value.trim() != value {
            self.fail(field, "must not start or end with white space");
        }
    }

    pub fn opt_text(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(v) = value {
            self.text(field, v, max);
        }
    }

    /// [`SITE_PATTERN`].
    pub fn site(&mut self, field: &str, value: &str) {
        if dcmms_shared::validate_name(value).is_err() {
            self.fail(
                field,
                "must be a site id: 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'",
            );
        }
    }

    /// [`TIMEZONE_PATTERN`], at most [`MAX_TIMEZONE`] characters.
    pub fn timezone(&mut self, field: &str, value: &str) {
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-'))
        };
        if value.len() > MAX_TIMEZONE || !value.split('/').all(part_ok) {
            self.fail(
                field,
                "must be an IANA time-zone name such as Europe/Madrid or UTC",
            );
        }
    }

    /// [`POINT_PATTERN`].
    pub fn point(&mut self, field: &str, value: &str) {
        let parts: Vec<&str> = value.split('/').collect();
        if parts.len() != 3
            || parts
                .iter()
                .any(|p| dcmms_shared::validate_name(p).is_err())
        {
            self.fail(field, "must be a point name site/device/point");
        }
    }

    /// 0 to [`MAX_COST_CENTS`].
    pub fn cents(&mut self, field: &str, value: i64) {
        if !(0..=MAX_COST_CENTS).contains(&value) {
            self.fail(field, format!("must be 0 to {MAX_COST_CENTS}"));
        }
    }

    /// 422 naming every field at fault, if any.
    pub fn check(self) -> Result<(), crate::api::ApiError> {
        crate::api::ApiError::invalid(self.0)
    }
}

/// The kinds of record a CSV file holds, one kind per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// `sites.csv`: id, name, timezone.
    Sites,
    /// `assets.csv`: the asset register.
    Assets,
    /// `points.csv`: which telemetry points measure which asset.
    Points,
    /// `parts.csv`: spare parts and their stock.
    Parts,
}

impl FileKind {
    /// The kind named in a path, or 404.
    pub fn parse(text: &str) -> Result<FileKind, crate::api::ApiError> {
        match text {
            "sites" => Ok(FileKind::Sites),
            "assets" => Ok(FileKind::Assets),
            "points" => Ok(FileKind::Points),
            "parts" => Ok(FileKind::Parts),
            _ => Err(crate::api::ApiError::not_found(
                "no such kind of file; the kinds are sites, assets, points and parts",
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FileKind::Sites => "sites",
            FileKind::Assets => "assets",
            FileKind::Points => "points",
            FileKind::Parts => "parts",
        }
    }

    /// The file's conventional name.
    pub fn file_name(self) -> &'static str {
        match self {
            FileKind::Sites => "sites.csv",
            FileKind::Assets => "assets.csv",
            FileKind::Points => "points.csv",
            FileKind::Parts => "parts.csv",
        }
    }
}

/// How much an asset's failure hurts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum CriticalityName {
    Low,
    #[default]
    Medium,
    High,
    /// Failure stops the site or endangers people.
    Critical,
}

impl From<Criticality> for CriticalityName {
    fn from(c: Criticality) -> Self {
        match c {
            Criticality::Low => CriticalityName::Low,
            Criticality::Medium => CriticalityName::Medium,
            Criticality::High => CriticalityName::High,
            Criticality::Critical => CriticalityName::Critical,
        }
    }
}

impl From<CriticalityName> for Criticality {
    fn from(c: CriticalityName) -> Self {
        match c {
            CriticalityName::Low => Criticality::Low,
            CriticalityName::Medium => Criticality::Medium,
            CriticalityName::High => Criticality::High,
            CriticalityName::Critical => Criticality::Critical,
        }
    }
}

/// A site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SiteView {
    /// The site's name in telemetry topics and point names.
    pub id: String,
    pub name: String,
    /// IANA time-zone name, for display; stored instants are UTC.
    pub timezone: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&Site> for SiteView {
    fn from(s: &Site) -> Self {
        SiteView {
            id: s.id.to_string(),
            name: s.name.clone(),
            timezone: s.timezone.clone(),
            created_at: format_ms(crate::store::cmms::ms(s.created_at)),
        }
    }
}

/// An asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AssetView {
    pub id: String,
    pub site: String,
    /// The parent asset; null: directly under the site.
    pub parent: Option<String>,
    pub name: String,
    /// A known kind (`inverter`, `combiner_box`, ...) or free text.
    pub kind: String,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    #[schema(format = Date)]
    pub installed_on: Option<String>,
    pub criticality: CriticalityName,
    pub location: Option<String>,
    /// Telemetry points measured on the asset, `site/device/point`.
    pub points: Vec<String>,
}

/// `YYYY-MM-DD`.
pub fn date_text(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

impl From<&Asset> for AssetView {
    fn from(a: &Asset) -> Self {
        AssetView {
            id: a.id.to_string(),
            site: a.site.to_string(),
            parent: a.parent.as_ref().map(AssetId::to_string),
            name: a.name.clone(),
            kind: kind_name(&a.kind).to_owned(),
            manufacturer: a.manufacturer.clone(),
            model: a.model.clone(),
            serial: a.serial.clone(),
            installed_on: a.installed_on.map(date_text),
            criticality: a.criticality.into(),
            location: a.location.clone(),
            points: a.points.clone(),
        }
    }
}

/// Parts set aside for one work order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReservationView {
    pub work_order: String,
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_i64)]
    pub qty: u32,
}

/// A part of a site's catalogue with its stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PartView {
    pub site: String,
    pub part: String,
    pub name: String,
    /// Stock unit (`pcs`, `ml`).
    pub unit: String,
    /// Cost of one unit as a decimal (`"4.50"`); null for callers without
    /// `view_costs` at the site.
    pub unit_cost: Option<String>,
    /// The same in cents.
    pub unit_cost_cents: Option<i64>,
    /// Reorder at or below this available quantity; null: never.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_i64)]
    pub reorder_level: Option<u32>,
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_i64)]
    pub on_hand: u32,
    /// Set aside for work orders.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_i64)]
    pub reserved: u32,
    /// On hand and not reserved.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_i64)]
    pub available: u32,
    /// `available` is at or below `reorder_level`.
    pub needs_reorder: bool,
    pub reservations: Vec<ReservationView>,
}

impl PartView {
    /// The view; `costs`: whether the reader may see unit costs.
    pub fn of(p: &StoredPart, costs: bool) -> Self {
        let s = &p.stock;
        PartView {
            site: s.site.to_string(),
            part: s.part.to_string(),
            name: p.name.clone(),
            unit: s.unit.clone(),
            unit_cost: costs.then(|| s.unit_cost.to_string()),
            unit_cost_cents: costs.then(|| s.unit_cost.minor()),
            reorder_level: s.reorder_level,
            on_hand: s.on_hand(),
            reserved: s.reserved(),
            available: s.available(),
            needs_reorder: s.needs_reorder(),
            reservations: s
                .reservations()
                .iter()
                .map(|(wo, qty)| ReservationView {
                    work_order: wo.to_string(),
                    qty: *qty,
                })
                .collect(),
        }
    }
}

/// A field that may be absent (keep), null (clear) or a value (set):
/// `Option<Option<T>>` from JSON.
pub fn nullable<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// The problems of a one-row file, as fields (`rename` maps a column to
/// the API's field name).
fn fields_of(report: csv::ImportReport, rename: impl Fn(&str) -> String) -> Vec<FieldError> {
    report
        .errors
        .into_iter()
        .map(|e| {
            let field = e.column.as_deref().map_or_else(|| ".".to_owned(), &rename);
            FieldError::new(field, e.message)
        })
        .collect()
}

/// A record whose every field is empty reads as a blank line.
fn empty() -> Vec<FieldError> {
    vec![FieldError::new(".", "the record is empty")]
}

/// Checks a site's fields as `sites.csv` does.
pub fn check_site(record: SiteRecord) -> Result<SiteRecord, Vec<FieldError>> {
    let file = csv::export_sites(std::slice::from_ref(&record));
    csv::parse_sites(file.as_bytes(), &ImportContext::new(&[]))
        .map_err(|r| fields_of(r, str::to_owned))
        .and_then(|mut v| v.pop().ok_or_else(empty))
}

/// Checks an asset's own fields as `assets.csv` does (its parent and
/// points are the store's to check).
pub fn check_asset(asset: Asset) -> Result<Asset, Vec<FieldError>> {
    let probe = Asset {
        parent: None,
        points: Vec::new(),
        ..asset.clone()
    };
    let file = csv::export_assets(std::slice::from_ref(&probe));
    match csv::parse_assets(file.as_bytes(), &ImportContext::new(&[])) {
        Ok(mut v) => match v.pop() {
            // The file trims values; keep what it read.
            Some(read) => Ok(Asset {
                parent: asset.parent,
                points: asset.points,
                ..read
            }),
            None => Err(empty()),
        },
        Err(r) => Err(fields_of(r, str::to_owned)),
    }
}

/// The kind written in a request: a known kind's name (case, spaces and
/// `-` do not matter) or free text.
pub fn kind_of(text: &str) -> AssetKind {
    parse_kind(text.trim())
}

/// Checks a part's fields as `parts.csv` does.
pub fn check_part(record: PartRecord) -> Result<PartRecord, Vec<FieldError>> {
    let file = csv::export_parts(std::slice::from_ref(&record));
    csv::parse_parts(file.as_bytes(), &ImportContext::new(&[]))
        .map_err(|r| {
            fields_of(r, |c| match c {
                "unit_cost" => "unit_cost_cents".to_owned(),
                other => other.to_owned(),
            })
        })
        .and_then(|mut v| v.pop().ok_or_else(empty))
}

/// An amount in cents as a decimal string.
pub fn decimal(cents: i64) -> String {
    Money::from_minor(cents).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_checks_are_the_csv_formats() {
        let site = |id: &str, tz: &str| SiteRecord {
            id: id.into(),
            name: " Solar North ".into(),
            timezone: tz.into(),
        };
        assert_eq!(
            check_site(site("north", "Europe/Berlin")).unwrap().name,
            "Solar North"
        );
        let bad = check_site(site("no rth", "Europe Berlin")).unwrap_err();
        let fields: Vec<&str> = bad.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["id", "timezone"]);

        let part = PartRecord {
            site: "north".into(),
            part: "fuse".into(),
            name: "Fuse".into(),
            unit: "pcs".into(),
            unit_cost: Money::from_minor(-5),
            reorder_level: None,
            on_hand: 0,
        };
        let bad = check_part(part).unwrap_err();
        assert_eq!(bad[0].field, "unit_cost_cents");

        assert_eq!(kind_of(" Combiner Box "), AssetKind::CombinerBox);
        assert_eq!(
            kind_of("dc optimiser"),
            AssetKind::Other("dc optimiser".into())
        );
        assert_eq!(decimal(-5), "-0.05");
        assert_eq!(decimal(123_456), "1234.56");
    }
}
