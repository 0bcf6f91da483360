//! Writes through the Modbus TCP driver's command port, and a unit scan
//! over TCP, against the
//! pymodbus 3.16.1 peer `hil/peers/modbus_rtu_server.py --tcp` (units 1-3
//! over Modbus TCP; holding 3-9 keep what is written, coils too; holding
//! 100 and above do not exist). Checked in the peer's log and in the
//! values the driver reads back. Needs python3 with pymodbus
//! (`scripts/install-test-deps.sh`); fails, not skips, without it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::rtu_peer::{requests, start_tcp_units_peer};
use common::Names;
use dcmms_modbus::{
    scan_units, starter_map, ModbusTcpConfig, PointConfig, ProbeAnswer, ScanOptions, ScanTarget,
    Table,
};
use dcmms_protocols_core::{Command, CommandError, CommandValue, DataType};
use dcmms_shared::{Quality, Sample};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn writes_reach_the_device_and_read_back() {
    tokio::time::timeout(Duration::from_secs(30), scenario())
        .await
        .expect("test finishes within 30 s");
}

async fn scenario() {
    let dir = tempfile::tempdir().unwrap();
    let peer = start_tcp_units_peer(dir.path(), "1,2,3").await;
    let mut cfg = ModbusTcpConfig::new(
        "meter",
        format!("127.0.0.1:{}", peer.tcp_port.expect("tcp peer")),
    );
    cfg.unit_id = 2;
    cfg.poll_interval_ms = 50;
    cfg.points = vec![
        PointConfig::new("counter", Table::Holding, 0),
        PointConfig::new("limit", Table::Holding, 3)
            .with_scale(0.1, 0.0)
            .writable(),
        PointConfig::new("energy_target", Table::Holding, 4)
            .with_type(DataType::U32)
            .writable(),
        PointConfig::new("run", Table::Coil, 1).writable(),
    ];
    let mut names = Names::default();
    let driver = dcmms_modbus::build(&cfg, Path::new("."), &mut names).expect("valid config");
    let commands = driver.commands().expect("writable points");
    let stats = driver.stats();
    let (tx, mut rx) = mpsc::channel::<Vec<Sample>>(256);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(driver.run(tx, cancel.clone()));

    // Writes are answered only once connected: wait for a first poll.
    let first = rx.recv().await.expect("a first poll");
    assert!(
        first.iter().all(|s| s.quality == Quality::Good),
        "{first:?}"
    );
    let exec = |point: &str, value| {
        let c = commands.clone();
        let point = point.to_owned();
        async move { c.execute(Command { point, value }).await }
    };
    assert_eq!(exec("limit", CommandValue::Analog(21.5)).await, Ok(()));
    assert_eq!(
        exec("energy_target", CommandValue::Analog(100_000.0)).await,
        Ok(())
    );
    assert_eq!(exec("run", CommandValue::Binary(true)).await, Ok(()));
    assert_eq!(
        exec("counter", CommandValue::Analog(3.0)).await,
        Err(CommandError::NotWritable("counter".into()))
    );
    let e = exec("energy_target", CommandValue::Analog(-1.0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "bad_value", "{e}");

    // The written values come back in the next polls.
    let id = |n: &str| names.id(&format!("meter/{n}"));
    let value = |b: &[Sample], n: &str| b.iter().find(|s| s.point == id(n)).map(|s| s.value);
    let mut seen = None;
    for _ in 0..20 {
        let b = rx.recv().await.expect("polls continue");
        if value(&b, "limit") == Some(21.5) {
            seen = Some(b);
            break;
        }
    }
    let b = seen.expect("the written limit reads back within 20 polls");
    assert_eq!(value(&b, "energy_target"), Some(100_000.0));
    assert_eq!(value(&b, "run"), Some(1.0));

    let writes: Vec<(u8, u8, u16, Vec<i64>)> = requests(&peer.log)
        .into_iter()
        .filter_map(|r| r.write.map(|w| (r.unit, r.fc, r.address, w)))
        .collect();
    assert_eq!(
        writes,
        vec![
            (2, 6, 3, vec![215]),
            // 100000 = 0x0001_86A0, high word first, function 16.
            (2, 16, 4, vec![1, 0x86A0]),
            (2, 5, 1, vec![1]),
        ]
    );
    assert_eq!(stats.snapshot().errors(), 0, "{:?}", stats.snapshot());
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn device_exceptions_refuse_the_write() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let dir = tempfile::tempdir().unwrap();
        let peer = start_tcp_units_peer(dir.path(), "1").await;
        let mut cfg = ModbusTcpConfig::new(
            "meter",
            format!("127.0.0.1:{}", peer.tcp_port.expect("tcp peer")),
        );
        cfg.poll_interval_ms = 50;
        cfg.points = vec![
            PointConfig::new("counter", Table::Holding, 0),
            // The peer maps holding 0-99 only.
            PointConfig::new("ghost", Table::Holding, 150).writable(),
        ];
        let driver =
            dcmms_modbus::build(&cfg, Path::new("."), &mut Names::default()).expect("valid config");
        let commands = driver.commands().expect("writable points");
        let stats = driver.stats();
        let (tx, mut rx) = mpsc::channel::<Vec<Sample>>(256);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(driver.run(tx, cancel.clone()));
        rx.recv().await.expect("a first poll");
        let r = commands
            .execute(Command {
                point: "ghost".into(),
                value: CommandValue::Analog(1.0),
            })
            .await;
        assert_eq!(
            r,
            Err(CommandError::Refused("Illegal data address (2)".into()))
        );
        // The exception kept the connection.
        assert!(stats.snapshot().connected);
        assert_eq!(stats.snapshot().reconnects, 0);
        cancel.cancel();
        task.await.unwrap();
    })
    .await
    .expect("test finishes within 30 s");
}

#[tokio::test]
async fn tcp_scan_finds_the_served_unit_ids() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let dir = tempfile::tempdir().unwrap();
        let peer = start_tcp_units_peer(dir.path(), "2,4").await;
        peer.silence(&[4]);
        let target = ScanTarget::Tcp {
            address: format!("127.0.0.1:{}", peer.tcp_port.expect("tcp peer")),
        };
        let opts = ScanOptions {
            units: 1..=5,
            table: Table::Input,
            count: 3,
            timeout: Duration::from_millis(150),
            ..ScanOptions::default()
        };
        let found = scan_units(&target, &opts).await.expect("scan runs");
        let ids: Vec<u8> = found.iter().map(|f| f.unit_id).collect();
        assert_eq!(ids, vec![2], "unit 4 is silent, 1, 3 and 5 are not served");
        // Input i of unit 2 is 7 * i + counter + 2000.
        let ProbeAnswer::Registers(r) = &found[0].answer else {
            panic!("{found:?}")
        };
        assert_eq!((r[1] - r[0], r[2] - r[1]), (7, 7));

        let map = starter_map("gw", &target, &found, &opts);
        let out = dir.path().join("starter");
        map.write_to(&out, "modbus.toml").expect("write");
        #[derive(serde::Deserialize)]
        struct Doc {
            modbus: Vec<ModbusTcpConfig>,
        }
        let doc: Doc =
            toml::from_str(&std::fs::read_to_string(out.join("modbus.toml")).unwrap()).unwrap();
        assert_eq!(doc.modbus.len(), 1);
        assert_eq!(doc.modbus[0].unit_id, 2);
        let points = doc.modbus[0].validate(&out).expect("starter map validates");
        assert_eq!(points.len(), 3);
    })
    .await
    .expect("test finishes within 30 s");
}
