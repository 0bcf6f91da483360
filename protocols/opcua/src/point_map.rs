//! Point map files: the list of [`PointConfig`]s a device reads, as CSV or
//! TOML, and the writers discovery uses.
//!
//! CSV header (any order, only `name` and `node_id` required):
//! `name,node_id,mode,sampling_interval_ms,deadband,deadband_type,scale,offset,writable,data_type`.
//! Empty cells take the default, lines starting with `#` are comments,
//! cells are trimmed, errors name the file and line. TOML: `[[points]]`
//! tables with the fields of [`PointConfig`]. Parsing never panics.

use std::io::Read;
use std::path::Path;

use dcmms_protocols_core::point_file;
use serde::{Deserialize, Serialize};

use crate::config::{DeadbandKind, PointConfig, PointMode, WriteType};

/// The CSV columns, in the canonical order.
pub const CSV_COLUMNS: [&str; 10] = [
    "name",
    "node_id",
    "mode",
    "sampling_interval_ms",
    "deadband",
    "deadband_type",
    "scale",
    "offset",
    "writable",
    "data_type",
];

pub use dcmms_protocols_core::point_file::PointMapError;

/// A TOML point map.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PointMapFile {
    #[serde(default)]
    pub points: Vec<PointConfig>,
}

/// One CSV row; empty cells are `None` and take the default.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CsvRow {
    name: String,
    node_id: String,
    mode: Option<PointMode>,
    sampling_interval_ms: Option<u64>,
    deadband: Option<f64>,
    deadband_type: Option<DeadbandKind>,
    scale: Option<f64>,
    offset: Option<f64>,
    writable: Option<bool>,
    data_type: Option<WriteType>,
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
    point_file::read_csv(input, path, &CSV_COLUMNS, &["name", "node_id"], |r| {
        let row: CsvRow = r.deserialize()?;
        points.push(PointConfig {
            name: row.name,
            node_id: row.node_id,
            mode: row.mode.unwrap_or_default(),
            sampling_interval_ms: row.sampling_interval_ms,
            deadband: row.deadband,
            deadband_type: row.deadband_type,
            scale: row.scale.unwrap_or(1.0),
            offset: row.offset.unwrap_or(0.0),
            writable: row.writable.unwrap_or(false),
            data_type: row.data_type,
        });
        Ok(())
    })?;
    Ok(points)
}

/// Writes points as CSV with every column, in the canonical order.
pub fn write_points_csv(points: &[PointConfig]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(CSV_COLUMNS);
    for p in points {
        let opt = |v: Option<String>| v.unwrap_or_default();
        let _ = w.write_record([
            p.name.clone(),
            p.node_id.clone(),
            match p.mode {
                PointMode::Subscribe => "subscribe".to_owned(),
                PointMode::Poll => "poll".to_owned(),
            },
            opt(p.sampling_interval_ms.map(|v| v.to_string())),
            opt(p.deadband.map(|v| v.to_string())),
            opt(p.deadband_type.map(|k| match k {
                DeadbandKind::Absolute => "absolute".to_owned(),
                DeadbandKind::Percent => "percent".to_owned(),
            })),
            p.scale.to_string(),
            p.offset.to_string(),
            p.writable.to_string(),
            opt(p.data_type.map(|t| t.as_str().to_owned())),
        ]);
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// Writes points as a TOML point map (`[[points]]` tables).
pub fn write_points_toml(points: &[PointConfig]) -> String {
    toml::to_string(&PointMapFile {
        points: points.to_vec(),
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn p(path: &str) -> PathBuf {
        PathBuf::from(path)
    }

    #[test]
    fn csv_with_defaults_any_order_and_comments() {
        let text = "\u{feff}Node_Id,name,mode,deadband,writable,data_type\n# a comment\nns=2;s=Plant.P,p,,0.5,,\n\nns=2;i=7,sp,poll,,true,int16\n";
        let pts = parse_points_csv(text.as_bytes(), &p("m.csv")).unwrap();
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[0].name, "p");
        assert_eq!(pts[0].mode, PointMode::Subscribe);
        assert_eq!(pts[0].deadband, Some(0.5));
        assert_eq!(pts[0].scale, 1.0);
        assert!(!pts[0].writable);
        assert_eq!(pts[1].mode, PointMode::Poll);
        assert!(pts[1].writable);
        assert_eq!(pts[1].data_type, Some(WriteType::Int16));
    }

    #[test]
    fn csv_errors_name_file_line_and_column() {
        let e = parse_points_csv("name,node_id,colour\n".as_bytes(), &p("m.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.csv") && e.contains("colour"), "{e}");
        let e = parse_points_csv("name\n".as_bytes(), &p("m.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("node_id"), "{e}");
        let e = parse_points_csv("name,name,node_id\n".as_bytes(), &p("m.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
        let e = parse_points_csv(
            "name,node_id,scale\na,i=1,1\nb,i=2,lots\n".as_bytes(),
            &p("m.csv"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 3"), "{e}");
        let e = parse_points_csv("name,node_id,mode\na,i=1,push\n".as_bytes(), &p("m.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn writers_round_trip() {
        let mut a = PointConfig::new("sine", "ns=2;s=Plant.Sine");
        a.deadband = Some(0.25);
        a.deadband_type = Some(DeadbandKind::Percent);
        a.sampling_interval_ms = Some(250);
        let mut b = PointConfig::new("sp", "ns=2;s=Plant.Setpoint");
        b.writable = true;
        b.data_type = Some(WriteType::Double);
        b.mode = PointMode::Poll;
        b.scale = 0.1;
        b.offset = -4.0;
        let pts = vec![a, b];
        let csv = write_points_csv(&pts);
        assert_eq!(parse_points_csv(csv.as_bytes(), &p("x.csv")).unwrap(), pts);
        let toml = write_points_toml(&pts);
        assert_eq!(parse_points_toml(&toml, &p("x.toml")).unwrap(), pts);
    }

    fn arb_point() -> impl Strategy<Value = PointConfig> {
        (
            "[A-Za-z0-9_.-]{1,20}",
            "ns=[0-9]{1,2};s=[A-Za-z0-9_. ]{1,20}",
            any::<bool>(),
            proptest::option::of(0u64..100_000),
            proptest::option::of(0.0f64..1000.0),
            proptest::option::of(prop_oneof![
                Just(DeadbandKind::Absolute),
                Just(DeadbandKind::Percent)
            ]),
            -1e6f64..1e6,
            any::<bool>(),
            proptest::option::of(proptest::sample::select(WriteType::ALL.to_vec())),
        )
            .prop_map(|(name, node_id, poll, si, db, dbt, offset, writable, dt)| {
                let mut p = PointConfig::new(name, node_id.trim().to_owned());
                p.mode = if poll {
                    PointMode::Poll
                } else {
                    PointMode::Subscribe
                };
                p.sampling_interval_ms = si;
                p.deadband = db;
                p.deadband_type = dbt;
                p.offset = offset;
                p.writable = writable;
                p.data_type = dt;
                p
            })
    }

    proptest! {
        #[test]
        fn csv_and_toml_round_trip(points in proptest::collection::vec(arb_point(), 0..12)) {
            let csv = write_points_csv(&points);
            prop_assert_eq!(parse_points_csv(csv.as_bytes(), &p("x.csv")).unwrap(), points.clone());
            let toml = write_points_toml(&points);
            prop_assert_eq!(parse_points_toml(&toml, &p("x.toml")).unwrap(), points);
        }

        #[test]
        fn csv_parser_never_panics(text in "\\PC{0,300}") {
            let _ = parse_points_csv(text.as_bytes(), &p("x.csv"));
        }

        #[test]
        fn csv_rows_of_noise_never_panic(rows in proptest::collection::vec("[a-z0-9=;,. -]{0,40}", 0..10)) {
            let text = format!("name,node_id,mode,scale,writable,data_type\n{}", rows.join("\n"));
            let _ = parse_points_csv(text.as_bytes(), &p("x.csv"));
        }
    }
}
