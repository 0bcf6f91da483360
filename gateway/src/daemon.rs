//! Wiring of the daemon and its ordered shutdown: stop the drivers, let the
//! pipeline commit what it holds, close the uplink, then the HTTP server.

use crate::config::LoadedConfig;
use crate::http::{self, AppState};
use crate::pipeline::{self, Interner, PipelineConfig};
use crate::ring::RingBuffer;
use crate::uplink::{self, UplinkHealth, UplinkSettings};
use anyhow::Context;
use dcmms_protocols_core::{CommandSender, DeviceStats, Driver};
use dcmms_shared::service::ServiceNotifier;
use dcmms_shared::wire::{DeviceHealth, GatewayStatus};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// 2024-01-01T00:00:00Z in microseconds.
const MIN_PLAUSIBLE_US: u64 = 1_704_067_200_000_000;

/// One device as the status endpoint, the metrics and the command endpoint
/// see it. A Modbus RTU line runs as one driver but shows one device per
/// unit; every other driver is one device.
#[derive(Debug, Clone)]
pub struct DeviceEntry {
    pub name: String,
    /// `modbus_tcp`, `modbus_rtu`, `iec61850`, `opcua` or `dnp3`.
    pub protocol: &'static str,
    pub stats: Arc<DeviceStats>,
    /// Present when the device has writable points.
    pub commands: Option<CommandSender>,
}

/// Every configured driver, built but not started, and its devices.
pub struct BuiltDrivers {
    pub drivers: Vec<Box<dyn Driver>>,
    pub devices: Vec<DeviceEntry>,
}

impl std::fmt::Debug for BuiltDrivers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltDrivers")
            .field("drivers", &self.drivers.len())
            .field("devices", &self.devices)
            .finish()
    }
}

impl BuiltDrivers {
    fn push(&mut self, protocol: &'static str, driver: Box<dyn Driver>) {
        self.devices.push(DeviceEntry {
            name: driver.device().to_owned(),
            protocol,
            stats: driver.stats(),
            commands: driver.commands(),
        });
        self.drivers.push(driver);
    }
}

/// Builds every configured driver of every protocol, without starting
/// anything (also what `--check-config` runs). Errors name the config file
/// and the device.
pub fn build_all(cfg: &LoadedConfig, interner: &mut Interner) -> anyhow::Result<BuiltDrivers> {
    let file = cfg.path.display();
    let mut built = BuiltDrivers {
        drivers: Vec::new(),
        devices: Vec::new(),
    };
    for d in &cfg.config.modbus {
        let driver = dcmms_modbus::build(d, &cfg.dir, interner)
            .with_context(|| format!("{file}: modbus device {:?}", d.name))?;
        built.push("modbus_tcp", driver);
    }
    for bus in &cfg.config.modbus_rtu {
        let driver = dcmms_modbus::build_rtu(bus, &cfg.dir, interner)
            .with_context(|| format!("{file}: modbus_rtu line {:?}", bus.name))?;
        // The line's own counters are the sums of its units': only the
        // units are shown, so nothing is counted twice.
        for unit in driver.devices() {
            built.devices.push(DeviceEntry {
                name: unit.name,
                protocol: "modbus_rtu",
                stats: unit.stats,
                commands: unit.commands,
            });
        }
        built.drivers.push(Box::new(driver));
    }
    for d in &cfg.config.iec61850 {
        let driver = dcmms_iec61850::build(d, &cfg.dir, interner)
            .with_context(|| format!("{file}: iec61850 device {:?}", d.name))?;
        built.push("iec61850", driver);
    }
    for d in &cfg.config.opcua {
        let driver = dcmms_opcua::build(d, &cfg.dir, interner)
            .with_context(|| format!("{file}: opcua device {:?}", d.name))?;
        built.push("opcua", driver);
    }
    #[cfg(feature = "dnp3")]
    for d in &cfg.config.dnp3 {
        let driver = dcmms_dnp3::build(d, &cfg.dir, interner)
            .with_context(|| format!("{file}: dnp3 device {:?}", d.name))?;
        built.push("dnp3", driver);
    }
    Ok(built)
}

/// The drivers of [`build_all`] alone.
pub fn build_drivers(
    cfg: &LoadedConfig,
    interner: &mut Interner,
) -> anyhow::Result<Vec<Box<dyn Driver>>> {
    build_all(cfg, interner).map(|b| b.drivers)
}

/// Runs the gateway until `cancel` fires, then shuts down in order.
pub async fn run(
    cfg: LoadedConfig,
    ready_file: Option<&Path>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = crate::metrics::install();
    let service = Arc::new(ServiceNotifier::from_env());
    let started_ms = pipeline::now_ms();
    let state_dir = cfg.state_dir();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create state dir {}", state_dir.display()))?;
    let ring_cfg = cfg.ring_config();
    let ring_path = ring_cfg.path.clone();
    // Opening checks the whole file after a power cut; a large buffer on slow
    // flash may need longer than the default start timeout.
    service.extend_timeout(Duration::from_secs(300));
    service.status("opening the buffer");
    let ring = Arc::new(
        RingBuffer::open(ring_cfg)
            .with_context(|| format!("cannot open the buffer {}", ring_path.display()))?,
    );
    let now_us = pipeline::now_ms().saturating_mul(1000).max(1) as u64;
    if ring.start_sequences_at(now_us)? {
        if now_us < MIN_PLAUSIBLE_US {
            tracing::warn!("the clock reads before 2024: a new buffer's sequences may collide with an earlier buffer's at the hub");
        }
        tracing::info!(
            first_seq = now_us,
            "new buffer: sequences start at its creation time"
        );
    }
    let opened = ring.stats();
    tracing::info!(
        path = %ring_path.display(),
        blocks = opened.blocks,
        bytes = opened.bytes,
        next_seq = opened.next_seq,
        "buffer open"
    );

    let mut interner = Interner::from_catalog(ring.catalog()?);
    let BuiltDrivers {
        drivers,
        devices: entries,
    } = build_all(&cfg, &mut interner)?;
    interner.persist(&ring)?;
    tracing::info!(
        devices = entries.len(),
        drivers = drivers.len(),
        points = interner.len(),
        "drivers built"
    );

    let devices: Arc<Vec<_>> = Arc::new(
        entries
            .iter()
            .map(|d| crate::http::DeviceRow {
                name: d.name.clone(),
                protocol: d.protocol,
                stats: d.stats.clone(),
            })
            .collect(),
    );
    let senders: std::collections::HashMap<_, _> = entries
        .iter()
        .filter_map(|d| d.commands.clone().map(|s| (d.name.clone(), s)))
        .collect();
    let command_log = crate::commands::CommandLog::open(&state_dir.join("commands.jsonl"))
        .with_context(|| format!("cannot open the command log in {}", state_dir.display()))?;
    let commands = Arc::new(crate::commands::CommandCenter::new(
        &cfg.config.commands,
        senders,
        command_log,
    ));
    tracing::info!(
        operators = cfg.config.commands.operators.len(),
        devices = ?commands.devices(),
        "commands: devices with writable points"
    );
    let uplink_health = Arc::new(UplinkHealth::default());
    let state = AppState {
        site: cfg.config.site.clone(),
        gateway: cfg.config.gateway.clone(),
        ring: ring.clone(),
        uplink: uplink_health.clone(),
        devices: devices.clone(),
        metrics,
        started_ms,
        commands,
    };

    let listener = tokio::net::TcpListener::bind(cfg.config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.config.http.listen))?;
    let http_addr = listener.local_addr()?;
    let http_cancel = CancellationToken::new();
    let http_task = {
        let c = http_cancel.clone();
        let app = http::app(state.clone());
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(c.cancelled_owned())
                .await
        })
    };
    tracing::info!(%http_addr, "status and metrics at http://{http_addr}/api/v1/status");

    // Drivers -> pipeline.
    let (tx, rx) = mpsc::channel(1024);
    let (committed_tx, committed_rx) = watch::channel(opened.next_seq.saturating_sub(1));
    let drivers_cancel = CancellationToken::new();
    let mut driver_tasks = Vec::new();
    for d in drivers {
        driver_tasks.push(tokio::spawn(d.run(tx.clone(), drivers_cancel.clone())));
    }
    // Held until shutdown, so a gateway without devices keeps its pipeline
    // (and uplink) running to drain its buffer.
    let pipeline_tx = tx;
    let b = &cfg.config.buffer;
    let heartbeat = Arc::new(pipeline::Heartbeat::default());
    let commit_interval = Duration::from_millis(b.commit_interval_ms);
    let mut pipeline_task = tokio::spawn(pipeline::run(
        ring.clone(),
        rx,
        committed_tx,
        PipelineConfig {
            commit_interval,
            max_block_samples: b.max_block_samples,
            heartbeat: heartbeat.clone(),
        },
    ));

    let u = &cfg.config.uplink;
    let settings = UplinkSettings {
        site: cfg.config.site.clone(),
        gateway: cfg.config.gateway.clone(),
        host: u.host.clone(),
        port: u.port,
        bundle_dir: cfg.resolve(&u.bundle_dir),
        max_in_flight: u.max_in_flight,
        resend_after: Duration::from_millis(u.resend_after_ms),
        keep_alive: Duration::from_secs(u.keep_alive_s),
        status_interval: Duration::from_secs(u.status_interval_s),
        backoff_min: Duration::from_millis(u.backoff_min_ms),
        backoff_max: Duration::from_millis(u.backoff_max_ms),
    };
    let status_state = state.clone();
    let status_fn: uplink::StatusFn = Arc::new(move || gateway_status(&status_state));
    let uplink_cancel = CancellationToken::new();
    let uplink_task = tokio::spawn(uplink::run(
        settings,
        ring.clone(),
        committed_rx,
        status_fn,
        uplink_health,
        uplink_cancel.clone(),
    ));

    if let Some(path) = ready_file {
        write_ready_file(path, http_addr)?;
    }
    let watchdog_cancel = CancellationToken::new();
    let watchdog_task = spawn_watchdog(
        service.clone(),
        heartbeat,
        commit_interval,
        watchdog_cancel.clone(),
    );
    service.ready(&format!(
        "{} devices, {} points, http {http_addr}",
        devices.len(),
        interner.len()
    ));
    tracing::info!("gateway ready");

    let mut pipeline_result = None;
    tokio::select! {
        _ = cancel.cancelled() => tracing::info!("shutting down"),
        r = &mut pipeline_task => {
            tracing::error!("pipeline stopped unexpectedly");
            pipeline_result = Some(r);
        }
    }
    service.stopping("stopping: committing the buffer");
    drivers_cancel.cancel();
    for t in driver_tasks {
        let _ = t.await;
    }
    drop(pipeline_tx);
    let pipeline_result = match pipeline_result {
        Some(r) => r,
        None => pipeline_task.await,
    };
    uplink_cancel.cancel();
    match uplink_task.await {
        Ok(Err(e)) => tracing::error!(error = %e, "uplink failed"),
        Err(e) => tracing::error!(error = %e, "uplink task panicked"),
        Ok(Ok(())) => {}
    }
    http_cancel.cancel();
    let _ = http_task.await;
    watchdog_cancel.cancel();
    if let Some(t) = watchdog_task {
        let _ = t.await;
    }
    let s = ring.stats();
    tracing::info!(
        blocks = s.blocks,
        next_seq = s.next_seq,
        "gateway stopped; buffer committed"
    );
    pipeline_result
        .context("pipeline task")?
        .context("pipeline")
}

/// Pings the service watchdog at half its timeout while the commit loop
/// keeps beating; a loop stuck for a whole timeout stops the pings, and the
/// service manager restarts the daemon. Runs until shutdown has finished, so
/// a long flush is not mistaken for a hang.
fn spawn_watchdog(
    service: Arc<ServiceNotifier>,
    heartbeat: Arc<pipeline::Heartbeat>,
    commit_interval: Duration,
    cancel: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let timeout = service.watchdog_timeout()?;
    let every = service.watchdog_interval()?;
    tracing::info!(
        timeout_ms = timeout.as_millis() as u64,
        "service watchdog enabled"
    );
    let stale_after = timeout + commit_interval;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        let mut warned = false;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let age = heartbeat.age();
            if age < stale_after {
                service.watchdog();
                warned = false;
            } else if !warned {
                tracing::error!(
                    stalled_ms = age.as_millis() as u64,
                    "the commit loop has stalled: no more watchdog pings"
                );
                warned = true;
            }
        }
    }))
}

fn gateway_status(state: &AppState) -> GatewayStatus {
    let s = state.ring.stats();
    GatewayStatus {
        ts_ms: pipeline::now_ms(),
        online: true,
        software_version: env!("CARGO_PKG_VERSION").to_owned(),
        buffer_blocks: s.blocks,
        buffer_bytes: s.bytes,
        oldest_ts_ms: s.oldest_ts_ms,
        next_seq: s.next_seq,
        acked_through: s.acked_through,
        dropped_blocks: s.dropped_blocks,
        dropped_samples: s.dropped_samples,
        devices: state
            .device_snapshots()
            .into_iter()
            .map(|d| DeviceHealth {
                name: d.name,
                connected: d.stats.connected,
                polls: d.stats.polls_ok + d.stats.polls_failed,
                errors: d.stats.polls_failed,
            })
            .collect(),
    }
}

fn write_ready_file(path: &Path, http: std::net::SocketAddr) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let body = serde_json::json!({ "http": http.to_string() }).to_string();
    std::fs::write(&tmp, body).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
