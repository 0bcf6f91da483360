//! Work orders: the record, its creation, and the edits that are not state
//! transitions (checklist results, labour, parts, comments, details).
//!
//! State changes go through the state machine in [`super::state`] only;
//! this module never changes `state`, `assignees`, `scheduled_for`,
//! `hold_reason` or `history` itself. Both the hub and the gateway's offline
//! cache run the same [`WorkOrder::create`] and [`WorkOrder::apply_edit`], so
//! an edit refused on one side is refused on the other with the same code.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};

use super::checklist::{Checklist, ItemInput, TaskSpec};
use super::cost::Money;
use super::ids::{AssetId, PartId, SiteId, UserId, WorkOrderId};
use super::iso_date;
use super::pm::OccurrenceKey;
use super::role::{Actor, Permission, Role};
use super::state::{State, StateEvent, TransitionError};

/// Why the work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkType {
    /// Repair after a failure or a defect.
    Corrective,
    /// Planned maintenance from a PM plan (calendar or meter).
    Preventive,
    /// Maintenance triggered by condition data (a threshold, a trend).
    Predictive,
    /// An inspection round; findings may lead to corrective work.
    Inspection,
}

/// How urgent the work is, P1 the most urgent. Each priority has a default
/// SLA (hours from creation to completion) that a work order may override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Emergency: safety risk or the site is down. Default SLA 4 h.
    P1,
    /// Significant production loss. Default SLA 24 h.
    P2,
    /// Degraded equipment, no immediate loss. Default SLA 72 h.
    P3,
    /// Routine. Default SLA 168 h (one week).
    P4,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Priority::P1, Priority::P2, Priority::P3, Priority::P4];

    pub fn default_sla_hours(self) -> u32 {
        match self {
            Priority::P1 => 4,
            Priority::P2 => 24,
            Priority::P3 => 72,
            Priority::P4 => 168,
        }
    }
}

/// Time a technician spent on the work order. The money value is computed
/// later from the technician's rate (see [`super::cost`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabourEntry {
    pub technician: UserId,
    /// The day the work was done (UTC); costs roll up by this date.
    #[serde(with = "iso_date")]
    pub date: Date,
    pub minutes: u32,
    pub note: Option<String>,
}

/// Parts used on the work order, at the unit cost of the stock they came
/// from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartUsage {
    pub part: PartId,
    /// In the part's stock unit (pieces, or e.g. millilitres for oil).
    pub quantity: u32,
    pub unit_cost: Money,
    /// The day the parts were used (UTC); costs roll up by this date.
    #[serde(with = "iso_date")]
    pub date: Date,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub by: UserId,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub text: String,
}

/// A work order. Fields are public for storage and display; change `state`
/// and the fields it guards only through [`super::state::apply`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrder {
    pub id: WorkOrderId,
    pub site: SiteId,
    pub asset: AssetId,
    pub work_type: WorkType,
    pub priority: Priority,
    pub title: String,
    pub description: String,
    pub requested_by: UserId,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub state: State,
    pub assignees: BTreeSet<UserId>,
    #[serde(with = "iso_date::option")]
    pub scheduled_for: Option<Date>,
    /// Date the work should be done by, if any (a PM occurrence's due date).
    #[serde(with = "iso_date::option")]
    pub due: Option<Date>,
    /// Hours from creation to completion before the SLA is breached.
    pub sla_hours: u32,
    /// Set while on hold.
    pub hold_reason: Option<String>,
    pub checklist: Checklist,
    pub parts_used: Vec<PartUsage>,
    pub labour: Vec<LabourEntry>,
    pub comments: Vec<Comment>,
    /// Every transition, oldest first.
    pub history: Vec<StateEvent>,
    /// The PM occurrence this work order was generated for.
    pub pm_occurrence: Option<OccurrenceKey>,
}

/// What a caller supplies to create a work order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewWorkOrder {
    pub id: WorkOrderId,
    pub site: SiteId,
    pub asset: AssetId,
    pub work_type: WorkType,
    pub priority: Priority,
    pub title: String,
    pub description: String,
    #[serde(with = "iso_date::option")]
    pub due: Option<Date>,
    /// `None`: the priority's default.
    pub sla_hours: Option<u32>,
    pub checklist: Vec<TaskSpec>,
    pub pm_occurrence: Option<OccurrenceKey>,
}

/// A change to a work order that is not a state transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Edit {
    RecordItem {
        key: String,
        input: ItemInput,
    },
    SkipItem {
        key: String,
        reason: String,
    },
    LogLabour(LabourEntry),
    UsePart(PartUsage),
    Comment {
        text: String,
    },
    SetDetails {
        title: String,
        description: String,
    },
    /// `sla_hours: None` resets the SLA to the priority's default.
    SetPriority {
        priority: Priority,
        sla_hours: Option<u32>,
    },
    SetDue {
        #[serde(with = "iso_date::option")]
        due: Option<Date>,
    },
}

impl Edit {
    pub fn as_str(&self) -> &'static str {
        match self {
            Edit::RecordItem { .. } => "record_item",
            Edit::SkipItem { .. } => "skip_item",
            Edit::LogLabour(_) => "log_labour",
            Edit::UsePart(_) => "use_part",
            Edit::Comment { .. } => "comment",
            Edit::SetDetails { .. } => "set_details",
            Edit::SetPriority { .. } => "set_priority",
            Edit::SetDue { .. } => "set_due",
        }
    }
}

impl WorkOrder {
    /// Creates a work order. A technician's work order starts as a request
    /// (`requested`, to be approved); a supervisor's or an admin's starts
    /// `open`. The PM generator acts as an admin of the site. Viewers create
    /// nothing.
    pub fn create(
        new: NewWorkOrder,
        actor: &Actor,
        at: OffsetDateTime,
    ) -> Result<WorkOrder, TransitionError> {
        check_site(actor, &new.site)?;
        let state = match actor.role {
            Role::Viewer => return Err(TransitionError::ReadOnlyRole { role: actor.role }),
            Role::Technician => State::Requested,
            Role::Supervisor | Role::Admin => State::Open,
        };
        if new.title.trim().is_empty() {
            return Err(TransitionError::TitleRequired);
        }
        let checklist = Checklist::from_tasks(new.checklist)?;
        Ok(WorkOrder {
            id: new.id,
            site: new.site,
            asset: new.asset,
            work_type: new.work_type,
            priority: new.priority,
            title: new.title,
            description: new.description,
            requested_by: actor.user.clone(),
            created_at: at,
            state,
            assignees: BTreeSet::new(),
            scheduled_for: None,
            due: new.due,
            sla_hours: new
                .sla_hours
                .unwrap_or_else(|| new.priority.default_sla_hours()),
            hold_reason: None,
            checklist,
            parts_used: Vec::new(),
            labour: Vec::new(),
            comments: Vec::new(),
            history: Vec::new(),
            pm_occurrence: new.pm_occurrence,
        })
    }

    /// Whether `user` is among the assignees.
    pub fn is_assigned_to(&self, user: &UserId) -> bool {
        self.assignees.contains(user)
    }

    /// When the SLA runs out.
    pub fn sla_deadline(&self) -> OffsetDateTime {
        self.created_at + Duration::hours(i64::from(self.sla_hours))
    }

    /// When the work was last completed, if it is completed, verified or
    /// closed now (a reopened work order has no completion time).
    pub fn completed_at(&self) -> Option<OffsetDateTime> {
        if !matches!(
            self.state,
            State::Completed | State::Verified | State::Closed
        ) {
            return None;
        }
        self.history
            .iter()
            .rev()
            .find(|e| e.to == State::Completed)
            .map(|e| e.at)
    }

    /// Completed after the deadline, or still not completed at `now` and
    /// past it. Cancelled work never breaches.
    pub fn sla_breached(&self, now: OffsetDateTime) -> bool {
        match (self.state, self.completed_at()) {
            (State::Cancelled, _) => false,
            (_, Some(done)) => done > self.sla_deadline(),
            (_, None) => now > self.sla_deadline(),
        }
    }

    /// Checks and applies an edit; on error nothing changes.
    ///
    /// Rules, checked in this order:
    /// 1. the actor acts for this work order's site (`wrong_site`);
    /// 2. viewers change nothing (`read_only_role`);
    /// 3. comments: any technician, supervisor or admin, in every state;
    /// 4. checklist results, skips, labour and parts ("execution"): while
    ///    `in_progress` or `on_hold`, and for supervisors and admins also
    ///    while `completed`, to correct the record before verification
    ///    (`not_editable_in_state`); a technician only on a work order
    ///    assigned to them (`not_assigned`) and logs labour only for
    ///    themselves (`own_entries_only`);
    /// 5. details, priority and due date: supervisors and admins in every
    ///    state but `closed` and `cancelled`; the technician who requested it
    ///    while it is still `requested` (`supervisor_only`).
    pub fn apply_edit(
        &mut self,
        edit: Edit,
        actor: &Actor,
        at: OffsetDateTime,
    ) -> Result<(), TransitionError> {
        check_site(actor, &self.site)?;
        if actor.role == Role::Viewer {
            return Err(TransitionError::ReadOnlyRole { role: actor.role });
        }
        let action = edit.as_str();
        match edit {
            Edit::Comment { text } => {
                if text.trim().is_empty() {
                    return Err(TransitionError::TextRequired { action });
                }
                self.comments.push(Comment {
                    by: actor.user.clone(),
                    at,
                    text,
                });
            }
            Edit::RecordItem { key, input } => {
                self.check_execution(actor, action)?;
                self.checklist.record(&key, input, &actor.user, at)?;
            }
            Edit::SkipItem { key, reason } => {
                self.check_execution(actor, action)?;
                self.checklist.skip(&key, &reason, &actor.user, at)?;
            }
            Edit::LogLabour(entry) => {
                self.check_execution(actor, action)?;
                if !actor.role.is_supervisor() && entry.technician != actor.user {
                    return Err(TransitionError::OwnEntriesOnly { action });
                }
                if entry.minutes == 0 {
                    return Err(TransitionError::InvalidQuantity { action });
                }
                self.labour.push(entry);
            }
            Edit::UsePart(usage) => {
                self.check_execution(actor, action)?;
                if usage.quantity == 0 || usage.unit_cost.minor() < 0 {
                    return Err(TransitionError::InvalidQuantity { action });
                }
                self.parts_used.push(usage);
            }
            Edit::SetDetails { title, description } => {
                self.check_details(actor, action)?;
                if title.trim().is_empty() {
                    return Err(TransitionError::TitleRequired);
                }
                self.title = title;
                self.description = description;
            }
            Edit::SetPriority {
                priority,
                sla_hours,
            } => {
                self.check_details(actor, action)?;
                self.priority = priority;
                self.sla_hours = sla_hours.unwrap_or_else(|| priority.default_sla_hours());
            }
            Edit::SetDue { due } => {
                self.check_details(actor, action)?;
                self.due = due;
            }
        }
        Ok(())
    }

    fn check_execution(&self, actor: &Actor, action: &'static str) -> Result<(), TransitionError> {
        let open_for_edit = match self.state {
            State::InProgress | State::OnHold => true,
            State::Completed => actor.role.is_supervisor(),
            _ => false,
        };
        if !open_for_edit {
            return Err(TransitionError::NotEditableInState {
                state: self.state,
                action,
            });
        }
        if !actor.can(Permission::ExecuteWork) {
            return Err(TransitionError::ReadOnlyRole { role: actor.role });
        }
        if !actor.role.is_supervisor() && !self.is_assigned_to(&actor.user) {
            return Err(TransitionError::NotAssigned {
                user: actor.user.clone(),
            });
        }
        Ok(())
    }

    fn check_details(&self, actor: &Actor, action: &'static str) -> Result<(), TransitionError> {
        if matches!(self.state, State::Closed | State::Cancelled) {
            return Err(TransitionError::NotEditableInState {
                state: self.state,
                action,
            });
        }
        let own_request = self.state == State::Requested && self.requested_by == actor.user;
        if actor.can(Permission::ManageWork) || own_request {
            Ok(())
        } else {
            Err(TransitionError::SupervisorOnly { action })
        }
    }
}

/// The actor must have been resolved for the work order's site.
pub(crate) fn check_site(actor: &Actor, site: &SiteId) -> Result<(), TransitionError> {
    if &actor.site == site {
        Ok(())
    } else {
        Err(TransitionError::WrongSite {
            user: actor.user.clone(),
            actor_site: actor.site.clone(),
            site: site.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmms::checklist::TaskKind;
    use time::macros::{date, datetime};

    const AT: OffsetDateTime = datetime!(2025-01-10 08:00 UTC);

    fn new_wo() -> NewWorkOrder {
        NewWorkOrder {
            id: "wo-1".into(),
            site: "s1".into(),
            asset: "inv-01".into(),
            work_type: WorkType::Corrective,
            priority: Priority::P2,
            title: "Inverter trips on overtemperature".into(),
            description: String::new(),
            due: None,
            sla_hours: None,
            checklist: vec![
                TaskSpec::new("fan", "Fan runs", TaskKind::Check, true),
                TaskSpec::new("note", "Remarks photo", TaskKind::Photo, false),
            ],
            pm_occurrence: None,
        }
    }

    fn actor(user: &str, role: Role) -> Actor {
        Actor::new(user, role, "s1")
    }

    fn in_progress(assignee: &str) -> WorkOrder {
        let mut wo = WorkOrder::create(new_wo(), &actor("sup", Role::Supervisor), AT).unwrap();
        wo.state = State::InProgress;
        wo.assignees.insert(assignee.into());
        wo
    }

    #[test]
    fn creation_state_depends_on_role() {
        let wo = WorkOrder::create(new_wo(), &actor("tech", Role::Technician), AT).unwrap();
        assert_eq!(wo.state, State::Requested);
        assert_eq!(wo.requested_by, UserId::from("tech"));
        assert_eq!(wo.sla_hours, 24);
        assert_eq!(wo.checklist.blocking_items(), ["fan"]);
        for role in [Role::Supervisor, Role::Admin] {
            let wo = WorkOrder::create(new_wo(), &actor("boss", role), AT).unwrap();
            assert_eq!(wo.state, State::Open);
        }
        let err = WorkOrder::create(new_wo(), &actor("v", Role::Viewer), AT).unwrap_err();
        assert_eq!(err.code(), "read_only_role");
        let err = WorkOrder::create(new_wo(), &Actor::new("sup", Role::Supervisor, "s2"), AT)
            .unwrap_err();
        assert_eq!(err.code(), "wrong_site");
        let mut blank = new_wo();
        blank.title = "  ".into();
        let err = WorkOrder::create(blank, &actor("sup", Role::Supervisor), AT).unwrap_err();
        assert_eq!(err.code(), "title_required");
        let mut dup = new_wo();
        dup.checklist
            .push(TaskSpec::new("fan", "again", TaskKind::Check, false));
        let err = WorkOrder::create(dup, &actor("sup", Role::Supervisor), AT).unwrap_err();
        assert_eq!(err.code(), "duplicate_checklist_key");
    }

    #[test]
    fn execution_edits_follow_assignment_and_state() {
        let mut wo = in_progress("tech");
        let tech = actor("tech", Role::Technician);
        let other = actor("other", Role::Technician);
        let record = Edit::RecordItem {
            key: "fan".into(),
            input: ItemInput::Check { passed: true },
        };
        let err = wo.apply_edit(record.clone(), &other, AT).unwrap_err();
        assert_eq!(err.code(), "not_assigned");
        wo.apply_edit(record.clone(), &tech, AT).unwrap();
        assert!(wo.checklist.blocking_items().is_empty());

        let labour = |who: &str| {
            Edit::LogLabour(LabourEntry {
                technician: who.into(),
                date: date!(2025 - 01 - 10),
                minutes: 90,
                note: None,
            })
        };
        assert_eq!(
            wo.apply_edit(labour("other"), &tech, AT)
                .unwrap_err()
                .code(),
            "own_entries_only"
        );
        wo.apply_edit(labour("tech"), &tech, AT).unwrap();
        wo.apply_edit(labour("other"), &actor("sup", Role::Supervisor), AT)
            .unwrap();
        assert_eq!(wo.labour.len(), 2);

        let part = |quantity| {
            Edit::UsePart(PartUsage {
                part: "fuse-10a".into(),
                quantity,
                unit_cost: Money::from_minor(450),
                date: date!(2025 - 01 - 10),
            })
        };
        assert_eq!(
            wo.apply_edit(part(0), &tech, AT).unwrap_err().code(),
            "invalid_quantity"
        );
        wo.apply_edit(part(2), &tech, AT).unwrap();

        // Checklist errors surface with their own code.
        let err = wo
            .apply_edit(
                Edit::SkipItem {
                    key: "fan".into(),
                    reason: "".into(),
                },
                &tech,
                AT,
            )
            .unwrap_err();
        assert_eq!(err.code(), "reason_required");

        // After completion only supervisors correct the record.
        wo.state = State::Completed;
        let err = wo.apply_edit(part(1), &tech, AT).unwrap_err();
        assert_eq!(err.code(), "not_editable_in_state");
        wo.apply_edit(part(1), &actor("sup", Role::Supervisor), AT)
            .unwrap();
        wo.state = State::Verified;
        let err = wo
            .apply_edit(part(1), &actor("sup", Role::Supervisor), AT)
            .unwrap_err();
        assert_eq!(err.code(), "not_editable_in_state");
        assert_eq!(wo.parts_used.len(), 2);

        // Viewers change nothing, comments included.
        let err = wo
            .apply_edit(
                Edit::Comment { text: "hi".into() },
                &actor("v", Role::Viewer),
                AT,
            )
            .unwrap_err();
        assert_eq!(err.code(), "read_only_role");
    }

    #[test]
    fn comments_and_details() {
        let mut wo = WorkOrder::create(new_wo(), &actor("tech", Role::Technician), AT).unwrap();
        let tech = actor("tech", Role::Technician);
        wo.apply_edit(
            Edit::Comment {
                text: "smells burnt".into(),
            },
            &tech,
            AT,
        )
        .unwrap();
        assert_eq!(
            wo.apply_edit(Edit::Comment { text: " ".into() }, &tech, AT)
                .unwrap_err()
                .code(),
            "text_required"
        );
        // The requester may fix their own request while it is a request.
        wo.apply_edit(
            Edit::SetPriority {
                priority: Priority::P1,
                sla_hours: None,
            },
            &tech,
            AT,
        )
        .unwrap();
        assert_eq!(wo.sla_hours, 4);
        let err = wo
            .apply_edit(
                Edit::SetDue {
                    due: Some(date!(2025 - 01 - 11)),
                },
                &actor("someone", Role::Technician),
                AT,
            )
            .unwrap_err();
        assert_eq!(err.code(), "supervisor_only");
        wo.state = State::Open;
        let err = wo
            .apply_edit(
                Edit::SetDetails {
                    title: "x".into(),
                    description: "y".into(),
                },
                &tech,
                AT,
            )
            .unwrap_err();
        assert_eq!(err.code(), "supervisor_only");
        let sup = actor("sup", Role::Supervisor);
        wo.apply_edit(
            Edit::SetPriority {
                priority: Priority::P3,
                sla_hours: Some(12),
            },
            &sup,
            AT,
        )
        .unwrap();
        assert_eq!((wo.priority, wo.sla_hours), (Priority::P3, 12));
        wo.state = State::Closed;
        let err = wo
            .apply_edit(Edit::SetDue { due: None }, &sup, AT)
            .unwrap_err();
        assert_eq!(err.code(), "not_editable_in_state");
        // Comments stay possible on closed work.
        wo.apply_edit(
            Edit::Comment {
                text: "follow-up".into(),
            },
            &sup,
            AT,
        )
        .unwrap();
        assert_eq!(wo.comments.len(), 2);
    }

    #[test]
    fn sla_deadline_and_breach() {
        let mut wo = in_progress("tech");
        assert_eq!(wo.sla_deadline(), datetime!(2025-01-11 08:00 UTC));
        assert!(!wo.sla_breached(datetime!(2025-01-11 08:00 UTC)));
        assert!(wo.sla_breached(datetime!(2025-01-11 08:01 UTC)));
        wo.history.push(StateEvent {
            at: datetime!(2025-01-11 07:00 UTC),
            by: "tech".into(),
            action: crate::cmms::state::ActionKind::Complete,
            from: State::InProgress,
            to: State::Completed,
            reason: None,
        });
        wo.state = State::Completed;
        assert_eq!(wo.completed_at(), Some(datetime!(2025-01-11 07:00 UTC)));
        assert!(!wo.sla_breached(datetime!(2025-02-01 00:00 UTC)));
        wo.state = State::Cancelled;
        assert!(!wo.sla_breached(datetime!(2025-02-01 00:00 UTC)));
        assert_eq!(wo.completed_at(), None);
    }

    #[test]
    fn round_trips_through_json_and_postcard() {
        let mut wo = in_progress("tech");
        wo.scheduled_for = Some(date!(2025 - 01 - 12));
        wo.apply_edit(
            Edit::RecordItem {
                key: "fan".into(),
                input: ItemInput::Check { passed: false },
            },
            &actor("tech", Role::Technician),
            AT,
        )
        .unwrap();
        let json = serde_json::to_value(&wo).unwrap();
        assert_eq!(json["state"], "in_progress");
        assert_eq!(json["priority"], "p2");
        assert_eq!(json["work_type"], "corrective");
        assert_eq!(json["scheduled_for"], "2025-01-12");
        assert_eq!(json["created_at"], "2025-01-10T08:00:00Z");
        assert_eq!(serde_json::from_value::<WorkOrder>(json).unwrap(), wo);
        let bytes = postcard::to_allocvec(&wo).unwrap();
        assert_eq!(postcard::from_bytes::<WorkOrder>(&bytes).unwrap(), wo);
    }
}
