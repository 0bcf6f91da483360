//! Errors of the ring buffer. Each names the database file where it matters,
//! so that a log line tells an operator which file to look at.

use dcmms_shared::{BlockCodecError, PointId};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    #[error("ring buffer {path} is open in another process (or twice in this one)")]
    Locked { path: PathBuf },

    #[error("ring buffer {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },

    #[error("ring buffer {path} has format {found}; this build reads format {expected}")]
    UnsupportedFormat {
        path: PathBuf,
        found: u64,
        expected: u64,
    },

    #[error("ring buffer {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("ring buffer {path}: storage error: {source}")]
    Storage {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },

    #[error("block of {bytes} bytes exceeds the ring buffer bound of {max_bytes} bytes")]
    BlockTooLarge { bytes: u64, max_bytes: u64 },

    #[error("a block needs at least one sample")]
    EmptyBlock,

    #[error("sample references point {} but the catalog has {catalog_len} entries", point.0)]
    UnknownPoint { point: PointId, catalog_len: u32 },

    #[error("point name {name:?} is invalid: {reason}")]
    BadPointName { name: String, reason: String },

    #[error("point catalog is full ({0} entries)")]
    CatalogFull(u32),

    #[error("sequence numbers are exhausted")]
    SeqExhausted,

    #[error("cannot encode block: {0}")]
    Encode(#[from] BlockCodecError),
}

impl RingError {
    /// Classifies a redb error for the file at `path`.
    pub(crate) fn storage(path: &std::path::Path, err: impl Into<redb::Error>) -> RingError {
        let path = path.to_owned();
        match err.into() {
            redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
                RingError::Locked { path }
            }
            redb::Error::Corrupted(detail) => RingError::Corrupt { path, detail },
            redb::Error::UpgradeRequired(v) => RingError::Corrupt {
                path,
                detail: format!("file format {v} needs an upgrade by an older redb"),
            },
            redb::Error::RepairAborted => RingError::Corrupt {
                path,
                detail: "repair after an unclean shutdown was aborted".into(),
            },
            source => RingError::Storage {
                path,
                source: Box::new(source),
            },
        }
    }
}
