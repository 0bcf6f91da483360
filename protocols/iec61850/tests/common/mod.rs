//! Helpers shared by the driver's integration tests.
#![allow(dead_code)]

pub mod peer;
pub mod proxy;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dcmms_iec61850::{
    build_with_backend, Iec61850Config, MmsBackend, ReportStats, ReportStatsSnapshot, RsBackend,
};
use dcmms_protocols_core::{
    unix_time_ms, CommandSender, DeviceStats, DeviceStatsSnapshot, Driver, PointResolver,
};
use dcmms_shared::{PointId, Sample};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Interns names to dense ids, like the gateway does.
#[derive(Default, Clone)]
pub struct Names(pub HashMap<String, PointId>);

impl PointResolver for Names {
    fn resolve(&mut self, name: &str) -> PointId {
        let next = PointId(self.0.len() as u32);
        *self.0.entry(name.to_owned()).or_insert(next)
    }
}

impl Names {
    pub fn id(&self, name: &str) -> PointId {
        *self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("no point {name}"))
    }
}

/// One batch as the gateway would receive it, with its arrival time.
#[derive(Debug, Clone)]
pub struct Batch {
    pub arrived: Instant,
    pub arrived_ms: i64,
    pub samples: Vec<Sample>,
}

/// A driver running in the background.
pub struct Running {
    pub names: Names,
    pub batches: Arc<Mutex<Vec<Batch>>>,
    pub stats: Arc<DeviceStats>,
    pub reports: Arc<ReportStats>,
    pub commands: Option<CommandSender>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    collector: JoinHandle<()>,
}

/// What a driver produced before it was stopped.
pub struct Finished {
    pub names: Names,
    pub batches: Vec<Batch>,
    pub stats: DeviceStatsSnapshot,
    pub reports: ReportStatsSnapshot,
}

impl Finished {
    pub fn samples_of<'a>(&'a self, id: PointId) -> impl Iterator<Item = &'a Sample> + 'a {
        self.batches
            .iter()
            .flat_map(|b| b.samples.iter())
            .filter(move |s| s.point == id)
    }
}

impl Running {
    pub fn start(cfg: &Iec61850Config) -> Running {
        Running::start_with(cfg, Box::new(RsBackend::new()))
    }

    pub fn start_with(cfg: &Iec61850Config, backend: Box<dyn MmsBackend>) -> Running {
        let mut names = Names::default();
        let driver =
            build_with_backend(cfg, Path::new("."), &mut names, backend).expect("config is valid");
        let stats = driver.stats();
        let reports = driver.report_stats();
        let commands = driver.commands();
        let (tx, mut rx) = mpsc::channel(1024);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(Box::new(driver).run(tx, cancel.clone()));
        let batches = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&batches);
        let collector = tokio::spawn(async move {
            while let Some(samples) = rx.recv().await {
                let b = Batch {
                    arrived: Instant::now(),
                    arrived_ms: unix_time_ms(std::time::SystemTime::now()),
                    samples,
                };
                sink.lock().expect("lock").push(b);
            }
        });
        Running {
            names,
            batches,
            stats,
            reports,
            commands,
            cancel,
            task,
            collector,
        }
    }

    /// Waits (polling, bounded) until `pred` holds for the batches so far.
    pub async fn wait_for(&self, limit: Duration, what: &str, pred: impl Fn(&[Batch]) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            if pred(&self.batches.lock().expect("lock")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the report counters satisfy `pred`.
    pub async fn wait_reports(
        &self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&ReportStatsSnapshot) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            let snap = self.reports.snapshot();
            if pred(&snap) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}: {snap:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Cancels the driver and checks that it stops promptly.
    pub async fn stop(self) -> Finished {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(3), self.task)
            .await
            .expect("driver stops within 3 s of cancellation")
            .expect("driver task does not panic");
        // The session thread holds the sample sender; it ends with the thread.
        let _ = tokio::time::timeout(Duration::from_secs(3), self.collector).await;
        let batches = self.batches.lock().expect("lock").clone();
        Finished {
            names: self.names,
            batches,
            stats: self.stats.snapshot(),
            reports: self.reports.snapshot(),
        }
    }
}
