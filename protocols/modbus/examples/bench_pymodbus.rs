//! Throughput of the Modbus TCP driver against the pymodbus peer.
//!
//! Starts `hil/peers/modbus_server.py` (no read log), then for the same
//! duration measures
//! 1. baseline: one bare tokio-modbus client reading 125 input registers
//!    back to back;
//! 2. the driver: N devices, each a 125-point map (input 0..=124, one read
//!    per cycle), polling every 1 ms.
//!
//! Run: `cargo run --release -p dcmms-modbus --example bench_pymodbus -- [seconds] [devices]`
//! Needs python3 with pymodbus (`scripts/install-test-deps.sh`; interpreter
//! from DCMMS_PYTHON).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use dcmms_modbus::{ModbusTcpConfig, PointConfig, Table};
use dcmms_protocols_core::PointResolver;
use dcmms_shared::{PointId, Quality};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_modbus::client::Reader as _;
use tokio_util::sync::CancellationToken;

struct Dense(u32);

impl PointResolver for Dense {
    fn resolve(&mut self, _name: &str) -> PointId {
        self.0 += 1;
        PointId(self.0 - 1)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let devices: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(4);
    let duration = Duration::from_secs(secs);

    let python = std::env::var("DCMMS_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hil/peers/modbus_server.py");
    let mut peer = tokio::process::Command::new(&python)
        .arg(&script)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} with {python}", script.display()))?;
    let stdout = peer.stdout.take().context("peer stdout")?;
    let line = BufReader::new(stdout)
        .lines()
        .next_line()
        .await?
        .context("peer exited; is pymodbus installed? run scripts/install-test-deps.sh")?;
    let Some(port) = line
        .strip_prefix("PORT ")
        .and_then(|p| p.parse::<u16>().ok())
    else {
        bail!("unexpected peer output {line:?}");
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    // Baseline: bare client, back to back.
    let mut ctx = tokio_modbus::client::tcp::connect_slave(addr, tokio_modbus::Slave(1)).await?;
    let start = Instant::now();
    let mut baseline = 0u64;
    while start.elapsed() < duration {
        let regs = ctx.read_input_registers(0, 125).await??;
        anyhow::ensure!(regs.len() == 125);
        baseline += 1;
    }
    let base_rate = baseline as f64 / start.elapsed().as_secs_f64();
    drop(ctx);

    // The driver, `devices` concurrent connections.
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let cancel = CancellationToken::new();
    let mut resolver = Dense(0);
    let mut tasks = Vec::new();
    let mut stats = Vec::new();
    for d in 0..devices {
        let mut cfg = ModbusTcpConfig::new(format!("dev{d}"), addr.to_string());
        cfg.poll_interval_ms = 1;
        cfg.points = (0..125u16)
            .map(|a| PointConfig::new(format!("r{a}"), Table::Input, a))
            .collect();
        let driver = dcmms_modbus::build(&cfg, Path::new("."), &mut resolver)?;
        stats.push(driver.stats());
        tasks.push(tokio::spawn(driver.run(tx.clone(), cancel.clone())));
    }
    drop(tx);
    let start = Instant::now();
    let (mut batches, mut samples, mut bad) = (0u64, 0u64, 0u64);
    while let Ok(Some(b)) = tokio::time::timeout_at((start + duration).into(), rx.recv()).await {
        batches += 1;
        samples += b.len() as u64;
        bad += b.iter().filter(|s| s.quality != Quality::Good).count() as u64;
    }
    let elapsed = start.elapsed().as_secs_f64();
    cancel.cancel();
    for t in tasks {
        t.await?;
    }
    let errors: u64 = stats.iter().map(|s| s.snapshot().errors()).sum();
    let rtt: Vec<u64> = stats.iter().map(|s| s.snapshot().last_rtt_us).collect();

    println!("pymodbus 3.16.1 peer on loopback, 125-register reads, {secs} s each");
    println!(
        "baseline  bare tokio-modbus client: {base_rate:>8.0} requests/s ({:.0} registers/s)",
        base_rate * 125.0
    );
    let req_rate = batches as f64 / elapsed;
    println!(
        "driver    {devices} devices x 125 points:  {req_rate:>8.0} requests/s, {:>9.0} samples/s ({:.2}x baseline), {bad} bad samples, {errors} errors, last rtt {rtt:?} us",
        samples as f64 / elapsed,
        req_rate / base_rate
    );
    Ok(())
}
