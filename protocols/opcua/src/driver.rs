//! The OPC UA [`Driver`]: one session per device, one subscription for the
//! points in `subscribe` mode, polled reads for the points in `poll` mode
//! and for every monitored item the server refused, and writes.
//!
//! The loop: open a session (secure channel, certificate, identity), create
//! the subscription and its monitored items (in chunks), then serve until
//! the connection is lost or the driver is cancelled: notification batches
//! go to the gateway as they come, polled points are read on the poll
//! timer, commands are written between them. A failed connect or a lost
//! connection marks every point Bad, is counted by kind, and is retried
//! after a jittered backoff; while down, commands are refused with
//! `NotConnected`. Each reconnect builds the subscription anew (the
//! library's own session recovery is off), so every reconnect is counted.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dcmms_protocols_core::{
    command_channel, unix_time_ms, Backoff, CommandError, CommandPort, CommandRequest,
    CommandSender, DeviceStats, Driver, DriverFuture,
};
use dcmms_shared::{PointId, Sample};
use opcua::client::{DataChangeCallback, MonitoredItem, Session};
use opcua::types::{
    AttributeId, DataChangeFilter, DataChangeTrigger, DataValue, ExtensionObject,
    MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, ReadValueId, StatusCode,
    TimestampsToReturn, WriteValue,
};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{DeadbandKind, DevicePlan, OpcPoint, PointMode, WriteType};
use crate::convert::{
    classify, command_variant, hint, to_sample, write_type_of, Converted, ErrorKind,
};
use crate::session::{self, Connection};

/// Items per CreateMonitoredItems or Read request: well under the limits
/// servers usually announce (MaxMonitoredItemsPerCall, MaxNodesPerRead).
const CHUNK: usize = 500;

/// Most notifications the server may put in one publish response (well
/// under what the session accepts, [`crate::session::MAX_ARRAY_LENGTH`]).
const MAX_NOTIFICATIONS_PER_PUBLISH: u32 = 20_000;

/// Most notifications handed to the gateway in one batch.
const MAX_BATCH: usize = 8192;

/// Subscription counters of one device, shared with the running task.
#[derive(Debug, Default)]
pub struct SubscriptionStats {
    /// Data-change notifications received (all sessions).
    pub notifications: AtomicU64,
    /// Monitored items the server accepted in the current session.
    pub monitored: AtomicU64,
    /// Points read by polling in the current session (poll mode, or
    /// monitored items the server refused).
    pub polled: AtomicU64,
    /// Monitored items the server refused (all sessions).
    pub refused_items: AtomicU64,
}

/// A copy of [`SubscriptionStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionStatsSnapshot {
    pub notifications: u64,
    pub monitored: u64,
    pub polled: u64,
    pub refused_items: u64,
}

impl SubscriptionStats {
    pub fn snapshot(&self) -> SubscriptionStatsSnapshot {
        SubscriptionStatsSnapshot {
            notifications: self.notifications.load(Ordering::Relaxed),
            monitored: self.monitored.load(Ordering::Relaxed),
            polled: self.polled.load(Ordering::Relaxed),
            refused_items: self.refused_items.load(Ordering::Relaxed),
        }
    }
}

/// A built OPC UA device, ready to run.
pub struct OpcUaDriver {
    plan: DevicePlan,
    ids: Vec<PointId>,
    stats: Arc<DeviceStats>,
    sub_stats: Arc<SubscriptionStats>,
    commands: Option<(CommandSender, CommandPort)>,
}

impl std::fmt::Debug for OpcUaDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpcUaDriver")
            .field("device", &self.plan.name)
            .field("endpoint", &self.plan.connect.endpoint)
            .field("points", &self.plan.points.len())
            .finish()
    }
}

/// Why a session ended.
enum End {
    /// Cancelled, or the gateway dropped the sample channel.
    Stop,
    /// The connection is gone (or unusable).
    Lost(StatusCode, String),
}

impl OpcUaDriver {
    pub(crate) fn new(plan: DevicePlan, ids: Vec<PointId>) -> Self {
        let commands = plan.points.iter().any(|p| p.writable).then(command_channel);
        OpcUaDriver {
            plan,
            ids,
            stats: Arc::new(DeviceStats::new()),
            sub_stats: Arc::new(SubscriptionStats::default()),
            commands,
        }
    }

    /// The validated plan.
    pub fn plan(&self) -> &DevicePlan {
        &self.plan
    }

    /// Subscription counters, shared with the running session.
    pub fn subscription_stats(&self) -> Arc<SubscriptionStats> {
        Arc::clone(&self.sub_stats)
    }

    async fn run_loop(mut self, sink: mpsc::Sender<Vec<Sample>>, cancel: CancellationToken) {
        let mut port = self.commands.take().map(|(_, port)| port);
        let plan = &self.plan;
        let mut state = RunState {
            plan,
            ids: &self.ids,
            stats: &self.stats,
            sub_stats: &self.sub_stats,
            seen_types: vec![None; plan.points.len()],
            warned: HashSet::new(),
        };
        let mut backoff = Backoff::new(plan.backoff_min, plan.backoff_max);
        let mut attempts = 0u64;
        let mut failing = false;
        info!(device = %plan.name, endpoint = %plan.connect.endpoint,
              policy = ?plan.connect.policy, mode = ?plan.connect.mode,
              points = plan.points.len(), "OPC UA device starting");
        loop {
            if sink.is_closed() {
                break;
            }
            attempts += 1;
            if attempts > 1 {
                DeviceStats::bump(&self.stats.reconnects);
            }
            let opened = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                r = session::connect(&plan.connect) => r,
            };
            let (status, why, stage) = match opened {
                Ok(conn) => {
                    self.stats.set_connected(true);
                    backoff.reset();
                    if failing {
                        info!(device = %plan.name, "OPC UA server answers again");
                        failing = false;
                    }
                    let end = state.serve(&conn, &sink, &mut port, &cancel).await;
                    self.stats.set_connected(false);
                    self.sub_stats.monitored.store(0, Ordering::Relaxed);
                    self.sub_stats.polled.store(0, Ordering::Relaxed);
                    match end {
                        End::Stop => {
                            conn.close().await;
                            break;
                        }
                        End::Lost(status, why) => {
                            // The link is gone or broken: do not wait for a
                            // polite close.
                            drop(conn);
                            (status, why, "session")
                        }
                    }
                }
                Err(e) => {
                    count(&self.stats, e.status);
                    (e.status, e.to_string(), "connect")
                }
            };
            DeviceStats::bump(&self.stats.polls_failed);
            let delay = backoff.next_delay();
            if failing {
                debug!(device = %plan.name, stage, error = %why, status = %status,
                       delay_ms = delay.as_millis() as u64, "still failing");
            } else {
                warn!(device = %plan.name, endpoint = %plan.connect.endpoint, stage,
                      error = %why, delay_ms = delay.as_millis() as u64,
                      "OPC UA device failing; retrying with backoff, further failures are logged at debug level");
                failing = true;
            }
            let now = unix_time_ms(SystemTime::now());
            let bad: Vec<Sample> = self.ids.iter().map(|&id| Sample::bad(id, now)).collect();
            if !send(&sink, &cancel, bad).await {
                break;
            }
            if !wait_down(delay, &mut port, &cancel).await {
                break;
            }
        }
        self.stats.set_connected(false);
        info!(device = %plan.name, "OPC UA device stopped");
    }
}

/// Counts a failure status in the device's counters by kind.
fn count(stats: &DeviceStats, status: StatusCode) {
    let counter = match classify(status) {
        ErrorKind::Timeout => &stats.timeouts,
        ErrorKind::Transport => &stats.transport_errors,
        ErrorKind::Decode => &stats.decode_errors,
        ErrorKind::Refused => &stats.exceptions,
    };
    DeviceStats::bump(counter);
}

/// A status with its operator hint, for logs and command errors.
fn explain(status: StatusCode) -> String {
    match hint(status) {
        Some(h) => format!("{status} ({h})"),
        None => status.to_string(),
    }
}

/// Sends a batch unless cancelled; false when the driver must stop.
async fn send(
    sink: &mpsc::Sender<Vec<Sample>>,
    cancel: &CancellationToken,
    samples: Vec<Sample>,
) -> bool {
    if samples.is_empty() {
        return true;
    }
    tokio::select! {
        biased;
        () = cancel.cancelled() => false,
        sent = sink.send(samples) => sent.is_ok(),
    }
}

/// The next command, or pending forever when there is no port.
async fn next_command(port: &mut Option<CommandPort>) -> Option<CommandRequest> {
    match port {
        Some(p) => p.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Waits out a backoff delay, refusing commands meanwhile. False when
/// cancelled.
async fn wait_down(
    delay: Duration,
    port: &mut Option<CommandPort>,
    cancel: &CancellationToken,
) -> bool {
    let until = tokio::time::sleep(delay);
    tokio::pin!(until);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return false,
            () = &mut until => return true,
            req = next_command(port) => match req {
                Some(req) => {
                    warn!(point = %req.command.point, value = %req.command.value,
                          "write refused: OPC UA device not connected");
                    req.finish(Err(CommandError::NotConnected));
                }
                None => *port = None,
            },
        }
    }
}

/// What the loop keeps across sessions.
struct RunState<'a> {
    plan: &'a DevicePlan,
    ids: &'a [PointId],
    stats: &'a DeviceStats,
    sub_stats: &'a SubscriptionStats,
    /// The variant type last seen per point: what a write sends when the
    /// point has no `data_type`.
    seen_types: Vec<Option<WriteType>>,
    /// Points already warned about (not numeric) in this run.
    warned: HashSet<usize>,
}

fn monitoring_filter(p: &OpcPoint) -> ExtensionObject {
    match p.deadband {
        None => ExtensionObject::null(),
        Some((kind, value)) => ExtensionObject::from_message(DataChangeFilter {
            trigger: DataChangeTrigger::StatusValue,
            deadband_type: match kind {
                DeadbandKind::Absolute => 1,
                DeadbandKind::Percent => 2,
            },
            deadband_value: value,
        }),
    }
}

impl RunState<'_> {
    /// Converts one data value of point `idx`, counting what needs counting.
    fn convert(&mut self, idx: usize, dv: &DataValue, now: i64) -> Sample {
        let p = &self.plan.points[idx];
        if p.writable {
            if let Some(t) = dv.value.as_ref().and_then(write_type_of) {
                self.seen_types[idx] = Some(t);
            }
        }
        let converted = to_sample(self.ids[idx], &p.scaling, dv, now);
        if let Converted::NotNumeric(_) = converted {
            DeviceStats::bump(&self.stats.decode_errors);
            if self.warned.insert(idx) {
                warn!(device = %self.plan.name, point = %p.name, node_id = %p.node_id,
                      "the variable's value is not a number; the point stays Bad");
            }
        }
        converted.sample()
    }

    /// Creates the subscription and its monitored items. Returns the points
    /// to poll instead (refused items), or the status that ended the
    /// session when the connection failed on the way.
    async fn subscribe(
        &mut self,
        session: &Arc<Session>,
        points: &[usize],
        tx: mpsc::UnboundedSender<(u32, DataValue)>,
    ) -> Result<Vec<usize>, End> {
        let plan = self.plan;
        let publishing = plan.publishing_interval;
        // Keep-alive about every 10 s (at least every 10 publishing
        // intervals); the server drops the subscription after 3 missed
        // keep-alives.
        let keep_alive = (10_000 / publishing.as_millis().max(1)).clamp(1, 10) as u32;
        let callback = DataChangeCallback::new(move |dv: DataValue, item: &MonitoredItem| {
            let _ = tx.send((item.client_handle(), dv));
        });
        let sub = match session
            .create_subscription(
                publishing,
                keep_alive * 3,
                keep_alive,
                MAX_NOTIFICATIONS_PER_PUBLISH,
                0,
                true,
                callback,
            )
            .await
        {
            Ok(id) => id,
            Err(e) => {
                let status = e.status();
                count(self.stats, status);
                if matches!(classify(status), ErrorKind::Transport | ErrorKind::Timeout) {
                    return Err(End::Lost(status, format!("create subscription: {e}")));
                }
                warn!(device = %plan.name, error = %explain(status),
                      "the server refused a subscription; polling every point instead");
                return Ok(points.to_vec());
            }
        };
        let mut refused = Vec::new();
        for chunk in points.chunks(CHUNK) {
            let requests = chunk
                .iter()
                .map(|&i| {
                    let p = &plan.points[i];
                    MonitoredItemCreateRequest::new(
                        ReadValueId::from(p.node_id.clone()),
                        MonitoringMode::Reporting,
                        MonitoringParameters {
                            client_handle: (i + 1) as u32,
                            sampling_interval: p.sampling_interval.as_secs_f64() * 1000.0,
                            filter: monitoring_filter(p),
                            queue_size: 10,
                            discard_oldest: true,
                        },
                    )
                })
                .collect();
            let created = match session
                .create_monitored_items(sub, TimestampsToReturn::Both, requests)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    let status = e.status();
                    count(self.stats, status);
                    if matches!(classify(status), ErrorKind::Transport | ErrorKind::Timeout) {
                        return Err(End::Lost(status, format!("create monitored items: {e}")));
                    }
                    warn!(device = %plan.name, error = %explain(status), items = chunk.len(),
                          "the server refused a batch of monitored items; polling them instead");
                    refused.extend_from_slice(chunk);
                    continue;
                }
            };
            for (k, &i) in chunk.iter().enumerate() {
                let status = created
                    .get(k)
                    .map(|c| c.result.status_code)
                    .unwrap_or(StatusCode::BadUnexpectedError);
                if !status.is_good() {
                    let p = &plan.points[i];
                    warn!(device = %plan.name, point = %p.name, node_id = %p.node_id,
                          error = %explain(status), "monitored item refused; polling this point instead");
                    refused.push(i);
                }
            }
        }
        self.sub_stats
            .refused_items
            .fetch_add(refused.len() as u64, Ordering::Relaxed);
        self.sub_stats
            .monitored
            .store((points.len() - refused.len()) as u64, Ordering::Relaxed);
        Ok(refused)
    }

    /// Reads the polled points. `Err` when the connection is unusable.
    async fn poll(&mut self, session: &Arc<Session>, points: &[usize]) -> Result<Vec<Sample>, End> {
        let mut samples = Vec::with_capacity(points.len());
        let mut failed = None;
        for chunk in points.chunks(CHUNK) {
            let nodes: Vec<ReadValueId> = chunk
                .iter()
                .map(|&i| ReadValueId::from(self.plan.points[i].node_id.clone()))
                .collect();
            let t0 = Instant::now();
            let read = session.read(&nodes, TimestampsToReturn::Both, 0.0).await;
            let now = unix_time_ms(SystemTime::now());
            match read {
                Ok(values) => {
                    self.stats
                        .record_rtt_us(t0.elapsed().as_micros().min(u128::from(u64::MAX)) as u64);
                    for (k, &i) in chunk.iter().enumerate() {
                        match values.get(k) {
                            Some(dv) => samples.push(self.convert(i, dv, now)),
                            None => samples.push(Sample::bad(self.ids[i], now)),
                        }
                    }
                }
                Err(e) => {
                    let status = e.status();
                    count(self.stats, status);
                    if classify(status) == ErrorKind::Transport {
                        return Err(End::Lost(status, format!("read: {e}")));
                    }
                    failed.get_or_insert((status, e.to_string()));
                    samples.extend(chunk.iter().map(|&i| Sample::bad(self.ids[i], now)));
                }
            }
        }
        let now = unix_time_ms(SystemTime::now());
        match failed {
            None => {
                DeviceStats::bump(&self.stats.polls_ok);
                self.stats.record_success(now);
            }
            Some((status, why)) => {
                DeviceStats::bump(&self.stats.polls_failed);
                debug!(device = %self.plan.name, status = %status, error = %why, "polled read failed");
            }
        }
        Ok(samples)
    }

    /// Writes one command. `Err` when the connection is unusable.
    async fn write(&mut self, session: &Arc<Session>, req: CommandRequest) -> Result<(), End> {
        let (result, lost) = self.do_write(session, &req).await;
        match &result {
            Ok(()) => info!(device = %self.plan.name, point = %req.command.point,
                            value = %req.command.value, "write done"),
            Err(e) => warn!(device = %self.plan.name, point = %req.command.point,
                            value = %req.command.value, error = %e, "write refused"),
        }
        req.finish(result);
        match lost {
            Some(end) => Err(end),
            None => Ok(()),
        }
    }

    async fn do_write(
        &mut self,
        session: &Arc<Session>,
        req: &CommandRequest,
    ) -> (Result<(), CommandError>, Option<End>) {
        let name = &req.command.point;
        let Some(idx) = self.plan.points.iter().position(|p| &p.name == name) else {
            return (Err(CommandError::UnknownPoint(name.clone())), None);
        };
        let p = &self.plan.points[idx];
        if !p.writable {
            return (Err(CommandError::NotWritable(name.clone())), None);
        }
        let ty = match p.data_type.or(self.seen_types[idx]) {
            Some(t) => t,
            None => {
                // Not seen yet: learn the type from the variable's value.
                match session
                    .read(&[ReadValueId::from(p.node_id.clone())], TimestampsToReturn::Neither, 0.0)
                    .await
                {
                    Ok(v) => match v.first().and_then(|dv| dv.value.as_ref()).and_then(write_type_of) {
                        Some(t) => {
                            self.seen_types[idx] = Some(t);
                            t
                        }
                        None => {
                            return (
                                Err(CommandError::BadValue(
                                    "the variable's type is unknown (it has no numeric or boolean value yet): set data_type for this point".into(),
                                )),
                                None,
                            )
                        }
                    },
                    Err(e) => return self.write_failure(e.status(), &e.to_string()),
                }
            }
        };
        let variant = match command_variant(req.command.value, ty, &p.scaling) {
            Ok(v) => v,
            Err(e) => return (Err(e), None),
        };
        let value = WriteValue {
            node_id: p.node_id.clone(),
            attribute_id: AttributeId::Value as u32,
            index_range: Default::default(),
            value: DataValue::value_only(variant),
        };
        let t0 = Instant::now();
        match session.write(&[value]).await {
            Ok(codes) => {
                self.stats
                    .record_rtt_us(t0.elapsed().as_micros().min(u128::from(u64::MAX)) as u64);
                match codes.first() {
                    Some(s) if s.is_good() => (Ok(()), None),
                    Some(s) => {
                        DeviceStats::bump(&self.stats.exceptions);
                        (Err(CommandError::Refused(explain(*s))), None)
                    }
                    None => (
                        Err(CommandError::Refused(
                            "the server returned no result".into(),
                        )),
                        None,
                    ),
                }
            }
            Err(e) => self.write_failure(e.status(), &e.to_string()),
        }
    }

    fn write_failure(
        &self,
        status: StatusCode,
        text: &str,
    ) -> (Result<(), CommandError>, Option<End>) {
        count(self.stats, status);
        match classify(status) {
            ErrorKind::Timeout => (Err(CommandError::Timeout), None),
            ErrorKind::Transport => (
                Err(CommandError::Transport(text.to_string())),
                Some(End::Lost(status, format!("write: {text}"))),
            ),
            ErrorKind::Decode | ErrorKind::Refused => {
                (Err(CommandError::Refused(explain(status))), None)
            }
        }
    }

    /// Serves one session until it ends.
    async fn serve(
        &mut self,
        conn: &Connection,
        sink: &mpsc::Sender<Vec<Sample>>,
        port: &mut Option<CommandPort>,
        cancel: &CancellationToken,
    ) -> End {
        let plan = self.plan;
        let session = &conn.session;
        let (tx, mut rx) = mpsc::unbounded_channel::<(u32, DataValue)>();
        let subscribed: Vec<usize> = (0..plan.points.len())
            .filter(|&i| plan.points[i].mode == PointMode::Subscribe)
            .collect();
        let mut polled: Vec<usize> = (0..plan.points.len())
            .filter(|&i| plan.points[i].mode == PointMode::Poll)
            .collect();
        if !subscribed.is_empty() {
            let refused = tokio::select! {
                biased;
                () = cancel.cancelled() => return End::Stop,
                r = self.subscribe(session, &subscribed, tx.clone()) => r,
            };
            match refused {
                Ok(r) => polled.extend(r),
                Err(end) => return end,
            }
            polled.sort_unstable();
        }
        self.sub_stats
            .polled
            .store(polled.len() as u64, Ordering::Relaxed);
        info!(device = %plan.name, endpoint = %plan.connect.endpoint,
              monitored = self.sub_stats.monitored.load(Ordering::Relaxed),
              polled = polled.len(), "OPC UA session open");
        let mut timer = tokio::time::interval(plan.poll_interval);
        timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut lost = conn.lost.clone();
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return End::Stop,
                changed = lost.changed() => {
                    let status = match changed {
                        Ok(()) => (*lost.borrow()).unwrap_or(StatusCode::BadConnectionClosed),
                        Err(_) => StatusCode::BadConnectionClosed,
                    };
                    count(self.stats, status);
                    return End::Lost(status, format!("connection lost: {}", explain(status)));
                }
                req = next_command(port) => match req {
                    Some(req) => {
                        if let Err(end) = self.write(session, req).await {
                            return end;
                        }
                    }
                    None => *port = None,
                },
                n = rx.recv_many(&mut batch, MAX_BATCH) => {
                    if n == 0 {
                        continue;
                    }
                    let now = unix_time_ms(SystemTime::now());
                    let mut samples = Vec::with_capacity(batch.len());
                    for (handle, dv) in batch.drain(..) {
                        let idx = handle as usize;
                        if idx == 0 || idx > plan.points.len() {
                            continue;
                        }
                        samples.push(self.convert(idx - 1, &dv, now));
                    }
                    self.sub_stats
                        .notifications
                        .fetch_add(samples.len() as u64, Ordering::Relaxed);
                    DeviceStats::bump(&self.stats.polls_ok);
                    self.stats.record_success(now);
                    if !send(sink, cancel, samples).await {
                        return End::Stop;
                    }
                }
                _ = timer.tick(), if !polled.is_empty() => {
                    let read = tokio::select! {
                        biased;
                        () = cancel.cancelled() => return End::Stop,
                        r = self.poll(session, &polled) => r,
                    };
                    match read {
                        Ok(samples) => {
                            if !send(sink, cancel, samples).await {
                                return End::Stop;
                            }
                        }
                        Err(end) => return end,
                    }
                }
            }
        }
    }
}

impl Driver for OpcUaDriver {
    fn device(&self) -> &str {
        &self.plan.name
    }

    fn stats(&self) -> Arc<DeviceStats> {
        Arc::clone(&self.stats)
    }

    fn commands(&self) -> Option<CommandSender> {
        self.commands.as_ref().map(|(s, _)| s.clone())
    }

    fn run(
        self: Box<Self>,
        sink: mpsc::Sender<Vec<Sample>>,
        cancel: CancellationToken,
    ) -> DriverFuture {
        Box::pin(self.run_loop(sink, cancel))
    }
}
