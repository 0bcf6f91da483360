//! The ring buffer against a simple model (a `BTreeMap` of blocks and a few
//! counters) under random sequences of appends, acks, age trims, catalog
//! growth and restarts. After every operation its result, the stats and the
//! stored payloads must match the model exactly, dropped counts included.

mod ring_support;

use dcmms_gateway::ring::{FullPolicy, RingBuffer, RingConfig, RingError, RingStats};
use dcmms_shared::{encode_samples, BlockClass, Message, Sample, TelemetryBlock};
use proptest::prelude::*;
use ring_support::{point_names, samples, Disk, Rng};
use std::collections::BTreeMap;
use std::time::Duration;

const T0: i64 = 1_780_000_000_000;
const MINUTE: i64 = 60_000;

#[derive(Debug, Clone)]
enum Op {
    Append {
        event: bool,
        n: usize,
        dt_min: i64,
        seed: u64,
    },
    /// Acks `lo..=lo+len` with `lo = next_seq - back`.
    Ack {
        back: u64,
        len: u64,
    },
    AckAll,
    Trim {
        dt_min: i64,
    },
    Intern {
        new: usize,
    },
    Reopen,
    ReadPart {
        after_back: u64,
        limit: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<bool>(), 1usize..60, 0i64..180, any::<u64>())
            .prop_map(|(event, n, dt_min, seed)| Op::Append { event, n, dt_min, seed }),
        // Blocks of several storage chunks.
        1 => (any::<bool>(), 600usize..3000, 0i64..180, any::<u64>())
            .prop_map(|(event, n, dt_min, seed)| Op::Append { event, n, dt_min, seed }),
        3 => (0u64..12, 0u64..5).prop_map(|(back, len)| Op::Ack { back, len }),
        1 => Just(Op::AckAll),
        2 => (0i64..600).prop_map(|dt_min| Op::Trim { dt_min }),
        1 => (1usize..4).prop_map(|new| Op::Intern { new }),
        1 => Just(Op::Reopen),
        1 => (0u64..10, 0usize..6).prop_map(|(after_back, limit)| Op::ReadPart { after_back, limit }),
    ]
}

#[derive(Debug, Clone)]
struct Block {
    class: BlockClass,
    samples: u64,
    stored_ms: i64,
    first_ts_ms: i64,
    payload: Vec<u8>,
}

#[derive(Debug)]
struct Model {
    max_bytes: u64,
    max_age_ms: i64,
    policy: FullPolicy,
    blocks: BTreeMap<u64, Block>,
    next_seq: u64,
    dropped_blocks: u64,
    dropped_samples: u64,
    /// Dropped blocks not (yet) acknowledged: seq -> samples. An ack for one
    /// means it was delivered before the drop and is not lost.
    dropped_recent: BTreeMap<u64, u64>,
    appended_blocks: u64,
    appended_samples: u64,
    catalog: Vec<String>,
    now: i64,
}

impl Model {
    fn bytes(&self) -> u64 {
        self.blocks.values().map(|b| b.payload.len() as u64).sum()
    }

    fn drop_block(&mut self, seq: u64) {
        let b = self.blocks.remove(&seq).unwrap();
        self.dropped_blocks += 1;
        self.dropped_samples += b.samples;
        self.dropped_recent.insert(seq, b.samples);
    }

    fn ack_dropped(&mut self, lo: u64, hi: u64) {
        let seqs: Vec<u64> = self
            .dropped_recent
            .range(lo..=hi)
            .map(|(s, _)| *s)
            .collect();
        for s in seqs {
            let n = self.dropped_recent.remove(&s).unwrap();
            self.dropped_blocks -= 1;
            self.dropped_samples -= n;
        }
    }

    /// Drops what the bounds require before `incoming` bytes are added;
    /// returns (blocks, samples) dropped.
    fn trim(&mut self, incoming: u64) -> (u64, u64) {
        let before = (self.dropped_blocks, self.dropped_samples);
        let expired: Vec<u64> = self
            .blocks
            .iter()
            .filter(|(_, b)| self.now - b.stored_ms > self.max_age_ms)
            .map(|(s, _)| *s)
            .collect();
        for seq in expired {
            self.drop_block(seq);
        }
        while self.bytes() + incoming > self.max_bytes {
            let oldest_of = |class: Option<BlockClass>| {
                self.blocks
                    .iter()
                    .find(|(_, b)| class.is_none_or(|c| b.class == c))
                    .map(|(s, _)| *s)
            };
            let victim = match self.policy {
                FullPolicy::DropOldest => oldest_of(None),
                FullPolicy::DropTelemetryFirst => {
                    oldest_of(Some(BlockClass::Telemetry)).or(oldest_of(Some(BlockClass::Event)))
                }
            };
            self.drop_block(victim.expect("over the bound with nothing stored"));
        }
        (
            self.dropped_blocks - before.0,
            self.dropped_samples - before.1,
        )
    }

    fn payload(&self, class: BlockClass, s: &[Sample]) -> Vec<u8> {
        Message::Telemetry(TelemetryBlock {
            seq: self.next_seq,
            class,
            sample_count: s.len() as u32,
            first_ts_ms: s.iter().map(|x| x.ts_ms).min().unwrap(),
            last_ts_ms: s.iter().map(|x| x.ts_ms).max().unwrap(),
            catalog_len: self.catalog.len() as u32,
            samples: encode_samples(s).unwrap(),
        })
        .encode()
    }

    fn stats(&self) -> RingStats {
        let count = |c| self.blocks.values().filter(|b| b.class == c).count() as u64;
        let first = self.blocks.iter().next();
        RingStats {
            blocks: self.blocks.len() as u64,
            telemetry_blocks: count(BlockClass::Telemetry),
            event_blocks: count(BlockClass::Event),
            bytes: self.bytes(),
            samples: self.blocks.values().map(|b| b.samples).sum(),
            oldest_ts_ms: first.map(|(_, b)| b.first_ts_ms),
            next_seq: self.next_seq,
            acked_through: first.map_or(self.next_seq, |(s, _)| *s) - 1,
            dropped_blocks: self.dropped_blocks,
            dropped_samples: self.dropped_samples,
            appended_blocks: self.appended_blocks,
            appended_samples: self.appended_samples,
            catalog_len: self.catalog.len() as u32,
        }
    }

    fn contents(&self) -> Vec<(u64, Vec<u8>)> {
        self.blocks
            .iter()
            .map(|(s, b)| (*s, b.payload.clone()))
            .collect()
    }
}

fn run(
    max_bytes: u64,
    max_age_min: i64,
    drop_oldest: bool,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let policy = if drop_oldest {
        FullPolicy::DropOldest
    } else {
        FullPolicy::DropTelemetryFirst
    };
    let cfg = RingConfig {
        max_bytes,
        max_age: Duration::from_secs(max_age_min as u64 * 60),
        full_policy: policy,
        ..RingConfig::new("mem:model")
    };
    let disk = Disk::new();
    let mut ring = Some(RingBuffer::open_with_backend(cfg.clone(), disk.clone()).unwrap());
    let mut m = Model {
        max_bytes,
        max_age_ms: max_age_min * MINUTE,
        policy,
        blocks: BTreeMap::new(),
        next_seq: 1,
        dropped_blocks: 0,
        dropped_samples: 0,
        dropped_recent: BTreeMap::new(),
        appended_blocks: 0,
        appended_samples: 0,
        catalog: point_names(0..4),
        now: T0,
    };
    ring.as_ref().unwrap().intern(&m.catalog).unwrap();

    for op in ops {
        let r = ring.as_ref().unwrap();
        match op {
            Op::Append {
                event,
                n,
                dt_min,
                seed,
            } => {
                m.now += dt_min * MINUTE;
                let class = if event {
                    BlockClass::Event
                } else {
                    BlockClass::Telemetry
                };
                let s = samples(
                    &mut Rng::new(seed),
                    n,
                    m.catalog.len() as u32,
                    m.now - MINUTE,
                );
                let payload = m.payload(class, &s);
                let got = r.append_block(class, &s, m.now);
                if payload.len() as u64 > m.max_bytes {
                    let too_large = matches!(got, Err(RingError::BlockTooLarge { .. }));
                    prop_assert!(too_large, "{:?}", got);
                } else {
                    let out = got.unwrap();
                    let (blocks, samples_dropped) = m.trim(payload.len() as u64);
                    prop_assert_eq!(out.seq, m.next_seq);
                    prop_assert_eq!(out.bytes, payload.len() as u64);
                    prop_assert_eq!(
                        (out.dropped.blocks, out.dropped.samples),
                        (blocks, samples_dropped)
                    );
                    m.blocks.insert(
                        m.next_seq,
                        Block {
                            class,
                            samples: n as u64,
                            stored_ms: m.now,
                            first_ts_ms: s.iter().map(|x| x.ts_ms).min().unwrap(),
                            payload,
                        },
                    );
                    m.next_seq += 1;
                    m.appended_blocks += 1;
                    m.appended_samples += n as u64;
                }
            }
            Op::Ack { back, len } => {
                let lo = m.next_seq.saturating_sub(back);
                let hi = lo + len;
                let expected = m.blocks.range(lo..=hi).count() as u64;
                m.blocks.retain(|s, _| !(lo..=hi).contains(s));
                m.ack_dropped(lo, hi);
                prop_assert_eq!(r.ack(&[(lo, hi), (hi + 1, lo)]).unwrap(), expected);
            }
            Op::AckAll => {
                let expected = m.blocks.len() as u64;
                m.blocks.clear();
                m.ack_dropped(0, u64::MAX);
                prop_assert_eq!(r.ack(&[(0, u64::MAX)]).unwrap(), expected);
            }
            Op::Trim { dt_min } => {
                m.now += dt_min * MINUTE;
                let (blocks, samples_dropped) = m.trim(0);
                let got = r.trim_expired(m.now).unwrap();
                prop_assert_eq!((got.blocks, got.samples), (blocks, samples_dropped));
            }
            Op::Intern { new } => {
                let len = m.catalog.len();
                // Some known names mixed in: they keep their ids.
                let names = point_names(len.saturating_sub(2)..len + new);
                let ids = r.intern(&names).unwrap();
                let expected: Vec<u32> = (len.saturating_sub(2)..len + new)
                    .map(|i| i as u32)
                    .collect();
                prop_assert_eq!(ids.iter().map(|p| p.0).collect::<Vec<_>>(), expected);
                m.catalog = point_names(0..len + new);
            }
            Op::Reopen => {
                drop(ring.take());
                ring = Some(RingBuffer::open_with_backend(cfg.clone(), disk.clone()).unwrap());
                m.appended_blocks = 0;
                m.appended_samples = 0;
            }
            Op::ReadPart { after_back, limit } => {
                let after = m.next_seq.saturating_sub(after_back);
                let expected: Vec<(u64, Vec<u8>)> = m
                    .blocks
                    .range(after + 1..)
                    .take(limit)
                    .map(|(s, b)| (*s, b.payload.clone()))
                    .collect();
                prop_assert_eq!(r.read_after(after, limit).unwrap(), expected);
            }
        }
        let r = ring.as_ref().unwrap();
        prop_assert_eq!(r.stats(), m.stats());
        prop_assert_eq!(r.read_after(0, usize::MAX).unwrap(), m.contents());
        prop_assert_eq!(r.catalog().unwrap(), m.catalog.clone());
        if let Some((seq, b)) = m.blocks.iter().next_back() {
            prop_assert_eq!(r.get(*seq).unwrap(), Some(b.payload.clone()));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn ring_matches_model(
        max_bytes in prop_oneof![300u64..3000, 3000u64..30_000],
        max_age_min in 30i64..1500,
        drop_oldest in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        run(max_bytes, max_age_min, drop_oldest, ops)?;
    }
}
