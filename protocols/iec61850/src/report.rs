//! Reports to samples, sans-IO: which data-set member carries which point,
//! and decoding a received report with it.
//!
//! A data set lists members in MMS form (`IED1LD0/MMXU1$MX$TotW`): a whole
//! data object (FCD), whose reported value is a structure, or one attribute
//! (FCDA). A point is carried by the member its MMS name equals or lies
//! below; the component names below the member are turned into positions
//! with the member's type (read once per association with
//! `GetVariableAccessAttributes`). The point's `q` and `t` are matched the
//! same way, in the same member or in their own members.
//!
//! A sample from a report is stamped with the member's `t` when the report
//! carries it, else the report's `TimeOfEntry`, else the arrival time.

use std::collections::{BTreeMap, HashMap};

use dcmms_shared::{PointId, Quality, Sample};

use crate::backend::ReportData;
use crate::config::IecPoint;
use crate::poll::Part;
use crate::value::{DeviceQuality, MmsValue, TypeTree};

/// One point part carried by a data-set member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub point: usize,
    pub part: Part,
    /// Component positions inside the member's value (empty: the member is
    /// the value itself).
    pub positions: Vec<usize>,
}

/// How `name` lies at or below `member`: the component names between them.
fn below(member: &str, name: &str) -> Option<Vec<String>> {
    if member == name {
        return Some(Vec::new());
    }
    let rest = name.strip_prefix(member)?.strip_prefix('$')?;
    Some(rest.split('$').map(str::to_owned).collect())
}

fn parts(p: &IecPoint) -> impl Iterator<Item = (Part, &str)> {
    std::iter::once((Part::Value, p.mms.as_str()))
        .chain(p.quality.as_ref().map(|(_, m)| (Part::Quality, m.as_str())))
        .chain(p.time.as_ref().map(|(_, m)| (Part::Time, m.as_str())))
}

/// Members whose type is needed to bind points (those that some point lies
/// strictly below).
pub fn members_needing_types(members: &[String], points: &[IecPoint]) -> Vec<usize> {
    members
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            points.iter().filter(|p| !p.reference.has_index()).any(|p| {
                parts(p).any(|(_, name)| below(m, name).is_some_and(|path| !path.is_empty()))
            })
        })
        .map(|(i, _)| i)
        .collect()
}

/// The binding of one enabled report control block's data set to points.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberMap {
    /// Targets per member index.
    pub targets: BTreeMap<usize, Vec<Target>>,
}

impl MemberMap {
    /// Binds `members` to `points` using the member types read so far
    /// (`types`, by member index). A member that needs a type but has none
    /// binds nothing. Points with array indices are left to polling.
    pub fn bind(
        members: &[String],
        types: &HashMap<usize, TypeTree>,
        points: &[IecPoint],
    ) -> MemberMap {
        let mut targets: BTreeMap<usize, Vec<Target>> = BTreeMap::new();
        for (pi, p) in points.iter().enumerate() {
            if p.reference.has_index() {
                continue;
            }
            for (part, name) in parts(p) {
                for (mi, m) in members.iter().enumerate() {
                    let Some(path) = below(m, name) else { continue };
                    let positions = if path.is_empty() {
                        Some(Vec::new())
                    } else {
                        types.get(&mi).and_then(|t| t.positions(&path))
                    };
                    if let Some(positions) = positions {
                        targets.entry(mi).or_default().push(Target {
                            point: pi,
                            part,
                            positions,
                        });
                        break;
                    }
                }
            }
        }
        MemberMap { targets }
    }

    /// Indices of the points whose value this data set carries.
    pub fn covered_points(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .targets
            .values()
            .flatten()
            .filter(|t| t.part == Part::Value)
            .map(|t| t.point)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// The last value and quality of a point, for reports that carry only one
/// of them (an FCDA data set reports a changed `q` without the value).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LastKnown {
    pub value: Option<f64>,
    pub quality: Option<Quality>,
}

/// Samples decoded from one report, with the count of members that did not
/// decode.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    pub samples: Vec<Sample>,
    pub decode_errors: u32,
}

#[derive(Default)]
struct Pending {
    value: Option<Option<f64>>,
    quality: Option<Quality>,
    time_ms: Option<i64>,
}

/// Decodes `report` with `map`. `last` holds one entry per point and is
/// updated. `arrival_ms` stamps values that carry no time at all.
pub fn decode_report(
    report: &ReportData,
    map: &MemberMap,
    points: &[IecPoint],
    ids: &[PointId],
    last: &mut [LastKnown],
    arrival_ms: i64,
) -> Decoded {
    let mut out = Decoded::default();
    let mut pending: BTreeMap<usize, Pending> = BTreeMap::new();
    for member in &report.members {
        let Some(targets) = map.targets.get(&member.index) else {
            continue;
        };
        for t in targets {
            let v = member.value.at(&t.positions);
            let entry = pending.entry(t.point).or_default();
            match t.part {
                Part::Value => {
                    let n = v.and_then(|v| v.to_number().ok());
                    if n.is_none() {
                        out.decode_errors += 1;
                    }
                    entry.value = Some(n);
                }
                Part::Quality => match v.and_then(DeviceQuality::from_value) {
                    Some(q) => entry.quality = Some(q.to_sample_quality()),
                    None => out.decode_errors += 1,
                },
                Part::Time => match v {
                    Some(MmsValue::UtcTime(ts)) => entry.time_ms = ts.unix_ms(),
                    _ => out.decode_errors += 1,
                },
            }
        }
    }
    let fallback_ts = report.time_of_entry_ms.unwrap_or(arrival_ms);
    for (pi, p) in pending {
        let (Some(point), Some(&id), Some(known)) = (points.get(pi), ids.get(pi), last.get_mut(pi))
        else {
            continue;
        };
        if let Some(q) = p.quality {
            known.quality = Some(q);
        }
        let ts_ms = p.time_ms.unwrap_or(fallback_ts);
        let sample = match p.value {
            Some(Some(raw)) => {
                let value = point.scaling.apply(raw);
                known.value = Some(value);
                Sample {
                    point: id,
                    ts_ms,
                    value,
                    quality: known.quality.unwrap_or(Quality::Good),
                }
            }
            Some(None) => Sample::bad(id, ts_ms),
            None => match known.value {
                // Only the quality (or time) changed.
                Some(value) => Sample {
                    point: id,
                    ts_ms,
                    value,
                    quality: known.quality.unwrap_or(Quality::Good),
                },
                None => continue,
            },
        };
        out.samples.push(sample);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ReportMember;
    use crate::config::PointConfig;
    use crate::reference::Fc;
    use crate::value::{quality_bits, LeafType, UtcTime};

    fn points() -> Vec<IecPoint> {
        [
            PointConfig::new("totw", "LD0/MMXU1.TotW.mag.f", Fc::MX).with_scale(0.001, 0.0),
            PointConfig::new("ind", "LD0/GGIO1.Ind1.stVal", Fc::ST),
            PointConfig::new("hz", "LD0/MMXU1.Hz.mag.f", Fc::MX),
            PointConfig::new("harm", "LD0/MHAI1.HA.phsAHar(2).cVal.mag.f", Fc::MX),
            PointConfig::new("polled", "LD0/MMXU1.TotVAr.mag.f", Fc::MX),
        ]
        .iter()
        .map(|c| c.validate("d", "IED1").unwrap())
        .collect()
    }

    fn mv_type() -> TypeTree {
        TypeTree::Structure(vec![
            (
                "mag".into(),
                TypeTree::Structure(vec![("f".into(), TypeTree::Leaf(LeafType::Float(32)))]),
            ),
            ("q".into(), TypeTree::Leaf(LeafType::BitString(13))),
            ("t".into(), TypeTree::Leaf(LeafType::UtcTime)),
        ])
    }

    fn sps_type() -> TypeTree {
        TypeTree::Structure(vec![
            ("stVal".into(), TypeTree::Leaf(LeafType::Bool)),
            ("q".into(), TypeTree::Leaf(LeafType::BitString(13))),
            ("t".into(), TypeTree::Leaf(LeafType::UtcTime)),
        ])
    }

    fn members() -> Vec<String> {
        vec![
            "IED1LD0/MMXU1$MX$TotW".into(),
            "IED1LD0/GGIO1$ST$Ind1".into(),
            // FCDA members: value and quality apart, no time.
            "IED1LD0/MMXU1$MX$Hz$mag$f".into(),
            "IED1LD0/MMXU1$MX$Hz$q".into(),
            "IED1LD0/MHAI1$MX$HA".into(),
        ]
    }

    fn t(ms: u32) -> MmsValue {
        MmsValue::UtcTime(UtcTime {
            seconds: 1_700_000_000,
            fraction: ((u64::from(ms) << 24) / 1000) as u32,
            quality: 0,
        })
    }

    fn map() -> MemberMap {
        let pts = points();
        assert_eq!(members_needing_types(&members(), &pts), vec![0, 1]);
        let types = HashMap::from([(0, mv_type()), (1, sps_type())]);
        MemberMap::bind(&members(), &types, &pts)
    }

    #[test]
    fn binding_covers_what_the_data_set_carries() {
        let m = map();
        assert_eq!(m.covered_points(), vec![0, 1, 2]);
        assert_eq!(
            m.targets[&0],
            vec![
                Target {
                    point: 0,
                    part: Part::Value,
                    positions: vec![0, 0]
                },
                Target {
                    point: 0,
                    part: Part::Quality,
                    positions: vec![1]
                },
                Target {
                    point: 0,
                    part: Part::Time,
                    positions: vec![2]
                },
            ]
        );
        assert_eq!(
            m.targets[&2],
            vec![Target {
                point: 2,
                part: Part::Value,
                positions: vec![]
            }]
        );
        assert_eq!(
            m.targets[&3],
            vec![Target {
                point: 2,
                part: Part::Quality,
                positions: vec![]
            }]
        );
        assert!(!m.targets.contains_key(&4), "indexed references are polled");
        // Without the types, only exact members bind.
        let bare = MemberMap::bind(&members(), &HashMap::new(), &points());
        assert_eq!(bare.covered_points(), vec![2]);
    }

    fn report(members: Vec<ReportMember>) -> ReportData {
        ReportData {
            rpt_id: "urcb01".into(),
            seq_num: Some(1),
            time_of_entry_ms: Some(1_700_000_009_000),
            data_set: None,
            buffer_overflow: None,
            entry_id: None,
            conf_rev: None,
            members,
        }
    }

    fn member(index: usize, value: MmsValue) -> ReportMember {
        ReportMember {
            index,
            reference: None,
            value,
            reason: None,
        }
    }

    #[test]
    fn samples_take_the_member_time_and_quality() {
        let pts = points();
        let ids: Vec<PointId> = (0..5).map(PointId).collect();
        let mut last = vec![LastKnown::default(); 5];
        let invalid = quality_bits(DeviceQuality {
            validity: 1,
            flags: 0,
        });
        let r = report(vec![
            member(
                0,
                MmsValue::Structure(vec![
                    MmsValue::Structure(vec![MmsValue::Float32(1500.0)]),
                    quality_bits(DeviceQuality::GOOD),
                    t(250),
                ]),
            ),
            member(
                1,
                MmsValue::Structure(vec![MmsValue::Bool(true), invalid, t(500)]),
            ),
            member(2, MmsValue::Float32(50.02)),
        ]);
        let d = decode_report(&r, &map(), &pts, &ids, &mut last, 99);
        assert_eq!(d.decode_errors, 0);
        assert_eq!(
            d.samples,
            vec![
                Sample::good(PointId(0), 1_700_000_000_250, 1.5),
                Sample {
                    point: PointId(1),
                    ts_ms: 1_700_000_000_500,
                    value: 1.0,
                    quality: Quality::Bad
                },
                // No time in an FCDA member: the report's TimeOfEntry.
                Sample::good(PointId(2), 1_700_000_009_000, 50.02),
            ]
        );
        // A quality-only change re-sends the last value with the new quality.
        let questionable = quality_bits(DeviceQuality {
            validity: 3,
            flags: 0,
        });
        let r = ReportData {
            time_of_entry_ms: None,
            ..report(vec![member(3, questionable)])
        };
        let d = decode_report(&r, &map(), &pts, &ids, &mut last, 77);
        assert_eq!(
            d.samples,
            vec![Sample {
                point: PointId(2),
                ts_ms: 77,
                value: 50.02,
                quality: Quality::Uncertain
            }]
        );
        // And the quality sticks to later values of that point.
        let d = decode_report(
            &report(vec![member(2, MmsValue::Float32(49.98))]),
            &map(),
            &pts,
            &ids,
            &mut last,
            1,
        );
        assert_eq!(d.samples[0].quality, Quality::Uncertain);
    }

    #[test]
    fn shapes_that_do_not_fit_are_counted_not_panicked_on() {
        let pts = points();
        let ids: Vec<PointId> = (0..5).map(PointId).collect();
        let mut last = vec![LastKnown::default(); 5];
        let r = report(vec![
            member(0, MmsValue::Bool(true)),
            member(1, MmsValue::Structure(vec![])),
            member(17, MmsValue::Int(1)),
        ]);
        let d = decode_report(&r, &map(), &pts, &ids, &mut last, 5);
        assert_eq!(d.decode_errors, 6);
        assert_eq!(d.samples.len(), 2);
        assert!(d.samples.iter().all(|s| s.quality == Quality::Bad));
        // A quality-only report for a point never seen sends nothing.
        let q = quality_bits(DeviceQuality::GOOD);
        let d = decode_report(
            &report(vec![member(3, q)]),
            &map(),
            &pts,
            &ids,
            &mut last,
            5,
        );
        assert!(d.samples.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn any_report_decodes_without_panic(
            members in proptest::collection::vec((0usize..7, crate::value::arb_value()), 0..8),
            toe in proptest::option::of(proptest::prelude::any::<i64>()),
        ) {
            let pts = points();
            let ids: Vec<PointId> = (0..5).map(PointId).collect();
            let mut last = vec![LastKnown::default(); 5];
            let r = ReportData {
                time_of_entry_ms: toe,
                ..report(members.into_iter().map(|(i, v)| member(i, v)).collect())
            };
            let d = decode_report(&r, &map(), &pts, &ids, &mut last, 0);
            proptest::prop_assert!(d.samples.len() <= 5);
            for s in &d.samples {
                proptest::prop_assert!(s.quality == Quality::Bad || s.value.is_finite());
            }
        }
    }
}
