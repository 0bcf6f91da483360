//! The JSON shapes of work orders in the API, and their conversions to and
//! from the domain types of `dcmms_shared::cmms`.
//!
//! The domain types carry no OpenAPI schema, so each one the API shows or
//! takes has a mirror here with the same serde representation (snake_case
//! names, externally tagged enums), except that money is in cents
//! (`*_cents`) and instants and dates are strings. The mirrors are
//! converted field by field, so a change to the domain fails to compile
//! here rather than drifting from the document.

use crate::store::cmms::date_str;
use crate::store::cmms::work_orders::StoredWorkOrder;
use dcmms_shared::cmms::checklist::LimitFlag;
use dcmms_shared::cmms::state::{StateEvent, Who};
use dcmms_shared::cmms::work_order::{Comment, LabourEntry, PartUsage};
use dcmms_shared::cmms::{
    ActionKind, ChecklistItem, ItemInput, ItemResult, ItemStatus, OccurrenceKey, PartId, Priority,
    State, TaskKind, TaskSpec, WorkOrder, WorkOrderCost, WorkType,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;

/// An instant as RFC 3339 (UTC).
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

const DATE_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// Parses a `YYYY-MM-DD` date.
pub(crate) fn parse_date(s: &str) -> Result<Date, String> {
    Date::parse(s.trim(), DATE_FORMAT).map_err(|_| "must be a date as YYYY-MM-DD".to_owned())
}

/// Where a work order stands (see `GET /api/v1/work-orders/transitions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkOrderState {
    Requested,
    Open,
    Scheduled,
    Assigned,
    InProgress,
    OnHold,
    Completed,
    Verified,
    Closed,
    Cancelled,
}

impl From<State> for WorkOrderState {
    fn from(s: State) -> Self {
        match s {
            State::Requested => WorkOrderState::Requested,
            State::Open => WorkOrderState::Open,
            State::Scheduled => WorkOrderState::Scheduled,
            State::Assigned => WorkOrderState::Assigned,
            State::InProgress => WorkOrderState::InProgress,
            State::OnHold => WorkOrderState::OnHold,
            State::Completed => WorkOrderState::Completed,
            State::Verified => WorkOrderState::Verified,
            State::Closed => WorkOrderState::Closed,
            State::Cancelled => WorkOrderState::Cancelled,
        }
    }
}

impl From<WorkOrderState> for State {
    fn from(s: WorkOrderState) -> Self {
        match s {
            WorkOrderState::Requested => State::Requested,
            WorkOrderState::Open => State::Open,
            WorkOrderState::Scheduled => State::Scheduled,
            WorkOrderState::Assigned => State::Assigned,
            WorkOrderState::InProgress => State::InProgress,
            WorkOrderState::OnHold => State::OnHold,
            WorkOrderState::Completed => State::Completed,
            WorkOrderState::Verified => State::Verified,
            WorkOrderState::Closed => State::Closed,
            WorkOrderState::Cancelled => State::Cancelled,
        }
    }
}

/// A state-machine action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkOrderAction {
    Approve,
    Schedule,
    Assign,
    Start,
    Hold,
    Resume,
    Complete,
    Verify,
    Close,
    Cancel,
    Reopen,
}

impl From<ActionKind> for WorkOrderAction {
    fn from(a: ActionKind) -> Self {
        match a {
            ActionKind::Approve => WorkOrderAction::Approve,
            ActionKind::Schedule => WorkOrderAction::Schedule,
            ActionKind::Assign => WorkOrderAction::Assign,
            ActionKind::Start => WorkOrderAction::Start,
            ActionKind::Hold => WorkOrderAction::Hold,
            ActionKind::Resume => WorkOrderAction::Resume,
            ActionKind::Complete => WorkOrderAction::Complete,
            ActionKind::Verify => WorkOrderAction::Verify,
            ActionKind::Close => WorkOrderAction::Close,
            ActionKind::Cancel => WorkOrderAction::Cancel,
            ActionKind::Reopen => WorkOrderAction::Reopen,
        }
    }
}

/// Who may take an action, apart from the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhoMayAct {
    /// Supervisors and admins of the site.
    Supervisor,
    /// Supervisors and admins, and technicians assigned to the work order.
    AssigneeOrSupervisor,
    /// Supervisors and admins, and the technician who requested it while it
    /// is still `requested`.
    SupervisorOrOwnRequest,
}

impl From<Who> for WhoMayAct {
    fn from(w: Who) -> Self {
        match w {
            Who::Supervisor => WhoMayAct::Supervisor,
            Who::AssigneeOrSupervisor => WhoMayAct::AssigneeOrSupervisor,
            Who::SupervisorOrOwnRequest => WhoMayAct::SupervisorOrOwnRequest,
        }
    }
}

/// Why the work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkTypeName {
    Corrective,
    Preventive,
    Predictive,
    Inspection,
}

impl From<WorkType> for WorkTypeName {
    fn from(t: WorkType) -> Self {
        match t {
            WorkType::Corrective => WorkTypeName::Corrective,
            WorkType::Preventive => WorkTypeName::Preventive,
            WorkType::Predictive => WorkTypeName::Predictive,
            WorkType::Inspection => WorkTypeName::Inspection,
        }
    }
}

impl From<WorkTypeName> for WorkType {
    fn from(t: WorkTypeName) -> Self {
        match t {
            WorkTypeName::Corrective => WorkType::Corrective,
            WorkTypeName::Preventive => WorkType::Preventive,
            WorkTypeName::Predictive => WorkType::Predictive,
            WorkTypeName::Inspection => WorkType::Inspection,
        }
    }
}

/// Urgency, `p1` the most urgent; default SLA 4, 24, 72 and 168 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PriorityName {
    P1,
    P2,
    P3,
    P4,
}

impl From<Priority> for PriorityName {
    fn from(p: Priority) -> Self {
        match p {
            Priority::P1 => PriorityName::P1,
            Priority::P2 => PriorityName::P2,
            Priority::P3 => PriorityName::P3,
            Priority::P4 => PriorityName::P4,
        }
    }
}

impl From<PriorityName> for Priority {
    fn from(p: PriorityName) -> Self {
        match p {
            PriorityName::P1 => Priority::P1,
            PriorityName::P2 => Priority::P2,
            PriorityName::P3 => Priority::P3,
            PriorityName::P4 => Priority::P4,
        }
    }
}

/// What a checklist task asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ChecklistTaskKind {
    /// Pass or fail.
    Check,
    /// A measured value in `unit`; outside `min`..=`max` it is flagged
    /// (`min` above `max`: rule `bad_reading_limits`).
    Reading {
        #[schema(max_length = 32, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
        unit: String,
        min: Option<f64>,
        max: Option<f64>,
    },
    Photo,
    Attachment,
    Signature,
}

impl From<&TaskKind> for ChecklistTaskKind {
    fn from(k: &TaskKind) -> Self {
        match k {
            TaskKind::Check => ChecklistTaskKind::Check,
            TaskKind::Reading { unit, min, max } => ChecklistTaskKind::Reading {
                unit: unit.clone(),
                min: *min,
                max: *max,
            },
            TaskKind::Photo => ChecklistTaskKind::Photo,
            TaskKind::Attachment => ChecklistTaskKind::Attachment,
            TaskKind::Signature => ChecklistTaskKind::Signature,
        }
    }
}

impl From<ChecklistTaskKind> for TaskKind {
    fn from(k: ChecklistTaskKind) -> Self {
        match k {
            ChecklistTaskKind::Check => TaskKind::Check,
            ChecklistTaskKind::Reading { unit, min, max } => TaskKind::Reading { unit, min, max },
            ChecklistTaskKind::Photo => TaskKind::Photo,
            ChecklistTaskKind::Attachment => TaskKind::Attachment,
            ChecklistTaskKind::Signature => TaskKind::Signature,
        }
    }
}

/// One task of a checklist (of a new work order or a PM plan).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistTask {
    /// Unique within the checklist; results are recorded by key.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub key: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub label: String,
    pub kind: ChecklistTaskKind,
    /// Must be done or skipped with a reason before completion.
    #[serde(default)]
    pub required: bool,
}

impl From<&TaskSpec> for ChecklistTask {
    fn from(t: &TaskSpec) -> Self {
        ChecklistTask {
            key: t.key.clone(),
            label: t.label.clone(),
            kind: (&t.kind).into(),
            required: t.required,
        }
    }
}

impl From<ChecklistTask> for TaskSpec {
    fn from(t: ChecklistTask) -> Self {
        TaskSpec {
            key: t.key,
            label: t.label,
            kind: t.kind.into(),
            required: t.required,
        }
    }
}

/// Problems of a checklist's text fields, as field errors under `path`.
pub(crate) fn check_tasks(path: &str, tasks: &[ChecklistTask]) -> Vec<crate::api::FieldError> {
    use crate::api::FieldError;
    let mut problems = Vec::new();
    if tasks.len() > MAX_TASKS {
        problems.push(FieldError::new(path, format!("at most {MAX_TASKS} tasks")));
    }
    for (i, t) in tasks.iter().enumerate() {
        super::check_line(&mut problems, &format!("{path}[{i}].key"), &t.key, 100);
        super::check_line(
            &mut problems,
            &format!("{path}[{i}].label"),
            &t.label,
            MAX_TITLE,
        );
        if let ChecklistTaskKind::Reading { unit, .. } = &t.kind {
            if unit.chars().count() > 32 || unit.chars().any(char::is_control) {
                problems.push(FieldError::new(
                    format!("{path}[{i}].kind.reading.unit"),
                    "at most 32 characters without control characters",
                ));
            }
        }
    }
    problems
}

/// Most tasks in one checklist.
pub(crate) const MAX_TASKS: usize = 500;
/// Most characters of a title or a label.
pub(crate) const MAX_TITLE: usize = 200;
/// Most characters of a description, comment or reason.
pub(crate) const MAX_TEXT: usize = 10_000;
/// Largest SLA, in hours (ten years).
pub(crate) const MAX_SLA_HOURS: u32 = 87_600;

/// Which limit a reading broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitFlagName {
    BelowMin,
    AboveMax,
}

impl From<LimitFlag> for LimitFlagName {
    fn from(f: LimitFlag) -> Self {
        match f {
            LimitFlag::BelowMin => LimitFlagName::BelowMin,
            LimitFlag::AboveMax => LimitFlagName::AboveMax,
        }
    }
}

/// A validated checklist result.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChecklistResult {
    Check {
        passed: bool,
    },
    Reading {
        value: f64,
        unit: String,
        /// Set when the value is outside the task's limits (a finding).
        flag: Option<LimitFlagName>,
    },
    Attachment {
        reference: String,
    },
    Signature {
        signer: String,
        #[schema(format = DateTime)]
        signed_at: String,
    },
}

impl From<&ItemResult> for ChecklistResult {
    fn from(r: &ItemResult) -> Self {
        match r {
            ItemResult::Check { passed } => ChecklistResult::Check { passed: *passed },
            ItemResult::Reading { value, unit, flag } => ChecklistResult::Reading {
                value: *value,
                unit: unit.clone(),
                flag: flag.map(Into::into),
            },
            ItemResult::Attachment { reference } => ChecklistResult::Attachment {
                reference: reference.clone(),
            },
            ItemResult::Signature { signer, signed_at } => ChecklistResult::Signature {
                signer: signer.clone(),
                signed_at: rfc3339(*signed_at),
            },
        }
    }
}

/// Where a checklist item stands: `pending`, or done / skipped by whom.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChecklistItemStatus {
    Pending,
    Done {
        result: ChecklistResult,
        by: String,
        #[schema(format = DateTime)]
        at: String,
    },
    Skipped {
        reason: String,
        by: String,
        #[schema(format = DateTime)]
        at: String,
    },
}

impl From<&ItemStatus> for ChecklistItemStatus {
    fn from(s: &ItemStatus) -> Self {
        match s {
            ItemStatus::Pending => ChecklistItemStatus::Pending,
            ItemStatus::Done { result, by, at } => ChecklistItemStatus::Done {
                result: result.into(),
                by: by.to_string(),
                at: rfc3339(*at),
            },
            ItemStatus::Skipped { reason, by, at } => ChecklistItemStatus::Skipped {
                reason: reason.clone(),
                by: by.to_string(),
                at: rfc3339(*at),
            },
        }
    }
}

/// A checklist task and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ChecklistItemView {
    pub key: String,
    pub label: String,
    pub kind: ChecklistTaskKind,
    pub required: bool,
    pub status: ChecklistItemStatus,
}

impl From<&ChecklistItem> for ChecklistItemView {
    fn from(i: &ChecklistItem) -> Self {
        ChecklistItemView {
            key: i.task.key.clone(),
            label: i.task.label.clone(),
            kind: (&i.task.kind).into(),
            required: i.task.required,
            status: (&i.status).into(),
        }
    }
}

/// What a technician enters for a checklist task.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ChecklistInput {
    Check {
        passed: bool,
    },
    Reading {
        value: f64,
    },
    /// For photo and attachment tasks: the id of the stored file (blank:
    /// rule `attachment_required`).
    Attachment {
        #[schema(max_length = 1000, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
        reference: String,
    },
    /// The name of the person signing; the time is the time of recording
    /// (blank: rule `signer_required`).
    Signature {
        #[schema(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
        signer: String,
    },
}

impl ChecklistInput {
    /// Problems of the input's text, as field errors under `path`.
    pub(crate) fn check(&self, path: &str) -> Vec<crate::api::FieldError> {
        let (field, text, max) = match self {
            ChecklistInput::Attachment { reference } => ("attachment.reference", reference, 1000),
            ChecklistInput::Signature { signer } => ("signature.signer", signer, 200),
            _ => return Vec::new(),
        };
        if text.chars().count() > max || text.chars().any(char::is_control) {
            vec![crate::api::FieldError::new(
                format!("{path}.{field}"),
                format!("at most {max} characters without control characters"),
            )]
        } else {
            Vec::new()
        }
    }
}

impl From<ChecklistInput> for ItemInput {
    fn from(i: ChecklistInput) -> Self {
        match i {
            ChecklistInput::Check { passed } => ItemInput::Check { passed },
            ChecklistInput::Reading { value } => ItemInput::Reading { value },
            ChecklistInput::Attachment { reference } => ItemInput::Attachment { reference },
            ChecklistInput::Signature { signer } => ItemInput::Signature { signer },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PartUsageView {
    pub part: String,
    pub quantity: u32,
    pub unit_cost_cents: i64,
    #[schema(format = Date)]
    pub date: String,
}

impl From<&PartUsage> for PartUsageView {
    fn from(p: &PartUsage) -> Self {
        PartUsageView {
            part: p.part.to_string(),
            quantity: p.quantity,
            unit_cost_cents: p.unit_cost.minor(),
            date: date_str(p.date),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LabourView {
    /// User id of the technician.
    pub technician: String,
    #[schema(format = Date)]
    pub date: String,
    pub minutes: u32,
    pub note: Option<String>,
}

impl From<&LabourEntry> for LabourView {
    fn from(l: &LabourEntry) -> Self {
        LabourView {
            technician: l.technician.to_string(),
            date: date_str(l.date),
            minutes: l.minutes,
            note: l.note.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CommentView {
    pub by: String,
    #[schema(format = DateTime)]
    pub at: String,
    pub text: String,
}

impl From<&Comment> for CommentView {
    fn from(c: &Comment) -> Self {
        CommentView {
            by: c.by.to_string(),
            at: rfc3339(c.at),
            text: c.text.clone(),
        }
    }
}

/// One transition of the work order's history.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StateEventView {
    #[schema(format = DateTime)]
    pub at: String,
    pub by: String,
    pub action: WorkOrderAction,
    pub from: WorkOrderState,
    pub to: WorkOrderState,
    /// For hold, cancel and reopen.
    pub reason: Option<String>,
}

impl From<&StateEvent> for StateEventView {
    fn from(e: &StateEvent) -> Self {
        StateEventView {
            at: rfc3339(e.at),
            by: e.by.to_string(),
            action: e.action.into(),
            from: e.from.into(),
            to: e.to.into(),
            reason: e.reason.clone(),
        }
    }
}

/// The preventive-maintenance occurrence a work order was generated for.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OccurrenceRef {
    pub plan: String,
    pub index: u64,
}

impl From<&OccurrenceKey> for OccurrenceRef {
    fn from(k: &OccurrenceKey) -> Self {
        OccurrenceRef {
            plan: k.plan.to_string(),
            index: k.index,
        }
    }
}

/// Labour at the technicians' hourly rates plus parts at their unit cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct WorkOrderCostView {
    pub labour_cents: i64,
    pub parts_cents: i64,
    pub total_cents: i64,
}

impl From<WorkOrderCost> for WorkOrderCostView {
    fn from(c: WorkOrderCost) -> Self {
        WorkOrderCostView {
            labour_cents: c.labour.minor(),
            parts_cents: c.parts.minor(),
            total_cents: c.total.minor(),
        }
    }
}

/// A quantity of a part set aside for a work order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PartQty {
    pub part: String,
    pub qty: u32,
}

/// A work order in full.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorkOrderView {
    pub id: String,
    pub site: String,
    pub asset: String,
    pub work_type: WorkTypeName,
    pub priority: PriorityName,
    pub title: String,
    pub description: String,
    /// User id of the requester (`pm-generator` for PM work orders).
    pub requested_by: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub state: WorkOrderState,
    /// User ids.
    pub assignees: Vec<String>,
    #[schema(format = Date)]
    pub scheduled_for: Option<String>,
    #[schema(format = Date)]
    pub due: Option<String>,
    pub sla_hours: u32,
    /// Creation time plus the SLA.
    #[schema(format = DateTime)]
    pub sla_deadline: String,
    /// Set while on hold.
    pub hold_reason: Option<String>,
    pub checklist: Vec<ChecklistItemView>,
    pub parts_used: Vec<PartUsageView>,
    pub labour: Vec<LabourView>,
    pub comments: Vec<CommentView>,
    /// Every transition, oldest first.
    pub history: Vec<StateEventView>,
    pub pm_occurrence: Option<OccurrenceRef>,
    /// Stock reserved for this work order, by part.
    pub reserved_parts: Vec<PartQty>,
    /// Pass it back as `expected_version` to refuse a change made meanwhile.
    pub version: i64,
    /// Null when the caller may not see costs at this site
    /// (`view_costs`), or when a labour entry's technician has no rate.
    pub cost: Option<WorkOrderCostView>,
}

impl WorkOrderView {
    pub(crate) fn new(
        stored: &StoredWorkOrder,
        updated_ms: i64,
        reserved: &BTreeMap<PartId, u32>,
        cost: Option<WorkOrderCost>,
    ) -> Self {
        let wo = &stored.work_order;
        WorkOrderView {
            id: wo.id.to_string(),
            site: wo.site.to_string(),
            asset: wo.asset.to_string(),
            work_type: wo.work_type.into(),
            priority: wo.priority.into(),
            title: wo.title.clone(),
            description: wo.description.clone(),
            requested_by: wo.requested_by.to_string(),
            created_at: rfc3339(wo.created_at),
            updated_at: crate::api::telemetry::format_ms(updated_ms),
            state: wo.state.into(),
            assignees: wo.assignees.iter().map(ToString::to_string).collect(),
            scheduled_for: wo.scheduled_for.map(date_str),
            due: wo.due.map(date_str),
            sla_hours: wo.sla_hours,
            sla_deadline: rfc3339(wo.sla_deadline()),
            hold_reason: wo.hold_reason.clone(),
            checklist: wo.checklist.items.iter().map(Into::into).collect(),
            parts_used: wo.parts_used.iter().map(Into::into).collect(),
            labour: wo.labour.iter().map(Into::into).collect(),
            comments: wo.comments.iter().map(Into::into).collect(),
            history: wo.history.iter().map(Into::into).collect(),
            pm_occurrence: wo.pm_occurrence.as_ref().map(Into::into),
            reserved_parts: reserved
                .iter()
                .map(|(part, qty)| PartQty {
                    part: part.to_string(),
                    qty: *qty,
                })
                .collect(),
            version: stored.version,
            cost: cost.map(Into::into),
        }
    }
}

/// A work order as listings show it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorkOrderSummary {
    pub id: String,
    pub site: String,
    pub asset: String,
    pub work_type: WorkTypeName,
    pub priority: PriorityName,
    pub state: WorkOrderState,
    pub title: String,
    pub assignees: Vec<String>,
    #[schema(format = Date)]
    pub due: Option<String>,
    #[schema(format = DateTime)]
    pub sla_deadline: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub version: i64,
}

impl WorkOrderSummary {
    pub(crate) fn new(wo: &WorkOrder, version: i64, updated_ms: i64) -> Self {
        WorkOrderSummary {
            id: wo.id.to_string(),
            site: wo.site.to_string(),
            asset: wo.asset.to_string(),
            work_type: wo.work_type.into(),
            priority: wo.priority.into(),
            state: wo.state.into(),
            title: wo.title.clone(),
            assignees: wo.assignees.iter().map(ToString::to_string).collect(),
            due: wo.due.map(date_str),
            sla_deadline: rfc3339(wo.sla_deadline()),
            created_at: rfc3339(wo.created_at),
            updated_at: crate::api::telemetry::format_ms(updated_ms),
            version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkOrderList {
    pub work_orders: Vec<WorkOrderSummary>,
    /// Cursor of the next page (same filters and sort); null on the last.
    pub next: Option<String>,
}
