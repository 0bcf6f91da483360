//! `rss`: memory of the gateway binary polling many points, against an
//! idle gateway measured in the same run.
//!
//! The load is `--devices` Modbus TCP devices (one connection each, unit
//! ids 1..=N on one in-process [`super::regserver`]) sharing `--points`
//! u16 holding registers between them, all polled every second, shipped to
//! a hub on SQLite. Every second the bench reads the gateway's `VmRSS` and
//! `VmHWM` from `/proc/PID/status`. Figures:
//! - **max / final RSS**: the largest and the last `VmRSS` sampled;
//!   `VmHWM` is the kernel's own peak (it also catches peaks between
//!   samples).
//! - **samples/s polled**: from the gateway's status, the increase of each
//!   device's `polls_ok` times its point count, over the measured window.
//! - **baseline**: the same figures for a nearly idle gateway connected to
//!   the same hub: one device with one point. (A gateway with no devices
//!   at all stops at once: its pipeline sees no driver and ends.)

use super::interrupt;
use super::live;
use super::procstat::{self, Memory};
use super::regserver;
use super::setup::{self, Database, DbKind, DeviceSpec, GatewaySpec};
use super::stats::{grouped, mib, rate};
use anyhow::{bail, Context};
use dcmms_e2e::procs::{dump_log, GatewayProc};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Options of `dcmms-bench rss`.
#[derive(Debug, Clone, clap::Args)]
pub struct RssArgs {
    /// Points polled, in total.
    #[arg(long, default_value_t = 10_000)]
    pub points: u32,
    /// Devices sharing the points (1..=247).
    #[arg(long, default_value_t = 10)]
    pub devices: u8,
    /// Seconds measured under load.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Seconds measured for the idle baseline.
    #[arg(long, default_value_t = 10)]
    pub idle_seconds: u64,
    /// Device poll interval, ms.
    #[arg(long, default_value_t = 1000)]
    pub poll_interval_ms: u64,
}

/// Memory figures over a run.
#[derive(Debug, Clone, Copy, Default)]
struct MemorySummary {
    max_rss: u64,
    last: Memory,
}

impl MemorySummary {
    fn add(&mut self, m: Memory) {
        self.max_rss = self.max_rss.max(m.rss);
        self.last = m;
    }

    fn line(&self) -> String {
        format!(
            "max RSS {:.1} MiB, final RSS {:.1} MiB (VmHWM {:.1} MiB)",
            mib(self.max_rss),
            mib(self.last.rss),
            mib(self.last.hwm)
        )
    }
}

pub fn run(args: &RssArgs, rt: &Runtime, dir: &Path) -> anyhow::Result<()> {
    if args.devices == 0 || args.devices > 247 {
        bail!("--devices must be between 1 and 247");
    }
    let per_device = args.points.div_ceil(u32::from(args.devices));
    if per_device > 65_535 {
        bail!("more than 65535 points per device; use more --devices");
    }
    let db = Database::start(DbKind::Sqlite, dir)?;
    let hub = setup::start_hub(dir, &db, &["gw-idle", "gw-load"])?;
    println!(
        "rss: gateway polling {} points ({} devices, u16 holding registers, one connection each) every {} ms, hub on SQLite",
        grouped(f64::from(args.points)),
        args.devices,
        args.poll_interval_ms
    );

    let (server, _task) = rt
        .block_on(regserver::serve(([127, 0, 0, 1], 0).into()))
        .context("starting the register server")?;

    // Baseline: one device, one point.
    let idle_csv = dir.join("idle.csv");
    std::fs::write(&idle_csv, regserver::points_csv(1))?;
    let idle = GatewaySpec {
        gateway: "gw-idle".to_owned(),
        state_dir: dir.join("gw-idle-state"),
        bundle_dir: setup::bundle_dir(dir, "gw-idle"),
        mqtt: hub.mqtt,
        commit_interval_ms: 1000,
        devices: vec![DeviceSpec {
            name: "idle".to_owned(),
            address: server,
            unit_id: 1,
            poll_interval_ms: args.poll_interval_ms,
            points_csv: idle_csv,
        }],
    }
    .write(&dir.join("gateway-idle.toml"))?;
    let gw = GatewayProc::start(dir, &idle)?;
    live::wait_connected(&gw, Duration::from_secs(30)).inspect_err(|_| dump_log(&hub.log))?;
    let pid = procstat::find_child(&idle).context("PID of the idle gateway")?;
    let mut idle_mem = MemorySummary::default();
    for _ in 0..args.idle_seconds.max(1) {
        interrupt::pause(Duration::from_secs(1))?;
        idle_mem.add(procstat::memory(pid).context("the idle gateway exited")?);
    }
    gw.stop()?;
    println!(
        "baseline, nearly idle gateway (1 device, 1 point, uplink connected), {} s: {}",
        args.idle_seconds.max(1),
        idle_mem.line()
    );

    // Load.
    let mut devices = Vec::new();
    let mut points_of = HashMap::new();
    let mut left = args.points;
    for unit in 1..=args.devices {
        let n = left.min(per_device);
        left -= n;
        if n == 0 {
            break;
        }
        let name = format!("regs-{unit:03}");
        let csv: PathBuf = dir.join(format!("{name}.csv"));
        std::fs::write(&csv, regserver::points_csv(n as u16))?;
        points_of.insert(name.clone(), u64::from(n));
        devices.push(DeviceSpec {
            name,
            address: server,
            unit_id: unit,
            poll_interval_ms: args.poll_interval_ms,
            points_csv: csv,
        });
    }
    let load = GatewaySpec {
        gateway: "gw-load".to_owned(),
        state_dir: dir.join("gw-load-state"),
        bundle_dir: setup::bundle_dir(dir, "gw-load"),
        mqtt: hub.mqtt,
        commit_interval_ms: 1000,
        devices,
    }
    .write(&dir.join("gateway-load.toml"))?;
    let gw = GatewayProc::start(dir, &load)?;
    live::wait_connected(&gw, Duration::from_secs(30)).inspect_err(|_| dump_log(&hub.log))?;
    let pid = procstat::find_child(&load).context("PID of the loaded gateway")?;
    let measured = measure_load(args, &gw, pid, &points_of);
    let (mem, polled, first, last) = match measured {
        Ok(m) => m,
        Err(e) => {
            dump_log(&gw.log);
            return Err(e);
        }
    };
    println!("loaded gateway, {} s: {}", args.seconds, mem.line());
    println!(
        "  = {:+.1} MiB final RSS over the idle baseline ({:.0} bytes per point)",
        mib(mem.last.rss) - mib(idle_mem.last.rss),
        (mem.last.rss as f64 - idle_mem.last.rss as f64) / f64::from(args.points)
    );
    println!(
        "polled: {} samples/s (status: polls_ok x points per device; {} asked for), {} failed polls",
        grouped(polled),
        grouped(f64::from(args.points) * 1000.0 / args.poll_interval_ms.max(1) as f64),
        failed_polls(&last) - failed_polls(&first)
    );
    println!(
        "uplink: buffer holds {} blocks at the end ({:.1} MiB), {} blocks acked by the hub",
        last["buffer"]["blocks"].as_u64().unwrap_or(0),
        mib(last["buffer"]["bytes"].as_u64().unwrap_or(0)),
        last["uplink"]["blocks_acked"].as_u64().unwrap_or(0)
    );
    gw.stop()?;
    hub.stop()?;
    Ok(())
}

type Measured = (MemorySummary, f64, Value, Value);

/// Samples memory once a second for `args.seconds`; returns the memory
/// summary, the polled samples/s over the window, and the first and last
/// status.
fn measure_load(
    args: &RssArgs,
    gw: &GatewayProc,
    pid: u32,
    points_of: &HashMap<String, u64>,
) -> anyhow::Result<Measured> {
    let mut mem = MemorySummary::default();
    let mut first: Option<(Instant, Value)> = None;
    let mut last = Value::Null;
    let mut last_at = Instant::now();
    for second in 1..=args.seconds.max(2) {
        interrupt::pause(Duration::from_secs(1))?;
        mem.add(procstat::memory(pid).context("the gateway exited")?);
        let status = gw.status()?;
        let now = Instant::now();
        if first.is_none() {
            first = Some((now, status.clone()));
        }
        last = status;
        last_at = now;
        if second.is_multiple_of(10) {
            let (t0, s0) = first.as_ref().context("first status")?;
            let polled = samples_polled(&last, points_of) - samples_polled(s0, points_of);
            println!(
                "  [{second:4} s] RSS {:.1} MiB, polled {} samples/s",
                mib(mem.last.rss),
                grouped(rate(polled, now.duration_since(*t0)))
            );
        }
    }
    let (t0, s0) = first.context("no status read")?;
    let polled = samples_polled(&last, points_of) - samples_polled(&s0, points_of);
    Ok((mem, rate(polled, last_at.duration_since(t0)), s0, last))
}

/// Samples polled so far according to the status: each device's
/// successful polls times its points.
fn samples_polled(status: &Value, points_of: &HashMap<String, u64>) -> u64 {
    status["devices"]
        .as_array()
        .map(|devices| {
            devices
                .iter()
                .filter_map(|d| {
                    let n = points_of.get(d["name"].as_str()?)?;
                    Some(d["polls_ok"].as_u64()? * n)
                })
                .sum()
        })
        .unwrap_or(0)
}

fn failed_polls(status: &Value) -> u64 {
    status["devices"]
        .as_array()
        .map(|d| d.iter().filter_map(|d| d["polls_failed"].as_u64()).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polled_samples_weigh_polls_by_points() {
        let points: HashMap<String, u64> = [("a".to_owned(), 100), ("b".to_owned(), 50)]
            .into_iter()
            .collect();
        let status = serde_json::json!({"devices": [
            {"name": "a", "polls_ok": 3, "polls_failed": 1},
            {"name": "b", "polls_ok": 4, "polls_failed": 0},
            {"name": "unknown", "polls_ok": 1000},
        ]});
        assert_eq!(samples_polled(&status, &points), 500);
        assert_eq!(failed_polls(&status), 1);
        assert_eq!(samples_polled(&Value::Null, &points), 0);
    }
}
