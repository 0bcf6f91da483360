//! Every internal metric of the gateway, named in one place and exported for
//! Prometheus at `/metrics`.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // A recorder may already be installed (tests running several
            // gateways in one process); the first one wins.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub fn samples_received(n: usize) {
    counter!("dcmms_gateway_samples_received_total").increment(n as u64);
}

pub fn block_committed(samples: usize, bytes: u64, took: Duration) {
    counter!("dcmms_gateway_blocks_committed_total").increment(1);
    counter!("dcmms_gateway_samples_committed_total").increment(samples as u64);
    counter!("dcmms_gateway_block_bytes_committed_total").increment(bytes);
    histogram!("dcmms_gateway_commit_seconds").record(took.as_secs_f64());
}

pub fn blocks_dropped(blocks: u64, samples: u64) {
    counter!("dcmms_gateway_buffer_dropped_blocks_total").increment(blocks);
    counter!("dcmms_gateway_buffer_dropped_samples_total").increment(samples);
}

pub fn block_sent(resend: bool) {
    let kind = if resend { "resend" } else { "first" };
    counter!("dcmms_gateway_uplink_blocks_sent_total", "kind" => kind).increment(1);
}

pub fn blocks_acked(committed: u64, rejected: u64) {
    counter!("dcmms_gateway_uplink_blocks_acked_total").increment(committed);
    counter!("dcmms_gateway_uplink_blocks_rejected_total").increment(rejected);
}

pub fn uplink_connected(up: bool) {
    gauge!("dcmms_gateway_uplink_connected").set(if up { 1.0 } else { 0.0 });
    if up {
        counter!("dcmms_gateway_uplink_connects_total").increment(1);
    }
}

pub fn uplink_error() {
    counter!("dcmms_gateway_uplink_errors_total").increment(1);
}

pub fn bad_downlink() {
    counter!("dcmms_gateway_uplink_bad_messages_total").increment(1);
}

/// Refreshes gauges from the ring buffer's and devices' current state.
pub fn refresh(ring: &crate::ring::RingStats, devices: &[crate::http::DeviceStatus]) {
    gauge!("dcmms_gateway_buffer_blocks").set(ring.blocks as f64);
    gauge!("dcmms_gateway_buffer_bytes").set(ring.bytes as f64);
    gauge!("dcmms_gateway_buffer_next_seq").set(ring.next_seq as f64);
    gauge!("dcmms_gateway_buffer_acked_through").set(ring.acked_through as f64);
    gauge!("dcmms_gateway_buffer_dropped_samples").set(ring.dropped_samples as f64);
    let age = ring
        .oldest_ts_ms
        .map(|t| (crate::pipeline::now_ms() - t).max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    gauge!("dcmms_gateway_buffer_oldest_age_seconds").set(age);
    for row in devices {
        let d = &row.stats;
        let l = [
            ("device", row.name.clone()),
            ("protocol", row.protocol.to_owned()),
        ];
        gauge!("dcmms_gateway_device_polls_ok", &l).set(d.polls_ok as f64);
        gauge!("dcmms_gateway_device_polls_failed", &l).set(d.polls_failed as f64);
        gauge!("dcmms_gateway_device_exceptions", &l).set(d.exceptions as f64);
        gauge!("dcmms_gateway_device_timeouts", &l).set(d.timeouts as f64);
        gauge!("dcmms_gateway_device_connected", &l).set(if d.connected { 1.0 } else { 0.0 });
    }
}
