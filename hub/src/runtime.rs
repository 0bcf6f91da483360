//! A running hub: starts the pieces in order, exposes the bound addresses,
//! and shuts down in order.
//!
//! Start: certificate authority and broker certificates, database (with
//! migrations), the first administrator (when there is none), API and MQTT
//! listeners, the embedded broker on loopback
//! (waiting until it listens), then the TLS front, ingest, broker-meter,
//! preventive-maintenance scheduler and API tasks. Stop (signal, [`RunningHub::shutdown`]
//! or a fatal error): cancel the token so that the API stops accepting and
//! ingest stops reading, let the ingest transaction in flight commit and
//! its acks go out, wait for every task, close the database.
//!
//! rumqttd cannot be stopped: its thread ends with the process. An
//! in-process hub that was shut down therefore leaves its (loopback-only)
//! broker running until the process exits; the public listener is closed.

use crate::api::{self, AppState};
use crate::auth::{self, AdminBootstrap, AuthSettings, BootstrapError, Hasher};
use crate::broker::{self, BrokerError};
use crate::config::Config;
use crate::front::{Front, FrontError};
use crate::ingest;
use crate::metrics::HubMetrics;
use crate::pki::{Authority, PkiError};
use crate::store::{Store, StoreError};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("certificates: {0}")]
    Pki(#[from] PkiError),
    #[error("database.url: {0}")]
    DatabaseUrl(String),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("first administrator: {0}")]
    Admin(#[from] BootstrapError),
    #[error("{0}")]
    Broker(#[from] BrokerError),
    #[error("broker.listen {addr}")]
    MqttBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("MQTT TLS front: {0}")]
    Front(#[from] FrontError),
    #[error("api.listen {addr}")]
    ApiBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("ready file {path}")]
    ReadyFile {
        path: PathBuf,
        #[source]
        source: PkiError,
    },
}

/// The hub stopped because something it depends on failed.
#[derive(Debug, thiserror::Error)]
#[error("the hub stopped: {0}")]
pub struct HubFailed(pub String);

/// What [`start_with`] takes besides the configuration file.
#[derive(Clone, Default)]
pub struct StartOptions {
    /// Password of the first administrator (`DCMMS_ADMIN_PASSWORD`), used
    /// only when no administrator exists; `None` generates one.
    pub admin_password: Option<String>,
    /// Password hashing; `None` is the production cost.
    pub hasher: Option<Hasher>,
}

impl std::fmt::Debug for StartOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartOptions")
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<secret>"),
            )
            .field("hasher", &self.hasher)
            .finish()
    }
}

/// A hub started in this process.
#[derive(Debug)]
pub struct RunningHub {
    api_addr: SocketAddr,
    mqtt_addr: SocketAddr,
    state_dir: PathBuf,
    ca_path: PathBuf,
    store: Store,
    metrics: HubMetrics,
    token: CancellationToken,
    tracker: TaskTracker,
    fatal: Arc<Mutex<Option<String>>>,
    generated_admin_password: Mutex<Option<String>>,
}

/// An address clients on this machine can connect to: the unspecified
/// address (listen on all) becomes loopback.
fn connectable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// Starts a hub from a validated configuration with default options (a
/// generated first-administrator password, see
/// [`RunningHub::take_generated_admin_password`]); returns once every
/// listener is bound.
pub async fn start(config: Config) -> Result<RunningHub, StartError> {
    start_with(config, StartOptions::default()).await
}

/// [`start`] with options.
pub async fn start_with(config: Config, options: StartOptions) -> Result<RunningHub, StartError> {
    let ca = Arc::new(Authority::open_or_create(&config.state_dir)?);
    let public_files = ca.ensure_server_cert(&config.broker.hostnames)?;
    let internal_files = ca.ensure_internal_cert()?;
    let location = config
        .database_location()
        .map_err(StartError::DatabaseUrl)?;
    let store = Store::open(&location, config.database.max_connections).await?;
    tracing::info!(database = store.kind(), "database ready");
    let hasher = options.hasher.unwrap_or_default();
    let generated =
        match auth::ensure_admin(&store, &hasher, options.admin_password.as_deref()).await {
            Ok(AdminBootstrap::Existing) => None,
            Ok(AdminBootstrap::Created { generated }) => generated,
            Err(e) => {
                store.close().await;
                return Err(e.into());
            }
        };
    let metrics = HubMetrics::new();

    let api_listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .map_err(|source| StartError::ApiBind {
            addr: config.api.listen,
            source,
        })?;
    let api_addr = api_listener
        .local_addr()
        .map_err(|source| StartError::ApiBind {
            addr: config.api.listen,
            source,
        })?;
    let mqtt_listener = tokio::net::TcpListener::bind(config.broker.listen)
        .await
        .map_err(|source| StartError::MqttBind {
            addr: config.broker.listen,
            source,
        })?;
    let mqtt_addr = mqtt_listener
        .local_addr()
        .map_err(|source| StartError::MqttBind {
            addr: config.broker.listen,
            source,
        })?;
    let internal = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let started = broker::start(&config.broker, internal, &internal_files).await?;
    let front = Front::new(
        mqtt_listener,
        &public_files,
        ca.clone(),
        started.addr,
        Duration::from_millis(config.broker.connection_timeout_ms as u64),
        config.broker.max_connections,
        metrics.clone(),
    )?;

    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let fatal = Arc::new(Mutex::new(None));

    ingest::worker::spawn(
        &tracker,
        token.clone(),
        started.link_tx,
        started.link_rx,
        store.clone(),
        metrics.clone(),
        &config.ingest,
    );
    tracker.spawn(broker::watch(
        started.meters,
        started.alerts,
        metrics.clone(),
        token.clone(),
    ));
    tracker.spawn(front.run(tracker.clone(), token.clone()));
    {
        let (token, fatal, exited) = (token.clone(), fatal.clone(), started.exited);
        tracker.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                why = exited => {
                    let why = why.unwrap_or_else(|_| "the broker thread ended".to_owned());
                    tracing::error!(%why, "MQTT broker stopped; stopping the hub");
                    if let Ok(mut f) = fatal.lock() {
                        f.get_or_insert(format!("MQTT broker: {why}"));
                    }
                    token.cancel();
                }
            }
        });
    }
    if config.cmms.pm_interval_s > 0 {
        crate::pm_scheduler::spawn(
            &tracker,
            token.clone(),
            store.clone(),
            metrics.clone(),
            Duration::from_secs(u64::from(config.cmms.pm_interval_s)),
        );
    }
    {
        let (token, metrics) = (token.clone(), metrics.clone());
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tick.tick() => metrics.run_upkeep(),
                }
            }
        });
    }
    {
        let app = api::app(AppState {
            store: store.clone(),
            metrics: metrics.clone(),
            auth: AuthSettings {
                token_ttl_ms: i64::from(config.api.token_ttl_hours) * 3_600_000,
                hasher,
            },
        });
        let (token, fatal) = (token.clone(), fatal.clone());
        tracker.spawn(async move {
            let shutdown = token.clone().cancelled_owned();
            if let Err(e) = axum::serve(api_listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "API server failed; stopping the hub");
                if let Ok(mut f) = fatal.lock() {
                    f.get_or_insert(format!("API server: {e}"));
                }
                token.cancel();
            }
        });
    }
    tracker.close();

    let hub = RunningHub {
        api_addr: connectable(api_addr),
        mqtt_addr: connectable(mqtt_addr),
        state_dir: config.state_dir.clone(),
        ca_path: ca.ca_path(),
        store,
        metrics,
        token,
        tracker,
        fatal,
        generated_admin_password: Mutex::new(generated),
    };
    tracing::info!(api = %hub.api_addr, mqtt = %hub.mqtt_addr, "hub ready");
    Ok(hub)
}

impl RunningHub {
    /// Where the HTTP API answers.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The password generated for the first administrator at this start,
    /// once: later calls (and later starts) return `None`. Never logged.
    pub fn take_generated_admin_password(&self) -> Option<String> {
        self.generated_admin_password
            .lock()
            .ok()
            .and_then(|mut p| p.take())
    }

    /// Where gateways connect (MQTT over TLS).
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.mqtt_addr
    }

    /// The CA certificate gateways must trust.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn metrics(&self) -> &HubMetrics {
        &self.metrics
    }

    /// Cancelling this token stops the hub (as SIGTERM does).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// The ready-file document: `{"api": "IP:PORT", "mqtt": "IP:PORT", "ca": PATH}`.
    pub fn ready_json(&self) -> serde_json::Value {
        serde_json::json!({
            "api": self.api_addr.to_string(),
            "mqtt": self.mqtt_addr.to_string(),
            "ca": self.ca_path.display().to_string(),
        })
    }

    /// Writes [`Self::ready_json`] to `path` atomically (temp file + rename).
    pub fn write_ready_file(&self, path: &Path) -> Result<(), StartError> {
        let text = self.ready_json().to_string();
        crate::pki::write_atomic(path, text.as_bytes(), false).map_err(|source| {
            StartError::ReadyFile {
                path: path.to_owned(),
                source,
            }
        })
    }

    /// Resolves when the hub starts stopping (token cancelled by a caller
    /// or by a fatal error).
    pub async fn stopping(&self) {
        self.token.cancelled().await
    }

    /// Stops in order and waits for every task; the database is closed
    /// last. Errs if the hub had stopped because something failed.
    pub async fn shutdown(self) -> Result<(), HubFailed> {
        self.token.cancel();
        self.tracker.wait().await;
        self.store.close().await;
        tracing::info!("hub stopped");
        match self.fatal.lock().ok().and_then(|mut f| f.take()) {
            Some(why) => Err(HubFailed(why)),
            None => Ok(()),
        }
    }
}
