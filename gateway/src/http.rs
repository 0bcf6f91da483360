//! The gateway's HTTP endpoints: `/health`, `/metrics` (Prometheus) and
//! `/api/v1/status` (devices, buffer, uplink).

use crate::ring::{RingBuffer, RingStats};
use crate::uplink::UplinkHealth;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use dcmms_protocols_core::{DeviceStats, DeviceStatsSnapshot};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What the endpoints read from.
#[derive(Clone)]
pub struct AppState {
    pub site: String,
    pub gateway: String,
    pub ring: Arc<RingBuffer>,
    pub uplink: Arc<UplinkHealth>,
    pub devices: Arc<Vec<(String, Arc<DeviceStats>)>>,
    pub metrics: PrometheusHandle,
    pub started_ms: i64,
}

impl AppState {
    pub fn device_snapshots(&self) -> Vec<(String, DeviceStatsSnapshot)> {
        self.devices
            .iter()
            .map(|(n, s)| (n.clone(), s.snapshot()))
            .collect()
    }
}

#[derive(Serialize)]
pub struct Status {
    pub site: String,
    pub gateway: String,
    pub version: &'static str,
    pub uptime_s: i64,
    pub uplink: UplinkStatus,
    pub buffer: BufferStatus,
    pub devices: Vec<DeviceStatus>,
}

#[derive(Serialize)]
pub struct UplinkStatus {
    pub connected: bool,
    pub connects: u64,
    pub blocks_sent: u64,
    pub blocks_acked: u64,
    pub last_error: Option<String>,
}

#[derive(Serialize)]
pub struct BufferStatus {
    pub blocks: u64,
    pub bytes: u64,
    pub oldest_age_s: Option<f64>,
    pub next_seq: u64,
    pub acked_through: u64,
    pub dropped_blocks: u64,
    pub dropped_samples: u64,
}

#[derive(Serialize)]
pub struct DeviceStatus {
    pub name: String,
    #[serde(flatten)]
    pub stats: DeviceStatsSnapshot,
}

impl BufferStatus {
    pub fn from_stats(s: &RingStats, now_ms: i64) -> BufferStatus {
        BufferStatus {
            blocks: s.blocks,
            bytes: s.bytes,
            oldest_age_s: s.oldest_ts_ms.map(|t| (now_ms - t).max(0) as f64 / 1000.0),
            next_seq: s.next_seq,
            acked_through: s.acked_through,
            dropped_blocks: s.dropped_blocks,
            dropped_samples: s.dropped_samples,
        }
    }
}

pub fn status(state: &AppState) -> Status {
    let now = crate::pipeline::now_ms();
    let u = &state.uplink;
    Status {
        site: state.site.clone(),
        gateway: state.gateway.clone(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: (now - state.started_ms) / 1000,
        uplink: UplinkStatus {
            connected: u.connected.load(Ordering::Relaxed),
            connects: u.connects.load(Ordering::Relaxed),
            blocks_sent: u.blocks_sent.load(Ordering::Relaxed),
            blocks_acked: u.blocks_acked.load(Ordering::Relaxed),
            last_error: u.last_error(),
        },
        buffer: BufferStatus::from_stats(&state.ring.stats(), now),
        devices: state
            .device_snapshots()
            .into_iter()
            .map(|(name, stats)| DeviceStatus { name, stats })
            .collect(),
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status_handler))
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    // The buffer answering a stats read is what "healthy" means here; the
    // uplink may legitimately be down for days.
    let s = state.ring.stats();
    (
        StatusCode::OK,
        Json(serde_json::json!({"status": "ok", "buffer_blocks": s.blocks})),
    )
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::metrics::refresh(&state.ring.stats(), &state.device_snapshots());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
}

async fn status_handler(State(state): State<AppState>) -> Json<Status> {
    Json(status(&state))
}
