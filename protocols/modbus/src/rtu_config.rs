//! The `[[modbus_rtu]]` bus configuration and its validation.
//!
//! One table per serial line: the port settings, the timing of the line, and
//! the units (`[[modbus_rtu.devices]]`) polled on it. The doc comments of
//! [`ModbusRtuConfig`] and [`RtuDeviceConfig`] are the user's reference.
//! Validation never opens the port: a USB adapter may appear after start.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use dcmms_protocols_core::ParseEnumError;
use dcmms_shared::validate_name;
use serde::{Deserialize, Serialize};

use crate::config::{load_points, ModbusConfigError, ModbusPoint, PointConfig};

/// One RS-485/RS-232 line with its Modbus RTU units (a `[[modbus_rtu]]`
/// table in the gateway config). Requests go out one at a time; each unit
/// keeps its own poll interval, and a unit that stops answering is retried
/// with a growing, jittered delay so the others keep their rate.
///
/// ```toml
/// [[modbus_rtu]]
/// name = "rs485-1"
/// port = "/dev/ttyUSB0"
/// baud_rate = 19200
/// parity = "even"
/// timeout_ms = 300
///
/// [[modbus_rtu.devices]]
/// name = "inv-01"
/// unit_id = 1
/// poll_interval_ms = 5000
/// points_csv = "points/solar-inverter.csv"
///
/// [[modbus_rtu.devices]]
/// name = "meter-01"
/// unit_id = 7
/// points = [
///   { name = "power", table = "holding", address = 12, data_type = "f32" },
///   { name = "export_limit", table = "holding", address = 40, scale = 0.1, writable = true },
/// ]
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusRtuConfig {
    /// Bus name, unique on the gateway and different from its devices'
    /// names: 1-64 characters from `[A-Za-z0-9_.-]`. Its status row shows
    /// the line itself (port open, aggregate counters).
    pub name: String,
    /// Serial device, e.g. `/dev/ttyUSB0`, `/dev/ttyAMA0`, or a stable
    /// `/dev/serial/by-id/...` link. Opened exclusively; reopened with
    /// backoff when it fails or disappears.
    pub port: String,
    /// Line speed in bit/s. Default 9600.
    #[serde(default = "default_baud_rate")]
    pub baud_rate: u32,
    /// Data bits per character. Modbus RTU frames are binary, so only 8
    /// is accepted. Default 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// `none`, `even` or `odd`. The Modbus specification's default is even;
    /// many devices ship with none. Default `none`.
    #[serde(default)]
    pub parity: Parity,
    /// 1 or 2. The specification asks for 2 when parity is none, but most
    /// devices accept 1. Default 1.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// Silence kept on the line between the end of one frame and the start
    /// of the next request, in ms. Default: 3.5 character times at
    /// `baud_rate` (with this framing), at least 2 ms. 0 disables the wait,
    /// for links that frame by themselves (serial servers, ptys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inter_frame_gap_ms: Option<u64>,
    /// Time a unit has to answer one request, in ms. It must cover sending
    /// the longest answer at `baud_rate` (about 266 ms for 125 registers at
    /// 9600 bit/s) plus the unit's own delay. Default 1000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// First retry delay for a unit that did not answer, and for reopening
    /// the port, in ms. Default 1000.
    #[serde(default = "default_backoff_min_ms")]
    pub backoff_min_ms: u64,
    /// Longest retry delay, in ms; delays double from `backoff_min_ms` up to
    /// this, each randomised (jitter). A silent unit costs the bus one
    /// `timeout_ms` per retry. Default 60000.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// The units on this line, at least one.
    #[serde(default)]
    pub devices: Vec<RtuDeviceConfig>,
}

/// One unit (slave) on an RTU bus (a `[[modbus_rtu.devices]]` table).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RtuDeviceConfig {
    /// Device name, unique on the gateway: 1-64 characters from
    /// `[A-Za-z0-9_.-]`. Points are published as `<name>/<point>`.
    pub name: String,
    /// Unit address on the line, 1-247 (0 is broadcast; 248-255 are
    /// reserved), unique on the bus.
    pub unit_id: u8,
    /// Time between the starts of two poll cycles of this unit, in ms. On a
    /// busy line a cycle may start late; it is never queued twice.
    /// Default 1000.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Unused registers (or bits) that a read may span to merge two reads
    /// into one; set 0 for units that answer an exception for unmapped
    /// addresses. Default 8.
    #[serde(default = "default_max_gap")]
    pub max_gap: u16,
    /// Points defined inline, as for Modbus TCP. May be combined with
    /// `points_csv`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<PointConfig>,
    /// CSV point list, relative to the config file's folder; the same format
    /// as for Modbus TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_csv: Option<PathBuf>,
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

impl Parity {
    pub fn as_str(self) -> &'static str {
        match self {
            Parity::None => "none",
            Parity::Even => "even",
            Parity::Odd => "odd",
        }
    }
}

impl FromStr for Parity {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "n" => Ok(Parity::None),
            "even" | "e" => Ok(Parity::Even),
            "odd" | "o" => Ok(Parity::Odd),
            _ => Err(ParseEnumError {
                what: "parity",
                given: s.to_owned(),
                expected: "none, even, odd",
            }),
        }
    }
}

impl TryFrom<String> for Parity {
    type Error = ParseEnumError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Parity> for &'static str {
    fn from(p: Parity) -> &'static str {
        p.as_str()
    }
}

impl fmt::Display for Parity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn default_baud_rate() -> u32 {
    9600
}
fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_backoff_min_ms() -> u64 {
    1000
}
fn default_backoff_max_ms() -> u64 {
    60_000
}
fn default_poll_interval_ms() -> u64 {
    1000
}
fn default_max_gap() -> u16 {
    8
}

/// Highest unit address a request may carry (248-255 are reserved).
pub const MAX_UNIT_ID: u8 = 247;

/// How the serial port is opened and timed; what the driver and the unit
/// scan need from a bus config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSettings {
    pub port: String,
    pub baud_rate: u32,
    pub parity: Parity,
    pub stop_bits: u8,
    /// Silence before each request.
    pub inter_frame_gap: Duration,
}

impl SerialSettings {
    /// 8 data bits, no parity, 1 stop bit, the default gap for `baud_rate`.
    pub fn new(port: impl Into<String>, baud_rate: u32) -> Self {
        SerialSettings {
            port: port.into(),
            baud_rate,
            parity: Parity::None,
            stop_bits: 1,
            inter_frame_gap: default_inter_frame_gap(baud_rate, Parity::None, 1),
        }
    }

    /// Sets parity and stop bits, and the default gap for that framing.
    pub fn with_framing(mut self, parity: Parity, stop_bits: u8) -> Self {
        self.parity = parity;
        self.stop_bits = stop_bits;
        self.inter_frame_gap = default_inter_frame_gap(self.baud_rate, parity, stop_bits);
        self
    }

    /// Bits on the wire per character: start, 8 data, parity, stop.
    pub fn bits_per_char(&self) -> u32 {
        bits_per_char(self.parity, self.stop_bits)
    }

    /// Time to send `bytes` characters at this speed.
    pub fn transmit_time(&self, bytes: usize) -> Duration {
        let bits = u64::try_from(bytes)
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(self.bits_per_char()));
        Duration::from_micros(bits.saturating_mul(1_000_000) / u64::from(self.baud_rate.max(1)))
    }
}

fn bits_per_char(parity: Parity, stop_bits: u8) -> u32 {
    1 + 8 + u32::from(parity != Parity::None) + u32::from(stop_bits)
}

/// 3.5 character times at `baud_rate`, rounded up to whole ms, at least
/// 2 ms (the Modbus specification fixes 1.75 ms above 19200 bit/s; timers
/// and USB adapters are not finer than that anyway).
pub fn default_inter_frame_gap(baud_rate: u32, parity: Parity, stop_bits: u8) -> Duration {
    let bits = u64::from(bits_per_char(parity, stop_bits)) * 35; // x10: 3.5 chars
    let micros = (bits * 100_000).div_ceil(u64::from(baud_rate.max(1)));
    let ms = micros.div_ceil(1000).max(2);
    Duration::from_millis(ms)
}

/// A validated unit, ready to be planned.
#[derive(Debug, Clone, PartialEq)]
pub struct RtuDevice {
    pub name: String,
    pub unit_id: u8,
    pub poll_interval: Duration,
    pub max_gap: u16,
    pub points: Vec<ModbusPoint>,
}

impl ModbusRtuConfig {
    /// A bus with defaults for everything but name and port, and no devices.
    pub fn new(name: impl Into<String>, port: impl Into<String>) -> Self {
        ModbusRtuConfig {
            name: name.into(),
            port: port.into(),
            baud_rate: default_baud_rate(),
            data_bits: default_data_bits(),
            parity: Parity::None,
            stop_bits: default_stop_bits(),
            inter_frame_gap_ms: None,
            timeout_ms: default_timeout_ms(),
            backoff_min_ms: default_backoff_min_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            devices: Vec::new(),
        }
    }

    fn bus_err(&self, field: &'static str, message: impl Into<String>) -> ModbusConfigError {
        ModbusConfigError::BusField {
            bus: self.name.clone(),
            field,
            message: message.into(),
        }
    }

    /// The port settings, with the gap resolved.
    pub fn serial_settings(&self) -> SerialSettings {
        SerialSettings {
            port: self.port.clone(),
            baud_rate: self.baud_rate,
            parity: self.parity,
            stop_bits: self.stop_bits,
            inter_frame_gap: self.inter_frame_gap_ms.map_or_else(
                || default_inter_frame_gap(self.baud_rate, self.parity, self.stop_bits),
                Duration::from_millis,
            ),
        }
    }

    /// Checks the bus settings and every device, returning the devices with
    /// their points validated, in config order. `config_dir` is the folder
    /// `points_csv` paths are relative to.
    pub fn validate(&self, config_dir: &Path) -> Result<Vec<RtuDevice>, ModbusConfigError> {
        validate_name(&self.name).map_err(|source| ModbusConfigError::BusName {
            bus: self.name.clone(),
            source,
        })?;
        if self.port.trim().is_empty() {
            return Err(self.bus_err("port", "is empty; e.g. \"/dev/ttyUSB0\""));
        }
        if !(50..=4_000_000).contains(&self.baud_rate) {
            return Err(self.bus_err(
                "baud_rate",
                format!("{} is outside 50-4000000", self.baud_rate),
            ));
        }
        if self.data_bits != 8 {
            return Err(self.bus_err(
                "data_bits",
                format!("{}: Modbus RTU needs 8 data bits", self.data_bits),
            ));
        }
        if !(1..=2).contains(&self.stop_bits) {
            return Err(self.bus_err("stop_bits", format!("{} is not 1 or 2", self.stop_bits)));
        }
        if self.inter_frame_gap_ms.is_some_and(|g| g > 1000) {
            return Err(self.bus_err("inter_frame_gap_ms", "must be at most 1000"));
        }
        if self.timeout_ms == 0 {
            return Err(self.bus_err("timeout_ms", "must be at least 1"));
        }
        if self.backoff_min_ms == 0 {
            return Err(self.bus_err("backoff_min_ms", "must be at least 1"));
        }
        if self.backoff_max_ms < self.backoff_min_ms {
            return Err(self.bus_err(
                "backoff_max_ms",
                format!("must not be below backoff_min_ms ({})", self.backoff_min_ms),
            ));
        }
        if self.devices.is_empty() {
            return Err(self.bus_err(
                "devices",
                "no devices: add a [[modbus_rtu.devices]] table per unit",
            ));
        }

        let mut names: HashMap<&str, ()> = HashMap::new();
        let mut units: HashMap<u8, &str> = HashMap::new();
        let mut devices = Vec::with_capacity(self.devices.len());
        for d in &self.devices {
            let dev_err = |field: &'static str, message: String| ModbusConfigError::DeviceField {
                device: d.name.clone(),
                field,
                message,
            };
            validate_name(&d.name).map_err(|source| ModbusConfigError::DeviceName {
                device: d.name.clone(),
                source,
            })?;
            if d.name == self.name {
                return Err(dev_err(
                    "name",
                    format!(
                        "the same as its bus {:?}; give the bus its own name",
                        self.name
                    ),
                ));
            }
            if names.insert(&d.name, ()).is_some() {
                return Err(ModbusConfigError::DuplicateDevice {
                    bus: self.name.clone(),
                    device: d.name.clone(),
                });
            }
            if d.unit_id == 0 || d.unit_id > MAX_UNIT_ID {
                return Err(dev_err(
                    "unit_id",
                    format!(
                        "{} is not a unit address: use 1-{MAX_UNIT_ID} (0 is broadcast, 248-255 reserved)",
                        d.unit_id
                    ),
                ));
            }
            if let Some(first) = units.insert(d.unit_id, &d.name) {
                return Err(ModbusConfigError::DuplicateUnit {
                    bus: self.name.clone(),
                    unit_id: d.unit_id,
                    first: first.to_owned(),
                    second: d.name.clone(),
                });
            }
            if d.poll_interval_ms == 0 {
                return Err(dev_err("poll_interval_ms", "must be at least 1".into()));
            }
            let points = load_points(&d.name, &d.points, d.points_csv.as_deref(), config_dir)?;
            devices.push(RtuDevice {
                name: d.name.clone(),
                unit_id: d.unit_id,
                poll_interval: Duration::from_millis(d.poll_interval_ms),
                max_gap: d.max_gap,
                points,
            });
        }
        Ok(devices)
    }
}

impl RtuDeviceConfig {
    /// A unit with default timing and no points.
    pub fn new(name: impl Into<String>, unit_id: u8) -> Self {
        RtuDeviceConfig {
            name: name.into(),
            unit_id,
            poll_interval_ms: default_poll_interval_ms(),
            max_gap: default_max_gap(),
            points: Vec::new(),
            points_csv: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Table;

    fn bus(devices: Vec<RtuDeviceConfig>) -> ModbusRtuConfig {
        let mut c = ModbusRtuConfig::new("rs485-1", "/dev/ttyUSB0");
        c.devices = devices;
        c
    }

    fn unit(name: &str, id: u8) -> RtuDeviceConfig {
        let mut d = RtuDeviceConfig::new(name, id);
        d.points = vec![PointConfig::new("p", Table::Holding, 0)];
        d
    }

    fn err(c: &ModbusRtuConfig) -> String {
        c.validate(Path::new(".")).unwrap_err().to_string()
    }

    #[test]
    fn toml_example_parses_with_defaults() {
        let text = r#"
            name = "rs485-1"
            port = "/dev/ttyUSB0"
            parity = "even"

            [[devices]]
            name = "inv-01"
            unit_id = 1
            points = [{ name = "p", table = "input", address = 2 }]

            [[devices]]
            name = "meter-01"
            unit_id = 7
            poll_interval_ms = 250
            points = [{ name = "limit", table = "holding", address = 40, writable = true }]
        "#;
        let c: ModbusRtuConfig = toml::from_str(text).unwrap();
        assert_eq!((c.baud_rate, c.data_bits, c.stop_bits), (9600, 8, 1));
        assert_eq!(c.parity, Parity::Even);
        assert_eq!(
            (c.timeout_ms, c.backoff_min_ms, c.backoff_max_ms),
            (1000, 1000, 60_000)
        );
        let devices = c.validate(Path::new(".")).unwrap();
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[1].unit_id, 7);
        assert_eq!(devices[1].poll_interval, Duration::from_millis(250));
        assert_eq!(devices[0].poll_interval, Duration::from_secs(1));
        assert!(devices[1].points[0].writable);
        let again: ModbusRtuConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);

        let e = toml::from_str::<ModbusRtuConfig>("name='b'\nport='/dev/x'\nbaud=9600")
            .unwrap_err()
            .to_string();
        assert!(e.contains("baud"), "{e}");
        let e = toml::from_str::<ModbusRtuConfig>("name='b'\nport='/dev/x'\nparity='mark'")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown parity"), "{e}");
    }

    #[test]
    fn bus_example_is_valid() {
        // The example in the doc comment of ModbusRtuConfig, as a gateway
        // config would contain it (the CSV path from the repository root).
        #[derive(Deserialize)]
        struct Doc {
            modbus_rtu: Vec<ModbusRtuConfig>,
        }
        let text = r#"
[[modbus_rtu]]
name = "rs485-1"
port = "/dev/ttyUSB0"
baud_rate = 19200
parity = "even"
timeout_ms = 300

[[modbus_rtu.devices]]
name = "inv-01"
unit_id = 1
poll_interval_ms = 5000
points_csv = "hil/points/solar-inverter.csv"

[[modbus_rtu.devices]]
name = "meter-01"
unit_id = 7
points = [
  { name = "power", table = "holding", address = 12, data_type = "f32" },
  { name = "export_limit", table = "holding", address = 40, scale = 0.1, writable = true },
]
"#;
        let doc: Doc = toml::from_str(text).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let devices = doc.modbus_rtu[0].validate(&root).unwrap();
        assert_eq!(devices[0].points.len(), 26);
        assert_eq!(
            doc.modbus_rtu[0].serial_settings().inter_frame_gap,
            Duration::from_millis(3)
        );
    }

    #[test]
    fn unit_ids_and_names_are_checked() {
        let e = err(&bus(vec![unit("a", 1), unit("b", 1)]));
        assert_eq!(
            e,
            r#"modbus RTU bus "rs485-1": unit id 1 is used by both "a" and "b""#
        );
        let e = err(&bus(vec![unit("a", 1), unit("a", 2)]));
        assert_eq!(
            e,
            r#"modbus RTU bus "rs485-1": device name "a" is used more than once"#
        );
        for bad in [0u8, 248, 255] {
            let e = err(&bus(vec![unit("a", bad)]));
            assert!(
                e.starts_with(r#"modbus device "a": field `unit_id`"#) && e.contains("1-247"),
                "{e}"
            );
        }
        assert!(bus(vec![unit("a", 247)]).validate(Path::new(".")).is_ok());
        let e = err(&bus(vec![unit("rs485-1", 3)]));
        assert!(e.contains("the same as its bus"), "{e}");
        let e = err(&bus(vec![unit("bad name", 3)]));
        assert!(e.contains("invalid name"), "{e}");
        let e = err(&bus(vec![]));
        assert!(e.contains("`devices`") && e.contains("no devices"), "{e}");
        let e = err(&bus(vec![RtuDeviceConfig::new("empty", 4)]));
        assert!(e.contains(r#""empty""#) && e.contains("no points"), "{e}");
        let mut d = unit("a", 1);
        d.points.push(PointConfig::new("p", Table::Input, 1));
        let e = err(&bus(vec![d]));
        assert!(e.contains("defined more than once"), "{e}");
    }

    #[test]
    fn bus_fields_are_checked() {
        let ok = || bus(vec![unit("a", 1)]);
        type Change = Box<dyn Fn(&mut ModbusRtuConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("invalid name", Box::new(|c| c.name = "a b".into())),
            ("`port`", Box::new(|c| c.port = " ".into())),
            ("`baud_rate`", Box::new(|c| c.baud_rate = 0)),
            ("`baud_rate`", Box::new(|c| c.baud_rate = 5_000_000)),
            ("`data_bits`", Box::new(|c| c.data_bits = 7)),
            ("`stop_bits`", Box::new(|c| c.stop_bits = 3)),
            ("`stop_bits`", Box::new(|c| c.stop_bits = 0)),
            (
                "`inter_frame_gap_ms`",
                Box::new(|c| c.inter_frame_gap_ms = Some(5000)),
            ),
            ("`timeout_ms`", Box::new(|c| c.timeout_ms = 0)),
            ("`backoff_min_ms`", Box::new(|c| c.backoff_min_ms = 0)),
            ("`backoff_max_ms`", Box::new(|c| c.backoff_max_ms = 10)),
        ];
        for (want, change) in cases {
            let mut c = ok();
            change(&mut c);
            let e = err(&c);
            assert!(
                e.contains(want) && e.contains("modbus RTU bus"),
                "{want}: {e}"
            );
        }
        let mut c = ok();
        c.devices[0].poll_interval_ms = 0;
        assert!(err(&c).contains("`poll_interval_ms`"));
    }

    #[test]
    fn inter_frame_gap_defaults_to_three_and_a_half_characters() {
        // 8N1 = 10 bits; 3.5 chars at 9600 = 3.65 ms -> 4 ms.
        assert_eq!(
            default_inter_frame_gap(9600, Parity::None, 1),
            Duration::from_millis(4)
        );
        // 8E1 = 11 bits at 1200: 32.08 ms -> 33 ms.
        assert_eq!(
            default_inter_frame_gap(1200, Parity::Even, 1),
            Duration::from_millis(33)
        );
        // Fast lines stay at the 2 ms floor.
        // 8E2 = 12 bits at 19200: 2.19 ms -> 3 ms.
        assert_eq!(
            default_inter_frame_gap(19_200, Parity::Even, 2),
            Duration::from_millis(3)
        );
        for baud in [38_400, 115_200, 4_000_000] {
            assert_eq!(
                default_inter_frame_gap(baud, Parity::Even, 2),
                Duration::from_millis(2),
                "{baud}"
            );
        }
        let mut c = bus(vec![unit("a", 1)]);
        assert_eq!(
            c.serial_settings().inter_frame_gap,
            Duration::from_millis(4)
        );
        c.inter_frame_gap_ms = Some(0);
        assert_eq!(c.serial_settings().inter_frame_gap, Duration::ZERO);
    }

    #[test]
    fn transmit_time() {
        let s = SerialSettings::new("/dev/x", 9600);
        // 255 bytes (125 registers + framing) x 10 bits at 9600 bit/s.
        assert_eq!(s.transmit_time(255), Duration::from_micros(265_625));
        assert_eq!(s.bits_per_char(), 10);
    }
}
