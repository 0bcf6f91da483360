//! The per-device session loop, run on its own OS thread.
//!
//! It owns the [`MmsBackend`] and everything that lives for one association:
//! the enabled report control blocks with their member maps, the set of
//! points left to polling, and the `ctlVal` types learned for commands. It
//! polls, waits for reports between polls, serves commands, and on a lost
//! association marks every point Bad, closes, and reconnects after a
//! jittered backoff. It must never block a tokio worker, which is why it is
//! a thread: every backend call blocks. It stops when told to (a shared
//! flag, checked at least every [`SLICE`]) or when the sample channel closes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dcmms_protocols_core::{
    unix_time_ms, Backoff, Command, CommandError, CommandPort, DeviceStats,
};
use dcmms_shared::{PointId, Sample};
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::backend::{MmsBackend, MmsError, Operate, RcbSetup, ReportData, VarRef};
use crate::command::{command_error, encode_command};
use crate::config::{CommandTarget, DevicePlan};
use crate::poll::{decode_batch, plan_reads, vars_of, PointState};
use crate::reference::Fc;
use crate::report::{decode_report, members_needing_types, LastKnown, MemberMap};
use crate::value::TypeTree;

/// Longest time the loop blocks before it looks at the stop flag and the
/// command port again.
pub const SLICE: Duration = Duration::from_millis(50);

/// Report counters of one device (beside [`DeviceStats`]).
#[derive(Debug, Default)]
pub struct ReportStats {
    /// Reports received and decoded.
    pub received: AtomicU64,
    /// Reports from a block this driver did not enable, or that did not fit
    /// the data set.
    pub unmatched: AtomicU64,
    /// Report control blocks enabled on the current association.
    pub enabled: AtomicU64,
    /// Attempts to enable a block that the device refused.
    pub enable_failures: AtomicU64,
    /// Report members received, by reason for inclusion.
    pub data_change_members: AtomicU64,
    pub quality_change_members: AtomicU64,
    pub data_update_members: AtomicU64,
    pub integrity_members: AtomicU64,
    pub gi_members: AtomicU64,
}

/// A copy of [`ReportStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ReportStatsSnapshot {
    pub received: u64,
    pub unmatched: u64,
    pub enabled: u64,
    pub enable_failures: u64,
    pub data_change_members: u64,
    pub quality_change_members: u64,
    pub data_update_members: u64,
    pub integrity_members: u64,
    pub gi_members: u64,
}

impl ReportStats {
    pub fn snapshot(&self) -> ReportStatsSnapshot {
        let r = Ordering::Relaxed;
        ReportStatsSnapshot {
            received: self.received.load(r),
            unmatched: self.unmatched.load(r),
            enabled: self.enabled.load(r),
            enable_failures: self.enable_failures.load(r),
            data_change_members: self.data_change_members.load(r),
            quality_change_members: self.quality_change_members.load(r),
            data_update_members: self.data_update_members.load(r),
            integrity_members: self.integrity_members.load(r),
            gi_members: self.gi_members.load(r),
        }
    }

    /// Counts the members of `report` by their reason codes.
    pub fn count_reasons(&self, report: &ReportData) {
        use crate::backend::reason;
        for m in &report.members {
            let bits = m.reason.unwrap_or(0);
            for (bit, counter) in [
                (reason::DATA_CHANGE, &self.data_change_members),
                (reason::QUALITY_CHANGE, &self.quality_change_members),
                (reason::DATA_UPDATE, &self.data_update_members),
                (reason::INTEGRITY, &self.integrity_members),
                (reason::GENERAL_INTERROGATION, &self.gi_members),
            ] {
                if bits & bit != 0 {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// One enabled report control block.
struct ActiveReport {
    plan: usize,
    rpt_id: String,
    data_set: Option<String>,
    map: MemberMap,
}

pub(crate) struct Worker {
    pub plan: DevicePlan,
    pub ids: Vec<PointId>,
    pub backend: Box<dyn MmsBackend>,
    pub stats: Arc<DeviceStats>,
    pub report_stats: Arc<ReportStats>,
    pub backoff: Backoff,
    states: Vec<PointState>,
    last: Vec<LastKnown>,
    connected: bool,
    active: Vec<ActiveReport>,
    polled: Vec<usize>,
    command_types: HashMap<usize, TypeTree>,
    /// Per configured report: the last `EntryID` seen (buffered blocks).
    resume: Vec<Option<Vec<u8>>>,
    attempts: u64,
    failing: bool,
}

/// The functional constraint of an MMS-form name (`LD/LN$MX$...`).
fn fc_of_mms(name: &str) -> Option<Fc> {
    name.split('$').nth(1)?.parse().ok()
}

fn now_ms() -> i64 {
    unix_time_ms(SystemTime::now())
}

impl Worker {
    pub fn new(
        plan: DevicePlan,
        ids: Vec<PointId>,
        backend: Box<dyn MmsBackend>,
        stats: Arc<DeviceStats>,
        report_stats: Arc<ReportStats>,
    ) -> Self {
        let backoff = Backoff::new(plan.backoff_min, plan.backoff_max);
        let states = plan.points.iter().map(PointState::for_point).collect();
        let n = plan.points.len();
        let reports = plan.reports.len();
        Worker {
            polled: (0..n).collect(),
            plan,
            ids,
            backend,
            stats,
            report_stats,
            backoff,
            states,
            last: vec![LastKnown::default(); n],
            connected: false,
            active: Vec::new(),
            command_types: HashMap::new(),
            resume: vec![None; reports],
            attempts: 0,
            failing: false,
        }
    }

    /// Runs until `stop` is set or `sink` closes.
    pub fn run(
        mut self,
        sink: mpsc::Sender<Vec<Sample>>,
        stop: Arc<AtomicBool>,
        mut port: Option<CommandPort>,
    ) {
        info!(device = %self.plan.name, address = %self.plan.address, points = self.plan.points.len(),
              reports = self.plan.reports.len(), "iec61850 device starting");
        let mut retry_at: Option<Instant> = None;
        let mut next_poll = Instant::now();
        let mut last_traffic = Instant::now();
        'run: while !stop.load(Ordering::Relaxed) {
            if let Some(port) = port.as_mut() {
                self.serve_commands(port, &sink, &stop);
            }
            if !self.connected {
                if let Some(at) = retry_at {
                    let now = Instant::now();
                    if now < at {
                        std::thread::sleep((at - now).min(SLICE));
                        continue;
                    }
                }
                match self.connect_and_setup() {
                    Ok(()) => {
                        retry_at = None;
                        next_poll = Instant::now();
                        last_traffic = Instant::now();
                    }
                    Err(e) => {
                        let samples = self.bad_all();
                        self.fail(&e, "connect");
                        retry_at = Some(Instant::now() + self.backoff.next_delay());
                        if !send(&sink, samples, &stop) {
                            break 'run;
                        }
                        continue;
                    }
                }
            }

            let now = Instant::now();
            if now >= next_poll {
                next_poll = (next_poll + self.plan.poll_interval).max(now);
                if !self.polled.is_empty() {
                    let samples = self.poll_cycle();
                    last_traffic = Instant::now();
                    if !send(&sink, samples, &stop) {
                        break 'run;
                    }
                    if !self.connected {
                        retry_at = Some(Instant::now() + self.backoff.next_delay());
                        continue;
                    }
                } else if last_traffic.elapsed() >= self.plan.poll_interval {
                    // Reports only and nothing heard: prove the link lives.
                    let started = Instant::now();
                    match self.backend.status() {
                        Ok(()) => {
                            self.stats.record_rtt_us(micros(started));
                            last_traffic = Instant::now();
                        }
                        Err(e) => {
                            self.count(&e);
                            if e.drops_connection() {
                                let samples = self.lose(&e);
                                retry_at = Some(Instant::now() + self.backoff.next_delay());
                                if !send(&sink, samples, &stop) {
                                    break 'run;
                                }
                                continue;
                            }
                        }
                    }
                }
            }

            let wait = next_poll
                .saturating_duration_since(Instant::now())
                .min(SLICE);
            if self.active.is_empty() {
                // No report can come: sleep precisely (a socket read timeout
                // is rounded up to the kernel tick) and let the polls find a
                // dead link.
                std::thread::sleep(wait);
                continue;
            }
            match self.backend.next_report(wait) {
                Ok(Some(report)) => {
                    last_traffic = Instant::now();
                    let samples = self.on_report(&report);
                    if !samples.is_empty() && !send(&sink, samples, &stop) {
                        break 'run;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    self.count(&e);
                    if e.drops_connection() {
                        let samples = self.lose(&e);
                        retry_at = Some(Instant::now() + self.backoff.next_delay());
                        if !send(&sink, samples, &stop) {
                            break 'run;
                        }
                    } else {
                        debug!(device = %self.plan.name, error = %e, "report not decoded");
                        DeviceStats::bump(&self.stats.decode_errors);
                        self.report_stats.unmatched.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        if let Some(port) = port.as_mut() {
            port.rx.close();
            while let Ok(req) = port.rx.try_recv() {
                req.finish(Err(CommandError::DriverStopped));
            }
        }
        self.backend.close();
        self.stats.set_connected(false);
        info!(device = %self.plan.name, "iec61850 device stopped");
    }

    fn count(&self, e: &MmsError) {
        let counter = match e {
            MmsError::Timeout => &self.stats.timeouts,
            MmsError::Transport(_) | MmsError::NotConnected => &self.stats.transport_errors,
            MmsError::Decode(_) => &self.stats.decode_errors,
            MmsError::Service(_)
            | MmsError::Access { .. }
            | MmsError::ControlRefused { .. }
            | MmsError::Local(_) => &self.stats.exceptions,
        };
        DeviceStats::bump(counter);
    }

    fn fail(&mut self, e: &MmsError, stage: &str) {
        DeviceStats::bump(&self.stats.polls_failed);
        if !self.failing {
            warn!(device = %self.plan.name, address = %self.plan.address, stage, error = %e,
                  "iec61850 device failing; further failures are logged at debug level");
            self.failing = true;
        } else {
            debug!(device = %self.plan.name, stage, error = %e, "still failing");
        }
    }

    fn bad_all(&self) -> Vec<Sample> {
        let ts = now_ms();
        self.ids.iter().map(|&id| Sample::bad(id, ts)).collect()
    }

    /// Drops the association after `e`; returns Bad samples for every point.
    fn lose(&mut self, e: &MmsError) -> Vec<Sample> {
        self.backend.close();
        self.connected = false;
        self.active.clear();
        self.command_types.clear();
        self.polled = (0..self.plan.points.len()).collect();
        self.stats.set_connected(false);
        self.report_stats.enabled.store(0, Ordering::Relaxed);
        self.fail(e, "association");
        self.bad_all()
    }

    fn connect_and_setup(&mut self) -> Result<(), MmsError> {
        self.attempts += 1;
        if self.attempts > 1 {
            DeviceStats::bump(&self.stats.reconnects);
        }
        let started = Instant::now();
        if let Err(e) = self.backend.connect(&self.plan.address, self.plan.timeouts) {
            self.count(&e);
            return Err(e);
        }
        self.stats.record_rtt_us(micros(started));
        self.connected = true;
        self.stats.set_connected(true);
        debug!(device = %self.plan.name, "associated");
        for i in 0..self.plan.reports.len() {
            if let Err(e) = self.enable_report(i) {
                self.count(&e);
                if e.drops_connection() {
                    self.backend.close();
                    self.connected = false;
                    self.active.clear();
                    self.stats.set_connected(false);
                    return Err(e);
                }
                self.report_stats
                    .enable_failures
                    .fetch_add(1, Ordering::Relaxed);
                warn!(device = %self.plan.name, rcb = %self.plan.reports[i].name, error = %e,
                      "report control block not enabled; its points are polled");
            }
        }
        let mut covered = vec![false; self.plan.points.len()];
        for a in &self.active {
            for p in a.map.covered_points() {
                if let Some(c) = covered.get_mut(p) {
                    *c = true;
                }
            }
        }
        self.polled = (0..self.plan.points.len())
            .filter(|&p| !covered[p])
            .collect();
        self.report_stats
            .enabled
            .store(self.active.len() as u64, Ordering::Relaxed);
        info!(device = %self.plan.name, reports = self.active.len(), polled = self.polled.len(),
              reported = self.plan.points.len() - self.polled.len(), "iec61850 device connected");
        self.backoff.reset();
        if self.failing {
            info!(device = %self.plan.name, "device answers again");
            self.failing = false;
        }
        Ok(())
    }

    fn enable_report(&mut self, i: usize) -> Result<(), MmsError> {
        let rp = self.plan.reports[i].clone();
        let mut setup = RcbSetup {
            reference: rp.reference.clone(),
            buffered: rp.buffered,
            data_set: rp.data_set.clone(),
            triggers: rp.triggers,
            integrity_period_ms: rp.integrity_period_ms,
            buffer_time_ms: rp.buffer_time_ms,
            resume_after: if rp.buffered {
                self.resume[i].clone()
            } else {
                None
            },
        };
        let state = match self.backend.enable_report(&setup) {
            Ok(s) => s,
            Err(e) if setup.resume_after.is_some() && !e.drops_connection() => {
                // The device no longer knows that entry (it restarted, or the
                // buffer moved on): start afresh.
                debug!(device = %self.plan.name, rcb = %rp.name, error = %e, "resume refused; enabling without EntryID");
                setup.resume_after = None;
                self.resume[i] = None;
                self.backend.enable_report(&setup)?
            }
            Err(e) => return Err(e),
        };
        let data_set = state
            .data_set
            .clone()
            .filter(|d| !d.is_empty())
            .or(rp.data_set.clone())
            .ok_or_else(|| MmsError::Local("the block has no data set".into()))?;
        let members = self.backend.data_set_members(&data_set)?;
        let mut types = HashMap::new();
        for m in members_needing_types(&members, &self.plan.points) {
            let Some(member) = members.get(m) else {
                continue;
            };
            let Some(fc) = fc_of_mms(member) else {
                continue;
            };
            match self.backend.type_of(&VarRef {
                reference: member.clone(),
                fc,
            }) {
                Ok(t) => {
                    types.insert(m, t);
                }
                Err(e) if e.drops_connection() => return Err(e),
                Err(e) => {
                    debug!(device = %self.plan.name, member = %member, error = %e, "member type unknown")
                }
            }
        }
        let map = MemberMap::bind(&members, &types, &self.plan.points);
        let rpt_id = state
            .rpt_id
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or(rp.reference.clone());
        debug!(device = %self.plan.name, rcb = %rp.name, rpt_id = %rpt_id, data_set = %data_set,
               members = members.len(), points = map.covered_points().len(), "report enabled");
        self.active.push(ActiveReport {
            plan: i,
            rpt_id,
            data_set: Some(data_set),
            map,
        });
        if rp.triggers.general_interrogation {
            if let Err(e) = self.backend.general_interrogation(&rp.reference) {
                if e.drops_connection() {
                    return Err(e);
                }
                warn!(device = %self.plan.name, rcb = %rp.name, error = %e, "general interrogation refused");
            }
        }
        Ok(())
    }

    /// One read of every polled point. On a lost association the rest of
    /// the points (and the reported ones) are marked Bad.
    fn poll_cycle(&mut self) -> Vec<Sample> {
        let ts = now_ms();
        let mut samples = Vec::with_capacity(self.plan.points.len());
        let batches = plan_reads(&self.polled, &self.states, self.plan.max_vars_per_read);
        let mut first_failure: Option<MmsError> = None;
        let mut lost: Option<MmsError> = None;
        for batch in &batches {
            if lost.is_some() {
                samples.extend(
                    batch
                        .iter()
                        .filter(|it| it.part == crate::poll::Part::Value)
                        .map(|it| Sample::bad(self.ids[it.point], ts)),
                );
                continue;
            }
            let vars = vars_of(batch, &self.plan.points);
            let started = Instant::now();
            match self.backend.read(&vars) {
                Ok(results) => {
                    self.stats.record_rtt_us(micros(started));
                    let o = decode_batch(
                        batch,
                        &results,
                        &self.plan.points,
                        &self.ids,
                        &mut self.states,
                        ts,
                        &mut samples,
                    );
                    for _ in 0..o.access_errors {
                        DeviceStats::bump(&self.stats.exceptions);
                    }
                    for _ in 0..o.decode_errors {
                        DeviceStats::bump(&self.stats.decode_errors);
                    }
                    if !o.is_clean() && first_failure.is_none() {
                        first_failure = Some(MmsError::Decode(format!(
                            "{} refused, {} not numeric",
                            o.access_errors, o.decode_errors
                        )));
                    }
                }
                Err(e) => {
                    self.count(&e);
                    samples.extend(
                        batch
                            .iter()
                            .filter(|it| it.part == crate::poll::Part::Value)
                            .map(|it| Sample::bad(self.ids[it.point], ts)),
                    );
                    if e.drops_connection() {
                        lost = Some(e);
                    } else if first_failure.is_none() {
                        first_failure = Some(e);
                    }
                }
            }
        }
        if let Some(e) = lost {
            let covered: Vec<usize> = (0..self.plan.points.len())
                .filter(|p| !self.polled.contains(p))
                .collect();
            samples.extend(covered.iter().map(|&p| Sample::bad(self.ids[p], ts)));
            let _ = self.lose(&e);
            return samples;
        }
        match first_failure {
            None => {
                DeviceStats::bump(&self.stats.polls_ok);
                self.stats.record_success(ts);
                if self.failing {
                    info!(device = %self.plan.name, "device answers again");
                    self.failing = false;
                }
            }
            Some(e) => self.fail(&e, "poll"),
        }
        samples
    }

    fn on_report(&mut self, report: &ReportData) -> Vec<Sample> {
        let arrival = now_ms();
        let found = self
            .active
            .iter()
            .position(|a| a.rpt_id == report.rpt_id)
            .or_else(|| {
                let ds = report.data_set.as_ref()?;
                self.active
                    .iter()
                    .position(|a| a.data_set.as_ref() == Some(ds))
            });
        let Some(i) = found else {
            debug!(device = %self.plan.name, rpt_id = %report.rpt_id, "report from a block not enabled here");
            self.report_stats.unmatched.fetch_add(1, Ordering::Relaxed);
            return Vec::new();
        };
        let decoded = decode_report(
            report,
            &self.active[i].map,
            &self.plan.points,
            &self.ids,
            &mut self.last,
            arrival,
        );
        for _ in 0..decoded.decode_errors {
            DeviceStats::bump(&self.stats.decode_errors);
        }
        let plan = self.active[i].plan;
        if self.plan.reports[plan].buffered {
            if let Some(id) = &report.entry_id {
                self.resume[plan] = Some(id.clone());
            }
        }
        if report.buffer_overflow == Some(true) {
            warn!(device = %self.plan.name, rcb = %self.plan.reports[plan].name, "device report buffer overflowed: entries were lost");
        }
        self.report_stats.received.fetch_add(1, Ordering::Relaxed);
        self.report_stats.count_reasons(report);
        self.stats.record_success(arrival);
        decoded.samples
    }

    fn serve_commands(
        &mut self,
        port: &mut CommandPort,
        sink: &mpsc::Sender<Vec<Sample>>,
        stop: &AtomicBool,
    ) {
        while let Ok(req) = port.rx.try_recv() {
            let (result, lost) = self.execute(&req.command);
            debug!(device = %self.plan.name, point = %req.command.point, value = %req.command.value,
                   ok = result.is_ok(), "command");
            req.finish(result);
            if let Some(e) = lost {
                let samples = self.lose(&e);
                if !send(sink, samples, stop) {
                    return;
                }
            }
        }
    }

    /// Carries out one command; the second value is set when the
    /// association was lost doing it.
    fn execute(&mut self, cmd: &Command) -> (Result<(), CommandError>, Option<MmsError>) {
        let Some(pi) = self.plan.points.iter().position(|p| p.name == cmd.point) else {
            return (Err(CommandError::UnknownPoint(cmd.point.clone())), None);
        };
        let point = &self.plan.points[pi];
        let (true, Some(target)) = (point.writable, point.command.clone()) else {
            return (Err(CommandError::NotWritable(cmd.point.clone())), None);
        };
        if !self.connected {
            return (Err(CommandError::NotConnected), None);
        }
        let type_var = match &target {
            CommandTarget::Control { object, .. } => VarRef {
                reference: format!("{object}.Oper.ctlVal"),
                fc: Fc::CO,
            },
            CommandTarget::Write => point.value.clone(),
        };
        let scaling = point.scaling;
        let value_var = point.value.clone();
        let ty = match self.command_types.get(&pi) {
            Some(t) => t.clone(),
            None => match self.backend.type_of(&type_var) {
                Ok(t) => {
                    self.command_types.insert(pi, t.clone());
                    t
                }
                Err(e) => return self.command_failed(e),
            },
        };
        let value = match encode_command(&ty, cmd.value, &scaling) {
            Ok(v) => v,
            Err(e) => return (Err(e), None),
        };
        let result = match target {
            CommandTarget::Control { object, model } => self.backend.operate(&Operate {
                object,
                model,
                value,
                originator: self.plan.originator.clone(),
            }),
            CommandTarget::Write => self.backend.write(&value_var, &value),
        };
        match result {
            Ok(()) => (Ok(()), None),
            Err(e) => self.command_failed(e),
        }
    }

    fn command_failed(&self, e: MmsError) -> (Result<(), CommandError>, Option<MmsError>) {
        self.count(&e);
        let lost = e.drops_connection().then(|| e.clone());
        (Err(command_error(e)), lost)
    }
}

fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Sends without blocking forever: waits for room while the driver runs;
/// false when the channel is closed (or the driver stops while it is full).
fn send(sink: &mpsc::Sender<Vec<Sample>>, samples: Vec<Sample>, stop: &AtomicBool) -> bool {
    let mut batch = samples;
    loop {
        match sink.try_send(batch) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(b)) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                batch = b;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
