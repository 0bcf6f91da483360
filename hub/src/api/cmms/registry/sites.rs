//! `/api/v1/sites`: the sites the caller sees; creating sites (fleet
//! administrators) and renaming them (administrators of the site).

use super::dto::{check_site, Problems, SiteView, MAX_NAME};
use super::{entry, invalid, json_of, now, refusal, site_param};
use crate::api::page::{self, Cursor};
use crate::api::{ApiError, ApiJson, ApiQuery, AppState, ErrorBody};
use crate::audit;
use crate::auth::{require, require_fleet, Authenticated};
use crate::store::cmms::sites::{self, NewSite};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use dcmms_shared::cmms::csv::SiteRecord;
use dcmms_shared::cmms::{Permission, SiteId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SiteListParams {
    /// 1..=1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// A page of sites, by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteList {
    pub sites: Vec<SiteView>,
    /// Cursor of the next page; null on the last.
    pub next: Option<String>,
}

/// Body of `POST /api/v1/sites`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSite {
    /// The site's name in telemetry: 1-64 of `A-Z a-z 0-9 - _ .`.
    #[schema(example = "solar-north", pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub id: String,
    /// Display name, 1 to 200 characters, no control characters, no white
    /// space at either end.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub name: String,
    /// IANA time-zone name (its shape is checked, not the time-zone
    /// database).
    #[schema(
        example = "Europe/Madrid",
        max_length = 64,
        pattern = "^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$"
    )]
    pub timezone: String,
}

/// Body of `PATCH /api/v1/sites/{id}`; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PatchSite {
    /// As in `CreateSite`.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub name: Option<String>,
    #[schema(
        example = "Europe/Madrid",
        max_length = 64,
        pattern = "^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$"
    )]
    pub timezone: Option<String>,
}

const TAG: &str = "sites:id";

/// The sites the caller sees.
#[utoipa::path(
    get, path = "/api/v1/sites", tag = "sites",
    params(SiteListParams),
    responses((status = 200, description = "A page of the sites the caller sees, by id", body = SiteList)),
    security(("bearer" = [])),
)]
pub async fn list_sites(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiQuery(p): ApiQuery<SiteListParams>,
) -> Result<Json<SiteList>, ApiError> {
    let limit = page::limit(p.limit)?;
    let after = p
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c, TAG, 1))
        .transpose()?
        .map(|c| c.key[0].clone());
    let all = sites::list(&state.store, &auth.access.visible_sites())
        .await
        .map_err(refusal)?;
    let rows: Vec<SiteView> = all
        .iter()
        .filter(|s| after.as_deref().is_none_or(|a| s.id.as_str() > a))
        .take(limit as usize + 1)
        .map(SiteView::from)
        .collect();
    let (sites, next) = page::split_page(rows, limit, |s| Cursor::new(TAG, vec![s.id.clone()]));
    Ok(Json(SiteList { sites, next }))
}

/// Create a site (fleet administrators).
#[utoipa::path(
    post, path = "/api/v1/sites", tag = "sites",
    request_body = CreateSite,
    responses(
        (status = 201, description = "Created", body = SiteView),
        (status = 409, description = "`rule`: `duplicate` (the id is taken)", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create_site(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiJson(body): ApiJson<CreateSite>,
) -> Result<(StatusCode, Json<SiteView>), ApiError> {
    require_fleet(&auth.access, Permission::ManageFleet)?;
    let mut p = Problems::default();
    p.site("id", &body.id);
    p.text("name", &body.name, MAX_NAME);
    p.timezone("timezone", &body.timezone);
    p.check()?;
    let record = check_site(SiteRecord {
        id: SiteId(body.id),
        name: body.name,
        timezone: body.timezone,
    })
    .map_err(invalid)?;
    let mut tx = state.store.transaction().await?;
    let site = sites::create(
        &mut tx,
        NewSite {
            id: record.id,
            name: record.name,
            timezone: record.timezone,
        },
        now(),
    )
    .await
    .map_err(refusal)?;
    let view = SiteView::from(&site);
    audit::record(
        &mut tx,
        &entry(
            &auth,
            "site.create",
            "site",
            site.id.to_string(),
            Some(site.id.clone()),
            None,
            json_of(&view),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One site.
#[utoipa::path(
    get, path = "/api/v1/sites/{id}", tag = "sites",
    params(("id" = String, Path, description = "Site id", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses(
        (status = 200, description = "The site", body = SiteView),
        (status = 400, description = "Not a valid site id", body = ErrorBody),
        (status = 404, description = "No such site", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_site(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<SiteView>, ApiError> {
    let id = site_param(&id)?;
    require(&auth.access, &id, Permission::View)?;
    let site = sites::get(&state.store, &id).await.map_err(refusal)?;
    Ok(Json(SiteView::from(&site)))
}

/// Rename a site or change its time zone (administrators of the site).
#[utoipa::path(
    patch, path = "/api/v1/sites/{id}", tag = "sites",
    params(("id" = String, Path, description = "Site id", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    request_body = PatchSite,
    responses(
        (status = 200, description = "The site after the change", body = SiteView),
        (status = 400, description = "Not a valid site id, or the body is not valid JSON", body = ErrorBody),
        (status = 404, description = "No such site", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn patch_site(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchSite>,
) -> Result<Json<SiteView>, ApiError> {
    let id = site_param(&id)?;
    require(&auth.access, &id, Permission::ManageFleet)?;
    let mut p = Problems::default();
    p.opt_text("name", body.name.as_deref(), MAX_NAME);
    if let Some(tz) = &body.timezone {
        p.timezone("timezone", tz);
    }
    p.check()?;
    let mut tx = state.store.transaction().await?;
    let before = sites::get(&mut tx, &id).await.map_err(refusal)?;
    let record = check_site(SiteRecord {
        id: id.clone(),
        name: body.name.unwrap_or_else(|| before.name.clone()),
        timezone: body.timezone.unwrap_or_else(|| before.timezone.clone()),
    })
    .map_err(invalid)?;
    if record.name == before.name && record.timezone == before.timezone {
        return Ok(Json(SiteView::from(&before)));
    }
    let changed = sites::update(&mut tx, &id, record.name, record.timezone)
        .await
        .map_err(refusal)?;
    let (b, a) = (
        SiteView::from(&changed.before),
        SiteView::from(&changed.after),
    );
    audit::record(
        &mut tx,
        &entry(
            &auth,
            "site.update",
            "site",
            id.to_string(),
            Some(id.clone()),
            json_of(&b),
            json_of(&a),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(a))
}
