//! From DNP3 measurements to samples, sans-IO: which configured point a
//! value belongs to, its scaled value, its timestamp and its quality.
//!
//! Quality from the DNP3 flags byte (IEEE 1815 tables 11-x, same bits for
//! every object type in bits 0-4):
//!
//! | flags                                                   | quality   |
//! |---------------------------------------------------------|-----------|
//! | ONLINE clear, or RESTART, or COMM_LOST set               | Bad       |
//! | else REMOTE_FORCED or LOCAL_FORCED set                  | Uncertain |
//! | else analog OVER_RANGE or REFERENCE_ERR set             | Uncertain |
//! | else binary CHATTER_FILTER set, counter DISCONTINUITY   | Uncertain |
//! | else double-bit value 3 (indeterminate)                 | Uncertain |
//! | otherwise (counter ROLLOVER, obsolete, does not count)  | Good      |
//!
//! Variations without flags (packed binaries, analogs "without flag") are
//! reported ONLINE by the DNP3 stack, so Good.
//!
//! Timestamp: the outstation's time when the object carries one and the
//! outstation's clock is synchronised; otherwise (no time, time 0, or a
//! time marked unsynchronised, which after an outstation restart counts
//! from 1970) the time the gateway received the response.
//! This module never touches the network or the clock.

use std::collections::HashMap;

use dcmms_protocols_core::Scaling;
use dcmms_shared::{PointId, Quality, Sample};

use crate::point::{Dnp3Point, PointKind};

/// Flag bits common to all DNP3 measurement types.
pub mod flags {
    pub const ONLINE: u8 = 0x01;
    pub const RESTART: u8 = 0x02;
    pub const COMM_LOST: u8 = 0x04;
    pub const REMOTE_FORCED: u8 = 0x08;
    pub const LOCAL_FORCED: u8 = 0x10;
    /// Binary: chatter filter; analog: over-range; counter: rollover.
    pub const BIT5: u8 = 0x20;
    /// Analog: reference error; counter: discontinuity; binary: reserved
    /// (double-bit: part of the state).
    pub const BIT6: u8 = 0x40;
}

/// A time an outstation attached to a value, in ms since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceTime {
    Synchronized(u64),
    Unsynchronized(u64),
}

/// One value of one point as the outstation reported it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    pub kind: PointKind,
    pub index: u16,
    /// The raw value: 0/1 for binaries, the 2-bit code for double-bit
    /// inputs, the number for analogs and counters.
    pub value: f64,
    pub flags: u8,
    pub time: Option<DeviceTime>,
    /// Whether it came in an event object (group 2, 4, 22, 32, ...).
    pub is_event: bool,
}

/// The quality of a value from its flags, per the table in the module doc.
pub fn quality(kind: PointKind, flags_byte: u8, value: f64) -> Quality {
    use flags::*;
    if flags_byte & ONLINE == 0 || flags_byte & (RESTART | COMM_LOST) != 0 {
        return Quality::Bad;
    }
    if flags_byte & (REMOTE_FORCED | LOCAL_FORCED) != 0 {
        return Quality::Uncertain;
    }
    let doubtful = match kind {
        PointKind::AnalogInput | PointKind::AnalogOutputStatus | PointKind::AnalogOutput => {
            flags_byte & (BIT5 | BIT6) != 0
        }
        PointKind::Counter | PointKind::FrozenCounter => flags_byte & BIT6 != 0,
        PointKind::BinaryInput | PointKind::BinaryOutputStatus | PointKind::Crob => {
            flags_byte & BIT5 != 0
        }
        PointKind::DoubleBitBinaryInput => flags_byte & BIT5 != 0 || value == 3.0,
    };
    if doubtful {
        Quality::Uncertain
    } else {
        Quality::Good
    }
}

/// The timestamp of a value, per the rule in the module doc.
pub fn sample_time(time: Option<DeviceTime>, received_ms: i64) -> i64 {
    match time {
        Some(DeviceTime::Synchronized(ms)) if ms != 0 => i64::try_from(ms).unwrap_or(received_ms),
        _ => received_ms,
    }
}

/// The configured measurement points of one outstation, by (kind, index).
#[derive(Debug, Clone, Default)]
pub struct PointTable {
    by_index: HashMap<(PointKind, u16), (PointId, Scaling)>,
    ids: Vec<PointId>,
}

impl PointTable {
    /// `ids[i]` is the id of `points[i]`, `None` for command points.
    pub fn new(points: &[Dnp3Point], ids: &[Option<PointId>]) -> Self {
        let mut table = PointTable::default();
        for (p, id) in points.iter().zip(ids) {
            if let (true, Some(id)) = (p.kind.is_measurement(), id) {
                table.by_index.insert((p.kind, p.index), (*id, p.scaling));
                table.ids.push(*id);
            }
        }
        table
    }

    /// The sample for `m`, or `None` when the point is not configured.
    pub fn sample(&self, m: &Measurement, received_ms: i64) -> Option<Sample> {
        let (id, scaling) = self.by_index.get(&(m.kind, m.index))?;
        let value = if m.kind.is_status() {
            m.value
        } else {
            scaling.apply(m.value)
        };
        Some(Sample {
            point: *id,
            ts_ms: sample_time(m.time, received_ms),
            value,
            quality: quality(m.kind, m.flags, m.value),
        })
    }

    /// A Bad sample at `ts_ms` for every measurement point (link lost).
    pub fn all_bad(&self, ts_ms: i64) -> Vec<Sample> {
        self.ids.iter().map(|&id| Sample::bad(id, ts_ms)).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;
    use crate::point::PointConfig;
    use proptest::prelude::*;

    fn m(
        kind: PointKind,
        index: u16,
        value: f64,
        flags: u8,
        time: Option<DeviceTime>,
    ) -> Measurement {
        Measurement {
            kind,
            index,
            value,
            flags,
            time,
            is_event: false,
        }
    }

    #[test]
    fn quality_table() {
        use PointKind::*;
        let q = |k, f| quality(k, f, 1.0);
        assert_eq!(q(AnalogInput, ONLINE), Quality::Good);
        assert_eq!(q(AnalogInput, 0), Quality::Bad);
        assert_eq!(q(AnalogInput, ONLINE | RESTART), Quality::Bad);
        assert_eq!(q(Counter, ONLINE | COMM_LOST), Quality::Bad);
        assert_eq!(q(BinaryInput, ONLINE | LOCAL_FORCED), Quality::Uncertain);
        assert_eq!(q(BinaryInput, ONLINE | REMOTE_FORCED), Quality::Uncertain);
        assert_eq!(
            q(AnalogInput, ONLINE | BIT5),
            Quality::Uncertain,
            "over-range"
        );
        assert_eq!(
            q(AnalogInput, ONLINE | BIT6),
            Quality::Uncertain,
            "reference error"
        );
        assert_eq!(
            q(Counter, ONLINE | BIT5),
            Quality::Good,
            "rollover is obsolete"
        );
        assert_eq!(
            q(Counter, ONLINE | BIT6),
            Quality::Uncertain,
            "discontinuity"
        );
        assert_eq!(
            q(BinaryInput, ONLINE | BIT5),
            Quality::Uncertain,
            "chatter filter"
        );
        // Bit 7 is the state of a binary and says nothing about quality.
        assert_eq!(q(BinaryInput, ONLINE | 0x80), Quality::Good);
        assert_eq!(q(BinaryOutputStatus, ONLINE | 0x40 | 0x80), Quality::Good);
        assert_eq!(
            quality(DoubleBitBinaryInput, ONLINE | 0xC0, 3.0),
            Quality::Uncertain
        );
        assert_eq!(
            quality(DoubleBitBinaryInput, ONLINE | 0x80, 2.0),
            Quality::Good
        );
    }

    #[test]
    fn time_rules() {
        assert_eq!(sample_time(None, 5), 5);
        assert_eq!(
            sample_time(Some(DeviceTime::Synchronized(1_700_000_000_000)), 5),
            1_700_000_000_000
        );
        assert_eq!(sample_time(Some(DeviceTime::Synchronized(0)), 5), 5);
        assert_eq!(sample_time(Some(DeviceTime::Unsynchronized(1234)), 5), 5);
    }

    #[test]
    fn table_maps_scales_and_skips_unknown_points() {
        let points: Vec<Dnp3Point> = [
            PointConfig::new("p", PointKind::AnalogInput, 3).with_scale(0.1, 0.0),
            PointConfig::new("b", PointKind::BinaryInput, 3),
            PointConfig::new("cmd", PointKind::Crob, 3),
            PointConfig::new("e", PointKind::Counter, 0).with_scale(0.001, 0.0),
        ]
        .iter()
        .map(|c| c.validate("d").unwrap())
        .collect();
        let ids = [
            Some(PointId(10)),
            Some(PointId(11)),
            None,
            Some(PointId(13)),
        ];
        let t = PointTable::new(&points, &ids);
        let s = t
            .sample(&m(PointKind::AnalogInput, 3, 2301.0, ONLINE, None), 99)
            .unwrap();
        assert_eq!(
            (s.point, s.value, s.ts_ms, s.quality),
            (PointId(10), 230.1, 99, Quality::Good)
        );
        let s = t
            .sample(
                &m(PointKind::BinaryInput, 3, 1.0, ONLINE | LOCAL_FORCED, None),
                99,
            )
            .unwrap();
        assert_eq!(
            (s.point, s.value, s.quality),
            (PointId(11), 1.0, Quality::Uncertain)
        );
        let s = t
            .sample(
                &m(
                    PointKind::Counter,
                    0,
                    123_456.0,
                    ONLINE,
                    Some(DeviceTime::Synchronized(7)),
                ),
                99,
            )
            .unwrap();
        assert_eq!((s.value, s.ts_ms), (123.456, 7));
        assert!(t
            .sample(&m(PointKind::AnalogInput, 4, 1.0, ONLINE, None), 0)
            .is_none());
        assert!(t
            .sample(&m(PointKind::Crob, 3, 1.0, ONLINE, None), 0)
            .is_none());
        let bad = t.all_bad(5);
        assert_eq!(bad.len(), 3, "command points have no samples");
        assert!(bad
            .iter()
            .all(|s| s.quality == Quality::Bad && s.ts_ms == 5));
    }

    proptest! {
        #[test]
        fn offline_or_lost_is_always_bad(kind in prop::sample::select(PointKind::ALL.to_vec()), f in any::<u8>(), v in 0u8..4) {
            let q = quality(kind, f, f64::from(v));
            if f & ONLINE == 0 || f & (RESTART | COMM_LOST) != 0 {
                prop_assert_eq!(q, Quality::Bad);
            } else if f & (LOCAL_FORCED | REMOTE_FORCED) != 0 {
                prop_assert_eq!(q, Quality::Uncertain);
            } else {
                prop_assert_ne!(q, Quality::Bad);
            }
        }

        #[test]
        fn time_is_device_time_only_when_synchronised(t in any::<u64>(), sync in any::<bool>(), rx in any::<i64>()) {
            let time = if sync { DeviceTime::Synchronized(t) } else { DeviceTime::Unsynchronized(t) };
            let got = sample_time(Some(time), rx);
            if sync && t != 0 && t <= i64::MAX as u64 {
                prop_assert_eq!(got, t as i64);
            } else {
                prop_assert_eq!(got, rx);
            }
        }
    }
}
