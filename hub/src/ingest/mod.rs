//! Ingest: from MQTT messages on the hub's broker to committed rows and
//! acks.
//!
//! - [`plan`]: sans-IO decisions (classify a message, gate blocks on the
//!   catalog, build acks);
//! - [`apply`]: one database transaction per batch;
//! - [`worker`]: the tasks that read the broker link, batch, write and
//!   publish acks.
//!
//! Nothing is acked before it is committed; refusals are counted under
//! `dcmms_hub_rejected_messages_total{reason}` and never panic the hub.

pub mod apply;
pub mod plan;
pub mod worker;

pub use apply::{apply_batch, BatchOutcome};
pub use plan::{classify, Body, Classified, Inbound};
