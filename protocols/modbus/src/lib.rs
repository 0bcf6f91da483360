//! Modbus TCP and RTU drivers (tokio-modbus, tokio-serial).
//!
//! This crate owns everything Modbus: the `[[modbus]]` and `[[modbus_rtu]]`
//! configs and CSV point lists ([`ModbusTcpConfig`], [`ModbusRtuConfig`],
//! [`points_csv`]), the sans-IO read planner ([`plan`]), response decoder
//! ([`decode`]), write encoder ([`write`](mod@write)) and bus scheduler
//! ([`bus_schedule`]), guards on the bytes of both transports
//! ([`frame_guard`], [`rtu_line`]), the poll loops ([`ModbusTcpDriver`],
//! one task per TCP device; [`ModbusRtuDriver`], one task per serial line)
//! and unit discovery ([`scan`]). Value decoding itself lives in
//! `dcmms-protocols-core`.
//!
//! The gateway deserialises a [`ModbusTcpConfig`] per device and calls
//! [`build`], or a [`ModbusRtuConfig`] per serial line and calls
//! [`build_rtu`]; then it runs the returned [`Driver`].

pub mod bus_schedule;
pub mod config;
pub mod decode;
pub mod driver;
mod exchange;
pub mod frame_guard;
pub mod plan;
pub mod point;
pub mod points_csv;
pub mod rtu_config;
pub mod rtu_driver;
pub mod rtu_line;
pub mod scan;
pub mod write;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dcmms_protocols_core::{command_channel, Backoff, DeviceStats, Driver, PointResolver};

pub use config::{ModbusConfigError, ModbusPoint, ModbusTcpConfig, PointConfig, Table};
pub use driver::ModbusTcpDriver;
pub use exchange::exception_name;
pub use plan::{plan_reads, PlannedRead, Slot, Span};
pub use points_csv::{load_points_csv, parse_points_csv, write_points_csv, PointsCsvError};
pub use rtu_config::{ModbusRtuConfig, Parity, RtuDeviceConfig, SerialSettings};
pub use rtu_driver::{ModbusRtuDriver, RtuDeviceHandle};
pub use scan::{
    scan_units, starter_map, FoundUnit, ProbeAnswer, ScanError, ScanOptions, ScanTarget, StarterMap,
};

/// Validates `cfg`, interns its points as `<device>/<point>` through
/// `resolver`, plans the reads, and returns the driver. `config_dir` is the
/// folder `points_csv` is relative to. Nothing is connected until the
/// driver runs.
pub fn build(
    cfg: &ModbusTcpConfig,
    config_dir: &Path,
    resolver: &mut dyn PointResolver,
) -> Result<Box<dyn Driver>, ModbusConfigError> {
    build_tcp(cfg, config_dir, resolver).map(|d| Box::new(d) as Box<dyn Driver>)
}

/// [`build`] returning the concrete type (to inspect its plan).
pub fn build_tcp(
    cfg: &ModbusTcpConfig,
    config_dir: &Path,
    resolver: &mut dyn PointResolver,
) -> Result<ModbusTcpDriver, ModbusConfigError> {
    let points = cfg.validate(config_dir)?;
    let ids = points
        .iter()
        .map(|p| resolver.resolve(&format!("{}/{}", cfg.name, p.name)))
        .collect();
    let spans: Vec<Span> = points.iter().map(Span::from).collect();
    let reads = plan_reads(&spans, cfg.max_gap);
    Ok(ModbusTcpDriver::new(
        cfg.name.clone(),
        cfg.address.clone(),
        cfg.unit_id,
        Duration::from_millis(cfg.poll_interval_ms),
        Duration::from_millis(cfg.timeout_ms),
        Backoff::new(
            Duration::from_millis(cfg.backoff_min_ms),
            Duration::from_millis(cfg.backoff_max_ms),
        ),
        points,
        ids,
        reads,
    ))
}

/// Validates the bus `cfg`, interns the points of each unit as
/// `<device>/<point>`, plans the reads, and returns the bus driver. It runs
/// as one [`Driver`] named after the bus; call
/// [`ModbusRtuDriver::devices`] before boxing it to get each unit's name,
/// counters and command sender. Nothing is opened until the driver runs.
pub fn build_rtu(
    cfg: &ModbusRtuConfig,
    config_dir: &Path,
    resolver: &mut dyn PointResolver,
) -> Result<ModbusRtuDriver, ModbusConfigError> {
    let devices = cfg.validate(config_dir)?;
    let serial = cfg.serial_settings();
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let mut units = Vec::with_capacity(devices.len());
    for d in devices {
        let spans: Vec<Span> = d.points.iter().map(Span::from).collect();
        let reads = plan_reads(&spans, d.max_gap);
        for r in &reads {
            let needed = serial.transmit_time(read_exchange_bytes(r));
            if needed >= timeout {
                return Err(ModbusConfigError::BusField {
                    bus: cfg.name.clone(),
                    field: "timeout_ms",
                    message: format!(
                        "{} ms is too short for device {:?}: its read of {} {} from {} takes {} ms \
                         on the wire at {} bit/s; raise timeout_ms or baud_rate",
                        cfg.timeout_ms,
                        d.name,
                        r.count,
                        r.table,
                        r.address,
                        needed.as_millis(),
                        cfg.baud_rate
                    ),
                });
            }
        }
        let ids = d
            .points
            .iter()
            .map(|p| resolver.resolve(&format!("{}/{}", d.name, p.name)))
            .collect();
        let commands = d.points.iter().any(|p| p.writable).then(command_channel);
        units.push(rtu_driver::RtuUnit {
            name: d.name,
            unit_id: d.unit_id,
            poll_interval: d.poll_interval,
            points: d.points,
            ids,
            reads,
            stats: Arc::new(DeviceStats::new()),
            commands,
            failing: false,
        });
    }
    Ok(ModbusRtuDriver::new(
        cfg.name.clone(),
        serial,
        timeout,
        (
            Duration::from_millis(cfg.backoff_min_ms),
            Duration::from_millis(cfg.backoff_max_ms),
        ),
        units,
    ))
}

/// Characters on the line for one read: the 8-byte request and the answer
/// (unit, function, byte count, data, CRC).
fn read_exchange_bytes(read: &PlannedRead) -> usize {
    let data = if read.table.is_bits() {
        usize::from(read.count).div_ceil(8)
    } else {
        2 * usize::from(read.count)
    };
    8 + 5 + data
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcmms_shared::PointId;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Names(HashMap<String, PointId>);

    impl PointResolver for Names {
        fn resolve(&mut self, name: &str) -> PointId {
            let next = PointId(self.0.len() as u32);
            *self.0.entry(name.to_owned()).or_insert(next)
        }
    }

    fn bus() -> ModbusRtuConfig {
        let mut c = ModbusRtuConfig::new("line-1", "/dev/ttyUSB0");
        let mut a = RtuDeviceConfig::new("inv-01", 1);
        a.max_gap = 125;
        a.points = vec![
            PointConfig::new("p", Table::Input, 0),
            PointConfig::new("q", Table::Input, 124),
        ];
        let mut b = RtuDeviceConfig::new("meter-01", 2);
        b.points = vec![PointConfig::new("limit", Table::Holding, 4).writable()];
        c.devices = vec![a, b];
        c
    }

    #[test]
    fn rtu_build_names_points_per_device_and_exposes_units() {
        let mut names = Names::default();
        let driver = build_rtu(&bus(), Path::new("."), &mut names).unwrap();
        assert_eq!(driver.device(), "line-1");
        let mut got: Vec<&str> = names.0.keys().map(String::as_str).collect();
        got.sort();
        assert_eq!(got, vec!["inv-01/p", "inv-01/q", "meter-01/limit"]);
        let devices = driver.devices();
        assert_eq!(devices.len(), 2);
        assert_eq!(
            (devices[0].name.as_str(), devices[0].unit_id),
            ("inv-01", 1)
        );
        assert!(devices[0].commands.is_none());
        assert!(devices[1].commands.is_some());
        assert!(driver.commands().is_some());
        assert_eq!(driver.reads("inv-01").map(<[_]>::len), Some(1));
        assert!(!Arc::ptr_eq(&devices[0].stats, &driver.stats()));
    }

    #[test]
    fn rtu_timeout_must_cover_the_longest_answer() {
        let mut c = bus();
        // inv-01 reads 125 registers: 263 characters, 274 ms at 9600 bit/s.
        c.timeout_ms = 250;
        let e = build_rtu(&c, Path::new("."), &mut Names::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`timeout_ms`") && e.contains("\"inv-01\"") && e.contains("273 ms"),
            "{e}"
        );
        c.baud_rate = 19_200;
        assert!(build_rtu(&c, Path::new("."), &mut Names::default()).is_ok());
    }

    #[test]
    fn tcp_commands_only_with_writable_points() {
        let mut c = ModbusTcpConfig::new("d", "127.0.0.1:502");
        c.points = vec![PointConfig::new("a", Table::Holding, 0)];
        let d = build_tcp(&c, Path::new("."), &mut Names::default()).unwrap();
        assert!(d.commands().is_none());
        c.points
            .push(PointConfig::new("b", Table::Coil, 0).writable());
        let d = build_tcp(&c, Path::new("."), &mut Names::default()).unwrap();
        assert!(d.commands().is_some());
    }
}
