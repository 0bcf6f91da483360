//! The pieces of `dcmms-bench`: one module per command ([`drain`],
//! [`latency`], [`rss`]), what they share ([`setup`], [`live`], [`probe`],
//! [`stats`]) and their sans-IO helpers ([`profile`], [`procstat`],
//! [`regserver`]'s register values).

pub mod baseline;
pub mod drain;
pub mod interrupt;
pub mod latency;
pub mod live;
pub mod probe;
pub mod procstat;
pub mod profile;
pub mod regserver;
pub mod rss;
pub mod setup;
pub mod stats;
