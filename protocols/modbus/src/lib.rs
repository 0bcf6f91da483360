//! Modbus TCP driver (tokio-modbus).
//!
//! This crate owns everything Modbus: the `[[modbus]]` config and CSV point
//! lists ([`ModbusTcpConfig`], [`points_csv`]), the sans-IO read planner
//! ([`plan`]) and response decoder ([`decode`]), a guard against malformed
//! frames ([`frame_guard`]), and the poll loop ([`ModbusTcpDriver`]) that
//! ties them to a socket. Value decoding itself lives in
//! `dcmms-protocols-core`.
//!
//! The gateway deserialises a [`ModbusTcpConfig`] per device and calls
//! [`build`], then runs the returned [`Driver`].

pub mod config;
pub mod decode;
pub mod driver;
pub mod frame_guard;
pub mod plan;
pub mod points_csv;

use std::path::Path;
use std::time::Duration;

use dcmms_protocols_core::{Backoff, Driver, PointResolver};

pub use config::{ModbusConfigError, ModbusPoint, ModbusTcpConfig, PointConfig, Table};
pub use driver::ModbusTcpDriver;
pub use plan::{plan_reads, PlannedRead, Slot, Span};
pub use points_csv::{load_points_csv, parse_points_csv, write_points_csv, PointsCsvError};

/// Validates `cfg`, interns its points as `<device>/<point>` through
/// `resolver`, plans the reads, and returns the driver. `config_dir` is the
/// folder `points_csv` is relative to. Nothing is connected until the
/// driver runs.
pub fn build(
    cfg: &ModbusTcpConfig,
    config_dir: &Path,
    resolver: &mut dyn PointResolver,
) -> Result<Box<dyn Driver>, ModbusConfigError> {
    build_tcp(cfg, config_dir, resolver).map(|d| Box::new(d) as Box<dyn Driver>)
}

/// [`build`] returning the concrete type (to inspect its plan).
pub fn build_tcp(
    cfg: &ModbusTcpConfig,
    config_dir: &Path,
    resolver: &mut dyn PointResolver,
) -> Result<ModbusTcpDriver, ModbusConfigError> {
    let points = cfg.validate(config_dir)?;
    let ids = points
        .iter()
        .map(|p| resolver.resolve(&format!("{}/{}", cfg.name, p.name)))
        .collect();
    let spans: Vec<Span> = points.iter().map(Span::from).collect();
    let reads = plan_reads(&spans, cfg.max_gap);
    Ok(ModbusTcpDriver::new(
        cfg.name.clone(),
        cfg.address.clone(),
        cfg.unit_id,
        Duration::from_millis(cfg.poll_interval_ms),
        Duration::from_millis(cfg.timeout_ms),
        Backoff::new(
            Duration::from_millis(cfg.backoff_min_ms),
            Duration::from_millis(cfg.backoff_max_ms),
        ),
        points,
        ids,
        reads,
    ))
}
