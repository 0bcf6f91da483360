//! The callbacks the DNP3 stack calls, adapted to the driver: measurements
//! ([`ReadAdapter`] over a [`MeasurementSink`]), task outcomes
//! ([`TaskObserver`]: counters, poll round-trip times), connection state
//! ([`StateListener`]) and reconnect timing ([`JitteredConnect`]).
//!
//! None of them blocks: counters are atomics, events for the driver's run
//! loop go through an unbounded channel (a handful per connection change or
//! poll), and samples are handed over asynchronously at the end of each
//! response fragment.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dcmms_protocols_core::{unix_time_ms, Backoff, DeviceStats};
use dnp3::app::measurement::{
    AnalogInput, AnalogOutputStatus, BinaryInput, BinaryOutputStatus, Counter, DoubleBit,
    DoubleBitBinaryInput, FrozenCounter, Time,
};
use dnp3::app::{FunctionCode, Listener, MaybeAsync, ResponseHeader, Sequence};
use dnp3::master::{
    AssociationHandler, AssociationInformation, HeaderInfo, ReadHandler, ReadType, TaskError,
    TaskType,
};
use dnp3::tcp::{ClientConnectionHandler, ClientState, ConnectionInfo, Endpoint};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::command::{classify_task_error, FailureClass};
use crate::measurement::{DeviceTime, Measurement};
use crate::point::PointKind;

/// Receives the measurements of one response fragment.
pub(crate) trait MeasurementSink: Send + Sync + 'static {
    /// A fragment starts; `received_ms` is the wall-clock time it arrived.
    fn begin(&mut self, received_ms: i64);
    fn push(&mut self, m: Measurement);
    /// The fragment is complete.
    fn end(&mut self) -> MaybeAsync<()>;
}

/// A [`ReadHandler`] that turns every supported object into a
/// [`Measurement`], in the order of the response.
pub(crate) struct ReadAdapter<S> {
    sink: S,
}

impl<S: MeasurementSink> ReadAdapter<S> {
    pub(crate) fn new(sink: S) -> Self {
        ReadAdapter { sink }
    }

    fn push_all<T>(
        &mut self,
        kind: PointKind,
        info: HeaderInfo,
        iter: &mut dyn Iterator<Item = (T, u16)>,
        parts: impl Fn(&T) -> (f64, u8, Option<Time>),
    ) {
        for (item, index) in iter {
            let (value, flags, time) = parts(&item);
            self.sink.push(Measurement {
                kind,
                index,
                value,
                flags,
                time: time.map(device_time),
                is_event: info.is_event,
            });
        }
    }
}

fn device_time(t: Time) -> DeviceTime {
    match t {
        Time::Synchronized(ts) => DeviceTime::Synchronized(ts.raw_value()),
        Time::Unsynchronized(ts) => DeviceTime::Unsynchronized(ts.raw_value()),
    }
}

/// The DNP3 two-bit code of a double-bit state.
fn double_bit_code(v: DoubleBit) -> f64 {
    match v {
        DoubleBit::Intermediate => 0.0,
        DoubleBit::DeterminedOff => 1.0,
        DoubleBit::DeterminedOn => 2.0,
        DoubleBit::Indeterminate => 3.0,
    }
}

fn bit(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

impl<S: MeasurementSink> ReadHandler for ReadAdapter<S> {
    fn begin_fragment(&mut self, _read_type: ReadType, _header: ResponseHeader) -> MaybeAsync<()> {
        self.sink.begin(unix_time_ms(SystemTime::now()));
        MaybeAsync::ready(())
    }

    fn end_fragment(&mut self, _read_type: ReadType, _header: ResponseHeader) -> MaybeAsync<()> {
        self.sink.end()
    }

    fn handle_binary_input(
        &mut self,
        info: HeaderInfo,
        iter: &mut dyn Iterator<Item = (BinaryInput, u16)>,
    ) {
        self.push_all(PointKind::BinaryInput, info, iter, |m| {
            (bit(m.value), m.flags.value, m.time)
        });
    }

    fn handle_double_bit_binary_input(
        &mut self,
        info: HeaderInfo,
        iter: &mut dyn Iterator<Item = (DoubleBitBinaryInput, u16)>,
    ) {
        self.push_all(PointKind::DoubleBitBinaryInput, info, iter, |m| {
            (double_bit_code(m.value), m.flags.value, m.time)
        });
    }

    fn handle_binary_output_status(
        &mut self,
        info: HeaderInfo,
        iter: &mut dyn Iterator<Item = (BinaryOutputStatus, u16)>,
    ) {
        self.push_all(PointKind::BinaryOutputStatus, info, iter, |m| {
            (bit(m.value), m.flags.value, m.time)
        });
    }

    fn handle_counter(&mut self, info: HeaderInfo, iter: &mut dyn Iterator<Item = (Counter, u16)>) {
        self.push_all(PointKind::Counter, info, iter, |m| {
            (f64::from(m.value), m.flags.value, m.time)
        });
    }

    fn handle_frozen_counter(
        &mut self,
        info: HeaderInfo,
        iter: &mut dyn Iterator<Item = (FrozenCounter, u16)>,
    ) {
        self.push_all(PointKind::FrozenCounter, info, iter, |m| {
            (f64::from(m.value), m.flags.value, m.time)
        });
    }

    fn handle_analog_input(
        &mut self,
        info: HeaderInfo,
        iter: &mut dyn Iterator<Item = (AnalogInput, u16)>,
    ) {
        self.push_all(PointKind::AnalogInput, info, iter, |m| {
            (m.value, m.flags.value, m.time)
        });
    }

    fn handle_analog_output_status(
        &mut self,
        info: HeaderInfo,
        iter: &mut dyn Iterator<Item = (AnalogOutputStatus, u16)>,
    ) {
        self.push_all(PointKind::AnalogOutputStatus, info, iter, |m| {
            (m.value, m.flags.value, m.time)
        });
    }
}

/// What the stack's callbacks tell the driver's run loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkEvent {
    /// The TCP connection is up.
    Connected,
    /// A connection attempt failed or the connection was lost, at `at_ms`.
    Lost { at_ms: i64 },
    /// A read (poll, integrity or event scan) succeeded.
    ReadOk { startup_integrity: bool },
    /// A task failed at `at_ms`: no answer, link error or malformed answer.
    NoAnswer { at_ms: i64 },
}

fn is_read(t: TaskType) -> bool {
    matches!(
        t,
        TaskType::UserRead
            | TaskType::PeriodicPoll
            | TaskType::StartupIntegrity
            | TaskType::AutoEventScan
    )
}

/// Counts task outcomes into [`DeviceStats`] and measures the round-trip
/// time of reads (request sent to last fragment handled).
pub(crate) struct TaskObserver {
    device: String,
    stats: Arc<DeviceStats>,
    events: mpsc::UnboundedSender<LinkEvent>,
    answered: Arc<AtomicBool>,
    started: Option<(TaskType, Instant)>,
}

impl TaskObserver {
    pub(crate) fn new(
        device: String,
        stats: Arc<DeviceStats>,
        events: mpsc::UnboundedSender<LinkEvent>,
        answered: Arc<AtomicBool>,
    ) -> Self {
        TaskObserver {
            device,
            stats,
            events,
            answered,
            started: None,
        }
    }
}

/// Adds one to the counter of `class` (nothing for local failures).
pub(crate) fn count_failure(stats: &DeviceStats, class: FailureClass) {
    match class {
        FailureClass::Exception => DeviceStats::bump(&stats.exceptions),
        FailureClass::Timeout => DeviceStats::bump(&stats.timeouts),
        FailureClass::Transport => DeviceStats::bump(&stats.transport_errors),
        FailureClass::Decode => DeviceStats::bump(&stats.decode_errors),
        FailureClass::Local => {}
    }
}

impl AssociationInformation for TaskObserver {
    fn task_start(&mut self, task_type: TaskType, _fc: FunctionCode, _seq: Sequence) {
        self.started = Some((task_type, Instant::now()));
    }

    fn task_success(&mut self, task_type: TaskType, _fc: FunctionCode, _seq: Sequence) {
        self.answered.store(true, Ordering::Relaxed);
        if !is_read(task_type) {
            return;
        }
        if let Some((started_type, at)) = self.started.take() {
            if started_type == task_type {
                let us = u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.stats.record_rtt_us(us.max(1));
            }
        }
        DeviceStats::bump(&self.stats.polls_ok);
        self.stats.record_success(unix_time_ms(SystemTime::now()));
        let _ = self.events.send(LinkEvent::ReadOk {
            startup_integrity: task_type == TaskType::StartupIntegrity,
        });
    }

    fn task_fail(&mut self, task_type: TaskType, error: TaskError) {
        self.started = None;
        let class = classify_task_error(&error);
        count_failure(&self.stats, class);
        debug!(device = %self.device, task = ?task_type, %error, "dnp3 task failed");
        if is_read(task_type) {
            DeviceStats::bump(&self.stats.polls_failed);
        }
        // Any task the outstation did not answer properly (not only reads:
        // the startup tasks come first) says its values are in doubt.
        if matches!(
            class,
            FailureClass::Timeout | FailureClass::Transport | FailureClass::Decode
        ) {
            let _ = self.events.send(LinkEvent::NoAnswer {
                at_ms: unix_time_ms(SystemTime::now()),
            });
        }
    }
}

/// Gives the stack the system clock for time synchronisation.
pub(crate) struct SystemClock;

impl AssociationHandler for SystemClock {}

/// Follows the TCP client's state: `connected` in the stats, and
/// [`LinkEvent`]s for the run loop.
pub(crate) struct StateListener {
    device: String,
    stats: Arc<DeviceStats>,
    events: mpsc::UnboundedSender<LinkEvent>,
}

impl StateListener {
    pub(crate) fn new(
        device: String,
        stats: Arc<DeviceStats>,
        events: mpsc::UnboundedSender<LinkEvent>,
    ) -> Self {
        StateListener {
            device,
            stats,
            events,
        }
    }
}

impl Listener<ClientState> for StateListener {
    fn update(&mut self, state: ClientState) -> MaybeAsync<()> {
        debug!(device = %self.device, ?state, "dnp3 channel state");
        let event = match state {
            ClientState::Connected => {
                self.stats.set_connected(true);
                Some(LinkEvent::Connected)
            }
            ClientState::WaitAfterFailedConnect(_) | ClientState::WaitAfterDisconnect(_) => {
                self.stats.set_connected(false);
                Some(LinkEvent::Lost {
                    at_ms: unix_time_ms(SystemTime::now()),
                })
            }
            ClientState::Disabled | ClientState::Connecting | ClientState::Shutdown => {
                self.stats.set_connected(false);
                None
            }
        };
        if let Some(e) = event {
            let _ = self.events.send(e);
        }
        MaybeAsync::ready(())
    }
}

/// The reconnect policy handed to the DNP3 TCP client: our jittered
/// exponential [`Backoff`] between `backoff_min_ms` and `backoff_max_ms`,
/// both after a failed attempt and after a lost connection. The backoff
/// starts again from the minimum once the outstation has answered a
/// request on a connection.
pub(crate) struct JitteredConnect {
    device: String,
    endpoint: String,
    connect_timeout: Duration,
    backoff: Backoff,
    pending_delay: Option<Duration>,
    attempts: u64,
    stats: Arc<DeviceStats>,
    answered: Arc<AtomicBool>,
}

impl JitteredConnect {
    pub(crate) fn new(
        device: String,
        endpoint: String,
        connect_timeout: Duration,
        backoff: Backoff,
        stats: Arc<DeviceStats>,
        answered: Arc<AtomicBool>,
    ) -> Self {
        JitteredConnect {
            device,
            endpoint,
            connect_timeout,
            backoff,
            pending_delay: None,
            attempts: 0,
            stats,
            answered,
        }
    }

    fn failed(&mut self) {
        DeviceStats::bump(&self.stats.transport_errors);
        self.pending_delay = Some(self.backoff.next_delay());
    }
}

impl ClientConnectionHandler for JitteredConnect {
    fn endpoint_span_name(&self) -> String {
        self.device.clone()
    }

    fn disconnected(&mut self, addr: SocketAddr, _hostname: Option<&str>) -> Duration {
        if self.answered.swap(false, Ordering::Relaxed) {
            self.backoff.reset();
        }
        let delay = self.backoff.next_delay();
        warn!(device = %self.device, %addr, delay_ms = delay.as_millis() as u64,
              "dnp3 connection lost; reconnecting");
        delay
    }

    fn next(&mut self) -> Result<ConnectionInfo, Duration> {
        if let Some(delay) = self.pending_delay.take() {
            return Err(delay);
        }
        self.attempts += 1;
        if self.attempts > 1 {
            DeviceStats::bump(&self.stats.reconnects);
        }
        let mut info = ConnectionInfo::new(Endpoint::from(self.endpoint.clone()));
        info.set_timeout(self.connect_timeout);
        Ok(info)
    }

    fn connect_failed(&mut self, addr: SocketAddr, _hostname: Option<&str>) {
        debug!(device = %self.device, %addr, "dnp3 connect failed");
        self.failed();
    }

    fn connected(&mut self, _addr: SocketAddr, _hostname: Option<&str>) {
        self.answered.store(false, Ordering::Relaxed);
    }

    fn resolution_failed(&mut self, host_name: &str) {
        debug!(device = %self.device, host_name, "dnp3 host name did not resolve");
        self.failed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(min_ms: u64, max_ms: u64) -> (JitteredConnect, Arc<DeviceStats>, Arc<AtomicBool>) {
        let stats = Arc::new(DeviceStats::new());
        let answered = Arc::new(AtomicBool::new(false));
        let h = JitteredConnect::new(
            "rtu".into(),
            "127.0.0.1:20000".into(),
            Duration::from_secs(1),
            Backoff::with_seed(
                Duration::from_millis(min_ms),
                Duration::from_millis(max_ms),
                1,
            ),
            Arc::clone(&stats),
            Arc::clone(&answered),
        );
        (h, stats, answered)
    }

    #[test]
    fn failed_attempts_wait_a_growing_jittered_delay() {
        let (mut h, stats, _) = handler(100, 1000);
        let addr: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        assert!(h.next().is_ok());
        let mut delays = Vec::new();
        for _ in 0..8 {
            h.connect_failed(addr, None);
            let d = h.next().expect_err("waits after a failure");
            assert!(h.next().is_ok(), "then tries again");
            delays.push(d);
        }
        assert_eq!(delays[0], Duration::from_millis(100));
        assert!(delays
            .iter()
            .all(|d| *d >= Duration::from_millis(100) && *d <= Duration::from_secs(1)));
        assert!(
            delays[1..].iter().any(|d| *d > Duration::from_millis(200)),
            "{delays:?}"
        );
        let s = stats.snapshot();
        assert_eq!((s.transport_errors, s.reconnects), (8, 8));
    }

    #[test]
    fn backoff_restarts_after_the_outstation_answered() {
        let (mut h, _, answered) = handler(100, 10_000);
        let addr: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        for _ in 0..6 {
            let _ = h.next();
            h.connect_failed(addr, None);
        }
        let _ = h.next();
        let _ = h.next();
        h.connected(addr, None);
        // Lost without an answer: keeps growing.
        assert!(h.disconnected(addr, None) >= Duration::from_millis(100));
        assert!(h.backoff.failures() > 6);
        let _ = h.next();
        h.connected(addr, None);
        answered.store(true, Ordering::Relaxed);
        assert_eq!(h.disconnected(addr, None), Duration::from_millis(100));
    }
}
