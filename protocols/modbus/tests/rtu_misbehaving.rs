//! The RTU bus against units that answer badly, scripted byte by byte on
//! the far end of a socat pty pair, and against a port that does not
//! exist. The bus must count each failure, keep the good unit polled,
//! reopen the port when its framing is lost, and never stop or panic.
//! Needs socat (`scripts/install-test-deps.sh`).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::Names;
use dcmms_modbus::{build_rtu, ModbusRtuConfig, PointConfig, RtuDeviceConfig, Table};
use dcmms_protocols_core::{DeviceStats, Driver};
use dcmms_shared::{Quality, Sample};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0xFFFFu16;
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = body.to_vec();
    f.extend_from_slice(&crc16(body).to_le_bytes());
    f
}

/// Answers read requests: unit 1 correctly, unit 3 with noise, unit 4
/// with a correct answer that carries unit id 5. Anything else is ignored.
async fn scripted_units(path: &Path) {
    let port =
        tokio_serial::SerialStream::open(&tokio_serial::new(path.to_string_lossy(), 115_200))
            .expect("open the peer end of the pty pair");
    let mut port = port;
    let mut req = [0u8; 8];
    loop {
        if port.read_exact(&mut req).await.is_err() {
            return;
        }
        assert_eq!(
            crc16(&req[..6]).to_le_bytes(),
            [req[6], req[7]],
            "request CRC"
        );
        let (unit, fc) = (req[0], req[1]);
        let address = u16::from_be_bytes([req[2], req[3]]);
        let count = u16::from_be_bytes([req[4], req[5]]);
        let mut body = vec![unit, fc, (2 * count) as u8];
        for i in 0..count {
            body.extend_from_slice(&(address + i).to_be_bytes());
        }
        let answer = match unit {
            1 => frame(&body),
            3 => (0..40u8).map(|i| i.wrapping_mul(37) ^ 0x5A).collect(),
            4 => {
                body[0] = 5;
                frame(&body)
            }
            _ => continue,
        };
        if port.write_all(&answer).await.is_err() {
            return;
        }
    }
}

fn unit(id: u8) -> RtuDeviceConfig {
    let mut d = RtuDeviceConfig::new(format!("u{id}"), id);
    d.poll_interval_ms = 100;
    d.points = vec![
        PointConfig::new("a", Table::Holding, 10),
        PointConfig::new("b", Table::Holding, 11),
    ];
    d
}

struct Outcome {
    batches: Vec<(String, Vec<Sample>)>,
    units: Vec<dcmms_protocols_core::DeviceStatsSnapshot>,
    bus: dcmms_protocols_core::DeviceStatsSnapshot,
}

async fn run_bus(cfg: &ModbusRtuConfig, duration: Duration) -> Outcome {
    let mut names = Names::default();
    let driver = build_rtu(cfg, Path::new("."), &mut names).expect("valid config");
    let units: Vec<Arc<DeviceStats>> = driver.devices().into_iter().map(|h| h.stats).collect();
    let bus = driver.stats();
    let (tx, mut rx) = mpsc::channel::<Vec<Sample>>(1024);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(Box::new(driver).run(tx, cancel.clone()));
    let by_id: std::collections::HashMap<_, _> =
        names.0.iter().map(|(n, id)| (*id, n.clone())).collect();
    let collect = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            let device = b
                .first()
                .and_then(|s| by_id.get(&s.point))
                .and_then(|n| n.split_once('/'))
                .map_or_else(String::new, |(d, _)| d.to_owned());
            out.push((device, b));
        }
        out
    });
    tokio::time::sleep(duration).await;
    assert!(!task.is_finished(), "the bus task ended on its own");
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("bus stops within 2 s of cancellation")
        .expect("bus task does not panic");
    // Counters only grow; read them once the task is done.
    let units_snap = units.iter().map(|s| s.snapshot()).collect();
    let bus_snap = bus.snapshot();
    Outcome {
        batches: collect.await.unwrap(),
        units: units_snap,
        bus: bus_snap,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_and_foreign_answers_do_not_spoil_the_good_unit() {
    let dir = tempfile::tempdir().unwrap();
    let (peer_end, our_end) = (dir.path().join("peer"), dir.path().join("gw"));
    let _socat = Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", peer_end.display()))
        .arg(format!("pty,raw,echo=0,link={}", our_end.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("socat is installed (scripts/install-test-deps.sh)");
    tokio::time::timeout(Duration::from_secs(10), async {
        while !(peer_end.exists() && our_end.exists()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("socat creates the pty links within 10 s");
    let responder = tokio::spawn({
        let p = peer_end.clone();
        async move { scripted_units(&p).await }
    });

    let mut cfg = ModbusRtuConfig::new("line", our_end.to_string_lossy());
    cfg.baud_rate = 115_200;
    cfg.timeout_ms = 100;
    cfg.backoff_min_ms = 300;
    cfg.backoff_max_ms = 600;
    cfg.devices = vec![unit(1), unit(3), unit(4)];
    let out = run_bus(&cfg, Duration::from_millis(2500)).await;
    responder.abort();

    let (u1, u3, u4) = (&out.units[0], &out.units[1], &out.units[2]);
    eprintln!("u1 {u1:?}\nu3 {u3:?}\nu4 {u4:?}\nbus {:?}", out.bus);
    // The good unit: every poll answered, values as scripted.
    let good: Vec<_> = out.batches.iter().filter(|(d, _)| d == "u1").collect();
    assert!(good.len() >= 15, "{} polls of u1 in 2.5 s", good.len());
    for (_, b) in &good {
        assert!(b.iter().all(|s| s.quality == Quality::Good), "{b:?}");
        assert_eq!(
            b.iter().map(|s| s.value).collect::<Vec<_>>(),
            vec![10.0, 11.0]
        );
    }
    assert_eq!(u1.errors(), 0, "{u1:?}");
    // Noise: no valid frame, so the read fails (malformed or timed out).
    assert_eq!(u3.polls_ok, 0);
    assert!(u3.decode_errors + u3.timeouts >= 1, "{u3:?}");
    // An answer from the wrong unit id is malformed; the port is reopened.
    assert_eq!(u4.polls_ok, 0);
    assert!(u4.decode_errors >= 2, "{u4:?}");
    assert!(out.bus.reconnects >= u4.decode_errors, "{:?}", out.bus);
    for (d, b) in &out.batches {
        if d != "u1" {
            assert!(b.iter().all(|s| s.quality == Quality::Bad), "{d}: {b:?}");
        }
    }
}

#[tokio::test]
async fn a_missing_port_is_retried_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ModbusRtuConfig::new("line", dir.path().join("ttyUSB9").to_string_lossy());
    cfg.backoff_min_ms = 50;
    cfg.backoff_max_ms = 400;
    cfg.devices = vec![unit(1), unit(2)];
    let out = run_bus(&cfg, Duration::from_secs(2)).await;
    let attempts = out.bus.reconnects + 1;
    eprintln!("open attempts in 2 s: {attempts}");
    // Every 50 ms without backoff would be 40 attempts; doubling with
    // jitter up to 400 ms gives about 8.
    assert!((3..=20).contains(&attempts), "{:?}", out.bus);
    assert!(!out.bus.connected);
    for u in &out.units {
        assert_eq!(u.polls_ok, 0);
        assert_eq!(u.transport_errors, attempts, "{u:?}");
        assert!(!u.connected);
    }
    assert_eq!(out.bus.transport_errors, 2 * attempts);
    // One Bad batch per unit per attempt, nothing else.
    assert_eq!(out.batches.len() as u64, 2 * attempts);
    assert!(out
        .batches
        .iter()
        .all(|(_, b)| b.len() == 2 && b.iter().all(|s| s.quality == Quality::Bad)));
}
