//! The MMS client seen through one trait, so the protocol stack is
//! replaceable.
//!
//! The driver needs a handful of ACSI services from an MMS client: associate,
//! read, write, learn a variable's type, list data sets and their members,
//! configure and enable a report control block, receive reports, operate a
//! control, and browse. [`MmsBackend`] is exactly that, in this crate's own
//! types ([`MmsValue`], [`TypeTree`], [`ReportData`]), so the rest of the
//! crate never names the client library. The implementation shipped is
//! [`crate::rs_backend::RsBackend`] over the pure-Rust `iec61850-rs` crate;
//! a binding to another stack (or a scripted fake in tests) implements the
//! same trait.
//!
//! Every method blocks. The driver calls them from a dedicated thread per
//! device, never from an async task.

use std::time::Duration;

use crate::reference::Fc;
use crate::value::{MmsValue, TypeTree};

/// One variable to read or write: a dotted reference with its domain
/// (`IED1LD0/MMXU1.TotW.mag.f`) and functional constraint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VarRef {
    pub reference: String,
    pub fc: Fc,
}

/// Timeouts for one association.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect plus the association handshake.
    pub connect: Duration,
    /// Each confirmed request.
    pub request: Duration,
}

/// What went wrong with a service call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MmsError {
    /// No answer in time. The association is dropped.
    #[error("timed out")]
    Timeout,
    /// The connection failed or closed. The association is dropped.
    #[error("transport: {0}")]
    Transport(String),
    /// An answer that does not decode as what was asked.
    #[error("malformed answer: {0}")]
    Decode(String),
    /// The device refused the service (MMS ServiceError or reject).
    #[error("device refused the service: {0}")]
    Service(String),
    /// One variable of a read or write failed (MMS DataAccessError).
    #[error("data access error {code} ({})", access_reason(*code))]
    Access { code: i64 },
    /// A control was refused; `add_cause` is IEC 61850-8-1 Table 77's value.
    #[error("control refused: {cause} (AddCause {add_cause})")]
    ControlRefused { add_cause: i64, cause: String },
    /// The request could not be built (a reference the library refuses).
    #[error("request not valid: {0}")]
    Local(String),
    /// No association is open.
    #[error("not connected")]
    NotConnected,
}

impl MmsError {
    /// Whether the association can no longer be trusted and must be closed.
    pub fn drops_connection(&self) -> bool {
        matches!(
            self,
            MmsError::Timeout | MmsError::Transport(_) | MmsError::NotConnected
        )
    }
}

/// ISO 9506 names of `DataAccessError` codes.
pub fn access_reason(code: i64) -> &'static str {
    match code {
        0 => "object-invalidated",
        1 => "hardware-fault",
        2 => "temporarily-unavailable",
        3 => "object-access-denied",
        4 => "object-undefined",
        5 => "invalid-address",
        6 => "type-unsupported",
        7 => "type-inconsistent",
        8 => "object-attribute-inconsistent",
        9 => "object-access-unsupported",
        10 => "object-non-existent",
        11 => "object-value-invalid",
        _ => "unknown",
    }
}

/// Trigger options of a report control block (`TrgOps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Triggers {
    pub data_change: bool,
    pub quality_change: bool,
    pub data_update: bool,
    pub integrity: bool,
    pub general_interrogation: bool,
}

/// How to configure one report control block before enabling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcbSetup {
    /// The block in MMS form: `IED1LD0/LLN0$BR$brcb01`.
    pub reference: String,
    pub buffered: bool,
    /// `DatSet` to write, in MMS form (`IED1LD0/LLN0$Measurements`);
    /// `None` keeps the engineered one.
    pub data_set: Option<String>,
    pub triggers: Triggers,
    /// `IntgPd` in ms, written when set.
    pub integrity_period_ms: Option<u32>,
    /// `BufTm` in ms, written when set.
    pub buffer_time_ms: Option<u32>,
    /// Buffered blocks: resume after this `EntryID` (the last one received
    /// on the previous association), so the device replays what was missed.
    pub resume_after: Option<Vec<u8>>,
}

/// A report control block as the device has it after enabling.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RcbState {
    pub rpt_id: Option<String>,
    /// In MMS form, `IED1LD0/LLN0$Measurements`.
    pub data_set: Option<String>,
    pub integrity_period_ms: Option<u32>,
    pub enabled: bool,
}

/// One member of a data set carried by a report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportMember {
    /// Position of the member in the data set.
    pub index: usize,
    /// `data-reference`, when the report carries references.
    pub reference: Option<String>,
    pub value: MmsValue,
    /// `ReasonCode` as `TrgOps` bits: 0x40 data change, 0x20 quality
    /// change, 0x10 data update, 0x08 integrity, 0x04 general interrogation.
    pub reason: Option<u8>,
}

/// A report, decoded and (if segmented) reassembled.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportData {
    pub rpt_id: String,
    pub seq_num: Option<u32>,
    /// `TimeOfEntry` as epoch ms.
    pub time_of_entry_ms: Option<i64>,
    /// In MMS form.
    pub data_set: Option<String>,
    pub buffer_overflow: Option<bool>,
    pub entry_id: Option<Vec<u8>>,
    pub conf_rev: Option<u32>,
    pub members: Vec<ReportMember>,
}

/// Reason-code bits (as in [`ReportMember::reason`]).
pub mod reason {
    pub const DATA_CHANGE: u8 = 0x40;
    pub const QUALITY_CHANGE: u8 = 0x20;
    pub const DATA_UPDATE: u8 = 0x10;
    pub const INTEGRITY: u8 = 0x08;
    pub const GENERAL_INTERROGATION: u8 = 0x04;
}

/// The four IEC 61850-7-2 control models a point may be operated with.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ControlModel {
    /// Direct control with normal security: write `Oper`.
    Direct,
    /// Select-before-operate with normal security: read `SBO`, write `Oper`.
    Sbo,
    /// Direct control with enhanced security: write `Oper`, wait for the
    /// command termination.
    DirectEnhanced,
    /// Select-before-operate with enhanced security: write `SBOw`, write
    /// `Oper`, wait for the command termination.
    SboEnhanced,
}

impl ControlModel {
    pub fn as_str(self) -> &'static str {
        match self {
            ControlModel::Direct => "direct",
            ControlModel::Sbo => "sbo",
            ControlModel::DirectEnhanced => "direct_enhanced",
            ControlModel::SboEnhanced => "sbo_enhanced",
        }
    }

    /// From the `ctlModel` enumeration (1-4); 0 (status-only) and unknown
    /// codes are not operable.
    pub fn from_code(code: i64) -> Option<ControlModel> {
        match code {
            1 => Some(ControlModel::Direct),
            2 => Some(ControlModel::Sbo),
            3 => Some(ControlModel::DirectEnhanced),
            4 => Some(ControlModel::SboEnhanced),
            _ => None,
        }
    }

    /// From SCL's `ctlModel` text (`direct-with-normal-security`, ...).
    pub fn from_scl(text: &str) -> Option<ControlModel> {
        match text.trim() {
            "direct-with-normal-security" => Some(ControlModel::Direct),
            "sbo-with-normal-security" => Some(ControlModel::Sbo),
            "direct-with-enhanced-security" => Some(ControlModel::DirectEnhanced),
            "sbo-with-enhanced-security" => Some(ControlModel::SboEnhanced),
            other => other.parse::<i64>().ok().and_then(ControlModel::from_code),
        }
    }
}

impl std::str::FromStr for ControlModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "direct" => Ok(ControlModel::Direct),
            "sbo" => Ok(ControlModel::Sbo),
            "direct_enhanced" => Ok(ControlModel::DirectEnhanced),
            "sbo_enhanced" => Ok(ControlModel::SboEnhanced),
            _ => Err(format!(
                "unknown control model {s:?}; expected direct, sbo, direct_enhanced or sbo_enhanced"
            )),
        }
    }
}

/// One control operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operate {
    /// The controllable data object, dotted with its domain:
    /// `IED1LD0/GGIO1.SPCSO1`.
    pub object: String,
    pub model: ControlModel,
    /// `ctlVal`, already in the type the object expects.
    pub value: MmsValue,
    /// `orIdent`: who issues the command.
    pub originator: String,
}

/// A blocking MMS client for one device.
pub trait MmsBackend: Send {
    /// Opens an association to `address` (`host:port`), closing any
    /// previous one.
    fn connect(&mut self, address: &str, timeouts: Timeouts) -> Result<(), MmsError>;

    /// Releases the association (best effort) and closes the socket.
    fn close(&mut self);

    /// Reads several variables in one request; one result per variable.
    /// The outer error is a failure of the whole request.
    fn read(&mut self, vars: &[VarRef]) -> Result<Vec<Result<MmsValue, MmsError>>, MmsError>;

    /// Writes one variable.
    fn write(&mut self, var: &VarRef, value: &MmsValue) -> Result<(), MmsError>;

    /// The type of one variable (`GetVariableAccessAttributes`). `var` may
    /// be in MMS form (`IED1LD0/MMXU1$MX$TotW`).
    fn type_of(&mut self, var: &VarRef) -> Result<TypeTree, MmsError>;

    /// The members of a data set (`IED1LD0/LLN0$Measurements`), in MMS form.
    fn data_set_members(&mut self, data_set: &str) -> Result<Vec<String>, MmsError>;

    /// Configures and enables a report control block, and returns the
    /// block as the device then has it.
    fn enable_report(&mut self, setup: &RcbSetup) -> Result<RcbState, MmsError>;

    /// Asks an enabled block for a general interrogation.
    fn general_interrogation(&mut self, rcb: &str) -> Result<(), MmsError>;

    /// The next report, waiting up to `wait`; `Ok(None)` when none came.
    fn next_report(&mut self, wait: Duration) -> Result<Option<ReportData>, MmsError>;

    /// Runs a control sequence for the model given.
    fn operate(&mut self, op: &Operate) -> Result<(), MmsError>;

    /// A cheap round trip (MMS `Status`) that proves the association lives.
    fn status(&mut self) -> Result<(), MmsError>;

    /// The logical devices (MMS domains).
    fn logical_devices(&mut self) -> Result<Vec<String>, MmsError>;

    /// Every variable of one logical device, in MMS form without the domain
    /// (`MMXU1$MX$TotW$mag$f`).
    fn variables(&mut self, domain: &str) -> Result<Vec<String>, MmsError>;

    /// The data sets of one logical device (`LLN0$Measurements`).
    fn data_sets(&mut self, domain: &str) -> Result<Vec<String>, MmsError>;

    /// The whole namespace: every logical device with its variables and
    /// data sets.
    fn browse(&mut self) -> Result<Vec<BrowsedDevice>, MmsError> {
        let mut out = Vec::new();
        for domain in self.logical_devices()? {
            let variables = self.variables(&domain)?;
            let data_sets = self.data_sets(&domain)?;
            out.push(BrowsedDevice {
                domain,
                variables,
                data_sets,
            });
        }
        Ok(out)
    }
}

/// One logical device as [`MmsBackend::browse`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowsedDevice {
    /// The MMS domain (`IED1LD0`).
    pub domain: String,
    /// Variable names without the domain (`MMXU1$MX$TotW$mag$f`).
    pub variables: Vec<String>,
    /// Data set names without the domain (`LLN0$Measurements`).
    pub data_sets: Vec<String>,
}
