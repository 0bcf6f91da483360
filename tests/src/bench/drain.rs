//! `drain`: how fast a gateway ships a large backlog to the hub, and what
//! that does to the latency of live data meanwhile.
//!
//! 1. Baselines on a scratch database of the same engine (see
//!    [`super::baseline`]).
//! 2. A hub on the chosen database; the gateway is enrolled.
//! 3. The gateway's ring buffer is pre-filled through the library
//!    (`RingBuffer::intern` + `append_block`) with the synthetic backlog of
//!    [`super::profile`], timestamps in the past.
//! 4. The gateway binary starts on that state with one live simulated
//!    inverter polled every second. Figures:
//!    - **backlog drain rate**: backlog samples / time from starting the
//!      gateway until its status shows every backlog block acknowledged
//!      (`acked_through` at or past the last backlog sequence; live blocks
//!      come after it). Status is read every 100 ms.
//!    - **live latency during the drain**: poll -> visible at the hub API
//!      for live samples stamped while the backlog drained (from the first
//!      time the uplink was seen connected), see [`super::probe`].
//!    - **live latency after the drain**: the same, for `--after-s`
//!      seconds once the backlog is gone: the baseline of the latency
//!      figure in the same run.

use super::baseline;
use super::interrupt;
use super::live::{self, StatusWatch};
use super::probe::{now_ms, rfc3339, Probe, ProbeResult};
use super::profile::Backlog;
use super::setup::{self, Database, DbKind, GatewaySpec, SITE};
use super::stats::{grouped, latency_line, mib, rate};
use anyhow::{bail, Context};
use dcmms_e2e::procs::{dump_log, get_json, get_json_auth, GatewayProc, HubProc};
use dcmms_gateway::ring::{RingBuffer, RingConfig};
use dcmms_shared::BlockClass;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

const GATEWAY: &str = "gw-drain";
const STATUS_EVERY: Duration = Duration::from_millis(100);

/// Options of `dcmms-bench drain`.
#[derive(Debug, Clone, clap::Args)]
pub struct DrainArgs {
    /// Database of the hub.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub db: DbKind,
    /// Backlog samples pre-filled into the gateway's buffer.
    #[arg(long, default_value_t = 3_000_000)]
    pub samples: u64,
    /// Points of the backlog (`inv-NNN/pt-MM`, 50 per device).
    #[arg(long, default_value_t = 5000)]
    pub points: u32,
    /// Samples per pre-filled block (the gateway commits one block per
    /// commit interval; 10 000 is two seconds of 5 000 points).
    #[arg(long, default_value_t = 10_000)]
    pub block_samples: usize,
    /// Gateway `buffer.commit_interval_ms` (product default 1000).
    #[arg(long, default_value_t = 1000)]
    pub commit_interval_ms: u64,
    /// Seconds of live latency measured after the backlog drained.
    #[arg(long, default_value_t = 15)]
    pub after_s: u64,
    /// Progress line interval, seconds.
    #[arg(long, default_value_t = 2)]
    pub progress_s: u64,
    /// Give up after this many seconds of draining.
    #[arg(long, default_value_t = 3600)]
    pub timeout_s: u64,
    /// Blocks per transaction in the database baselines (default: the
    /// gateway's default send window, the most a hub can batch from one
    /// draining gateway).
    #[arg(long, default_value_t = 16)]
    pub baseline_batch_blocks: usize,
    /// Skip the database baselines.
    #[arg(long)]
    pub no_baseline: bool,
}

pub fn run(args: &DrainArgs, rt: &Runtime, dir: &Path) -> anyhow::Result<()> {
    if args.points == 0 || args.samples == 0 || args.block_samples == 0 {
        bail!("--points, --samples and --block-samples must be positive");
    }
    let backlog =
        Backlog::ending_before(now_ms(), 60, args.points, args.samples, args.block_samples);
    println!(
        "drain on {}: backlog of {} samples = {} points x {} s at 1 s, {} blocks of up to {} samples",
        args.db.name(),
        grouped(backlog.samples as f64),
        backlog.points,
        backlog.samples.div_ceil(u64::from(backlog.points)),
        backlog.blocks(),
        grouped(backlog.block_samples as f64),
    );
    let db = Database::start(args.db, dir)?;

    // 1. Baselines, with nothing else running.
    let mut baselines = Vec::new();
    if !args.no_baseline {
        let loc = rt.block_on(db.scratch("baseline_rows"))?;
        let batch = args.baseline_batch_blocks.max(1);
        let took = rt.block_on(baseline::store_insert(&loc, &backlog, batch))?;
        let r = rate(backlog.samples, took);
        println!(
            "baseline, hub store insert (rows only, {batch} blocks per transaction): {} samples/s ({:.1} s)",
            grouped(r),
            took.as_secs_f64()
        );
        baselines.push(("store insert", r));
        let loc = rt.block_on(db.scratch("baseline_ingest"))?;
        let took = rt.block_on(baseline::hub_ingest(&loc, &backlog, batch))?;
        let r = rate(backlog.samples, took);
        println!(
            "baseline, hub ingest path without network (decode + rows + block bookkeeping, {batch} blocks per transaction): {} samples/s ({:.1} s)",
            grouped(r),
            took.as_secs_f64()
        );
        baselines.push(("hub ingest", r));
    }

    // 2. Hub, enrolment.
    let hub = setup::start_hub(dir, &db, &[GATEWAY])?;

    // 3. Pre-filled buffer.
    let state_dir = dir.join("gw-state");
    let (seqs, stored_bytes, took) = prefill(&state_dir, &backlog)?;
    println!(
        "ring pre-fill: {} samples in {:.1} s ({} samples/s), {:.1} MiB of blocks ({:.1} bytes/sample)",
        grouped(backlog.samples as f64),
        took.as_secs_f64(),
        grouped(rate(backlog.samples, took)),
        mib(stored_bytes),
        stored_bytes as f64 / backlog.samples as f64
    );

    // 4. Gateway with a live device.
    let device = live::start_inverter(rt, 1000)?;
    let config = GatewaySpec {
        gateway: GATEWAY.to_owned(),
        state_dir,
        bundle_dir: setup::bundle_dir(dir, GATEWAY),
        mqtt: hub.mqtt,
        commit_interval_ms: args.commit_interval_ms,
        devices: vec![device],
    }
    .write(&dir.join("gateway-drain.toml"))?;

    let probe = Probe::start(rt, hub.api, &hub.token, &live::live_point_name(), now_ms());
    let started = Instant::now();
    let gw = GatewayProc::start(dir, &config)?;
    let result = watch_drain(args, &hub, &gw, &probe, &backlog, seqs, started);
    let drained = match result {
        Ok(d) => d,
        Err(e) => {
            dump_log(&gw.log);
            dump_log(&hub.log);
            return Err(e);
        }
    };
    let drain_took = drained.at.duration_since(started);
    let drain_end_ms = drained.wall_ms;
    let r = rate(backlog.samples, drain_took);
    println!(
        "backlog drain: {} samples in {:.1} s = {} samples/s (gateway start -> last backlog block acked; status read every {} ms)",
        grouped(backlog.samples as f64),
        drain_took.as_secs_f64(),
        grouped(r),
        STATUS_EVERY.as_millis()
    );
    for (name, base) in &baselines {
        println!("  = {:.2}x the {name} baseline", r / base);
    }

    // Live latency after the drain, same run.
    interrupt::pause(Duration::from_secs(args.after_s))?;
    let after_end_ms = now_ms();
    let probed = finish_probe(rt, probe, after_end_ms);
    let connected_ms = drained.connected_ms;
    let during = live::window(&probed.observations, connected_ms, drain_end_ms);
    let after = live::window(&probed.observations, drain_end_ms, after_end_ms);
    let note = format!(
        "{} poll -> visible at the hub API, probe every {} ms, so figures are upper bounds by up to ~{} ms",
        live::live_point_name(),
        super::probe::PROBE_INTERVAL.as_millis(),
        super::probe::PROBE_INTERVAL.as_millis()
    );
    println!(
        "live latency ({note}; gateway commit interval {} ms):",
        args.commit_interval_ms
    );
    println!(
        "{}",
        latency_line(
            &format!(
                "  during the drain ({:.1} s)",
                (drain_end_ms - connected_ms) as f64 / 1000.0
            ),
            &during
        )
    );
    println!(
        "{}",
        latency_line(
            &format!("  after the drain, baseline ({} s)", args.after_s),
            &after
        )
    );
    println!(
        "{}",
        latency_line(
            "  probe's own API request round trip",
            &probed.round_trips_ms
        )
    );
    for e in probed.errors {
        println!("  probe error: {e}");
    }

    check_stored(&hub, &backlog, &drained.status);
    gw.stop()?;
    hub.stop()?;
    Ok(())
}

/// Pre-fills the ring buffer; returns the first and last sequence, the
/// stored bytes and the time taken.
fn prefill(state_dir: &Path, backlog: &Backlog) -> anyhow::Result<((u64, u64), u64, Duration)> {
    let ring = RingBuffer::open(RingConfig::new(state_dir.join("buffer.redb")))
        .context("opening the gateway's ring buffer")?;
    let ids = ring.intern(&backlog.names())?;
    if ids.last().map(|p| p.0 + 1) != Some(backlog.points) {
        bail!("the fresh ring buffer assigned unexpected point ids");
    }
    // As the daemon does for a new buffer: sequences from its creation
    // time in microseconds.
    ring.start_sequences_at(now_ms().max(1) as u64 * 1000)?;
    let started = Instant::now();
    let (mut first, mut last) = (None, 0);
    for b in 0..backlog.blocks() {
        let samples = backlog.block(b);
        let out = ring.append_block(BlockClass::Telemetry, &samples, now_ms())?;
        if out.dropped.blocks > 0 {
            bail!(
                "the backlog does not fit the gateway's default buffer bounds; use fewer --samples"
            );
        }
        first.get_or_insert(out.seq);
        last = out.seq;
    }
    let took = started.elapsed();
    let first = first.context("the backlog has no blocks")?;
    Ok(((first, last), ring.stats().bytes, took))
}

struct Drained {
    at: Instant,
    wall_ms: i64,
    connected_ms: i64,
    status: serde_json::Value,
}

fn watch_drain(
    args: &DrainArgs,
    hub: &HubProc,
    gw: &GatewayProc,
    probe: &Probe,
    backlog: &Backlog,
    (first_backlog_seq, last_backlog_seq): (u64, u64),
    started: Instant,
) -> anyhow::Result<Drained> {
    let mut watch = StatusWatch::default();
    let mut next_progress = started + Duration::from_secs(args.progress_s.max(1));
    let deadline = started + Duration::from_secs(args.timeout_s);
    let per_block = backlog.block_samples as u64;
    let mut hub_silent = 0;
    loop {
        let status = watch.poll(gw).cloned();
        let now = Instant::now();
        if let Some(s) = &status {
            let acked = s["buffer"]["acked_through"].as_u64().unwrap_or(0);
            if watch.connected_ms.is_none() && now.duration_since(started) > Duration::from_secs(60)
            {
                bail!("the gateway's uplink did not connect within 60 s; see the hub and gateway logs");
            }
            if acked >= last_backlog_seq {
                return Ok(Drained {
                    at: now,
                    wall_ms: now_ms(),
                    connected_ms: watch.connected_ms.unwrap_or_else(now_ms),
                    status: s.clone(),
                });
            }
            if now >= next_progress {
                next_progress += Duration::from_secs(args.progress_s.max(1));
                // A hub that died would leave the bench waiting until the timeout.
                hub_silent = if get_json(&hub.url("/health")).is_ok() {
                    0
                } else {
                    hub_silent + 1
                };
                if hub_silent >= 3 {
                    bail!("the hub stopped answering /health");
                }
                let blocks_acked = (acked + 1).saturating_sub(first_backlog_seq);
                let done = (blocks_acked * per_block).min(backlog.samples);
                let obs = probe.observations();
                let last = obs
                    .last()
                    .map(|o| format!("last {:.0} ms", o.latency_ms()))
                    .unwrap_or_else(|| "none yet".into());
                println!(
                    "  [{:6.1} s] backlog acked {} / {} samples ({} samples/s so far), buffer {} blocks {:.1} MiB, uplink {}; live samples seen {} ({last})",
                    now.duration_since(started).as_secs_f64(),
                    grouped(done as f64),
                    grouped(backlog.samples as f64),
                    grouped(rate(done, now.duration_since(started))),
                    s["buffer"]["blocks"].as_u64().unwrap_or(0),
                    mib(s["buffer"]["bytes"].as_u64().unwrap_or(0)),
                    if s["uplink"]["connected"].as_bool() == Some(true) { "up" } else { "down" },
                    obs.len(),
                );
            }
        }
        if now >= deadline {
            bail!(
                "the backlog did not drain within {} s; last status: {}",
                args.timeout_s,
                status.map(|s| s.to_string()).unwrap_or_default()
            );
        }
        interrupt::pause(STATUS_EVERY)?;
    }
}

/// Stops the probe once it has seen a sample stamped at or after `end_ms`
/// (so that late samples of the window are not cut off), or after 10 s.
fn finish_probe(rt: &Runtime, probe: Probe, end_ms: i64) -> ProbeResult {
    let give_up = Instant::now() + Duration::from_secs(10);
    while Instant::now() < give_up && !probe.observations().iter().any(|o| o.ts_ms >= end_ms) {
        if interrupt::pause(Duration::from_millis(50)).is_err() {
            break;
        }
    }
    probe.stop(rt)
}

/// Prints what the hub holds of the first and last backlog points, and
/// what the gateway dropped; informative, never fatal.
fn check_stored(hub: &HubProc, backlog: &Backlog, status: &serde_json::Value) {
    let per_point = |id: u32| {
        let seconds = backlog.samples / u64::from(backlog.points);
        seconds + u64::from(u64::from(id) < backlog.samples % u64::from(backlog.points))
    };
    let end_ms =
        backlog.start_ms + (backlog.samples.div_ceil(u64::from(backlog.points)) as i64) * 1000;
    for id in [0, backlog.points - 1] {
        let name = format!("{SITE}/{}", super::profile::point_name(id));
        let url = hub.url(&format!(
            "/api/v1/telemetry?point={name}&from={}&to={}&bucket_ms=86400000",
            rfc3339(backlog.start_ms),
            rfc3339(end_ms)
        ));
        match get_json_auth(&url, &hub.token) {
            Ok(v) => {
                let n: u64 = v["buckets"]
                    .as_array()
                    .map(|b| b.iter().filter_map(|x| x["count"].as_u64()).sum())
                    .unwrap_or(0);
                println!(
                    "check: the hub holds {n} samples of {name} ({} expected)",
                    per_point(id)
                );
            }
            Err(e) => println!("check: cannot count {name}: {e:#}"),
        }
    }
    println!(
        "check: the gateway dropped {} samples",
        status["buffer"]["dropped_samples"].as_u64().unwrap_or(0)
    );
}
