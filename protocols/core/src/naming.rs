//! Point names for discovered points: what discovery helpers of every
//! protocol use to turn a device's own names into valid, unique point names.

use std::collections::BTreeSet;

/// Joins `parts` with `.` after replacing every character a point name may
/// not hold with `_`; a name longer than 64 characters is shortened to a
/// hash of the whole plus its tail; a name already in `taken` gets a `_2`,
/// `_3`, ... suffix. The result is inserted into `taken`.
pub fn unique_point_name<S: AsRef<str>>(parts: &[S], taken: &mut BTreeSet<String>) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut name = parts
        .iter()
        .map(|p| clean(p.as_ref()))
        .collect::<Vec<_>>()
        .join(".");
    if name.is_empty() {
        name.push('_');
    }
    if name.len() > 64 {
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let tail: String = name
            .chars()
            .rev()
            .take(47)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        name = format!("{:016x}.{}", hash, tail.trim_start_matches('.'));
    }
    let mut unique = name.clone();
    let mut n = 2;
    while !taken.insert(unique.clone()) {
        let suffix = format!("_{n}");
        let keep = name.len().min(64 - suffix.len());
        unique = format!("{}{suffix}", &name[..keep]);
        n += 1;
    }
    unique
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cleans_joins_and_deduplicates() {
        let mut taken = BTreeSet::new();
        assert_eq!(
            unique_point_name(&["Plant", "Active Power"], &mut taken),
            "Plant.Active_Power"
        );
        assert_eq!(
            unique_point_name(&["Plant", "Active/Power"], &mut taken),
            "Plant.Active_Power_2"
        );
        assert_eq!(unique_point_name::<&str>(&[], &mut taken), "_");
    }

    proptest! {
        #[test]
        fn always_a_valid_unique_name(parts in proptest::collection::vec(".{0,40}", 0..6), n in 1usize..4) {
            let mut taken = BTreeSet::new();
            let mut seen = BTreeSet::new();
            for _ in 0..n {
                let name = unique_point_name(&parts, &mut taken);
                prop_assert!(dcmms_shared::validate_name(&name).is_ok(), "{name:?}");
                prop_assert!(seen.insert(name));
            }
        }
    }
}
