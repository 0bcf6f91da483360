//! `/api/v1/sites/{site}/parts`: a site's spare parts and their stock.
//!
//! Anyone who sees the site sees its stock; unit costs only with
//! `view_costs` there. Adding parts, receiving goods, counting stock and
//! changing catalogue details need `manage_stock`. Quantities follow the
//! domain's stock rules (never negative, never counted below what is
//! reserved for work orders): a refusal is 409 with the rule's code and
//! the available quantity in the message. Each change locks the part's
//! row first (PostgreSQL), so concurrent changes never lose one another.

use super::dto::{check_part, nullable, PartView, Problems, MAX_ID, MAX_NAME, MAX_TEXT, MAX_UNIT};
use super::{entry, invalid, json_of, now, refusal, site_param};
use crate::api::page::{self, Cursor};
use crate::api::{ApiError, ApiJson, ApiQuery, AppState, ErrorBody};
use crate::audit;
use crate::auth::{require, Authenticated};
use crate::store::cmms::parts::{self, NewPart, StoredPart};
use crate::store::cmms::{conn, sites};
use crate::store::{CmmsError, Tx};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use dcmms_shared::cmms::csv::PartRecord;
use dcmms_shared::cmms::{Access, Money, PartId, Permission, SiteId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PartListParams {
    /// `true`: only parts whose available quantity is at or below their
    /// reorder level; `false`: only the others.
    reorder: Option<bool>,
    /// 1..=1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// A page of a site's parts, by part number.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartList {
    pub parts: Vec<PartView>,
    /// Cursor of the next page; null on the last.
    pub next: Option<String>,
}

/// Body of `POST /api/v1/sites/{site}/parts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePart {
    /// Part number, 1 to 128 characters. Text fields take no control
    /// characters and no white space at either end.
    #[schema(
        example = "fuse-10a",
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub part: String,
    /// 1 to 200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub name: String,
    /// Stock unit, 1 to 32 characters.
    #[schema(
        example = "pcs",
        min_length = 1,
        max_length = 32,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub unit: String,
    /// Cost of one unit, in cents.
    #[schema(minimum = 0, maximum = 1000000000000_i64)]
    pub unit_cost_cents: i64,
    /// Reorder at or below this available quantity; absent: never.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_i64)]
    pub reorder_level: Option<u32>,
    /// Units already on the shelf (default 0).
    #[serde(default)]
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_i64)]
    pub on_hand: u32,
}

/// Body of `PATCH /api/v1/sites/{site}/parts/{part}`: absent fields stay;
/// a `reorder_level` of `null` stops automatic reordering. Quantities
/// change only through `receive` and `adjust`.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PatchPart {
    /// As in `CreatePart`.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub name: Option<String>,
    #[schema(minimum = 0, maximum = 1000000000000_i64)]
    pub unit_cost_cents: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_i64)]
    pub reorder_level: Option<Option<u32>>,
}

/// Body of `POST .../parts/{part}/receive`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Receive {
    /// Units received, 1 to 1,000,000,000.
    #[schema(minimum = 1, maximum = 1000000000)]
    pub qty: u32,
}

/// Body of `POST .../parts/{part}/adjust`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Adjust {
    /// The physical count: the new quantity on hand; not below what is
    /// reserved for work orders.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_i64)]
    pub counted: u32,
    /// Why the count differs (kept in the audit log), 1 to 500 characters.
    #[schema(
        example = "annual stock count",
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub reason: String,
}

const TAG: &str = "parts:part";
/// Most units one receipt may add.
pub const MAX_RECEIPT: u32 = 1_000_000_000;

fn part_param(part: &str) -> Result<PartId, ApiError> {
    let mut p = Problems::default();
    p.text("part", part, MAX_ID);
    match p.0.first() {
        Some(f) => Err(ApiError::bad_request(format!(
            "a part number {}",
            f.message
        ))),
        None => Ok(PartId::from(part)),
    }
}

/// Whether the caller may see unit costs at `site`.
fn costs(access: &Access, site: &SiteId) -> bool {
    access.can(site, Permission::ViewCosts)
}

/// A stock refusal, with what there is.
fn stock_refusal(e: CmmsError, p: &StoredPart) -> ApiError {
    match e {
        CmmsError::Stock(s) => ApiError::conflict(
            s.code(),
            format!(
                "{s} (available: {}, on hand: {}, reserved: {})",
                p.stock.available(),
                p.stock.on_hand(),
                p.stock.reserved()
            ),
        ),
        other => refusal(other),
    }
}

/// Locks a part's row in `tx` and reads it (404 if missing).
async fn locked(tx: &mut Tx, site: &SiteId, part: &PartId) -> Result<StoredPart, ApiError> {
    parts::load(&mut conn(tx), site, part, true)
        .await
        .map_err(refusal)?
        .ok_or_else(|| ApiError::not_found(format!("no part {part} at site {site}")))
}

/// The view as audit JSON, with extra keys.
fn audit_json(p: &StoredPart, extra: Value) -> Option<Value> {
    let mut v = json_of(&PartView::of(p, true))?;
    if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
        obj.extend(more);
    }
    Some(v)
}

/// A site's parts.
#[utoipa::path(
    get, path = "/api/v1/sites/{site}/parts", tag = "parts",
    params(("site" = String, Path, description = "Site id", pattern = "^[A-Za-z0-9._-]{1,64}$"), PartListParams),
    responses(
        (status = 200, description = "A page of the site's parts", body = PartList),
        (status = 404, description = "No such site", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list_parts(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(site): Path<String>,
    ApiQuery(p): ApiQuery<PartListParams>,
) -> Result<Json<PartList>, ApiError> {
    let site = site_param(&site)?;
    require(&auth.access, &site, Permission::View)?;
    let limit = page::limit(p.limit)?;
    let after = p
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c, TAG, 1))
        .transpose()?
        .map(|c| c.key[0].clone());
    sites::get(&state.store, &site).await.map_err(refusal)?;
    let all = parts::list(&state.store, &site).await.map_err(refusal)?;
    let show_costs = costs(&auth.access, &site);
    let rows: Vec<PartView> = all
        .iter()
        .filter(|x| after.as_deref().is_none_or(|a| x.stock.part.as_str() > a))
        .filter(|x| p.reorder.is_none_or(|r| x.stock.needs_reorder() == r))
        .take(limit as usize + 1)
        .map(|x| PartView::of(x, show_costs))
        .collect();
    let (parts, next) = page::split_page(rows, limit, |x| Cursor::new(TAG, vec![x.part.clone()]));
    Ok(Json(PartList { parts, next }))
}

/// Add a part to a site's catalogue.
#[utoipa::path(
    post, path = "/api/v1/sites/{site}/parts", tag = "parts",
    params(("site" = String, Path, description = "Site id", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    request_body = CreatePart,
    responses(
        (status = 201, description = "Created", body = PartView),
        (status = 404, description = "No such site", body = ErrorBody),
        (status = 409, description = "`rule`: `duplicate` (the part number is taken at this site)", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create_part(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(site): Path<String>,
    ApiJson(body): ApiJson<CreatePart>,
) -> Result<(StatusCode, Json<PartView>), ApiError> {
    let site = site_param(&site)?;
    require(&auth.access, &site, Permission::ManageStock)?;
    let mut p = Problems::default();
    p.text("part", &body.part, MAX_ID);
    p.text("name", &body.name, MAX_NAME);
    p.text("unit", &body.unit, MAX_UNIT);
    p.cents("unit_cost_cents", body.unit_cost_cents);
    p.check()?;
    let record = check_part(PartRecord {
        site: site.clone(),
        part: PartId(body.part),
        name: body.name,
        unit: body.unit,
        unit_cost: Money::from_minor(body.unit_cost_cents),
        reorder_level: body.reorder_level,
        on_hand: body.on_hand,
    })
    .map_err(invalid)?;
    let mut tx = state.store.transaction().await?;
    sites::get(&mut tx, &site).await.map_err(refusal)?;
    let mut created = parts::create(
        &mut tx,
        NewPart {
            site: site.clone(),
            part: record.part.clone(),
            name: record.name,
            unit: record.unit,
            unit_cost: record.unit_cost,
            reorder_level: record.reorder_level,
        },
        now(),
    )
    .await
    .map_err(refusal)?;
    if record.on_hand > 0 {
        created = parts::receive(&mut tx, &site, &record.part, record.on_hand, now())
            .await
            .map_err(|e| stock_refusal(e, &created))?
            .after;
    }
    audit::record(
        &mut tx,
        &entry(
            &auth,
            "part.create",
            "part",
            format!("{site}/{}", record.part),
            Some(site.clone()),
            None,
            audit_json(&created, json!({})),
        ),
    )
    .await?;
    tx.commit().await?;
    let view = PartView::of(&created, costs(&auth.access, &site));
    Ok((StatusCode::CREATED, Json(view)))
}

/// One part and its stock.
#[utoipa::path(
    get, path = "/api/v1/sites/{site}/parts/{part}", tag = "parts",
    params(
        ("site" = String, Path, description = "Site id", pattern = "^[A-Za-z0-9._-]{1,64}$"),
        ("part" = String, Path, description = "Part number", min_length = 1, max_length = 128, pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"),
    ),
    responses(
        (status = 200, description = "The part", body = PartView),
        (status = 400, description = "Not a valid site id or part number", body = ErrorBody),
        (status = 404, description = "No such part at this site", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_part(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((site, part)): Path<(String, String)>,
) -> Result<Json<PartView>, ApiError> {
    let (site, part) = (site_param(&site)?, part_param(&part)?);
    require(&auth.access, &site, Permission::View)?;
    let stored = parts::get(&state.store, &site, &part)
        .await
        .map_err(refusal)?;
    Ok(Json(PartView::of(&stored, costs(&auth.access, &site))))
}

/// Change a part's name, unit cost or reorder level.
#[utoipa::path(
    patch, path = "/api/v1/sites/{site}/parts/{part}", tag = "parts",
    params(
        ("site" = String, Path, description = "Site id", pattern = "^[A-Za-z0-9._-]{1,64}$"),
        ("part" = String, Path, description = "Part number", min_length = 1, max_length = 128, pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"),
    ),
    request_body = PatchPart,
    responses(
        (status = 200, description = "The part after the change", body = PartView),
        (status = 404, description = "No such part at this site", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn patch_part(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((site, part)): Path<(String, String)>,
    ApiJson(body): ApiJson<PatchPart>,
) -> Result<Json<PartView>, ApiError> {
    let (site, part) = (site_param(&site)?, part_param(&part)?);
    require(&auth.access, &site, Permission::ManageStock)?;
    let mut p = Problems::default();
    p.opt_text("name", body.name.as_deref(), MAX_NAME);
    if let Some(c) = body.unit_cost_cents {
        p.cents("unit_cost_cents", c);
    }
    p.check()?;
    let mut tx = state.store.transaction().await?;
    let before = locked(&mut tx, &site, &part).await?;
    let s = &before.stock;
    let record = check_part(PartRecord {
        site: site.clone(),
        part: part.clone(),
        name: body.name.unwrap_or_else(|| before.name.clone()),
        unit: s.unit.clone(),
        unit_cost: body.unit_cost_cents.map_or(s.unit_cost, Money::from_minor),
        reorder_level: body.reorder_level.unwrap_or(s.reorder_level),
        on_hand: s.on_hand(),
    })
    .map_err(invalid)?;
    let show = costs(&auth.access, &site);
    if record.name == before.name
        && record.unit_cost == s.unit_cost
        && record.reorder_level == s.reorder_level
    {
        return Ok(Json(PartView::of(&before, show)));
    }
    let changed = parts::set_details(
        &mut tx,
        &site,
        &part,
        record.name,
        record.unit_cost,
        record.reorder_level,
        now(),
    )
    .await
    .map_err(refusal)?;
    audit::record(
        &mut tx,
        &entry(
            &auth,
            "part.update",
            "part",
            format!("{site}/{part}"),
            Some(site.clone()),
            audit_json(&changed.before, json!({})),
            audit_json(&changed.after, json!({})),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(PartView::of(&changed.after, show)))
}

/// Goods received: adds to the quantity on hand.
#[utoipa::path(
    post, path = "/api/v1/sites/{site}/parts/{part}/receive", tag = "parts",
    params(
        ("site" = String, Path, description = "Site id", pattern = "^[A-Za-z0-9._-]{1,64}$"),
        ("part" = String, Path, description = "Part number", min_length = 1, max_length = 128, pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"),
    ),
    request_body = Receive,
    responses(
        (status = 200, description = "The part after the receipt", body = PartView),
        (status = 404, description = "No such part at this site", body = ErrorBody),
        (status = 409, description = "A stock rule refuses it (`stock_overflow`)", body = ErrorBody),
        (status = 422, description = "`qty` is not a whole number from 1 to 1,000,000,000", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn receive_part(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((site, part)): Path<(String, String)>,
    ApiJson(body): ApiJson<Receive>,
) -> Result<Json<PartView>, ApiError> {
    let (site, part) = (site_param(&site)?, part_param(&part)?);
    require(&auth.access, &site, Permission::ManageStock)?;
    if !(1..=MAX_RECEIPT).contains(&body.qty) {
        return Err(ApiError::invalid_field(
            "qty",
            format!("must be 1 to {MAX_RECEIPT}"),
        ));
    }
    let mut tx = state.store.transaction().await?;
    let current = locked(&mut tx, &site, &part).await?;
    let changed = parts::receive(&mut tx, &site, &part, body.qty, now())
        .await
        .map_err(|e| stock_refusal(e, &current))?;
    audit::record(
        &mut tx,
        &entry(
            &auth,
            "part.receive",
            "part",
            format!("{site}/{part}"),
            Some(site.clone()),
            audit_json(&changed.before, json!({})),
            audit_json(&changed.after, json!({ "received": body.qty })),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(PartView::of(
        &changed.after,
        costs(&auth.access, &site),
    )))
}

/// Stock count: sets the quantity on hand to what was counted.
#[utoipa::path(
    post, path = "/api/v1/sites/{site}/parts/{part}/adjust", tag = "parts",
    params(
        ("site" = String, Path, description = "Site id", pattern = "^[A-Za-z0-9._-]{1,64}$"),
        ("part" = String, Path, description = "Part number", min_length = 1, max_length = 128, pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"),
    ),
    request_body = Adjust,
    responses(
        (status = 200, description = "The part after the count", body = PartView),
        (status = 404, description = "No such part at this site", body = ErrorBody),
        (status = 409, description = "`rule`: `count_below_reserved` (the count is below what is reserved for work orders; the message gives the available quantity)", body = ErrorBody),
        (status = 422, description = "A field is invalid (a negative count, an empty reason)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn adjust_part(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((site, part)): Path<(String, String)>,
    ApiJson(body): ApiJson<Adjust>,
) -> Result<Json<PartView>, ApiError> {
    let (site, part) = (site_param(&site)?, part_param(&part)?);
    require(&auth.access, &site, Permission::ManageStock)?;
    let reason = body.reason.as_str();
    let mut p = Problems::default();
    p.text("reason", reason, MAX_TEXT);
    p.check()?;
    let mut tx = state.store.transaction().await?;
    let current = locked(&mut tx, &site, &part).await?;
    let changed = parts::adjust(&mut tx, &site, &part, body.counted, now())
        .await
        .map_err(|e| stock_refusal(e, &current))?;
    let correction = i64::from(body.counted) - i64::from(current.stock.on_hand());
    audit::record(
        &mut tx,
        &entry(
            &auth,
            "part.adjust",
            "part",
            format!("{site}/{part}"),
            Some(site.clone()),
            audit_json(&changed.before, json!({})),
            audit_json(
                &changed.after,
                json!({ "reason": reason, "correction": correction }),
            ),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(PartView::of(
        &changed.after,
        costs(&auth.access, &site),
    )))
}
