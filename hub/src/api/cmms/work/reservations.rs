//! Reserving stock for a work order and giving it back:
//! `POST /api/v1/work-orders/{id}/parts` and
//! `DELETE /api/v1/work-orders/{id}/parts/{part}` (`manage_stock`).

use super::edits::MAX_QTY;
use super::transitions::target;
use super::{audit_json, check_id, entry, is_plain_id, store_error};
use crate::api::{ApiError, ApiJson, ApiQuery, AppState, ErrorBody, FieldError};
use crate::audit;
use crate::auth::Authenticated;
use crate::store::cmms::work_orders::StoredWorkOrder;
use crate::store::cmms::{parts, Changed, CmmsError};
use crate::store::Tx;
use axum::extract::{Path, State as AxState};
use axum::Json;
use dcmms_shared::cmms::{PartId, Permission, StockItem, WorkOrderId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// Body of `POST /api/v1/work-orders/{id}/parts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservePart {
    /// Part id in the catalogue of the work order's site.
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,128}$")]
    pub part: String,
    /// Added to what is already reserved for this work order (0: rule
    /// `zero_quantity`).
    #[schema(maximum = 1000000)]
    pub qty: u32,
}

/// A part's stock as seen from one work order.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartReservationView {
    pub work_order: String,
    pub part: String,
    pub unit: String,
    /// Reserved for this work order.
    pub reserved_for_work_order: u32,
    pub on_hand: u32,
    /// Reserved for all work orders.
    pub reserved: u32,
    pub available: u32,
}

impl PartReservationView {
    fn new(wo: &WorkOrderId, s: &StockItem) -> Self {
        PartReservationView {
            work_order: wo.to_string(),
            part: s.part.to_string(),
            unit: s.unit.clone(),
            reserved_for_work_order: s.reserved_for(wo),
            on_hand: s.on_hand(),
            reserved: s.reserved(),
            available: s.available(),
        }
    }
}

/// Commits a reservation change with its audit entry.
async fn finish_stock(
    mut tx: Tx,
    auth: &Authenticated,
    action: &'static str,
    stored: &StoredWorkOrder,
    change: Changed<parts::StoredPart>,
) -> Result<PartReservationView, ApiError> {
    let wo = &stored.work_order;
    let before = PartReservationView::new(&wo.id, &change.before.stock);
    let after = PartReservationView::new(&wo.id, &change.after.stock);
    audit::record(
        &mut tx,
        &entry(
            auth.actor(),
            action,
            "work_order",
            wo.id.to_string(),
            &wo.site,
            audit_json(&before),
            audit_json(&after),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Reserve stock of a part for a work order still to be done.
#[utoipa::path(
    post, path = "/api/v1/work-orders/{id}/parts", tag = "work orders",
    params(("id" = String, Path, description = "Work-order id")),
    request_body = ReservePart,
    responses(
        (status = 200, description = "The part's stock after the reservation", body = PartReservationView),
        (status = 404, description = "No such work order", body = ErrorBody),
        (status = 409, description = "`rule`: `insufficient_stock`, `zero_quantity`, `not_editable_in_state` (the work order is done)", body = ErrorBody),
        (status = 422, description = "The part is not in the site's catalogue (`part`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn reserve_part(
    AxState(state): AxState<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReservePart>,
) -> Result<Json<PartReservationView>, ApiError> {
    let (stored, _) = target(&state, &auth, &id, Permission::ManageStock).await?;
    let mut problems = Vec::new();
    check_id(&mut problems, "part", &body.part);
    if body.qty > MAX_QTY {
        problems.push(FieldError::new("qty", format!("at most {MAX_QTY}")));
    }
    ApiError::invalid(problems)?;
    let part = PartId(body.part);
    let at = OffsetDateTime::now_utc();
    let mut tx = state.store.transaction().await?;
    let change =
        match parts::reserve_part(&mut tx, &stored.work_order.id, &part, body.qty, at).await {
            Err(CmmsError::NotFound { entity: "part", .. }) => {
                return Err(ApiError::invalid_field(
                    "part",
                    format!(
                        "part {part} is not in the catalogue of site {}",
                        stored.work_order.site
                    ),
                ))
            }
            r => r.map_err(store_error)?,
        };
    let view = finish_stock(tx, &auth, "work_order.reserve_part", &stored, change).await?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReleaseParams {
    /// How much to give back (0: rule `zero_quantity`); default all of
    /// this work order's reservation of the part.
    #[param(maximum = 1000000)]
    qty: Option<u32>,
}

/// Give back stock reserved for a work order.
#[utoipa::path(
    delete, path = "/api/v1/work-orders/{id}/parts/{part}", tag = "work orders",
    params(
        ("id" = String, Path, description = "Work-order id"),
        ("part" = String, Path, description = "Part id"),
        ReleaseParams,
    ),
    responses(
        (status = 200, description = "The part's stock after the release", body = PartReservationView),
        (status = 404, description = "No such work order, or nothing of that part reserved for it", body = ErrorBody),
        (status = 409, description = "`rule`: `not_reserved` (less reserved than `qty`), `zero_quantity`", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn release_part(
    AxState(state): AxState<AppState>,
    auth: Authenticated,
    Path((id, part)): Path<(String, String)>,
    ApiQuery(p): ApiQuery<ReleaseParams>,
) -> Result<Json<PartReservationView>, ApiError> {
    let (stored, _) = target(&state, &auth, &id, Permission::ManageStock).await?;
    let wo_id = &stored.work_order.id;
    let nothing = || {
        ApiError::not_found(format!(
            "nothing of part {part:?} is reserved for work order {wo_id}"
        ))
    };
    if !is_plain_id(&part) {
        return Err(nothing());
    }
    if p.qty.is_some_and(|q| q > MAX_QTY) {
        return Err(ApiError::bad_request(format!("`qty` is at most {MAX_QTY}")));
    }
    let part = PartId(part.clone());
    let at = OffsetDateTime::now_utc();
    let mut tx = state.store.transaction().await?;
    let reserved = parts::reservations_for(&mut tx, wo_id)
        .await
        .map_err(store_error)?
        .get(&part)
        .copied()
        .unwrap_or(0);
    if reserved == 0 {
        return Err(nothing());
    }
    let qty = p.qty.unwrap_or(reserved);
    let change = parts::release_part(&mut tx, wo_id, &part, qty, at)
        .await
        .map_err(store_error)?;
    let view = finish_stock(tx, &auth, "work_order.release_part", &stored, change).await?;
    Ok(Json(view))
}
