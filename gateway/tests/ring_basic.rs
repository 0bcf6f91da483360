//! Behaviour of the ring buffer through its public API, on real files and on
//! the in-memory disk: payload format, ack, bounds, reopen, refusals.

mod ring_support;

use dcmms_gateway::ring::{
    DropReport, FullPolicy, RingBuffer, RingConfig, RingError, DEFAULT_CACHE_BYTES,
};
use dcmms_shared::{decode_samples, BlockClass, Message, PointId, Sample, TelemetryBlock};
use ring_support::{check_consistent, mem_config, point_names, samples, snapshot, Disk, Rng};
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_780_000_000_000;
const HOUR: i64 = 3_600_000;

fn decode(payload: &[u8]) -> TelemetryBlock {
    match Message::decode(payload).unwrap() {
        Message::Telemetry(b) => b,
        other => panic!("not telemetry: {other:?}"),
    }
}

fn sorted(mut v: Vec<Sample>) -> Vec<Sample> {
    v.sort_by_key(|s| (s.point, s.ts_ms));
    v
}

fn mem_ring(cfg: RingConfig) -> (RingBuffer, Disk) {
    let disk = Disk::new();
    (
        RingBuffer::open_with_backend(cfg, disk.clone()).unwrap(),
        disk,
    )
}

fn with_points(ring: &RingBuffer, n: usize) {
    ring.intern(&point_names(0..n)).unwrap();
}

#[test]
fn stored_value_is_the_wire_payload() {
    let (ring, _) = mem_ring(mem_config("wire"));
    with_points(&ring, 10);
    let mut rng = Rng::new(1);
    let input = samples(&mut rng, 35, 10, T0);
    let out = ring
        .append_block(BlockClass::Event, &input, T0 + 5)
        .unwrap();
    assert_eq!(out.seq, 1);
    assert_eq!(out.dropped, DropReport::default());

    let payload = ring.get(1).unwrap().unwrap();
    assert_eq!(out.bytes, payload.len() as u64);
    let b = decode(&payload);
    assert_eq!(b.seq, 1);
    assert_eq!(b.class, BlockClass::Event);
    assert_eq!(b.sample_count, 35);
    assert_eq!(b.first_ts_ms, T0);
    assert_eq!(b.last_ts_ms, T0 + 3000);
    assert_eq!(b.catalog_len, 10);
    assert_eq!(sorted(decode_samples(&b.samples).unwrap()), sorted(input));
    assert_eq!(ring.read_after(0, 10).unwrap(), vec![(1, payload)]);
    assert_eq!(ring.get(2).unwrap(), None);
}

#[test]
fn read_after_merges_classes_in_sequence_order() {
    let (ring, _) = mem_ring(mem_config("merge"));
    with_points(&ring, 3);
    let mut rng = Rng::new(2);
    let classes = [
        BlockClass::Telemetry,
        BlockClass::Event,
        BlockClass::Event,
        BlockClass::Telemetry,
        BlockClass::Telemetry,
        BlockClass::Event,
    ];
    for (i, class) in classes.iter().enumerate() {
        let s = samples(&mut rng, 3, 3, T0 + i as i64);
        assert_eq!(ring.append_block(*class, &s, T0).unwrap().seq, i as u64 + 1);
    }
    let seqs = |after, limit| -> Vec<u64> {
        ring.read_after(after, limit)
            .unwrap()
            .into_iter()
            .map(|(s, p)| {
                assert_eq!(decode(&p).class, classes[s as usize - 1]);
                s
            })
            .collect()
    };
    assert_eq!(seqs(0, 100), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(seqs(2, 3), vec![3, 4, 5]);
    assert_eq!(seqs(6, 10), Vec::<u64>::new());
    assert_eq!(seqs(u64::MAX, 10), Vec::<u64>::new());
    assert_eq!(seqs(0, 0), Vec::<u64>::new());
}

#[test]
fn ack_removes_only_acknowledged_blocks() {
    let (ring, _) = mem_ring(mem_config("ack"));
    with_points(&ring, 4);
    let mut rng = Rng::new(3);
    for i in 0..10 {
        let class = if i % 4 == 0 {
            BlockClass::Event
        } else {
            BlockClass::Telemetry
        };
        ring.append_block(class, &samples(&mut rng, 8, 4, T0), T0)
            .unwrap();
    }
    assert_eq!(ring.ack(&[(2, 3), (5, 5), (9, 4)]).unwrap(), 3);
    assert_eq!(ring.stats().acked_through, 0);
    assert_eq!(ring.ack(&[(1, 1), (2, 3), (40, 50)]).unwrap(), 1);
    let st = ring.stats();
    assert_eq!(st.acked_through, 3, "1..=3 gone, 4 held");
    assert_eq!((st.blocks, st.samples), (6, 48));
    assert_eq!(
        (st.dropped_blocks, st.dropped_samples),
        (0, 0),
        "acks are not drops"
    );
    let held: Vec<u64> = ring
        .read_after(0, 100)
        .unwrap()
        .iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(held, vec![4, 6, 7, 8, 9, 10]);
    assert_eq!(ring.ack(&[(0, u64::MAX)]).unwrap(), 6);
    let st = ring.stats();
    assert_eq!(
        (st.blocks, st.bytes, st.acked_through, st.next_seq),
        (0, 0, 10, 11)
    );
    assert_eq!(st.oldest_ts_ms, None);
    assert_eq!(ring.ack(&[(1, 100)]).unwrap(), 0);
    check_consistent(&snapshot(&ring));
}

#[test]
fn byte_bound_drops_telemetry_before_events() {
    let cfg = RingConfig {
        max_bytes: 4000,
        ..mem_config("full")
    };
    let (ring, _) = mem_ring(cfg);
    with_points(&ring, 20);
    let mut rng = Rng::new(4);
    let event = ring
        .append_block(BlockClass::Event, &samples(&mut rng, 20, 20, T0), T0)
        .unwrap();
    let mut dropped = DropReport::default();
    for i in 1..200 {
        let out = ring
            .append_block(
                BlockClass::Telemetry,
                &samples(&mut rng, 20, 20, T0 + i),
                T0 + i,
            )
            .unwrap();
        dropped.blocks += out.dropped.blocks;
        dropped.samples += out.dropped.samples;
        assert!(ring.stats().bytes <= 4000);
    }
    let st = ring.stats();
    assert!(dropped.blocks > 150, "{dropped:?}");
    assert_eq!(
        (st.dropped_blocks, st.dropped_samples),
        (dropped.blocks, dropped.samples)
    );
    assert_eq!(st.dropped_samples, 20 * st.dropped_blocks);
    assert_eq!(st.blocks + st.dropped_blocks, 200);
    assert_eq!(st.event_blocks, 1);
    assert!(
        ring.get(event.seq).unwrap().is_some(),
        "the event block survived"
    );
    assert_eq!(st.acked_through, 0, "the event is still pending");
    check_consistent(&snapshot(&ring));
}

#[test]
fn drop_oldest_drops_events_too() {
    let cfg = RingConfig {
        max_bytes: 4000,
        full_policy: FullPolicy::DropOldest,
        ..mem_config("oldest")
    };
    let (ring, _) = mem_ring(cfg);
    with_points(&ring, 20);
    let mut rng = Rng::new(5);
    ring.append_block(BlockClass::Event, &samples(&mut rng, 20, 20, T0), T0)
        .unwrap();
    for i in 1..100 {
        ring.append_block(
            BlockClass::Telemetry,
            &samples(&mut rng, 20, 20, T0),
            T0 + i,
        )
        .unwrap();
    }
    let st = ring.stats();
    assert_eq!(st.event_blocks, 0);
    assert_eq!(st.acked_through, st.dropped_blocks);
    check_consistent(&snapshot(&ring));
}

#[test]
fn age_bound_drops_and_counts() {
    let cfg = RingConfig {
        max_age: Duration::from_secs(24 * 3600),
        ..mem_config("age")
    };
    let (ring, _) = mem_ring(cfg);
    with_points(&ring, 5);
    let mut rng = Rng::new(6);
    for h in 0..10 {
        ring.append_block(
            BlockClass::Event,
            &samples(&mut rng, 7, 5, T0 + h * HOUR),
            T0 + h * HOUR,
        )
        .unwrap();
    }
    assert_eq!(
        ring.trim_expired(T0 + 24 * HOUR).unwrap(),
        DropReport::default()
    );
    let r = ring.trim_expired(T0 + 24 * HOUR + 3 * HOUR + 1).unwrap();
    assert_eq!(
        r,
        DropReport {
            blocks: 4,
            samples: 28
        }
    );
    let st = ring.stats();
    assert_eq!(
        (st.blocks, st.acked_through, st.dropped_samples),
        (6, 4, 28)
    );
    assert_eq!(st.oldest_ts_ms, Some(T0 + 4 * HOUR));
    // An append trims by age too.
    let out = ring
        .append_block(
            BlockClass::Telemetry,
            &samples(&mut rng, 7, 5, T0),
            T0 + 40 * HOUR,
        )
        .unwrap();
    assert_eq!(
        out.dropped,
        DropReport {
            blocks: 6,
            samples: 42
        }
    );
    assert_eq!(ring.stats().blocks, 1);
}

#[test]
fn reopen_continues_sequences_and_keeps_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/ring.redb");
    let cfg = RingConfig {
        max_bytes: 3000,
        ..RingConfig::new(&path)
    };
    let mut rng = Rng::new(7);
    let before = {
        let ring = RingBuffer::open(cfg.clone()).unwrap();
        assert_eq!(ring.intern(&point_names(0..8)).unwrap().len(), 8);
        for i in 0..40 {
            ring.append_block(BlockClass::Telemetry, &samples(&mut rng, 16, 8, T0), T0 + i)
                .unwrap();
        }
        let st = ring.stats();
        assert!(st.dropped_blocks > 0);
        assert_eq!((st.appended_blocks, st.appended_samples), (40, 640));
        // Acknowledge everything: no block is left to recall the sequence.
        ring.ack(&[(1, 40)]).unwrap();
        let st = ring.stats();
        assert_eq!((st.blocks, st.acked_through, st.next_seq), (0, 40, 41));
        snapshot(&ring)
    };
    let ring = RingBuffer::open(cfg.clone()).unwrap();
    let after = snapshot(&ring);
    assert_eq!(after, before);
    let st = ring.stats();
    assert_eq!((st.appended_blocks, st.appended_samples), (0, 0));
    assert_eq!(
        ring.intern(&point_names(6..10)).unwrap(),
        vec![PointId(6), PointId(7), PointId(8), PointId(9)]
    );
    let out = ring
        .append_block(BlockClass::Event, &samples(&mut rng, 4, 10, T0), T0)
        .unwrap();
    assert_eq!(out.seq, 41);
    drop(ring);
    let ring = RingBuffer::open(cfg).unwrap();
    assert_eq!(ring.stats().next_seq, 42);
    assert_eq!(ring.catalog().unwrap(), point_names(0..10));
    check_consistent(&snapshot(&ring));
}

#[test]
fn catalog_ids_are_dense_and_stable() {
    let disk = Disk::new();
    let cfg = mem_config("catalog");
    {
        let ring = RingBuffer::open_with_backend(cfg.clone(), disk.clone()).unwrap();
        let names = vec!["inv1/p".to_string(), "inv2/p".into(), "inv1/p".into()];
        assert_eq!(
            ring.intern(&names).unwrap(),
            vec![PointId(0), PointId(1), PointId(0)]
        );
        assert_eq!(ring.stats().catalog_len, 2);
        let err = ring.intern(&["ok/x".to_string(), "bad name".to_string()]);
        assert!(matches!(err, Err(RingError::BadPointName { .. })));
        assert_eq!(
            ring.catalog().unwrap().len(),
            2,
            "a refused call interns nothing"
        );
    }
    let ring = RingBuffer::open_with_backend(cfg, disk).unwrap();
    assert_eq!(ring.catalog().unwrap(), vec!["inv1/p", "inv2/p"]);
    assert_eq!(ring.intern(&["inv3/q".into()]).unwrap(), vec![PointId(2)]);
}

#[test]
fn refuses_blocks_it_cannot_store_faithfully() {
    let cfg = RingConfig {
        max_bytes: 600,
        ..mem_config("refuse")
    };
    let (ring, _) = mem_ring(cfg);
    with_points(&ring, 4);
    assert!(matches!(
        ring.append_block(BlockClass::Telemetry, &[], T0),
        Err(RingError::EmptyBlock)
    ));
    let unknown = [Sample::good(PointId(4), T0, 1.0)];
    let e = ring
        .append_block(BlockClass::Telemetry, &unknown, T0)
        .unwrap_err();
    assert!(
        matches!(
            e,
            RingError::UnknownPoint {
                point: PointId(4),
                catalog_len: 4
            }
        ),
        "{e}"
    );
    let mut rng = Rng::new(8);
    let noisy: Vec<Sample> = (0..400)
        .map(|i| Sample::good(PointId(i % 4), T0 + i64::from(i), rng.next_u64() as f64))
        .collect();
    let e = ring
        .append_block(BlockClass::Telemetry, &noisy, T0)
        .unwrap_err();
    assert!(
        matches!(e, RingError::BlockTooLarge { max_bytes: 600, .. }),
        "{e}"
    );
    let st = ring.stats();
    assert_eq!((st.blocks, st.next_seq, st.dropped_blocks), (0, 1, 0));
}

#[test]
fn second_open_of_a_file_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.redb");
    let _first = RingBuffer::open(RingConfig::new(&path)).unwrap();
    let e = RingBuffer::open(RingConfig::new(&path)).err().unwrap();
    assert!(matches!(e, RingError::Locked { .. }), "{e:?}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}

#[test]
fn a_file_that_is_not_a_ring_buffer_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.redb");
    std::fs::write(&path, vec![0x5Au8; 64 * 1024]).unwrap();
    let e = RingBuffer::open(RingConfig::new(&path)).err().unwrap();
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert!(
        matches!(e, RingError::Corrupt { .. } | RingError::Storage { .. }),
        "{e:?}"
    );
}

#[test]
fn concurrent_appends_get_unique_sequences() {
    let (ring, _) = mem_ring(RingConfig {
        cache_bytes: DEFAULT_CACHE_BYTES,
        ..mem_config("threads")
    });
    with_points(&ring, 6);
    let ring = Arc::new(ring);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let ring = ring.clone();
            std::thread::spawn(move || {
                let mut rng = Rng::new(100 + t);
                (0..25)
                    .map(|_| {
                        let s = samples(&mut rng, 6, 6, T0);
                        ring.append_block(BlockClass::Telemetry, &s, T0)
                            .unwrap()
                            .seq
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=100).collect::<Vec<u64>>());
    let st = ring.stats();
    assert_eq!(
        (st.blocks, st.appended_blocks, st.next_seq),
        (100, 100, 101)
    );
    check_consistent(&snapshot(&ring));
}

#[test]
fn a_file_whose_creation_was_cut_short_opens_empty() {
    // A power cut during the very first start can leave the file extended but
    // without redb's magic number; that must not keep the gateway down.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.redb");
    std::fs::write(&path, vec![0u8; 1 << 20]).unwrap();
    let ring = RingBuffer::open(RingConfig::new(&path)).unwrap();
    let st = ring.stats();
    assert_eq!((st.blocks, st.next_seq, st.catalog_len), (0, 1, 0));
    with_points(&ring, 2);
    let mut rng = Rng::new(9);
    assert_eq!(
        ring.append_block(BlockClass::Telemetry, &samples(&mut rng, 4, 2, T0), T0)
            .unwrap()
            .seq,
        1
    );
    drop(ring);
    let ring = RingBuffer::open(RingConfig::new(&path)).unwrap();
    assert_eq!(ring.stats().blocks, 1);
}

#[test]
fn buffer_and_errors_can_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<RingBuffer>();
    send_sync::<RingError>();
    let e: anyhow_like::Boxed = Box::new(RingError::EmptyBlock);
    assert_eq!(e.to_string(), "a block needs at least one sample");
}

mod anyhow_like {
    pub type Boxed = Box<dyn std::error::Error + Send + Sync + 'static>;
}

#[test]
fn a_dropped_block_the_hub_acknowledges_is_not_counted_as_lost() {
    let cfg = RingConfig {
        max_bytes: 4000,
        ..mem_config("delivered-late")
    };
    let (ring, _) = mem_ring(cfg);
    with_points(&ring, 20);
    let mut rng = Rng::new(9);
    // Block 1 is "in flight" when the buffer fills up and drops it.
    let first = ring
        .append_block(BlockClass::Telemetry, &samples(&mut rng, 20, 20, T0), T0)
        .unwrap();
    let mut i = 1;
    while ring.stats().dropped_blocks == 0 {
        ring.append_block(
            BlockClass::Telemetry,
            &samples(&mut rng, 20, 20, T0 + i),
            T0 + i,
        )
        .unwrap();
        i += 1;
    }
    let before = ring.stats();
    assert_eq!(ring.get(first.seq).unwrap(), None);
    // Its ack arrives: the hub has it, so it leaves the dropped totals.
    assert_eq!(ring.ack(&[(first.seq, first.seq)]).unwrap(), 0);
    let after = ring.stats();
    assert_eq!(after.dropped_blocks, before.dropped_blocks - 1);
    assert_eq!(after.dropped_samples, before.dropped_samples - 20);
    // A second ack for it changes nothing.
    ring.ack(&[(first.seq, first.seq)]).unwrap();
    assert_eq!(ring.stats().dropped_samples, after.dropped_samples);
}

#[test]
fn a_new_buffer_can_start_its_sequences_anywhere_once() {
    let (ring, _) = mem_ring(mem_config("first-seq"));
    with_points(&ring, 5);
    assert!(ring.start_sequences_at(1_000_000).unwrap());
    assert_eq!(ring.stats().next_seq, 1_000_000);
    let mut rng = Rng::new(3);
    let out = ring
        .append_block(BlockClass::Telemetry, &samples(&mut rng, 5, 5, T0), T0)
        .unwrap();
    assert_eq!(out.seq, 1_000_000);
    assert_eq!(ring.stats().acked_through, 999_999);
    // Only a buffer that never held a block can be moved.
    assert!(!ring.start_sequences_at(5).unwrap());
    ring.ack(&[(out.seq, out.seq)]).unwrap();
    assert!(!ring.start_sequences_at(5_000_000).unwrap());
    assert_eq!(ring.stats().next_seq, 1_000_001);
}
