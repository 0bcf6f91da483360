//! The driver against a third-party outstation: dnp3py 0.6.0 (pure Python,
//! MIT), run unchanged through its own TCP runner by
//! `hil/peers/dnp3_outstation.py`, which logs every command that reaches it.
//! Needs python3 with dnp3py (`scripts/install-test-deps.sh`); fails, not
//! skips, without it.
//!
//! What dnp3py 0.6.0 cannot show here: its TCP runner never sends
//! unsolicited responses (it answers ENABLE_UNSOLICITED but only ever
//! replies to requests), so events are proven through class polls; and it
//! reports binary and analog events without time (g2v1, g32v1), so only
//! counter events (g22v5) carry the outstation's timestamp.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{eventually, Peer, Running};
use dcmms_dnp3::{
    discover, render_point_map, AnalogVariation, CrobOp, Dnp3Config, MapFormat, OperateMode,
    PointConfig, PointKind,
};
use dcmms_protocols_core::{Command, CommandError, CommandValue};
use dcmms_shared::{Quality, Sample};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(10);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Every point the peer holds, plus command points.
fn config(peer: &Peer) -> Dnp3Config {
    use PointKind::*;
    let mut cfg = Dnp3Config::new("rtu", peer.address());
    cfg.integrity_poll_interval_ms = 0;
    cfg.class1_poll_interval_ms = 200;
    cfg.class2_poll_interval_ms = 200;
    cfg.class3_poll_interval_ms = 200;
    cfg.response_timeout_ms = 2000;
    cfg.backoff_min_ms = 100;
    cfg.backoff_max_ms = 1000;
    cfg.points = vec![
        PointConfig::new("bi0", BinaryInput, 0),
        PointConfig::new("bi1", BinaryInput, 1),
        PointConfig::new("bi2", BinaryInput, 2),
        PointConfig::new("ai0", AnalogInput, 0).with_scale(0.1, 0.0),
        PointConfig::new("ai1", AnalogInput, 1),
        PointConfig::new("ai2", AnalogInput, 2).with_scale(1.0, 100.0),
        PointConfig::new("forced", AnalogInput, 3),
        PointConfig::new("offline", AnalogInput, 4),
        PointConfig::new("ctr0", Counter, 0),
        PointConfig::new("ctr1", Counter, 1).with_scale(0.001, 0.0),
        PointConfig::new("fctr0", FrozenCounter, 0),
        PointConfig::new("bos0", BinaryOutputStatus, 0),
        PointConfig::new("bos1", BinaryOutputStatus, 1),
        PointConfig::new("aos0", AnalogOutputStatus, 0),
        PointConfig::new("breaker", Crob, 0).writable(),
        PointConfig::new("pulse", Crob, 1)
            .with_op(CrobOp::PulseOn)
            .with_mode(OperateMode::DirectOperate)
            .writable(),
        PointConfig::new("interlocked", Crob, 7)
            .with_op(CrobOp::TripClose)
            .writable(),
        PointConfig::new("locked", Crob, 2),
        PointConfig::new("setpoint", AnalogOutput, 0)
            .with_variation(AnalogVariation::F32)
            .with_scale(0.1, 0.0)
            .writable(),
    ];
    cfg
}

fn last(r: &Running, point: &str) -> Option<Sample> {
    r.of(point).last().copied()
}

#[tokio::test]
async fn integrity_poll_reports_what_the_outstation_holds() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::start(dir.path()).await;
    let cfg = config(&peer);
    let started_ms = now_ms();
    let mut r = Running::start(&cfg);
    let measured: Vec<String> = cfg
        .points
        .iter()
        .filter(|p| p.kind.is_measurement())
        .map(|p| format!("rtu/{}", p.name))
        .collect();
    r.wait_until(LIMIT, "a value for every point", |r| {
        measured
            .iter()
            .all(|n| r.samples().any(|s| s.point == r.id(n)))
    })
    .await;

    let expect = [
        ("bi0", 1.0, Quality::Good),
        ("bi1", 0.0, Quality::Good),
        ("bi2", 1.0, Quality::Good),
        ("ai0", 123.4, Quality::Good),
        ("ai1", -56.0, Quality::Good),
        ("ai2", 107.0, Quality::Good),
        ("forced", 42.0, Quality::Uncertain),
        ("offline", 9.0, Quality::Bad),
        ("ctr0", 100.0, Quality::Good),
        ("ctr1", 4_000_000.0, Quality::Good),
        ("fctr0", 55.0, Quality::Good),
        ("bos0", 0.0, Quality::Good),
        ("bos1", 0.0, Quality::Good),
        ("aos0", 300.0, Quality::Good),
    ];
    for (name, value, quality) in expect {
        let s = last(&r, &format!("rtu/{name}")).expect("sample");
        assert_eq!((s.value, s.quality), (value, quality), "{name}: {s:?}");
        // Static objects carry no time: the receive time is used.
        assert!(
            s.ts_ms >= started_ms && s.ts_ms <= now_ms(),
            "{name}: {s:?}"
        );
    }
    // The whole integrity response is one batch, in the outstation's order.
    let first = &r.batches[0];
    assert!(first.len() >= expect.len(), "{first:?}");

    // The outstation starts with NEED_TIME set: the master synchronised its
    // clock with the LAN procedure.
    let synced = eventually(LIMIT, "time synchronisation", || {
        peer.log_records()
            .into_iter()
            .find(|r| r["function"] == "time_sync")
    })
    .await;
    let ts = synced["ts_ms"].as_i64().expect("time");
    assert!((ts - now_ms()).abs() < 5000, "outstation set to {ts}");

    let s = r.stats.snapshot();
    assert!(s.connected && s.polls_ok >= 1, "{s:?}");
    assert!(
        s.last_rtt_us > 0 && s.last_success_ms >= started_ms,
        "{s:?}"
    );
    // Every startup task (disable/enable unsolicited, integrity poll, clear
    // restart, time sync) succeeded.
    assert_eq!(s.errors(), 0, "{s:?}");
    assert_eq!((s.polls_failed, s.reconnects), (0, 0), "{s:?}");
    r.stop().await;
}

#[tokio::test]
async fn events_arrive_in_order_with_their_times() {
    let dir = tempfile::tempdir().unwrap();
    let mut peer = Peer::start(dir.path()).await;
    let cfg = config(&peer);
    let mut r = Running::start(&cfg);
    r.wait_until(LIMIT, "the startup integrity poll", |r| {
        r.samples().any(|s| s.point == r.id("rtu/ctr0"))
    })
    .await;
    let before = r.batches.len();
    let made_ms = now_ms();
    let events = peer.make_events().await;
    assert_eq!(events.len(), 12);

    let after = |r: &Running, point: &str| -> Vec<Sample> {
        let id = r.id(point);
        r.batches[before..]
            .iter()
            .flatten()
            .filter(|s| s.point == id)
            .copied()
            .collect()
    };
    r.wait_until(LIMIT, "every event", |r| {
        after(r, "rtu/bi0").len() >= 4
            && after(r, "rtu/ai0").len() >= 3
            && after(r, "rtu/ctr0").len() >= 5
    })
    .await;

    let want = |kind: &str| -> Vec<&common::PeerEvent> {
        events.iter().filter(|e| e.kind == kind).collect()
    };
    // Counter events (g22v5) carry the outstation's time: exact times, in order.
    let ctr = after(&r, "rtu/ctr0");
    let got: Vec<(f64, i64)> = ctr.iter().map(|s| (s.value, s.ts_ms)).collect();
    let expected: Vec<(f64, i64)> = want("counter").iter().map(|e| (e.value, e.ts_ms)).collect();
    assert_eq!(got, expected);
    assert!(ctr.iter().all(|s| s.quality == Quality::Good));
    // Binary and analog events come without time from this outstation
    // (g2v1, g32v1): values in order, stamped when they were received.
    let bi: Vec<f64> = after(&r, "rtu/bi0").iter().map(|s| s.value).collect();
    let expected: Vec<f64> = want("binary_input").iter().map(|e| e.value).collect();
    assert_eq!(bi, expected);
    let ai: Vec<f64> = after(&r, "rtu/ai0").iter().map(|s| s.value).collect();
    let expected: Vec<f64> = want("analog_input")
        .iter()
        .map(|e| e.value / 10.0)
        .collect();
    assert_eq!(ai, expected);
    for s in after(&r, "rtu/bi0").iter().chain(&after(&r, "rtu/ai0")) {
        assert!(s.ts_ms >= made_ms && s.ts_ms <= now_ms(), "{s:?}");
    }
    // Nothing else changed, so no other point was reported again.
    let others = r.batches[before..]
        .iter()
        .flatten()
        .filter(|s| ![r.id("rtu/bi0"), r.id("rtu/ai0"), r.id("rtu/ctr0")].contains(&s.point))
        .count();
    assert_eq!(others, 0);
    r.stop().await;
}

#[tokio::test]
async fn commands_reach_the_outstation_and_refusals_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::start(dir.path()).await;
    let cfg = config(&peer);
    let mut r = Running::start(&cfg);
    r.wait_until(LIMIT, "the startup integrity poll", |r| {
        r.samples().any(|s| s.point == r.id("rtu/bos0"))
    })
    .await;
    let tx = r
        .commands
        .clone()
        .expect("writable points give a command sender");
    let exec = |point: &str, value: CommandValue| {
        let tx = tx.clone();
        let command = Command {
            point: point.into(),
            value,
        };
        async move {
            tokio::time::timeout(LIMIT, tx.execute(command))
                .await
                .expect("command answered in time")
        }
    };

    // Refused by the driver: nothing is sent.
    assert_eq!(
        exec("nope", CommandValue::Binary(true)).await,
        Err(CommandError::UnknownPoint("nope".into()))
    );
    assert_eq!(
        exec("locked", CommandValue::Binary(true)).await,
        Err(CommandError::NotWritable("locked".into()))
    );
    assert_eq!(
        exec("bi0", CommandValue::Binary(true)).await,
        Err(CommandError::NotWritable("bi0".into()))
    );
    assert!(matches!(
        exec("setpoint", CommandValue::Binary(true)).await,
        Err(CommandError::BadValue(_))
    ));
    assert!(peer
        .log_records()
        .iter()
        .all(|r| r["function"] == "time_sync"));

    // Select-before-operate latch on.
    assert_eq!(exec("breaker", CommandValue::Binary(true)).await, Ok(()));
    // Direct-operate pulse.
    assert_eq!(exec("pulse", CommandValue::Binary(true)).await, Ok(()));
    // Refused by the outstation at SELECT with its status.
    assert_eq!(
        exec("interlocked", CommandValue::Binary(false)).await,
        Err(CommandError::Refused("Blocked".into()))
    );
    // Analog output, f32, 25.5 in engineering units = 255 raw.
    assert_eq!(exec("setpoint", CommandValue::Analog(25.5)).await, Ok(()));

    let log: Vec<_> = peer
        .log_records()
        .into_iter()
        .filter(|r| r["function"] != "time_sync")
        .collect();
    let crob = |function: &str, index: u16, op_type: u8, tcc: u8, status: &str| {
        json!({"function": function, "object": "crob", "index": index, "code": (tcc << 6) | op_type,
               "op_type": op_type, "tcc": tcc, "count": 1, "on_time": 1000, "off_time": 1000,
               "status": status})
    };
    let analog = |function: &str| {
        json!({"function": function, "object": "analog_output", "index": 0, "value": 255.0,
               "status": "SUCCESS"})
    };
    assert_eq!(
        log,
        vec![
            crob("select", 0, 3, 0, "SUCCESS"),
            crob("operate", 0, 3, 0, "SUCCESS"),
            crob("direct_operate", 1, 1, 0, "SUCCESS"),
            crob("select", 7, 1, 2, "BLOCKED"),
            analog("select"),
            analog("operate"),
        ]
    );
    let s = r.stats.snapshot();
    assert!(s.exceptions >= 1, "the refusal is counted: {s:?}");
    r.stop().await;
}

#[tokio::test]
async fn lost_outstation_marks_points_bad_and_refuses_commands() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::start(dir.path()).await;
    let cfg = config(&peer);
    let mut r = Running::start(&cfg);
    r.wait_until(LIMIT, "the startup integrity poll", |r| {
        r.samples().any(|s| s.point == r.id("rtu/ai1"))
    })
    .await;
    let lost_ms = now_ms();
    peer.kill().await;
    r.wait_until(LIMIT, "Bad samples after the outstation died", |r| {
        last(r, "rtu/ai1").is_some_and(|s| s.quality == Quality::Bad)
    })
    .await;
    let bad = last(&r, "rtu/ai1").unwrap();
    assert!(bad.ts_ms >= lost_ms && bad.value.is_nan(), "{bad:?}");
    // Every measurement point turned Bad in the same batch.
    let batch = r.batches.last().unwrap();
    assert_eq!(batch.len(), 14);
    assert!(batch.iter().all(|s| s.quality == Quality::Bad));
    eventually(LIMIT, "a reconnect attempt", || {
        let s = r.stats.snapshot();
        (!s.connected && s.reconnects >= 1 && s.transport_errors >= 1).then_some(())
    })
    .await;
    let tx = r.commands.clone().unwrap();
    let answer = tokio::time::timeout(
        LIMIT,
        tx.execute(Command {
            point: "breaker".into(),
            value: CommandValue::Binary(true),
        }),
    )
    .await
    .expect("answered in time");
    assert_eq!(answer, Err(CommandError::NotConnected));
    r.stop().await;
}

#[tokio::test]
async fn silent_outstation_counts_timeouts_and_marks_points_bad() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::start(dir.path()).await;
    let mut cfg = config(&peer);
    // The outstation ignores frames for another link address: TCP is up,
    // nothing answers.
    cfg.outstation_address = 1025;
    cfg.response_timeout_ms = 300;
    let mut r = Running::start(&cfg);
    r.wait_until(LIMIT, "Bad samples", |r| {
        last(r, "rtu/ai1").is_some_and(|s| s.quality == Quality::Bad)
    })
    .await;
    assert!(r.samples().all(|s| s.quality == Quality::Bad));
    let s = r.stats.snapshot();
    assert!(s.connected && s.timeouts >= 1, "{s:?}");
    assert_eq!((s.polls_ok, s.last_success_ms), (0, 0), "{s:?}");
    r.stop().await;
}

#[tokio::test]
async fn discovery_lists_every_point_and_writes_a_usable_map() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::start(dir.path()).await;
    let cfg = Dnp3Config::new("rtu", peer.address());
    let found = discover(&cfg, LIMIT).await.expect("discovery");
    let listed: Vec<(PointKind, u16)> = found.iter().map(|d| (d.kind, d.index)).collect();
    use PointKind::*;
    assert_eq!(
        listed,
        vec![
            (BinaryInput, 0),
            (BinaryInput, 1),
            (BinaryInput, 2),
            (AnalogInput, 0),
            (AnalogInput, 1),
            (AnalogInput, 2),
            (AnalogInput, 3),
            (AnalogInput, 4),
            (Counter, 0),
            (Counter, 1),
            (FrozenCounter, 0),
            (BinaryOutputStatus, 0),
            (BinaryOutputStatus, 1),
            (BinaryOutputStatus, 7),
            (AnalogOutputStatus, 0),
        ]
    );
    assert_eq!(found[3].value, 1234.0);
    assert_eq!(found[7].quality, Quality::Bad);

    // The written map drives the same outstation.
    let map = dir.path().join("rtu.toml");
    std::fs::write(&map, render_point_map("rtu", &found, MapFormat::Toml)).unwrap();
    let mut cfg = Dnp3Config::new("rtu", peer.address());
    cfg.points_file = Some(map);
    let mut r = Running::start(&cfg);
    r.wait_until(LIMIT, "values for the discovered points", |r| {
        r.samples()
            .any(|s| s.point == r.id("rtu/ai_0") && s.value == 1234.0)
            && r.samples()
                .any(|s| s.point == r.id("rtu/aos_0") && s.value == 300.0)
    })
    .await;
    assert!(Path::new(&dir.path().join("rtu.toml")).exists());
    r.stop().await;
}
