//! The driver against a third-party peer: a pymodbus 3.16.1 server whose
//! values change every 100 ms and which logs every read it serves
//! (`hil/peers/modbus_server.py`). Needs python3 with pymodbus
//! (`scripts/install-test-deps.sh`); fails, not skips, without it.

mod common;

use std::time::Duration;

use common::peer::{served, start_peer};
use common::run_driver;
use dcmms_modbus::{ModbusTcpConfig, PointConfig, Table};
use dcmms_protocols_core::DataType;
use dcmms_shared::{PointId, Quality, Sample};

fn value(batch: &[Sample], id: PointId) -> f64 {
    let s = batch
        .iter()
        .find(|s| s.point == id)
        .expect("point in batch");
    assert_eq!(s.quality, Quality::Good, "{s:?}");
    s.value
}

#[tokio::test]
async fn values_follow_the_peer() {
    let dir = tempfile::tempdir().unwrap();
    let peer = start_peer(dir.path()).await;

    let mut cfg = ModbusTcpConfig::new("peer", format!("127.0.0.1:{}", peer.port));
    cfg.poll_interval_ms = 50;
    cfg.points = vec![
        PointConfig::new("counter", Table::Holding, 0),
        PointConfig::new("triple", Table::Holding, 1),
        PointConfig::new("half", Table::Holding, 2).with_type(DataType::F32),
        PointConfig::new("big", Table::Holding, 4).with_type(DataType::U32),
        PointConfig::new("neg", Table::Holding, 6).with_type(DataType::I16),
        PointConfig::new("ten", Table::Holding, 10).with_scale(0.1, 0.0),
        PointConfig::new("in0", Table::Input, 0),
        PointConfig::new("in124", Table::Input, 124),
        PointConfig::new("coil0", Table::Coil, 0),
        PointConfig::new("coil1", Table::Coil, 1),
        PointConfig::new("di0", Table::Discrete, 0),
        PointConfig::new("di1", Table::Discrete, 1),
        PointConfig::new("di7", Table::Discrete, 7),
    ];
    let run = run_driver(&cfg, Duration::from_secs(2)).await;
    let id = |n: &str| run.names.id(&format!("peer/{n}"));

    let s = &run.stats;
    assert!(run.ran_until_cancelled && run.connected_before_cancel);
    assert_eq!(s.errors(), 0, "{s:?}");
    assert_eq!(s.reconnects, 0);
    assert!(s.polls_ok >= 15, "{s:?}");
    assert_eq!(s.polls_ok, run.batches.len() as u64);
    assert!(s.last_rtt_us > 0 && s.last_success_ms > 0);

    let mut counters = Vec::new();
    let mut inputs = Vec::new();
    let mut coils = Vec::new();
    for (_, batch) in &run.batches {
        assert_eq!(batch.len(), cfg.points.len());
        let ts = batch[0].ts_ms;
        assert!(
            batch.iter().all(|s| s.ts_ms == ts),
            "one timestamp per cycle"
        );
        let c = value(batch, id("counter"));
        // Relations inside the holding read (one request, one instant).
        assert_eq!(value(batch, id("triple")), (3.0 * c) % 65536.0);
        assert_eq!(value(batch, id("half")), c * 0.5);
        assert_eq!(value(batch, id("big")), (c * 100_000.0) % 4_294_967_296.0);
        assert_eq!(value(batch, id("neg")), -(c % 1000.0));
        assert_eq!(value(batch, id("ten")), 1.0);
        // The input read is a separate request: same relation inside it.
        let in0 = value(batch, id("in0"));
        assert_eq!(value(batch, id("in124")), (in0 + 868.0) % 65536.0);
        // Read just after the holding read: the counter may have stepped.
        assert!(in0 >= c && in0 - c <= 5.0, "counter {c}, in0 {in0}");
        assert_eq!(
            [
                value(batch, id("di0")),
                value(batch, id("di1")),
                value(batch, id("di7"))
            ],
            [0.0, 1.0, 1.0]
        );
        counters.push(c);
        inputs.push(in0);
        coils.push((value(batch, id("coil0")), value(batch, id("coil1"))));
    }
    // The values changed over time: ~2 s at one step per 100 ms.
    assert!(counters.windows(2).all(|w| w[0] <= w[1]), "{counters:?}");
    let span = counters[counters.len() - 1] - counters[0];
    assert!(
        (10.0..=25.0).contains(&span),
        "counter moved {span}: {counters:?}"
    );

    // Every value we decoded is what the peer says it served, in order.
    let log = served(&peer.log);
    let served_counters: Vec<f64> = log
        .iter()
        .filter(|r| r.table == "holding" && r.address == 0)
        .map(|r| r.values[0].as_f64().unwrap())
        .collect();
    let served_inputs: Vec<f64> = log
        .iter()
        .filter(|r| r.table == "input" && r.address == 0)
        .map(|r| r.values[0].as_f64().unwrap())
        .collect();
    let served_coils: Vec<(f64, f64)> = log
        .iter()
        .filter(|r| r.table == "coil" && r.address == 0)
        .map(|r| {
            let bit = |i: usize| f64::from(u8::from(r.values[i].as_bool().unwrap()));
            (bit(0), bit(1))
        })
        .collect();
    // The last read may have been served after the driver was cancelled.
    for (name, ours, theirs) in [
        ("counter", &counters, &served_counters),
        ("input", &inputs, &served_inputs),
    ] {
        assert!(
            theirs.len() - ours.len() <= 1 && theirs[..ours.len()] == ours[..],
            "{name}: decoded {ours:?}, served {theirs:?}"
        );
    }
    assert_eq!(served_coils[..coils.len()], coils[..]);
    // Coil 0 toggles every 500 ms, so it took both values.
    assert!(coils.iter().any(|c| c.0 == 1.0) && coils.iter().any(|c| c.0 == 0.0));
    // The peer's own rule for its coils, at the counter it served them with.
    for r in log.iter().filter(|r| r.table == "coil") {
        let (c0, c1) = (
            r.values[0].as_bool().unwrap(),
            r.values[1].as_bool().unwrap(),
        );
        assert_eq!(
            (c0, c1),
            ((r.counter / 5) % 2 == 1, r.counter % 2 == 0),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn peer_exceptions_spoil_only_their_read() {
    let dir = tempfile::tempdir().unwrap();
    let peer = start_peer(dir.path()).await;

    let mut cfg = ModbusTcpConfig::new("peer", format!("127.0.0.1:{}", peer.port));
    cfg.poll_interval_ms = 50;
    cfg.points = vec![
        PointConfig::new("counter", Table::Holding, 0),
        // The peer maps holding 0..=199 only: this read gets exception 2.
        PointConfig::new("unmapped", Table::Holding, 250),
    ];
    let run = run_driver(&cfg, Duration::from_millis(1000)).await;
    let s = &run.stats;
    assert!(run.connected_before_cancel);
    assert_eq!(s.reconnects, 0, "exceptions keep the connection: {s:?}");
    assert_eq!((s.timeouts, s.transport_errors, s.decode_errors), (0, 0, 0));
    assert!(s.exceptions >= 5 && s.exceptions == s.polls_failed, "{s:?}");
    let counter = run.names.id("peer/counter");
    let unmapped = run.names.id("peer/unmapped");
    for (_, batch) in &run.batches {
        for sample in batch {
            let want = if sample.point == counter {
                Quality::Good
            } else {
                Quality::Bad
            };
            assert_eq!(sample.quality, want, "{sample:?}");
            if sample.point == unmapped {
                assert!(sample.value.is_nan());
            }
        }
    }
}
