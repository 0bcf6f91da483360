//! Ring-buffer bookkeeping, without IO: the running totals of what the buffer
//! holds and the decision of which block to drop next.
//!
//! The redb layer ([`super::store`]) shows this module the oldest block of each
//! class and applies the verdict; everything that decides *what* goes (age,
//! byte bound, full-buffer policy) lives here and is unit-tested without a
//! database. Nothing here ever decides to delete a block that is within the
//! bounds: a block leaves the buffer only by an ack or by a drop chosen here.

use dcmms_shared::BlockClass;
use serde::{Deserialize, Serialize};

/// What to drop when the buffer reaches its byte bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FullPolicy {
    /// The oldest block goes first, whatever its class.
    DropOldest,
    /// The oldest telemetry block goes first; event blocks (alarms) go only
    /// when no telemetry block is left.
    #[default]
    DropTelemetryFirst,
}

/// Index entry of one stored block: what the bookkeeping needs without
/// reading the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMeta {
    pub seq: u64,
    /// Gateway clock when the block was appended; the age bound is measured
    /// from this.
    pub stored_ms: i64,
    /// Timestamp of the earliest sample in the block.
    pub first_ts_ms: i64,
    pub samples: u32,
    /// Length of the stored wire payload.
    pub bytes: u32,
}

/// The bounds a buffer is trimmed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_bytes: u64,
    /// A block whose `stored_ms` is more than this before "now" has expired.
    pub max_age_ms: i64,
    pub policy: FullPolicy,
}

/// Why a block is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Expired,
    Full,
}

/// The verdict of [`next_drop`]: drop the oldest block of `class`, `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropDecision {
    pub class: BlockClass,
    pub seq: u64,
    pub reason: DropReason,
}

/// Blocks and samples dropped by an operation (or in total).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropReport {
    pub blocks: u64,
    pub samples: u64,
}

impl DropReport {
    pub fn add(&mut self, meta: &BlockMeta) {
        self.blocks += 1;
        self.samples += u64::from(meta.samples);
    }
}

/// How a block left the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The hub committed it.
    Acked,
    /// The age or byte bound pushed it out; counted as lost.
    Dropped,
}

/// Slot of a class in per-class arrays.
pub fn class_slot(class: BlockClass) -> usize {
    match class {
        BlockClass::Telemetry => 0,
        BlockClass::Event => 1,
    }
}

/// Running totals of a buffer. Persisted with every write transaction so that
/// they always describe exactly the blocks stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    /// Sequence the next appended block gets. Starts at 1, never goes back.
    pub next_seq: u64,
    /// Sum of the payload lengths of the stored blocks.
    pub bytes: u64,
    /// Sum of the sample counts of the stored blocks.
    pub samples: u64,
    /// Stored blocks per class (see [`class_slot`]).
    pub blocks: [u64; 2],
    /// Cumulative, across restarts.
    pub dropped: DropReport,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            next_seq: 1,
            bytes: 0,
            samples: 0,
            blocks: [0, 0],
            dropped: DropReport::default(),
        }
    }
}

impl Ledger {
    pub fn total_blocks(&self) -> u64 {
        self.blocks[0] + self.blocks[1]
    }

    /// Hands out the next sequence number, or `None` once `u64` is exhausted
    /// (which no real gateway reaches).
    pub fn take_seq(&mut self) -> Option<u64> {
        let seq = self.next_seq;
        self.next_seq = seq.checked_add(1)?;
        Some(seq)
    }

    pub fn add(&mut self, class: BlockClass, meta: &BlockMeta) {
        self.bytes += u64::from(meta.bytes);
        self.samples += u64::from(meta.samples);
        self.blocks[class_slot(class)] += 1;
    }

    /// Accounts for a block leaving the buffer. Saturating: the totals are
    /// rebuilt from stored values, so a mismatch must not panic the gateway.
    pub fn remove(&mut self, class: BlockClass, meta: &BlockMeta, how: Removal) {
        self.bytes = self.bytes.saturating_sub(u64::from(meta.bytes));
        self.samples = self.samples.saturating_sub(u64::from(meta.samples));
        let slot = &mut self.blocks[class_slot(class)];
        *slot = slot.saturating_sub(1);
        if how == Removal::Dropped {
            self.dropped.add(meta);
        }
    }
}

/// Whether `meta` is older than the age bound at `now_ms`.
pub fn expired(bounds: &Bounds, meta: &BlockMeta, now_ms: i64) -> bool {
    now_ms.saturating_sub(meta.stored_ms) > bounds.max_age_ms
}

/// Decides the next block to drop, given the oldest stored block of each
/// class, before storing `incoming_bytes` more (0 when only trimming).
///
/// Expired blocks go first (the older sequence of the two classes). Then, while
/// the bytes held plus `incoming_bytes` exceed `max_bytes`, the policy picks a
/// victim. Returns `None` when the buffer is within its bounds.
///
/// Blocks are appended in time order, so checking only the oldest block of a
/// class for age is exact as long as the gateway clock does not go back; if it
/// does, later blocks simply expire later, never earlier.
pub fn next_drop(
    bounds: &Bounds,
    ledger: &Ledger,
    oldest_telemetry: Option<&BlockMeta>,
    oldest_event: Option<&BlockMeta>,
    incoming_bytes: u64,
    now_ms: i64,
) -> Option<DropDecision> {
    let tagged = |class, meta: Option<&BlockMeta>| meta.map(|m| (class, *m));
    let candidates = [
        tagged(BlockClass::Telemetry, oldest_telemetry),
        tagged(BlockClass::Event, oldest_event),
    ];
    let oldest_of = |filter: &dyn Fn(&BlockMeta) -> bool| {
        candidates
            .iter()
            .flatten()
            .filter(|(_, m)| filter(m))
            .min_by_key(|(_, m)| m.seq)
            .copied()
    };

    if let Some((class, meta)) = oldest_of(&|m| expired(bounds, m, now_ms)) {
        return Some(DropDecision {
            class,
            seq: meta.seq,
            reason: DropReason::Expired,
        });
    }

    if ledger.bytes.saturating_add(incoming_bytes) <= bounds.max_bytes {
        return None;
    }
    let victim = match bounds.policy {
        FullPolicy::DropOldest => oldest_of(&|_| true),
        FullPolicy::DropTelemetryFirst => candidates[0].or(candidates[1]),
    };
    victim.map(|(class, meta)| DropDecision {
        class,
        seq: meta.seq,
        reason: DropReason::Full,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn meta(seq: u64, stored_ms: i64, bytes: u32) -> BlockMeta {
        BlockMeta {
            seq,
            stored_ms,
            first_ts_ms: stored_ms.saturating_sub(1000),
            samples: 10,
            bytes,
        }
    }

    fn bounds(policy: FullPolicy) -> Bounds {
        Bounds {
            max_bytes: 1000,
            max_age_ms: 24 * HOUR,
            policy,
        }
    }

    fn ledger(bytes: u64) -> Ledger {
        Ledger {
            bytes,
            ..Ledger::default()
        }
    }

    /// A tiny in-memory buffer driven only by `next_drop`, to check the
    /// policy over whole sequences of appends.
    struct Sim {
        bounds: Bounds,
        ledger: Ledger,
        blocks: Vec<(BlockClass, BlockMeta)>,
    }

    impl Sim {
        fn new(bounds: Bounds) -> Sim {
            Sim {
                bounds,
                ledger: Ledger::default(),
                blocks: Vec::new(),
            }
        }

        fn oldest(&self, class: BlockClass) -> Option<&BlockMeta> {
            self.blocks
                .iter()
                .find(|(c, _)| *c == class)
                .map(|(_, m)| m)
        }

        fn append(&mut self, class: BlockClass, bytes: u32, now_ms: i64) -> DropReport {
            let mut report = DropReport::default();
            while let Some(d) = next_drop(
                &self.bounds,
                &self.ledger,
                self.oldest(BlockClass::Telemetry),
                self.oldest(BlockClass::Event),
                u64::from(bytes),
                now_ms,
            ) {
                let pos = self
                    .blocks
                    .iter()
                    .position(|(_, m)| m.seq == d.seq)
                    .unwrap();
                let (class, m) = self.blocks.remove(pos);
                assert_eq!(class, d.class);
                self.ledger.remove(class, &m, Removal::Dropped);
                report.add(&m);
            }
            let seq = self.ledger.take_seq().unwrap();
            let m = meta(seq, now_ms, bytes);
            self.ledger.add(class, &m);
            self.blocks.push((class, m));
            report
        }

        fn seqs(&self, class: BlockClass) -> Vec<u64> {
            self.blocks
                .iter()
                .filter(|(c, _)| *c == class)
                .map(|(_, m)| m.seq)
                .collect()
        }
    }

    #[test]
    fn within_bounds_drops_nothing() {
        let b = bounds(FullPolicy::DropOldest);
        let t = meta(1, 0, 400);
        assert_eq!(next_drop(&b, &ledger(400), Some(&t), None, 600, HOUR), None);
        assert_eq!(next_drop(&b, &ledger(0), None, None, 0, HOUR), None);
    }

    #[test]
    fn drop_oldest_takes_lowest_seq_of_any_class() {
        let b = bounds(FullPolicy::DropOldest);
        let t = meta(5, 0, 400);
        let e = meta(3, 0, 400);
        let d = next_drop(&b, &ledger(800), Some(&t), Some(&e), 400, HOUR).unwrap();
        assert_eq!(
            (d.class, d.seq, d.reason),
            (BlockClass::Event, 3, DropReason::Full)
        );
    }

    #[test]
    fn telemetry_first_protects_older_events() {
        let b = bounds(FullPolicy::DropTelemetryFirst);
        let t = meta(5, 0, 400);
        let e = meta(3, 0, 400);
        let d = next_drop(&b, &ledger(800), Some(&t), Some(&e), 400, HOUR).unwrap();
        assert_eq!((d.class, d.seq), (BlockClass::Telemetry, 5));
        // Only events left: they go, oldest first.
        let d = next_drop(&b, &ledger(800), None, Some(&e), 400, HOUR).unwrap();
        assert_eq!((d.class, d.seq), (BlockClass::Event, 3));
    }

    #[test]
    fn exactly_full_is_within_bounds() {
        let b = bounds(FullPolicy::DropOldest);
        let t = meta(1, 0, 600);
        assert_eq!(next_drop(&b, &ledger(600), Some(&t), None, 400, HOUR), None);
        assert!(next_drop(&b, &ledger(600), Some(&t), None, 401, HOUR).is_some());
    }

    #[test]
    fn age_applies_to_every_class_and_before_bytes() {
        let b = bounds(FullPolicy::DropTelemetryFirst);
        let now = 100 * HOUR;
        let old_event = meta(2, now - 25 * HOUR, 10);
        let young_tel = meta(7, now - HOUR, 10);
        let d = next_drop(&b, &ledger(20), Some(&young_tel), Some(&old_event), 0, now).unwrap();
        assert_eq!(
            (d.class, d.seq, d.reason),
            (BlockClass::Event, 2, DropReason::Expired)
        );
        // Exactly max_age old is not yet expired.
        let edge = meta(2, now - 24 * HOUR, 10);
        assert_eq!(
            next_drop(&b, &ledger(20), Some(&young_tel), Some(&edge), 0, now),
            None
        );
    }

    #[test]
    fn both_expired_goes_by_seq() {
        let b = bounds(FullPolicy::DropTelemetryFirst);
        let t = meta(4, 0, 10);
        let e = meta(9, 0, 10);
        let d = next_drop(&b, &ledger(20), Some(&t), Some(&e), 0, 48 * HOUR).unwrap();
        assert_eq!(d.seq, 4);
    }

    #[test]
    fn clock_going_back_expires_nothing() {
        let b = bounds(FullPolicy::DropOldest);
        let t = meta(1, 50 * HOUR, 10);
        assert_eq!(next_drop(&b, &ledger(10), Some(&t), None, 0, 0), None);
        assert_eq!(
            next_drop(&b, &ledger(10), Some(&t), None, 0, i64::MIN),
            None
        );
        let far_past = meta(1, i64::MIN, 10);
        assert!(next_drop(&b, &ledger(10), Some(&far_past), None, 0, i64::MAX).is_some());
    }

    #[test]
    fn ledger_counts_drops_not_acks() {
        let mut l = Ledger::default();
        let m = meta(1, 0, 100);
        l.add(BlockClass::Event, &m);
        l.add(BlockClass::Telemetry, &meta(2, 0, 50));
        assert_eq!((l.bytes, l.samples, l.blocks), (150, 20, [1, 1]));
        l.remove(BlockClass::Event, &m, Removal::Acked);
        assert_eq!(l.dropped, DropReport::default());
        l.remove(BlockClass::Telemetry, &meta(2, 0, 50), Removal::Dropped);
        assert_eq!(
            l.dropped,
            DropReport {
                blocks: 1,
                samples: 10
            }
        );
        assert_eq!((l.bytes, l.samples, l.total_blocks()), (0, 0, 0));
    }

    #[test]
    fn seq_never_wraps() {
        let mut l = Ledger {
            next_seq: u64::MAX,
            ..Ledger::default()
        };
        assert_eq!(l.take_seq(), None);
        let mut l = Ledger::default();
        assert_eq!(
            (l.take_seq(), l.take_seq(), l.next_seq),
            (Some(1), Some(2), 3)
        );
    }

    #[test]
    fn telemetry_first_keeps_every_event_while_telemetry_lasts() {
        let mut sim = Sim::new(bounds(FullPolicy::DropTelemetryFirst));
        sim.append(BlockClass::Event, 100, 0);
        sim.append(BlockClass::Event, 100, 0);
        for _ in 0..50 {
            sim.append(BlockClass::Telemetry, 100, 0);
        }
        assert_eq!(sim.seqs(BlockClass::Event), vec![1, 2]);
        assert_eq!(
            sim.seqs(BlockClass::Telemetry),
            (45..=52).collect::<Vec<_>>()
        );
        assert_eq!(sim.ledger.bytes, 1000);
        assert_eq!(
            sim.ledger.dropped,
            DropReport {
                blocks: 42,
                samples: 420
            }
        );
        // An event burst larger than what telemetry holds: telemetry goes
        // first, then the oldest events.
        for _ in 0..9 {
            sim.append(BlockClass::Event, 100, 0);
        }
        assert!(sim.seqs(BlockClass::Telemetry).is_empty());
        let mut expected = vec![2];
        expected.extend(53..=61);
        assert_eq!(sim.seqs(BlockClass::Event), expected);
    }

    #[test]
    fn drop_oldest_is_fifo() {
        let mut sim = Sim::new(bounds(FullPolicy::DropOldest));
        sim.append(BlockClass::Event, 300, 0);
        for _ in 0..3 {
            sim.append(BlockClass::Telemetry, 300, 0);
        }
        assert_eq!(sim.seqs(BlockClass::Event), Vec::<u64>::new());
        assert_eq!(sim.seqs(BlockClass::Telemetry), vec![2, 3, 4]);
        let r = sim.append(BlockClass::Telemetry, 700, 0);
        assert_eq!(
            r,
            DropReport {
                blocks: 2,
                samples: 20
            }
        );
        assert_eq!(sim.seqs(BlockClass::Telemetry), vec![4, 5]);
    }

    #[test]
    fn age_trims_in_sequence_order_as_time_passes() {
        let mut sim = Sim::new(bounds(FullPolicy::DropTelemetryFirst));
        for h in 0..10 {
            let class = if h % 3 == 0 {
                BlockClass::Event
            } else {
                BlockClass::Telemetry
            };
            sim.append(class, 10, h * HOUR);
        }
        // At 30h every block stored at or before 5h has expired (> 24h old).
        let r = sim.append(BlockClass::Telemetry, 10, 30 * HOUR);
        assert_eq!(r.blocks, 6);
        let mut left: Vec<u64> = sim.blocks.iter().map(|(_, m)| m.seq).collect();
        left.sort_unstable();
        assert_eq!(left, vec![7, 8, 9, 10, 11]);
    }

    #[test]
    fn policy_names_in_config() {
        #[derive(Deserialize)]
        struct C {
            p: FullPolicy,
        }
        let c: C = serde_json::from_str(r#"{"p":"drop-telemetry-first"}"#).unwrap();
        assert_eq!(c.p, FullPolicy::DropTelemetryFirst);
        let c: C = serde_json::from_str(r#"{"p":"drop-oldest"}"#).unwrap();
        assert_eq!(c.p, FullPolicy::DropOldest);
    }
}
