//! The session loop against a scripted MMS backend: association loss and
//! reconnection, buffered-report resume, refused report blocks, refused
//! reads, and the sample channel closing — the paths a live peer cannot be
//! made to take on demand.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Running;
use dcmms_iec61850::backend::{
    BrowsedDevice, MmsBackend, MmsError, Operate, RcbSetup, RcbState, ReportData, ReportMember,
    Timeouts, VarRef,
};
use dcmms_iec61850::value::{quality_bits, DeviceQuality, LeafType, MmsValue, TypeTree, UtcTime};
use dcmms_iec61850::{ControlModel, Fc, Iec61850Config, PointConfig, ReportConfig};
use dcmms_protocols_core::{Command, CommandError, CommandValue};
use dcmms_shared::Quality;

/// What the fake device does and what it was asked.
#[derive(Default)]
struct Script {
    /// Results of successive connect attempts (Ok when empty).
    connects: VecDeque<Result<(), MmsError>>,
    /// Results of successive enable_report calls (Ok when empty).
    enables: VecDeque<Result<(), MmsError>>,
    /// Reports to hand out, or an error to fail next_report with.
    reports: VecDeque<Result<ReportData, MmsError>>,
    /// Per-variable read answers by reference (default: a float 1.5).
    read_errors: Vec<(String, MmsError)>,
    /// Fails the next whole read request.
    fail_next_read: Option<MmsError>,
    // Observations.
    connect_calls: u32,
    setups: Vec<RcbSetup>,
    reads: Vec<Vec<String>>,
    operates: Vec<Operate>,
    gi: Vec<String>,
    connected: bool,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Script>>);

impl Fake {
    fn with<T>(&self, f: impl FnOnce(&mut Script) -> T) -> T {
        f(&mut self.0.lock().expect("lock"))
    }
}

fn mv_type() -> TypeTree {
    TypeTree::Structure(vec![
        (
            "mag".into(),
            TypeTree::Structure(vec![("f".into(), TypeTree::Leaf(LeafType::Float(32)))]),
        ),
        ("q".into(), TypeTree::Leaf(LeafType::BitString(13))),
        ("t".into(), TypeTree::Leaf(LeafType::UtcTime)),
    ])
}

impl MmsBackend for Fake {
    fn connect(&mut self, _address: &str, _t: Timeouts) -> Result<(), MmsError> {
        self.with(|s| {
            s.connect_calls += 1;
            let r = s.connects.pop_front().unwrap_or(Ok(()));
            s.connected = r.is_ok();
            r
        })
    }
    fn close(&mut self) {
        self.with(|s| s.connected = false);
    }
    fn read(&mut self, vars: &[VarRef]) -> Result<Vec<Result<MmsValue, MmsError>>, MmsError> {
        self.with(|s| {
            if !s.connected {
                return Err(MmsError::NotConnected);
            }
            s.reads
                .push(vars.iter().map(|v| v.reference.clone()).collect());
            if let Some(e) = s.fail_next_read.take() {
                return Err(e);
            }
            Ok(vars
                .iter()
                .map(|v| {
                    if let Some((_, e)) = s.read_errors.iter().find(|(r, _)| *r == v.reference) {
                        return Err(e.clone());
                    }
                    Ok(if v.reference.ends_with(".q") {
                        quality_bits(DeviceQuality::GOOD)
                    } else if v.reference.ends_with(".t") {
                        MmsValue::UtcTime(UtcTime {
                            seconds: 1_700_000_000,
                            fraction: 0,
                            quality: 0,
                        })
                    } else {
                        MmsValue::Float32(1.5)
                    })
                })
                .collect())
        })
    }
    fn write(&mut self, _var: &VarRef, _value: &MmsValue) -> Result<(), MmsError> {
        Ok(())
    }
    fn type_of(&mut self, var: &VarRef) -> Result<TypeTree, MmsError> {
        if var.reference.ends_with("ctlVal") {
            return Ok(TypeTree::Leaf(LeafType::Bool));
        }
        Ok(mv_type())
    }
    fn data_set_members(&mut self, _data_set: &str) -> Result<Vec<String>, MmsError> {
        Ok(vec!["IED1LD0/MMXU1$MX$TotW".into()])
    }
    fn enable_report(&mut self, setup: &RcbSetup) -> Result<RcbState, MmsError> {
        self.with(|s| {
            s.setups.push(setup.clone());
            s.enables.pop_front().unwrap_or(Ok(()))?;
            Ok(RcbState {
                rpt_id: Some("rpt".into()),
                data_set: Some("IED1LD0/LLN0$Measurements".into()),
                integrity_period_ms: None,
                enabled: true,
            })
        })
    }
    fn general_interrogation(&mut self, rcb: &str) -> Result<(), MmsError> {
        self.with(|s| s.gi.push(rcb.to_owned()));
        Ok(())
    }
    fn next_report(&mut self, wait: Duration) -> Result<Option<ReportData>, MmsError> {
        let next = self.with(|s| {
            if s.connected {
                s.reports.pop_front()
            } else {
                Some(Err(MmsError::NotConnected))
            }
        });
        match next {
            Some(Ok(r)) => Ok(Some(r)),
            Some(Err(e)) => {
                if e.drops_connection() {
                    self.with(|s| s.connected = false);
                }
                Err(e)
            }
            None => {
                std::thread::sleep(wait);
                Ok(None)
            }
        }
    }
    fn operate(&mut self, op: &Operate) -> Result<(), MmsError> {
        self.with(|s| s.operates.push(op.clone()));
        Ok(())
    }
    fn status(&mut self) -> Result<(), MmsError> {
        Ok(())
    }
    fn logical_devices(&mut self) -> Result<Vec<String>, MmsError> {
        Ok(vec![])
    }
    fn variables(&mut self, _domain: &str) -> Result<Vec<String>, MmsError> {
        Ok(vec![])
    }
    fn data_sets(&mut self, _domain: &str) -> Result<Vec<String>, MmsError> {
        Ok(vec![])
    }
    fn browse(&mut self) -> Result<Vec<BrowsedDevice>, MmsError> {
        Ok(vec![])
    }
}

fn report(value: f32, entry: u8) -> ReportData {
    ReportData {
        rpt_id: "rpt".into(),
        seq_num: Some(u32::from(entry)),
        time_of_entry_ms: Some(1_700_000_000_000 + i64::from(entry)),
        data_set: None,
        buffer_overflow: None,
        entry_id: Some(vec![0, 0, 0, entry]),
        conf_rev: None,
        members: vec![ReportMember {
            index: 0,
            reference: None,
            value: MmsValue::Structure(vec![
                MmsValue::Structure(vec![MmsValue::Float32(value)]),
                quality_bits(DeviceQuality::GOOD),
                MmsValue::UtcTime(UtcTime {
                    seconds: 1_700_000_001,
                    fraction: 0,
                    quality: 0,
                }),
            ]),
            reason: Some(0x40),
        }],
    }
}

fn config(reports: bool) -> Iec61850Config {
    let mut c = Iec61850Config::new("fake", "127.0.0.1");
    c.ied_name = "IED1".into();
    c.poll_interval_ms = 50;
    c.backoff_min_ms = 20;
    c.backoff_max_ms = 80;
    c.points = vec![
        PointConfig::new("totw", "LD0/MMXU1.TotW.mag.f", Fc::MX),
        PointConfig::new("hz", "LD0/MMXU1.Hz.mag.f", Fc::MX),
        PointConfig::new("sw", "LD0/GGIO1.SPCSO1.stVal", Fc::ST).with_control(ControlModel::Sbo),
    ];
    if reports {
        c.reports = vec![ReportConfig::new("LD0/LLN0.BR.brcb01")];
    }
    c
}

const LIMIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_reports_resume_after_the_last_entry() {
    let fake = Fake::default();
    fake.with(|s| {
        s.reports.extend([
            Ok(report(1.0, 1)),
            Ok(report(2.0, 2)),
            Err(MmsError::Transport("reset".into())),
        ]);
    });
    let run = Running::start_with(&config(true), Box::new(fake.clone()));
    let totw = run.names.id("fake/totw");
    let f = fake.clone();
    run.wait_reports(LIMIT, "two reports", |r| r.received >= 2)
        .await;
    run.wait_for(LIMIT, "the second association", move |_| {
        f.with(|s| s.setups.len() >= 2)
    })
    .await;
    fake.with(|s| s.reports.push_back(Ok(report(3.0, 3))));
    run.wait_reports(LIMIT, "the third report", |r| r.received >= 3)
        .await;
    let done = run.stop().await;

    let setups = fake.with(|s| s.setups.clone());
    assert_eq!(setups[0].resume_after, None);
    assert_eq!(
        setups[1].resume_after,
        Some(vec![0, 0, 0, 2]),
        "resumes after the last entry seen"
    );
    assert_eq!(setups[0].reference, "IED1LD0/LLN0$BR$brcb01");
    assert!(setups[0].triggers.general_interrogation && setups[0].buffered);
    assert_eq!(fake.with(|s| s.gi.len()), 2, "GI after each enable");
    let values: Vec<(f64, Quality)> = done
        .samples_of(totw)
        .map(|s| (s.value, s.quality))
        .collect();
    assert_eq!(values.first(), Some(&(1.0, Quality::Good)));
    assert!(values.contains(&(3.0, Quality::Good)));
    assert!(
        values.iter().any(|(_, q)| *q == Quality::Bad),
        "the loss shows as Bad: {values:?}"
    );
    // TotW comes from reports; only hz and sw are read.
    let reads = fake.with(|s| s.reads.clone());
    assert!(
        reads.iter().flatten().all(|r| !r.contains("TotW")),
        "{reads:?}"
    );
    assert!(
        done.stats.reconnects >= 1 && done.stats.transport_errors >= 1,
        "{:?}",
        done.stats
    );
    assert_eq!(
        done.samples_of(totw)
            .find(|s| s.value == 1.0)
            .unwrap()
            .ts_ms,
        1_700_000_001_000,
        "member t"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_resume_enables_afresh_and_a_refused_block_is_polled() {
    let fake = Fake::default();
    fake.with(|s| {
        s.reports
            .extend([Ok(report(1.0, 9)), Err(MmsError::Timeout)]);
        // Second association: the EntryID is refused, then the plain enable works.
        s.enables
            .extend([Ok(()), Err(MmsError::Access { code: 11 }), Ok(())]);
    });
    let run = Running::start_with(&config(true), Box::new(fake.clone()));
    let f = fake.clone();
    run.wait_for(LIMIT, "the re-enable", move |_| {
        f.with(|s| s.setups.len() >= 3)
    })
    .await;
    let done = run.stop().await;
    let setups = fake.with(|s| s.setups.clone());
    assert_eq!(setups[1].resume_after, Some(vec![0, 0, 0, 9]));
    assert_eq!(setups[2].resume_after, None);
    assert!(done.stats.timeouts >= 1);

    // A block the device refuses outright: its points are polled instead.
    let fake = Fake::default();
    fake.with(|s| {
        s.enables
            .push_back(Err(MmsError::Service("reserved by another client".into())))
    });
    let run = Running::start_with(&config(true), Box::new(fake.clone()));
    run.wait_for(LIMIT, "two polls", |b| b.len() >= 2).await;
    let done = run.stop().await;
    assert_eq!(done.reports.enable_failures, 1);
    assert_eq!(done.reports.enabled, 0);
    assert!(fake.with(|s| s.reads[0].iter().any(|r| r == "IED1LD0/MMXU1.TotW.mag.f")));
    assert!(done.batches.iter().all(|b| b.samples.len() == 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_reads_and_lost_associations() {
    let fake = Fake::default();
    fake.with(|s| {
        s.connects.extend([
            Err(MmsError::Transport("refused".into())),
            Err(MmsError::Timeout),
        ]);
        s.read_errors.push((
            "IED1LD0/MMXU1.Hz.mag.f".into(),
            MmsError::Access { code: 3 },
        ));
    });
    let run = Running::start_with(&config(false), Box::new(fake.clone()));
    let (totw, hz) = (run.names.id("fake/totw"), run.names.id("fake/hz"));
    run.wait_for(LIMIT, "three polls after connecting", |b| b.len() >= 5)
        .await;
    fake.with(|s| s.fail_next_read = Some(MmsError::Timeout));
    let f = fake.clone();
    run.wait_for(LIMIT, "a reconnect after the timeout", move |_| {
        f.with(|s| s.connect_calls >= 4)
    })
    .await;
    run.wait_for(LIMIT, "a good poll again", move |b| {
        b.last().is_some_and(|b| {
            b.samples
                .iter()
                .any(|s| s.point == totw && s.quality == Quality::Good)
        })
    })
    .await;
    let done = run.stop().await;
    let s = &done.stats;
    assert_eq!(s.reconnects, 3, "{s:?}");
    assert!(s.timeouts >= 2 && s.transport_errors >= 1, "{s:?}");
    assert!(
        s.exceptions >= 3,
        "a refused value is a device exception: {s:?}"
    );
    // The first two cycles failed to connect: every point Bad.
    assert!(done.batches[..2]
        .iter()
        .all(|b| b.samples.iter().all(|s| s.quality == Quality::Bad)));
    // Hz is refused, TotW is not: the connection stays, only Hz is Bad.
    let good = &done.batches[2];
    assert_eq!(
        good.samples
            .iter()
            .find(|s| s.point == totw)
            .unwrap()
            .quality,
        Quality::Good
    );
    assert_eq!(
        good.samples.iter().find(|s| s.point == hz).unwrap().quality,
        Quality::Bad
    );
    assert_eq!(
        good.samples.iter().find(|s| s.point == totw).unwrap().ts_ms,
        1_700_000_000_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_use_the_configured_model_and_stop_with_the_driver() {
    let fake = Fake::default();
    let run = Running::start_with(&config(false), Box::new(fake.clone()));
    run.wait_for(LIMIT, "a poll", |b| !b.is_empty()).await;
    let tx = run.commands.clone().unwrap();
    let r = tx
        .execute(Command {
            point: "sw".into(),
            value: CommandValue::Binary(true),
        })
        .await;
    assert_eq!(r, Ok(()));
    let ops = fake.with(|s| s.operates.clone());
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].object, "IED1LD0/GGIO1.SPCSO1");
    assert_eq!(ops[0].model, ControlModel::Sbo);
    assert_eq!(ops[0].value, MmsValue::Bool(true));
    assert_eq!(ops[0].originator, "dcmms");
    let _ = run.stop().await;
    let r = tx
        .execute(Command {
            point: "sw".into(),
            value: CommandValue::Binary(true),
        })
        .await;
    assert_eq!(r, Err(CommandError::DriverStopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_ends_when_the_sample_channel_closes() {
    let fake = Fake::default();
    let mut names = common::Names::default();
    let driver = dcmms_iec61850::build_with_backend(
        &config(false),
        std::path::Path::new("."),
        &mut names,
        Box::new(fake),
    )
    .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(rx);
    let task = tokio::spawn(dcmms_protocols_core::Driver::run(
        Box::new(driver),
        tx,
        tokio_util::sync::CancellationToken::new(),
    ));
    tokio::time::timeout(LIMIT, task)
        .await
        .expect("run returns without cancellation")
        .unwrap();
}
