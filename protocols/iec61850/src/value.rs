//! MMS data as the driver sees it, and its conversion to samples, sans-IO.
//!
//! [`MmsValue`] and [`TypeTree`] are this crate's own, backend-neutral
//! picture of MMS `Data` and `TypeSpecification`; a backend converts into
//! them. This module owns turning them into numbers (with the shortest
//! decimal for `FLOAT32`), IEC 61850-7-3 `Quality` into a sample quality,
//! `Timestamp` into epoch milliseconds, and walking a structure by component
//! names. Nothing here does IO.

use dcmms_shared::Quality;

/// One MMS `Data` value.
#[derive(Debug, Clone, PartialEq)]
pub enum MmsValue {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float32(f32),
    Float64(f64),
    /// `unused` bits at the end of the last octet; bit 0 is the most
    /// significant bit of the first octet.
    BitString {
        unused: u8,
        bytes: Vec<u8>,
    },
    OctetString(Vec<u8>),
    String(String),
    UtcTime(UtcTime),
    BinaryTime(Vec<u8>),
    Structure(Vec<MmsValue>),
    Array(Vec<MmsValue>),
    /// A choice the backend does not model.
    Other,
}

/// An IEC 61850 `Timestamp`: seconds since 1970, a 24-bit binary fraction
/// of a second, and the time-quality octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UtcTime {
    pub seconds: u32,
    pub fraction: u32,
    pub quality: u8,
}

impl UtcTime {
    /// Milliseconds since the Unix epoch, rounded to the nearest ms (a
    /// device that keeps ms stores `ms * 2^24 / 1000` truncated, so
    /// truncating again would lose one), or `None` for an unset (zero)
    /// timestamp, which devices send before the value was first written.
    pub fn unix_ms(self) -> Option<i64> {
        if self.seconds == 0 && self.fraction == 0 {
            return None;
        }
        let frac_ms = (u64::from(self.fraction & 0x00FF_FFFF) * 1000 + (1 << 23)) >> 24;
        Some(i64::from(self.seconds) * 1000 + frac_ms as i64)
    }

    /// Time quality: the device's clock has failed.
    pub fn clock_failure(self) -> bool {
        self.quality & 0x40 != 0
    }

    /// Time quality: the device's clock is not synchronised.
    pub fn not_synchronized(self) -> bool {
        self.quality & 0x20 != 0
    }
}

/// The shape of an MMS variable, as `GetVariableAccessAttributes` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeTree {
    /// A primitive.
    Leaf(LeafType),
    /// Named components in the order a read returns their values.
    Structure(Vec<(String, TypeTree)>),
    Array {
        len: u32,
        element: Box<TypeTree>,
    },
}

/// Primitive MMS types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafType {
    Bool,
    /// With its length in bits (negative: at most that many).
    BitString(i32),
    Int,
    Uint,
    /// With its width in bits (32 or 64).
    Float(u8),
    OctetString,
    String,
    UtcTime,
    BinaryTime,
    Other,
}

impl TypeTree {
    /// Positions of `path` (component names) inside this structure, or
    /// `None` when a name is not there.
    pub fn positions(&self, path: &[String]) -> Option<Vec<usize>> {
        let mut node = self;
        let mut out = Vec::with_capacity(path.len());
        for name in path {
            let TypeTree::Structure(components) = node else {
                return None;
            };
            let i = components.iter().position(|(n, _)| n == name)?;
            out.push(i);
            node = &components.get(i)?.1;
        }
        Some(out)
    }

    /// The type at `path`, if it exists.
    pub fn at(&self, path: &[String]) -> Option<&TypeTree> {
        let mut node = self;
        for name in path {
            let TypeTree::Structure(components) = node else {
                return None;
            };
            node = &components.iter().find(|(n, _)| n == name)?.1;
        }
        Some(node)
    }
}

impl MmsValue {
    /// The value at component `positions` inside nested structures.
    pub fn at(&self, positions: &[usize]) -> Option<&MmsValue> {
        let mut v = self;
        for &i in positions {
            match v {
                MmsValue::Structure(m) => v = m.get(i)?,
                _ => return None,
            }
        }
        Some(v)
    }

    /// A short name of the MMS type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            MmsValue::Bool(_) => "boolean",
            MmsValue::Int(_) => "integer",
            MmsValue::Uint(_) => "unsigned",
            MmsValue::Float32(_) => "float32",
            MmsValue::Float64(_) => "float64",
            MmsValue::BitString { .. } => "bit-string",
            MmsValue::OctetString(_) => "octet-string",
            MmsValue::String(_) => "string",
            MmsValue::UtcTime(_) => "utc-time",
            MmsValue::BinaryTime(_) => "binary-time",
            MmsValue::Structure(_) => "structure",
            MmsValue::Array(_) => "array",
            MmsValue::Other => "unknown type",
        }
    }

    /// The number a sample carries, before scaling.
    ///
    /// Booleans are 0/1; a two-bit string (`Dbpos`, `Tcmd`) is its code
    /// (0 intermediate, 1 off, 2 on, 3 bad state); `FLOAT32` becomes the f64
    /// of its shortest decimal text, so `0.1f32` is `0.1`, not
    /// `0.10000000149011612`. Anything else is not a number.
    pub fn to_number(&self) -> Result<f64, ValueError> {
        match self {
            MmsValue::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
            MmsValue::Int(i) => Ok(*i as f64),
            MmsValue::Uint(u) => Ok(*u as f64),
            MmsValue::Float32(f) => f32_to_f64_decimal(*f),
            MmsValue::Float64(f) if f.is_finite() => Ok(*f),
            MmsValue::Float64(_) => Err(ValueError::NotFinite),
            MmsValue::BitString { unused: 6, bytes } if bytes.len() == 1 => {
                Ok(f64::from(bytes.first().copied().unwrap_or(0) >> 6))
            }
            other => Err(ValueError::NotANumber(other.kind())),
        }
    }
}

/// A value that does not make a sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(
        "a {0} is not a number (point the reference at a numeric attribute such as mag.f or stVal)"
    )]
    NotANumber(&'static str),
    #[error("value is NaN or infinite")]
    NotFinite,
}

/// The f64 nearest to the shortest decimal that reads back as `f`.
pub fn f32_to_f64_decimal(f: f32) -> Result<f64, ValueError> {
    if !f.is_finite() {
        return Err(ValueError::NotFinite);
    }
    // `Display` for f32 prints the shortest text that round-trips.
    format!("{f}")
        .parse::<f64>()
        .map_err(|_| ValueError::NotFinite)
}

/// IEC 61850-7-3 `Quality`, decoded from its bit string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceQuality {
    /// 0 good, 1 invalid, 2 reserved, 3 questionable.
    pub validity: u8,
    /// The detail bits, the source bit, test and operatorBlocked (bits 2-12),
    /// as bit n = quality bit n.
    pub flags: u16,
}

/// Names of quality bits 2..=12, in order.
pub const QUALITY_FLAGS: [&str; 11] = [
    "overflow",
    "outOfRange",
    "badReference",
    "oscillatory",
    "failure",
    "oldData",
    "inconsistent",
    "inaccurate",
    "substituted",
    "test",
    "operatorBlocked",
];

impl DeviceQuality {
    pub const GOOD: DeviceQuality = DeviceQuality {
        validity: 0,
        flags: 0,
    };

    /// Decodes the bit string of a `q` attribute (13 bits, at least two
    /// octets); `None` for anything else.
    pub fn from_value(v: &MmsValue) -> Option<DeviceQuality> {
        match v {
            MmsValue::BitString { bytes, .. } if bytes.len() >= 2 => {
                let (b0, b1) = (bytes[0], bytes[1]);
                let bits = (u16::from(b0) << 8) | u16::from(b1);
                let bit = |n: u16| (bits >> (15 - n)) & 1;
                let validity = (bit(0) << 1 | bit(1)) as u8;
                let mut flags = 0u16;
                for n in 2..=12u16 {
                    flags |= bit(n) << n;
                }
                Some(DeviceQuality { validity, flags })
            }
            _ => None,
        }
    }

    /// The sample quality: validity good with no flag is Good; invalid is
    /// Bad; the reserved validity (which the standard says is never sent)
    /// is Bad; questionable is Uncertain, and so is a good validity with any
    /// detail flag, a substituted source, the test flag or operatorBlocked,
    /// since such a value is not a fresh process value.
    pub fn to_sample_quality(self) -> Quality {
        match self.validity {
            1 | 2 => Quality::Bad,
            3 => Quality::Uncertain,
            _ if self.flags != 0 => Quality::Uncertain,
            _ => Quality::Good,
        }
    }

    /// Names of the flags set, for logs.
    pub fn flag_names(self) -> Vec<&'static str> {
        QUALITY_FLAGS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.flags & (1 << (i + 2)) != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// Encodes a quality into its bit string (for tests and simulators).
pub fn quality_bits(q: DeviceQuality) -> MmsValue {
    let mut bits: u16 = (u16::from(q.validity >> 1 & 1) << 15) | (u16::from(q.validity & 1) << 14);
    for n in 2..=12u16 {
        if q.flags & (1 << n) != 0 {
            bits |= 1 << (15 - n);
        }
    }
    MmsValue::BitString {
        unused: 3,
        bytes: vec![(bits >> 8) as u8, bits as u8],
    }
}

/// Arbitrary MMS values, for property tests of the decoders.
#[cfg(test)]
pub(crate) fn arb_value() -> impl proptest::strategy::Strategy<Value = MmsValue> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        any::<bool>().prop_map(MmsValue::Bool),
        any::<i64>().prop_map(MmsValue::Int),
        any::<u64>().prop_map(MmsValue::Uint),
        any::<f32>().prop_map(MmsValue::Float32),
        any::<f64>().prop_map(MmsValue::Float64),
        (0u8..8, proptest::collection::vec(any::<u8>(), 0..4))
            .prop_map(|(unused, bytes)| MmsValue::BitString { unused, bytes }),
        (any::<u32>(), any::<u32>(), any::<u8>()).prop_map(|(seconds, fraction, quality)| {
            MmsValue::UtcTime(UtcTime {
                seconds,
                fraction,
                quality,
            })
        }),
        "[a-z]{0,4}".prop_map(MmsValue::String),
        Just(MmsValue::Other),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(MmsValue::Structure),
            proptest::collection::vec(inner, 0..4).prop_map(MmsValue::Array),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers() {
        assert_eq!(MmsValue::Bool(true).to_number(), Ok(1.0));
        assert_eq!(MmsValue::Int(-5).to_number(), Ok(-5.0));
        assert_eq!(MmsValue::Uint(7).to_number(), Ok(7.0));
        assert_eq!(MmsValue::Float32(0.1).to_number(), Ok(0.1));
        assert_eq!(MmsValue::Float32(100.5).to_number(), Ok(100.5));
        assert_eq!(MmsValue::Float32(50.03).to_number(), Ok(50.03));
        assert_eq!(MmsValue::Float64(0.1).to_number(), Ok(0.1));
        assert_eq!(
            MmsValue::Float32(f32::NAN).to_number(),
            Err(ValueError::NotFinite)
        );
        // Dbpos on = 0b10 in the two most significant bits.
        let on = MmsValue::BitString {
            unused: 6,
            bytes: vec![0b1000_0000],
        };
        assert_eq!(on.to_number(), Ok(2.0));
        let e = MmsValue::Structure(vec![]).to_number().unwrap_err();
        assert!(e.to_string().contains("structure"), "{e}");
        assert!(MmsValue::String("x".into()).to_number().is_err());
    }

    #[test]
    fn timestamps() {
        let t = UtcTime {
            seconds: 1_700_000_000,
            fraction: 1 << 23,
            quality: 0x0a,
        };
        assert_eq!(t.unix_ms(), Some(1_700_000_000_500));
        assert_eq!(UtcTime::default().unix_ms(), None);
        for ms in [0u64, 1, 191, 500, 998, 999] {
            // How libiec61850 stores a millisecond time: truncated.
            let fraction = ((ms << 24) / 1000) as u32;
            let t = UtcTime {
                seconds: 7,
                fraction,
                quality: 0,
            };
            assert_eq!(t.unix_ms(), Some(7000 + ms as i64), "{ms} ms");
        }
        assert!(!t.clock_failure() && !t.not_synchronized());
        let bad = UtcTime { quality: 0x60, ..t };
        assert!(bad.clock_failure() && bad.not_synchronized());
    }

    #[test]
    fn quality_mapping() {
        let q = |v: u8, flags: u16| DeviceQuality { validity: v, flags }.to_sample_quality();
        assert_eq!(q(0, 0), Quality::Good);
        assert_eq!(q(1, 0), Quality::Bad);
        assert_eq!(q(2, 0), Quality::Bad);
        assert_eq!(q(3, 0), Quality::Uncertain);
        assert_eq!(q(0, 1 << 7), Quality::Uncertain, "oldData");
        assert_eq!(q(0, 1 << 11), Quality::Uncertain, "test");
        assert_eq!(q(1, 1 << 6), Quality::Bad, "invalid with failure");
        // libiec61850 QUALITY_VALIDITY_QUESTIONABLE | QUALITY_DETAIL_OLD_DATA,
        // as it goes on the wire: bits 0, 1 and 7.
        let wire = MmsValue::BitString {
            unused: 3,
            bytes: vec![0b1100_0001, 0],
        };
        let d = DeviceQuality::from_value(&wire).unwrap();
        assert_eq!(d.validity, 3);
        assert_eq!(d.flag_names(), vec!["oldData"]);
        // Invalid: bit 1 only.
        let inv = MmsValue::BitString {
            unused: 3,
            bytes: vec![0b0100_0000, 0],
        };
        assert_eq!(DeviceQuality::from_value(&inv).unwrap().validity, 1);
        assert_eq!(DeviceQuality::from_value(&MmsValue::Bool(true)), None);
        let short = MmsValue::BitString {
            unused: 6,
            bytes: vec![0],
        };
        assert_eq!(DeviceQuality::from_value(&short), None);
    }

    #[test]
    fn structure_walk() {
        let t = TypeTree::Structure(vec![
            (
                "mag".into(),
                TypeTree::Structure(vec![("f".into(), TypeTree::Leaf(LeafType::Float(32)))]),
            ),
            ("q".into(), TypeTree::Leaf(LeafType::BitString(13))),
            ("t".into(), TypeTree::Leaf(LeafType::UtcTime)),
        ]);
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(t.positions(&path(&["mag", "f"])), Some(vec![0, 0]));
        assert_eq!(t.positions(&path(&["t"])), Some(vec![2]));
        assert_eq!(t.positions(&path(&["mag", "i"])), None);
        assert_eq!(t.positions(&path(&["q", "x"])), None);
        assert_eq!(
            t.at(&path(&["q"])),
            Some(&TypeTree::Leaf(LeafType::BitString(13)))
        );
        let v = MmsValue::Structure(vec![
            MmsValue::Structure(vec![MmsValue::Float32(1.5)]),
            MmsValue::Bool(false),
        ]);
        assert_eq!(v.at(&[0, 0]), Some(&MmsValue::Float32(1.5)));
        assert_eq!(v.at(&[0, 1]), None);
        assert_eq!(v.at(&[1, 0]), None);
        assert_eq!(v.at(&[]), Some(&v));
    }

    proptest! {
        #[test]
        fn f32_decimal_is_exact_and_reads_back(bits in any::<u32>()) {
            let f = f32::from_bits(bits);
            match f32_to_f64_decimal(f) {
                Ok(d) => {
                    prop_assert!(f.is_finite());
                    prop_assert_eq!(d as f32, f);
                    // Never further from the f32 than the f32's own rounding.
                    let ulp = f64::from(f32::from_bits(f.to_bits().wrapping_add(1)) - f).abs();
                    prop_assert!((d - f64::from(f)).abs() <= ulp);
                }
                Err(_) => prop_assert!(!f.is_finite()),
            }
        }

        #[test]
        fn quality_bits_round_trip(validity in 0u8..4, flags in 0u16..(1 << 11)) {
            let q = DeviceQuality { validity, flags: flags << 2 };
            prop_assert_eq!(DeviceQuality::from_value(&quality_bits(q)), Some(q));
        }

        #[test]
        fn quality_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4), unused in 0u8..8) {
            let _ = DeviceQuality::from_value(&MmsValue::BitString { unused, bytes });
        }
    }
}
