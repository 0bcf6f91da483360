//! The gateway's crash-safe ring buffer: telemetry blocks in a redb database
//! under a sequence number that starts at 1 and is never reused, bounded by
//! bytes and age, deleted only when the hub acknowledges them or the bounds
//! push them out (and then counted as dropped).
//!
//! Each stored value is the exact wire payload the uplink publishes
//! (`Message::Telemetry(..).encode()`), so blocks are sent without
//! re-encoding. Every operation is one redb write transaction committed with
//! `Durability::Immediate`: once a call returns `Ok`, its effect survives a
//! power cut, and a cut mid-call leaves either the state before or after it.
//!
//! The module also owns the point catalog: the persistent interning of
//! `device/point` names to dense [`PointId`](dcmms_shared::PointId)s.
//!
//! - [`policy`]: what to drop, sans-IO.
//! - [`store`]: the redb transactions around it.
//! - [`tables`]: the file layout.
//! - [`catalog`]: point names to ids.
//!
//! It exports nothing global: [`RingBuffer::stats`] is what the gateway
//! publishes as metrics and status.

pub mod catalog;
mod error;
pub mod policy;
pub mod store;
pub mod tables;

pub use error::RingError;
pub use policy::{DropReport, FullPolicy};
pub use store::RingBuffer;

use std::path::PathBuf;
use std::time::Duration;

/// Default byte bound: 512 MiB of stored payloads (about 40 hours of 5,000
/// points polled every 5 s with a typical solar profile).
pub const DEFAULT_MAX_BYTES: u64 = 512 * 1024 * 1024;
/// Default age bound: 7 days.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default redb page cache: 4 MiB (redb's own default, 1 GiB, does not fit
/// an appliance).
pub const DEFAULT_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// How a ring buffer is opened.
#[derive(Debug, Clone)]
pub struct RingConfig {
    /// The redb file; created with its parent folders if missing.
    pub path: PathBuf,
    /// Bound on the sum of stored payload lengths. The disk space used is
    /// about 5-15 % more (pages, index, pages freed by the last commits); the
    /// file's apparent length can be up to about twice that, the rest being
    /// sparse space redb reserved while growing.
    pub max_bytes: u64,
    /// Blocks stored longer ago than this are dropped and counted.
    pub max_age: Duration,
    /// What goes first when `max_bytes` is reached.
    pub full_policy: FullPolicy,
    /// redb page cache size.
    pub cache_bytes: usize,
}

impl RingConfig {
    /// A config with the default bounds.
    pub fn new(path: impl Into<PathBuf>) -> RingConfig {
        RingConfig {
            path: path.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            max_age: DEFAULT_MAX_AGE,
            full_policy: FullPolicy::default(),
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// Result of [`RingBuffer::append_block`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Sequence number of the new block.
    pub seq: u64,
    /// Length of its wire payload.
    pub bytes: u64,
    /// What was dropped to keep within the bounds.
    pub dropped: DropReport,
}

/// Figures of a ring buffer as of its last commit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RingStats {
    /// Blocks held (not yet acknowledged nor dropped).
    pub blocks: u64,
    pub telemetry_blocks: u64,
    pub event_blocks: u64,
    /// Sum of the payload lengths held.
    pub bytes: u64,
    /// Samples held.
    pub samples: u64,
    /// Timestamp of the first sample of the oldest block held.
    pub oldest_ts_ms: Option<i64>,
    /// Sequence the next block will get.
    pub next_seq: u64,
    /// Every sequence up to this one is acknowledged or dropped.
    pub acked_through: u64,
    /// Cumulative since the file was created, across restarts.
    pub dropped_blocks: u64,
    pub dropped_samples: u64,
    /// Since this process opened the buffer.
    pub appended_blocks: u64,
    pub appended_samples: u64,
    /// Number of interned point names.
    pub catalog_len: u32,
}
