//! The gateway's HTTP endpoints: `/health`, `/metrics` (Prometheus),
//! `/api/v1/status` (devices, buffer, uplink), and the operator-only
//! `POST /api/v1/devices/{device}/commands` and `GET /api/v1/commands`
//! (see [`crate::commands`]).

use crate::commands::{CommandCenter, Refusal};
use crate::ring::{RingBuffer, RingStats};
use crate::uplink::UplinkHealth;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use dcmms_protocols_core::{Command, CommandValue, DeviceStats, DeviceStatsSnapshot};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What the endpoints read from.
#[derive(Clone)]
pub struct AppState {
    pub site: String,
    pub gateway: String,
    pub ring: Arc<RingBuffer>,
    pub uplink: Arc<UplinkHealth>,
    pub devices: Arc<Vec<DeviceRow>>,
    pub metrics: PrometheusHandle,
    pub started_ms: i64,
    pub commands: Arc<CommandCenter>,
}

/// A device as the status endpoint and the metrics show it.
#[derive(Debug, Clone)]
pub struct DeviceRow {
    pub name: String,
    /// `modbus_tcp`, `modbus_rtu`, `iec61850`, `opcua` or `dnp3`.
    pub protocol: &'static str,
    pub stats: Arc<DeviceStats>,
}

impl AppState {
    pub fn device_snapshots(&self) -> Vec<DeviceStatus> {
        self.devices
            .iter()
            .map(|d| DeviceStatus {
                name: d.name.clone(),
                protocol: d.protocol,
                stats: d.stats.snapshot(),
            })
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
    pub protocol: &'static str,
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
        devices: state.device_snapshots(),
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status_handler))
        .route("/api/v1/devices/{device}/commands", post(command_handler))
        .route("/api/v1/commands", get(command_log_handler))
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

/// Body of `POST /api/v1/devices/{device}/commands`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    pub point: String,
    pub value: CommandValue,
}

fn refusal(r: Refusal) -> axum::response::Response {
    let status = r.status();
    (
        status,
        Json(serde_json::json!({"error": {"code": r.code(), "message": r.to_string()}})),
    )
        .into_response()
}

async fn command_handler(
    State(state): State<AppState>,
    Path(device): Path<String>,
    headers: HeaderMap,
    body: Result<Json<CommandBody>, axum::extract::rejection::JsonRejection>,
) -> axum::response::Response {
    let operator = match state.commands.operator(&headers) {
        Ok(o) => o,
        Err(r) => return refusal(r),
    };
    let body = match body {
        Ok(Json(b)) => b,
        Err(e) => return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({"error": {"code": "invalid_body", "message": e.body_text()}})),
        )
            .into_response(),
    };
    let command = Command {
        point: body.point,
        value: body.value,
    };
    match state.commands.execute(&operator, &device, command).await {
        Ok(id) => (
            StatusCode::OK,
            Json(serde_json::json!({"id": id, "result": "ok"})),
        )
            .into_response(),
        Err(r) => refusal(r),
    }
}

#[derive(Debug, Deserialize)]
pub struct LogQuery {
    pub limit: Option<usize>,
}

async fn command_log_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LogQuery>,
) -> axum::response::Response {
    if let Err(r) = state.commands.operator(&headers) {
        return refusal(r);
    }
    let limit = q.limit.unwrap_or(100).min(10_000);
    match state.commands.log().tail(limit) {
        Ok(entries) => Json(serde_json::json!({ "commands": entries })).into_response(),
        Err(e) => refusal(Refusal::Log(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{token_hash, CommandLog, CommandsConfig, OperatorConfig};
    use crate::ring::RingConfig;
    use axum::body::Body;
    use axum::http::Request;
    use dcmms_protocols_core::{command_channel, CommandError};
    use http_body_util::BodyExt;
    use std::collections::HashMap;
    use tower::ServiceExt;

    async fn call(app: &Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn post(token: &str, device: &str, body: &str) -> Request<Body> {
        Request::post(format!("/api/v1/devices/{device}/commands"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    }

    #[tokio::test]
    async fn command_endpoint_checks_the_operator_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Arc::new(RingBuffer::open(RingConfig::new(dir.path().join("b.redb"))).unwrap());
        let (tx, mut port) = command_channel();
        tokio::spawn(async move {
            while let Some(req) = port.rx.recv().await {
                let ok = req.command.point == "p_limit"
                    && req.command.value == CommandValue::Analog(55.5);
                let r = if ok {
                    Ok(())
                } else {
                    Err(CommandError::NotWritable(req.command.point.clone()))
                };
                req.finish(r);
            }
        });
        let cfg = CommandsConfig {
            operators: vec![OperatorConfig {
                name: "alice".into(),
                token_sha256: token_hash("s3cret"),
            }],
            timeout_ms: 2000,
        };
        let log = CommandLog::open(&dir.path().join("commands.jsonl")).unwrap();
        let state = AppState {
            site: "s".into(),
            gateway: "g".into(),
            ring,
            uplink: Arc::new(UplinkHealth::default()),
            devices: Arc::new(vec![DeviceRow {
                name: "inv".into(),
                protocol: "modbus_rtu",
                stats: Arc::new(DeviceStats::default()),
            }]),
            metrics: crate::metrics::install(),
            started_ms: 0,
            commands: Arc::new(CommandCenter::new(
                &cfg,
                HashMap::from([("inv".to_string(), tx)]),
                log,
            )),
        };
        let app = app(state);
        let good = r#"{"point":"p_limit","value":{"kind":"analog","value":55.5}}"#;

        let (st, body) = call(&app, post("wrong", "inv", good)).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
        let (st, body) = call(&app, post("s3cret", "inv", good)).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        assert_eq!(body["id"], 1);
        let (st, body) = call(
            &app,
            post("s3cret", "inv", &good.replace("p_limit", "ac_power")),
        )
        .await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        assert_eq!(body["error"]["code"], "not_writable");
        let (st, body) = call(&app, post("s3cret", "other", good)).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "unknown_device");
        let (st, body) = call(&app, post("s3cret", "inv", r#"{"point":1}"#)).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["code"], "invalid_body");

        let req = Request::get("/api/v1/commands?limit=10")
            .header("authorization", "Bearer s3cret")
            .body(Body::empty())
            .unwrap();
        let (st, body) = call(&app, req).await;
        assert_eq!(st, StatusCode::OK);
        let results: Vec<_> = body["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["phase"].as_str().unwrap().to_owned(), e["result"].clone()))
            .collect();
        assert_eq!(results.len(), 4, "{body}");
        assert_eq!(results[1].1, "ok");
        assert_eq!(results[3].1, "not_writable");
        assert_eq!(body["commands"][0]["operator"], "alice");
        let req = Request::get("/api/v1/commands")
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&app, req).await.0, StatusCode::UNAUTHORIZED);

        // The status rows and the metrics name each device's protocol.
        let req = Request::get("/api/v1/status").body(Body::empty()).unwrap();
        let (st, body) = call(&app, req).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(body["devices"][0]["name"], "inv", "{body}");
        assert_eq!(body["devices"][0]["protocol"], "modbus_rtu", "{body}");
        let req = Request::get("/metrics").body(Body::empty()).unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.lines()
                .any(|l| l.starts_with("dcmms_gateway_device_connected")
                    && l.contains("device=\"inv\"")
                    && l.contains("protocol=\"modbus_rtu\"")),
            "{text}"
        );
    }
}
