//! Throughput of the Modbus TCP and RTU drivers with a realistic point map
//! (`hil/points/solar-inverter.csv`: 26 points, 4 requests per cycle)
//! against the pymodbus peer `hil/peers/modbus_rtu_server.py`.
//!
//! For each transport, for the same duration:
//! 1. baseline: one bare tokio-modbus client sending the same 4 reads back
//!    to back to unit 1;
//! 2. the driver: 4 units polled every 1 ms (TCP: one device task per unit
//!    on its own connection; RTU: one bus, one request at a time), with
//!    the inter-frame gap off (a pty needs none) and at its 115200-baud
//!    default (2 ms).
//!
//! The RTU line is a socat pty pair: it ignores the baud rate, so the
//! figures show the software's cost, not a real line's (a real 115200-baud
//! line carries about 70 such requests/s, 9600 baud about 8).
//!
//! Run: `cargo run --release -p dcmms-modbus --example bench_rtu -- [seconds]`
//! Needs python3 with pymodbus and pyserial, and socat
//! (`scripts/install-test-deps.sh`; interpreter from DCMMS_PYTHON).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use dcmms_modbus::{build_rtu, load_points_csv, ModbusRtuConfig, ModbusTcpConfig, RtuDeviceConfig};
use dcmms_protocols_core::{DeviceStats, Driver, PointResolver};
use dcmms_shared::{PointId, Quality, Sample};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_modbus::client::{Context, Reader as _};
use tokio_util::sync::CancellationToken;

const UNITS: u8 = 4;

struct Dense(u32);

impl PointResolver for Dense {
    fn resolve(&mut self, _name: &str) -> PointId {
        self.0 += 1;
        PointId(self.0 - 1)
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn spawn_peer(args: &[&str]) -> anyhow::Result<(Child, String)> {
    let python = std::env::var("DCMMS_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = repo().join("hil/peers/modbus_rtu_server.py");
    let mut peer = Command::new(&python)
        .arg(&script)
        .arg("--units")
        .arg("1,2,3,4")
        .args(args)
        .stdout(Stdio::piped())
        // pymodbus logs dropped connections at shutdown; keep the figures clean.
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} with {python}", script.display()))?;
    let stdout = peer.stdout.take().context("peer stdout")?;
    let line = BufReader::new(stdout).lines().next_line().await?.context(
        "peer exited; are pymodbus and pyserial installed? run scripts/install-test-deps.sh",
    )?;
    Ok((peer, line))
}

/// The 4 reads of the solar-inverter map, back to back, for `duration`.
async fn baseline(ctx: &mut Context, duration: Duration) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < duration {
        ctx.read_holding_registers(0, 4).await??;
        ctx.read_input_registers(0, 28).await??;
        ctx.read_coils(0, 1).await??;
        ctx.read_discrete_inputs(0, 2).await??;
        n += 4;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

struct Figures {
    requests_per_s: f64,
    samples_per_s: f64,
    bad: u64,
    errors: u64,
}

/// Runs `drivers` for `duration`; each cycle of this map is 4 requests.
async fn drive(
    drivers: Vec<Box<dyn Driver>>,
    stats: Vec<Arc<DeviceStats>>,
    points_per_cycle: usize,
    duration: Duration,
) -> anyhow::Result<Figures> {
    let (tx, mut rx) = mpsc::channel::<Vec<Sample>>(4096);
    let cancel = CancellationToken::new();
    let tasks: Vec<_> = drivers
        .into_iter()
        .map(|d| tokio::spawn(d.run(tx.clone(), cancel.clone())))
        .collect();
    drop(tx);
    // Let connections open and the first cycles settle.
    let warmup = Instant::now() + Duration::from_millis(300);
    while let Ok(Some(_)) = tokio::time::timeout_at(warmup.into(), rx.recv()).await {}
    let before: u64 = stats.iter().map(|s| s.snapshot().errors()).sum();
    let start = Instant::now();
    let (mut samples, mut bad) = (0u64, 0u64);
    while let Ok(Some(b)) = tokio::time::timeout_at((start + duration).into(), rx.recv()).await {
        samples += b.len() as u64;
        bad += b.iter().filter(|s| s.quality != Quality::Good).count() as u64;
    }
    let elapsed = start.elapsed().as_secs_f64();
    cancel.cancel();
    for t in tasks {
        t.await?;
    }
    let after: u64 = stats.iter().map(|s| s.snapshot().errors()).sum();
    let cycles = samples as f64 / points_per_cycle as f64;
    Ok(Figures {
        requests_per_s: cycles * 4.0 / elapsed,
        samples_per_s: samples as f64 / elapsed,
        bad,
        errors: after - before,
    })
}

fn print(label: &str, f: &Figures, base: f64) {
    println!(
        "{label}: {:>7.0} requests/s, {:>8.0} samples/s ({:.2}x baseline), {} bad samples, {} errors",
        f.requests_per_s,
        f.samples_per_s,
        f.requests_per_s / base,
        f.bad,
        f.errors
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5);
    let duration = Duration::from_secs(secs);
    let csv = repo().join("hil/points/solar-inverter.csv");
    let points = load_points_csv(&csv)?;
    let per_cycle = points.len();

    // --- Modbus TCP ---
    let (tcp_peer, line) = spawn_peer(&["--tcp"]).await?;
    let Some(port) = line
        .strip_prefix("PORT ")
        .and_then(|p| p.parse::<u16>().ok())
    else {
        bail!("unexpected peer output {line:?}");
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut ctx = tokio_modbus::client::tcp::connect_slave(addr, tokio_modbus::Slave(1)).await?;
    let tcp_base = baseline(&mut ctx, duration).await?;
    drop(ctx);
    let mut resolver = Dense(0);
    let mut drivers = Vec::new();
    let mut stats = Vec::new();
    for unit in 1..=UNITS {
        let mut cfg = ModbusTcpConfig::new(format!("inv-{unit}"), addr.to_string());
        cfg.unit_id = unit;
        cfg.poll_interval_ms = 1;
        cfg.points = points.clone();
        let d = dcmms_modbus::build(&cfg, Path::new("."), &mut resolver)?;
        stats.push(d.stats());
        drivers.push(d);
    }
    let tcp = drive(drivers, stats, per_cycle, duration).await?;
    drop(tcp_peer);

    // --- Modbus RTU over a pty pair ---
    let dir = tempfile::tempdir()?;
    let (peer_end, our_end) = (dir.path().join("peer"), dir.path().join("gw"));
    let _socat = Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", peer_end.display()))
        .arg(format!("pty,raw,echo=0,link={}", our_end.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting socat; run scripts/install-test-deps.sh")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(peer_end.exists() && our_end.exists()) {
        if Instant::now() > deadline {
            bail!("socat did not create the pty links");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let peer_arg = peer_end.to_string_lossy().into_owned();
    let (_rtu_peer, line) = spawn_peer(&["--port", &peer_arg, "--baud", "115200"]).await?;
    anyhow::ensure!(line == "READY", "unexpected peer output {line:?}");
    let serial = tokio_serial::new(our_end.to_string_lossy(), 115_200);
    let port = tokio_serial::SerialStream::open(&serial)?;
    let mut ctx = tokio_modbus::client::rtu::attach_slave(port, tokio_modbus::Slave(1));
    let rtu_base = baseline(&mut ctx, duration).await?;
    drop(ctx);

    let mut rtu = Vec::new();
    for gap_ms in [Some(0), None] {
        let mut cfg = ModbusRtuConfig::new("line", our_end.to_string_lossy());
        cfg.baud_rate = 115_200;
        cfg.timeout_ms = 500;
        cfg.inter_frame_gap_ms = gap_ms;
        cfg.devices = (1..=UNITS)
            .map(|unit| {
                let mut d = RtuDeviceConfig::new(format!("inv-{unit}"), unit);
                d.poll_interval_ms = 1;
                d.points = points.clone();
                d
            })
            .collect();
        let gap = cfg.serial_settings().inter_frame_gap;
        let bus = build_rtu(&cfg, Path::new("."), &mut resolver)?;
        let stats = bus.devices().into_iter().map(|h| h.stats).collect();
        let figures = drive(vec![Box::new(bus)], stats, per_cycle, duration).await?;
        rtu.push((gap, figures));
    }

    println!(
        "pymodbus 3.16.1 peer, solar-inverter map ({per_cycle} points, 4 requests per cycle), \
         {UNITS} units polled every 1 ms, {secs} s each"
    );
    println!("TCP  baseline bare tokio-modbus client:      {tcp_base:>7.0} requests/s");
    print(
        &format!("TCP  driver, {UNITS} devices (connections)      "),
        &tcp,
        tcp_base,
    );
    println!("RTU  baseline bare client on the pty:        {rtu_base:>7.0} requests/s");
    for (gap, f) in &rtu {
        print(
            &format!(
                "RTU  bus driver, {UNITS} units, gap {:>2} ms     ",
                gap.as_millis()
            ),
            f,
            rtu_base,
        );
    }
    Ok(())
}
