//! Per-device acquisition counters.
//!
//! Written by the driver task with relaxed atomics, read at any time by the
//! gateway (status page, Prometheus export) through [`DeviceStats::snapshot`].
//! Counters only grow; `connected`, `last_success_ms` and `last_rtt_us` are
//! the latest observation.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

/// Live counters of one device.
#[derive(Debug, Default)]
pub struct DeviceStats {
    /// Poll cycles in which every read returned data.
    pub polls_ok: AtomicU64,
    /// Poll cycles in which at least one read failed (any cause below).
    pub polls_failed: AtomicU64,
    /// Error answers from the device itself (e.g. Modbus exception codes).
    pub exceptions: AtomicU64,
    /// Requests or connection attempts that got no answer in time.
    pub timeouts: AtomicU64,
    /// Connection refused/reset/closed and other socket errors.
    pub transport_errors: AtomicU64,
    /// Answers that were malformed or did not match the request.
    pub decode_errors: AtomicU64,
    /// Connection attempts made after the first one.
    pub reconnects: AtomicU64,
    /// Whether the driver holds a working connection now.
    pub connected: AtomicBool,
    /// Wall-clock ms of the last poll cycle in which every read succeeded.
    pub last_success_ms: AtomicI64,
    /// Round-trip time of the last successful request, in microseconds.
    pub last_rtt_us: AtomicU64,
}

/// A copy of [`DeviceStats`] at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceStatsSnapshot {
    pub polls_ok: u64,
    pub polls_failed: u64,
    pub exceptions: u64,
    pub timeouts: u64,
    pub transport_errors: u64,
    pub decode_errors: u64,
    pub reconnects: u64,
    pub connected: bool,
    pub last_success_ms: i64,
    pub last_rtt_us: u64,
}

impl DeviceStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> DeviceStatsSnapshot {
        let r = Ordering::Relaxed;
        DeviceStatsSnapshot {
            polls_ok: self.polls_ok.load(r),
            polls_failed: self.polls_failed.load(r),
            exceptions: self.exceptions.load(r),
            timeouts: self.timeouts.load(r),
            transport_errors: self.transport_errors.load(r),
            decode_errors: self.decode_errors.load(r),
            reconnects: self.reconnects.load(r),
            connected: self.connected.load(r),
            last_success_ms: self.last_success_ms.load(r),
            last_rtt_us: self.last_rtt_us.load(r),
        }
    }

    /// Adds one to a counter (relaxed: counters are statistics, not locks).
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    pub fn record_success(&self, ts_ms: i64) {
        self.last_success_ms.store(ts_ms, Ordering::Relaxed);
    }

    pub fn record_rtt_us(&self, rtt_us: u64) {
        self.last_rtt_us.store(rtt_us, Ordering::Relaxed);
    }
}

impl DeviceStatsSnapshot {
    /// Failed requests of every kind.
    pub fn errors(&self) -> u64 {
        self.exceptions + self.timeouts + self.transport_errors + self.decode_errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reflects_updates() {
        let s = DeviceStats::new();
        DeviceStats::bump(&s.polls_ok);
        DeviceStats::bump(&s.polls_ok);
        DeviceStats::bump(&s.exceptions);
        DeviceStats::bump(&s.timeouts);
        s.set_connected(true);
        s.record_success(42);
        s.record_rtt_us(350);
        let snap = s.snapshot();
        assert_eq!(snap.polls_ok, 2);
        assert_eq!(snap.exceptions, 1);
        assert_eq!(snap.errors(), 2);
        assert!(snap.connected);
        assert_eq!(snap.last_success_ms, 42);
        assert_eq!(snap.last_rtt_us, 350);
    }

    #[test]
    fn snapshot_serializes_to_named_fields() {
        let s = DeviceStats::new();
        DeviceStats::bump(&s.reconnects);
        let json = serde_json::to_value(s.snapshot()).unwrap();
        assert_eq!(json["reconnects"], 1);
        assert_eq!(json["connected"], false);
        assert_eq!(json.as_object().unwrap().len(), 10);
    }
}
