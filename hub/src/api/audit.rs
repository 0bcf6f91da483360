//! `GET /api/v1/audit`: the audit log, newest first, for administrators
//! (every entry) and site supervisors (the entries of the sites they
//! supervise). Read-only: no route changes or removes an entry.

use super::page::{self, Cursor};
use super::telemetry::{format_ms, parse_time};
use super::users::{is_admin, parse_site};
use super::{ApiError, ApiQuery, AppState};
use crate::audit::{self, AuditQuery, AuditRow, AuditScope};
use crate::auth::Authenticated;
use axum::extract::State;
use axum::Json;
use dcmms_shared::cmms::{Role, SiteId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// `user`, `api_token`, ...
    #[param(pattern = "^[^\\x00]*$")]
    entity_kind: Option<String>,
    #[param(pattern = "^[^\\x00]*$")]
    entity_id: Option<String>,
    /// User id of the actor.
    #[param(pattern = "^[^\\x00]*$")]
    actor: Option<String>,
    /// Entries of this site.
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    site: Option<String>,
    /// RFC 3339; entries at or after.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339; entries before.
    #[param(format = DateTime)]
    to: Option<String>,
    /// 1..=1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    #[schema(format = DateTime)]
    pub at: String,
    /// Null when the hub itself acted.
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub action: String,
    pub entity_kind: String,
    pub entity_id: String,
    pub site: Option<String>,
    /// The entity before the change; null for a creation.
    pub before: Option<serde_json::Value>,
    /// The entity after the change; null for a removal.
    pub after: Option<serde_json::Value>,
}

impl From<AuditRow> for AuditView {
    fn from(r: AuditRow) -> Self {
        AuditView {
            id: r.id,
            at: format_ms(r.at_ms),
            actor_id: r.actor_id,
            actor_name: r.actor_name,
            action: r.action,
            entity_kind: r.entity_kind,
            entity_id: r.entity_id,
            site: r.site,
            before: r.before,
            after: r.after,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditView>,
    /// Cursor of the next (older) page; null on the last.
    pub next: Option<String>,
}

const CURSOR_TAG: &str = "audit";

fn supervisor_refusal(site: Option<&SiteId>) -> ApiError {
    ApiError::Forbidden {
        message: match site {
            Some(s) => format!("reading the audit log needs the supervisor role at site {s}"),
            None => "reading the audit log needs the supervisor role at a site".to_owned(),
        },
        permission: None,
        site: site.cloned(),
    }
}

/// Audit entries, newest first.
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit",
    params(AuditParams),
    responses((status = 200, description = "A page of entries", body = AuditList)),
    security(("bearer" = [])),
)]
pub async fn list_audit(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Json<AuditList>, ApiError> {
    let site = p.site.as_deref().map(parse_site).transpose()?;
    let entity_kind = page::text_filter("entity_kind", p.entity_kind)?;
    let entity_id = page::text_filter("entity_id", p.entity_id)?;
    let actor_id = page::text_filter("actor", p.actor)?;
    let access = &auth.access;
    let scope = if is_admin(&auth) {
        AuditScope::All
    } else {
        let supervised = |s: &SiteId| access.role_on(s).is_some_and(Role::is_supervisor);
        match &site {
            Some(s) if supervised(s) => AuditScope::Sites(vec![s.clone()]),
            Some(s) => return Err(supervisor_refusal(Some(s))),
            None => {
                let sites: Vec<SiteId> = access
                    .site_roles
                    .keys()
                    .filter(|s| supervised(s))
                    .cloned()
                    .collect();
                if sites.is_empty() {
                    return Err(supervisor_refusal(None));
                }
                AuditScope::Sites(sites)
            }
        }
    };
    let limit = page::limit(p.limit)?;
    let before_id = match &p.cursor {
        None => None,
        Some(c) => Some(
            Cursor::decode(c, CURSOR_TAG, 1)?.key[0]
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request("`cursor` is not valid"))?,
        ),
    };
    let from_ms = p
        .from
        .as_deref()
        .map(|t| parse_time("from", t))
        .transpose()?;
    let to_ms = p.to.as_deref().map(|t| parse_time("to", t)).transpose()?;
    let rows = audit::list(
        &state.store,
        &AuditQuery {
            scope,
            entity_kind,
            entity_id,
            actor_id,
            site,
            from_ms,
            to_ms,
            before_id,
            fetch: limit + 1,
        },
    )
    .await?;
    let (rows, next) = page::split_page(rows, limit, |r| {
        Cursor::new(CURSOR_TAG, vec![r.id.to_string()])
    });
    Ok(Json(AuditList {
        entries: rows.into_iter().map(AuditView::from).collect(),
        next,
    }))
}
