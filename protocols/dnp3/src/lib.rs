//! DNP3 master driver over TCP, on Step Function I/O's `dnp3` crate.
//!
//! Licence: the `dnp3` crate is source-available under a non-commercial,
//! non-production licence (see README.md). The gateway builds this crate
//! only behind its `dnp3` Cargo feature; a production deployment needs a
//! commercial licence from Step Function I/O.
//!
//! This crate owns everything DNP3: the `[[dnp3]]` config ([`Dnp3Config`])
//! and point maps ([`point_map`]), the sans-IO conversion of measurements to
//! samples with their quality and time ([`measurement`]), command planning
//! and result mapping ([`command`]), link health (`health`), the adapters
//! to the stack's callbacks (`handlers`), the driver ([`Dnp3Driver`]) and
//! discovery ([`discover()`]). The protocol itself (framing, transport,
//! application layer, polls, reconnects) is the `dnp3` crate's.
//!
//! The gateway deserialises a [`Dnp3Config`] per outstation and calls
//! [`build`], then runs the returned [`Driver`].

pub mod command;
pub mod config;
pub mod discover;
pub mod driver;
mod handlers;
mod health;
pub mod measurement;
pub mod point;
pub mod point_map;

use std::path::Path;

use dcmms_protocols_core::{Driver, PointResolver};
use dnp3::link::EndpointAddress;

pub use config::{Dnp3Config, Dnp3ConfigError, TimeSync};
pub use discover::{
    discover, points_from_discovery, render_point_map, DiscoverError, DiscoveredPoint, MapFormat,
};
pub use driver::Dnp3Driver;
pub use point::{AnalogVariation, CrobOp, Dnp3Point, OperateMode, PointConfig, PointKind};
pub use point_map::{load_point_map, write_points_csv, write_points_toml, PointMapError};

/// Validates `cfg`, interns its measurement points as `<device>/<point>`
/// through `resolver` (command points carry no samples and are not
/// interned), and returns the driver. `config_dir` is the folder
/// `points_file` is relative to. Nothing is connected until the driver
/// runs; it must run inside a tokio runtime.
pub fn build(
    cfg: &Dnp3Config,
    config_dir: &Path,
    resolver: &mut dyn PointResolver,
) -> Result<Box<dyn Driver>, Dnp3ConfigError> {
    build_dnp3(cfg, config_dir, resolver).map(|d| Box::new(d) as Box<dyn Driver>)
}

/// [`build`] returning the concrete type.
pub fn build_dnp3(
    cfg: &Dnp3Config,
    config_dir: &Path,
    resolver: &mut dyn PointResolver,
) -> Result<Dnp3Driver, Dnp3ConfigError> {
    let points = cfg.validate(config_dir)?;
    let address = |v: u16, field: &'static str| {
        EndpointAddress::try_new(v).map_err(|e| Dnp3ConfigError::DeviceField {
            device: cfg.name.clone(),
            field,
            message: e.to_string(),
        })
    };
    let master = address(cfg.master_address, "master_address")?;
    let outstation = address(cfg.outstation_address, "outstation_address")?;
    let ids: Vec<_> = points
        .iter()
        .map(|p| {
            p.kind
                .is_measurement()
                .then(|| resolver.resolve(&format!("{}/{}", cfg.name, p.name)))
        })
        .collect();
    Ok(Dnp3Driver::new(
        cfg.clone(),
        master,
        outstation,
        points,
        &ids,
    ))
}
