//! The DNP3 master for one outstation: a TCP master channel and one
//! association of the `dnp3` stack, run on the gateway's tokio runtime.
//!
//! The stack owns the connection, the startup sequence, the polls and the
//! reconnects (with our jittered backoff, `JitteredConnect`). Its read
//! callback converts each response fragment into one `Vec<Sample>` in the
//! order of the response and hands it to the gateway. The run loop here
//! only reacts to link events (`Health`: Bad samples on loss, a fresh
//! integrity poll on recovery), serves the command port (each command in
//! its own task, so a slow SELECT/OPERATE never holds up the rest), and
//! shuts the channel down on cancellation or when the gateway drops the
//! sample channel. It never returns because of a device error.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use dcmms_protocols_core::{
    command_channel, Backoff, CommandError, CommandPort, CommandRequest, CommandSender,
    DeviceStats, Driver, DriverFuture,
};
use dcmms_shared::{PointId, Sample};
use dnp3::app::{MaybeAsync, RetryStrategy, Timeout};
use dnp3::link::{EndpointAddress, LinkErrorMode};
use dnp3::master::{
    AssociationConfig, AssociationHandle, Classes, EventClasses, MasterChannelConfig, PollHandle,
    ReadRequest, TimeSyncProcedure,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::command::{map_command_error, plan_command, to_request, FailureClass};
use crate::config::{Dnp3Config, TimeSync};
use crate::handlers::{
    count_failure, JitteredConnect, MeasurementSink, ReadAdapter, StateListener, SystemClock,
    TaskObserver,
};
use crate::health::{Health, HealthAction};
use crate::measurement::{Measurement, PointTable};
use crate::point::Dnp3Point;

/// A built DNP3 outstation, ready to run.
#[derive(Debug)]
pub struct Dnp3Driver {
    cfg: Dnp3Config,
    master: EndpointAddress,
    outstation: EndpointAddress,
    points: Arc<Vec<Dnp3Point>>,
    table: Arc<PointTable>,
    stats: Arc<DeviceStats>,
    commands: Option<(CommandSender, CommandPort)>,
}

impl Dnp3Driver {
    /// `ids[i]` is the resolved id of `points[i]` (`None` for command
    /// points); `cfg` was validated.
    pub(crate) fn new(
        cfg: Dnp3Config,
        master: EndpointAddress,
        outstation: EndpointAddress,
        points: Vec<Dnp3Point>,
        ids: &[Option<PointId>],
    ) -> Self {
        let table = PointTable::new(&points, ids);
        let commands = points.iter().any(|p| p.writable).then(command_channel);
        Dnp3Driver {
            cfg,
            master,
            outstation,
            points: Arc::new(points),
            table: Arc::new(table),
            stats: Arc::new(DeviceStats::new()),
            commands,
        }
    }

    /// The validated points, in the order their ids were resolved.
    pub fn points(&self) -> &[Dnp3Point] {
        &self.points
    }
}

/// The association settings derived from the config.
pub(crate) fn association_config(cfg: &Dnp3Config) -> AssociationConfig {
    let mut a = AssociationConfig::new(
        // Silence unsolicited reporting until the integrity poll is done...
        EventClasses::all(),
        // ...then turn it on, unless the config wants polls only.
        if cfg.unsolicited {
            EventClasses::all()
        } else {
            EventClasses::none()
        },
        Classes::all(),
        // Read events as soon as a response's IIN bits say there are some.
        EventClasses::all(),
    );
    a.response_timeout = Timeout::saturating(Duration::from_millis(cfg.response_timeout_ms));
    a.auto_time_sync = match cfg.time_sync {
        TimeSync::None => None,
        TimeSync::Lan => Some(TimeSyncProcedure::Lan),
        TimeSync::NonLan => Some(TimeSyncProcedure::NonLan),
    };
    a.auto_tasks_retry_strategy = RetryStrategy::new(
        Duration::from_millis(cfg.backoff_min_ms),
        Duration::from_millis(cfg.backoff_max_ms),
    );
    a.auto_integrity_scan_on_buffer_overflow = true;
    a
}

/// The periodic reads: the integrity poll, and one class poll per distinct
/// interval (classes with the same interval share a request).
pub(crate) fn periodic_reads(cfg: &Dnp3Config) -> Vec<(ReadRequest, Duration)> {
    let mut reads = Vec::new();
    if cfg.integrity_poll_interval_ms > 0 {
        reads.push((
            ReadRequest::class_scan(Classes::all()),
            Duration::from_millis(cfg.integrity_poll_interval_ms),
        ));
    }
    let mut by_interval: BTreeMap<u64, EventClasses> = BTreeMap::new();
    for (class, ms) in [
        (1, cfg.class1_poll_interval_ms),
        (2, cfg.class2_poll_interval_ms),
        (3, cfg.class3_poll_interval_ms),
    ] {
        if ms == 0 {
            continue;
        }
        let e = by_interval.entry(ms).or_insert_with(EventClasses::none);
        match class {
            1 => e.class1 = true,
            2 => e.class2 = true,
            _ => e.class3 = true,
        }
    }
    for (ms, classes) in by_interval {
        reads.push((
            ReadRequest::class_scan(Classes::new(false, classes)),
            Duration::from_millis(ms),
        ));
    }
    reads
}

/// Hands the samples of each response fragment to the gateway.
struct SampleSink {
    table: Arc<PointTable>,
    sink: mpsc::Sender<Vec<Sample>>,
    cancel: CancellationToken,
    batch: Vec<Sample>,
    received_ms: i64,
}

impl MeasurementSink for SampleSink {
    fn begin(&mut self, received_ms: i64) {
        self.received_ms = received_ms;
        self.batch.clear();
    }

    fn push(&mut self, m: Measurement) {
        if let Some(s) = self.table.sample(&m, self.received_ms) {
            self.batch.push(s);
        }
    }

    fn end(&mut self) -> MaybeAsync<()> {
        if self.batch.is_empty() {
            return MaybeAsync::ready(());
        }
        let batch = std::mem::take(&mut self.batch);
        let sink = self.sink.clone();
        let cancel = self.cancel.clone();
        // Waiting here holds the stack until the gateway takes the batch:
        // back-pressure instead of dropping measurements.
        MaybeAsync::asynchronous(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                _ = sink.send(batch) => {}
            }
        })
    }
}

/// The next command, or never when there is no port.
async fn next_command(port: &mut Option<CommandPort>) -> Option<CommandRequest> {
    match port {
        Some(p) => p.rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Dnp3Driver {
    async fn run_loop(mut self, sink: mpsc::Sender<Vec<Sample>>, cancel: CancellationToken) {
        let name = self.cfg.name.clone();
        // Stops the stack's callbacks waiting on the sink when we stop.
        let stop = cancel.child_token();
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let answered = Arc::new(AtomicBool::new(false));
        let connect = JitteredConnect::new(
            name.clone(),
            self.cfg.address.clone(),
            Duration::from_millis(self.cfg.connect_timeout_ms),
            Backoff::new(
                Duration::from_millis(self.cfg.backoff_min_ms),
                Duration::from_millis(self.cfg.backoff_max_ms),
            ),
            Arc::clone(&self.stats),
            Arc::clone(&answered),
        );
        let mut channel = dnp3::tcp::spawn_master_tcp_client_3(
            LinkErrorMode::Close,
            MasterChannelConfig::new(self.master),
            Box::new(connect),
            Box::new(StateListener::new(
                name.clone(),
                Arc::clone(&self.stats),
                events_tx.clone(),
            )),
        );
        let read_handler = ReadAdapter::new(SampleSink {
            table: Arc::clone(&self.table),
            sink: sink.clone(),
            cancel: stop.clone(),
            batch: Vec::new(),
            received_ms: 0,
        });
        let observer = TaskObserver::new(
            name.clone(),
            Arc::clone(&self.stats),
            events_tx,
            Arc::clone(&answered),
        );
        let mut port = self.commands.take().map(|(_, port)| port);
        info!(device = %name, address = %self.cfg.address, points = self.points.len(),
              "dnp3 outstation starting");

        let association = channel
            .add_association(
                self.outstation,
                association_config(&self.cfg),
                Box::new(read_handler),
                Box::new(SystemClock),
                Box::new(observer),
            )
            .await;
        let mut association = match association {
            Ok(a) => a,
            Err(e) => {
                // Only a stack that already shut down gets here.
                warn!(device = %name, error = %e, "dnp3 association could not be added");
                refuse_commands_until_cancelled(&mut port, &cancel, &sink).await;
                return;
            }
        };
        let mut polls: Vec<PollHandle> = Vec::new();
        for (request, period) in periodic_reads(&self.cfg) {
            match association.add_poll(request, period).await {
                Ok(handle) => polls.push(handle),
                Err(e) => warn!(device = %name, error = %e, "dnp3 poll could not be added"),
            }
        }
        if let Err(e) = channel.enable().await {
            warn!(device = %name, error = %e, "dnp3 channel could not be enabled");
        }

        let mut health = Health::default();
        let mut tasks: JoinSet<()> = JoinSet::new();
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = sink.closed() => {
                    debug!(device = %name, "sample channel closed");
                    break;
                }
                Some(event) = events.recv() => match health.on_event(event) {
                    HealthAction::Nothing => {}
                    HealthAction::MarkBad { at_ms } => {
                        if self.table.is_empty() {
                            continue;
                        }
                        tokio::select! {
                            biased;
                            () = cancel.cancelled() => break,
                            sent = sink.send(self.table.all_bad(at_ms)) => if sent.is_err() { break },
                        }
                    }
                    HealthAction::IntegrityPoll => {
                        let mut a = association.clone();
                        tasks.spawn(async move {
                            let _ = a.read(ReadRequest::class_scan(Classes::all())).await;
                        });
                    }
                },
                req = next_command(&mut port) => match req {
                    Some(req) => {
                        let mut a = association.clone();
                        let points = Arc::clone(&self.points);
                        let stats = Arc::clone(&self.stats);
                        let timeout = command_timeout(self.cfg.response_timeout_ms);
                        let device = name.clone();
                        tasks.spawn(async move {
                            let result = execute(&mut a, &points, &req, timeout, &stats).await;
                            match &result {
                                Ok(()) => info!(device = %device, point = %req.command.point,
                                                value = %req.command.value, "dnp3 command done"),
                                Err(e) => warn!(device = %device, point = %req.command.point,
                                                value = %req.command.value, error = %e,
                                                "dnp3 command refused"),
                            }
                            req.finish(result);
                        });
                    }
                    None => port = None,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        stop.cancel();
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        drop(polls);
        // Dropping every handle ends the stack's task and closes the socket.
        let _ = tokio::time::timeout(Duration::from_secs(1), association.remove()).await;
        drop(channel);
        self.stats.set_connected(false);
        info!(device = %name, "dnp3 outstation stopped");
    }
}

/// Without an association, answer commands until told to stop.
async fn refuse_commands_until_cancelled(
    port: &mut Option<CommandPort>,
    cancel: &CancellationToken,
    sink: &mpsc::Sender<Vec<Sample>>,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = sink.closed() => return,
            req = next_command(port) => match req {
                Some(req) => req.finish(Err(CommandError::NotConnected)),
                None => *port = None,
            },
        }
    }
}

/// SELECT and OPERATE each wait up to the response timeout; allow both and
/// a margin before giving up on the stack.
fn command_timeout(response_timeout_ms: u64) -> Duration {
    Duration::from_millis(response_timeout_ms.saturating_mul(2).saturating_add(1000))
}

/// Runs one command on the association.
async fn execute(
    association: &mut AssociationHandle,
    points: &[Dnp3Point],
    req: &CommandRequest,
    timeout: Duration,
    stats: &DeviceStats,
) -> Result<(), CommandError> {
    let planned = plan_command(points, &req.command)?;
    let (mode, headers) = to_request(&planned);
    match tokio::time::timeout(timeout, association.operate(mode, headers)).await {
        Err(_) => {
            DeviceStats::bump(&stats.timeouts);
            Err(CommandError::Timeout)
        }
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            let (err, class) = map_command_error(&e);
            // Task failures were counted by the association's observer;
            // refusals and mismatched answers come back as results only.
            if matches!(e, dnp3::master::CommandError::Response(_)) {
                count_failure(stats, class);
            } else if class == FailureClass::Local {
                debug!(error = %e, "dnp3 command not sent");
            }
            Err(err)
        }
    }
}

impl Driver for Dnp3Driver {
    fn device(&self) -> &str {
        &self.cfg.name
    }

    fn stats(&self) -> Arc<DeviceStats> {
        Arc::clone(&self.stats)
    }

    /// A sender when at least one point is `writable`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_polls_with_equal_intervals_share_a_request() {
        let mut cfg = Dnp3Config::new("d", "h:1");
        cfg.class1_poll_interval_ms = 1000;
        cfg.class2_poll_interval_ms = 5000;
        cfg.class3_poll_interval_ms = 1000;
        let reads = periodic_reads(&cfg);
        assert_eq!(reads.len(), 3);
        assert_eq!(reads[0].1, Duration::from_secs(300));
        assert_eq!(
            format!("{:?}", reads[1].0),
            format!(
                "{:?}",
                ReadRequest::class_scan(Classes::new(false, EventClasses::new(true, false, true)))
            )
        );
        assert_eq!(reads[1].1, Duration::from_secs(1));
        assert_eq!(reads[2].1, Duration::from_secs(5));

        cfg.integrity_poll_interval_ms = 0;
        cfg.class1_poll_interval_ms = 0;
        cfg.class2_poll_interval_ms = 0;
        cfg.class3_poll_interval_ms = 0;
        assert!(periodic_reads(&cfg).is_empty());
    }

    #[test]
    fn association_follows_the_config() {
        let mut cfg = Dnp3Config::new("d", "h:1");
        let a = association_config(&cfg);
        assert_eq!(a.enable_unsol_classes, EventClasses::all());
        assert_eq!(a.auto_time_sync, Some(TimeSyncProcedure::Lan));
        assert_eq!(Duration::from(a.response_timeout), Duration::from_secs(5));
        cfg.unsolicited = false;
        cfg.time_sync = TimeSync::None;
        let a = association_config(&cfg);
        assert_eq!(a.enable_unsol_classes, EventClasses::none());
        assert_eq!(a.disable_unsol_classes, EventClasses::all());
        assert_eq!(a.auto_time_sync, None);
        assert_eq!(command_timeout(5000), Duration::from_secs(11));
    }
}
