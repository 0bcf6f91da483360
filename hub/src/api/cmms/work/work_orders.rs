//! `GET/POST /api/v1/work-orders` and `GET /api/v1/work-orders/{id}`:
//! listing with filters and keyset pages, creation, and the full record.

use super::dto::{
    check_tasks, parse_date, ChecklistTask, PriorityName, WorkOrderList, WorkOrderState,
    WorkOrderSummary, WorkTypeName, MAX_SLA_HOURS, MAX_TEXT, MAX_TITLE,
};
use super::{
    audit_view, check_id, check_line, check_text, entry, full_view, is_plain_id, store_error,
    updated_ms, visible_work_order, Reader, WorkOrderView,
};
use crate::api::page;
use crate::api::{ApiError, ApiJson, ApiQuery, AppState, ErrorBody, FieldError};
use crate::audit;
use crate::auth::{require, Authenticated};
use crate::store::cmms::work_orders::{self as store_wo, Sort, SortField, WorkOrderFilter};
use crate::store::cmms::{ms, CmmsError};
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::Json;
use dcmms_shared::cmms::{
    AssetId, NewWorkOrder, Permission, Priority, SiteId, SiteScope, State, TransitionError, UserId,
    WorkOrderId, WorkType,
};
use serde::Deserialize;
use std::collections::BTreeSet;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// Order of `GET /api/v1/work-orders`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkOrderSortField {
    CreatedAt,
    /// Work orders without a due date come last ascending, first descending.
    Due,
    /// `p1` first ascending.
    Priority,
    UpdatedAt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// Query of `GET /api/v1/work-orders` (documentation; the handler reads
/// the pairs itself so that list parameters may repeat). Every filter
/// given must match; list filters match any of their values.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct WorkOrderListParams {
    /// Site names (repeat the parameter, or separate with commas). Sites
    /// the caller cannot see (or that cannot exist) give nothing.
    site: Option<Vec<String>>,
    /// Asset id.
    #[param(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,128}$")]
    asset: Option<String>,
    /// States (repeat, or separate with commas).
    #[param(inline)]
    state: Option<Vec<WorkOrderState>>,
    /// Work orders assigned to this user id; `me` for the caller.
    #[param(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,128}$")]
    assignee: Option<String>,
    /// Due on or after this date (`YYYY-MM-DD`; work orders without a due
    /// date are left out).
    #[param(format = Date)]
    due_from: Option<String>,
    /// Due on or before this date (`YYYY-MM-DD`).
    #[param(format = Date)]
    due_to: Option<String>,
    /// Work types (repeat, or separate with commas).
    #[param(inline, rename = "type")]
    #[serde(rename = "type")]
    work_type: Option<Vec<WorkTypeName>>,
    /// Priorities (repeat, or separate with commas).
    #[param(inline)]
    priority: Option<Vec<PriorityName>>,
    /// Case-insensitive part of the title.
    #[param(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    q: Option<String>,
    /// Default `created_at`.
    #[param(inline)]
    sort: Option<WorkOrderSortField>,
    /// Default `asc`; ties are broken by id in the same direction.
    #[param(inline)]
    order: Option<SortOrder>,
    /// Default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next` of the previous page (same filters and sort).
    cursor: Option<String>,
}

/// The parsed query.
#[derive(Debug, Default)]
struct ListQuery {
    sites: Option<BTreeSet<SiteId>>,
    asset: Option<AssetId>,
    states: Vec<State>,
    assignee: Option<String>,
    due_from: Option<time::Date>,
    due_to: Option<time::Date>,
    work_types: Vec<WorkType>,
    priorities: Vec<Priority>,
    q: Option<String>,
    sort: Option<WorkOrderSortField>,
    order: Option<SortOrder>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A snake_case enum value of a query parameter, exactly as the document
/// lists it (an empty value or one with spaces is refused).
fn enum_value<T: for<'de> Deserialize<'de>>(key: &str, value: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|_| ApiError::bad_request(format!("`{key}` has no value {value:?}")))
}

/// Every comma-separated value of a list parameter (`state=open,assigned`
/// is `state=open&state=assigned`).
fn values(value: &str) -> impl Iterator<Item = &str> {
    value.split(',')
}

/// The site names of a `site` value: names no site can have (an empty one
/// included) match nothing.
fn site_values(value: &str) -> impl Iterator<Item = &str> {
    values(value).filter(|s| dcmms_shared::validate_name(s).is_ok())
}

fn parse_list_query(pairs: Vec<(String, String)>) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery::default();
    let mut seen = BTreeSet::new();
    for (key, value) in pairs {
        let repeatable = matches!(key.as_str(), "site" | "state" | "type" | "priority");
        if !repeatable && !seen.insert(key.clone()) {
            return Err(ApiError::bad_request(format!("`{key}` is given twice")));
        }
        let single = || Some(value.clone());
        match key.as_str() {
            "site" => {
                let sites = q.sites.get_or_insert_with(BTreeSet::new);
                for s in site_values(&value) {
                    sites.insert(SiteId::from(s));
                }
            }
            "asset" => {
                if !is_plain_id(&value) {
                    return Err(ApiError::bad_request(
                        "`asset` is 1 to 128 characters without control characters",
                    ));
                }
                q.asset = Some(AssetId(value.clone()));
            }
            "state" => {
                for v in values(&value) {
                    let s: WorkOrderState = enum_value("state", v)?;
                    q.states.push(s.into());
                }
            }
            "assignee" => {
                if !is_plain_id(&value) {
                    return Err(ApiError::bad_request(
                        "`assignee` is `me` or a user id without control characters",
                    ));
                }
                q.assignee = single();
            }
            "due_from" | "due_to" => {
                let d = parse_date(&value)
                    .map_err(|m| ApiError::bad_request(format!("`{key}` {m}")))?;
                if key == "due_from" {
                    q.due_from = Some(d);
                } else {
                    q.due_to = Some(d);
                }
            }
            "type" => {
                for v in values(&value) {
                    let t: WorkTypeName = enum_value("type", v)?;
                    q.work_types.push(t.into());
                }
            }
            "priority" => {
                for v in values(&value) {
                    let p: PriorityName = enum_value("priority", v)?;
                    q.priorities.push(p.into());
                }
            }
            "q" => {
                if value.chars().count() > MAX_TITLE || value.chars().any(char::is_control) {
                    return Err(ApiError::bad_request(format!(
                        "`q` has at most {MAX_TITLE} characters, none a control character"
                    )));
                }
                q.q = single();
            }
            "sort" => q.sort = Some(enum_value("sort", &value)?),
            "order" => q.order = Some(enum_value("order", &value)?),
            "limit" => {
                let n = value
                    .trim()
                    .parse()
                    .map_err(|_| ApiError::bad_request("`limit` must be a whole number"))?;
                q.limit = Some(n);
            }
            // An empty cursor is the first page.
            "cursor" => q.cursor = Some(value.clone()).filter(|c| !c.is_empty()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{other}`"
                )))
            }
        }
    }
    Ok(q)
}

/// List work orders at the sites the caller sees.
#[utoipa::path(
    get, path = "/api/v1/work-orders", tag = "work orders",
    params(WorkOrderListParams),
    responses((status = 200, description = "A page of work orders", body = WorkOrderList)),
    security(("bearer" = [])),
)]
pub async fn list_work_orders(
    AxState(state): AxState<AppState>,
    auth: Authenticated,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<WorkOrderList>, ApiError> {
    let q = parse_list_query(pairs)?;
    let limit = page::limit(q.limit)?;
    let visible = auth.access.visible_sites();
    let sites = match q.sites {
        None => visible,
        Some(wanted) => {
            SiteScope::Only(wanted.into_iter().filter(|s| visible.contains(s)).collect())
        }
    };
    let assignee = q.assignee.map(|a| {
        if a == "me" {
            auth.access.user.clone()
        } else {
            UserId(a)
        }
    });
    let filter = WorkOrderFilter {
        sites,
        asset: q.asset,
        states: q.states,
        assignee,
        due_from: q.due_from,
        due_to: q.due_to,
        work_types: q.work_types,
        priorities: q.priorities,
        title_contains: q.q,
    };
    let sort = Sort {
        field: match q.sort.unwrap_or(WorkOrderSortField::CreatedAt) {
            WorkOrderSortField::CreatedAt => SortField::CreatedAt,
            WorkOrderSortField::Due => SortField::Due,
            WorkOrderSortField::Priority => SortField::Priority,
            WorkOrderSortField::UpdatedAt => SortField::UpdatedAt,
        },
        descending: q.order == Some(SortOrder::Desc),
    };
    let page = store_wo::list(
        &state.store,
        &filter,
        sort,
        q.cursor.as_deref(),
        Some(limit),
    )
    .await
    .map_err(store_error)?;
    let ids: Vec<&WorkOrderId> = page.items.iter().map(|s| &s.work_order.id).collect();
    let updated = updated_ms(crate::store::Db::Pool(&state.store), &ids).await?;
    let work_orders = page
        .items
        .iter()
        .map(|s| {
            let wo = &s.work_order;
            let at = updated
                .get(&wo.id)
                .copied()
                .unwrap_or_else(|| ms(wo.created_at));
            WorkOrderSummary::new(wo, s.version, at)
        })
        .collect();
    Ok(Json(WorkOrderList {
        work_orders,
        next: page.next_cursor,
    }))
}

/// Body of `POST /api/v1/work-orders`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkOrder {
    /// Site name.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub site: String,
    /// An asset at that site.
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,128}$")]
    pub asset: String,
    /// Default `corrective`.
    pub work_type: Option<WorkTypeName>,
    /// Default `p3`.
    pub priority: Option<PriorityName>,
    /// 1 to 200 characters, not only white space.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub title: String,
    #[serde(default)]
    #[schema(
        max_length = 10000,
        pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
    )]
    pub description: String,
    /// `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub due: Option<String>,
    /// Hours from creation to completion; default: the priority's.
    #[schema(minimum = 1, maximum = 87600)]
    pub sla_hours: Option<u32>,
    #[serde(default)]
    #[schema(max_items = 500)]
    pub checklist: Vec<ChecklistTask>,
}

/// Checks and converts a creation body; every problem is named.
fn new_work_order(body: CreateWorkOrder) -> Result<NewWorkOrder, ApiError> {
    let mut problems = Vec::new();
    let site = match dcmms_shared::validate_name(&body.site) {
        Ok(()) => Some(SiteId(body.site.clone())),
        Err(_) => {
            problems.push(FieldError::new(
                "site",
                "a site name is 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'",
            ));
            None
        }
    };
    check_id(&mut problems, "asset", &body.asset);
    check_line(&mut problems, "title", &body.title, MAX_TITLE);
    check_text(&mut problems, "description", &body.description, MAX_TEXT);
    let due = match body.due.as_deref().map(parse_date).transpose() {
        Ok(d) => d,
        Err(m) => {
            problems.push(FieldError::new("due", m));
            None
        }
    };
    if let Some(h) = body.sla_hours {
        if !(1..=MAX_SLA_HOURS).contains(&h) {
            problems.push(FieldError::new(
                "sla_hours",
                format!("must be between 1 and {MAX_SLA_HOURS}"),
            ));
        }
    }
    problems.extend(check_tasks("checklist", &body.checklist));
    ApiError::invalid(problems)?;
    let Some(site) = site else {
        return Err(ApiError::invalid_field("site", "is invalid"));
    };
    Ok(NewWorkOrder {
        id: WorkOrderId(String::new()),
        site,
        asset: AssetId(body.asset),
        work_type: body.work_type.map_or(WorkType::Corrective, Into::into),
        priority: body.priority.map_or(Priority::P3, Into::into),
        title: body.title,
        description: body.description,
        due,
        sla_hours: body.sla_hours,
        checklist: body.checklist.into_iter().map(Into::into).collect(),
        pm_occurrence: None,
    })
}

/// Refusals of a creation that are about the body: 422 naming the field.
fn creation_error(e: CmmsError) -> ApiError {
    match e {
        CmmsError::NotFound {
            entity: "asset",
            id,
        } => ApiError::invalid_field("asset", format!("no asset {id}")),
        CmmsError::Invalid {
            code: "asset_at_other_site",
            message,
        } => ApiError::invalid_field("asset", message),
        CmmsError::Domain(TransitionError::TitleRequired) => {
            ApiError::invalid_field("title", "must not be blank")
        }
        CmmsError::Domain(TransitionError::Checklist(e)) => {
            ApiError::invalid_field("checklist", format!("{} ({})", e, e.code()))
        }
        e => store_error(e),
    }
}

/// Create a work order. A technician's starts `requested` (to be
/// approved); a supervisor's or an administrator's starts `open`.
#[utoipa::path(
    post, path = "/api/v1/work-orders", tag = "work orders",
    request_body = CreateWorkOrder,
    responses(
        (status = 201, description = "Created", body = WorkOrderView),
        (status = 422, description = "A field is invalid (an unknown asset, or one at another site: `asset`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create_work_order(
    AxState(state): AxState<AppState>,
    auth: Authenticated,
    ApiJson(body): ApiJson<CreateWorkOrder>,
) -> Result<(StatusCode, Json<WorkOrderView>), ApiError> {
    let new = new_work_order(body)?;
    let actor = require(&auth.access, &new.site, Permission::RequestWork)?;
    let site = new.site.clone();
    let at = OffsetDateTime::now_utc();
    let mut tx = state.store.transaction().await?;
    let created = store_wo::create(&mut tx, new, &actor, at)
        .await
        .map_err(creation_error)?;
    let view = full_view(&mut Reader::Tx(&mut tx), Some(&auth), &created, ms(at)).await?;
    audit::record(
        &mut tx,
        &entry(
            auth.actor(),
            "work_order.create",
            "work_order",
            created.work_order.id.to_string(),
            &site,
            None,
            audit_view(&view),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One work order in full: checklist, parts, labour, comments, history,
/// reservations, version, and its cost for callers who may see costs.
#[utoipa::path(
    get, path = "/api/v1/work-orders/{id}", tag = "work orders",
    params(("id" = String, Path, description = "Work-order id")),
    responses(
        (status = 200, description = "The work order", body = WorkOrderView),
        (status = 404, description = "No such work order (or at a site the caller cannot see)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_work_order(
    AxState(state): AxState<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<WorkOrderView>, ApiError> {
    let stored = visible_work_order(crate::store::Db::Pool(&state.store), &auth, &id).await?;
    require(&auth.access, &stored.work_order.site, Permission::View)?;
    let updated = updated_ms(
        crate::store::Db::Pool(&state.store),
        &[&stored.work_order.id],
    )
    .await?;
    let at = updated
        .get(&stored.work_order.id)
        .copied()
        .unwrap_or_else(|| ms(stored.work_order.created_at));
    let view = full_view(&mut Reader::Pool(&state.store), Some(&auth), &stored, at).await?;
    Ok(Json(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn list_parameters_repeat_or_take_commas() {
        let q = parse_list_query(pairs(&[
            ("site", "north,south"),
            ("site", "east"),
            ("state", "open"),
            ("state", "in_progress,on_hold"),
            ("type", "preventive"),
            ("priority", "p1,p2"),
            ("due_from", "2025-03-01"),
        ]))
        .unwrap();
        let sites: Vec<&str> = q
            .sites
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(sites, ["east", "north", "south"]);
        assert_eq!(q.states, [State::Open, State::InProgress, State::OnHold]);
        assert_eq!(q.work_types, [WorkType::Preventive]);
        assert_eq!(q.priorities, [Priority::P1, Priority::P2]);
        assert_eq!(q.due_from, Some(time::macros::date!(2025 - 03 - 01)));
        let q = parse_list_query(pairs(&[("site", "no good")])).unwrap();
        assert_eq!(q.sites, Some(BTreeSet::new()), "matches nothing");
        for bad in [
            &[("state", "done")][..],
            // Values exactly as the document lists them.
            &[("state", "open, on_hold")],
            &[("state", "")],
            &[("priority", "p1,")],
            &[("asset", "a"), ("asset", "b")],
            &[("due_to", "03/01/2025")],
            &[("colour", "red")],
            &[("limit", "-1")],
            &[("sort", "title")],
        ] {
            assert!(parse_list_query(pairs(bad)).is_err(), "{bad:?}");
        }
    }
}
