//! Tests of PM generation: calendar edge cases, meter crossings, resets,
//! replays, and "never twice" as a property.

use super::*;
use crate::cmms::checklist::TaskKind;
use proptest::prelude::*;
use time::macros::date;

fn plan(trigger: Trigger) -> PmPlan {
    PmPlan {
        id: "pm-7".into(),
        site: "s1".into(),
        asset: "inv-01".into(),
        title: "Clean filters".into(),
        description: String::new(),
        work_type: WorkType::Preventive,
        priority: Priority::P4,
        checklist: vec![TaskSpec::new(
            "filters",
            "Filters clean",
            TaskKind::Check,
            true,
        )],
        trigger,
    }
}

fn calendar(every: u32, unit: IntervalUnit, anchor: Anchor, start: Date, lead_days: u32) -> PmPlan {
    plan(Trigger::Calendar(CalendarTrigger {
        every,
        unit,
        anchor,
        start,
        lead_days,
    }))
}

fn every(interval: f64, origin: f64, lead: f64) -> PmPlan {
    plan(Trigger::Meter(MeterTrigger {
        point: "s1/inv-01/run_hours".into(),
        rule: MeterRule::Every {
            interval,
            origin,
            lead,
        },
    }))
}

fn threshold(value: f64, direction: Direction, hysteresis: f64) -> PmPlan {
    plan(Trigger::Meter(MeterTrigger {
        point: "s1/inv-01/temp".into(),
        rule: MeterRule::Threshold {
            value,
            direction,
            hysteresis,
        },
    }))
}

/// Evaluates a calendar plan once a day from `from` to `to` inclusive and
/// returns (evaluation day, occurrence) pairs.
fn run_daily(p: &PmPlan, state: &mut PmState, from: Date, to: Date) -> Vec<(Date, Occurrence)> {
    let mut out = Vec::new();
    let mut day = from;
    while day <= to {
        let g = due_occurrences(p, state, day, &[]).unwrap();
        *state = g.state;
        out.extend(g.occurrences.into_iter().map(|o| (day, o)));
        day = day.next_day().unwrap();
    }
    out
}

fn due_dates(occ: &[(Date, Occurrence)]) -> Vec<Date> {
    occ.iter()
        .map(|(_, o)| match o.due {
            Due::Date(d) => d,
            Due::Meter(_) => panic!("calendar plan produced a meter occurrence"),
        })
        .collect()
}

fn r(ts_ms: i64, value: f64) -> MeterReading {
    MeterReading { ts_ms, value }
}

#[test]
fn fixed_monthly_from_a_month_end_is_anchored_to_the_start() {
    let p = calendar(
        1,
        IntervalUnit::Months,
        Anchor::Fixed,
        date!(2024 - 01 - 31),
        0,
    );
    let mut state = PmState::default();
    let occ = run_daily(&p, &mut state, date!(2024 - 01 - 01), date!(2025 - 03 - 31));
    assert_eq!(
        due_dates(&occ),
        [
            date!(2024 - 01 - 31),
            date!(2024 - 02 - 29), // leap year
            date!(2024 - 03 - 31), // back to the 31st, not the 29th
            date!(2024 - 04 - 30),
            date!(2024 - 05 - 31),
            date!(2024 - 06 - 30),
            date!(2024 - 07 - 31),
            date!(2024 - 08 - 31),
            date!(2024 - 09 - 30),
            date!(2024 - 10 - 31),
            date!(2024 - 11 - 30),
            date!(2024 - 12 - 31),
            date!(2025 - 01 - 31),
            date!(2025 - 02 - 28), // not a leap year
            date!(2025 - 03 - 31),
        ]
    );
    // Generated on the due day (no lead), each index once, in order.
    for (i, (day, o)) in occ.iter().enumerate() {
        assert_eq!(o.key.index, i as u64);
        assert_eq!(o.due, Due::Date(*day));
        assert_eq!(o.collapsed, 0);
    }
    assert_eq!(occ[0].1.key.to_string(), "pm-7#0");
}

#[test]
fn fixed_yearly_from_a_leap_day() {
    let p = calendar(
        12,
        IntervalUnit::Months,
        Anchor::Fixed,
        date!(2024 - 02 - 29),
        0,
    );
    let mut state = PmState::default();
    let occ = run_daily(&p, &mut state, date!(2024 - 02 - 01), date!(2028 - 12 - 31));
    assert_eq!(
        due_dates(&occ),
        [
            date!(2024 - 02 - 29),
            date!(2025 - 02 - 28),
            date!(2026 - 02 - 28),
            date!(2027 - 02 - 28),
            date!(2028 - 02 - 29),
        ]
    );
}

#[test]
fn fixed_every_two_weeks_with_a_lead_time() {
    let p = calendar(
        2,
        IntervalUnit::Weeks,
        Anchor::Fixed,
        date!(2025 - 03 - 03),
        3,
    );
    let mut state = PmState::default();
    let occ = run_daily(&p, &mut state, date!(2025 - 02 - 01), date!(2025 - 04 - 01));
    let got: Vec<(Date, Date)> = occ
        .iter()
        .map(|(day, _)| *day)
        .zip(due_dates(&occ))
        .collect();
    assert_eq!(
        got,
        [
            (date!(2025 - 02 - 28), date!(2025 - 03 - 03)),
            (date!(2025 - 03 - 14), date!(2025 - 03 - 17)),
            (date!(2025 - 03 - 28), date!(2025 - 03 - 31)),
        ]
    );
}

#[test]
fn missed_fixed_occurrences_collapse_into_the_latest() {
    let p = calendar(
        7,
        IntervalUnit::Days,
        Anchor::Fixed,
        date!(2025 - 01 - 01),
        0,
    );
    let g = due_occurrences(&p, &PmState::default(), date!(2025 - 01 - 01), &[]).unwrap();
    assert_eq!(g.occurrences.len(), 1);
    // Nothing evaluated for five weeks: occurrences 1..=5 are due at once.
    let g = due_occurrences(&p, &g.state, date!(2025 - 02 - 05), &[]).unwrap();
    assert_eq!(
        g.occurrences,
        [Occurrence {
            key: OccurrenceKey {
                plan: "pm-7".into(),
                index: 5
            },
            due: Due::Date(date!(2025 - 02 - 05)),
            collapsed: 4,
            reading: None,
        }]
    );
    // Same day again: nothing. Next week: index 6.
    let again = due_occurrences(&p, &g.state, date!(2025 - 02 - 05), &[]).unwrap();
    assert!(again.occurrences.is_empty());
    assert_eq!(again.state, g.state);
    let g = due_occurrences(&p, &g.state, date!(2025 - 02 - 12), &[]).unwrap();
    assert_eq!(g.occurrences[0].key.index, 6);
    assert_eq!(g.occurrences[0].collapsed, 0);
}

#[test]
fn nothing_before_the_start() {
    let p = calendar(
        1,
        IntervalUnit::Months,
        Anchor::Fixed,
        date!(2025 - 06 - 15),
        5,
    );
    let g = due_occurrences(&p, &PmState::default(), date!(2025 - 06 - 09), &[]).unwrap();
    assert!(g.occurrences.is_empty());
    assert_eq!(g.state, PmState::default());
    let g = due_occurrences(&p, &PmState::default(), date!(2025 - 06 - 10), &[]).unwrap();
    assert_eq!(g.occurrences[0].due, Due::Date(date!(2025 - 06 - 15)));
}

#[test]
fn floating_waits_for_the_work_and_counts_from_it() {
    let p = calendar(
        1,
        IntervalUnit::Months,
        Anchor::Floating,
        date!(2024 - 01 - 31),
        0,
    );
    let mut state = PmState::default();
    let occ = run_daily(&p, &mut state, date!(2024 - 01 - 01), date!(2024 - 03 - 31));
    // Only the first: the second waits for the first to be done.
    assert_eq!(due_dates(&occ), [date!(2024 - 01 - 31)]);
    state.work_done(0, date!(2024 - 01 - 31));
    let occ = run_daily(&p, &mut state, date!(2024 - 04 - 01), date!(2024 - 04 - 01));
    // Overdue by then: due one month after the work, generated at once.
    assert_eq!(due_dates(&occ), [date!(2024 - 02 - 29)]);
    assert_eq!(occ[0].1.key.index, 1);
    // Done late, on Apr 10: the next is due May 10 (floating drifts).
    state.work_done(1, date!(2024 - 04 - 10));
    // A stale completion of an older occurrence changes nothing.
    state.work_done(0, date!(2024 - 04 - 20));
    assert_eq!(state.done.unwrap().date, date!(2024 - 04 - 10));
    let occ = run_daily(&p, &mut state, date!(2024 - 04 - 11), date!(2024 - 06 - 30));
    assert_eq!(due_dates(&occ), [date!(2024 - 05 - 10)]);
    assert_eq!(occ[0].0, date!(2024 - 05 - 10));
}

#[test]
fn floating_from_a_month_end_clamps_then_follows_the_completion() {
    let p = calendar(
        1,
        IntervalUnit::Months,
        Anchor::Floating,
        date!(2025 - 01 - 31),
        2,
    );
    let mut state = PmState::default();
    let g = due_occurrences(&p, &state, date!(2025 - 01 - 29), &[]).unwrap();
    assert_eq!(g.occurrences[0].due, Due::Date(date!(2025 - 01 - 31)));
    state = g.state;
    state.work_done(0, date!(2025 - 01 - 31));
    let occ = run_daily(&p, &mut state, date!(2025 - 02 - 01), date!(2025 - 02 - 28));
    assert_eq!(due_dates(&occ), [date!(2025 - 02 - 28)]);
    assert_eq!(occ[0].0, date!(2025 - 02 - 26), "two days' lead");
    state.work_done(1, date!(2025 - 02 - 28));
    let occ = run_daily(&p, &mut state, date!(2025 - 03 - 01), date!(2025 - 03 - 31));
    assert_eq!(due_dates(&occ), [date!(2025 - 03 - 28)]);
}

#[test]
fn meter_jump_over_several_multiples_collapses_to_one() {
    let p = every(100.0, 0.0, 0.0);
    let g = due_occurrences(
        &p,
        &PmState::default(),
        date!(2025 - 01 - 01),
        &[r(1, 90.0)],
    )
    .unwrap();
    assert!(g.occurrences.is_empty());
    assert_eq!(g.state.last_index, Some(0));
    let g = due_occurrences(&p, &g.state, date!(2025 - 01 - 01), &[r(2, 310.0)]).unwrap();
    assert_eq!(
        g.occurrences,
        [Occurrence {
            key: OccurrenceKey {
                plan: "pm-7".into(),
                index: 3
            },
            due: Due::Meter(300.0),
            collapsed: 2,
            reading: Some(r(2, 310.0)),
        }]
    );
    let g = due_occurrences(&p, &g.state, date!(2025 - 01 - 01), &[r(3, 399.9)]).unwrap();
    assert!(g.occurrences.is_empty());
    let g = due_occurrences(&p, &g.state, date!(2025 - 01 - 01), &[r(4, 400.0)]).unwrap();
    assert_eq!(g.occurrences[0].key.index, 4);
    assert_eq!(g.occurrences[0].collapsed, 0);
}

#[test]
fn meter_within_one_batch_reports_the_reading_that_reached_the_latest_multiple() {
    let p = every(100.0, 0.0, 10.0);
    let state = PmState {
        last_index: Some(0),
        last_reading: Some(r(0, 50.0)),
        ..PmState::default()
    };
    // Unsorted input is ordered by time; lead 10 makes 290 reach 300.
    let batch = [r(3, 290.0), r(1, 95.0), r(2, 150.0), r(4, 295.0)];
    let g = due_occurrences(&p, &state, date!(2025 - 01 - 01), &batch).unwrap();
    assert_eq!(g.occurrences.len(), 1);
    assert_eq!(g.occurrences[0].key.index, 3);
    assert_eq!(g.occurrences[0].reading, Some(r(3, 290.0)));
    assert_eq!(g.state.last_reading, Some(r(4, 295.0)));
}

#[test]
fn a_new_meter_plan_does_not_back_date_work() {
    let p = every(500.0, 0.0, 0.0);
    let g = due_occurrences(
        &p,
        &PmState::default(),
        date!(2025 - 01 - 01),
        &[r(1, 12_345.0), r(2, 12_499.0)],
    )
    .unwrap();
    assert!(g.occurrences.is_empty());
    assert_eq!(g.state.last_index, Some(24));
    let g = due_occurrences(&p, &g.state, date!(2025 - 01 - 01), &[r(3, 12_500.0)]).unwrap();
    assert_eq!(g.occurrences[0].key.index, 25);
    assert_eq!(g.occurrences[0].due, Due::Meter(12_500.0));
    // But a lead reaching the next multiple on the first reading fires it.
    let p = every(100.0, 0.0, 10.0);
    let g = due_occurrences(
        &p,
        &PmState::default(),
        date!(2025 - 01 - 01),
        &[r(1, 95.0)],
    )
    .unwrap();
    assert_eq!(g.occurrences[0].key.index, 1);
}

#[test]
fn counter_reset_keeps_counting_usage() {
    let p = every(100.0, 0.0, 0.0);
    let g = due_occurrences(
        &p,
        &PmState::default(),
        date!(2025 - 01 - 01),
        &[r(1, 0.0), r(2, 480.0)],
    )
    .unwrap();
    assert_eq!(g.occurrences[0].key.index, 4);
    // The counter is replaced and restarts at 0: 480 + 20 = 500.
    let g = due_occurrences(
        &p,
        &g.state,
        date!(2025 - 01 - 01),
        &[r(3, 5.0), r(4, 20.0)],
    )
    .unwrap();
    assert_eq!(g.state.meter_offset, 480.0);
    assert_eq!(g.occurrences.len(), 1);
    assert_eq!(g.occurrences[0].key.index, 5);
    assert_eq!(g.occurrences[0].due, Due::Meter(500.0));
    // Two resets in one batch.
    // 20 -> 60 (540), reset -> 10 (550), 90 (630): the sixth multiple.
    let g = due_occurrences(
        &p,
        &g.state,
        date!(2025 - 01 - 01),
        &[r(5, 60.0), r(6, 10.0), r(7, 90.0)],
    )
    .unwrap();
    assert_eq!(g.state.meter_offset, 540.0);
    assert_eq!(g.occurrences[0].key.index, 6);
    assert_eq!(g.occurrences[0].reading, Some(r(7, 90.0)));
}

#[test]
fn replayed_and_bad_readings_are_ignored() {
    let p = every(100.0, 0.0, 0.0);
    let batch = [r(1, 0.0), r(2, 150.0)];
    let g = due_occurrences(&p, &PmState::default(), date!(2025 - 01 - 01), &batch).unwrap();
    assert_eq!(g.occurrences.len(), 1);
    let again = due_occurrences(&p, &g.state, date!(2025 - 01 - 01), &batch).unwrap();
    assert!(again.occurrences.is_empty());
    assert_eq!(again.state, g.state);
    let bad = [r(3, f64::NAN), r(4, f64::INFINITY), r(2, 900.0)];
    let g2 = due_occurrences(&p, &g.state, date!(2025 - 01 - 01), &bad).unwrap();
    assert!(g2.occurrences.is_empty());
    assert_eq!(g2.state, g.state);
}

#[test]
fn fractional_multiples_are_reached_exactly() {
    let p = every(0.1, 0.0, 0.0);
    let state = PmState {
        last_index: Some(2),
        last_reading: Some(r(0, 0.25)),
        ..PmState::default()
    };
    let g = due_occurrences(&p, &state, date!(2025 - 01 - 01), &[r(1, 0.3)]).unwrap();
    assert_eq!(g.occurrences[0].key.index, 3);
}

#[test]
fn threshold_fires_once_per_crossing() {
    let p = threshold(80.0, Direction::Rising, 5.0);
    let batch = [
        r(1, 70.0),
        r(2, 85.0), // crossing 1
        r(3, 90.0),
        r(4, 78.0), // back below, but within the hysteresis: not re-armed
        r(5, 81.0),
        r(6, 74.0), // re-armed
        r(7, 80.0), // crossing 2 (at the threshold counts)
    ];
    let g = due_occurrences(&p, &PmState::default(), date!(2025 - 01 - 01), &batch).unwrap();
    let got: Vec<(u64, i64)> = g
        .occurrences
        .iter()
        .map(|o| (o.key.index, o.reading.unwrap().ts_ms))
        .collect();
    assert_eq!(got, [(1, 2), (2, 7)]);
    assert!(g
        .occurrences
        .iter()
        .all(|o| o.due == Due::Meter(80.0) && o.collapsed == 0));
    assert!(g.state.fired);
    // Still above in the next batch: nothing.
    let g = due_occurrences(&p, &g.state, date!(2025 - 01 - 01), &[r(8, 95.0)]).unwrap();
    assert!(g.occurrences.is_empty());
}

#[test]
fn threshold_falling_and_initially_beyond() {
    let p = threshold(20.0, Direction::Falling, 0.0);
    // No reading seen yet counts as armed: already below fires at once.
    let g = due_occurrences(
        &p,
        &PmState::default(),
        date!(2025 - 01 - 01),
        &[r(1, 15.0)],
    )
    .unwrap();
    assert_eq!(g.occurrences.len(), 1);
    let g = due_occurrences(
        &p,
        &g.state,
        date!(2025 - 01 - 01),
        &[r(2, 19.0), r(3, 21.0), r(4, 20.0)],
    )
    .unwrap();
    let idx: Vec<u64> = g.occurrences.iter().map(|o| o.key.index).collect();
    assert_eq!(idx, [2]);
}

#[test]
fn invalid_plans_are_refused() {
    let cases = [
        calendar(
            0,
            IntervalUnit::Days,
            Anchor::Fixed,
            date!(2025 - 01 - 01),
            0,
        ),
        calendar(
            1,
            IntervalUnit::Weeks,
            Anchor::Fixed,
            date!(2025 - 01 - 01),
            7,
        ),
        calendar(
            1,
            IntervalUnit::Months,
            Anchor::Fixed,
            date!(2025 - 01 - 01),
            28,
        ),
        every(0.0, 0.0, 0.0),
        every(f64::NAN, 0.0, 0.0),
        every(10.0, 0.0, 10.0),
        every(10.0, 0.0, -1.0),
        threshold(f64::INFINITY, Direction::Rising, 0.0),
        threshold(1.0, Direction::Rising, -1.0),
    ];
    for p in cases {
        let err = due_occurrences(&p, &PmState::default(), date!(2025 - 01 - 01), &[]).unwrap_err();
        assert_eq!(err.code(), "invalid_plan", "{:?}", p.trigger);
    }
    assert!(calendar(
        1,
        IntervalUnit::Months,
        Anchor::Fixed,
        date!(2025 - 01 - 01),
        27
    )
    .validate()
    .is_ok());
}

#[test]
fn dates_past_the_calendar_range_are_errors_not_panics() {
    let p = calendar(
        2,
        IntervalUnit::Days,
        Anchor::Fixed,
        date!(9999 - 12 - 30),
        1,
    );
    let g = due_occurrences(&p, &PmState::default(), date!(9999 - 12 - 31), &[]);
    assert_eq!(g.unwrap_err(), PmError::DateOutOfRange);
}

#[test]
fn occurrence_becomes_a_work_order() {
    let p = calendar(
        1,
        IntervalUnit::Months,
        Anchor::Fixed,
        date!(2025 - 01 - 31),
        0,
    );
    let g = due_occurrences(&p, &PmState::default(), date!(2025 - 01 - 31), &[]).unwrap();
    let new = p.work_order_for(&g.occurrences[0], "wo-100".into());
    assert_eq!(new.due, Some(date!(2025 - 01 - 31)));
    assert_eq!(new.pm_occurrence, Some(g.occurrences[0].key.clone()));
    assert_eq!(new.work_type, WorkType::Preventive);
    assert_eq!(new.checklist.len(), 1);
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["trigger"]["calendar"]["anchor"], "fixed");
    assert_eq!(json["trigger"]["calendar"]["start"], "2025-01-31");
    assert_eq!(serde_json::from_value::<PmPlan>(json).unwrap(), p);
    let state = g.state;
    let bytes = postcard::to_allocvec(&state).unwrap();
    assert_eq!(postcard::from_bytes::<PmState>(&bytes).unwrap(), state);
}

proptest! {
    /// However the days are spaced, a fixed plan never produces an index
    /// twice, indices only grow, and every index is produced or collapsed.
    #[test]
    fn calendar_never_twice(
        every in 1u32..4,
        unit in prop_oneof![Just(IntervalUnit::Days), Just(IntervalUnit::Weeks), Just(IntervalUnit::Months)],
        gaps in prop::collection::vec(0i64..40, 1..40),
        start_offset in 0i64..400,
    ) {
        let start = add_days(date!(2023 - 12 - 01), start_offset).unwrap();
        let p = calendar(every, unit, Anchor::Fixed, start, 0);
        let mut state = PmState::default();
        let mut day = date!(2024 - 01 - 01);
        let mut seen: Vec<u64> = Vec::new();
        let mut accounted = 0u64;
        for gap in gaps {
            day = add_days(day, gap).unwrap();
            let g = due_occurrences(&p, &state, day, &[]).unwrap();
            prop_assert!(g.occurrences.len() <= 1);
            for o in &g.occurrences {
                prop_assert!(seen.last().is_none_or(|l| o.key.index > *l));
                let Due::Date(due) = o.due else { panic!("calendar") };
                prop_assert!(due <= day);
                prop_assert_eq!(step(start, every, unit, o.key.index).unwrap(), due);
                accounted += 1 + o.collapsed;
                seen.push(o.key.index);
            }
            // Evaluating the same day again produces nothing.
            prop_assert!(due_occurrences(&p, &g.state, day, &[]).unwrap().occurrences.is_empty());
            state = g.state;
        }
        if let Some(last) = seen.last() {
            prop_assert_eq!(accounted, last + 1);
        }
    }

    /// However readings are batched, an `every` plan never produces a
    /// multiple twice, and the multiples produced or collapsed are exactly
    /// those the effective meter passed after its baseline.
    #[test]
    fn meter_never_twice(
        steps in prop::collection::vec((0.0f64..250.0, any::<bool>()), 1..60),
        split in prop::collection::vec(1usize..6, 1..60),
    ) {
        let p = every(100.0, 0.0, 0.0);
        // A counter with occasional resets (a `true` step restarts from its value).
        let mut raw = 0.0;
        let mut readings = Vec::new();
        for (i, (delta, reset)) in steps.iter().enumerate() {
            raw = if *reset { *delta } else { raw + delta };
            readings.push(r(i as i64 + 1, raw));
        }
        let mut state = PmState::default();
        let mut seen: Vec<u64> = Vec::new();
        let mut accounted = 0u64;
        let mut rest = &readings[..];
        let mut sizes = split.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap()).min(rest.len());
            let (batch, tail) = rest.split_at(n);
            rest = tail;
            let g = due_occurrences(&p, &state, date!(2025 - 01 - 01), batch).unwrap();
            prop_assert!(g.occurrences.len() <= 1);
            for o in &g.occurrences {
                prop_assert!(seen.last().is_none_or(|l| o.key.index > *l));
                accounted += 1 + o.collapsed;
                seen.push(o.key.index);
            }
            state = g.state;
        }
        // Expected effective usage computed independently.
        let mut offset = 0.0;
        let mut prev: Option<f64> = None;
        let mut effective = 0.0;
        for rd in &readings {
            if let Some(p) = prev { if rd.value < p { offset += p; } }
            prev = Some(rd.value);
            effective = offset + rd.value;
        }
        let baseline = (readings[0].value / 100.0 + 1e-9).floor() as u64;
        let reached = (effective / 100.0 + 1e-9).floor() as u64;
        prop_assert_eq!(accounted, reached - baseline);
        prop_assert_eq!(state.last_index, Some(reached));
    }
}
