//! The point catalog held in memory: "device/point" names to dense
//! [`PointId`]s, in the order they were interned. The redb layer persists new
//! entries before [`Catalog::extend`] makes them visible, so an id handed out
//! is always on disk.

use super::RingError;
use dcmms_shared::{validate_name, PointId};
use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Catalog {
    ids: HashMap<String, PointId>,
    len: u32,
}

/// Result of [`Catalog::plan`]: the id of every requested name and the names
/// that are new, in id order.
#[derive(Debug, PartialEq, Eq)]
pub struct InternPlan {
    pub ids: Vec<PointId>,
    pub new: Vec<(PointId, String)>,
}

impl Catalog {
    /// Builds the catalog from stored names, index = id.
    pub fn from_names(names: Vec<String>) -> Result<Catalog, RingError> {
        let len = u32::try_from(names.len()).map_err(|_| RingError::CatalogFull(u32::MAX))?;
        let ids = names
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n, PointId(i as u32)))
            .collect();
        Ok(Catalog { ids, len })
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Assigns ids to `names` without changing the catalog: known names keep
    /// their id, new ones (validated) get the next ids; a name repeated in
    /// `names` gets one id.
    pub fn plan(&self, names: &[String]) -> Result<InternPlan, RingError> {
        let mut fresh: HashMap<&str, PointId> = HashMap::new();
        let mut plan = InternPlan {
            ids: Vec::with_capacity(names.len()),
            new: Vec::new(),
        };
        for name in names {
            if let Some(id) = self.ids.get(name).or_else(|| fresh.get(name.as_str())) {
                plan.ids.push(*id);
                continue;
            }
            validate_point_name(name)?;
            let n = u32::try_from(plan.new.len()).map_err(|_| RingError::CatalogFull(self.len))?;
            let id = self
                .len
                .checked_add(n)
                .filter(|id| *id < u32::MAX)
                .ok_or(RingError::CatalogFull(self.len))?;
            let id = PointId(id);
            fresh.insert(name, id);
            plan.ids.push(id);
            plan.new.push((id, name.clone()));
        }
        Ok(plan)
    }

    /// Makes planned entries visible, once they are stored.
    pub fn extend(&mut self, new: Vec<(PointId, String)>) {
        for (id, name) in new {
            self.len = self.len.max(id.0 + 1);
            self.ids.insert(name, id);
        }
    }
}

/// A catalog name is one or more `/`-separated parts, each a valid name
/// ([`validate_name`]): normally `device/point`.
pub fn validate_point_name(name: &str) -> Result<(), RingError> {
    name.split('/')
        .try_for_each(validate_name)
        .map_err(|e| RingError::BadPointName {
            name: name.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plans_dense_ids_and_reuses_known_ones() {
        let mut c = Catalog::from_names(names(&["inv1/p_ac", "inv1/u_dc"])).unwrap();
        let plan = c
            .plan(&names(&[
                "inv1/u_dc",
                "inv2/p_ac",
                "inv2/p_ac",
                "inv1/p_ac",
                "met/ghi",
            ]))
            .unwrap();
        assert_eq!(
            plan.ids,
            vec![PointId(1), PointId(2), PointId(2), PointId(0), PointId(3)]
        );
        assert_eq!(
            plan.new,
            vec![
                (PointId(2), "inv2/p_ac".into()),
                (PointId(3), "met/ghi".into())
            ]
        );
        assert_eq!(c.len(), 2, "planning changes nothing");
        c.extend(plan.new);
        assert_eq!(c.len(), 4);
        let again = c.plan(&names(&["met/ghi"])).unwrap();
        assert_eq!((again.ids, again.new), (vec![PointId(3)], vec![]));
    }

    #[test]
    fn refuses_bad_names() {
        let c = Catalog::default();
        for bad in ["", "inv1/", "/p", "inv 1/p", "inv1/p+q"] {
            assert!(
                matches!(c.plan(&names(&[bad])), Err(RingError::BadPointName { .. })),
                "{bad:?}"
            );
        }
        assert!(c.plan(&names(&["inv1/p_ac", "p", "a/b/c"])).is_ok());
    }
}
