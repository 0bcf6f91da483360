//! Unit discovery: which unit ids answer on a serial line or behind a
//! Modbus TCP address, and a starter config with point maps for them.
//!
//! [`scan_units`] sends one cheap read per unit id (table, address and
//! count configurable) with a short timeout. A unit that answers with data
//! or with an exception is present (it parsed the request); silence is
//! absence, and so are the gateway exceptions 10 and 11, with which a
//! TCP-to-RTU gateway reports a unit that did not answer behind it.
//! [`starter_map`] turns the result into a `[[modbus]]` or `[[modbus_rtu]]`
//! config and one CSV point map per unit, for the user to edit.

use std::fmt::Write as _;
use std::io;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::time::timeout;
use tokio_modbus::client::{Client as _, Context};
use tokio_modbus::slave::SlaveContext as _;
use tokio_modbus::{ExceptionCode, Request, Response, Slave};

use crate::config::{ModbusTcpConfig, PointConfig, Table};
use crate::exchange::exception_name;
use crate::points_csv::write_points_csv;
use crate::rtu_config::{
    default_inter_frame_gap, ModbusRtuConfig, RtuDeviceConfig, SerialSettings, MAX_UNIT_ID,
};
use crate::rtu_driver::open_line;
use crate::rtu_line::LineActivity;

/// Where to look for units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanTarget {
    /// A Modbus TCP server or TCP-to-RTU gateway, `host:port`.
    Tcp { address: String },
    /// A serial line.
    Rtu(SerialSettings),
}

/// What to send to each unit id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOptions {
    /// Unit ids to try, in order. Default 1-247.
    pub units: RangeInclusive<u8>,
    /// Table of the probe read. Default holding registers.
    pub table: Table,
    /// First address of the probe read. Default 0.
    pub address: u16,
    /// Registers (or bits) the probe reads, 1-125 (1-2000 bits). Default 1.
    /// Each becomes one point of the starter map.
    pub count: u16,
    /// How long to wait for each unit. Default 200 ms; on a slow line it
    /// must cover the answer's transmission time.
    pub timeout: Duration,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            units: 1..=MAX_UNIT_ID,
            table: Table::Holding,
            address: 0,
            count: 1,
            timeout: Duration::from_millis(200),
        }
    }
}

/// How a present unit answered the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAnswer {
    Registers(Vec<u16>),
    Bits(Vec<bool>),
    /// A Modbus exception: the unit is there but refused this read.
    Exception {
        code: u8,
        name: String,
    },
}

/// A unit id that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundUnit {
    pub unit_id: u8,
    pub answer: ProbeAnswer,
    pub rtt: Duration,
}

/// Why a scan could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    #[error("scan options: {0}")]
    Options(String),
    /// The reason is in the message (not a separate `source`), so that
    /// a report of the whole error chain does not say it twice.
    #[error("cannot open {target}: {reason}")]
    Open { target: String, reason: io::Error },
}

impl ScanTarget {
    fn describe(&self) -> String {
        match self {
            ScanTarget::Tcp { address } => address.clone(),
            ScanTarget::Rtu(s) => s.port.clone(),
        }
    }

    async fn open(
        &self,
        connect_timeout: Duration,
        activity: &Arc<LineActivity>,
    ) -> Result<Context, ScanError> {
        let open_err = |reason| ScanError::Open {
            target: self.describe(),
            reason,
        };
        match self {
            ScanTarget::Rtu(serial) => open_line(serial, activity).map_err(open_err),
            ScanTarget::Tcp { address } => {
                let connect = async {
                    let stream = tokio::net::TcpStream::connect(address.as_str()).await?;
                    stream.set_nodelay(true)?;
                    Ok::<_, io::Error>(stream)
                };
                let stream = timeout(connect_timeout, connect)
                    .await
                    .map_err(|_| open_err(io::ErrorKind::TimedOut.into()))?
                    .map_err(open_err)?;
                Ok(tokio_modbus::client::tcp::attach_slave(
                    crate::frame_guard::GuardedStream::new(stream),
                    Slave(1),
                ))
            }
        }
    }
}

impl ScanOptions {
    fn check(&self, target: &ScanTarget) -> Result<(), ScanError> {
        let bad = |m: String| Err(ScanError::Options(m));
        if self.units.is_empty() {
            return bad(format!("empty unit range {:?}", self.units));
        }
        if matches!(target, ScanTarget::Rtu(_))
            && (*self.units.start() == 0 || *self.units.end() > MAX_UNIT_ID)
        {
            return bad(format!(
                "unit ids on a serial line are 1-{MAX_UNIT_ID}, not {:?}",
                self.units
            ));
        }
        if self.count == 0 || self.count > self.table.max_read() {
            return bad(format!(
                "count {} is outside 1-{} for the {} table",
                self.count,
                self.table.max_read(),
                self.table
            ));
        }
        if u32::from(self.address) + u32::from(self.count) > 65536 {
            return bad(format!(
                "{} {}s from {} run past address 65535",
                self.count, self.table, self.address
            ));
        }
        if self.timeout.is_zero() {
            return bad("timeout must be above 0".into());
        }
        Ok(())
    }

    fn request(&self) -> Request<'static> {
        match self.table {
            Table::Holding => Request::ReadHoldingRegisters(self.address, self.count),
            Table::Input => Request::ReadInputRegisters(self.address, self.count),
            Table::Coil => Request::ReadCoils(self.address, self.count),
            Table::Discrete => Request::ReadDiscreteInputs(self.address, self.count),
        }
    }
}

/// Tries every unit id of `opts.units` in turn and returns those that
/// answered, in order. Fails only if the port or connection cannot be
/// (re)opened; a unit's silence or malformed answer just means "absent".
pub async fn scan_units(
    target: &ScanTarget,
    opts: &ScanOptions,
) -> Result<Vec<FoundUnit>, ScanError> {
    opts.check(target)?;
    let connect_timeout = opts.timeout.max(Duration::from_secs(1));
    let activity = LineActivity::new();
    let gap = match target {
        ScanTarget::Rtu(s) => Some(s.inter_frame_gap),
        ScanTarget::Tcp { .. } => None,
    };
    let mut ctx = target.open(connect_timeout, &activity).await?;
    let mut found = Vec::new();
    for unit_id in opts.units.clone() {
        if let Some(gap) = gap {
            activity.wait_quiet(gap).await;
        }
        ctx.set_slave(Slave(unit_id));
        let started = Instant::now();
        let result = timeout(opts.timeout, ctx.call(opts.request())).await;
        let rtt = started.elapsed();
        let (answer, reopen) = match result {
            Ok(Ok(Ok(Response::ReadHoldingRegisters(w) | Response::ReadInputRegisters(w)))) => {
                (Some(ProbeAnswer::Registers(w)), false)
            }
            Ok(Ok(Ok(Response::ReadCoils(mut b) | Response::ReadDiscreteInputs(mut b)))) => {
                b.truncate(usize::from(opts.count));
                (Some(ProbeAnswer::Bits(b)), false)
            }
            // Another kind of answer: something talks, but not sense.
            Ok(Ok(Ok(_))) => (None, true),
            Ok(Ok(Err(
                ExceptionCode::GatewayPathUnavailable | ExceptionCode::GatewayTargetDevice,
            ))) => (None, false),
            Ok(Ok(Err(code))) => (
                Some(ProbeAnswer::Exception {
                    code: u8::from(code),
                    name: exception_name(code),
                }),
                false,
            ),
            Ok(Err(e)) => {
                tracing::debug!(unit_id, error = %e, "probe failed");
                (None, true)
            }
            // Over TCP a late answer would be taken for the next one: start
            // afresh. On a serial line the line guard drops it.
            Err(_) => (None, matches!(target, ScanTarget::Tcp { .. })),
        };
        if let Some(answer) = answer {
            found.push(FoundUnit {
                unit_id,
                answer,
                rtt,
            });
        }
        if reopen && unit_id != *opts.units.end() {
            let _ = timeout(Duration::from_millis(100), ctx.disconnect()).await;
            ctx = target.open(connect_timeout, &activity).await?;
        }
    }
    let _ = timeout(Duration::from_millis(100), ctx.disconnect()).await;
    Ok(found)
}

/// A starter config and point maps, as text, not yet written.
#[derive(Debug, Clone, PartialEq)]
pub struct StarterMap {
    /// TOML with one `[[modbus]]` table per unit (TCP) or one
    /// `[[modbus_rtu]]` bus with a device per unit (serial).
    pub config_toml: String,
    /// Point maps, paths relative to the config file's folder.
    pub files: Vec<(PathBuf, String)>,
}

#[derive(Serialize)]
struct ConfigDoc<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    modbus: &'a [ModbusTcpConfig],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    modbus_rtu: &'a [ModbusRtuConfig],
}

/// The device name given to a found unit.
pub fn starter_device_name(prefix: &str, unit_id: u8) -> String {
    format!("{prefix}-unit-{unit_id}")
}

/// Builds the starter config for `found` units. `name` is the bus name
/// (serial) or the device-name prefix (TCP); devices are named
/// `<name>-unit-<id>`, each with a CSV map of the registers the probe read.
pub fn starter_map(
    name: &str,
    target: &ScanTarget,
    found: &[FoundUnit],
    opts: &ScanOptions,
) -> StarterMap {
    let mut files = Vec::new();
    let mut tcp = Vec::new();
    let mut rtu_devices = Vec::new();
    for unit in found {
        let device = starter_device_name(name, unit.unit_id);
        let csv_path = PathBuf::from("points").join(format!("{device}.csv"));
        files.push((csv_path.clone(), unit_csv(&device, unit, opts)));
        match target {
            ScanTarget::Tcp { address } => {
                let mut c = ModbusTcpConfig::new(&device, address);
                c.unit_id = unit.unit_id;
                c.points_csv = Some(csv_path);
                tcp.push(c);
            }
            ScanTarget::Rtu(_) => {
                let mut d = RtuDeviceConfig::new(&device, unit.unit_id);
                d.points_csv = Some(csv_path);
                rtu_devices.push(d);
            }
        }
    }
    let mut rtu = Vec::new();
    if let ScanTarget::Rtu(s) = target {
        let mut bus = ModbusRtuConfig::new(name, &s.port);
        bus.baud_rate = s.baud_rate;
        bus.parity = s.parity;
        bus.stop_bits = s.stop_bits;
        if s.inter_frame_gap != default_inter_frame_gap(s.baud_rate, s.parity, s.stop_bits) {
            bus.inter_frame_gap_ms =
                Some(u64::try_from(s.inter_frame_gap.as_millis()).unwrap_or(1000));
        }
        bus.devices = rtu_devices;
        rtu.push(bus);
    }
    let ids: Vec<String> = found.iter().map(|u| u.unit_id.to_string()).collect();
    let mut config_toml = format!(
        "# Starter config from a unit scan of {} (unit ids {:?}): {} answered{}.\n\
         # Review the point maps under points/ before use.\n\n",
        target.describe(),
        opts.units,
        found.len(),
        if ids.is_empty() {
            String::new()
        } else {
            format!(": {}", ids.join(", "))
        }
    );
    let doc = ConfigDoc {
        modbus: &tcp,
        modbus_rtu: &rtu,
    };
    match toml::to_string(&doc) {
        Ok(text) => config_toml.push_str(&text),
        // The structs above always serialise; keep the reason if not.
        Err(e) => {
            let _ = writeln!(config_toml, "# could not render the config: {e}");
        }
    }
    StarterMap { config_toml, files }
}

fn unit_csv(device: &str, unit: &FoundUnit, opts: &ScanOptions) -> String {
    let mut out = format!(
        "# Starter point map of {device} (unit id {}), from a scan that read {} {} from {}.\n\
         # Rename the points, set data types and scaling, and add the rest of the unit's map.\n",
        unit.unit_id, opts.count, opts.table, opts.address
    );
    let seen = match &unit.answer {
        ProbeAnswer::Registers(w) => format!("{w:?}"),
        ProbeAnswer::Bits(b) => format!("{b:?}"),
        ProbeAnswer::Exception { name, .. } => {
            format!("exception {name}: these addresses may not exist on this unit")
        }
    };
    let _ = writeln!(out, "# Answer to the probe: {seen}");
    let points: Vec<PointConfig> = (0..opts.count)
        .map_while(|i| opts.address.checked_add(i))
        .map(|a| PointConfig::new(format!("{}_{a}", opts.table), opts.table, a))
        .collect();
    out.push_str(&write_points_csv(&points));
    out
}

impl StarterMap {
    /// Writes the config as `dir/config_file` and the point maps under
    /// `dir`, refusing to overwrite any existing file. Returns the paths
    /// written.
    pub fn write_to(&self, dir: &Path, config_file: &str) -> io::Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        let mut write_new = |path: PathBuf, text: &str| -> io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            io::Write::write_all(&mut f, text.as_bytes())?;
            written.push(path);
            Ok(())
        };
        for (rel, text) in &self.files {
            write_new(dir.join(rel), text)?;
        }
        write_new(dir.join(config_file), &self.config_toml)?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtu_config::Parity;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        modbus: Vec<ModbusTcpConfig>,
        #[serde(default)]
        modbus_rtu: Vec<ModbusRtuConfig>,
    }

    fn found() -> Vec<FoundUnit> {
        vec![
            FoundUnit {
                unit_id: 1,
                answer: ProbeAnswer::Registers(vec![7, 8]),
                rtt: Duration::from_millis(3),
            },
            FoundUnit {
                unit_id: 9,
                answer: ProbeAnswer::Exception {
                    code: 2,
                    name: "Illegal data address (2)".into(),
                },
                rtt: Duration::from_millis(3),
            },
        ]
    }

    #[test]
    fn rtu_starter_map_validates_after_writing() {
        let serial = SerialSettings::new("/dev/ttyUSB1", 19_200).with_framing(Parity::Even, 1);
        assert_eq!(serial.inter_frame_gap, Duration::from_millis(3));
        let target = ScanTarget::Rtu(serial);
        let opts = ScanOptions {
            count: 2,
            address: 40,
            ..ScanOptions::default()
        };
        let map = starter_map("line-2", &target, &found(), &opts);
        assert!(
            map.config_toml.contains("2 answered: 1, 9"),
            "{}",
            map.config_toml
        );
        let dir = tempfile::tempdir().unwrap();
        let written = map.write_to(dir.path(), "modbus.toml").unwrap();
        assert_eq!(written.len(), 3);
        // Writing again refuses to overwrite the user's edits.
        let e = map.write_to(dir.path(), "modbus.toml").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);

        let text = std::fs::read_to_string(dir.path().join("modbus.toml")).unwrap();
        let doc: Doc = toml::from_str(&text).unwrap();
        assert!(doc.modbus.is_empty());
        let bus = &doc.modbus_rtu[0];
        assert_eq!(
            (bus.name.as_str(), bus.port.as_str()),
            ("line-2", "/dev/ttyUSB1")
        );
        assert_eq!((bus.baud_rate, bus.parity), (19_200, Parity::Even));
        assert_eq!(bus.inter_frame_gap_ms, None);
        let devices = bus.validate(dir.path()).unwrap();
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[1].name, "line-2-unit-9");
        assert_eq!(devices[1].unit_id, 9);
        let names: Vec<&str> = devices[0].points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["holding_40", "holding_41"]);
        let csv = std::fs::read_to_string(dir.path().join("points/line-2-unit-9.csv")).unwrap();
        assert!(csv.contains("exception Illegal data address (2)"), "{csv}");
    }

    #[test]
    fn tcp_starter_map_has_one_device_per_unit() {
        let target = ScanTarget::Tcp {
            address: "10.0.0.5:502".into(),
        };
        let opts = ScanOptions {
            table: Table::Coil,
            ..ScanOptions::default()
        };
        let map = starter_map("gw", &target, &found(), &opts);
        let dir = tempfile::tempdir().unwrap();
        map.write_to(dir.path(), "modbus.toml").unwrap();
        let doc: Doc =
            toml::from_str(&std::fs::read_to_string(dir.path().join("modbus.toml")).unwrap())
                .unwrap();
        assert!(doc.modbus_rtu.is_empty());
        assert_eq!(doc.modbus.len(), 2);
        assert_eq!(doc.modbus[1].unit_id, 9);
        assert_eq!(doc.modbus[1].address, "10.0.0.5:502");
        let points = doc.modbus[0].validate(dir.path()).unwrap();
        assert_eq!(points[0].name, "coil_0");
        assert_eq!(points[0].table, Table::Coil);
    }

    #[test]
    fn options_are_checked() {
        let rtu = ScanTarget::Rtu(SerialSettings::new("/dev/x", 9600));
        let tcp = ScanTarget::Tcp {
            address: "h:1".into(),
        };
        let with = |f: &dyn Fn(&mut ScanOptions)| {
            let mut o = ScanOptions::default();
            f(&mut o);
            o
        };
        assert!(ScanOptions::default().check(&rtu).is_ok());
        assert!(with(&|o| o.units = 0..=5).check(&rtu).is_err());
        assert!(with(&|o| o.units = 0..=255).check(&tcp).is_ok());
        assert!(with(&|o| o.units = 240..=250).check(&rtu).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let empty = with(&|o| o.units = 5..=4);
        assert!(empty.check(&tcp).is_err());
        assert!(with(&|o| o.count = 0).check(&tcp).is_err());
        assert!(with(&|o| o.count = 126).check(&tcp).is_err());
        assert!(with(&|o| {
            o.table = Table::Coil;
            o.count = 2000;
        })
        .check(&tcp)
        .is_ok());
        assert!(with(&|o| {
            o.address = 65535;
            o.count = 2;
        })
        .check(&tcp)
        .is_err());
        assert!(with(&|o| o.timeout = Duration::ZERO).check(&tcp).is_err());
    }
}
