//! The redb side of the ring buffer: one write transaction per operation,
//! committed with `Durability::Immediate`, and the running totals read from
//! and written back to the `meta` table inside that same transaction. What to
//! drop is decided by [`super::policy`]; this file only moves rows.
//!
//! A block leaves the database only through [`RingBuffer::ack`] or a drop
//! chosen by the policy, never otherwise.

use super::catalog::Catalog;
use super::policy::{class_slot, next_drop, BlockMeta, Bounds, DropReport, Ledger, Removal};
use super::tables::{
    self, from_index, insert_block, read_meta, remove_block, to_index, write_meta, ChunkKey,
    IndexValue, PayloadError, Payloads, StoredMeta, CATALOG, CLASSES, DROPPED_RECENT,
    DROPPED_RECENT_MAX, EVENT_BLOCKS, EVENT_INDEX, META, TELEMETRY_BLOCKS, TELEMETRY_INDEX,
};
use super::{AppendOutcome, RingConfig, RingError, RingStats};
use dcmms_shared::wire::MAX_PAYLOAD;
use dcmms_shared::{encode_samples, BlockClass, Message, PointId, Sample, TelemetryBlock};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, StorageBackend,
    Table, WriteTransaction,
};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A crash-safe, bounded buffer of telemetry blocks. See the module docs of
/// [`super`].
pub struct RingBuffer {
    db: Database,
    path: PathBuf,
    bounds: Bounds,
    /// Held across every write transaction so that stats are published in
    /// commit order and interning sees a stable catalog.
    writer: Mutex<Writer>,
    stats: Mutex<RingStats>,
}

struct Writer {
    catalog: Catalog,
    appended_blocks: u64,
    appended_samples: u64,
}

/// The tables a write operation touches, opened once per transaction.
struct WriteTables<'t> {
    blocks: [Table<'t, ChunkKey, &'static [u8]>; 2],
    index: [Table<'t, u64, IndexValue>; 2],
    meta: Table<'t, &'static str, u64>,
    dropped_recent: Table<'t, u64, u32>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Writer state changes only after a successful commit, so the data behind
    // a poisoned lock is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RingBuffer {
    /// Opens (or creates) the buffer at `cfg.path`, creating missing parent
    /// folders. A file left by a power cut is repaired by redb on open.
    pub fn open(cfg: RingConfig) -> Result<Self, RingError> {
        if let Some(parent) = cfg.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| RingError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        discard_unfinished_file(&cfg.path).map_err(|source| RingError::Io {
            path: cfg.path.clone(),
            source,
        })?;
        let db = Database::builder()
            .set_cache_size(cfg.cache_bytes)
            .create(&cfg.path)
            .map_err(|e| RingError::storage(&cfg.path, e))?;
        Self::init(cfg, db)
    }

    /// Opens the buffer over any redb storage backend (tests use this to cut
    /// power below the database); `cfg.path` only names it in errors.
    pub fn open_with_backend(
        cfg: RingConfig,
        backend: impl StorageBackend,
    ) -> Result<Self, RingError> {
        discard_unfinished_backend(&backend).map_err(|source| RingError::Io {
            path: cfg.path.clone(),
            source,
        })?;
        let db = Database::builder()
            .set_cache_size(cfg.cache_bytes)
            .create_with_backend(backend)
            .map_err(|e| RingError::storage(&cfg.path, e))?;
        Self::init(cfg, db)
    }

    fn init(cfg: RingConfig, db: Database) -> Result<Self, RingError> {
        let path = cfg.path.clone();
        let corrupt = |detail: String| RingError::Corrupt {
            path: path.clone(),
            detail,
        };
        let txn = db.begin_write().map_err(storage_err(&path))?;
        let (ledger, fresh, oldest, names) = {
            let mut t = WriteTables::open(&txn).map_err(storage_err(&path))?;
            let (ledger, fresh) = match read_meta(&t.meta).map_err(storage_err(&path))? {
                StoredMeta::Fresh => {
                    let ledger = Ledger::default();
                    write_meta(&mut t.meta, &ledger).map_err(storage_err(&path))?;
                    (ledger, true)
                }
                StoredMeta::Ledger(l) => (l, false),
                StoredMeta::OtherFormat(found) => {
                    return Err(RingError::UnsupportedFormat {
                        path,
                        found,
                        expected: tables::FORMAT,
                    })
                }
                StoredMeta::Incomplete(key) => {
                    return Err(corrupt(format!("meta entry {key:?} is missing")))
                }
            };
            for class in CLASSES {
                let s = class_slot(class);
                let i = t.index[s].len().map_err(storage_err(&path))?;
                if i != ledger.blocks[s] {
                    return Err(corrupt(format!(
                        "{class:?} blocks: meta counts {}, index holds {i}",
                        ledger.blocks[s]
                    )));
                }
            }
            let oldest = t.oldest().map_err(storage_err(&path))?;
            let catalog = txn.open_table(CATALOG).map_err(storage_err(&path))?;
            let names = read_catalog(&catalog)
                .map_err(storage_err(&path))?
                .map_err(corrupt)?;
            (ledger, fresh, oldest, names)
        };
        if fresh {
            txn.commit().map_err(storage_err(&path))?;
        } else {
            txn.abort().map_err(storage_err(&path))?;
        }
        let catalog = Catalog::from_names(names)?;
        let bounds = Bounds {
            max_bytes: cfg.max_bytes,
            max_age_ms: i64::try_from(cfg.max_age.as_millis()).unwrap_or(i64::MAX),
            policy: cfg.full_policy,
        };
        let writer = Writer {
            catalog,
            appended_blocks: 0,
            appended_samples: 0,
        };
        let stats = writer.stats(&ledger, oldest);
        Ok(RingBuffer {
            db,
            path,
            bounds,
            writer: Mutex::new(writer),
            stats: Mutex::new(stats),
        })
    }

    /// The file (or name, for another backend) this buffer was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl Into<redb::Error>) -> RingError {
        RingError::storage(&self.path, e)
    }

    fn corrupt(&self, detail: String) -> RingError {
        RingError::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }

    fn begin_write(&self) -> Result<WriteTransaction, RingError> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.err(e))?;
        Ok(txn)
    }

    /// Encodes `samples` as one block, trims the buffer to its bounds to make
    /// room and stores the block, all in one durable transaction. When this
    /// returns `Ok` the block survives a power cut.
    ///
    /// Every sample's point must be in the catalog ([`Self::intern`] first).
    pub fn append_block(
        &self,
        class: BlockClass,
        samples: &[Sample],
        now_ms: i64,
    ) -> Result<AppendOutcome, RingError> {
        let (Some(first_ts_ms), Some(last_ts_ms), Some(max_point)) = (
            samples.iter().map(|s| s.ts_ms).min(),
            samples.iter().map(|s| s.ts_ms).max(),
            samples.iter().map(|s| s.point).max(),
        ) else {
            return Err(RingError::EmptyBlock);
        };
        // The costly part runs before taking the writer lock. The encoder
        // refuses more than `block::MAX_SAMPLES` (10^6), so the count fits.
        let encoded = encode_samples(samples)?;
        let sample_count = samples.len() as u32;

        let mut w = lock(&self.writer);
        let catalog_len = w.catalog.len();
        if max_point.0 >= catalog_len {
            return Err(RingError::UnknownPoint {
                point: max_point,
                catalog_len,
            });
        }
        let txn = self.begin_write()?;
        let (ledger, outcome, oldest) = {
            let mut t = WriteTables::open(&txn).map_err(|e| self.err(e))?;
            let mut ledger = self.stored_ledger(&t)?;
            let seq = ledger.next_seq;
            let payload = Message::Telemetry(TelemetryBlock {
                seq,
                class,
                sample_count,
                first_ts_ms,
                last_ts_ms,
                catalog_len,
                samples: encoded,
            })
            .encode();
            let bytes = payload.len() as u64;
            let max_bytes = self.bounds.max_bytes.min(MAX_PAYLOAD as u64);
            let stored_bytes = u32::try_from(payload.len())
                .ok()
                .filter(|_| bytes <= max_bytes)
                .ok_or(RingError::BlockTooLarge { bytes, max_bytes })?;
            let dropped = self.trim(&mut t, &mut ledger, bytes, now_ms)?;
            ledger.take_seq().ok_or(RingError::SeqExhausted)?;
            let meta = BlockMeta {
                seq,
                stored_ms: now_ms,
                first_ts_ms,
                samples: sample_count,
                bytes: stored_bytes,
            };
            let s = class_slot(class);
            let fresh = insert_block(&mut t.blocks[s], seq, &payload).map_err(|e| self.err(e))?;
            if !fresh
                || t.index[s]
                    .insert(seq, to_index(&meta))
                    .map_err(|e| self.err(e))?
                    .is_some()
            {
                return Err(self.corrupt(format!("sequence {seq} is already stored")));
            }
            ledger.add(class, &meta);
            write_meta(&mut t.meta, &ledger).map_err(|e| self.err(e))?;
            let oldest = t.oldest().map_err(|e| self.err(e))?;
            (
                ledger,
                AppendOutcome {
                    seq,
                    bytes,
                    dropped,
                },
                oldest,
            )
        };
        txn.commit().map_err(|e| self.err(e))?;
        w.appended_blocks += 1;
        w.appended_samples += u64::from(sample_count);
        self.publish(&w, &ledger, oldest);
        Ok(outcome)
    }

    /// Makes a buffer that has never stored a block hand out sequences from
    /// `seq` on; returns false (and changes nothing) for any other buffer.
    ///
    /// The daemon starts a new buffer at its creation time in microseconds,
    /// so that a gateway whose buffer was lost and created anew never reuses
    /// a sequence the hub has already seen (the hub would take the new
    /// blocks for duplicates).
    pub fn start_sequences_at(&self, seq: u64) -> Result<bool, RingError> {
        let w = lock(&self.writer);
        let txn = self.begin_write()?;
        let moved = {
            let mut t = WriteTables::open(&txn).map_err(|e| self.err(e))?;
            let mut ledger = self.stored_ledger(&t)?;
            if ledger.next_seq == 1 && ledger.total_blocks() == 0 && seq > 1 {
                ledger.next_seq = seq;
                write_meta(&mut t.meta, &ledger).map_err(|e| self.err(e))?;
                let oldest = t.oldest().map_err(|e| self.err(e))?;
                Some((ledger, oldest))
            } else {
                None
            }
        };
        match moved {
            Some((ledger, oldest)) => {
                txn.commit().map_err(|e| self.err(e))?;
                self.publish(&w, &ledger, oldest);
                Ok(true)
            }
            None => {
                txn.abort().map_err(|e| self.err(e))?;
                Ok(false)
            }
        }
    }

    /// Wire payloads of the blocks with a sequence above `after`, oldest
    /// first, at most `limit`.
    pub fn read_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, RingError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let open = |def| txn.open_table(def).map_err(|e| self.err(e));
        let (tel, ev) = (open(TELEMETRY_BLOCKS)?, open(EVENT_BLOCKS)?);
        let range = (Bound::Excluded((after, u16::MAX)), Bound::Unbounded);
        let mut iters = [
            Payloads::new(tel.range::<ChunkKey>(range).map_err(|e| self.err(e))?),
            Payloads::new(ev.range::<ChunkKey>(range).map_err(|e| self.err(e))?),
        ];
        let mut next = |i: usize| iters[i].next_payload().map_err(|e| self.payload_err(e));
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        // Merge the two classes by sequence, reading no payload beyond `limit`.
        let mut heads = [next(0)?, next(1)?];
        loop {
            let pick = match (&heads[0], &heads[1]) {
                (None, None) => break,
                (Some(_), None) => 0,
                (None, Some(_)) => 1,
                (Some(a), Some(b)) => usize::from(b.0 < a.0),
            };
            out.extend(heads[pick].take());
            if out.len() == limit {
                break;
            }
            heads[pick] = next(pick)?;
        }
        Ok(out)
    }

    /// The wire payload stored under `seq`, if it is still held.
    pub fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, RingError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        for class in CLASSES {
            let table = txn
                .open_table(tables::blocks_table(class))
                .map_err(|e| self.err(e))?;
            let range = table
                .range::<ChunkKey>((seq, 0)..=(seq, u16::MAX))
                .map_err(|e| self.err(e))?;
            if let Some((_, payload)) = Payloads::new(range)
                .next_payload()
                .map_err(|e| self.payload_err(e))?
            {
                return Ok(Some(payload));
            }
        }
        Ok(None)
    }

    /// Deletes the blocks the hub acknowledged (inclusive ranges). Sequences
    /// not held are ignored, except that a recently dropped block the hub
    /// acknowledges is taken out of the dropped totals again (it was
    /// delivered before the drop). Returns the number of blocks removed.
    pub fn ack(&self, ranges: &[(u64, u64)]) -> Result<u64, RingError> {
        let w = lock(&self.writer);
        let txn = self.begin_write()?;
        let (ledger, removed, recovered, oldest) = {
            let mut t = WriteTables::open(&txn).map_err(|e| self.err(e))?;
            let mut ledger = self.stored_ledger(&t)?;
            let mut removed = 0u64;
            let mut recovered = 0u64;
            for &(lo, hi) in ranges.iter().filter(|(lo, hi)| lo <= hi) {
                for class in CLASSES {
                    let s = class_slot(class);
                    let metas: Vec<BlockMeta> = t.index[s]
                        .extract_from_if(lo..=hi, |_, _| true)
                        .map_err(|e| self.err(e))?
                        .map(|r| r.map(|(k, v)| from_index(k.value(), v.value())))
                        .collect::<Result<_, _>>()
                        .map_err(|e| self.err(e))?;
                    for meta in &metas {
                        if !t.remove_block(class, meta).map_err(|e| self.err(e))? {
                            return Err(self.missing(meta.seq));
                        }
                        ledger.remove(class, meta, Removal::Acked);
                    }
                    removed += metas.len() as u64;
                }
                // Dropped while on its way: the hub has it, so it is not lost.
                let delivered: Vec<u32> = t
                    .dropped_recent
                    .extract_from_if(lo..=hi, |_, _| true)
                    .map_err(|e| self.err(e))?
                    .map(|r| r.map(|(_, v)| v.value()))
                    .collect::<Result<_, _>>()
                    .map_err(|e| self.err(e))?;
                for samples in &delivered {
                    ledger.dropped.blocks = ledger.dropped.blocks.saturating_sub(1);
                    ledger.dropped.samples =
                        ledger.dropped.samples.saturating_sub(u64::from(*samples));
                }
                recovered += delivered.len() as u64;
            }
            write_meta(&mut t.meta, &ledger).map_err(|e| self.err(e))?;
            let oldest = t.oldest().map_err(|e| self.err(e))?;
            (ledger, removed, recovered, oldest)
        };
        if removed + recovered == 0 {
            txn.abort().map_err(|e| self.err(e))?;
            return Ok(0);
        }
        txn.commit().map_err(|e| self.err(e))?;
        self.publish(&w, &ledger, oldest);
        Ok(removed)
    }

    /// Drops the blocks older than the age bound (and, should the byte bound
    /// have been lowered since they were stored, the blocks above it),
    /// counting them as dropped. Meant to be called periodically.
    pub fn trim_expired(&self, now_ms: i64) -> Result<DropReport, RingError> {
        let w = lock(&self.writer);
        let txn = self.begin_write()?;
        let (ledger, report, oldest) = {
            let mut t = WriteTables::open(&txn).map_err(|e| self.err(e))?;
            let mut ledger = self.stored_ledger(&t)?;
            let report = self.trim(&mut t, &mut ledger, 0, now_ms)?;
            write_meta(&mut t.meta, &ledger).map_err(|e| self.err(e))?;
            let oldest = t.oldest().map_err(|e| self.err(e))?;
            (ledger, report, oldest)
        };
        if report.blocks == 0 {
            txn.abort().map_err(|e| self.err(e))?;
            return Ok(report);
        }
        txn.commit().map_err(|e| self.err(e))?;
        self.publish(&w, &ledger, oldest);
        Ok(report)
    }

    /// Current figures, as of the last commit. Never waits for IO.
    pub fn stats(&self) -> RingStats {
        lock(&self.stats).clone()
    }

    /// Interns point names (normally `device/point`), returning their ids in
    /// order. New names get the next dense ids and are stored durably before
    /// this returns; ids are never reused.
    pub fn intern(&self, names: &[String]) -> Result<Vec<PointId>, RingError> {
        let mut w = lock(&self.writer);
        let plan = w.catalog.plan(names)?;
        if plan.new.is_empty() {
            return Ok(plan.ids);
        }
        let txn = self.begin_write()?;
        {
            let mut table = txn.open_table(CATALOG).map_err(|e| self.err(e))?;
            let stored = table.len().map_err(|e| self.err(e))?;
            if stored != u64::from(w.catalog.len()) {
                return Err(self.corrupt(format!(
                    "catalog holds {stored} names, {} expected",
                    w.catalog.len()
                )));
            }
            for (id, name) in &plan.new {
                table.insert(id.0, name.as_str()).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        w.catalog.extend(plan.new);
        let mut stats = lock(&self.stats);
        stats.catalog_len = w.catalog.len();
        Ok(plan.ids)
    }

    /// Every interned name; the index is the [`PointId`].
    pub fn catalog(&self) -> Result<Vec<String>, RingError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(CATALOG).map_err(|e| self.err(e))?;
        read_catalog(&table)
            .map_err(|e| self.err(e))?
            .map_err(|detail| self.corrupt(detail))
    }

    /// The ledger as stored in this transaction: the source of truth, so an
    /// earlier failed commit can never leave totals out of step.
    fn stored_ledger(&self, t: &WriteTables<'_>) -> Result<Ledger, RingError> {
        match read_meta(&t.meta).map_err(|e| self.err(e))? {
            StoredMeta::Ledger(l) => Ok(l),
            StoredMeta::Fresh | StoredMeta::Incomplete(_) => {
                Err(self.corrupt("meta table lost its entries".into()))
            }
            StoredMeta::OtherFormat(found) => Err(RingError::UnsupportedFormat {
                path: self.path.clone(),
                found,
                expected: tables::FORMAT,
            }),
        }
    }

    /// Drops blocks, as the policy decides, until `incoming` more bytes fit.
    fn trim(
        &self,
        t: &mut WriteTables<'_>,
        ledger: &mut Ledger,
        incoming: u64,
        now_ms: i64,
    ) -> Result<DropReport, RingError> {
        let mut report = DropReport::default();
        let mut oldest = [
            t.first_meta(BlockClass::Telemetry)
                .map_err(|e| self.err(e))?,
            t.first_meta(BlockClass::Event).map_err(|e| self.err(e))?,
        ];
        while let Some(d) = next_drop(
            &self.bounds,
            ledger,
            oldest[0].as_ref(),
            oldest[1].as_ref(),
            incoming,
            now_ms,
        ) {
            let s = class_slot(d.class);
            let popped = t.index[s]
                .pop_first()
                .map_err(|e| self.err(e))?
                .map(|(k, v)| from_index(k.value(), v.value()));
            let Some(meta) = popped.filter(|m| m.seq == d.seq) else {
                return Err(self.corrupt(format!("index changed under the trim at {}", d.seq)));
            };
            if !t.remove_block(d.class, &meta).map_err(|e| self.err(e))? {
                return Err(self.missing(meta.seq));
            }
            ledger.remove(d.class, &meta, Removal::Dropped);
            report.add(&meta);
            t.dropped_recent
                .insert(meta.seq, meta.samples)
                .map_err(|e| self.err(e))?;
            while t.dropped_recent.len().map_err(|e| self.err(e))? > DROPPED_RECENT_MAX {
                t.dropped_recent.pop_first().map_err(|e| self.err(e))?;
            }
            oldest[s] = t.first_meta(d.class).map_err(|e| self.err(e))?;
        }
        Ok(report)
    }

    fn missing(&self, seq: u64) -> RingError {
        self.corrupt(format!(
            "index lists sequence {seq} but its block is missing"
        ))
    }

    fn payload_err(&self, e: PayloadError) -> RingError {
        match e {
            PayloadError::Storage(e) => self.err(e),
            PayloadError::Gap(seq) => self.corrupt(format!("block {seq} has a missing chunk")),
        }
    }

    fn publish(&self, w: &Writer, ledger: &Ledger, oldest: Option<(u64, i64)>) {
        *lock(&self.stats) = w.stats(ledger, oldest);
    }
}

impl Writer {
    fn stats(&self, l: &Ledger, oldest: Option<(u64, i64)>) -> RingStats {
        RingStats {
            blocks: l.total_blocks(),
            telemetry_blocks: l.blocks[0],
            event_blocks: l.blocks[1],
            bytes: l.bytes,
            samples: l.samples,
            oldest_ts_ms: oldest.map(|(_, ts)| ts),
            next_seq: l.next_seq,
            acked_through: oldest.map_or(l.next_seq, |(seq, _)| seq).saturating_sub(1),
            dropped_blocks: l.dropped.blocks,
            dropped_samples: l.dropped.samples,
            appended_blocks: self.appended_blocks,
            appended_samples: self.appended_samples,
            catalog_len: self.catalog.len(),
        }
    }
}

impl<'t> WriteTables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, redb::Error> {
        Ok(WriteTables {
            blocks: [
                txn.open_table(TELEMETRY_BLOCKS)?,
                txn.open_table(EVENT_BLOCKS)?,
            ],
            index: [
                txn.open_table(TELEMETRY_INDEX)?,
                txn.open_table(EVENT_INDEX)?,
            ],
            meta: txn.open_table(META)?,
            dropped_recent: txn.open_table(DROPPED_RECENT)?,
        })
    }

    fn first_meta(&self, class: BlockClass) -> Result<Option<BlockMeta>, redb::Error> {
        Ok(self.index[class_slot(class)]
            .first()?
            .map(|(k, v)| from_index(k.value(), v.value())))
    }

    /// Sequence and first sample time of the oldest stored block.
    fn oldest(&self) -> Result<Option<(u64, i64)>, redb::Error> {
        let t = self.first_meta(BlockClass::Telemetry)?;
        let e = self.first_meta(BlockClass::Event)?;
        Ok(t.into_iter()
            .chain(e)
            .min_by_key(|m| m.seq)
            .map(|m| (m.seq, m.first_ts_ms)))
    }

    fn remove_block(&mut self, class: BlockClass, meta: &BlockMeta) -> Result<bool, redb::Error> {
        remove_block(&mut self.blocks[class_slot(class)], meta.seq, meta.bytes)
    }
}

/// Length of redb's magic number at the start of every database file.
const MAGIC_LEN: usize = 9;

/// Whether a file is one whose creation was cut short. redb writes its magic
/// number only once a new file is initialised and synced, and never clears
/// it (design.md, "Database header"); a non-empty file whose magic bytes are
/// all zero therefore never held a commit. redb refuses such a file ("not a
/// redb database"), which would keep a gateway that lost power during its
/// first start from ever starting again.
fn is_unfinished(len: u64, head: &[u8]) -> bool {
    len > 0 && head.iter().all(|b| *b == 0)
}

fn discard_unfinished_file(path: &Path) -> std::io::Result<()> {
    use std::io::Read;
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    // A file another process holds is in use, not abandoned: leave it to
    // redb, which reports it as locked. The lock ends when `file` closes.
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(()),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    let len = file.metadata()?.len();
    let mut head = vec![0u8; MAGIC_LEN.min(len as usize)];
    file.read_exact(&mut head)?;
    if is_unfinished(len, &head) {
        tracing::warn!(path = %path.display(), "ring buffer file was never fully created (power cut at first start); creating it again");
        file.set_len(0)?;
        file.sync_all()?;
    }
    Ok(())
}

fn discard_unfinished_backend(backend: &impl StorageBackend) -> std::io::Result<()> {
    let len = backend.len()?;
    let mut head = vec![0u8; MAGIC_LEN.min(len as usize)];
    backend.read(0, &mut head)?;
    if is_unfinished(len, &head) {
        tracing::warn!("ring buffer storage was never fully created; creating it again");
        backend.set_len(0)?;
        backend.sync_data()?;
    }
    Ok(())
}

/// Maps any redb error for the file at `path`.
fn storage_err<E: Into<redb::Error>>(path: &Path) -> impl Fn(E) -> RingError + '_ {
    move |e| RingError::storage(path, e)
}

/// Reads the catalog table; the inner error says how it is not dense.
fn read_catalog(
    table: &impl ReadableTable<u32, &'static str>,
) -> Result<Result<Vec<String>, String>, redb::Error> {
    let mut names = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        if k.value() as usize != names.len() {
            return Ok(Err(format!(
                "catalog id {} found where {} was expected",
                k.value(),
                names.len()
            )));
        }
        names.push(v.value().to_owned());
    }
    Ok(Ok(names))
}
