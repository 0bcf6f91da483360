//! Sites, assets, parts stock, costs, and CSV import/export: the registers
//! that work orders refer to.
//!
//! One file per resource ([`sites`], [`assets`], [`parts`], [`costs`]),
//! the CSV onboarding routes ([`csv_import`] checks a file, [`csv_apply`]
//! writes it, [`csv_export`]) and the request and response types with
//! their field checks ([`dto`]). Every handler authenticates,
//! checks the caller's permission at the site concerned with
//! [`crate::auth::require`], calls `store::cmms` (which calls the domain),
//! records an audit entry in the same transaction as the write, and
//! commits. Nothing here decides a rule of the domain: field checks are
//! the patterns and bounds the OpenAPI document states (values are
//! refused, never trimmed), followed by the CSV formats' own checks, so
//! whatever the API accepts exports to a file that imports back; the
//! hierarchy and stock rules are the store's.
//!
//! Refusals: a record at a site the caller does not see is answered 404
//! when addressed by id alone (its existence is not disclosed) and 403
//! when the caller named the site; hierarchy and stock rules give 409 with
//! the domain's code as `rule`. Money is never a float: amounts are given
//! twice, as a decimal string (`"12.34"`) and as integer cents
//! (`*_cents`); request bodies take cents.

mod assets;
mod costs;
mod csv_apply;
mod csv_export;
mod csv_import;
mod dto;
mod parts;
mod sites;

use crate::api::{ApiError, AppState, FieldError};
use crate::audit::AuditEntry;
use crate::auth::{now_ms, Authenticated};
use crate::store::CmmsError;
use dcmms_shared::cmms::SiteId;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(tags(
    (name = "sites", description = "Sites: the top of every asset hierarchy and the unit of access"),
    (name = "assets", description = "The asset register: equipment in up to five levels under each site, and the telemetry points measured on it"),
    (name = "parts", description = "Spare parts and their stock, per site"),
    (name = "costs", description = "Maintenance cost roll-ups (labour and parts)"),
    (name = "onboarding", description = "CSV import and export of sites, assets, point links and parts"),
))]
struct RegistryDoc;

/// The routes of this module, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(RegistryDoc::openapi())
        .routes(routes!(sites::list_sites, sites::create_site))
        .routes(routes!(sites::get_site, sites::patch_site))
        .routes(routes!(assets::list_assets, assets::create_asset))
        .routes(routes!(assets::get_asset, assets::patch_asset))
        .routes(routes!(assets::list_children))
        .routes(routes!(assets::put_points))
        .routes(routes!(parts::list_parts, parts::create_part))
        .routes(routes!(parts::get_part, parts::patch_part))
        .routes(routes!(parts::receive_part))
        .routes(routes!(parts::adjust_part))
        .routes(routes!(costs::get_costs))
        .routes(routes!(csv_export::export_file))
        .merge(csv_import::routes())
}

/// Every (method, path) [`routes`] serves; the OpenAPI test checks it.
#[cfg(test)]
pub(crate) const SURFACE: &[(&str, &str)] = &[
    ("GET", "/api/v1/sites"),
    ("POST", "/api/v1/sites"),
    ("GET", "/api/v1/sites/{id}"),
    ("PATCH", "/api/v1/sites/{id}"),
    ("GET", "/api/v1/assets"),
    ("POST", "/api/v1/assets"),
    ("GET", "/api/v1/assets/{id}"),
    ("PATCH", "/api/v1/assets/{id}"),
    ("GET", "/api/v1/assets/{id}/children"),
    ("PUT", "/api/v1/assets/{id}/points"),
    ("GET", "/api/v1/sites/{site}/parts"),
    ("POST", "/api/v1/sites/{site}/parts"),
    ("GET", "/api/v1/sites/{site}/parts/{part}"),
    ("PATCH", "/api/v1/sites/{site}/parts/{part}"),
    ("POST", "/api/v1/sites/{site}/parts/{part}/receive"),
    ("POST", "/api/v1/sites/{site}/parts/{part}/adjust"),
    ("GET", "/api/v1/costs"),
    ("POST", "/api/v1/import/{kind}"),
    ("GET", "/api/v1/export/{kind}"),
];

/// The API's answer to a store refusal. Field-shaped refusals are 422
/// naming the field; rules of the domain are 409 with their code.
pub(crate) fn refusal(e: CmmsError) -> ApiError {
    match e {
        CmmsError::NotFound { entity, id } => {
            ApiError::not_found(format!("no {} {id}", entity.replace('_', " ")))
        }
        CmmsError::Duplicate { entity, id } => ApiError::conflict(
            "duplicate",
            format!("{} {id} already exists", entity.replace('_', " ")),
        ),
        CmmsError::Asset(a) => {
            use dcmms_shared::cmms::AssetError;
            let field = match a {
                AssetError::BadPoint { .. } | AssetError::PointAtOtherSite { .. } => "points",
                _ => "name",
            };
            ApiError::invalid_field(field, a.to_string())
        }
        CmmsError::Stock(s) => ApiError::conflict(s.code(), s.to_string()),
        CmmsError::Invalid { code, message } => {
            let field = match code {
                "bad_site_id" => "id",
                "bad_site_name" | "part_name_required" => "name",
                "bad_timezone" => "timezone",
                "negative_cost" => "unit_cost_cents",
                _ => ".",
            };
            ApiError::invalid_field(field, message)
        }
        CmmsError::Db(e) => ApiError::internal(e),
        other => {
            let rule = other.code();
            ApiError::conflict(rule, other.to_string())
        }
    }
}

/// 422 for the fields of a record.
fn invalid(fields: Vec<FieldError>) -> ApiError {
    match ApiError::invalid(fields) {
        Err(e) => e,
        Ok(()) => ApiError::bad_request("the record is invalid"),
    }
}

/// Now, for the store's timestamps.
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// An audit entry by the caller.
fn entry(
    auth: &Authenticated,
    action: &'static str,
    entity_kind: &'static str,
    entity_id: String,
    site: Option<SiteId>,
    before: Option<Value>,
    after: Option<Value>,
) -> AuditEntry {
    AuditEntry {
        at_ms: now_ms(),
        actor: auth.actor(),
        action,
        entity_kind,
        entity_id,
        site,
        before,
        after,
    }
}

/// A view as audit JSON.
fn json_of<T: serde::Serialize>(view: &T) -> Option<Value> {
    serde_json::to_value(view).ok()
}

/// A site named in a path or query, checked like a site id.
fn site_param(site: &str) -> Result<SiteId, ApiError> {
    crate::api::users::parse_site(site)
}

#[cfg(test)]
mod testkit;

#[cfg(test)]
mod assets_tests;
#[cfg(test)]
mod costs_tests;
#[cfg(test)]
mod csv_tests;
#[cfg(test)]
mod doc_tests;
#[cfg(test)]
mod parts_tests;
#[cfg(test)]
mod sites_tests;
