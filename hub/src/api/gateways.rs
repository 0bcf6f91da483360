//! `GET /api/v1/gateways`: the fleet list with each gateway's delivery
//! progress and its last reported buffer state, limited to the sites the
//! caller sees.

use super::telemetry::format_ms;
use super::{ApiError, AppState};
use crate::auth::Authenticated;
use crate::store::GatewaySummary;
use axum::extract::State;
use axum::Json;
use dcmms_shared::cmms::SiteId;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayBuffer {
    pub blocks: u64,
    pub bytes: u64,
    /// Age of the oldest buffered sample, at the time of the status.
    pub oldest_age_ms: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayDropped {
    pub blocks: u64,
    pub samples: u64,
}

/// One gateway.
#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayView {
    pub site: String,
    pub gateway: String,
    #[schema(format = DateTime)]
    pub last_seen: String,
    /// Every block up to this sequence is committed (or refused for good).
    pub acked_seq: i64,
    pub max_seq: i64,
    pub catalog_len: i64,
    /// From the gateway's last status; false until one arrives. The broker
    /// publishes the gateway's last will (online = false) when its
    /// connection drops.
    pub online: bool,
    pub status_time: Option<String>,
    pub software_version: Option<String>,
    pub buffer: Option<GatewayBuffer>,
    pub dropped: Option<GatewayDropped>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayList {
    pub gateways: Vec<GatewayView>,
}

fn gateway_view(g: &GatewaySummary) -> GatewayView {
    let status = g.status.as_ref();
    GatewayView {
        site: g.site.clone(),
        gateway: g.gateway.clone(),
        last_seen: format_ms(g.last_seen_ms),
        acked_seq: g.acked_seq,
        max_seq: g.max_seq,
        catalog_len: g.catalog_len,
        online: status.is_some_and(|s| s.online),
        status_time: status.map(|s| format_ms(s.ts_ms)),
        software_version: status.map(|s| s.software_version.clone()),
        buffer: status.map(|s| GatewayBuffer {
            blocks: s.buffer_blocks,
            bytes: s.buffer_bytes,
            oldest_age_ms: s.oldest_ts_ms.map(|t| s.ts_ms.saturating_sub(t).max(0)),
        }),
        dropped: status.map(|s| GatewayDropped {
            blocks: s.dropped_blocks,
            samples: s.dropped_samples,
        }),
    }
}

/// The gateways of the sites the caller sees, by site then name.
#[utoipa::path(
    get, path = "/api/v1/gateways", tag = "telemetry",
    responses((status = 200, description = "The gateways", body = GatewayList)),
    security(("bearer" = [])),
)]
pub async fn list_gateways(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<GatewayList>, ApiError> {
    let scope = auth.access.visible_sites();
    let gateways = state.store.gateways().await?;
    Ok(Json(GatewayList {
        gateways: gateways
            .iter()
            .filter(|g| scope.contains(&SiteId::from(g.site.as_str())))
            .map(gateway_view)
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use crate::api::testing::TestApi;
    use crate::ingest::apply_batch;
    use crate::ingest::plan::{Body, Inbound};
    use axum::http::{Method, StatusCode};
    use dcmms_shared::cmms::role::UserKind;
    use dcmms_shared::cmms::Role;
    use dcmms_shared::{GatewayStatus, Topic, TopicKind};

    fn status(site: &str, gw: &str) -> Inbound {
        Inbound {
            topic: Topic::new(site, gw, TopicKind::Status).unwrap(),
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
        }
    }

    fn sites(json: &serde_json::Value) -> Vec<String> {
        json["gateways"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                format!(
                    "{}/{}",
                    g["site"].as_str().unwrap(),
                    g["gateway"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn lists_status_and_progress_of_visible_sites() {
        let api = TestApi::sqlite().await;
        apply_batch(
            &api.store,
            &[status("wind-2", "gw-1"), status("solar-1", "gw-a")],
            1_767_225_661_000,
        )
        .await
        .unwrap();
        let admin = api.admin().await;
        let r = api.get("/api/v1/gateways", &admin).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(sites(&r.json), ["solar-1/gw-a", "wind-2/gw-1"]);
        let g = &r.json["gateways"][1];
        assert_eq!(g["site"], "wind-2");
        assert_eq!(g["gateway"], "gw-1");
        assert_eq!(g["online"], true);
        assert_eq!(g["last_seen"], "2026-01-01T00:01:01.000Z");
        assert_eq!(g["acked_seq"], 0);
        assert_eq!(g["buffer"]["blocks"], 12);
        assert_eq!(g["buffer"]["oldest_age_ms"], 60_000);
        assert_eq!(g["dropped"]["samples"], 99);
        assert_eq!(g["software_version"], "0.1.0");

        // A contractor sees only their site; staff without roles see none.
        api.add_user(
            "joe",
            UserKind::Contractor,
            false,
            &[("wind-2", Role::Viewer)],
        )
        .await;
        api.add_user("bea", UserKind::Staff, false, &[]).await;
        let joe = api.login("joe").await;
        let r = api.get("/api/v1/gateways", &joe).await;
        assert_eq!(sites(&r.json), ["wind-2/gw-1"]);
        let bea = api.login("bea").await;
        let r = api.get("/api/v1/gateways", &bea).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(sites(&r.json).is_empty());

        let r = api.send(Method::GET, "/api/v1/gateways", None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
}
