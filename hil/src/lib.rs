//! Hardware-in-the-loop: simulated devices and third-party peers.
//!
//! This crate owns the device simulators used by the demo and the tests: a
//! sans-IO solar inverter model ([`solar`]), its Modbus register map and
//! point list ([`register_map`]), and a Modbus TCP server for a fleet of
//! them ([`modbus_sim`], binary `dcmms-sim`). Scripts for third-party peers
//! (pymodbus, ...) live in `hil/peers/`; their Python requirements in
//! `hil/requirements.txt`.

pub mod modbus_sim;
pub mod register_map;
pub mod solar;

pub use modbus_sim::{serve, serve_shared, Fleet, SimClock};
pub use register_map::{point_map, points_csv, POINTS};
pub use solar::{InverterParams, SolarInverter};
