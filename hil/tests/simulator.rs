//! The simulator through the real driver, and the `dcmms-sim` binary.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dcmms_hil::solar::alarm;
use dcmms_hil::{point_map, serve_shared, Fleet, InverterParams, SimClock, SolarInverter};
use dcmms_modbus::ModbusTcpConfig;
use dcmms_protocols_core::PointResolver;
use dcmms_shared::{PointId, Quality, Sample};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// 2026-06-01T12:00:00Z.
const NOON: i64 = 1_780_315_200_000;

#[derive(Default)]
struct Names(Vec<String>);

impl PointResolver for Names {
    fn resolve(&mut self, name: &str) -> PointId {
        self.0.push(name.to_owned());
        PointId(self.0.len() as u32 - 1)
    }
}

impl Names {
    fn value(&self, batch: &[Sample], name: &str) -> f64 {
        let id = self.0.iter().position(|n| n == name).expect(name) as u32;
        let s = batch.iter().find(|s| s.point.0 == id).expect(name);
        assert_eq!(s.quality, Quality::Good, "{name}");
        s.value
    }
}

#[tokio::test]
async fn driver_reads_two_inverters_at_accelerated_noon() {
    let mut fleet = Fleet::new(SimClock::starting_at(NOON, 60.0));
    fleet.add(
        1,
        SolarInverter::new(InverterParams {
            cloudiness: 0.0,
            ..InverterParams::default()
        }),
    );
    fleet.add(
        2,
        SolarInverter::new(InverterParams {
            rated_ac_w: 20_000.0,
            array_wp: 22_000.0,
            cloudiness: 0.0,
            seed: 2,
            ..InverterParams::default()
        }),
    );
    let fleet = Arc::new(Mutex::new(fleet));
    let (addr, server) = serve_shared("127.0.0.1:0".parse().unwrap(), Arc::clone(&fleet))
        .await
        .unwrap();

    let mut names = Names::default();
    let (tx, mut rx) = mpsc::channel(256);
    let cancel = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut stats = Vec::new();
    for unit in [1u8, 2] {
        let mut cfg = ModbusTcpConfig::new(format!("inv-{unit}"), addr.to_string());
        cfg.unit_id = unit;
        cfg.poll_interval_ms = 100;
        cfg.points_csv = Some("solar-inverter.csv".into());
        let driver = dcmms_modbus::build(
            &cfg,
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("points"),
            &mut names,
        )
        .unwrap();
        stats.push(driver.stats());
        tasks.push(tokio::spawn(driver.run(tx.clone(), cancel.clone())));
    }
    drop(tx);

    // Inject a fan fault on unit 2 once polling has started.
    let mut batches: Vec<Vec<Sample>> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(b)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if batches.len() == 4 {
            fleet
                .lock()
                .unwrap()
                .inverter_mut(2)
                .unwrap()
                .set_fault(alarm::FAN, true);
        }
        batches.push(b);
    }
    cancel.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    server.abort();

    let n = point_map().len();
    let by = |unit: u8| -> Vec<&Vec<Sample>> {
        let first = names
            .0
            .iter()
            .position(|x| x.starts_with(&format!("inv-{unit}/")))
            .unwrap() as u32;
        batches
            .iter()
            .filter(|b| b[0].point.0 >= first && b[0].point.0 < first + n as u32)
            .collect()
    };
    for unit in [1u8, 2] {
        let bs = by(unit);
        assert!(bs.len() >= 8, "unit {unit}: {} batches", bs.len());
        let rated = if unit == 1 { 50_000.0 } else { 20_000.0 };
        let dev = format!("inv-{unit}");
        let v = |b: &[Sample], p: &str| names.value(b, &format!("{dev}/{p}"));
        let mut energy = Vec::new();
        for b in &bs {
            assert_eq!(b.len(), n);
            let power = v(b, "ac_power");
            assert!(
                power > 0.8 * rated && power <= rated,
                "{dev} ac_power {power}"
            );
            assert!((v(b, "rated_power") - rated).abs() < 1e-9);
            for l in ["voltage_l1", "voltage_l2", "voltage_l3"] {
                assert!((220.0..240.0).contains(&v(b, l)), "{l}");
            }
            assert!((49.7..50.3).contains(&v(b, "frequency")));
            assert!([2.0, 3.0].contains(&v(b, "status")));
            assert_eq!(v(b, "grid_connected"), 1.0);
            assert_eq!(v(b, "enabled"), 1.0);
            assert_eq!(v(b, "power_limit"), 100.0);
            let eff = v(b, "efficiency");
            assert!((90.0..99.0).contains(&eff), "{eff}");
            energy.push(v(b, "energy_total"));
        }
        // 60x speed: the lifetime counter climbs between polls.
        assert!(energy.windows(2).all(|w| w[0] <= w[1]));
        assert!(energy[energy.len() - 1] > energy[0], "{energy:?}");
        let last = bs[bs.len() - 1];
        let fan = v(last, "alarms") as u16 & alarm::FAN != 0;
        assert_eq!(fan, unit == 2, "fan alarm on unit 2 only");
    }
    for s in stats {
        let s = s.snapshot();
        assert_eq!(s.errors(), 0, "{s:?}");
    }
}

#[tokio::test]
async fn binary_prints_its_address_and_serves() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dcmms-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--inverters",
            "3",
            "--start-hour",
            "12",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr: std::net::SocketAddr = first.strip_prefix("LISTEN ").unwrap().parse().unwrap();

    use tokio_modbus::client::Reader as _;
    let mut ctx = tokio_modbus::client::tcp::connect_slave(addr, tokio_modbus::Slave(3))
        .await
        .unwrap();
    let rated = ctx.read_holding_registers(2, 2).await.unwrap().unwrap();
    assert_eq!(rated, vec![0, 50_000]);
    let err = ctx.read_holding_registers(200, 1).await.unwrap();
    assert!(err.is_err(), "unmapped address is an exception");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn binary_prints_the_checked_in_point_map() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dcmms-sim"))
        .arg("--print-points")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/points/solar-inverter.csv"
    ))
    .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), file);
}
