//! The `[[dnp3]]` outstation configuration, the config errors of the crate,
//! and the loading of an outstation's points (inline and from a point-map
//! file).
//!
//! The doc comments of [`Dnp3Config`] and [`crate::PointConfig`] are the
//! user's reference for the gateway config file. Validation turns a config
//! into [`Dnp3Point`]s or an error that names the device, the point and the
//! field at fault; it never touches the network.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use dcmms_shared::{validate_name, NameError};
use serde::{Deserialize, Serialize};

use crate::point::{Dnp3Point, PointConfig, PointKind};
use crate::point_map::{load_point_map, PointMapError};

/// One DNP3 outstation reached over TCP (a `[[dnp3]]` table in the gateway
/// config). The gateway is the master.
///
/// ```toml
/// [[dnp3]]
/// name = "rtu-01"
/// address = "192.168.1.40:20000"
/// master_address = 1               # our link address
/// outstation_address = 1024        # the outstation's link address
/// integrity_poll_interval_ms = 300000
/// class1_poll_interval_ms = 5000   # 0 disables a class poll
/// class2_poll_interval_ms = 5000
/// class3_poll_interval_ms = 5000
/// unsolicited = true
/// time_sync = "lan"                # none | lan | non_lan
/// points_file = "points/rtu-01.toml"   # or .csv; e.g. from discovery
/// points = [
///   { name = "breaker_closed", kind = "binary_input", index = 0 },
///   { name = "p_total", kind = "analog_input", index = 3, scale = 0.1 },
///   { name = "breaker", kind = "crob", index = 0, op = "trip_close", writable = true },
/// ]
/// ```
///
/// At every connection the master disables unsolicited reporting, reads
/// classes 1, 2, 3 and 0 (integrity poll), then enables unsolicited
/// reporting if `unsolicited` is set. It repeats the integrity poll after
/// an outstation restart or event-buffer overflow, reads event classes as
/// soon as a response says the outstation holds events of that class, and
/// synchronises the outstation's clock when it asks for it (`time_sync`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dnp3Config {
    /// Device name, unique on the gateway: 1-64 characters from
    /// `[A-Za-z0-9_.-]`. Points are published as `<name>/<point>`.
    pub name: String,
    /// `host:port` of the outstation (DNP3 over TCP usually listens on
    /// 20000), e.g. `192.168.1.40:20000` or `[fe80::1]:20000`. Host names
    /// are resolved at every (re)connect.
    pub address: String,
    /// Our (the master's) link-layer address. Default 1.
    #[serde(default = "default_master_address")]
    pub master_address: u16,
    /// The outstation's link-layer address. Default 1024.
    #[serde(default = "default_outstation_address")]
    pub outstation_address: u16,
    /// Time between periodic integrity polls (classes 1, 2, 3 and 0), in
    /// ms. 0 keeps only the integrity polls at connect, after an outstation
    /// restart and after an event-buffer overflow. Default 300000 (5 min).
    #[serde(default = "default_integrity_ms")]
    pub integrity_poll_interval_ms: u64,
    /// Time between reads of class 1 events, in ms; 0 disables. Classes with
    /// the same interval are read in one request. Default 5000.
    #[serde(default = "default_class_ms")]
    pub class1_poll_interval_ms: u64,
    /// Time between reads of class 2 events, in ms; 0 disables. Default 5000.
    #[serde(default = "default_class_ms")]
    pub class2_poll_interval_ms: u64,
    /// Time between reads of class 3 events, in ms; 0 disables. Default 5000.
    #[serde(default = "default_class_ms")]
    pub class3_poll_interval_ms: u64,
    /// Ask the outstation to report events unsolicited (classes 1-3) after
    /// the startup integrity poll. When false, the master tells it to stop
    /// and relies on polls. Default true.
    #[serde(default = "default_true")]
    pub unsolicited: bool,
    /// Clock synchronisation when the outstation asks for it (IIN1.4
    /// NEED_TIME): `lan` (record current time + write, for Ethernet; the
    /// default), `non_lan` (delay measurement + write) or `none`.
    #[serde(default)]
    pub time_sync: TimeSync,
    /// Time allowed for each response, in ms (1-3600000). Default 5000.
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
    /// Time allowed for the TCP connection, in ms. Default 5000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// First reconnect delay after a failed or lost connection, in ms; also
    /// the first retry delay of failed startup tasks. Default 1000.
    #[serde(default = "default_backoff_min_ms")]
    pub backoff_min_ms: u64,
    /// Longest reconnect delay, in ms; delays double from `backoff_min_ms` up
    /// to this, each randomised (jitter). Default 60000.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Points defined inline. May be combined with `points_file`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<PointConfig>,
    /// Point map, relative to the config file's folder: CSV when the name
    /// ends in `.csv`, otherwise TOML with `[[points]]` tables (what
    /// discovery writes). See [`crate::point_map`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_file: Option<PathBuf>,
}

/// Clock synchronisation procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSync {
    /// Never write the outstation's clock.
    None,
    /// RECORD_CURRENT_TIME then WRITE g50v3 (IEEE 1815 LAN procedure).
    #[default]
    Lan,
    /// DELAY_MEASURE then WRITE g50v1 (IEEE 1815 non-LAN procedure).
    NonLan,
}

fn default_master_address() -> u16 {
    1
}
fn default_outstation_address() -> u16 {
    1024
}
fn default_integrity_ms() -> u64 {
    300_000
}
fn default_class_ms() -> u64 {
    5000
}
fn default_true() -> bool {
    true
}
fn default_response_timeout_ms() -> u64 {
    5000
}
fn default_connect_timeout_ms() -> u64 {
    5000
}
fn default_backoff_min_ms() -> u64 {
    1000
}
fn default_backoff_max_ms() -> u64 {
    60_000
}

/// The shortest non-zero poll interval accepted, in ms.
pub const MIN_POLL_INTERVAL_MS: u64 = 100;
/// The longest response timeout the DNP3 stack accepts, in ms.
pub const MAX_RESPONSE_TIMEOUT_MS: u64 = 3_600_000;

/// Why a DNP3 outstation config was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Dnp3ConfigError {
    #[error("dnp3 device {device:?}: invalid name: {source}")]
    DeviceName { device: String, source: NameError },
    #[error("dnp3 device {device:?}: field `{field}`: {message}")]
    DeviceField {
        device: String,
        field: &'static str,
        message: String,
    },
    #[error("dnp3 device {device:?}, point {point:?}: invalid name: {source}")]
    PointName {
        device: String,
        point: String,
        source: NameError,
    },
    #[error("dnp3 device {device:?}, point {point:?}: field `{field}`: {message}")]
    PointField {
        device: String,
        point: String,
        field: &'static str,
        message: String,
    },
    #[error("dnp3 device {device:?}: point {point:?} is defined more than once")]
    DuplicatePoint { device: String, point: String },
    #[error(
        "dnp3 device {device:?}: {kind} index {index} is used by both {first:?} and {second:?}"
    )]
    DuplicateIndex {
        device: String,
        kind: PointKind,
        index: u16,
        first: String,
        second: String,
    },
    #[error("dnp3 device {device:?}: {source}")]
    PointMap {
        device: String,
        source: PointMapError,
    },
}

impl Dnp3Config {
    /// A config with defaults for everything but name and address.
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Self {
        Dnp3Config {
            name: name.into(),
            address: address.into(),
            master_address: default_master_address(),
            outstation_address: default_outstation_address(),
            integrity_poll_interval_ms: default_integrity_ms(),
            class1_poll_interval_ms: default_class_ms(),
            class2_poll_interval_ms: default_class_ms(),
            class3_poll_interval_ms: default_class_ms(),
            unsolicited: true,
            time_sync: TimeSync::default(),
            response_timeout_ms: default_response_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            backoff_min_ms: default_backoff_min_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            points: Vec::new(),
            points_file: None,
        }
    }

    fn device_err(&self, field: &'static str, message: impl Into<String>) -> Dnp3ConfigError {
        Dnp3ConfigError::DeviceField {
            device: self.name.clone(),
            field,
            message: message.into(),
        }
    }

    /// Checks the connection and polling settings only (not the points);
    /// enough for discovery.
    pub fn validate_link(&self) -> Result<(), Dnp3ConfigError> {
        validate_name(&self.name).map_err(|source| Dnp3ConfigError::DeviceName {
            device: self.name.clone(),
            source,
        })?;
        check_address(&self.address).map_err(|m| self.device_err("address", m))?;
        dnp3::link::EndpointAddress::try_new(self.master_address)
            .map_err(|e| self.device_err("master_address", e.to_string()))?;
        dnp3::link::EndpointAddress::try_new(self.outstation_address)
            .map_err(|e| self.device_err("outstation_address", e.to_string()))?;
        if self.master_address == self.outstation_address {
            return Err(self.device_err("outstation_address", "must differ from master_address"));
        }
        for (field, v) in [
            (
                "integrity_poll_interval_ms",
                self.integrity_poll_interval_ms,
            ),
            ("class1_poll_interval_ms", self.class1_poll_interval_ms),
            ("class2_poll_interval_ms", self.class2_poll_interval_ms),
            ("class3_poll_interval_ms", self.class3_poll_interval_ms),
        ] {
            if v != 0 && v < MIN_POLL_INTERVAL_MS {
                return Err(self.device_err(
                    field,
                    format!("must be 0 (off) or at least {MIN_POLL_INTERVAL_MS}"),
                ));
            }
        }
        if !(1..=MAX_RESPONSE_TIMEOUT_MS).contains(&self.response_timeout_ms) {
            return Err(self.device_err(
                "response_timeout_ms",
                format!("must be 1-{MAX_RESPONSE_TIMEOUT_MS}"),
            ));
        }
        if self.connect_timeout_ms == 0 {
            return Err(self.device_err("connect_timeout_ms", "must be at least 1"));
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
        Ok(())
    }

    /// Checks the device settings and returns every point (point-map file
    /// first, then inline points) validated. `config_dir` is the folder
    /// that `points_file` is relative to.
    pub fn validate(&self, config_dir: &Path) -> Result<Vec<Dnp3Point>, Dnp3ConfigError> {
        self.validate_link()?;
        let mut configs = Vec::new();
        if let Some(rel) = &self.points_file {
            configs = load_point_map(&config_dir.join(rel)).map_err(|source| {
                Dnp3ConfigError::PointMap {
                    device: self.name.clone(),
                    source,
                }
            })?;
        }
        configs.extend(self.points.iter().cloned());
        if configs.is_empty() {
            return Err(self.device_err("points", "no points: set `points` or `points_file`"));
        }
        let mut names = HashSet::new();
        let mut indexes: HashMap<(PointKind, u16), String> = HashMap::new();
        let mut points = Vec::with_capacity(configs.len());
        for pc in &configs {
            let p = pc.validate(&self.name)?;
            if !names.insert(p.name.clone()) {
                return Err(Dnp3ConfigError::DuplicatePoint {
                    device: self.name.clone(),
                    point: p.name,
                });
            }
            if let Some(first) = indexes.insert((p.kind, p.index), p.name.clone()) {
                return Err(Dnp3ConfigError::DuplicateIndex {
                    device: self.name.clone(),
                    kind: p.kind,
                    index: p.index,
                    first,
                    second: p.name,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(points: Vec<PointConfig>) -> Dnp3Config {
        let mut c = Dnp3Config::new("rtu-01", "127.0.0.1:20000");
        c.points = points;
        c
    }

    fn err(c: &Dnp3Config) -> String {
        c.validate(Path::new(".")).unwrap_err().to_string()
    }

    #[test]
    fn toml_defaults_and_unknown_fields() {
        let c: Dnp3Config = toml::from_str(
            r#"
            name = "rtu"
            address = "10.0.0.5:20000"
            time_sync = "non_lan"
            class2_poll_interval_ms = 0
            points = [
              { name = "brk", kind = "crob", index = 2, op = "trip_close", writable = true },
              { name = "p", kind = "analog_input", index = 0, scale = 0.1 },
            ]
            "#,
        )
        .unwrap();
        assert_eq!((c.master_address, c.outstation_address), (1, 1024));
        assert_eq!(c.integrity_poll_interval_ms, 300_000);
        assert_eq!(c.class1_poll_interval_ms, 5000);
        assert_eq!(c.class2_poll_interval_ms, 0);
        assert!(c.unsolicited);
        assert_eq!(c.time_sync, TimeSync::NonLan);
        let p = c.validate(Path::new(".")).unwrap();
        assert_eq!(p.len(), 2);
        assert!(p[0].writable);
        let again: Dnp3Config = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);

        let e = toml::from_str::<Dnp3Config>("name='a'\naddress='h:1'\npoll_ms=5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("poll_ms"), "{e}");
        let e = toml::from_str::<Dnp3Config>("name='a'\naddress='h:1'\ntime_sync='gps'")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gps"), "{e}");
    }

    /// The example of README.md (without its points_file), kept valid.
    #[test]
    fn readme_example_is_valid() {
        #[derive(Deserialize)]
        struct File {
            dnp3: Vec<Dnp3Config>,
        }
        let f: File = toml::from_str(
            r#"
            [[dnp3]]
            name = "rtu-01"
            address = "192.168.1.40:20000"
            master_address = 1
            outstation_address = 1024
            integrity_poll_interval_ms = 300000
            class1_poll_interval_ms = 5000
            class2_poll_interval_ms = 5000
            class3_poll_interval_ms = 5000
            unsolicited = true
            time_sync = "lan"
            response_timeout_ms = 5000
            connect_timeout_ms = 5000
            backoff_min_ms = 1000
            backoff_max_ms = 60000
            points = [
              { name = "breaker_closed", kind = "binary_input", index = 0 },
              { name = "breaker_pos", kind = "double_bit_binary_input", index = 0 },
              { name = "p_total", kind = "analog_input", index = 3, scale = 0.1 },
              { name = "energy_kwh", kind = "counter", index = 0 },
              { name = "energy_frozen", kind = "frozen_counter", index = 0 },
              { name = "relay_state", kind = "binary_output_status", index = 0 },
              { name = "p_limit_now", kind = "analog_output_status", index = 1, scale = 0.1 },
              { name = "breaker", kind = "crob", index = 0, op = "trip_close", writable = true },
              { name = "reset", kind = "crob", index = 5, op = "pulse_on", on_time_ms = 500, mode = "direct_operate", writable = true },
              { name = "p_limit", kind = "analog_output", index = 1, variation = "f32", scale = 0.1, writable = true },
            ]
            "#,
        )
        .unwrap();
        let points = f.dnp3[0].validate(Path::new(".")).unwrap();
        assert_eq!(points.len(), 10);
        assert_eq!(points.iter().filter(|p| p.writable).count(), 3);
    }

    #[test]
    fn device_fields_are_checked() {
        let p = vec![PointConfig::new("a", PointKind::AnalogInput, 0)];
        for bad in ["nohost", ":20000", "h:0", "::1:20000"] {
            let mut c = dev(p.clone());
            c.address = bad.into();
            assert!(err(&c).contains("`address`"), "{bad}");
        }
        let mut c = dev(p.clone());
        c.outstation_address = 0xFFFF;
        assert!(err(&c).contains("`outstation_address`"), "{}", err(&c));
        let mut c = dev(p.clone());
        c.master_address = 1024;
        assert!(err(&c).contains("must differ"));
        let mut c = dev(p.clone());
        c.class3_poll_interval_ms = 20;
        assert!(err(&c).contains("`class3_poll_interval_ms`"));
        let mut c = dev(p.clone());
        c.response_timeout_ms = 0;
        assert!(err(&c).contains("`response_timeout_ms`"));
        let mut c = dev(p.clone());
        c.backoff_max_ms = 10;
        assert!(err(&c).contains("`backoff_max_ms`"));
        assert!(err(&dev(vec![])).contains("no points"));
        let mut c = dev(p);
        c.name = "bad name".into();
        assert!(err(&c).contains("invalid name"));
    }

    #[test]
    fn duplicates_are_refused() {
        let e = err(&dev(vec![
            PointConfig::new("a", PointKind::AnalogInput, 0),
            PointConfig::new("a", PointKind::Counter, 0),
        ]));
        assert!(e.contains(r#"point "a" is defined more than once"#), "{e}");
        let e = err(&dev(vec![
            PointConfig::new("a", PointKind::AnalogInput, 3),
            PointConfig::new("b", PointKind::AnalogInput, 3),
        ]));
        assert_eq!(
            e,
            r#"dnp3 device "rtu-01": analog_input index 3 is used by both "a" and "b""#
        );
        // The same index in two kinds is two different points.
        assert!(dev(vec![
            PointConfig::new("a", PointKind::BinaryOutputStatus, 3),
            PointConfig::new("b", PointKind::Crob, 3),
        ])
        .validate(Path::new("."))
        .is_ok());
    }

    #[test]
    fn points_file_errors_name_the_device() {
        let mut c = dev(vec![]);
        c.points_file = Some("missing.csv".into());
        let e = err(&c);
        assert!(e.contains("rtu-01") && e.contains("missing.csv"), "{e}");
    }
}
