//! The `[[iec61850]]` device configuration and its validation.
//!
//! The doc comments of [`Iec61850Config`], [`ReportConfig`] and
//! [`PointConfig`] are the user's reference for the gateway config file.
//! Validation turns a config into a [`DevicePlan`] (every name the driver
//! will send, derived once) or an error naming the device, the point or
//! report, and the field at fault. It never touches the network.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dcmms_protocols_core::Scaling;
use dcmms_shared::{validate_name, NameError};
use serde::{Deserialize, Serialize};

use crate::backend::{ControlModel, Timeouts, Triggers, VarRef};
use crate::point_map::{load_point_map, PointMapError};
use crate::reference::{domain_of, Fc, PointRef, RefError};

/// One IEC 61850 server (IED), an `[[iec61850]]` table in the gateway config.
///
/// ```toml
/// [[iec61850]]
/// name = "bay-01"
/// address = "192.168.1.30"          # port 102 unless given: "host:10102"
/// ied_name = "IED1"                 # MMS domain = ied_name + LD instance
/// poll_interval_ms = 1000
/// points_file = "points/bay-01.toml" # or .csv; from discovery or SCL import
/// points = [
///   { name = "p_total", reference = "LD0/MMXU1.TotW.mag.f", fc = "MX", scale = 0.001 },
///   { name = "breaker", reference = "LD0/XCBR1.Pos.stVal", fc = "ST" },
///   { name = "relay1", reference = "LD0/GGIO1.SPCSO1.stVal", fc = "ST", writable = true, control = "sbo" },
/// ]
///
/// [[iec61850.reports]]
/// rcb = "LD0/LLN0.BR.brcb01"          # or "LD0/LLN0$RP$urcb01"
/// dataset = "LD0/LLN0.Measurements"   # optional: keep the engineered one
/// integrity_period_ms = 60000         # optional: periodic full report
/// ```
///
/// Points whose value a configured report's data set carries are taken from
/// the reports (general interrogation at every connect, then data and
/// quality changes, plus integrity reports when a period is set); all other
/// points are read every `poll_interval_ms`. If a report control block
/// cannot be enabled, its points are polled instead.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Iec61850Config {
    /// Device name, unique on the gateway: 1-64 characters from
    /// `[A-Za-z0-9_.-]`. Points are published as `<name>/<point>`.
    pub name: String,
    /// `host` or `host:port` of the MMS server; port 102 when omitted.
    /// IPv6 as `[addr]` or `[addr]:port`. Resolved at every (re)connect.
    pub address: String,
    /// The IED name: the MMS domain of a logical device is the IED name
    /// followed by the LD instance (`IED1` + `LD0` = `IED1LD0`). References
    /// may also spell the full domain (`IED1LD0/MMXU1.TotW.mag.f`). Empty
    /// (the default) means references carry full domain names.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ied_name: String,
    /// Time between the starts of two reads of the polled points, in ms.
    /// Default 1000.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Time allowed for each request, in ms. Default 2000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Time allowed for the TCP connection plus the MMS association, in ms.
    /// Default 5000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// First reconnect delay after a failure, in ms. Default 500.
    #[serde(default = "default_backoff_min_ms")]
    pub backoff_min_ms: u64,
    /// Longest reconnect delay, in ms; delays double from `backoff_min_ms` up
    /// to this, each randomised (jitter). Default 30000.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Most variables in one MMS Read (a value with its `q` and `t` counts
    /// three). Default 60.
    #[serde(default = "default_max_vars_per_read")]
    pub max_vars_per_read: usize,
    /// `orIdent` sent with every control. Default "dcmms".
    #[serde(default = "default_originator")]
    pub originator: String,
    /// Report control blocks to enable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<ReportConfig>,
    /// Points defined inline. May be combined with `points_file`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<PointConfig>,
    /// Point map file relative to the config file's folder: `.csv` (header
    /// `name,reference,fc,scale,offset,writable,control,control_object`) or
    /// `.toml` (`[[points]]` tables with the fields of [`PointConfig`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_file: Option<PathBuf>,
}

/// One report control block to configure and enable
/// (`[[iec61850.reports]]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// The block: `LD0/LLN0.BR.brcb01` (buffered) or `LD0/LLN0.RP.urcb01`
    /// (unbuffered); the MMS form `LD0/LLN0$BR$brcb01` works too, and so
    /// does `LD0/LLN0.brcb01` together with `buffered`.
    pub rcb: String,
    /// Buffered (`BR`) or unbuffered (`RP`); only needed when `rcb` does
    /// not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffered: Option<bool>,
    /// Data set to report (`LD0/LLN0.Measurements`); omitted, the block's
    /// engineered data set is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Report when a value changes. Default true.
    #[serde(default = "default_true")]
    pub data_change: bool,
    /// Report when a quality changes. Default true.
    #[serde(default = "default_true")]
    pub quality_change: bool,
    /// Report every update, changed or not. Default false.
    #[serde(default)]
    pub data_update: bool,
    /// Send an integrity report (every member) with this period, in ms.
    /// Omitted: no integrity reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity_period_ms: Option<u32>,
    /// Ask for a general interrogation (every member once) after each
    /// enable, so values are known right after a (re)connect. Default true.
    #[serde(default = "default_true")]
    pub gi: bool,
    /// `BufTm`: how long the device may gather changes into one report, in
    /// ms. Omitted: keep the engineered value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_time_ms: Option<u32>,
}

/// One value read from an IED.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PointConfig {
    /// Point name, unique within the device, 1-64 characters from
    /// `[A-Za-z0-9_.-]`.
    pub name: String,
    /// The data attribute: `LD0/MMXU1.TotW.mag.f`, `LD0/XCBR1.Pos.stVal`,
    /// or in MMS form `LD0/MMXU1$MX$TotW$mag$f`. Its `q` and `t` (the data
    /// object's quality and timestamp) are read with it when the constraint
    /// is ST or MX.
    pub reference: String,
    /// Functional constraint: MX (measurands), ST (status), SP (set
    /// points), CF, DC, SV, SG, SE, ... Optional with an MMS-form reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fc: Option<Fc>,
    /// Multiplier from raw value to engineering units. Default 1.
    #[serde(default = "default_scale", skip_serializing_if = "is_one")]
    pub scale: f64,
    /// Added after scaling: `value = raw * scale + offset`. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: f64,
    /// Accept commands for this point. Default false. With `control` set, a
    /// command operates the data object; without it, it writes the attribute
    /// (allowed for SP, SV, CF, DC, SE, BL only).
    #[serde(default, skip_serializing_if = "is_false")]
    pub writable: bool,
    /// Control model of the data object: `direct`, `sbo`
    /// (select-before-operate), `direct_enhanced` or `sbo_enhanced`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<ControlModel>,
    /// The controllable data object (`LD0/CSWI1.Pos`); by default the data
    /// object of `reference`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_object: Option<String>,
}

fn default_poll_interval_ms() -> u64 {
    1000
}
fn default_timeout_ms() -> u64 {
    2000
}
fn default_connect_timeout_ms() -> u64 {
    5000
}
fn default_backoff_min_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_max_vars_per_read() -> usize {
    60
}
fn default_originator() -> String {
    "dcmms".to_owned()
}
fn default_true() -> bool {
    true
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

/// Why an IEC 61850 device config was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Iec61850ConfigError {
    #[error("iec61850 device {device:?}: invalid name: {source}")]
    DeviceName { device: String, source: NameError },
    #[error("iec61850 device {device:?}: field `{field}`: {message}")]
    DeviceField {
        device: String,
        field: &'static str,
        message: String,
    },
    #[error("iec61850 device {device:?}, point {point:?}: invalid name: {source}")]
    PointName {
        device: String,
        point: String,
        source: NameError,
    },
    #[error("iec61850 device {device:?}, point {point:?}: field `{field}`: {message}")]
    PointField {
        device: String,
        point: String,
        field: &'static str,
        message: String,
    },
    #[error("iec61850 device {device:?}: point {point:?} is defined more than once")]
    DuplicatePoint { device: String, point: String },
    #[error("iec61850 device {device:?}, report {rcb:?}: field `{field}`: {message}")]
    ReportField {
        device: String,
        rcb: String,
        field: &'static str,
        message: String,
    },
    #[error("iec61850 device {device:?}: {source}")]
    PointMap {
        device: String,
        source: PointMapError,
    },
}

/// What a command does for one point.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandTarget {
    /// Operate this data object (dotted with domain: `IED1LD0/GGIO1.SPCSO1`).
    Control { object: String, model: ControlModel },
    /// Write the point's own attribute.
    Write,
}

/// A validated point with every name the driver sends, derived once.
#[derive(Debug, Clone, PartialEq)]
pub struct IecPoint {
    pub name: String,
    pub reference: PointRef,
    /// The value, dotted with domain, and its constraint.
    pub value: VarRef,
    /// The value's MMS name (`IED1LD0/MMXU1$MX$TotW$mag$f`), for reports.
    pub mms: String,
    /// The data object's `q`, when the constraint has one.
    pub quality: Option<(VarRef, String)>,
    /// The data object's `t`, when the constraint has one.
    pub time: Option<(VarRef, String)>,
    pub scaling: Scaling,
    pub writable: bool,
    /// How a command is carried out, when one can be (also set for points
    /// that are not writable, so the command port can say `NotWritable`).
    pub command: Option<CommandTarget>,
}

/// A validated report control block.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportPlan {
    /// As configured, for logs.
    pub name: String,
    /// MMS form: `IED1LD0/LLN0$BR$brcb01`.
    pub reference: String,
    pub buffered: bool,
    /// MMS form: `IED1LD0/LLN0$Measurements`.
    pub data_set: Option<String>,
    pub triggers: Triggers,
    pub integrity_period_ms: Option<u32>,
    pub buffer_time_ms: Option<u32>,
}

/// Everything the driver needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DevicePlan {
    pub name: String,
    /// `host:port`.
    pub address: String,
    pub ied_name: String,
    pub poll_interval: Duration,
    pub timeouts: Timeouts,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub max_vars_per_read: usize,
    pub originator: String,
    pub points: Vec<IecPoint>,
    pub reports: Vec<ReportPlan>,
}

/// `host:port` with port 102 added when missing; an error for text that is
/// no address.
pub fn normalize_address(address: &str) -> Result<String, String> {
    let a = address.trim();
    if a.is_empty() {
        return Err("address is empty".to_owned());
    }
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, tail) = rest
            .split_once(']')
            .ok_or_else(|| format!("{a:?}: unclosed `[`"))?;
        let port = match tail {
            "" => None,
            t => Some(
                t.strip_prefix(':')
                    .ok_or_else(|| format!("{a:?}: expected `:port` after `]`"))?,
            ),
        };
        (format!("[{h}]"), port)
    } else if a.matches(':').count() > 1 {
        return Err(format!(
            "{a:?}: write IPv6 addresses as [addr] or [addr]:port"
        ));
    } else {
        match a.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (a.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("{a:?} has no host"));
    }
    let port = match port {
        None => 102,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("{a:?}: port must be 1-65535")),
            Ok(n) => n,
        },
    };
    Ok(format!("{host}:{port}"))
}

impl Iec61850Config {
    /// A config with defaults for everything but name and address.
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Self {
        Iec61850Config {
            name: name.into(),
            address: address.into(),
            ied_name: String::new(),
            poll_interval_ms: default_poll_interval_ms(),
            timeout_ms: default_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            backoff_min_ms: default_backoff_min_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            max_vars_per_read: default_max_vars_per_read(),
            originator: default_originator(),
            reports: Vec::new(),
            points: Vec::new(),
            points_file: None,
        }
    }

    fn device_err(&self, field: &'static str, message: impl Into<String>) -> Iec61850ConfigError {
        Iec61850ConfigError::DeviceField {
            device: self.name.clone(),
            field,
            message: message.into(),
        }
    }

    /// Checks everything and derives the plan. `config_dir` is the folder
    /// `points_file` is relative to.
    pub fn validate(&self, config_dir: &Path) -> Result<DevicePlan, Iec61850ConfigError> {
        validate_name(&self.name).map_err(|source| Iec61850ConfigError::DeviceName {
            device: self.name.clone(),
            source,
        })?;
        let address =
            normalize_address(&self.address).map_err(|m| self.device_err("address", m))?;
        if !self
            .ied_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(self.device_err("ied_name", "letters, digits and `_` only"));
        }
        for (field, v) in [
            ("poll_interval_ms", self.poll_interval_ms),
            ("timeout_ms", self.timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("backoff_min_ms", self.backoff_min_ms),
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
        if !(3..=1000).contains(&self.max_vars_per_read) {
            return Err(self.device_err("max_vars_per_read", "must be 3-1000"));
        }
        if self.originator.is_empty() || self.originator.len() > 64 || !self.originator.is_ascii() {
            return Err(self.device_err("originator", "1-64 ASCII characters"));
        }

        let mut configs = Vec::new();
        if let Some(rel) = &self.points_file {
            configs = load_point_map(&config_dir.join(rel)).map_err(|source| {
                Iec61850ConfigError::PointMap {
                    device: self.name.clone(),
                    source,
                }
            })?;
        }
        configs.extend(self.points.iter().cloned());
        if configs.is_empty() {
            return Err(self.device_err("points", "no points: set `points` or `points_file`"));
        }
        let mut seen = HashSet::new();
        let mut points = Vec::with_capacity(configs.len());
        for pc in &configs {
            let p = pc.validate(&self.name, &self.ied_name)?;
            if !seen.insert(p.name.clone()) {
                return Err(Iec61850ConfigError::DuplicatePoint {
                    device: self.name.clone(),
                    point: p.name,
                });
            }
            points.push(p);
        }
        let mut reports = Vec::with_capacity(self.reports.len());
        let mut rcbs = HashSet::new();
        for rc in &self.reports {
            let r = rc.validate(&self.name, &self.ied_name)?;
            if !rcbs.insert(r.reference.clone()) {
                return Err(Iec61850ConfigError::ReportField {
                    device: self.name.clone(),
                    rcb: rc.rcb.clone(),
                    field: "rcb",
                    message: "configured more than once".into(),
                });
            }
            reports.push(r);
        }
        Ok(DevicePlan {
            name: self.name.clone(),
            address,
            ied_name: self.ied_name.clone(),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            timeouts: Timeouts {
                connect: Duration::from_millis(self.connect_timeout_ms),
                request: Duration::from_millis(self.timeout_ms),
            },
            backoff_min: Duration::from_millis(self.backoff_min_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            max_vars_per_read: self.max_vars_per_read,
            originator: self.originator.clone(),
            points,
            reports,
        })
    }
}

impl PointConfig {
    /// A point with default scaling, not writable.
    pub fn new(name: impl Into<String>, reference: impl Into<String>, fc: Fc) -> Self {
        PointConfig {
            name: name.into(),
            reference: reference.into(),
            fc: Some(fc),
            scale: 1.0,
            offset: 0.0,
            writable: false,
            control: None,
            control_object: None,
        }
    }

    pub fn with_scale(mut self, scale: f64, offset: f64) -> Self {
        self.scale = scale;
        self.offset = offset;
        self
    }

    pub fn with_control(mut self, model: ControlModel) -> Self {
        self.writable = true;
        self.control = Some(model);
        self
    }

    pub fn validate(&self, device: &str, ied_name: &str) -> Result<IecPoint, Iec61850ConfigError> {
        let field_err = |field: &'static str, message: String| Iec61850ConfigError::PointField {
            device: device.to_owned(),
            point: self.name.clone(),
            field,
            message,
        };
        validate_name(&self.name).map_err(|source| Iec61850ConfigError::PointName {
            device: device.to_owned(),
            point: self.name.clone(),
            source,
        })?;
        let r = PointRef::parse(&self.reference, self.fc).map_err(|e: RefError| {
            let field = if matches!(e, RefError::NoFc(_) | RefError::FcMismatch { .. }) {
                "fc"
            } else {
                "reference"
            };
            field_err(field, e.to_string())
        })?;
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
        let command = match (&self.control, &self.control_object) {
            (Some(model), object) => {
                let object = match object {
                    Some(text) => {
                        let (ld, ln, path) = crate::reference::parse_object(text)
                            .map_err(|e| field_err("control_object", e.to_string()))?;
                        format!("{}/{ln}.{}", domain_of(ied_name, &ld), path.join("."))
                    }
                    None => {
                        let n = r.data_object_len();
                        if n == 0 {
                            return Err(field_err(
                                "control_object",
                                format!("cannot tell the data object of {:?}; set control_object", self.reference),
                            ));
                        }
                        format!("{}/{}.{}", domain_of(ied_name, &r.ld), r.ln, r.path[..n].join("."))
                    }
                };
                Some(CommandTarget::Control {
                    object,
                    model: *model,
                })
            }
            (None, Some(_)) => {
                return Err(field_err("control_object", "needs `control` (the control model)".into()))
            }
            (None, None) if r.fc.is_writable() => Some(CommandTarget::Write),
            (None, None) if self.writable => {
                return Err(field_err(
                    "writable",
                    format!(
                        "{} data changes only through a control: set control = \"direct\" or \"sbo\" (or point at an SP/CF attribute)",
                        r.fc
                    ),
                ))
            }
            (None, None) => None,
        };
        let sibling = |name: &str| {
            r.sibling(name).map(|s| {
                (
                    VarRef {
                        reference: s.dotted(ied_name),
                        fc: s.fc,
                    },
                    s.mms(ied_name),
                )
            })
        };
        Ok(IecPoint {
            name: self.name.clone(),
            value: VarRef {
                reference: r.dotted(ied_name),
                fc: r.fc,
            },
            mms: r.mms(ied_name),
            quality: sibling("q"),
            time: sibling("t"),
            reference: r,
            scaling: Scaling::new(self.scale, self.offset),
            writable: self.writable,
            command,
        })
    }
}

/// `LD0/LLN0.BR.brcb01`, `LD0/LLN0$BR$brcb01`, `LD0/LLN0.brcb01`:
/// `(ld, ln, buffered?, name)`.
fn parse_rcb(text: &str) -> Result<(String, String, Option<bool>, String), String> {
    let (ld, rest) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not LD/LN.BR.name"))?;
    let parts: Vec<&str> = rest.split(['.', '$']).collect();
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok(ld) || !parts.iter().all(|p| ok(p)) {
        return Err(format!("{text:?}: names must be letters, digits or `_`"));
    }
    match parts.as_slice() {
        [ln, fc, name] => match *fc {
            "BR" => Ok((ld.into(), (*ln).into(), Some(true), (*name).into())),
            "RP" => Ok((ld.into(), (*ln).into(), Some(false), (*name).into())),
            other => Err(format!(
                "{text:?}: {other:?} is neither BR (buffered) nor RP (unbuffered)"
            )),
        },
        [ln, name] => Ok((ld.into(), (*ln).into(), None, (*name).into())),
        _ => Err(format!("{text:?} is not LD/LN.BR.name or LD/LN.RP.name")),
    }
}

/// `LD0/LLN0.Measurements` or `LD0/LLN0$Measurements` -> `(ld, ln, name)`.
fn parse_data_set(text: &str) -> Result<(String, String, String), String> {
    let (ld, rest) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not LD/LN.name"))?;
    let parts: Vec<&str> = rest.split(['.', '$']).collect();
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    match parts.as_slice() {
        [ln, name] if ok(ld) && ok(ln) && ok(name) => Ok((ld.into(), (*ln).into(), (*name).into())),
        _ => Err(format!(
            "{text:?} is not LD/LN.name (e.g. LD0/LLN0.Measurements)"
        )),
    }
}

impl ReportConfig {
    /// A block with the default triggers (data change, quality change, GI).
    pub fn new(rcb: impl Into<String>) -> Self {
        ReportConfig {
            rcb: rcb.into(),
            buffered: None,
            dataset: None,
            data_change: true,
            quality_change: true,
            data_update: false,
            integrity_period_ms: None,
            gi: true,
            buffer_time_ms: None,
        }
    }

    pub fn validate(
        &self,
        device: &str,
        ied_name: &str,
    ) -> Result<ReportPlan, Iec61850ConfigError> {
        let err = |field: &'static str, message: String| Iec61850ConfigError::ReportField {
            device: device.to_owned(),
            rcb: self.rcb.clone(),
            field,
            message,
        };
        let (ld, ln, inline, name) = parse_rcb(&self.rcb).map_err(|m| err("rcb", m))?;
        let buffered = match (inline, self.buffered) {
            (Some(a), Some(b)) if a != b => {
                return Err(err(
                    "buffered",
                    format!("contradicts the {} in `rcb`", if a { "BR" } else { "RP" }),
                ))
            }
            (Some(b), _) | (None, Some(b)) => b,
            (None, None) => {
                return Err(err(
                    "buffered",
                    "say BR or RP in `rcb`, or set buffered = true/false".into(),
                ))
            }
        };
        let data_set = match &self.dataset {
            Some(text) => {
                let (dld, dln, dname) = parse_data_set(text).map_err(|m| err("dataset", m))?;
                Some(format!("{}/{dln}${dname}", domain_of(ied_name, &dld)))
            }
            None => None,
        };
        if self.integrity_period_ms == Some(0) {
            return Err(err(
                "integrity_period_ms",
                "must be at least 1 (omit it for no integrity reports)".into(),
            ));
        }
        let triggers = Triggers {
            data_change: self.data_change,
            quality_change: self.quality_change,
            data_update: self.data_update,
            integrity: self.integrity_period_ms.is_some(),
            general_interrogation: self.gi,
        };
        if triggers == Triggers::default() {
            return Err(err(
                "data_change",
                "no trigger enabled: the block would never report".into(),
            ));
        }
        Ok(ReportPlan {
            name: self.rcb.clone(),
            reference: format!(
                "{}/{ln}${}${name}",
                domain_of(ied_name, &ld),
                if buffered { "BR" } else { "RP" }
            ),
            buffered,
            data_set,
            triggers,
            integrity_period_ms: self.integrity_period_ms,
            buffer_time_ms: self.buffer_time_ms,
        })
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
