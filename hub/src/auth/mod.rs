//! Who is calling and what they may do: passwords, bearer tokens, the
//! request extractor, permission checks and the first administrator.
//!
//! Every `/api/v1` handler but login and the OpenAPI document takes an
//! [`Authenticated`] argument (401 without a valid token) and checks what
//! the user may do with [`require`] (one site) or [`require_fleet`]
//! (fleet-wide), which answer 403 naming the permission lacked. Listings
//! filter by [`Access::visible_sites`]. Roles and permissions themselves
//! are defined once, in `dcmms_shared::cmms::role`.

pub mod bootstrap;
pub mod extract;
pub mod password;
pub mod token;

pub use bootstrap::{
    ensure_admin, AdminBootstrap, BootstrapError, ADMIN_PASSWORD_ENV, ADMIN_USERNAME,
};
pub use extract::Authenticated;
pub use password::Hasher;

use crate::api::ApiError;
use dcmms_shared::cmms::role::UserKind;
use dcmms_shared::cmms::{allows, Access, Actor, Permission, SiteId};

/// Default lifetime of a bearer token.
pub const DEFAULT_TOKEN_TTL_HOURS: u32 = 12;

/// How the API authenticates; part of the API state.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Lifetime of a token from login, in milliseconds.
    pub token_ttl_ms: i64,
    pub hasher: Hasher,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            token_ttl_ms: i64::from(DEFAULT_TOKEN_TTL_HOURS) * 3_600_000,
            hasher: Hasher::default(),
        }
    }
}

/// The user may take `permission` at `site`: their [`Actor`] there, or 403.
pub fn require(access: &Access, site: &SiteId, permission: Permission) -> Result<Actor, ApiError> {
    access
        .actor_on(site)
        .filter(|a| a.can(permission))
        .ok_or_else(|| ApiError::forbidden(permission, Some(site)))
}

/// The user holds `permission` at every site (a fleet-wide role; never a
/// contractor), or 403.
pub fn require_fleet(access: &Access, permission: Permission) -> Result<(), ApiError> {
    if holds_fleet(access, permission) {
        Ok(())
    } else {
        Err(ApiError::forbidden(permission, None))
    }
}

/// Whether the user holds `permission` fleet-wide.
pub fn holds_fleet(access: &Access, permission: Permission) -> bool {
    access.kind == UserKind::Staff && access.fleet_role.is_some_and(|r| allows(r, permission))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcmms_shared::cmms::Role;
    use std::collections::BTreeMap;

    #[test]
    fn require_names_what_is_lacking() {
        let mut sites = BTreeMap::new();
        sites.insert(SiteId::from("north"), Role::Supervisor);
        let staff = Access::staff("ana".into(), sites.clone());
        let actor = require(&staff, &"north".into(), Permission::DispatchWork).unwrap();
        assert_eq!(actor.role, Role::Supervisor);
        match require(&staff, &"south".into(), Permission::View) {
            Err(ApiError::Forbidden {
                permission,
                site,
                message,
            }) => {
                assert_eq!(permission, Some(Permission::View));
                assert_eq!(site, Some("south".into()));
                assert!(
                    message.contains("`view`") && message.contains("south"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(require_fleet(&staff, Permission::View).is_err());
        assert!(require_fleet(&Access::admin("root".into()), Permission::ManageUsers).is_ok());
        // A contractor never holds anything fleet-wide, whatever is stored.
        let mut c = Access::contractor("joe".into(), sites);
        c.fleet_role = Some(Role::Admin);
        assert!(require_fleet(&c, Permission::View).is_err());
    }
}
