//! Point-map files, the part every protocol shares: CSV or TOML chosen by
//! the file name, CSV headers checked (any order, case-insensitive, a
//! byte-order mark allowed, unknown, repeated and missing required columns
//! refused), `#` comment lines and blank rows skipped, cells trimmed, and
//! errors that name the file, the line and the column. What a row means is
//! the protocol crate's.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a point map was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PointMapError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: header: {message}")]
    Header { path: PathBuf, message: String },
    #[error("{path}, line {line}: {message}")]
    Row {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{path}, line {line}, column `{column}`: {message}")]
    Cell {
        path: PathBuf,
        line: u64,
        column: &'static str,
        message: String,
    },
    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },
}

/// Whether `path` names a CSV file (by its extension, any case).
pub fn is_csv(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// Reads `path` and parses it with `csv` when it is a `.csv` file, with
/// `toml` otherwise.
pub fn load<T>(
    path: &Path,
    csv: impl FnOnce(std::fs::File, &Path) -> Result<T, PointMapError>,
    toml: impl FnOnce(&str, &Path) -> Result<T, PointMapError>,
) -> Result<T, PointMapError> {
    let io = |source| PointMapError::Io {
        path: path.to_owned(),
        source,
    };
    if is_csv(path) {
        csv(std::fs::File::open(path).map_err(io)?, path)
    } else {
        toml(&std::fs::read_to_string(path).map_err(io)?, path)
    }
}

/// Parses a TOML document; `path` is only used in error messages.
pub fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, PointMapError> {
    toml::from_str(text).map_err(|e| PointMapError::Toml {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// One CSV data row.
pub struct CsvRow<'a> {
    path: &'a Path,
    line: u64,
    record: &'a csv::StringRecord,
    headers: &'a csv::StringRecord,
    index: &'a [Option<usize>],
    columns: &'a [&'static str],
}

impl CsvRow<'_> {
    /// The row's line in the file (1-based).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The trimmed cell of column `k` (an index into the known columns);
    /// empty when the file has no such column or the row is short.
    pub fn cell(&self, k: usize) -> &str {
        self.index
            .get(k)
            .copied()
            .flatten()
            .and_then(|i| self.record.get(i))
            .unwrap_or("")
    }

    /// An error about the cell of column `k`.
    pub fn cell_err(&self, k: usize, message: impl Into<String>) -> PointMapError {
        PointMapError::Cell {
            path: self.path.to_owned(),
            line: self.line,
            column: self.columns.get(k).copied().unwrap_or("?"),
            message: message.into(),
        }
    }

    /// The cell of column `k`, refused when empty.
    pub fn required(&self, k: usize) -> Result<&str, PointMapError> {
        match self.cell(k) {
            "" => Err(self.cell_err(k, "is empty")),
            v => Ok(v),
        }
    }

    /// The whole row deserialized by column name (empty cells are `None`
    /// for `Option` fields).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, PointMapError> {
        self.record
            .deserialize(Some(self.headers))
            .map_err(|e| PointMapError::Row {
                path: self.path.to_owned(),
                line: self.line,
                message: deserialize_message(&e, self.headers),
            })
    }
}

/// The useful part of a csv deserialize error (column and reason).
fn deserialize_message(e: &csv::Error, headers: &csv::StringRecord) -> String {
    match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => match err.field() {
            Some(i) => format!(
                "column `{}`: {}",
                headers.get(i as usize).unwrap_or("?"),
                err.kind()
            ),
            None => err.kind().to_string(),
        },
        _ => e.to_string(),
    }
}

/// Reads a CSV point map with the header `columns` (of which `required`
/// must be present) and calls `each` for every data row.
pub fn read_csv<R: Read>(
    input: R,
    path: &Path,
    columns: &[&'static str],
    required: &[&str],
    mut each: impl FnMut(&CsvRow<'_>) -> Result<(), PointMapError>,
) -> Result<(), PointMapError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(input);
    let header_err = |message: String| PointMapError::Header {
        path: path.to_owned(),
        message,
    };
    // Headers are case-insensitive and may carry a byte-order mark.
    let headers: csv::StringRecord = reader
        .headers()
        .map_err(|e| header_err(e.to_string()))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    let mut index = vec![None; columns.len()];
    for (i, h) in headers.iter().enumerate() {
        let Some(k) = columns.iter().position(|c| *c == h) else {
            return Err(header_err(format!(
                "unknown column {h:?}; known columns: {}",
                columns.join(",")
            )));
        };
        if index.get_mut(k).and_then(|slot| slot.replace(i)).is_some() {
            return Err(header_err(format!("column {h:?} appears twice")));
        }
    }
    for req in required {
        let k = columns.iter().position(|c| c == req);
        if k.and_then(|k| index.get(k).copied().flatten()).is_none() {
            return Err(header_err(format!("required column {req:?} is missing")));
        }
    }
    for record in reader.records() {
        let record = record.map_err(|e| PointMapError::Row {
            path: path.to_owned(),
            line: e.position().map_or(0, |p| p.line()),
            message: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() > headers.len() {
            return Err(PointMapError::Row {
                path: path.to_owned(),
                line,
                message: format!(
                    "{} cells but the header has {} columns",
                    record.len(),
                    headers.len()
                ),
            });
        }
        each(&CsvRow {
            path,
            line,
            record: &record,
            headers: &headers,
            index: &index,
            columns,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const COLS: [&str; 3] = ["name", "value", "note"];

    fn rows(text: &str) -> Result<Vec<(u64, String, String)>, PointMapError> {
        let mut out = Vec::new();
        read_csv(text.as_bytes(), Path::new("m.csv"), &COLS, &["name"], |r| {
            out.push((r.line(), r.required(0)?.to_owned(), r.cell(1).to_owned()));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn headers_in_any_order_and_case_with_comments_and_blank_rows() {
        let got = rows("\u{feff}Value,NAME\n 1 , a \n# comment\n\n,\n2,b\n").unwrap();
        assert_eq!(
            got,
            [(2, "a".into(), "1".into()), (6, "b".into(), "2".into())]
        );
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = rows("name,colour\n").unwrap_err().to_string();
        assert!(e.contains("m.csv") && e.contains("colour"), "{e}");
        let e = rows("name,name\n").unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
        let e = rows("value\n1\n").unwrap_err().to_string();
        assert!(e.contains("\"name\"") && e.contains("missing"), "{e}");
        let e = rows("name,value\na,1\n,2\n").unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("`name`"), "{e}");
        let e = rows("name\na,1,2\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("3 cells"), "{e}");
    }

    #[test]
    fn rows_deserialize_by_column_name() {
        #[derive(serde::Deserialize)]
        struct R {
            name: String,
            value: Option<f64>,
        }
        let mut got = Vec::new();
        read_csv(
            "value,name\n,a\n2.5,b\n".as_bytes(),
            Path::new("m.csv"),
            &COLS,
            &[],
            |r| {
                let row: R = r.deserialize()?;
                got.push((row.name, row.value));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, [("a".into(), None), ("b".into(), Some(2.5))]);
        let e = read_csv(
            "value,name\nx,a\n".as_bytes(),
            Path::new("m.csv"),
            &COLS,
            &[],
            |r| r.deserialize::<R>().map(|_| ()),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 2") && e.contains("`value`"), "{e}");
    }

    #[test]
    fn files_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("m.CSV");
        std::fs::write(&csv, "x").unwrap();
        let toml = dir.path().join("m.toml");
        std::fs::write(&toml, "y").unwrap();
        let which = |p: &Path| {
            load(
                p,
                |_, _| Ok("csv"),
                |t, _| Ok(if t == "y" { "toml" } else { "?" }),
            )
        };
        assert_eq!(which(&csv).unwrap(), "csv");
        assert_eq!(which(&toml).unwrap(), "toml");
        let e = which(&dir.path().join("none.csv")).unwrap_err().to_string();
        assert!(e.contains("none.csv") && e.contains("cannot read"), "{e}");
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,300}") {
            let _ = rows(&text);
        }
    }
}
