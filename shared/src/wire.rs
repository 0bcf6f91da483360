//! Messages between gateway and hub, and their envelope.
//!
//! Every payload is `b"DC"`, a version byte, a kind byte, then the postcard
//! encoding of the body. A payload with another magic, an unknown version or
//! kind, or a body that does not decode is refused with a [`WireError`];
//! nothing here panics on untrusted bytes.

use serde::{Deserialize, Serialize};

/// Version of the envelope and bodies written by this build.
pub const WIRE_VERSION: u8 = 1;
const MAGIC: [u8; 2] = *b"DC";
/// Payloads above this size are refused before decoding.
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// What a block carries; the ring buffer's full-buffer policy drops routine
/// telemetry before protected classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum BlockClass {
    #[default]
    Telemetry,
    /// Alarms and events: protected when the buffer is full.
    Event,
}

/// A batch of samples committed under one sequence number on a gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryBlock {
    /// Monotonic per gateway, never reused, starts at 1.
    pub seq: u64,
    pub class: BlockClass,
    pub sample_count: u32,
    pub first_ts_ms: i64,
    pub last_ts_ms: i64,
    /// Number of catalog entries the gateway had when the block was made:
    /// every point id in the block is below this.
    pub catalog_len: u32,
    /// Samples in the columnar format of [`crate::block`].
    pub samples: Vec<u8>,
}

/// Names of interned points `first_id..first_id + names.len()`, each
/// `device/point` (the site is the gateway's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointCatalog {
    pub first_id: u32,
    pub names: Vec<String>,
}

/// The hub's answer: sequences committed to its database (or refused for
/// good), as inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Ack {
    pub committed: Vec<(u64, u64)>,
    /// Blocks the hub will never accept (undecodable); the gateway drops and
    /// counts them instead of resending forever.
    pub rejected: Vec<(u64, u64)>,
    /// Catalog entries the hub holds for this gateway; a gateway whose blocks
    /// reference more resends its catalog from here.
    pub catalog_len: u32,
}

/// Health of one southbound device as reported by the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DeviceHealth {
    pub name: String,
    pub connected: bool,
    pub polls: u64,
    pub errors: u64,
}

/// Retained status of a gateway; also its last will (with `online: false`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GatewayStatus {
    pub ts_ms: i64,
    pub online: bool,
    pub software_version: String,
    pub buffer_blocks: u64,
    pub buffer_bytes: u64,
    pub oldest_ts_ms: Option<i64>,
    pub next_seq: u64,
    pub acked_through: u64,
    pub dropped_blocks: u64,
    pub dropped_samples: u64,
    pub devices: Vec<DeviceHealth>,
}

/// Any message of the gateway <-> hub protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Telemetry(TelemetryBlock),
    Catalog(PointCatalog),
    Ack(Ack),
    Status(GatewayStatus),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("payload too short for the envelope")]
    Truncated,
    #[error("payload of {0} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    #[error("not a dCMMS payload (bad magic)")]
    BadMagic,
    #[error("unsupported wire version {0} (this build speaks {WIRE_VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error("body does not decode: {0}")]
    Body(String),
}

impl Message {
    fn kind(&self) -> u8 {
        match self {
            Message::Telemetry(_) => 1,
            Message::Catalog(_) => 2,
            Message::Ack(_) => 3,
            Message::Status(_) => 4,
        }
    }

    /// Encodes with the current envelope.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&MAGIC);
        out.push(WIRE_VERSION);
        out.push(self.kind());
        let res = match self {
            Message::Telemetry(b) => postcard::to_extend(b, out),
            Message::Catalog(c) => postcard::to_extend(c, out),
            Message::Ack(a) => postcard::to_extend(a, out),
            Message::Status(s) => postcard::to_extend(s, out),
        };
        // Serialising these plain structs into a Vec cannot fail.
        res.unwrap_or_default()
    }

    /// Decodes an untrusted payload.
    pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
        if bytes.len() > MAX_PAYLOAD {
            return Err(WireError::TooLarge(bytes.len()));
        }
        if bytes.len() < 4 {
            return Err(WireError::Truncated);
        }
        if bytes[..2] != MAGIC {
            return Err(WireError::BadMagic);
        }
        if bytes[2] != WIRE_VERSION {
            return Err(WireError::UnsupportedVersion(bytes[2]));
        }
        let body = &bytes[4..];
        let err = |e: postcard::Error| WireError::Body(e.to_string());
        Ok(match bytes[3] {
            1 => Message::Telemetry(postcard::from_bytes(body).map_err(err)?),
            2 => Message::Catalog(postcard::from_bytes(body).map_err(err)?),
            3 => Message::Ack(postcard::from_bytes(body).map_err(err)?),
            4 => Message::Status(postcard::from_bytes(body).map_err(err)?),
            k => return Err(WireError::UnknownKind(k)),
        })
    }
}

/// Collapses a set of sequence numbers into sorted inclusive ranges.
pub fn to_ranges(mut seqs: Vec<u64>) -> Vec<(u64, u64)> {
    seqs.sort_unstable();
    seqs.dedup();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in seqs {
        match out.last_mut() {
            Some((_, hi)) if *hi + 1 == s => *hi = s,
            _ => out.push((s, s)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block() -> TelemetryBlock {
        TelemetryBlock {
            seq: 42,
            class: BlockClass::Telemetry,
            sample_count: 3,
            first_ts_ms: 10,
            last_ts_ms: 20,
            catalog_len: 9,
            samples: vec![1, 2, 3],
        }
    }

    #[test]
    fn round_trips() {
        let msgs = vec![
            Message::Telemetry(block()),
            Message::Catalog(PointCatalog {
                first_id: 3,
                names: vec!["inv1/p_ac".into()],
            }),
            Message::Ack(Ack {
                committed: vec![(1, 5)],
                rejected: vec![(7, 7)],
                catalog_len: 4,
            }),
            Message::Status(GatewayStatus {
                online: true,
                next_seq: 5,
                ..Default::default()
            }),
        ];
        for m in msgs {
            assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn envelope_errors_are_clear() {
        let mut b = Message::Telemetry(block()).encode();
        assert_eq!(Message::decode(&b[..3]), Err(WireError::Truncated));
        b[2] = 9;
        assert_eq!(Message::decode(&b), Err(WireError::UnsupportedVersion(9)));
        b[2] = WIRE_VERSION;
        b[3] = 77;
        assert_eq!(Message::decode(&b), Err(WireError::UnknownKind(77)));
        assert_eq!(Message::decode(b"XX\x01\x01"), Err(WireError::BadMagic));
        let ok = Message::Telemetry(block()).encode();
        assert!(matches!(
            Message::decode(&ok[..ok.len() - 2]),
            Err(WireError::Body(_))
        ));
    }

    #[test]
    fn ranges() {
        assert_eq!(
            to_ranges(vec![5, 1, 2, 3, 9, 10, 2]),
            vec![(1, 3), (5, 5), (9, 10)]
        );
        assert!(to_ranges(vec![]).is_empty());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Message::decode(&bytes);
            let mut framed = b"DC\x01".to_vec();
            framed.extend_from_slice(&bytes);
            let _ = Message::decode(&framed);
        }

        #[test]
        fn telemetry_round_trip(seq in any::<u64>(), n in any::<u32>(), a in any::<i64>(), data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let m = Message::Telemetry(TelemetryBlock { seq, class: BlockClass::Event, sample_count: n, first_ts_ms: a, last_ts_ms: a, catalog_len: n, samples: data });
            prop_assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
    }
}
