//! The Modbus TCP poll loop: the IO around the planner and decoder.
//!
//! One task per device. Each poll cycle runs the planned reads over one TCP
//! connection and sends one `Vec<Sample>` stamped with the cycle's start
//! time. A device exception spoils only its read and keeps the connection;
//! a timeout, socket error or malformed frame drops the connection, marks
//! the points Bad, and reconnects after a jittered backoff. While backing
//! off, cycles are skipped and send nothing. Writes to `writable` points
//! arrive on the command port and are sent between cycles, on the same
//! connection. The loop ends only on cancellation or when the sample
//! channel is closed.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dcmms_protocols_core::{
    command_channel, unix_time_ms, Backoff, CommandError, CommandPort, CommandRequest,
    CommandSender, DeviceStats, Driver, DriverFuture,
};
use dcmms_shared::{PointId, Sample};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, MissedTickBehavior};
use tokio_modbus::client::{Client as _, Context};
use tokio_modbus::Slave;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::ModbusPoint;
use crate::decode::bad_read;
use crate::exchange::{self, DevicePlan, Failure, Tally};
use crate::frame_guard::GuardedStream;
use crate::plan::PlannedRead;

/// A built Modbus TCP device, ready to run.
#[derive(Debug)]
pub struct ModbusTcpDriver {
    name: String,
    address: String,
    unit_id: u8,
    poll_interval: Duration,
    timeout: Duration,
    backoff: Backoff,
    points: Vec<ModbusPoint>,
    ids: Vec<PointId>,
    reads: Vec<PlannedRead>,
    stats: Arc<DeviceStats>,
    commands: Option<(CommandSender, CommandPort)>,
}

impl ModbusTcpDriver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: String,
        address: String,
        unit_id: u8,
        poll_interval: Duration,
        timeout: Duration,
        backoff: Backoff,
        points: Vec<ModbusPoint>,
        ids: Vec<PointId>,
        reads: Vec<PlannedRead>,
    ) -> Self {
        ModbusTcpDriver {
            name,
            address,
            unit_id,
            poll_interval,
            timeout,
            backoff,
            points,
            ids,
            reads,
            stats: Arc::new(DeviceStats::new()),
            commands: None,
        }
        .with_commands_if_writable()
    }

    fn with_commands_if_writable(mut self) -> Self {
        if self.points.iter().any(|p| p.writable) {
            self.commands = Some(command_channel());
        }
        self
    }

    /// The planned reads, one request each per poll cycle.
    pub fn reads(&self) -> &[PlannedRead] {
        &self.reads
    }

    /// The validated points, in the order their ids were resolved.
    pub fn points(&self) -> &[ModbusPoint] {
        &self.points
    }

    async fn connect(&self) -> Result<Context, Failure> {
        let attempt = async {
            let addrs = tokio::net::lookup_host(self.address.as_str()).await?;
            let mut last = io::Error::new(io::ErrorKind::NotFound, "host name has no address");
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        // Requests are small and wait for their answer.
                        stream.set_nodelay(true)?;
                        return Ok(stream);
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        };
        match timeout(self.timeout, attempt).await {
            Err(_) => Err(Failure::Timeout),
            Ok(Err(e)) => Err(Failure::Transport(e)),
            Ok(Ok(stream)) => Ok(tokio_modbus::client::tcp::attach_slave(
                GuardedStream::new(stream),
                Slave(self.unit_id),
            )),
        }
    }
}

/// Mutable state of a running device loop.
struct Session {
    conn: Option<Context>,
    retry_at: Option<Instant>,
    attempts: u64,
    failing: bool,
}

impl ModbusTcpDriver {
    /// One poll cycle; returns the samples to send (empty when the cycle was
    /// skipped while backing off).
    async fn cycle(&mut self, s: &mut Session, ts_ms: i64) -> Vec<Sample> {
        let mut samples = Vec::new();
        if s.conn.is_none() {
            if s.retry_at.is_some_and(|t| Instant::now() < t) {
                return samples;
            }
            s.attempts += 1;
            if s.attempts > 1 {
                DeviceStats::bump(&self.stats.reconnects);
            }
            match self.connect().await {
                Ok(ctx) => {
                    debug!(device = %self.name, address = %self.address, "connected");
                    self.stats.set_connected(true);
                    s.conn = Some(ctx);
                }
                Err(failure) => {
                    failure.count(Tally::device(&self.stats));
                    for read in &self.reads {
                        bad_read(read, &self.ids, ts_ms, &mut samples);
                    }
                    self.fail_cycle(s, &failure, "connect");
                    return samples;
                }
            }
        }

        let Some(ctx) = s.conn.as_mut() else {
            return samples;
        };
        let outcome = exchange::poll_reads(
            ctx,
            DevicePlan {
                reads: &self.reads,
                points: &self.points,
                ids: &self.ids,
            },
            self.timeout,
            Tally::device(&self.stats),
            None,
            ts_ms,
        )
        .await;
        samples = outcome.samples;
        let first_failure = outcome.first_failure;
        let answered = outcome.answered;
        // Over TCP a timeout drops the connection too: a late answer would
        // otherwise be taken for the answer to the next request.
        let lost = outcome.stopped.is_some();
        if lost {
            if let Some(mut ctx) = s.conn.take() {
                // Best effort: the peer may already be gone.
                let _ = timeout(Duration::from_millis(100), ctx.disconnect()).await;
            }
            self.stats.set_connected(false);
        }
        if answered {
            // The device talks to us: a later connection loss starts the
            // backoff afresh, even if some read keeps failing.
            self.backoff.reset();
        }
        match first_failure {
            None => {
                DeviceStats::bump(&self.stats.polls_ok);
                self.stats.record_success(ts_ms);
                if s.failing {
                    info!(device = %self.name, "device answers again");
                    s.failing = false;
                }
            }
            Some(f) => self.fail_cycle(s, &f, "poll"),
        }
        samples
    }

    fn fail_cycle(&mut self, s: &mut Session, failure: &Failure, stage: &str) {
        DeviceStats::bump(&self.stats.polls_failed);
        if s.conn.is_none() {
            self.stats.set_connected(false);
            let delay = self.backoff.next_delay();
            s.retry_at = Some(Instant::now() + delay);
            debug!(device = %self.name, delay_ms = delay.as_millis() as u64, "reconnect scheduled");
        }
        if !s.failing {
            warn!(device = %self.name, address = %self.address, stage, error = %failure,
                  "modbus device failing; further failures are logged at debug level");
            s.failing = true;
        } else {
            debug!(device = %self.name, stage, error = %failure, "still failing");
        }
    }

    async fn run_loop(mut self, sink: mpsc::Sender<Vec<Sample>>, cancel: CancellationToken) {
        let mut interval = tokio::time::interval(self.poll_interval);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut session = Session {
            conn: None,
            retry_at: None,
            attempts: 0,
            failing: false,
        };
        let mut port = self.commands.take().map(|(_, port)| port);
        info!(device = %self.name, address = %self.address, points = self.points.len(),
              reads = self.reads.len(), "modbus device starting");
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                req = next_command(&mut port) => {
                    match req {
                        Some(req) => {
                            let served = cancel
                                .run_until_cancelled(self.serve_command(&mut session, req))
                                .await;
                            match served {
                                None => break,
                                // Show the written value at once.
                                Some(true) => interval.reset_immediately(),
                                Some(false) => {}
                            }
                        }
                        None => port = None,
                    }
                    continue;
                }
                _ = interval.tick() => {}
            }
            let ts_ms = unix_time_ms(SystemTime::now());
            let Some(samples) = cancel
                .run_until_cancelled(self.cycle(&mut session, ts_ms))
                .await
            else {
                break;
            };
            if samples.is_empty() {
                continue;
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                sent = sink.send(samples) => if sent.is_err() {
                    debug!(device = %self.name, "sample channel closed");
                    break;
                },
            }
        }
        if let Some(mut ctx) = session.conn.take() {
            let _ = timeout(Duration::from_millis(100), ctx.disconnect()).await;
        }
        self.stats.set_connected(false);
        info!(device = %self.name, "modbus device stopped");
    }

    /// Sends one write on the current connection. Never connects: a command
    /// while the device is unreachable is refused with `NotConnected`.
    async fn serve_command(&mut self, s: &mut Session, req: CommandRequest) -> bool {
        let planned = exchange::plan_command(&self.points, &req.command);
        let result = match (planned, s.conn.as_mut()) {
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err(CommandError::NotConnected),
            (Ok(write), Some(ctx)) => {
                match exchange::write(ctx, &write, self.timeout, Tally::device(&self.stats), None)
                    .await
                {
                    Ok(()) => Ok(()),
                    Err(f) => {
                        if f.stop().is_some() {
                            if let Some(mut ctx) = s.conn.take() {
                                let _ = timeout(Duration::from_millis(100), ctx.disconnect()).await;
                            }
                            self.stats.set_connected(false);
                        }
                        Err(f.to_command_error())
                    }
                }
            }
        };
        let ok = result.is_ok();
        match &result {
            Ok(()) => info!(device = %self.name, point = %req.command.point,
                            value = %req.command.value, "write done"),
            Err(e) => warn!(device = %self.name, point = %req.command.point,
                            value = %req.command.value, error = %e, "write refused"),
        }
        req.finish(result);
        ok
    }
}

/// The next command, or never when there is no port.
pub(crate) async fn next_command(port: &mut Option<CommandPort>) -> Option<CommandRequest> {
    match port {
        Some(p) => p.rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Driver for ModbusTcpDriver {
    fn device(&self) -> &str {
        &self.name
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
