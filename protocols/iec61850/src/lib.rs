//! IEC 61850 MMS client driver.
//!
//! This crate owns everything IEC 61850: the `[[iec61850]]` config with its
//! report control blocks and point maps ([`Iec61850Config`],
//! [`point_map`]), the sans-IO pieces (references, value and quality
//! conversion, read planning, report decoding, command encoding), the
//! session loop that runs one device on its own thread ([`worker`]), the
//! async [`Driver`] around it, and discovery: a live IED's data model
//! ([`discover`]) or an SCL file ([`scl`]) turned into a point map.
//!
//! The MMS protocol itself is a library's, behind [`MmsBackend`]; the one
//! shipped is [`RsBackend`] over the pure-Rust `iec61850-rs` crate.

pub mod backend;
pub mod command;
pub mod config;
pub mod discovery;
pub mod driver;
pub mod point_map;
pub mod poll;
pub mod reference;
pub mod report;
pub mod rs_backend;
pub mod scl;
pub mod value;
pub mod worker;

use std::path::Path;

use dcmms_protocols_core::{Driver, PointResolver};

pub use backend::{ControlModel, MmsBackend, MmsError};
pub use config::{DevicePlan, Iec61850Config, Iec61850ConfigError, PointConfig, ReportConfig};
pub use discovery::{discover, discover_with, DiscoveredModel, DiscoveryError};
pub use driver::Iec61850Driver;
pub use point_map::{load_point_map, write_points_csv, write_points_toml, PointMapError};
pub use reference::Fc;
pub use rs_backend::RsBackend;
pub use scl::{import_scl, import_scl_file, SclError};
pub use worker::{ReportStats, ReportStatsSnapshot};

/// Validates `cfg`, interns its points as `<device>/<point>` through
/// `resolver`, and returns the driver over the `iec61850-rs` client.
/// `config_dir` is the folder `points_file` is relative to. Nothing is
/// connected until the driver runs.
pub fn build(
    cfg: &Iec61850Config,
    config_dir: &Path,
    resolver: &mut dyn PointResolver,
) -> Result<Box<dyn Driver>, Iec61850ConfigError> {
    build_with_backend(cfg, config_dir, resolver, Box::new(RsBackend::new()))
        .map(|d| Box::new(d) as Box<dyn Driver>)
}

/// [`build`] with another MMS client, returning the concrete type.
pub fn build_with_backend(
    cfg: &Iec61850Config,
    config_dir: &Path,
    resolver: &mut dyn PointResolver,
    backend: Box<dyn MmsBackend>,
) -> Result<Iec61850Driver, Iec61850ConfigError> {
    let plan = cfg.validate(config_dir)?;
    let ids = plan
        .points
        .iter()
        .map(|p| resolver.resolve(&format!("{}/{}", cfg.name, p.name)))
        .collect();
    Ok(Iec61850Driver::new(plan, ids, backend))
}
