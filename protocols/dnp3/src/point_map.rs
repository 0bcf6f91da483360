//! Point-map files: the list of [`PointConfig`]s of an outstation, as CSV or
//! TOML, and the writers discovery uses.
//!
//! CSV header: `name,kind,index,scale,offset,writable,op,mode,variation,
//! on_time_ms,off_time_ms,count` in any order; `name`, `kind` and `index`
//! are required, the rest may be missing or empty and take the defaults of
//! [`PointConfig`]. Lines starting with `#` are comments, cells are
//! trimmed, errors name the file, line and column. TOML: `[[points]]`
//! tables with the fields of [`PointConfig`]. Parsing never panics on any
//! input.

use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

use dcmms_protocols_core::point_file;
use serde::{Deserialize, Serialize};

use crate::point::PointConfig;

/// The CSV columns, in the canonical order.
pub const CSV_COLUMNS: [&str; 12] = [
    "name",
    "kind",
    "index",
    "scale",
    "offset",
    "writable",
    "op",
    "mode",
    "variation",
    "on_time_ms",
    "off_time_ms",
    "count",
];
const REQUIRED: [&str; 3] = ["name", "kind", "index"];

pub use dcmms_protocols_core::point_file::PointMapError;

/// A TOML point map.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PointMapFile {
    #[serde(default)]
    pub points: Vec<PointConfig>,
}

/// Reads a point map: CSV when the file name ends in `.csv`, TOML otherwise.
pub fn load_point_map(path: &Path) -> Result<Vec<PointConfig>, PointMapError> {
    point_file::load(path, parse_points_csv, parse_points_toml)
}

/// Parses a TOML point map; `path` is only used in error messages.
pub fn parse_points_toml(text: &str, path: &Path) -> Result<Vec<PointConfig>, PointMapError> {
    point_file::parse_toml::<PointMapFile>(text, path).map(|f| f.points)
}

/// Parses a CSV point map; `path` is only used in error messages.
pub fn parse_points_csv<R: Read>(input: R, path: &Path) -> Result<Vec<PointConfig>, PointMapError> {
    let mut points = Vec::new();
    point_file::read_csv(input, path, &CSV_COLUMNS, &REQUIRED, |r| {
        let cell = |k: usize| r.cell(k);
        let cell_err = |k: usize, message: String| r.cell_err(k, message);
        let opt = |k: usize| Some(cell(k)).filter(|s| !s.is_empty());

        let name = cell(0);
        if name.is_empty() {
            return Err(cell_err(0, "is empty".into()));
        }
        let kind = cell(1).parse().map_err(|e| cell_err(1, format!("{e}")))?;
        let idx = parse_int::<u16>(cell(2)).map_err(|m| cell_err(2, m))?;
        let mut p = PointConfig::new(name, kind, idx);
        if let Some(s) = opt(3) {
            p.scale = parse_number(s).map_err(|m| cell_err(3, m))?;
        }
        if let Some(s) = opt(4) {
            p.offset = parse_number(s).map_err(|m| cell_err(4, m))?;
        }
        if let Some(s) = opt(5) {
            p.writable = parse_bool(s).map_err(|m| cell_err(5, m))?;
        }
        if let Some(s) = opt(6) {
            p.op = Some(s.parse().map_err(|e| cell_err(6, format!("{e}")))?);
        }
        if let Some(s) = opt(7) {
            p.mode = Some(s.parse().map_err(|e| cell_err(7, format!("{e}")))?);
        }
        if let Some(s) = opt(8) {
            p.variation = Some(s.parse().map_err(|e| cell_err(8, format!("{e}")))?);
        }
        if let Some(s) = opt(9) {
            p.on_time_ms = Some(parse_int(s).map_err(|m| cell_err(9, m))?);
        }
        if let Some(s) = opt(10) {
            p.off_time_ms = Some(parse_int(s).map_err(|m| cell_err(10, m))?);
        }
        if let Some(s) = opt(11) {
            p.count = Some(parse_int(s).map_err(|m| cell_err(11, m))?);
        }
        points.push(p);
        Ok(())
    })?;
    Ok(points)
}

/// A decimal or `0x` hexadecimal integer.
fn parse_int<T: TryFrom<u64>>(s: &str) -> Result<T, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse::<u64>().ok(),
    };
    parsed
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| format!("{s:?} is not a whole number in range"))
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

/// Writes points as CSV with every column in the canonical order. Point
/// names are validated names (no commas or quotes), so no cell needs quoting.
pub fn write_points_csv(points: &[PointConfig]) -> String {
    fn opt<T: ToString>(v: Option<T>) -> String {
        v.map(|v| v.to_string()).unwrap_or_default()
    }
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for p in points {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            p.name,
            p.kind,
            p.index,
            p.scale,
            p.offset,
            p.writable,
            opt(p.op),
            opt(p.mode),
            opt(p.variation),
            opt(p.on_time_ms),
            opt(p.off_time_ms),
            opt(p.count),
        );
    }
    out
}

/// Writes points as a TOML point map, after `header` lines written as
/// `# ` comments.
pub fn write_points_toml(points: &[PointConfig], header: &[String]) -> String {
    let mut out = String::new();
    for line in header {
        let _ = writeln!(out, "# {line}");
    }
    if !header.is_empty() {
        out.push('\n');
    }
    let file = PointMapFile {
        points: points.to_vec(),
    };
    // Serialising plain strings, numbers and booleans cannot fail.
    out.push_str(&toml::to_string(&file).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point::{AnalogVariation, CrobOp, OperateMode, PointKind};
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Vec<PointConfig>, PointMapError> {
        parse_points_csv(text.as_bytes(), Path::new("points.csv"))
    }

    #[test]
    fn optional_columns_default() {
        let pts = parse(
            "# rtu map\n\
             name, kind, index, scale, op, writable\n\
             p, analog_input, 3, 0.1, ,\n\
             brk, crob, 0x10, , trip_close, yes\n\
             \n\
             st, bi, 0,,,\n",
        )
        .unwrap();
        assert_eq!(pts.len(), 3);
        assert_eq!(
            pts[0],
            PointConfig::new("p", PointKind::AnalogInput, 3).with_scale(0.1, 0.0)
        );
        assert_eq!(
            pts[1],
            PointConfig::new("brk", PointKind::Crob, 16)
                .with_op(CrobOp::TripClose)
                .writable()
        );
        assert_eq!(pts[2].kind, PointKind::BinaryInput);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("name,kind\nx,ai\n").unwrap_err().to_string();
        assert!(e.contains("required column \"index\""), "{e}");
        let e = parse("name,kind,index,colour\n").unwrap_err().to_string();
        assert!(e.contains("unknown column \"colour\""), "{e}");
        let e = parse("name,kind,index\na,ai,1\nb,relay,2\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 3") && e.contains("`kind`") && e.contains("relay"),
            "{e}"
        );
        let e = parse("name,kind,index\nb,ai,70000\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`index`"), "{e}");
        let e = parse("name,kind,index,count\nb,crob,1,300\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`count`"), "{e}");
        let e = parse("name,kind,index\nb,ai,1,extra\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("4 cells"), "{e}");
        let e = parse("name,kind,index,kind\n").unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn toml_map_parses_and_reports_errors() {
        let pts = parse_points_toml(
            "[[points]]\nname='a'\nkind='counter'\nindex=2\n\n[[points]]\nname='sp'\nkind='analog_output'\nindex=0\nvariation='f32'\nmode='direct_operate'\nwritable=true\n",
            Path::new("m.toml"),
        )
        .unwrap();
        assert_eq!(pts[0], PointConfig::new("a", PointKind::Counter, 2));
        assert_eq!(
            pts[1],
            PointConfig::new("sp", PointKind::AnalogOutput, 0)
                .with_variation(AnalogVariation::F32)
                .with_mode(OperateMode::DirectOperate)
                .writable()
        );
        let e = parse_points_toml("[[points]]\nname='a'\n", Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("m.toml:") && e.contains("kind"), "{e}");
    }

    fn arb_point() -> impl Strategy<Value = PointConfig> {
        (
            "[a-z][a-z0-9_]{0,10}",
            prop::sample::select(PointKind::ALL.to_vec()),
            any::<u16>(),
            prop::option::of(prop::sample::select(CrobOp::ALL.to_vec())),
            prop::option::of(prop::sample::select(OperateMode::ALL.to_vec())),
            prop::option::of(prop::sample::select(AnalogVariation::ALL.to_vec())),
            (-1e6f64..1e6, -1e3f64..1e3, any::<bool>()),
            (
                prop::option::of(any::<u32>()),
                prop::option::of(any::<u32>()),
                prop::option::of(any::<u8>()),
            ),
        )
            .prop_map(
                |(name, kind, index, op, mode, variation, (s, o, w), (on, off, c))| {
                    let mut p = PointConfig::new(name, kind, index);
                    p.scale = s;
                    p.offset = o;
                    p.writable = w;
                    p.op = op;
                    p.mode = mode;
                    p.variation = variation;
                    p.on_time_ms = on;
                    p.off_time_ms = off;
                    p.count = c;
                    p
                },
            )
    }

    proptest! {
        #[test]
        fn csv_round_trips(points in prop::collection::vec(arb_point(), 0..20)) {
            let text = write_points_csv(&points);
            prop_assert_eq!(parse(&text).unwrap(), points);
        }

        #[test]
        fn toml_round_trips(points in prop::collection::vec(arb_point(), 0..20)) {
            let text = write_points_toml(&points, &["generated".into()]);
            prop_assert_eq!(parse_points_toml(&text, Path::new("m.toml")).unwrap(), points);
        }

        #[test]
        fn csv_parser_never_panics(text in "\\PC{0,400}") {
            let _ = parse(&text);
        }

        #[test]
        fn csv_parser_never_panics_on_plausible_rows(
            rows in prop::collection::vec(
                prop::collection::vec("[a-z0-9_.x ,\"-]{0,12}", 0..14), 0..8)
        ) {
            let mut text = CSV_COLUMNS.join(",");
            text.push('\n');
            for r in rows {
                text.push_str(&r.join(","));
                text.push('\n');
            }
            let _ = parse(&text);
        }
    }
}
