//! The hub's HTTP API: `/api/v1/*`, `/health`, `/metrics`.
//!
//! [`app`] builds the router apart from any listener, so tests drive it
//! with `tower::ServiceExt::oneshot`. Every error is an [`ApiError`] with
//! one JSON shape, `{"error":{"code":..,"message":..}}`; database errors
//! are logged and answered with a generic message, never their text.

mod gateways;
mod telemetry;

use crate::metrics::HubMetrics;
use crate::store::{Store, StoreError};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: HubMetrics,
}

/// The API router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/telemetry", get(telemetry::get_telemetry))
        .route("/api/v1/gateways", get(gateways::list_gateways))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

/// An API error; renders as `{"error":{"code":..,"message":..}}`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the database is unavailable")]
    Unavailable,
    /// Logged with its cause; the client sees a generic message.
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "API request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let body = json!({ "error": { "code": code, "message": self.to_string() } });
        (status, Json(body)).into_response()
    }
}

async fn health(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok(Json(
            json!({ "status": "ok", "database": state.store.kind() }),
        )),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            Err(ApiError::Unavailable)
        }
    }
}

async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".to_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    pub async fn call(app: &Router, uri: &str) -> (StatusCode, serde_json::Value, String) {
        let resp = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        (status, json, text)
    }

    pub fn assert_error(json: &serde_json::Value, code: &str) {
        assert_eq!(json["error"]["code"], code, "{json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{json}"
        );
        assert_eq!(json.as_object().unwrap().len(), 1, "{json}");
    }

    #[tokio::test]
    async fn health_metrics_and_unknown_paths() {
        let (store, _dir) = crate::store::testing::sqlite().await;
        let metrics = HubMetrics::new();
        metrics.rejected(crate::metrics::RejectReason::BadPayload);
        let app = app(AppState {
            store: store.clone(),
            metrics,
        });
        let (status, json, _) = call(&app, "/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json["database"], "sqlite");
        let (status, _, text) = call(&app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.contains("dcmms_hub_rejected_messages_total{reason=\"bad_payload\"} 1"),
            "{text}"
        );
        let (status, json, _) = call(&app, "/api/v1/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_error(&json, "not_found");

        // A closed pool: 503 with the same shape, no driver text.
        store.close().await;
        let (status, json, text) = call(&app, "/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_error(&json, "unavailable");
        assert!(!text.to_lowercase().contains("pool"), "{text}");
    }
}
