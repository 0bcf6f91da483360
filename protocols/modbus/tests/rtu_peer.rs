//! The RTU bus driver against a third-party peer: a pymodbus 3.16.1 serial
//! server (RTU framer) with units 1, 2 and 3 on one end of a socat pty pair
//! (`hil/peers/modbus_rtu_server.py`). Unit 2 goes silent mid-test; the
//! others must keep their poll rate, unit 2 must be backed off and its
//! points Bad, and it must be picked up again once it answers. Writes go
//! through the command ports and are checked in the peer's log and in the
//! values read back. Needs python3 with pymodbus and pyserial, and socat
//! (`scripts/install-test-deps.sh`); fails, not skips, without them.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::rtu_peer::{requests, start_rtu_peer, RtuPeer};
use common::Names;
use dcmms_modbus::{
    build_rtu, scan_units, starter_map, ModbusRtuConfig, PointConfig, ProbeAnswer, RtuDeviceConfig,
    ScanOptions, ScanTarget, Table,
};
use dcmms_protocols_core::{
    Command, CommandError, CommandSender, CommandValue, DeviceStats, DeviceStatsSnapshot, Driver,
};
use dcmms_shared::{PointId, Quality, Sample};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const POLL_MS: u64 = 100;
const TIMEOUT_MS: u64 = 150;
const BACKOFF_MIN_MS: u64 = 600;
const WINDOW: Duration = Duration::from_millis(2000);

fn unit_config(unit: u8) -> RtuDeviceConfig {
    let mut d = RtuDeviceConfig::new(format!("u{unit}"), unit);
    d.poll_interval_ms = POLL_MS;
    d.points = vec![
        PointConfig::new("counter", Table::Holding, 0),
        PointConfig::new("unit", Table::Holding, 1),
        PointConfig::new("product", Table::Holding, 2),
        PointConfig::new("setpoint", Table::Holding, 3)
            .with_scale(0.1, 0.0)
            .writable(),
    ];
    // Unit 2 takes three requests per cycle; when it is silent only the
    // first one may go out.
    if unit == 2 {
        d.points.extend([
            PointConfig::new("in0", Table::Input, 0),
            PointConfig::new("in5", Table::Input, 5),
            PointConfig::new("run", Table::Coil, 0).writable(),
        ]);
    }
    d
}

fn bus_config(port: &Path) -> ModbusRtuConfig {
    let mut c = ModbusRtuConfig::new("line", port.to_string_lossy());
    c.baud_rate = 115_200;
    c.timeout_ms = TIMEOUT_MS;
    c.backoff_min_ms = BACKOFF_MIN_MS;
    c.backoff_max_ms = 2400;
    c.devices = (1..=3).map(unit_config).collect();
    c
}

/// Every batch the bus sent, with the device it belongs to.
type Batches = Arc<std::sync::Mutex<Vec<(Instant, String, Vec<Sample>)>>>;

struct Running {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    batches: Batches,
    names: HashMap<PointId, String>,
    units: Vec<Arc<DeviceStats>>,
    unit_commands: Vec<Option<CommandSender>>,
    bus_commands: CommandSender,
    bus_stats: Arc<DeviceStats>,
}

fn start(cfg: &ModbusRtuConfig) -> Running {
    let mut names = Names::default();
    let driver = build_rtu(cfg, Path::new("."), &mut names).expect("valid bus config");
    let handles = driver.devices();
    let bus_commands = driver.commands().expect("writable points");
    let bus_stats = driver.stats();
    let (tx, mut rx) = mpsc::channel::<Vec<Sample>>(1024);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(Box::new(driver).run(tx, cancel.clone()));
    let by_id: HashMap<PointId, String> = names.0.iter().map(|(n, id)| (*id, n.clone())).collect();
    let batches: Batches = Arc::default();
    let sink = Arc::clone(&batches);
    let devices = by_id.clone();
    tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            let device = b
                .first()
                .and_then(|s| devices.get(&s.point))
                .and_then(|n| n.split_once('/'))
                .map_or_else(String::new, |(d, _)| d.to_owned());
            sink.lock().unwrap().push((Instant::now(), device, b));
        }
    });
    Running {
        cancel,
        task,
        batches,
        names: by_id,
        units: handles.iter().map(|h| Arc::clone(&h.stats)).collect(),
        unit_commands: handles.iter().map(|h| h.commands.clone()).collect(),
        bus_commands,
        bus_stats,
    }
}

impl Running {
    fn snapshot(&self, unit: u8) -> DeviceStatsSnapshot {
        self.units[usize::from(unit - 1)].snapshot()
    }

    /// Batches of `device` received in `[from, to)`.
    fn batches_of(&self, device: &str, from: Instant, to: Instant) -> Vec<Vec<Sample>> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, d, _)| d == device && *t >= from && *t < to)
            .map(|(_, _, b)| b.clone())
            .collect()
    }

    fn value(&self, batch: &[Sample], point: &str) -> Option<f64> {
        batch
            .iter()
            .find(|s| {
                self.names
                    .get(&s.point)
                    .is_some_and(|n| n.ends_with(&format!("/{point}")))
            })
            .filter(|s| s.quality == Quality::Good)
            .map(|s| s.value)
    }

    async fn command(
        &self,
        unit: u8,
        point: &str,
        value: CommandValue,
    ) -> Result<(), CommandError> {
        let tx = self.unit_commands[usize::from(unit - 1)]
            .as_ref()
            .expect("unit has writable points");
        tokio::time::timeout(
            Duration::from_secs(5),
            tx.execute(Command {
                point: point.into(),
                value,
            }),
        )
        .await
        .expect("command answered within 5 s")
    }

    async fn bus_command(&self, point: &str, value: CommandValue) -> Result<(), CommandError> {
        tokio::time::timeout(
            Duration::from_secs(5),
            self.bus_commands.execute(Command {
                point: point.into(),
                value,
            }),
        )
        .await
        .expect("command answered within 5 s")
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .expect("bus stops within 2 s of cancellation")
            .expect("bus task does not panic");
    }
}

async fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let ok = tokio::time::timeout(limit, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(ok.is_ok(), "{what} within {limit:?}");
}

fn good(batch: &[Sample]) -> bool {
    batch.iter().all(|s| s.quality == Quality::Good)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_keep_their_rate_while_one_goes_silent() {
    tokio::time::timeout(Duration::from_secs(60), silent_unit_scenario())
        .await
        .expect("scenario finishes within 60 s");
}

async fn silent_unit_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let peer: RtuPeer = start_rtu_peer(dir.path(), "1,2,3").await;
    let run = start(&bus_config(&peer.port));

    until("all three units answer", Duration::from_secs(10), || {
        (1..=3).all(|u| run.snapshot(u).polls_ok >= 3)
    })
    .await;
    assert!(run.bus_stats.snapshot().connected);

    // Phase A: everyone answers. Writes go out between polls.
    let a0 = Instant::now();
    assert_eq!(
        run.command(1, "setpoint", CommandValue::Analog(12.3)).await,
        Ok(())
    );
    assert_eq!(
        run.bus_command("u3/setpoint", CommandValue::Analog(0.5))
            .await,
        Ok(())
    );
    assert_eq!(
        run.command(2, "run", CommandValue::Binary(true)).await,
        Ok(())
    );
    assert_eq!(
        run.command(1, "counter", CommandValue::Analog(1.0)).await,
        Err(CommandError::NotWritable("counter".into()))
    );
    assert_eq!(
        run.command(1, "nope", CommandValue::Analog(1.0)).await,
        Err(CommandError::UnknownPoint("nope".into()))
    );
    assert_eq!(
        run.bus_command("u9/setpoint", CommandValue::Analog(1.0))
            .await,
        Err(CommandError::UnknownPoint("u9/setpoint".into()))
    );
    let e = run
        .command(1, "setpoint", CommandValue::Analog(-5.0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "bad_value", "{e}");
    let e = run
        .command(2, "setpoint", CommandValue::Binary(true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "bad_value", "{e}");
    tokio::time::sleep_until((a0 + WINDOW).into()).await;
    let a1 = Instant::now();

    // Phase B: unit 2 loses power.
    peer.silence(&[2]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let b0 = Instant::now();
    let u2_before = run.snapshot(2);
    tokio::time::sleep(WINDOW).await;
    let b1 = Instant::now();
    let u2_after = run.snapshot(2);

    // A write to the silent unit times out and says so.
    assert_eq!(
        run.command(2, "setpoint", CommandValue::Analog(1.0)).await,
        Err(CommandError::Timeout)
    );
    let u2_silent = run.snapshot(2);
    assert!(!u2_silent.connected, "{u2_silent:?}");

    // Phase C: unit 2 comes back and is picked up after its backoff.
    peer.silence(&[]);
    let back_at = Instant::now();
    let polls_when_back = u2_silent.polls_ok;
    until("unit 2 answers again", Duration::from_secs(6), || {
        let s = run.snapshot(2);
        s.connected && s.polls_ok > polls_when_back
    })
    .await;
    let recovered_after = back_at.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bus_before_stop = run.bus_stats.snapshot();
    let units_before_stop: Vec<DeviceStatsSnapshot> = (1..=3).map(|u| run.snapshot(u)).collect();

    // --- The others kept their rate. ---
    let rate = |device: &str, from, to| {
        run.batches_of(device, from, to)
            .iter()
            .filter(|b| good(b))
            .count()
    };
    let nominal = (WINDOW.as_millis() as u64 / POLL_MS) as usize;
    for device in ["u1", "u2", "u3"] {
        // A sanity floor only: a loaded machine slows the Python peer.
        let n = rate(device, a0, a1);
        assert!(
            n >= nominal / 3,
            "{device}: {n} good polls in phase A, nominal {nominal}"
        );
    }
    for device in ["u1", "u3"] {
        let (a, b) = (rate(device, a0, a1), rate(device, b0, b1));
        eprintln!("{device}: {a} good polls before unit 2 went silent, {b} after");
        assert!(
            b * 10 >= a * 7,
            "{device} slowed down while unit 2 was silent: {a} -> {b} polls per {WINDOW:?}"
        );
        assert_eq!(
            run.batches_of(device, b0, b1).len(),
            b,
            "{device} had no Bad batches"
        );
    }

    // --- The silent unit was backed off, one request per retry. ---
    let probes = u2_after.timeouts - u2_before.timeouts;
    let bad_batches = run.batches_of("u2", b0, b1);
    eprintln!(
        "unit 2 silent: {probes} timed-out probes in {WINDOW:?}, {} retries in total, recovered \
         {recovered_after:?} after it answered again",
        u2_silent.reconnects
    );
    assert!(probes >= 1, "unit 2 was never retried: {u2_after:?}");
    let max_probes = (WINDOW.as_millis() as u64 / BACKOFF_MIN_MS) + 1;
    assert!(
        probes <= max_probes,
        "{probes} probes of the silent unit in {WINDOW:?}; at most {max_probes} with backoff"
    );
    assert_eq!(bad_batches.len() as u64, probes);
    for b in &bad_batches {
        assert_eq!(b.len(), 7, "every point of u2 reported");
        assert!(b
            .iter()
            .all(|s| s.quality == Quality::Bad && s.value.is_nan()));
    }
    assert!(u2_silent.reconnects >= 2, "{u2_silent:?}");
    // Each retry is one failed poll with one timeout; the write that timed
    // out is one more timeout.
    assert_eq!(
        u2_silent.timeouts - u2_before.timeouts,
        u2_silent.polls_failed - u2_before.polls_failed + 1,
        "{u2_silent:?}"
    );
    // On the wire: each retry was the first read of the cycle only.
    let log = requests(&peer.log);
    let t = |i: Instant| -> f64 {
        // Peer times are Unix seconds; map our instants onto them.
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        now_unix - i.elapsed().as_secs_f64()
    };
    let silent_reads: Vec<_> = log
        .iter()
        // Reads only (pymodbus also logs the echo of a write as an access).
        .filter(|r| r.unit == 2 && r.silenced && r.fc <= 4)
        .collect();
    assert!(
        silent_reads
            .iter()
            .all(|r| r.fc == 3 && r.address == 0 && r.count == 4),
        "{silent_reads:?}"
    );
    let in_b = silent_reads
        .iter()
        .filter(|r| r.t >= t(b0) - 0.05 && r.t < t(b1) + 0.05)
        .count() as u64;
    assert!(
        in_b.abs_diff(probes) <= 1,
        "peer saw {in_b} requests to unit 2 in phase B, the driver counted {probes} timeouts"
    );

    // --- Values and writes. ---
    for (u, device) in [(1u8, "u1"), (2, "u2"), (3, "u3")] {
        let good_batches: Vec<_> = run
            .batches_of(device, a0, Instant::now())
            .into_iter()
            .filter(|b| good(b))
            .collect();
        for b in &good_batches {
            let ts = b[0].ts_ms;
            assert!(b.iter().all(|s| s.ts_ms == ts), "one timestamp per cycle");
            let c = run.value(b, "counter").unwrap();
            assert_eq!(run.value(b, "unit"), Some(f64::from(u)));
            assert_eq!(run.value(b, "product"), Some((c * f64::from(u)) % 65536.0));
            if u == 2 {
                // A separate request, right after the holding read.
                let in0 = run.value(b, "in0").unwrap();
                let c_input = in0 - 2000.0;
                assert!(
                    (c..=c + 3.0).contains(&c_input),
                    "counter {c}, input read at {c_input}"
                );
                assert_eq!(run.value(b, "in5"), Some(in0 + 35.0));
            }
        }
        // The counter moves on (the peer steps it every 100 ms).
        let first = run.value(&good_batches[0], "counter").unwrap();
        let last = run.value(good_batches.last().unwrap(), "counter").unwrap();
        assert!(last > first, "{device}: counter {first} -> {last}");
    }
    let last_setpoint = |device: &str| {
        run.batches_of(device, a0, Instant::now())
            .iter()
            .rfind(|b| good(b))
            .and_then(|b| run.value(b, "setpoint"))
    };
    assert_eq!(last_setpoint("u1"), Some(12.3));
    assert_eq!(last_setpoint("u3"), Some(0.5));
    let writes: Vec<(u8, u8, u16, Vec<i64>)> = log
        .iter()
        .filter_map(|r| r.write.clone().map(|w| (r.unit, r.fc, r.address, w)))
        .collect();
    assert!(writes.contains(&(1, 6, 3, vec![123])), "{writes:?}");
    assert!(writes.contains(&(3, 6, 3, vec![5])), "{writes:?}");
    assert!(writes.contains(&(2, 5, 0, vec![1])), "{writes:?}");
    // The bad-value and not-writable commands never reached the line.
    assert_eq!(writes.iter().filter(|w| w.0 == 1).count(), 1, "{writes:?}");

    // --- The bus row adds up its units. ---
    assert!(bus_before_stop.connected);
    assert_eq!(bus_before_stop.reconnects, 0, "the port was never reopened");
    let sum = |f: fn(&DeviceStatsSnapshot) -> u64| units_before_stop.iter().map(f).sum::<u64>();
    assert!(bus_before_stop.polls_ok.abs_diff(sum(|s| s.polls_ok)) <= 3);
    assert!(bus_before_stop.timeouts.abs_diff(sum(|s| s.timeouts)) <= 1);
    assert_eq!(bus_before_stop.decode_errors, 0);

    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_finds_the_answering_units_and_writes_a_starter_map() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let dir = tempfile::tempdir().unwrap();
        let peer = start_rtu_peer(dir.path(), "1,2,5").await;
        peer.silence(&[5]);
        let mut serial = bus_config(&peer.port).serial_settings();
        serial.inter_frame_gap = Duration::ZERO;
        let target = ScanTarget::Rtu(serial);
        let opts = ScanOptions {
            units: 1..=6,
            address: 1,
            count: 2,
            timeout: Duration::from_millis(100),
            ..ScanOptions::default()
        };
        let started = Instant::now();
        let found = scan_units(&target, &opts).await.expect("scan runs");
        eprintln!("scanned 6 unit ids in {:?}", started.elapsed());
        let ids: Vec<u8> = found.iter().map(|f| f.unit_id).collect();
        assert_eq!(ids, vec![1, 2], "unit 5 is silent, 3, 4 and 6 do not exist");
        // Holding 1 is the unit id, holding 2 the counter times the unit id.
        assert!(matches!(&found[1].answer, ProbeAnswer::Registers(r) if r[0] == 2));

        // An exception answer counts as present.
        let opts_bad = ScanOptions {
            address: 500,
            units: 1..=2,
            ..opts.clone()
        };
        let found_bad = scan_units(&target, &opts_bad).await.expect("scan runs");
        assert_eq!(found_bad.len(), 2);
        assert!(matches!(
            &found_bad[0].answer,
            ProbeAnswer::Exception { code: 2, .. }
        ));

        let map = starter_map("line", &target, &found, &opts);
        let out = dir.path().join("starter");
        map.write_to(&out, "modbus.toml")
            .expect("write starter map");
        #[derive(serde::Deserialize)]
        struct Doc {
            modbus_rtu: Vec<ModbusRtuConfig>,
        }
        let doc: Doc =
            toml::from_str(&std::fs::read_to_string(out.join("modbus.toml")).unwrap()).unwrap();
        let bus = &doc.modbus_rtu[0];
        assert_eq!(bus.devices.len(), 2);
        assert_eq!(bus.inter_frame_gap_ms, Some(0));

        // The starter config runs as it is.
        let mut names = Names::default();
        let driver = build_rtu(bus, &out, &mut names).expect("starter config builds");
        let handles = driver.devices();
        let (tx, mut rx) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(Box::new(driver).run(tx, cancel.clone()));
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a poll within 5 s")
            .expect("a batch");
        assert!(
            first.iter().all(|s| s.quality == Quality::Good),
            "{first:?}"
        );
        assert_eq!(first.len(), 2);
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(handles[0].name, "line-unit-1");
    })
    .await
    .expect("scan test finishes within 30 s");
}
