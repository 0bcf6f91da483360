//! OPC UA client driver over `async-opcua` (pure-Rust crypto).
//!
//! This crate owns everything OPC UA: the `[[opcua]]` config with its
//! security, identity and point maps ([`OpcUaConfig`], [`point_map`]), the
//! sans-IO conversions ([`convert`]), opening and watching a session
//! ([`session`]), the [`Driver`] with subscriptions, polled reads and
//! writes ([`driver`]), and discovery by browsing a server's address space
//! into a point map ([`browse`]).

pub mod browse;
pub mod config;
pub mod convert;
pub mod driver;
pub mod point_map;
pub mod session;

use std::path::Path;

use dcmms_protocols_core::{Driver, PointResolver};

pub use browse::{browse, BrowseError, BrowseOptions, BrowseOutcome, BrowsedVariable};
pub use config::{
    ConnectPlan, DeadbandKind, DevicePlan, OpcUaConfig, OpcUaConfigError, PointConfig, PointMode,
    SecurityModeName, SecurityPolicyName, WriteType,
};
pub use driver::{OpcUaDriver, SubscriptionStats, SubscriptionStatsSnapshot};
pub use point_map::{load_point_map, write_points_csv, write_points_toml, PointMapError};
pub use session::{connect, create_client_certificate, ConnectError, Connection};

/// Validates `cfg`, interns its points as `<device>/<point>` through
/// `resolver`, and returns the driver. `config_dir` is the folder
/// `points_file` and `pki_dir` are relative to. Nothing is connected until
/// the driver runs.
pub fn build(
    cfg: &OpcUaConfig,
    config_dir: &Path,
    resolver: &mut dyn PointResolver,
) -> Result<Box<dyn Driver>, OpcUaConfigError> {
    build_driver(cfg, config_dir, resolver).map(|d| Box::new(d) as Box<dyn Driver>)
}

/// [`build`], returning the concrete type (for its subscription counters).
pub fn build_driver(
    cfg: &OpcUaConfig,
    config_dir: &Path,
    resolver: &mut dyn PointResolver,
) -> Result<OpcUaDriver, OpcUaConfigError> {
    let plan = cfg.validate(config_dir)?;
    let ids = plan
        .points
        .iter()
        .map(|p| resolver.resolve(&format!("{}/{}", cfg.name, p.name)))
        .collect();
    Ok(OpcUaDriver::new(plan, ids))
}
