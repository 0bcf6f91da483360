//! The error report of a refused import file.
//!
//! This module owns [`ImportReport`] and [`RowError`], the shape the hub's
//! API returns (as JSON, with 422) when a file is refused, and the list of
//! error [`code`]s. It never decides whether a value is valid; the readers
//! and the per-format modules push errors here.

use serde::{Deserialize, Serialize};

/// Stable, machine-readable error codes of [`RowError::code`].
///
/// Hierarchy errors reuse the codes of
/// [`HierarchyError::code`](crate::cmms::HierarchyError::code)
/// (`unknown_parent`, `parent_in_other_site`, `hierarchy_cycle`,
/// `hierarchy_too_deep`) and the reserved-stock check reuses
/// `count_below_reserved` of [`StockError`](crate::cmms::StockError).
pub mod code {
    /// The file has no header row.
    pub const MISSING_HEADER: &str = "missing_header";
    /// Columns of the format are absent from the header (one error per file).
    pub const MISSING_COLUMNS: &str = "missing_columns";
    /// A header names a column the format does not have.
    pub const UNKNOWN_COLUMN: &str = "unknown_column";
    /// Two header cells name the same column.
    pub const DUPLICATE_COLUMN: &str = "duplicate_column";
    /// A value sits in a column whose header cell is empty, or past the
    /// last column of the header.
    pub const UNNAMED_COLUMN: &str = "unnamed_column";
    /// A row has fewer fields than the header.
    pub const MISSING_FIELDS: &str = "missing_fields";
    /// More data rows than the configured maximum.
    pub const TOO_MANY_ROWS: &str = "too_many_rows";
    /// A field is not valid UTF-8.
    pub const INVALID_UTF8: &str = "invalid_utf8";
    /// The CSV reader gave up on the file.
    pub const MALFORMED_CSV: &str = "malformed_csv";
    /// A required field is empty.
    pub const REQUIRED: &str = "required";
    /// A field is longer than its column allows.
    pub const TOO_LONG: &str = "too_long";
    /// An identifier with characters it may not contain.
    pub const INVALID_ID: &str = "invalid_id";
    /// A value outside the column's list of allowed values.
    pub const INVALID_CHOICE: &str = "invalid_choice";
    pub const INVALID_DATE: &str = "invalid_date";
    /// Not a whole number in range.
    pub const INVALID_NUMBER: &str = "invalid_number";
    /// Not an amount with at most two decimals, or negative.
    pub const INVALID_AMOUNT: &str = "invalid_amount";
    pub const INVALID_TIMEZONE: &str = "invalid_timezone";
    /// Not a `site/device/point` name (the code of
    /// [`AssetError::BadPoint`](crate::cmms::AssetError::BadPoint)).
    pub const BAD_POINT_NAME: &str = "bad_point_name";
    /// The same record appears twice in the file.
    pub const DUPLICATE: &str = "duplicate";
    /// Create-only import of a record that already exists.
    pub const ALREADY_EXISTS: &str = "already_exists";
    /// A site that the hub does not know.
    pub const UNKNOWN_SITE: &str = "unknown_site";
    /// A point link to an asset that does not exist.
    pub const UNKNOWN_ASSET: &str = "unknown_asset";
    /// A point of another site than its asset's (the code of
    /// [`AssetError::PointAtOtherSite`](crate::cmms::AssetError::PointAtOtherSite)).
    pub const POINT_AT_OTHER_SITE: &str = "point_at_other_site";
}

/// One problem, located by line and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// 1-based line of the file where the record starts; the header is
    /// line 1 (unless blank lines precede it). File-level errors (missing
    /// columns) point at the header.
    pub row: usize,
    /// The column, by its name in the format (`installed_on`), or as
    /// written in the header for unknown columns; `None` for errors about
    /// the whole row or file.
    pub column: Option<String>,
    /// One of [`code`].
    pub code: String,
    /// A sentence for the user, quoting the offending value.
    pub message: String,
}

/// The outcome of checking an import file: every problem found.
///
/// Import is all-or-nothing: a file with any error yields no records.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImportReport {
    /// Data rows read (blank lines and the header excluded).
    pub rows: usize,
    /// Errors in file order (by row, then in column order), at most
    /// [`ImportOptions::max_errors`](super::ImportOptions::max_errors).
    pub errors: Vec<RowError>,
    /// Errors found beyond `errors` and not listed.
    pub errors_omitted: usize,
}

impl ImportReport {
    /// No errors: the file is accepted.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty() && self.errors_omitted == 0
    }

    /// Whether any listed error has this code.
    pub fn has(&self, code: &str) -> bool {
        self.errors.iter().any(|e| e.code == code)
    }
}

/// Collects errors while a file is checked.
#[derive(Debug, Default)]
pub(super) struct Errors {
    list: Vec<RowError>,
}

impl Errors {
    pub(super) fn push(
        &mut self,
        row: usize,
        column: Option<&str>,
        code: &str,
        message: impl Into<String>,
    ) {
        self.list.push(RowError {
            row,
            column: column.map(str::to_owned),
            code: code.to_owned(),
            message: message.into(),
        });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether `row` already has an error with `code`.
    pub(super) fn has(&self, row: usize, code: &str) -> bool {
        self.list.iter().any(|e| e.row == row && e.code == code)
    }

    /// The report: errors sorted by row (stable, so errors of one row keep
    /// the order they were found in: columns left to right, then cross-row
    /// rules), cut at `max_errors`.
    pub(super) fn into_report(mut self, rows: usize, max_errors: usize) -> ImportReport {
        self.list.sort_by_key(|e| e.row);
        let omitted = self.list.len().saturating_sub(max_errors);
        self.list.truncate(max_errors);
        ImportReport {
            rows,
            errors: self.list,
            errors_omitted: omitted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_is_sorted_by_row_and_cut() {
        let mut errors = Errors::default();
        errors.push(5, Some("name"), code::REQUIRED, "name is required");
        errors.push(2, None, code::DUPLICATE, "dup");
        errors.push(5, Some("kind"), code::INVALID_CHOICE, "bad");
        assert!(errors.has(5, code::REQUIRED));
        assert!(!errors.has(2, code::REQUIRED));
        let report = errors.into_report(9, 2);
        assert_eq!(report.rows, 9);
        assert_eq!(report.errors_omitted, 1);
        let rows: Vec<_> = report
            .errors
            .iter()
            .map(|e| (e.row, e.code.as_str()))
            .collect();
        assert_eq!(rows, [(2, "duplicate"), (5, "required")]);
        assert!(!report.is_ok());
        assert!(report.has("required"));

        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["errors"][1]["column"], "name");
        assert_eq!(json["errors"][0]["column"], serde_json::Value::Null);
        let back: ImportReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
        assert!(ImportReport::default().is_ok());
    }
}
