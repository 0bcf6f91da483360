//! The `[[modbus]]` device configuration and its validation.
//!
//! The doc comments of [`ModbusTcpConfig`] and [`PointConfig`] are the user's
//! reference for the gateway config file. Validation turns a config into
//! [`ModbusPoint`]s or an error that names the device, the point and the
//! field at fault; it never touches the network.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use dcmms_protocols_core::{ByteOrder, DataType, ParseEnumError, Scaling, WordOrder};
use dcmms_shared::{validate_name, NameError};
use serde::{Deserialize, Serialize};

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
    /// `name,table,address,data_type,word_order,byte_order,scale,offset`;
    /// only `name`, `table` and `address` are required, empty cells take the
    /// defaults of [`PointConfig`]. Lines starting with `#` are comments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_csv: Option<PathBuf>,
}

/// One value read from a device.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PointConfig {
    /// Point name, unique within the device, 1-64 characters from
    /// `[A-Za-z0-9_.-]`.
    pub name: String,
    /// `holding` (function 3), `input` (function 4), `coil` (function 1) or
    /// `discrete` (function 2).
    pub table: Table,
    /// 0-based protocol address of the first register or bit (register
    /// "40001" in 1-based vendor notation is holding address 0).
    pub address: u16,
    /// `bool`, `u16`, `i16`, `u32`, `i32`, `u64`, `i64`, `f32` or `f64`.
    /// Default `u16` for registers and `bool` for coils and discrete inputs,
    /// which can only be `bool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<DataType>,
    /// Order of the registers of a 32/64-bit value: `big_endian` (high word
    /// first, default) or `little_endian`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub word_order: WordOrder,
    /// Order of the bytes inside each register: `big_endian` (default) or
    /// `little_endian` (swapped).
    #[serde(default, skip_serializing_if = "is_default")]
    pub byte_order: ByteOrder,
    /// Multiplier from raw value to engineering units, e.g. 0.1 for a value
    /// in tenths. Default 1.
    #[serde(default = "default_scale", skip_serializing_if = "is_one")]
    pub scale: f64,
    /// Added after scaling: `value = raw * scale + offset`. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: f64,
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
fn default_scale() -> f64 {
    1.0
}
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
fn is_one(v: &f64) -> bool {
    *v == 1.0
}
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Table {
    /// Holding registers, read with function 3.
    Holding,
    /// Input registers, read with function 4.
    Input,
    /// Coils, read with function 1.
    Coil,
    /// Discrete inputs, read with function 2.
    Discrete,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Holding, Table::Input, Table::Coil, Table::Discrete];

    pub fn as_str(self) -> &'static str {
        match self {
            Table::Holding => "holding",
            Table::Input => "input",
            Table::Coil => "coil",
            Table::Discrete => "discrete",
        }
    }

    /// Coils and discrete inputs hold bits; the others 16-bit registers.
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::Discrete)
    }

    /// Most registers (or bits) one read request may ask for.
    pub fn max_read(self) -> u16 {
        if self.is_bits() {
            2000
        } else {
            125
        }
    }
}

impl FromStr for Table {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "holding" | "holding_register" | "holding_registers" | "hr" => Ok(Table::Holding),
            "input" | "input_register" | "input_registers" | "ir" => Ok(Table::Input),
            "coil" | "coils" => Ok(Table::Coil),
            "discrete" | "discrete_input" | "discrete_inputs" | "di" => Ok(Table::Discrete),
            _ => Err(ParseEnumError {
                what: "table",
                given: s.to_owned(),
                expected: "holding, input, coil, discrete",
            }),
        }
    }
}

impl TryFrom<String> for Table {
    type Error = ParseEnumError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Table> for &'static str {
    fn from(t: Table) -> &'static str {
        t.as_str()
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated point, ready to be planned and decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusPoint {
    pub name: String,
    pub table: Table,
    pub address: u16,
    pub data_type: DataType,
    pub word_order: WordOrder,
    pub byte_order: ByteOrder,
    pub scaling: Scaling,
}

impl ModbusPoint {
    /// Registers (or bits) the point occupies.
    pub fn width(&self) -> u16 {
        if self.table.is_bits() {
            1
        } else {
            self.data_type.register_count() as u16
        }
    }
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

        let mut configs = Vec::new();
        if let Some(rel) = &self.points_csv {
            let path = config_dir.join(rel);
            configs = load_points_csv(&path).map_err(|source| ModbusConfigError::PointsCsv {
                device: self.name.clone(),
                source,
            })?;
        }
        configs.extend(self.points.iter().cloned());
        if configs.is_empty() {
            return Err(self.device_err("points", "no points: set `points` or `points_csv`"));
        }

        let mut seen = HashSet::new();
        let mut points = Vec::with_capacity(configs.len());
        for pc in &configs {
            let p = pc.validate(&self.name)?;
            if !seen.insert(p.name.clone()) {
                return Err(ModbusConfigError::DuplicatePoint {
                    device: self.name.clone(),
                    point: p.name,
                });
            }
            points.push(p);
        }
        Ok(points)
    }
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

impl PointConfig {
    /// A `u16` point with default orders and scaling.
    pub fn new(name: impl Into<String>, table: Table, address: u16) -> Self {
        PointConfig {
            name: name.into(),
            table,
            address,
            data_type: None,
            word_order: WordOrder::default(),
            byte_order: ByteOrder::default(),
            scale: 1.0,
            offset: 0.0,
        }
    }

    pub fn with_type(mut self, data_type: DataType) -> Self {
        self.data_type = Some(data_type);
        self
    }

    pub fn with_scale(mut self, scale: f64, offset: f64) -> Self {
        self.scale = scale;
        self.offset = offset;
        self
    }

    pub fn validate(&self, device: &str) -> Result<ModbusPoint, ModbusConfigError> {
        let field_err = |field: &'static str, message: String| ModbusConfigError::PointField {
            device: device.to_owned(),
            point: self.name.clone(),
            field,
            message,
        };
        validate_name(&self.name).map_err(|source| ModbusConfigError::PointName {
            device: device.to_owned(),
            point: self.name.clone(),
            source,
        })?;
        let data_type = match (self.table.is_bits(), self.data_type) {
            (true, None | Some(DataType::Bool)) => DataType::Bool,
            (true, Some(t)) => {
                return Err(field_err(
                    "data_type",
                    format!("{t} on a {} table; coils and discrete inputs are bool", self.table),
                ))
            }
            (false, None) => DataType::U16,
            (false, Some(DataType::Bool)) => {
                return Err(field_err(
                    "data_type",
                    format!("bool on the {} register table; use a coil or discrete input, or an integer type", self.table),
                ))
            }
            (false, Some(t)) => t,
        };
        let width = if self.table.is_bits() {
            1
        } else {
            data_type.register_count() as u32
        };
        let last = u32::from(self.address) + width - 1;
        if last > u32::from(u16::MAX) {
            return Err(field_err(
                "address",
                format!(
                    "{} {data_type} at {} would end at {last}, past the last address 65535",
                    self.table, self.address
                ),
            ));
        }
        if !self.scale.is_finite() || self.scale == 0.0 {
            return Err(field_err(
                "scale",
                format!("{} must be a finite, non-zero number", self.scale),
            ));
        }
        if !self.offset.is_finite() {
            return Err(field_err(
                "offset",
                format!("{} must be a finite number", self.offset),
            ));
        }
        Ok(ModbusPoint {
            name: self.name.clone(),
            table: self.table,
            address: self.address,
            data_type,
            word_order: self.word_order,
            byte_order: self.byte_order,
            scaling: Scaling::new(self.scale, self.offset),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn tables() {
        for t in Table::ALL {
            assert_eq!(t.as_str().parse::<Table>(), Ok(t));
        }
        assert_eq!(Table::Holding.max_read(), 125);
        assert_eq!(Table::Coil.max_read(), 2000);
        assert_eq!("Holding_Registers".parse::<Table>(), Ok(Table::Holding));
    }
}
