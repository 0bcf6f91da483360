//! Who talks next on a shared serial line, sans-IO.
//!
//! Every unit on an RTU bus keeps its own poll interval, but the line
//! carries one request at a time. [`BusSchedule`] picks the unit whose poll
//! is most overdue; a unit that did not answer at all is not due again
//! before a jittered, growing backoff delay (and never sooner than its
//! interval), so a silent unit costs the line one timeout per backoff
//! period while the others keep their rate. A busy line delays polls; it
//! never queues several for one unit.

use std::time::Duration;

use dcmms_protocols_core::Backoff;
use tokio::time::Instant;

/// What the bus should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Poll this unit (index in the order given to [`BusSchedule::new`]).
    Poll(usize),
    /// Nothing is due before this instant.
    Wait(Instant),
}

/// How a unit's poll cycle went, as far as scheduling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The unit answered (with data or an exception).
    Answered,
    /// The unit did not answer its first request in time.
    Silent,
    /// The cycle could not reach the unit for a reason of the line itself
    /// (the port failed); the unit is not to blame.
    LineFailed,
}

#[derive(Debug, Clone)]
struct Unit {
    interval: Duration,
    due: Instant,
    backoff: Backoff,
    silent: bool,
}

/// Poll timing of the units of one bus.
#[derive(Debug, Clone)]
pub struct BusSchedule {
    units: Vec<Unit>,
}

impl BusSchedule {
    /// `intervals[i]` and `backoffs[i]` belong to unit `i`. The first polls
    /// are spread over the first interval of each unit (unit `i` of `n`
    /// starts at `now + interval * i / n`) so that a freshly started bus
    /// does not begin with a burst.
    pub fn new(intervals: &[Duration], backoffs: Vec<Backoff>, now: Instant) -> Self {
        let n = u32::try_from(intervals.len()).unwrap_or(u32::MAX).max(1);
        let units = intervals
            .iter()
            .zip(backoffs)
            .enumerate()
            .map(|(i, (&interval, backoff))| Unit {
                interval,
                due: now
                    + interval.mul_f64(f64::from(u32::try_from(i).unwrap_or(0)) / f64::from(n)),
                backoff,
                silent: false,
            })
            .collect();
        BusSchedule { units }
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// The unit to poll at `now`: the most overdue one (the lowest index on
    /// ties), or the instant the next one falls due.
    pub fn next(&self, now: Instant) -> Next {
        let mut best: Option<(Instant, usize)> = None;
        for (i, u) in self.units.iter().enumerate() {
            if best.is_none_or(|(due, _)| u.due < due) {
                best = Some((u.due, i));
            }
        }
        match best {
            Some((due, i)) if due <= now => Next::Poll(i),
            Some((due, _)) => Next::Wait(due),
            // No units: nothing will ever be due; ask again in a while.
            None => Next::Wait(now + Duration::from_secs(3600)),
        }
    }

    /// Records the cycle of unit `i` that finished at `now`, and schedules
    /// its next one. Returns the retry delay when the unit is backing off.
    pub fn finished(&mut self, i: usize, outcome: Outcome, now: Instant) -> Option<Duration> {
        let u = self.units.get_mut(i)?;
        // The next slot on the unit's own grid, unless the line is so late
        // that it has passed: then as soon as possible, once.
        let mut next = u.due + u.interval;
        if next < now {
            next = now;
        }
        match outcome {
            Outcome::Answered => {
                u.backoff.reset();
                u.silent = false;
                u.due = next;
                None
            }
            Outcome::Silent => {
                let delay = u.backoff.next_delay();
                u.silent = true;
                u.due = next.max(now + delay);
                Some(delay)
            }
            Outcome::LineFailed => {
                u.due = next;
                None
            }
        }
    }

    /// Polls unit `i` as soon as the line is free (after a write, to show
    /// the new value), unless it is backing off.
    pub fn poll_soon(&mut self, i: usize, now: Instant) {
        if let Some(u) = self.units.get_mut(i) {
            if !u.silent {
                u.due = u.due.min(now);
            }
        }
    }

    /// Whether unit `i` is backing off after not answering.
    pub fn is_silent(&self, i: usize) -> bool {
        self.units.get(i).is_some_and(|u| u.silent)
    }

    /// Retry attempts since unit `i` last answered.
    pub fn failures(&self, i: usize) -> u32 {
        self.units.get(i).map_or(0, |u| u.backoff.failures())
    }

    /// When unit `i` is due next.
    pub fn due(&self, i: usize) -> Option<Instant> {
        self.units.get(i).map(|u| u.due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn schedule(intervals_ms: &[u64], now: Instant) -> BusSchedule {
        let intervals: Vec<Duration> = intervals_ms
            .iter()
            .map(|&m| Duration::from_millis(m))
            .collect();
        let backoffs = (0..intervals.len())
            .map(|i| Backoff::with_seed(500 * MS, 4000 * MS, i as u64))
            .collect();
        BusSchedule::new(&intervals, backoffs, now)
    }

    #[test]
    fn first_polls_are_spread_and_most_overdue_goes_first() {
        let t0 = Instant::now();
        let mut s = schedule(&[100, 100, 100, 100], t0);
        assert_eq!(s.due(0), Some(t0));
        assert_eq!(s.due(2), Some(t0 + 50 * MS));
        assert_eq!(s.next(t0), Next::Poll(0));
        s.finished(0, Outcome::Answered, t0 + MS);
        assert_eq!(s.next(t0 + MS), Next::Wait(t0 + 25 * MS));
        // Late: units 1 and 2 are both due; 1 has waited longer.
        assert_eq!(s.next(t0 + 60 * MS), Next::Poll(1));
        s.finished(1, Outcome::Answered, t0 + 61 * MS);
        assert_eq!(s.next(t0 + 61 * MS), Next::Poll(2));
        // Unit 1 stays on its grid: due at 125 ms, not 161.
        assert_eq!(s.due(1), Some(t0 + 125 * MS));
    }

    #[test]
    fn a_late_line_skips_missed_slots_instead_of_queueing_them() {
        let t0 = Instant::now();
        let mut s = schedule(&[100], t0);
        // The cycle took 350 ms: one poll as soon as possible, then on the
        // interval again.
        s.finished(0, Outcome::Answered, t0 + 350 * MS);
        assert_eq!(s.due(0), Some(t0 + 350 * MS));
        s.finished(0, Outcome::Answered, t0 + 360 * MS);
        assert_eq!(s.due(0), Some(t0 + 450 * MS));
    }

    #[test]
    fn a_silent_unit_backs_off_and_recovers() {
        let t0 = Instant::now();
        let mut s = schedule(&[100, 100], t0);
        let d = s.finished(0, Outcome::Silent, t0 + 200 * MS).unwrap();
        assert_eq!(d, 500 * MS);
        assert!(s.is_silent(0));
        assert_eq!(s.due(0), Some(t0 + 700 * MS));
        // Longer each time (full jitter, ceiling doubles), never below 500 ms.
        let d2 = s.finished(0, Outcome::Silent, t0 + 900 * MS).unwrap();
        assert!(d2 >= 500 * MS && d2 <= 1000 * MS, "{d2:?}");
        assert_eq!(s.failures(0), 2);
        // A write does not pull a silent unit forward.
        s.poll_soon(0, t0 + 950 * MS);
        assert!(s.due(0).unwrap() >= t0 + 1400 * MS);
        // It answers again: back on its interval, backoff reset.
        let due = s.due(0).unwrap();
        assert_eq!(s.finished(0, Outcome::Answered, due), None);
        assert!(!s.is_silent(0));
        assert_eq!(s.failures(0), 0);
        assert_eq!(s.due(0), Some(due + 100 * MS));
        // The port failing is not the unit's fault.
        assert_eq!(s.finished(1, Outcome::LineFailed, t0 + 60 * MS), None);
        assert!(!s.is_silent(1));
    }

    #[test]
    fn backoff_never_polls_faster_than_the_interval() {
        let t0 = Instant::now();
        let mut s = schedule(&[10_000], t0);
        s.finished(0, Outcome::Silent, t0);
        assert_eq!(s.due(0), Some(t0 + 10_000 * MS));
    }

    #[test]
    fn writes_pull_the_next_poll_forward() {
        let t0 = Instant::now();
        let mut s = schedule(&[1000, 1000], t0);
        s.finished(0, Outcome::Answered, t0 + MS);
        s.poll_soon(0, t0 + 10 * MS);
        assert_eq!(s.next(t0 + 10 * MS), Next::Poll(0));
        assert!(schedule(&[], t0).is_empty());
        assert!(matches!(schedule(&[], t0).next(t0), Next::Wait(_)));
    }

    /// A simulation of a bus: each poll of an answering unit takes
    /// `cycle_ms`, each poll of a silent one `timeout_ms`.
    fn simulate(
        intervals_ms: &[u64],
        silent: &[bool],
        cycle_ms: u64,
        timeout_ms: u64,
        run_ms: u64,
    ) -> Vec<u32> {
        let t0 = Instant::now();
        let end = t0 + Duration::from_millis(run_ms);
        let mut s = schedule(intervals_ms, t0);
        let mut now = t0;
        let mut polls = vec![0u32; intervals_ms.len()];
        while now < end {
            match s.next(now) {
                Next::Wait(t) => now = t,
                Next::Poll(i) => {
                    polls[i] += 1;
                    if silent[i] {
                        now += Duration::from_millis(timeout_ms);
                        s.finished(i, Outcome::Silent, now);
                    } else {
                        now += Duration::from_millis(cycle_ms);
                        s.finished(i, Outcome::Answered, now);
                    }
                }
            }
        }
        polls
    }

    #[test]
    fn silent_units_cost_little_in_simulation() {
        // Three units every 100 ms for 10 s, 5 ms per cycle, 200 ms timeout.
        let healthy = simulate(&[100, 100, 100], &[false; 3], 5, 200, 10_000);
        assert!(
            healthy.iter().all(|&n| (99..=101).contains(&n)),
            "{healthy:?}"
        );
        let one_silent = simulate(&[100, 100, 100], &[false, true, false], 5, 200, 10_000);
        // The silent unit was tried a handful of times, not 100.
        assert!(one_silent[1] <= 8, "{one_silent:?}");
        // Each try blocked the line for 200 ms: the others lost at most two
        // polls per try.
        for i in [0, 2] {
            assert!(one_silent[i] >= 100 - 2 * one_silent[1], "{one_silent:?}");
        }
    }

    proptest! {
        /// Whatever the intervals and silent units, answering units are never
        /// starved: each gets at least the polls its interval allows on the
        /// time the line has left, and a silent unit is never tried more
        /// often than every 500 ms (the backoff floor).
        #[test]
        fn no_unit_starves(
            intervals in proptest::collection::vec(20u64..2000, 1..8),
            silent_mask in any::<u8>(),
            cycle_ms in 1u64..20,
        ) {
            let n = intervals.len();
            let silent: Vec<bool> = (0..n).map(|i| silent_mask & (1 << i) != 0).collect();
            let run_ms = 20_000;
            let timeout_ms = 100;
            let polls = simulate(&intervals, &silent, cycle_ms, timeout_ms, run_ms);
            let busy: u64 = polls.iter().zip(&silent)
                .map(|(&p, &s)| u64::from(p) * if s { timeout_ms } else { cycle_ms })
                .sum();
            prop_assert!(busy <= run_ms + timeout_ms, "line over-booked: {busy}");
            for i in 0..n {
                if silent[i] {
                    prop_assert!(u64::from(polls[i]) <= run_ms / 500 + 1, "{:?}", polls);
                } else {
                    prop_assert!(polls[i] >= 1, "{:?}", polls);
                    // If the line had spare time, this unit got its rate.
                    let demand: f64 = intervals.iter().zip(&silent)
                        .filter(|(_, &s)| !s)
                        .map(|(&iv, _)| cycle_ms as f64 / iv as f64)
                        .sum();
                    let silent_load: f64 = intervals.iter().zip(&silent)
                        .filter(|(_, &s)| s)
                        .map(|_| timeout_ms as f64 / 500.0)
                        .sum();
                    if demand + silent_load < 0.5 {
                        let want = run_ms / intervals[i];
                        prop_assert!(
                            u64::from(polls[i]) * 10 >= want * 7,
                            "unit {} got {} of {} polls: {:?}", i, polls[i], want, polls
                        );
                    }
                }
            }
        }
    }
}
