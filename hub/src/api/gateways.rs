//! `GET /api/v1/gateways`: the fleet list with each gateway's delivery
//! progress and its last reported buffer state.

use super::telemetry::format_ms;
use super::{ApiError, AppState};
use crate::store::GatewaySummary;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

fn gateway_json(g: &GatewaySummary) -> Value {
    let status = g.status.as_ref();
    json!({
        "site": g.site,
        "gateway": g.gateway,
        "last_seen": format_ms(g.last_seen_ms),
        // Every block up to this sequence is committed (or refused for good).
        "acked_seq": g.acked_seq,
        "max_seq": g.max_seq,
        "catalog_len": g.catalog_len,
        // From the gateway's last status; false until one arrives. The
        // broker publishes the gateway's last will (online = false) when
        // its connection drops.
        "online": status.is_some_and(|s| s.online),
        "status_time": status.map(|s| format_ms(s.ts_ms)),
        "software_version": status.map(|s| s.software_version.as_str()),
        "buffer": status.map(|s| json!({
            "blocks": s.buffer_blocks,
            "bytes": s.buffer_bytes,
            "oldest_age_ms": s.oldest_ts_ms.map(|t| s.ts_ms.saturating_sub(t).max(0)),
        })),
        "dropped": status.map(|s| json!({
            "blocks": s.dropped_blocks,
            "samples": s.dropped_samples,
        })),
    })
}

pub async fn list_gateways(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let gateways = state.store.gateways().await?;
    Ok(Json(json!({
        "gateways": gateways.iter().map(gateway_json).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use crate::api::tests::call;
    use crate::api::{app, AppState};
    use crate::ingest::apply_batch;
    use crate::ingest::plan::{Body, Inbound};
    use crate::metrics::HubMetrics;
    use axum::http::StatusCode;
    use dcmms_shared::{GatewayStatus, Topic, TopicKind};

    #[tokio::test]
    async fn lists_status_and_progress() {
        let (store, _dir) = crate::store::testing::sqlite().await;
        let status = Inbound {
            topic: Topic::new("wind-2", "gw-1", TopicKind::Status).unwrap(),
            body: Body::Status(GatewayStatus {
                ts_ms: 1_767_225_660_000,
                online: true,
                software_version: "0.1.0".into(),
                buffer_blocks: 12,
                buffer_bytes: 3456,
                oldest_ts_ms: Some(1_767_225_600_000),
                dropped_blocks: 1,
                dropped_samples: 99,
                ..Default::default()
            }),
        };
        apply_batch(&store, &[status], 1_767_225_661_000)
            .await
            .unwrap();
        let app = app(AppState {
            store,
            metrics: HubMetrics::new(),
        });
        let (code, json, _) = call(&app, "/api/v1/gateways").await;
        assert_eq!(code, StatusCode::OK);
        let g = &json["gateways"][0];
        assert_eq!(g["site"], "wind-2");
        assert_eq!(g["gateway"], "gw-1");
        assert_eq!(g["online"], true);
        assert_eq!(g["last_seen"], "2026-01-01T00:01:01.000Z");
        assert_eq!(g["acked_seq"], 0);
        assert_eq!(g["buffer"]["blocks"], 12);
        assert_eq!(g["buffer"]["oldest_age_ms"], 60_000);
        assert_eq!(g["dropped"]["samples"], 99);
        assert_eq!(g["software_version"], "0.1.0");
    }
}
