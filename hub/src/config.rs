//! The hub's configuration file: structure, defaults and validation.
//!
//! The doc comments of these structs are the user's reference; the annotated
//! file printed by `dcmms-hub generate-config` is `examples/hub.toml`, which a
//! test keeps in step with [`Config::default`]. Every error names the file and
//! the key at fault. Nothing here touches the network or the state folder.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The annotated default configuration (`dcmms-hub generate-config`).
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../examples/hub.toml");

/// Top level of `hub.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Folder holding the hub's certificate authority (`ca/`), the broker's
    /// TLS certificate (`broker/`) and, by default, the SQLite database.
    /// Created on first start with mode 0700. A relative path is relative to
    /// the folder of the configuration file.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub broker: BrokerConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub cmms: CmmsConfig,
}

/// Where telemetry, point catalogs and gateway status are stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (embedded; a relative PATH is inside `state_dir`) or
    /// `postgres://user@host:port/db`. SQLite runs in WAL mode with
    /// `synchronous=NORMAL`; in-memory SQLite is refused because every pooled
    /// connection would see its own database.
    #[serde(default = "default_db_url")]
    pub url: String,
    /// Upper bound on pooled connections (ingest uses one, the API the rest).
    #[serde(default = "default_db_connections")]
    pub max_connections: u32,
}

/// The embedded MQTT broker that gateways connect to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// Address of the MQTT 3.1.1 listener. Always TLS; every client must
    /// present a certificate issued by `dcmms-hub enroll`. Port 0 picks a
    /// free port (see the ready file).
    #[serde(default = "default_broker_listen")]
    pub listen: SocketAddr,
    /// DNS names and IP addresses put in the broker's server certificate;
    /// gateways must reach the hub by one of them. The certificate is
    /// re-issued at start when this list changes.
    #[serde(default = "default_hostnames")]
    pub hostnames: Vec<String>,
    /// Size of one in-memory segment of the broker's per-topic-filter log,
    /// in bytes (at least 1024). rumqttd's own default is 100 MiB.
    #[serde(default = "default_segment_size")]
    pub max_segment_size: usize,
    /// Segments kept per topic filter; memory per filter is bounded by
    /// `max_segment_size * max_segment_count`. Older segments are dropped,
    /// which a lagging reader sees as lost messages (gateways resend what
    /// the hub did not acknowledge).
    #[serde(default = "default_segment_count")]
    pub max_segment_count: usize,
    /// Largest MQTT payload accepted, in bytes; a client sending more is
    /// disconnected. At most 16 MiB (the wire protocol's limit).
    #[serde(default = "default_payload_size")]
    pub max_payload_size: usize,
    /// Most concurrent client connections, handshakes included; more are
    /// dropped at once and counted.
    #[serde(default = "default_broker_connections")]
    pub max_connections: usize,
    /// Time a client has to complete the TLS handshake, and then again to
    /// send MQTT CONNECT, in milliseconds (at most 65535). Slower clients
    /// are dropped and counted.
    #[serde(default = "default_connect_timeout")]
    pub connection_timeout_ms: u16,
    /// QoS 1 messages in flight per client before the broker waits for acks.
    #[serde(default = "default_inflight")]
    pub max_inflight_count: usize,
}

/// The REST API (`/api/v1`, `/health`, `/metrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address. Plain HTTP: put it on loopback behind a TLS reverse
    /// proxy when users reach it over a network (bearer tokens and
    /// passwords travel in every request). `/health` and `/metrics` answer
    /// without authentication. Port 0 picks a free port.
    #[serde(default = "default_api_listen")]
    pub listen: SocketAddr,
    /// Lifetime of a bearer token from login, in hours (1..=8760).
    #[serde(default = "default_token_ttl")]
    pub token_ttl_hours: u32,
}

/// How received messages are written to the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Most messages written in one database transaction. When messages
    /// queue up (a gateway draining its backlog), batching them raises
    /// throughput; each message is still acknowledged only after commit.
    #[serde(default = "default_batch")]
    pub max_batch_messages: usize,
    /// Messages queued between the broker and the database writer. When
    /// full, the hub stops reading from the broker, whose bounded log then
    /// absorbs (and at worst drops) the excess.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
}

/// Maintenance (CMMS) background work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmmsConfig {
    /// Seconds between runs of the preventive-maintenance scheduler, which
    /// turns due occurrences of PM plans (calendar dates reached, meter
    /// readings past a multiple or a threshold) into work orders; 0
    /// disables it (plans then generate only through
    /// `POST /api/v1/pm-plans/{id}/generate`). At most 86400.
    #[serde(default = "default_pm_interval")]
    pub pm_interval_s: u32,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/dcmms-hub")
}
fn default_db_url() -> String {
    "sqlite://hub.db".to_owned()
}
fn default_db_connections() -> u32 {
    8
}
fn default_broker_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8883))
}
fn default_hostnames() -> Vec<String> {
    vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
}
fn default_segment_size() -> usize {
    1024 * 1024
}
fn default_segment_count() -> usize {
    10
}
fn default_payload_size() -> usize {
    4 * 1024 * 1024
}
fn default_broker_connections() -> usize {
    10_000
}
fn default_connect_timeout() -> u16 {
    10_000
}
fn default_inflight() -> usize {
    100
}
fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_token_ttl() -> u32 {
    crate::auth::DEFAULT_TOKEN_TTL_HOURS
}
fn default_batch() -> usize {
    256
}
fn default_queue() -> usize {
    4096
}
fn default_pm_interval() -> u32 {
    300
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: default_state_dir(),
            database: DatabaseConfig::default(),
            broker: BrokerConfig::default(),
            api: ApiConfig::default(),
            ingest: IngestConfig::default(),
            cmms: CmmsConfig::default(),
        }
    }
}

impl Default for CmmsConfig {
    fn default() -> Self {
        CmmsConfig {
            pm_interval_s: default_pm_interval(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: default_db_url(),
            max_connections: default_db_connections(),
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: default_broker_listen(),
            hostnames: default_hostnames(),
            max_segment_size: default_segment_size(),
            max_segment_count: default_segment_count(),
            max_payload_size: default_payload_size(),
            max_connections: default_broker_connections(),
            connection_timeout_ms: default_connect_timeout(),
            max_inflight_count: default_inflight(),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: default_api_listen(),
            token_ttl_hours: default_token_ttl(),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_batch_messages: default_batch(),
            queue_capacity: default_queue(),
        }
    }
}

/// Where a configuration came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source(pub String);

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A configuration that cannot be used; every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{file}: cannot read")]
    Read {
        file: Source,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: Source, message: String },
    #[error("{file}: key `{key}`: {message}")]
    Invalid {
        file: Source,
        key: &'static str,
        message: String,
    },
}

/// Where the database lives, once the URL is understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// SQLite file (absolute once resolved against the state folder).
    Sqlite(PathBuf),
    /// PostgreSQL connection URL, passed to the driver as is.
    Postgres(String),
}

impl DatabaseConfig {
    /// Interprets `url`; a relative SQLite path is joined to `state_dir`.
    pub fn location(&self, state_dir: &Path) -> Result<DatabaseLocation, String> {
        let url = self.url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseLocation::Postgres(url.to_owned()));
        }
        let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        else {
            return Err(format!(
                "{url:?} is neither sqlite://PATH nor postgres://..."
            ));
        };
        if path.is_empty() {
            return Err("the SQLite URL has no file path".to_owned());
        }
        if path.contains(":memory:") || path.contains("mode=memory") {
            return Err(
                "in-memory SQLite is not supported (each pooled connection would get its own database); use a file"
                    .to_owned(),
            );
        }
        if path.contains('?') {
            return Err("SQLite URL options are not supported; give a plain file path".to_owned());
        }
        let path = Path::new(path);
        Ok(DatabaseLocation::Sqlite(if path.is_absolute() {
            path.to_owned()
        } else {
            state_dir.join(path)
        }))
    }
}

impl Config {
    /// Reads, parses and validates a configuration file, and resolves a
    /// relative `state_dir` against the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = Source(path.display().to_string());
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let mut config = Config::parse(&text, &file)?;
        if config.state_dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            let base = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base
            };
            config.state_dir = base.join(&config.state_dir);
        }
        // Absolute, so that logs and the ready file name usable paths.
        if let Ok(abs) = std::path::absolute(&config.state_dir) {
            config.state_dir = abs;
        }
        Ok(config)
    }

    /// Parses and validates configuration text; `file` names it in errors.
    /// A relative `state_dir` is left as is.
    pub fn parse(text: &str, file: &Source) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.clone(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate(file)?;
        Ok(config)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self, file: &Source) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: String| ConfigError::Invalid {
            file: file.clone(),
            key,
            message,
        };
        if self.state_dir.as_os_str().is_empty() {
            return Err(bad("state_dir", "must not be empty".into()));
        }
        self.database
            .location(&self.state_dir)
            .map_err(|m| bad("database.url", m))?;
        if self.database.max_connections == 0 {
            return Err(bad("database.max_connections", "must be at least 1".into()));
        }
        let b = &self.broker;
        if b.hostnames.is_empty() {
            return Err(bad(
                "broker.hostnames",
                "must list at least one DNS name or IP address".into(),
            ));
        }
        for h in &b.hostnames {
            if h.parse::<std::net::IpAddr>().is_err() && !is_dns_name(h) {
                return Err(bad(
                    "broker.hostnames",
                    format!("{h:?} is neither an IP address nor a DNS name"),
                ));
            }
        }
        if !(1024..=1 << 30).contains(&b.max_segment_size) {
            return Err(bad(
                "broker.max_segment_size",
                format!("{} is outside 1024..=1073741824 bytes", b.max_segment_size),
            ));
        }
        if !(1..=1000).contains(&b.max_segment_count) {
            return Err(bad(
                "broker.max_segment_count",
                format!("{} is outside 1..=1000", b.max_segment_count),
            ));
        }
        let max_wire = dcmms_shared::wire::MAX_PAYLOAD;
        if !(1024..=max_wire).contains(&b.max_payload_size) {
            return Err(bad(
                "broker.max_payload_size",
                format!("{} is outside 1024..={max_wire} bytes", b.max_payload_size),
            ));
        }
        if b.max_connections == 0 {
            return Err(bad("broker.max_connections", "must be at least 1".into()));
        }
        if b.connection_timeout_ms < 100 {
            return Err(bad(
                "broker.connection_timeout_ms",
                "must be at least 100 ms".into(),
            ));
        }
        if b.max_inflight_count == 0 || b.max_inflight_count > u16::MAX as usize {
            return Err(bad(
                "broker.max_inflight_count",
                format!("{} is outside 1..=65535", b.max_inflight_count),
            ));
        }
        if b.listen.port() != 0 && b.listen.port() == self.api.listen.port() {
            return Err(bad(
                "api.listen",
                format!("port {} is also broker.listen's", b.listen.port()),
            ));
        }
        if !(1..=8760).contains(&self.api.token_ttl_hours) {
            return Err(bad(
                "api.token_ttl_hours",
                format!("{} is outside 1..=8760", self.api.token_ttl_hours),
            ));
        }
        if self.ingest.max_batch_messages == 0 || self.ingest.max_batch_messages > 100_000 {
            return Err(bad(
                "ingest.max_batch_messages",
                format!("{} is outside 1..=100000", self.ingest.max_batch_messages),
            ));
        }
        if self.ingest.queue_capacity == 0 {
            return Err(bad("ingest.queue_capacity", "must be at least 1".into()));
        }
        if self.cmms.pm_interval_s > 86_400 {
            return Err(bad(
                "cmms.pm_interval_s",
                format!("{} is outside 0..=86400", self.cmms.pm_interval_s),
            ));
        }
        Ok(())
    }

    /// Resolved database location.
    pub fn database_location(&self) -> Result<DatabaseLocation, String> {
        self.database.location(&self.state_dir)
    }

    /// A configuration for tests and demos: everything under `state_dir`,
    /// SQLite, both listeners on 127.0.0.1 port 0.
    pub fn ephemeral(state_dir: &Path) -> Config {
        let mut c = Config {
            state_dir: state_dir.to_owned(),
            ..Config::default()
        };
        c.broker.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        c.api.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        c
    }
}

fn is_dns_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> Source {
        Source("test.toml".into())
    }

    fn invalid(text: &str) -> (String, String) {
        match Config::parse(text, &src()) {
            Err(ConfigError::Invalid { key, message, .. }) => (key.to_owned(), message),
            other => panic!("expected an invalid-key error, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::parse("", &src()).unwrap(), Config::default());
    }

    #[test]
    fn annotated_default_matches_code_defaults() {
        assert_eq!(
            Config::parse(DEFAULT_CONFIG_TOML, &src()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn errors_name_file_and_key() {
        let (key, msg) = invalid("[broker]\nmax_segment_size = 10\n");
        assert_eq!(key, "broker.max_segment_size");
        assert!(msg.contains("1024"), "{msg}");

        let (key, _) = invalid("[database]\nurl = \"sqlite://:memory:\"\n");
        assert_eq!(key, "database.url");
        let (key, _) = invalid("[database]\nurl = \"mysql://x\"\n");
        assert_eq!(key, "database.url");
        let (key, _) = invalid("[broker]\nhostnames = []\n");
        assert_eq!(key, "broker.hostnames");
        let (key, _) = invalid("[broker]\nhostnames = [\"bad host\"]\n");
        assert_eq!(key, "broker.hostnames");
        let (key, _) = invalid("[broker]\nmax_payload_size = 999999999\n");
        assert_eq!(key, "broker.max_payload_size");
        let (key, _) = invalid("[api]\nlisten = \"127.0.0.1:8883\"\n");
        assert_eq!(key, "api.listen");
        let (key, _) = invalid("[api]\ntoken_ttl_hours = 0\n");
        assert_eq!(key, "api.token_ttl_hours");
        let (key, _) = invalid("[ingest]\nmax_batch_messages = 0\n");
        assert_eq!(key, "ingest.max_batch_messages");
        let (key, _) = invalid("[cmms]\npm_interval_s = 86401\n");
        assert_eq!(key, "cmms.pm_interval_s");
        let c = Config::parse("[cmms]\npm_interval_s = 0\n", &src()).unwrap();
        assert_eq!(c.cmms.pm_interval_s, 0);

        let err = Config::parse("[broker]\nmax_segment_size = 10\n", &src()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("test.toml: key `broker.max_segment_size`"),
            "{text}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_types_are_refused_with_the_file_name() {
        let err = Config::parse("[broker]\nlisten_addr = \"x\"\n", &src()).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("test.toml:"), "{text}");
        assert!(text.contains("listen_addr"), "{text}");

        let err = Config::parse("[api]\nlisten = \"nowhere\"\n", &src()).unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder_and_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hub.toml");
        std::fs::write(&file, "state_dir = \"state\"\n").unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(c.state_dir, dir.path().join("state"));
        assert_eq!(
            c.database_location().unwrap(),
            DatabaseLocation::Sqlite(dir.path().join("state").join("hub.db"))
        );
        let pg = DatabaseConfig {
            url: "postgres://u@h/db".into(),
            ..Default::default()
        };
        assert_eq!(
            pg.location(Path::new("/x")).unwrap(),
            DatabaseLocation::Postgres("postgres://u@h/db".into())
        );
    }

    #[test]
    fn missing_file_error_names_it() {
        let err = Config::load(Path::new("/nonexistent/hub.toml")).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("/nonexistent/hub.toml: cannot read"));
    }
}
