//! The CSV layer under every format: header matching, records with their
//! line numbers, and the writer.
//!
//! This module owns the rules common to all import files (UTF-8 with an
//! optional byte-order mark, `,` delimiter, `"` quoting, blank lines
//! skipped, the header matched by name, the row limit) and never looks at
//! what a value means; the format modules do that, through [`super::cells`].

use std::collections::BTreeSet;

use ::csv::{ByteRecord, ReaderBuilder};

use super::report::{code, Errors};
use super::ImportOptions;

/// One data record, its values in the order of the format's columns,
/// each trimmed.
#[derive(Debug)]
pub(super) struct Row {
    /// 1-based line where the record starts.
    pub line: usize,
    pub values: Vec<String>,
    /// An error was already reported for this row by the reader.
    pub failed: bool,
}

/// A file after the CSV layer.
#[derive(Debug)]
pub(super) struct Table {
    /// Data records read (blank lines and header excluded).
    pub count: usize,
    /// The rows to check; empty when `usable` is false.
    pub rows: Vec<Row>,
    /// False when the file cannot be checked row by row (no header,
    /// missing columns, too many rows, unreadable).
    pub usable: bool,
    /// Line of the header row.
    pub header_line: usize,
}

/// Where the values of one header position go.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Column(usize),
    /// Unknown or repeated column: already reported, values ignored.
    Ignored,
    /// Empty header cell: values must be blank.
    Unnamed,
}

/// A header cell as compared with column names: trimmed, lower case, runs
/// of spaces and `-` as one `_` (`Installed On` is `installed_on`).
pub(super) fn normalise_header(cell: &str) -> String {
    let mut out = String::with_capacity(cell.len());
    let mut gap = false;
    for c in cell.trim().chars() {
        if c == ' ' || c == '-' || c == '_' {
            gap = true;
            continue;
        }
        if gap && !out.is_empty() {
            out.push('_');
        }
        gap = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// Counts lines up to a byte offset, moving forward only. A line ends at
/// `\n`, `\r\n` or a lone `\r`, as the CSV reader's record terminator does.
struct Lines<'a> {
    input: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    fn new(input: &'a [u8]) -> Self {
        Lines {
            input,
            pos: 0,
            line: 1,
        }
    }

    /// Line of the first byte at or after `offset` that is not a line
    /// break: where the next record starts (the reader skips blank lines).
    fn record_start(&mut self, offset: usize) -> usize {
        let mut start = offset.min(self.input.len());
        while start < self.input.len() && matches!(self.input[start], b'\r' | b'\n') {
            start += 1;
        }
        while self.pos < start {
            match self.input[self.pos] {
                b'\n' => self.line += 1,
                b'\r' if self.input.get(self.pos + 1) != Some(&b'\n') => self.line += 1,
                _ => {}
            }
            self.pos += 1;
        }
        self.line
    }
}

fn is_blank(record: &ByteRecord) -> bool {
    record
        .iter()
        .all(|f| f.iter().all(|b| b.is_ascii_whitespace()))
}

/// A field as text, trimmed; invalid UTF-8 is reported and replaced.
fn field_text(
    raw: &[u8],
    line: usize,
    column: Option<&str>,
    errors: &mut Errors,
) -> (String, bool) {
    match std::str::from_utf8(raw) {
        Ok(s) => (s.trim().to_owned(), true),
        Err(e) => {
            errors.push(
                line,
                column,
                code::INVALID_UTF8,
                format!(
                    "not valid UTF-8 after byte {}; save the file as UTF-8",
                    e.valid_up_to()
                ),
            );
            (String::from_utf8_lossy(raw).trim().to_owned(), false)
        }
    }
}

/// Reads a whole file: the header, then every data record. Errors of the
/// CSV layer go to `errors`; the rows are returned for checking unless the
/// file is unusable.
pub(super) fn read(
    input: &[u8],
    file: &str,
    columns: &[&'static str],
    options: &ImportOptions,
    errors: &mut Errors,
) -> Table {
    let mut table = Table {
        count: 0,
        rows: Vec::new(),
        usable: true,
        header_line: 1,
    };
    if input.starts_with(b"\xff\xfe") || input.starts_with(b"\xfe\xff") {
        errors.push(
            1,
            None,
            code::INVALID_UTF8,
            "the file is UTF-16 encoded; save it as \"CSV UTF-8\"",
        );
        table.usable = false;
        return table;
    }
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut lines = Lines::new(input);
    let mut record = ByteRecord::new();
    let mut slots: Option<Vec<Slot>> = None;

    loop {
        let offset = usize::try_from(reader.position().byte()).unwrap_or(usize::MAX);
        let line = lines.record_start(offset);
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                // With a byte slice as input and flexible records the reader
                // has no failure left; kept so that one would be reported.
                errors.push(
                    line,
                    None,
                    code::MALFORMED_CSV,
                    format!("the file is not readable as CSV: {e}"),
                );
                table.usable = false;
                break;
            }
        }
        if is_blank(&record) {
            continue;
        }
        let Some(slots) = &slots else {
            table.header_line = line;
            match header_slots(&record, line, file, columns, errors) {
                Some(s) => slots = Some(s),
                None => {
                    table.usable = false;
                    // Keep counting rows for the report.
                    slots = Some(Vec::new());
                }
            }
            continue;
        };
        table.count += 1;
        if table.count > options.max_rows {
            errors.push(
                line,
                None,
                code::TOO_MANY_ROWS,
                format!(
                    "the file has more than {} data rows; split it into smaller files",
                    options.max_rows
                ),
            );
            table.usable = false;
            break;
        }
        if table.usable {
            if let Some(row) = data_row(&record, line, slots, columns, errors) {
                table.rows.push(row);
            }
        }
    }
    if slots.is_none() {
        errors.push(
            1,
            None,
            code::MISSING_HEADER,
            format!(
                "the file is empty; its first line must be the header: {}",
                columns.join(",")
            ),
        );
        table.usable = false;
    }
    if !table.usable {
        table.rows.clear();
    }
    table
}

/// Matches the header cells to the format's columns. `None` when columns
/// are missing (reported once, listing them all).
fn header_slots(
    record: &ByteRecord,
    line: usize,
    file: &str,
    columns: &[&'static str],
    errors: &mut Errors,
) -> Option<Vec<Slot>> {
    let mut slots = Vec::with_capacity(record.len());
    let mut found = vec![false; columns.len()];
    let mut readable = true;
    for raw in record.iter() {
        let (cell, ok) = field_text(raw, line, None, errors);
        readable &= ok;
        let name = normalise_header(&cell);
        if name.is_empty() {
            slots.push(Slot::Unnamed);
            continue;
        }
        match columns.iter().position(|c| *c == name) {
            Some(i) if found[i] => {
                errors.push(
                    line,
                    Some(columns[i]),
                    code::DUPLICATE_COLUMN,
                    format!("column {} appears more than once in the header", columns[i]),
                );
                slots.push(Slot::Ignored);
            }
            Some(i) => {
                found[i] = true;
                slots.push(Slot::Column(i));
            }
            None => {
                errors.push(
                    line,
                    Some(&cell),
                    code::UNKNOWN_COLUMN,
                    format!(
                        "unknown column {cell:?}; the columns of {file} are: {}",
                        columns.join(", ")
                    ),
                );
                slots.push(Slot::Ignored);
            }
        }
    }
    let missing: Vec<&str> = columns
        .iter()
        .zip(&found)
        .filter(|(_, f)| !**f)
        .map(|(c, _)| *c)
        .collect();
    if !missing.is_empty() {
        errors.push(
            line,
            None,
            code::MISSING_COLUMNS,
            format!(
                "the header lacks the column{} {} (every column of {file} must be present, \
                 even if its values are empty; the columns are: {})",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", "),
                columns.join(", ")
            ),
        );
        return None;
    }
    readable.then_some(slots)
}

fn data_row(
    record: &ByteRecord,
    line: usize,
    slots: &[Slot],
    columns: &[&'static str],
    errors: &mut Errors,
) -> Option<Row> {
    // Trailing header cells without a name need no field.
    let needed = slots
        .iter()
        .rposition(|s| !matches!(s, Slot::Unnamed))
        .map_or(0, |i| i + 1);
    if record.len() < needed {
        errors.push(
            line,
            None,
            code::MISSING_FIELDS,
            format!(
                "the row has {} fields but the header has {needed} columns",
                record.len(),
            ),
        );
        return None;
    }
    let mut values = vec![String::new(); columns.len()];
    let mut failed = false;
    for (i, raw) in record.iter().enumerate() {
        match slots.get(i).copied().unwrap_or(Slot::Unnamed) {
            Slot::Column(c) => {
                let (text, ok) = field_text(raw, line, Some(columns[c]), errors);
                failed |= !ok;
                values[c] = text;
            }
            Slot::Ignored => {}
            Slot::Unnamed => {
                if !raw.iter().all(u8::is_ascii_whitespace) {
                    errors.push(
                        line,
                        None,
                        code::UNNAMED_COLUMN,
                        format!(
                            "field {} has a value but no column name in the header",
                            i + 1
                        ),
                    );
                    failed = true;
                }
            }
        }
    }
    Some(Row {
        line,
        values,
        failed,
    })
}

/// The distinct non-empty values of one column of a file (`"site"`,
/// `"id"`, `"asset"`), matched as headers are; for loading the stored
/// records an import needs before checking it. Lenient: values that are
/// not UTF-8 are left out, and a file without that column gives an empty
/// set (the check reports what is wrong with the file).
pub fn column_values(input: &[u8], column: &str) -> BTreeSet<String> {
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let wanted = normalise_header(column);
    let mut record = ByteRecord::new();
    let mut index: Option<usize> = None;
    let mut values = BTreeSet::new();
    while let Ok(true) = reader.read_byte_record(&mut record) {
        if is_blank(&record) {
            continue;
        }
        match index {
            None => {
                let found = record.iter().position(|cell| {
                    std::str::from_utf8(cell).is_ok_and(|c| normalise_header(c) == wanted)
                });
                match found {
                    Some(i) => index = Some(i),
                    None => break,
                }
            }
            Some(i) => {
                if let Some(v) = record.get(i).and_then(|f| std::str::from_utf8(f).ok()) {
                    let v = v.trim();
                    if !v.is_empty() && !values.contains(v) {
                        values.insert(v.to_owned());
                    }
                }
            }
        }
    }
    values
}

/// Appends one CSV record: fields quoted only when they need it (a `,`,
/// `"`, line break, or leading/trailing space), `"` doubled, `\n` ending.
pub(super) fn write_record<'a>(out: &mut String, fields: impl IntoIterator<Item = &'a str>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let needs_quotes = field.contains([',', '"', '\r', '\n'])
            || field.starts_with(char::is_whitespace)
            || field.ends_with(char::is_whitespace);
        if needs_quotes {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: &[&str] = &["id", "name", "installed_on"];

    fn read_str(input: &[u8], max_rows: usize) -> (Table, Vec<crate::cmms::csv::RowError>) {
        let mut errors = Errors::default();
        let options = ImportOptions {
            max_rows,
            ..ImportOptions::default()
        };
        let table = read(input, "test.csv", COLUMNS, &options, &mut errors);
        (table, errors.into_report(0, usize::MAX).errors)
    }

    #[test]
    fn headers_are_normalised() {
        assert_eq!(normalise_header("  Installed On "), "installed_on");
        assert_eq!(normalise_header("installed--on"), "installed_on");
        assert_eq!(normalise_header("ID"), "id");
        assert_eq!(normalise_header(" _x_ "), "x");
    }

    #[test]
    fn line_numbers_follow_blank_lines_and_quoted_breaks() {
        let input = b"\xef\xbb\xbfName,ID,installed on\r\n\
            n1,a,\r\n\
            \r\n\
            ,,\n\
            \"two\nlines\",b,\n\
            \n\
            n3,c,\rn4,d,";
        let (table, errors) = read_str(input, 10);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(table.usable);
        assert_eq!(table.count, 4, "the all-blank row ,, is skipped");
        let got: Vec<(usize, &str, &str)> = table
            .rows
            .iter()
            .map(|r| (r.line, r.values[0].as_str(), r.values[1].as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (2, "a", "n1"),
                (5, "b", "two\nlines"),
                (8, "c", "n3"),
                (9, "d", "n4")
            ]
        );
    }

    #[test]
    fn row_shape_errors() {
        let input = b"id,name,installed_on,\na,b\nc,d,e,\nf,g,h,oops\ni,j,k,l,m\n";
        let (table, errors) = read_str(input, 10);
        let got: Vec<(usize, &str)> = errors.iter().map(|e| (e.row, e.code.as_str())).collect();
        assert_eq!(
            got,
            [
                (2, code::MISSING_FIELDS),
                (4, code::UNNAMED_COLUMN),
                (5, code::UNNAMED_COLUMN),
                (5, code::UNNAMED_COLUMN)
            ]
        );
        assert_eq!(
            errors[0].message,
            "the row has 2 fields but the header has 3 columns"
        );
        assert_eq!(
            errors[1].message,
            "field 4 has a value but no column name in the header"
        );
        assert_eq!(table.rows.len(), 3);
        assert!(!table.rows[0].failed);
        assert!(table.rows[1].failed);
    }

    #[test]
    fn header_errors() {
        let (table, errors) = read_str(b"", 10);
        assert!(!table.usable);
        assert_eq!(errors[0].code, code::MISSING_HEADER);

        let (table, errors) = read_str(b"\n\n id \n1\n2\n", 10);
        assert!(!table.usable);
        assert_eq!(table.count, 2);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].row, errors[0].code.as_str()),
            (3, "missing_columns")
        );
        assert!(
            errors[0]
                .message
                .starts_with("the header lacks the columns name, installed_on"),
            "{}",
            errors[0].message
        );

        let (table, errors) = read_str(b"id,name,installed_on,Instaled_On,name\na,b,,x,y\n", 10);
        assert!(table.usable, "unknown columns do not stop row checks");
        let got: Vec<(Option<&str>, &str)> = errors
            .iter()
            .map(|e| (e.column.as_deref(), e.code.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("Instaled_On"), code::UNKNOWN_COLUMN),
                (Some("name"), code::DUPLICATE_COLUMN)
            ]
        );
        assert_eq!(table.rows[0].values, ["a", "b", ""]);
    }

    #[test]
    fn utf16_files_are_refused_with_a_hint() {
        let (table, errors) = read_str(b"\xff\xfei\0d\0", 10);
        assert!(!table.usable);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].message,
            "the file is UTF-16 encoded; save it as \"CSV UTF-8\""
        );
    }

    #[test]
    fn invalid_utf8_is_reported_in_its_column() {
        let (table, errors) = read_str(b"id,name,installed_on\na,b\xff\xfe,\n", 10);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code, code::INVALID_UTF8);
        assert_eq!(errors[0].column.as_deref(), Some("name"));
        assert_eq!(errors[0].row, 2);
        assert!(table.rows[0].failed);
    }

    #[test]
    fn row_limit() {
        let (table, errors) = read_str(b"id,name,installed_on\n1,a,\n2,b,\n\n3,c,\n4,d,\n", 2);
        assert!(!table.usable);
        assert!(table.rows.is_empty());
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].row, errors[0].code.as_str()),
            (5, "too_many_rows")
        );
        assert_eq!(
            errors[0].message,
            "the file has more than 2 data rows; split it into smaller files"
        );
    }

    #[test]
    fn column_values_for_loading_what_an_import_needs() {
        let input = b"\xef\xbb\xbfID, Site \n\na,s1\nb, s2 \nc,s1\nd,\n,,\n";
        let sites: Vec<String> = column_values(input, "site").into_iter().collect();
        assert_eq!(sites, ["s1", "s2"]);
        assert_eq!(column_values(input, "id").len(), 4);
        assert!(column_values(input, "parent").is_empty());
        assert!(column_values(b"", "site").is_empty());
    }

    #[test]
    fn writer_quotes_only_when_needed() {
        let mut out = String::new();
        write_record(
            &mut out,
            ["a", "b,c", "say \"hi\"", "two\nlines", " pad", ""],
        );
        assert_eq!(
            out,
            "a,\"b,c\",\"say \"\"hi\"\"\",\"two\nlines\",\" pad\",\n"
        );
    }
}
