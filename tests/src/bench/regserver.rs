//! A Modbus TCP server of plain holding (and input) registers whose values
//! change every second: large register maps for load tests, with no
//! device model behind them. Any unit id, any address; a register's value
//! is a pure function of (unit id, address, second).

use std::future::{ready, Ready};
use std::io;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

/// Most registers one read may ask for (Modbus limit).
const MAX_READ: u16 = 125;

/// The value of a register at a given second: between 2000 and 2999,
/// i.e. 200.0 to 299.9 once scaled by 0.1.
pub fn register_value(unit: u8, address: u16, second: u64) -> u16 {
    let mix = u64::from(address) * 7919 + u64::from(unit) * 104_729 + second * 13;
    2000 + (mix % 1000) as u16
}

/// Answers one request at `second`, sans-IO.
pub fn answer(unit: u8, request: &Request<'_>, second: u64) -> Result<Response, ExceptionCode> {
    let read = |address: u16, count: u16| -> Result<Vec<u16>, ExceptionCode> {
        if count == 0 || count > MAX_READ {
            return Err(ExceptionCode::IllegalDataValue);
        }
        if u32::from(address) + u32::from(count) > 65_536 {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        Ok((0..count)
            .map(|i| register_value(unit, address + i, second))
            .collect())
    };
    match request {
        Request::ReadHoldingRegisters(a, n) => read(*a, *n).map(Response::ReadHoldingRegisters),
        Request::ReadInputRegisters(a, n) => read(*a, *n).map(Response::ReadInputRegisters),
        _ => Err(ExceptionCode::IllegalFunction),
    }
}

#[derive(Clone, Copy)]
struct Registers;

impl Service for Registers {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        ready(answer(req.slave, &req.request, second))
    }
}

/// Serves on `addr` (port 0 picks one); returns the bound address and the
/// server task.
pub async fn serve(addr: SocketAddr) -> io::Result<(SocketAddr, JoinHandle<io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let server = Server::new(listener);
    let task = tokio::spawn(async move {
        let on_connected = |stream, socket_addr| async move {
            accept_tcp_connection(stream, socket_addr, |_| Ok(Some(Registers)))
        };
        server.serve(&on_connected, |_err: io::Error| {}).await
    });
    Ok((local, task))
}

/// A point map of `count` u16 holding registers from address 0, scaled by
/// 0.1, named `r00000`, `r00001`, ...
pub fn points_csv(count: u16) -> String {
    let mut s = String::from("name,table,address,data_type,scale\n");
    for a in 0..count {
        s.push_str(&format!("r{a:05},holding,{a},u16,0.1\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded_and_values_change_every_second() {
        let r = answer(3, &Request::ReadHoldingRegisters(10, 125), 100).unwrap();
        let Response::ReadHoldingRegisters(v) = r else {
            panic!("{r:?}")
        };
        assert_eq!(v.len(), 125);
        assert!(v.iter().all(|x| (2000..3000).contains(x)));
        assert_eq!(v[0], register_value(3, 10, 100));
        assert_ne!(register_value(3, 10, 100), register_value(3, 10, 101));
        assert_ne!(register_value(3, 10, 100), register_value(4, 10, 100));
        assert_eq!(
            answer(1, &Request::ReadHoldingRegisters(0, 126), 0),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(
            answer(1, &Request::ReadInputRegisters(65_500, 100), 0),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            answer(1, &Request::ReadCoils(0, 1), 0),
            Err(ExceptionCode::IllegalFunction)
        );
    }

    #[test]
    fn point_map_is_accepted_by_the_gateway() {
        use crate::bench::setup::{DeviceSpec, GatewaySpec};
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("regs.csv");
        std::fs::write(&csv, points_csv(300)).unwrap();
        let spec = GatewaySpec {
            gateway: "gw".into(),
            state_dir: dir.path().join("state"),
            bundle_dir: dir.path().join("certs"),
            mqtt: "127.0.0.1:8883".parse().unwrap(),
            commit_interval_ms: 1000,
            devices: vec![DeviceSpec {
                name: "regs".into(),
                address: "127.0.0.1:1502".parse().unwrap(),
                unit_id: 1,
                poll_interval_ms: 1000,
                points_csv: csv,
            }],
        };
        let path = spec.write(&dir.path().join("gateway.toml")).unwrap();
        let loaded = dcmms_gateway::config::LoadedConfig::load(&path).unwrap();
        let mut interner = dcmms_gateway::pipeline::Interner::default();
        dcmms_gateway::daemon::build_drivers(&loaded, &mut interner).unwrap();
        assert_eq!(interner.len(), 300);
    }
}
