//! The `[[modbus]]` device configuration, the config errors of the crate,
//! and the loading of a device's points (inline and CSV).
//!
//! The doc comments of [`ModbusTcpConfig`] and [`PointConfig`] are the user's
//! reference for the gateway config file. Validation turns a config into
//! [`ModbusPoint`]s or an error that names the device, the point and the
//! field at fault; it never touches the network.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use dcmms_shared::{validate_name, NameError};
use serde::{Deserialize, Serialize};

pub use crate::point::{ModbusPoint, PointConfig, Table};
use crate::points_csv::{load_points_csv, PointsCsvError};

/// One Modbus TCP device (a `[[modbus]]` table in the gateway config).
///
/// ```toml
/// [[modbus]]
/// name = "inv-01"
/// address = "192.168.1.20:502"
/// unit_id = 1
/// poll_interval_ms = 5000
/// points_csv = "points/solar-inverter.csv"
/// points = [
///   { name = "ac_power", table = "input", address = 2, data_type = "u32" },
///   { name = "grid_voltage", table = "input", address = 4, scale = 0.1 },
///   { name = "export_limit", table = "holding", address = 40, scale = 0.1, writable = true },
/// ]
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusTcpConfig {
    /// Device name, unique on the gateway: 1-64 characters from
    /// `[A-Za-z0-9_.-]`. Points are published as `<name>/<point>`.
    pub name: String,
    /// `host:port` of the Modbus TCP server, e.g. `192.168.1.20:502` or
    /// `[fe80::1]:502`. Host names are resolved at every (re)connect.
    pub address: String,
    /// Unit identifier (slave id) sent in every request. Direct TCP devices
    /// usually ignore it; TCP-to-RTU gateways route on it. Default 1.
    #[serde(default = "default_unit_id")]
    pub unit_id: u8,
    /// Time between the starts of two poll cycles, in ms. A cycle that takes
    /// longer delays the next one instead of queueing. Default 1000.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Time allowed for connecting and for each request, in ms. Default 1000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Unused registers (or bits) that a read may span to merge two reads
    /// into one. Larger values mean fewer, longer requests; set 0 for devices
    /// that answer an exception for unmapped addresses. Default 8.
    #[serde(default = "default_max_gap")]
    pub max_gap: u16,
    /// First reconnect delay after a failure, in ms. Default 500.
    #[serde(default = "default_backoff_min_ms")]
    pub backoff_min_ms: u64,
    /// Longest reconnect delay, in ms; delays double from `backoff_min_ms` up
    /// to this, each randomised (jitter). Default 30000.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Points defined inline. May be combined with `points_csv`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<PointConfig>,
    /// CSV point list, relative to the config file's folder. Header:
    /// `name,table,address,data_type,word_order,byte_order,scale,offset`,
    /// optionally `writable`; only `name`, `table` and `address` are
    /// required, empty cells take the defaults of [`PointConfig`]. Lines
    /// starting with `#` are comments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_csv: Option<PathBuf>,
}

fn default_unit_id() -> u8 {
    1
}
fn default_poll_interval_ms() -> u64 {
    1000
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_max_gap() -> u16 {
    8
}
fn default_backoff_min_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    30_000
}

/// Why a Modbus device config was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModbusConfigError {
    #[error("modbus device {device:?}: invalid name: {source}")]
    DeviceName { device: String, source: NameError },
    #[error("modbus device {device:?}: field `{field}`: {message}")]
    DeviceField {
        device: String,
        field: &'static str,
        message: String,
    },
    #[error("modbus device {device:?}, point {point:?}: invalid name: {source}")]
    PointName {
        device: String,
        point: String,
        source: NameError,
    },
    #[error("modbus device {device:?}, point {point:?}: field `{field}`: {message}")]
    PointField {
        device: String,
        point: String,
        field: &'static str,
        message: String,
    },
    #[error("modbus device {device:?}: point {point:?} is defined more than once")]
    DuplicatePoint { device: String, point: String },
    #[error("modbus device {device:?}: {source}")]
    PointsCsv {
        device: String,
        source: PointsCsvError,
    },
    #[error("modbus RTU bus {bus:?}: invalid name: {source}")]
    BusName { bus: String, source: NameError },
    #[error("modbus RTU bus {bus:?}: field `{field}`: {message}")]
    BusField {
        bus: String,
        field: &'static str,
        message: String,
    },
    #[error("modbus RTU bus {bus:?}: device name {device:?} is used more than once")]
    DuplicateDevice { bus: String, device: String },
    #[error("modbus RTU bus {bus:?}: unit id {unit_id} is used by both {first:?} and {second:?}")]
    DuplicateUnit {
        bus: String,
        unit_id: u8,
        first: String,
        second: String,
    },
}

impl ModbusTcpConfig {
    /// A config with defaults for everything but name and address.
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Self {
        ModbusTcpConfig {
            name: name.into(),
            address: address.into(),
            unit_id: default_unit_id(),
            poll_interval_ms: default_poll_interval_ms(),
            timeout_ms: default_timeout_ms(),
            max_gap: default_max_gap(),
            backoff_min_ms: default_backoff_min_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            points: Vec::new(),
            points_csv: None,
        }
    }

    fn device_err(&self, field: &'static str, message: impl Into<String>) -> ModbusConfigError {
        ModbusConfigError::DeviceField {
            device: self.name.clone(),
            field,
            message: message.into(),
        }
    }

    /// Checks the device settings and returns every point (CSV rows first,
    /// then inline points) validated. `config_dir` is the folder that
    /// `points_csv` is relative to.
    pub fn validate(&self, config_dir: &Path) -> Result<Vec<ModbusPoint>, ModbusConfigError> {
        validate_name(&self.name).map_err(|source| ModbusConfigError::DeviceName {
            device: self.name.clone(),
            source,
        })?;
        check_address(&self.address).map_err(|m| self.device_err("address", m))?;
        if self.poll_interval_ms == 0 {
            return Err(self.device_err("poll_interval_ms", "must be at least 1"));
        }
        if self.timeout_ms == 0 {
            return Err(self.device_err("timeout_ms", "must be at least 1"));
        }
        if self.backoff_min_ms == 0 {
            return Err(self.device_err("backoff_min_ms", "must be at least 1"));
        }
        if self.backoff_max_ms < self.backoff_min_ms {
            return Err(self.device_err(
                "backoff_max_ms",
                format!("must not be below backoff_min_ms ({})", self.backoff_min_ms),
            ));
        }

        load_points(
            &self.name,
            &self.points,
            self.points_csv.as_deref(),
            config_dir,
        )
    }
}

/// Validates a device's points: the CSV rows first (`points_csv`, relative
/// to `config_dir`), then the inline ones. Names must be unique and there
/// must be at least one point.
pub(crate) fn load_points(
    device: &str,
    inline: &[PointConfig],
    points_csv: Option<&Path>,
    config_dir: &Path,
) -> Result<Vec<ModbusPoint>, ModbusConfigError> {
    let mut configs = Vec::new();
    if let Some(rel) = points_csv {
        let path = config_dir.join(rel);
        configs = load_points_csv(&path).map_err(|source| ModbusConfigError::PointsCsv {
            device: device.to_owned(),
            source,
        })?;
    }
    configs.extend(inline.iter().cloned());
    if configs.is_empty() {
        return Err(ModbusConfigError::DeviceField {
            device: device.to_owned(),
            field: "points",
            message: "no points: set `points` or `points_csv`".into(),
        });
    }

    let mut seen = HashSet::new();
    let mut points = Vec::with_capacity(configs.len());
    for pc in &configs {
        let p = pc.validate(device)?;
        if !seen.insert(p.name.clone()) {
            return Err(ModbusConfigError::DuplicatePoint {
                device: device.to_owned(),
                point: p.name,
            });
        }
        points.push(p);
    }
    Ok(points)
}

/// `host:port` with a non-empty host and a port in 1..=65535.
fn check_address(address: &str) -> Result<(), String> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("{address:?} is not host:port"));
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("{address:?} has no host"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!("{address:?}: write IPv6 addresses as [addr]:port"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{address:?}: port must be 1-65535")),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcmms_protocols_core::{DataType, WordOrder};

    fn dev(points: Vec<PointConfig>) -> ModbusTcpConfig {
        let mut c = ModbusTcpConfig::new("inv-01", "127.0.0.1:502");
        c.points = points;
        c
    }

    fn err(c: &ModbusTcpConfig) -> String {
        c.validate(Path::new(".")).unwrap_err().to_string()
    }

    #[test]
    fn defaults_and_types() {
        let c = dev(vec![
            PointConfig::new("a", Table::Holding, 0),
            PointConfig::new("b", Table::Coil, 3),
            PointConfig::new("c", Table::Input, 10).with_type(DataType::F64),
        ]);
        let p = c.validate(Path::new(".")).unwrap();
        assert_eq!(p[0].data_type, DataType::U16);
        assert_eq!(p[1].data_type, DataType::Bool);
        assert_eq!((p[2].data_type, p[2].width()), (DataType::F64, 4));
        assert_eq!(p[1].width(), 1);
    }

    #[test]
    fn errors_name_device_point_and_field() {
        let e = err(&dev(vec![
            PointConfig::new("a", Table::Holding, 0),
            PointConfig::new("a", Table::Input, 0),
        ]));
        assert_eq!(
            e,
            r#"modbus device "inv-01": point "a" is defined more than once"#
        );

        let e = err(&dev(vec![
            PointConfig::new("x", Table::Holding, 65535).with_type(DataType::U32)
        ]));
        assert!(
            e.contains(r#"point "x""#) && e.contains("`address`") && e.contains("65535"),
            "{e}"
        );
        // Exactly reaching 65535 is fine.
        assert!(dev(vec![
            PointConfig::new("x", Table::Holding, 65534).with_type(DataType::I32)
        ])
        .validate(Path::new("."))
        .is_ok());
        assert!(dev(vec![
            PointConfig::new("x", Table::Holding, 65533).with_type(DataType::U64)
        ])
        .validate(Path::new("."))
        .is_err());
        assert!(dev(vec![
            PointConfig::new("x", Table::Holding, 65532).with_type(DataType::F64)
        ])
        .validate(Path::new("."))
        .is_ok());
        assert!(dev(vec![PointConfig::new("x", Table::Coil, 65535)])
            .validate(Path::new("."))
            .is_ok());

        let e = err(&dev(vec![
            PointConfig::new("b", Table::Holding, 1).with_type(DataType::Bool)
        ]));
        assert!(
            e.contains(r#"point "b""#) && e.contains("`data_type`") && e.contains("bool"),
            "{e}"
        );
        let e = err(&dev(vec![
            PointConfig::new("c", Table::Discrete, 1).with_type(DataType::U16)
        ]));
        assert!(e.contains("`data_type`") && e.contains("discrete"), "{e}");

        let e = err(&dev(vec![PointConfig::new("bad/name", Table::Holding, 1)]));
        assert!(e.contains("bad/name") && e.contains("invalid name"), "{e}");
        let e = err(&dev(vec![
            PointConfig::new("s", Table::Holding, 1).with_scale(0.0, 0.0)
        ]));
        assert!(e.contains("`scale`"), "{e}");
        let e = err(&dev(vec![
            PointConfig::new("s", Table::Holding, 1).with_scale(1.0, f64::NAN)
        ]));
        assert!(e.contains("`offset`"), "{e}");
    }

    #[test]
    fn device_fields_are_checked() {
        let p = vec![PointConfig::new("a", Table::Holding, 0)];
        let mut c = dev(p.clone());
        c.name = "has space".into();
        assert!(err(&c).contains("invalid name"));
        for bad in ["nohost", ":502", "host:0", "host:70000", "::1:502", "h:x"] {
            let mut c = dev(p.clone());
            c.address = bad.into();
            assert!(err(&c).contains("`address`"), "{bad}");
        }
        for ok in ["localhost:502", "[::1]:5020", "10.0.0.1:1"] {
            let mut c = dev(p.clone());
            c.address = ok.into();
            assert!(c.validate(Path::new(".")).is_ok(), "{ok}");
        }
        let mut c = dev(p.clone());
        c.poll_interval_ms = 0;
        assert!(err(&c).contains("`poll_interval_ms`"));
        let mut c = dev(p.clone());
        c.backoff_max_ms = 10;
        assert!(err(&c).contains("`backoff_max_ms`"));
        assert!(err(&dev(vec![])).contains("no points"));
    }

    #[test]
    fn toml_round_trip_and_unknown_fields() {
        let text = r#"
            name = "meter"
            address = "127.0.0.1:5020"
            unit_id = 3
            points = [
              { name = "p", table = "input", address = 4, data_type = "f32", word_order = "little_endian", scale = 0.1 },
              { name = "q", table = "coil", address = 0 },
            ]
        "#;
        let c: ModbusTcpConfig = toml::from_str(text).unwrap();
        assert_eq!(c.unit_id, 3);
        assert_eq!(c.poll_interval_ms, 1000);
        assert_eq!(c.max_gap, 8);
        assert_eq!(c.points[0].word_order, WordOrder::LittleEndian);
        assert_eq!(c.points[0].scale, 0.1);
        assert_eq!(c.points[1].data_type, None);
        let again: ModbusTcpConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);

        let e = toml::from_str::<ModbusTcpConfig>("name='a'\naddress='h:1'\npoll_ms=5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("poll_ms"), "{e}");
        let e = toml::from_str::<ModbusTcpConfig>(
            "name='a'\naddress='h:1'\npoints=[{name='x',table='holding',address=1,colour='red'}]",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("colour"), "{e}");
        let e = toml::from_str::<ModbusTcpConfig>(
            "name='a'\naddress='h:1'\npoints=[{name='x',table='register',address=1}]",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown table"), "{e}");
    }
}
