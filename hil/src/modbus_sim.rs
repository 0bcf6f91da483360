//! A Modbus TCP server that serves simulated inverters, one per unit id.
//!
//! On each request the addressed inverter is advanced to the current
//! simulated time (at most once per simulated second) and its register
//! image re-rendered; reads are served from that image, writes go to the
//! set points in the map. Unit ids 0 and 255 (the "direct TCP device"
//! conventions) address the lowest unit id; an unknown unit id gets
//! exception 0x0B (gateway target device failed to respond).

use std::collections::BTreeMap;
use std::future::{ready, Ready};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use dcmms_modbus::Table;
use dcmms_protocols_core::unix_time_ms;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use crate::register_map::{apply_write, render, RegisterImage};
use crate::solar::SolarInverter;

/// Maps real time to simulated time (optionally shifted and accelerated,
/// e.g. to show a whole day in a demo).
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    real_start: Instant,
    sim_start_ms: i64,
    speed: f64,
}

impl SimClock {
    /// Simulated time is wall-clock time.
    pub fn real_time() -> Self {
        Self::starting_at(unix_time_ms(SystemTime::now()), 1.0)
    }

    /// Simulated time starts at `sim_start_ms` and runs `speed` times faster
    /// than real time.
    pub fn starting_at(sim_start_ms: i64, speed: f64) -> Self {
        SimClock {
            real_start: Instant::now(),
            sim_start_ms,
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
        }
    }

    pub fn now_ms(&self) -> i64 {
        let real_ms = self.real_start.elapsed().as_secs_f64() * 1000.0;
        self.sim_start_ms + (real_ms * self.speed) as i64
    }
}

struct Unit {
    inverter: SolarInverter,
    image: RegisterImage,
    stepped_at_ms: Option<i64>,
}

/// The inverters behind one server.
pub struct Fleet {
    clock: SimClock,
    units: BTreeMap<u8, Unit>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("clock", &self.clock)
            .field("units", &self.units.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Fleet {
    pub fn new(clock: SimClock) -> Self {
        Fleet {
            clock,
            units: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) the inverter answering to `unit_id`.
    pub fn add(&mut self, unit_id: u8, inverter: SolarInverter) -> &mut Self {
        self.units.insert(
            unit_id,
            Unit {
                inverter,
                image: RegisterImage::sized(),
                stepped_at_ms: None,
            },
        );
        self
    }

    pub fn unit_ids(&self) -> Vec<u8> {
        self.units.keys().copied().collect()
    }

    /// The inverter of `unit_id`, e.g. to inject a fault.
    pub fn inverter_mut(&mut self, unit_id: u8) -> Option<&mut SolarInverter> {
        self.units.get_mut(&unit_id).map(|u| &mut u.inverter)
    }

    fn unit(&mut self, unit_id: u8) -> Result<&mut Unit, ExceptionCode> {
        let id = match unit_id {
            0 | 255 => *self
                .units
                .keys()
                .next()
                .ok_or(ExceptionCode::GatewayTargetDevice)?,
            id => id,
        };
        let now = self.clock.now_ms();
        let unit = self
            .units
            .get_mut(&id)
            .ok_or(ExceptionCode::GatewayTargetDevice)?;
        if unit
            .stepped_at_ms
            .is_none_or(|t| now - t >= 1000 || now < t)
        {
            unit.inverter.step(now);
            unit.stepped_at_ms = Some(now);
            unit.image = render(
                unit.inverter.state(),
                &unit.inverter.controls(),
                unit.inverter.params(),
            );
        }
        Ok(unit)
    }

    /// Answers one request, sans-IO.
    pub fn handle(
        &mut self,
        unit_id: u8,
        request: &Request<'_>,
    ) -> Result<Response, ExceptionCode> {
        let unit = self.unit(unit_id)?;
        let img = &unit.image;
        match request {
            Request::ReadHoldingRegisters(a, n) => {
                slice(&img.holding, *a, *n, 125).map(Response::ReadHoldingRegisters)
            }
            Request::ReadInputRegisters(a, n) => {
                slice(&img.input, *a, *n, 125).map(Response::ReadInputRegisters)
            }
            Request::ReadCoils(a, n) => slice(&img.coils, *a, *n, 2000).map(Response::ReadCoils),
            Request::ReadDiscreteInputs(a, n) => {
                slice(&img.discrete, *a, *n, 2000).map(Response::ReadDiscreteInputs)
            }
            Request::WriteSingleRegister(a, v) => {
                write(unit, Table::Holding, *a, &[*v])?;
                Ok(Response::WriteSingleRegister(*a, *v))
            }
            Request::WriteMultipleRegisters(a, values) => {
                write(unit, Table::Holding, *a, values)?;
                Ok(Response::WriteMultipleRegisters(*a, values.len() as u16))
            }
            Request::WriteSingleCoil(a, v) => {
                write(unit, Table::Coil, *a, &[u16::from(*v)])?;
                Ok(Response::WriteSingleCoil(*a, *v))
            }
            Request::WriteMultipleCoils(a, values) => {
                let raw: Vec<u16> = values.iter().map(|&b| u16::from(b)).collect();
                write(unit, Table::Coil, *a, &raw)?;
                Ok(Response::WriteMultipleCoils(*a, values.len() as u16))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

fn slice<T: Clone>(
    image: &[T],
    address: u16,
    count: u16,
    max: u16,
) -> Result<Vec<T>, ExceptionCode> {
    if count == 0 || count > max {
        return Err(ExceptionCode::IllegalDataValue);
    }
    let start = usize::from(address);
    image
        .get(start..start + usize::from(count))
        .map(<[T]>::to_vec)
        .ok_or(ExceptionCode::IllegalDataAddress)
}

/// Writes consecutive values; all must land on writable points or nothing
/// is written.
fn write(unit: &mut Unit, table: Table, address: u16, raw: &[u16]) -> Result<(), ExceptionCode> {
    if raw.is_empty() {
        return Err(ExceptionCode::IllegalDataValue);
    }
    let mut controls = unit.inverter.controls();
    for (i, &v) in raw.iter().enumerate() {
        let a = address
            .checked_add(i as u16)
            .ok_or(ExceptionCode::IllegalDataAddress)?;
        apply_write(&mut controls, table, a, v).map_err(|_| ExceptionCode::IllegalDataAddress)?;
    }
    unit.inverter.set_controls(controls);
    // Show the new set points on the next read.
    unit.stepped_at_ms = None;
    Ok(())
}

#[derive(Clone)]
struct SimService {
    fleet: Arc<Mutex<Fleet>>,
}

fn lock(fleet: &Mutex<Fleet>) -> MutexGuard<'_, Fleet> {
    // A panic while holding the lock cannot leave the fleet half-updated in
    // a way that matters for a simulator; keep serving.
    fleet.lock().unwrap_or_else(|e| e.into_inner())
}

impl Service for SimService {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        ready(lock(&self.fleet).handle(req.slave, &req.request))
    }
}

/// Serves `fleet` on `addr` (port 0 picks a free port). Returns the bound
/// address and the server task.
pub async fn serve(
    addr: SocketAddr,
    fleet: Fleet,
) -> io::Result<(SocketAddr, JoinHandle<io::Result<()>>)> {
    serve_shared(addr, Arc::new(Mutex::new(fleet))).await
}

/// [`serve`] with a fleet the caller keeps a handle to (to inject faults or
/// change set points while serving).
pub async fn serve_shared(
    addr: SocketAddr,
    fleet: Arc<Mutex<Fleet>>,
) -> io::Result<(SocketAddr, JoinHandle<io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let service = SimService { fleet };
    let server = Server::new(listener);
    let task = tokio::spawn(async move {
        let on_connected = |stream, socket_addr| {
            let service = service.clone();
            async move { accept_tcp_connection(stream, socket_addr, move |_| Ok(Some(service.clone()))) }
        };
        let on_process_error = |err: io::Error| {
            tracing::debug!(error = %err, "simulator connection ended with an error");
        };
        server.serve(&on_connected, on_process_error).await
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solar::InverterParams;

    const NOON: i64 = 1_780_272_000_000 + 12 * 3_600_000;

    fn fleet() -> Fleet {
        let mut f = Fleet::new(SimClock::starting_at(NOON, 1.0));
        f.add(1, SolarInverter::new(InverterParams::default()));
        f.add(
            2,
            SolarInverter::new(InverterParams {
                rated_ac_w: 30_000.0,
                array_wp: 33_000.0,
                seed: 2,
                ..InverterParams::default()
            }),
        );
        f
    }

    #[test]
    fn reads_are_bounded_and_checked() {
        let mut f = fleet();
        let r = f.handle(1, &Request::ReadInputRegisters(0, 28)).unwrap();
        assert!(matches!(r, Response::ReadInputRegisters(ref w) if w.len() == 28));
        assert_eq!(
            f.handle(1, &Request::ReadInputRegisters(27, 2)),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            f.handle(1, &Request::ReadInputRegisters(0, 0)),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(
            f.handle(1, &Request::ReadHoldingRegisters(0, 126)),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(
            f.handle(9, &Request::ReadHoldingRegisters(0, 1)),
            Err(ExceptionCode::GatewayTargetDevice)
        );
        assert_eq!(
            f.handle(
                1,
                &Request::ReadWriteMultipleRegisters(0, 1, 0, std::borrow::Cow::Borrowed(&[1]))
            ),
            Err(ExceptionCode::IllegalFunction)
        );
    }

    #[test]
    fn units_are_distinct_and_zero_means_first() {
        let mut f = fleet();
        let rated = |f: &mut Fleet, unit| match f.handle(unit, &Request::ReadHoldingRegisters(2, 2))
        {
            Ok(Response::ReadHoldingRegisters(w)) => u32::from(w[0]) << 16 | u32::from(w[1]),
            other => panic!("{other:?}"),
        };
        assert_eq!(rated(&mut f, 1), 50_000);
        assert_eq!(rated(&mut f, 2), 30_000);
        assert_eq!(rated(&mut f, 0), 50_000);
        assert_eq!(rated(&mut f, 255), 50_000);
    }

    #[test]
    fn writes_change_set_points_and_output() {
        let mut f = fleet();
        let power = |f: &mut Fleet| match f.handle(1, &Request::ReadInputRegisters(2, 2)) {
            Ok(Response::ReadInputRegisters(w)) => u32::from(w[0]) << 16 | u32::from(w[1]),
            other => panic!("{other:?}"),
        };
        assert!(power(&mut f) > 30_000);
        assert_eq!(
            f.handle(1, &Request::WriteSingleRegister(0, 200)),
            Ok(Response::WriteSingleRegister(0, 200))
        );
        assert_eq!(power(&mut f), 10_000);
        assert_eq!(
            f.handle(1, &Request::ReadHoldingRegisters(0, 1)),
            Ok(Response::ReadHoldingRegisters(vec![200]))
        );
        // Rated power is read-only; a multi-write touching it changes nothing.
        assert_eq!(
            f.handle(
                1,
                &Request::WriteMultipleRegisters(1, std::borrow::Cow::Owned(vec![900, 1]))
            ),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(f.inverter_mut(1).unwrap().controls().cos_phi, 1.0);
        assert_eq!(
            f.handle(1, &Request::WriteSingleCoil(0, false)),
            Ok(Response::WriteSingleCoil(0, false))
        );
        assert_eq!(power(&mut f), 0);
        assert_eq!(
            f.handle(1, &Request::ReadCoils(0, 1)),
            Ok(Response::ReadCoils(vec![false]))
        );
    }

    #[test]
    fn clock_shifts_and_accelerates() {
        let c = SimClock::starting_at(1000, 3600.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = c.now_ms();
        assert!(now >= 1000 + 20 * 3600, "{now}");
        let real = SimClock::real_time().now_ms();
        assert!((real - unix_time_ms(SystemTime::now())).abs() < 1000);
    }
}
