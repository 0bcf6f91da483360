//! The maintenance (CMMS) domain model, shared by the hub and the gateway.
//!
//! Sans-IO: plain types and pure functions. The hub's API and database and
//! the gateway's offline cache are built on these types and call these
//! functions, so that a rule (who may close a work order, when a PM plan is
//! due, whether stock can be reserved) is written once and gives the same
//! answer on both sides. Nothing here reads a clock: callers pass the time.
//!
//! One file per concept:
//! - [`ids`]: typed identifiers.
//! - [`asset`]: assets and the hierarchy rules.
//! - [`role`]: roles, permissions, per-site scoping, the acting user.
//! - [`work_order`]: the work-order record, creation and edits.
//! - [`state`]: the work-order state machine and its transition table.
//! - [`checklist`]: checklist tasks and results.
//! - [`pm`]: preventive-maintenance plans and occurrence generation.
//! - [`stock`]: spare-parts stock per site.
//! - [`cost`]: money, work-order cost and roll-ups.
//! - [`csv`]: CSV import and export of sites, assets, point links and parts.
//!
//! Serialisation: enums are `snake_case`; dates are `YYYY-MM-DD` strings and
//! instants RFC 3339 strings (UTC), in JSON and in postcard alike. No type
//! uses serde attributes that postcard cannot encode (`flatten`, internally
//! tagged enums, skipped fields).

pub mod asset;
pub mod checklist;
pub mod cost;
pub mod csv;
pub mod ids;
pub mod pm;
pub mod role;
pub mod state;
pub mod stock;
pub mod work_order;

pub use asset::{
    validate_hierarchy, Asset, AssetError, AssetKind, Criticality, HierarchyError, ParentLink,
};
pub use checklist::{
    Checklist, ChecklistError, ChecklistItem, ItemInput, ItemResult, ItemStatus, TaskKind, TaskSpec,
};
pub use cost::{CostError, CostLine, Money, WorkOrderCost, YearMonth};
pub use ids::{AssetId, PartId, PlanId, SiteId, UserId, WorkOrderId};
pub use pm::{due_occurrences, Occurrence, OccurrenceKey, PmPlan, PmState};
pub use role::{allows, Access, Actor, Permission, Role, SiteScope};
pub use state::{apply, transitions, Action, ActionKind, Change, State, TransitionError};
pub use stock::{StockError, StockItem};
pub use work_order::{Edit, NewWorkOrder, Priority, WorkOrder, WorkType};

time::serde::format_description!(pub(crate) iso_date, Date, "[year]-[month]-[day]");
