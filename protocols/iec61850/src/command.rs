//! Commands to MMS requests, sans-IO: checking a command against its point,
//! encoding the value in the type the device declares for `ctlVal` (or for
//! the written attribute), and naming why a device refused one.
//!
//! The type is learned from the device (`GetVariableAccessAttributes`), not
//! configured: a single-point control takes a boolean, a double-point one a
//! boolean too (true = on), an analogue set point an `AnalogueValue`
//! structure (`f` and/or `i`), an integer-step control an integer, and a
//! binary-step control (`Tcmd`) a two-bit string where true means higher.

use dcmms_protocols_core::{CommandError, CommandValue, Scaling};

use crate::backend::{access_reason, MmsError};
use crate::value::{LeafType, MmsValue, TypeTree};

/// The `Tcmd` codes of a binary-step control.
const TCMD_LOWER: u8 = 1;
const TCMD_HIGHER: u8 = 2;

/// Encodes `value` (engineering units, unscaled through `scaling`) as the
/// MMS value of type `ty`.
pub fn encode_command(
    ty: &TypeTree,
    value: CommandValue,
    scaling: &Scaling,
) -> Result<MmsValue, CommandError> {
    let raw = match value {
        CommandValue::Analog(v) => {
            if !v.is_finite() {
                return Err(CommandError::BadValue(format!(
                    "{v} is not a finite number"
                )));
            }
            let raw = scaling
                .to_raw(v)
                .ok_or_else(|| CommandError::BadValue("the point's scale is zero".into()))?;
            Raw::Number(raw)
        }
        CommandValue::Binary(b) => Raw::Bool(b),
    };
    encode(ty, raw)
}

#[derive(Debug, Clone, Copy)]
enum Raw {
    Number(f64),
    Bool(bool),
}

fn integral(x: f64, lo: f64, hi: f64) -> Result<f64, CommandError> {
    let r = x.round();
    if (x - r).abs() > 1e-9 || r < lo || r > hi {
        return Err(CommandError::BadValue(format!(
            "{x} is not a whole number in {lo}..={hi}"
        )));
    }
    Ok(r)
}

fn encode(ty: &TypeTree, raw: Raw) -> Result<MmsValue, CommandError> {
    match (ty, raw) {
        (TypeTree::Leaf(LeafType::Bool), Raw::Bool(b)) => Ok(MmsValue::Bool(b)),
        (TypeTree::Leaf(LeafType::Bool), Raw::Number(x)) => {
            Ok(MmsValue::Bool(integral(x, 0.0, 1.0)? != 0.0))
        }
        (TypeTree::Leaf(LeafType::Int), Raw::Number(x)) => {
            Ok(MmsValue::Int(
                integral(x, i32::MIN.into(), i32::MAX.into())? as i64,
            ))
        }
        (TypeTree::Leaf(LeafType::Int), Raw::Bool(b)) => Ok(MmsValue::Int(i64::from(b))),
        (TypeTree::Leaf(LeafType::Uint), Raw::Number(x)) => {
            Ok(MmsValue::Uint(integral(x, 0.0, u32::MAX.into())? as u64))
        }
        (TypeTree::Leaf(LeafType::Uint), Raw::Bool(b)) => Ok(MmsValue::Uint(u64::from(b))),
        (TypeTree::Leaf(LeafType::Float(64)), Raw::Number(x)) => Ok(MmsValue::Float64(x)),
        (TypeTree::Leaf(LeafType::Float(_)), Raw::Number(x)) => {
            let f = x as f32;
            if !f.is_finite() {
                return Err(CommandError::BadValue(format!(
                    "{x} does not fit a 32-bit float"
                )));
            }
            Ok(MmsValue::Float32(f))
        }
        (TypeTree::Leaf(LeafType::BitString(2 | -2)), raw) => {
            let code = match raw {
                Raw::Bool(true) => TCMD_HIGHER,
                Raw::Bool(false) => TCMD_LOWER,
                Raw::Number(x) => integral(x, 0.0, 3.0)? as u8,
            };
            Ok(MmsValue::BitString {
                unused: 6,
                bytes: vec![code << 6],
            })
        }
        // AnalogueValue {i, f}: every component gets the same number.
        (TypeTree::Structure(components), Raw::Number(_))
            if !components.is_empty() && components.iter().all(|(n, _)| n == "i" || n == "f") =>
        {
            components
                .iter()
                .map(|(_, t)| encode(t, raw))
                .collect::<Result<Vec<_>, _>>()
                .map(MmsValue::Structure)
        }
        (TypeTree::Leaf(LeafType::Float(_)), Raw::Bool(_))
        | (TypeTree::Structure(_), Raw::Bool(_)) => Err(CommandError::BadValue(
            "this point takes an analog value, not a binary one".into(),
        )),
        (other, _) => Err(CommandError::BadValue(format!(
            "the device's value type ({}) is not one commands can set",
            describe(other)
        ))),
    }
}

fn describe(ty: &TypeTree) -> &'static str {
    match ty {
        TypeTree::Leaf(LeafType::BitString(_)) => "bit string",
        TypeTree::Leaf(LeafType::String) => "string",
        TypeTree::Leaf(LeafType::OctetString) => "octet string",
        TypeTree::Leaf(LeafType::UtcTime | LeafType::BinaryTime) => "time",
        TypeTree::Leaf(_) => "primitive",
        TypeTree::Structure(_) => "structure",
        TypeTree::Array { .. } => "array",
    }
}

/// The command error for a failed service call.
pub fn command_error(e: MmsError) -> CommandError {
    match e {
        MmsError::Timeout => CommandError::Timeout,
        MmsError::NotConnected => CommandError::NotConnected,
        MmsError::Transport(m) => CommandError::Transport(m),
        MmsError::Decode(m) => CommandError::Transport(format!("malformed answer: {m}")),
        MmsError::ControlRefused { cause, add_cause } => {
            CommandError::Refused(format!("{cause} (AddCause {add_cause})"))
        }
        MmsError::Access { code } => {
            CommandError::Refused(format!("{} ({code})", access_reason(code)))
        }
        MmsError::Service(m) => CommandError::Refused(m),
        MmsError::Local(m) => CommandError::BadValue(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaf(t: LeafType) -> TypeTree {
        TypeTree::Leaf(t)
    }

    fn one() -> Scaling {
        Scaling::default()
    }

    #[test]
    fn encodes_each_control_type() {
        let b = CommandValue::Binary;
        let a = CommandValue::Analog;
        assert_eq!(
            encode_command(&leaf(LeafType::Bool), b(true), &one()),
            Ok(MmsValue::Bool(true))
        );
        assert_eq!(
            encode_command(&leaf(LeafType::Bool), a(0.0), &one()),
            Ok(MmsValue::Bool(false))
        );
        assert!(encode_command(&leaf(LeafType::Bool), a(2.0), &one()).is_err());
        assert_eq!(
            encode_command(&leaf(LeafType::Int), a(7.0), &one()),
            Ok(MmsValue::Int(7))
        );
        assert!(encode_command(&leaf(LeafType::Int), a(7.5), &one()).is_err());
        assert!(encode_command(&leaf(LeafType::Uint), a(-1.0), &one()).is_err());
        assert_eq!(
            encode_command(&leaf(LeafType::Float(32)), a(42.5), &one()),
            Ok(MmsValue::Float32(42.5))
        );
        assert_eq!(
            encode_command(&leaf(LeafType::Float(64)), a(0.1), &one()),
            Ok(MmsValue::Float64(0.1))
        );
        assert!(encode_command(&leaf(LeafType::Float(32)), a(1e300), &one()).is_err());
        assert!(encode_command(&leaf(LeafType::Float(32)), a(f64::NAN), &one()).is_err());
        let e = encode_command(&leaf(LeafType::Float(32)), b(true), &one()).unwrap_err();
        assert!(e.to_string().contains("analog"), "{e}");
        let tcmd = leaf(LeafType::BitString(2));
        assert_eq!(
            encode_command(&tcmd, b(true), &one()),
            Ok(MmsValue::BitString {
                unused: 6,
                bytes: vec![0x80]
            })
        );
        assert_eq!(
            encode_command(&tcmd, b(false), &one()),
            Ok(MmsValue::BitString {
                unused: 6,
                bytes: vec![0x40]
            })
        );
        let analogue = TypeTree::Structure(vec![("f".into(), leaf(LeafType::Float(32)))]);
        assert_eq!(
            encode_command(&analogue, a(50.0), &Scaling::new(0.1, 0.0)),
            Ok(MmsValue::Structure(vec![MmsValue::Float32(500.0)]))
        );
        let both = TypeTree::Structure(vec![
            ("i".into(), leaf(LeafType::Int)),
            ("f".into(), leaf(LeafType::Float(32))),
        ]);
        assert_eq!(
            encode_command(&both, a(3.0), &one()),
            Ok(MmsValue::Structure(vec![
                MmsValue::Int(3),
                MmsValue::Float32(3.0)
            ]))
        );
        let e = encode_command(&leaf(LeafType::String), a(1.0), &one()).unwrap_err();
        assert!(matches!(e, CommandError::BadValue(_)), "{e}");
        assert!(encode_command(&leaf(LeafType::Int), a(1.0), &Scaling::new(0.0, 0.0)).is_err());
    }

    #[test]
    fn refusals_are_named() {
        let e = command_error(MmsError::ControlRefused {
            add_cause: 10,
            cause: "BlockedByInterlocking".into(),
        });
        assert_eq!(
            e,
            CommandError::Refused("BlockedByInterlocking (AddCause 10)".into())
        );
        assert_eq!(
            command_error(MmsError::Access { code: 3 }),
            CommandError::Refused("object-access-denied (3)".into())
        );
        assert_eq!(command_error(MmsError::Timeout), CommandError::Timeout);
        assert_eq!(
            command_error(MmsError::NotConnected),
            CommandError::NotConnected
        );
    }

    proptest! {
        #[test]
        fn integers_survive_scaling(raw in -1_000_000i32..1_000_000, k in 0usize..3) {
            let scale = [1.0, 0.1, 0.01][k];
            let s = Scaling::new(scale, 0.0);
            let v = s.apply(f64::from(raw));
            prop_assert_eq!(encode_command(&leaf(LeafType::Int), CommandValue::Analog(v), &s), Ok(MmsValue::Int(raw.into())));
        }

        #[test]
        fn never_panics(x in any::<f64>(), bits in -4i32..70, scale in any::<f64>()) {
            let s = Scaling::new(scale, 0.0);
            for t in [leaf(LeafType::Int), leaf(LeafType::Uint), leaf(LeafType::Float(32)), leaf(LeafType::BitString(bits)), leaf(LeafType::Bool)] {
                let _ = encode_command(&t, CommandValue::Analog(x), &s);
            }
        }
    }
}
