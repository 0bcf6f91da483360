//! The work-order state machine, defined once for the hub and the gateway.
//!
//! This module owns the states, the actions, the transition table
//! ([`TRANSITIONS`]), who may take each action, and the guards. [`apply`] is
//! a pure function: it reads a work order, an action, the acting user and
//! the time the action was taken, and returns either the list of field
//! changes or the rule that refused it. It never mutates, stores or sends
//! anything; [`WorkOrder::transition`] is the convenience that applies the
//! changes in place. Because the time is an argument, replaying a recorded
//! action (after an offline period) gives the same answer everywhere.
//!
//! Transitions (from, action) -> to:
//!
//! | from        | action   | to          |
//! |-------------|----------|-------------|
//! | requested   | approve  | open        |
//! | requested   | cancel   | cancelled   |
//! | open        | schedule | scheduled   |
//! | open        | assign   | assigned    |
//! | open        | cancel   | cancelled   |
//! | scheduled   | schedule | scheduled   |
//! | scheduled   | assign   | assigned    |
//! | scheduled   | cancel   | cancelled   |
//! | assigned    | schedule | assigned    |
//! | assigned    | assign   | assigned    |
//! | assigned    | start    | in_progress |
//! | assigned    | cancel   | cancelled   |
//! | in_progress | assign   | in_progress |
//! | in_progress | hold     | on_hold     |
//! | in_progress | complete | completed   |
//! | in_progress | cancel   | cancelled   |
//! | on_hold     | assign   | on_hold     |
//! | on_hold     | resume   | in_progress |
//! | on_hold     | cancel   | cancelled   |
//! | completed   | verify   | verified    |
//! | completed   | reopen   | open        |
//! | verified    | close    | closed      |
//! | verified    | reopen   | open        |
//! | closed      | reopen   | open        |
//!
//! Decisions: `cancelled` is final (create a new work order instead); close
//! needs a verification first (both are supervisor actions); reassigning
//! during work keeps the state; reopen keeps assignees, checklist results,
//! labour and parts (they happened), and the work order goes back to
//! `open`, so it must be assigned again before it can be started.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::checklist::ChecklistError;
use super::ids::{SiteId, UserId};
use super::iso_date;
use super::role::{Actor, Role};
use super::work_order::{check_site, WorkOrder};

/// Where a work order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Asked for by a technician; waits for a supervisor's approval.
    Requested,
    /// Approved work, not yet planned.
    Open,
    /// Has a date, nobody assigned yet.
    Scheduled,
    /// Has at least one assignee; ready to start.
    Assigned,
    InProgress,
    /// Paused, with a reason (waiting for parts, weather, access).
    OnHold,
    /// Work done; waits for a supervisor's verification.
    Completed,
    Verified,
    /// Finished for good (it can still be reopened).
    Closed,
    /// Abandoned; final.
    Cancelled,
}

impl State {
    pub const ALL: [State; 10] = [
        State::Requested,
        State::Open,
        State::Scheduled,
        State::Assigned,
        State::InProgress,
        State::OnHold,
        State::Completed,
        State::Verified,
        State::Closed,
        State::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Requested => "requested",
            State::Open => "open",
            State::Scheduled => "scheduled",
            State::Assigned => "assigned",
            State::InProgress => "in_progress",
            State::OnHold => "on_hold",
            State::Completed => "completed",
            State::Verified => "verified",
            State::Closed => "closed",
            State::Cancelled => "cancelled",
        }
    }

    /// Work still to be done: part of the backlog.
    pub fn is_backlog(self) -> bool {
        matches!(
            self,
            State::Requested
                | State::Open
                | State::Scheduled
                | State::Assigned
                | State::InProgress
                | State::OnHold
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition request, with its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Approve,
    Schedule {
        #[serde(with = "iso_date")]
        date: Date,
    },
    /// Replaces the assignees with `users` (at least one).
    Assign {
        users: BTreeSet<UserId>,
    },
    Start,
    Hold {
        reason: String,
    },
    Resume,
    Complete,
    Verify,
    Close,
    Cancel {
        reason: String,
    },
    Reopen {
        reason: String,
    },
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Approve => ActionKind::Approve,
            Action::Schedule { .. } => ActionKind::Schedule,
            Action::Assign { .. } => ActionKind::Assign,
            Action::Start => ActionKind::Start,
            Action::Hold { .. } => ActionKind::Hold,
            Action::Resume => ActionKind::Resume,
            Action::Complete => ActionKind::Complete,
            Action::Verify => ActionKind::Verify,
            Action::Close => ActionKind::Close,
            Action::Cancel { .. } => ActionKind::Cancel,
            Action::Reopen { .. } => ActionKind::Reopen,
        }
    }

    /// The reason carried by hold, cancel and reopen.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Action::Hold { reason } | Action::Cancel { reason } | Action::Reopen { reason } => {
                Some(reason)
            }
            _ => None,
        }
    }
}

/// An action without its payload: the key of the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
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

impl ActionKind {
    pub const ALL: [ActionKind; 11] = [
        ActionKind::Approve,
        ActionKind::Schedule,
        ActionKind::Assign,
        ActionKind::Start,
        ActionKind::Hold,
        ActionKind::Resume,
        ActionKind::Complete,
        ActionKind::Verify,
        ActionKind::Close,
        ActionKind::Cancel,
        ActionKind::Reopen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Approve => "approve",
            ActionKind::Schedule => "schedule",
            ActionKind::Assign => "assign",
            ActionKind::Start => "start",
            ActionKind::Hold => "hold",
            ActionKind::Resume => "resume",
            ActionKind::Complete => "complete",
            ActionKind::Verify => "verify",
            ActionKind::Close => "close",
            ActionKind::Cancel => "cancel",
            ActionKind::Reopen => "reopen",
        }
    }

    /// Who may take this action, apart from the state.
    pub fn who(self) -> Who {
        match self {
            ActionKind::Start | ActionKind::Hold | ActionKind::Resume | ActionKind::Complete => {
                Who::AssigneeOrSupervisor
            }
            ActionKind::Cancel => Who::SupervisorOrOwnRequest,
            _ => Who::Supervisor,
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may take an action (viewers never may).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Who {
    /// Supervisors and admins.
    Supervisor,
    /// Supervisors and admins, and technicians assigned to the work order.
    AssigneeOrSupervisor,
    /// Supervisors and admins, and the technician who requested the work
    /// order while it is still `requested` (withdrawing their request).
    SupervisorOrOwnRequest,
}

/// Every allowed transition, (from, action) -> to. The single definition of
/// the state machine; see the module documentation for the same table.
pub const TRANSITIONS: &[(State, ActionKind, State)] = &[
    (State::Requested, ActionKind::Approve, State::Open),
    (State::Requested, ActionKind::Cancel, State::Cancelled),
    (State::Open, ActionKind::Schedule, State::Scheduled),
    (State::Open, ActionKind::Assign, State::Assigned),
    (State::Open, ActionKind::Cancel, State::Cancelled),
    (State::Scheduled, ActionKind::Schedule, State::Scheduled),
    (State::Scheduled, ActionKind::Assign, State::Assigned),
    (State::Scheduled, ActionKind::Cancel, State::Cancelled),
    (State::Assigned, ActionKind::Schedule, State::Assigned),
    (State::Assigned, ActionKind::Assign, State::Assigned),
    (State::Assigned, ActionKind::Start, State::InProgress),
    (State::Assigned, ActionKind::Cancel, State::Cancelled),
    (State::InProgress, ActionKind::Assign, State::InProgress),
    (State::InProgress, ActionKind::Hold, State::OnHold),
    (State::InProgress, ActionKind::Complete, State::Completed),
    (State::InProgress, ActionKind::Cancel, State::Cancelled),
    (State::OnHold, ActionKind::Assign, State::OnHold),
    (State::OnHold, ActionKind::Resume, State::InProgress),
    (State::OnHold, ActionKind::Cancel, State::Cancelled),
    (State::Completed, ActionKind::Verify, State::Verified),
    (State::Completed, ActionKind::Reopen, State::Open),
    (State::Verified, ActionKind::Close, State::Closed),
    (State::Verified, ActionKind::Reopen, State::Open),
    (State::Closed, ActionKind::Reopen, State::Open),
];

/// The transition table, for tests and documentation.
pub fn transitions() -> &'static [(State, ActionKind, State)] {
    TRANSITIONS
}

/// Where `action` leads from `from`, or `None` if the table has no such
/// transition.
pub fn next_state(from: State, action: ActionKind) -> Option<State> {
    TRANSITIONS
        .iter()
        .find(|(f, a, _)| *f == from && *a == action)
        .map(|(_, _, to)| *to)
}

/// One transition in a work order's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEvent {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub by: UserId,
    pub action: ActionKind,
    pub from: State,
    pub to: State,
    /// For hold, cancel and reopen.
    pub reason: Option<String>,
}

/// A field change produced by [`apply`]. Applying all changes of one call,
/// in order, performs the transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Only present when the state actually changes.
    State(State),
    ScheduledFor(#[serde(with = "iso_date::option")] Option<Date>),
    Assignees(BTreeSet<UserId>),
    HoldReason(Option<String>),
    /// Appended to the history; present for every transition.
    Event(StateEvent),
}

/// Why a change to a work order (a transition, a creation or an edit) was
/// refused. [`TransitionError::code`] is stable and machine-readable; the
/// `Display` text is for people.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    #[error("{user} acts for site {actor_site}, but the work order is at site {site}")]
    WrongSite {
        user: UserId,
        actor_site: SiteId,
        site: SiteId,
    },
    #[error("the {} role may not change work orders", role.as_str())]
    ReadOnlyRole { role: Role },
    #[error("cannot {action} a work order that is {from}")]
    NotAllowedFromState { from: State, action: ActionKind },
    #[error("only a supervisor or an admin may {action} this work order")]
    SupervisorOnly { action: &'static str },
    #[error("{user} is not assigned to this work order")]
    NotAssigned { user: UserId },
    #[error("assign at least one person")]
    AssigneeRequired,
    #[error("required checklist items are still pending: {}", items.join(", "))]
    ChecklistIncomplete { items: Vec<String> },
    #[error("{action} needs a reason")]
    ReasonRequired { action: &'static str },
    #[error("cannot schedule for {date}, which is before today ({today})")]
    ScheduleInPast { date: Date, today: Date },
    #[error("cannot {action} while the work order is {state}")]
    NotEditableInState { state: State, action: &'static str },
    #[error("a work order needs a title")]
    TitleRequired,
    #[error("{action} needs some text")]
    TextRequired { action: &'static str },
    #[error("technicians may {action} only for themselves")]
    OwnEntriesOnly { action: &'static str },
    #[error("{action} needs a quantity above zero and a cost not below zero")]
    InvalidQuantity { action: &'static str },
    #[error(transparent)]
    Checklist(#[from] ChecklistError),
}

impl TransitionError {
    /// Stable machine-readable code naming the rule that refused the change.
    pub fn code(&self) -> &'static str {
        match self {
            TransitionError::WrongSite { .. } => "wrong_site",
            TransitionError::ReadOnlyRole { .. } => "read_only_role",
            TransitionError::NotAllowedFromState { .. } => "not_allowed_from_state",
            TransitionError::SupervisorOnly { .. } => "supervisor_only",
            TransitionError::NotAssigned { .. } => "not_assigned",
            TransitionError::AssigneeRequired => "assignee_required",
            TransitionError::ChecklistIncomplete { .. } => "checklist_incomplete",
            TransitionError::ReasonRequired { .. } => "reason_required",
            TransitionError::ScheduleInPast { .. } => "schedule_in_past",
            TransitionError::NotEditableInState { .. } => "not_editable_in_state",
            TransitionError::TitleRequired => "title_required",
            TransitionError::TextRequired { .. } => "text_required",
            TransitionError::OwnEntriesOnly { .. } => "own_entries_only",
            TransitionError::InvalidQuantity { .. } => "invalid_quantity",
            TransitionError::Checklist(e) => e.code(),
        }
    }

    /// Code and message together, to send to a client or a gateway.
    pub fn rejection(&self) -> Rejection {
        Rejection {
            code: self.code().to_owned(),
            message: self.to_string(),
        }
    }
}

/// A refused change as sent over the wire or in an API error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub code: String,
    pub message: String,
}

/// Decides a transition. Returns the changes to apply, or the first rule
/// that refuses it. Rules, checked in this order:
///
/// 1. the actor was resolved for this work order's site (`wrong_site`);
/// 2. viewers change nothing (`read_only_role`);
/// 3. the table has a transition for (state, action)
///    (`not_allowed_from_state`);
/// 4. who may act ([`ActionKind::who`]): supervisor-only actions
///    (`supervisor_only`); start/hold/resume/complete by a technician only
///    on a work order assigned to them (`not_assigned`);
/// 5. guards: assign names at least one user and start needs an assignee
///    (`assignee_required`); hold, cancel and reopen carry a non-blank
///    reason (`reason_required`); a schedule date is not before the UTC date
///    of `at` (`schedule_in_past`); complete needs every required checklist
///    item done or skipped (`checklist_incomplete`, listing the keys).
///
/// `at` is when the action was taken, not when it is applied: it is recorded
/// in the history and dates the schedule check.
pub fn apply(
    wo: &WorkOrder,
    action: &Action,
    actor: &Actor,
    at: OffsetDateTime,
) -> Result<Vec<Change>, TransitionError> {
    check_site(actor, &wo.site)?;
    if actor.role == Role::Viewer {
        return Err(TransitionError::ReadOnlyRole { role: actor.role });
    }
    let kind = action.kind();
    let from = wo.state;
    let to = next_state(from, kind)
        .ok_or(TransitionError::NotAllowedFromState { from, action: kind })?;

    let supervisor = actor.role.is_supervisor();
    match kind.who() {
        Who::Supervisor if !supervisor => {
            return Err(TransitionError::SupervisorOnly {
                action: kind.as_str(),
            })
        }
        Who::AssigneeOrSupervisor if !supervisor && !wo.is_assigned_to(&actor.user) => {
            return Err(TransitionError::NotAssigned {
                user: actor.user.clone(),
            })
        }
        Who::SupervisorOrOwnRequest
            if !(supervisor || (from == State::Requested && wo.requested_by == actor.user)) =>
        {
            return Err(TransitionError::SupervisorOnly {
                action: kind.as_str(),
            })
        }
        _ => {}
    }

    let mut changes = Vec::new();
    match action {
        Action::Schedule { date } => {
            let today = at.date();
            if *date < today {
                return Err(TransitionError::ScheduleInPast { date: *date, today });
            }
            changes.push(Change::ScheduledFor(Some(*date)));
        }
        Action::Assign { users } => {
            if users.is_empty() {
                return Err(TransitionError::AssigneeRequired);
            }
            changes.push(Change::Assignees(users.clone()));
        }
        Action::Start => {
            if wo.assignees.is_empty() {
                return Err(TransitionError::AssigneeRequired);
            }
        }
        Action::Hold { reason } => {
            if reason.trim().is_empty() {
                return Err(TransitionError::ReasonRequired {
                    action: kind.as_str(),
                });
            }
            changes.push(Change::HoldReason(Some(reason.clone())));
        }
        Action::Cancel { reason } | Action::Reopen { reason } => {
            if reason.trim().is_empty() {
                return Err(TransitionError::ReasonRequired {
                    action: kind.as_str(),
                });
            }
        }
        Action::Complete => {
            let items = wo.checklist.blocking_items();
            if !items.is_empty() {
                return Err(TransitionError::ChecklistIncomplete { items });
            }
        }
        Action::Approve | Action::Resume | Action::Verify | Action::Close => {}
    }
    // The hold reason lives exactly as long as the hold.
    if from == State::OnHold && to != State::OnHold {
        changes.push(Change::HoldReason(None));
    }
    if to != from {
        changes.push(Change::State(to));
    }
    changes.push(Change::Event(StateEvent {
        at,
        by: actor.user.clone(),
        action: kind,
        from,
        to,
        reason: action.reason().map(str::to_owned),
    }));
    Ok(changes)
}

impl WorkOrder {
    /// Applies changes from [`apply`], in order.
    pub fn apply_changes(&mut self, changes: impl IntoIterator<Item = Change>) {
        for change in changes {
            match change {
                Change::State(state) => self.state = state,
                Change::ScheduledFor(date) => self.scheduled_for = date,
                Change::Assignees(users) => self.assignees = users,
                Change::HoldReason(reason) => self.hold_reason = reason,
                Change::Event(event) => self.history.push(event),
            }
        }
    }

    /// Decides and applies a transition in place; returns the new state. On
    /// error the work order is unchanged.
    pub fn transition(
        &mut self,
        action: &Action,
        actor: &Actor,
        at: OffsetDateTime,
    ) -> Result<State, TransitionError> {
        let changes = apply(self, action, actor, at)?;
        self.apply_changes(changes);
        Ok(self.state)
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
