//! Requests to one device over an open tokio-modbus context, the same for
//! TCP and RTU: the planned reads of one poll cycle and single writes.
//!
//! It classifies every failure ([`Failure`]) so that the callers can decide
//! what it costs: a device exception spoils one read, a timeout or a broken
//! link ends the cycle. It counts into [`DeviceStats`] but never opens,
//! closes or schedules anything; the TCP and RTU loops do that.

use std::io;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use dcmms_protocols_core::{Command, CommandError, DeviceStats};
use dcmms_shared::{PointId, Sample};
use tokio::time::timeout;
use tokio_modbus::client::{Client as _, Context};
use tokio_modbus::{ExceptionCode, Request, Response};
use tracing::debug;

use crate::config::{ModbusPoint, Table};
use crate::decode::{bad_read, decode_read, ReadData};
use crate::plan::PlannedRead;
use crate::rtu_line::LineActivity;
use crate::write::{plan_write, WriteRequest};

/// On a serial line: the line's activity and the inter-frame gap, waited
/// for before each request so that the wait stays out of round-trip times.
pub(crate) type Gap<'a> = Option<(&'a LineActivity, Duration)>;

async fn wait_gap(gap: Gap<'_>) {
    if let Some((line, gap)) = gap {
        line.wait_quiet(gap).await;
    }
}

/// What went wrong with one request or connection attempt.
#[derive(Debug)]
pub(crate) enum Failure {
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
            Failure::Exception(code) => write!(f, "device exception: {}", exception_name(*code)),
        }
    }
}

/// "Illegal data address (2)": the name tokio-modbus gives plus the code.
pub fn exception_name(code: ExceptionCode) -> String {
    format!("{code} ({})", u8::from(code))
}

impl Failure {
    /// Whether this failure ends a poll cycle, and why.
    pub(crate) fn stop(&self) -> Option<Stop> {
        match self {
            Failure::Timeout => Some(Stop::Timeout),
            Failure::Transport(_) => Some(Stop::LinkLost),
            Failure::Decode {
                drop_connection: true,
                ..
            } => Some(Stop::Garbled),
            Failure::Decode { .. } | Failure::Exception(_) => None,
        }
    }

    pub(crate) fn count(&self, tally: Tally<'_>) {
        tally.bump(|s| match self {
            Failure::Timeout => &s.timeouts,
            Failure::Transport(_) => &s.transport_errors,
            Failure::Decode { .. } => &s.decode_errors,
            Failure::Exception(_) => &s.exceptions,
        });
    }

    /// How a failed write is reported to whoever sent the command.
    pub(crate) fn to_command_error(&self) -> CommandError {
        match self {
            Failure::Timeout => CommandError::Timeout,
            Failure::Exception(code) => CommandError::Refused(exception_name(*code)),
            Failure::Transport(e) => CommandError::Transport(e.to_string()),
            Failure::Decode { message, .. } => {
                CommandError::Transport(format!("malformed answer: {message}"))
            }
        }
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

/// The counters one request updates: its device's and, for a unit on an
/// RTU bus, the bus's aggregate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tally<'a> {
    pub device: &'a DeviceStats,
    pub bus: Option<&'a DeviceStats>,
}

impl<'a> Tally<'a> {
    pub(crate) fn device(device: &'a DeviceStats) -> Self {
        Tally { device, bus: None }
    }

    pub(crate) fn bump(&self, counter: impl Fn(&DeviceStats) -> &AtomicU64) {
        DeviceStats::bump(counter(self.device));
        if let Some(bus) = self.bus {
            DeviceStats::bump(counter(bus));
        }
    }

    pub(crate) fn rtt(&self, rtt_us: u64) {
        self.device.record_rtt_us(rtt_us);
        if let Some(bus) = self.bus {
            bus.record_rtt_us(rtt_us);
        }
    }

    pub(crate) fn success(&self, ts_ms: i64) {
        self.bump(|s| &s.polls_ok);
        self.device.record_success(ts_ms);
        if let Some(bus) = self.bus {
            bus.record_success(ts_ms);
        }
    }
}

fn elapsed_us(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Sends one planned read and checks the kind of the answer.
pub(crate) async fn read(
    ctx: &mut Context,
    read: &PlannedRead,
    limit: Duration,
    tally: Tally<'_>,
    gap: Gap<'_>,
) -> Result<ReadData, Failure> {
    let request = match read.table {
        Table::Holding => Request::ReadHoldingRegisters(read.address, read.count),
        Table::Input => Request::ReadInputRegisters(read.address, read.count),
        Table::Coil => Request::ReadCoils(read.address, read.count),
        Table::Discrete => Request::ReadDiscreteInputs(read.address, read.count),
    };
    wait_gap(gap).await;
    // `Client::call` rather than the `Reader` helpers: those
    // debug-assert on the response length, which a broken server controls.
    let started = Instant::now();
    let response = call(ctx, request, limit).await?;
    let rtt = elapsed_us(started);
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
    tally.rtt(rtt);
    Ok(data)
}

async fn call(
    ctx: &mut Context,
    request: Request<'_>,
    limit: Duration,
) -> Result<Response, Failure> {
    match timeout(limit, ctx.call(request)).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok(Err(code))) => Err(Failure::Exception(code)),
        Ok(Ok(Ok(response))) => Ok(response),
    }
}

/// What one poll cycle of one device produced.
#[derive(Debug, Default)]
pub(crate) struct PollOutcome {
    /// One sample per point: Good, or Bad where its read failed.
    pub samples: Vec<Sample>,
    /// The first failure of the cycle, if any.
    pub first_failure: Option<Failure>,
    /// The device answered at least one request (data or exception).
    pub answered: bool,
    /// Why the cycle ended early, if it did; the reads after that were not
    /// sent and their points are Bad.
    pub stopped: Option<Stop>,
}

/// Why a poll cycle ended before its last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// No answer in time; the link itself may be fine.
    Timeout,
    /// Bytes that are not a valid answer: the link works but its framing
    /// state cannot be trusted (reconnect, or reopen the port, at once).
    Garbled,
    /// The link (connection, port) failed.
    LinkLost,
}

/// What one device's cycle reads and how the answers map to points.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DevicePlan<'a> {
    pub reads: &'a [PlannedRead],
    pub points: &'a [ModbusPoint],
    pub ids: &'a [PointId],
}

/// Runs the planned reads of one device in order. Stops at the first
/// timeout or broken link: on a bus, a second request to a unit that did
/// not answer the first one would only cost another timeout.
pub(crate) async fn poll_reads(
    ctx: &mut Context,
    device: DevicePlan<'_>,
    limit: Duration,
    tally: Tally<'_>,
    gap: Gap<'_>,
    ts_ms: i64,
) -> PollOutcome {
    let DevicePlan { reads, points, ids } = device;
    let mut out = PollOutcome::default();
    for r in reads {
        if out.stopped.is_some() {
            bad_read(r, ids, ts_ms, &mut out.samples);
            continue;
        }
        let result = read(ctx, r, limit, tally, gap).await;
        out.answered |= matches!(result, Ok(_) | Err(Failure::Exception(_)));
        let failure = match result {
            Ok(data) => match decode_read(r, points, ids, &data, ts_ms, &mut out.samples) {
                Ok(0) => None,
                Ok(bad_points) => {
                    for _ in 0..bad_points {
                        tally.bump(|s| &s.decode_errors);
                    }
                    Some(Failure::Decode {
                        message: format!("{bad_points} value(s) not finite"),
                        drop_connection: false,
                    })
                }
                Err(mismatch) => {
                    bad_read(r, ids, ts_ms, &mut out.samples);
                    let f = Failure::Decode {
                        message: mismatch.to_string(),
                        drop_connection: false,
                    };
                    f.count(tally);
                    Some(f)
                }
            },
            Err(f) => {
                bad_read(r, ids, ts_ms, &mut out.samples);
                f.count(tally);
                out.stopped = f.stop();
                Some(f)
            }
        };
        if let Some(f) = failure {
            debug!(table = %r.table, address = r.address, count = r.count,
                   error = %f, "read failed");
            out.first_failure.get_or_insert(f);
        }
    }
    out
}

/// The write a command asks for, after checking that the point exists and
/// is writable.
pub(crate) fn plan_command(
    points: &[ModbusPoint],
    command: &Command,
) -> Result<WriteRequest, CommandError> {
    let point = points
        .iter()
        .find(|p| p.name == command.point)
        .ok_or_else(|| CommandError::UnknownPoint(command.point.clone()))?;
    if !point.writable {
        return Err(CommandError::NotWritable(point.name.clone()));
    }
    plan_write(point, command.value)
}

/// Sends one write and checks the echo.
pub(crate) async fn write(
    ctx: &mut Context,
    request: &WriteRequest,
    limit: Duration,
    tally: Tally<'_>,
    gap: Gap<'_>,
) -> Result<(), Failure> {
    wait_gap(gap).await;
    let started = Instant::now();
    let result = match call(ctx, request.to_request(), limit).await {
        Ok(response) => request
            .check_echo(&response)
            .map_err(|message| Failure::Decode {
                message,
                drop_connection: false,
            }),
        Err(f) => Err(f),
    };
    match &result {
        Ok(()) => tally.rtt(elapsed_us(started)),
        Err(f) => f.count(tally),
    }
    result
}
