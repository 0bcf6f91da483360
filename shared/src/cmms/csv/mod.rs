//! CSV onboarding: import and export of sites, assets, telemetry point
//! links and spare parts.
//!
//! Sites keep their asset registers and parts lists in spreadsheets; these
//! are the file formats the hub imports and exports. This module owns the
//! formats, the checks that turn a file into domain records, the merge of
//! imported records into existing ones, and the export. It is sans-IO: it
//! takes the file as bytes and the existing records as slices, and returns
//! records to write or a report of everything wrong; it never reads or
//! writes storage.
//!
//! # The files
//!
//! One file per kind of record, each documented in its module with an
//! example: [`sites`] (`sites.csv`), [`assets`] (`assets.csv`),
//! [`points`] (`points.csv`) and [`parts`] (`parts.csv`). Export writes
//! the same columns, so an exported file can be edited and imported back.
//!
//! Rules common to all files:
//! - UTF-8, with or without a byte-order mark. Fields are separated by `,`;
//!   a field containing `,`, `"` or a line break is enclosed in `"`, with
//!   `"` inside written as `""` (what spreadsheet programs write when
//!   saving as "CSV UTF-8").
//! - The first non-blank line is the header. Columns are matched by name,
//!   in any order; names are compared ignoring case and surrounding spaces,
//!   and spaces or `-` count as `_` (`Installed On` is `installed_on`).
//! - Every column of the format must be in the header, even when all its
//!   values are empty: a missing column is refused (one error listing all
//!   missing columns) rather than read as empty, because re-importing a
//!   file with a column left out would otherwise blank that field on every
//!   record. A column the format does not have is refused, naming it, so
//!   that a misspelt header never drops data silently. Header cells that
//!   are empty (a trailing `,`) are allowed if their values are empty too.
//! - Blank lines, and rows whose fields are all empty (`,,,`), are skipped.
//!   Every value is trimmed of surrounding spaces; an empty optional value
//!   means "none".
//! - At most [`ImportOptions::max_rows`] data rows (100,000 by default).
//!
//! # Checking and the report
//!
//! Import is all-or-nothing per file: every row is checked, every problem
//! is collected into an [`ImportReport`] (each [`RowError`] names the line,
//! the column and a stable [`code`](report::code)), and a file with any
//! problem yields no records at all. Lines are those of the file as a text
//! editor shows them; the header is line 1 and a quoted field spanning
//! lines counts them. Checks across rows (duplicates, parents, the asset
//! hierarchy, point links) see the records already stored, which the
//! caller passes in an [`ImportContext`].
//!
//! # Re-import and merge
//!
//! A file may name records that already exist. With
//! [`ImportMode::CreateOnly`] that is an error on the row; with
//! [`ImportMode::Upsert`] the row replaces the fields the file carries
//! (fields a format does not carry, such as an asset's points or a stock
//! item's reservations, are kept). Import never deletes: a record missing
//! from the file stays as it is. After a successful parse, the `merge_*`
//! function of the format splits the records into created, updated and
//! unchanged ([`Merge`]), which the caller writes in one transaction and
//! reports as a [`MergeSummary`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ids::SiteId;

pub mod assets;
mod cells;
pub mod parts;
pub mod points;
pub mod report;
pub mod sites;
mod table;
#[cfg(test)]
mod tests;

pub use assets::{export_assets, merge_assets, parse_assets, ASSET_COLUMNS};
pub use cells::{MAX_ID, MAX_TEXT};
pub use parts::{export_parts, merge_parts, parse_parts, ExistingPart, PartRecord, PART_COLUMNS};
pub use points::{
    export_points, merge_points, parse_points, point_links, PointLink, POINT_COLUMNS,
};
pub use report::{ImportReport, RowError};
pub use sites::{export_sites, merge_sites, parse_sites, SiteRecord, SITE_COLUMNS};
pub use table::column_values;

/// Default of [`ImportOptions::max_rows`].
pub const DEFAULT_MAX_ROWS: usize = 100_000;
/// Default of [`ImportOptions::max_errors`].
pub const DEFAULT_MAX_ERRORS: usize = 1_000;

/// What an import does with records that already exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Every record of the file must be new; an existing one is an error
    /// on its row.
    #[default]
    CreateOnly,
    /// New records are created, existing ones updated with the file's
    /// fields.
    Upsert,
}

/// Limits and mode of one import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    pub mode: ImportMode,
    /// Data rows beyond this refuse the file.
    pub max_rows: usize,
    /// Errors listed in the report; further ones are only counted
    /// ([`ImportReport::errors_omitted`]), to bound the size of the
    /// response for a file that is wrong on every row.
    pub max_errors: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            mode: ImportMode::CreateOnly,
            max_rows: DEFAULT_MAX_ROWS,
            max_errors: DEFAULT_MAX_ERRORS,
        }
    }
}

/// What an import is checked against: the records already stored, and
/// optionally the sites that exist.
///
/// `existing` must hold every stored record the file could touch or
/// refer to; passing more is harmless (only slower):
/// - assets: every stored asset of the sites named in the file (the
///   hierarchy is checked over them) and every stored asset whose id is in
///   the file (an asset may move to another site), with their points;
/// - points: the assets the file names;
/// - parts: the stored parts of the sites named in the file;
/// - sites: the stored sites with the file's ids.
///
/// [`column_values`] gives the sites or ids a file names, to load just
/// these before checking it.
#[derive(Debug)]
pub struct ImportContext<'a, E> {
    pub existing: &'a [E],
    /// When set, a site not in this set is an error (`unknown_site`).
    /// Not used by the sites file itself.
    pub sites: Option<&'a BTreeSet<SiteId>>,
    pub options: ImportOptions,
}

impl<'a, E> ImportContext<'a, E> {
    /// Create-only, default limits, sites not checked.
    pub fn new(existing: &'a [E]) -> Self {
        ImportContext {
            existing,
            sites: None,
            options: ImportOptions::default(),
        }
    }

    pub fn with_mode(mut self, mode: ImportMode) -> Self {
        self.options.mode = mode;
        self
    }

    pub fn with_known_sites(mut self, sites: &'a BTreeSet<SiteId>) -> Self {
        self.sites = Some(sites);
        self
    }

    pub fn with_options(mut self, options: ImportOptions) -> Self {
        self.options = options;
        self
    }
}

/// Imported records split by what writing them does.
#[derive(Debug, Clone, PartialEq)]
pub struct Merge<T> {
    /// Records to insert, in file order.
    pub created: Vec<T>,
    /// Records to overwrite, in file order, already combined with the
    /// fields the file does not carry.
    pub updated: Vec<T>,
    /// Rows identical to what is stored: nothing to write.
    pub unchanged: usize,
}

impl<T> Merge<T> {
    pub fn summary(&self) -> MergeSummary {
        MergeSummary {
            created: self.created.len(),
            updated: self.updated.len(),
            unchanged: self.unchanged,
        }
    }
}

/// The counts of a [`Merge`], for the API's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MergeSummary {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// Splits `imported` against `existing` (by key): new keys are created;
/// for existing keys `update(old, new)` gives the record to write, or
/// `None` when nothing changes.
fn merge_by_key<K: Ord, E, T>(
    existing: BTreeMap<K, &E>,
    imported: Vec<T>,
    key: impl Fn(&T) -> K,
    update: impl Fn(&E, T) -> Option<T>,
) -> Merge<T> {
    let mut merge = Merge {
        created: Vec::new(),
        updated: Vec::new(),
        unchanged: 0,
    };
    for record in imported {
        match existing.get(&key(&record)) {
            None => merge.created.push(record),
            Some(old) => match update(old, record) {
                Some(new) => merge.updated.push(new),
                None => merge.unchanged += 1,
            },
        }
    }
    merge
}

/// Reports a site outside the known set, if one was given.
fn check_known_site(
    cells: &mut cells::Cells<'_>,
    col: usize,
    site: &str,
    known: Option<&BTreeSet<SiteId>>,
) {
    if site.is_empty() {
        return;
    }
    if let Some(known) = known {
        if !known.contains(&SiteId::from(site)) {
            cells.fail(
                col,
                report::code::UNKNOWN_SITE,
                format!(
                    "site {} does not exist; import it in sites.csv first",
                    cells::shown(site)
                ),
            );
        }
    }
}

/// The outcome of a parse: the records if no error was found, else the
/// report (all-or-nothing).
fn finish<T>(
    errors: report::Errors,
    rows: usize,
    options: &ImportOptions,
    records: Vec<T>,
) -> Result<Vec<T>, ImportReport> {
    if errors.is_empty() {
        Ok(records)
    } else {
        Err(errors.into_report(rows, options.max_errors))
    }
}
