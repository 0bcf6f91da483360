//! IEC 61850 figures against the libiec61850 peer (`hil/peers/iec61850_server.py`,
//! pyiec61850-ng 1.6.1.10) on loopback:
//!
//! 1. reads/s: MMS Status round trips (baseline), single-attribute Reads,
//!    and the driver's poll (8 points with their q and t in one Read)
//!    through the whole driver;
//! 2. report-to-buffer latency: from the device's `t` of a changed value to
//!    the sample's arrival on the gateway's channel, for data-change reports.
//!
//! `cargo run --release -p dcmms-iec61850 --example bench_iec61850 [seconds]`

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use dcmms_iec61850::backend::{MmsBackend, Timeouts, VarRef};
use dcmms_iec61850::{build, Fc, Iec61850Config, PointConfig, ReportConfig, RsBackend};
use dcmms_protocols_core::{unix_time_ms, PointResolver};
use dcmms_shared::PointId;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

struct Ids(Vec<String>);

impl PointResolver for Ids {
    fn resolve(&mut self, name: &str) -> PointId {
        self.0.push(name.to_owned());
        PointId(self.0.len() as u32 - 1)
    }
}

async fn start_peer(tick_ms: u32) -> anyhow::Result<(Child, u16)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hil/peers/iec61850_server.py");
    let python = std::env::var("DCMMS_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(python)
        .arg(&script)
        .args(["--tick-ms", &tick_ms.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", script.display()))?;
    let stdout = child.stdout.take().context("peer stdout")?;
    let line = tokio::time::timeout(
        Duration::from_secs(30),
        BufReader::new(stdout).lines().next_line(),
    )
    .await
    .context("peer did not start in 30 s")??
    .context("peer printed nothing")?;
    let port = line
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .context("no PORT line")?;
    Ok((child, port))
}

fn points() -> Vec<PointConfig> {
    vec![
        PointConfig::new("totw", "LD0/MMXU1.TotW.mag.f", Fc::MX),
        PointConfig::new("hz", "LD0/MMXU1.Hz.mag.f", Fc::MX),
        PointConfig::new("totvar", "LD0/MMXU1.TotVAr.mag.f", Fc::MX),
        PointConfig::new("anin1", "LD0/GGIO1.AnIn1.mag.f", Fc::MX),
        PointConfig::new("ind1", "LD0/GGIO1.Ind1.stVal", Fc::ST),
        PointConfig::new("spcso1", "LD0/GGIO1.SPCSO1.stVal", Fc::ST),
        PointConfig::new("spcso2", "LD0/GGIO1.SPCSO2.stVal", Fc::ST),
        PointConfig::new("anout1", "LD0/GGIO1.AnOut1.mxVal.f", Fc::MX),
    ]
}

/// Calls `f` for `secs`, returning calls per second and the sorted
/// per-call times in microseconds.
fn rate(secs: f64, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<(f64, Vec<u64>)> {
    let start = Instant::now();
    let mut times = Vec::new();
    while start.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_micros() as u64);
    }
    times.sort_unstable();
    Ok((times.len() as f64 / start.elapsed().as_secs_f64(), times))
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);

    // 1. Reads per second.
    let (_peer, port) = start_peer(100).await?;
    let address = format!("127.0.0.1:{port}");
    let addr = address.clone();
    let (status, single, multi) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut b = RsBackend::new();
        let t = Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(5),
        };
        b.connect(&addr, t)?;
        let status = rate(secs, || Ok(b.status()?))?;
        let one = [VarRef {
            reference: "IED1LD0/MMXU1.TotW.mag.f".into(),
            fc: Fc::MX,
        }];
        let single = rate(secs, || {
            b.read(&one)?;
            Ok(())
        })?;
        let plan = {
            let mut c = Iec61850Config::new("bench", addr.as_str());
            c.ied_name = "IED1".into();
            c.points = points();
            c.validate(Path::new("."))?
        };
        let mut vars = Vec::new();
        for p in &plan.points {
            vars.push(p.value.clone());
            vars.extend(p.quality.iter().map(|(v, _)| v.clone()));
            vars.extend(p.time.iter().map(|(v, _)| v.clone()));
        }
        let n = vars.len();
        let multi = rate(secs, || {
            let r = b.read(&vars)?;
            if r.len() != n || r.iter().any(Result::is_err) {
                bail!("read failed: {r:?}");
            }
            Ok(())
        })?;
        b.close();
        Ok((status, single, (multi, n)))
    })
    .await??;

    // The whole driver, polling as fast as the device answers.
    let mut cfg = Iec61850Config::new("bench", address.as_str());
    cfg.ied_name = "IED1".into();
    cfg.poll_interval_ms = 1;
    cfg.points = points();
    let driver = build(&cfg, Path::new("."), &mut Ids(Vec::new()))?;
    let stats = driver.stats();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(driver.run(tx, cancel.clone()));
    let drain = tokio::spawn(async move {
        let mut samples = 0usize;
        while let Some(b) = rx.recv().await {
            samples += b.len();
        }
        samples
    });
    // Let it connect, then count.
    while !stats.snapshot().connected {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = stats.snapshot().polls_ok;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let polls = stats.snapshot().polls_ok - before;
    let elapsed = t0.elapsed().as_secs_f64();
    cancel.cancel();
    task.await?;
    let _ = drain.await?;
    let driver_polls = polls as f64 / elapsed;

    println!(
        "IEC 61850 reads against libiec61850 (pyiec61850-ng 1.6.1.10), loopback, {secs} s each:"
    );
    println!(
        "  baseline  MMS Status round trips        {:>8.0} /s  (p50 {} us, p99 {} us)",
        status.0,
        pct(&status.1, 0.5),
        pct(&status.1, 0.99)
    );
    println!(
        "  Read of one attribute                   {:>8.0} reads/s  (p50 {} us, p99 {} us) = {:.2}x baseline",
        single.0,
        pct(&single.1, 0.5),
        pct(&single.1, 0.99),
        single.0 / status.0
    );
    let (multi, n) = multi;
    println!(
        "  Read of {n} variables (8 points+q+t)     {:>8.0} reads/s = {:.0} variables/s (p50 {} us)",
        multi.0,
        multi.0 * n as f64,
        pct(&multi.1, 0.5)
    );
    println!(
        "  driver poll cycles (8 points+q+t)       {:>8.0} cycles/s = {:.0} points/s",
        driver_polls,
        driver_polls * 8.0
    );

    // 2. Report-to-buffer latency, data-change reports every 20 ms.
    let (_peer2, port2) = start_peer(20).await?;
    let mut cfg = Iec61850Config::new("bench", format!("127.0.0.1:{port2}"));
    cfg.ied_name = "IED1".into();
    cfg.points = points();
    cfg.reports = vec![ReportConfig::new("LD0/LLN0.RP.urcb01")];
    let mut ids = Ids(Vec::new());
    let driver = build(&cfg, Path::new("."), &mut ids)?;
    let totw = PointId(0);
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(driver.run(tx, cancel.clone()));
    let lat = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let sink = Arc::clone(&lat);
    let collect = tokio::spawn(async move {
        let mut first = true;
        while let Some(batch) = rx.recv().await {
            let arrived = unix_time_ms(SystemTime::now());
            if first {
                // The GI report carries values from before the enable.
                first = false;
                continue;
            }
            for s in batch.iter().filter(|s| s.point == totw) {
                sink.lock()
                    .map_err(|_| anyhow::anyhow!("lock"))?
                    .push(arrived - s.ts_ms);
            }
        }
        anyhow::Ok(())
    });
    tokio::time::sleep(Duration::from_secs_f64(secs.max(2.0) + 1.0)).await;
    cancel.cancel();
    task.await?;
    collect.await??;
    let mut l = lat.lock().map_err(|_| anyhow::anyhow!("lock"))?.clone();
    l.sort_unstable();
    if l.is_empty() {
        bail!("no data-change reports arrived");
    }
    let mean = l.iter().sum::<i64>() as f64 / l.len() as f64;
    println!(
        "report-to-buffer latency (device t of a change -> sample on the gateway channel), {} data-change reports at 50/s:",
        l.len()
    );
    println!(
        "  p50 {} ms, p90 {} ms, p99 {} ms, max {} ms, mean {:.2} ms (ms resolution: the device stores t in ms); baseline Status RTT p50 {} us",
        l[l.len() / 2],
        l[(l.len() - 1) * 9 / 10],
        l[(l.len() - 1) * 99 / 100],
        l[l.len() - 1],
        mean,
        pct(&status.1, 0.5)
    );
    Ok(())
}
