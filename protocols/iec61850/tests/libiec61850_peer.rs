//! The driver against a third-party IEC 61850 server: libiec61850 as shipped
//! in the PyPI wheel pyiec61850-ng 1.6.1.10, with the model of
//! `hil/peers/iec61850_server.py` (values step every tick, each with its own
//! `q` and `t`; a buffered and two unbuffered report control blocks on one
//! data set; single-point controls, direct and SBO, and an analogue set
//! point). Needs python3 with the wheel (`scripts/install-test-deps.sh`);
//! fails, not skips, without it.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::peer::{logged, start_peer, tick_times};
use common::proxy::Proxy;
use common::{Batch, Finished, Running};
use dcmms_iec61850::{discover, ControlModel, Fc, Iec61850Config, PointConfig, ReportConfig};
use dcmms_protocols_core::{Command, CommandError, CommandValue};
use dcmms_shared::{PointId, Quality, Sample};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn config(address: &str) -> Iec61850Config {
    let mut c = Iec61850Config::new("ied1", address);
    c.ied_name = "IED1".into();
    c.poll_interval_ms = 100;
    c.timeout_ms = 2000;
    c.connect_timeout_ms = 2000;
    c.backoff_min_ms = 100;
    c.backoff_max_ms = 400;
    c.points = vec![
        PointConfig::new("totw", "LD0/MMXU1.TotW.mag.f", Fc::MX).with_scale(0.001, 0.0),
        PointConfig::new("hz", "LD0/MMXU1.Hz.mag.f", Fc::MX),
        PointConfig::new("totvar", "LD0/MMXU1$MX$TotVAr$mag$f", Fc::MX),
        PointConfig::new("anin1", "LD0/GGIO1.AnIn1.mag.f", Fc::MX),
        PointConfig::new("ind1", "LD0/GGIO1.Ind1.stVal", Fc::ST),
        PointConfig::new("spcso1", "LD0/GGIO1.SPCSO1.stVal", Fc::ST)
            .with_control(ControlModel::Direct),
        PointConfig::new("spcso2", "LD0/GGIO1.SPCSO2.stVal", Fc::ST)
            .with_control(ControlModel::Sbo),
        PointConfig::new("anout1", "LD0/GGIO1.AnOut1.mxVal.f", Fc::MX)
            .with_control(ControlModel::Direct)
            .with_scale(0.1, 0.0),
    ];
    c
}

/// The f64 the driver makes of a value the peer stored as FLOAT32.
fn as_f32(x: f64) -> f64 {
    format!("{}", x as f32).parse().expect("float text")
}

fn value_in(batch: &Batch, id: PointId) -> Option<Sample> {
    batch.samples.iter().find(|s| s.point == id).copied()
}

/// The counter a TotW value (10 * c + 0.5, scaled by 0.001) stands for.
fn counter_of_totw(v: f64) -> u64 {
    ((v * 1000.0 - 0.5) / 10.0).round() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_reads_return_the_served_values_with_device_time_and_quality() {
    let dir = tempfile::tempdir().unwrap();
    let peer = start_peer(dir.path(), 100).await;
    let run = Running::start(&config(&peer.address()));
    let id = |n: &str| run.names.id(&format!("ied1/{n}"));
    let (totw, hz, totvar, anin1, ind1) =
        (id("totw"), id("hz"), id("totvar"), id("anin1"), id("ind1"));
    run.wait_for(SECS(10), "8 good poll cycles", |b| {
        b.iter()
            .filter(|b| {
                b.samples
                    .iter()
                    .all(|s| s.quality != Quality::Bad || s.point == anin1)
            })
            .count()
            >= 8
    })
    .await;
    let done = run.stop().await;
    let ticks = tick_times(&peer.log);

    let s = &done.stats;
    assert!(s.polls_ok >= 8, "{s:?}");
    assert_eq!((s.errors(), s.reconnects), (0, 0), "{s:?}");
    assert!(s.last_rtt_us > 0 && s.last_success_ms > 0);
    let mut checked = 0;
    let mut seen_invalid = false;
    for batch in &done.batches {
        assert_eq!(batch.samples.len(), 8, "one sample per point per cycle");
        let a = value_in(batch, anin1).unwrap();
        let c = a.value as u64;
        // One MMS Read is answered from one state of the model.
        let w = value_in(batch, totw).unwrap();
        assert_eq!(
            w.value,
            as_f32(10.0 * c as f64 + 0.5) / 1000.0,
            "totw at {c}"
        );
        assert_eq!(w.quality, Quality::Good);
        assert_eq!(
            value_in(batch, hz).unwrap().value,
            as_f32(50.0 + (c % 10) as f64 / 100.0)
        );
        let v = value_in(batch, totvar).unwrap();
        assert_eq!(
            (v.value, v.quality),
            (-(c as f64), Quality::Uncertain),
            "questionable|oldData"
        );
        let want_q = if c.is_multiple_of(7) {
            Quality::Bad
        } else {
            Quality::Good
        };
        assert_eq!(a.quality, want_q, "anin1 at {c}: invalid every 7th step");
        seen_invalid |= c.is_multiple_of(7);
        assert_eq!(
            value_in(batch, ind1).unwrap().value,
            if (c / 5) % 2 == 1 { 1.0 } else { 0.0 }
        );
        // Samples carry the device's t of that step, not the poll time.
        if let Some(&t) = ticks.get(&c) {
            assert_eq!(w.ts_ms, t, "totw t at {c}");
            assert_eq!(a.ts_ms, t, "anin1 t at {c}");
            checked += 1;
        }
    }
    assert!(checked >= 5, "device timestamps compared: {checked}");
    assert!(
        seen_invalid || done.batches.len() < 8,
        "an invalid step was seen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gi_and_data_change_reports_replace_polling() {
    let dir = tempfile::tempdir().unwrap();
    let peer = start_peer(dir.path(), 100).await;
    let mut cfg = config(&peer.address());
    let mut r = ReportConfig::new("LD0/LLN0.RP.urcb01");
    r.dataset = Some("LD0/LLN0.Measurements".into());
    cfg.reports = vec![r];
    let run = Running::start(&cfg);
    run.wait_reports(SECS(10), "GI and 15 data-change reports", |r| {
        r.gi_members >= 6 && r.received >= 16
    })
    .await;
    let done = run.stop().await;
    let ticks = tick_times(&peer.log);
    let id = |n: &str| done.names.id(&format!("ied1/{n}"));

    let r = &done.reports;
    assert_eq!(r.enabled, 1, "{r:?}");
    assert_eq!(
        r.gi_members, 6,
        "one GI report with the whole data set: {r:?}"
    );
    assert!(r.data_change_members >= 15 * 4, "{r:?}");
    assert_eq!(
        (r.unmatched, r.enable_failures, r.integrity_members),
        (0, 0, 0),
        "{r:?}"
    );
    assert_eq!(done.stats.errors(), 0, "{:?}", done.stats);

    // Points of the data set come from reports only; the rest is polled.
    let reported: BTreeSet<PointId> = ["totw", "hz", "totvar", "anin1", "ind1", "spcso1"]
        .map(id)
        .into();
    let polled: BTreeSet<PointId> = ["spcso2", "anout1"].map(id).into();
    for b in &done.batches {
        let ids: BTreeSet<PointId> = b.samples.iter().map(|s| s.point).collect();
        assert!(
            ids.is_subset(&reported) || ids == polled,
            "mixed batch {ids:?}"
        );
    }
    // Every step changes TotW, so each report carries the next counter,
    // stamped with the device's t of that step.
    let totw: Vec<&Sample> = done.samples_of(id("totw")).collect();
    assert!(totw.len() >= 15, "{}", totw.len());
    let counters: Vec<u64> = totw.iter().map(|s| counter_of_totw(s.value)).collect();
    for pair in counters.windows(2).skip(1) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "data-change reports skip no step: {counters:?}"
        );
    }
    for (s, c) in totw.iter().zip(&counters) {
        if let Some(&t) = ticks.get(c) {
            assert_eq!(s.ts_ms, t, "report value carries the device t of step {c}");
        }
        assert_eq!(s.quality, Quality::Good);
    }
    assert!(done
        .samples_of(id("totvar"))
        .all(|s| s.quality == Quality::Uncertain));
    let bad_anin: Vec<f64> = done
        .samples_of(id("anin1"))
        .filter(|s| s.quality == Quality::Bad)
        .map(|s| s.value)
        .collect();
    assert!(
        bad_anin.iter().all(|v| (*v as u64).is_multiple_of(7)),
        "{bad_anin:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_reports_arrive_every_period() {
    let dir = tempfile::tempdir().unwrap();
    let peer = start_peer(dir.path(), 100).await;
    let mut cfg = config(&peer.address());
    cfg.reports = vec![ReportConfig {
        data_change: false,
        quality_change: false,
        gi: false,
        integrity_period_ms: Some(250),
        ..ReportConfig::new("LD0/LLN0$RP$urcb02")
    }];
    let run = Running::start(&cfg);
    let started = std::time::Instant::now();
    run.wait_reports(SECS(10), "4 integrity reports", |r| r.received >= 4)
        .await;
    let elapsed = started.elapsed();
    let done = run.stop().await;
    let r = &done.reports;
    assert_eq!(
        r.integrity_members,
        6 * r.received,
        "whole data set each time: {r:?}"
    );
    assert_eq!((r.data_change_members, r.gi_members), (0, 0), "{r:?}");
    assert!(
        elapsed >= Duration::from_millis(500),
        "4 reports at 250 ms took {elapsed:?}"
    );
    let id = done.names.id("ied1/totw");
    let ts: Vec<i64> = done.samples_of(id).map(|s| s.ts_ms).collect();
    assert!(ts.windows(2).all(|w| w[1] > w[0]), "{ts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_reports_resume_after_the_link_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let peer = start_peer(dir.path(), 100).await;
    let upstream: SocketAddr = peer.address().parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let mut cfg = config(&format!("127.0.0.1:{}", proxy.port));
    cfg.backoff_min_ms = 400;
    cfg.backoff_max_ms = 400;
    cfg.reports = vec![ReportConfig::new("LD0/LLN0.BR.brcb01")];
    let run = Running::start(&cfg);
    let totw = run.names.id("ied1/totw");
    let count = move |b: &[Batch]| {
        b.iter()
            .flat_map(|b| &b.samples)
            .filter(|s| s.point == totw && s.quality == Quality::Good)
            .count()
    };
    run.wait_for(SECS(10), "5 reported TotW values", |b| count(b) >= 5)
        .await;
    assert_eq!(proxy.cut(), 1, "one association to cut");
    let before = count(&run.batches.lock().unwrap());
    run.wait_for(SECS(10), "values after the reconnect", |b| {
        count(b) >= before + 10
    })
    .await;
    let done = run.stop().await;
    assert!(done.stats.reconnects >= 1, "{:?}", done.stats);
    assert!(
        done.samples_of(totw).any(|s| s.quality == Quality::Bad),
        "the cut shows as Bad"
    );
    let counters: BTreeSet<u64> = done
        .samples_of(totw)
        .filter(|s| s.quality == Quality::Good)
        .map(|s| counter_of_totw(s.value))
        .collect();
    let (first, last) = (*counters.first().unwrap(), *counters.last().unwrap());
    let missing: Vec<u64> = (first..=last).filter(|c| !counters.contains(c)).collect();
    assert!(
        missing.is_empty(),
        "steps lost across the cut: {missing:?} (seen {counters:?})"
    );
    assert!(
        last - first >= 12,
        "the outage spans steps: {first}..{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_reach_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let peer = start_peer(dir.path(), 100).await;
    let mut cfg = config(&peer.address());
    // SPCSO2 is engineered select-before-operate; operating it directly must be refused.
    cfg.points.push(
        PointConfig::new("spcso2_direct", "LD0/GGIO1.SPCSO2.stVal", Fc::ST)
            .with_control(ControlModel::Direct),
    );
    cfg.points.push(
        PointConfig::new("spcso3", "LD0/GGIO1.SPCSO3.stVal", Fc::ST)
            .with_control(ControlModel::SboEnhanced),
    );
    let run = Running::start(&cfg);
    run.wait_for(SECS(10), "a first poll", |b| !b.is_empty())
        .await;
    let tx = run
        .commands
        .clone()
        .expect("writable points give a command sender");
    let cmd = |point: &str, value: CommandValue| Command {
        point: point.into(),
        value,
    };
    let exec = |c: Command| {
        let tx = tx.clone();
        async move {
            tokio::time::timeout(SECS(5), tx.execute(c))
                .await
                .expect("command answered in time")
        }
    };
    assert_eq!(
        exec(cmd("spcso1", CommandValue::Binary(true))).await,
        Ok(())
    );
    assert_eq!(
        exec(cmd("spcso2", CommandValue::Binary(true))).await,
        Ok(())
    );
    assert_eq!(
        exec(cmd("anout1", CommandValue::Analog(4.25))).await,
        Ok(())
    );
    // Select-with-value, operate, then a positive command termination.
    assert_eq!(
        exec(cmd("spcso3", CommandValue::Binary(true))).await,
        Ok(())
    );
    let refused = exec(cmd("spcso2_direct", CommandValue::Binary(false))).await;
    assert!(
        matches!(refused, Err(CommandError::Refused(_))),
        "{refused:?}"
    );
    assert!(matches!(
        exec(cmd("spcso1", CommandValue::Analog(2.0))).await,
        Err(CommandError::BadValue(_))
    ));
    assert_eq!(
        exec(cmd("totw", CommandValue::Analog(1.0))).await,
        Err(CommandError::NotWritable("totw".into()))
    );
    assert_eq!(
        exec(cmd("nope", CommandValue::Analog(1.0))).await,
        Err(CommandError::UnknownPoint("nope".into()))
    );
    let (spcso1, anout1) = (run.names.id("ied1/spcso1"), run.names.id("ied1/anout1"));
    run.wait_for(SECS(5), "the polls to show the new states", |b| {
        b.last().is_some_and(|b| {
            value_in(b, spcso1).is_some_and(|s| s.value == 1.0)
                && value_in(b, anout1).is_some_and(|s| s.value == 4.25)
        })
    })
    .await;
    let done: Finished = run.stop().await;
    assert!(
        done.stats.exceptions >= 1,
        "the refusal is counted: {:?}",
        done.stats
    );

    let controls: Vec<(String, serde_json::Value)> = logged(&peer.log)
        .into_iter()
        .filter(|l| l.event == "control")
        .map(|l| (l.r#ref.unwrap_or_default(), l.value.unwrap_or_default()))
        .collect();
    assert_eq!(
        controls,
        vec![
            ("IED1LD0/GGIO1.SPCSO1".to_owned(), serde_json::json!(true)),
            ("IED1LD0/GGIO1.SPCSO2".to_owned(), serde_json::json!(true)),
            ("IED1LD0/GGIO1.AnOut1".to_owned(), serde_json::json!(42.5)),
            ("IED1LD0/GGIO1.SPCSO3".to_owned(), serde_json::json!(true)),
        ],
        "exactly the accepted controls reached the server, scaled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_turns_the_live_model_into_a_working_point_map() {
    let dir = tempfile::tempdir().unwrap();
    let peer = start_peer(dir.path(), 100).await;
    let mut cfg = config(&peer.address());
    cfg.points.clear();
    let probe = cfg.clone();
    let model = tokio::time::timeout(
        SECS(10),
        tokio::task::spawn_blocking(move || discover(&probe)),
    )
    .await
    .expect("discovery answers in time")
    .expect("no panic")
    .expect("discovery works");
    let by_ref = |r: &str| {
        model
            .points
            .iter()
            .find(|p| p.reference == r)
            .unwrap_or_else(|| panic!("{r} not found in {:?}", model.points))
    };
    assert_eq!(by_ref("LD0/MMXU1.TotW.mag.f").fc, Some(Fc::MX));
    assert_eq!(by_ref("LD0/GGIO1.Ind1.stVal").control, None);
    assert_eq!(
        by_ref("LD0/GGIO1.SPCSO1.stVal").control,
        Some(ControlModel::Direct)
    );
    assert_eq!(
        by_ref("LD0/GGIO1.SPCSO2.stVal").control,
        Some(ControlModel::Sbo)
    );
    assert_eq!(
        by_ref("LD0/GGIO1.SPCSO3.stVal").control,
        Some(ControlModel::SboEnhanced)
    );
    assert_eq!(
        by_ref("LD0/GGIO1.AnOut1.mxVal.f").control,
        Some(ControlModel::Direct)
    );
    assert!(model.points.iter().all(|p| !p.writable));
    let rcbs: Vec<&str> = model.reports.iter().map(|r| r.rcb.as_str()).collect();
    assert_eq!(
        rcbs,
        [
            "LD0/LLN0.BR.brcb01",
            "LD0/LLN0.RP.urcb01",
            "LD0/LLN0.RP.urcb02"
        ]
    );
    assert!(model
        .reports
        .iter()
        .all(|r| r.dataset.as_deref() == Some("LD0/LLN0.Measurements")));

    // The written file drives the device as it is.
    let path = dir.path().join("ied1.toml");
    model.write(&path).unwrap();
    cfg.points_file = Some(path.clone());
    let plan = cfg
        .validate(std::path::Path::new("/"))
        .expect("discovered map validates");
    assert_eq!(plan.points.len(), model.points.len());
    let run = Running::start(&cfg);
    run.wait_for(SECS(10), "two polls", |b| b.len() >= 2).await;
    let done = run.stop().await;
    let last = done.batches.last().unwrap();
    assert_eq!(last.samples.len(), model.points.len());
    assert_eq!(
        done.stats.decode_errors, 0,
        "every discovered point is a number: {:?}",
        done.stats
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_device_is_bad_and_retried() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = config(&format!("127.0.0.1:{port}"));
    let run = Running::start(&cfg);
    run.wait_for(SECS(10), "three failed attempts", |b| b.len() >= 3)
        .await;
    let tx = run.commands.clone().unwrap();
    let r = tx
        .execute(Command {
            point: "spcso1".into(),
            value: CommandValue::Binary(true),
        })
        .await;
    assert_eq!(r, Err(CommandError::NotConnected));
    let done = run.stop().await;
    assert!(done
        .batches
        .iter()
        .flat_map(|b| &b.samples)
        .all(|s| s.quality == Quality::Bad));
    assert!(
        done.stats.reconnects >= 2 && !done.stats.connected,
        "{:?}",
        done.stats
    );
    assert!(done.stats.transport_errors >= 3, "{:?}", done.stats);
    // Backoff spaces the attempts (100-400 ms with jitter).
    let gaps: Vec<Duration> = done
        .batches
        .windows(2)
        .map(|w| w[1].arrived - w[0].arrived)
        .collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(80)),
        "{gaps:?}"
    );
}
