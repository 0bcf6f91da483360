//! `latency`: end-to-end latency of live data with an empty buffer: a
//! simulated inverter polled every second by the gateway binary, shipped
//! to the hub binary, read back through the hub API by the probe of
//! [`super::probe`].
//!
//! The window starts when the gateway's uplink is first seen connected
//! (samples polled before that wait for the connection, which is not what
//! this figure is about) and lasts `--seconds`; a sample counts when its
//! timestamp is in the window, however late it shows up.

use super::interrupt;
use super::live;
use super::probe::{now_ms, Probe, PROBE_INTERVAL};
use super::setup::{self, Database, DbKind, GatewaySpec};
use super::stats::latency_line;
use dcmms_e2e::procs::{dump_log, GatewayProc};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

const GATEWAY: &str = "gw-latency";

/// Options of `dcmms-bench latency`.
#[derive(Debug, Clone, clap::Args)]
pub struct LatencyArgs {
    /// Length of the measurement window, seconds.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Database of the hub.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub db: DbKind,
    /// Gateway `buffer.commit_interval_ms` (product default 1000).
    #[arg(long, default_value_t = 1000)]
    pub commit_interval_ms: u64,
    /// Device poll interval, ms.
    #[arg(long, default_value_t = 1000)]
    pub poll_interval_ms: u64,
}

pub fn run(args: &LatencyArgs, rt: &Runtime, dir: &Path) -> anyhow::Result<()> {
    let db = Database::start(args.db, dir)?;
    let hub = setup::start_hub(dir, &db, &[GATEWAY])?;
    let device = live::start_inverter(rt, args.poll_interval_ms)?;
    let config = GatewaySpec {
        gateway: GATEWAY.to_owned(),
        state_dir: dir.join("gw-state"),
        bundle_dir: setup::bundle_dir(dir, GATEWAY),
        mqtt: hub.mqtt,
        commit_interval_ms: args.commit_interval_ms,
        devices: vec![device],
    }
    .write(&dir.join("gateway-latency.toml"))?;
    println!(
        "latency on {}: 1 simulated inverter (26 points) polled every {} ms, gateway commit interval {} ms, {} s window",
        args.db.name(),
        args.poll_interval_ms,
        args.commit_interval_ms,
        args.seconds
    );

    let probe = Probe::start(rt, hub.api, &hub.token, &live::live_point_name(), now_ms());
    let gw = GatewayProc::start(dir, &config)?;
    let started = Instant::now();
    let connected_ms = live::wait_connected(&gw, Duration::from_secs(30)).inspect_err(|_| {
        dump_log(&gw.log);
        dump_log(&hub.log);
    })?;
    println!(
        "uplink connected {:.1} s after the gateway started; measuring",
        started.elapsed().as_secs_f64()
    );
    let end_ms = connected_ms + args.seconds as i64 * 1000;
    let mut next_progress = Instant::now() + Duration::from_secs(10);
    while now_ms() < end_ms {
        interrupt::pause(Duration::from_millis(200))?;
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(10);
            let lat = live::window(&probe.observations(), connected_ms, end_ms);
            println!(
                "{}",
                latency_line(
                    &format!(
                        "  [{:5.0} s] so far",
                        (now_ms() - connected_ms) as f64 / 1000.0
                    ),
                    &lat
                )
            );
        }
    }
    // Let the last samples of the window arrive.
    let give_up = Instant::now() + Duration::from_secs(10);
    while Instant::now() < give_up && !probe.observations().iter().any(|o| o.ts_ms >= end_ms) {
        interrupt::pause(Duration::from_millis(50))?;
    }
    let probed = probe.stop(rt);
    let lat = live::window(&probed.observations, connected_ms, end_ms);
    println!(
        "{}",
        latency_line(
            &format!(
                "live latency, {} poll -> visible at the hub API ({} samples expected)",
                live::live_point_name(),
                args.seconds * 1000 / args.poll_interval_ms.max(1)
            ),
            &lat
        )
    );
    println!(
        "  measured by asking the hub API every {} ms: each figure is an upper bound, too high by up to ~{} ms plus one request",
        PROBE_INTERVAL.as_millis(),
        PROBE_INTERVAL.as_millis()
    );
    println!(
        "{}",
        latency_line(
            "baseline, the probe's own API request round trip",
            &probed.round_trips_ms
        )
    );
    println!(
        "  for scale: the gateway commits its buffer every {} ms, so a sample may wait up to that long in the gateway before it can leave",
        args.commit_interval_ms
    );
    for e in probed.errors {
        println!("  probe error: {e}");
    }
    gw.stop()?;
    hub.stop()?;
    Ok(())
}
