//! OPC UA notifications per second through one subscription into the ring
//! buffer, against the Python `asyncua` server of
//! `hil/peers/opcua_server.py` on loopback.
//!
//! The server changes N Double variables (`--bulk N`) every period; the
//! gateway's OPC UA driver monitors all of them in one subscription
//! (sampling interval = period, publishing interval = period) and sends the
//! notifications through the gateway's pipeline into a redb ring buffer.
//! Printed: the value changes the server made per second (the offered
//! load, the baseline of this run), the notifications per second that
//! reached the ring buffer, and their ratio.
//!
//! `cargo run --release -p dcmms-gateway --example bench_opcua [seconds] [variables] [period_ms]`
//! (defaults 20, 1000, 100).

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dcmms_gateway::pipeline::{Interner, PipelineConfig};
use dcmms_gateway::ring::{RingBuffer, RingConfig};
use dcmms_opcua::{OpcUaConfig, PointConfig};
use dcmms_protocols_core::Driver;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().with_context(|| format!("{a:?} is not a number")))
        .collect::<Result<_, _>>()?;
    let seconds = args.first().copied().unwrap_or(20).max(5);
    let vars = args.get(1).copied().unwrap_or(1000).max(1);
    let period_ms = args.get(2).copied().unwrap_or(100).max(10);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hil/peers/opcua_server.py");
    let python = std::env::var("DCMMS_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut peer = Command::new(python)
        .arg(&script)
        .args([
            "--bulk",
            &vars.to_string(),
            "--period-ms",
            &period_ms.to_string(),
            "--stats",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "start {} (run scripts/install-test-deps.sh)",
                script.display()
            )
        })?;
    let mut lines = BufReader::new(peer.stdout.take().context("peer stdout")?).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .context("the peer did not start within 60 s")??
        .context("the peer exited")?;
    let Some(endpoint) = line.strip_prefix("READY ") else {
        bail!("unexpected peer output {line:?}");
    };
    let peer_started = Instant::now();
    eprintln!("asyncua server at {endpoint}: {vars} variables changed every {period_ms} ms");

    let dir = tempfile::tempdir()?;
    let ring = Arc::new(RingBuffer::open(RingConfig::new(
        dir.path().join("ring.redb"),
    ))?);
    let mut cfg = OpcUaConfig::new("bench", endpoint);
    cfg.publishing_interval_ms = period_ms;
    cfg.points = (0..vars)
        .map(|i| {
            let mut p = PointConfig::new(format!("v{i:04}"), format!("ns=2;s=Bulk.V{i:04}"));
            p.sampling_interval_ms = Some(period_ms);
            p
        })
        .collect();
    let mut interner = Interner::default();
    let driver = dcmms_opcua::build_driver(&cfg, dir.path(), &mut interner)?;
    interner.persist(&ring)?;
    let subs = driver.subscription_stats();
    let stats = driver.stats();

    // Driver -> counter -> pipeline -> ring buffer.
    let (driver_tx, mut driver_rx) = mpsc::channel::<Vec<dcmms_shared::Sample>>(1024);
    let (pipe_tx, pipe_rx) = mpsc::channel(1024);
    let counted = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&counted);
    let forward = tokio::spawn(async move {
        while let Some(batch) = driver_rx.recv().await {
            c.fetch_add(batch.len() as u64, Ordering::Relaxed);
            if pipe_tx.send(batch).await.is_err() {
                break;
            }
        }
    });
    let (committed_tx, _committed_rx) = watch::channel(0);
    let pipeline = tokio::spawn(dcmms_gateway::pipeline::run(
        Arc::clone(&ring),
        pipe_rx,
        committed_tx,
        PipelineConfig {
            commit_interval: Duration::from_secs(1),
            max_block_samples: 20_000,
            heartbeat: Default::default(),
        },
    ));
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(Box::new(driver).run(driver_tx, cancel.clone()));

    // Until every item is monitored and values flow, then a warm-up.
    while subs.snapshot().monitored < vars || counted.load(Ordering::Relaxed) < vars {
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "no data within 60 s: {:?} {:?}",
                subs.snapshot(),
                stats.snapshot()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "subscription with {vars} monitored items up after {:.1} s; warming up 3 s, then measuring {seconds} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n0 = counted.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut last = n0;
    for s in 1..=seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let n = counted.load(Ordering::Relaxed);
        if s % 5 == 0 || s == seconds {
            eprintln!("  {s:>3} s: {} notifications/s", n - last);
        }
        last = n;
    }
    let window = t0.elapsed().as_secs_f64();
    let received = counted.load(Ordering::Relaxed) - n0;

    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    let _ = forward.await;
    pipeline.await??;
    let ring_stats = ring.stats();

    // The server's own count of value changes over its whole run (it
    // prints it on SIGTERM).
    let server_window = peer_started.elapsed().as_secs_f64();
    if let Some(pid) = peer.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let mut err = String::new();
    if let Some(mut e) = peer.stderr.take() {
        let _ = tokio::time::timeout(Duration::from_secs(10), e.read_to_string(&mut err)).await;
    }
    let _ = peer.wait().await;
    let stats_line = err
        .lines()
        .find(|l| l.starts_with("STATS"))
        .unwrap_or("")
        .to_owned();
    let ticks: u64 = stats_line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("ticks="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let overruns: u64 = stats_line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("overruns="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);

    let rate = received as f64 / window;
    let nominal = vars as f64 * 1000.0 / period_ms as f64;
    let offered = ticks as f64 * vars as f64 / server_window.max(1.0);
    println!("OPC UA subscription into the ring buffer ({vars} monitored items, {period_ms} ms sampling and publishing, {window:.0} s):");
    println!("  server value changes/s:      {offered:>9.0} (nominal {nominal:.0}; {overruns} late server ticks)");
    println!("  notifications/s in the ring: {rate:>9.0}");
    println!(
        "  ratio to the server's rate:  {:>9.2}",
        rate / offered.max(1.0)
    );
    println!(
        "  ring buffer: {} samples in {} blocks, {:.1} bytes/sample",
        ring_stats.appended_samples,
        ring_stats.appended_blocks,
        ring_stats.bytes as f64 / ring_stats.samples.max(1) as f64
    );
    let s = stats.snapshot();
    println!(
        "  device: {} notification batches, {} errors, {} reconnects",
        s.polls_ok,
        s.errors(),
        s.reconnects
    );
    if stats_line.is_empty() {
        eprintln!("note: the server printed no STATS line:\n{err}");
    }
    Ok(())
}
