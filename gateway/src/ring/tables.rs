//! On-disk layout of the ring buffer: table definitions and the codec of the
//! meta table. Changing anything here changes the file format: bump
//! [`FORMAT`].
//!
//! - `chunks/telemetry`, `chunks/event`: (seq, chunk) -> part of a wire
//!   payload, one table per block class so that the full-buffer policy finds
//!   the oldest telemetry block without scanning past events. Payloads are
//!   cut in [`CHUNK`]-byte parts, two of which fill one redb page exactly:
//!   stored whole, a 16 KiB payload would take a 32 KiB page (redb rounds
//!   larger leaves up to a power of two) and double the file. Two per page
//!   rather than one halves the space lost after the last, partial chunk of
//!   each payload; more per page would lose more, because redb splits a full
//!   leaf in the middle and keys here only grow.
//! - `index/telemetry`, `index/event`: seq -> (stored_ms, first_ts_ms,
//!   sample_count, payload length); small entries the bookkeeping reads
//!   instead of payloads.
//! - `meta`: the [`Ledger`] (next seq, byte and sample totals, block counts,
//!   cumulative drops) and the format version, rewritten in every write
//!   transaction.
//! - `catalog`: PointId -> "device/point" name, dense from 0.

use super::policy::{BlockMeta, DropReport, Ledger};
use dcmms_shared::BlockClass;
use redb::{ReadableTable, Table, TableDefinition};

/// Layout version written in `meta`.
pub const FORMAT: u64 = 1;

/// (sequence, chunk index)
pub type ChunkKey = (u64, u16);
pub const TELEMETRY_BLOCKS: TableDefinition<ChunkKey, &[u8]> =
    TableDefinition::new("chunks/telemetry");
pub const EVENT_BLOCKS: TableDefinition<ChunkKey, &[u8]> = TableDefinition::new("chunks/event");

/// redb's page size (fixed at 4 KiB in redb 4).
const PAGE: usize = 4096;
/// A leaf page spends 4 bytes of header, plus per entry a 4-byte value end
/// offset and the 10-byte fixed-width key (redb `RawLeafBuilder::required_bytes`).
const LEAF_HEADER: usize = 4;
const ENTRY_OVERHEAD: usize = 4 + 10;
/// Payload bytes per chunk: two chunks fill one page (2032).
pub const CHUNK: usize = (PAGE - LEAF_HEADER) / 2 - ENTRY_OVERHEAD;
/// Largest payload the chunk index can address.
pub const MAX_STORED_PAYLOAD: usize = CHUNK * (u16::MAX as usize + 1);

/// (stored_ms, first_ts_ms, sample_count, payload bytes)
pub type IndexValue = (i64, i64, u32, u32);
pub const TELEMETRY_INDEX: TableDefinition<u64, IndexValue> =
    TableDefinition::new("index/telemetry");
pub const EVENT_INDEX: TableDefinition<u64, IndexValue> = TableDefinition::new("index/event");

pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const CATALOG: TableDefinition<u32, &str> = TableDefinition::new("catalog");
/// Recently dropped blocks: sequence -> sample count. A dropped block may
/// already be on its way to the hub; when its ack arrives it was delivered
/// after all and leaves the dropped totals again, so that those count
/// exactly the samples the hub will never have.
pub const DROPPED_RECENT: TableDefinition<u64, u32> = TableDefinition::new("dropped/recent");
/// Dropped blocks remembered for that reconciliation; far more than can be
/// in flight at once.
pub const DROPPED_RECENT_MAX: u64 = 4096;

pub fn blocks_table(class: BlockClass) -> TableDefinition<'static, ChunkKey, &'static [u8]> {
    match class {
        BlockClass::Telemetry => TELEMETRY_BLOCKS,
        BlockClass::Event => EVENT_BLOCKS,
    }
}

pub fn index_table(class: BlockClass) -> TableDefinition<'static, u64, IndexValue> {
    match class {
        BlockClass::Telemetry => TELEMETRY_INDEX,
        BlockClass::Event => EVENT_INDEX,
    }
}

pub const CLASSES: [BlockClass; 2] = [BlockClass::Telemetry, BlockClass::Event];

pub fn to_index(meta: &BlockMeta) -> IndexValue {
    (meta.stored_ms, meta.first_ts_ms, meta.samples, meta.bytes)
}

pub fn from_index(seq: u64, v: IndexValue) -> BlockMeta {
    let (stored_ms, first_ts_ms, samples, bytes) = v;
    BlockMeta {
        seq,
        stored_ms,
        first_ts_ms,
        samples,
        bytes,
    }
}

/// Stores `payload` under `seq`; false if some chunk of `seq` already existed.
pub fn insert_block(
    table: &mut Table<ChunkKey, &'static [u8]>,
    seq: u64,
    payload: &[u8],
) -> Result<bool, redb::Error> {
    let mut fresh = true;
    for (i, part) in payload.chunks(CHUNK).enumerate() {
        let Ok(i) = u16::try_from(i) else {
            return Ok(false);
        };
        fresh &= table.insert((seq, i), part)?.is_none();
    }
    Ok(fresh)
}

/// Removes the `bytes`-long payload under `seq`; false if a chunk was missing.
pub fn remove_block(
    table: &mut Table<ChunkKey, &'static [u8]>,
    seq: u64,
    bytes: u32,
) -> Result<bool, redb::Error> {
    let chunks = (bytes as usize).div_ceil(CHUNK).max(1);
    let mut complete = true;
    for i in 0..chunks {
        let Ok(i) = u16::try_from(i) else {
            return Ok(false);
        };
        complete &= table.remove((seq, i))?.is_some();
    }
    Ok(complete)
}

/// Reassembles payloads from a range of chunks, in sequence order.
pub struct Payloads<'a> {
    range: redb::Range<'a, ChunkKey, &'static [u8]>,
    /// First chunk of the next payload, already read.
    pending: Option<(u64, Vec<u8>)>,
}

/// What [`Payloads::next_payload`] found wrong.
#[derive(Debug)]
pub enum PayloadError {
    Storage(redb::StorageError),
    /// Chunks of `seq` are not numbered 0, 1, 2...
    Gap(u64),
}

impl<'a> Payloads<'a> {
    pub fn new(range: redb::Range<'a, ChunkKey, &'static [u8]>) -> Self {
        Payloads {
            range,
            pending: None,
        }
    }

    fn next_chunk(&mut self) -> Result<Option<(ChunkKey, Vec<u8>)>, PayloadError> {
        match self.range.next() {
            None => Ok(None),
            Some(Ok((k, v))) => Ok(Some((k.value(), v.value().to_vec()))),
            Some(Err(e)) => Err(PayloadError::Storage(e)),
        }
    }

    pub fn next_payload(&mut self) -> Result<Option<(u64, Vec<u8>)>, PayloadError> {
        let (seq, mut buf) = match self.pending.take() {
            Some(p) => p,
            None => match self.next_chunk()? {
                None => return Ok(None),
                Some(((seq, 0), v)) => (seq, v),
                Some(((seq, _), _)) => return Err(PayloadError::Gap(seq)),
            },
        };
        let mut expected: u16 = 1;
        loop {
            match self.next_chunk()? {
                None => return Ok(Some((seq, buf))),
                Some(((s, i), v)) if s == seq => {
                    if i != expected {
                        return Err(PayloadError::Gap(seq));
                    }
                    expected = expected.wrapping_add(1);
                    buf.extend_from_slice(&v);
                }
                Some(((s, 0), v)) => {
                    self.pending = Some((s, v));
                    return Ok(Some((seq, buf)));
                }
                Some(((s, _), _)) => return Err(PayloadError::Gap(s)),
            }
        }
    }
}

const K_FORMAT: &str = "format";
const K_NEXT_SEQ: &str = "next_seq";
const K_BYTES: &str = "bytes";
const K_SAMPLES: &str = "samples";
const K_TELEMETRY_BLOCKS: &str = "blocks.telemetry";
const K_EVENT_BLOCKS: &str = "blocks.event";
const K_DROPPED_BLOCKS: &str = "dropped.blocks";
const K_DROPPED_SAMPLES: &str = "dropped.samples";

/// What the meta table says: nothing yet (a new file), a ledger, or a format
/// this build does not read.
pub enum StoredMeta {
    Fresh,
    Ledger(Ledger),
    OtherFormat(u64),
    /// A key is missing from an initialised table.
    Incomplete(&'static str),
}

pub fn read_meta(table: &impl ReadableTable<&'static str, u64>) -> Result<StoredMeta, redb::Error> {
    let get = |k: &'static str| -> Result<Option<u64>, redb::Error> {
        Ok(table.get(k)?.map(|g| g.value()))
    };
    let Some(format) = get(K_FORMAT)? else {
        return Ok(if table.is_empty()? {
            StoredMeta::Fresh
        } else {
            StoredMeta::Incomplete(K_FORMAT)
        });
    };
    if format != FORMAT {
        return Ok(StoredMeta::OtherFormat(format));
    }
    let mut vals = [0u64; 7];
    let keys = [
        K_NEXT_SEQ,
        K_BYTES,
        K_SAMPLES,
        K_TELEMETRY_BLOCKS,
        K_EVENT_BLOCKS,
        K_DROPPED_BLOCKS,
        K_DROPPED_SAMPLES,
    ];
    for (v, k) in vals.iter_mut().zip(keys) {
        match get(k)? {
            Some(x) => *v = x,
            None => return Ok(StoredMeta::Incomplete(k)),
        }
    }
    let [next_seq, bytes, samples, telemetry, event, dropped_blocks, dropped_samples] = vals;
    Ok(StoredMeta::Ledger(Ledger {
        next_seq,
        bytes,
        samples,
        blocks: [telemetry, event],
        dropped: DropReport {
            blocks: dropped_blocks,
            samples: dropped_samples,
        },
    }))
}

pub fn write_meta(table: &mut Table<&'static str, u64>, l: &Ledger) -> Result<(), redb::Error> {
    let entries = [
        (K_FORMAT, FORMAT),
        (K_NEXT_SEQ, l.next_seq),
        (K_BYTES, l.bytes),
        (K_SAMPLES, l.samples),
        (K_TELEMETRY_BLOCKS, l.blocks[0]),
        (K_EVENT_BLOCKS, l.blocks[1]),
        (K_DROPPED_BLOCKS, l.dropped.blocks),
        (K_DROPPED_SAMPLES, l.dropped.samples),
    ];
    for (k, v) in entries {
        table.insert(k, v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::backends::InMemoryBackend;
    use redb::{Database, ReadableDatabase, ReadableTableMetadata};

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + len) as u8).collect()
    }

    #[test]
    fn payloads_round_trip_across_chunk_boundaries() {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .unwrap();
        let sizes = [1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17, 5];
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(TELEMETRY_BLOCKS).unwrap();
            for (seq, len) in sizes.iter().enumerate() {
                assert!(insert_block(&mut t, seq as u64 + 10, &payload(*len)).unwrap());
            }
            assert!(
                !insert_block(&mut t, 12, &payload(3)).unwrap(),
                "seq 12 exists"
            );
            assert!(insert_block(&mut t, 12, &payload(CHUNK)).is_ok());
        }
        txn.commit().unwrap();

        let read_all = |after: u64| -> Vec<(u64, usize)> {
            let txn = db.begin_read().unwrap();
            let t = txn.open_table(TELEMETRY_BLOCKS).unwrap();
            let range = (
                std::ops::Bound::Excluded((after, u16::MAX)),
                std::ops::Bound::Unbounded,
            );
            let mut p = Payloads::new(t.range::<ChunkKey>(range).unwrap());
            let mut out = Vec::new();
            while let Some((seq, bytes)) = p.next_payload().unwrap() {
                assert_eq!(bytes, payload(sizes[(seq - 10) as usize]), "seq {seq}");
                out.push((seq, bytes.len()));
            }
            out
        };
        let all = read_all(0);
        assert_eq!(all.len(), sizes.len());
        assert_eq!(read_all(12).first().map(|x| x.0), Some(13));

        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(TELEMETRY_BLOCKS).unwrap();
            assert!(remove_block(&mut t, 14, (3 * CHUNK) as u32).unwrap());
            assert!(!remove_block(&mut t, 14, (3 * CHUNK) as u32).unwrap());
            // A length that claims one chunk too many reports the gap.
            assert!(!remove_block(&mut t, 13, (CHUNK + 1) as u32 + CHUNK as u32).unwrap());
            // Left: 10, 11, 12 and 16 (one chunk each) and 15 (four).
            assert_eq!(t.len().unwrap(), 8);
        }
        txn.commit().unwrap();
    }

    #[test]
    fn a_missing_chunk_is_reported() {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(EVENT_BLOCKS).unwrap();
            insert_block(&mut t, 1, &payload(3 * CHUNK)).unwrap();
            t.remove((1, 1)).unwrap();
        }
        txn.commit().unwrap();
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(EVENT_BLOCKS).unwrap();
        let mut p = Payloads::new(t.range::<ChunkKey>((0, 0)..).unwrap());
        assert!(matches!(p.next_payload(), Err(PayloadError::Gap(1))));
    }

    #[test]
    fn two_chunks_fill_one_page() {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(TELEMETRY_BLOCKS).unwrap();
            for seq in 0..64 {
                insert_block(&mut t, seq, &payload(CHUNK * 4)).unwrap();
            }
        }
        txn.commit().unwrap();
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(TELEMETRY_BLOCKS).unwrap();
        let stats = t.stats().unwrap();
        assert_eq!(stats.leaf_pages(), 128, "two chunks per 4 KiB leaf");
        // Whatever is unused sits in the few branch pages, not in leaves.
        assert!(
            stats.fragmented_bytes() <= stats.branch_pages() * PAGE as u64,
            "{stats:?}"
        );
    }
}
