//! Ring-buffer benchmark: durable append throughput for a realistic solar
//! site, against raw redb inserts of the same payloads measured in the same
//! run, and bytes per stored sample once the ring is full and trimming.
//!
//! Run with `cargo bench -p dcmms-gateway --bench ring`. Prints figures; it
//! asserts nothing about timing. Environment knobs: `RING_BENCH_DIR` (where
//! the files go; default a temporary folder under the system temp dir),
//! `RING_BENCH_BLOCKS` (throughput blocks, default 600), `RING_BENCH_FILL`
//! (how many times the capacity to write at steady state, default 4).

use dcmms_gateway::ring::tables::CHUNK;
use dcmms_gateway::ring::{FullPolicy, RingBuffer, RingConfig, DEFAULT_CACHE_BYTES};
use dcmms_shared::{encode_samples, BlockClass, PointId, Quality, Sample};
use redb::{Database, Durability, TableDefinition};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

const POINTS_PER_INVERTER: usize = 50;
const INVERTERS: usize = 100;
const T0: i64 = 1_780_000_000_000;
const RAW: TableDefinition<u64, &[u8]> = TableDefinition::new("raw");
const RAW_CHUNKS: TableDefinition<(u64, u16), &[u8]> = TableDefinition::new("raw-chunks");
const MIB: f64 = (1 << 20) as f64;

/// splitmix64
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal, mean 0, sd 1.
    fn gauss(&mut self) -> f64 {
        (0..4).map(|_| self.unit()).sum::<f64>() * 3f64.sqrt() - 2.0 * 3f64.sqrt()
    }
}

/// How a kind of register behaves between one-second polls.
#[derive(Clone, Copy)]
struct Kind {
    name: &'static str,
    /// Register scale: values are n / 10^decimals.
    decimals: i32,
    base: f64,
    /// Step size of the random walk, in units.
    step: f64,
    /// Chance that the register changes between two polls.
    p_change: f64,
    /// Counters only go up.
    counter: bool,
}

const fn kind(name: &'static str, decimals: i32, base: f64, step: f64, p_change: f64) -> Kind {
    Kind {
        name,
        decimals,
        base,
        step,
        p_change,
        counter: false,
    }
}

/// The 50 registers polled from each inverter.
fn inverter_registers() -> Vec<Kind> {
    let mut v = vec![
        kind("p_ac", 1, 180.0, 1.5, 0.95),
        kind("q_ac", 1, 5.0, 0.4, 0.8),
        kind("s_ac", 1, 181.0, 1.5, 0.95),
        kind("pf", 3, 0.998, 0.001, 0.3),
        kind("freq", 2, 50.0, 0.01, 0.4),
        kind("u_l1", 1, 231.0, 0.2, 0.6),
        kind("u_l2", 1, 230.5, 0.2, 0.6),
        kind("u_l3", 1, 230.8, 0.2, 0.6),
        kind("i_l1", 2, 260.0, 1.0, 0.9),
        kind("i_l2", 2, 260.0, 1.0, 0.9),
        kind("i_l3", 2, 260.0, 1.0, 0.9),
        kind("t_heatsink", 1, 48.0, 0.1, 0.1),
        kind("t_internal", 1, 41.0, 0.1, 0.08),
        kind("t_ambient", 1, 27.0, 0.1, 0.03),
        kind("insulation_kohm", 0, 2400.0, 5.0, 0.02),
        kind("status", 0, 307.0, 0.0, 0.0),
        kind("alarm_word", 0, 0.0, 0.0, 0.0),
        kind("derating_pct", 0, 100.0, 0.0, 0.001),
    ];
    for _ in 0..4 {
        v.push(kind("u_dc", 1, 720.0, 0.8, 0.7));
        v.push(kind("i_dc", 2, 65.0, 0.5, 0.85));
    }
    for _ in 0..22 {
        v.push(kind("i_string", 2, 10.8, 0.05, 0.7));
    }
    v.push(Kind {
        counter: true,
        ..kind("e_total_kwh", 0, 3_456_789.0, 1.0, 0.05)
    });
    v.push(Kind {
        counter: true,
        ..kind("e_day_kwh", 2, 812.0, 0.05, 0.9)
    });
    assert_eq!(v.len(), POINTS_PER_INVERTER);
    v
}

/// A site of 100 inverters x 50 registers = 5,000 points, polled each second.
struct Site {
    kinds: Vec<Kind>,
    /// Current value of each point, in register units (integers).
    units: Vec<i64>,
    rng: Rng,
    ts: i64,
}

impl Site {
    fn new(seed: u64) -> Site {
        let regs = inverter_registers();
        let mut rng = Rng(seed);
        let mut kinds = Vec::new();
        let mut units = Vec::new();
        for _ in 0..INVERTERS {
            for k in &regs {
                let scale = 10f64.powi(k.decimals);
                let spread = if k.step == 0.0 { 0.0 } else { k.base * 0.05 };
                units.push(((k.base + spread * rng.gauss()) * scale).round() as i64);
                kinds.push(*k);
            }
        }
        Site {
            kinds,
            units,
            rng,
            ts: T0,
        }
    }

    fn names(&self) -> Vec<String> {
        self.kinds
            .iter()
            .enumerate()
            .map(|(i, k)| {
                format!(
                    "inv{:03}/{}_{}",
                    i / POINTS_PER_INVERTER,
                    k.name,
                    i % POINTS_PER_INVERTER
                )
            })
            .collect()
    }

    /// One poll of every point.
    fn poll(&mut self) -> Vec<Sample> {
        self.ts += 1000;
        let mut out = Vec::with_capacity(self.units.len());
        for (i, k) in self.kinds.iter().enumerate() {
            if self.rng.unit() < k.p_change {
                let scale = 10f64.powi(k.decimals);
                let step = (k.step * scale * self.rng.gauss()).round() as i64;
                let step = if k.counter { step.abs().max(1) } else { step };
                self.units[i] += step;
            }
            let value = self.units[i] as f64 / 10f64.powi(k.decimals);
            // A poll takes a few ms: timestamps spread over the first 40 ms.
            let ts_ms = self.ts + (i / 125) as i64;
            let quality = if self.rng.unit() < 0.0005 {
                Quality::Bad
            } else {
                Quality::Good
            };
            out.push(Sample {
                point: PointId(i as u32),
                ts_ms,
                value,
                quality,
            });
        }
        out
    }
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn per_sec(n: f64, d: Duration) -> f64 {
    n / d.as_secs_f64()
}

fn disk_usage(path: &Path) -> (u64, u64) {
    let md = std::fs::metadata(path).expect("ring file exists");
    (md.len(), md.blocks() * 512)
}

/// A redb file that takes payloads raw, one durable commit per payload.
struct RawDb {
    db: Database,
    chunked: bool,
    time: Duration,
}

impl RawDb {
    fn create(path: &Path, chunked: bool) -> RawDb {
        let db = Database::builder()
            .set_cache_size(DEFAULT_CACHE_BYTES)
            .create(path)
            .expect("raw db");
        RawDb {
            db,
            chunked,
            time: Duration::ZERO,
        }
    }

    fn insert_all(&mut self, payloads: &[(u64, Vec<u8>)]) {
        let t = Instant::now();
        for (seq, p) in payloads {
            let mut txn = self.db.begin_write().expect("txn");
            txn.set_durability(Durability::Immediate)
                .expect("durability");
            if self.chunked {
                let mut table = txn.open_table(RAW_CHUNKS).expect("table");
                for (i, part) in p.chunks(CHUNK).enumerate() {
                    table.insert((*seq, i as u16), part).expect("insert");
                }
            } else {
                let mut table = txn.open_table(RAW).expect("table");
                table.insert(*seq, p.as_slice()).expect("insert");
            }
            txn.commit().expect("commit");
        }
        self.time += t.elapsed();
    }
}

fn throughput(dir: &Path, blocks: usize) {
    println!("== durable append throughput: {blocks} blocks of {} samples (one poll of a 5,000-point site per block), Durability::Immediate", INVERTERS * POINTS_PER_INVERTER);
    let mut site = Site::new(1);
    let polls: Vec<Vec<Sample>> = (0..blocks).map(|_| site.poll()).collect();
    let samples: usize = polls.iter().map(Vec::len).sum();

    // Encoding alone, no IO.
    let t = Instant::now();
    let mut encoded_bytes = 0usize;
    for p in &polls {
        encoded_bytes += encode_samples(p).expect("encodes").len();
    }
    let encode_time = t.elapsed();

    let cfg = RingConfig {
        max_bytes: 4 << 30,
        ..RingConfig::new(dir.join("throughput.redb"))
    };
    let ring = RingBuffer::open(cfg).expect("opens");
    ring.intern(&site.names()).expect("interns");
    let mut raw = RawDb::create(&dir.join("raw.redb"), false);
    let mut raw_chunked = RawDb::create(&dir.join("raw-chunked.redb"), true);

    // Rounds alternate between the ring and the baselines so that drifts in
    // disk latency hit all of them alike.
    let rounds = 6;
    let mut ring_time = Duration::ZERO;
    let mut payload_bytes = 0usize;
    let mut done = 0usize;
    for round in 0..rounds {
        let end = blocks * (round + 1) / rounds;
        let after = ring.stats().next_seq - 1;
        let t = Instant::now();
        for (i, p) in polls[done..end].iter().enumerate() {
            ring.append_block(BlockClass::Telemetry, p, T0 + (done + i) as i64 * 1000)
                .expect("appends");
        }
        ring_time += t.elapsed();
        let payloads = ring.read_after(after, usize::MAX).expect("reads");
        payload_bytes += payloads.iter().map(|(_, p)| p.len()).sum::<usize>();
        raw.insert_all(&payloads);
        raw_chunked.insert_all(&payloads);
        done = end;
    }

    let line = |what: &str, d: Duration, note: &str| {
        println!(
            "{what:<13}: {:>12.0} samples/s  {:>8.1} commits/s  ({:.3} s){note}",
            per_sec(samples as f64, d),
            per_sec(blocks as f64, d),
            d.as_secs_f64()
        );
    };
    line("ring buffer", ring_time, "");
    line(
        "raw redb",
        raw.time,
        "  [same payloads, one value each, no encoding]",
    );
    line(
        "raw chunked",
        raw_chunked.time,
        "  [same payloads in the ring's 2 KiB chunks, no encoding, index or meta]",
    );
    println!(
        "encode only  : {:>12.0} samples/s  {:>8.1} blocks/s   ({:.3} s)  [encode_samples, no IO]",
        per_sec(samples as f64, encode_time),
        per_sec(blocks as f64, encode_time),
        encode_time.as_secs_f64()
    );
    println!(
        "ratio        : ring buffer takes {:.2}x the time of raw redb inserts, {:.2}x that of raw chunked inserts",
        ring_time.as_secs_f64() / raw.time.as_secs_f64(),
        ring_time.as_secs_f64() / raw_chunked.time.as_secs_f64()
    );
    println!(
        "payload      : {:.0} bytes per block, {:.3} bytes per sample ({:.3} B/sample before the envelope)",
        payload_bytes as f64 / blocks as f64,
        payload_bytes as f64 / samples as f64,
        encoded_bytes as f64 / samples as f64
    );
    drop(ring);
    let sizes =
        ["throughput.redb", "raw.redb", "raw-chunked.redb"].map(|f| disk_usage(&dir.join(f)).1);
    println!(
        "allocated    : ring {:.1} MiB, raw {:.1} MiB, raw chunked {:.1} MiB for {:.1} MiB of payloads",
        sizes[0] as f64 / MIB,
        sizes[1] as f64 / MIB,
        sizes[2] as f64 / MIB,
        payload_bytes as f64 / MIB
    );
}

fn steady_state(dir: &Path, fill: usize) {
    let max_bytes: u64 = 64 << 20;
    println!("\n== steady state: max_bytes = 64 MiB, appending until {fill}x the capacity has been written");
    let path = dir.join("steady.redb");
    let cfg = RingConfig {
        max_bytes,
        full_policy: FullPolicy::DropTelemetryFirst,
        ..RingConfig::new(&path)
    };
    let ring = RingBuffer::open(cfg).expect("opens");
    let mut site = Site::new(2);
    ring.intern(&site.names()).expect("interns");
    let mut written = 0u64;
    let mut blocks = 0u64;
    let t = Instant::now();
    let mut first_full = None;
    while written < max_bytes * fill as u64 {
        let poll = site.poll();
        let out = ring
            .append_block(BlockClass::Telemetry, &poll, site.ts)
            .expect("appends");
        written += out.bytes;
        blocks += 1;
        if first_full.is_none() && out.dropped.blocks > 0 {
            first_full = Some(blocks);
        }
    }
    let elapsed = t.elapsed();
    let st = ring.stats();
    drop(ring);
    let (len, allocated) = disk_usage(&path);
    println!(
        "appended {blocks} blocks in {:.1} s ({:.1} commits/s); full after {} blocks; dropped {} blocks / {} samples",
        elapsed.as_secs_f64(),
        per_sec(blocks as f64, elapsed),
        first_full.unwrap_or(0),
        st.dropped_blocks,
        st.dropped_samples
    );
    println!(
        "held         : {} blocks, {} samples, {} payload bytes ({:.3} B/sample)",
        st.blocks,
        st.samples,
        st.bytes,
        st.bytes as f64 / st.samples as f64
    );
    println!(
        "file length  : {} bytes = {:.1} MiB -> {:.3} bytes per stored sample",
        len,
        len as f64 / MIB,
        len as f64 / st.samples as f64
    );
    println!(
        "allocated    : {} bytes = {:.1} MiB -> {:.3} bytes per stored sample",
        allocated,
        allocated as f64 / MIB,
        allocated as f64 / st.samples as f64
    );
    let span_s = st.samples as f64 / (INVERTERS * POINTS_PER_INVERTER) as f64;
    println!(
        "history held : {:.1} h of a 5,000-point site polled every second ({:.1} h at a 5 s poll)",
        span_s / 3600.0,
        span_s * 5.0 / 3600.0
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is ignored too.
    let base = std::env::var_os("RING_BENCH_DIR").map(std::path::PathBuf::from);
    let tmp = match &base {
        Some(b) => tempfile::tempdir_in(b),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    println!("files in {}", tmp.path().display());
    throughput(tmp.path(), env_num("RING_BENCH_BLOCKS", 600));
    steady_state(tmp.path(), env_num("RING_BENCH_FILL", 4));
}
