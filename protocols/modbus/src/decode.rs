//! Read responses to samples, sans-IO.
//!
//! Checks that a response carries what the planned read asked for, then
//! decodes and scales each point it serves. A response of the wrong size is
//! an error for the whole read; a point whose value cannot be decoded (a
//! float NaN) becomes one Bad sample.

use dcmms_protocols_core::decode_registers;
use dcmms_shared::{PointId, Sample};

use crate::config::ModbusPoint;
use crate::plan::PlannedRead;

/// The payload of a successful read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadData {
    Registers(Vec<u16>),
    Bits(Vec<bool>),
}

/// A response that does not fit its request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseMismatch {
    #[error("asked for {asked} registers, got {got}")]
    RegisterCount { asked: u16, got: usize },
    #[error("asked for {asked} bits, got {got}")]
    BitCount { asked: u16, got: usize },
    #[error("got {got} for a read of the {table} table")]
    Kind {
        got: &'static str,
        table: &'static str,
    },
}

/// Pushes one sample per point of `read` onto `out`. Returns how many points
/// could not be decoded (they are pushed as Bad samples).
pub fn decode_read(
    read: &PlannedRead,
    points: &[ModbusPoint],
    ids: &[PointId],
    data: &ReadData,
    ts_ms: i64,
    out: &mut Vec<Sample>,
) -> Result<usize, ResponseMismatch> {
    match (data, read.table.is_bits()) {
        (ReadData::Registers(regs), false) => {
            if regs.len() != usize::from(read.count) {
                return Err(ResponseMismatch::RegisterCount {
                    asked: read.count,
                    got: regs.len(),
                });
            }
        }
        // Bit responses come in whole bytes; the extra bits are padding.
        (ReadData::Bits(bits), true) => {
            if bits.len() < usize::from(read.count) || bits.len() > usize::from(read.count) + 7 {
                return Err(ResponseMismatch::BitCount {
                    asked: read.count,
                    got: bits.len(),
                });
            }
        }
        (ReadData::Registers(_), true) => {
            return Err(ResponseMismatch::Kind {
                got: "registers",
                table: read.table.as_str(),
            })
        }
        (ReadData::Bits(_), false) => {
            return Err(ResponseMismatch::Kind {
                got: "bits",
                table: read.table.as_str(),
            })
        }
    }
    let mut failed = 0;
    for slot in &read.slots {
        let (Some(p), Some(&id)) = (points.get(slot.point), ids.get(slot.point)) else {
            continue;
        };
        let start = usize::from(slot.offset);
        let raw = match data {
            ReadData::Bits(bits) => bits.get(start).map(|&b| f64::from(u8::from(b))),
            ReadData::Registers(regs) => regs
                .get(start..start + usize::from(p.width()))
                .and_then(|r| decode_registers(r, p.data_type, p.word_order, p.byte_order).ok()),
        };
        match raw {
            Some(raw) => out.push(Sample::good(id, ts_ms, p.scaling.apply(raw))),
            None => {
                failed += 1;
                out.push(Sample::bad(id, ts_ms));
            }
        }
    }
    Ok(failed)
}

/// Pushes a Bad sample for every point of `read`.
pub fn bad_read(read: &PlannedRead, ids: &[PointId], ts_ms: i64, out: &mut Vec<Sample>) {
    out.extend(
        read.slots
            .iter()
            .filter_map(|s| ids.get(s.point))
            .map(|&id| Sample::bad(id, ts_ms)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PointConfig, Table};
    use crate::plan::{plan_reads, Span};
    use dcmms_protocols_core::DataType;
    use dcmms_shared::Quality;

    fn setup(cfgs: Vec<PointConfig>) -> (Vec<ModbusPoint>, Vec<PointId>, Vec<PlannedRead>) {
        let points: Vec<ModbusPoint> = cfgs.iter().map(|c| c.validate("d").unwrap()).collect();
        let ids = (0..points.len() as u32).map(PointId).collect();
        let spans: Vec<Span> = points.iter().map(Span::from).collect();
        let reads = plan_reads(&spans, 8);
        (points, ids, reads)
    }

    #[test]
    fn registers_are_decoded_and_scaled() {
        let (points, ids, reads) = setup(vec![
            PointConfig::new("v", Table::Input, 0).with_scale(0.1, 0.0),
            PointConfig::new("p", Table::Input, 1).with_type(DataType::U32),
            PointConfig::new("f", Table::Input, 4).with_type(DataType::F32),
            PointConfig::new("t", Table::Input, 6)
                .with_type(DataType::I16)
                .with_scale(0.01, 0.0),
        ]);
        assert_eq!(reads.len(), 1);
        let data = ReadData::Registers(vec![2301, 1, 2, 99, 0x3FC0, 0, 0xFF9C]);
        let mut out = Vec::new();
        assert_eq!(
            decode_read(&reads[0], &points, &ids, &data, 5, &mut out),
            Ok(0)
        );
        let values: Vec<f64> = out.iter().map(|s| s.value).collect();
        assert_eq!(values, vec![230.1, 65538.0, 1.5, -1.0]);
        assert!(out
            .iter()
            .all(|s| s.ts_ms == 5 && s.quality == Quality::Good));
    }

    #[test]
    fn wrong_sizes_are_mismatches() {
        let (points, ids, reads) = setup(vec![
            PointConfig::new("a", Table::Holding, 0),
            PointConfig::new("b", Table::Holding, 3),
        ]);
        let mut out = Vec::new();
        for regs in [vec![], vec![1, 2, 3], vec![1; 5]] {
            let r = decode_read(
                &reads[0],
                &points,
                &ids,
                &ReadData::Registers(regs),
                0,
                &mut out,
            );
            assert!(
                matches!(r, Err(ResponseMismatch::RegisterCount { asked: 4, .. })),
                "{r:?}"
            );
        }
        let r = decode_read(
            &reads[0],
            &points,
            &ids,
            &ReadData::Bits(vec![true; 8]),
            0,
            &mut out,
        );
        assert!(matches!(r, Err(ResponseMismatch::Kind { .. })));
        assert!(out.is_empty());
    }

    #[test]
    fn bits_allow_byte_padding_only() {
        let (points, ids, reads) = setup(vec![
            PointConfig::new("a", Table::Coil, 0),
            PointConfig::new("b", Table::Coil, 2),
        ]);
        let mut out = Vec::new();
        let data = ReadData::Bits(vec![true, false, false, true, false, false, false, false]);
        assert_eq!(
            decode_read(&reads[0], &points, &ids, &data, 0, &mut out),
            Ok(0)
        );
        assert_eq!(
            out.iter().map(|s| s.value).collect::<Vec<_>>(),
            vec![1.0, 0.0]
        );
        let short = ReadData::Bits(vec![true, false]);
        assert!(decode_read(&reads[0], &points, &ids, &short, 0, &mut out).is_err());
        let long = ReadData::Bits(vec![false; 16]);
        assert!(decode_read(&reads[0], &points, &ids, &long, 0, &mut out).is_err());
    }

    #[test]
    fn nan_floats_become_bad_samples() {
        let (points, ids, reads) = setup(vec![
            PointConfig::new("f", Table::Holding, 0).with_type(DataType::F32),
            PointConfig::new("g", Table::Holding, 2),
        ]);
        let mut out = Vec::new();
        let data = ReadData::Registers(vec![0x7FC0, 0, 7]);
        assert_eq!(
            decode_read(&reads[0], &points, &ids, &data, 0, &mut out),
            Ok(1)
        );
        assert_eq!(out[0].quality, Quality::Bad);
        assert_eq!((out[1].quality, out[1].value), (Quality::Good, 7.0));
        let mut bad = Vec::new();
        bad_read(&reads[0], &ids, 9, &mut bad);
        assert_eq!(bad.len(), 2);
        assert!(bad
            .iter()
            .all(|s| s.quality == Quality::Bad && s.ts_ms == 9));
    }
}
