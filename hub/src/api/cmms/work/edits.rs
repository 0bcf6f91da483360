//! `POST /api/v1/work-orders/{id}/edits`: changes that are not
//! transitions (checklist results and skips, labour, parts used,
//! comments, details, priority, due date).
//!
//! Edits need a technician role (or higher) at the site (`execute_work`;
//! `comment` for comments); the domain decides the rest (409 with its
//! rule).

use super::dto::{parse_date, ChecklistInput, PriorityName, MAX_SLA_HOURS, MAX_TEXT, MAX_TITLE};
use super::transitions::{before_view, finish, target};
use super::{check_id, check_line, check_text, check_workers, store_error, WorkOrderView};
use crate::api::{ApiError, ApiJson, AppState, ErrorBody, FieldError};
use crate::auth::Authenticated;
use crate::store::cmms::work_orders as store_wo;
use crate::store::cmms::{parts, CmmsError};
use axum::extract::{Path, State as AxState};
use axum::Json;
use dcmms_shared::cmms::work_order::{LabourEntry, PartUsage};
use dcmms_shared::cmms::{Edit, Money, PartId, Permission, SiteId, UserId};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Most minutes one labour entry may log (about ten weeks).
const MAX_MINUTES: u32 = 100_000;

/// Body of `POST /api/v1/work-orders/{id}/edits`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    pub edit: WorkOrderEdit,
    /// The version last read; a work order changed meanwhile is refused
    /// with rule `version_conflict`.
    pub expected_version: Option<i64>,
}

/// A change that is not a transition, e.g.
/// `{"record_item": {"key": "fan", "input": {"check": {"passed": true}}}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkOrderEdit {
    /// Record (or correct) a checklist result.
    RecordItem {
        #[schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
        )]
        key: String,
        input: ChecklistInput,
    },
    /// Skip a checklist item, with a reason (blank: rule
    /// `reason_required`).
    SkipItem {
        #[schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
        )]
        key: String,
        #[schema(
            max_length = 10000,
            pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
        )]
        reason: String,
    },
    /// Time spent on the work order.
    LogLabour {
        /// User id; default the caller. Technicians log only for
        /// themselves.
        #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,128}$")]
        technician: Option<String>,
        /// `YYYY-MM-DD`; default today (UTC).
        #[schema(format = Date)]
        date: Option<String>,
        /// 0: rule `invalid_quantity`.
        #[schema(maximum = 100000)]
        minutes: u32,
        #[schema(
            max_length = 10000,
            pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
        )]
        note: Option<String>,
    },
    /// Parts used on the work order; taken off the stock on completion.
    UsePart {
        #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,128}$")]
        part: String,
        /// 0: rule `invalid_quantity`.
        #[schema(maximum = 1000000)]
        quantity: u32,
        /// Default the part's unit cost in the site's catalogue (required
        /// for a part not in it; below 0: rule `invalid_quantity`).
        #[schema(minimum = -100000000, maximum = 100000000)]
        unit_cost_cents: Option<i64>,
        /// `YYYY-MM-DD`; default today (UTC).
        #[schema(format = Date)]
        date: Option<String>,
    },
    /// A comment (blank: rule `text_required`).
    Comment {
        #[schema(
            max_length = 10000,
            pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
        )]
        text: String,
    },
    SetDetails {
        #[schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
        )]
        title: String,
        #[serde(default)]
        #[schema(
            max_length = 10000,
            pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
        )]
        description: String,
    },
    /// `sla_hours` absent: the priority's default SLA.
    SetPriority {
        priority: PriorityName,
        #[schema(minimum = 1, maximum = 87600)]
        sla_hours: Option<u32>,
    },
    /// `due` absent or null: no due date.
    SetDue {
        #[schema(format = Date)]
        due: Option<String>,
    },
}

/// Largest quantity of a part in one request.
pub(super) const MAX_QTY: u32 = 1_000_000;
/// Largest unit cost, in cents.
const MAX_COST_CENTS: i64 = 100_000_000;

fn edit_audit_action(edit: &Edit) -> &'static str {
    match edit {
        Edit::RecordItem { .. } => "work_order.record_item",
        Edit::SkipItem { .. } => "work_order.skip_item",
        Edit::LogLabour(_) => "work_order.log_labour",
        Edit::UsePart(_) => "work_order.use_part",
        Edit::Comment { .. } => "work_order.comment",
        Edit::SetDetails { .. } => "work_order.set_details",
        Edit::SetPriority { .. } => "work_order.set_priority",
        Edit::SetDue { .. } => "work_order.set_due",
    }
}

fn date_or_today(
    problems: &mut Vec<FieldError>,
    field: &str,
    date: Option<&str>,
    at: OffsetDateTime,
) -> time::Date {
    match date.map(parse_date) {
        None => at.date(),
        Some(Ok(d)) => d,
        Some(Err(m)) => {
            problems.push(FieldError::new(field, m));
            at.date()
        }
    }
}

/// The domain edit of a request; validates it (users, texts, the part's
/// cost from the site's catalogue).
async fn edit_of(
    state: &AppState,
    auth: &Authenticated,
    site: &SiteId,
    edit: WorkOrderEdit,
    at: OffsetDateTime,
) -> Result<Edit, ApiError> {
    let mut problems = Vec::new();
    let edit = match edit {
        WorkOrderEdit::RecordItem { key, input } => {
            check_line(&mut problems, "edit.record_item.key", &key, 100);
            problems.extend(input.check("edit.record_item.input"));
            Edit::RecordItem {
                key,
                input: input.into(),
            }
        }
        WorkOrderEdit::SkipItem { key, reason } => {
            check_line(&mut problems, "edit.skip_item.key", &key, 100);
            check_text(&mut problems, "edit.skip_item.reason", &reason, MAX_TEXT);
            Edit::SkipItem { key, reason }
        }
        WorkOrderEdit::LogLabour {
            technician,
            date,
            minutes,
            note,
        } => {
            let field = "edit.log_labour";
            let technician = technician.map_or_else(|| auth.access.user.clone(), UserId);
            if technician != auth.access.user {
                // `check_workers` refuses ids that cannot be users.
                let named = [(format!("{field}.technician"), technician.clone())];
                problems.extend(check_workers(&state.store, site, &named).await?);
            }
            if minutes > MAX_MINUTES {
                problems.push(FieldError::new(
                    format!("{field}.minutes"),
                    format!("at most {MAX_MINUTES}"),
                ));
            }
            if let Some(n) = &note {
                check_text(&mut problems, &format!("{field}.note"), n, MAX_TEXT);
            }
            let date = date_or_today(&mut problems, &format!("{field}.date"), date.as_deref(), at);
            Edit::LogLabour(LabourEntry {
                technician,
                date,
                minutes,
                note,
            })
        }
        WorkOrderEdit::UsePart {
            part,
            quantity,
            unit_cost_cents,
            date,
        } => {
            let field = "edit.use_part";
            check_id(&mut problems, &format!("{field}.part"), &part);
            if quantity > MAX_QTY {
                problems.push(FieldError::new(
                    format!("{field}.quantity"),
                    format!("at most {MAX_QTY}"),
                ));
            }
            if unit_cost_cents.is_some_and(|c| c.abs() > MAX_COST_CENTS) {
                problems.push(FieldError::new(
                    format!("{field}.unit_cost_cents"),
                    format!("between -{MAX_COST_CENTS} and {MAX_COST_CENTS}"),
                ));
            }
            let part = PartId(part);
            let unit_cost = match unit_cost_cents {
                Some(c) => Money::from_minor(c),
                None if !problems.is_empty() => Money::ZERO,
                None => match parts::get(&state.store, site, &part).await {
                    Ok(p) => p.stock.unit_cost,
                    Err(CmmsError::NotFound { .. }) => {
                        problems.push(FieldError::new(
                            format!("{field}.part"),
                            format!(
                                "part {part} is not in the catalogue of site {site}: give unit_cost_cents"
                            ),
                        ));
                        Money::ZERO
                    }
                    Err(e) => return Err(store_error(e)),
                },
            };
            let date = date_or_today(&mut problems, &format!("{field}.date"), date.as_deref(), at);
            Edit::UsePart(PartUsage {
                part,
                quantity,
                unit_cost,
                date,
            })
        }
        WorkOrderEdit::Comment { text } => {
            check_text(&mut problems, "edit.comment.text", &text, MAX_TEXT);
            Edit::Comment { text }
        }
        WorkOrderEdit::SetDetails { title, description } => {
            check_line(&mut problems, "edit.set_details.title", &title, MAX_TITLE);
            check_text(
                &mut problems,
                "edit.set_details.description",
                &description,
                MAX_TEXT,
            );
            Edit::SetDetails { title, description }
        }
        WorkOrderEdit::SetPriority {
            priority,
            sla_hours,
        } => {
            if sla_hours.is_some_and(|h| !(1..=MAX_SLA_HOURS).contains(&h)) {
                problems.push(FieldError::new(
                    "edit.set_priority.sla_hours",
                    format!("must be between 1 and {MAX_SLA_HOURS}"),
                ));
            }
            Edit::SetPriority {
                priority: priority.into(),
                sla_hours,
            }
        }
        WorkOrderEdit::SetDue { due } => {
            let due = match due.as_deref().map(parse_date).transpose() {
                Ok(d) => d,
                Err(m) => {
                    problems.push(FieldError::new("edit.set_due.due", m));
                    None
                }
            };
            Edit::SetDue { due }
        }
    };
    ApiError::invalid(problems)?;
    Ok(edit)
}

/// Record a checklist result, skip an item, log labour, use a part,
/// comment, or change the details, priority or due date.
#[utoipa::path(
    post, path = "/api/v1/work-orders/{id}/edits", tag = "work orders",
    params(("id" = String, Path, description = "Work-order id")),
    request_body = EditRequest,
    responses(
        (status = 200, description = "The work order after the edit", body = WorkOrderView),
        (status = 404, description = "No such work order", body = ErrorBody),
        (status = 409, description = "Refused; `rule` names why (`not_editable_in_state`, `not_assigned`, `own_entries_only`, `supervisor_only`, `invalid_quantity`, `text_required`, `title_required`, checklist rules such as `unknown_checklist_item` or `result_kind_mismatch`, `version_conflict`, or a stock rule for parts used after completion)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn post_edit(
    AxState(state): AxState<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<EditRequest>,
) -> Result<Json<WorkOrderView>, ApiError> {
    let permission = match req.edit {
        WorkOrderEdit::Comment { .. } => Permission::Comment,
        _ => Permission::ExecuteWork,
    };
    let (stored, actor) = target(&state, &auth, &id, permission).await?;
    let wo_id = stored.work_order.id;
    let at = OffsetDateTime::now_utc();
    let edit = edit_of(&state, &auth, &stored.work_order.site, req.edit, at).await?;
    let name = edit_audit_action(&edit);
    let mut tx = state.store.transaction().await?;
    let before = before_view(&mut tx, &wo_id).await?;
    let change = store_wo::edit(&mut tx, &wo_id, edit, &actor, at, req.expected_version)
        .await
        .map_err(store_error)?;
    Ok(Json(
        finish(tx, &auth, (name, "part.settle"), before, change, at).await?,
    ))
}
