//! The Modbus RTU bus loop: one task per serial line, the IO around the
//! bus schedule, the planner and the decoder.
//!
//! The task owns the port and sends one request at a time, keeping the
//! inter-frame gap. [`BusSchedule`] decides which unit is polled next; each
//! unit's cycle sends one `Vec<Sample>` stamped with the cycle's start. A
//! unit that does not answer its first request ends its cycle at once
//! (points Bad) and is retried after a jittered backoff, so it costs the
//! line one timeout per retry. A port that fails or cannot be opened marks
//! every unit's points Bad and is reopened with backoff. Writes arrive on
//! command ports (one per unit, one for the bus) and go out between cycles.
//! The loop ends only on cancellation or when the sample channel is closed.

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, SystemTime};

use dcmms_protocols_core::{
    command_channel, unix_time_ms, Backoff, CommandError, CommandPort, CommandRequest,
    CommandSender, DeviceStats, Driver, DriverFuture,
};
use dcmms_shared::{PointId, Sample};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_modbus::client::{Client as _, Context};
use tokio_modbus::slave::SlaveContext as _;
use tokio_modbus::Slave;
use tokio_serial::{DataBits, FlowControl, SerialStream, StopBits};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::bus_schedule::{BusSchedule, Next, Outcome};
use crate::config::ModbusPoint;
use crate::decode::bad_read;
use crate::exchange::{self, DevicePlan, Stop, Tally};
use crate::plan::PlannedRead;
use crate::rtu_config::{Parity, SerialSettings};
use crate::rtu_line::{LineActivity, RtuLine};

/// One unit on the bus, as built.
#[derive(Debug)]
pub(crate) struct RtuUnit {
    pub name: String,
    pub unit_id: u8,
    pub poll_interval: Duration,
    pub points: Vec<ModbusPoint>,
    pub ids: Vec<PointId>,
    pub reads: Vec<PlannedRead>,
    pub stats: Arc<DeviceStats>,
    pub commands: Option<(CommandSender, CommandPort)>,
    /// A warning was logged and not yet followed by a recovery message.
    pub failing: bool,
}

/// What the gateway needs to show and command one unit of a bus.
#[derive(Debug, Clone)]
pub struct RtuDeviceHandle {
    /// The device name from `[[modbus_rtu.devices]]`.
    pub name: String,
    pub unit_id: u8,
    /// This unit's counters (`connected` = it answered its last request).
    pub stats: Arc<DeviceStats>,
    /// Takes commands with the point name inside this device; `Some` when
    /// the unit has a writable point.
    pub commands: Option<CommandSender>,
}

/// A built Modbus RTU bus, ready to run.
#[derive(Debug)]
pub struct ModbusRtuDriver {
    name: String,
    serial: SerialSettings,
    timeout: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    units: Vec<RtuUnit>,
    /// The bus row: `connected` = the port is open, `reconnects` = reopens
    /// of the port; the other counters are the sums over its units.
    stats: Arc<DeviceStats>,
    commands: Option<(CommandSender, CommandPort)>,
}

impl ModbusRtuDriver {
    pub(crate) fn new(
        name: String,
        serial: SerialSettings,
        timeout: Duration,
        backoff: (Duration, Duration),
        units: Vec<RtuUnit>,
    ) -> Self {
        let commands = units
            .iter()
            .any(|u| u.points.iter().any(|p| p.writable))
            .then(command_channel);
        ModbusRtuDriver {
            name,
            serial,
            timeout,
            backoff_min: backoff.0,
            backoff_max: backoff.1,
            units,
            stats: Arc::new(DeviceStats::new()),
            commands,
        }
    }

    /// Every unit of the bus, in config order: name, unit id, counters and
    /// command sender. The gateway shows one status row per entry.
    pub fn devices(&self) -> Vec<RtuDeviceHandle> {
        self.units
            .iter()
            .map(|u| RtuDeviceHandle {
                name: u.name.clone(),
                unit_id: u.unit_id,
                stats: Arc::clone(&u.stats),
                commands: u.commands.as_ref().map(|(tx, _)| tx.clone()),
            })
            .collect()
    }

    /// The planned reads of one device, one request each per cycle.
    pub fn reads(&self, device: &str) -> Option<&[PlannedRead]> {
        self.units
            .iter()
            .find(|u| u.name == device)
            .map(|u| u.reads.as_slice())
    }

    /// The port settings in use.
    pub fn serial(&self) -> &SerialSettings {
        &self.serial
    }
}

/// Opens `serial` as an RTU client context on `activity`'s line.
pub(crate) fn open_line(
    serial: &SerialSettings,
    activity: &Arc<LineActivity>,
) -> io::Result<Context> {
    let builder = tokio_serial::new(&serial.port, serial.baud_rate)
        .data_bits(DataBits::Eight)
        .parity(match serial.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .stop_bits(if serial.stop_bits == 2 {
            StopBits::Two
        } else {
            StopBits::One
        })
        .flow_control(FlowControl::None);
    let port = SerialStream::open(&builder).map_err(io::Error::from)?;
    let line = RtuLine::new(port, serial.inter_frame_gap, Arc::clone(activity));
    Ok(tokio_modbus::client::rtu::attach_slave(line, Slave(1)))
}

/// Who a command was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The bus port: the point is `device/point`.
    Bus,
    Unit(usize),
}

/// The command ports of the bus and its units, polled together.
struct CommandPorts {
    ports: Vec<(Target, Option<CommandPort>)>,
}

impl CommandPorts {
    fn poll_next(&mut self, cx: &mut TaskContext<'_>) -> Poll<(Target, CommandRequest)> {
        for (target, slot) in &mut self.ports {
            if let Some(port) = slot {
                match port.rx.poll_recv(cx) {
                    Poll::Ready(Some(req)) => return Poll::Ready((*target, req)),
                    // Every sender is gone: stop polling this port.
                    Poll::Ready(None) => *slot = None,
                    Poll::Pending => {}
                }
            }
        }
        Poll::Pending
    }

    async fn next(&mut self) -> (Target, CommandRequest) {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn try_next(&mut self) -> Option<(Target, CommandRequest)> {
        let mut cx = TaskContext::from_waker(Waker::noop());
        match self.poll_next(&mut cx) {
            Poll::Ready(x) => Some(x),
            Poll::Pending => None,
        }
    }
}

/// Mutable state of a running bus.
struct Line {
    ctx: Option<Context>,
    activity: Arc<LineActivity>,
    reopen_at: Option<Instant>,
    backoff: Backoff,
    attempts: u64,
    failing: bool,
}

impl Line {
    async fn close(&mut self, stats: &DeviceStats) {
        if let Some(mut ctx) = self.ctx.take() {
            let _ = timeout(Duration::from_millis(100), ctx.disconnect()).await;
        }
        stats.set_connected(false);
    }

    /// Closes the port to be reopened at once: garbled bytes leave the
    /// frame decoder in an unknown state, but the port itself works.
    async fn resync(&mut self, stats: &DeviceStats) {
        debug!("garbled answer; reopening the port");
        self.close(stats).await;
        self.reopen_at = None;
    }

    /// Closes the port and schedules the reopen after a backoff delay.
    async fn lost(&mut self, stats: &DeviceStats, bus: &str, why: &str) {
        self.close(stats).await;
        let delay = self.backoff.next_delay();
        self.reopen_at = Some(Instant::now() + delay);
        if !self.failing {
            warn!(
                bus,
                error = why,
                delay_ms = delay.as_millis() as u64,
                "modbus RTU line failed; reopening the port"
            );
            self.failing = true;
        } else {
            debug!(bus, error = why, "modbus RTU line still failing");
        }
    }
}

impl ModbusRtuDriver {
    fn tally<'a>(&'a self, unit: &'a RtuUnit) -> Tally<'a> {
        Tally {
            device: &unit.stats,
            bus: Some(&self.stats),
        }
    }

    /// One poll cycle of unit `i`. Returns its samples and, if the line
    /// must be reopened, why.
    async fn poll_unit(
        &mut self,
        i: usize,
        line: &mut Line,
        sched: &mut BusSchedule,
    ) -> (Vec<Sample>, Option<Stop>) {
        let Some(ctx) = line.ctx.as_mut() else {
            return (Vec::new(), None);
        };
        // The cycle starts once the line has been quiet for the gap.
        line.activity.wait_quiet(self.serial.inter_frame_gap).await;
        let unit = &self.units[i];
        let tally = self.tally(unit);
        if sched.is_silent(i) {
            // A retry of a unit that stopped answering (the bus row counts
            // reopens of the port instead).
            DeviceStats::bump(&unit.stats.reconnects);
        }
        let ts_ms = unix_time_ms(SystemTime::now());
        ctx.set_slave(Slave(unit.unit_id));
        let out = exchange::poll_reads(
            ctx,
            DevicePlan {
                reads: &unit.reads,
                points: &unit.points,
                ids: &unit.ids,
            },
            self.timeout,
            tally,
            Some((&*line.activity, self.serial.inter_frame_gap)),
            ts_ms,
        )
        .await;
        let outcome = match out.stopped {
            // A timeout costs the line, even after earlier answers in the
            // cycle (a unit that ignores one of its reads): back off.
            Some(Stop::Timeout) => Outcome::Silent,
            Some(Stop::LinkLost) if !out.answered => Outcome::LineFailed,
            // Data, exceptions or garbage: something answered.
            _ => Outcome::Answered,
        };
        let link = out.stopped.filter(|s| *s != Stop::Timeout);
        if out.answered {
            line.backoff.reset();
            if line.failing {
                info!(bus = %self.name, "modbus RTU line works again");
                line.failing = false;
            }
        }
        let delay = sched.finished(i, outcome, Instant::now());
        let unit = &mut self.units[i];
        unit.stats.set_connected(out.answered);
        match out.first_failure {
            None => {
                tally_success(&unit.stats, &self.stats, ts_ms);
                if unit.failing {
                    info!(bus = %self.name, device = %unit.name, unit_id = unit.unit_id,
                          "unit answers again");
                    unit.failing = false;
                }
            }
            Some(f) => {
                Tally {
                    device: &unit.stats,
                    bus: Some(&self.stats),
                }
                .bump(|s| &s.polls_failed);
                let retry_ms = delay.map(|d| d.as_millis() as u64);
                if !unit.failing {
                    warn!(bus = %self.name, device = %unit.name, unit_id = unit.unit_id,
                          error = %f, retry_ms,
                          "modbus unit failing; further failures are logged at debug level");
                    unit.failing = true;
                } else {
                    debug!(bus = %self.name, device = %unit.name, error = %f, retry_ms,
                           "unit still failing");
                }
            }
        }
        (out.samples, link)
    }

    /// Sends one write for a unit on the open line.
    async fn serve_command(
        &mut self,
        target: Target,
        mut req: CommandRequest,
        line: &mut Line,
        sched: &mut BusSchedule,
    ) {
        let unit_index = match target {
            Target::Unit(i) => Ok(i),
            Target::Bus => {
                let full = req.command.point.clone();
                match full.split_once('/').and_then(|(device, point)| {
                    let i = self.units.iter().position(|u| u.name == device)?;
                    Some((i, point.to_owned()))
                }) {
                    Some((i, point)) => {
                        req.command.point = point;
                        Ok(i)
                    }
                    None => Err(CommandError::UnknownPoint(full)),
                }
            }
        };
        let result = match &unit_index {
            Err(e) => Err(e.clone()),
            Ok(i) => self.write_unit(*i, &req, line, sched).await,
        };
        let device = unit_index.map_or("?", |i| self.units[i].name.as_str());
        match &result {
            Ok(()) => info!(bus = %self.name, device, point = %req.command.point,
                            value = %req.command.value, "write done"),
            Err(e) => warn!(bus = %self.name, device, point = %req.command.point,
                            value = %req.command.value, error = %e, "write refused"),
        }
        req.finish(result);
    }

    async fn write_unit(
        &mut self,
        i: usize,
        req: &CommandRequest,
        line: &mut Line,
        sched: &mut BusSchedule,
    ) -> Result<(), CommandError> {
        let unit = &self.units[i];
        let write = exchange::plan_command(&unit.points, &req.command)?;
        let Some(ctx) = line.ctx.as_mut() else {
            return Err(CommandError::NotConnected);
        };
        ctx.set_slave(Slave(unit.unit_id));
        let gap = Some((&*line.activity, self.serial.inter_frame_gap));
        match exchange::write(ctx, &write, self.timeout, self.tally(unit), gap).await {
            Ok(()) => {
                sched.poll_soon(i, Instant::now());
                Ok(())
            }
            Err(f) => {
                match f.stop() {
                    Some(Stop::LinkLost) => {
                        line.lost(&self.stats, &self.name, &f.to_string()).await
                    }
                    Some(Stop::Garbled) => line.resync(&self.stats).await,
                    Some(Stop::Timeout) | None => {}
                }
                Err(f.to_command_error())
            }
        }
    }

    /// Bad samples for every point of every unit: the port is not usable.
    fn all_bad(&self, ts_ms: i64) -> Vec<Vec<Sample>> {
        self.units
            .iter()
            .map(|u| {
                let tally = self.tally(u);
                tally.bump(|s| &s.transport_errors);
                tally.bump(|s| &s.polls_failed);
                u.stats.set_connected(false);
                let mut batch = Vec::new();
                for r in &u.reads {
                    bad_read(r, &u.ids, ts_ms, &mut batch);
                }
                batch
            })
            .collect()
    }

    async fn run_loop(mut self, sink: mpsc::Sender<Vec<Sample>>, cancel: CancellationToken) {
        let mut ports = vec![(Target::Bus, self.commands.take().map(|(_, port)| port))];
        for (i, u) in self.units.iter_mut().enumerate() {
            ports.push((Target::Unit(i), u.commands.take().map(|(_, port)| port)));
        }
        let mut ports = CommandPorts { ports };
        let intervals: Vec<Duration> = self.units.iter().map(|u| u.poll_interval).collect();
        let backoffs = self
            .units
            .iter()
            .map(|_| Backoff::new(self.backoff_min, self.backoff_max))
            .collect();
        let mut sched = BusSchedule::new(&intervals, backoffs, Instant::now());
        let mut line = Line {
            ctx: None,
            activity: LineActivity::new(),
            reopen_at: None,
            backoff: Backoff::new(self.backoff_min, self.backoff_max),
            attempts: 0,
            failing: false,
        };
        info!(bus = %self.name, port = %self.serial.port, baud = self.serial.baud_rate,
              units = self.units.len(), "modbus RTU bus starting");

        'run: loop {
            let mut batches = Vec::new();
            if line.ctx.is_none() {
                if let Some(at) = line.reopen_at.filter(|at| Instant::now() < *at) {
                    tokio::select! {
                        biased;
                        () = cancel.cancelled() => break 'run,
                        (_, req) = ports.next() => {
                            req.finish(Err(CommandError::NotConnected));
                            continue 'run;
                        }
                        () = sleep_until(at) => {}
                    }
                }
                line.attempts += 1;
                if line.attempts > 1 {
                    DeviceStats::bump(&self.stats.reconnects);
                }
                match open_line(&self.serial, &line.activity) {
                    Ok(ctx) => {
                        debug!(bus = %self.name, port = %self.serial.port, "port open");
                        line.ctx = Some(ctx);
                        self.stats.set_connected(true);
                    }
                    Err(e) => {
                        batches = self.all_bad(unix_time_ms(SystemTime::now()));
                        let why = format!("cannot open {}: {e}", self.serial.port);
                        line.lost(&self.stats, &self.name, &why).await;
                    }
                }
            } else if let Some((target, req)) = ports.try_next() {
                let served = cancel
                    .run_until_cancelled(self.serve_command(target, req, &mut line, &mut sched))
                    .await;
                if served.is_none() {
                    break 'run;
                }
                continue 'run;
            } else {
                match sched.next(Instant::now()) {
                    Next::Wait(at) => {
                        tokio::select! {
                            biased;
                            () = cancel.cancelled() => break 'run,
                            (target, req) = ports.next() => {
                                let served = cancel
                                    .run_until_cancelled(
                                        self.serve_command(target, req, &mut line, &mut sched))
                                    .await;
                                if served.is_none() {
                                    break 'run;
                                }
                            }
                            () = sleep_until(at) => {}
                        }
                        continue 'run;
                    }
                    Next::Poll(i) => {
                        let Some((samples, lost)) = cancel
                            .run_until_cancelled(self.poll_unit(i, &mut line, &mut sched))
                            .await
                        else {
                            break 'run;
                        };
                        match lost {
                            Some(Stop::LinkLost) => {
                                line.lost(&self.stats, &self.name, "the port failed during a poll")
                                    .await;
                            }
                            Some(Stop::Garbled) => line.resync(&self.stats).await,
                            Some(Stop::Timeout) | None => {}
                        }
                        batches.push(samples);
                    }
                }
            }
            for batch in batches.into_iter().filter(|b| !b.is_empty()) {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => break 'run,
                    sent = sink.send(batch) => if sent.is_err() {
                        debug!(bus = %self.name, "sample channel closed");
                        break 'run;
                    },
                }
            }
        }
        line.close(&self.stats).await;
        for u in &self.units {
            u.stats.set_connected(false);
        }
        info!(bus = %self.name, "modbus RTU bus stopped");
    }
}

fn tally_success(unit: &DeviceStats, bus: &DeviceStats, ts_ms: i64) {
    Tally {
        device: unit,
        bus: Some(bus),
    }
    .success(ts_ms);
}

impl Driver for ModbusRtuDriver {
    /// The bus name; the units are listed by [`ModbusRtuDriver::devices`].
    fn device(&self) -> &str {
        &self.name
    }

    fn stats(&self) -> Arc<DeviceStats> {
        Arc::clone(&self.stats)
    }

    /// Takes commands for any unit of the bus, with the point named
    /// `device/point`; `Some` when some unit has a writable point.
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
