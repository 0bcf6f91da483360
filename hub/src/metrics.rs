//! The hub's internal telemetry: every counter and histogram in one place,
//! rendered for Prometheus at `GET /metrics`.
//!
//! Each running hub owns its recorder (no process-global state), so several
//! hubs in one test process keep separate counts. Label values come from
//! closed enums, never from peer input, so cardinality stays bounded.

use dcmms_shared::TopicKind;
use metrics::{Counter, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::Arc;

static META: Metadata<'static> = Metadata::new("dcmms_hub", Level::INFO, Some(module_path!()));

/// Why an inbound message was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// Topic outside `/tenants/{t}/dcmms/v1/{site}/{gw}/{kind}` or bad names.
    BadTopic,
    /// Topic whose tenant does not own its site/gateway (one gateway trying
    /// to act as another within its own tenant prefix).
    TenantMismatch,
    /// Payload that is not a valid envelope or body.
    BadPayload,
    /// Message kind that does not match the topic kind.
    KindMismatch,
    /// Uplink topic the hub does not handle yet.
    UnsupportedKind,
    /// Catalog with invalid names or ids.
    BadCatalog,
    /// Catalog starting beyond what the hub holds (the gateway is told to
    /// resend from the hub's length).
    CatalogGap,
    /// Catalog naming a point that another gateway already owns.
    PointNameConflict,
    /// Telemetry block that cannot be decoded or is inconsistent; acked as
    /// rejected so the gateway drops it.
    BadBlock,
    /// Publish refused by the broker itself (outside the client's tenant
    /// prefix, malformed); reported by the broker's router meter.
    BrokerRefused,
}

impl RejectReason {
    pub const ALL: [RejectReason; 10] = [
        RejectReason::BadTopic,
        RejectReason::TenantMismatch,
        RejectReason::BadPayload,
        RejectReason::KindMismatch,
        RejectReason::UnsupportedKind,
        RejectReason::BadCatalog,
        RejectReason::CatalogGap,
        RejectReason::PointNameConflict,
        RejectReason::BadBlock,
        RejectReason::BrokerRefused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::BadTopic => "bad_topic",
            RejectReason::TenantMismatch => "tenant_mismatch",
            RejectReason::BadPayload => "bad_payload",
            RejectReason::KindMismatch => "kind_mismatch",
            RejectReason::UnsupportedKind => "unsupported_kind",
            RejectReason::BadCatalog => "bad_catalog",
            RejectReason::CatalogGap => "catalog_gap",
            RejectReason::PointNameConflict => "point_name_conflict",
            RejectReason::BadBlock => "bad_block",
            RejectReason::BrokerRefused => "broker_refused",
        }
    }
}

/// Why an MQTT connection was dropped before reaching the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsFailure {
    /// Handshake failed: no client certificate, one not from the hub CA,
    /// expired, or not TLS at all.
    Handshake,
    /// No handshake within the connection timeout.
    Timeout,
    /// Valid certificate without a usable organisation (tenant).
    NoTenant,
    /// `broker.max_connections` reached.
    Busy,
    /// The embedded broker refused or did not answer the relayed connection.
    Upstream,
}

impl TlsFailure {
    pub const ALL: [TlsFailure; 5] = [
        TlsFailure::Handshake,
        TlsFailure::Timeout,
        TlsFailure::NoTenant,
        TlsFailure::Busy,
        TlsFailure::Upstream,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TlsFailure::Handshake => "handshake",
            TlsFailure::Timeout => "timeout",
            TlsFailure::NoTenant => "no_tenant",
            TlsFailure::Busy => "busy",
            TlsFailure::Upstream => "upstream",
        }
    }
}

/// Why the API refused a request before doing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// 401: no valid bearer token (or a failed login).
    Unauthorized,
    /// 403: a valid user lacking a permission.
    Forbidden,
}

impl Refusal {
    pub const ALL: [Refusal; 2] = [Refusal::Unauthorized, Refusal::Forbidden];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::Forbidden => "forbidden",
        }
    }
}

/// Keeps a flood of bad input from flooding the log: the first event is
/// logged, then at most one line per interval, with the count suppressed.
#[derive(Debug, Default)]
pub(crate) struct LogLimiter {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl LogLimiter {
    pub(crate) const INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

    /// Some(count suppressed since the last line) when a line may be logged.
    pub(crate) fn allow(&mut self) -> Option<u64> {
        let now = std::time::Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < Self::INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Metric names, for dashboards and tests.
pub mod names {
    pub const RECEIVED: &str = "dcmms_hub_received_messages_total";
    pub const REJECTED: &str = "dcmms_hub_rejected_messages_total";
    pub const BLOCKS_COMMITTED: &str = "dcmms_hub_blocks_committed_total";
    pub const DUPLICATE_BLOCKS: &str = "dcmms_hub_duplicate_blocks_total";
    pub const CATALOG_WAITS: &str = "dcmms_hub_blocks_awaiting_catalog_total";
    pub const SAMPLES_INSERTED: &str = "dcmms_hub_samples_inserted_total";
    pub const ACKS_PUBLISHED: &str = "dcmms_hub_acks_published_total";
    pub const DB_ERRORS: &str = "dcmms_hub_db_errors_total";
    pub const BATCH_SECONDS: &str = "dcmms_hub_ingest_batch_seconds";
    pub const BATCH_MESSAGES: &str = "dcmms_hub_ingest_batch_messages";
    pub const BROKER_CURSOR_JUMPS: &str = "dcmms_hub_broker_cursor_jumps_total";
    pub const MQTT_CONNECTIONS: &str = "dcmms_hub_mqtt_connections_total";
    pub const MQTT_REFUSED: &str = "dcmms_hub_mqtt_connections_refused_total";
    pub const LOGINS: &str = "dcmms_hub_logins_total";
    pub const API_REFUSED: &str = "dcmms_hub_api_refused_total";
    pub const PM_RUNS: &str = "dcmms_hub_pm_runs_total";
    pub const PM_WORK_ORDERS: &str = "dcmms_hub_pm_work_orders_created_total";
    pub const PM_PLAN_ERRORS: &str = "dcmms_hub_pm_plan_errors_total";
}

struct Inner {
    handle: PrometheusHandle,
    received: [Counter; 4],
    rejected: Vec<(RejectReason, Counter)>,
    blocks_committed: Counter,
    duplicate_blocks: Counter,
    catalog_waits: Counter,
    samples_inserted: Counter,
    acks_published: Counter,
    db_errors: Counter,
    batch_seconds: Histogram,
    batch_messages: Histogram,
    cursor_jumps: Counter,
    connections: Counter,
    tls_failures: Vec<(TlsFailure, Counter)>,
    logins_ok: Counter,
    logins_failed: Counter,
    refused: Vec<(Refusal, Counter)>,
    pm_runs: Counter,
    pm_work_orders: Counter,
    pm_plan_errors: Counter,
}

/// Handles to the hub's metrics; cheap to clone.
#[derive(Clone)]
pub struct HubMetrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HubMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubMetrics")
    }
}

impl Default for HubMetrics {
    fn default() -> Self {
        Self::new()
    }
}

const KIND_LABELS: [&str; 4] = ["telemetry", "catalog", "status", "other"];

impl HubMetrics {
    pub fn new() -> HubMetrics {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(names::BATCH_SECONDS.to_owned()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(names::BATCH_MESSAGES.to_owned()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0],
                )
            });
        // Setting buckets only fails on an empty list, which these are not;
        // fall back to summaries rather than failing the hub.
        let builder = builder.unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let describe = |name: &'static str, help: &'static str| {
            recorder.describe_counter(KeyName::from(name), None, SharedString::from(help));
        };
        describe(
            names::RECEIVED,
            "MQTT messages received from gateways, by topic kind.",
        );
        describe(names::REJECTED, "Inbound messages refused, by reason.");
        describe(
            names::BLOCKS_COMMITTED,
            "Telemetry blocks committed to the database (first time).",
        );
        describe(
            names::DUPLICATE_BLOCKS,
            "Telemetry blocks received again after commit (acked, not stored twice).",
        );
        describe(
            names::CATALOG_WAITS,
            "Telemetry blocks deferred because the hub lacked their point catalog.",
        );
        describe(
            names::SAMPLES_INSERTED,
            "Samples inserted into the telemetry table.",
        );
        describe(names::ACKS_PUBLISHED, "Ack messages published to gateways.");
        describe(names::DB_ERRORS, "Database transactions that failed.");
        describe(
            names::BROKER_CURSOR_JUMPS,
            "Times the broker dropped messages before the hub read them.",
        );
        describe(
            names::LOGINS,
            "API logins, by result (failed: unknown user, wrong password or disabled account).",
        );
        describe(
            names::API_REFUSED,
            "API requests refused with 401 (unauthorized) or 403 (forbidden).",
        );
        describe(
            names::PM_RUNS,
            "Passes of the preventive-maintenance scheduler.",
        );
        describe(
            names::PM_WORK_ORDERS,
            "Work orders created by preventive-maintenance plans (scheduled and manual runs).",
        );
        describe(
            names::PM_PLAN_ERRORS,
            "Preventive-maintenance plan runs of the scheduler that failed (the plan is tried again next pass).",
        );
        recorder.describe_histogram(
            KeyName::from(names::BATCH_SECONDS),
            Some(metrics::Unit::Seconds),
            SharedString::from("Duration of one ingest database transaction."),
        );
        recorder.describe_histogram(
            KeyName::from(names::BATCH_MESSAGES),
            None,
            SharedString::from("Messages written per ingest transaction."),
        );
        let counter = |name: &'static str| recorder.register_counter(&Key::from_name(name), &META);
        let labelled = |name: &'static str, label: &'static str, value: &'static str| {
            recorder.register_counter(
                &Key::from_parts(name, vec![Label::new(label, value)]),
                &META,
            )
        };
        let received = KIND_LABELS.map(|k| labelled(names::RECEIVED, "kind", k));
        let rejected = RejectReason::ALL
            .iter()
            .map(|r| (*r, labelled(names::REJECTED, "reason", r.as_str())))
            .collect();
        let tls_failures = TlsFailure::ALL
            .iter()
            .map(|f| (*f, labelled(names::MQTT_REFUSED, "reason", f.as_str())))
            .collect();
        let refused = Refusal::ALL
            .iter()
            .map(|r| (*r, labelled(names::API_REFUSED, "reason", r.as_str())))
            .collect();
        let inner = Inner {
            logins_ok: labelled(names::LOGINS, "result", "ok"),
            logins_failed: labelled(names::LOGINS, "result", "failed"),
            refused,
            received,
            rejected,
            blocks_committed: counter(names::BLOCKS_COMMITTED),
            duplicate_blocks: counter(names::DUPLICATE_BLOCKS),
            catalog_waits: counter(names::CATALOG_WAITS),
            samples_inserted: counter(names::SAMPLES_INSERTED),
            acks_published: counter(names::ACKS_PUBLISHED),
            db_errors: counter(names::DB_ERRORS),
            batch_seconds: recorder
                .register_histogram(&Key::from_name(names::BATCH_SECONDS), &META),
            batch_messages: recorder
                .register_histogram(&Key::from_name(names::BATCH_MESSAGES), &META),
            cursor_jumps: counter(names::BROKER_CURSOR_JUMPS),
            connections: counter(names::MQTT_CONNECTIONS),
            tls_failures,
            pm_runs: counter(names::PM_RUNS),
            pm_work_orders: counter(names::PM_WORK_ORDERS),
            pm_plan_errors: counter(names::PM_PLAN_ERRORS),
            handle,
        };
        HubMetrics {
            inner: Arc::new(inner),
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.inner.handle.render()
    }

    /// Drains histogram buffers; call periodically.
    pub fn run_upkeep(&self) {
        self.inner.handle.run_upkeep();
    }

    /// Value of one series in the rendered output, e.g.
    /// `dcmms_hub_rejected_messages_total{reason="bad_payload"}`.
    pub fn value(&self, series: &str) -> Option<f64> {
        let text = self.render();
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Count of refusals for `reason` so far.
    pub fn rejected_total(&self, reason: RejectReason) -> f64 {
        self.value(&format!(
            "{}{{reason=\"{}\"}}",
            names::REJECTED,
            reason.as_str()
        ))
        .unwrap_or(0.0)
    }

    pub fn received(&self, kind: TopicKind) {
        let i = match kind {
            TopicKind::Telemetry => 0,
            TopicKind::Catalog => 1,
            TopicKind::Status => 2,
            _ => 3,
        };
        self.inner.received[i].increment(1);
    }

    pub fn rejected(&self, reason: RejectReason) {
        self.rejected_n(reason, 1);
    }

    pub fn rejected_n(&self, reason: RejectReason, n: u64) {
        if let Some((_, c)) = self.inner.rejected.iter().find(|(r, _)| *r == reason) {
            c.increment(n);
        }
    }

    pub fn blocks_committed(&self, n: u64) {
        self.inner.blocks_committed.increment(n);
    }

    pub fn duplicate_blocks(&self, n: u64) {
        self.inner.duplicate_blocks.increment(n);
    }

    pub fn catalog_waits(&self, n: u64) {
        self.inner.catalog_waits.increment(n);
    }

    pub fn samples_inserted(&self, n: u64) {
        self.inner.samples_inserted.increment(n);
    }

    pub fn acks_published(&self, n: u64) {
        self.inner.acks_published.increment(n);
    }

    pub fn db_error(&self) {
        self.inner.db_errors.increment(1);
    }

    pub fn batch(&self, seconds: f64, messages: usize) {
        self.inner.batch_seconds.record(seconds);
        self.inner.batch_messages.record(messages as f64);
    }

    pub fn cursor_jump(&self) {
        self.inner.cursor_jumps.increment(1);
    }

    pub fn connection_accepted(&self) {
        self.inner.connections.increment(1);
    }

    pub fn tls_failure(&self, failure: TlsFailure) {
        if let Some((_, c)) = self.inner.tls_failures.iter().find(|(f, _)| *f == failure) {
            c.increment(1);
        }
    }

    pub fn login_ok(&self) {
        self.inner.logins_ok.increment(1);
    }

    pub fn login_failed(&self) {
        self.inner.logins_failed.increment(1);
    }

    pub fn refused(&self, why: Refusal) {
        if let Some((_, c)) = self.inner.refused.iter().find(|(r, _)| *r == why) {
            c.increment(1);
        }
    }

    /// A pass of the preventive-maintenance scheduler.
    pub fn pm_run(&self) {
        self.inner.pm_runs.increment(1);
    }

    pub fn pm_work_orders_created(&self, n: u64) {
        self.inner.pm_work_orders.increment(n);
    }

    /// A plan the scheduler could not run.
    pub fn pm_plan_error(&self) {
        self.inner.pm_plan_errors.increment(1);
    }

    /// Count of API requests refused for `why` so far.
    pub fn refused_total(&self, why: Refusal) -> f64 {
        self.value(&format!(
            "{}{{reason=\"{}\"}}",
            names::API_REFUSED,
            why.as_str()
        ))
        .unwrap_or(0.0)
    }

    /// Count of logins with `result` (`ok` or `failed`) so far.
    pub fn logins_total(&self, result: &str) -> f64 {
        self.value(&format!("{}{{result=\"{result}\"}}", names::LOGINS))
            .unwrap_or(0.0)
    }

    /// Count of connections refused for `failure` so far.
    pub fn tls_failures_total(&self, failure: TlsFailure) -> f64 {
        self.value(&format!(
            "{}{{reason=\"{}\"}}",
            names::MQTT_REFUSED,
            failure.as_str()
        ))
        .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_and_are_per_instance() {
        let a = HubMetrics::new();
        let b = HubMetrics::new();
        a.rejected(RejectReason::BadPayload);
        a.rejected(RejectReason::BadPayload);
        a.received(TopicKind::Telemetry);
        a.batch(0.003, 7);
        assert_eq!(a.rejected_total(RejectReason::BadPayload), 2.0);
        assert_eq!(b.rejected_total(RejectReason::BadPayload), 0.0);
        let text = a.render();
        assert!(
            text.contains("dcmms_hub_received_messages_total{kind=\"telemetry\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dcmms_hub_ingest_batch_seconds_bucket"),
            "{text}"
        );
        assert!(
            text.contains("# HELP dcmms_hub_rejected_messages_total"),
            "{text}"
        );
        a.tls_failure(TlsFailure::Timeout);
        assert_eq!(a.tls_failures_total(TlsFailure::Timeout), 1.0);
        assert_eq!(b.tls_failures_total(TlsFailure::Timeout), 0.0);
    }

    #[test]
    fn label_values_are_unique() {
        let mut labels: Vec<_> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), RejectReason::ALL.len());
        let mut labels: Vec<_> = TlsFailure::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), TlsFailure::ALL.len());
    }

    #[test]
    fn limiter_logs_first_then_counts() {
        let mut l = LogLimiter::default();
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        l.last = Some(std::time::Instant::now() - LogLimiter::INTERVAL);
        assert_eq!(l.allow(), Some(2));
    }
}
