//! Roles, permissions and per-site scoping.
//!
//! This module owns the one table of what each role may do ([`allows`]) and
//! how a user's grants resolve to a role at a site ([`Access::role_on`]).
//! Rules that depend on a work order (a technician acts only on work orders
//! assigned to them) live in the state machine, which takes the resolved
//! [`Actor`]. Nothing here authenticates anyone: the hub and the gateway
//! console establish who the user is and then ask these functions what the
//! user may do.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ids::{SiteId, UserId};

/// What a user is at a site. Ordered by power: `Viewer < Technician <
/// Supervisor < Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything at the site, changes nothing.
    Viewer,
    /// Requests work, executes work orders assigned to them, comments.
    Technician,
    /// Runs maintenance at the site: approves, schedules, assigns, verifies,
    /// closes, cancels and reopens work orders; plans, stock and assets.
    Supervisor,
    /// Everything a supervisor may do, plus users, gateways and firmware.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Viewer,
        Role::Technician,
        Role::Supervisor,
        Role::Admin,
    ];

    /// Supervisor or admin.
    pub fn is_supervisor(self) -> bool {
        self >= Role::Supervisor
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Technician => "technician",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

/// An action a role may be allowed to take at a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// See assets, telemetry, alarms, work orders, plans and stock.
    View,
    /// Open a work request (it starts as `requested`).
    RequestWork,
    /// Add a comment to a work order.
    Comment,
    /// Start, hold, resume and complete a work order; record checklist
    /// results, labour and parts on it. Technicians: only when assigned.
    ExecuteWork,
    /// Create work orders directly as `open`, approve requests, edit them.
    ManageWork,
    /// Schedule and assign work orders.
    DispatchWork,
    /// Verify and close completed work.
    VerifyWork,
    /// Cancel work orders and reopen finished ones.
    CancelWork,
    /// See labour and parts costs.
    ViewCosts,
    /// Create and change preventive-maintenance plans.
    ManagePlans,
    /// Receive, count and reserve parts.
    ManageStock,
    /// Create, move and retire assets.
    ManageAssets,
    /// Create users and grant roles.
    ManageUsers,
    /// Register gateways, push configuration, roll out firmware.
    ManageFleet,
}

impl Permission {
    pub const ALL: [Permission; 14] = [
        Permission::View,
        Permission::RequestWork,
        Permission::Comment,
        Permission::ExecuteWork,
        Permission::ManageWork,
        Permission::DispatchWork,
        Permission::VerifyWork,
        Permission::CancelWork,
        Permission::ViewCosts,
        Permission::ManagePlans,
        Permission::ManageStock,
        Permission::ManageAssets,
        Permission::ManageUsers,
        Permission::ManageFleet,
    ];
}

/// Whether `role` may take `action` (at a site where the user holds that
/// role). Each role may do everything the role below it may, and more.
pub fn allows(role: Role, action: Permission) -> bool {
    use Permission::*;
    let least = match action {
        View => Role::Viewer,
        RequestWork | Comment | ExecuteWork => Role::Technician,
        ManageWork | DispatchWork | VerifyWork | CancelWork | ViewCosts | ManagePlans
        | ManageStock | ManageAssets => Role::Supervisor,
        ManageUsers | ManageFleet => Role::Admin,
    };
    role >= least
}

/// Staff may hold a fleet-wide role; a contractor only ever has per-site
/// roles and sees only those sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    #[default]
    Staff,
    Contractor,
}

/// A user's grants: an optional role at every site (staff only) and roles at
/// given sites. The role at a site is the higher of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub user: UserId,
    pub kind: UserKind,
    /// Role at every site, present and future. Ignored for contractors, so a
    /// stray fleet-wide grant can never widen a contractor's view.
    pub fleet_role: Option<Role>,
    pub site_roles: BTreeMap<SiteId, Role>,
}

impl Access {
    /// A fleet-wide administrator.
    pub fn admin(user: UserId) -> Self {
        Access {
            user,
            kind: UserKind::Staff,
            fleet_role: Some(Role::Admin),
            site_roles: BTreeMap::new(),
        }
    }

    /// A staff member with roles at given sites only.
    pub fn staff(user: UserId, site_roles: BTreeMap<SiteId, Role>) -> Self {
        Access {
            user,
            kind: UserKind::Staff,
            fleet_role: None,
            site_roles,
        }
    }

    /// A contractor, who sees only the sites listed.
    pub fn contractor(user: UserId, site_roles: BTreeMap<SiteId, Role>) -> Self {
        Access {
            user,
            kind: UserKind::Contractor,
            fleet_role: None,
            site_roles,
        }
    }

    /// The user's role at `site`, or `None` if the user may not see it.
    pub fn role_on(&self, site: &SiteId) -> Option<Role> {
        let fleet = match self.kind {
            UserKind::Staff => self.fleet_role,
            UserKind::Contractor => None,
        };
        fleet.max(self.site_roles.get(site).copied())
    }

    /// Whether the user may see `site` at all.
    pub fn sees(&self, site: &SiteId) -> bool {
        self.role_on(site).is_some()
    }

    /// Whether the user may take `action` at `site`.
    pub fn can(&self, site: &SiteId, action: Permission) -> bool {
        self.role_on(site).is_some_and(|role| allows(role, action))
    }

    /// Which sites the user sees: every site, or the ones listed.
    pub fn visible_sites(&self) -> SiteScope {
        match (self.kind, self.fleet_role) {
            (UserKind::Staff, Some(_)) => SiteScope::All,
            _ => SiteScope::Only(self.site_roles.keys().cloned().collect()),
        }
    }

    /// The user acting at `site`, for the work-order state machine; `None`
    /// if the user may not see the site.
    pub fn actor_on(&self, site: &SiteId) -> Option<Actor> {
        self.role_on(site).map(|role| Actor {
            user: self.user.clone(),
            role,
            site: site.clone(),
        })
    }
}

/// The sites a user may see; use it to filter listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteScope {
    All,
    Only(BTreeSet<SiteId>),
}

impl SiteScope {
    pub fn contains(&self, site: &SiteId) -> bool {
        match self {
            SiteScope::All => true,
            SiteScope::Only(sites) => sites.contains(site),
        }
    }
}

/// A user acting at one site with the role they hold there. Build it with
/// [`Access::actor_on`] for the site of the work order being changed; the
/// state machine refuses an actor resolved for another site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user: UserId,
    pub role: Role,
    pub site: SiteId,
}

impl Actor {
    pub fn new(user: impl Into<UserId>, role: Role, site: impl Into<SiteId>) -> Self {
        Actor {
            user: user.into(),
            role,
            site: site.into(),
        }
    }

    pub fn can(&self, action: Permission) -> bool {
        allows(self.role, action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_table() {
        use Permission::*;
        // The complete table, one row per role, in Permission::ALL order.
        #[rustfmt::skip]
        let expected: [(Role, [bool; 14]); 4] = [
            (Role::Viewer, [true, false, false, false, false, false, false, false, false, false, false, false, false, false]),
            (Role::Technician, [true, true, true, true, false, false, false, false, false, false, false, false, false, false]),
            (Role::Supervisor, [true, true, true, true, true, true, true, true, true, true, true, true, false, false]),
            (Role::Admin, [true; 14]),
        ];
        for (role, row) in expected {
            for (action, allowed) in Permission::ALL.into_iter().zip(row) {
                assert_eq!(allows(role, action), allowed, "{role:?} {action:?}");
            }
        }
        assert!(!allows(Role::Viewer, Comment));
        assert!(!allows(Role::Supervisor, ManageUsers));
    }

    #[test]
    fn site_roles_and_fleet_roles_combine() {
        let mut sites = BTreeMap::new();
        sites.insert(SiteId::from("north"), Role::Supervisor);
        let mut access = Access::staff(UserId::from("ana"), sites);
        access.fleet_role = Some(Role::Viewer);
        assert_eq!(access.role_on(&"north".into()), Some(Role::Supervisor));
        assert_eq!(access.role_on(&"south".into()), Some(Role::Viewer));
        assert!(access.can(&"north".into(), Permission::DispatchWork));
        assert!(!access.can(&"south".into(), Permission::DispatchWork));
        assert_eq!(access.visible_sites(), SiteScope::All);

        let admin = Access::admin("root".into());
        assert_eq!(admin.role_on(&"anywhere".into()), Some(Role::Admin));
        let actor = admin.actor_on(&"anywhere".into()).unwrap();
        assert_eq!(actor.site, SiteId::from("anywhere"));
        assert!(actor.can(Permission::ManageFleet));
    }

    #[test]
    fn contractors_see_only_their_sites() {
        let mut sites = BTreeMap::new();
        sites.insert(SiteId::from("wind-3"), Role::Technician);
        let mut c = Access::contractor(UserId::from("acme-joe"), sites);
        // Even a stray fleet-wide grant does not widen a contractor's view.
        c.fleet_role = Some(Role::Admin);
        assert_eq!(c.role_on(&"wind-3".into()), Some(Role::Technician));
        assert_eq!(c.role_on(&"solar-1".into()), None);
        assert!(!c.sees(&"solar-1".into()));
        assert!(c.actor_on(&"solar-1".into()).is_none());
        let scope = c.visible_sites();
        assert!(scope.contains(&"wind-3".into()));
        assert!(!scope.contains(&"solar-1".into()));

        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["kind"], "contractor");
        assert_eq!(json["site_roles"]["wind-3"], "technician");
    }
}
