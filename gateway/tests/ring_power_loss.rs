//! Power cuts below the database, in the manner of SQLite's crash tests and
//! redb's `tests/crash_consistency.rs`.
//!
//! A scripted workload (intern, append, ack, trim, reopen) runs once on a
//! healthy disk, recording what the ring buffer shows after each operation.
//! It then runs again, once per sync point N, on a disk that loses power at
//! its N-th `sync_data`: from then on every call fails, and each write made
//! since the previous sync independently survives, vanishes or tears at
//! sector granularity. A ring buffer reopened over the surviving bytes must
//! open, be self-consistent, and show exactly the state after the last
//! operation that returned `Ok` — or after the one in flight, whose commit
//! may have reached the disk before the cut — and then accept writes.

mod ring_support;

use dcmms_gateway::ring::{FullPolicy, RingBuffer, RingConfig};
use dcmms_shared::BlockClass;
use ring_support::{
    check_consistent, check_stats, point_names, samples, snapshot, Disk, Rng, Snapshot,
};
use std::time::Duration;

const T0: i64 = 1_780_000_000_000;
const HOUR: i64 = 3_600_000;

#[derive(Debug, Clone)]
enum Op {
    Intern(std::ops::Range<usize>),
    Append {
        class: BlockClass,
        n: usize,
        points: u32,
        now: i64,
        seed: u64,
    },
    Ack(u64, u64),
    Trim(i64),
    Reopen,
}

/// Every third workload stores blocks of several chunks.
fn big_blocks(seed: u64) -> bool {
    seed % 3 == 2
}

fn config(seed: u64) -> RingConfig {
    RingConfig {
        max_bytes: if big_blocks(seed) { 9_000 } else { 600 },
        max_age: Duration::from_secs(12 * 3600),
        full_policy: if seed.is_multiple_of(2) {
            FullPolicy::DropTelemetryFirst
        } else {
            FullPolicy::DropOldest
        },
        ..RingConfig::new(format!("mem:power-loss-{seed}"))
    }
}

/// A small workload that fills the buffer past its bounds, acks, expires
/// and restarts.
fn script(seed: u64, len: usize) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    let mut catalog = 6usize;
    let mut appended = 0u64;
    let mut now = T0;
    let mut ops = vec![Op::Intern(0..catalog)];
    while ops.len() < len {
        let op = match rng.below(20) {
            0..=10 => {
                now += rng.below(3 * HOUR as u64) as i64;
                appended += 1;
                Op::Append {
                    class: if rng.below(4) == 0 {
                        BlockClass::Event
                    } else {
                        BlockClass::Telemetry
                    },
                    n: if big_blocks(seed) {
                        300 + rng.below(1500) as usize
                    } else {
                        1 + rng.below(60) as usize
                    },
                    points: catalog as u32,
                    now,
                    seed: rng.next_u64(),
                }
            }
            11..=13 if appended > 0 => {
                let lo = 1 + rng.below(appended);
                Op::Ack(lo, lo + rng.below(4))
            }
            14..=15 => {
                now += rng.below(6 * HOUR as u64) as i64;
                Op::Trim(now)
            }
            16 => Op::Reopen,
            17 => {
                let more = 1 + rng.below(4) as usize;
                catalog += more;
                Op::Intern(catalog - more..catalog)
            }
            _ => continue,
        };
        ops.push(op);
    }
    ops
}

fn apply(slot: &mut Option<RingBuffer>, op: &Op, disk: &Disk, cfg: &RingConfig) -> bool {
    if let Op::Reopen = op {
        // Close first: redb refuses a second handle on one file.
        *slot = None;
        *slot = RingBuffer::open_with_backend(cfg.clone(), disk.clone()).ok();
        return slot.is_some();
    }
    let Some(ring) = slot.as_ref() else {
        return false;
    };
    match op {
        Op::Intern(r) => ring.intern(&point_names(r.clone())).is_ok(),
        Op::Append {
            class,
            n,
            points,
            now,
            seed,
        } => {
            let s = samples(&mut Rng::new(*seed), *n, *points, *now);
            ring.append_block(*class, &s, *now).is_ok()
        }
        Op::Ack(lo, hi) => ring.ack(&[(*lo, *hi)]).is_ok(),
        Op::Trim(now) => ring.trim_expired(*now).is_ok(),
        Op::Reopen => unreachable!("handled above"),
    }
}

/// Runs the script on `disk`. Operation 0 is the open. Returns the index of
/// the first operation that failed, if any, and the snapshot after each
/// operation when `record` is set.
fn run(
    script: &[Op],
    disk: &Disk,
    cfg: &RingConfig,
    record: bool,
) -> (Option<usize>, Vec<Snapshot>) {
    let mut states = Vec::new();
    let mut ring = RingBuffer::open_with_backend(cfg.clone(), disk.clone()).ok();
    let Some(r) = &ring else {
        return (Some(0), states);
    };
    if record {
        states.push(snapshot(r));
    }
    for (i, op) in script.iter().enumerate() {
        if !apply(&mut ring, op, disk, cfg) {
            return (Some(i + 1), states);
        }
        if let (true, Some(r)) = (record, &ring) {
            states.push(snapshot(r));
        }
    }
    (None, states)
}

#[derive(Debug, Default)]
struct Tally {
    checks: u64,
    /// Workloads in which the bounds dropped blocks.
    with_drops: u64,
    before: u64,
    after: u64,
}

/// A freshly created, cleanly closed ring buffer: the starting point of the
/// workloads, so that each rerun skips the costly file creation (cuts during
/// creation have their own test).
fn created_image(cfg: &RingConfig) -> Vec<u8> {
    let disk = Disk::new();
    drop(RingBuffer::open_with_backend(cfg.clone(), disk.clone()).unwrap());
    disk.image()
}

/// Every cut point of one scripted workload.
fn cut_everywhere(seed: u64, len: usize, tally: &mut Tally) {
    let cfg = config(seed);
    let ops = script(seed, len);
    let base = created_image(&cfg);
    let reference = Disk::from_image(base.clone());
    let (failed, states) = run(&ops, &reference, &cfg, true);
    assert_eq!(failed, None, "the healthy run succeeds");
    for s in &states {
        check_consistent(s);
    }
    let total_syncs = reference.syncs();
    if states.last().is_some_and(|s| s.stats.dropped_blocks > 0) {
        tally.with_drops += 1;
    }

    for cut in 1..=total_syncs {
        let disk = Disk::from_image(base.clone()).cut_at(cut, seed * 7919 + cut);
        let (failed, _) = run(&ops, &disk, &cfg, false);
        let Some(image) = disk.crash_image() else {
            panic!("seed {seed} cut {cut}: the run never saw the cut");
        };
        // No operation failed: the cut hit the close at the end.
        let failed = failed.unwrap_or(states.len() - 1);
        let ring = RingBuffer::open_with_backend(cfg.clone(), Disk::from_image(image))
            .unwrap_or_else(|e| panic!("seed {seed} cut {cut} (op {failed}): reopen failed: {e}"));
        // Equal to a reference state, which was checked in full above.
        let got = snapshot(&ring);
        let before = &states[failed.saturating_sub(1)];
        let after = &states[failed];
        if got == *before {
            tally.before += 1;
        } else if got == *after {
            tally.after += 1;
        } else {
            panic!(
                "seed {seed} cut {cut}: op {failed} ({:?}) left a state that is neither before nor after it:\n got {:?}\n before {:?}\n after {:?}",
                ops.get(failed.wrapping_sub(1)),
                got.stats,
                before.stats,
                after.stats
            );
        }
        // The repaired buffer takes writes and never reuses a sequence.
        let next = got.stats.next_seq;
        let id = ring.intern(&["after/cut".to_string()]).unwrap();
        let s = samples(&mut Rng::new(cut), 5, id[0].0 + 1, T0);
        let out = ring.append_block(BlockClass::Telemetry, &s, T0).unwrap();
        assert_eq!(out.seq, next);
        assert_eq!(ring.ack(&[(next, next)]).unwrap(), 1);
        check_stats(&snapshot(&ring), false);
        tally.checks += 1;
    }
}

fn cut_seeds(seeds: std::ops::Range<u64>) -> Tally {
    let mut tally = Tally::default();
    for seed in seeds.clone() {
        cut_everywhere(seed, 12, &mut tally);
    }
    println!("{tally:?}");
    assert!(
        tally.before > 0 && tally.after > 0,
        "both outcomes seen: {tally:?}"
    );
    assert!(
        tally.with_drops * 2 > seeds.end - seeds.start,
        "drops exercised: {tally:?}"
    );
    tally
}

// Split in parts so that the test harness runs them on parallel threads;
// together they check well over 2,000 cut points.
#[test]
fn power_cut_at_every_sync_part_1() {
    assert!(cut_seeds(0..30).checks >= 500);
}

#[test]
fn power_cut_at_every_sync_part_2() {
    assert!(cut_seeds(30..60).checks >= 500);
}

#[test]
fn power_cut_at_every_sync_part_3() {
    assert!(cut_seeds(60..90).checks >= 500);
}

#[test]
fn power_cut_at_every_sync_part_4() {
    assert!(cut_seeds(90..120).checks >= 500);
}

/// A cut while the file is first created (the first start of a gateway)
/// must leave a file that opens as an empty buffer, not one redb refuses.
#[test]
fn power_cut_during_first_start() {
    let cfg = config(0);
    let first_start = |disk: &Disk| -> bool {
        let Ok(ring) = RingBuffer::open_with_backend(cfg.clone(), disk.clone()) else {
            return false;
        };
        ring.intern(&point_names(0..3)).is_ok()
    };
    let reference = Disk::new();
    assert!(first_start(&reference));
    let syncs = reference.syncs();
    let mut checks = 0;
    for seed in 0..25 {
        for cut in 1..=syncs {
            let disk = Disk::new().cut_at(cut, seed * 131 + cut);
            let completed = first_start(&disk);
            let Some(image) = disk.crash_image() else {
                panic!("cut {cut} never happened");
            };
            let ring = RingBuffer::open_with_backend(cfg.clone(), Disk::from_image(image))
                .unwrap_or_else(|e| panic!("seed {seed} cut {cut}: {e}"));
            let got = snapshot(&ring);
            check_consistent(&got);
            assert_eq!((got.stats.blocks, got.stats.next_seq), (0, 1));
            let catalog = ring.catalog().unwrap();
            assert!(
                catalog.is_empty() || catalog == point_names(0..3),
                "{catalog:?}"
            );
            if completed {
                assert_eq!(catalog.len(), 3, "seed {seed} cut {cut}");
            }
            ring.intern(&point_names(0..4)).unwrap();
            let s = samples(&mut Rng::new(seed), 4, 4, T0);
            assert_eq!(ring.append_block(BlockClass::Event, &s, T0).unwrap().seq, 1);
            checks += 1;
        }
    }
    assert!(checks >= 120, "{checks}");
}
