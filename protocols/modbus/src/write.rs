//! Commands to Modbus write requests, sans-IO.
//!
//! [`plan_write`] turns a command for one point into the request that
//! carries it: a holding register value is scaled back to its raw value,
//! rounded to the register's resolution and encoded in the point's word and
//! byte order (function 6 for one register, 16 for more); a coil becomes
//! function 5. [`WriteRequest::check_echo`] checks the device's answer.
//! Nothing here refuses a command for lack of `writable = true`: the driver
//! does that before it asks for a plan.

use dcmms_protocols_core::{encode_registers, CommandError, CommandValue, DataType};
use tokio_modbus::{Request, Response};

use crate::config::{ModbusPoint, Table};

/// One write, ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteRequest {
    /// Function 6 (one word) or 16 (several).
    Registers { address: u16, words: Vec<u16> },
    /// Function 5.
    Coil { address: u16, on: bool },
}

/// The write that sets `point` to `value`, or why it cannot be done.
pub fn plan_write(point: &ModbusPoint, value: CommandValue) -> Result<WriteRequest, CommandError> {
    match point.table {
        Table::Coil => {
            let on = match value {
                CommandValue::Binary(b) => b,
                CommandValue::Analog(0.0) => false,
                CommandValue::Analog(1.0) => true,
                CommandValue::Analog(v) => {
                    return Err(CommandError::BadValue(format!(
                        "coil {:?} takes true/false (or 1/0), not {v}",
                        point.name
                    )))
                }
            };
            Ok(WriteRequest::Coil {
                address: point.address,
                on,
            })
        }
        Table::Holding => {
            let CommandValue::Analog(v) = value else {
                return Err(CommandError::BadValue(format!(
                    "holding register {:?} takes a number, not {value}",
                    point.name
                )));
            };
            let words = encode_value(point, v)?;
            Ok(WriteRequest::Registers {
                address: point.address,
                words,
            })
        }
        Table::Input | Table::Discrete => Err(CommandError::NotWritable(point.name.clone())),
    }
}

/// Engineering value to register words: unscale, round integer types to the
/// nearest step, encode.
fn encode_value(point: &ModbusPoint, value: f64) -> Result<Vec<u16>, CommandError> {
    let bad = |why: String| CommandError::BadValue(format!("{value} for {:?}: {why}", point.name));
    if !value.is_finite() {
        return Err(bad("not a finite number".into()));
    }
    let raw = point
        .scaling
        .to_raw(value)
        .ok_or_else(|| bad("the point's scale cannot be inverted".into()))?;
    let raw = match point.data_type {
        DataType::F32 | DataType::F64 => raw,
        _ => raw.round(),
    };
    encode_registers(raw, point.data_type, point.word_order, point.byte_order).map_err(|_| {
        bad(format!(
            "raw value {raw} is outside the range of {}",
            point.data_type
        ))
    })
}

impl WriteRequest {
    /// The tokio-modbus request.
    pub fn to_request(&self) -> Request<'_> {
        match self {
            WriteRequest::Coil { address, on } => Request::WriteSingleCoil(*address, *on),
            WriteRequest::Registers { address, words } if words.len() == 1 => {
                Request::WriteSingleRegister(*address, words[0])
            }
            WriteRequest::Registers { address, words } => {
                Request::WriteMultipleRegisters(*address, words.as_slice().into())
            }
        }
    }

    /// Checks that the device's answer is the echo the protocol defines for
    /// this request.
    pub fn check_echo(&self, response: &Response) -> Result<(), String> {
        let ok = match (self, response) {
            (WriteRequest::Coil { address, on }, Response::WriteSingleCoil(a, v)) => {
                a == address && v == on
            }
            (WriteRequest::Registers { address, words }, Response::WriteSingleRegister(a, v))
                if words.len() == 1 =>
            {
                a == address && *v == words[0]
            }
            (
                WriteRequest::Registers { address, words },
                Response::WriteMultipleRegisters(a, n),
            ) if words.len() > 1 => a == address && usize::from(*n) == words.len(),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("answer {response:?} does not confirm {self:?}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PointConfig;
    use dcmms_protocols_core::{decode_registers, ByteOrder, WordOrder};
    use proptest::prelude::*;

    fn point(cfg: PointConfig) -> ModbusPoint {
        cfg.writable().validate("dev").unwrap()
    }

    #[test]
    fn holding_values_are_unscaled_rounded_and_encoded() {
        let p = point(PointConfig::new("limit", Table::Holding, 0).with_scale(0.1, 0.0));
        assert_eq!(
            plan_write(&p, CommandValue::Analog(50.0)),
            Ok(WriteRequest::Registers {
                address: 0,
                words: vec![500]
            })
        );
        // 23.07 with a 0.1 step rounds to 23.1.
        assert_eq!(
            plan_write(&p, CommandValue::Analog(23.07)),
            Ok(WriteRequest::Registers {
                address: 0,
                words: vec![231]
            })
        );
        let r = plan_write(&p, CommandValue::Analog(-1.0)).unwrap_err();
        assert_eq!(r.code(), "bad_value");
        assert!(r.to_string().contains("outside the range of u16"), "{r}");
        let r = plan_write(&p, CommandValue::Binary(true)).unwrap_err();
        assert!(r.to_string().contains("takes a number"), "{r}");
        assert!(plan_write(&p, CommandValue::Analog(f64::NAN)).is_err());

        let p = point(
            PointConfig::new("f", Table::Holding, 10)
                .with_type(DataType::F32)
                .with_scale(1.0, 0.0),
        );
        let w = plan_write(&p, CommandValue::Analog(1.0)).unwrap();
        assert_eq!(
            w,
            WriteRequest::Registers {
                address: 10,
                words: vec![0x3F80, 0]
            }
        );
        assert!(matches!(
            w.to_request(),
            Request::WriteMultipleRegisters(10, ref words) if words[..] == [0x3F80, 0]
        ));
        let one = WriteRequest::Registers {
            address: 3,
            words: vec![7],
        };
        assert_eq!(one.to_request(), Request::WriteSingleRegister(3, 7));
    }

    #[test]
    fn coils_take_booleans_or_zero_and_one() {
        let p = point(PointConfig::new("run", Table::Coil, 4));
        for (v, on) in [
            (CommandValue::Binary(true), true),
            (CommandValue::Binary(false), false),
            (CommandValue::Analog(1.0), true),
            (CommandValue::Analog(0.0), false),
        ] {
            let w = plan_write(&p, v).unwrap();
            assert_eq!(w, WriteRequest::Coil { address: 4, on });
            assert_eq!(w.to_request(), Request::WriteSingleCoil(4, on));
        }
        assert_eq!(
            plan_write(&p, CommandValue::Analog(2.0))
                .unwrap_err()
                .code(),
            "bad_value"
        );
    }

    #[test]
    fn read_only_tables_are_refused() {
        let p = PointConfig::new("v", Table::Input, 0)
            .validate("dev")
            .unwrap();
        assert_eq!(
            plan_write(&p, CommandValue::Analog(1.0)),
            Err(CommandError::NotWritable("v".into()))
        );
    }

    #[test]
    fn echoes_are_checked() {
        let w = WriteRequest::Registers {
            address: 3,
            words: vec![7],
        };
        assert!(w.check_echo(&Response::WriteSingleRegister(3, 7)).is_ok());
        assert!(w.check_echo(&Response::WriteSingleRegister(3, 8)).is_err());
        assert!(w
            .check_echo(&Response::WriteMultipleRegisters(3, 1))
            .is_err());
        let w = WriteRequest::Registers {
            address: 3,
            words: vec![7, 8],
        };
        assert!(w
            .check_echo(&Response::WriteMultipleRegisters(3, 2))
            .is_ok());
        assert!(w
            .check_echo(&Response::WriteMultipleRegisters(4, 2))
            .is_err());
        let w = WriteRequest::Coil {
            address: 1,
            on: true,
        };
        assert!(w.check_echo(&Response::WriteSingleCoil(1, true)).is_ok());
        assert!(w.check_echo(&Response::WriteSingleCoil(1, false)).is_err());
        assert!(w.check_echo(&Response::ReadCoils(vec![true])).is_err());
    }

    fn register_type() -> impl Strategy<Value = DataType> {
        proptest::sample::select(
            DataType::ALL
                .into_iter()
                .filter(|t| *t != DataType::Bool)
                .collect::<Vec<_>>(),
        )
    }

    fn orders() -> impl Strategy<Value = (WordOrder, ByteOrder)> {
        (
            prop_oneof![Just(WordOrder::BigEndian), Just(WordOrder::LittleEndian)],
            prop_oneof![Just(ByteOrder::BigEndian), Just(ByteOrder::LittleEndian)],
        )
    }

    fn holding(
        t: DataType,
        (w, b): (WordOrder, ByteOrder),
        scale: f64,
        offset: f64,
    ) -> ModbusPoint {
        let mut c = PointConfig::new("p", Table::Holding, 100)
            .with_type(t)
            .with_scale(scale, offset);
        c.word_order = w;
        c.byte_order = b;
        point(c)
    }

    fn decoded(p: &ModbusPoint, w: &WriteRequest) -> f64 {
        let WriteRequest::Registers { words, .. } = w else {
            panic!("not a register write: {w:?}")
        };
        assert_eq!(words.len(), p.data_type.register_count());
        let raw = decode_registers(words, p.data_type, p.word_order, p.byte_order).unwrap();
        p.scaling.apply(raw)
    }

    proptest! {
        /// What a device would read back is what was written, for every
        /// value the point can show.
        #[test]
        fn shown_values_round_trip(
            t in register_type(),
            o in orders(),
            raw in any::<i32>(),
            k in 0usize..4,
            offset in prop_oneof![Just(0.0), Just(-40.0)],
        ) {
            let scale = [1.0, 0.1, 0.01, 0.001][k];
            let p = holding(t, o, scale, offset);
            let raw = match t {
                DataType::U16 => f64::from(raw as u16),
                DataType::I16 => f64::from(raw as i16),
                DataType::U32 | DataType::U64 => f64::from(raw.unsigned_abs()),
                _ => f64::from(raw),
            };
            let shown = p.scaling.apply(raw);
            let w = plan_write(&p, CommandValue::Analog(shown)).unwrap();
            let back = decoded(&p, &w);
            if matches!(t, DataType::F32 | DataType::F64) {
                prop_assert!((back - shown).abs() <= shown.abs() * 1e-6 + 1e-6, "{} -> {}", shown, back);
            } else {
                prop_assert_eq!(back, shown);
            }
        }

        /// Any number either gives a clear refusal or a write within half a
        /// step of the request; never a panic.
        #[test]
        fn any_value_is_rounded_or_refused(
            t in register_type(),
            o in orders(),
            v in prop_oneof![any::<f64>(), -1e6f64..1e6],
            k in 0usize..3,
        ) {
            let scale = [1.0, 0.1, 0.5][k];
            let p = holding(t, o, scale, 0.0);
            match plan_write(&p, CommandValue::Analog(v)) {
                Ok(w) => {
                    let back = decoded(&p, &w);
                    let tolerance = match t {
                        DataType::F32 => v.abs() * 1e-6 + f64::from(f32::MIN_POSITIVE),
                        DataType::F64 => v.abs() * 1e-12 + f64::MIN_POSITIVE,
                        _ => scale / 2.0 + v.abs() * 1e-12,
                    };
                    prop_assert!((back - v).abs() <= tolerance, "{} -> {}", v, back);
                }
                Err(e) => prop_assert_eq!(e.code(), "bad_value"),
            }
        }
    }
}
