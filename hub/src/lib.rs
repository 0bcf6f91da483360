//! dCMMS hub: the fleet side of the gateway <-> hub protocol.
//!
//! One process runs an embedded MQTT broker (rumqttd, TLS with a client
//! certificate per gateway, each gateway confined to its own tenant
//! prefix), the ingest path that commits telemetry blocks exactly once to
//! SQLite or PostgreSQL and acks them, and the REST API.
//!
//! Embedding (tests, demos):
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let state = std::path::Path::new("/tmp/hub-state");
//! let hub = dcmms_hub::start(dcmms_hub::Config::ephemeral(state)).await?;
//! let files = dcmms_hub::enroll(state, "site-1", "gw-1", std::path::Path::new("/tmp/gw-1"), false)?;
//! println!("mqtts://{} api http://{} cert {}", hub.mqtt_addr(), hub.api_addr(), files.cert.display());
//! hub.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod audit;
pub mod auth;
pub mod broker;
pub mod config;
pub mod front;
pub mod ingest;
pub mod metrics;
pub mod pki;
pub mod pm_scheduler;
pub mod runtime;
pub mod store;

pub use config::{Config, ConfigError, DEFAULT_CONFIG_TOML};
pub use metrics::{HubMetrics, RejectReason};
pub use pki::{enroll, Authority, EnrolledFiles, PkiError};
pub use runtime::{start, start_with, HubFailed, RunningHub, StartError, StartOptions};
pub use store::Store;
