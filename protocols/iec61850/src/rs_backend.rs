//! [`MmsBackend`] over the pure-Rust `iec61850-rs` client.
//!
//! This is the only module that names `iec61850_rs`. It converts the
//! library's values, types, reports and errors into this crate's neutral
//! ones and adds nothing of its own: the protocol work (association,
//! segmentation, report decoding and reassembly, control sequences) is the
//! library's. It blocks; the driver runs it on a dedicated thread.

use std::time::Duration;

use iec61850_rs::client::{
    AddCause, Client, ClientConfig, OptFlds, OriginCategory, RcbSettings, TrgOps, TypeSpec,
    Unsolicited,
};
use iec61850_rs::proto::data::Value;
use iec61850_rs::Error;

use crate::backend::{
    ControlModel, MmsBackend, MmsError, Operate, RcbSetup, RcbState, ReportData, ReportMember,
    Timeouts, VarRef,
};
use crate::reference::Fc;
use crate::value::{LeafType, MmsValue, TypeTree, UtcTime};

/// The `iec61850-rs` MMS client, one association at a time.
#[derive(Debug, Default)]
pub struct RsBackend {
    client: Option<Client>,
}

impl RsBackend {
    pub fn new() -> Self {
        RsBackend { client: None }
    }

    fn client(&mut self) -> Result<&mut Client, MmsError> {
        self.client.as_mut().ok_or(MmsError::NotConnected)
    }

    /// Runs `f` on the client; an error that ends the association drops it,
    /// so the next call reports `NotConnected` instead of using a dead link.
    fn with<T>(&mut self, f: impl FnOnce(&mut Client) -> Result<T, Error>) -> Result<T, MmsError> {
        let result = f(self.client()?).map_err(convert_error);
        if let Err(e) = &result {
            if e.drops_connection() {
                self.drop_client();
            }
        }
        result
    }

    fn drop_client(&mut self) {
        // The peer is likely gone: no orderly release (which would wait for
        // an answer that never comes); dropping the client closes the socket.
        self.client = None;
    }
}

fn fc(fc: Fc) -> iec61850_rs::Fc {
    match fc {
        Fc::ST => iec61850_rs::Fc::ST,
        Fc::MX => iec61850_rs::Fc::MX,
        Fc::SP => iec61850_rs::Fc::SP,
        Fc::SV => iec61850_rs::Fc::SV,
        Fc::CF => iec61850_rs::Fc::CF,
        Fc::DC => iec61850_rs::Fc::DC,
        Fc::SG => iec61850_rs::Fc::SG,
        Fc::SE => iec61850_rs::Fc::SE,
        Fc::SR => iec61850_rs::Fc::SR,
        Fc::OR => iec61850_rs::Fc::OR,
        Fc::BL => iec61850_rs::Fc::BL,
        Fc::EX => iec61850_rs::Fc::EX,
        Fc::CO => iec61850_rs::Fc::CO,
    }
}

/// The library's one error type, sorted into what the driver acts on.
pub(crate) fn convert_error(e: Error) -> MmsError {
    match e {
        Error::Io(msg) if msg.contains("timed out") => MmsError::Timeout,
        Error::Io(msg) => MmsError::Transport(msg),
        Error::Decode { reason, offset } => {
            MmsError::Decode(format!("{reason:?} at byte {offset}"))
        }
        Error::LimitExceeded { limit, value } => {
            MmsError::Decode(format!("limit {limit} exceeded ({value})"))
        }
        Error::Service { class, code } => {
            MmsError::Service(format!("service error class {class} code {code}"))
        }
        Error::Rejected {
            reason_tag, code, ..
        } => MmsError::Service(format!("request rejected (reason {reason_tag}/{code})")),
        Error::DataAccess(code) => MmsError::Access { code },
        Error::ControlRejected { add_cause } => MmsError::ControlRefused {
            add_cause,
            cause: format!("{:?}", AddCause::from_code(add_cause)),
        },
        Error::InvalidReference(m) | Error::NotFound(m) | Error::InvalidValue(m) => {
            MmsError::Local(m.to_owned())
        }
        Error::Encode(m) => MmsError::Local(m.to_owned()),
        Error::Scl(m) => MmsError::Local(m),
        other => MmsError::Decode(format!("{other:?}")),
    }
}

pub(crate) fn from_value(v: &Value) -> MmsValue {
    match v {
        Value::Array(m) => MmsValue::Array(m.iter().map(from_value).collect()),
        Value::Structure(m) => MmsValue::Structure(m.iter().map(from_value).collect()),
        Value::Boolean(b) => MmsValue::Bool(*b),
        Value::BitString { unused, bytes } => MmsValue::BitString {
            unused: *unused,
            bytes: bytes.clone(),
        },
        Value::Integer(i) => MmsValue::Int(*i),
        Value::Unsigned(u) => MmsValue::Uint(*u),
        Value::Float32(f) => MmsValue::Float32(*f),
        Value::Float64(f) => MmsValue::Float64(*f),
        Value::OctetString(b) => MmsValue::OctetString(b.clone()),
        Value::VisibleString(s) | Value::MmsString(s) => MmsValue::String(s.clone()),
        Value::UtcTime(t) => MmsValue::UtcTime(UtcTime {
            seconds: t.seconds,
            fraction: t.fraction,
            quality: t.quality.to_octet(),
        }),
        Value::BinaryTime(b) => MmsValue::BinaryTime(b.clone()),
        Value::Other { .. } => MmsValue::Other,
    }
}

pub(crate) fn to_value(v: &MmsValue) -> Result<Value, MmsError> {
    Ok(match v {
        MmsValue::Bool(b) => Value::Boolean(*b),
        MmsValue::Int(i) => Value::Integer(*i),
        MmsValue::Uint(u) => Value::Unsigned(*u),
        MmsValue::Float32(f) => Value::Float32(*f),
        MmsValue::Float64(f) => Value::Float64(*f),
        MmsValue::BitString { unused, bytes } => Value::BitString {
            unused: *unused,
            bytes: bytes.clone(),
        },
        MmsValue::OctetString(b) => Value::OctetString(b.clone()),
        MmsValue::String(s) => Value::VisibleString(s.clone()),
        MmsValue::UtcTime(t) => Value::UtcTime(iec61850_rs::UtcTime {
            seconds: t.seconds,
            fraction: t.fraction,
            quality: iec61850_rs::TimeQuality::from_octet(t.quality),
        }),
        MmsValue::BinaryTime(b) => Value::BinaryTime(b.clone()),
        MmsValue::Structure(m) => {
            Value::Structure(m.iter().map(to_value).collect::<Result<_, _>>()?)
        }
        MmsValue::Array(m) => Value::Array(m.iter().map(to_value).collect::<Result<_, _>>()?),
        MmsValue::Other => return Err(MmsError::Local("cannot encode an unknown type".into())),
    })
}

pub(crate) fn from_type(t: &TypeSpec) -> TypeTree {
    match t {
        TypeSpec::Structure { components, .. } => TypeTree::Structure(
            components
                .iter()
                .map(|c| (c.name.clone().unwrap_or_default(), from_type(&c.type_spec)))
                .collect(),
        ),
        TypeSpec::Array {
            elements,
            element_type,
            ..
        } => TypeTree::Array {
            len: *elements,
            element: Box::new(from_type(element_type)),
        },
        TypeSpec::Boolean => TypeTree::Leaf(LeafType::Bool),
        TypeSpec::BitString(n) => TypeTree::Leaf(LeafType::BitString(*n)),
        TypeSpec::Integer(_) => TypeTree::Leaf(LeafType::Int),
        TypeSpec::Unsigned(_) => TypeTree::Leaf(LeafType::Uint),
        TypeSpec::FloatingPoint { format_width, .. } => {
            TypeTree::Leaf(LeafType::Float(*format_width))
        }
        TypeSpec::OctetString(_) => TypeTree::Leaf(LeafType::OctetString),
        TypeSpec::VisibleString(_) | TypeSpec::MmsString(_) => TypeTree::Leaf(LeafType::String),
        TypeSpec::UtcTime => TypeTree::Leaf(LeafType::UtcTime),
        TypeSpec::BinaryTime(_) => TypeTree::Leaf(LeafType::BinaryTime),
        _ => TypeTree::Leaf(LeafType::Other),
    }
}

fn report_data(r: iec61850_rs::client::Report) -> ReportData {
    ReportData {
        rpt_id: r.rpt_id,
        seq_num: r.seq_num,
        time_of_entry_ms: r
            .time_of_entry
            .and_then(|t| i64::try_from(t.to_unix_millis()).ok()),
        data_set: r.data_set,
        buffer_overflow: r.buf_ovfl,
        entry_id: r.entry_id,
        conf_rev: r.conf_rev,
        members: r
            .entries
            .iter()
            .map(|e| ReportMember {
                index: e.index,
                reference: e.reference.clone(),
                value: from_value(&e.value),
                reason: e.reason.map(|rc| {
                    let (_, bytes) = rc.to_bit_string();
                    bytes.first().copied().unwrap_or(0)
                }),
            })
            .collect(),
    }
}

/// Splits `IED1LD0/LLN0$Measurements` into domain and item.
fn split_domain(name: &str) -> Result<(&str, &str), MmsError> {
    name.split_once('/')
        .filter(|(d, i)| !d.is_empty() && !i.is_empty())
        .ok_or_else(|| MmsError::Local(format!("{name:?} is not DOMAIN/ITEM")))
}

impl MmsBackend for RsBackend {
    fn connect(&mut self, address: &str, timeouts: Timeouts) -> Result<(), MmsError> {
        self.close();
        let mut cfg = ClientConfig {
            connect_timeout: timeouts.connect,
            ..ClientConfig::default()
        };
        cfg.association.connect_timeout_ms =
            u64::try_from(timeouts.connect.as_millis()).unwrap_or(u64::MAX);
        cfg.association.request_timeout_ms = u64::try_from(timeouts.request.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let client = Client::connect_with(address, &cfg).map_err(convert_error)?;
        self.client = Some(client);
        Ok(())
    }

    fn close(&mut self) {
        if let Some(mut c) = self.client.take() {
            // Orderly release; the library bounds the wait for the answer.
            let _ = c.release();
        }
    }

    fn read(&mut self, vars: &[VarRef]) -> Result<Vec<Result<MmsValue, MmsError>>, MmsError> {
        let refs: Vec<(&str, iec61850_rs::Fc)> = vars
            .iter()
            .map(|v| (v.reference.as_str(), fc(v.fc)))
            .collect();
        let results = self.with(|c| c.read_many_results(&refs))?;
        if results.len() != vars.len() {
            return Err(MmsError::Decode(format!(
                "{} values for {} variables",
                results.len(),
                vars.len()
            )));
        }
        Ok(results
            .into_iter()
            .map(|r| r.map(|v| from_value(&v)).map_err(convert_error))
            .collect())
    }

    fn write(&mut self, var: &VarRef, value: &MmsValue) -> Result<(), MmsError> {
        let v = to_value(value)?;
        self.with(|c| c.write(&var.reference, fc(var.fc), &v))
    }

    fn type_of(&mut self, var: &VarRef) -> Result<TypeTree, MmsError> {
        self.with(|c| c.variable_type(&var.reference, fc(var.fc)))
            .map(|t| from_type(&t))
    }

    fn data_set_members(&mut self, data_set: &str) -> Result<Vec<String>, MmsError> {
        let (domain, item) = split_domain(data_set)?;
        let (domain, item) = (domain.to_owned(), item.to_owned());
        self.with(|c| c.data_set_members(&domain, &item))
    }

    fn enable_report(&mut self, setup: &RcbSetup) -> Result<RcbState, MmsError> {
        let t = setup.triggers;
        let trg = TrgOps::NONE
            .with_data_change(t.data_change)
            .with_quality_change(t.quality_change)
            .with_data_update(t.data_update)
            .with_integrity(t.integrity)
            .with_general_interrogation(t.general_interrogation);
        let opt = OptFlds::NONE
            .with_sequence_number(true)
            .with_report_time_stamp(true)
            .with_data_set_name(true)
            .with_reason_for_inclusion(true)
            .with_conf_revision(true)
            .with_entry_id(setup.buffered)
            .with_buffer_overflow(setup.buffered);
        let settings = RcbSettings {
            data_set: setup.data_set.clone(),
            opt_flds: Some(opt),
            trg_ops: Some(trg),
            buf_tm: setup.buffer_time_ms,
            intg_pd: setup.integrity_period_ms,
            entry_id: setup.resume_after.clone(),
            ..RcbSettings::default()
        };
        let which = if setup.buffered {
            iec61850_rs::Fc::BR
        } else {
            iec61850_rs::Fc::RP
        };
        let rcb = self.with(|c| c.enable_rcb(&setup.reference, which, &settings))?;
        Ok(RcbState {
            rpt_id: rcb.rpt_id,
            data_set: rcb.data_set,
            integrity_period_ms: rcb.intg_pd,
            enabled: rcb.rpt_ena,
        })
    }

    fn general_interrogation(&mut self, rcb: &str) -> Result<(), MmsError> {
        // The reference carries its own constraint (`$BR$` or `$RP$`).
        self.with(|c| c.general_interrogation(rcb, iec61850_rs::Fc::RP))
    }

    fn next_report(&mut self, wait: Duration) -> Result<Option<ReportData>, MmsError> {
        loop {
            let item = self.with(|c| c.next_unsolicited(wait))?;
            match item {
                Some(Unsolicited::Report(r)) => return Ok(Some(report_data(*r))),
                // A report the library could not decode is handed over raw.
                Some(Unsolicited::Other { name, .. }) => {
                    return Err(MmsError::Decode(format!("undecodable report {name:?}")))
                }
                // A late command termination: the operate already returned.
                Some(Unsolicited::CommandTermination(_)) => continue,
                None => return Ok(None),
            }
        }
    }

    fn operate(&mut self, op: &Operate) -> Result<(), MmsError> {
        let model = match op.model {
            ControlModel::Direct => iec61850_rs::client::ControlModel::DirectNormal,
            ControlModel::Sbo => iec61850_rs::client::ControlModel::SboNormal,
            ControlModel::DirectEnhanced => iec61850_rs::client::ControlModel::DirectEnhanced,
            ControlModel::SboEnhanced => iec61850_rs::client::ControlModel::SboEnhanced,
        };
        let value = to_value(&op.value)?;
        self.with(|c| {
            c.control(&op.object)
                .model(model)
                .origin(OriginCategory::RemoteControl, &op.originator)
                .execute(&value)
                .map(|_| ())
        })
    }

    fn status(&mut self) -> Result<(), MmsError> {
        self.with(|c| c.status(false)).map(|_| ())
    }

    fn logical_devices(&mut self) -> Result<Vec<String>, MmsError> {
        self.with(|c| c.server_directory())
    }

    fn variables(&mut self, domain: &str) -> Result<Vec<String>, MmsError> {
        self.with(|c| c.logical_device_directory(domain))
    }

    fn data_sets(&mut self, domain: &str) -> Result<Vec<String>, MmsError> {
        self.with(|c| c.data_set_directory(domain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_convert_both_ways() {
        let v = MmsValue::Structure(vec![
            MmsValue::Bool(true),
            MmsValue::Int(-3),
            MmsValue::Uint(9),
            MmsValue::Float32(1.5),
            MmsValue::Float64(2.5),
            MmsValue::BitString {
                unused: 3,
                bytes: vec![0xc1, 0],
            },
            MmsValue::String("x".into()),
            MmsValue::UtcTime(UtcTime {
                seconds: 5,
                fraction: 7,
                quality: 0x8a,
            }),
            MmsValue::Array(vec![MmsValue::OctetString(vec![1, 2])]),
        ]);
        assert_eq!(from_value(&to_value(&v).unwrap()), v);
        assert!(to_value(&MmsValue::Other).is_err());
    }

    #[test]
    fn errors_are_sorted() {
        assert_eq!(
            convert_error(Error::Io("request timed out".into())),
            MmsError::Timeout
        );
        assert!(
            convert_error(Error::Io("the peer closed the connection".into())).drops_connection()
        );
        assert_eq!(
            convert_error(Error::DataAccess(10)),
            MmsError::Access { code: 10 }
        );
        let e = convert_error(Error::ControlRejected { add_cause: 10 });
        assert!(e.to_string().contains("BlockedByInterlocking"), "{e}");
        assert!(!convert_error(Error::Service { class: 7, code: 1 }).drops_connection());
        assert!(split_domain("IED1LD0/LLN0$ds").is_ok());
        assert!(split_domain("nodomain").is_err());
    }

    #[test]
    fn calls_without_association_say_so() {
        let mut b = RsBackend::new();
        assert_eq!(b.status(), Err(MmsError::NotConnected));
        assert_eq!(
            b.next_report(Duration::from_millis(1)),
            Err(MmsError::NotConnected)
        );
    }
}
