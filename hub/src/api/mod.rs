//! The hub's HTTP API: `/api/v1/*`, `/health`, `/metrics`.
//!
//! [`app`] builds the router apart from any listener, so tests drive it
//! with `tower::ServiceExt::oneshot`. The routes and the OpenAPI document
//! come from one list ([`openapi`]). Every `/api/v1` route but login and
//! the document needs a bearer token ([`crate::auth::Authenticated`]);
//! `/health` and `/metrics` stay open for operators' probes and scrapers.
//! Every error is an [`ApiError`] with one JSON shape ([`ErrorBody`]);
//! internal errors are logged and answered with a generic message.

mod audit;
mod auth;
pub(crate) mod cmms;
pub mod error;
mod gateways;
pub mod openapi;
pub mod page;
mod telemetry;
pub mod users;

pub use error::{ApiError, ApiJson, ApiQuery, ErrorBody, FieldError};

use crate::auth::AuthSettings;
use crate::metrics::{HubMetrics, Refusal};
use crate::store::Store;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: HubMetrics,
    pub auth: AuthSettings,
}

impl AppState {
    /// State with the default token lifetime and password hashing cost.
    pub fn new(store: Store, metrics: HubMetrics) -> Self {
        AppState {
            store,
            metrics,
            auth: AuthSettings::default(),
        }
    }
}

/// Marks the fallback's 404 (no route matched), as opposed to a handler's
/// 404 (no such entity); tests use it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoRoute;

/// The API router.
pub fn app(state: AppState) -> Router {
    let (router, _doc) = openapi::routes().split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_refusals,
        ))
        .with_state(state)
}

/// Counts 401 and 403 answers, whichever handler or extractor gave them.
async fn count_refusals(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    match resp.status() {
        StatusCode::UNAUTHORIZED => state.metrics.refused(Refusal::Unauthorized),
        StatusCode::FORBIDDEN => state.metrics.refused(Refusal::Forbidden),
        _ => {}
    }
    resp
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: String,
    /// `sqlite` or `postgres`
    pub database: String,
}

/// Liveness and database reachability.
#[utoipa::path(
    get, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "The hub and its database answer", body = Health),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    ),
)]
async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok(Json(Health {
            status: "ok".to_owned(),
            database: state.store.kind().to_owned(),
        })),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            Err(ApiError::Unavailable)
        }
    }
}

/// The hub's metrics in the Prometheus text format.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")),
)]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn not_found() -> Response {
    let mut resp = ApiError::not_found("no such endpoint").into_response();
    resp.extensions_mut().insert(NoRoute);
    resp
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod auth_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod users_tests;

#[cfg(test)]
mod tests {
    use super::testing::{assert_error, TestApi};
    use axum::body::Body;
    use axum::http::{header, Method, Request, StatusCode};

    #[tokio::test]
    async fn health_metrics_and_unknown_paths() {
        let api = TestApi::sqlite().await;
        api.metrics
            .rejected(crate::metrics::RejectReason::BadPayload);
        // Open to operators: no token.
        let r = api.send(Method::GET, "/health", None, None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json["database"], "sqlite");
        let r = api.send(Method::GET, "/metrics", None, None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.text
                .contains("dcmms_hub_rejected_messages_total{reason=\"bad_payload\"} 1"),
            "{}",
            r.text
        );
        let r = api.send(Method::GET, "/api/v1/nope", None, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(r.no_route);
        assert_error(&r.json, "not_found");
        let r = api.send(Method::DELETE, "/health", None, None).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_error(&r.json, "method_not_allowed");

        // A closed pool: 503 with the same shape, no driver text.
        api.store.close().await;
        let r = api.send(Method::GET, "/health", None, None).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_error(&r.json, "unavailable");
        assert!(!r.text.to_lowercase().contains("pool"), "{}", r.text);
    }

    /// Body rejections come back in the one error shape, never as axum's
    /// plain text, and name the field at fault.
    #[tokio::test]
    async fn malformed_bodies_get_the_error_shape() {
        let api = TestApi::sqlite().await;
        let token = api.admin().await;
        let post = |body: &'static str, content_type: Option<&'static str>| {
            let mut req = Request::post("/api/v1/users")
                .header(header::AUTHORIZATION, format!("Bearer {token}"));
            if let Some(ct) = content_type {
                req = req.header(header::CONTENT_TYPE, ct);
            }
            req.body(Body::from(body)).unwrap()
        };
        let json = Some("application/json");

        let r = api.raw(post("{\"username\": ", json)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_error(&r.json, "bad_request");

        let r = api
            .raw(post(
                "{\"username\":\"x\",\"password\":\"long enough pw\"} {}",
                json,
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_error(&r.json, "bad_request");

        let r = api
            .raw(post("{\"username\":\"x\"}", Some("text/plain")))
            .await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
        assert_error(&r.json, "unsupported_media_type");
        let r = api.raw(post("{\"username\":\"x\"}", None)).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);

        let r = api.raw(post("{\"username\":\"x\"}", json)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_error(&r.json, "invalid");
        assert_eq!(
            r.json["error"]["fields"][0]["field"], "password",
            "{}",
            r.text
        );

        let r = api
            .raw(post(
                "{\"username\":\"x\",\"password\":\"long enough pw\",\"colour\":1}",
                json,
            ))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(
            r.json["error"]["fields"][0]["field"], "colour",
            "{}",
            r.text
        );

        let r = api
            .raw(post("{\"username\":\"x\",\"password\":\"long enough pw\",\"hourly_rate_cents\":\"lots\"}", json))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(
            r.json["error"]["fields"][0]["field"], "hourly_rate_cents",
            "{}",
            r.text
        );
        assert!(!r.text.contains("line"), "{}", r.text);

        let r = api
            .raw(post(
                "{\"username\":\"x\",\"password\":\"long enough pw\",\"kind\":\"boss\"}",
                json,
            ))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.json["error"]["fields"][0]["field"], "kind", "{}", r.text);

        let big = format!("{{\"username\":\"{}\"}}", "x".repeat(3 << 20));
        let req = Request::post("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(big))
            .unwrap();
        let r = api.raw(req).await;
        assert_eq!(
            r.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            &r.text[..r.text.len().min(200)]
        );
        assert_error(&r.json, "payload_too_large");
    }
}
