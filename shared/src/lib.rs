//! Domain model and wire protocol shared by the gateway and the hub.
//!
//! Everything here is sans-IO: plain types and pure functions over bytes;
//! the one exception is the optional `service` module (feature `service`),
//! the daemons' notifications to systemd.
//! Decoders of untrusted bytes return errors and never panic; they are
//! property-tested and fuzzed (see `shared/fuzz`).

pub mod block;
pub mod cmms;
pub mod sample;
#[cfg(feature = "service")]
pub mod service;
pub mod topic;
pub mod wire;

pub use block::{decode_samples, encode_samples, BlockCodecError};
pub use sample::{validate_name, NameError, PointId, Quality, Sample};
pub use topic::{Topic, TopicError, TopicKind};
pub use wire::{
    Ack, BlockClass, GatewayStatus, Message, PointCatalog, TelemetryBlock, WireError, WIRE_VERSION,
};
