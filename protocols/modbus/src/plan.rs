//! Read planning, sans-IO: which requests fetch a device's points.
//!
//! Points are grouped by table, sorted by address, and merged into as few
//! reads as the protocol allows (125 registers or 2000 bits per request),
//! reading through gaps of at most `max_gap` unused addresses. A point is
//! never split across two reads. Each read lists the points it serves and
//! where their data starts in the response.

use crate::config::{ModbusPoint, Table};

/// A point as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub table: Table,
    pub address: u16,
    /// Registers or bits, at least 1.
    pub len: u16,
}

impl From<&ModbusPoint> for Span {
    fn from(p: &ModbusPoint) -> Self {
        Span {
            table: p.table,
            address: p.address,
            len: p.width(),
        }
    }
}

/// Where one point's data sits in a read's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Index of the point in the slice given to [`plan_reads`].
    pub point: usize,
    /// Registers (or bits) from the start of the read.
    pub offset: u16,
}

/// One read request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRead {
    pub table: Table,
    pub address: u16,
    pub count: u16,
    /// Points served, in address order.
    pub slots: Vec<Slot>,
}

impl PlannedRead {
    /// One past the last address read (u32: may be 65536).
    pub fn end(&self) -> u32 {
        u32::from(self.address) + u32::from(self.count)
    }
}

/// Plans the reads for `spans`. Spans with `len` 0 or past address 65535
/// are skipped (config validation rejects them before this point).
pub fn plan_reads(spans: &[Span], max_gap: u16) -> Vec<PlannedRead> {
    let mut order: Vec<usize> = (0..spans.len())
        .filter(|&i| {
            let s = spans[i];
            s.len > 0
                && s.len <= s.table.max_read()
                && u32::from(s.address) + u32::from(s.len) <= 65536
        })
        .collect();
    order.sort_by_key(|&i| (spans[i].table, spans[i].address, spans[i].len, i));

    let mut reads: Vec<PlannedRead> = Vec::new();
    let mut current: Option<(PlannedRead, u32)> = None; // (read, end)
    for i in order {
        let s = spans[i];
        let start = u32::from(s.address);
        let end = start + u32::from(s.len);
        if let Some((read, read_end)) = current.as_mut() {
            let fits_gap = start <= *read_end + u32::from(max_gap);
            let new_end = (*read_end).max(end);
            let fits_len = new_end - u32::from(read.address) <= u32::from(s.table.max_read());
            if read.table == s.table && fits_gap && fits_len {
                *read_end = new_end;
                read.count = (new_end - u32::from(read.address)) as u16;
                read.slots.push(Slot {
                    point: i,
                    offset: (start - u32::from(read.address)) as u16,
                });
                continue;
            }
        }
        if let Some((read, _)) = current.take() {
            reads.push(read);
        }
        current = Some((
            PlannedRead {
                table: s.table,
                address: s.address,
                count: s.len,
                slots: vec![Slot {
                    point: i,
                    offset: 0,
                }],
            },
            end,
        ));
    }
    if let Some((read, _)) = current {
        reads.push(read);
    }
    reads
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hr(address: u16, len: u16) -> Span {
        Span {
            table: Table::Holding,
            address,
            len,
        }
    }

    fn summary(reads: &[PlannedRead]) -> Vec<(Table, u16, u16)> {
        reads
            .iter()
            .map(|r| (r.table, r.address, r.count))
            .collect()
    }

    #[test]
    fn adjacent_points_merge() {
        let reads = plan_reads(&[hr(0, 1), hr(1, 2), hr(3, 4)], 0);
        assert_eq!(summary(&reads), vec![(Table::Holding, 0, 7)]);
        assert_eq!(
            reads[0].slots,
            vec![
                Slot {
                    point: 0,
                    offset: 0
                },
                Slot {
                    point: 1,
                    offset: 1
                },
                Slot {
                    point: 2,
                    offset: 3
                }
            ]
        );
    }

    #[test]
    fn gaps_up_to_max_gap_are_read_through() {
        // Gap of exactly 8 between 0 and 9 merges; gap of 9 does not.
        let reads = plan_reads(&[hr(0, 1), hr(9, 1)], 8);
        assert_eq!(summary(&reads), vec![(Table::Holding, 0, 10)]);
        let reads = plan_reads(&[hr(0, 1), hr(10, 1)], 8);
        assert_eq!(
            summary(&reads),
            vec![(Table::Holding, 0, 1), (Table::Holding, 10, 1)]
        );
        let reads = plan_reads(&[hr(0, 1), hr(2, 1)], 0);
        assert_eq!(reads.len(), 2);
    }

    #[test]
    fn limit_is_exactly_125_registers() {
        // 0..=124 is 125 registers: one read.
        let reads = plan_reads(&[hr(0, 1), hr(124, 1)], 200);
        assert_eq!(summary(&reads), vec![(Table::Holding, 0, 125)]);
        // 0..=125 is 126: two reads.
        let reads = plan_reads(&[hr(0, 1), hr(125, 1)], 200);
        assert_eq!(
            summary(&reads),
            vec![(Table::Holding, 0, 1), (Table::Holding, 125, 1)]
        );
        // 125 one-register points fill one read; the 126th starts another.
        let spans: Vec<Span> = (0..126).map(|a| hr(a, 1)).collect();
        let reads = plan_reads(&spans, 0);
        assert_eq!(
            summary(&reads),
            vec![(Table::Holding, 0, 125), (Table::Holding, 125, 1)]
        );
    }

    #[test]
    fn wide_points_are_never_split() {
        // A u32 at 123..=124 fits; an f64 at 123..=126 moves to the next read.
        let reads = plan_reads(&[hr(0, 1), hr(123, 2)], 200);
        assert_eq!(summary(&reads), vec![(Table::Holding, 0, 125)]);
        let reads = plan_reads(&[hr(0, 1), hr(123, 4)], 200);
        assert_eq!(
            summary(&reads),
            vec![(Table::Holding, 0, 1), (Table::Holding, 123, 4)]
        );
    }

    #[test]
    fn overlapping_points_share_registers() {
        // A u32 at 10 and its low word as a u16 at 11, plus the same address twice.
        let reads = plan_reads(&[hr(10, 2), hr(11, 1), hr(10, 2)], 0);
        assert_eq!(summary(&reads), vec![(Table::Holding, 10, 2)]);
        let mut offsets: Vec<(usize, u16)> =
            reads[0].slots.iter().map(|s| (s.point, s.offset)).collect();
        offsets.sort();
        assert_eq!(offsets, vec![(0, 0), (1, 1), (2, 0)]);
        // A long point that covers a later short one.
        let reads = plan_reads(&[hr(0, 4), hr(1, 1), hr(5, 1)], 1);
        assert_eq!(summary(&reads), vec![(Table::Holding, 0, 6)]);
    }

    #[test]
    fn tables_are_planned_apart_and_bits_allow_2000() {
        let spans = vec![
            Span {
                table: Table::Coil,
                address: 0,
                len: 1,
            },
            Span {
                table: Table::Coil,
                address: 1999,
                len: 1,
            },
            Span {
                table: Table::Coil,
                address: 2000,
                len: 1,
            },
            Span {
                table: Table::Input,
                address: 0,
                len: 1,
            },
            hr(0, 1),
            Span {
                table: Table::Discrete,
                address: 5,
                len: 1,
            },
        ];
        let reads = plan_reads(&spans, u16::MAX);
        assert_eq!(
            summary(&reads),
            vec![
                (Table::Holding, 0, 1),
                (Table::Input, 0, 1),
                (Table::Coil, 0, 2000),
                (Table::Coil, 2000, 1),
                (Table::Discrete, 5, 1),
            ]
        );
    }

    #[test]
    fn end_of_address_space() {
        let reads = plan_reads(&[hr(65532, 4), hr(65535, 1)], 0);
        assert_eq!(summary(&reads), vec![(Table::Holding, 65532, 4)]);
        assert_eq!(reads[0].end(), 65536);
        // Invalid spans are skipped, not panicked on.
        assert!(plan_reads(&[hr(65535, 2), hr(0, 0), hr(0, 126)], 0).is_empty());
        assert!(plan_reads(&[], 8).is_empty());
    }

    fn span() -> impl Strategy<Value = Span> {
        (
            proptest::sample::select(Table::ALL.to_vec()),
            0u16..400,
            prop_oneof![Just(1u16), Just(2), Just(4)],
        )
            .prop_map(|(table, address, len)| Span {
                table,
                address,
                len: if table.is_bits() { 1 } else { len },
            })
    }

    proptest! {
        #[test]
        fn every_point_is_served_once_within_limits(
            spans in proptest::collection::vec(span(), 0..200),
            max_gap in 0u16..40,
        ) {
            let reads = plan_reads(&spans, max_gap);
            let mut served = vec![0usize; spans.len()];
            for r in &reads {
                prop_assert!(r.count >= 1 && r.count <= r.table.max_read());
                for slot in &r.slots {
                    let s = spans[slot.point];
                    served[slot.point] += 1;
                    prop_assert_eq!(s.table, r.table);
                    prop_assert_eq!(u32::from(s.address), u32::from(r.address) + u32::from(slot.offset));
                    prop_assert!(u32::from(slot.offset) + u32::from(s.len) <= u32::from(r.count));
                }
            }
            prop_assert!(served.iter().all(|&n| n == 1), "{:?}", served);
            // Reads of one table come in address order; a read overlaps the
            // previous one only when its first point straddles that read's end.
            for w in reads.windows(2) {
                if w[0].table == w[1].table {
                    prop_assert!(w[0].address < w[1].address);
                    if w[0].end() > u32::from(w[1].address) {
                        let first = spans[w[1].slots[0].point];
                        prop_assert!(u32::from(first.address) + u32::from(first.len) > w[0].end());
                    }
                }
            }
        }

        #[test]
        fn no_unneeded_split(spans in proptest::collection::vec(span(), 1..50)) {
            // With an unbounded gap, a table whose points span at most the
            // limit is read in one request.
            let reads = plan_reads(&spans, u16::MAX);
            for t in Table::ALL {
                let of_t: Vec<&Span> = spans.iter().filter(|s| s.table == t).collect();
                if of_t.is_empty() { continue; }
                let lo = of_t.iter().map(|s| u32::from(s.address)).min().unwrap();
                let hi = of_t.iter().map(|s| u32::from(s.address) + u32::from(s.len)).max().unwrap();
                let n = reads.iter().filter(|r| r.table == t).count();
                if hi - lo <= u32::from(t.max_read()) {
                    prop_assert_eq!(n, 1);
                }
            }
        }
    }
}
