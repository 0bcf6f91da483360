//! CSV point lists, the way SCADA point maps are kept.
//!
//! Header: `name,table,address,data_type,word_order,byte_order,scale,offset`
//! and optionally `writable`, in any order; `name`, `table` and `address`
//! are required, the others may be missing or left empty and take the
//! defaults of [`PointConfig`].
//! Lines starting with `#` are comments; cells are trimmed. Errors name the
//! file, the line and the column. Parsing never panics on any input.

use std::io::Read;
use std::path::Path;

use dcmms_protocols_core::{point_file, ByteOrder, DataType, WordOrder};

use crate::config::{PointConfig, Table};

/// The columns a point list may have, in the canonical order.
pub const CSV_COLUMNS: [&str; 9] = [
    "name",
    "table",
    "address",
    "data_type",
    "word_order",
    "byte_order",
    "scale",
    "offset",
    "writable",
];
const REQUIRED: [&str; 3] = ["name", "table", "address"];

/// Why a CSV point list was refused.
pub use dcmms_protocols_core::point_file::PointMapError as PointsCsvError;

/// Reads a point list from a file.
pub fn load_points_csv(path: &Path) -> Result<Vec<PointConfig>, PointsCsvError> {
    let file = std::fs::File::open(path).map_err(|source| PointsCsvError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_points_csv(file, path)
}

/// Parses a point list; `path` is only used in error messages.
pub fn parse_points_csv<R: Read>(
    input: R,
    path: &Path,
) -> Result<Vec<PointConfig>, PointsCsvError> {
    let mut points = Vec::new();
    point_file::read_csv(input, path, &CSV_COLUMNS, &REQUIRED, |r| {
        let cell = |k: usize| r.cell(k);
        let cell_err = |k: usize, message: String| r.cell_err(k, message);

        let name = cell(0);
        if name.is_empty() {
            return Err(cell_err(0, "is empty".into()));
        }
        let table: Table = cell(1).parse().map_err(|e| cell_err(1, format!("{e}")))?;
        let address = parse_address(cell(2)).map_err(|m| cell_err(2, m))?;
        let mut p = PointConfig::new(name, table, address);
        if !cell(3).is_empty() {
            p.data_type = Some(
                cell(3)
                    .parse::<DataType>()
                    .map_err(|e| cell_err(3, e.to_string()))?,
            );
        }
        if !cell(4).is_empty() {
            p.word_order = cell(4)
                .parse::<WordOrder>()
                .map_err(|e| cell_err(4, e.to_string()))?;
        }
        if !cell(5).is_empty() {
            p.byte_order = cell(5)
                .parse::<ByteOrder>()
                .map_err(|e| cell_err(5, e.to_string()))?;
        }
        if !cell(6).is_empty() {
            p.scale = parse_number(cell(6)).map_err(|m| cell_err(6, m))?;
        }
        if !cell(7).is_empty() {
            p.offset = parse_number(cell(7)).map_err(|m| cell_err(7, m))?;
        }
        if !cell(8).is_empty() {
            p.writable = parse_bool(cell(8)).map_err(|m| cell_err(8, m))?;
        }
        points.push(p);
        Ok(())
    })?;
    Ok(points)
}

/// A 0-based address, decimal or `0x` hexadecimal.
fn parse_address(s: &str) -> Result<u16, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => s.parse::<u16>(),
    };
    parsed.map_err(|_| format!("{s:?} is not an address in 0..=65535"))
}

fn parse_number(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a finite number")),
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{s:?} is not true or false")),
    }
}

/// Writes points as CSV with every column, in the canonical order. The
/// `writable` column is written only when some point is writable, so
/// read-only maps keep the eight-column form.
pub fn write_points_csv(points: &[PointConfig]) -> String {
    let any_writable = points.iter().any(|p| p.writable);
    let columns = if any_writable {
        &CSV_COLUMNS[..]
    } else {
        &CSV_COLUMNS[..8]
    };
    let mut out = columns.join(",");
    out.push('\n');
    for p in points {
        let data_type = p.data_type.map_or("", DataType::as_str);
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}",
            p.name, p.table, p.address, data_type, p.word_order, p.byte_order, p.scale, p.offset
        ));
        if any_writable {
            out.push_str(if p.writable { ",true" } else { ",false" });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Vec<PointConfig>, PointsCsvError> {
        parse_points_csv(text.as_bytes(), Path::new("points.csv"))
    }

    #[test]
    fn optional_columns_default() {
        let pts = parse(
            "# inverter map\n\
             name, table, address, scale\n\
             ac_power, input, 2, \n\
             voltage, input, 0x4, 0.1\n\
             \n\
             run, coil, 0,\n",
        )
        .unwrap();
        assert_eq!(pts.len(), 3);
        assert_eq!(pts[0], PointConfig::new("ac_power", Table::Input, 2));
        assert_eq!(pts[1].address, 4);
        assert_eq!(pts[1].scale, 0.1);
        assert_eq!(pts[2].table, Table::Coil);
    }

    #[test]
    fn all_columns_in_any_order() {
        let pts = parse(
            "offset,scale,byte_order,word_order,data_type,address,table,name\n\
             -40,0.01,little_endian,little,i32,100,holding,temp\n",
        )
        .unwrap();
        let p = &pts[0];
        assert_eq!(p.name, "temp");
        assert_eq!(p.data_type, Some(DataType::I32));
        assert_eq!(p.word_order, WordOrder::LittleEndian);
        assert_eq!(p.byte_order, ByteOrder::LittleEndian);
        assert_eq!((p.scale, p.offset), (0.01, -40.0));
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse("name,table,address\nok,holding,1\nbad,holding,70000\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"points.csv, line 3, column `address`: "70000" is not an address in 0..=65535"#
        );
        let e = parse("name,table,address,data_type\nx,holding,1,u17\n").unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with("points.csv, line 2, column `data_type`: unknown data type"),
            "{s}"
        );
        let e = parse("name,table,address\nx,registers,1\n").unwrap_err();
        assert!(e.to_string().contains("column `table`"), "{e}");
        let e = parse("name,table,address,scale\nx,holding,1,abc\n").unwrap_err();
        assert!(e.to_string().contains("column `scale`"), "{e}");
        let e = parse("name,table,address,scale\nx,holding,1,inf\n").unwrap_err();
        assert!(e.to_string().contains("column `scale`"), "{e}");
        let e = parse("name,table,address\n,holding,1\n").unwrap_err();
        assert!(e.to_string().contains("column `name`: is empty"), "{e}");
        let e = parse("name,table,address\nx,holding,1,extra\n").unwrap_err();
        assert!(
            e.to_string().contains("line 2") && e.to_string().contains("3 columns"),
            "{e}"
        );
    }

    #[test]
    fn header_errors() {
        let e = parse("name,table,addr\n").unwrap_err().to_string();
        assert!(e.contains("unknown column \"addr\""), "{e}");
        let e = parse("name,table\n").unwrap_err().to_string();
        assert!(e.contains("required column \"address\""), "{e}");
        let e = parse("name,table,address,name\n").unwrap_err().to_string();
        assert!(e.contains("appears twice"), "{e}");
        let e = load_points_csv(Path::new("/nonexistent/points.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/points.csv: cannot read"), "{e}");
    }

    #[test]
    fn writable_column() {
        let pts = parse(
            "name,table,address,writable\n\
             limit,holding,0,true\n\
             run,coil,0,Yes\n\
             ro,holding,1,\n\
             ro2,holding,2,0\n",
        )
        .unwrap();
        let w: Vec<bool> = pts.iter().map(|p| p.writable).collect();
        assert_eq!(w, vec![true, true, false, false]);
        let e = parse("name,table,address,writable\nx,holding,1,maybe\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"points.csv, line 2, column `writable`: "maybe" is not true or false"#
        );
        // Read-only maps keep the eight-column header.
        let text = write_points_csv(&[PointConfig::new("a", Table::Holding, 0)]);
        assert!(
            text.starts_with("name,table,address,data_type,word_order,byte_order,scale,offset\n")
        );
        let text = write_points_csv(&[
            PointConfig::new("a", Table::Holding, 0),
            PointConfig::new("b", Table::Coil, 0).writable(),
        ]);
        assert!(
            text.contains(",offset,writable\n") && text.ends_with(",true\n"),
            "{text}"
        );
    }

    #[test]
    fn short_rows_leave_defaults() {
        let pts = parse("name,table,address,data_type,scale\nx,holding,1\n").unwrap();
        assert_eq!(pts[0], PointConfig::new("x", Table::Holding, 1));
    }

    fn point() -> impl Strategy<Value = PointConfig> {
        (
            "[a-z][a-z0-9_]{0,10}",
            proptest::sample::select(Table::ALL.to_vec()),
            any::<u16>(),
            proptest::option::of(proptest::sample::select(DataType::ALL.to_vec())),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![Just(1.0), Just(0.1), Just(0.01), -1e6f64..1e6],
            prop_oneof![Just(0.0), -1e3f64..1e3],
            any::<bool>(),
        )
            .prop_map(
                |(name, table, address, data_type, wl, bl, scale, offset, writable)| PointConfig {
                    writable,
                    name,
                    table,
                    address,
                    data_type,
                    word_order: if wl {
                        WordOrder::LittleEndian
                    } else {
                        WordOrder::BigEndian
                    },
                    byte_order: if bl {
                        ByteOrder::LittleEndian
                    } else {
                        ByteOrder::BigEndian
                    },
                    scale,
                    offset,
                },
            )
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(points in proptest::collection::vec(point(), 0..20)) {
            let text = write_points_csv(&points);
            prop_assert_eq!(parse(&text).unwrap(), points);
        }

        #[test]
        fn random_rows_never_panic(rows in proptest::collection::vec(
            proptest::collection::vec("[ -~]{0,12}|holding|coil|0x1F|65536|-1|u32|f64|0.1|true|no|\"a,b\"", 0..11), 0..10)) {
            let mut text = String::from("name,table,address,data_type,word_order,byte_order,scale,offset,writable\n");
            for row in rows {
                text.push_str(&row.join(","));
                text.push('\n');
            }
            let _ = parse(&text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_points_csv(&bytes[..], Path::new("x.csv"));
        }
    }
}
