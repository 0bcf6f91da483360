//! `/api/v1/assets`: the asset register of the sites the caller sees.
//!
//! Listing pages by asset id (keyset) and filters by site, parent, kind,
//! criticality and linked telemetry point. Creating, changing, moving and
//! re-linking points need `manage_assets` at the asset's site; the store
//! checks the hierarchy with the change applied (409 with the hierarchy
//! rule: `hierarchy_too_deep`, `hierarchy_cycle`, `parent_in_other_site`,
//! `unknown_parent`). A change locks the site's row first, so concurrent
//! changes of one site's assets run one after the other and none is lost.

use super::dto::{
    check_asset, kind_of, nullable, AssetView, CriticalityName, Problems, MAX_ID, MAX_NAME,
    MAX_TEXT,
};
use super::{entry, invalid, json_of, now, refusal, site_param};
use crate::api::page::{self, Cursor};
use crate::api::{ApiError, ApiJson, ApiQuery, AppState, ErrorBody, FieldError};
use crate::audit;
use crate::auth::{require, Authenticated};
use crate::store::cmms::{assets, conn, sites};
use crate::store::{CmmsError, Tx};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use dcmms_shared::cmms::{
    Access, Asset, AssetId, AssetKind, Criticality, Permission, SiteId, SiteScope,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use time::Date;
use utoipa::{IntoParams, ToSchema};

/// Most telemetry points linked to one asset.
pub const MAX_POINTS: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AssetListParams {
    /// Assets of this site only.
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    site: Option<String>,
    /// Direct children of this asset only.
    #[param(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    parent: Option<String>,
    /// Assets of this kind (`inverter`, `combiner_box`, or a free-text kind).
    #[param(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    kind: Option<String>,
    #[param(inline)]
    criticality: Option<CriticalityName>,
    /// Assets measuring this telemetry point (`site/device/point`).
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}$")]
    point: Option<String>,
    /// 1..=1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// A page of assets, by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetList {
    pub assets: Vec<AssetView>,
    /// Cursor of the next page; null on the last.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1..=1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// Body of `POST /api/v1/assets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAsset {
    /// Unique asset id, 1 to 128 characters. Text fields take no control
    /// characters and no white space at either end.
    #[schema(
        example = "inv-01",
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub id: String,
    #[schema(example = "solar-north", pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub site: String,
    /// Parent asset at the same site; absent or null: directly under the
    /// site. At most five levels of assets under a site.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub parent: Option<String>,
    /// 1 to 200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub name: String,
    /// A known kind (`area`, `inverter`, `transformer`, `combiner_box`,
    /// `pv_array`, `pv_string`, `tracker`, `wind_turbine`, `gearbox`,
    /// `generator`, `battery_storage`, `battery_rack`,
    /// `power_conversion_system`, `switchgear`, `meter`,
    /// `weather_station`, `controller`) or free text.
    #[schema(
        example = "inverter",
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub kind: String,
    /// 1 to 500 characters.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub manufacturer: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub model: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub serial: Option<String>,
    /// `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub installed_on: Option<String>,
    /// Default `medium`.
    #[serde(default)]
    pub criticality: CriticalityName,
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub location: Option<String>,
    /// Telemetry points measured on the asset, `site/device/point` at its
    /// site, at most 1,000; a point given twice is kept once.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub points: Vec<PointName>,
}

/// Body of `PATCH /api/v1/assets/{id}`: absent fields stay; `null`
/// clears an optional field, and a `parent` of `null` moves the asset
/// directly under its site.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PatchAsset {
    /// As in `CreateAsset`.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub name: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub kind: Option<String>,
    pub criticality: Option<CriticalityName>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub parent: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub manufacturer: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub model: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub serial: Option<Option<String>>,
    /// `YYYY-MM-DD`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(format = Date)]
    pub installed_on: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub location: Option<Option<String>>,
}

/// Body of `PUT /api/v1/assets/{id}/points`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPoints {
    /// The complete list, in order, at most 1,000; `site/device/point`
    /// names at the asset's site; a point given twice is kept once.
    #[schema(example = json!(["solar-north/inv-01/ac_power"]), max_items = 1000)]
    pub points: Vec<PointName>,
}

/// A telemetry point, `site/device/point`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(pattern = "^[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}$")]
pub struct PointName(pub String);

const TAG: &str = "assets:id";

fn parse_date(field: &str, text: &str) -> Result<Date, ApiError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text.trim(), fmt)
        .map_err(|_| ApiError::invalid_field(field, "is not a date as YYYY-MM-DD"))
}

fn after_of(cursor: Option<&str>) -> Result<Option<AssetId>, ApiError> {
    let Some(c) = cursor else {
        return Ok(None);
    };
    let key = Cursor::decode(c, TAG, 1)?.key.remove(0);
    if key.chars().any(char::is_control) {
        return Err(ApiError::bad_request("`cursor` is not valid"));
    }
    Ok(Some(AssetId(key)))
}

/// An asset id as a path or query parameter: the shape every stored id
/// has (1 to 128 characters, no control characters, no white space at
/// either end), or 400.
fn asset_param(name: &str, id: &str) -> Result<AssetId, ApiError> {
    let mut p = Problems::default();
    p.text(name, id, MAX_ID);
    match p.0.first() {
        Some(f) => Err(ApiError::bad_request(format!("`{name}` {}", f.message))),
        None => Ok(AssetId::from(id)),
    }
}

/// An asset the caller sees, or 404 (existence is not disclosed).
async fn visible(state: &AppState, access: &Access, id: &AssetId) -> Result<Asset, ApiError> {
    let hidden = || ApiError::not_found(format!("no asset {id}"));
    match assets::get(&state.store, id).await {
        Ok(a) if access.sees(&a.site) => Ok(a),
        Ok(_) | Err(CmmsError::NotFound { .. }) => Err(hidden()),
        Err(e) => Err(refusal(e)),
    }
}

/// Locks the asset's site in `tx` and reads the asset again: the state
/// every change of this request starts from. Checks `manage_assets`.
async fn locked(
    tx: &mut Tx,
    access: &Access,
    id: &AssetId,
    site: &SiteId,
) -> Result<Asset, ApiError> {
    require(access, site, Permission::ManageAssets)?;
    sites::load(&mut conn(tx), site, true)
        .await
        .map_err(refusal)?;
    let current = assets::get(&mut *tx, id).await.map_err(refusal)?;
    if &current.site != site {
        return Err(ApiError::conflict(
            "version_conflict",
            format!("asset {id} moved to site {} meanwhile; retry", current.site),
        ));
    }
    Ok(current)
}

/// The assets the caller sees, filtered and paged by id.
#[utoipa::path(
    get, path = "/api/v1/assets", tag = "assets",
    params(AssetListParams),
    responses((status = 200, description = "A page of assets, by id", body = AssetList)),
    security(("bearer" = [])),
)]
pub async fn list_assets(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiQuery(p): ApiQuery<AssetListParams>,
) -> Result<Json<AssetList>, ApiError> {
    let limit = page::limit(p.limit)?;
    let after = after_of(p.cursor.as_deref())?;
    let scope = match &p.site {
        Some(s) => {
            let site = site_param(s)?;
            require(&auth.access, &site, Permission::View)?;
            SiteScope::Only(BTreeSet::from([site]))
        }
        None => auth.access.visible_sites(),
    };
    let parent = p
        .parent
        .as_deref()
        .map(|v| asset_param("parent", v))
        .transpose()?;
    let kind: Option<AssetKind> = p
        .kind
        .as_deref()
        .map(|v| asset_param("kind", v).map(|_| kind_of(v)))
        .transpose()?;
    if let Some(point) = &p.point {
        let mut probs = Problems::default();
        probs.point("point", point);
        if !probs.0.is_empty() {
            return Err(ApiError::bad_request(
                "`point` must be a point name site/device/point",
            ));
        }
    }
    let criticality: Option<Criticality> = p.criticality.map(Into::into);
    let wanted = |a: &Asset| {
        scope.contains(&a.site)
            && after.as_ref().is_none_or(|x| &a.id > x)
            && kind.as_ref().is_none_or(|k| &a.kind == k)
            && criticality.is_none_or(|c| a.criticality == c)
            && parent.as_ref().is_none_or(|x| a.parent.as_ref() == Some(x))
            && p.point.as_ref().is_none_or(|x| a.points.contains(x))
    };
    let fetch = limit as usize + 1;
    let rows: Vec<Asset> = if let Some(point) = &p.point {
        let all = assets::linked_to_point(&state.store, point)
            .await
            .map_err(refusal)?;
        all.into_iter().filter(wanted).take(fetch).collect()
    } else if let Some(parent) = &parent {
        let all = assets::children(&state.store, parent)
            .await
            .map_err(refusal)?;
        all.into_iter().filter(wanted).take(fetch).collect()
    } else {
        // The store pages by id within a scope; kind and criticality are
        // filtered here, batch by batch, until the page is full.
        let filtered = kind.is_some() || criticality.is_some();
        let batch = if filtered { 1000 } else { fetch as u32 };
        let mut rows = Vec::new();
        let mut from = after.clone();
        loop {
            let got = assets::list(&state.store, &scope, from.as_ref(), batch)
                .await
                .map_err(refusal)?;
            let full = got.len() == batch as usize;
            from = got.last().map(|a| a.id.clone());
            rows.extend(got.into_iter().filter(wanted));
            if rows.len() >= fetch || !full {
                break;
            }
        }
        rows.truncate(fetch);
        rows
    };
    let views: Vec<AssetView> = rows.iter().map(AssetView::from).collect();
    let (assets, next) = page::split_page(views, limit, |a| Cursor::new(TAG, vec![a.id.clone()]));
    Ok(Json(AssetList { assets, next }))
}

/// Checks a point list (names, at most [`MAX_POINTS`]); the points in
/// order, each once.
fn check_points(p: &mut Problems, points: Vec<PointName>) -> Vec<String> {
    if points.len() > MAX_POINTS {
        p.0.push(FieldError::new(
            "points",
            format!("has more than {MAX_POINTS} points"),
        ));
        return Vec::new();
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(points.len());
    for (i, point) in points.into_iter().enumerate() {
        p.point(&format!("points[{i}]"), &point.0);
        if seen.insert(point.0.clone()) {
            out.push(point.0);
        }
    }
    out
}

/// Create an asset.
#[utoipa::path(
    post, path = "/api/v1/assets", tag = "assets",
    request_body = CreateAsset,
    responses(
        (status = 201, description = "Created", body = AssetView),
        (status = 409, description = "`rule`: `duplicate`, or a hierarchy rule (`hierarchy_too_deep`, `hierarchy_cycle`, `parent_in_other_site`, `unknown_parent`)", body = ErrorBody),
        (status = 422, description = "A field is invalid, or the site does not exist", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create_asset(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiJson(body): ApiJson<CreateAsset>,
) -> Result<(StatusCode, Json<AssetView>), ApiError> {
    let mut p = Problems::default();
    p.site("site", &body.site);
    p.check()?;
    let site = SiteId(body.site);
    require(&auth.access, &site, Permission::ManageAssets)?;
    let mut p = Problems::default();
    p.text("id", &body.id, MAX_ID);
    p.opt_text("parent", body.parent.as_deref(), MAX_ID);
    p.text("name", &body.name, MAX_NAME);
    p.text("kind", &body.kind, MAX_ID);
    for (field, value) in [
        ("manufacturer", &body.manufacturer),
        ("model", &body.model),
        ("serial", &body.serial),
        ("location", &body.location),
    ] {
        p.opt_text(field, value.as_deref(), MAX_TEXT);
    }
    let points = check_points(&mut p, body.points);
    p.check()?;
    let installed_on = body
        .installed_on
        .as_deref()
        .map(|d| parse_date("installed_on", d))
        .transpose()?;
    let asset = check_asset(Asset {
        id: AssetId(body.id),
        site: site.clone(),
        parent: body.parent.map(AssetId),
        name: body.name,
        kind: kind_of(&body.kind),
        manufacturer: body.manufacturer,
        model: body.model,
        serial: body.serial,
        installed_on,
        criticality: body.criticality.into(),
        location: body.location,
        points,
    })
    .map_err(invalid)?;
    let mut tx = state.store.transaction().await?;
    let created = match assets::create(&mut tx, asset, now()).await {
        Ok(a) => a,
        Err(CmmsError::NotFound { entity: "site", .. }) => {
            return Err(ApiError::invalid_field("site", format!("no site {site}")))
        }
        Err(e) => return Err(refusal(e)),
    };
    let view = AssetView::from(&created);
    audit::record(
        &mut tx,
        &entry(
            &auth,
            "asset.create",
            "asset",
            created.id.to_string(),
            Some(site),
            None,
            json_of(&view),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One asset.
#[utoipa::path(
    get, path = "/api/v1/assets/{id}", tag = "assets",
    params(("id" = String, Path, description = "Asset id", min_length = 1, max_length = 128, pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$")),
    responses(
        (status = 200, description = "The asset", body = AssetView),
        (status = 400, description = "Not a valid asset id (or a query parameter or the body is not valid)", body = ErrorBody),
        (status = 404, description = "No such asset at a site the caller sees", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_asset(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<AssetView>, ApiError> {
    let asset = visible(&state, &auth.access, &asset_param("id", &id)?).await?;
    Ok(Json(AssetView::from(&asset)))
}

/// Change an asset's fields or move it under another parent.
#[utoipa::path(
    patch, path = "/api/v1/assets/{id}", tag = "assets",
    params(("id" = String, Path, description = "Asset id", min_length = 1, max_length = 128, pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$")),
    request_body = PatchAsset,
    responses(
        (status = 200, description = "The asset after the change", body = AssetView),
        (status = 400, description = "Not a valid asset id (or a query parameter or the body is not valid)", body = ErrorBody),
        (status = 404, description = "No such asset at a site the caller sees", body = ErrorBody),
        (status = 409, description = "A hierarchy rule refuses the move (`hierarchy_too_deep`, `hierarchy_cycle`, `parent_in_other_site`, `unknown_parent`)", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn patch_asset(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchAsset>,
) -> Result<Json<AssetView>, ApiError> {
    let id = asset_param("id", &id)?;
    let seen = visible(&state, &auth.access, &id).await?;
    let mut p = Problems::default();
    p.opt_text("name", body.name.as_deref(), MAX_NAME);
    p.opt_text("kind", body.kind.as_deref(), MAX_ID);
    p.opt_text(
        "parent",
        body.parent.as_ref().and_then(Option::as_deref),
        MAX_ID,
    );
    for (field, value) in [
        ("manufacturer", &body.manufacturer),
        ("model", &body.model),
        ("serial", &body.serial),
        ("location", &body.location),
    ] {
        p.opt_text(field, value.as_ref().and_then(Option::as_deref), MAX_TEXT);
    }
    p.check()?;
    let installed_on = match body.installed_on.as_ref() {
        None => None,
        Some(None) => Some(None),
        Some(Some(d)) => Some(Some(parse_date("installed_on", d)?)),
    };
    let mut tx = state.store.transaction().await?;
    let before = locked(&mut tx, &auth.access, &id, &seen.site).await?;
    let mut after = before.clone();
    if let Some(v) = body.name {
        after.name = v;
    }
    if let Some(v) = body.kind {
        after.kind = kind_of(&v);
    }
    if let Some(v) = body.criticality {
        after.criticality = v.into();
    }
    if let Some(v) = body.parent {
        after.parent = v.map(AssetId);
    }
    if let Some(v) = body.manufacturer {
        after.manufacturer = v;
    }
    if let Some(v) = body.model {
        after.model = v;
    }
    if let Some(v) = body.serial {
        after.serial = v;
    }
    if let Some(v) = body.location {
        after.location = v;
    }
    if let Some(v) = installed_on {
        after.installed_on = v;
    }
    let after = check_asset(after).map_err(invalid)?;
    if after == before {
        return Ok(Json(AssetView::from(&before)));
    }
    let changed = assets::update(&mut tx, after, now())
        .await
        .map_err(refusal)?;
    let (b, a) = (
        AssetView::from(&changed.before),
        AssetView::from(&changed.after),
    );
    let action = if b.parent != a.parent {
        "asset.move"
    } else {
        "asset.update"
    };
    audit::record(
        &mut tx,
        &entry(
            &auth,
            action,
            "asset",
            id.to_string(),
            Some(changed.after.site.clone()),
            json_of(&b),
            json_of(&a),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(a))
}

/// The direct children of an asset, by id.
#[utoipa::path(
    get, path = "/api/v1/assets/{id}/children", tag = "assets",
    params(("id" = String, Path, description = "Asset id", min_length = 1, max_length = 128, pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"), PageParams),
    responses(
        (status = 200, description = "A page of the asset's direct children", body = AssetList),
        (status = 400, description = "Not a valid asset id (or a query parameter or the body is not valid)", body = ErrorBody),
        (status = 404, description = "No such asset at a site the caller sees", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list_children(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<AssetList>, ApiError> {
    let limit = page::limit(p.limit)?;
    let after = after_of(p.cursor.as_deref())?;
    let id = asset_param("id", &id)?;
    visible(&state, &auth.access, &id).await?;
    let all = assets::children(&state.store, &id).await.map_err(refusal)?;
    let views: Vec<AssetView> = all
        .iter()
        .filter(|a| after.as_ref().is_none_or(|x| &a.id > x))
        .take(limit as usize + 1)
        .map(AssetView::from)
        .collect();
    let (assets, next) = page::split_page(views, limit, |a| Cursor::new(TAG, vec![a.id.clone()]));
    Ok(Json(AssetList { assets, next }))
}

/// Replace the telemetry points linked to an asset.
#[utoipa::path(
    put, path = "/api/v1/assets/{id}/points", tag = "assets",
    params(("id" = String, Path, description = "Asset id", min_length = 1, max_length = 128, pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$")),
    request_body = SetPoints,
    responses(
        (status = 200, description = "The asset with its new points", body = AssetView),
        (status = 400, description = "Not a valid asset id (or a query parameter or the body is not valid)", body = ErrorBody),
        (status = 404, description = "No such asset at a site the caller sees", body = ErrorBody),
        (status = 422, description = "A point is not a `site/device/point` name at the asset's site, or repeats", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn put_points(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetPoints>,
) -> Result<Json<AssetView>, ApiError> {
    let id = asset_param("id", &id)?;
    let seen = visible(&state, &auth.access, &id).await?;
    require(&auth.access, &seen.site, Permission::ManageAssets)?;
    let mut p = Problems::default();
    let points = check_points(&mut p, body.points);
    p.check()?;
    let mut tx = state.store.transaction().await?;
    let before = locked(&mut tx, &auth.access, &id, &seen.site).await?;
    if before.points == points {
        return Ok(Json(AssetView::from(&before)));
    }
    let after = Asset {
        points,
        ..before.clone()
    };
    let changed = assets::update(&mut tx, after, now())
        .await
        .map_err(refusal)?;
    let (b, a) = (
        AssetView::from(&changed.before),
        AssetView::from(&changed.after),
    );
    audit::record(
        &mut tx,
        &entry(
            &auth,
            "asset.points_set",
            "asset",
            id.to_string(),
            Some(changed.after.site.clone()),
            json_of(&b),
            json_of(&a),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(a))
}
