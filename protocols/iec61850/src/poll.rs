//! Reading the polled points, sans-IO: which variables each MMS Read asks
//! for, and turning the answers into samples.
//!
//! Each point reads its value and, for ST/MX data, its data object's `q` and
//! `t` in the same request, so a sample carries the device's own timestamp
//! and quality. A device that answers "object does not exist" for a `q` or
//! `t` (a model that has none there) is believed: [`PointState`] remembers
//! it and later reads leave it out.

use dcmms_shared::{PointId, Quality, Sample};

use crate::backend::{MmsError, VarRef};
use crate::config::IecPoint;
use crate::value::{DeviceQuality, MmsValue};

/// Which part of a point a read item fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Value,
    Quality,
    Time,
}

/// One variable of one Read request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadItem {
    /// Index into the device's points.
    pub point: usize,
    pub part: Part,
}

/// What the driver has learned about a point's `q` and `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointState {
    pub read_quality: bool,
    pub read_time: bool,
}

impl PointState {
    pub fn for_point(p: &IecPoint) -> Self {
        PointState {
            read_quality: p.quality.is_some(),
            read_time: p.time.is_some(),
        }
    }
}

/// Groups the polled points' variables into requests of at most
/// `max_vars` variables, never splitting one point across two requests.
pub fn plan_reads(polled: &[usize], states: &[PointState], max_vars: usize) -> Vec<Vec<ReadItem>> {
    let mut batches: Vec<Vec<ReadItem>> = Vec::new();
    let mut current: Vec<ReadItem> = Vec::new();
    for &i in polled {
        let Some(st) = states.get(i) else { continue };
        let mut items = vec![ReadItem {
            point: i,
            part: Part::Value,
        }];
        if st.read_quality {
            items.push(ReadItem {
                point: i,
                part: Part::Quality,
            });
        }
        if st.read_time {
            items.push(ReadItem {
                point: i,
                part: Part::Time,
            });
        }
        if !current.is_empty() && current.len() + items.len() > max_vars.max(3) {
            batches.push(std::mem::take(&mut current));
        }
        current.extend(items);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// The variables of one planned request.
pub fn vars_of(batch: &[ReadItem], points: &[IecPoint]) -> Vec<VarRef> {
    batch
        .iter()
        .filter_map(|item| {
            let p = points.get(item.point)?;
            match item.part {
                Part::Value => Some(p.value.clone()),
                Part::Quality => p.quality.as_ref().map(|(v, _)| v.clone()),
                Part::Time => p.time.as_ref().map(|(v, _)| v.clone()),
            }
        })
        .collect()
}

/// Counts of what went wrong in one batch, for [`dcmms_protocols_core::DeviceStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    /// Values the device refused (data access errors).
    pub access_errors: u32,
    /// Values that were not numbers.
    pub decode_errors: u32,
}

impl BatchOutcome {
    pub fn is_clean(&self) -> bool {
        self.access_errors == 0 && self.decode_errors == 0
    }
}

/// Turns one request's answers into samples (one per point), updating
/// `states` when the device says a `q` or `t` does not exist.
/// `now_ms` stamps values without a device timestamp.
pub fn decode_batch(
    batch: &[ReadItem],
    results: &[Result<MmsValue, MmsError>],
    points: &[IecPoint],
    ids: &[PointId],
    states: &mut [PointState],
    now_ms: i64,
    out: &mut Vec<Sample>,
) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    let mut i = 0;
    while i < batch.len() {
        let point = batch[i].point;
        let end = batch[i..]
            .iter()
            .position(|it| it.point != point)
            .map_or(batch.len(), |n| i + n);
        let mut value: Option<Result<f64, ()>> = None;
        let mut quality = Quality::Good;
        let mut ts = None;
        for (item, result) in batch[i..end].iter().zip(results.get(i..end).unwrap_or(&[])) {
            match (item.part, result) {
                (Part::Value, Ok(v)) => {
                    value = Some(v.to_number().map_err(|_| {
                        outcome.decode_errors += 1;
                    }));
                }
                (Part::Value, Err(_)) => {
                    outcome.access_errors += 1;
                    value = Some(Err(()));
                }
                (Part::Quality, Ok(v)) => match DeviceQuality::from_value(v) {
                    Some(q) => quality = q.to_sample_quality(),
                    None => {
                        if let Some(s) = states.get_mut(point) {
                            s.read_quality = false;
                        }
                    }
                },
                (Part::Time, Ok(MmsValue::UtcTime(t))) => ts = t.unix_ms(),
                (Part::Time, Ok(_)) => {
                    if let Some(s) = states.get_mut(point) {
                        s.read_time = false;
                    }
                }
                (Part::Quality, Err(e)) | (Part::Time, Err(e)) => {
                    // Only a definite "not there" stops the reads; a
                    // transient refusal leaves the value's quality alone.
                    if matches!(e, MmsError::Access { code: 10 | 4 | 5 }) {
                        if let Some(s) = states.get_mut(point) {
                            if item.part == Part::Quality {
                                s.read_quality = false;
                            } else {
                                s.read_time = false;
                            }
                        }
                    }
                }
            }
        }
        if let (Some(p), Some(&id)) = (points.get(point), ids.get(point)) {
            let ts_ms = ts.unwrap_or(now_ms);
            out.push(match value {
                Some(Ok(raw)) => Sample {
                    point: id,
                    ts_ms,
                    value: p.scaling.apply(raw),
                    quality,
                },
                _ => Sample::bad(id, now_ms),
            });
        }
        i = end;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PointConfig;
    use crate::reference::Fc;
    use crate::value::{quality_bits, UtcTime};

    fn points() -> Vec<IecPoint> {
        [
            PointConfig::new("p", "LD0/MMXU1.TotW.mag.f", Fc::MX).with_scale(0.1, 0.0),
            PointConfig::new("s", "LD0/GGIO1.Ind1.stVal", Fc::ST),
            PointConfig::new("sp", "LD0/DRCC1.WMax.setMag.f", Fc::SP),
        ]
        .iter()
        .map(|c| c.validate("d", "IED1").unwrap())
        .collect()
    }

    #[test]
    fn plans_keep_a_point_in_one_request() {
        let pts = points();
        let states: Vec<_> = pts.iter().map(PointState::for_point).collect();
        let all = plan_reads(&[0, 1, 2], &states, 60);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].len(), 7);
        let small = plan_reads(&[0, 1, 2], &states, 4);
        assert_eq!(small.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 4]);
        let vars = vars_of(&all[0], &pts);
        assert_eq!(vars[0].reference, "IED1LD0/MMXU1.TotW.mag.f");
        assert_eq!(vars[1].reference, "IED1LD0/MMXU1.TotW.q");
        assert_eq!(vars[2].reference, "IED1LD0/MMXU1.TotW.t");
        assert_eq!(vars[6].reference, "IED1LD0/DRCC1.WMax.setMag.f");
        assert_eq!(vars[6].fc, Fc::SP);
    }

    #[test]
    fn samples_carry_device_time_and_quality() {
        let pts = points();
        let ids = [PointId(10), PointId(11), PointId(12)];
        let mut states: Vec<_> = pts.iter().map(PointState::for_point).collect();
        let batch = &plan_reads(&[0, 1, 2], &states, 60)[0];
        let t = UtcTime {
            seconds: 1_700_000_000,
            fraction: 0,
            quality: 0,
        };
        let questionable = quality_bits(DeviceQuality {
            validity: 3,
            flags: 0,
        });
        let results = vec![
            Ok(MmsValue::Float32(2301.0)),
            Ok(quality_bits(DeviceQuality::GOOD)),
            Ok(MmsValue::UtcTime(t)),
            Ok(MmsValue::Bool(true)),
            Ok(questionable),
            Err(MmsError::Access { code: 10 }),
            Ok(MmsValue::Float32(5.5)),
        ];
        let mut out = Vec::new();
        let o = decode_batch(batch, &results, &pts, &ids, &mut states, 42, &mut out);
        assert!(o.is_clean());
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], Sample::good(PointId(10), 1_700_000_000_000, 230.1));
        assert_eq!(
            out[1],
            Sample {
                point: PointId(11),
                ts_ms: 42,
                value: 1.0,
                quality: Quality::Uncertain
            }
        );
        assert_eq!(out[2], Sample::good(PointId(12), 42, 5.5));
        // The missing `t` is not asked for again.
        assert!(!states[1].read_time && states[1].read_quality);
        assert_eq!(plan_reads(&[1], &states, 60)[0].len(), 2);
    }

    #[test]
    fn refused_or_non_numeric_values_are_bad() {
        let pts = points();
        let ids = [PointId(0), PointId(1), PointId(2)];
        let mut states: Vec<_> = pts.iter().map(PointState::for_point).collect();
        let batch = &plan_reads(&[0, 2], &states, 60)[0];
        let results = vec![
            Ok(MmsValue::String("x".into())),
            Ok(quality_bits(DeviceQuality::GOOD)),
            Ok(MmsValue::UtcTime(UtcTime::default())),
            Err(MmsError::Access { code: 3 }),
        ];
        let mut out = Vec::new();
        let o = decode_batch(batch, &results, &pts, &ids, &mut states, 7, &mut out);
        assert_eq!(
            o,
            BatchOutcome {
                access_errors: 1,
                decode_errors: 1
            }
        );
        assert!(out
            .iter()
            .all(|s| s.quality == Quality::Bad && s.ts_ms == 7));
        assert_eq!(out.len(), 2);
        // Short answers never panic and still give one sample per point.
        let mut out = Vec::new();
        decode_batch(batch, &results[..1], &pts, &ids, &mut states, 7, &mut out);
        assert_eq!(out.len(), 2);
    }

    proptest::proptest! {
        #[test]
        fn any_answer_gives_one_sample_per_point(
            answers in proptest::collection::vec(proptest::option::of(crate::value::arb_value()), 0..9),
        ) {
            let pts = points();
            let ids = [PointId(0), PointId(1), PointId(2)];
            let mut states: Vec<_> = pts.iter().map(PointState::for_point).collect();
            let batch = &plan_reads(&[0, 1, 2], &states, 60)[0];
            let results: Vec<Result<MmsValue, MmsError>> = answers
                .into_iter()
                .map(|a| a.ok_or(MmsError::Access { code: 10 }))
                .collect();
            let mut out = Vec::new();
            decode_batch(batch, &results, &pts, &ids, &mut states, 1, &mut out);
            proptest::prop_assert_eq!(out.len(), 3);
            for s in &out {
                proptest::prop_assert!(s.quality == Quality::Bad || s.value.is_finite());
            }
        }
    }
}
