//! Gateway configuration: the TOML file given with `--config`.
//!
//! The doc comments of these structs are the configuration reference; the
//! annotated example `gateway/examples/gateway.toml` mirrors them and is
//! validated by a test. Relative paths are relative to the config file's
//! folder.

use crate::commands::CommandsConfig;
use crate::ring::{
    FullPolicy, RingConfig, DEFAULT_CACHE_BYTES, DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES,
};
use dcmms_iec61850::Iec61850Config;
use dcmms_modbus::{ModbusRtuConfig, ModbusTcpConfig};
use dcmms_opcua::OpcUaConfig;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Top level of `gateway.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Site this gateway belongs to (`[A-Za-z0-9_.-]`, at most 64 characters).
    pub site: String,
    /// Name of this gateway within its site; together with `site` it must match
    /// the certificate bundle issued by `dcmms-hub enroll`.
    pub gateway: String,
    /// Folder for the ring buffer and other state. Default: `state`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default)]
    pub buffer: BufferConfig,
    pub uplink: UplinkConfig,
    #[serde(default)]
    pub http: HttpConfig,
    /// Who may send commands to writable points (off by default).
    #[serde(default)]
    pub commands: CommandsConfig,
    /// Modbus TCP devices, one `[[modbus]]` table each.
    #[serde(default)]
    pub modbus: Vec<ModbusTcpConfig>,
    /// Modbus RTU serial lines, one `[[modbus_rtu]]` table each with a
    /// `[[modbus_rtu.devices]]` table per unit on the line.
    #[serde(default)]
    pub modbus_rtu: Vec<ModbusRtuConfig>,
    /// IEC 61850 IEDs over MMS, one `[[iec61850]]` table each.
    #[serde(default)]
    pub iec61850: Vec<Iec61850Config>,
    /// OPC UA servers, one `[[opcua]]` table each.
    #[serde(default)]
    pub opcua: Vec<OpcUaConfig>,
    /// DNP3 outstations over TCP, one `[[dnp3]]` table each. Only in a
    /// gateway built with the `dnp3` feature (see README, Licensing).
    #[serde(default)]
    pub dnp3: Vec<Dnp3Table>,
}

/// A `[[dnp3]]` table.
#[cfg(feature = "dnp3")]
pub type Dnp3Table = dcmms_dnp3::Dnp3Config;
/// A `[[dnp3]]` table in a gateway built without DNP3: read only to refuse
/// it with an explanation instead of "unknown field".
#[cfg(not(feature = "dnp3"))]
pub type Dnp3Table = toml::Table;

/// Why a `[[dnp3]]` table is refused by a gateway built without DNP3.
pub const NO_DNP3: &str = "this gateway was built without DNP3 support: the DNP3 driver uses a \
    library licensed for non-commercial, non-production use only, so it is left out unless \
    the gateway is built with `--features dnp3` (see README, Licensing)";

/// `[buffer]`: the local ring buffer that holds every sample until the hub
/// acknowledged it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Upper bound on buffered block bytes. Default 512 MiB: about 40 hours of
    /// 5,000 points polled every 5 s.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Blocks older than this many hours are dropped (and counted). Default 168 (7 days).
    #[serde(default = "default_max_age_hours")]
    pub max_age_hours: u64,
    /// How often samples are committed to disk as one block, in ms. Default
    /// 250: a sample waits at most this long before it can go to the hub.
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// A block is committed early once it holds this many samples. Default 100000.
    #[serde(default = "default_max_block_samples")]
    pub max_block_samples: usize,
    /// What goes first when the buffer is full: `drop-telemetry-first`
    /// (default: routine telemetry before alarms and events) or `drop-oldest`.
    #[serde(default)]
    pub full_policy: FullPolicy,
    /// Page cache of the buffer database in bytes. Default 4 MiB.
    #[serde(default = "default_cache_bytes")]
    pub cache_bytes: usize,
}

/// `[uplink]`: MQTT over mutual TLS to the hub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// Hub broker host name or address.
    pub host: String,
    /// Hub broker TLS port. Default 8883.
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// Folder with `ca.pem`, `cert.pem` and `key.pem` written by `dcmms-hub enroll`.
    pub bundle_dir: PathBuf,
    /// Name checked against the hub's certificate. Default: `host`.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Blocks sent but not yet acknowledged by the hub, at most. Default 16.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// A block not acknowledged after this many ms is sent again. Default 30000.
    #[serde(default = "default_resend_after_ms")]
    pub resend_after_ms: u64,
    /// MQTT keep-alive in seconds. Default 30.
    #[serde(default = "default_keep_alive_s")]
    pub keep_alive_s: u64,
    /// Gateway status is published this often, in seconds. Default 10.
    #[serde(default = "default_status_interval_s")]
    pub status_interval_s: u64,
    /// Reconnect backoff bounds in ms (exponential with full jitter). Defaults 500 and 30000.
    #[serde(default = "default_backoff_min_ms")]
    pub backoff_min_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
}

/// `[http]`: health, status and Prometheus metrics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address. Default 127.0.0.1:9100.
    #[serde(default = "default_http_listen")]
    pub listen: SocketAddr,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("state")
}
fn default_max_bytes() -> u64 {
    DEFAULT_MAX_BYTES
}
fn default_max_age_hours() -> u64 {
    DEFAULT_MAX_AGE.as_secs() / 3600
}
fn default_commit_interval_ms() -> u64 {
    250
}
fn default_max_block_samples() -> usize {
    100_000
}
fn default_cache_bytes() -> usize {
    DEFAULT_CACHE_BYTES
}
fn default_mqtt_port() -> u16 {
    8883
}
fn default_max_in_flight() -> usize {
    16
}
fn default_resend_after_ms() -> u64 {
    30_000
}
fn default_keep_alive_s() -> u64 {
    30
}
fn default_status_interval_s() -> u64 {
    10
}
fn default_backoff_min_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9100))
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            max_bytes: default_max_bytes(),
            max_age_hours: default_max_age_hours(),
            commit_interval_ms: default_commit_interval_ms(),
            max_block_samples: default_max_block_samples(),
            full_policy: FullPolicy::default(),
            cache_bytes: default_cache_bytes(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http_listen(),
        }
    }
}

/// A configuration that could not be used, naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// A loaded, validated configuration plus the folder its paths are relative to.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub config: GatewayConfig,
}

impl LoadedConfig {
    pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<LoadedConfig, ConfigError> {
        let config: GatewayConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let loaded = LoadedConfig {
            path: path.to_owned(),
            dir,
            config,
        };
        loaded.validate()?;
        Ok(loaded)
    }

    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        dcmms_shared::validate_name(&c.site).map_err(|e| self.invalid("site", e.to_string()))?;
        dcmms_shared::validate_name(&c.gateway)
            .map_err(|e| self.invalid("gateway", e.to_string()))?;
        if c.buffer.max_bytes < 4096 {
            return Err(self.invalid("buffer.max_bytes", "must be at least 4096"));
        }
        if c.buffer.commit_interval_ms == 0 || c.buffer.commit_interval_ms > 60_000 {
            return Err(self.invalid("buffer.commit_interval_ms", "must be between 1 and 60000"));
        }
        if c.buffer.max_block_samples == 0
            || c.buffer.max_block_samples > dcmms_shared::block::MAX_SAMPLES
        {
            return Err(self.invalid(
                "buffer.max_block_samples",
                format!("must be between 1 and {}", dcmms_shared::block::MAX_SAMPLES),
            ));
        }
        if c.buffer.max_age_hours == 0 {
            return Err(self.invalid("buffer.max_age_hours", "must be at least 1"));
        }
        if c.uplink.host.is_empty() {
            return Err(self.invalid("uplink.host", "must not be empty"));
        }
        if c.uplink.max_in_flight == 0 || c.uplink.max_in_flight > 1000 {
            return Err(self.invalid("uplink.max_in_flight", "must be between 1 and 1000"));
        }
        if c.uplink.backoff_min_ms == 0 || c.uplink.backoff_min_ms > c.uplink.backoff_max_ms {
            return Err(self.invalid(
                "uplink.backoff_min_ms",
                "must be at least 1 and not above uplink.backoff_max_ms",
            ));
        }
        if c.uplink.keep_alive_s < 5 {
            return Err(self.invalid("uplink.keep_alive_s", "must be at least 5"));
        }
        c.commands
            .validate()
            .map_err(|(field, msg)| self.invalid(field, msg))?;
        #[cfg(not(feature = "dnp3"))]
        if !c.dnp3.is_empty() {
            return Err(self.invalid("dnp3", NO_DNP3));
        }
        // Device names are unique across every protocol: they name the
        // points (`device/point`), the status rows and the command targets.
        let mut names: HashMap<String, String> = HashMap::new();
        let mut claim = |name: &str, key: String| -> Result<(), ConfigError> {
            match names.get(name) {
                Some(first) => Err(self.invalid(
                    key,
                    format!("device name {name:?} is already used by {first}"),
                )),
                None => {
                    names.insert(name.to_owned(), key);
                    Ok(())
                }
            }
        };
        for (i, d) in c.modbus.iter().enumerate() {
            claim(&d.name, format!("modbus[{i}].name"))?;
        }
        for (i, bus) in c.modbus_rtu.iter().enumerate() {
            for (j, d) in bus.devices.iter().enumerate() {
                claim(&d.name, format!("modbus_rtu[{i}].devices[{j}].name"))?;
            }
        }
        for (i, d) in c.iec61850.iter().enumerate() {
            claim(&d.name, format!("iec61850[{i}].name"))?;
        }
        for (i, d) in c.opcua.iter().enumerate() {
            claim(&d.name, format!("opcua[{i}].name"))?;
        }
        #[cfg(feature = "dnp3")]
        for (i, d) in c.dnp3.iter().enumerate() {
            claim(&d.name, format!("dnp3[{i}].name"))?;
        }
        Ok(())
    }

    /// Resolves a configured path against the config file's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.dir.join(p)
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.resolve(&self.config.state_dir)
    }

    pub fn ring_config(&self) -> RingConfig {
        let b = &self.config.buffer;
        RingConfig {
            path: self.state_dir().join("buffer.redb"),
            max_bytes: b.max_bytes,
            max_age: Duration::from_secs(b.max_age_hours * 3600),
            full_policy: b.full_policy,
            cache_bytes: b.cache_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const MIN: &str = r#"
site = "s1"
gateway = "g1"
[uplink]
host = "localhost"
bundle_dir = "certs"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = LoadedConfig::parse(Path::new("/etc/dcmms/gateway.toml"), MIN).unwrap();
        assert_eq!(c.config.buffer.commit_interval_ms, 250);
        assert_eq!(c.config.uplink.port, 8883);
        assert_eq!(c.state_dir(), PathBuf::from("/etc/dcmms/state"));
        assert_eq!(
            c.ring_config().path,
            PathBuf::from("/etc/dcmms/state/buffer.redb")
        );
    }

    #[test]
    fn errors_name_file_and_key() {
        let bad = MIN.replace("s1", "s 1");
        let e = LoadedConfig::parse(Path::new("gw.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gw.toml") && e.contains("`site`"), "{e}");

        let bad = format!("{MIN}\n[buffer]\ncommit_interval_ms = 0\n");
        let e = LoadedConfig::parse(Path::new("gw.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("buffer.commit_interval_ms"), "{e}");

        let bad = format!("{MIN}\nbogus_key = 1\n");
        let e = LoadedConfig::parse(Path::new("gw.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gw.toml") && e.contains("bogus_key"), "{e}");
    }

    const RTU_AND_IEC: &str = r#"
[[modbus]]
name = "inv-01"
address = "127.0.0.1:5020"
points = [{ name = "p", table = "holding", address = 0 }]
[[modbus_rtu]]
name = "line-1"
port = "/dev/ttyUSB0"
[[modbus_rtu.devices]]
name = "meter-01"
unit_id = 7
points = [{ name = "p", table = "holding", address = 0 }]
[[modbus_rtu.devices]]
name = "meter-02"
unit_id = 8
points = [{ name = "p", table = "holding", address = 0, writable = true }]
[[iec61850]]
name = "bay-01"
address = "127.0.0.1:10102"
ied_name = "IED1"
points = [{ name = "p", reference = "LD0/MMXU1.TotW.mag.f", fc = "MX" }]
[[opcua]]
name = "plc-01"
endpoint = "opc.tcp://127.0.0.1:4840/"
points = [{ name = "p", node_id = "ns=2;s=Plant.P", writable = true, data_type = "double" }]
"#;

    #[test]
    fn every_protocol_section_builds_one_row_per_device() {
        let text = format!("{MIN}{RTU_AND_IEC}");
        let c = LoadedConfig::parse(Path::new("gw.toml"), &text).unwrap();
        let mut r = crate::pipeline::Interner::default();
        let built = crate::daemon::build_all(&c, &mut r).unwrap();
        // The RTU line runs as one driver but shows one row per unit.
        assert_eq!(built.drivers.len(), 4);
        let rows: Vec<_> = built
            .devices
            .iter()
            .map(|d| (d.name.as_str(), d.protocol, d.commands.is_some()))
            .collect();
        assert_eq!(
            rows,
            [
                ("inv-01", "modbus_tcp", false),
                ("meter-01", "modbus_rtu", false),
                ("meter-02", "modbus_rtu", true),
                ("bay-01", "iec61850", false),
                ("plc-01", "opcua", true),
            ]
        );
        assert_eq!(r.len(), 5, "one point per device");
    }

    #[test]
    fn device_names_are_unique_across_protocols() {
        for (from, to, key, first) in [
            (
                "name = \"bay-01\"",
                "name = \"inv-01\"",
                "iec61850[0].name",
                "modbus[0].name",
            ),
            (
                "name = \"plc-01\"",
                "name = \"bay-01\"",
                "opcua[0].name",
                "iec61850[0].name",
            ),
            (
                "name = \"meter-02\"",
                "name = \"meter-01\"",
                "modbus_rtu[0].devices[1].name",
                "modbus_rtu[0].devices[0].name",
            ),
            (
                "name = \"meter-01\"",
                "name = \"inv-01\"",
                "modbus_rtu[0].devices[0].name",
                "modbus[0].name",
            ),
        ] {
            let text = format!("{MIN}{}", RTU_AND_IEC.replacen(from, to, 1));
            let e = LoadedConfig::parse(Path::new("gw.toml"), &text)
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains(first), "{key}: {e}");
        }
    }

    #[test]
    fn protocol_errors_name_the_device() {
        let text = format!("{MIN}{}", RTU_AND_IEC.replace("unit_id = 8", "unit_id = 7"));
        let c = LoadedConfig::parse(Path::new("gw.toml"), &text).unwrap();
        let mut r = crate::pipeline::Interner::default();
        let e = format!("{:#}", crate::daemon::build_all(&c, &mut r).unwrap_err());
        assert!(e.contains("gw.toml") && e.contains("line-1"), "{e}");
        assert!(e.contains("unit"), "{e}");

        let text = format!(
            "{MIN}{}",
            RTU_AND_IEC.replace("LD0/MMXU1.TotW.mag.f", "nonsense")
        );
        let c = LoadedConfig::parse(Path::new("gw.toml"), &text).unwrap();
        let e = format!("{:#}", crate::daemon::build_all(&c, &mut r).unwrap_err());
        assert!(e.contains("bay-01"), "{e}");
    }

    const DNP3: &str = r#"
[[dnp3]]
name = "rtu-01"
address = "127.0.0.1:20000"
points = [{ name = "p", kind = "analog_input", index = 3 }]
"#;

    #[cfg(not(feature = "dnp3"))]
    #[test]
    fn dnp3_without_the_feature_is_refused_with_the_reason() {
        let e = LoadedConfig::parse(Path::new("gw.toml"), &format!("{MIN}{DNP3}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`dnp3`") && e.contains("--features dnp3"), "{e}");
        assert!(e.contains("non-commercial"), "{e}");
    }

    #[cfg(feature = "dnp3")]
    #[test]
    fn dnp3_with_the_feature_builds() {
        let text = format!("{MIN}{RTU_AND_IEC}{}", DNP3);
        let c = LoadedConfig::parse(Path::new("gw.toml"), &text).unwrap();
        let mut r = crate::pipeline::Interner::default();
        let built = crate::daemon::build_all(&c, &mut r).unwrap();
        assert!(built
            .devices
            .iter()
            .any(|d| d.name == "rtu-01" && d.protocol == "dnp3"));
        let dup = format!("{MIN}{RTU_AND_IEC}{}", DNP3.replace("rtu-01", "bay-01"));
        let e = LoadedConfig::parse(Path::new("gw.toml"), &dup)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dnp3[0].name") && e.contains("iec61850[0].name"),
            "{e}"
        );
    }

    #[test]
    fn every_example_config_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "toml") {
                let c = LoadedConfig::load(&p).unwrap_or_else(|e| panic!("{e}"));
                let mut r = crate::pipeline::Interner::default();
                let built =
                    crate::daemon::build_all(&c, &mut r).unwrap_or_else(|e| panic!("{e:#}"));
                // Every protocol section of the example is there and built.
                let protocols: HashSet<_> = built.devices.iter().map(|d| d.protocol).collect();
                for p in ["modbus_tcp", "modbus_rtu", "iec61850", "opcua"] {
                    assert!(protocols.contains(p), "the example has no {p} device");
                }
                n += 1;
            }
        }
        assert!(n >= 1, "no example configs found in {}", dir.display());
    }
}
