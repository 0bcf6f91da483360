//! Commands to an outstation: from a gateway [`Command`] to the DNP3 control
//! object (CROB, group 12 variation 1, or analog output, group 41), and
//! from the DNP3 stack's command result to a [`CommandError`].
//!
//! Planning is sans-IO: it checks the point is configured and writable and
//! the value fits, and never sends anything. Sending is the driver's job
//! ([`crate::driver`]).

use dcmms_protocols_core::{Command, CommandError, CommandValue, Scaling};
use dnp3::app::control::{
    CommandStatus, ControlCode, Group12Var1, Group41Var1, Group41Var2, Group41Var3, Group41Var4,
    OpType, TripCloseCode,
};
use dnp3::master::{
    CommandBuilder, CommandError as StackCommandError, CommandHeaders, CommandMode,
    CommandResponseError, CommandSupport, TaskError,
};

use crate::point::{AnalogVariation, CommandSpec, CrobOp, Dnp3Point, OperateMode};

/// The trip-close code of a CROB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tcc {
    Nul,
    Close,
    Trip,
}

/// The operation type of a CROB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrobOpType {
    PulseOn,
    PulseOff,
    LatchOn,
    LatchOff,
}

/// A control relay output block, ready to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crob {
    pub index: u16,
    pub tcc: Tcc,
    pub op_type: CrobOpType,
    pub count: u8,
    pub on_time_ms: u32,
    pub off_time_ms: u32,
}

/// The value of an analog output command, in its wire type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnalogValue {
    I32(i32),
    I16(i16),
    F32(f32),
    F64(f64),
}

/// What will be sent for one command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlannedCommand {
    Crob {
        crob: Crob,
        mode: OperateMode,
    },
    Analog {
        index: u16,
        value: AnalogValue,
        mode: OperateMode,
    },
}

/// Checks `cmd` against the device's points and builds the control object.
pub fn plan_command(points: &[Dnp3Point], cmd: &Command) -> Result<PlannedCommand, CommandError> {
    let point = points
        .iter()
        .find(|p| p.name == cmd.point)
        .ok_or_else(|| CommandError::UnknownPoint(cmd.point.clone()))?;
    let spec = match point.command {
        Some(spec) if point.writable => spec,
        _ => return Err(CommandError::NotWritable(cmd.point.clone())),
    };
    match (spec, cmd.value) {
        (
            CommandSpec::Crob {
                op,
                mode,
                on_time_ms,
                off_time_ms,
                count,
            },
            CommandValue::Binary(on),
        ) => {
            let (tcc, op_type) = crob_code(op, on).map_err(CommandError::BadValue)?;
            Ok(PlannedCommand::Crob {
                crob: Crob {
                    index: point.index,
                    tcc,
                    op_type,
                    count,
                    on_time_ms,
                    off_time_ms,
                },
                mode,
            })
        }
        (CommandSpec::Analog { variation, mode }, CommandValue::Analog(v)) => {
            let value =
                analog_value(variation, point.scaling, v).map_err(CommandError::BadValue)?;
            Ok(PlannedCommand::Analog {
                index: point.index,
                value,
                mode,
            })
        }
        (CommandSpec::Crob { .. }, CommandValue::Analog(_)) => Err(CommandError::BadValue(
            "a crob point takes a binary value (true/false)".into(),
        )),
        (CommandSpec::Analog { .. }, CommandValue::Binary(_)) => Err(CommandError::BadValue(
            "an analog_output point takes a number".into(),
        )),
    }
}

/// The trip-close code and operation of `op` for the command value `on`.
pub fn crob_code(op: CrobOp, on: bool) -> Result<(Tcc, CrobOpType), String> {
    let fixed = |code: (Tcc, CrobOpType)| {
        if on {
            Ok(code)
        } else {
            Err(format!("op {op} only executes its operation; send true"))
        }
    };
    match op {
        CrobOp::Latch if on => Ok((Tcc::Nul, CrobOpType::LatchOn)),
        CrobOp::Latch => Ok((Tcc::Nul, CrobOpType::LatchOff)),
        CrobOp::TripClose if on => Ok((Tcc::Close, CrobOpType::PulseOn)),
        CrobOp::TripClose => Ok((Tcc::Trip, CrobOpType::PulseOn)),
        CrobOp::LatchOn => fixed((Tcc::Nul, CrobOpType::LatchOn)),
        CrobOp::LatchOff => fixed((Tcc::Nul, CrobOpType::LatchOff)),
        CrobOp::PulseOn => fixed((Tcc::Nul, CrobOpType::PulseOn)),
        CrobOp::PulseOff => fixed((Tcc::Nul, CrobOpType::PulseOff)),
        CrobOp::Trip => fixed((Tcc::Trip, CrobOpType::PulseOn)),
        CrobOp::Close => fixed((Tcc::Close, CrobOpType::PulseOn)),
    }
}

/// The engineering value `value` as the raw value of `variation`: divided
/// by the point's scale (after subtracting the offset); integer variations
/// need a whole number of device units in range.
pub fn analog_value(
    variation: AnalogVariation,
    scaling: Scaling,
    value: f64,
) -> Result<AnalogValue, String> {
    if !value.is_finite() {
        return Err(format!("{value} is not a finite number"));
    }
    let raw = scaling
        .to_raw(value)
        .filter(|r| r.is_finite())
        .ok_or_else(|| format!("{value} cannot be converted with scale {}", scaling.scale))?;
    let whole = || {
        let r = raw.round();
        if (raw - r).abs() > 1e-6 {
            Err(format!(
                "{value} is {raw} device units; {variation} needs a whole number"
            ))
        } else {
            Ok(r)
        }
    };
    match variation {
        AnalogVariation::I32 => {
            let r = whole()?;
            if r < f64::from(i32::MIN) || r > f64::from(i32::MAX) {
                return Err(format!(
                    "{value} is {r} device units, outside the i32 range"
                ));
            }
            Ok(AnalogValue::I32(r as i32))
        }
        AnalogVariation::I16 => {
            let r = whole()?;
            if r < f64::from(i16::MIN) || r > f64::from(i16::MAX) {
                return Err(format!(
                    "{value} is {r} device units, outside the i16 range"
                ));
            }
            Ok(AnalogValue::I16(r as i16))
        }
        AnalogVariation::F32 => {
            if raw.abs() > f64::from(f32::MAX) {
                return Err(format!(
                    "{value} is {raw} device units, outside the f32 range"
                ));
            }
            Ok(AnalogValue::F32(raw as f32))
        }
        AnalogVariation::F64 => Ok(AnalogValue::F64(raw)),
    }
}

/// The DNP3 request for a planned command: function codes and object
/// header. Indexes below 256 use one-byte prefixes (qualifier 0x17), the
/// others two-byte prefixes (0x28).
pub fn to_request(planned: &PlannedCommand) -> (CommandMode, CommandHeaders) {
    fn single<T>(value: T, index: u16) -> CommandHeaders
    where
        CommandBuilder: CommandSupport<T>,
    {
        match u8::try_from(index) {
            Ok(i) => <CommandBuilder as CommandSupport<T>>::single_header_u8(value, i),
            Err(_) => <CommandBuilder as CommandSupport<T>>::single_header_u16(value, index),
        }
    }
    match *planned {
        PlannedCommand::Crob { crob, mode } => {
            let tcc = match crob.tcc {
                Tcc::Nul => TripCloseCode::Nul,
                Tcc::Close => TripCloseCode::Close,
                Tcc::Trip => TripCloseCode::Trip,
            };
            let op = match crob.op_type {
                CrobOpType::PulseOn => OpType::PulseOn,
                CrobOpType::PulseOff => OpType::PulseOff,
                CrobOpType::LatchOn => OpType::LatchOn,
                CrobOpType::LatchOff => OpType::LatchOff,
            };
            let g12 = Group12Var1::new(
                ControlCode::from_tcc_and_op_type(tcc, op),
                crob.count,
                crob.on_time_ms,
                crob.off_time_ms,
            );
            (stack_mode(mode), single(g12, crob.index))
        }
        PlannedCommand::Analog { index, value, mode } => {
            let headers = match value {
                AnalogValue::I32(v) => single(Group41Var1::new(v), index),
                AnalogValue::I16(v) => single(Group41Var2::new(v), index),
                AnalogValue::F32(v) => single(Group41Var3::new(v), index),
                AnalogValue::F64(v) => single(Group41Var4::new(v), index),
            };
            (stack_mode(mode), headers)
        }
    }
}

fn stack_mode(mode: OperateMode) -> CommandMode {
    match mode {
        OperateMode::SelectBeforeOperate => CommandMode::SelectBeforeOperate,
        OperateMode::DirectOperate => CommandMode::DirectOperate,
    }
}

/// Which [`dcmms_protocols_core::DeviceStats`] counter a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The outstation answered and said no (command status, IIN2 bits).
    Exception,
    Timeout,
    /// Socket or link failure.
    Transport,
    /// An answer that was malformed or did not match the request.
    Decode,
    /// Nothing reached the outstation (no connection, local refusal,
    /// shutdown).
    Local,
}

/// Classifies a failed task of the DNP3 stack.
pub fn classify_task_error(e: &TaskError) -> FailureClass {
    match e {
        TaskError::ResponseTimeout => FailureClass::Timeout,
        TaskError::RejectedByIin2(_) => FailureClass::Exception,
        TaskError::Link(_) => FailureClass::Transport,
        TaskError::Transport
        | TaskError::MalformedResponse(_)
        | TaskError::UnexpectedResponseHeaders
        | TaskError::NonFinWithoutCon
        | TaskError::NeverReceivedFir
        | TaskError::UnexpectedFir
        | TaskError::MultiFragmentResponse => FailureClass::Decode,
        _ => FailureClass::Local,
    }
}

/// The gateway's view of a failed command, and the counter it belongs to.
/// A command status other than SUCCESS is the outstation refusing:
/// `Refused("<status>")`, e.g. `Refused("Blocked")`.
pub fn map_command_error(e: &StackCommandError) -> (CommandError, FailureClass) {
    match e {
        StackCommandError::Response(CommandResponseError::BadStatus(status)) => (
            CommandError::Refused(status_text(*status)),
            FailureClass::Exception,
        ),
        StackCommandError::Response(other) => (
            CommandError::Transport(format!("the outstation's answer did not match: {other}")),
            FailureClass::Decode,
        ),
        StackCommandError::Task(t) => {
            let class = classify_task_error(t);
            let err = match t {
                TaskError::ResponseTimeout => CommandError::Timeout,
                TaskError::NoConnection | TaskError::Disabled => CommandError::NotConnected,
                TaskError::Shutdown => CommandError::DriverStopped,
                TaskError::RejectedByIin2(iin) => {
                    CommandError::Refused(format!("IIN2 0x{:02x}: {}", iin.iin2.value, t))
                }
                TaskError::BadEncoding(_) | TaskError::WriteError => {
                    CommandError::BadValue(t.to_string())
                }
                other => CommandError::Transport(other.to_string()),
            };
            (err, class)
        }
    }
}

/// A command status as text, e.g. `Blocked`, `NotSupported`.
pub fn status_text(status: CommandStatus) -> String {
    format!("{status:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point::{PointConfig, PointKind};
    use proptest::prelude::*;

    fn points() -> Vec<Dnp3Point> {
        [
            PointConfig::new("brk", PointKind::Crob, 3)
                .with_op(CrobOp::TripClose)
                .writable(),
            PointConfig::new("relay", PointKind::Crob, 300)
                .with_mode(OperateMode::DirectOperate)
                .writable(),
            PointConfig::new("reset", PointKind::Crob, 4)
                .with_op(CrobOp::PulseOn)
                .writable(),
            PointConfig::new("locked", PointKind::Crob, 5),
            PointConfig::new("sp", PointKind::AnalogOutput, 1)
                .with_scale(0.1, 0.0)
                .writable(),
            PointConfig::new("v", PointKind::AnalogInput, 1),
        ]
        .iter()
        .map(|c| c.validate("d").unwrap())
        .collect()
    }

    fn cmd(point: &str, value: CommandValue) -> Command {
        Command {
            point: point.into(),
            value,
        }
    }

    #[test]
    fn plans_crobs() {
        let p = points();
        let got = plan_command(&p, &cmd("brk", CommandValue::Binary(false))).unwrap();
        assert_eq!(
            got,
            PlannedCommand::Crob {
                crob: Crob {
                    index: 3,
                    tcc: Tcc::Trip,
                    op_type: CrobOpType::PulseOn,
                    count: 1,
                    on_time_ms: 1000,
                    off_time_ms: 1000
                },
                mode: OperateMode::SelectBeforeOperate
            }
        );
        let got = plan_command(&p, &cmd("relay", CommandValue::Binary(true))).unwrap();
        assert!(matches!(
            got,
            PlannedCommand::Crob {
                crob: Crob {
                    index: 300,
                    tcc: Tcc::Nul,
                    op_type: CrobOpType::LatchOn,
                    ..
                },
                mode: OperateMode::DirectOperate
            }
        ));
        let (mode, _) = to_request(&got);
        assert_eq!(mode, CommandMode::DirectOperate);
        assert!(matches!(
            plan_command(&p, &cmd("reset", CommandValue::Binary(false))),
            Err(CommandError::BadValue(m)) if m.contains("send true")
        ));
    }

    #[test]
    fn refuses_unknown_read_only_and_mistyped() {
        let p = points();
        assert_eq!(
            plan_command(&p, &cmd("nope", CommandValue::Binary(true))),
            Err(CommandError::UnknownPoint("nope".into()))
        );
        assert_eq!(
            plan_command(&p, &cmd("locked", CommandValue::Binary(true))),
            Err(CommandError::NotWritable("locked".into()))
        );
        assert_eq!(
            plan_command(&p, &cmd("v", CommandValue::Analog(1.0))),
            Err(CommandError::NotWritable("v".into()))
        );
        assert!(matches!(
            plan_command(&p, &cmd("brk", CommandValue::Analog(1.0))),
            Err(CommandError::BadValue(_))
        ));
        assert!(matches!(
            plan_command(&p, &cmd("sp", CommandValue::Binary(true))),
            Err(CommandError::BadValue(_))
        ));
    }

    #[test]
    fn analog_values_scale_and_check_range() {
        let p = points();
        assert_eq!(
            plan_command(&p, &cmd("sp", CommandValue::Analog(50.3))).unwrap(),
            PlannedCommand::Analog {
                index: 1,
                value: AnalogValue::I32(503),
                mode: OperateMode::SelectBeforeOperate
            }
        );
        let s = Scaling::default();
        assert_eq!(
            analog_value(AnalogVariation::I16, s, -32768.0),
            Ok(AnalogValue::I16(-32768))
        );
        assert!(analog_value(AnalogVariation::I16, s, 32768.0).is_err());
        assert!(analog_value(AnalogVariation::I32, s, 1.5)
            .unwrap_err()
            .contains("whole"));
        assert!(analog_value(AnalogVariation::I32, s, f64::NAN).is_err());
        assert_eq!(
            analog_value(AnalogVariation::F32, s, 1.5),
            Ok(AnalogValue::F32(1.5))
        );
        assert!(analog_value(AnalogVariation::F32, s, 1e39).is_err());
        assert_eq!(
            analog_value(AnalogVariation::F64, s, 1e39),
            Ok(AnalogValue::F64(1e39))
        );
        let offset = Scaling::new(0.5, 10.0);
        assert_eq!(
            analog_value(AnalogVariation::I32, offset, 20.0),
            Ok(AnalogValue::I32(20))
        );
    }

    #[test]
    fn stack_errors_map_to_command_errors() {
        let (e, c) = map_command_error(&StackCommandError::Response(
            CommandResponseError::BadStatus(CommandStatus::Blocked),
        ));
        assert_eq!(
            (e, c),
            (
                CommandError::Refused("Blocked".into()),
                FailureClass::Exception
            )
        );
        let (e, c) = map_command_error(&StackCommandError::Task(TaskError::ResponseTimeout));
        assert_eq!((e, c), (CommandError::Timeout, FailureClass::Timeout));
        let (e, _) = map_command_error(&StackCommandError::Task(TaskError::NoConnection));
        assert_eq!(e, CommandError::NotConnected);
        let (e, c) = map_command_error(&StackCommandError::Response(
            CommandResponseError::ObjectValueMismatch,
        ));
        assert!(matches!(e, CommandError::Transport(_)));
        assert_eq!(c, FailureClass::Decode);
    }

    proptest! {
        #[test]
        fn integer_outputs_round_trip_through_scaling(raw in -100_000i32..100_000, k in 0usize..4) {
            let scale = [1.0, 0.1, 0.01, 0.5][k];
            let s = Scaling::new(scale, 0.0);
            let v = s.apply(f64::from(raw));
            prop_assert_eq!(analog_value(AnalogVariation::I32, s, v), Ok(AnalogValue::I32(raw)));
        }

        #[test]
        fn analog_value_never_panics(v in any::<f64>(), scale in any::<f64>(), offset in any::<f64>(), k in 0usize..4) {
            let variation = AnalogVariation::ALL[k];
            let _ = analog_value(variation, Scaling::new(scale, offset), v);
        }
    }
}
