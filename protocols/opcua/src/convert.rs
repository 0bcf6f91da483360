//! Sans-IO conversions between OPC UA values and gateway samples and
//! commands: value → number, status → quality, the timestamp rule, command
//! value → typed variant, and status codes → error kinds for the counters.

use dcmms_protocols_core::{CommandError, CommandValue, Scaling};
use dcmms_shared::{PointId, Quality, Sample};
use opcua::types::{DataValue, DateTime, StatusCode, Variant};

use crate::config::WriteType;

/// The number a variant carries: numeric types as they are, Boolean as
/// 0/1; `None` for everything else (strings, arrays, structures, empty).
pub fn variant_to_f64(v: &Variant) -> Option<f64> {
    Some(match v {
        Variant::Boolean(b) => f64::from(u8::from(*b)),
        Variant::SByte(x) => f64::from(*x),
        Variant::Byte(x) => f64::from(*x),
        Variant::Int16(x) => f64::from(*x),
        Variant::UInt16(x) => f64::from(*x),
        Variant::Int32(x) => f64::from(*x),
        Variant::UInt32(x) => f64::from(*x),
        Variant::Int64(x) => *x as f64,
        Variant::UInt64(x) => *x as f64,
        Variant::Float(x) => f64::from(*x),
        Variant::Double(x) => *x,
        _ => return None,
    })
}

/// The write type matching a value's variant, if it is one we can write.
pub fn write_type_of(v: &Variant) -> Option<WriteType> {
    Some(match v {
        Variant::Boolean(_) => WriteType::Boolean,
        Variant::SByte(_) => WriteType::Sbyte,
        Variant::Byte(_) => WriteType::Byte,
        Variant::Int16(_) => WriteType::Int16,
        Variant::UInt16(_) => WriteType::Uint16,
        Variant::Int32(_) => WriteType::Int32,
        Variant::UInt32(_) => WriteType::Uint32,
        Variant::Int64(_) => WriteType::Int64,
        Variant::UInt64(_) => WriteType::Uint64,
        Variant::Float(_) => WriteType::Float,
        Variant::Double(_) => WriteType::Double,
        _ => return None,
    })
}

/// Good → Good, Uncertain → Uncertain, Bad → Bad; no status means Good
/// (OPC UA Part 6: an omitted StatusCode is Good).
pub fn quality_of(status: Option<StatusCode>) -> Quality {
    match status {
        None => Quality::Good,
        Some(s) if s.is_good() => Quality::Good,
        Some(s) if s.is_uncertain() => Quality::Uncertain,
        Some(_) => Quality::Bad,
    }
}

/// Milliseconds since the Unix epoch of an OPC UA time; `None` for the
/// null time (1601) and anything before 1970.
pub fn unix_ms(t: &DateTime) -> Option<i64> {
    if t.is_null() {
        return None;
    }
    let ms = t.as_chrono().timestamp_millis();
    (ms > 0).then_some(ms)
}

/// The sample time: SourceTimestamp when present, else ServerTimestamp,
/// else the time the value was received.
pub fn timestamp_ms(dv: &DataValue, received_ms: i64) -> i64 {
    dv.source_timestamp
        .as_ref()
        .and_then(unix_ms)
        .or_else(|| dv.server_timestamp.as_ref().and_then(unix_ms))
        .unwrap_or(received_ms)
}

/// What became of one data value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Converted {
    /// A number (quality from the status).
    Value(Sample),
    /// A status without a usable number: a Bad sample, counted as a
    /// device-side error (the server says the value is not available).
    NoValue(Sample),
    /// A value that is not a number: a Bad sample, counted as a decode
    /// error (the point map names a variable of the wrong type).
    NotNumeric(Sample),
}

impl Converted {
    pub fn sample(&self) -> Sample {
        match self {
            Converted::Value(s) | Converted::NoValue(s) | Converted::NotNumeric(s) => *s,
        }
    }
}

/// Turns one data value of `point` into a sample.
pub fn to_sample(point: PointId, scaling: &Scaling, dv: &DataValue, received_ms: i64) -> Converted {
    let ts = timestamp_ms(dv, received_ms);
    let quality = quality_of(dv.status);
    match dv.value.as_ref() {
        None | Some(Variant::Empty) => Converted::NoValue(Sample::bad(point, ts)),
        Some(v) => match variant_to_f64(v) {
            Some(raw) if quality != Quality::Bad => Converted::Value(Sample {
                point,
                ts_ms: ts,
                value: scaling.apply(raw),
                quality,
            }),
            Some(_) => Converted::NoValue(Sample::bad(point, ts)),
            None => Converted::NotNumeric(Sample::bad(point, ts)),
        },
    }
}

/// The variant a command writes: the engineering value is turned back into
/// a raw value through the point's scaling, then into `ty`, refusing what
/// does not fit (fractions for integers, out-of-range values, a binary
/// command for a number type is 0/1).
pub fn command_variant(
    value: CommandValue,
    ty: WriteType,
    scaling: &Scaling,
) -> Result<Variant, CommandError> {
    let raw = match value {
        CommandValue::Binary(b) => {
            if ty == WriteType::Boolean {
                return Ok(Variant::Boolean(b));
            }
            f64::from(u8::from(b))
        }
        CommandValue::Analog(v) => {
            if !v.is_finite() {
                return Err(CommandError::BadValue(format!(
                    "{v} is not a finite number"
                )));
            }
            scaling.to_raw(v).ok_or_else(|| {
                CommandError::BadValue(format!("{v} cannot be unscaled for this point"))
            })?
        }
    };
    let int = |min: f64, max: f64| -> Result<f64, CommandError> {
        let r = raw.round();
        if (raw - r).abs() > 1e-9 * raw.abs().max(1.0) {
            return Err(CommandError::BadValue(format!(
                "{raw} is not a whole number (the variable is {})",
                ty.as_str()
            )));
        }
        if r < min || r > max {
            return Err(CommandError::BadValue(format!(
                "{raw} is outside {min}..={max} (the variable is {})",
                ty.as_str()
            )));
        }
        Ok(r)
    };
    Ok(match ty {
        WriteType::Boolean => {
            if raw == 0.0 {
                Variant::Boolean(false)
            } else if raw == 1.0 {
                Variant::Boolean(true)
            } else {
                return Err(CommandError::BadValue(format!(
                    "{raw}: a boolean variable takes 0 or 1"
                )));
            }
        }
        WriteType::Sbyte => Variant::SByte(int(-128.0, 127.0)? as i8),
        WriteType::Byte => Variant::Byte(int(0.0, 255.0)? as u8),
        WriteType::Int16 => Variant::Int16(int(-32768.0, 32767.0)? as i16),
        WriteType::Uint16 => Variant::UInt16(int(0.0, 65535.0)? as u16),
        WriteType::Int32 => Variant::Int32(int(-2147483648.0, 2147483647.0)? as i32),
        WriteType::Uint32 => Variant::UInt32(int(0.0, 4294967295.0)? as u32),
        // f64 holds integers exactly up to 2^53; refuse beyond.
        WriteType::Int64 => Variant::Int64(int(-9007199254740992.0, 9007199254740992.0)? as i64),
        WriteType::Uint64 => Variant::UInt64(int(0.0, 9007199254740992.0)? as u64),
        WriteType::Float => {
            if raw.abs() > f64::from(f32::MAX) {
                return Err(CommandError::BadValue(format!(
                    "{raw} does not fit a float"
                )));
            }
            Variant::Float(raw as f32)
        }
        WriteType::Double => Variant::Double(raw),
    })
}

/// Which counter an error status belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The server answered and refused (access, identity, certificate,
    /// unknown node, ...).
    Refused,
    Timeout,
    Transport,
    Decode,
}

/// Sorts a failure status into a counter.
pub fn classify(status: StatusCode) -> ErrorKind {
    let code = status.bits() & 0xFFFF_0000;
    let is = |s: StatusCode| code == s.bits();
    if is(StatusCode::BadTimeout) || is(StatusCode::BadRequestTimeout) {
        ErrorKind::Timeout
    } else if is(StatusCode::BadCommunicationError)
        || is(StatusCode::BadConnectionClosed)
        || is(StatusCode::BadServerNotConnected)
        || is(StatusCode::BadNotConnected)
        || is(StatusCode::BadSecureChannelClosed)
        || is(StatusCode::BadNoCommunication)
        || is(StatusCode::BadTcpEndpointUrlInvalid)
        || is(StatusCode::BadConnectionRejected)
    {
        ErrorKind::Transport
    } else if is(StatusCode::BadDecodingError) || is(StatusCode::BadEncodingError) {
        ErrorKind::Decode
    } else {
        ErrorKind::Refused
    }
}

/// A hint for the operator for failures that have a usual cause.
pub fn hint(status: StatusCode) -> Option<&'static str> {
    let code = status.bits() & 0xFFFF_0000;
    let is = |s: StatusCode| code == s.bits();
    if is(StatusCode::BadUserAccessDenied)
        || is(StatusCode::BadIdentityTokenRejected)
        || is(StatusCode::BadIdentityTokenInvalid)
    {
        Some("the server refused the user identity: check user and password (or password_env)")
    } else if is(StatusCode::BadCertificateUntrusted) || is(StatusCode::BadSecurityChecksFailed) {
        Some("a certificate was not trusted: move the server certificate from <pki_dir>/rejected to <pki_dir>/trusted (or set trust_server_cert = true), and make sure the server trusts the gateway's certificate")
    } else if is(StatusCode::BadTcpEndpointUrlInvalid) {
        Some("no such endpoint on the server: check the path of `endpoint`")
    } else if is(StatusCode::BadNodeIdUnknown) || is(StatusCode::BadNodeIdInvalid) {
        Some("the server has no such node: check the point's node_id")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dv(value: Option<Variant>, status: Option<StatusCode>) -> DataValue {
        DataValue {
            value,
            status,
            source_timestamp: None,
            source_picoseconds: None,
            server_timestamp: None,
            server_picoseconds: None,
        }
    }

    #[test]
    fn numbers_and_quality() {
        let p = PointId(7);
        let s = Scaling::new(0.1, 1.0);
        match to_sample(p, &s, &dv(Some(Variant::Int32(100)), None), 5) {
            Converted::Value(x) => {
                assert_eq!(x.value, 11.0);
                assert_eq!(x.quality, Quality::Good);
                assert_eq!(x.ts_ms, 5);
            }
            other => panic!("{other:?}"),
        }
        let u = to_sample(
            p,
            &Scaling::default(),
            &dv(
                Some(Variant::Double(2.5)),
                Some(StatusCode::UncertainLastUsableValue),
            ),
            5,
        );
        assert_eq!(u.sample().quality, Quality::Uncertain);
        assert_eq!(u.sample().value, 2.5);
        let b = to_sample(
            p,
            &Scaling::default(),
            &dv(
                Some(Variant::Boolean(true)),
                Some(StatusCode::BadSensorFailure),
            ),
            5,
        );
        assert!(matches!(b, Converted::NoValue(_)));
        assert_eq!(b.sample().quality, Quality::Bad);
        assert!(matches!(
            to_sample(
                p,
                &Scaling::default(),
                &dv(None, Some(StatusCode::BadNodeIdUnknown)),
                5
            ),
            Converted::NoValue(_)
        ));
        assert!(matches!(
            to_sample(
                p,
                &Scaling::default(),
                &dv(Some(Variant::from("text")), None),
                5
            ),
            Converted::NotNumeric(_)
        ));
        assert_eq!(variant_to_f64(&Variant::Boolean(true)), Some(1.0));
        assert_eq!(
            variant_to_f64(&Variant::UInt64(u64::MAX)),
            Some(u64::MAX as f64)
        );
    }

    #[test]
    fn timestamp_rule() {
        let src = DateTime::from(1_700_000_000_000i64 * 10_000 + 116_444_736_000_000_000);
        let srv = DateTime::from(1_700_000_001_000i64 * 10_000 + 116_444_736_000_000_000);
        let mut v = dv(Some(Variant::Double(1.0)), None);
        assert_eq!(timestamp_ms(&v, 42), 42);
        v.server_timestamp = Some(srv);
        assert_eq!(timestamp_ms(&v, 42), 1_700_000_001_000);
        v.source_timestamp = Some(src);
        assert_eq!(timestamp_ms(&v, 42), 1_700_000_000_000);
        v.source_timestamp = Some(DateTime::null());
        assert_eq!(timestamp_ms(&v, 42), 1_700_000_001_000);
    }

    #[test]
    fn commands_fit_the_type() {
        let id = Scaling::default();
        assert_eq!(
            command_variant(CommandValue::Analog(12.0), WriteType::Int16, &id),
            Ok(Variant::Int16(12))
        );
        assert!(command_variant(CommandValue::Analog(12.5), WriteType::Int16, &id).is_err());
        assert!(command_variant(CommandValue::Analog(70000.0), WriteType::Uint16, &id).is_err());
        assert!(command_variant(CommandValue::Analog(-1.0), WriteType::Uint32, &id).is_err());
        assert_eq!(
            command_variant(CommandValue::Binary(true), WriteType::Boolean, &id),
            Ok(Variant::Boolean(true))
        );
        assert_eq!(
            command_variant(CommandValue::Analog(1.0), WriteType::Boolean, &id),
            Ok(Variant::Boolean(true))
        );
        assert!(command_variant(CommandValue::Analog(2.0), WriteType::Boolean, &id).is_err());
        assert_eq!(
            command_variant(CommandValue::Binary(true), WriteType::Int32, &id),
            Ok(Variant::Int32(1))
        );
        assert!(command_variant(CommandValue::Analog(f64::NAN), WriteType::Double, &id).is_err());
        assert!(command_variant(CommandValue::Analog(1e300), WriteType::Float, &id).is_err());
        // 50.0 engineering with scale 0.1 is raw 500.
        assert_eq!(
            command_variant(
                CommandValue::Analog(50.0),
                WriteType::Int32,
                &Scaling::new(0.1, 0.0)
            ),
            Ok(Variant::Int32(500))
        );
    }

    #[test]
    fn status_classes() {
        assert_eq!(classify(StatusCode::BadTimeout), ErrorKind::Timeout);
        assert_eq!(
            classify(StatusCode::BadConnectionClosed),
            ErrorKind::Transport
        );
        assert_eq!(classify(StatusCode::BadDecodingError), ErrorKind::Decode);
        assert_eq!(
            classify(StatusCode::BadUserAccessDenied),
            ErrorKind::Refused
        );
        assert!(hint(StatusCode::BadUserAccessDenied)
            .unwrap()
            .contains("password"));
        assert!(hint(StatusCode::BadCertificateUntrusted)
            .unwrap()
            .contains("trusted"));
        assert_eq!(hint(StatusCode::BadTimeout), None);
    }

    fn arb_variant() -> impl Strategy<Value = Variant> {
        prop_oneof![
            any::<bool>().prop_map(Variant::Boolean),
            any::<i8>().prop_map(Variant::SByte),
            any::<u8>().prop_map(Variant::Byte),
            any::<i16>().prop_map(Variant::Int16),
            any::<u16>().prop_map(Variant::UInt16),
            any::<i32>().prop_map(Variant::Int32),
            any::<u32>().prop_map(Variant::UInt32),
            any::<i64>().prop_map(Variant::Int64),
            any::<u64>().prop_map(Variant::UInt64),
            any::<f32>().prop_map(Variant::Float),
            any::<f64>().prop_map(Variant::Double),
            "\\PC{0,20}".prop_map(|s| Variant::from(s.as_str())),
            Just(Variant::Empty),
        ]
    }

    proptest! {
        #[test]
        fn any_data_value_gives_one_sample(
            v in proptest::option::of(arb_variant()),
            status in proptest::option::of(any::<u32>()),
            src in proptest::option::of(any::<i64>()),
            srv in proptest::option::of(any::<i64>()),
            rx in 1i64..4_000_000_000_000,
        ) {
            let mut d = dv(v.clone(), status.map(StatusCode::from));
            d.source_timestamp = src.map(DateTime::from);
            d.server_timestamp = srv.map(DateTime::from);
            let c = to_sample(PointId(1), &Scaling::default(), &d, rx);
            let s = c.sample();
            prop_assert!(s.ts_ms > 0);
            if let Converted::Value(x) = c {
                prop_assert_ne!(x.quality, Quality::Bad);
                prop_assert_eq!(Some(x.value), v.as_ref().and_then(variant_to_f64));
            } else {
                prop_assert_eq!(s.quality, Quality::Bad);
            }
        }

        #[test]
        fn integer_commands_round_trip(x in -40000i64..80000, ty in proptest::sample::select(WriteType::ALL.to_vec())) {
            match command_variant(CommandValue::Analog(x as f64), ty, &Scaling::default()) {
                Ok(v) => prop_assert_eq!(variant_to_f64(&v), Some(x as f64)),
                Err(e) => prop_assert!(matches!(e, CommandError::BadValue(_))),
            }
        }
    }
}
