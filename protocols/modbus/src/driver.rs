//! The Modbus TCP poll loop: the IO around the planner and decoder.
//!
//! One task per device. Each poll cycle runs the planned reads over one TCP
//! connection and sends one `Vec<Sample>` stamped with the cycle's start
//! time. A device exception spoils only its read and keeps the connection;
//! a timeout, socket error or malformed frame drops the connection, marks
//! the points Bad, and reconnects after a jittered backoff. While backing
//! off, cycles are skipped and send nothing. The loop ends only on
//! cancellation or when the sample channel is closed.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dcmms_protocols_core::{unix_time_ms, Backoff, DeviceStats, Driver, DriverFuture};
use dcmms_shared::{PointId, Sample};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, MissedTickBehavior};
use tokio_modbus::client::{Client as _, Context};
use tokio_modbus::{ExceptionCode, Request, Response, Slave};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{ModbusPoint, Table};
use crate::decode::{bad_read, decode_read, ReadData};
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
}

/// What went wrong with one request or connection attempt.
#[derive(Debug)]
enum Failure {
    Timeout,
    Transport(io::Error),
    /// A frame that is not a valid answer to the request. `drop_connection`
    /// when the byte stream can no longer be trusted.
    Decode {
        message: String,
        drop_connection: bool,
    },
    Exception(ExceptionCode),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => f.write_str("timed out"),
            Failure::Transport(e) => write!(f, "transport error: {e}"),
            Failure::Decode { message, .. } => write!(f, "malformed response: {message}"),
            Failure::Exception(code) => write!(f, "device exception: {code}"),
        }
    }
}

impl Failure {
    fn drops_connection(&self) -> bool {
        match self {
            Failure::Timeout | Failure::Transport(_) => true,
            Failure::Decode {
                drop_connection, ..
            } => *drop_connection,
            Failure::Exception(_) => false,
        }
    }

    fn count(&self, stats: &DeviceStats) {
        let counter = match self {
            Failure::Timeout => &stats.timeouts,
            Failure::Transport(_) => &stats.transport_errors,
            Failure::Decode { .. } => &stats.decode_errors,
            Failure::Exception(_) => &stats.exceptions,
        };
        DeviceStats::bump(counter);
    }
}

impl From<tokio_modbus::Error> for Failure {
    fn from(e: tokio_modbus::Error) -> Self {
        match e {
            tokio_modbus::Error::Protocol(p) => Failure::Decode {
                message: p.to_string(),
                drop_connection: true,
            },
            // tokio-modbus reports frames it cannot parse as these kinds.
            tokio_modbus::Error::Transport(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidData
                        | io::ErrorKind::InvalidInput
                        | io::ErrorKind::UnexpectedEof
                ) =>
            {
                Failure::Decode {
                    message: e.to_string(),
                    drop_connection: true,
                }
            }
            tokio_modbus::Error::Transport(e) => Failure::Transport(e),
        }
    }
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
        }
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

    async fn execute(&self, ctx: &mut Context, read: &PlannedRead) -> Result<ReadData, Failure> {
        let request = match read.table {
            Table::Holding => Request::ReadHoldingRegisters(read.address, read.count),
            Table::Input => Request::ReadInputRegisters(read.address, read.count),
            Table::Coil => Request::ReadCoils(read.address, read.count),
            Table::Discrete => Request::ReadDiscreteInputs(read.address, read.count),
        };
        // `Client::call` rather than the `Reader` helpers: those
        // debug-assert on the response length, which a broken server controls.
        let started = Instant::now();
        let response = match timeout(self.timeout, ctx.call(request)).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(Err(code))) => return Err(Failure::Exception(code)),
            Ok(Ok(Ok(response))) => response,
        };
        let rtt = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let data = match (read.table, response) {
            (Table::Holding, Response::ReadHoldingRegisters(w))
            | (Table::Input, Response::ReadInputRegisters(w)) => ReadData::Registers(w),
            (Table::Coil, Response::ReadCoils(b))
            | (Table::Discrete, Response::ReadDiscreteInputs(b)) => ReadData::Bits(b),
            (_, other) => {
                return Err(Failure::Decode {
                    message: format!(
                        "response {:?} to a {} read",
                        other.function_code(),
                        read.table
                    ),
                    drop_connection: true,
                })
            }
        };
        self.stats.record_rtt_us(rtt);
        Ok(data)
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
                    failure.count(&self.stats);
                    for read in &self.reads {
                        bad_read(read, &self.ids, ts_ms, &mut samples);
                    }
                    self.fail_cycle(s, &failure, "connect");
                    return samples;
                }
            }
        }

        let mut first_failure: Option<Failure> = None;
        let mut lost = false;
        let mut answered = false;
        for read in &self.reads {
            let Some(ctx) = s.conn.as_mut().filter(|_| !lost) else {
                bad_read(read, &self.ids, ts_ms, &mut samples);
                continue;
            };
            let result = self.execute(ctx, read).await;
            answered |= matches!(result, Ok(_) | Err(Failure::Exception(_)));
            let failure = match result {
                Ok(data) => {
                    match decode_read(read, &self.points, &self.ids, &data, ts_ms, &mut samples) {
                        Ok(0) => None,
                        Ok(bad_points) => {
                            for _ in 0..bad_points {
                                DeviceStats::bump(&self.stats.decode_errors);
                            }
                            Some(Failure::Decode {
                                message: format!("{bad_points} value(s) not finite"),
                                drop_connection: false,
                            })
                        }
                        Err(mismatch) => {
                            bad_read(read, &self.ids, ts_ms, &mut samples);
                            let f = Failure::Decode {
                                message: mismatch.to_string(),
                                drop_connection: false,
                            };
                            f.count(&self.stats);
                            Some(f)
                        }
                    }
                }
                Err(f) => {
                    bad_read(read, &self.ids, ts_ms, &mut samples);
                    f.count(&self.stats);
                    lost = f.drops_connection();
                    Some(f)
                }
            };
            if let Some(f) = failure {
                debug!(device = %self.name, table = %read.table, address = read.address,
                       count = read.count, error = %f, "read failed");
                first_failure.get_or_insert(f);
            }
        }

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
        info!(device = %self.name, address = %self.address, points = self.points.len(),
              reads = self.reads.len(), "modbus device starting");
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
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
}

impl Driver for ModbusTcpDriver {
    fn device(&self) -> &str {
        &self.name
    }

    fn stats(&self) -> Arc<DeviceStats> {
        Arc::clone(&self.stats)
    }

    fn run(
        self: Box<Self>,
        sink: mpsc::Sender<Vec<Sample>>,
        cancel: CancellationToken,
    ) -> DriverFuture {
        Box::pin((*self).run_loop(sink, cancel))
    }
}
