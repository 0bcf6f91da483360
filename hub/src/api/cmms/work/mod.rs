//! Work orders and preventive-maintenance plans: `/api/v1/work-orders*`
//! and `/api/v1/pm-plans*`.
//!
//! Every handler resolves the caller at the work order's (or plan's) site
//! and checks with [`crate::auth::require`] (403 naming the permission and
//! the site) the permission of the least role that may ever take the
//! action there: `view` to read, `request_work` to create, `execute_work`
//! (a technician) for transitions and edits, `comment` for comments,
//! `manage_stock` for reservations, `manage_plans` for plans. Every other
//! rule is the domain's, through `store::cmms`: a refusal that depends on
//! the work order (its state, its assignees, its checklist, the caller
//! being a supervisor or its requester) is a 409 whose `rule` is the
//! domain's code. A work order or plan at a site the caller cannot see at
//! all answers 404, as if it did not exist. Request bodies are checked
//! first, as the document describes them (422 naming each field). Every
//! write records its audit entry (the work order as the API shows it,
//! before and after) in the same transaction as the change.
//!
//! Optimistic concurrency: writes take an optional `expected_version` in
//! the body (not `If-Match`); a mismatch is 409 with rule
//! `version_conflict`.

mod dto;
mod edits;
mod pm;
mod reservations;
mod transitions;
mod work_orders;

#[cfg(test)]
mod pm_tests;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod transitions_tests;
#[cfg(test)]
mod work_orders_tests;

pub(crate) use dto::WorkOrderView;
pub(crate) use pm::pm_plan_audit;

use crate::api::{ApiError, AppState, FieldError};
use crate::audit::{AuditActor, AuditEntry};
use crate::auth::Authenticated;
use crate::store::cmms::work_orders::{self as store_wo, StoredWorkOrder};
use crate::store::cmms::{costs, parts, CmmsError, Conn, Db};
use crate::store::{both, Store, Tx};
use dcmms_shared::cmms::{cost, Permission, Role, SiteId, UserId, WorkOrderId};
use std::collections::HashMap;
use utoipa::openapi::schema::{AdditionalProperties, Schema};
use utoipa::openapi::RefOr;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Request schemas that are enums: utoipa leaves their object variants
/// open, but serde refuses unknown fields in them (`deny_unknown_fields`),
/// so [`routes`] closes them in the document (`additionalProperties:
/// false`), as utoipa does by itself for such structs.
const CLOSED_ENUMS: &[&str] = &[
    "TransitionRequest",
    "WorkOrderEdit",
    "ChecklistInput",
    "ChecklistTaskKind",
    "PmTrigger",
    "PmMeterRule",
];

/// Sets `additionalProperties: false` on every object with properties in
/// `schema` (inline ones; references are schemas of their own).
fn close_objects(schema: &mut Schema) {
    match schema {
        Schema::Object(o) => {
            if !o.properties.is_empty() {
                o.additional_properties
                    .get_or_insert_with(|| Box::new(AdditionalProperties::FreeForm(false)));
            }
            for p in o.properties.values_mut() {
                if let RefOr::T(s) = p {
                    close_objects(s);
                }
            }
        }
        Schema::OneOf(one) => {
            for item in &mut one.items {
                if let RefOr::T(s) = item {
                    close_objects(s);
                }
            }
        }
        _ => {}
    }
}

/// The routes of this module, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    let mut router = unclosed_routes();
    if let Some(components) = router.get_openapi_mut().components.as_mut() {
        for name in CLOSED_ENUMS {
            if let Some(RefOr::T(s)) = components.schemas.get_mut(*name) {
                close_objects(s);
            }
        }
    }
    router
}

fn unclosed_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            work_orders::list_work_orders,
            work_orders::create_work_order
        ))
        .routes(routes!(transitions::transition_table))
        .routes(routes!(work_orders::get_work_order))
        .routes(routes!(transitions::post_transition))
        .routes(routes!(edits::post_edit))
        .routes(routes!(reservations::reserve_part))
        .routes(routes!(reservations::release_part))
        .routes(routes!(pm::list_plans, pm::create_plan))
        .routes(routes!(pm::get_plan, pm::put_plan))
        .routes(routes!(pm::generate_plan))
}

/// Every (method, path) [`routes`] serves; the OpenAPI test checks it.
#[cfg(test)]
pub(crate) const SURFACE: &[(&str, &str)] = &[
    ("GET", "/api/v1/work-orders"),
    ("POST", "/api/v1/work-orders"),
    ("GET", "/api/v1/work-orders/transitions"),
    ("GET", "/api/v1/work-orders/{id}"),
    ("POST", "/api/v1/work-orders/{id}/transitions"),
    ("POST", "/api/v1/work-orders/{id}/edits"),
    ("POST", "/api/v1/work-orders/{id}/parts"),
    ("DELETE", "/api/v1/work-orders/{id}/parts/{part}"),
    ("GET", "/api/v1/pm-plans"),
    ("POST", "/api/v1/pm-plans"),
    ("GET", "/api/v1/pm-plans/{id}"),
    ("PUT", "/api/v1/pm-plans/{id}"),
    ("POST", "/api/v1/pm-plans/{id}/generate"),
];

/// The API answer to a store refusal. Domain and stock refusals are 409
/// with the rule's code; a version mismatch is 409 `version_conflict`;
/// database failures are logged and answered generically (503 when a
/// retry may succeed).
pub(crate) fn store_error(e: CmmsError) -> ApiError {
    match e {
        CmmsError::NotFound { entity, id } => {
            ApiError::not_found(format!("no {} {id}", entity.replace('_', " ")))
        }
        CmmsError::Duplicate { entity, id } => ApiError::conflict(
            "duplicate",
            format!("{} {id} already exists", entity.replace('_', " ")),
        ),
        CmmsError::Conflict { expected, actual } => ApiError::conflict(
            "version_conflict",
            format!("the record is at version {actual}, not {expected}: read it again"),
        ),
        CmmsError::Invalid {
            code: "invalid_cursor",
            ..
        } => ApiError::bad_request(
            "`cursor` is not a value returned as `next` by this listing and sort",
        ),
        e @ CmmsError::Db(_) if e.is_transient() => {
            tracing::warn!(error = %e, "CMMS write failed on a transient database error");
            ApiError::Unavailable
        }
        CmmsError::Db(e) => ApiError::internal(e),
        e => ApiError::conflict(e.code(), e.to_string()),
    }
}

/// An audit entry of a change at `site`, made now by `actor`.
pub(crate) fn entry(
    actor: AuditActor,
    action: &'static str,
    entity_kind: &'static str,
    entity_id: String,
    site: &SiteId,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> AuditEntry {
    AuditEntry {
        at_ms: crate::auth::now_ms(),
        actor,
        action,
        entity_kind,
        entity_id,
        site: Some(site.clone()),
        before,
        after,
    }
}

/// A value as audit JSON (`None` if it does not serialise, which the
/// API's own types always do).
pub(crate) fn audit_json<T: serde::Serialize>(value: &T) -> Option<serde_json::Value> {
    serde_json::to_value(value).ok()
}

/// A work-order view as audit JSON: what the API shows, without the cost
/// (which depends on who looks).
pub(crate) fn audit_view(view: &WorkOrderView) -> Option<serde_json::Value> {
    let mut v = view.clone();
    v.cost = None;
    audit_json(&v)
}

/// Where reads of one request run: the pool, or the request's open
/// transaction (to see its own writes).
pub(crate) enum Reader<'a> {
    Pool(&'a Store),
    Tx(&'a mut Tx),
}

impl Reader<'_> {
    pub(crate) fn db(&mut self) -> Db<'_> {
        match self {
            Reader::Pool(s) => Db::Pool(s),
            Reader::Tx(t) => Db::Tx(t),
        }
    }
}

/// `updated_ms` of the given work orders (the store's records carry no
/// update time of their own; it lives in the indexed row).
pub(crate) async fn updated_ms(
    db: Db<'_>,
    ids: &[&WorkOrderId],
) -> Result<HashMap<WorkOrderId, i64>, ApiError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut lease = db.lease().await.map_err(store_error)?;
    let mut c = lease.conn();
    let rows: Vec<(String, i64)> = both!(&mut c, Conn, x => {
        let mut qb = sqlx::QueryBuilder::new("SELECT id, updated_ms FROM work_orders WHERE id IN (");
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(id.as_str());
        }
        qb.push(")");
        qb.build_query_as().fetch_all(&mut **x).await.map_err(ApiError::internal)?
    });
    Ok(rows
        .into_iter()
        .map(|(id, ms)| (WorkOrderId(id), ms))
        .collect())
}

/// Loads a work order the caller sees; 404 when it does not exist or is
/// at a site the caller cannot see.
pub(crate) async fn visible_work_order(
    db: Db<'_>,
    auth: &Authenticated,
    id: &str,
) -> Result<StoredWorkOrder, ApiError> {
    let not_found = || ApiError::not_found(format!("no work order {id}"));
    if !is_plain_id(id) {
        return Err(not_found());
    }
    let stored = match store_wo::get(db, &WorkOrderId(id.to_owned())).await {
        Err(CmmsError::NotFound { .. }) => return Err(not_found()),
        r => r.map_err(store_error)?,
    };
    if !auth.access.sees(&stored.work_order.site) {
        return Err(not_found());
    }
    Ok(stored)
}

/// The full view of a work order for `auth`: reservations read from `r`,
/// costs only for callers allowed to see them at its site.
pub(crate) async fn full_view(
    r: &mut Reader<'_>,
    auth: Option<&Authenticated>,
    stored: &StoredWorkOrder,
    updated_ms: i64,
) -> Result<WorkOrderView, ApiError> {
    let wo = &stored.work_order;
    let reserved = parts::reservations_for(r.db(), &wo.id)
        .await
        .map_err(store_error)?;
    let cost = match auth {
        Some(a) if a.access.can(&wo.site, Permission::ViewCosts) => {
            let rates = costs::user_rates(r.db()).await.map_err(store_error)?;
            cost::work_order_cost(wo, &rates).ok()
        }
        _ => None,
    };
    Ok(WorkOrderView::new(stored, updated_ms, &reserved, cost))
}

/// Checks that each `(field, user)` names an enabled user holding at least
/// the technician role at `site`; the problems, by field.
pub(crate) async fn check_workers(
    store: &Store,
    site: &SiteId,
    users: &[(String, UserId)],
) -> Result<Vec<FieldError>, ApiError> {
    let mut problems = Vec::new();
    for (field, id) in users {
        if !is_plain_id(id.as_str()) {
            problems.push(FieldError::new(
                field.clone(),
                format!("no user {:?}", id.as_str()),
            ));
            continue;
        }
        let problem = match store.user(id).await? {
            None => Some(format!("no user {id}")),
            Some(u) if u.user.disabled => Some(format!("user {id} is disabled")),
            Some(u) => match u.access().role_on(site) {
                Some(role) if role >= Role::Technician => None,
                _ => Some(format!(
                    "user {id} has no technician (or higher) role at site {site}"
                )),
            },
        };
        if let Some(p) = problem {
            problems.push(FieldError::new(field.clone(), p));
        }
    }
    Ok(problems)
}

/// The document's patterns of the strings this module takes; the checks
/// below enforce the same (the test of the document holds every pattern
/// of these routes to this list).
#[cfg(test)]
pub(crate) const PATTERNS: &[&str] = &[
    // One line, not only white space: `check_line`.
    r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
    // Free text with line breaks and tabs: `check_text`.
    r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$",
    // Ids: `is_plain_id`.
    r"^[^\x00-\x1f\x7f-\x9f]{1,128}$",
    // Site names and plan ids: `dcmms_shared::validate_name`.
    "^[A-Za-z0-9._-]{1,64}$",
    // Short texts without control characters (units, references, signers, `q`).
    r"^[^\x00-\x1f\x7f-\x9f]*$",
    // Meter points: a site name, then anything without control characters.
    "^[A-Za-z0-9._-]{1,64}/[^\\x00-\\x1f\\x7f-\\x9f]+$",
];

/// Largest id (of an asset, a part, a user) a request may name.
pub(crate) const MAX_ID: usize = 128;

/// Whether `s` can be an id: 1 to [`MAX_ID`] characters, none of them a
/// control character (PostgreSQL refuses NUL in text, so such a string
/// must never reach a query).
pub(crate) fn is_plain_id(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= MAX_ID && !s.chars().any(char::is_control)
}

/// Checks an id named in a body (as the schema's `ID` pattern says).
pub(crate) fn check_id(problems: &mut Vec<FieldError>, field: &str, id: &str) {
    if !is_plain_id(id) {
        problems.push(FieldError::new(
            field,
            format!("must be 1 to {MAX_ID} characters without control characters"),
        ));
    }
}

/// Checks a free text (description, comment, reason): at most `max`
/// characters, no control characters but line breaks and tabs.
pub(crate) fn check_text(problems: &mut Vec<FieldError>, field: &str, text: &str, max: usize) {
    if text.chars().count() > max {
        problems.push(FieldError::new(field, format!("at most {max} characters")));
    } else if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        problems.push(FieldError::new(
            field,
            "must not contain control characters (but line breaks and tabs)",
        ));
    }
}

/// Checks a one-line text (title, label, key): 1 to `max` characters, not
/// only white space, no control characters.
pub(crate) fn check_line(problems: &mut Vec<FieldError>, field: &str, text: &str, max: usize) {
    if text.trim().is_empty() || text.chars().count() > max {
        problems.push(FieldError::new(
            field,
            format!("must be 1 to {max} characters, not only white space"),
        ));
    } else if text.chars().any(char::is_control) {
        problems.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
}
