//! Point map files: the list of [`PointConfig`]s a device reads, as CSV or
//! TOML, and the writers discovery and SCL import use.
//!
//! CSV header: `name,reference,fc,scale,offset,writable,control,control_object`
//! in any order; `name` and `reference` are required, the rest may be
//! missing or empty (`fc` is then taken from an MMS-form reference). Lines
//! starting with `#` are comments, cells are trimmed, errors name the file,
//! line and column. TOML: `[[points]]` tables with the fields of
//! [`PointConfig`]. Parsing never panics on any input.

use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

use dcmms_protocols_core::point_file;
use serde::{Deserialize, Serialize};

use crate::backend::ControlModel;
use crate::config::PointConfig;
use crate::reference::Fc;

/// The CSV columns, in the canonical order.
pub const CSV_COLUMNS: [&str; 8] = [
    "name",
    "reference",
    "fc",
    "scale",
    "offset",
    "writable",
    "control",
    "control_object",
];
const REQUIRED: [&str; 2] = ["name", "reference"];

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
        let name = cell(0);
        if name.is_empty() {
            return Err(cell_err(0, "is empty".into()));
        }
        let reference = cell(1);
        if reference.is_empty() {
            return Err(cell_err(1, "is empty".into()));
        }
        let mut p = PointConfig {
            name: name.to_owned(),
            reference: reference.to_owned(),
            fc: None,
            scale: 1.0,
            offset: 0.0,
            writable: false,
            control: None,
            control_object: None,
        };
        if !cell(2).is_empty() {
            p.fc = Some(
                cell(2)
                    .parse::<Fc>()
                    .map_err(|e| cell_err(2, e.to_string()))?,
            );
        }
        if !cell(3).is_empty() {
            p.scale = parse_number(cell(3)).map_err(|m| cell_err(3, m))?;
        }
        if !cell(4).is_empty() {
            p.offset = parse_number(cell(4)).map_err(|m| cell_err(4, m))?;
        }
        if !cell(5).is_empty() {
            p.writable = parse_bool(cell(5)).map_err(|m| cell_err(5, m))?;
        }
        if !cell(6).is_empty() {
            p.control = Some(
                cell(6)
                    .parse::<ControlModel>()
                    .map_err(|m| cell_err(6, m))?,
            );
        }
        if !cell(7).is_empty() {
            p.control_object = Some(cell(7).to_owned());
        }
        points.push(p);
        Ok(())
    })?;
    Ok(points)
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

/// A CSV cell, quoted when it holds a separator, quote or line break.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with('#') || s != s.trim() {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Writes points as CSV with every column in the canonical order.
pub fn write_points_csv(points: &[PointConfig]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for p in points {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            csv_cell(&p.name),
            csv_cell(&p.reference),
            p.fc.map_or("", Fc::as_str),
            p.scale,
            p.offset,
            p.writable,
            p.control.map_or("", ControlModel::as_str),
            csv_cell(p.control_object.as_deref().unwrap_or("")),
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
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Vec<PointConfig>, PointMapError> {
        parse_points_csv(text.as_bytes(), Path::new("points.csv"))
    }

    #[test]
    fn optional_columns_default() {
        let pts = parse(
            "# bay map\n\
             name, reference, fc, scale\n\
             p, LD0/MMXU1.TotW.mag.f, MX, 0.001\n\
             q, LD0/MMXU1$MX$TotVAr$mag$f, ,\n\
             \n",
        )
        .unwrap();
        assert_eq!(pts.len(), 2);
        assert_eq!(
            pts[0],
            PointConfig::new("p", "LD0/MMXU1.TotW.mag.f", Fc::MX).with_scale(0.001, 0.0)
        );
        assert_eq!(pts[1].fc, None);
        assert_eq!(pts[1].scale, 1.0);
    }

    #[test]
    fn controls() {
        let pts = parse(
            "name,reference,fc,writable,control,control_object\n\
             sw,LD0/CSWI1.Pos.stVal,ST,true,sbo,LD0/CSWI1.Pos\n\
             r1,LD0/GGIO1.SPCSO1.stVal,ST,yes,direct,\n",
        )
        .unwrap();
        assert_eq!(pts[0].control, Some(ControlModel::Sbo));
        assert_eq!(pts[0].control_object.as_deref(), Some("LD0/CSWI1.Pos"));
        assert!(pts[1].writable);
        assert_eq!(pts[1].control, Some(ControlModel::Direct));
        let e = parse("name,reference,control\nx,LD0/A.B.c,maybe\n").unwrap_err();
        assert!(e.to_string().contains("column `control`"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse("name,reference,fc\nok,LD0/A.B.c,MX\nbad,LD0/A.B.c,XX\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("points.csv, line 3, column `fc`:"),
            "{e}"
        );
        let e = parse("name,reference,scale\nx,LD0/A.B.c,inf\n").unwrap_err();
        assert!(e.to_string().contains("column `scale`"), "{e}");
        let e = parse("name,reference\n,LD0/A.B.c\n").unwrap_err();
        assert!(e.to_string().contains("column `name`: is empty"), "{e}");
        let e = parse("name,reference\nx,\n").unwrap_err();
        assert!(
            e.to_string().contains("column `reference`: is empty"),
            "{e}"
        );
        let e = parse("name,reference\nx,LD0/A.B.c,extra\n").unwrap_err();
        assert!(e.to_string().contains("2 columns"), "{e}");
        let e = parse("name,ref\n").unwrap_err().to_string();
        assert!(e.contains("unknown column \"ref\""), "{e}");
        let e = parse("name,fc\n").unwrap_err().to_string();
        assert!(e.contains("required column \"reference\""), "{e}");
        let e = parse("name,reference,name\n").unwrap_err().to_string();
        assert!(e.contains("appears twice"), "{e}");
        let e = load_point_map(Path::new("/nonexistent/p.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/p.csv: cannot read"), "{e}");
    }

    #[test]
    fn toml_map() {
        let text = r#"
            [[points]]
            name = "p"
            reference = "LD0/MMXU1.TotW.mag.f"
            fc = "MX"
            [[points]]
            name = "sw"
            reference = "LD0/CSWI1.Pos.stVal"
            fc = "ST"
            writable = true
            control = "sbo_enhanced"
        "#;
        let pts = parse_points_toml(text, Path::new("p.toml")).unwrap();
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[1].control, Some(ControlModel::SboEnhanced));
        let again = parse_points_toml(
            &write_points_toml(&pts, &["made by hand".into()]),
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(again, pts);
        let e = parse_points_toml(
            "[[points]]\nname='a'\nreference='b'\ncolour=1\n",
            Path::new("p.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("p.toml:") && e.contains("colour"), "{e}");
    }

    fn point() -> impl Strategy<Value = PointConfig> {
        (
            "[A-Za-z0-9_.-]{1,20}",
            "[A-Za-z0-9_/.$(),\" #-]{1,30}",
            proptest::option::of(proptest::sample::select(Fc::ALL.to_vec())),
            -1_000_000i32..1_000_000,
            -1000i32..1000,
            any::<bool>(),
            proptest::option::of(proptest::sample::select(vec![
                ControlModel::Direct,
                ControlModel::Sbo,
                ControlModel::DirectEnhanced,
                ControlModel::SboEnhanced,
            ])),
            proptest::option::of("[A-Za-z0-9_/.]{1,20}"),
        )
            .prop_map(
                |(name, reference, fc, scale, offset, writable, control, control_object)| {
                    PointConfig {
                        name,
                        reference: reference.trim().to_owned(),
                        fc,
                        scale: if scale == 0 {
                            1.0
                        } else {
                            f64::from(scale) / 1000.0
                        },
                        offset: f64::from(offset) / 10.0,
                        writable,
                        control,
                        control_object,
                    }
                },
            )
            .prop_filter("reference must not be blank", |p| !p.reference.is_empty())
    }

    proptest! {
        #[test]
        fn csv_round_trip(points in proptest::collection::vec(point(), 0..20)) {
            let text = write_points_csv(&points);
            let back = parse(&text).unwrap();
            prop_assert_eq!(back, points);
        }

        #[test]
        fn toml_round_trip(points in proptest::collection::vec(point(), 0..20)) {
            let text = write_points_toml(&points, &[]);
            let back = parse_points_toml(&text, Path::new("x.toml")).unwrap();
            prop_assert_eq!(back, points);
        }

        #[test]
        fn csv_never_panics(text in "\\PC{0,300}") {
            let _ = parse(&text);
        }

        #[test]
        fn toml_never_panics(text in "\\PC{0,300}") {
            let _ = parse_points_toml(&text, Path::new("x.toml"));
        }
    }
}
