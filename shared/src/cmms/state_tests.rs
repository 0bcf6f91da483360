//! Tests of the work-order state machine: the full (state x action x
//! persona) table, the guards, and a property test over random sequences.

use super::*;
use crate::cmms::checklist::{ItemInput, TaskKind, TaskSpec};
use crate::cmms::work_order::{Edit, NewWorkOrder, Priority, WorkType};
use proptest::prelude::*;
use std::collections::BTreeMap;
use time::macros::{date, datetime};

const AT: OffsetDateTime = datetime!(2025-05-20 09:30 UTC);

/// The table as the product brief describes it, written out independently
/// of `TRANSITIONS`.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("requested", "approve", "open"),
    ("requested", "cancel", "cancelled"),
    ("open", "schedule", "scheduled"),
    ("open", "assign", "assigned"),
    ("open", "cancel", "cancelled"),
    ("scheduled", "schedule", "scheduled"),
    ("scheduled", "assign", "assigned"),
    ("scheduled", "cancel", "cancelled"),
    ("assigned", "schedule", "assigned"),
    ("assigned", "assign", "assigned"),
    ("assigned", "start", "in_progress"),
    ("assigned", "cancel", "cancelled"),
    ("in_progress", "assign", "in_progress"),
    ("in_progress", "hold", "on_hold"),
    ("in_progress", "complete", "completed"),
    ("in_progress", "cancel", "cancelled"),
    ("on_hold", "assign", "on_hold"),
    ("on_hold", "resume", "in_progress"),
    ("on_hold", "cancel", "cancelled"),
    ("completed", "verify", "verified"),
    ("completed", "reopen", "open"),
    ("verified", "close", "closed"),
    ("verified", "reopen", "open"),
    ("closed", "reopen", "open"),
];

fn expected_to(from: State, kind: ActionKind) -> Option<&'static str> {
    EXPECTED
        .iter()
        .find(|(f, a, _)| *f == from.as_str() && *a == kind.as_str())
        .map(|(_, _, to)| *to)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persona {
    Viewer,
    AssignedTech,
    OtherTech,
    /// The technician who requested the work order, not assigned to it.
    RequesterTech,
    Supervisor,
    Admin,
}

const PERSONAS: [Persona; 6] = [
    Persona::Viewer,
    Persona::AssignedTech,
    Persona::OtherTech,
    Persona::RequesterTech,
    Persona::Supervisor,
    Persona::Admin,
];

fn actor(p: Persona) -> Actor {
    let (user, role) = match p {
        Persona::Viewer => ("viewer", Role::Viewer),
        Persona::AssignedTech => ("assigned", Role::Technician),
        Persona::OtherTech => ("other", Role::Technician),
        Persona::RequesterTech => ("requester", Role::Technician),
        Persona::Supervisor => ("sup", Role::Supervisor),
        Persona::Admin => ("admin", Role::Admin),
    };
    Actor::new(user, role, "s1")
}

/// Expected refusal code (or `None` for success) by persona and action,
/// once the state allows the action.
fn expected_role_outcome(p: Persona, from: State, kind: ActionKind) -> Option<&'static str> {
    use ActionKind::*;
    match p {
        Persona::Viewer => Some("read_only_role"),
        Persona::Supervisor | Persona::Admin => None,
        tech => match kind {
            Start | Hold | Resume | Complete => {
                (tech != Persona::AssignedTech).then_some("not_assigned")
            }
            Cancel if tech == Persona::RequesterTech && from == State::Requested => None,
            _ => Some("supervisor_only"),
        },
    }
}

fn users(names: &[&str]) -> BTreeSet<UserId> {
    names.iter().map(|n| UserId::from(*n)).collect()
}

fn action(kind: ActionKind) -> Action {
    match kind {
        ActionKind::Approve => Action::Approve,
        ActionKind::Schedule => Action::Schedule {
            date: date!(2025 - 05 - 21),
        },
        ActionKind::Assign => Action::Assign {
            users: users(&["assigned", "second"]),
        },
        ActionKind::Start => Action::Start,
        ActionKind::Hold => Action::Hold {
            reason: "waiting for parts".into(),
        },
        ActionKind::Resume => Action::Resume,
        ActionKind::Complete => Action::Complete,
        ActionKind::Verify => Action::Verify,
        ActionKind::Close => Action::Close,
        ActionKind::Cancel => Action::Cancel {
            reason: "duplicate".into(),
        },
        ActionKind::Reopen => Action::Reopen {
            reason: "fault came back".into(),
        },
    }
}

fn new_wo() -> NewWorkOrder {
    NewWorkOrder {
        id: "wo-9".into(),
        site: "s1".into(),
        asset: "inv-02".into(),
        work_type: WorkType::Corrective,
        priority: Priority::P3,
        title: "Replace fan".into(),
        description: String::new(),
        due: None,
        sla_hours: None,
        checklist: vec![
            TaskSpec::new("fan", "New fan runs", TaskKind::Check, true),
            TaskSpec::new("photo", "Photo", TaskKind::Photo, false),
        ],
        pm_occurrence: None,
    }
}

/// A work order in `state` that passes every guard, so that only the state
/// and the persona decide.
fn fixture(state: State) -> WorkOrder {
    let mut wo = WorkOrder::create(new_wo(), &actor(Persona::RequesterTech), AT).unwrap();
    wo.state = state;
    wo.assignees = users(&["assigned"]);
    wo.checklist
        .record(
            "fan",
            ItemInput::Check { passed: true },
            &"assigned".into(),
            AT,
        )
        .unwrap();
    if state == State::OnHold {
        wo.hold_reason = Some("rain".into());
    }
    wo
}

#[test]
fn table_matches_the_specification() {
    assert_eq!(transitions().len(), EXPECTED.len());
    for (from, kind, to) in transitions() {
        assert_eq!(
            expected_to(*from, *kind),
            Some(to.as_str()),
            "{from} {kind}"
        );
    }
    // No duplicate (from, action) keys.
    let keys: BTreeSet<(State, ActionKind)> =
        transitions().iter().map(|(f, a, _)| (*f, *a)).collect();
    assert_eq!(keys.len(), transitions().len());
}

#[test]
fn module_doc_table_matches_the_code() {
    let rows: Vec<(String, String, String)> = include_str!("state.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("//! | "))
        .map(|l| {
            let cells: Vec<String> = l
                .split('|')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect();
            (cells[0].clone(), cells[1].clone(), cells[2].clone())
        })
        .filter(|(f, _, _)| f != "from" && !f.starts_with('-'))
        .collect();
    let code: Vec<(String, String, String)> = transitions()
        .iter()
        .map(|(f, a, t)| (f.to_string(), a.to_string(), t.to_string()))
        .collect();
    assert_eq!(rows, code);
}

#[test]
fn every_state_action_and_persona() {
    let mut exercised: BTreeMap<(State, ActionKind), usize> = BTreeMap::new();
    let mut cases = 0;
    for from in State::ALL {
        for kind in ActionKind::ALL {
            for persona in PERSONAS {
                cases += 1;
                let wo = fixture(from);
                let who = actor(persona);
                let result = apply(&wo, &action(kind), &who, AT);
                let expected = if persona == Persona::Viewer {
                    Err("read_only_role")
                } else if let Some(to) = expected_to(from, kind) {
                    match expected_role_outcome(persona, from, kind) {
                        None => Ok(to),
                        Some(code) => Err(code),
                    }
                } else {
                    Err("not_allowed_from_state")
                };
                let ctx = format!("{from} {kind} by {persona:?}");
                match (result, expected) {
                    (Ok(changes), Ok(to)) => {
                        let mut after = wo.clone();
                        after.apply_changes(changes.clone());
                        assert_eq!(after.state.as_str(), to, "{ctx}");
                        let event = after.history.last().unwrap();
                        assert_eq!(
                            (event.from, event.action, event.to),
                            (from, kind, after.state),
                            "{ctx}"
                        );
                        assert_eq!(event.by, who.user, "{ctx}");
                        assert_eq!(event.at, AT, "{ctx}");
                        // A state change is listed only when the state changes.
                        let listed = changes.iter().any(|c| matches!(c, Change::State(_)));
                        assert_eq!(listed, after.state != from, "{ctx}");
                        assert_eq!(
                            after.hold_reason.is_some(),
                            after.state == State::OnHold,
                            "{ctx}"
                        );
                        *exercised.entry((from, kind)).or_default() += 1;
                    }
                    (Err(err), Err(code)) => {
                        assert_eq!(err.code(), code, "{ctx}: {err}");
                        assert!(!err.to_string().is_empty());
                    }
                    (got, want) => panic!("{ctx}: got {got:?}, expected {want:?}"),
                }
            }
        }
    }
    assert_eq!(cases, 10 * 11 * 6);
    // Every row of the table succeeded for at least supervisors and admins.
    for (from, kind, _) in transitions() {
        assert!(
            exercised.get(&(*from, *kind)).copied().unwrap_or(0) >= 2,
            "{from} {kind}"
        );
    }
    assert_eq!(exercised.len(), transitions().len());
}

#[test]
fn not_allowed_from_state_names_state_and_action() {
    let wo = fixture(State::Cancelled);
    let err = apply(&wo, &Action::Approve, &actor(Persona::Admin), AT).unwrap_err();
    assert_eq!(
        err,
        TransitionError::NotAllowedFromState {
            from: State::Cancelled,
            action: ActionKind::Approve
        }
    );
    assert_eq!(
        err.to_string(),
        "cannot approve a work order that is cancelled"
    );
    let rejection = err.rejection();
    assert_eq!(rejection.code, "not_allowed_from_state");
    assert_eq!(
        serde_json::to_value(&rejection).unwrap()["message"],
        "cannot approve a work order that is cancelled"
    );
}

#[test]
fn guards() {
    let sup = actor(Persona::Supervisor);
    // Assign needs somebody.
    let err = apply(
        &fixture(State::Open),
        &Action::Assign {
            users: BTreeSet::new(),
        },
        &sup,
        AT,
    )
    .unwrap_err();
    assert_eq!(err.code(), "assignee_required");
    // Start needs an assignee even if the state says assigned.
    let mut wo = fixture(State::Assigned);
    wo.assignees.clear();
    assert_eq!(
        apply(&wo, &Action::Start, &sup, AT).unwrap_err().code(),
        "assignee_required"
    );
    // Reasons must not be blank.
    for (state, act) in [
        (State::InProgress, Action::Hold { reason: " ".into() }),
        (State::Open, Action::Cancel { reason: "".into() }),
        (
            State::Closed,
            Action::Reopen {
                reason: "\t".into(),
            },
        ),
    ] {
        let err = apply(&fixture(state), &act, &sup, AT).unwrap_err();
        assert_eq!(err.code(), "reason_required", "{act:?}");
    }
    // Schedule: today is fine, yesterday is not (UTC date of the action).
    let wo = fixture(State::Open);
    assert!(apply(
        &wo,
        &Action::Schedule {
            date: date!(2025 - 05 - 20)
        },
        &sup,
        AT
    )
    .is_ok());
    let err = apply(
        &wo,
        &Action::Schedule {
            date: date!(2025 - 05 - 19),
        },
        &sup,
        AT,
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransitionError::ScheduleInPast {
            date: date!(2025 - 05 - 19),
            today: date!(2025 - 05 - 20)
        }
    );
    // Completion needs required items done or skipped; optional ones may wait.
    let mut wo = fixture(State::InProgress);
    wo.checklist = crate::cmms::checklist::Checklist::from_tasks(new_wo().checklist).unwrap();
    let tech = actor(Persona::AssignedTech);
    let err = apply(&wo, &Action::Complete, &tech, AT).unwrap_err();
    assert_eq!(
        err,
        TransitionError::ChecklistIncomplete {
            items: vec!["fan".into()]
        }
    );
    assert_eq!(
        err.to_string(),
        "required checklist items are still pending: fan"
    );
    wo.apply_edit(
        Edit::SkipItem {
            key: "fan".into(),
            reason: "fan not fitted on this model".into(),
        },
        &tech,
        AT,
    )
    .unwrap();
    assert_eq!(
        wo.transition(&Action::Complete, &tech, AT).unwrap(),
        State::Completed
    );
    // An actor resolved for another site is refused before anything else.
    let elsewhere = Actor::new("sup", Role::Supervisor, "s2");
    let err = apply(&fixture(State::Requested), &Action::Approve, &elsewhere, AT).unwrap_err();
    assert_eq!(err.code(), "wrong_site");
}

#[test]
fn a_full_lifecycle_with_reopen() {
    let tech = actor(Persona::AssignedTech);
    let sup = actor(Persona::Supervisor);
    let mut wo = WorkOrder::create(new_wo(), &actor(Persona::RequesterTech), AT).unwrap();
    let steps: Vec<(Action, &Actor, State)> = vec![
        (Action::Approve, &sup, State::Open),
        (
            Action::Schedule {
                date: date!(2025 - 05 - 22),
            },
            &sup,
            State::Scheduled,
        ),
        (
            Action::Assign {
                users: users(&["assigned"]),
            },
            &sup,
            State::Assigned,
        ),
        (Action::Start, &tech, State::InProgress),
        (
            Action::Hold {
                reason: "rain".into(),
            },
            &tech,
            State::OnHold,
        ),
        (Action::Resume, &tech, State::InProgress),
    ];
    for (act, who, want) in steps {
        assert_eq!(wo.transition(&act, who, AT).unwrap(), want, "{act:?}");
    }
    assert_eq!(wo.scheduled_for, Some(date!(2025 - 05 - 22)));
    assert_eq!(wo.hold_reason, None);
    wo.apply_edit(
        Edit::RecordItem {
            key: "fan".into(),
            input: ItemInput::Check { passed: true },
        },
        &tech,
        AT,
    )
    .unwrap();
    assert_eq!(
        wo.transition(&Action::Complete, &tech, AT).unwrap(),
        State::Completed
    );
    // The technician may not verify their own work (nor anyone's).
    assert_eq!(
        wo.transition(&Action::Verify, &tech, AT)
            .unwrap_err()
            .code(),
        "supervisor_only"
    );
    assert_eq!(
        wo.transition(&Action::Verify, &sup, AT).unwrap(),
        State::Verified
    );
    assert_eq!(
        wo.transition(&Action::Close, &sup, AT).unwrap(),
        State::Closed
    );
    let reopen = Action::Reopen {
        reason: "tripped again".into(),
    };
    assert_eq!(
        wo.transition(&reopen, &tech, AT).unwrap_err().code(),
        "supervisor_only"
    );
    assert_eq!(wo.transition(&reopen, &sup, AT).unwrap(), State::Open);
    // Reopened work keeps its assignees but must be assigned again to start.
    assert_eq!(wo.assignees, users(&["assigned"]));
    assert_eq!(
        wo.transition(&Action::Start, &tech, AT).unwrap_err().code(),
        "not_allowed_from_state"
    );
    let kinds: Vec<&str> = wo.history.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "approve", "schedule", "assign", "start", "hold", "resume", "complete", "verify",
            "close", "reopen"
        ]
    );
    assert_eq!(
        wo.history.last().unwrap().reason.as_deref(),
        Some("tripped again")
    );
}

#[test]
fn every_state_is_reachable_from_a_new_work_order() {
    let mut seen: BTreeSet<State> = [State::Requested, State::Open].into();
    let mut frontier: Vec<State> = seen.iter().copied().collect();
    while let Some(s) = frontier.pop() {
        for (from, _, to) in transitions() {
            if *from == s && seen.insert(*to) {
                frontier.push(*to);
            }
        }
    }
    assert_eq!(seen.len(), State::ALL.len());
}

#[test]
fn actions_serialise_in_snake_case() {
    let json = serde_json::to_value(Action::Schedule {
        date: date!(2025 - 06 - 01),
    })
    .unwrap();
    assert_eq!(
        json,
        serde_json::json!({"schedule": {"date": "2025-06-01"}})
    );
    assert_eq!(serde_json::to_value(ActionKind::Reopen).unwrap(), "reopen");
    assert_eq!(
        serde_json::to_value(State::InProgress).unwrap(),
        "in_progress"
    );
    let act = Action::Assign {
        users: users(&["a", "b"]),
    };
    let bytes = postcard::to_allocvec(&act).unwrap();
    assert_eq!(postcard::from_bytes::<Action>(&bytes).unwrap(), act);
}

fn arb_step() -> impl Strategy<Value = (usize, usize, bool, bool)> {
    // (persona, action kind, blank payload, record the checklist first)
    (
        0..PERSONAS.len(),
        0..ActionKind::ALL.len(),
        any::<bool>(),
        any::<bool>(),
    )
}

proptest! {
    #[test]
    fn random_sequences_stay_inside_the_table(steps in prop::collection::vec(arb_step(), 1..60)) {
        let mut wo = WorkOrder::create(new_wo(), &actor(Persona::RequesterTech), AT).unwrap();
        for (p, k, blank, record) in steps {
            let persona = PERSONAS[p];
            let kind = ActionKind::ALL[k];
            if record {
                // May be refused (wrong state, not assigned); either way fine.
                let _ = wo.apply_edit(
                    Edit::RecordItem { key: "fan".into(), input: ItemInput::Check { passed: true } },
                    &actor(persona),
                    AT,
                );
            }
            let act = match (kind, blank) {
                (ActionKind::Assign, true) => Action::Assign { users: BTreeSet::new() },
                (ActionKind::Hold, true) => Action::Hold { reason: String::new() },
                (ActionKind::Schedule, true) => Action::Schedule { date: date!(2025 - 05 - 01) },
                _ => action(kind),
            };
            let before = wo.clone();
            match wo.transition(&act, &actor(persona), AT) {
                Ok(to) => {
                    prop_assert_eq!(next_state(before.state, kind), Some(to));
                    prop_assert_eq!(wo.history.len(), before.history.len() + 1);
                }
                Err(_) => prop_assert_eq!(&wo, &before),
            }
            prop_assert!(State::ALL.contains(&wo.state));
            prop_assert_eq!(wo.hold_reason.is_some(), wo.state == State::OnHold);
            if matches!(wo.state, State::Assigned | State::InProgress | State::OnHold) {
                prop_assert!(!wo.assignees.is_empty());
            }
            if wo.state == State::Completed {
                prop_assert!(wo.checklist.blocking_items().is_empty());
            }
        }
        // The history is a chain of table rows.
        let mut state = State::Requested;
        for e in &wo.history {
            prop_assert_eq!(e.from, state);
            prop_assert_eq!(next_state(e.from, e.action), Some(e.to));
            state = e.to;
        }
        prop_assert_eq!(state, wo.state);
    }
}
