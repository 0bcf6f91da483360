//! The dCMMS gateway daemon: polls field devices, keeps every sample in a
//! crash-safe ring buffer, and ships the buffer to the hub over MQTT/TLS.
//!
//! Layout: [`config`] (the TOML reference), [`pipeline`] (drivers -> ring
//! buffer), [`ring`] (the redb ring buffer), [`uplink`] (ring buffer -> hub),
//! [`http`] (health, status, metrics, commands), [`commands`] (operators
//! and the command log), [`daemon`] (wiring and ordered
//! shutdown), [`discover`] (device discovery into point maps).

pub mod commands;
pub mod config;
pub mod daemon;
pub mod discover;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod ring;
pub mod uplink;
