//! Register images to values and back, sans-IO.
//!
//! Field devices spread one value over one to four 16-bit registers, in an
//! order the vendor chose. [`decode_registers`] turns the registers of one
//! point into an `f64`; [`encode_registers`] is its inverse, used by device
//! simulators and tests. Neither panics on any input.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How the registers of a point are interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum DataType {
    /// One bit (coil, discrete input) or one register that is 0 or not.
    Bool,
    #[default]
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    /// IEEE 754 single precision in two registers.
    F32,
    /// IEEE 754 double precision in four registers.
    F64,
}

/// Order of the 16-bit words of a multi-register value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum WordOrder {
    /// High word first (the Modbus convention; "ABCD").
    #[default]
    BigEndian,
    /// Low word first ("CDAB").
    LittleEndian,
}

/// Order of the two bytes inside each 16-bit word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum ByteOrder {
    /// High byte first, as Modbus transmits registers.
    #[default]
    BigEndian,
    /// Bytes swapped inside each word ("BADC" with big-endian words).
    LittleEndian,
}

/// Why a register image could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("{data_type} needs {expected} registers, got {got}")]
    Length {
        data_type: DataType,
        expected: usize,
        got: usize,
    },
    #[error("{data_type} value is NaN or infinite")]
    NotFinite { data_type: DataType },
}

/// Why a value could not be encoded as registers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("{value} is not a whole number in the range of {data_type}")]
    OutOfRange { value: f64, data_type: DataType },
    #[error("{value} is not finite")]
    NotFinite { value: f64 },
}

/// An unknown name for one of the enums of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?}; expected one of: {expected}")]
pub struct ParseEnumError {
    pub what: &'static str,
    pub given: String,
    pub expected: &'static str,
}

impl DataType {
    pub const ALL: [DataType; 9] = [
        DataType::Bool,
        DataType::U16,
        DataType::I16,
        DataType::U32,
        DataType::I32,
        DataType::U64,
        DataType::I64,
        DataType::F32,
        DataType::F64,
    ];

    /// Registers one value occupies (a bool occupies one bit or one register).
    pub fn register_count(self) -> usize {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
        }
    }
}

impl WordOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            WordOrder::BigEndian => "big_endian",
            WordOrder::LittleEndian => "little_endian",
        }
    }
}

impl ByteOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            ByteOrder::BigEndian => "big_endian",
            ByteOrder::LittleEndian => "little_endian",
        }
    }
}

impl FromStr for DataType {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = match s.trim().to_ascii_lowercase().as_str() {
            "bool" | "bit" | "boolean" => DataType::Bool,
            "u16" | "uint16" => DataType::U16,
            "i16" | "int16" => DataType::I16,
            "u32" | "uint32" => DataType::U32,
            "i32" | "int32" => DataType::I32,
            "u64" | "uint64" => DataType::U64,
            "i64" | "int64" => DataType::I64,
            "f32" | "float32" | "float" => DataType::F32,
            "f64" | "float64" | "double" => DataType::F64,
            _ => {
                return Err(ParseEnumError {
                    what: "data type",
                    given: s.to_owned(),
                    expected: "bool, u16, i16, u32, i32, u64, i64, f32, f64",
                })
            }
        };
        Ok(t)
    }
}

fn parse_endian(s: &str, what: &'static str) -> Result<bool, ParseEnumError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "big_endian" | "big" | "be" => Ok(true),
        "little_endian" | "little" | "le" => Ok(false),
        _ => Err(ParseEnumError {
            what,
            given: s.to_owned(),
            expected: "big_endian, little_endian",
        }),
    }
}

impl FromStr for WordOrder {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if parse_endian(s, "word order")? {
            WordOrder::BigEndian
        } else {
            WordOrder::LittleEndian
        })
    }
}

impl FromStr for ByteOrder {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if parse_endian(s, "byte order")? {
            ByteOrder::BigEndian
        } else {
            ByteOrder::LittleEndian
        })
    }
}

macro_rules! string_enum_glue {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = ParseEnumError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
        impl From<$t> for &'static str {
            fn from(v: $t) -> &'static str {
                v.as_str()
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
string_enum_glue!(DataType);
string_enum_glue!(WordOrder);
string_enum_glue!(ByteOrder);

/// Puts the register words of one value into big-endian byte order
/// (most significant byte first) in `out`, returning the used part.
fn to_be_bytes<'a>(
    regs: &[u16],
    word_order: WordOrder,
    byte_order: ByteOrder,
    out: &'a mut [u8; 8],
) -> &'a [u8] {
    let n = regs.len().min(4);
    for i in 0..n {
        let word = match word_order {
            WordOrder::BigEndian => regs[i],
            WordOrder::LittleEndian => regs[n - 1 - i],
        };
        let word = match byte_order {
            ByteOrder::BigEndian => word,
            ByteOrder::LittleEndian => word.swap_bytes(),
        };
        out[2 * i..2 * i + 2].copy_from_slice(&word.to_be_bytes());
    }
    &out[..2 * n]
}

/// Decodes the registers of one point. `regs` must hold exactly
/// `data_type.register_count()` registers. Float NaN and infinities are
/// refused (devices use them for "no value").
pub fn decode_registers(
    regs: &[u16],
    data_type: DataType,
    word_order: WordOrder,
    byte_order: ByteOrder,
) -> Result<f64, DecodeError> {
    let expected = data_type.register_count();
    if regs.len() != expected {
        return Err(DecodeError::Length {
            data_type,
            expected,
            got: regs.len(),
        });
    }
    let mut buf = [0u8; 8];
    let b = to_be_bytes(regs, word_order, byte_order, &mut buf);
    let v = match data_type {
        DataType::Bool => f64::from(u8::from(regs[0] != 0)),
        DataType::U16 => f64::from(u16::from_be_bytes([b[0], b[1]])),
        DataType::I16 => f64::from(i16::from_be_bytes([b[0], b[1]])),
        DataType::U32 => f64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        DataType::I32 => f64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        DataType::F32 => f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        // 64-bit integers above 2^53 lose their lowest bits in f64; energy
        // counters stay far below that.
        DataType::U64 => u64::from_be_bytes(buf) as f64,
        DataType::I64 => i64::from_be_bytes(buf) as f64,
        DataType::F64 => f64::from_be_bytes(buf),
    };
    if !v.is_finite() {
        return Err(DecodeError::NotFinite { data_type });
    }
    Ok(v)
}

fn whole_in_range(value: f64, lo: f64, hi: f64, data_type: DataType) -> Result<(), EncodeError> {
    if value.fract() != 0.0 || value < lo || value > hi {
        return Err(EncodeError::OutOfRange { value, data_type });
    }
    Ok(())
}

/// Encodes `value` as the registers of one point, the inverse of
/// [`decode_registers`]. Integer types need a whole number in range (round
/// first); `F32` rounds to the nearest single-precision value.
pub fn encode_registers(
    value: f64,
    data_type: DataType,
    word_order: WordOrder,
    byte_order: ByteOrder,
) -> Result<Vec<u16>, EncodeError> {
    if !value.is_finite() {
        return Err(EncodeError::NotFinite { value });
    }
    let be: Vec<u8> = match data_type {
        DataType::Bool => {
            whole_in_range(value, 0.0, 1.0, data_type)?;
            vec![0, u8::from(value == 1.0)]
        }
        DataType::U16 => {
            whole_in_range(value, 0.0, f64::from(u16::MAX), data_type)?;
            (value as u16).to_be_bytes().to_vec()
        }
        DataType::I16 => {
            whole_in_range(value, f64::from(i16::MIN), f64::from(i16::MAX), data_type)?;
            (value as i16).to_be_bytes().to_vec()
        }
        DataType::U32 => {
            whole_in_range(value, 0.0, f64::from(u32::MAX), data_type)?;
            (value as u32).to_be_bytes().to_vec()
        }
        DataType::I32 => {
            whole_in_range(value, f64::from(i32::MIN), f64::from(i32::MAX), data_type)?;
            (value as i32).to_be_bytes().to_vec()
        }
        DataType::U64 => {
            // 2^64 itself is representable in f64 but not in u64.
            whole_in_range(value, 0.0, 18_446_744_073_709_549_568.0, data_type)?;
            (value as u64).to_be_bytes().to_vec()
        }
        DataType::I64 => {
            whole_in_range(
                value,
                -9_223_372_036_854_775_808.0,
                9_223_372_036_854_774_784.0,
                data_type,
            )?;
            (value as i64).to_be_bytes().to_vec()
        }
        DataType::F32 => {
            let f = value as f32;
            if !f.is_finite() {
                return Err(EncodeError::OutOfRange { value, data_type });
            }
            f.to_be_bytes().to_vec()
        }
        DataType::F64 => value.to_be_bytes().to_vec(),
    };
    let mut words: Vec<u16> = be
        .chunks_exact(2)
        .map(|c| {
            let w = u16::from_be_bytes([c[0], c[1]]);
            match byte_order {
                ByteOrder::BigEndian => w,
                ByteOrder::LittleEndian => w.swap_bytes(),
            }
        })
        .collect();
    if word_order == WordOrder::LittleEndian {
        words.reverse();
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BE: WordOrder = WordOrder::BigEndian;
    const LE: WordOrder = WordOrder::LittleEndian;
    const BB: ByteOrder = ByteOrder::BigEndian;
    const BL: ByteOrder = ByteOrder::LittleEndian;

    #[test]
    fn known_images() {
        // 0x12345678 as ABCD, CDAB, BADC, DCBA.
        let v = f64::from(0x1234_5678u32);
        assert_eq!(
            decode_registers(&[0x1234, 0x5678], DataType::U32, BE, BB),
            Ok(v)
        );
        assert_eq!(
            decode_registers(&[0x5678, 0x1234], DataType::U32, LE, BB),
            Ok(v)
        );
        assert_eq!(
            decode_registers(&[0x3412, 0x7856], DataType::U32, BE, BL),
            Ok(v)
        );
        assert_eq!(
            decode_registers(&[0x7856, 0x3412], DataType::U32, LE, BL),
            Ok(v)
        );
        // 1.0f32 = 0x3F800000.
        assert_eq!(
            decode_registers(&[0x3F80, 0], DataType::F32, BE, BB),
            Ok(1.0)
        );
        assert_eq!(decode_registers(&[0xFFFF], DataType::I16, BE, BB), Ok(-1.0));
        assert_eq!(
            decode_registers(&[0xFFFF], DataType::U16, BE, BB),
            Ok(65535.0)
        );
        assert_eq!(decode_registers(&[0x0100], DataType::U16, BE, BL), Ok(1.0));
        assert_eq!(
            decode_registers(&[0, 0, 0x0001, 0x0002], DataType::U64, BE, BB),
            Ok(65538.0)
        );
        assert_eq!(
            decode_registers(&[0xFFFF; 4], DataType::I64, LE, BL),
            Ok(-1.0)
        );
        assert_eq!(decode_registers(&[7], DataType::Bool, BE, BB), Ok(1.0));
        assert_eq!(decode_registers(&[0], DataType::Bool, BE, BB), Ok(0.0));
    }

    #[test]
    fn wrong_length_and_non_finite_are_errors() {
        assert_eq!(
            decode_registers(&[1], DataType::U32, BE, BB),
            Err(DecodeError::Length {
                data_type: DataType::U32,
                expected: 2,
                got: 1
            })
        );
        assert!(decode_registers(&[], DataType::U16, BE, BB).is_err());
        assert!(decode_registers(&[1, 2, 3, 4, 5], DataType::F64, BE, BB).is_err());
        // 0x7FC00000 is a float NaN, 0x7F800000 +inf.
        assert_eq!(
            decode_registers(&[0x7FC0, 0], DataType::F32, BE, BB),
            Err(DecodeError::NotFinite {
                data_type: DataType::F32
            })
        );
        assert!(decode_registers(&[0x7F80, 0], DataType::F32, BE, BB).is_err());
    }

    #[test]
    fn encode_refuses_out_of_range_and_fractions() {
        assert!(encode_registers(65536.0, DataType::U16, BE, BB).is_err());
        assert!(encode_registers(-1.0, DataType::U16, BE, BB).is_err());
        assert!(encode_registers(1.5, DataType::I32, BE, BB).is_err());
        assert!(encode_registers(2.0, DataType::Bool, BE, BB).is_err());
        assert!(encode_registers(f64::NAN, DataType::F64, BE, BB).is_err());
        assert!(encode_registers(1e39, DataType::F32, BE, BB).is_err());
        assert!(encode_registers(18_446_744_073_709_551_616.0, DataType::U64, BE, BB).is_err());
        assert!(encode_registers(9_223_372_036_854_775_808.0, DataType::I64, BE, BB).is_err());
        assert_eq!(
            encode_registers(-32768.0, DataType::I16, BE, BB),
            Ok(vec![0x8000])
        );
    }

    #[test]
    fn names_parse_and_print() {
        for t in DataType::ALL {
            assert_eq!(t.as_str().parse::<DataType>(), Ok(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!("FLOAT32".parse::<DataType>(), Ok(DataType::F32));
        assert_eq!("little".parse::<WordOrder>(), Ok(WordOrder::LittleEndian));
        assert_eq!("big_endian".parse::<ByteOrder>(), Ok(ByteOrder::BigEndian));
        let e = "u17".parse::<DataType>().unwrap_err();
        assert!(
            e.to_string().contains("u17") && e.to_string().contains("f64"),
            "{e}"
        );
        assert!("middle".parse::<WordOrder>().is_err());
    }

    #[test]
    fn serde_uses_the_same_names() {
        #[derive(Deserialize, Serialize)]
        struct P {
            t: DataType,
            w: WordOrder,
            b: ByteOrder,
        }
        let p: P = serde_json::from_str(r#"{"t":"i32","w":"little_endian","b":"big"}"#).unwrap();
        assert_eq!(
            (p.t, p.w, p.b),
            (DataType::I32, WordOrder::LittleEndian, ByteOrder::BigEndian)
        );
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"t":"i32","w":"little_endian","b":"big_endian"}"#
        );
        let err = serde_json::from_str::<P>(r#"{"t":"x","w":"big","b":"big"}"#)
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown data type"), "{err}");
    }

    fn orders() -> impl Strategy<Value = (WordOrder, ByteOrder)> {
        (
            prop_oneof![Just(BE), Just(LE)],
            prop_oneof![Just(BB), Just(BL)],
        )
    }

    fn round_trip(v: f64, t: DataType, w: WordOrder, b: ByteOrder) -> Result<(), TestCaseError> {
        let regs = encode_registers(v, t, w, b).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(regs.len(), t.register_count());
        prop_assert_eq!(decode_registers(&regs, t, w, b), Ok(v));
        Ok(())
    }

    proptest! {
        #[test]
        fn integers_round_trip(x in any::<i64>(), (w, b) in orders()) {
            round_trip(f64::from(x as u16), DataType::U16, w, b)?;
            round_trip(f64::from(x as i16), DataType::I16, w, b)?;
            round_trip(f64::from(x as u32), DataType::U32, w, b)?;
            round_trip(f64::from(x as i32), DataType::I32, w, b)?;
            // Exact in f64: up to 53 significant bits.
            round_trip((x >> 11) as f64, DataType::I64, w, b)?;
            round_trip(((x as u64) >> 11) as f64, DataType::U64, w, b)?;
            round_trip(f64::from(u8::from(x & 1 == 1)), DataType::Bool, w, b)?;
        }

        #[test]
        fn floats_round_trip(f in any::<f32>(), d in any::<f64>(), (w, b) in orders()) {
            if f.is_finite() {
                round_trip(f64::from(f), DataType::F32, w, b)?;
            }
            if d.is_finite() {
                round_trip(d, DataType::F64, w, b)?;
            }
        }

        #[test]
        fn decode_never_panics(regs in proptest::collection::vec(any::<u16>(), 0..6),
                               t in proptest::sample::select(DataType::ALL.to_vec()),
                               (w, b) in orders()) {
            let r = decode_registers(&regs, t, w, b);
            if regs.len() != t.register_count() {
                prop_assert!(r.is_err());
            }
        }

        #[test]
        fn word_and_byte_order_are_permutations(regs in proptest::collection::vec(any::<u16>(), 2)) {
            // Decoding CDAB words is decoding the reversed ABCD words.
            let rev: Vec<u16> = regs.iter().rev().copied().collect();
            prop_assert_eq!(
                decode_registers(&regs, DataType::U32, LE, BB),
                decode_registers(&rev, DataType::U32, BE, BB)
            );
            let swapped: Vec<u16> = regs.iter().map(|w| w.swap_bytes()).collect();
            prop_assert_eq!(
                decode_registers(&regs, DataType::U32, BE, BL),
                decode_registers(&swapped, DataType::U32, BE, BB)
            );
        }
    }
}
