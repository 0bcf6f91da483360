//! The `[[opcua]]` device configuration and its validation.
//!
//! The doc comments of [`OpcUaConfig`] and [`PointConfig`] are the user's
//! reference for the gateway config file. Validation turns a config into a
//! [`DevicePlan`] (node ids parsed, paths resolved, password read) or an
//! error naming the device, the point and the field at fault. It never
//! touches the network.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use dcmms_protocols_core::Scaling;
use dcmms_shared::{validate_name, NameError};
use opcua::types::NodeId;
use serde::{Deserialize, Serialize};

use crate::point_map::{load_point_map, PointMapError};

/// One OPC UA server, an `[[opcua]]` table in the gateway config.
///
/// ```toml
/// [[opcua]]
/// name = "ppc"
/// endpoint = "opc.tcp://192.168.1.40:4840/"
/// security_policy = "basic256sha256"   # or "none" (the default)
/// security_mode = "sign_and_encrypt"   # or "sign"; "none" with policy none
/// pki_dir = "pki/opcua"                # own/cert.der, private/private.pem, trusted/, rejected/
/// user = "operator"                    # omit for anonymous
/// password_env = "PPC_OPCUA_PASSWORD"  # or password = "..."
/// publishing_interval_ms = 1000
/// points_file = "points/ppc.toml"      # or .csv; from `discover opcua`
/// points = [
///   { name = "p_total", node_id = "ns=2;s=Plant.P", deadband = 0.5 },
///   { name = "counter", node_id = "ns=2;i=1001", mode = "poll" },
///   { name = "p_limit", node_id = "ns=2;s=Plant.PLimit", writable = true, data_type = "double" },
/// ]
/// ```
///
/// Points in `subscribe` mode (the default) are monitored items of one
/// subscription; `poll` points, and subscribe points whose monitored item
/// the server refuses, are read every `poll_interval_ms`. The server's
/// certificate must be in `<pki_dir>/trusted` (an unknown one is written to
/// `<pki_dir>/rejected` for the operator to move) unless
/// `trust_server_cert = true`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaConfig {
    /// Device name, unique on the gateway: 1-64 characters from
    /// `[A-Za-z0-9_.-]`. Points are published as `<name>/<point>`.
    pub name: String,
    /// The server's endpoint URL, `opc.tcp://host:port/path`.
    pub endpoint: String,
    /// `none` (default) or `basic256sha256`.
    #[serde(default)]
    pub security_policy: SecurityPolicyName,
    /// `none`, `sign` or `sign_and_encrypt`. Default: `none` with policy
    /// none, `sign_and_encrypt` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_mode: Option<SecurityModeName>,
    /// Folder of the client's certificate store, relative to the config
    /// file's folder. Default `pki/opcua`.
    #[serde(default = "default_pki_dir")]
    pub pki_dir: PathBuf,
    /// The client certificate (DER), relative to `pki_dir`. Default
    /// `own/cert.der`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<PathBuf>,
    /// The client private key (PEM), relative to `pki_dir`. Default
    /// `private/private.pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PathBuf>,
    /// Create a self-signed client certificate and key when none exist.
    /// Default true.
    #[serde(default = "default_true")]
    pub create_certificate: bool,
    /// Trust the server's certificate without it being in
    /// `<pki_dir>/trusted`. Default false; only for commissioning.
    #[serde(default)]
    pub trust_server_cert: bool,
    /// The client's application URI (also in its certificate). Default
    /// `urn:dcmms:gateway:<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_uri: Option<String>,
    /// User name; omitted, the session is anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password of `user`. Prefer `password_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Name of an environment variable holding the password of `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Session timeout asked of the server, in ms. Default 60000.
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
    /// Time allowed for each request, in ms. Default 5000.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Time allowed to connect, open the secure channel and activate the
    /// session, in ms. Default 10000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// First reconnect delay after a failure, in ms. Default 500.
    #[serde(default = "default_backoff_min_ms")]
    pub backoff_min_ms: u64,
    /// Longest reconnect delay, in ms; delays double from `backoff_min_ms`
    /// up to this, each randomised (jitter). Default 30000.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Publishing interval of the subscription, in ms. Default 1000.
    #[serde(default = "default_interval_ms")]
    pub publishing_interval_ms: u64,
    /// Time between two reads of the polled points, in ms. Default 1000.
    #[serde(default = "default_interval_ms")]
    pub poll_interval_ms: u64,
    /// Points defined inline. May be combined with `points_file`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<PointConfig>,
    /// Point map file relative to the config file's folder: `.csv` (header
    /// `name,node_id,mode,sampling_interval_ms,deadband,deadband_type,scale,offset,writable,data_type`)
    /// or `.toml` (`[[points]]` tables with the fields of [`PointConfig`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_file: Option<PathBuf>,
}

/// The security policy of the secure channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityPolicyName {
    #[default]
    None,
    #[serde(alias = "Basic256Sha256")]
    Basic256sha256,
}

/// The message security mode of the secure channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityModeName {
    None,
    Sign,
    SignAndEncrypt,
}

/// How a point's value reaches the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PointMode {
    /// A monitored item of the device's subscription (polled if the server
    /// refuses it).
    #[default]
    Subscribe,
    /// Read every `poll_interval_ms`.
    Poll,
}

/// How a deadband is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadbandKind {
    /// In the value's own units.
    #[default]
    Absolute,
    /// In percent of the variable's EURange (the server must know it).
    Percent,
}

/// The OPC UA built-in type a write sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteType {
    Boolean,
    Sbyte,
    Byte,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Uint64,
    Float,
    Double,
}

impl WriteType {
    pub const ALL: [WriteType; 11] = [
        WriteType::Boolean,
        WriteType::Sbyte,
        WriteType::Byte,
        WriteType::Int16,
        WriteType::Uint16,
        WriteType::Int32,
        WriteType::Uint32,
        WriteType::Int64,
        WriteType::Uint64,
        WriteType::Float,
        WriteType::Double,
    ];

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteType::Boolean => "boolean",
            WriteType::Sbyte => "sbyte",
            WriteType::Byte => "byte",
            WriteType::Int16 => "int16",
            WriteType::Uint16 => "uint16",
            WriteType::Int32 => "int32",
            WriteType::Uint32 => "uint32",
            WriteType::Int64 => "int64",
            WriteType::Uint64 => "uint64",
            WriteType::Float => "float",
            WriteType::Double => "double",
        }
    }
}

/// One variable read from the server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PointConfig {
    /// Point name, unique within the device, 1-64 characters from
    /// `[A-Za-z0-9_.-]`.
    pub name: String,
    /// The variable's node id: `ns=2;s=Plant.P`, `ns=2;i=1001`, `i=2258`,
    /// `ns=3;g=<guid>` or `ns=3;b=<base64>`.
    pub node_id: String,
    /// `subscribe` (default) or `poll`.
    #[serde(default, skip_serializing_if = "is_default_mode")]
    pub mode: PointMode,
    /// Sampling interval asked of the server, in ms. Default: the
    /// publishing interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_interval_ms: Option<u64>,
    /// Report only changes bigger than this (a data change filter).
    /// Omitted: every change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadband: Option<f64>,
    /// `absolute` (default) or `percent` of the EURange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadband_type: Option<DeadbandKind>,
    /// Multiplier from raw value to engineering units. Default 1.
    #[serde(default = "default_scale", skip_serializing_if = "is_one")]
    pub scale: f64,
    /// Added after scaling: `value = raw * scale + offset`. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: f64,
    /// Accept commands (writes of the Value attribute). Default false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub writable: bool,
    /// The type a write sends. Omitted: the type of the value last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<WriteType>,
}

fn default_pki_dir() -> PathBuf {
    PathBuf::from("pki/opcua")
}
fn default_true() -> bool {
    true
}
fn default_session_timeout_ms() -> u64 {
    60_000
}
fn default_request_timeout_ms() -> u64 {
    5000
}
fn default_connect_timeout_ms() -> u64 {
    10_000
}
fn default_backoff_min_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_interval_ms() -> u64 {
    1000
}
fn default_scale() -> f64 {
    1.0
}
fn is_one(v: &f64) -> bool {
    *v == 1.0
}
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}
fn is_false(v: &bool) -> bool {
    !*v
}
fn is_default_mode(m: &PointMode) -> bool {
    *m == PointMode::Subscribe
}

/// Why an OPC UA device config was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpcUaConfigError {
    #[error("opcua device {device:?}: invalid name: {source}")]
    DeviceName { device: String, source: NameError },
    #[error("opcua device {device:?}: field `{field}`: {message}")]
    DeviceField {
        device: String,
        field: &'static str,
        message: String,
    },
    #[error("opcua device {device:?}, point {point:?}: invalid name: {source}")]
    PointName {
        device: String,
        point: String,
        source: NameError,
    },
    #[error("opcua device {device:?}, point {point:?}: field `{field}`: {message}")]
    PointField {
        device: String,
        point: String,
        field: &'static str,
        message: String,
    },
    #[error("opcua device {device:?}: point {point:?} is defined more than once")]
    DuplicatePoint { device: String, point: String },
    #[error("opcua device {device:?}: {source}")]
    PointMap {
        device: String,
        source: PointMapError,
    },
}

/// How the client proves who it is.
#[derive(Clone, PartialEq)]
pub enum Identity {
    Anonymous,
    UserName { user: String, password: String },
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Anonymous => f.write_str("Anonymous"),
            Identity::UserName { user, .. } => write!(f, "UserName({user:?}, <password>)"),
        }
    }
}

/// Everything needed to open a session, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectPlan {
    pub endpoint: String,
    pub policy: SecurityPolicyName,
    pub mode: SecurityModeName,
    pub pki_dir: PathBuf,
    pub certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
    pub create_certificate: bool,
    pub trust_server_cert: bool,
    pub application_uri: String,
    pub identity: Identity,
    pub session_timeout: Duration,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

/// A validated point.
#[derive(Debug, Clone, PartialEq)]
pub struct OpcPoint {
    pub name: String,
    pub node_id: NodeId,
    pub mode: PointMode,
    pub sampling_interval: Duration,
    pub deadband: Option<(DeadbandKind, f64)>,
    pub scaling: Scaling,
    pub writable: bool,
    pub data_type: Option<WriteType>,
}

/// Everything the driver needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DevicePlan {
    pub name: String,
    pub connect: ConnectPlan,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub publishing_interval: Duration,
    pub poll_interval: Duration,
    pub points: Vec<OpcPoint>,
}

/// Parses a node id in the standard text form, with an error that says
/// what is expected.
pub fn parse_node_id(text: &str) -> Result<NodeId, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("node id is empty".to_owned());
    }
    NodeId::from_str(t).map_err(|_| {
        format!(
            "{t:?} is not a node id; expected e.g. ns=2;s=Plant.P, ns=2;i=1001, i=2258, ns=3;g=<guid>, ns=3;b=<base64>"
        )
    })
}

/// Checks an `opc.tcp://host:port/path` URL.
pub fn check_endpoint(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("opc.tcp://")
        .ok_or_else(|| format!("{url:?}: must start with opc.tcp://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if let Some((host, port)) = authority.rsplit_once(':') {
        if host.is_empty() || host == "[]" {
            return Err(format!("{url:?} has no host"));
        }
        if !port.ends_with(']') {
            match port.parse::<u16>() {
                Ok(p) if p > 0 => {}
                _ => return Err(format!("{url:?}: port must be 1-65535")),
            }
        }
    }
    Ok(())
}

impl OpcUaConfig {
    /// A config with defaults for everything but name and endpoint.
    pub fn new(name: impl Into<String>, endpoint: impl Into<String>) -> Self {
        OpcUaConfig {
            name: name.into(),
            endpoint: endpoint.into(),
            security_policy: SecurityPolicyName::None,
            security_mode: None,
            pki_dir: default_pki_dir(),
            certificate: None,
            private_key: None,
            create_certificate: true,
            trust_server_cert: false,
            application_uri: None,
            user: None,
            password: None,
            password_env: None,
            session_timeout_ms: default_session_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            backoff_min_ms: default_backoff_min_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            publishing_interval_ms: default_interval_ms(),
            poll_interval_ms: default_interval_ms(),
            points: Vec::new(),
            points_file: None,
        }
    }

    fn device_err(&self, field: &'static str, message: impl Into<String>) -> OpcUaConfigError {
        OpcUaConfigError::DeviceField {
            device: self.name.clone(),
            field,
            message: message.into(),
        }
    }

    /// Checks how to connect (endpoint, security, identity) without the
    /// points; discovery uses this alone. Reads `password_env`.
    pub fn connect_plan(&self, config_dir: &Path) -> Result<ConnectPlan, OpcUaConfigError> {
        check_endpoint(&self.endpoint).map_err(|m| self.device_err("endpoint", m))?;
        let mode = match (self.security_policy, self.security_mode) {
            (SecurityPolicyName::None, None | Some(SecurityModeName::None)) => {
                SecurityModeName::None
            }
            (SecurityPolicyName::None, Some(_)) => {
                return Err(self.device_err(
                    "security_mode",
                    "sign and sign_and_encrypt need security_policy = \"basic256sha256\"",
                ))
            }
            (SecurityPolicyName::Basic256sha256, None) => SecurityModeName::SignAndEncrypt,
            (SecurityPolicyName::Basic256sha256, Some(SecurityModeName::None)) => {
                return Err(self.device_err(
                    "security_mode",
                    "basic256sha256 needs sign or sign_and_encrypt",
                ))
            }
            (SecurityPolicyName::Basic256sha256, Some(m)) => m,
        };
        for (field, v) in [
            ("session_timeout_ms", self.session_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
        ] {
            if v == 0 {
                return Err(self.device_err(field, "must be at least 1"));
            }
        }
        if self.session_timeout_ms > u64::from(u32::MAX) {
            return Err(self.device_err("session_timeout_ms", "must fit in 32 bits"));
        }
        let identity = match (&self.user, &self.password, &self.password_env) {
            (None, None, None) => Identity::Anonymous,
            (None, _, _) => {
                return Err(self.device_err("user", "a password is set but no user"));
            }
            (Some(u), _, _) if u.is_empty() => {
                return Err(self.device_err("user", "must not be empty"));
            }
            (Some(_), Some(_), Some(_)) => {
                return Err(self.device_err("password", "set password or password_env, not both"));
            }
            (Some(_), None, None) => {
                return Err(self.device_err("password", "user needs password or password_env"));
            }
            (Some(u), Some(p), None) => Identity::UserName {
                user: u.clone(),
                password: p.clone(),
            },
            (Some(u), None, Some(var)) => match std::env::var(var) {
                Ok(p) => Identity::UserName {
                    user: u.clone(),
                    password: p,
                },
                Err(_) => {
                    return Err(self.device_err(
                        "password_env",
                        format!("environment variable {var:?} is not set (or not UTF-8)"),
                    ))
                }
            },
        };
        let uri = self
            .application_uri
            .clone()
            .unwrap_or_else(|| format!("urn:dcmms:gateway:{}", self.name));
        if uri.is_empty() {
            return Err(self.device_err("application_uri", "must not be empty"));
        }
        Ok(ConnectPlan {
            endpoint: self.endpoint.clone(),
            policy: self.security_policy,
            mode,
            pki_dir: config_dir.join(&self.pki_dir),
            certificate: self.certificate.clone(),
            private_key: self.private_key.clone(),
            create_certificate: self.create_certificate,
            trust_server_cert: self.trust_server_cert,
            application_uri: uri,
            identity,
            session_timeout: Duration::from_millis(self.session_timeout_ms),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
        })
    }

    /// Checks everything and derives the plan. `config_dir` is the folder
    /// `points_file` and `pki_dir` are relative to.
    pub fn validate(&self, config_dir: &Path) -> Result<DevicePlan, OpcUaConfigError> {
        validate_name(&self.name).map_err(|source| OpcUaConfigError::DeviceName {
            device: self.name.clone(),
            source,
        })?;
        let connect = self.connect_plan(config_dir)?;
        for (field, v) in [
            ("backoff_min_ms", self.backoff_min_ms),
            ("publishing_interval_ms", self.publishing_interval_ms),
            ("poll_interval_ms", self.poll_interval_ms),
        ] {
            if v == 0 {
                return Err(self.device_err(field, "must be at least 1"));
            }
        }
        if self.backoff_max_ms < self.backoff_min_ms {
            return Err(self.device_err(
                "backoff_max_ms",
                format!("must not be below backoff_min_ms ({})", self.backoff_min_ms),
            ));
        }
        let mut all = self.points.clone();
        if let Some(file) = &self.points_file {
            let loaded = load_point_map(&config_dir.join(file)).map_err(|source| {
                OpcUaConfigError::PointMap {
                    device: self.name.clone(),
                    source,
                }
            })?;
            all.extend(loaded);
        }
        if all.is_empty() {
            return Err(self.device_err("points", "no points (set points or points_file)"));
        }
        let mut seen = HashSet::new();
        let mut points = Vec::with_capacity(all.len());
        for p in &all {
            points.push(self.validate_point(p)?);
            if !seen.insert(p.name.as_str()) {
                return Err(OpcUaConfigError::DuplicatePoint {
                    device: self.name.clone(),
                    point: p.name.clone(),
                });
            }
        }
        Ok(DevicePlan {
            name: self.name.clone(),
            connect,
            backoff_min: Duration::from_millis(self.backoff_min_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            publishing_interval: Duration::from_millis(self.publishing_interval_ms),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            points,
        })
    }

    fn validate_point(&self, p: &PointConfig) -> Result<OpcPoint, OpcUaConfigError> {
        let err = |field: &'static str, message: String| OpcUaConfigError::PointField {
            device: self.name.clone(),
            point: p.name.clone(),
            field,
            message,
        };
        validate_name(&p.name).map_err(|source| OpcUaConfigError::PointName {
            device: self.name.clone(),
            point: p.name.clone(),
            source,
        })?;
        let node_id = parse_node_id(&p.node_id).map_err(|m| err("node_id", m))?;
        if p.sampling_interval_ms == Some(0) {
            // 0 asks for the server's fastest rate; allowed but rarely meant.
            tracing::debug!(point = %p.name, "sampling_interval_ms = 0: the server's fastest rate");
        }
        let deadband = match (p.deadband, p.deadband_type) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(err("deadband_type", "set without a deadband".to_owned()))
            }
            (Some(d), kind) => {
                let kind = kind.unwrap_or_default();
                if !d.is_finite() || d < 0.0 {
                    return Err(err("deadband", "must be a number >= 0".to_owned()));
                }
                if kind == DeadbandKind::Percent && d > 100.0 {
                    return Err(err("deadband", "a percent deadband is 0-100".to_owned()));
                }
                Some((kind, d))
            }
        };
        if p.mode == PointMode::Poll && deadband.is_some() {
            return Err(err(
                "deadband",
                "only subscribed points have a deadband (mode = \"poll\")".to_owned(),
            ));
        }
        if !p.scale.is_finite() || p.scale == 0.0 {
            return Err(err(
                "scale",
                "must be a finite number other than 0".to_owned(),
            ));
        }
        if !p.offset.is_finite() {
            return Err(err("offset", "must be a finite number".to_owned()));
        }
        if p.data_type.is_some() && !p.writable {
            return Err(err(
                "data_type",
                "only writable points need a data_type".to_owned(),
            ));
        }
        Ok(OpcPoint {
            name: p.name.clone(),
            node_id,
            mode: p.mode,
            sampling_interval: Duration::from_millis(
                p.sampling_interval_ms
                    .unwrap_or(self.publishing_interval_ms),
            ),
            deadband,
            scaling: Scaling::new(p.scale, p.offset),
            writable: p.writable,
            data_type: p.data_type,
        })
    }
}

impl PointConfig {
    /// A subscribed point with defaults.
    pub fn new(name: impl Into<String>, node_id: impl Into<String>) -> Self {
        PointConfig {
            name: name.into(),
            node_id: node_id.into(),
            mode: PointMode::Subscribe,
            sampling_interval_ms: None,
            deadband: None,
            deadband_type: None,
            scale: 1.0,
            offset: 0.0,
            writable: false,
            data_type: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(toml_text: &str) -> OpcUaConfig {
        toml::from_str(toml_text).expect("parses")
    }

    #[test]
    fn defaults_and_inline_points() {
        let c = dev(r#"
name = "ppc"
endpoint = "opc.tcp://127.0.0.1:4840/"
points = [
  { name = "p", node_id = "ns=2;s=Plant.P", deadband = 0.5 },
  { name = "c", node_id = "ns=2;i=1001", mode = "poll", scale = 0.1 },
  { name = "sp", node_id = "ns=2;s=Plant.Setpoint", writable = true, data_type = "double" },
]
"#);
        let plan = c.validate(Path::new("/etc/dcmms")).unwrap();
        assert_eq!(plan.connect.mode, SecurityModeName::None);
        assert_eq!(plan.connect.identity, Identity::Anonymous);
        assert_eq!(plan.connect.pki_dir, Path::new("/etc/dcmms/pki/opcua"));
        assert_eq!(plan.connect.application_uri, "urn:dcmms:gateway:ppc");
        assert_eq!(plan.points.len(), 3);
        assert_eq!(plan.points[0].node_id, NodeId::new(2, "Plant.P"));
        assert_eq!(plan.points[0].deadband, Some((DeadbandKind::Absolute, 0.5)));
        assert_eq!(plan.points[0].sampling_interval, Duration::from_secs(1));
        assert_eq!(plan.points[1].node_id, NodeId::new(2, 1001u32));
        assert_eq!(plan.points[1].mode, PointMode::Poll);
        assert_eq!(plan.points[2].data_type, Some(WriteType::Double));
    }

    #[test]
    fn security_and_identity() {
        let mut c = OpcUaConfig::new("ppc", "opc.tcp://h:4840");
        c.points.push(PointConfig::new("p", "ns=2;s=P"));
        c.security_policy = SecurityPolicyName::Basic256sha256;
        let plan = c.validate(Path::new(".")).unwrap();
        assert_eq!(plan.connect.mode, SecurityModeName::SignAndEncrypt);
        c.security_mode = Some(SecurityModeName::None);
        assert!(c
            .validate(Path::new("."))
            .unwrap_err()
            .to_string()
            .contains("security_mode"));
        c.security_mode = Some(SecurityModeName::Sign);
        c.user = Some("operator".into());
        let e = c.validate(Path::new(".")).unwrap_err().to_string();
        assert!(e.contains("password"), "{e}");
        c.password_env = Some("DCMMS_TEST_OPCUA_PW_UNSET_123".into());
        let e = c.validate(Path::new(".")).unwrap_err().to_string();
        assert!(e.contains("DCMMS_TEST_OPCUA_PW_UNSET_123"), "{e}");
        c.password_env = None;
        c.password = Some("pw".into());
        let plan = c.validate(Path::new(".")).unwrap();
        assert_eq!(plan.connect.mode, SecurityModeName::Sign);
        assert!(
            matches!(plan.connect.identity, Identity::UserName { ref user, .. } if user == "operator")
        );
        assert!(!format!("{:?}", plan.connect.identity).contains("pw\""));
        let mut n = OpcUaConfig::new("x", "opc.tcp://h:4840");
        n.points.push(PointConfig::new("p", "ns=2;s=P"));
        n.security_mode = Some(SecurityModeName::Sign);
        assert!(n.validate(Path::new(".")).is_err());
    }

    #[test]
    fn refusals_name_the_field() {
        let base = |f: &dyn Fn(&mut OpcUaConfig)| {
            let mut c = OpcUaConfig::new("ppc", "opc.tcp://h:4840/x");
            c.points.push(PointConfig::new("p", "ns=2;s=P"));
            f(&mut c);
            c.validate(Path::new("."))
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert!(base(&|_| {}).is_ok());
        assert!(base(&|c| c.endpoint = "http://h".into())
            .unwrap_err()
            .contains("endpoint"));
        assert!(base(&|c| c.endpoint = "opc.tcp://h:0".into())
            .unwrap_err()
            .contains("port"));
        assert!(base(&|c| c.endpoint = "opc.tcp:///x".into())
            .unwrap_err()
            .contains("host"));
        assert!(base(&|c| c.points[0].node_id = "Plant.P".into())
            .unwrap_err()
            .contains("node_id"));
        assert!(base(&|c| c.points[0].node_id = String::new())
            .unwrap_err()
            .contains("empty"));
        assert!(base(&|c| c.points[0].deadband = Some(-1.0))
            .unwrap_err()
            .contains("deadband"));
        assert!(base(&|c| {
            c.points[0].deadband = Some(120.0);
            c.points[0].deadband_type = Some(DeadbandKind::Percent);
        })
        .unwrap_err()
        .contains("percent"));
        assert!(base(&|c| c.points[0].deadband_type = Some(DeadbandKind::Percent)).is_err());
        assert!(base(&|c| {
            c.points[0].mode = PointMode::Poll;
            c.points[0].deadband = Some(1.0);
        })
        .is_err());
        assert!(base(&|c| c.points[0].scale = 0.0)
            .unwrap_err()
            .contains("scale"));
        assert!(base(&|c| c.points[0].data_type = Some(WriteType::Int16))
            .unwrap_err()
            .contains("data_type"));
        assert!(base(&|c| c.points.push(PointConfig::new("p", "i=1")))
            .unwrap_err()
            .contains("more than once"));
        assert!(base(&|c| c.points.clear())
            .unwrap_err()
            .contains("no points"));
        assert!(base(&|c| c.name = "a b".into())
            .unwrap_err()
            .contains("invalid name"));
        assert!(base(&|c| c.poll_interval_ms = 0)
            .unwrap_err()
            .contains("poll_interval_ms"));
        assert!(base(&|c| c.backoff_max_ms = 1)
            .unwrap_err()
            .contains("backoff_max_ms"));
        assert!(base(&|c| c.password = Some("x".into()))
            .unwrap_err()
            .contains("user"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<OpcUaConfig, _> =
            toml::from_str("name = \"a\"\nendpoint = \"opc.tcp://h:1\"\nsecurity = \"none\"\n");
        assert!(r.unwrap_err().to_string().contains("security"));
        let r: Result<OpcUaConfig, _> = toml::from_str(
            "name = \"a\"\nendpoint = \"opc.tcp://h:1\"\nsecurity_policy = \"Basic256Sha256\"\n",
        );
        assert_eq!(
            r.unwrap().security_policy,
            SecurityPolicyName::Basic256sha256
        );
    }
}
