//! Shared helpers of the ring-buffer tests: an in-memory disk that can lose
//! power, a seeded random source, sample generators, and a snapshot of
//! everything a ring buffer exposes.
#![allow(dead_code)]

use dcmms_gateway::ring::{RingBuffer, RingConfig, RingStats};
use dcmms_shared::{decode_samples, Message, PointId, Quality, Sample};
use redb::StorageBackend;
use std::io::{Error, ErrorKind};
use std::sync::{Arc, Mutex};

/// splitmix64: small, seedable, good enough to pick crash outcomes.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Sector size at which an unsynced write can tear.
pub const SECTOR: usize = 512;

#[derive(Debug, Clone)]
enum PendingOp {
    Write { offset: usize, data: Vec<u8> },
    SetLen(usize),
}

#[derive(Debug, Default)]
struct DiskState {
    /// What reads see: every write applied.
    live: Vec<u8>,
    /// What survived the last completed `sync_data`.
    durable: Vec<u8>,
    /// Writes and resizes since then, in order.
    pending: Vec<PendingOp>,
    syncs: u64,
    /// Power is lost at this `sync_data` call (1-based).
    cut_at: Option<u64>,
    seed: u64,
    /// Set once power is lost: the bytes left on the medium.
    image: Option<Vec<u8>>,
}

/// A redb storage backend over memory that keeps the durable bytes apart
/// from the written ones. At the chosen `sync_data` call it loses power: that
/// call and every later one fail, and each write or resize made since the
/// previous sync independently survives whole, is lost, or (writes) survives
/// only in part, sector by sector.
///
/// Clones share the same disk, so a test can reopen a database over it.
#[derive(Debug, Clone, Default)]
pub struct Disk(Arc<Mutex<DiskState>>);

impl Disk {
    pub fn new() -> Disk {
        Disk::default()
    }

    /// Makes this disk lose power at its `cut_at`-th sync from now, with
    /// crash outcomes drawn from `seed`.
    pub fn cut_at(self, cut_at: u64, seed: u64) -> Disk {
        {
            let mut s = self.0.lock().unwrap();
            s.cut_at = Some(s.syncs + cut_at);
            s.seed = seed;
        }
        self
    }

    /// A healthy disk holding `image`, all of it durable.
    pub fn from_image(image: Vec<u8>) -> Disk {
        let d = Disk::default();
        {
            let mut s = d.0.lock().unwrap();
            s.live = image.clone();
            s.durable = image;
        }
        d
    }

    pub fn syncs(&self) -> u64 {
        self.0.lock().unwrap().syncs
    }

    /// The durable bytes of a healthy disk.
    pub fn image(&self) -> Vec<u8> {
        self.0.lock().unwrap().durable.clone()
    }

    /// The bytes left after the power cut, if it happened.
    pub fn crash_image(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap().image.clone()
    }

    pub fn live_len(&self) -> usize {
        self.0.lock().unwrap().live.len()
    }
}

fn dead() -> Error {
    Error::other("power lost")
}

/// `Vec::resize` with zeros, by memcpy: the element-wise fill is slow in the
/// unoptimised builds tests run in.
fn resize_zeroed(v: &mut Vec<u8>, len: usize) {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    if len <= v.len() {
        v.truncate(len);
        return;
    }
    v.reserve(len - v.len());
    while v.len() < len {
        let n = (len - v.len()).min(ZEROS.len());
        v.extend_from_slice(&ZEROS[..n]);
    }
}

fn apply_write(image: &mut Vec<u8>, offset: usize, data: &[u8]) {
    if image.len() < offset + data.len() {
        resize_zeroed(image, offset + data.len());
    }
    image[offset..offset + data.len()].copy_from_slice(data);
}

/// Splits a write at absolute sector boundaries.
fn sectors(offset: usize, data: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let abs = offset + pos;
        let len = (SECTOR - abs % SECTOR).min(data.len() - pos);
        out.push((abs, &data[pos..pos + len]));
        pos += len;
    }
    out
}

impl DiskState {
    fn lose_power(&mut self) {
        let mut rng = Rng::new(self.seed.wrapping_mul(31).wrapping_add(self.syncs));
        let mut image = self.durable.clone();
        for op in &self.pending {
            match op {
                PendingOp::SetLen(len) => {
                    if rng.below(2) == 0 {
                        resize_zeroed(&mut image, *len);
                    }
                }
                PendingOp::Write { offset, data } => match rng.below(4) {
                    0 => apply_write(&mut image, *offset, data),
                    1 => {}
                    2 => {
                        // Torn: a prefix of whole sectors reached the medium.
                        let parts = sectors(*offset, data);
                        let keep = rng.below(parts.len() as u64 + 1) as usize;
                        for (off, chunk) in parts.into_iter().take(keep) {
                            apply_write(&mut image, off, chunk);
                        }
                    }
                    _ => {
                        // Torn, out of order: any subset of its sectors.
                        for (off, chunk) in sectors(*offset, data) {
                            if rng.below(2) == 0 {
                                apply_write(&mut image, off, chunk);
                            }
                        }
                    }
                },
            }
        }
        self.pending.clear();
        self.image = Some(image);
    }
}

impl StorageBackend for Disk {
    fn len(&self) -> Result<u64, Error> {
        let s = self.0.lock().unwrap();
        if s.image.is_some() {
            return Err(dead());
        }
        Ok(s.live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), Error> {
        let s = self.0.lock().unwrap();
        if s.image.is_some() {
            return Err(dead());
        }
        let offset = offset as usize;
        if offset + out.len() > s.live.len() {
            return Err(Error::from(ErrorKind::UnexpectedEof));
        }
        out.copy_from_slice(&s.live[offset..offset + out.len()]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), Error> {
        let mut s = self.0.lock().unwrap();
        if s.image.is_some() {
            return Err(dead());
        }
        resize_zeroed(&mut s.live, len as usize);
        s.pending.push(PendingOp::SetLen(len as usize));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), Error> {
        let mut s = self.0.lock().unwrap();
        if s.image.is_some() {
            return Err(dead());
        }
        s.syncs += 1;
        if s.cut_at == Some(s.syncs) {
            s.lose_power();
            return Err(dead());
        }
        let DiskState { live, durable, .. } = &mut *s;
        durable.clone_from(live);
        s.pending.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        let mut s = self.0.lock().unwrap();
        if s.image.is_some() {
            return Err(dead());
        }
        apply_write(&mut s.live, offset as usize, data);
        s.pending.push(PendingOp::Write {
            offset: offset as usize,
            data: data.to_vec(),
        });
        Ok(())
    }
}

/// Points `inv{i}/{name}` of a small solar site.
pub fn point_names(range: std::ops::Range<usize>) -> Vec<String> {
    const NAMES: [&str; 5] = ["p_ac", "u_dc", "i_dc", "t_heatsink", "e_total"];
    range
        .map(|i| format!("inv{}/{}", i / NAMES.len(), NAMES[i % NAMES.len()]))
        .collect()
}

/// `n` samples over points `0..points`, values quantised like registers.
pub fn samples(rng: &mut Rng, n: usize, points: u32, ts_ms: i64) -> Vec<Sample> {
    (0..n)
        .map(|i| {
            let point = PointId((i as u32) % points.max(1));
            let value = rng.below(100_000) as f64 / 10.0;
            let quality = match rng.below(20) {
                0 => Quality::Bad,
                1 => Quality::Uncertain,
                _ => Quality::Good,
            };
            Sample {
                point,
                ts_ms: ts_ms + (i as i64 / points.max(1) as i64) * 1000,
                value,
                quality,
            }
        })
        .collect()
}

pub fn mem_config(name: &str) -> RingConfig {
    RingConfig::new(format!("mem:{name}"))
}

/// Everything a ring buffer shows, minus the per-process counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub blocks: Vec<(u64, Vec<u8>)>,
    pub catalog: Vec<String>,
    pub stats: RingStats,
}

pub fn snapshot(ring: &RingBuffer) -> Snapshot {
    let mut stats = ring.stats();
    stats.appended_blocks = 0;
    stats.appended_samples = 0;
    Snapshot {
        blocks: ring.read_after(0, usize::MAX).unwrap(),
        catalog: ring.catalog().unwrap(),
        stats,
    }
}

/// Checks that the stats describe the stored blocks and that every block is
/// a well-formed wire payload under its own sequence number, samples included.
pub fn check_consistent(s: &Snapshot) {
    check_stats(s, true);
}

/// [`check_consistent`] with or without decoding every block's samples.
pub fn check_stats(s: &Snapshot, decode: bool) {
    let mut bytes = 0u64;
    let mut samples = 0u64;
    let mut prev = 0u64;
    let mut tel = 0u64;
    for (seq, payload) in &s.blocks {
        assert!(*seq > prev, "sequences increase");
        assert!(*seq < s.stats.next_seq, "seq {seq} below next_seq");
        prev = *seq;
        let Ok(Message::Telemetry(b)) = Message::decode(payload) else {
            panic!("block {seq} does not decode");
        };
        assert_eq!(b.seq, *seq);
        assert!(b.catalog_len as usize <= s.catalog.len());
        if decode {
            let decoded = decode_samples(&b.samples).expect("samples decode");
            assert_eq!(decoded.len() as u32, b.sample_count);
            assert!(decoded.iter().all(|x| x.point.0 < b.catalog_len));
        }
        if b.class == dcmms_shared::BlockClass::Telemetry {
            tel += 1;
        }
        bytes += payload.len() as u64;
        samples += u64::from(b.sample_count);
    }
    let st = &s.stats;
    assert_eq!(st.blocks, s.blocks.len() as u64);
    assert_eq!(st.telemetry_blocks, tel);
    assert_eq!(st.event_blocks, st.blocks - tel);
    assert_eq!(st.bytes, bytes);
    assert_eq!(st.samples, samples);
    assert_eq!(st.catalog_len as usize, s.catalog.len());
    let lowest = s.blocks.first().map_or(st.next_seq, |(seq, _)| *seq);
    assert_eq!(st.acked_through, lowest - 1);
}
