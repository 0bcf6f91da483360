//! The async [`Driver`] face of an IEC 61850 device.
//!
//! `run` starts the device's session loop ([`crate::worker`]) on a dedicated
//! OS thread, because the MMS client blocks, and waits for cancellation or
//! for the thread to end. Samples go from that thread straight into the
//! gateway's channel; commands go from the gateway's [`CommandSender`]
//! straight to the thread, which serves them between its blocking calls.
//! No tokio worker ever waits on the network here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dcmms_protocols_core::{
    command_channel, CommandPort, CommandSender, DeviceStats, Driver, DriverFuture,
};
use dcmms_shared::{PointId, Sample};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::backend::MmsBackend;
use crate::config::DevicePlan;
use crate::worker::{ReportStats, Worker};

/// How long `run` waits for the session thread after cancellation. A
/// blocking call in flight ends within its own timeout; past this bound the
/// thread is left to finish on its own (it stops at its next check).
const STOP_WAIT: Duration = Duration::from_millis(1500);

/// A built IEC 61850 device, ready to run.
pub struct Iec61850Driver {
    plan: DevicePlan,
    ids: Vec<PointId>,
    backend: Box<dyn MmsBackend>,
    stats: Arc<DeviceStats>,
    report_stats: Arc<ReportStats>,
    commands: Option<(CommandSender, CommandPort)>,
}

impl std::fmt::Debug for Iec61850Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iec61850Driver")
            .field("device", &self.plan.name)
            .field("address", &self.plan.address)
            .field("points", &self.plan.points.len())
            .field("reports", &self.plan.reports.len())
            .finish()
    }
}

impl Iec61850Driver {
    pub(crate) fn new(plan: DevicePlan, ids: Vec<PointId>, backend: Box<dyn MmsBackend>) -> Self {
        let commands = plan
            .points
            .iter()
            .any(|p| p.writable && p.command.is_some())
            .then(command_channel);
        Iec61850Driver {
            plan,
            ids,
            backend,
            stats: Arc::new(DeviceStats::new()),
            report_stats: Arc::new(ReportStats::default()),
            commands,
        }
    }

    /// The validated plan (points, reports, timing).
    pub fn plan(&self) -> &DevicePlan {
        &self.plan
    }

    /// Report counters, shared with the running session.
    pub fn report_stats(&self) -> Arc<ReportStats> {
        Arc::clone(&self.report_stats)
    }

    async fn run_loop(self, sink: mpsc::Sender<Vec<Sample>>, cancel: CancellationToken) {
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let name = self.plan.name.clone();
        let port = self.commands.map(|(_, port)| port);
        let worker = Worker::new(
            self.plan,
            self.ids,
            self.backend,
            self.stats,
            self.report_stats,
        );
        let thread_stop = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name(format!("iec61850-{name}"))
            .spawn(move || {
                worker.run(sink, thread_stop, port);
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            error!(device = %name, error = %e, "cannot start the iec61850 session thread");
            return;
        }
        let mut done_rx = done_rx;
        tokio::select! {
            () = cancel.cancelled() => {}
            _ = &mut done_rx => return,
        }
        stop.store(true, Ordering::Relaxed);
        if tokio::time::timeout(STOP_WAIT, done_rx).await.is_err() {
            warn!(device = %name, "iec61850 session still in a blocking call; it stops when that returns");
        }
    }
}

impl Driver for Iec61850Driver {
    fn device(&self) -> &str {
        &self.plan.name
    }

    fn stats(&self) -> Arc<DeviceStats> {
        Arc::clone(&self.stats)
    }

    fn commands(&self) -> Option<CommandSender> {
        self.commands.as_ref().map(|(tx, _)| tx.clone())
    }

    fn run(
        self: Box<Self>,
        sink: mpsc::Sender<Vec<Sample>>,
        cancel: CancellationToken,
    ) -> DriverFuture {
        Box::pin((*self).run_loop(sink, cancel))
    }
}
