//! The DNP3 point model: the kinds of points an outstation exposes, a point
//! as configured ([`PointConfig`], TOML or CSV) and as validated
//! ([`Dnp3Point`]). Validation names the device, the point and the field at
//! fault; nothing here touches the network.

use std::fmt;
use std::str::FromStr;

use dcmms_protocols_core::{ParseEnumError, Scaling};
use dcmms_shared::validate_name;
use serde::{Deserialize, Serialize};

use crate::config::Dnp3ConfigError;

/// One point of an outstation: a measurement it reports, or an output it
/// can be commanded on.
///
/// ```toml
/// points = [
///   { name = "breaker_closed", kind = "binary_input", index = 0 },
///   { name = "p_total", kind = "analog_input", index = 3, scale = 0.1 },
///   { name = "energy", kind = "counter", index = 0 },
///   { name = "breaker", kind = "crob", index = 0, op = "trip_close", writable = true },
///   { name = "p_limit", kind = "analog_output", index = 1, variation = "f32", mode = "direct_operate", writable = true },
/// ]
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PointConfig {
    /// Point name, unique within the device, 1-64 characters from
    /// `[A-Za-z0-9_.-]`.
    pub name: String,
    /// What the point is, see [`PointKind`]: `binary_input`,
    /// `double_bit_binary_input`, `analog_input`, `counter`,
    /// `frozen_counter`, `binary_output_status`, `analog_output_status`
    /// (measurements, read from the outstation) or `crob`, `analog_output`
    /// (commands, sent to it).
    pub kind: PointKind,
    /// The point index within its kind (0-65535), as the outstation's point
    /// list numbers it.
    pub index: u16,
    /// Multiplier from the raw value to engineering units, for analog
    /// inputs and outputs and counters. Default 1. For `analog_output`, a
    /// command value is divided by it before it is sent.
    #[serde(default = "default_scale", skip_serializing_if = "is_one")]
    pub scale: f64,
    /// Added after scaling: `value = raw * scale + offset`. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: f64,
    /// Accept commands for this point. Only `crob` and `analog_output`
    /// points can be writable. Default false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub writable: bool,
    /// `crob` only: the operation, see [`CrobOp`]. Default `latch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<CrobOp>,
    /// `crob` and `analog_output`: `select_before_operate` (default: SELECT,
    /// then OPERATE once the outstation confirms the selection) or
    /// `direct_operate` (one DIRECT_OPERATE request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OperateMode>,
    /// `analog_output` only: the object variation sent, `i32` (group 41
    /// variation 1, default), `i16` (var 2), `f32` (var 3) or `f64` (var 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variation: Option<AnalogVariation>,
    /// `crob` only: pulse on-time in ms. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_time_ms: Option<u32>,
    /// `crob` only: pulse off-time in ms. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_time_ms: Option<u32>,
    /// `crob` only: how many times to carry out the operation (1-255).
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u8>,
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

/// Generates a string enum with snake_case names, aliases, `FromStr`,
/// `Display` and serde through strings.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, $expected:literal,
     { $($(#[$vm:meta])* $variant:ident => $text:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
        #[serde(try_from = "String", into = "&'static str")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text $(| $alias)* => Ok($name::$variant),)+
                    _ => Err(ParseEnumError { what: $what, given: s.to_owned(), expected: $expected }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseEnumError;
            fn try_from(s: String) -> Result<Self, Self::Error> { s.parse() }
        }

        impl From<$name> for &'static str {
            fn from(v: $name) -> &'static str { v.as_str() }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

text_enum!(
    /// The kinds of DNP3 points the driver reads or commands.
    PointKind, "kind",
    "binary_input, double_bit_binary_input, analog_input, counter, frozen_counter, binary_output_status, analog_output_status, crob, analog_output",
    {
        /// Group 1/2: a single-bit status; the value is 0 or 1.
        BinaryInput => "binary_input" | "bi",
        /// Group 3/4: a two-bit status; the value is the DNP3 code:
        /// 0 intermediate, 1 determined off, 2 determined on, 3 indeterminate.
        DoubleBitBinaryInput => "double_bit_binary_input" | "dbbi",
        /// Group 30/32: an analog measurement.
        AnalogInput => "analog_input" | "ai",
        /// Group 20/22: a running counter.
        Counter => "counter",
        /// Group 21/23: a frozen counter.
        FrozenCounter => "frozen_counter",
        /// Group 10/11: the state of a binary output; 0 or 1.
        BinaryOutputStatus => "binary_output_status" | "bos",
        /// Group 40/42: the value of an analog output.
        AnalogOutputStatus => "analog_output_status" | "aos",
        /// Group 12 variation 1: control relay output block (command only).
        Crob => "crob",
        /// Group 41: analog output command (command only).
        AnalogOutput => "analog_output" | "ao",
    }
);

impl PointKind {
    /// Kinds the outstation reports values for (the others are commands).
    pub fn is_measurement(self) -> bool {
        !self.is_command()
    }

    /// Kinds that are commands sent to the outstation.
    pub fn is_command(self) -> bool {
        matches!(self, PointKind::Crob | PointKind::AnalogOutput)
    }

    /// Kinds whose value is a state code, not a scaled number.
    pub fn is_status(self) -> bool {
        matches!(
            self,
            PointKind::BinaryInput
                | PointKind::DoubleBitBinaryInput
                | PointKind::BinaryOutputStatus
                | PointKind::Crob
        )
    }

    /// A short prefix for generated point names (`bi_0`, `ai_3`, ...).
    pub fn short(self) -> &'static str {
        match self {
            PointKind::BinaryInput => "bi",
            PointKind::DoubleBitBinaryInput => "dbbi",
            PointKind::AnalogInput => "ai",
            PointKind::Counter => "ctr",
            PointKind::FrozenCounter => "fctr",
            PointKind::BinaryOutputStatus => "bos",
            PointKind::AnalogOutputStatus => "aos",
            PointKind::Crob => "crob",
            PointKind::AnalogOutput => "ao",
        }
    }
}

text_enum!(
    /// What a `crob` command does. With `latch` and `trip_close` the command
    /// value chooses (true = on/close, false = off/trip); the others always
    /// do the same thing and accept only `true` ("execute").
    CrobOp, "op",
    "latch, trip_close, latch_on, latch_off, pulse_on, pulse_off, trip, close",
    {
        /// true: LATCH_ON, false: LATCH_OFF.
        Latch => "latch",
        /// true: CLOSE (pulse on, close code), false: TRIP (pulse on, trip code).
        TripClose => "trip_close",
        /// Always LATCH_ON.
        LatchOn => "latch_on",
        /// Always LATCH_OFF.
        LatchOff => "latch_off",
        /// Always PULSE_ON (on-time, off-time, count).
        PulseOn => "pulse_on",
        /// Always PULSE_OFF.
        PulseOff => "pulse_off",
        /// Always TRIP (pulse on with the trip code).
        Trip => "trip",
        /// Always CLOSE (pulse on with the close code).
        Close => "close",
    }
);

text_enum!(
    /// How a command reaches the outstation.
    OperateMode, "mode", "select_before_operate, direct_operate",
    {
        /// SELECT, then OPERATE with the same objects (function codes 3, 4).
        SelectBeforeOperate => "select_before_operate" | "sbo",
        /// DIRECT_OPERATE (function code 5).
        DirectOperate => "direct_operate" | "direct",
    }
);

text_enum!(
    /// The group 41 variation of an analog output command.
    AnalogVariation, "variation", "i32, i16, f32, f64",
    {
        /// Group 41 variation 1, 32-bit signed integer.
        I32 => "i32" | "g41v1",
        /// Group 41 variation 2, 16-bit signed integer.
        I16 => "i16" | "g41v2",
        /// Group 41 variation 3, single-precision float.
        F32 => "f32" | "g41v3",
        /// Group 41 variation 4, double-precision float.
        F64 => "f64" | "g41v4",
    }
);

/// A command point's settings, after validation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CommandSpec {
    Crob {
        op: CrobOp,
        mode: OperateMode,
        on_time_ms: u32,
        off_time_ms: u32,
        count: u8,
    },
    Analog {
        variation: AnalogVariation,
        mode: OperateMode,
    },
}

/// A validated point.
#[derive(Debug, Clone, PartialEq)]
pub struct Dnp3Point {
    pub name: String,
    pub kind: PointKind,
    pub index: u16,
    pub scaling: Scaling,
    pub writable: bool,
    /// Set for `crob` and `analog_output` points.
    pub command: Option<CommandSpec>,
}

impl PointConfig {
    pub fn new(name: impl Into<String>, kind: PointKind, index: u16) -> Self {
        PointConfig {
            name: name.into(),
            kind,
            index,
            scale: 1.0,
            offset: 0.0,
            writable: false,
            op: None,
            mode: None,
            variation: None,
            on_time_ms: None,
            off_time_ms: None,
            count: None,
        }
    }

    pub fn with_scale(mut self, scale: f64, offset: f64) -> Self {
        self.scale = scale;
        self.offset = offset;
        self
    }

    pub fn writable(mut self) -> Self {
        self.writable = true;
        self
    }

    pub fn with_op(mut self, op: CrobOp) -> Self {
        self.op = Some(op);
        self
    }

    pub fn with_mode(mut self, mode: OperateMode) -> Self {
        self.mode = Some(mode);
        self
    }

    pub fn with_variation(mut self, variation: AnalogVariation) -> Self {
        self.variation = Some(variation);
        self
    }

    /// Checks one point of `device`.
    pub fn validate(&self, device: &str) -> Result<Dnp3Point, Dnp3ConfigError> {
        let err = |field: &'static str, message: String| Dnp3ConfigError::PointField {
            device: device.to_owned(),
            point: self.name.clone(),
            field,
            message,
        };
        validate_name(&self.name).map_err(|source| Dnp3ConfigError::PointName {
            device: device.to_owned(),
            point: self.name.clone(),
            source,
        })?;
        if !self.scale.is_finite() || self.scale == 0.0 {
            return Err(err(
                "scale",
                format!("{} is not a finite non-zero number", self.scale),
            ));
        }
        if !self.offset.is_finite() {
            return Err(err(
                "offset",
                format!("{} is not a finite number", self.offset),
            ));
        }
        if self.kind.is_status() && (self.scale != 1.0 || self.offset != 0.0) {
            return Err(err(
                "scale",
                format!(
                    "a {} point carries a state, not a number; remove scale/offset",
                    self.kind
                ),
            ));
        }
        if self.writable && !self.kind.is_command() {
            return Err(err(
                "writable",
                format!(
                    "a {} point cannot be written; use kind crob or analog_output",
                    self.kind
                ),
            ));
        }
        let crob_only = [
            ("op", self.op.is_some()),
            ("on_time_ms", self.on_time_ms.is_some()),
            ("off_time_ms", self.off_time_ms.is_some()),
            ("count", self.count.is_some()),
        ];
        if self.kind != PointKind::Crob {
            if let Some((field, _)) = crob_only.iter().find(|(_, set)| *set) {
                return Err(err(field, format!("only for kind crob, not {}", self.kind)));
            }
        }
        if self.kind != PointKind::AnalogOutput && self.variation.is_some() {
            return Err(err(
                "variation",
                format!("only for kind analog_output, not {}", self.kind),
            ));
        }
        if !self.kind.is_command() && self.mode.is_some() {
            return Err(err(
                "mode",
                format!("only for kinds crob and analog_output, not {}", self.kind),
            ));
        }
        if self.count == Some(0) {
            return Err(err("count", "must be 1-255".into()));
        }
        let mode = self.mode.unwrap_or(OperateMode::SelectBeforeOperate);
        let command = match self.kind {
            PointKind::Crob => Some(CommandSpec::Crob {
                op: self.op.unwrap_or(CrobOp::Latch),
                mode,
                on_time_ms: self.on_time_ms.unwrap_or(1000),
                off_time_ms: self.off_time_ms.unwrap_or(1000),
                count: self.count.unwrap_or(1),
            }),
            PointKind::AnalogOutput => Some(CommandSpec::Analog {
                variation: self.variation.unwrap_or(AnalogVariation::I32),
                mode,
            }),
            _ => None,
        };
        Ok(Dnp3Point {
            name: self.name.clone(),
            kind: self.kind,
            index: self.index,
            scaling: Scaling::new(self.scale, self.offset),
            writable: self.writable,
            command,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(p: PointConfig) -> String {
        p.validate("rtu").unwrap_err().to_string()
    }

    #[test]
    fn kinds_parse_with_aliases_and_round_trip() {
        for k in PointKind::ALL {
            assert_eq!(k.as_str().parse::<PointKind>().unwrap(), *k);
            assert_eq!(k.as_str().to_uppercase().parse::<PointKind>().unwrap(), *k);
        }
        assert_eq!("ai".parse::<PointKind>().unwrap(), PointKind::AnalogInput);
        assert_eq!(
            "g41v3".parse::<AnalogVariation>().unwrap(),
            AnalogVariation::F32
        );
        assert_eq!(
            "sbo".parse::<OperateMode>().unwrap(),
            OperateMode::SelectBeforeOperate
        );
        let e = "relay".parse::<PointKind>().unwrap_err().to_string();
        assert!(e.contains("relay") && e.contains("crob"), "{e}");
        for op in CrobOp::ALL {
            assert_eq!(op.as_str().parse::<CrobOp>().unwrap(), *op);
        }
    }

    /// The example in the doc comment of `PointConfig`, kept valid.
    #[test]
    fn doc_example_is_valid() {
        let f: crate::point_map::PointMapFile = toml::from_str(
            r#"
            points = [
              { name = "breaker_closed", kind = "binary_input", index = 0 },
              { name = "p_total", kind = "analog_input", index = 3, scale = 0.1 },
              { name = "energy", kind = "counter", index = 0 },
              { name = "breaker", kind = "crob", index = 0, op = "trip_close", writable = true },
              { name = "p_limit", kind = "analog_output", index = 1, variation = "f32", mode = "direct_operate", writable = true },
            ]
            "#,
        )
        .unwrap();
        for p in &f.points {
            p.validate("rtu").unwrap();
        }
        assert_eq!(f.points.len(), 5);
    }

    #[test]
    fn defaults_of_command_points() {
        let p = PointConfig::new("brk", PointKind::Crob, 4)
            .writable()
            .validate("rtu")
            .unwrap();
        assert_eq!(
            p.command,
            Some(CommandSpec::Crob {
                op: CrobOp::Latch,
                mode: OperateMode::SelectBeforeOperate,
                on_time_ms: 1000,
                off_time_ms: 1000,
                count: 1,
            })
        );
        let p = PointConfig::new("sp", PointKind::AnalogOutput, 1)
            .validate("rtu")
            .unwrap();
        assert!(!p.writable);
        assert_eq!(
            p.command,
            Some(CommandSpec::Analog {
                variation: AnalogVariation::I32,
                mode: OperateMode::SelectBeforeOperate,
            })
        );
        let p = PointConfig::new("v", PointKind::AnalogInput, 1)
            .validate("rtu")
            .unwrap();
        assert_eq!(p.command, None);
    }

    #[test]
    fn errors_name_the_field() {
        let e = err(PointConfig::new("x", PointKind::AnalogInput, 0).writable());
        assert!(
            e.contains(r#"point "x""#) && e.contains("`writable`"),
            "{e}"
        );
        let e = err(PointConfig::new("x", PointKind::BinaryInput, 0).with_scale(2.0, 0.0));
        assert!(e.contains("`scale`") && e.contains("state"), "{e}");
        let e = err(PointConfig::new("x", PointKind::AnalogInput, 0).with_op(CrobOp::Trip));
        assert!(e.contains("`op`"), "{e}");
        let e = err(PointConfig::new("x", PointKind::Crob, 0).with_variation(AnalogVariation::F32));
        assert!(e.contains("`variation`"), "{e}");
        let e =
            err(PointConfig::new("x", PointKind::Counter, 0).with_mode(OperateMode::DirectOperate));
        assert!(e.contains("`mode`"), "{e}");
        let mut p = PointConfig::new("x", PointKind::Crob, 0);
        p.count = Some(0);
        assert!(err(p).contains("`count`"));
        let e = err(PointConfig::new("x", PointKind::AnalogInput, 0).with_scale(0.0, 0.0));
        assert!(e.contains("`scale`"), "{e}");
        let e =
            err(PointConfig::new("x", PointKind::AnalogInput, 0).with_scale(1.0, f64::INFINITY));
        assert!(e.contains("`offset`"), "{e}");
        let e = err(PointConfig::new("no/slash", PointKind::AnalogInput, 0));
        assert!(e.contains("invalid name"), "{e}");
    }
}
