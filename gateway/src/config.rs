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
use dcmms_modbus::ModbusTcpConfig;
use serde::Deserialize;
use std::collections::HashSet;
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
}

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
        let mut names = HashSet::new();
        for (i, d) in c.modbus.iter().enumerate() {
            if !names.insert(d.name.as_str()) {
                return Err(self.invalid(
                    format!("modbus[{i}].name"),
                    format!("device name {:?} is used twice", d.name),
                ));
            }
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

    #[test]
    fn every_example_config_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "toml") {
                let c = LoadedConfig::load(&p).unwrap_or_else(|e| panic!("{e}"));
                for d in &c.config.modbus {
                    let mut r = crate::pipeline::Interner::default();
                    dcmms_modbus::build(d, &c.dir, &mut r).unwrap_or_else(|e| panic!("{e}"));
                }
                n += 1;
            }
        }
        assert!(n >= 1, "no example configs found in {}", dir.display());
    }
}
