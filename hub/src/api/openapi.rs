//! The OpenAPI 3.1 document, generated from the handlers, and the router
//! built from the same list, so the two cannot drift apart.
//!
//! To add a route: annotate the handler with `#[utoipa::path(...)]`
//! (method, path, `tag`, `params`, `request_body`, the success and
//! route-specific error responses with `body = ErrorBody`, and
//! `security(("bearer" = []))` unless it is public), then add it to
//! [`routes`] with `routes!(module::handler)`, one `routes!` per path
//! (several methods of one path may share one). Never use a plain
//! `.route()`: the test below fails for a route the document does not
//! list. [`document`] adds the error responses every operation can give
//! (401 and 403 when secured, 400/413/415/422 when it takes a body, 500).

use super::{audit, auth, gateways, telemetry, users, AppState};
use axum::Json;
use std::sync::OnceLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Name of the bearer security scheme in the document.
pub const BEARER: &str = "bearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "dCMMS hub API",
        description = "Fleet hub of dCMMS Edge: telemetry, gateways, users and the audit log. \
                       Log in with `POST /api/v1/auth/login`, then send `Authorization: Bearer <token>`. \
                       Every error is `{\"error\":{\"code\":..,\"message\":..}}` (see `ErrorBody`). \
                       Lists page with `limit` (at most 1000) and `cursor` (the previous page's `next`)."
    ),
    components(schemas(super::ErrorBody, super::FieldError, super::error::ErrorCode)),
    tags(
        (name = "auth", description = "Login, logout, the caller's account"),
        (name = "users", description = "User administration (fleet administrators)"),
        (name = "audit", description = "The append-only audit log"),
        (name = "telemetry", description = "Stored telemetry and the gateway fleet"),
        (name = "operations", description = "Health, metrics and this document (no authentication)"),
    )
)]
struct ApiDoc;

/// Every route of the API, each with its documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(super::health))
        .routes(routes!(super::metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(telemetry::get_telemetry))
        .routes(routes!(gateways::list_gateways))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::change_password))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::get_user, users::patch_user))
        .routes(routes!(users::put_site_role, users::delete_site_role))
        .routes(routes!(audit::list_audit))
        .merge(super::cmms::work::routes())
        .merge(super::cmms::registry::routes())
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn add_common_errors(op: &mut Operation) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = op.request_body.is_some();
    let has_query = op.parameters.as_ref().is_some_and(|ps| {
        ps.iter()
            .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query))
    });
    let mut common: Vec<(&str, &str)> =
        vec![("500", "Internal error (details are logged, never sent)")];
    if secured {
        common.push(("401", "No valid bearer token"));
        common.push((
            "403",
            "The caller lacks a permission (`permission`, `site`)",
        ));
    }
    if has_body {
        common.push(("400", "The body is not valid JSON"));
        common.push(("413", "The body is too large"));
        common.push(("415", "The body is not `application/json`"));
        common.push(("422", "A field is missing, unknown or invalid (`fields`)"));
    }
    if has_query {
        common.push(("400", "A query parameter is invalid"));
    }
    for (status, description) in common {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    }
}

/// The document served at `/api/v1/openapi.json`.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = routes().into_openapi();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("dcmms_<64 hex digits>")
                    .description(Some("A token from `POST /api/v1/auth/login`"))
                    .build(),
            ),
        );
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_common_errors(op);
            }
        }
        doc
    })
}

/// This document.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)),
)]
pub async fn openapi_json() -> Json<&'static OpenApi> {
    Json(document())
}

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod tests;
