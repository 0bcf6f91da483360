//! Field-level checks shared by the formats: required values, identifiers,
//! site names, dates, whole numbers, amounts, choices, and text lengths.
//!
//! This module owns how a single cell is turned into a typed value and the
//! wording of the error when it cannot be; it never looks at other rows.
//! Each check reports at most one error per cell, in the cell's row and
//! column, and returns a placeholder on failure: the row is then dropped
//! (see [`Cells::ok`]), so placeholders never reach a record.

use time::macros::format_description;
use time::Date;

use super::report::{code, Errors};
use super::table::Row;
use crate::cmms::Money;

/// Longest identifier (asset, part), in characters.
pub const MAX_ID: usize = 128;
/// Longest free-text field (manufacturer, model, serial, location), in
/// characters.
pub const MAX_TEXT: usize = 500;

/// The value as shown in an error message: quoted, and cut when long.
pub(super) fn shown(value: &str) -> String {
    const MAX: usize = 60;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        let cut: String = value.chars().take(MAX).collect();
        format!("{cut:?}...")
    }
}

/// The checks of one row.
pub(super) struct Cells<'a> {
    row: &'a Row,
    columns: &'static [&'static str],
    errors: &'a mut Errors,
    ok: bool,
}

impl<'a> Cells<'a> {
    pub(super) fn new(
        row: &'a Row,
        columns: &'static [&'static str],
        errors: &'a mut Errors,
    ) -> Self {
        Cells {
            row,
            columns,
            errors,
            ok: !row.failed,
        }
    }

    /// No error in this row so far (including the reader's).
    pub(super) fn ok(&self) -> bool {
        self.ok
    }

    pub(super) fn line(&self) -> usize {
        self.row.line
    }

    /// Reports an error in column `col` of this row.
    pub(super) fn fail(&mut self, col: usize, code: &str, message: impl Into<String>) {
        self.errors
            .push(self.row.line, Some(self.columns[col]), code, message);
        self.ok = false;
    }

    /// The trimmed value, possibly empty.
    pub(super) fn raw(&self, col: usize) -> &'a str {
        let row: &'a Row = self.row;
        row.values.get(col).map_or("", String::as_str)
    }

    fn length(&mut self, col: usize, value: &str, max: usize) -> bool {
        if value.chars().count() > max {
            self.fail(
                col,
                code::TOO_LONG,
                format!("{} is longer than {max} characters", self.columns[col]),
            );
            return false;
        }
        true
    }

    /// A value that must be present.
    pub(super) fn required(&mut self, col: usize) -> Option<&'a str> {
        let value = self.raw(col);
        if value.is_empty() {
            self.fail(
                col,
                code::REQUIRED,
                format!("{} is required", self.columns[col]),
            );
            return None;
        }
        Some(value)
    }

    /// Required free text of at most `max` characters.
    pub(super) fn text(&mut self, col: usize, max: usize) -> String {
        match self.required(col) {
            Some(v) if self.length(col, v, max) => v.to_owned(),
            _ => String::new(),
        }
    }

    /// Optional free text of at most [`MAX_TEXT`] characters; empty is `None`.
    pub(super) fn optional_text(&mut self, col: usize) -> Option<String> {
        let value = self.raw(col);
        (!value.is_empty() && self.length(col, value, MAX_TEXT)).then(|| value.to_owned())
    }

    fn id_value(&mut self, col: usize, value: &str) -> String {
        if !self.length(col, value, MAX_ID) {
            return String::new();
        }
        if let Some(c) = value.chars().find(|c| c.is_control()) {
            self.fail(
                col,
                code::INVALID_ID,
                format!(
                    "{} {} contains the control character {c:?}",
                    self.columns[col],
                    shown(value)
                ),
            );
            return String::new();
        }
        value.to_owned()
    }

    /// A required identifier: at most [`MAX_ID`] characters, no control
    /// characters.
    pub(super) fn id(&mut self, col: usize) -> String {
        match self.required(col) {
            Some(v) => self.id_value(col, v),
            None => String::new(),
        }
    }

    /// An optional identifier; empty is `None`.
    pub(super) fn optional_id(&mut self, col: usize) -> Option<String> {
        let value = self.raw(col);
        (!value.is_empty()).then(|| self.id_value(col, value))
    }

    /// A required site name ([`crate::validate_name`]).
    pub(super) fn site(&mut self, col: usize) -> String {
        let Some(value) = self.required(col) else {
            return String::new();
        };
        match crate::validate_name(value) {
            Ok(()) => value.to_owned(),
            Err(e) => {
                self.fail(
                    col,
                    code::INVALID_ID,
                    format!("site {} is not a valid site name: {e}", shown(value)),
                );
                String::new()
            }
        }
    }

    /// An optional `YYYY-MM-DD` date.
    pub(super) fn date(&mut self, col: usize) -> Option<Date> {
        let value = self.raw(col);
        if value.is_empty() {
            return None;
        }
        let shape_ok = value.len() == 10
            && value.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        let parsed = shape_ok
            .then(|| Date::parse(value, format_description!("[year]-[month]-[day]")).ok())
            .flatten();
        if parsed.is_none() {
            self.fail(
                col,
                code::INVALID_DATE,
                format!(
                    "{} {} is not a date as YYYY-MM-DD (for example 2021-06-30)",
                    self.columns[col],
                    shown(value)
                ),
            );
        }
        parsed
    }

    /// A whole number from 0 to 4294967295; `required` false: empty is `None`.
    pub(super) fn count(&mut self, col: usize, required: bool) -> Option<u32> {
        let value = if required {
            self.required(col)?
        } else {
            let v = self.raw(col);
            if v.is_empty() {
                return None;
            }
            v
        };
        let parsed = value
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| value.parse::<u32>().ok())
            .flatten();
        if parsed.is_none() {
            self.fail(
                col,
                code::INVALID_NUMBER,
                format!(
                    "{} {} is not a whole number from 0 to {}",
                    self.columns[col],
                    shown(value),
                    u32::MAX
                ),
            );
        }
        parsed
    }

    /// A required amount: digits with an optional `.` and one or two
    /// decimals (`12`, `12.3`, `12.34`); no sign, no thousands separator.
    pub(super) fn money(&mut self, col: usize) -> Money {
        let Some(value) = self.required(col) else {
            return Money::ZERO;
        };
        match parse_money(value) {
            Ok(m) => m,
            Err(why) => {
                self.fail(
                    col,
                    code::INVALID_AMOUNT,
                    format!("{} {} {why}", self.columns[col], shown(value)),
                );
                Money::ZERO
            }
        }
    }

    /// A required choice among `choices` (matched case-insensitively);
    /// the error lists the allowed values.
    pub(super) fn choice<T: Copy>(&mut self, col: usize, choices: &[(&str, T)]) -> Option<T> {
        let value = self.required(col)?;
        let found = choices
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(value))
            .map(|(_, v)| *v);
        if found.is_none() {
            let allowed: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            self.fail(
                col,
                code::INVALID_CHOICE,
                format!(
                    "{} {} is not one of: {}",
                    self.columns[col],
                    shown(value),
                    allowed.join(", ")
                ),
            );
        }
        found
    }
}

/// Parses an amount in major units with at most two decimals into minor
/// units; the error completes the sentence "<column> <value> ...".
pub(super) fn parse_money(value: &str) -> Result<Money, &'static str> {
    if value.starts_with('-') {
        return Err("is negative; amounts must be 0 or more");
    }
    let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !digits(whole)
        || !digits(frac)
        || (value.contains('.') && frac.is_empty())
    {
        return Err("is not an amount like 12.34 (digits, optional '.' and up to two decimals, no sign or thousands separator)");
    }
    if frac.len() > 2 {
        return Err("has more than two decimals");
    }
    let too_large = "is too large";
    let whole: i64 = whole.parse().map_err(|_| too_large)?;
    let cents: i64 = format!("{frac:0<2}").parse().map_err(|_| too_large)?;
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(cents))
        .map(Money::from_minor)
        .ok_or(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        let ok = |s: &str| parse_money(s).map(Money::minor);
        assert_eq!(ok("12.34"), Ok(1234));
        assert_eq!(ok("12.3"), Ok(1230));
        assert_eq!(ok("12"), Ok(1200));
        assert_eq!(ok("0.05"), Ok(5));
        assert_eq!(ok("007.00"), Ok(700));
        assert_eq!(ok("92233720368547758.07"), Ok(i64::MAX));
        assert_eq!(ok("92233720368547758.08"), Err("is too large"));
        assert_eq!(ok("99999999999999999999"), Err("is too large"));
        assert_eq!(ok("12.345"), Err("has more than two decimals"));
        assert_eq!(ok("-1.00"), Err("is negative; amounts must be 0 or more"));
        for bad in [
            "", ".5", "5.", "1,234.00", "+1", "1e3", "12.3a", "1.2.3", " 1",
        ] {
            assert!(ok(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shown_values_are_quoted_and_cut() {
        assert_eq!(shown("a\"b"), "\"a\\\"b\"");
        let long = "x".repeat(100);
        assert_eq!(shown(&long), format!("\"{}\"...", "x".repeat(60)));
    }
}
