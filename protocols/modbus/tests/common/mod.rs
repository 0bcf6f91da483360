//! Helpers shared by the driver's integration tests.
#![allow(dead_code)]

pub mod peer;
pub mod rtu_peer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dcmms_modbus::ModbusTcpConfig;
use dcmms_protocols_core::{DeviceStats, DeviceStatsSnapshot, PointResolver};
use dcmms_shared::{PointId, Sample};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Interns names to dense ids, like the gateway does.
#[derive(Default)]
pub struct Names(pub HashMap<String, PointId>);

impl PointResolver for Names {
    fn resolve(&mut self, name: &str) -> PointId {
        let next = PointId(self.0.len() as u32);
        *self.0.entry(name.to_owned()).or_insert(next)
    }
}

impl Names {
    pub fn id(&self, name: &str) -> PointId {
        self.0[name]
    }
}

/// What a driver produced during a run.
pub struct Run {
    pub batches: Vec<(std::time::Instant, Vec<Sample>)>,
    pub stats: DeviceStatsSnapshot,
    pub names: Names,
    /// The driver was still running when it was cancelled.
    pub ran_until_cancelled: bool,
    /// Its `connected` flag just before it was cancelled.
    pub connected_before_cancel: bool,
}

impl Run {
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.batches.iter().flat_map(|(_, b)| b.iter())
    }
}

/// Builds the driver for `cfg`, runs it for `duration`, cancels it and checks
/// that it stops promptly.
pub async fn run_driver(cfg: &ModbusTcpConfig, duration: Duration) -> Run {
    let mut names = Names::default();
    let driver = dcmms_modbus::build(cfg, Path::new("."), &mut names).expect("config is valid");
    let stats: Arc<DeviceStats> = driver.stats();
    let (tx, mut rx) = mpsc::channel(1024);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(driver.run(tx, cancel.clone()));
    let collect = tokio::spawn(async move {
        let mut batches = Vec::new();
        while let Some(b) = rx.recv().await {
            batches.push((std::time::Instant::now(), b));
        }
        batches
    });
    tokio::time::sleep(duration).await;
    let ran_until_cancelled = !task.is_finished();
    let connected_before_cancel = stats.snapshot().connected;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("driver stops within 2 s of cancellation")
        .expect("driver task does not panic");
    let batches = collect.await.expect("collector");
    Run {
        batches,
        stats: stats.snapshot(),
        names,
        ran_until_cancelled,
        connected_before_cancel,
    }
}
