//! The driver API shared by every southbound protocol.
//!
//! This crate owns what does not depend on one protocol: the [`Driver`] trait
//! the gateway runs, the per-device [`DeviceStats`] counters, reconnect
//! [`Backoff`], and the sans-IO decoding of register images into values
//! ([`decode_registers`], [`Scaling`]). It never opens a socket itself; the
//! protocol crates (`protocols/modbus`, ...) do the IO around these pieces.

pub mod backoff;
pub mod command;
pub mod driver;
pub mod naming;
pub mod point_file;
pub mod scaling;
pub mod stats;
pub mod value;

pub use backoff::Backoff;
pub use command::{
    command_channel, Command, CommandError, CommandPort, CommandRequest, CommandSender,
    CommandValue,
};
pub use driver::{unix_time_ms, Driver, DriverFuture, PointResolver};
pub use naming::unique_point_name;
pub use scaling::Scaling;
pub use stats::{DeviceStats, DeviceStatsSnapshot};
pub use value::{
    decode_registers, encode_registers, ByteOrder, DataType, DecodeError, EncodeError,
    ParseEnumError, WordOrder,
};
