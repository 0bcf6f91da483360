//! State-machine transitions of a work order, the transition table itself,
//! and what every change of a work order shares (locking it for its audit
//! entry, committing with the entries, resolving the caller).
//!
//! Transitions need a technician role (or higher) at the work order's site
//! (`execute_work`); which technician, supervisor or administrator may take
//! which action in which state is the domain's rule and comes back as a
//! 409 with its code.

use super::dto::{parse_date, WhoMayAct, WorkOrderAction, WorkOrderState, MAX_TEXT};
use super::{
    audit_json, audit_view, check_text, check_workers, entry, full_view, store_error, updated_ms,
    visible_work_order, Reader, WorkOrderView,
};
use crate::api::{ApiError, ApiJson, AppState, ErrorBody, FieldError};
use crate::audit;
use crate::auth::{require, Authenticated};
use crate::store::cmms::work_orders::{self as store_wo, StoredWorkOrder, WorkOrderChange};
use crate::store::cmms::{conn, ms, Changed, Db};
use crate::store::Tx;
use axum::extract::{Path, State as AxState};
use axum::Json;
use dcmms_shared::cmms::{
    transitions, Action, ActionKind, Actor, Permission, SiteId, StockItem, UserId, WorkOrderId,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// One row of the state machine.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionRow {
    pub from: WorkOrderState,
    pub action: WorkOrderAction,
    pub to: WorkOrderState,
    /// Who may take the action (viewers never may).
    pub who: WhoMayAct,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionTable {
    /// Every allowed (from, action) -> to; anything else is refused with
    /// rule `not_allowed_from_state`.
    pub transitions: Vec<TransitionRow>,
}

/// The work-order state machine, from the one definition the hub and the
/// gateways enforce.
#[utoipa::path(
    get, path = "/api/v1/work-orders/transitions", tag = "work orders",
    responses((status = 200, description = "The transition table", body = TransitionTable)),
    security(("bearer" = [])),
)]
pub async fn transition_table(_auth: Authenticated) -> Json<TransitionTable> {
    Json(TransitionTable {
        transitions: transitions()
            .iter()
            .map(|(from, action, to)| TransitionRow {
                from: (*from).into(),
                action: (*action).into(),
                to: (*to).into(),
                who: action.who().into(),
            })
            .collect(),
    })
}

/// Body of `POST /api/v1/work-orders/{id}/transitions`: the action and
/// the payload it takes, e.g. `{"action": "assign", "assignees": ["<user
/// id>"], "expected_version": 3}`. `expected_version` is the version last
/// read; a work order changed meanwhile is refused with rule
/// `version_conflict`. (The document's shape; the handler reads a
/// [`TransitionBody`], so that every refusal names its field.)
#[derive(Debug, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
#[allow(dead_code)]
pub enum TransitionRequest {
    Approve {
        expected_version: Option<i64>,
    },
    Schedule {
        /// `YYYY-MM-DD`, not before today (UTC).
        #[schema(format = Date)]
        date: String,
        expected_version: Option<i64>,
    },
    Assign {
        /// User ids holding a technician role (or higher) at the site; they
        /// replace the current assignees (none: rule `assignee_required`).
        #[schema(max_items = 100)]
        assignees: Vec<String>,
        expected_version: Option<i64>,
    },
    Start {
        expected_version: Option<i64>,
    },
    Hold {
        /// Why (blank or absent: rule `reason_required`).
        #[serde(default)]
        #[schema(
            max_length = 10000,
            pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
        )]
        reason: String,
        expected_version: Option<i64>,
    },
    Resume {
        expected_version: Option<i64>,
    },
    Complete {
        expected_version: Option<i64>,
    },
    Verify {
        expected_version: Option<i64>,
    },
    Close {
        expected_version: Option<i64>,
    },
    Cancel {
        /// Why (blank or absent: rule `reason_required`).
        #[serde(default)]
        #[schema(
            max_length = 10000,
            pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
        )]
        reason: String,
        expected_version: Option<i64>,
    },
    Reopen {
        /// Why (blank or absent: rule `reason_required`).
        #[serde(default)]
        #[schema(
            max_length = 10000,
            pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
        )]
        reason: String,
        expected_version: Option<i64>,
    },
}

/// The body as read: every field of every action, checked against the
/// action by [`action_of`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    action: WorkOrderAction,
    date: Option<String>,
    assignees: Option<Vec<String>>,
    reason: Option<String>,
    expected_version: Option<i64>,
}

fn unused(problems: &mut Vec<FieldError>, field: &str, present: bool, action: ActionKind) {
    if present {
        problems.push(FieldError::new(
            field,
            format!("is not taken by the `{action}` action"),
        ));
    }
}

/// The domain action of a request and its expected version; validates the
/// payload (assignees against the site's users).
async fn action_of(
    state: &AppState,
    site: &SiteId,
    req: TransitionBody,
) -> Result<(Action, Option<i64>), ApiError> {
    let kind = match req.action {
        WorkOrderAction::Approve => ActionKind::Approve,
        WorkOrderAction::Schedule => ActionKind::Schedule,
        WorkOrderAction::Assign => ActionKind::Assign,
        WorkOrderAction::Start => ActionKind::Start,
        WorkOrderAction::Hold => ActionKind::Hold,
        WorkOrderAction::Resume => ActionKind::Resume,
        WorkOrderAction::Complete => ActionKind::Complete,
        WorkOrderAction::Verify => ActionKind::Verify,
        WorkOrderAction::Close => ActionKind::Close,
        WorkOrderAction::Cancel => ActionKind::Cancel,
        WorkOrderAction::Reopen => ActionKind::Reopen,
    };
    let mut problems = Vec::new();
    let schedule = kind == ActionKind::Schedule;
    let assign = kind == ActionKind::Assign;
    let takes_reason = matches!(
        kind,
        ActionKind::Hold | ActionKind::Cancel | ActionKind::Reopen
    );
    unused(&mut problems, "date", req.date.is_some() && !schedule, kind);
    unused(
        &mut problems,
        "assignees",
        req.assignees.is_some() && !assign,
        kind,
    );
    unused(
        &mut problems,
        "reason",
        req.reason.is_some() && !takes_reason,
        kind,
    );
    // Absent or blank: the domain's `reason_required`.
    let reason = req.reason.unwrap_or_default();
    check_text(&mut problems, "reason", &reason, MAX_TEXT);
    let mut date = None;
    if schedule {
        match req.date.as_deref().map(parse_date) {
            None => problems.push(FieldError::new("date", "is required to schedule")),
            Some(Err(m)) => problems.push(FieldError::new("date", m)),
            Some(Ok(d)) => date = Some(d),
        }
    }
    let mut users = BTreeSet::new();
    if assign {
        match req.assignees {
            None => problems.push(FieldError::new("assignees", "is required to assign")),
            Some(list) if list.len() > 100 => {
                problems.push(FieldError::new("assignees", "at most 100 users"))
            }
            Some(list) => {
                let named: Vec<(String, UserId)> = list
                    .into_iter()
                    .enumerate()
                    .map(|(i, u)| (format!("assignees[{i}]"), UserId(u)))
                    .collect();
                problems.extend(check_workers(&state.store, site, &named).await?);
                users = named.into_iter().map(|(_, u)| u).collect();
            }
        }
    }
    ApiError::invalid(problems)?;
    let action = match kind {
        ActionKind::Approve => Action::Approve,
        ActionKind::Schedule => match date {
            Some(date) => Action::Schedule { date },
            None => return Err(ApiError::invalid_field("date", "is required to schedule")),
        },
        ActionKind::Assign => Action::Assign { users },
        ActionKind::Start => Action::Start,
        ActionKind::Hold => Action::Hold { reason },
        ActionKind::Resume => Action::Resume,
        ActionKind::Complete => Action::Complete,
        ActionKind::Verify => Action::Verify,
        ActionKind::Close => Action::Close,
        ActionKind::Cancel => Action::Cancel { reason },
        ActionKind::Reopen => Action::Reopen { reason },
    };
    Ok((action, req.expected_version))
}

fn transition_audit_action(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Approve => "work_order.approve",
        ActionKind::Schedule => "work_order.schedule",
        ActionKind::Assign => "work_order.assign",
        ActionKind::Start => "work_order.start",
        ActionKind::Hold => "work_order.hold",
        ActionKind::Resume => "work_order.resume",
        ActionKind::Complete => "work_order.complete",
        ActionKind::Verify => "work_order.verify",
        ActionKind::Close => "work_order.close",
        ActionKind::Cancel => "work_order.cancel",
        ActionKind::Reopen => "work_order.reopen",
    }
}

/// Stock of a part as audit entries record it.
#[derive(Debug, Serialize)]
struct StockAudit {
    site: String,
    part: String,
    unit: String,
    on_hand: u32,
    reserved: u32,
    /// Reserved quantity by work order.
    reservations: BTreeMap<String, u32>,
}

impl From<&StockItem> for StockAudit {
    fn from(s: &StockItem) -> Self {
        StockAudit {
            site: s.site.to_string(),
            part: s.part.to_string(),
            unit: s.unit.clone(),
            on_hand: s.on_hand(),
            reserved: s.reserved(),
            reservations: s
                .reservations()
                .iter()
                .map(|(w, q)| (w.to_string(), *q))
                .collect(),
        }
    }
}

/// Locks the work order inside `tx` and reads what its audit entry shows
/// before a change.
pub(super) async fn before_view(
    tx: &mut Tx,
    id: &WorkOrderId,
) -> Result<Option<WorkOrderView>, ApiError> {
    let Some(stored) = store_wo::load(&mut conn(tx), id, true)
        .await
        .map_err(store_error)?
    else {
        return Ok(None);
    };
    let updated = updated_ms(Db::Tx(tx), &[id]).await?;
    let at = updated
        .get(id)
        .copied()
        .unwrap_or_else(|| ms(stored.work_order.created_at));
    Ok(Some(
        full_view(&mut Reader::Tx(tx), None, &stored, at).await?,
    ))
}

/// Commits a work-order change with its audit entries (the work order,
/// and every stock item it settled or released, as `stock_action`);
/// returns the view after.
pub(super) async fn finish(
    mut tx: Tx,
    auth: &Authenticated,
    (action, stock_action): (&'static str, &'static str),
    before: Option<WorkOrderView>,
    change: WorkOrderChange,
    at: OffsetDateTime,
) -> Result<WorkOrderView, ApiError> {
    let view = full_view(&mut Reader::Tx(&mut tx), Some(auth), &change.after, ms(at)).await?;
    let wo = &change.after.work_order;
    audit::record(
        &mut tx,
        &entry(
            auth.actor(),
            action,
            "work_order",
            wo.id.to_string(),
            &wo.site,
            before.as_ref().and_then(audit_view),
            audit_view(&view),
        ),
    )
    .await?;
    for Changed { before, after } in &change.stock {
        audit::record(
            &mut tx,
            &entry(
                auth.actor(),
                stock_action,
                "part",
                after.part.to_string(),
                &after.site,
                audit_json(&StockAudit::from(before)),
                audit_json(&StockAudit::from(after)),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(view)
}

/// Loads the work order and resolves the caller there with `permission`.
pub(super) async fn target(
    state: &AppState,
    auth: &Authenticated,
    id: &str,
    permission: Permission,
) -> Result<(StoredWorkOrder, Actor), ApiError> {
    let stored = visible_work_order(Db::Pool(&state.store), auth, id).await?;
    let actor = require(&auth.access, &stored.work_order.site, permission)?;
    Ok((stored, actor))
}

/// Take a state-machine action (see `GET /api/v1/work-orders/transitions`).
#[utoipa::path(
    post, path = "/api/v1/work-orders/{id}/transitions", tag = "work orders",
    params(("id" = String, Path, description = "Work-order id")),
    request_body = TransitionRequest,
    responses(
        (status = 200, description = "The work order after the transition", body = WorkOrderView),
        (status = 404, description = "No such work order", body = ErrorBody),
        (status = 409, description = "Refused; `rule` names why: a state-machine rule (`not_allowed_from_state`, `supervisor_only`, `not_assigned`, `assignee_required`, `reason_required`, `schedule_in_past`, `checklist_incomplete`, `read_only_role`), `version_conflict`, or a stock rule on completion (`insufficient_stock`)", body = ErrorBody),
        (status = 422, description = "A payload field is missing or invalid, or not taken by the action, or names a user without a technician role at the site (`assignees[i]`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn post_transition(
    AxState(state): AxState<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TransitionBody>,
) -> Result<Json<WorkOrderView>, ApiError> {
    let (stored, actor) = target(&state, &auth, &id, Permission::ExecuteWork).await?;
    let wo_id = stored.work_order.id;
    let (action, expected) = action_of(&state, &stored.work_order.site, req).await?;
    let at = OffsetDateTime::now_utc();
    let mut tx = state.store.transaction().await?;
    let before = before_view(&mut tx, &wo_id).await?;
    let change = store_wo::transition(&mut tx, &wo_id, &action, &actor, at, expected)
        .await
        .map_err(store_error)?;
    let names = (
        transition_audit_action(action.kind()),
        if action.kind() == ActionKind::Cancel {
            "part.release"
        } else {
            "part.settle"
        },
    );
    Ok(Json(finish(tx, &auth, names, before, change, at).await?))
}
