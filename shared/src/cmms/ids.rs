//! Identifiers of the maintenance domain.
//!
//! Every identifier is an opaque string in a newtype, so that an asset id can
//! never be passed where a user id is expected. This module does not decide
//! how ids are minted (the hub uses UUIDs or slugs; a gateway offline mints
//! its own unique ids for work orders it creates) and never validates their
//! contents beyond what each type documents.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }
    };
}

id_type!(
    /// A site: the same name as the `{site}` level of the MQTT topics (see
    /// [`crate::validate_name`]).
    SiteId
);
id_type!(
    /// An asset (inverter, transformer, turbine, ...) within one site.
    AssetId
);
id_type!(
    /// A user of the hub or a gateway console (staff or contractor).
    UserId
);
id_type!(
    /// A work order, unique across the fleet.
    WorkOrderId
);
id_type!(
    /// A part number in the parts catalogue; stock is kept per site and part.
    PartId
);
id_type!(
    /// A preventive-maintenance plan.
    PlanId
);
